//! `shmchan-pypeer`: the Rust side of the Python bindings' cross-language tests.
//!
//! ```text
//! shmchan-pypeer frame-send NAME [--create] [--count N] [--max BYTES] [--backend B]
//! shmchan-pypeer frame-recv NAME [--create] [--count N] [--backend B]
//! shmchan-pypeer pipe-write NAME [--create] [--bytes N] [--backend B]
//! shmchan-pypeer pipe-read  NAME [--create] [--backend B]
//! shmchan-pypeer bcast-pub  NAME [--count N] [--max BYTES] [--backend B]
//! shmchan-pypeer bcast-sub  NAME [--count N] [--backend B]
//! shmchan-pypeer typed-send KIND NAME [--create] [--count N] [--batch B] [--block] [--backend B]
//! shmchan-pypeer typed-recv KIND NAME [--create] [--count N] [--batch B] [--backend B]
//! shmchan-pypeer bench-send NAME [--count N]
//! shmchan-pypeer bench-recv NAME [--create] [--count N]
//! ```
//!
//! `B` is `posix`, `sysv` or `file:DIR`. Each command prints `READY` once attached, and a
//! last line `RESULT ...` that the tests parse. The content is a pattern both languages compute
//! (`python/tests/conftest.py`): frame `i` has `(i * 37) % (max + 1)` bytes, byte `j` of it
//! `(i + 7 j) mod 256`; the pipe's byte `k` is `(31 k + 7) mod 251`, checked with FNV-1a.
//!
//! The typed roles move [`Quote`]s (a `#[repr(C)]` struct named `"Quote"` with
//! `Options::type_name`, as Python's `type_name="Quote"`) over `KIND` = `spsc`, `mpmc` or
//! `bcast` channels: element `i` is [`quote`]`(i)`, in batches of `--batch` (`send_slice`,
//! `recv_slice`) or one at a time. `bench-send`/`bench-recv` move `u64`s (`type_name("u64")`,
//! value `i` for element `i`) through an SPSC channel in batches of 4096, for the benchmark
//! of Python's `recv_into` against the same receive in Rust; `bench-recv` prints its rate.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use shmchan::{Backend, Options, broadcast, frame, mpmc, pipe, spsc};

/// The typed roles' element: the layout of Python's
/// `np.dtype([("instrument", "<u4"), ("side", "<u4"), ("price", "<i8"), ("qty", "<i8")],
/// align=True)` and of `struct` format `"<IIqq"`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
struct Quote {
    instrument: u32,
    side: u32,
    price: i64,
    qty: i64,
}

