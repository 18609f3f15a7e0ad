//! Tessera's bounded pool of verified transactions with per-signer nonce queues.
