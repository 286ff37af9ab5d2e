//! [`ShmMemory`]: the production backend, an SPSC ring in a shared-memory [`Segment`].

use std::mem::offset_of;
use std::time::Duration;

use super::backend::Backend;
use crate::endpoint::shm::{unix_now_ns, ShmControl};
use crate::error::{Error, Role};
use crate::layout::{Block, RingKind, RoleRecord, RolesBlock};
use crate::lock::Lock;
use crate::process::{claim_pid, current_claim};
use crate::ring::SpscMemory;
use crate::segment::Segment;
use crate::sync::{AtomicU32, AtomicU64, Ordering};
use crate::wait::{alert, peer_of, take, wake, PeerCheck, WaitSite};

/// Byte offsets of the fields this backend touches, from the layout structs themselves.
const CLAIM: u64 = offset_of!(RoleRecord, claim) as u64;
const ATTACH_COUNT: u64 = offset_of!(RoleRecord, attach_count) as u64;
const LAST_ATTACH_NS: u64 = offset_of!(RoleRecord, last_attach_ns) as u64;

/// An SPSC ring in a mapped segment. Everything it touches but the role records is in
/// `ShmControl`, shared with every ring kind; the segment is owned by it, so every pointer
/// stays valid as long as `self`.
pub struct ShmMemory {
    control: ShmControl,
}

impl ShmMemory {
    /// Wraps a validated SPSC segment.
    pub fn new(segment: Segment) -> Result<ShmMemory, Error> {
        Ok(ShmMemory { control: ShmControl::new(segment, RingKind::Spsc)? })
    }

    /// The segment.
    pub fn segment(&self) -> &Segment {
        self.control.segment()
    }

    /// Sets how long a blocked call sleeps at most before checking its peer's liveness.
    pub fn set_liveness_interval(&mut self, interval: Duration) {
        self.control.set_liveness_interval(interval);
    }

    fn role_word(&self, role: Role, field: u64) -> &AtomicU64 {
        let record = match role {
            Role::Producer => offset_of!(RolesBlock, producer),
            Role::Consumer => offset_of!(RolesBlock, consumer),
        } as u64;
        let segment = self.segment();
        segment.atomic_u64(segment.geometry().block_offset(Block::Roles) + record + field)
    }
}

// SAFETY: the core is `ShmControl`, a RingCore over the validated geometry; the stamp is the
// second u32 of a slot's header, which the SPSC slot accesses never cover (length at 0, payload
// from payload_offset >= 8).
crate::endpoint::owns_core!(ShmMemory, ShmControl);

unsafe impl SpscMemory for ShmMemory {
    #[inline]
    fn stamp(&self, index: u64) -> &AtomicU32 {
        let stamp = self.control.slot_base(index).cast::<u32>().wrapping_add(1);
        // SAFETY: the stamp is the second u32 of the slot header: inside the slot array (checked
        // against the mapping), 4-byte aligned (slots are 8-byte aligned), alive as long as
        // `self` owns the mapping; every process accesses it atomically.
        unsafe { AtomicU32::from_ptr(stamp) }
    }

    #[inline]
    fn on_commit(&self, count: u64) {
        take(&self.control, Role::Producer, count, || false);
        wake(&self.control, Role::Consumer, count);
    }

    #[inline]
    fn on_release(&self, count: u64) {
        take(&self.control, Role::Consumer, count, || false);
        wake(&self.control, Role::Producer, count);
    }
}

// SAFETY: `claim` takes the role's OFD lock through this segment's own open file description
// (LAYOUT.md §10): the kernel grants it to one description at a time, and the description's
// bit mask keeps two handles sharing it apart.
unsafe impl Backend for ShmMemory {
    type Site = ShmControl;

    #[inline]
    fn site(&self) -> &ShmControl {
        &self.control
    }

    fn claim(&self, role: Role) -> Result<(), Error> {
        // The role's lock decides (LAYOUT.md §10): held by another description means a live
        // holder, in whatever PID namespace; free means none, or one that died or exec'd.
        if !self.control.locks().take(Lock::Record(role.index()))? {
            // Acquire: pairs with the holder's release store; the pid is for the message only.
            let holder = self.role_word(role, CLAIM).load(Ordering::Acquire);
            return Err(Error::RoleTaken { role, pid: claim_pid(holder) });
        }
        // The claim word names the holder for `ipcring info` (a pid as its own namespace sees
        // it); liveness never reads it. Release: pairs with the peer's acquire in `peer_gone`.
        self.role_word(role, CLAIM).store(current_claim(), Ordering::Release);
        // Only this role sleeps on its word: registrations left there belong to a dead
        // predecessor and would only cost the peer useless wake calls.
        self.control.wait_words(role).waiters.store(0, Ordering::Relaxed);
        Ok(())
    }

    fn attached(&self, role: Role) {
        self.role_word(role, ATTACH_COUNT).fetch_add(1, Ordering::Relaxed);
        self.role_word(role, LAST_ATTACH_NS).store(unix_now_ns(), Ordering::Relaxed);
        self.control.note_activity(role);
    }

    fn release(&self, role: Role) {
        self.control.note_activity(role);
        // This description holds the role's lock, so the word is this endpoint's (whatever it
        // stored at claim time): vacate it, then unlock. A forked child holds no lock and
        // leaves both alone. Release: pairs with the acquire loads in `peer_gone`.
        if self.control.locks().holds(Lock::Record(role.index())) {
            self.role_word(role, CLAIM).store(0, Ordering::Release);
            self.control.locks().release(Lock::Record(role.index()));
        }
        alert(&self.control, peer_of(role));
    }

    fn peer_gone(&self, me: Role, check: PeerCheck) -> bool {
        if check == PeerCheck::Thorough {
            self.control.thorough_check(me);
        }
        if self.control.truncated() {
            return true;
        }
        let peer = peer_of(me);
        // Acquire: pairs with the release in `release`.
        let claim = self.role_word(peer, CLAIM).load(Ordering::Acquire);
        let attached_once = || self.role_word(peer, ATTACH_COUNT).load(Ordering::Relaxed) > 0;
        if claim == 0 {
            return attached_once();
        }
        if check == PeerCheck::Quick {
            return false;
        }
        match self.control.locks().is_taken(Lock::Record(peer.index())) {
            Ok(held) => !held && attached_once(),
            // A forked child: the endpoint is its parent's; the child is cut off from the ring.
            Err(Error::Forked) => true,
            // The lock could not be tested: never call a peer dead on that.
            Err(_) => false,
        }
    }
}
