//! Typed messages between two processes: a `#[repr(C)]` struct that derives `bytemuck::Pod`
//! travels through a named SPSC ring with no serialisation at all.
//!
//! The parent sends 1,000 readings: even ones written in place in the ring (`reserve_value`),
//! odd ones copied in (`send_value_timeout`). The child, this same program started again,
//! borrows even ones in place (`recv_value_ref_timeout`) and copies odd ones out
//! (`recv_value_timeout`), and checks every field. A message of the wrong size is refused, not
//! reinterpreted. (Each typed call also comes without a timeout, and non-blocking as `try_`.)
//!
//! ```sh
//! cargo run --release --example typed
//! ```

use std::error::Error;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use ipcring::prelude::*; // the traits that give endpoints their typed methods
use ipcring::{spsc, Builder, RecvError};

mod support;
use support::{ChildProcess, RemoveOnDrop};

/// One message. `Pod` requires `#[repr(C)]`, no padding (hence the explicit `reserved` field)
/// and fields that are `Pod` themselves; alignment must be at most 8 (ring payloads are 8-byte
/// aligned, so a `&Reading` can point straight into shared memory).
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Reading {
    sequence: u64,
    sensor: u32,
    reserved: u32,
    celsius: f64,
    samples: [u16; 4],
}

/// The reading the parent sends as number `sequence`, for the child to compare with.
fn expected(sequence: u64) -> Reading {
    Reading {
        sequence,
        sensor: (sequence % 7) as u32,
        reserved: 0,
        celsius: 20.0 + sequence as f64 / 8.0,
        samples: [sequence as u16, (sequence * 3) as u16, (sequence * 5) as u16, 0xBEEF],
    }
}

const READINGS: u64 = 1_000;
/// Longest any single blocking call may wait before the run counts as failed.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Longest the child may run.
const DEADLINE: Duration = Duration::from_secs(30);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.as_slice() {
        [] => parent(),
        [role, name] if role == "child" => child(name),
        _ => Err(format!("unexpected arguments {args:?}").into()),
    };
    if let Err(error) = result {
        let role = if args.is_empty() { "parent" } else { "child" };
        eprintln!("typed {role}: {error}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn parent() -> Result<(), Box<dyn Error>> {
    let name = format!("ipcring-example-typed-{}", std::process::id());
    let _remove = RemoveOnDrop(name.clone());
    // One reading per slot. The ring holds them all, so no send below waits for the child (and
    // `reserve_value`, which has no `_timeout` form, never blocks).
    let mut sender: spsc::Sender =
        Builder::new(&name).slots(READINGS.next_power_of_two()).slot_size(size_of::<Reading>() as u32).create()?;
    let mut child = ChildProcess::spawn(&["child", &name])?;

    for sequence in 0..READINGS {
        let reading = expected(sequence);
        if sequence % 2 == 0 {
            // In place: a zeroed `Reading` in the slot, written field by field, then published.
            let mut slot = sender.reserve_value::<Reading>()?;
            slot.sequence = reading.sequence;
            slot.sensor = reading.sensor;
            slot.celsius = reading.celsius;
            slot.samples = reading.samples;
            slot.commit()?;
        } else {
            // By copy: the value's bytes, as one message.
            sender.send_value_timeout(&reading, TIMEOUT)?;
        }
    }
    // A message that is not a `Reading`: the child must refuse it.
    sender.send_value_timeout(&0xDEAD_BEEF_u32, TIMEOUT)?;
    drop(sender); // no more messages: the child's next receive reports `Disconnected`
    child.wait(Instant::now() + DEADLINE)
}

fn child(name: &str) -> Result<(), Box<dyn Error>> {
    let mut receiver: spsc::Receiver = Builder::new(name).open()?;
    for sequence in 0..READINGS {
        let received = if sequence % 2 == 0 {
            // Borrowed: `reading` is a `&Reading` into the ring, valid until it is released.
            let reading = receiver.recv_value_ref_timeout::<Reading>(TIMEOUT)?;
            let copy = *reading;
            reading.release()?;
            copy
        } else {
            // Copied out.
            receiver.recv_value_timeout::<Reading>(TIMEOUT)?
        };
        if received != expected(sequence) {
            return Err(format!("reading {sequence}: got {received:?}").into());
        }
    }
    // Four bytes are not a `Reading`: refused with the sizes, and consumed.
    match receiver.recv_value_timeout::<Reading>(TIMEOUT) {
        Err(RecvError::SizeMismatch { len: 4, expected }) if expected == size_of::<Reading>() => {}
        other => return Err(format!("a 4-byte message gave {other:?}").into()),
    }
    match receiver.recv_value_timeout::<Reading>(TIMEOUT) {
        Err(RecvError::Disconnected) => {}
        other => return Err(format!("after the last message: {other:?}").into()),
    }
    println!("typed: {READINGS} readings of {} bytes checked field by field", size_of::<Reading>());
    Ok(())
}
