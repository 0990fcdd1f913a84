//! The local end of a route: the shmchan channel, opened as its receiver (`out`) or its sender
//! (`in`), and what it carries (its [`Fingerprint`], read from the channel's header with
//! `shmchan::inspect`, so the bridge needs no type of its own).

use std::time::Duration;

use shmchan::untyped::{self, Element};
use shmchan::{
    Backend, Options, RecvTimeoutError, SendTimeoutError, TryRecvError, TrySendError, broadcast,
    frame, inspect,
};

/// What a channel carries, as it travels with every message: byte frames, or typed elements
/// (name, size, alignment) of an SPSC or MPMC channel or a broadcast topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fingerprint {
    /// Byte frames: a frame channel, or a broadcast frame topic (`topic`).
    Frames { topic: bool },
    /// Typed elements of an SPSC or MPMC channel or a typed topic.
    Typed { kind: Typed, element: Element },
}

/// The kind of a typed channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Typed {
    Spsc,
    Mpmc,
    /// A broadcast topic of elements (`broadcast::Publisher<T>`, `untyped::broadcast`).
    Topic,
}

impl Typed {
    fn wire(self) -> &'static str {
        match self {
            Typed::Spsc => "spsc",
            Typed::Mpmc => "mpmc",
            Typed::Topic => "topic",
        }
    }
}

const ENDIAN: &str = if cfg!(target_endian = "little") {
    "le"
} else {
    "be"
};

impl Fingerprint {
    /// The form that travels: `frame`, `topic` (frames), or `spsc;NAME;SIZE;ALIGN;le`
    /// (`mpmc;...`, `topic;...` for a typed topic).
    pub fn wire(&self) -> String {
        match self {
            Fingerprint::Frames { topic: false } => "frame".into(),
            Fingerprint::Frames { topic: true } => "topic".into(),
            Fingerprint::Typed { kind, element } => format!(
                "{};{};{};{};{ENDIAN}",
                kind.wire(),
                element.name(),
                element.size(),
                element.align()
            ),
        }
    }

    /// Parse the wire form; `None` if it is not one.
    pub fn parse(s: &str) -> Option<Fingerprint> {
        match s {
            "frame" => return Some(Fingerprint::Frames { topic: false }),
            "topic" => return Some(Fingerprint::Frames { topic: true }),
            _ => {}
        }
        let mut it = s.split(';');
        let kind = match it.next()? {
            "spsc" => Typed::Spsc,
            "mpmc" => Typed::Mpmc,
            "topic" => Typed::Topic,
            _ => return None,
        };
        let name = it.next()?;
        let size = it.next()?.parse().ok()?;
        let align = it.next()?.parse().ok()?;
        if it.next()? != ENDIAN || it.next().is_some() {
            return None; // another byte order: values would be read wrong
        }
        Some(Fingerprint::Typed {
            kind,
            element: Element::new(name, size, align),
        })
    }

    /// May messages of `self` be written into a channel of `local`? Frames into frames (a
    /// channel or a topic), typed elements into a channel of the same element (SPSC, MPMC or
    /// a typed topic).
    pub fn fits(&self, local: &Fingerprint) -> bool {
        match (self, local) {
            (Fingerprint::Frames { .. }, Fingerprint::Frames { .. }) => true,
            (Fingerprint::Typed { element: a, .. }, Fingerprint::Typed { element: b, .. }) => {
                a == b
            }
            _ => false,
        }
    }

    /// Bytes per element (typed), or `None` (frames).
    pub fn element_size(&self) -> Option<usize> {
        match self {
            Fingerprint::Typed { element, .. } => Some(element.size()),
            Fingerprint::Frames { .. } => None,
        }
    }
}

