//! Bad input gets a clear error, never a panic: names, options, wrong type or kind, garbage
//! and unready headers, second endpoints, symlinks, permissions.

mod common;

use std::time::Duration;

use common::{Cleanup, Msg, assert_gone, backends, exists, plant, unique_name};
use shmchan::{Backend, Error, Options, spsc};

#[test]
fn missing_name_is_not_found() {
    for backend in backends() {
        let name = unique_name("missing");
        let opts = Options::new().backend(backend.clone());
        let err = spsc::Receiver::<u64>::open(&name, &opts).unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{backend}: {err:?}");
        let text = err.to_string();
        assert!(text.contains(&name), "message names the channel: {text}");
        assert!(!exists(&name, &backend), "open must not create anything");
    }
}

#[test]
fn invalid_names_are_rejected() {
    let long = "x".repeat(201);
    for backend in backends() {
        let opts = Options::new().backend(backend.clone());
        for bad in ["", "a/b", "/lead", long.as_str(), ".", "..", "nul\0byte"] {
            let err = spsc::Sender::<u64>::create(bad, &opts).unwrap_err();
            assert!(
                matches!(err, Error::InvalidName { .. }),
                "{bad:?} on {backend}: {err:?}"
            );
            let err = spsc::Receiver::<u64>::open(bad, &opts).unwrap_err();
            assert!(
                matches!(err, Error::InvalidName { .. }),
                "{bad:?} on {backend}: {err:?}"
            );
        }
    }
}

#[test]
fn capacity_zero_and_huge_are_rejected() {
    for backend in backends() {
        for cap in [0, Options::MAX_CAPACITY + 1] {
            let name = unique_name("cap");
            let _cleanup = Cleanup(name.clone(), backend.clone());
            let opts = Options::new().backend(backend.clone()).capacity(cap);
            let err = spsc::Sender::<u64>::create(&name, &opts).unwrap_err();
            assert!(
                matches!(err, Error::InvalidOptions { .. }),
                "{cap} on {backend}: {err:?}"
            );
            assert!(err.to_string().contains("capacity"), "{err}");
            assert!(
                !exists(&name, &backend),
                "nothing is created for bad options"
            );
        }
    }
    assert!(matches!(
        spsc::channel::<u8>(0),
        Err(Error::InvalidOptions { .. })
    ));
}

#[test]
fn capacity_rounds_up_to_a_power_of_two() {
    let (tx, rx) = spsc::channel::<u8>(5).unwrap();
    assert_eq!((tx.capacity(), rx.capacity()), (8, 8));
    for i in 0..8 {
        tx.try_send(i).unwrap();
    }
    assert!(tx.try_send(8).unwrap_err().is_full());
}

#[test]
fn create_over_a_live_channel_fails_and_the_channel_keeps_working() {
    for backend in backends() {
        let name = unique_name("dup");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let opts = Options::new().backend(backend.clone()).capacity(4);
        let tx = spsc::Sender::<Msg>::create(&name, &opts).unwrap();
        let rx = spsc::Receiver::<Msg>::open(&name, &opts).unwrap();
        let err = spsc::Sender::<Msg>::create(&name, &opts).unwrap_err();
        assert!(
            matches!(err, Error::AlreadyExists { .. }),
            "{backend}: {err:?}"
        );
        let err = spsc::Receiver::<Msg>::create(&name, &opts).unwrap_err();
        assert!(
            matches!(err, Error::AlreadyExists { .. }),
            "{backend}: {err:?}"
        );
        tx.send(Msg::new(1)).unwrap();
        assert_eq!(rx.recv().unwrap(), Msg::new(1));
        drop((tx, rx));
        assert_gone(&name, &backend);
    }
}

