//! What the commands print, from the library's values: `--json` objects and aligned tables.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use shmchan::Backend;
use shmchan::broadcast::Overflow;
use shmchan::inspect::{Channel, Endpoint, EndpointState, Role, Subscriber, Unreadable};

/// `posix`, `sysv` or `file:DIR`: the spelling `--backend` takes.
pub fn backend_name(b: &Backend) -> String {
    match b {
        Backend::SysV => "sysv".into(),
        Backend::File(dir) => format!("file:{}", dir.display()),
        _ => "posix".into(),
    }
}

/// The `--json` object of a channel (fields listed in `shmchan ls --help`).
pub fn channel_json(ch: &Channel) -> Value {
    let ring = ch.ring.as_ref();
    let origin = ch.origin.as_ref();
    let topic = ch.topic.as_ref();
    json!({
        "name": ch.name,
        "backend": backend_name(&ch.backend),
        "state": ch.state.as_str(),
        "problem": ch.problem,
        "version": ch.version,
        "kind": ring.map(|r| r.kind.as_str()),
        "payload": ring.map(|r| r.payload.clone()),
        "payload_size": ring.map(|r| r.payload_size),
        "payload_align": ring.map(|r| r.payload_align),
        "unit": ring.map(|r| if r.kind.counts_bytes() { "bytes" } else { "messages" }),
        "capacity": ring.map(|r| r.capacity),
        "len": ring.map(|r| r.len),
        "sent": ring.map(|r| r.sent),
        "received": ring.map(|r| r.received),
        "endpoints": ch.endpoints.iter().map(endpoint_json).collect::<Vec<_>>(),
        "overflow": topic.map(|t| overflow_name(t.overflow)),
        "evict_after_ms": topic.and_then(|t| evict_after_ms(t.overflow)),
        "subscribers": topic.map(|t| t.subscribers.iter().map(subscriber_json).collect::<Vec<_>>()),
        "owner_uid": ch.object.owner_uid,
        "mode": format!("{:04o}", ch.object.mode),
        "size": ch.object.size,
        "location": ch.object.location,
        "created": origin.map(|o| rfc3339(o.created)),
        "creator_pid": origin.map(|o| o.creator_pid),
        "creator_uid": origin.map(|o| o.creator_uid),
        "sysv_id": ch.object.sysv_id,
        "sysv_key": ch.object.sysv_key.map(|k| format!("{k:#010x}")),
    })
}

fn endpoint_json(e: &Endpoint) -> Value {
    json!({
        "index": e.index,
        "role": e.role.as_str(),
        "pid": e.pid,
        "alive": e.alive,
        "state": e.state.as_str(),
        "attached": e.attached,
    })
}

fn subscriber_json(s: &Subscriber) -> Value {
    json!({
        "index": s.index,
        "pid": s.pid,
        "alive": s.alive,
        "state": s.state.as_str(),
        "attached": s.attached,
        "lag": s.lag,
        "lagged": s.lagged,
        "evicted": s.evicted,
        "cursor": s.cursor,
    })
}

/// `overwrite` or `block`: a topic's overflow mode in one word (the `--json` value).
pub fn overflow_name(o: Overflow) -> &'static str {
    match o {
        Overflow::Overwrite => "overwrite",
        Overflow::Block { .. } => "block",
    }
}

/// A `Block` topic's eviction delay in milliseconds (`None`: no eviction, or not `Block`).
pub fn evict_after_ms(o: Overflow) -> Option<u64> {
    match o {
        Overflow::Block {
            evict_after: Some(d),
        } => Some(d.as_millis().try_into().unwrap_or(u64::MAX)),
        _ => None,
    }
}

/// A topic's overflow mode in words: `overwrite`, `block (evict after 300 ms)`, `block (never
/// evicts)`.
pub fn overflow_words(o: Overflow) -> String {
    match (overflow_name(o), evict_after_ms(o)) {
        ("block", Some(ms)) => format!("block (evict after {} ms)", count(ms)),
        ("block", None) => "block (never evicts)".into(),
        (name, _) => name.into(),
    }
}

/// Say on standard error what a listing could not read, one line each, then how many of each
/// backend (`ls` and `gc` alike): `left` is what became of them (`not shown`).
pub fn report_unreadable(all: &[Unreadable], left: &str) {
    for u in all {
        eprintln!("shmchan: {left}: {u}");
    }
    if all.is_empty() {
        return;
    }
    let mut per: Vec<(String, usize)> = Vec::new();
    for u in all {
        let b = backend_name(&u.backend);
        match per.iter_mut().find(|(name, _)| *name == b) {
            Some((_, n)) => *n += 1,
            None => per.push((b, 1)),
        }
    }
    let per: Vec<String> = per.iter().map(|(b, n)| format!("{n} {b}")).collect();
    eprintln!(
        "shmchan: {} object(s) could not be read ({}) and are {left}: they may or may not be \
         channels; run as their owner or as root to see them",
        all.len(),
        per.join(", ")
    );
}

