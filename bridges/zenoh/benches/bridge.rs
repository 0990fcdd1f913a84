//! The bridge beside Zenoh's own publisher -> subscriber, between processes on this machine
//! over 127.0.0.1 TCP (peer mode, scouting off), in the same run:
//!
//! - throughput of 8-byte messages: a local producer -> out bridge -> in bridge -> a local
//!   consumer, against a Zenoh publisher process `put`ting 8-byte payloads to a subscriber
//!   process (as `z_pub_thr`/`z_sub_thr`: congestion control Block, batching on). Measured at
//!   the receiving end, first message to last.
//! - one-way latency (p50, p99): a message every 200 us stamped with CLOCK_MONOTONIC by the
//!   sender, read by the receiver; the same for both paths.
//!
//! `cargo bench --bench bridge` (about a minute); `-- --quick` for CI (a few seconds). The
//! load average is printed before and after: on a 2-core machine both paths are four busy
//! processes (the bridged one) or two (Zenoh's) and the numbers move with the load.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use zenoh::qos::CongestionControl;
use zenoh::{Config, Wait};

const BRIDGE: &str = env!("CARGO_BIN_EXE_shmchan-bridge");

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn session(listen: Option<&str>, connect: Option<&str>) -> zenoh::Session {
    let mut c = Config::default();
    c.insert_json5("mode", r#""peer""#).unwrap();
    c.insert_json5("scouting/multicast/enabled", "false")
        .unwrap();
    c.insert_json5("scouting/gossip/enabled", "false").unwrap();
    let list = |e: Option<&str>| serde_json::to_string(&e.into_iter().collect::<Vec<_>>()).unwrap();
    c.insert_json5("listen/endpoints", &list(listen)).unwrap();
    c.insert_json5("connect/endpoints", &list(connect)).unwrap();
    zenoh::open(c).wait().unwrap()
}

/// Zenoh's own subscriber: `count` messages; prints `RESULT elapsed_ns p50 p99` (latency
/// mode: the payload is the sender's clock).
fn zsub(listen: &str, count: u64, latency: bool) {
    let s = session(Some(listen), None);
    let got = Arc::new(AtomicU64::new(0));
    let times = Arc::new(Mutex::new((None::<Instant>, None::<Instant>, Vec::new())));
    let (g, t) = (got.clone(), times.clone());
    let _sub = s
        .declare_subscriber("bench/z")
        .callback(move |sample| {
            let now = Instant::now();
            let mut t = t.lock().unwrap();
            if latency {
                let b = sample.payload().to_bytes();
                let sent = u64::from_le_bytes(b[..8].try_into().unwrap());
                t.2.push(now_ns().saturating_sub(sent));
            }
            t.0.get_or_insert(now);
            t.1 = Some(now);
            g.fetch_add(1, Ordering::Relaxed);
        })
        .wait()
        .unwrap();
    println!("READY");
    let t0 = Instant::now();
    while got.load(Ordering::Relaxed) < count && t0.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut t = times.lock().unwrap();
    let elapsed = match (t.0, t.1) {
        (Some(a), Some(b)) => (b - a).as_nanos() as u64,
        _ => 0,
    };
    let (p50, p99) = percentiles(&mut t.2);
    println!(
        "RESULT {elapsed} {p50} {p99} {}",
        got.load(Ordering::Relaxed)
    );
}

/// Zenoh's own publisher: `count` 8-byte puts, as fast as it goes (or one every 200 us,
/// stamped, for latency).
fn zpub(connect: &str, count: u64, latency: bool) {
    let s = session(None, Some(connect));
    let p = s
        .declare_publisher("bench/z")
        .congestion_control(CongestionControl::Block)
        .wait()
        .unwrap();
    while !p.matching_status().wait().unwrap().matching() {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(100));
    for i in 0..count {
        let v = if latency { now_ns() } else { i };
        p.put(v.to_le_bytes().to_vec()).wait().unwrap();
        if latency {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    std::thread::sleep(Duration::from_millis(500)); // let the last batch go out
}

fn percentiles(v: &mut [u64]) -> (u64, u64) {
    if v.is_empty() {
        return (0, 0);
    }
    v.sort_unstable();
    let at = |q: f64| v[((v.len() - 1) as f64 * q) as usize];
    (at(0.5), at(0.99))
}

fn result_line(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("RESULT ").map(str::to_owned))
        .unwrap_or_else(|| {
            panic!(
                "no RESULT: {}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        })
}

fn wait_ready(child: &mut std::process::Child) {
    use std::io::Read;
    let out = child.stdout.as_mut().unwrap();
    let (mut line, mut b) = (Vec::new(), [0u8; 1]);
    while out.read(&mut b).unwrap() == 1 && b[0] != b'\n' {
        line.push(b[0]);
    }
    assert_eq!(line, b"READY");
}

/// Zenoh alone: (msg/s, p50 ns, p99 ns).
fn zenoh_run(count: u64, latency: bool) -> (f64, u64, u64) {
    let exe = std::env::current_exe().unwrap();
    let ep = format!("tcp/127.0.0.1:{}", free_port());
    let mode = if latency { "lat" } else { "thr" };
    let mut sub = Command::new(&exe)
        .args(["zsub", &ep, &count.to_string(), mode])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    wait_ready(&mut sub);
    let mut publ = Command::new(&exe)
        .args(["zpub", &ep, &count.to_string(), mode])
        .spawn()
        .unwrap();
    let out = sub.wait_with_output().unwrap();
    let _ = publ.kill();
    let _ = publ.wait();
    let r: Vec<u64> = result_line(&out)
        .split(' ')
        .map(|x| x.parse().unwrap())
        .collect();
    assert_eq!(r[3], count, "zenoh subscriber got {} of {count}", r[3]);
    (count as f64 / (r[0] as f64 / 1e9), r[1], r[2])
}

/// How the bridged path waits: the bridges' `--wait`, and the consumer's flags.
#[derive(Clone, Copy)]
struct Waits {
    bridges: &'static str,
    consumer: &'static [&'static str],
}

/// The bridge: (msg/s, p50 ns, p99 ns, per-hop ages in latency mode).
fn bridge_run(count: u64, latency: bool, waits: Waits) -> (f64, u64, u64, String) {
    let peer = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples/peer");
    // A fresh name per run: channels of an earlier run may still be going away.
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let tag = format!(
        "brb-{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    );
    let (a, b) = (format!("{tag}-a"), format!("{tag}-b"));
    let state = std::env::temp_dir().join(&tag);
    std::fs::create_dir_all(&state).unwrap();
    let ep = format!("tcp/127.0.0.1:{}", free_port());
    let n = count.to_string();
    let mut extra = Vec::new();
    if latency {
        extra.push("--latency");
    }
    extra.extend(waits.consumer);
    let wait = waits.bridges;
    let mut cons = Command::new(&peer)
        .args(["consume", &b, "spsc", &n, "--create", "65536"])
        .args(&extra)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    wait_ready(&mut cons);
    let mut bridges = Vec::new();
    for args in [
        [
            "out",
            a.as_str(),
            "--key",
            "bench/b",
            "--listen",
            ep.as_str(),
        ],
        [
            "in",
            b.as_str(),
            "--key",
            "bench/b",
            "--connect",
            ep.as_str(),
        ],
    ] {
        bridges.push(
            Command::new(BRIDGE)
                .args(args)
                .args(["--wait", wait])
                .env("SHMCHAN_BRIDGE_STATE_DIR", &state)
                .env("SHMCHAN_BRIDGE_HOPS", state.join("hops"))
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
    }
    let go = state.join("go");
    let mut prod = Command::new(&peer)
        .args(["produce", &a, "spsc", &n, "--create", "65536", "--go-file"])
        .arg(&go)
        .args(&extra)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Start producing once both bridges hear each other (as Zenoh's publisher waits for a
    // matching subscriber).
    let t0 = Instant::now();
    loop {
        let out = Command::new(BRIDGE)
            .args(["ls", "--json"])
            .env("SHMCHAN_BRIDGE_STATE_DIR", &state)
            .output()
            .unwrap();
        let routes: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let up = routes
            .as_array()
            .is_some_and(|r| r.len() == 2 && r.iter().all(|r| r["remote"] == true));
        if up {
            break;
        }
        if t0.elapsed() > Duration::from_secs(30) {
            for mut c in bridges.into_iter().chain([prod, cons]) {
                let _ = c.kill();
                let _ = c.wait();
            }
            panic!("the bridges never met");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100));
    std::fs::write(&go, b"").unwrap();
    let out = cons.wait_with_output().unwrap();
    let _ = prod.wait();
    for mut b in bridges {
        // SAFETY: kill(2) on our own child, not yet waited for.
        unsafe { libc::kill(b.id() as i32, libc::SIGTERM) };
        let _ = b.wait();
    }
    // Each hop's age of the stamp (p50/p99): taken by the out bridge, received by the in
    // bridge, written into the consumer's ring.
    let mut hops = String::new();
    for point in ["out-take", "in-recv", "in-written"] {
        let f = std::fs::read_to_string(state.join(format!("hops.{point}"))).unwrap_or_default();
        let v: Vec<f64> = f
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if v.len() == 3 {
            hops += &format!("{point} {:.1}/{:.1} us, ", v[0] / 1e3, v[1] / 1e3);
        }
    }
    let _ = std::fs::remove_dir_all(&state);
    let r: serde_json::Value = serde_json::from_str(&result_line(&out)).unwrap();
    assert_eq!(r["received"], count, "{r}");
    let thr = count as f64 / (r["elapsed_ns"].as_u64().unwrap() as f64 / 1e9);
    let (p50, p99) = match r["latency_ns"].as_array() {
        Some(l) => (l[0].as_u64().unwrap(), l[1].as_u64().unwrap()),
        None => (0, 0),
    };
    (thr, p50, p99, hops)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("zsub") => return zsub(&args[2], args[3].parse().unwrap(), args[4] == "lat"),
        Some("zpub") => return zpub(&args[2], args[3].parse().unwrap(), args[4] == "lat"),
        _ => {}
    }
    let quick = args.iter().any(|a| a == "--quick");
    // Only the latency rows (for looking into them).
    let lat_only = args.iter().any(|a| a == "--latency-only");
    let (thr_n, lat_n, runs) = if quick {
        (1_000_000, 2_000, 1)
    } else {
        (5_000_000, 10_000, 3)
    };
    const DEFAULT: Waits = Waits {
        bridges: "adaptive",
        consumer: &[],
    };
    // The bridged path's ways of waiting (README, "Latency"): the first two are the default
    // bridges with the consumer awake when a message lands (as Zenoh's subscriber callback
    // is) and with the consumer on the library's default wait (what a user who changes
    // nothing runs).
    let rows: [(&str, Waits); 4] = [
        (
            "default bridges, consumer polling adaptively",
            Waits {
                bridges: "adaptive",
                consumer: &["--adaptive"],
            },
        ),
        (
            "default bridges, consumer on the library's default wait",
            DEFAULT,
        ),
        (
            "bridges --wait spin-then-park (the old default)",
            Waits {
                bridges: "spin-then-park",
                consumer: &[],
            },
        ),
        (
            "bridges --wait spin, consumer spinning",
            Waits {
                bridges: "spin",
                consumer: &["--spin"],
            },
        ),
    ];
    println!("os load average before: {}", loadavg());
    for run in 0..runs {
        if !lat_only {
            let (zt, _, _) = zenoh_run(thr_n, false);
            let (bt, _, _, _) = bridge_run(thr_n, false, DEFAULT);
            println!(
                "run {run}: 8 B throughput, {thr_n} messages: bridged {:.2} M msg/s, zenoh pub->sub {:.2} M msg/s, ratio {:.2}x",
                bt / 1e6,
                zt / 1e6,
                bt / zt
            );
        }
        let us = |ns: u64| ns as f64 / 1e3;
        let (_, z50, z99) = zenoh_run(lat_n, true);
        println!(
            "run {run}: one-way latency, {lat_n} messages 200 us apart: zenoh pub->sub p50 {:.1} us p99 {:.1} us",
            us(z50),
            us(z99)
        );
        for (what, waits) in rows {
            let (_, b50, b99, hops) = bridge_run(lat_n, true, waits);
            let target = if b50 <= z50 + 10_000 {
                "within"
            } else {
                "over"
            };
            println!(
                "run {run}:   {what}: p50 {:.1} us ({:+.1} us, {target} zenoh's + 10 us) p99 {:.1} us; hops p50/p99: {hops}",
                us(b50),
                us(b50) - us(z50),
                us(b99),
            );
        }
    }
    println!("os load average after: {}", loadavg());
}
