//! What a name holds: deciding, under the object's gate (`region/lock.rs`), whether the object
//! behind a channel name is a live channel, one nobody uses any more, one whose creator died,
//! or something that is not a channel of ours at all; closing a channel and removing its name.
//!
//! An object is taken for a channel only on shmchan's own word: its first bytes are the mark
//! every creator writes before anything else (`magic` and `version`, see [`Mark`]). An object
//! that is empty, or carries the mark but was never published, is a *half-made* channel whose
//! creator died (the reclaimer holds the gate that creator held until it published). Anything
//! else is another program's and is never written, reclaimed or removed, except by
//! `shmchan rm --force`.

use crate::chan::deadline_after;
use crate::endpoint;
use crate::error::Error;
use crate::layout::{CLOSED, Header, MAX_ENDPOINTS, Mark, OPEN, VERSION};
use crate::options::{Backend, Options};
use crate::region::{self, Region};
use crate::sync::Ordering;

/// What `create` (or [`remove`](crate::remove)) found under a name it wanted, judged under its
/// gate.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Found {
    /// Not a shmchan channel of this layout (another program's object, another version).
    Foreign(String),
    /// A creator died before publishing the header (we hold the gate it would hold).
    HalfMade,
    /// Closed by its last endpoint, whose process was not permitted to remove the name.
    Closed,
    /// Every endpoint that attached is gone (detached, or its process dead).
    Abandoned,
    /// Some endpoint is alive.
    Live(String),
}

/// What an object's mark says it is, in words for an error when it is not ours. `Ok(true)`:
/// marked by this layout version; `Ok(false)`: empty (a creator has made the name and not yet
/// written anything, or died doing so).
pub(crate) fn mark_verdict(mark: Mark) -> Result<bool, String> {
    match mark {
        Mark::Ours => Ok(true),
        Mark::Empty => Ok(false),
        Mark::Zeros => Err(
            "its first bytes are all zeros where a shmchan channel starts with \
                            its mark: not a shmchan channel (or one whose creator died before \
                            writing anything)"
                .into(),
        ),
        Mark::OtherVersion(v) => Err(format!(
            "a shmchan channel of layout version {v}, but this build of shmchan reads version \
             {VERSION}"
        )),
        Mark::Foreign(what) => Err(format!("not a shmchan channel ({what})")),
    }
}

/// Judge what is under `name`, holding its gate.
pub(crate) fn classify(region: &Region, name: &str) -> Found {
    match mark_verdict(region.mark()) {
        Err(why) => return Found::Foreign(why),
        Ok(false) => return Found::HalfMade,
        Ok(true) => {}
    }
    let Some(hdr) = region.try_header() else {
        // Marked, but smaller than a header: its creator died between marking and sizing it.
        return Found::HalfMade;
    };
    if !hdr.is_ready() {
        return Found::HalfMade; // marked, never published: its creator died (we hold its gate)
    }
    match hdr.name() {
        Some(n) if n == name => {}
        Some(other) => {
            return Found::Foreign(format!(
                "the region belongs to channel {other:?} (two names share one System V key)"
            ));
        }
        None => return Found::Foreign("the name stored in its header is corrupt".into()),
    }
    // Relaxed: written under the gate, which we hold.
    if hdr.life.state.load(Ordering::Relaxed) != OPEN {
        return Found::Closed;
    }
    let n = hdr.endpoint_count().min(MAX_ENDPOINTS);
    if endpoint::reap_dead(hdr, region, 0..n) {
        Found::Live(live_endpoints(hdr, n))
    } else {
        Found::Abandoned
    }
}

/// The entries still attached, in words ("sender pid 12, receiver pid 40").
fn live_endpoints(hdr: &Header, n: usize) -> String {
    let senders = hdr.id.max_senders.load(Ordering::Relaxed) as usize;
    let mut out = Vec::new();
    for (i, e) in hdr.endpoints[..n].iter().enumerate() {
        let w = e.load(Ordering::Relaxed);
        if endpoint::state_of(w) == endpoint::ATTACHED {
            let role = if i < senders { "sender" } else { "receiver" };
            // Relaxed: for people (see `Header::pids`).
            out.push(format!(
                "{role} pid {}",
                hdr.pids[i].load(Ordering::Relaxed)
            ));
        }
    }
    out.join(", ")
}

/// Mark the channel closed (the caller holds the gate): nobody joins it again. Only an object
/// carrying our mark is written.
pub(crate) fn close(region: &Region) {
    if region.mark() == Mark::Ours {
        if let Some(hdr) = region.try_header() {
            // Relaxed: read only under the gate.
            hdr.life.state.store(CLOSED, Ordering::Relaxed);
        }
    }
}

