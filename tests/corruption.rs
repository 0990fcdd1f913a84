//! A hostile or broken peer: another mapping writes random bytes over a live region (header
//! included) while a receiver in a child process keeps calling `try_recv`, `recv_timeout`,
//! their batch forms, `len`, and finally drops its handle, and the sender in this process keeps
//! trying to send single messages and batches. Both must survive: errors and odd values are
//! fine, a crash (SIGSEGV, SIGBUS) or a hang is not. The same for an MPMC channel of `u64`s,
//! whose sends and receives are one 16-byte CAS each, with stamps and payload words written
//! under them.

mod common;

use std::time::{Duration, Instant};

use common::{Cleanup, Msg, backends, spawn, unique_name};
use shmchan::{Backend, Options, mpmc, spsc};

#[test]
#[ignore = "entry point of the child processes the other tests start"]
fn child_main() {
    common::child_main();
}

/// A second, independent read-write mapping of the region.
struct RawMap {
    ptr: *mut u8,
    len: usize,
    _keep: Option<memmap2::MmapMut>,
    sysv: bool,
}

impl RawMap {
    fn new(name: &str, backend: &Backend) -> RawMap {
        let path = match backend {
            Backend::Posix => std::path::Path::new("/dev/shm").join(name),
            Backend::File(dir) => dir.join(name),
            Backend::SysV => {
                // SAFETY: look the segment up, read its size, attach it read-write.
                unsafe {
                    let id = libc::shmget(Backend::sysv_key(name), 0, 0);
                    assert!(id >= 0);
                    let mut ds: libc::shmid_ds = std::mem::zeroed();
                    assert_eq!(libc::shmctl(id, libc::IPC_STAT, &mut ds), 0);
                    let p = libc::shmat(id, std::ptr::null(), 0);
                    assert_ne!(p as isize, -1);
                    return RawMap {
                        ptr: p.cast(),
                        len: ds.shm_segsz,
                        _keep: None,
                        sysv: true,
                    };
                }
            }
        };
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap();
        // SAFETY: a shared mapping of a file we opened; we only write bytes into it.
        let mut m = unsafe { memmap2::MmapMut::map_mut(&f) }.unwrap();
        RawMap {
            ptr: m.as_mut_ptr(),
            len: m.len(),
            _keep: Some(m),
            sysv: false,
        }
    }

    fn write_u64(&self, off: usize, v: u64) {
        assert!(off + 8 <= self.len);
        // SAFETY: in bounds of our own mapping; unaligned volatile write of plain bytes.
        unsafe { self.ptr.add(off).cast::<u64>().write_volatile(v) }
    }
}

impl Drop for RawMap {
    fn drop(&mut self) {
        if self.sysv {
            // SAFETY: detach the segment we attached in `new`.
            unsafe { libc::shmdt(self.ptr.cast()) };
        }
    }
}

#[test]
fn random_writes_over_a_live_region_do_not_crash_the_receiver() {
    for backend in backends() {
        let name = unique_name("scribble");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let opts = Options::new().backend(backend.clone()).capacity(64);
        let tx = spsc::Sender::<Msg>::create(&name, &opts).unwrap();
        for i in 0..32 {
            tx.send(Msg::new(i)).unwrap();
        }
        let mut child = spawn(
            "victim",
            &name,
            &backend,
            &[("SHMCHAN_TEST_MS", "1500".into())],
        );
        child.expect_line("READY", Duration::from_secs(10));
        let map = RawMap::new(&name, &backend);
        let mut seed = 0x2545_f491_4f6c_dd1du64 ^ std::process::id() as u64;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let batch: Vec<Msg> = (0..8).map(Msg::new).collect();
        let until = Instant::now() + Duration::from_millis(1500);
        let words = map.len / 8;
        let mut writes = 0u64;
        while Instant::now() < until {
            for _ in 0..1000 {
                let r = rnd();
                // Mostly the header (where the positions, endpoints and doorbells are), with
                // values that are sometimes plausible positions and sometimes anything.
                let word = if r & 3 == 0 {
                    (r >> 8) as usize % words
                } else {
                    (r >> 8) as usize % 192
                };
                let v = if r & 16 == 0 { rnd() % 256 } else { rnd() };
                map.write_u64(word * 8, v);
                writes += 1;
            }
            // Our sender faces the same garbage (the receiver's position, the endpoints).
            let _ = tx.try_send_slice(&batch);
            let _ = tx.try_send(Msg::new(0));
        }
        let line = child.expect_line("SURVIVED", Duration::from_secs(20));
        child.assert_success(Duration::from_secs(10));
        assert!(writes > 10_000, "the scribbler wrote only {writes} words");
        eprintln!("{backend}: victim survived {writes} random writes: {line}");
        drop(map);
        drop(tx); // our side survives its own drop over a garbage header too
    }
}

