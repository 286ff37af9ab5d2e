//! `pingpong --baseline`: the same round trip as `pingpong`, between the same kind of two
//! processes, with no ring at all: one page of shared memory where side A stores an odd counter
//! and spins until side B answers with the next even one.
//!
//! This is the floor a ring cannot beat: each round trip moves the cache line(s) between two
//! cores twice. Two placements are measured: both counters in the SAME 64-byte line (one line
//! bounces), and each counter on its own 128-byte block, which is how ipcring places its
//! producer and consumer positions (two lines bounce, without false sharing).

use std::fs::File;
use std::time::Instant;

use hdrhistogram::Histogram;
use memmap2::{MmapOptions, MmapRaw};
use nix::fcntl::OFlag;
use nix::sys::mman::shm_open;
use nix::sys::stat::Mode;
use nix::unistd::getppid;

use super::args::{BaselinePeerArgs, CounterPlacement};
use super::error::{CliError, CliResult};
use super::latency;
use super::peer::Peer;
use super::pingpong::EXIT_LIMIT;
use super::temporary;
use std::sync::atomic::{AtomicU64, Ordering};

/// Size of the shared object: one page.
const PAGE: u64 = 4096;
/// Side A's word tells B to exit when it holds this (an odd value A never reaches).
const STOP: u64 = u64::MAX;
/// Spins between two looks at the other process's liveness (a system call) and a `yield`, which
/// lets the other side run when both share a core. About a millisecond of spinning.
const SPINS_PER_CHECK: u32 = 1 << 16;

/// Byte offsets of the A and B counters.
fn offsets(placement: CounterPlacement) -> (u64, u64) {
    match placement {
        CounterPlacement::SameLine => (0, 8),
        CounterPlacement::SeparateBlocks => (0, 128),
    }
}

/// The mapped page and the two counters in it.
struct Counters {
    map: MmapRaw,
    a: u64,
    b: u64,
}

impl Counters {
    fn map(file: &File, placement: CounterPlacement) -> CliResult<Counters> {
        let map = MmapOptions::new()
            .len(PAGE as usize)
            .map_raw(file)
            .map_err(|source| CliError::io("mapping the baseline page", source))?;
        let (a, b) = offsets(placement);
        Ok(Counters { map, a, b })
    }

    fn word(&self, offset: u64) -> &AtomicU64 {
        debug_assert!(offset % 8 == 0 && offset + 8 <= PAGE);
        // SAFETY: the mapping is PAGE bytes, page aligned and lives as long as `self`; the
        // offsets are constants (0, 8, 128) that are 8-byte aligned and inside it; both processes
        // access these words only atomically, and any bit pattern is a valid u64.
        unsafe { AtomicU64::from_ptr(self.map.as_mut_ptr().add(offset as usize).cast()) }
    }

    fn a(&self) -> &AtomicU64 {
        self.word(self.a)
    }

    fn b(&self) -> &AtomicU64 {
        self.word(self.b)
    }
}

/// Times `count` bare round trips (after `warmup` untimed ones) against a helper process.
pub fn measure(placement: CounterPlacement, count: u64, warmup: u64) -> CliResult<Histogram<u64>> {
    let suffix = match placement {
        CounterPlacement::SameLine => "baseline-same-line",
        CounterPlacement::SeparateBlocks => "baseline-separate-blocks",
    };
    let (file, object) = temporary::shared_file(suffix, PAGE)?;
    let counters = Counters::map(&file, placement)?;
    let placement_name = match placement {
        CounterPlacement::SameLine => "same-line",
        CounterPlacement::SeparateBlocks => "separate-blocks",
    };
    let parent = std::process::id().to_string();
    let mut peer = Peer::spawn(&["baseline-peer", object.name(), placement_name, &parent])?;

    let mut histogram = latency::histogram();
    for round in 0..warmup + count {
        let odd = 2 * round + 1;
        let start = Instant::now();
        // Release/Acquire as in the ring (position stores and loads), so the comparison is fair;
        // on x86 both are plain moves. Pairs with B's acquire load of A and release store of B.
        counters.a().store(odd, Ordering::Release);
        let mut spins = 0;
        while counters.b().load(Ordering::Acquire) != odd + 1 {
            spins += 1;
            if spins == SPINS_PER_CHECK {
                spins = 0;
                peer.check_running()?;
                std::thread::yield_now();
            }
            std::hint::spin_loop();
        }
        let elapsed = start.elapsed();
        if round >= warmup {
            latency::record(&mut histogram, elapsed);
        }
    }
    counters.a().store(STOP, Ordering::Release);
    peer.finish(EXIT_LIMIT)?;
    Ok(histogram)
}

/// Side B: answer each odd counter with the next even one until told to stop, or until the
/// measuring process is gone (this process is then re-parented).
pub fn run_peer(args: &BaselinePeerArgs) -> CliResult {
    let fd = shm_open(args.name.as_str(), OFlag::O_RDWR, Mode::empty())
        .map_err(|errno| CliError::io(format!("opening {}", args.name), std::io::Error::from(errno)))?;
    let file = File::from(fd);
    let length = file.metadata().map_err(|source| CliError::io(format!("inspecting {}", args.name), source))?.len();
    if length < PAGE {
        return Err(CliError::Peer(format!("{} is {length} bytes, not {PAGE}", args.name)));
    }
    let counters = Counters::map(&file, args.placement)?;
    let mut expected = 1u64;
    let mut spins = 0;
    loop {
        // Acquire: pairs with A's release store of its counter.
        let value = counters.a().load(Ordering::Acquire);
        if value == expected {
            // Release: pairs with A's acquire load of this counter.
            counters.b().store(expected + 1, Ordering::Release);
            expected += 2;
            continue;
        }
        if value == STOP {
            return Ok(());
        }
        spins += 1;
        if spins == SPINS_PER_CHECK {
            spins = 0;
            if getppid().as_raw() as u32 != args.parent {
                return Err(CliError::Peer("the measuring process is gone".to_string()));
            }
            std::thread::yield_now();
        }
        std::hint::spin_loop();
    }
}
