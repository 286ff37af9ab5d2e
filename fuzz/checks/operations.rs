//! Check: an arbitrary sequence of operations on the handles of one fresh ring (SPSC: one sender
//! and one receiver; MPMC: up to three of each), checked step by step against a model of the
//! ring's contract. Shared by the fuzz target and `tests/fuzz_corpus.rs`.
//!
//! The input is decoded by hand: a configuration (kind, wait strategy, slot count 1..16, slot
//! size 1..256), then one operation per byte with its arguments in the bytes after it. Missing
//! bytes read as 0, so every input is valid. Operations: copies (`try_send`, `try_send_batch`),
//! in-place writes (reserve, write, commit; reserve and drop; zero-copy batches), receives by copy,
//! into a buffer, by guard and by batch, timed calls with timeouts of at most 1 ms (never an
//! untimed blocking call), detaching and attaching handles (`try_clone`, the same mapping, a new
//! mapping of the memfd), and crashes of one handle (MPMC: a reservation, a write batch, a read
//! guard or a read batch leaked, then the handle dropped, as a killed process would leave them).
//! A reservation, a write batch, a read guard or a read batch can be held across the following
//! operations (nested up to [`MAX_DEPTH`]), until an `end` operation or the end of the input.
//!
//! The model: SPSC is a queue of committed messages; MPMC is the ring's positions, each pending,
//! committed, abandoned, held by a consumer (alive or crashed) or released, as in
//! `tests/model_mpmc.rs`. Every result must be what the model predicts or the typed refusal the
//! docs give for that state (`Full`/`Empty`, or `Disconnected` once the other side has left;
//! `Timeout` for timed calls; `MessageTooLarge`, `BufferTooSmall`, `RoleTaken`). Repairs of
//! crashed handles happen at the liveness checks, whose timing is not the model's: they are read
//! from the ring's counters after each call, and each must be one the model allows (a crashed
//! producer's position abandoned; a crashed consumer's message published again at the tail).
//! Message bytes encode (producer handle, sequence) and a checksum; each received message must be
//! exactly the expected one, each committed message is consumed (released) at most once, each
//! producer's messages in order, and at the end the ring is drained: every committed message was
//! consumed, except those held by a crashed consumer and not yet published again.

use std::collections::{HashMap, HashSet, VecDeque};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use ipcring::__private::layout::RingKind;
use ipcring::__private::segment::{CreateOptions, OpenOptions, Segment};
use ipcring::__private::wait::WaitStrategy;
use ipcring::inspect::RingInfo;
use ipcring::mpmc::ShmRing;
use ipcring::spsc::ShmMemory;
use ipcring::Error;

type SpscSender = ipcring::spsc::Sender<ShmMemory>;
type SpscReceiver = ipcring::spsc::Receiver<ShmMemory>;
type MpmcSender = ipcring::mpmc::Sender<Arc<ShmRing>>;
type MpmcReceiver = ipcring::mpmc::Receiver<Arc<ShmRing>>;

/// Operations per input, all nesting levels together.
const MAX_OPS: usize = 256;
/// How many holds may be nested.
const MAX_DEPTH: u32 = 4;
const SENDERS: usize = 3;
const RECEIVERS: usize = 3;

/// The input, read a byte at a time; past its end every byte reads as 0.
struct Input<'a> {
    data: &'a [u8],
    at: usize,
    ops: usize,
}

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let byte = self.data.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        byte
    }

    /// The next operation code; `None` at the end of the input or of the operation budget.
    fn op(&mut self) -> Option<u8> {
        if self.at >= self.data.len() || self.ops >= MAX_OPS {
            return None;
        }
        self.ops += 1;
        Some(self.byte())
    }

    /// A message length in `0..=slot_size + 1` (one too many is `MessageTooLarge`).
    fn length(&mut self, slot_size: usize) -> usize {
        usize::from(self.byte()) % (slot_size + 2)
    }

    /// A timeout of at most 1 ms; zero half of the time.
    fn timeout(&mut self) -> Duration {
        match self.byte() % 4 {
            0 | 1 => Duration::ZERO,
            2 => Duration::from_micros(20),
            _ => Duration::from_millis(1),
        }
    }
}

/// A message of the model: who made it, its number, and its bytes.
#[derive(Clone, Debug, PartialEq)]
struct Message {
    producer: u32,
    sequence: u32,
    bytes: Vec<u8>,
    /// Published again after a crashed consumer held it (MPMC).
    redelivered: bool,
}

fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0x5a, |sum: u8, byte| sum.rotate_left(1) ^ byte)
}

impl Message {
    /// The bytes: producer, sequence (16 bits), filler from both, and a checksum last (for 4
    /// bytes or more; shorter messages are prefixes of that).
    fn new(producer: u32, sequence: u32, length: usize) -> Message {
        let mut state = ((u64::from(producer) << 32) | u64::from(sequence)).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut bytes: Vec<u8> = (0..length)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        for (byte, header) in bytes.iter_mut().zip([producer as u8, sequence as u8, (sequence >> 8) as u8]) {
            *byte = header;
        }
        if length >= 4 {
            bytes[length - 1] = checksum(&bytes[..length - 1]);
        }
        Message { producer, sequence, bytes, redelivered: false }
    }

    /// Asserts that `got` is this message.
    fn check(&self, got: &[u8], what: &str) {
        assert!(
            got.len() < 4 || checksum(&got[..got.len() - 1]) == got[got.len() - 1],
            "{what}: received {got:?}, whose checksum is wrong (expected message {}/{})",
            self.producer,
            self.sequence
        );
        assert_eq!(
            got,
            &self.bytes[..],
            "{what}: received other bytes than message {}/{}",
            self.producer,
            self.sequence
        );
    }
}

/// Consumption bookkeeping common to both kinds.
#[derive(Default)]
struct Ledger {
    committed: u64,
    consumed: HashSet<(u32, u32)>,
    last: HashMap<u32, u32>,
}

impl Ledger {
    /// `message` was taken by a consumer: in its producer's order (except a message published
    /// again, which comes back out of order by design).
    fn take(&mut self, message: &Message) {
        if message.redelivered {
            return;
        }
        let last = self.last.entry(message.producer).or_insert(0);
        assert!(
            message.sequence > *last,
            "producer {}: message {} taken after {}",
            message.producer,
            message.sequence,
            *last
        );
        *last = message.sequence;
    }

    /// `message` was released by a consumer: at most once.
    fn consume(&mut self, message: &Message) {
        assert!(
            self.consumed.insert((message.producer, message.sequence)),
            "message {}/{} consumed twice",
            message.producer,
            message.sequence
        );
    }
}

