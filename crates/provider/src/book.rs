//! The in-memory payment book: per channel, what the chain says (escrow, nonce, signer,
//! expiry), the best voucher at the current nonce, what is billed and what is in flight.

use crate::store::{ChannelRecord, Durable, StoreError, VoucherStore};
use parking_lot::Mutex;
use primitives::channel::{ChannelClaim, Voucher};
use primitives::{Address, Amount};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// What the chain says about a channel (from `GET /v1/channels/{id}` or events).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelInfo {
    pub id: u64,
    pub recipient: Address,
    pub signer: Address,
    pub nonce: u64,
    pub escrowed: Amount,
    pub claimed: Amount,
    pub expiry_height: u64,
}

pub use primitives::channel::VoucherHeader;

/// Signs a voucher as the `x-tessera-voucher` header carries it (the caller's side).
pub fn sign_voucher(
    key: &crypto::SigningKey,
    chain_id: &str,
    channel: u64,
    nonce: u64,
    amount: Amount,
) -> VoucherHeader {
    let v = Voucher { chain_id: chain_id.into(), channel, nonce, amount };
    VoucherHeader { channel, nonce, amount, signature: key.sign_digest(&v.signing_hash()) }
}

/// Why a call's payment is refused. `status()` is the HTTP status, `code()` the stable code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PayError {
    #[error("the voucher's signature does not verify for channel {channel}'s signer on this chain")]
    BadSignature { channel: u64 },
    #[error("channel {0} is not known to this provider (open one to it, or wait for it to be confirmed)")]
    UnknownChannel(u64),
    #[error("channel {0} pays another provider")]
    WrongRecipient(u64),
    #[error("the voucher is for nonce {got}; the channel is at nonce {expected}")]
    StaleNonce { expected: u64, got: u64 },
    #[error("the voucher ({offered}) does not cover what is owed ({required}: billed calls plus calls in flight)")]
    Insufficient { required: Amount, offered: Amount },
    #[error(
        "the channel's escrow ({escrowed}) cannot cover this call's worst case on top of what is owed ({required})"
    )]
    ExceedsEscrow { escrowed: Amount, required: Amount },
    #[error("channel {channel} expires at height {expiry}; this provider needs {margin} blocks to claim")]
    Expiring { channel: u64, expiry: u64, margin: u64 },
    #[error("voucher store: {0}")]
    Store(String),
}

impl PayError {
    pub fn code(&self) -> &'static str {
        match self {
            PayError::BadSignature { .. } => "bad_voucher_signature",
            PayError::UnknownChannel(_) => "unknown_channel",
            PayError::WrongRecipient(_) => "wrong_recipient",
            PayError::StaleNonce { .. } => "stale_nonce",
            PayError::Insufficient { .. } => "insufficient_voucher",
            PayError::ExceedsEscrow { .. } => "insufficient_escrow",
            PayError::Expiring { .. } => "channel_expiring",
            PayError::Store(_) => "store_error",
        }
    }

    /// 401 for a voucher that is not the sender's, 402 for one that does not pay, 500 for
    /// our own failure.
    pub fn status(&self) -> u16 {
        match self {
            PayError::BadSignature { .. } | PayError::WrongRecipient(_) | PayError::StaleNonce { .. } => 401,
            PayError::Store(_) => 500,
            _ => 402,
        }
    }
}

impl From<StoreError> for PayError {
    fn from(e: StoreError) -> Self {
        PayError::Store(e.to_string())
    }
}

struct Slot {
    info: ChannelInfo,
    rec: ChannelRecord,
    /// Σ worst case of calls admitted and not yet settled.
    reserved: u128,
}

impl Slot {
    /// Billed on the current nonce: everything billed minus what claims already took.
    fn owed(&self) -> u128 {
        self.rec.billed.0 - self.rec.paid.0
    }
}

/// A call admitted against a channel; settle it with what it actually cost.
#[derive(Debug)]
#[must_use = "an admitted call must be settled"]
pub struct Ticket {
    pub channel: u64,
    pub worst: Amount,
    /// The voucher's write, if this call improved it: wait for it before answering.
    durable: Option<Durable>,
}

impl Ticket {
    /// Blocks until the voucher this call brought is durable (at once if it brought none
    /// new). Run the model first, then wait: the fsync overlaps the inference.
    /// Takes the pending write, to wait for it elsewhere.
    pub fn take_durable(&mut self) -> Option<Durable> {
        self.durable.take()
    }

    pub fn wait_durable(&mut self) -> Result<(), PayError> {
        match self.durable.take() {
            Some(d) => d.wait().map_err(PayError::from),
            None => Ok(()),
        }
    }
}

/// The state of a channel after a call was billed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settled {
    /// What this call cost.
    pub cost: Amount,
    /// Owed on the current nonce (the next voucher must cover this plus calls in flight).
    pub owed: Amount,
    /// Escrow not yet billed.
    pub remaining: Amount,
}

/// One channel's claim: the best voucher, taking exactly what is owed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claimable {
    pub claim: ChannelClaim,
    pub nonce: u64,
}