/// What the header of channel `name` says it carries; `Err` if it does not exist (yet), is not
/// ready, or is of a kind the bridge does not forward.
pub fn stat(name: &str, backend: &Backend) -> Result<(Fingerprint, inspect::Ring), String> {
    let ch = inspect::stat(name, backend).map_err(|e| e.to_string())?;
    let ring = ch.ring.ok_or_else(|| {
        format!(
            "channel {name:?} is not ready ({}{})",
            ch.state.as_str(),
            ch.problem
                .as_deref()
                .map_or(String::new(), |p| format!(": {p}"))
        )
    })?;
    let fp = match ring.kind {
        inspect::Kind::Frame => Fingerprint::Frames { topic: false },
        inspect::Kind::Broadcast if ring.payload == "frames" => Fingerprint::Frames { topic: true },
        inspect::Kind::Spsc | inspect::Kind::Mpmc | inspect::Kind::Broadcast => {
            Fingerprint::Typed {
                kind: match ring.kind {
                    inspect::Kind::Spsc => Typed::Spsc,
                    inspect::Kind::Mpmc => Typed::Mpmc,
                    _ => Typed::Topic,
                },
                element: Element::new(
                    ring.payload.clone(),
                    ring.payload_size as usize,
                    ring.payload_align as usize,
                ),
            }
        }
        k => {
            return Err(format!(
                "channel {name:?} is a {k} channel of {}: the bridge forwards frame channels, \
                 typed SPSC and MPMC channels and topics (of frames or typed)",
                ring.payload
            ));
        }
    };
    Ok((fp, ring))
}

/// The local channel of an `out` route, attached as its receiver.
pub enum Source {
    Spsc(untyped::spsc::Receiver),
    Mpmc(untyped::mpmc::Receiver),
    Frame(frame::Receiver),
    Topic(broadcast::FrameSubscriber),
    TypedTopic(untyped::broadcast::Subscriber),
}

/// What [`Source::take`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Take {
    /// This many messages were appended to the body.
    Got(usize),
    /// None within the wait.
    Empty,
    /// The local sender is gone and the ring is empty.
    Disconnected,
    /// Frame topic: this many messages were overwritten before the bridge read them.
    Lagged(u64),
}

impl Source {
    /// Attach to channel `name` as its receiver (a topic: a subscriber from the next message).
    pub fn open(name: &str, opts: &Options) -> Result<(Source, Fingerprint), String> {
        let (fp, _) = stat(name, opts.get_backend())?;
        let err = |e: shmchan::Error| e.to_string();
        let src = match &fp {
            Fingerprint::Frames { topic: false } => {
                Source::Frame(frame::Receiver::open(name, opts).map_err(err)?)
            }
            Fingerprint::Frames { topic: true } => {
                Source::Topic(broadcast::FrameSubscriber::open(name, opts).map_err(err)?)
            }
            Fingerprint::Typed {
                kind: Typed::Spsc,
                element,
            } => Source::Spsc(untyped::spsc::Receiver::open(name, element, opts).map_err(err)?),
            Fingerprint::Typed {
                kind: Typed::Mpmc,
                element,
            } => Source::Mpmc(untyped::mpmc::Receiver::open(name, element, opts).map_err(err)?),
            Fingerprint::Typed {
                kind: Typed::Topic,
                element,
            } => Source::TypedTopic(
                untyped::broadcast::Subscriber::open(name, element, opts).map_err(err)?,
            ),
        };
        Ok((src, fp))
    }

