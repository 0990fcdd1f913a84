//! loom models of the byte ring of variable-size frames (`src/ring/frame.rs`, the production
//! code through `shmchan::frame`): FIFO with frames that meet the end of the ring (a padding
//! record, skipped), a loan committed in part and a loan abandoned, and a frame held by the
//! receiver while the sender waits for its room.
//!
//! Run with:
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test loom_frame
//! --target-dir target-loom`
#![cfg(loom)]

use loom::thread;
use shmchan::frame;

/// Three frames through a ring of 64 bytes: records of 32 and 48 bytes cannot sit side by
/// side, so the second goes behind a padding record at the start of the ring. Blocking on
/// both sides (a lost wake-up is a loom deadlock); every frame whole and in order; then the
/// disconnect.
#[test]
fn frames_in_order_across_the_wrap() {
    loom::model(|| {
        let (mut tx, mut rx) = frame::channel(64).unwrap();
        let t = thread::spawn(move || {
            tx.send(&[1; 8]).unwrap();
            tx.send(&[2; 24]).unwrap();
            tx.send(&[3; 3]).unwrap();
        });
        assert_eq!(&*rx.recv().unwrap(), &[1; 8]);
        assert_eq!(&*rx.recv().unwrap(), &[2; 24]);
        assert_eq!(&*rx.recv().unwrap(), &[3; 3]);
        assert!(rx.recv().is_err(), "disconnect after the last frame");
        t.join().unwrap();
    });
}

/// A loan committed in part publishes exactly its prefix; a loan dropped publishes nothing,
/// and the next frame takes its place.
#[test]
fn loans_commit_a_prefix_or_nothing() {
    loom::model(|| {
        let (mut tx, mut rx) = frame::channel(64).unwrap();
        let t = thread::spawn(move || {
            let mut loan = tx.loan(16).unwrap();
            loan[..4].copy_from_slice(&[4; 4]);
            loan.commit(4);
            let mut abandoned = tx.loan(8).unwrap();
            abandoned.fill(9);
            let _ = abandoned; // never committed: publishes nothing
            tx.send(&[5; 2]).unwrap();
        });
        assert_eq!(&*rx.recv().unwrap(), &[4; 4]);
        assert_eq!(&*rx.recv().unwrap(), &[5; 2]);
        assert!(rx.recv().is_err());
        t.join().unwrap();
    });
}

/// The receiver holds a frame while the sender, its ring full, waits for room: the room comes
/// when the frame is dropped, and the sender's next frame is intact.
#[test]
fn held_frame_holds_its_room() {
    loom::model(|| {
        let (mut tx, mut rx) = frame::channel(64).unwrap();
        tx.send(&[6; 40]).unwrap(); // 16 + 48 bytes: the whole ring
        let t = thread::spawn(move || {
            tx.send(&[7; 8]).unwrap(); // waits for the first frame's room
        });
        {
            let held = rx.recv().unwrap();
            assert_eq!(&*held, &[6; 40]);
        }
        assert_eq!(&*rx.recv().unwrap(), &[7; 8]);
        t.join().unwrap();
    });
}
