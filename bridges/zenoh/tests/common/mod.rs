//! Processes for the bridge's tests: bridges (the real binary), local producers and consumers
//! (`examples/peer.rs`), each test with its own channel names, ports and state directory, and
//! everything killed and removed when the test ends, failed or not.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BRIDGE: &str = env!("CARGO_BIN_EXE_shmchan-bridge");

/// Generous: a hang fails the test instead of stalling CI.
pub const GUARD: Duration = Duration::from_secs(120);

/// The `peer` example, built by `cargo test` next to the test binaries.
pub fn peer_path() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap(); // target/<profile>/deps -> <profile>
    let p = dir.join("examples").join("peer");
    assert!(
        p.exists(),
        "{} is missing: run `cargo test`, which builds it",
        p.display()
    );
    p
}

/// A free TCP port on 127.0.0.1 (bound, then released for the bridge to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// One test's world: its names, its processes, its state directory. Dropping it kills every
/// process it started (SIGTERM, then SIGKILL) and removes its channels and files.
pub struct World {
    pub tag: String,
    pub state_dir: PathBuf,
    names: Vec<String>,
    procs: Vec<(String, Child)>,
}

impl World {
    pub fn new(test: &str) -> World {
        let tag = format!(
            "brt-{test}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let state_dir = std::env::temp_dir().join(&tag);
        std::fs::create_dir_all(&state_dir).unwrap();
        World {
            tag,
            state_dir,
            names: Vec::new(),
            procs: Vec::new(),
        }
    }

    /// A channel name unique to this test, removed at the end.
    pub fn name(&mut self, n: &str) -> String {
        let name = format!("{}-{n}", self.tag);
        self.names.push(name.clone());
        name
    }

    fn spawn(&mut self, label: &str, mut cmd: Command) -> usize {
        let log = self
            .state_dir
            .join(format!("{label}-{}.log", self.procs.len()));
        cmd.env("SHMCHAN_BRIDGE_STATE_DIR", &self.state_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap());
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {label}: {e}"));
        self.procs.push((label.to_owned(), child));
        self.procs.len() - 1
    }

    /// Start a bridge with these arguments.
    pub fn bridge(&mut self, args: &[&str]) -> usize {
        let mut cmd = Command::new(BRIDGE);
        cmd.args(args);
        self.spawn("bridge", cmd)
    }

    /// Start a local producer or consumer (`examples/peer.rs`).
    pub fn peer(&mut self, args: &[&str]) -> usize {
        let mut cmd = Command::new(peer_path());
        cmd.args(args);
        self.spawn("peer", cmd)
    }

    pub fn pid(&self, i: usize) -> u32 {
        self.procs[i].1.id()
    }

    /// Wait until a consumer printed READY (it created or opened its channel).
    pub fn ready(&mut self, i: usize) {
        use std::io::Read;
        let out = self.procs[i].1.stdout.as_mut().unwrap();
        let mut line = Vec::new();
        let mut b = [0u8; 1];
        // Byte by byte: nothing after the line may be taken from the pipe.
        while out.read(&mut b).unwrap() == 1 && b[0] != b'\n' {
            line.push(b[0]);
        }
        assert_eq!(line, b"READY", "peer did not start\n{}", self.logs());
    }

    /// Wait for process `i` to end (at most [`GUARD`]) and return its `RESULT` line's JSON.
    pub fn result(&mut self, i: usize) -> Value {
        let t0 = Instant::now();
        loop {
            if let Some(st) = self.procs[i].1.try_wait().unwrap() {
                let mut out = String::new();
                let mut r = BufReader::new(self.procs[i].1.stdout.take().unwrap());
                while r.read_line(&mut out).unwrap() > 0 {}
                let line = out
                    .lines()
                    .find_map(|l| l.strip_prefix("RESULT "))
                    .unwrap_or_else(|| panic!("no RESULT ({st}): {out}\n{}", self.logs()));
                return serde_json::from_str(line).unwrap();
            }
            assert!(t0.elapsed() < GUARD, "process {i} hangs\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Send `sig` to process `i` and wait for it.
    pub fn signal(&mut self, i: usize, sig: i32) {
        let child = &mut self.procs[i].1;
        // SAFETY: kill(2) on the pid of our own child, which we have not waited for yet.
        unsafe { libc::kill(child.id() as i32, sig) };
        let t0 = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if t0.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Every route of the running bridges of this test (`shmchan-bridge ls --json`).
    pub fn ls(&self) -> Vec<Value> {
        let out = Command::new(BRIDGE)
            .args(["ls", "--json"])
            .env("SHMCHAN_BRIDGE_STATE_DIR", &self.state_dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "ls failed");
        serde_json::from_slice::<Value>(&out.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }

    /// The route `direction` of the bridge process `i`, once its counters satisfy `until`
    /// (polled at most [`GUARD`]).
    pub fn route_until(&self, i: usize, direction: &str, until: impl Fn(&Value) -> bool) -> Value {
        let pid = self.pid(i) as u64;
        let t0 = Instant::now();
        loop {
            let found = self
                .ls()
                .into_iter()
                .find(|r| r["pid"] == pid && r["direction"] == direction);
            if let Some(r) = found {
                if until(&r) {
                    return r;
                }
                assert!(
                    t0.elapsed() < GUARD,
                    "counters never got there: {r}\n{}",
                    self.logs()
                );
            } else {
                assert!(
                    t0.elapsed() < GUARD,
                    "bridge {i} not listed\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every process's standard error, for a failure message.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        if let Ok(rd) = std::fs::read_dir(&self.state_dir) {
            let mut files: Vec<_> = rd.flatten().map(|e| e.path()).collect();
            files.sort();
            for f in files
                .into_iter()
                .filter(|f| f.extension().is_some_and(|e| e == "log"))
            {
                s += &format!(
                    "--- {}\n{}",
                    f.display(),
                    std::fs::read_to_string(&f).unwrap_or_default()
                );
            }
        }
        s
    }

    /// The producer position of the local channel `name` (messages; bytes for frames).
    pub fn sent(&self, name: &str) -> u64 {
        shmchan::inspect::stat(name, &shmchan::Backend::Posix)
            .unwrap()
            .ring
            .unwrap()
            .sent
    }
}

impl Drop for World {
    fn drop(&mut self) {
        for (_, child) in &mut self.procs {
            if child.try_wait().ok().flatten().is_none() {
                // SAFETY: kill(2) on the pid of our own child, not yet waited for.
                unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            }
        }
        let t0 = Instant::now();
        for (_, child) in &mut self.procs {
            while child.try_wait().ok().flatten().is_none() {
                if t0.elapsed() > Duration::from_secs(5) {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        for name in &self.names {
            let _ = shmchan::remove(name, &shmchan::Options::new());
            let _ = std::fs::remove_file(Path::new("/dev/shm").join(name));
        }
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        let _ = std::fs::remove_dir_all(&self.state_dir);
    }
}

/// `tcp/127.0.0.1:PORT`.
pub fn ep(port: u16) -> String {
    format!("tcp/127.0.0.1:{port}")
}
