//! What both benchmarks share: the peer process (this bench binary re-executed with
//! `SHMCHAN_BENCH_PEER` set), its start-up handshake and its shutdown.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Set in a peer's environment to the spec of what it should do.
pub const PEER: &str = "SHMCHAN_BENCH_PEER";

/// A peer process running `spec`. Dropped after the channels or sockets that drive it, so it
/// sees them close and exits on its own (detaching, so its regions' names are removed); one
/// still running after 10 s is killed.
pub struct Peer(Child);

impl Peer {
    /// Start a peer and wait until it says it is attached.
    pub fn spawn(spec: &str) -> Peer {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env(PEER, spec)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "peer failed to start");
        Peer(child)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && matches!(self.0.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Called by a peer once it is attached.
pub fn say_ready() {
    println!("ready");
    std::io::stdout().flush().unwrap();
}

/// How quiet the machine was while a benchmark ran. Two spinning processes need both of these
/// machines' 2 vCPUs: a third (a build, another test) turns a streaming figure into noise.
///
/// [`Quiet::start`] prints the load average before anything runs; [`Quiet::report`] prints it
/// after, with the CPU time other processes used meanwhile (the machine's busy time from
/// `/proc/stat` less this process's and its reaped peers', from `getrusage`). A run is flagged
/// `LOADED` when others took more than a tenth of a CPU; a load average above 1.0 before it is
/// flagged too, as a warning: the last minute's benchmark runs count in it (two spinning peers
/// make 2), so wait a minute between runs for it to mean "others".
pub struct Quiet {
    load_before: f64,
    busy_before: Option<f64>,
    ours_before: f64,
    t0: Instant,
}

/// The 1-minute load average.
fn load1() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Seconds of CPU the whole machine spent busy (user, nice, system, irq, softirq).
fn machine_busy() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let f: Vec<f64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|w| w.parse().ok())
        .collect();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    // user nice system idle iowait irq softirq ...
    Some((f[0] + f[1] + f[2] + f.get(5)? + f.get(6)?) / hz)
}

/// Seconds of CPU this process and its reaped children used.
fn ours() -> f64 {
    let mut total = 0.0;
    for who in [libc::RUSAGE_SELF, libc::RUSAGE_CHILDREN] {
        // SAFETY: getrusage writes one `rusage` into the zeroed value we own.
        let ru = unsafe {
            let mut ru: libc::rusage = std::mem::zeroed();
            libc::getrusage(who, &mut ru);
            ru
        };
        for t in [ru.ru_utime, ru.ru_stime] {
            total += t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        }
    }
    total
}

impl Quiet {
    pub fn start() -> Quiet {
        let q = Quiet {
            load_before: load1(),
            busy_before: machine_busy(),
            ours_before: ours(),
            t0: Instant::now(),
        };
        eprintln!(
            "load average before: {:.2} ({} vCPUs){}",
            q.load_before,
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            if q.load_before > 1.0 {
                " -- above 1.0: busy, or a run in the last minute (see the report at the end)"
            } else {
                ""
            }
        );
        q
    }

    /// Print how quiet the run was (call after every peer is reaped).
    pub fn report(&self) {
        let wall = self.t0.elapsed().as_secs_f64();
        let others = self
            .busy_before
            .zip(machine_busy())
            .map(|(a, b)| ((b - a) - (ours() - self.ours_before)).max(0.0) / wall);
        let load_after = load1();
        let verdict = match others {
            Some(o) if o > 0.1 => " -- LOADED: these figures are not for comparing",
            None if self.load_before > 1.0 => " -- LOADED: these figures are not for comparing",
            _ if self.load_before > 1.0 => {
                " -- load average above 1.0 before the run (a run in the last minute counts)"
            }
            _ => " -- quiet",
        };
        eprintln!(
            "load average before: {:.2}, after: {load_after:.2}; other processes used {} CPU \
             over the run's {wall:.0} s{verdict}",
            self.load_before,
            others.map_or("an unknown share of a".into(), |o| format!("{o:.2}")),
        );
    }
}
