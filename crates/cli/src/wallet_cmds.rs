//! Wallet, transfer, balance, tx, asset and role commands: key files on disk, and
//! transactions built, signed and submitted through a node's HTTP API.

use anyhow::{anyhow, bail, Result};
use api_types::{AccountView, AssetView, BalanceView, ChainInfo, TxView};
use clap::{Args, Subcommand};
use crypto::SigningKey;
use primitives::limits::ASSET_DECIMALS_MAX;
use primitives::{Action, Address, Amount, AssetId, Hash, Role, Transaction};
use std::path::{Path, PathBuf};
use std::time::Duration;
use wallet::client::{Client, ClientError};
use wallet::keystore::{self, KdfParams, KeyFile};
use wallet::{WalletDir, Zeroizing, PASSPHRASE_ENV};

/// How results are printed: human-readable lines, or one JSON value on stdout.
pub struct Output {
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum WalletCmd {
    /// Generate a new key and store it as a named wallet (encrypted unless --unencrypted).
    New {
        #[arg(long)]
        name: String,
        /// Store the secret in plain hex (development keys only).
        #[arg(long)]
        unencrypted: bool,
        /// Wallet directory [default: $TESSERA_HOME/wallets or ~/.tessera/wallets]
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// List the wallets in the wallet directory.
    List {
        /// Wallet directory [default: $TESSERA_HOME/wallets or ~/.tessera/wallets]
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Print the address of a wallet (or key file).
    Address {
        /// Wallet name, or a key file path
        name: String,
        /// Wallet directory [default: $TESSERA_HOME/wallets or ~/.tessera/wallets]
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Store an existing key as a named wallet.
    Import {
        #[arg(long)]
        name: String,
        #[arg(
            long,
            help = "hex secret seed (32 bytes); \"-\" reads it from stdin",
            conflicts_with = "from_file",
            required_unless_present = "from_file"
        )]
        secret_hex: Option<String>,
        /// An existing key file to copy (re-encrypting it, or storing it unencrypted)
        #[arg(long)]
        from_file: Option<PathBuf>,
        /// Store the secret in plain hex (development keys only).
        #[arg(long)]
        unencrypted: bool,
        /// Wallet directory [default: $TESSERA_HOME/wallets or ~/.tessera/wallets]
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[derive(Args, Debug, Clone)]
pub struct NodeArg {
    /// The node's HTTP API
    #[arg(long, env = "TESSERA_NODE", default_value = "http://127.0.0.1:8645", global = true)]
    pub node: String,
}

#[derive(Args, Debug)]
pub struct TransferArgs {
    /// Key file path, or wallet name
    #[arg(long)]
    pub key: String,
    /// Recipient address (tsr1...)
    #[arg(long)]
    pub to: Address,
    /// Decimal amount, e.g. 12.5
    #[arg(long)]
    pub amount: String,
    #[arg(long, default_value = "TSR")]
    pub asset: AssetId,
    /// Return once the node accepted the transaction, without waiting for a block
    #[arg(long)]
    pub no_wait: bool,
    /// Fee in TSR, decimal [default: the chain's flat fee]
    #[arg(long)]
    pub fee: Option<String>,
    /// Last height at which the transaction may be included
    #[arg(long)]
    pub expiry_height: Option<u64>,
    /// How long to wait for the transaction to be committed
    #[arg(long, default_value_t = 60)]
    pub timeout_secs: u64,
    #[command(flatten)]
    pub node: NodeArg,
}

#[derive(Args, Debug)]
pub struct BalanceArgs {
    /// A tsr1 address, or a wallet name / key file whose address is used
    pub address: String,
    /// Show only this asset
    #[arg(long)]
    pub asset: Option<AssetId>,
    #[command(flatten)]
    pub node: NodeArg,
}

#[derive(Args, Debug)]
pub struct TxArgs {
    /// Transaction hash (64 hex characters)
    pub hash: Hash,
    #[command(flatten)]
    pub node: NodeArg,
}

#[derive(Subcommand, Debug)]
pub enum AssetCmd {
    /// Create an asset; the signer becomes its issuer.
    Create {
        /// Key file path, or wallet name
        #[arg(long)]
        key: String,
        /// 1-12 characters of A-Z and 0-9, starting with a letter
        #[arg(long)]
        symbol: AssetId,
        #[arg(long)]
        decimals: u8,
        /// Largest total supply, decimal [default: unlimited]
        #[arg(long)]
        max_supply: Option<String>,
        #[arg(long)]
        no_wait: bool,
        #[command(flatten)]
        node: NodeArg,
    },
    /// Mint new units of an asset (issuer only).
    Mint {
        /// Key file path, or wallet name
        #[arg(long)]
        key: String,
        #[arg(long)]
        asset: AssetId,
        #[arg(long)]
        to: Address,
        /// Decimal amount
        #[arg(long)]
        amount: String,
        #[arg(long)]
        no_wait: bool,
        #[command(flatten)]
        node: NodeArg,
    },
    /// Burn units of an asset from the signer's balance (issuer only).
    Burn {
        /// Key file path, or wallet name
        #[arg(long)]
        key: String,
        #[arg(long)]
        asset: AssetId,
        /// Decimal amount
        #[arg(long)]
        amount: String,
        #[arg(long)]
        no_wait: bool,
        #[command(flatten)]
        node: NodeArg,
    },
    /// List the chain's assets.
    List {
        #[command(flatten)]
        node: NodeArg,
    },
}

#[derive(Subcommand, Debug)]
pub enum RoleCmd {
    /// Appoint the holder of a role (genesis issuer only).
    Set {
        /// Key file path, or wallet name
        #[arg(long)]
        key: String,
        /// compliance, custodian or treasury
        #[arg(long)]
        role: Role,
        #[arg(long)]
        address: Address,
        #[arg(long)]
        no_wait: bool,
        #[command(flatten)]
        node: NodeArg,
    },
}

const DEFAULT_WAIT_SECS: u64 = 60;

// ---------------------------------------------------------------------------------------
// wallet

pub async fn run_wallet(cmd: WalletCmd, out: &Output) -> Result<()> {
    match cmd {
        WalletCmd::New { name, unencrypted, dir } => {
            let dir = wallet_dir(dir);
            check_new_wallet(&dir, &name)?;
            let key = SigningKey::generate();
            let file = seal(&key, unencrypted)?;
            let path = store(&dir, &name, &file)?;
            print_wallet("created", &name, &file, &path, out)
        }
        WalletCmd::List { dir } => {
            let dir = wallet_dir(dir);
            let wallets = dir.list().map_err(|e| anyhow!("cannot list wallets in {}: {e}", dir.root().display()))?;
            if out.json {
                let list: Vec<_> = wallets
                    .iter()
                    .map(|(name, address, encrypted)| {
                        serde_json::json!({
                            "name": name,
                            "address": address,
                            "encrypted": encrypted,
                            "path": dir.path(name),
                        })
                    })
                    .collect();
                return print_json(&list);
            }
            if wallets.is_empty() {
                println!("no wallets in {}", dir.root().display());
                return Ok(());
            }
            let width = wallets.iter().map(|w| w.0.len()).max().unwrap_or(0).max(4);
            println!("{:width$}  {:<63}  ENCRYPTED", "NAME", "ADDRESS");
            for (name, address, encrypted) in &wallets {
                let enc = if *encrypted { "yes" } else { "no" };
                println!("{name:width$}  {:<63}  {enc}", address.to_string());
            }
            Ok(())
        }
        WalletCmd::Address { name, dir } => {
            let path = match dir {
                Some(dir) => {
                    if !wallet::is_valid_wallet_name(&name) {
                        bail!("{}", wallet::WalletError::InvalidName(name));
                    }
                    WalletDir::new(dir).path(&name)
                }
                None => wallet::resolve_key_path(&name),
            };
            let file = read_key_file(&name, &path)?;
            let address = key_file_address(&file)?;
            if out.json {
                return print_json(&serde_json::json!({
                    "name": name,
                    "address": address,
                    "path": path,
                    "encrypted": file.is_encrypted(),
                }));
            }
            println!("{address}");
            Ok(())
        }
        WalletCmd::Import { name, secret_hex, from_file, unencrypted, dir } => {
            let dir = wallet_dir(dir);
            check_new_wallet(&dir, &name)?;
            let key = match (secret_hex, from_file) {
                (Some(hex), None) => key_from_hex(&hex)?,
                (None, Some(path)) => load_key_at(&path.display().to_string(), &path)?,
                _ => bail!("give exactly one of --secret-hex and --from-file"),
            };
            let file = seal(&key, unencrypted)?;
            let path = store(&dir, &name, &file)?;
            print_wallet("imported", &name, &file, &path, out)
        }
    }
}

fn wallet_dir(dir: Option<PathBuf>) -> WalletDir {
    dir.map(WalletDir::new).unwrap_or_else(WalletDir::default_location)
}

/// Fails early (before prompting for passphrases) on a bad or taken name.
fn check_new_wallet(dir: &WalletDir, name: &str) -> Result<()> {
    if !wallet::is_valid_wallet_name(name) {
        bail!("{}", wallet::WalletError::InvalidName(name.to_string()));
    }
    let path = dir.path(name);
    if path.exists() {
        bail!("{}", wallet::WalletError::Exists { name: name.to_string(), path });
    }
    Ok(())
}

fn store(dir: &WalletDir, name: &str, file: &KeyFile) -> Result<PathBuf> {
    dir.create(name, file).map_err(|e| anyhow!("cannot store wallet {name:?}: {e}"))
}

fn print_wallet(verb: &str, name: &str, file: &KeyFile, path: &Path, out: &Output) -> Result<()> {
    let address = key_file_address(file)?;
    if out.json {
        return print_json(&serde_json::json!({
            "name": name,
            "address": address,
            "path": path,
            "encrypted": file.is_encrypted(),
        }));
    }
    println!("{verb} wallet {name}");
    println!("address: {address}");
    println!("file:    {} ({})", path.display(), if file.is_encrypted() { "encrypted" } else { "UNENCRYPTED" });
    Ok(())
}

/// The key file for storage: encrypted under a new passphrase, or plain.
fn seal(key: &SigningKey, unencrypted: bool) -> Result<KeyFile> {
    if unencrypted {
        return Ok(keystore::unencrypted(key));
    }
    let passphrase = new_passphrase()?;
    keystore::encrypt(key, &passphrase, KdfParams::interactive()).map_err(|e| anyhow!("cannot encrypt the key: {e}"))
}

fn prompt_error(e: std::io::Error) -> anyhow::Error {
    anyhow!("could not read a passphrase ({e}); set {PASSPHRASE_ENV} or use --unencrypted")
}

/// A new passphrase: `TESSERA_PASSPHRASE`, or typed twice at a prompt.
fn new_passphrase() -> Result<Zeroizing<String>> {
    if let Some(p) = wallet::passphrase_from_env() {
        return Ok(p);
    }
    let first = Zeroizing::new(rpassword::prompt_password("New passphrase: ").map_err(prompt_error)?);
    if first.is_empty() {
        bail!("the passphrase must not be empty (use --unencrypted for a development key)");
    }
    let second = Zeroizing::new(rpassword::prompt_password("Repeat the passphrase: ").map_err(prompt_error)?);
    if first != second {
        bail!("the two passphrases differ");
    }
    Ok(first)
}

fn key_from_hex(arg: &str) -> Result<SigningKey> {
    let text = if arg == "-" {
        let mut line = Zeroizing::new(String::new());
        std::io::stdin().read_line(&mut line).map_err(|e| anyhow!("cannot read the secret from stdin: {e}"))?;
        line
    } else {
        Zeroizing::new(arg.to_string())
    };
    let hex = text.trim();
    let hex = hex.strip_prefix("0x").unwrap_or(hex);
    let mut seed = Zeroizing::new([0u8; 32]);
    if hex.len() != 64 || hex::decode_to_slice(hex, seed.as_mut_slice()).is_err() {
        bail!("the secret seed must be 64 hex characters (32 bytes)");
    }
    Ok(SigningKey::from_seed(*seed))
}

fn read_key_file(arg: &str, path: &Path) -> Result<KeyFile> {
    keystore::read(path).map_err(|e| match e {
        keystore::KeystoreError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            if path.to_str() == Some(arg) {
                anyhow!("key file {arg} does not exist")
            } else {
                anyhow!("no wallet named {arg:?} ({} does not exist)", path.display())
            }
        }
        keystore::KeystoreError::Io { source, .. } => {
            anyhow!("cannot read key file {}: {source}", path.display())
        }
        other => anyhow!("key file {}: {other}", path.display()),
    })
}

fn key_file_address(file: &KeyFile) -> Result<Address> {
    file.address().map_err(|e| anyhow!("{e}"))
}

/// Loads the signing key named by `--key` (a key file path, or a wallet name).
pub(crate) fn load_key(arg: &str) -> Result<SigningKey> {
    load_key_at(arg, &wallet::resolve_key_path(arg))
}

fn load_key_at(arg: &str, path: &Path) -> Result<SigningKey> {
    let file = read_key_file(arg, path)?;
    let prompt = format!("Passphrase for {}: ", path.display());
    wallet::decrypt_key_file(&file, || rpassword::prompt_password(prompt)).map_err(|e| match e {
        wallet::WalletError::Keystore(keystore::KeystoreError::EmptyPassphrase) => {
            anyhow!("cannot unlock key file {}: the passphrase is empty", path.display())
        }
        other => anyhow!("cannot unlock key file {}: {other}", path.display()),
    })
}

/// A `tsr1...` address, or the address of a wallet / key file.
pub(crate) fn resolve_address(arg: &str) -> Result<Address> {
    if arg.starts_with("tsr1") {
        return arg.parse().map_err(|e| anyhow!("invalid address {arg:?}: {e}"));
    }
    let path = wallet::resolve_key_path(arg);
    let file = read_key_file(arg, &path).map_err(|e| anyhow!("{arg:?} is not a tsr1 address, and {e}"))?;
    key_file_address(&file)
}

// ---------------------------------------------------------------------------------------
// talking to the node

pub(crate) fn connect(node: &NodeArg) -> Result<Client> {
    Client::new(&node.node).map_err(|e| anyhow!("{e}"))
}

pub(crate) async fn chain_info(client: &Client) -> Result<ChainInfo> {
    client.chain().await.map_err(|e| anyhow!("cannot fetch chain info: {e}"))
}

pub(crate) fn find_asset<'a>(chain: &'a ChainInfo, asset: &AssetId) -> Result<&'a AssetView> {
    chain.assets.iter().find(|a| a.symbol == *asset).ok_or_else(|| {
        let known: Vec<String> = chain.assets.iter().map(|a| a.symbol.to_string()).collect();
        anyhow!("unknown asset {asset}; known: {}", known.join(", "))
    })
}

/// Parses a decimal amount of `asset` exactly into base units.
pub(crate) fn parse_amount(chain: &ChainInfo, asset: &AssetId, decimal: &str) -> Result<Amount> {
    let decimals = find_asset(chain, asset)?.decimals;
    Amount::from_decimal_str(decimal, decimals).map_err(|e| anyhow!("invalid {asset} amount: {e}"))
}

/// "12.5 TSR"; base units when the asset is unknown.
pub(crate) fn show_amount(chain: Option<&ChainInfo>, asset: &AssetId, amount: Amount) -> String {
    match chain.and_then(|c| c.assets.iter().find(|a| a.symbol == *asset)) {
        Some(a) => format!("{} {asset}", amount.to_decimal_string(a.decimals)),
        None => format!("{amount} base units of {asset}"),
    }
}

pub(crate) struct SendOpts {
    fee: Option<Amount>,
    expiry_height: Option<u64>,
    no_wait: bool,
    timeout: Duration,
}

impl SendOpts {
    pub(crate) fn simple(no_wait: bool) -> SendOpts {
        SendOpts { fee: None, expiry_height: None, no_wait, timeout: Duration::from_secs(DEFAULT_WAIT_SECS) }
    }
}

/// Builds, signs and submits a transaction carrying `action`, then (unless `no_wait`)
/// waits for it and reports its receipt. A rejected receipt is an error.
pub(crate) async fn send(
    client: &Client,
    chain: &ChainInfo,
    key: &SigningKey,
    action: Action,
    opts: &SendOpts,
    out: &Output,
) -> Result<()> {
    let signer = key.address();
    let account = client.account(&signer).await.map_err(|e| anyhow!("cannot fetch account {signer}: {e}"))?;
    let tx = Transaction {
        chain_id: chain.chain_id.clone(),
        signer,
        nonce: account.next_nonce,
        fee: opts.fee.unwrap_or(chain.fee),
        expiry_height: opts.expiry_height,
        action,
    };
    tx.check_stateless().map_err(|e| anyhow!("invalid transaction: {e}"))?;
    let stx = key.sign_tx(tx);
    let hash = stx.id();
    let submitted = client.submit(&stx).await.map_err(|e| match e {
        ClientError::Api { .. } => anyhow!("the node refused transaction {hash}: {e}"),
        other => anyhow!("submitting transaction {hash}: {other}"),
    })?;
    if submitted.tx_hash != hash {
        bail!("the node reports hash {} for transaction {hash}", submitted.tx_hash);
    }
    if opts.no_wait {
        if out.json {
            return print_json(&serde_json::json!({
                "tx_hash": hash,
                "status": "pending",
            }));
        }
        println!("submitted {hash} (pending)");
        return Ok(());
    }
    let view = client.wait_committed(&hash, opts.timeout).await.map_err(|e| match e {
        ClientError::Timeout { secs, .. } => anyhow!(
            "transaction {hash} was accepted but not committed within {secs} s; \
                 check it later with `tessera tx {hash}`"
        ),
        ClientError::Dropped { code, message } => {
            anyhow!("transaction {hash} was dropped: {code}: {message}")
        }
        other => anyhow!("waiting for transaction {hash}: {other}"),
    })?;
    report_committed(&view, out)
}

/// Loads `key`, fetches the chain's parameters and sends `action` (waiting for its
/// receipt unless `no_wait`); returns the chain info it used.
pub(crate) async fn submit(
    node: &NodeArg,
    key: &str,
    action: Action,
    no_wait: bool,
    out: &Output,
) -> Result<ChainInfo> {
    let key = load_key(key)?;
    let client = connect(node)?;
    let chain = chain_info(&client).await?;
    send(&client, &chain, &key, action, &SendOpts::simple(no_wait), out).await?;
    Ok(chain)
}

pub(crate) fn report_committed(view: &TxView, out: &Output) -> Result<()> {
    let hash = view.tx_hash;
    let height = view.height.map_or_else(|| "?".to_string(), |h| h.to_string());
    let receipt = view
        .receipt
        .as_ref()
        .ok_or_else(|| anyhow!("the node reports transaction {hash} committed without a receipt"))?;
    if out.json {
        print_json(view)?;
    }
    if receipt.status == "success" {
        if !out.json {
            println!("committed {hash} at height {height}: success");
        }
        return Ok(());
    }
    let code = receipt.code.as_deref().unwrap_or("unknown");
    let message = receipt.message.as_deref().unwrap_or("no reason given");
    if !out.json {
        println!("committed {hash} at height {height}: {}: {code}: {message}", receipt.status);
    }
    bail!("transaction {hash} was {} at height {height}: {code}: {message} (the fee was charged)", receipt.status)
}

pub(crate) fn print_json<T: serde::Serialize + ?Sized>(value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| anyhow!("encoding JSON: {e}"))?;
    println!("{text}");
    Ok(())
}

