//! Every payload size takes the same paths to the same results. `send` hands values of up to
//! 256 bytes to its waiting loop by value and larger ones by reference (two code paths, for
//! speed), so each check here runs at 8 B, 64 B, 256 B, 264 B and 4 KiB, on both channel
//! kinds: blocking sends through a tiny ring arrive intact and in order, a timed-out or
//! disconnected send hands back exactly the value it was given.

use std::time::Duration;

use shmchan::{Pod, SendTimeoutError, TrySendError, mpmc, spsc};

const N: u64 = 5_000;
const WAIT: Duration = Duration::from_millis(20);

/// A payload of `W` words; every word derives from the sequence number, so a torn or
/// mixed-up value is seen.
fn msg<const W: usize>(seq: u64) -> [u64; W] {
    std::array::from_fn(|i| seq.wrapping_mul(31).wrapping_add(i as u64))
}

/// Both kinds, one payload size: stream `N` through a ring of 2 (the sender blocks in its
/// waiting loop most of the time), then fill it, time out, disconnect.
fn check<const W: usize>()
where
    [u64; W]: Pod,
{
    let (tx, rx) = spsc::channel::<[u64; W]>(2).unwrap();
    let t = std::thread::spawn(move || {
        for i in 0..N {
            tx.send(msg::<W>(i)).unwrap();
        }
        tx
    });
    for i in 0..N {
        assert_eq!(rx.recv().unwrap(), msg::<W>(i), "{W} words, message {i}");
    }
    let tx = t.join().unwrap();
    tx.send(msg::<W>(1)).unwrap();
    tx.send(msg::<W>(2)).unwrap();
    assert_eq!(
        tx.send_timeout(msg::<W>(3), WAIT),
        Err(SendTimeoutError::Timeout(msg::<W>(3))),
        "{W} words"
    );
    assert_eq!(
        tx.try_send(msg::<W>(4)),
        Err(TrySendError::Full(msg::<W>(4)))
    );
    drop(rx);
    assert_eq!(tx.send(msg::<W>(5)).unwrap_err().into_inner(), msg::<W>(5));
    assert_eq!(
        tx.send_timeout(msg::<W>(6), WAIT),
        Err(SendTimeoutError::Disconnected(msg::<W>(6)))
    );

    let (tx, rx) = mpmc::channel::<[u64; W]>(2).unwrap();
    let tx2 = tx.clone();
    let t = std::thread::spawn(move || {
        for i in 0..N {
            tx2.send(msg::<W>(i)).unwrap();
        }
    });
    for i in 0..N {
        assert_eq!(
            rx.recv().unwrap(),
            msg::<W>(i),
            "mpmc, {W} words, message {i}"
        );
    }
    t.join().unwrap();
    tx.send(msg::<W>(1)).unwrap();
    tx.send(msg::<W>(2)).unwrap();
    assert_eq!(
        tx.send_timeout(msg::<W>(3), WAIT),
        Err(SendTimeoutError::Timeout(msg::<W>(3))),
        "mpmc, {W} words"
    );
    drop(rx);
    assert_eq!(tx.send(msg::<W>(5)).unwrap_err().into_inner(), msg::<W>(5));
}

#[test]
fn eight_bytes() {
    check::<1>();
}

#[test]
fn sixty_four_bytes() {
    check::<8>();
}

#[test]
fn two_hundred_fifty_six_bytes_the_largest_passed_by_value() {
    check::<32>();
}

#[test]
fn two_hundred_sixty_four_bytes_the_smallest_passed_by_reference() {
    check::<33>();
}

#[test]
fn four_kibibytes() {
    check::<512>();
}
