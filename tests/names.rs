//! Names that cannot be stolen, with real processes over every backend: exactly one of many
//! racing creators wins a name; a last handle leaving never removes a name that meanwhile
//! refers to a new channel; a channel whose last handle belonged to a user who may not remove
//! the name is closed and taken over by the next `create`, never silently kept; a relative
//! `File` directory is resolved once; and `shmchan::remove` removes exactly what is safe to.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{Cleanup, Msg, assert_gone, backends, exists, spawn, spawn_via, unique_name};
use shmchan::{Backend, Error, Options, spsc};

const SHORT: Duration = Duration::from_secs(10);

#[test]
#[ignore = "entry point of the child processes the other tests start"]
fn child_main() {
    common::child_main();
}

/// Four processes race to `create` each of 400 names whose channels were abandoned (their
/// creator was killed): every name is won by exactly one of them, and what is at the name is
/// the winner's live channel.
#[test]
fn one_of_many_racing_creators_wins_each_abandoned_name() {
    const NAMES: u64 = 400;
    const RACERS: usize = 4;
    for backend in backends() {
        let base = unique_name("race");
        let _cleanups: Vec<_> = (0..NAMES)
            .map(|i| Cleanup(format!("{base}-{i}"), backend.clone()))
            .collect();
        let n = [("SHMCHAN_TEST_N", NAMES.to_string())];
        let mut owner = spawn("abandon-many", &base, &backend, &n);
        owner.expect_line("READY", SHORT);
        owner.kill9();
        owner.reap();
        let go = std::env::temp_dir().join(format!("{base}-go"));
        let env = [
            ("SHMCHAN_TEST_N", NAMES.to_string()),
            ("SHMCHAN_TEST_GO", go.display().to_string()),
        ];
        let racers: Vec<_> = (0..RACERS)
            .map(|_| spawn("create-race", &base, &backend, &env))
            .collect();
        for r in &racers {
            r.expect_line("READY", SHORT);
        }
        std::fs::write(&go, b"go").unwrap();
        let mut wins: HashMap<u64, usize> = HashMap::new();
        for r in &racers {
            for i in r
                .expect_line("WON", Duration::from_secs(60))
                .split_whitespace()
            {
                *wins.entry(i.parse().unwrap()).or_default() += 1;
            }
        }
        let _ = std::fs::remove_file(&go);
        for i in 0..NAMES {
            assert_eq!(
                wins.get(&i).copied().unwrap_or(0),
                1,
                "{backend}: name {i} was created by {:?} racers",
                wins.get(&i)
            );
            // The name holds the winner's channel, alive: a receiver can join it.
            let name = format!("{base}-{i}");
            let rx = spsc::Receiver::<Msg>::open(&name, &Options::new().backend(backend.clone()))
                .unwrap_or_else(|e| panic!("{backend}: {name}: {e}"));
            assert!(rx.is_connected(), "{backend}: {name}");
        }
        drop(racers); // killed: the names are removed by the cleanups
    }
}

/// One process creates and drops a channel in a loop while this one keeps creating the same
/// name too: whenever our `create` succeeds, the name is ours (a receiver that opens it finds
/// our capacity), never removed by the other's last handle leaving at the same moment.
#[test]
fn a_last_handle_leaving_never_removes_a_new_channel() {
    for backend in backends() {
        let name = unique_name("churn");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let opts = Options::new()
            .backend(backend.clone())
            .capacity(16)
            .open_timeout(Duration::from_secs(5));
        let mut other = spawn(
            "churn-create",
            &name,
            &backend,
            &[("SHMCHAN_TEST_MS", "1500".into())],
        );
        other.expect_line("READY", SHORT);
        let until = Instant::now() + Duration::from_millis(1500);
        let mut ours = 0u64;
        while Instant::now() < until {
            let _tx = match spsc::Sender::<Msg>::create(&name, &opts) {
                Ok(tx) => tx,
                Err(Error::AlreadyExists { .. }) => continue,
                Err(e) => panic!("{backend}: create: {e}"),
            };
            ours += 1;
            match spsc::Receiver::<Msg>::open(&name, &opts) {
                Ok(rx) => assert_eq!(rx.capacity(), 16, "{backend}: the name is another channel"),
                Err(e) => panic!("{backend}: our new channel's name was taken from it: {e}"),
            }
        }
        let theirs = other.expect_line("MADE", SHORT);
        other.assert_success(SHORT);
        eprintln!("{backend}: created {ours} times here and {theirs} times in the other process");
        assert!(ours > 0, "{backend}: never won the name");
        assert_gone(&name, &backend);
    }
}