/// Asserts that `error` is the refusal of a call that found the ring full (`full`) or empty:
/// `Disconnected` if the other side has left (`gone`), else `Full` or `Empty`; a timed call may
/// also time out.
fn expect_refusal(error: impl Into<Error>, full: bool, gone: bool, timed: bool, what: &str) {
    let error = &error.into();
    let expected = match (timed, gone) {
        (false, false) if full => matches!(error, Error::Full),
        (false, false) => matches!(error, Error::Empty),
        (false, true) => matches!(error, Error::Disconnected),
        (true, false) => matches!(error, Error::Timeout),
        (true, true) => matches!(error, Error::Timeout | Error::Disconnected),
    };
    let state = if full { "full" } else { "empty" };
    assert!(
        expected,
        "{what}: got {error:?}; the model has the ring {state} (other side gone: {gone}, timed: {timed})"
    );
}

fn expect_too_large(result: Result<impl std::fmt::Debug, impl Into<Error>>, what: &str) {
    let result = result.map_err(Into::into);
    assert!(matches!(result, Err(Error::MessageTooLarge { .. })), "{what}: expected MessageTooLarge, got {result:?}");
}

fn expect_role_taken(result: Result<impl Sized, impl Into<Error>>, what: &str) {
    let result = result.map_err(Into::into);
    match result {
        Err(Error::RoleTaken { .. }) => {}
        Err(error) => panic!("{what}: expected RoleTaken, got {error:?}"),
        Ok(_) => panic!("{what}: a second handle of an SPSC role attached"),
    }
}

/// Runs the check on one input.
pub fn check(data: &[u8]) {
    let mut input = Input { data, at: 0, ops: 0 };
    let config = input.byte();
    let wait = match (config >> 1) % 3 {
        0 => WaitStrategy::Futex,
        1 => WaitStrategy::Semaphore,
        _ => WaitStrategy::Spin,
    };
    let slot_count = 1u64 << (input.byte() % 5);
    let slot_size = 1 + u32::from(input.byte());
    if config & 1 == 0 {
        let options = CreateOptions { kind: RingKind::Spsc, slot_count, slot_size, wait, ..CreateOptions::default() };
        Spsc::new(&options).run_all(&mut input);
    } else {
        let slot_count = slot_count.max(2);
        let options = CreateOptions { kind: RingKind::Mpmc, slot_count, slot_size, wait, ..CreateOptions::default() };
        Mpmc::new(&options).run_all(&mut input);
    }
}

/// A new mapping of the ring's memfd.
fn mapping(fd: &OwnedFd) -> Segment {
    Segment::from_fd(fd.try_clone().expect("dup"), &OpenOptions::default()).expect("attach to the memfd")
}

// ------------------------------------------------------------------------------------------------
// SPSC

struct Spsc {
    fd: OwnedFd,
    /// A mapping kept for reading the positions.
    inspect: Segment,
    slot_count: usize,
    slot_size: usize,
    sender: Option<SpscSender>,
    /// The sender is taken by an enclosing hold (still attached).
    sender_busy: bool,
    receiver: Option<SpscReceiver>,
    receiver_busy: bool,
    /// Producer id of the attached sender (a new one per attach).
    producer: u32,
    next_producer: u32,
    next_sequence: u32,
    /// Committed and not yet released, oldest first.
    queue: VecDeque<Message>,
    released: u64,
    ledger: Ledger,
}

impl Spsc {
    fn new(options: &CreateOptions) -> Spsc {
        let segment = Segment::create_anonymous(options).expect("create an anonymous ring");
        let fd = segment.fd().expect("memfd").try_clone_to_owned().expect("dup");
        let sender = SpscSender::attach(ShmMemory::new(segment).expect("map")).expect("attach the sender");
        let receiver = ipcring::Builder::from_fd(fd.try_clone().expect("dup"))
            .open::<SpscReceiver>()
            .expect("attach the receiver");
        Spsc {
            inspect: mapping(&fd),
            fd,
            slot_count: options.slot_count as usize,
            slot_size: options.slot_size as usize,
            sender: Some(sender),
            sender_busy: false,
            receiver: Some(receiver),
            receiver_busy: false,
            producer: 1,
            next_producer: 2,
            next_sequence: 1,
            queue: VecDeque::new(),
            released: 0,
            ledger: Ledger::default(),
        }
    }

    fn message(&mut self, length: usize) -> Message {
        self.next_sequence += 1;
        Message::new(self.producer, self.next_sequence, length)
    }

    fn free(&self) -> usize {
        self.slot_count - self.queue.len()
    }

    fn consumer_gone(&self) -> bool {
        self.receiver.is_none() && !self.receiver_busy
    }

    fn producer_gone(&self) -> bool {
        self.sender.is_none() && !self.sender_busy
    }

    fn commit(&mut self, message: Message) {
        assert!(self.queue.len() < self.slot_count, "model: commit into a full ring");
        self.queue.push_back(message);
        self.ledger.committed += 1;
    }

    fn release(&mut self, count: usize) {
        for message in self.queue.drain(..count).collect::<Vec<_>>() {
            self.ledger.take(&message);
            self.ledger.consume(&message);
            self.released += 1;
        }
    }

    /// The positions in shared memory match the model.
    fn settle(&self) {
        let info = RingInfo::read(&self.inspect);
        assert_eq!(info.producer_position, self.ledger.committed, "producer position");
        assert_eq!(info.consumer_position, self.released, "consumer position");
    }

    fn run_all(mut self, input: &mut Input) {
        self.run(input, 0);
        // Drain: every committed message comes out, in order, then the ring is empty.
        if self.receiver.is_none() {
            self.receiver = Some(
                ipcring::Builder::from_fd(self.fd.try_clone().expect("dup")).open::<SpscReceiver>().expect("attach"),
            );
        }
        while !self.queue.is_empty() {
            self.try_recv("drain");
        }
        self.try_recv("drain (empty)");
        assert_eq!(self.ledger.consumed.len() as u64, self.ledger.committed, "committed messages not consumed");
        self.settle();
    }

    fn run(&mut self, input: &mut Input, depth: u32) {
        while let Some(op) = input.op() {
            match op % 16 {
                0 => self.try_send(input),
                1 => self.send_timed(input),
                2 => self.reserve_commit(input),
                3 => self.reserve_drop(),
                4 => self.try_send_batch(input),
                5 => self.hold_write_batch(input, depth),
                6 => self.hold_reservation(input, depth),
                7 => self.try_recv("try_recv"),
                8 => self.recv_timed(input),
                9 => self.hold_guard(input, depth),
                10 => self.hold_read_batch(input, depth),
                11 => self.try_recv_into(input),
                12 => self.toggle_sender(input),
                13 => self.toggle_receiver(input),
                14 => {
                    if let Some(receiver) = self.receiver.as_mut() {
                        assert_eq!(receiver.available().expect("available"), self.queue.len() as u64, "available");
                    }
                }
                _ if depth > 0 => return,
                _ => {}
            }
            self.settle();
        }
    }

    fn expect_sent(&mut self, result: Result<(), impl Into<Error>>, message: Message, timed: bool, what: &str) {
        let result = result.map_err(Into::into);
        if message.bytes.len() > self.slot_size {
            expect_too_large(result, what);
        } else if self.free() > 0 {
            result.unwrap_or_else(|error| panic!("{what}: {error:?} with {} free slots", self.free()));
            self.commit(message);
        } else {
            expect_refusal(result.expect_err("sent into a full ring"), true, self.consumer_gone(), timed, what);
        }
    }

