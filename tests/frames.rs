//! Variable-size frames: every length from 0 to `max_frame`, every wrap offset, loans
//! (committed, partly committed, dropped), `TooLarge`, timeouts; between real processes over
//! every backend (both directions), a sender killed holding a loan, a receiver killed holding a
//! frame, and a hostile writer scribbling over the ring while frames go through.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::{Cleanup, assert_gone, backends, fill_frame, frame_is, frame_len, spawn, unique_name};
use shmchan::frame::{self, SendError, SendTimeoutError, TrySendError};
use shmchan::{Options, RecvTimeoutError, TryRecvError};

const SHORT: Duration = Duration::from_secs(10);
const LONG: Duration = Duration::from_secs(60);

#[test]
#[ignore = "entry point of the child processes the other tests start"]
fn child_main() {
    common::child_main();
}

/// 20,000 frames of lengths from 0 to `max_frame` (every third one through a loan) from a
/// thread through a ring of 256 bytes: each arrives whole and in order, read in place or
/// copied out, then the disconnect.
#[test]
fn frames_of_every_length_in_order() {
    let (mut tx, mut rx) = frame::channel(256).unwrap();
    let max = tx.max_frame();
    assert_eq!(max, 240);
    const N: u64 = 20_000;
    let t = std::thread::spawn(move || {
        let mut buf = vec![0u8; max];
        for i in 0..N {
            let len = frame_len(i, max);
            if i % 3 == 0 {
                let mut loan = tx.loan(len).unwrap();
                fill_frame(i, &mut loan);
                loan.commit(len);
            } else {
                fill_frame(i, &mut buf[..len]);
                tx.send(&buf[..len]).unwrap();
            }
        }
    });
    let mut buf = Vec::new();
    for i in 0..N {
        if i % 2 == 0 {
            let f = rx.recv().unwrap();
            assert!(frame_is(i, max, &f), "frame {i}: {} bytes", f.len());
        } else {
            rx.recv_into(&mut buf).unwrap();
            assert!(frame_is(i, max, &buf), "frame {i}: {} bytes", buf.len());
        }
    }
    assert!(rx.recv().is_err(), "disconnected after the last frame");
    t.join().unwrap();
}

/// For rings of 64 and 128 bytes, starting at every 16-byte offset, a frame of every length
/// from 0 to `max_frame` goes through whole (so every record straddles, meets or avoids the
/// end of the ring, with and without a padding record before it).
#[test]
fn every_wrap_offset() {
    for cap in [64usize, 128] {
        for start in (0..cap).step_by(16) {
            let (mut tx, mut rx) = frame::channel(cap).unwrap();
            let max = tx.max_frame();
            if start > 0 {
                // One record of `start` bytes moves both positions to `start`.
                tx.send(&vec![0; start - 16]).unwrap();
                drop(rx.recv().unwrap());
            }
            for len in 0..=max {
                let mut frame = vec![0u8; len];
                fill_frame(len as u64, &mut frame);
                if tx.try_send(&frame) == Err(TrySendError::Full) {
                    // The frame wraps: it waits for the receiver to pass the padding record
                    // published in front of it (the ring holds nothing else).
                    assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Empty);
                    tx.try_send(&frame)
                        .unwrap_or_else(|e| panic!("ring {cap} from {start}, {len} bytes: {e}"));
                }
                let got = rx.try_recv().unwrap();
                assert_eq!(
                    &*got,
                    frame.as_slice(),
                    "ring {cap} from {start}, {len} bytes"
                );
            }
        }
    }
}

/// A committed loan is a frame of what was committed; a dropped one publishes nothing; `Loan`
/// writes as a cursor and stops at its end; too large a loan is refused.
#[test]
fn loans_commit_a_prefix_and_drop_nothing() {
    let (mut tx, mut rx) = frame::channel(1024).unwrap();
    let mut loan = tx.loan(100).unwrap();
    loan[..3].copy_from_slice(b"abc");
    #[allow(clippy::drop_non_drop)] // a loan needs no destructor: not committing is the point
    drop(loan);
    assert_eq!(
        rx.try_recv().unwrap_err(),
        TryRecvError::Empty,
        "a dropped loan"
    );

    let mut loan = tx.loan(100).unwrap();
    loan[..5].copy_from_slice(b"hello");
    loan.commit(5);
    let mut loan = tx.try_loan(10).unwrap();
    assert_eq!(
        loan.write(b"0123456789abc").unwrap(),
        10,
        "a cursor stops at the end"
    );
    assert_eq!(loan.write(b"x").unwrap(), 0);
    assert_eq!(loan.written(), 10);
    loan.commit_written();
    tx.loan(0).unwrap().commit(0);
    assert_eq!(&*rx.recv().unwrap(), b"hello");
    assert_eq!(&*rx.recv().unwrap(), b"0123456789");
    assert_eq!(rx.recv().unwrap().len(), 0);

    let max = tx.max_frame();
    assert_eq!(
        tx.loan(max + 1).unwrap_err(),
        SendError::TooLarge { len: max + 1, max }
    );
    assert!(matches!(
        tx.try_loan(usize::MAX),
        Err(TrySendError::TooLarge { .. })
    ));
    assert!(matches!(
        tx.loan_timeout(max + 1, SHORT),
        Err(SendTimeoutError::TooLarge { .. })
    ));
}

