//! Streaming throughput between processes, beside in-process reference points, in one run:
//! `cargo bench --bench throughput`.
//!
//! - `spsc_{8B,64B,1KiB}`: one producer process, one consumer process, shmchan SPSC;
//! - `lamport_{8B,64B,1KiB}`: the references for `spsc_{8B,64B,1KiB}`, a minimal Lamport ring
//!   of messages of that size between the same two processes (cached indices, the consumer
//!   reads `tail`; no stamps, no liveness);
//! - `stamped_{8B,64B,1KiB}`: the same minimal ring with shmchan's SPSC layout (a stamp word
//!   before each message, which the consumer polls): what the layout costs on its own;
//! - `paired_{spsc,lamport,stamped}_{8B,64B,1KiB}`: the three rings again, but all between
//!   one pair of processes, spawned once per size and told over control channels which ring
//!   to stream on. On the 2-vCPU VMs of this project one pair of processes streams at one of
//!   two speeds, two to five times apart, depending on where the host placed the vCPUs when
//!   the pair started: the separate pairs of `spsc_8B` and `lamport_8B` can each land in
//!   either, while these three share theirs. Compare ratios within a `paired_` size;
//! - `spsc_8B_batch64`: the same with `send_slice`/`recv_slice` of up to 64 messages;
//! - `mpmc_1x1`, `mpmc_2x2`: producer and consumer processes on one shmchan MPMC channel;
//! - `broadcast_overwrite_8B`, `broadcast_block_8B`: a broadcast publisher process and one
//!   subscriber process, Overwrite mode (the subscriber may lag) and Block mode (lossless),
//!   beside `spsc_8B`; `broadcast_block_8B_3_subscribers`: busy fan-out, three subscriber
//!   processes reading everything (time per message: until the slowest has it). On a 2-vCPU
//!   machine four busy processes share two CPUs, so this measures the scheduler as much as the
//!   ring: it needs at least 4 cores to say what fan-out costs;
//! - `broadcast/overwrite_send_8B_{0,8,64}_subscribers`: what a broadcast publisher's `send`
//!   costs in Overwrite mode with 0, 8 and 64 idle subscribers attached (flat: it never reads
//!   their cursors), beside `broadcast/spsc_send_8B_floor`, an SPSC `try_send` on one thread;
//! - `rtrb_8B`, `crossbeam_8B`, `shmchan_threads_8B`: two threads of one process (rtrb ring,
//!   crossbeam bounded channel, shmchan's in-process SPSC), the references the cross-process
//!   numbers are held against; `rtrb_8B_batch64` is rtrb with chunks of up to 64, the
//!   reference for the batched run; `vyukov_8B` is the textbook bounded MPMC queue (one CAS per
//!   message per side), the in-process reference for `mpmc_1x1`.
//!
//! - `copy/spsc_4KiB_send_recv`, `copy/mpmc_4KiB_send_recv`: `send` then `recv` of a 4 KiB
//!   value on one thread, beside `copy/memcpy_4KiB_x2`, two 4 KiB copies (in, out);
//! - `copy/shared_read_{256B,4KiB,64KiB,1MiB}` beside `copy/memcpy_{...}`: the crate's
//!   race-free copy out of shared memory (`src/ring/copy.rs`, compiled into this file) and
//!   glibc's `memcpy` of the same bytes between the same buffers, on one thread (source 8 bytes
//!   into a 64-byte line, where a slot's payload starts after its stamp; destination
//!   line-aligned); `copy/shared_write_{...}` beside `copy/memcpy_to_slot_{...}`, the copy into
//!   shared memory the other way round; `copy/{shared_read,memcpy}_4KiB_unaligned`, from offset
//!   3 to offset 5 of a line (a pipe read from the middle of a frame), and `_4KiB_skew8`, to a
//!   destination 8 bytes past the source modulo 4 KiB (glibc's `rep movsb` case);
//! - `bytes/frame_8B`, `bytes/frame_64KiB`: one producer process, one consumer process,
//!   shmchan frames (`send` copies each frame in; the consumer reads it in place, touching every
//!   cache line of a 64 KiB one); beside `bytes/memcpy_64KiB`, one thread copying 64 KiB, the
//!   floor of a copying path;
//! - `bytes/broadcast_frame_{8B,1KiB}` beside `bytes/frame_{8B,1KiB}`: a broadcast frame
//!   topic's publisher process and one subscriber process (Overwrite; frames copied out with
//!   `recv_into`, the topic's slots holding up to 8 B or 1 KiB), beside the SPSC frame channel
//!   of the same frames;
//! - `bytes/pipe_64MiB`, `bytes/os_pipe_64MiB`, `bytes/unix_socket_64MiB`: 64 MiB in 64 KiB
//!   writes from this process to a reader process, through a `shmchan::pipe`, a FIFO and a
//!   UNIX socket.
//!
//! All typed rings hold 4096 messages; frame rings and pipes hold 4 MiB. The parent process only coordinates: for each batch it tells
//! every producer (over a control channel) how many messages to send, each producer ends its
//! share with a marker, and the consumer that takes a marker acknowledges it; the batch time
//! runs from the first command to the last acknowledgement. Peers are spawned once per
//! benchmark.

// The reference rings live in this file's threads; the loom seam is for the crate's own code.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;

/// The crate's race-free copies between shared and private memory, compiled in from the
/// crate's source as they are (the module is private to the crate). It names its atomics
/// through `crate::sync`, the crate's loom seam; `sync` below gives it std's.
#[path = "../src/ring/copy.rs"]
#[allow(dead_code)] // the portable word copies are the fallback of other targets
mod copy;
/// What `copy.rs` takes from the crate's `sync` module.
mod sync {
    pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
}

use std::time::{Duration, Instant};

use common::{PEER, Peer, Quiet, say_ready};
use criterion::{Criterion, Throughput, criterion_group};
use shmchan::{Options, Pod, broadcast, frame, mpmc, pipe, spsc};

