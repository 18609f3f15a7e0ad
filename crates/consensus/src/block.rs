//! The consensus envelope: what simplex orders and marshal stores, around the ledger's
//! own `Block`.
//!
//! Its digest *is* the ledger's block hash (`BlockHeader::hash`, blake3), so the chain of
//! parent digests consensus checks is the chain of `parent_hash`es the ledger checks, and
//! a block is named the same everywhere (API, block log, consensus). Height 0 is the
//! genesis envelope, whose digest is the genesis hash (the `parent_hash` of block 1).
//!
//! Encoding: a tag byte (0 genesis, 1 block), then for genesis its 32-byte hash, for a
//! block a varint length and the ledger's borsh encoding. The decoder bounds the length
//! before reading, rejects trailing bytes inside the borsh payload, and a re-encoding of
//! what it accepts is byte-identical (both encodings are canonical).

use bytes::BufMut;
use commonware_codec::{Buf, EncodeSize, Error as CodecError, Read, ReadExt, Write};
use commonware_consensus::types::Height as CHeight;
use commonware_consensus::{Block as ConsensusBlock, BoundedBlock, Heightable};
use commonware_cryptography::Digestible;
use primitives::{Block, Hash, codec};

pub type Digest = commonware_cryptography::blake3::Digest;

/// The ledger block (or the genesis marker) that consensus orders, with its digest
/// computed once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    kind: Kind,
    digest: Digest,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    Genesis,
    Block(Block),
}

const TAG_GENESIS: u8 = 0;
const TAG_BLOCK: u8 = 1;

pub fn digest_of(hash: &Hash) -> Digest {
    commonware_cryptography::blake3::Digest(hash.0)
}

pub fn hash_of(digest: &Digest) -> Hash {
    Hash(digest.0)
}

impl Envelope {
    /// The height-0 envelope of a chain whose genesis hash is `genesis_hash`. Every
    /// validator builds the same one from the same genesis file.
    pub fn genesis(genesis_hash: Hash) -> Envelope {
        Envelope { kind: Kind::Genesis, digest: digest_of(&genesis_hash) }
    }

    pub fn block(block: Block) -> Envelope {
        let digest = digest_of(&block.header.hash());
        Envelope { kind: Kind::Block(block), digest }
    }

    /// The ledger block (`None` for genesis).
    pub fn ledger_block(&self) -> Option<&Block> {
        match &self.kind {
            Kind::Genesis => None,
            Kind::Block(b) => Some(b),
        }
    }

    pub fn hash(&self) -> Hash {
        hash_of(&self.digest)
    }
}

impl Write for Envelope {
    fn write(&self, buf: &mut impl BufMut) {
        match &self.kind {
            Kind::Genesis => {
                TAG_GENESIS.write(buf);
                buf.put_slice(&self.digest.0);
            }
            Kind::Block(b) => {
                TAG_BLOCK.write(buf);
                let bytes = codec::encode(b);
                bytes.len().write(buf);
                buf.put_slice(&bytes);
            }
        }
    }
}

impl EncodeSize for Envelope {
    fn encode_size(&self) -> usize {
        1 + match &self.kind {
            Kind::Genesis => 32,
            Kind::Block(b) => {
                let len = borsh::object_length(b).expect("borsh length of an in-memory block");
                len.encode_size() + len
            }
        }
    }
}

/// Read configuration: the largest encoded ledger block accepted.
#[derive(Clone, Copy, Debug)]
pub struct EnvelopeCfg {
    pub block_bytes_max: usize,
}

impl Default for EnvelopeCfg {
    fn default() -> Self {
        EnvelopeCfg { block_bytes_max: primitives::limits::BLOCK_BYTES_MAX }
    }
}

impl Read for Envelope {
    type Cfg = EnvelopeCfg;

    fn read_cfg(buf: &mut impl Buf, cfg: &EnvelopeCfg) -> Result<Self, CodecError> {
        match u8::read(buf)? {
            TAG_GENESIS => {
                let hash = <[u8; 32]>::read(buf)?;
                Ok(Envelope::genesis(Hash(hash)))
            }
            TAG_BLOCK => {
                let len = usize::read_cfg(buf, &(..=cfg.block_bytes_max).into())?;
                if buf.remaining() < len {
                    return Err(CodecError::EndOfBuffer);
                }
                let mut bytes = vec![0u8; len];
                buf.copy_to_slice(&mut bytes);
                let block: Block = codec::decode(&bytes, cfg.block_bytes_max)
                    .map_err(|_| CodecError::Invalid("Envelope", "malformed ledger block"))?;
                if block.header.height.0 == 0 {
                    return Err(CodecError::Invalid("Envelope", "a ledger block at height 0"));
                }
                Ok(Envelope::block(block))
            }
            tag => Err(CodecError::InvalidEnum(tag)),
        }
    }
}

