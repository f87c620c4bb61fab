//! Padding to size buckets, so the length of an MLS ciphertext or an attachment blob tells the
//! relay little more than "short", "a page" or "about this many 64 KiB".
//!
//! ```text
//! padded = content length u32 BE (4) || content || zeros, to padded_len(4 + content length)
//! ```
//!
//! Buckets are the powers of two from 256 bytes to 64 KiB, then multiples of 64 KiB. Unpadding
//! accepts exactly one padded form for each content: the right bucket, all-zero padding.

use zeroize::Zeroize;

use crate::codec::{DecodeError, EncodeError, Writer, MAX_FIELD_LEN};

/// The smallest bucket, in bytes.
pub const MIN_BUCKET: u64 = 256;

/// Above this size, buckets are its multiples rather than powers of two: 64 KiB.
pub const LARGE_BUCKET_STEP: u64 = 64 * 1024;

const LENGTH_PREFIX_LEN: usize = 4;

/// The bucket `len` bytes are padded to: the smallest power of two that is at least 256 and holds
/// them, up to 64 KiB; above that, `len` rounded up to a multiple of 64 KiB. `None` only for
/// lengths above the largest multiple of 64 KiB a `u64` holds.
pub fn padded_len(len: u64) -> Option<u64> {
    if len <= LARGE_BUCKET_STEP {
        Some(len.max(MIN_BUCKET).next_power_of_two())
    } else {
        len.div_ceil(LARGE_BUCKET_STEP)
            .checked_mul(LARGE_BUCKET_STEP)
    }
}

fn bucket(len: usize) -> Option<usize> {
    padded_len(u64::try_from(len).ok()?).and_then(|len| usize::try_from(len).ok())
}

/// Pads `content` (at most [`MAX_FIELD_LEN`] bytes) to its bucket.
pub fn pad(content: &[u8]) -> Result<Vec<u8>, EncodeError> {
    pad_with(content.len(), |writer| {
        writer.raw(content);
        Ok(())
    })
}

/// Pads whatever `write` writes. `size_hint` is an upper bound on its length (or 0), used to size
/// the buffer once: content may hold a key, and a buffer that grows leaves copies behind.
pub(crate) fn pad_with(
    size_hint: usize,
    write: impl FnOnce(&mut Writer) -> Result<(), EncodeError>,
) -> Result<Vec<u8>, EncodeError> {
    let capacity = LENGTH_PREFIX_LEN
        .checked_add(size_hint)
        .and_then(bucket)
        .unwrap_or(0);
    let mut writer = Writer::with_capacity(capacity);
    // The length goes first but is known last; this placeholder is overwritten below.
    writer.u32(0);
    let written = write(&mut writer);
    let mut out = writer.into_bytes();
    let content_len = out.len().saturating_sub(LENGTH_PREFIX_LEN);
    let too_long = EncodeError::TooLong {
        what: "padded content",
    };
    let sizes = written.and_then(|()| {
        let prefix = u32::try_from(content_len)
            .ok()
            .filter(|_| content_len <= MAX_FIELD_LEN)
            .ok_or(too_long)?;
        Ok((prefix, bucket(out.len()).ok_or(too_long)?))
    });
    let (prefix, total) = match sizes {
        Ok(sizes) => sizes,
        Err(error) => {
            out.zeroize();
            return Err(error);
        }
    };
    if let Some(slot) = out.get_mut(..LENGTH_PREFIX_LEN) {
        slot.copy_from_slice(&prefix.to_be_bytes());
    }
    out.resize(total, 0);
    Ok(out)
}

