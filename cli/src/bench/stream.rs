//! Streaming throughput between two processes: this process binds the receiving end, a helper
//! (`ipcring bench-peer`) connects and sends messages of one size as fast as the transport takes
//! them for a fixed time, then closes. The rate is the messages received between the first one
//! and `Disconnected`, divided by that time. Every message carries the work of [`super::work`]:
//! the helper writes every byte (a sequence number and a pattern), this process reads every byte
//! and checks the sequence and the checksum.
//!
//! **Losses.** A datagram transport's receiver reports messages that never arrived
//! (`RecvError::Lost`, from its sequence numbers; on `udp` with another sender than ipcring's,
//! or a receive buffer overrun). They are counted apart ([`Throughput::lost`], the row's `lost`)
//! and are not in the rate, which counts the messages delivered: a loss neither inflates the
//! rate nor hides in it. ipcring's own UDP sender waits for the receiver's credit, so on loopback
//! the count is 0 unless something is wrong; a datagram dropped as a duplicate or as late
//! (`RecvError::OutOfOrder`, already counted lost when its gap was found) is not counted again.

use std::path::Path;
use std::time::{Duration, Instant};

use ipcring::__private::attach::BoxedReceiver;
use ipcring::transport::{Kind, Options, Side};
use ipcring::RecvError;

use super::super::args::BenchPeerArgs;
use super::super::bound;
use super::super::error::{CliError, CliResult};
use super::super::peer::Peer;
use super::pin;
use super::ring_counters::RingCounters;
use super::work::Work;

/// What one throughput measurement saw.
#[derive(Clone, Copy, Debug)]
pub struct Throughput {
    /// Messages received.
    pub messages: u64,
    /// Between the first message and the last.
    pub elapsed: Duration,
    /// Rings: their own counters over the row (how often the fast path was left for the
    /// kernel).
    pub ring: Option<RingCounters>,
    /// Datagram transports: messages sent and never received (gaps in the sequence numbers),
    /// not in `messages`.
    pub lost: u64,
}

impl Throughput {
    /// Messages per second.
    pub fn per_second(&self) -> f64 {
        self.messages.saturating_sub(1) as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Rings: futex and semaphore calls of both sides per message.
    pub fn wait_calls_per_message(&self) -> Option<f64> {
        self.ring.map(|ring| ring.wait_calls as f64 / self.messages.max(1) as f64)
    }
}

/// How long the helper may take to start sending.
pub const STARTUP_LIMIT: Duration = Duration::from_secs(30);

/// Streams messages of `size` bytes from a helper process for `duration`; a ring is a file in
/// `directory` when given, else in /dev/shm.
pub fn measure(
    kind: Kind,
    directory: Option<&Path>,
    options: &Options,
    size: usize,
    duration: Duration,
    peer_cpu: Option<usize>,
) -> CliResult<Throughput> {
    let bound::BoundReceiver { mut receiver, address, inherited } =
        bound::receiver(kind, "stream", directory, options)?;
    let mut arguments = peer_arguments(kind, &address, options, size, duration);
    if let Some(cpu) = peer_cpu {
        arguments.extend(["--pin".to_string(), cpu.to_string()]);
    }
    let mut peer = Peer::spawn(&arguments)?;
    drop(inherited);

    let mut buffer = Vec::with_capacity(size);
    let work = Work::new(size);
    await_first(&mut receiver, &mut buffer, &mut peer)?;
    let first = Instant::now();
    super::syscalls::resume();
    work.check(0, &buffer).map_err(CliError::Peer)?;
    // The helper sends for `duration`; allow it generous slack before calling it stuck.
    let Received { messages, lost } =
        receive_rest(&mut receiver, &mut buffer, &work, duration * 4 + Duration::from_secs(10))?;
    // End of stream comes right after the last message (the helper closes as it finishes).
    let elapsed = first.elapsed();
    super::syscalls::pause();
    peer.finish(super::super::pingpong::EXIT_LIMIT)?;
    // The ring still has its name (this process bound it and removes it when `receiver` drops).
    let ring = RingCounters::read(kind, &address);
    drop(receiver);
    Ok(Throughput { messages, elapsed, ring, lost })
}

/// What [`receive_rest`] counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Received {
    /// Messages delivered, the first one (received before) included.
    messages: u64,
    /// Messages the receiver's sequence numbers show were never received.
    lost: u64,
}

