//! crossbeam-channel between two threads of this process: the in-process reference
//! (`wait: block`, crossbeam's receive spins briefly, then parks the thread).
//!
//! - Latency: two `bounded(1)` channels, `ping` and `pong`; an echo thread sends every message
//!   back. The message is one `Vec<u8>` moved back and forth (no copy, no allocation). One round
//!   trip is timed per message.
//! - Throughput: one `bounded(queue_capacity)` channel; a producer thread sends, as fast as it
//!   can, a fresh `Vec<u8>` copy of the message each time (an allocation and a copy, as a channel
//!   of owned buffers is used in practice); this thread counts what arrives during
//!   `--duration`, then drains to the end and checks the total against the producer's count.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{bounded, RecvTimeoutError};

use crate::measure::{check, queue_capacity, stamp, Settings};
use crate::process::MESSAGE_LIMIT;
use crate::report::{self, Row};
use crate::Res;

const TRANSPORT: &str = "crossbeam";

/// Round-trip latency of `size`-byte messages between two threads.
pub fn latency(settings: &Settings, size: usize) -> Res<Row> {
    let (ping_tx, ping_rx) = bounded::<Vec<u8>>(1);
    let (pong_tx, pong_rx) = bounded::<Vec<u8>>(1);
    // Ends when `ping_tx` is dropped (or `pong_rx`, on an error).
    let echo = std::thread::spawn(move || {
        while let Ok(message) = ping_rx.recv() {
            if pong_tx.send(message).is_err() {
                break;
            }
        }
    });
    let mut histogram = report::histogram();
    let warmup = settings.warmup();
    let mut message = vec![0xa5_u8; size];
    let result = (|| -> Res<()> {
        for round in 0..warmup + settings.count {
            stamp(&mut message, round);
            let start = Instant::now();
            ping_tx.send(message)?;
            message = pong_rx.recv_timeout(MESSAGE_LIMIT).map_err(|e| format!("round trip {round}: {e}"))?;
            let elapsed = start.elapsed();
            check(&message, size, round)?;
            if round >= warmup {
                report::record(&mut histogram, elapsed);
            }
        }
        Ok(())
    })();
    drop(ping_tx);
    drop(pong_rx);
    echo.join().map_err(|_| "the echo thread panicked")?;
    result?;
    Ok(Row::latency(TRANSPORT, "block", size, &histogram))
}

/// Messages per second of `size` bytes from a producer thread to this thread.
pub fn throughput(settings: &Settings, size: usize) -> Res<Row> {
    let (tx, rx) = bounded::<Vec<u8>>(queue_capacity(size));
    let stop = Arc::new(AtomicBool::new(false));
    let stop_producer = Arc::clone(&stop);
    // Ends when told to stop or when the receiver is gone; returns how many it sent.
    let producer = std::thread::spawn(move || {
        let mut message = vec![0x5a_u8; size];
        let mut sent = 0_u64;
        while !stop_producer.load(Ordering::Relaxed) {
            stamp(&mut message, sent);
            if tx.send(message.clone()).is_err() {
                break;
            }
            sent += 1;
        }
        sent
    });
    let mut received = 0_u64;
    let mut take = || -> Res<bool> {
        match rx.recv_timeout(MESSAGE_LIMIT) {
            Ok(message) => {
                check(&message, size, received)?;
                received += 1;
                Ok(true)
            }
            Err(RecvTimeoutError::Disconnected) => Ok(false),
            Err(RecvTimeoutError::Timeout) => Err(format!("no message within {MESSAGE_LIMIT:?}").into()),
        }
    };
    let result = (|| -> Res<(u64, std::time::Duration)> {
        // The window opens with the first message (not counted).
        if !take()? {
            return Err("the producer stopped before sending".into());
        }
        let start = Instant::now();
        let mut counted = 0_u64;
        loop {
            if !take()? {
                return Err("the producer stopped early".into());
            }
            counted += 1;
            let elapsed = start.elapsed();
            if elapsed >= settings.duration {
                return Ok((counted, elapsed));
            }
        }
    })();
    stop.store(true, Ordering::Relaxed);
    let drained = result.as_ref().map_or(Ok(()), |_| -> Res<()> {
        while take()? {}
        Ok(())
    });
    drop(rx);
    let sent = producer.join().map_err(|_| "the producer thread panicked")?;
    let (counted, elapsed) = result?;
    drained?;
    if sent != received {
        return Err(format!("{sent} messages sent but {received} received").into());
    }
    Ok(Row::throughput(TRANSPORT, "block", size, counted, elapsed))
}
