//! loom models of the MPMC ring on the production code: exactly-once delivery with several
//! producers and consumers (through the two-step paths, `u32` and `[u32; 2]` payloads, and the
//! one-step paths, `u64`), the repair of a slot whose producer is judged dead racing with
//! that producer's late publish, and loans and references (committed, dropped and reused
//! slots, a consumer asleep at a dropped loan's position, a dead consumer's message handed
//! back). The `one_step_*` models run the loan, reference and repair models with `u64`s too:
//! their sends and copying receives then go in one step, on the same slots as the two-step
//! loans and references (the 16-byte CAS is modelled by a mutex that the stamps' 8-byte CASes
//! take too on such rings: `Slots::cas_pair`).
//!
//! Run with:
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test loom_mpmc
//! --target-dir target-loom`
#![cfg(loom)]

use loom::thread;
use shmchan::{TryRecvError, TrySendError, mpmc};

/// A payload type of the models, made from a small number: `u32` and `[u32; 2]` go through
/// the two-step paths; `u64` through the one-step ones (where a model also loans or takes
/// references, mixed with the two-step paths on the same slots).
trait Value: shmchan::Pod + Ord + std::fmt::Debug + Send + Sync + 'static {
    fn of(n: u8) -> Self;
}

impl Value for u32 {
    fn of(n: u8) -> u32 {
        n.into()
    }
}

impl Value for u64 {
    fn of(n: u8) -> u64 {
        n.into()
    }
}

impl Value for [u32; 2] {
    fn of(n: u8) -> [u32; 2] {
        [n.into(); 2]
    }
}

/// The model of `exactly_once_one_consumer` for payload type `T` (`u32`: the two-step paths;
/// `u64`: the one-step ones), sending the two `values`.
fn one_consumer<T: shmchan::Pod + Ord + std::fmt::Debug + Send + Sync + 'static>(values: [T; 2]) {
    for cap in [1usize, 2] {
        loom::model(move || {
            let (tx, rx) = mpmc::channel::<T>(cap).unwrap();
            let producers: Vec<_> = values
                .into_iter()
                .map(|v| {
                    let tx = tx.clone();
                    thread::spawn(move || tx.send(v).unwrap())
                })
                .collect();
            drop(tx);
            let mut got: Vec<T> = rx.iter().collect();
            for p in producers {
                p.join().unwrap();
            }
            got.sort_unstable();
            assert_eq!(got, values, "capacity {cap}");
        });
    }
}

/// The model of `exactly_once_two_consumers` for payload type `T`, as [`one_consumer`].
fn two_consumers<T: shmchan::Pod + Ord + std::fmt::Debug + Send + Sync + 'static>(values: [T; 2]) {
    for cap in [1usize, 2] {
        loom::model(move || {
            let (tx, rx) = mpmc::channel::<T>(cap).unwrap();
            let producers: Vec<_> = values
                .into_iter()
                .map(|v| {
                    let tx = tx.clone();
                    thread::spawn(move || tx.try_send(v).is_ok().then_some(v))
                })
                .collect();
            let rx2 = rx.clone();
            let consumer = thread::spawn(move || rx2.try_recv().ok());
            let mut got: Vec<T> = rx.try_recv().ok().into_iter().collect();
            let mut sent: Vec<T> = producers
                .into_iter()
                .filter_map(|p| p.join().unwrap())
                .collect();
            got.extend(consumer.join().unwrap());
            got.extend(rx.try_iter());
            got.sort_unstable();
            sent.sort_unstable();
            assert!(!sent.is_empty(), "capacity {cap}: at least one send fits");
            assert_eq!(got, sent, "capacity {cap}: received exactly what was sent");
        });
    }
}

/// 2 producers x 1 consumer, capacity 1 and 2, blocking calls: every value received exactly
/// once, then `Disconnected` (capacity 1 makes the producers contend for one slot and wrap).
#[test]
fn exactly_once_one_consumer() {
    one_consumer([0u32, 1]);
}