    /// Take the messages ready now, waiting at most `wait` for the first: at most `max_msgs`,
    /// and no more once the body holds `max_bytes` (a frame may go past it). Typed elements
    /// are appended as they are; frames as (u32 length, bytes).
    pub fn take(
        &mut self,
        body: &mut Vec<u8>,
        scratch: &mut Vec<u8>,
        max_msgs: usize,
        max_bytes: usize,
        wait: Duration,
    ) -> Take {
        let max_msgs = max_msgs.max(1);
        match self {
            Source::Spsc(rx) => {
                let size = rx.element_size();
                typed(body, scratch, size, max_msgs, max_bytes, |buf| {
                    rx.recv_timeout(buf, wait)
                })
            }
            Source::Mpmc(rx) => {
                let size = rx.element_size();
                typed(body, scratch, size, max_msgs, max_bytes, |buf| {
                    rx.recv_timeout(buf, wait)
                })
            }
            Source::TypedTopic(rx) => {
                let size = rx.element_size();
                let n = max_msgs.min((max_bytes / size).max(1));
                scratch.resize(n * size, 0);
                match rx.recv_timeout(&mut scratch[..n * size], wait) {
                    Ok(got) => {
                        body.extend_from_slice(&scratch[..got * size]);
                        Take::Got(got)
                    }
                    Err(broadcast::RecvTimeoutError::Timeout) => Take::Empty,
                    Err(broadcast::RecvTimeoutError::Lagged(k)) => Take::Lagged(k),
                    Err(_) => Take::Disconnected,
                }
            }
            Source::Frame(rx) => {
                match rx.recv_timeout(wait) {
                    Ok(f) => crate::wire::push_frame(body, &f),
                    Err(RecvTimeoutError::Timeout) => return Take::Empty,
                    Err(RecvTimeoutError::Disconnected) => return Take::Disconnected,
                }
                let mut n = 1;
                while n < max_msgs && body.len() < max_bytes {
                    match rx.try_recv() {
                        Ok(f) => crate::wire::push_frame(body, &f),
                        Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                    }
                    n += 1;
                }
                Take::Got(n)
            }
            Source::Topic(rx) => {
                let mut n = 0;
                let mut first = true;
                while n < max_msgs && body.len() < max_bytes {
                    let r = if first {
                        rx.recv_timeout_into(scratch, wait)
                    } else {
                        match rx.try_recv_into(scratch) {
                            Ok(len) => Ok(len),
                            Err(broadcast::TryRecvError::Empty) => break,
                            Err(broadcast::TryRecvError::Lagged(k)) => {
                                return if n == 0 {
                                    Take::Lagged(k)
                                } else {
                                    Take::Got(n)
                                };
                            }
                            Err(_) => break,
                        }
                    };
                    first = false;
                    match r {
                        Ok(len) => crate::wire::push_frame(body, &scratch[..len]),
                        Err(broadcast::RecvTimeoutError::Timeout) => return Take::Empty,
                        Err(broadcast::RecvTimeoutError::Lagged(k)) => return Take::Lagged(k),
                        Err(_) => return Take::Disconnected,
                    }
                    n += 1;
                }
                if n == 0 { Take::Empty } else { Take::Got(n) }
            }
        }
    }

    /// Wait at most `timeout` for a local sender; `true` once one is attached.
    pub fn wait_for_peer(&self, timeout: Duration) -> bool {
        match self {
            Source::Spsc(rx) => rx.wait_for_peer(timeout).is_ok(),
            Source::Mpmc(rx) => rx.wait_for_peer(timeout).is_ok(),
            Source::Frame(rx) => rx.wait_for_peer(timeout).is_ok(),
            Source::Topic(rx) => rx.wait_for_peer(timeout).is_ok(),
            Source::TypedTopic(_) => {
                std::thread::sleep(timeout);
                false
            }
        }
    }
}

fn typed(
    body: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
    size: usize,
    max_msgs: usize,
    max_bytes: usize,
    recv: impl FnOnce(&mut [u8]) -> Result<usize, RecvTimeoutError>,
) -> Take {
    let n = max_msgs.min((max_bytes / size).max(1));
    scratch.resize(n * size, 0);
    match recv(&mut scratch[..n * size]) {
        Ok(got) => {
            body.extend_from_slice(&scratch[..got * size]);
            Take::Got(got)
        }
        Err(RecvTimeoutError::Timeout) => Take::Empty,
        Err(RecvTimeoutError::Disconnected) => Take::Disconnected,
    }
}

/// The local channel of an `in` route, attached as its sender.
pub enum Sink {
    Spsc(untyped::spsc::Sender),
    Mpmc(untyped::mpmc::Sender),
    Frame(frame::Sender),
    Topic(broadcast::FramePublisher),
    /// A typed topic: it counts as connected while it has a subscriber (one that is counted
    /// sees the next element), so lossless writes wait for one and lossy ones drop.
    TypedTopic(untyped::broadcast::Publisher),
}

