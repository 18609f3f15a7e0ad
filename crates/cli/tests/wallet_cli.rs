//! End to end: a devnet node in a temporary directory, driven by the `tessera` binary's
//! wallet, transfer, balance, tx and asset commands.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_tessera");
const READY_TIMEOUT: Duration = Duration::from_secs(90);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(50);

/// Removes ANSI escape sequences (coloured log output).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// The value of `name=VALUE` in a line of output.
fn token(line: &str, name: &str) -> Option<String> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(name))
        .map(|v| v.trim_matches(|c: char| c == '"' || c == '\'' || c == ',').to_string())
        .filter(|v| !v.is_empty())
}

/// A running devnet; killed on drop.
struct Devnet {
    child: Child,
    api: String,
    key: PathBuf,
    home: PathBuf,
    log: Arc<Mutex<String>>,
    dir: tempfile::TempDir,
}

impl Drop for Devnet {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Devnet {
    fn start() -> Devnet {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let child = Command::new(BIN)
            .arg("devnet")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--http", "127.0.0.1:0"])
            .current_dir(dir.path())
            .env("TESSERA_HOME", &home)
            .env("NO_COLOR", "1")
            .env_remove("TESSERA_PASSPHRASE")
            .env_remove("TESSERA_NODE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tessera devnet");
        let mut net = Devnet { child, api: String::new(), key: PathBuf::new(), home, log: Arc::default(), dir };
        let (tx, rx) = mpsc::channel::<String>();
        let stdout = net.child.stdout.take().unwrap();
        let stderr = net.child.stderr.take().unwrap();
        for stream in [Box::new(stdout) as Box<dyn std::io::Read + Send>, Box::new(stderr)] {
            let (tx, log) = (tx.clone(), net.log.clone());
            // Keeps draining the pipe for the node's whole life, so it never blocks on it.
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    let line = strip_ansi(&line);
                    log.lock().unwrap().push_str(&format!("{line}\n"));
                    let _ = tx.send(line);
                }
            });
        }
        drop(tx);
        let deadline = Instant::now() + READY_TIMEOUT;
        let (mut api, mut key) = (None, None);
        while api.is_none() || key.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    api = api.or_else(|| token(&line, "api="));
                    key = key.or_else(|| token(&line, "key="));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("devnet not ready within {READY_TIMEOUT:?}; output:\n{}", net.log())
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    panic!("devnet exited ({:?}) before it was ready; output:\n{}", net.child.try_wait(), net.log())
                }
            }
        }
        net.api = api.unwrap();
        let key = PathBuf::from(key.unwrap());
        net.key = if key.is_relative() { net.dir.path().join(key) } else { key };
        assert!(net.key.is_file(), "dev key {} missing", net.key.display());
        net
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn key(&self) -> &str {
        self.key.to_str().unwrap()
    }

    /// Runs `tessera ARGS` against this node, with extra environment `env`.
    fn cli(&self, env: &[(&str, &str)], args: &[&str]) -> Run {
        let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let out_path = self.dir.path().join(format!("run{n}.out"));
        let err_path = self.dir.path().join(format!("run{n}.err"));
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env("TESSERA_HOME", &self.home)
            .env("TESSERA_NODE", &self.api)
            .env("NO_COLOR", "1")
            .env_remove("TESSERA_PASSPHRASE")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out_path).unwrap())
            .stderr(std::fs::File::create(&err_path).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn tessera");
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("tessera {args:?} still running after {COMMAND_TIMEOUT:?}");
            }
            std::thread::sleep(POLL);
        };
        let run = Run {
            args: args.iter().map(|s| s.to_string()).collect(),
            ok: status.success(),
            stdout: std::fs::read_to_string(out_path).unwrap(),
            stderr: std::fs::read_to_string(err_path).unwrap(),
        };
        assert!(!run.stderr.contains("panicked"), "tessera panicked: {run:?}");
        run
    }

    fn ok(&self, env: &[(&str, &str)], args: &[&str]) -> Run {
        let run = self.cli(env, args);
        assert!(run.ok, "expected success: {run:?}\nnode log:\n{}", self.log());
        run
    }

    fn fails(&self, env: &[(&str, &str)], args: &[&str]) -> Run {
        let run = self.cli(env, args);
        assert!(!run.ok, "expected failure: {run:?}");
        assert!(!run.stderr.trim().is_empty(), "failure without a message: {run:?}");
        run
    }

    fn json(&self, env: &[(&str, &str)], args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        self.ok(env, &all).json()
    }

    /// Base units of `asset` held by `who` (address, wallet name or key file).
    fn balance(&self, who: &str, asset: &str) -> u128 {
        let view = self.json(&[], &["balance", who, "--asset", asset]);
        view["balances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["asset"] == asset)
            .map_or(0, |b| b["balance"].as_str().unwrap().parse().unwrap())
    }
}

