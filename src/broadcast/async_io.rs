//! Async broadcast receives: [`Subscriber::recv_async`] and [`Subscriber::stream`], and their
//! frame topic twins (the waiting is `reactor.rs`'s). They take `&mut self`, as SPSC's do, so
//! the future holds the only reference to its handle and is `Send` whenever `T` is.

use std::future::Future;
use std::pin::Pin;
use std::task::Context;

use super::{FrameSubscriber, RecvError, Subscriber};
use crate::Pod;
use crate::reactor::Wait;

impl<T: Pod> Subscriber<T> {
    /// Receive asynchronously, with [`recv`](Self::recv)'s results. Works with any executor;
    /// no thread per subscriber (see the crate's "Async" docs). Cancellation-safe: a message
    /// is taken only in the poll that returns it.
    ///
    /// # Errors
    /// As [`recv`](Self::recv); [`RecvError::Disconnected`] at once in a forked child's copy.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
    /// use shmchan::{broadcast, Options};
    /// # let name = format!("doc-bcast-async-{}", std::process::id());
    /// let mut tx = broadcast::Publisher::<u64>::create(&name, &Options::new())?;
    /// let mut rx = broadcast::Subscriber::<u64>::open(&name, &Options::new())?;
    /// let t = std::thread::spawn(move || tx.send(7));
    /// assert_eq!(rx.recv_async().await?, 7);
    /// t.join().unwrap()?;
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

    /// The messages as a [`Stream`](futures_core::Stream) of `Result<T, RecvError>`: a lag
    /// is an item (`Err(RecvError::Lagged(n))`, and the stream goes on), eviction is the last
    /// item, and the stream ends when the publisher is gone and everything was read (call
    /// `stream()` again to go on with the next publisher).
    pub fn stream(&mut self) -> RecvStream<'_, T> {
        RecvStream {
            rx: self,
            wait: Wait::new(),
            done: false,
        }
    }

    /// One poll of an async receive.
    fn poll_async(
        &self,
        wait: &mut Wait,
        cx: &mut Context<'_>,
    ) -> std::task::Poll<Result<T, RecvError>> {
        if self.core.chan.forked() {
            return std::task::Poll::Ready(Err(RecvError::Disconnected));
        }
        let bell = &self.core.chan.header().data_bell;
        wait.poll(cx, bell, |probe| self.poll(probe))
    }
}

/// The future of [`Subscriber::recv_async`]: `Send` if `T` is. Polled again after it
/// completed, it gives `Err(RecvError::Disconnected)`.
#[must_use = "futures do nothing unless awaited"]
pub struct RecvFuture<'a, T: Pod> {
    rx: &'a mut Subscriber<T>,
    wait: Wait,
    done: bool,
}

impl<T: Pod> Future for RecvFuture<'_, T> {
    type Output = Result<T, RecvError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> std::task::Poll<Self::Output> {
        let this = self.get_mut();
        if this.done {
            return std::task::Poll::Ready(Err(RecvError::Disconnected));
        }
        let r = this.rx.poll_async(&mut this.wait, cx);
        if r.is_ready() {
            this.done = true;
        }
        r
    }
}

impl<T: Pod> std::fmt::Debug for RecvFuture<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("broadcast::RecvFuture")
            .finish_non_exhaustive()
    }
}

/// The stream of [`Subscriber::stream`]: `Send` if `T` is.
#[must_use = "streams do nothing unless polled"]
pub struct RecvStream<'a, T: Pod> {
    rx: &'a mut Subscriber<T>,
    wait: Wait,
    done: bool,
}

impl<T: Pod> futures_core::Stream for RecvStream<'_, T> {
    type Item = Result<T, RecvError>;

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> std::task::Poll<Option<Result<T, RecvError>>> {
        let RecvStream { rx, wait, done } = self.get_mut();
        crate::reactor::poll_fused(done, || {
            rx.poll_async(wait, cx).map(|r| match r {
                Err(RecvError::Disconnected) => None,
                r => Some(r),
            })
        })
        .map(|item| {
            if matches!(item, Some(Err(RecvError::Evicted))) {
                *done = true; // eviction is the last item
            }
            item
        })
    }
}

