//! Messages over a byte stream (pipe, FIFO, Unix stream socket, TCP): each message is framed as a
//! 4-byte little-endian length followed by the payload.
//!
//! **Sending** writes header and payload with one `writev` (pipes) or `sendmsg` with
//! `MSG_NOSIGNAL` (sockets): no copy in user space. A partial write is continued; if a timeout
//! (or a `try_send`) stops it midway, the rest is kept and finished before the next message (or
//! when the sender drops, waiting at most [`FLUSH_ON_DROP`]), so the stream never carries half a
//! frame followed by another.
//!
//! **Receiving** reads into a 64 KiB read-ahead buffer, so a burst of small messages costs one
//! `read` instead of two per message (header, then payload); the bytes of a payload found there
//! are copied once into the frame being assembled, and a payload larger than what is buffered is
//! read straight into it. The frame is assembled in a `Vec` owned by the receiver and swapped
//! with the caller's buffer when complete: no allocation per message once both have grown, and a
//! `try_recv` that finds half a frame keeps it for the next call. A waiting receive that follows
//! a `try_recv` which found nothing polls before it reads (the read would only fail again).
//!
//! **Peer gone**: end of file (`read` returns 0) or `EPIPE`/`ECONNRESET` give
//! [`Error::Disconnected`]; half a frame at end of file is dropped (its sender died mid-message).
//!
//! ```
//! use ipcring::channel::{Receiver, Sender};
//! use ipcring::transport::pipe;
//!
//! let (mut sender, mut receiver) = pipe::channel(1024).unwrap();
//! sender.send(b"framed").unwrap();
//! sender.send(b"").unwrap();
//! let mut buffer = Vec::new();
//! receiver.recv(&mut buffer).unwrap();
//! assert_eq!(buffer, b"framed");
//! receiver.recv(&mut buffer).unwrap();
//! assert!(buffer.is_empty());
//! drop(sender);
//! assert!(matches!(receiver.recv(&mut buffer), Err(ipcring::RecvError::Disconnected)));
//! ```

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{sendmsg, MsgFlags};
use nix::sys::uio::writev;

use super::fd::{wait, Deadline, Ready};
use crate::error::{Error, Result};

/// Bytes of the length header.
pub const HEADER: usize = 4;
/// Size of the receiver's read-ahead buffer.
pub const READ_AHEAD: usize = 64 * 1024;
/// Longest a dropped sender waits to finish a message it started.
pub const FLUSH_ON_DROP: Duration = Duration::from_secs(1);

/// How a stream transport reaches its connected descriptor, and what its end of file means.
pub trait Link {
    /// The connected descriptor, waiting for the peer to appear until `deadline`; `None` if it
    /// has not appeared by then (a listener with no connection yet, a FIFO with no reader).
    fn connected(&mut self, deadline: Deadline) -> Result<Option<BorrowedFd<'_>>>;
    /// True if the descriptor is a socket (written with `sendmsg` and `MSG_NOSIGNAL`).
    fn is_socket(&self) -> bool;
    /// Called when a read returned end of file: true if that means the peer is gone (always,
    /// except for a FIFO whose first writer has not opened it yet).
    fn end_of_file_is_final(&mut self) -> Result<bool> {
        Ok(true)
    }
    /// The connected peer's credentials, for a Unix socket that is connected (`SO_PEERCRED`).
    fn peer_credentials(&self) -> Option<crate::channel::Credentials> {
        None
    }
}

/// A descriptor that is connected from the start (a pipe end, a connected socket).
#[derive(Debug)]
pub struct Connected {
    fd: OwnedFd,
    socket: bool,
}

impl Connected {
    /// Wraps a connected, non-blocking descriptor.
    pub fn new(fd: OwnedFd, socket: bool) -> Connected {
        Connected { fd, socket }
    }

    /// The descriptor.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Link for Connected {
    fn connected(&mut self, _deadline: Deadline) -> Result<Option<BorrowedFd<'_>>> {
        Ok(Some(self.fd.as_fd()))
    }

    fn is_socket(&self) -> bool {
        self.socket
    }
}