/// 2 producers x 2 consumers, capacity 1 and 2, each doing one non-blocking call at the same
/// time; afterwards the ring is drained. What the consumers took plus what was left is exactly
/// what the producers sent, none twice. (One call each keeps the model bounded: polling loops
/// let loom read stale values for ever.)
#[test]
fn exactly_once_two_consumers() {
    two_consumers([0u32, 1]);
}

/// The one-step paths (`u64` payloads: a send and a receive are each one 16-byte CAS of the
/// slot's stamp and payload word, modelled by a mutex; see `Slots::cas_pair`). 2 producers x 1
/// consumer, capacity 1 and 2, blocking calls: every value received exactly once, then
/// `Disconnected`. Capacity 1 makes a producer wait for the slot the consumer frees, and the
/// consumer for the slot a producer fills, so both doorbells must ring.
#[test]
fn one_step_exactly_once_one_consumer() {
    one_consumer([1u64, 2]);
}

/// The one-step paths, 2 producers x 2 consumers, capacity 1 and 2, one non-blocking call
/// each at the same time, then the ring drained: what was taken is exactly what was sent.
#[test]
fn one_step_exactly_once_two_consumers() {
    two_consumers([1u64, 2]);
}

/// A producer is declared dead while it is still writing: a consumer may repair its slot at
/// any point. Either the publish wins (the value arrives whole) or the repair wins (the value
/// is lost); a half-written value is never delivered, and loom's slot tracking would report a
/// read racing the write.
#[test]
fn repair_races_late_publish() {
    loom::model(|| {
        let (tx, rx) = mpmc::channel::<[u32; 2]>(2).unwrap();
        tx.loom_declare_dead();
        let producer = thread::spawn(move || {
            let _ = tx.try_send([7, 7]);
        });
        let mut got = Vec::new();
        for _ in 0..3 {
            match rx.try_recv() {
                Ok(v) => got.push(v),
                Err(TryRecvError::Empty) => thread::yield_now(),
                Err(TryRecvError::Disconnected) => {}
            }
        }
        producer.join().unwrap();
        got.extend(rx.try_iter());
        assert!(got.len() <= 1, "delivered twice: {got:?}");
        assert!(
            got.iter().all(|v| *v == [7, 7]),
            "torn value delivered: {got:?}"
        );
    });
}

/// A committed loan is delivered whole, a dropped one never (its position is skipped at once,
/// without a death probe), and a `Ref` holds its slot until it drops: one producer with loans,
/// one consumer with refs and copies, capacity 1 and 2, blocking calls (a lost wake-up after
/// the abandon is a loom deadlock).
#[test]
fn loans_commit_and_abandon_with_refs() {
    loans_commit_and_abandon_with_refs_model::<[u32; 2]>();
}

/// `loans_commit_and_abandon_with_refs` with `u64`s: the send and the copying receive go in
/// one step, into and out of slots the loans and the reference hold in two.
#[test]
fn one_step_among_loans_and_refs() {
    loans_commit_and_abandon_with_refs_model::<u64>();
}

fn loans_commit_and_abandon_with_refs_model<T: Value>() {
    for cap in [1usize, 2] {
        loom::model(move || {
            let (tx, rx) = mpmc::channel::<T>(cap).unwrap();
            let t = thread::spawn(move || {
                let mut a = tx.loan().unwrap();
                *a = T::of(1);
                a.commit();
                let mut abandoned = tx.loan().unwrap();
                *abandoned = T::of(9);
                drop(abandoned);
                tx.send(T::of(2)).unwrap();
            });
            {
                let first = rx.recv_ref().unwrap();
                assert_eq!(*first, T::of(1), "capacity {cap}");
            }
            assert_eq!(
                rx.recv(),
                Ok(T::of(2)),
                "capacity {cap}: the dropped loan is skipped"
            );
            assert!(rx.recv().is_err(), "disconnect after the last message");
            t.join().unwrap();
        });
    }
}

/// One producer drops a loan while another sends and two consumers take in place: the sent
/// value is received exactly once, the dropped loan's never, and the ring is usable after.
#[test]
fn dropped_loan_among_producers_and_consumers() {
    dropped_loan_among_producers_and_consumers_model::<u32>();
}

