//! `ipcring bench`: every transport measured side by side on this machine — streaming
//! throughput and round-trip latency, producer and consumer always in separate processes —
//! against the physical limits measured in the same run ([`limits`]), and optionally against
//! peer libraries (`benches/peers`, `--peers`).
//!
//! Beside the rings in /dev/shm, `shm-spsc-file` measures the same SPSC ring in a file on a disk
//! file system ([`disk_directory`]): the `shm-spsc` transport given a path for its address.

pub mod asynchronous;
pub mod bare_loop;
mod batch;
mod cpu;
pub mod cpus;
pub mod fanout;
pub mod limits;
mod load;
mod load_plot;
mod load_table;
mod peers;
pub mod plain_ring;
mod plot;
pub mod report;
pub mod ring_counters;
mod rounds;
pub mod shapes;
mod shared_page;
pub mod stream;
pub mod syscalls;
mod tally;
pub mod wake;
pub mod work;
mod zero_copy;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ipcring::__private::layout::WaitStrategy;
use ipcring::transport::{mq, seqpacket, sysv_mq, udp, unix_dgram, Kind, Options};

use super::args::{BenchArgs, PingpongArgs, WaitArg};
use super::error::{CliError, CliResult};
use super::latency::Summary;
use report::{Machine, Report, Row};

/// Sizes of the quick suite and of `--full`.
const QUICK_SIZES: [usize; 2] = [64, 4096];
const FULL_SIZES: [usize; 6] = [8, 64, 512, 4096, 65_536, 1_048_576];
/// Transports of the quick suite (the rings with [`QUICK_WAITS`]); `--full` and `--transports`
/// measure any.
const QUICK_TRANSPORTS: [&str; 4] = ["shm-spsc", "shm-mpmc", "pipe", "unix"];
/// Wait strategies of the rings in the quick suite: all but `mutex`, which `--full` and
/// `--transports shm-spsc:mutex` measure (it would take the quick run past two minutes).
const QUICK_WAITS: [WaitStrategy; 4] =
    [WaitStrategy::Spin, WaitStrategy::Futex, WaitStrategy::Membarrier, WaitStrategy::Semaphore];
/// Every wait strategy of the rings.
const ALL_WAITS: [WaitStrategy; 5] =
    [WaitStrategy::Spin, WaitStrategy::Futex, WaitStrategy::Membarrier, WaitStrategy::Semaphore, WaitStrategy::Mutex];

/// Bytes in flight every queue of a row is given where its transport lets the bench choose (the
/// rings, the plain ring, seqpacket): the capacity of a new pipe on Linux (16 pages), so that a
/// ring does not win by buffering more than a pipe. A queue holds at least 2 and at most 1024
/// messages (64 KiB of 64-byte ones; two 1 MiB ones). Unix stream and TCP sockets keep the
/// kernel's default buffers and POSIX queues the system's depth: their rows record what they hold
/// (`bytes_in_flight`).
pub const IN_FLIGHT: usize = 64 << 10;

/// The transport column of the SPSC ring in a file on a disk file system (`--transports
/// shm-spsc-file`).
const SHM_SPSC_FILE: &str = "shm-spsc-file";

/// One transport as measured: a kind and, for the rings, a wait strategy and where the ring is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Subject {
    kind: Kind,
    wait: Option<WaitStrategy>,
    /// The ring is a file in [`disk_directory`] instead of an object in /dev/shm (the
    /// `shm-spsc-file` rows; always `false` for other transports).
    in_file: bool,
}

impl Subject {
    fn wait_name(self) -> &'static str {
        self.wait.map_or("block", WaitStrategy::name)
    }

    /// The transport column: the kind's name, or `shm-spsc-file`.
    fn transport_name(self) -> &'static str {
        if self.in_file {
            SHM_SPSC_FILE
        } else {
            self.kind.name()
        }
    }
}

/// Expands `--transports` (default: all, the rings in /dev/shm with every wait strategy, and the
/// SPSC ring in a file with the default one, futex).
fn subjects(list: Option<&[String]>) -> CliResult<Vec<Subject>> {
    subjects_waiting(list, &ALL_WAITS)
}

/// [`subjects`], a ring named without a wait strategy expanded to `waits`.
fn subjects_waiting(list: Option<&[String]>, waits: &[WaitStrategy]) -> CliResult<Vec<Subject>> {
    let expand = |kind: Kind, wait: Option<WaitStrategy>| -> Vec<Subject> {
        match (kind, wait) {
            (Kind::ShmSpsc | Kind::ShmMpmc, None) => {
                waits.iter().map(|wait| Subject { kind, wait: Some(*wait), in_file: false }).collect()
            }
            (Kind::ShmSpsc | Kind::ShmMpmc, wait) => vec![Subject { kind, wait, in_file: false }],
            (kind, _) => vec![Subject { kind, wait: None, in_file: false }],
        }
    };
    let in_file = |wait: Option<WaitStrategy>| Subject {
        kind: Kind::ShmSpsc,
        wait: Some(wait.unwrap_or(WaitStrategy::Futex)),
        in_file: true,
    };
    let Some(list) = list else {
        let mut subjects: Vec<Subject> = Kind::ALL.iter().flat_map(|kind| expand(*kind, None)).collect();
        let after_shm_spsc = subjects.iter().rposition(|subject| subject.kind == Kind::ShmSpsc).map_or(0, |at| at + 1);
        subjects.insert(after_shm_spsc, in_file(None));
        return Ok(subjects);
    };
    let mut subjects = Vec::new();
    for item in list {
        let (name, wait) = match item.split_once(':') {
            Some((name, wait)) => {
                let wait = ALL_WAITS.into_iter().find(|strategy| strategy.name() == wait).ok_or_else(|| {
                    CliError::Usage(format!(
                        "unknown wait strategy {wait:?} in {item:?}; use spin, futex, membarrier, semaphore or mutex"
                    ))
                })?;
                (name, Some(wait))
            }
            None => (item.as_str(), None),
        };
        if name == SHM_SPSC_FILE {
            subjects.push(in_file(wait));
            continue;
        }
        let kind: Kind =
            name.parse().map_err(|error: ipcring::Error| CliError::Usage(format!("{error}, or {SHM_SPSC_FILE}")))?;
        subjects.extend(expand(kind, wait));
    }
    Ok(subjects)
}

