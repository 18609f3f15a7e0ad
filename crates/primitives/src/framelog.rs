//! Checksummed frames for append-only logs (the provider's voucher log): each frame is its
//! payload's length (u32 LE), a checksum (the first 8 bytes of BLAKE3 over the length and
//! the payload) and the payload. [`scan`] reads a log back and tells a torn last frame (a
//! crash during its write) from damage before good frames.

/// Length and checksum.
pub const FRAME_HEAD: usize = 12;

fn checksum(len: &[u8; 4], payload: &[u8]) -> [u8; 8] {
    let mut h = blake3::Hasher::new();
    h.update(len);
    h.update(payload);
    let mut out = [0; 8];
    out.copy_from_slice(&h.finalize().as_bytes()[..8]);
    out
}

/// Appends one frame holding `payload` to `out`.
pub fn push_frame(payload: &[u8], out: &mut Vec<u8>) {
    let len = u32::try_from(payload.len()).expect("a frame below 4 GiB").to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&checksum(&len, payload));
    out.extend_from_slice(payload);
}

/// What [`scan`] found.
#[derive(Debug, PartialEq, Eq)]
pub struct Scanned<'a> {
    /// Each good frame's offset and payload, in order.
    pub frames: Vec<(usize, &'a [u8])>,
    /// Where the last good frame ends: the next frame goes here.
    pub end: usize,
    /// A torn last frame at `end` (cut off by a crash while it was written), and why it is
    /// not whole; `None` when only zeros (space allocated ahead) or nothing follow `end`.
    pub torn: Option<&'static str>,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame at offset {offset} claims {len} bytes, more than {max}")]
    TooLong { offset: usize, len: usize, max: usize },
    #[error("frame at offset {offset} fails its checksum and more data follows it")]
    Checksum { offset: usize },
}

/// Reads the frames of `bytes` from `start`. Zeros after the last good frame are space the
/// log allocated ahead and end it quietly. A frame that is not whole is a torn last frame
/// when nothing but zeros follows it (a frame shorter than its length claims, a checksum
/// that fails at the end, a header of zeros: a frame's header never is all zeros, since its
/// checksum is not); a failing checksum with other data after it is damage, an error.
pub fn scan(bytes: &[u8], start: usize, frame_max: usize) -> Result<Scanned<'_>, FrameError> {
    let mut frames = Vec::new();
    let mut at = start.min(bytes.len());
    let mut torn = None;
    while at < bytes.len() {
        let rest = &bytes[at..];
        let head_zero = rest[..rest.len().min(FRAME_HEAD)].iter().all(|&b| b == 0);
        if head_zero && rest.iter().all(|&b| b == 0) {
            break;
        }
        if rest.len() < FRAME_HEAD || head_zero {
            torn = Some("short header");
            break;
        }
        let len: [u8; 4] = rest[..4].try_into().expect("4 bytes");
        let size = u32::from_le_bytes(len) as usize;
        if size > frame_max {
            return Err(FrameError::TooLong { offset: at, len: size, max: frame_max });
        }
        let end = FRAME_HEAD + size;
        if end > rest.len() {
            torn = Some("short payload");
            break;
        }
        let payload = &rest[FRAME_HEAD..end];
        if checksum(&len, payload) != rest[4..FRAME_HEAD] {
            if rest[end..].iter().all(|&b| b == 0) {
                torn = Some("checksum");
                break;
            }
            return Err(FrameError::Checksum { offset: at });
        }
        frames.push((at, payload));
        at += end;
    }
    Ok(Scanned { frames, end: at, torn })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_read_back_and_a_torn_tail_is_told_from_damage() {
        let mut log = b"head".to_vec();
        push_frame(b"one", &mut log);
        push_frame(b"", &mut log);
        push_frame(b"three!", &mut log);
        let s = scan(&log, 4, 64).unwrap();
        let payloads: Vec<&[u8]> = s.frames.iter().map(|f| f.1).collect();
        assert_eq!(payloads, [&b"one"[..], b"", b"three!"]);
        assert_eq!((s.end, s.torn), (log.len(), None));
        // Zeros after: allocated space, not a torn frame.
        let mut padded = log.clone();
        padded.resize(log.len() + 100, 0);
        assert_eq!(scan(&padded, 4, 64).unwrap(), s);
        // The last frame cut short, with or without zeros after it.
        let last = log.len() - (FRAME_HEAD + 6);
        for cut in 1..FRAME_HEAD + 6 {
            let mut torn = log[..log.len() - cut].to_vec();
            let t = scan(&torn, 4, 64).unwrap();
            assert_eq!((t.frames.len(), t.end), (2, last));
            assert!(t.torn.is_some());
            torn.resize(log.len() + 10, 0);
            let t = scan(&torn, 4, 64).unwrap();
            assert_eq!((t.frames.len(), t.end, t.torn.is_some()), (2, last, true), "cut {cut}");
        }
        // A flipped bit in the first frame, with good frames after it: damage.
        let mut bad = log.clone();
        bad[4 + FRAME_HEAD] ^= 1;
        assert_eq!(scan(&bad, 4, 64), Err(FrameError::Checksum { offset: 4 }));
        // A length beyond the limit.
        assert!(matches!(scan(&log, 4, 4), Err(FrameError::TooLong { offset: 31, len: 6, max: 4 })));
    }
}
