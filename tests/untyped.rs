//! Channels of a payload type known at run time (`shmchan::untyped`) and type names set in
//! the options (`Options::type_name`): a Rust program with a `T` and one with only a name, a
//! size and an alignment are peers, between real processes, over every backend, for SPSC and
//! MPMC, in both directions; anything that differs is refused with a clear error.

mod common;

use std::time::Duration;

use common::{Cleanup, Msg, backends, decode, env_u64, spawn, unique_name};
use shmchan::broadcast::{self, Overflow, Start};
use shmchan::untyped::{self, Element};
use shmchan::{Error, Options, RecvTimeoutError, TryRecvError, TrySendError, mpmc, spsc};

const N: u64 = 20_000;
const SHORT: Duration = Duration::from_secs(10);
const LONG: Duration = Duration::from_secs(60);

/// The same 16 bytes as `Msg`, under another Rust name: it agrees with a `Msg` channel only
/// when given the name `Msg` (`Options::type_name`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
struct WireMsg {
    seq: u64,
    check: u64,
}

/// A send of a batch, whichever the kind.
type SendFn = Box<dyn Fn(&[u8])>;
/// A receive into a buffer, whichever the kind.
type RecvFn = Box<dyn Fn(&mut [u8]) -> Result<usize, RecvTimeoutError>>;

/// Held by the tests that count the process's async registrations (`registered_waiters`), so
/// that none of them runs beside another that registers.
static ASYNC: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ASYNC.lock().unwrap_or_else(|e| e.into_inner())
}

fn element() -> Element {
    Element::of::<Msg>("Msg")
}

fn msg_bytes(seq: u64) -> [u8; 16] {
    bytemuck::cast(Msg::new(seq))
}

/// Entry point of the child processes: `typed-send` sends `0..N` with a Rust `T` (`WireMsg`
/// named `Msg` by its options), `untyped-send` with an `Element`, in batches of 1 to 37; both
/// over SPSC or MPMC (`SHMCHAN_TEST_KIND`), then exit.
#[test]
#[ignore = "entry point of the child processes the other tests start"]
fn child_main() {
    let Ok(role) = std::env::var("SHMCHAN_TEST_ROLE") else {
        return;
    };
    let name = std::env::var("SHMCHAN_TEST_NAME").unwrap();
    let opts = Options::new().backend(decode(&std::env::var("SHMCHAN_TEST_BACKEND").unwrap()));
    let n = env_u64("SHMCHAN_TEST_N", 0);
    let mpmc = std::env::var("SHMCHAN_TEST_KIND").as_deref() == Ok("mpmc");
    match (role.as_str(), mpmc) {
        ("typed-send", false) => {
            let tx = spsc::Sender::<WireMsg>::open(&name, &opts.type_name("Msg")).unwrap();
            println!("READY");
            for i in 0..n {
                tx.send(bytemuck::cast(Msg::new(i))).unwrap();
            }
        }
        ("typed-send", true) => {
            let tx = mpmc::Sender::<WireMsg>::open(&name, &opts.type_name("Msg")).unwrap();
            println!("READY");
            for i in 0..n {
                tx.send(bytemuck::cast(Msg::new(i))).unwrap();
            }
        }
        ("untyped-send", kind) => {
            let all: Vec<u8> = (0..n).flat_map(msg_bytes).collect();
            let send: SendFn = if kind {
                let tx = untyped::mpmc::Sender::open(&name, &element(), &opts).unwrap();
                Box::new(move |b| tx.send(b).unwrap())
            } else {
                let tx = untyped::spsc::Sender::open(&name, &element(), &opts).unwrap();
                Box::new(move |b| tx.send(b).unwrap())
            };
            println!("READY");
            let (mut at, mut size) = (0usize, 1usize);
            while at < n as usize {
                let end = (at + size).min(n as usize);
                send(&all[at * 16..end * 16]);
                at = end;
                size = size % 37 + 1;
            }
        }
        // A typed subscriber of a Block-mode topic: receive until the publisher is gone,
        // every message intact and in order, and say how many.
        ("typed-sub", _) => {
            let mut rx =
                broadcast::Subscriber::<WireMsg>::open(&name, &opts.type_name("Msg")).unwrap();
            println!("READY");
            let mut next = 0u64;
            loop {
                match rx.recv_timeout(LONG) {
                    Ok(m) => check(bytemuck::bytes_of(&m), &mut next, "(typed subscriber)"),
                    Err(broadcast::RecvTimeoutError::Disconnected) => break,
                    Err(e) => panic!("{e} after {next}"),
                }
            }
            println!("GOT {next}");
        }
        (other, _) => panic!("unknown role {other}"),
    }
    println!("SENT");
    if std::env::var("SHMCHAN_TEST_HANG").as_deref() == Ok("1") {
        loop {
            std::thread::sleep(Duration::from_secs(60)); // until killed
        }
    }
}

