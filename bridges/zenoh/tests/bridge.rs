//! Two bridge processes on this machine, each its own Zenoh session in peer mode over
//! 127.0.0.1 TCP with scouting off, between real local producers and consumers
//! (`examples/peer.rs`). Run with `--test-threads=1` on small machines (each test runs four
//! to six busy processes).

mod common;

use std::time::{Duration, Instant};

use common::{World, ep, free_port};
use serde_json::Value;

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Producer on `a`, out bridge (listening) -> in bridge (connecting) -> consumer on `b`.
struct Line {
    w: World,
    b: String,
    cons: usize,
    prod: usize,
    out: usize,
    inb: usize,
    port: u16,
}

#[allow(clippy::too_many_arguments)]
fn line(
    test: &str,
    kind: &str,
    count: u64,
    cap: &str,
    prod_extra: &[&str],
    cons_extra: &[&str],
    out_extra: &[&str],
    in_extra: &[&str],
) -> Line {
    let mut w = World::new(test);
    let (a, b) = (w.name("a"), w.name("b"));
    let count = count.to_string();
    let mut args = vec!["consume", &b, kind, &count, "--create", cap];
    args.extend_from_slice(cons_extra);
    let cons = w.peer(&args);
    w.ready(cons);
    let mut args = vec!["produce", &a, kind, &count, "--create", cap];
    args.extend_from_slice(prod_extra);
    let prod = w.peer(&args);
    let port = free_port();
    let listen = ep(port);
    let mut args = vec!["out", &a, "--key", "test/line", "--listen", &listen];
    args.extend_from_slice(out_extra);
    let out = w.bridge(&args);
    let mut args = vec!["in", &b, "--key", "test/line", "--connect", &listen];
    args.extend_from_slice(in_extra);
    let inb = w.bridge(&args);
    Line {
        w,
        b,
        cons,
        prod,
        out,
        inb,
        port,
    }
}

fn assert_exact(r: &Value, count: u64) {
    assert_eq!(n(&r["received"]), count, "{r}");
    assert_eq!(n(&r["out_of_order"]), 0, "{r}");
    assert_eq!(n(&r["duplicates"]), 0, "{r}");
}

#[test]
fn typed_spsc_100k_lossless_exact_and_in_order() {
    let mut l = line("spsc100k", "spsc", 100_000, "4096", &[], &[], &[], &[]);
    let r = l.w.result(l.cons);
    assert_exact(&r, 100_000);
    assert_eq!((n(&r["first"]), n(&r["last"])), (0, 99_999));
    let inr =
        l.w.route_until(l.inb, "in", |r| n(&r["forwarded"]) == 100_000);
    for k in [
        "gaps",
        "duplicates",
        "type_mismatches",
        "drops",
        "malformed",
    ] {
        assert_eq!(n(&inr[k]), 0, "{k}: {inr}");
    }
    assert_eq!(inr["fingerprint"], "spsc;u64;8;8;le");
    let outr =
        l.w.route_until(l.out, "out", |r| n(&r["forwarded"]) == 100_000);
    assert_eq!(n(&outr["gaps"]), 0);
}

#[test]
fn typed_mpmc_100k_lossless_exact_and_in_order() {
    let mut l = line("mpmc100k", "mpmc", 100_000, "4096", &[], &[], &[], &[]);
    let r = l.w.result(l.cons);
    assert_exact(&r, 100_000);
    l.w.route_until(l.inb, "in", |r| n(&r["forwarded"]) == 100_000);
}

#[test]
fn frames_of_random_lengths_up_to_64k_byte_exact() {
    let mut l = line("frames", "frame", 3000, "1048576", &[], &[], &[], &[]);
    let r = l.w.result(l.cons);
    assert_eq!(n(&r["received"]), 3000, "{r}");
    assert_eq!(n(&r["bad_bytes"]), 0, "{r}");
    let inr = l.w.route_until(l.inb, "in", |r| n(&r["forwarded"]) == 3000);
    assert_eq!(inr["fingerprint"], "frame");
    assert_eq!(n(&inr["gaps"]) + n(&inr["duplicates"]), 0);
}

