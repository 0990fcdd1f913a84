//! The byte-stream pipe: every byte once and in order whatever the write and read sizes,
//! `BufRead` in place, end of file after the writer leaves (dropped or killed) and the ring is
//! drained, `BrokenPipe` (never SIGPIPE) once the reader is gone; real processes over every
//! backend.

mod common;

use std::io::{BufRead, Read, Write};
use std::time::{Duration, Instant};

use common::{Cleanup, assert_gone, backends, spawn, stream_byte, unique_name};
use shmchan::{Options, pipe};

const SHORT: Duration = Duration::from_secs(10);
const LONG: Duration = Duration::from_secs(60);

#[test]
#[ignore = "entry point of the child processes the other tests start"]
fn child_main() {
    common::child_main();
}

/// 8 MiB through a 64 KiB pipe between two threads, written in pieces of 1 byte to 100 KiB
/// and read in pieces of 1 byte to 70,000 and line by line: every byte, in order, then end
/// of file (again and again).
#[test]
fn every_byte_in_order_whatever_the_sizes() {
    const N: u64 = 8 << 20;
    let (mut w, mut r) = pipe::pipe(1 << 16).unwrap();
    let t = std::thread::spawn(move || {
        let mut buf = vec![0u8; 100 << 10];
        let (mut at, mut k) = (0u64, 0usize);
        while at < N {
            k += 1;
            let size = [1u64, 100 << 10, 17, 4096, 65536, 3][k % 6].min(N - at) as usize;
            for (j, b) in buf[..size].iter_mut().enumerate() {
                *b = stream_byte(at + j as u64);
            }
            w.write_all(&buf[..size]).unwrap();
            at += size as u64;
        }
    });
    let mut buf = vec![0u8; 70_000];
    let (mut at, mut k) = (0u64, 0usize);
    loop {
        k += 1;
        let got = if k % 7 == 0 {
            // BufRead in place.
            let avail = r.fill_buf().unwrap();
            let n = avail.len().min(12_345);
            buf[..n].copy_from_slice(&avail[..n]);
            r.consume(n);
            n
        } else {
            let want = [1usize, 70_000, 10, 4095, 65536][k % 5];
            r.read(&mut buf[..want]).unwrap()
        };
        if got == 0 {
            break;
        }
        for (j, &b) in buf[..got].iter().enumerate() {
            assert_eq!(b, stream_byte(at + j as u64), "byte {}", at + j as u64);
        }
        at += got as u64;
    }
    assert_eq!(at, N);
    assert_eq!(r.read(&mut buf).unwrap(), 0, "end of file stays");
    assert!(r.fill_buf().unwrap().is_empty());
    t.join().unwrap();
}

/// `BufRead::read_line` and `lines` over a pipe.
#[test]
fn lines_through_a_pipe() {
    let (mut w, r) = pipe::pipe(256).unwrap();
    let t = std::thread::spawn(move || {
        for i in 0..1000 {
            writeln!(w, "line {i} {}", "x".repeat(i % 200)).unwrap();
        }
    });
    for (i, line) in r.lines().enumerate() {
        assert_eq!(line.unwrap(), format!("line {i} {}", "x".repeat(i % 200)));
    }
    t.join().unwrap();
}

