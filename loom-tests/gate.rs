//! loom models of the System V gate's word protocol (`src/region/gate_word.rs`, the production
//! code): mutual exclusion with ordering between holders, and the takeover of a gate left held
//! by a dead process, raced by two takers.
//!
//! Run with:
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test loom_gate
//! --target-dir target-loom`
#![cfg(loom)]

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;
use shmchan::loom_gate::Word;

/// Two holders each take the gate, update state guarded by it (a plain cell, which loom checks
/// for races), and release it: both updates land, and no access races.
fn exclusive_and_ordered(initial: u64, alive: fn(u64) -> bool) {
    loom::model(move || {
        let gate = Arc::new((Word::new(initial), UnsafeCell::new(0u32)));
        let takers: Vec<_> = [1u64, 2]
            .into_iter()
            .map(|mine| {
                let gate = gate.clone();
                thread::spawn(move || {
                    while !gate.0.try_take(mine, alive) {
                        thread::yield_now();
                    }
                    // SAFETY: the gate is held; loom reports any access that races.
                    gate.1.with_mut(|n| unsafe { *n += 1 });
                    gate.0.release(mine);
                })
            })
            .collect();
        for t in takers {
            t.join().unwrap();
        }
        // SAFETY: both threads are joined.
        assert_eq!(gate.1.with(|n| unsafe { *n }), 2);
    });
}

/// Two processes take turns at a free gate.
#[test]
fn gate_is_exclusive_and_orders_its_holders() {
    exclusive_and_ordered(0, |_| true);
}

/// A dead process (value 99) left the gate held: two takers race to take it over, and still
/// only one holds it at a time.
#[test]
fn gate_left_by_a_dead_holder_is_taken_over_once() {
    exclusive_and_ordered(99, |held| held != 99);
}