/// Whether a `--transports` item names the broadcast ring (`shm-broadcast`, with or without a
/// wait strategy: its fan-out rows use futex).
fn is_broadcast(item: &str) -> bool {
    item.split(':').next() == Some(Kind::ShmBroadcast.name())
}

/// Where `shm-spsc-file` rings may go, best first: the temporary directory, /var/tmp, and the
/// directory of this executable (the build's target directory).
fn disk_candidates() -> Vec<PathBuf> {
    let executable = std::env::current_exe().ok().and_then(|path| path.parent().map(Path::to_path_buf));
    [Some(std::env::temp_dir()), Some(PathBuf::from("/var/tmp")), executable].into_iter().flatten().collect()
}

/// The first of [`disk_candidates`] on a disk file system (`statfs`: not tmpfs, ramfs or
/// hugetlbfs, which hold their files in memory), writable, with a UTF-8 path (a ring path is a
/// string); `None` if there is none.
fn disk_directory() -> Option<PathBuf> {
    use nix::sys::statfs::{statfs, FsType, HUGETLBFS_MAGIC, TMPFS_MAGIC};
    // linux/magic.h; nix does not name it.
    const RAMFS_MAGIC: FsType = FsType(0x8584_58f6);
    let on_disk = |directory: &Path| {
        statfs(directory)
            .is_ok_and(|stat| ![TMPFS_MAGIC, RAMFS_MAGIC, HUGETLBFS_MAGIC].contains(&stat.filesystem_type()))
    };
    let writable = |directory: &Path| nix::unistd::access(directory, nix::unistd::AccessFlags::W_OK).is_ok();
    disk_candidates()
        .into_iter()
        .find(|directory| directory.to_str().is_some() && on_disk(directory) && writable(directory))
}

/// Pins the calling process to `cpu` (if given; see [`cpus::pin_self`]).
pub fn pin(cpu: Option<usize>) -> CliResult {
    cpu.map_or(Ok(()), cpus::pin_self)
}

/// The largest message `subject` can carry on this system, if it has a limit below 2^32.
fn size_limit(kind: Kind) -> Option<usize> {
    match kind {
        Kind::Mq => mq::MqLimits::read().ok().map(|limits| limits.max_message_size),
        Kind::Seqpacket => Some(seqpacket::system_limit()),
        Kind::Signal => Some(ipcring::transport::signal::MAX_MESSAGE_SIZE),
        Kind::SysvMq => sysv_mq::SysvMqLimits::read().ok().map(|limits| limits.max_message_size),
        Kind::Udp => Some(udp::system_limit()),
        Kind::UnixDgram => Some(unix_dgram::system_limit()),
        _ => None,
    }
}

fn options(subject: Subject, size: usize) -> Options {
    let mut options = Options {
        max_message_size: size.max(8),
        depth: (IN_FLIGHT / size.max(64)).clamp(2, 1024).next_power_of_two() as u64,
        ..Options::default()
    };
    if let Some(wait) = subject.wait {
        options.wait = wait;
    }
    if subject.kind == Kind::Mq {
        options.depth = mq::MqLimits::read().map_or(10, |limits| limits.depth as u64);
    }
    if subject.kind == Kind::SysvMq {
        options.depth = sysv_depth(size);
    }
    options
}

/// As many `size`-byte messages as a System V queue may hold (`msgmnb / size`, at least 1).
pub(crate) fn sysv_depth(size: usize) -> u64 {
    let bytes = sysv_mq::SysvMqLimits::read().map_or(16_384, |limits| limits.queue_bytes);
    (bytes / size.max(8)).max(1) as u64
}

fn wait_arg(wait: Option<WaitStrategy>) -> WaitArg {
    match wait {
        Some(WaitStrategy::Futex) => WaitArg::Futex,
        Some(WaitStrategy::Semaphore) => WaitArg::Semaphore,
        Some(WaitStrategy::Mutex) => WaitArg::Mutex,
        Some(WaitStrategy::Membarrier) => WaitArg::Membarrier,
        _ => WaitArg::Spin,
    }
}

/// `directory`: where a `shm-spsc-file` subject's ring goes.
fn throughput_row(
    subject: Subject,
    directory: Option<&Path>,
    size: usize,
    duration: Duration,
    cpus: Option<(usize, usize)>,
) -> CliResult<Row> {
    let options = options(subject, size);
    let clock = cpu::CpuClock::start();
    let syscalls = syscalls::Counter::open().ok();
    let measured = stream::measure(subject.kind, directory, &options, size, duration, cpus.map(|(_, theirs)| theirs))?;
    Ok(stream_row(subject, size, "copy", &measured, clock, syscalls))
}

