//! A Rust peer for the cross-language tests (the Python package's `python/tests`): it sends or
//! receives COUNT messages in the pattern every language's test peers use (message n: n as 8
//! little-endian bytes, then bytes `(n * 31 + i) & 0xff`), checking each one received.
//!
//! ```text
//! cargo run --release --example pattern_peer -- produce NAME spsc|mpmc|broadcast COUNT SIZE
//! cargo run --release --example pattern_peer -- consume NAME spsc|mpmc|broadcast COUNT
//! ```
//! It attaches to an existing ring, prints `attached`, then `sent N` or `received N` (fewer if
//! every producer left first) and exits 0; any wrong message exits 1.

use ipcring::broadcast::{Publisher, Subscriber};
use ipcring::channel::{Receiver, Sender};
use ipcring::{mpmc, spsc, Builder, RecvError};

fn message(n: u64, size: usize) -> Vec<u8> {
    let mut bytes = n.to_le_bytes().to_vec();
    bytes.extend((8..size.max(8)).map(|i| (n.wrapping_mul(31).wrapping_add(i as u64)) as u8));
    bytes
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [role, name, kind, count, rest @ ..] = args.as_slice() else {
        eprintln!("usage: pattern_peer produce|consume NAME spsc|mpmc|broadcast COUNT [SIZE]");
        std::process::exit(2);
    };
    let count: u64 = count.parse()?;
    let builder = Builder::new(name);
    if role == "produce" {
        let size: usize = rest.first().map_or(Ok(64), |size| size.parse())?;
        let mut sender: Box<dyn Sender> = match kind.as_str() {
            "spsc" => Box::new(builder.open::<spsc::Sender>()?),
            "mpmc" => Box::new(builder.open::<mpmc::Sender>()?),
            _ => Box::new(builder.open::<Publisher>()?),
        };
        println!("attached");
        for n in 0..count {
            sender.send(&message(n, size))?;
        }
        println!("sent {count}");
        return Ok(());
    }
    let mut receiver: Box<dyn Receiver> = match kind.as_str() {
        "spsc" => Box::new(builder.open::<spsc::Receiver>()?),
        "mpmc" => Box::new(builder.open::<mpmc::Receiver>()?),
        _ => Box::new(builder.open::<Subscriber>()?),
    };
    println!("attached");
    let mut buffer = Vec::new();
    let mut received = 0;
    while received < count {
        match receiver.recv(&mut buffer) {
            Ok(()) => {}
            Err(RecvError::Disconnected) => break,
            Err(error) => return Err(error.into()),
        }
        if buffer != message(received, buffer.len()) || buffer.len() < 8 {
            eprintln!("message {received} is wrong ({} bytes)", buffer.len());
            std::process::exit(1);
        }
        received += 1;
    }
    println!("received {received}");
    Ok(())
}