#[test]
fn wrong_payload_type_is_incompatible() {
    for backend in backends() {
        let name = unique_name("type");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let opts = Options::new().backend(backend.clone());
        let _tx = spsc::Sender::<u64>::create(&name, &opts).unwrap();
        for err in [
            spsc::Receiver::<u32>::open(&name, &opts).unwrap_err(), // other size
            spsc::Receiver::<i64>::open(&name, &opts).unwrap_err(), // same size, other type
            spsc::Receiver::<[u8; 8]>::open(&name, &opts).unwrap_err(), // other alignment
        ] {
            assert!(
                matches!(err, Error::Incompatible { .. }),
                "{backend}: {err:?}"
            );
            assert!(err.to_string().contains("payload type mismatch"), "{err}");
        }
        // The failed opens did not take the receiver's place.
        let rx = spsc::Receiver::<u64>::open(&name, &opts).unwrap();
        assert!(rx.try_recv().unwrap_err().is_empty());
    }
}

#[test]
fn second_sender_or_receiver_is_refused() {
    for backend in backends() {
        let name = unique_name("second");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let opts = Options::new().backend(backend.clone());
        let tx = spsc::Sender::<u64>::create(&name, &opts).unwrap();
        let err = spsc::Sender::<u64>::open(&name, &opts).unwrap_err();
        assert!(
            matches!(err, Error::EndpointTaken { role: "sender", .. }),
            "{backend}: {err:?}"
        );
        let rx = spsc::Receiver::<u64>::open(&name, &opts).unwrap();
        let err = spsc::Receiver::<u64>::open(&name, &opts).unwrap_err();
        assert!(
            matches!(
                err,
                Error::EndpointTaken {
                    role: "receiver",
                    ..
                }
            ),
            "{err:?}"
        );
        // A sender that has left is replaced by the next one, and the receiver that saw it
        // go works again.
        drop(tx);
        assert!(rx.recv().is_err());
        let tx = spsc::Sender::<u64>::open(&name, &opts).unwrap();
        tx.send(5).unwrap();
        assert_eq!(rx.recv(), Ok(5), "{backend}");
        drop((tx, rx));
        assert_gone(&name, &backend);
    }
}

/// Bytes of a real region of `name`, created and then copied out.
fn real_region_bytes(name: &str, backend: &Backend) -> Vec<u8> {
    let opts = Options::new().backend(backend.clone()).capacity(16);
    let _tx = spsc::Sender::<u64>::create(name, &opts).unwrap();
    common::region_bytes(name, backend)
}

#[test]
fn garbage_header_is_incompatible() {
    let mut seed = 0x1234_5678_9abc_def0u64;
    let garbage: Vec<u8> = (0..16384)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect();
    for backend in backends() {
        let name = unique_name("garbage");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        plant(&name, &backend, &garbage);
        let opts = Options::new()
            .backend(backend.clone())
            .open_timeout(Duration::from_secs(10));
        let t0 = std::time::Instant::now();
        let err = spsc::Receiver::<u64>::open(&name, &opts).unwrap_err();
        // Another program's bytes: said at once, naming what was found (issue 18 #6: `open`
        // waited out its whole timeout, then blamed a creator that may have died).
        assert!(
            matches!(err, Error::Incompatible { .. }),
            "{backend}: {err:?}"
        );
        assert!(
            err.to_string()
                .contains("not a shmchan channel (its first bytes are"),
            "{backend}: {err}"
        );
        assert!(
            t0.elapsed() < Duration::from_secs(1),
            "{backend}: not at once"
        );
    }
}

#[test]
fn tampered_headers_are_reported() {
    // (offset, new little-endian u32, expected words in the message)
    let cases: &[(usize, u32, &str)] = &[
        (0, 0x0bad_f00d, "not a shmchan channel"),
        (8, 99, "layout version 99"),
        (12, 2, "MPMC channel, opened as SPSC"),
        (12, 7, "unknown channel kind"),
        (16, 4, "payload type mismatch"),
        (40, 3, "not a power of two"), // capacity
        (48, 4, "do not match"),       // slot stride
        (72, 0, "0 senders"),          // max_senders
        (72, 2, "SPSC channel with 2 senders"),
        (80, 5000, "name stored in the header is corrupt"),
    ];
    for backend in backends() {
        for &(off, val, words) in cases {
            let name = unique_name("tamper");
            let _cleanup = Cleanup(name.clone(), backend.clone());
            let mut bytes = real_region_bytes(&name, &backend);
            assert_gone(&name, &backend);
            bytes[off..off + 4].copy_from_slice(&val.to_le_bytes());
            plant(&name, &backend, &bytes);
            let opts = Options::new().backend(backend.clone());
            let err = spsc::Receiver::<u64>::open(&name, &opts).unwrap_err();
            assert!(
                matches!(err, Error::Incompatible { .. }),
                "{backend} @{off}: {err:?}"
            );
            assert!(err.to_string().contains(words), "{backend} @{off}: {err}");
        }
    }
}