/// Users A, B and C share a channel of mode 0666 (a service and its clients). A creates it,
/// B joins and leaves last; B may not remove A's name (sticky directory, System V owner), so
/// the channel is closed: opening it says so. C's `create` then takes the object over and it
/// works; a `create` asking for another mode is refused (a private channel must not live in a
/// shared object). Root's `remove` finally removes it.
#[test]
fn a_channel_left_by_another_user_is_closed_then_taken_over() {
    if let Some(why) = common::other_users_unavailable() {
        eprintln!("SKIPPED cross-user: {why}");
        return;
    }
    let (a, b, c) = (10_001, 10_002, 10_003);
    let shared = common::shared_file_dir();
    for backend in [Backend::Posix, Backend::SysV, shared.backend()] {
        let name = unique_name("users");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let mode = |m: &str| {
            [
                ("SHMCHAN_TEST_MODE", m.to_string()),
                // 1 MiB, so that making it anew below takes a while (a wide race).
                ("SHMCHAN_TEST_CAP", (1u32 << 16).to_string()),
            ]
        };
        let mut creator = spawn_via(
            &[],
            Some(a),
            "user-create-send",
            &name,
            &backend,
            &mode("666"),
        );
        creator.expect_line("READY", SHORT);
        let mut last = spawn_via(&[], Some(b), "user-recv", &name, &backend, &[]);
        creator.expect_line("SENT", SHORT);
        creator.assert_success(SHORT);
        last.expect_line("LEFT", SHORT);
        last.assert_success(SHORT);

        assert!(
            exists(&name, &backend),
            "{backend}: B could not remove A's name"
        );
        let opts = Options::new().backend(backend.clone());
        let err = spsc::Receiver::<Msg>::open(&name, &opts).unwrap_err();
        assert!(matches!(err, Error::Closed { .. }), "{backend}: {err:?}");

        // Four processes of user C race to take the closed channel over: exactly one wins.
        let go = std::env::temp_dir().join(format!("{name}-go"));
        let env = [
            ("SHMCHAN_TEST_MODE", "666".to_string()),
            ("SHMCHAN_TEST_CAP", (1u32 << 16).to_string()),
            ("SHMCHAN_TEST_GO", go.display().to_string()),
        ];
        let racers: Vec<_> = (0..4)
            .map(|_| spawn_via(&[], Some(c), "create-once", &name, &backend, &env))
            .collect();
        for r in &racers {
            r.expect_line("READY", SHORT);
        }
        std::fs::write(&go, b"go").unwrap();
        let outcomes: Vec<String> = racers
            .iter()
            .map(|r| {
                let line = r.expect_line("", SHORT);
                line.split_whitespace().next().unwrap_or("").to_owned()
            })
            .collect();
        let _ = std::fs::remove_file(&go);
        assert_eq!(
            outcomes.iter().filter(|o| *o == "WON").count(),
            1,
            "{backend}: {outcomes:?}"
        );
        drop(racers); // killed: the winner's channel is abandoned (A still owns the object)

        let mut taker = spawn_via(
            &[],
            Some(c),
            "user-create-roundtrip",
            &name,
            &backend,
            &mode("666"),
        );
        assert_eq!(taker.expect_line("ROUNDTRIP", SHORT), "ok", "{backend}");
        // Gone before the next create: while its handles live the channel is live, and a
        // create is refused for that ("already exists"), not for the mode asserted below.
        taker.assert_success(SHORT);
        let private = spawn_via(
            &[],
            Some(c),
            "user-create-roundtrip",
            &name,
            &backend,
            &mode("600"),
        );
        let refused = private.expect_line("ROUNDTRIP", SHORT);
        assert!(refused.contains("mode 600"), "{backend}: {refused}");

        shmchan::remove(&name, &opts).unwrap();
        assert_gone(&name, &backend);
    }
}

