//! SPSC between real processes, over every backend: streaming, back-pressure before the
//! receiver attaches, disconnection by drop and by `kill -9`, and parked receivers waking.

mod common;

use std::time::{Duration, Instant};

use common::{Cleanup, Msg, assert_gone, backends, spawn, unique_name};
use shmchan::{Options, SendTimeoutError, TrySendError, spsc};

const N: u64 = 100_000;
const LONG: Duration = Duration::from_secs(60);
const SHORT: Duration = Duration::from_secs(10);

#[test]
#[ignore = "entry point of the child processes the other tests start"]
fn child_main() {
    common::child_main();
}

/// The parent creates the sender, a child opens the receiver: 100k messages arrive intact, in
/// order, none lost or duplicated, then the receiver sees the disconnect.
#[test]
fn stream_parent_creates_sender() {
    for backend in backends() {
        let name = unique_name("stream-tx");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let opts = Options::new().backend(backend.clone()).capacity(256);
        let tx = spsc::Sender::<Msg>::create(&name, &opts).unwrap();
        let mut child = spawn(
            "recv",
            &name,
            &backend,
            &[("SHMCHAN_TEST_N", N.to_string())],
        );
        child.expect_line("READY", SHORT);
        for i in 0..N {
            tx.send(Msg::new(i)).unwrap();
        }
        drop(tx);
        assert_eq!(child.expect_line("GOT", LONG), N.to_string(), "{backend}");
        child.assert_success(SHORT);
        assert_gone(&name, &backend);
    }
}

/// A child creates the channel as sender; the parent opens the receiver and checks the stream.
#[test]
fn stream_child_creates_sender() {
    for backend in backends() {
        let name = unique_name("stream-rx");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let opts = Options::new().backend(backend.clone());
        let mut child = spawn(
            "send",
            &name,
            &backend,
            &[
                ("SHMCHAN_TEST_N", N.to_string()),
                ("SHMCHAN_TEST_CREATE", "1".into()),
            ],
        );
        child.expect_line("READY", SHORT);
        let rx = spsc::Receiver::<Msg>::open(&name, &opts).unwrap();
        let mut next = 0;
        while let Ok(m) = rx.recv() {
            assert!(m.is_intact(), "torn {m:?} on {backend}");
            assert_eq!(m.seq, next, "order on {backend}");
            next += 1;
        }
        assert_eq!(next, N, "{backend}");
        child.assert_success(SHORT);
        drop(rx);
        assert_gone(&name, &backend);
    }
}

/// The parent creates the *receiver*, a child opens the sender.
#[test]
fn stream_parent_creates_receiver() {
    for backend in backends() {
        let name = unique_name("stream-prx");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let opts = Options::new().backend(backend.clone()).capacity(64);
        let rx = spsc::Receiver::<Msg>::create(&name, &opts).unwrap();
        let mut child = spawn(
            "send",
            &name,
            &backend,
            &[("SHMCHAN_TEST_N", N.to_string())],
        );
        let got: Vec<Msg> = rx.iter().collect();
        assert_eq!(got.len() as u64, N, "{backend}");
        assert!(
            got.iter()
                .enumerate()
                .all(|(i, m)| m.seq == i as u64 && m.is_intact())
        );
        child.assert_success(SHORT);
        drop(rx);
        assert_gone(&name, &backend);
    }
}

/// A sender fills the ring before any receiver exists: `try_send` reports `Full` (not
/// disconnected), and a receiver attaching later gets every message.
#[test]
fn sender_fills_ring_before_receiver_attaches() {
    for backend in backends() {
        let name = unique_name("prefill");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let opts = Options::new().backend(backend.clone()).capacity(64);
        let tx = spsc::Sender::<Msg>::create(&name, &opts).unwrap();
        for i in 0..64 {
            tx.try_send(Msg::new(i)).unwrap();
        }
        assert!(tx.is_full());
        assert_eq!(
            tx.try_send(Msg::new(64)),
            Err(TrySendError::Full(Msg::new(64)))
        );
        assert_eq!(
            tx.send_timeout(Msg::new(64), Duration::from_millis(20)),
            Err(SendTimeoutError::Timeout(Msg::new(64)))
        );
        let total = 10_000u64;
        let mut child = spawn(
            "recv",
            &name,
            &backend,
            &[("SHMCHAN_TEST_N", total.to_string())],
        );
        for i in 64..total {
            tx.send(Msg::new(i)).unwrap();
        }
        drop(tx);
        assert_eq!(
            child.expect_line("GOT", LONG),
            total.to_string(),
            "{backend}"
        );
        child.assert_success(SHORT);
        assert_gone(&name, &backend);
    }
}

