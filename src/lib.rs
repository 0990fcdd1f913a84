//! Typed, lock-free channels between processes on one Linux host, over shared memory.
//!
//! A process creates a channel by name; another opens it by the same name and gets a typed
//! [`spsc::Sender`] or [`spsc::Receiver`]. Messages go through a ring buffer in shared memory:
//! no system call and no allocation per message, and a round trip costs about what two
//! cache-line transfers cost. A peer that drops its handle or dies (even by `kill -9`) is seen
//! as [`Disconnected`](TryRecvError::Disconnected); a peer that scribbles over the shared memory
//! can cause odd values or errors, never a crash or an out-of-bounds access here.
//!
//! ```
//! use shmchan::{spsc, Options, Backend};
//! # let name = format!("doc-crate-{}", std::process::id());
//!
//! // process A
//! let tx = spsc::Sender::<u64>::create(&name, &Options::new().capacity(1024))?;
//! // process B (here the same process, for the example)
//! let rx = spsc::Receiver::<u64>::open(&name, &Options::new())?;
//!
//! tx.send(42)?;
//! assert_eq!(rx.recv()?, 42);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Payloads
//!
//! Messages are [`Pod`] (`bytemuck::Pod`): plain data for which every bit pattern is valid, with
//! no padding and no pointers, so a value written by any peer can be read without undefined
//! behaviour. Derive it with `#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]` on a
//! `#[repr(C)]` struct. Both sides must use the same type: its size, alignment and type name
//! are recorded in the region, and opening with another type is an [`Error::Incompatible`].
//!
//! # Backends
//!
//! [`Backend::Posix`] (`/dev/shm`, the default), [`Backend::SysV`] and [`Backend::File`]; see
//! [`Backend`]. The name is removed from the system when the last handle detaches.
//!
//! # Peers that go away, and come back
//!
//! A receiver whose sender is gone (dropped, or its process died) receives everything that was
//! sent and then gets `Disconnected`. A sender whose receiver is gone gets `Disconnected`,
//! including one blocked on a full ring; the first send after a receiver died asleep in a
//! receive (it asks the kernel before ringing the doorbell); and one that never fills its ring
//! within 40 ms or 64 sends. Dropped handles are seen at once; a killed process is noticed by
//! the next blocking call within about 40 ms, and by `try_` calls at most every 40 ms.
//! [`is_connected`](spsc::Sender::is_connected) and
//! [`wait_for_peer`](spsc::Sender::wait_for_peer) ask directly.
//!
//! `Disconnected` is a state, not an end: the channel outlives its peers. A place in the
//! channel whose endpoint left or died is taken by the next `open` of that role, any number of
//! times (an MPMC channel limits how many are attached *at once*,
//! [`Options::max_senders`]/[`Options::max_receivers`]), and the handle that saw the
//! disconnect works again once the new peer is there (`wait_for_peer` waits for it). What is
//! in the ring when a receiver goes waits for the next receiver; a message a receiver was
//! killed holding (a [`spsc::Ref`], an [`mpmc::Ref`], a [`frame::Frame`], a pipe's
//! `fill_buf`, or one it was copying out) is delivered again to the next one: *at least once*
//! for that one message. A sender's uncommitted loan is never delivered.
//!
//! Death is the kernel's word, never a guess from `/proc`: each endpoint holds a lock that the
//! kernel releases when its process exits or calls `exec` (an open-file-description lock on the
//! region for POSIX and File regions; for System V, a private segment only that process
//! attaches, readable only by the channel's parties). So peers in different pid namespaces (two
//! containers sharing `/dev/shm` or the IPC namespace), without `/proc`, behind `hidepid`, or
//! whose main thread exited, are alive while they run. A child created by `fork` gets copies
//! of its parent's handles that refuse every operation (as disconnected) and keep nothing of
//! the parent alive.
//!
//! [`remove`] removes a channel no live endpoint holds (what a start-up script uses after a
//! crash); `create` does the same by itself when the name it wants is held by an abandoned
//! channel. Exactly one of any number of concurrent creators of a name succeeds. Another
//! program's object under a channel's name is never written, reclaimed or removed: an object
//! is taken for a channel only if it carries the mark every creator writes first.
//!
//! # Seeing channels
//!
//! [`inspect`] lists the channels of a backend and reads one channel's state (kind, payload
//! type, fill level, messages sent and received, endpoints and whether each is alive, owner,
//! creation time) without attaching or writing anything: what the `shmchan` command
//! (`cli/` in the repository: `shmchan ls`, `stat`, `watch`, `rm`, `gc`, `doctor`) prints.
//!
//! # Async
//!
//! Receivers have `recv_async` and `stream()` (a [`futures_core::Stream`]), typed senders
//! `send_async` ([`spsc::Receiver::recv_async`], [`mpmc::Sender::send_async`],
//! [`frame::Receiver::stream`], ...): `Send`, cancellation-safe futures for any executor,
//! woken by one process-wide reactor thread that sleeps on every waiting channel's doorbell at
//! once (`futex_waitv`), not by a thread per channel.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]
// Under loom the OS backends compile out, leaving some of their helpers unused.
#![cfg_attr(loom, allow(unused_imports, dead_code))]

#[cfg(not(target_os = "linux"))]
compile_error!("shmchan supports Linux only (futex, /dev/shm, /proc)");

pub mod broadcast;
mod chan;
mod endpoint;
mod error;
#[cfg(not(loom))]
mod fork;
pub mod frame;
mod handle;
#[cfg(not(loom))]
pub mod inspect;
mod layout;
pub mod mpmc;
#[cfg(not(loom))]
mod name;
mod options;
pub mod pipe;
mod reactor;
mod region;
mod ring;
pub mod spsc;
mod sync;
#[cfg(not(loom))]
mod sys;
#[cfg(not(loom))]
pub mod untyped;
mod wait;

pub use bytemuck::Pod;
#[cfg(loom)]
#[doc(hidden)]
pub use chan::LoomReopen;
pub use error::{
    Error, RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
    WaitForPeerError,
};
#[cfg(not(loom))]
pub use name::remove;
pub use options::{Backend, Options, WaitStrategy};
#[doc(hidden)]
pub use reactor::registered_waiters;
#[cfg(loom)]
#[doc(hidden)]
pub use reactor::{loom_run, loom_stop};
#[cfg(loom)]
#[doc(hidden)]
pub use sync::loom_explore_probes;

/// For the loom models only: the System V gate's word protocol (`region/gate_word.rs`).
#[cfg(loom)]
#[doc(hidden)]
pub mod loom_gate {
    /// A gate word (loom's atomic under the crate's seam).
    pub struct Word(crate::sync::AtomicU64);

    impl Word {
        /// A word holding `v` (0: free).
        pub fn new(v: u64) -> Word {
            Word(crate::sync::AtomicU64::new(v))
        }

        /// One try at taking the word for `mine`; `alive(held)` says whether a holder lives.
        pub fn try_take(&self, mine: u64, alive: impl Fn(u64) -> bool) -> bool {
            crate::region::gate_word::try_take(&self.0, mine, alive)
        }

        /// Release the word if `mine` holds it.
        pub fn release(&self, mine: u64) {
            crate::region::gate_word::release(&self.0, mine)
        }
    }
}