const CAP: usize = 4096;
const END: u64 = u64::MAX;
/// Messages per `send_slice`/`recv_slice` in the batch benchmarks.
const BATCH: usize = 64;
/// Bytes of a frame ring or pipe.
const RING_BYTES: usize = 4 << 20;
/// Bytes moved per iteration of the pipe benchmarks, and the size of each write.
const STREAM_BYTES: usize = 64 << 20;
const WRITE_BYTES: usize = 64 << 10;

fn main() {
    if let Ok(spec) = std::env::var(PEER) {
        peer(&spec);
        return;
    }
    let quiet = Quiet::start();
    benches();
    Criterion::default().configure_from_args().final_summary();
    quiet.report();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = throughput
}

fn throughput(c: &mut Criterion) {
    let mut g = c.benchmark_group("stream");
    g.throughput(Throughput::Elements(1));
    stream::<[u64; 1]>(&mut g, "spsc_8B", "spsc", 1, 1);
    lamport::<1>(&mut g, "lamport_8B");
    lamport::<1>(&mut g, "stamped_8B");
    stream::<[u64; 8]>(&mut g, "spsc_64B", "spsc", 1, 1);
    lamport::<8>(&mut g, "lamport_64B");
    lamport::<8>(&mut g, "stamped_64B");
    stream::<[u64; 128]>(&mut g, "spsc_1KiB", "spsc", 1, 1);
    lamport::<128>(&mut g, "lamport_1KiB");
    lamport::<128>(&mut g, "stamped_1KiB");
    paired::<1>(&mut g, "8B");
    paired::<8>(&mut g, "64B");
    paired::<128>(&mut g, "1KiB");
    stream::<[u64; 1]>(&mut g, "spsc_8B_batch64", "spsc-batch", 1, 1);
    stream::<[u64; 1]>(&mut g, "mpmc_1x1", "mpmc", 1, 1);
    stream::<[u64; 1]>(&mut g, "mpmc_2x2", "mpmc", 2, 2);
    broadcast_stream(&mut g, "broadcast_overwrite_8B", "overwrite", 1);
    broadcast_stream(&mut g, "broadcast_block_8B", "block", 1);
    broadcast_stream(&mut g, "broadcast_block_8B_3_subscribers", "block", 3);

    g.bench_function("rtrb_8B", |b| {
        b.iter_custom(|iters| {
            two_threads(
                rtrb::RingBuffer::<u64>::new(CAP),
                |mut tx| {
                    for i in 0..iters {
                        while tx.push(i).is_err() {
                            std::hint::spin_loop();
                        }
                    }
                },
                move |mut rx| {
                    let mut n = 0;
                    while n < iters {
                        if rx.pop().is_ok() {
                            n += 1;
                        } else {
                            std::hint::spin_loop();
                        }
                    }
                },
            )
        })
    });
    g.bench_function("rtrb_8B_batch64", |b| {
        b.iter_custom(|iters| {
            two_threads(
                rtrb::RingBuffer::<u64>::new(CAP),
                |mut tx| {
                    let mut i = 0;
                    while i < iters {
                        let k = tx.slots().min(BATCH).min((iters - i) as usize);
                        if k == 0 {
                            std::hint::spin_loop();
                            continue;
                        }
                        tx.write_chunk_uninit(k).unwrap().fill_from_iter(i..);
                        i += k as u64;
                    }
                },
                move |mut rx| {
                    let mut n = 0;
                    while n < iters {
                        let k = rx.slots().min(BATCH);
                        if k == 0 {
                            std::hint::spin_loop();
                            continue;
                        }
                        let chunk = rx.read_chunk(k).unwrap();
                        // Look at every message, as the shmchan consumers do (for the marker).
                        let (a, b) = chunk.as_slices();
                        std::hint::black_box(a.iter().chain(b).filter(|&&v| v == END).count());
                        chunk.commit_all();
                        n += k as u64;
                    }
                },
            )
        })
    });
    g.bench_function("shmchan_threads_8B", |b| {
        b.iter_custom(|iters| {
            two_threads(
                spsc::channel::<u64>(CAP).unwrap(),
                |tx| (0..iters).for_each(|i| tx.send(i).unwrap()),
                move |rx| (0..iters).for_each(|_| _ = rx.recv().unwrap()),
            )
        })
    });
    g.bench_function("vyukov_8B", |b| {
        b.iter_custom(|iters| {
            let q = std::sync::Arc::new(vyukov::Queue::new(CAP));
            two_threads(
                (q.clone(), q),
                |q| {
                    for i in 0..iters {
                        while !q.push(i) {
                            std::hint::spin_loop();
                        }
                    }
                },
                move |q| {
                    for _ in 0..iters {
                        while q.pop().is_none() {
                            std::hint::spin_loop();
                        }
                    }
                },
            )
        })
    });
    g.bench_function("crossbeam_8B", |b| {
        b.iter_custom(|iters| {
            two_threads(
                crossbeam_channel::bounded::<u64>(CAP),
                |tx| (0..iters).for_each(|i| tx.send(i).unwrap()),
                move |rx| (0..iters).for_each(|_| _ = rx.recv().unwrap()),
            )
        })
    });
    g.finish();

    // The copying path of a large payload on one thread: `send` + `recv` of 4 KiB through an
    // in-process ring of 4 (the slots stay in L1, as the copies' buffers do), beside two
    // `memcpy`s of 4 KiB (what a copy in and a copy out cost).
    let mut g = c.benchmark_group("copy");
    {
        let (tx, rx) = spsc::channel::<[u64; 512]>(4).unwrap();
        let mut msg = [0u64; 512];
        // The value is changed each time (so it is not a constant the compiler can rebuild)
        // and the result looked at through a reference: no copies beyond what a caller makes.
        g.bench_function("spsc_4KiB_send_recv", |b| {
            b.iter(|| {
                msg[0] = msg[0].wrapping_add(1);
                tx.send(msg).unwrap();
                let v = rx.recv().unwrap();
                std::hint::black_box(&v);
            })
        });
        let (tx, rx) = mpmc::channel::<[u64; 512]>(4).unwrap();
        g.bench_function("mpmc_4KiB_send_recv", |b| {
            b.iter(|| {
                msg[0] = msg[0].wrapping_add(1);
                tx.send(msg).unwrap();
                let v = rx.recv().unwrap();
                std::hint::black_box(&v);
            })
        });
        let src = vec![7u64; 512];
        let (mut mid, mut dst) = (vec![0u64; 512], vec![0u64; 512]);
        g.bench_function("memcpy_4KiB_x2", |b| {
            b.iter(|| {
                mid.copy_from_slice(std::hint::black_box(&src));
                std::hint::black_box(&mut mid);
                dst.copy_from_slice(std::hint::black_box(&mid));
                std::hint::black_box(&mut dst);
            })
        });
    }
    for (label, len) in [
        ("256B", 256),
        ("4KiB", 4 << 10),
        ("64KiB", 64 << 10),
        ("1MiB", 1 << 20),
    ] {
        g.throughput(Throughput::Bytes(len as u64));
        copies(&mut g, label, len, SLOT_OFFSET, 0);
    }
    g.throughput(Throughput::Bytes(4 << 10));
    copies(&mut g, "4KiB_unaligned", 4 << 10, 3, 5);
    skewed_copies(&mut g);
    g.finish();

    // What a broadcast publisher pays per message in Overwrite mode, with 1, 8 and 64
    // subscribers attached (idle, in this process): it never reads their cursors, so the
    // same (beside an SPSC `send` to a receiver that never reads, which fills, so is timed
    // with `try_send` and the ring drained in between).
    let mut g = c.benchmark_group("broadcast");
    g.throughput(Throughput::Elements(1));
    for subs in [0usize, 8, 64] {
        let name = format!("shmchan-tput-{}-bsend{subs}", std::process::id());
        let mut tx =
            broadcast::Publisher::<u64>::create(&name, &Options::new().capacity(CAP)).unwrap();
        let _idle: Vec<_> = (0..subs)
            .map(|_| broadcast::Subscriber::<u64>::open(&name, &Options::new()).unwrap())
            .collect();
        let mut i = 0u64;
        g.bench_function(format!("overwrite_send_8B_{subs}_subscribers"), |b| {
            b.iter(|| {
                i = i.wrapping_add(1);
                tx.send(i).unwrap();
            })
        });
    }
    {
        let (tx, rx) = spsc::channel::<u64>(CAP).unwrap();
        let mut i = 0u64;
        g.bench_function("spsc_send_8B_floor", |b| {
            b.iter(|| {
                i = i.wrapping_add(1);
                if tx.try_send(i).is_err() {
                    while rx.try_recv().is_ok() {}
                    tx.try_send(i).unwrap();
                }
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("bytes");
    g.throughput(Throughput::Elements(1));
    frames(&mut g, "frame_8B", 8);
    broadcast_frames(&mut g, "broadcast_frame_8B", 8);
    g.throughput(Throughput::Bytes(1024));
    frames(&mut g, "frame_1KiB", 1024);
    broadcast_frames(&mut g, "broadcast_frame_1KiB", 1024);
    g.throughput(Throughput::Bytes(WRITE_BYTES as u64));
    frames(&mut g, "frame_64KiB", WRITE_BYTES);
    let src = vec![7u8; WRITE_BYTES];
    let mut dst = vec![0u8; WRITE_BYTES];
    g.bench_function("memcpy_64KiB", |b| {
        b.iter(|| {
            dst.copy_from_slice(std::hint::black_box(&src));
            std::hint::black_box(&mut dst);
        })
    });
    g.sample_size(10);
    g.throughput(Throughput::Bytes(STREAM_BYTES as u64));
    for kind in ["pipe", "os_pipe", "unix_socket"] {
        byte_stream(&mut g, kind);
    }
    g.finish();
}

/// Where a typed slot's payload starts in a 64-byte line: after the slot's 8-byte stamp.
const SLOT_OFFSET: usize = 8;

/// A buffer of `len` bytes starting `offset` bytes into a 64-byte line.
struct Line {
    bytes: Vec<u8>,
    start: usize,
}

impl Line {
    fn new(len: usize, offset: usize) -> Line {
        let bytes = vec![7u8; len + 128];
        let start = bytes.as_ptr().align_offset(64) + offset;
        Line { bytes, start }
    }
    fn ptr(&mut self) -> *mut u8 {
        self.bytes[self.start..].as_mut_ptr()
    }
}

/// `copy/memcpy_{label}` and `copy/shared_read_{label}`, `len` bytes from a "shared" buffer
/// at `shared_at` in its line to a private one at `private_at`; `copy/memcpy_to_slot_{label}`
/// and `copy/shared_write_{label}`, the other way (these only when the shared side is
/// 8-aligned, as `copy_to_shared` asks). The `memcpy`s are glibc's (a call: the length is not
/// a constant), between the same buffers.
fn copies(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    label: &str,
    len: usize,
    shared_at: usize,
    private_at: usize,
) {
    use std::hint::black_box;
    let (mut shared, mut private) = (Line::new(len, shared_at), Line::new(len, private_at));
    let (s, p) = (shared.ptr(), private.ptr());
    g.bench_function(format!("memcpy_{label}"), |b| {
        // SAFETY: `len` bytes at each pointer, in two separate buffers.
        b.iter(|| unsafe { std::ptr::copy_nonoverlapping(black_box(s), black_box(p), len) })
    });
    g.bench_function(format!("shared_read_{label}"), |b| {
        // SAFETY: as above; only this thread touches either buffer.
        b.iter(|| unsafe { copy::copy_from_shared(black_box(p), black_box(s), len) })
    });
    if shared_at % 8 == 0 {
        g.bench_function(format!("memcpy_to_slot_{label}"), |b| {
            // SAFETY: as above.
            b.iter(|| unsafe { std::ptr::copy_nonoverlapping(black_box(p), black_box(s), len) })
        });
        g.bench_function(format!("shared_write_{label}"), |b| {
            // SAFETY: as above; `s` is 8-aligned and the buffer goes on past `len` rounded up.
            b.iter(|| unsafe { copy::copy_to_shared(black_box(s), black_box(p), len) })
        });
    }
}

/// `copy/memcpy_4KiB_skew8` and `copy/shared_read_4KiB_skew8`: 4 KiB to a destination 8
/// bytes past the source modulo 4 KiB (two pages and 8 bytes further on in one buffer), where
/// glibc's `memcpy` uses `rep movsb` on this AMD machine and `rep movsb` slows down many times
/// over (why `copy.rs` does not use it).
fn skewed_copies(g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    use std::hint::black_box;
    let len = 4 << 10;
    let mut buf = Line::new(len + 2 * 4096 + 8, SLOT_OFFSET);
    let s = buf.ptr();
    // SAFETY: `len` bytes from `s + 8200` lie in `buf` (it holds `len + 8200` from `s`).
    let p = unsafe { s.add(2 * 4096 + 8) };
    g.bench_function("memcpy_4KiB_skew8", |b| {
        // SAFETY: `len` bytes at each pointer, 8200 bytes apart: no overlap.
        b.iter(|| unsafe { std::ptr::copy_nonoverlapping(black_box(s), black_box(p), len) })
    });
    g.bench_function("shared_read_4KiB_skew8", |b| {
        // SAFETY: as above; only this thread touches the buffer.
        b.iter(|| unsafe { copy::copy_from_shared(black_box(p), black_box(s), len) })
    });
}

/// One producer process, one consumer process, frames of `len` bytes (an empty frame ends
/// each batch, and the consumer acknowledges it).
fn frames(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    label: &str,
    len: usize,
) {
    let base = format!("shmchan-tput-{}-{label}", std::process::id());
    let acks = mpmc::Receiver::<u64>::create(&format!("{base}-acks"), &Options::new().capacity(64))
        .unwrap();
    let consumer = Peer::spawn(&format!("frame-consumer - {base} {len}"));
    let ctl =
        spsc::Sender::<u64>::create(&format!("{base}-ctl0"), &Options::new().capacity(4)).unwrap();
    let producer = Peer::spawn(&format!("frame-producer - {base} {len}"));
    g.bench_function(label, |b| {
        b.iter_custom(|iters| {
            let t0 = Instant::now();
            ctl.send(iters).unwrap();
            acks.recv().unwrap();
            t0.elapsed()
        })
    });
    drop(ctl);
    drop((producer, consumer));
    drop(acks);
}

/// A broadcast frame publisher process and one subscriber process (Overwrite mode), frames of
/// `len` bytes copied out with `recv_into` (an empty frame ends each batch, and the subscriber
/// acknowledges it): beside `frames`, the SPSC frame channel of the same frames.
fn broadcast_frames(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    label: &str,
    len: usize,
) {
    let base = format!("shmchan-tput-{}-{label}", std::process::id());
    let acks = mpmc::Receiver::<u64>::create(&format!("{base}-acks"), &Options::new().capacity(64))
        .unwrap();
    let ctl =
        spsc::Sender::<u64>::create(&format!("{base}-ctl0"), &Options::new().capacity(4)).unwrap();
    let publisher = Peer::spawn(&format!("bcastf-publisher - {base} {len}"));
    let subscriber = Peer::spawn(&format!("bcastf-subscriber - {base} {len}"));
    g.bench_function(label, |b| {
        b.iter_custom(|iters| {
            let t0 = Instant::now();
            ctl.send(iters.max(1)).unwrap();
            acks.recv().unwrap();
            t0.elapsed()
        })
    });
    drop(ctl);
    drop((publisher, subscriber));
    drop(acks);
}

/// A broadcast frame publisher or subscriber (see `broadcast_frames`): a ring of 4096 frames
/// of up to `len` bytes.
fn broadcast_frame_peer(role: &str, base: &str, len: usize) {
    let data = format!("{base}-data");
    let opts = Options::new().capacity(CAP).max_frame(len);
    let acks = mpmc::Sender::<u64>::open(&format!("{base}-acks"), &Options::new()).unwrap();
    if role == "bcastf-publisher" {
        let ctl = spsc::Receiver::<u64>::open(&format!("{base}-ctl0"), &Options::new()).unwrap();
        let mut tx = broadcast::FramePublisher::create(&data, &opts).unwrap();
        let mut msg = vec![1u8; len];
        say_ready();
        tx.wait_for_subscribers(1, Duration::from_secs(10)).unwrap();
        while let Ok(n) = ctl.recv() {
            for i in 0..n {
                msg[..8].copy_from_slice(&i.to_le_bytes());
                tx.send(&msg).unwrap();
            }
            tx.send(&[]).unwrap();
        }
    } else {
        let mut rx = loop {
            match broadcast::FrameSubscriber::open(&data, &opts) {
                Ok(rx) => break rx,
                Err(_) => std::thread::sleep(Duration::from_millis(1)),
            }
        };
        let mut buf = Vec::with_capacity(len);
        say_ready();
        loop {
            match rx.recv_into(&mut buf) {
                Ok(0) => acks.send(0).unwrap(),
                Ok(_) | Err(broadcast::RecvError::Lagged(_)) => {}
                Err(_) => break,
            }
        }
    }
}

/// `STREAM_BYTES` per iteration from this process to a reader process that counts them and
/// acknowledges each `STREAM_BYTES`, through a shmchan pipe, a FIFO, or a UNIX socket.
fn byte_stream(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    kind: &str,
) {
    let base = format!("shmchan-tput-{}-{kind}", std::process::id());
    let acks = mpmc::Receiver::<u64>::create(&format!("{base}-acks"), &Options::new().capacity(64))
        .unwrap();
    let data = vec![1u8; WRITE_BYTES];
    let path = std::env::temp_dir().join(&base);
    // The shmchan pipe exists before its reader opens it; the FIFO too; the socket's reader
    // listens before this side connects.
    let shm = (kind == "pipe").then(|| {
        let opts = Options::new().capacity(RING_BYTES);
        pipe::Writer::create(&format!("{base}-data"), &opts).unwrap()
    });
    if kind == "os_pipe" {
        let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: plain mkfifo on a path we own.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }
    let reader = Peer::spawn(&format!("stream-reader {kind} {base} {}", path.display()));
    let mut out: Box<dyn std::io::Write> = match (kind, shm) {
        ("pipe", Some(w)) => Box::new(w),
        ("os_pipe", _) => Box::new(std::fs::OpenOptions::new().write(true).open(&path).unwrap()),
        _ => Box::new(std::os::unix::net::UnixStream::connect(&path).unwrap()),
    };
    let _ = std::fs::remove_file(&path);
    g.bench_function(format!("{kind}_64MiB"), |b| {
        b.iter_custom(|iters| {
            let t0 = Instant::now();
            for _ in 0..iters {
                for _ in 0..STREAM_BYTES / WRITE_BYTES {
                    out.write_all(&data).unwrap();
                }
                acks.recv().unwrap();
            }
            t0.elapsed()
        })
    });
    drop(out);
    drop(reader);
    drop(acks);
}

/// Time `produce(p)` on this thread against `consume(c)` on a second one, from before the
/// second thread starts until it has finished.
fn two_threads<P, C: Send + 'static>(
    (p, c): (P, C),
    produce: impl FnOnce(P),
    consume: impl FnOnce(C) + Send + 'static,
) -> Duration {
    let t0 = Instant::now();
    let consumer = std::thread::spawn(move || consume(c));
    produce(p);
    consumer.join().unwrap();
    t0.elapsed()
}

/// `producers` x `consumers` processes streaming `T` over a `kind` ("spsc" or "mpmc") channel.
fn stream<T: Pod>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    label: &str,
    kind: &str,
    producers: usize,
    consumers: usize,
) {
    let words = size_of::<T>() / 8;
    let base = format!("shmchan-tput-{}-{label}", std::process::id());
    // The data channel is created by the first consumer; acks come back on an MPMC channel.
    let acks = mpmc::Receiver::<u64>::create(&format!("{base}-acks"), &Options::new().capacity(64))
        .unwrap();
    let mut peers = Vec::new();
    peers.push(Peer::spawn(&format!(
        "consumer {kind} {base} {words} create"
    )));
    for _ in 1..consumers {
        peers.push(Peer::spawn(&format!("consumer {kind} {base} {words} open")));
    }
    let controls: Vec<_> = (0..producers)
        .map(|p| {
            let ctl =
                spsc::Sender::<u64>::create(&format!("{base}-ctl{p}"), &Options::new().capacity(4))
                    .unwrap();
            peers.push(Peer::spawn(&format!("producer {kind} {base} {words} {p}")));
            ctl
        })
        .collect();
    g.bench_function(label, |b| {
        b.iter_custom(|iters| {
            let share = iters.div_ceil(producers as u64).max(1);
            let t0 = Instant::now();
            for ctl in &controls {
                ctl.send(share).unwrap();
            }
            for _ in 0..producers {
                acks.recv().unwrap();
            }
            t0.elapsed()
        })
    });
    drop(controls); // producers stop, then consumers see Disconnected
    drop(peers);
    drop(acks);
}

/// A broadcast publisher process streaming 8-byte messages to `subscribers` subscriber
/// processes in Block mode (every subscriber gets every message), driven like `stream`: the
/// publisher creates the topic and waits for its subscribers; each acknowledges the end
/// marker, and a batch ends when all have.
fn broadcast_stream(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    label: &str,
    mode: &str,
    subscribers: usize,
) {
    let base = format!("shmchan-tput-{}-{label}", std::process::id());
    let acks = mpmc::Receiver::<u64>::create(&format!("{base}-acks"), &Options::new().capacity(64))
        .unwrap();
    let ctl =
        spsc::Sender::<u64>::create(&format!("{base}-ctl0"), &Options::new().capacity(4)).unwrap();
    let mut peers = vec![Peer::spawn(&format!(
        "bcast-publisher - {base} {subscribers} {mode}"
    ))];
    for _ in 0..subscribers {
        peers.push(Peer::spawn(&format!("bcast-subscriber - {base} 0 {mode}")));
    }
    g.bench_function(label, |b| {
        b.iter_custom(|iters| {
            let t0 = Instant::now();
            ctl.send(iters.max(1)).unwrap();
            for _ in 0..subscribers {
                acks.recv().unwrap();
            }
            t0.elapsed()
        })
    });
    drop(ctl); // the publisher stops, then the subscribers see Disconnected
    drop(peers);
    drop(acks);
}

/// A broadcast publisher or subscriber process (see `broadcast_stream`). In Overwrite mode the
/// subscriber may lag (it goes on with the oldest message still there); the end marker is the
/// last message of a batch, so it is always read.
fn broadcast_peer(role: &str, base: &str, n: usize, mode: &str) {
    let data = format!("{base}-data");
    let acks = mpmc::Sender::<u64>::open(&format!("{base}-acks"), &Options::new()).unwrap();
    let overflow = if mode == "block" {
        broadcast::Overflow::Block { evict_after: None }
    } else {
        broadcast::Overflow::Overwrite
    };
    let opts = Options::new().capacity(CAP).overflow(overflow);
    if role == "bcast-publisher" {
        let ctl = spsc::Receiver::<u64>::open(&format!("{base}-ctl0"), &Options::new()).unwrap();
        let mut tx = broadcast::Publisher::<u64>::create(&data, &opts).unwrap();
        say_ready();
        tx.wait_for_subscribers(n, Duration::from_secs(10)).unwrap();
        while let Ok(k) = ctl.recv() {
            for i in 0..k {
                tx.send(i).unwrap();
            }
            tx.send(END).unwrap();
        }
    } else {
        let mut rx = loop {
            match broadcast::Subscriber::<u64>::open(&data, &opts) {
                Ok(rx) => break rx,
                Err(_) => std::thread::sleep(Duration::from_millis(1)),
            }
        };
        say_ready();
        loop {
            match rx.recv() {
                Ok(END) => acks.send(0).unwrap(),
                Ok(_) | Err(broadcast::RecvError::Lagged(_)) => {}
                Err(_) => break,
            }
        }
    }
}

/// The reference `spsc_8B` is judged against: a minimal Lamport ring of `u64`s between two
/// processes over one shared mapping (each side caches the other's index and reads it only
/// when the ring looks full or empty; the consumer reads `tail`, the producer `head`), no
/// stamps, no liveness, no parking. Driven like `stream` (a control channel, an end marker,
/// an acknowledgement). A label starting `stamped_` runs the same minimal ring with shmchan's
/// stamped slots instead (`lamport_ring::Stamped`): what the layout costs on its own.
fn lamport<const W: usize>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    label: &str,
) {
    let base = format!("shmchan-tput-{}-{label}", std::process::id());
    let acks = mpmc::Receiver::<u64>::create(&format!("{base}-acks"), &Options::new().capacity(64))
        .unwrap();
    let path = create_ring_file(&format!("{base}-ring"), W);
    let kind = if label.starts_with("stamped_") {
        "stamped"
    } else {
        "lamport"
    };
    let consumer = Peer::spawn(&format!("lamport-consumer {kind} {base} {path} {W}"));
    let ctl =
        spsc::Sender::<u64>::create(&format!("{base}-ctl0"), &Options::new().capacity(4)).unwrap();
    let producer = Peer::spawn(&format!("lamport-producer {kind} {base} {path} {W}"));
    let _ = std::fs::remove_file(&path); // both peers have it mapped
    g.bench_function(label, |b| {
        b.iter_custom(|iters| {
            let t0 = Instant::now();
            ctl.send(iters).unwrap();
            acks.recv().unwrap();
            t0.elapsed()
        })
    });
    drop(ctl); // the producer sends a stop marker on its way out
    drop((producer, consumer));
    drop(acks);
}

/// Create `/dev/shm/{name}` for a minimal ring of `W`-word messages, sized for either kind
/// (the stamped one is the larger); returns its path.
fn create_ring_file(name: &str, words: usize) -> String {
    let path = format!("/dev/shm/{name}");
    let file = std::fs::File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .unwrap();
    file.set_len(lamport_ring::stamped_bytes(words) as u64)
        .unwrap();
    path
}

/// Map a ring file made by [`create_ring_file`], in a peer.
fn map_ring_file(path: &str) -> memmap2::MmapMut {
    let file = std::fs::File::options()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    // SAFETY: a file only the two peers map, used through atomics.
    unsafe { memmap2::MmapMut::map_mut(&file) }.unwrap()
}

/// The rings of `paired_*`, by the number the control channels carry.
const PAIRED: [&str; 3] = ["spsc", "lamport", "stamped"];

/// Streams of `W`-word messages over shmchan SPSC, the minimal Lamport ring and the stamped
/// ring, all three between the same consumer and producer processes (see the module docs):
/// for each batch the consumer is told which ring to read and the producer which ring to fill
/// and how much; the batch ends when the consumer acknowledges the end marker.
fn paired<const W: usize>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    size: &str,
) {
    let base = format!("shmchan-tput-{}-paired-{size}", std::process::id());
    let acks = mpmc::Receiver::<u64>::create(&format!("{base}-acks"), &Options::new().capacity(64))
        .unwrap();
    let files: Vec<_> = PAIRED[1..]
        .iter()
        .map(|kind| create_ring_file(&format!("{base}-{kind}"), W))
        .collect();
    let to_consumer =
        spsc::Sender::<u64>::create(&format!("{base}-ctlc"), &Options::new().capacity(4)).unwrap();
    let to_producer =
        spsc::Sender::<[u64; 2]>::create(&format!("{base}-ctlp"), &Options::new().capacity(4))
            .unwrap();
    let consumer = Peer::spawn(&format!("paired-consumer - {base} {W}"));
    let producer = Peer::spawn(&format!("paired-producer - {base} {W}"));
    for path in &files {
        let _ = std::fs::remove_file(path); // both peers have it mapped
    }
    for (kind, ring) in PAIRED.iter().enumerate() {
        g.bench_function(format!("paired_{ring}_{size}"), |b| {
            b.iter_custom(|iters| {
                let t0 = Instant::now();
                to_consumer.send(kind as u64).unwrap();
                to_producer.send([kind as u64, iters]).unwrap();
                acks.recv().unwrap();
                t0.elapsed()
            })
        });
    }
    drop((to_consumer, to_producer)); // both peers stop
    drop((producer, consumer));
    drop(acks);
}

/// A peer of [`paired`], for messages of `W` words. The loops are written out per ring, as
/// in [`run`] (keep them plain).
fn paired_peer<const W: usize>(role: &str, base: &str) {
    let (lamport_map, stamped_map) = (
        map_ring_file(&format!("/dev/shm/{base}-lamport")),
        map_ring_file(&format!("/dev/shm/{base}-stamped")),
    );
    let lamport = lamport_ring::Ring::<W>::new(&lamport_map);
    let stamped = lamport_ring::Stamped::<W>::new(&stamped_map);
    let data = format!("{base}-data");
    let opts = Options::new().capacity(CAP);
    let acks = mpmc::Sender::<u64>::open(&format!("{base}-acks"), &Options::new()).unwrap();
    if role == "paired-consumer" {
        let ctl = spsc::Receiver::<u64>::open(&format!("{base}-ctlc"), &Options::new()).unwrap();
        let rx = spsc::Receiver::<[u64; W]>::create(&data, &opts).unwrap();
        say_ready();
        while let Ok(kind) = ctl.recv() {
            match kind {
                0 => while rx.recv().unwrap()[0] != END {},
                1 => while lamport.pop() != END {},
                _ => while stamped.pop() != END {},
            }
            acks.send(0).unwrap();
        }
        return;
    }
    let ctl = spsc::Receiver::<[u64; 2]>::open(&format!("{base}-ctlp"), &Options::new()).unwrap();
    let tx = spsc::Sender::<[u64; W]>::open(&data, &opts).unwrap();
    let mut msg = [0u64; W];
    say_ready();
    while let Ok([kind, n]) = ctl.recv() {
        match kind {
            0 => {
                for i in 0..n {
                    msg[0] = i;
                    tx.send(msg).unwrap();
                }
                msg[0] = END;
                tx.send(msg).unwrap();
            }
            1 => {
                for i in 0..n {
                    lamport.push(i);
                }
                lamport.push(END);
            }
            _ => {
                for i in 0..n {
                    stamped.push(i);
                }
                stamped.push(END);
            }
        }
    }
}

/// A peer of [`lamport`], for messages of `W` words over a `kind` ring ("lamport" or
/// "stamped").
fn lamport_peer<const W: usize>(role: &str, kind: &str, base: &str, path: &str) {
    let map = map_ring_file(path);
    if kind == "stamped" {
        let ring = lamport_ring::Stamped::<W>::new(&map);
        return minimal_peer(role, base, || ring.pop(), |v| ring.push(v));
    }
    let ring = lamport_ring::Ring::<W>::new(&map);
    minimal_peer(role, base, || ring.pop(), |v| ring.push(v));
}

/// The loops of a [`lamport_peer`] over a ring's `pop` and `push`.
#[inline(always)]
fn minimal_peer(role: &str, base: &str, pop: impl Fn() -> u64, push: impl Fn(u64)) {
    let acks = mpmc::Sender::<u64>::open(&format!("{base}-acks"), &Options::new()).unwrap();
    if role == "lamport-consumer" {
        say_ready();
        loop {
            let v = pop();
            if v == END {
                acks.send(0).unwrap();
            } else if v == STOP {
                return;
            }
        }
    }
    let ctl = spsc::Receiver::<u64>::open(&format!("{base}-ctl0"), &Options::new()).unwrap();
    say_ready();
    while let Ok(n) = ctl.recv() {
        for i in 0..n {
            push(i);
        }
        push(END);
    }
    push(STOP);
}

/// Stops a `lamport` consumer.
const STOP: u64 = u64::MAX - 1;

/// The minimal Lamport ring of [`lamport`], over a mapping (shared with the instruction
/// counts of `benches/instructions.rs`).
#[path = "common/lamport.rs"]
mod lamport_ring;

fn peer(spec: &str) {
    let p: Vec<&str> = spec.split(' ').collect();
    if p[0].starts_with("lamport-") {
        return match p[4] {
            "1" => lamport_peer::<1>(p[0], p[1], p[2], p[3]),
            "8" => lamport_peer::<8>(p[0], p[1], p[2], p[3]),
            "128" => lamport_peer::<128>(p[0], p[1], p[2], p[3]),
            w => panic!("no Lamport ring of {w} words"),
        };
    }
    if p[0].starts_with("paired-") {
        return match p[3] {
            "1" => paired_peer::<1>(p[0], p[2]),
            "8" => paired_peer::<8>(p[0], p[2]),
            "128" => paired_peer::<128>(p[0], p[2]),
            w => panic!("no paired rings of {w} words"),
        };
    }
    if p[0].starts_with("frame-") {
        return frame_peer(p[0], p[2], p[3].parse().unwrap());
    }
    if p[0] == "stream-reader" {
        return stream_reader(p[1], p[2], p[3]);
    }
    if p[0].starts_with("bcastf-") {
        return broadcast_frame_peer(p[0], p[2], p[3].parse().unwrap());
    }
    if p[0].starts_with("bcast-") {
        return broadcast_peer(p[0], p[2], p[3].parse().unwrap(), p[4]);
    }
    let (role, kind, base, words) = (p[0], p[1], p[2], p[3].parse::<usize>().unwrap());
    match words {
        1 => run::<[u64; 1]>(role, kind, base, &p[4..]),
        8 => run::<[u64; 8]>(role, kind, base, &p[4..]),
        128 => run::<[u64; 128]>(role, kind, base, &p[4..]),
        w => panic!("no payload of {w} words"),
    }
}

/// One peer process. The arms repeat their loops on purpose: folding them into helpers (a
/// `send` closure, a marker check over a slice, building each message afresh) measured
/// `spsc_8B` at 77-126 M msg/s instead of ~240 and batches at 176 instead of ~300, because the
/// peers' own loops then add stores and copies beside the ring's. Keep these loops plain.
fn run<T: Pod>(role: &str, kind: &str, base: &str, rest: &[&str]) {
    let data = format!("{base}-data");
    let opts = Options::new().capacity(CAP);
    let acks = mpmc::Sender::<u64>::open(&format!("{base}-acks"), &Options::new()).unwrap();
    let tag = |v: &T| bytemuck::cast_slice::<T, u64>(std::slice::from_ref(v))[0];
    match (role, kind) {
        ("consumer", "spsc") => {
            let rx = spsc::Receiver::<T>::create(&data, &opts).unwrap();
            say_ready();
            while let Ok(v) = rx.recv() {
                if tag(&v) == END {
                    acks.send(0).unwrap();
                }
            }
        }
        ("consumer", "spsc-batch") => {
            let rx = spsc::Receiver::<T>::create(&data, &opts).unwrap();
            say_ready();
            let mut buf = vec![T::zeroed(); BATCH];
            while let Ok(n) = rx.recv_slice(&mut buf) {
                for v in &buf[..n] {
                    if tag(v) == END {
                        acks.send(0).unwrap();
                    }
                }
            }
        }
        ("consumer", "mpmc") => {
            let rx = if rest[0] == "create" {
                mpmc::Receiver::<T>::create(&data, &opts).unwrap()
            } else {
                mpmc::Receiver::<T>::open(&data, &opts).unwrap()
            };
            say_ready();
            while let Ok(v) = rx.recv() {
                if tag(&v) == END {
                    acks.send(0).unwrap();
                }
            }
        }
        ("producer", kind) => {
            let ctl =
                spsc::Receiver::<u64>::open(&format!("{base}-ctl{}", rest[0]), &Options::new())
                    .unwrap();
            let mut msg = T::zeroed();
            let mut end = T::zeroed();
            bytemuck::cast_slice_mut::<T, u64>(std::slice::from_mut(&mut end))[0] = END;
            if kind == "spsc-batch" {
                let tx = spsc::Sender::<T>::open(&data, &opts).unwrap();
                let mut batch = [T::zeroed(); BATCH];
                say_ready();
                while let Ok(n) = ctl.recv() {
                    let mut i = 0;
                    while i < n {
                        let k = (n - i).min(BATCH as u64) as usize;
                        for (j, m) in batch[..k].iter_mut().enumerate() {
                            bytemuck::cast_slice_mut::<T, u64>(std::slice::from_mut(m))[0] =
                                i + j as u64;
                        }
                        tx.send_slice(&batch[..k]).unwrap();
                        i += k as u64;
                    }
                    tx.send(end).unwrap();
                }
            } else if kind == "spsc" {
                let tx = spsc::Sender::<T>::open(&data, &opts).unwrap();
                say_ready();
                while let Ok(n) = ctl.recv() {
                    for i in 0..n {
                        bytemuck::cast_slice_mut::<T, u64>(std::slice::from_mut(&mut msg))[0] = i;
                        tx.send(msg).unwrap();
                    }
                    tx.send(end).unwrap();
                }
            } else {
                let tx = mpmc::Sender::<T>::open(&data, &opts).unwrap();
                say_ready();
                while let Ok(n) = ctl.recv() {
                    for i in 0..n {
                        bytemuck::cast_slice_mut::<T, u64>(std::slice::from_mut(&mut msg))[0] = i;
                        tx.send(msg).unwrap();
                    }
                    tx.send(end).unwrap();
                }
            }
        }
        other => panic!("unknown peer {other:?}"),
    }
}

/// A frame producer or consumer (see `frames`).
fn frame_peer(role: &str, base: &str, len: usize) {
    let data = format!("{base}-data");
    let opts = Options::new().capacity(RING_BYTES);
    let acks = mpmc::Sender::<u64>::open(&format!("{base}-acks"), &Options::new()).unwrap();
    if role == "frame-consumer" {
        let mut rx = frame::Receiver::create(&data, &opts).unwrap();
        say_ready();
        loop {
            let Ok(f) = rx.recv() else { break };
            if f.is_empty() {
                acks.send(0).unwrap();
            } else if len > 8 {
                // Read in place, one byte of every cache line: all of the frame crosses to
                // this core, as a copy would bring it, without the second copy.
                let sum: u64 = f.iter().step_by(64).map(|&b| u64::from(b)).sum();
                std::hint::black_box(sum);
            }
        }
    } else {
        let ctl = spsc::Receiver::<u64>::open(&format!("{base}-ctl0"), &Options::new()).unwrap();
        let mut tx = frame::Sender::open(&data, &opts).unwrap();
        let mut msg = vec![0u8; len];
        say_ready();
        while let Ok(n) = ctl.recv() {
            for i in 0..n {
                msg[..8].copy_from_slice(&i.to_le_bytes());
                tx.send(&msg).unwrap();
            }
            tx.send(&[]).unwrap();
        }
    }
}

/// Read `STREAM_BYTES` at a time from a shmchan pipe, a FIFO or a UNIX socket, acknowledging
/// each, until end of file.
fn stream_reader(kind: &str, base: &str, path: &str) {
    use std::io::Read;
    let acks = mpmc::Sender::<u64>::open(&format!("{base}-acks"), &Options::new()).unwrap();
    let mut input: Box<dyn Read> = match kind {
        "pipe" => {
            let r = pipe::Reader::open(&format!("{base}-data"), &Options::new()).unwrap();
            say_ready();
            Box::new(r)
        }
        "os_pipe" => {
            say_ready(); // the writer opens the FIFO's other end after this
            Box::new(std::fs::File::open(path).unwrap())
        }
        _ => {
            let listener = std::os::unix::net::UnixListener::bind(path).unwrap();
            say_ready();
            Box::new(listener.accept().unwrap().0)
        }
    };
    let mut buf = vec![0u8; WRITE_BYTES];
    let mut count = 0usize;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        count += n;
        while count >= STREAM_BYTES {
            count -= STREAM_BYTES;
            acks.send(0).unwrap();
        }
    }
}

