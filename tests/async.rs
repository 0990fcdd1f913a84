//! Async calls (`recv_async`, `stream`, `send_async`) under tokio, multi-thread and
//! current-thread runtimes, against real peer processes on every backend: order and exactly
//! once, cancellation storms, idle cost and waking, killed peers, full rings and gone
//! receivers, forked copies, and handles dropped right after their futures.

mod common;

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Waker};
use std::time::{Duration, Instant};

use common::{Cleanup, Msg, backends, env_u64, spawn, unique_name};
use futures_core::Stream;
use shmchan::{Backend, Options, SendError, frame, mpmc, spsc};

#[test]
#[ignore]
fn child_main() {
    common::child_main();
}

fn runtime(multi: bool) -> tokio::runtime::Runtime {
    if multi {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }
}

/// The next item of a stream.
async fn next<S: Stream + Unpin>(s: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|cx| std::pin::Pin::new(&mut *s).poll_next(cx)).await
}

/// A generous bound, to turn a hang into a failure.
const LONG: Duration = Duration::from_secs(30);

/// Tests that count the process's registrations (`shmchan::registered_waiters`) run one at a
/// time with the others that register waiters in this process.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// SPSC: 20,000 messages from a child process, received with `recv_async` (and with `stream`
/// on the other runtime): every one intact, once, in order, then the disconnect.
#[test]
fn spsc_order_and_exactly_once() {
    let _serial = serial();
    let n = 20_000u64;
    for backend in backends() {
        for multi in [true, false] {
            let name = unique_name("async-spsc");
            let _c = Cleanup(name.clone(), backend.clone());
            let opts = Options::new().backend(backend.clone()).capacity(64);
            let mut rx = spsc::Receiver::<Msg>::create(&name, &opts).unwrap();
            let mut peer = spawn(
                "send-paced",
                &name,
                &backend,
                &[("SHMCHAN_TEST_N", n.to_string())],
            );
            let got = runtime(multi).block_on(async {
                tokio::time::timeout(LONG, async {
                    let mut next_seq = 0;
                    if multi {
                        while let Ok(m) = rx.recv_async().await {
                            assert!(m.is_intact());
                            assert_eq!(m.seq, next_seq, "out of order or lost");
                            next_seq += 1;
                        }
                    } else {
                        let mut s = rx.stream();
                        while let Some(m) = next(&mut s).await {
                            assert!(m.is_intact());
                            assert_eq!(m.seq, next_seq, "out of order or lost");
                            next_seq += 1;
                        }
                    }
                    next_seq
                })
                .await
                .expect("the stream ends")
            });
            assert_eq!(got, n, "{backend}, multi-thread {multi}");
            peer.assert_success(LONG);
            assert_eq!(shmchan::registered_waiters(), 0);
        }
    }
}

/// MPMC: two producer processes, two async receiving tasks on clones of one receiver: every
/// message exactly once, each producer's in order per task.
#[test]
fn mpmc_exactly_once_two_producers_two_tasks() {
    let _serial = serial();
    let n = 10_000u64;
    for backend in backends() {
        let name = unique_name("async-mpmc");
        let _c = Cleanup(name.clone(), backend.clone());
        let opts = Options::new().backend(backend.clone()).capacity(64);
        let rx = mpmc::Receiver::<Msg>::create(&name, &opts).unwrap();
        let mut peers: Vec<_> = (0..2u64)
            .map(|p| {
                spawn(
                    "mpmc-send",
                    &name,
                    &backend,
                    &[
                        ("SHMCHAN_TEST_N", n.to_string()),
                        ("SHMCHAN_TEST_P", p.to_string()),
                    ],
                )
            })
            .collect();
        let mut all = runtime(true).block_on(async {
            let tasks: Vec<_> = (0..2)
                .map(|_| {
                    let rx = rx.clone();
                    tokio::spawn(async move {
                        let mut got = Vec::new();
                        let mut last = [None::<u64>; 2];
                        while let Ok(m) = rx.recv_async().await {
                            assert!(m.is_intact());
                            let (p, i) = ((m.seq >> 40) as usize, m.seq & ((1 << 40) - 1));
                            assert!(last[p].is_none_or(|l| i > l), "producer {p} out of order");
                            last[p] = Some(i);
                            got.push(m.seq);
                        }
                        got
                    })
                })
                .collect();
            let mut all = Vec::new();
            for t in tasks {
                all.extend(tokio::time::timeout(LONG, t).await.expect("ends").unwrap());
            }
            all
        });
        all.sort_unstable();
        let want: Vec<u64> = (0..2u64)
            .flat_map(|p| (0..n).map(move |i| (p << 40) | i))
            .collect();
        assert_eq!(all, want, "{backend}: every message exactly once");
        for p in &mut peers {
            p.assert_success(LONG);
        }
    }
}

