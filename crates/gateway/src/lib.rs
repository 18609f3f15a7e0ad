//! `tessera gateway`: any OpenAI client (the official SDKs, curl, LangChain) uses Tessera's
//! AI network through one local base URL. Self-custody mode: the gateway holds the user's
//! key, opens and funds a payment channel to each provider it uses, and signs vouchers
//! itself. Per request it routes among the registered providers serving the model — higher
//! incentive first (the evaluators' consensus), then lower price, with the request's
//! `provider` preferences (order, only, allow_fallbacks, max_price) — and falls back to the
//! next provider on failure or timeout before any byte was streamed. Responses are the
//! provider's (with `usage.cost` and the `x-tessera-*` payment headers) plus
//! `x-tessera-provider` naming who served the call.

pub mod directory;
pub mod operator;
pub mod payer;
pub mod server;

pub use server::{router, start, Gateway, GatewayConfig};
