//! Records serialized straight into shared memory: a `frame::Loan` is an `io::Write`, so a
//! serializer writes each record in place (no buffer, no copy), and the receiver parses each
//! `Frame` where it lies.
//!
//! ```text
//! cargo run --release --example records            # 100,000 records to a child process
//! ```
//!
//! The program starts its receiver itself (this program, re-executed with `--receiver NAME`).

use std::io::Write;
use std::process::Command;

use serde::{Deserialize, Serialize};
use shmchan::{Options, frame};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// What goes through: variable-size, as most records are.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Trade {
    id: u64,
    symbol: String,
    price: f64,
    quantity: u32,
    tags: Vec<String>,
}

fn trade(id: u64) -> Trade {
    Trade {
        id,
        symbol: ["EURUSD", "AAPL", "BTC-PERP"][id as usize % 3].to_owned(),
        price: 100.0 + (id % 1000) as f64 / 8.0,
        quantity: (id * 7 % 500) as u32 + 1,
        tags: (0..id % 4).map(|t| format!("tag{t}")).collect(),
    }
}

const N: u64 = 100_000;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, name] = args.as_slice() {
        if flag == "--receiver" {
            return receiver(name);
        }
    }
    let name = format!("shmchan-records-{}", std::process::id());
    let mut tx = frame::Sender::create(&name, &Options::new().capacity(1 << 20))?;
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--receiver", &name])
        .spawn()?;
    let t0 = std::time::Instant::now();
    for id in 0..N {
        // Reserve room for the largest record we may write, serialize in place, publish what
        // was written. Nothing is copied: the JSON is produced in shared memory. (A record
        // longer than the loan fails to serialize: `Loan` writes `Ok(0)` once full.)
        let mut loan = tx.loan(512)?;
        serde_json::to_writer(&mut loan, &trade(id))?;
        loan.flush()?;
        loan.commit_written();
    }
    drop(tx); // the receiver sees the end after the last record
    let status = child.wait()?;
    println!(
        "{N} records serialized into shared memory and parsed in {:?} ({status})",
        t0.elapsed()
    );
    if !status.success() {
        return Err("the receiver failed".into());
    }
    Ok(())
}

fn receiver(name: &str) -> Result<()> {
    let mut rx = frame::Receiver::open(name, &Options::new())?;
    let mut n = 0;
    while let Ok(f) = rx.recv() {
        // Parsed where it lies; the frame's room is freed when `f` drops.
        let t: Trade = serde_json::from_slice(&f)?;
        if t != trade(n) {
            return Err(format!("record {n} arrived as {t:?}").into());
        }
        n += 1;
    }
    if n != N {
        return Err(format!("received {n} records, expected {N}").into());
    }
    Ok(())
}
