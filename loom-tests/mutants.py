#!/usr/bin/env python3
"""Show that the loom models can fail: weaken one ordering, fence or re-check at a time in a
scratch copy of the crate, run the loom suite, and report which model caught it.

    python3 loom-tests/mutants.py            # every mutant, against the models that caught it
    python3 loom-tests/mutants.py 3 5        # only mutants 3 and 5
    python3 loom-tests/mutants.py --full     # every mutant against its files' whole suites

Nothing here changes the committed code: each mutant is applied to a copy under /tmp.
Exit status 1 if any mutant survives (no model failed).
"""
import os, re, shutil, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (file, description, regex, replacement)
MUTANTS = [
    ("src/ring/spsc.rs", "push: stamp store Release -> Relaxed (publish)",
     r"slots\.stamp_of::<T>\(tail\) \}\.store\(next, Ordering::Release\)",
     "slots.stamp_of::<T>(tail) }.store(next, Ordering::Relaxed)"),
    ("src/ring/spsc.rs", "pop: stamp load Acquire -> Relaxed (publish)",
     r"slots\.stamp_of::<T>\(head\) \}\.load\(Ordering::Acquire\)",
     "slots.stamp_of::<T>(head) }.load(Ordering::Relaxed)"),
    ("src/ring/spsc.rs", "pop: head store Release -> Relaxed (slot-free)",
     r"hdr\.head\.store\(next, Ordering::Release\)",
     "hdr.head.store(next, Ordering::Relaxed)"),
    ("src/ring/spsc.rs", "room (push, push_slice): head load Acquire -> Relaxed (slot-free)",
     r"let head = hdr\.head\.load\(Ordering::Acquire\);\n(\s+)let used",
     r"let head = hdr.head.load(Ordering::Relaxed);\n\1let used"),
    ("src/ring/spsc.rs", "push_slice: stamp store Release -> Relaxed (publish, batch)",
     r"slots\.stamp\(pos\)\.store\(next, Ordering::Release\)",
     "slots.stamp(pos).store(next, Ordering::Relaxed)"),
    ("src/ring/spsc.rs", "pop_slice: head store Release -> Relaxed (slot-free, batch)",
     r"hdr\.head\.store\(pos, Ordering::Release\)",
     "hdr.head.store(pos, Ordering::Relaxed)"),
    ("src/ring/spsc.rs", "pop_slice: stamp load Acquire -> Relaxed (publish, batch)",
     r"slots\.stamp\(pos\)\.load\(Ordering::Acquire\)",
     "slots.stamp(pos).load(Ordering::Relaxed)"),
    ("src/wait.rs", "notify: drop the SeqCst fence between publish and the sleepers load",
     r"(fn full_fence\(\) \{\s*)fence\(Ordering::SeqCst\);",
     r"\1"),
    ("src/wait.rs", "prepare: drop the SeqCst fence between registering and the re-check",
     r"(fn prepare\(&self\) -> u32 \{.*?)fence\(Ordering::SeqCst\);",
     r"\1"),
    ("src/wait.rs", "wait loop: skip the re-check (register only after the last check)",
     r"let seq = bell\.prepare\(\);\n\s+(match attempt\(probe_due\(now\)\) \{\n)",
     r"\1"),
    ("src/wait.rs", "wake: bump seq before clearing the sleeper flag (a re-registered flag is lost)",
     r"(self\.state\.fetch_and\(!SLEEPERS, Ordering::Relaxed\);)(\n\s*//[^\n]*\n\s*)(self\.seq\.fetch_add\(1, Ordering::Release\);)",
     r"\3\2\1"),
    ("src/layout.rs", "publish: ready store Release -> Relaxed (handshake)",
     r"self\.id\.init\.store\(READY, Ordering::Release\)",
     "self.id.init.store(READY, Ordering::Relaxed)"),
    ("src/layout.rs", "is_ready: ready load Acquire -> Relaxed (handshake)",
     r"self\.id\.init\.load\(Ordering::Acquire\) == READY",
     "self.id.init.load(Ordering::Relaxed) == READY"),
    ("src/ring/mpmc.rs", "MPMC claim (push, loan): claiming CAS Acquire -> Relaxed (slot-free)",
     r"(fn claim.*?self\.mine\(pos, WRITING\),\s*)Ordering::Acquire",
     r"\1Ordering::Relaxed"),
    ("src/ring/mpmc.rs", "MPMC publish (push, commit): publishing CAS Release -> Relaxed (publish)",
     r"(self\.mine\(pos, WRITING\),\s*stamp\(pos, 0, 0, FULL\),\s*)Ordering::Release",
     r"\1Ordering::Relaxed"),
    ("src/ring/mpmc.rs", "MPMC take (pop, recv_ref): claiming CAS Acquire -> Relaxed (publish)",
     r"(fn take.*?\.cas\(cell, seen, mine, )Ordering::Acquire",
     r"\1Ordering::Relaxed"),
    ("src/ring/mpmc.rs", "MPMC take, eager (a waiting consumer): claiming CAS from FULL Acquire -> Relaxed (publish)",
     r"(stamp\(pos, 0, 0, FULL\),\s*self\.mine\(pos, READING\),\s*)Ordering::Acquire",
     r"\1Ordering::Relaxed"),
    ("src/ring/mpmc.rs", "MPMC free (pop, Ref drop): freeing CAS Release -> Relaxed (slot-free)",
     r"(fn free.*?stamp\(pos\.wrapping_add\(self\.capacity\), 0, 0, FREE\),\s*)Ordering::Release",
     r"\1Ordering::Relaxed"),
    ("src/ring/mpmc.rs", "MPMC: repair a held slot without checking its owner is gone",
     r"(let repairable =\s*\(d\.owner, d\.generation\) != \(self\.me, self\.generation\)) && gone\(d\.owner, d\.generation\)",
     r"\1"),
    ("src/ring/mpmc.rs", "MPMC one-step receive: frees to FREE(pos), not the next lap's FREE(pos + capacity)",
     r"(fn pop_pair.*?let free = stamp\()pos\.wrapping_add\(self\.capacity\)(, 0, 0, FREE\);)",
     r"\1pos\2"),
    ("src/ring/mpmc.rs", "MPMC one-step send: no data_bell notify (a consumer asleep)",
     r"(fn push_pair.*?Self::advance\(&hdr\.tail, pos\);\s*)hdr\.data_bell\.notify_as\(self\.fence\);",
     r"\1"),
    ("src/ring/mpmc.rs", "MPMC one-step receive: no space_bell notify (a producer asleep on a full ring)",
     r"(fn pop_pair.*?Self::advance\(&hdr\.head, pos\);\s*)hdr\.space_bell\.notify_as\(self\.fence\);",
     r"\1"),
    ("src/ring/mpmc.rs", "MPMC one-step receive: the slot left FULL (the message stays to be taken again)",
     r"(fn consume_pair.*?slots\.cas_pair\(pos, \(full, expect\), \()free(, 0\)\))",
     r"\1full\2"),
    ("src/ring/mpmc.rs", "MPMC one-step receive of a handed-back message: the slot left FULL (taken again)",
     r"(fn pop_pair.*?Self::consume_pair\(slots, pos, seen, word, )stamp\(pos, 0, 0, FREE\)",
     r"\1seen"),
    ("src/region/gate_word.rs", "gate: taking CAS Acquire -> Relaxed (gate)",
     r"compare_exchange\(seen, mine, Ordering::Acquire, Ordering::Relaxed\)",
     "compare_exchange(seen, mine, Ordering::Relaxed, Ordering::Relaxed)"),
    ("src/region/gate_word.rs", "gate: releasing CAS Release -> Relaxed (gate)",
     r"compare_exchange\(mine, 0, Ordering::Release, Ordering::Relaxed\)",
     "compare_exchange(mine, 0, Ordering::Relaxed, Ordering::Relaxed)"),
    ("src/region/gate_word.rs", "gate: take over a holder without checking it is dead",
     r"Err\(held\) if seen != held && !alive\(held\) => seen = held,",
     "Err(held) if seen != held => seen = held,"),
    ("src/ring/frame.rs", "frame commit: stamp store Release -> Relaxed (frame-publish)",
     r"\.store\(claim\.pos \^ self\.key, Ordering::Release\)",
     ".store(claim.pos ^ self.key, Ordering::Relaxed)"),
    ("src/ring/frame.rs", "frame padding: stamp store Release -> Relaxed (frame-publish)",
     r"\.store\(tail \^ self\.key, Ordering::Release\)",
     ".store(tail ^ self.key, Ordering::Relaxed)"),
    ("src/ring/frame.rs", "frame peek: stamp load Acquire -> Relaxed (frame-publish)",
     r"stamp\(head\.wrapping_add\(8\)\)\.load\(Ordering::Acquire\)",
     "stamp(head.wrapping_add(8)).load(Ordering::Relaxed)"),
    ("src/ring/frame.rs", "frame free: head store Release -> Relaxed (frame-free)",
     r"hdr\.head\.store\(next, Ordering::Release\)",
     "hdr.head.store(next, Ordering::Relaxed)"),
    ("src/ring/frame.rs", "frame room: head load Acquire -> Relaxed (frame-free)",
     r"let head = hdr\.head\.load\(Ordering::Acquire\);(\s+let used)",
     r"let head = hdr.head.load(Ordering::Relaxed);\1"),
    ("src/ring/spsc.rs", "loan commit: stamp store Release -> Relaxed (publish)",
     r"(fn commit.*?slots\.stamp\(pos\)\.store\(next, )Ordering::Release",
     r"\1Ordering::Relaxed"),
    ("src/ring/spsc.rs", "recv_ref peek: stamp load Acquire -> Relaxed (publish)",
     r"(fn peek.*?slots\.stamp\(head\)\.load\()Ordering::Acquire",
     r"\1Ordering::Relaxed"),
    ("src/ring/spsc.rs", "Ref release: head store Release -> Relaxed (slot-free)",
     r"(fn release.*?hdr\.head\.store\(next, )Ordering::Release",
     r"\1Ordering::Relaxed"),
    ("src/ring/mpmc.rs", "MPMC abandon (dropped loan): freeing CAS Release -> Relaxed (slot-free)",
     r"(fn abandon.*?stamp\(pos\.wrapping_add\(self\.capacity\), 0, 0, FREE\),\s*)Ordering::Release",
     r"\1Ordering::Relaxed"),
    ("src/ring/mpmc.rs", "MPMC abandon: no data_bell notify (a consumer asleep at the position)",
     r"(fn abandon.*?)hdr\.data_bell\.notify_as\(self\.fence\);",
     r"\1"),
    ("src/endpoint.rs", "role_state: endpoint load Acquire -> Relaxed (disconnect after last)",
     r"(pub\(crate\) fn role_state.*?let w = e\.load\()Ordering::Acquire",
     r"\1Ordering::Relaxed"),
    # Listed as benign (expected to survive) until the drop path lost the reference count and
    # its read-modify-write; now caught: a receiver that sees DETACHED must see every message
    # the sender published before it.
    ("src/endpoint.rs", "detach: CAS AcqRel -> Relaxed (disconnect after last)",
     r"(pub\(crate\) fn detach.*?compare_exchange\(\s*word,.*?)Ordering::AcqRel",
     r"\1Ordering::Relaxed"),
    ("src/reactor.rs", "async wait: register without the re-check after arming (flag, fence, re-check)",
     r"(// The re-check: [^\n]*\n)\s*if let Poll::Ready\(r\) = attempt\(probe\) \{.*?\n        \}\n",
     r"\1"),
    ("src/reactor.rs", "async wait: register the seq read after the re-check, not the one prepare read",
     r"register\(self\.key, &bell\.seq, expected,",
     "register(self.key, &bell.seq, bell.seq.load(Ordering::Acquire),"),
    ("src/reactor.rs", "reactor: a registration does not bump ctl (a reactor about to sleep misses it)",
     r"(fn changed\(&self, st: &mut State\) -> bool \{.*?)self\.ctl\.fetch_add\(1, Ordering::Relaxed\);",
     r"\1"),
    # Channels that outlive their peers (issue 17): places reused with generations, a dead
    # consumer's message handed back, a sender asking the kernel before waking a sleeper.
    ("src/endpoint.rs", "owner_gone: ignore the generation (an old occupant's slot taken for the new one's)",
     r"if generation_of\(w\) as u8 != generation \|\| state_of\(w\) != ATTACHED \{",
     "if state_of(w) != ATTACHED {"),
    ("src/endpoint.rs", "attach: a claim keeps the place's generation (a stale reaper's CAS hits the new occupant)",
     r"let mine = word\(generation_of\(cur\)\.wrapping_add\(1\), token\);",
     "let mine = word(generation_of(cur), token);"),
    ("src/chan.rs", "receivers_left: remember the departure count read after the walk (a drop during it is missed)",
     r"self\.departures_seen\s*\.store\(u64::from\(now\), std::sync::atomic::Ordering::Relaxed\);",
     "self.departures_seen.store(u64::from(self.header().data_bell.state.load(Ordering::Acquire) as u32), std::sync::atomic::Ordering::Relaxed);"),
    ("src/chan.rs", "drop: detach without counting the departure",
     r"(if endpoint::detach\(&hdr\.endpoints\[self\.entry\], self\.word\) \{\n)\s*endpoint::departed\(hdr\);\n",
     r"\1"),
    ("src/chan.rs", "receivers_left: departure count load Acquire -> Relaxed (departure)",
     r"let now = self\.header\(\)\.data_bell\.state\.load\(Ordering::Acquire\) as u32;",
     "let now = self.header().data_bell.state.load(Ordering::Relaxed) as u32;"),
    ("src/endpoint.rs", "departed: count bump Release -> Relaxed (departure)",
     r"hdr\.data_bell\.state\.fetch_add\(1, Ordering::Release\)",
     "hdr.data_bell.state.fetch_add(1, Ordering::Relaxed)"),
    ("src/handle.rs", "send paths: no probe before waking a sleeping receiver (a dead sleeper's ring gets the message)",
     r"crate::sync::probe\(\|\| chan\.receiver_may_sleep\(\) && chan\.receivers_died\(\)\)",
     "false"),
    ("src/ring/mpmc.rs", "repair: a dead consumer's message freed (lost) instead of handed back",
     r"let to = if d\.state == READING \{",
     "let to = if false {"),
    ("src/ring/mpmc.rs", "repair: the head hint not moved back to a handed-back message",
     r"Self::rewind\(&hdr\.head, d\.pos\);",
     ""),
    ("src/ring/spsc.rs", "takeover: a new producer does not look past the shared tail (overwrites what a killed one published)",
     r"while tail\.wrapping_sub\(head\) < capacity",
     "while false && tail.wrapping_sub(head) < capacity"),
    ("src/ring/spsc.rs", "takeover: a tail behind head refused (a killed producer's messages already taken)",
     r"\} else if head\.wrapping_sub\(tail\) <= capacity \+ CHECKPOINT \{",
     "} else if false {"),
    # Broadcast (issue 19): the seqlock, the publish, Block mode's join and eviction. (The
    # cursor's Release store and the scan's Acquire load, bcast-free, have no mutant: loom
    # does not produce load buffering, and a broadcast payload is atomic words, so a weakened
    # pair shows no race it could report. The process tests' Block mode losing nothing is
    # what exercises it.)
    ("src/ring/broadcast.rs", "broadcast begin: no marker before writing (a lapped read cannot tell)",
     r"slots\s*\.stamp\(p\)\s*\.store\(p\.wrapping_add\(1\) \| BUSY, Ordering::Relaxed\);",
     ""),
    ("src/ring/broadcast.rs", "broadcast begin: no Release fence after the marker (bcast-seqlock)",
     r"(\| BUSY, Ordering::Relaxed\);\s*)fence\(Ordering::Release\);",
     r"\1"),
    ("src/ring/broadcast.rs", "broadcast read: no Acquire fence before the second stamp load (bcast-seqlock)",
     r"fence\(Ordering::Acquire\);\s*let s2",
     "let s2"),
    ("src/ring/broadcast.rs", "broadcast read: the stamp not loaded again after the copy (a lapped read returned)",
     r"if s2 != s1 \{",
     "if false && s2 != s1 {"),
    ("src/ring/broadcast.rs", "broadcast end: stamp store Release -> Relaxed (bcast-publish)",
     r"slots\.stamp\(p\)\.store\(next, Ordering::Release\);",
     "slots.stamp(p).store(next, Ordering::Relaxed);"),
    ("src/ring/broadcast.rs", "broadcast read: stamp load Acquire -> Relaxed (bcast-publish)",
     r"let s1 = slots\.stamp\(c\)\.load\(Ordering::Acquire\);",
     "let s1 = slots.stamp(c).load(Ordering::Relaxed);"),
    ("src/ring/broadcast.rs", "broadcast join: a joiner lapped before it was counted reports a lag",
     r"\} else if self\.latest \{",
     "} else if false {"),
    ("src/ring/broadcast.rs", "broadcast room: a joiner's request for a scan ignored",
     r"self\.fits\(p, capacity\) && ctl\.rescan\.load\(Ordering::Relaxed\) == 0",
     "self.fits(p, capacity)"),
    ("src/broadcast.rs", "broadcast eviction: checked without the place's generation (a new occupant taken for the evicted one)",
     r"e != 0 && e == u64::from\(generation\)",
     "e != 0"),
    ("src/broadcast/frames.rs", "broadcast frames: the frame written after its stamp says it is published (outside the seqlock)",
     r"c\.slots\.store_frame\(p, frame\);\s*c\.ring\.end\(c\.chan\.header\(\), &c\.slots, p\);",
     "c.ring.end(c.chan.header(), &c.slots, p);\n        c.slots.store_frame(p, frame);"),
]
BENIGN = set()  # every mutant must be caught