/// `kill -9` of the sender (left a zombie, not reaped): the receiver gets everything it sent,
/// then `Disconnected`, in well under a second.
#[test]
fn killed_sender_is_disconnected_after_drain() {
    for backend in backends() {
        let name = unique_name("kill-tx");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let opts = Options::new().backend(backend.clone()).capacity(2048);
        let rx = spsc::Receiver::<Msg>::create(&name, &opts).unwrap();
        let sent = 1000u64;
        let mut child = spawn(
            "send",
            &name,
            &backend,
            &[
                ("SHMCHAN_TEST_N", sent.to_string()),
                ("SHMCHAN_TEST_HANG", "1".into()),
            ],
        );
        child.expect_line("SENT", SHORT);
        child.kill9(); // not reaped: a zombie must count as dead
        let t0 = Instant::now();
        let mut got = 0;
        loop {
            match rx.recv_timeout(SHORT) {
                Ok(m) => {
                    assert_eq!(m, Msg::new(got));
                    got += 1;
                }
                Err(e) => {
                    assert!(e.is_disconnected(), "{backend}: {e}");
                    break;
                }
            }
        }
        assert_eq!(got, sent, "{backend}");
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "{backend}: took {:?}",
            t0.elapsed()
        );
        eprintln!(
            "{backend}: drained and saw the kill -9 after {:?}",
            t0.elapsed()
        );
        child.reap();
        drop(rx);
        assert_gone(&name, &backend);
    }
}

/// A sender blocked on a full ring gets `Disconnected` when the receiver is killed.
#[test]
fn killed_receiver_unblocks_sender() {
    for backend in backends() {
        let name = unique_name("kill-rx");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let opts = Options::new().backend(backend.clone()).capacity(16);
        let tx = spsc::Sender::<Msg>::create(&name, &opts).unwrap();
        let mut child = spawn(
            "recv-hang",
            &name,
            &backend,
            &[("SHMCHAN_TEST_N", "4".into())],
        );
        child.expect_line("READY", SHORT);
        for i in 0..20 {
            tx.send(Msg::new(i)).unwrap(); // 4 taken by the child, 16 fill the ring
        }
        child.expect_line("TOOK", SHORT);
        assert!(tx.is_full());
        let blocked = std::thread::spawn(move || (tx.send(Msg::new(99)), Instant::now(), tx));
        std::thread::sleep(Duration::from_millis(200));
        assert!(!blocked.is_finished(), "send on a full ring returned early");
        let killed_at = Instant::now();
        child.kill9();
        let (r, done, tx) = blocked.join().unwrap();
        assert!(
            r.is_err(),
            "{backend}: send must fail with the receiver dead"
        );
        assert!(done - killed_at < Duration::from_secs(2));
        assert_eq!(
            r.unwrap_err().into_inner(),
            Msg::new(99),
            "the value comes back"
        );
        assert!(tx.try_send(Msg::new(100)).unwrap_err().is_disconnected());
        child.reap();
        drop(tx);
        assert_gone(&name, &backend);
    }
}

/// A receiver that drops its handle (process exits normally) disconnects a blocked sender.
#[test]
fn dropped_receiver_unblocks_sender() {
    for backend in backends() {
        let name = unique_name("drop-rx");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let opts = Options::new().backend(backend.clone()).capacity(8);
        let tx = spsc::Sender::<Msg>::create(&name, &opts).unwrap();
        let mut child = spawn(
            "recv-hang",
            &name,
            &backend,
            &[
                ("SHMCHAN_TEST_N", "3".into()),
                ("SHMCHAN_TEST_EXIT", "1".into()),
            ],
        );
        let mut result = Ok(());
        for i in 0..1000 {
            result = tx.send_timeout(Msg::new(i), SHORT);
            if result.is_err() {
                break;
            }
        }
        assert!(
            matches!(result, Err(SendTimeoutError::Disconnected(_))),
            "{backend}: {result:?}"
        );
        child.assert_success(SHORT);
        drop(tx);
        assert_gone(&name, &backend);
    }
}

