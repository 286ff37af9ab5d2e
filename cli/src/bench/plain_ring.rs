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
/// Ring size: as many slots as fit 4 MiB, at least 2 and at most 1024 (the rows' ring depths are
/// of the same order).
const RING_BYTES: usize = 4 << 20;

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
}

/// Slots and slot stride for messages of `size` bytes.
fn geometry(size: usize) -> (usize, usize) {
    let stride = size.max(8).next_multiple_of(8);
    let slots = (RING_BYTES / stride).clamp(2, 1024).next_power_of_two();
    (slots, stride)
}

/// The shared object, mapped.
struct Shared {
    map: MmapRaw,
    slots: usize,
    stride: usize,
}

impl Shared {
    fn map(file: &File, size: usize) -> CliResult<Shared> {
        let (slots, stride) = geometry(size);
        let map = MmapOptions::new()
            .len(SLOTS + slots * stride)
            .map_raw(file)
            .map_err(|source| CliError::io("mapping the plain ring", source))?;
        Ok(Shared { map, slots, stride })
    }

    fn word(&self, offset: usize) -> &AtomicU64 {
        // SAFETY: TAIL, HEAD and DONE are 8-aligned and inside the mapping (which is at least
        // SLOTS bytes), which lives as long as self; both processes access them only atomically.
        unsafe { AtomicU64::from_ptr(self.map.as_mut_ptr().add(offset).cast()) }
    }

    /// The slot of `position`.
    ///
    /// # Safety
    /// Only the side that owns the slot now (the producer between its check for room and its
    /// tail store, the consumer between its check for a message and its head store) may use it.
    #[allow(clippy::mut_from_ref)]
    unsafe fn slot(&self, position: u64) -> &mut [u8] {
        let index = (position as usize) & (self.slots - 1);
        // SAFETY: index < slots, so the slot is inside the mapping; the caller owns it (above).
        unsafe { std::slice::from_raw_parts_mut(self.map.as_mut_ptr().add(SLOTS + index * self.stride), self.stride) }
    }
}

/// Measures both variants at `size` for `duration` each.
pub fn measure(size: usize, duration: Duration) -> CliResult<PlainRing> {
    let copy = stream(size, duration, false)?;
    Ok(PlainRing {
        msg_size: size,
        msgs_per_sec: copy,
        msgs_per_sec_min: copy,
        msgs_per_sec_max: copy,
        in_place_msgs_per_sec: stream(size, duration, true)?,
    })
}

/// One stream from the helper; messages per second between the first and the last.
fn stream(size: usize, duration: Duration, in_place: bool) -> CliResult<f64> {
    let (slots, stride) = geometry(size);
    let (file, object) = temporary::shared_file("bench-plain", (SLOTS + slots * stride) as u64)?;
    let shared = Shared::map(&file, size)?;
    let size_text = size.to_string();
    let duration_text = duration.as_secs_f64().to_string();
    let mut peer = Peer::spawn(&["bench-plain-peer", object.name(), &size_text, &duration_text])?;
    let work = Work::new(size);
    let mut buffer = vec![0u8; size];
    let (tail, head, done) = (shared.word(TAIL), shared.word(HEAD), shared.word(DONE));
    let limit = duration * 4 + Duration::from_secs(30);
    let started = Instant::now();
    let mut position = 0u64;
    let mut cached_tail = 0u64;
    let mut first = None;
    loop {
        if position == cached_tail {
            // Acquire: pairs with the producer's release of tail; the slots below it are written.
            cached_tail = tail.load(Ordering::Acquire);
            if position == cached_tail {
                let end = done.load(Ordering::Acquire);
                if end != 0 && position + 1 >= end {
                    break;
                }
                if started.elapsed() > limit {
                    return Err(CliError::Peer("the plain ring's producer stalled".to_string()));
                }
                if position & 0xfff == 0 {
                    peer.check_running()?;
                }
                std::hint::spin_loop();
                continue;
            }
        }
        // SAFETY: position < tail: the producer published this slot and does not touch it again
        // before the head store below.
        let slot = unsafe { shared.slot(position) };
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

/// The producing helper: writes messages for `duration`, then its final count.
pub fn run_peer(args: &BenchPlainPeerArgs) -> CliResult {
    let fd = shm_open(args.name.as_str(), OFlag::O_RDWR, Mode::empty())
        .map_err(|errno| CliError::io(format!("opening {}", args.name), std::io::Error::from(errno)))?;
    let shared = Shared::map(&File::from(fd), args.size)?;
    let (tail, head, done) = (shared.word(TAIL), shared.word(HEAD), shared.word(DONE));
    let slots = shared.slots as u64;
    let mut work = Work::new(args.size);
    let mut position = 0u64;
    let mut cached_head = 0u64;
    let started = Instant::now();
    'sending: while started.elapsed() < args.duration.duration {
        // Look at the clock once per 256 messages: it is not free.
        for _ in 0..256 {
            while position - cached_head == slots {
                // Acquire: pairs with the consumer's release of head; the slot is free.
                cached_head = head.load(Ordering::Acquire);
                if position - cached_head == slots {
                    if started.elapsed() > args.duration.duration * 4 + Duration::from_secs(30) {
                        break 'sending;
                    }
                    std::hint::spin_loop();
                }
            }
            // SAFETY: position - head < slots: the consumer released this slot and does not
            // touch it again before the tail store below.
            let slot = unsafe { shared.slot(position) };
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
