//! crossbeam-channel between two threads of this process: the in-process reference
//! (`wait: block`: crossbeam's receive spins briefly, then parks the thread; `api: copy`). The
//! second thread runs on the other side's CPU when pinning ([`pin::pin_other_thread`], checked
//! with `sched_getcpu`).
//!
//! Every message carries the work of every `ipcring bench` row ([`Work`]), and moves as bytes,
//! not as a pointer: the sender copies the message (sequence number and pattern, every byte)
//! into a buffer it sends, the receiver copies it out into a buffer of its own and checks every
//! byte there. No buffer is allocated per message: the buffers are allocated before the
//! measurement and travel back.
//!
//! - Latency: two `bounded(1)` channels, `ping` and `pong`, and one buffer that goes back and
//!   forth: this thread copies the message into it and sends it; the echo thread copies it out,
//!   checks its copy, copies it back into the buffer and sends that back; this thread copies the
//!   answer out and checks it. Four copies per round trip, as ipcring's round trips. One round
//!   trip is timed per message.
//! - Throughput: a `bounded(queue_capacity)` channel of buffers and a return channel that
//!   recycles them (a pool of `queue_capacity + 2` buffers: a full queue, one at each end, so the
//!   pool never limits the queue). The producer thread takes a free buffer, copies the message
//!   into it and sends it, as fast as it can; this thread copies each message out, returns the
//!   buffer and checks its copy, counts what arrives during `--duration`, then drains to the end
//!   and checks the total against the producer's count. Recycling costs a second channel
//!   operation per message; it is how a channel of owned buffers runs without an allocator in
//!   the loop. (A channel of `[u8; N]` arrays would copy the bytes in and out by itself, but
//!   needs every size at compile time and moves megabyte arrays through thread stacks.)

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{bounded, RecvTimeoutError};

use crate::cpu::CpuClock;
use crate::measure::{copy_into, queue_capacity, Api, Settings};
use crate::pin;
use crate::process::MESSAGE_LIMIT;
use crate::report::{self, Row};
use crate::work::Work;
use crate::Res;

const TRANSPORT: &str = "crossbeam";

/// Round-trip latency of `size`-byte messages between two threads.
pub fn latency(settings: &Settings, size: usize) -> Res<Row> {
    let clock = CpuClock::start();
    let (ping_tx, ping_rx) = bounded::<Vec<u8>>(1);
    let (pong_tx, pong_rx) = bounded::<Vec<u8>>(1);
    // Ends when `ping_tx` is dropped (or `pong_rx`, on an error), or on a failed check.
    let echo = std::thread::spawn(move || -> Res<()> {
        pin::pin_other_thread()?;
        let work = Work::new(size);
        let mut copy = Vec::with_capacity(size);
        let mut index = 0;
        while let Ok(mut buffer) = ping_rx.recv() {
            copy_into(&mut copy, &buffer);
            work.check(index, &copy)?;
            copy_into(&mut buffer, &copy);
            if pong_tx.send(buffer).is_err() {
                break;
            }
            index += 1;
        }
        Ok(())
    });
    let mut histogram = report::histogram();
    let warmup = settings.warmup();
    let mut work = Work::new(size);
    let mut buffer = Vec::with_capacity(size);
    let mut reply = Vec::with_capacity(size);
    let result = (|| -> Res<()> {
        for round in 0..warmup + settings.count {
            let message = work.message(round);
            let start = Instant::now();
            copy_into(&mut buffer, message);
            ping_tx.send(buffer).map_err(|_| format!("round trip {round}: the echo thread is gone"))?;
            buffer = pong_rx.recv_timeout(MESSAGE_LIMIT).map_err(|e| format!("round trip {round}: {e}"))?;
            copy_into(&mut reply, &buffer);
            let elapsed = start.elapsed();
            work.check(round, &reply)?;
            if round >= warmup {
                report::record(&mut histogram, elapsed);
            }
        }
        Ok(())
    })();
    drop(ping_tx);
    drop(pong_rx);
    // The echo's own failure (a failed check or pin) explains ours: it comes first.
    echo.join().map_err(|_| "the echo thread panicked")??;
    result?;
    let row = Row::latency(TRANSPORT, "block", Api::Copy, size, &histogram);
    Ok(row.with_cpu(clock.per_message(warmup + settings.count)))
}

/// Messages per second of `size` bytes from a producer thread to this thread.
pub fn throughput(settings: &Settings, size: usize) -> Res<Row> {
    let clock = CpuClock::start();
    let capacity = queue_capacity(size);
    let (tx, rx) = bounded::<Vec<u8>>(capacity);
    let pool = capacity + 2;
    let (free_tx, free_rx) = bounded::<Vec<u8>>(pool);
    for _ in 0..pool {
        free_tx.send(Vec::with_capacity(size)).map_err(|_| "filling the buffer pool")?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let stop_producer = Arc::clone(&stop);
    // Ends when told to stop or when the receiver is gone; returns how many it sent.
    let producer = std::thread::spawn(move || -> Res<u64> {
        pin::pin_other_thread()?;
        let mut work = Work::new(size);
        let mut sent = 0_u64;
        while !stop_producer.load(Ordering::Relaxed) {
            let Ok(mut buffer) = free_rx.recv() else { break };
            copy_into(&mut buffer, work.message(sent));
            if tx.send(buffer).is_err() {
                break;
            }
            sent += 1;
        }
        Ok(sent)
    });
    let work = Work::new(size);
    let mut copy = Vec::with_capacity(size);
    let mut received = 0_u64;
    let mut take = || -> Res<bool> {
        match rx.recv_timeout(MESSAGE_LIMIT) {
            Ok(buffer) => {
                copy_into(&mut copy, &buffer);
                // Never blocks (the pool channel holds every buffer); fails only once the
                // producer has gone, when the buffer is no longer needed.
                let _ = free_tx.try_send(buffer);
                work.check(received, &copy)?;
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
    // Both ends the producer may wait on: it ends whatever it was waiting for.
    drop(rx);
    drop(free_tx);
    let sent = producer.join().map_err(|_| "the producer thread panicked")??;
    let (counted, elapsed) = result?;
    drained?;
    if sent != received {
        return Err(format!("{sent} messages sent but {received} received").into());
    }
    let row = Row::throughput(TRANSPORT, "block", Api::Copy, size, counted, elapsed);
    Ok(row.with_cpu(clock.per_message(received)))
}
