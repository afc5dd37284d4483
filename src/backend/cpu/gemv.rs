//! Matrix-vector products (`n = 1`) as hand-written AVX-512 (or AVX2/FMA) routines instead of calls into
//! `gemm`: `y = A·x` ([`ax`], the forward product of a linear model, `X @ w`) and
//! `y = Aᵀ·x` ([`atx`], its gradient, `Xᵀ @ g`), for `A` stored by rows (row stride `lda`,
//! contiguous along a row).
//!
//! A matrix-vector product reads each element of `A` once and does one multiply-add with it,
//! so it runs at the speed `A` streams from memory; `gemm` packs panels of `A` first (a second
//! pass over it) and its micro-kernels are shaped for `n` columns, not one.
//!
//! - [`ax`]: tiles of 8 rows, one 16-lane accumulator per row, the row's `x` vector loaded
//!   once per tile; the 8 accumulators are reduced to 8 sums together (halves, then two
//!   rounds of pairwise horizontal adds), so a row of `k = 64` costs 4 loads, 4 multiply-adds
//!   and a share of the reduction. The last `m mod 8` rows go one at a time.
//! - [`atx`]: `y[c] = Σ_p A[p, c]·x[p]` walks the rows of `A` in strips of at most 64
//!   columns (4 vectors): each row adds `x[p]` times its strip into the strip's accumulators,
//!   two sets of them (even and odd rows) to hide the multiply-add latency, added at the end.
//!   A product over many rows is split into `parts` contiguous ranges of rows; each part
//!   sums its rows into its own partial `y`, and the partials are added in part order. The
//!   partition depends only on the sizes and the thread count ([`parts_for`]), never on
//!   timing, so a result is the same bits on every run; running the same parts on one thread
//!   or several gives the same bits too.
//!
//! A partial vector at the end of a row (`k mod 16` for [`ax`], `cols mod 16` for [`atx`]) is
//! read with a masked load and added with a masked multiply-add that leaves the other lanes
//! as they are; masked lanes are never read.
//!
//! # Floats
//!
//! The accumulators start at `-0.0`, so the sign of a zero result is the interpreter's (a sum
//! of `-0` products is `-0`, a sum with a `+0` product is `+0`). Every product is added with a
//! fused multiply-add in a fixed order: a reassociation of the sum, as `gemm`'s, within the
//! tolerance of a float product (`tests/gemm.rs`). NaN and infinities propagate as in any order
//! of IEEE operations.
//!
//! Each routine has an AVX-512F form and an AVX2/FMA one (8 lanes: [`ax`]'s tail of
//! `k mod 8` products added after the lanes by scalar fused multiply-adds, [`atx`]'s strips
//! of up to 8 vectors with one set of accumulators beyond 4); the widest the CPU has runs, when
//! `TENJIT_CPU_ROUTINES` is not `0` ([`available`]); `gemm.rs` sends `f32` products with
//! `n = 1` here. The tests run every form the CPU has.
//!
//! # Measurements
//!
//! AMD EPYC Zen 4, 2 cores (shared with other work: minimum and median of 41 runs), `X` of
//! 65536 × 64 (16 MiB, read from L3), µs per product:
//!
//! | product | here | `gemm` |
//! |---|---|---|
//! | `X @ w`, 1 thread | 335–344 (median 361–364) | 410–412 (424–433) |
//! | `X @ w`, 2 threads | 118–136 (141) | 408–412 (419–432) |
//! | `X @ w` in blocks of 16384 rows on 2 threads (W5.big's row group) | 120–140 (144–149) | 208–221 (225–227) |
//! | `Xᵀ @ g`, 1 thread | 310–313 (323–348) | 356–360 (373–378) |
//! | `Xᵀ @ g`, 2 threads (2 parts of the rows) | 97 (113–114) | 351–359 (361–376) |
//! | `Xᵀ @ g` as 32-column halves, one per thread (W5.big's row group) | 267–279 (284–330) | 1111–1117 (1151–1158) |
//!
//! A plain read of `X` (a 64-lane sum compiled without AVX-512) took 379–382 µs on one thread
//! and 197–199 on two. A row group split W5.big's gradient by its output rows (columns of
//! `X`), so each thread read half of every row of `X`: 270–280 µs, against 97 for a split by
//! rows of `X` into two partial sums, as [`atx`] splits it; so such a product no longer leads
//! a row group (`tenjit_ir::kernel::schedule::leading_rows`). In a group of many rows it
//! joins as a product over parts instead (`tenjit_ir::kernel::parts`): [`atx`] over each part
//! of 1024 rows that the group's forward product has just read, one part per call.
//!
//! On one thread a quarter of `X` (4 MiB) takes 50–52 µs in [`ax`] and 43–44 in [`atx`]
//! (AVX2: 50–52 and 44–49; the whole of `X`, 329–361 and 313–315, against `gemm`'s 410 and
//! 356).
//! Tried and not kept: tiles of 16 rows reduced in 512-bit registers (53–54 µs) and software
//! prefetch of the next tile (61 µs).
//!
//! W5.big, ms per 100 epochs, min / median of alternating runs (the main binary, these
//! routines, and these with `TENJIT_CPU_ROUTINES=0`). With the gradient still in a row group,
//! 9 runs each: `fori_loop` 76.0 / 87.6 (main), 42.8 / 48.7 (here), 64.9 / 93.0 (off); `jit`
//! 67.8 / 91.1, 46.1 / 53.5, 69.7 / 92.5; `lazy` 83.3 / 97.0, 49.2 / 59.7, 84.2 / 88.1. With
//! the gradient out of the group, 7 runs each: `fori_loop` 72.4 / 79.1 (main), 26.2 / 28.7
//! (here), 70.4 / 95.4 (off); `jit` 74.6 / 82.1, 33.4 / 35.8, 68.6 / 91.4; `lazy`
//! 85.0 / 90.5, 38.2 / 41.5, 75.2 / 102.1. Merged into main at 42ea35a, on a quieter machine
//! (load 1.6–1.8), 6 alternating runs: `fori_loop` 68.8 / 71.7 (main) and 22.4 / 23.2
//! (merged); `jit` 72.4 / 78.1 and 27.2 / 28.2; `lazy` 77.0 / 82.3 and 33.2 / 34.2. NumPy
//! with hand-written gradients: 70.9 on this machine. W6 has no `n = 1` product and is unchanged (6 pairs, `jit` 1.029 / 1.055 ms on
//! main against 1.033 / 1.051).

