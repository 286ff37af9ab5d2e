//! Check: an arbitrary byte image handed over as a sealed memfd segment is refused with a typed
//! error, or attached; then a few sends and receives of either kind of endpoint either work or
//! fail with a typed error — never a panic, an out-of-bounds access, a hang or `SIGBUS`. Shared by
//! the fuzz target and `tests/fuzz_corpus.rs`.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::time::Duration;

use ipcring::__private::attach;
use ipcring::__private::segment::{OpenOptions, Segment};

/// The image, as a sealed memfd (what `Segment::from_fd` accepts).
fn memfd(image: &[u8]) -> OwnedFd {
    use nix::fcntl::{fcntl, FcntlArg, SealFlag};
    use nix::sys::memfd::{memfd_create, MemFdCreateFlag};
    let fd = memfd_create(c"ipcring-fuzz", MemFdCreateFlag::MFD_CLOEXEC | MemFdCreateFlag::MFD_ALLOW_SEALING).unwrap();
    let mut file = std::fs::File::from(fd);
    file.write_all(image).unwrap();
    let fd = OwnedFd::from(file);
    let seals = SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_SEAL;
    fcntl(std::os::fd::AsRawFd::as_raw_fd(&fd), FcntlArg::F_ADD_SEALS(seals)).unwrap();
    fd
}

/// Attaches to `image` as a producer and as a consumer (a publisher and a subscriber, for a
/// broadcast ring) and moves a few messages.
pub fn check(image: &[u8]) {
    // Large images only slow the fuzzer down; the header and the first slots are what matter.
    if image.len() > 1 << 20 {
        return;
    }
    let options = OpenOptions::default();
    let Ok(segment) = Segment::from_fd(memfd(image), &options) else { return };
    if segment.geometry().kind == ipcring::__private::layout::RingKind::Broadcast {
        return broadcast(segment, image);
    }
    let Ok(mut sender) = attach::sender(segment) else { return };
    let Ok(segment) = Segment::from_fd(memfd(image), &options) else { return };
    // A second mapping of a *copy* of the image: the receiver sees what the image says, not
    // what the sender wrote; both must cope with whatever they find.
    let Ok(mut receiver) = attach::receiver(segment) else { return };
    let mut buffer = Vec::new();
    for round in 0..4u8 {
        let _ = sender.try_send(&[round; 3]);
        let _ = sender.send_timeout(&[round; 5], Duration::ZERO);
        let _ = receiver.try_recv(&mut buffer);
        let _ = receiver.recv_timeout(&mut buffer, Duration::ZERO);
        assert!(buffer.len() <= receiver.max_message_size());
    }
}

/// The broadcast part of [`check`]: a publisher on `segment`, a subscriber on a second mapping of
/// a copy of the image, each joining and moving a few messages, every call `Ok` or a typed error.
fn broadcast(segment: Segment, image: &[u8]) {
    use ipcring::__private::ring::broadcast::{Publisher, ShmBroadcast, Start, Subscriber};
    use std::sync::Arc;
    let Ok(memory) = ShmBroadcast::new(segment).map(Arc::new) else { return };
    let publisher = memory.claim_publisher().and_then(|()| Publisher::attach(memory));
    let subscriber = Segment::from_fd(memfd(image), &OpenOptions::default())
        .and_then(ShmBroadcast::new)
        .and_then(|memory| Subscriber::join(Arc::new(memory), Start::Oldest));
    let mut buffer = Vec::new();
    if let Ok(mut publisher) = publisher {
        for round in 0..4u8 {
            let _ = publisher.try_publish(&[round; 5]);
            let _ = publisher.retire_dead();
            if let Ok(Some(mut slot)) = publisher.try_reserve() {
                slot.payload()[0] = round;
                let _ = slot.commit(1);
            }
        }
    }
    if let Ok(mut subscriber) = subscriber {
        for _ in 0..4 {
            if subscriber.try_read(&mut buffer).is_ok() {
                assert!(buffer.len() <= subscriber.memory().segment().geometry().slot_size as usize);
            }
            let _ = subscriber.try_borrow().map(|message| message.len());
        }
    }
}