/// Frames: 3,000 frames of every length from a child, through `recv_async` (in place) and
/// `stream` (owned copies), alternately per backend: each the right one, in order.
#[test]
fn frame_order_and_exactly_once() {
    let _serial = serial();
    let n = 3_000u64;
    for (k, backend) in backends().enumerate() {
        let name = unique_name("async-frame");
        let _c = Cleanup(name.clone(), backend.clone());
        let opts = Options::new().backend(backend.clone()).capacity(4096);
        let mut rx = frame::Receiver::create(&name, &opts).unwrap();
        let max = 4096 - 16; // the sender's max_frame
        let mut peer = spawn(
            "frame-send",
            &name,
            &backend,
            &[("SHMCHAN_TEST_N", n.to_string())],
        );
        let got = runtime(k % 2 == 0).block_on(async {
            tokio::time::timeout(LONG, async {
                let mut i = 0;
                if k % 2 == 0 {
                    while let Ok(f) = rx.recv_async().await {
                        assert!(common::frame_is(i, max, &f), "frame {i}");
                        i += 1;
                    }
                } else {
                    let mut s = rx.stream();
                    while let Some(f) = next(&mut s).await {
                        assert!(common::frame_is(i, max, &f), "frame {i}");
                        i += 1;
                    }
                }
                i
            })
            .await
            .expect("the stream ends")
        });
        assert_eq!(got, n, "{backend}");
        peer.assert_success(LONG);
    }
}

/// Cancellation storms: every receive wrapped in a 1 ms `tokio::time::timeout` while a paced
/// child sends (so many receives time out while registered): nothing lost, nothing
/// duplicated, nothing left registered. SPSC and MPMC, both runtimes, every backend.
#[test]
fn cancellation_storm_loses_nothing() {
    let _serial = serial();
    let n = 5_000u64;
    for backend in backends() {
        for multi in [true, false] {
            let name = unique_name("async-storm");
            let _c = Cleanup(name.clone(), backend.clone());
            let opts = Options::new().backend(backend.clone()).capacity(16);
            let env = [
                ("SHMCHAN_TEST_N", n.to_string()),
                ("SHMCHAN_TEST_PACE_US", "1500".to_string()),
            ];
            let mut rx = spsc::Receiver::<Msg>::create(&name, &opts).unwrap();
            let mut peer = spawn("send-paced", &name, &backend, &env);
            let (got, timeouts) = runtime(multi).block_on(async {
                let (mut next_seq, mut timeouts) = (0u64, 0u64);
                let t0 = Instant::now();
                loop {
                    assert!(t0.elapsed() < LONG, "storm hangs");
                    match tokio::time::timeout(Duration::from_millis(1), rx.recv_async()).await {
                        Ok(Ok(m)) => {
                            assert_eq!(m, Msg::new(next_seq), "lost or duplicated");
                            next_seq += 1;
                        }
                        Ok(Err(_)) => break,
                        Err(_) => timeouts += 1,
                    }
                }
                (next_seq, timeouts)
            });
            assert_eq!(got, n, "spsc {backend}, multi-thread {multi}");
            assert!(timeouts > 0, "some receives must have been cancelled");
            assert_eq!(
                shmchan::registered_waiters(),
                0,
                "cancelled futures deregistered"
            );
            peer.assert_success(LONG);
            drop(rx);

            let name = unique_name("async-storm-mpmc");
            let _c = Cleanup(name.clone(), backend.clone());
            let rx = mpmc::Receiver::<Msg>::create(&name, &opts).unwrap();
            let mut peer = spawn("mpmc-send-paced", &name, &backend, &env);
            let got = runtime(multi).block_on(async {
                let mut next_seq = 0u64;
                let t0 = Instant::now();
                loop {
                    assert!(t0.elapsed() < LONG, "storm hangs");
                    match tokio::time::timeout(Duration::from_millis(1), rx.recv_async()).await {
                        Ok(Ok(m)) => {
                            assert_eq!(m, Msg::new(next_seq), "lost or duplicated");
                            next_seq += 1;
                        }
                        Ok(Err(_)) => break,
                        Err(_) => {}
                    }
                }
                next_seq
            });
            assert_eq!(got, n, "mpmc {backend}, multi-thread {multi}");
            assert_eq!(shmchan::registered_waiters(), 0);
            peer.assert_success(LONG);
        }
    }
}

