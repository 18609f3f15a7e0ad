//! `Amount`: a quantity of one asset in base units (u128). Arithmetic is checked, never
//! wrapping; decimals exist only at display and parse time, and conversions are exact.

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug, BorshSerialize, BorshDeserialize)]
pub struct Amount(pub u128);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("not a decimal amount: {0:?}")]
    Syntax(String),
    #[error("{input:?} has more than {decimals} decimal places")]
    TooPrecise { input: String, decimals: u8 },
    #[error("{0:?} does not fit in 128 bits of base units")]
    Overflow(String),
}

impl Amount {
    pub const ZERO: Amount = Amount(0);
    pub const MAX: Amount = Amount(u128::MAX);

    pub fn checked_add(self, other: Amount) -> Option<Amount> {
        self.0.checked_add(other.0).map(Amount)
    }

    pub fn checked_sub(self, other: Amount) -> Option<Amount> {
        self.0.checked_sub(other.0).map(Amount)
    }

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// Parses a decimal string ("12.5") into base units for an asset with `decimals`.
    /// Exact: more fractional digits than the asset has is an error, never a rounding.
    pub fn from_decimal_str(input: &str, decimals: u8) -> Result<Amount, AmountError> {
        let syntax = || AmountError::Syntax(input.chars().take(80).collect());
        let (whole, frac) = match input.split_once('.') {
            Some((w, f)) => (w, f),
            None => (input, ""),
        };
        if whole.is_empty() && frac.is_empty() {
            return Err(syntax());
        }
        if !whole.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(syntax());
        }
        if input.contains('.') && frac.is_empty() {
            return Err(syntax());
        }
        let frac_trimmed = frac.trim_end_matches('0');
        if frac_trimmed.len() > decimals as usize {
            return Err(AmountError::TooPrecise { input: input.to_string(), decimals });
        }
        let overflow = || AmountError::Overflow(input.chars().take(80).collect());
        let scale = 10u128.checked_pow(decimals as u32).ok_or_else(overflow)?;
        let mut whole_units: u128 = 0;
        for b in whole.bytes() {
            whole_units =
                whole_units.checked_mul(10).and_then(|v| v.checked_add((b - b'0') as u128)).ok_or_else(overflow)?;
        }
        let mut frac_units: u128 = 0;
        for i in 0..decimals as usize {
            let digit = frac_trimmed.as_bytes().get(i).map_or(0, |b| (b - b'0') as u128);
            frac_units = frac_units * 10 + digit;
        }
        whole_units.checked_mul(scale).and_then(|v| v.checked_add(frac_units)).map(Amount).ok_or_else(overflow)
    }

    /// Formats base units as a decimal string with no trailing zeros ("12.5", "3").
    pub fn to_decimal_string(self, decimals: u8) -> String {
        let scale = 10u128.pow(decimals as u32);
        let whole = self.0 / scale;
        let frac = self.0 % scale;
        if frac == 0 {
            return whole.to_string();
        }
        let frac = format!("{:0width$}", frac, width = decimals as usize);
        format!("{}.{}", whole, frac.trim_end_matches('0'))
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// JSON: base units as a decimal string (128-bit numbers do not survive JSON numbers).
impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str> as Deserialize>::deserialize(d)?;
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(serde::de::Error::custom(format!(
                "amount must be base units as a decimal string, got {:?}",
                s.chars().take(80).collect::<String>()
            )));
        }
        s.parse::<u128>().map(Amount).map_err(|_| serde::de::Error::custom(format!("amount overflows 128 bits: {s:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check(input: &str, decimals: u8, expected: Result<u128, ()>) {
        let got = Amount::from_decimal_str(input, decimals).map(|a| a.0).map_err(|_| ());
        assert_eq!(got, expected, "parsing {input:?} with {decimals} decimals");
    }

    #[test]
    fn parses_exactly() {
        check("12.5", 9, Ok(12_500_000_000));
        check("0.000000001", 9, Ok(1));
        check("1", 0, Ok(1));
        check("1.0", 0, Ok(1));
        check(".5", 1, Ok(5));
        check("0.0000000001", 9, Err(()));
        check("1.", 9, Err(()));
        check("", 9, Err(()));
        check("-1", 9, Err(()));
        check("1e9", 9, Err(()));
        check(" 1", 9, Err(()));
        check("340282366920938463463374607431768211455", 0, Ok(u128::MAX));
        check("340282366920938463463374607431768211456", 0, Err(()));
        check("340282366920938463463.374607431768211456", 18, Err(()));
    }

    #[test]
    fn formats_without_trailing_zeros() {
        assert_eq!(Amount(12_500_000_000).to_decimal_string(9), "12.5");
        assert_eq!(Amount(1).to_decimal_string(9), "0.000000001");
        assert_eq!(Amount(3_000_000_000).to_decimal_string(9), "3");
        assert_eq!(Amount(7).to_decimal_string(0), "7");
    }

    #[test]
    fn json_is_a_decimal_string() {
        assert_eq!(serde_json::to_string(&Amount(u128::MAX)).unwrap(), format!("\"{}\"", u128::MAX));
        assert!(serde_json::from_str::<Amount>("\"-1\"").is_err());
        assert!(serde_json::from_str::<Amount>("12").is_err());
    }

    proptest! {
        #[test]
        fn decimal_round_trip(units in any::<u128>(), decimals in 0u8..=18) {
            let s = Amount(units).to_decimal_string(decimals);
            prop_assert_eq!(Amount::from_decimal_str(&s, decimals), Ok(Amount(units)));
        }
    }
}
