//! loom models of the SPSC ring and its doorbell, running the production code.
//!
//! Run with:
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test loom_spsc
//! --target-dir target-loom`
#![cfg(loom)]

use loom::thread;
use shmchan::{TryRecvError, TrySendError, spsc};

/// FIFO order, no loss, no duplication, wrap-around at capacity 1 and 2, disconnect seen after
/// the last message; the receiver blocks (doorbell) and must be woken.
#[test]
fn blocking_fifo_and_disconnect() {
    for cap in [1usize, 2] {
        loom::model(move || {
            let (tx, rx) = spsc::channel::<u32>(cap).unwrap();
            let t = thread::spawn(move || {
                for i in 0..3 {
                    tx.send(i).unwrap();
                }
            });
            for i in 0..3 {
                assert_eq!(rx.recv(), Ok(i));
            }
            assert!(rx.recv().is_err(), "disconnect after the last message");
            t.join().unwrap();
        });
    }
}

/// `try_` results agree with the ring: `Full` only when `capacity` messages are in flight,
/// `Empty` only when none is, and nothing is lost across wrap-around.
#[test]
fn try_results_consistent() {
    loom::model(|| {
        let (tx, rx) = spsc::channel::<u32>(1).unwrap();
        let t = thread::spawn(move || {
            let mut sent = 0;
            while sent < 2 {
                match tx.try_send(sent) {
                    Ok(()) => sent += 1,
                    Err(TrySendError::Full(_)) => loom::thread::yield_now(),
                    Err(TrySendError::Disconnected(_)) => panic!("receiver is alive"),
                }
            }
        });
        let mut got = Vec::new();
        while got.len() < 2 {
            match rx.try_recv() {
                Ok(v) => got.push(v),
                Err(TryRecvError::Empty) => loom::thread::yield_now(),
                Err(TryRecvError::Disconnected) => break,
            }
        }
        assert_eq!(got, [0, 1]);
        t.join().unwrap();
    });
}
