//! `shmchan::inspect`: every kind on every backend, read-only (not a byte changes), a killed
//! holder seen as abandoned without being marked, and hostile headers that give errors or an
//! incompatible channel, never a panic.

mod common;

use std::time::Duration;

use common::{Cleanup, Msg, backends, spawn, unique_name};
use shmchan::inspect::{self, EndpointState, Kind, Role, State};
use shmchan::{Backend, Error, Options, broadcast, frame, mpmc, pipe, spsc};

const SHORT: Duration = Duration::from_secs(10);

#[test]
#[ignore = "entry point of the child processes the other tests start"]
fn child_main() {
    common::child_main();
}

/// The bytes of the object `name` (all of it).
fn object_bytes(name: &str, backend: &Backend) -> Vec<u8> {
    match backend {
        Backend::SysV => {
            // SAFETY: attach the segment read-only, copy it out, detach.
            unsafe {
                let id = libc::shmget(Backend::sysv_key(name), 0, 0);
                assert!(id >= 0);
                let mut ds: libc::shmid_ds = std::mem::zeroed();
                assert_eq!(libc::shmctl(id, libc::IPC_STAT, &mut ds), 0);
                let p = libc::shmat(id, std::ptr::null(), libc::SHM_RDONLY);
                assert_ne!(p as isize, -1);
                let v = std::slice::from_raw_parts(p.cast::<u8>(), ds.shm_segsz).to_vec();
                libc::shmdt(p);
                v
            }
        }
        Backend::File(dir) => std::fs::read(dir.join(name)).unwrap(),
        _ => std::fs::read(std::path::Path::new("/dev/shm").join(name)).unwrap(),
    }
}

/// SPSC, MPMC, frame and pipe channels: what `stat` and `list` report, and that looking changes
/// no byte of the region.
#[test]
fn every_kind_on_every_backend() {
    for backend in backends() {
        let opts = Options::new().backend(backend.clone());

        let name = unique_name("insp-spsc");
        let _c = Cleanup(name.clone(), backend.clone());
        let tx = spsc::Sender::<Msg>::create(&name, &opts.clone().capacity(8)).unwrap();
        let rx = spsc::Receiver::<Msg>::open(&name, &opts).unwrap();
        for i in 0..6 {
            tx.send(Msg::new(i)).unwrap();
        }
        rx.recv().unwrap();
        let before = object_bytes(&name, &backend);
        let ch = inspect::stat(&name, &backend).unwrap();
        let listing = inspect::list(&backend).unwrap();
        assert_eq!(
            before,
            object_bytes(&name, &backend),
            "{backend}: looking wrote"
        );
        assert!(
            listing
                .channels
                .iter()
                .any(|c| c.name == name && c.state == State::Live)
        );
        assert_eq!(ch.state, State::Live);
        assert_eq!(ch.version, inspect::LAYOUT_VERSION);
        let r = ch.ring.as_ref().unwrap();
        assert_eq!((r.kind, r.payload.as_str()), (Kind::Spsc, "Msg"));
        assert_eq!((r.payload_size, r.payload_align), (16, 8));
        assert_eq!((r.capacity, r.len, r.sent, r.received), (8, 5, 6, 1));
        let me = std::process::id();
        let o = ch.origin.as_ref().unwrap();
        assert_eq!(o.creator_pid, me);
        assert!(o.created.elapsed().unwrap() < Duration::from_secs(60));
        assert_eq!(ch.endpoints.len(), 2);
        assert_eq!(
            (ch.endpoints[0].role, ch.endpoints[1].role),
            (Role::Sender, Role::Receiver)
        );
        assert!(ch.endpoints.iter().all(|e| e.alive && e.pid == me));
        assert_eq!(ch.object.mode, 0o600);
        drop((tx, rx));

        let name = unique_name("insp-mpmc");
        let _c = Cleanup(name.clone(), backend.clone());
        let tx = mpmc::Sender::<u32>::create(&name, &opts.clone().capacity(4)).unwrap();
        let tx2 = tx.clone();
        tx.send(1).unwrap();
        tx2.send(2).unwrap();
        let ch = inspect::stat(&name, &backend).unwrap();
        let r = ch.ring.as_ref().unwrap();
        assert_eq!(
            (r.kind, r.payload.as_str(), r.len, r.sent),
            (Kind::Mpmc, "u32", 2, 2)
        );
        assert!(r.max_senders > 1 && r.max_receivers > 1);
        drop((tx, tx2));

        let name = unique_name("insp-frame");
        let _c = Cleanup(name.clone(), backend.clone());
        let mut ftx = frame::Sender::create(&name, &opts.clone().capacity(1024)).unwrap();
        let frx = frame::Receiver::open(&name, &opts).unwrap();
        ftx.send(b"hello").unwrap();
        let ch = inspect::stat(&name, &backend).unwrap();
        let r = ch.ring.as_ref().unwrap();
        assert_eq!((r.kind, r.payload.as_str()), (Kind::Frame, "bytes"));
        assert!(r.kind.counts_bytes());
        assert_eq!(r.capacity, 1024);
        assert!(r.sent >= 5 && r.len == r.sent && r.received == 0, "{r:?}");
        drop((ftx, frx));

        let name = unique_name("insp-pipe");
        let _c = Cleanup(name.clone(), backend.clone());
        let w = pipe::Writer::create(&name, &opts.clone().capacity(4096)).unwrap();
        let ch = inspect::stat(&name, &backend).unwrap();
        assert_eq!(ch.ring.unwrap().kind, Kind::Pipe);
        drop(w);
        assert!(matches!(
            inspect::stat(&name, &backend),
            Err(Error::NotFound { .. })
        ));
    }
}