    fn try_send(&mut self, input: &mut Input) {
        let message = self.message(input.length(self.slot_size));
        let Some(sender) = self.sender.as_mut() else { return };
        let result = sender.try_send(&message.bytes);
        self.expect_sent(result, message, false, "try_send");
    }

    fn send_timed(&mut self, input: &mut Input) {
        let reserve = input.byte() & 1 == 1;
        let timeout = input.timeout();
        let message = self.message(input.length(self.slot_size));
        let Some(sender) = self.sender.as_mut() else { return };
        if !reserve {
            let result = sender.send_timeout(&message.bytes, timeout);
            return self.expect_sent(result, message, true, "send_timeout");
        }
        let result = match sender.reserve_timeout(timeout).map_err(ipcring::Error::from) {
            Ok(mut slot) => {
                fill(slot.payload(), &message);
                Ok(slot.commit(message.bytes.len()))
            }
            Err(error) => Err(error),
        };
        self.expect_reserved_and_committed(result, message, true, "reserve_timeout");
    }

    /// `result`: the reservation's refusal, or the commit's result.
    fn expect_reserved_and_committed(
        &mut self,
        result: Result<Result<(), impl Into<Error>>, impl Into<Error>>,
        message: Message,
        timed: bool,
        what: &str,
    ) {
        let result = result.map(|inner| inner.map_err(Into::into)).map_err(Into::into);
        if self.free() == 0 {
            let error = result.err().unwrap_or_else(|| panic!("{what}: reserved a slot in a full ring"));
            return expect_refusal(error, true, self.consumer_gone(), timed, what);
        }
        let committed = result.unwrap_or_else(|error| panic!("{what}: {error:?} with {} free slots", self.free()));
        if message.bytes.len() > self.slot_size {
            expect_too_large(committed, what);
        } else {
            committed.unwrap_or_else(|error| panic!("{what}: commit: {error:?}"));
            self.commit(message);
        }
    }

    fn reserve_commit(&mut self, input: &mut Input) {
        let message = self.message(input.length(self.slot_size));
        let Some(sender) = self.sender.as_mut() else { return };
        let result = match sender.try_reserve().map_err(ipcring::Error::from) {
            Ok(mut slot) => {
                fill(slot.payload(), &message);
                Ok(slot.commit(message.bytes.len()))
            }
            Err(error) => Err(error),
        };
        self.expect_reserved_and_committed(result, message, false, "try_reserve + commit");
    }

    fn reserve_drop(&mut self) {
        let Some(sender) = self.sender.as_mut() else { return };
        let result = sender.try_reserve().map(drop);
        if self.free() == 0 {
            expect_refusal(
                result.expect_err("reserved in a full ring"),
                true,
                self.consumer_gone(),
                false,
                "try_reserve",
            );
        } else {
            result.unwrap_or_else(|error| panic!("try_reserve: {error:?} with {} free slots", self.free()));
        }
    }

    fn try_send_batch(&mut self, input: &mut Input) {
        let count = input.byte() % 5;
        let messages: Vec<Message> = (0..count).map(|_| self.message(input.length(self.slot_size))).collect();
        let Some(sender) = self.sender.as_mut() else { return };
        let bytes: Vec<&[u8]> = messages.iter().map(|message| &message.bytes[..]).collect();
        let result = sender.try_send_batch(&bytes);
        if messages.iter().any(|message| message.bytes.len() > self.slot_size) {
            return expect_too_large(result, "try_send_batch");
        }
        let sent = result.unwrap_or_else(|error| panic!("try_send_batch: {error:?}"));
        assert_eq!(sent, messages.len().min(self.free()), "try_send_batch: sent");
        messages.into_iter().take(sent).for_each(|message| self.commit(message));
    }

    fn hold_write_batch(&mut self, input: &mut Input, depth: u32) {
        let Some(mut sender) = self.sender.take() else { return };
        self.sender_busy = true;
        let mut batch = sender.batch();
        let mut written = Vec::new();
        for _ in 0..input.byte() % 5 {
            self.batch_push(&mut batch, &mut written, input);
        }
        if depth < MAX_DEPTH {
            self.run(input, depth + 1);
        }
        for _ in 0..input.byte() % 5 {
            self.batch_push(&mut batch, &mut written, input);
        }
        if input.byte() & 1 == 0 {
            assert_eq!(batch.commit(), written.len(), "WriteBatch::commit");
            written.into_iter().for_each(|message| self.commit(message));
        }
        // Otherwise the batch goes out of use uncommitted: aborted, nothing published (an SPSC
        // batch has no destructor; its slots are simply written again).
        self.sender = Some(sender);
        self.sender_busy = false;
    }

    fn batch_push(
        &mut self,
        batch: &mut ipcring::__private::ring::spsc::WriteBatch<'_, ShmMemory>,
        written: &mut Vec<Message>,
        input: &mut Input,
    ) {
        let message = self.message(input.length(self.slot_size));
        let result = batch.push(&message.bytes);
        if message.bytes.len() > self.slot_size {
            return expect_too_large(result, "WriteBatch::push");
        }
        let pushed = result.unwrap_or_else(|error| panic!("WriteBatch::push: {error:?}"));
        assert_eq!(
            pushed,
            written.len() < self.free(),
            "WriteBatch::push with {} written, {} free",
            written.len(),
            self.free()
        );
        assert_eq!(batch.len(), written.len() + usize::from(pushed), "WriteBatch::len");
        if pushed {
            written.push(message);
        }
    }

    fn hold_reservation(&mut self, input: &mut Input, depth: u32) {
        let Some(mut sender) = self.sender.take() else { return };
        self.sender_busy = true;
        match sender.try_reserve().map_err(ipcring::Error::from) {
            Ok(mut slot) => {
                assert!(self.free() > 0, "try_reserve: reserved a slot in a full ring");
                let message = self.message(input.length(self.slot_size));
                let length = message.bytes.len().min(self.slot_size);
                slot.payload()[..length].copy_from_slice(&message.bytes[..length]);
                if depth < MAX_DEPTH {
                    self.run(input, depth + 1);
                }
                if input.byte() & 1 == 0 {
                    let result = slot.commit(message.bytes.len());
                    if message.bytes.len() > self.slot_size {
                        expect_too_large(result, "held reservation: commit");
                    } else {
                        result.unwrap_or_else(|error| panic!("held reservation: commit: {error:?}"));
                        self.commit(message);
                    }
                }
                // Otherwise the reservation goes out of use uncommitted: aborted (an SPSC
                // reservation has no destructor; the slot is reserved again next time).
            }
            Err(error) => {
                assert_eq!(self.free(), 0, "try_reserve: {error:?} with free slots");
                expect_refusal(error, true, self.consumer_gone(), false, "try_reserve (hold)");
            }
        }
        self.sender = Some(sender);
        self.sender_busy = false;
    }

