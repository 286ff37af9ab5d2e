//! The crate's code over rings in shared memory, as in production (threads stand in for
//! processes). Not built under `cfg(loom)`, where there is no shared memory.
#![cfg(not(loom))]

use ipcring::{mpmc, spsc, Builder};
use ipcring_loom_model::{numbered, receive_all, send_numbered};

#[test]
fn every_message_arrives_in_order_over_an_spsc_ring() {
    let mut sender: spsc::Sender = Builder::anonymous().slots(2).slot_size(8).create().unwrap();
    let fd = sender.fd().unwrap().try_clone_to_owned().unwrap();
    let mut receiver: spsc::Receiver = Builder::from_fd(fd).open().unwrap();
    let producer = std::thread::spawn(move || send_numbered(&mut sender, 100));
    let received = receive_all(&mut receiver).unwrap();
    producer.join().unwrap().unwrap();
    assert_eq!(received, (0..100).map(|index| numbered(index).to_vec()).collect::<Vec<_>>());
}

#[test]
fn every_job_goes_to_exactly_one_worker_over_an_mpmc_ring() {
    let mut sender: mpmc::Sender = Builder::anonymous().slots(2).slot_size(8).create().unwrap();
    let fd = sender.fd().unwrap().try_clone_to_owned().unwrap();
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let mut receiver: mpmc::Receiver = Builder::from_fd(fd.try_clone().unwrap()).open().unwrap();
            std::thread::spawn(move || receive_all(&mut receiver).unwrap())
        })
        .collect();
    send_numbered(&mut sender, 100).unwrap();
    drop(sender);
    let mut received: Vec<Vec<u8>> = workers.into_iter().flat_map(|worker| worker.join().unwrap()).collect();
    received.sort();
    assert_eq!(received, (0..100).map(|index| numbered(index).to_vec()).collect::<Vec<_>>());
}
