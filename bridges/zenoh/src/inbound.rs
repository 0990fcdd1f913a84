//! An `in` route: the bridge subscribes to the route's key and writes what arrives into the
//! local channel as its sender.
//!
//! Per out route (per epoch) it keeps the next sequence number it expects: a message below it
//! is a duplicate (not written), one above it a jump. Lossless, a jump is not written: the in
//! route asks for the missing messages again (a credit with `NACK`), and the out route sends
//! again from there; lossy, the jump is counted in `gaps` and the message written. Every
//! message's fingerprint is checked against the local channel's first: one that does not fit
//! is counted in `type_mismatches` and never written.
//!
//! Credit (lossless): the in route tells the out route what it has written (`delivered`, with
//! the ring's producer position at that point) and how far past it the out route may go (the
//! window). It writes with a blocking send, so a slow or absent local consumer stops the
//! credit, then the out route, then the remote producer (`Full`). The queue between Zenoh's
//! callback and this thread never blocks Zenoh: it holds at most a window.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shmchan::Options;
use zenoh::bytes::ZBytes;
use zenoh::qos::CongestionControl;
use zenoh::sample::Locality;
use zenoh::{Session, Wait};

use crate::hops;
use crate::local::{self, Fingerprint, Put, Sink};
use crate::out::{PRESENCE, random_epoch};
use crate::stats::{Counters, Route};
use crate::wire::{self, Credit};

const TICK: Duration = Duration::from_millis(20);
const HEARTBEAT: Duration = Duration::from_millis(100);
/// A sync credit or a repeated NACK at most this often per out route.
const REPEAT: Duration = Duration::from_millis(50);
/// An out route not heard from for this long is forgotten.
const FORGET: Duration = Duration::from_secs(60);
/// Lossy: Zenoh messages queued between the callback and the writer before they are dropped.
const LOSSY_QUEUE: usize = 4096;

/// What an `in` route needs.
pub struct InRoute {
    pub name: String,
    pub key: String,
    pub lossless: bool,
    pub opts: Options,
    /// Create the local channel (with the capacity in `opts`) for what the first message
    /// carries, if it does not exist.
    pub create: bool,
    /// The largest frame of a frame topic it creates.
    pub max_frame: usize,
    pub win_msgs: u64,
    pub win_bytes: u64,
    pub route: Arc<Route>,
}

/// What the in route knows of one out route (epoch).
struct Peer {
    /// The next sequence number to write; `None` before the first message is accepted.
    expected: Option<u64>,
    last_heard: Instant,
    /// `expected` when the last credit went out.
    credited: Option<u64>,
    last_credit: Option<Instant>,
    last_sync: Option<Instant>,
    nacked: Option<(u64, Instant)>,
    lossless: bool,
}

struct In {
    r: InRoute,
    c: Arc<Counters>,
    epoch: u64,
    sink: Option<(Sink, Fingerprint)>,
    /// Local receivers attaching again (`local_reconnects`).
    watch: local::PeerWatch,
    last_open_try: Option<Instant>,
    peers: HashMap<u64, Peer>,
    credit: zenoh::pubsub::Publisher<'static>,
    stop: &'static AtomicBool,
    /// A lossless message the callback could only write in part: the writer thread finishes
    /// it before anything else.
    pending: Option<ZBytes>,
    kick: Option<mpsc::Sender<Job>>,
}

