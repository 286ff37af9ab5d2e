//! ipc-channel between two processes, blocking receives (`wait: block`, `api: copy`).
//!
//! Byte channels (`IpcBytesSender`/`IpcBytesReceiver`: no serialisation, the fastest form of
//! ipc-channel), bootstrapped through an `IpcOneShotServer`: the helper connects to it and sends
//! the ends this process needs. Every message carries the work of every `ipcring bench` row
//! ([`Work`]): the sender writes every byte (sequence number and pattern) and sends it (a copy
//! into the socket), the receiver reads every byte and checks the sequence number and checksum.
//!
//! - Latency (`peer ipc-channel-echo`): this process sends a message and blocks on the answer;
//!   the helper checks each message and sends it back. Four copies per round trip (into the
//!   socket and out of it, each way), as ipcring's round trips. One round trip is timed per
//!   message.
//! - Throughput (`peer ipc-channel-stream`): the helper sends as fast as it can (the socket
//!   blocks it when full); this process counts what arrives during `--duration`, then drains to
//!   the end of the channel and checks the total against the helper's count.
//!
//! Each received message is a new `Vec<u8>`, an allocation per receive: that is ipc-channel's
//! receive API (there is no receive into a buffer). A blocking receive cannot hang: the watchdog
//! kills the helper at the measurement's limit, which closes the channel.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use ipc_channel::ipc::{self, IpcBytesReceiver, IpcBytesSender, IpcOneShotServer, IpcSender};
use ipc_channel::IpcError;

use crate::cpu::CpuClock;
use crate::measure::{Api, Settings};
use crate::process::{Control, Peer, STARTUP_LIMIT};
use crate::report::{self, Row};
use crate::work::Work;
use crate::Res;

const TRANSPORT: &str = "ipc-channel";

/// What the helper sends through the one-shot server: the parent's sending end towards the
/// helper, and the parent's receiving end from the helper.
type Bootstrap = (IpcBytesSender, IpcBytesReceiver);

/// Starts the helper `role` with the one-shot server's name and accepts its connection,
/// within [`STARTUP_LIMIT`] and only while the helper runs.
fn start(role: &str, extra: &[String], limit: Duration) -> Res<(Peer, IpcBytesSender, IpcBytesReceiver)> {
    let (server, name) = IpcOneShotServer::<Bootstrap>::new()?;
    let mut arguments = vec![role.to_string(), "--server".to_string(), name.clone()];
    arguments.extend_from_slice(extra);
    let peer = Peer::spawn(&arguments, limit)?;

    // `accept` blocks without a timeout: it runs on a thread, and if the helper never connects
    // this process connects to the server itself so that the thread ends.
    let (accepted_tx, accepted) = mpsc::channel();
    let acceptor = std::thread::spawn(move || {
        let _ = accepted_tx.send(server.accept().map(|(_, ends)| ends));
    });
    let deadline = Instant::now() + STARTUP_LIMIT;
    let outcome = loop {
        match accepted.recv_timeout(Duration::from_millis(50)) {
            Ok(result) => break result.map_err(Into::into),
            Err(mpsc::RecvTimeoutError::Disconnected) => break Err("the one-shot server's thread failed".into()),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let failure = match peer.check_running() {
                    Err(e) => Some(e),
                    Ok(()) if Instant::now() >= deadline => {
                        Some(format!("no connection within {STARTUP_LIMIT:?}").into())
                    }
                    Ok(()) => None,
                };
                if let Some(failure) = failure {
                    let unblock = IpcSender::<Bootstrap>::connect(name.clone());
                    if let (Ok(unblock), Ok((tx, _)), Ok((_, rx))) =
                        (unblock, ipc::bytes_channel(), ipc::bytes_channel())
                    {
                        let _ = unblock.send((tx, rx));
                    }
                    break Err(failure);
                }
            }
        }
    };
    let _ = acceptor.join();
    let (to_peer, from_peer) = outcome?;
    Ok((peer, to_peer, from_peer))
}

