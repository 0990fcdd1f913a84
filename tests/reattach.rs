//! Channels that outlive their peers, with real processes on every backend: a long-lived
//! sender and 200 successive receivers (half killed with SIGKILL at random points), a
//! long-lived receiver and 200 successive senders, an MPMC producer and 300 workers over its
//! life (4 at once, killed and replaced), receivers killed holding a `Ref` or a `Frame`, a frame
//! sender killed mid-loan and replaced, a pipe with two successive writers, and the send-side
//! rules for a receiver that died (the first send after it died asleep is refused; otherwise
//! within 64 sends).
//!
//! Children print each message they received before freeing it (`common::AnyReceiver`), so a
//! kill between the print and the free shows up here as that message printed twice: the
//! at-least-once delivery of the one message a killed receiver held.
// Test helpers are not crate code checked by loom; plain std atomics are right here.
#![allow(clippy::disallowed_types)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Cleanup, Msg, Peer, assert_gone, backends, spawn, unique_name};
use shmchan::{
    Backend, Options, RecvTimeoutError, SendTimeoutError, TrySendError, frame, mpmc, pipe, spsc,
};

const SHORT: Duration = Duration::from_secs(10);

#[test]
#[ignore = "run as a child process by the other tests"]
fn child_main() {
    common::child_main();
}

/// A small deterministic generator (xorshift), seeded per test.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// The `GOT <seq>` lines among `lines`, in order.
fn got(lines: &[String]) -> Vec<u64> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("GOT "))
        .map(|s| s.parse().unwrap())
        .collect()
}

/// Run one receiver child of `kind` to its end: it exits after `n` messages, or (`kill`) is
/// killed after printing a random number of them while it keeps receiving. Returns what it
/// printed that it received.
fn one_receiver(
    kind: &str,
    name: &str,
    backend: &Backend,
    cap: u64,
    n: u64,
    kill: Option<u64>,
) -> (Peer, Vec<u64>) {
    let mut child = spawn(
        "re-recv",
        name,
        backend,
        &[
            ("SHMCHAN_TEST_KIND", kind.into()),
            ("SHMCHAN_TEST_N", n.to_string()),
            ("SHMCHAN_TEST_CAP", cap.to_string()),
        ],
    );
    child.expect_line("READY", SHORT);
    let mut lines = Vec::new();
    if let Some(after) = kill {
        while (lines.len() as u64) < after {
            lines.push(child.next_line(SHORT).expect("the child lives"));
        }
        child.kill9();
        child.reap();
    } else {
        child.assert_success(SHORT);
    }
    lines.extend(child.rest(SHORT));
    (child, got(&lines))
}

/// Check what successive receivers got from one sender of `0..sent`: every value, in order,
/// and a value twice only where the receiver before was killed, at most once per kill.
/// `runs` holds each receiver's values and whether it was killed; `rest` what was left after.
fn check_in_order(runs: &[(Vec<u64>, bool)], rest: &[u64], sent: u64) -> usize {
    let mut next = 0u64;
    let mut dups = 0;
    let mut prev_killed = false;
    let all = runs
        .iter()
        .map(|(v, k)| (v.as_slice(), *k))
        .chain(std::iter::once((rest, false)));
    for (i, (values, killed)) in all.enumerate() {
        for (j, &v) in values.iter().enumerate() {
            if v == next {
                next += 1;
            } else if j == 0 && prev_killed && v + 1 == next {
                dups += 1; // the message the killed one held, delivered again
            } else {
                panic!("receiver {i}: got {v}, expected {next} (values {values:?})");
            }
        }
        prev_killed = killed;
    }
    assert_eq!(next, sent, "every value sent was received");
    dups
}

