//! `shmchan watch NAME`: one screen, refreshed, with rates in and out, fill level and peers.
//!
//! Rates are differences of the ring positions between two looks at the *same* channel. A
//! name can change hands while it is watched (its channel removed and created anew, or made
//! anew in the same object): the new channel's counts start again from zero and have nothing
//! to do with the old one's, so the baseline starts again too (the first screen of the new
//! channel shows no rate, and says why). Counts that go back within one channel (a header
//! being rewritten, or a hostile one) restart it the same way: a rate is never computed from a
//! difference that went negative.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use shmchan::inspect::{self, Channel};
use shmchan::{Backend, Error};

use crate::view;

/// How long a name that disappeared is looked for again before `watch` says it went away: a
/// channel being made anew is gone for a moment, between the old one's removal and the new
/// one's creation.
const GRACE: Duration = Duration::from_millis(250);

/// Which channel a look saw: two looks at the same channel have the same identity.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Identity {
    incarnation: Option<u64>,
    created: Option<SystemTime>,
    location: String,
    sysv_id: Option<i32>,
}

impl Identity {
    fn of(ch: &Channel) -> Identity {
        Identity {
            incarnation: ch.incarnation,
            created: ch.origin.as_ref().map(|o| o.created),
            location: ch.object.location.clone(),
            sysv_id: ch.object.sysv_id,
        }
    }
}

/// The look rates are measured from.
struct Baseline {
    who: Identity,
    at: Instant,
    sent: u64,
    received: u64,
}

/// Rates since the baseline, or why there are none on this screen.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Rates {
    /// Messages (or bytes) per second in and out.
    Measured(f64, f64),
    /// No baseline yet (the first look at a channel).
    First,
    /// The channel under the name is not the one of the baseline.
    MadeAnew,
    /// The counts went back since the baseline.
    WentBack,
}

/// The rates between `base` and a look at `ch` at `now`, and the baseline for the next look.
fn rates(base: Option<Baseline>, ch: &Channel, now: Instant) -> (Rates, Option<Baseline>) {
    let Some(r) = ch.ring.as_ref() else {
        // Nothing to count (not ready, incompatible): keep the baseline, so that the same
        // channel seen again is measured across the gap and a new one is noticed.
        return (Rates::First, base);
    };
    let who = Identity::of(ch);
    let rates = match &base {
        None => Rates::First,
        Some(b) if b.who != who => Rates::MadeAnew,
        Some(b) if r.sent < b.sent || r.received < b.received => Rates::WentBack,
        Some(b) => {
            let secs = now.duration_since(b.at).as_secs_f64().max(1e-9);
            Rates::Measured(
                (r.sent - b.sent) as f64 / secs,
                (r.received - b.received) as f64 / secs,
            )
        }
    };
    let next = Baseline {
        who,
        at: now,
        sent: r.sent,
        received: r.received,
    };
    (rates, Some(next))
}

pub fn run(
    name: &str,
    backend: &Backend,
    interval_ms: u64,
    count: Option<u64>,
) -> Result<ExitCode, String> {
    let interval = Duration::from_millis(interval_ms);
    crate::sys::catch_interrupt();
    let tty = std::io::stdout().is_terminal();
    let mut base: Option<Baseline> = None;
    let mut shown = 0u64;
    loop {
        let screen = match look(name, backend, shown > 0) {
            Ok(ch) => {
                let (r, next) = rates(base.take(), &ch, Instant::now());
                base = next;
                render(&ch, r)
            }
            Err(Error::NotFound { .. }) if shown > 0 => {
                println!("{name}: the channel went away");
                return Ok(ExitCode::SUCCESS);
            }
            Err(e) if shown > 0 => {
                // Seen before: a name being made anew, or whose object is being replaced, may
                // not be readable for a moment. Say so and look again.
                format!(
                    "{name}  ({})   {}\ncannot read it now: {e}\n(Ctrl-C to quit)\n",
                    view::backend_name(backend),
                    chrono_now()
                )
            }
            Err(e) => return Err(e.to_string()),
        };
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

/// `stat` the channel; once it has been seen (`seen`), a name that is not found is looked for
/// again for [`GRACE`] (a channel made anew is gone for a moment).
fn look(name: &str, backend: &Backend, seen: bool) -> Result<Channel, Error> {
    let until = Instant::now() + GRACE;
    loop {
        match inspect::stat(name, backend) {
            Err(Error::NotFound { .. })
                if seen && Instant::now() < until && !crate::sys::interrupted() =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            r => return r,
        }
    }
}

/// One screen: what, how full, how fast, who.
fn render(ch: &Channel, rates: Rates) -> String {
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
    if let Some(o) = &ch.origin {
        s += &format!(
            "created:  {} by pid {}\n",
            view::rfc3339(o.created),
            o.creator_pid
        );
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
        let (r_in, r_out) = match rates {
            Rates::Measured(i, o) => (format!("{i:.0}/s"), format!("{o:.0}/s")),
            _ => ("-".to_string(), "-".to_string()),
        };
        s += &format!(
            "in:       {r_in:>14}  sent     {} {unit}\n",
            view::count(r.sent)
        );
        s += &format!(
            "out:      {r_out:>14}  received {} {unit}\n",
            view::count(r.received)
        );
        match rates {
            Rates::MadeAnew => {
                s += "note:     a new channel has this name since the last look (its counts \
                      start at zero): rates start again\n";
            }
            Rates::WentBack => {
                s += "note:     its counts went back since the last look (its header is being \
                      rewritten?): rates start again\n";
            }
            Rates::First | Rates::Measured(..) => {}
        }
    }
    s += "peers:\n";
    if ch.endpoints.is_empty() {
        s += "  (none)\n";
    }
    for e in &ch.endpoints {
        let alive = if e.alive { "alive" } else { "gone" };
        s += &format!(
            "  {:<8}  pid {:<8}  {:<8}  {:<5}  place {} ({})\n",
            e.role.as_str(),
            e.pid,
            e.state.as_str(),
            alive,
            e.index,
            view::attached_words(e.attached)
        );
    }
    s += "(Ctrl-C to quit)\n";
    s
}

fn chrono_now() -> String {
    view::rfc3339(SystemTime::now())
}
