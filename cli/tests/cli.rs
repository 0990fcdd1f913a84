//! The `shmchan` binary against real channels held by other processes, on every backend.
#![cfg(not(loom))]

mod harness;

use std::time::{Duration, Instant};

use harness::{
    Cleanup, Peer, TempDir, arg, backends, exists, gc_lock, plant, poke_u32, shmchan, shmchan_as,
    spawn, unique_name,
};
use serde_json::Value;
use shmchan::Backend;

#[test]
#[ignore = "entry point of the peer processes the other tests start"]
fn child_main() {
    harness::child_main();
}

/// The `ls --json` entry of `name`, if listed.
fn listed(backend: &Backend, name: &str) -> Option<Value> {
    let run = shmchan(&["ls", "--backend", &arg(backend), "--json"]).ok();
    run.json()
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .cloned()
}

fn stat_json(backend: &Backend, name: &str) -> Value {
    shmchan(&["stat", name, "--backend", &arg(backend), "--json"])
        .ok()
        .json()
}

/// A sender in one process (5 sent), a receiver in another (2 received): `ls` and `stat`, in
/// JSON and for people, say so on every backend.
#[test]
fn ls_and_stat_show_a_channel_held_by_two_processes() {
    let (_dir, list) = backends();
    for backend in list {
        let name = unique_name("ls");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let n5 = [("SHMCHAN_CLI_N", "5".to_string())];
        let n2 = [("SHMCHAN_CLI_N", "2".to_string())];
        let mut tx = spawn("hold-sender", &name, &backend, &n5);
        let tx_pid: u32 = tx.expect("READY").parse().unwrap();
        let mut rx = spawn("hold-receiver", &name, &backend, &n2);
        let rx_pid: u32 = rx.expect("READY").parse().unwrap();

        for ch in [
            listed(&backend, &name).expect("listed"),
            stat_json(&backend, &name),
        ] {
            assert_eq!(ch["backend"], arg(&backend).as_str());
            assert_eq!(ch["state"], "live", "{backend}: {ch}");
            assert_eq!(ch["kind"], "spsc");
            assert_eq!(ch["payload"], "Msg");
            assert_eq!(ch["payload_size"], 16);
            assert_eq!(ch["payload_align"], 8);
            assert_eq!(ch["unit"], "messages");
            assert_eq!(ch["capacity"], 16);
            assert_eq!(ch["len"], 3);
            assert_eq!(ch["sent"], 5);
            assert_eq!(ch["received"], 2);
            assert_eq!(ch["version"], shmchan::inspect::LAYOUT_VERSION);
            assert_eq!(ch["mode"], "0600");
            assert_eq!(ch["creator_pid"], tx_pid);
            assert_eq!(ch["creator_uid"], 0);
            assert!(ch["created"].as_str().unwrap().ends_with('Z'));
            assert!(ch["size"].as_u64().unwrap() >= 4096);
            assert_eq!(
                ch["endpoints"],
                serde_json::json!([
                    {"index": 0, "role": "sender", "pid": tx_pid, "alive": true,
                     "state": "attached", "attached": 1},
                    {"index": 1, "role": "receiver", "pid": rx_pid, "alive": true,
                     "state": "attached", "attached": 1},
                ]),
                "{backend}"
            );
        }
        let table = shmchan(&["ls", "--backend", &arg(&backend)]).ok().stdout;
        let head = table.lines().next().unwrap();
        assert!(head.starts_with("NAME"), "{table}");
        let line = table
            .lines()
            .find(|l| l.starts_with(&name))
            .expect("a line");
        // Columns line up: STATE starts where its header does.
        let col = head.find("STATE").unwrap();
        assert_eq!(&line[col..col + 4], "live", "{table}");
        assert!(line.contains(&format!("s:{tx_pid} r:{rx_pid}")), "{line}");
        assert!(line.contains("3/16"), "{line}");

        let human = shmchan(&["stat", &name, "--backend", &arg(&backend)])
            .ok()
            .stdout;
        for want in [
            "state:".to_string(),
            "live".into(),
            "Msg (16 bytes, alignment 8)".into(),
            "3 messages [####".into(),
            format!("pid {tx_pid}, uid 0"),
        ] {
            assert!(human.contains(&want), "{backend}: {want:?} not in\n{human}");
        }
        // The endpoint table: a row per place, its occupant.
        for (place, role, pid) in [("0", "sender", tx_pid), ("1", "receiver", rx_pid)] {
            let row: Vec<String> = vec![
                place.into(),
                role.into(),
                pid.to_string(),
                "attached".into(),
                "yes".into(),
                "1".into(),
            ];
            assert!(
                human
                    .lines()
                    .any(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>() == row),
                "{backend}: no row {row:?} in\n{human}"
            );
        }
        // Inspecting attached nothing and woke nobody: both peers leave, and the last one out
        // removes the name as usual.
        rx.finish();
        tx.finish();
        assert!(!exists(&name, &backend), "{backend}: name left behind");
    }
}

/// Issue 17: places are reused, and `stat` says for each place who holds it now and how many
/// endpoints it has had (`attached` in `--json`, an ATTACHED column for people); `ls` shows the
/// channel's total. A receiver leaves, another is killed, a third takes the place.
#[test]
fn stat_shows_each_place_and_how_many_endpoints_it_has_had() {
    let (_dir, list) = backends();
    for backend in list {
        let b = arg(&backend);
        let name = unique_name("places");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let mut tx = spawn("hold-sender", &name, &backend, &[]);
        let tx_pid: u32 = tx.expect("READY").parse().unwrap();
        let mut rx = spawn("hold-receiver", &name, &backend, &[]);
        rx.expect("READY");
        rx.finish(); // detached: its place is free
        let mut rx = spawn("hold-receiver", &name, &backend, &[]);
        rx.expect("READY");
        rx.kill9(); // dead: its place goes to the next receiver
        let mut rx = spawn("hold-receiver", &name, &backend, &[]);
        let rx_pid: u32 = rx.expect("READY").parse().unwrap();

        let ch = stat_json(&backend, &name);
        assert_eq!(
            ch["endpoints"],
            serde_json::json!([
                {"index": 0, "role": "sender", "pid": tx_pid, "alive": true,
                 "state": "attached", "attached": 1},
                {"index": 1, "role": "receiver", "pid": rx_pid, "alive": true,
                 "state": "attached", "attached": 3},
            ]),
            "{backend}: {ch}"
        );

        let human = shmchan(&["stat", &name, "--backend", &b]).ok().stdout;
        let head = human
            .lines()
            .find(|l| l.contains("ATTACHED"))
            .unwrap_or_else(|| panic!("{backend}: no ATTACHED column in\n{human}"));
        let col = head.find("ATTACHED").unwrap();
        let cell = |line: &str| {
            line.get(col..)
                .unwrap_or("")
                .split_whitespace()
                .next()
                .map(str::to_owned)
        };
        let row = |pid: u32| {
            human
                .lines()
                .find(|l| l.split_whitespace().any(|w| w == pid.to_string()))
                .unwrap_or_else(|| panic!("{backend}: no row for pid {pid} in\n{human}"))
        };
        assert_eq!(
            cell(row(tx_pid)).as_deref(),
            Some("1"),
            "{backend}:\n{human}"
        );
        assert_eq!(
            cell(row(rx_pid)).as_deref(),
            Some("3"),
            "{backend}:\n{human}"
        );
        assert!(row(rx_pid).contains("receiver"), "{backend}:\n{human}");

        let table = shmchan(&["ls", "--backend", &b]).ok().stdout;
        let head = table.lines().next().unwrap();
        let col = head
            .find("ATTACHED")
            .unwrap_or_else(|| panic!("{backend}: no ATTACHED column in\n{table}"));
        let line = table.lines().find(|l| l.starts_with(&name)).unwrap();
        assert_eq!(
            line.get(col..).unwrap_or("").split_whitespace().next(),
            Some("4"),
            "{backend}:\n{table}"
        );
        rx.finish();
        tx.finish();
    }
}

