//! # ipcring
//!
//! Lock-free ring buffers in shared memory for inter-process communication, with a fixed,
//! documented layout (`shm-layout/LAYOUT.md`, C header `shm-layout/ipcring.h`) that other
//! processes, in Rust or in C, attach to by name; and every classic Linux IPC mechanism behind
//! the same traits, to compare them on the same work.
//!
//! ```
//! use ipcring::prelude::*; // the traits behind the typed and transport-neutral methods
//! use ipcring::{spsc, Builder};
//!
//! let name = format!("ipcring-doc-crate-{}", std::process::id());
//! let mut sender: spsc::Sender = Builder::new(&name).slots(64).slot_size(256).create()?;
//! let mut receiver: spsc::Receiver = Builder::new(&name).open()?; // normally another process
//!
//! // Zero-copy: write in place, then commit.
//! let mut slot = sender.reserve()?;
//! slot.payload()[..5].copy_from_slice(b"hello");
//! slot.commit(5)?;
//! // Typed: any `bytemuck::Pod` value, checked against the slot size.
//! sender.send_value(&[1u32, 2, 3])?;
//!
//! // Zero-copy: read in place; the slot is released when the guard drops.
//! assert_eq!(&*receiver.recv_ref()?, b"hello");
//! assert_eq!(receiver.recv_value::<[u32; 3]>()?, [1, 2, 3]);
//! ipcring::remove(&name)?;
//! # Ok::<(), ipcring::Error>(())
//! ```
//!
//! - [`Builder`] makes or opens a ring: by name in `/dev/shm`, anonymous (a sealed memfd handed
//!   over as a descriptor), or from a passed descriptor; the endpoint type decides the kind.
//! - [`spsc`]: one sender, one receiver. [`mpmc`]: any number of each, each message to one
//!   receiver, with crash recovery. [`broadcast`]: one publisher, many subscribers, every
//!   message to every subscriber, each with its own cursor.
//! - [`channel`]: the transport-neutral traits (copying and zero-copy) that the rings and every
//!   fallback in [`transport`] (pipes, FIFOs, Unix and TCP sockets, POSIX message queues)
//!   implement.
//! - [`inspect`] reads a ring's state without attaching; [`stale`] finds and removes rings that
//!   no live process uses.
//! - [`sigbus`]: a named ring's file truncated under its mapping is reported as a typed error,
//!   not a `SIGBUS` death, thanks to a process-wide handler that a host owning `SIGBUS` can
//!   disable.
//! - Errors come per operation: [`SendError`], [`RecvError`], [`AttachError`]; [`Error`] is any
//!   of them.
//!
//! The public items are listed in `docs/api.md`. Linux only: futexes, `/proc`, memfd and POSIX
//! message queues are the mechanisms underneath.
//!
//! Internals are not public: for instance the wait primitives and the loom facade
//! ```compile_fail
//! use ipcring::wait::take;
//! ```
//! ```compile_fail
//! use ipcring::sync::AtomicU64;
//! ```

#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(not(target_os = "linux"))]
compile_error!(
    "ipcring supports Linux only: it relies on futexes, /proc, memfd and POSIX message queues (see docs/architecture.md)"
);

#[cfg(not(loom))]
mod attach;
pub mod broadcast;
#[cfg(not(loom))]
mod builder;
pub mod channel;
mod endpoint;
mod error;
#[cfg(not(loom))]
pub mod inspect;
mod layout;
mod lock;
pub mod mpmc;
#[cfg(not(loom))]
mod process;
#[cfg(not(loom))]
pub mod readiness;
mod ring;
mod role;
mod role_claim;
#[cfg(not(loom))]
mod segment;
#[cfg(not(loom))]
pub mod sigbus;
pub mod spsc;
#[cfg(not(loom))]
pub mod stale;
mod sync;
#[cfg(all(feature = "tokio", not(loom)))]
pub mod tokio;
#[cfg(not(loom))]
pub mod transport;
#[cfg(not(loom))]
mod truncation;
mod typed;
mod wait;