/// A sender killed with `kill -9`: the channel reads as abandoned, its entry as attached but
/// not alive, and looking marks nothing (a second look sees the same table).
#[test]
fn a_killed_sender_reads_as_abandoned_and_looking_marks_nothing() {
    for backend in backends() {
        let name = unique_name("insp-kill");
        let _c = Cleanup(name.clone(), backend.clone());
        let mut child = spawn(
            "send",
            &name,
            &backend,
            &[
                ("SHMCHAN_TEST_CREATE", "1".into()),
                ("SHMCHAN_TEST_N", "3".into()),
                ("SHMCHAN_TEST_CAP", "16".into()),
                ("SHMCHAN_TEST_HANG", "1".into()),
            ],
        );
        child.expect_line("SENT", SHORT);
        let pid = child.pid();
        let live = inspect::stat(&name, &backend).unwrap();
        assert_eq!(live.state, State::Live, "{backend}");
        assert_eq!(live.origin.as_ref().unwrap().creator_pid, pid);
        child.kill9();
        child.wait(SHORT); // reaped: the kernel has released everything it held
        for _ in 0..2 {
            let ch = inspect::stat(&name, &backend).unwrap();
            assert_eq!(ch.state, State::Abandoned, "{backend}");
            assert_eq!(ch.endpoints.len(), 1);
            let e = &ch.endpoints[0];
            assert_eq!(
                (e.pid, e.state, e.alive),
                (pid, EndpointState::Attached, false)
            );
            assert_eq!(ch.ring.as_ref().unwrap().len, 3);
        }
        shmchan::remove(&name, &Options::new().backend(backend.clone())).unwrap();
    }
}

/// Every 4-byte word of a real header set to hostile values: `stat` and `list` give an error
/// or a channel (incompatible when the header makes no sense), never a panic.
#[test]
fn hostile_headers_never_panic() {
    let backend = Backend::Posix;
    let name = unique_name("insp-hostile");
    let _c = Cleanup(name.clone(), backend.clone());
    let opts = Options::new().capacity(4);
    let tx = spsc::Sender::<Msg>::create(&name, &opts).unwrap();
    let good = object_bytes(&name, &backend);
    drop(tx);
    let path = std::path::Path::new("/dev/shm").join(&name);
    for off in (0..2688).step_by(4) {
        for v in [0u32, 1, 0x7fff_ffff, u32::MAX, 3] {
            let mut bytes = good.clone();
            bytes[off..off + 4].copy_from_slice(&v.to_le_bytes());
            std::fs::write(&path, &bytes).unwrap();
            match inspect::stat(&name, &backend) {
                Ok(ch) => {
                    if let Some(r) = &ch.ring {
                        assert!(r.len <= r.capacity);
                        assert!(ch.endpoints.len() <= 64);
                    }
                }
                Err(Error::Incompatible { .. }) => {}
                Err(e) => panic!("offset {off}, value {v:#x}: {e}"),
            }
        }
    }
    let _ = inspect::list(&backend).unwrap();
    // Cut short at every length up to a header: an error or an incompatible channel.
    for len in [0usize, 1, 7, 8, 9, 100, 1663] {
        std::fs::write(&path, &good[..len]).unwrap();
        match inspect::stat(&name, &backend) {
            Ok(ch) => assert_ne!(ch.state, State::Live, "{len} bytes"),
            Err(Error::Incompatible { detail, .. }) => {
                assert!(detail.contains("bytes"), "{detail}")
            }
            Err(e) => panic!("{len} bytes: {e}"),
        }
    }
    std::fs::remove_file(&path).unwrap();
}