/// 100 async receivers idle for 2 s (their senders alive in another process) use less than
/// 0.1 s of CPU in total, then all wake when a message arrives on each. Measured in a child
/// process of its own (`async-idle-recv`), so that other tests running in this one do not
/// count. Both runtimes on POSIX, the multi-thread one on the other backends.
#[test]
fn hundred_idle_receivers_cost_no_cpu_then_wake() {
    let n = 100;
    for (k, backend) in backends().enumerate() {
        for flavor in ["multi", "current"] {
            if flavor == "current" && k != 0 {
                continue;
            }
            let name = unique_name("async-idle");
            let cleanups: Vec<_> = (0..n)
                .map(|i| Cleanup(format!("{name}-{i}"), backend.clone()))
                .collect();
            let go = std::env::temp_dir().join(format!("shmchan-test-go-{name}"));
            let _go = GoFile(go.clone());
            let env = [
                ("SHMCHAN_TEST_N", n.to_string()),
                ("SHMCHAN_TEST_GO", go.display().to_string()),
                ("SHMCHAN_TEST_FLAVOR", flavor.to_string()),
                ("SHMCHAN_TEST_CAP", "8".to_string()),
            ];
            let rx = spawn("async-idle-recv", &name, &backend, &env);
            rx.expect_line("READY", LONG);
            let mut tx = spawn("async-many-send", &name, &backend, &env);
            let mut rx = rx;
            let line = rx.expect_line("CPU_US", LONG);
            let mut it = line.split_whitespace();
            let cpu_us: u64 = it.next().unwrap().parse().unwrap();
            let waiters: usize = it.nth(1).unwrap().parse().unwrap();
            eprintln!("{backend} {flavor}: 100 idle async receivers, 2 s: {cpu_us} us CPU");
            assert_eq!(waiters, n, "every receiver registered");
            assert!(
                cpu_us < 100_000,
                "{backend} {flavor}: 100 idle receivers used {cpu_us} us of CPU in 2 s"
            );
            let woke = rx.expect_line("WOKE_MS", LONG);
            eprintln!("{backend} {flavor}: all woke within {woke} ms");
            assert_eq!(rx.expect_line("GOT", LONG), n.to_string());
            rx.assert_success(LONG);
            tx.assert_success(LONG);
            drop(cleanups);
        }
    }
}

/// Where `futex_waitv` is missing (forced here with `SHMCHAN_NO_FUTEX_WAITV=1`), the reactor
/// falls back to short naps and asks the kernel about each word: 3 idle receivers still cost
/// little, and all wake.
#[test]
fn fallback_without_futex_waitv_still_wakes() {
    let n = 3;
    let backend = Backend::Posix;
    let name = unique_name("async-fallback");
    let _cleanups: Vec<_> = (0..n)
        .map(|i| Cleanup(format!("{name}-{i}"), backend.clone()))
        .collect();
    let go = std::env::temp_dir().join(format!("shmchan-test-go-{name}"));
    let _go = GoFile(go.clone());
    let env = [
        ("SHMCHAN_TEST_N", n.to_string()),
        ("SHMCHAN_TEST_GO", go.display().to_string()),
        ("SHMCHAN_TEST_MS", "500".to_string()),
        ("SHMCHAN_NO_FUTEX_WAITV", "1".to_string()),
    ];
    let mut rx = spawn("async-idle-recv", &name, &backend, &env);
    rx.expect_line("READY", LONG);
    let mut tx = spawn("async-many-send", &name, &backend, &env);
    let line = rx.expect_line("CPU_US", LONG);
    let cpu_us: u64 = line.split_whitespace().next().unwrap().parse().unwrap();
    eprintln!("fallback: {n} idle async receivers, 0.5 s: {cpu_us} us CPU");
    assert!(cpu_us < 100_000, "{cpu_us} us");
    rx.expect_line("WOKE_MS", LONG);
    assert_eq!(rx.expect_line("GOT", LONG), n.to_string());
    rx.assert_success(LONG);
    tx.assert_success(LONG);
}