/// A long-lived sender (a thread of this process) and 200 successive receiver processes, half
/// of them killed at random points: every value delivered, in order, a duplicate only where a
/// receiver was killed holding it (at most one per kill).
fn long_lived_sender(kind: &str, backend: Backend) {
    let name = unique_name(&format!("re-tx-{kind}"));
    let _cleanup = Cleanup(name.clone(), backend.clone());
    let cap = if kind == "frame" { 2048 } else { 64 };
    let opts = Options::new()
        .backend(backend.clone())
        .capacity(cap as usize);
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let stop = stop.clone();
        let mut tx = if kind == "frame" {
            common::AnySender::Frame(frame::Sender::create(&name, &opts).unwrap())
        } else {
            common::AnySender::Spsc(spsc::Sender::<Msg>::create(&name, &opts).unwrap())
        };
        std::thread::spawn(move || {
            let mut seq = 0;
            while !stop.load(Ordering::Relaxed) {
                if tx.send_timeout(seq) {
                    seq += 1;
                } else {
                    let _ = tx.wait_for_peer_for(Duration::from_millis(20));
                }
            }
            (tx, seq)
        })
    };
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ cap);
    let mut runs = Vec::new();
    let mut kills = 0;
    for i in 0..200 {
        let kill = (i % 2 == 1).then(|| 1 + rng.below(150));
        let n = if kill.is_some() {
            0
        } else {
            1 + rng.below(150)
        };
        let (_child, values) = one_receiver(kind, &name, &backend, cap, n, kill);
        kills += usize::from(kill.is_some());
        runs.push((values, kill.is_some()));
    }
    stop.store(true, Ordering::Relaxed);
    let (tx, sent) = sender.join().unwrap();
    // The last receiver: this process, after the sender left.
    let mut rest = Vec::new();
    match tx {
        common::AnySender::Spsc(tx) => {
            let rx = spsc::Receiver::<Msg>::open(&name, &opts).unwrap();
            drop(tx);
            rest.extend(rx.iter().map(|m| m.seq));
        }
        common::AnySender::Frame(tx) => {
            let mut rx = frame::Receiver::open(&name, &opts).unwrap();
            drop(tx);
            while let Ok(f) = rx.recv() {
                rest.push(common::frame_seq(&f).expect("intact frame"));
            }
        }
    }
    let dups = check_in_order(&runs, &rest, sent);
    assert!(
        dups <= kills,
        "{backend}: {dups} duplicates for {kills} kills"
    );
    eprintln!(
        "{kind} on {backend}: {sent} sent to 200 receivers, {kills} killed, {dups} delivered twice"
    );
    assert_gone(&name, &backend);
}

impl common::AnySender {
    /// Send `seq`, waiting at most 100 ms for room: false if not sent (no receiver, or full).
    fn send_timeout(&mut self, seq: u64) -> bool {
        let t = Duration::from_millis(100);
        match self {
            common::AnySender::Spsc(tx) => tx.send_timeout(Msg::new(seq), t).is_ok(),
            common::AnySender::Frame(tx) => tx.send_timeout(&common::frame_msg(seq), t).is_ok(),
        }
    }

    fn wait_for_peer_for(&self, t: Duration) -> Result<(), shmchan::WaitForPeerError> {
        match self {
            common::AnySender::Spsc(tx) => tx.wait_for_peer(t),
            common::AnySender::Frame(tx) => tx.wait_for_peer(t),
        }
    }
}

#[test]
fn spsc_receivers_come_and_go_posix() {
    long_lived_sender("spsc", Backend::Posix);
}

#[test]
fn spsc_receivers_come_and_go_sysv() {
    long_lived_sender("spsc", Backend::SysV);
}

#[test]
fn spsc_receivers_come_and_go_file() {
    let dir = common::file_dir();
    long_lived_sender("spsc", dir.backend());
}

#[test]
fn frame_receivers_come_and_go() {
    for backend in backends() {
        long_lived_sender("frame", backend);
    }
}

