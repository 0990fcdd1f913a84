//! Round-trip latency between two processes, beside the physical floor and the OS baselines,
//! in one run. `cargo bench --bench latency` (add a filter such as `-- floor` to run fewer).
//!
//! Every benchmark spawns its peer once (this binary re-executed with `SHMCHAN_BENCH_PEER`),
//! then times `iters` round trips with `iter_custom`:
//!
//! - `floor`: two raw atomics on separate cache lines of one shared page, busy-polled;
//! - `shmchan/default`, `shmchan/spin`, `shmchan/park`: two SPSC channels (ping, pong);
//! - `shmchan_mpmc`: the same through two MPMC queues (one producer and one consumer each);
//! - `futex`: the floor of the parking path, two futex words;
//! - `unix_socket`, `pipe`: the kernel baselines;
//! - `paired_{floor,spsc,mpmc,stamped,vyukov}`: the floor, `shmchan_default` and
//!   `shmchan_mpmc` again, a minimal ring with shmchan's stamped slots and the textbook
//!   bounded MPMC queue (Vyukov's, without crash repair; both in `common/lamport.rs`), all
//!   against ONE peer process (told over a control channel which to echo), so that
//!   their ratios do not depend on where two separately spawned peers happened to be placed
//!   (on a VM one pair of processes can run at one of two speeds);
//! - `shmchan_loan`: the 8-byte round trip through loans and references (`loan`/`commit`,
//!   `recv_ref`) on both sides, beside `shmchan_default`'s `send`/`recv`;
//! - `rtt_payload/shmchan_{64B,1KiB,4KiB}`: larger messages, copied in and out;
//!   `rtt_payload/shmchan_4KiB_in_place`: 4 KiB written and read in place through loans and
//!   references (a word in every cache line each way, as the copies touch every line);
//!   `rtt_payload/shmchan_4KiB_in_place_1_line`: the same message with only its first line
//!   touched (a header read or written in place, the rest left where it is).

// The floor and the futex baseline are raw atomics by definition; the loom seam is for the
// crate's own code.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;

/// The minimal stamped ring and the textbook MPMC queue of `paired_{stamped,vyukov}` (shared
/// with the throughput benchmarks).
#[path = "common/lamport.rs"]
mod lamport_ring;

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{PEER, Peer, Quiet, say_ready};
use criterion::{Criterion, criterion_group};
use shmchan::{Options, Pod, WaitStrategy, mpmc, spsc};

/// Written to the futex benchmark's ping word to stop the peer.
const STOP: u32 = u32::MAX;

fn main() {
    if let Ok(spec) = std::env::var(PEER) {
        peer(&spec);
        return;
    }
    let quiet = Quiet::start();
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--ratios") {
        let arg = |k: usize, default| {
            args.get(i + k)
                .and_then(|s| s.parse().ok())
                .unwrap_or(default)
        };
        ratios(arg(1, 10.0), Duration::from_secs_f64(arg(2, 20.0) / 1e3));
        quiet.report();
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
    quiet.report();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = rtt
}

type Group<'a> = criterion::BenchmarkGroup<'a, criterion::measurement::WallTime>;

/// Time `iters` calls of `round_trip` (each one whole round trip).
fn bench(g: &mut Group<'_>, label: &str, mut round_trip: impl FnMut(u64)) {
    g.bench_function(label, |b| {
        b.iter_custom(|iters| {
            let t0 = Instant::now();
            for i in 0..iters {
                round_trip(i);
            }
            t0.elapsed()
        })
    });
}

