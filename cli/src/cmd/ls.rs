//! `shmchan ls`: every channel of the backends, one line each.

use std::process::ExitCode;

use shmchan::Backend;
use shmchan::inspect;

use crate::view;

pub fn run(backend: Option<Backend>, json: bool) -> Result<ExitCode, String> {
    let mut channels = Vec::new();
    let mut skipped = Vec::new();
    let mut failed = false;
    for b in crate::default_backends(backend) {
        match inspect::list(&b) {
            Ok(listing) => {
                channels.extend(listing.channels);
                skipped.extend(listing.skipped);
            }
            Err(e) => {
                eprintln!("shmchan: cannot list {}: {e}", view::backend_name(&b));
                failed = true;
            }
        }
    }
    view::report_unreadable(&skipped, "not shown");
    if json {
        let all: Vec<_> = channels.iter().map(view::channel_json).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&all).map_err(|e| e.to_string())?
        );
    } else if channels.is_empty() {
        if !failed && skipped.is_empty() {
            println!("no channels");
        } else if !failed {
            println!("no channels that this user can read");
        }
    } else {
        print!("{}", table(&channels));
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The human table: one line per channel.
pub fn table(channels: &[inspect::Channel]) -> String {
    let mut rows = vec![
        [
            "NAME", "BACKEND", "STATE", "KIND", "PAYLOAD", "LEN/CAP", "SENT", "RECEIVED", "PEERS",
            "ATTACHED", "AGE",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for ch in channels {
        let dash = || "-".to_string();
        let ring = ch.ring.as_ref();
        rows.push(vec![
            ch.name.clone(),
            view::backend_name(&ch.backend),
            ch.state.as_str().into(),
            ring.map_or_else(dash, |r| r.kind.as_str().into()),
            ring.map_or_else(dash, |r| r.payload.clone()),
            ring.map_or_else(dash, |r| {
                let unit = if r.kind.counts_bytes() { " B" } else { "" };
                format!("{}/{}{unit}", r.len, r.capacity)
            }),
            ring.map_or_else(dash, |r| view::count(r.sent)),
            // A topic has no one consumer position: each subscriber has its own (`stat`).
            ring.filter(|_| ch.topic.is_none())
                .map_or_else(dash, |r| view::count(r.received)),
            view::peers_cell(ch),
            if ch.ring.is_some() {
                view::attached_total(ch).to_string()
            } else {
                "-".into()
            },
            ch.origin
                .as_ref()
                .map_or_else(dash, |o| view::age(o.created)),
        ]);
    }
    view::table(&rows)
}
