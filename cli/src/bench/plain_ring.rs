//! The ceiling of every throughput row: a plain SPSC ring between this process and a helper
//! process (`ipcring bench-plain-peer`), measured in the same run at every size. Fixed slots of
//! the message size (rounded up to 8 bytes), each side's position alone on its cache lines, the
//! other side's position cached and reloaded only when the ring looks full or empty, no length
//! header, no validation, no wakeups: what two processes sharing memory cannot beat while doing
//! the rows' work ([`super::work`]: the helper writes every byte of every message, this process
//! reads every byte and checks the sequence number and the checksum).
//!
//! Two variants: `copy` (this process copies each message out of the slot into a buffer, then
//! checks the buffer: the ceiling of the copying rows) and `in place` (it checks the slot where
//! it is: the ceiling of zero-copy rows).
//!
//! The ceiling of round trips is a ping-pong over two such rings ([`pingpong`]): this process
//! writes message `n` into `ping`, the helper copies it out, checks it and writes it into `pong`,
//! this process copies it out and checks it: the four copies and two checks of a round-trip row.

use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use memmap2::{MmapOptions, MmapRaw};
use nix::fcntl::OFlag;
use nix::sys::mman::shm_open;
use nix::sys::stat::Mode;
use serde::Serialize;

use super::super::args::BenchPlainPeerArgs;
use super::super::error::{CliError, CliResult};
use super::super::latency::Summary;
use super::super::peer::Peer;
use super::super::pingpong::EXIT_LIMIT;
use super::super::temporary;
use super::work::Work;

/// Offsets in the shared object: the producer's position, the consumer's, the producer's final
/// count (+1; 0 while it sends), each on its own 128 bytes; the slots after them.
const TAIL: usize = 0;
const HEAD: usize = 128;
const DONE: usize = 256;
const SLOTS: usize = 384;

/// One plain-ring measurement at one size.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct PlainRing {
    /// Message size in bytes.
    pub msg_size: usize,
    /// Messages per second, copying out (the median of the rounds).
    pub msgs_per_sec: f64,
    /// The slowest round, copying out.
    pub msgs_per_sec_min: f64,
    /// The fastest round, copying out.
    pub msgs_per_sec_max: f64,
    /// Messages per second, checked in place.
    pub in_place_msgs_per_sec: f64,
    /// Round trips through two plain rings ([`pingpong`]): the ceiling of the rings' round
    /// trips at this size (the round whose p50 is the median).
    pub pingpong: Summary,
}

/// Slots and slot stride for messages of `size` bytes.
fn geometry(size: usize) -> (usize, usize) {
    let stride = size.max(8).next_multiple_of(8);
    // The rows' bytes in flight (`super::IN_FLIGHT`), counted in 64-byte slots at least as theirs.
    let slots = (super::IN_FLIGHT / stride.max(64)).clamp(2, 1024).next_power_of_two();
    (slots, stride)
}

/// Bytes of one plain ring of `size`-byte messages in the shared object (a multiple of 128).
fn ring_bytes(size: usize) -> usize {
    let (slots, stride) = geometry(size);
    (SLOTS + slots * stride).next_multiple_of(128)
}

/// The shared object, mapped: `rings` plain rings one after the other.
struct Shared {
    map: MmapRaw,
    slots: usize,
    stride: usize,
    ring_bytes: usize,
    rings: usize,
}

impl Shared {
    fn map(file: &File, size: usize, rings: usize) -> CliResult<Shared> {
        let (slots, stride) = geometry(size);
        let ring_bytes = ring_bytes(size);
        let map = MmapOptions::new()
            .len(ring_bytes * rings)
            .map_raw(file)
            .map_err(|source| CliError::io("mapping the plain ring", source))?;
        Ok(Shared { map, slots, stride, ring_bytes, rings })
    }

    /// Byte `offset` of ring `ring` (clamped to the last ring).
    fn at(&self, ring: usize, offset: usize) -> *mut u8 {
        // SAFETY: ring < rings and offset < ring_bytes (callers pass TAIL, HEAD, DONE or a slot
        // offset), so the address is inside the mapping of rings * ring_bytes bytes.
        unsafe { self.map.as_mut_ptr().add(ring.min(self.rings - 1) * self.ring_bytes + offset) }
    }

    fn word(&self, ring: usize, offset: usize) -> &AtomicU64 {
        // SAFETY: TAIL, HEAD and DONE are 8-aligned (the rings are 128-aligned) and inside the
        // mapping, which lives as long as self; both processes access them only atomically.
        unsafe { AtomicU64::from_ptr(self.at(ring, offset).cast()) }
    }