/// A `File` backend given a relative directory resolves it when the channel is made: the
/// process changing directory afterwards does not make its last handle miss the file.
#[test]
fn a_relative_file_directory_survives_chdir() {
    let base = common::file_dir();
    std::fs::create_dir(base.path().join("rel")).unwrap();
    let name = unique_name("chdir");
    let backend = Backend::File(base.path().join("rel"));
    let _cleanup = Cleanup(name.clone(), backend.clone());
    let mut child = spawn(
        "chdir-drop",
        &name,
        &backend,
        &[("SHMCHAN_TEST_BASE", base.path().display().to_string())],
    );
    child.expect_line("DONE", SHORT);
    child.assert_success(SHORT);
    assert_gone(&name, &backend);
}

/// `remove` takes away an abandoned channel (its process was killed), a channel whose
/// creator died before publishing it, refuses a live one (naming its endpoints) and anything
/// that is not a shmchan channel, and reports a missing name.
#[test]
fn remove_takes_only_what_no_live_endpoint_holds() {
    for backend in backends() {
        let opts = Options::new()
            .backend(backend.clone())
            .open_timeout(Duration::from_millis(100));

        let name = unique_name("rm-missing");
        let err = shmchan::remove(&name, &opts).unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{backend}: {err:?}");

        let name = unique_name("rm-live");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let tx = spsc::Sender::<Msg>::create(&name, &opts).unwrap();
        let err = shmchan::remove(&name, &opts).unwrap_err();
        assert!(matches!(err, Error::InUse { .. }), "{backend}: {err:?}");
        let text = err.to_string();
        assert!(
            text.contains(&format!("sender pid {}", std::process::id())),
            "{text}"
        );
        tx.send(Msg::new(1)).unwrap();
        drop(tx);
        assert_gone(&name, &backend);

        let name = unique_name("rm-abandoned");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let mut child = spawn(
            "send",
            &name,
            &backend,
            &[
                ("SHMCHAN_TEST_CREATE", "1".into()),
                ("SHMCHAN_TEST_HANG", "1".into()),
            ],
        );
        child.expect_line("SENT", SHORT);
        child.kill9();
        child.reap();
        assert!(exists(&name, &backend), "a killed process removes nothing");
        shmchan::remove(&name, &opts).unwrap();
        assert_gone(&name, &backend);

        let name = unique_name("rm-half");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        common::plant(&name, &backend, &common::half_made(8192)); // its creator died
        shmchan::remove(&name, &opts).unwrap();
        assert_gone(&name, &backend);

        for (what, bytes) in foreign_objects() {
            let name = unique_name("rm-foreign");
            let _cleanup = Cleanup(name.clone(), backend.clone());
            common::plant(&name, &backend, &bytes);
            let opts = opts.clone().open_timeout(Duration::from_millis(50));
            let err = shmchan::remove(&name, &opts).unwrap_err();
            assert!(
                matches!(err, Error::Incompatible { .. }),
                "{backend}, {what}: {err:?}"
            );
            assert!(err.to_string().contains("not removed"), "{err}");
            assert_eq!(
                common::region_bytes(&name, &backend),
                bytes,
                "{backend}, {what}: a foreign object is left alone, not a byte changed"
            );
        }
    }
}

