//! `shmchan stat NAME`: everything the header of one channel says.

use std::process::ExitCode;

use shmchan::Backend;
use shmchan::inspect::{self, Channel, State, Topic};

use crate::view;

pub fn run(name: &str, backend: &Backend, json: bool) -> Result<ExitCode, String> {
    let ch = inspect::stat(name, backend).map_err(|e| e.to_string())?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&view::channel_json(&ch)).map_err(|e| e.to_string())?
        );
    } else {
        print!("{}", describe(&ch));
    }
    if ch.state == State::Incompatible {
        // What it is was printed; that this shmchan cannot use it is an error.
        eprintln!(
            "shmchan: channel {:?} ({}) is incompatible: {}",
            ch.name,
            view::backend_name(&ch.backend),
            ch.problem.as_deref().unwrap_or("unknown")
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// `key: value` lines, the keys aligned, with the endpoint table among them: one row per place
/// some endpoint has held, its current (or last) occupant and how many endpoints it has had.
pub fn describe(ch: &Channel) -> String {
    let mut rows: Vec<(&str, String)> = vec![
        ("name", ch.name.clone()),
        ("backend", view::backend_name(&ch.backend)),
        ("state", ch.state.as_str().into()),
    ];
    if let Some(p) = &ch.problem {
        rows.push(("problem", p.clone()));
    }
    rows.push(("layout version", ch.version.to_string()));
    if let Some(r) = &ch.ring {
        let unit = if r.kind.counts_bytes() {
            "bytes"
        } else {
            "messages"
        };
        rows.push(("kind", r.kind.as_str().into()));
        rows.push((
            "payload",
            format!(
                "{} ({} bytes, alignment {})",
                r.payload, r.payload_size, r.payload_align
            ),
        ));
        rows.push(("capacity", format!("{} {unit}", view::count(r.capacity))));
        if let Some(t) = &ch.topic {
            rows.push(("overflow", view::overflow_words(t.overflow)));
        }
        let slowest = match ch.topic.as_ref().map(|t| t.slowest()) {
            Some(Some(s)) => format!(" (lag of the slowest subscriber, place {})", s.index),
            Some(None) => " (no active subscriber)".into(),
            None => String::new(),
        };
        rows.push((
            "len",
            format!(
                "{} {unit} {}{slowest}",
                view::count(r.len),
                view::bar(r.len, r.capacity, 20)
            ),
        ));
        if ch.topic.is_some() {
            rows.push((
                "sent",
                format!("{} {unit} (the publisher's position)", view::count(r.sent)),
            ));
            rows.push((
                "endpoints",
                format!(
                    "1 publisher, {} subscribers at most at once; {} attached over its life",
                    r.max_receivers,
                    view::attached_total(ch)
                ),
            ));
        } else {
            rows.push(("sent", format!("{} {unit}", view::count(r.sent))));
            rows.push(("received", format!("{} {unit}", view::count(r.received))));
            rows.push((
                "endpoints",
                format!(
                    "{} senders, {} receivers at most at once; {} attached over its life",
                    r.max_senders,
                    r.max_receivers,
                    view::attached_total(ch)
                ),
            ));
        }
    }
    // The endpoint table goes after the `endpoints` row (or where it would be).
    let table_at = rows.len();
    if let Some(o) = &ch.origin {
        rows.push((
            "created",
            format!(
                "{} ({} ago)",
                view::rfc3339(o.created),
                view::age(o.created)
            ),
        ));
        rows.push((
            "creator",
            format!("pid {}, uid {}", o.creator_pid, o.creator_uid),
        ));
    }
    rows.push(("location", ch.object.location.clone()));
    rows.push((
        "owner",
        format!("uid {}, mode {:04o}", ch.object.owner_uid, ch.object.mode),
    ));
    rows.push((
        "size",
        format!(
            "{} bytes ({})",
            view::count(ch.object.size),
            view::bytes(ch.object.size)
        ),
    ));
    let width = rows.iter().map(|(k, _)| k.len() + 1).max().unwrap_or(0);
    let line = |(k, v): &(&str, String)| format!("{:width$}  {v}\n", format!("{k}:"));
    let mut out: String = rows[..table_at].iter().map(line).collect();
    out += &endpoint_table(ch);
    if let Some(t) = &ch.topic {
        let gone = t.subscribers.iter().filter(|s| !s.alive).count();
        let evicted = t
            .subscribers
            .iter()
            .filter(|s| s.alive && s.evicted)
            .count();
        out += &line(&(
            "subscribers",
            format!(
                "{} active, {evicted} evicted, {gone} gone ({} places used)",
                t.active(),
                t.subscribers.len()
            ),
        ));
        out += &subscriber_table(t);
    }
    out.extend(rows[table_at..].iter().map(line));
    out
}

/// The places some endpoint has held, indented under `endpoints:`: PLACE, ROLE, PID (the
/// current or last occupant), STATE, ALIVE and ATTACHED (how many endpoints the place has had).
/// A broadcast topic's: its publisher's place (its subscribers are in `subscriber_table`).
pub fn endpoint_table(ch: &Channel) -> String {
    // A topic's subscribers have a table of their own (`subscriber_table`).
    let shown: Vec<_> = ch
        .endpoints
        .iter()
        .filter(|e| {
            ch.topic
                .as_ref()
                .is_none_or(|t| t.subscribers.iter().all(|s| s.index != e.index))
        })
        .collect();
    if shown.is_empty() {
        return String::new();
    }
    let mut rows = vec![
        ["PLACE", "ROLE", "PID", "STATE", "ALIVE", "ATTACHED"]
            .map(String::from)
            .to_vec(),
    ];
    for e in shown {
        rows.push(vec![
            e.index.to_string(),
            view::role_name(ch, e.role).into(),
            e.pid.to_string(),
            e.state.as_str().into(),
            if e.alive { "yes" } else { "no" }.into(),
            e.attached.to_string(),
        ]);
    }
    indent(&view::table(&rows))
}

/// A topic's subscriber places, indented under `subscribers:`: PLACE, PID (the current or last
/// occupant), STATE, ALIVE, ATTACHED (as in the endpoint table), then LAG (messages published
/// and not yet read, from the cursor it last published, at most the capacity), LAGGED (messages
/// it was told it lost) and EVICTED.
pub fn subscriber_table(t: &Topic) -> String {
    if t.subscribers.is_empty() {
        return String::new();
    }
    let mut rows = vec![
        [
            "PLACE", "PID", "STATE", "ALIVE", "ATTACHED", "LAG", "LAGGED", "EVICTED",
        ]
        .map(String::from)
        .to_vec(),
    ];
    let yes = |b: bool| if b { "yes" } else { "no" }.to_string();
    for s in &t.subscribers {
        rows.push(vec![
            s.index.to_string(),
            s.pid.to_string(),
            s.state.as_str().into(),
            yes(s.alive),
            s.attached.to_string(),
            s.lag.to_string(),
            s.lagged.to_string(),
            yes(s.evicted),
        ]);
    }
    indent(&view::table(&rows))
}

fn indent(table: &str) -> String {
    table.lines().map(|l| format!("  {l}\n")).collect()
}