/// Issue 18 #5: another process shrinks a channel's object (`ftruncate` to 0) and writes it
/// back, over and over, while `stat` and `list` look at it in a loop. The looker runs in a child
/// process (this binary re-executed, [`shrink_looker_main`]) whose exit status is checked, so a
/// SIGBUS fails the test instead of killing the test binary. POSIX and File (System V segments
/// cannot shrink); an SPSC channel and a broadcast topic (whose lines are read after its
/// header).
#[test]
fn a_shrinking_object_never_crashes_the_inspector() {
    use std::os::unix::fs::FileExt;
    use std::process::{Command, Stdio};
    use std::sync::mpsc;
    use std::time::Instant;

    let dir = common::file_dir();
    let cases = [Backend::Posix, dir.backend()]
        .into_iter()
        .flat_map(|b| [(b.clone(), Kind::Spsc), (b, Kind::Broadcast)]);
    for (backend, kind) in cases {
        let name = unique_name("insp-shrink");
        let _c = Cleanup(name.clone(), backend.clone());
        // A real channel's bytes, planted as an object that no process holds. A broadcast
        // topic's subscriber lines are read after its header: the object can shrink between.
        let opts = Options::new().backend(backend.clone()).capacity(8);
        let good = if kind == Kind::Broadcast {
            let mut tx = broadcast::Publisher::<Msg>::create(&name, &opts).unwrap();
            let rx = broadcast::Subscriber::<Msg>::open(&name, &opts).unwrap();
            tx.send(Msg::new(1)).unwrap();
            let good = object_bytes(&name, &backend);
            drop((tx, rx));
            good
        } else {
            let tx = spsc::Sender::<Msg>::create(&name, &opts).unwrap();
            tx.send(Msg::new(1)).unwrap();
            let good = object_bytes(&name, &backend);
            drop(tx);
            good
        };
        common::plant(&name, &backend, &good);
        let path = match &backend {
            Backend::File(d) => d.join(&name),
            _ => std::path::Path::new("/dev/shm").join(&name),
        };

        let (stop, stopped) = mpsc::channel::<()>();
        // A topic is also cut in its subscriber lines every other round (the header whole):
        // a look caught between reading the header and reading the lines finds them short.
        let cut_in_lines = if kind == Kind::Broadcast {
            CONTROL_AT as u64 + 64
        } else {
            0
        };
        let shrinker = std::thread::spawn(move || {
            let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
            let mut rounds = 0u64;
            // Each state held a moment, so the looker sees both (and is caught between its
            // `fstat` and its read of the header in some rounds).
            while let Err(std::sync::mpsc::TryRecvError::Empty) = stopped.try_recv() {
                f.set_len(if rounds % 2 == 1 { cut_in_lines } else { 0 })
                    .unwrap();
                std::thread::sleep(Duration::from_micros(50));
                f.write_all_at(&good, 0).unwrap();
                std::thread::sleep(Duration::from_micros(50));
                rounds += 1;
            }
            rounds
        });
        let mut looker = Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "shrink_looker_main",
                "--nocapture",
                "--test-threads=1",
                "-q",
            ])
            .env("SHMCHAN_INSPECT_SHRINK_NAME", &name)
            .env("SHMCHAN_INSPECT_SHRINK_BACKEND", common::encode(&backend))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(st) = looker.try_wait().unwrap() {
                break st;
            }
            if Instant::now() > deadline {
                let _ = looker.kill();
                let _ = looker.wait();
                panic!("{backend} {kind}: the looker did not finish within 60 s");
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let _ = stop.send(());
        let rounds = shrinker.join().unwrap();
        let mut out = String::new();
        std::io::Read::read_to_string(&mut looker.stdout.take().unwrap(), &mut out).unwrap();
        assert!(
            status.success(),
            "{backend} {kind}: the looker died while the object shrank under it: {status} \
             (signal 7 is SIGBUS); it printed: {out}"
        );
        eprintln!(
            "{backend} {kind}: {rounds} shrink rounds; looker: {}",
            out.trim()
        );
        // The race was run: the looker saw the object both empty and whole.
        let seen = out
            .lines()
            .find(|l| l.starts_with("SAW"))
            .expect("a SAW line");
        assert!(
            !seen.contains("empty=0 ") && !seen.ends_with("whole=0"),
            "{backend} {kind}: the looker never saw the object both empty and whole: {seen}"
        );
    }
}

