//! The transport-neutral [`Sender`] and [`Receiver`] traits.
//!
//! Every transport (the shared-memory rings now; pipes, sockets and message queues next)
//! implements them, so that code, the conformance suite and `ipcring bench` can be written once.
//! Messages are byte strings from 0 bytes up to [`Sender::max_message_size`], delivered whole and
//! in order.
//!
//! ```
//! use ipcring::channel::{Receiver, Sender};
//! use ipcring::spsc::HeapMemory;
//! use ipcring::wait::WaitStrategy;
//! use std::sync::Arc;
//!
//! fn relay(input: &mut impl Receiver, output: &mut impl Sender) -> ipcring::Result<()> {
//!     let mut buffer = Vec::new();
//!     input.recv(&mut buffer)?;
//!     output.send(&buffer)
//! }
//!
//! let first = Arc::new(HeapMemory::new(2, 8, WaitStrategy::Spin));
//! let second = Arc::new(HeapMemory::new(2, 8, WaitStrategy::Spin));
//! let mut a = ipcring::spsc::Sender::attach(first.clone()).unwrap();
//! let mut b = ipcring::spsc::Receiver::attach(first).unwrap();
//! let mut c = ipcring::spsc::Sender::attach(second.clone()).unwrap();
//! let mut d = ipcring::spsc::Receiver::attach(second).unwrap();
//! a.send(b"relayed").unwrap();
//! relay(&mut b, &mut c).unwrap();
//! let mut out = Vec::new();
//! d.recv(&mut out).unwrap();
//! assert_eq!(out, b"relayed");
//! ```

use std::time::Duration;

use crate::error::Result;

/// The sending end of any transport.
pub trait Sender {
    /// Sends one message, waiting while the transport is full.
    fn send(&mut self, message: &[u8]) -> Result<()>;
    /// Sends one message if it can be done without waiting ([`crate::Error::Full`] otherwise).
    fn try_send(&mut self, message: &[u8]) -> Result<()>;
    /// Sends one message, waiting at most `timeout` ([`crate::Error::Timeout`]).
    fn send_timeout(&mut self, message: &[u8], timeout: Duration) -> Result<()>;
    /// Largest message this transport takes.
    fn max_message_size(&self) -> usize;
    /// The transport's name, as used by `--transport`.
    fn transport(&self) -> &'static str;
}

/// Who was at the other end of a Unix socket when it was connected (`SO_PEERCRED`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Credentials {
    /// The peer's process id, as seen from this process's pid namespace (0 if the peer's is not
    /// visible from it).
    pub pid: u32,
    /// The peer's effective user id.
    pub uid: u32,
    /// The peer's effective group id.
    pub gid: u32,
}

/// The receiving end of any transport.
pub trait Receiver {
    /// Receives one message into `buffer` (replacing its contents), waiting for one.
    fn recv(&mut self, buffer: &mut Vec<u8>) -> Result<()>;
    /// Receives one message if one is ready ([`crate::Error::Empty`] otherwise).
    fn try_recv(&mut self, buffer: &mut Vec<u8>) -> Result<()>;
    /// Receives one message, waiting at most `timeout` ([`crate::Error::Timeout`]).
    fn recv_timeout(&mut self, buffer: &mut Vec<u8>, timeout: Duration) -> Result<()>;
    /// Largest message this transport delivers.
    fn max_message_size(&self) -> usize;
    /// The transport's name, as used by `--transport`.
    fn transport(&self) -> &'static str;
    /// The sending process's credentials, where the transport knows them (Unix sockets, once
    /// connected: `SO_PEERCRED`); `None` elsewhere.
    fn peer_credentials(&self) -> Option<Credentials> {
        None
    }
}

/// A shared-memory endpoint's error as the trait reports it: `Corrupted` becomes `Truncated` when
/// the ring's file was truncated under this process (the zero pages that replaced it contradict
/// what the endpoint saw before; see [`crate::truncation`]).
fn explain<W: crate::wait::WaitSite + ?Sized>(site: &W, error: crate::Error) -> crate::Error {
    match error {
        crate::Error::Corrupted { .. } if site.truncated() => crate::Error::Truncated,
        other => other,
    }
}

