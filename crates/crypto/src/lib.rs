//! Keys, signatures and batch verification (ZIP-215) for Tessera; the only crate touching
//! a signature library.
//!
//! Verification follows ZIP-215 (via `ed25519-consensus`): single and batch verification
//! accept exactly the same signatures, so every node, and every validator later, reaches
//! the same verdict on edge-case encodings.

use ed25519_consensus::{batch, Signature as EdSignature, VerificationKey, VerificationKeyBytes};
use primitives::{Address, Hash, Signature, SignedTransaction, Transaction};
use rand_core::OsRng;
use rayon::prelude::*;

/// Transactions per batch-verification call; larger batches amortise better but make the
/// fallback (one-by-one after a failed batch) costlier.
pub const VERIFY_BATCH_TXS_MAX: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("signer is not a valid ed25519 public key")]
    BadPublicKey,
    #[error("signature does not verify for this signer and transaction")]
    BadSignature,
}

/// An ed25519 signing key. Its seed is wiped from memory on drop.
pub struct SigningKey(ed25519_consensus::SigningKey);

impl SigningKey {
    pub fn generate() -> SigningKey {
        SigningKey(ed25519_consensus::SigningKey::new(OsRng))
    }

    pub fn from_seed(seed: [u8; 32]) -> SigningKey {
        SigningKey(ed25519_consensus::SigningKey::from(seed))
    }

    /// The 32-byte secret seed. Handle with care.
    pub fn seed(&self) -> zeroize::Zeroizing<[u8; 32]> {
        zeroize::Zeroizing::new(self.0.to_bytes())
    }

    pub fn address(&self) -> Address {
        Address(self.0.verification_key().to_bytes())
    }

    pub fn sign_digest(&self, digest: &Hash) -> Signature {
        Signature(self.0.sign(digest.as_bytes()).to_bytes())
    }

    pub fn sign_tx(&self, tx: Transaction) -> SignedTransaction {
        assert_eq!(tx.signer, self.address(), "signing a transaction for another signer");
        let signature = self.sign_digest(&tx.signing_hash());
        SignedTransaction { tx, signature }
    }
}

impl Clone for SigningKey {
    fn clone(&self) -> Self {
        SigningKey::from_seed(*self.seed())
    }
}

/// Verifies one signature over a 32-byte digest (ZIP-215 rules).
pub fn verify_digest(signer: &Address, digest: &Hash, signature: &Signature) -> Result<(), SignatureError> {
    let vk = VerificationKey::try_from(signer.0).map_err(|_| SignatureError::BadPublicKey)?;
    vk.verify(&EdSignature::from(signature.0), digest.as_bytes()).map_err(|_| SignatureError::BadSignature)
}

pub fn verify_tx(stx: &SignedTransaction) -> Result<(), SignatureError> {
    verify_digest(&stx.tx.signer, &stx.id(), &stx.signature)
}

/// One item to check: signer, signed digest (the transaction id), signature.
pub type VerifyItem = (Address, Hash, Signature);

/// Batch-verifies `items` on the current thread; returns one verdict per item. A failed
/// batch falls back to one-by-one checks to find the culprits, so verdicts are exact.
pub fn verify_batch(items: &[VerifyItem]) -> Vec<bool> {
    if items.len() == 1 {
        let (a, d, s) = &items[0];
        return vec![verify_digest(a, d, s).is_ok()];
    }
    let mut verifier = batch::Verifier::new();
    for (signer, digest, signature) in items {
        verifier.queue((VerificationKeyBytes::from(signer.0), EdSignature::from(signature.0), digest.as_bytes()));
    }
    if verifier.verify(OsRng).is_ok() {
        return vec![true; items.len()];
    }
    items.iter().map(|(a, d, s)| verify_digest(a, d, s).is_ok()).collect()
}