/// Entry point of [`a_shrinking_object_never_crashes_the_inspector`]'s looker: `stat` and
/// `list` over and over (400 rounds, at most 5 s); any outcome but a crash is fine, except an
/// error that is not about what the object holds.
#[test]
#[ignore = "entry point of the looker process a_shrinking_object_never_crashes_the_inspector starts"]
fn shrink_looker_main() {
    let Ok(name) = std::env::var("SHMCHAN_INSPECT_SHRINK_NAME") else {
        return;
    };
    let backend = common::decode(&std::env::var("SHMCHAN_INSPECT_SHRINK_BACKEND").unwrap());
    let until = std::time::Instant::now() + Duration::from_secs(5);
    let (mut empty, mut whole, mut other, mut lines) = (0u32, 0u32, 0u32, 0u32);
    for round in 0..400 {
        match inspect::stat(&name, &backend) {
            Ok(ch) if ch.object.size == 0 => empty += 1,
            Ok(ch) if ch.ring.is_some() => whole += 1,
            Ok(ch)
                if ch
                    .problem
                    .as_deref()
                    .is_some_and(|p| p.contains("subscriber lines")) =>
            {
                lines += 1; // a topic's object shrank between its header and its lines
            }
            Ok(_) | Err(Error::Incompatible { .. }) => other += 1,
            Err(e) => panic!("round {round}: {e}"),
        }
        inspect::list(&backend).unwrap();
        if std::time::Instant::now() > until {
            break;
        }
    }
    println!("SAW other={other} lines={lines} empty={empty} whole={whole}");
}

/// A subscriber process of [`topic_child_main`], driven by lines on its standard input; killed
/// and reaped when dropped.
struct Sub {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    lines: std::sync::mpsc::Receiver<String>,
    pid: u32,
}

impl Sub {
    /// Start a subscriber of topic `name` (opened with `opts_env`, see [`topic_opts`]) and wait
    /// for it to have subscribed.
    fn start(name: &str, backend: &Backend, opts_env: &[(&str, String)]) -> Sub {
        use std::io::BufRead;
        use std::process::{Command, Stdio};
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "--ignored",
            "--exact",
            "topic_child_main",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env("SHMCHAN_INSPECT_TOPIC", name)
        .env("SHMCHAN_INSPECT_BACKEND", common::encode(backend))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
        for (k, v) in opts_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stdin = child.stdin.take();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let pid = child.id();
        let sub = Sub {
            child,
            stdin,
            lines,
            pid,
        };
        sub.expect("READY");
        sub
    }

