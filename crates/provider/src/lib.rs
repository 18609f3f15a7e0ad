//! The provider side of paid AI access: checking the voucher that comes with each call,
//! reserving the call's worst-case cost, billing its actual cost, keeping the latest
//! voucher per channel durably, and building claims.
//!
//! The payment rule (post-paid, at most one call's worst case on credit): a call is
//! admitted with a voucher of cumulative amount `A` at the channel's current nonce only if
//! `A` covers everything billed on this nonce plus the worst case of every call already
//! in flight. So whatever happens to the call being admitted, the provider's exposure is
//! at most that call's worst case, and every earlier call is paid for by `A`. A voucher
//! below the best one kept is accepted when it covers that much (a payer's concurrent
//! calls arrive in any order); the best one is what is claimed. There is no
//! per-channel lock across a call: admission and billing are short critical sections on
//! an in-memory book, so many calls may run on one channel at once, and a crash leaves no
//! state to clean up (a call that never finished is simply never billed).
//!
//! Rounding, stated once: a call's cost is ⌈(input_tokens · input_price + output_tokens ·
//! output_price) / 1,000,000⌉ TSR base units (`cost`), never less than the exact price.

pub mod batcher;
pub mod book;
pub mod server;
pub mod store;
pub mod upstream;
pub mod verifier;

pub use book::{sign_voucher, Book, ChannelInfo, Claimable, PayError, Settled, Ticket, VoucherHeader};
pub use store::{ChannelRecord, Durable, StoreError, VoucherStore};

use primitives::channel::ModelOffer;
use primitives::Amount;

/// Tokens per price unit: prices are per million tokens.
pub const TOKENS_PER_PRICE_UNIT: u128 = 1_000_000;

/// The cost of a call, rounded up to a whole base unit.
pub fn cost(offer: &ModelOffer, input_tokens: u64, output_tokens: u64) -> Amount {
    let micro = offer
        .input_price_per_mtok
        .0
        .saturating_mul(u128::from(input_tokens))
        .saturating_add(offer.output_price_per_mtok.0.saturating_mul(u128::from(output_tokens)));
    Amount(micro.div_ceil(TOKENS_PER_PRICE_UNIT))
}

/// What a `GET /v1/tessera/claims` answer says is owed on `channel` (0 when it lists none).
pub fn owed_in_claims(claims: &serde_json::Value, channel: u64) -> Result<Amount, String> {
    let owed = claims["channels"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["channel"].as_str() == Some(&channel.to_string()))
        .and_then(|r| r["owed"].as_str());
    match owed {
        None => Ok(Amount::ZERO),
        Some(s) => s.parse().map(Amount).map_err(|_| format!("owed {s:?} is not an amount")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_rounds_up_once() {
        let offer =
            ModelOffer { model: "m".into(), input_price_per_mtok: Amount(1_000), output_price_per_mtok: Amount(3_000) };
        // 10 input and 5 output tokens: (10·1000 + 5·3000)/1e6 = 0.025 → 1 base unit.
        assert_eq!(cost(&offer, 10, 5), Amount(1));
        assert_eq!(cost(&offer, 1_000, 0), Amount(1));
        assert_eq!(cost(&offer, 1_001, 0), Amount(2));
        assert_eq!(cost(&offer, 0, 0), Amount(0));
        assert_eq!(cost(&offer, 2_000_000, 1_000_000), Amount(5_000));
    }
}
