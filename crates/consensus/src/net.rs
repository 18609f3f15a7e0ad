//! Validators as real processes: commonware's tokio runtime (its own threads, storage
//! under the node's data dir) and authenticated p2p with lookup (every validator's key
//! and `host:port` known in advance, connections encrypted and authenticated with the
//! validator keys). The node's HTTP API and `Chain` run beside it unchanged.

use crate::engine::{Network, Timeouts, ValidatorConfig, channels, start_validator};
use crate::ledger_host::LedgerHost;
use commonware_codec::DecodeExt;
use commonware_cryptography::ed25519::{PrivateKey, PublicKey};
use commonware_cryptography::{ChaCha20Poly1305, Signer as _};
use commonware_p2p::authenticated::lookup;
use commonware_runtime::{Runner as _, Supervisor as _};
use commonware_stream::cups::{self, Cups};
use commonware_stream::sake::{self, Sake};
use commonware_utils::ordered::{Map, Set};
use commonware_utils::{NZUsize, TryCollect};
use ledger::Genesis;
use node::Chain;
use primitives::Address;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A validator's consensus key from a Tessera key's 32-byte seed.
pub fn private_key(seed: &[u8; 32]) -> PrivateKey {
    PrivateKey::decode(bytes::Bytes::copy_from_slice(seed)).expect("32 bytes")
}

/// The consensus public key behind a validator address.
pub fn public_key(address: &Address) -> Result<PublicKey, String> {
    PublicKey::decode(bytes::Bytes::copy_from_slice(&address.0))
        .map_err(|e| format!("{address} is not an ed25519 key: {e}"))
}

pub fn address_of(key: &PublicKey) -> Address {
    Address(key.as_ref().try_into().expect("ed25519 keys are 32 bytes"))
}

/// The validator set of a multi-node genesis, sorted as consensus indexes it.
pub fn validator_set(genesis: &Genesis) -> Result<Set<PublicKey>, String> {
    if genesis.validators.is_empty() {
        return Err("the genesis lists no validators".into());
    }
    let keys: Vec<PublicKey> = genesis.validators.iter().map(public_key).collect::<Result<_, _>>()?;
    keys.into_iter().try_collect().map_err(|_| "the genesis lists a validator twice".to_string())
}

/// The namespace of a chain's consensus and p2p signatures.
pub fn namespace(genesis_hash: &primitives::Hash) -> Vec<u8> {
    format!("tessera/{genesis_hash}").into_bytes()
}

pub struct ProcessConfig {
    pub key: PrivateKey,
    pub genesis_hash: primitives::Hash,
    pub validators: Set<PublicKey>,
    /// Where this validator listens for its peers.
    pub listen: SocketAddr,
    /// Every validator's p2p address (this one's included or not).
    pub peers: Vec<(PublicKey, SocketAddr)>,
    /// Consensus storage (simplex's journal, marshal's archives).
    pub storage_dir: PathBuf,
    pub timeouts: Timeouts,
    pub worker_threads: usize,
}

/// Runs one validator on its own threads until the process exits. The chain must be
/// open and started in replicated mode.
pub fn spawn_validator(chain: Arc<Chain>, cfg: ProcessConfig) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("consensus".into()).spawn(move || {
        let runtime = commonware_runtime::tokio::Config::new()
            .with_storage_directory(cfg.storage_dir.clone())
            .with_worker_threads(cfg.worker_threads.max(1))
            .with_catch_panics(false);
        commonware_runtime::tokio::Runner::new(runtime).start(|context| async move {
            let me = cfg.key.public_key();
            let host = LedgerHost::new(chain, address_of(&me), primitives::limits::BLOCK_TXS_MAX);
            let namespace = namespace(&cfg.genesis_hash);
            let vcfg = ValidatorConfig {
                namespace: namespace.clone(),
                participants: cfg.validators.clone(),
                key: cfg.key.clone(),
                genesis_hash: cfg.genesis_hash,
                partition_prefix: "validator".into(),
                timeouts: cfg.timeouts.clone(),
                mailbox_size: 4096,
                max_pending_acks: 16,
            };
            let handshake = Cups::<_, ChaCha20Poly1305>::new(
                Sake {
                    signer: cfg.key.clone(),
                    synchrony_bound: Duration::from_secs(5),
                    max_handshake_age: Duration::from_secs(10),
                    version: sake::Version::V1,
                },
                cups::Version::V1,
            );
            let p2p = lookup::Config::local(
                handshake,
                &namespace,
                cfg.listen,
                NZUsize!(cfg.validators.len().max(1)),
                vcfg.max_message_size(),
                NZUsize!(4096),
            );
            let (mut network, mut oracle) = lookup::Network::new(context.child("p2p"), p2p);
            let peers: Map<PublicKey, commonware_p2p::Address> = cfg
                .peers
                .iter()
                .filter(|(k, _)| cfg.validators.position(k).is_some())
                .map(|(k, a)| (k.clone(), (*a).into()))
                .try_collect()
                .expect("distinct peers");
            commonware_p2p::AddressableManager::track(&mut oracle, 0, peers);
            let chans = channels::ALL.map(|c| network.register(c, crate::engine::CHANNEL_QUOTA));
            network.start();
            let net = Network { channels: chans, blocker: oracle.clone(), manager: oracle };
            let _simplex = start_validator(context.child("validator"), vcfg, host, net).await;
            futures::future::pending::<()>().await;
        });
    })
}