#[test]
fn receiving_bridge_killed_and_restarted_loses_nothing_and_counts_exactly() {
    const N: u64 = 10_000_000;
    let mut l = line("kill", "spsc", N, "4096", &[], &[], &[], &[]);
    // Kill the in bridge mid-stream.
    let before =
        l.w.route_until(l.inb, "in", |r| n(&r["forwarded"]) > 200_000);
    assert!(
        n(&before["forwarded"]) < N,
        "the stream ended before the kill"
    );
    let dead_pid = l.w.pid(l.inb);
    l.w.signal(l.inb, libc::SIGKILL);
    let state =
        l.w.state_dir
            .join(format!("shmchan-bridge-{dead_pid}.json"));
    assert!(state.exists(), "a killed bridge leaves its state file");
    l.w.ls(); // drops the files of dead bridges
    assert!(!state.exists(), "ls removes a dead bridge's state file");
    // Restart it: it must be connected again, and forwarding, within 5 s.
    let t0 = Instant::now();
    let listen = ep(l.port);
    let inb =
        l.w.bridge(&["in", &l.b, "--key", "test/line", "--connect", &listen]);
    l.w.route_until(inb, "in", |r| r["remote"] == true && n(&r["forwarded"]) > 0);
    let reconnect = t0.elapsed();
    eprintln!("reconnected and forwarding {reconnect:?} after the restart");
    assert!(
        reconnect < Duration::from_secs(5),
        "reconnected after {reconnect:?}"
    );
    let r = l.w.result(l.cons);
    // Nothing lost, nothing twice, in order: the restarted bridge went on exactly where its
    // predecessor stopped writing (the out bridge sent the rest again).
    assert_exact(&r, N);
    assert_eq!(n(&r["last"]), N - 1);
    let outr = l.w.route_until(l.out, "out", |r| n(&r["forwarded"]) == N);
    assert!(n(&outr["reconnects"]) >= 1, "{outr}");
    let inr = l.w.route_until(inb, "in", |r| {
        n(&r["forwarded"]) + n(&before["forwarded"]) >= 1 && r["remote"] == true
    });
    // Every loss counted, exactly: none.
    assert_eq!(
        n(&inr["gaps"]) + n(&outr["gaps"]),
        N - n(&r["received"]),
        "{inr} {outr}"
    );
    assert_eq!(n(&inr["duplicates"]), 0, "{inr}");
}

#[test]
fn slow_consumer_lossless_makes_the_producer_see_full_and_loses_nothing() {
    const N: u64 = 20_000;
    let mut l = line(
        "slow",
        "spsc",
        N,
        "256",
        &["--try"],
        &["--slow-us", "100"],
        &[],
        &["--window", "1024"],
    );
    let p = l.w.result(l.prod);
    assert!(n(&p["full"]) > 0, "the producer never saw Full: {p}");
    let r = l.w.result(l.cons);
    assert_exact(&r, N);
    let inr = l.w.route_until(l.inb, "in", |r| n(&r["forwarded"]) == N);
    assert_eq!(n(&inr["drops"]) + n(&inr["gaps"]), 0, "{inr}");
}

#[test]
fn lossy_drop_count_equals_what_is_missing() {
    const N: u64 = 20_000;
    let mut l = line(
        "lossy",
        "spsc",
        N,
        "64",
        &[],
        &["--slow-us", "20", "--idle-ms", "3000"],
        &["--lossy"],
        &["--lossy"],
    );
    let r = l.w.result(l.cons);
    assert_eq!(n(&r["out_of_order"]) + n(&r["duplicates"]), 0, "{r}");
    let received = n(&r["received"]);
    let outr = l.w.route_until(l.out, "out", |r| n(&r["forwarded"]) == N);
    let inr = l.w.route_until(l.inb, "in", |r| {
        n(&r["forwarded"]) + n(&r["drops"]) + n(&r["gaps"]) == N
    });
    assert!(n(&inr["drops"]) > 0, "nothing was dropped: {inr}");
    assert_eq!(n(&inr["forwarded"]), received, "{inr}");
    assert_eq!(
        n(&inr["drops"]) + n(&inr["gaps"]),
        N - received,
        "{inr} {outr}"
    );
}

