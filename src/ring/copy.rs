//! Copies between shared memory and process-private memory that a peer writing (or reading)
//! the shared bytes at the same time cannot turn into undefined behaviour.
//!
//! A peer that is buggy or hostile may write a slot or a frame while we copy it out, or read
//! one while we copy into it. With a plain copy (`ptr::copy_nonoverlapping`, `memcpy`,
//! `copy_from_slice`) that is a data race: undefined behaviour in Rust's model, whatever the
//! bytes mean, and not only in theory (the compiler may load the bytes again later instead of
//! keeping its copy, assuming they cannot change). The two functions here are the crate's one
//! way across that boundary:
//!
//! - [`copy_from_shared`]: shared `src` to private `dst`;
//! - [`copy_to_shared`]: private `src` to shared `dst`.
//!
//! Each behaves as if it copied byte by byte with Relaxed atomic loads and stores on the
//! shared side: a racing peer can make the copy a mix of old and new bytes (the ring's stamps
//! and seqlocks are what tell a caller whether to keep it), but never undefined behaviour, and
//! the result lands in private memory that nobody else writes, so it cannot change after the
//! call returns.
//!
//! How, by target:
//!
//! - **x86_64**: the whole copy is inline assembly (AVX2 when the CPU has it, detected at
//!   run time; SSE2, which every x86_64 has, otherwise). An `asm!` block is opaque to the
//!   compiler: it cannot re-read, split or widen its accesses, and what the block does is
//!   explained in Rust's model by per-byte Relaxed atomic accesses (x86 loads and stores of
//!   up to 8 aligned bytes are single-copy atomic, and the vector moves are at least per byte),
//!   which cannot data-race. It runs at `memcpy` speed or faster: the AVX2 loop aligns the
//!   destination and moves 128 bytes per iteration with heads and tails done by overlapping
//!   vectors (as glibc's `memmove-vec-unaligned-erms` does). `rep movsb`, the other
//!   assembly candidate (and what glibc's `memcpy` itself uses from 4 KiB up on this AMD EPYC,
//!   Zen 3), took 1.5-1.8 us instead of 46-65 ns for 4 KiB when the destination lay 2 or 8
//!   bytes past the source modulo 4 KiB (32 or more was fine; `copy/memcpy_4KiB_skew8`), and
//!   2-3x longer than vectors below 1 KiB; a Relaxed `AtomicU64` word loop ran at 0.4-0.6x
//!   `memcpy` from L1 and L2, SSE2 vectors at 0.5-0.9x up to 64 KiB (see
//!   `cargo bench --bench throughput -- copy/` for the chosen copy against `memcpy`).
//! - **other targets**: Relaxed [`AtomicU64`](crate::sync::AtomicU64) word loads and stores
//!   (slower, but race-free by construction).
//! - **loom** (`--cfg loom`): a plain copy. Slot bytes there are process-private heap memory
//!   (loom's atomics cannot be laid over them), and the ring's `SlotTrack` cells report a
//!   copy that the protocol does not order; that is what the models check.
//!
//! Small typed payloads (up to 256 bytes) are not copied here: `ring::copy_out` reads them
//! with Relaxed word loads of a size known at compile time, inlined, which is faster there.

/// Copy `len` bytes from shared memory at `src` to private memory at `dst`, race-free (see the
/// module docs): each byte of `dst` receives a value its byte of `src` held during the call.
///
/// # Safety
/// - `src .. src + len` lies inside one live mapping (or heap region), and so do the
///   8-byte-aligned words that overlap it (always true of a range in a mapping: mappings are
///   page-aligned and whole pages long; used on targets without the assembly path);
/// - `dst .. dst + len` is valid for writes, is not read or written by anyone else during the
///   call, and does not overlap `src .. src + len`.
#[inline]
pub(crate) unsafe fn copy_from_shared(dst: *mut u8, src: *const u8, len: usize) {
    #[cfg(loom)]
    // SAFETY: per this function's contract (under loom, slot bytes are heap memory the
    // model's `SlotTrack` cells guard).
    unsafe {
        std::ptr::copy_nonoverlapping(src, dst, len)
    }
    #[cfg(all(not(loom), target_arch = "x86_64"))]
    // SAFETY: per this function's contract, which is `x86::copy`'s.
    unsafe {
        x86::copy(dst, src, len)
    }
    #[cfg(all(not(loom), not(target_arch = "x86_64")))]
    // SAFETY: per this function's contract, which is `words::copy_from_shared`'s.
    unsafe {
        words::copy_from_shared(dst, src, len)
    }
}

