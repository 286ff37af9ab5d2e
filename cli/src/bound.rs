//! One channel of any transport, bound by this process for a helper process that connects to it:
//! what `pingpong --transport` and `bench` share. An anonymous pipe has no address: it is created
//! here and its far end handed to the helper by inheritance (`fd:N`); drop `inherited` once the
//! helper is spawned, or the helper's end of file never comes.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use ipcring::__private::attach::{BoxedReceiver, BoxedSender};
use ipcring::transport::{self, pipe, tcp, udp, Kind, Options, Side};

use super::error::CliResult;

/// A bound sending end.
pub struct BoundSender {
    /// This process's end.
    pub sender: BoxedSender,
    /// What the helper connects to (`--address`).
    pub address: String,
    /// The pipe end the helper inherits.
    pub inherited: Option<OwnedFd>,
}

/// A bound receiving end.
pub struct BoundReceiver {
    /// This process's end.
    pub receiver: BoxedReceiver,
    /// What the helper connects to.
    pub address: String,
    /// The pipe end the helper inherits.
    pub inherited: Option<OwnedFd>,
}

/// An address for channel `which` of this process (TCP, UDP: any free loopback port); a ring is a
/// file in `directory` when given (a path, [`ipcring::is_path`]), else in /dev/shm.
fn address(kind: Kind, which: &str, directory: Option<&Path>) -> String {
    let unique = format!("ipcring-{}-{which}", std::process::id());
    match (kind, directory) {
        (Kind::ShmSpsc | Kind::ShmMpmc, Some(directory)) => directory.join(unique).display().to_string(),
        (Kind::Fifo, _) => std::env::temp_dir().join(unique).display().to_string(),
        (Kind::Unix | Kind::Seqpacket | Kind::UnixDgram, _) => format!("@{unique}"),
        (Kind::Tcp | Kind::Udp, _) => "127.0.0.1:0".to_string(),
        _ => unique,
    }
}

/// `options.depth` as a count.
fn depth(options: &Options) -> usize {
    usize::try_from(options.depth).unwrap_or(usize::MAX)
}

fn fd_address(fd: &OwnedFd) -> String {
    format!("fd:{}", fd.as_raw_fd())
}

/// Binds the sending end of a `kind` channel named after `which`.
pub fn sender(kind: Kind, which: &str, options: &Options) -> CliResult<BoundSender> {
    let max = options.max_message_size;
    Ok(match kind {
        Kind::Pipe => {
            let (pipe::Endpoint::Sender(sender), theirs) = pipe::child_end(max, true)? else {
                unreachable!("child_end gives the side asked for")
            };
            BoundSender { sender: Box::new(sender), address: fd_address(&theirs), inherited: Some(theirs) }
        }
        Kind::Tcp => {
            let sender = tcp::bind_sender(&address(kind, which, None), max)?;
            let address = tcp::local_address(&sender)?.to_string();
            BoundSender { sender: Box::new(sender), address, inherited: None }
        }
        Kind::Udp => {
            let sender = udp::bind_sender(&address(kind, which, None), max, depth(options))?;
            let address = udp::local_address(&sender)?.to_string();
            BoundSender { sender: Box::new(sender), address, inherited: None }
        }
        _ => {
            let address = address(kind, which, None);
            let sender = transport::open_sender(kind, &address, Side::Bind, options)?;
            BoundSender { sender, address, inherited: None }
        }
    })
}

/// Binds the receiving end of a `kind` channel named after `which`; a ring is a file in
/// `directory` when given.
pub fn receiver(kind: Kind, which: &str, directory: Option<&Path>, options: &Options) -> CliResult<BoundReceiver> {
    let max = options.max_message_size;
    Ok(match kind {
        Kind::Pipe => {
            let (pipe::Endpoint::Receiver(receiver), theirs) = pipe::child_end(max, false)? else {
                unreachable!("child_end gives the side asked for")
            };
            BoundReceiver { receiver: Box::new(receiver), address: fd_address(&theirs), inherited: Some(theirs) }
        }
        Kind::Tcp => {
            let receiver = tcp::bind_receiver(&address(kind, which, None), max)?;
            let address = tcp::local_address(&receiver)?.to_string();
            BoundReceiver { receiver: Box::new(receiver), address, inherited: None }
        }
        Kind::Udp => {
            let receiver = udp::bind_receiver(&address(kind, which, None), max, depth(options))?;
            let address = udp::local_address(&receiver)?.to_string();
            BoundReceiver { receiver: Box::new(receiver), address, inherited: None }
        }
        _ => {
            let address = address(kind, which, directory);
            let receiver = transport::open_receiver(kind, &address, Side::Bind, options)?;
            BoundReceiver { receiver, address, inherited: None }
        }
    })
}
