//! Broadcast frame topics with real processes on every backend: two subscribers of 200,000
//! frames of 8 to 1000 bytes (each whole and in its place, received + lost == sent), a ring of
//! 4 hammered for a second (nothing torn), Block mode losing nothing to a slow subscriber, a
//! publisher killed and replaced by one that takes the topic's largest frame, loans, history,
//! async, clear errors, and hostile bytes (a forged length never reads out of bounds).
// Test helpers are not crate code checked by loom; plain std atomics are right here.
#![allow(clippy::disallowed_types)]

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::{
    Cleanup, Peer, assert_gone, backends, spawn, topic_frame, topic_frame_seq, unique_name,
};
use shmchan::broadcast::{
    FramePublisher, FrameSubscriber, MAX_FRAME, Overflow, Publisher, RecvError, Start, Subscriber,
    TryRecvError,
};
use shmchan::{Backend, Error, Options, frame};

const SHORT: Duration = Duration::from_secs(10);

#[test]
#[ignore = "run as a child process by the other tests"]
fn child_main() {
    common::child_main();
}

fn subscriber(name: &str, backend: &Backend, max: usize, env: &[(&str, String)]) -> Peer {
    let mut env = env.to_vec();
    env.push(("SHMCHAN_TEST_MAX", max.to_string()));
    let child = spawn("bc-frame-sub", name, backend, &env);
    child.expect_line("READY", SHORT);
    child
}

/// Publish test frames `from..to` of at most `max` bytes.
fn publish(tx: &mut FramePublisher, from: u64, to: u64, max: usize) {
    let mut buf = Vec::new();
    for i in from..to {
        topic_frame(i, max, &mut buf);
        tx.send(&buf).unwrap();
    }
}

/// Two subscriber processes, 200,000 frames of 8 to 1000 bytes through a ring of 256 in
/// Overwrite mode: every frame received has its length and bytes and is exactly where the
/// count of frames and `Lagged(n)` says; received + lost == sent for each subscriber.
#[test]
fn two_subscribers_of_200_000_frames_account_for_every_one() {
    for backend in backends() {
        let name = unique_name("bcf-many");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let max = 1000;
        let opts = Options::new()
            .backend(backend.clone())
            .capacity(256)
            .max_frame(max);
        let mut tx = FramePublisher::create(&name, &opts).unwrap();
        assert_eq!(tx.max_frame(), max);
        let subs: Vec<Peer> = (0..2)
            .map(|_| subscriber(&name, &backend, max, &[("SHMCHAN_TEST_FIRST", "0".into())]))
            .collect();
        tx.wait_for_subscribers(2, SHORT).unwrap();
        let sent = 200_000;
        publish(&mut tx, 0, sent, max);
        drop(tx);
        for mut s in subs {
            let r = common::sub_report(&s);
            assert_eq!(r.torn, 0, "{backend}: torn frames");
            assert_eq!(r.received + r.lagged, sent, "{backend}: {r:?}");
            assert_eq!(r.next, sent, "{backend}: {r:?}");
            assert!(r.received > 0, "{backend}: {r:?}");
            s.assert_success(SHORT);
            eprintln!("{backend}: received {} lost {}", r.received, r.lagged);
        }
        assert_gone(&name, &backend);
    }
}

/// A ring of 4 frames of up to 64 bytes hammered for a second while two subscriber processes
/// read: every frame they get is whole (a lapped read, length word included, is thrown away).
#[test]
fn a_small_frame_ring_hammered_for_a_second_never_tears() {
    for backend in backends() {
        let name = unique_name("bcf-hammer");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let max = 64;
        let opts = Options::new()
            .backend(backend.clone())
            .capacity(4)
            .max_frame(max);
        let mut tx = FramePublisher::create(&name, &opts).unwrap();
        let subs: Vec<Peer> = (0..2)
            .map(|_| subscriber(&name, &backend, max, &[("SHMCHAN_TEST_FIRST", "0".into())]))
            .collect();
        tx.wait_for_subscribers(2, SHORT).unwrap();
        let until = Instant::now() + Duration::from_secs(1);
        let mut sent = 0u64;
        while Instant::now() < until {
            publish(&mut tx, sent, sent + 1000, max);
            sent += 1000;
        }
        drop(tx);
        for mut s in subs {
            let r = common::sub_report(&s);
            assert_eq!(r.torn, 0, "{backend}: torn frames");
            assert_eq!(r.received + r.lagged, sent, "{backend}: {r:?}");
            s.assert_success(SHORT);
            eprintln!(
                "{backend}: {sent} sent, {} received, {} lost",
                r.received, r.lagged
            );
        }
    }
}

