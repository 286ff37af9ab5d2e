//! In-process SPSC streaming throughput: ipcring (copying and zero-copy, on a real `/dev/shm`
//! segment) against `rtrb` in the same run, for 8, 64, 1024 and 65536-byte messages.
//!
//! Every variant does the same work per message: the producer writes the whole message once
//! (a fill), the consumer reads its first and last bytes. The copying paths add a copy on each
//! side (`send` from a buffer, `recv_into` a buffer; rtrb moves `[u8; N]` values in and out),
//! the zero-copy path writes and reads in place.
//!
//! Run: `cargo bench --bench spsc` (add `-- 64` to run one size). Figures: docs/performance.md.

use std::hint::black_box;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ipcring::__private::layout::WaitStrategy;
use ipcring::__private::segment::{CreateOptions, Segment};
use ipcring::spsc::{Receiver, Sender};

struct Ring {
    name: String,
    sender: Sender<ipcring::spsc::ShmMemory>,
    receiver: Receiver<ipcring::spsc::ShmMemory>,
}

impl Ring {
    fn new(slot_count: u64, size: usize, wait: WaitStrategy) -> Ring {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!("/ipcring-bench-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
        let options = CreateOptions { slot_count, slot_size: size as u32, wait, ..CreateOptions::default() };
        let sender = ipcring::Builder::new(&name)
            .with_options(&options, &ipcring::__private::segment::OpenOptions::default())
            .create::<Sender>()
            .unwrap();
        let receiver = ipcring::Builder::new(&name).open::<Receiver>().unwrap();
        Ring { name, sender, receiver }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        let _ = Segment::unlink(&self.name);
    }
}

fn slots_for(size: usize) -> u64 {
    if size >= 65536 {
        64
    } else {
        1024
    }
}

/// Streams `count` messages through the ring on two threads; returns the elapsed time.
fn ipcring_copying<const N: usize>(ring: &mut Ring, count: u64) -> Duration {
    let Ring { sender, receiver, .. } = ring;
    let started = Instant::now();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut buffer = [0u8; N];
            for _ in 0..count {
                let length = receiver.recv_into(&mut buffer).unwrap();
                black_box((buffer[0], buffer[length - 1]));
            }
        });
        let mut message = [0u8; N];
        for index in 0..count {
            message.fill(index as u8);
            sender.send(&message).unwrap();
        }
    });
    started.elapsed()
}

fn ipcring_zero_copy<const N: usize>(ring: &mut Ring, count: u64) -> Duration {
    let Ring { sender, receiver, .. } = ring;
    let started = Instant::now();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for _ in 0..count {
                let message = receiver.recv_ref().unwrap();
                black_box((message[0], message[message.len() - 1]));
            }
        });
        for index in 0..count {
            let mut slot = sender.reserve().unwrap();
            slot.payload()[..N].fill(index as u8);
            slot.commit(N).unwrap();
        }
    });
    started.elapsed()
}

fn rtrb_values<const N: usize>(count: u64) -> Duration {
    let (mut producer, mut consumer) = rtrb::RingBuffer::<[u8; N]>::new(slots_for(N) as usize);
    let started = Instant::now();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            for _ in 0..count {
                let message = loop {
                    match consumer.pop() {
                        Ok(message) => break message,
                        Err(_) => std::hint::spin_loop(),
                    }
                };
                black_box((message[0], message[N - 1]));
            }
        });
        for index in 0..count {
            let mut message = [0u8; N];
            message.fill(index as u8);
            let mut pending = message;
            while let Err(rtrb::PushError::Full(back)) = producer.push(pending) {
                pending = back;
                std::hint::spin_loop();
            }
        }
    });
    started.elapsed()
}

fn bench_size<const N: usize>(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("spsc_throughput");
    group.throughput(Throughput::Elements(1));
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    group.sample_size(20);
    group.bench_with_input(BenchmarkId::new("rtrb", N), &N, |bencher, _| {
        bencher.iter_custom(rtrb_values::<N>);
    });
    for (label, wait) in [("ipcring-copy-spin", WaitStrategy::Spin), ("ipcring-copy-futex", WaitStrategy::Futex)] {
        let mut ring = Ring::new(slots_for(N), N, wait);
        group.bench_with_input(BenchmarkId::new(label, N), &N, |bencher, _| {
            bencher.iter_custom(|count| ipcring_copying::<N>(&mut ring, count));
        });
    }
    let mut ring = Ring::new(slots_for(N), N, WaitStrategy::Spin);
    group.bench_with_input(BenchmarkId::new("ipcring-zero-copy-spin", N), &N, |bencher, _| {
        bencher.iter_custom(|count| ipcring_zero_copy::<N>(&mut ring, count));
    });
    group.finish();
}

fn benches(criterion: &mut Criterion) {
    bench_size::<8>(criterion);
    bench_size::<64>(criterion);
    bench_size::<1024>(criterion);
    bench_size::<65536>(criterion);
}

criterion_group!(spsc, benches);
criterion_main!(spsc);
