//! Round-trip latency between two processes: shmchan beside a UNIX socket pair, same run.
//!
//! ```text
//! cargo run --release --example pingpong                      # 200k round trips, POSIX
//! cargo run --release --example pingpong -- --n 1000000 --backend sysv
//! cargo run --release --example pingpong -- --backend file:/dev/shm --wait park
//! ```
//!
//! With no arguments it starts its peer process itself (this program, re-executed), does the
//! round trips of an 8-byte message over two SPSC channels (ping and pong), then the same over a
//! UNIX socket pair, and prints the percentiles of each and their ratio. Each round trip is
//! timed on its own with `Instant` (23 ns per read on our CI machine, in both columns).

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use shmchan::{Backend, Options, WaitStrategy, spsc};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

struct Args {
    n: usize,
    backend: Backend,
    wait: WaitStrategy,
    peer: Option<String>,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        n: 200_000,
        backend: Backend::Posix,
        wait: WaitStrategy::default(),
        peer: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--n" => args.n = val()?.parse()?,
            "--backend" => {
                args.backend = match val()?.as_str() {
                    "posix" => Backend::Posix,
                    "sysv" => Backend::SysV,
                    f if f.starts_with("file:") => Backend::File(f[5..].into()),
                    other => {
                        return Err(
                            format!("unknown backend {other:?} (posix, sysv, file:DIR)").into()
                        );
                    }
                }
            }
            "--wait" => {
                args.wait = match val()?.as_str() {
                    "spin" => WaitStrategy::Spin,
                    "park" => WaitStrategy::Park,
                    "default" => WaitStrategy::default(),
                    other => {
                        return Err(format!(
                            "unknown wait strategy {other:?} (spin, park, default)"
                        )
                        .into());
                    }
                }
            }
            "--peer" => args.peer = Some(val()?),
            "-h" | "--help" => {
                println!(
                    "usage: pingpong [--n ROUND_TRIPS] [--backend posix|sysv|file:DIR] [--wait spin|park|default]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)").into()),
        }
    }
    if args.n == 0 {
        return Err("--n must be at least 1".into());
    }
    Ok(args)
}

fn main() -> Result<()> {
    let args = parse_args()?;
    match &args.peer {
        Some(base) => peer(base, &args),
        None => parent(&args),
    }
}

/// The echo side: return every ping, over shmchan and then over the socket.
fn peer(base: &str, args: &Args) -> Result<()> {
    let opts = Options::new()
        .backend(args.backend.clone())
        .wait_strategy(args.wait);
    {
        let ping = spsc::Receiver::<u64>::open(&format!("{base}-ping"), &opts)?;
        let pong = spsc::Sender::<u64>::open(&format!("{base}-pong"), &opts)?;
        while let Ok(v) = ping.recv() {
            if pong.send(v).is_err() {
                break;
            }
        }
    }
    let mut sock = UnixStream::connect(format!("/tmp/{base}.sock"))?;
    let mut buf = [0u8; 8];
    while sock.read_exact(&mut buf).is_ok() {
        sock.write_all(&buf)?;
    }
    Ok(())
}

fn parent(args: &Args) -> Result<()> {
    let base = format!("shmchan-pingpong-{}", std::process::id());
    let opts = Options::new()
        .backend(args.backend.clone())
        .capacity(64)
        .wait_strategy(args.wait);
    let ping = spsc::Sender::<u64>::create(&format!("{base}-ping"), &opts)?;
    let pong = spsc::Receiver::<u64>::create(&format!("{base}-pong"), &opts)?;
    let sock_path = format!("/tmp/{base}.sock");
    let listener = UnixListener::bind(&sock_path)?;
    let _remove_sock = RemoveOnDrop(sock_path.clone());

    let backend = match &args.backend {
        Backend::Posix => "posix".to_owned(),
        Backend::SysV => "sysv".to_owned(),
        Backend::File(d) => format!("file:{}", d.display()),
    };
    let wait = match args.wait {
        WaitStrategy::Spin => "spin",
        WaitStrategy::Park => "park",
        _ => "default",
    };
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--peer", &base, "--backend", &backend, "--wait", wait])
        .stdin(Stdio::null())
        .spawn()?;
    let _kill = KillOnDrop(&mut child);

    let warmup = (args.n / 10).max(1000);
    let mut shm = Vec::with_capacity(args.n);
    for i in 0..(warmup + args.n) as u64 {
        let t0 = Instant::now();
        ping.send(i)?;
        let v = pong.recv()?;
        let dt = t0.elapsed();
        if v != i {
            return Err(format!("peer echoed {v}, expected {i}").into());
        }
        if i as usize >= warmup {
            shm.push(dt);
        }
    }
    drop((ping, pong)); // the peer sees Disconnected and moves on to the socket

    let (mut sock, _) = listener.accept()?;
    let mut uds = Vec::with_capacity(args.n);
    let mut buf = [0u8; 8];
    for i in 0..(warmup + args.n) as u64 {
        let t0 = Instant::now();
        sock.write_all(&i.to_le_bytes())?;
        sock.read_exact(&mut buf)?;
        let dt = t0.elapsed();
        if u64::from_le_bytes(buf) != i {
            return Err("socket peer echoed the wrong value".into());
        }
        if i as usize >= warmup {
            uds.push(dt);
        }
    }
    drop(sock);
    let status = _kill.0.wait()?;
    if !status.success() {
        return Err(format!("peer process failed: {status}").into());
    }

    let s = Stats::of(&mut shm);
    let u = Stats::of(&mut uds);
    println!(
        "round trip of an 8-byte message between two processes ({} round trips after {warmup} \
         warm-up; {} backend, {wait} wait strategy)",
        args.n, args.backend
    );
    println!(
        "{:<22}{:>10}{:>10}{:>10}{:>10}",
        "", "p50", "p99", "p99.9", "mean"
    );
    s.print("shmchan SPSC");
    u.print("UNIX socket pair");
    println!(
        "{:<22}{:>9.1}x{:>9.1}x{:>9.1}x{:>9.1}x",
        "socket / shmchan",
        ratio(u.p50, s.p50),
        ratio(u.p99, s.p99),
        ratio(u.p999, s.p999),
        ratio(u.mean, s.mean)
    );
    Ok(())
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-12)
}

struct Stats {
    p50: Duration,
    p99: Duration,
    p999: Duration,
    mean: Duration,
}

impl Stats {
    fn of(samples: &mut [Duration]) -> Stats {
        samples.sort_unstable();
        let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
        let total: Duration = samples.iter().sum();
        Stats {
            p50: at(0.50),
            p99: at(0.99),
            p999: at(0.999),
            mean: total / samples.len() as u32,
        }
    }

    fn print(&self, label: &str) {
        let f = |d: Duration| {
            let ns = d.as_nanos();
            if ns < 10_000 {
                format!("{ns} ns")
            } else {
                format!("{:.1} µs", ns as f64 / 1000.0)
            }
        };
        println!(
            "{label:<22}{:>10}{:>10}{:>10}{:>10}",
            f(self.p50),
            f(self.p99),
            f(self.p999),
            f(self.mean)
        );
    }
}

struct RemoveOnDrop(String);
impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

struct KillOnDrop<'a>(&'a mut std::process::Child);
impl Drop for KillOnDrop<'_> {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}