/// The provider's payment book.
pub struct Book {
    chain_id: String,
    me: Address,
    /// Refuse calls on channels this close to expiry (blocks).
    margin: u64,
    height: AtomicU64,
    slots: Mutex<HashMap<u64, Slot>>,
    store: VoucherStore,
}

impl Book {
    pub fn new(chain_id: &str, me: Address, margin_blocks: u64, store: VoucherStore) -> Book {
        Book {
            chain_id: chain_id.into(),
            me,
            margin: margin_blocks,
            height: AtomicU64::new(0),
            slots: Mutex::new(HashMap::new()),
            store,
        }
    }

    pub fn set_height(&self, height: u64) {
        self.height.fetch_max(height, Ordering::Relaxed);
    }

    /// Records what the chain says about a channel. When its nonce moved past ours, a
    /// claim landed (ours, or a crash interrupted our bookkeeping): what the chain shows
    /// as claimed becomes paid, and vouchers start again at the new nonce. The change is
    /// queued for the store: wait for the returned write before acting on it (from async
    /// code with `done().await`, so no runtime thread blocks on the fsync).
    pub fn update_channel(&self, info: ChannelInfo) -> Result<Durable, PayError> {
        let mut slots = self.slots.lock();
        let loaded = self.store.loaded().get(&info.id).cloned();
        let slot = slots.entry(info.id).or_insert_with(|| Slot {
            info: info.clone(),
            rec: loaded.unwrap_or(ChannelRecord { nonce: info.nonce, ..ChannelRecord::default() }),
            reserved: 0,
        });
        let mut changed = false;
        if info.nonce > slot.rec.nonce {
            // Every claim of ours landed: the chain's total claimed is what we were paid.
            slot.rec.paid = slot.rec.paid.max(info.claimed);
            slot.rec.nonce = info.nonce;
            slot.rec.best = None;
            slot.rec.claim_in_flight = None;
            changed = true;
        }
        slot.info = info;
        let record = changed.then(|| (slot.info.id, slot.rec.clone()));
        drop(slots);
        Ok(match record {
            Some(r) => self.store.put_later(vec![r])?,
            None => self.store.nothing(),
        })
    }

    /// Admits a call whose worst-case cost is `worst`, paid by `voucher`, and returns at
    /// once with the voucher's write queued: call `Ticket::wait_durable` before answering
    /// (`admit_durable` does both).
    pub fn admit(&self, voucher: &VoucherHeader, worst: Amount) -> Result<Ticket, PayError> {
        let (signer, digest, signature) = self.signed_by(voucher)?;
        // The signature check (the expensive part) runs outside the lock.
        if crypto::verify_digest(&signer, &digest, &signature).is_err() {
            return Err(PayError::BadSignature { channel: voucher.channel });
        }
        self.admit_verified(voucher, worst)
    }

    /// What must verify for `voucher` to be this channel sender's: (signer, the voucher's
    /// signing hash, its signature); refused when the channel is unknown or pays another.
    pub fn signed_by(&self, voucher: &VoucherHeader) -> Result<crypto::VerifyItem, PayError> {
        let id = voucher.channel;
        let (signer, recipient) = {
            let slots = self.slots.lock();
            let slot = slots.get(&id).ok_or(PayError::UnknownChannel(id))?;
            (slot.info.signer, slot.info.recipient)
        };
        if recipient != self.me {
            return Err(PayError::WrongRecipient(id));
        }
        let v = Voucher { chain_id: self.chain_id.clone(), channel: id, nonce: voucher.nonce, amount: voucher.amount };
        Ok((signer, v.signing_hash(), voucher.signature))
    }

    /// `admit` for a voucher whose signature was already checked against `signed_by`
    /// (by a batch verifier): every other rule applies.
    pub fn admit_verified(&self, voucher: &VoucherHeader, worst: Amount) -> Result<Ticket, PayError> {
        let id = voucher.channel;
        let record = {
            let mut slots = self.slots.lock();
            let slot = slots.get_mut(&id).ok_or(PayError::UnknownChannel(id))?;
            if voucher.nonce != slot.info.nonce || voucher.nonce != slot.rec.nonce {
                return Err(PayError::StaleNonce { expected: slot.info.nonce, got: voucher.nonce });
            }
            let height = self.height.load(Ordering::Relaxed);
            if height.saturating_add(self.margin) >= slot.info.expiry_height {
                return Err(PayError::Expiring { channel: id, expiry: slot.info.expiry_height, margin: self.margin });
            }
            // A voucher below the best one is fine if it covers what is due: a payer's
            // concurrent calls sign increasing amounts but may arrive in any order. The best
            // voucher is the one kept and claimed.
            let required = slot.owed().saturating_add(slot.reserved);
            if voucher.amount.0 < required {
                return Err(PayError::Insufficient { required: Amount(required), offered: voucher.amount });
            }
            if required.saturating_add(worst.0) > slot.info.escrowed.0 {
                return Err(PayError::ExceedsEscrow { escrowed: slot.info.escrowed, required: Amount(required) });
            }
            slot.reserved += worst.0;
            let improved = slot.rec.best.is_none_or(|(b, _)| voucher.amount > b);
            if improved {
                slot.rec.best = Some((voucher.amount, voucher.signature));
            }
            improved.then(|| (id, slot.rec.clone()))
        };
        let durable = match record {
            Some(r) => match self.store.put_later(vec![r]) {
                Ok(d) => Some(d),
                Err(e) => {
                    self.release(id, worst);
                    return Err(e.into());
                }
            },
            None => None,
        };
        Ok(Ticket { channel: id, worst, durable })
    }

