//! A work queue across processes: one producer, three worker processes, over MPMC rings.
//!
//! The parent creates two named MPMC rings, `jobs` and `results`, and starts this same program
//! again three times as workers. It feeds 10,000 jobs into `jobs`; each job goes to exactly one
//! worker, which computes it and sends the answer back through `results` (every worker sends
//! into the same ring). The parent checks that every job was done exactly once and correctly.
//!
//! ```sh
//! cargo run --release --example worker_pool
//! ```

use std::error::Error;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use ipcring::prelude::*; // the traits that give endpoints their typed methods
use ipcring::{mpmc, Builder, RecvError, SendError};

mod support;
use support::{ChildProcess, RemoveOnDrop};

/// A job: count the Collatz steps from `input` down to 1.
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Job {
    id: u64,
    input: u64,
}

/// A worker's answer to job `id`.
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Done {
    id: u64,
    steps: u64,
    worker: u64,
}

const JOBS: u64 = 10_000;
const WORKERS: u64 = 3;
/// Longest any single blocking call may wait before the run counts as failed.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Longest the workers may run.
const DEADLINE: Duration = Duration::from_secs(30);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.as_slice() {
        [] => parent(),
        [role, index, jobs, results] if role == "worker" => match index.parse() {
            Ok(index) => worker(index, jobs, results),
            Err(_) => Err(format!("bad worker index {index:?}").into()),
        },
        _ => Err(format!("unexpected arguments {args:?}").into()),
    };
    if let Err(error) = result {
        let role = if args.is_empty() { "parent".to_string() } else { args[..args.len().min(2)].join(" ") };
        eprintln!("worker_pool {role}: {error}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn parent() -> Result<(), Box<dyn Error>> {
    let start = Instant::now();
    let jobs_name = format!("ipcring-example-jobs-{}", std::process::id());
    let results_name = format!("ipcring-example-results-{}", std::process::id());
    let _remove = (RemoveOnDrop(jobs_name.clone()), RemoveOnDrop(results_name.clone()));
    let mut jobs: mpmc::Sender = Builder::new(&jobs_name).slots(256).slot_size(size_of::<Job>() as u32).create()?;
    let mut results: mpmc::Receiver =
        Builder::new(&results_name).slots(256).slot_size(size_of::<Done>() as u32).create()?;
    let mut workers = Vec::new();
    for index in 0..WORKERS {
        workers.push(ChildProcess::spawn(&["worker", &index.to_string(), &jobs_name, &results_name])?);
    }

    // Feed the jobs from a second thread while this one collects the results. Doing one and
    // then the other could fill both rings: the workers would wait for room in `results` and
    // the parent for room in `jobs`, until the timeouts.
    let feeder = std::thread::spawn(move || -> Result<(), SendError> {
        for id in 0..JOBS {
            jobs.send_value_timeout(&Job { id, input: id + 1 }, TIMEOUT)?;
        }
        Ok(()) // `jobs` drops here: once the queue is empty, workers see `Disconnected`
    });

    let mut done_by: Vec<Option<u64>> = vec![None; JOBS as usize];
    for _ in 0..JOBS {
        let done = results.recv_value_timeout::<Done>(TIMEOUT)?;
        let Some(slot) = done_by.get_mut(done.id as usize) else {
            return Err(format!("worker {} answered job {}, which was never sent", done.worker, done.id).into());
        };
        if let Some(first) = slot.replace(done.worker) {
            return Err(format!("job {} done twice, by workers {first} and {}", done.id, done.worker).into());
        }
        if done.steps != collatz_steps(done.id + 1) {
            return Err(format!("job {}: worker {} answered {}", done.id, done.worker, done.steps).into());
        }
    }
    feeder.join().expect("the feeder thread panicked")?;
    let deadline = start + DEADLINE;
    for worker in &mut workers {
        worker.wait(deadline)?;
    }
    // JOBS answers to distinct jobs: every job was done exactly once. The workers are gone, and
    // they left nothing more behind.
    match results.try_recv_value::<Done>() {
        Err(RecvError::Disconnected | RecvError::Empty) => {}
        Ok(extra) => return Err(format!("an extra answer to job {}", extra.id).into()),
        Err(error) => return Err(error.into()),
    }
    let per_worker: Vec<usize> =
        (0..WORKERS).map(|worker| done_by.iter().filter(|&&by| by == Some(worker)).count()).collect();
    println!("worker_pool: {JOBS} jobs each done exactly once by {WORKERS} worker processes {per_worker:?}");
    Ok(())
}

/// A worker process: takes jobs until the producer is gone and the queue is empty.
fn worker(index: u64, jobs_name: &str, results_name: &str) -> Result<(), Box<dyn Error>> {
    let mut jobs: mpmc::Receiver = Builder::new(jobs_name).open()?;
    let mut results: mpmc::Sender = Builder::new(results_name).open()?;
    loop {
        let job = match jobs.recv_value_timeout::<Job>(TIMEOUT) {
            Ok(job) => job,
            Err(RecvError::Disconnected) => return Ok(()), // no producer left, queue empty
            Err(error) => return Err(error.into()),
        };
        let done = Done { id: job.id, steps: collatz_steps(job.input), worker: index };
        results.send_value_timeout(&done, TIMEOUT)?;
    }
}

/// The work itself: steps of the Collatz sequence from `n` down to 1.
fn collatz_steps(mut n: u64) -> u64 {
    let mut steps = 0;
    while n != 1 {
        n = if n % 2 == 0 { n / 2 } else { 3 * n + 1 };
        steps += 1;
    }
    steps
}