/// Block mode: a fast and a slow subscriber process each receive all 20,000 frames in order.
#[test]
fn block_mode_frames_lose_nothing_with_a_slow_subscriber() {
    for backend in backends() {
        let name = unique_name("bcf-block");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let max = 512;
        let opts = Options::new()
            .backend(backend.clone())
            .capacity(16)
            .max_frame(max)
            .overflow(Overflow::Block { evict_after: None });
        let mut tx = FramePublisher::create(&name, &opts).unwrap();
        let env = |slow: u64| {
            vec![
                ("SHMCHAN_TEST_FIRST", "0".to_string()),
                ("SHMCHAN_TEST_BLOCK", "1".to_string()),
                ("SHMCHAN_TEST_SLOW_US", slow.to_string()),
            ]
        };
        let subs = [
            subscriber(&name, &backend, max, &env(0)),
            subscriber(&name, &backend, max, &env(500)),
        ];
        tx.wait_for_subscribers(2, SHORT).unwrap();
        let sent = 20_000;
        publish(&mut tx, 0, sent, max);
        drop(tx);
        for mut s in subs {
            let r = common::sub_report(&s);
            assert_eq!((r.received, r.lagged, r.torn), (sent, 0, 0), "{backend}");
            s.assert_success(SHORT);
        }
    }
}

/// A frame publisher process killed: a new publisher takes the topic over, with the topic's
/// largest frame when it does not ask for one (and a clear error when it asks for another),
/// and a subscriber goes on with its frames.
#[test]
fn a_killed_frame_publisher_is_replaced_and_subscribers_go_on() {
    for backend in backends() {
        let name = unique_name("bcf-takeover");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let max = 200;
        let opts = Options::new().backend(backend.clone()).capacity(256);
        let mut old = spawn(
            "bc-frame-pub",
            &name,
            &backend,
            &[
                ("SHMCHAN_TEST_N", "100".into()),
                ("SHMCHAN_TEST_CAP", "256".into()),
                ("SHMCHAN_TEST_MAX", max.to_string()),
                ("SHMCHAN_TEST_CREATE", "1".into()),
            ],
        );
        old.expect_line("SENT", SHORT);
        let mut rx = FrameSubscriber::open_from(&name, Start::Oldest, &opts).unwrap();
        assert_eq!(rx.max_frame(), max);
        assert!(matches!(
            FramePublisher::create(&name, &opts),
            Err(Error::InUse { .. })
        ));
        old.kill9();
        old.reap();
        let mut buf = Vec::new();
        for i in 0..100 {
            rx.recv_timeout_into(&mut buf, SHORT).unwrap();
            assert_eq!(topic_frame_seq(&buf, max), Some(i), "{backend}");
        }
        assert_eq!(rx.recv(), Err(RecvError::Disconnected), "{backend}");
        match FramePublisher::create(&name, &opts.clone().max_frame(64)) {
            Err(Error::Incompatible { detail, .. }) => {
                assert!(
                    detail.contains("200") && detail.contains("64"),
                    "{backend}: {detail}"
                );
            }
            r => panic!("{backend}: a publisher asking for another largest frame: {r:?}"),
        }
        let mut next = spawn(
            "bc-frame-pub",
            &name,
            &backend,
            &[
                ("SHMCHAN_TEST_N", "50".into()),
                ("SHMCHAN_TEST_BASE", "100".into()),
                ("SHMCHAN_TEST_MAX", max.to_string()),
            ],
        );
        next.expect_line("SENT", SHORT);
        for i in 100..150 {
            rx.recv_timeout_into(&mut buf, SHORT).unwrap();
            assert_eq!(topic_frame_seq(&buf, max), Some(i), "{backend}");
        }
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty), "{backend}");
        next.kill9();
        next.reap();
        drop(rx);
        assert_gone(&name, &backend);
    }
}

