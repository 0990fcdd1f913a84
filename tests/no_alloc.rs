//! The send and receive paths allocate nothing: a counting global allocator sees no
//! allocation on this thread while 100k messages go through SPSC and MPMC channels (in-process
//! and over POSIX shared memory), including the `try_`, blocking, `_timeout` and batch calls.

// The counter is this test's own instrument, not crate code checked by loom.
#![allow(clippy::disallowed_types)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use shmchan::{Options, mpmc, spsc};

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made on this thread while running `f`.
fn allocations(f: impl FnOnce()) -> u64 {
    let before = ALLOCS.with(Cell::get);
    f();
    ALLOCS.with(Cell::get) - before
}

const N: u64 = 100_000;

#[test]
fn spsc_in_process_sends_and_receives_without_allocating() {
    let (tx, rx) = spsc::channel::<[u64; 4]>(64).unwrap();
    let n = allocations(|| {
        for i in 0..N {
            tx.try_send([i; 4]).unwrap();
            assert_eq!(rx.try_recv(), Ok([i; 4]));
            tx.send([i; 4]).unwrap();
            assert_eq!(rx.recv(), Ok([i; 4]));
            tx.send_timeout([i; 4], Duration::from_secs(1)).unwrap();
            assert_eq!(rx.recv_timeout(Duration::from_secs(1)), Ok([i; 4]));
        }
        // Batches: whole, cut short by a full ring, and of one message.
        let batch = [[7u64; 4]; 48];
        let mut buf = [[0u64; 4]; 64];
        for _ in 0..N / 64 {
            tx.send_slice(&batch).unwrap();
            assert_eq!(tx.try_send_slice(&batch), Ok(16));
            assert_eq!(rx.recv_slice(&mut buf[..40]), Ok(40));
            assert_eq!(rx.try_recv_slice(&mut buf), Ok(24));
            tx.send([1; 4]).unwrap();
            let wait = Duration::from_secs(1);
            assert_eq!(rx.recv_slice_timeout(&mut buf, wait), Ok(1));
        }
        // The empty and full paths too.
        assert!(rx.try_recv().is_err());
        assert!(rx.recv_timeout(Duration::from_millis(1)).is_err());
        assert!(rx.try_recv_slice(&mut buf).is_err());
        assert!(
            rx.recv_slice_timeout(&mut buf, Duration::from_millis(1))
                .is_err()
        );
    });
    assert_eq!(n, 0, "allocations on the SPSC hot path");
}

#[test]
fn spsc_shared_memory_without_allocating() {
    let name = format!("shmchan-test-noalloc-{}", std::process::id());
    let tx = spsc::Sender::<u64>::create(&name, &Options::new().capacity(64)).unwrap();
    let rx = spsc::Receiver::<u64>::open(&name, &Options::new()).unwrap();
    let n = allocations(|| {
        for i in 0..N {
            tx.send(i).unwrap();
            assert_eq!(rx.recv(), Ok(i));
        }
    });
    assert_eq!(n, 0, "allocations on the SPSC hot path over shared memory");
}

#[test]
fn mpmc_sends_and_receives_without_allocating() {
    let (tx, rx) = mpmc::channel::<u64>(64).unwrap();
    let name = format!("shmchan-test-noalloc-mpmc-{}", std::process::id());
    let stx = mpmc::Sender::<u64>::create(&name, &Options::new().capacity(64)).unwrap();
    let srx = mpmc::Receiver::<u64>::open(&name, &Options::new()).unwrap();
    let n = allocations(|| {
        for i in 0..N {
            tx.try_send(i).unwrap();
            assert_eq!(rx.try_recv(), Ok(i));
            stx.send(i).unwrap();
            assert_eq!(srx.recv_timeout(Duration::from_secs(1)), Ok(i));
        }
    });
    assert_eq!(n, 0, "allocations on the MPMC hot path");
}