impl InRoute {
    /// Run until `stop`.
    ///
    /// Zenoh's callback writes a message into the ring itself when nothing is queued before it
    /// and it can do so without waiting (no thread hop on the way: what keeps the latency
    /// down); otherwise it queues it for this thread, which waits for room (lossless). The
    /// callback never waits: not for room, not for the lock.
    pub fn run(self, session: &Session, stop: &'static AtomicBool) -> Result<(), String> {
        let credit = session
            .declare_publisher(format!("{}/@credit", self.key))
            .congestion_control(CongestionControl::Block)
            .express(true)
            .allowed_destination(Locality::Remote)
            .wait()
            .map_err(|e| format!("declare publisher {}/@credit: {e}", self.key))?;
        let key = self.key.clone();
        let lossless = self.lossless;
        let c = self.route.counters.clone();
        let mut me = In {
            c: c.clone(),
            r: self,
            epoch: random_epoch(),
            sink: None,
            watch: local::PeerWatch::default(),
            last_open_try: None,
            peers: HashMap::new(),
            credit,
            stop,
            pending: None,
            kick: None,
        };
        me.try_open();
        let (tx, queue) = mpsc::channel::<Job>();
        me.kick = Some(tx.clone());
        let shared = Arc::new(Shared {
            st: Mutex::new(me),
            queued: AtomicUsize::new(0),
        });
        let sh = shared.clone();
        let tx = Mutex::new(tx);
        let _sub = session
            .declare_subscriber(key.clone())
            .allowed_origin(Locality::Remote)
            .callback(move |s| {
                let payload = s.payload();
                // SYNC: `queued` counts messages handed to the thread and not yet handled
                // (decremented under the lock once handled): zero means none is before this one.
                if sh.queued.load(SeqCst) == 0 {
                    if let Ok(mut st) = sh.st.try_lock() {
                        if st.pending.is_none() {
                            st.handle(payload.clone(), Mode::Direct);
                            return;
                        }
                    }
                }
                if !lossless && sh.queued.load(SeqCst) >= LOSSY_QUEUE {
                    Counters::add(&c.drops, wire::peek_count(&payload.to_bytes()));
                    return;
                }
                sh.queued.fetch_add(1, SeqCst);
                let _ = tx.lock().unwrap().send(Job::Msg(payload.clone()));
            })
            .wait()
            .map_err(|e| format!("declare subscriber {key}: {e}"))?;

        let mut last_beat = Instant::now();
        while !stop.load(Relaxed) {
            {
                let mut st = shared.st.lock().unwrap();
                if let Some(p) = st.pending.take() {
                    st.handle(p, Mode::Resume);
                    continue;
                }
            }
            match queue.recv_timeout(TICK) {
                Ok(Job::Msg(p)) => {
                    let mut st = shared.st.lock().unwrap();
                    st.handle(p, Mode::Queued);
                    shared.queued.fetch_sub(1, SeqCst);
                }
                Ok(Job::Kick) => {}
                Err(_) => shared.st.lock().unwrap().flush_credits(false),
            }
            if last_beat.elapsed() >= HEARTBEAT {
                shared.st.lock().unwrap().heartbeat();
                last_beat = Instant::now();
            }
        }
        Ok(())
    }
}

/// What the writer thread is handed.
enum Job {
    Msg(ZBytes),
    /// A message was left part-written by the callback (`In::pending`).
    Kick,
}

/// How a message is handled.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// In Zenoh's callback: never wait; what does not fit (lossless) is left pending.
    Direct,
    /// By the writer thread, in order: wait for room (lossless).
    Queued,
    /// The rest of a pending message (its written part is not a duplicate).
    Resume,
}

struct Shared {
    st: Mutex<In>,
    queued: AtomicUsize,
}

impl In {
    fn try_open(&mut self) {
        if self.sink.is_some()
            || self
                .last_open_try
                .is_some_and(|t| t.elapsed() < PRESENCE / 15)
        {
            return;
        }
        let first = self.last_open_try.is_none();
        self.last_open_try = Some(Instant::now());
        match Sink::open(&self.r.name, &self.r.opts) {
            Ok((sink, fp)) => {
                *self.r.route.fingerprint.lock().unwrap() = fp.wire();
                self.c.local.store(sink.is_connected(), Relaxed);
                self.sink = Some((sink, fp));
            }
            Err(e) if first && !self.r.create => {
                eprintln!(
                    "shmchan-bridge: in {}: waiting for the channel: {e}",
                    self.r.name
                );
            }
            Err(_) => {}
        }
    }

