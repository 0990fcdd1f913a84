//! Blocking with the GIL released, in slices: every [`SLICE`] the wait comes back, takes the
//! GIL, runs the signal handlers (`PyErr_CheckSignals`: Ctrl-C raises `KeyboardInterrupt`) and
//! goes on. The fast path (a message or room already there) never comes here.

use std::time::{Duration, Instant};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// The longest a wait runs without looking at signals.
pub(crate) const SLICE: Duration = Duration::from_millis(50);

/// How long a call may wait.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Patience {
    /// Not at all: the `try_` forms.
    Try,
    /// Until the deadline (`None`: as long as it takes).
    Until(Option<Instant>),
}

impl Patience {
    /// From a Python `timeout` in seconds: `None` waits for ever, `0` waits until an instant
    /// ago (one attempt, then `Timeout`), a negative value is a `ValueError`.
    pub(crate) fn from_timeout(timeout: Option<f64>) -> PyResult<Patience> {
        let Some(t) = timeout else {
            return Ok(Patience::Until(None));
        };
        if t.is_nan() || t < 0.0 {
            return Err(PyValueError::new_err(format!(
                "timeout must be a non-negative number of seconds or None, not {t}"
            )));
        }
        let deadline = Duration::try_from_secs_f64(t)
            .ok()
            .and_then(|d| Instant::now().checked_add(d));
        Ok(Patience::Until(deadline))
    }
}

/// Run `slice(d)` with the GIL released, for slices `d` of at most [`SLICE`], until it gives
/// `Some` or `deadline` passes (`Ok(None)`), checking signals between slices (an exception
/// raised by a handler is returned). `slice` must itself return `None` after waiting at most
/// `d`.
pub(crate) fn in_slices<T: Send>(
    py: Python<'_>,
    deadline: Option<Instant>,
    mut slice: impl FnMut(Duration) -> Option<T> + Send,
) -> PyResult<Option<T>> {
    loop {
        let d = match deadline {
            None => SLICE,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(None);
                }
                left.min(SLICE)
            }
        };
        if let Some(t) = py.detach(|| slice(d)) {
            return Ok(Some(t));
        }
        py.check_signals()?;
    }
}