impl<B: crate::spsc::Backend> Sender for crate::spsc::Sender<B> {
    fn send(&mut self, message: &[u8]) -> Result<()> {
        crate::spsc::Sender::send(self, message).map_err(|error| explain(self.backend().site(), error))
    }

    fn try_send(&mut self, message: &[u8]) -> Result<()> {
        crate::spsc::Sender::try_send(self, message).map_err(|error| explain(self.backend().site(), error))
    }

    fn send_timeout(&mut self, message: &[u8], timeout: Duration) -> Result<()> {
        crate::spsc::Sender::send_timeout(self, message, timeout).map_err(|error| explain(self.backend().site(), error))
    }

    fn max_message_size(&self) -> usize {
        crate::spsc::Sender::max_message_size(self)
    }

    fn transport(&self) -> &'static str {
        "shm-spsc"
    }
}

impl<B: crate::spsc::Backend> Receiver for crate::spsc::Receiver<B> {
    fn recv(&mut self, buffer: &mut Vec<u8>) -> Result<()> {
        crate::spsc::Receiver::recv(self, buffer).map_err(|error| explain(self.backend().site(), error))
    }

    fn try_recv(&mut self, buffer: &mut Vec<u8>) -> Result<()> {
        crate::spsc::Receiver::try_recv(self, buffer).map_err(|error| explain(self.backend().site(), error))
    }

    fn recv_timeout(&mut self, buffer: &mut Vec<u8>, timeout: Duration) -> Result<()> {
        crate::spsc::Receiver::recv_timeout(self, buffer, timeout)
            .map_err(|error| explain(self.backend().site(), error))
    }

    fn max_message_size(&self) -> usize {
        crate::spsc::Receiver::max_message_size(self)
    }

    fn transport(&self) -> &'static str {
        "shm-spsc"
    }
}

impl<B: crate::mpmc::Backend> Sender for crate::mpmc::Sender<B> {
    fn send(&mut self, message: &[u8]) -> Result<()> {
        crate::mpmc::Sender::send(self, message).map_err(|error| explain(self.backend().site(), error))
    }

    fn try_send(&mut self, message: &[u8]) -> Result<()> {
        crate::mpmc::Sender::try_send(self, message).map_err(|error| explain(self.backend().site(), error))
    }

    fn send_timeout(&mut self, message: &[u8], timeout: Duration) -> Result<()> {
        crate::mpmc::Sender::send_timeout(self, message, timeout).map_err(|error| explain(self.backend().site(), error))
    }

    fn max_message_size(&self) -> usize {
        crate::mpmc::Sender::max_message_size(self)
    }

    fn transport(&self) -> &'static str {
        "shm-mpmc"
    }
}

impl<B: crate::mpmc::Backend> Receiver for crate::mpmc::Receiver<B> {
    fn recv(&mut self, buffer: &mut Vec<u8>) -> Result<()> {
        crate::mpmc::Receiver::recv(self, buffer).map_err(|error| explain(self.backend().site(), error))
    }

    fn try_recv(&mut self, buffer: &mut Vec<u8>) -> Result<()> {
        crate::mpmc::Receiver::try_recv(self, buffer).map_err(|error| explain(self.backend().site(), error))
    }

    fn recv_timeout(&mut self, buffer: &mut Vec<u8>, timeout: Duration) -> Result<()> {
        crate::mpmc::Receiver::recv_timeout(self, buffer, timeout)
            .map_err(|error| explain(self.backend().site(), error))
    }

    fn max_message_size(&self) -> usize {
        crate::mpmc::Receiver::max_message_size(self)
    }

    fn transport(&self) -> &'static str {
        "shm-mpmc"
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    /// Endpoints move to other threads; MPMC ones can also be shared between threads (their
    /// `&self` methods, such as `try_clone`).
    #[test]
    fn shared_memory_endpoints_are_send_and_mpmc_ones_sync() {
        fn send<T: Send>() {}
        fn send_and_sync<T: Send + Sync>() {}
        send::<crate::spsc::Sender<crate::spsc::ShmMemory>>();
        send::<crate::spsc::Receiver<crate::spsc::ShmMemory>>();
        send_and_sync::<crate::mpmc::Sender<std::sync::Arc<crate::mpmc::ShmRing>>>();
        send_and_sync::<crate::mpmc::Receiver<std::sync::Arc<crate::mpmc::ShmRing>>>();
    }
}