/// Loans (a prefix committed, `io::Write`, dropped without a commit), empty and largest
/// frames, history, every receive, `lag`, and the errors: each says what was wrong.
#[test]
fn frame_topic_calls_and_their_errors() {
    for backend in backends() {
        let name = unique_name("bcf-calls");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let opts = Options::new()
            .backend(backend.clone())
            .capacity(8)
            .max_frame(100);
        let mut tx = FramePublisher::create(&name, &opts).unwrap();
        assert_eq!((tx.max_frame(), tx.capacity()), (104, 8), "rounded up to 8");
        let mut rx =
            FrameSubscriber::open(&name, &Options::new().backend(backend.clone())).unwrap();
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));

        let mut loan = tx.loan(104).unwrap();
        loan[..3].copy_from_slice(b"abc");
        loan.commit(3);
        let mut loan = tx.loan(10).unwrap();
        loan.write_all(b"written").unwrap();
        assert_eq!(loan.write(b"more than ten").unwrap(), 3, "a loan's end");
        loan.commit_written();
        {
            let _dropped = tx.loan(5).unwrap(); // publishes nothing
        }
        tx.send(b"").unwrap();
        tx.send(&[7; 104]).unwrap();
        assert_eq!(rx.lag(), 4);
        assert_eq!(rx.recv().unwrap(), b"abc");
        assert_eq!(rx.try_recv().unwrap(), b"writtenmor");
        assert_eq!(rx.recv_timeout(SHORT).unwrap(), b"");
        let mut buf = vec![1; 1000];
        assert_eq!(rx.try_recv_into(&mut buf), Ok(104));
        assert_eq!(buf, [7; 104]);
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(20)),
            Err(shmchan::broadcast::RecvTimeoutError::Timeout)
        );

        // A lapped subscriber is told how many it lost, then goes on with the oldest.
        for i in 0..20u8 {
            tx.send(&[i; 3]).unwrap();
        }
        assert_eq!(rx.try_recv(), Err(TryRecvError::Lagged(13)));
        assert_eq!(rx.try_recv().unwrap(), [13; 3]);
        let mut late = FrameSubscriber::open_from(
            &name,
            Start::History(2),
            &Options::new().backend(backend.clone()),
        )
        .unwrap();
        assert_eq!(late.try_recv().unwrap(), [18; 3]);
        assert_eq!(late.try_recv().unwrap(), [19; 3]);

        assert_eq!(
            tx.send(&[0; 105]),
            Err(frame::SendError::TooLarge { len: 105, max: 104 })
        );
        assert_eq!(
            tx.try_send(&[0; 105]),
            Err(frame::TrySendError::TooLarge { len: 105, max: 104 })
        );
        assert_eq!(
            tx.send_timeout(&[0; 200], SHORT),
            Err(frame::SendTimeoutError::TooLarge { len: 200, max: 104 })
        );
        assert!(matches!(
            tx.loan(105),
            Err(frame::SendError::TooLarge { len: 105, max: 104 })
        ));
        assert!(matches!(
            FramePublisher::create(&name, &opts),
            Err(Error::InUse { .. })
        ));
        match Subscriber::<u64>::open(&name, &opts) {
            Err(Error::Incompatible { detail, .. }) => {
                assert!(detail.contains("mismatch"), "{detail}")
            }
            r => panic!("{backend}: a typed subscriber of a frame topic: {r:?}"),
        }
        for bad in [0, MAX_FRAME + 1] {
            let e = FramePublisher::create(&unique_name("bcf-bad"), &opts.clone().max_frame(bad))
                .unwrap_err();
            assert!(
                matches!(&e, Error::InvalidOptions { reason } if reason.contains(&bad.to_string())),
                "{e}"
            );
        }
        let typed = unique_name("bcf-typed");
        let _typed_cleanup = Cleanup(typed.clone(), backend.clone());
        let _t = Publisher::<u64>::create(&typed, &opts).unwrap();
        assert!(matches!(
            FrameSubscriber::open(&typed, &opts),
            Err(Error::Incompatible { .. })
        ));
        drop((tx, rx, late));
        assert_gone(&name, &backend);
    }
}