/// Copy `len` bytes from private memory at `src` to shared memory at `dst`, race-free (see the
/// module docs): a peer reading `dst` meanwhile sees each byte old or new.
///
/// # Safety
/// - `dst` is 8-byte aligned, and `dst .. dst + len` rounded up to a multiple of 8 lies inside
///   one live mapping (or heap region); the bytes between `dst + len` and that multiple are
///   padding the caller owns: targets without the assembly path store the last word whole,
///   zero-padded;
/// - `src .. src + len` is valid for reads, is not written by anyone during the call, and does
///   not overlap `dst`.
#[inline]
pub(crate) unsafe fn copy_to_shared(dst: *mut u8, src: *const u8, len: usize) {
    debug_assert!(
        dst.addr() % 8 == 0,
        "copy_to_shared: dst {dst:p} not 8-aligned"
    );
    #[cfg(loom)]
    // SAFETY: per this function's contract (under loom, slot bytes are heap memory the
    // model's `SlotTrack` cells guard).
    unsafe {
        std::ptr::copy_nonoverlapping(src, dst, len)
    }
    #[cfg(all(not(loom), target_arch = "x86_64"))]
    // SAFETY: per this function's contract, which is stronger than `x86::copy`'s.
    unsafe {
        x86::copy(dst, src, len)
    }
    #[cfg(all(not(loom), not(target_arch = "x86_64")))]
    // SAFETY: per this function's contract, which is `words::copy_to_shared`'s.
    unsafe {
        words::copy_to_shared(dst, src, len)
    }
}

/// The assembly copies. One function serves both directions: every access to either side is
/// made by the `asm!` blocks, so it does not matter which side is shared.
#[cfg(all(not(loom), target_arch = "x86_64"))]
pub(crate) mod x86 {
    use std::arch::asm;

    /// Copy `len` bytes from `src` to `dst` in assembly: up to 32 bytes with two overlapping
    /// moves, beyond that with AVX2 vectors (or SSE2 ones on a CPU without AVX2).
    ///
    /// # Safety
    /// `src .. src + len` is valid for reads and `dst .. dst + len` for writes, the two do not
    /// overlap, and no access to them that is not atomic (or assembly) races the call.
    #[inline(always)]
    pub(crate) unsafe fn copy(dst: *mut u8, src: *const u8, len: usize) {
        debug_assert!(
            src.addr().abs_diff(dst.addr()) >= len,
            "copy: {src:p} and {dst:p} overlap for {len} bytes"
        );
        if len <= 32 {
            // SAFETY: per this function's contract; `len <= 32`.
            unsafe { small(dst, src, len) }
        } else if has_avx2() {
            // SAFETY: per this function's contract; `len > 32`; the CPU has AVX2 (checked).
            unsafe { avx2(dst, src, len) }
        } else {
            // SAFETY: per this function's contract; `len > 32`.
            unsafe { sse2(dst, src, len) }
        }
    }

    /// Whether the CPU has AVX2: known at compile time when the build targets it, else asked
    /// of the CPU once (std's detection) and kept in a word of our own: one load per copy of
    /// more than 32 bytes, where std's cache sits behind an address in the GOT (two loads).
    ///
    /// Such a load waits for a store of the previous copy whose address matches it in its low
    /// 12 bits (4K aliasing): one destination offset in 16 doubled a 256-byte copy (3.3 to 6.8
    /// ns), as `memcpy`'s call can be slowed by the load of its address from the GOT. SSE2 up
    /// to 256 bytes, which needs no such load, was slower at every offset (16 stores instead
    /// of 8: 6-9 ns against 4-5.6 for `memcpy`, `copy/shared_read_256B`), so AVX2 it is.
    #[inline(always)]
    fn has_avx2() -> bool {
        if cfg!(target_feature = "avx2") {
            return true;
        }
        use crate::sync::{AtomicU32, Ordering};
        /// 0: not asked yet; 1: no AVX2; 2: AVX2.
        static AVX2: AtomicU32 = AtomicU32::new(0);
        // Relaxed: the word only caches what the CPU answers, the same on every thread.
        match AVX2.load(Ordering::Relaxed) {
            0 => {
                let yes = std::arch::is_x86_feature_detected!("avx2");
                AVX2.store(if yes { 2 } else { 1 }, Ordering::Relaxed);
                yes
            }
            w => w == 2,
        }
    }