/// Removes a file when dropped.
struct GoFile(std::path::PathBuf);

impl Drop for GoFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A sender killed with `kill -9` ends an async stream (and a pending `recv_async`) after what
/// it sent, within about a probe interval (bounded here by seconds). SPSC, MPMC and frames,
/// every backend.
#[test]
fn killed_sender_ends_the_stream() {
    let _serial = serial();
    for backend in backends() {
        let name = unique_name("async-kill");
        let _c = Cleanup(name.clone(), backend.clone());
        let opts = Options::new().backend(backend.clone());
        let mut rx = spsc::Receiver::<Msg>::create(&name, &opts).unwrap();
        let env = [
            ("SHMCHAN_TEST_N", "10".to_string()),
            ("SHMCHAN_TEST_HANG", "1".to_string()),
        ];
        let mut peer = spawn("send", &name, &backend, &env);
        peer.expect_line("SENT", LONG);
        let waited = runtime(true).block_on(async {
            let mut s = rx.stream();
            for i in 0..10 {
                assert_eq!(next(&mut s).await, Some(Msg::new(i)));
            }
            let t0 = Instant::now();
            peer.kill9();
            let end = tokio::time::timeout(LONG, next(&mut s)).await;
            assert_eq!(end, Ok(None), "the stream ends");
            t0.elapsed()
        });
        peer.reap();
        eprintln!("{backend}: spsc stream ended {waited:?} after kill -9");
        assert!(waited < Duration::from_secs(2), "{waited:?}");

        let name = unique_name("async-kill-mpmc");
        let _c = Cleanup(name.clone(), backend.clone());
        let rx = mpmc::Receiver::<Msg>::create(&name, &opts).unwrap();
        let mut peer = spawn("mpmc-send", &name, &backend, &env);
        peer.expect_line("SENT", LONG);
        runtime(false).block_on(async {
            for _ in 0..10 {
                rx.recv_async().await.unwrap();
            }
            peer.kill9();
            let end = tokio::time::timeout(LONG, rx.recv_async()).await;
            assert!(matches!(end, Ok(Err(_))), "disconnected after kill -9");
        });
        peer.reap();

        let name = unique_name("async-kill-frame");
        let _c = Cleanup(name.clone(), backend.clone());
        let mut rx = frame::Receiver::create(&name, &opts.clone().capacity(1 << 16)).unwrap();
        let mut peer = spawn("frame-send", &name, &backend, &env);
        runtime(true).block_on(async {
            let mut s = rx.stream();
            for _ in 0..10 {
                assert!(next(&mut s).await.is_some());
            }
            peer.expect_line("SENT", LONG);
            peer.kill9();
            let end = tokio::time::timeout(LONG, next(&mut s)).await;
            assert_eq!(end, Ok(None), "the frame stream ends");
        });
        peer.reap();
    }
}