#[test]
fn a_type_mismatch_writes_nothing() {
    let mut w = World::new("mismatch");
    let (a, b) = (w.name("a"), w.name("b"));
    let cons = w.peer(&[
        "consume",
        &b,
        "spsc",
        "100",
        "--create",
        "64",
        "--idle-ms",
        "2000",
    ]);
    w.ready(cons);
    // The remote side sends 4-byte `u32` elements; the local channel holds `u64`.
    let prod = w.peer(&[
        "produce", &a, "spsc", "100", "--create", "64", "--elem", "u32:4:4",
    ]);
    let listen = ep(free_port());
    let out = w.bridge(&["out", &a, "--key", "test/mm", "--listen", &listen]);
    let inb = w.bridge(&["in", &b, "--key", "test/mm", "--connect", &listen]);
    let inr = w.route_until(inb, "in", |r| n(&r["type_mismatches"]) == 100);
    assert_eq!(n(&inr["forwarded"]), 0, "{inr}");
    let r = w.result(cons);
    assert_eq!(n(&r["received"]), 0, "{r}");
    assert_eq!(w.sent(&b), 0, "bytes were written into the local ring");
    let outr = w.route_until(out, "out", |r| n(&r["forwarded"]) == 100);
    assert_eq!(outr["fingerprint"], "spsc;u32;4;4;le");
    let _ = w.result(prod);
}

#[test]
fn both_directions_on_one_key_without_echo() {
    const N: u64 = 50_000;
    let mut w = World::new("echo");
    let (a1, a2, b1, b2) = (w.name("a1"), w.name("a2"), w.name("b1"), w.name("b2"));
    let count = N.to_string();
    let ca = w.peer(&["consume", &a2, "spsc", &count, "--create", "1024"]);
    let cb = w.peer(&["consume", &b2, "spsc", &count, "--create", "1024"]);
    w.ready(ca);
    w.ready(cb);
    let pa = w.peer(&["produce", &a1, "spsc", &count, "--create", "1024"]);
    let pb = w.peer(&["produce", &b1, "spsc", &count, "--create", "1024"]);
    let listen = ep(free_port());
    // Host A sends a1 and receives into a2, host B the same, all on one key: each bridge's
    // in route hears only the other process (Locality::Remote), never its own out route.
    let (oa, ia) = (format!("{a1}=test/both"), format!("{a2}=test/both"));
    let (ob, ib) = (format!("{b1}=test/both"), format!("{b2}=test/both"));
    let ba = w.bridge(&["run", "--out", &oa, "--in", &ia, "--listen", &listen]);
    let bb = w.bridge(&["run", "--out", &ob, "--in", &ib, "--connect", &listen]);
    for c in [ca, cb] {
        let r = w.result(c);
        assert_exact(&r, N);
    }
    let _ = (w.result(pa), w.result(pb));
    std::thread::sleep(Duration::from_millis(500)); // an echo would have arrived by now
    assert_eq!(w.sent(&a2), N, "a2 got more than B sent");
    assert_eq!(w.sent(&b2), N, "b2 got more than A sent");
    for b in [ba, bb] {
        let inr = w.route_until(b, "in", |r| n(&r["forwarded"]) == N);
        for k in ["duplicates", "type_mismatches", "gaps", "malformed"] {
            assert_eq!(n(&inr[k]), 0, "{k}: {inr}");
        }
        w.route_until(b, "out", |r| n(&r["forwarded"]) == N);
    }
}

#[test]
fn local_peers_that_restart_are_picked_up_again() {
    const K: u64 = 30_000;
    let mut w = World::new("local");
    let (a, b) = (w.name("a"), w.name("b"));
    let k = K.to_string();
    let c1 = w.peer(&["consume", &b, "spsc", &k, "--create", "1024"]);
    w.ready(c1);
    let p1 = w.peer(&["produce", &a, "spsc", &k, "--create", "1024"]);
    let listen = ep(free_port());
    let out = w.bridge(&["out", &a, "--key", "test/local", "--listen", &listen]);
    let inb = w.bridge(&["in", &b, "--key", "test/local", "--connect", &listen]);
    let r1 = w.result(c1);
    assert_exact(&r1, K);
    let _ = w.result(p1);
    // Both bridges see their local peer gone (read from the endpoint tables).
    w.route_until(out, "out", |r| r["local"] == false);
    w.route_until(inb, "in", |r| r["local"] == false);
    // A second producer and a second consumer attach to the same channels.
    let p2 = w.peer(&["produce", &a, "spsc", &k, "--from", &k]);
    let c2 = w.peer(&["consume", &b, "spsc", &k]);
    let r2 = w.result(c2);
    assert_exact(&r2, K);
    assert_eq!((n(&r2["first"]), n(&r2["last"])), (K, 2 * K - 1), "{r2}");
    let _ = w.result(p2);
    // Each side counts its local peer's return (looked up every few hundred ms).
    w.route_until(inb, "in", |r| {
        n(&r["forwarded"]) == 2 * K && n(&r["local_reconnects"]) >= 1
    });
    w.route_until(out, "out", |r| {
        n(&r["forwarded"]) == 2 * K && n(&r["local_reconnects"]) >= 1
    });
}