#[test]
fn frames_without_allocating() {
    use std::io::Write;
    let (mut tx, mut rx) = shmchan::frame::channel(4096).unwrap();
    let name = format!("shmchan-test-noalloc-frame-{}", std::process::id());
    let mut stx = shmchan::frame::Sender::create(&name, &Options::new().capacity(4096)).unwrap();
    let mut srx = shmchan::frame::Receiver::open(&name, &Options::new()).unwrap();
    let payload = [7u8; 300];
    let mut buf = Vec::with_capacity(4096); // recv_into reuses it
    let n = allocations(|| {
        for i in 0..N {
            let len = (i % 300) as usize;
            tx.try_send(&payload[..len]).unwrap();
            assert_eq!(rx.try_recv().unwrap().len(), len);
            stx.send(&payload[..len]).unwrap();
            assert_eq!(srx.recv_into(&mut buf), Ok(len));
            stx.send_timeout(&payload[..len], Duration::from_secs(1))
                .unwrap();
            assert_eq!(srx.recv_timeout(Duration::from_secs(1)).unwrap().len(), len);
            let mut loan = stx.loan(len).unwrap();
            loan.write_all(&payload[..len]).unwrap();
            loan.commit_written();
            assert_eq!(&*srx.recv().unwrap(), &payload[..len]);
        }
        // The empty paths too.
        assert!(srx.try_recv().is_err());
        assert!(srx.recv_timeout(Duration::from_millis(1)).is_err());
    });
    assert_eq!(n, 0, "allocations on the frame paths");
}

#[test]
fn pipes_without_allocating() {
    use std::io::{BufRead, Read, Write};
    let (mut w, mut r) = shmchan::pipe::pipe(4096).unwrap();
    let data = [3u8; 1000];
    let mut buf = [0u8; 1000];
    let n = allocations(|| {
        for i in 0..N / 10 {
            let len = (i % 1000) as usize;
            w.write_all(&data[..len]).unwrap();
            r.read_exact(&mut buf[..len]).unwrap();
            w.write_all(&data[..10]).unwrap();
            let got = r.fill_buf().unwrap().len();
            r.consume(got);
        }
    });
    assert_eq!(n, 0, "allocations on the pipe paths");
}

#[test]
fn loans_and_refs_without_allocating() {
    let name = format!("shmchan-test-noalloc-loans-{}", std::process::id());
    let mut tx = spsc::Sender::<[u64; 512]>::create(&name, &Options::new().capacity(4)).unwrap();
    let mut rx = spsc::Receiver::<[u64; 512]>::open(&name, &Options::new()).unwrap();
    let mname = format!("shmchan-test-noalloc-mloans-{}", std::process::id());
    let mtx = mpmc::Sender::<[u64; 512]>::create(&mname, &Options::new().capacity(4)).unwrap();
    let mrx = mpmc::Receiver::<[u64; 512]>::open(&mname, &Options::new()).unwrap();
    let second = Duration::from_secs(1);
    let big = [3u64; 512];
    let n = allocations(|| {
        for i in 0..N / 10 {
            let mut slot = tx.loan().unwrap();
            slot[0] = i;
            slot.commit();
            assert_eq!(rx.recv_ref().unwrap()[0], i);
            tx.try_loan().unwrap().commit();
            drop(rx.try_recv_ref().unwrap());
            tx.loan_timeout(second).unwrap().commit();
            drop(rx.recv_ref_timeout(second).unwrap());
            tx.send(big).unwrap(); // large values by reference
            assert_eq!(rx.recv().unwrap()[511], 3);
            let mut slot = mtx.loan().unwrap();
            slot[0] = i;
            slot.commit();
            drop(mtx.try_loan().unwrap()); // abandoned
            assert_eq!(mrx.recv_ref().unwrap()[0], i);
            mtx.loan_timeout(second).unwrap().commit();
            drop(mrx.recv_ref_timeout(second).unwrap());
            mtx.send(big).unwrap();
            assert_eq!(mrx.try_recv().unwrap()[0], 3);
        }
        assert!(rx.try_recv_ref().is_err());
        assert!(mrx.recv_ref_timeout(Duration::from_millis(1)).is_err());
    });
    assert_eq!(n, 0, "allocations on the loan and reference paths");
}