// ---------------------------------------------------------------------------------------
// transactions

pub async fn run_transfer(args: TransferArgs, out: &Output) -> Result<()> {
    let key = load_key(&args.key)?;
    let client = connect(&args.node)?;
    let chain = chain_info(&client).await?;
    let amount = parse_amount(&chain, &args.asset, &args.amount)?;
    let fee = match &args.fee {
        Some(fee) => Some(parse_amount(&chain, &AssetId::TSR, fee).map_err(|e| anyhow!("invalid fee: {e}"))?),
        None => None,
    };
    let action = Action::Transfer { to: args.to, asset: args.asset, amount };
    let opts = SendOpts {
        fee,
        expiry_height: args.expiry_height,
        no_wait: args.no_wait,
        timeout: Duration::from_secs(args.timeout_secs),
    };
    send(&client, &chain, &key, action, &opts, out).await
}

pub async fn run_asset(cmd: AssetCmd, out: &Output) -> Result<()> {
    match cmd {
        AssetCmd::Create { key, symbol, decimals, max_supply, no_wait, node } => {
            if decimals > ASSET_DECIMALS_MAX {
                bail!("an asset has at most {ASSET_DECIMALS_MAX} decimals, got {decimals}");
            }
            let key = load_key(&key)?;
            let client = connect(&node)?;
            let chain = chain_info(&client).await?;
            if chain.assets.iter().any(|a| a.symbol == symbol) {
                bail!("asset {symbol} already exists");
            }
            let max_supply = match max_supply {
                Some(s) => {
                    Some(Amount::from_decimal_str(&s, decimals).map_err(|e| anyhow!("invalid max supply: {e}"))?)
                }
                None => None,
            };
            let action = Action::CreateAsset { symbol, decimals, max_supply };
            send(&client, &chain, &key, action, &SendOpts::simple(no_wait), out).await
        }
        AssetCmd::Mint { key, asset, to, amount, no_wait, node } => {
            let key = load_key(&key)?;
            let client = connect(&node)?;
            let chain = chain_info(&client).await?;
            let amount = parse_amount(&chain, &asset, &amount)?;
            let action = Action::Mint { asset, to, amount };
            send(&client, &chain, &key, action, &SendOpts::simple(no_wait), out).await
        }
        AssetCmd::Burn { key, asset, amount, no_wait, node } => {
            let key = load_key(&key)?;
            let client = connect(&node)?;
            let chain = chain_info(&client).await?;
            let amount = parse_amount(&chain, &asset, &amount)?;
            let action = Action::Burn { asset, amount };
            send(&client, &chain, &key, action, &SendOpts::simple(no_wait), out).await
        }
        AssetCmd::List { node } => {
            let client = connect(&node)?;
            let chain = chain_info(&client).await?;
            if out.json {
                return print_json(&chain.assets);
            }
            println!("{:<12}  {:>8}  {:>24}  {:>24}  ISSUER", "SYMBOL", "DECIMALS", "SUPPLY", "MAX SUPPLY");
            for a in &chain.assets {
                let max = a.max_supply.map_or_else(|| "unlimited".to_string(), |m| m.to_decimal_string(a.decimals));
                println!(
                    "{:<12}  {:>8}  {:>24}  {:>24}  {}",
                    a.symbol.as_str(),
                    a.decimals,
                    a.supply.to_decimal_string(a.decimals),
                    max,
                    a.issuer
                );
            }
            Ok(())
        }
    }
}

