//! Broadcast topics with real processes on every backend: four subscribers of a million
//! messages (each received value in its place, received + lost == sent), a ring of 8 hammered
//! for a second (nothing torn), Block mode (nothing lost with a slow subscriber; a killed one
//! dropped, a stopped one evicted and told so), where subscribers start, thousands of joins and
//! leaves (a third by `kill -9`) while the publisher streams, a publisher killed and replaced,
//! forked copies, and hostile bytes.
// Test helpers are not crate code checked by loom; plain std atomics are right here.
#![allow(clippy::disallowed_types)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Cleanup, Msg, Peer, assert_gone, backends, spawn, unique_name};
use shmchan::broadcast::{Overflow, Publisher, RecvError, Start, Subscriber, TryRecvError};
use shmchan::{Backend, Error, Options};

const SHORT: Duration = Duration::from_secs(10);

#[test]
#[ignore = "run as a child process by the other tests"]
fn child_main() {
    common::child_main();
}

fn subscriber(name: &str, backend: &Backend, env: &[(&str, String)]) -> Peer {
    let child = spawn("bc-sub", name, backend, env);
    child.expect_line("READY", SHORT);
    child
}

/// Four subscriber processes, a million 16-byte messages through a ring of 1024 in Overwrite
/// mode (the publisher never waits, so they lag): each value is whole and exactly where the
/// count of values and `Lagged(n)` says, and received + lost == sent for every subscriber.
#[test]
fn four_subscribers_of_a_million_messages_account_for_every_one() {
    for backend in backends() {
        let name = unique_name("bc-million");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let opts = Options::new().backend(backend.clone()).capacity(1024);
        let mut tx = Publisher::<Msg>::create(&name, &opts).unwrap();
        let subs: Vec<Peer> = (0..4)
            .map(|_| subscriber(&name, &backend, &[("SHMCHAN_TEST_FIRST", "0".into())]))
            .collect();
        tx.wait_for_subscribers(4, SHORT).unwrap();
        let sent = 1_000_000u64;
        for i in 0..sent {
            tx.send(Msg::new(i)).unwrap();
        }
        drop(tx);
        for mut s in subs {
            let r = common::sub_report(&s);
            assert_eq!(r.torn, 0, "{backend}: torn values");
            assert_eq!(r.received + r.lagged, sent, "{backend}: {r:?}");
            assert_eq!(r.next, sent, "{backend}: {r:?}");
            assert!(r.received > 0, "{backend}: {r:?}");
            s.assert_success(SHORT);
            eprintln!("{backend}: received {} lost {}", r.received, r.lagged);
        }
        assert_gone(&name, &backend);
    }
}

/// A ring of 8 hammered by the publisher for a second while two subscriber processes read:
/// every value they get is whole (a read the publisher laps is thrown away, never returned).
#[test]
fn a_small_ring_hammered_for_a_second_never_tears() {
    for backend in backends() {
        let name = unique_name("bc-hammer");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let opts = Options::new().backend(backend.clone()).capacity(8);
        let mut tx = Publisher::<Msg>::create(&name, &opts).unwrap();
        let subs: Vec<Peer> = (0..2)
            .map(|_| subscriber(&name, &backend, &[("SHMCHAN_TEST_FIRST", "0".into())]))
            .collect();
        tx.wait_for_subscribers(2, SHORT).unwrap();
        let until = Instant::now() + Duration::from_secs(1);
        let mut sent = 0u64;
        while Instant::now() < until {
            for _ in 0..1000 {
                tx.send(Msg::new(sent)).unwrap();
                sent += 1;
            }
        }
        drop(tx);
        for mut s in subs {
            let r = common::sub_report(&s);
            assert_eq!(r.torn, 0, "{backend}: torn values");
            assert_eq!(r.received + r.lagged, sent, "{backend}: {r:?}");
            s.assert_success(SHORT);
            eprintln!(
                "{backend}: {sent} sent, {} received, {} lost",
                r.received, r.lagged
            );
        }
    }
}

