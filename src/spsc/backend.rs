//! What a blocking SPSC endpoint needs beyond the ring memory: where the sides sleep
//! ([`WaitSite`], shared with every ring kind), role claims and the peer's liveness.

use crate::endpoint::PeerWatch;
use crate::error::{Error, Role};
use crate::ring::SpscMemory;
use crate::wait::{PeerCheck, WaitSite};

/// Everything shared between the two endpoints of one SPSC ring: the ring memory, where the
/// sides sleep ([`Backend::site`]), and the role claims.
///
/// Implemented by [`super::ShmMemory`] (a segment in `/dev/shm`) and `Arc<`[`super::HeapMemory`]`>`
/// (one process; loom models).
///
/// # Safety
/// The endpoints hand out `&mut [u8]` and `&[u8]` over slots on the strength of
/// [`Backend::claim`]: while one handle holds a role (from a successful `claim` until its
/// `release`), `claim` of the same role must fail for every other handle, in every process. A
/// second producer or consumer would make those borrows overlap.
pub unsafe trait Backend: SpscMemory {
    /// Where the two sides sleep and wake each other.
    type Site: WaitSite;
    /// The wait site.
    fn site(&self) -> &Self::Site;
    /// Claims `role` for this handle; [`AttachError::RoleTaken`](crate::AttachError::RoleTaken) if a live handle holds it.
    fn claim(&self, role: Role) -> Result<(), Error>;
    /// Records that `role` attached successfully (claimed and found the ring sound): what
    /// "the peer attached once" in [`Backend::peer_gone`] counts. No-op by default.
    fn attached(&self, _role: Role) {}
    /// Gives `role` up.
    fn release(&self, role: Role);
    /// True if the peer of `me` attached at some point and is now detached or dead.
    fn peer_gone(&self, me: Role, check: PeerCheck) -> bool;
}

/// True if the peer of `me` is gone: the cheap check every time, the thorough one at most once
/// per liveness interval (see [`PeerWatch`]).
pub(crate) fn peer_gone_rate_limited<B: Backend>(watch: &mut PeerWatch, backend: &B, me: Role) -> bool {
    watch.check(backend.site().liveness_interval(), |check| backend.peer_gone(me, check))
}