    /// Up to 32 bytes: the first and the last `k` bytes (`k` the largest of 16, 8, 4, 2, 1
    /// not above `len`), two moves that overlap in the middle, with no loop.
    ///
    /// # Safety
    /// As for [`copy`], and `len <= 32`.
    #[inline(always)]
    unsafe fn small(dst: *mut u8, src: *const u8, len: usize) {
        debug_assert!(len <= 32);
        // SAFETY (every block below): the two loads read `src .. src + k` and
        // `src + len - k .. src + len`, the two stores write the same ranges of `dst`, all
        // inside the ranges the contract gives (`k <= len`); nothing else is touched.
        if len >= 16 {
            // SAFETY: see above (`k` = 16; SSE2 is part of x86_64).
            unsafe {
                asm!(
                    "movdqu {a}, xmmword ptr [{s}]",
                    "movdqu {b}, xmmword ptr [{s} + {n} - 16]",
                    "movdqu xmmword ptr [{d}], {a}",
                    "movdqu xmmword ptr [{d} + {n} - 16], {b}",
                    s = in(reg) src, d = in(reg) dst, n = in(reg) len,
                    a = out(xmm_reg) _, b = out(xmm_reg) _,
                    options(nostack, preserves_flags),
                )
            }
        } else if len >= 8 {
            // SAFETY: see above (`k` = 8).
            unsafe {
                asm!(
                    "mov {a}, qword ptr [{s}]",
                    "mov {b}, qword ptr [{s} + {n} - 8]",
                    "mov qword ptr [{d}], {a}",
                    "mov qword ptr [{d} + {n} - 8], {b}",
                    s = in(reg) src, d = in(reg) dst, n = in(reg) len,
                    a = out(reg) _, b = out(reg) _,
                    options(nostack, preserves_flags),
                )
            }
        } else if len >= 4 {
            // SAFETY: see above (`k` = 4).
            unsafe {
                asm!(
                    "mov {a:e}, dword ptr [{s}]",
                    "mov {b:e}, dword ptr [{s} + {n} - 4]",
                    "mov dword ptr [{d}], {a:e}",
                    "mov dword ptr [{d} + {n} - 4], {b:e}",
                    s = in(reg) src, d = in(reg) dst, n = in(reg) len,
                    a = out(reg) _, b = out(reg) _,
                    options(nostack, preserves_flags),
                )
            }
        } else if len >= 2 {
            // SAFETY: see above (`k` = 2).
            unsafe {
                asm!(
                    "mov {a:x}, word ptr [{s}]",
                    "mov {b:x}, word ptr [{s} + {n} - 2]",
                    "mov word ptr [{d}], {a:x}",
                    "mov word ptr [{d} + {n} - 2], {b:x}",
                    s = in(reg) src, d = in(reg) dst, n = in(reg) len,
                    a = out(reg) _, b = out(reg) _,
                    options(nostack, preserves_flags),
                )
            }
        } else if len == 1 {
            // SAFETY: see above (`k` = 1: one byte).
            unsafe {
                asm!(
                    "mov {a}, byte ptr [{s}]",
                    "mov byte ptr [{d}], {a}",
                    s = in(reg) src, d = in(reg) dst,
                    a = out(reg_byte) _,
                    options(nostack, preserves_flags),
                )
            }
        }
    }