fn block(evict_after: Option<Duration>) -> Overflow {
    Overflow::Block { evict_after }
}

/// Block mode: a fast and a slow subscriber process each receive all 20,000 messages in order,
/// none lost (the publisher waits for the slow one).
#[test]
fn block_mode_loses_nothing_with_a_slow_subscriber() {
    for backend in backends() {
        let name = unique_name("bc-block");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let opts = Options::new()
            .backend(backend.clone())
            .capacity(64)
            .overflow(block(None));
        let mut tx = Publisher::<Msg>::create(&name, &opts).unwrap();
        let env = |slow: u64| {
            vec![
                ("SHMCHAN_TEST_FIRST", "0".to_string()),
                ("SHMCHAN_TEST_BLOCK", "1".into()),
                ("SHMCHAN_TEST_SLOW_US", slow.to_string()),
            ]
        };
        let subs = [
            subscriber(&name, &backend, &env(0)),
            subscriber(&name, &backend, &env(500)),
        ];
        tx.wait_for_subscribers(2, SHORT).unwrap();
        let sent = 20_000;
        for i in 0..sent {
            tx.send_timeout(Msg::new(i), SHORT).unwrap();
        }
        drop(tx);
        for mut s in subs {
            let r = common::sub_report(&s);
            assert_eq!((r.received, r.lagged, r.torn), (sent, 0, 0), "{backend}");
            assert!(!r.evicted, "{backend}: no eviction without evict_after");
            s.assert_success(SHORT);
        }
    }
}

/// Block mode: the publisher waits for a subscriber that reads nothing; killed with SIGKILL,
/// that subscriber is dropped by the kernel's word at the publisher's next probe (40 ms) and
/// the publisher goes on.
#[test]
fn block_mode_goes_on_when_the_slowest_subscriber_is_killed() {
    for backend in backends() {
        let name = unique_name("bc-kill");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let opts = Options::new()
            .backend(backend.clone())
            .capacity(16)
            .overflow(block(None));
        let mut tx = Publisher::<Msg>::create(&name, &opts).unwrap();
        let go = std::env::temp_dir().join(format!("{name}-go"));
        let mut stuck = spawn(
            "bc-stall",
            &name,
            &backend,
            &[("SHMCHAN_TEST_GO", go.display().to_string())],
        );
        stuck.expect_line("READY", SHORT);
        tx.wait_for_subscribers(1, SHORT).unwrap();
        for i in 0..16 {
            tx.send(Msg::new(i)).unwrap(); // fills the ring
        }
        assert!(
            matches!(
                tx.try_send(Msg::new(16)),
                Err(shmchan::TrySendError::Full(_))
            ),
            "{backend}: the stalled subscriber holds the publisher"
        );
        // The publisher waits in a send; the subscriber is killed while it does.
        let (killed_tx, killed_rx) = std::sync::mpsc::channel::<Instant>();
        let sender = std::thread::spawn(move || {
            tx.send_timeout(Msg::new(16), SHORT).unwrap();
            let done = Instant::now();
            done - killed_rx.recv().unwrap()
        });
        std::thread::sleep(Duration::from_millis(100));
        stuck.kill9();
        killed_tx.send(Instant::now()).unwrap();
        let waited = sender.join().unwrap();
        stuck.reap();
        eprintln!("{backend}: the publisher went on {waited:?} after the kill");
        assert!(waited < Duration::from_secs(1), "{backend}: {waited:?}");
    }
}

