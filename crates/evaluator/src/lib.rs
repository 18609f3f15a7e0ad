//! `tessera evaluator`: the Bittensor validator's job for Tessera's AI network.
//!
//! Every round the evaluator pays each registered provider for a few small calls through a
//! payment channel, scores what came back, and (holding a validator permit) submits weights
//! proportional to its running scores, which the Yuma-consensus epoch turns into the
//! providers' incentive. Scoring rules (docs/evaluator.md has them for operators):
//!
//! * **correctness** (0..1), for models the evaluator runs itself: a chat model is asked at
//!   temperature 0 and its answer compared token by token with the evaluator's own greedy
//!   run (the share of the longer answer's tokens that match, from the start); an embedding
//!   model is compared by cosine, mapped linearly from `cosine_floor` (0) to 1 (1). Models
//!   it cannot run count as correct when they answer.
//! * **latency** (0..1): `latency_target_ms / latency`, capped at 1.
//! * **price** (0..1): the cheapest provider's cost for the same probe over this one's.
//! * **honesty**: a call billed above the provider's advertised price for the tokens the
//!   evaluator counts itself, or any failed call, scores 0.
//!
//! A probe's score is `w_correctness·c + w_latency·l + w_price·p` (weights normalised), a
//! round's is the mean over the provider's probes, and the running score is an EMA with
//! `ema_alpha`. Weights are the running scores max-upscaled to 65535.

pub mod daemon;
pub mod score;

pub use daemon::{run, EvaluatorConfig};
pub use score::Scoring;