    /// The slot of `position` in ring `ring`.
    ///
    /// # Safety
    /// Only the side that owns the slot now (the producer between its check for room and its
    /// tail store, the consumer between its check for a message and its head store) may use it.
    #[allow(clippy::mut_from_ref)]
    unsafe fn slot(&self, ring: usize, position: u64) -> &mut [u8] {
        let index = (position as usize) & (self.slots - 1);
        // SAFETY: index < slots, so the slot is inside the ring; the caller owns it (above).
        unsafe { std::slice::from_raw_parts_mut(self.at(ring, SLOTS + index * self.stride), self.stride) }
    }
}

/// Measures both streaming variants at `size` for `duration` each, and `count` round trips
/// (after a warm-up of a tenth, at least 1000).
pub fn measure(size: usize, duration: Duration, count: u64) -> CliResult<PlainRing> {
    let copy = stream(size, duration, false)?;
    Ok(PlainRing {
        msg_size: size,
        msgs_per_sec: copy,
        msgs_per_sec_min: copy,
        msgs_per_sec_max: copy,
        in_place_msgs_per_sec: stream(size, duration, true)?,
        pingpong: Summary::of(&pingpong(size, (count / 10).max(1000), count)?),
    })
}

/// One stream from the helper; messages per second between the first and the last.
fn stream(size: usize, duration: Duration, in_place: bool) -> CliResult<f64> {
    let (file, object) = temporary::shared_file("bench-plain", ring_bytes(size) as u64)?;
    let shared = Shared::map(&file, size, 1)?;
    let size_text = size.to_string();
    let duration_text = duration.as_secs_f64().to_string();
    let mut peer = Peer::spawn(&["bench-plain-peer", object.name(), &size_text, &duration_text])?;
    let work = Work::new(size);
    let mut buffer = vec![0u8; size];
    let (tail, head, done) = (shared.word(0, TAIL), shared.word(0, HEAD), shared.word(0, DONE));
    let limit = duration * 4 + Duration::from_secs(30);
    let started = Instant::now();
    let mut position = 0u64;
    let mut cached_tail = 0u64;
    let mut first = None;
    let mut polls = 0u64;
    loop {
        if position == cached_tail {
            // Acquire: pairs with the producer's release of tail; the slots below it are written.
            cached_tail = tail.load(Ordering::Acquire);
            if position == cached_tail {
                // The end, the clock and the helper are looked at once per 1024 empty polls
                // only: the poll loop stays as tight as a plain ring's.
                polls += 1;
                if polls % 1024 == 0 {
                    let end = done.load(Ordering::Acquire);
                    if end != 0 && position + 1 >= end {
                        break;
                    }
                    if started.elapsed() > limit {
                        return Err(CliError::Peer("the plain ring's producer stalled".to_string()));
                    }
                    peer.check_running()?;
                }
                std::hint::spin_loop();
                continue;
            }
        }
        // SAFETY: position < tail: the producer published this slot and does not touch it again
        // before the head store below.
        let slot = unsafe { shared.slot(0, position) };
        let message = &slot[..size];
        let checked = if in_place {
            work.check(position, message)
        } else {
            buffer.copy_from_slice(message);
            work.check(position, &buffer)
        };
        checked.map_err(CliError::Peer)?;
        if first.is_none() {
            first = Some(Instant::now());
        }
        position += 1;
        // Release: pairs with the producer's acquire of head; it may reuse the slot now.
        head.store(position, Ordering::Release);
    }
    let elapsed = first.map_or(Duration::ZERO, |first| first.elapsed());
    peer.finish(EXIT_LIMIT)?;
    drop(object);
    Ok(position.saturating_sub(1) as f64 / elapsed.as_secs_f64().max(1e-9))
}

/// The producing helper: writes messages for `duration`, then its final count; with `--echo`,
/// the echo of [`pingpong`].
pub fn run_peer(args: &BenchPlainPeerArgs) -> CliResult {
    let fd = shm_open(args.name.as_str(), OFlag::O_RDWR, Mode::empty())
        .map_err(|errno| CliError::io(format!("opening {}", args.name), std::io::Error::from(errno)))?;
    if args.echo {
        return echo(&Shared::map(&File::from(fd), args.size, 2)?, args.size);
    }
    let shared = Shared::map(&File::from(fd), args.size, 1)?;
    let (tail, head, done) = (shared.word(0, TAIL), shared.word(0, HEAD), shared.word(0, DONE));
    let slots = shared.slots as u64;
    let mut work = Work::new(args.size);
    let mut position = 0u64;
    let mut cached_head = 0u64;
    let started = Instant::now();
    'sending: while started.elapsed() < args.duration.duration {
        // Look at the clock once per 256 messages: it is not free.
        for _ in 0..256 {
            let mut polls = 0u64;
            while position - cached_head == slots {
                // Acquire: pairs with the consumer's release of head; the slot is free.
                cached_head = head.load(Ordering::Acquire);
                if position - cached_head == slots {
                    // The clock once per 1024 full polls only (a tight loop, as a plain ring's).
                    polls += 1;
                    if polls % 1024 == 0 && started.elapsed() > args.duration.duration * 4 + Duration::from_secs(30) {
                        break 'sending;
                    }
                    std::hint::spin_loop();
                }
            }
            // SAFETY: position - head < slots: the consumer released this slot and does not
            // touch it again before the tail store below.
            let slot = unsafe { shared.slot(0, position) };
            work.write(position, slot);
            position += 1;
            // Release: pairs with the consumer's acquire of tail; the slot is written.
            tail.store(position, Ordering::Release);
        }
    }
    // Release: the consumer that sees it sees every tail store before it.
    done.store(position + 1, Ordering::Release);
    Ok(())
}

