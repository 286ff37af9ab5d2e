//! The ring `bridge in` writes: any kind, under the chosen policy.

use std::time::Duration;

use ipcring::inspect::RingInfo;
use ipcring::{broadcast, mpmc, spsc, Builder, RingKind, SendError};

use crate::error::{BridgeError, Result};
use crate::network::Policy;

/// How long one blocked write waits before it checks again (a bound on every call).
const WRITE_SLICE: Duration = Duration::from_millis(200);

/// The producing end `bridge in` holds.
// One per bridge process, made once and never moved in the loop: no reason to box it.
#[allow(clippy::large_enum_variant)]
enum Endpoint {
    Spsc(spsc::Sender),
    Mpmc(mpmc::Sender),
    Broadcast(broadcast::Publisher),
}

/// What became of a message [`Sink::write`] was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Written {
    /// Committed to the ring.
    Committed,
    /// Not written, by the `drop` policy: the ring was full, or had no consumer.
    Dropped,
    /// Not written: larger than the ring's slots.
    TooLarge,
}

/// A ring opened for `bridge in`.
///
/// ```
/// use ipcring_bridge::{network::Policy, sink::{Sink, Written}};
/// let name = format!("ipcring-doc-sink-{}", std::process::id());
/// let mut receiver: ipcring::spsc::Receiver = ipcring::Builder::new(&name).create()?;
/// let mut sink = Sink::open(&name)?;
/// assert_eq!(sink.write(b"hello", Policy::Block, &mut || ())?, Written::Committed);
/// assert_eq!(sink.position(), Some(1));
/// assert_eq!(receiver.recv_ref()?.to_vec(), b"hello");
/// ipcring::remove(&name)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Sink {
    name: String,
    endpoint: Endpoint,
}

impl Sink {
    /// Attaches to the existing ring `name` as its producer: the sender of an SPSC ring (taking
    /// over from a killed one), a sender of an MPMC ring, or the publisher of a broadcast ring.
    ///
    /// ```
    /// assert!(ipcring_bridge::sink::Sink::open("ipcring-doc-no-such-sink").is_err());
    /// ```
    pub fn open(name: &str) -> Result<Sink> {
        let attach = |source| BridgeError::Attach { ring: name.to_owned(), source };
        let endpoint = match RingInfo::open(name).map_err(attach)?.kind {
            RingKind::Spsc => Endpoint::Spsc(Builder::new(name).open().map_err(attach)?),
            RingKind::Mpmc => Endpoint::Mpmc(Builder::new(name).open().map_err(attach)?),
            RingKind::Broadcast => Endpoint::Broadcast(Builder::new(name).open().map_err(attach)?),
            other => {
                return Err(BridgeError::Usage(format!(
                    "ring {name} is of a kind this bridge does not know ({other:?})"
                )))
            }
        };
        Ok(Sink { name: name.to_owned(), endpoint })
    }

    /// Messages committed to the ring so far, where the ring can say: an SPSC ring's or a
    /// broadcast ring's sole producer position (`None` for MPMC, whose producers share it).
    /// What a restarted `bridge in` compares to tell whether its last write was committed.
    ///
    /// ```
    /// let name = format!("ipcring-doc-sink-position-{}", std::process::id());
    /// let _receiver: ipcring::mpmc::Receiver = ipcring::Builder::new(&name).create()?;
    /// assert_eq!(ipcring_bridge::sink::Sink::open(&name)?.position(), None);
    /// ipcring::remove(&name)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn position(&self) -> Option<u64> {
        match &self.endpoint {
            Endpoint::Spsc(sender) => Some(sender.position()),
            Endpoint::Mpmc(_) => None,
            Endpoint::Broadcast(publisher) => Some(publisher.position()),
        }
    }

    /// Writes one message. Under `block` it waits as long as the ring is full or has no
    /// consumer, in slices of 200 ms, calling `on_wait` before the first and after each (the receiving bridge sends
    /// its credit there, so its sender knows it is alive); under `drop` a full ring, or one
    /// without a consumer, drops it. A message larger than the slots is never written.
    ///
    /// ```
    /// use ipcring_bridge::{network::Policy, sink::{Sink, Written}};
    /// let name = format!("ipcring-doc-sink-drop-{}", std::process::id());
    /// let _receiver: ipcring::spsc::Receiver = ipcring::Builder::new(&name).slots(2).slot_size(64).create()?;
    /// let mut sink = Sink::open(&name)?;
    /// sink.write(b"1", Policy::Drop, &mut || ())?;
    /// sink.write(b"2", Policy::Drop, &mut || ())?;
    /// assert_eq!(sink.write(b"3", Policy::Drop, &mut || ())?, Written::Dropped); // two slots, both full
    /// assert_eq!(sink.write(&[0; 100], Policy::Drop, &mut || ())?, Written::TooLarge);
    /// ipcring::remove(&name)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn write(&mut self, message: &[u8], policy: Policy, on_wait: &mut dyn FnMut()) -> Result<Written> {
        // The first attempt never waits: if it must, `on_wait` is called before the first wait,
        // so the receiving bridge says at once that it is waiting (see crate::credit).
        let mut first = true;
        loop {
            let policy_now = if first { Policy::Drop } else { policy };
            let sent = match (&mut self.endpoint, policy_now) {
                (Endpoint::Spsc(sender), Policy::Block) => sender.send_timeout(message, WRITE_SLICE),
                (Endpoint::Spsc(sender), Policy::Drop) => sender.try_send(message),
                (Endpoint::Mpmc(sender), Policy::Block) => sender.send_timeout(message, WRITE_SLICE),
                (Endpoint::Mpmc(sender), Policy::Drop) => sender.try_send(message),
                (Endpoint::Broadcast(publisher), Policy::Block) => publisher.send_timeout(message, WRITE_SLICE),
                (Endpoint::Broadcast(publisher), Policy::Drop) => publisher.try_send(message),
            };
            if std::mem::take(&mut first) && policy == Policy::Block {
                if let Err(SendError::Full | SendError::Disconnected) = sent {
                    on_wait();
                    continue;
                }
            }
            match sent {
                Ok(()) => return Ok(Written::Committed),
                Err(SendError::TooLarge { .. }) => return Ok(Written::TooLarge),
                Err(SendError::Full | SendError::Disconnected) if policy == Policy::Drop => {
                    return Ok(Written::Dropped)
                }
                Err(SendError::Timeout | SendError::Full) => on_wait(),
                Err(SendError::Disconnected) => {
                    // Block: the consumer is gone (killed, or not yet restarted); a new one may
                    // attach, so wait for it. There is no event for an attach: poll.
                    // SLEEP-OK: polling for a consumer process to attach, not synchronising.
                    std::thread::sleep(WRITE_SLICE);
                    on_wait();
                }
                Err(error) => return Err(BridgeError::Ring { ring: self.name.clone(), message: error.to_string() }),
            }
        }
    }
}