/// `kill -9` of the only process makes the channel abandoned (nobody alive); `gc` removes it
/// (after `--dry-run` only said so), on every backend.
#[test]
fn a_killed_holder_leaves_an_abandoned_channel_that_gc_removes() {
    let _gc = gc_lock();
    let (_dir, list) = backends();
    for backend in list {
        let name = unique_name("gc");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let mut both = spawn(
            "hold-both",
            &name,
            &backend,
            &[("SHMCHAN_CLI_N", "4".into())],
        );
        let pid: u32 = both.expect("READY").parse().unwrap();
        assert_eq!(stat_json(&backend, &name)["state"], "live");
        both.kill9();

        let ch = stat_json(&backend, &name);
        assert_eq!(ch["state"], "abandoned", "{backend}: {ch}");
        assert_eq!(ch["len"], 4, "the messages are still there");
        for e in ch["endpoints"].as_array().unwrap() {
            assert_eq!(e["pid"], pid);
            assert_eq!(e["alive"], false, "{backend}: {ch}");
            // Looking marks nothing: the table still says attached.
            assert_eq!(e["state"], "attached");
        }
        let human = shmchan(&["ls", "--backend", &arg(&backend)]).ok().stdout;
        let line = human.lines().find(|l| l.starts_with(&name)).unwrap();
        assert!(
            line.contains("abandoned") && line.contains("(dead)"),
            "{line}"
        );

        let dry = shmchan(&["gc", "--backend", &arg(&backend), "--dry-run"]).ok();
        assert!(
            dry.stdout.contains(&format!("would remove {name}")),
            "{}",
            dry.stdout
        );
        assert!(exists(&name, &backend), "--dry-run removed it");

        let gc = shmchan(&["gc", "--backend", &arg(&backend)]).ok();
        assert!(
            gc.stdout.contains(&format!("removed {name} (")),
            "{backend}: {}",
            gc.stdout
        );
        assert!(!exists(&name, &backend), "{backend}: gc left it");
        let gone = shmchan(&["stat", &name, "--backend", &arg(&backend)]);
        assert_eq!(gone.code, 1);
        assert!(
            gone.stderr.contains(&format!("no channel named {name:?}")),
            "{}",
            gone.stderr
        );
    }
}

/// `gc` leaves live channels alone; `rm` refuses one with a live endpoint and names it;
/// `rm --force` removes the name and says what it broke; `rm` of an abandoned one works.
#[test]
fn rm_refuses_a_live_channel_unless_forced() {
    let _gc = gc_lock();
    let (_dir, list) = backends();
    for backend in list {
        let name = unique_name("rm");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let mut tx = spawn("hold-sender", &name, &backend, &[]);
        let pid = tx.expect("READY");

        let gc = shmchan(&["gc", "--backend", &arg(&backend)]).ok();
        assert!(!gc.stdout.contains(&name), "{}", gc.stdout);
        assert!(exists(&name, &backend));

        let refused = shmchan(&["rm", &name, "--backend", &arg(&backend)]);
        assert_eq!(refused.code, 1, "{backend}");
        assert!(
            refused.stderr.contains(&format!("sender pid {pid}")),
            "{}",
            refused.stderr
        );
        assert!(refused.stderr.contains("--force"), "{}", refused.stderr);
        assert!(exists(&name, &backend));

        let forced = shmchan(&["rm", &name, "--backend", &arg(&backend), "--force"]).ok();
        assert!(
            forced.stdout.contains(&format!(
                "forced: sender pid {pid} still attached and alive"
            )),
            "{}",
            forced.stdout
        );
        assert!(!exists(&name, &backend), "{backend}: --force left it");
        tx.finish(); // the sender still had its channel, and leaves cleanly

        // An abandoned one goes without --force.
        let mut h = spawn("hold-sender", &name, &backend, &[]);
        h.expect("READY");
        h.kill9();
        shmchan(&["rm", &name, "--backend", &arg(&backend)]).ok();
        assert!(!exists(&name, &backend));
    }
}

