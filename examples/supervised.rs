//! A producer that runs until Ctrl-C while consumers come and go: start consumers from other
//! shells, kill them (`kill -9`, Ctrl-C) and start them again at will. The channel is never
//! the thing that needs restarting: a consumer's place is taken by the next one, what is in
//! the ring waits for it, and a message a consumer was killed holding is delivered again.
//!
//! ```text
//! cargo run --release --example supervised -- produce jobs        # shell 1: runs until Ctrl-C
//! cargo run --release --example supervised -- consume jobs        # shells 2, 3, ...: kill and restart these
//! cargo run --release --example supervised -- produce jobs --spsc # one consumer at a time
//! ```
//!
//! Options: `--rate N` messages per second (default 20000), `--spsc` (one consumer at a time
//! instead of an MPMC work queue of up to 8), `--backend posix|sysv|file:DIR`.
//!
//! Each consumer acknowledges every message it takes (its pid and the message's number, on a
//! second channel, `NAME-acks`) before it frees it, so the producer sees everything: each
//! second it prints what each consumer received, the duplicates (a message delivered again
//! because its consumer was killed between acknowledging and freeing it: at most one per
//! kill) and the gaps (messages sent more than a second ago that nobody has acknowledged: none,
//! while some consumer is attached).

// An example's Ctrl-C flag, not a channel's atomic (the crate's loom seam is internal).
#![allow(clippy::disallowed_types)]

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use shmchan::{Backend, Options, RecvTimeoutError, SendTimeoutError, mpmc, spsc};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Job {
    seq: u64,
    sent_ns: u64,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Ack {
    seq: u64,
    pid: u32,
    _pad: u32,
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// The sending side of the job channel, whichever kind was asked for.
enum Jobs {
    Spsc(Box<spsc::Sender<Job>>),
    Mpmc(mpmc::Sender<Job>),
}

struct Args {
    name: String,
    spsc: bool,
    rate: u64,
    opts: Options,
}

fn parse(mut it: impl Iterator<Item = String>) -> Result<Args> {
    let name = it.next().ok_or("a channel name is needed")?;
    let mut args = Args {
        name,
        spsc: false,
        rate: 20_000,
        opts: Options::new().capacity(1024).max_receivers(8),
    };
    while let Some(a) = it.next() {
        match a.as_str() {
            "--spsc" => args.spsc = true,
            "--rate" => args.rate = it.next().ok_or("--rate N")?.parse()?,
            "--backend" => {
                let b = it.next().ok_or("--backend posix|sysv|file:DIR")?;
                let backend = match b.as_str() {
                    "posix" => Backend::Posix,
                    "sysv" => Backend::SysV,
                    f => {
                        Backend::File(f.strip_prefix("file:").ok_or("posix|sysv|file:DIR")?.into())
                    }
                };
                args.opts = args.opts.backend(backend);
            }
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    Ok(args)
}

fn main() -> Result<()> {
    let mut argv = std::env::args().skip(1);
    let usage = "usage: supervised produce|consume NAME [--spsc] [--rate N] [--backend B]";
    let role = argv.next().ok_or(usage)?;
    let args = parse(argv)?;
    // SAFETY: installs a handler that only stores to an atomic (async-signal-safe).
    unsafe { libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t) };
    match role.as_str() {
        "produce" => produce(&args),
        "consume" => consume(&args),
        _ => Err(usage.into()),
    }
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn produce(args: &Args) -> Result<()> {
    let acks_name = format!("{}-acks", args.name);
    let jobs = if args.spsc {
        Jobs::Spsc(Box::new(spsc::Sender::create(&args.name, &args.opts)?))
    } else {
        Jobs::Mpmc(mpmc::Sender::create(&args.name, &args.opts)?)
    };
    let acks = mpmc::Receiver::<Ack>::create(&acks_name, &args.opts.clone().capacity(1 << 16))?;
    println!(
        "producing on {:?} ({}) at {}/s; start consumers: cargo run --release --example \
         supervised -- consume {}{}",
        args.name,
        if args.spsc { "SPSC" } else { "MPMC" },
        args.rate,
        args.name,
        if args.spsc { " --spsc" } else { "" },
    );
    let interval = Duration::from_nanos(1_000_000_000 / args.rate.max(1));
    let start = Instant::now();
    let mut next_report = start + Duration::from_secs(1);
    let mut seq = 0u64;
    let mut refused = 0u64;
    // Deliveries per message not yet accounted, and per consumer.
    let mut delivered: HashMap<u64, u32> = HashMap::new();
    let mut per_consumer: BTreeMap<u32, u64> = BTreeMap::new();
    let (mut acked_upto, mut duplicates) = (0u64, 0u64);
    let mut sent_at: HashMap<u64, Instant> = HashMap::new();
    while !STOP.load(Ordering::Relaxed) {
        // Send what is due (a message refused for want of a consumer is sent again later).
        let due = (start.elapsed().as_nanos() / interval.as_nanos().max(1)) as u64;
        while seq < due {
            let job = Job {
                seq,
                sent_ns: now_ns(),
            };
            let r = match &jobs {
                Jobs::Spsc(tx) => tx.send_timeout(job, Duration::from_millis(1)),
                Jobs::Mpmc(tx) => tx.send_timeout(job, Duration::from_millis(1)),
            };
            match r {
                Ok(()) => {
                    sent_at.insert(seq, Instant::now());
                    seq += 1;
                }
                Err(SendTimeoutError::Timeout(_)) => break, // full: consumers are behind
                Err(SendTimeoutError::Disconnected(_)) => {
                    // No consumer now: wait a little for one, and send this one again.
                    refused += 1;
                    let _ = match &jobs {
                        Jobs::Spsc(tx) => tx.wait_for_peer(Duration::from_millis(100)),
                        Jobs::Mpmc(tx) => tx.wait_for_peer(Duration::from_millis(100)),
                    };
                    break;
                }
            }
        }
        // Take acknowledgements.
        while let Ok(a) = acks.recv_timeout(Duration::from_micros(200)) {
            *per_consumer.entry(a.pid).or_default() += 1;
            let n = delivered.entry(a.seq).or_default();
            *n += 1;
            if *n > 1 {
                duplicates += 1;
            }
            sent_at.remove(&a.seq);
        }
        while delivered.contains_key(&acked_upto) {
            acked_upto += 1;
        }
        delivered.retain(|&s, _| s + 100_000 > acked_upto); // keep a window for duplicates
        if Instant::now() >= next_report {
            next_report += Duration::from_secs(1);
            let gaps = sent_at
                .values()
                .filter(|t| t.elapsed() > Duration::from_secs(1))
                .count();
            let connected = match &jobs {
                Jobs::Spsc(tx) => tx.is_connected(),
                Jobs::Mpmc(tx) => tx.is_connected(),
            };
            println!(
                "sent {seq:>9}  acknowledged up to {acked_upto:>9}  duplicates {duplicates}  \
                 unacknowledged over 1 s {gaps}  consumer attached: {connected}  \
                 (sends refused while none was: {refused})"
            );
            for (pid, n) in &per_consumer {
                println!("    consumer pid {pid:>7}: {n:>9} messages");
            }
        }
    }
    println!("stopped: {seq} sent, {duplicates} delivered twice");
    Ok(())
}

fn consume(args: &Args) -> Result<()> {
    let acks_name = format!("{}-acks", args.name);
    let acks = mpmc::Sender::<Ack>::open(&acks_name, &args.opts)?;
    let pid = std::process::id();
    let mut n = 0u64;
    let mut last = Instant::now();
    let mut take = |seq: u64| -> Result<()> {
        // Acknowledge before freeing: a kill in between leaves the message to be delivered
        // again, and the producer sees the duplicate.
        acks.send(Ack { seq, pid, _pad: 0 })?;
        n += 1;
        if last.elapsed() > Duration::from_secs(1) {
            last = Instant::now();
            println!("consumer {pid}: {n} messages");
        }
        Ok(())
    };
    if args.spsc {
        let mut rx = spsc::Receiver::<Job>::open(&args.name, &args.opts)?;
        println!("consumer {pid} attached (SPSC)");
        while !STOP.load(Ordering::Relaxed) {
            let gone = match rx.recv_ref_timeout(Duration::from_millis(100)) {
                Ok(job) => {
                    take(job.seq)?; // `job` (its slot) is freed when it drops, after the ack
                    false
                }
                Err(RecvTimeoutError::Timeout) => false,
                Err(RecvTimeoutError::Disconnected) => true,
            };
            if gone {
                println!("the producer is gone; waiting for the next one");
                let _ = rx.wait_for_peer(Duration::from_secs(1));
            }
        }
    } else {
        let rx = mpmc::Receiver::<Job>::open(&args.name, &args.opts)?;
        println!("consumer {pid} attached (MPMC)");
        while !STOP.load(Ordering::Relaxed) {
            match rx.recv_ref_timeout(Duration::from_millis(100)) {
                Ok(job) => take(job.seq)?,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    println!("the producer is gone; waiting for the next one");
                    let _ = rx.wait_for_peer(Duration::from_secs(1));
                }
            }
        }
    }
    println!("consumer {pid}: {n} messages, leaving");
    Ok(())
}