/// `recv_async` and `stream()` of a frame topic, on a current-thread runtime: frames from
/// another thread, and the stream ends when the publisher is gone.
#[test]
fn frame_subscribers_receive_asynchronously() {
    let name = unique_name("bcf-async");
    let _cleanup = Cleanup(name.clone(), Backend::Posix);
    let mut tx = FramePublisher::create(&name, &Options::new()).unwrap();
    let mut rx = FrameSubscriber::open(&name, &Options::new()).unwrap();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        for i in 0..100u8 {
            tx.send(&[i; 17]).unwrap();
        }
    });
    let got: Vec<Vec<u8>> = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            use std::future::poll_fn;
            use std::pin::Pin;
            let first = rx.recv_async().await.unwrap();
            let mut all = vec![first];
            let mut stream = rx.stream();
            while let Some(item) =
                poll_fn(|cx| futures_core::Stream::poll_next(Pin::new(&mut stream), cx)).await
            {
                all.push(item.unwrap());
            }
            all
        });
    t.join().unwrap();
    assert_eq!(got.len(), 100);
    for (i, f) in got.iter().enumerate() {
        assert_eq!(f, &[i as u8; 17]);
    }
}

/// Random bytes written over a frame topic's control line, subscriber lines, tail and slots
/// (length words included, which may then claim more than a slot holds) while subscriber
/// processes read and this process publishes: errors or odd frames, never a crash, a hang or
/// a read out of bounds.
#[test]
fn hostile_bytes_over_a_frame_topic_crash_nothing() {
    use std::os::unix::fs::FileExt;
    let name = unique_name("bcf-hostile");
    let backend = Backend::Posix;
    let _cleanup = Cleanup(name.clone(), backend.clone());
    let max = 120;
    let opts = Options::new().capacity(32).max_frame(max);
    let mut tx = FramePublisher::create(&name, &opts).unwrap();
    let subs: Vec<Peer> = (0..2)
        .map(|_| subscriber(&name, &backend, max, &[("SHMCHAN_TEST_LAX", "1".into())]))
        .collect();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .read(true)
        .open(std::path::Path::new("/dev/shm").join(&name))
        .unwrap();
    // The layout: header 2688 bytes, the control line and 64 subscriber lines, then 32 slots
    // of a stamp, a length word and 120 bytes.
    let slots = 2688 + 128 * 65;
    let stride = 8 + 8 + max as u64;
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let until = Instant::now() + Duration::from_secs(1);
    let mut sent = 0u64;
    let mut buf = Vec::new();
    while Instant::now() < until {
        for _ in 0..100 {
            topic_frame(sent, max, &mut buf);
            let _ = tx.try_send(&buf);
            sent += 1;
        }
        let off = match next() % 4 {
            0 => 1536,                               // tail
            1 => 2688 + next() % (128 * 65),         // control and subscriber lines
            2 => slots + (next() % 32) * stride + 8, // a length word
            _ => slots + next() % (32 * stride),
        } & !7;
        file.write_all_at(&next().to_ne_bytes(), off).unwrap();
    }
    drop(tx);
    for mut s in subs {
        s.expect_line("RESULT", SHORT);
        s.assert_success(SHORT);
    }
}

