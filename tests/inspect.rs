//! `shmchan::inspect`: every kind on every backend, read-only (not a byte changes), a killed
//! holder seen as abandoned without being marked, and hostile headers that give errors or an
//! incompatible channel, never a panic.

mod common;

use std::time::Duration;

use common::{Cleanup, Msg, backends, spawn, unique_name};
use shmchan::inspect::{self, EndpointState, Kind, Role, State};
use shmchan::{Backend, Error, Options, frame, mpmc, pipe, spsc};

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
/// cannot shrink).
#[test]
fn a_shrinking_object_never_crashes_the_inspector() {
    use std::os::unix::fs::FileExt;
    use std::process::{Command, Stdio};
    use std::sync::mpsc;
    use std::time::Instant;

    let dir = common::file_dir();
    for backend in [Backend::Posix, dir.backend()] {
        let name = unique_name("insp-shrink");
        let _c = Cleanup(name.clone(), backend.clone());
        // A real channel's bytes, planted as an object that no process holds.
        let opts = Options::new().backend(backend.clone()).capacity(8);
        let tx = spsc::Sender::<Msg>::create(&name, &opts).unwrap();
        tx.send(Msg::new(1)).unwrap();
        let good = object_bytes(&name, &backend);
        drop(tx);
        common::plant(&name, &backend, &good);
        let path = match &backend {
            Backend::File(d) => d.join(&name),
            _ => std::path::Path::new("/dev/shm").join(&name),
        };

        let (stop, stopped) = mpsc::channel::<()>();
        let shrinker = std::thread::spawn(move || {
            let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
            let mut rounds = 0u64;
            // Each state held a moment, so the looker sees both (and is caught between its
            // `fstat` and its read of the header in some rounds).
            while let Err(std::sync::mpsc::TryRecvError::Empty) = stopped.try_recv() {
                f.set_len(0).unwrap();
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
                panic!("{backend}: the looker did not finish within 60 s");
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let _ = stop.send(());
        let rounds = shrinker.join().unwrap();
        let mut out = String::new();
        std::io::Read::read_to_string(&mut looker.stdout.take().unwrap(), &mut out).unwrap();
        assert!(
            status.success(),
            "{backend}: the looker died while the object shrank under it: {status} \
             (signal 7 is SIGBUS); it printed: {out}"
        );
        eprintln!("{backend}: {rounds} shrink rounds; looker: {}", out.trim());
        // The race was run: the looker saw the object both empty and whole.
        let seen = out
            .lines()
            .find(|l| l.starts_with("SAW"))
            .expect("a SAW line");
        assert!(
            !seen.contains("empty=0 ") && !seen.ends_with("whole=0"),
            "{backend}: the looker never saw the object both empty and whole: {seen}"
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
    let (mut empty, mut whole, mut other) = (0u32, 0u32, 0u32);
    for round in 0..400 {
        match inspect::stat(&name, &backend) {
            Ok(ch) if ch.object.size == 0 => empty += 1,
            Ok(ch) if ch.ring.is_some() => whole += 1,
            Ok(_) | Err(Error::Incompatible { .. }) => other += 1,
            Err(e) => panic!("round {round}: {e}"),
        }
        inspect::list(&backend).unwrap();
        if std::time::Instant::now() > until {
            break;
        }
    }
    println!("SAW other={other} empty={empty} whole={whole}");
}
