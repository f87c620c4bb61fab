//! The primitives of Ward wire v1: a [`Writer`] that appends them to a `Vec<u8>`, a [`Reader`] that
//! takes them off untrusted bytes, and the [`Encode`] / [`Decode`] traits the message types
//! implement with them.
//!
//! The encoding follows the TLS presentation language as MLS (RFC 9420 §2.1.2) uses it: integers
//! big-endian at fixed width, fixed-size arrays as raw bytes, and every variable-length byte string
//! or vector behind a QUIC variable-length integer (RFC 9000 §16) giving its length in bytes,
//! restricted, as in MLS, to the 1-, 2- and 4-byte forms and to the shortest form for its value.
//!
//! The reader must never panic, never allocate before it has checked a declared length against
//! both its limit and the bytes actually left, and never accept two encodings of one value: what
//! decodes re-encodes to exactly the same bytes.

/// The largest value a length prefix can carry: the 4-byte form's 30 bits (RFC 9420 §2.1.2).
pub const MAX_VARINT: u64 = (1 << 30) - 1;

/// The longest byte string or vector in v1, in bytes: 16 MiB. It bounds the opaque MLS messages
/// (key packages, commits, proposals, welcomes, application messages) and every vector.
pub const MAX_FIELD_LEN: usize = 16 * 1024 * 1024;

/// The longest message body (text and edits), in bytes of UTF-8: 64 KiB. A clinical note fits many
/// times over; a longer document goes as an attachment.
pub const MAX_TEXT_LEN: usize = 64 * 1024;

/// The longest short label (a group's name, a patient tag, an attachment's name or media type), in
/// bytes of UTF-8: 1 KiB, four times the longest file name common file systems accept.
pub const MAX_LABEL_LEN: usize = 1024;

/// The most items in one vector (key packages, welcome recipients, receipt ids, group members).
pub const MAX_ITEMS: usize = 10_000;

/// Why bytes were refused. No variant carries the input: a refused message may hold anything, and
/// errors end up in logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended inside a value, or a declared length runs past the end of the input.
    #[error("the input ends inside a value")]
    Truncated,
    /// Bytes follow a complete value.
    #[error("bytes follow the end of the value")]
    TrailingBytes,
    /// A format version this build does not read.
    #[error("format version {0} is not one this Ward reads")]
    UnknownVersion(u16),
    /// An enum tag (message kind, option flag, role, …) with no meaning in v1.
    #[error("unknown {what} tag {tag}")]
    UnknownTag {
        /// Which enum the tag belongs to.
        what: &'static str,
        /// The tag that was read.
        tag: u8,
    },
    /// A length prefix not in its shortest form, which would give a value two encodings.
    #[error("a length is not in its shortest encoding")]
    NonMinimalLength,
    /// A length prefix in the 8-byte form, which v1 (like MLS) does not allow.
    #[error("a length uses the 8-byte form, which v1 does not allow")]
    LengthOutOfRange,
    /// A byte string, string or vector longer than its limit.
    #[error("the {what} is longer than v1 allows")]
    TooLong {
        /// Which field.
        what: &'static str,
    },
    /// A vector with more than [`MAX_ITEMS`] items.
    #[error("the {what} has more items than v1 allows")]
    TooManyItems {
        /// Which field.
        what: &'static str,
    },
    /// A string field that is not valid UTF-8.
    #[error("the {what} is not valid UTF-8")]
    InvalidUtf8 {
        /// Which field.
        what: &'static str,
    },
    /// A group lists the same user twice, so it would be unclear which role they hold.
    #[error("the group lists a member twice")]
    DuplicateMember,
    /// Padded content whose size is not the size bucket for its length.
    #[error("the padded content is not the size its length calls for")]
    WrongBucket,
    /// Padding bytes that are not all zero.
    #[error("the padding is not all zeros")]
    BadPadding,
}

/// Why a value could not be encoded: it would break a limit, so the other side would refuse it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A byte string, string or vector longer than its limit.
    #[error("the {what} is longer than v1 allows")]
    TooLong {
        /// Which field.
        what: &'static str,
    },
    /// A vector with more than [`MAX_ITEMS`] items.
    #[error("the {what} has more items than v1 allows")]
    TooManyItems {
        /// Which field.
        what: &'static str,
    },
    /// A group that lists the same user twice.
    #[error("the group lists a member twice")]
    DuplicateMember,
}

/// A value with a v1 encoding.
pub trait Encode {
    /// Appends the encoding to `writer`.
    fn encode(&self, writer: &mut Writer) -> Result<(), EncodeError>;

    /// An upper bound on the encoded length, or 0 for "unknown". Values that carry a key give one,
    /// so their encoding goes into a buffer that never grows: growing would leave a copy of the key
    /// in freed memory.
    fn size_hint(&self) -> usize {
        0
    }

