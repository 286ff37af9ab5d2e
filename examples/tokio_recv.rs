//! Receives from a named ring of any kind inside a tokio runtime, printing each message
//! followed by a newline (as `ipcring recv` does), until every producer is gone; exits 0.
//!
//! ```sh
//! ipcring create demo --kind mpmc            # or spsc, or broadcast
//! cargo run --release --example tokio_recv --features tokio -- demo &
//! printf 'one\ntwo\n' | ipcring send demo    # the producer leaving ends the stream
//! ```
//!
//! The task sleeps in the runtime while the ring is empty (no thread blocked, no spinning) and
//! is woken by the producer's ordinary send, whatever process or language it runs in. On a
//! broadcast ring it is a subscriber from the next message on; a lap under the overwrite policy
//! is reported on standard error (`lagged N`) and it goes on.

use std::error::Error;
use std::io::Write;
use std::process::ExitCode;

use ipcring::inspect::RingInfo;
use ipcring::readiness::Readiness;
use ipcring::tokio::AsyncReceiver;
use ipcring::{broadcast, mpmc, spsc, Builder, RecvError, RingKind};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let Some(name) = std::env::args().nth(1) else {
        eprintln!("usage: tokio_recv NAME (a ring in /dev/shm, of any kind)");
        return ExitCode::from(2);
    };
    match run(&name).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tokio_recv: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(name: &str) -> Result<(), Box<dyn Error>> {
    match RingInfo::open(name)?.kind {
        RingKind::Spsc => print_all(Builder::new(name).open::<spsc::Receiver>()?).await,
        RingKind::Mpmc => print_all(Builder::new(name).open::<mpmc::Receiver>()?).await,
        RingKind::Broadcast => print_all(Builder::new(name).open::<broadcast::Subscriber>()?).await,
        other => Err(format!("a ring of kind {other:?} is not supported here").into()),
    }
}

/// Prints every message until the producers are gone (`Disconnected`).
async fn print_all<R: ipcring::channel::Receiver + Readiness + Unpin>(receiver: R) -> Result<(), Box<dyn Error>> {
    let mut receiver = AsyncReceiver::new(receiver);
    let mut output = std::io::stdout().lock();
    let mut message = Vec::new();
    loop {
        match receiver.recv(&mut message).await {
            Ok(()) => {
                output.write_all(&message)?;
                output.write_all(b"\n")?;
                output.flush()?;
            }
            Err(RecvError::Disconnected) => return Ok(()),
            Err(RecvError::Lagged { count }) => eprintln!("lagged {count}"),
            Err(error) => return Err(error.into()),
        }
    }
}
