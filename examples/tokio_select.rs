//! One `tokio::select!` loop serving a ring and a Unix socket: the ring's readiness descriptor
//! sits in the same reactor as the socket, so one task waits on both without a thread per
//! source. The example makes both sources itself: a producer thread sends five messages into
//! an MPMC ring, and a client task writes five lines to the socket; the loop prints whatever
//! comes first and ends when both sources have ended.
//!
//! ```sh
//! cargo run --release --example tokio_select --features tokio
//! ```

use std::error::Error;
use std::time::Duration;

use ipcring::tokio::AsyncReceiver;
use ipcring::{mpmc, Builder, RecvError};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    // The ring: anonymous here, named (`Builder::new(name)`) between unrelated processes.
    let mut producer: mpmc::Sender = Builder::anonymous().slots(8).create()?;
    let descriptor = producer.fd().expect("an anonymous ring has a descriptor").try_clone_to_owned()?;
    let mut ring = AsyncReceiver::new(Builder::from_fd(descriptor).open::<mpmc::Receiver>()?);
    let sending = std::thread::spawn(move || {
        for number in 0..5 {
            std::thread::sleep(Duration::from_millis(30)); // SLEEP-OK: a slow producer, to interleave the sources
            producer.send(format!("ring message {number}").as_bytes())?;
        }
        Ok::<(), ipcring::SendError>(()) // dropping the sender ends the ring's stream
    });

    // The socket: a listener in a temporary directory, and a client that writes five lines.
    let directory = std::env::temp_dir().join(format!("ipcring-select-{}", std::process::id()));
    std::fs::create_dir_all(&directory)?;
    let path = directory.join("socket");
    let listener = UnixListener::bind(&path)?;
    let client = tokio::spawn({
        let path = path.clone();
        async move {
            let mut stream = UnixStream::connect(path).await?;
            for number in 0..5 {
                tokio::time::sleep(Duration::from_millis(45)).await; // SLEEP-OK: a slow client, to interleave
                stream.write_all(format!("socket line {number}\n").as_bytes()).await?;
            }
            Ok::<(), std::io::Error>(()) // closing the stream ends the socket's source
        }
    });
    let (connection, _) = listener.accept().await?;
    let mut lines = BufReader::new(connection).lines();

    let (mut ring_open, mut socket_open, mut message) = (true, true, Vec::new());
    while ring_open || socket_open {
        tokio::select! {
            received = ring.recv(&mut message), if ring_open => match received {
                Ok(()) => println!("ring:   {}", String::from_utf8_lossy(&message)),
                Err(RecvError::Disconnected) => ring_open = false,
                Err(error) => return Err(error.into()),
            },
            line = lines.next_line(), if socket_open => match line? {
                Some(line) => println!("socket: {line}"),
                None => socket_open = false,
            },
        }
    }
    sending.join().expect("the producer thread panicked")?;
    client.await??;
    std::fs::remove_dir_all(&directory)?;
    Ok(())
}
