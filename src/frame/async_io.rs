//! Async frame receives: [`Receiver::recv_async`] and [`Receiver::stream`] (the waiting is
//! `reactor.rs`'s).

use std::future::Future;
use std::pin::Pin;
use std::task::Context;

use super::{Frame, Receiver};
use crate::error::RecvError;
use crate::reactor::Wait;

impl Receiver {
    /// Receive the next frame asynchronously: the same [`Frame`] as [`recv`](Self::recv), read
    /// in place and freed when it drops. The future is `Send` (it holds only `&mut Receiver`);
    /// the `Frame` it gives is not (it points into shared memory), so drop it before the next
    /// `.await` in a task that must be `Send`, or copy it out (`frame.to_vec()`, or
    /// [`stream`](Self::stream), whose items are owned).
    ///
    /// Cancellation-safe: a frame is taken only in the poll that returns it.
    ///
    /// # Errors
    /// [`RecvError`] once the ring is empty and the sender is gone (dropped, or its process
    /// died: noticed within about 40 ms); at once in a forked child's copy of the handle.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
    /// let (mut tx, mut rx) = shmchan::frame::channel(1 << 12)?;
    /// let t = std::thread::spawn(move || tx.send(b"hello"));
    /// assert_eq!(&*rx.recv_async().await?, b"hello");
    /// t.join().unwrap()?;
    /// assert!(rx.recv_async().await.is_err()); // the sender is gone
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_async(&mut self) -> RecvFuture<'_> {
        RecvFuture {
            rx: Some(self),
            wait: Wait::new(),
        }
    }

    /// The frames as a [`Stream`](futures_core::Stream) of owned copies (`Vec<u8>`: a stream's
    /// items cannot borrow it), which ends when the ring is empty and the sender is gone. Each
    /// frame is taken only in the poll that yields it.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
    /// use std::pin::pin;
    /// use futures_core::Stream;
    /// let (mut tx, mut rx) = shmchan::frame::channel(1 << 12)?;
    /// let t = std::thread::spawn(move || for w in ["a", "bb", "ccc"] { tx.send(w.as_bytes()).unwrap() });
    /// let mut s = pin!(rx.stream());
    /// let mut got = Vec::new();
    /// while let Some(f) = std::future::poll_fn(|cx| s.as_mut().poll_next(cx)).await {
    ///     got.push(String::from_utf8(f)?);
    /// }
    /// assert_eq!(got, ["a", "bb", "ccc"]);
    /// t.join().unwrap();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stream(&mut self) -> FrameStream<'_> {
        FrameStream {
            rx: self,
            wait: Wait::new(),
            done: false,
        }
    }

    /// One poll of an async receive: the next frame's `(position, length)`, `None` when
    /// disconnected.
    fn poll_async(
        &mut self,
        wait: &mut Wait,
        cx: &mut Context<'_>,
    ) -> std::task::Poll<Option<(u64, u64)>> {
        if self.chan.forked() {
            return std::task::Poll::Ready(None); // a forked child's copy takes nothing
        }
        self.release_leaked();
        let this = &*self;
        wait.poll(cx, &this.chan.header().data_bell, |probe| this.poll(probe))
            .map(Result::ok)
    }
}

/// The future of [`Receiver::recv_async`]: `Send`. Polled again after it completed, it gives
/// `Err(RecvError)`.
#[must_use = "futures do nothing unless awaited"]
pub struct RecvFuture<'a> {
    /// Taken when the frame is handed out (the frame borrows the receiver for `'a`).
    rx: Option<&'a mut Receiver>,
    wait: Wait,
}

impl<'a> Future for RecvFuture<'a> {
    type Output = Result<Frame<'a>, RecvError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> std::task::Poll<Self::Output> {
        let this = self.get_mut();
        let Some(rx) = this.rx.take() else {
            return std::task::Poll::Ready(Err(RecvError));
        };
        match rx.poll_async(&mut this.wait, cx) {
            std::task::Poll::Pending => {
                this.rx = Some(rx);
                std::task::Poll::Pending
            }
            std::task::Poll::Ready(r) => {
                std::task::Poll::Ready(r.map(|at| rx.frame(at)).ok_or(RecvError))
            }
        }
    }
}

impl std::fmt::Debug for RecvFuture<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("frame::RecvFuture").finish_non_exhaustive()
    }
}

/// The stream of [`Receiver::stream`]: owned copies of the frames. `Send`.
#[must_use = "streams do nothing unless polled"]
pub struct FrameStream<'a> {
    rx: &'a mut Receiver,
    wait: Wait,
    done: bool,
}

impl futures_core::Stream for FrameStream<'_> {
    type Item = Vec<u8>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> std::task::Poll<Option<Vec<u8>>> {
        let FrameStream { rx, wait, done } = self.get_mut();
        crate::reactor::poll_fused(done, || {
            rx.poll_async(wait, cx).map(|at| {
                // A copy, then the frame dropped: its bytes go back to the sender.
                at.map(|at| rx.frame(at).to_vec())
            })
        })
    }
}

impl futures_core::FusedStream for FrameStream<'_> {
    fn is_terminated(&self) -> bool {
        self.done
    }
}

impl std::fmt::Debug for FrameStream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("frame::FrameStream")
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}