/// How many endpoints a place has had, in words: `3 attached so far`.
pub fn attached_words(n: u32) -> String {
    format!("{n} attached so far")
}

/// Endpoints that have attached to the channel over its life, every place together (each
/// place counts modulo 2^30).
pub fn attached_total(ch: &Channel) -> u64 {
    ch.endpoints.iter().map(|e| u64::from(e.attached)).sum()
}

/// The endpoints in a table cell: `s:4242 r:77(dead)`, at most four, then `+N`. A broadcast
/// topic's: its publisher and how many subscribers are active, then those that are not:
/// `p:4242 subs:2 +1 evicted +1 gone`.
pub fn peers_cell(ch: &Channel) -> String {
    if let Some(topic) = &ch.topic {
        let mut out: Vec<String> = ch
            .endpoints
            .iter()
            .filter(|e| e.role == Role::Sender)
            .map(|e| format!("p:{}{}", e.pid, gone_mark(e)))
            .collect();
        if out.is_empty() {
            out.push("p:-".into());
        }
        out.push(format!("subs:{}", topic.active()));
        let evicted = topic
            .subscribers
            .iter()
            .filter(|s| s.alive && s.evicted)
            .count();
        let gone = topic.subscribers.iter().filter(|s| !s.alive).count();
        if evicted > 0 {
            out.push(format!("+{evicted} evicted"));
        }
        if gone > 0 {
            out.push(format!("+{gone} gone"));
        }
        return out.join(" ");
    }
    let mut out: Vec<String> = ch
        .endpoints
        .iter()
        .take(4)
        .map(|e| {
            let r = if e.role == Role::Sender { 's' } else { 'r' };
            format!("{r}:{}{}", e.pid, gone_mark(e))
        })
        .collect();
    if ch.endpoints.len() > 4 {
        out.push(format!("+{}", ch.endpoints.len() - 4));
    }
    if out.is_empty() {
        "-".into()
    } else {
        out.join(" ")
    }
}

/// `""` for a live endpoint, `(left)` for one that detached, `(dead)` otherwise.
fn gone_mark(e: &Endpoint) -> &'static str {
    if e.alive {
        ""
    } else if e.state == EndpointState::Detached {
        "(left)"
    } else {
        "(dead)"
    }
}

/// An endpoint's role for people: `sender`/`receiver`, or for a broadcast topic
/// `publisher`/`subscriber`.
pub fn role_name(ch: &Channel, role: Role) -> &'static str {
    match (ch.topic.is_some(), role) {
        (true, Role::Sender) => "publisher",
        (true, Role::Receiver) => "subscriber",
        (false, r) => r.as_str(),
    }
}

/// Rows of cells printed with each column padded to its widest cell (the last one not padded).
pub fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                let pad = widths[c] - cell.chars().count() + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A count with thousands separators: `1,234,567`.
pub fn count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Bytes in words: `4.0 KiB`, `64 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else if v.fract() == 0.0 {
        format!("{v:.0} {}", UNITS[u])
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// How long ago: `3s`, `5m`, `2h`, `4d`.
pub fn age(t: SystemTime) -> String {
    let Ok(d) = SystemTime::now().duration_since(t) else {
        return "0s".into(); // the creator's clock is ahead of ours
    };
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

/// RFC 3339 UTC with milliseconds: `2026-12-01T17:42:03.123Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86400, secs % 86400);
    let (y, m, day) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A fill bar of `width` cells: `[#####.....]`.
pub fn bar(len: u64, capacity: u64, width: usize) -> String {
    let filled = if capacity == 0 {
        0
    } else {
        ((len as u128 * width as u128).div_ceil(capacity as u128) as usize).min(width)
    };
    format!("[{}{}]", "#".repeat(filled), ".".repeat(width - filled))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates_and_numbers() {
        let t = UNIX_EPOCH + Duration::from_millis(1_764_611_000_123);
        assert_eq!(rfc3339(t), "2025-12-01T17:43:20.123Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(count(12), "12");
        assert_eq!(bytes(4096), "4 KiB");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bar(0, 8, 4), "[....]");
        assert_eq!(bar(1, 8, 4), "[#...]");
        assert_eq!(bar(8, 8, 4), "[####]");
    }

    #[test]
    fn tables_align() {
        let t = table(&[
            vec!["A".into(), "BB".into(), "C".into()],
            vec!["long".into(), "x".into(), "y".into()],
        ]);
        assert_eq!(t, "A     BB  C\nlong  x   y\n");
    }
}
