//! What a blocking MPMC endpoint needs beyond the ring memory and its [`WaitSite`]: which roles
//! ever attached, and the liveness of the other side.

use crate::error::Role;
use crate::layout::{ENDPOINT_CONSUMER, ENDPOINT_PRODUCER, MAX_ENDPOINTS};
use crate::ring::mpmc::{any_attached, RecoveryLog};
use crate::ring::MpmcMemory;
use crate::sync::Ordering;
use crate::wait::{PeerCheck, WaitSite};

/// Everything the endpoints of one MPMC ring share.
///
/// Implemented for `Arc<`[`super::ShmRing`]`>` (a segment in `/dev/shm`) and
/// `Arc<`[`super::HeapRing`]`>` (one process; loom models). Cloning it gives another handle on
/// the same ring (how [`super::Sender::try_clone`] makes more endpoints).
pub trait Backend: MpmcMemory + RecoveryLog + Clone {
    /// Where the two sides sleep and wake each other.
    type Site: WaitSite;
    /// The wait site.
    fn site(&self) -> &Self::Site;
    /// Records that an endpoint of `role` attached in record `index`.
    fn attached(&self, role: Role, index: usize);
    /// True if any endpoint of `role` ever attached to the ring.
    fn ever_attached(&self, role: Role) -> bool;
    /// Called at each thorough liveness check by an endpoint of `role`: records its activity and
    /// checks that the memory was not truncated (no-op by default).
    fn thorough_check(&self, _role: Role) {}
    /// The endpoint record the next thorough check looks at for a dead sleeper: each in turn
    /// (0 by default).
    fn next_record(&self) -> usize {
        0
    }
}

/// Takes back the eventcount registration of a sleeper that died asleep in endpoint record
/// `index` (LAYOUT.md §16.6): if the record's `sleeping` word is set and its holder is dead (its
/// record lock is gone), the one
/// survivor whose compare-and-swap clears the word decrements the `waiters` count of that
/// record's side (never below 0). Without it each dead sleeper would cost every later publication
/// a useless `FUTEX_WAKE`. Each thorough liveness check looks at one record, the next in turn
/// ([`Backend::next_record`]), so its cost stays one liveness test however many endpoints sleep;
/// a dead sleeper is found within one turn of the table, or at once by the endpoint that takes
/// its record over (`ring::mpmc`). A record with a role of neither side is skipped.
pub(crate) fn repair_dead_sleeper<B: Backend>(backend: &B, index: usize) {
    let index = index.min(MAX_ENDPOINTS - 1);
    let words = backend.endpoint(index);
    // Acquire: pairs with the sleeper's release store, so its increment is visible.
    let sleeper = words.sleeping.load(Ordering::Acquire);
    if sleeper == 0 || backend.is_alive(index, sleeper) {
        return;
    }
    let side = match words.role.load(Ordering::Relaxed) {
        ENDPOINT_PRODUCER => Role::Producer,
        ENDPOINT_CONSUMER => Role::Consumer,
        _ => return,
    };
    // AcqRel: one winner among survivors (and `Endpoint::attach`'s swap); acquire as for the load
    // above, release so that a later repairer that sees 0 also sees this one's decrement.
    if words.sleeping.compare_exchange(sleeper, 0, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
        backend.site().wait_words(side).forget_one();
    }
}

/// True if every endpoint of the other side of `me` is gone, after at least one attached: none
/// is recorded (quick), or none recorded is alive (thorough).
pub(crate) fn peers_gone<B: Backend>(backend: &B, me: Role, check: PeerCheck) -> bool {
    if check == PeerCheck::Thorough {
        backend.thorough_check(me);
        repair_dead_sleeper(backend, backend.next_record());
    }
    if backend.site().truncated() {
        return true;
    }
    let peer = crate::wait::peer_of(me);
    backend.ever_attached(peer) && !any_attached(backend, peer, check == PeerCheck::Thorough)
}