# Which loom suites run the code a mutated file holds (the others cannot catch its mutants, and
# the MPMC suite alone takes ~45 s). Files not listed run every suite.
ALL_MODELS = ["loom_spsc", "loom_mpmc", "loom_gate", "loom_frame", "loom_async", "loom_broadcast"]
MODELS = {
    "src/ring/spsc.rs": ["loom_spsc"],
    "src/ring/frame.rs": ["loom_frame"],
    "src/ring/mpmc.rs": ["loom_mpmc"],
    "src/region/gate_word.rs": ["loom_gate"],
    "src/reactor.rs": ["loom_async"],
    "src/endpoint.rs": ["loom_spsc", "loom_mpmc"],
    # The doorbell and the handshake are shared by every kind; the SPSC models block in both
    # directions and race an opener with its creator (the MPMC suite alone takes ~280 s).
    "src/wait.rs": ["loom_spsc"],
    "src/layout.rs": ["loom_spsc"],
    "src/ring/broadcast.rs": ["loom_broadcast"],
    "src/broadcast.rs": ["loom_broadcast"],
    "src/broadcast/frames.rs": ["loom_broadcast"],
    "src/handle.rs": ["loom_spsc"],
    # The departure count (the send path's check for receivers that left).
    "src/chan.rs": ["loom_mpmc", "loom_spsc"],
}


