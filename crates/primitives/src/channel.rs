//! Paid AI access on the ledger: provider registrations (models and per-token prices) and
//! unidirectional payment channels with cumulative vouchers (SingularityNET's
//! MultiPartyEscrow semantics, see ../shared/design/AI-ACCESS.md §3.1), in TSR.

use crate::limits::{ENDPOINT_BYTES_MAX, MODEL_ID_BYTES_MAX, PROVIDER_MODELS_MAX};
use crate::{codec, Amount, Hash, Signature};
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Context string of a voucher's signing hash.
pub const VOUCHER_SIGNING_CONTEXT: &str = "tessera 2026-11 channel voucher v1";

/// A model a provider serves, with its prices in TSR base units per million tokens.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelOffer {
    /// The OpenAI `model` id clients ask for ("all-MiniLM-L6-v2", "SmolLM2-135M-Instruct").
    pub model: String,
    pub input_price_per_mtok: Amount,
    pub output_price_per_mtok: Amount,
}

impl ModelOffer {
    /// Both prices zero: calls need no voucher (a provider does not look at one).
    pub fn is_free(&self) -> bool {
        self.input_price_per_mtok.is_zero() && self.output_price_per_mtok.is_zero()
    }
}

/// What a provider registers: where it serves, and what.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderInfo {
    /// Base URL of its OpenAI-compatible API (http:// or https://).
    pub endpoint: String,
    pub models: Vec<ModelOffer>,
}

impl ProviderInfo {
    pub fn check(&self) -> Result<(), String> {
        let e = &self.endpoint;
        if e.len() > ENDPOINT_BYTES_MAX || !(e.starts_with("http://") || e.starts_with("https://")) {
            return Err(format!("endpoint must be an http(s) URL of at most {ENDPOINT_BYTES_MAX} bytes"));
        }
        if e.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("endpoint must not contain whitespace".into());
        }
        if self.models.is_empty() || self.models.len() > PROVIDER_MODELS_MAX {
            return Err(format!("a provider offers 1 to {PROVIDER_MODELS_MAX} models"));
        }
        for (i, m) in self.models.iter().enumerate() {
            let ok = !m.model.is_empty()
                && m.model.len() <= MODEL_ID_BYTES_MAX
                && m.model.bytes().all(|b| b.is_ascii_graphic());
            if !ok {
                return Err(format!("model {i}: ids are 1-{MODEL_ID_BYTES_MAX} printable ASCII characters"));
            }
            if self.models[..i].iter().any(|o| o.model == m.model) {
                return Err(format!("model {:?} listed twice", m.model));
            }
        }
        Ok(())
    }

    pub fn offer(&self, model: &str) -> Option<&ModelOffer> {
        self.models.iter().find(|m| m.model == model)
    }
}

/// The off-ledger payment message: "channel `channel` at nonce `nonce` owes the recipient
/// `amount` in total". Signed by the channel's signer; a later voucher supersedes an
/// earlier one (amounts are cumulative), and every claim or reclaim bumps the nonce, so
/// older vouchers die.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Voucher {
    pub chain_id: String,
    #[serde(with = "crate::serde_u64")]
    pub channel: u64,
    #[serde(with = "crate::serde_u64")]
    pub nonce: u64,
    pub amount: Amount,
}

impl Voucher {
    pub fn signing_hash(&self) -> Hash {
        Hash::domain(VOUCHER_SIGNING_CONTEXT, &[&codec::encode(self)])
    }
}

/// One channel's part of a `ClaimChannels` transaction.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelClaim {
    #[serde(with = "crate::serde_u64")]
    pub channel: u64,
    /// The voucher's cumulative amount (signed at the channel's current nonce).
    pub voucher_amount: Amount,
    pub signature: Signature,
    /// What to take now (≤ the voucher's amount; usually equal).
    pub amount: Amount,
    /// Return the rest of the escrow to the sender (closing the channel until refunded).
    pub send_back: bool,
}

/// The voucher a caller sends with a call, as the `x-tessera-voucher` header:
/// `CHANNEL:NONCE:AMOUNT:SIGNATURE_HEX` (amount in TSR base units).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VoucherHeader {
    pub channel: u64,
    pub nonce: u64,
    pub amount: Amount,
    pub signature: Signature,
}

impl fmt::Display for VoucherHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}:{}", self.channel, self.nonce, self.amount.0, hex::encode(self.signature.0))
    }
}

impl FromStr for VoucherHeader {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || "the voucher header is CHANNEL:NONCE:AMOUNT:SIGNATURE_HEX".to_string();
        let mut it = s.trim().split(':');
        let (c, n, a, sig) = match (it.next(), it.next(), it.next(), it.next(), it.next()) {
            (Some(c), Some(n), Some(a), Some(sig), None) => (c, n, a, sig),
            _ => return Err(bad()),
        };
        let mut signature = [0u8; 64];
        hex::decode_to_slice(sig, &mut signature).map_err(|_| bad())?;
        Ok(VoucherHeader {
            channel: c.parse().map_err(|_| bad())?,
            nonce: n.parse().map_err(|_| bad())?,
            amount: Amount(a.parse().map_err(|_| bad())?),
            signature: Signature(signature),
        })
    }
}