/// The content of a padded buffer. Refused: a buffer too short for its length, a length over
/// [`MAX_FIELD_LEN`] or beyond the buffer, a buffer that is not the bucket for its content, and
/// padding that is not all zeros.
pub fn unpad(padded: &[u8]) -> Result<&[u8], DecodeError> {
    let (prefix, rest) = padded
        .split_first_chunk::<LENGTH_PREFIX_LEN>()
        .ok_or(DecodeError::Truncated)?;
    let content_len = usize::try_from(u32::from_be_bytes(*prefix))
        .ok()
        .filter(|len| *len <= MAX_FIELD_LEN)
        .ok_or(DecodeError::TooLong {
            what: "padded content",
        })?;
    if content_len > rest.len() {
        return Err(DecodeError::Truncated);
    }
    if bucket(LENGTH_PREFIX_LEN + content_len) != Some(padded.len()) {
        return Err(DecodeError::WrongBucket);
    }
    let (content, padding) = rest.split_at(content_len);
    if padding.iter().any(|byte| *byte != 0) {
        return Err(DecodeError::BadPadding);
    }
    Ok(content)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_powers_of_two_then_multiples_of_64_kib() {
        for (len, bucket) in [
            (0, 256),
            (1, 256),
            (256, 256),
            (257, 512),
            (1000, 1024),
            (1025, 2048),
            (65_535, 65_536),
            (65_536, 65_536),
            (65_537, 131_072),
            (131_073, 196_608),
            (10 * 65_536, 10 * 65_536),
            (10 * 65_536 + 1, 11 * 65_536),
        ] {
            assert_eq!(padded_len(len), Some(bucket), "{len}");
        }
        let last_bucket = u64::MAX - LARGE_BUCKET_STEP + 1;
        assert_eq!(padded_len(last_bucket), Some(last_bucket));
        assert_eq!(padded_len(last_bucket + 1), None);
        assert_eq!(padded_len(u64::MAX), None);
    }

    #[test]
    fn padding_round_trips_at_bucket_edges() {
        for len in [0, 1, 252, 253, 508, 509, 65_532, 65_533, 200_000] {
            let content = vec![0xa5; len];
            let padded = pad(&content).unwrap();
            assert_eq!(
                padded.len() as u64,
                padded_len(4 + len as u64).unwrap(),
                "{len}"
            );
            assert_eq!(padded[..4], (len as u32).to_be_bytes());
            assert_eq!(unpad(&padded), Ok(&content[..]), "{len}");
        }
        assert_eq!(pad(&[0; 252]).unwrap().len(), 256);
        assert_eq!(pad(&[0; 253]).unwrap().len(), 512);
    }

    #[test]
    fn content_over_the_limit_is_not_padded() {
        assert_eq!(
            pad(&vec![0; MAX_FIELD_LEN + 1]),
            Err(EncodeError::TooLong {
                what: "padded content"
            })
        );
        let mut padded = vec![0; 256];
        padded[..4].copy_from_slice(&(MAX_FIELD_LEN as u32 + 1).to_be_bytes());
        assert_eq!(
            unpad(&padded),
            Err(DecodeError::TooLong {
                what: "padded content"
            })
        );
    }

    #[test]
    fn a_length_beyond_the_buffer_is_truncated() {
        let mut padded = pad(b"hello").unwrap();
        padded[..4].copy_from_slice(&253u32.to_be_bytes());
        assert_eq!(unpad(&padded), Err(DecodeError::Truncated));
        assert_eq!(unpad(&[0, 0, 0]), Err(DecodeError::Truncated));
    }

    #[test]
    fn only_the_bucket_for_the_content_is_accepted() {
        let padded = pad(b"hello").unwrap();
        assert_eq!(unpad(&padded[..255]), Err(DecodeError::WrongBucket));
        let mut longer = padded.clone();
        longer.resize(512, 0);
        assert_eq!(unpad(&longer), Err(DecodeError::WrongBucket));
        assert_eq!(unpad(&padded[..9]), Err(DecodeError::WrongBucket));
    }

    #[test]
    fn padding_must_be_zeros() {
        let mut padded = pad(b"hello").unwrap();
        padded[255] = 1;
        assert_eq!(unpad(&padded), Err(DecodeError::BadPadding));
    }
}
