//! The gateway end to end, with the official OpenAI Python client (installed by
//! `scripts/python-env.sh` into a virtual environment): a devnet with its provider, a second
//! registered provider that is down, and `tessera gateway` paying from its own key. The
//! client lists models, chats (plain and streamed with usage), embeds (base64, the SDK's
//! default), is routed around the dead provider it asked for first, and gets the SDK's
//! exception classes for 404, 401 and 400.

mod common;

use common::{cli, models_dir, start_gateway, Devnet};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_official_openai_client_works_through_the_gateway() {
    assert!(models_dir().join("all-MiniLM-L6-v2").exists(), "model weights missing: run scripts/fetch-models.sh");
    let py = std::process::Command::new(repo().join("scripts/python-env.sh")).output().unwrap();
    assert!(py.status.success(), "python env: {}", String::from_utf8_lossy(&py.stderr));
    let python = String::from_utf8(py.stdout).unwrap().trim().to_string();

    let dir = tempfile::tempdir().unwrap();
    let models = models_dir();
    let net = Devnet::start(&dir.path().join("data"), &["--models-dir", models.to_str().unwrap(), "--no-evaluator"]);
    let dev_key = net.key.to_str().unwrap().to_string();
    let listed: Value = serde_json::from_str(&cli(&net, &["--json", "provider", "list"])).unwrap();
    let live = listed[0]["address"].as_str().unwrap().to_string();

    // A second provider, registered but not running.
    let mut keys = Vec::new();
    for name in ["dead", "payer", "poor"] {
        let k = crypto::SigningKey::generate();
        let path = dir.path().join(format!("{name}.key"));
        wallet::keystore::write_new(&path, &wallet::keystore::unencrypted(&k)).unwrap();
        cli(&net, &["transfer", "--key", &dev_key, "--to", &k.address().to_string(), "--amount", "100"]);
        keys.push((k.address().to_string(), path));
    }
    let (dead, dead_key) = keys[0].clone();
    let (_, payer_key) = keys[1].clone();
    let (_, poor_key) = keys[2].clone();
    // The poor payer keeps 0.001 TSR: enough for fees, not for a channel.
    let sink = net.address.clone();
    cli(&net, &["transfer", "--key", poor_key.to_str().unwrap(), "--to", &sink, "--amount", "99.998"]);
    cli(
        &net,
        &[
            "provider",
            "register",
            "--key",
            dead_key.to_str().unwrap(),
            "--endpoint",
            "http://127.0.0.1:9/v1",
            "--model",
            "SmolLM2-135M-Instruct:0.01:0.01",
            "--stake",
            "10",
        ],
    );

    let (_gw, base) = start_gateway(&net, &payer_key, &["--api-key", "sk-tessera-test"]);

    let out = std::process::Command::new(&python)
        .arg(repo().join("crates/cli/tests/python/openai_client.py"))
        .env("OPENAI_BASE_URL", &base)
        .env("OPENAI_API_KEY", "sk-tessera-test")
        .env("CHAT_MODEL", "SmolLM2-135M-Instruct")
        .env("EMBED_MODEL", "all-MiniLM-L6-v2")
        .env("PREFER", &dead)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "openai client: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(v["chat_provider"], live.as_str());
    assert_eq!(v["fallback_provider"], live.as_str(), "the dead provider was skipped");
    assert!(v["chat_cost"].as_str().unwrap().parse::<u128>().unwrap() > 0, "{v}");
    assert!(v["stream_cost"].as_str().unwrap().parse::<u128>().unwrap() > 0, "{v}");
    assert_eq!(v["embedding_dims"], 384);
    assert_eq!(v["not_found_code"], "model_not_found");
    assert_eq!(v["auth_code"], "invalid_api_key");
    assert_eq!(v["bad_request_param"], "n");
    assert!(v["request_id"].as_str().unwrap().starts_with("req-gw-"));
    assert!(v["responses_cost"].as_str().unwrap().parse::<u128>().unwrap() > 0, "{v}");
    assert!(v["responses_stream_cost"].as_str().unwrap().parse::<u128>().unwrap() > 0, "{v}");
    assert_eq!(v["responses_unsupported_param"], "previous_response_id");
    assert_eq!(v["responses_retrieve_code"], "response_not_found");
    // The gateway paid the live provider through its own channel.
    let claims: Value = serde_json::from_str(&cli(
        &net,
        &[
            "--json",
            "provider",
            "claims",
            "--provider",
            listed[0]["endpoint"].as_str().unwrap().trim_end_matches("/v1"),
        ],
    ))
    .unwrap();
    assert!(!claims["channels"].as_array().unwrap().is_empty(), "{claims}");

    // A payer that cannot fund a channel gets 402 (not retried), not a 5xx.
    let (_poor_gw, poor_base) = start_gateway(&net, &poor_key, &[]);
    let (status, retry, body) = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let r = reqwest::Client::new()
            .post(format!("{poor_base}/chat/completions"))
            .json(&serde_json::json!({"model": "SmolLM2-135M-Instruct", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}))
            .send()
            .await
            .unwrap();
        let retry = r.headers().get("x-should-retry").map(|v| v.to_str().unwrap().to_string());
        (r.status().as_u16(), retry, r.json::<Value>().await.unwrap())
    });
    assert_eq!((status, retry.as_deref()), (402, Some("false")), "{body}");
    assert_eq!(body["error"]["code"], "insufficient_balance");

    // The upstream timeout is a limit on silence, not on a call's length: with 1 s, a stream
    // that keeps sending for longer still comes through whole (a total timeout cut it).
    let config = dir.path().join("gateway-1s.toml");
    // No `key` in the file: --key fills it in.
    std::fs::write(&config, "upstream_timeout_secs = 1\n").unwrap();
    let (_gw1, base1) = start_gateway(&net, &payer_key, &["--config", config.to_str().unwrap()]);
    let started = std::time::Instant::now();
    let text = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let r = reqwest::Client::new()
            .post(format!("{base1}/chat/completions"))
            .json(&serde_json::json!({"model": "SmolLM2-135M-Instruct", "max_tokens": 400, "temperature": 0,
                   "stream": true, "stream_options": {"include_usage": true},
                   "messages": [{"role": "user", "content": "Write a long story about a lighthouse keeper."}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.text().await.unwrap()
    });
    let took = started.elapsed();
    assert!(text.trim_end().ends_with("data: [DONE]"), "the stream was cut after {took:?}: {text}");
    let chunks = text.lines().filter(|l| l.starts_with("data: {")).count();
    if took < std::time::Duration::from_millis(1500) {
        eprintln!("note: the stream took only {took:?} ({chunks} chunks); it does not test the timeout");
    }

    // The devnet's own gateway is an operator gateway: its openai.env works as is, and the
    // SDK raises its classes for 402 (no funds) and 429 (rate limit).
    let env_file = dir.path().join("data/openai.env");
    let env = std::fs::read_to_string(&env_file).unwrap();
    let var = |name: &str| env.lines().find_map(|l| l.strip_prefix(&format!("{name}="))).unwrap().to_string();
    let admin = |args: &[&str]| -> Value {
        let mut all = vec!["--json", "gateway"];
        all.extend_from_slice(args);
        let (token, base) = (dir.path().join("data/gateway/admin.token"), var("OPENAI_BASE_URL"));
        all.extend_from_slice(&["--gateway", &base, "--admin-token-file", token.to_str().unwrap()]);
        serde_json::from_str(&cli(&net, &all)).unwrap()
    };
    let no_funds = admin(&["keys", "create", "--owner", &dead])["key"].as_str().unwrap().to_string();
    let rpm1 = admin(&["keys", "create", "--owner", &net.address, "--rpm", "1"])["key"].as_str().unwrap().to_string();
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -a; . {}; exec {python} {}",
            env_file.display(),
            repo().join("crates/cli/tests/python/openai_client.py").display()
        ))
        .env_remove("OPENAI_BASE_URL")
        .env_remove("OPENAI_API_KEY")
        .env("CHAT_MODEL", "SmolLM2-135M-Instruct")
        .env("EMBED_MODEL", "all-MiniLM-L6-v2")
        .env("KEY_NO_FUNDS", &no_funds)
        .env("KEY_RPM1", &rpm1)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "openai client on the devnet's gateway: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(v["chat_provider"], live.as_str());
    assert_eq!(v["no_funds_code"], "insufficient_balance");
    assert_eq!(v["rate_limit_code"], "rate_limit_requests");
    assert_eq!(v["responses_budget_exact"], true, "{v}");
    assert!(v["retry_after_ms"].as_str().unwrap().parse::<u64>().unwrap() > 0);
    // What the SDK's calls cost came out of the dev account's deposit with the operator.
    let acct = admin(&["account", &net.address]);
    let spent: u128 = acct["spent"].as_str().unwrap().parse().unwrap();
    assert!(spent > 0, "{acct}");
    assert_eq!(acct["deposited"], "100000000000");
}