    /// More than 32 bytes with 32-byte AVX2 moves: up to 256 bytes as two, four or eight
    /// vectors from both ends, with no loop and no branch on alignment; beyond that, the first
    /// vector and the last four are loaded first, then a loop moves 128 bytes per iteration to
    /// a 32-aligned destination (unaligned loads), and the saved vectors are stored last, over
    /// the head and tail the loop left (glibc's `memmove-vec-unaligned-erms`, without its
    /// `rep movsb`).
    ///
    /// The instructions need AVX2, which the caller checked at run time; the function is not
    /// `#[target_feature]`, so that it inlines into the dispatcher (the compiler emits no AVX
    /// code of its own here, and assembles the block's instructions as written).
    ///
    /// # Safety
    /// As for [`copy`], `len > 32`, and the CPU supports AVX2.
    #[inline(always)]
    pub(crate) unsafe fn avx2(dst: *mut u8, src: *const u8, len: usize) {
        debug_assert!(len > 32);
        if len <= 64 {
            // SAFETY: bytes `0..32` and `len - 32..len` of each side, inside the ranges of the
            // contract (`len > 32`); AVX2 is there (contract); `clobber_abi` covers the vector
            // registers, and `vzeroupper` leaves no dirty upper halves for SSE code after us.
            unsafe {
                asm!(
                    "vmovdqu ymm0, ymmword ptr [{s}]",
                    "vmovdqu ymm1, ymmword ptr [{s} + {n} - 32]",
                    "vmovdqu ymmword ptr [{d}], ymm0",
                    "vmovdqu ymmword ptr [{d} + {n} - 32], ymm1",
                    "vzeroupper",
                    s = in(reg) src, d = in(reg) dst, n = in(reg) len,
                    clobber_abi("C"),
                    options(nostack, preserves_flags),
                )
            }
        } else if len <= 128 {
            // SAFETY: bytes `0..64` and `len - 64..len` of each side (`len > 64`), as above.
            unsafe {
                asm!(
                    "vmovdqu ymm0, ymmword ptr [{s}]",
                    "vmovdqu ymm1, ymmword ptr [{s} + 32]",
                    "vmovdqu ymm2, ymmword ptr [{s} + {n} - 64]",
                    "vmovdqu ymm3, ymmword ptr [{s} + {n} - 32]",
                    "vmovdqu ymmword ptr [{d}], ymm0",
                    "vmovdqu ymmword ptr [{d} + 32], ymm1",
                    "vmovdqu ymmword ptr [{d} + {n} - 64], ymm2",
                    "vmovdqu ymmword ptr [{d} + {n} - 32], ymm3",
                    "vzeroupper",
                    s = in(reg) src, d = in(reg) dst, n = in(reg) len,
                    clobber_abi("C"),
                    options(nostack, preserves_flags),
                )
            }
        } else if len <= 256 {
            // SAFETY: bytes `0..128` and `len - 128..len` of each side (`len > 128`), as above.
            unsafe {
                asm!(
                    "vmovdqu ymm0, ymmword ptr [{s}]",
                    "vmovdqu ymm1, ymmword ptr [{s} + 32]",
                    "vmovdqu ymm2, ymmword ptr [{s} + 64]",
                    "vmovdqu ymm3, ymmword ptr [{s} + 96]",
                    "vmovdqu ymm4, ymmword ptr [{s} + {n} - 128]",
                    "vmovdqu ymm5, ymmword ptr [{s} + {n} - 96]",
                    "vmovdqu ymm6, ymmword ptr [{s} + {n} - 64]",
                    "vmovdqu ymm7, ymmword ptr [{s} + {n} - 32]",
                    "vmovdqu ymmword ptr [{d}], ymm0",
                    "vmovdqu ymmword ptr [{d} + 32], ymm1",
                    "vmovdqu ymmword ptr [{d} + 64], ymm2",
                    "vmovdqu ymmword ptr [{d} + 96], ymm3",
                    "vmovdqu ymmword ptr [{d} + {n} - 128], ymm4",
                    "vmovdqu ymmword ptr [{d} + {n} - 96], ymm5",
                    "vmovdqu ymmword ptr [{d} + {n} - 64], ymm6",
                    "vmovdqu ymmword ptr [{d} + {n} - 32], ymm7",
                    "vzeroupper",
                    s = in(reg) src, d = in(reg) dst, n = in(reg) len,
                    clobber_abi("C"),
                    options(nostack, preserves_flags),
                )
            }
        } else {
            // SAFETY: `len > 256`. The head vector is bytes `0..32`, the tail vectors
            // `len - 128..len`. The loop starts at `delta` = the distance from `dst` to the
            // next 32-aligned address above it (`1..=32`), on both sides, and runs while more
            // than 128 bytes are left before the end, so every access lies in `0..len`; and the
            // loop's range, the head and the tail cover `0..len` together (the loop stops with
            // at most 128 left, which the tail covers; it runs at least once, as
            // `len - delta > 256 - 32`). Aligned stores (`vmovdqa`) are only at 32-aligned
            // `d`. AVX2 is there (contract); `clobber_abi` as above. Registers: rsi source, rdi destination (`d`), rcx length, then the loop's limit
            // (`end - 128`), r8 the destination's end, r9 its start.
            unsafe {
                asm!(
                    "vmovdqu ymm4, ymmword ptr [rsi]",
                    "vmovdqu ymm5, ymmword ptr [rsi + rcx - 128]",
                    "vmovdqu ymm6, ymmword ptr [rsi + rcx - 96]",
                    "vmovdqu ymm7, ymmword ptr [rsi + rcx - 64]",
                    "vmovdqu ymm8, ymmword ptr [rsi + rcx - 32]",
                    "lea r8, [rdi + rcx]",
                    "mov r9, rdi",
                    "or rdi, 31",
                    "add rdi, 1",
                    "sub rsi, r9",
                    "add rsi, rdi",
                    "lea rcx, [r8 - 128]",
                    "cmp rdi, rcx",
                    "jae 3f",
                    "2:",
                    "vmovdqu ymm0, ymmword ptr [rsi]",
                    "vmovdqu ymm1, ymmword ptr [rsi + 32]",
                    "vmovdqu ymm2, ymmword ptr [rsi + 64]",
                    "vmovdqu ymm3, ymmword ptr [rsi + 96]",
                    "vmovdqa ymmword ptr [rdi], ymm0",
                    "vmovdqa ymmword ptr [rdi + 32], ymm1",
                    "vmovdqa ymmword ptr [rdi + 64], ymm2",
                    "vmovdqa ymmword ptr [rdi + 96], ymm3",
                    "add rsi, 128",
                    "add rdi, 128",
                    "cmp rdi, rcx",
                    "jb 2b",
                    "3:",
                    "vmovdqu ymmword ptr [r8 - 128], ymm5",
                    "vmovdqu ymmword ptr [r8 - 96], ymm6",
                    "vmovdqu ymmword ptr [r8 - 64], ymm7",
                    "vmovdqu ymmword ptr [r8 - 32], ymm8",
                    "vmovdqu ymmword ptr [r9], ymm4",
                    "vzeroupper",
                    inout("rsi") src => _, inout("rdi") dst => _, inout("rcx") len => _,
                    out("r8") _, out("r9") _,
                    clobber_abi("C"),
                    options(nostack),
                )
            }
        }
    }

