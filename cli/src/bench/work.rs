//! The work every row does per message, the same for every transport, for the plain-ring
//! ceiling (`plain_ring.rs`) and for the peers (`benches/peers` compiles this very file, with
//! `#[path]`: keep it free of this crate's items): the sender writes every byte of the message
//! (its sequence number in the first eight bytes, then a fixed pattern), the receiver reads every
//! byte and checks the sequence number and [`checksum`] of the rest. A transport that delivers a
//! message late, twice, out of order or damaged fails the row instead of speeding it up.
//!
//! Rows with several producers ([`super::shapes`]) do the same work per byte; only the first eight
//! bytes say more: the producer's number in the top byte and its own sequence number below
//! ([`Work::message_from`], [`Work::origin`]), so that each producer's messages are checked in
//! their own order ([`super::tally`]).
//!
//! The `load` rows ([`super::load`]) send stamped messages ([`Work::stamped`]): a send time in
//! the eight bytes after the sequence number, the pattern after it; the receiver reads the stamp
//! and checks the rest as above, so every byte is still written, read and checked.

/// Bytes of the sequence number at the start of a message (fewer in a message shorter than 8).
const SEQUENCE: usize = 8;
/// Where the producer's number starts in the sequence word of a message of several producers:
/// the top byte (a producer's own sequence numbers stay below 2^56).
const PRODUCER_SHIFT: u32 = 56;

/// Who sent a message of several producers, and its number among that producer's messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The producer's number, from 0.
    pub producer: usize,
    /// The message's number among that producer's, from 0.
    pub sequence: u64,
}

/// Bytes of the send time after the sequence number in a stamped message.
const STAMP: usize = 8;

