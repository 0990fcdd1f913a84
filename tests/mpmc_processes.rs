//! MPMC between real processes, over every backend: several producers and consumers with
//! exactly-once delivery and per-producer order, `kill -9` of a producer and of a consumer in
//! the middle of a stream, in-process threads, and kinds that do not mix.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use common::{Cleanup, Msg, Peer, assert_gone, backends, spawn, unique_name};
use shmchan::{Backend, Error, Options, mpmc, spsc};

const N: u64 = 100_000;
const LONG: Duration = Duration::from_secs(120);
const SHORT: Duration = Duration::from_secs(10);

#[test]
#[ignore = "entry point of the child processes the other tests start"]
fn child_main() {
    common::child_main();
}

fn producer(name: &str, backend: &Backend, p: u64, n: u64, hang: bool) -> Peer {
    let mut env = vec![
        ("SHMCHAN_TEST_P", p.to_string()),
        ("SHMCHAN_TEST_N", n.to_string()),
    ];
    if hang {
        env.push(("SHMCHAN_TEST_HANG", "1".into()));
    }
    let child = spawn("mpmc-send", name, backend, &env);
    child.expect_line("READY", SHORT);
    child
}

fn consumer(name: &str, backend: &Backend, out: &Path, take: Option<u64>) -> Peer {
    let mut env = vec![("SHMCHAN_TEST_OUT", out.display().to_string())];
    if let Some(t) = take {
        env.push(("SHMCHAN_TEST_TAKE", t.to_string()));
    }
    let child = spawn("mpmc-recv", name, backend, &env);
    child.expect_line("READY", SHORT);
    child
}

/// Every seq each consumer wrote, as (producer, index) counts.
fn received(files: &[std::path::PathBuf]) -> HashMap<(u64, u64), u32> {
    let mut seen = HashMap::new();
    for f in files {
        let bytes = std::fs::read(f).unwrap();
        for c in bytes.chunks_exact(8) {
            let seq = u64::from_le_bytes(c.try_into().unwrap());
            *seen.entry((seq >> 40, seq & ((1 << 40) - 1))).or_insert(0) += 1;
        }
    }
    seen
}

/// 3 producer processes x 100k messages, 2 consumer processes: every message exactly once,
/// intact, each producer's messages in order within each consumer (checked by the consumers).
#[test]
fn producers_and_consumers_exactly_once() {
    for backend in backends() {
        let name = unique_name("mpmc");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let dir = common::file_dir();
        let opts = Options::new().backend(backend.clone()).capacity(256);
        let anchor = mpmc::Sender::<Msg>::create(&name, &opts).unwrap();
        let files: Vec<_> = (0..2).map(|c| dir.path().join(format!("c{c}"))).collect();
        let mut consumers: Vec<_> = files
            .iter()
            .map(|f| consumer(&name, &backend, f, None))
            .collect();
        let mut producers: Vec<_> = (0..3)
            .map(|p| producer(&name, &backend, p, N, false))
            .collect();
        drop(anchor); // the producers hold the channel open now
        for p in &mut producers {
            p.assert_success(LONG);
        }
        for c in &mut consumers {
            c.expect_line("GOT", LONG);
            c.assert_success(SHORT);
        }
        let seen = received(&files);
        assert_eq!(seen.len() as u64, 3 * N, "{backend}: messages lost");
        assert!(
            seen.values().all(|&k| k == 1),
            "{backend}: a message was delivered twice"
        );
        assert!((0..3).all(|p| (0..N).all(|i| seen.contains_key(&(p, i)))));
        assert_gone(&name, &backend);
    }
}