/// What a write into the local ring came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Put {
    /// Everything was written.
    Done,
    /// The ring was full (or a frame topic's publisher had to wait) for the rest.
    Full,
    /// The local receiver is gone.
    Disconnected,
    /// The frame is longer than the local channel takes; it can never be written.
    TooLarge,
}

impl Sink {
    /// Attach to channel `name` as its sender (a topic: its publisher).
    pub fn open(name: &str, opts: &Options) -> Result<(Sink, Fingerprint), String> {
        let (fp, _) = stat(name, opts.get_backend())?;
        let sink = Sink::attach(name, &fp, opts, false)?;
        Ok((sink, fp))
    }

    /// Create channel `name` for what `fp` describes (capacity in `opts`), as its sender. A
    /// topic is created in Block mode for a lossless route (its subscribers hold the bridge
    /// back, and so the remote producer), in Overwrite mode for a lossy one; a frame topic
    /// takes frames of up to `max_frame` bytes.
    pub fn create(
        name: &str,
        fp: &Fingerprint,
        opts: &Options,
        lossless: bool,
        max_frame: usize,
    ) -> Result<Sink, String> {
        let topic = matches!(
            fp,
            Fingerprint::Frames { topic: true }
                | Fingerprint::Typed {
                    kind: Typed::Topic,
                    ..
                }
        );
        if !topic {
            return Sink::attach(name, fp, opts, true);
        }
        let overflow = if lossless {
            broadcast::Overflow::Block { evict_after: None }
        } else {
            broadcast::Overflow::Overwrite
        };
        let mut opts = opts.clone().overflow(overflow);
        if let Fingerprint::Frames { topic: true } = fp {
            opts = opts.max_frame(max_frame);
        }
        Sink::attach(name, fp, &opts, true)
    }

    fn attach(name: &str, fp: &Fingerprint, opts: &Options, create: bool) -> Result<Sink, String> {
        let err = |e: shmchan::Error| e.to_string();
        Ok(match (fp, create) {
            (Fingerprint::Frames { topic: false }, false) => {
                Sink::Frame(frame::Sender::open(name, opts).map_err(err)?)
            }
            (Fingerprint::Frames { topic: false }, true) => {
                Sink::Frame(frame::Sender::create(name, opts).map_err(err)?)
            }
            (Fingerprint::Frames { topic: true }, false) => {
                Sink::Topic(broadcast::FramePublisher::open(name, opts).map_err(err)?)
            }
            (Fingerprint::Frames { topic: true }, true) => {
                Sink::Topic(broadcast::FramePublisher::create(name, opts).map_err(err)?)
            }
            (
                Fingerprint::Typed {
                    kind: Typed::Spsc,
                    element,
                },
                false,
            ) => Sink::Spsc(untyped::spsc::Sender::open(name, element, opts).map_err(err)?),
            (
                Fingerprint::Typed {
                    kind: Typed::Spsc,
                    element,
                },
                true,
            ) => Sink::Spsc(untyped::spsc::Sender::create(name, element, opts).map_err(err)?),
            (
                Fingerprint::Typed {
                    kind: Typed::Mpmc,
                    element,
                },
                false,
            ) => Sink::Mpmc(untyped::mpmc::Sender::open(name, element, opts).map_err(err)?),
            (
                Fingerprint::Typed {
                    kind: Typed::Mpmc,
                    element,
                },
                true,
            ) => Sink::Mpmc(untyped::mpmc::Sender::create(name, element, opts).map_err(err)?),
            (
                Fingerprint::Typed {
                    kind: Typed::Topic,
                    element,
                },
                false,
            ) => Sink::TypedTopic(
                untyped::broadcast::Publisher::open(name, element, opts).map_err(err)?,
            ),
            (
                Fingerprint::Typed {
                    kind: Typed::Topic,
                    element,
                },
                true,
            ) => Sink::TypedTopic(
                untyped::broadcast::Publisher::create(name, element, opts).map_err(err)?,
            ),
        })
    }