#[test]
fn region_larger_than_its_file_is_reported() {
    let dir = common::file_dir();
    for backend in [Backend::Posix, dir.backend()] {
        let name = unique_name("short");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let bytes = real_region_bytes(&name, &backend);
        plant(&name, &backend, &bytes[..3072]); // header intact, slots cut off
        let err = spsc::Receiver::<u64>::open(&name, &Options::new().backend(backend.clone()))
            .unwrap_err();
        assert!(
            err.to_string().contains("header describes"),
            "{backend}: {err}"
        );
    }
}

#[test]
fn unready_region_times_out_with_not_ready() {
    for backend in backends() {
        let name = unique_name("unready");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        // A creator that marked its object and died before publishing.
        plant(&name, &backend, &common::half_made(8192));
        let opts = Options::new()
            .backend(backend.clone())
            .open_timeout(Duration::from_millis(100));
        let t0 = std::time::Instant::now();
        let err = spsc::Receiver::<u64>::open(&name, &opts).unwrap_err();
        assert!(matches!(err, Error::NotReady { .. }), "{backend}: {err:?}");
        assert!(t0.elapsed() >= Duration::from_millis(100));
        assert!(err.to_string().contains("not initialised"), "{err}");
    }
}

/// An object of zeros is not a channel of ours: no creator leaves one (each marks its object
/// first). POSIX and File objects say so at once; a System V segment, whose creator cannot
/// mark it in the same step as making it, is given the open timeout to be marked.
#[test]
fn zeroed_region_is_incompatible() {
    for backend in backends() {
        let name = unique_name("zeros");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        plant(&name, &backend, &[0u8; 8192]);
        let opts = Options::new()
            .backend(backend.clone())
            .open_timeout(Duration::from_millis(100));
        let err = spsc::Receiver::<u64>::open(&name, &opts).unwrap_err();
        assert!(
            matches!(err, Error::Incompatible { .. }),
            "{backend}: {err:?}"
        );
        assert!(err.to_string().contains("all zeros"), "{err}");
    }
}

#[test]
fn too_small_region_is_reported() {
    let dir = common::file_dir();
    for backend in [Backend::Posix, dir.backend()] {
        // Another program's few bytes: not ours, at once.
        let name = unique_name("tiny");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        plant(&name, &backend, b"hello");
        let opts = Options::new()
            .backend(backend.clone())
            .open_timeout(Duration::from_secs(10));
        let t0 = std::time::Instant::now();
        let err = spsc::Receiver::<u64>::open(&name, &opts).unwrap_err();
        assert!(
            matches!(err, Error::Incompatible { .. }),
            "{backend}: {err:?}"
        );
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "{backend}: not at once"
        );
        // A creator that marked its object and died before sizing it: not ready.
        let name = unique_name("tiny-marked");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        plant(&name, &backend, &common::mark());
        let opts = opts.open_timeout(Duration::from_millis(50));
        let err = spsc::Receiver::<u64>::open(&name, &opts).unwrap_err();
        assert!(matches!(err, Error::NotReady { .. }), "{backend}: {err:?}");
    }
    let name = unique_name("tiny-sysv");
    let _cleanup = Cleanup(name.clone(), Backend::SysV);
    plant(&name, &Backend::SysV, b"hello");
    let err =
        spsc::Receiver::<u64>::open(&name, &Options::new().backend(Backend::SysV)).unwrap_err();
    assert!(
        err.to_string().contains("smaller than a shmchan header"),
        "{err}"
    );
}

