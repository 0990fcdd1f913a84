//! An `out` route: the bridge is the local channel's receiver and publishes what it takes on
//! the route's key.
//!
//! Messages go in batches: what the ring holds when the bridge looks (up to 8192 messages or
//! 60 KiB) becomes one Zenoh message, numbered by the sequence number of its first message, so
//! a backlog costs one `put` per batch while a lone message still goes at once.
//!
//! Lossless: the bridge takes from the ring only as far as the in route's credit allows
//! (`win_msgs`/`win_bytes` past what it acknowledged), keeps what it sent until acknowledged,
//! and sends it again when the in route restarts (from exactly where its predecessor stopped
//! writing: see [`Out::resume_point`]) or asks after a jump. With no credit it stops taking, so
//! the ring fills and the local producer sees `Full`. Lossy: it takes whatever is there while
//! some in route is heard from, and forgets it once published (Zenoh may drop under
//! congestion: the in route counts those as gaps).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use shmchan::Options;
use zenoh::qos::CongestionControl;
use zenoh::sample::Locality;
use zenoh::{Session, Wait};

use crate::adaptive::{self, Gaps};
use crate::hops;
use crate::local::{Source, Take};
use crate::stats::{Counters, Route};
use crate::wire::{self, Credit};

const MAX_BATCH_MSGS: usize = 8192;
const MAX_BATCH_BYTES: usize = 60 * 1024;
/// The remote side is taken as gone after this long without a word from it.
pub const PRESENCE: Duration = Duration::from_secs(3);
const HELLO_EVERY: Duration = Duration::from_millis(250);
/// How long one wait (for the ring, or for credit) lasts before the loop looks around again.
const TICK: Duration = Duration::from_millis(20);

/// What an `out` route needs.
pub struct OutRoute {
    pub name: String,
    pub key: String,
    pub lossless: bool,
    pub opts: Options,
    /// `--wait adaptive`: poll the ring across short gaps (see `adaptive.rs`).
    pub adaptive: bool,
    pub route: Arc<Route>,
}

/// Messages taken from the ring and published, kept until acknowledged (lossless).
struct Batch {
    seq: u64,
    count: u32,
    body: Vec<u8>,
}

/// The last acknowledgement: sequence number `seq` was the next to write when the in route's
/// ring was at position `pos` (of a ring of `cap`).
#[derive(Clone, Copy, Debug)]
struct Ack {
    seq: u64,
    pos: u64,
    cap: u64,
    positional: bool,
}

struct Out<'a> {
    c: &'a Counters,
    lossless: bool,
    epoch: u64,
    fp: String,
    size: Option<usize>,
    /// Sequence number of the next message taken from the ring.
    next_seq: u64,
    /// Sequence number of the next message to publish (below `next_seq` while resending).
    send_seq: u64,
    /// Everything up to here was written by the in route (lossless).
    acked: u64,
    buffer: VecDeque<Batch>,
    buffered_bytes: usize,
    /// The in route this out route follows (lossless), and when it was last heard.
    synced: Option<u64>,
    last_heard: Option<Instant>,
    last_ack: Option<Ack>,
    win_msgs: u64,
    win_bytes: u64,
    /// The next data message tells the in route to take it as is (we cannot go back further).
    resync: bool,
    msg: Vec<u8>,
}

pub fn random_epoch() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish().max(1)
}