    /// Is the ring's producer position exact for the bridge (it is the only sender: SPSC and
    /// frame channels)? Then a restarted `in` route can say exactly what its predecessor wrote.
    pub fn positional(&self) -> bool {
        matches!(self, Sink::Spsc(_) | Sink::Frame(_))
    }

    /// Write typed elements (`values`, whole elements), waiting at most `wait` for room (zero:
    /// no wait). Returns how many elements went in, and why not all of them.
    pub fn put_values(&mut self, values: &[u8], wait: Duration) -> (usize, Put) {
        if values.is_empty() {
            return (0, Put::Done);
        }
        let r = match self {
            Sink::Spsc(tx) if wait.is_zero() => {
                try_typed(tx.try_send(values), values, tx.element_size())
            }
            Sink::Mpmc(tx) if wait.is_zero() => {
                try_typed(tx.try_send(values), values, tx.element_size())
            }
            Sink::Spsc(tx) => tx.send_timeout(values, wait),
            Sink::Mpmc(tx) => tx.send_timeout(values, wait),
            // Nobody would see it: as a channel without a receiver.
            Sink::TypedTopic(tx) if tx.subscriber_count() == 0 => {
                return (0, Put::Disconnected);
            }
            Sink::TypedTopic(tx) if wait.is_zero() => {
                let size = tx.element_size();
                try_typed(tx.try_send(values), values, size)
            }
            Sink::TypedTopic(tx) => tx.send_timeout(values, wait),
            _ => unreachable!("typed values for a frame channel"),
        };
        match r {
            Ok(()) => (values.len() / self.size(), Put::Done),
            Err(SendTimeoutError::Timeout(n)) => (n, Put::Full),
            Err(SendTimeoutError::Disconnected(n)) => (n, Put::Disconnected),
        }
    }

    fn size(&self) -> usize {
        match self {
            Sink::Spsc(tx) => tx.element_size(),
            Sink::Mpmc(tx) => tx.element_size(),
            Sink::TypedTopic(tx) => tx.element_size(),
            _ => 1,
        }
    }

    /// Write one frame, waiting at most `wait` for room (zero: no wait).
    pub fn put_frame(&mut self, f: &[u8], wait: Duration) -> Put {
        use frame::{SendTimeoutError as S, TrySendError as T};
        let r = match self {
            Sink::Frame(tx) if wait.is_zero() => match tx.try_send(f) {
                Ok(()) => Ok(()),
                Err(T::Full) => Err(S::Timeout),
                Err(T::Disconnected) => Err(S::Disconnected),
                Err(T::TooLarge { len, max }) => Err(S::TooLarge { len, max }),
            },
            Sink::Frame(tx) => tx.send_timeout(f, wait),
            // Nobody would see it: as a channel without a receiver.
            Sink::Topic(tx) if tx.subscriber_count() == 0 => Err(S::Disconnected),
            Sink::Topic(tx) if wait.is_zero() => match tx.try_send(f) {
                Ok(()) => Ok(()),
                Err(T::Full) => Err(S::Timeout),
                Err(T::Disconnected) => Err(S::Disconnected),
                Err(T::TooLarge { len, max }) => Err(S::TooLarge { len, max }),
            },
            Sink::Topic(tx) => tx.send_timeout(f, wait),
            _ => unreachable!("a frame for a typed channel"),
        };
        match r {
            Ok(()) => Put::Done,
            Err(S::Timeout) => Put::Full,
            Err(S::Disconnected) => Put::Disconnected,
            Err(S::TooLarge { .. }) => Put::TooLarge,
        }
    }

    /// Is a local receiver attached and alive? (A topic: a subscriber is counted.)
    pub fn is_connected(&self) -> bool {
        match self {
            Sink::Spsc(tx) => tx.is_connected(),
            Sink::Mpmc(tx) => tx.is_connected(),
            Sink::Frame(tx) => tx.is_connected(),
            Sink::Topic(tx) => tx.subscriber_count() > 0,
            Sink::TypedTopic(tx) => tx.subscriber_count() > 0,
        }
    }