/// Receives and checks the stream after its first message (number 0, received already) until
/// `Disconnected`; stuck if nothing comes for `limit`. A gap reported by a datagram transport
/// counts its messages lost and moves the expected number past them; a message dropped as out
/// of order (a duplicate, or one already counted lost) counts as nothing.
fn receive_rest(
    receiver: &mut BoxedReceiver,
    buffer: &mut Vec<u8>,
    work: &Work,
    limit: Duration,
) -> CliResult<Received> {
    let mut counted = Received { messages: 1, lost: 0 };
    // Delivered and lost: the number of the next message.
    let mut next = 1u64;
    loop {
        // try_recv first: a timed receive reads the clock, which costs as much as a message.
        let received = match receiver.try_recv(buffer) {
            Err(RecvError::Empty) => receiver.recv_timeout(buffer, limit),
            other => other,
        };
        match received {
            Ok(()) => {
                work.check(next, buffer).map_err(CliError::Peer)?;
                counted.messages += 1;
                next += 1;
            }
            Err(RecvError::Lost { count }) => {
                counted.lost += count;
                next += count;
            }
            Err(RecvError::OutOfOrder { .. }) => {}
            Err(RecvError::Disconnected) => return Ok(counted),
            Err(RecvError::Timeout) => return Err(CliError::Peer("the sending process stalled".to_string())),
            Err(error) => return Err(error.into()),
        }
    }
}

/// The command line of a streaming helper (`ipcring bench-peer`) sending `size`-byte messages for
/// `duration` to the channel of `kind` bound at `address` with `options`.
pub fn peer_arguments(kind: Kind, address: &str, options: &Options, size: usize, duration: Duration) -> Vec<String> {
    // The sender's side sizes its queue too (seqpacket: its send buffer), as deep as ours.
    let values = [
        kind.name().to_string(),
        address.to_string(),
        size.to_string(),
        duration.as_secs_f64().to_string(),
        options.depth.to_string(),
    ];
    let names = ["--transport", "--address", "--size", "--duration", "--depth"];
    std::iter::once("bench-peer".to_string())
        .chain(names.iter().zip(values).flat_map(|(name, value)| [name.to_string(), value]))
        .collect()
}

/// Waits in slices for the helper's first message, into `buffer`; fails if the helper exits or
/// never starts sending.
pub fn await_first(receiver: &mut BoxedReceiver, buffer: &mut Vec<u8>, peer: &mut Peer) -> CliResult {
    let started = Instant::now();
    loop {
        match receiver.recv_timeout(buffer, Duration::from_millis(50)) {
            Ok(()) => return Ok(()),
            Err(RecvError::Timeout) if started.elapsed() < STARTUP_LIMIT => peer.check_running()?,
            Err(RecvError::Timeout) => return Err(CliError::Peer("the sending process never started".to_string())),
            Err(error) => return Err(error.into()),
        }
    }
}

/// The sending helper: connect, send for `--duration`, close (`--zero-copy` and `--stamped`:
/// the helpers of the zero-copy and load rows).
pub fn run_peer(args: &BenchPeerArgs) -> CliResult {
    pin(args.pin)?;
    if args.zero_copy {
        return super::zero_copy::run_peer(args);
    }
    if let Some(length) = args.batch {
        return super::batch::run_peer(args, length as usize);
    }
    if args.stamped {
        return super::load::run_peer(args);
    }
    let options = Options { max_message_size: args.size, depth: args.depth, ..Options::default() };
    let mut sender = ipcring::transport::open_sender(args.transport, &args.address, Side::Connect, &options)?;
    let mut work = Work::new(args.size);
    let mut sequence = 0u64;
    let started = Instant::now();
    while started.elapsed() < args.duration.duration {
        // Look at the clock once per 256 messages: it is not free.
        for _ in 0..256 {
            sender.send(work.message(sequence))?;
            sequence += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;

    use ipcring::transport::udp;

    use super::*;

    /// What the receiver's side of a UDP throughput row counts when datagrams are lost: a raw
    /// socket plays a sender that ignores credit and whose datagrams 3, 4 and 7 never arrive,
    /// and whose datagram 5 comes twice.
    #[test]
    fn lost_udp_messages_are_counted_apart_and_not_as_delivered() {
        let receiver = udp::bind_receiver("127.0.0.1:0", 64, 16).unwrap();
        let raw = UdpSocket::bind("127.0.0.1:0").unwrap();
        raw.connect(udp::local_address(&receiver).unwrap()).unwrap();
        let mut receiver: BoxedReceiver = Box::new(receiver);
        let mut work = Work::new(64);
        let datagram = |tag: u8, value: u64, payload: &[u8]| {
            let mut bytes = vec![tag];
            bytes.extend_from_slice(&value.to_le_bytes());
            bytes.extend_from_slice(payload);
            bytes
        };
        for sequence in [0u64, 1, 2, 5, 6, 5, 8] {
            raw.send(&datagram(0xd1, sequence, work.message(sequence))).unwrap();
        }
        // The bye: 9 sent.
        raw.send(&datagram(0xd4, 9, b"")).unwrap();
        let mut buffer = Vec::new();
        receiver.recv(&mut buffer).unwrap();
        work.check(0, &buffer).unwrap();
        let counted = receive_rest(&mut receiver, &mut buffer, &work, Duration::from_secs(10)).unwrap();
        // Of the 9 sent: 0, 1, 2, 5, 6 and 8 delivered (the second 5 dropped), 3, 4 and 7 lost.
        assert_eq!(counted, Received { messages: 6, lost: 3 });
    }
}