/// A long-lived receiver (a thread of this process) and 200 successive sender processes of
/// `kind`, half killed at random points: each sender's values arrive whole, in order, none
/// twice, none lost of those it was told were sent, and the senders one after the other.
fn long_lived_receiver(kind: &str, backend: Backend) {
    let name = unique_name(&format!("re-rx-{kind}"));
    let _cleanup = Cleanup(name.clone(), backend.clone());
    let cap = if kind == "frame" { 2048 } else { 64 };
    let opts = Options::new().backend(backend.clone()).capacity(cap);
    let stop = Arc::new(AtomicBool::new(false));
    let receiver = {
        let stop = stop.clone();
        let mut rx = if kind == "frame" {
            Rx::Frame(frame::Receiver::create(&name, &opts).unwrap())
        } else {
            Rx::Spsc(spsc::Receiver::<Msg>::create(&name, &opts).unwrap())
        };
        std::thread::spawn(move || {
            let mut got = Vec::new();
            let mut changes = 0;
            let mut connected = false;
            while !stop.load(Ordering::Relaxed) {
                match rx.recv_timeout(Duration::from_millis(20)) {
                    Ok(seq) => got.push(seq),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => {
                        let _ = rx.wait_for_peer(Duration::from_millis(20));
                    }
                }
                if rx.is_connected() != connected {
                    connected = !connected;
                    changes += 1;
                }
            }
            (got, changes)
        })
    };
    let mut rng = Rng(0x5851_f42d_4c95_7f2d ^ cap as u64);
    let mut acked = Vec::new();
    for i in 0u64..200 {
        let kill = (i % 2 == 1).then(|| 1 + rng.below(150));
        let n = if kill.is_some() {
            1 << 20
        } else {
            1 + rng.below(150)
        };
        let mut child = spawn(
            "re-send",
            &name,
            &backend,
            &[
                ("SHMCHAN_TEST_KIND", kind.into()),
                ("SHMCHAN_TEST_N", n.to_string()),
                ("SHMCHAN_TEST_BASE", (i << 32).to_string()),
                ("SHMCHAN_TEST_CAP", cap.to_string()),
            ],
        );
        child.expect_line("READY", SHORT);
        let mut lines = Vec::new();
        if let Some(after) = kill {
            while (lines.len() as u64) < after {
                lines.push(child.next_line(SHORT).expect("the child lives"));
            }
            child.kill9();
            child.reap();
        } else {
            child.assert_success(SHORT);
        }
        lines.extend(child.rest(SHORT));
        let sent = lines.iter().filter(|l| l.starts_with("SENT ")).count() as u64;
        acked.push((sent, kill.is_none().then_some(n)));
    }
    // Let the receiver take what the last sender left, then stop it.
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let (got, changes) = receiver.join().unwrap();
    let mut next = vec![0u64; 200];
    let mut last_sender = 0;
    for &v in &got {
        let (s, j) = ((v >> 32) as usize, v & 0xffff_ffff);
        assert!(
            s >= last_sender,
            "{backend}: sender {s} after sender {last_sender}"
        );
        last_sender = s;
        assert_eq!(
            j, next[s],
            "{backend}: sender {s}: in order, none lost or twice"
        );
        next[s] += 1;
    }
    for (s, &(sent, all)) in acked.iter().enumerate() {
        assert!(
            next[s] >= sent,
            "{backend}: sender {s} was told {sent} went, {} arrived",
            next[s]
        );
        if let Some(all) = all {
            assert_eq!(next[s], all, "{backend}: sender {s} finished");
        }
    }
    assert!(
        changes >= 100,
        "{backend}: the receiver saw its peer come and go ({changes})"
    );
    eprintln!(
        "{kind} on {backend}: {} received from 200 senders",
        got.len()
    );
}

/// A receiver of either kind, for [`long_lived_receiver`].
enum Rx {
    Spsc(spsc::Receiver<Msg>),
    Frame(frame::Receiver),
}

impl Rx {
    fn recv_timeout(&mut self, t: Duration) -> Result<u64, RecvTimeoutError> {
        match self {
            Rx::Spsc(rx) => rx.recv_timeout(t).map(|m| {
                assert!(m.is_intact(), "torn {m:?}");
                m.seq
            }),
            Rx::Frame(rx) => rx
                .recv_timeout(t)
                .map(|f| common::frame_seq(&f).expect("an intact frame")),
        }
    }