    fn try_recv(&mut self, what: &str) {
        let Some(receiver) = self.receiver.as_mut() else { return };
        let mut buffer = Vec::new();
        let result = receiver.try_recv(&mut buffer);
        self.expect_received(result.map(|()| buffer), false, what);
    }

    /// `result`: the message received (and released), or the refusal.
    fn expect_received(&mut self, result: Result<Vec<u8>, impl Into<Error>>, timed: bool, what: &str) {
        let result = result.map_err(Into::into);
        match self.queue.front() {
            Some(expected) => {
                let got = result.unwrap_or_else(|error| panic!("{what}: {error:?} with {} messages", self.queue.len()));
                expected.check(&got, what);
                self.release(1);
            }
            None => expect_refusal(
                result.expect_err("received from an empty ring"),
                false,
                self.producer_gone(),
                timed,
                what,
            ),
        }
    }

    fn recv_timed(&mut self, input: &mut Input) {
        let variant = input.byte() % 3;
        let timeout = input.timeout();
        let max = usize::from(input.byte() % 6);
        let Some(receiver) = self.receiver.as_mut() else { return };
        match variant {
            0 => {
                let mut buffer = Vec::new();
                let result = receiver.recv_timeout(&mut buffer, timeout);
                self.expect_received(result.map(|()| buffer), true, "recv_timeout");
            }
            1 => {
                let result = receiver.recv_ref_timeout(timeout).map(|guard| guard.to_vec());
                self.expect_received(result, true, "recv_ref_timeout");
            }
            _ => {
                let result = receiver
                    .recv_batch_timeout(max, timeout)
                    .map(|batch| batch.iter().map(|message| message.expect("batch message").to_vec()).collect());
                self.expect_batch(result, max, true, "recv_batch_timeout");
            }
        }
    }

    /// `result`: the messages of a batch that was then dropped (released), or the refusal.
    fn expect_batch(&mut self, result: Result<Vec<Vec<u8>>, impl Into<Error>>, max: usize, timed: bool, what: &str) {
        let result = result.map_err(Into::into);
        if self.queue.is_empty() {
            return expect_refusal(
                result.expect_err("batch from an empty ring"),
                false,
                self.producer_gone(),
                timed,
                what,
            );
        }
        let got = result.unwrap_or_else(|error| panic!("{what}: {error:?} with {} messages", self.queue.len()));
        assert_eq!(got.len(), max.min(self.queue.len()), "{what}: batch length");
        for (expected, got) in self.queue.iter().zip(&got) {
            expected.check(got, what);
        }
        self.release(got.len());
    }

    fn hold_guard(&mut self, input: &mut Input, depth: u32) {
        let Some(mut receiver) = self.receiver.take() else { return };
        self.receiver_busy = true;
        match receiver.try_recv_ref() {
            Ok(guard) => {
                let expected =
                    self.queue.front().unwrap_or_else(|| panic!("try_recv_ref: a message from an empty ring"));
                expected.check(&guard, "try_recv_ref");
                if depth < MAX_DEPTH {
                    self.run(input, depth + 1);
                }
                // The guard must still show the same bytes.
                self.queue[0].check(&guard, "held guard");
                if input.byte() & 1 == 0 {
                    drop(guard);
                    self.release(1);
                } else {
                    // Kept: the same message is read again next time.
                    guard.keep();
                }
            }
            Err(error) => {
                assert!(self.queue.is_empty(), "try_recv_ref: {error:?} with {} messages", self.queue.len());
                expect_refusal(error, false, self.producer_gone(), false, "try_recv_ref");
            }
        }
        self.receiver = Some(receiver);
        self.receiver_busy = false;
    }

    fn hold_read_batch(&mut self, input: &mut Input, depth: u32) {
        let max = usize::from(input.byte() % 6);
        let Some(mut receiver) = self.receiver.take() else { return };
        self.receiver_busy = true;
        match receiver.try_recv_batch(max) {
            Ok(batch) => {
                assert!(!self.queue.is_empty(), "try_recv_batch: a batch from an empty ring");
                assert_eq!(batch.len(), max.min(self.queue.len()), "try_recv_batch: length");
                let check = |queue: &VecDeque<Message>, what: &str| {
                    for (index, expected) in queue.iter().take(batch.len()).enumerate() {
                        expected.check(batch.get(index).expect("batch message"), what);
                    }
                };
                check(&self.queue, "try_recv_batch");
                if depth < MAX_DEPTH {
                    self.run(input, depth + 1);
                }
                check(&self.queue, "held batch");
                let count = batch.len();
                if input.byte() & 1 == 0 {
                    drop(batch);
                    self.release(count);
                } else {
                    let first = usize::from(input.byte()) % (count + 1);
                    batch.release_first(first);
                    self.release(first);
                }
            }
            Err(error) => {
                assert!(self.queue.is_empty(), "try_recv_batch: {error:?} with {} messages", self.queue.len());
                expect_refusal(error, false, self.producer_gone(), false, "try_recv_batch");
            }
        }
        self.receiver = Some(receiver);
        self.receiver_busy = false;
    }

    fn try_recv_into(&mut self, input: &mut Input) {
        let mut buffer = vec![0; input.length(self.slot_size)];
        let Some(receiver) = self.receiver.as_mut() else { return };
        let result = receiver.try_recv_into(&mut buffer);
        let Some(expected) = self.queue.front() else {
            return expect_refusal(
                result.expect_err("received from an empty ring"),
                false,
                self.producer_gone(),
                false,
                "try_recv_into",
            );
        };
        if expected.bytes.len() > buffer.len() {
            let expected_len = expected.bytes.len();
            assert!(
                matches!(result, Err(ipcring::RecvError::BufferTooSmall { len, buffer: size }) if len == expected_len && size == buffer.len()),
                "try_recv_into: expected BufferTooSmall, got {result:?}"
            );
        } else {
            let length = result.unwrap_or_else(|error| panic!("try_recv_into: {error:?}"));
            expected.check(&buffer[..length], "try_recv_into");
            self.release(1);
        }
    }

    fn toggle_sender(&mut self, input: &mut Input) {
        let second = || ipcring::Builder::from_fd(self.fd.try_clone().expect("dup")).open::<SpscSender>();
        if self.sender_busy || (self.sender.is_some() && input.byte() & 1 == 1) {
            expect_role_taken(second(), "second sender");
        } else if self.sender.is_some() {
            self.sender = None;
        } else {
            self.sender = Some(second().unwrap_or_else(|error| panic!("attach the sender: {error:?}")));
            self.producer = self.next_producer;
            self.next_producer += 1;
        }
    }

    fn toggle_receiver(&mut self, input: &mut Input) {
        let second = || ipcring::Builder::from_fd(self.fd.try_clone().expect("dup")).open::<SpscReceiver>();
        if self.receiver_busy || (self.receiver.is_some() && input.byte() & 1 == 1) {
            expect_role_taken(second(), "second receiver");
        } else if self.receiver.is_some() {
            self.receiver = None;
        } else {
            self.receiver = Some(second().unwrap_or_else(|error| panic!("attach the receiver: {error:?}")));
        }
    }
}