#[test]
fn a_frame_topic_forwarded_into_a_frame_channel() {
    let mut w = World::new("topic");
    let (a, b) = (w.name("a"), w.name("b"));
    let cons = w.peer(&["consume", &b, "frame", "2000", "--create", "1048576"]);
    w.ready(cons);
    // The bridge subscribes to the topic (one more subscriber); the publisher waits for it.
    let prod = w.peer(&["produce", &a, "topic", "2000", "--create", "64"]);
    let listen = ep(free_port());
    let out = w.bridge(&["out", &a, "--key", "test/topic", "--listen", &listen]);
    let inb = w.bridge(&["in", &b, "--key", "test/topic", "--connect", &listen]);
    let r = w.result(cons);
    assert_eq!(n(&r["received"]), 2000, "{r}");
    assert_eq!(n(&r["bad_bytes"]), 0, "{r}");
    let outr = w.route_until(out, "out", |r| n(&r["forwarded"]) == 2000);
    assert_eq!(outr["fingerprint"], "topic");
    assert_eq!(n(&outr["drops"]), 0, "{outr}");
    w.route_until(inb, "in", |r| n(&r["forwarded"]) == 2000);
    let _ = w.result(prod);
}

#[test]
fn a_typed_topic_forwarded_into_a_typed_topic_lossless_exact_and_in_order() {
    const N: u64 = 50_000;
    let mut w = World::new("ttopic");
    let (a, b) = (w.name("a"), w.name("b"));
    let count = N.to_string();
    // A Rust `broadcast::Publisher<u64>` in Block mode; it publishes once the out bridge (one
    // more subscriber) is counted.
    let prod = w.peer(&["produce", &a, "tbcast", &count, "--create", "1024"]);
    let listen = ep(free_port());
    let out = w.bridge(&["out", &a, "--key", "test/ttopic", "--listen", &listen]);
    // The in bridge creates topic b (Block mode: lossless) as its publisher; it writes only
    // once a subscriber is counted, so the consumer that subscribes later misses nothing.
    let inb = w.bridge(&[
        "in",
        &b,
        "--key",
        "test/ttopic",
        "--connect",
        &listen,
        "--create",
        "--capacity",
        "1024",
    ]);
    let cons = w.peer(&["consume", &b, "tbcast", &count]);
    let r = w.result(cons);
    assert_exact(&r, N);
    assert_eq!((n(&r["first"]), n(&r["last"])), (0, N - 1), "{r}");
    assert_eq!(n(&r["missing"]) + n(&r["lagged"]), 0, "{r}");
    let outr = w.route_until(out, "out", |r| n(&r["forwarded"]) == N);
    assert_eq!(outr["fingerprint"], "topic;u64;8;8;le");
    assert_eq!(n(&outr["drops"]), 0, "{outr}");
    let inr = w.route_until(inb, "in", |r| n(&r["forwarded"]) == N);
    assert_eq!(inr["fingerprint"], "topic;u64;8;8;le");
    for k in [
        "gaps",
        "duplicates",
        "type_mismatches",
        "drops",
        "malformed",
    ] {
        assert_eq!(n(&inr[k]), 0, "{k}: {inr}");
    }
    let _ = w.result(prod);
}

