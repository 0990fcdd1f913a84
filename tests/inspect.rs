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
    for off in (0..1920).step_by(4) {
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
