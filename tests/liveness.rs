//! Liveness the kernel vouches for, with real processes over every backend:
//!
//! - a live peer is never declared dead: in another pid namespace (with its own `/proc`, or
//!   none), behind `hidepid=2` as another user, or with a zombie thread-group leader;
//! - a peer that `exec`s, or is killed, is seen gone, also by a sender whose ring never fills;
//! - a forked child's copy of a handle neither acts nor keeps its parent alive;
//! - a death while parked, attaching or detaching leaves nothing that slows or wedges the
//!   channel, and a peer that cannot use `membarrier` loses no wake-up;
//! - `is_connected` and `wait_for_peer` say what the kernel says.
//!
//! The namespace and other-user tests need root (CI runs as root); elsewhere they print why
//! they were skipped.

mod common;

use std::time::{Duration, Instant};

use common::{Cleanup, Msg, assert_gone, backends, spawn, spawn_via, unique_name};
use shmchan::{Backend, Options, RecvTimeoutError, TryRecvError, WaitForPeerError, mpmc, spsc};

const SHORT: Duration = Duration::from_secs(10);
/// Pause between messages in the slow ping-pong: longer than the probe interval (40 ms), so
/// both sides probe each other while they wait.
const PACE_MS: u64 = 50;
const ROUND_TRIPS: u64 = 8;

#[test]
#[ignore = "entry point of the child processes the other tests start"]
fn child_main() {
    common::child_main();
}

/// Ping-pong slowly with a child started through `wrapper` (as `uid`), so that each side waits
/// longer than a probe interval for the other: every message must arrive, and neither side may
/// ever see the other as gone while it runs.
fn slow_pingpong(wrapper: &[&str], uid: Option<u32>, zombie: bool, backend: &Backend) {
    let name = unique_name("slow");
    let (ping, pong) = (format!("{name}-ping"), format!("{name}-pong"));
    let _c1 = Cleanup(ping.clone(), backend.clone());
    let _c2 = Cleanup(pong.clone(), backend.clone());
    // Mode 0666: the child may run as another user.
    let opts = Options::new().backend(backend.clone()).mode(0o666);
    let tx = spsc::Sender::<Msg>::create(&ping, &opts).unwrap();
    let rx = spsc::Receiver::<Msg>::create(&pong, &opts).unwrap();
    let mut env = vec![
        ("SHMCHAN_TEST_PACE_MS", PACE_MS.to_string()),
        ("SHMCHAN_TEST_N", ROUND_TRIPS.to_string()),
    ];
    if zombie {
        env.push(("SHMCHAN_TEST_ZOMBIE", "1".into()));
    }
    let mut child = spawn_via(wrapper, uid, "echo-slow", &name, backend, &env);
    child.expect_line("READY", SHORT);
    if zombie {
        assert_eq!(
            common::proc_state(child.pid()),
            Some('Z'),
            "{backend}: the child's leader must be a zombie for this test to mean anything"
        );
    }
    for i in 0..ROUND_TRIPS {
        std::thread::sleep(Duration::from_millis(PACE_MS));
        tx.send(Msg::new(i))
            .unwrap_or_else(|_| panic!("{backend}: the live child was declared dead"));
        // The child is pausing before its reply: alive, and asked about by the kernel here.
        assert!(tx.is_connected() && rx.is_connected(), "{backend}");
        match rx.recv_timeout(SHORT) {
            Ok(m) => assert_eq!(m, Msg::new(i), "{backend}"),
            Err(e) => panic!("{backend}: round trip {i}: {e} (the live child was declared dead)"),
        }
    }
    assert_eq!(
        child.expect_line("ECHOED", SHORT),
        ROUND_TRIPS.to_string(),
        "{backend}"
    );
    child.assert_success(SHORT);
    // We leave last (the child may be another user, who may not remove our names).
    drop((tx, rx));
    assert_gone(&ping, backend);
    assert_gone(&pong, backend);
}

/// Print why a test is skipped and say whether it is.
fn skipped(test: &str, why: Option<String>) -> bool {
    if let Some(why) = why {
        eprintln!("SKIPPED {test}: {why}");
        return true;
    }
    false
}

/// A peer in another pid namespace (its own `/proc`, in which it is pid 1) is alive: its pid
/// means nothing here, and ours nothing there.
#[test]
fn peer_in_another_pid_namespace_is_alive() {
    if skipped("pid namespace", common::namespaces_unavailable()) {
        return;
    }
    let wrapper = ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc"];
    for backend in backends() {
        slow_pingpong(&wrapper, None, false, &backend);
    }
}