/// Block mode with `evict_after` 100 ms: a subscriber stopped with SIGSTOP is evicted and the
/// publisher goes on; continued (SIGCONT), its next receive says `Evicted`.
#[test]
fn block_mode_evicts_a_stopped_subscriber_and_tells_it() {
    for backend in backends() {
        let name = unique_name("bc-evict");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let evict = Duration::from_millis(100);
        let opts = Options::new()
            .backend(backend.clone())
            .capacity(16)
            .overflow(block(Some(evict)));
        let mut tx = Publisher::<Msg>::create(&name, &opts).unwrap();
        let go = std::env::temp_dir().join(format!("{name}-go"));
        let _ = std::fs::remove_file(&go);
        let mut stuck = spawn(
            "bc-stall",
            &name,
            &backend,
            &[
                ("SHMCHAN_TEST_GO", go.display().to_string()),
                ("SHMCHAN_TEST_EVICT_MS", "100".into()),
            ],
        );
        stuck.expect_line("READY", SHORT);
        tx.wait_for_subscribers(1, SHORT).unwrap();
        // SAFETY: plain system call on our own child.
        unsafe { libc::kill(stuck.pid() as i32, libc::SIGSTOP) };
        for i in 0..16 {
            tx.send(Msg::new(i)).unwrap();
        }
        let t0 = Instant::now();
        tx.send_timeout(Msg::new(16), SHORT).unwrap();
        let waited = t0.elapsed();
        eprintln!("{backend}: the publisher went on {waited:?} after the ring filled");
        assert!(
            waited >= evict - Duration::from_millis(5),
            "{backend}: {waited:?}"
        );
        assert!(waited < Duration::from_secs(2), "{backend}: {waited:?}");
        assert_eq!(
            tx.subscriber_count(),
            0,
            "{backend}: the evicted one is not counted"
        );
        std::fs::write(&go, b"").unwrap();
        // SAFETY: plain system call on our own child.
        unsafe { libc::kill(stuck.pid() as i32, libc::SIGCONT) };
        assert_eq!(stuck.expect_line("GOT", SHORT), "Err(Evicted)", "{backend}");
        stuck.assert_success(SHORT);
        let _ = std::fs::remove_file(&go);
    }
}

/// Where a subscriber starts: the next message, the last `n`, or all the ring holds.
#[test]
fn subscribers_start_at_the_latest_with_history_or_at_the_oldest() {
    for backend in backends() {
        let name = unique_name("bc-start");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let opts = Options::new().backend(backend.clone()).capacity(16);
        let mut tx = Publisher::<Msg>::create(&name, &opts).unwrap();
        for i in 0..40 {
            tx.send(Msg::new(i)).unwrap();
        }
        let seqs = |start: Start| -> Vec<u64> {
            let mut rx = Subscriber::<Msg>::open_from(&name, start, &opts).unwrap();
            std::iter::from_fn(|| rx.try_recv().ok().map(|m| m.seq)).collect()
        };
        assert_eq!(seqs(Start::Latest), Vec::<u64>::new(), "{backend}");
        assert_eq!(seqs(Start::History(3)), [37, 38, 39], "{backend}");
        assert_eq!(
            seqs(Start::History(100)),
            (25..40).collect::<Vec<_>>(),
            "{backend}"
        );
        assert_eq!(
            seqs(Start::Oldest),
            (25..40).collect::<Vec<_>>(),
            "{backend}"
        );
        // A subscriber of another process, late, with history.
        let mut late = subscriber(
            &name,
            &backend,
            &[
                ("SHMCHAN_TEST_START", "history:5".into()),
                ("SHMCHAN_TEST_FIRST", "35".into()),
                ("SHMCHAN_TEST_N", "10".into()),
            ],
        );
        for i in 40..45 {
            tx.send(Msg::new(i)).unwrap();
        }
        let r = common::sub_report(&late);
        assert_eq!((r.received, r.lagged, r.next), (10, 0, 45), "{backend}");
        late.assert_success(SHORT);
    }
}

/// 10,000 joins and leaves (a third of them by `kill -9` of a subscribed process) on a topic
/// of 64 places while the publisher streams: no place is lost (64 subscribers can join at
/// the end), and the publisher never stalls (Overwrite mode).
#[test]
fn ten_thousand_joins_and_leaves_lose_no_place() {
    for (backend, joins) in [(Backend::Posix, 10_000u64), (Backend::SysV, 1_500)] {
        churn(backend, joins);
    }
    let dir = common::file_dir();
    churn(dir.backend(), 1_500);
}

