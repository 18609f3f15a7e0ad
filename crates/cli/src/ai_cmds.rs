//! `tessera ai`: paid calls to a provider through a channel, for people and scripts. The
//! voucher covers what the provider says is owed on the channel (post-paid), capped by
//! `--max-owed`, at the channel's current nonce.

use crate::wallet_cmds::{connect, load_key, print_json, NodeArg, Output};
use anyhow::{anyhow, bail, Result};
use clap::Subcommand;
use provider::VoucherHeader;
use serde_json::{json, Value};

#[derive(Subcommand, Debug)]
pub enum AiCmd {
    /// Ask a chat model.
    Chat {
        #[arg(long)]
        key: String,
        /// The channel that pays [default: your newest open channel to this provider]
        #[arg(long)]
        channel: Option<u64>,
        #[arg(long, default_value = "http://127.0.0.1:8700/v1")]
        provider: String,
        #[arg(long, default_value = "SmolLM2-135M-Instruct")]
        model: String,
        #[arg(long, default_value_t = 128)]
        max_tokens: u64,
        /// Refuse to sign for more than this many TSR base units owed
        #[arg(long)]
        max_owed: Option<u128>,
        prompt: String,
        #[command(flatten)]
        node: NodeArg,
    },
    /// Embed texts.
    Embed {
        #[arg(long)]
        key: String,
        /// The channel that pays [default: your newest open channel to this provider]
        #[arg(long)]
        channel: Option<u64>,
        #[arg(long, default_value = "http://127.0.0.1:8700/v1")]
        provider: String,
        #[arg(long, default_value = "all-MiniLM-L6-v2")]
        model: String,
        #[arg(long)]
        max_owed: Option<u128>,
        texts: Vec<String>,
        #[command(flatten)]
        node: NodeArg,
    },
}

/// The payer's newest unexpired channel with money in it to the provider registered at
/// `provider` (its endpoint).
async fn find_channel(client: &wallet::client::Client, payer: primitives::Address, provider: &str) -> Result<u64> {
    let url = provider.trim_end_matches('/');
    let providers = client.providers().await?;
    let p = providers
        .iter()
        .find(|p| p.endpoint.trim_end_matches('/') == url)
        .ok_or_else(|| anyhow!("no provider is registered at {url}; pass --channel"))?;
    let height = client.chain().await?.height.0;
    client
        .account_channels(&payer)
        .await?
        .iter()
        .filter(|c| c.recipient == p.address && c.expiry_height > height && !c.escrowed.is_zero())
        .map(|c| c.id)
        .max()
        .ok_or_else(|| {
            anyhow!(
                "you have no open channel to {}; open one with `tessera channel open --to {}`",
                p.address,
                p.address
            )
        })
}

async fn voucher(
    key: &crypto::SigningKey,
    node: &NodeArg,
    provider: &str,
    channel: Option<u64>,
    max_owed: Option<u128>,
) -> Result<(VoucherHeader, u64)> {
    let client = connect(node)?;
    let channel = match channel {
        Some(c) => c,
        None => find_channel(&client, key.address(), provider).await?,
    };
    let chain = client.chain().await?;
    let c = client.channel(channel).await?.ok_or_else(|| anyhow!("no channel {channel}"))?;
    let claims: Value =
        reqwest::get(format!("{}/tessera/claims", provider.trim_end_matches('/'))).await?.json().await?;
    let owed = provider::owed_in_claims(&claims, channel).map_err(|e| anyhow!(e))?.0;
    if max_owed.is_some_and(|m| owed > m) {
        bail!("the provider says {owed} is owed on channel {channel}, above --max-owed");
    }
    Ok((provider::sign_voucher(key, &chain.chain_id, channel, c.nonce, primitives::Amount(owed)), channel))
}

async fn post(provider: &str, path: &str, v: &VoucherHeader, body: Value) -> Result<(Value, Option<String>)> {
    let r = reqwest::Client::new()
        .post(format!("{}{path}", provider.trim_end_matches('/')))
        .header("x-tessera-voucher", v.to_string())
        .json(&body)
        .send()
        .await?;
    let remaining = r.headers().get("x-tessera-channel-remaining").and_then(|h| h.to_str().ok()).map(str::to_string);
    let status = r.status();
    let v: Value = r.json().await?;
    if !status.is_success() {
        bail!(
            "{status}: {}: {}",
            v["error"]["code"].as_str().unwrap_or("?"),
            v["error"]["message"].as_str().unwrap_or("?")
        );
    }
    Ok((v, remaining))
}

pub async fn run(cmd: AiCmd, out: &Output) -> Result<()> {
    match cmd {
        AiCmd::Chat { key, channel, provider, model, max_tokens, max_owed, prompt, node } => {
            let key = load_key(&key)?;
            let (v, channel) = voucher(&key, &node, &provider, channel, max_owed).await?;
            let body =
                json!({"model": model, "max_tokens": max_tokens, "messages": [{"role": "user", "content": prompt}]});
            let (resp, remaining) = post(&provider, "/chat/completions", &v, body).await?;
            if out.json {
                return print_json(&resp);
            }
            println!("{}", resp["choices"][0]["message"]["content"].as_str().unwrap_or(""));
            let u = &resp["usage"];
            println!(
                "-- {} prompt + {} completion tokens, cost {} base units; channel {channel} has {} left",
                u["prompt_tokens"],
                u["completion_tokens"],
                u["cost"].as_str().unwrap_or("?"),
                remaining.unwrap_or_else(|| "?".into())
            );
            Ok(())
        }
        AiCmd::Embed { key, channel, provider, model, max_owed, texts, node } => {
            if texts.is_empty() {
                bail!("give at least one text");
            }
            let key = load_key(&key)?;
            let (v, channel) = voucher(&key, &node, &provider, channel, max_owed).await?;
            let (resp, remaining) = post(&provider, "/embeddings", &v, json!({"model": model, "input": texts})).await?;
            if out.json {
                return print_json(&resp);
            }
            for d in resp["data"].as_array().into_iter().flatten() {
                let e = d["embedding"].as_array().map_or(0, Vec::len);
                let head: Vec<String> = d["embedding"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .take(4)
                    .map(|x| format!("{:.4}", x.as_f64().unwrap_or(0.0)))
                    .collect();
                println!("{}: [{} ...] ({e} dimensions)", d["index"], head.join(", "));
            }
            println!(
                "-- {} tokens, cost {} base units; channel {channel} has {} left",
                resp["usage"]["prompt_tokens"],
                resp["usage"]["cost"].as_str().unwrap_or("?"),
                remaining.unwrap_or_else(|| "?".into())
            );
            Ok(())
        }
    }
}