# Mutants whose models are in other suites than their file's (by description prefix): under
# "a claim keeps the place's generation" the MPMC models livelock in their retry loops (a
# live producer's slots repaired under it), so only the SPSC model, which catches it, runs.
SUITES = {
    "attach: a claim keeps": ["loom_spsc"],
}


# The models that caught each mutant in the last full run (`--full`), by description. By default
# a mutant runs only these (stopping at the first failing interleaving, where a model that
# cannot catch it explores every one): a third of the time. A mutant they no longer catch runs
# its file's whole suites before it is called a survivor. A new mutant, not listed, runs its
# file's suites.
# Mutants whose catcher needs a deeper preemption bound than the suites' 2 (the mutant run stops
# at the first failing execution, so this costs seconds; the unmutated model at 3 takes about
# 6 minutes, which is why the suites stay at 2). Stop 30: since a send checks the sleeper flag
# and the departure count in one load and pushes without `poll_send`, the lost flag of this
# mutant needs a third preemption in `blocking_fifo_both_directions_and_disconnect_after_last`
# (a deadlock found with LOOM_MAX_PREEMPTIONS=3, none with 2).
PREEMPTIONS = {
    'wake: bump seq before clearing the sleeper flag (a re-registered flag is lost)': "3",
}

CATCHERS = {
    'receivers_left: remember the departure count read after the walk (a drop during it is missed)':
        ['a_send_after_the_last_receiver_dropped_is_refused'],
    'drop: detach without counting the departure':
        ['a_send_after_the_last_receiver_dropped_is_refused'],
    'receivers_left: departure count load Acquire -> Relaxed (departure)':
        ['a_send_after_the_last_receiver_dropped_is_refused'],
    'departed: count bump Release -> Relaxed (departure)':
        ['a_send_after_the_last_receiver_dropped_is_refused'],
    'push: stamp store Release -> Relaxed (publish)':
        ['blocking_fifo_both_directions_and_disconnect_after_last', 'opener_racing_creator_sees_a_complete_header', 'receiver_reattaches_while_sender_parks_on_full_ring', 'refs_and_copies_interleave_in_order', 'try_results_consistent'],
    'pop: stamp load Acquire -> Relaxed (publish)':
        ['batches_fifo_and_disconnect_after_last', 'blocking_fifo_both_directions_and_disconnect_after_last', 'opener_racing_creator_sees_a_complete_header', 'receiver_reattaches_while_sender_parks_on_full_ring', 'refs_and_copies_interleave_in_order', 'try_results_consistent'],
    'pop: head store Release -> Relaxed (slot-free)':
        ['blocking_fifo_both_directions_and_disconnect_after_last', 'receiver_reattaches_while_sender_parks_on_full_ring', 'refs_and_copies_interleave_in_order', 'try_results_consistent'],
    'room (push, push_slice): head load Acquire -> Relaxed (slot-free)':
        ['batches_fifo_and_disconnect_after_last', 'blocking_fifo_both_directions_and_disconnect_after_last', 'loans_commit_abandon_and_refs_hold_their_slot', 'receiver_reattaches_while_sender_parks_on_full_ring', 'refs_and_copies_interleave_in_order', 'try_results_consistent'],
    'push_slice: stamp store Release -> Relaxed (publish, batch)':
        ['batches_fifo_and_disconnect_after_last'],
    'pop_slice: head store Release -> Relaxed (slot-free, batch)':
        ['batches_fifo_and_disconnect_after_last'],
    'pop_slice: stamp load Acquire -> Relaxed (publish, batch)':
        ['batches_fifo_and_disconnect_after_last'],
    'notify: drop the SeqCst fence between publish and the sleepers load':
        ['batches_fifo_and_disconnect_after_last'],
    'prepare: drop the SeqCst fence between registering and the re-check':
        ['batches_fifo_and_disconnect_after_last'],
    'wait loop: skip the re-check (register only after the last check)':
        ['batches_fifo_and_disconnect_after_last'],
    'wake: bump seq before clearing the sleeper flag (a re-registered flag is lost)':
        ['blocking_fifo_both_directions_and_disconnect_after_last'],
    'publish: ready store Release -> Relaxed (handshake)':
        ['opener_racing_creator_sees_a_complete_header'],
    'is_ready: ready load Acquire -> Relaxed (handshake)':
        ['opener_racing_creator_sees_a_complete_header'],
    'MPMC claim (push, loan): claiming CAS Acquire -> Relaxed (slot-free)':
        ['abandoned_slot_reused_by_another_producer', 'exactly_once_one_consumer', 'exactly_once_two_consumers', 'loans_commit_and_abandon_with_refs', 'place_reused_while_a_peer_repairs_its_old_occupant'],
    'MPMC publish (push, commit): publishing CAS Release -> Relaxed (publish)':
        ['abandoned_slot_reused_by_another_producer', 'dropped_loan_among_producers_and_consumers', 'exactly_once_one_consumer', 'exactly_once_two_consumers', 'loans_commit_and_abandon_with_refs', 'repair_races_late_publish'],
    'MPMC take (pop, recv_ref): claiming CAS Acquire -> Relaxed (publish)':
        ['abandoned_slot_reused_by_another_producer', 'dropped_loan_among_producers_and_consumers', 'exactly_once_one_consumer', 'exactly_once_two_consumers', 'loans_commit_and_abandon_with_refs', 'repair_races_late_publish'],
    'MPMC take, eager (a waiting consumer): claiming CAS from FULL Acquire -> Relaxed (publish)':
        ['dropped_loan_among_producers_and_consumers', 'exactly_once_one_consumer', 'exactly_once_two_consumers', 'loans_commit_and_abandon_with_refs', 'repair_races_late_publish', 'abandoned_slot_reused_by_another_producer'],
    'MPMC free (pop, Ref drop): freeing CAS Release -> Relaxed (slot-free)':
        ['abandoned_slot_reused_by_another_producer', 'exactly_once_one_consumer', 'exactly_once_two_consumers', 'loans_commit_and_abandon_with_refs', 'place_reused_while_a_peer_repairs_its_old_occupant'],
    'MPMC: repair a held slot without checking its owner is gone':
        ['abandoned_slot_reused_by_another_producer', 'exactly_once_one_consumer', 'exactly_once_two_consumers', 'loans_commit_and_abandon_with_refs'],
    "MPMC one-step receive: frees to FREE(pos), not the next lap's FREE(pos + capacity)":
        ['one_step_exactly_once_one_consumer'],
    'MPMC one-step send: no data_bell notify (a consumer asleep)':
        ['one_step_exactly_once_one_consumer'],
    'MPMC one-step receive: no space_bell notify (a producer asleep on a full ring)':
        ['one_step_exactly_once_one_consumer'],
    'MPMC one-step receive: the slot left FULL (the message stays to be taken again)':
        ['one_step_exactly_once_two_consumers'],
    'MPMC one-step receive of a handed-back message: the slot left FULL (taken again)':
        ['one_step_receive_of_a_handed_back_message'],
    'gate: taking CAS Acquire -> Relaxed (gate)':
        ['gate_is_exclusive_and_orders_its_holders', 'gate_left_by_a_dead_holder_is_taken_over_once'],
    'gate: releasing CAS Release -> Relaxed (gate)':
        ['gate_is_exclusive_and_orders_its_holders', 'gate_left_by_a_dead_holder_is_taken_over_once'],
    'gate: take over a holder without checking it is dead':
        ['gate_is_exclusive_and_orders_its_holders', 'gate_left_by_a_dead_holder_is_taken_over_once'],
    'frame commit: stamp store Release -> Relaxed (frame-publish)':
        ['frames_in_order_across_the_wrap', 'held_frame_holds_its_room', 'loans_commit_a_prefix_or_nothing'],
    'frame padding: stamp store Release -> Relaxed (frame-publish)':
        ['frames_in_order_across_the_wrap'],
    'frame peek: stamp load Acquire -> Relaxed (frame-publish)':
        ['frames_in_order_across_the_wrap', 'held_frame_holds_its_room', 'loans_commit_a_prefix_or_nothing'],
    'frame free: head store Release -> Relaxed (frame-free)':
        ['frames_in_order_across_the_wrap', 'held_frame_holds_its_room'],
    'frame room: head load Acquire -> Relaxed (frame-free)':
        ['frames_in_order_across_the_wrap', 'held_frame_holds_its_room'],
    'loan commit: stamp store Release -> Relaxed (publish)':
        ['loans_commit_abandon_and_refs_hold_their_slot'],
    'recv_ref peek: stamp load Acquire -> Relaxed (publish)':
        ['loans_commit_abandon_and_refs_hold_their_slot', 'refs_and_copies_interleave_in_order'],
    'Ref release: head store Release -> Relaxed (slot-free)':
        ['loans_commit_abandon_and_refs_hold_their_slot', 'refs_and_copies_interleave_in_order'],
    'MPMC abandon (dropped loan): freeing CAS Release -> Relaxed (slot-free)':
        ['abandoned_slot_reused_by_another_producer'],
    'MPMC abandon: no data_bell notify (a consumer asleep at the position)':
        ['dropped_loan_wakes_a_consumer_waiting_at_its_position'],
    'role_state: endpoint load Acquire -> Relaxed (disconnect after last)':
        ['abandoned_slot_reused_by_another_producer', 'exactly_once_one_consumer', 'loans_commit_and_abandon_with_refs'],
    'detach: CAS AcqRel -> Relaxed (disconnect after last)':
        ['exactly_once_one_consumer'],
    'async wait: register without the re-check after arming (flag, fence, re-check)':
        ['dropped_future_loses_nothing'],
    'async wait: register the seq read after the re-check, not the one prepare read':
        ['recv_async_woken_by_send'],
    'reactor: a registration does not bump ctl (a reactor about to sleep misses it)':
        ['dropped_future_loses_nothing', 'recv_async_woken_by_send', 'send_async_woken_by_recv'],
    "owner_gone: ignore the generation (an old occupant's slot taken for the new one's)":
        ['place_reused_while_a_peer_repairs_its_old_occupant'],
    "attach: a claim keeps the place's generation (a stale reaper's CAS hits the new occupant)":
        ['send_to_a_receiver_killed_asleep_is_refused_first'],
    "send paths: no probe before waking a sleeping receiver (a dead sleeper's ring gets the message)":
        ['send_to_a_receiver_killed_asleep_is_refused_first'],
    "repair: a dead consumer's message freed (lost) instead of handed back":
        ['next_consumer_gets_a_dead_consumers_message_at_once', 'place_reused_while_a_peer_repairs_its_old_occupant'],
    'repair: the head hint not moved back to a handed-back message':
        ['next_consumer_gets_a_dead_consumers_message_at_once'],
    'takeover: a new producer does not look past the shared tail (overwrites what a killed one published)':
        ['a_new_sender_takes_over_after_what_a_killed_one_published'],
    "takeover: a tail behind head refused (a killed producer's messages already taken)":
        ['a_new_sender_takes_over_after_what_a_killed_one_published'],
    'broadcast begin: no marker before writing (a lapped read cannot tell)':
        ['eviction_races_a_late_cursor_store', 'frame_read_against_a_lapping_publisher', 'seqlock_read_against_a_lapping_publisher'],
    'broadcast begin: no Release fence after the marker (bcast-seqlock)':
        ['eviction_races_a_late_cursor_store', 'frame_read_against_a_lapping_publisher', 'seqlock_read_against_a_lapping_publisher'],
    'broadcast read: no Acquire fence before the second stamp load (bcast-seqlock)':
        ['eviction_races_a_late_cursor_store', 'frame_read_against_a_lapping_publisher', 'seqlock_read_against_a_lapping_publisher'],
    'broadcast read: the stamp not loaded again after the copy (a lapped read returned)':
        ['eviction_races_a_late_cursor_store', 'frame_read_against_a_lapping_publisher', 'seqlock_read_against_a_lapping_publisher'],
    'broadcast end: stamp store Release -> Relaxed (bcast-publish)':
        ['a_place_reused_after_an_eviction_is_not_evicted', 'frame_read_against_a_lapping_publisher'],
    'broadcast read: stamp load Acquire -> Relaxed (bcast-publish)':
        ['a_place_reused_after_an_eviction_is_not_evicted', 'frame_read_against_a_lapping_publisher'],
    'broadcast join: a joiner lapped before it was counted reports a lag':
        ['block_mode_gates_a_subscriber_that_joins_meanwhile'],
    "broadcast room: a joiner's request for a scan ignored":
        ['a_place_reused_after_an_eviction_is_not_evicted'],
    "broadcast eviction: checked without the place's generation (a new occupant taken for the evicted one)":
        ['a_place_reused_after_an_eviction_is_not_evicted'],
    'broadcast frames: the frame written after its stamp says it is published (outside the seqlock)':
        ['frame_read_against_a_lapping_publisher'],
}


