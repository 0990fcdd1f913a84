//! loom models of broadcast topics on the production code (`ring/broadcast.rs`): the seqlock
//! read against a publisher lapping it, Block mode gating a subscriber that joins while the
//! publisher runs, eviction racing a subscriber's late cursor store, a place reused after its
//! occupant was evicted, and a frame topic's read (length and bytes) against a lapping
//! publisher.
//!
//! Run with:
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test loom_broadcast
//! --target-dir target-loom`
#![cfg(loom)]

use loom::thread;
use shmchan::broadcast::{self, Overflow, Start, TryRecvError};

/// Whole values only: both words of a message are its number.
fn whole(v: [u64; 2]) -> u64 {
    assert_eq!(v[0], v[1], "a torn value was returned: {v:?}");
    v[0]
}

/// A ring of 2, three messages (so the third laps the first) while a subscriber reads once
/// concurrently, then drains: every value it gets is whole and in order, and what it received
/// plus what it was told it lost is exactly what was sent.
#[test]
fn seqlock_read_against_a_lapping_publisher() {
    loom::model(|| {
        let (mut tx, mut rx) =
            broadcast::loom_channel::<[u64; 2]>(2, Overflow::Overwrite, 1).unwrap();
        let publisher = thread::spawn(move || {
            for i in 0..3 {
                tx.send([i, i]).unwrap();
            }
            tx
        });
        let mut got = Vec::new();
        let mut lost = 0;
        let mut account = |r: Result<[u64; 2], TryRecvError>| match r {
            Ok(v) => got.push(whole(v)),
            Err(TryRecvError::Lagged(n)) => lost += n,
            Err(TryRecvError::Empty) => {}
            Err(e) => panic!("{e}"),
        };
        account(rx.try_recv());
        let tx = publisher.join().unwrap();
        loop {
            match rx.try_recv() {
                Err(TryRecvError::Empty) => break,
                r => account(r),
            }
        }
        drop(tx);
        assert!(got.windows(2).all(|w| w[0] < w[1]), "in order: {got:?}");
        assert_eq!(got.len() as u64 + lost, 3, "received {got:?}, lost {lost}");
    });
}

/// Block mode, a ring of 1: a subscriber joins (at the latest) while the publisher sends
/// two messages and the first subscriber takes one. A joiner the publisher has not counted yet
/// may be lapped by it: it then starts again at the latest message, and never reports a lag
/// (the lapped messages were published before it was counted); what it gets is whole and in
/// order. (Non-blocking calls, one each, then drained in turn: a model of blocking calls on
/// three threads took minutes.)
#[test]
fn block_mode_gates_a_subscriber_that_joins_meanwhile() {
    loom::model(|| {
        let (mut tx, mut first) =
            broadcast::loom_channel::<[u64; 2]>(1, Overflow::Block { evict_after: None }, 2)
                .unwrap();
        let reopen = tx.loom_reopener();
        let publisher = thread::spawn(move || {
            let sent: Vec<u64> = (0..2).filter(|&i| tx.try_send([i, i]).is_ok()).collect();
            (tx, sent)
        });
        let joiner = thread::spawn(move || {
            let mut rx = reopen
                .broadcast_subscriber::<[u64; 2]>(Start::Latest)
                .unwrap();
            let first = rx.try_recv();
            (rx, first)
        });
        let a = first.try_recv();
        let (tx, sent) = publisher.join().unwrap();
        let (mut rx, b) = joiner.join().unwrap();
        let mut got = Vec::new();
        for r in std::iter::once(b).chain(std::iter::from_fn(|| match rx.try_recv() {
            Err(TryRecvError::Empty) => None,
            r => Some(r),
        })) {
            match r {
                Ok(v) => got.push(whole(v)),
                Err(TryRecvError::Empty) => {}
                Err(e) => panic!("the joiner was {e}"),
            }
        }
        assert!(got.windows(2).all(|w| w[0] < w[1]), "in order: {got:?}");
        assert!(got.iter().all(|v| sent.contains(v)), "{got:?} of {sent:?}");
        if let Ok(v) = a {
            assert_eq!(
                Some(&whole(v)),
                sent.first(),
                "the first subscriber gets the first"
            );
        }
        drop(tx);
    });
}