/// A child writes 20 MiB through a 1 MiB pipe to this process, and this process writes 20 MiB
/// to a child: every byte, in order, then end of file, over every backend.
#[test]
fn a_stream_between_processes_both_ways() {
    const N: u64 = 20 << 20;
    for backend in backends() {
        let name = unique_name("pipe-in");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let opts = Options::new().backend(backend.clone()).capacity(1 << 20);
        let mut r = pipe::Reader::create(&name, &opts).unwrap();
        let mut child = spawn(
            "pipe-write",
            &name,
            &backend,
            &[("SHMCHAN_TEST_N", N.to_string())],
        );
        let mut all = Vec::new();
        r.read_to_end(&mut all).unwrap();
        assert_eq!(all.len() as u64, N, "{backend}");
        assert!(
            all.iter()
                .enumerate()
                .all(|(i, &b)| b == stream_byte(i as u64)),
            "{backend}: the bytes"
        );
        child.assert_success(LONG);
        drop(r);
        assert_gone(&name, &backend);

        let name = unique_name("pipe-out");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let mut w = pipe::Writer::create(&name, &opts).unwrap();
        let mut child = spawn("pipe-read", &name, &backend, &[]);
        let data: Vec<u8> = (0..N).map(stream_byte).collect();
        w.write_all(&data).unwrap();
        drop(w);
        assert_eq!(child.expect_line("GOT", LONG), N.to_string(), "{backend}");
        child.assert_success(SHORT);
        assert_gone(&name, &backend);
    }
}

/// A writer killed after writing: the reader reads all it wrote, then end of file, soon.
#[test]
fn killed_writer_is_end_of_file_after_its_bytes() {
    for backend in backends() {
        let name = unique_name("pipe-kill-w");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let opts = Options::new().backend(backend.clone()).capacity(1 << 20);
        let mut r = pipe::Reader::create(&name, &opts).unwrap();
        let n = 300_000u64;
        let mut child = spawn(
            "pipe-write",
            &name,
            &backend,
            &[
                ("SHMCHAN_TEST_N", n.to_string()),
                ("SHMCHAN_TEST_HANG", "1".into()),
            ],
        );
        child.expect_line("WROTE", SHORT);
        child.kill9();
        let t0 = Instant::now();
        let mut all = Vec::new();
        r.read_to_end(&mut all).unwrap();
        assert_eq!(all.len() as u64, n, "{backend}");
        assert!(
            all.iter()
                .enumerate()
                .all(|(i, &b)| b == stream_byte(i as u64))
        );
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "{backend}: {:?}",
            t0.elapsed()
        );
        child.reap();
        drop(r);
        assert_gone(&name, &backend);
    }
}

/// Once the reader is gone (dropped in this process, or its process killed), writes fail with
/// `BrokenPipe`, and the process gets no SIGPIPE.
#[test]
fn writes_to_a_gone_reader_are_a_broken_pipe() {
    let (mut w, r) = pipe::pipe(1024).unwrap();
    drop(r);
    assert_eq!(
        w.write(b"x").unwrap_err().kind(),
        std::io::ErrorKind::BrokenPipe
    );
    for backend in backends() {
        let name = unique_name("pipe-kill-r");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let opts = Options::new().backend(backend.clone()).capacity(4096);
        let mut w = pipe::Writer::create(&name, &opts).unwrap();
        let mut child = spawn("pipe-read", &name, &backend, &[]);
        child.expect_line("READY", SHORT);
        let first: Vec<u8> = (0..100).map(stream_byte).collect();
        w.write_all(&first).unwrap(); // the stream the child checks: it stays alive
        std::thread::sleep(Duration::from_millis(50));
        assert!(w.is_connected(), "{backend}: the child reads on");
        child.kill9();
        let t0 = Instant::now();
        let err = loop {
            // The stream bytes are irrelevant now: fill the ring until the death is seen.
            if let Err(e) = w.write_all(&[0; 1000]) {
                break e;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(3),
                "{backend}: still writing"
            );
        };
        assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe, "{backend}");
        child.reap();
        drop(w);
        assert_gone(&name, &backend);
    }
}

