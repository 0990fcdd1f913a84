//! One process fans work out to N worker processes over an MPMC channel and collects the
//! results over another.
//!
//! ```text
//! cargo run --release --example fanout                 # 4 workers, 20,000 jobs
//! cargo run --release --example fanout -- 8 100000     # 8 workers, 100,000 jobs
//! ```
//!
//! Each job asks for the length of a Collatz sequence; each worker takes jobs until the
//! dispatcher drops its sender (the workers then see `Disconnected`), and reports its pid with
//! each result so the dispatcher can show how the work was shared. Kill a worker with
//! `kill -9` while it runs: the others carry on, and at most the job it held is lost.

use std::collections::BTreeMap;
use std::process::{Child, Command};

use shmchan::{Options, mpmc};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Job {
    id: u64,
    start: u64,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Done {
    id: u64,
    steps: u64,
    worker: u32,
    _pad: u32,
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--worker") {
        return worker(&args[1]);
    }
    let workers: usize = args.first().map_or(Ok(4), |a| a.parse())?;
    let jobs: u64 = args.get(1).map_or(Ok(20_000), |a| a.parse())?;
    let base = format!("shmchan-fanout-{}", std::process::id());
    let opts = Options::new().capacity(1024);
    let tx = mpmc::Sender::<Job>::create(&format!("{base}-jobs"), &opts)?;
    let results = mpmc::Receiver::<Done>::create(&format!("{base}-done"), &opts)?;

    let mut children: Vec<Child> = (0..workers)
        .map(|_| {
            Command::new(std::env::current_exe()?)
                .args(["--worker", &base])
                .spawn()
        })
        .collect::<std::io::Result<_>>()?;

    let t0 = std::time::Instant::now();
    // Send from a thread while collecting here, so neither ring blocks the other.
    let sender = std::thread::spawn(move || -> Result<()> {
        for id in 0..jobs {
            tx.send(Job { id, start: id + 1 })?;
        }
        Ok(()) // dropping `tx` tells the workers there is no more work
    });
    let mut per_worker: BTreeMap<u32, u64> = BTreeMap::new();
    let mut total_steps = 0u64;
    let mut received = 0u64;
    while received < jobs {
        match results.recv_timeout(std::time::Duration::from_secs(5)) {
            Ok(d) => {
                *per_worker.entry(d.worker).or_default() += 1;
                total_steps += d.steps;
                received += 1;
            }
            Err(e) => {
                eprintln!("dispatcher: {e} after {received} results (a worker died?)");
                break;
            }
        }
    }
    sender.join().expect("sender thread")?;
    for c in &mut children {
        c.wait()?;
    }
    println!(
        "{received} of {jobs} jobs done by {workers} worker processes in {:.1?} \
         (total Collatz steps {total_steps})",
        t0.elapsed()
    );
    for (pid, n) in per_worker {
        println!("  worker {pid}: {n} jobs");
    }
    Ok(())
}

fn worker(base: &str) -> Result<()> {
    let opts = Options::new();
    let jobs = mpmc::Receiver::<Job>::open(&format!("{base}-jobs"), &opts)?;
    let done = mpmc::Sender::<Done>::open(&format!("{base}-done"), &opts)?;
    let me = std::process::id();
    for job in jobs.iter() {
        let (mut n, mut steps) = (job.start, 0u64);
        while n != 1 {
            n = if n % 2 == 0 { n / 2 } else { 3 * n + 1 };
            steps += 1;
        }
        done.send(Done {
            id: job.id,
            steps,
            worker: me,
            _pad: 0,
        })?;
    }
    Ok(())
}
