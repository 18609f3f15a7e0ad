//! Shared by the end-to-end tests: a devnet process on a free port in a temp dir.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Waits for the line starting with `prefix` on `child`'s stdout (its ready line) and
/// returns it; panics after `secs`.
pub fn ready_line(child: &mut Child, prefix: &'static str, secs: u64) -> String {
    let stdout = child.stdout.take().expect("stdout piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with(prefix) {
                let _ = tx.send(line);
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(secs)).unwrap_or_else(|_| panic!("no {prefix:?} line within {secs} s"))
}

/// The value of `name=` in a ready line.
pub fn field(line: &str, name: &str) -> String {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name}= in {line}"))
        .to_string()
}

pub fn tessera() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tessera"))
}

/// Where the built-in models' weights are (`scripts/fetch-models.sh`).
pub fn models_dir() -> PathBuf {
    match std::env::var_os("TESSERA_MODELS_DIR").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/models"),
    }
}

/// A `tessera provider run` process.
pub struct ProviderProc {
    pub child: Child,
    pub api: String,
}

impl Drop for ProviderProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_provider(config: &Path, register: bool) -> ProviderProc {
    let mut cmd = tessera();
    cmd.args(["provider", "run", "--config"]).arg(config);
    if register {
        cmd.args(["--register-stake", "10"]);
    }
    let mut child = cmd.env("RUST_LOG", "warn").stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
    let line = ready_line(&mut child, "tessera provider ready:", 120);
    ProviderProc { child, api: field(&line, "api") }
}

/// A new unencrypted key in `dir`, funded with `tsr` TSR from the dev account.
pub fn funded_key(net: &Devnet, dir: &Path, name: &str, tsr: &str) -> (crypto::SigningKey, PathBuf) {
    let key = crypto::SigningKey::generate();
    let path = dir.join(format!("{name}.key"));
    wallet::keystore::write_new(&path, &wallet::keystore::unencrypted(&key)).unwrap();
    let dev_key = net.key.to_str().unwrap().to_string();
    cli(net, &["transfer", "--key", &dev_key, "--to", &key.address().to_string(), "--amount", tsr]);
    (key, path)
}

/// A provider config serving both built-in models at (embedding input, chat input, chat
/// output) prices, with `extra` top-level TOML lines and an optional generator precision.
pub fn provider_config(
    net: &Devnet,
    dir: &Path,
    name: &str,
    key: &Path,
    extra: &str,
    (embed_in, chat_in, chat_out): (u128, u128, u128),
    precision: Option<&str>,
) -> PathBuf {
    let precision = precision.map_or(String::new(), |p| format!("precision = \"{p}\"\n"));
    let config = dir.join(format!("{name}.toml"));
    let text = format!(
        r#"node = "{node}"
key = "{key}"
listen = "127.0.0.1:0"
data_dir = "{data}"
models_dir = "{models}"
{extra}
[[model]]
id = "all-MiniLM-L6-v2"
backend = "embedder"
input_price_per_mtok = "{embed_in}"
[[model]]
id = "SmolLM2-135M-Instruct"
backend = "generator"
{precision}input_price_per_mtok = "{chat_in}"
output_price_per_mtok = "{chat_out}"
"#,
        node = net.api,
        key = key.display(),
        data = dir.join(format!("{name}-data")).display(),
        models = models_dir().display(),
    );
    std::fs::write(&config, text).unwrap();
    config
}

/// `tessera ARGS` against the devnet; its stdout (panics on failure).
pub fn cli(net: &Devnet, args: &[&str]) -> String {
    let out = tessera().args(args).env("TESSERA_NODE", &net.api).env("RUST_LOG", "warn").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "tessera {args:?} failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

/// A child process killed when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `tessera gateway` paying from `key`; returns the process and its base URL.
pub fn start_gateway(net: &Devnet, key: &Path, extra: &[&str]) -> (Proc, String) {
    let key = key.to_str().unwrap();
    let mut args = vec!["--key", key, "--node", &net.api, "--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let (child, line) = spawn_gateway(&args);
    (Proc(child), field(&line, "base_url"))
}

/// `tessera gateway ARGS`: the process and its ready line.
pub fn spawn_gateway(args: &[&str]) -> (Child, String) {
    let mut child = tessera()
        .arg("gateway")
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let line = ready_line(&mut child, "tessera gateway ready:", 60);
    (child, line)
}

pub struct Devnet {
    pub child: Child,
    pub api: String,
    pub key: PathBuf,
    pub address: String,
    pub dir: PathBuf,
    /// The devnet's OpenAI-compatible gateway (base URL), when it runs.
    pub gateway: Option<String>,
    /// The devnet's API key for its gateway (from `DIR/openai.env`).
    pub openai_key: Option<String>,
}

impl Devnet {
    /// Starts `tessera devnet` on `dir` and waits for its ready line (deadline 60 s).
    pub fn start(dir: &Path, extra: &[&str]) -> Devnet {
        let mut child = tessera()
            .args(["devnet", "--data-dir"])
            .arg(dir)
            .args(["--http", "127.0.0.1:0"])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn tessera devnet");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("tessera devnet ready:") {
                    let _ = tx.send(line);
                }
            }
        });
        let line = rx.recv_timeout(Duration::from_secs(60)).expect("devnet ready line within 60 s");
        let field =
            |name: &str| line.split_whitespace().find_map(|w| w.strip_prefix(&format!("{name}="))).unwrap().to_string();
        Devnet {
            api: field("api"),
            key: PathBuf::from(field("key")),
            address: field("address"),
            gateway: line.split_whitespace().find_map(|w| w.strip_prefix("gateway=")).map(str::to_string),
            openai_key: line.split_whitespace().find_map(|w| w.strip_prefix("openai_env=")).map(|env| {
                let text = std::fs::read_to_string(env).expect("the devnet's openai.env");
                text.lines().find_map(|l| l.strip_prefix("OPENAI_API_KEY=")).expect("a key line").to_string()
            }),
            child,
            dir: dir.to_path_buf(),
        }
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "devnet did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn signing_key(&self) -> crypto::SigningKey {
        wallet::keystore::read(&self.key).unwrap().decrypt(None).unwrap()
    }
}

impl Drop for Devnet {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `f` until it returns Some, or panics after `secs`.
pub fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A transaction for the devnet chain, signed by `key`, paying the devnet's flat fee.
pub fn devnet_tx(key: &crypto::SigningKey, nonce: u64, action: primitives::Action) -> primitives::SignedTransaction {
    key.sign_tx(primitives::Transaction {
        chain_id: "tessera-devnet".into(),
        signer: key.address(),
        nonce,
        fee: primitives::Amount(1000),
        expiry_height: None,
        action,
    })
}
