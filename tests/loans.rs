//! Zero-copy typed messages: 4 KiB `#[repr(C)]` payloads written in place through loans and
//! read in place through references, between real processes over every backend (SPSC and
//! MPMC); abandoned loans; kills while holding a loan or a reference; timeouts; leaked
//! references; forked copies.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{Big, Cleanup, assert_gone, backends, spawn, unique_name};
use shmchan::{
    Options, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError, mpmc, spsc,
};

const SHORT: Duration = Duration::from_secs(10);
const LONG: Duration = Duration::from_secs(60);

#[test]
#[ignore = "entry point of the child processes the other tests start"]
fn child_main() {
    common::child_main();
}

/// 2,000 4 KiB messages written in place by a sender process (every seventh loan abandoned
/// first) and read here in place (every third one copied out instead): each intact, in order,
/// none of the abandoned ones, then the disconnect.
#[test]
fn spsc_big_messages_in_place_between_processes() {
    const N: u64 = 2_000;
    for backend in backends() {
        let name = unique_name("loans-spsc");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let opts = Options::new().backend(backend.clone()).capacity(16);
        let mut rx = spsc::Receiver::<Big>::create(&name, &opts).unwrap();
        let mut child = spawn(
            "loan-send",
            &name,
            &backend,
            &[("SHMCHAN_TEST_N", N.to_string())],
        );
        for seq in 0..N {
            if seq % 3 == 0 {
                let m = rx.recv_timeout(LONG).unwrap();
                assert!(m.is_intact() && m.seq == seq, "{backend}: copy of {seq}");
            } else {
                let m = rx.recv_ref_timeout(LONG).unwrap();
                assert!(m.is_intact(), "{backend}: message {seq} torn");
                assert_eq!(m.seq, seq, "{backend}: out of order, lost or abandoned");
            }
        }
        assert!(
            rx.recv_ref().is_err(),
            "{backend}: disconnect after the last"
        );
        child.assert_success(SHORT);
        drop(rx);
        assert_gone(&name, &backend);
    }
}

/// Two producer processes writing 4 KiB messages in place (a loan abandoned before every
/// seventh message), two consumers
/// here reading them in place, several held at once: every committed message exactly once,
/// intact, each producer's in order; never an abandoned one.
#[test]
fn mpmc_big_messages_in_place_between_processes() {
    const N: u64 = 1_000;
    for backend in backends() {
        let name = unique_name("loans-mpmc");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let opts = Options::new().backend(backend.clone()).capacity(16);
        let rx = mpmc::Receiver::<Big>::create(&name, &opts).unwrap();
        let mut producers: Vec<_> = (0..2u64)
            .map(|p| {
                let env = [
                    ("SHMCHAN_TEST_P", p.to_string()),
                    ("SHMCHAN_TEST_N", N.to_string()),
                ];
                let c = spawn("mpmc-loan-send", &name, &backend, &env);
                c.expect_line("READY", SHORT);
                c
            })
            .collect();
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let rx = rx.clone();
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    let mut last = HashMap::new();
                    loop {
                        // Two held at once when there are two to take.
                        let Ok(a) = rx.recv_ref_timeout(LONG) else {
                            break;
                        };
                        let b = rx.try_recv_ref().ok();
                        for m in std::iter::once(&a).chain(b.as_ref()) {
                            assert!(m.is_intact(), "torn message {}", m.seq);
                            let (p, i) = (m.seq >> 40, m.seq & ((1 << 40) - 1));
                            assert_ne!(m.seq, u64::MAX, "an abandoned loan was delivered");
                            if let Some(&prev) = last.get(&p) {
                                assert!(i > prev, "producer {p}: {i} after {prev}");
                            }
                            last.insert(p, i);
                            got.push((p, i));
                        }
                    }
                    got
                })
            })
            .collect();
        for p in &mut producers {
            p.assert_success(LONG);
        }
        drop(rx);
        let mut seen = HashMap::new();
        for c in consumers {
            for k in c.join().unwrap() {
                *seen.entry(k).or_insert(0) += 1;
            }
        }
        assert_eq!(seen.len() as u64, 2 * N, "{backend}: lost messages");
        assert!(seen.values().all(|&k| k == 1), "{backend}: delivered twice");
        assert_gone(&name, &backend);
    }
}

/// A sender killed while holding a written loan publishes nothing of it: the receiver gets
/// every committed message, then `Disconnected`, quickly.
#[test]
fn killed_sender_holding_a_loan_publishes_nothing() {
    for backend in backends() {
        let name = unique_name("loans-kill-tx");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let opts = Options::new().backend(backend.clone()).capacity(64);
        let mut rx = spsc::Receiver::<Big>::create(&name, &opts).unwrap();
        let env = [
            ("SHMCHAN_TEST_N", "20".to_string()),
            ("SHMCHAN_TEST_HANG", "1".to_string()),
        ];
        let mut child = spawn("loan-send", &name, &backend, &env);
        child.expect_line("LOANED", SHORT);
        child.kill9();
        for seq in 0..20 {
            let m = rx.recv_ref_timeout(SHORT).unwrap();
            assert!(m.is_intact() && m.seq == seq, "{backend}: message {seq}");
        }
        let t0 = Instant::now();
        assert_eq!(
            rx.recv_ref_timeout(SHORT).unwrap_err(),
            RecvTimeoutError::Disconnected,
            "{backend}: nothing of the loan"
        );
        assert!(t0.elapsed() < Duration::from_secs(2), "{backend}");
        child.reap();
        drop(rx);
        assert_gone(&name, &backend);
    }
}

