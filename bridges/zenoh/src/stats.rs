//! Counters of each route, the state file a running bridge keeps them in, and `ls`, which
//! reads those files.
//!
//! A bridge writes `shmchan-bridge-<pid>.json` in the state directory
//! (`$SHMCHAN_BRIDGE_STATE_DIR`, else `/dev/shm`) every 200 ms, by writing a temporary file and
//! renaming it over the old one (so a reader never sees half a file), and removes it when it
//! exits. `ls` lists the files whose process is alive and removes those of dead processes (a
//! bridge killed with `kill -9`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// One route's counters, shared between its thread and the state writer (relaxed: each is a
/// plain tally, read as a snapshot).
#[derive(Default, Debug)]
pub struct Counters {
    /// out: messages published for the first time; in: messages written to the local ring.
    pub forwarded: AtomicU64,
    /// out: messages published again (an in route restarted, or asked after a jump).
    pub resent: AtomicU64,
    /// Messages lost for good: in: sequence jumps within one out route's epoch; out:
    /// messages an in route asked for again that were no longer held.
    pub gaps: AtomicU64,
    /// in: messages received again (already written), not written twice.
    pub duplicates: AtomicU64,
    /// in: messages whose fingerprint does not fit the local channel (never written).
    pub type_mismatches: AtomicU64,
    /// Times the remote side (re)appeared after the first: a new in route (out), a new out
    /// route's epoch or one heard again after silence (in).
    pub reconnects: AtomicU64,
    /// Times a local peer attached again after it had gone.
    pub local_reconnects: AtomicU64,
    /// in, lossy: messages dropped because the local ring was full or its receiver gone;
    /// out, topic: messages the topic overwrote before the bridge read them.
    pub drops: AtomicU64,
    /// Messages that did not parse.
    pub malformed: AtomicU64,
    /// Is the remote side heard from (credit or data within the last 3 s)?
    pub remote: AtomicBool,
    /// Is the local peer attached?
    pub local: AtomicBool,
}

impl Counters {
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Relaxed);
    }
}

/// A route as the state file shows it.
#[derive(Debug)]
pub struct Route {
    pub direction: &'static str,
    pub name: String,
    pub key: String,
    pub mode: &'static str,
    pub fingerprint: Mutex<String>,
    pub counters: Arc<Counters>,
}

/// What `ls --json` prints, one per route.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct RouteState {
    pub pid: u32,
    pub direction: String,
    pub name: String,
    pub key: String,
    pub mode: String,
    pub fingerprint: String,
    pub remote: bool,
    pub local: bool,
    pub forwarded: u64,
    pub resent: u64,
    pub gaps: u64,
    pub duplicates: u64,
    pub type_mismatches: u64,
    pub reconnects: u64,
    pub local_reconnects: u64,
    pub drops: u64,
    pub malformed: u64,
    pub updated_ms: u64,
}

/// The state file's content.
#[derive(Serialize, Deserialize, Debug)]
pub struct State {
    pub pid: u32,
    pub zid: String,
    pub listen: Vec<String>,
    pub connect: Vec<String>,
    pub routes: Vec<RouteState>,
}

pub fn state_dir() -> PathBuf {
    std::env::var_os("SHMCHAN_BRIDGE_STATE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/dev/shm"))
}

pub fn state_path(dir: &Path, pid: u32) -> PathBuf {
    dir.join(format!("shmchan-bridge-{pid}.json"))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Route {
    pub fn snapshot(&self, pid: u32) -> RouteState {
        let c = &self.counters;
        RouteState {
            pid,
            direction: self.direction.into(),
            name: self.name.clone(),
            key: self.key.clone(),
            mode: self.mode.into(),
            fingerprint: self.fingerprint.lock().unwrap().clone(),
            remote: c.remote.load(Relaxed),
            local: c.local.load(Relaxed),
            forwarded: c.forwarded.load(Relaxed),
            resent: c.resent.load(Relaxed),
            gaps: c.gaps.load(Relaxed),
            duplicates: c.duplicates.load(Relaxed),
            type_mismatches: c.type_mismatches.load(Relaxed),
            reconnects: c.reconnects.load(Relaxed),
            local_reconnects: c.local_reconnects.load(Relaxed),
            drops: c.drops.load(Relaxed),
            malformed: c.malformed.load(Relaxed),
            updated_ms: now_ms(),
        }
    }
}

/// Write `state` to the state file of this process (atomically: temporary file, rename).
pub fn write_state(dir: &Path, state: &State) -> std::io::Result<()> {
    let path = state_path(dir, state.pid);
    let tmp = dir.join(format!(".shmchan-bridge-{}.json.tmp", state.pid));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&serde_json::to_vec(state).map_err(std::io::Error::other)?)?;
    drop(f);
    std::fs::rename(&tmp, &path)
}

/// Remove this process's state file (and a temporary one left half-written).
pub fn remove_state(dir: &Path, pid: u32) {
    let _ = std::fs::remove_file(state_path(dir, pid));
    let _ = std::fs::remove_file(dir.join(format!(".shmchan-bridge-{pid}.json.tmp")));
}

/// Is `pid` a live shmchan-bridge process? (Its `/proc` entry exists and names the bridge, so
/// a recycled pid is not taken for it.)
fn alive(pid: u32) -> bool {
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(cmd) => {
            let argv0 = cmd.split(|&b| b == 0).next().unwrap_or(&[]);
            String::from_utf8_lossy(argv0).contains("shmchan-bridge")
        }
        Err(_) => false,
    }
}

/// Every live bridge's routes, from the state files in `dir`; files of dead bridges are
/// removed.
pub fn list(dir: &Path) -> std::io::Result<Vec<RouteState>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("shmchan-bridge-"))
            .and_then(|n| n.strip_suffix(".json"))
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if !alive(pid) {
            remove_state(dir, pid);
            continue;
        }
        let Ok(bytes) = std::fs::read(entry.path()) else {
            continue;
        };
        if let Ok(state) = serde_json::from_slice::<State>(&bytes) {
            out.extend(state.routes);
        }
    }
    out.sort_by(|a, b| (a.pid, &a.name).cmp(&(b.pid, &b.name)));
    Ok(out)
}

/// `shmchan-bridge ls`: a table, or a JSON array with `--json`.
pub fn print(routes: &[RouteState], json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(routes).expect("plain values")
        );
        return;
    }
    if routes.is_empty() {
        println!(
            "no bridge running (state files in {})",
            state_dir().display()
        );
        return;
    }
    println!(
        "{:>7} {:<3} {:<20} {:<28} {:<8} {:<6} {:>10} {:>7} {:>6} {:>6} {:>6} {:>6} {:>6}",
        "PID",
        "DIR",
        "NAME",
        "KEY",
        "MODE",
        "PEERS",
        "FORWARDED",
        "RESENT",
        "GAPS",
        "DUPS",
        "TYPE",
        "RECON",
        "DROPS"
    );
    for r in routes {
        let peers = format!(
            "{}{}",
            if r.local { "L" } else { "-" },
            if r.remote { "R" } else { "-" }
        );
        println!(
            "{:>7} {:<3} {:<20} {:<28} {:<8} {:<6} {:>10} {:>7} {:>6} {:>6} {:>6} {:>6} {:>6}",
            r.pid,
            r.direction,
            r.name,
            r.key,
            r.mode,
            peers,
            r.forwarded,
            r.resent,
            r.gaps,
            r.duplicates,
            r.type_mismatches,
            r.reconnects + r.local_reconnects,
            r.drops
        );
    }
}