/// Element `i` of the typed roles (`quote` in `python/tests/conftest.py`).
fn quote(i: u64) -> Quote {
    Quote {
        instrument: (i as u32).wrapping_mul(7).wrapping_add(1),
        side: (i % 2) as u32,
        price: (i as i64) * 1_000_003 - 500_000_000,
        qty: 11 - 3 * (i as i64),
    }
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

struct Args {
    cmd: String,
    /// The typed roles' channel kind (`spsc`, `mpmc`, `bcast`).
    kind: String,
    name: String,
    create: bool,
    batch: usize,
    block: bool,
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
    let Some(cmd) = it.next() else { usage() };
    let kind = if cmd.starts_with("typed-") {
        it.next().unwrap_or_else(|| usage())
    } else {
        String::new()
    };
    let Some(name) = it.next() else { usage() };
    let mut a = Args {
        cmd,
        kind,
        name,
        create: false,
        batch: 1,
        block: false,
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
            "--block" => a.block = true,
            "--batch" => a.batch = val().parse::<usize>()?.max(1),
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
        "typed-send" => typed_send(&a)?,
        "typed-recv" => typed_recv(&a)?,
        "bench-send" => bench_send(&a)?,
        "bench-recv" => bench_recv(&a)?,
        _ => usage(),
    }
    Ok(())
}

/// The typed channels' options: the element named `"Quote"`.
fn quote_opts(a: &Args) -> Options {
    a.opts.clone().type_name("Quote")
}

fn typed_send(a: &Args) -> Result<()> {
    let opts = quote_opts(a);
    let forever = Duration::MAX;
    // Made a batch at a time: the kill tests send until they are killed (`--count` huge).
    let batches = (0..a.count).step_by(a.batch).map(|i| {
        let end = (i + a.batch as u64).min(a.count);
        (i..end).map(quote).collect::<Vec<_>>()
    });
    match a.kind.as_str() {
        "spsc" => {
            let tx = if a.create {
                spsc::Sender::<Quote>::create(&a.name, &opts)?
            } else {
                spsc::Sender::<Quote>::open(&a.name, &opts)?
            };
            ready();
            tx.wait_for_peer(forever)?;
            for chunk in batches {
                match chunk[..] {
                    [one] => tx.send(one).map_err(|_| "disconnected")?,
                    _ => tx.send_slice(&chunk).map_err(|_| "disconnected")?,
                }
            }
        }
        "mpmc" => {
            let tx = if a.create {
                mpmc::Sender::<Quote>::create(&a.name, &opts)?
            } else {
                mpmc::Sender::<Quote>::open(&a.name, &opts)?
            };
            ready();
            tx.wait_for_peer(forever)?;
            for v in batches.flatten() {
                tx.send(v).map_err(|_| "disconnected")?;
            }
        }
        "bcast" => {
            let opts = if a.block {
                opts.overflow(broadcast::Overflow::Block { evict_after: None })
            } else {
                opts
            };
            let mut tx = broadcast::Publisher::<Quote>::create(&a.name, &opts)?;
            ready();
            tx.wait_for_subscribers(1, forever)?;
            for chunk in batches {
                tx.send_slice(&chunk).map_err(|_| "disconnected")?;
            }
        }
        _ => usage(),
    }
    println!("RESULT sent {}", a.count);
    Ok(())
}

fn typed_recv(a: &Args) -> Result<()> {
    let opts = quote_opts(a);
    let (mut n, mut bad) = (0u64, 0u64);
    let mut buf = vec![<Quote as bytemuck::Zeroable>::zeroed(); a.batch];
    let mut check = |got: &[Quote], n: &mut u64| {
        for q in got {
            if *q != quote(*n) {
                bad += 1;
            }
            *n += 1;
        }
    };
    match a.kind.as_str() {
        "spsc" => {
            let rx = if a.create {
                spsc::Receiver::<Quote>::create(&a.name, &opts)?
            } else {
                spsc::Receiver::<Quote>::open(&a.name, &opts)?
            };
            ready();
            while n < a.count {
                let k = (a.count - n).min(a.batch as u64) as usize;
                match rx.recv_slice(&mut buf[..k]) {
                    Ok(k) => check(&buf[..k], &mut n),
                    Err(_) => break,
                }
            }
        }
        "mpmc" => {
            let rx = if a.create {
                mpmc::Receiver::<Quote>::create(&a.name, &opts)?
            } else {
                mpmc::Receiver::<Quote>::open(&a.name, &opts)?
            };
            ready();
            while n < a.count {
                match rx.recv() {
                    Ok(q) => check(&[q], &mut n),
                    Err(_) => break,
                }
            }
        }
        "bcast" => {
            let mut rx = broadcast::Subscriber::<Quote>::open_from(
                &a.name,
                broadcast::Start::Oldest,
                &opts,
            )?;
            ready();
            while n < a.count {
                let k = (a.count - n).min(a.batch as u64) as usize;
                match rx.recv_slice(&mut buf[..k]) {
                    Ok(k) => check(&buf[..k], &mut n),
                    Err(broadcast::RecvError::Lagged(k)) => n += k,
                    Err(_) => break,
                }
            }
        }
        _ => usage(),
    }
    println!("RESULT {n} {bad}");
    Ok(())
}

/// The benchmark's batch.
const BENCH_BATCH: usize = 4096;

fn bench_send(a: &Args) -> Result<()> {
    let opts = a.opts.clone().type_name("u64");
    let tx = spsc::Sender::<u64>::open(&a.name, &opts)?;
    ready();
    tx.wait_for_peer(Duration::MAX)?;
    let mut batch = vec![0u64; BENCH_BATCH];
    let mut i = 0u64;
    while i < a.count {
        let k = (a.count - i).min(BENCH_BATCH as u64) as usize;
        for (j, v) in batch[..k].iter_mut().enumerate() {
            *v = i + j as u64;
        }
        tx.send_slice(&batch[..k]).map_err(|_| "disconnected")?;
        i += k as u64;
    }
    println!("RESULT sent {}", a.count);
    Ok(())
}

fn bench_recv(a: &Args) -> Result<()> {
    let opts = a.opts.clone().type_name("u64");
    let rx = if a.create {
        spsc::Receiver::<u64>::create(&a.name, &opts)?
    } else {
        spsc::Receiver::<u64>::open(&a.name, &opts)?
    };
    ready();
    let mut buf = vec![0u64; BENCH_BATCH];
    // The clock starts at the first batch, as in the Python loop.
    let mut n = rx.recv_slice(&mut buf)? as u64;
    let (mut sum, t0) = (buf[..n as usize].iter().sum::<u64>(), Instant::now());
    let first = n;
    while n < a.count {
        let k = rx.recv_slice(&mut buf)?;
        sum = buf[..k].iter().fold(sum, |s, v| s.wrapping_add(*v));
        n += k as u64;
    }
    let dt = t0.elapsed().as_secs_f64();
    println!("RESULT {n} {sum} {:.0}", (n - first) as f64 / dt);
    Ok(())
}
