//! The lattice hash (LtHash) behind the state root: a homomorphic multiset hash, as in
//! Bellare-Micciancio and Solana's accounts lattice hash (SIMD-0215).
//!
//! Each state entry (key and value bytes) maps to 1024 u16 lanes by blake3's XOF; the
//! state's hash is the lane-wise sum (mod 2^16) over all entries. Changing an entry
//! subtracts its old lanes and adds its new ones, so a block costs O(entries it wrote),
//! not O(state), while the root still commits to every entry of the whole state.

pub const LTHASH_LANES: usize = 1024;

#[derive(Clone, PartialEq, Eq)]
pub struct LtHash(pub Box<[u16; LTHASH_LANES]>);

impl std::fmt::Debug for LtHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LtHash({})", self.checksum())
    }
}

impl Default for LtHash {
    fn default() -> Self {
        LtHash::identity()
    }
}

impl LtHash {
    pub fn identity() -> LtHash {
        LtHash(Box::new([0; LTHASH_LANES]))
    }

    /// The lanes of one entry.
    pub fn of_entry(entry: &[u8]) -> LtHash {
        let mut h = LtHash::identity();
        h.add_entry(entry);
        h
    }

    fn expand(entry: &[u8], bytes: &mut [u8; LTHASH_LANES * 2]) {
        let mut hasher = blake3::Hasher::new_derive_key("tessera 2026-11 state entry lthash v1");
        hasher.update(entry);
        hasher.finalize_xof().fill(bytes);
    }

    /// Adds one entry's lanes without allocating.
    pub fn add_entry(&mut self, entry: &[u8]) {
        let mut bytes = [0u8; LTHASH_LANES * 2];
        Self::expand(entry, &mut bytes);
        let lanes: &mut [u16; LTHASH_LANES] = &mut self.0;
        for i in 0..LTHASH_LANES {
            lanes[i] = lanes[i].wrapping_add(u16::from_le_bytes([bytes[2 * i], bytes[2 * i + 1]]));
        }
    }

    /// Subtracts one entry's lanes without allocating.
    pub fn sub_entry(&mut self, entry: &[u8]) {
        let mut bytes = [0u8; LTHASH_LANES * 2];
        Self::expand(entry, &mut bytes);
        let lanes: &mut [u16; LTHASH_LANES] = &mut self.0;
        for i in 0..LTHASH_LANES {
            lanes[i] = lanes[i].wrapping_sub(u16::from_le_bytes([bytes[2 * i], bytes[2 * i + 1]]));
        }
    }

    pub fn add(&mut self, other: &LtHash) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a = a.wrapping_add(*b);
        }
    }

    pub fn sub(&mut self, other: &LtHash) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a = a.wrapping_sub(*b);
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.iter().flat_map(|l| l.to_le_bytes()).collect()
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<LtHash> {
        if bytes.len() != LTHASH_LANES * 2 {
            return None;
        }
        let mut lanes = Box::new([0u16; LTHASH_LANES]);
        for (lane, chunk) in lanes.iter_mut().zip(bytes.chunks_exact(2)) {
            *lane = u16::from_le_bytes([chunk[0], chunk[1]]);
        }
        Some(LtHash(lanes))
    }

    /// 32-byte digest of the lanes: the state root.
    pub fn checksum(&self) -> primitives::Hash {
        primitives::Hash::domain("tessera 2026-11 state root v1", &[&self.to_bytes()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_independent_and_invertible() {
        let (a, b, c) = (LtHash::of_entry(b"a"), LtHash::of_entry(b"b"), LtHash::of_entry(b"c"));
        let mut x = LtHash::identity();
        x.add(&a);
        x.add(&b);
        x.add(&c);
        let mut y = LtHash::identity();
        y.add(&c);
        y.add(&a);
        y.add(&b);
        assert_eq!(x, y);
        y.sub(&b);
        assert_ne!(x.checksum(), y.checksum());
        y.add(&b);
        assert_eq!(x.checksum(), y.checksum());
        assert_eq!(LtHash::from_bytes(&x.to_bytes()), Some(x));
    }
}
