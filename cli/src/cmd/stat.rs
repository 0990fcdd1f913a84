//! `shmchan stat NAME`: everything the header of one channel says.

use std::process::ExitCode;

use shmchan::Backend;
use shmchan::inspect::{self, Channel, State};

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
        rows.push((
            "len",
            format!(
                "{} {unit} {}",
                view::count(r.len),
                view::bar(r.len, r.capacity, 20)
            ),
        ));
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
    out.extend(rows[table_at..].iter().map(line));
    out
}

/// The places some endpoint has held, indented under `endpoints:`: PLACE, ROLE, PID (the
/// current or last occupant), STATE, ALIVE and ATTACHED (how many endpoints the place has had).
pub fn endpoint_table(ch: &Channel) -> String {
    if ch.endpoints.is_empty() {
        return String::new();
    }
    let mut rows = vec![
        ["PLACE", "ROLE", "PID", "STATE", "ALIVE", "ATTACHED"]
            .map(String::from)
            .to_vec(),
    ];
    for e in &ch.endpoints {
        rows.push(vec![
            e.index.to_string(),
            e.role.as_str().into(),
            e.pid.to_string(),
            e.state.as_str().into(),
            if e.alive { "yes" } else { "no" }.into(),
            e.attached.to_string(),
        ]);
    }
    view::table(&rows)
        .lines()
        .map(|l| format!("  {l}\n"))
        .collect()
}