    fn wait_for_peer(&self, t: Duration) -> Result<(), shmchan::WaitForPeerError> {
        match self {
            Rx::Spsc(rx) => rx.wait_for_peer(t),
            Rx::Frame(rx) => rx.wait_for_peer(t),
        }
    }

    fn is_connected(&self) -> bool {
        match self {
            Rx::Spsc(rx) => rx.is_connected(),
            Rx::Frame(rx) => rx.is_connected(),
        }
    }
}

#[test]
fn spsc_senders_come_and_go() {
    for backend in backends() {
        long_lived_receiver("spsc", backend);
    }
}

#[test]
fn frame_senders_come_and_go() {
    for backend in backends() {
        long_lived_receiver("frame", backend);
    }
}

/// An MPMC work queue: a long-lived producer (a thread here) and 300 worker processes over
/// its life, 4 at once (`max_receivers(4)`), each either finishing its share or killed at a
/// random point and replaced: every message delivered, exactly once except at most one
/// more delivery per killed worker (the message it held, handed to the next).
#[test]
fn mpmc_workers_come_and_go() {
    for backend in backends() {
        let name = unique_name("re-mpmc");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let opts = Options::new()
            .backend(backend.clone())
            .capacity(64)
            .max_receivers(4);
        let tx = mpmc::Sender::<Msg>::create(&name, &opts).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let producer = {
            let stop = stop.clone();
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut seq = 0;
                while !stop.load(Ordering::Relaxed) {
                    match tx.send_timeout(Msg::new(seq), Duration::from_millis(50)) {
                        Ok(()) => seq += 1,
                        Err(SendTimeoutError::Timeout(_)) => {}
                        Err(SendTimeoutError::Disconnected(_)) => {
                            let _ = tx.wait_for_peer(Duration::from_millis(20));
                        }
                    }
                }
                seq
            })
        };
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let spawn_worker = |rng: &mut Rng| {
            let kill = rng.below(2) == 1;
            let n = if kill { 0 } else { 1 + rng.below(200) };
            let child = spawn(
                "re-recv",
                &name,
                &backend,
                &[
                    ("SHMCHAN_TEST_KIND", "mpmc".into()),
                    ("SHMCHAN_TEST_N", n.to_string()),
                    ("SHMCHAN_TEST_CAP", "64".into()),
                ],
            );
            child.expect_line("READY", SHORT);
            (
                child,
                kill.then(|| 1 + rng.below(200)),
                Vec::<String>::new(),
            )
        };
        let mut workers: Vec<_> = (0..4).map(|_| spawn_worker(&mut rng)).collect();
        let (mut started, mut kills) = (4, 0);
        let mut all = Vec::new();
        while !workers.is_empty() {
            // Take lines from each worker in turn; retire the ones done.
            let mut i = 0;
            while i < workers.len() {
                let (child, kill, lines) = &mut workers[i];
                let line = child.next_line(SHORT);
                let done = match (line, *kill) {
                    (Some(l), Some(after)) => {
                        lines.push(l);
                        if lines.len() as u64 >= after {
                            child.kill9();
                            child.reap();
                            true
                        } else {
                            false
                        }
                    }
                    (Some(l), None) => {
                        let last = l == "DONE";
                        lines.push(l);
                        last
                    }
                    (None, _) => true,
                };
                if done {
                    let (mut child, kill, mut lines) = workers.swap_remove(i);
                    if kill.is_none() {
                        child.assert_success(SHORT);
                    }
                    lines.extend(child.rest(SHORT));
                    all.extend(got(&lines));
                    kills += usize::from(kill.is_some());
                    if started < 300 {
                        workers.push(spawn_worker(&mut rng));
                        started += 1;
                    }
                } else {
                    i += 1;
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        let sent = producer.join().unwrap();
        let rx = mpmc::Receiver::<Msg>::open(&name, &opts).unwrap();
        drop(tx);
        all.extend(rx.iter().map(|m| m.seq));
        let mut count = vec![0u32; sent as usize];
        for &v in &all {
            count[v as usize] += 1;
        }
        let lost: Vec<_> = (0..sent).filter(|&v| count[v as usize] == 0).collect();
        let twice = count.iter().filter(|&&c| c == 2).count();
        assert!(lost.is_empty(), "{backend}: lost {lost:?}");
        assert!(
            count.iter().all(|&c| c <= 2),
            "{backend}: delivered three times"
        );
        assert!(
            twice <= kills,
            "{backend}: {twice} delivered twice for {kills} kills"
        );
        eprintln!("mpmc on {backend}: {sent} messages, 300 workers, {kills} killed, {twice} twice");
        drop(rx);
        assert_gone(&name, &backend);
    }
}

/// Receivers killed holding a message in place (an SPSC `Ref`, a `Frame`): the next receiver
/// gets that message, then the rest.
#[test]
fn a_message_held_by_a_killed_receiver_goes_to_the_next() {
    for backend in backends() {
        for kind in ["spsc", "frame"] {
            let name = unique_name(&format!("re-hold-{kind}"));
            let _cleanup = Cleanup(name.clone(), backend.clone());
            let opts = Options::new().backend(backend.clone()).capacity(1024);
            let mut tx = if kind == "frame" {
                common::AnySender::Frame(frame::Sender::create(&name, &opts).unwrap())
            } else {
                common::AnySender::Spsc(spsc::Sender::<Msg>::create(&name, &opts).unwrap())
            };
            for seq in 0..3 {
                assert!(tx.send(seq));
            }
            let mut holder = spawn(
                "re-hold",
                &name,
                &backend,
                &[("SHMCHAN_TEST_KIND", kind.into())],
            );
            assert_eq!(holder.expect_line("HOLDING", SHORT), "0");
            holder.kill9();
            holder.reap();
            let got: Vec<u64> = match kind {
                "spsc" => {
                    let rx = spsc::Receiver::<Msg>::open(&name, &opts).unwrap();
                    rx.try_iter().map(|m| m.seq).collect()
                }
                _ => {
                    let mut rx = frame::Receiver::open(&name, &opts).unwrap();
                    let mut v = Vec::new();
                    while let Ok(f) = rx.try_recv() {
                        v.push(common::frame_seq(&f).unwrap());
                    }
                    v
                }
            };
            assert_eq!(got, [0, 1, 2], "{kind} on {backend}");
            drop(tx);
            assert_gone(&name, &backend);
        }
    }
}

/// A frame sender killed holding a loan it wrote into: the receiver gets every frame committed
/// before, never the loan, and the next sender (in the dead one's place) goes on after them.
#[test]
fn a_frame_sender_killed_mid_loan_is_replaced() {
    for backend in backends() {
        let name = unique_name("re-loan");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let opts = Options::new().backend(backend.clone()).capacity(1024);
        let mut rx = frame::Receiver::create(&name, &opts).unwrap();
        let mut loaner = spawn(
            "re-loan-frame",
            &name,
            &backend,
            &[
                ("SHMCHAN_TEST_N", "5".into()),
                ("SHMCHAN_TEST_CAP", "1024".into()),
            ],
        );
        loaner.expect_line("LOANED", SHORT);
        loaner.kill9();
        loaner.reap();
        let mut got = Vec::new();
        while let Ok(f) = rx.recv_timeout(SHORT) {
            got.push(common::frame_seq(&f).expect("never the loan's bytes"));
        }
        assert_eq!(got, [0, 1, 2, 3, 4], "{backend}");
        let mut tx = frame::Sender::open(&name, &opts).unwrap();
        for seq in 5..12 {
            tx.send(&common::frame_msg(seq)).unwrap();
        }
        drop(tx);
        let mut after = Vec::new();
        while let Ok(f) = rx.recv() {
            after.push(common::frame_seq(&f).unwrap());
        }
        assert_eq!(after, (5..12).collect::<Vec<_>>(), "{backend}");
        drop(rx);
        assert_gone(&name, &backend);
    }
}

/// A pipe with two successive writers: the reader reads the first one's bytes, end of file,
/// then (the same reader) the second one's bytes and end of file again, as a FIFO does.
#[test]
fn a_pipe_reads_end_of_file_then_the_next_writer() {
    use std::io::Read;
    for backend in backends() {
        let name = unique_name("re-pipe");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let opts = Options::new().backend(backend.clone()).capacity(4096);
        let mut r = pipe::Reader::create(&name, &opts).unwrap();
        for (from, to) in [(0u64, 10_000u64), (10_000, 25_000)] {
            let mut w = spawn(
                "re-pipe-write",
                &name,
                &backend,
                &[
                    ("SHMCHAN_TEST_BASE", from.to_string()),
                    ("SHMCHAN_TEST_N", to.to_string()),
                ],
            );
            // (More than the ring holds, so the writer is still there when it is found.)
            r.wait_for_peer(SHORT).unwrap();
            let mut bytes = Vec::new();
            r.read_to_end(&mut bytes).unwrap(); // to this writer's end of file
            w.assert_success(SHORT);
            let want: Vec<u8> = (from..to).map(common::stream_byte).collect();
            assert_eq!(bytes.len(), want.len(), "{backend}: writer from {from}");
            assert!(bytes == want, "{backend}: writer from {from}: bytes differ");
        }
        drop(r);
        assert_gone(&name, &backend);
    }
}

/// Open a sender of `kind` for the send-side tests.
fn sender_of(kind: &str, name: &str, opts: &Options) -> Box<dyn FnMut(u64) -> Result<(), ()>> {
    match kind {
        "spsc" => {
            let tx = spsc::Sender::<Msg>::create(name, opts).unwrap();
            Box::new(move |s| {
                tx.try_send(Msg::new(s))
                    .map_err(|e| assert!(matches!(e, TrySendError::Disconnected(_))))
            })
        }
        "mpmc" => {
            let tx = mpmc::Sender::<Msg>::create(name, opts).unwrap();
            Box::new(move |s| {
                tx.try_send(Msg::new(s))
                    .map_err(|e| assert!(matches!(e, TrySendError::Disconnected(_))))
            })
        }
        "frame" => {
            let mut tx = frame::Sender::create(name, opts).unwrap();
            Box::new(move |s| {
                tx.try_send(&common::frame_msg(s))
                    .map_err(|e| assert_eq!(e, frame::TrySendError::Disconnected))
            })
        }
        "pipe" => {
            use std::io::Write;
            let mut w = pipe::Writer::create(name, opts).unwrap();
            Box::new(move |_| {
                w.write_all(b"0123456789abcdef")
                    .map_err(|e| assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe))
            })
        }
        k => panic!("kind {k}"),
    }
}

