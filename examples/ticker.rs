//! A market-data style broadcast: one publisher of ticks, any number of subscribers started
//! from other shells at any time, late joiners with history.
//!
//! ```text
//! cargo run --release --example ticker -- publish ticks              # shell 1: until Ctrl-C
//! cargo run --release --example ticker -- subscribe ticks            # from the next tick
//! cargo run --release --example ticker -- subscribe ticks --history 20   # the last 20 first
//! cargo run --release --example ticker -- subscribe ticks --slow     # falls behind: told how many it lost
//! ```
//!
//! Options: `--rate N` ticks per second (default 1000), `--block` (a lossless topic: the
//! publisher waits for the slowest subscriber, and evicts one stuck for more than a second),
//! `--backend posix|sysv|file:DIR`. Kill subscribers (`kill -9`, Ctrl-C) and start them again
//! at will; kill the publisher and start it again: the subscribers go on with the new one.

// An example's Ctrl-C flag, not a channel's atomic (the crate's loom seam is internal).
#![allow(clippy::disallowed_types)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use shmchan::broadcast::{Overflow, Publisher, RecvTimeoutError, Start, Subscriber};
use shmchan::{Backend, Options};

/// One tick: plain data, the same type on both sides.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct Tick {
    seq: u64,
    /// Publication time, nanoseconds since the Unix epoch.
    sent_ns: u64,
    /// Price in cents.
    price: i64,
    qty: u64,
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn main() -> Result<()> {
    let usage = "usage: ticker publish|subscribe NAME [--rate N] [--block] [--history N] \
                 [--slow] [--backend posix|sysv|file:DIR]";
    let mut args = std::env::args().skip(1);
    let role = args.next().ok_or(usage)?;
    let name = args.next().ok_or(usage)?;
    let (mut rate, mut block, mut history, mut slow) = (1000u64, false, None, false);
    let mut opts = Options::new().capacity(1024);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rate" => rate = args.next().ok_or(usage)?.parse()?,
            "--block" => block = true,
            "--history" => history = Some(args.next().ok_or(usage)?.parse()?),
            "--slow" => slow = true,
            "--backend" => {
                let b = args.next().ok_or(usage)?;
                opts = opts.backend(match b.as_str() {
                    "posix" => Backend::Posix,
                    "sysv" => Backend::SysV,
                    f => Backend::File(f.strip_prefix("file:").ok_or(usage)?.into()),
                });
            }
            _ => return Err(usage.into()),
        }
    }
    // SAFETY: installs a handler that only stores to an atomic (async-signal-safe).
    unsafe { libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t) };
    match role.as_str() {
        "publish" => {
            let opts = if block {
                opts.overflow(Overflow::Block {
                    evict_after: Some(Duration::from_secs(1)),
                })
            } else {
                opts
            };
            publish(&name, &opts, rate)
        }
        "subscribe" => {
            let start = history.map_or(Start::Latest, Start::History);
            subscribe(&name, &opts, start, slow)
        }
        _ => Err(usage.into()),
    }
}

fn publish(name: &str, opts: &Options, rate: u64) -> Result<()> {
    // Creates the topic, or takes over one whose publisher died (its subscribers go on).
    let mut tx = Publisher::<Tick>::create(name, opts)?;
    println!(
        "publishing {rate} ticks/s on {name:?} ({:?}); subscribe from other shells",
        tx.overflow()
    );
    let interval = Duration::from_nanos(1_000_000_000 / rate.max(1));
    let (start, mut seq, mut price) = (Instant::now(), 0u64, 10_000i64);
    let mut report = start + Duration::from_secs(1);
    while !STOP.load(Ordering::Relaxed) {
        let due = start + interval * seq as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        price += (seq.wrapping_mul(0x9e37_79b9) >> 29) as i64 % 7 - 3;
        let tick = Tick {
            seq,
            sent_ns: now_ns(),
            price,
            qty: 1 + seq % 100,
        };
        // Overwrite mode never waits (with no subscriber the ticks stay as history); Block
        // mode waits for the slowest, at most a second before it evicts it.
        if tx.send_timeout(tick, Duration::from_secs(2)).is_err() {
            println!("tick {seq}: timed out");
        }
        seq += 1;
        if Instant::now() >= report {
            report += Duration::from_secs(1);
            println!("tick {seq}, {} subscribers", tx.subscriber_count());
        }
    }
    Ok(())
}

fn subscribe(name: &str, opts: &Options, start: Start, slow: bool) -> Result<()> {
    let mut rx = Subscriber::<Tick>::open_from(name, start, opts)?;
    println!(
        "subscribed to {name:?} ({start:?}), pid {}",
        std::process::id()
    );
    let (mut got, mut lost, mut last) = (0u64, 0u64, Instant::now());
    let mut latency_us = Vec::new();
    while !STOP.load(Ordering::Relaxed) {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(t) => {
                got += 1;
                latency_us.push(now_ns().saturating_sub(t.sent_ns) / 1000);
                if got <= 3 || got % 1000 == 0 {
                    println!(
                        "tick {} price {}.{:02} qty {}",
                        t.seq,
                        t.price / 100,
                        t.price % 100,
                        t.qty
                    );
                }
                if slow {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            Err(RecvTimeoutError::Lagged(n)) => {
                lost += n;
                println!("lagged: {n} ticks overwritten before this subscriber read them");
            }
            Err(RecvTimeoutError::Evicted) => {
                println!("evicted: too slow for a lossless topic; subscribe again");
                break;
            }
            Err(RecvTimeoutError::Disconnected) => {
                println!("the publisher is gone; waiting for the next one");
                let _ = rx.wait_for_peer(Duration::from_secs(1));
            }
            Err(RecvTimeoutError::Timeout) => {}
        }
        if last.elapsed() >= Duration::from_secs(1) && !latency_us.is_empty() {
            last = Instant::now();
            latency_us.sort_unstable();
            println!(
                "{got} received, {lost} lost, lag {}; latency p50 {} us, p99 {} us",
                rx.lag(),
                latency_us[latency_us.len() / 2],
                latency_us[latency_us.len() * 99 / 100]
            );
            latency_us.clear();
        }
    }
    println!("{got} received, {lost} lost");
    Ok(())
}
