//! An echo between two processes through async calls only (`send_async`, `recv_async`,
//! `stream`), under tokio, with no thread per channel.
//!
//! ```text
//! cargo run --release --example async_echo              # 10,000 round trips
//! cargo run --release --example async_echo -- 100000
//! ```
//!
//! It starts its own peer process (this program, re-executed), which echoes every message of
//! channel `<name>-ping` back on `<name>-pong` from a `stream()`; this side sends N messages one
//! at a time, awaits each echo, and prints the round-trip percentiles and the CPU time used.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_core::Stream;
use shmchan::{Options, spsc};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const PEER: &str = "ASYNC_ECHO_PEER";

fn main() -> Result<()> {
    if let Ok(name) = std::env::var(PEER) {
        return peer(&name);
    }
    let n: usize = match std::env::args().nth(1) {
        Some(a) => a.parse().map_err(|e| format!("N must be a count: {e}"))?,
        None => 10_000,
    };
    let name = format!("async-echo-{}", std::process::id());
    let opts = Options::new().capacity(64);
    let mut ping = spsc::Sender::<u64>::create(&format!("{name}-ping"), &opts)?;
    let mut pong = spsc::Receiver::<u64>::create(&format!("{name}-pong"), &opts)?;
    let mut child = Command::new(std::env::current_exe()?)
        .env(PEER, &name)
        .stdout(Stdio::inherit())
        .spawn()?;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let cpu0 = cpu_time();
    let t0 = Instant::now();
    let mut rtt = rt.block_on(async {
        ping.wait_for_peer(Duration::from_secs(10))?;
        let mut rtt = Vec::with_capacity(n);
        for i in 0..n as u64 {
            let t = Instant::now();
            ping.send_async(i).await?;
            let echo = pong.recv_async().await?;
            rtt.push(t.elapsed());
            if echo != i {
                return Err(format!("echo {echo} for {i}").into());
            }
        }
        Ok::<_, Box<dyn std::error::Error>>(rtt)
    })?;
    let (wall, cpu) = (t0.elapsed(), cpu_time() - cpu0);
    drop(ping); // the peer's stream ends, and it leaves
    let status = child.wait()?;
    if !status.success() {
        return Err(format!("the peer failed: {status}").into());
    }
    rtt.sort_unstable();
    let pct = |p: f64| rtt[((rtt.len() - 1) as f64 * p) as usize];
    println!(
        "{n} async round trips in {wall:.2?} (this process used {cpu:.2?} of CPU): \
         p50 {:?}, p99 {:?}, max {:?}",
        pct(0.50),
        pct(0.99),
        pct(1.0)
    );
    Ok(())
}

/// The echoing side: every message of the ping stream back on pong, until the stream ends.
fn peer(name: &str) -> Result<()> {
    let opts = Options::new();
    let mut ping = spsc::Receiver::<u64>::open(&format!("{name}-ping"), &opts)?;
    let mut pong = spsc::Sender::<u64>::open(&format!("{name}-pong"), &opts)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let echoed = rt.block_on(async {
        let mut stream = std::pin::pin!(ping.stream());
        let mut echoed = 0u64;
        while let Some(v) = std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await {
            pong.send_async(v).await?;
            echoed += 1;
        }
        Ok::<_, shmchan::SendError<u64>>(echoed)
    })?;
    println!("peer: echoed {echoed} messages, then the stream ended (sender gone)");
    Ok(())
}

/// CPU time (user + system) this process has used so far.
fn cpu_time() -> Duration {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: `ru` is valid for writes of one rusage, which getrusage fills.
    let ru = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr());
        ru.assume_init()
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}