/// A receiver killed while asleep in a receive: the very first send after that is refused
/// (the sender asks the kernel before ringing the doorbell), for every kind on every backend.
#[test]
fn the_first_send_after_a_receiver_died_asleep_is_refused() {
    for backend in backends() {
        for kind in ["spsc", "mpmc", "frame", "pipe"] {
            let name = unique_name(&format!("re-asleep-{kind}"));
            let _cleanup = Cleanup(name.clone(), backend.clone());
            let opts = Options::new().backend(backend.clone()).capacity(1 << 16);
            let mut send = sender_of(kind, &name, &opts);
            let mut child = spawn(
                "re-idle",
                &name,
                &backend,
                &[
                    ("SHMCHAN_TEST_KIND", kind.into()),
                    ("SHMCHAN_TEST_PARK", "1".into()),
                    ("SHMCHAN_TEST_CAP", (1 << 16).to_string()),
                ],
            );
            child.expect_line("READY", SHORT);
            // Asleep: well past the spinning phase (50 µs) of the default wait strategy.
            std::thread::sleep(Duration::from_millis(100));
            child.kill9();
            child.reap();
            assert_eq!(
                send(0),
                Err(()),
                "{kind} on {backend}: the first send is refused"
            );
        }
    }
}

/// A receiver that drops its handle (its process lives on, so no probe of the kernel could
/// tell) is seen by the very next send, for every kind on every backend; with two MPMC
/// receivers, only once both have dropped; and a receiver attaching after that is sent to again.
#[test]
fn the_first_send_after_the_last_receiver_dropped_is_refused() {
    for backend in backends() {
        for kind in ["spsc", "mpmc", "frame", "pipe"] {
            let name = unique_name(&format!("re-drop-{kind}"));
            let _cleanup = Cleanup(name.clone(), backend.clone());
            let opts = Options::new().backend(backend.clone()).capacity(1 << 16);
            let mut send = sender_of(kind, &name, &opts);
            let dir = common::file_dir();
            let mut n = 0;
            // A receiver child that drops its handle when its file is written.
            let mut receiver = || {
                n += 1;
                let go = dir.path().join(format!("go{n}"));
                let env = [
                    ("SHMCHAN_TEST_KIND", kind.to_owned()),
                    ("SHMCHAN_TEST_CAP", (1 << 16).to_string()),
                    ("SHMCHAN_TEST_OUT", go.display().to_string()),
                ];
                let child = spawn("re-drop", &name, &backend, &env);
                child.expect_line("READY", SHORT);
                (child, go)
            };
            let drop_it = |(child, go): &(Peer, std::path::PathBuf)| {
                std::fs::write(go, b"").unwrap();
                child.expect_line("DROPPED", SHORT);
            };
            let mut first = vec![receiver()];
            if kind == "mpmc" {
                first.push(receiver());
            }
            assert_eq!(send(0), Ok(()), "{kind} on {backend}: receivers attached");
            let (last, others) = first.split_last().unwrap();
            for r in others {
                drop_it(r);
                assert_eq!(send(1), Ok(()), "{kind} on {backend}: one receiver is left");
            }
            drop_it(last);
            assert_eq!(
                send(2),
                Err(()),
                "{kind} on {backend}: the first send after the last drop"
            );
            assert_eq!(send(3), Err(()), "{kind} on {backend}: and the next");
            let late = receiver();
            assert_eq!(
                send(4),
                Ok(()),
                "{kind} on {backend}: a new receiver attached"
            );
            drop_it(&late);
            assert_eq!(send(5), Err(()), "{kind} on {backend}: it left too");
            // (The children hang until their `Peer`s, dropped here, kill them.)
        }
    }
}