/// The checksum every row computes over what it receives: a sum of the little-endian 64-bit words
/// (the tail zero-padded), each mixed with its index so that moved words change it. Cheap (it
/// vectorises), so that it costs each row the same small amount and hides no transport's cost.
pub fn checksum(bytes: &[u8]) -> u64 {
    let mut chunks = bytes.chunks_exact(8);
    let mut sum = 0u64;
    for (index, chunk) in (&mut chunks).enumerate() {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        sum = sum.wrapping_add(word ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    }
    let mut tail = [0u8; 8];
    tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    sum.wrapping_add(u64::from_le_bytes(tail).rotate_left(17))
}

/// Messages of one size: the sender's template and the checksum the receiver expects.
#[derive(Clone, Debug)]
pub struct Work {
    template: Vec<u8>,
    expected: u64,
    /// Bytes before the checksummed pattern: the sequence number, and the stamp if stamped.
    header: usize,
}

impl Work {
    /// The smallest stamped message: a sequence number and a stamp.
    pub const STAMPED_MINIMUM: usize = SEQUENCE + STAMP;

    /// The work for messages of `size` bytes.
    pub fn new(size: usize) -> Work {
        Work::with_header(size, SEQUENCE.min(size))
    }

    /// The work for stamped messages of `size` bytes; `None` below [`Work::STAMPED_MINIMUM`].
    pub fn stamped(size: usize) -> Option<Work> {
        (size >= Work::STAMPED_MINIMUM).then(|| Work::with_header(size, Work::STAMPED_MINIMUM))
    }

    fn with_header(size: usize, header: usize) -> Work {
        let template: Vec<u8> = (0..size).map(|index| (index.wrapping_mul(31) + 7) as u8).collect();
        let expected = checksum(&template[header..]);
        Work { template, expected, header }
    }

    /// The size of the messages.
    pub fn size(&self) -> usize {
        self.template.len()
    }

    /// The message with sequence number `sequence`, written into the sender's buffer (every
    /// other byte was written when the template was made; a copying send then writes all of them
    /// into the transport).
    pub fn message(&mut self, sequence: u64) -> &[u8] {
        self.stamp(sequence);
        &self.template
    }

    fn stamp(&mut self, sequence: u64) {
        let length = SEQUENCE.min(self.template.len());
        self.template[..length].copy_from_slice(&sequence.to_le_bytes()[..length]);
    }

    /// The stamped message `sequence` carrying `stamp` (a [`Work::stamped`] work).
    pub fn message_stamped(&mut self, sequence: u64, stamp: u64) -> &[u8] {
        self.stamp(sequence);
        self.template[SEQUENCE..Work::STAMPED_MINIMUM].copy_from_slice(&stamp.to_le_bytes());
        &self.template
    }

    /// Writes the whole message `sequence` into `slot` (at least `size` bytes), as a zero-copy
    /// sender does in place.
    pub fn write(&mut self, sequence: u64, slot: &mut [u8]) {
        self.stamp(sequence);
        slot[..self.template.len()].copy_from_slice(&self.template);
    }

    /// The message numbered `sequence` of producer `producer` (below 256), for rows with several
    /// producers: the same bytes as [`message`](Work::message) but for the top byte of the
    /// sequence word, which holds `producer`. Needs messages of at least 8 bytes.
    pub fn message_from(&mut self, producer: u8, sequence: u64) -> &[u8] {
        self.message((u64::from(producer) << PRODUCER_SHIFT) | sequence)
    }

    /// Checks a message of several producers ([`message_from`](Work::message_from)): its length
    /// and the checksum of every byte after the sequence word (as [`check`](Work::check)), and
    /// returns who sent it; the caller checks the order per producer.
    pub fn origin(&self, message: &[u8]) -> Result<Origin, String> {
        if message.len() != self.template.len() || message.len() < SEQUENCE {
            return Err(format!("a {}-byte message arrived, {} expected", message.len(), self.template.len()));
        }
        let mut word = [0u8; SEQUENCE];
        word.copy_from_slice(&message[..SEQUENCE]);
        let word = u64::from_le_bytes(word);
        let origin =
            Origin { producer: (word >> PRODUCER_SHIFT) as usize, sequence: word & ((1 << PRODUCER_SHIFT) - 1) };
        if checksum(&message[SEQUENCE..]) != self.expected {
            return Err(format!(
                "message {} of producer {} arrived damaged (checksum)",
                origin.sequence, origin.producer
            ));
        }
        Ok(origin)
    }

    /// Checks a received message: its length, its sequence number (`expected`, modulo 2^(8 *
    /// length) for messages shorter than 8 bytes) and the checksum of every other byte.
    pub fn check(&self, expected: u64, message: &[u8]) -> Result<(), String> {
        if message.len() != self.template.len() {
            return Err(format!("a {}-byte message arrived, {} expected", message.len(), self.template.len()));
        }
        let length = SEQUENCE.min(message.len());
        let mut sequence = [0u8; 8];
        sequence[..length].copy_from_slice(&message[..length]);
        let wanted = expected.to_le_bytes();
        if sequence[..length] != wanted[..length] {
            return Err(format!("message {} arrived where {expected} was expected", u64::from_le_bytes(sequence)));
        }
        if checksum(&message[self.header..]) != self.expected {
            return Err(format!("message {expected} arrived damaged (checksum)"));
        }
        Ok(())
    }

    /// Checks a received stamped message as [`Work::check`] does and returns its stamp.
    pub fn check_stamped(&self, expected: u64, message: &[u8]) -> Result<u64, String> {
        self.check(expected, message)?;
        let stamp = message[SEQUENCE..Work::STAMPED_MINIMUM].try_into().unwrap_or_default();
        Ok(u64::from_le_bytes(stamp))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_checks_in_order_and_fails_late_early_or_damaged() {
        for size in [0, 1, 7, 8, 9, 64, 4096] {
            let mut sender = Work::new(size);
            let receiver = Work::new(size);
            let first = sender.message(41).to_vec();
            assert_eq!(receiver.check(41, &first), Ok(()), "size {size}");
            let second = sender.message(42).to_vec();
            if size > 0 {
                assert!(receiver.check(41, &second).is_err(), "size {size}: a later message passed");
            }
            if size > 8 {
                let mut damaged = second.clone();
                damaged[size - 1] ^= 1;
                assert!(receiver.check(42, &damaged).is_err(), "size {size}: damage passed");
            }
            assert!(receiver.check(42, &second[..size.saturating_sub(1)]).is_err() || size == 0);
        }
    }

    #[test]
    fn a_message_of_several_producers_says_whose_it_is_and_fails_damaged_or_cut() {
        for size in [8, 9, 64, 4096] {
            let mut sender = Work::new(size);
            let receiver = Work::new(size);
            let message = sender.message_from(3, 41).to_vec();
            assert_eq!(receiver.origin(&message), Ok(Origin { producer: 3, sequence: 41 }), "size {size}");
            // The same bytes as a single producer's message but for the producer's byte.
            assert_eq!(message[SEQUENCE..], sender.message(41)[SEQUENCE..]);
            assert_eq!(receiver.check(41, sender.message_from(0, 41)), Ok(()));
            if size > 8 {
                let mut damaged = message.clone();
                damaged[size - 1] ^= 1;
                assert!(receiver.origin(&damaged).is_err(), "size {size}: damage passed");
            }
            assert!(receiver.origin(&message[..size - 1]).is_err());
        }
        assert!(Work::new(4).origin(Work::new(4).message_from(1, 2)).is_err(), "too short for a producer");
    }

    #[test]
    fn a_stamped_message_carries_its_stamp_and_checks_every_other_byte() {
        assert!(Work::stamped(Work::STAMPED_MINIMUM - 1).is_none());
        for size in [16, 17, 64, 4096] {
            let mut sender = Work::stamped(size).unwrap();
            let receiver = Work::stamped(size).unwrap();
            let message = sender.message_stamped(7, 123_456_789).to_vec();
            assert_eq!(receiver.check_stamped(7, &message), Ok(123_456_789), "size {size}");
            assert!(receiver.check_stamped(8, &message).is_err(), "size {size}: a wrong sequence passed");
            if size > 16 {
                let mut damaged = message.clone();
                damaged[size - 1] ^= 1;
                assert!(receiver.check_stamped(7, &damaged).is_err(), "size {size}: damage passed");
            }
        }
        // The unstamped work is unchanged: the pattern's checksum still starts after the sequence.
        let mut plain = Work::new(64);
        let message = plain.message(3).to_vec();
        assert_eq!(Work::new(64).check(3, &message), Ok(()));
        assert!(Work::stamped(64).unwrap().check(3, &message).is_ok(), "the pattern is the same bytes");
    }

    #[test]
    fn the_checksum_sees_moved_words() {
        let mut bytes = [0u8; 16];
        bytes[0] = 1;
        let moved = {
            let mut moved = [0u8; 16];
            moved[8] = 1;
            moved
        };
        assert_ne!(checksum(&bytes), checksum(&moved));
    }
}
