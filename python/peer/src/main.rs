//! `shmchan-pypeer`: the Rust side of the Python bindings' cross-language tests.
//!
//! ```text
//! shmchan-pypeer frame-send NAME [--create] [--count N] [--max BYTES] [--backend B]
//! shmchan-pypeer frame-recv NAME [--create] [--count N] [--backend B]
//! shmchan-pypeer pipe-write NAME [--create] [--bytes N] [--backend B]
//! shmchan-pypeer pipe-read  NAME [--create] [--backend B]
//! shmchan-pypeer bcast-pub  NAME [--count N] [--max BYTES] [--backend B]
//! shmchan-pypeer bcast-sub  NAME [--count N] [--backend B]
//! ```
//!
//! `B` is `posix`, `sysv` or `file:DIR`. Each command prints `READY` once attached, and a
//! last line `RESULT ...` that the tests parse. The content is a pattern both languages compute
//! (`python/tests/conftest.py`): frame `i` has `(i * 37) % (max + 1)` bytes, byte `j` of it
//! `(i + 7 j) mod 256`; the pipe's byte `k` is `(31 k + 7) mod 251`, checked with FNV-1a.

use std::io::{Read, Write};
use std::time::Duration;

use shmchan::{Backend, Options, broadcast, frame, pipe};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

struct Args {
    cmd: String,
    name: String,
    create: bool,
    count: u64,
    max: usize,
    bytes: u64,
    opts: Options,
}

fn usage() -> ! {
    eprintln!("usage: see the module docs of python/peer/src/main.rs");
    std::process::exit(2)
}

fn parse() -> Result<Args> {
    let mut it = std::env::args().skip(1);
    let (Some(cmd), Some(name)) = (it.next(), it.next()) else {
        usage()
    };
    let mut a = Args {
        cmd,
        name,
        create: false,
        count: 1000,
        max: 300,
        bytes: 1 << 20,
        opts: Options::new()
            .capacity(1 << 16)
            .open_timeout(Duration::from_secs(10)),
    };
    while let Some(flag) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--create" => a.create = true,
            "--count" => a.count = val().parse()?,
            "--max" => a.max = val().parse()?,
            "--bytes" => a.bytes = val().parse()?,
            "--capacity" => a.opts = a.opts.clone().capacity(val().parse()?),
            "--backend" => {
                let b = val();
                a.opts = a.opts.clone().backend(match b.as_str() {
                    "posix" => Backend::Posix,
                    "sysv" => Backend::SysV,
                    f if f.starts_with("file:") => Backend::File(f[5..].into()),
                    _ => usage(),
                })
            }
            _ => usage(),
        }
    }
    Ok(a)
}

/// Frame `i` of the test pattern (at most `max` bytes).
fn pattern(i: u64, max: usize) -> Vec<u8> {
    let len = (i as usize * 37) % (max + 1);
    (0..len).map(|j| (i as usize + 7 * j) as u8).collect()
}

/// Byte `k` of the pipe pattern.
fn pipe_byte(k: u64) -> u8 {
    ((31 * k + 7) % 251) as u8
}

fn fnv(h: u64, bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(h, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100000001b3))
}

const FNV0: u64 = 0xcbf29ce484222325;

fn ready() {
    println!("READY");
    std::io::stdout().flush().ok();
}

fn main() -> Result<()> {
    let a = parse()?;
    let forever = Duration::MAX;
    match a.cmd.as_str() {
        "frame-send" => {
            let mut tx = if a.create {
                frame::Sender::create(&a.name, &a.opts)?
            } else {
                frame::Sender::open(&a.name, &a.opts)?
            };
            ready();
            tx.wait_for_peer(forever)?;
            for i in 0..a.count {
                tx.send(&pattern(i, a.max))?;
            }
            // Leaving now is fine: the receiver is attached and keeps the channel; it reads
            // what is left, then sees Disconnected.
            println!("RESULT sent {}", a.count);
        }
        "frame-recv" => {
            let mut rx = if a.create {
                frame::Receiver::create(&a.name, &a.opts)?
            } else {
                frame::Receiver::open(&a.name, &a.opts)?
            };
            ready();
            let (mut n, mut bad) = (0u64, 0u64);
            while n < a.count {
                match rx.recv() {
                    Ok(f) => {
                        if *f != *pattern(n, a.max) {
                            bad += 1;
                        }
                        n += 1;
                    }
                    Err(_) => break,
                }
            }
            println!("RESULT {n} {bad}");
        }
        "pipe-write" => {
            let mut w = if a.create {
                pipe::Writer::create(&a.name, &a.opts)?
            } else {
                pipe::Writer::open(&a.name, &a.opts)?
            };
            ready();
            w.wait_for_peer(forever)?;
            // In chunks made on the fly: `--bytes` may be far more than fits in memory (the
            // kill tests write until they are killed).
            let (mut k, mut h) = (0u64, FNV0);
            while k < a.bytes {
                let n = (a.bytes - k).min(10_007);
                let chunk: Vec<u8> = (k..k + n).map(pipe_byte).collect();
                w.write_all(&chunk)?;
                h = fnv(h, &chunk);
                k += n;
            }
            // The reader is attached and keeps the pipe: it reads the rest, then end of file.
            println!("RESULT {} {h}", a.bytes);
        }
        "pipe-read" => {
            let mut r = if a.create {
                pipe::Reader::create(&a.name, &a.opts)?
            } else {
                pipe::Reader::open(&a.name, &a.opts)?
            };
            ready();
            let (mut n, mut h) = (0u64, FNV0);
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let k = r.read(&mut buf)?;
                if k == 0 {
                    break;
                }
                n += k as u64;
                h = fnv(h, &buf[..k]);
            }
            println!("RESULT {n} {h}");
        }
        "bcast-pub" => {
            let opts = a.opts.clone().max_frame(a.max.max(1));
            let mut tx = broadcast::FramePublisher::create(&a.name, &opts)?;
            ready();
            tx.wait_for_subscribers(1, forever)?;
            for i in 0..a.count {
                tx.send(&pattern(i, a.max))?;
            }
            println!("RESULT sent {}", a.count);
        }
        "bcast-sub" => {
            let mut rx =
                broadcast::FrameSubscriber::open_from(&a.name, broadcast::Start::Oldest, &a.opts)?;
            ready();
            let (mut n, mut bad) = (0u64, 0u64);
            let mut buf = Vec::new();
            while n < a.count {
                match rx.recv_into(&mut buf) {
                    Ok(_) => {
                        if buf != pattern(n, a.max) {
                            bad += 1;
                        }
                        n += 1;
                    }
                    Err(broadcast::RecvError::Lagged(k)) => n += k,
                    Err(_) => break,
                }
            }
            println!("RESULT {n} {bad}");
        }
        _ => usage(),
    }
    Ok(())
}
