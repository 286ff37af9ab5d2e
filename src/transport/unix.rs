//! Unix stream sockets (`AF_UNIX`, `SOCK_STREAM`): a byte stream through the kernel, framed as in
//! `super::stream`. The address is a path (the socket file is created with mode 0600 and
//! removed once the peer connected) or `@name` for the abstract namespace (no file).
//!
//! The side that binds accepts its one peer on first use; the other connects, retrying until the
//! bound side exists or the timeout passes. Either side may be the sender.
//!
//! ```
//! use ipcring::channel::{Receiver, Sender};
//! use ipcring::transport::unix;
//! use std::time::Duration;
//!
//! let address = format!("@ipcring-doc-unix-{}", std::process::id());
//! let mut receiver = unix::bind_receiver(&address, 4096).unwrap();
//! let mut sender = unix::connect_sender(&address, 4096, Duration::from_secs(5)).unwrap();
//! sender.send(b"over a socket").unwrap();
//! let mut buffer = Vec::new();
//! receiver.recv(&mut buffer).unwrap();
//! assert_eq!(buffer, b"over a socket");
//! // SO_PEERCRED: the connected sender is this very process.
//! assert_eq!(receiver.peer_credentials().unwrap().pid, std::process::id());
//! ```

use std::os::fd::OwnedFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::Duration;

use super::fd::set_nonblocking;
use super::socket::{connect_retrying, Listening, SocketLink};
use super::stream::{Connected, StreamReceiver, StreamSender};
use crate::error::{Error, Result};

/// The transport's name.
pub const NAME: crate::channel::Kind = crate::channel::Kind::Unix;

/// The sending end of a Unix stream socket.
pub type UnixSender = StreamSender<SocketLink>;
/// The receiving end of a Unix stream socket.
pub type UnixReceiver = StreamReceiver<SocketLink>;

/// A socket address: `@name` (abstract namespace) or a path.
pub(crate) fn address(address: &str) -> Result<(SocketAddr, Option<PathBuf>)> {
    let invalid = |reason: &str| Error::InvalidAddress { address: address.to_string(), reason: reason.to_string() };
    if address.is_empty() {
        return Err(invalid("an empty socket address"));
    }
    match address.strip_prefix('@') {
        Some(name) => Ok((SocketAddr::from_abstract_name(name).map_err(|_| invalid("too long"))?, None)),
        None => Ok((SocketAddr::from_pathname(address).map_err(|_| invalid("too long"))?, Some(address.into()))),
    }
}

/// Binds and listens at `address`; the peer is accepted on first use.
fn bind(address_text: &str) -> Result<Listening> {
    let (address, path) = address(address_text)?;
    let listener = UnixListener::bind_addr(&address).map_err(|error| match error.kind() {
        std::io::ErrorKind::AddrInUse => Error::AddressInUse { address: address_text.to_string() },
        _ => Error::io(format!("unix socket {address_text}: bind"), error),
    })?;
    if let Some(path) = &path {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|error| Error::io(format!("unix socket {address_text}: chmod"), error))?;
    }
    Listening::new(OwnedFd::from(listener), path, |_| Ok(()))
}

/// Connects to the side bound at `address`, waiting up to `timeout` for it to bind.
fn connect(address_text: &str, timeout: Duration) -> Result<Connected> {
    let (address, _) = address(address_text)?;
    let stream = connect_retrying(timeout, || UnixStream::connect_addr(&address))?;
    set_nonblocking(&stream)?;
    Ok(Connected::new(OwnedFd::from(stream), true))
}

/// A receiver bound at `address` (it waits for its sender to connect).
pub fn bind_receiver(address: &str, max_message_size: usize) -> Result<UnixReceiver> {
    Ok(StreamReceiver::new(SocketLink::Bound(bind(address)?), max_message_size, NAME))
}

/// A sender bound at `address` (it waits for its receiver to connect).
pub fn bind_sender(address: &str, max_message_size: usize) -> Result<UnixSender> {
    Ok(StreamSender::new(SocketLink::Bound(bind(address)?), max_message_size, NAME))
}

/// A sender connected to the receiver bound at `address`.
pub fn connect_sender(address: &str, max_message_size: usize, timeout: Duration) -> Result<UnixSender> {
    Ok(StreamSender::new(SocketLink::Connected(connect(address, timeout)?), max_message_size, NAME))
}

/// A receiver connected to the sender bound at `address`.
pub fn connect_receiver(address: &str, max_message_size: usize, timeout: Duration) -> Result<UnixReceiver> {
    Ok(StreamReceiver::new(SocketLink::Connected(connect(address, timeout)?), max_message_size, NAME))
}

pub use crate::channel::Credentials;

pub use super::fd_passing::peer_credentials;