/// A peer in another pid namespace with no `/proc` at all is alive, and sees us alive.
#[test]
fn peer_without_proc_is_alive() {
    if skipped("no /proc", common::namespaces_unavailable()) {
        return;
    }
    let wrapper = [
        "unshare",
        "--pid",
        "--fork",
        "--kill-child",
        "--mount",
        "sh",
        "-c",
        "mount -t tmpfs none /proc && exec \"$0\" \"$@\"",
    ];
    for backend in backends() {
        slow_pingpong(&wrapper, None, false, &backend);
    }
}

/// A peer of another user behind `hidepid=2` (it cannot see our `/proc` entries) is alive,
/// and sees us alive.
#[test]
fn peer_behind_hidepid_as_another_user_is_alive() {
    if skipped("hidepid", common::namespaces_unavailable()) {
        return;
    }
    let wrapper = [
        "unshare",
        "--mount",
        "sh",
        "-c",
        "mount -t proc -o hidepid=2 proc /proc && \
         exec setpriv --reuid=65534 --regid=65534 --clear-groups \"$0\" \"$@\"",
    ];
    let shared = common::shared_file_dir();
    for backend in [Backend::Posix, Backend::SysV, shared.backend()] {
        slow_pingpong(&wrapper, None, false, &backend);
    }
}

/// A peer whose main thread has exited while another thread runs the channel (its leader shows
/// as a zombie, `Z`) is alive.
#[test]
fn peer_with_a_zombie_leader_is_alive() {
    for backend in backends() {
        slow_pingpong(&[], None, true, &backend);
    }
}

/// A peer that calls `exec` without dropping its handle is gone (its handle vanished with its
/// memory): a receiver gets `Disconnected`, a sender sees the receiver disconnected, at once.
#[test]
fn peer_that_execs_is_gone() {
    for backend in backends() {
        // The child holds the sender, then execs.
        let name = unique_name("exec-tx");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let opts = Options::new().backend(backend.clone());
        let rx = spsc::Receiver::<Msg>::create(&name, &opts).unwrap();
        let child = spawn(
            "exec-hold",
            &name,
            &backend,
            &[("SHMCHAN_TEST_SIDE", "send".into())],
        );
        child.expect_line("READY", SHORT);
        let t0 = Instant::now();
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(3)),
            Err(RecvTimeoutError::Disconnected),
            "{backend}"
        );
        assert!(t0.elapsed() < Duration::from_secs(1), "{backend}");
        assert!(!rx.is_connected());
        drop((rx, child));
        assert_gone(&name, &backend);

        // The child holds the receiver, then execs.
        let name = unique_name("exec-rx");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let tx = spsc::Sender::<Msg>::create(&name, &opts).unwrap();
        let child = spawn(
            "exec-hold",
            &name,
            &backend,
            &[("SHMCHAN_TEST_SIDE", "recv".into())],
        );
        child.expect_line("READY", SHORT);
        let deadline = Instant::now() + Duration::from_secs(1);
        while !tx.is_disconnected() {
            assert!(
                Instant::now() < deadline,
                "{backend}: exec'd receiver not seen gone"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(tx.send(Msg::new(0)).is_err(), "{backend}");
        drop((tx, child));
        assert_gone(&name, &backend);
    }
}

/// A forked child's copy of a sender refuses to send (as disconnected) and detaches nothing;
/// and when the sender's process is killed, its receiver sees it gone although a forked child
/// that inherited the sender's descriptors is still alive.
#[test]
fn forked_copy_neither_acts_nor_keeps_its_parent_alive() {
    for backend in backends() {
        let name = unique_name("fork");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let opts = Options::new().backend(backend.clone());
        let rx = spsc::Receiver::<Msg>::create(&name, &opts).unwrap();
        let mut child = spawn("fork-send", &name, &backend, &[]);
        let lingering: i32 = child.expect_line("LINGER", SHORT).parse().unwrap();
        assert_eq!(rx.recv_timeout(SHORT), Ok(Msg::new(0)), "{backend}");
        assert_eq!(
            rx.recv_timeout(SHORT),
            Ok(Msg::new(1)),
            "{backend}: nothing else (the forked copy's send was refused)"
        );
        assert!(rx.is_connected(), "{backend}");
        child.kill9();
        let t0 = Instant::now();
        assert_eq!(
            rx.recv_timeout(SHORT),
            Err(RecvTimeoutError::Disconnected),
            "{backend}"
        );
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "{backend}: the killed sender was seen gone after {:?} (its forked child lives on)",
            t0.elapsed()
        );
        // SAFETY: kills the lingering grandchild (reparented away from the killed child).
        unsafe { libc::kill(lingering, libc::SIGKILL) };
        child.reap();
        drop(rx);
        assert_gone(&name, &backend);
    }
}

