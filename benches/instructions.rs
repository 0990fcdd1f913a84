//! The hot paths' instruction counts, for `.ci/instructions` (callgrind): not a timing
//! benchmark. `cargo bench --no-run --bench instructions` builds it; run it as
//! `instructions <case> <iterations>` (or with `SHMCHAN_INSTR_CASE` and `SHMCHAN_INSTR_N`).
//!
//! Each case creates a real named POSIX channel (`/dev/shm`), attaches both ends in this
//! process, and runs `<iterations>` rounds of one send and one receive on this one thread
//! inside an `#[inline(never)]` function named `shmchan_measured_loop_<case>`, which is what
//! callgrind's `--toggle-collect` counts. Running two iteration counts and taking the
//! difference leaves the cost of one round; the channel's setup and teardown fall outside the
//! function. The last handle dropped removes the channel's name.
//!
//! Cases:
//! - `spsc_8B`: `spsc::Sender<u64>::send` then `spsc::Receiver<u64>::recv`;
//! - `spsc_8B_try`: the same with `try_send` and `try_recv`;
//! - `mpmc_8B`: `mpmc::Sender<u64>::send` then `mpmc::Receiver<u64>::recv`;
//! - `frame_64B`: `frame::Sender::send` of 64 bytes then `frame::Receiver::recv_into`;
//! - `broadcast_8B`: `broadcast::Publisher<u64>::send` then `broadcast::Subscriber<u64>::recv`
//!   (Overwrite mode, one subscriber);
//! - `untyped_spsc_8B`: `untyped::spsc::Sender::send` of one 8-byte element then
//!   `untyped::spsc::Receiver::recv` into an 8-byte buffer (what the Python bindings call);
//! - `lamport_8B`: the reference, a push and a pop of the minimal Lamport ring of
//!   `stream/lamport_8B` (`common/lamport.rs`) over an anonymous mapping;
//! - `stamped_8B`: the same minimal ring with shmchan's stamped slots (`stream/stamped_8B`).

use std::hint::black_box;
use std::process::ExitCode;

use shmchan::untyped::{self, Element};
use shmchan::{Options, broadcast, frame, mpmc, spsc};

#[path = "common/lamport.rs"]
mod lamport_ring;

const CASES: [&str; 8] = [
    "spsc_8B",
    "spsc_8B_try",
    "mpmc_8B",
    "frame_64B",
    "broadcast_8B",
    "untyped_spsc_8B",
    "lamport_8B",
    "stamped_8B",
];
/// Messages a typed ring holds (never filled: each round sends one and takes it back).
const CAP: usize = 1024;
/// Bytes a frame ring holds.
const FRAME_RING: usize = 64 << 10;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    // `cargo bench` runs every bench target with `--bench`: nothing to measure then.
    let first = args.next();
    if first.as_deref() == Some("--bench") {
        return ExitCode::SUCCESS;
    }
    let case = first.or_else(|| std::env::var("SHMCHAN_INSTR_CASE").ok());
    let n = args
        .next()
        .or_else(|| std::env::var("SHMCHAN_INSTR_N").ok())
        .and_then(|s| s.parse::<u64>().ok());
    let (Some(case), Some(n)) = (case, n) else {
        eprintln!(
            "usage: instructions <case> <iterations>   (cases: {})",
            CASES.join(", ")
        );
        return ExitCode::from(2);
    };
    let name = format!("shmchan-instr-{}-{case}", std::process::id());
    let opts = Options::new().capacity(CAP);
    let sum = match case.as_str() {
        "spsc_8B" => {
            let tx = spsc::Sender::<u64>::create(&name, &opts).expect("create");
            let rx = spsc::Receiver::<u64>::open(&name, &opts).expect("open");
            shmchan_measured_loop_spsc_8B(&tx, &rx, n)
        }
        "spsc_8B_try" => {
            let tx = spsc::Sender::<u64>::create(&name, &opts).expect("create");
            let rx = spsc::Receiver::<u64>::open(&name, &opts).expect("open");
            shmchan_measured_loop_spsc_8B_try(&tx, &rx, n)
        }
        "mpmc_8B" => {
            let tx = mpmc::Sender::<u64>::create(&name, &opts).expect("create");
            let rx = mpmc::Receiver::<u64>::open(&name, &opts).expect("open");
            shmchan_measured_loop_mpmc_8B(&tx, &rx, n)
        }
        "frame_64B" => {
            let opts = Options::new().capacity(FRAME_RING);
            let mut tx = frame::Sender::create(&name, &opts).expect("create");
            let mut rx = frame::Receiver::open(&name, &opts).expect("open");
            shmchan_measured_loop_frame_64B(&mut tx, &mut rx, n)
        }
        "broadcast_8B" => {
            let mut tx = broadcast::Publisher::<u64>::create(&name, &opts).expect("create");
            let mut rx = broadcast::Subscriber::<u64>::open(&name, &opts).expect("open");
            shmchan_measured_loop_broadcast_8B(&mut tx, &mut rx, n)
        }
        "untyped_spsc_8B" => {
            let e = Element::new("u64", 8, 8);
            let tx = untyped::spsc::Sender::create(&name, &e, &opts).expect("create");
            let rx = untyped::spsc::Receiver::open(&name, &e, &opts).expect("open");
            shmchan_measured_loop_untyped_spsc_8B(&tx, &rx, n)
        }
        "lamport_8B" => {
            let map = memmap2::MmapMut::map_anon(lamport_ring::bytes(1)).expect("mmap");
            // Two views of the ring, a producer's and a consumer's: each caches its own index.
            let (tx, rx) = (
                lamport_ring::Ring::<1>::new(&map),
                lamport_ring::Ring::<1>::new(&map),
            );
            shmchan_measured_loop_lamport_8B(&tx, &rx, n)
        }
        "stamped_8B" => {
            let map = memmap2::MmapMut::map_anon(lamport_ring::stamped_bytes(1)).expect("mmap");
            let (tx, rx) = (
                lamport_ring::Stamped::<1>::new(&map),
                lamport_ring::Stamped::<1>::new(&map),
            );
            shmchan_measured_loop_stamped_8B(&tx, &rx, n)
        }
        _ => {
            eprintln!("unknown case {case:?} (cases: {})", CASES.join(", "));
            return ExitCode::from(2);
        }
    };
    // Every value came back, in order: the loop measured what it claims to.
    let want = n.wrapping_mul(n.wrapping_sub(1)) / 2;
    if case != "frame_64B" && sum != want {
        eprintln!("{case}: received values sum to {sum}, expected {want}");
        return ExitCode::FAILURE;
    }
    println!("{case} {n} ok");
    ExitCode::SUCCESS
}

