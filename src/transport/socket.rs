//! What the socket transports share: a bound side that accepts its one peer lazily (so a
//! receiver created before its sender waits for it like a ring does), and a connecting side that
//! retries until the bound side exists.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::time::Duration;

use super::fd::{set_nonblocking, wait, Deadline, Ready};
use super::stream::Link;
use crate::error::{Error, Result};

/// How often a connecting side retries while the bound side does not exist yet.
pub const CONNECT_RETRY: Duration = Duration::from_millis(1);

/// A listening socket that accepts one peer on first use, then talks only to it (the listener is
/// closed and its path removed once the peer is in, so nobody else can connect).
#[derive(Debug)]
pub struct Listening {
    listener: Option<OwnedFd>,
    peer: Option<OwnedFd>,
    /// A socket file to remove when the listener closes.
    path: Option<PathBuf>,
    /// Called on each accepted descriptor (`TCP_NODELAY`).
    configure: fn(&OwnedFd) -> Result<()>,
}

impl Listening {
    /// Wraps a bound, listening socket; `path` is removed when it closes.
    pub fn new(listener: OwnedFd, path: Option<PathBuf>, configure: fn(&OwnedFd) -> Result<()>) -> Result<Listening> {
        set_nonblocking(&listener)?;
        Ok(Listening { listener: Some(listener), peer: None, path, configure })
    }

    /// The listening descriptor (until the peer connected).
    pub fn listener(&self) -> Option<BorrowedFd<'_>> {
        self.listener.as_ref().map(|fd| fd.as_fd())
    }

    /// The connected peer, if it has been accepted.
    pub fn peer(&self) -> Option<BorrowedFd<'_>> {
        self.peer.as_ref().map(|fd| fd.as_fd())
    }

    /// Accepts the peer if it is there, waiting until `deadline`.
    pub fn accept(&mut self, deadline: Deadline) -> Result<bool> {
        if self.peer.is_some() {
            return Ok(true);
        }
        let Some(listener) = &self.listener else { return Err(Error::Disconnected) };
        loop {
            match nix::sys::socket::accept4(
                std::os::fd::AsRawFd::as_raw_fd(listener),
                nix::sys::socket::SockFlag::SOCK_NONBLOCK | nix::sys::socket::SockFlag::SOCK_CLOEXEC,
            ) {
                Ok(raw) => {
                    // SAFETY: accept4 returned a new descriptor that nothing else owns.
                    let peer = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) };
                    (self.configure)(&peer)?;
                    self.peer = Some(peer);
                    self.close_listener();
                    return Ok(true);
                }
                Err(nix::errno::Errno::EINTR | nix::errno::Errno::ECONNABORTED) => continue,
                Err(nix::errno::Errno::EAGAIN) => {
                    if deadline == Deadline::Now || !wait(listener.as_fd(), Ready::Readable, deadline)? {
                        return Ok(false);
                    }
                }
                Err(errno) => return Err(Error::io("accept", errno)),
            }
        }
    }

    fn close_listener(&mut self) {
        self.listener = None;
        if let Some(path) = self.path.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.close_listener();
    }
}

impl Link for Listening {
    fn connected(&mut self, deadline: Deadline) -> Result<Option<BorrowedFd<'_>>> {
        if !self.accept(deadline)? {
            return Ok(None);
        }
        Ok(self.peer.as_ref().map(|fd| fd.as_fd()))
    }

    fn is_socket(&self) -> bool {
        true
    }
}

/// Calls `connect` until it succeeds, fails with an error other than "nobody listens there yet"
/// (`ENOENT`, `ECONNREFUSED`), or `timeout` passes ([`Error::Timeout`]).
pub fn connect_retrying<T>(timeout: Duration, mut connect: impl FnMut() -> std::io::Result<T>) -> Result<T> {
    let deadline = Deadline::after(timeout);
    loop {
        match connect() {
            Ok(connected) => return Ok(connected),
            Err(error)
                if matches!(error.raw_os_error(), Some(libc::ENOENT | libc::ECONNREFUSED | libc::EAGAIN))
                    && !deadline.passed() =>
            {
                // Nothing to wait on before the other side binds: poll its address.
                std::thread::sleep(CONNECT_RETRY);
            }
            Err(error) if matches!(error.raw_os_error(), Some(libc::ENOENT | libc::ECONNREFUSED | libc::EAGAIN)) => {
                return Err(Error::Timeout)
            }
            Err(error) => return Err(Error::io("connect", error)),
        }
    }
}

/// The link of a stream socket transport: the bound side (accepting its peer lazily) or the
/// connecting side.
#[derive(Debug)]
pub enum SocketLink {
    /// Bound and listening; the peer is accepted on first use.
    Bound(Listening),
    /// Connected to a bound side.
    Connected(super::stream::Connected),
}

impl Link for SocketLink {
    fn connected(&mut self, deadline: Deadline) -> Result<Option<BorrowedFd<'_>>> {
        match self {
            SocketLink::Bound(listening) => listening.connected(deadline),
            SocketLink::Connected(connected) => connected.connected(deadline),
        }
    }

    fn is_socket(&self) -> bool {
        true
    }

    fn peer_credentials(&self) -> Option<crate::channel::Credentials> {
        // Fails (None) on a TCP socket: SO_PEERCRED is a Unix-socket option.
        self.peer().and_then(|fd| super::unix::peer_credentials(fd).ok())
    }
}

impl SocketLink {
    /// The connected descriptor, if there is one yet.
    pub fn peer(&self) -> Option<BorrowedFd<'_>> {
        match self {
            SocketLink::Bound(listening) => listening.peer(),
            SocketLink::Connected(connected) => Some(connected.fd()),
        }
    }
}