    /// More than 32 bytes with 16-byte SSE2 moves (x86_64 CPUs without AVX2): [`avx2`]'s
    /// shape at half the width (up to 64 bytes from both ends, then a 64-byte loop to a
    /// 16-aligned destination).
    ///
    /// # Safety
    /// As for [`copy`], and `len > 32`.
    #[inline(never)]
    pub(crate) unsafe fn sse2(dst: *mut u8, src: *const u8, len: usize) {
        debug_assert!(len > 32);
        if len <= 64 {
            // SAFETY: bytes `0..32` and `len - 32..len` of each side, inside the contract's
            // ranges (`len > 32`); `clobber_abi` covers the vector registers.
            unsafe {
                asm!(
                    "movdqu xmm0, xmmword ptr [{s}]",
                    "movdqu xmm1, xmmword ptr [{s} + 16]",
                    "movdqu xmm2, xmmword ptr [{s} + {n} - 32]",
                    "movdqu xmm3, xmmword ptr [{s} + {n} - 16]",
                    "movdqu xmmword ptr [{d}], xmm0",
                    "movdqu xmmword ptr [{d} + 16], xmm1",
                    "movdqu xmmword ptr [{d} + {n} - 32], xmm2",
                    "movdqu xmmword ptr [{d} + {n} - 16], xmm3",
                    s = in(reg) src, d = in(reg) dst, n = in(reg) len,
                    clobber_abi("C"),
                    options(nostack, preserves_flags),
                )
            }
        } else {
            // SAFETY: as in `avx2`'s loop at half the width: `len > 64`, head `0..16`, tail
            // `len - 64..len`, `delta` in `1..=16`, the loop runs while more than 64 bytes are
            // left (when it does not run at all, `len <= 64 + delta`, so the tail starts at or
            // before byte 16); `movdqa` stores only at 16-aligned `d`. Registers as in
            // `avx2`'s loop.
            unsafe {
                asm!(
                    "movdqu xmm4, xmmword ptr [rsi]",
                    "movdqu xmm5, xmmword ptr [rsi + rcx - 64]",
                    "movdqu xmm6, xmmword ptr [rsi + rcx - 48]",
                    "movdqu xmm7, xmmword ptr [rsi + rcx - 32]",
                    "movdqu xmm8, xmmword ptr [rsi + rcx - 16]",
                    "lea r8, [rdi + rcx]",
                    "mov r9, rdi",
                    "or rdi, 15",
                    "add rdi, 1",
                    "sub rsi, r9",
                    "add rsi, rdi",
                    "lea rcx, [r8 - 64]",
                    "cmp rdi, rcx",
                    "jae 3f",
                    "2:",
                    "movdqu xmm0, xmmword ptr [rsi]",
                    "movdqu xmm1, xmmword ptr [rsi + 16]",
                    "movdqu xmm2, xmmword ptr [rsi + 32]",
                    "movdqu xmm3, xmmword ptr [rsi + 48]",
                    "movdqa xmmword ptr [rdi], xmm0",
                    "movdqa xmmword ptr [rdi + 16], xmm1",
                    "movdqa xmmword ptr [rdi + 32], xmm2",
                    "movdqa xmmword ptr [rdi + 48], xmm3",
                    "add rsi, 64",
                    "add rdi, 64",
                    "cmp rdi, rcx",
                    "jb 2b",
                    "3:",
                    "movdqu xmmword ptr [r8 - 64], xmm5",
                    "movdqu xmmword ptr [r8 - 48], xmm6",
                    "movdqu xmmword ptr [r8 - 32], xmm7",
                    "movdqu xmmword ptr [r8 - 16], xmm8",
                    "movdqu xmmword ptr [r9], xmm4",
                    inout("rsi") src => _, inout("rdi") dst => _, inout("rcx") len => _,
                    out("r8") _, out("r9") _,
                    clobber_abi("C"),
                    options(nostack),
                )
            }
        }
    }
}