/// Writes as much of `message` as fits into a reserved `payload` (its full length is committed,
/// which a too-long message fails).
fn fill(payload: &mut [u8], message: &Message) {
    let length = message.bytes.len().min(payload.len());
    payload[..length].copy_from_slice(&message.bytes[..length]);
}

// ------------------------------------------------------------------------------------------------
// MPMC

/// What a position holds, in the model.
#[derive(Clone, Debug, PartialEq)]
enum Position {
    /// Claimed by a live producer, not yet published.
    Pending,
    /// Claimed by a producer that crashed (leaked it and detached).
    DeadPending,
    Committed(Message),
    Abandoned,
    /// Claimed by a consumer; `live: false` once that consumer crashed.
    Held {
        message: Message,
        live: bool,
    },
    Released,
}

/// The ring's counters of repairs, in the order of [`Mpmc::counters`].
type Counters = [u64; 4];

struct Mpmc {
    fd: OwnedFd,
    ring: Arc<ShmRing>,
    slot_count: u64,
    slot_size: usize,
    senders: [Option<MpmcSender>; SENDERS],
    sender_busy: [bool; SENDERS],
    producer: [u32; SENDERS],
    next_producer: u32,
    next_sequence: u32,
    receivers: [Option<MpmcReceiver>; RECEIVERS],
    receiver_busy: [bool; RECEIVERS],
    positions: Vec<Position>,
    head: u64,
    /// Producer abandoned, producer redelivered, consumer abandoned, consumer redelivered, as the
    /// model counts them.
    counters: Counters,
    ledger: Ledger,
}

/// A ring wrapped for attaching, with a short liveness interval so that repairs happen within a
/// run.
fn shm_ring(segment: Segment) -> Arc<ShmRing> {
    let mut ring = ShmRing::new(segment).expect("map the MPMC ring");
    ring.set_liveness_interval(Duration::from_millis(1));
    Arc::new(ring)
}

impl Mpmc {
    fn new(options: &CreateOptions) -> Mpmc {
        let segment = Segment::create_anonymous(options).expect("create an anonymous ring");
        let fd = segment.fd().expect("memfd").try_clone_to_owned().expect("dup");
        let ring = shm_ring(segment);
        let sender = MpmcSender::attach(ring.clone()).expect("attach a sender");
        let receiver = MpmcReceiver::attach(ring.clone()).expect("attach a receiver");
        Mpmc {
            fd,
            ring,
            slot_count: options.slot_count,
            slot_size: options.slot_size as usize,
            senders: [Some(sender), None, None],
            sender_busy: [false; SENDERS],
            producer: [1, 0, 0],
            next_producer: 2,
            next_sequence: 0,
            receivers: [Some(receiver), None, None],
            receiver_busy: [false; RECEIVERS],
            positions: Vec::new(),
            head: 0,
            counters: [0; 4],
            ledger: Ledger::default(),
        }
    }

    fn tail(&self) -> u64 {
        self.positions.len() as u64
    }

    fn at(&mut self, position: u64) -> &mut Position {
        &mut self.positions[position as usize]
    }

    fn message(&mut self, sender: usize, length: usize) -> Message {
        self.next_sequence += 1;
        Message::new(self.producer[sender], self.next_sequence, length)
    }

    fn producers_gone(&self) -> bool {
        (0..SENDERS).all(|index| self.senders[index].is_none() && !self.sender_busy[index])
    }

    fn consumers_gone(&self) -> bool {
        (0..RECEIVERS).all(|index| self.receivers[index].is_none() && !self.receiver_busy[index])
    }

    /// The ring's repair counters.
    fn observed(&self) -> Counters {
        let counters = RingInfo::read(self.ring.segment()).counters;
        [
            counters.producer.abandoned,
            counters.producer.redelivered,
            counters.consumer.abandoned,
            counters.consumer.redelivered,
        ]
    }

    /// Applies the repairs the ring made during the last call (which the model cannot time) and
    /// checks that each is one it allows. Call right after the call, before predicting its result.
    fn repairs(&mut self) {
        let observed = self.observed();
        assert_eq!(
            observed[3], 0,
            "a consumer published a message again (only a crashed producer's republication needs that)"
        );
        let redelivered = observed[1].checked_sub(self.counters[1]).expect("producer redelivered counter went down");
        for _ in 0..redelivered {
            // A producer stuck at the tail published the message of a crashed consumer again.
            let previous = self.tail() - self.slot_count;
            match std::mem::replace(self.at(previous), Position::Released) {
                Position::Held { mut message, live: false } => {
                    message.redelivered = true;
                    self.positions.push(Position::Committed(message));
                }
                other => panic!("position {previous} was published again, but the model has it {other:?}"),
            }
        }
        self.counters[1] = observed[1];
        let abandoned = observed[2].checked_sub(self.counters[2]).expect("consumer abandoned counter went down");
        if abandoned > 0 {
            let mut repaired = 0;
            for position in self.head..self.tail() {
                if *self.at(position) == Position::DeadPending {
                    *self.at(position) = Position::Abandoned;
                    repaired += 1;
                }
            }
            assert_eq!(
                abandoned, repaired,
                "a consumer abandoned {abandoned} positions; the model has {repaired} crashed reservations"
            );
            self.counters[2] = observed[2];
        }
    }

    /// The counters and positions in shared memory match the model.
    fn settle(&self) {
        assert_eq!(
            self.observed(),
            self.counters,
            "repair counters (producer abandoned, redelivered; consumer abandoned, redelivered)"
        );
        let info = RingInfo::read(self.ring.segment());
        assert_eq!(info.producer_position, self.tail(), "tail");
        assert_eq!(info.consumer_position, self.head, "head");
    }

    /// Positions a producer can claim now, up to `max` (at least one, at most a lap): each needs
    /// its slot's previous lap released.
    fn free_run(&self, max: u64) -> u64 {
        let max = max.clamp(1, self.slot_count);
        let free = |position: u64| {
            position < self.slot_count || self.positions[(position - self.slot_count) as usize] == Position::Released
        };
        (0..max).take_while(|offset| free(self.tail() + offset)).count() as u64
    }

    /// Claims `count` positions for a producer: the first.
    fn claim(&mut self, count: u64) -> u64 {
        let first = self.tail();
        self.positions.extend((0..count).map(|_| Position::Pending));
        first
    }

    fn publish(&mut self, first: u64, messages: Vec<Message>, claimed: u64) {
        let written = messages.len() as u64;
        for (offset, message) in messages.into_iter().enumerate() {
            assert_eq!(*self.at(first + offset as u64), Position::Pending, "model: publish a position not pending");
            *self.at(first + offset as u64) = Position::Committed(message);
            self.ledger.committed += 1;
        }
        for position in first + written..first + claimed {
            *self.at(position) = Position::Abandoned;
            self.counters[0] += 1;
        }
    }