/// A receiver killed while not receiving (not asleep): sends to it stop succeeding within
/// 64 sends (or 40 ms), for every kind on every backend (frames and pipes were at 256 and 128).
#[test]
fn sends_to_a_dead_idle_receiver_stop_within_64() {
    for backend in backends() {
        for kind in ["spsc", "mpmc", "frame", "pipe"] {
            let name = unique_name(&format!("re-idle-{kind}"));
            let _cleanup = Cleanup(name.clone(), backend.clone());
            let opts = Options::new().backend(backend.clone()).capacity(1 << 16);
            let mut send = sender_of(kind, &name, &opts);
            let mut child = spawn(
                "re-idle",
                &name,
                &backend,
                &[
                    ("SHMCHAN_TEST_KIND", kind.into()),
                    ("SHMCHAN_TEST_CAP", (1 << 16).to_string()),
                ],
            );
            child.expect_line("READY", SHORT);
            child.kill9();
            child.reap();
            // One send every millisecond: a probe is due by the 64th.
            let t0 = Instant::now();
            let mut n = 0;
            while send(n).is_ok() {
                n += 1;
                assert!(t0.elapsed() < SHORT, "{kind} on {backend}: never refused");
                std::thread::sleep(Duration::from_millis(1));
            }
            assert!(
                n <= 64,
                "{kind} on {backend}: {n} sends went to a dead receiver"
            );
        }
    }
}