def suites(i):
    for prefix, s in SUITES.items():
        if MUTANTS[i][1].startswith(prefix):
            return s
    return MODELS.get(MUTANTS[i][0], ALL_MODELS)


def apply(tree, i):
    path, _, pat, rep = MUTANTS[i]
    f = os.path.join(tree, path)
    src = open(f).read()
    out, n = re.subn(pat, rep, src, count=1, flags=re.S)
    if n != 1:
        sys.exit(f"mutant {i}: pattern not found in {path}; update loom-tests/mutants.py")
    if "skip the re-check" in MUTANTS[i][1]:  # the registration also moves before the sleep
        out, n = re.subn(r"(Poll::Pending => \{\n)(\s+)(let mut nap)",
                         r"\1\2let seq = bell.prepare();\n\2\3", out, count=1)
        assert n == 1
    open(f, "w").write(out)


def run(tree, env, i, only):
    """Run mutant `i`'s suites in `tree`, only the models `only` if given. Returns the models
    that failed, those whose failure was loom's nondeterminism, and the cargo output."""
    targets = []
    for t in suites(i):
        targets += ["--test", t]
    if only:
        targets += ["--"] + only + ["--exact"]
    try:
        r = subprocess.run(["cargo", "test", "--release"] + targets,
                           cwd=tree, env=env, capture_output=True, text=True, timeout=1200)
    except subprocess.TimeoutExpired as e:
        # A model that did not finish in 20 minutes caught nothing in that time: say so
        # (the mutant then counts as not caught) rather than stop the whole run.
        out = lambda b: b.decode(errors="replace") if isinstance(b, bytes) else (b or "")
        r = subprocess.CompletedProcess(e.cmd, 0, out(e.stdout),
                                        out(e.stderr) + "\n(timed out after 1200 s)")
    failed = re.findall(r"^test (\S+) \.\.\. FAILED", r.stdout, re.M)
    # A model that panics (a deadlock, a causality violation) can abort the whole binary while
    # unwinding, before libtest prints FAILED: take the panicking thread.
    failed += [t for t in re.findall(r"^thread '([^']+)' \(\d+\) panicked", r.stdout + r.stderr, re.M)
               if t not in failed and t != "main"]
    failed = list(dict.fromkeys(failed))
    # loom's "unexpected exploration state" is a nondeterministic model, not a catch.
    out = r.stdout + r.stderr
    flaky = [t for t in failed if re.search(
        r"---- " + re.escape(t) + r" stdout ----\n(?:(?!---- ).)*?unexpected exploration state",
        out, re.S)]
    return [t for t in failed if t not in flaky], flaky, r


