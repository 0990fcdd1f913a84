//! Batched sends and receives (`send_slice`, `recv_slice` and their `try_`/`_timeout` forms):
//! between real processes over every backend, mixed with single-message calls, and what a
//! disconnect in the middle of a batch reports.

mod common;

use std::time::Duration;

use common::{BATCH_SIZES, Cleanup, Msg, assert_gone, backends, spawn, unique_name};
use shmchan::{Options, RecvTimeoutError, SendError, TryRecvError, TrySendError, spsc};

const N: u64 = 100_000;
const LONG: Duration = Duration::from_secs(60);
const SHORT: Duration = Duration::from_secs(10);

#[test]
#[ignore = "entry point of the child processes the other tests start"]
fn child_main() {
    common::child_main();
}

/// A child sends 100k messages in batches of 1 to 1000 through a ring of 256; the parent
/// takes them with `recv_slice` into buffers of varying sizes and with `recv`, and gets every
/// message intact, once, in order, then the disconnect.
#[test]
fn batches_stream_between_processes() {
    for backend in backends() {
        let name = unique_name("batch-stream");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let opts = Options::new().backend(backend.clone()).capacity(256);
        let rx = spsc::Receiver::<Msg>::create(&name, &opts).unwrap();
        let mut child = spawn(
            "send-slices",
            &name,
            &backend,
            &[("SHMCHAN_TEST_N", N.to_string())],
        );
        child.expect_line("READY", SHORT);
        let mut buf = vec![Msg::new(0); 500];
        let mut next = 0u64;
        let mut check = |m: &Msg| {
            assert!(m.is_intact(), "torn {m:?} on {backend}");
            assert_eq!(m.seq, next, "order on {backend}");
            next += 1;
        };
        for size in BATCH_SIZES.iter().map(|&s| s.min(500)).cycle() {
            // Once per cycle a single `recv`, so batches and single calls interleave.
            let got = if size == 13 {
                match rx.recv() {
                    Ok(m) => {
                        check(&m);
                        continue;
                    }
                    Err(_) => break,
                }
            } else {
                match rx.recv_slice(&mut buf[..size]) {
                    Ok(n) => n,
                    Err(_) => break,
                }
            };
            assert!(got >= 1 && got <= size, "{got} of {size} on {backend}");
            buf[..got].iter().for_each(&mut check);
        }
        assert_eq!(next, N, "{backend}");
        child.assert_success(SHORT);
        drop(rx);
        assert_gone(&name, &backend);
    }
}

/// `try_send_slice` sends what fits and says how much; `Full` only when nothing fits.
#[test]
fn try_send_slice_sends_what_fits() {
    let (tx, rx) = spsc::channel::<u64>(8).unwrap();
    assert_eq!(tx.try_send_slice(&[]), Ok(0));
    assert_eq!(tx.try_send_slice(&[0, 1, 2]), Ok(3));
    assert_eq!(tx.try_send_slice(&(3..20).collect::<Vec<_>>()), Ok(5));
    assert_eq!(tx.try_send_slice(&[99]), Err(TrySendError::Full(())));
    assert_eq!(rx.try_recv(), Ok(0));
    assert_eq!(tx.try_send_slice(&[8, 9]), Ok(1));
    let mut buf = [0; 16];
    assert_eq!(rx.try_recv_slice(&mut buf), Ok(8));
    assert_eq!(buf[..8], [1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(rx.try_recv_slice(&mut buf), Err(TryRecvError::Empty));
    assert_eq!(rx.try_recv_slice(&mut []), Ok(0));
    drop(rx);
    assert_eq!(tx.try_send_slice(&[1]), Err(TrySendError::Disconnected(())));
}

/// The receiver leaves after taking 6 messages of a 20-message `send_slice` through a ring of
/// 4: the sender gets `SendError(n)`, where `values[..n]` are exactly what it published, at
/// least the 6 taken and at most the 4 more the ring could hold.
#[test]
fn send_slice_reports_how_much_was_sent_before_a_disconnect() {
    let (tx, rx) = spsc::channel::<u64>(4).unwrap();
    let taker = std::thread::spawn(move || {
        (0..6)
            .map(|_| rx.recv_timeout(LONG).unwrap())
            .collect::<Vec<_>>()
    });
    let values: Vec<u64> = (0..20).collect();
    let Err(SendError(n)) = tx.send_slice(&values) else {
        panic!("send_slice succeeded with nobody to take 20 messages")
    };
    assert_eq!(taker.join().unwrap(), [0, 1, 2, 3, 4, 5]);
    assert!((6..=10).contains(&n), "sent {n}");
}

/// A receiver draining in batches sees what was sent before the sender left, then
/// `Disconnected`; a timed batch receive on an empty live channel times out.
#[test]
fn recv_slice_drains_then_reports_disconnect() {
    let (tx, rx) = spsc::channel::<u32>(16).unwrap();
    let mut buf = [0; 4];
    let wait = Duration::from_millis(20);
    assert_eq!(
        rx.recv_slice_timeout(&mut buf, wait),
        Err(RecvTimeoutError::Timeout)
    );
    tx.send_slice(&[1, 2, 3, 4, 5, 6]).unwrap();
    drop(tx);
    assert_eq!(rx.recv_slice(&mut buf), Ok(4));
    assert_eq!(buf, [1, 2, 3, 4]);
    assert_eq!(rx.recv_slice_timeout(&mut buf, wait), Ok(2));
    assert_eq!(buf[..2], [5, 6]);
    assert!(rx.recv_slice(&mut buf).is_err());
    assert_eq!(
        rx.recv_slice_timeout(&mut buf, wait),
        Err(RecvTimeoutError::Disconnected)
    );
    assert_eq!(rx.try_recv_slice(&mut buf), Err(TryRecvError::Disconnected));
}
