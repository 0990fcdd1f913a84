//! Per-hop latency for the benchmark: with `SHMCHAN_BRIDGE_HOPS=PREFIX` set, a route whose
//! elements are 8 bytes reads the first element of each batch as a `CLOCK_MONOTONIC` stamp in
//! nanoseconds (what the benchmark's producer sends) and records its age at each stamp point;
//! at exit it writes `p50 p99 count` per point to `PREFIX.POINT`. Off (one branch) otherwise.

use std::sync::{Mutex, OnceLock};

static PREFIX: OnceLock<Option<String>> = OnceLock::new();
static AGES: Mutex<Vec<(&'static str, Vec<u64>)>> = Mutex::new(Vec::new());

fn prefix() -> Option<&'static str> {
    PREFIX
        .get_or_init(|| std::env::var("SHMCHAN_BRIDGE_HOPS").ok())
        .as_deref()
}

/// Is stamping on?
pub fn on() -> bool {
    prefix().is_some()
}

/// Record the age of the stamp in `first8` (little-endian ns) at `point`.
pub fn stamp(point: &'static str, first8: &[u8]) {
    if !on() || first8.len() < 8 {
        return;
    }
    let sent = u64::from_le_bytes(first8[..8].try_into().unwrap());
    let age = now_ns().saturating_sub(sent);
    let mut a = AGES.lock().unwrap();
    match a.iter_mut().find(|(p, _)| *p == point) {
        Some((_, v)) => v.push(age),
        None => a.push((point, vec![age])),
    }
}

/// Write the percentiles (at exit).
pub fn dump() {
    let Some(prefix) = prefix() else { return };
    for (point, v) in AGES.lock().unwrap().iter_mut() {
        v.sort_unstable();
        let at = |q: f64| v[((v.len() - 1) as f64 * q) as usize];
        let _ = std::fs::write(
            format!("{prefix}.{point}"),
            format!("{} {} {}\n", at(0.5), at(0.99), v.len()),
        );
    }
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