    /// Wait for a line containing `token`; the rest of it, trimmed.
    fn expect(&self, token: &str) -> String {
        let until = std::time::Instant::now() + SHORT;
        loop {
            let left = until.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.contains(token) => {
                    return l[l.find(token).unwrap() + token.len()..].trim().to_owned();
                }
                Ok(_) => {}
                Err(e) => panic!("subscriber {} did not print {token:?}: {e:?}", self.pid),
            }
        }
    }

    fn tell(&mut self, line: &str) {
        use std::io::Write;
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// `GOT n LAGGED total` after a command: (messages received, lost in all).
    fn got(&self) -> (u64, u64) {
        let got = self.expect("GOT");
        match got.split_whitespace().collect::<Vec<_>>()[..] {
            [n, "LAGGED", l] => (n.parse().unwrap(), l.parse().unwrap()),
            _ => panic!("{got}"),
        }
    }

    /// SIGKILL, and reaped: the kernel has released everything it held.
    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Close its standard input (it leaves, dropping its handle) and wait for it.
    fn finish(&mut self) {
        self.stdin = None;
        let until = std::time::Instant::now() + SHORT;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                assert!(st.success(), "subscriber {} failed: {st}", self.pid);
                return;
            }
            assert!(std::time::Instant::now() < until, "subscriber did not exit");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Sub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A topic's options from the environment: SHMCHAN_INSPECT_EVICT_MS set, Block mode evicting
/// after that many milliseconds; unset, Overwrite. Capacity 16, at most 4 subscribers.
fn topic_opts(backend: &Backend) -> Options {
    let opts = Options::new()
        .backend(backend.clone())
        .capacity(16)
        .max_subscribers(4);
    match std::env::var("SHMCHAN_INSPECT_EVICT_MS") {
        Ok(ms) => opts.overflow(broadcast::Overflow::Block {
            evict_after: Some(Duration::from_millis(ms.parse().unwrap())),
        }),
        Err(_) => opts,
    }
}

/// Entry point of the subscriber processes [`Sub::start`] makes: subscribe to the topic (at
/// the latest message), print `READY`, then for each line of standard input, `recv N`
/// (receive until N messages came) or `drain` (receive what is there without waiting), each
/// message checked; print `EVICTED` if evicted, then `GOT <received> LAGGED <lost in all>`.
#[test]
#[ignore = "entry point of the subscriber processes the topic tests start"]
fn topic_child_main() {
    use std::io::BufRead;
    let Ok(name) = std::env::var("SHMCHAN_INSPECT_TOPIC") else {
        return;
    };
    let backend = common::decode(&std::env::var("SHMCHAN_INSPECT_BACKEND").unwrap());
    let mut rx = broadcast::Subscriber::<Msg>::open(&name, &topic_opts(&backend)).unwrap();
    println!("READY {}", std::process::id());
    let mut last: Option<u64> = None;
    let mut lost = 0u64;
    for cmd in std::io::stdin().lock().lines().map_while(Result::ok) {
        let wait = match cmd.strip_prefix("recv ") {
            Some(n) => Some(n.trim().parse::<u64>().unwrap()),
            None if cmd == "drain" => None,
            None => panic!("unknown command {cmd:?}"),
        };
        let mut got = 0u64;
        loop {
            if wait.is_some_and(|n| got >= n) {
                break;
            }
            let r = match wait {
                Some(_) => rx.recv().map_err(broadcast::TryRecvError::from),
                None => rx.try_recv(),
            };
            match r {
                Ok(m) => {
                    assert!(m.is_intact(), "garbled: {m:?}");
                    assert!(last.is_none_or(|l| m.seq > l), "{} after {last:?}", m.seq);
                    last = Some(m.seq);
                    got += 1;
                }
                Err(broadcast::TryRecvError::Lagged(n)) => lost += n,
                Err(broadcast::TryRecvError::Evicted) => {
                    println!("EVICTED");
                    break;
                }
                Err(broadcast::TryRecvError::Empty) => break,
                Err(e) => panic!("receive: {e}"),
            }
        }
        println!("GOT {got} LAGGED {lost}");
    }
}

/// The subscribers of a topic's channel, as (place, pid, alive, lag, lagged, evicted).
fn subscribers(ch: &inspect::Channel) -> Vec<(usize, u32, bool, u64, u64, bool)> {
    ch.topic
        .as_ref()
        .expect("a topic")
        .subscribers
        .iter()
        .map(|s| (s.index, s.pid, s.alive, s.lag, s.lagged, s.evicted))
        .collect()
}

/// `stat` and `list` of `name`, checking that looking changed no byte of the region.
fn look(name: &str, backend: &Backend) -> [inspect::Channel; 2] {
    let before = object_bytes(name, backend);
    let ch = inspect::stat(name, backend).unwrap();
    let listed = inspect::list(backend)
        .unwrap()
        .channels
        .into_iter()
        .find(|c| c.name == name)
        .expect("listed");
    assert!(
        before == object_bytes(name, backend),
        "{backend}: looking changed the region"
    );
    [ch, listed]
}

/// Issue 19: a broadcast topic seen by `inspect`, on every backend, with its publisher here
/// and its subscribers in other processes. Overwrite: A read 3 and was killed, B was lapped
/// (told `Lagged`) and is 5 behind: each one's pid, alive, lag, lagged total; the topic's `len`
/// is B's lag. Block, evicting after 500 ms: A killed, B stuck (evicted), C reading along.
#[test]
fn a_topic_shows_each_subscriber() {
    let me = std::process::id();
    for backend in backends() {
        // Overwrite.
        let name = unique_name("insp-topic-ow");
        let _c = Cleanup(name.clone(), backend.clone());
        let mut tx = broadcast::Publisher::<Msg>::create(&name, &topic_opts(&backend)).unwrap();
        let mut a = Sub::start(&name, &backend, &[]);
        let mut b = Sub::start(&name, &backend, &[]);
        for i in 0..3 {
            tx.send(Msg::new(i)).unwrap();
        }
        a.tell("drain");
        assert_eq!(a.got(), (3, 0));
        a.kill9();
        for i in 3..40 {
            tx.send(Msg::new(i)).unwrap();
        }
        b.tell("drain");
        let (read, lost) = b.got();
        assert!(
            read + lost == 40 && lost > 0,
            "{backend}: {read} read, {lost} lost"
        );
        for i in 40..45 {
            tx.send(Msg::new(i)).unwrap();
        }
        for ch in look(&name, &backend) {
            assert_eq!(ch.state, State::Live);
            let r = ch.ring.as_ref().unwrap();
            assert_eq!(r.kind, Kind::Broadcast);
            assert_eq!(
                (r.capacity, r.sent, r.len, r.received),
                (16, 45, 5, 40),
                "{backend}"
            );
            assert_eq!((r.max_senders, r.max_receivers), (1, 4));
            let t = ch.topic.as_ref().unwrap();
            assert_eq!(t.overflow, broadcast::Overflow::Overwrite);
            assert_eq!(
                subscribers(&ch),
                [
                    (1, a.pid, false, 16, 0, false),
                    (2, b.pid, true, 5, lost, false)
                ],
                "{backend}"
            );
            assert_eq!(t.slowest().map(|s| s.pid), Some(b.pid));
            assert_eq!(t.active(), 1);
            assert_eq!(t.subscribers[1].cursor, 40);
            // The publisher is place 0 of the endpoints, which keep every place.
            let e = &ch.endpoints;
            assert_eq!(e.len(), 3);
            assert_eq!(
                (e[0].index, e[0].role, e[0].pid, e[0].alive),
                (0, Role::Sender, me, true)
            );
        }
        b.finish();
        drop(tx);

        // Block, evicting after 500 ms.
        let name = unique_name("insp-topic-block");
        let _c = Cleanup(name.clone(), backend.clone());
        let env = [("SHMCHAN_INSPECT_EVICT_MS", "500".to_string())];
        let opts = Options::new()
            .backend(backend.clone())
            .capacity(16)
            .max_subscribers(4)
            .overflow(broadcast::Overflow::Block {
                evict_after: Some(Duration::from_millis(500)),
            });
        let mut tx = broadcast::Publisher::<Msg>::create(&name, &opts).unwrap();
        let mut a = Sub::start(&name, &backend, &env);
        let mut b = Sub::start(&name, &backend, &env);
        let mut c = Sub::start(&name, &backend, &env);
        a.kill9();
        c.tell("recv 21");
        // A ring of 16: the publisher waits for A (dropped as dead) and B (evicted).
        for i in 0..21 {
            tx.send(Msg::new(i)).unwrap();
        }
        assert_eq!(c.got(), (21, 0));
        c.tell("drain"); // nothing more: its cursor is published where it is
        assert_eq!(c.got(), (0, 0));
        for ch in look(&name, &backend) {
            let r = ch.ring.as_ref().unwrap();
            assert_eq!((r.sent, r.len, r.received), (21, 0, 21), "{backend}");
            let t = ch.topic.as_ref().unwrap();
            assert_eq!(
                t.overflow,
                broadcast::Overflow::Block {
                    evict_after: Some(Duration::from_millis(500))
                }
            );
            assert_eq!(
                subscribers(&ch),
                [
                    (1, a.pid, false, 16, 0, false),
                    (2, b.pid, true, 16, 0, true),
                    (3, c.pid, true, 0, 0, false),
                ],
                "{backend}"
            );
            assert_eq!(t.slowest().map(|s| s.pid), Some(c.pid));
            assert!(!t.subscribers[1].is_active() && t.subscribers[2].is_active());
        }
        // What inspect said is what B is told.
        b.tell("recv 1");
        b.expect("EVICTED");
        b.finish();
        c.finish();
        drop(tx);
        assert!(
            matches!(inspect::stat(&name, &backend), Err(Error::NotFound { .. })),
            "{backend}: the last one out did not remove the topic"
        );
    }
}

/// Where a topic's lines are: the control line right after the 2688-byte header, then the
/// line of subscriber place `p` at `p` lines after it.
const CONTROL_AT: usize = 2688;
const LINE: usize = 128;

/// Writes whole objects over and over for [`hostile_topics_never_panic`]: a file's content, or
/// the bytes of one System V segment of a fixed size, attached read-write once.
enum Writer {
    Path(std::path::PathBuf),
    SysV(*mut u8, usize),
}

impl Writer {
    fn new(name: &str, backend: &Backend, len: usize) -> Writer {
        match backend {
            Backend::SysV => {
                common::plant(name, backend, &vec![0u8; len]);
                // SAFETY: plain system calls on the segment just made (at least `len` bytes);
                // it is detached in `drop`.
                unsafe {
                    let id = libc::shmget(Backend::sysv_key(name), 0, 0);
                    assert!(id >= 0);
                    let p = libc::shmat(id, std::ptr::null(), 0);
                    assert_ne!(p as isize, -1);
                    Writer::SysV(p.cast(), len)
                }
            }
            Backend::File(dir) => Writer::Path(dir.join(name)),
            _ => Writer::Path(std::path::Path::new("/dev/shm").join(name)),
        }
    }

    fn write(&self, bytes: &[u8]) {
        match self {
            Writer::Path(p) => std::fs::write(p, bytes).unwrap(),
            Writer::SysV(p, len) => {
                assert_eq!(bytes.len(), *len);
                // SAFETY: the attachment is `len` bytes and lives until `drop`; nobody else
                // uses the segment (the test made it), and the inspector only reads it, in
                // this thread, after the copy.
                unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), *p, *len) };
            }
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if let Writer::SysV(p, _) = self {
            // SAFETY: the attachment made in `new`, detached once.
            unsafe { libc::shmdt(p.cast()) };
        }
    }
}