fn churn(backend: Backend, joins: u64) {
    let name = unique_name("bc-churn");
    let _cleanup = Cleanup(name.clone(), backend.clone());
    let opts = Options::new()
        .backend(backend.clone())
        .capacity(256)
        .max_subscribers(64);
    let tx = Publisher::<Msg>::create(&name, &opts).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let stop = stop.clone();
        let mut tx = tx;
        std::thread::spawn(move || {
            let (mut sent, mut worst) = (0u64, Duration::ZERO);
            let mut last = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                tx.send(Msg::new(sent)).unwrap();
                sent += 1;
                let now = Instant::now();
                worst = worst.max(now - last);
                last = now;
                if sent % 1024 == 0 {
                    std::thread::sleep(Duration::from_micros(200));
                    last = Instant::now();
                }
            }
            (tx, sent, worst)
        })
    };
    let per = joins.div_ceil(3);
    let churners: Vec<Peer> = (0..3)
        .map(|_| {
            spawn(
                "bc-churn",
                &name,
                &backend,
                &[("SHMCHAN_TEST_N", per.to_string())],
            )
        })
        .collect();
    let (mut total, mut kills) = (0, 0);
    for mut c in churners {
        let done: Vec<u64> = c
            .expect_line("DONE", Duration::from_secs(120))
            .split(' ')
            .map(|s| s.parse().unwrap())
            .collect();
        total += done[0];
        kills += done[1];
        c.assert_success(SHORT);
    }
    stop.store(true, Ordering::Relaxed);
    let (tx, sent, worst) = publisher.join().unwrap();
    eprintln!(
        "{backend}: {total} joins ({kills} left by kill -9) while {sent} were published; \
         the longest send took {worst:?}"
    );
    assert_eq!(total, per * 3, "{backend}: every join succeeded");
    assert!(
        worst < Duration::from_millis(100),
        "{backend}: the publisher stalled {worst:?}"
    );
    // No place lost: all 64 can be taken again, and the publisher counts them.
    let all: Vec<_> = (0..64)
        .map(|_| Subscriber::<Msg>::open(&name, &opts).unwrap())
        .collect();
    assert_eq!(tx.subscriber_count(), 64, "{backend}");
    assert!(matches!(
        Subscriber::<Msg>::open(&name, &opts),
        Err(Error::EndpointTaken { .. })
    ));
    drop(all);
    assert_eq!(tx.subscriber_count(), 0, "{backend}");
}

/// A publisher process killed, and a new one (this process) taking the topic over: a
/// subscriber attached throughout reads the old publisher's messages, `Disconnected`, then
/// the new publisher's, with the same handle; nothing lost or twice.
#[test]
fn a_killed_publisher_is_replaced_and_subscribers_go_on() {
    for backend in backends() {
        let name = unique_name("bc-takeover");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let opts = Options::new().backend(backend.clone()).capacity(256);
        let mut old = spawn(
            "bc-pub",
            &name,
            &backend,
            &[
                ("SHMCHAN_TEST_N", "0".into()),
                ("SHMCHAN_TEST_CAP", "256".into()),
            ],
        );
        old.expect_line("SENT", SHORT);
        let mut rx = Subscriber::<Msg>::open(&name, &opts).unwrap();
        old.kill9();
        old.reap();
        // The old publisher is gone: a second one may not exist while one lives, but this
        // one takes over.
        let mut pub1 = spawn(
            "bc-pub",
            &name,
            &backend,
            &[("SHMCHAN_TEST_N", "100".into())],
        );
        pub1.expect_line("SENT", SHORT);
        assert!(matches!(
            Publisher::<Msg>::create(&name, &opts),
            Err(Error::InUse { .. })
        ));
        let first: Vec<u64> = (0..100)
            .map(|_| rx.recv_timeout(SHORT).unwrap().seq)
            .collect();
        assert_eq!(first, (0..100).collect::<Vec<_>>(), "{backend}");
        pub1.kill9();
        pub1.reap();
        assert_eq!(rx.recv(), Err(RecvError::Disconnected), "{backend}");
        let mut tx = Publisher::<Msg>::create(&name, &opts).unwrap();
        for i in 100..150 {
            tx.send(Msg::new(i)).unwrap();
        }
        let next: Vec<u64> = (0..50).map(|_| rx.recv().unwrap().seq).collect();
        assert_eq!(next, (100..150).collect::<Vec<_>>(), "{backend}");
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty), "{backend}");
        drop((tx, rx));
        assert_gone(&name, &backend);
    }
}