/// An MPMC channel of `u64`s (one-step sends and receives: a 16-byte CAS of stamp and payload
/// word) while a thread writes random words over it through another mapping, slots included,
/// *during* the calls: this process's sender and receiver keep sending and receiving (copies,
/// a reference, a loan) and survive, errors allowed, and every call returns (the one-step
/// paths' retries, against a payload word or a stamp that changes under them, are bounded).
#[test]
fn random_writes_over_a_live_word_mpmc_ring_do_not_crash_it() {
    for backend in backends() {
        let name = unique_name("scribble-mpmc");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let opts = Options::new().backend(backend.clone()).capacity(16);
        let tx = mpmc::Sender::<u64>::create(&name, &opts).unwrap();
        let rx = mpmc::Receiver::<u64>::open(&name, &opts).unwrap();
        let map = RawMap::new(&name, &backend);
        let (base, words) = (map.ptr as usize, map.len / 8);
        let until = Instant::now() + Duration::from_millis(1500);
        let (writes, calls) = std::thread::scope(|scope| {
            let scribbler = scope.spawn(move || {
                let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ std::process::id() as u64;
                let mut rnd = move || {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed
                };
                let mut writes = 0u64;
                while Instant::now() < until {
                    for _ in 0..64 {
                        let r = rnd();
                        // Header and slots alike; values that are sometimes plausible stamps
                        // (a small position, any state) and sometimes anything.
                        let word = (r >> 8) as usize % words;
                        let v = if r & 16 == 0 {
                            (rnd() % 64) << 16 | (r & 3)
                        } else {
                            rnd()
                        };
                        // SAFETY: `word < words`, inside the mapping `map`, which outlives this
                        // scope; aligned (page-aligned base, 8-byte words). A write the crate
                        // must survive, as `RawMap::write_u64`'s.
                        unsafe { (base as *mut u64).add(word).write_volatile(v) };
                        writes += 1;
                    }
                }
                writes
            });
            let mut calls = 0u64;
            while Instant::now() < until {
                let t0 = Instant::now();
                let _ = tx.try_send(calls);
                let _ = tx.send_timeout(calls, Duration::from_millis(1));
                let _ = rx.try_recv();
                let _ = rx.recv_timeout(Duration::from_millis(1));
                if let Ok(r) = rx.try_recv_ref() {
                    let _ = *r;
                }
                if let Ok(mut loan) = tx.try_loan() {
                    *loan = calls;
                    loan.commit();
                }
                let _ = rx.len();
                assert!(
                    t0.elapsed() < Duration::from_secs(2),
                    "{backend}: a call took {:?}",
                    t0.elapsed()
                );
                calls += 1;
            }
            (scribbler.join().unwrap(), calls)
        });
        assert!(writes > 10_000, "the scribbler wrote only {writes} words");
        eprintln!("{backend}: sender and receiver survived {writes} random writes, {calls} rounds");
        drop(map);
        drop((tx, rx));
    }
}