/// A receiver killed while holding a reference: the sender, blocked on the full ring, gets
/// `Disconnected` (for a loan and a send alike).
#[test]
fn killed_receiver_holding_a_ref_disconnects_the_sender() {
    for backend in backends() {
        let name = unique_name("loans-kill-rx");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let opts = Options::new().backend(backend.clone()).capacity(4);
        let mut tx = spsc::Sender::<Big>::create(&name, &opts).unwrap();
        let mut child = spawn("ref-hang", &name, &backend, &[]);
        tx.send(Big::new(0)).unwrap();
        assert_eq!(child.expect_line("HOLDING", SHORT), "0");
        let mut sent = 1;
        while tx.try_send(Big::new(sent)).is_ok() {
            sent += 1;
        }
        assert_eq!(sent, 4, "{backend}: the held message keeps its slot");
        child.kill9();
        let t0 = Instant::now();
        assert!(
            matches!(tx.loan(), Err(SendError(()))),
            "{backend}: a loan on a dead receiver's ring"
        );
        assert!(tx.send(Big::new(2)).is_err(), "{backend}");
        assert!(t0.elapsed() < Duration::from_secs(2), "{backend}");
        child.reap();
        drop(tx);
        assert_gone(&name, &backend);
    }
}

/// MPMC: a consumer killed holding three references loses nothing: the next consumer to
/// attach is handed those three messages again (at least once), with the rest; the slots come
/// back (the ring fills and drains twice over), and no live consumer gets a message twice. A
/// producer killed holding a loan loses only that position: the others' messages go through.
#[test]
fn mpmc_kills_while_holding_refs_and_loans() {
    for backend in backends() {
        let name = unique_name("loans-mpmc-kill");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let opts = Options::new().backend(backend.clone()).capacity(8);
        let tx = mpmc::Sender::<Big>::create(&name, &opts).unwrap();
        let rx = mpmc::Receiver::<Big>::open(&name, &opts).unwrap();
        for seq in 0..8 {
            tx.send(Big::new(seq)).unwrap();
        }
        let mut holder = spawn(
            "mpmc-ref-hang",
            &name,
            &backend,
            &[("SHMCHAN_TEST_TAKE", "3".into())],
        );
        let held: Vec<u64> = holder
            .expect_line("HOLDING", SHORT)
            .split(' ')
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(held.len(), 3);
        holder.kill9();
        holder.reap();
        // The next consumer (a worker started in the killed one's place).
        let next = mpmc::Receiver::<Big>::open(&name, &opts).unwrap();
        let mut got: Vec<u64> = (0..8)
            .map(|_| next.recv_timeout(SHORT).unwrap())
            .inspect(|m| assert!(m.is_intact(), "{backend}: torn"))
            .map(|m| m.seq)
            .collect();
        assert!(
            held.iter().all(|s| got.contains(s)),
            "{backend}: held ones again"
        );
        // Two more laps through the ring: the dead holder's slots are reused.
        for seq in 8..24 {
            tx.send_timeout(Big::new(seq), SHORT).unwrap();
            got.push(rx.recv_timeout(SHORT).unwrap().seq);
        }
        got.sort_unstable();
        assert_eq!(got, (0..24).collect::<Vec<_>>(), "{backend}: exactly once");
        drop(next);

        // A producer killed holding a loan: its position is skipped once it is found dead.
        let mut loaner = spawn(
            "mpmc-loan-send",
            &name,
            &backend,
            &[
                ("SHMCHAN_TEST_P", "5".into()),
                ("SHMCHAN_TEST_N", "2".into()),
                ("SHMCHAN_TEST_HANG", "1".into()),
            ],
        );
        loaner.expect_line("LOANED", SHORT);
        loaner.kill9();
        loaner.reap();
        tx.send(Big::new(99)).unwrap();
        let after: Vec<u64> = (0..3)
            .map(|_| rx.recv_timeout(SHORT).unwrap())
            .inspect(|m| assert!(m.is_intact(), "{backend}: torn"))
            .map(|m| m.seq)
            .collect();
        assert_eq!(after, [5 << 40, (5 << 40) | 1, 99], "{backend}");
        assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Empty, "{backend}");
        drop((tx, rx));
        assert_gone(&name, &backend);
    }
}