/// `kill -9` of one producer mid-stream: the others' messages all arrive, the consumers end
/// with `Disconnected`, nothing is torn or duplicated, and what arrived from the killed
/// producer is a prefix of what it sent (at most the message in flight is lost).
#[test]
fn killed_producer_does_not_wedge_the_others() {
    for backend in backends() {
        let name = unique_name("mpmc-kill-tx");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let dir = common::file_dir();
        let opts = Options::new().backend(backend.clone()).capacity(64);
        let anchor = mpmc::Sender::<Msg>::create(&name, &opts).unwrap();
        let files: Vec<_> = (0..2).map(|c| dir.path().join(format!("c{c}"))).collect();
        let mut consumers: Vec<_> = files
            .iter()
            .map(|f| consumer(&name, &backend, f, None))
            .collect();
        let mut victim = producer(&name, &backend, 9, u64::MAX >> 30, false);
        let mut producers: Vec<_> = (0..2)
            .map(|p| producer(&name, &backend, p, N, false))
            .collect();
        drop(anchor);
        std::thread::sleep(Duration::from_millis(50));
        victim.kill9();
        for p in &mut producers {
            p.assert_success(LONG);
        }
        for c in &mut consumers {
            c.expect_line("GOT", LONG);
            c.assert_success(SHORT);
        }
        victim.reap();
        let seen = received(&files);
        assert!(
            seen.values().all(|&k| k == 1),
            "{backend}: a message was delivered twice"
        );
        assert!(
            (0..2).all(|p| (0..N).all(|i| seen.contains_key(&(p, i)))),
            "{backend}: lost"
        );
        let from_victim = seen.keys().filter(|(p, _)| *p == 9).count() as u64;
        assert!(
            from_victim > 0,
            "{backend}: the victim sent nothing before it was killed"
        );
        assert!(
            (0..from_victim).all(|i| seen.contains_key(&(9, i))),
            "{backend}: the killed producer's messages are not a prefix"
        );
        assert_gone(&name, &backend);
    }
}

/// `kill -9` of one consumer after it took some messages: the other consumer gets all the
/// rest, none twice, and every consumer still sees `Disconnected` at the end.
#[test]
fn killed_consumer_loses_nothing_else() {
    for backend in backends() {
        let name = unique_name("mpmc-kill-rx");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let dir = common::file_dir();
        let opts = Options::new().backend(backend.clone()).capacity(64);
        let anchor = mpmc::Sender::<Msg>::create(&name, &opts).unwrap();
        let files: Vec<_> = (0..2).map(|c| dir.path().join(format!("c{c}"))).collect();
        let mut victim = consumer(&name, &backend, &files[0], Some(1000));
        let mut survivor = consumer(&name, &backend, &files[1], None);
        let mut producers: Vec<_> = (0..2)
            .map(|p| producer(&name, &backend, p, N, false))
            .collect();
        drop(anchor);
        victim.expect_line("GOT", LONG);
        victim.kill9();
        for p in &mut producers {
            p.assert_success(LONG);
        }
        survivor.expect_line("GOT", LONG);
        survivor.assert_success(SHORT);
        victim.reap();
        let seen = received(&files);
        assert!(
            seen.values().all(|&k| k == 1),
            "{backend}: a message was delivered twice"
        );
        assert_eq!(seen.len() as u64, 2 * N, "{backend}: messages lost");
        assert_gone(&name, &backend);
    }
}