/// A sender whose ring never fills learns its receiver was killed: its sends fail within a
/// fraction of a second of the death, not after filling the ring.
#[test]
fn sends_to_a_killed_receiver_fail_soon() {
    for backend in backends() {
        let name = unique_name("kill-rx-soon");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let cap = 1 << 14;
        let opts = Options::new().backend(backend.clone()).capacity(cap);
        let tx = spsc::Sender::<Msg>::create(&name, &opts).unwrap();
        let mut child = spawn("recv-hang", &name, &backend, &[]);
        child.expect_line("TOOK", SHORT);
        for i in 0..100 {
            tx.send(Msg::new(i)).unwrap();
        }
        child.kill9();
        let killed = Instant::now();
        let mut ok_after = 0u64;
        while tx.send(Msg::new(ok_after)).is_ok() {
            ok_after += 1;
            assert!(
                killed.elapsed() < Duration::from_secs(2),
                "{backend}: sends still succeed {:?} after the receiver died",
                killed.elapsed()
            );
            std::thread::sleep(Duration::from_micros(100));
        }
        eprintln!(
            "{backend}: {ok_after} sends succeeded in the {:?} after the receiver was killed",
            killed.elapsed()
        );
        assert!(
            ok_after < (cap as u64) / 4,
            "{backend}: {ok_after} sends to a dead receiver succeeded"
        );
        child.reap();
        drop(tx);
        assert_gone(&name, &backend);
    }
}

/// An MPMC receiver killed while parked leaves nothing behind that makes later sends slower:
/// after it, a million sends to a live (spinning) receiver make almost no system calls.
#[test]
fn receiver_killed_while_parked_leaves_sends_fast() {
    for backend in backends() {
        let name = unique_name("parked-kill");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let opts = Options::new()
            .backend(backend.clone())
            .wait_strategy(shmchan::WaitStrategy::Spin);
        let tx = mpmc::Sender::<Msg>::create(&name, &opts).unwrap();
        let rx = mpmc::Receiver::<Msg>::open(&name, &opts).unwrap();
        let mut child = spawn("mpmc-park-recv", &name, &backend, &[]);
        child.expect_line("READY", SHORT);
        std::thread::sleep(Duration::from_millis(200)); // parked by now
        child.kill9();
        child.reap();
        const N: u64 = 1_000_000;
        let consumer = std::thread::spawn(move || {
            let mut got = 0;
            while got < N {
                if rx.try_recv().is_ok() {
                    got += 1;
                }
            }
            rx
        });
        let before = common::thread_system_time();
        for i in 0..N {
            tx.send(Msg::new(i)).unwrap();
        }
        let sys = common::thread_system_time() - before;
        let rx = consumer.join().unwrap();
        eprintln!("{backend}: {N} sends after a parked receiver was killed: {sys:?} in the kernel");
        // A FUTEX_WAKE per send (the dead sleeper's registration never cleared) costs
        // hundreds of milliseconds here; none costs a few probes.
        assert!(
            sys < Duration::from_millis(100),
            "{backend}: {N} sends spent {sys:?} in system calls"
        );
        drop((tx, rx));
        assert_gone(&name, &backend);
    }
}

/// A peer that may not use `membarrier` (a seccomp profile forbids it) loses no wake-up: both
/// sides sleep on the futex for every message, 2,000 round trips, within a bound a lost
/// wake-up (a 40 ms nap each) would break.
#[test]
fn peer_without_membarrier_loses_no_wakeups() {
    for backend in backends() {
        let name = unique_name("no-membarrier");
        let (ping, pong) = (format!("{name}-ping"), format!("{name}-pong"));
        let _c1 = Cleanup(ping.clone(), backend.clone());
        let _c2 = Cleanup(pong.clone(), backend.clone());
        let opts = Options::new()
            .backend(backend.clone())
            .wait_strategy(shmchan::WaitStrategy::Park);
        let tx = spsc::Sender::<Msg>::create(&ping, &opts).unwrap();
        let rx = spsc::Receiver::<Msg>::create(&pong, &opts).unwrap();
        let mut child = spawn("echo-park-no-membarrier", &name, &backend, &[]);
        child.expect_line("READY", SHORT);
        let t0 = Instant::now();
        for i in 0..2000 {
            tx.send(Msg::new(i)).unwrap();
            assert_eq!(rx.recv_timeout(SHORT), Ok(Msg::new(i)), "{backend}");
        }
        let took = t0.elapsed();
        eprintln!("{backend}: 2000 parked round trips with a membarrier-less peer: {took:?}");
        assert!(took < Duration::from_secs(8), "{backend}: {took:?}");
        drop((tx, rx));
        child.assert_success(SHORT);
        assert_gone(&ping, &backend);
        assert_gone(&pong, &backend);
    }
}

