//! loom models of async waiting (`src/reactor.rs`) on the production code: a future arms the
//! doorbell (`prepare`: flag, fence, re-check) and registers `(seq, value, waker)` with the
//! reactor, whose `futex_waitv` is modelled by the futex model of `wait.rs` (check and sleep
//! under one lock, so a lost wake-up is a deadlock loom reports). The reactor loop runs on a
//! loom thread of its own (`shmchan::loom_run`); the futures run under `loom::future::block_on`,
//! whose waker parks the thread, so a task that is never woken is a deadlock too.
//!
//! The models keep every handle alive until the reactor loop has stopped: under loom the loop
//! reads the registered words itself, where production hands them only to the kernel.
//!
//! Run with:
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test loom_async
//! --target-dir target-loom`
#![cfg(loom)]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Waker};

use loom::future::block_on;
use loom::thread;
use shmchan::spsc;

/// Run `body` with the reactor loop on its own thread, stopping it afterwards.
fn with_reactor(body: impl FnOnce()) {
    let reactor = thread::spawn(shmchan::loom_run);
    body();
    shmchan::loom_stop();
    reactor.join().unwrap();
}

/// An async receiver on an empty ring is woken by each send (the sender publishes, fences and
/// sees the flag the future set before its re-check), gets the messages in order, then the
/// disconnect; nothing stays registered.
#[test]
fn recv_async_woken_by_send() {
    loom::model(|| {
        let (tx, mut rx) = spsc::channel::<u32>(1).unwrap();
        let tx = loom::sync::Arc::new(std::sync::Mutex::new(Some(tx)));
        with_reactor(|| {
            let t = {
                let tx = tx.clone();
                thread::spawn(move || {
                    let tx = tx.lock().unwrap().take().unwrap();
                    tx.send(1).unwrap();
                    // Dropped here: the disconnect rings the bell too.
                })
            };
            assert_eq!(block_on(rx.recv_async()), Ok(1));
            assert!(block_on(rx.recv_async()).is_err(), "then the disconnect");
            t.join().unwrap();
            assert_eq!(shmchan::registered_waiters(), 0);
        });
        drop(rx);
    });
}

/// An async sender on a full ring is woken by the receive that makes room.
#[test]
fn send_async_woken_by_recv() {
    loom::model(|| {
        let (mut tx, rx) = spsc::channel::<u32>(1).unwrap();
        tx.send(1).unwrap();
        let rx = loom::sync::Arc::new(rx);
        with_reactor(|| {
            let t = {
                let rx = rx.clone();
                thread::spawn(move || {
                    assert_eq!(rx.recv(), Ok(1));
                    assert_eq!(rx.recv(), Ok(2));
                })
            };
            assert_eq!(block_on(tx.send_async(2)), Ok(()));
            t.join().unwrap();
        });
        drop(tx);
    });
}

/// A future polled once (perhaps registered) and dropped takes nothing and leaves nothing
/// registered; the next receive gets the message.
#[test]
fn dropped_future_loses_nothing() {
    loom::model(|| {
        let (tx, mut rx) = spsc::channel::<u32>(1).unwrap();
        with_reactor(|| {
            let t = thread::spawn(move || {
                tx.send(5).unwrap();
                tx // kept: no disconnect in this model
            });
            {
                let mut fut = pin!(rx.recv_async());
                let mut cx = Context::from_waker(Waker::noop());
                if let std::task::Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                    assert_eq!(v, Ok(5));
                    let _tx = t.join().unwrap();
                    return;
                }
            }
            assert_eq!(
                shmchan::registered_waiters(),
                0,
                "the dropped future deregistered"
            );
            assert_eq!(block_on(rx.recv_async()), Ok(5));
            let _tx = t.join().unwrap();
        });
        drop(rx);
    });
}
