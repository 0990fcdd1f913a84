//! Async support, measured beside its references in one run: `cargo bench --bench async`.
//!
//! - `wake/park` and `wake/async`: how long after a peer process sends a message the receiver
//!   has it, when the receiver was asleep (the peer spins 200 µs before each send, so the
//!   receiver has parked: a `WaitStrategy::Park` blocking `recv`, or a `recv_async` under a
//!   current-thread tokio runtime, registered with the reactor). The peer stamps each message
//!   with `CLOCK_MONOTONIC`, which both processes share; criterion's times are the summed wake
//!   latencies, and the exact p50 of each (over every sample) is printed at the end with their
//!   ratio (issue 13's target: async within 1.5x of park).
//! - `sync_rtt_8B/plain` and `sync_rtt_8B/async_idle`: the 8-byte synchronous round trip
//!   (`send` + `recv`, default wait strategy, echoing peer process), alone and with an async
//!   receiver idling in this process (registered with a running reactor thread), then alone
//!   again (`plain_again`, to show how much the machine drifted): the synchronous path must not
//!   change.

// A name counter and the peer's pause are plain std here; the loom seam is for the crate's
// own code.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{PEER, Peer, Quiet, say_ready};
use criterion::{Criterion, criterion_group};
use shmchan::{Options, WaitStrategy, spsc};

fn main() {
    if let Ok(spec) = std::env::var(PEER) {
        peer(&spec);
        return;
    }
    let quiet = Quiet::start();
    benches();
    report();
    Criterion::default().configure_from_args().final_summary();
    quiet.report();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = wake, sync_rtt
}

/// How long the peer spins before each send (so the receiver is asleep when it comes).
const PAUSE: Duration = Duration::from_micros(200);

/// Every wake latency measured, per label, for the p50s printed at the end.
static WAKES: Mutex<Vec<(&str, Vec<Duration>)>> = Mutex::new(Vec::new());

fn record(label: &'static str, d: Duration) {
    let mut w = WAKES.lock().unwrap();
    match w.iter_mut().find(|(l, _)| *l == label) {
        Some((_, v)) => v.push(d),
        None => w.push((label, vec![d])),
    }
}

fn report() {
    let mut w = WAKES.lock().unwrap();
    let mut p50 = Vec::new();
    for (label, v) in w.iter_mut() {
        if v.is_empty() {
            continue;
        }
        v.sort_unstable();
        let q = |p: f64| v[((v.len() - 1) as f64 * p) as usize];
        println!(
            "wake/{label}: p50 {:?}, p90 {:?}, p99 {:?} over {} wake-ups",
            q(0.5),
            q(0.9),
            q(0.99),
            v.len()
        );
        p50.push((*label, q(0.5)));
    }
    if let (Some((_, park)), Some((_, asy))) = (
        p50.iter().find(|(l, _)| *l == "park"),
        p50.iter().find(|(l, _)| *l == "async"),
    ) {
        println!(
            "wake p50 async / park = {:.2} (target: at most 1.5)",
            asy.as_secs_f64() / park.as_secs_f64()
        );
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds (the same clock in every process).
fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is valid for writes of one timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn base() -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("shmchan-bench-async-{}-{n}", std::process::id())
}

fn wake(c: &mut Criterion) {
    let mut g = c.benchmark_group("wake");
    for label in ["park", "async"] {
        let base = base();
        let opts = Options::new()
            .capacity(64)
            .wait_strategy(WaitStrategy::Park);
        let ping = spsc::Sender::<u64>::create(&format!("{base}-ping"), &opts).unwrap();
        let mut pong = spsc::Receiver::<u64>::create(&format!("{base}-pong"), &opts).unwrap();
        let peer = Peer::spawn(&format!("wake {base}"));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        g.bench_function(label, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for i in 0..iters {
                    ping.send(i).unwrap();
                    let stamp = if label == "park" {
                        pong.recv().unwrap()
                    } else {
                        rt.block_on(pong.recv_async()).unwrap()
                    };
                    let d = Duration::from_nanos(now_ns().saturating_sub(stamp));
                    record(label, d);
                    total += d;
                }
                total
            })
        });
        drop((ping, pong));
        drop(peer);
    }
    g.finish();
}

fn sync_rtt(c: &mut Criterion) {
    let mut g = c.benchmark_group("sync_rtt_8B");
    // `plain` again after `async_idle`, so that drift in a noisy machine shows.
    for label in ["plain", "async_idle", "plain_again"] {
        // An async receiver idling in this process, registered with a running reactor.
        let idle = (label == "async_idle").then(|| {
            let (tx, mut rx) = spsc::channel::<u64>(4).unwrap();
            let t = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(rx.recv_async()).is_ok()
            });
            while shmchan::registered_waiters() == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            (tx, t)
        });
        let base = base();
        let opts = Options::new().capacity(64);
        let ping = spsc::Sender::<u64>::create(&format!("{base}-ping"), &opts).unwrap();
        let pong = spsc::Receiver::<u64>::create(&format!("{base}-pong"), &opts).unwrap();
        let peer = Peer::spawn(&format!("echo {base}"));
        g.bench_function(label, |b| {
            b.iter_custom(|iters| {
                let t0 = Instant::now();
                for i in 0..iters {
                    ping.send(i).unwrap();
                    pong.recv().unwrap();
                }
                t0.elapsed()
            })
        });
        drop((ping, pong));
        drop(peer);
        if let Some((tx, t)) = idle {
            tx.send(1).unwrap();
            assert!(t.join().unwrap(), "the idle receiver woke");
        }
    }
    g.finish();
}

fn peer(spec: &str) {
    let parts: Vec<&str> = spec.split(' ').collect();
    let base = parts[1];
    match parts[0] {
        // Receive (parked), spin PAUSE, send the time now.
        "wake" => {
            let opts = Options::new().wait_strategy(WaitStrategy::Park);
            let ping = spsc::Receiver::<u64>::open(&format!("{base}-ping"), &opts).unwrap();
            let pong = spsc::Sender::<u64>::open(&format!("{base}-pong"), &opts).unwrap();
            say_ready();
            while ping.recv().is_ok() {
                let until = Instant::now() + PAUSE;
                while Instant::now() < until {
                    std::hint::spin_loop();
                }
                if pong.send(now_ns()).is_err() {
                    return;
                }
            }
        }
        // Echo with the default wait strategy.
        "echo" => {
            let opts = Options::new();
            let ping = spsc::Receiver::<u64>::open(&format!("{base}-ping"), &opts).unwrap();
            let pong = spsc::Sender::<u64>::open(&format!("{base}-pong"), &opts).unwrap();
            say_ready();
            while let Ok(v) = ping.recv() {
                if pong.send(v).is_err() {
                    return;
                }
            }
        }
        other => panic!("unknown peer {other}"),
    }
}