/// A full ring: `try_send` says `Full` and `send_timeout` times out, with nothing sent; an
/// empty one: `try_recv` says `Empty` and `recv_timeout` times out. Oversize frames are
/// refused whatever the room.
#[test]
fn full_empty_timeouts_and_too_large() {
    let (mut tx, mut rx) = frame::channel(64).unwrap();
    assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Empty);
    let t0 = Instant::now();
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(20)).unwrap_err(),
        RecvTimeoutError::Timeout
    );
    assert!(t0.elapsed() >= Duration::from_millis(20));
    tx.send(&[1; 40]).unwrap();
    assert_eq!(tx.try_send(&[2; 40]), Err(TrySendError::Full));
    assert_eq!(
        tx.send_timeout(&[2; 40], Duration::from_millis(20)),
        Err(SendTimeoutError::Timeout)
    );
    assert_eq!(
        tx.try_send(&[0; 49]),
        Err(TrySendError::TooLarge { len: 49, max: 48 })
    );
    assert_eq!(&*rx.recv().unwrap(), &[1; 40]);
    assert_eq!(
        rx.try_recv().unwrap_err(),
        TryRecvError::Empty,
        "nothing else was sent"
    );
    drop(rx);
    assert_eq!(tx.send(b"x"), Err(SendError::Disconnected));
}

/// A child process sends 5,000 frames of every length (a third through loans) to this one,
/// and this one sends 5,000 to a child: whole and in order over every backend.
#[test]
fn frames_between_processes_both_ways() {
    const N: u64 = 5_000;
    for backend in backends() {
        // Child sends, parent receives.
        let name = unique_name("frames-in");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let opts = Options::new().backend(backend.clone()).capacity(4096);
        let mut rx = frame::Receiver::create(&name, &opts).unwrap();
        let mut child = spawn(
            "frame-send",
            &name,
            &backend,
            &[("SHMCHAN_TEST_N", N.to_string())],
        );
        let max = 4096 - 16; // the sender's max_frame
        let mut buf = Vec::new();
        for i in 0..N {
            let len = rx.recv_into(&mut buf).unwrap();
            assert_eq!(len, frame_len(i, max), "{backend}: frame {i}");
            assert!(frame_is(i, max, &buf), "{backend}: frame {i}");
        }
        assert!(rx.recv().is_err(), "{backend}: then disconnected");
        child.assert_success(LONG);
        drop(rx);
        assert_gone(&name, &backend);

        // Parent sends, child receives.
        let name = unique_name("frames-out");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let mut tx = frame::Sender::create(&name, &opts).unwrap();
        let max = tx.max_frame();
        let mut child = spawn(
            "frame-recv",
            &name,
            &backend,
            &[
                ("SHMCHAN_TEST_N", N.to_string()),
                ("SHMCHAN_TEST_MAX", max.to_string()),
            ],
        );
        let mut buf = vec![0u8; max];
        for i in 0..N {
            let len = frame_len(i, max);
            fill_frame(i, &mut buf[..len]);
            tx.send(&buf[..len]).unwrap();
        }
        drop(tx);
        assert_eq!(child.expect_line("GOT", LONG), N.to_string(), "{backend}");
        child.assert_success(SHORT);
        assert_gone(&name, &backend);
    }
}

/// A sender killed while holding a loan publishes nothing of it: the receiver gets every frame
/// committed before, then `Disconnected`.
#[test]
fn killed_sender_holding_a_loan_publishes_nothing() {
    for backend in backends() {
        let name = unique_name("frames-loan-kill");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let opts = Options::new().backend(backend.clone()).capacity(1 << 16);
        let mut rx = frame::Receiver::create(&name, &opts).unwrap();
        let max = 500; // small frames: 50 of them and the loan fit before anything is read
        let mut child = spawn(
            "frame-loan-hang",
            &name,
            &backend,
            &[
                ("SHMCHAN_TEST_N", "50".into()),
                ("SHMCHAN_TEST_MAX", max.to_string()),
            ],
        );
        child.expect_line("LOANED", SHORT);
        child.kill9();
        for i in 0..50 {
            let f = rx.recv_timeout(SHORT).unwrap();
            assert!(frame_is(i, max, &f), "{backend}: frame {i}");
        }
        let t0 = Instant::now();
        assert_eq!(
            rx.recv_timeout(SHORT).unwrap_err(),
            RecvTimeoutError::Disconnected,
            "{backend}: nothing of the loan"
        );
        assert!(t0.elapsed() < Duration::from_secs(2), "{backend}");
        child.reap();
        drop(rx);
        assert_gone(&name, &backend);
    }
}