impl OutRoute {
    /// Run until `stop`.
    pub fn run(self, session: &Session, stop: &AtomicBool) -> Result<(), String> {
        let c = &*self.route.counters;
        let mut said = false;
        let (mut src, fp) = loop {
            match Source::open(&self.name, &self.opts) {
                Ok(x) => break x,
                Err(e) => {
                    if !said {
                        eprintln!(
                            "shmchan-bridge: out {}: waiting for the channel: {e}",
                            self.name
                        );
                        said = true;
                    }
                    if stop.load(Relaxed) {
                        return Ok(());
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        };
        *self.route.fingerprint.lock().unwrap() = fp.wire();
        let publisher = session
            .declare_publisher(self.key.clone())
            .congestion_control(if self.lossless {
                CongestionControl::Block
            } else {
                CongestionControl::Drop
            })
            .allowed_destination(Locality::Remote)
            .wait()
            .map_err(|e| format!("declare publisher {}: {e}", self.key))?;
        let (tx, credits) = mpsc::channel::<Credit>();
        let malformed = self.route.counters.clone();
        let _sub = session
            .declare_subscriber(format!("{}/@credit", self.key))
            .allowed_origin(Locality::Remote)
            .callback(move |s| match Credit::parse(&s.payload().to_bytes()) {
                Some(cr) => {
                    let _ = tx.send(cr);
                }
                None => Counters::add(&malformed.malformed, 1),
            })
            .wait()
            .map_err(|e| format!("declare subscriber {}/@credit: {e}", self.key))?;

        let mut out = Out {
            c,
            lossless: self.lossless,
            epoch: random_epoch(),
            fp: fp.wire(),
            size: fp.element_size(),
            next_seq: 0,
            send_seq: 0,
            acked: 0,
            buffer: VecDeque::new(),
            buffered_bytes: 0,
            synced: None,
            last_heard: None,
            last_ack: None,
            win_msgs: 0,
            win_bytes: 0,
            resync: false,
            msg: Vec::with_capacity(MAX_BATCH_BYTES + 256),
        };
        let put = |bytes: &[u8]| {
            publisher
                .put(bytes.to_vec())
                .wait()
                .map_err(|e| format!("put on {}: {e}", self.key))
        };
        let mut body = Vec::with_capacity(MAX_BATCH_BYTES * 2);
        let mut scratch = Vec::new();
        let mut last_hello: Option<Instant> = None;
        let mut local_gone = false;
        let mut watch = crate::local::PeerWatch::default();
        let mut last_watch: Option<Instant> = None;
        let mut gaps = Gaps::default();
        let fp_size = fp.element_size();
        while !stop.load(Relaxed) {
            if last_watch.is_none_or(|t| t.elapsed() >= HELLO_EVERY) {
                // Local senders that left and came back, counted from the endpoint table.
                let role = shmchan::inspect::Role::Sender;
                if let Some((alive, again)) = watch.look(&self.name, self.opts.get_backend(), role)
                {
                    c.local.store(alive, Relaxed);
                    c.local_reconnects.store(again, Relaxed);
                }
                last_watch = Some(Instant::now());
            }
            while let Ok(cr) = credits.try_recv() {
                out.apply(cr);
            }
            let now = Instant::now();
            let present = out.last_heard.is_some_and(|t| now - t < PRESENCE);
            c.remote.store(present, Relaxed);
            if last_hello.is_none_or(|t| now - t >= HELLO_EVERY) {
                out.hello();
                put(&out.msg)?;
                last_hello = Some(now);
            }
            if !present || (self.lossless && out.synced.is_none()) {
                if let Ok(cr) = credits.recv_timeout(TICK) {
                    out.apply(cr);
                }
                continue;
            }
            // Resend what the in route asked for again.
            if out.send_seq < out.next_seq {
                if let Some(n) = out.resend_one() {
                    put(&out.msg)?;
                    Counters::add(&c.resent, n);
                }
                continue;
            }
            let (room_msgs, room_bytes) = out.room();
            if room_msgs == 0 {
                if let Ok(cr) = credits.recv_timeout(TICK) {
                    out.apply(cr);
                }
                continue;
            }
            body.clear();
            let (max_msgs, max_bytes) = (
                room_msgs.min(MAX_BATCH_MSGS as u64) as usize,
                room_bytes.min(MAX_BATCH_BYTES as u64) as usize,
            );
            let mut took = Take::Empty;
            if self.adaptive {
                // Poll (a few dozen tries per call), yielding between polls, for the window.
                let t0 = Instant::now();
                let window = gaps.window(t0);
                loop {
                    took = src.take(&mut body, &mut scratch, max_msgs, max_bytes, Duration::ZERO);
                    if took != Take::Empty || t0.elapsed() >= window {
                        break;
                    }
                    adaptive::yield_cpu();
                }
            }
            if took == Take::Empty {
                took = src.take(&mut body, &mut scratch, max_msgs, max_bytes, TICK);
            }
            match took {
                Take::Got(n) => {
                    gaps.arrived(Instant::now());
                    if fp_size == Some(8) {
                        hops::stamp("out-take", &body);
                    }
                    local_gone = false;
                    out.data(n as u32, &body);
                    put(&out.msg)?;
                    Counters::add(&c.forwarded, n as u64);
                    out.keep(n as u32, &body);
                }
                Take::Empty => {}
                Take::Lagged(k) => Counters::add(&c.drops, k),
                Take::Disconnected => {
                    if !local_gone {
                        local_gone = true;
                        c.local.store(false, Relaxed);
                        last_watch = None;
                    }
                    // The library's handle reconnects: wait for the next local sender.
                    src.wait_for_peer(TICK * 5);
                }
            }
        }
        Ok(())
    }
}

impl Out<'_> {
    fn hello(&mut self) {
        let flags = if self.lossless { wire::F_LOSSLESS } else { 0 };
        wire::begin_data(
            &mut self.msg,
            wire::TYPE_HELLO,
            flags,
            self.epoch,
            self.synced.unwrap_or(0),
            self.next_seq,
            0,
            &self.fp,
        );
    }

    fn header(&mut self, seq: u64, count: u32) {
        let mut flags = if self.lossless { wire::F_LOSSLESS } else { 0 };
        if self.resync {
            flags |= wire::F_RESYNC;
            self.resync = false;
        }
        wire::begin_data(
            &mut self.msg,
            wire::TYPE_DATA,
            flags,
            self.epoch,
            self.synced.unwrap_or(0),
            seq,
            count,
            &self.fp,
        );
    }

    /// Encode a batch of `count` new messages.
    fn data(&mut self, count: u32, body: &[u8]) {
        self.header(self.next_seq, count);
        self.msg.extend_from_slice(body);
    }

    /// Account for a batch just published: keep it until acknowledged (lossless).
    fn keep(&mut self, count: u32, body: &[u8]) {
        if self.lossless {
            self.buffer.push_back(Batch {
                seq: self.next_seq,
                count,
                body: body.to_vec(),
            });
            self.buffered_bytes += body.len();
        }
        self.next_seq += count as u64;
        self.send_seq = self.next_seq;
    }

    /// How many more messages (and bytes) may be taken from the ring now.
    fn room(&self) -> (u64, u64) {
        if !self.lossless {
            return (u64::MAX, u64::MAX);
        }
        let msgs = (self.acked + self.win_msgs).saturating_sub(self.next_seq);
        let bytes = if self.buffer.is_empty() {
            u64::MAX // one message at least, however large
        } else {
            self.win_bytes.saturating_sub(self.buffered_bytes as u64)
        };
        if bytes == 0 { (0, 0) } else { (msgs, bytes) }
    }

    /// Encode the held messages from `send_seq` on (one batch, or its tail); returns how many.
    fn resend_one(&mut self) -> Option<u64> {
        let from = self.send_seq;
        let i = self
            .buffer
            .iter()
            .position(|b| from < b.seq + b.count as u64)?;
        let (seq, count) = (self.buffer[i].seq, self.buffer[i].count);
        let skip = (from - seq) as usize;
        let tail = skip_messages(&self.buffer[i].body, skip, self.size)?.to_vec();
        let n = count - skip as u32;
        self.header(from, n);
        self.msg.extend_from_slice(&tail);
        self.send_seq = from + n as u64;
        Some(n as u64)
    }

    /// Drop held messages below `seq`.
    fn release(&mut self, seq: u64) {
        while let Some(b) = self.buffer.front() {
            if b.seq + b.count as u64 <= seq {
                self.buffered_bytes -= b.body.len();
                self.buffer.pop_front();
            } else {
                break;
            }
        }
    }

    fn oldest_held(&self) -> u64 {
        self.buffer
            .front()
            .map_or(self.next_seq, |b| b.seq.max(self.acked))
    }

    /// Take a credit message into account.
    fn apply(&mut self, cr: Credit) {
        if cr.out_epoch != self.epoch {
            return; // for another out route on this key
        }
        let first = self.last_heard.is_none();
        let was_present = self.last_heard.is_some_and(|t| t.elapsed() < PRESENCE);
        self.last_heard = Some(Instant::now());
        if !self.lossless {
            if !first && (!was_present || self.synced != Some(cr.in_epoch)) {
                Counters::add(&self.c.reconnects, 1);
            }
            self.synced = Some(cr.in_epoch);
            return;
        }
        self.win_msgs = cr.win_msgs.max(1);
        self.win_bytes = cr.win_bytes.max(1);
        if self.synced == Some(cr.in_epoch) && !cr.has(wire::C_KNOWN) {
            return; // synced, and our first messages have not reached it yet
        }
        if self.synced != Some(cr.in_epoch) {
            // A new in route: go on from where the last one stopped writing.
            if self.synced.is_some() {
                Counters::add(&self.c.reconnects, 1);
            }
            let resume = self.resume_point(&cr);
            let oldest = self.oldest_held();
            let resume = resume.clamp(oldest, self.next_seq);
            self.release(resume);
            self.acked = resume;
            self.send_seq = resume;
            self.synced = Some(cr.in_epoch);
            self.last_ack = Some(Ack {
                seq: resume,
                pos: cr.ring_pos,
                cap: cr.ring_cap,
                positional: cr.has(wire::C_POSITIONAL),
            });
            return;
        }
        if cr.delivered > self.acked && cr.delivered <= self.next_seq {
            self.acked = cr.delivered;
            self.release(cr.delivered);
            self.last_ack = Some(Ack {
                seq: cr.delivered,
                pos: cr.ring_pos,
                cap: cr.ring_cap,
                positional: cr.has(wire::C_POSITIONAL),
            });
        }
        if cr.has(wire::C_NACK) && cr.delivered < self.send_seq {
            let oldest = self.oldest_held();
            if cr.delivered < oldest {
                // No longer held: lost for good. The in route takes the next one as is.
                Counters::add(&self.c.gaps, oldest - cr.delivered);
                self.resync = true;
            }
            self.send_seq = cr.delivered.max(oldest);
        }
    }

    /// Where a restarted in route should go on: what its predecessor wrote into the ring after
    /// its last acknowledgement is read off the ring's producer position, which the new one
    /// reports (`ring_pos`): SPSC, one message per position; frames, each frame's record.
    /// Without positions (MPMC, topics), from the last acknowledgement (at least once).
    fn resume_point(&self, cr: &Credit) -> u64 {
        let Some(ack) = self.last_ack else {
            return self.oldest_held(); // a first in route: everything held
        };
        if !(ack.positional && cr.has(wire::C_POSITIONAL))
            || ack.cap != cr.ring_cap
            || cr.ring_pos < ack.pos
        {
            return ack.seq;
        }
        let delta = cr.ring_pos - ack.pos;
        match self.size {
            Some(_) => ack.seq + delta,
            None => {
                // Frames: records of 16 + round16(len) bytes; one that does not fit before the
                // end of the ring is preceded by a padding record to the end (shmchan's frame
                // ring, layout version 1).
                let mut pos = ack.pos;
                let mut seq = ack.seq;
                for b in &self.buffer {
                    let Some(frames) = wire::frames(&b.body, b.count) else {
                        break;
                    };
                    for (k, f) in frames.iter().enumerate() {
                        if b.seq + (k as u64) < ack.seq {
                            continue;
                        }
                        let rec = 16 + (f.len() as u64).div_ceil(16) * 16;
                        let left = ack.cap - pos % ack.cap;
                        let start = if left < rec { pos + left } else { pos };
                        if start + rec > cr.ring_pos {
                            return seq;
                        }
                        pos = start + rec;
                        seq += 1;
                    }
                }
                seq
            }
        }
    }
}

/// The body of a batch without its first `skip` messages.
fn skip_messages(body: &[u8], skip: usize, size: Option<usize>) -> Option<&[u8]> {
    match size {
        Some(size) => body.get(skip * size..),
        None => {
            let mut rest = body;
            for _ in 0..skip {
                let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
                rest = rest.get(4 + len..)?;
            }
            Some(rest)
        }
    }
}