/// The row of a throughput measurement through `api`; `clock` and `syscalls` started before it.
fn stream_row(
    subject: Subject,
    size: usize,
    api: &str,
    measured: &stream::Throughput,
    clock: cpu::CpuClock,
    syscalls: Option<syscalls::Counter>,
) -> Row {
    let per_second = measured.per_second();
    let per_message = |count: u64| count as f64 / measured.messages.max(1) as f64;
    Row {
        transport: subject.transport_name().to_string(),
        wait: subject.wait_name().to_string(),
        pattern: "throughput".to_string(),
        api: api.to_string(),
        msg_size: size,
        producers: 1,
        consumers: 1,
        messages: measured.messages,
        msgs_per_sec: Some(per_second),
        bytes_per_sec: Some(per_second * size as f64),
        wait_calls_per_msg: measured.wait_calls_per_message(),
        cpu_ns_per_msg: Some(clock.per_message(measured.messages)),
        syscalls_per_msg: syscalls.and_then(|counter| counter.per_message(measured.messages)),
        sleeps_per_msg: measured.ring.map(|ring| per_message(ring.sleeps)),
        late_wakes: measured.ring.and_then(|ring| ring.late_wakes),
        bytes_in_flight: bytes_in_flight(subject, size),
        lost: matches!(subject.kind, Kind::Udp | Kind::UnixDgram).then_some(measured.lost),
        ..Row::default()
    }
}

/// The same stream through the rings' zero-copy API (`api: zero_copy`).
fn zero_copy_row(subject: Subject, size: usize, duration: Duration) -> CliResult<Row> {
    let options = options(subject, size);
    let clock = cpu::CpuClock::start();
    let syscalls = syscalls::Counter::open().ok();
    let measured = zero_copy::measure(subject.kind, options.wait, options.depth, size, duration)?;
    Ok(stream_row(subject, size, "zero_copy", &measured, clock, syscalls))
}

/// Whether `subject` has a zero-copy row: the rings in /dev/shm.
fn has_zero_copy(subject: Subject) -> bool {
    matches!(subject.kind, Kind::ShmSpsc | Kind::ShmMpmc) && !subject.in_file
}

/// Whether `subject` has a batch row: the rings in /dev/shm.
fn has_batch(subject: Subject) -> bool {
    matches!(subject.kind, Kind::ShmSpsc | Kind::ShmMpmc) && !subject.in_file
}

/// `directory`: where a `shm-spsc-file` subject's rings go.
fn latency_row(subject: Subject, directory: Option<&Path>, size: usize, count: u64) -> CliResult<Row> {
    let args = PingpongArgs {
        transport: Some(subject.kind),
        count,
        size: u32::try_from(size).map_err(|_| CliError::Usage(format!("size {size} is too large")))?,
        wait: wait_arg(subject.wait),
        slots: options(subject, size).depth.min(64),
        baseline: false,
        json: false,
    };
    let warmup = (count / 10).max(1000);
    let clock = cpu::CpuClock::start();
    let syscalls = syscalls::Counter::open().ok();
    let (histogram, ring) = match subject.kind {
        Kind::ShmSpsc => super::pingpong::measure_rings(&args, warmup, directory)?,
        kind => super::transport_pingpong::measure(&args, kind, warmup)?,
    };
    // Per round trip: warm-up included, since the clocks cannot tell the two apart.
    let cpu_ns_per_msg = Some(clock.per_message(warmup + count));
    // Counted over the timed round trips only (see `syscalls`).
    let syscalls_per_msg = syscalls.and_then(|counter| counter.per_message(count));
    let sleeps_per_msg = ring.map(|ring| ring.sleeps as f64 / (warmup + count) as f64);
    let summary = Summary::of(&histogram);
    Ok(Row {
        transport: subject.transport_name().to_string(),
        wait: subject.wait_name().to_string(),
        pattern: "latency".to_string(),
        api: "copy".to_string(),
        msg_size: size,
        producers: 1,
        consumers: 1,
        messages: count,
        msgs_per_sec: None,
        bytes_per_sec: None,
        p50_ns: Some(summary.p50_ns),
        p99_ns: Some(summary.p99_ns),
        p999_ns: Some(summary.p999_ns),
        max_ns: Some(summary.max_ns),
        wait_calls_per_msg: None,
        cpu_ns_per_msg,
        syscalls_per_msg,
        sleeps_per_msg,
        late_wakes: ring.and_then(|ring| ring.late_wakes),
        // A round trip's rings hold at most 64 messages (`slots` above); the kernel's buffers are
        // what they are.
        bytes_in_flight: match subject.kind {
            Kind::ShmSpsc | Kind::ShmMpmc => Some(args.slots * size as u64),
            _ => bytes_in_flight(subject, size),
        },
        ..Row::default()
    })
}

/// Round trips and warm-up of a wake-latency measurement in a run of `count` round trips per
/// latency row: a fifth of them (each takes two wakeups and the wait for two sleeps).
pub fn wake_count(count: u64) -> (u64, u64) {
    let wake = (count / 5).max(200);
    (wake, (wake / 10).max(50))
}

/// The wake-latency row of `subject` at `size`: `count` round trips, each receiver asleep
/// before its message ([`wake`]).
fn wake_row(subject: Subject, size: usize, count: u64) -> CliResult<Row> {
    let (count, warmup) = wake_count(count);
    let clock = cpu::CpuClock::start();
    let measured = wake::measure(wake::Subject::Transport(subject.kind, subject.wait), size, count, warmup)?;
    Ok(wake_latency_row(subject, subject.wait_name(), size, count, warmup, &measured, clock))
}

