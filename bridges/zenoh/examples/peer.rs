//! A local producer or consumer of a shmchan channel, for the bridge's tests and benchmark.
//!
//! ```text
//! peer produce NAME KIND COUNT [--create CAP] [--elem NAME:SIZE:ALIGN] [--try] [--from S] [--go-file PATH]
//! peer consume NAME KIND COUNT [--create CAP] [--slow-us N] [--idle-ms N] [--latency]
//! ```
//!
//! KIND is `spsc`, `mpmc`, `frame`, `tbcast` (a typed topic of `u64`: the producer creates it,
//! in Block mode or with `--overwrite` in Overwrite mode, and publishes once a subscriber is
//! counted; the consumer subscribes, retrying until it exists) or `topic`, a frame topic (the
//! producer creates it in Block mode; the consumer subscribes to one that exists, frames of
//! up to 64 KiB). Typed messages are the `u64` values `0..COUNT` (SPSC:
//! `S..S+COUNT` with `--from`; or, with
//! `--elem`, elements of another type, for a mismatch); frames are frame `i` of
//! [`frame_bytes`]. `--try` sends with `try_send` and counts how often the ring was `Full`.
//! The consumer stops after COUNT messages, or after `--idle-ms` without one, and prints one
//! line `RESULT {json}`: what it received, in order or not, and what was missing.
//! `--latency`: each typed value is the sender's clock (ns since a shared epoch) and the
//! consumer reports latency percentiles.

use std::time::{Duration, Instant};

use shmchan::untyped::{self, Element};
use shmchan::{Options, TrySendError, frame, mpmc, spsc};

/// Frame `i`: a length from 0 to 64 KiB and bytes that depend on `i` and their offset.
pub fn frame_bytes(i: u64, max: usize) -> Vec<u8> {
    let mut x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5851_f42d_4c95_7f2d;
    x ^= x >> 29;
    let len = (x % (max as u64 + 1)) as usize;
    (0..len)
        .map(|j| (i as usize).wrapping_mul(131).wrapping_add(j * 7) as u8)
        .collect()
}

fn arg(args: &[String], flag: &str) -> Option<String> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1).cloned())
}

fn now_ns() -> u64 {
    // CLOCK_MONOTONIC is shared by every process on the host.
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (role, name, kind, count) = (
        args[1].as_str(),
        args[2].as_str(),
        args[3].as_str(),
        args[4].parse::<u64>().expect("COUNT"),
    );
    let create = arg(&args, "--create").map(|c| c.parse::<usize>().expect("CAP"));
    let mut opts = Options::new().capacity(create.unwrap_or(1024));
    if args.iter().any(|a| a == "--spin") {
        opts = opts.wait_strategy(shmchan::WaitStrategy::Spin);
    }
    match role {
        "produce" => produce(name, kind, count, create.is_some(), &opts, &args),
        "consume" => consume(name, kind, count, create.is_some(), &opts, &args),
        _ => panic!("produce or consume"),
    }
}