    /// What a consumer claims with up to `max` (at least 1): skips abandoned positions, then takes
    /// consecutive committed ones; `None` when the next is not committed.
    fn take(&mut self, max: u64) -> Option<(u64, u64)> {
        let max = max.clamp(1, self.slot_count);
        while self.head < self.tail() {
            match self.at(self.head).clone() {
                Position::Abandoned => {
                    *self.at(self.head) = Position::Released;
                    self.head += 1;
                }
                Position::Committed(_) => {
                    let first = self.head;
                    while self.head < self.tail() && self.head - first < max {
                        let Position::Committed(message) = self.at(self.head).clone() else { break };
                        self.ledger.take(&message);
                        *self.at(self.head) = Position::Held { message, live: true };
                        self.head += 1;
                    }
                    return Some((first, self.head - first));
                }
                Position::Pending | Position::DeadPending => return None,
                other => panic!("model: {other:?} at the head"),
            }
        }
        None
    }

    fn held(&self, position: u64) -> &Message {
        match &self.positions[position as usize] {
            Position::Held { message, .. } => message,
            other => panic!("model: position {position} is {other:?}, not held"),
        }
    }

    /// A consumer released `count` positions from `first`.
    fn release(&mut self, first: u64, count: u64) {
        for position in first..first + count {
            let Position::Held { message, live: true } = std::mem::replace(self.at(position), Position::Released)
            else {
                panic!("model: release of position {position}, not held");
            };
            self.ledger.consume(&message);
        }
    }

    /// A consumer crashed holding `count` positions from `first`.
    fn crash_holding(&mut self, first: u64, count: u64) {
        for position in first..first + count {
            let Position::Held { live, .. } = self.at(position) else { panic!("model: crash holding {position}") };
            *live = false;
        }
    }

    fn run_all(mut self, input: &mut Input) {
        self.run(input, 0);
        // Drain: every producer leaves (so crashed reservations are repaired at once), then a
        // consumer takes everything that is left.
        self.senders = [None, None, None];
        if self.receivers[0].is_none() {
            self.receivers[0] = Some(MpmcReceiver::attach(self.ring.clone()).expect("attach a receiver"));
        }
        let mut rounds = self.positions.len() + 4;
        loop {
            let mut buffer = Vec::new();
            let result = self.receivers[0].as_mut().expect("receiver").try_recv(&mut buffer);
            let done = result.is_err();
            self.expect_received(result.map(|()| buffer), false, "drain");
            self.settle();
            rounds -= 1;
            if done || rounds == 0 {
                break;
            }
        }
        assert_eq!(self.head, self.tail(), "drain: positions left behind the head");
        let lost =
            self.positions.iter().filter(|position| matches!(position, Position::Held { live: false, .. })).count();
        assert_eq!(
            self.ledger.consumed.len() as u64 + lost as u64,
            self.ledger.committed,
            "committed messages neither consumed nor held by a crashed consumer"
        );
    }

    fn run(&mut self, input: &mut Input, depth: u32) {
        while let Some(op) = input.op() {
            let handle = usize::from(input.byte()) % SENDERS;
            match op % 18 {
                0 => self.try_send(handle, input),
                1 => self.send_timed(handle, input),
                2 => self.reserve_once(handle, input),
                3 => self.try_send_batch(handle, input),
                4 => self.hold_write_batch(handle, input, depth),
                5 => self.hold_reservation(handle, input, depth),
                6 => self.poll_send(handle, input),
                7 => self.try_recv(handle),
                8 => self.recv_timed(handle, input),
                9 => self.hold_guard(handle, input, depth),
                10 => self.hold_read_batch(handle, input, depth),
                11 => self.poll_recv(handle, input),
                12 => self.toggle_sender(handle, input),
                13 => self.toggle_receiver(handle, input),
                14 => self.try_send(handle, input),
                15 => self.try_recv(handle),
                _ if depth > 0 => return,
                _ => {}
            }
            self.settle();
        }
    }

    fn expect_sent(&mut self, result: Result<(), impl Into<Error>>, message: Message, timed: bool, what: &str) {
        let result = result.map_err(Into::into);
        self.repairs();
        if message.bytes.len() > self.slot_size {
            return expect_too_large(result, what);
        }
        if self.free_run(1) == 1 {
            result.unwrap_or_else(|error| panic!("{what}: {error:?} with a free slot"));
            let first = self.claim(1);
            self.publish(first, vec![message], 1);
        } else {
            expect_refusal(result.expect_err("sent into a full ring"), true, self.consumers_gone(), timed, what);
        }
    }

    fn try_send(&mut self, handle: usize, input: &mut Input) {
        let message = self.message(handle, input.length(self.slot_size));
        let Some(sender) = self.senders[handle].as_mut() else { return };
        let result = sender.try_send(&message.bytes);
        self.expect_sent(result, message, false, "try_send");
    }

    fn poll_send(&mut self, handle: usize, input: &mut Input) {
        // Many polls of a full ring: the rate-limited liveness check runs (and repairs).
        for _ in 0..input.byte() % 80 {
            let message = self.message(handle, 1);
            let Some(sender) = self.senders[handle].as_mut() else { return };
            let result = sender.try_send(&message.bytes);
            self.expect_sent(result, message, false, "try_send (poll)");
            self.settle();
        }
    }

    fn send_timed(&mut self, handle: usize, input: &mut Input) {
        let reserve = input.byte() & 1 == 1;
        let timeout = input.timeout();
        let message = self.message(handle, input.length(self.slot_size));
        let Some(sender) = self.senders[handle].as_mut() else { return };
        if !reserve {
            let result = sender.send_timeout(&message.bytes, timeout);
            return self.expect_sent(result, message, true, "send_timeout");
        }
        let result = match sender.reserve_timeout(timeout).map_err(ipcring::Error::from) {
            Ok(mut slot) => {
                fill(slot.payload(), &message);
                Ok(slot.commit(message.bytes.len()))
            }
            Err(error) => Err(error),
        };
        self.expect_reserved(result, message, true, "reserve_timeout");
    }

    /// `result`: the reservation's refusal, or (`Some`) the commit's result or (`None`) dropped.
    fn expect_reserved(
        &mut self,
        result: Result<Result<(), impl Into<Error>>, impl Into<Error>>,
        message: Message,
        timed: bool,
        what: &str,
    ) {
        let result = result.map(|inner| inner.map_err(Into::into)).map_err(Into::into);
        self.repairs();
        if self.free_run(1) == 0 {
            let error = result.err().unwrap_or_else(|| panic!("{what}: reserved a slot in a full ring"));
            return expect_refusal(error, true, self.consumers_gone(), timed, what);
        }
        let committed = result.unwrap_or_else(|error| panic!("{what}: {error:?} with a free slot"));
        let first = self.claim(1);
        if message.bytes.len() > self.slot_size {
            // The reservation dropped uncommitted: abandoned.
            expect_too_large(committed, what);
            self.publish(first, Vec::new(), 1);
        } else {
            committed.unwrap_or_else(|error| panic!("{what}: commit: {error:?}"));
            self.publish(first, vec![message], 1);
        }
    }

