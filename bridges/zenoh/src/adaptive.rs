//! `--wait adaptive` (the default): how long the out route polls its ring before it parks.
//!
//! A parked receiver costs the producer a futex wake-up per message, tens of microseconds on a
//! small VM, which is most of what the bridge adds to Zenoh's own latency. While messages come
//! often (a gap under [`SPIN_GAPS_UNDER`] between batches), the route keeps polling until
//! about twice the recent gap after the last batch, so the next one finds it awake; between
//! polls it calls `sched_yield`, so a producer or consumer preempted on a busy machine gets the
//! core. When messages are rare, or have stopped, it polls only [`MIN_SPIN`], then sleeps, as
//! `spin-then-park` does: an idle bridge costs no CPU.

use std::time::{Duration, Instant};

/// Poll at least this long before parking (the library's default spin).
pub const MIN_SPIN: Duration = Duration::from_micros(50);
/// Keep polling across gaps only while the recent gap is shorter than this.
pub const SPIN_GAPS_UNDER: Duration = Duration::from_millis(1);

/// The recent gap between batches, learned as they come.
#[derive(Debug, Default)]
pub struct Gaps {
    last: Option<Instant>,
    /// Exponentially weighted mean of the gaps (each clamped to 4x [`SPIN_GAPS_UNDER`], so
    /// one long silence does not hide a stream that resumes), in nanoseconds.
    mean_ns: u64,
}

impl Gaps {
    /// A batch arrived now.
    pub fn arrived(&mut self, now: Instant) {
        if let Some(last) = self.last {
            let cap = 4 * SPIN_GAPS_UNDER.as_nanos() as u64;
            let gap = (now - last).as_nanos().min(cap as u128) as u64;
            self.mean_ns = if self.mean_ns == 0 {
                gap
            } else {
                self.mean_ns - self.mean_ns / 8 + gap / 8
            };
        }
        self.last = Some(now);
    }

    /// How long to poll, from `now`, before parking: until about twice the recent gap after
    /// the last batch (so a stream that stopped is not polled for again), at least
    /// [`MIN_SPIN`].
    pub fn window(&self, now: Instant) -> Duration {
        let mean = Duration::from_nanos(self.mean_ns);
        match self.last {
            Some(last) if self.mean_ns > 0 && mean < SPIN_GAPS_UNDER => (last + 2 * mean)
                .saturating_duration_since(now)
                .max(MIN_SPIN),
            _ => MIN_SPIN,
        }
    }
}

/// Give the core to another runnable thread, if any.
pub fn yield_cpu() {
    // SAFETY: sched_yield(2) takes no arguments and touches no memory of ours.
    unsafe { libc::sched_yield() };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_follows_the_gaps() {
        let mut g = Gaps::default();
        let t0 = Instant::now();
        assert_eq!(g.window(t0), MIN_SPIN);
        let gap = Duration::from_micros(250);
        let mut t = t0;
        for _ in 0..64 {
            t += gap;
            g.arrived(t);
        }
        // Right after a batch: about two gaps.
        let w = g.window(t);
        assert!(
            w > Duration::from_micros(400) && w < Duration::from_micros(600),
            "{w:?}"
        );
        // The stream stopped: no more than the short spin.
        assert_eq!(g.window(t + Duration::from_millis(5)), MIN_SPIN);
        // Messages become rare: back to the short spin right after one, too.
        for _ in 0..64 {
            t += Duration::from_secs(1);
            g.arrived(t);
        }
        assert_eq!(g.window(t), MIN_SPIN);
    }
}