/// The helper's side of [`start`]: connects to `server` and hands over the parent's ends;
/// returns the helper's own ends.
fn connect(server: &str) -> Res<(IpcBytesSender, IpcBytesReceiver)> {
    let bootstrap = IpcSender::<Bootstrap>::connect(server.to_string())?;
    let (to_helper, helper_rx) = ipc::bytes_channel()?;
    let (helper_tx, from_helper) = ipc::bytes_channel()?;
    bootstrap.send((to_helper, from_helper))?;
    Ok((helper_tx, helper_rx))
}

/// Round-trip latency of `size`-byte messages.
pub fn latency(settings: &Settings, size: usize) -> Res<Row> {
    let clock = CpuClock::start();
    let (peer, to_peer, from_peer) =
        start("ipc-channel-echo", &["--size".into(), size.to_string()], settings.latency_limit())?;
    let mut work = Work::new(size);
    let mut histogram = report::histogram();
    let warmup = settings.warmup();
    for round in 0..warmup + settings.count {
        let message = work.message(round);
        let start = Instant::now();
        to_peer.send(message)?;
        let answer = from_peer.recv().map_err(|e| format!("round trip {round}: {e}"))?;
        let elapsed = start.elapsed();
        work.check(round, &answer)?;
        if round >= warmup {
            report::record(&mut histogram, elapsed);
        }
    }
    // Closing our sending end ends the helper's loop.
    drop(to_peer);
    peer.finish()?;
    let row = Row::latency(TRANSPORT, "block", Api::Copy, size, &histogram);
    Ok(row.with_cpu(clock.per_message(warmup + settings.count)))
}

/// Helper of [`latency`]: checks every message and sends it back until the channel closes.
pub fn echo(server: &str, size: usize) -> Res<()> {
    let (tx, rx) = connect(server)?;
    let work = Work::new(size);
    for index in 0.. {
        match rx.recv() {
            Ok(message) => {
                work.check(index, &message)?;
                tx.send(&message)?;
            }
            Err(IpcError::Disconnected) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Messages per second of `size` bytes from a sending helper to this process.
pub fn throughput(settings: &Settings, size: usize) -> Res<Row> {
    let clock = CpuClock::start();
    let (mut peer, to_peer, from_peer) =
        start("ipc-channel-stream", &["--size".into(), size.to_string()], settings.throughput_limit())?;
    drop(to_peer);
    let work = Work::new(size);
    let mut received = 0_u64;
    let mut take = || -> Res<bool> {
        match from_peer.recv() {
            Ok(message) => {
                work.check(received, &message)?;
                received += 1;
                Ok(true)
            }
            Err(IpcError::Disconnected) => Ok(false),
            Err(e) => Err(e.into()),
        }
    };
    // The window opens with the first message (not counted).
    if !take()? {
        return Err("the helper closed the channel before sending".into());
    }
    let start = Instant::now();
    let mut counted = 0_u64;
    let elapsed = loop {
        if !take()? {
            return Err("the helper closed the channel early".into());
        }
        counted += 1;
        let elapsed = start.elapsed();
        if elapsed >= settings.duration {
            break elapsed;
        }
    };
    peer.stop()?;
    while take()? {}
    let sent: u64 = peer.expect_line("sent", STARTUP_LIMIT)?.parse()?;
    if sent != received {
        return Err(format!("{sent} messages sent but {received} received").into());
    }
    peer.finish()?;
    let row = Row::throughput(TRANSPORT, "block", Api::Copy, size, counted, elapsed);
    Ok(row.with_cpu(clock.per_message(received)))
}

/// Helper of [`throughput`]: sends `size`-byte messages ([`Work`]) until stopped, closes the
/// channel and says `sent N`.
pub fn stream(server: &str, size: usize) -> Res<()> {
    let control = Control::start();
    let (tx, _rx) = connect(server)?;
    let mut work = Work::new(size);
    let mut sent = 0_u64;
    while !control.stopped() {
        tx.send(work.message(sent))?;
        sent += 1;
    }
    drop(tx);
    control.say(&format!("sent {sent}"))
}
