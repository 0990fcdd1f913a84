//! Async SPSC calls: [`Receiver::recv_async`], [`Receiver::stream`] and [`Sender::send_async`]
//! (the waiting is `reactor.rs`'s).
//!
//! SPSC handles are `Send` but not `Sync`, so their async methods take `&mut self`: the future
//! then holds the only reference to its handle, and is `Send` whenever `T` is.

use std::future::Future;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::Context;

use super::{Receiver, Sender};
use crate::Pod;
use crate::error::{RecvError, SendError};
use crate::reactor::Wait;
use crate::ring::LARGE;
use crate::wait::Poll;

impl<T: Pod> Receiver<T> {
    /// Receive asynchronously: the message, or [`RecvError`] once the ring is empty and the
    /// sender is gone (dropped, or its process died: noticed within about 40 ms, as by
    /// [`recv`](Self::recv)). Works with any executor; no thread per channel (see the crate's
    /// "Async" docs).
    ///
    /// Cancellation-safe: a message is taken only in the poll that returns it, so dropping the
    /// future (a `select!` branch that lost, a timeout) loses nothing, and the next receive
    /// gets that message.
    ///
    /// # Errors
    /// [`RecvError`] once the ring is empty and the sender is gone; at once in a forked child's
    /// copy of the handle.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
    /// use shmchan::{spsc, Options};
    /// # let name = format!("doc-spsc-recv-async-{}", std::process::id());
    /// let tx = spsc::Sender::<u64>::create(&name, &Options::new())?;
    /// let mut rx = spsc::Receiver::<u64>::open(&name, &Options::new())?; // usually another process
    /// let t = std::thread::spawn(move || tx.send(7));
    /// assert_eq!(rx.recv_async().await?, 7);
    /// t.join().unwrap()?;
    /// assert!(rx.recv_async().await.is_err()); // the sender is gone
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_async(&mut self) -> RecvFuture<'_, T> {
        RecvFuture {
            rx: self,
            wait: Wait::new(),
            done: false,
        }
    }

    /// The messages as a [`Stream`](futures_core::Stream), which ends when the ring is empty
    /// and the sender is gone. Each item is taken only in the poll that yields it, so dropping
    /// the stream loses nothing.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
    /// use std::pin::pin;
    /// use futures_core::Stream;
    /// use shmchan::spsc;
    /// let (tx, mut rx) = spsc::channel::<u32>(4)?;
    /// let t = std::thread::spawn(move || for i in 0..10 { tx.send(i).unwrap() });
    /// let mut s = pin!(rx.stream());
    /// let mut got = Vec::new();
    /// while let Some(v) = std::future::poll_fn(|cx| s.as_mut().poll_next(cx)).await {
    ///     got.push(v);
    /// }
    /// assert_eq!(got, (0..10).collect::<Vec<_>>());
    /// t.join().unwrap();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stream(&mut self) -> RecvStream<'_, T> {
        RecvStream {
            rx: self,
            wait: Wait::new(),
            done: false,
        }
    }

    /// One attempt at receiving a value, by value or (payloads over [`LARGE`]) through
    /// `poll_into`, as `recv` does.
    #[inline(always)]
    fn poll_value(&self, probe: bool) -> Poll<Result<T, ()>> {
        if const { size_of::<T>() > LARGE } {
            let mut out = MaybeUninit::uninit();
            return match self.poll_into(&mut out, probe) {
                // SAFETY: `poll_into` succeeded, so it filled `out` with a copy of a `T`.
                Poll::Ready(Ok(())) => Poll::Ready(Ok(unsafe { out.assume_init() })),
                Poll::Ready(Err(())) => Poll::Ready(Err(())),
                Poll::Pending => Poll::Pending,
            };
        }
        self.poll(probe)
    }

    /// One poll of an async receive.
    fn poll_async(&self, wait: &mut Wait, cx: &mut Context<'_>) -> std::task::Poll<Option<T>> {
        if self.chan.forked() {
            return std::task::Poll::Ready(None); // a forked child's copy takes nothing
        }
        let bell = &self.chan.header().data_bell;
        wait.poll(cx, bell, |probe| self.poll_value(probe))
            .map(Result::ok)
    }
}

/// The future of [`Receiver::recv_async`]: `Send` if `T` is. Polled again after it completed,
/// it gives `Err(RecvError)`.
#[must_use = "futures do nothing unless awaited"]
pub struct RecvFuture<'a, T: Pod> {
    rx: &'a mut Receiver<T>,
    wait: Wait,
    done: bool,
}

