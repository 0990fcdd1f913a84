//! Async broadcast receives: [`Subscriber::recv_async`] and [`Subscriber::stream`] (the
//! waiting is `reactor.rs`'s). They take `&mut self`, as SPSC's do, so the future holds the
//! only reference to its handle and is `Send` whenever `T` is.

use std::future::Future;
use std::pin::Pin;
use std::task::Context;

use super::{RecvError, Subscriber};
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
        if self.chan.forked() {
            return std::task::Poll::Ready(Err(RecvError::Disconnected));
        }
        let bell = &self.chan.header().data_bell;
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