/// The async forms reconnect too: a receiver's `stream()` ends when its sender is gone and
/// the ring is drained, and a new `stream()` on the same handle yields what the next sender
/// sends; `recv_async` likewise.
#[test]
fn async_receives_go_on_with_the_next_sender() {
    use futures_core::Stream;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for backend in backends() {
        let name = unique_name("re-async");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let opts = Options::new().backend(backend.clone());
        let mut rx = spsc::Receiver::<Msg>::create(&name, &opts).unwrap();
        for round in 0..3 {
            let mut child = spawn("send", &name, &backend, &[("SHMCHAN_TEST_N", "5".into())]);
            child.expect_line("READY", SHORT);
            let got = rt.block_on(async {
                let mut got = Vec::new();
                if round == 2 {
                    while let Ok(m) = rx.recv_async().await {
                        got.push(m.seq);
                    }
                } else {
                    let mut s = rx.stream();
                    while let Some(m) =
                        std::future::poll_fn(|cx| std::pin::Pin::new(&mut s).poll_next(cx)).await
                    {
                        got.push(m.seq);
                    }
                }
                got
            });
            assert_eq!(got, [0, 1, 2, 3, 4], "{backend}, round {round}");
            child.assert_success(SHORT);
        }
        drop(rx);
        assert_gone(&name, &backend);
    }
}

