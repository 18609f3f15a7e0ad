//! `AssetId`: an asset's ticker symbol, 1 to 12 characters of `A-Z` and `0-9` starting
//! with a letter. Stored inline (no heap) because every balance carries one.

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::io::{Read, Write};
use std::str::FromStr;

pub const ASSET_SYMBOL_BYTES_MAX: usize = 12;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AssetId {
    len: u8,
    bytes: [u8; ASSET_SYMBOL_BYTES_MAX],
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("asset symbols are 1-12 characters of A-Z and 0-9 starting with a letter, got {0:?}")]
pub struct AssetIdError(pub String);

impl AssetId {
    /// The native token.
    pub const TSR: AssetId = AssetId { len: 3, bytes: *b"TSR\0\0\0\0\0\0\0\0\0" };

    pub fn new(symbol: &str) -> Result<AssetId, AssetIdError> {
        let b = symbol.as_bytes();
        let valid = !b.is_empty()
            && b.len() <= ASSET_SYMBOL_BYTES_MAX
            && b[0].is_ascii_uppercase()
            && b.iter().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
        if !valid {
            return Err(AssetIdError(symbol.chars().take(40).collect()));
        }
        let mut bytes = [0u8; ASSET_SYMBOL_BYTES_MAX];
        bytes[..b.len()].copy_from_slice(b);
        Ok(AssetId { len: b.len() as u8, bytes })
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII ever enters `bytes` (checked in `new`).
        std::str::from_utf8(&self.bytes[..self.len as usize]).expect("asset symbol is ASCII")
    }
}

impl fmt::Display for AssetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for AssetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AssetId({})", self.as_str())
    }
}

impl FromStr for AssetId {
    type Err = AssetIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AssetId::new(s)
    }
}

/// Encoded like a borsh `String` (u32 length, bytes); decoding validates the symbol.
impl BorshSerialize for AssetId {
    fn serialize<W: Write>(&self, writer: &mut W) -> std::io::Result<()> {
        BorshSerialize::serialize(&(self.len as u32), writer)?;
        writer.write_all(&self.bytes[..self.len as usize])
    }
}

impl BorshDeserialize for AssetId {
    fn deserialize_reader<R: Read>(reader: &mut R) -> std::io::Result<Self> {
        let len = u32::deserialize_reader(reader)? as usize;
        if len == 0 || len > ASSET_SYMBOL_BYTES_MAX {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "asset symbol length"));
        }
        let mut buf = [0u8; ASSET_SYMBOL_BYTES_MAX];
        reader.read_exact(&mut buf[..len])?;
        let s = std::str::from_utf8(&buf[..len])
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "asset symbol utf-8"))?;
        AssetId::new(s).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))
    }
}

impl Serialize for AssetId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for AssetId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str> as Deserialize>::deserialize(d)?;
        AssetId::new(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_symbols() {
        for ok in ["TSR", "USD", "A", "ABCDEFGHIJKL", "X1"] {
            assert_eq!(AssetId::new(ok).unwrap().as_str(), ok);
        }
        for bad in ["", "usd", "1X", "ABCDEFGHIJKLM", "US D", "ÜSD"] {
            assert!(AssetId::new(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(AssetId::TSR, AssetId::new("TSR").unwrap());
    }

    #[test]
    fn borsh_matches_string_and_validates() {
        let id = AssetId::new("USD").unwrap();
        assert_eq!(borsh::to_vec(&id).unwrap(), borsh::to_vec(&"USD".to_string()).unwrap());
        let bad = borsh::to_vec(&"usd".to_string()).unwrap();
        assert!(borsh::from_slice::<AssetId>(&bad).is_err());
        let long = borsh::to_vec(&"A".repeat(13)).unwrap();
        assert!(borsh::from_slice::<AssetId>(&long).is_err());
    }
}