/// The sending end of a framed byte stream.
#[derive(Debug)]
pub struct StreamSender<L: Link> {
    link: L,
    max_message_size: usize,
    /// The unwritten rest of a frame that a timeout interrupted.
    unfinished: Vec<u8>,
    name: crate::channel::Kind,
}

impl<L: Link> StreamSender<L> {
    /// A sender over `link` for messages of up to `max_message_size` bytes (at most `u32::MAX`);
    /// `name` is the transport's name.
    pub fn new(link: L, max_message_size: usize, name: crate::channel::Kind) -> StreamSender<L> {
        StreamSender { link, max_message_size: max_message_size.min(u32::MAX as usize), unfinished: Vec::new(), name }
    }

    /// The link.
    pub fn link(&self) -> &L {
        &self.link
    }

    /// Sends `message`, waiting until `deadline` for the peer and for room. Once part of the
    /// frame is written the call does not fail with a timeout: the rest is kept (see the module
    /// documentation).
    pub fn send_until(&mut self, message: &[u8], deadline: Deadline) -> Result<()> {
        if message.len() > self.max_message_size {
            return Err(Error::MessageTooLarge { len: message.len(), max: self.max_message_size });
        }
        self.flush(deadline)?;
        let header = (message.len() as u32).to_le_bytes();
        let total = HEADER + message.len();
        let mut sent = 0;
        while sent < total {
            let parts =
                [IoSlice::new(&header[sent.min(HEADER)..]), IoSlice::new(&message[sent.saturating_sub(HEADER)..])];
            match self.write(&parts, deadline)? {
                Some(written) => sent += written,
                None if sent == 0 => return Err(would_block(deadline, Error::Full)),
                None => {
                    // Keep the rest: the frame is accepted and finished by the next call.
                    self.unfinished.extend_from_slice(&header[sent.min(HEADER)..]);
                    self.unfinished.extend_from_slice(&message[sent.saturating_sub(HEADER)..]);
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Writes what a timeout left unwritten, waiting until `deadline`.
    fn flush(&mut self, deadline: Deadline) -> Result<()> {
        while !self.unfinished.is_empty() {
            let rest = std::mem::take(&mut self.unfinished);
            let result = self.write(&[IoSlice::new(&rest)], deadline);
            self.unfinished = rest;
            match result? {
                Some(written) => drop(self.unfinished.drain(..written)),
                None => return Err(would_block(deadline, Error::Full)),
            }
        }
        Ok(())
    }

    /// One write of `parts`, waiting for room until `deadline`: `Some(bytes)`, or `None` if
    /// there was no room (or no peer) by then.
    fn write(&mut self, parts: &[IoSlice<'_>], deadline: Deadline) -> Result<Option<usize>> {
        let socket = self.link.is_socket();
        loop {
            let Some(fd) = self.link.connected(deadline)? else { return Ok(None) };
            let result = if socket {
                sendmsg::<()>(fd.as_raw_fd(), parts, &[], MsgFlags::MSG_NOSIGNAL, None)
            } else {
                writev(fd, parts)
            };
            match result {
                Ok(written) => return Ok(Some(written)),
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => {
                    if deadline == Deadline::Now || !wait(fd, Ready::Writable, deadline)? {
                        return Ok(None);
                    }
                }
                Err(Errno::EPIPE | Errno::ECONNRESET | Errno::ENOTCONN) => return Err(Error::Disconnected),
                Err(errno) => return Err(Error::io(format!("{}: write", self.name), errno)),
            }
        }
    }

    /// Largest message this sender takes.
    pub fn max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// The transport's name.
    pub fn name(&self) -> &'static str {
        self.name.name()
    }
}

impl<L: Link> Drop for StreamSender<L> {
    fn drop(&mut self) {
        // A frame accepted by an earlier call must not be lost to a drop; bounded so a stuck
        // reader cannot hang the drop.
        let _ = self.flush(Deadline::after(FLUSH_ON_DROP));
    }
}

/// The receiving end of a framed byte stream.
#[derive(Debug)]
pub struct StreamReceiver<L: Link> {
    link: L,
    max_message_size: usize,
    read_ahead: Box<[u8]>,
    /// Unconsumed bytes are `read_ahead[start..end]`.
    start: usize,
    end: usize,
    /// The frame being assembled: its length once the header is in, and the payload so far.
    expected: Option<usize>,
    frame: Vec<u8>,
    /// The last read found nothing (`EAGAIN`) and no wait has happened since: a waiting call
    /// goes straight to `poll` instead of reading again first (a `try_recv` that found nothing,
    /// followed by a timed receive, is the common pattern of a receiver faster than its sender).
    drained: bool,
    name: crate::channel::Kind,
}

impl<L: Link> StreamReceiver<L> {
    /// A receiver over `link` for messages of up to `max_message_size` bytes; a frame that
    /// announces more is [`Error::Corrupted`]. `name` is the transport's name.
    pub fn new(link: L, max_message_size: usize, name: crate::channel::Kind) -> StreamReceiver<L> {
        StreamReceiver {
            link,
            max_message_size: max_message_size.min(u32::MAX as usize),
            read_ahead: vec![0; READ_AHEAD].into_boxed_slice(),
            start: 0,
            end: 0,
            expected: None,
            frame: Vec::new(),
            drained: false,
            name,
        }
    }

    /// The link.
    pub fn link(&self) -> &L {
        &self.link
    }

    /// Receives one message into `buffer` (replacing its contents), waiting until `deadline`.
    pub fn recv_until(&mut self, buffer: &mut Vec<u8>, deadline: Deadline) -> Result<()> {
        loop {
            if self.take_buffered()? {
                std::mem::swap(buffer, &mut self.frame);
                self.frame.clear();
                return Ok(());
            }
            self.read(deadline)?;
        }
    }

    /// Moves buffered bytes into the frame; true once the frame is complete.
    fn take_buffered(&mut self) -> Result<bool> {
        if self.expected.is_none() {
            if self.end - self.start < HEADER {
                return Ok(false);
            }
            let header: [u8; HEADER] = self.read_ahead[self.start..self.start + HEADER].try_into().expect("4 bytes");
            self.start += HEADER;
            let length = u32::from_le_bytes(header) as usize;
            if length > self.max_message_size {
                return Err(Error::Corrupted { field: "frame length", value: length as u64 });
            }
            self.expected = Some(length);
            self.frame.clear();
            self.frame.reserve(length);
        }
        let length = self.expected.unwrap_or(0);
        let take = (length - self.frame.len()).min(self.end - self.start);
        self.frame.extend_from_slice(&self.read_ahead[self.start..self.start + take]);
        self.start += take;
        if self.frame.len() == length {
            self.expected = None;
            return Ok(true);
        }
        Ok(false)
    }

    /// One read: into the frame directly when much of its payload is missing, else into the
    /// read-ahead buffer. Waits until `deadline` for data.
    fn read(&mut self, deadline: Deadline) -> Result<()> {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        } else if self.start > 0 {
            // A partial header: move it to the front so the buffer has room behind it.
            self.read_ahead.copy_within(self.start..self.end, 0);
            (self.start, self.end) = (0, self.end - self.start);
        }
        let missing = self.expected.map_or(0, |length| length - self.frame.len());
        let direct = missing >= READ_AHEAD / 2;
        if self.drained && deadline != Deadline::Now {
            self.drained = false;
            self.wait_readable(deadline)?;
        }
        loop {
            let Some(fd) = self.link.connected(deadline)? else {
                return Err(would_block(deadline, Error::Empty));
            };
            let fd = fd.as_raw_fd();
            let result = if direct {
                let spare = self.frame.spare_capacity_mut();
                let count = missing.min(spare.len());
                // SAFETY: `spare` is the frame's allocated, unused capacity, at least `count`
                // bytes long; read(2) writes at most `count` bytes there and nothing else.
                Errno::result(unsafe { libc::read(fd, spare.as_mut_ptr().cast(), count) })
            } else {
                let room = &mut self.read_ahead[self.end..];
                // SAFETY: `room` is an initialised, writable slice of `room.len()` bytes.
                Errno::result(unsafe { libc::read(fd, room.as_mut_ptr().cast(), room.len()) })
            };
            match result {
                Ok(0) => {
                    if self.link.end_of_file_is_final()? {
                        // Half a frame at end of file: its sender died mid-message.
                        self.expected = None;
                        return Err(Error::Disconnected);
                    }
                    self.wait_readable(deadline)?;
                }
                Ok(count) => {
                    let count = count as usize;
                    if direct {
                        // SAFETY: read(2) initialised `count` more bytes after the frame's
                        // length, within its capacity (checked above).
                        unsafe { self.frame.set_len(self.frame.len() + count) };
                    } else {
                        self.end += count;
                    }
                    return Ok(());
                }
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) if deadline == Deadline::Now => {
                    self.drained = true;
                    return Err(Error::Empty);
                }
                Err(Errno::EAGAIN) => self.wait_readable(deadline)?,
                Err(Errno::ECONNRESET) => return Err(Error::Disconnected),
                Err(errno) => return Err(Error::io(format!("{}: read", self.name), errno)),
            }
        }
    }

    fn wait_readable(&mut self, deadline: Deadline) -> Result<()> {
        let Some(fd) = self.link.connected(deadline)? else { return Err(would_block(deadline, Error::Empty)) };
        if deadline == Deadline::Now || !wait(fd, Ready::Readable, deadline)? {
            return Err(would_block(deadline, Error::Empty));
        }
        Ok(())
    }

    /// Largest message this receiver takes.
    pub fn max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// The transport's name.
    pub fn name(&self) -> &'static str {
        self.name.name()
    }
}

/// What a call that could not proceed by its deadline returns: `now_error` (`Full` or `Empty`)
/// for a `try_*` call, `Timeout` for a timed one.
pub(crate) fn would_block(deadline: Deadline, now_error: Error) -> Error {
    match deadline {
        Deadline::Now => now_error,
        _ => Error::Timeout,
    }
}

deadline_channel_trait!([L: Link] Sender for StreamSender<L>, |this| this.name);

deadline_channel_trait!([L: Link] Receiver for StreamReceiver<L>, |this| this.name, {
    fn peer_credentials(&self) -> Option<crate::channel::Credentials> {
        self.link.peer_credentials()
    }
});

// Readiness: the connected descriptor, readable for the receiver and writable for the sender
// (`docs/event-loops.md`); none yet while a listener has not accepted or a FIFO has no reader.
// The kernel reports a peer's end itself (end of file, a reset).
crate::readiness::kernel::kernel_readiness!([L: Link] StreamSender<L>,
    |this| this.link.connected(Deadline::Now).ok().flatten(),
    |_me| crate::readiness::Interest::Writable, None);
crate::readiness::kernel::kernel_readiness!([L: Link] StreamReceiver<L>,
    |this| this.link.connected(Deadline::Now).ok().flatten(),
    |_me| crate::readiness::Interest::Readable, None);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::{Receiver as _, Sender as _};
    use std::io::Write;

