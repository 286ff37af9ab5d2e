//! The Rust rows of the Python benchmark (`python/bench/bench.py`): zero-copy streaming between
//! two Rust processes doing the work the Python rows do. Message n is n as 8 little-endian
//! bytes, then payload `n % 4` of four made in advance (payload k's byte i is
//! `(k * 7 + i) & 0xff`); the producer writes every byte into the slot, the consumer compares
//! every byte in place.
//!
//! ```text
//! bench_peer consume NAME COUNT SIZE   # makes the SPSC ring, prints `ready`, then `elapsed_ns T`
//! bench_peer produce NAME COUNT SIZE   # attaches and sends
//! ```
//! `T` runs from the first message received and checked to the last (COUNT - 1 messages).

use std::time::Instant;

use ipcring::{spsc, Builder};

fn payloads(size: usize) -> Vec<Vec<u8>> {
    (0..4u64).map(|k| (0..size.saturating_sub(8)).map(|i| (k * 7 + i as u64) as u8).collect()).collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [role, name, count, size] = args.as_slice() else {
        eprintln!("usage: bench_peer produce|consume NAME COUNT SIZE");
        std::process::exit(2);
    };
    let (count, size): (u64, usize) = (count.parse()?, size.parse()?);
    let payloads = payloads(size);
    if role == "produce" {
        let mut sender: spsc::Sender = Builder::new(name).open()?;
        for n in 0..count {
            let mut slot = sender.reserve()?;
            let bytes = slot.payload();
            bytes[..8].copy_from_slice(&n.to_le_bytes());
            bytes[8..size].copy_from_slice(&payloads[(n % 4) as usize]);
            slot.commit(size)?;
        }
        return Ok(());
    }
    let mut receiver: spsc::Receiver = Builder::new(name).slots(64).slot_size(size as u32).create()?;
    println!("ready");
    let mut first = None;
    for n in 0..count {
        let message = receiver.recv_ref()?;
        if message.len() != size || message[..8] != n.to_le_bytes() || message[8..] != payloads[(n % 4) as usize][..] {
            eprintln!("message {n} is wrong");
            std::process::exit(1);
        }
        message.release()?;
        // From the first message done, as the Python rows count.
        first.get_or_insert_with(Instant::now);
    }
    println!("elapsed_ns {}", first.map_or(0, |first| first.elapsed().as_nanos()));
    ipcring::remove(name)?;
    Ok(())
}