#[cfg(not(loom))]
pub use builder::{location, remove, Builder, Endpoint};
pub use error::{AttachError, Error, Fault, RecvError, Result, SendError};
pub use layout::{RingKind, WaitStrategy};
pub use role::Role;
#[cfg(not(loom))]
pub use segment::{is_path, DEFAULT_LIVENESS_INTERVAL};
pub use typed::{ValueMut, ValueRef};

/// The traits that give every endpoint its transport-neutral, zero-copy and typed methods:
/// `use ipcring::prelude::*;`.
///
/// ```
/// use ipcring::prelude::*;
/// let mut sender: ipcring::spsc::Sender = ipcring::Builder::anonymous().create()?;
/// sender.send_value(&42u64)?;
/// # Ok::<(), ipcring::Error>(())
/// ```
pub mod prelude {
    pub use crate::channel::{
        ReadSlot as _, Receiver as _, Sender as _, WriteSlot as _, ZeroCopyReceiver as _, ZeroCopySender as _,
    };
}

/// Not API: what ipcring's own integration tests, loom models, fuzz targets, benchmarks and
/// command line reach below the public surface. Anything here can change in any release, and
/// much of it can break the invariants that keep the public API sound (it hands out the raw
/// shared words): it is for ipcring's own tools, never for users.
#[doc(hidden)]
pub mod __private {
    /// An endpoint's backend (its ring memory, wait site and claims), for ipcring's own tests.
    pub trait Internals {
        /// The backend type.
        type Backend;
        /// The backend.
        fn internal_backend(&self) -> &Self::Backend;
    }

    macro_rules! internals {
        ($($endpoint:ident :: $side:ident),*) => {$(
            impl<B: crate::$endpoint::Backend> Internals for crate::$endpoint::$side<B> {
                type Backend = B;
                fn internal_backend(&self) -> &B {
                    self.backend()
                }
            }
        )*};
    }
    internals!(spsc::Sender, spsc::Receiver, mpmc::Sender, mpmc::Receiver, broadcast::Publisher, broadcast::Subscriber);

    /// The endpoint backends' traits.
    pub mod backend {
        pub use crate::broadcast::backend::Backend as BroadcastBackend;
        pub use crate::mpmc::backend::Backend as MpmcBackend;
        pub use crate::spsc::backend::Backend as SpscBackend;
    }
    /// The shared-memory layout (`shm-layout/LAYOUT.md`).
    pub mod lock {
        pub use crate::lock::*;
    }

    pub mod layout {
        pub use crate::layout::*;
    }
    /// The lock-free algorithms, generic over their memory.
    pub mod ring {
        pub use crate::ring::*;
        /// The SPSC algorithm.
        pub mod spsc {
            pub use crate::ring::spsc::*;
        }
        /// The MPMC algorithm.
        pub mod mpmc {
            pub use crate::ring::mpmc::*;
        }
    }
    /// Waiting and waking.
    pub mod wait {
        pub use crate::wait::*;
    }
    /// The loom facade.
    pub mod sync {
        pub use crate::sync::*;
    }
    /// The role-claim protocol.
    pub mod role_claim {
        pub use crate::role_claim::*;
    }
    /// Segments: files, mappings, validation.
    #[cfg(not(loom))]
    pub mod segment {
        pub use crate::segment::*;
    }
    /// Process identity and liveness.
    #[cfg(not(loom))]
    pub mod process {
        pub use crate::process::*;
    }
    /// The stream framing of the byte-stream transports.
    #[cfg(not(loom))]
    pub mod stream {
        pub use crate::transport::stream::*;
    }
    /// Either kind of ring by a segment, through the channel traits.
    #[cfg(not(loom))]
    pub mod attach {
        pub use crate::attach::*;
    }
}

/// The README's Rust example, compiled and run as a doctest so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The example of `docs/kinds.md` (choosing a ring kind), compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../docs/kinds.md")]
pub struct KindsDoctests;