/// The calls that do not wait, or wait a bounded time, for bindings that must not block
/// (Python releases its lock only around real waits): `try_read` is `WouldBlock` on an empty
/// pipe and `Ok(0)` at end of file, `read_timeout` is `TimedOut`, `try_write` is `WouldBlock`
/// on a full one and `write_timeout` `TimedOut`; every byte still arrives once, in order; a
/// writer whose reader is gone gets `BrokenPipe` from both. A writer in a child, on every
/// backend.
#[test]
fn try_and_timeout_forms_never_wait_past_their_bound() {
    use std::io::ErrorKind;
    for backend in backends() {
        let name = unique_name("pipe-try");
        let _c = Cleanup(name.clone(), backend.clone());
        let opts = Options::new().backend(backend.clone()).capacity(1024);
        let mut r = pipe::Reader::create(&name, &opts).unwrap();
        let mut buf = [0u8; 300];
        assert_eq!(
            r.try_read(&mut buf).unwrap_err().kind(),
            ErrorKind::WouldBlock
        );
        let t0 = Instant::now();
        let e = r
            .read_timeout(&mut buf, Duration::from_millis(30))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimedOut, "{backend}");
        assert!(t0.elapsed() >= Duration::from_millis(30), "{backend}");
        // A writer in another process: 200,000 bytes, then it leaves; read with both forms.
        let mut child = spawn(
            "pipe-write",
            &name,
            &backend,
            &[("SHMCHAN_TEST_N", "200000".into())],
        );
        let mut at = 0u64;
        loop {
            let got = if at % 2 == 0 {
                r.try_read(&mut buf)
            } else {
                r.read_timeout(&mut buf, Duration::from_millis(5))
            };
            match got {
                Ok(0) => break,
                Ok(n) => {
                    for &b in &buf[..n] {
                        assert_eq!(b, stream_byte(at), "byte {at} on {backend}");
                        at += 1;
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    std::thread::sleep(Duration::from_micros(100))
                }
                Err(e) => panic!("{e} on {backend}"),
            }
        }
        assert_eq!(at, 200_000, "{backend}");
        assert!(child.wait(SHORT).success(), "{backend}");
        drop(r);

        // The writer's side, in this process: fill the ring, then the bounded forms.
        let name = unique_name("pipe-try-w");
        let _c = Cleanup(name.clone(), backend.clone());
        let mut w = pipe::Writer::create(&name, &opts).unwrap();
        let r = pipe::Reader::open(&name, &opts).unwrap();
        let mut sent = 0;
        loop {
            match w.try_write(&[1u8; 100]) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e} on {backend}"),
            }
        }
        assert!(sent > 0 && sent <= 1024, "{sent} on {backend}");
        let e = w
            .write_timeout(&[1u8; 100], Duration::from_millis(30))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimedOut, "{backend}");
        drop(r);
        assert_eq!(w.try_write(&[1]).unwrap_err().kind(), ErrorKind::BrokenPipe);
        let e = w.write_timeout(&[1], SHORT).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BrokenPipe, "{backend}");
    }
}

/// `try_read` asks the kernel about a writer it has not heard from, as `try_recv` does: after
/// the writer is killed and everything it wrote is read, a `try_read` loop gets end of file
/// (`Ok(0)`), where it stayed `WouldBlock` for good. Every backend.
#[test]
fn try_read_sees_end_of_file_after_the_writer_is_killed() {
    use std::io::ErrorKind;
    for backend in backends() {
        let name = unique_name("pipe-try-kill");
        let _c = Cleanup(name.clone(), backend.clone());
        let opts = Options::new().backend(backend.clone()).capacity(1 << 16);
        let mut r = pipe::Reader::create(&name, &opts).unwrap();
        let mut child = spawn(
            "pipe-write",
            &name,
            &backend,
            &[
                ("SHMCHAN_TEST_N", "1000".into()),
                ("SHMCHAN_TEST_HANG", "1".into()),
            ],
        );
        child.expect_line("WROTE", SHORT);
        child.kill9();
        child.wait(SHORT);
        let (mut at, t0) = (0u64, Instant::now());
        let mut buf = [0u8; 256];
        loop {
            match r.try_read(&mut buf) {
                Ok(0) => break,
                Ok(n) => at += n as u64,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    assert!(
                        t0.elapsed() < SHORT,
                        "no end of file after {at} bytes on {backend}"
                    );
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => panic!("{e} on {backend}"),
            }
        }
        assert_eq!(at, 1000, "{backend}");
    }
}