/// `dropped_loan_among_producers_and_consumers` with `u64`s: the sends (and the last receive)
/// go in one step, among a loan and references in two.
#[test]
fn one_step_among_a_dropped_loan_and_refs() {
    dropped_loan_among_producers_and_consumers_model::<u64>();
}

fn dropped_loan_among_producers_and_consumers_model<T: Value>() {
    loom::model(|| {
        let (tx, rx) = mpmc::channel::<T>(2).unwrap();
        let tx2 = tx.clone();
        let dropper = thread::spawn(move || {
            if let Ok(mut loan) = tx2.try_loan() {
                *loan = T::of(99);
            }
        });
        let sender = {
            let tx = tx.clone();
            thread::spawn(move || tx.try_send(T::of(7)).is_ok())
        };
        let rx2 = rx.clone();
        let consumer = thread::spawn(move || rx2.try_recv_ref().ok().map(|r| *r));
        let mut got: Vec<T> = rx.try_recv_ref().ok().map(|r| *r).into_iter().collect();
        dropper.join().unwrap();
        let sent = sender.join().unwrap();
        got.extend(consumer.join().unwrap());
        got.extend(rx.try_iter());
        assert!(
            !got.contains(&T::of(99)),
            "a dropped loan was delivered: {got:?}"
        );
        let want = if sent { vec![T::of(7)] } else { vec![] };
        assert_eq!(got, want, "exactly once");
        tx.send(T::of(8)).unwrap();
        assert_eq!(
            rx.try_recv(),
            Ok(T::of(8)),
            "the ring goes on after the abandon"
        );
    });
}

/// A loan dropped in one thread, its slot reused by the next lap's producer in another (a ring
/// of 1): the second producer's writes come after the first's (the abandon releases the slot
/// as a consumer's free does), and the consumer gets the second value whole, never the
/// dropped one.
#[test]
fn abandoned_slot_reused_by_another_producer() {
    abandoned_slot_reused_by_another_producer_model::<[u32; 2]>();
}

/// `abandoned_slot_reused_by_another_producer` with `u64`s: the send goes in one step, into a
/// slot the dropped loan may have left its payload word in (the pair CAS expects 0 first, then
/// what it found).
#[test]
fn one_step_send_into_an_abandoned_slot() {
    abandoned_slot_reused_by_another_producer_model::<u64>();
}

fn abandoned_slot_reused_by_another_producer_model<T: Value>() {
    loom::model(|| {
        let (tx, rx) = mpmc::channel::<T>(1).unwrap();
        let tx2 = tx.clone();
        let dropper = thread::spawn(move || {
            let mut loan = tx2.loan().unwrap();
            *loan = T::of(9);
        });
        let sender = thread::spawn(move || tx.send(T::of(7)).unwrap());
        assert_eq!(rx.recv(), Ok(T::of(7)));
        dropper.join().unwrap();
        sender.join().unwrap();
        assert!(
            rx.recv().is_err(),
            "nothing else: the dropped loan is never delivered"
        );
    });
}

/// A consumer asleep at a loan's position is woken when the loan is dropped, and takes the
/// message behind it (a ring of 2: the loan, then a sent value); a lost wake-up after the
/// abandon is a loom deadlock.
#[test]
fn dropped_loan_wakes_a_consumer_waiting_at_its_position() {
    loom::model(|| {
        let (tx, rx) = mpmc::channel::<u32>(2).unwrap();
        let loan = tx.loan().unwrap();
        tx.send(5).unwrap();
        let consumer = thread::spawn(move || rx.recv());
        drop(loan);
        assert_eq!(consumer.join().unwrap(), Ok(5));
        drop(tx);
    });
}

/// A producer judged dead (while it still runs) drops its loan while a consumer may repair
/// the same slot: the abandon and the repair are CASes from the same WRITING stamp to the
/// same FREE one, so either may win and the other changes nothing; the dropped value is
/// never delivered, and the ring's next lap works.
#[test]
fn abandon_races_a_repair() {
    loom::model(|| {
        let (tx, rx) = mpmc::channel::<[u32; 2]>(1).unwrap();
        tx.loom_declare_dead();
        let tx2 = tx.clone();
        let producer = thread::spawn(move || {
            if let Ok(mut loan) = tx2.try_loan() {
                *loan = [9, 9]; // then dropped: abandoned
            }
        });
        for _ in 0..2 {
            if let Ok(v) = rx.try_recv() {
                panic!("a dropped loan was delivered: {v:?}");
            }
            thread::yield_now();
        }
        producer.join().unwrap();
        assert!(rx.try_recv().is_err(), "nothing to deliver");
        drop(tx);
    });
}