/// Batch-verifies on all cores of the current rayon pool, in chunks of
/// `VERIFY_BATCH_TXS_MAX`. Verdicts are in input order.
pub fn verify_par(items: &[VerifyItem]) -> Vec<bool> {
    if items.len() <= 1 {
        return verify_batch(items); // no trip through the pool for a lone submission
    }
    items.par_chunks(VERIFY_BATCH_TXS_MAX).flat_map_iter(verify_batch).collect()
}

/// Like `verify_par`, skipping item `i` where `checked[i]` is true (its signature was
/// verified before: its verdict is `true`); items past `checked`'s end are verified.
/// Returns the verdicts in input order and how many signatures it verified.
pub fn verify_par_unchecked(items: &[VerifyItem], checked: &[bool]) -> (Vec<bool>, usize) {
    let is_checked = |i: usize| checked.get(i).copied().unwrap_or(false);
    let todo: Vec<usize> = (0..items.len()).filter(|&i| !is_checked(i)).collect();
    if todo.len() == items.len() {
        return (verify_par(items), todo.len());
    }
    let subset: Vec<VerifyItem> = todo.iter().map(|&i| items[i]).collect();
    let mut verdicts = vec![true; items.len()];
    for (i, ok) in todo.iter().zip(verify_par(&subset)) {
        verdicts[*i] = ok;
    }
    (verdicts, todo.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use primitives::{Action, Amount, AssetId};

    fn tx(signer: Address, nonce: u64) -> Transaction {
        Transaction {
            chain_id: "test".into(),
            signer,
            nonce,
            fee: Amount(1),
            expiry_height: None,
            action: Action::Transfer { to: Address([9; 32]), asset: AssetId::TSR, amount: Amount(5) },
        }
    }

    #[test]
    fn batch_finds_exactly_the_bad_signatures() {
        let keys: Vec<SigningKey> = (0..600u32)
            .map(|i| {
                let mut seed = [0u8; 32];
                seed[..4].copy_from_slice(&i.to_le_bytes());
                SigningKey::from_seed(seed)
            })
            .collect();
        let mut items: Vec<VerifyItem> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let stx = k.sign_tx(tx(k.address(), i as u64));
                (stx.tx.signer, stx.id(), stx.signature)
            })
            .collect();
        items[3].2 .0[0] ^= 1; // corrupt a signature
        items[300].1 = Hash([1; 32]); // wrong message
        items[599].0 = keys[0].address(); // wrong signer
        let verdicts = verify_par(&items);
        let bad: Vec<usize> = verdicts.iter().enumerate().filter(|(_, ok)| !**ok).map(|(i, _)| i).collect();
        assert_eq!(bad, vec![3, 300, 599]);

        // Items marked as checked before are trusted and not verified again; the rest
        // (including those past the mask's end) are.
        let mut checked = vec![false; 400];
        checked[3] = true;
        checked[10] = true;
        let (verdicts, verified) = verify_par_unchecked(&items, &checked);
        let bad: Vec<usize> = verdicts.iter().enumerate().filter(|(_, ok)| !**ok).map(|(i, _)| i).collect();
        assert_eq!(bad, vec![300, 599]);
        assert_eq!(verified, 598);
        assert_eq!(verify_par_unchecked(&items, &[]), (verdicts_all(&items), 600));
        assert_eq!(verify_par(&items[3..4]), vec![false]);
        assert!(verify_par(&[]).is_empty());
    }

    fn verdicts_all(items: &[VerifyItem]) -> Vec<bool> {
        items.iter().map(|(a, d, s)| verify_digest(a, d, s).is_ok()).collect()
    }

    #[test]
    fn tampering_with_any_field_breaks_the_signature() {
        let k = SigningKey::from_seed([5; 32]);
        let stx = k.sign_tx(tx(k.address(), 0));
        assert_eq!(verify_tx(&stx), Ok(()));
        let mut other = stx.clone();
        other.tx.nonce = 1;
        assert_eq!(verify_tx(&other), Err(SignatureError::BadSignature));
        let mut other = stx.clone();
        other.tx.chain_id = "other".into();
        assert_eq!(verify_tx(&other), Err(SignatureError::BadSignature));
    }
}
