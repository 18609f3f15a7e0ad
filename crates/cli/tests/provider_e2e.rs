//! Paid AI calls end to end, through real processes: a devnet, `tessera provider run`
//! with the real built-in models (weights from `scripts/fetch-models.sh`), a payment
//! channel, mixed calls (embeddings, chat with and without streaming, completions) paid
//! by vouchers, bad vouchers refused with their codes, the provider's claims, a provider
//! killed mid-stream and restarted, and the sender's reclaim after expiry. The provider's
//! earnings must equal exactly the sum of the per-call costs.

mod common;

use common::{cli, funded_key, models_dir, provider_config, start_gateway, start_provider, wait_for, Devnet};
use provider::VoucherHeader;
use serde_json::{json, Value};
use std::time::Duration;

const IN_PRICE: u128 = 2_000_000_000; // 2 TSR per million input tokens
const OUT_PRICE: u128 = 8_000_000_000; // 8 TSR per million output tokens

/// The exact cost of a call: ⌈(in · in_price + out · out_price) / 1e6⌉.
fn expected_cost(prompt: u64, completion: u64) -> u128 {
    (u128::from(prompt) * IN_PRICE + u128::from(completion) * OUT_PRICE).div_ceil(1_000_000)
}

struct Payer {
    key: crypto::SigningKey,
    http: reqwest::Client,
    node: String,
    /// Σ of every call's cost so far (what the sender owes in total).
    spent: u128,
}

impl Payer {
    async fn channel(&self) -> Value {
        self.http.get(format!("{}/v1/channels/1", self.node)).send().await.unwrap().json().await.unwrap()
    }

    /// A voucher for everything owed: Σ costs minus what claims already took, at the
    /// channel's current nonce.
    async fn voucher(&self) -> VoucherHeader {
        let c = self.channel().await;
        let nonce: u64 = c["nonce"].as_str().unwrap().parse().unwrap();
        let claimed: u128 = c["claimed"].as_str().unwrap().parse().unwrap();
        provider::sign_voucher(&self.key, "tessera-devnet", 1, nonce, primitives::Amount(self.spent - claimed))
    }