pub async fn run_role(cmd: RoleCmd, out: &Output) -> Result<()> {
    match cmd {
        RoleCmd::Set { key, role, address, no_wait, node } => {
            let key = load_key(&key)?;
            let client = connect(&node)?;
            let chain = chain_info(&client).await?;
            let action = Action::SetRole { role, address };
            send(&client, &chain, &key, action, &SendOpts::simple(no_wait), out).await
        }
    }
}

// ---------------------------------------------------------------------------------------
// queries

pub async fn run_balance(args: BalanceArgs, out: &Output) -> Result<()> {
    let address = resolve_address(&args.address)?;
    let client = connect(&args.node)?;
    let chain = chain_info(&client).await?;
    let mut account: AccountView =
        client.account(&address).await.map_err(|e| anyhow!("cannot fetch account {address}: {e}"))?;
    if let Some(asset) = &args.asset {
        find_asset(&chain, asset)?;
        account.balances.retain(|b| b.asset == *asset);
        if account.balances.is_empty() {
            account.balances.push(BalanceView {
                asset: *asset,
                balance: Amount::ZERO,
                locked: Amount::ZERO,
                spendable: Amount::ZERO,
            });
        }
        account.locks.retain(|l| l.asset == *asset);
    }
    if out.json {
        return print_json(&account);
    }
    println!("{address}  (nonce {}, next {})", account.nonce, account.next_nonce);
    if account.balances.is_empty() {
        println!("no balances");
        return Ok(());
    }
    let rows: Vec<[String; 4]> = account
        .balances
        .iter()
        .map(|b| {
            let show = |a: Amount| match chain.assets.iter().find(|v| v.symbol == b.asset) {
                Some(v) => a.to_decimal_string(v.decimals),
                None => format!("{a} (base units)"),
            };
            [b.asset.to_string(), show(b.balance), show(b.locked), show(b.spendable)]
        })
        .collect();
    let w = |i: usize, title: &str| rows.iter().map(|r| r[i].len()).max().unwrap_or(0).max(title.len());
    let (w0, w1, w2, w3) = (w(0, "ASSET"), w(1, "BALANCE"), w(2, "LOCKED"), w(3, "SPENDABLE"));
    println!("{:<w0$}  {:>w1$}  {:>w2$}  {:>w3$}", "ASSET", "BALANCE", "LOCKED", "SPENDABLE");
    for [a, b, l, s] in &rows {
        println!("{a:<w0$}  {b:>w1$}  {l:>w2$}  {s:>w3$}");
    }
    for lock in &account.locks {
        println!("lock {} #{}: {}", lock.kind, lock.reference, show_amount(Some(&chain), &lock.asset, lock.amount));
    }
    Ok(())
}