#[test]
fn a_lapped_typed_topic_counts_what_was_overwritten_exactly() {
    const N: u64 = 20_000;
    let mut w = World::new("tlapped");
    let (a, b) = (w.name("a"), w.name("b"));
    let count = N.to_string();
    // An Overwrite-mode topic of 64 elements; the producer publishes everything once the out
    // bridge is counted, while no in bridge is there (so the out bridge takes nothing): the
    // bridge's subscriber is lapped.
    let prod = w.peer(&[
        "produce",
        &a,
        "tbcast",
        &count,
        "--create",
        "64",
        "--overwrite",
    ]);
    let listen = ep(free_port());
    let out = w.bridge(&["out", &a, "--key", "test/tlapped", "--listen", &listen]);
    let _ = w.result(prod);
    let cons = w.peer(&[
        "consume",
        &b,
        "spsc",
        &count,
        "--create",
        "1024",
        "--idle-ms",
        "2000",
    ]);
    w.ready(cons);
    let inb = w.bridge(&["in", &b, "--key", "test/tlapped", "--connect", &listen]);
    // Every message is either forwarded or counted as overwritten, exactly.
    let outr = w.route_until(out, "out", |r| {
        n(&r["forwarded"]) + n(&r["drops"]) == N && n(&r["forwarded"]) > 0
    });
    let (fwd, drops) = (n(&outr["forwarded"]), n(&outr["drops"]));
    assert!(drops >= N - 64, "a ring of 64 kept more: {outr}");
    let r = w.result(cons);
    assert_eq!(n(&r["received"]), fwd, "{r}");
    // What went is the tail, in order, nothing missing inside it.
    assert_eq!((n(&r["first"]), n(&r["last"])), (drops, N - 1), "{r}");
    assert_eq!(
        n(&r["out_of_order"]) + n(&r["duplicates"]) + n(&r["missing"]),
        0,
        "{r}"
    );
    let inr = w.route_until(inb, "in", |r| n(&r["forwarded"]) == fwd);
    assert_eq!(n(&inr["gaps"]) + n(&inr["type_mismatches"]), 0, "{inr}");
}

#[test]
fn a_typed_topic_into_a_frame_channel_is_a_mismatch_and_writes_nothing() {
    let mut w = World::new("tmismatch");
    let (a, b) = (w.name("a"), w.name("b"));
    let cons = w.peer(&[
        "consume",
        &b,
        "frame",
        "100",
        "--create",
        "65536",
        "--idle-ms",
        "2000",
    ]);
    w.ready(cons);
    let prod = w.peer(&["produce", &a, "tbcast", "100", "--create", "64"]);
    let listen = ep(free_port());
    let out = w.bridge(&["out", &a, "--key", "test/tmm", "--listen", &listen]);
    let inb = w.bridge(&["in", &b, "--key", "test/tmm", "--connect", &listen]);
    let inr = w.route_until(inb, "in", |r| n(&r["type_mismatches"]) == 100);
    assert_eq!(n(&inr["forwarded"]), 0, "{inr}");
    let r = w.result(cons);
    assert_eq!(n(&r["received"]), 0, "{r}");
    assert_eq!(w.sent(&b), 0, "bytes were written into the local ring");
    let outr = w.route_until(out, "out", |r| n(&r["forwarded"]) == 100);
    assert_eq!(outr["fingerprint"], "topic;u64;8;8;le");
    let _ = w.result(prod);
}

#[test]
fn a_frame_topic_forwarded_into_a_frame_topic_the_in_bridge_creates() {
    let mut w = World::new("ftopic");
    let (a, b) = (w.name("a"), w.name("b"));
    // Frames of up to 64 KiB on a Block-mode topic; the publisher waits for the out bridge.
    let prod = w.peer(&["produce", &a, "topic", "2000", "--create", "64"]);
    let listen = ep(free_port());
    let out = w.bridge(&["out", &a, "--key", "test/ftopic", "--listen", &listen]);
    // The in bridge creates topic b as the remote one is (Block mode, lossless; frames up to
    // --max-frame, 64 KiB by default) and writes only once a subscriber is counted: the
    // consumer that subscribes later misses nothing.
    let inb = w.bridge(&[
        "in",
        &b,
        "--key",
        "test/ftopic",
        "--connect",
        &listen,
        "--create",
        "--capacity",
        "64",
    ]);
    let cons = w.peer(&["consume", &b, "topic", "2000"]);
    let r = w.result(cons);
    assert_eq!(n(&r["received"]), 2000, "{r}");
    assert_eq!(n(&r["bad_bytes"]) + n(&r["lagged"]), 0, "{r}");
    let inr = w.route_until(inb, "in", |r| n(&r["forwarded"]) == 2000);
    assert_eq!(inr["fingerprint"], "topic");
    for k in [
        "gaps",
        "duplicates",
        "type_mismatches",
        "drops",
        "malformed",
    ] {
        assert_eq!(n(&inr[k]), 0, "{k}: {inr}");
    }
    let outr = w.route_until(out, "out", |r| n(&r["forwarded"]) == 2000);
    assert_eq!(n(&outr["drops"]), 0, "{outr}");
    let _ = w.result(prod);
}
