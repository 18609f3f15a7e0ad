//! Transaction gossip: what a validator's API admits goes to every other validator on
//! the `TXS` channel, in batches; what arrives is admitted like a submission (signatures,
//! chain, fee, nonce checks) without being forwarded again (validators are fully
//! connected). So a transaction sent to any node reaches whichever validator proposes
//! next.

use commonware_cryptography::ed25519::PublicKey;
use commonware_p2p::{Receiver, Recipients, Sender};
use commonware_runtime::Spawner;
use futures::StreamExt;
use futures::channel::mpsc;
use node::Chain;
use primitives::{SignedTransaction, codec, limits::TX_BYTES_MAX};
use std::sync::Arc;

/// Largest gossip message: a borsh `Vec<SignedTransaction>`.
pub const MESSAGE_BYTES_MAX: usize = 1024 * 1024;
const TXS_PER_MESSAGE_MAX: usize = MESSAGE_BYTES_MAX / TX_BYTES_MAX;

pub fn start<E, S, R>(context: E, chain: Arc<Chain>, (mut sender, mut receiver): (S, R))
where
    E: Spawner,
    S: Sender<PublicKey = PublicKey>,
    R: Receiver<PublicKey = PublicKey>,
{
    let (outbox, mut admitted) = mpsc::unbounded::<Vec<SignedTransaction>>();
    chain.set_gossip(move |txs| {
        let _ = outbox.unbounded_send(txs);
    });
    context.child("out").spawn(move |_| async move {
        while let Some(txs) = admitted.next().await {
            for part in txs.chunks(TXS_PER_MESSAGE_MAX) {
                let bytes = codec::encode(&part.to_vec());
                sender.send(Recipients::All, bytes, false);
            }
        }
    });
    context.child("in").spawn(move |_| async move {
        while let Ok((peer, bytes)) = receiver.recv().await {
            match codec::decode::<Vec<SignedTransaction>>(bytes.as_ref(), MESSAGE_BYTES_MAX) {
                Ok(txs) if txs.len() <= TXS_PER_MESSAGE_MAX => {
                    chain.admit_from_peer(txs);
                }
                _ => tracing::warn!(%peer, "malformed transaction gossip"),
            }
        }
    });
}