/// After the handle of incarnation `incarnation` detached: if no endpoint is alive any more,
/// close the channel and remove its name (the caller holds the gate). If the name cannot be
/// removed (another user's object in a sticky directory), the channel stays closed and the next
/// `create` of the name uses it anew.
pub(crate) fn close_if_unused(region: &Region, incarnation: u64) {
    let hdr = region.header();
    // Relaxed: written under the gate, which we hold. Another incarnation in the object
    // (made anew in place since we joined) is not ours to close.
    if hdr.life.state.load(Ordering::Relaxed) != OPEN
        || hdr.life.incarnation.load(Ordering::Relaxed) != incarnation
    {
        return;
    }
    // Every entry the header counts, not only our geometry's (the header is the truth
    // about who is attached now).
    let all = 0..hdr.endpoint_count().min(MAX_ENDPOINTS);
    if endpoint::reap_dead(hdr, region, all) {
        return;
    }
    close(region);
    let _ = region.remove_name();
}

/// Remove the channel `name` if no endpoint of it is alive: the name is freed now, the memory
/// when the last mapping goes. What a service's start-up script, or `shmchan rm`, uses to
/// clear a channel left by processes that were killed.
///
/// A channel with a live endpoint (as the kernel vouches, see the crate docs on liveness) is
/// never removed. Removing is safe against concurrent `create`, `open` and drops of the same
/// name: it never removes a name that meanwhile refers to a new channel.
///
/// # Errors
///
/// [`Error::NotFound`] if there is no such name; [`Error::InUse`] if an endpoint is alive (it
/// lists them); [`Error::Incompatible`] if the name holds something that is not a shmchan
/// channel of this version (left alone); [`Error::Io`] if the system refuses (for example
/// another user's channel in a sticky directory); [`Error::NotReady`] if another process held
/// the channel's lock past [`Options::open_timeout`].
///
/// ```
/// use shmchan::{spsc, Error, Options};
/// # let name = format!("doc-remove-{}", std::process::id());
/// let opts = Options::new();
/// let tx = spsc::Sender::<u64>::create(&name, &opts)?;
/// // The sender is alive: its channel is not removed.
/// assert!(matches!(shmchan::remove(&name, &opts), Err(Error::InUse { .. })));
/// drop(tx); // the last handle out removes the name itself
/// assert!(matches!(shmchan::remove(&name, &opts), Err(Error::NotFound { .. })));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn remove(name: &str, opts: &Options) -> Result<(), Error> {
    remove_under_gate(name, opts, false).map(|_| ())
}

/// Remove the name `name` whatever it holds, under its gate (so never a name that meanwhile
/// refers to a new channel): `shmchan rm --force`. Returns what was broken, in words: the
/// endpoints that were alive (they keep their channel, but nobody can open it by name any
/// more), or what the object was if it was not a channel of this layout; `None` if nothing
/// was (the channel was abandoned, closed or half-made, as [`remove`] would have found).
pub(crate) fn remove_forced(name: &str, opts: &Options) -> Result<Option<String>, Error> {
    remove_under_gate(name, opts, true)
}

/// [`remove`] (`force` false: a live or foreign object is an error) and [`remove_forced`]
/// (`force` true: it is removed too, and what was broken is returned).
fn remove_under_gate(name: &str, opts: &Options, force: bool) -> Result<Option<String>, Error> {
    region::validate_name(name)?;
    let backend = &opts.backend;
    loop {
        let (region, _gate) = match Region::open(name, backend, deadline_after(opts.open_timeout)) {
            Err(Error::NotReady { .. }) => {
                return Err(Error::NotReady {
                    name: name.to_owned(),
                    backend: backend.clone(),
                    waited: opts.open_timeout,
                });
            }
            // A System V segment too small to hold a header, or not marked as a channel of
            // ours: its gate word is not ours to take. Forced, it is removed by its id (which
            // no other segment can have) without writing to it.
            Err(Error::Incompatible { detail, .. }) if !force => {
                return Err(Error::Incompatible {
                    name: name.to_owned(),
                    backend: backend.clone(),
                    detail: format!("{detail}; not removed"),
                });
            }
            Err(Error::Incompatible { detail, .. }) if *backend == Backend::SysV => {
                region::sysv::remove_unmapped(name).map_err(|source| Error::Io {
                    op: "remove the name (shmctl IPC_RMID)",
                    name: name.to_owned(),
                    backend: backend.clone(),
                    source,
                })?;
                return Ok(Some(detail));
            }
            r => r?,
        };
        if !region.is_named() {
            continue; // replaced meanwhile: look at what is there now
        }
        let broke = match classify(&region, name) {
            Found::Foreign(detail) if !force => {
                return Err(Error::Incompatible {
                    name: name.to_owned(),
                    backend: backend.clone(),
                    detail: format!("{detail}; not removed"),
                });
            }
            Found::Live(who) if !force => {
                return Err(Error::InUse {
                    name: name.to_owned(),
                    backend: backend.clone(),
                    detail: who,
                });
            }
            Found::Foreign(detail) => Some(detail),
            Found::Live(who) => {
                close(&region);
                Some(format!("{who} still attached and alive"))
            }
            Found::HalfMade | Found::Closed | Found::Abandoned => {
                close(&region);
                None
            }
        };
        region.remove_name().map_err(|source| Error::Io {
            op: "remove the name",
            name: name.to_owned(),
            backend: backend.clone(),
            source,
        })?;
        return Ok(broke);
    }
}
