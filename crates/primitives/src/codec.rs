//! The canonical binary encoding: borsh, with a size limit on every decode and no
//! trailing bytes. Every byte string from outside goes through `decode`.

use borsh::{BorshDeserialize, BorshSerialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("input is {len} bytes, more than the {max} allowed")]
    TooLong { len: usize, max: usize },
    #[error("malformed encoding: {0}")]
    Malformed(String),
}

pub fn encode<T: BorshSerialize + ?Sized>(value: &T) -> Vec<u8> {
    borsh::to_vec(value).expect("borsh encoding into a Vec cannot fail")
}

/// Decodes exactly one value from `bytes`; rejects inputs over `bytes_max` before reading
/// them, trailing bytes, non-canonical tags and invalid field values.
pub fn decode<T: BorshDeserialize>(bytes: &[u8], bytes_max: usize) -> Result<T, DecodeError> {
    if bytes.len() > bytes_max {
        return Err(DecodeError::TooLong { len: bytes.len(), max: bytes_max });
    }
    borsh::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))
}
