//! TCP (default on loopback, `127.0.0.1`; any address may be given): a byte stream through the
//! kernel's TCP stack, framed as in `super::stream`, with `TCP_NODELAY` so a small message is
//! sent at once instead of waiting for Nagle's algorithm.
//!
//! The side that binds accepts its one peer on first use; the other connects, retrying until the
//! bound side listens or the timeout passes. Bind to port 0 for a free port and read it back with
//! [`local_address`].
//!
//! ```
//! use ipcring::channel::{Receiver, Sender};
//! use ipcring::transport::tcp;
//! use std::time::Duration;
//!
//! let mut receiver = tcp::bind_receiver("127.0.0.1:0", 4096).unwrap();
//! let address = tcp::local_address(&receiver).unwrap().to_string();
//! let mut sender = tcp::connect_sender(&address, 4096, Duration::from_secs(5)).unwrap();
//! sender.send(b"over loopback").unwrap();
//! let mut buffer = Vec::new();
//! receiver.recv(&mut buffer).unwrap();
//! assert_eq!(buffer, b"over loopback");
//! ```

use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use super::fd::set_nonblocking;
use super::socket::{connect_retrying, Listening, SocketLink};
use super::stream::{Connected, StreamReceiver, StreamSender};
use crate::error::{Error, Result};

/// The transport's name.
pub const NAME: crate::channel::Kind = crate::channel::Kind::Tcp;

/// The sending end of a TCP connection.
pub type TcpSender = StreamSender<SocketLink>;
/// The receiving end of a TCP connection.
pub type TcpReceiver = StreamReceiver<SocketLink>;

/// `host:port` as a socket address (the first it resolves to): TCP's and UDP's addresses.
pub(crate) fn resolve(address: &str) -> Result<SocketAddr> {
    let invalid = |reason: &str| Error::InvalidAddress { address: address.to_string(), reason: reason.to_string() };
    address
        .to_socket_addrs()
        .map_err(|_| invalid("not a host:port address"))?
        .next()
        .ok_or_else(|| invalid("resolves to no address"))
}

fn no_delay(fd: &OwnedFd) -> Result<()> {
    nix::sys::socket::setsockopt(fd, nix::sys::socket::sockopt::TcpNoDelay, &true)
        .map_err(|errno| Error::io("setsockopt(TCP_NODELAY)", errno))
}

fn bind(address: &str) -> Result<Listening> {
    let listener = TcpListener::bind(resolve(address)?).map_err(|error| match error.kind() {
        std::io::ErrorKind::AddrInUse => Error::AddressInUse { address: address.to_string() },
        _ => Error::io(format!("tcp {address}: bind"), error),
    })?;
    Listening::new(OwnedFd::from(listener), None, no_delay)
}

fn connect(address: &str, timeout: Duration) -> Result<Connected> {
    let target = resolve(address)?;
    let stream =
        connect_retrying(timeout, || TcpStream::connect_timeout(&target, timeout.max(Duration::from_millis(1))))?;
    let fd = OwnedFd::from(stream);
    no_delay(&fd)?;
    set_nonblocking(&fd)?;
    Ok(Connected::new(fd, true))
}

/// A receiver bound at `address` (`host:port`; port 0 picks a free one).
pub fn bind_receiver(address: &str, max_message_size: usize) -> Result<TcpReceiver> {
    Ok(StreamReceiver::new(SocketLink::Bound(bind(address)?), max_message_size, NAME))
}

/// A sender bound at `address` (`host:port`; port 0 picks a free one).
pub fn bind_sender(address: &str, max_message_size: usize) -> Result<TcpSender> {
    Ok(StreamSender::new(SocketLink::Bound(bind(address)?), max_message_size, NAME))
}

/// A sender connected to the receiver bound at `address`.
pub fn connect_sender(address: &str, max_message_size: usize, timeout: Duration) -> Result<TcpSender> {
    Ok(StreamSender::new(SocketLink::Connected(connect(address, timeout)?), max_message_size, NAME))
}

/// A receiver connected to the sender bound at `address`.
pub fn connect_receiver(address: &str, max_message_size: usize, timeout: Duration) -> Result<TcpReceiver> {
    Ok(StreamReceiver::new(SocketLink::Connected(connect(address, timeout)?), max_message_size, NAME))
}

/// The address a bound endpoint listens on (for port 0: the port the kernel chose), or the local
/// address of a connected one.
pub fn local_address(endpoint: &impl HasSocketLink) -> Result<SocketAddr> {
    let link = endpoint.socket_link();
    let fd = match link {
        SocketLink::Bound(listening) => listening.listener().or(listening.peer()),
        SocketLink::Connected(connected) => Some(connected.fd()),
    }
    .ok_or(Error::Disconnected)?;
    let address: nix::sys::socket::SockaddrStorage =
        nix::sys::socket::getsockname(std::os::fd::AsRawFd::as_raw_fd(&fd.as_fd()))
            .map_err(|errno| Error::io("getsockname", errno))?;
    if let Some(v4) = address.as_sockaddr_in() {
        return Ok(SocketAddr::from((v4.ip(), v4.port())));
    }
    if let Some(v6) = address.as_sockaddr_in6() {
        return Ok(SocketAddr::from((v6.ip(), v6.port())));
    }
    Err(Error::io("getsockname", std::io::Error::other("not an internet address")))
}

/// An endpoint of a socket transport.
pub trait HasSocketLink {
    /// Its link.
    fn socket_link(&self) -> &SocketLink;
}

impl HasSocketLink for StreamSender<SocketLink> {
    fn socket_link(&self) -> &SocketLink {
        self.link()
    }
}

impl HasSocketLink for StreamReceiver<SocketLink> {
    fn socket_link(&self) -> &SocketLink {
        self.link()
    }
}