/// Processes killed at random instants while attaching and detaching leave nothing behind:
/// the channel keeps working, and when its last handle leaves, its name goes.
#[test]
fn kills_while_attaching_or_detaching_leave_nothing_behind() {
    for backend in backends() {
        let name = unique_name("churn");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let opts = Options::new().backend(backend.clone());
        let tx = mpmc::Sender::<Msg>::create(&name, &opts).unwrap();
        let rx = mpmc::Receiver::<Msg>::open(&name, &opts).unwrap();
        let mut seed = 0x9e37_79b9u64;
        for round in 0..10 {
            let mut child = spawn("attach-churn", &name, &backend, &[]);
            child.expect_line("READY", SHORT);
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            std::thread::sleep(Duration::from_micros(200 + seed % 3000));
            child.kill9();
            child.reap();
            tx.send(Msg::new(round)).unwrap();
            assert_eq!(rx.recv_timeout(SHORT), Ok(Msg::new(round)), "{backend}");
        }
        drop((tx, rx));
        assert_gone(&name, &backend);
    }
}

/// A System V peer's liveness cannot be forged by a user who is not a party to the channel:
/// another user cannot attach the peer's liveness token (which would keep it counted as
/// attached, so a dead peer would look alive for as long as the forger held it), and the
/// peer's death is seen within the usual probe interval.
#[test]
fn another_user_cannot_keep_a_dead_system_v_peer_alive() {
    if let Some(why) = common::other_users_unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let backend = Backend::SysV;
    let name = unique_name("forge");
    let _cleanup = Cleanup(name.clone(), backend.clone());
    let opts = Options::new().backend(backend.clone());
    let tx = spsc::Sender::<Msg>::create(&name, &opts).unwrap();
    let mut rx = spawn(
        "recv-hang",
        &name,
        &backend,
        &[("SHMCHAN_TEST_N", "0".into())],
    );
    rx.expect_line("TOOK", SHORT);
    let tokens = common::sysv_tokens_of(rx.pid());
    assert_eq!(tokens.len(), 1, "the receiver's token: {tokens:?}");
    let mut forger = spawn_via(
        &[],
        Some(65534),
        "forge-token",
        &name,
        &backend,
        &[("SHMCHAN_TEST_TOKEN", tokens[0].to_string())],
    );
    let said = std::iter::from_fn(|| forger.next_line(SHORT))
        .find(|l| l.starts_with("REFUSED") || l.starts_with("ATTACHED"))
        .unwrap_or_default();
    assert!(
        said.starts_with("REFUSED"),
        "another user attached the token: {said}"
    );
    rx.kill9();
    rx.reap();
    let t0 = Instant::now();
    while tx.is_connected() {
        assert!(
            t0.elapsed() < Duration::from_secs(1),
            "a dead peer still looks alive"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    forger.kill9();
    drop(tx);
}

/// `is_connected` and `wait_for_peer` across processes, on one handle across several peers: no
/// peer yet (timeout), a peer that attaches (returns at once), a peer killed (not connected,
/// and `wait_for_peer` waits for the next), the next peer (connected again, and the same
/// handle receives from it).
#[test]
fn is_connected_and_wait_for_peer_follow_a_real_peer() {
    for backend in backends() {
        let name = unique_name("wait-peer");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let opts = Options::new().backend(backend.clone());
        let rx = spsc::Receiver::<Msg>::create(&name, &opts).unwrap();
        assert!(!rx.is_connected());
        assert_eq!(
            rx.wait_for_peer(Duration::from_millis(50)),
            Err(WaitForPeerError::Timeout)
        );
        let mut child = spawn(
            "send",
            &name,
            &backend,
            &[
                ("SHMCHAN_TEST_N", "1".into()),
                ("SHMCHAN_TEST_HANG", "1".into()),
            ],
        );
        assert_eq!(rx.wait_for_peer(SHORT), Ok(()), "{backend}");
        assert!(rx.is_connected(), "{backend}");
        child.expect_line("SENT", SHORT);
        child.kill9();
        child.reap(); // the kill takes effect (its descriptors are closed) by the time it is reaped
        assert!(!rx.is_connected(), "{backend}: killed, so not connected");
        assert_eq!(
            rx.wait_for_peer(Duration::from_millis(50)),
            Err(WaitForPeerError::Timeout),
            "{backend}: waits for the next sender"
        );
        assert_eq!(rx.recv(), Ok(Msg::new(0)), "what it sent is still there");
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected), "{backend}");
        // The next sender: the same handle is connected again and receives from it.
        let mut next = spawn("send", &name, &backend, &[("SHMCHAN_TEST_N", "3".into())]);
        assert_eq!(rx.wait_for_peer(SHORT), Ok(()), "{backend}");
        let got: Vec<Msg> = rx.iter().collect();
        assert_eq!(got, (0..3).map(Msg::new).collect::<Vec<_>>(), "{backend}");
        next.assert_success(SHORT);
        assert!(!rx.is_connected(), "{backend}: the second sender left");
        drop(rx);
        assert_gone(&name, &backend);
    }
}