    fn reserve_once(&mut self, handle: usize, input: &mut Input) {
        let commit = input.byte() & 1 == 0;
        let message = self.message(handle, input.length(self.slot_size));
        let Some(sender) = self.senders[handle].as_mut() else { return };
        if commit {
            let result = match sender.try_reserve().map_err(ipcring::Error::from) {
                Ok(mut slot) => {
                    fill(slot.payload(), &message);
                    Ok(slot.commit(message.bytes.len()))
                }
                Err(error) => Err(error),
            };
            return self.expect_reserved(result, message, false, "try_reserve + commit");
        }
        // Reserved and dropped: the position is published as abandoned.
        let result = sender.try_reserve().map(drop);
        self.repairs();
        if self.free_run(1) == 0 {
            expect_refusal(
                result.expect_err("reserved in a full ring"),
                true,
                self.consumers_gone(),
                false,
                "try_reserve",
            );
        } else {
            result.unwrap_or_else(|error| panic!("try_reserve: {error:?} with a free slot"));
            let first = self.claim(1);
            self.publish(first, Vec::new(), 1);
        }
    }

    fn try_send_batch(&mut self, handle: usize, input: &mut Input) {
        let count = input.byte() % 6;
        let messages: Vec<Message> = (0..count).map(|_| self.message(handle, input.length(self.slot_size))).collect();
        let Some(sender) = self.senders[handle].as_mut() else { return };
        let bytes: Vec<&[u8]> = messages.iter().map(|message| &message.bytes[..]).collect();
        let result = sender.try_send_batch(&bytes);
        self.repairs();
        if messages.iter().any(|message| message.bytes.len() > self.slot_size) {
            return expect_too_large(result, "try_send_batch");
        }
        if messages.is_empty() {
            assert_eq!(result.ok(), Some(0), "try_send_batch of nothing");
            return;
        }
        let free = self.free_run(messages.len() as u64);
        if free == 0 {
            return expect_refusal(
                result.expect_err("batch into a full ring"),
                true,
                self.consumers_gone(),
                false,
                "try_send_batch",
            );
        }
        let sent = result.unwrap_or_else(|error| panic!("try_send_batch: {error:?} with {free} free"));
        assert_eq!(sent as u64, free, "try_send_batch: sent");
        let first = self.claim(free);
        self.publish(first, messages.into_iter().take(sent).collect(), free);
    }

    fn hold_write_batch(&mut self, handle: usize, input: &mut Input, depth: u32) {
        let max = usize::from(input.byte() % 6);
        let Some(mut sender) = self.senders[handle].take() else { return };
        self.sender_busy[handle] = true;
        let mut batch = sender.batch(max).unwrap_or_else(|error| panic!("batch: {error:?}"));
        // No repair here: a batch claims what is free, or nothing.
        let claimed = if max == 0 { 0 } else { self.free_run(max as u64) };
        assert_eq!(batch.capacity() as u64, claimed, "batch: capacity");
        let first = self.claim(claimed);
        let mut written = Vec::new();
        for _ in 0..input.byte() % 4 {
            self.batch_push(handle, &mut batch, &mut written, claimed, input);
        }
        if depth < MAX_DEPTH {
            self.run(input, depth + 1);
        }
        for _ in 0..input.byte() % 4 {
            self.batch_push(handle, &mut batch, &mut written, claimed, input);
        }
        match input.byte() % 3 {
            0 => {
                assert_eq!(batch.commit(), written.len(), "WriteBatch::commit");
                self.publish(first, written, claimed);
            }
            // Dropped uncommitted: the written messages are published, the rest abandoned.
            1 => {
                drop(batch);
                self.publish(first, written, claimed);
            }
            _ => {
                // A crash with the batch claimed: nothing is published; consumers repair it.
                std::mem::forget(batch);
                drop(sender);
                self.sender_busy[handle] = false;
                (first..first + claimed).for_each(|position| *self.at(position) = Position::DeadPending);
                return;
            }
        }
        self.senders[handle] = Some(sender);
        self.sender_busy[handle] = false;
    }

    fn batch_push(
        &mut self,
        handle: usize,
        batch: &mut ipcring::__private::ring::mpmc::WriteBatch<'_, Arc<ShmRing>>,
        written: &mut Vec<Message>,
        claimed: u64,
        input: &mut Input,
    ) {
        let message = self.message(handle, input.length(self.slot_size));
        let result = batch.push(&message.bytes);
        if message.bytes.len() > self.slot_size {
            return expect_too_large(result, "WriteBatch::push");
        }
        let pushed = result.unwrap_or_else(|error| panic!("WriteBatch::push: {error:?}"));
        assert_eq!(
            pushed,
            (written.len() as u64) < claimed,
            "WriteBatch::push with {} written of {claimed}",
            written.len()
        );
        if pushed {
            written.push(message);
        }
    }

    fn hold_reservation(&mut self, handle: usize, input: &mut Input, depth: u32) {
        let Some(mut sender) = self.senders[handle].take() else { return };
        self.sender_busy[handle] = true;
        let mut crashed = false;
        // A block, so that the reservation's borrow of `sender` ends before it is put back.
        {
            let result = sender.try_reserve();
            self.repairs();
            match result {
                Ok(mut slot) => {
                    assert_eq!(self.free_run(1), 1, "try_reserve: reserved a slot in a full ring");
                    let position = self.claim(1);
                    let message = self.message(handle, input.length(self.slot_size));
                    let length = message.bytes.len().min(self.slot_size);
                    slot.payload()[..length].copy_from_slice(&message.bytes[..length]);
                    if depth < MAX_DEPTH {
                        self.run(input, depth + 1);
                    }
                    match input.byte() % 3 {
                        0 => {
                            let result = slot.commit(message.bytes.len());
                            if message.bytes.len() > self.slot_size {
                                expect_too_large(result, "held reservation: commit");
                                self.publish(position, Vec::new(), 1);
                            } else {
                                result.unwrap_or_else(|error| panic!("held reservation: commit: {error:?}"));
                                self.publish(position, vec![message], 1);
                            }
                        }
                        1 => {
                            drop(slot);
                            self.publish(position, Vec::new(), 1);
                        }
                        _ => {
                            // A crash between reserve and commit: the handle goes with it (below).
                            slot.leak();
                            *self.at(position) = Position::DeadPending;
                            crashed = true;
                        }
                    }
                }
                Err(error) => {
                    assert_eq!(self.free_run(1), 0, "try_reserve: {error:?} with a free slot");
                    expect_refusal(error, true, self.consumers_gone(), false, "try_reserve (hold)");
                }
            }
        }
        if !crashed {
            self.senders[handle] = Some(sender);
        }
        self.sender_busy[handle] = false;
    }