impl<T: Pod> Future for RecvFuture<'_, T> {
    type Output = Result<T, RecvError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> std::task::Poll<Self::Output> {
        let this = self.get_mut();
        if this.done {
            return std::task::Poll::Ready(Err(RecvError));
        }
        let r = this.rx.poll_async(&mut this.wait, cx);
        if r.is_ready() {
            this.done = true;
        }
        r.map(|v| v.ok_or(RecvError))
    }
}

impl<T: Pod> std::fmt::Debug for RecvFuture<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("spsc::RecvFuture").finish_non_exhaustive()
    }
}

/// The stream of [`Receiver::stream`]: `Send` if `T` is.
#[must_use = "streams do nothing unless polled"]
pub struct RecvStream<'a, T: Pod> {
    rx: &'a mut Receiver<T>,
    wait: Wait,
    done: bool,
}

impl<T: Pod> futures_core::Stream for RecvStream<'_, T> {
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> std::task::Poll<Option<T>> {
        let RecvStream { rx, wait, done } = self.get_mut();
        crate::reactor::poll_fused(done, || rx.poll_async(wait, cx))
    }
}

impl<T: Pod> futures_core::FusedStream for RecvStream<'_, T> {
    fn is_terminated(&self) -> bool {
        self.done
    }
}

impl<T: Pod> std::fmt::Debug for RecvStream<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("spsc::RecvStream")
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<T: Pod> Sender<T> {
    /// Send asynchronously, waiting for room in a full ring without blocking the thread.
    ///
    /// Cancellation-safe: the value is written only in the poll that returns `Ok`, so a
    /// dropped future has sent nothing.
    ///
    /// # Errors
    /// [`SendError`] with the value if the receiver is gone (dropped, or its process died:
    /// noticed within about 40 ms while waiting for room); at once in a forked child's copy
    /// of the handle.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
    /// use shmchan::{spsc, SendError};
    /// let (mut tx, rx) = spsc::channel::<u64>(1)?;
    /// tx.send_async(1).await?; // room
    /// let t = std::thread::spawn(move || {
    ///     std::thread::sleep(std::time::Duration::from_millis(20));
    ///     let first = rx.recv().unwrap(); // makes room for the second
    ///     (first, rx.recv().unwrap())
    /// });
    /// tx.send_async(2).await?; // waits for the receiver
    /// assert_eq!(t.join().unwrap(), (1, 2));
    /// assert_eq!(tx.send_async(3).await, Err(SendError(3))); // receiver gone
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_async(&mut self, value: T) -> SendFuture<'_, T> {
        SendFuture {
            tx: self,
            value,
            wait: Wait::new(),
            done: false,
        }
    }

    /// One attempt at sending `value`, by value or (payloads over [`LARGE`]) by reference.
    #[inline(always)]
    fn poll_value(&self, value: &T, probe: bool) -> Poll<Result<(), ()>> {
        if const { size_of::<T>() > LARGE } {
            return self.poll_from(value, probe);
        }
        match self.poll(*value, probe) {
            Poll::Ready(r) => Poll::Ready(r.map_err(drop)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The future of [`Sender::send_async`]: `Send` if `T` is. Polled again after it completed,
/// it gives `Err(SendError(value))` and sends nothing.
#[must_use = "futures do nothing unless awaited"]
pub struct SendFuture<'a, T: Pod> {
    tx: &'a mut Sender<T>,
    value: T,
    wait: Wait,
    done: bool,
}

// The value is never pinned (it is copied into the ring), so the future may move freely.
impl<T: Pod> Unpin for SendFuture<'_, T> {}

impl<T: Pod> Future for SendFuture<'_, T> {
    type Output = Result<(), SendError<T>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> std::task::Poll<Self::Output> {
        let this = self.get_mut();
        let tx = &*this.tx;
        if this.done || tx.chan.forked() || crate::handle::receivers_died_asleep(&tx.chan) {
            this.done = true;
            return std::task::Poll::Ready(Err(SendError(this.value)));
        }
        let value = &this.value;
        let before = tx.ring.position();
        let bell = &tx.chan.header().space_bell;
        let r = this
            .wait
            .poll(cx, bell, |probe| tx.poll_value(value, probe));
        if const { size_of::<T>() > LARGE } {
            tx.checkpoint(before); // a single small message's send checks in `poll`
        }
        match r {
            std::task::Poll::Ready(r) => {
                this.done = true;
                std::task::Poll::Ready(r.map_err(|()| SendError(this.value)))
            }
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }
}

impl<T: Pod> std::fmt::Debug for SendFuture<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("spsc::SendFuture").finish_non_exhaustive()
    }
}
