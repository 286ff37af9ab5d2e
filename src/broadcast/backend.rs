//! What a blocking broadcast endpoint needs beyond the ring memory: where it sleeps, the
//! publisher role, and the liveness checks.

use crate::error::{Error, Role};
use crate::ring::broadcast::{BroadcastMemory, HeapBroadcast};
use crate::wait::{PeerCheck, WaitSite};

/// Everything the endpoints of one broadcast ring share.
///
/// Implemented for `Arc<`[`ShmBroadcast`](crate::broadcast::ShmBroadcast)`>` (a segment in
/// `/dev/shm`) and `Arc<`[`HeapBroadcast`]`>` (one process; the loom models). Cloning it gives
/// another handle on the same ring.
pub trait Backend: BroadcastMemory + Clone {
    /// Where the publisher and the subscribers sleep and wake each other.
    type Site: WaitSite;
    /// The wait site.
    fn site(&self) -> &Self::Site;
    /// Takes the publisher role ([`Error::RoleTaken`] if a live endpoint holds it).
    fn claim_publisher(&self) -> Result<(), Error>;
    /// Gives the publisher role up and wakes the subscribers (they see the end of the stream
    /// once drained).
    fn release_publisher(&self);
    /// The thorough publisher check of a subscriber: a publisher that died holding the role is
    /// declared gone, so that [`BroadcastMemory::publisher_gone`] (atomic loads) sees it.
    fn reap_publisher(&self) {}
    /// Records that an endpoint of `role` attached (statistics).
    fn attached(&self, _role: Role) {}
    /// Called at each thorough liveness check by an endpoint of `role`: records its activity and
    /// checks that the memory was not truncated.
    fn thorough_check(&self, _role: Role) {}
    /// True in a forked child of the process that attached: the endpoint is the parent's, and
    /// the child may not use it.
    fn forked(&self) -> bool {
        false
    }
}

/// The liveness callback of a blocked subscriber: true once the publisher is gone (or the file
/// truncated). The thorough check reaps a publisher that died holding the role.
pub(crate) fn publisher_gone<B: Backend>(backend: &B, check: PeerCheck) -> bool {
    if check == PeerCheck::Thorough {
        backend.thorough_check(Role::Consumer);
        backend.reap_publisher();
    }
    backend.site().truncated() || backend.publisher_gone()
}

#[cfg(not(loom))]
mod shm {
    use std::sync::Arc;

    use super::Backend;
    use crate::endpoint::shm::ShmControl;
    use crate::error::{Error, Role};
    use crate::ring::broadcast::ShmBroadcast;
    use crate::ring::RingMemory as _;

    impl Backend for Arc<ShmBroadcast> {
        type Site = ShmControl;

        #[inline]
        fn site(&self) -> &ShmControl {
            self.core()
        }

        fn claim_publisher(&self) -> Result<(), Error> {
            ShmBroadcast::claim_publisher(self)
        }

        fn release_publisher(&self) {
            ShmBroadcast::release_publisher(self);
        }

        fn reap_publisher(&self) {
            ShmBroadcast::reap_publisher(self);
        }

        fn attached(&self, role: Role) {
            ShmBroadcast::attached(self, role);
        }

        fn thorough_check(&self, role: Role) {
            ShmBroadcast::thorough_check(self, role);
        }

        #[inline]
        fn forked(&self) -> bool {
            ShmBroadcast::forked(self)
        }
    }
}

impl Backend for std::sync::Arc<HeapBroadcast> {
    type Site = crate::endpoint::heap::HeapControl;

    fn site(&self) -> &Self::Site {
        self.control()
    }

    fn claim_publisher(&self) -> Result<(), Error> {
        if HeapBroadcast::claim_publisher(self) {
            Ok(())
        } else {
            Err(Error::RoleTaken { role: Role::Producer, pid: std::process::id() })
        }
    }

    fn release_publisher(&self) {
        HeapBroadcast::release_publisher(self);
    }
}
