//! The attachment every bridged sample carries: which ring it came from and where in it.
//!
//! Fixed, 32 bytes, little-endian; the payload is the ring message, untouched, so message
//! boundaries hold:
//!
//! | bytes | field | meaning |
//! |---|---|---|
//! | 0..4 | magic | `IRB1` |
//! | 4..6 | version | 1 |
//! | 6 | kind | source ring kind: 0 SPSC, 1 MPMC, 2 broadcast |
//! | 7 | flags | bit 0: a heartbeat (no message; `seq` is the next position) |
//! | 8..16 | stream | the source ring's identity (its creation time in ns) |
//! | 16..24 | seq | the message's position in the source ring |
//! | 24..32 | origin | the position at which this `bridge out` began reading the ring (≤ seq) |
//!
//! What arrives is untrusted: [`Header::decode`] checks the length, magic, version, kind and
//! flags, that positions are below 2^63 (a ring would need centuries to get there, and a
//! position near `u64::MAX` from a buggy or hostile publisher would otherwise make every later
//! message look old) and that `origin ≤ seq`, and returns `None` for anything else, never panics.

/// Positions at or above this are refused: no ring reaches them (2^63 messages).
pub const MAX_POSITION: u64 = 1 << 63;

/// The header's length in bytes.
pub const HEADER_LEN: usize = 32;
/// The first four bytes of every header.
pub const MAGIC: [u8; 4] = *b"IRB1";
/// The header version this build writes and reads.
pub const VERSION: u16 = 1;
/// Flag: no message, only news of the source's next position (sent while the source is idle).
pub const FLAG_HEARTBEAT: u8 = 1;

/// The decoded attachment of one bridged sample.
///
/// ```
/// use ipcring_bridge::wire::{Header, SourceKind};
/// let header = Header { kind: SourceKind::Spsc, heartbeat: false, stream: 7, seq: 41, origin: 0 };
/// assert_eq!(Header::decode(&header.encode()), Some(header));
/// assert_eq!(Header::decode(b"not a header"), None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The kind of ring the message was read from.
    pub kind: SourceKind,
    /// A heartbeat: no message; `seq` is the position of the next message the source will send.
    pub heartbeat: bool,
    /// The source ring's identity: a re-created ring has another, and starts again at 0.
    pub stream: u64,
    /// The message's position in the source ring.
    pub seq: u64,
    /// Where this `bridge out` began reading the ring: a receiving side that follows the key
    /// across a re-created ring counts the positions from here to the first it sees as lost.
    pub origin: u64,
}

/// The kind of ring a bridged message came from.
///
/// ```
/// use ipcring_bridge::wire::SourceKind;
/// assert_eq!(SourceKind::from_ring(ipcring::RingKind::Broadcast), Some(SourceKind::Broadcast));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    /// A single-producer single-consumer ring.
    Spsc,
    /// A multi-producer multi-consumer ring (the bridge its only consumer).
    Mpmc,
    /// A broadcast ring (the bridge one of its subscribers).
    Broadcast,
}

impl SourceKind {
    /// The wire kind of a ring kind (`None` for a kind this build does not know).
    ///
    /// ```
    /// use ipcring_bridge::wire::SourceKind;
    /// assert_eq!(SourceKind::from_ring(ipcring::RingKind::Spsc), Some(SourceKind::Spsc));
    /// ```
    pub fn from_ring(kind: ipcring::RingKind) -> Option<Self> {
        match kind {
            ipcring::RingKind::Spsc => Some(SourceKind::Spsc),
            ipcring::RingKind::Mpmc => Some(SourceKind::Mpmc),
            ipcring::RingKind::Broadcast => Some(SourceKind::Broadcast),
            _ => None,
        }
    }

    fn to_raw(self) -> u8 {
        match self {
            SourceKind::Spsc => 0,
            SourceKind::Mpmc => 1,
            SourceKind::Broadcast => 2,
        }
    }