/// Rings smaller than the `tail` hint's checkpoint (64 messages): the hint then lags the
/// consumer's position by more than the capacity, which is no sign of corruption, and a
/// receiver or a sender taking over must be let in (both were refused as a corrupt ring,
/// since the hint is stored only every 64 messages). Capacity 4, every backend: a receiver
/// takes 10 messages and leaves, the next one attaches and gets what follows; a sender process
/// killed after 10 sends (its last position never stored), the next sender attaches and its
/// messages follow.
#[test]
fn rings_smaller_than_the_checkpoint_take_new_peers() {
    for backend in backends() {
        let name = unique_name("re-small");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let opts = Options::new().backend(backend.clone()).capacity(4);
        let rx = spsc::Receiver::<Msg>::create(&name, &opts).unwrap();
        // A sender process, killed after its 10 sends were received.
        let mut sender = spawn(
            "send",
            &name,
            &backend,
            &[
                ("SHMCHAN_TEST_CAP", "4".into()),
                ("SHMCHAN_TEST_N", "10".into()),
                ("SHMCHAN_TEST_HANG", "1".into()),
            ],
        );
        for i in 0..10 {
            assert_eq!(rx.recv_timeout(SHORT).unwrap().seq, i, "{backend}");
        }
        sender.expect_line("SENT", SHORT);
        sender.kill9();
        sender.reap();
        let tx = spsc::Sender::<Msg>::open(&name, &opts)
            .unwrap_or_else(|e| panic!("{backend}: the next sender: {e}"));
        tx.send(Msg::new(10)).unwrap();
        assert_eq!(rx.recv_timeout(SHORT).unwrap().seq, 10, "{backend}");
        // A receiver that took 10 (in this process) and left; the next one attaches.
        for i in 11..21 {
            tx.send(Msg::new(i)).unwrap();
            assert_eq!(rx.recv_timeout(SHORT).unwrap().seq, i, "{backend}");
        }
        drop(rx);
        let rx = spsc::Receiver::<Msg>::open(&name, &opts)
            .unwrap_or_else(|e| panic!("{backend}: the next receiver: {e}"));
        tx.send(Msg::new(21)).unwrap();
        assert_eq!(rx.recv_timeout(SHORT).unwrap().seq, 21, "{backend}");
        drop((tx, rx));
        assert_gone(&name, &backend);
    }
}