/// The row of a wake-latency measurement of `count` timed round trips after `warmup` (`clock`
/// started before them), its `wait` as given.
fn wake_latency_row(
    subject: Subject,
    wait: &str,
    size: usize,
    count: u64,
    warmup: u64,
    measured: &wake::Measured,
    clock: cpu::CpuClock,
) -> Row {
    let summary = Summary::of(&measured.histogram);
    Row {
        transport: subject.transport_name().to_string(),
        wait: wait.to_string(),
        pattern: "wake_latency".to_string(),
        api: "copy".to_string(),
        msg_size: size,
        producers: 1,
        consumers: 1,
        messages: count,
        p50_ns: Some(summary.p50_ns),
        p99_ns: Some(summary.p99_ns),
        p999_ns: Some(summary.p999_ns),
        max_ns: Some(summary.max_ns),
        cpu_ns_per_msg: Some(clock.per_message(warmup + count)),
        sleeps_per_msg: measured.sleeps_per_round_trip,
        late_wakes: measured.late_wakes,
        ..Row::default()
    }
}

/// Whether `subject` has a wake-latency row: every transport whose receiver can sleep (not a
/// spinning ring; not the ring in a file, which sleeps like the one in /dev/shm).
fn has_wake(subject: Subject) -> bool {
    subject.wait != Some(WaitStrategy::Spin) && !subject.in_file
}

/// Bytes the transport holds between the two sides as the row configures it: the ring's or
/// queue's depth times the message size (UDP: its credit window, as many of those messages as
/// the receive buffer holds); for the kernel byte streams, the kernel's buffer (a pipe's 64 KiB
/// default capacity, a socket's default send and receive buffers).
fn bytes_in_flight(subject: Subject, size: usize) -> Option<u64> {
    let options = options(subject, size);
    let queued = options.depth.saturating_mul(size as u64);
    match subject.kind {
        Kind::ShmSpsc | Kind::ShmMpmc | Kind::Mq | Kind::SysvMq | Kind::Seqpacket | Kind::UnixDgram => Some(queued),
        Kind::Udp => {
            let window = udp::window(options.max_message_size, usize::try_from(options.depth).unwrap_or(usize::MAX));
            Some(window.saturating_mul(size as u64))
        }
        Kind::Pipe | Kind::Fifo => Some(pipe_capacity()),
        Kind::Unix | Kind::Tcp => socket_buffers(subject.kind),
        // The sender's depth, within the user's pending-signal limit.
        Kind::Signal => Some(queued.min(pending_signal_limit().saturating_mul(size as u64))),
        _ => None,
    }
}

/// This user's limit of queued signals (`RLIMIT_SIGPENDING`, `ulimit -i`).
fn pending_signal_limit() -> u64 {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_SIGPENDING).map_or(u64::MAX, |(soft, _)| soft)
}

/// A new pipe's capacity on this system (`F_GETPIPE_SZ`; 64 KiB on Linux by default).
fn pipe_capacity() -> u64 {
    nix::unistd::pipe()
        .ok()
        .and_then(|(reader, _writer)| {
            nix::fcntl::fcntl(std::os::fd::AsRawFd::as_raw_fd(&reader), nix::fcntl::FcntlArg::F_GETPIPE_SZ).ok()
        })
        .map_or(65_536, |bytes| bytes as u64)
}

/// The default send plus receive buffer of a new `kind` socket (what its transport keeps: none
/// sets its own), from /proc/sys/net.
fn socket_buffers(kind: Kind) -> Option<u64> {
    let read = |path: &str, field: usize| -> Option<u64> {
        std::fs::read_to_string(path).ok()?.split_whitespace().nth(field)?.parse().ok()
    };
    match kind {
        Kind::Unix => Some(read("/proc/sys/net/core/wmem_default", 0)? + read("/proc/sys/net/core/rmem_default", 0)?),
        _ => Some(read("/proc/sys/net/ipv4/tcp_wmem", 1)? + read("/proc/sys/net/ipv4/tcp_rmem", 1)?),
    }
}

fn progress(total: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if !std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}") {
        bar.set_style(style);
    }
    bar
}

fn write_file(path: &Path, contents: &str) -> CliResult {
    if path == Path::new("-") {
        return super::print(contents);
    }
    std::fs::write(path, contents).map_err(|source| CliError::io(format!("writing {}", path.display()), source))
}

/// What the counting pass goes over: the run's subjects and sizes.
struct Pass<'a> {
    subjects: &'a [Subject],
    sizes: &'a [usize],
    /// Where `shm-spsc-file` rings go.
    disk: Option<&'a Path>,
    full: bool,
    placement: Option<cpus::Placement>,
}

/// Whether two rows measure the same thing (one from the rounds, one from the counting pass).
fn same_row(one: &Row, other: &Row) -> bool {
    (&one.transport, &one.wait, &one.pattern, &one.api, one.msg_size, one.producers, one.consumers)
        == (&other.transport, &other.wait, &other.pattern, &other.api, other.msg_size, other.producers, other.consumers)
}