fn rtt(c: &mut Criterion) {
    let mut g = c.benchmark_group("rtt_8B");
    {
        let shm = SharedPage::new("floor");
        let peer = Peer::spawn(&format!("floor {}", shm.path));
        let (ping, pong) = (shm.word(0), shm.word(16));
        let mut seq = 0u64;
        bench(&mut g, "floor", |_| {
            seq += 1;
            floor_round_trip(ping, pong, seq);
        });
        ping.store(u64::MAX, Ordering::Release);
        drop(peer);
    }
    shmchan_rtt_in_place::<1>(&mut g, "shmchan_loan", 0, 1);
    for (label, wait) in [
        ("shmchan_default", WaitStrategy::default()),
        ("shmchan_spin", WaitStrategy::Spin),
        ("shmchan_park", WaitStrategy::Park),
    ] {
        shmchan_rtt::<u64>(&mut g, label, wait, 0);
    }
    mpmc_rtt(&mut g, "shmchan_mpmc");
    paired_rtt(&mut g);
    {
        let shm = SharedPage::new("futex");
        let peer = Peer::spawn(&format!("futex {}", shm.path));
        let (ping, pong) = (shm.word32(0), shm.word32(32));
        let mut seq = 0u32;
        bench(&mut g, "futex", |_| {
            seq = seq.wrapping_add(1) % STOP;
            ping.store(seq, Ordering::Release);
            futex_wake(ping);
            wait_for(pong, seq);
        });
        ping.store(STOP, Ordering::Release);
        futex_wake(ping);
        drop(peer);
    }
    {
        let path = std::env::temp_dir().join(format!("shmchan-bench-{}.sock", std::process::id()));
        let listener = UnixListener::bind(&path).unwrap();
        let peer = Peer::spawn(&format!("uds {}", path.display()));
        let (mut s, _) = listener.accept().unwrap();
        let _ = std::fs::remove_file(&path);
        let mut buf = [0u8; 8];
        bench(&mut g, "unix_socket", |i| {
            s.write_all(&i.to_le_bytes()).unwrap();
            s.read_exact(&mut buf).unwrap();
        });
        drop(s);
        drop(peer);
    }
    {
        let dir = std::env::temp_dir().join(format!("shmchan-bench-fifo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, z) = (dir.join("ping"), dir.join("pong"));
        for p in [&a, &z] {
            let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
            // SAFETY: plain mkfifo on a path we own.
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        }
        let peer = Peer::spawn(&format!("pipe {}", dir.display()));
        let mut tx = std::fs::OpenOptions::new().write(true).open(&a).unwrap();
        let mut rx = std::fs::File::open(&z).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let mut buf = [0u8; 8];
        bench(&mut g, "pipe", |i| {
            tx.write_all(&i.to_le_bytes()).unwrap();
            rx.read_exact(&mut buf).unwrap();
        });
        drop((tx, rx));
        drop(peer);
    }
    g.finish();

    let mut g = c.benchmark_group("rtt_payload");
    let wait = WaitStrategy::default();
    shmchan_rtt::<[u8; 64]>(&mut g, "shmchan_64B", wait, 64);
    shmchan_rtt::<[u8; 1024]>(&mut g, "shmchan_1KiB", wait, 1024);
    shmchan_rtt::<[u8; 4096]>(&mut g, "shmchan_4KiB", wait, 4096);
    shmchan_rtt_in_place::<512>(&mut g, "shmchan_4KiB_in_place", 4096, 64);
    shmchan_rtt_in_place::<512>(&mut g, "shmchan_4KiB_in_place_1_line", 4096, 1);
    g.finish();
}

/// Write one word in each of the first `lines` 64-byte lines of `m` (all of `m` for 8 bytes):
/// a message built in place touches every line it sends, as a copy in would.
#[inline(always)]
fn write_lines<const W: usize>(m: &mut [u64; W], seq: u64, lines: usize) {
    for i in (0..W).step_by(8).take(lines) {
        m[i] = seq;
    }
}

/// Read one word in each of the first `lines` 64-byte lines of `m`: every line crosses to this
/// core, as a copy out would bring it.
#[inline(always)]
fn read_lines<const W: usize>(m: &[u64; W], lines: usize) -> u64 {
    (0..W)
        .step_by(8)
        .take(lines)
        .map(|i| m[i])
        .fold(0, u64::wrapping_add)
}

/// Round trips written and read in place: a loan filled in place (a word in every cache
/// line) and committed, the answer read in place through a `Ref` (a word of every line); the
/// peer does the same (`echo_in_place`).
fn shmchan_rtt_in_place<const W: usize>(g: &mut Group<'_>, label: &str, size: usize, lines: usize)
where
    [u64; W]: Pod,
{
    let base = format!("shmchan-bench-{}-{}", std::process::id(), unique());
    let opts = Options::new().capacity(64);
    let mut ping = spsc::Sender::<[u64; W]>::create(&format!("{base}-ping"), &opts).unwrap();
    let mut pong = spsc::Receiver::<[u64; W]>::create(&format!("{base}-pong"), &opts).unwrap();
    let peer = Peer::spawn(&format!("shmchan-in-place {base} {size} {lines}"));
    bench(g, label, |i| {
        let mut slot = ping.loan().unwrap();
        write_lines(&mut slot, i, lines);
        slot.commit();
        let m = pong.recv_ref().unwrap();
        std::hint::black_box(read_lines(&m, lines));
    });
    drop((ping, pong));
    drop(peer);
}

/// The peer of [`shmchan_rtt_in_place`]: read each message in place, answer in place.
fn echo_in_place<const W: usize>(base: &str, lines: usize)
where
    [u64; W]: Pod,
{
    let opts = Options::new();
    let mut ping = spsc::Receiver::<[u64; W]>::open(&format!("{base}-ping"), &opts).unwrap();
    let mut pong = spsc::Sender::<[u64; W]>::open(&format!("{base}-pong"), &opts).unwrap();
    say_ready();
    while let Ok(m) = ping.recv_ref() {
        let seq = read_lines(&m, lines);
        drop(m);
        let Ok(mut slot) = pong.loan() else { return };
        write_lines(&mut slot, seq, lines);
        slot.commit();
    }
}

/// Round trips over two SPSC channels with a peer echoing `T` (`size` selects the peer's type).
fn shmchan_rtt<T: Pod>(g: &mut Group<'_>, label: &str, wait: WaitStrategy, size: usize) {
    let base = format!("shmchan-bench-{}-{}", std::process::id(), unique());
    let opts = Options::new().capacity(64).wait_strategy(wait);
    let ping = spsc::Sender::<T>::create(&format!("{base}-ping"), &opts).unwrap();
    let pong = spsc::Receiver::<T>::create(&format!("{base}-pong"), &opts).unwrap();
    let w = match wait {
        WaitStrategy::Spin => "spin",
        WaitStrategy::Park => "park",
        _ => "default",
    };
    let peer = Peer::spawn(&format!("shmchan {base} {w} {size}"));
    let msg = T::zeroed();
    bench(g, label, |_| {
        ping.send(msg).unwrap();
        pong.recv().unwrap();
    });
    drop((ping, pong)); // the peer sees Disconnected and exits
    drop(peer);
}

/// As `shmchan_rtt` (default wait), through two MPMC queues with one producer and one
/// consumer each: the reference for MPMC's round trip against SPSC's.
fn mpmc_rtt(g: &mut Group<'_>, label: &str) {
    let base = format!("shmchan-bench-{}-{}", std::process::id(), unique());
    let opts = Options::new().capacity(64);
    let ping = mpmc::Sender::<u64>::create(&format!("{base}-ping"), &opts).unwrap();
    let pong = mpmc::Receiver::<u64>::create(&format!("{base}-pong"), &opts).unwrap();
    let peer = Peer::spawn(&format!("mpmc {base}"));
    bench(g, label, |_| {
        ping.send(0).unwrap();
        pong.recv().unwrap();
    });
    drop((ping, pong)); // the peer sees Disconnected and exits
    drop(peer);
}

/// The kinds of [`Paired`], in the order benchmarked.
const PAIRED: [&str; 5] = ["floor", "spsc", "mpmc", "stamped", "vyukov"];

/// The floor's two words, two SPSC channels, two MPMC queues, two minimal stamped rings and two
/// textbook MPMC queues (the last four as pairs of files in /dev/shm), all echoed by the same
/// peer process ([`paired_peer`]): [`switch`](Paired::switch) tells it which to echo (the value
/// `u64::MAX` sent the current way sends it back to the control channel).
struct Paired {
    ctl: spsc::Sender<u64>,
    ping: spsc::Sender<u64>,
    pong: spsc::Receiver<u64>,
    mping: mpmc::Sender<u64>,
    mpong: mpmc::Receiver<u64>,
    sping: lamport_ring::Stamped<'static, 1>,
    spong: lamport_ring::Stamped<'static, 1>,
    vping: lamport_ring::Vyukov<'static>,
    vpong: lamport_ring::Vyukov<'static>,
    shm: SharedPage,
    _rings: [SharedFile; 4],
    seq: u64,
    kind: Option<usize>,
    peer: Option<Peer>, // last: dropped after the channels
}

impl Paired {
    fn new() -> Paired {
        let base = format!("shmchan-bench-{}-{}", std::process::id(), unique());
        let opts = Options::new().capacity(64);
        let shm = SharedPage::new(&format!("paired-{}", unique()));
        let bytes = [lamport_ring::stamped_bytes(1), lamport_ring::vyukov_bytes()];
        let rings = [0, 0, 1, 1].map(|k| SharedFile::new(&format!("ring-{}", unique()), bytes[k]));
        let (vping, vpong) = (
            lamport_ring::Vyukov::new(rings[2].map_leaked()),
            lamport_ring::Vyukov::new(rings[3].map_leaked()),
        );
        vping.init();
        vpong.init();
        let paths: Vec<&str> = rings.iter().map(|r| r.path.as_str()).collect();
        let spec = format!("paired {base} {} {}", shm.path, paths.join(" "));
        let mut p = Paired {
            ctl: spsc::Sender::create(&format!("{base}-ctl"), &opts).unwrap(),
            ping: spsc::Sender::create(&format!("{base}-ping"), &opts).unwrap(),
            pong: spsc::Receiver::create(&format!("{base}-pong"), &opts).unwrap(),
            mping: mpmc::Sender::create(&format!("{base}-mping"), &opts).unwrap(),
            mpong: mpmc::Receiver::create(&format!("{base}-mpong"), &opts).unwrap(),
            sping: lamport_ring::Stamped::new(rings[0].map_leaked()),
            spong: lamport_ring::Stamped::new(rings[1].map_leaked()),
            vping,
            vpong,
            _rings: rings,
            peer: None,
            seq: 0,
            kind: None,
            shm,
        };
        p.peer = Some(Peer::spawn(&spec));
        p
    }

    /// Have the peer echo `kind` (an index of [`PAIRED`]) from now on.
    fn switch(&mut self, kind: usize) {
        self.leave();
        self.ctl.send(kind as u64).unwrap();
        self.kind = Some(kind);
    }

    /// Send the peer back to the control channel.
    fn leave(&mut self) {
        match self.kind.take() {
            Some(0) => {
                // The peer answers `u64::MAX` before it leaves; the ping word is then cleared
                // for the floor's next turn.
                let (ping, pong) = (self.shm.word(0), self.shm.word(16));
                floor_round_trip(ping, pong, u64::MAX);
                ping.store(0, Ordering::Release);
            }
            Some(1) => self.ping.send(u64::MAX).unwrap(),
            Some(2) => self.mping.send(u64::MAX).unwrap(),
            Some(3) => self.sping.push(u64::MAX),
            Some(_) => self.vping.push(u64::MAX),
            None => {}
        }
    }

    /// One round trip of the current kind.
    #[inline(always)]
    fn round_trip(&mut self) {
        self.seq += 1;
        let seq = self.seq;
        match self.kind {
            Some(0) => floor_round_trip(self.shm.word(0), self.shm.word(16), seq),
            Some(1) => {
                self.ping.send(seq).unwrap();
                self.pong.recv().unwrap();
            }
            Some(2) => {
                self.mping.send(seq).unwrap();
                self.mpong.recv().unwrap();
            }
            Some(3) => {
                self.sping.push(seq);
                self.spong.pop();
            }
            _ => {
                self.vping.push(seq);
                self.vpong.pop();
            }
        }
    }
}

impl Drop for Paired {
    fn drop(&mut self) {
        // Send the peer back to the control channel; the fields then drop in order: the
        // control channel first (the peer sees it disconnected and exits), the peer last.
        self.leave();
    }
}

/// `rtt_8B/paired_{floor,spsc,mpmc}`: each kind timed by criterion in turn, all against one
/// peer.
fn paired_rtt(g: &mut Group<'_>) {
    let mut p = Paired::new();
    for (kind, name) in PAIRED.iter().enumerate() {
        p.switch(kind);
        bench(g, &format!("paired_{name}"), |_| p.round_trip());
    }
}

/// `cargo bench --bench latency -- --ratios [SECONDS [SLICE_MS]]`: the paired round trips
/// interleaved in slices of SLICE_MS (default 20: floor, SPSC, MPMC, floor, ...) for SECONDS
/// (default 10), printing each kind's median and the medians of the per-round ratios
/// SPSC/floor and MPMC/SPSC. A ratio is taken between neighbouring slices, so it holds even on
/// a VM where a pair of processes moves between two speeds every few seconds (a criterion
/// benchmark per kind measures each in whichever speed it met).
fn ratios(secs: f64, slice: Duration) {
    let mut p = Paired::new();
    let mut times: [Vec<f64>; PAIRED.len()] = Default::default();
    let t_end = Instant::now() + Duration::from_secs_f64(secs);
    // At least one round, however short SECONDS.
    while times[0].is_empty() || Instant::now() < t_end {
        for (kind, t) in times.iter_mut().enumerate() {
            p.switch(kind);
            for _ in 0..64 {
                p.round_trip(); // the peer's first messages of this kind
            }
            let (t0, mut n) = (Instant::now(), 0u64);
            while t0.elapsed() < slice {
                for _ in 0..256 {
                    p.round_trip();
                }
                n += 256;
            }
            t.push(t0.elapsed().as_nanos() as f64 / n as f64);
        }
    }
    drop(p);
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[v.len() / 4], v[v.len() / 2], v[v.len() * 3 / 4])
    };
    let rounds = times[0].len();
    for (name, t) in PAIRED.iter().zip(&times) {
        let (q1, m, q3) = median(t.clone());
        println!("rtt_8B/{name:6} median {m:7.1} ns a round trip (quartiles {q1:.1}-{q3:.1})");
    }
    // On a VM a pair of processes moves between two speeds (here about 110 and 400 ns a
    // round trip for the floor); the ratios are told apart by the round's floor, under twice
    // its fastest or not.
    let fastest = times[0].iter().copied().fold(f64::INFINITY, f64::min);
    for (mode, fast) in [("fast", true), ("slow", false)] {
        let picked: Vec<usize> = (0..rounds)
            .filter(|&i| (times[0][i] < 2.0 * fastest) == fast)
            .collect();
        if picked.is_empty() {
            continue;
        }
        for (a, b) in [(1, 0), (2, 1), (3, 0), (1, 3), (4, 3), (2, 4)] {
            let r: Vec<f64> = picked.iter().map(|&i| times[a][i] / times[b][i]).collect();
            let (q1, m, q3) = median(r);
            println!(
                "{}/{} ({mode} rounds, floor {} 2x its fastest): median of {} rounds' ratios \
                 {m:.2}x (quartiles {q1:.2}-{q3:.2})",
                PAIRED[a],
                PAIRED[b],
                if fast { "under" } else { "over" },
                picked.len()
            );
        }
    }
}

/// The peer of [`paired_rtt`].
fn paired_peer(base: &str, page: &str, rings: [&str; 4]) {
    let opts = Options::new();
    let ctl = spsc::Receiver::<u64>::open(&format!("{base}-ctl"), &opts).unwrap();
    let ping = spsc::Receiver::<u64>::open(&format!("{base}-ping"), &opts).unwrap();
    let pong = spsc::Sender::<u64>::open(&format!("{base}-pong"), &opts).unwrap();
    let mping = mpmc::Receiver::<u64>::open(&format!("{base}-mping"), &opts).unwrap();
    let mpong = mpmc::Sender::<u64>::open(&format!("{base}-mpong"), &opts).unwrap();
    let map = map_page(page, false);
    let (fping, fpong) = (atomic64(&map, 0), atomic64(&map, 16));
    let ring_maps = rings.map(|path| map_file(path, None));
    let sping = lamport_ring::Stamped::<1>::new(&ring_maps[0]);
    let spong = lamport_ring::Stamped::<1>::new(&ring_maps[1]);
    let vping = lamport_ring::Vyukov::new(&ring_maps[2]);
    let vpong = lamport_ring::Vyukov::new(&ring_maps[3]);
    say_ready();
    let mut last = 0;
    while let Ok(kind) = ctl.recv() {
        match kind {
            0 => echo_floor(fping, fpong, &mut last),
            1 => loop {
                let v = ping.recv().unwrap();
                if v == u64::MAX {
                    break;
                }
                pong.send(v).unwrap();
            },
            2 => loop {
                let v = mping.recv().unwrap();
                if v == u64::MAX {
                    break;
                }
                mpong.send(v).unwrap();
            },
            3 => loop {
                let v = sping.pop();
                if v == u64::MAX {
                    break;
                }
                spong.push(v);
            },
            _ => loop {
                let v = vping.pop();
                if v == u64::MAX {
                    break;
                }
                vpong.push(v);
            },
        }
    }
}

/// One round trip of the floor: store `seq` in `ping`, spin until the peer ([`echo_floor`])
/// answers it in `pong`. Release and Acquire, pairing with [`echo_floor`]'s Acquire load and
/// Release store: what a message's stamp costs, nothing more.
#[inline(always)]
fn floor_round_trip(ping: &AtomicU64, pong: &AtomicU64, seq: u64) {
    ping.store(seq, Ordering::Release);
    while pong.load(Ordering::Acquire) != seq {
        std::hint::spin_loop();
    }
}

/// The floor's echoing side: answer every new value of `ping` in `pong` (`last` is the last
/// one answered) until `u64::MAX`, which is answered too before it returns. The orderings
/// pair with [`floor_round_trip`]'s.
fn echo_floor(ping: &AtomicU64, pong: &AtomicU64, last: &mut u64) {
    loop {
        let v = ping.load(Ordering::Acquire);
        if v != *last {
            *last = v;
            pong.store(v, Ordering::Release);
        } else {
            std::hint::spin_loop();
        }
        if v == u64::MAX {
            return;
        }
    }
}

fn unique() -> u32 {
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// One page of a file in /dev/shm, mapped shared; the file is removed when dropped.
struct SharedPage {
    path: String,
    map: memmap2::MmapMut,
}

impl SharedPage {
    fn new(tag: &str) -> SharedPage {
        let path = format!("/dev/shm/shmchan-bench-{tag}-{}", std::process::id());
        SharedPage {
            map: map_page(&path, true),
            path,
        }
    }
    fn word(&self, line: usize) -> &AtomicU64 {
        atomic64(&self.map, line)
    }
    fn word32(&self, line: usize) -> &AtomicU32 {
        atomic32(&self.map, line)
    }
}

/// A file in /dev/shm for a minimal ring, removed when dropped; its mapping is leaked, so the
/// ring's view of it can live in the same struct as the file ([`Paired`]).
struct SharedFile {
    path: String,
    len: usize,
}

impl SharedFile {
    fn new(tag: &str, len: usize) -> SharedFile {
        let path = format!("/dev/shm/shmchan-bench-{tag}-{}", std::process::id());
        drop(map_file(&path, Some(len)));
        SharedFile { path, len }
    }

    /// A mapping of the file for the rest of the process (a few pages, once per benchmark).
    fn map_leaked(&self) -> &'static memmap2::MmapMut {
        let map = map_file(&self.path, None);
        assert_eq!(map.len(), self.len);
        Box::leak(Box::new(map))
    }
}

impl Drop for SharedFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for SharedPage {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn map_page(path: &str, create: bool) -> memmap2::MmapMut {
    map_file(path, create.then_some(4096))
}

/// Map the file at `path` shared, creating it `len` bytes long (zeroed) if `len` is given.
fn map_file(path: &str, len: Option<usize>) -> memmap2::MmapMut {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(len.is_some())
        .truncate(len.is_some())
        .open(path)
        .unwrap();
    if let Some(len) = len {
        f.set_len(len as u64).unwrap();
    }
    // SAFETY: a shared mapping of a file this benchmark owns; accessed only through atomics.
    unsafe { memmap2::MmapMut::map_mut(&f) }.unwrap()
}

/// The `AtomicU64` at 8-byte word `i` of the page (each benchmark uses words 128 bytes apart).
fn atomic64(map: &memmap2::MmapMut, i: usize) -> &AtomicU64 {
    assert!(i * 8 + 8 <= map.len());
    // SAFETY: in bounds, 8-byte aligned (page-aligned base), shared memory accessed only
    // atomically by both processes; lives as long as the mapping borrow.
    unsafe { &*map.as_ptr().add(i * 8).cast::<AtomicU64>() }
}

fn atomic32(map: &memmap2::MmapMut, i: usize) -> &AtomicU32 {
    assert!(i * 4 + 4 <= map.len());
    // SAFETY: as for `atomic64`, with 4-byte alignment.
    unsafe { &*map.as_ptr().add(i * 4).cast::<AtomicU32>() }
}

fn futex_wake(w: &AtomicU32) {
    // SAFETY: FUTEX_WAKE on a live, aligned word (shared: no FUTEX_PRIVATE_FLAG).
    unsafe { libc::syscall(libc::SYS_futex, w.as_ptr(), libc::FUTEX_WAKE, 1) };
}

/// Sleep on `w` until it holds `want` (the parking path, no spinning).
fn wait_for(w: &AtomicU32, want: u32) {
    loop {
        let cur = w.load(Ordering::Acquire);
        if cur == want {
            return;
        }
        // SAFETY: FUTEX_WAIT on a live, aligned word; returns at once if it changed.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                w.as_ptr(),
                libc::FUTEX_WAIT,
                cur,
                std::ptr::null::<libc::timespec>(),
            )
        };
    }
}

