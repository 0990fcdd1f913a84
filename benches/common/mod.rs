//! What both benchmarks share: the peer process (this bench binary re-executed with
//! `SHMCHAN_BENCH_PEER` set), its start-up handshake and its shutdown.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Set in a peer's environment to the spec of what it should do.
pub const PEER: &str = "SHMCHAN_BENCH_PEER";

/// A peer process running `spec`. Dropped after the channels or sockets that drive it, so it
/// sees them close and exits on its own (detaching, so its regions' names are removed); one
/// still running after 10 s is killed.
pub struct Peer(Child);

impl Peer {
    /// Start a peer and wait until it says it is attached.
    pub fn spawn(spec: &str) -> Peer {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env(PEER, spec)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "peer failed to start");
        Peer(child)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && matches!(self.0.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Called by a peer once it is attached.
pub fn say_ready() {
    println!("ready");
    std::io::stdout().flush().unwrap();
}
