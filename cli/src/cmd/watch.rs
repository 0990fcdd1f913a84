//! `shmchan watch NAME`: one screen, refreshed, with rates in and out, fill level and peers.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use shmchan::inspect::{self, Channel};
use shmchan::{Backend, Error};

use crate::view;

pub fn run(
    name: &str,
    backend: &Backend,
    interval_ms: u64,
    count: Option<u64>,
) -> Result<ExitCode, String> {
    let interval = Duration::from_millis(interval_ms);
    crate::sys::catch_interrupt();
    let tty = std::io::stdout().is_terminal();
    let mut last: Option<(Instant, u64, u64)> = None;
    let mut shown = 0u64;
    loop {
        let ch = match inspect::stat(name, backend) {
            Ok(ch) => ch,
            Err(Error::NotFound { .. }) if shown > 0 => {
                println!("{name}: the channel went away");
                return Ok(ExitCode::SUCCESS);
            }
            Err(e) => return Err(e.to_string()),
        };
        let now = Instant::now();
        let (sent, received) = ch.ring.as_ref().map_or((0, 0), |r| (r.sent, r.received));
        let rates = last.map(|(t, s, r)| {
            let secs = now.duration_since(t).as_secs_f64().max(1e-9);
            (
                sent.wrapping_sub(s) as f64 / secs,
                received.wrapping_sub(r) as f64 / secs,
            )
        });
        last = Some((now, sent, received));
        let screen = render(&ch, rates);
        let mut out = std::io::stdout().lock();
        if tty {
            // Home, clear: one screen, redrawn in place.
            let _ = write!(out, "\x1b[H\x1b[2J");
        } else if shown > 0 {
            let _ = writeln!(out);
        }
        let _ = write!(out, "{screen}");
        let _ = out.flush();
        drop(out);
        shown += 1;
        if count.is_some_and(|n| shown >= n) {
            return Ok(ExitCode::SUCCESS);
        }
        // Sleep in small steps so that Ctrl-C ends it at once.
        let until = Instant::now() + interval;
        while Instant::now() < until {
            if crate::sys::interrupted() {
                println!();
                return Ok(ExitCode::SUCCESS);
            }
            std::thread::sleep(Duration::from_millis(10).min(interval));
        }
        if crate::sys::interrupted() {
            return Ok(ExitCode::SUCCESS);
        }
    }
}

/// One screen: what, how full, how fast, who.
fn render(ch: &Channel, rates: Option<(f64, f64)>) -> String {
    let mut s = format!(
        "{}  ({}, {})   {}\n",
        ch.name,
        view::backend_name(&ch.backend),
        ch.state.as_str(),
        chrono_now()
    );
    if let Some(p) = &ch.problem {
        s += &format!("problem:  {p}\n");
    }
    if let Some(r) = &ch.ring {
        let unit = if r.kind.counts_bytes() { "B" } else { "msg" };
        s += &format!("kind:     {} of {}\n", r.kind.as_str(), r.payload);
        let pct = if r.capacity == 0 {
            0.0
        } else {
            r.len as f64 * 100.0 / r.capacity as f64
        };
        s += &format!(
            "fill:     {} {}/{} {unit} ({pct:.0}%)\n",
            view::bar(r.len, r.capacity, 40),
            view::count(r.len),
            view::count(r.capacity)
        );
        let rate = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.0}/s"));
        s += &format!(
            "in:       {:>14}  sent     {} {unit}\n",
            rate(rates.map(|r| r.0)),
            view::count(r.sent)
        );
        s += &format!(
            "out:      {:>14}  received {} {unit}\n",
            rate(rates.map(|r| r.1)),
            view::count(r.received)
        );
    }
    s += "peers:\n";
    if ch.endpoints.is_empty() {
        s += "  (none)\n";
    }
    for e in &ch.endpoints {
        let alive = if e.alive { "alive" } else { "gone" };
        s += &format!(
            "  {:<8}  pid {:<8}  {:<8}  {}\n",
            e.role.as_str(),
            e.pid,
            e.state.as_str(),
            alive
        );
    }
    s += "(Ctrl-C to quit)\n";
    s
}

fn chrono_now() -> String {
    view::rfc3339(std::time::SystemTime::now())
}