/// A handle whose channel's object was made a new channel since it joined (as a `create` of
/// another user does when it may not remove the old name) closes nothing when it leaves last:
/// the header's incarnation is not its own.
#[test]
fn a_stale_handle_does_not_close_the_channel_made_anew_in_its_object() {
    let name = unique_name("incarnation");
    let backend = Backend::Posix;
    let _cleanup = Cleanup(name.clone(), backend.clone());
    let opts = Options::new().backend(backend.clone());
    let tx = spsc::Sender::<Msg>::create(&name, &opts).unwrap();
    // What a reusing `create` writes at `Header.life.incarnation` (offset 384 + 16).
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(std::path::Path::new("/dev/shm").join(&name))
        .unwrap();
    // SAFETY: a shared mapping of the region; one aligned 8-byte store into its header.
    unsafe {
        let mut map = memmap2::MmapMut::map_mut(&file).unwrap();
        let word = map.as_mut_ptr().add(400).cast::<u64>();
        word.write_volatile(word.read_volatile() ^ 0x5a5a);
    }
    drop(tx);
    assert!(
        exists(&name, &backend),
        "the last handle of the old incarnation removed the new channel's name"
    );
    shmchan::remove(&name, &opts).unwrap(); // every endpoint gone: removable
    assert_gone(&name, &backend);
}

/// `create` over a channel whose creator died before publishing it takes the name; over
/// another program's object it fails and leaves the object alone, even one that looks like a
/// half-made channel of the old rule (first word zero, ready word unset), or is all zeros.
#[test]
fn create_reclaims_half_made_channels_and_leaves_foreign_objects() {
    for backend in backends() {
        let opts = Options::new().backend(backend.clone());
        let name = unique_name("half");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        common::plant(&name, &backend, &common::half_made(8192));
        let tx = spsc::Sender::<Msg>::create(&name, &opts).unwrap();
        let rx = spsc::Receiver::<Msg>::open(&name, &opts).unwrap();
        tx.send(Msg::new(3)).unwrap();
        assert_eq!(rx.recv(), Ok(Msg::new(3)));
        drop((tx, rx));
        assert_gone(&name, &backend);

        for (what, bytes) in foreign_objects() {
            let name = unique_name("foreign");
            let _cleanup = Cleanup(name.clone(), backend.clone());
            common::plant(&name, &backend, &bytes);
            let err = spsc::Sender::<Msg>::create(&name, &opts).unwrap_err();
            assert!(
                matches!(err, Error::AlreadyExists { .. }),
                "{backend}, {what}: {err:?}"
            );
            let quick = opts.clone().open_timeout(Duration::from_millis(100));
            let err = spsc::Receiver::<Msg>::open(&name, &quick).unwrap_err();
            assert!(
                matches!(err, Error::Incompatible { .. }),
                "{backend}, {what}: {err:?}"
            );
            assert_eq!(
                common::region_bytes(&name, &backend),
                bytes,
                "{backend}, {what}: not a byte changed by create or open"
            );
        }
    }
}

/// Other programs' objects: not one of them may be taken for a channel, written or removed.
fn foreign_objects() -> Vec<(&'static str, Vec<u8>)> {
    // First word zero and no ready word (what the old rule took for a half-made channel),
    // with bytes of another program where the System V gate word is (offset 392).
    let mut zero_first = vec![0xa5u8; 8192];
    zero_first[..8].fill(0);
    zero_first[392..400].copy_from_slice(&[0x8e, 0x8f, 0x90, 0x91, 0x92, 0x93, 0x94, 0x95]);
    let mut zeros = vec![0u8; 8192];
    zeros[392..400].copy_from_slice(&[0x8e, 0x8f, 0x90, 0x91, 0x92, 0x93, 0x94, 0x95]);
    vec![
        ("random bytes", vec![0xa5u8; 8192]),
        ("first word zero", zero_first),
        ("zeros but the gate word", zeros),
    ]
}