    /// The encoding as a new buffer.
    fn to_bytes(&self) -> Result<Vec<u8>, EncodeError> {
        let mut writer = Writer::with_capacity(self.size_hint());
        self.encode(&mut writer)?;
        Ok(writer.into_bytes())
    }
}

/// A value decoded from untrusted v1 bytes.
pub trait Decode: Sized {
    /// Takes one value off the front of `reader`.
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError>;

    /// Decodes a value that must fill `bytes` exactly.
    fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(bytes);
        let value = Self::decode(&mut reader)?;
        reader.finish()?;
        Ok(value)
    }
}

/// Appends v1 primitives to a buffer.
#[derive(Debug, Default)]
pub struct Writer {
    out: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty writer whose buffer holds `capacity` bytes before it grows.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            out: Vec::with_capacity(capacity),
        }
    }

    /// The bytes written so far.
    pub fn into_bytes(self) -> Vec<u8> {
        self.out
    }

    /// A `u8`.
    pub fn u8(&mut self, value: u8) {
        self.out.push(value);
    }

    /// A big-endian `u16`.
    pub fn u16(&mut self, value: u16) {
        self.out.extend_from_slice(&value.to_be_bytes());
    }

    /// A big-endian `u32`.
    pub fn u32(&mut self, value: u32) {
        self.out.extend_from_slice(&value.to_be_bytes());
    }

    /// A big-endian `u64`.
    pub fn u64(&mut self, value: u64) {
        self.out.extend_from_slice(&value.to_be_bytes());
    }

    /// Fixed-size bytes (an id, a hash, a key), without a length.
    pub fn raw(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    /// A length prefix in its shortest form. `what` names the field in the error.
    pub fn varint(&mut self, what: &'static str, value: u64) -> Result<(), EncodeError> {
        // The casts cannot truncate: each branch has checked the value fits.
        if value < 1 << 6 {
            self.u8(value as u8);
        } else if value < 1 << 14 {
            self.u16(0x4000 | value as u16);
        } else if value <= MAX_VARINT {
            self.u32(0x8000_0000 | value as u32);
        } else {
            return Err(EncodeError::TooLong { what });
        }
        Ok(())
    }

    /// A byte string of at most `max` bytes behind its length.
    pub fn opaque(
        &mut self,
        what: &'static str,
        bytes: &[u8],
        max: usize,
    ) -> Result<(), EncodeError> {
        if bytes.len() > max {
            return Err(EncodeError::TooLong { what });
        }
        self.varint(what, bytes.len() as u64)?;
        self.raw(bytes);
        Ok(())
    }

    /// A string of at most `max` bytes of UTF-8 behind its length.
    pub fn string(
        &mut self,
        what: &'static str,
        text: &str,
        max: usize,
    ) -> Result<(), EncodeError> {
        self.opaque(what, text.as_bytes(), max)
    }

    /// `0`, or `1` followed by the value.
    pub fn option<T>(
        &mut self,
        value: Option<&T>,
        encode: impl FnOnce(&mut Self, &T) -> Result<(), EncodeError>,
    ) -> Result<(), EncodeError> {
        match value {
            None => {
                self.u8(0);
                Ok(())
            }
            Some(value) => {
                self.u8(1);
                encode(self, value)
            }
        }
    }

    /// At most [`MAX_ITEMS`] items behind the byte length of their encodings, as MLS vectors are.
    pub fn vector<T>(
        &mut self,
        what: &'static str,
        items: &[T],
        mut encode: impl FnMut(&mut Self, &T) -> Result<(), EncodeError>,
    ) -> Result<(), EncodeError> {
        if items.len() > MAX_ITEMS {
            return Err(EncodeError::TooManyItems { what });
        }
        // The length comes first and its width depends on it, so the items are encoded aside.
        let mut inner = Self::new();
        for item in items {
            encode(&mut inner, item)?;
        }
        self.opaque(what, &inner.out, MAX_FIELD_LEN)
    }
}

