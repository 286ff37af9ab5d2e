//! In-process MPMC streaming throughput: ipcring's MPMC ring (on a real `/dev/shm` segment)
//! against `crossbeam_queue::ArrayQueue` in the same run, with one producer and one consumer
//! (1P1C) and with two of each (2P2C), for 8 and 64-byte messages. The 1P1C groups also run
//! ipcring's SPSC ring, so the cost of MPMC over SPSC on the same work comes from the same run.
//!
//! Every variant does the same work per message: the producer writes the whole message once
//! (a fill), the consumer reads its first and last bytes. The ipcring paths copy on each side
//! (`try_send` from a buffer, `try_recv` into a reused buffer); `ArrayQueue` moves `[u8; N]`
//! values in and out. Every ring has 1024 slots. All sides use the non-blocking calls and spin on
//! full or empty, so the ring's wait strategy plays no part.
//!
//! One iteration is one message; each timed sample streams its messages on freshly spawned
//! threads, split evenly among the producers and among the consumers.
//!
//! After the criterion groups, an interleaved comparison prints the ratios the targets are stated
//! in (MPMC vs `ArrayQueue` throughput, SPSC vs MPMC), each the median over rounds that run every
//! contender back to back, so that the noise of a shared machine hits them alike.
//!
//! Run: `cargo bench --bench mpmc` (add `-- 64` to run one size, `-- 2p2c` one shape; the
//! interleaved table always runs). Figures: docs/performance.md.

use std::hint::black_box;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use crossbeam_queue::ArrayQueue;
use ipcring::__private::layout::{RingKind, WaitStrategy};
use ipcring::__private::segment::{CreateOptions, Segment};
use ipcring::mpmc::ShmRing;

const SLOT_COUNT: u64 = 1024;