#[test]
fn file_backend_refuses_symlinks_and_missing_directories() {
    let tmp = common::file_dir();
    let dir = tmp.path().clone();
    let name = unique_name("link");
    let _cleanup = Cleanup(name.clone(), Backend::File(dir.clone()));
    std::os::unix::fs::symlink("/etc/hostname", dir.join(&name)).unwrap();
    let opts = Options::new().backend(Backend::File(dir.clone()));
    let err = spsc::Receiver::<u64>::open(&name, &opts).unwrap_err();
    assert!(err.to_string().contains("symbolic link"), "{err}");
    let err = spsc::Sender::<u64>::create(&name, &opts).unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err:?}");

    let missing = Backend::File(dir.join("no-such-dir"));
    let err = spsc::Sender::<u64>::create("x", &Options::new().backend(missing)).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(
        std::error::Error::source(&err).is_some(),
        "the OS error is the source"
    );
    assert!(err.to_string().contains("no-such-dir"), "{err}");
}

#[test]
fn mode_is_exact_whatever_the_umask() {
    // SAFETY: umask only changes this process's file-creation mask (restored below).
    let old = unsafe { libc::umask(0) };
    let dir = common::file_dir();
    for (mode, backend) in [
        (0o600, Backend::Posix),
        (0o640, Backend::Posix),
        (0o604, dir.backend()),
    ] {
        let name = unique_name("mode");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let _tx =
            spsc::Sender::<u64>::create(&name, &Options::new().backend(backend.clone()).mode(mode))
                .unwrap();
        let path = match &backend {
            Backend::File(d) => d.join(&name),
            _ => std::path::Path::new("/dev/shm").join(&name),
        };
        let got = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(path).unwrap().permissions(),
        ) & 0o777;
        assert_eq!(got, mode, "{backend}");
    }
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    let name = unique_name("mode-sysv");
    let _cleanup = Cleanup(name.clone(), Backend::SysV);
    let _tx = spsc::Sender::<u64>::create(&name, &Options::new().backend(Backend::SysV)).unwrap();
    // SAFETY: IPC_STAT into a zeroed shmid_ds.
    let perm = unsafe {
        let mut ds: libc::shmid_ds = std::mem::zeroed();
        libc::shmctl(
            libc::shmget(Backend::sysv_key(&name), 0, 0),
            libc::IPC_STAT,
            &mut ds,
        );
        ds.shm_perm.mode & 0o777
    };
    assert_eq!(perm, 0o600);
}

#[test]
fn full_dev_shm_is_an_error_not_a_sigbus() {
    // A region bigger than /dev/shm can hold: posix_fallocate must refuse it at create.
    let name = unique_name("huge");
    let _cleanup = Cleanup(name.clone(), Backend::Posix);
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: statvfs fills `st` on success.
    let free = unsafe {
        assert_eq!(libc::statvfs(c"/dev/shm".as_ptr(), st.as_mut_ptr()), 0);
        let st = st.assume_init();
        st.f_bavail * st.f_frsize
    };
    let slots = (free / 4096 + 1024).next_power_of_two();
    if slots > Options::MAX_CAPACITY as u64 {
        return; // /dev/shm larger than 4 TiB: cannot build a region that overflows it
    }
    let err = spsc::Sender::<[u8; 4096]>::create(&name, &Options::new().capacity(slots as usize))
        .unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("posix_fallocate"), "{err}");
    assert!(
        !exists(&name, &Backend::Posix),
        "a failed create leaves nothing behind"
    );
}