static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

#[derive(Debug)]
#[allow(dead_code)]
struct Run {
    args: Vec<String>,
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not one JSON value ({e}): {self:?}"))
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn wallet_transfer_balance_and_assets_end_to_end() {
    let net = Devnet::start();
    let wallets = net.dir.path().join("wallets");
    let wdir = path_str(&wallets);
    let dev = net.json(&[], &["wallet", "address", net.key()])["address"].as_str().unwrap().to_string();
    assert!(dev.starts_with("tsr1"));

    // An unencrypted wallet in a chosen directory.
    let alice = net.json(&[], &["wallet", "new", "--name", "alice", "--unencrypted", "--dir", wdir]);
    assert_eq!(alice["encrypted"], false);
    let alice_addr = alice["address"].as_str().unwrap().to_string();
    let alice_key = alice["path"].as_str().unwrap().to_string();
    assert_eq!(Path::new(&alice_key), wallets.join("alice.json"));
    // Names are never reused.
    let again = net.fails(&[], &["wallet", "new", "--name", "alice", "--unencrypted", "--dir", wdir]);
    assert!(again.stderr.contains("already exists"), "{again:?}");
    let listed = net.json(&[], &["wallet", "list", "--dir", wdir]);
    assert_eq!(listed[0]["name"], "alice");

    // 12.5 TSR to alice, human output.
    let run = net.ok(&[], &["transfer", "--key", net.key(), "--to", &alice_addr, "--amount", "12.5"]);
    assert!(run.stdout.contains("committed") && run.stdout.contains(": success"), "{run:?}");
    let view = net.json(&[], &["balance", &alice_addr]);
    let tsr = view["balances"].as_array().unwrap().iter().find(|b| b["asset"] == "TSR").expect("alice holds TSR");
    assert_eq!(tsr["balance"], "12500000000");
    // The balance of a key file, human-readable, with an explicit --node.
    let human = net.ok(&[], &["balance", &alice_key, "--node", &net.api]);
    assert!(human.stdout.contains("12.5"), "{human:?}");

    // Amounts are exact: more decimals than TSR has is an error, not a rounding.
    let run = net.fails(&[], &["transfer", "--key", net.key(), "--to", &alice_addr, "--amount", "0.0000000001"]);
    assert!(run.stderr.contains("decimal places"), "{run:?}");
    let run = net.fails(&[], &["transfer", "--key", net.key(), "--to", &alice_addr, "--amount", "1", "--asset", "XYZ"]);
    assert!(run.stderr.contains("unknown asset XYZ; known: "), "{run:?}");

    // More than alice holds: included, rejected, fee charged, non-zero exit.
    let before = net.balance(&alice_addr, "TSR");
    let run = net.fails(&[], &["transfer", "--key", &alice_key, "--to", &dev, "--amount", "100"]);
    assert!(run.stderr.contains("insufficient_funds"), "{run:?}");
    assert!(net.balance(&alice_addr, "TSR") <= before);

    // JSON output is the TxView; `tx` finds it again.
    let committed = net.json(&[], &["transfer", "--key", net.key(), "--to", &alice_addr, "--amount", "0.25"]);
    assert_eq!(committed["status"], "committed");
    assert_eq!(committed["receipt"]["status"], "success");
    let hash = committed["tx_hash"].as_str().unwrap().to_string();
    let again = net.json(&[], &["tx", &hash]);
    assert_eq!(again["tx_hash"], hash.as_str());
    let human = net.ok(&[], &["tx", &hash]);
    assert!(human.stdout.contains("committed"), "{human:?}");
    let unknown = "ab".repeat(32);
    let run = net.fails(&[], &["tx", &unknown]);
    assert!(run.stderr.contains(&format!("transaction {unknown} not found")), "{run:?}");

    // --no-wait returns at once; the transaction commits later.
    let pending = net.json(&[], &["transfer", "--key", net.key(), "--to", &alice_addr, "--amount", "1", "--no-wait"]);
    assert_eq!(pending["status"], "pending");
    let hash = pending["tx_hash"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let view = net.json(&[], &["tx", &hash]);
        if view["status"] == "committed" {
            break;
        }
        assert!(Instant::now() < deadline, "not committed in time: {view}");
        std::thread::sleep(POLL);
    }

    // Assets: create, mint, burn, and the max supply.
    net.ok(
        &[],
        &["asset", "create", "--key", net.key(), "--symbol", "GOLD", "--decimals", "2", "--max-supply", "1000"],
    );
    let run = net.fails(&[], &["asset", "create", "--key", net.key(), "--symbol", "GOLD", "--decimals", "2"]);
    assert!(run.stderr.contains("GOLD"), "{run:?}");
    net.ok(&[], &["asset", "mint", "--key", net.key(), "--asset", "GOLD", "--to", &alice_addr, "--amount", "250.5"]);
    assert_eq!(net.balance(&alice_addr, "GOLD"), 25050);
    net.ok(&[], &["asset", "mint", "--key", net.key(), "--asset", "GOLD", "--to", &dev, "--amount", "10"]);
    net.ok(&[], &["asset", "burn", "--key", net.key(), "--asset", "GOLD", "--amount", "4.25"]);
    assert_eq!(net.balance(&dev, "GOLD"), 575);
    let run =
        net.fails(&[], &["asset", "mint", "--key", net.key(), "--asset", "GOLD", "--to", &dev, "--amount", "800"]);
    assert!(run.stderr.contains("max_supply_exceeded"), "{run:?}");
    let run =
        net.fails(&[], &["asset", "mint", "--key", net.key(), "--asset", "GOLD", "--to", &dev, "--amount", "0.001"]);
    assert!(run.stderr.contains("decimal places"), "{run:?}");
    let assets = net.json(&[], &["asset", "list"]);
    let gold = assets.as_array().unwrap().iter().find(|a| a["symbol"] == "GOLD").expect("GOLD listed");
    assert_eq!(gold["supply"], (25050 + 1000 - 425).to_string());
    assert_eq!(gold["decimals"], 2);

    // An encrypted wallet, unlocked through TESSERA_PASSPHRASE.
    let pw = [("TESSERA_PASSPHRASE", "correct horse")];
    let bob = net.json(&pw, &["wallet", "new", "--name", "bob", "--dir", wdir]);
    assert_eq!(bob["encrypted"], true);
    let bob_addr = bob["address"].as_str().unwrap().to_string();
    let bob_key = bob["path"].as_str().unwrap().to_string();
    let stored = std::fs::read_to_string(&bob_key).unwrap();
    assert!(!stored.contains("secret_seed"), "{stored}");
    net.ok(&[], &["transfer", "--key", net.key(), "--to", &bob_addr, "--amount", "2"]);
    net.ok(&pw, &["transfer", "--key", &bob_key, "--to", &alice_addr, "--amount", "0.5"]);
    let run = net.fails(
        &[("TESSERA_PASSPHRASE", "wrong")],
        &["transfer", "--key", &bob_key, "--to", &alice_addr, "--amount", "0.5"],
    );
    assert!(run.stderr.contains("wrong passphrase"), "{run:?}");
    // A wallet name resolves in $TESSERA_HOME/wallets.
    let named = net.json(&pw, &["wallet", "new", "--name", "carol"]);
    assert_eq!(Path::new(named["path"].as_str().unwrap()), net.home.join("wallets/carol.json"));
    let carol = named["address"].as_str().unwrap().to_string();
    net.ok(&[], &["transfer", "--key", net.key(), "--to", &carol, "--amount", "1"]);
    assert_eq!(net.balance("carol", "TSR"), 1_000_000_000);

    // No node there: a clear one-line error.
    let run = net.fails(&[], &["balance", &alice_addr, "--node", "http://127.0.0.1:9"]);
    assert!(run.stderr.contains("could not reach the node at http://127.0.0.1:9"), "{run:?}");
}

/// The compliant sale through the binary: attest and bind, an offering from a TOML file,
/// an eligible and an ineligible commitment (the rejection changes nothing but the fee),
/// the dev clock, settlement, a claim with a vesting lot, restriction codes, reports.
#[test]
fn sale_compliance_and_vesting_end_to_end() {
    let net = Devnet::start();
    let wallets = net.dir.path().join("wallets");
    let wdir = path_str(&wallets);
    let dev = net.key().to_string();
    let mut addr = Vec::new();
    for name in ["ann", "ben"] {
        let w = net.json(&[], &["wallet", "new", "--name", name, "--unencrypted", "--dir", wdir]);
        let a = w["address"].as_str().unwrap().to_string();
        net.ok(&[], &["transfer", "--key", &dev, "--to", &a, "--amount", "10"]);
        net.ok(&[], &["asset", "mint", "--key", &dev, "--asset", "USD", "--to", &a, "--amount", "1000"]);
        addr.push((a, w["path"].as_str().unwrap().to_string()));
    }
    let ((ann, ann_key), (ben, ben_key)) = (addr[0].clone(), addr[1].clone());

    // Compliance (the devnet key holds every role).
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let day = 86_400_000u64;
    let date = |ms: u64| ledger::vesting::format_utc(ms)[..10].to_string();
    let kyc = date(now + 365 * day);
    let run = net.ok(
        &[],
        &[
            "compliance",
            "attest",
            "--key",
            &dev,
            "--entity",
            "ann-kyc-1",
            "--jurisdiction",
            "DE",
            "--kyc-expires",
            &kyc,
            "--list",
            "ofac-test",
        ],
    );
    assert!(run.stdout.contains("entity ") && run.stdout.contains("success"), "{run:?}");
    net.ok(
        &[],
        &[
            "compliance",
            "attest",
            "--key",
            &dev,
            "--entity",
            "ben-kyc-1",
            "--jurisdiction",
            "US",
            "--us-person",
            "--kyc-expires",
            &kyc,
            "--list",
            "ofac-test",
        ],
    );
    net.ok(&[], &["compliance", "bind", "--key", &dev, "--entity", "ann-kyc-1", "--wallet", &ann]);
    net.ok(&[], &["compliance", "bind", "--key", &dev, "--entity", "ben-kyc-1", "--wallet", &ben]);
    let shown = net.json(&[], &["compliance", "show", "--entity", "ann-kyc-1"]);
    assert_eq!(shown["wallets"][0], ann.as_str());
    assert_eq!(shown["attestation"]["jurisdiction"], "DE");
    // Only the compliance role attests.
    let run = net.fails(&[], &["compliance", "revoke", "--key", &ann_key, "--entity", "ben-kyc-1"]);
    assert!(run.stderr.contains("not_compliance_role"), "{run:?}");

    // A Reg S offering: 1,000 TSR at $0.50, lots 50% at the close then monthly over 2 months.
    let closes = date(now + 2 * day);
    let config = net.dir.path().join("offering.toml");
    std::fs::write(
        &config,
        format!(
            r#"
name = "e2e sale"
asset = "TSR"
quote = "USD"
[[tranche]]
name = "Reg S"
exemption = "reg_s"
dcp_days = 40
us_persons = "excluded"
supply = "1000"
opens = "2020-01-01"
closes = "{closes}"
max_per_entity = "500"
mechanism = {{ kind = "fixed_price", price = "0.5" }}
lot = {{ resale = "non_us_only_during_dcp", vesting = {{ kind = "monthly", start = "{closes}", months = 2, tge_percent = "50" }} }}
"#
        ),
    )
    .unwrap();
    let cfg = path_str(&config);
    net.ok(&[], &["sale", "check", "--config", cfg]);
    let run = net.ok(&[], &["sale", "create", "--key", &dev, "--config", cfg]);
    assert!(run.stdout.contains("offering 1 created"), "{run:?}");
    net.ok(&[], &["sale", "commit", "--key", &ann_key, "--offering", "1", "--amount", "400"]);
    let (ben_usd, ben_tsr) = (net.balance(&ben, "USD"), net.balance(&ben, "TSR"));
    let run = net.fails(&[], &["sale", "commit", "--key", &ben_key, "--offering", "1", "--amount", "100"]);
    assert!(run.stderr.contains("us_person_excluded"), "{run:?}");
    assert_eq!(net.balance(&ben, "USD"), ben_usd, "a rejected commitment moves no money");
    assert_eq!(net.balance(&ben, "TSR"), ben_tsr - 1_000, "only the fee is charged");
    let run = net.fails(&[], &["sale", "finalize", "--key", &dev, "--offering", "1"]);
    assert!(run.stderr.contains("offering_still_open"), "{run:?}");

    // Past the close: settle, claim, vest.
    let run = net.ok(&[], &["advance-clock", "--days", "3"]);
    assert!(run.stdout.contains("block time is now"), "{run:?}");
    net.ok(&[], &["sale", "finalize", "--key", &dev, "--offering", "1"]);
    let status = net.json(&[], &["sale", "status", "1"]);
    assert_eq!(status["status"], "settled");
    assert_eq!(status["tranches"][0]["settlement"]["tokens_sold"], "800000000000");
    assert_eq!(status["tranches"][0]["settlement"]["proceeds"], "400000000");
    let tsr_before = net.balance(&ann, "TSR");
    net.ok(&[], &["sale", "claim", "--key", &ann_key, "--offering", "1"]);
    assert_eq!(net.balance(&ann, "TSR"), tsr_before + 800_000_000_000 - 1_000);
    assert_eq!(net.balance(&ann, "USD"), 600_000_000);
    let grants = net.json(&[], &["vesting", "status", "--address", &ann]);
    assert_eq!(grants[0]["total"], "800000000000");
    assert_eq!(grants[0]["source"], "sale:1:0");
    // Half is locked: moving 600 of ~809 TSR (even to herself, an eligible recipient) is
    // refused with the restriction code.
    let run = net.fails(&[], &["transfer", "--key", &ann_key, "--to", &ann, "--amount", "600"]);
    assert!(run.stderr.contains("locked"), "{run:?}");
    // During the DCP, a U.S. person cannot receive.
    let run = net.fails(&[], &["transfer", "--key", &ann_key, "--to", &ben, "--amount", "1"]);
    assert!(run.stderr.contains("recipient_ineligible"), "{run:?}");

    // Reports and the issuer's proceeds.
    let report = net.ok(&[], &["sale", "report", "--offering", "1", "--csv"]);
    assert!(report.stdout.contains("0,DE,1,400000000,800000000000,400000000,0"), "{report:?}");
    let table = net.ok(&[], &["sale", "captable", "--csv"]);
    assert!(table.stdout.lines().any(|l| l.starts_with(&ann) && l.ends_with(",retail,DE")), "{table:?}");
    net.ok(&[], &["sale", "withdraw", "--key", &dev, "--offering", "1"]);
    assert_eq!(net.balance(&dev, "USD"), 400_000_000);
    // The audit trail holds the attestations, the refused commitment and the restriction refusals.
    let audit = net.ok(&[], &["sale", "audit", "--csv"]);
    for needle in [",attest_entity,", ",commit,", "us_person_excluded", "recipient_ineligible", ",locked"] {
        assert!(audit.stdout.contains(needle), "audit lacks {needle}: {audit:?}");
    }
    let run = net.fails(&[], &["sale", "status", "99"]);
    assert!(run.stderr.contains("no offering 99"), "{run:?}");

    // kill -9, then re-execute every block from genesis (sale records and dev-clock block
    // times included), checking every state root and the invariants.
    let mut net = net;
    net.child.kill().unwrap();
    net.child.wait().unwrap();
    let data = net.dir.path().join("data");
    let run = net.ok(&[], &["node", "replay", "--data-dir", path_str(&data)]);
    assert!(run.stdout.contains("state root"), "{run:?}");
}

/// `tessera demo ico` runs a whole sale on its own temporary devnet and checks its report.
#[test]
fn demo_ico_runs_and_its_report_adds_up() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["--json", "demo", "ico", "--investors", "100"])
        .env("TESSERA_HOME", dir.path())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "demo failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["adds_up"], true, "{v}");
    for code in
        ["accepted", "jurisdiction_blocked", "investor_class_not_allowed", "accreditation_expired", "sanctioned"]
    {
        assert!(v["outcomes"][code].as_u64().unwrap_or(0) > 0, "no {code} outcome: {v}");
    }
    let n = |k: &str| v[k].as_str().unwrap().parse::<u128>().unwrap();
    assert_eq!(n("accepted_usd") + n("refunded_usd"), n("committed_usd"));
    assert_eq!(n("proceeds_withdrawn_usd"), n("accepted_usd"));
}