    /// A receiver over a pipe whose write end the test drives byte by byte.
    fn raw_pipe(max: usize) -> (std::fs::File, StreamReceiver<Connected>) {
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        super::super::fd::set_nonblocking(&read).unwrap();
        (std::fs::File::from(write), StreamReceiver::new(Connected::new(read, false), max, crate::channel::Kind::Pipe))
    }

    #[test]
    fn a_timed_receive_after_an_empty_try_recv_gets_what_came_in_between() {
        // The empty try_recv marks the receiver drained: the timed receive polls first instead
        // of reading, and must still see the bytes written in between at once.
        let (mut writer, mut receiver) = raw_pipe(64);
        let mut buffer = Vec::new();
        assert!(matches!(receiver.try_recv(&mut buffer).map_err(crate::Error::from), Err(Error::Empty)));
        writer.write_all(&[2, 0, 0, 0, b'h', b'i']).unwrap();
        receiver.recv_timeout(&mut buffer, Duration::from_secs(10)).unwrap();
        assert_eq!(buffer, b"hi");
        assert!(matches!(receiver.try_recv(&mut buffer).map_err(crate::Error::from), Err(Error::Empty)));
        drop(writer);
        assert!(matches!(
            receiver.recv_timeout(&mut buffer, Duration::from_secs(10)).map_err(crate::Error::from),
            Err(Error::Disconnected)
        ));
    }