use rayon::prelude::*;

/// Products with fewer multiply-adds than this run on the calling thread: waking a worker
/// costs a few µs, about what a core needs to stream 256 KiB.
pub(super) const PARALLEL_MIN_WORK: usize = 1 << 17;

/// An instruction set the routines are written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Isa {
    /// AVX-512F: 16 lanes, masked tails.
    Avx512,
    /// AVX2 and FMA: 8 lanes, tails by masked loads (`ax`'s by scalar multiply-adds).
    Avx2,
}

/// The instruction sets this CPU has, the widest first.
fn detected() -> Vec<Isa> {
    let mut isas = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            isas.push(Isa::Avx512);
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            isas.push(Isa::Avx2);
        }
    }
    isas
}

/// The instruction set the routines run with: the widest this CPU has, none when it has
/// neither or `TENJIT_CPU_ROUTINES` is `0` (checked once).
fn isa() -> Option<Isa> {
    static ISA: std::sync::OnceLock<Option<Isa>> = std::sync::OnceLock::new();
    *ISA.get_or_init(|| detected().first().copied().filter(|_| super::routines_enabled()))
}

/// Whether the CPU has AVX-512F or AVX2 and FMA, and the routines are on.
pub(super) fn available() -> bool {
    isa().is_some()
}

/// The number of parts a product of `rows` rows and `work` multiply-adds is split into on
/// `threads` threads: 1 below [`PARALLEL_MIN_WORK`], else one per thread (at most one per row).
pub(super) fn parts_for(rows: usize, work: usize, threads: usize) -> usize {
    if work < PARALLEL_MIN_WORK {
        1
    } else {
        threads.clamp(1, rows.max(1))
    }
}

/// `y = A·x` for the `m × k` matrix `A` (row `i` at `a[i·lda .. i·lda + k]`) on up to
/// `threads` threads (each writes its own rows of `y`, so the bits do not depend on them).
///
/// Panics unless the CPU has the routine ([`available`]) and the slices hold the operands:
/// `a` at least `(m - 1)·lda + k` elements when `m, k > 0`, `x` at least `k`, `y` exactly `m`.
pub(super) fn ax(m: usize, k: usize, a: &[f32], lda: usize, x: &[f32], y: &mut [f32], threads: usize) {
    let isa = isa().expect("gemv run where the CPU cannot");
    ax_on(isa, m, k, a, lda, x, y, threads);
}