def main():
    args = sys.argv[1:]
    full = "--full" in args
    which = [int(a) for a in args if a != "--full"] or range(len(MUTANTS))
    env = dict(os.environ, RUSTFLAGS="--cfg loom", LOOM_MAX_PREEMPTIONS="2",
               CARGO_TARGET_DIR=os.path.join(ROOT, "target-loom-mutants"))
    survived = []
    for i in which:
        tree = tempfile.mkdtemp(prefix="shmchan-mutant-")
        try:
            for item in ["Cargo.toml", "Cargo.lock", "src", "loom-tests", "clippy.toml"]:
                s = os.path.join(ROOT, item)
                (shutil.copytree if os.path.isdir(s) else shutil.copy)(s, os.path.join(tree, item))
            # Only the loom test target is needed.
            toml = open(os.path.join(tree, "Cargo.toml")).read()
            # A table runs to the next line that starts with `[` (a table header): arrays such
            # as `members = ["cli"]` are inside it.
            toml = re.sub(r"^\[\[bench\]\]\n(?:(?!\[).*\n)*", "", toml, flags=re.M)
            # The copy is the library alone, not the workspace (`cli/` is not copied).
            toml = re.sub(r"^\[workspace\]\n(?:(?!\[).*\n)*", "", toml, flags=re.M)
            open(os.path.join(tree, "Cargo.toml"), "w").write(toml)
            apply(tree, i)
            only = None if full else CATCHERS.get(MUTANTS[i][1])
            env = dict(env, LOOM_MAX_PREEMPTIONS=PREEMPTIONS.get(MUTANTS[i][1], "2"))
            failed, flaky, r = run(tree, env, i, only)
            # Not caught by its catchers (or only through loom's nondeterminism): the whole
            # suites decide.
            if only and not failed and (r.returncode == 0 or flaky):
                print(f"     (not caught by {', '.join(only)} any more: running the whole suites)",
                      flush=True)
                failed, flaky, r = run(tree, env, i, None)
            if flaky:
                print(f"     (not counted, nondeterministic model: {', '.join(flaky)})", flush=True)
            build_err = r.returncode != 0 and not failed and not flaky
            verdict = ("BUILD ERROR" if build_err else
                       f"caught by {', '.join(failed)}" if failed else "SURVIVED")
            if build_err:
                print(r.stderr[-2000:])
            if not failed and i not in BENIGN:
                survived.append(i)
            if i in BENIGN:
                verdict += " (expected)" if not failed else " (unexpected: thought benign)"
            print(f"[{i}] {MUTANTS[i][0]}: {MUTANTS[i][1]}\n     -> {verdict}", flush=True)
            log = os.path.join(tempfile.gettempdir(), f"shmchan-mutant-{i}.log")
            open(log, "w").write(r.stdout + r.stderr)
            why = [m for m in re.findall(r"panicked at [^\n]*\n([^\n]*)", r.stdout + r.stderr)
                   if "destructor" not in m]
            if why:
                print(f"        first panic: {why[0][:200]}  (full log: {log})", flush=True)
        finally:
            shutil.rmtree(tree, ignore_errors=True)
    if not full:
        print("(each mutant ran only the models listed for it in CATCHERS; `--full` runs the "
              "whole suites and shows every model that catches it)")
    sys.exit(1 if survived else 0)


if __name__ == "__main__":
    main()
