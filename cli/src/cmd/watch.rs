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
    /// A broadcast topic's subscribers: (place, occupant's generation, cursor).
    cursors: Vec<(usize, u32, u64)>,
}

/// Rates since the baseline, or why there are none on this screen.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Rates {
    /// Messages (or bytes) per second in and out (a broadcast topic: out is not measured,
    /// each subscriber's rate is in [`Look::reads`]).
    Measured(f64, f64),
    /// No baseline yet (the first look at a channel).
    First,
    /// The channel under the name is not the one of the baseline.
    MadeAnew,
    /// The counts went back since the baseline.
    WentBack,
}

/// What one look measured: the rates, and for a broadcast topic each subscriber's read rate
/// (in the order of `Topic::subscribers`; `None` for one whose place changed hands, or whose
/// cursor went back, since the baseline, or when the rates are not measured).
struct Look {
    rates: Rates,
    reads: Vec<Option<f64>>,
}

/// The rates between `base` and a look at `ch` at `now`, and the baseline for the next look.
fn rates(base: Option<Baseline>, ch: &Channel, now: Instant) -> (Look, Option<Baseline>) {
    let subscribers = ch.topic.as_ref().map_or(&[][..], |t| &t.subscribers[..]);
    let Some(r) = ch.ring.as_ref() else {
        // Nothing to count (not ready, incompatible): keep the baseline, so that the same
        // channel seen again is measured across the gap and a new one is noticed.
        let look = Look {
            rates: Rates::First,
            reads: Vec::new(),
        };
        return (look, base);
    };
    let who = Identity::of(ch);
    // A topic's `received` is its slowest active subscriber's position, which goes back when
    // a slower one joins: only `sent` must not go back.
    let went_back =
        |b: &Baseline| r.sent < b.sent || (ch.topic.is_none() && r.received < b.received);
    let secs = |b: &Baseline| now.duration_since(b.at).as_secs_f64().max(1e-9);
    let rates = match &base {
        None => Rates::First,
        Some(b) if b.who != who => Rates::MadeAnew,
        Some(b) if went_back(b) => Rates::WentBack,
        Some(b) => Rates::Measured(
            (r.sent - b.sent) as f64 / secs(b),
            r.received.saturating_sub(b.received) as f64 / secs(b),
        ),
    };
    let reads = subscribers
        .iter()
        .map(|s| {
            let b = base
                .as_ref()
                .filter(|_| matches!(rates, Rates::Measured(..)))?;
            let &(_, _, before) = b
                .cursors
                .iter()
                .find(|&&(index, attached, _)| (index, attached) == (s.index, s.attached))?;
            let moved = s.cursor.checked_sub(before)?;
            Some(moved as f64 / secs(b))
        })
        .collect();
    let next = Baseline {
        who,
        at: now,
        sent: r.sent,
        received: r.received,
        cursors: subscribers
            .iter()
            .map(|s| (s.index, s.attached, s.cursor))
            .collect(),
    };
    (Look { rates, reads }, Some(next))
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
                let (look, next) = rates(base.take(), &ch, Instant::now());
                base = next;
                render(&ch, &look)
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

/// One screen: what, how full, how fast, who. A broadcast topic: its overflow mode, the lag
/// of its slowest subscriber instead of a fill level, the publish rate, and each subscriber
/// with its lag, lagged total and read rate.
fn render(ch: &Channel, look: &Look) -> String {
    let rates = look.rates;
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
    let rate = |r: f64| format!("{r:.0}/s");
    if let Some(r) = &ch.ring {
        let unit = if r.kind.counts_bytes() { "B" } else { "msg" };
        s += &format!("kind:     {} of {}", r.kind.as_str(), r.payload);
        if let Some(t) = &ch.topic {
            s += &format!(", overflow {}", view::overflow_words(t.overflow));
        }
        s += "\n";
        let pct = if r.capacity == 0 {
            0.0
        } else {
            r.len as f64 * 100.0 / r.capacity as f64
        };
        let level = format!(
            "{} {}/{} {unit} ({pct:.0}%)",
            view::bar(r.len, r.capacity, 40),
            view::count(r.len),
            view::count(r.capacity)
        );
        match &ch.topic {
            Some(t) => {
                s += &match t.slowest() {
                    Some(slow) => format!(
                        "lag:      {level} slowest subscriber: place {}, pid {}\n",
                        slow.index, slow.pid
                    ),
                    None => format!("lag:      {level} no active subscriber\n"),
                };
            }
            None => s += &format!("fill:     {level}\n"),
        }
        let (r_in, r_out) = match rates {
            Rates::Measured(i, o) => (rate(i), rate(o)),
            _ => ("-".to_string(), "-".to_string()),
        };
        s += &format!(
            "in:       {r_in:>14}  sent     {} {unit}\n",
            view::count(r.sent)
        );
        if ch.topic.is_none() {
            s += &format!(
                "out:      {r_out:>14}  received {} {unit}\n",
                view::count(r.received)
            );
        }
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
    if let Some(t) = &ch.topic {
        let evicted = t
            .subscribers
            .iter()
            .filter(|s| s.alive && s.evicted)
            .count();
        let gone = t.subscribers.iter().filter(|s| !s.alive).count();
        s += &format!(
            "subscribers: {} active, {evicted} evicted, {gone} gone\n",
            t.active()
        );
    }
    s += "peers:\n";
    if ch.endpoints.is_empty() {
        s += "  (none)\n";
    }
    let width = if ch.topic.is_some() { 10 } else { 8 };
    for e in &ch.endpoints {
        let alive = if e.alive { "alive" } else { "gone" };
        s += &format!(
            "  {:<width$}  pid {:<8}  {:<8}  {:<5}  place {} ({})",
            view::role_name(ch, e.role),
            e.pid,
            e.state.as_str(),
            alive,
            e.index,
            view::attached_words(e.attached)
        );
        let subscribers = ch.topic.as_ref().map_or(&[][..], |t| &t.subscribers[..]);
        if let Some(at) = subscribers.iter().position(|sub| sub.index == e.index) {
            let sub = &subscribers[at];
            s += &format!(
                "  lag {}  lagged {}",
                view::count(sub.lag),
                view::count(sub.lagged)
            );
            if let (true, Some(Some(r))) = (sub.alive, look.reads.get(at)) {
                s += &format!("  reads {}", rate(*r));
            }
            if sub.evicted {
                s += "  EVICTED";
            }
        }
        s += "\n";
    }
    s += "(Ctrl-C to quit)\n";
    s
}

fn chrono_now() -> String {
    view::rfc3339(SystemTime::now())
}
