//! What a blocking MPMC endpoint needs beyond the ring memory and its [`WaitSite`]: which roles
//! ever attached, and the liveness of the other side.

use crate::error::Role;
use crate::ring::mpmc::{any_attached, RecoveryLog};
use crate::ring::MpmcMemory;
use crate::wait::{PeerCheck, WaitSite};

/// Everything the endpoints of one MPMC ring share.
///
/// Implemented for `Arc<`[`super::ShmRing`]`>` (a segment in `/dev/shm`) and
/// `Arc<`[`super::HeapRing`]`>` (one process; loom models). Cloning it gives another handle on
/// the same ring (how [`super::Sender::try_clone`] makes more endpoints).
pub trait Backend: MpmcMemory + RecoveryLog + WaitSite + Clone {
    /// Records that an endpoint of `role` attached in record `index`.
    fn attached(&self, role: Role, index: usize);
    /// True if any endpoint of `role` ever attached to the ring.
    fn ever_attached(&self, role: Role) -> bool;
    /// Called at each thorough liveness check by an endpoint of `role`: records its activity and
    /// checks that the memory was not truncated (no-op by default).
    fn thorough_check(&self, _role: Role) {}
}

/// True if every endpoint of the other side of `me` is gone, after at least one attached: none
/// is recorded (quick), or none recorded is alive (thorough).
pub(crate) fn peers_gone<B: Backend>(backend: &B, me: Role, check: PeerCheck) -> bool {
    if check == PeerCheck::Thorough {
        backend.thorough_check(me);
    }
    if backend.truncated() {
        return true;
    }
    let peer = crate::wait::peer_of(me);
    backend.ever_attached(peer) && !any_attached(backend, peer, check == PeerCheck::Thorough)
}