/// Steps of the counting pass: the throughput, zero-copy, batch, round-trip and shape rows.
fn counting_steps(pass: &Pass<'_>) -> usize {
    let per_size: usize = pass
        .subjects
        .iter()
        .map(|subject| 2 + usize::from(has_zero_copy(*subject)) + usize::from(has_batch(*subject)))
        .sum();
    let shape_rows: usize =
        pass.sizes.iter().map(|size| shapes::at(pass.subjects, pass.sizes, *size, pass.full).len()).sum();
    per_size * pass.sizes.len() + shape_rows
}

/// The counting pass ([`syscalls`]): after the timed rounds, the throughput, zero-copy, batch,
/// round-trip and shape rows once more, a fifth as long, with every system call of both sides
/// counted; of these rows only `syscalls_per_msg` is kept (counting slows every system call, so
/// their rates and latencies are not the rounds' and are dropped). No wake-latency or load rows:
/// their own polling and spinning would be counted with the transport's calls.
fn counting_pass(
    pass: &Pass<'_>,
    duration: Duration,
    count: u64,
    cpus: Option<(usize, usize)>,
    bar: &ProgressBar,
) -> CliResult<Vec<Row>> {
    let duration = (duration / 5).max(Duration::from_millis(50));
    let count = (count / 5).max(1000);
    bar.inc_length(counting_steps(pass) as u64);
    syscalls::set_counting(true);
    let mut counted = Vec::new();
    let mut measure = || -> CliResult {
        for &size in pass.sizes {
            for subject in pass.subjects {
                let directory = match (subject.in_file, pass.disk) {
                    (false, _) => None,
                    (true, Some(directory)) => Some(directory),
                    (true, None) => continue,
                };
                if size_limit(subject.kind).is_some_and(|limit| size > limit) {
                    continue;
                }
                let label =
                    format!("counting system calls: {} {} {size} B", subject.transport_name(), subject.wait_name());
                bar.set_message(label);
                super::signals::check()?;
                counted.push(throughput_row(*subject, directory, size, duration, cpus)?);
                if has_zero_copy(*subject) {
                    counted.push(zero_copy_row(*subject, size, duration)?);
                }
                if has_batch(*subject) {
                    counted.push(batch::row(*subject, size, duration)?);
                }
                counted.push(latency_row(*subject, directory, size, count)?);
                bar.inc(2 + u64::from(has_zero_copy(*subject)) + u64::from(has_batch(*subject)));
            }
            for (subject, shape) in shapes::at(pass.subjects, pass.sizes, size, pass.full) {
                super::signals::check()?;
                counted.push(shapes::row(subject, shape, size, duration, pass.placement)?);
                bar.inc(1);
            }
        }
        Ok(())
    };
    let outcome = measure();
    syscalls::set_counting(false);
    outcome.map(|()| counted)
}