/// A forked child's copies of a publisher and a subscriber refuse to act.
#[test]
fn forked_copies_refuse() {
    let name = unique_name("bc-fork");
    let backend = Backend::Posix;
    let _cleanup = Cleanup(name.clone(), backend.clone());
    let opts = Options::new();
    let mut tx = Publisher::<Msg>::create(&name, &opts).unwrap();
    let mut rx = Subscriber::<Msg>::open(&name, &opts).unwrap();
    tx.send(Msg::new(1)).unwrap();
    // SAFETY: the child only calls the handles (no lock of the parent's is taken: no thread
    // of ours holds one) and `_exit`s.
    match unsafe { libc::fork() } {
        0 => {
            let ok = tx.send(Msg::new(2)).is_err()
                && rx.try_recv() == Err(TryRecvError::Disconnected)
                && tx.subscriber_count() == 0;
            // SAFETY: leaves the child at once.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) }
        }
        -1 => panic!("fork failed"),
        pid => {
            let mut status = 0;
            // SAFETY: waits for our own child.
            assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
            assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
        }
    }
    assert_eq!(rx.try_recv().unwrap().seq, 1);
    assert_eq!(
        rx.try_recv(),
        Err(TryRecvError::Empty),
        "the child sent nothing"
    );
    assert_eq!(tx.subscriber_count(), 1);
}

/// Random bytes written over a live topic's header, control line, subscriber lines and slots
/// (a hostile peer with write access) while subscriber processes read and this process
/// publishes: errors or odd values, never a crash, a hang or a torn value passed as whole.
#[test]
fn hostile_bytes_over_a_live_topic_crash_nothing() {
    use std::os::unix::fs::FileExt;
    let name = unique_name("bc-hostile");
    let backend = Backend::Posix;
    let _cleanup = Cleanup(name.clone(), backend.clone());
    let opts = Options::new().capacity(64);
    let mut tx = Publisher::<Msg>::create(&name, &opts).unwrap();
    let subs: Vec<Peer> = (0..2)
        .map(|_| subscriber(&name, &backend, &[("SHMCHAN_TEST_LAX", "1".into())]))
        .collect();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .read(true)
        .open(std::path::Path::new("/dev/shm").join(&name))
        .unwrap();
    let len = file.metadata().unwrap().len();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let until = Instant::now() + Duration::from_secs(1);
    let mut sent = 0u64;
    while Instant::now() < until {
        for _ in 0..100 {
            let _ = tx.try_send(Msg::new(sent));
            sent += 1;
        }
        // Control line, subscriber lines, tail, slots; never the identity (an opener's check).
        let off = match next() % 4 {
            0 => 1536,
            1 => 2688 + (next() % (128 * 65)),
            _ => 2688 + 128 * 65 + next() % (len - 2688 - 128 * 65),
        } & !7;
        file.write_all_at(&next().to_ne_bytes(), off).unwrap();
    }
    drop(tx);
    for mut s in subs {
        // Each ends: the publisher is gone (or a corrupt stamp jumped it to the end).
        s.expect_line("RESULT", SHORT);
        s.assert_success(SHORT);
    }
}

