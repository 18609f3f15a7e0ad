//! `tessera gateway keys|usage|account|requests`: administer an operator gateway through its
//! admin API (`/admin/v1`), with the admin token it wrote to `<data_dir>/admin.token`.

use crate::wallet_cmds::{print_json, resolve_address, Output};
use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use primitives::Amount;
use serde_json::{json, Map, Value};
use std::path::PathBuf;

/// TSR's decimals (amounts on the admin API are base units).
const TSR_DECIMALS: u8 = 9;

#[derive(Subcommand, Debug)]
pub enum AdminCmd {
    /// API keys: create, list, show, update, rotate, revoke.
    Keys {
        #[command(subcommand)]
        cmd: KeysCmd,
    },
    /// Usage per key, day and model (the last 30 days by default).
    Usage {
        #[arg(long)]
        key: Option<String>,
        /// First day, YYYY-MM-DD (UTC).
        #[arg(long)]
        from: Option<String>,
        /// Last day, YYYY-MM-DD (UTC) [default: today].
        #[arg(long)]
        to: Option<String>,
        #[command(flatten)]
        admin: AdminArg,
    },
    /// A user's balance at the gateway: deposits, spending, reservations, free quota, stake.
    Account {
        /// tsr1… address or key file.
        address: String,
        #[command(flatten)]
        admin: AdminArg,
    },
    /// A key's request log, oldest first.
    Requests {
        id: String,
        /// Only requests after this sequence number.
        #[arg(long)]
        after: Option<u64>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[command(flatten)]
        admin: AdminArg,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeysCmd {
    /// Create a key for a depositor's account; the key is printed this once.
    Create {
        /// The account (tsr1… address or key file) whose deposits pay for the key's calls.
        #[arg(long)]
        owner: String,
        #[arg(long, default_value = "")]
        name: String,
        #[command(flatten)]
        limits: LimitArgs,
        #[command(flatten)]
        admin: AdminArg,
    },
    List {
        #[command(flatten)]
        admin: AdminArg,
    },
    Show {
        id: String,
        #[command(flatten)]
        admin: AdminArg,
    },
    /// Change a key's limits; `none` clears a budget, period, rpm or tpm.
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        limits: LimitArgs,
        /// Allow every model again.
        #[arg(long, conflicts_with = "models")]
        all_models: bool,
        #[command(flatten)]
        admin: AdminArg,
    },
    /// A new secret for the key (printed this once); the old one stops working at once.
    Rotate {
        id: String,
        #[command(flatten)]
        admin: AdminArg,
    },
    /// Revoke a key for good (its record and usage stay).
    Revoke {
        id: String,
        #[command(flatten)]
        admin: AdminArg,
    },
}

#[derive(Args, Debug)]
pub struct LimitArgs {
    /// Most TSR the key may spend per period (or ever, without --period).
    #[arg(long)]
    budget: Option<String>,
    /// The budget's period: 1h, 1d, 7d, 30d…
    #[arg(long)]
    period: Option<String>,
    /// Requests per minute.
    #[arg(long)]
    rpm: Option<String>,
    /// Tokens per minute (input and output).
    #[arg(long)]
    tpm: Option<String>,
    /// A model the key may use (repeat); none: every model.
    #[arg(long = "model", id = "models")]
    models: Vec<String>,
}

#[derive(Args, Debug)]
pub struct AdminArg {
    /// The gateway's base URL.
    #[arg(long, env = "TESSERA_GATEWAY", default_value = "http://127.0.0.1:8800")]
    gateway: String,
    /// The admin token.
    #[arg(long, env = "TESSERA_GATEWAY_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// A file holding the admin token (the gateway writes `<data_dir>/admin.token`).
    #[arg(long, conflicts_with = "admin_token")]
    admin_token_file: Option<PathBuf>,
}

impl AdminArg {
    fn token(&self) -> Result<String> {
        match (&self.admin_token, &self.admin_token_file) {
            (Some(t), _) => Ok(t.clone()),
            (None, Some(f)) => {
                Ok(std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?.trim().to_string())
            }
            (None, None) => bail!("give --admin-token-file <data_dir>/admin.token (or --admin-token)"),
        }
    }