/// `Duration::MAX` (or any timeout past what `Instant` can hold) means "as long as it takes",
/// for every call that takes a timeout, never a panic.
#[test]
fn duration_max_means_forever() {
    let forever = Duration::MAX;
    let (tx, rx) = spsc::channel::<u64>(4).unwrap();
    tx.send_timeout(1, forever).unwrap();
    assert_eq!(rx.recv_timeout(forever), Ok(1));
    tx.send_slice(&[2, 3]).unwrap();
    let mut buf = [0u64; 4];
    assert_eq!(rx.recv_slice_timeout(&mut buf, forever), Ok(2));
    assert_eq!(tx.wait_for_peer(forever), Ok(()));
    // A receiver blocked "for ever" is woken by a send.
    let t = std::thread::spawn(move || rx.recv_timeout(forever));
    std::thread::sleep(Duration::from_millis(50));
    tx.send(4).unwrap();
    assert_eq!(t.join().unwrap(), Ok(4));

    let (mtx, mrx) = shmchan::mpmc::channel::<u64>(4).unwrap();
    mtx.send_timeout(5, forever).unwrap();
    assert_eq!(mrx.recv_timeout(forever), Ok(5));
    assert_eq!(mrx.wait_for_peer(forever), Ok(()));

    for backend in backends() {
        let name = unique_name("forever");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let opts = Options::new()
            .backend(backend.clone())
            .open_timeout(forever);
        let tx = spsc::Sender::<u64>::create(&name, &opts).unwrap();
        let rx = spsc::Receiver::<u64>::open(&name, &opts).unwrap();
        tx.send_timeout(6, forever).unwrap();
        assert_eq!(rx.recv_timeout(forever), Ok(6));
        assert!(matches!(
            shmchan::remove(&name, &opts),
            Err(Error::InUse { .. })
        ));
        drop((tx, rx));
        assert_gone(&name, &backend);
    }
}

/// Memory the system accounts as shared (tmpfs, System V), in bytes.
fn shmem_bytes() -> u64 {
    let info = std::fs::read_to_string("/proc/meminfo").unwrap();
    let line = info.lines().find(|l| l.starts_with("Shmem:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

/// Opening a large object that is not a channel (a 256 MiB sparse one) looks at its header
/// and gives up, without faulting the rest of it into memory.
#[test]
fn opening_a_large_foreign_object_faults_nothing_in() {
    const SIZE: u64 = 256 << 20;
    // A File directory on a tmpfs, so its pages count as shared memory too.
    let dir = std::path::Path::new("/dev/shm").join(unique_name("sparse-dir"));
    std::fs::create_dir(&dir).unwrap();
    struct RemoveDir(std::path::PathBuf);
    impl Drop for RemoveDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _dir = RemoveDir(dir.clone());
    for backend in [Backend::Posix, Backend::SysV, Backend::File(dir.clone())] {
        let name = unique_name("sparse");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        match &backend {
            Backend::SysV => {
                // SAFETY: creates a segment of SIZE bytes (its pages are allocated on first
                // touch only).
                let id = unsafe {
                    libc::shmget(
                        Backend::sysv_key(&name),
                        SIZE as usize,
                        libc::IPC_CREAT | 0o600,
                    )
                };
                assert!(id >= 0);
            }
            other => {
                let path = match other {
                    Backend::File(d) => d.join(&name),
                    _ => std::path::Path::new("/dev/shm").join(&name),
                };
                let f = std::fs::File::create(path).unwrap();
                f.set_len(SIZE).unwrap(); // sparse: no page allocated
            }
        }
        let before = shmem_bytes();
        let opts = Options::new()
            .backend(backend.clone())
            .open_timeout(Duration::from_millis(50));
        let err = spsc::Receiver::<u64>::open(&name, &opts).unwrap_err();
        assert!(
            matches!(err, Error::NotReady { .. } | Error::Incompatible { .. }),
            "{backend}: {err:?}"
        );
        let grown = shmem_bytes().saturating_sub(before);
        assert!(
            grown < 32 << 20,
            "{backend}: opening a {SIZE}-byte foreign object grew shared memory by {grown} bytes"
        );
    }
}

/// An in-process channel too large to allocate is an error, not an abort of the process.
#[test]
fn in_process_channel_too_large_for_memory_is_an_error() {
    let err = spsc::channel::<[u8; 4096]>(1 << 30).unwrap_err();
    assert!(matches!(err, Error::InvalidOptions { .. }), "{err:?}");
    assert!(err.to_string().contains("could not be allocated"), "{err}");
    let err = shmchan::mpmc::channel::<[u8; 4096]>(1 << 30).unwrap_err();
    assert!(matches!(err, Error::InvalidOptions { .. }), "{err:?}");
}