    /// POSTs with a fresh voucher; retries if a claim moved the nonce in between.
    async fn call(
        &mut self,
        api: &str,
        path: &str,
        body: Value,
    ) -> (reqwest::StatusCode, reqwest::header::HeaderMap, String) {
        for _ in 0..3 {
            let v = self.voucher().await;
            let r = self
                .http
                .post(format!("{api}{path}"))
                .header("x-tessera-voucher", v.to_string())
                .json(&body)
                .send()
                .await
                .unwrap();
            let (status, headers) = (r.status(), r.headers().clone());
            let text = r.text().await.unwrap();
            if status == 401 && text.contains("stale_nonce") {
                // A claim landed between reading the channel and the call.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            return (status, headers, text);
        }
        panic!("nonce kept moving");
    }
}

impl Payer {
    /// A paid call that must succeed and cost exactly price × tokens: its body and usage.
    async fn paid(&mut self, api: &str, path: &str, body: Value) -> (String, (u64, u64, u128)) {
        let streamed = body["stream"] == true;
        let (status, _, text) = self.call(api, path, body).await;
        assert_eq!(status, 200, "{path}: {text}");
        let usage = usage_of(&text, streamed);
        assert_eq!(usage.2, expected_cost(usage.0, usage.1), "{path}: cost = price × tokens");
        self.spent += usage.2;
        (text, usage)
    }
}

/// The usage of a response: the JSON body's, or a stream's final usage chunk.
fn usage_of(text: &str, streamed: bool) -> (u64, u64, u128) {
    let usage = if streamed {
        let chunks: Vec<Value> = text
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
        let last = chunks.last().unwrap();
        assert_eq!(last["choices"].as_array().unwrap().len(), 0, "usage chunk has no choices");
        last["usage"].clone()
    } else {
        serde_json::from_str::<Value>(text).unwrap()["usage"].clone()
    };
    (
        usage["prompt_tokens"].as_u64().unwrap(),
        usage["completion_tokens"].as_u64().unwrap_or(0),
        usage["cost"].as_str().unwrap().parse().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paid_calls_are_billed_exactly_and_claimed_once() {
    assert!(
        models_dir().join("SmolLM2-135M-Instruct").exists(),
        "model weights missing in {}: run scripts/fetch-models.sh",
        models_dir().display()
    );
    let dir = tempfile::tempdir().unwrap();
    let net = Devnet::start(&dir.path().join("data"), &[]);
    let dev = net.signing_key();
    let dev_key = net.key.to_str().unwrap().to_string();

    // The provider's key, funded for its stake and claim fees.
    let (pkey, pkey_path) = funded_key(&net, dir.path(), "provider", "100");
    let paddr = pkey.address().to_string();
    let config = provider_config(
        &net,
        dir.path(),
        "provider",
        &pkey_path,
        "claim_interval_secs = 2\nexpiry_margin_blocks = 5",
        (IN_PRICE, IN_PRICE, OUT_PRICE),
        None,
    );
    let mut prov = start_provider(&config, true);
    let listed: Value = serde_json::from_str(&cli(&net, &["--json", "provider", "list"])).unwrap();
    assert_eq!(listed[0]["models"].as_array().unwrap().len(), 2);

    // A channel of 5 TSR from the dev account to the provider.
    let out =
        cli(&net, &["channel", "open", "--key", &dev_key, "--to", &paddr, "--amount", "5", "--expiry-blocks", "450"]);
    assert!(out.contains("channel 1 open"), "{out}");
    let http = reqwest::Client::new();
    let mut payer = Payer { key: dev, http: http.clone(), node: net.api.clone(), spent: 0 };
    let models: Value = http.get(format!("{}/models", prov.api)).send().await.unwrap().json().await.unwrap();
    assert_eq!(models["object"], "list");

    // Mixed calls: embeddings (base64, as the SDK sends), chat, streamed chat with usage,
    // completions. Each bills exactly price × tokens counted.
    let chat = |stream: bool, i: usize| {
        json!({"model": "SmolLM2-135M-Instruct", "max_tokens": 6, "temperature": 0, "stream": stream,
               "stream_options": if stream { json!({"include_usage": true}) } else { Value::Null },
               "messages": [{"role": "user", "content": format!("Say a word about the number {i}.")}]})
    };
    let mut calls = 0;
    for i in 0..12 {
        let (path, body, streamed) = match i % 4 {
            0 => (
                "/embeddings",
                json!({"model": "all-MiniLM-L6-v2", "input": [format!("text {i}"), "tessera"], "encoding_format": "base64"}),
                false,
            ),
            1 => ("/chat/completions", chat(false, i), false),
            2 => ("/chat/completions", chat(true, i), true),
            _ => (
                "/completions",
                json!({"model": "SmolLM2-135M-Instruct", "prompt": "The capital of France is", "max_tokens": 4, "temperature": 0}),
                false,
            ),
        };
        let mut body = body;
        body.as_object_mut().unwrap().retain(|_, v| !v.is_null());
        let (status, headers, text) = payer.call(&prov.api, path, body).await;
        assert_eq!(status, 200, "{path}: {text}");
        let (prompt, completion, cost) = usage_of(&text, streamed);
        assert!(prompt > 0);
        assert_eq!(cost, expected_cost(prompt, completion), "{path}: cost = price × tokens");
        if !streamed {
            assert_eq!(headers["x-tessera-cost"].to_str().unwrap(), cost.to_string());
            assert!(headers.contains_key("x-tessera-channel-remaining"));
        }
        payer.spent += cost;
        calls += 1;
    }
    assert_eq!(calls, 12);

    // Several choices: `n` and a completion's several prompts, each choice what its own
    // call would give (greedy), the prompt billed once per prompt, every choice's tokens.
    let texts_of = |text: &str, streamed: bool| -> Vec<String> {
        let mut texts = vec![String::new(); 4];
        let bodies: Vec<Value> = if streamed {
            text.lines().filter_map(|l| l.strip_prefix("data: ")).filter_map(|d| serde_json::from_str(d).ok()).collect()
        } else {
            vec![serde_json::from_str(text).unwrap()]
        };
        for b in bodies {
            for c in b["choices"].as_array().unwrap() {
                let piece = c["message"]["content"].as_str().or(c["delta"]["content"].as_str()).or(c["text"].as_str());
                texts[c["index"].as_u64().unwrap() as usize].push_str(piece.unwrap_or(""));
            }
        }
        texts.retain(|t| !t.is_empty());
        texts
    };
    let ask = json!([{"role": "user", "content": "Name a colour."}]);
    let (single, (p1, c1, _)) = payer
        .paid(
            &prov.api,
            "/chat/completions",
            json!({"model": "SmolLM2-135M-Instruct", "max_tokens": 5, "temperature": 0, "messages": ask}),
        )
        .await;
    let (two, (p2, c2, _)) = payer
        .paid(
            &prov.api,
            "/chat/completions",
            json!({"model": "SmolLM2-135M-Instruct", "max_tokens": 5, "temperature": 0, "n": 2, "messages": ask}),
        )
        .await;
    let single = texts_of(&single, false);
    assert_eq!(texts_of(&two, false), vec![single[0].clone(), single[0].clone()], "{two}");
    assert_eq!((p2, c2), (p1, 2 * c1), "the prompt once, both choices' tokens");
    let prompts = ["The capital of France is", "Two plus two is"];
    let mut alone = Vec::new();
    let (mut p_sum, mut c_sum) = (0, 0);
    for prompt in prompts {
        let (t, (p, c, _)) = payer
            .paid(
                &prov.api,
                "/completions",
                json!({"model": "SmolLM2-135M-Instruct", "prompt": prompt, "max_tokens": 4, "temperature": 0}),
            )
            .await;
        alone.extend(texts_of(&t, false));
        (p_sum, c_sum) = (p_sum + p, c_sum + c);
    }
    for stream in [false, true] {
        let (t, (p, c, _)) = payer.paid(
            &prov.api,
            "/completions",
            json!({"model": "SmolLM2-135M-Instruct", "prompt": prompts, "max_tokens": 4, "temperature": 0,
                   "stream": stream, "stream_options": if stream { json!({"include_usage": true}) } else { Value::Null }}),
        )
        .await;
        assert_eq!(texts_of(&t, stream), alone, "stream {stream}: {t}");
        assert_eq!((p, c), (p_sum, c_sum));
    }
    // Token ids of the model's vocabulary as the prompt: billed as that many tokens.
    let (_, (p, _, _)) = payer
        .paid(
            &prov.api,
            "/completions",
            json!({"model": "SmolLM2-135M-Instruct", "prompt": [504, 3458, 314], "max_tokens": 2, "temperature": 0}),
        )
        .await;
    assert_eq!(p, 3);
    // logit_bias reaches the sampler: +100 on one token makes it every token generated.
    let (t, (_, c, _)) = payer
        .paid(
            &prov.api,
            "/completions",
            json!({"model": "SmolLM2-135M-Instruct", "prompt": "Hello", "max_tokens": 2, "temperature": 0,
                   "logit_bias": {"504": 100}}),
        )
        .await;
    let text = texts_of(&t, false).concat();
    let (a, b) = text.split_at(text.len() / 2);
    assert!(c == 2 && !a.is_empty() && a == b, "{text:?}");
    // Log probabilities: each token's bytes add up to the text; greedy picks the most likely.
    let (t, (_, c, _)) = payer
        .paid(
            &prov.api,
            "/chat/completions",
            json!({"model": "SmolLM2-135M-Instruct", "max_tokens": 4, "temperature": 0, "messages": ask,
                   "logprobs": true, "top_logprobs": 2}),
        )
        .await;
    let v: Value = serde_json::from_str(&t).unwrap();
    let content = v["choices"][0]["logprobs"]["content"].as_array().unwrap();
    assert!(!content.is_empty() && content.len() as u64 <= c, "{t}");
    let bytes: Vec<u8> =
        content.iter().flat_map(|e| e["bytes"].as_array().unwrap().iter().map(|b| b.as_u64().unwrap() as u8)).collect();
    assert_eq!(String::from_utf8(bytes).unwrap(), v["choices"][0]["message"]["content"].as_str().unwrap());
    for e in content {
        assert_eq!(e["top_logprobs"].as_array().unwrap().len(), 2);
        assert_eq!(e["top_logprobs"][0]["logprob"], e["logprob"], "{e}");
    }
    for stream in [false, true] {
        let (t, _) = payer
            .paid(
                &prov.api,
                "/completions",
                json!({"model": "SmolLM2-135M-Instruct", "prompt": "The capital of France is", "max_tokens": 4,
                       "temperature": 0, "logprobs": 1, "stream": stream,
                       "stream_options": if stream { json!({"include_usage": true}) } else { Value::Null }}),
            )
            .await;
        let bodies: Vec<Value> = t
            .lines()
            .map(|l| l.strip_prefix("data: ").unwrap_or(l))
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .filter(|b| b["choices"].as_array().is_some_and(|c| !c.is_empty()))
            .collect();
        let (mut tokens, mut text, mut offsets) = (String::new(), String::new(), Vec::new());
        for b in &bodies {
            let choice = &b["choices"][0];
            text.push_str(choice["text"].as_str().unwrap());
            if choice["logprobs"].is_null() {
                continue; // the closing chunk of a stream
            }
            for (tok, off) in choice["logprobs"]["tokens"]
                .as_array()
                .unwrap()
                .iter()
                .zip(choice["logprobs"]["text_offset"].as_array().unwrap())
            {
                offsets.push(off.as_u64().unwrap());
                tokens.push_str(tok.as_str().unwrap());
            }
        }
        assert_eq!(tokens, text, "stream {stream}: {t}");
        assert_eq!(offsets.first(), Some(&0));
        assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
    }
    for (bad, param) in [
        (json!({"model": "SmolLM2-135M-Instruct", "prompt": "a", "logprobs": 6}), "logprobs"),
        (json!({"model": "SmolLM2-135M-Instruct", "prompt": "a", "logit_bias": {"999999": 5}}), "logit_bias"),
        (json!({"model": "SmolLM2-135M-Instruct", "prompt": "a", "frequency_penalty": 3}), "frequency_penalty"),
        (json!({"model": "SmolLM2-135M-Instruct", "prompt": [7, 999999999]}), "prompt"),
        (json!({"model": "SmolLM2-135M-Instruct", "prompt": ["a", "b", "c", "d", "e"], "n": 4}), "prompt"),
        (json!({"model": "SmolLM2-135M-Instruct", "prompt": "a", "n": 17}), "n"),
    ] {
        let (status, _, text) = payer.call(&prov.api, "/completions", bad).await;
        let error: Value = serde_json::from_str(&text).unwrap();
        assert_eq!((status.as_u16(), error["error"]["param"].as_str()), (400, Some(param)), "{text}");
    }

    // Bad vouchers, each with its error.
    let body = json!({"model": "all-MiniLM-L6-v2", "input": "x"});
    let post = |v: String| {
        let (http, api, body) = (http.clone(), prov.api.clone(), body.clone());
        async move {
            let r =
                http.post(format!("{api}/embeddings")).header("x-tessera-voucher", v).json(&body).send().await.unwrap();
            let status = r.status().as_u16();
            let v: Value = r.json().await.unwrap();
            (status, v["error"]["code"].as_str().unwrap_or("").to_string())
        }
    };
    let good = payer.voucher().await;
    let stranger = crypto::SigningKey::generate();
    let wrong_signer = provider::sign_voucher(&stranger, "tessera-devnet", 1, good.nonce, good.amount);
    assert_eq!(post(wrong_signer.to_string()).await, (401, "bad_voucher_signature".into()));
    let wrong_chain = provider::sign_voucher(&payer.key, "other-chain", 1, good.nonce, good.amount);
    assert_eq!(post(wrong_chain.to_string()).await, (401, "bad_voucher_signature".into()));
    let stale = provider::sign_voucher(&payer.key, "tessera-devnet", 1, good.nonce + 5, good.amount);
    assert_eq!(post(stale.to_string()).await, (401, "stale_nonce".into()));
    if good.amount.0 > 0 {
        let low =
            provider::sign_voucher(&payer.key, "tessera-devnet", 1, good.nonce, primitives::Amount(good.amount.0 - 1));
        let (status, code) = post(low.to_string()).await;
        assert_eq!(status, 402);
        assert_eq!(code, "insufficient_voucher");
    }
    let r = http.post(format!("{}/embeddings", prov.api)).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .post(format!("{}/embeddings", prov.api))
        .header("x-tessera-voucher", good.to_string())
        .json(&json!({"model": "no-such-model", "input": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // Post-paid: the last call is paid by the next voucher; settle the tab with one.
    let tab = payer.voucher().await;
    let r = http
        .post(format!("{}/tessera/pay", prov.api))
        .header("x-tessera-voucher", tab.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    // The provider claims on its own (every 2 s): exactly what the calls cost.
    let spent = payer.spent;
    let claimed = wait_for(60, "the provider's claim", || {
        let rt = tokio::runtime::Handle::current();
        let c = tokio::task::block_in_place(|| rt.block_on(payer.channel()));
        let claimed: u128 = c["claimed"].as_str().unwrap().parse().unwrap();
        (claimed == spent).then_some(claimed)
    });
    assert_eq!(claimed, spent);

    // Killed mid-stream: nothing of the interrupted call is billed; after a restart the
    // channel still works and nothing is claimed twice.
    let long = json!({"model": "SmolLM2-135M-Instruct", "max_tokens": 200, "stream": true,
                      "messages": [{"role": "user", "content": "Write a long story about a lighthouse."}]});
    let mut attempt = 0;
    let mut r = loop {
        // A claim may land between reading the nonce and the call: then sign again.
        let v = payer.voucher().await;
        let r = http
            .post(format!("{}/chat/completions", prov.api))
            .header("x-tessera-voucher", v.to_string())
            .json(&long)
            .send()
            .await
            .unwrap();
        attempt += 1;
        if r.status() == 401 && attempt < 5 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            continue;
        }
        break r;
    };
    assert_eq!(r.status(), 200);
    let first = r.chunk().await.unwrap();
    assert!(first.is_some());
    let _ = prov.child.kill();
    let _ = prov.child.wait();
    drop(r);
    prov = start_provider(&config, false);
    let summary: Value = http.get(format!("{}/tessera/claims", prov.api)).send().await.unwrap().json().await.unwrap();
    let billed: u128 = summary["channels"][0]["billed"].as_str().unwrap().parse().unwrap();
    assert_eq!(billed, spent, "the interrupted call was not billed");
    let (status, _, text) =
        payer.call(&prov.api, "/embeddings", json!({"model": "all-MiniLM-L6-v2", "input": "after restart"})).await;
    assert_eq!(status, 200, "{text}");
    let (_, _, cost) = usage_of(&text, false);
    payer.spent += cost;
    let spent = payer.spent;
    let tab = payer.voucher().await;
    let r = http
        .post(format!("{}/tessera/pay", prov.api))
        .header("x-tessera-voucher", tab.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    wait_for(60, "the claim after restart", || {
        let rt = tokio::runtime::Handle::current();
        let c = tokio::task::block_in_place(|| rt.block_on(payer.channel()));
        let claimed: u128 = c["claimed"].as_str().unwrap().parse().unwrap();
        assert!(claimed <= spent, "claimed {claimed} > spent {spent}: something was claimed twice");
        (claimed == spent).then_some(())
    });
    drop(prov);

    // After expiry the sender takes back the rest: deposited = claimed + reclaimed.
    // (the devnet cuts a block every 100 ms, so expiry comes with time)
    while payer.channel().await["expired"] == false {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    cli(&net, &["channel", "reclaim", "--key", &dev_key, "--channel", "1"]);
    let c = payer.channel().await;
    let n = |k: &str| c[k].as_str().unwrap().parse::<u128>().unwrap();
    assert_eq!(n("claimed"), spent);
    assert_eq!(n("deposited"), n("claimed") + n("reclaimed"));
    assert_eq!(n("escrowed"), 0);
}

/// A fresh user's paid call on the devnet, in the two commands it prints.
#[test]
fn devnet_paid_call_in_two_commands() {
    let dir = tempfile::tempdir().unwrap();
    let models = models_dir();
    let net = Devnet::start(&dir.path().join("data"), &["--models-dir", models.to_str().unwrap()]);
    let key = net.key.to_str().unwrap().to_string();
    let listed: Value = serde_json::from_str(&cli(&net, &["--json", "provider", "list"])).unwrap();
    let provider = listed[0]["address"].as_str().expect("the devnet registered its provider").to_string();
    let endpoint = listed[0]["endpoint"].as_str().unwrap().to_string();
    // The devnet's evaluator opens channels too, so the dev account's channel need not be 1:
    // `ai` finds the payer's newest channel to the provider.
    let out = cli(&net, &["channel", "open", "--key", &key, "--to", &provider, "--amount", "5"]);
    assert!(out.contains(" open"), "{out}");
    let out = cli(&net, &["ai", "chat", "--key", &key, "--provider", &endpoint, "--max-tokens", "8", "Hello!"]);
    assert!(out.contains("completion tokens, cost"), "{out}");
    let out = cli(&net, &["--json", "ai", "embed", "--key", &key, "--provider", &endpoint, "hello"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["data"][0]["embedding"].as_array().unwrap().len(), 384);
}

/// The incentive loop end to end: the devnet's provider (A, the default Q8_0 weights at the
/// devnet's prices) and a second provider (B, the Q4_1 weights at five times the prices)
/// both join the network; the devnet's evaluator pays both for probes, scores them against
/// its own reference runs and sets weights; after a few epochs A earns the larger
/// incentive, and the devnet's gateway routes a chat to A.
#[test]
fn the_better_provider_earns_the_larger_incentive() {
    assert!(
        models_dir().join("all-MiniLM-L6-v2").exists(),
        "model weights missing in {}: run scripts/fetch-models.sh",
        models_dir().display()
    );
    let dir = tempfile::tempdir().unwrap();
    let models = models_dir();
    let net = Devnet::start(&dir.path().join("data"), &["--models-dir", models.to_str().unwrap()]);
    let network = |net: &Devnet| -> Value { serde_json::from_str(&cli(net, &["--json", "network", "show"])).unwrap() };
    let a = {
        let listed: Value = serde_json::from_str(&cli(&net, &["--json", "provider", "list"])).unwrap();
        listed[0]["address"].as_str().unwrap().to_string()
    };

    let (bkey, bkey_path) = funded_key(&net, dir.path(), "b", "100");
    let b = bkey.address().to_string();
    let config =
        provider_config(&net, dir.path(), "b", &bkey_path, "", (50_000_000, 500_000_000, 2_000_000_000), Some("q4_1"));
    let _b_proc = start_provider(&config, true);
    cli(&net, &["neuron", "register", "--key", bkey_path.to_str().unwrap()]);

    let uid_of = |v: &Value, who: &str| -> usize {
        v["neurons"].as_array().unwrap().iter().position(|n| n["hotkey"] == who).expect("registered")
    };
    let start = std::time::Instant::now();
    let v = loop {
        let v = network(&net);
        let (ia, ib) = (uid_of(&v, &a), uid_of(&v, &b));
        let inc = |i: usize| v["neurons"][i]["incentive"].as_f64().unwrap();
        // Both scored (B's first weights need a round after its registration), then A ahead.
        if inc(ib) > 0.0 && inc(ia) > inc(ib) && v["epochs"].as_u64().unwrap() >= 4 {
            break v;
        }
        assert!(start.elapsed() < Duration::from_secs(150), "A should out-earn B; network: {v}");
        std::thread::sleep(Duration::from_millis(500));
    };
    let (ia, ib) = (uid_of(&v, &a), uid_of(&v, &b));
    let paid = |i: usize| v["neurons"][i]["last_incentive_paid"].as_str().unwrap().parse::<u128>().unwrap();
    assert!(paid(ia) > paid(ib), "{v}");
    let evaluator = v["neurons"].as_array().unwrap().iter().find(|n| n["role"] == "evaluator").expect("an evaluator");
    assert!(evaluator["dividends"].as_f64().unwrap() > 0.0, "{v}");
    // The evaluator paid B for its probes through a channel.
    let b_base = _b_proc.api.trim_end_matches("/v1");
    let claims: Value =
        serde_json::from_str(&cli(&net, &["--json", "provider", "claims", "--provider", b_base])).unwrap();
    assert!(!claims["channels"].as_array().unwrap().is_empty(), "{claims}");
    // The devnet's gateway routes to the provider with the larger incentive. Incentives move
    // every epoch and the gateway skips a provider whose health check failed (a loaded
    // machine can time one out), so: a call after a registry refresh in which A was ahead,
    // until one goes to A (CI once saw B serve while A was ahead, one epoch later).
    let gateway = net.gateway.clone().expect("the devnet runs a gateway");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut seen = Vec::new();
    let start = std::time::Instant::now();
    loop {
        let v = network(&net);
        let inc = |i: usize| v["neurons"][i]["incentive"].as_f64().unwrap();
        let ahead = inc(uid_of(&v, &a)) > inc(uid_of(&v, &b));
        let served = rt.block_on(async {
            tokio::time::sleep(Duration::from_secs(6)).await; // one registry refresh with these incentives
            let r = reqwest::Client::new()
                .post(format!("{gateway}/chat/completions"))
                .bearer_auth(net.openai_key.as_deref().expect("the devnet's API key"))
                .json(&json!({"model": "SmolLM2-135M-Instruct", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.headers()["x-tessera-provider"].to_str().unwrap().to_string()
        });
        if ahead && served == a {
            break;
        }
        seen.push((ahead, served == a));
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "the gateway should prefer the provider the network pays more; (A ahead, A served): {seen:?}"
        );
    }
}

/// The upstream backend: provider B serves two models from an OpenAI-compatible server it
/// does not run (here a `tessera gateway` in front of the devnet's provider), paid per
/// call through B's channel. The chat model is billed from B's own token count (its
/// tokenizer from the model's GGUF), the embedding model from the upstream's usage;
/// streams are relayed with B's model name and B's usage; the upstream's 400 comes back
/// as is. B's free model needs no voucher, also through a gateway that cannot pay.
#[test]
fn an_upstream_model_is_served_and_billed_from_counted_tokens() {
    assert!(models_dir().join("SmolLM2-135M-Instruct").exists(), "model weights missing: run scripts/fetch-models.sh");
    let dir = tempfile::tempdir().unwrap();
    let models = models_dir();
    let net = Devnet::start(
        &dir.path().join("data"),
        &["--models-dir", models.to_str().unwrap(), "--no-evaluator", "--no-gateway"],
    );
    let (_, gw_key) = funded_key(&net, dir.path(), "upstream-payer", "100");
    let (_gw, upstream) = start_gateway(&net, &gw_key, &[]);
    let (bkey, bkey_path) = funded_key(&net, dir.path(), "b", "100");
    let gguf = models.join("SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf");
    let config = dir.path().join("b.toml");
    std::fs::write(
        &config,
        format!(
            r#"node = "{node}"
key = "{key}"
listen = "127.0.0.1:0"
data_dir = "{data}"
# The test signs every voucher at nonce 0: no claim (it bumps the nonce) while it runs
# (CI once took over the default 30 s before the third call).
claim_interval_secs = 86400
[[model]]
id = "smol-upstream"
backend = "upstream"
upstream_url = "{upstream}"
upstream_model = "SmolLM2-135M-Instruct"
tokenizer = "{gguf}"
context_tokens = 2048
input_price_per_mtok = "{IN_PRICE}"
output_price_per_mtok = "{OUT_PRICE}"
[[model]]
id = "minilm-upstream"
backend = "upstream"
upstream_url = "{upstream}"
upstream_model = "all-MiniLM-L6-v2"
input_price_per_mtok = "{IN_PRICE}"
[[model]]
id = "minilm-free"
backend = "upstream"
upstream_url = "{upstream}"
upstream_model = "all-MiniLM-L6-v2"
input_price_per_mtok = "0"
"#,
            node = net.api,
            key = bkey_path.display(),
            data = dir.path().join("b-data").display(),
            gguf = gguf.display(),
        ),
    )
    .unwrap();
    let b = start_provider(&config, true);
    let user = net.signing_key();
    cli(
        &net,
        &["channel", "open", "--key", net.key.to_str().unwrap(), "--to", &bkey.address().to_string(), "--amount", "5"],
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let http = reqwest::Client::new();
    let channels: Value = rt.block_on(async {
        let url = format!("{}/v1/accounts/{}/channels", net.api, net.address);
        http.get(url).send().await.unwrap().json().await.unwrap()
    });
    let b_addr = bkey.address().to_string();
    let id: u64 = channels
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["recipient"] == b_addr.as_str())
        .and_then(|c| c["id"].as_str())
        .map(|s| s.parse().unwrap())
        .expect("the channel to B");
    let counter = models::TokenCounter::from_file(&gguf).unwrap();
    let mut spent = 0u128;
    let call = |path: &str, body: Value, spent_before: u128| -> (u16, String) {
        rt.block_on(async {
            let v = provider::sign_voucher(&user, "tessera-devnet", id, 0, primitives::Amount(spent_before));
            let r = http
                .post(format!("{}{path}", b.api))
                .header("x-tessera-voucher", v.to_string())
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        })
    };
    let messages =
        json!([{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Name a colour."}]);
    let expected_prompt =
        counter.count_chat([("system", "You are terse."), ("user", "Name a colour.")]).unwrap() as u64;

    // Plain chat: B's model name, B's count, B's price.
    let (status, text) = call(
        "/chat/completions",
        json!({"model": "smol-upstream", "messages": messages, "max_tokens": 8, "temperature": 0}),
        spent,
    );
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["model"], "smol-upstream");
    let content = v["choices"][0]["message"]["content"].as_str().unwrap();
    let (pt, ct) = (v["usage"]["prompt_tokens"].as_u64().unwrap(), v["usage"]["completion_tokens"].as_u64().unwrap());
    assert_eq!(pt, expected_prompt);
    assert_eq!(ct, counter.count(content).unwrap() as u64);
    let c: u128 = v["usage"]["cost"].as_str().unwrap().parse().unwrap();
    assert_eq!(c, expected_cost(pt, ct));
    spent += c;

    // Streamed with usage: relayed chunks under B's name, B's usage chunk, then [DONE].
    let body = json!({"model": "smol-upstream", "messages": messages, "max_tokens": 8, "temperature": 0, "stream": true,
                      "stream_options": {"include_usage": true}});
    let (status, text) = call("/chat/completions", body, spent);
    assert_eq!(status, 200, "{text}");
    let (spt, sct, scost) = usage_of(&text, true);
    let streamed: String = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str::<Value>(d).unwrap())
        .inspect(|c| assert_eq!(c["model"], "smol-upstream"))
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str().map(str::to_string))
        .collect();
    assert_eq!((spt, sct), (expected_prompt, counter.count(&streamed).unwrap() as u64));
    assert_eq!(scost, expected_cost(spt, sct));
    spent += scost;

    // Two choices, streamed (through the gateway to the devnet's model): each choice's
    // text is counted on its own, the prompt once.
    let body = json!({"model": "smol-upstream", "messages": messages, "max_tokens": 6, "temperature": 0, "n": 2,
                      "stream": true, "stream_options": {"include_usage": true}});
    let (status, text) = call("/chat/completions", body, spent);
    assert_eq!(status, 200, "{text}");
    let (npt, nct, ncost) = usage_of(&text, true);
    let mut texts = [String::new(), String::new()];
    for chunk in text.lines().filter_map(|l| l.strip_prefix("data: ")).filter(|d| *d != "[DONE]") {
        let chunk: Value = serde_json::from_str(chunk).unwrap();
        for c in chunk["choices"].as_array().unwrap() {
            texts[c["index"].as_u64().unwrap() as usize].push_str(c["delta"]["content"].as_str().unwrap_or(""));
        }
    }
    assert!(!texts[0].is_empty() && texts[0] == texts[1], "{texts:?}");
    let counted: u64 = texts.iter().map(|t| counter.count(t).unwrap() as u64).sum();
    assert_eq!((npt, nct), (expected_prompt, counted));
    assert_eq!(ncost, expected_cost(npt, nct));
    spent += ncost;

    // Embeddings without a tokenizer: the upstream's usage, B's price.
    let (status, text) =
        call("/embeddings", json!({"model": "minilm-upstream", "input": ["a token network", "for AI"]}), spent);
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    assert_eq!(v["data"][0]["embedding"].as_array().unwrap().len(), 384);
    let ept = v["usage"]["prompt_tokens"].as_u64().unwrap();
    assert!(ept > 0);
    assert_eq!(v["usage"]["cost"].as_str().unwrap().parse::<u128>().unwrap(), expected_cost(ept, 0));
    spent += expected_cost(ept, 0);

    // A free model (both prices zero) needs no voucher and bills nothing; a priced one
    // without a voucher is refused with 401 before any work.
    let unpaid = |model: &str| -> (u16, Option<String>, String) {
        rt.block_on(async {
            let r = http
                .post(format!("{}/embeddings", b.api))
                .json(&json!({"model": model, "input": "free of charge"}))
                .send()
                .await
                .unwrap();
            let paid_header = r.headers().keys().map(|k| k.as_str().to_string()).find(|k| k.starts_with("x-tessera"));
            (r.status().as_u16(), paid_header, r.text().await.unwrap())
        })
    };
    let (status, paid_header, text) = unpaid("minilm-free");
    assert_eq!(status, 200, "{text}");
    assert_eq!(paid_header, None, "a free call carries no payment headers");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["data"][0]["embedding"].as_array().unwrap().len(), 384);
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    assert_eq!(v["usage"]["cost"], "0");
    let (status, _, text) = unpaid("minilm-upstream");
    assert_eq!(status, 401, "{text}");
    // Through a gateway whose payer cannot fund any channel: the free model is served (no
    // channel, no voucher), a priced one is 402.
    let (_, poor_key) = funded_key(&net, dir.path(), "poor", "0.001");
    let (_poor_gw, poor) = start_gateway(&net, &poor_key, &[]);
    let via_gateway = |model: &str| -> (u16, Value, Option<String>) {
        rt.block_on(async {
            let r = http
                .post(format!("{poor}/embeddings"))
                .json(&json!({"model": model, "input": "free of charge"}))
                .send()
                .await
                .unwrap();
            let served_by = r.headers().get("x-tessera-provider").map(|v| v.to_str().unwrap().to_string());
            (r.status().as_u16(), r.json().await.unwrap(), served_by)
        })
    };
    let (status, v, served_by) = via_gateway("minilm-free");
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["usage"]["cost"], "0");
    assert_eq!(served_by.as_deref(), Some(b_addr.as_str()));
    let (status, v, _) = via_gateway("minilm-upstream");
    assert_eq!((status, v["error"]["code"].as_str()), (402, Some("insufficient_balance")), "{v}");

    // The upstream's refusal comes back as is; an unknown model is B's 404.
    let (status, text) =
        call("/chat/completions", json!({"model": "smol-upstream", "messages": messages, "n": 17}), spent);
    assert_eq!(status, 400, "{text}");
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["error"]["param"], "n", "{text}");
    let (status, _) = call("/chat/completions", json!({"model": "nope", "messages": messages}), spent);
    assert_eq!(status, 404);
    // What B is owed is exactly the sum of the calls' costs.
    let claims: Value = rt
        .block_on(async { http.get(format!("{}/tessera/claims", b.api)).send().await.unwrap().json().await.unwrap() });
    assert_eq!(provider::owed_in_claims(&claims, id).unwrap().0, spent, "{claims}");
}

/// On a commit-reveal network (`tessera devnet --commit-reveal`), where `SetWeights` is
/// refused, the devnet's evaluator commits its weights as a hash and reveals them in their
/// reveal epoch: the provider earns incentive and the evaluator dividends.
#[test]
fn the_evaluator_commits_and_reveals_on_a_commit_reveal_network() {
    assert!(models_dir().join("all-MiniLM-L6-v2").exists(), "model weights missing: run scripts/fetch-models.sh");
    let dir = tempfile::tempdir().unwrap();
    let models = models_dir();
    let net = Devnet::start(
        &dir.path().join("data"),
        &["--models-dir", models.to_str().unwrap(), "--commit-reveal", "--no-gateway"],
    );
    let start = std::time::Instant::now();
    loop {
        let v: Value = serde_json::from_str(&cli(&net, &["--json", "network", "show"])).unwrap();
        assert_eq!(v["commit_reveal"], true, "{v}");
        let role = |r: &str| v["neurons"].as_array().unwrap().iter().find(|n| n["role"] == r).cloned();
        let (provider, evaluator) = (role("provider"), role("evaluator"));
        if let (Some(p), Some(e)) = (provider, evaluator) {
            if p["incentive"].as_f64().unwrap() > 0.0 && e["dividends"].as_f64().unwrap() > 0.0 {
                assert!(p["last_incentive_paid"].as_str().unwrap().parse::<u128>().unwrap() > 0, "{v}");
                break;
            }
        }
        assert!(start.elapsed() < Duration::from_secs(120), "revealed weights should pay the provider: {v}");
        std::thread::sleep(Duration::from_millis(500));
    }
}