impl<T: Pod> futures_core::FusedStream for RecvStream<'_, T> {
    fn is_terminated(&self) -> bool {
        self.done
    }
}

impl<T: Pod> std::fmt::Debug for RecvStream<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("broadcast::RecvStream")
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl FrameSubscriber {
    /// Receive a frame asynchronously, with [`recv`](Self::recv)'s results. Works with any
    /// executor; no thread per subscriber. Cancellation-safe: a frame is taken only in the
    /// poll that returns it.
    ///
    /// # Errors
    /// As [`recv`](Self::recv); [`RecvError::Disconnected`] at once in a forked child's copy.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
    /// use shmchan::{broadcast, Options};
    /// # let name = format!("doc-bcast-frames-async-{}", std::process::id());
    /// let mut tx = broadcast::FramePublisher::create(&name, &Options::new())?;
    /// let mut rx = broadcast::FrameSubscriber::open(&name, &Options::new())?;
    /// let t = std::thread::spawn(move || tx.send(b"tick"));
    /// assert_eq!(rx.recv_async().await?, b"tick");
    /// t.join().unwrap()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_async(&mut self) -> FrameRecvFuture<'_> {
        FrameRecvFuture {
            rx: self,
            wait: Wait::new(),
            done: false,
        }
    }

    /// The frames as a [`Stream`](futures_core::Stream) of `Result<Vec<u8>, RecvError>`, as
    /// [`Subscriber::stream`]: a lag is an item, eviction the last one, and the stream ends
    /// when the publisher is gone and everything was read.
    pub fn stream(&mut self) -> FrameRecvStream<'_> {
        FrameRecvStream {
            rx: self,
            wait: Wait::new(),
            done: false,
        }
    }

    /// One poll of an async receive.
    fn poll_async(
        &self,
        wait: &mut Wait,
        cx: &mut Context<'_>,
    ) -> std::task::Poll<Result<Vec<u8>, RecvError>> {
        if self.chan().forked() {
            return std::task::Poll::Ready(Err(RecvError::Disconnected));
        }
        let bell = &self.chan().header().data_bell;
        let mut buf = Vec::new();
        wait.poll(cx, bell, |probe| self.poll_into(probe, &mut buf))
            .map(|r| r.map(|_| buf))
    }
}

/// The future of [`FrameSubscriber::recv_async`]. Polled again after it completed, it gives
/// `Err(RecvError::Disconnected)`.
#[must_use = "futures do nothing unless awaited"]
pub struct FrameRecvFuture<'a> {
    rx: &'a mut FrameSubscriber,
    wait: Wait,
    done: bool,
}

impl Future for FrameRecvFuture<'_> {
    type Output = Result<Vec<u8>, RecvError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> std::task::Poll<Self::Output> {
        let this = self.get_mut();
        if this.done {
            return std::task::Poll::Ready(Err(RecvError::Disconnected));
        }
        let r = this.rx.poll_async(&mut this.wait, cx);
        if r.is_ready() {
            this.done = true;
        }
        r
    }
}

impl std::fmt::Debug for FrameRecvFuture<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("broadcast::FrameRecvFuture")
            .finish_non_exhaustive()
    }
}

/// The stream of [`FrameSubscriber::stream`].
#[must_use = "streams do nothing unless polled"]
pub struct FrameRecvStream<'a> {
    rx: &'a mut FrameSubscriber,
    wait: Wait,
    done: bool,
}

impl futures_core::Stream for FrameRecvStream<'_> {
    type Item = Result<Vec<u8>, RecvError>;

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> std::task::Poll<Option<Result<Vec<u8>, RecvError>>> {
        let FrameRecvStream { rx, wait, done } = self.get_mut();
        crate::reactor::poll_fused(done, || {
            rx.poll_async(wait, cx).map(|r| match r {
                Err(RecvError::Disconnected) => None,
                r => Some(r),
            })
        })
        .map(|item| {
            if matches!(item, Some(Err(RecvError::Evicted))) {
                *done = true; // eviction is the last item
            }
            item
        })
    }
}

impl futures_core::FusedStream for FrameRecvStream<'_> {
    fn is_terminated(&self) -> bool {
        self.done
    }
}

impl std::fmt::Debug for FrameRecvStream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("broadcast::FrameRecvStream")
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}