/// Provider registration and a payment channel through the binary: open, a signed
/// voucher, a bad voucher refused, a partial claim, the replay refused, reclaim after
/// expiry.
#[test]
fn provider_and_channel_end_to_end() {
    let net = Devnet::start();
    let wallets = net.dir.path().join("wallets");
    let wdir = path_str(&wallets);
    let dev = net.key().to_string();
    let p = net.json(&[], &["wallet", "new", "--name", "prov", "--unencrypted", "--dir", wdir]);
    let (prov, prov_key) = (p["address"].as_str().unwrap().to_string(), p["path"].as_str().unwrap().to_string());
    net.ok(&[], &["transfer", "--key", &dev, "--to", &prov, "--amount", "100"]);
    net.ok(
        &[],
        &[
            "provider",
            "register",
            "--key",
            &prov_key,
            "--endpoint",
            "http://127.0.0.1:8700",
            "--model",
            "SmolLM2-135M-Instruct:0.1:0.4",
            "--stake",
            "50",
        ],
    );
    let listed = net.json(&[], &["provider", "list"]);
    assert_eq!(listed[0]["address"], prov.as_str());
    assert_eq!(listed[0]["models"][0]["output_price_per_mtok"], "400000000");
    let run = net.fails(
        &[],
        &["provider", "register", "--key", &prov_key, "--endpoint", "ftp://x", "--model", "m:1:1", "--stake", "1"],
    );
    assert!(run.stderr.contains("http(s) URL"), "{run:?}");

    let run =
        net.ok(&[], &["channel", "open", "--key", &dev, "--to", &prov, "--amount", "10", "--expiry-blocks", "30"]);
    assert!(run.stdout.contains("channel 1 open"), "{run:?}");
    let v = net.json(&[], &["channel", "voucher", "--key", &dev, "--channel", "1", "--amount", "3"]);
    let sig = v["signature"].as_str().unwrap().to_string();
    // A voucher for 3 TSR cannot be claimed as 4.
    let run = net.fails(
        &[],
        &["channel", "claim", "--key", &prov_key, "--channel", "1", "--voucher-amount", "4", "--signature", &sig],
    );
    assert!(run.stderr.contains("bad_voucher_signature"), "{run:?}");
    let before = net.balance(&prov, "TSR");
    net.ok(
        &[],
        &[
            "channel",
            "claim",
            "--key",
            &prov_key,
            "--channel",
            "1",
            "--voucher-amount",
            "3",
            "--signature",
            &sig,
            "--amount",
            "2",
        ],
    );
    assert_eq!(net.balance(&prov, "TSR"), before + 2_000_000_000 - 1_000);
    // The nonce moved: the same voucher is dead.
    let run = net.fails(
        &[],
        &["channel", "claim", "--key", &prov_key, "--channel", "1", "--voucher-amount", "3", "--signature", &sig],
    );
    assert!(run.stderr.contains("bad_voucher_signature"), "{run:?}");
    let status = net.json(&[], &["channel", "status", "--channel", "1"]);
    assert_eq!(status[0]["claimed"], "2000000000");
    assert_eq!(status[0]["nonce"], "1");
    // Not yet expired; push a few blocks, then reclaim the rest.
    let run = net.fails(&[], &["channel", "reclaim", "--key", &dev, "--channel", "1"]);
    assert!(run.stderr.contains("channel_not_expired"), "{run:?}");
    while net.json(&[], &["channel", "status", "--channel", "1"])[0]["expired"] == false {
        net.ok(&[], &["transfer", "--key", &dev, "--to", &prov, "--amount", "0.001"]);
    }
    net.ok(&[], &["channel", "reclaim", "--key", &dev, "--channel", "1"]);
    let status = net.json(&[], &["channel", "status", "--address", &prov]);
    assert_eq!(status[0]["escrowed"], "0");
    assert_eq!(status[0]["reclaimed"], "8000000000");
}