/// A receiver parked in `recv()` for a second wakes when a message arrives, and used little
/// CPU while it waited.
#[test]
fn parked_receiver_wakes_and_sleeps_cheaply() {
    for backend in backends() {
        let name = unique_name("park");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let opts = Options::new().backend(backend.clone());
        let tx = spsc::Sender::<Msg>::create(&name, &opts).unwrap();
        let mut child = spawn("recv-park", &name, &backend, &[]);
        child.expect_line("READY", SHORT);
        std::thread::sleep(Duration::from_secs(1));
        tx.send(Msg::new(7)).unwrap();
        let report = child.expect_line("CPU_US", SHORT);
        child.assert_success(SHORT);
        let cpu_us: u64 = report.split_whitespace().next().unwrap().parse().unwrap();
        eprintln!("{backend}: receiver blocked in recv: CPU_US {report}");
        // Blocked for ~1 s; spinning would cost ~1,000,000 µs. Waking every 40 ms to look for
        // a dead peer costs a few hundred µs. Allow a generous 100 ms.
        assert!(
            cpu_us < 100_000,
            "{backend}: blocked receiver used {cpu_us} µs of CPU ({report})"
        );
        drop(tx);
        assert_gone(&name, &backend);
    }
}

/// The sender is killed and the receiver is dropped without ever calling `recv`: the dropped
/// handle reaps the dead peer, so it is the last one and removes the name.
#[test]
fn dropping_the_survivor_of_a_killed_peer_removes_the_name() {
    for backend in backends() {
        let name = unique_name("survivor");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let opts = Options::new().backend(backend.clone());
        let rx = spsc::Receiver::<Msg>::create(&name, &opts).unwrap();
        let mut child = spawn(
            "send",
            &name,
            &backend,
            &[
                ("SHMCHAN_TEST_N", "5".into()),
                ("SHMCHAN_TEST_HANG", "1".into()),
            ],
        );
        child.expect_line("SENT", SHORT);
        child.kill9();
        child.reap();
        drop(rx);
        assert_gone(&name, &backend);
    }
}

/// Every handle of a channel was killed, so nobody removed its name: `create` on that name
/// reclaims it (a restarted service must not be locked out by its own crash), while a channel
/// with a live endpoint is never taken over.
#[test]
fn create_reclaims_a_channel_whose_handles_were_all_killed() {
    for backend in backends() {
        let name = unique_name("reclaim");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let opts = Options::new().backend(backend.clone());
        let mut child = spawn(
            "send",
            &name,
            &backend,
            &[
                ("SHMCHAN_TEST_CREATE", "1".into()),
                ("SHMCHAN_TEST_HANG", "1".into()),
            ],
        );
        child.expect_line("SENT", SHORT);
        // Alive: not reclaimed.
        let err = spsc::Receiver::<Msg>::create(&name, &opts).unwrap_err();
        assert!(
            matches!(err, shmchan::Error::AlreadyExists { .. }),
            "{backend}: {err:?}"
        );
        child.kill9();
        child.reap();
        assert!(
            common::exists(&name, &backend),
            "a killed process removes nothing"
        );
        let rx = spsc::Receiver::<Msg>::create(&name, &opts).unwrap();
        let tx = spsc::Sender::<Msg>::open(&name, &opts).unwrap();
        tx.send(Msg::new(1)).unwrap();
        assert_eq!(
            rx.recv().unwrap(),
            Msg::new(1),
            "{backend}: the new channel works"
        );
        drop((tx, rx));
        assert_gone(&name, &backend);
    }
}

/// Both sides park on the futex for every message (WaitStrategy::Park), 2,000 round trips:
/// every wake-up must arrive. A lost one costs a 40 ms nap (the liveness poll), so losing even
/// a few percent would blow the time bound; a healthy run takes well under a second.
#[test]
fn park_pingpong_loses_no_wakeups() {
    for backend in backends() {
        let name = unique_name("parkpp");
        let (ping, pong) = (format!("{name}-ping"), format!("{name}-pong"));
        let _c1 = Cleanup(ping.clone(), backend.clone());
        let _c2 = Cleanup(pong.clone(), backend.clone());
        let opts = Options::new()
            .backend(backend.clone())
            .wait_strategy(shmchan::WaitStrategy::Park);
        let tx = spsc::Sender::<Msg>::create(&ping, &opts).unwrap();
        let rx = spsc::Receiver::<Msg>::create(&pong, &opts).unwrap();
        let mut child = spawn("echo-park", &name, &backend, &[]);
        child.expect_line("READY", SHORT);
        let t0 = Instant::now();
        for i in 0..2000 {
            tx.send(Msg::new(i)).unwrap();
            assert_eq!(rx.recv_timeout(SHORT), Ok(Msg::new(i)), "{backend}");
        }
        let took = t0.elapsed();
        eprintln!("{backend}: 2000 parked round trips took {took:?}");
        assert!(
            took < Duration::from_secs(8),
            "{backend}: 2000 parked round trips took {took:?}"
        );
        drop((tx, rx));
        child.assert_success(SHORT);
        assert_gone(&ping, &backend);
        assert_gone(&pong, &backend);
    }
}
