//! The Zenoh side of a bridge: the session's configuration from the command line, and the
//! settings every bridge needs whatever the user's configuration says.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::error::{BridgeError, Result};

/// How the bridge joins the Zenoh network.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Talks to other peers directly; no router needed (the default).
    #[default]
    Peer,
    /// Talks through one router (`zenohd`), which routes between its clients.
    Client,
}

/// What happens to a message when the receiving side cannot keep up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Policy {
    /// A full destination ring slows the publisher (Zenoh's blocking congestion control, and
    /// the source ring fills up behind it): nothing is dropped (the default).
    #[default]
    Block,
    /// A message that finds the destination ring full, or Zenoh's queue congested, is dropped;
    /// every drop is counted (`dropped` at the receiving bridge for a full ring, `lost` for
    /// one Zenoh dropped).
    Drop,
}

/// The Zenoh options of `bridge out` and `bridge in`.
///
/// ```
/// use ipcring_bridge::network::Network;
/// let network = Network { listen: vec!["tcp/127.0.0.1:7447".into()], no_multicast: true, ..Network::default() };
/// let config = network.config()?;
/// assert!(config.get_json("listen/endpoints").unwrap().contains("127.0.0.1:7447"));
/// # Ok::<(), ipcring_bridge::BridgeError>(())
/// ```
#[derive(Args, Clone, Debug, Default)]
pub struct Network {
    /// A Zenoh endpoint to listen on, such as tcp/0.0.0.0:7447 (repeatable).
    #[arg(long, value_name = "ENDPOINT")]
    pub listen: Vec<String>,
    /// A Zenoh endpoint to connect to, such as tcp/192.0.2.7:7447 (repeatable); retried every
    /// 100 ms to 500 ms until it answers, and again whenever the link drops.
    #[arg(long, value_name = "ENDPOINT")]
    pub connect: Vec<String>,
    /// Peer (default) or client of a router.
    #[arg(long, value_enum, default_value_t = Mode::Peer)]
    pub mode: Mode,
    /// Turns multicast scouting off: only the --listen and --connect endpoints are used.
    #[arg(long)]
    pub no_multicast: bool,
    /// A Zenoh configuration file (JSON5), applied first; the options above override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The link lease this bridge announces, in milliseconds: how long its peer waits, hearing
    /// nothing from it, before it declares the link dead (and reconnects). Default: 3000.
    /// (Under `block` the credits of [`crate::credit`] keep Zenoh's reader from ever waiting for
    /// a full ring, so a stall of the destination never looks like a dead link.)
    #[arg(long, value_name = "MS")]
    pub lease_ms: Option<u64>,
}

impl Network {
    /// The Zenoh configuration: the file, then these options, then what a bridge needs
    /// (connection retries every 100 ms to 500 ms, forever, so a restarted or reconnected peer is
    /// found again within a second; the lease; and under `block`, a publisher that waits for the
    /// link instead of closing it after Zenoh's default 5 s).
    ///
    /// ```
    /// let config = ipcring_bridge::network::Network::default().config()?;
    /// assert!(config.get_json("connect/retry").unwrap().contains("\"period_init_ms\":100"));
    /// # Ok::<(), ipcring_bridge::BridgeError>(())
    /// ```
    pub fn config(&self) -> Result<zenoh::Config> {
        let mut config = match &self.config {
            Some(path) => zenoh::Config::from_file(path).map_err(BridgeError::zenoh)?,
            None => zenoh::Config::default(),
        };
        let mut set = |key: &str, value: String| {
            config
                .insert_json5(key, &value)
                .map_err(|error| BridgeError::Zenoh(format!("setting {key} = {value}: {error}")))
        };
        let mode = match self.mode {
            Mode::Peer => "peer",
            Mode::Client => "client",
        };
        set("mode", format!("{mode:?}"))?;
        if !self.listen.is_empty() {
            set("listen/endpoints", json_list(&self.listen))?;
        }
        if !self.connect.is_empty() {
            set("connect/endpoints", json_list(&self.connect))?;
        }
        if self.no_multicast {
            set("scouting/multicast/enabled", "false".into())?;
        }
        // Retry forever, quickly: the fault budget is 5 s from a restart to traffic flowing.
        set("connect/timeout_ms", "-1".into())?;
        set("connect/exit_on_failure", "false".into())?;
        set("connect/retry", "{ period_init_ms: 100, period_max_ms: 500, period_increase_factor: 2 }".into())?;
        set("transport/link/tx/lease", self.lease_ms.unwrap_or(SHORT_LEASE_MS).to_string())?;
        // Never close a link because a blocking publisher waited: `block` means wait (a dead
        // peer is still found by the lease). Zenoh's default closes it after 5 s. Its "-1, for
        // ever" panics in zenoh 1.10 (an Instant plus Duration::MAX overflows), so: ten years.
        set("transport/link/tx/queue/congestion_control/block/wait_before_close", BLOCK_FOR_EVER_US.to_string())?;
        Ok(config)
    }

    /// Opens a Zenoh session with [`config`](Network::config).
    ///
    /// ```no_run
    /// let session = ipcring_bridge::network::Network::default().open()?;
    /// # Ok::<(), ipcring_bridge::BridgeError>(())
    /// ```
    pub fn open(&self) -> Result<zenoh::Session> {
        use zenoh::Wait;
        zenoh::open(self.config()?).wait().map_err(BridgeError::zenoh)
    }
}

/// Ten years in microseconds: how long a blocking put may wait for room before Zenoh closes the
/// link.
const BLOCK_FOR_EVER_US: u64 = 10 * 365 * 24 * 3600 * 1_000_000;

/// The lease a bridge announces unless told otherwise: a dead or silent peer is found in 3 s.
pub const SHORT_LEASE_MS: u64 = 3_000;
fn json_list(items: &[String]) -> String {
    serde_json::to_string(items).expect("strings serialise")
}
