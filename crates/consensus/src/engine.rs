//! The wiring of one validator (CONSENSUS.md §3.2): marshal's resolver, the buffered
//! broadcast of blocks, marshal's archives and actor, the `Inline` wrapper around our
//! application, simplex, the finalizer task and transaction gossip. Generic over the
//! runtime (deterministic in tests, tokio in processes) and the p2p network (simulated
//! or authenticated lookup).

use crate::app::{App, Scheme};
use crate::block::{Envelope, EnvelopeCfg, digest_of};
use crate::finalizer;
use crate::gossip;
use crate::ledger_host::LedgerHost;
use commonware_broadcast::buffered;
use commonware_consensus::marshal::{
    self,
    core::Actor,
    resolver::p2p as marshal_resolver,
    standard::{Inline, Standard},
};
use commonware_consensus::simplex::{self, elector::RoundRobin};
use commonware_consensus::types::{Epoch, FixedEpocher, ViewDelta};
use commonware_cryptography::certificate::ConstantProvider;
use commonware_cryptography::ed25519::{PrivateKey, PublicKey};
use commonware_cryptography::{Sha256, Signer as _};
use commonware_p2p::{Blocker, Provider, Receiver, Sender};
use commonware_parallel::Sequential;
use commonware_runtime::buffer::paged::CacheRef;
use commonware_runtime::{Clock, Handle, Metrics, Spawner, Storage};
use commonware_storage::archive::immutable;
use commonware_utils::ordered::Set;
use commonware_utils::{NZDuration, NZU16, NZU64, NZUsize};
use primitives::Hash;
use rand_core_010::CryptoRng;
use std::num::NonZeroU64;
use std::sync::Arc;
use std::time::Duration;

/// Channel ids on the p2p network.
pub mod channels {
    pub const VOTES: u64 = 0;
    pub const CERTIFICATES: u64 = 1;
    pub const CERT_FETCH: u64 = 2;
    pub const BLOCKS: u64 = 3;
    pub const BACKFILL: u64 = 4;
    pub const TXS: u64 = 5;
    pub const ALL: [u64; 6] = [VOTES, CERTIFICATES, CERT_FETCH, BLOCKS, BACKFILL, TXS];
}

/// Messages per second each peer may send on each channel. Channel mailboxes are sized
/// from it (peers × burst), so it also bounds memory.
pub const CHANNEL_QUOTA: commonware_runtime::Quota =
    commonware_runtime::Quota::per_second(commonware_utils::NZU32!(2_000));

/// Consensus timing. Defaults suit a LAN or loopback; simulations use the same.
#[derive(Clone, Debug)]
pub struct Timeouts {
    pub leader: Duration,
    pub certification: Duration,
    pub timeout_retry: Duration,
    /// A leader silent this long while a quorum is active gets its views skipped.
    pub skip: Duration,
    pub fetch: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            leader: Duration::from_secs(1),
            certification: Duration::from_secs(2),
            timeout_retry: Duration::from_secs(2),
            skip: Duration::from_secs(5),
            fetch: Duration::from_secs(1),
        }
    }
}

pub struct ValidatorConfig {
    /// Separates this chain's signatures from every other chain's (`tessera/<chain id>`).
    pub namespace: Vec<u8>,
    pub participants: Set<PublicKey>,
    pub key: PrivateKey,
    pub genesis_hash: Hash,
    /// Prefix of every storage partition of this validator.
    pub partition_prefix: String,
    pub timeouts: Timeouts,
    pub mailbox_size: usize,
    /// Finalized blocks marshal hands over before waiting for acknowledgements.
    pub max_pending_acks: usize,
}

