//! Two-terminal demo, receiving side: creates the channel and prints what arrives.
//!
//! ```text
//! terminal 1: cargo run --example receiver -- [NAME]
//! terminal 2: cargo run --example sender -- [NAME]      (then type lines)
//! ```
//!
//! Stops when the sender goes away (Ctrl-D, Ctrl-C or `kill -9` in terminal 2).

use shmchan::{Options, spsc};

#[path = "common/line.rs"]
mod line;
use line::Line;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let name = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "shmchan-demo".to_owned());
    let rx = spsc::Receiver::<Line>::create(&name, &Options::new().capacity(256))?;
    println!("receiver: created channel {name:?}; start `cargo run --example sender -- {name}`");
    for line in rx.iter() {
        println!("received: {}", line.text());
    }
    println!("receiver: the sender is gone, bye");
    Ok(())
}