/// Issue 19: a broadcast topic's header and lines with every 4-byte word set to hostile values,
/// and its subscriber lines' 8-byte words too, on every backend: `stat` gives an error or a
/// channel whose lags and len fit the ring, never a panic; the words that say something are
/// read where they are (a cursor gives its lag, an evicted word naming the place's generation
/// marks it evicted, an unknown overflow mode is incompatible); cut short, it is incompatible.
#[test]
fn hostile_topics_never_panic() {
    for backend in backends() {
        let name = unique_name("insp-hostile-topic");
        let _c = Cleanup(name.clone(), backend.clone());
        let opts = Options::new()
            .backend(backend.clone())
            .capacity(16)
            .max_subscribers(4);
        // A publisher, and two subscribers of which one read everything: 20 published.
        let mut tx = broadcast::Publisher::<Msg>::create(&name, &opts).unwrap();
        let rx1 = broadcast::Subscriber::<Msg>::open(&name, &opts).unwrap();
        let mut rx2 = broadcast::Subscriber::<Msg>::open(&name, &opts).unwrap();
        for i in 0..20 {
            tx.send(Msg::new(i)).unwrap();
        }
        // Lapped (told `Lagged(5)`), then everything to the end, where the cursor is published.
        while let Ok(_) | Err(broadcast::TryRecvError::Lagged(_)) = rx2.try_recv() {}
        let good = object_bytes(&name, &backend);
        drop((tx, rx1, rx2));
        let writer = Writer::new(&name, &backend, good.len());
        let stat = |bytes: &[u8]| {
            writer.write(bytes);
            inspect::stat(&name, &backend)
        };

        // As made: place 1 at 0 (lag 16, clamped), place 2 at 20 after losing 5. (Whether
        // they read as alive depends on the backend: on System V the copied entries name this
        // process's liveness token, which lives.)
        let ch = stat(&good).unwrap();
        let subs: Vec<_> = subscribers(&ch)
            .into_iter()
            .map(|(i, pid, _, lag, lagged, ev)| (i, pid, lag, lagged, ev))
            .collect();
        let me = std::process::id();
        assert_eq!(
            subs,
            [(1, me, 16, 0, false), (2, me, 0, 5, false)],
            "{backend}"
        );
        let lines_end = CONTROL_AT + LINE * 5;
        let set = |at: usize, v: &[u8]| {
            let mut b = good.clone();
            b[at..at + v.len()].copy_from_slice(v);
            b
        };
        // Each word where it belongs.
        let sub2 = CONTROL_AT + 2 * LINE;
        let lag2 = |b: &[u8]| subscribers(&stat(b).unwrap())[1].3;
        assert_eq!(lag2(&set(sub2, &17u64.to_ne_bytes())), 3);
        assert_eq!(
            lag2(&set(sub2, &25u64.to_ne_bytes())),
            0,
            "a cursor ahead of tail"
        );
        assert_eq!(
            lag2(&set(sub2, &u64::MAX.to_ne_bytes())),
            16,
            "21 behind, wrapping"
        );
        assert_eq!(lag2(&set(sub2, &(20u64 << 40).to_ne_bytes())), 0);
        let far_behind = 20u64.wrapping_sub(1 << 40);
        assert_eq!(lag2(&set(sub2, &far_behind.to_ne_bytes())), 16, "clamped");
        let sub1 = CONTROL_AT + LINE;
        let s1 = |b: &[u8]| subscribers(&stat(b).unwrap())[0];
        assert_eq!(
            s1(&set(sub1 + 8, &u64::MAX.to_ne_bytes())).4,
            u64::MAX,
            "lagged"
        );
        assert!(
            s1(&set(sub1 + 16, &1u64.to_ne_bytes())).5,
            "generation 1 evicted"
        );
        assert!(
            !s1(&set(sub1 + 16, &2u64.to_ne_bytes())).5,
            "another generation's"
        );
        let mut block = set(CONTROL_AT, &2u32.to_ne_bytes());
        block[CONTROL_AT + 4..CONTROL_AT + 8].copy_from_slice(&250u32.to_ne_bytes());
        assert_eq!(
            stat(&block).unwrap().topic.unwrap().overflow,
            broadcast::Overflow::Block {
                evict_after: Some(Duration::from_millis(250))
            }
        );
        let bad = stat(&set(CONTROL_AT, &7u32.to_ne_bytes())).unwrap();
        assert_eq!(bad.state, State::Incompatible);
        assert!(
            bad.problem.as_deref().unwrap().contains("overflow mode 7"),
            "{:?}",
            bad.problem
        );
        assert!(bad.topic.is_none() && bad.ring.is_none());

        // Every word of the header and the lines.
        let check = |what: &str, bytes: &[u8]| match stat(bytes) {
            Ok(ch) => {
                assert!(ch.endpoints.len() <= 128, "{what}");
                if let Some(r) = &ch.ring {
                    assert!(r.len <= r.capacity, "{what}: {r:?}");
                    if let Some(t) = &ch.topic {
                        assert!(t.subscribers.len() <= 127, "{what}");
                        assert!(t.subscribers.iter().all(|s| s.lag <= r.capacity), "{what}");
                    }
                }
            }
            Err(Error::Incompatible { .. }) => {}
            Err(e) => panic!("{backend}: {what}: {e}"),
        };
        for at in (0..lines_end).step_by(4) {
            for v in [0u32, 1, 2, 3, 0x7fff_ffff, u32::MAX] {
                check(&format!("offset {at} = {v:#x}"), &set(at, &v.to_ne_bytes()));
            }
        }
        for at in (CONTROL_AT + LINE..lines_end).step_by(8) {
            for v in [u64::MAX, 1 << 63, 0x8000_0000] {
                check(&format!("offset {at} = {v:#x}"), &set(at, &v.to_ne_bytes()));
            }
        }
        inspect::list(&backend).unwrap();
        drop(writer);

        // Cut short: the object ends in the header, in the lines, or before the last slot.
        common::remove(&name, &backend);
        for len in [
            8,
            CONTROL_AT,
            CONTROL_AT + 64,
            lines_end - 8,
            lines_end,
            good.len() - 8,
        ] {
            let len = len.min(good.len());
            common::remove(&name, &backend);
            common::plant(&name, &backend, &good[..len]);
            match inspect::stat(&name, &backend) {
                Ok(ch) => assert_eq!(ch.state, State::Incompatible, "{backend}: {len} bytes"),
                Err(Error::Incompatible { .. }) => {}
                Err(e) => panic!("{backend}: {len} bytes: {e}"),
            }
        }
    }
}
