//! `ipcring pingpong --transport T`: the same round-trip measurement as over the rings, through
//! any transport of the registry, with copies through the channel traits (what `ipcring bench`
//! compares). This process binds both channels, `ping` (it sends) and `pong` (it receives); the
//! helper connects to both and echoes ([`super::bound`]).

use std::time::Instant;

use hdrhistogram::Histogram;
use ipcring::__private::attach::{BoxedReceiver, BoxedSender};
use ipcring::transport::{self, Kind, Options, Side};
use ipcring::{RecvError, SendError};

use super::args::{PingpongArgs, PingpongPeerArgs};
use super::bench::ring_counters::RingCounters;
use super::bench::work::Work;
use super::error::{CliError, CliResult};
use super::latency;
use super::peer::Peer;
use super::pingpong::{check_echoed, echo_error, EXIT_LIMIT, STARTUP_LIMIT, STARTUP_SLICE};

/// The options both sides use.
fn options(max_message_size: usize, args: Option<&PingpongArgs>) -> Options {
    let mut options = Options { max_message_size, ..Options::default() };
    if let Some(args) = args {
        options.depth = args.slots;
        options.wait = args.wait.into();
    }
    options
}

/// Times `args.count` round trips through `kind` and a helper process.
pub fn measure(args: &PingpongArgs, kind: Kind, warmup: u64) -> CliResult<(Histogram<u64>, Option<RingCounters>)> {
    let size = args.size as usize;
    let mut options = options(size.max(8), Some(args));
    if kind == Kind::Mq {
        // A queue holds at most the system's msg_max messages (10 by default); one is in flight.
        options.depth = options.depth.min(transport::mq::MqLimits::read()?.depth as u64);
    }
    if kind == Kind::SysvMq {
        // A System V queue holds at most msgmnb bytes (16 KiB by default).
        let bytes = transport::sysv_mq::SysvMqLimits::read()?.queue_bytes;
        options.depth = options.depth.min((bytes / options.max_message_size).max(1) as u64);
    }
    let super::bound::BoundSender { mut sender, address: ping, inherited: ping_end } =
        super::bound::sender(kind, "ping", &options)?;
    let super::bound::BoundReceiver { mut receiver, address: pong, inherited: pong_end } =
        super::bound::receiver(kind, "pong", None, &options)?;
    let inherited = (ping_end, pong_end);
    let max = options.max_message_size.to_string();
    let mut peer = Peer::spawn(&[
        "pingpong-peer",
        "--transport",
        kind.name(),
        "--max-size",
        max.as_str(),
        ping.as_str(),
        pong.as_str(),
    ])?;
    // The helper has its copies of the pipe ends now; ours must go, or its end of file never comes.
    drop(inherited);

    // The work of every row (`bench::work`).
    let mut work = Work::new(size);
    let mut reply = Vec::with_capacity(size);
    first_round_trip(&mut sender, &mut receiver, &mut peer, &mut work, &mut reply)?;
    for round in 1..warmup {
        round_trip(&mut sender, &mut receiver, &mut work, round, &mut reply)?;
    }
    let mut histogram = latency::histogram();
    super::bench::syscalls::resume();
    for round in warmup..warmup + args.count {
        let message = work.message(round);
        let start = Instant::now();
        sender.send(message).map_err(echo_error)?;
        receiver.recv(&mut reply).map_err(echo_error)?;
        let elapsed = start.elapsed();
        work.check(round, &reply).map_err(CliError::Peer)?;
        latency::record(&mut histogram, elapsed);
    }
    super::bench::syscalls::pause();
    let counters = RingCounters::read_all(kind, &[ping.as_str(), pong.as_str()]);
    // Closing `ping` is the helper's signal to stop: it sees Disconnected.
    drop(sender);
    peer.finish(EXIT_LIMIT)?;
    Ok((histogram, counters))
}

/// The first round trip waits for the helper to start and connect, in slices, failing if it
/// exits or takes too long.
fn first_round_trip(
    sender: &mut BoxedSender,
    receiver: &mut BoxedReceiver,
    peer: &mut Peer,
    work: &mut Work,
    reply: &mut Vec<u8>,
) -> CliResult {
    let message = work.message(0).to_vec();
    let started = Instant::now();
    let too_slow = || CliError::Peer(format!("no answer within {} s", STARTUP_LIMIT.as_secs()));
    loop {
        match sender.send_timeout(&message, STARTUP_SLICE) {
            Ok(()) => break,
            Err(SendError::Timeout) if started.elapsed() < STARTUP_LIMIT => peer.check_running()?,
            Err(SendError::Timeout) => return Err(too_slow()),
            Err(error) => return Err(echo_error(error)),
        }
    }
    loop {
        match receiver.recv_timeout(reply, STARTUP_SLICE) {
            Ok(()) => return work.check(0, reply).map_err(CliError::Peer),
            Err(RecvError::Timeout) if started.elapsed() < STARTUP_LIMIT => peer.check_running()?,
            Err(RecvError::Timeout) => return Err(too_slow()),
            Err(error) => return Err(echo_error(error)),
        }
    }
}

fn round_trip(
    sender: &mut BoxedSender,
    receiver: &mut BoxedReceiver,
    work: &mut Work,
    round: u64,
    reply: &mut Vec<u8>,
) -> CliResult {
    sender.send(work.message(round)).map_err(echo_error)?;
    receiver.recv(reply).map_err(echo_error)?;
    work.check(round, reply).map_err(CliError::Peer)
}

/// The echo side over a transport: connect to both channels, echo until `ping` closes.
pub fn run_peer(args: &PingpongPeerArgs, kind: Kind) -> CliResult {
    let options = options(args.max_size, None);
    let mut receiver = transport::open_receiver(kind, &args.ping, Side::Connect, &options)?;
    let mut sender = transport::open_sender(kind, &args.pong, Side::Connect, &options)?;
    let (mut message, mut work) = (Vec::with_capacity(args.max_size), None);
    for index in 0.. {
        match receiver.recv(&mut message) {
            Ok(()) => check_echoed(&mut work, index, &message)?,
            Err(RecvError::Disconnected) => return Ok(()),
            Err(error) => return Err(error.into()),
        }
        match sender.send(&message) {
            Ok(()) => {}
            Err(SendError::Disconnected) => return Ok(()),
            Err(error) => return Err(error.into()),
        }
    }
    Ok(())
}