/// The portable copies: Relaxed atomic 8-byte words on the shared side. Used on targets
/// without the assembly path; compiled (and tested) everywhere outside loom.
#[cfg(not(loom))]
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
pub(crate) mod words {
    use crate::sync::{AtomicU64, Ordering};

    /// The 8-byte-aligned word at `p` as an atomic.
    ///
    /// # Safety
    /// `p` is 8-aligned and `p .. p + 8` lies in a mapping that outlives `'a`.
    #[inline(always)]
    unsafe fn word<'a>(p: *const u8) -> &'a AtomicU64 {
        // SAFETY: in bounds and aligned per the contract; any bits are a valid `AtomicU64`,
        // and every process accesses shared words atomically (or in assembly).
        unsafe { &*p.cast::<AtomicU64>() }
    }

    /// [`copy_from_shared`](super::copy_from_shared) with Relaxed word loads: the aligned
    /// words that overlap `src .. src + len`, each loaded once, the bytes of the range taken
    /// from them.
    ///
    /// # Safety
    /// As for [`copy_from_shared`](super::copy_from_shared).
    pub(crate) unsafe fn copy_from_shared(dst: *mut u8, src: *const u8, len: usize) {
        if len == 0 {
            return;
        }
        let head = src.addr() % 8;
        // The aligned word holding `src`, and how many bytes of it belong to the range.
        let mut at = src.wrapping_sub(head);
        let mut done = 0;
        if head != 0 {
            let take = (8 - head).min(len);
            // SAFETY: the aligned word overlapping the range's start is in the mapping
            // (contract); `dst .. dst + take` is inside `dst .. dst + len`.
            unsafe {
                let w = word(at).load(Ordering::Relaxed).to_ne_bytes();
                std::ptr::copy_nonoverlapping(w.as_ptr().add(head), dst, take);
            }
            done = take;
            at = at.wrapping_add(8);
        }
        while len - done >= 8 {
            // SAFETY: `at` is 8-aligned, and `at .. at + 8` = `src + done ..` lies in the
            // range (8 bytes are left); `dst + done .. + 8` is inside `dst`'s range.
            unsafe {
                let w = word(at).load(Ordering::Relaxed);
                dst.add(done).cast::<u64>().write_unaligned(w);
            }
            done += 8;
            at = at.wrapping_add(8);
        }
        if done < len {
            // SAFETY: the aligned word overlapping the range's end is in the mapping
            // (contract); the last `len - done < 8` bytes of `dst` are in its range.
            unsafe {
                let w = word(at).load(Ordering::Relaxed).to_ne_bytes();
                std::ptr::copy_nonoverlapping(w.as_ptr(), dst.add(done), len - done);
            }
        }
    }