/// `send_async` waits on a full ring (capacity 4, 3,000 messages to a child that checks order)
/// and fails with the value once the receiver is gone: dropped (the child exits) or killed with
/// `kill -9` while the send waits. SPSC and MPMC, every backend.
#[test]
fn send_async_full_ring_and_gone_receiver() {
    let _serial = serial();
    let n = 3_000u64;
    for backend in backends() {
        let opts = Options::new().backend(backend.clone()).capacity(4);
        // A full ring: every message arrives, in order.
        let name = unique_name("async-send");
        let _c = Cleanup(name.clone(), backend.clone());
        let mut tx = spsc::Sender::<Msg>::create(&name, &opts).unwrap();
        let mut peer = spawn(
            "recv",
            &name,
            &backend,
            &[("SHMCHAN_TEST_N", n.to_string())],
        );
        runtime(true).block_on(async {
            for i in 0..n {
                tokio::time::timeout(LONG, tx.send_async(Msg::new(i)))
                    .await
                    .expect("room comes")
                    .unwrap();
            }
        });
        drop(tx);
        assert_eq!(peer.expect_line("GOT", LONG), n.to_string());
        peer.assert_success(LONG);

        // The receiver takes 2 and exits: a send waiting on the full ring gets its value back.
        for kill in [false, true] {
            let name = unique_name("async-send-gone");
            let _c = Cleanup(name.clone(), backend.clone());
            let mut tx = spsc::Sender::<Msg>::create(&name, &opts).unwrap();
            let exit = if kill { "0" } else { "1" };
            let mut peer = spawn(
                "recv-hang",
                &name,
                &backend,
                &[
                    ("SHMCHAN_TEST_N", "2".into()),
                    ("SHMCHAN_TEST_EXIT", exit.into()),
                ],
            );
            peer.expect_line("READY", LONG);
            let rt = runtime(!kill);
            if kill {
                let r = rt.block_on(async {
                    for i in 0..6 {
                        tx.send_async(Msg::new(i)).await.unwrap(); // 4 in the ring, 2 taken
                    }
                    peer.expect_line("TOOK", LONG);
                    peer.kill9(); // while the next send waits on the full ring
                    tokio::time::timeout(LONG, tx.send_async(Msg::new(99))).await
                });
                assert_eq!(r, Ok(Err(SendError(Msg::new(99)))), "{backend}, killed");
            } else {
                // The child takes 2 and leaves: sends go on until the ring is full and the
                // receiver gone, then the value comes back.
                let r = rt.block_on(async {
                    tokio::time::timeout(LONG, async {
                        for i in 0.. {
                            tx.send_async(Msg::new(i)).await?;
                        }
                        Ok(())
                    })
                    .await
                });
                match r {
                    Ok(Err(SendError(m))) => assert!(m.is_intact() && m.seq >= 2, "{m:?}"),
                    other => panic!("{backend}: expected a SendError, got {other:?}"),
                }
            }
            peer.reap();
        }

        // MPMC: the same, killed.
        let name = unique_name("async-send-mpmc");
        let _c = Cleanup(name.clone(), backend.clone());
        let tx = mpmc::Sender::<Msg>::create(&name, &opts).unwrap();
        let mut peer = spawn("mpmc-park-recv", &name, &backend, &[]);
        peer.expect_line("READY", LONG);
        let r = runtime(false).block_on(async {
            tx.send_async(Msg::new(0)).await.unwrap(); // taken by the child's recv
            for i in 1..5 {
                tx.send_async(Msg::new(i)).await.unwrap();
            }
            let t = tokio::spawn({
                let tx = tx.clone();
                async move { tokio::time::timeout(LONG, tx.send_async(Msg::new(99))).await }
            });
            tokio::time::sleep(Duration::from_millis(100)).await; // the send waits
            peer.kill9();
            t.await.unwrap()
        });
        assert_eq!(r, Ok(Err(SendError(Msg::new(99)))), "mpmc {backend}");
        peer.reap();
    }
}

/// A forked child's copies of handles refuse asynchronously too, and the child's own new
/// channels work (through a reactor of its own); the parent's handles keep working.
#[test]
fn forked_copies_refuse_and_child_gets_its_own_reactor() {
    for backend in backends() {
        let name = unique_name("async-fork");
        let _c = Cleanup(name.clone(), backend.clone());
        let mut peer = spawn("async-fork", &name, &backend, &[]);
        assert_eq!(peer.expect_line("OK", LONG), "");
        peer.assert_success(LONG);
    }
}

/// A process whose first async wait was on an in-process channel, before any named channel
/// (so before the fork handlers were installed, as it once was): its forked child's own async
/// receive is woken by a reactor of the child's, not registered with the parent's reactor,
/// whose thread the child does not have.
#[test]
fn a_child_forked_after_an_in_process_async_wait_gets_its_own_reactor() {
    let mut peer = spawn("async-fork-heap", "unused", &Backend::Posix, &[]);
    assert_eq!(peer.expect_line("OK", LONG), "");
    peer.assert_success(LONG);
}