/// The echoing side of every benchmark.
fn peer(spec: &str) {
    let parts: Vec<&str> = spec.split(' ').collect();
    match parts[0] {
        "floor" => {
            let map = map_page(parts[1], false);
            say_ready();
            echo_floor(atomic64(&map, 0), atomic64(&map, 16), &mut 0);
        }
        "futex" => {
            let map = map_page(parts[1], false);
            let (ping, pong) = (atomic32(&map, 0), atomic32(&map, 32));
            say_ready();
            let mut seq = 0u32;
            loop {
                seq = seq.wrapping_add(1);
                loop {
                    let cur = ping.load(Ordering::Acquire);
                    if cur == seq {
                        break;
                    }
                    if cur == STOP {
                        return;
                    }
                    // SAFETY: as in `wait_for`.
                    unsafe {
                        libc::syscall(
                            libc::SYS_futex,
                            ping.as_ptr(),
                            libc::FUTEX_WAIT,
                            cur,
                            std::ptr::null::<libc::timespec>(),
                        )
                    };
                }
                pong.store(seq, Ordering::Release);
                futex_wake(pong);
            }
        }
        "uds" => {
            let mut s = UnixStream::connect(parts[1]).unwrap();
            say_ready();
            let mut buf = [0u8; 8];
            while s.read_exact(&mut buf).is_ok() {
                if s.write_all(&buf).is_err() {
                    return;
                }
            }
        }
        "pipe" => {
            say_ready();
            let dir = std::path::Path::new(parts[1]);
            let mut rx = std::fs::File::open(dir.join("ping")).unwrap();
            let mut tx = std::fs::OpenOptions::new()
                .write(true)
                .open(dir.join("pong"))
                .unwrap();
            let mut buf = [0u8; 8];
            while rx.read_exact(&mut buf).is_ok() {
                if tx.write_all(&buf).is_err() {
                    return;
                }
            }
        }
        "shmchan" => {
            let (base, size) = (parts[1], parts[3].parse::<usize>().unwrap());
            let wait = match parts[2] {
                "spin" => WaitStrategy::Spin,
                "park" => WaitStrategy::Park,
                _ => WaitStrategy::default(),
            };
            match size {
                0 => echo::<u64>(base, wait),
                64 => echo::<[u8; 64]>(base, wait),
                1024 => echo::<[u8; 1024]>(base, wait),
                4096 => echo::<[u8; 4096]>(base, wait),
                other => panic!("no payload of {other} bytes"),
            }
        }
        "mpmc" => {
            let ping = mpmc::Receiver::<u64>::open(&format!("{}-ping", parts[1]), &Options::new())
                .unwrap();
            let pong =
                mpmc::Sender::<u64>::open(&format!("{}-pong", parts[1]), &Options::new()).unwrap();
            say_ready();
            while let Ok(v) = ping.recv() {
                if pong.send(v).is_err() {
                    return;
                }
            }
        }
        "paired" => paired_peer(parts[1], parts[2], [parts[3], parts[4], parts[5], parts[6]]),
        "shmchan-in-place" => match (parts[2], parts[3].parse().unwrap()) {
            ("0", lines) => echo_in_place::<1>(parts[1], lines),
            ("4096", lines) => echo_in_place::<512>(parts[1], lines),
            (other, _) => panic!("no in-place payload of {other} bytes"),
        },
        other => panic!("unknown peer {other}"),
    }
}

fn echo<T: Pod>(base: &str, wait: WaitStrategy) {
    let opts = Options::new().wait_strategy(wait);
    let ping = spsc::Receiver::<T>::open(&format!("{base}-ping"), &opts).unwrap();
    let pong = spsc::Sender::<T>::open(&format!("{base}-pong"), &opts).unwrap();
    say_ready();
    while let Ok(v) = ping.recv() {
        if pong.send(v).is_err() {
            return;
        }
    }
}
