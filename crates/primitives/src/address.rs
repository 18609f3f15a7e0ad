//! `Address`: an ed25519 public key (32 bytes), shown as bech32m with the prefix `tsr`.

use bech32::{Bech32m, Hrp};
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

pub const ADDRESS_HRP: &str = "tsr";

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, BorshSerialize, BorshDeserialize)]
pub struct Address(pub [u8; 32]);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("not a bech32m address: {0:?}")]
    Encoding(String),
    #[error("address prefix must be \"tsr\", got {0:?}")]
    Prefix(String),
    #[error("an address holds 32 bytes, got {0}")]
    Length(usize),
}

impl Address {
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hrp = Hrp::parse_unchecked(ADDRESS_HRP);
        let s = bech32::encode::<Bech32m>(hrp, &self.0).map_err(|_| fmt::Error)?;
        f.write_str(&s)
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({self})")
    }
}

impl FromStr for Address {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let shown = || s.chars().take(100).collect::<String>();
        let checked = bech32::primitives::decode::CheckedHrpstring::new::<Bech32m>(s)
            .map_err(|_| AddressError::Encoding(shown()))?;
        if checked.hrp().as_str() != ADDRESS_HRP {
            return Err(AddressError::Prefix(checked.hrp().to_string()));
        }
        let bytes: Vec<u8> = checked.byte_iter().collect();
        let arr: [u8; 32] = bytes.as_slice().try_into().map_err(|_| AddressError::Length(bytes.len()))?;
        Ok(Address(arr))
    }
}

impl Serialize for Address {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str> as Deserialize>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rejects_other_prefixes_and_checksums() {
        let a = Address([7; 32]).to_string();
        assert!(a.starts_with("tsr1"));
        let mut broken = a.clone();
        broken.pop();
        broken.push(if a.ends_with('q') { 'p' } else { 'q' });
        assert!(matches!(broken.parse::<Address>(), Err(AddressError::Encoding(_))));
        let other = bech32::encode::<Bech32m>(Hrp::parse("btc").unwrap(), &[7; 32]).unwrap();
        assert!(matches!(other.parse::<Address>(), Err(AddressError::Prefix(_))));
        let short = bech32::encode::<Bech32m>(Hrp::parse("tsr").unwrap(), &[7; 31]).unwrap();
        assert_eq!(short.parse::<Address>(), Err(AddressError::Length(31)));
        // bech32 (not bech32m) checksums are refused.
        let legacy = bech32::encode::<bech32::Bech32>(Hrp::parse("tsr").unwrap(), &[7; 32]).unwrap();
        assert!(legacy.parse::<Address>().is_err());
    }

    proptest! {
        #[test]
        fn round_trip(bytes in any::<[u8; 32]>()) {
            let a = Address(bytes);
            prop_assert_eq!(a.to_string().parse::<Address>(), Ok(a));
        }
    }
}