/// Polls `tessera --json network show` until `done` holds (each epoch is 5 s on the devnet).
fn wait_network(net: &Devnet, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = net.json(&[], &["network", "show"]);
        if done(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "waited 60 s for {what}; network: {v}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn incentive_network_end_to_end() {
    let net = Devnet::start();
    let wallets = net.dir.path().join("wallets");
    let wdir = path_str(&wallets);
    let dev = net.key().to_string();
    let mut keys = Vec::new();
    for name in ["eval", "prov"] {
        let w = net.json(&[], &["wallet", "new", "--name", name, "--unencrypted", "--dir", wdir]);
        let (a, k) = (w["address"].as_str().unwrap().to_string(), w["path"].as_str().unwrap().to_string());
        net.ok(&[], &["transfer", "--key", &dev, "--to", &a, "--amount", "1000"]);
        keys.push((a, k));
    }
    let ((eval, eval_key), (prov, prov_key)) = (keys[0].clone(), keys[1].clone());
    let before = net.balance(&eval, "TSR");
    let run = net.ok(&[], &["neuron", "register", "--key", &eval_key]);
    assert!(run.stdout.contains("registered") && run.stdout.contains("as uid 0"), "{run:?}");
    let paid = before - net.balance(&eval, "TSR");
    assert!(paid > 1_000 && paid <= 1_000_000_000 + 1_000, "fee + tx fee {paid}");
    net.ok(&[], &["neuron", "register", "--key", &prov_key]);
    let run = net.fails(&[], &["neuron", "register", "--key", &prov_key]);
    assert!(run.stderr.contains("neuron_exists"), "{run:?}");
    net.ok(&[], &["stake", "add", "--key", &eval_key, "--evaluator", &eval, "--amount", "100"]);
    let run = net.fails(&[], &["stake", "add", "--key", &dev, "--evaluator", &dev, "--amount", "1"]);
    assert!(run.stderr.contains("not_evaluator"), "{run:?}");
    // Weights need a permit, which the next epoch gives the staked evaluator.
    let run = net.fails(&[], &["neuron", "weights", "--key", &eval_key, "1=1"]);
    assert!(run.stderr.contains("no_validator_permit"), "{run:?}");
    let v = wait_network(&net, "a permit", |v| v["neurons"][0]["validator_permit"] == true);
    let epochs = v["epochs"].as_u64().unwrap();
    net.ok(&[], &["neuron", "weights", "--key", &eval_key, "1=1"]);
    let v = wait_network(&net, "two epochs with weights", |v| {
        v["epochs"].as_u64().unwrap() >= epochs + 2 && v["neurons"][1]["incentive"].as_f64().unwrap() > 0.0
    });
    assert_eq!(v["neurons"][0]["role"], "evaluator");
    assert!(v["neurons"][0]["dividends"].as_f64().unwrap() > 0.99, "{v}");
    assert!(v["neurons"][1]["incentive"].as_f64().unwrap() > 0.99, "{v}");
    assert!(net.balance(&prov, "TSR") > 1_000_000_000_000 - 2_000_000_000, "the provider was paid");
    let table = net.ok(&[], &["network", "show"]).stdout;
    assert!(table.contains("UID") && table.contains("evaluator") && table.contains(&prov), "{table}");
    let n = net.json(&[], &["network", "neuron", "0"]);
    assert_eq!(n["weights"][0][0], 1);
    assert_eq!(n["weights"][0][1], 65535);
    // Dividends compound into the evaluator's pool.
    let s = net.json(&[], &["stake", "show", &eval]);
    let staked: u128 = s["staked"].as_str().unwrap().parse().unwrap();
    assert!(staked > 100_000_000_000, "{s}");
    net.ok(&[], &["stake", "remove", "--key", &eval_key, "--evaluator", &eval, "--amount", "10"]);
    let s = net.json(&[], &["stake", "show", &eval]);
    assert_eq!(s["unbonding"][0]["amount"], "10000000000");
    let run = net.fails(&[], &["stake", "withdraw", "--key", &eval_key]);
    assert!(run.stderr.contains("nothing_unbonded"), "{run:?}");
    let run = net.fails(&[], &["stake", "take", "--key", &eval_key, "--percent", "19"]);
    assert!(run.stderr.contains("take_too_high"), "{run:?}");
    net.ok(&[], &["stake", "take", "--key", &eval_key, "--percent", "9.5"]);
}