    fn from_raw(raw: u8) -> Option<Self> {
        match raw {
            0 => Some(SourceKind::Spsc),
            1 => Some(SourceKind::Mpmc),
            2 => Some(SourceKind::Broadcast),
            _ => None,
        }
    }
}

impl Header {
    /// The 32 bytes sent as the sample's attachment.
    ///
    /// ```
    /// use ipcring_bridge::wire::{Header, SourceKind};
    /// let bytes = Header { kind: SourceKind::Mpmc, heartbeat: true, stream: 1, seq: 2, origin: 0 }.encode();
    /// assert_eq!(&bytes[..4], b"IRB1");
    /// ```
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut bytes = [0u8; HEADER_LEN];
        bytes[0..4].copy_from_slice(&MAGIC);
        bytes[4..6].copy_from_slice(&VERSION.to_le_bytes());
        bytes[6] = self.kind.to_raw();
        bytes[7] = if self.heartbeat { FLAG_HEARTBEAT } else { 0 };
        bytes[8..16].copy_from_slice(&self.stream.to_le_bytes());
        bytes[16..24].copy_from_slice(&self.seq.to_le_bytes());
        bytes[24..32].copy_from_slice(&self.origin.to_le_bytes());
        bytes
    }

    /// Reads an attachment; `None` unless it is exactly a header this build understands.
    ///
    /// ```
    /// use ipcring_bridge::wire::{Header, SourceKind};
    /// let mut bytes = Header { kind: SourceKind::Spsc, heartbeat: false, stream: 1, seq: 2, origin: 0 }.encode();
    /// bytes[7] = 0x80; // an unknown flag
    /// assert_eq!(Header::decode(&bytes), None);
    /// ```
    pub fn decode(bytes: &[u8]) -> Option<Header> {
        let bytes: &[u8; HEADER_LEN] = bytes.try_into().ok()?;
        let word = |range: std::ops::Range<usize>| u64::from_le_bytes(bytes[range].try_into().expect("8 bytes"));
        if bytes[0..4] != MAGIC || u16::from_le_bytes([bytes[4], bytes[5]]) != VERSION {
            return None;
        }
        let (seq, origin) = (word(16..24), word(24..32));
        if bytes[7] & !FLAG_HEARTBEAT != 0 || seq >= MAX_POSITION || origin > seq {
            return None;
        }
        Some(Header {
            kind: SourceKind::from_raw(bytes[6])?,
            heartbeat: bytes[7] & FLAG_HEARTBEAT != 0,
            stream: word(8..16),
            seq,
            origin,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any bytes at all: decoding never panics, and what decodes encodes back to the same bytes.
        #[test]
        fn decode_is_total_and_exact(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Some(header) = Header::decode(&bytes) {
                prop_assert_eq!(&header.encode()[..], &bytes[..]);
            }
        }

        #[test]
        fn round_trip(kind in 0u8..3, heartbeat: bool, stream: u64, seq in 0..MAX_POSITION, back: u64) {
            let origin = seq - back % (seq + 1);
            let header = Header { kind: SourceKind::from_raw(kind).unwrap(), heartbeat, stream, seq, origin };
            prop_assert_eq!(Header::decode(&header.encode()), Some(header));
        }

        /// A valid header with one byte changed: refused, or decoded to what it now says
        /// (never a panic, never a position out of range).
        #[test]
        fn damaged_headers(seq in 0..MAX_POSITION, stream: u64, at in 0usize..HEADER_LEN, byte: u8) {
            let mut bytes = Header { kind: SourceKind::Broadcast, heartbeat: false, stream, seq, origin: seq / 2 }.encode();
            bytes[at] = byte;
            if let Some(header) = Header::decode(&bytes) {
                prop_assert_eq!(header.encode(), bytes);
                prop_assert!(header.seq < MAX_POSITION && header.origin <= header.seq);
            }
        }
    }
}