impl ValidatorConfig {
    /// The largest message any channel carries: a block with its certificate, a vote or
    /// certificate, or a gossip batch.
    pub fn max_message_size(&self) -> u32 {
        let n = self.participants.len() as u32;
        let simplex = simplex::max_payload_size::<Scheme, crate::block::Digest>(n);
        let marshal = marshal::max_payload_size::<Standard<Envelope>, Scheme>(n, &EnvelopeCfg::default());
        commonware_p2p::max_message_size(&[simplex, marshal, gossip::MESSAGE_BYTES_MAX])
    }
}

/// The network handles of one validator: six registered channels, a blocker and the
/// peer-set manager.
pub struct Network<S, R, B, M> {
    pub channels: [(S, R); 6],
    pub blocker: B,
    pub manager: M,
}

const PAGE_SIZE: std::num::NonZeroU16 = NZU16!(4096);
const PAGE_CACHE_PAGES: std::num::NonZeroUsize = NZUsize!(256);
const ITEMS_PER_SECTION: NonZeroU64 = NZU64!(1024);

fn fetch_timeout(t: &Timeouts) -> commonware_utils::NonZeroDuration {
    commonware_utils::NonZeroDuration::new(t.fetch).unwrap_or(NZDuration!(Duration::from_secs(1)))
}

fn archive<C>(prefix: &str, name: &str, page_cache: &CacheRef, codec_config: C) -> immutable::Config<C> {
    immutable::Config {
        metadata_partition: format!("{prefix}-{name}-metadata"),
        freezer_table_partition: format!("{prefix}-{name}-freezer-table"),
        freezer_table_initial_size: 1024,
        freezer_table_resize_frequency: 10,
        freezer_table_resize_chunk_size: 256,
        freezer_key_partition: format!("{prefix}-{name}-freezer-key"),
        freezer_key_page_cache: page_cache.clone(),
        freezer_value_partition: format!("{prefix}-{name}-freezer-value"),
        freezer_value_target_size: 64 * 1024 * 1024,
        freezer_value_compression: None,
        ordinal_partition: format!("{prefix}-{name}-ordinal"),
        items_per_section: ITEMS_PER_SECTION,
        codec_config,
        replay_buffer: NZUsize!(64 * 1024),
        freezer_key_write_buffer: NZUsize!(64 * 1024),
        freezer_value_write_buffer: NZUsize!(64 * 1024),
        ordinal_write_buffer: NZUsize!(64 * 1024),
    }
}

