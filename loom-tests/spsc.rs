//! loom models of the SPSC ring, the futex doorbell, disconnection and the header handshake,
//! running the production code (`src/sync.rs` swaps in loom's atomics, the heap region stands
//! in for shared memory, and the futex is modelled with loom's mutex and condition variable, so
//! a lost wake-up is a deadlock loom reports).
//!
//! Run with:
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test loom_spsc
//! --target-dir target-loom`
#![cfg(loom)]

use loom::thread;
use shmchan::{TryRecvError, TrySendError, spsc};

/// FIFO order, no loss or duplication, wrap-around at capacity 1 and 2, and the disconnect seen
/// only after the last message. The receiver blocks on an empty ring and the sender on a full
/// one, so both doorbells must wake their sleeper (a lost wake-up is a loom deadlock).
#[test]
fn blocking_fifo_both_directions_and_disconnect_after_last() {
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

/// Batches: a 3-message `send_slice` through a ring of 2 (so it publishes in at least two
/// parts, waiting for room in between) against a receiver taking 2-message `recv_slice`s and
/// then single `recv`s: every message once, in order, the disconnect after the last. The
/// per-slot stamps of a batch and its single position/doorbell update are what is checked.
#[test]
fn batches_fifo_and_disconnect_after_last() {
    loom::model(|| {
        let (tx, rx) = spsc::channel::<u32>(2).unwrap();
        let t = thread::spawn(move || {
            tx.send_slice(&[0, 1, 2]).unwrap();
        });
        let mut got = Vec::new();
        let mut buf = [u32::MAX; 2];
        while got.len() < 2 {
            let n = rx.recv_slice(&mut buf).unwrap();
            got.extend_from_slice(&buf[..n]);
        }
        while let Ok(v) = rx.recv() {
            got.push(v);
        }
        assert_eq!(
            got,
            [0, 1, 2],
            "every message once, in order, before Disconnected"
        );
        t.join().unwrap();
    });
}

/// `try_` results agree with the ring: `Full` only with `capacity` messages in flight, `Empty`
/// only with none, `Disconnected` only after the sender left and the ring drained.
#[test]
fn try_results_consistent() {
    loom::model(|| {
        let (tx, rx) = spsc::channel::<u32>(1).unwrap();
        let t = thread::spawn(move || {
            let mut sent = 0;
            while sent < 2 {
                match tx.try_send(sent) {
                    Ok(()) => sent += 1,
                    Err(TrySendError::Full(_)) => thread::yield_now(),
                    Err(TrySendError::Disconnected(_)) => panic!("receiver is alive"),
                }
            }
        });
        let mut got = Vec::new();
        loop {
            match rx.try_recv() {
                Ok(v) => got.push(v),
                Err(TryRecvError::Empty) => thread::yield_now(),
                Err(TryRecvError::Disconnected) => break,
            }
        }
        assert_eq!(
            got,
            [0, 1],
            "every message once, in order, before Disconnected"
        );
        t.join().unwrap();
    });
}

/// A receiver asleep on an empty ring is woken by the sender's drop.
#[test]
fn sender_drop_wakes_sleeping_receiver() {
    loom::model(|| {
        let (tx, rx) = spsc::channel::<u32>(1).unwrap();
        let t = thread::spawn(move || drop(tx));
        assert!(rx.recv().is_err());
        t.join().unwrap();
    });
}

/// A sender asleep on a full ring is woken by the receiver's drop and gets its value back.
#[test]
fn receiver_drop_wakes_sleeping_sender() {
    loom::model(|| {
        let (tx, rx) = spsc::channel::<u32>(1).unwrap();
        tx.send(1).unwrap();
        let t = thread::spawn(move || drop(rx));
        assert_eq!(tx.send(2).unwrap_err().into_inner(), 2);
        t.join().unwrap();
    });
}

/// An opener racing the creator never reads an unready header: it waits for "ready", then
/// validates what the creator wrote (a stale read would fail validation), and the channel works.
#[test]
fn opener_racing_creator_sees_a_complete_header() {
    loom::model(|| {
        let (create, open) = spsc::loom_racing_pair::<u32>(2);
        let opener = thread::spawn(move || {
            let rx = open().expect("the opener must see the header the creator published");
            assert_eq!(rx.capacity(), 2);
            rx.recv()
        });
        let tx = create();
        tx.send(7).unwrap();
        assert_eq!(opener.join().unwrap(), Ok(7));
    });
}

/// Loans and references over a ring of 1 and 2: a committed loan arrives whole, a dropped one
/// publishes nothing and its slot carries the next message, a `Ref` holds its slot (the sender
/// waits for room until it drops), and the disconnect comes after the last message. A
/// payload of two words, so a read racing a write would be torn (and loom's slot tracking
/// reports it).
#[test]
fn loans_commit_abandon_and_refs_hold_their_slot() {
    for cap in [1usize, 2] {
        loom::model(move || {
            let (mut tx, mut rx) = spsc::channel::<[u32; 2]>(cap).unwrap();
            let t = thread::spawn(move || {
                let mut a = tx.loan().unwrap();
                *a = [1, 1];
                a.commit();
                let mut abandoned = tx.loan().unwrap();
                *abandoned = [9, 9];
                drop(abandoned);
                let mut b = tx.loan().unwrap();
                b[0] = 2;
                b[1] = 2;
                b.commit();
            });
            {
                let first = rx.recv_ref().unwrap();
                assert_eq!(*first, [1, 1]);
            }
            assert_eq!(*rx.recv_ref().unwrap(), [2, 2], "capacity {cap}");
            assert!(rx.recv_ref().is_err(), "disconnect after the last message");
            t.join().unwrap();
        });
    }
}

/// A `Ref` dropped frees its slot for the sender's next message, and a copying `recv` after a
/// `Ref` takes the next message, not the same one again.
#[test]
fn refs_and_copies_interleave_in_order() {
    loom::model(|| {
        let (tx, mut rx) = spsc::channel::<u32>(1).unwrap();
        let t = thread::spawn(move || {
            for i in 0..3 {
                tx.send(i).unwrap();
            }
        });
        assert_eq!(*rx.recv_ref().unwrap(), 0);
        assert_eq!(rx.recv(), Ok(1));
        assert_eq!(*rx.recv_ref().unwrap(), 2);
        assert!(rx.recv().is_err());
        t.join().unwrap();
    });
}

/// A receiver restarted while the sender is parked on a full ring: the message the old one
/// left in the ring goes to the next receiver, and the parked send either goes through to it
/// (woken by its receive) or reports the disconnect of the window between the two. Nothing is
/// lost, duplicated or left asleep (a lost wake-up is a loom deadlock).
#[test]
fn receiver_reattaches_while_sender_parks_on_full_ring() {
    loom::model(|| {
        let (tx, rx) = spsc::channel::<u32>(1).unwrap();
        let reopen = rx.loom_reopener();
        tx.send(1).unwrap(); // the ring is full
        let t = thread::spawn(move || tx.send(2).is_ok()); // parks
        drop(rx);
        let rx2 = reopen.spsc_receiver::<u32>().unwrap();
        let got: Vec<u32> = rx2.iter().collect(); // ends when the sender is gone and drained
        let sent = t.join().unwrap();
        let want: &[u32] = if sent { &[1, 2] } else { &[1] };
        assert_eq!(got, want, "sent 2: {sent}");
    });
}

/// A receiver killed while asleep in `recv`: the first send after that asks the kernel before
/// ringing its doorbell and is refused with its value, leaving nothing in the ring. With a new
/// receiver attaching meanwhile (in the dead one's place), the message is either refused (and
/// not in the ring) or sent (and received), and the new receiver is never taken for the dead
/// one: the sender's probe of the dead occupant cannot mark its successor dead.
#[test]
fn send_to_a_receiver_killed_asleep_is_refused_first() {
    loom::model(|| {
        shmchan::loom_explore_probes(true);
        let (tx, rx) = spsc::channel::<u32>(2).unwrap();
        rx.loom_sleep_and_die();
        assert_eq!(tx.try_send(7), Err(TrySendError::Disconnected(7)));
        assert_eq!(tx.len(), 0, "nothing was put in the ring");
    });
    loom::model(|| {
        shmchan::loom_explore_probes(true);
        let (tx, rx) = spsc::channel::<u32>(2).unwrap();
        let reopen = rx.loom_reopener();
        rx.loom_sleep_and_die();
        let t = thread::spawn(move || {
            let sent = tx.send(7).is_ok();
            (tx, sent)
        });
        let rx2 = reopen.spsc_receiver::<u32>().unwrap();
        let (tx, sent) = t.join().unwrap();
        assert_eq!(
            tx.try_send(8),
            Ok(()),
            "the new receiver is attached and alive"
        );
        drop(tx);
        let got: Vec<u32> = rx2.iter().collect();
        let want: &[u32] = if sent { &[7, 8] } else { &[8] };
        assert_eq!(got, want, "sent 7: {sent}");
    });
}

/// A sender killed after publishing a message and before moving the shared `tail`, while the
/// receiver takes messages: the next sender (in its place) takes over after what it
/// published, whether or not the receiver has taken it yet (then `head` is ahead of `tail`),
/// so nothing is overwritten or lost, and the order holds.
#[test]
fn a_new_sender_takes_over_after_what_a_killed_one_published() {
    loom::model(|| {
        let (tx, rx) = spsc::channel::<u32>(2).unwrap();
        let reopen = tx.loom_reopener();
        tx.send(1).unwrap();
        tx.loom_die_mid_send(2);
        let receiver = thread::spawn(move || {
            let mut got = Vec::new();
            while let Ok(v) = rx.try_recv() {
                got.push(v);
            }
            (rx, got)
        });
        let tx2 = reopen.spsc_sender::<u32>().unwrap();
        let (rx, mut got) = receiver.join().unwrap();
        tx2.send(3).unwrap();
        drop(tx2);
        got.extend(rx.iter());
        assert_eq!(got, [1, 2, 3]);
    });
}