    /// `admit`, then wait until the voucher is durable.
    pub fn admit_durable(&self, voucher: &VoucherHeader, worst: Amount) -> Result<Ticket, PayError> {
        let mut t = self.admit(voucher, worst)?;
        if let Err(e) = t.wait_durable() {
            let _ = self.settle(t, Amount::ZERO);
            return Err(e);
        }
        Ok(t)
    }

    fn release(&self, id: u64, worst: Amount) {
        if let Some(slot) = self.slots.lock().get_mut(&id) {
            slot.reserved -= worst.0;
        }
    }

    /// Bills a finished (or interrupted) call for what it actually cost (at most its worst
    /// case; more is a metering bug and is capped). The new billing total goes out with
    /// the next write that is waited for (or within 20 ms), costing no fsync of its own:
    /// losing it in a crash can only make the provider claim less, never the payer pay more.
    pub fn settle(&self, ticket: Ticket, cost: Amount) -> Result<Settled, PayError> {
        let cost = cost.min(ticket.worst);
        let (settled, record) = {
            let mut slots = self.slots.lock();
            let slot = slots.get_mut(&ticket.channel).expect("an admitted channel stays in the book");
            slot.reserved -= ticket.worst.0;
            slot.rec.billed.0 += cost.0;
            let owed = slot.owed();
            let settled = Settled {
                cost,
                owed: Amount(owed),
                remaining: Amount(slot.info.escrowed.0.saturating_sub(owed + slot.reserved)),
            };
            (settled, (ticket.channel, slot.rec.clone()))
        };
        self.store.put_eventually(vec![record])?;
        Ok(settled)
    }

    /// What can be claimed now: per channel with something owed, the best voucher taking
    /// exactly what is owed (never more than the voucher, never calls still in flight).
    pub fn claimable(&self) -> Vec<Claimable> {
        let slots = self.slots.lock();
        let mut out: Vec<Claimable> = slots
            .values()
            .filter(|s| s.rec.claim_in_flight.is_none())
            .filter_map(|s| {
                let (best, signature) = s.rec.best?;
                let take = Amount(s.owed().min(best.0));
                (!take.is_zero()).then_some(Claimable {
                    nonce: s.rec.nonce,
                    claim: ChannelClaim {
                        channel: s.info.id,
                        voucher_amount: best,
                        signature,
                        amount: take,
                        send_back: false,
                    },
                })
            })
            .collect();
        out.sort_by_key(|c| c.claim.channel);
        out
    }

    /// Records that claims were submitted (so they are not submitted twice); wait for the
    /// returned write before submitting them.
    pub fn claims_submitted(&self, claims: &[Claimable]) -> Result<Durable, PayError> {
        let records: Vec<(u64, ChannelRecord)> = {
            let mut slots = self.slots.lock();
            claims
                .iter()
                .filter_map(|c| {
                    let slot = slots.get_mut(&c.claim.channel)?;
                    slot.rec.claim_in_flight = Some(c.claim.amount);
                    Some((c.claim.channel, slot.rec.clone()))
                })
                .collect()
        };
        Ok(self.store.put_later(records)?)
    }

    /// A submitted claim failed on chain: allow it to be retried.
    pub fn claim_failed(&self, channel: u64) -> Result<Durable, PayError> {
        let record = {
            let mut slots = self.slots.lock();
            let Some(slot) = slots.get_mut(&channel) else { return Ok(self.store.nothing()) };
            slot.rec.claim_in_flight = None;
            (channel, slot.rec.clone())
        };
        Ok(self.store.put_later(vec![record])?)
    }

    /// Whether a channel with something owed expires within `blocks`.
    pub fn near_expiry(&self, blocks: u64) -> bool {
        let height = self.height.load(Ordering::Relaxed);
        self.slots.lock().values().any(|s| s.owed() > 0 && height.saturating_add(blocks) >= s.info.expiry_height)
    }

    /// Per channel: (billed ever, paid by claims, owed now, in flight).
    pub fn summary(&self) -> Vec<(u64, Amount, Amount, Amount, Amount)> {
        let slots = self.slots.lock();
        let mut v: Vec<_> = slots
            .values()
            .map(|s| (s.info.id, s.rec.billed, s.rec.paid, Amount(s.owed()), Amount(s.reserved)))
            .collect();
        v.sort_by_key(|r| r.0);
        v
    }
}