/// Starts one validator: everything is spawned under `context`; the returned handle is
/// simplex's. The ledger host must already hold the committed state (`Chain::open` +
/// `start_replicated`).
pub async fn start_validator<E, S, R, B, M>(
    context: E,
    cfg: ValidatorConfig,
    host: Arc<LedgerHost>,
    network: Network<S, R, B, M>,
) -> Handle<()>
where
    E: Clock + CryptoRng + Spawner + Storage + Metrics + rand_core_010::Rng,
    S: Sender<PublicKey = PublicKey>,
    R: Receiver<PublicKey = PublicKey>,
    B: Blocker<PublicKey = PublicKey>,
    M: Provider<PublicKey = PublicKey>,
{
    let me = cfg.key.public_key();
    let scheme = Scheme::signer(&cfg.namespace, cfg.participants.clone(), cfg.key.clone())
        .expect("this validator's key is in the validator set");
    let n = cfg.participants.len();
    let mailbox_size = NZUsize!(cfg.mailbox_size.max(1));
    let page_cache = CacheRef::new(PAGE_SIZE, PAGE_CACHE_PAGES);
    let prefix = cfg.partition_prefix.clone();
    let [votes, certificates, cert_fetch, blocks, backfill, txs] = network.channels;

    // Transaction gossip.
    gossip::start(context.child("gossip"), host.chain().clone(), txs);

    // Marshal's block resolver (backfill).
    let resolver = marshal_resolver::init(
        context.child("resolver"),
        marshal_resolver::Config {
            public_key: me.clone(),
            peer_provider: network.manager.clone(),
            blocker: network.blocker.clone(),
            mailbox_size,
            fetch_timeout: fetch_timeout(&cfg.timeouts),
            fetch_retry_delay: Duration::from_millis(100),
            priority_requests: false,
            priority_responses: false,
        },
        backfill,
    );

    // Buffered broadcast of full blocks.
    let (broadcast, buffer) = buffered::Engine::new(
        context.child("broadcast"),
        buffered::Config {
            public_key: me.clone(),
            mailbox_size,
            deque_size: 16,
            priority: false,
            codec_config: EnvelopeCfg::default(),
            peer_provider: network.manager.clone(),
            strategy: Sequential,
        },
    );
    broadcast.start(blocks);

    // Marshal's archives: finalization certificates and finalized blocks, by height.
    let finalizations =
        immutable::Archive::init(context.child("finalizations"), archive(&prefix, "finalizations", &page_cache, n))
            .await
            .expect("open the finalizations archive");
    let finalized_blocks = immutable::Archive::init(
        context.child("finalized_blocks"),
        archive(&prefix, "blocks", &page_cache, EnvelopeCfg::default()),
    )
    .await
    .expect("open the finalized blocks archive");

    let epocher = FixedEpocher::new(NZU64!(u64::MAX));
    let provider = ConstantProvider::new(scheme.clone());
    let genesis = Envelope::genesis(cfg.genesis_hash);
    let (actor, marshal_mailbox, _floor) = Actor::init(
        context.child("marshal"),
        finalizations,
        finalized_blocks,
        marshal::Config {
            provider,
            epocher: epocher.clone(),
            start: marshal::Start::Genesis(commonware_cryptography::Digested::precomputed(
                genesis.clone(),
                digest_of(&cfg.genesis_hash),
            )),
            partition_prefix: format!("{prefix}-marshal"),
            mailbox_size,
            view_retention: ViewDelta::new(64),
            prunable_items_per_section: NZU64!(64),
            page_cache: page_cache.clone(),
            replay_buffer: NZUsize!(64 * 1024),
            key_write_buffer: NZUsize!(64 * 1024),
            value_write_buffer: NZUsize!(64 * 1024),
            block_codec_config: EnvelopeCfg::default(),
            max_repair: NZUsize!(16),
            max_pending_acks: NZUsize!(cfg.max_pending_acks.max(1)),
            strategy: Sequential,
        },
    )
    .await;
    let reporter = finalizer::start(context.child("finalizer"), host.clone());
    actor.start(reporter, buffer, resolver);

    // Our application inside marshal's Inline wrapper, as simplex's automaton, relay and reporter.
    let wrapper = Inline::new(context.child("inline"), App::new(host), marshal_mailbox, epocher);
    let engine = simplex::Engine::new(
        context.child("simplex"),
        simplex::Config {
            scheme,
            elector: RoundRobin::<Sha256>::default(),
            blocker: network.blocker,
            automaton: wrapper.clone(),
            relay: wrapper.clone(),
            reporter: wrapper,
            strategy: Sequential,
            partition: format!("{prefix}-simplex"),
            mailbox_size,
            epoch: Epoch::zero(),
            floor: simplex::Floor::Genesis(digest_of(&cfg.genesis_hash)),
            replay_buffer: NZUsize!(64 * 1024),
            write_buffer: NZUsize!(64 * 1024),
            page_cache,
            leader_timeout: cfg.timeouts.leader,
            certification_timeout: cfg.timeouts.certification,
            timeout_retry: cfg.timeouts.timeout_retry,
            view_retention: ViewDelta::new(10),
            skip: simplex::SkipPolicy::Enabled {
                timeout: cfg.timeouts.skip,
                budget: simplex::SkipBudget::Participants,
            },
            fetch_timeout: fetch_timeout(&cfg.timeouts),
            fetch_retry_delay: Duration::from_millis(100),
            forward: simplex::ForwardPolicy::Disabled,
            track_historical_votes: false,
        },
    );
    engine.start(votes, certificates, cert_fetch)
}