/// Runs the suite and prints (and writes) the report.
pub fn run(args: &BenchArgs) -> CliResult {
    let sizes: Vec<usize> = match &args.sizes {
        Some(sizes) => sizes.clone(),
        None if args.full => FULL_SIZES.to_vec(),
        None => QUICK_SIZES.to_vec(),
    };
    if let Some(size) = sizes.iter().find(|size| **size > u32::MAX as usize) {
        return Err(CliError::Usage(format!("message size {size} is too large")));
    }
    let duration =
        args.duration.map_or(Duration::from_millis(if args.full { 2000 } else { 500 }), |seconds| seconds.duration);
    let count = args.count.unwrap_or(if args.full { 50_000 } else { 10_000 });
    let rounds = args.rounds.unwrap_or(if args.full { 5 } else { 3 }) as usize;
    let (placement, unpinned) = cpus::choose(args.pin.as_deref(), args.no_pin)?;
    let cpus = placement.map(|placement| (placement.mine, placement.theirs));
    // The broadcast ring is measured by the fan-out rows only (it is no point-to-point
    // transport): by default, or when `--transports` names it.
    let fanout = args.transports.as_ref().map_or(true, |list| list.iter().any(|item| is_broadcast(item)));
    let others: Option<Vec<String>> =
        args.transports.as_ref().map(|list| list.iter().filter(|item| !is_broadcast(item)).cloned().collect());
    let subjects = match (&others, args.full) {
        // The quick default fits about two minutes: the rings and two kernel transports.
        (None, false) => subjects_waiting(Some(&QUICK_TRANSPORTS.map(String::from)), &QUICK_WAITS)?,
        (list, _) => subjects(list.as_deref())?,
    };
    // Built before this process is pinned: cargo's compilers inherit its CPUs.
    let mut peer_runs = args.peers.then(|| peers::Peers::build(duration, count, cpus, fanout)).transpose()?;
    if let Some(placement) = placement {
        cpus::apply(placement)?;
    }
    // SIGINT/SIGTERM stop the run between two measurements; the guards of the one running then
    // remove its rings, FIFOs and sockets and stop its helper process.
    super::signals::install()?;

    let per_size: usize = subjects
        .iter()
        .map(|subject| {
            2 + usize::from(has_zero_copy(*subject))
                + usize::from(has_batch(*subject))
                + usize::from(has_wake(*subject))
        })
        .sum();
    let shape_rows: usize = sizes.iter().map(|size| shapes::at(&subjects, &sizes, *size, args.full).len()).sum();
    let load_steps = subjects
        .iter()
        .flat_map(|subject| sizes.iter().filter(|size| load::applies(*subject, **size, &sizes, args.full)))
        .count();
    // The bare system-call loops of the kernel transports measured (pipe and fifo share one).
    let mut mechanisms: Vec<&'static str> =
        subjects.iter().filter_map(|subject| bare_loop::mechanism(subject.kind)).collect();
    mechanisms.dedup();
    mechanisms.sort_unstable();
    mechanisms.dedup();
    let mut skipped = Vec::new();
    let fanout_rows =
        if fanout { 2 * fanout::FANOUT.len() * sizes.iter().filter(|size| fanout::applies(**size)).count() } else { 0 };
    // The async rows (wake latency and throughput of an async SPSC receiver) beside the
    // blocking futex ring's, wherever those are measured and readiness is available here.
    let async_rows = subjects.contains(&asynchronous::SUBJECT)
        && match ipcring::readiness::available() {
            Ok(()) => true,
            Err(reason) => {
                skipped.push(format!("shm-spsc async: {reason}"));
                false
            }
        };
    let steps = rounds
        * (1 + sizes.len() * (1 + mechanisms.len())
            + (per_size + usize::from(args.peers)) * sizes.len()
            + shape_rows
            + fanout_rows
            + if async_rows { 2 * sizes.len() } else { 0 }
            + load_steps);
    let bar = progress(steps as u64);
    let mut notes: Vec<String> = unpinned.into_iter().collect();
    let countable = syscalls::available();
    if let Err(reason) = &countable {
        notes.push(format!("no system calls counted (sys/msg): {reason}"));
    }
    let disk = subjects.iter().any(|subject| subject.in_file).then(disk_directory).flatten();
    if let Some(directory) = &disk {
        notes.push(format!(
            "{SHM_SPSC_FILE}: the rings are files in {} (a disk file system, behind the page cache)",
            directory.display()
        ));
    }
    if subjects.iter().any(|subject| subject.in_file) && disk.is_none() {
        let tried: Vec<String> = disk_candidates().iter().map(|path| path.display().to_string()).collect();
        skipped
            .push(format!("{SHM_SPSC_FILE}: no writable directory on a disk file system (tried {})", tried.join(", ")));
    }
    for subject in &subjects {
        for &size in &sizes {
            if let Some(limit) = size_limit(subject.kind).filter(|limit| size > *limit) {
                let label = format!("{} {} {size} B", subject.transport_name(), subject.wait_name());
                skipped.push(format!("{label}: above this system's largest message ({limit} B)"));
            }
        }
    }
    skipped.extend(load::skipped(&subjects, &sizes, args.full));
    // Every row and every limit once per round. Within a round, size by size, the plain-ring
    // ceiling first: a row and its ceiling are measured seconds apart, not minutes (this host
    // changes speed within a run).
    let mut round_limits = Vec::new();
    let mut ceilings: Vec<Vec<plain_ring::PlainRing>> = vec![Vec::new(); sizes.len()];
    // Per size, per mechanism: the bare loop's rate in each round.
    let mut floors: Vec<Vec<Vec<f64>>> = vec![vec![Vec::new(); mechanisms.len()]; sizes.len()];
    let mut samples: Vec<Vec<Row>> = Vec::new();
    for round in 1..=rounds {
        super::signals::check()?;
        bar.set_message(format!("round {round}/{rounds}: physical limits"));
        round_limits.push(limits::measure(count, &sizes, cpus)?);
        bar.inc(1);
        let mut row = 0;
        for (size_index, &size) in sizes.iter().enumerate() {
            super::signals::check()?;
            bar.set_message(format!("round {round}/{rounds}: plain ring {size} B"));
            ceilings[size_index].push(plain_ring::measure(size, duration, count)?);
            bar.inc(1);
            for (index, mechanism) in mechanisms.iter().enumerate() {
                super::signals::check()?;
                bar.set_message(format!("round {round}/{rounds}: bare {mechanism} loop {size} B"));
                let peer_cpu = placement.map(|placement| placement.theirs);
                // Only where a transport of this mechanism takes the size (mq: up to its largest
                // message; none at 0 bytes, where a message is no different from the end of the
                // stream); 0 marks a size not measured.
                let applies = size > 0
                    && subjects.iter().any(|subject| {
                        bare_loop::mechanism(subject.kind) == Some(*mechanism)
                            && size_limit(subject.kind).map_or(true, |limit| size <= limit)
                    });
                let rate = if applies { bare_loop::measure(mechanism, size, duration, peer_cpu)? } else { 0.0 };
                floors[size_index][index].push(rate);
                bar.inc(1);
            }
            for subject in &subjects {
                let directory = match (subject.in_file, &disk) {
                    (false, _) => None,
                    (true, Some(directory)) => Some(directory.as_path()),
                    (true, None) => {
                        bar.inc(2 + u64::from(has_wake(*subject)));
                        continue;
                    }
                };
                let mut patterns = vec!["throughput"];
                patterns.extend(has_zero_copy(*subject).then_some("zero copy"));
                patterns.extend(has_batch(*subject).then_some("batch"));
                patterns.push("round trip");
                patterns.extend(has_wake(*subject).then_some("wake"));
                if size_limit(subject.kind).is_some_and(|limit| size > limit) {
                    bar.inc(patterns.len() as u64);
                    continue;
                }
                let label =
                    format!("round {round}/{rounds}: {} {} {size} B", subject.transport_name(), subject.wait_name());
                for pattern in &patterns {
                    super::signals::check()?;
                    bar.set_message(format!("{label}: {pattern}"));
                    let measured = match *pattern {
                        "throughput" => throughput_row(*subject, directory, size, duration, cpus)?,
                        "zero copy" => zero_copy_row(*subject, size, duration)?,
                        "wake" => wake_row(*subject, size, count)?,
                        "batch" => batch::row(*subject, size, batch::duration(duration, args.full))?,
                        _ => latency_row(*subject, directory, size, count)?,
                    };
                    if samples.len() <= row {
                        samples.push(Vec::new());
                    }
                    samples[row].push(measured);
                    row += 1;
                    bar.inc(1);
                    // The async receiver's twin of the blocking futex ring's throughput and wake
                    // rows, measured right after it in every round.
                    let twin = async_rows && *subject == asynchronous::SUBJECT;
                    if twin && matches!(*pattern, "throughput" | "wake") {
                        super::signals::check()?;
                        bar.set_message(format!("round {round}/{rounds}: shm-spsc async {size} B: {pattern}"));
                        let measured = match *pattern {
                            "throughput" => {
                                asynchronous::throughput_row(size, duration, cpus.map(|(_, theirs)| theirs))?
                            }
                            _ => asynchronous::wake_row(size, count)?,
                        };
                        // Against the twin just measured and this round's limits.
                        let blocking = samples[row - 1].last();
                        let measured = asynchronous::with_ratios(measured, blocking, round_limits.last());
                        if samples.len() <= row {
                            samples.push(Vec::new());
                        }
                        samples[row].push(measured);
                        row += 1;
                        bar.inc(1);
                    }
                }
                // Latency under load: one row per offered load, all from one closed-loop probe.
                if load::applies(*subject, size, &sizes, args.full) {
                    super::signals::check()?;
                    bar.set_message(format!("{label}: load"));
                    for measured in load::rows(*subject, size, duration)? {
                        if samples.len() <= row {
                            samples.push(Vec::new());
                        }
                        samples[row].push(measured);
                        row += 1;
                    }
                    bar.inc(1);
                }
            }
            for (subject, shape) in shapes::at(&subjects, &sizes, size, args.full) {
                super::signals::check()?;
                bar.set_message(format!(
                    "round {round}/{rounds}: {} {} {size} B: {shape}",
                    subject.transport_name(),
                    subject.wait_name()
                ));
                let measured = shapes::row(subject, shape, size, duration, placement)?;
                if samples.len() <= row {
                    samples.push(Vec::new());
                }
                samples[row].push(measured);
                row += 1;
                bar.inc(1);
            }
            if fanout && fanout::applies(size) {
                for subscribers in fanout::FANOUT {
                    for pattern in ["throughput", "round trip"] {
                        super::signals::check()?;
                        bar.set_message(format!(
                            "round {round}/{rounds}: shm-broadcast futex 1x{subscribers} {size} B: {pattern}"
                        ));
                        let measured = match pattern {
                            "throughput" => fanout::throughput(subscribers, size, duration, placement)?,
                            _ => fanout::latency(subscribers, size, count, placement)?,
                        };
                        if samples.len() <= row {
                            samples.push(Vec::new());
                        }
                        samples[row].push(measured);
                        row += 1;
                        bar.inc(1);
                    }
                }
            }
            if let Some(peers) = &mut peer_runs {
                super::signals::check()?;
                bar.set_message(format!("round {round}/{rounds}: peers {size} B"));
                peers.measure(round, size, size_index == 0, ceilings[size_index].last())?;
                bar.inc(1);
            }
        }
    }
    let counted = match countable {
        Ok(()) => {
            let pass = Pass { subjects: &subjects, sizes: &sizes, disk: disk.as_deref(), full: args.full, placement };
            counting_pass(&pass, duration, count, cpus, &bar)?
        }
        Err(_) => Vec::new(),
    };
    let plain: Vec<plain_ring::PlainRing> =
        ceilings.iter().filter_map(|rounds| rounds::combine_plain(rounds)).collect();
    let bare_loops = sizes
        .iter()
        .enumerate()
        .flat_map(|(size_index, &size)| {
            let floors = &floors;
            mechanisms.iter().enumerate().filter_map(move |(index, mechanism)| {
                let rates = &floors[size_index][index];
                rates.iter().any(|rate| *rate > 0.0).then(|| bare_loop::BareLoop {
                    mechanism,
                    msg_size: size,
                    msgs_per_sec: rounds::median(rates),
                    msgs_per_sec_min: rates.iter().copied().fold(f64::INFINITY, f64::min),
                    msgs_per_sec_max: rates.iter().copied().fold(0.0, f64::max),
                })
            })
        })
        .collect();
    let (limits, moved) = rounds::combine_limits(&round_limits, plain, bare_loops);
    notes.extend(moved);
    let mut results: Vec<Row> = samples
        .iter()
        .filter_map(|rounds_of_row| {
            let size = rounds_of_row.first()?.msg_size;
            let size_index = sizes.iter().position(|candidate| *candidate == size)?;
            let in_place = report::in_place(&rounds_of_row.first()?.api);
            let ceilings: Vec<f64> = ceilings[size_index]
                .iter()
                .map(|ring| if in_place { ring.in_place_msgs_per_sec } else { ring.msgs_per_sec })
                .collect();
            let mut row = rounds::combine(rounds_of_row, &ceilings)?;
            // The kernel transports' copying rows against the bare loop of their system calls,
            // round by round.
            let mechanism = subjects
                .iter()
                .find(|subject| subject.transport_name() == row.transport)
                .and_then(|subject| bare_loop::mechanism(subject.kind));
            if let (Some(mechanism), "throughput", "copy") = (mechanism, row.pattern.as_str(), row.api.as_str()) {
                let index = mechanisms.iter().position(|candidate| *candidate == mechanism)?;
                let ratios: Vec<f64> = rounds_of_row
                    .iter()
                    .zip(&floors[size_index][index])
                    .filter_map(|(sample, floor)| sample.msgs_per_sec.filter(|_| *floor > 0.0).map(|rate| rate / floor))
                    .collect();
                row.x_bare_loop = (!ratios.is_empty()).then(|| rounds::median(&ratios));
            }
            Some(row)
        })
        .collect();
    for row in &mut results {
        row.syscalls_per_msg = counted.iter().find(|one| same_row(one, row)).and_then(|one| one.syscalls_per_msg);
    }
    // The lost-wakeup detector of every ring row (see `ring_counters`): it must read 0.
    for row in results.iter().filter(|row| row.late_wakes.is_some_and(|late| late > 0)) {
        notes.push(format!(
            "LOST WAKEUPS: {} {} {} B {}: {} sleeps timed out with their condition met",
            row.transport,
            row.wait,
            row.msg_size,
            row.pattern,
            row.late_wakes.unwrap_or(0)
        ));
    }
    // The datagram transports' losses (see `stream`): they must read 0 on one host.
    for row in results.iter().filter(|row| row.lost.is_some_and(|lost| lost > 0)) {
        notes.push(format!(
            "LOST MESSAGES: {} {} {} B {}: {} messages sent and never received (the rate counts the {} delivered)",
            row.transport,
            row.wait,
            row.msg_size,
            row.pattern,
            row.lost.unwrap_or(0),
            row.messages
        ));
    }
    notes.extend(shapes::note(&results, placement));
    notes.extend(fanout::note(&results));
    notes.extend(asynchronous::note(&results));
    if let Some(peers) = peer_runs {
        let (rows, failed) = peers.finish();
        results.extend(rows);
        skipped.extend(failed);
    }
    bar.finish_and_clear();

    let report = Report {
        schema_version: 2,
        git_sha: env!("IPCRING_GIT_SHA"),
        rustc: env!("IPCRING_RUSTC"),
        args: std::env::args().collect(),
        rounds: rounds as u32,
        pinned_cpus: placement.map(|placement| [placement.mine, placement.theirs]),
        clock_read_ns: report::clock_read_ns(),
        machine: Machine::read(),
        pinned: placement,
        limits,
        results,
        skipped,
        notes,
    };
    super::print(&report::text(&report))?;
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report)
            .map_err(|error| CliError::Usage(format!("encoding JSON: {error}")))?;
        write_file(path, &(json + "\n"))?;
    }
    if let Some(path) = &args.markdown {
        write_file(path, &report::markdown(&report))?;
    }
    if let Some(path) = &args.plot {
        plot::write(path, &report.results)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_in_a_file_comes_right_after_the_rings_in_dev_shm_with_the_default_wait() {
        let all = subjects(None).unwrap();
        let at = all.iter().position(|subject| subject.in_file).unwrap();
        assert_eq!(all[at], Subject { kind: Kind::ShmSpsc, wait: Some(WaitStrategy::Futex), in_file: true });
        assert_eq!(all[at - 1].transport_name(), "shm-spsc");
        assert_eq!(all[at + 1].transport_name(), "shm-mpmc");
        assert_eq!(all.iter().filter(|subject| subject.in_file).count(), 1);
    }

    #[test]
    fn the_mutex_strategy_is_measured_by_full_and_by_name_not_by_the_quick_suite() {
        let waits = |subjects: Vec<Subject>| -> Vec<&'static str> {
            subjects
                .into_iter()
                .filter(|subject| subject.transport_name() == "shm-spsc")
                .map(Subject::wait_name)
                .collect()
        };
        assert_eq!(waits(subjects(None).unwrap()), ["spin", "futex", "membarrier", "semaphore", "mutex"]);
        let quick = subjects_waiting(Some(&QUICK_TRANSPORTS.map(String::from)), &QUICK_WAITS).unwrap();
        assert_eq!(waits(quick), ["spin", "futex", "membarrier", "semaphore"]);
        assert_eq!(waits(subjects(Some(&["shm-spsc:mutex".to_string()])).unwrap()), ["mutex"]);
    }

    #[test]
    fn shm_spsc_file_is_picked_by_name_with_any_wait_strategy() {
        let list = ["shm-spsc-file:spin".to_string(), "shm-spsc-file".to_string(), "pipe".to_string()];
        let picked: Vec<(&str, &str)> = subjects(Some(&list))
            .unwrap()
            .iter()
            .map(|subject| (subject.transport_name(), subject.wait_name()))
            .collect();
        assert_eq!(picked, [("shm-spsc-file", "spin"), ("shm-spsc-file", "futex"), ("pipe", "block")]);
        let unknown = subjects(Some(&["shm-spsc-disk".to_string()])).unwrap_err().to_string();
        assert!(unknown.contains("or shm-spsc-file"), "{unknown}");
    }

    #[test]
    fn the_directory_for_rings_in_files_is_never_in_memory() {
        use nix::sys::statfs::{statfs, TMPFS_MAGIC};
        match disk_directory() {
            Some(directory) => assert_ne!(statfs(&directory).unwrap().filesystem_type(), TMPFS_MAGIC),
            None => eprintln!("no disk file system among {:?}", disk_candidates()),
        }
    }
}