/// Timeouts and `try_` forms: a full ring gives `Full`/`Timeout` for loans, an empty one
/// `Empty`/`Timeout` for references, on both kinds.
#[test]
fn loan_and_ref_timeouts() {
    let wait = Duration::from_millis(20);
    let (mut tx, mut rx) = spsc::channel::<Big>(1).unwrap();
    assert_eq!(rx.try_recv_ref().unwrap_err(), TryRecvError::Empty);
    let t0 = Instant::now();
    assert_eq!(
        rx.recv_ref_timeout(wait).unwrap_err(),
        RecvTimeoutError::Timeout
    );
    assert!(t0.elapsed() >= wait);
    tx.loan().unwrap().commit();
    assert!(matches!(tx.try_loan(), Err(TrySendError::Full(()))));
    assert!(matches!(
        tx.loan_timeout(wait),
        Err(SendTimeoutError::Timeout(()))
    ));
    drop(rx.recv_ref().unwrap());
    tx.loan_timeout(wait).unwrap().commit();
    drop(rx);
    assert!(matches!(
        tx.loan_timeout(wait),
        Err(SendTimeoutError::Disconnected(()))
    ));

    let (tx, rx) = mpmc::channel::<Big>(1).unwrap();
    assert_eq!(rx.try_recv_ref().unwrap_err(), TryRecvError::Empty);
    assert_eq!(
        rx.recv_ref_timeout(wait).unwrap_err(),
        RecvTimeoutError::Timeout
    );
    let loan = tx.loan().unwrap();
    assert!(matches!(tx.try_loan(), Err(TrySendError::Full(()))));
    assert!(matches!(
        tx.loan_timeout(wait),
        Err(SendTimeoutError::Timeout(()))
    ));
    drop(loan); // given up: the slot comes back at once
    let mut loan = tx.loan_timeout(wait).unwrap();
    loan.fill(7);
    loan.commit();
    assert_eq!(rx.recv_ref_timeout(wait).unwrap().seq, 7);
    drop(tx);
    assert_eq!(
        rx.recv_ref_timeout(wait).unwrap_err(),
        RecvTimeoutError::Disconnected
    );
}

/// A reference leaked with `mem::forget` is not received again, and its slot comes back
/// with the next receive, even in a ring of 1 where no next message could come to free it.
#[test]
fn a_leaked_ref_is_not_received_twice() {
    let (tx, mut rx) = spsc::channel::<u64>(2).unwrap();
    tx.send(1).unwrap();
    tx.send(2).unwrap();
    std::mem::forget(rx.recv_ref().unwrap());
    assert_eq!(tx.try_send(3), Err(TrySendError::Full(3)), "still held");
    assert_eq!(*rx.recv_ref().unwrap(), 2);
    tx.send_timeout(3, SHORT).unwrap();
    tx.send_timeout(4, SHORT).unwrap();
    assert_eq!(rx.try_iter().collect::<Vec<_>>(), [3, 4]);

    let (tx, mut rx) = spsc::channel::<u64>(1).unwrap();
    tx.send(1).unwrap();
    std::mem::forget(rx.recv_ref().unwrap());
    assert_eq!(tx.try_send(2), Err(TrySendError::Full(2)), "still held");
    assert_eq!(
        rx.try_recv(),
        Err(TryRecvError::Empty),
        "not received twice"
    );
    tx.send_timeout(2, SHORT).unwrap(); // the empty receive gave the slot back
    assert_eq!(rx.recv_timeout(SHORT), Ok(2));
}

/// The copying path of a large payload and the in-place path carry the same bytes: values
/// sent by copy are read in place and the other way round, with the `try_` and `_timeout`
/// forms, through a ring that wraps many times.
#[test]
fn large_copies_and_loans_agree() {
    let (mut tx, mut rx) = spsc::channel::<Big>(4).unwrap();
    let t = std::thread::spawn(move || {
        for seq in 0..3_000u64 {
            match seq % 4 {
                0 => tx.send(Big::new(seq)).unwrap(),
                1 => tx.send_timeout(Big::new(seq), LONG).unwrap(),
                2 => loop {
                    match tx.try_send(Big::new(seq)) {
                        Ok(()) => break,
                        Err(TrySendError::Full(v)) => assert_eq!(v, Big::new(seq)),
                        Err(e) => panic!("{e:?}"),
                    }
                },
                _ => {
                    let mut loan = tx.loan().unwrap();
                    loan.fill(seq);
                    loan.commit();
                }
            }
        }
    });
    for seq in 0..3_000u64 {
        let m = match seq % 3 {
            0 => rx.recv().unwrap(),
            1 => rx.recv_timeout(LONG).unwrap(),
            _ => *rx.recv_ref().unwrap(),
        };
        assert!(m.is_intact() && m.seq == seq, "message {seq}");
    }
    t.join().unwrap();
    assert!(rx.try_recv().is_err());
}

/// In a forked child, copies of a loan and a reference change nothing in the parent's rings
/// (SPSC and MPMC).
#[test]
fn forked_copies_of_loans_and_refs_do_nothing() {
    let name = unique_name("loans-fork");
    let backend = shmchan::Backend::Posix;
    let _c1 = Cleanup(format!("{name}-a"), backend.clone());
    let _c2 = Cleanup(format!("{name}-b"), backend.clone());
    let mut child = spawn("loan-fork", &name, &backend, &[]);
    child.expect_line("OK", SHORT);
    child.assert_success(SHORT);
}