/// Ring numbers of the ping-pong: this process writes `PING`, the echo writes `PONG`.
const PING: usize = 0;
const PONG: usize = 1;

/// Waits until ring `ring` holds message `position` (its tail passed it); false if its producer
/// said it is done first, or after `limit` (both looked at once per 1024 polls only, so that the
/// poll loop is as tight as a plain ring's).
fn wait_for(shared: &Shared, ring: usize, position: u64, limit: Duration) -> bool {
    let tail = shared.word(ring, TAIL);
    let mut started = None;
    for poll in 1u64.. {
        // Acquire: pairs with the producer's release of tail; the slot is written.
        if tail.load(Ordering::Acquire) > position {
            return true;
        }
        if poll % 1024 == 0 {
            let started = *started.get_or_insert_with(Instant::now);
            if shared.word(ring, DONE).load(Ordering::Acquire) != 0 || started.elapsed() > limit {
                return false;
            }
        }
        std::hint::spin_loop();
    }
    false
}

/// Copies message `position` of ring `ring` out into `buffer`, checks it, and releases its slot.
fn take(shared: &Shared, ring: usize, position: u64, work: &Work, buffer: &mut [u8]) -> CliResult {
    // SAFETY: the tail passed `position` (wait_for): the producer published this slot, and it
    // does not touch it before the head store below.
    let slot = unsafe { shared.slot(ring, position) };
    buffer.copy_from_slice(&slot[..buffer.len()]);
    work.check(position, buffer).map_err(CliError::Peer)?;
    // Release: pairs with the producer's acquire of head (one message in flight: never full).
    shared.word(ring, HEAD).store(position + 1, Ordering::Release);
    Ok(())
}

/// Writes `message` as message `position` of ring `ring` and publishes it.
fn put(shared: &Shared, ring: usize, position: u64, message: &[u8]) {
    // SAFETY: one message is in flight at a time, so the consumer released this slot (two or
    // more slots) before this side could write it again.
    let slot = unsafe { shared.slot(ring, position) };
    slot[..message.len()].copy_from_slice(message);
    // Release: pairs with the consumer's acquire of tail.
    shared.word(ring, TAIL).store(position + 1, Ordering::Release);
}

/// The ceiling of round trips: `warmup + count` round trips of `size`-byte messages through two
/// plain rings and the echo helper, the last `count` timed.
pub fn pingpong(size: usize, warmup: u64, count: u64) -> CliResult<hdrhistogram::Histogram<u64>> {
    let (file, object) = temporary::shared_file("bench-plain-pingpong", 2 * ring_bytes(size) as u64)?;
    let shared = Shared::map(&file, size, 2)?;
    let size_text = size.to_string();
    let mut peer = Peer::spawn(&["bench-plain-peer", "--echo", object.name(), &size_text, "0"])?;
    let mut work = Work::new(size);
    let mut reply = vec![0u8; size];
    let mut histogram = super::super::latency::histogram();
    for round in 0..warmup + count {
        let limit = Duration::from_secs(if round == 0 { 30 } else { 10 });
        let start = Instant::now();
        put(&shared, PING, round, work.message(round));
        if !wait_for(&shared, PONG, round, limit) {
            peer.check_running()?;
            return Err(CliError::Peer("the plain ring's echo never answered".to_string()));
        }
        take(&shared, PONG, round, &work, &mut reply)?;
        if round >= warmup {
            super::super::latency::record(&mut histogram, start.elapsed());
        }
    }
    // Release: the echo that sees it has seen every message.
    shared.word(PING, DONE).store(1, Ordering::Release);
    peer.finish(EXIT_LIMIT)?;
    drop(object);
    Ok(histogram)
}

/// The echo of [`pingpong`]: copies each message of `PING` out, checks it, writes it into `PONG`.
fn echo(shared: &Shared, size: usize) -> CliResult {
    let work = Work::new(size);
    let mut message = vec![0u8; size];
    for position in 0.. {
        if !wait_for(shared, PING, position, Duration::from_secs(60)) {
            return Ok(());
        }
        take(shared, PING, position, &work, &mut message)?;
        put(shared, PONG, position, &message);
    }
    Ok(())
}
