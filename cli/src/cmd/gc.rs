//! `shmchan gc`: remove every abandoned channel and stale half-made one.
//!
//! Candidates come from `inspect::list`; each is removed with `shmchan::remove`, which judges
//! the channel again under its lock, so one that came alive or was made anew meanwhile stays.

use std::process::ExitCode;
use std::time::Duration;

use shmchan::inspect::{self, State};
use shmchan::{Backend, Error, Options};

use crate::view;

pub fn run(backend: Option<Backend>, dry_run: bool) -> Result<ExitCode, String> {
    let (mut removed, mut kept, mut failed) = (0, 0, false);
    let mut skipped = Vec::new();
    for b in crate::default_backends(backend) {
        let listing = match inspect::list(&b) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("shmchan: cannot list {}: {e}", view::backend_name(&b));
                failed = true;
                continue;
            }
        };
        skipped.extend(listing.skipped);
        // A creator at work holds the lock only for a few system calls; wait a little for it.
        let opts = Options::new()
            .backend(b.clone())
            .open_timeout(Duration::from_millis(500));
        for ch in listing.channels {
            if !matches!(ch.state, State::Abandoned | State::NotReady) {
                continue;
            }
            let what = format!(
                "{} ({}, {})",
                ch.name,
                view::backend_name(&b),
                ch.state.as_str()
            );
            if dry_run {
                println!("would remove {what}");
                removed += 1;
                continue;
            }
            match shmchan::remove(&ch.name, &opts) {
                Ok(()) => {
                    println!("removed {what}");
                    removed += 1;
                }
                Err(Error::NotFound { .. }) => {} // gone meanwhile
                Err(e @ (Error::InUse { .. } | Error::NotReady { .. })) => {
                    println!("kept {what}: {e}");
                    kept += 1;
                }
                Err(e) => {
                    eprintln!("shmchan: could not remove {what}: {e}");
                    failed = true;
                }
            }
        }
    }
    view::report_unreadable(&skipped, "left alone");
    let verb = if dry_run { "would remove" } else { "removed" };
    println!("{verb} {removed} channel(s); kept {kept} that came alive or are being made");
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