/// Block mode with `evict_after`: while a stuck subscriber holds the publisher back, the
/// subscribers that keep up wait, caught up, for longer than `evict_after`; once the stuck one
/// is evicted, they are not evicted for having waited (the clock runs from when a subscriber
/// starts holding the publisher back), and they get every message.
#[test]
fn block_mode_evicts_only_the_stuck_subscriber() {
    for backend in backends() {
        let name = unique_name("bc-evict-one");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let opts = Options::new()
            .backend(backend.clone())
            .capacity(16)
            .overflow(block(Some(Duration::from_millis(300))));
        let mut tx = Publisher::<Msg>::create(&name, &opts).unwrap();
        let go = std::env::temp_dir().join(format!("{name}-go"));
        let _ = std::fs::remove_file(&go);
        let mut stuck = spawn(
            "bc-stall",
            &name,
            &backend,
            &[
                ("SHMCHAN_TEST_GO", go.display().to_string()),
                ("SHMCHAN_TEST_EVICT_MS", "300".into()),
            ],
        );
        stuck.expect_line("READY", SHORT);
        let env = [
            ("SHMCHAN_TEST_FIRST", "0".to_string()),
            ("SHMCHAN_TEST_BLOCK", "1".into()),
            ("SHMCHAN_TEST_EVICT_MS", "300".into()),
            ("SHMCHAN_TEST_N", "40".into()),
        ];
        let readers = [
            subscriber(&name, &backend, &env),
            subscriber(&name, &backend, &env),
        ];
        tx.wait_for_subscribers(3, SHORT).unwrap();
        for i in 0..40 {
            tx.send_timeout(Msg::new(i), SHORT).unwrap();
        }
        for mut r in readers {
            let got = common::sub_report(&r);
            assert_eq!(
                (got.received, got.lagged, got.evicted),
                (40, 0, false),
                "{backend}"
            );
            r.assert_success(SHORT);
        }
        std::fs::write(&go, b"").unwrap();
        assert_eq!(stuck.expect_line("GOT", SHORT), "Err(Evicted)", "{backend}");
        stuck.assert_success(SHORT);
        let _ = std::fs::remove_file(&go);
    }
}

/// A topic of 64 subscribers and 4096 `u64` slots maps at most 128 KiB (the header, a line
/// per subscriber, 16-byte slots), on every backend.
#[test]
fn a_64_subscriber_4096_slot_topic_maps_at_most_128_kib() {
    for backend in backends() {
        let name = unique_name("bc-size");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let opts = Options::new()
            .backend(backend.clone())
            .capacity(4096)
            .max_subscribers(64);
        let tx = Publisher::<u64>::create(&name, &opts).unwrap();
        let bytes = common::region_bytes(&name, &backend).len();
        eprintln!("{backend}: {bytes} bytes");
        assert!(bytes <= 128 * 1024, "{backend}: {bytes} bytes");
        drop(tx);
    }
}

/// A publisher that waited for a subscriber sends nothing that subscriber will not see: a
/// subscriber process starting at the latest message, not waited for otherwise (no READY
/// handshake), gets message 0 first, every time, in Block mode (where a publisher that does not
/// count a subscriber runs free). It used to count once the place was claimed, before the
/// subscriber had fixed its start: the first messages could go by. Every backend, 10 times.
#[test]
fn a_subscriber_waited_for_sees_the_first_message() {
    for backend in backends() {
        for round in 0..10 {
            let name = unique_name("bc-ready");
            let _cleanup = Cleanup(name.clone(), backend.clone());
            let opts = Options::new()
                .backend(backend.clone())
                .capacity(8)
                .overflow(block(None));
            let mut tx = Publisher::<Msg>::create(&name, &opts).unwrap();
            let env = [
                ("SHMCHAN_TEST_FIRST", "0".to_string()),
                ("SHMCHAN_TEST_BLOCK", "1".into()),
            ];
            let mut s = spawn("bc-sub", &name, &backend, &env);
            tx.wait_for_subscribers(1, SHORT).unwrap();
            let sent = 500;
            for i in 0..sent {
                tx.send_timeout(Msg::new(i), SHORT).unwrap();
            }
            drop(tx);
            let r = common::sub_report(&s);
            assert_eq!(
                (r.received, r.lagged),
                (sent, 0),
                "{backend}, round {round}"
            );
            s.assert_success(SHORT);
        }
    }
}