    /// Wait at most `timeout` for a local receiver; `true` once one is attached.
    pub fn wait_for_peer(&self, timeout: Duration) -> bool {
        match self {
            Sink::Spsc(tx) => tx.wait_for_peer(timeout).is_ok(),
            Sink::Mpmc(tx) => tx.wait_for_peer(timeout).is_ok(),
            Sink::Frame(tx) => tx.wait_for_peer(timeout).is_ok(),
            Sink::Topic(tx) => tx.wait_for_subscribers(1, timeout).is_ok(),
            Sink::TypedTopic(tx) => tx.wait_for_subscribers(1, timeout).is_ok(),
        }
    }
}

fn try_typed(
    r: Result<usize, TrySendError<()>>,
    values: &[u8],
    size: usize,
) -> Result<(), SendTimeoutError<usize>> {
    match r {
        Ok(n) if n * size == values.len() => Ok(()),
        Ok(n) => Err(SendTimeoutError::Timeout(n)),
        Err(TrySendError::Full(())) => Err(SendTimeoutError::Timeout(0)),
        Err(TrySendError::Disconnected(())) => Err(SendTimeoutError::Disconnected(0)),
    }
}

/// Counts the local peers of one role (the other side of the bridge) from the channel's
/// endpoint table: a peer that comes back takes a place again, and each place counts its
/// occupants, so attaches are counted exactly however short-lived the peer.
#[derive(Debug, Default)]
pub struct PeerWatch {
    base: Option<u64>,
}

impl PeerWatch {
    /// Look again: `(attached now, attaches since the first one this watch saw)`.
    pub fn look(
        &mut self,
        name: &str,
        backend: &Backend,
        role: inspect::Role,
    ) -> Option<(bool, u64)> {
        let ch = inspect::stat(name, backend).ok()?;
        let (mut total, mut alive) = (0u64, false);
        for e in ch.endpoints.iter().filter(|e| e.role == role) {
            total += e.attached as u64;
            alive |= e.alive && e.state == inspect::EndpointState::Attached;
        }
        if total == 0 {
            return Some((alive, 0));
        }
        let base = *self.base.get_or_insert(total);
        Some((alive, total - base))
    }
}

/// The producer position and capacity of channel `name` (see [`Sink::positional`]).
pub fn position(name: &str, backend: &Backend) -> Option<(u64, u64)> {
    let (_, ring) = stat(name, backend).ok()?;
    Some((ring.sent, ring.capacity))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_round_trip_and_fit() {
        let q = Fingerprint::Typed {
            kind: Typed::Spsc,
            element: Element::new("Quote", 24, 8),
        };
        assert_eq!(Fingerprint::parse(&q.wire()), Some(q.clone()));
        let m = Fingerprint::Typed {
            kind: Typed::Mpmc,
            element: Element::new("Quote", 24, 8),
        };
        assert!(q.fits(&m));
        let other = Fingerprint::Typed {
            kind: Typed::Spsc,
            element: Element::new("Quote", 24, 4),
        };
        assert!(!q.fits(&other));
        let f = Fingerprint::Frames { topic: false };
        assert_eq!(Fingerprint::parse("frame"), Some(f.clone()));
        assert!(f.fits(&Fingerprint::Frames { topic: true }));
        assert!(!f.fits(&q));
        let t = Fingerprint::Typed {
            kind: Typed::Topic,
            element: Element::new("Quote", 24, 8),
        };
        assert_eq!(t.wire(), "topic;Quote;24;8;le");
        assert_eq!(Fingerprint::parse(&t.wire()), Some(t.clone()));
        assert!(t.fits(&q) && q.fits(&t) && !t.fits(&f) && !f.fits(&t));
        assert!(Fingerprint::parse("spsc;Quote;24;8;xx").is_none());
        assert!(Fingerprint::parse("spsc;Quote;24").is_none());
    }
}
