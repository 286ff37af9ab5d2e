//! Instructions per message on the SPSC hot path, for counting with callgrind: a deterministic
//! figure that the noise of a shared machine cannot move (unlike nanoseconds).
//!
//! One thread pushes 512 messages of 64 bytes, then pops them, 2000 times (no spinning, so every
//! instruction counted is path cost). Modes: `rtrb` (the baseline: moves `[u8; 64]` values),
//! `zero-copy` (reserve, fill in place, commit; read in place), `copy` (`send` from a buffer,
//! `recv_into` a buffer), `zero-copy-futex` (as zero-copy on a futex ring: adds the wakeup check),
//! `zero-copy-membarrier` (the same check without the fence: the membarrier strategy).
//! MPMC: `array-queue` (the baseline: `crossbeam_queue::ArrayQueue` moving `[u8; 64]` values),
//! `mpmc-ring` (the bare ring: `try_push`, `try_peek`), `mpmc-endpoints` (`Sender::try_send`,
//! `Receiver::try_recv` into a reused `Vec`).
//!
//! ```sh
//! cargo build --release --example instructions
//! for mode in rtrb zero-copy copy zero-copy-futex zero-copy-membarrier array-queue mpmc-ring mpmc-endpoints; do
//!   valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/instructions $mode 2>&1 | grep Collected
//! done   # divide by 1,024,000 messages
//! ```

use ipcring::__private::Internals as _;
use std::hint::black_box;

use ipcring::__private::layout::WaitStrategy;
use ipcring::__private::segment::{CreateOptions, Segment};
use ipcring::spsc::{Receiver, Sender};

const SIZE: usize = 64;
const BURST: u64 = 512;
const ROUNDS: u64 = 2000;

fn rtrb() {
    let (mut producer, mut consumer) = rtrb::RingBuffer::<[u8; SIZE]>::new(BURST as usize);
    for round in 0..ROUNDS {
        for index in 0..BURST {
            let mut message = [0u8; SIZE];
            message.fill((round ^ index) as u8);
            producer.push(message).unwrap();
        }
        for _ in 0..BURST {
            let message = consumer.pop().unwrap();
            black_box((message[0], message[SIZE - 1]));
        }
    }
}

fn ipcring(copying: bool, wait: WaitStrategy) {
    let name = format!("/ipcring-instructions-{}", std::process::id());
    let options = CreateOptions { slot_count: BURST, slot_size: SIZE as u32, wait, ..CreateOptions::default() };
    let mut sender = ipcring::Builder::new(&name)
        .with_options(&options, &ipcring::__private::segment::OpenOptions::default())
        .create::<Sender>()
        .unwrap();
    let mut receiver = ipcring::Builder::new(&name).open::<Receiver>().unwrap();
    Segment::unlink(&name).unwrap();
    let mut buffer = [0u8; SIZE];
    for round in 0..ROUNDS {
        for index in 0..BURST {
            if copying {
                let mut message = [0u8; SIZE];
                message.fill((round ^ index) as u8);
                sender.send(&message).unwrap();
            } else {
                let mut slot = sender.reserve().unwrap();
                slot.payload()[..SIZE].fill((round ^ index) as u8);
                slot.commit(SIZE).unwrap();
            }
        }
        for _ in 0..BURST {
            if copying {
                let length = receiver.recv_into(&mut buffer).unwrap();
                black_box((buffer[0], buffer[length - 1]));
            } else {
                let message = receiver.recv_ref().unwrap();
                black_box((message[0], message[message.len() - 1]));
            }
        }
    }
}

/// The MPMC baseline: `crossbeam_queue::ArrayQueue` moving `[u8; 64]` values.
fn array_queue() {
    let queue = crossbeam_queue::ArrayQueue::<[u8; SIZE]>::new(BURST as usize);
    for round in 0..ROUNDS {
        for index in 0..BURST {
            let mut message = [0u8; SIZE];
            message.fill((round ^ index) as u8);
            queue.push(message).unwrap();
        }
        for _ in 0..BURST {
            let message = queue.pop().unwrap();
            black_box((message[0], message[SIZE - 1]));
        }
    }
}

/// ipcring's MPMC ring: through the blocking endpoints (`endpoints`: `try_send` from a buffer,
/// `try_recv` into a reused `Vec`) or on the bare ring (`try_push`, `try_peek`).
fn mpmc(endpoints: bool) {
    use ipcring::__private::layout::RingKind;
    let name = format!("/ipcring-instructions-{}", std::process::id());
    let options = CreateOptions {
        kind: RingKind::Mpmc,
        slot_count: BURST,
        slot_size: SIZE as u32,
        wait: WaitStrategy::Spin,
        ..CreateOptions::default()
    };
    let mut sender = ipcring::Builder::new(&name)
        .with_options(&options, &ipcring::__private::segment::OpenOptions::default())
        .create::<ipcring::mpmc::Sender>()
        .unwrap();
    let mut receiver = ipcring::Builder::new(&name).open::<ipcring::mpmc::Receiver>().unwrap();
    Segment::unlink(&name).unwrap();
    let backend = sender.internal_backend().clone();
    let mut producer = ipcring::__private::ring::mpmc::Producer::attach(backend.clone()).unwrap();
    let mut consumer = ipcring::__private::ring::mpmc::Consumer::attach(backend).unwrap();
    let mut buffer = Vec::with_capacity(SIZE);
    for round in 0..ROUNDS {
        for index in 0..BURST {
            let mut message = [0u8; SIZE];
            message.fill((round ^ index) as u8);
            if endpoints {
                sender.try_send(&message).unwrap();
            } else {
                assert!(producer.try_push(&message).unwrap());
            }
        }
        for _ in 0..BURST {
            if endpoints {
                receiver.try_recv(&mut buffer).unwrap();
                black_box((buffer[0], buffer[SIZE - 1]));
            } else {
                let message = consumer.try_peek().unwrap().unwrap();
                black_box((message[0], message[SIZE - 1]));
            }
        }
    }
}

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("rtrb") => rtrb(),
        Some("zero-copy") => ipcring(false, WaitStrategy::Spin),
        Some("copy") => ipcring(true, WaitStrategy::Spin),
        Some("zero-copy-futex") => ipcring(false, WaitStrategy::Futex),
        Some("zero-copy-membarrier") => ipcring(false, WaitStrategy::Membarrier),
        Some("array-queue") => array_queue(),
        Some("mpmc-ring") => mpmc(false),
        Some("mpmc-endpoints") => mpmc(true),
        _ => {
            eprintln!("usage: instructions rtrb|zero-copy|copy|zero-copy-futex|zero-copy-membarrier|array-queue|mpmc-ring|mpmc-endpoints");
            std::process::exit(2);
        }
    }
}