    /// [`copy_to_shared`](super::copy_to_shared) with Relaxed word stores; the last word,
    /// if partial, is stored whole with zeros after the range's bytes.
    ///
    /// # Safety
    /// As for [`copy_to_shared`](super::copy_to_shared) (`dst` 8-aligned, the padding to
    /// the next multiple of 8 the caller's).
    pub(crate) unsafe fn copy_to_shared(dst: *mut u8, src: *const u8, len: usize) {
        debug_assert!(dst.addr() % 8 == 0);
        let mut done = 0;
        while len - done >= 8 {
            // SAFETY: `src + done .. + 8` is in `src`'s range; `dst + done` is 8-aligned and
            // its word in the mapping (contract).
            unsafe {
                let w = src.add(done).cast::<u64>().read_unaligned();
                word(dst.add(done)).store(w, Ordering::Relaxed);
            }
            done += 8;
        }
        if done < len {
            let mut w = [0u8; 8];
            // SAFETY: the last `len - done < 8` bytes of `src`'s range; the word at
            // `dst + done` is the range's last, rounded up, in the mapping with its padding
            // the caller's (contract).
            unsafe {
                std::ptr::copy_nonoverlapping(src.add(done), w.as_mut_ptr(), len - done);
                word(dst.add(done)).store(u64::from_ne_bytes(w), Ordering::Relaxed);
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    /// A copy function under test: `(dst, src, len)`.
    type Copy = unsafe fn(*mut u8, *const u8, usize);

    /// Guard bytes on each side of a destination, and the value they hold.
    const GUARD: usize = 64;
    const FILL: u8 = 0xA5;

    /// Every copy path there is on this machine, with whether it may zero the padding after
    /// the destination range up to a multiple of 8 (only the portable `copy_to_shared`).
    fn paths() -> Vec<(&'static str, Copy, bool)> {
        let mut v: Vec<(&'static str, Copy, bool)> = vec![
            ("copy_from_shared", super::copy_from_shared, false),
            (
                "copy_to_shared",
                super::copy_to_shared,
                cfg!(not(target_arch = "x86_64")),
            ),
            (
                "words::copy_from_shared",
                super::words::copy_from_shared,
                false,
            ),
            ("words::copy_to_shared", super::words::copy_to_shared, true),
        ];
        #[cfg(target_arch = "x86_64")]
        {
            v.push(("x86::copy", super::x86::copy, false));
            /// `sse2` takes more than 32 bytes; below that the dispatcher's path.
            unsafe fn sse2(d: *mut u8, s: *const u8, n: usize) {
                // SAFETY: the caller's contract is `x86::copy`'s.
                unsafe {
                    if n > 32 {
                        super::x86::sse2(d, s, n)
                    } else {
                        super::x86::copy(d, s, n)
                    }
                }
            }
            v.push(("x86::sse2", sse2, false));
            if std::arch::is_x86_feature_detected!("avx2") {
                /// `avx2` takes more than 32 bytes; below that the dispatcher's path.
                unsafe fn avx2(d: *mut u8, s: *const u8, n: usize) {
                    // SAFETY: the caller's contract is `x86::copy`'s; AVX2 was detected.
                    unsafe {
                        if n > 32 {
                            super::x86::avx2(d, s, n)
                        } else {
                            super::x86::copy(d, s, n)
                        }
                    }
                }
                v.push(("x86::avx2", avx2, false));
            }
        }
        v
    }

    /// Copy `len` bytes with `f` from offset `so` of an 8-aligned source to offset `dof` of an
    /// 8-aligned destination, and compare with the reference: the bytes in range equal the
    /// source's, the guard bytes around them are untouched (but for the padding `pads` allows,
    /// which must then be zero).
    fn check(name: &str, f: Copy, pads: bool, len: usize, so: usize, dof: usize) {
        // u64 buffers, so both start 8-aligned; the source a pattern that no shift repeats.
        let src_words = (so + len).div_ceil(8) + 1;
        let src: Vec<u64> = (0..src_words as u64)
            .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x0123_4567_89AB_CDEF)
            .collect();
        let dst_words = (GUARD + dof + len + GUARD).div_ceil(8);
        let mut dst = vec![u64::from_ne_bytes([FILL; 8]); dst_words];
        let s = src.as_ptr().cast::<u8>();
        let d = dst.as_mut_ptr().cast::<u8>();
        // SAFETY: `so + len` bytes fit in `src`, `GUARD + dof + len` in `dst`; separate
        // allocations; the source's aligned words are inside `src` (it is 8-aligned and whole
        // words long); the destination's padding to a multiple of 8 lies in the guard (only
        // the portable `copy_to_shared` writes it, with `dof` = 0 there: `GUARD` is a multiple
        // of 8).
        unsafe { f(d.add(GUARD + dof), s.add(so), len) };
        // SAFETY: reading back our own buffers as bytes.
        let (sb, db) = unsafe {
            (
                std::slice::from_raw_parts(s, src_words * 8),
                std::slice::from_raw_parts(d, dst_words * 8),
            )
        };
        let at = GUARD + dof;
        assert_eq!(
            &db[at..at + len],
            &sb[so..so + len],
            "{name}: len {len}, src offset {so}, dst offset {dof}"
        );
        assert!(
            db[..at].iter().all(|&b| b == FILL),
            "{name}: wrote before dst (len {len}, offsets {so}/{dof})"
        );
        let pad_end = if pads {
            (at + len).next_multiple_of(8)
        } else {
            at + len
        };
        assert!(
            db[at + len..pad_end].iter().all(|&b| b == 0),
            "{name}: padding not zero (len {len}, offsets {so}/{dof})"
        );
        assert!(
            db[pad_end..].iter().all(|&b| b == FILL),
            "{name}: wrote after dst (len {len}, offsets {so}/{dof})"
        );
    }

    #[test]
    fn every_length_to_300_at_every_offset() {
        for (name, f, pads) in paths() {
            // `copy_to_shared` takes an 8-aligned destination (slot and record starts).
            let dst_offsets = if name.contains("to_shared") {
                0..1
            } else {
                0..8
            };
            for len in 0..=300 {
                for so in 0..8 {
                    for dof in dst_offsets.clone() {
                        check(name, f, pads, len, so, dof);
                    }
                }
            }
        }
    }

    #[test]
    fn large_lengths() {
        let lens = [
            511,
            512,
            513,
            4095,
            4096,
            4097,
            (64 << 10) + 3,
            1 << 20,
            (1 << 20) + 5,
        ];
        for (name, f, pads) in paths() {
            let dst_offsets: &[usize] = if name.contains("to_shared") {
                &[0]
            } else {
                &[0, 3, 7]
            };
            for len in lens {
                for so in [0, 1, 5, 8] {
                    for &dof in dst_offsets {
                        check(name, f, pads, len, so, dof);
                    }
                }
            }
        }
    }

    /// A writer thread flips a shared buffer between all-zeros and all-ones with
    /// `copy_to_shared` while this thread copies it out with `copy_from_shared`: copies may
    /// mix the two (tearing is allowed), but every byte is one of the two values, and the
    /// accesses are race-free (both sides are assembly or atomics), so this is a test of the
    /// primitives, not undefined behaviour.
    #[test]
    fn racing_copies_give_old_or_new_bytes() {
        const LEN: usize = 4096 + 24;
        struct Shared(*mut u8);
        // SAFETY: the pointer is only used through the race-free copies, while the buffer
        // (owned by the test, joined before it drops) lives.
        unsafe impl Send for Shared {}
        let mut buf = vec![0u64; LEN / 8];
        // One pointer for both threads, taken once (the test reads the buffer only through it).
        let base = buf.as_mut_ptr().cast::<u8>();
        let shared = Shared(base);
        let stop = std::sync::Arc::new(crate::sync::AtomicU64::new(0));
        let writer = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let shared = shared;
                let (zeros, ones) = ([0u8; LEN], [0xFFu8; LEN]);
                let mut flips = 0u64;
                while stop.load(crate::sync::Ordering::Relaxed) == 0 {
                    let from = if flips % 2 == 0 { &ones } else { &zeros };
                    // SAFETY: `LEN` bytes at the 8-aligned buffer; `LEN` is a multiple of 8.
                    unsafe { super::copy_to_shared(shared.0, from.as_ptr(), LEN) };
                    flips += 1;
                }
                flips
            })
        };
        let mut out = vec![0u8; LEN];
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_millis(100) {
            for so in [0, 3, 8] {
                // Neither value the writer writes: a byte the copy missed fails below.
                out.fill(0x5A);
                // SAFETY: `LEN - so` bytes from offset `so` of the buffer, into `out`.
                unsafe { super::copy_from_shared(out.as_mut_ptr(), base.add(so), LEN - so) };
                let got = &out[..LEN - so];
                assert!(got.iter().all(|&b| b == 0 || b == 0xFF));
            }
        }
        stop.store(1, crate::sync::Ordering::Relaxed);
        let flips = writer.join().unwrap();
        assert!(flips > 0);
        drop(buf);
    }
}