    fn handle(&mut self, payload: ZBytes, mode: Mode) {
        let bytes = payload.to_bytes();
        let Some(d) = wire::parse_data(&bytes) else {
            Counters::add(&self.c.malformed, 1);
            return;
        };
        let Some(remote_fp) = Fingerprint::parse(d.fingerprint) else {
            Counters::add(&self.c.malformed, 1);
            return;
        };
        if self.sink.is_none() {
            self.try_open();
            if self.sink.is_none() && self.r.create {
                match Sink::create(
                    &self.r.name,
                    &remote_fp,
                    &self.r.opts,
                    self.r.lossless,
                    self.r.max_frame,
                ) {
                    Ok(sink) => {
                        *self.r.route.fingerprint.lock().unwrap() = remote_fp.wire();
                        self.sink = Some((sink, remote_fp.clone()));
                    }
                    Err(e) => {
                        eprintln!("shmchan-bridge: in {}: cannot create: {e}", self.r.name);
                        self.last_open_try = None;
                        self.try_open(); // someone else created it meanwhile?
                    }
                }
            }
            if self.sink.is_none() {
                return; // nowhere to write: no credit, the out route waits
            }
        }
        let now = Instant::now();
        let lossless = d.flags & wire::F_LOSSLESS != 0;
        let new = !self.peers.contains_key(&d.epoch);
        if new && !self.peers.is_empty() {
            Counters::add(&self.c.reconnects, 1); // a new out route (epoch) on the key
        }
        let peer = self.peers.entry(d.epoch).or_insert_with(|| Peer {
            expected: None,
            last_heard: now,
            credited: None,
            last_credit: None,
            last_sync: None,
            nacked: None,
            lossless,
        });
        if !new && now - peer.last_heard > PRESENCE {
            Counters::add(&self.c.reconnects, 1); // heard again after silence
        }
        peer.last_heard = now;
        peer.lossless = lossless;
        if lossless && d.in_epoch != self.epoch {
            // Not following us (yet): say where our ring is, so it can go on from there.
            if peer.last_sync.is_none_or(|t| now - t >= REPEAT) {
                peer.last_sync = Some(now);
                self.send_credit(d.epoch, false);
            }
            return;
        }
        if d.kind != wire::TYPE_DATA {
            return;
        }
        let local_fp = &self.sink.as_ref().expect("opened above").1;
        if !remote_fp.fits(local_fp) {
            Counters::add(&self.c.type_mismatches, d.count as u64);
            return;
        }
        let peer = self.peers.get_mut(&d.epoch).expect("inserted above");
        let expected = *peer.expected.get_or_insert(d.seq);
        if d.seq > expected {
            if lossless && d.flags & wire::F_RESYNC == 0 {
                // Ask again from `expected`; drop what comes until it does.
                if peer
                    .nacked
                    .is_none_or(|(at, t)| at != expected || now - t >= PRESENCE / 6)
                {
                    peer.nacked = Some((expected, now));
                    self.send_credit(d.epoch, true);
                }
                return;
            }
            Counters::add(&self.c.gaps, d.seq - expected);
            peer.expected = Some(d.seq);
        }
        let expected = peer.expected.expect("set above");
        let skip = expected - d.seq;
        if skip >= d.count as u64 {
            Counters::add(&self.c.duplicates, d.count as u64);
            return;
        }
        if mode != Mode::Resume {
            Counters::add(&self.c.duplicates, skip);
        }
        // Wait for room only if both ends are lossless; otherwise what does not fit is dropped.
        let keep = lossless && self.r.lossless;
        let wait = keep && mode != Mode::Direct;
        let written = self.write(&remote_fp, d.body, d.count, skip as usize, wait);
        let Some(written) = written else {
            Counters::add(&self.c.malformed, 1);
            return;
        };
        let rest = d.count as u64 - skip;
        Counters::add(&self.c.forwarded, written);
        if !keep {
            Counters::add(&self.c.drops, rest - written);
        } else if written < rest && mode == Mode::Direct {
            // Left for the writer thread, which waits for room.
            self.pending = Some(payload.clone());
            if let Some(k) = &self.kick {
                let _ = k.send(Job::Kick);
            }
        }
        let peer = self.peers.get_mut(&d.epoch).expect("inserted above");
        peer.expected = Some(if keep {
            expected + written
        } else {
            d.seq + d.count as u64
        });
        if lossless {
            let credited = peer.credited.unwrap_or(0);
            if peer.expected.unwrap_or(0) - credited >= self.r.win_msgs / 4 {
                self.send_credit(d.epoch, false);
            }
        }
    }

    /// Write messages `skip..count` of a body; returns how many went in (`None`: the body is
    /// malformed). With `wait`, waits for room as long as it takes (until stopped); without,
    /// writes what fits now.
    fn write(
        &mut self,
        fp: &Fingerprint,
        body: &[u8],
        count: u32,
        skip: usize,
        wait: bool,
    ) -> Option<u64> {
        let wait = if wait { TICK } else { Duration::ZERO };
        match fp.element_size() {
            Some(size) => {
                if body.len() != count as usize * size {
                    return None;
                }
                let stamp = size == 8 && skip == 0 && hops::on();
                if stamp {
                    hops::stamp("in-recv", body);
                }
                let mut values = &body[skip * size..];
                let mut written = 0;
                while !values.is_empty() {
                    let (n, r) = self.sink.as_mut()?.0.put_values(values, wait);
                    written += n as u64;
                    values = &values[n * size..];
                    if !self.after_put(r, wait) {
                        break;
                    }
                }
                if stamp {
                    hops::stamp("in-written", body);
                }
                Some(written)
            }
            None => {
                let frames = wire::frames(body, count)?;
                let mut written = 0;
                for f in &frames[skip..] {
                    loop {
                        let r = self.sink.as_mut()?.0.put_frame(f, wait);
                        if r == Put::Done {
                            written += 1;
                            break;
                        }
                        if r == Put::TooLarge {
                            eprintln!(
                                "shmchan-bridge: in {}: a frame of {} bytes is larger than the \
                                 channel takes: dropped",
                                self.r.name,
                                f.len()
                            );
                            Counters::add(&self.c.drops, 1);
                            written += 1; // passed over, so the out route is not held up
                            break;
                        }
                        if !self.after_put(r, wait) {
                            return Some(written);
                        }
                    }
                }
                Some(written)
            }
        }
    }