/// Dropping a handle right after dropping (or leaking) its registered future never troubles
/// the reactor: it only hands the words to the kernel, so a word whose mapping is gone costs
/// an `EFAULT`, never a crash. Then async receives still work.
#[test]
fn handle_dropped_after_its_future_and_leaked_futures() {
    let _serial = serial();
    let backend = Backend::Posix;
    let rt = runtime(true);
    for i in 0..200 {
        let name = unique_name("async-unmap");
        let _c = Cleanup(name.clone(), backend.clone());
        let opts = Options::new().backend(backend.clone()).capacity(4);
        let tx = spsc::Sender::<Msg>::create(&name, &opts).unwrap();
        let mut rx = spsc::Receiver::<Msg>::open(&name, &opts).unwrap();
        {
            let mut fut = Box::pin(rx.recv_async());
            let mut cx = Context::from_waker(Waker::noop());
            assert!(fut.as_mut().poll(&mut cx).is_pending());
            if i % 10 == 0 {
                std::mem::forget(fut); // never deregistered: its word is unmapped below
            }
        }
        drop(rx);
        drop(tx);
    }
    // The leaked registrations go with their mappings (a later channel is often mapped at the
    // same address, with its doorbell holding the value a leaked one registered: the kernel's
    // EFAULT alone did not catch those).
    let t0 = Instant::now();
    while shmchan::registered_waiters() != 0 {
        assert!(
            t0.elapsed() < LONG,
            "leaked registrations of unmapped words stay"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // A leaked future's word whose address is mapped again at once, by a channel of the same
    // size (usually at the same address, with the same value in that word): its registration
    // goes all the same, while the new channel lives.
    for _ in 0..20 {
        let name = unique_name("async-remap");
        let _c = Cleanup(name.clone(), backend.clone());
        let opts = Options::new().backend(backend.clone()).capacity(4);
        let mut rx = spsc::Receiver::<Msg>::create(&name, &opts).unwrap();
        let mut fut = Box::pin(rx.recv_async());
        let mut cx = Context::from_waker(Waker::noop());
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        std::mem::forget(fut);
        drop(rx);
        let name2 = unique_name("async-remap");
        let _c2 = Cleanup(name2.clone(), backend.clone());
        let _again = spsc::Receiver::<Msg>::create(&name2, &opts).unwrap();
        let t0 = Instant::now();
        while shmchan::registered_waiters() != 0 {
            assert!(
                t0.elapsed() < LONG,
                "a leaked registration stays on a word mapped again"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    // The reactor still wakes tasks.
    let (tx, mut rx) = spsc::channel::<u64>(4).unwrap();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        tx.send(1).unwrap();
    });
    let r = rt.block_on(async { tokio::time::timeout(LONG, rx.recv_async()).await });
    assert_eq!(r, Ok(Ok(1)));
    t.join().unwrap();
}

/// The futures are `Send` (so `tokio::spawn` takes them) for every kind of channel.
#[test]
fn futures_are_send() {
    fn send<F: Send>(_: &F) {}
    let (mut tx, mut rx) = spsc::channel::<u64>(4).unwrap();
    send(&rx.recv_async());
    send(&rx.stream());
    send(&tx.send_async(1));
    let (mtx, mrx) = mpmc::channel::<u64>(4).unwrap();
    send(&mrx.recv_async());
    send(&mrx.stream());
    send(&mtx.send_async(1));
    let (_ftx, mut frx) = frame::channel(64).unwrap();
    send(&frx.recv_async());
    send(&frx.stream());
    let _ = (env_u64("UNUSED", 0), pin!(async {}));
}

/// A waker that panics runs on a reactor thread: the panic is caught there, so the thread goes
/// on and a task on another channel, registered after it on the same thread, is still woken
/// (not only at a timeout's deadline).
#[test]
fn a_panicking_waker_does_not_stop_the_reactor() {
    struct Panics;
    impl std::task::Wake for Panics {
        fn wake(self: std::sync::Arc<Self>) {
            panic!("this waker panics on purpose (tests/async.rs)");
        }
    }
    let _serial = serial(); // registers waiters: not beside the tests that count them
    let (tx1, mut rx1) = spsc::channel::<u64>(4).unwrap();
    let waker = Waker::from(std::sync::Arc::new(Panics));
    let mut cx = Context::from_waker(&waker);
    let mut first = Box::pin(rx1.recv_async());
    assert!(first.as_mut().poll(&mut cx).is_pending());
    tx1.send(1).unwrap(); // the reactor wakes the panicking waker
    std::thread::sleep(Duration::from_millis(100));
    runtime(false).block_on(async {
        let (tx2, mut rx2) = spsc::channel::<u64>(4).unwrap();
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            tx2.send(2).unwrap();
            tx2
        });
        let t0 = Instant::now();
        let got = tokio::time::timeout(Duration::from_secs(10), rx2.recv_async()).await;
        assert_eq!(got.expect("woken before the timeout"), Ok(2));
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "woken by the reactor, not by the timeout: {:?}",
            t0.elapsed()
        );
        drop(sender.join().unwrap());
    });
    drop(first);
}