/// [`ax`] with the routine for `isa`, which the CPU must have.
#[allow(clippy::too_many_arguments)]
fn ax_on(isa: Isa, m: usize, k: usize, a: &[f32], lda: usize, x: &[f32], y: &mut [f32], threads: usize) {
    assert!(detected().contains(&isa), "gemv run with {isa:?} where the CPU cannot");
    assert!(y.len() == m && x.len() >= k, "gemv: {m} outputs in {}, {k} inputs in {}", y.len(), x.len());
    if m == 0 {
        return;
    }
    if k == 0 {
        y.fill(0.0);
        return;
    }
    assert!(a.len() >= (m - 1) * lda + k, "gemv: a {m}x{k} matrix (lda {lda}) in {} elements", a.len());
    let parts = parts_for(m, m.saturating_mul(k), threads);
    let chunk = m.div_ceil(parts);
    let task = |(t, ys): (usize, &mut [f32])| {
        let a = &a[t * chunk * lda..];
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU has `isa` (the assert above); rows `i < ys.len()` of this part,
        // `a[i·lda .. i·lda + k]`, lie inside `a` (the assert above, for the part's rows
        // `t·chunk + i < m`), `x` holds `k` elements and `ys` its rows' outputs.
        unsafe {
            match isa {
                Isa::Avx512 => x86::ax(ys.len(), k, a.as_ptr(), lda, x.as_ptr(), ys.as_mut_ptr()),
                Isa::Avx2 => avx2::ax(ys.len(), k, a.as_ptr(), lda, x.as_ptr(), ys.as_mut_ptr()),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("no {isa:?} off x86_64: {}", a.len() + ys.len());
    };
    if parts <= 1 {
        task((0, y));
    } else {
        y.par_chunks_mut(chunk).enumerate().for_each(task);
    }
}

/// `y = Aᵀ·x` for the `rows × cols` matrix `A` (row `p` at `a[p·lda .. p·lda + cols]`), so
/// `y[c] = Σ_p A[p, c]·x[p]`, split into [`parts_for`] parts run on up to `threads` threads.
///
/// Panics unless the CPU has the routine ([`available`]) and the slices hold the operands:
/// `a` at least `(rows - 1)·lda + cols` elements when `rows, cols > 0`, `x` at least `rows`,
/// `y` exactly `cols`.
pub(super) fn atx(rows: usize, cols: usize, a: &[f32], lda: usize, x: &[f32], y: &mut [f32], threads: usize) {
    let isa = isa().expect("gemv run where the CPU cannot");
    let parts = parts_for(rows, rows.saturating_mul(cols), threads);
    atx_parts(isa, rows, cols, a, lda, x, y, parts, threads);
}

/// [`atx`] with the routine for `isa` (which the CPU must have) and the rows split into
/// `parts` contiguous ranges (the last may be shorter), each summed into its own partial
/// vector, the partials added in order; the parts run on up to `threads` threads, which does
/// not change the result.
#[allow(clippy::too_many_arguments)]
fn atx_parts(
    isa: Isa,
    rows: usize,
    cols: usize,
    a: &[f32],
    lda: usize,
    x: &[f32],
    y: &mut [f32],
    parts: usize,
    threads: usize,
) {
    assert!(detected().contains(&isa), "gemv run with {isa:?} where the CPU cannot");
    assert!(
        y.len() == cols && x.len() >= rows,
        "gemv: {cols} outputs in {}, {rows} inputs in {}",
        y.len(),
        x.len()
    );
    if cols == 0 {
        return;
    }
    if rows == 0 {
        y.fill(0.0);
        return;
    }
    assert!(
        a.len() >= (rows - 1) * lda + cols,
        "gemv: a {rows}x{cols} matrix (lda {lda}) in {} elements",
        a.len()
    );
    let parts = parts.clamp(1, rows);
    let chunk = rows.div_ceil(parts);
    let part = |t: usize, ys: &mut [f32]| {
        let (r0, r1) = (t * chunk, ((t + 1) * chunk).min(rows));
        if r0 >= r1 {
            ys.fill(-0.0);
            return;
        }
        let a = &a[r0 * lda..];
        let x = &x[r0..r1];
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU has `isa` (the assert above); rows `r0 + p` (`p < r1 - r0`) of `A`,
        // `a[(r0 + p)·lda .. + cols]`, lie inside `a` (the assert above), `x[r0..r1]` holds
        // one element per row and `ys` has `cols` elements.
        unsafe {
            match isa {
                Isa::Avx512 => x86::atx(r1 - r0, cols, a.as_ptr(), lda, x.as_ptr(), ys.as_mut_ptr()),
                Isa::Avx2 => avx2::atx(r1 - r0, cols, a.as_ptr(), lda, x.as_ptr(), ys.as_mut_ptr()),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("no {isa:?} off x86_64: {}", a.len() + x.len() + ys.len());
    };
    if parts == 1 {
        part(0, y);
        return;
    }
    let mut partial = vec![0f32; parts * cols];
    if threads > 1 {
        partial.par_chunks_mut(cols).enumerate().for_each(|(t, ys)| part(t, ys));
    } else {
        partial.chunks_mut(cols).enumerate().for_each(|(t, ys)| part(t, ys));
    }
    y.copy_from_slice(&partial[..cols]);
    for ys in partial.chunks(cols).skip(1) {
        y.iter_mut().zip(ys).for_each(|(o, &v)| *o += v);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// The mask of the first `n` lanes (`n ≤ 16`).
    fn lanes(n: usize) -> __mmask16 {
        ((1u32 << n) - 1) as __mmask16
    }

    /// See [`super::ax`].
    ///
    /// # Safety
    ///
    /// AVX-512F is available; `k > 0`; rows `i < m` of `a` (`a + i·lda`, `k` elements),
    /// `x[0..k]` and `y[0..m]` are valid.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn ax(m: usize, k: usize, a: *const f32, lda: usize, x: *const f32, y: *mut f32) {
        let mut i = 0;
        while i + 8 <= m {
            // SAFETY: rows i..i + 8 are below m.
            unsafe { rows8(k, a.add(i * lda), lda, x, y.add(i)) };
            i += 8;
        }
        while i < m {
            // SAFETY: row i is below m.
            unsafe { *y.add(i) = _mm512_reduce_add_ps(row(k, a.add(i * lda), x)) };
            i += 1;
        }
    }

    /// The 16 lane sums of row `a[0..k]` times `x[0..k]`.
    ///
    /// # Safety
    ///
    /// As [`ax`], for this row.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn row(k: usize, a: *const f32, x: *const f32) -> __m512 {
        let full = k / 16 * 16;
        let (mut s0, mut s1) = (_mm512_set1_ps(-0.0), _mm512_set1_ps(-0.0));
        let mut q = 0;
        while q + 32 <= full {
            // SAFETY: q + 32 <= k.
            unsafe {
                s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a.add(q)), _mm512_loadu_ps(x.add(q)), s0);
                s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a.add(q + 16)), _mm512_loadu_ps(x.add(q + 16)), s1);
            }
            q += 32;
        }
        if q < full {
            // SAFETY: q + 16 <= k.
            unsafe { s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a.add(q)), _mm512_loadu_ps(x.add(q)), s0) };
        }
        if full < k {
            let mask = lanes(k - full);
            // SAFETY: the masked lanes are elements full..k; the others are not read.
            unsafe {
                let av = _mm512_maskz_loadu_ps(mask, a.add(full));
                let xv = _mm512_maskz_loadu_ps(mask, x.add(full));
                s1 = _mm512_mask3_fmadd_ps(av, xv, s1, mask);
            }
        }
        _mm512_add_ps(s0, s1)
    }

    /// `y[0..8]` for rows `0..8` of `a` (row stride `lda`).
    ///
    /// # Safety
    ///
    /// As [`ax`], for these 8 rows.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn rows8(k: usize, a: *const f32, lda: usize, x: *const f32, y: *mut f32) {
        let full = k / 16 * 16;
        let mut acc = [_mm512_set1_ps(-0.0); 8];
        let mut q = 0;
        while q < full {
            // SAFETY: q + 16 <= k, inside x and every row.
            unsafe {
                let xv = _mm512_loadu_ps(x.add(q));
                for (r, s) in acc.iter_mut().enumerate() {
                    *s = _mm512_fmadd_ps(_mm512_loadu_ps(a.add(r * lda + q)), xv, *s);
                }
            }
            q += 16;
        }
        if full < k {
            let mask = lanes(k - full);
            // SAFETY: the masked lanes are elements full..k; the others are not read.
            unsafe {
                let xv = _mm512_maskz_loadu_ps(mask, x.add(full));
                for (r, s) in acc.iter_mut().enumerate() {
                    let av = _mm512_maskz_loadu_ps(mask, a.add(r * lda + full));
                    *s = _mm512_mask3_fmadd_ps(av, xv, *s, mask);
                }
            }
        }
        // Each accumulator to 8 lanes (its halves added), then pairwise horizontal adds:
        // `h01 = [r0 r0 r1 r1 | r0 r0 r1 r1]`-style partial sums, down to `[r0..r3 | r0..r3]`
        // and `[r4..r7 | r4..r7]`, whose 128-bit halves are added.
        let half = |v: __m512| {
            let lo = _mm512_castps512_ps256(v);
            let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
            _mm256_add_ps(lo, hi)
        };
        let h = acc.map(half);
        let t0 = _mm256_hadd_ps(h[0], h[1]);
        let t1 = _mm256_hadd_ps(h[2], h[3]);
        let t2 = _mm256_hadd_ps(h[4], h[5]);
        let t3 = _mm256_hadd_ps(h[6], h[7]);
        let u0 = _mm256_hadd_ps(t0, t1);
        let u1 = _mm256_hadd_ps(t2, t3);
        let lo = _mm256_permute2f128_ps(u0, u1, 0x20);
        let hi = _mm256_permute2f128_ps(u0, u1, 0x31);
        // SAFETY: y[0..8] are the outputs of these rows.
        unsafe { _mm256_storeu_ps(y, _mm256_add_ps(lo, hi)) };
    }

    /// See [`super::atx`], for one part of the rows.
    ///
    /// # Safety
    ///
    /// AVX-512F is available; `rows, cols > 0`; rows `p < rows` of `a` (`a + p·lda`, `cols`
    /// elements), `x[0..rows]` and `y[0..cols]` are valid.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn atx(
        rows: usize,
        cols: usize,
        a: *const f32,
        lda: usize,
        x: *const f32,
        y: *mut f32,
    ) {
        let mut c = 0;
        while c < cols {
            let w = (cols - c).min(64);
            // SAFETY: columns c..c + w are below cols.
            unsafe {
                match w.div_ceil(16) {
                    1 => strip::<1>(rows, w, a.add(c), lda, x, y.add(c)),
                    2 => strip::<2>(rows, w, a.add(c), lda, x, y.add(c)),
                    3 => strip::<3>(rows, w, a.add(c), lda, x, y.add(c)),
                    _ => strip::<4>(rows, w, a.add(c), lda, x, y.add(c)),
                }
            }
            c += w;
        }
    }

    /// `y[0..w]` for the `w` columns (`16·(V − 1) < w ≤ 16·V`) starting at `a`: every row
    /// adds `x[p]` times its strip, even rows into one set of accumulators, odd rows into
    /// another.
    ///
    /// # Safety
    ///
    /// As [`atx`], for these columns.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn strip<const V: usize>(
        rows: usize,
        w: usize,
        a: *const f32,
        lda: usize,
        x: *const f32,
        y: *mut f32,
    ) {
        let mut mask = [lanes(16); V];
        mask[V - 1] = lanes(w - 16 * (V - 1));
        let zero = _mm512_set1_ps(-0.0);
        let (mut even, mut odd) = ([zero; V], [zero; V]);
        let mut p = 0;
        while p + 2 <= rows {
            // SAFETY: rows p and p + 1 are below rows; the masked lanes are columns below w.
            unsafe {
                let x0 = _mm512_set1_ps(*x.add(p));
                let x1 = _mm512_set1_ps(*x.add(p + 1));
                let (r0, r1) = (a.add(p * lda), a.add((p + 1) * lda));
                for v in 0..V {
                    let a0 = _mm512_maskz_loadu_ps(mask[v], r0.add(16 * v));
                    even[v] = _mm512_mask3_fmadd_ps(a0, x0, even[v], mask[v]);
                    let a1 = _mm512_maskz_loadu_ps(mask[v], r1.add(16 * v));
                    odd[v] = _mm512_mask3_fmadd_ps(a1, x1, odd[v], mask[v]);
                }
            }
            p += 2;
        }
        if p < rows {
            // SAFETY: row p is below rows.
            unsafe {
                let x0 = _mm512_set1_ps(*x.add(p));
                let r0 = a.add(p * lda);
                for v in 0..V {
                    let a0 = _mm512_maskz_loadu_ps(mask[v], r0.add(16 * v));
                    even[v] = _mm512_mask3_fmadd_ps(a0, x0, even[v], mask[v]);
                }
            }
        }
        for v in 0..V {
            // SAFETY: the masked lanes are y's columns below w.
            unsafe { _mm512_mask_storeu_ps(y.add(16 * v), mask[v], _mm512_add_ps(even[v], odd[v])) };
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// The integer mask of the first `n` of 8 lanes (`n ≤ 8`), for masked loads and stores.
    #[target_feature(enable = "avx2,fma")]
    fn lanes(n: usize) -> __m256i {
        let n = n as i32;
        _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
    }

    /// See [`super::ax`]: as the AVX-512 routine with 8-lane vectors; the tail of `k mod 8`
    /// products is added after the lanes, one fused multiply-add each.
    ///
    /// # Safety
    ///
    /// AVX2 and FMA are available; `k > 0`; rows `i < m` of `a` (`a + i·lda`, `k` elements),
    /// `x[0..k]` and `y[0..m]` are valid.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn ax(m: usize, k: usize, a: *const f32, lda: usize, x: *const f32, y: *mut f32) {
        let full = k / 8 * 8;
        let mut i = 0;
        while i + 8 <= m {
            let mut acc = [_mm256_set1_ps(-0.0); 8];
            let mut q = 0;
            while q < full {
                // SAFETY: rows i..i + 8 are below m and q + 8 <= k.
                unsafe {
                    let xv = _mm256_loadu_ps(x.add(q));
                    for (r, s) in acc.iter_mut().enumerate() {
                        *s = _mm256_fmadd_ps(_mm256_loadu_ps(a.add((i + r) * lda + q)), xv, *s);
                    }
                }
                q += 8;
            }
            let t0 = _mm256_hadd_ps(acc[0], acc[1]);
            let t1 = _mm256_hadd_ps(acc[2], acc[3]);
            let t2 = _mm256_hadd_ps(acc[4], acc[5]);
            let t3 = _mm256_hadd_ps(acc[6], acc[7]);
            let u0 = _mm256_hadd_ps(t0, t1);
            let u1 = _mm256_hadd_ps(t2, t3);
            let lo = _mm256_permute2f128_ps(u0, u1, 0x20);
            let hi = _mm256_permute2f128_ps(u0, u1, 0x31);
            let mut sums = [0f32; 8];
            // SAFETY: `sums` holds 8 floats.
            unsafe { _mm256_storeu_ps(sums.as_mut_ptr(), _mm256_add_ps(lo, hi)) };
            for (r, s) in sums.iter_mut().enumerate() {
                for t in full..k {
                    // SAFETY: t < k, inside row i + r and x.
                    *s = unsafe { (*a.add((i + r) * lda + t)).mul_add(*x.add(t), *s) };
                }
                // SAFETY: i + r < m.
                unsafe { *y.add(i + r) = *s };
            }
            i += 8;
        }
        while i < m {
            let mut acc = _mm256_set1_ps(-0.0);
            let mut q = 0;
            while q < full {
                // SAFETY: row i is below m and q + 8 <= k.
                unsafe {
                    acc = _mm256_fmadd_ps(_mm256_loadu_ps(a.add(i * lda + q)), _mm256_loadu_ps(x.add(q)), acc)
                };
                q += 8;
            }
            let s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            let mut s = _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)));
            for t in full..k {
                // SAFETY: t < k, inside row i and x.
                s = unsafe { (*a.add(i * lda + t)).mul_add(*x.add(t), s) };
            }
            // SAFETY: i < m.
            unsafe { *y.add(i) = s };
            i += 1;
        }
    }

    /// See [`super::atx`], for one part of the rows: strips of at most 64 columns (8
    /// vectors, so that a row of 64 floats is read in one pass; strips of 32 columns read it
    /// in two and took 81 µs for a quarter of `X` against 44), the last vector of a strip
    /// loaded and stored under a mask (its masked lanes compute garbage that is never stored).
    ///
    /// # Safety
    ///
    /// AVX2 and FMA are available; `rows, cols > 0`; rows `p < rows` of `a` (`a + p·lda`,
    /// `cols` elements), `x[0..rows]` and `y[0..cols]` are valid.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn atx(
        rows: usize,
        cols: usize,
        a: *const f32,
        lda: usize,
        x: *const f32,
        y: *mut f32,
    ) {
        let mut c = 0;
        while c < cols {
            let w = (cols - c).min(64);
            // SAFETY: columns c..c + w are below cols.
            unsafe {
                match w.div_ceil(8) {
                    1 => strip::<1, 2>(rows, w, a.add(c), lda, x, y.add(c)),
                    2 => strip::<2, 2>(rows, w, a.add(c), lda, x, y.add(c)),
                    3 => strip::<3, 2>(rows, w, a.add(c), lda, x, y.add(c)),
                    4 => strip::<4, 2>(rows, w, a.add(c), lda, x, y.add(c)),
                    5 => strip::<5, 1>(rows, w, a.add(c), lda, x, y.add(c)),
                    6 => strip::<6, 1>(rows, w, a.add(c), lda, x, y.add(c)),
                    7 => strip::<7, 1>(rows, w, a.add(c), lda, x, y.add(c)),
                    _ => strip::<8, 1>(rows, w, a.add(c), lda, x, y.add(c)),
                }
            }
            c += w;
        }
    }

    /// `y[0..w]` for the `w` columns (`8·(V − 1) < w ≤ 8·V`) starting at `a`: with `S = 2`
    /// sets of accumulators, even rows into one and odd rows into the other (to hide the
    /// multiply-add latency); with `S = 1` (wide strips, whose `V` accumulators already do),
    /// every row into one. Only a partial last vector is loaded
    /// under a mask: masked loads (`vmaskmovps`) are slow on AMD's cores (a quarter of `X`
    /// took 77 µs with every load masked).
    ///
    /// # Safety
    ///
    /// As [`atx`], for these columns.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn strip<const V: usize, const S: usize>(
        rows: usize,
        w: usize,
        a: *const f32,
        lda: usize,
        x: *const f32,
        y: *mut f32,
    ) {
        let mut mask = [lanes(8); V];
        mask[V - 1] = lanes(w - 8 * (V - 1));
        let partial = w < 8 * V;
        // SAFETY (for callers of `load`): a full vector `v` lies inside the strip, a partial
        // one is read under its mask.
        let load = |row: *const f32, v: usize| unsafe {
            if partial && v + 1 == V {
                _mm256_maskload_ps(row.add(8 * v), mask[v])
            } else {
                _mm256_loadu_ps(row.add(8 * v))
            }
        };
        let zero = _mm256_set1_ps(-0.0);
        let (mut even, mut odd) = ([zero; V], [zero; V]);
        let mut p = 0;
        while S == 2 && p + 2 <= rows {
            // SAFETY: rows p and p + 1 are below rows; the masked lanes are columns below w.
            unsafe {
                let x0 = _mm256_set1_ps(*x.add(p));
                let x1 = _mm256_set1_ps(*x.add(p + 1));
                let (r0, r1) = (a.add(p * lda), a.add((p + 1) * lda));
                for v in 0..V {
                    even[v] = _mm256_fmadd_ps(load(r0, v), x0, even[v]);
                    odd[v] = _mm256_fmadd_ps(load(r1, v), x1, odd[v]);
                }
            }
            p += 2;
        }
        while p < rows {
            // SAFETY: row p is below rows.
            unsafe {
                let x0 = _mm256_set1_ps(*x.add(p));
                let r0 = a.add(p * lda);
                for (v, e) in even.iter_mut().enumerate() {
                    *e = _mm256_fmadd_ps(load(r0, v), x0, *e);
                }
            }
            p += 1;
        }
        for v in 0..V {
            // SAFETY: the masked lanes are y's columns below w.
            unsafe { _mm256_maskstore_ps(y.add(8 * v), mask[v], _mm256_add_ps(even[v], odd[v])) };
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::nt::grid;
    use super::{atx, atx_parts, available, ax_on, detected, parts_for, Isa};

    /// A value off the grid, for the tolerance checks.
    fn rough(seed: usize) -> f32 {
        ((seed as f32 * 0.618_034).fract() - 0.5) * 3.0
    }

    /// `Σ_p a(i, p)·x(p)` in `f64` and `Σ_p |a(i, p)·x(p)|`.
    pub(in super::super) fn reference(len: usize, term: impl Fn(usize) -> (f32, f32)) -> (f64, f64) {
        (0..len).map(term).fold((0.0, 0.0), |(s, t), (a, x)| {
            let v = a as f64 * x as f64;
            (s + v, t + v.abs())
        })
    }

    /// The instruction sets to test: every one the CPU has, none when the routines are off.
    fn isas() -> Vec<Isa> {
        if !available() {
            eprintln!("gemv: this CPU has no AVX-512F nor AVX2 (or TENJIT_CPU_ROUTINES=0): nothing to test");
            return Vec::new();
        }
        detected()
    }

    const SIZES: [usize; 14] = [1, 2, 7, 8, 9, 15, 16, 17, 31, 33, 64, 65, 129, 300];

    #[test]
    fn ax_agrees_with_f64_sums_bit_for_bit_on_a_grid() {
        for (isa, m) in isas().into_iter().flat_map(|isa| SIZES.map(|m| (isa, m))) {
            for k in SIZES {
                let lda = k + m % 3;
                let a: Vec<f32> = (0..(m - 1) * lda + k).map(|i| grid(i + 1)).collect();
                let x: Vec<f32> = (0..k).map(|i| grid(3 * i + 2)).collect();
                let want: Vec<f32> =
                    (0..m).map(|i| reference(k, |p| (a[i * lda + p], x[p])).0 as f32).collect();
                for threads in [1, 2] {
                    let mut y = vec![f32::NAN; m];
                    ax_on(isa, m, k, &a, lda, &x, &mut y, threads);
                    assert_eq!(y, want, "{isa:?} m {m} k {k} lda {lda} threads {threads}");
                }
            }
        }
    }

    #[test]
    fn atx_agrees_with_f64_sums_bit_for_bit_on_a_grid() {
        for (isa, rows) in isas().into_iter().flat_map(|isa| SIZES.map(|r| (isa, r))) {
            for cols in SIZES {
                let lda = cols + rows % 3;
                let a: Vec<f32> = (0..(rows - 1) * lda + cols).map(|i| grid(i + 1)).collect();
                let x: Vec<f32> = (0..rows).map(|i| grid(3 * i + 2)).collect();
                let want: Vec<f32> =
                    (0..cols).map(|c| reference(rows, |p| (a[p * lda + c], x[p])).0 as f32).collect();
                for parts in [1, 2, 3] {
                    let mut y = vec![f32::NAN; cols];
                    atx_parts(isa, rows, cols, &a, lda, &x, &mut y, parts, 2);
                    assert_eq!(y, want, "{isa:?} rows {rows} cols {cols} lda {lda} parts {parts}");
                }
            }
        }
    }

    /// W5.big's shapes, off the grid: the forward `X @ w` and the gradient `Xᵀ @ g` of a
    /// 65536 × 64 `X` (and the gradient's 32-column halves with the row stride of `X`, as a
    /// row group runs them), within the float tolerance of `tests/gemm.rs`.
    #[test]
    fn large_products_are_within_tolerance_of_f64() {
        for isa in isas() {
            large_products_on(isa);
        }
    }

    fn large_products_on(isa: Isa) {
        let (m, k) = (65536, 64);
        let a: Vec<f32> = (0..m * k).map(rough).collect();
        let v: Vec<f32> = (0..m).map(|i| rough(7 * i + 1)).collect();
        let close = |got: f32, (want, scale): (f64, f64), len: usize| {
            (got as f64 - want).abs() <= 1e-5 * (len as f64).sqrt() * scale
        };
        let mut y = vec![f32::NAN; m];
        ax_on(isa, m, k, &a, k, &v[..k], &mut y, 2);
        for (i, &got) in y.iter().enumerate() {
            assert!(close(got, reference(k, |p| (a[i * k + p], v[p])), k), "{isa:?} row {i}: {got}");
        }
        for (c0, cols) in [(0, 64), (0, 32), (32, 32), (5, 50)] {
            let mut g = vec![f32::NAN; cols];
            atx_parts(isa, m, cols, &a[c0..], k, &v, &mut g, parts_for(m, m * cols, 2), 2);
            for (c, &got) in g.iter().enumerate() {
                let want = reference(m, |p| (a[p * k + c0 + c], v[p]));
                assert!(close(got, want, m), "{isa:?} column {}: {got} against {want:?}", c0 + c);
            }
        }
    }

    /// The parts of a transposed product give the same bits on one thread and on several,
    /// and the split [`atx`] picks for 2 threads is one of them.
    #[test]
    fn threads_do_not_change_the_bits() {
        for isa in isas() {
            threads_do_not_change_the_bits_on(isa);
        }
    }

    fn threads_do_not_change_the_bits_on(isa: Isa) {
        let (rows, cols) = (20000, 70);
        let a: Vec<f32> = (0..rows * cols).map(rough).collect();
        let x: Vec<f32> = (0..rows).map(|i| rough(3 * i + 1)).collect();
        let run = |parts: usize, threads: usize| {
            let mut y = vec![f32::NAN; cols];
            atx_parts(isa, rows, cols, &a, cols, &x, &mut y, parts, threads);
            y
        };
        let bits = |y: Vec<f32>| y.into_iter().map(f32::to_bits).collect::<Vec<u32>>();
        for parts in [2, 3, 7] {
            assert_eq!(bits(run(parts, 1)), bits(run(parts, 2)), "{isa:?} parts {parts}");
        }
        if super::isa() == Some(isa) {
            let mut y = vec![f32::NAN; cols];
            atx(rows, cols, &a, cols, &x, &mut y, 2);
            assert_eq!(bits(y), bits(run(2, 1)));
        }
        // The forward product writes each row on one thread: the same bits for any count.
        let (mut y1, mut y2) = (vec![f32::NAN; rows], vec![f32::NAN; rows]);
        ax_on(isa, rows, cols, &a, cols, &x[..cols], &mut y1, 1);
        ax_on(isa, rows, cols, &a, cols, &x[..cols], &mut y2, 2);
        assert_eq!(bits(y1), bits(y2));
    }

    #[test]
    fn signed_zeros_nan_and_infinities() {
        for isa in isas() {
            signed_zeros_nan_and_infinities_on(isa);
        }
    }

    fn signed_zeros_nan_and_infinities_on(isa: Isa) {
        // Rows of `A` (ax) or columns (atx): 0 every product -0 (the sum is -0); 1 a +0 among
        // -0 products (+0); 2 a NaN; 3 an infinity; 4 both infinities (NaN). k = 19 has a
        // masked tail of 3 lanes, and the special values sit in it and in the full vectors.
        let k = 19;
        let special = |mut row: Vec<f32>, r: usize| {
            match r {
                0 => row.fill(-0.0),
                1 => {
                    row.fill(-0.0);
                    row[17] = 0.0;
                }
                2 => row[18] = f32::NAN,
                3 => row[1] = f32::INFINITY,
                4 => {
                    row[2] = f32::INFINITY;
                    row[17] = f32::NEG_INFINITY;
                }
                _ => {}
            }
            row
        };
        let rows: Vec<Vec<f32>> = (0..5).map(|r| special(vec![0.5; k], r)).collect();
        let check = |y: &[f32]| {
            assert!(y[0] == 0.0 && y[0].is_sign_negative(), "{y:?}");
            assert!(y[1] == 0.0 && y[1].is_sign_positive(), "{y:?}");
            assert!(y[2].is_nan() && y[4].is_nan(), "{y:?}");
            assert_eq!(y[3], f32::INFINITY, "{y:?}");
        };
        // ax over 5 rows (the 1-row path) and over the same rows repeated to 10 and 20 (the
        // 8-row path, twice).
        for copies in [1, 2, 4] {
            let a: Vec<f32> = (0..copies).flat_map(|_| rows.concat()).collect();
            let mut y = vec![1.0; 5 * copies];
            ax_on(isa, 5 * copies, k, &a, k, &vec![1.0; k], &mut y, 1);
            check(&y);
            check(&y[5 * (copies - 1)..]);
        }
        // atx: column c of A is row c above, with A's row stride 7 (two masked lanes).
        let lda = 7;
        let mut a = vec![0.0; k * lda];
        for (c, row) in rows.iter().enumerate() {
            for (p, &v) in row.iter().enumerate() {
                a[p * lda + c] = v;
            }
        }
        for parts in [1, 2] {
            let mut y = vec![1.0; 5];
            atx_parts(isa, k, 5, &a, lda, &vec![1.0; k], &mut y, parts, 1);
            check(&y);
        }
    }
}