/// Loans that do not wait, or wait a bounded time (Block mode): `try_loan` is `Full` and
/// `loan_timeout` `Timeout` while the slowest subscriber is a ring behind, and both lend again
/// once it reads; a loan longer than the topic's frames is `TooLarge` either way. Every
/// backend.
#[test]
fn bounded_loans_in_block_mode() {
    for backend in backends() {
        let name = unique_name("bcf-try-loan");
        let _c = Cleanup(name.clone(), backend.clone());
        let opts = Options::new()
            .backend(backend.clone())
            .capacity(4)
            .max_frame(64)
            .overflow(Overflow::Block { evict_after: None });
        let mut tx = FramePublisher::create(&name, &opts).unwrap();
        let mut rx = FrameSubscriber::open(&name, &opts).unwrap();
        for i in 0..4u8 {
            let mut loan = tx.try_loan(3).unwrap();
            loan.copy_from_slice(&[i; 3]);
            loan.commit(3);
        }
        assert!(
            matches!(tx.try_loan(3), Err(frame::TrySendError::Full)),
            "{backend}"
        );
        let t0 = Instant::now();
        let r = tx.loan_timeout(3, Duration::from_millis(30));
        assert!(
            matches!(r, Err(frame::SendTimeoutError::Timeout)),
            "{backend}"
        );
        assert!(t0.elapsed() >= Duration::from_millis(30), "{backend}");
        assert!(matches!(
            tx.try_loan(65),
            Err(frame::TrySendError::TooLarge { len: 65, max: 64 })
        ));
        assert_eq!(rx.try_recv().unwrap(), [0; 3], "{backend}");
        let mut loan = tx.loan_timeout(2, SHORT).unwrap();
        loan.copy_from_slice(b"ok");
        loan.commit(2);
        for i in 1..4u8 {
            assert_eq!(rx.try_recv().unwrap(), [i; 3], "{backend}");
        }
        assert_eq!(rx.try_recv().unwrap(), b"ok", "{backend}");
    }
}

/// `try_loan` in Block mode asks the kernel about a slowest subscriber that holds it back, as
/// `try_send` does: once that subscriber is killed, a `try_loan` loop gets a loan (within the
/// 40 ms probe period), where it stayed `Full` for good. Every backend.
#[test]
fn try_loan_notices_a_killed_slowest_subscriber() {
    for backend in backends() {
        let name = unique_name("bcf-try-loan-kill");
        let _c = Cleanup(name.clone(), backend.clone());
        let opts = Options::new()
            .backend(backend.clone())
            .capacity(4)
            .max_frame(64)
            .overflow(Overflow::Block { evict_after: None });
        let mut tx = FramePublisher::create(&name, &opts).unwrap();
        let mut child = subscriber(&name, &backend, 64, &[("SHMCHAN_TEST_BLOCK", "1".into())]);
        // Stopped: alive, not reading.
        // SAFETY: plain system call on our own child's pid.
        unsafe { libc::kill(child.pid() as i32, libc::SIGSTOP) };
        // kill(2) returns before the child has stopped: a child still running could take a
        // frame of those below, leaving room for a fifth (a CI run failed so, on `file`).
        let t_stop = Instant::now();
        while common::proc_state(child.pid()) != Some('T') {
            assert!(
                t_stop.elapsed() < SHORT,
                "the child never stopped on {backend}"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut sent = 0;
        let t0 = Instant::now();
        while sent < 4 {
            match tx.try_loan(8) {
                Ok(loan) => {
                    loan.commit(8);
                    sent += 1;
                }
                Err(frame::TrySendError::Full) => {
                    assert!(t0.elapsed() < SHORT, "never room for 4 frames on {backend}");
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => panic!("{e} on {backend}"),
            }
        }
        assert!(
            matches!(tx.try_loan(8), Err(frame::TrySendError::Full)),
            "{backend}"
        );
        child.kill9();
        child.wait(SHORT);
        let t0 = Instant::now();
        loop {
            match tx.try_loan(8) {
                Ok(loan) => {
                    loan.commit(8);
                    break;
                }
                Err(frame::TrySendError::Full) => {
                    assert!(
                        t0.elapsed() < SHORT,
                        "try_loan stayed Full after the subscriber was killed on {backend}"
                    );
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => panic!("{e} on {backend}"),
            }
        }
    }
}