    /// After a write that did not take everything: should the caller try again? (Lossless:
    /// yes until stopped, after keeping credits flowing and waiting for a local receiver that
    /// went away; lossy: no.)
    fn after_put(&mut self, r: Put, wait: Duration) -> bool {
        match r {
            Put::Done => return true,
            Put::Full | Put::TooLarge => {}
            Put::Disconnected => {
                if self.c.local.swap(false, Relaxed) {
                    eprintln!(
                        "shmchan-bridge: in {}: the local receiver is gone",
                        self.r.name
                    );
                }
            }
        }
        if wait.is_zero() || self.stop.load(Relaxed) {
            return false;
        }
        self.heartbeat_if_due();
        if r == Put::Disconnected {
            let back = self
                .sink
                .as_ref()
                .is_some_and(|s| s.0.wait_for_peer(TICK * 5));
            if back {
                self.c.local.store(true, Relaxed);
            }
        }
        true
    }

    fn heartbeat_if_due(&mut self) {
        let due = self
            .peers
            .values()
            .filter_map(|p| p.last_credit)
            .min()
            .is_none_or(|t| t.elapsed() >= HEARTBEAT);
        if due {
            self.heartbeat();
        }
    }

    /// Credit every out route heard from recently; forget old ones.
    fn heartbeat(&mut self) {
        let now = Instant::now();
        self.peers.retain(|_, p| now - p.last_heard < FORGET);
        let present = self.peers.values().any(|p| now - p.last_heard < PRESENCE);
        self.c.remote.store(present, Relaxed);
        if let Some((sink, _)) = &self.sink {
            // A local receiver that left and one that attached since (the library's handle
            // goes on with the next one).
            let _ = sink;
            if let Some((connected, again)) = self.watch.look(
                &self.r.name,
                self.r.opts.get_backend(),
                shmchan::inspect::Role::Receiver,
            ) {
                self.c.local.store(connected, Relaxed);
                self.c.local_reconnects.store(again, Relaxed);
            }
        } else {
            self.try_open();
        }
        let epochs: Vec<u64> = self
            .peers
            .iter()
            .filter(|(_, p)| now - p.last_heard < PRESENCE)
            .map(|(e, _)| *e)
            .collect();
        for e in epochs {
            self.send_credit(e, false);
        }
    }

    /// Acknowledge what was written since the last credit (`all`: also the unchanged).
    fn flush_credits(&mut self, all: bool) {
        let due: Vec<u64> = self
            .peers
            .iter()
            .filter(|(_, p)| {
                p.lossless && (all || p.expected.is_some() && p.expected != p.credited)
            })
            .map(|(e, _)| *e)
            .collect();
        for e in due {
            self.send_credit(e, false);
        }
    }

    fn send_credit(&mut self, out_epoch: u64, nack: bool) {
        let Some((sink, _)) = &self.sink else {
            return;
        };
        let peer = self.peers.get_mut(&out_epoch).expect("a known out route");
        let mut flags = 0;
        if peer.expected.is_some() {
            flags |= wire::C_KNOWN;
        }
        if nack {
            flags |= wire::C_NACK;
        }
        let (mut pos, mut cap) = (0, 0);
        if sink.positional() {
            if let Some((p, c)) = local::position(&self.r.name, self.r.opts.get_backend()) {
                (pos, cap) = (p, c);
                flags |= wire::C_POSITIONAL;
            }
        }
        let cr = Credit {
            flags,
            out_epoch,
            in_epoch: self.epoch,
            delivered: peer.expected.unwrap_or(0),
            ring_pos: pos,
            ring_cap: cap,
            win_msgs: self.r.win_msgs,
            win_bytes: self.r.win_bytes,
        };
        peer.credited = peer.expected;
        peer.last_credit = Some(Instant::now());
        if let Err(e) = self.credit.put(cr.encode().to_vec()).wait() {
            eprintln!("shmchan-bridge: in {}: credit: {e}", self.r.name);
        }
    }
}