/// Takes v1 primitives off the front of untrusted bytes, without copying them.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    input: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader at the start of `input`.
    pub fn new(input: &'a [u8]) -> Self {
        Self { input }
    }

    /// How many bytes are left.
    pub fn remaining(&self) -> usize {
        self.input.len()
    }

    /// Whether every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.input.is_empty()
    }

    /// Ends reading: `TrailingBytes` unless every byte was read.
    pub fn finish(self) -> Result<(), DecodeError> {
        if self.input.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes)
        }
    }

    /// The next `len` bytes.
    pub fn take(&mut self, len: usize) -> Result<&'a [u8], DecodeError> {
        if len > self.input.len() {
            return Err(DecodeError::Truncated);
        }
        let (head, rest) = self.input.split_at(len);
        self.input = rest;
        Ok(head)
    }

    /// The next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut array = [0u8; N];
        array.copy_from_slice(self.take(N)?);
        Ok(array)
    }

    /// A `u8`.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(u8::from_be_bytes(self.array()?))
    }

    /// A big-endian `u16`.
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    /// A big-endian `u32`.
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// A big-endian `u64`.
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// A length prefix, refused unless in its shortest 1-, 2- or 4-byte form.
    pub fn varint(&mut self) -> Result<u64, DecodeError> {
        let first = self.u8()?;
        let value = u64::from(first & 0x3f);
        match first >> 6 {
            0 => Ok(value),
            1 => {
                let value = value << 8 | u64::from(self.u8()?);
                if value < 1 << 6 {
                    return Err(DecodeError::NonMinimalLength);
                }
                Ok(value)
            }
            2 => {
                let rest: [u8; 3] = self.array()?;
                let value = rest
                    .iter()
                    .fold(value, |value, byte| value << 8 | u64::from(*byte));
                if value < 1 << 14 {
                    return Err(DecodeError::NonMinimalLength);
                }
                Ok(value)
            }
            _ => Err(DecodeError::LengthOutOfRange),
        }
    }

    /// A byte string of at most `max` bytes. The length is checked against `max` and against the
    /// bytes left before anything else happens, and nothing is copied.
    pub fn opaque(&mut self, what: &'static str, max: usize) -> Result<&'a [u8], DecodeError> {
        let len = self.varint()?;
        let len = usize::try_from(len)
            .ok()
            .filter(|len| *len <= max)
            .ok_or(DecodeError::TooLong { what })?;
        self.take(len)
    }

    /// A string of at most `max` bytes of UTF-8.
    pub fn string(&mut self, what: &'static str, max: usize) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(self.opaque(what, max)?).map_err(|_| DecodeError::InvalidUtf8 { what })
    }

    /// `0`, or `1` followed by a value; any other flag is refused.
    pub fn option<T>(
        &mut self,
        decode: impl FnOnce(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Option<T>, DecodeError> {
        match self.u8()? {
            0 => Ok(None),
            1 => decode(self).map(Some),
            tag => Err(DecodeError::UnknownTag {
                what: "option",
                tag,
            }),
        }
    }

    /// At most [`MAX_ITEMS`] items behind the byte length of their encodings. Every item takes at
    /// least one byte, so the vector never holds more items than there were input bytes.
    pub fn vector<T>(
        &mut self,
        what: &'static str,
        mut decode: impl FnMut(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        let mut inner = Self::new(self.opaque(what, MAX_FIELD_LEN)?);
        let mut items = Vec::new();
        while !inner.is_empty() {
            if items.len() == MAX_ITEMS {
                return Err(DecodeError::TooManyItems { what });
            }
            let before = inner.remaining();
            items.push(decode(&mut inner)?);
            if inner.remaining() == before {
                // An item that takes no bytes would let a short input make an endless vector.
                return Err(DecodeError::Truncated);
            }
        }
        Ok(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint_bytes(value: u64) -> Vec<u8> {
        let mut writer = Writer::new();
        writer.varint("test", value).unwrap();
        writer.into_bytes()
    }

    fn read_varint(bytes: &[u8]) -> Result<u64, DecodeError> {
        let mut reader = Reader::new(bytes);
        let value = reader.varint()?;
        reader.finish()?;
        Ok(value)
    }

    #[test]
    fn varints_take_the_shortest_form_at_each_boundary() {
        for (value, hex) in [
            (0, "00"),
            (63, "3f"),
            (64, "4040"),
            (16_383, "7fff"),
            (16_384, "80004000"),
            (MAX_VARINT, "bfffffff"),
        ] {
            let bytes = varint_bytes(value);
            assert_eq!(
                bytes,
                (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                    .collect::<Vec<_>>(),
                "{value}"
            );
            assert_eq!(read_varint(&bytes), Ok(value), "{value}");
        }
    }

    #[test]
    fn varints_beyond_thirty_bits_are_not_written() {
        let mut writer = Writer::new();
        assert_eq!(
            writer.varint("length", MAX_VARINT + 1),
            Err(EncodeError::TooLong { what: "length" })
        );
    }

    #[test]
    fn longer_forms_of_small_values_are_refused() {
        for bytes in [
            &[0x40, 0x00][..],
            &[0x40, 0x3f],
            &[0x80, 0x00, 0x00, 0x3f],
            &[0x80, 0x00, 0x3f, 0xff],
        ] {
            assert_eq!(
                read_varint(bytes),
                Err(DecodeError::NonMinimalLength),
                "{bytes:02x?}"
            );
        }
        assert_eq!(read_varint(&[0x40, 0x40]), Ok(64));
        assert_eq!(read_varint(&[0x80, 0x00, 0x40, 0x00]), Ok(16_384));
    }

    #[test]
    fn the_eight_byte_form_is_refused() {
        assert_eq!(
            read_varint(&[0xc0, 0, 0, 0, 0, 0, 0, 1]),
            Err(DecodeError::LengthOutOfRange)
        );
    }

    #[test]
    fn a_cut_varint_is_truncated() {
        for bytes in [&[][..], &[0x40], &[0x80, 0x00, 0x40]] {
            assert_eq!(read_varint(bytes), Err(DecodeError::Truncated));
        }
    }

    #[test]
    fn a_length_beyond_the_input_is_refused_before_anything_is_taken() {
        // Claims a gibibyte minus one, under a limit that would allow it, with two bytes behind it.
        let mut reader = Reader::new(&[0xbf, 0xff, 0xff, 0xff, 1, 2]);
        assert_eq!(
            reader.opaque("message", usize::MAX),
            Err(DecodeError::Truncated)
        );
        let mut reader = Reader::new(&[0xbf, 0xff, 0xff, 0xff, 1, 2]);
        assert_eq!(
            reader.vector("items", |reader| reader.u8()),
            Err(DecodeError::TooLong { what: "items" })
        );
    }

    #[test]
    fn a_length_over_the_limit_is_refused_even_when_the_bytes_are_there() {
        let mut bytes = vec![4];
        bytes.extend_from_slice(b"abcd");
        assert_eq!(
            Reader::new(&bytes).opaque("name", 3),
            Err(DecodeError::TooLong { what: "name" })
        );
        assert_eq!(Reader::new(&bytes).opaque("name", 4), Ok(&b"abcd"[..]));
        assert_eq!(
            Writer::new().opaque("name", b"abcd", 3),
            Err(EncodeError::TooLong { what: "name" })
        );
    }

    #[test]
    fn strings_must_be_utf8() {
        assert_eq!(
            Reader::new(&[2, 0xc3, 0x28]).string("body", 10),
            Err(DecodeError::InvalidUtf8 { what: "body" })
        );
        assert_eq!(Reader::new(&[2, 0xc3, 0xa9]).string("body", 10), Ok("é"));
    }

    #[test]
    fn option_flags_other_than_zero_and_one_are_refused() {
        assert_eq!(
            Reader::new(&[2]).option(|reader| reader.u8()),
            Err(DecodeError::UnknownTag {
                what: "option",
                tag: 2
            })
        );
        assert_eq!(Reader::new(&[0]).option(|reader| reader.u8()), Ok(None));
        assert_eq!(
            Reader::new(&[1, 7]).option(|reader| reader.u8()),
            Ok(Some(7))
        );
    }

    #[test]
    fn vectors_count_bytes_and_refuse_a_cut_item() {
        let mut writer = Writer::new();
        writer
            .vector("pairs", &[1u16, 2, 3], |writer, item| {
                writer.u16(*item);
                Ok(())
            })
            .unwrap();
        let bytes = writer.into_bytes();
        assert_eq!(bytes, [6, 0, 1, 0, 2, 0, 3]);
        assert_eq!(
            Reader::new(&bytes).vector("pairs", |reader| reader.u16()),
            Ok(vec![1, 2, 3])
        );
        // Five bytes of two-byte items: the last item is cut inside the vector.
        assert_eq!(
            Reader::new(&[5, 0, 1, 0, 2, 0]).vector("pairs", |reader| reader.u16()),
            Err(DecodeError::Truncated)
        );
    }

    #[test]
    fn vectors_hold_at_most_max_items() {
        let items = vec![0u8; MAX_ITEMS + 1];
        let write = |items: &[u8]| {
            let mut writer = Writer::new();
            writer
                .vector("items", items, |writer, item| {
                    writer.u8(*item);
                    Ok(())
                })
                .map(|()| writer.into_bytes())
        };
        assert_eq!(
            write(&items),
            Err(EncodeError::TooManyItems { what: "items" })
        );
        let bytes = write(&items[..MAX_ITEMS]).unwrap();
        assert_eq!(
            Reader::new(&bytes)
                .vector("items", |reader| reader.u8())
                .map(|items| items.len()),
            Ok(MAX_ITEMS)
        );
        // The same vector with one more byte inside it.
        let mut over = vec![0x67, 0x11];
        over.extend_from_slice(&items);
        assert_eq!(
            Reader::new(&over).vector("items", |reader| reader.u8()),
            Err(DecodeError::TooManyItems { what: "items" })
        );
    }

    #[test]
    fn an_item_that_reads_nothing_cannot_spin() {
        assert_eq!(
            Reader::new(&[1, 0]).vector("empty", |_| Ok(())),
            Err(DecodeError::Truncated)
        );
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut reader = Reader::new(&[1, 2]);
        assert_eq!(reader.u8(), Ok(1));
        assert_eq!(reader.finish(), Err(DecodeError::TrailingBytes));
    }
}