    #[test]
    fn a_frame_that_arrives_in_pieces_is_assembled_across_try_recv_calls() {
        let (mut writer, mut receiver) = raw_pipe(64);
        let mut buffer = Vec::new();
        writer.write_all(&[5, 0]).unwrap();
        assert!(matches!(receiver.try_recv(&mut buffer).map_err(crate::Error::from), Err(Error::Empty)));
        writer.write_all(&[0, 0, b'h', b'e']).unwrap();
        assert!(matches!(receiver.try_recv(&mut buffer).map_err(crate::Error::from), Err(Error::Empty)));
        writer.write_all(b"llo").unwrap();
        receiver.try_recv(&mut buffer).unwrap();
        assert_eq!(buffer, b"hello");
    }

    #[test]
    fn several_frames_in_one_read_come_out_one_by_one() {
        let (mut writer, mut receiver) = raw_pipe(64);
        writer.write_all(&[1, 0, 0, 0, b'a', 0, 0, 0, 0, 2, 0, 0, 0, b'b', b'c']).unwrap();
        let mut buffer = Vec::new();
        for expected in [&b"a"[..], b"", b"bc"] {
            receiver.try_recv(&mut buffer).unwrap();
            assert_eq!(buffer, expected);
        }
        assert!(matches!(receiver.try_recv(&mut buffer).map_err(crate::Error::from), Err(Error::Empty)));
    }