/// Check a received run of `Msg` bytes against the next sequence numbers.
fn check(bytes: &[u8], next: &mut u64, on: &str) {
    for chunk in bytes.chunks_exact(16) {
        let m: Msg = bytemuck::pod_read_unaligned(chunk);
        assert!(m.is_intact(), "torn {m:?} {on}");
        assert_eq!(m.seq, *next, "order {on}");
        *next += 1;
    }
}

/// A Rust sender of a `T` named by its options, in a child; an untyped receiver here, taking
/// batches of varying sizes: every message intact, once, in order, then `Disconnected`.
/// SPSC and MPMC, every backend.
#[test]
fn an_untyped_receiver_takes_a_typed_senders_messages() {
    for kind in ["spsc", "mpmc"] {
        for backend in backends() {
            let name = unique_name("untyped-rx");
            let _c = Cleanup(name.clone(), backend.clone());
            let opts = Options::new().backend(backend.clone()).capacity(64);
            let on = format!("({kind} on {backend})");
            let recv: RecvFn = if kind == "mpmc" {
                let rx = untyped::mpmc::Receiver::create(&name, &element(), &opts).unwrap();
                Box::new(move |b| rx.recv_timeout(b, LONG))
            } else {
                let rx = untyped::spsc::Receiver::create(&name, &element(), &opts).unwrap();
                Box::new(move |b| rx.recv_timeout(b, LONG))
            };
            let mut child = spawn(
                "typed-send",
                &name,
                &backend,
                &[
                    ("SHMCHAN_TEST_N", N.to_string()),
                    ("SHMCHAN_TEST_KIND", kind.into()),
                ],
            );
            child.expect_line("READY", SHORT);
            let mut buf = vec![0u8; 16 * 50];
            let (mut next, mut size) = (0u64, 1usize);
            loop {
                match recv(&mut buf[..16 * size]) {
                    Ok(n) => {
                        assert!((1..=size).contains(&n), "{n} of at most {size} {on}");
                        check(&buf[..16 * n], &mut next, &on);
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                    Err(e) => panic!("{e} after {next} {on}"),
                }
                size = size % 50 + 1;
            }
            assert_eq!(next, N, "{on}");
            assert!(child.wait(SHORT).success(), "{on}");
        }
    }
}

/// The reverse: an untyped sender in a child, sending batches of 1 to 37; a Rust receiver of
/// a `T` named by its options here.
#[test]
fn a_typed_receiver_takes_an_untyped_senders_messages() {
    for kind in ["spsc", "mpmc"] {
        for backend in backends() {
            let name = unique_name("untyped-tx");
            let _c = Cleanup(name.clone(), backend.clone());
            let opts = Options::new()
                .backend(backend.clone())
                .capacity(64)
                .type_name("Msg");
            let on = format!("({kind} on {backend})");
            let recv: Box<dyn Fn() -> Result<WireMsg, RecvTimeoutError>> = if kind == "mpmc" {
                let rx = mpmc::Receiver::<WireMsg>::create(&name, &opts).unwrap();
                Box::new(move || rx.recv_timeout(LONG))
            } else {
                let rx = spsc::Receiver::<WireMsg>::create(&name, &opts).unwrap();
                Box::new(move || rx.recv_timeout(LONG))
            };
            let mut child = spawn(
                "untyped-send",
                &name,
                &backend,
                &[
                    ("SHMCHAN_TEST_N", N.to_string()),
                    ("SHMCHAN_TEST_KIND", kind.into()),
                ],
            );
            child.expect_line("READY", SHORT);
            let mut next = 0u64;
            loop {
                match recv() {
                    Ok(m) => check(bytemuck::bytes_of(&m), &mut next, &on),
                    Err(RecvTimeoutError::Disconnected) => break,
                    Err(e) => panic!("{e} after {next} {on}"),
                }
            }
            assert_eq!(next, N, "{on}");
            assert!(child.wait(SHORT).success(), "{on}");
        }
    }
}

/// A name, size or alignment that differs is `Incompatible`, naming both sides; an element
/// that cannot be, or a name with `::`, is `InvalidOptions`; a Rust type under its own name
/// is refused by a channel of another name (the default names a type without module paths).
#[test]
fn mismatches_are_refused_with_what_differs() {
    for backend in backends() {
        let name = unique_name("untyped-mismatch");
        let _c = Cleanup(name.clone(), backend.clone());
        let opts = Options::new().backend(backend.clone());
        let _rx =
            untyped::spsc::Receiver::create(&name, &Element::new("Quote", 24, 8), &opts).unwrap();
        for (bad, what) in [
            (Element::new("Quot", 24, 8), "name"),
            (Element::new("Quote", 32, 8), "size"),
            (Element::new("Quote", 24, 4), "alignment"),
        ] {
            let e = untyped::spsc::Sender::open(&name, &bad, &opts).unwrap_err();
            let text = e.to_string();
            assert!(matches!(e, Error::Incompatible { .. }), "{what}: {e:?}");
            assert!(
                text.contains("24-byte") && text.contains(&name),
                "{what}: {text}"
            );
            // Both sides by name: the creator's (from the header) and this handle's.
            assert!(text.contains("`Quote`, 24-byte"), "{what}: {text}");
            assert!(
                text.contains(&format!("`{}`", bad.name())),
                "{what}: {text}"
            );
        }
        // A Rust type of the right size and alignment, under its Rust name (`[u64; 3]`), and
        // then named `Quote`.
        let e = spsc::Sender::<[u64; 3]>::open(&name, &opts).unwrap_err();
        assert!(matches!(e, Error::Incompatible { .. }), "{e:?}");
        assert!(e.to_string().contains("[u64; 3]"), "{e}");
        let tx = spsc::Sender::<[u64; 3]>::open(&name, &opts.clone().type_name("Quote")).unwrap();
        drop(tx);
        // An MPMC handle on an SPSC channel.
        let e = untyped::mpmc::Sender::open(&name, &Element::new("Quote", 24, 8), &opts);
        assert!(matches!(e, Err(Error::Incompatible { .. })), "{e:?}");
    }
    let opts = Options::new();
    for (bad, says) in [
        (Element::new("", 8, 8), "1 to 104 bytes"),
        (Element::new("a::Quote", 8, 8), "without `::`"),
        (Element::new("x".repeat(105), 8, 8), "1 to 104 bytes"),
        (Element::new("Zero", 0, 1), "0 bytes"),
        (Element::new("Odd", 12, 3), "power of two"),
        (Element::new("Loose", 12, 8), "divides the size"),
        (Element::new("Bell\u{7}", 8, 8), "control"),
    ] {
        let name = unique_name("untyped-invalid");
        let e = untyped::spsc::Sender::create(&name, &bad, &opts).unwrap_err();
        assert!(
            matches!(&e, Error::InvalidOptions { reason } if reason.contains(says)),
            "{bad:?}: {e}"
        );
        assert!(
            !common::exists(&name, &shmchan::Backend::Posix),
            "{bad:?} left {name}"
        );
    }
    let name = unique_name("untyped-invalid");
    let e = mpmc::Receiver::<u64>::create(&name, &opts.clone().type_name("a::b")).unwrap_err();
    assert!(matches!(e, Error::InvalidOptions { .. }), "{e:?}");
}

/// Batches: `try_send` sends the prefix there is room for and says how many; `try_recv` fills
/// what `buf` holds and leaves the rest; a receiver that finds the ring empty after the sender
/// left is `Disconnected`.
#[test]
fn batches_send_what_fits_and_receive_what_is_ready() {
    for backend in backends() {
        for kind in ["spsc", "mpmc"] {
            let name = unique_name("untyped-batch");
            let _c = Cleanup(name.clone(), backend.clone());
            let opts = Options::new().backend(backend.clone()).capacity(8);
            let e = Element::new("u32", 4, 4);
            let values: Vec<u8> = (0u32..20).flat_map(u32::to_ne_bytes).collect();
            let mut buf = [0u8; 4 * 5];
            let on = format!("({kind} on {backend})");
            if kind == "spsc" {
                let tx = untyped::spsc::Sender::create(&name, &e, &opts).unwrap();
                let rx = untyped::spsc::Receiver::open(&name, &e, &opts).unwrap();
                assert_eq!(tx.try_send(&values), Ok(8), "{on}");
                assert_eq!(
                    tx.try_send(&values[32..]),
                    Err(TrySendError::Full(())),
                    "{on}"
                );
                assert_eq!(rx.try_recv(&mut buf), Ok(5), "{on}");
                assert_eq!(buf[..], values[..20], "{on}");
                assert_eq!(rx.len(), 3, "{on}");
                tx.send_timeout(&values[32..52], SHORT).unwrap();
                drop(tx);
                let mut rest = Vec::new();
                while let Ok(n) = rx.try_recv(&mut buf) {
                    rest.extend_from_slice(&buf[..4 * n]);
                }
                assert_eq!(rest[..], values[20..52], "{on}");
                assert_eq!(
                    rx.try_recv(&mut buf),
                    Err(TryRecvError::Disconnected),
                    "{on}"
                );
            } else {
                let tx = untyped::mpmc::Sender::create(&name, &e, &opts).unwrap();
                let rx = untyped::mpmc::Receiver::open(&name, &e, &opts).unwrap();
                assert_eq!(tx.try_send(&values), Ok(8), "{on}");
                assert_eq!(
                    tx.try_send(&values[32..]),
                    Err(TrySendError::Full(())),
                    "{on}"
                );
                assert_eq!(rx.try_recv(&mut buf), Ok(5), "{on}");
                assert_eq!(buf[..], values[..20], "{on}");
                tx.send_timeout(&values[32..52], SHORT).unwrap();
                drop(tx);
                let mut rest = Vec::new();
                while let Ok(n) = rx.try_recv(&mut buf) {
                    rest.extend_from_slice(&buf[..4 * n]);
                }
                assert_eq!(rest[..], values[20..52], "{on}");
                assert_eq!(
                    rx.try_recv(&mut buf),
                    Err(TryRecvError::Disconnected),
                    "{on}"
                );
            }
        }
    }
}

/// A buffer that is not whole elements is a caller's mistake: a panic that says so.
#[test]
#[should_panic(expected = "not a whole number of 4-byte elements")]
fn a_partial_element_panics_with_a_clear_message() {
    let name = unique_name("untyped-partial");
    let _c = Cleanup(name.clone(), shmchan::Backend::Posix);
    let tx =
        untyped::spsc::Sender::create(&name, &Element::new("u32", 4, 4), &Options::new()).unwrap();
    let _ = tx.try_send(&[0u8; 6]);
}

/// Broadcast: an untyped publisher here (Block mode, so nothing is lost), a typed subscriber
/// of a `T` named by its options in a child: every message intact, once, in order. Then in
/// this process, a typed publisher laps an untyped subscriber (Overwrite): it gets
/// `Lagged(n)` with received + lost = sent, in order.
#[test]
fn broadcast_topics_have_typed_and_untyped_peers() {
    for backend in backends() {
        let name = unique_name("untyped-bcast");
        let _c = Cleanup(name.clone(), backend.clone());
        let on = format!("(on {backend})");
        let opts = Options::new()
            .backend(backend.clone())
            .capacity(64)
            .overflow(Overflow::Block { evict_after: None });
        let mut tx = untyped::broadcast::Publisher::create(&name, &element(), &opts).unwrap();
        let mut child = spawn(
            "typed-sub",
            &name,
            &backend,
            &[("SHMCHAN_TEST_N", N.to_string())],
        );
        child.expect_line("READY", SHORT);
        tx.wait_for_subscribers(1, SHORT).unwrap();
        let all: Vec<u8> = (0..N).flat_map(msg_bytes).collect();
        let (mut at, mut size) = (0usize, 1usize);
        while at < N as usize {
            let end = (at + size).min(N as usize);
            tx.send_timeout(&all[at * 16..end * 16], LONG).unwrap();
            at = end;
            size = size % 37 + 1;
        }
        drop(tx);
        let got = child.expect_line("GOT", LONG);
        assert_eq!(got.trim(), N.to_string(), "{on}");
        assert!(child.wait(SHORT).success(), "{on}");
    }
    for backend in backends() {
        let name = unique_name("untyped-bcast-lap");
        let _c = Cleanup(name.clone(), backend.clone());
        let opts = Options::new()
            .backend(backend.clone())
            .capacity(16)
            .type_name("Msg");
        let mut tx = broadcast::Publisher::<WireMsg>::create(&name, &opts).unwrap();
        let mut rx =
            untyped::broadcast::Subscriber::open_from(&name, &element(), Start::Oldest, &opts)
                .unwrap();
        let (mut next, mut lost, mut sent) = (0u64, 0u64, 0u64);
        let mut buf = vec![0u8; 16 * 5];
        for round in 0..50u64 {
            // 1 to 40 messages a round: some rounds lap the 16-slot ring.
            for _ in 0..(round * 7) % 40 + 1 {
                tx.send(bytemuck::cast(Msg::new(sent))).unwrap();
                sent += 1;
            }
            loop {
                match rx.try_recv(&mut buf) {
                    Ok(n) => {
                        for chunk in buf[..16 * n].chunks_exact(16) {
                            let m: Msg = bytemuck::pod_read_unaligned(chunk);
                            assert!(m.is_intact(), "torn {m:?} on {backend}");
                            assert_eq!(m.seq, next, "order, nothing lost unreported, on {backend}");
                            next += 1;
                        }
                    }
                    Err(broadcast::TryRecvError::Lagged(n)) => {
                        lost += n;
                        next += n;
                    }
                    Err(broadcast::TryRecvError::Empty) => break,
                    Err(e) => panic!("{e} on {backend}"),
                }
            }
            assert_eq!(next, sent, "received + lost = sent on {backend}");
        }
        assert!(
            lost > 0,
            "the test never lapped the subscriber on {backend}"
        );
    }
}

/// Async: `recv_async` of each untyped receiver waits without blocking its executor's thread
/// and is woken by a send from another process; a pending receive dropped leaves no
/// registration and takes nothing (the next receive gets the message); a Block-mode publish
/// waits for a slow subscriber. The futures are `Send` (a multi-threaded runtime takes them).
#[test]
fn async_calls_wait_and_cancel_cleanly() {
    fn send<F: Send>(f: F) -> F {
        f
    }
    let _serial = serial();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    for backend in backends() {
        for kind in ["spsc", "mpmc"] {
            let name = unique_name("untyped-async");
            let _c = Cleanup(name.clone(), backend.clone());
            let on = format!("({kind} on {backend})");
            let opts = Options::new().backend(backend.clone()).capacity(64);
            let buf = vec![0u8; 16 * 8];
            // The same steps for either kind of receiver (their types differ).
            macro_rules! steps {
                ($rx:expr) => {{
                    #[allow(unused_mut)] // an MPMC receiver takes `&self`, an SPSC one `&mut self`
                    let (mut rx, mut buf, mut next) = ($rx, buf, 0u64);
                    // Cancelled before anything came: nothing registered, nothing taken.
                    let r = rt.block_on(async {
                        let wait = Duration::from_millis(50);
                        tokio::time::timeout(wait, rx.recv_async(&mut buf)).await
                    });
                    assert!(r.is_err(), "{on}");
                    assert_eq!(shmchan::registered_waiters(), 0, "{on}");
                    let env = [
                        ("SHMCHAN_TEST_N", N.to_string()),
                        ("SHMCHAN_TEST_KIND", kind.to_string()),
                    ];
                    let mut child = spawn("typed-send", &name, &backend, &env);
                    let on2 = on.clone();
                    let got = rt.block_on(send(async move {
                        while let Ok(n) = rx.recv_async(&mut buf).await {
                            check(&buf[..16 * n], &mut next, &on2);
                        }
                        next
                    }));
                    assert_eq!(got, N, "{on}");
                    assert!(child.wait(SHORT).success(), "{on}");
                }};
            }
            if kind == "spsc" {
                steps!(untyped::spsc::Receiver::create(&name, &element(), &opts).unwrap());
            } else {
                steps!(untyped::mpmc::Receiver::create(&name, &element(), &opts).unwrap());
            }
        }
    }
    // Broadcast, Block mode with a ring of 4: the publisher's `send_async` of 100 elements
    // waits for the subscriber, which reads them all with `recv_async`, in order.
    let name = unique_name("untyped-async-bcast");
    let _c = Cleanup(name.clone(), shmchan::Backend::Posix);
    let opts = Options::new()
        .capacity(4)
        .overflow(Overflow::Block { evict_after: None });
    let mut tx = untyped::broadcast::Publisher::create(&name, &element(), &opts).unwrap();
    let mut rx = untyped::broadcast::Subscriber::open(&name, &element(), &opts).unwrap();
    let all: Vec<u8> = (0..100).flat_map(msg_bytes).collect();
    let reader = rt.spawn(send(async move {
        let mut buf = vec![0u8; 16 * 3];
        let mut next = 0u64;
        while next < 100 {
            let n = rx.recv_async(&mut buf).await.unwrap();
            check(&buf[..16 * n], &mut next, "(async broadcast)");
        }
        next
    }));
    rt.block_on(send(async { tx.send_async(&all).await }))
        .unwrap();
    assert_eq!(rt.block_on(reader).unwrap(), 100);
    assert_eq!(shmchan::registered_waiters(), 0);
}

/// A typed sender killed with `kill -9` after sending: the untyped receiver gets every message,
/// then `Disconnected`; a new sender in another process goes on, and the same receiver takes
/// its messages in order. SPSC and MPMC, every backend.
#[test]
fn an_untyped_receiver_outlives_a_killed_sender() {
    for kind in ["spsc", "mpmc"] {
        for backend in backends() {
            let name = unique_name("untyped-kill");
            let _c = Cleanup(name.clone(), backend.clone());
            // Room for all 1000: the sender finishes before it is killed.
            let opts = Options::new().backend(backend.clone()).capacity(1024);
            let on = format!("({kind} on {backend})");
            let recv: RecvFn = if kind == "mpmc" {
                let rx = untyped::mpmc::Receiver::create(&name, &element(), &opts).unwrap();
                Box::new(move |b| rx.recv_timeout(b, LONG))
            } else {
                let rx = untyped::spsc::Receiver::create(&name, &element(), &opts).unwrap();
                Box::new(move |b| rx.recv_timeout(b, LONG))
            };
            let mut buf = vec![0u8; 16 * 10];
            for life in 0..2 {
                let mut child = spawn(
                    "typed-send",
                    &name,
                    &backend,
                    &[
                        ("SHMCHAN_TEST_N", "1000".into()),
                        ("SHMCHAN_TEST_KIND", kind.into()),
                        ("SHMCHAN_TEST_HANG", "1".into()),
                    ],
                );
                child.expect_line("SENT", LONG);
                child.kill9();
                child.wait(SHORT);
                let mut next = 0u64;
                loop {
                    match recv(&mut buf) {
                        Ok(n) => check(&buf[..16 * n], &mut next, &on),
                        Err(RecvTimeoutError::Disconnected) => break,
                        Err(e) => panic!("{e} after {next} in life {life} {on}"),
                    }
                }
                assert_eq!(next, 1000, "life {life} {on}");
            }
        }
    }
}

/// A handle copied into a child by `fork` refuses every call (its parent's ring position is
/// not the child's to use), and the parent goes on as if nothing happened.
#[test]
fn forked_copies_refuse() {
    let name = unique_name("untyped-fork");
    let _c = Cleanup(name.clone(), shmchan::Backend::Posix);
    let opts = Options::new();
    let tx = untyped::spsc::Sender::create(&name, &element(), &opts).unwrap();
    let rx = untyped::spsc::Receiver::open(&name, &element(), &opts).unwrap();
    tx.send(&msg_bytes(1)).unwrap();
    // SAFETY: the child only calls the handles (no lock of the parent's is taken: no thread
    // of ours holds one) and `_exit`s.
    match unsafe { libc::fork() } {
        0 => {
            let mut buf = [0u8; 16];
            let ok = tx.try_send(&msg_bytes(2)).is_err()
                && rx.try_recv(&mut buf) == Err(TryRecvError::Disconnected)
                && !tx.is_connected();
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
    let mut buf = [0u8; 32];
    assert_eq!(rx.try_recv(&mut buf), Ok(1));
    assert_eq!(buf[..16], msg_bytes(1));
    assert_eq!(
        rx.try_recv(&mut buf),
        Err(TryRecvError::Empty),
        "the child sent nothing"
    );
}

/// A receive dropped after it registered and after a message came (before it was polled
/// again) takes nothing: the next receive gets the message. Empty buffers receive nothing,
/// at once; an element of absurd size, or a reserved name, is refused with an error.
#[test]
fn cancelled_receives_take_nothing_and_odd_calls_are_answered() {
    use std::future::Future;
    use std::task::{Context, Waker};
    let _serial = serial();
    let name = unique_name("untyped-cancel");
    let _c = Cleanup(name.clone(), shmchan::Backend::Posix);
    let opts = Options::new();
    let tx = untyped::spsc::Sender::create(&name, &element(), &opts).unwrap();
    let mut rx = untyped::spsc::Receiver::open(&name, &element(), &opts).unwrap();
    let mut buf = [0u8; 16];
    {
        let mut fut = Box::pin(rx.recv_async(&mut buf));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        tx.send(&msg_bytes(7)).unwrap();
    } // dropped unpolled: it took nothing
    assert_eq!(shmchan::registered_waiters(), 0);
    assert_eq!(rx.try_recv(&mut buf), Ok(1));
    assert_eq!(buf, msg_bytes(7));
    assert_eq!(rx.try_recv(&mut []), Ok(0));
    assert_eq!(rx.recv_timeout(&mut [], SHORT), Ok(0));
    assert_eq!(tx.try_send(&[]), Ok(0));
    for (bad, says) in [
        (Element::new("Huge", usize::MAX, 1), "bytes (1 to"),
        (Element::new("Huge", usize::MAX - 7, 8), "bytes (1 to"),
        (Element::new("frames", 24, 8), "reserved"),
        (Element::new("bytes", 8, 8), "reserved"),
    ] {
        let name = unique_name("untyped-odd");
        let e = untyped::spsc::Sender::create(&name, &bad, &opts).unwrap_err();
        assert!(
            matches!(&e, Error::InvalidOptions { reason } if reason.contains(says)),
            "{bad:?}: {e}"
        );
    }
}