/// The textbook bounded MPMC queue (Vyukov's, as in crossbeam's `ArrayQueue`): a CAS on the
/// shared position to claim, a Release store of the slot's stamp to publish. The in-process
/// reference for what one CAS per message per side costs on this machine.
mod vyukov {
    use crossbeam_utils::CachePadded;
    use std::sync::atomic::{AtomicU64, Ordering::*};

    pub struct Queue {
        slots: Box<[(AtomicU64, AtomicU64)]>,
        head: CachePadded<AtomicU64>,
        tail: CachePadded<AtomicU64>,
    }

    impl Queue {
        pub fn new(cap: usize) -> Queue {
            assert!(cap.is_power_of_two());
            let slots = (0..cap as u64)
                .map(|i| (AtomicU64::new(i), AtomicU64::new(0)))
                .collect();
            Queue {
                slots,
                head: CachePadded::new(AtomicU64::new(0)),
                tail: CachePadded::new(AtomicU64::new(0)),
            }
        }

        fn slot(&self, pos: u64) -> &(AtomicU64, AtomicU64) {
            &self.slots[pos as usize & (self.slots.len() - 1)]
        }

        pub fn push(&self, v: u64) -> bool {
            let mut t = self.tail.load(Relaxed);
            loop {
                let (stamp, val) = self.slot(t);
                let s = stamp.load(Acquire);
                if s == t {
                    match self.tail.compare_exchange_weak(t, t + 1, Relaxed, Relaxed) {
                        Ok(_) => {
                            val.store(v, Relaxed);
                            stamp.store(t + 1, Release);
                            return true;
                        }
                        Err(x) => t = x,
                    }
                } else if s.wrapping_add(self.slots.len() as u64) == t + 1 {
                    return false; // full
                } else {
                    t = self.tail.load(Relaxed);
                }
            }
        }

        pub fn pop(&self) -> Option<u64> {
            let mut h = self.head.load(Relaxed);
            loop {
                let (stamp, val) = self.slot(h);
                let s = stamp.load(Acquire);
                if s == h + 1 {
                    match self.head.compare_exchange_weak(h, h + 1, Relaxed, Relaxed) {
                        Ok(_) => {
                            let v = val.load(Relaxed);
                            stamp.store(h + self.slots.len() as u64, Release);
                            return Some(v);
                        }
                        Err(x) => h = x,
                    }
                } else if s == h {
                    return None; // empty
                } else {
                    h = self.head.load(Relaxed);
                }
            }
        }
    }
}