/// Missing names, bad names and backends, foreign, truncated and half-made objects, newer and
/// older layouts: a clear message and a non-zero exit, never a panic.
#[test]
fn bad_input_gives_a_clear_error() {
    let (_dir, list) = backends();
    let usage = shmchan(&["ls", "--backend", "nfs"]);
    assert_eq!(usage.code, 2);
    assert!(
        usage.stderr.contains("expected posix, sysv or file:DIR"),
        "{}",
        usage.stderr
    );
    let no_name = shmchan(&["stat"]);
    assert_eq!(no_name.code, 2);
    let bad = shmchan(&["stat", "a/b"]);
    assert_eq!(bad.code, 1);
    assert!(
        bad.stderr.contains("invalid channel name \"a/b\""),
        "{}",
        bad.stderr
    );
    let no_dir = shmchan(&["ls", "--backend", "file:/nonexistent-shmchan-dir"]);
    assert_eq!(no_dir.code, 1);
    assert!(
        no_dir.stderr.contains("/nonexistent-shmchan-dir"),
        "{}",
        no_dir.stderr
    );

    for backend in list {
        let b = arg(&backend);
        let missing = unique_name("missing");
        let run = shmchan(&["stat", &missing, "--backend", &b]);
        assert_eq!(run.code, 1);
        assert!(
            run.stderr
                .contains(&format!("no channel named {missing:?}")),
            "{}",
            run.stderr
        );
        let run = shmchan(&["rm", &missing, "--backend", &b]);
        assert_eq!(run.code, 1);
        assert!(run.stderr.contains("no channel named"), "{}", run.stderr);
        let run = shmchan(&["watch", &missing, "--backend", &b]);
        assert_eq!(run.code, 1);

        // Another program's object: not listed, and `stat` says what it is.
        let foreign = unique_name("foreign");
        let _c1 = Cleanup(foreign.clone(), backend.clone());
        plant(&foreign, &backend, &[0xab; 8192]);
        let run = shmchan(&["stat", &foreign, "--backend", &b]);
        assert_eq!(run.code, 1, "{b}");
        assert!(
            run.stderr.contains("not a shmchan channel"),
            "{}",
            run.stderr
        );
        assert!(run.stderr.contains(&foreign), "{}", run.stderr);
        assert!(listed(&backend, &foreign).is_none());
        let run = shmchan(&["rm", &foreign, "--backend", &b]);
        assert_eq!(run.code, 1);
        assert!(run.stderr.contains("not removed"), "{}", run.stderr);
        assert!(exists(&foreign, &backend));
        let run = shmchan(&["rm", &foreign, "--backend", &b, "--force"]).ok();
        assert!(
            run.stdout.contains("forced: not a shmchan channel"),
            "{}",
            run.stdout
        );
        assert!(!exists(&foreign, &backend));

        // A channel cut short: its mark, then nothing.
        let short = unique_name("short");
        let _c2 = Cleanup(short.clone(), backend.clone());
        let mut bytes = b"SHMCHAN\x01".to_vec();
        bytes.resize(100, 0);
        plant(&short, &backend, &bytes);
        let run = shmchan(&["stat", &short, "--backend", &b]);
        assert_eq!(run.code, 1, "{b}");
        assert!(
            run.stderr.contains("100 bytes") && run.stderr.contains("2688"),
            "{}{}",
            run.stdout,
            run.stderr
        );
        if backend != Backend::SysV {
            // Listed (it carries the mark) as incompatible; `ls` does not fail over it.
            let ch = listed(&backend, &short).expect("a truncated channel is listed");
            assert_eq!(ch["state"], "incompatible");
        }
        shmchan(&["rm", &short, "--backend", &b, "--force"]).ok();
        assert!(!exists(&short, &backend));

        // An empty object: a creator's first step, or one that died there.
        if backend != Backend::SysV {
            let empty = unique_name("empty");
            let _c3 = Cleanup(empty.clone(), backend.clone());
            plant(&empty, &backend, &[]);
            let ch = stat_json(&backend, &empty);
            assert_eq!(ch["state"], "not-ready");
            assert!(ch["problem"].as_str().unwrap().contains("empty"));
            shmchan(&["rm", &empty, "--backend", &b]).ok();
            assert!(!exists(&empty, &backend));
        }

        // Newer and older layouts: reported with their number, never read further.
        for (version, says) in [(99u32, "made by a newer shmchan"), (2, "made by an older")] {
            let name = unique_name("version");
            let _c4 = Cleanup(name.clone(), backend.clone());
            let mut h = spawn("hold-sender", &name, &backend, &[]);
            h.expect("READY");
            h.kill9();
            poke_u32(&name, &backend, 8, version);
            let run = shmchan(&["stat", &name, "--backend", &b]);
            assert_eq!(run.code, 1, "{b}: {}", run.stdout);
            assert!(
                run.stderr.contains(&format!("layout version {version}"))
                    && run.stderr.contains(says),
                "{}",
                run.stderr
            );
            let ch = listed(&backend, &name).expect("listed");
            assert_eq!(ch["state"], "incompatible");
            assert_eq!(ch["version"], version);
            assert_eq!(ch["kind"], Value::Null);
            // Not ours to remove without --force.
            let run = shmchan(&["rm", &name, "--backend", &b]);
            assert_eq!(run.code, 1);
            assert!(
                run.stderr.contains(&format!("layout version {version}")),
                "{}",
                run.stderr
            );
            shmchan(&["rm", &name, "--backend", &b, "--force"]).ok();
            assert!(!exists(&name, &backend));
        }
    }
}

/// A user who may not read a channel gets "permission denied" naming it, not a crash.
#[test]
fn no_permission_is_a_clear_error() {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        eprintln!("SKIPPED no-permission: needs root, to run shmchan as another user");
        return;
    }
    let nobody = 65534;
    let probe = shmchan_as(Some(nobody), &["--version"]);
    if probe.code != 0 {
        eprintln!(
            "SKIPPED no-permission: user {nobody} cannot run the binary: {}",
            probe.stderr
        );
        return;
    }
    let dir = TempDir::new();
    // The directory itself is readable by anyone; the channel in it is 0600 (root's).
    std::fs::set_permissions(&dir.0, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    for backend in [Backend::Posix, Backend::SysV, Backend::File(dir.0.clone())] {
        let name = unique_name("perm");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let mut h = spawn("hold-sender", &name, &backend, &[]);
        h.expect("READY");
        let run = shmchan_as(Some(nobody), &["stat", &name, "--backend", &arg(&backend)]);
        assert_eq!(run.code, 1, "{backend}: {}", run.stdout);
        assert!(
            run.stderr.contains("Permission denied") && run.stderr.contains(&name),
            "{backend}: {}",
            run.stderr
        );
        // `ls` shows what it could read and says what it could not.
        let run = shmchan_as(Some(nobody), &["ls", "--backend", &arg(&backend), "--json"]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert!(!run.stdout.contains(&name));
        let named = match &backend {
            Backend::SysV => format!("{:#010x}", Backend::sysv_key(&name)),
            _ => name.clone(),
        };
        assert!(
            run.stderr.contains(&named) && run.stderr.contains("Permission denied"),
            "{backend}: {}",
            run.stderr
        );
        let run = shmchan_as(Some(nobody), &["rm", &name, "--backend", &arg(&backend)]);
        assert_eq!(run.code, 1);
        assert!(exists(&name, &backend));
        h.finish();
    }
}

/// Why tests as another user cannot run here (`None`: they can): they need root, and user
/// 65534 able to run the binary.
fn other_user_unavailable() -> Option<String> {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        return Some("needs root, to run shmchan as another user".into());
    }
    let probe = shmchan_as(Some(NOBODY), &["--version"]);
    (probe.code != 0).then(|| format!("user {NOBODY} cannot run the binary: {}", probe.stderr))
}

