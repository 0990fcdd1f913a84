//! Shared helpers for the integration tests: unique names, every backend, child processes
//! (this test binary re-executed), and cleanup that runs even when a test fails.
// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]
// Test helpers are not crate code checked by loom; plain std atomics are right here.
#![allow(clippy::disallowed_types)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use shmchan::{Backend, Options};

/// The test message: `check` is derived from `seq`, so a torn or garbled message is detected.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Msg {
    pub seq: u64,
    pub check: u64,
}

impl Msg {
    pub fn new(seq: u64) -> Msg {
        Msg {
            seq,
            check: seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xdead_beef,
        }
    }
    pub fn is_intact(&self) -> bool {
        *self == Msg::new(self.seq)
    }
}

/// A channel name used by no other test, in this run or a concurrent one.
pub fn unique_name(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "shmchan-test-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A directory for the File backend, private to one test; removed (with anything left in it)
/// when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn path(&self) -> &PathBuf {
        &self.0
    }
    pub fn backend(&self) -> Backend {
        Backend::File(self.0.clone())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn file_dir() -> TempDir {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("shmchan-test-dir-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

/// Every backend, for `for backend in backends()`; the File backend's directory lives as long
/// as the loop.
pub fn backends() -> Backends {
    let dir = file_dir();
    Backends {
        list: vec![Backend::Posix, Backend::SysV, dir.backend()].into_iter(),
        _dir: dir,
    }
}

pub struct Backends {
    list: std::vec::IntoIter<Backend>,
    _dir: TempDir,
}

impl Iterator for Backends {
    type Item = Backend;
    fn next(&mut self) -> Option<Backend> {
        self.list.next()
    }
}

pub fn encode(b: &Backend) -> String {
    match b {
        Backend::Posix => "posix".into(),
        Backend::SysV => "sysv".into(),
        Backend::File(d) => format!("file:{}", d.display()),
    }
}

pub fn decode(s: &str) -> Backend {
    match s {
        "posix" => Backend::Posix,
        "sysv" => Backend::SysV,
        f => Backend::File(PathBuf::from(f.strip_prefix("file:").expect("backend"))),
    }
}

/// Does a region named `name` exist on `backend`?
pub fn exists(name: &str, backend: &Backend) -> bool {
    match backend {
        Backend::Posix => std::path::Path::new("/dev/shm").join(name).exists(),
        // SAFETY: plain system call; size 0 and no flags only looks the key up.
        Backend::SysV => (unsafe { libc::shmget(Backend::sysv_key(name), 0, 0) }) != -1,
        Backend::File(dir) => dir.join(name).symlink_metadata().is_ok(),
    }
}

/// Remove whatever is left of region `name` (used by [`Cleanup`], whether or not the test
/// passed).
pub fn remove(name: &str, backend: &Backend) {
    match backend {
        Backend::Posix => {
            let _ = std::fs::remove_file(std::path::Path::new("/dev/shm").join(name));
        }
        Backend::SysV => {
            // SAFETY: plain system calls on a segment id we just looked up.
            unsafe {
                let id = libc::shmget(Backend::sysv_key(name), 0, 0);
                if id != -1 {
                    libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut());
                }
            }
        }
        Backend::File(dir) => {
            let _ = std::fs::remove_file(dir.join(name));
        }
    }
}

/// Removes the region when dropped, so a failing test leaves nothing behind.
pub struct Cleanup(pub String, pub Backend);

impl Drop for Cleanup {
    fn drop(&mut self) {
        remove(&self.0, &self.1);
    }
}

/// Assert that the name is gone from the system (the last handle detached).
pub fn assert_gone(name: &str, backend: &Backend) {
    assert!(
        !exists(name, backend),
        "{name} is still present on {backend} after every handle detached"
    );
}

/// A child process running this test binary's `child_main` in a given role. Killed and reaped
/// when dropped.
pub struct Peer {
    child: Child,
    lines: mpsc::Receiver<String>,
}

/// Start a child in `role` on channel `name`, with extra environment variables.
pub fn spawn(role: &str, name: &str, backend: &Backend, env: &[(&str, String)]) -> Peer {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--ignored",
        "--exact",
        "child_main",
        "--nocapture",
        "--test-threads=1",
        "-q",
    ])
    .env("SHMCHAN_TEST_ROLE", role)
    .env("SHMCHAN_TEST_NAME", name)
    .env("SHMCHAN_TEST_BACKEND", encode(backend))
    .stdout(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn child");
    let out = child.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Peer { child, lines }
}

impl Peer {
    /// Wait (at most `timeout`) for a line starting with `token`; returns the rest of it.
    pub fn expect_line(&self, token: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.starts_with(token) => return l[token.len()..].trim().to_owned(),
                Ok(_) => {}
                Err(e) => panic!("child did not print {token:?} within {timeout:?}: {e:?}"),
            }
        }
    }

    /// Kill with SIGKILL, without reaping: the child stays a zombie until [`Peer::reap`].
    pub fn kill9(&mut self) {
        // SAFETY: plain system call on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGKILL) };
    }

    /// Wait for the child to exit (at most `timeout`).
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "child did not exit within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Wait for the child and assert it succeeded.
    pub fn assert_success(&mut self, timeout: Duration) {
        let st = self.wait(timeout);
        assert!(st.success(), "child failed: {st}");
    }

    pub fn reap(&mut self) {
        let _ = self.child.wait();
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn env_u64(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn flag(key: &str) -> bool {
    std::env::var(key).is_ok_and(|v| v == "1")
}

fn hang() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

/// CPU time (user + system) this process has used so far.
pub fn cpu_time() -> Duration {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: `ru` is valid for writes of one rusage, which getrusage fills.
    let ru = unsafe {
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr()), 0);
        ru.assume_init()
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// The child side. Does nothing unless started by [`spawn`].
/// Batch sizes the slice tests cycle through: single messages, odd sizes, more than a ring
/// of 256 holds.
pub const BATCH_SIZES: [usize; 6] = [1, 7, 64, 300, 13, 1000];

pub fn child_main() {
    let Ok(role) = std::env::var("SHMCHAN_TEST_ROLE") else {
        return;
    };
    let name = std::env::var("SHMCHAN_TEST_NAME").unwrap();
    let opts = Options::new()
        .backend(decode(&std::env::var("SHMCHAN_TEST_BACKEND").unwrap()))
        .capacity(env_u64("SHMCHAN_TEST_CAP", 1024) as usize);
    let n = env_u64("SHMCHAN_TEST_N", 0);
    let create = flag("SHMCHAN_TEST_CREATE");
    match role.as_str() {
        // Send 0..n; then hang (to be killed) or exit (dropping the sender).
        "send" => {
            let tx = if create {
                shmchan::spsc::Sender::<Msg>::create(&name, &opts).unwrap()
            } else {
                shmchan::spsc::Sender::<Msg>::open(&name, &opts).unwrap()
            };
            println!("READY");
            for i in 0..n {
                tx.send(Msg::new(i)).unwrap();
            }
            println!("SENT");
            if flag("SHMCHAN_TEST_HANG") {
                hang();
            }
        }
        // Open the sender and send 0..n with `send_slice`, in batches of varying sizes (some
        // larger than the ring), then exit.
        "send-slices" => {
            let tx = shmchan::spsc::Sender::<Msg>::open(&name, &opts).unwrap();
            println!("READY");
            let all: Vec<Msg> = (0..n).map(Msg::new).collect();
            let mut sent = 0;
            for size in BATCH_SIZES.iter().cycle() {
                let end = (sent + size).min(all.len());
                tx.send_slice(&all[sent..end]).unwrap();
                sent = end;
                if sent == all.len() {
                    break;
                }
            }
            println!("SENT");
        }
        // Receive until disconnected; every message intact and in order, n of them.
        "recv" => {
            let rx = if create {
                shmchan::spsc::Receiver::<Msg>::create(&name, &opts).unwrap()
            } else {
                shmchan::spsc::Receiver::<Msg>::open(&name, &opts).unwrap()
            };
            println!("READY");
            let mut next = 0;
            while let Ok(m) = rx.recv() {
                assert!(m.is_intact(), "torn message {m:?}");
                assert_eq!(m.seq, next, "out of order or lost");
                next += 1;
            }
            assert_eq!(next, n, "received {next} messages, expected {n}");
            println!("GOT {next}");
        }
        // Take `n` messages, then exit (SHMCHAN_TEST_EXIT=1) or hang until killed.
        "recv-hang" => {
            let rx = shmchan::spsc::Receiver::<Msg>::open(&name, &opts).unwrap();
            println!("READY");
            for i in 0..n {
                assert_eq!(rx.recv().unwrap(), Msg::new(i));
            }
            println!("TOOK");
            if !flag("SHMCHAN_TEST_EXIT") {
                hang();
            }
        }
        // Block in recv() on an empty ring; report the CPU time used while blocked.
        "recv-park" => {
            let rx = shmchan::spsc::Receiver::<Msg>::open(&name, &opts).unwrap();
            let before = cpu_time();
            let t0 = Instant::now();
            println!("READY");
            let m = rx.recv().unwrap();
            let (cpu, wall) = (cpu_time() - before, t0.elapsed());
            assert_eq!(m, Msg::new(7));
            println!("CPU_US {} WALL_US {}", cpu.as_micros(), wall.as_micros());
        }
        // Keep using a receiver while the parent scribbles over the region.
        "victim" => {
            let rx = shmchan::spsc::Receiver::<Msg>::open(&name, &opts).unwrap();
            println!("READY");
            let until = Instant::now() + Duration::from_millis(env_u64("SHMCHAN_TEST_MS", 1000));
            let (mut ok, mut errs) = (0u64, 0u64);
            while Instant::now() < until {
                for _ in 0..100 {
                    match rx.try_recv() {
                        Ok(_) => ok += 1,
                        Err(_) => errs += 1,
                    }
                }
                let _ = (rx.len(), rx.is_full(), rx.is_disconnected());
                match rx.recv_timeout(Duration::from_micros(200)) {
                    Ok(_) => ok += 1,
                    Err(_) => errs += 1,
                }
                let mut buf = [Msg::new(0); 16];
                match rx.try_recv_slice(&mut buf) {
                    Ok(n) => ok += n as u64,
                    Err(_) => errs += 1,
                }
                match rx.recv_slice_timeout(&mut buf, Duration::from_micros(200)) {
                    Ok(n) => ok += n as u64,
                    Err(_) => errs += 1,
                }
            }
            // Dropping reads the (garbage) endpoint table and refcount too: it must survive
            // that as well. The parent removes the name whatever the refcount says.
            drop(rx);
            println!("SURVIVED ok={ok} errs={errs}");
        }
        // MPMC producer number SHMCHAN_TEST_P: send n messages whose seq is (P << 40) | i.
        "mpmc-send" => {
            let p = env_u64("SHMCHAN_TEST_P", 0);
            let tx = shmchan::mpmc::Sender::<Msg>::open(&name, &opts).unwrap();
            println!("READY");
            for i in 0..n {
                tx.send(Msg::new((p << 40) | i)).unwrap();
            }
            println!("SENT");
            if flag("SHMCHAN_TEST_HANG") {
                hang();
            }
        }
        // MPMC consumer: receive until disconnected (or SHMCHAN_TEST_TAKE messages, then hang),
        // checking every message is intact and each producer's messages come in order; write
        // every seq received to SHMCHAN_TEST_OUT.
        "mpmc-recv" => {
            use std::io::Write;
            let rx = shmchan::mpmc::Receiver::<Msg>::open(&name, &opts).unwrap();
            let take = std::env::var("SHMCHAN_TEST_TAKE")
                .ok()
                .map(|v| v.parse::<u64>().unwrap());
            let mut out = std::io::BufWriter::new(
                std::fs::File::create(std::env::var("SHMCHAN_TEST_OUT").unwrap()).unwrap(),
            );
            println!("READY");
            let mut last = std::collections::HashMap::<u64, u64>::new();
            let mut got = 0u64;
            while take.is_none_or(|t| got < t) {
                let Ok(m) = rx.recv() else { break };
                assert!(m.is_intact(), "torn message {m:?}");
                let (p, i) = (m.seq >> 40, m.seq & ((1 << 40) - 1));
                if let Some(&prev) = last.get(&p) {
                    assert!(i > prev, "producer {p}: {i} after {prev}");
                }
                last.insert(p, i);
                out.write_all(&m.seq.to_le_bytes()).unwrap();
                got += 1;
            }
            out.flush().unwrap();
            println!("GOT {got}");
            if take.is_some() {
                hang();
            }
        }
        // Echo every message from `<name>-ping` back on `<name>-pong`, sleeping on the futex
        // for each one (WaitStrategy::Park).
        "echo-park" => {
            let opts = opts.wait_strategy(shmchan::WaitStrategy::Park);
            let rx = shmchan::spsc::Receiver::<Msg>::open(&format!("{name}-ping"), &opts).unwrap();
            let tx = shmchan::spsc::Sender::<Msg>::open(&format!("{name}-pong"), &opts).unwrap();
            println!("READY");
            while let Ok(m) = rx.recv() {
                tx.send(m).unwrap();
            }
        }
        other => panic!("unknown child role {other}"),
    }
}