/// A receiver killed while holding a frame: the sender, blocked on the full ring, gets
/// `Disconnected`.
#[test]
fn killed_receiver_holding_a_frame_disconnects_the_sender() {
    for backend in backends() {
        let name = unique_name("frames-hold-kill");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let opts = Options::new().backend(backend.clone()).capacity(256);
        let mut tx = frame::Sender::create(&name, &opts).unwrap();
        let mut child = spawn("frame-hold-hang", &name, &backend, &[]);
        tx.send(&[9; 100]).unwrap();
        assert_eq!(child.expect_line("HOLDING", SHORT), "100");
        while tx.try_send(&[8; 100]).is_ok() {} // fill the ring
        child.kill9();
        let t0 = Instant::now();
        assert_eq!(
            tx.send(&[7; 100]),
            Err(SendError::Disconnected),
            "{backend}"
        );
        assert!(t0.elapsed() < Duration::from_secs(2), "{backend}");
        child.reap();
        drop(tx);
        assert_gone(&name, &backend);
    }
}

/// A hostile writer scribbles random words over a frame channel's positions, record headers
/// and payloads (a second mapping) while this process keeps sending and receiving frames of
/// random lengths: errors and odd bytes are fine; a panic, a crash or a hang is not.
#[test]
fn hostile_writes_over_a_frame_ring_do_not_crash() {
    let name = unique_name("frames-hostile");
    let backend = shmchan::Backend::Posix;
    let _cleanup = Cleanup(name.clone(), backend.clone());
    let opts = Options::new()
        .backend(backend.clone())
        .capacity(4096)
        .open_timeout(Duration::from_millis(20));
    let mut tx = frame::Sender::create(&name, &opts).unwrap();
    let mut rx = frame::Receiver::open(&name, &opts).unwrap();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(std::path::Path::new("/dev/shm").join(&name))
        .unwrap();
    // SAFETY: a second shared mapping of the region, written only with volatile stores.
    let mut map = unsafe { memmap2::MmapMut::map_mut(&file) }.unwrap();
    let len = map.len();
    let base = map.as_mut_ptr();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let (mut ok, mut errs) = (0u64, 0u64);
    let until = Instant::now() + Duration::from_millis(1500);
    let mut buf = Vec::new();
    while Instant::now() < until {
        // Positions (tail, head), then anywhere in the ring.
        let off = match next() % 4 {
            0 => 1536,
            1 => 1664,
            _ => 2688 + (next() as usize % 4096), // the ring starts after the 2688-byte header
        } & !7;
        let val = match next() % 4 {
            0 => next(),
            1 => next() % 8192,
            2 => (1 << 63) | (next() % 8192),
            _ => u64::MAX,
        };
        if off + 8 <= len {
            // SAFETY: in bounds of our mapping; an 8-aligned volatile store.
            unsafe { base.add(off).cast::<u64>().write_volatile(val) };
        }
        let n = (next() % 300) as usize;
        match tx.try_send(&vec![0x5a; n]) {
            Ok(()) => ok += 1,
            Err(_) => errs += 1,
        }
        match rx.try_recv() {
            Ok(f) => {
                ok += 1;
                assert!(f.len() <= 4096);
            }
            Err(_) => errs += 1,
        }
        match rx.recv_timeout(Duration::from_micros(100)) {
            Ok(f) => {
                ok += 1;
                buf.clear();
                buf.extend_from_slice(&f);
            }
            Err(_) => errs += 1,
        }
        if let Ok(mut loan) = tx.try_loan(n) {
            loan.fill(1);
            loan.commit(n / 2);
        }
        let _ = (tx.len(), rx.len(), rx.is_disconnected());
    }
    eprintln!("hostile frame ring: {ok} operations went through, {errs} errors");
    drop(map);
    drop((tx, rx));
}