#[inline(never)]
#[allow(non_snake_case)]
fn shmchan_measured_loop_spsc_8B(tx: &spsc::Sender<u64>, rx: &spsc::Receiver<u64>, n: u64) -> u64 {
    let mut sum = 0u64;
    for i in 0..n {
        tx.send(black_box(i)).expect("send");
        sum = sum.wrapping_add(black_box(rx.recv().expect("recv")));
    }
    sum
}

#[inline(never)]
#[allow(non_snake_case)]
fn shmchan_measured_loop_spsc_8B_try(
    tx: &spsc::Sender<u64>,
    rx: &spsc::Receiver<u64>,
    n: u64,
) -> u64 {
    let mut sum = 0u64;
    for i in 0..n {
        tx.try_send(black_box(i)).expect("try_send");
        sum = sum.wrapping_add(black_box(rx.try_recv().expect("try_recv")));
    }
    sum
}

#[inline(never)]
#[allow(non_snake_case)]
fn shmchan_measured_loop_mpmc_8B(tx: &mpmc::Sender<u64>, rx: &mpmc::Receiver<u64>, n: u64) -> u64 {
    let mut sum = 0u64;
    for i in 0..n {
        tx.send(black_box(i)).expect("send");
        sum = sum.wrapping_add(black_box(rx.recv().expect("recv")));
    }
    sum
}

#[inline(never)]
#[allow(non_snake_case)]
fn shmchan_measured_loop_frame_64B(
    tx: &mut frame::Sender,
    rx: &mut frame::Receiver,
    n: u64,
) -> u64 {
    let msg = [0x5au8; 64];
    let mut buf = Vec::with_capacity(64);
    let mut bytes = 0u64;
    for _ in 0..n {
        tx.send(black_box(&msg)).expect("send");
        let len = rx.recv_into(black_box(&mut buf)).expect("recv_into");
        bytes = bytes.wrapping_add(black_box(len) as u64);
    }
    assert_eq!(bytes, n.wrapping_mul(64), "frame lengths");
    bytes
}

#[inline(never)]
#[allow(non_snake_case)]
fn shmchan_measured_loop_broadcast_8B(
    tx: &mut broadcast::Publisher<u64>,
    rx: &mut broadcast::Subscriber<u64>,
    n: u64,
) -> u64 {
    let mut sum = 0u64;
    for i in 0..n {
        tx.send(black_box(i)).expect("send");
        sum = sum.wrapping_add(black_box(rx.recv().expect("recv")));
    }
    sum
}

#[inline(never)]
#[allow(non_snake_case)]
fn shmchan_measured_loop_untyped_spsc_8B(
    tx: &untyped::spsc::Sender,
    rx: &untyped::spsc::Receiver,
    n: u64,
) -> u64 {
    let mut sum = 0u64;
    let mut buf = [0u8; 8];
    for i in 0..n {
        tx.send(black_box(&i.to_ne_bytes())).expect("send");
        rx.recv(black_box(&mut buf)).expect("recv");
        sum = sum.wrapping_add(u64::from_ne_bytes(buf));
    }
    sum
}

#[inline(never)]
#[allow(non_snake_case)]
fn shmchan_measured_loop_lamport_8B(
    tx: &lamport_ring::Ring<'_, 1>,
    rx: &lamport_ring::Ring<'_, 1>,
    n: u64,
) -> u64 {
    minimal_rounds(|v| tx.push(v), || rx.pop(), n)
}

#[inline(never)]
#[allow(non_snake_case)]
fn shmchan_measured_loop_stamped_8B(
    tx: &lamport_ring::Stamped<'_, 1>,
    rx: &lamport_ring::Stamped<'_, 1>,
    n: u64,
) -> u64 {
    minimal_rounds(|v| tx.push(v), || rx.pop(), n)
}

/// The rounds of a reference ring's measured loop (inlined into it, so callgrind counts them
/// under the loop's own name).
#[inline(always)]
fn minimal_rounds(push: impl Fn(u64), pop: impl Fn() -> u64, n: u64) -> u64 {
    let mut sum = 0u64;
    for i in 0..n {
        push(black_box(i));
        sum = sum.wrapping_add(black_box(pop()));
    }
    sum
}