pub async fn run_tx(args: TxArgs, out: &Output) -> Result<()> {
    let client = connect(&args.node)?;
    let hash = args.hash;
    let view = client
        .tx(&hash)
        .await
        .map_err(|e| anyhow!("cannot fetch transaction {hash}: {e}"))?
        .ok_or_else(|| anyhow!("transaction {hash} not found"))?;
    if out.json {
        return print_json(&view);
    }
    // Only for showing amounts as decimals; the transaction is shown without it too.
    let chain = client.chain().await.ok();
    let chain = chain.as_ref();
    println!("tx       {}", view.tx_hash);
    println!("status   {}", view.status);
    if let Some(h) = view.height {
        match view.index {
            Some(i) => println!("height   {h} (index {i})"),
            None => println!("height   {h}"),
        }
    }
    if let Some(r) = &view.receipt {
        let fee = show_amount(chain, &AssetId::TSR, r.fee_paid);
        match (&r.code, &r.message) {
            (Some(code), Some(message)) => {
                println!("receipt  {}: {code}: {message} (fee {fee})", r.status)
            }
            (Some(code), None) => println!("receipt  {}: {code} (fee {fee})", r.status),
            _ => println!("receipt  {} (fee {fee})", r.status),
        }
    }
    if let Some(err) = &view.error {
        println!("error    {}: {}", err.code, err.message);
    }
    if let Some(stx) = &view.tx {
        let tx = &stx.tx;
        println!("signer   {} (nonce {})", tx.signer, tx.nonce);
        println!("action   {}", describe_action(chain, &tx.action));
        println!("fee      {}", show_amount(chain, &AssetId::TSR, tx.fee));
        if let Some(e) = tx.expiry_height {
            println!("expiry   height {e}");
        }
    }
    Ok(())
}