/// A consumer killed holding a message, and its place taken by the next consumer while a
/// producer lapping the ring (capacity 1) may be repairing the dead one's slot: the message is
/// delivered again exactly once to a live consumer (the new one, or whoever drains), the
/// producer's late repair decided on the old occupant never touches the new occupant's claim
/// (the stamps carry the place's generation), and the new message goes through too.
#[test]
fn place_reused_while_a_peer_repairs_its_old_occupant() {
    place_reused_model::<u32>();
}

/// `place_reused_while_a_peer_repairs_its_old_occupant` with `u64`s: the message taken by
/// reference (two steps) and handed back by the repair is received in one step, from where
/// the `head` hint had already passed it or not.
#[test]
fn one_step_receive_of_a_handed_back_message() {
    place_reused_model::<u64>();
}

fn place_reused_model<T: Value>() {
    loom::model(|| {
        let (tx, rx) = mpmc::loom_channel::<T>(1, 1, 1).unwrap();
        let reopen = rx.loom_reopener();
        tx.send(T::of(1)).unwrap();
        std::mem::forget(rx.try_recv_ref().unwrap()); // taken, never freed...
        rx.loom_die(); // ...its process killed (and reaped)
        let producer = thread::spawn(move || {
            // At the held slot: may hand the message back.
            let sent = tx.try_send(T::of(2)).is_ok();
            (tx, sent)
        });
        let rx2 = reopen.mpmc_receiver::<T>().unwrap(); // the dead one's place
        let mut got: Vec<T> = rx2.try_recv().ok().into_iter().collect();
        let (tx, sent2) = producer.join().unwrap();
        got.extend(rx2.try_iter());
        if !sent2 {
            tx.try_send(T::of(2)).unwrap();
            got.extend(rx2.try_iter());
        }
        assert_eq!(
            got,
            [T::of(1), T::of(2)],
            "each once, the handed-back one first"
        );
    });
}

/// The next consumer is handed a dead consumer's message at once when it attaches (its sweep
/// moves the message and the `head` hint back), capacity 2, no producer activity needed.
#[test]
fn next_consumer_gets_a_dead_consumers_message_at_once() {
    loom::model(|| {
        let (tx, rx) = mpmc::loom_channel::<u32>(2, 1, 2).unwrap();
        let reopen = rx.loom_reopener();
        tx.send(1).unwrap();
        let t = thread::spawn(move || {
            std::mem::forget(rx.try_recv_ref().unwrap());
            rx.loom_die();
        });
        t.join().unwrap();
        let rx2 = reopen.mpmc_receiver::<u32>().unwrap();
        assert_eq!(rx2.try_recv(), Ok(1));
        drop(tx);
        assert_eq!(rx2.try_recv(), Err(TryRecvError::Disconnected));
    });
}

/// Of two receivers, one has dropped its handle and the other drops it while a sender sends:
/// once that drop is done, the next send is refused at once. A sender reads the receivers'
/// entries only when the departure count moved since it last found one attached; a count
/// remembered from after its walk (the second drop falling between the walk and that read),
/// or a drop that does not count, would let that send into a ring nobody reads.
#[test]
fn a_send_after_the_last_receiver_dropped_is_refused() {
    loom::model(|| {
        // Two receiver endpoints (a clone shares its endpoint).
        let (tx, rx) = mpmc::loom_channel::<u32>(2, 1, 2).unwrap();
        let rx2 = rx.loom_reopener().mpmc_receiver::<u32>().unwrap();
        drop(rx);
        let b = thread::spawn(move || drop(rx2));
        // Concurrent with the second drop: either outcome.
        let _ = tx.try_send(0);
        b.join().unwrap();
        assert_eq!(tx.try_send(1), Err(TrySendError::Disconnected(1)));
    });
}