    #[test]
    fn a_frame_longer_than_the_maximum_is_corruption() {
        let (mut writer, mut receiver) = raw_pipe(64);
        writer.write_all(&1000u32.to_le_bytes()).unwrap();
        assert!(matches!(
            receiver.try_recv(&mut Vec::new()).map_err(crate::Error::from),
            Err(Error::Corrupted { field: "frame length", value: 1000 })
        ));
    }

    #[test]
    fn half_a_frame_at_end_of_file_is_disconnected() {
        let (mut writer, mut receiver) = raw_pipe(64);
        writer.write_all(&[9, 0, 0, 0, b'x']).unwrap();
        drop(writer);
        assert!(matches!(receiver.recv(&mut Vec::new()).map_err(crate::Error::from), Err(Error::Disconnected)));
    }

    #[test]
    fn a_message_larger_than_the_pipe_is_written_in_pieces_while_the_reader_drains() {
        let (mut sender, mut receiver) = crate::transport::pipe::channel(1 << 20).unwrap();
        let message: Vec<u8> = (0..300_000u32).map(|index| index as u8).collect();
        let expected = message.clone();
        let writer = std::thread::spawn(move || sender.send_timeout(&message, Duration::from_secs(60)));
        let mut buffer = Vec::new();
        receiver.recv_timeout(&mut buffer, Duration::from_secs(60)).unwrap();
        writer.join().unwrap().unwrap();
        assert!(buffer == expected);
    }

    #[test]
    fn a_timeout_midway_keeps_the_rest_of_the_frame_for_the_next_call() {
        let (mut sender, mut receiver) = crate::transport::pipe::channel(1 << 20).unwrap();
        // Larger than the pipe buffer, and nobody reads: the timeout stops it midway.
        let big: Vec<u8> = (0..200_000u32).map(|index| index as u8).collect();
        sender.send_timeout(&big, Duration::from_millis(10)).unwrap();
        assert!(matches!(sender.try_send(b"next").map_err(crate::Error::from), Err(Error::Full)));
        let reader = std::thread::spawn(move || {
            let mut buffer = Vec::new();
            receiver.recv_timeout(&mut buffer, Duration::from_secs(60)).unwrap();
            let first = buffer.clone();
            receiver.recv_timeout(&mut buffer, Duration::from_secs(60)).unwrap();
            (first, buffer)
        });
        sender.send_timeout(b"next", Duration::from_secs(60)).unwrap();
        let (first, second) = reader.join().unwrap();
        assert!(first == big);
        assert_eq!(second, b"next");
    }
}
