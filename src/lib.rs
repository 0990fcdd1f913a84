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
//! # Peers that go away
//!
//! A receiver whose sender is gone (dropped, or its process died) receives everything that was
//! sent and then gets `Disconnected`. A sender whose receiver is gone gets `Disconnected`,
//! including one blocked on a full ring. Dropped handles are seen at once; a killed process is
//! noticed by the next blocking call within about 50 ms, and by `try_` calls at most every
//! 40 ms (processes are identified by pid and start time, so a recycled pid or a zombie is not
//! taken for the peer).

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]
// Under loom the OS backends compile out, leaving some of their helpers unused.
#![cfg_attr(loom, allow(unused_imports, dead_code))]

#[cfg(not(target_os = "linux"))]
compile_error!("shmchan supports Linux only (futex, /dev/shm, /proc)");

mod chan;
mod endpoint;
mod error;
#[cfg(not(loom))]
mod fork;
mod handle;
mod layout;
pub mod mpmc;
mod options;
mod region;
mod ring;
pub mod spsc;
mod sync;
#[cfg(not(loom))]
mod sys;
mod wait;

pub use bytemuck::Pod;
#[cfg(not(loom))]
pub use chan::remove;
pub use error::{
    Error, RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
    WaitForPeerError,
};
pub use options::{Backend, Options, WaitStrategy};