fn open_retry<T>(mut f: impl FnMut() -> Result<T, shmchan::Error>) -> T {
    let t0 = Instant::now();
    loop {
        match f() {
            Ok(x) => return x,
            Err(e) if t0.elapsed() > Duration::from_secs(30) => panic!("open: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn produce(name: &str, kind: &str, count: u64, create: bool, opts: &Options, args: &[String]) {
    let try_mode = args.iter().any(|a| a == "--try");
    let from: u64 = arg(args, "--from").map_or(0, |s| s.parse().unwrap());
    let latency = args.iter().any(|a| a == "--latency");
    let mut full = 0u64;
    let value = |i: u64| if latency { now_ns() } else { i };
    match (kind, arg(args, "--elem")) {
        ("spsc", Some(elem)) => {
            let mut it = elem.split(':');
            let e = Element::new(
                it.next().unwrap(),
                it.next().unwrap().parse().unwrap(),
                it.next().unwrap().parse().unwrap(),
            );
            let tx = if create {
                untyped::spsc::Sender::create(name, &e, opts).unwrap()
            } else {
                open_retry(|| untyped::spsc::Sender::open(name, &e, opts))
            };
            let v = vec![0xabu8; e.size()];
            for _ in 0..count {
                tx.send(&v).unwrap();
            }
        }
        ("spsc", None) => {
            let tx = if create {
                spsc::Sender::<u64>::create(name, opts).unwrap()
            } else {
                open_retry(|| spsc::Sender::<u64>::open(name, opts))
            };
            if let Some(go) = arg(args, "--go-file") {
                // Start once told (the benchmark waits until the bridges are connected).
                while !std::path::Path::new(&go).exists() {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            for i in from..from + count {
                if try_mode {
                    loop {
                        match tx.try_send(value(i)) {
                            Ok(()) => break,
                            Err(TrySendError::Full(_)) => {
                                full += 1;
                                std::thread::sleep(Duration::from_micros(200));
                            }
                            Err(TrySendError::Disconnected(_)) => {
                                std::thread::sleep(Duration::from_millis(1))
                            }
                        }
                    }
                } else {
                    while tx.send(value(i)).is_err() {
                        std::thread::sleep(Duration::from_millis(1)); // until a receiver attaches
                    }
                }
                if latency {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        }
        ("mpmc", _) => {
            let tx = if create {
                mpmc::Sender::<u64>::create(name, opts).unwrap()
            } else {
                open_retry(|| mpmc::Sender::<u64>::open(name, opts))
            };
            for i in 0..count {
                while tx.send(i).is_err() {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
        ("frame", _) => {
            let mut tx = if create {
                frame::Sender::create(name, opts).unwrap()
            } else {
                open_retry(|| frame::Sender::open(name, opts))
            };
            let max = tx.max_frame().min(64 * 1024);
            for i in 0..count {
                let f = frame_bytes(i, max);
                while tx.send(&f).is_err() {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            // Stay until the bridge has taken everything (a sender leaving first takes a
            // channel created by it with it only if no one else is attached).
        }
        ("topic", _) => {
            // A frame topic in Block mode: lossless for the subscribers it has; it waits for
            // the first (the bridge) before publishing.
            let o = opts
                .clone()
                .max_frame(64 * 1024)
                .overflow(shmchan::broadcast::Overflow::Block { evict_after: None });
            let mut tx = shmchan::broadcast::FramePublisher::create(name, &o).unwrap();
            // A counted subscriber sees the next message (layout 6: counted once ready).
            tx.wait_for_subscribers(1, Duration::from_secs(60)).unwrap();
            for i in 0..count {
                tx.send(&frame_bytes(i, 64 * 1024)).unwrap();
            }
            // Stay until the subscriber has read everything: a topic's publisher leaving
            // does not take what is published with it, but be sure the bridge got it all.
            let t0 = Instant::now();
            while tx.subscriber_count() > 0 && t0.elapsed() < Duration::from_secs(60) {
                match shmchan::inspect::stat(name, o.get_backend()) {
                    Ok(ch) if ch.ring.as_ref().is_some_and(|r| r.len == 0) => break,
                    _ => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        }
        ("tbcast", _) => {
            let overflow = if args.iter().any(|a| a == "--overwrite") {
                shmchan::broadcast::Overflow::Overwrite
            } else {
                shmchan::broadcast::Overflow::Block { evict_after: None }
            };
            let o = opts.clone().overflow(overflow);
            let mut tx = shmchan::broadcast::Publisher::<u64>::create(name, &o).unwrap();
            // A counted subscriber sees the next message (layout 6: counted once ready).
            tx.wait_for_subscribers(1, Duration::from_secs(60)).unwrap();
            for i in 0..count {
                tx.send(i).unwrap();
            }
            if overflow != shmchan::broadcast::Overflow::Overwrite {
                // Stay until the subscriber has read everything, as for `topic`.
                let t0 = Instant::now();
                while tx.subscriber_count() > 0 && t0.elapsed() < Duration::from_secs(60) {
                    match shmchan::inspect::stat(name, o.get_backend()) {
                        Ok(ch) if ch.ring.as_ref().is_some_and(|r| r.len == 0) => break,
                        _ => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            }
        }
        _ => panic!("kind"),
    }
    println!("RESULT {{\"sent\":{count},\"full\":{full}}}");
    // Let the bridge drain the ring before this endpoint goes (it would stay anyway: the
    // bridge holds the channel).
    std::thread::sleep(Duration::from_millis(100));
}

#[derive(Default)]
struct Check {
    received: u64,
    first: Option<u64>,
    last: Option<u64>,
    out_of_order: u64,
    duplicates: u64,
    /// Values skipped between consecutive ones (typed: each value is its index).
    missing: u64,
    /// Typed topic: messages the topic overwrote before this consumer read them.
    lagged: u64,
    bad_bytes: u64,
    lat: Vec<u64>,
    t_first: Option<Instant>,
    t_last: Option<Instant>,
}

impl Check {
    /// How long since the last message (or since the start).
    fn idle_for(&mut self) -> Duration {
        let since = *self.t_last.get_or_insert_with(Instant::now);
        since.elapsed()
    }

    fn tick(&mut self) {
        let now = Instant::now();
        self.t_first.get_or_insert(now);
        self.t_last = Some(now);
    }

    fn value(&mut self, v: u64) {
        self.tick();
        self.received += 1;
        self.first.get_or_insert(v);
        if let Some(l) = self.last {
            if v == l {
                self.duplicates += 1;
            } else if v < l {
                self.out_of_order += 1;
            } else {
                self.missing += v - l - 1;
            }
        }
        self.last = Some(v);
    }
}

fn consume(name: &str, kind: &str, count: u64, create: bool, opts: &Options, args: &[String]) {
    let slow = Duration::from_micros(arg(args, "--slow-us").map_or(0, |s| s.parse().unwrap()));
    let idle = Duration::from_millis(arg(args, "--idle-ms").map_or(30_000, |s| s.parse().unwrap()));
    let latency = args.iter().any(|a| a == "--latency");
    let mut ck = Check::default();
    match kind {
        "spsc" => {
            let rx = if create {
                spsc::Receiver::<u64>::create(name, opts).unwrap()
            } else {
                open_retry(|| spsc::Receiver::<u64>::open(name, opts))
            };
            println!("READY");
            let adaptive = args.iter().any(|a| a == "--adaptive");
            let mut gaps = Gaps::default();
            while ck.received < count {
                let mut got = Err(shmchan::RecvTimeoutError::Timeout);
                if adaptive {
                    // As the bridge's --wait adaptive: poll across short gaps, yielding.
                    let t0 = Instant::now();
                    let window = gaps.window(t0);
                    loop {
                        match rx.try_recv() {
                            Ok(v) => got = Ok(v),
                            Err(shmchan::TryRecvError::Empty) if t0.elapsed() < window => {
                                // SAFETY: sched_yield(2) touches no memory of ours.
                                unsafe { libc::sched_yield() };
                                continue;
                            }
                            Err(_) => {}
                        }
                        break;
                    }
                }
                if got.is_err() {
                    got = rx.recv_timeout(idle);
                }
                match got {
                    Ok(v) => {
                        gaps.arrived(Instant::now());
                        if latency {
                            ck.lat.push(now_ns().saturating_sub(v));
                            ck.received += 1;
                        } else {
                            ck.value(v);
                        }
                    }
                    Err(shmchan::RecvTimeoutError::Timeout) => break,
                    Err(shmchan::RecvTimeoutError::Disconnected) => {
                        if ck.idle_for() > idle {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(1))
                    }
                }
                if !slow.is_zero() {
                    std::thread::sleep(slow);
                }
            }
        }
        "mpmc" => {
            let rx = if create {
                mpmc::Receiver::<u64>::create(name, opts).unwrap()
            } else {
                open_retry(|| mpmc::Receiver::<u64>::open(name, opts))
            };
            println!("READY");
            while ck.received < count {
                match rx.recv_timeout(idle) {
                    Ok(v) => ck.value(v),
                    Err(shmchan::RecvTimeoutError::Timeout) => break,
                    Err(shmchan::RecvTimeoutError::Disconnected) => {
                        if ck.idle_for() > idle {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(1))
                    }
                }
            }
        }
        "tbcast" => {
            let mut rx = open_retry(|| shmchan::broadcast::Subscriber::<u64>::open(name, opts));
            println!("READY");
            while ck.received < count {
                match rx.recv_timeout(idle) {
                    Ok(v) => ck.value(v),
                    Err(shmchan::broadcast::RecvTimeoutError::Lagged(k)) => ck.lagged += k,
                    Err(shmchan::broadcast::RecvTimeoutError::Timeout) => break,
                    Err(_) => {
                        if ck.idle_for() > idle {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            }
        }
        "topic" => {
            // A frame topic someone else created (the in bridge): frames up to 64 KiB.
            let mut rx = open_retry(|| shmchan::broadcast::FrameSubscriber::open(name, opts));
            println!("READY");
            let mut buf = Vec::new();
            while ck.received < count {
                match rx.recv_timeout_into(&mut buf, idle) {
                    Ok(len) => {
                        ck.tick();
                        if buf[..len] != frame_bytes(ck.received, 64 * 1024)[..] {
                            ck.bad_bytes += 1;
                        }
                        ck.received += 1;
                    }
                    Err(shmchan::broadcast::RecvTimeoutError::Lagged(k)) => ck.lagged += k,
                    Err(shmchan::broadcast::RecvTimeoutError::Timeout) => break,
                    Err(_) => {
                        if ck.idle_for() > idle {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            }
        }
        "frame" => {
            let mut rx = if create {
                frame::Receiver::create(name, opts).unwrap()
            } else {
                open_retry(|| frame::Receiver::open(name, opts))
            };
            println!("READY");
            let max = (rx.capacity() - 16).min(64 * 1024);
            let mut buf = Vec::new();
            while ck.received < count {
                match rx.recv_timeout(idle) {
                    Ok(f) => {
                        buf.clear();
                        buf.extend_from_slice(&f);
                    }
                    Err(shmchan::RecvTimeoutError::Timeout) => break,
                    Err(shmchan::RecvTimeoutError::Disconnected) => {
                        if ck.idle_for() > idle {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(1));
                        continue;
                    }
                }
                // Frames are checked against frame `received` (exact, in order).
                ck.tick();
                if buf != frame_bytes(ck.received, max) {
                    ck.bad_bytes += 1;
                }
                ck.received += 1;
            }
        }
        _ => panic!("kind"),
    }
    let lat = if ck.lat.is_empty() {
        String::from("null")
    } else {
        ck.lat.sort_unstable();
        let p = |q: f64| ck.lat[((ck.lat.len() - 1) as f64 * q) as usize];
        format!("[{},{},{}]", p(0.5), p(0.99), p(0.999))
    };
    println!(
        "RESULT {{\"received\":{},\"first\":{},\"last\":{},\"out_of_order\":{},\"duplicates\":{},\"missing\":{},\"lagged\":{},\"bad_bytes\":{},\"latency_ns\":{lat},\"elapsed_ns\":{}}}",
        ck.received,
        ck.first.map_or("null".into(), |l| l.to_string()),
        ck.last.map_or("null".into(), |l| l.to_string()),
        ck.out_of_order,
        ck.duplicates,
        ck.missing,
        ck.lagged,
        ck.bad_bytes,
        match (ck.t_first, ck.t_last) {
            (Some(a), Some(b)) => (b - a).as_nanos() as u64,
            _ => 0,
        }
    );
}

/// The gap between messages, learned as they come (as the bridge's `adaptive.rs`): poll for
/// twice the recent gap after the last one while the gap is under 1 ms, else 50 us.
#[derive(Default)]
struct Gaps {
    last: Option<Instant>,
    mean_ns: u64,
}

impl Gaps {
    fn arrived(&mut self, now: Instant) {
        if let Some(last) = self.last {
            let gap = (now - last).as_nanos().min(4_000_000) as u64;
            self.mean_ns = if self.mean_ns == 0 {
                gap
            } else {
                self.mean_ns - self.mean_ns / 8 + gap / 8
            };
        }
        self.last = Some(now);
    }

    fn window(&self, now: Instant) -> Duration {
        let min = Duration::from_micros(50);
        match self.last {
            Some(last) if self.mean_ns > 0 && self.mean_ns < 1_000_000 => (last
                + 2 * Duration::from_nanos(self.mean_ns))
            .saturating_duration_since(now)
            .max(min),
            _ => min,
        }
    }
}