fn unique_name() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!("/ipcring-bench-mpmc-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// An MPMC segment with `producers` senders and `consumers` receivers attached, kept for the
/// whole benchmark (each sample leaves it empty); unlinked on drop.
struct MpmcRing {
    name: String,
    senders: Vec<ipcring::mpmc::Sender<Arc<ShmRing>>>,
    receivers: Vec<ipcring::mpmc::Receiver<Arc<ShmRing>>>,
}

impl MpmcRing {
    fn new(size: usize, producers: usize, consumers: usize) -> MpmcRing {
        let name = unique_name();
        let options = CreateOptions {
            kind: RingKind::Mpmc,
            slot_count: SLOT_COUNT,
            slot_size: size as u32,
            wait: WaitStrategy::Spin,
            ..CreateOptions::default()
        };
        let first = ipcring::Builder::new(&name)
            .with_options(&options, &ipcring::__private::segment::OpenOptions::default())
            .create::<ipcring::mpmc::Sender>()
            .unwrap();
        let mut senders = (1..producers).map(|_| first.try_clone().unwrap()).collect::<Vec<_>>();
        senders.insert(0, first);
        let receiver = ipcring::Builder::new(&name).open::<ipcring::mpmc::Receiver>().unwrap();
        let mut receivers = (1..consumers).map(|_| receiver.try_clone().unwrap()).collect::<Vec<_>>();
        receivers.insert(0, receiver);
        MpmcRing { name, senders, receivers }
    }
}

impl Drop for MpmcRing {
    fn drop(&mut self) {
        let _ = Segment::unlink(&self.name);
    }
}

/// An SPSC segment with its sender and receiver; unlinked on drop.
struct SpscRing {
    name: String,
    sender: ipcring::spsc::Sender<ipcring::spsc::ShmMemory>,
    receiver: ipcring::spsc::Receiver<ipcring::spsc::ShmMemory>,
}

impl SpscRing {
    fn new(size: usize) -> SpscRing {
        let name = unique_name();
        let options = CreateOptions {
            kind: RingKind::Spsc,
            slot_count: SLOT_COUNT,
            slot_size: size as u32,
            wait: WaitStrategy::Spin,
            ..CreateOptions::default()
        };
        let sender = ipcring::Builder::new(&name)
            .with_options(&options, &ipcring::__private::segment::OpenOptions::default())
            .create::<ipcring::spsc::Sender>()
            .unwrap();
        let receiver = ipcring::Builder::new(&name).open::<ipcring::spsc::Receiver>().unwrap();
        SpscRing { name, sender, receiver }
    }
}

impl Drop for SpscRing {
    fn drop(&mut self) {
        let _ = Segment::unlink(&self.name);
    }
}

/// The share of `count` messages of thread `index` out of `threads`: the first `count % threads`
/// threads take one more, so the shares add up to `count`.
fn share(count: u64, threads: usize, index: usize) -> u64 {
    let threads = threads as u64;
    count / threads + u64::from((index as u64) < count % threads)
}

/// Runs every producer and consumer on its own thread, each given its share of `count`
/// messages; returns the time until all have finished.
fn stream<P, C>(count: u64, producers: Vec<P>, consumers: Vec<C>) -> Duration
where
    P: FnOnce(u64) + Send,
    C: FnOnce(u64) + Send,
{
    let producer_count = producers.len();
    let consumer_count = consumers.len();
    let started = Instant::now();
    std::thread::scope(|scope| {
        for (index, consume) in consumers.into_iter().enumerate() {
            let quota = share(count, consumer_count, index);
            scope.spawn(move || consume(quota));
        }
        for (index, produce) in producers.into_iter().enumerate() {
            let quota = share(count, producer_count, index);
            scope.spawn(move || produce(quota));
        }
    });
    started.elapsed()
}

fn ipcring_mpmc<const N: usize>(ring: &mut MpmcRing, count: u64) -> Duration {
    let producers = ring
        .senders
        .iter_mut()
        .map(|sender| {
            move |quota: u64| {
                let mut message = [0u8; N];
                for index in 0..quota {
                    message.fill(index as u8);
                    loop {
                        match sender.try_send(&message) {
                            Ok(()) => break,
                            Err(ipcring::SendError::Full) => std::hint::spin_loop(),
                            Err(error) => panic!("try_send: {error}"),
                        }
                    }
                }
            }
        })
        .collect();
    let consumers = ring
        .receivers
        .iter_mut()
        .map(|receiver| {
            move |quota: u64| {
                let mut buffer = Vec::with_capacity(N);
                for _ in 0..quota {
                    loop {
                        match receiver.try_recv(&mut buffer) {
                            Ok(()) => break,
                            Err(ipcring::RecvError::Empty) => std::hint::spin_loop(),
                            Err(error) => panic!("try_recv: {error}"),
                        }
                    }
                    black_box((buffer[0], buffer[buffer.len() - 1]));
                }
            }
        })
        .collect();
    stream(count, producers, consumers)
}

fn ipcring_spsc<const N: usize>(ring: &mut SpscRing, count: u64) -> Duration {
    let SpscRing { sender, receiver, .. } = ring;
    let producer = move |quota: u64| {
        let mut message = [0u8; N];
        for index in 0..quota {
            message.fill(index as u8);
            loop {
                match sender.try_send(&message) {
                    Ok(()) => break,
                    Err(ipcring::SendError::Full) => std::hint::spin_loop(),
                    Err(error) => panic!("try_send: {error}"),
                }
            }
        }
    };
    let consumer = move |quota: u64| {
        let mut buffer = Vec::with_capacity(N);
        for _ in 0..quota {
            loop {
                match receiver.try_recv(&mut buffer) {
                    Ok(()) => break,
                    Err(ipcring::RecvError::Empty) => std::hint::spin_loop(),
                    Err(error) => panic!("try_recv: {error}"),
                }
            }
            black_box((buffer[0], buffer[buffer.len() - 1]));
        }
    };
    stream(count, vec![producer], vec![consumer])
}

fn array_queue<const N: usize>(queue: &ArrayQueue<[u8; N]>, count: u64, threads: usize) -> Duration {
    let producer = |quota: u64| {
        for index in 0..quota {
            let mut message = [0u8; N];
            message.fill(index as u8);
            let mut pending = message;
            while let Err(back) = queue.push(pending) {
                pending = back;
                std::hint::spin_loop();
            }
        }
    };
    let consumer = |quota: u64| {
        for _ in 0..quota {
            let message = loop {
                match queue.pop() {
                    Some(message) => break message,
                    None => std::hint::spin_loop(),
                }
            };
            black_box((message[0], message[N - 1]));
        }
    };
    stream(count, vec![producer; threads], vec![consumer; threads])
}

/// One group per shape: `threads` producers and as many consumers.
fn bench_size<const N: usize>(criterion: &mut Criterion, threads: usize) {
    let mut group = criterion.benchmark_group(format!("mpmc_throughput_{threads}p{threads}c"));
    group.throughput(Throughput::Elements(1));
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    group.sample_size(20);
    let queue = ArrayQueue::<[u8; N]>::new(SLOT_COUNT as usize);
    group.bench_with_input(BenchmarkId::new("array-queue", N), &N, |bencher, _| {
        bencher.iter_custom(|count| array_queue::<N>(&queue, count, threads));
    });
    let mut ring = MpmcRing::new(N, threads, threads);
    group.bench_with_input(BenchmarkId::new("ipcring-mpmc", N), &N, |bencher, _| {
        bencher.iter_custom(|count| ipcring_mpmc::<N>(&mut ring, count));
    });
    if threads == 1 {
        let mut ring = SpscRing::new(N);
        group.bench_with_input(BenchmarkId::new("ipcring-spsc", N), &N, |bencher, _| {
            bencher.iter_custom(|count| ipcring_spsc::<N>(&mut ring, count));
        });
    }
    group.finish();
}

fn benches(criterion: &mut Criterion) {
    for threads in [1, 2] {
        bench_size::<8>(criterion, threads);
        bench_size::<64>(criterion, threads);
    }
}

/// Rounds of the interleaved comparison.
const RATIO_ROUNDS: usize = 21;
/// Messages per run of the interleaved comparison.
const RATIO_MESSAGES: u64 = 200_000;

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The targets' ratios, measured so that machine noise hits both sides alike: every round runs
/// `ArrayQueue`, the MPMC ring and (1P1C) the SPSC ring back to back, in an order that rotates
/// from round to round, and the ratio is taken per round; the table gives the medians.
fn shape_ratios<const N: usize>(threads: usize) {
    let queue = ArrayQueue::<[u8; N]>::new(SLOT_COUNT as usize);
    let mut mpmc = MpmcRing::new(N, threads, threads);
    let mut spsc = SpscRing::new(N);
    let per_message = |elapsed: Duration| elapsed.as_secs_f64() * 1e9 / RATIO_MESSAGES as f64;
    let (mut queue_ns, mut mpmc_ns, mut spsc_ns) = (Vec::new(), Vec::new(), Vec::new());
    let (mut mpmc_vs_queue, mut spsc_vs_mpmc) = (Vec::new(), Vec::new());
    for round in 0..RATIO_ROUNDS {
        let mut times = [0.0f64; 3];
        for turn in 0..3 {
            let which = (round + turn) % 3;
            times[which] = match which {
                0 => per_message(array_queue::<N>(&queue, RATIO_MESSAGES, threads)),
                1 => per_message(ipcring_mpmc::<N>(&mut mpmc, RATIO_MESSAGES)),
                _ if threads == 1 => per_message(ipcring_spsc::<N>(&mut spsc, RATIO_MESSAGES)),
                _ => f64::NAN,
            };
        }
        queue_ns.push(times[0]);
        mpmc_ns.push(times[1]);
        // Throughput ratio = inverse time ratio.
        mpmc_vs_queue.push(times[0] / times[1]);
        if threads == 1 {
            spsc_ns.push(times[2]);
            spsc_vs_mpmc.push(times[1] / times[2]);
        }
    }
    let spsc = if threads == 1 {
        format!("{:>8.1} {:>12.2}x", median(&mut spsc_ns), median(&mut spsc_vs_mpmc))
    } else {
        format!("{:>8} {:>13}", "-", "-")
    };
    println!(
        "{threads}p{threads}c {N:>4} B {:>9.1} {:>8.1} {:>11.2}x {spsc}",
        median(&mut queue_ns),
        median(&mut mpmc_ns),
        median(&mut mpmc_vs_queue),
    );
}

/// Prints the interleaved comparison (see [`shape_ratios`]); ignores criterion's filters.
fn ratios(_: &mut Criterion) {
    println!("\nInterleaved comparison: median of {RATIO_ROUNDS} rounds of {RATIO_MESSAGES} messages (ns per message)");
    println!("shape  size  ArrayQueue     MPMC  MPMC/AQ thr     SPSC  SPSC/MPMC thr");
    for threads in [1, 2] {
        shape_ratios::<8>(threads);
        shape_ratios::<64>(threads);
    }
}

criterion_group!(mpmc, benches);
criterion_group!(interleaved, ratios);
criterion_main!(mpmc, interleaved);
