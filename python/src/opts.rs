//! `shmchan::Options` from keyword arguments, the same for every class:
//!
//! | keyword | meaning |
//! |---|---|
//! | `capacity` | ring size (bytes for frames and pipes, slots for broadcast topics); `create` only |
//! | `backend` | `"posix"` (default), `"sysv"` or `"file"` (with `dir`) |
//! | `dir` | the directory of a `"file"` backend (implies it) |
//! | `mode` | permission bits of a created channel (default `0o600`) |
//! | `open_timeout` | seconds `open` waits for a channel still being created (default 2) |
//! | `wait` | `"default"` (spin 50 µs, then sleep), `"spin"` or `"park"` |
//! | `max_frame` | broadcast frame topics: the largest frame |
//! | `max_subscribers` | broadcast topics: subscribers attached at once |
//! | `max_senders`, `max_receivers` | MPMC channels: endpoints of each role attached at once |
//! | `overflow` | broadcast topics: `"overwrite"` (default) or `"block"` |
//! | `evict_after` | broadcast, `"block"`: seconds a stuck subscriber may hold the publisher |

use std::path::PathBuf;
use std::time::Duration;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use shmchan::broadcast::Overflow;
use shmchan::{Backend, Options, WaitStrategy};

fn seconds(key: &str, v: &Bound<'_, PyAny>) -> PyResult<Option<Duration>> {
    if v.is_none() {
        return Ok(None);
    }
    let s: f64 = v.extract()?;
    if s.is_nan() || s < 0.0 {
        return Err(PyValueError::new_err(format!(
            "{key} must be a non-negative number of seconds, not {s}"
        )));
    }
    Ok(Some(
        Duration::try_from_secs_f64(s).unwrap_or(Duration::MAX),
    ))
}

/// The options the keyword arguments `kwargs` give. Unknown keywords are a `TypeError`.
pub(crate) fn parse(kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Options> {
    let mut o = Options::new();
    let Some(kwargs) = kwargs else {
        return Ok(o);
    };
    let mut backend: Option<String> = None;
    let mut dir: Option<PathBuf> = None;
    let mut overflow: Option<String> = None;
    let mut evict_after: Option<Duration> = None;
    for (k, v) in kwargs.iter() {
        let key: String = k.extract()?;
        match key.as_str() {
            "capacity" => o = o.capacity(v.extract()?),
            "backend" => backend = Some(v.extract()?),
            "dir" => {
                dir = if v.is_none() {
                    None
                } else {
                    Some(v.extract()?)
                }
            }
            "mode" => o = o.mode(v.extract()?),
            "open_timeout" => {
                o = o.open_timeout(seconds("open_timeout", &v)?.unwrap_or(Duration::MAX))
            }
            "wait" => {
                let w: String = v.extract()?;
                o = o.wait_strategy(match w.as_str() {
                    "default" => WaitStrategy::default(),
                    "spin" => WaitStrategy::Spin,
                    "park" => WaitStrategy::Park,
                    _ => {
                        return Err(PyValueError::new_err(format!(
                            "wait must be \"default\", \"spin\" or \"park\", not {w:?}"
                        )));
                    }
                })
            }
            "max_frame" => o = o.max_frame(v.extract()?),
            "max_subscribers" => o = o.max_subscribers(v.extract()?),
            "max_senders" => o = o.max_senders(v.extract()?),
            "max_receivers" => o = o.max_receivers(v.extract()?),
            "overflow" => overflow = Some(v.extract()?),
            "evict_after" => evict_after = seconds("evict_after", &v)?,
            _ => {
                return Err(PyTypeError::new_err(format!(
                    "unexpected option {key:?} (known: capacity, backend, dir, mode, \
                     open_timeout, wait, max_frame, max_subscribers, max_senders, max_receivers, \
                     overflow, evict_after)"
                )));
            }
        }
    }
    let backend = match (backend.as_deref(), dir) {
        (None | Some("posix"), None) => Backend::Posix,
        (None | Some("file"), Some(dir)) => Backend::File(dir),
        (Some("sysv"), None) => Backend::SysV,
        (Some("file"), None) => {
            return Err(PyValueError::new_err(
                "backend=\"file\" needs dir=<directory>",
            ));
        }
        (Some(b @ ("posix" | "sysv")), Some(_)) => {
            return Err(PyValueError::new_err(format!(
                "dir= is for backend=\"file\", not {b:?}"
            )));
        }
        (Some(b), _) => {
            return Err(PyValueError::new_err(format!(
                "backend must be \"posix\", \"sysv\" or \"file\", not {b:?}"
            )));
        }
    };
    o = o.backend(backend);
    match (overflow.as_deref(), evict_after) {
        (None, None) => {}
        (None | Some("block"), evict_after) => o = o.overflow(Overflow::Block { evict_after }),
        (Some("overwrite"), None) => o = o.overflow(Overflow::Overwrite),
        (Some("overwrite"), Some(_)) => {
            return Err(PyValueError::new_err(
                "evict_after is for overflow=\"block\"",
            ));
        }
        (Some(m), _) => {
            return Err(PyValueError::new_err(format!(
                "overflow must be \"overwrite\" or \"block\", not {m:?}"
            )));
        }
    }
    Ok(o)
}