impl Digestible for Envelope {
    type Digest = Digest;

    fn digest(&self) -> Digest {
        self.digest
    }
}

impl Heightable for Envelope {
    fn height(&self) -> CHeight {
        match &self.kind {
            Kind::Genesis => CHeight::new(0),
            Kind::Block(b) => CHeight::new(b.header.height.0),
        }
    }
}

impl ConsensusBlock for Envelope {
    fn parent(&self) -> Digest {
        match &self.kind {
            // Genesis has no parent; it names itself (never followed: height 0 is the floor).
            Kind::Genesis => self.digest,
            Kind::Block(b) => digest_of(&b.header.parent_hash),
        }
    }
}

impl BoundedBlock for Envelope {
    fn max_encode_size(cfg: &EnvelopeCfg) -> usize {
        1 + cfg.block_bytes_max.encode_size() + cfg.block_bytes_max
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_codec::{Decode, Encode};

    fn sample() -> Envelope {
        let header = primitives::BlockHeader {
            height: primitives::Height(3),
            parent_hash: Hash([7; 32]),
            timestamp_ms: 1_700_000_000_000,
            proposer: primitives::Address([1; 32]),
            txs_root: Hash([2; 32]),
            receipts_root: Hash([3; 32]),
            state_root: Hash([4; 32]),
        };
        Envelope::block(Block { header, txs: Vec::new() })
    }

    #[test]
    fn round_trips_and_names_the_ledger_hash() {
        let cfg = EnvelopeCfg::default();
        for e in [Envelope::genesis(Hash([9; 32])), sample()] {
            let bytes = e.encode();
            assert_eq!(bytes.len(), e.encode_size());
            let back = Envelope::decode_cfg(bytes.clone(), &cfg).unwrap();
            assert_eq!(back, e);
            assert_eq!(back.encode(), bytes);
        }
        let b = sample();
        assert_eq!(b.hash(), b.ledger_block().unwrap().header.hash());
        assert_eq!(b.parent(), digest_of(&Hash([7; 32])));
        assert_eq!(b.height(), CHeight::new(3));
    }

    #[test]
    fn rejects_oversize_truncated_and_trailing_input() {
        let bytes = sample().encode().to_vec();
        let small = EnvelopeCfg { block_bytes_max: 16 };
        assert!(Envelope::decode_cfg(bytes::Bytes::from(bytes.clone()), &small).is_err());
        let cfg = EnvelopeCfg::default();
        assert!(Envelope::decode_cfg(bytes::Bytes::copy_from_slice(&bytes[..bytes.len() - 1]), &cfg).is_err());
        let mut long = bytes.clone();
        long.push(0);
        assert!(Envelope::decode_cfg(bytes::Bytes::from(long), &cfg).is_err());
        assert!(Envelope::decode_cfg(bytes::Bytes::from_static(&[7u8]), &cfg).is_err());
    }

    proptest::proptest! {
        /// Whatever a peer sends, decoding never panics, and what it accepts encodes back to
        /// the same bytes (so a digest names one encoding).
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            let cfg = EnvelopeCfg { block_bytes_max: 4096 };
            if let Ok(e) = Envelope::decode_cfg(bytes::Bytes::from(bytes.clone()), &cfg) {
                proptest::prop_assert_eq!(e.encode().to_vec(), bytes);
            }
        }

        #[test]
        fn a_mutated_block_never_decodes_to_another_digest_silently(flip in 0usize..200, bit in 0u8..8) {
            let bytes = sample().encode().to_vec();
            let mut mutated = bytes.clone();
            let i = flip % mutated.len();
            mutated[i] ^= 1 << bit;
            if let Ok(e) = Envelope::decode_cfg(bytes::Bytes::from(mutated.clone()), &EnvelopeCfg::default()) {
                proptest::prop_assert_eq!(e.encode().to_vec(), mutated);
                proptest::prop_assert_ne!(e.digest(), sample().digest());
            }
        }
    }
}
