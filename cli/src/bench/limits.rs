//! The physical limits `bench` measures in the same run and divides by: the plain-ring ceiling of
//! every throughput row at each message size ([`super::plain_ring`]), a bare cache-line
//! ping-pong between two processes (one shared line, and two lines apart as a ring places its
//! positions), a raw futex WAIT/WAKE ping-pong between two processes; and, as a labelled
//! reference only (one thread, no second process: not a ceiling of anything), single-thread
//! `memcpy` bandwidth at each message size.

use std::hint::black_box;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use super::super::args::{BenchFutexPeerArgs, CounterPlacement, WakeRaw};
use super::super::baseline;
use super::super::error::{CliError, CliResult};
use super::super::latency::{self, Summary};
use super::super::peer::Peer;
use super::super::pingpong::EXIT_LIMIT;
use super::shared_page::SharedPage;
use super::wake::{futex_signal, futex_wait};
use super::{pin, wake};

/// The limits, as `--json` prints them under `"limits"`.
#[derive(Clone, Debug, Serialize)]
pub struct Limits {
    /// Round trip of one cache line between two processes.
    pub cache_line_same_line: Summary,
    /// Round trip with the two sides' lines 128 bytes apart (as a ring places its positions).
    pub cache_line_two_lines: Summary,
    /// Round trip of a raw futex WAIT/WAKE between two processes.
    pub futex: Summary,
    /// The same with each side asleep before it is woken (the protocol of the wake-latency
    /// rows, [`super::wake`]), no payload: the floor of a round trip through two wakeups.
    pub futex_asleep: Summary,
    /// A raw eventfd ping-pong (a `poll` that sleeps, a `read`, a `write` to wake) with each side asleep first.
    pub eventfd_asleep: Summary,
    /// A raw realtime-signal ping-pong (`sigqueue`, `sigtimedwait`) with each side asleep first.
    pub signal_asleep: Summary,
    /// The plain SPSC ring between two processes at each message size: the ceiling of the
    /// throughput rows (`copy`) and of zero-copy rows (`in place`).
    pub plain_ring: Vec<super::plain_ring::PlainRing>,
    /// Bare loops of the system calls of `pipe`, `unix` and `mq` at each message size (only
    /// those of the transports measured): the floor of those rows ([`super::bare_loop`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bare_loops: Vec<super::bare_loop::BareLoop>,
    /// Single-thread `memcpy` bandwidth, bytes per second, per message size (a reference).
    pub memcpy_bytes_per_sec: Vec<(usize, f64)>,
}

impl Limits {
    /// The plain ring's rate at `size`, copying out or (`in_place`) checked in the slot (0 if
    /// not measured).
    pub fn plain_ring(&self, size: usize, in_place: bool) -> f64 {
        let ring = self.plain_ring.iter().find(|ring| ring.msg_size == size);
        ring.map_or(0.0, |ring| if in_place { ring.in_place_msgs_per_sec } else { ring.msgs_per_sec })
    }
}

/// Measures the ping-pong limits (`count` round trips each) and `memcpy` at `sizes`; the
/// plain-ring ceilings are measured beside the rows of their size and added by the caller.
pub fn measure(count: u64, sizes: &[usize], cpus: Option<(usize, usize)>) -> CliResult<Limits> {
    let warmup = (count / 10).max(1000);
    let (wake_count, wake_warmup) = super::wake_count(count);
    let asleep = |raw| -> CliResult<Summary> {
        Ok(Summary::of(&wake::measure(wake::Subject::Raw(raw), 0, wake_count, wake_warmup)?.histogram))
    };
    Ok(Limits {
        plain_ring: Vec::new(),
        bare_loops: Vec::new(),
        cache_line_same_line: Summary::of(&baseline::measure(CounterPlacement::SameLine, count, warmup)?),
        cache_line_two_lines: Summary::of(&baseline::measure(CounterPlacement::SeparateBlocks, count, warmup)?),
        futex: Summary::of(&futex_pingpong(count.min(20_000), warmup.min(2000), cpus)?),
        futex_asleep: asleep(WakeRaw::Futex)?,
        eventfd_asleep: asleep(WakeRaw::Eventfd)?,
        signal_asleep: asleep(WakeRaw::Signal)?,
        memcpy_bytes_per_sec: sizes.iter().map(|&size| (size, memcpy_bandwidth(size))).collect(),
    })
}

/// Bytes per second one thread copies with `copy_from_slice` in messages of `size` bytes
/// (between two buffers of at least 1 MiB, so small sizes are not all served from one line).
pub fn memcpy_bandwidth(size: usize) -> f64 {
    if size == 0 {
        return 0.0;
    }
    let span = size.max(1 << 20);
    let source = vec![0x5au8; span];
    let mut target = vec![0u8; span];
    let per_pass = span / size;
    let mut copied = 0u64;
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(100) {
        for index in 0..per_pass {
            let range = index * size..(index + 1) * size;
            target[range.clone()].copy_from_slice(black_box(&source[range]));
        }
        black_box(&mut target);
        copied += (per_pass * size) as u64;
    }
    copied as f64 / started.elapsed().as_secs_f64()
}

/// Offsets of the two futex words in the shared page: on separate 128-byte blocks.
const PING: usize = 0;
const PONG: usize = 128;
/// Round number that tells the peer to exit.
const STOP: u32 = u32::MAX;

/// A raw futex ping-pong with a helper process: each side makes one WAKE (unconditional: a raw
/// futex keeps no count of sleepers) and one WAIT per round trip, through the kernel (no
/// spinning first), and no other system call. The WAIT finds the word already changed when the
/// other side answered before it slept: this is the floor of a futex round trip, not of a
/// wakeup from sleep (see [`super::wake`] for that).
fn futex_pingpong(count: u64, warmup: u64, cpus: Option<(usize, usize)>) -> CliResult<Histogram<u64>> {
    let (words, object) = SharedPage::create("bench-futex")?;
    let parent = std::process::id().to_string();
    let pin_arg = cpus.map(|(_, theirs)| theirs.to_string());
    let mut arguments = vec!["bench-futex-peer", object.name(), parent.as_str()];
    if let Some(cpu) = &pin_arg {
        arguments.extend(["--pin", cpu.as_str()]);
    }
    let mut peer = Peer::spawn(&arguments)?;
    let mut histogram = latency::histogram();
    for round in 1..=(warmup + count) as u32 {
        let start = Instant::now();
        futex_signal(words.u32(PING), round);
        futex_wait(words.u32(PONG), round - 1, || peer.check_running())?;
        let elapsed = start.elapsed();
        if u64::from(round) > warmup {
            latency::record(&mut histogram, elapsed);
        }
    }
    futex_signal(words.u32(PING), STOP);
    peer.finish(EXIT_LIMIT)?;
    Ok(histogram)
}

/// The helper of the futex ping-pong: answer every round until STOP or until the parent is gone.
pub fn run_futex_peer(args: &BenchFutexPeerArgs) -> CliResult {
    pin(args.pin)?;
    let words = SharedPage::open(&args.name)?;
    let parent_alive = || {
        if nix::unistd::getppid().as_raw() as u32 == args.parent {
            Ok(())
        } else {
            Err(CliError::Peer("the measuring process is gone".to_string()))
        }
    };
    let mut last = 0;
    loop {
        let round = futex_wait(words.u32(PING), last, parent_alive)?;
        if round == STOP {
            return Ok(());
        }
        futex_signal(words.u32(PONG), round);
        last = round;
    }
}