/// Frames under every wait strategy: a receiver that spins, one that parks at once, the
/// default; the sender waiting on a full ring the same way.
#[test]
fn every_wait_strategy() {
    use shmchan::WaitStrategy;
    for (i, wait) in [
        WaitStrategy::Spin,
        WaitStrategy::Park,
        WaitStrategy::SpinThenPark(Duration::from_micros(10)),
    ]
    .into_iter()
    .enumerate()
    {
        let name = unique_name("frames-wait");
        let _cleanup = Cleanup(name.clone(), shmchan::Backend::Posix);
        let opts = Options::new().capacity(128).wait_strategy(wait);
        let mut tx = frame::Sender::create(&name, &opts).unwrap();
        let mut rx = frame::Receiver::open(&name, &opts).unwrap();
        let max = tx.max_frame();
        let t = std::thread::spawn(move || {
            let mut buf = vec![0u8; max];
            for s in 0..2_000 {
                let len = frame_len(s, max);
                fill_frame(s, &mut buf[..len]);
                tx.send(&buf[..len]).unwrap();
            }
        });
        for s in 0..2_000 {
            let f = rx.recv_timeout(SHORT).unwrap();
            assert!(frame_is(s, max, &f), "strategy {i}: frame {s}");
        }
        t.join().unwrap();
        assert!(rx.recv().is_err());
    }
}

/// A frame channel, a pipe and a typed channel do not open as one another: each says what it
/// found.
#[test]
fn kinds_do_not_mix() {
    use shmchan::{Error, spsc};
    let opts = Options::new();
    let name = unique_name("kind-frame");
    let _c1 = Cleanup(name.clone(), shmchan::Backend::Posix);
    let _tx = frame::Sender::create(&name, &opts).unwrap();
    for err in [
        spsc::Receiver::<u64>::open(&name, &opts).unwrap_err(),
        shmchan::pipe::Reader::open(&name, &opts).unwrap_err(),
    ] {
        assert!(matches!(err, Error::Incompatible { .. }), "{err:?}");
        assert!(err.to_string().contains("it is a frame channel"), "{err}");
    }
    let name = unique_name("kind-pipe");
    let _c2 = Cleanup(name.clone(), shmchan::Backend::Posix);
    let _w = shmchan::pipe::Writer::create(&name, &opts).unwrap();
    let err = frame::Receiver::open(&name, &opts).unwrap_err();
    assert!(
        err.to_string()
            .contains("it is a pipe channel, opened as frame"),
        "{err}"
    );
    let name = unique_name("kind-spsc");
    let _c3 = Cleanup(name.clone(), shmchan::Backend::Posix);
    let _s = spsc::Sender::<u64>::create(&name, &opts).unwrap();
    let err = frame::Receiver::open(&name, &opts).unwrap_err();
    assert!(
        err.to_string()
            .contains("it is an SPSC channel, opened as frame"),
        "{err}"
    );
}

/// In a forked child, copies of a held frame, a loan and a pipe reader change nothing in the
/// parent's rings (the frame stays held, the loan publishes nothing, the record stays unread).
#[test]
fn forked_copies_of_frames_loans_and_readers_do_nothing() {
    let name = unique_name("frames-fork");
    let backend = shmchan::Backend::Posix;
    let _c1 = Cleanup(format!("{name}-f"), backend.clone());
    let _c2 = Cleanup(format!("{name}-p"), backend.clone());
    let mut child = spawn("frame-fork", &name, &backend, &[]);
    child.expect_line("OK", SHORT);
    child.assert_success(SHORT);
}

/// A frame leaked with `mem::forget` is freed by the next receive, not received again.
#[test]
fn a_leaked_frame_is_not_received_twice() {
    let (mut tx, mut rx) = frame::channel(256).unwrap();
    tx.send(b"one").unwrap();
    tx.send(b"two").unwrap();
    std::mem::forget(rx.recv().unwrap());
    assert_eq!(&*rx.recv().unwrap(), b"two");
    assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Empty);
}

/// The smallest rings work: a frame channel or pipe asked for 1 byte has 32, and carries
/// frames of up to 16 bytes (a pipe, writes of any size).
#[test]
fn the_smallest_rings_work() {
    let (mut tx, mut rx) = frame::channel(1).unwrap();
    assert_eq!((tx.capacity(), tx.max_frame()), (32, 16));
    tx.send(&[5; 16]).unwrap();
    assert_eq!(&*rx.recv().unwrap(), &[5; 16]);
    let (mut w, mut r) = shmchan::pipe::pipe(16).unwrap();
    let t = std::thread::spawn(move || w.write_all(b"a tiny pipe still carries every byte"));
    let mut s = String::new();
    std::io::Read::read_to_string(&mut r, &mut s).unwrap();
    assert_eq!(s, "a tiny pipe still carries every byte");
    t.join().unwrap().unwrap();
}