/// `u64` payloads, whose sends and receives are one 16-byte CAS each (the one-step paths),
/// sharing a ring of 8 with loans and references (the two-step paths, which hold a slot):
/// producer 0 only sends; producer 1 sends every other value through a loan and drops a loan
/// now and then; of the two consumer threads, one receives copies and the other alternates
/// copies and references. Every value arrives exactly once, each producer's in order within
/// each consumer, none of them an abandoned loan's. Over every backend.
#[test]
fn word_payloads_one_step_and_two_step_share_a_ring() {
    const WORDS: u64 = 20_000;
    for backend in backends() {
        let name = unique_name("mpmc-word");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let opts = Options::new().backend(backend.clone()).capacity(8);
        let rx = mpmc::Receiver::<u64>::create(&name, &opts).unwrap();
        let mut producers: Vec<_> = (0..2u64)
            .map(|p| {
                let mut env = vec![
                    ("SHMCHAN_TEST_P", p.to_string()),
                    ("SHMCHAN_TEST_N", WORDS.to_string()),
                ];
                if p == 1 {
                    env.push(("SHMCHAN_TEST_LOANS", "1".into()));
                }
                let c = spawn("mpmc-word-send", &name, &backend, &env);
                c.expect_line("READY", SHORT);
                c
            })
            .collect();
        let consumers: Vec<_> = [false, true]
            .into_iter()
            .map(|refs| {
                let rx = rx.clone();
                std::thread::spawn(move || {
                    let mut last = HashMap::new();
                    let mut got = Vec::new();
                    for k in 0u64.. {
                        let v = if refs && k % 2 == 1 {
                            rx.recv_ref_timeout(LONG).map(|r| *r)
                        } else {
                            rx.recv_timeout(LONG)
                        };
                        let Ok(v) = v else { break };
                        let (p, i) = (v >> 40, v & ((1 << 40) - 1));
                        assert_ne!(v, u64::MAX, "an abandoned loan was delivered");
                        let prev = last.insert(p, i);
                        assert!(
                            prev.is_none_or(|prev| prev < i),
                            "producer {p}: {i} after {prev:?}"
                        );
                        got.push(v);
                    }
                    got
                })
            })
            .collect();
        for p in &mut producers {
            p.expect_line("SENT", LONG);
            p.assert_success(SHORT);
        }
        drop(rx);
        let mut all: Vec<u64> = consumers
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect();
        all.sort_unstable();
        let want: Vec<u64> = (0..2u64)
            .flat_map(|p| (1..=WORDS).map(move |i| (p << 40) | i))
            .collect();
        assert_eq!(all.len(), want.len(), "{backend}: count");
        assert!(all == want, "{backend}: every value exactly once");
        assert_gone(&name, &backend);
    }
}

/// A ring of words, whose sends and copying receives go in one step (on x86-64), after a
/// loaner was killed holding a written loan (its slot WRITING, two steps) and a consumer was
/// killed holding two references (READING): the one-step paths meet those slots, the dead
/// loaner's position is skipped, the held messages are handed back and received again once,
/// and the ring goes on for several laps. Every value exactly once, the loan's never. Over
/// every backend.
#[test]
fn one_step_paths_take_back_the_slots_of_killed_loaners_and_holders() {
    for backend in backends() {
        let name = unique_name("mpmc-word-kills");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let opts = Options::new().backend(backend.clone()).capacity(4);
        let tx = mpmc::Sender::<u64>::create(&name, &opts).unwrap();
        let rx = mpmc::Receiver::<u64>::open(&name, &opts).unwrap();
        // Positions 0 and 1: two messages; position 2: the loan, held by a process killed.
        let mut loaner = spawn(
            "mpmc-word-send",
            &name,
            &backend,
            &[
                ("SHMCHAN_TEST_P", "7".into()),
                ("SHMCHAN_TEST_N", "2".into()),
                ("SHMCHAN_TEST_HANG", "1".into()),
            ],
        );
        loaner.expect_line("LOANED", SHORT);
        loaner.kill9();
        loaner.reap();
        // Both messages taken in place by a consumer, killed holding them.
        let mut holder = spawn(
            "mpmc-word-ref-hang",
            &name,
            &backend,
            &[("SHMCHAN_TEST_TAKE", "2".into())],
        );
        let held: Vec<u64> = holder
            .expect_line("HOLDING", SHORT)
            .split(' ')
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(held, [(7 << 40) | 1, (7 << 40) | 2], "{backend}");
        holder.kill9();
        holder.reap();
        // Five laps of one-step sends over those slots, received by a thread meanwhile (the
        // producer that reaches a held slot hands its message back and waits for it to be
        // taken: the ring is full at that position until then).
        let consumer = std::thread::spawn(move || {
            let mut got = Vec::new();
            while let Ok(v) = rx.recv_timeout(Duration::from_secs(2)) {
                got.push(v);
            }
            got
        });
        for v in 100..120u64 {
            tx.send_timeout(v, SHORT)
                .unwrap_or_else(|e| panic!("{backend}: send {v}: {e:?}"));
        }
        let mut got = consumer.join().unwrap();
        assert!(
            !got.contains(&(u64::MAX - 1)),
            "{backend}: the dead loaner's message was delivered: {got:?}"
        );
        got.sort_unstable();
        let mut want: Vec<u64> = held.clone();
        want.extend(100..120);
        want.sort_unstable();
        assert_eq!(got, want, "{backend}: each exactly once");
        drop(tx);
        assert_gone(&name, &backend);
    }
}