    /// `result`: the message received (and released), or the refusal.
    fn expect_received(&mut self, result: Result<Vec<u8>, impl Into<Error>>, timed: bool, what: &str) {
        let result = result.map_err(Into::into);
        self.repairs();
        match self.take(1) {
            Some((position, _)) => {
                let got =
                    result.unwrap_or_else(|error| panic!("{what}: {error:?}; the model has message at {position}"));
                self.held(position).check(&got, what);
                self.release(position, 1);
            }
            None => expect_refusal(
                result.expect_err("received from an empty ring"),
                false,
                self.producers_gone(),
                timed,
                what,
            ),
        }
    }

    fn try_recv(&mut self, handle: usize) {
        let Some(receiver) = self.receivers[handle].as_mut() else { return };
        let mut buffer = Vec::new();
        let result = receiver.try_recv(&mut buffer);
        self.expect_received(result.map(|()| buffer), false, "try_recv");
    }

    fn poll_recv(&mut self, handle: usize, input: &mut Input) {
        for _ in 0..input.byte() % 80 {
            let Some(receiver) = self.receivers[handle].as_mut() else { return };
            let mut buffer = Vec::new();
            let result = receiver.try_recv(&mut buffer);
            self.expect_received(result.map(|()| buffer), false, "try_recv (poll)");
            self.settle();
        }
    }

    fn recv_timed(&mut self, handle: usize, input: &mut Input) {
        let variant = input.byte() % 3;
        let timeout = input.timeout();
        let max = usize::from(input.byte() % 6);
        let Some(receiver) = self.receivers[handle].as_mut() else { return };
        match variant {
            0 => {
                let mut buffer = Vec::new();
                let result = receiver.recv_timeout(&mut buffer, timeout);
                self.expect_received(result.map(|()| buffer), true, "recv_timeout");
            }
            1 => {
                let result = receiver.recv_ref_timeout(timeout).map(|guard| guard.to_vec());
                self.expect_received(result, true, "recv_ref_timeout");
            }
            _ => {
                let result = receiver.recv_batch_timeout(max, timeout).map(|batch| {
                    batch.iter().map(|message| message.expect("batch message").to_vec()).collect::<Vec<_>>()
                });
                self.repairs();
                let Some((first, count)) = self.take(max as u64) else {
                    let error = result.expect_err("batch from an empty ring");
                    return expect_refusal(error, false, self.producers_gone(), true, "recv_batch_timeout");
                };
                let got = result.unwrap_or_else(|error| panic!("recv_batch_timeout: {error:?} with messages"));
                assert_eq!(got.len() as u64, count, "recv_batch_timeout: length");
                for (offset, got) in got.iter().enumerate() {
                    self.held(first + offset as u64).check(got, "recv_batch_timeout");
                }
                self.release(first, count);
            }
        }
    }

    fn hold_guard(&mut self, handle: usize, input: &mut Input, depth: u32) {
        let Some(mut receiver) = self.receivers[handle].take() else { return };
        self.receiver_busy[handle] = true;
        let mut crashed = false;
        let result = receiver.try_recv_ref();
        self.repairs();
        let taken = self.take(1);
        match (result, taken) {
            (Ok(guard), Some((position, _))) => {
                self.held(position).check(&guard, "try_recv_ref");
                if depth < MAX_DEPTH {
                    self.run(input, depth + 1);
                }
                self.held(position).check(&guard, "held guard");
                if input.byte() % 3 != 2 {
                    drop(guard);
                    self.release(position, 1);
                } else {
                    // A crash while reading: the message stays claimed until a producer publishes
                    // it again.
                    guard.leak();
                    self.crash_holding(position, 1);
                    crashed = true;
                }
            }
            (Ok(guard), None) => panic!("try_recv_ref: got {:?}; the model has the ring empty", guard.to_vec()),
            (Err(error), Some((position, _))) => {
                panic!("try_recv_ref: {error:?}; the model has a message at {position}")
            }
            (Err(error), None) => expect_refusal(error, false, self.producers_gone(), false, "try_recv_ref"),
        }
        if !crashed {
            self.receivers[handle] = Some(receiver);
        }
        self.receiver_busy[handle] = false;
    }

    fn hold_read_batch(&mut self, handle: usize, input: &mut Input, depth: u32) {
        let max = usize::from(input.byte() % 6);
        let Some(mut receiver) = self.receivers[handle].take() else { return };
        self.receiver_busy[handle] = true;
        let mut crashed = false;
        let result = receiver.try_recv_batch(max);
        self.repairs();
        let taken = self.take(max as u64);
        match (result, taken) {
            (Ok(batch), Some((first, count))) => {
                assert_eq!(batch.len() as u64, count, "try_recv_batch: length");
                let check = |this: &Self, what: &str| {
                    for offset in 0..count {
                        this.held(first + offset).check(batch.get(offset as usize).expect("batch message"), what);
                    }
                };
                check(self, "try_recv_batch");
                if depth < MAX_DEPTH {
                    self.run(input, depth + 1);
                }
                check(self, "held batch");
                if input.byte() % 3 != 2 {
                    drop(batch);
                    self.release(first, count);
                } else {
                    // A crash holding a batch: its messages are published again, one by one, by
                    // producers that find their slots still taken.
                    std::mem::forget(batch);
                    self.crash_holding(first, count);
                    crashed = true;
                }
            }
            (Ok(batch), None) => panic!("try_recv_batch: got {} messages; the model has the ring empty", batch.len()),
            (Err(error), Some((first, _))) => panic!("try_recv_batch: {error:?}; the model has a message at {first}"),
            (Err(error), None) => expect_refusal(error, false, self.producers_gone(), false, "try_recv_batch"),
        }
        if !crashed {
            self.receivers[handle] = Some(receiver);
        }
        self.receiver_busy[handle] = false;
    }

    fn toggle_sender(&mut self, handle: usize, input: &mut Input) {
        let how = input.byte() % 3;
        if self.sender_busy[handle] {
            return;
        }
        if self.senders[handle].take().is_some() {
            return;
        }
        let sender = match how {
            0 => match self.senders.iter().flatten().next() {
                Some(other) => other.try_clone(),
                None => MpmcSender::attach(self.ring.clone()),
            },
            1 => MpmcSender::attach(self.ring.clone()),
            _ => MpmcSender::attach(shm_ring(mapping(&self.fd))),
        };
        self.senders[handle] = Some(sender.unwrap_or_else(|error| panic!("attach a sender: {error:?}")));
        self.producer[handle] = self.next_producer;
        self.next_producer += 1;
    }

    fn toggle_receiver(&mut self, handle: usize, input: &mut Input) {
        let how = input.byte() % 3;
        if self.receiver_busy[handle] {
            return;
        }
        if self.receivers[handle].take().is_some() {
            return;
        }
        let receiver = match how {
            0 => match self.receivers.iter().flatten().next() {
                Some(other) => other.try_clone(),
                None => MpmcReceiver::attach(self.ring.clone()),
            },
            1 => MpmcReceiver::attach(self.ring.clone()),
            _ => MpmcReceiver::attach(shm_ring(mapping(&self.fd))),
        };
        self.receivers[handle] = Some(receiver.unwrap_or_else(|error| panic!("attach a receiver: {error:?}")));
    }
}