fn describe_action(chain: Option<&ChainInfo>, action: &Action) -> String {
    match action {
        Action::Transfer { to, asset, amount } => {
            format!("transfer {} to {to}", show_amount(chain, asset, *amount))
        }
        Action::CreateAsset { symbol, decimals, max_supply } => {
            let max = max_supply.map_or_else(|| "unlimited".to_string(), |m| m.to_decimal_string(*decimals));
            format!("create asset {symbol} ({decimals} decimals, max supply {max})")
        }
        Action::Mint { asset, to, amount } => {
            format!("mint {} to {to}", show_amount(chain, asset, *amount))
        }
        Action::Burn { asset, amount } => format!("burn {}", show_amount(chain, asset, *amount)),
        Action::SetRole { role, address } => format!("set role {} to {address}", role.name()),
        Action::AttestEntity { entity, attestation: a } => format!(
            "attest entity {entity}: {} {}{}, screening {:?}",
            a.jurisdiction,
            a.class.name(),
            if a.us_person { ", U.S. person" } else { "" },
            a.screening
        ),
        Action::BindWallet { entity, wallet } => format!("bind wallet {wallet} to entity {entity}"),
        Action::UnbindWallet { wallet } => format!("unbind wallet {wallet}"),
        Action::RevokeEntity { entity } => format!("revoke entity {entity}"),
        Action::CreateOffering { config } => {
            format!(
                "create offering {:?} of {} for {} ({} tranches)",
                config.name,
                config.asset,
                config.quote,
                config.tranches.len()
            )
        }
        Action::Commit { offering, tranche, amount } => {
            format!("commit {} base units to offering {offering} tranche {tranche}", amount)
        }
        Action::Bid { offering, tranche, price, quantity } => {
            format!("bid {quantity} base units at {price} in offering {offering} tranche {tranche}")
        }
        Action::CancelCommitment { offering, tranche } => {
            format!("cancel commitment in offering {offering} tranche {tranche}")
        }
        Action::FinalizeOffering { offering } => format!("finalize offering {offering}"),
        Action::Claim { offering, tranche, entity } => {
            format!("claim offering {offering} tranche {tranche} for entity {entity}")
        }
        Action::WithdrawProceeds { offering } => format!("withdraw proceeds of offering {offering}"),
        Action::CreateGrant { beneficiary, asset, amount, revocable, .. } => format!(
            "grant {} to {beneficiary}{}",
            show_amount(chain, asset, *amount),
            if *revocable { " (revocable)" } else { "" }
        ),
        Action::RevokeGrant { grant } => format!("revoke grant {grant}"),
        Action::ReleaseVested { grant } => format!("release vested tokens of grant {grant}"),
        Action::RegisterProvider { info, stake } => format!(
            "register provider at {} ({} models), stake {}",
            info.endpoint,
            info.models.len(),
            show_amount(chain, &AssetId::TSR, *stake)
        ),
        Action::UpdateProvider { info, add_stake } => format!(
            "update provider: {} ({} models), add stake {}",
            info.endpoint,
            info.models.len(),
            show_amount(chain, &AssetId::TSR, *add_stake)
        ),
        Action::DeregisterProvider => "deregister provider (starts unbonding)".into(),
        Action::WithdrawProviderStake => "withdraw provider stake".into(),
        Action::OpenChannel { recipient, amount, expiry_height, .. } => format!(
            "open channel to {recipient} with {} until height {expiry_height}",
            show_amount(chain, &AssetId::TSR, *amount)
        ),
        Action::FundChannel { channel, amount } => {
            format!("add {} to channel {channel}", show_amount(chain, &AssetId::TSR, *amount))
        }
        Action::ExtendChannel { channel, expiry_height } => {
            format!("extend channel {channel} to height {expiry_height}")
        }
        Action::ClaimChannels { claims } => format!(
            "claim {} from {} channel(s)",
            show_amount(chain, &AssetId::TSR, Amount(claims.iter().map(|c| c.amount.0).sum())),
            claims.len()
        ),
        Action::ReclaimChannel { channel } => format!("reclaim channel {channel}"),
        Action::RegisterNeuron { max_burn } => {
            format!("register a neuron (fee at most {})", show_amount(chain, &AssetId::TSR, *max_burn))
        }
        Action::SetWeights { uids, .. } => format!("set weights on {} uids", uids.len()),
        Action::Stake { evaluator, amount } => {
            format!("stake {} on evaluator {evaluator}", show_amount(chain, &AssetId::TSR, *amount))
        }
        Action::Unstake { evaluator, amount } => {
            format!("unstake {} from evaluator {evaluator}", show_amount(chain, &AssetId::TSR, *amount))
        }
        Action::WithdrawUnstaked => "withdraw unstaked TSR whose unbonding is over".into(),
        Action::SetTake { take_bps } => format!("set evaluator take to {}.{:02} %", take_bps / 100, take_bps % 100),
        Action::CommitWeights { hash } => format!("commit to weights {hash}"),
        Action::RevealWeights { uids, .. } => format!("reveal weights on {} uids", uids.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Parser, Debug)]
    struct TestCli {
        #[command(subcommand)]
        cmd: TestCmd,
    }

    #[derive(Subcommand, Debug)]
    enum TestCmd {
        #[command(subcommand)]
        Wallet(WalletCmd),
        Transfer(TransferArgs),
        Balance(BalanceArgs),
        Tx(TxArgs),
        #[command(subcommand)]
        Asset(AssetCmd),
        #[command(subcommand)]
        Role(RoleCmd),
    }

    #[test]
    fn clap_definitions_are_consistent() {
        TestCli::command().debug_assert();
    }

    #[test]
    fn parses_typed_arguments() {
        let to = Address([3; 32]).to_string();
        let cli = TestCli::try_parse_from([
            "t",
            "transfer",
            "--key",
            "alice",
            "--to",
            &to,
            "--amount",
            "12.5",
            "--node",
            "http://x:1",
        ])
        .unwrap();
        let TestCmd::Transfer(args) = cli.cmd else { panic!() };
        assert_eq!(args.to, Address([3; 32]));
        assert_eq!(args.asset, AssetId::TSR);
        assert_eq!(args.timeout_secs, 60);
        assert_eq!(args.node.node, "http://x:1");

        assert!(TestCli::try_parse_from(["t", "transfer", "--key", "a", "--to", "nope"]).is_err());
        assert!(
            TestCli::try_parse_from(["t", "role", "set", "--key", "a", "--role", "king", "--address", &to]).is_err()
        );
        assert!(TestCli::try_parse_from(["t", "wallet", "import", "--name", "x"]).is_err());
        assert!(TestCli::try_parse_from([
            "t",
            "wallet",
            "import",
            "--name",
            "x",
            "--secret-hex",
            "00",
            "--from-file",
            "f"
        ])
        .is_err());
    }

    #[test]
    fn hex_secrets_must_be_32_bytes() {
        let k = key_from_hex(&"07".repeat(32)).unwrap();
        assert_eq!(*k.seed(), [7; 32]);
        assert!(key_from_hex(&format!("0x{}", "07".repeat(32))).is_ok());
        assert!(key_from_hex("0707").is_err());
        assert!(key_from_hex(&"zz".repeat(32)).is_err());
    }
}