/// Cloned handles across threads in one process: 4 producers x 100k, 3 consumers, exactly
/// once, each producer's messages in order within each consumer.
#[test]
fn threads_with_cloned_handles_exactly_once() {
    let (tx, rx) = mpmc::channel::<Msg>(128).unwrap();
    let producers: Vec<_> = (0..4u64)
        .map(|p| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                (0..N).for_each(|i| tx.send(Msg::new((p << 40) | i)).unwrap())
            })
        })
        .collect();
    let consumers: Vec<_> = (0..3)
        .map(|_| {
            let rx = rx.clone();
            std::thread::spawn(move || {
                let mut last = HashMap::new();
                let mut got = Vec::new();
                for m in rx.iter() {
                    assert!(m.is_intact());
                    let (p, i) = (m.seq >> 40, m.seq & ((1 << 40) - 1));
                    assert!(
                        last.insert(p, i).is_none_or(|prev| prev < i),
                        "order of producer {p}"
                    );
                    got.push(m.seq);
                }
                got
            })
        })
        .collect();
    drop((tx, rx));
    for p in producers {
        p.join().unwrap();
    }
    let mut all: Vec<u64> = consumers
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    all.sort_unstable();
    let want: Vec<u64> = (0..4u64)
        .flat_map(|p| (0..N).map(move |i| (p << 40) | i))
        .collect();
    assert_eq!(all.len(), want.len(), "count");
    assert!(all == want, "every message exactly once");
}

#[test]
fn spsc_and_mpmc_do_not_mix() {
    for backend in backends() {
        let opts = Options::new().backend(backend.clone());
        let name = unique_name("kind");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let _tx = spsc::Sender::<u64>::create(&name, &opts).unwrap();
        let err = mpmc::Receiver::<u64>::open(&name, &opts).unwrap_err();
        assert!(
            matches!(err, Error::Incompatible { .. }),
            "{backend}: {err:?}"
        );
        assert!(
            err.to_string().contains("SPSC channel, opened as MPMC"),
            "{err}"
        );

        let name = unique_name("kind");
        let _cleanup = Cleanup(name.clone(), backend.clone());
        let _tx = mpmc::Sender::<u64>::create(&name, &opts).unwrap();
        let err = spsc::Receiver::<u64>::open(&name, &opts).unwrap_err();
        assert!(
            err.to_string().contains("MPMC channel, opened as SPSC"),
            "{backend}: {err}"
        );
    }
}

#[test]
fn receivers_disconnect_only_when_every_sender_is_gone() {
    let (tx, rx) = mpmc::channel::<u64>(8).unwrap();
    let tx2 = tx.clone();
    tx.send(1).unwrap();
    drop(tx);
    assert_eq!(rx.try_recv(), Ok(1));
    assert!(
        rx.try_recv().unwrap_err().is_empty(),
        "a clone still holds the endpoint"
    );
    tx2.send(2).unwrap();
    drop(tx2);
    assert_eq!(rx.recv(), Ok(2));
    assert!(rx.recv().is_err());
    let (tx, rx) = mpmc::channel::<u64>(8).unwrap();
    drop(rx);
    assert!(tx.send(1).is_err(), "senders see the receivers gone");
}