/// Block mode, a ring of 1: the publisher evicts a subscriber while it is reading (its late
/// cursor store racing the eviction), then goes on without it. The subscriber never returns a
/// torn value, and once evicted says `Evicted` from then on.
#[test]
fn eviction_races_a_late_cursor_store() {
    loom::model(|| {
        let (mut tx, mut rx) =
            broadcast::loom_channel::<[u64; 2]>(1, Overflow::Block { evict_after: None }, 1)
                .unwrap();
        tx.send([0, 0]).unwrap();
        let subscriber = thread::spawn(move || {
            let r = rx.try_recv();
            if let Ok(v) = r {
                assert_eq!(whole(v), 0);
            }
            rx
        });
        tx.loom_evict(0);
        tx.send([1, 1]).unwrap(); // never waits for an evicted subscriber
        let mut rx = subscriber.join().unwrap();
        assert_eq!(rx.try_recv(), Err(TryRecvError::Evicted));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Evicted), "for good");
    });
}

/// A place reused: the subscriber that held it was evicted and left; the next one to take the
/// place (a new generation) is not taken for the evicted one, and the publisher waits for it
/// again (Block mode) while both run.
#[test]
fn a_place_reused_after_an_eviction_is_not_evicted() {
    loom::model(|| {
        let (mut tx, rx) =
            broadcast::loom_channel::<[u64; 2]>(1, Overflow::Block { evict_after: None }, 1)
                .unwrap();
        let reopen = tx.loom_reopener();
        tx.loom_evict(0);
        drop(rx);
        let mut next = reopen
            .broadcast_subscriber::<[u64; 2]>(Start::Latest)
            .unwrap();
        let publisher = thread::spawn(move || {
            for i in 0..2 {
                tx.send([i, i]).unwrap();
            }
        });
        let got: Vec<u64> = (0..2).map(|_| whole(next.recv().unwrap())).collect();
        publisher.join().unwrap();
        assert_eq!(
            got,
            [0, 1],
            "every message, none lost (the publisher waited)"
        );
    });
}

/// The lengths of the frames of the frame model, one per message number.
const FRAME_LENS: [usize; 3] = [3, 16, 9];

/// A whole frame only: `FRAME_LENS[i]` bytes, each `i + 1`, for message number `i`.
fn whole_frame(f: &[u8]) -> u64 {
    let i = f.first().map(|&b| usize::from(b).wrapping_sub(1));
    assert!(
        i.is_some_and(|i| i < FRAME_LENS.len()
            && f.len() == FRAME_LENS[i]
            && f.iter().all(|&b| usize::from(b) == i + 1)),
        "a torn frame was returned: {f:?}"
    );
    i.unwrap() as u64
}

/// A frame topic, a ring of 2 whose frames are at most 16 bytes, three frames of three
/// lengths (the third laps the first) while a subscriber reads once concurrently, then drains:
/// every frame it gets has the length and the bytes it was sent with (a read the publisher
/// laps is thrown away, its length word included), in order, and received plus lost is what
/// was sent.
#[test]
fn frame_read_against_a_lapping_publisher() {
    loom::model(|| {
        let (mut tx, mut rx) =
            broadcast::loom_frame_channel(2, Overflow::Overwrite, 1, 16).unwrap();
        let publisher = thread::spawn(move || {
            for (i, &len) in FRAME_LENS.iter().enumerate() {
                tx.send(&vec![i as u8 + 1; len]).unwrap();
            }
            tx
        });
        let mut got = Vec::new();
        let mut lost = 0;
        let mut account = |r: Result<Vec<u8>, TryRecvError>| match r {
            Ok(f) => got.push(whole_frame(&f)),
            Err(TryRecvError::Lagged(n)) => lost += n,
            Err(TryRecvError::Empty) => {}
            Err(e) => panic!("{e}"),
        };
        account(rx.try_recv());
        let tx = publisher.join().unwrap();
        loop {
            match rx.try_recv() {
                Err(TryRecvError::Empty) => break,
                r => account(r),
            }
        }
        drop(tx);
        assert!(got.windows(2).all(|w| w[0] < w[1]), "in order: {got:?}");
        assert_eq!(got.len() as u64 + lost, 3, "received {got:?}, lost {lost}");
    });
}