const NOBODY: u32 = 65534;

/// Issue 18 #9: `ls` and `gc` run by a user who may not read a channel (root's, mode 0600) say
/// so on every backend, System V included (it was silently left out): the object is named
/// (its path, or its System V key), with why, and counted.
#[test]
fn ls_and_gc_as_another_user_name_what_they_could_not_read() {
    if let Some(why) = other_user_unavailable() {
        eprintln!("SKIPPED: {why}");
        return;
    }
    let dir = TempDir::new();
    std::fs::set_permissions(&dir.0, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    for backend in [Backend::Posix, Backend::SysV, Backend::File(dir.0.clone())] {
        let b = arg(&backend);
        let name = unique_name("unread");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let mut h = spawn("hold-sender", &name, &backend, &[]);
        h.expect("READY");
        // How the object is named where its name cannot be read.
        let named = match &backend {
            Backend::SysV => format!("{:#010x}", Backend::sysv_key(&name)),
            _ => name.clone(),
        };
        for args in [
            vec!["ls", "--backend", &b],
            vec!["ls", "--backend", &b, "--json"],
            vec!["gc", "--backend", &b, "--dry-run"],
        ] {
            let run = shmchan_as(Some(NOBODY), &args);
            assert_eq!(run.code, 0, "{backend}: {args:?}: {}", run.stderr);
            assert!(
                !run.stdout.contains(&name),
                "{backend}: {args:?}: {}",
                run.stdout
            );
            let line = run
                .stderr
                .lines()
                .find(|l| l.contains(&named))
                .unwrap_or_else(|| {
                    panic!(
                        "{backend}: {args:?} does not say it could not read {named}:\n{}",
                        run.stderr
                    )
                });
            assert!(line.contains("Permission denied"), "{backend}: {line}");
            assert!(
                run.stderr.contains("could not be read"),
                "{backend}: {args:?}: no count of what could not be read:\n{}",
                run.stderr
            );
        }
        // Without --backend, POSIX and System V together.
        if !matches!(backend, Backend::File(_)) {
            let run = shmchan_as(Some(NOBODY), &["ls"]);
            assert!(run.stderr.contains(&named), "{}", run.stderr);
        }
        h.finish();
    }
}

/// While 200,000 messages stream from one process to another, `ls`, `stat` and `watch` run
/// over and over: the receiver gets every message, intact and in order.
#[test]
fn looking_during_a_stream_loses_nothing() {
    let (_dir, list) = backends();
    const N: u64 = 200_000;
    for backend in list {
        let name = unique_name("stream");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let env = [
            ("SHMCHAN_CLI_N", N.to_string()),
            ("SHMCHAN_CLI_CAP", "1024".to_string()),
        ];
        let mut tx = spawn("stream-send", &name, &backend, &env);
        tx.expect("READY");
        let rx = spawn("stream-recv", &name, &backend, &env);
        rx.expect("READY");
        let b = arg(&backend);
        let (mut looks, mut last_sent) = (0, 0u64);
        let until = Instant::now() + Duration::from_secs(120);
        loop {
            let ch = stat_json(&backend, &name);
            let (sent, received) = (
                ch["sent"].as_u64().unwrap(),
                ch["received"].as_u64().unwrap(),
            );
            assert!(received <= sent && sent - received <= 1024, "{ch}");
            assert!(sent >= last_sent, "positions went back: {ch}");
            last_sent = sent;
            assert!(listed(&backend, &name).is_some());
            let w = shmchan(&[
                "watch",
                &name,
                "--backend",
                &b,
                "--interval",
                "20",
                "--count",
                "2",
            ])
            .ok();
            assert!(
                w.stdout.contains("fill:") && w.stdout.contains("/s"),
                "{}",
                w.stdout
            );
            looks += 1;
            if sent == N {
                break;
            }
            assert!(
                Instant::now() < until,
                "{backend}: the stream stalled at {sent}"
            );
        }
        tx.expect("SENT");
        tx.finish();
        assert_eq!(rx.expect("GOT"), N.to_string(), "{backend}");
        eprintln!("{backend}: looked {looks} times during the stream");
        assert!(
            looks >= 2,
            "{backend}: the stream ended before anyone looked"
        );
    }
}

/// `watch` refreshes, exits 0 when the channel goes away, and at once on Ctrl-C.
#[test]
fn watch_ends_when_the_channel_goes_and_on_ctrl_c() {
    let (_dir, list) = backends();
    for backend in list {
        let name = unique_name("watch");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let mut h = spawn(
            "hold-sender",
            &name,
            &backend,
            &[("SHMCHAN_CLI_N", "3".into())],
        );
        let pid = h.expect("READY");
        let b = arg(&backend);
        let w = shmchan(&[
            "watch",
            &name,
            "--backend",
            &b,
            "--interval",
            "10",
            "--count",
            "3",
        ])
        .ok();
        assert_eq!(w.stdout.matches("fill:").count(), 3, "{}", w.stdout);
        assert!(w.stdout.contains("3/16 msg"), "{}", w.stdout);
        assert!(w.stdout.contains(&format!("pid {pid}")), "{}", w.stdout);

        // Goes away: the holder leaves, the name is removed, watch says so and exits 0.
        let watcher = std::process::Command::new(env!("CARGO_BIN_EXE_shmchan"))
            .args(["watch", &name, "--backend", &b, "--interval", "20"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        h.finish();
        let out = wait(watcher);
        assert!(out.status.success(), "{backend}: {:?}", out.status);
        assert!(String::from_utf8_lossy(&out.stdout).contains("went away"));

        // Ctrl-C.
        let mut h = spawn("hold-sender", &name, &backend, &[]);
        h.expect("READY");
        let watcher = std::process::Command::new(env!("CARGO_BIN_EXE_shmchan"))
            .args(["watch", &name, "--backend", &b])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        // SAFETY: plain system call on our own child's pid, not yet reaped.
        unsafe { libc::kill(watcher.id() as libc::pid_t, libc::SIGINT) };
        let t = Instant::now();
        let out = wait(watcher);
        assert!(out.status.success(), "{backend}: Ctrl-C: {:?}", out.status);
        assert!(t.elapsed() < Duration::from_secs(2));
        h.finish();
    }
}

/// One screen of `watch` output, parsed: which channel it shows (the pid of the process that
/// created it, from the `created:` line, or else of its sender), the two rates (`None` for
/// `-`) and the sent count.
#[derive(Debug)]
struct Screen {
    channel_pid: Option<u32>,
    rates: Option<(Option<f64>, Option<f64>)>,
    sent: Option<u64>,
}

fn parse_screens(out: &str) -> Vec<Screen> {
    let rate = |cell: &str| -> Option<f64> {
        let cell = cell.trim();
        if cell == "-" {
            None
        } else {
            Some(
                cell.strip_suffix("/s")
                    .unwrap_or_else(|| panic!("not a rate: {cell:?}"))
                    .parse()
                    .unwrap_or_else(|e| panic!("not a rate: {cell:?}: {e}")),
            )
        }
    };
    // "in:       {rate:>14}  sent     {n} msg"
    let field = |line: &str, tag: &str| -> (Option<f64>, Option<u64>) {
        let rest = line.strip_prefix(tag).unwrap().trim_start();
        let (r, tail) = rest.split_once("  ").expect("rate, then the count");
        let n = tail
            .split_whitespace()
            .nth(1)
            .map(|n| n.replace(',', "").parse().expect("a count"));
        (rate(r), n)
    };
    out.split("(Ctrl-C to quit)")
        .filter(|s| s.contains("fill:") || s.contains("peers:"))
        .map(|screen| {
            let mut s = Screen {
                channel_pid: None,
                rates: None,
                sent: None,
            };
            let (mut r_in, mut r_out, mut creator) = (None, None, None);
            for line in screen.lines() {
                if line.starts_with("created:") {
                    creator = line
                        .rsplit_once("by pid ")
                        .and_then(|(_, p)| p.trim().parse().ok());
                } else if line.starts_with("in:") {
                    let (r, n) = field(line, "in:");
                    r_in = Some(r);
                    s.sent = n;
                } else if line.starts_with("out:") {
                    r_out = Some(field(line, "out:").0);
                } else if line.trim_start().starts_with("sender") {
                    s.channel_pid = line
                        .split_whitespace()
                        .skip_while(|w| *w != "pid")
                        .nth(1)
                        .and_then(|p| p.parse().ok());
                }
            }
            // The creator says which channel this is even before its sender has claimed its
            // place (a moment after the header is published).
            s.channel_pid = creator.or(s.channel_pid);
            // A broadcast topic's screen has no `out:` line (each subscriber has its rate).
            if let Some(i) = r_in {
                s.rates = Some((i, r_out.flatten()));
            }
            s
        })
        .collect()
}

/// Issue 18 #8: `watch` while the channel under its name is replaced (killed, then created
/// anew by another process with another number of messages, twice): it goes on watching the
/// new channel, starts its rates again (`-` on the first screen of each new channel) and never
/// prints a rate above what was sent (nothing is sent between screens but a new channel's own
/// messages, so no rate can exceed the most any channel held over the shortest interval).
#[test]
fn watch_restarts_its_rates_when_the_channel_is_made_anew() {
    let (_dir, list) = backends();
    const INTERVAL_MS: u64 = 50;
    let counts = [3000u64, 7, 2000];
    let bound = *counts.iter().max().unwrap() as f64 * 1000.0 / INTERVAL_MS as f64;
    for backend in list {
        let name = unique_name("rewatch");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let b = arg(&backend);
        let env = |n: u64| {
            [
                ("SHMCHAN_CLI_N", n.to_string()),
                ("SHMCHAN_CLI_CAP", "4096".to_string()),
            ]
        };
        let mut holder = spawn("hold-sender", &name, &backend, &env(counts[0]));
        let mut pids = vec![holder.expect("READY").parse::<u32>().unwrap()];
        let watcher = std::process::Command::new(env!("CARGO_BIN_EXE_shmchan"))
            .args([
                "watch",
                &name,
                "--backend",
                &b,
                "--interval",
                &INTERVAL_MS.to_string(),
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let watcher_pid = watcher.id();
        // Killed with SIGINT even if an assertion below fails.
        struct Interrupt(u32);
        impl Drop for Interrupt {
            fn drop(&mut self) {
                // SAFETY: plain system call on our own child's pid (SIGINT ends it cleanly).
                unsafe { libc::kill(self.0 as libc::pid_t, libc::SIGINT) };
            }
        }
        let interrupt = Interrupt(watcher_pid);
        std::thread::sleep(Duration::from_millis(400));
        for &n in &counts[1..] {
            // The holder dies: the channel is abandoned under its name, and the next create
            // of the name (another process, another count) replaces it.
            holder.kill9();
            holder = spawn("hold-sender", &name, &backend, &env(n));
            pids.push(holder.expect("READY").parse().unwrap());
            std::thread::sleep(Duration::from_millis(400));
        }
        drop(interrupt);
        let out = wait(watcher);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            out.status.success(),
            "{backend}: watch failed: {:?}\n{stdout}\n{stderr}",
            out.status
        );
        let screens = parse_screens(&stdout);
        for pid in &pids {
            assert!(
                screens.iter().any(|s| s.channel_pid == Some(*pid)),
                "{backend}: watch never showed the channel of pid {pid} (it stopped watching?):\n\
                 {stdout}\n{stderr}"
            );
        }
        let mut last_pid = None;
        for (i, s) in screens.iter().enumerate() {
            if let Some((r_in, r_out)) = s.rates {
                for r in [r_in, r_out].into_iter().flatten() {
                    assert!(
                        r <= bound,
                        "{backend}: screen {i} shows a rate of {r}/s, above the {bound}/s \
                         anything was sent at:\n{stdout}"
                    );
                }
                if s.channel_pid != last_pid && last_pid.is_some() {
                    assert_eq!(
                        (r_in, r_out),
                        (None, None),
                        "{backend}: screen {i} is of a new channel (sender pid {:?}, before \
                         {last_pid:?}) and shows rates measured against the old one:\n{stdout}",
                        s.channel_pid
                    );
                }
            }
            if s.channel_pid.is_some() {
                last_pid = s.channel_pid;
            }
        }
        eprintln!("{backend}: {} screens", screens.len());
    }
}

/// Issue 18 #5, through the command: `watch` of a channel whose object another process keeps
/// truncating to nothing and writing back (POSIX and File) refreshes 150 times and exits 0; it
/// used to die of SIGBUS (then `code` is -1: killed by a signal).
#[test]
fn watch_survives_an_object_that_shrinks_under_it() {
    use std::os::unix::fs::FileExt;
    let dir = TempDir::new();
    for backend in [Backend::Posix, Backend::File(dir.0.clone())] {
        let name = unique_name("shrink");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let path = match &backend {
            Backend::File(d) => d.join(&name),
            _ => std::path::Path::new("/dev/shm").join(&name),
        };
        // A real channel's bytes, planted as an object that no process holds.
        let opts = shmchan::Options::new().backend(backend.clone()).capacity(8);
        let tx = shmchan::spsc::Sender::<harness::Msg>::create(&name, &opts).unwrap();
        tx.send(harness::Msg::new(1)).unwrap();
        let good = std::fs::read(&path).unwrap();
        drop(tx);
        plant(&name, &backend, &good);
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let shrinker = std::thread::spawn(move || {
            let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
            while let Err(std::sync::mpsc::TryRecvError::Empty) = stopped.try_recv() {
                f.set_len(0).unwrap();
                std::thread::sleep(Duration::from_micros(50));
                f.write_all_at(&good, 0).unwrap();
                std::thread::sleep(Duration::from_micros(50));
            }
        });
        let run = shmchan(&[
            "watch",
            &name,
            "--backend",
            &arg(&backend),
            "--interval",
            "10",
            "--count",
            "150",
        ]);
        let _ = stop.send(());
        shrinker.join().unwrap();
        assert_eq!(
            run.code,
            0,
            "{backend}: watch failed (-1: killed by a signal, SIGBUS):\n{}\n{}",
            run.stderr,
            run.stdout
                .lines()
                .rev()
                .take(12)
                .collect::<Vec<_>>()
                .join("\n")
        );
        assert_eq!(
            run.stdout.matches("(Ctrl-C to quit)").count(),
            150,
            "{backend}"
        );
    }
}

fn wait(child: std::process::Child) -> std::process::Output {
    let (tx, rx) = std::sync::mpsc::channel();
    let pid = child.id();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    rx.recv_timeout(harness::SHORT)
        .unwrap_or_else(|_| {
            // SAFETY: plain system call on our own child's pid.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            panic!("watch did not exit");
        })
        .unwrap()
}

/// The row of `table` (whitespace-separated cells) equal to `row`, or a panic saying so.
fn has_row(table: &str, row: &[String], what: &str) {
    assert!(
        table
            .lines()
            .any(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>() == row),
        "{what}: no row {row:?} in\n{table}"
    );
}

/// `shmchan watch NAME --count 1`: one screen.
fn watch_once(backend: &Backend, name: &str) -> String {
    shmchan(&["watch", name, "--backend", &arg(backend), "--count", "1"])
        .ok()
        .stdout
}

/// The line of a topic's `watch` screen about the peer `pid`.
fn peer_line<'a>(screen: &'a str, pid: &str) -> &'a str {
    screen
        .lines()
        .filter(|l| {
            let l = l.trim_start();
            l.starts_with("publisher ") || l.starts_with("subscriber ")
        })
        .find(|l| {
            l.split_whitespace()
                .collect::<Vec<_>>()
                .windows(2)
                .any(|w| w == ["pid", pid])
        })
        .unwrap_or_else(|| panic!("no line for pid {pid} in\n{screen}"))
}

/// The parts of a topic's `--json` object every look must agree on; `a_state`: the killed
/// subscriber's table state (`attached` until someone reaps it, then `dead`).
fn subscribers_json(ch: &Value) -> Vec<Value> {
    ch["subscribers"]
        .as_array()
        .unwrap_or_else(|| panic!("no subscribers list: {ch}"))
        .clone()
}

/// Issue 19, an Overwrite topic: a publisher, subscriber A (read 3, then killed with SIGKILL)
/// and subscriber B (lapped: told `Lagged`, then 5 behind). `ls`, `stat` and `watch`, in JSON
/// and for people, show each subscriber's pid, alive, lag, lagged total and evicted; the
/// topic's len is B's lag; looking changes no byte of the region; a publish rate is measured.
fn overwrite_topic(backend: &Backend) {
    let b = arg(backend);
    let name = unique_name("topic-ow");
    let _cleanup = Cleanup(name.clone(), backend.clone());
    let env = [
        ("SHMCHAN_CLI_CAP", "16".to_string()),
        ("SHMCHAN_CLI_SUBS", "4".to_string()),
    ];
    let mut p = spawn("bcast-pub", &name, backend, &env);
    let p_pid = p.expect("READY");
    let mut a = spawn("bcast-sub", &name, backend, &env);
    let a_pid = a.expect("READY");
    let mut sb = spawn("bcast-sub", &name, backend, &env);
    let b_pid = sb.expect("READY");
    p.tell("send 3");
    assert_eq!(p.expect("SENT"), "3");
    a.tell("drain");
    assert_eq!(a.expect("GOT"), "3 LAGGED 0", "{backend}");
    a.kill9();
    p.tell("send 37");
    assert_eq!(p.expect("SENT"), "40");
    // B never read: the publisher lapped it (a ring of 16); it is told how many it lost, and
    // reads what is left.
    sb.tell("drain");
    let got = sb.expect("GOT");
    let (read, lost) = match got.split_whitespace().collect::<Vec<_>>()[..] {
        [n, "LAGGED", l] => (n.parse::<u64>().unwrap(), l.parse::<u64>().unwrap()),
        _ => panic!("{got}"),
    };
    assert!(
        read + lost == 40 && read <= 16 && lost > 0,
        "{backend}: B read {read} and lost {lost} of 40"
    );
    p.tell("send 5");
    assert_eq!(p.expect("SENT"), "45");

    let before = harness::object_bytes(&name, backend);
    let looks = [
        listed(backend, &name).expect("listed"),
        stat_json(backend, &name),
    ];
    let ls = shmchan(&["ls", "--backend", &b]).ok().stdout;
    let stat = shmchan(&["stat", &name, "--backend", &b]).ok().stdout;
    let screen = watch_once(backend, &name);
    assert!(
        before == harness::object_bytes(&name, backend),
        "{backend}: looking changed the region"
    );

    for ch in &looks {
        assert_eq!(ch["kind"], "broadcast", "{ch}");
        assert_eq!(ch["state"], "live");
        assert_eq!(ch["overflow"], "overwrite");
        assert_eq!(ch["evict_after_ms"], Value::Null);
        assert_eq!(ch["capacity"], 16);
        assert_eq!(ch["sent"], 45);
        assert_eq!(
            ch["len"], 5,
            "{backend}: the slowest live subscriber is B, 5 behind"
        );
        assert_eq!(ch["received"], 40);
        let subs = subscribers_json(ch);
        assert_eq!(subs.len(), 2, "{backend}: {ch}");
        let a_state = subs[0]["state"].as_str().unwrap().to_owned();
        assert!(["attached", "dead"].contains(&a_state.as_str()), "{ch}");
        assert_eq!(
            subs,
            vec![
                serde_json::json!({"index": 1, "pid": a_pid.parse::<u32>().unwrap(),
                    "alive": false, "state": a_state, "attached": 1, "lag": 16, "lagged": 0,
                    "evicted": false, "cursor": 3}),
                serde_json::json!({"index": 2, "pid": b_pid.parse::<u32>().unwrap(),
                    "alive": true, "state": "attached", "attached": 1, "lag": 5,
                    "lagged": lost, "evicted": false, "cursor": 40}),
            ],
            "{backend}"
        );
        // The endpoint list keeps every place.
        let places: Vec<(u64, String, bool)> = ch["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["index"].as_u64().unwrap(),
                    e["pid"].to_string(),
                    e["alive"].as_bool().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            places,
            [
                (0, p_pid.clone(), true),
                (1, a_pid.clone(), false),
                (2, b_pid.clone(), true)
            ],
            "{backend}"
        );
    }

    let head = ls.lines().next().unwrap();
    let line = ls.lines().find(|l| l.starts_with(&name)).expect("listed");
    let cell = |col: &str| {
        line.get(head.find(col).unwrap()..)
            .and_then(|c| c.split_whitespace().next())
            .unwrap_or("")
    };
    assert_eq!(cell("KIND"), "broadcast", "{ls}");
    assert_eq!(cell("LEN/CAP"), "5/16", "{ls}");
    assert_eq!(cell("RECEIVED"), "-", "{ls}");
    assert!(
        line.contains(&format!("p:{p_pid} subs:1 +1 gone")),
        "{backend}: {line}"
    );

    assert!(stat.contains("overwrite"), "{stat}");
    assert!(
        stat.contains("(lag of the slowest subscriber, place 2)"),
        "{stat}"
    );
    let a_row: Vec<String> = [
        "1",
        &a_pid,
        looks[1]["subscribers"][0]["state"].as_str().unwrap(),
        "no",
        "1",
        "16",
        "0",
        "no",
    ]
    .map(String::from)
    .to_vec();
    has_row(&stat, &a_row, "stat");
    let b_row: Vec<String> = [
        "2",
        &b_pid,
        "attached",
        "yes",
        "1",
        "5",
        &lost.to_string(),
        "no",
    ]
    .map(String::from)
    .to_vec();
    has_row(&stat, &b_row, "stat");
    let p_row: Vec<String> = ["0", "publisher", &p_pid, "attached", "yes", "1"]
        .map(String::from)
        .to_vec();
    has_row(&stat, &p_row, "stat");

    assert!(
        screen.contains("5/16 msg") && screen.contains(&format!("place 2, pid {b_pid}")),
        "{backend}: watch does not show B as the slowest:\n{screen}"
    );
    let a_line = peer_line(&screen, &a_pid);
    assert!(
        a_line.contains("gone")
            && a_line.contains("lag 16  lagged 0")
            && !a_line.contains("EVICTED"),
        "{a_line}"
    );
    let b_line = peer_line(&screen, &b_pid);
    assert!(
        b_line.contains("alive") && b_line.contains(&format!("lag 5  lagged {lost}")),
        "{b_line}"
    );

    // The publish rate: 100 messages sent between two of three looks 400 ms apart.
    let mut watcher = std::process::Command::new(env!("CARGO_BIN_EXE_shmchan"))
        .args([
            "watch",
            &name,
            "--backend",
            &b,
            "--interval",
            "400",
            "--count",
            "3",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = watcher.stdout.take().unwrap();
    let (tx, screens) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in std::io::BufRead::lines(std::io::BufReader::new(out)) {
            let Ok(line) = line else { break };
            if line.contains("(Ctrl-C to quit)") {
                let _ = tx.send(());
            }
            all += &line;
            all.push('\n');
        }
        all
    });
    screens
        .recv_timeout(harness::SHORT)
        .expect("watch printed no screen");
    p.tell("send 100");
    assert_eq!(p.expect("SENT"), "145");
    let status = wait_status(watcher);
    let stdout = reader.join().unwrap();
    assert!(status.success(), "{backend}: watch: {status}\n{stdout}");
    let parsed = parse_screens(&stdout);
    assert_eq!(parsed.len(), 3, "{stdout}");
    assert_eq!(parsed[2].sent, Some(145), "{stdout}");
    let rates: Vec<f64> = parsed
        .iter()
        .filter_map(|s| s.rates.and_then(|r| r.0))
        .collect();
    assert!(
        rates.iter().any(|&r| r > 0.0) && rates.iter().all(|&r| r <= 100.0 / 0.4),
        "{backend}: publish rates {rates:?} for 100 messages in one of two 400 ms intervals:\n{stdout}"
    );

    p.finish();
    sb.finish();
    assert!(!exists(&name, backend), "{backend}: name left behind");
}

/// Issue 19, a Block topic evicting after 500 ms: subscriber A killed, B alive but stuck
/// (evicted), C reading along. The publisher sends 21 into a ring of 16: it waits for A
/// (dropped as dead) and B (evicted), then goes on. `ls`, `stat` and `watch` say so; B's next
/// receive says `Evicted`, as `stat` did.
fn block_topic(backend: &Backend) {
    let b = arg(backend);
    let name = unique_name("topic-block");
    let _cleanup = Cleanup(name.clone(), backend.clone());
    let env = [
        ("SHMCHAN_CLI_CAP", "16".to_string()),
        ("SHMCHAN_CLI_SUBS", "4".to_string()),
        ("SHMCHAN_CLI_EVICT_MS", "500".to_string()),
    ];
    let mut p = spawn("bcast-pub", &name, backend, &env);
    let p_pid = p.expect("READY");
    let mut a = spawn("bcast-sub", &name, backend, &env);
    let a_pid = a.expect("READY");
    let mut sb = spawn("bcast-sub", &name, backend, &env);
    let b_pid = sb.expect("READY");
    let mut c = spawn("bcast-sub", &name, backend, &env);
    let c_pid = c.expect("READY");
    a.kill9();
    c.tell("recv 21");
    p.tell("send 21");
    assert_eq!(p.expect("SENT"), "21");
    assert_eq!(c.expect("GOT"), "21 LAGGED 0", "{backend}");
    c.tell("drain"); // nothing left: its cursor is published where it is
    assert_eq!(c.expect("GOT"), "0 LAGGED 0");

    let before = harness::object_bytes(&name, backend);
    let looks = [
        listed(backend, &name).expect("listed"),
        stat_json(backend, &name),
    ];
    let ls = shmchan(&["ls", "--backend", &b]).ok().stdout;
    let stat = shmchan(&["stat", &name, "--backend", &b]).ok().stdout;
    let screen = watch_once(backend, &name);
    assert!(
        before == harness::object_bytes(&name, backend),
        "{backend}: looking changed the region"
    );

    for ch in &looks {
        assert_eq!(ch["kind"], "broadcast", "{ch}");
        assert_eq!(ch["overflow"], "block");
        assert_eq!(ch["evict_after_ms"], 500);
        assert_eq!(
            (ch["sent"].as_u64(), ch["len"].as_u64()),
            (Some(21), Some(0)),
            "{ch}"
        );
        let subs = subscribers_json(ch);
        let a_state = subs[0]["state"].as_str().unwrap().to_owned();
        assert!(["attached", "dead"].contains(&a_state.as_str()), "{ch}");
        assert_eq!(
            subs,
            vec![
                serde_json::json!({"index": 1, "pid": a_pid.parse::<u32>().unwrap(),
                    "alive": false, "state": a_state, "attached": 1, "lag": 16, "lagged": 0,
                    "evicted": false, "cursor": 0}),
                serde_json::json!({"index": 2, "pid": b_pid.parse::<u32>().unwrap(),
                    "alive": true, "state": "attached", "attached": 1, "lag": 16, "lagged": 0,
                    "evicted": true, "cursor": 0}),
                serde_json::json!({"index": 3, "pid": c_pid.parse::<u32>().unwrap(),
                    "alive": true, "state": "attached", "attached": 1, "lag": 0, "lagged": 0,
                    "evicted": false, "cursor": 21}),
            ],
            "{backend}"
        );
    }
    let line = ls.lines().find(|l| l.starts_with(&name)).expect("listed");
    assert!(
        line.contains(&format!("p:{p_pid} subs:1 +1 evicted +1 gone")),
        "{backend}: {line}"
    );
    assert!(stat.contains("block (evict after 500 ms)"), "{stat}");
    let b_row: Vec<String> = ["2", &b_pid, "attached", "yes", "1", "16", "0", "yes"]
        .map(String::from)
        .to_vec();
    has_row(&stat, &b_row, "stat");
    assert!(stat.contains("1 active, 1 evicted, 1 gone"), "{stat}");
    assert!(
        peer_line(&screen, &b_pid).ends_with("EVICTED"),
        "{backend}:\n{screen}"
    );
    assert!(
        screen.contains(&format!("place 3, pid {c_pid}")) && screen.contains("0/16 msg"),
        "{backend}: watch does not show C as the slowest active one:\n{screen}"
    );
    assert!(!peer_line(&screen, &c_pid).contains("EVICTED"), "{screen}");

    // What `stat` said is what B is told.
    sb.tell("recv 1");
    sb.expect("EVICTED");
    p.finish();
    sb.finish();
    c.finish();
    assert!(!exists(&name, backend), "{backend}: name left behind");
}

/// Issue 19: broadcast topics in `ls`, `stat` and `watch` (and `--json`), on every backend.
#[test]
fn ls_stat_and_watch_show_each_subscriber_of_a_topic() {
    let (_dir, list) = backends();
    for backend in list {
        overwrite_topic(&backend);
        block_topic(&backend);
    }
}

fn wait_status(mut child: std::process::Child) -> std::process::ExitStatus {
    let until = Instant::now() + harness::SHORT;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("watch did not exit within {:?}", harness::SHORT);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `doctor` checks what it says it checks, for people and in JSON.
#[test]
fn doctor_reports_each_check() {
    let run = shmchan(&["doctor"]).ok();
    for want in [
        "/dev/shm",
        "System V limits",
        "/proc",
        "membarrier",
        "namespaces",
    ] {
        assert!(run.stdout.contains(want), "{want} not in\n{}", run.stdout);
    }
    let json = shmchan(&["doctor", "--json"]).ok().json();
    let checks = json.as_array().unwrap();
    assert_eq!(checks.len(), 5);
    for c in checks {
        assert!(
            ["ok", "warn", "info"].contains(&c["status"].as_str().unwrap()),
            "{c}"
        );
    }
}

/// Issue 18 #10: `doctor` run by a user who may not read `/proc/1/ns` says it cannot tell
/// whether pid 1 shares this process's namespaces, instead of saying it does not.
#[test]
fn doctor_says_when_it_cannot_tell_the_namespaces_of_pid_1() {
    if let Some(why) = other_user_unavailable() {
        eprintln!("SKIPPED: {why}");
        return;
    }
    use std::os::unix::process::CommandExt;
    let readable = std::process::Command::new("readlink")
        .args(["/proc/1/ns/pid", "/proc/1/ns/ipc"])
        .uid(NOBODY)
        .gid(NOBODY)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success());
    if readable.as_ref().is_ok_and(|ok| *ok) {
        eprintln!("SKIPPED: user {NOBODY} can read /proc/1/ns here");
        return;
    }
    for json in [true, false] {
        let args: &[&str] = if json {
            &["doctor", "--json"]
        } else {
            &["doctor"]
        };
        let run = shmchan_as(Some(NOBODY), args);
        assert_eq!(run.code, 0, "{}", run.stderr);
        let message = if json {
            let checks = run.json();
            let ns = checks
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["check"] == "namespaces")
                .cloned()
                .expect("a namespaces check");
            ns["message"].as_str().unwrap().to_owned()
        } else {
            run.stdout
                .lines()
                .find(|l| l.contains("namespaces"))
                .expect("a namespaces line")
                .to_owned()
        };
        assert!(
            !message.contains("is in others"),
            "doctor claims what it could not see: {message}"
        );
        assert!(
            message.contains("cannot tell") && message.contains("/proc/1/ns"),
            "doctor does not say it could not tell: {message}"
        );
    }
}

/// `--help` of every command shows an example; `ls --help` documents every JSON field.
#[test]
fn help_has_examples_and_the_json_fields() {
    for cmd in ["ls", "stat", "watch", "rm", "gc", "doctor"] {
        let run = shmchan(&[cmd, "--help"]).ok();
        assert!(run.stdout.contains("Example"), "{cmd}: {}", run.stdout);
    }
    let help = shmchan(&["ls", "--help"]).ok().stdout;
    for field in [
        "name",
        "backend",
        "kind",
        "payload",
        "capacity",
        "len",
        "sent",
        "received",
        "state",
        "endpoints",
        "\"role\"",
        "\"pid\"",
        "\"alive\"",
        "\"index\"",
        "\"attached\"",
        "broadcast",
        "overflow",
        "evict_after_ms",
        "subscribers",
        "\"lag\"",
        "\"lagged\"",
        "\"evicted\"",
        "\"cursor\"",
    ] {
        assert!(help.contains(field), "{field} not documented");
    }
}

/// A peer helper is used by every test above; this keeps the type in use when one is skipped.
#[allow(dead_code)]
fn _peer_type(_: &Peer) {}
