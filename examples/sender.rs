//! Two-terminal demo, sending side: opens the channel and sends each line typed on stdin.
//!
//! ```text
//! terminal 1: cargo run --example receiver -- [NAME]
//! terminal 2: cargo run --example sender -- [NAME]
//! ```

use std::io::BufRead;

use shmchan::{Options, spsc};

#[path = "common/line.rs"]
mod line;
use line::Line;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let name = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "shmchan-demo".to_owned());
    let tx = spsc::Sender::<Line>::open(&name, &Options::new())?;
    println!("sender: attached to {name:?}; type lines, Ctrl-D to stop");
    for text in std::io::stdin().lock().lines() {
        if tx.send(Line::new(&text?)).is_err() {
            println!("sender: the receiver is gone");
            break;
        }
    }
    Ok(())
}