    /// Sends one admin request; the JSON answer, or the gateway's error message.
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value> {
        let base = self.gateway.trim_end_matches('/').trim_end_matches("/v1");
        let url = format!("{base}/admin/v1{path}");
        let mut req = reqwest::Client::new().request(method, &url).bearer_auth(self.token()?);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.with_context(|| format!("cannot reach the gateway at {base}"))?;
        let status = resp.status();
        let v: Value = resp.json().await.with_context(|| format!("{url}: not a JSON answer"))?;
        if !status.is_success() {
            let e = &v["error"];
            bail!("{} ({status}): {}", e["code"].as_str().unwrap_or("error"), e["message"].as_str().unwrap_or(""));
        }
        Ok(v)
    }
}

fn tsr(v: &Value) -> String {
    match v.as_str().and_then(|s| s.parse::<u128>().ok()) {
        Some(n) => format!("{} TSR", Amount(n).to_decimal_string(TSR_DECIMALS)),
        None => "-".into(),
    }
}

/// A limit flag: a value, or `none` to clear it (only when updating).
fn limit<T>(
    arg: &Option<String>,
    parse: impl Fn(&str) -> Result<T>,
    into: impl Fn(T) -> Value,
) -> Result<Option<Value>> {
    match arg.as_deref() {
        None => Ok(None),
        Some("none") => Ok(Some(Value::Null)),
        Some(s) => Ok(Some(into(parse(s)?))),
    }
}

impl LimitArgs {
    fn fields(&self, update: bool) -> Result<Map<String, Value>> {
        let mut m = Map::new();
        let budget = limit(
            &self.budget,
            |s| Amount::from_decimal_str(s, TSR_DECIMALS).map_err(|e| anyhow!("--budget {s:?}: {e}")),
            |a| Value::String(a.0.to_string()),
        )?;
        let period = limit(&self.period, |s| Ok(s.to_string()), Value::String)?;
        let count =
            |flag: &'static str| move |s: &str| s.parse::<u64>().map_err(|_| anyhow!("--{flag} {s:?} is not a count"));
        let rpm = limit(&self.rpm, count("rpm"), Value::from)?;
        let tpm = limit(&self.tpm, count("tpm"), Value::from)?;
        for (name, v) in [("budget", budget), ("period", period), ("rpm", rpm), ("tpm", tpm)] {
            match v {
                Some(Value::Null) if !update => bail!("--{name} none only applies to `keys update`"),
                Some(v) => {
                    m.insert(name.into(), v);
                }
                None => {}
            }
        }
        if !self.models.is_empty() {
            m.insert("models".into(), json!(self.models));
        }
        Ok(m)
    }
}

fn print_key(v: &Value, out: &Output) -> Result<()> {
    if out.json {
        return print_json(v);
    }
    let opt = |k: &str| match &v[k] {
        Value::Null => "-".to_string(),
        x => x.as_str().map_or(x.to_string(), str::to_string),
    };
    println!("id:         {}", opt("id"));
    println!("name:       {}", opt("name"));
    println!("owner:      {}", opt("owner"));
    let period = v["period_secs"].as_u64().map_or(String::new(), |p| format!(" every {p} s"));
    println!(
        "budget:     {}{period} (spent this period {}, remaining {})",
        tsr(&v["budget"]),
        tsr(&v["period_spent"]),
        tsr(&v["budget_remaining"])
    );
    println!("spent:      {}", tsr(&v["total_spent"]));
    println!("limits:     rpm {} tpm {}", opt("rpm"), opt("tpm"));
    let models = v["models"].as_array().map(|m| m.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "));
    println!("models:     {}", models.filter(|m| !m.is_empty()).unwrap_or_else(|| "all".into()));
    if !v["revoked_ms"].is_null() {
        println!("revoked:    yes");
    }
    if let Some(k) = v["key"].as_str() {
        println!("key:        {k}");
        println!("            (shown this once: store it now)");
    }
    Ok(())
}

pub async fn run(cmd: AdminCmd, out: &Output) -> Result<()> {
    use reqwest::Method;
    match cmd {
        AdminCmd::Keys { cmd } => match cmd {
            KeysCmd::Create { owner, name, limits, admin } => {
                let mut body = limits.fields(false)?;
                body.insert("owner".into(), json!(resolve_address(&owner)?.to_string()));
                body.insert("name".into(), json!(name));
                let v = admin.call(Method::POST, "/keys", Some(Value::Object(body))).await?;
                print_key(&v, out)
            }
            KeysCmd::List { admin } => {
                let v = admin.call(Method::GET, "/keys", None).await?;
                if out.json {
                    return print_json(&v);
                }
                println!(
                    "{:<16}  {:<20}  {:<22}  {:>22}  {:>6}  {:>8}  state",
                    "id", "name", "owner", "spent", "rpm", "tpm"
                );
                for k in v["keys"].as_array().into_iter().flatten() {
                    println!(
                        "{:<16}  {:<20}  {:<64}  {:>22}  {:>6}  {:>8}  {}",
                        k["id"].as_str().unwrap_or(""),
                        k["name"].as_str().unwrap_or(""),
                        k["owner"].as_str().unwrap_or(""),
                        tsr(&k["total_spent"]),
                        k["rpm"].as_u64().map_or("-".into(), |n| n.to_string()),
                        k["tpm"].as_u64().map_or("-".into(), |n| n.to_string()),
                        if k["revoked_ms"].is_null() { "active" } else { "revoked" }
                    );
                }
                Ok(())
            }
            KeysCmd::Show { id, admin } => {
                print_key(&admin.call(Method::GET, &format!("/keys/{id}"), None).await?, out)
            }
            KeysCmd::Update { id, name, limits, all_models, admin } => {
                let mut body = limits.fields(true)?;
                if let Some(n) = name {
                    body.insert("name".into(), json!(n));
                }
                if all_models {
                    body.insert("models".into(), json!([]));
                }
                if body.is_empty() {
                    bail!("nothing to change: give --name, --budget, --period, --rpm, --tpm, --model or --all-models");
                }
                let v = admin.call(Method::PATCH, &format!("/keys/{id}"), Some(Value::Object(body))).await?;
                print_key(&v, out)
            }
            KeysCmd::Rotate { id, admin } => {
                print_key(&admin.call(Method::POST, &format!("/keys/{id}/rotate"), None).await?, out)
            }
            KeysCmd::Revoke { id, admin } => {
                print_key(&admin.call(Method::DELETE, &format!("/keys/{id}"), None).await?, out)
            }
        },
        AdminCmd::Usage { key, from, to, admin } => {
            let mut q = Vec::new();
            for (k, v) in [("key", key), ("from", from), ("to", to)] {
                if let Some(v) = v {
                    q.push(format!("{k}={v}"));
                }
            }
            let path = if q.is_empty() { "/usage".to_string() } else { format!("/usage?{}", q.join("&")) };
            let v = admin.call(Method::GET, &path, None).await?;
            if out.json {
                return print_json(&v);
            }
            println!("usage from {} to {}", v["from"].as_str().unwrap_or(""), v["to"].as_str().unwrap_or(""));
            println!(
                "{:<10}  {:<16}  {:<24}  {:>8}  {:>10}  {:>10}  {:>22}  {:>6}  {:>22}",
                "day", "key", "model", "requests", "prompt", "completion", "cost", "free", "sponsored"
            );
            for r in v["rows"].as_array().into_iter().flatten() {
                println!(
                    "{:<10}  {:<16}  {:<24}  {:>8}  {:>10}  {:>10}  {:>22}  {:>6}  {:>22}",
                    r["day"].as_str().unwrap_or(""),
                    r["key"].as_str().unwrap_or(""),
                    r["model"].as_str().unwrap_or(""),
                    r["requests"].to_string(),
                    r["prompt_tokens"].to_string(),
                    r["completion_tokens"].to_string(),
                    tsr(&r["cost"]),
                    r["free_requests"].to_string(),
                    tsr(&r["sponsored_cost"])
                );
            }
            Ok(())
        }
        AdminCmd::Account { address, admin } => {
            let a = resolve_address(&address)?;
            let v = admin.call(Method::GET, &format!("/accounts/{a}"), None).await?;
            if out.json {
                return print_json(&v);
            }
            println!("account:    {a}");
            println!("deposited:  {}", tsr(&v["deposited"]));
            println!("spent:      {}", tsr(&v["spent"]));
            println!("reserved:   {}", tsr(&v["reserved"]));
            println!("balance:    {}", tsr(&v["balance"]));
            println!("staked:     {}", tsr(&v["staked"]));
            println!("free today: {} requests, {} tokens", v["free_requests"], v["free_tokens"]);
            println!("deposit to: {}", v["deposit_to"].as_str().unwrap_or(""));
            Ok(())
        }
        AdminCmd::Requests { id, after, limit, admin } => {
            let mut path = format!("/keys/{id}/requests?limit={limit}");
            if let Some(a) = after {
                path.push_str(&format!("&after={a}"));
            }
            let v = admin.call(Method::GET, &path, None).await?;
            if out.json {
                return print_json(&v);
            }
            println!(
                "{:>6}  {:>14}  {:<24}  {:>8}  {:>10}  {:>22}  free",
                "seq", "at_ms", "model", "prompt", "completion", "cost"
            );
            for r in v["requests"].as_array().into_iter().flatten() {
                println!(
                    "{:>6}  {:>14}  {:<24}  {:>8}  {:>10}  {:>22}  {}",
                    r["seq"].to_string(),
                    r["at_ms"].to_string(),
                    r["model"].as_str().unwrap_or(""),
                    r["prompt_tokens"].to_string(),
                    r["completion_tokens"].to_string(),
                    tsr(&r["cost"]),
                    r["free"]
                );
            }
            Ok(())
        }
    }
}
