//! The skinny product `x @ w.T` (of `skinny.rs`) with AVX-512: 16-lane dot products, tiles
//! of 4 rows of `x` by 4 rows of `w`, and the 16 sums of a tile reduced together.
//!
//! The AVX2 routine ends each of its 12 dot products with a horizontal sum of 8 lanes (4
//! shuffles and 4 adds each); at `k = 128` that is as much work as the 16 fused multiply-adds
//! before it, which made it slower than `gemm` there. Here a tile keeps 16 accumulators of 16
//! lanes (16 of the 32 registers, with 4 loads of `w` and 4 of `x` per step of 16 products)
//! and reduces them as a tree: pairs of accumulators interleaved and added, then pairs of those,
//! then 128-bit quarters exchanged and added twice, 30 shuffles and 15 adds for the 16 sums,
//! which come out as one vector holding the 4 × 4 outputs, row by row. The tail of `k mod 16`
//! products is one masked step (masked loads, and fused multiply-adds that leave the lanes
//! past `k` as they were), so no product is added one at a time.
//!
//! The tiles are bound by their fused multiply-adds (one 16-lane FMA a cycle on Zen 4): the
//! sums cost ~6% at `k = 128` (32 rows, `n = 384`: 30.5 µs, while as many products with
//! `k = 512` take 28.7), and running the tiles by blocks of `x` by panels of `w` that stay
//! together in L1 measured no faster, so the rows of `w` are read from L2 as they are.
//!
//! The accumulators start at `-0.0`, so a sum of `-0` products is `-0`, as in the
//! interpreter; each lane adds its products in order, then the 16 lanes are added as a tree:
//! a reassociation of the sum, as `gemm`'s, within the tolerance of a float product. NaN and
//! infinities propagate as in any order of IEEE operations.

/// Whether the CPU has AVX-512F and the routines are on (checked once).
pub(super) fn available() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        let has = std::is_x86_feature_detected!("avx512f");
        #[cfg(not(target_arch = "x86_64"))]
        let has = false;
        has && super::routines_enabled()
    })
}

/// Computes `nt` into `out` with AVX-512 (for any sizes). Panics unless the CPU has it
/// ([`available`]) and the slices hold the operands: `x` at least `(m - 1)·lda + k` elements,
/// `w` `(n - 1)·ldw + k`, `out` `m·n`.
pub(super) fn run(nt: &super::nt::Nt, x: &[f32], w: &[f32], out: &mut [f32]) {
    let super::nt::Nt { m, n, k, lda, ldw } = *nt;
    assert!(available() && m > 0 && n > 0 && k > 0, "AVX-512 skinny product run where it cannot");
    assert!(x.len() >= (m - 1) * lda + k && w.len() >= (n - 1) * ldw + k && out.len() == m * n);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `available` says the CPU has AVX-512F; the asserts above put every access of
    // `nt` (rows `i < m` of `x` at `i·lda .. i·lda + k`, rows `j < n` of `w` at
    // `j·ldw .. j·ldw + k`, `out[i·n + j]`) inside the slices.
    unsafe {
        x86::nt(nt, x.as_ptr(), w.as_ptr(), out.as_mut_ptr())
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("available() is false off x86_64");
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::super::nt::Nt;
    use std::arch::x86_64::*;

    /// See [`super::run`].
    ///
    /// # Safety
    ///
    /// AVX-512F is available; rows `i < m` of `x` (`x + i·lda`, `k` elements), rows `j < n`
    /// of `w` (`w + j·ldw`, `k` elements) and `out[0 .. m·n]` are valid.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn nt(p: &Nt, x: *const f32, w: *const f32, out: *mut f32) {
        let mut i = 0;
        while i < p.m {
            let rows = (p.m - i).min(4);
            // SAFETY: rows i..i + rows of x are inside the operand (the caller's contract).
            unsafe {
                match rows {
                    4 => row_of_tiles::<4>(p, i, x, w, out),
                    3 => row_of_tiles::<3>(p, i, x, w, out),
                    2 => row_of_tiles::<2>(p, i, x, w, out),
                    _ => row_of_tiles::<1>(p, i, x, w, out),
                }
            }
            i += rows;
        }
    }

    /// The outputs of rows `i .. i + R`, tile by tile of 4 columns (fewer at the end).
    ///
    /// # Safety
    ///
    /// As [`nt`], with `i + R <= m`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn row_of_tiles<const R: usize>(p: &Nt, i: usize, x: *const f32, w: *const f32, out: *mut f32) {
        let mut j = 0;
        while j < p.n {
            let cols = (p.n - j).min(4);
            // SAFETY: rows j..j + cols of w are inside the operand, and so are the outputs.
            unsafe {
                match cols {
                    4 => tile::<R, 4>(p, i, j, x, w, out),
                    3 => tile::<R, 3>(p, i, j, x, w, out),
                    2 => tile::<R, 2>(p, i, j, x, w, out),
                    _ => tile::<R, 1>(p, i, j, x, w, out),
                }
            }
            j += cols;
        }
    }

    /// The `R × C` block of outputs at rows `i..`, columns `j..` (`R, C <= 4`): `R·C`
    /// accumulators over the `k / 16` full vectors of each dot product and a masked tail, then
    /// one reduction of all of them.
    ///
    /// # Safety
    ///
    /// As [`nt`], for the rows and columns of this block.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn tile<const R: usize, const C: usize>(
        p: &Nt,
        i: usize,
        j: usize,
        x: *const f32,
        w: *const f32,
        out: *mut f32,
    ) {
        let Nt { n, k, lda, ldw, .. } = *p;
        let zero = _mm512_set1_ps(-0.0);
        // Unused accumulators (R or C below 4) stay -0 and their sums are not stored.
        let mut acc = [[zero; 4]; 4];
        let full = k / 16 * 16;
        let mut q = 0;
        while q < full {
            let mut wv = [zero; C];
            for (c, v) in wv.iter_mut().enumerate() {
                // SAFETY: row j + c of w has k elements, and q + 16 <= k.
                *v = unsafe { _mm512_loadu_ps(w.add((j + c) * ldw + q)) };
            }
            for (r, row) in acc.iter_mut().take(R).enumerate() {
                // SAFETY: row i + r of x has k elements, and q + 16 <= k.
                let xv = unsafe { _mm512_loadu_ps(x.add((i + r) * lda + q)) };
                for (a, v) in row.iter_mut().zip(&wv) {
                    *a = _mm512_fmadd_ps(xv, *v, *a);
                }
            }
            q += 16;
        }
        if full < k {
            // The lanes below k - full: masked loads read nothing past the rows, and the
            // masked fused multiply-adds keep the other lanes of the accumulators (a +0
            // product there would turn a -0 sum into +0).
            let mask: __mmask16 = ((1u32 << (k - full)) - 1) as u16;
            let mut wv = [zero; C];
            for (c, v) in wv.iter_mut().enumerate() {
                // SAFETY: the mask's lanes are elements full .. k of row j + c of w.
                *v = unsafe { _mm512_maskz_loadu_ps(mask, w.add((j + c) * ldw + full)) };
            }
            for (r, row) in acc.iter_mut().take(R).enumerate() {
                // SAFETY: the mask's lanes are elements full .. k of row i + r of x.
                let xv = unsafe { _mm512_maskz_loadu_ps(mask, x.add((i + r) * lda + full)) };
                for (a, v) in row.iter_mut().zip(&wv) {
                    *a = _mm512_mask3_fmadd_ps(xv, *v, *a, mask);
                }
            }
        }
        let sums = reduce(&acc);
        let quarters = [
            _mm512_castps512_ps128(sums),
            _mm512_extractf32x4_ps::<1>(sums),
            _mm512_extractf32x4_ps::<2>(sums),
            _mm512_extractf32x4_ps::<3>(sums),
        ];
        for (r, quarter) in quarters.iter().take(R).enumerate() {
            let dst = (i + r) * n + j;
            if C == 4 {
                // SAFETY: i + r < m and j + 4 <= n: out[dst .. dst + 4] is inside out.
                unsafe { _mm_storeu_ps(out.add(dst), *quarter) };
            } else {
                let mut lanes = [0f32; 4];
                // SAFETY: `lanes` holds 4 floats.
                unsafe { _mm_storeu_ps(lanes.as_mut_ptr(), *quarter) };
                // SAFETY: i + r < m and j + C <= n: out[dst .. dst + C] is inside out.
                unsafe { std::ptr::copy_nonoverlapping(lanes.as_ptr(), out.add(dst), C) };
            }
        }
    }

    /// The 16 sums of the lanes of `acc[r][c]` as one vector, lane `4r + c`: adjacent
    /// accumulators interleaved and added (each 128-bit quarter then holds partial sums of
    /// both), twice, which leaves per quarter the partial sums of the 4 of a row; then quarters
    /// are exchanged and added twice, the second time across rows.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn reduce(acc: &[[__m512; 4]; 4]) -> __m512 {
        // Per quarter [a0 + a2, b0 + b2, a1 + a3, b1 + b3] of a and b.
        let pair = |a: __m512, b: __m512| _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
        // Per quarter the partial sums of the row's 4 accumulators.
        let row = |r: &[__m512; 4]| {
            let (s01, s23) = (_mm512_castps_pd(pair(r[0], r[1])), _mm512_castps_pd(pair(r[2], r[3])));
            _mm512_add_ps(
                _mm512_castpd_ps(_mm512_unpacklo_pd(s01, s23)),
                _mm512_castpd_ps(_mm512_unpackhi_pd(s01, s23)),
            )
        };
        // Quarters 0 and 2 of a and b against 1 and 3: [a01, a23, b01, b23].
        let halves = |a: __m512, b: __m512| {
            _mm512_add_ps(_mm512_shuffle_f32x4::<0x88>(a, b), _mm512_shuffle_f32x4::<0xdd>(a, b))
        };
        let (u0, u1) = (halves(row(&acc[0]), row(&acc[1])), halves(row(&acc[2]), row(&acc[3])));
        halves(u0, u1)
    }
}

#[cfg(test)]
mod tests {
    use super::super::nt::{grid, Nt};
    use super::{available, run};

    #[test]
    fn dot_products_of_rows_agree_with_f64_sums() {
        if !available() {
            // The dispatch then never picks this routine: `skinny`'s tests check what it runs.
            eprintln!("skinny_avx512: this CPU has no AVX-512F (or TENJIT_CPU_ROUTINES=0): nothing to test");
            return;
        }
        for m in 1..=9 {
            for n in 1..=9 {
                for k in [1, 7, 15, 16, 17, 31, 33, 64, 127, 128, 129, 256, 300] {
                    let (lda, ldw) = (k + m % 3, k + n % 2);
                    let x: Vec<f32> = (0..m * lda).map(|i| grid(i + 1)).collect();
                    let w: Vec<f32> = (0..n * ldw).map(|i| grid(i * 3 + 2)).collect();
                    let nt = Nt { m, n, k, lda, ldw };
                    let mut out = vec![f32::NAN; m * n];
                    run(&nt, &x, &w, &mut out);
                    // The grid's values are multiples of 1/4 below 3 in size: every partial
                    // sum is exact in f32 for these lengths, so any order gives the same bits.
                    assert_eq!(out, nt.reference(&x, &w), "m {m} n {n} k {k}");
                }
            }
        }
    }

    #[test]
    fn signed_zeros_nan_and_infinities() {
        if !available() {
            eprintln!("skinny_avx512: this CPU has no AVX-512F (or TENJIT_CPU_ROUTINES=0): nothing to test");
            return;
        }
        for k in [11, 16, 27, 128] {
            // Row 0: every product -0 (the sum is -0, also in the masked tail); row 1: +0 and
            // -0 products (+0); row 2: a NaN; row 3: an infinity; row 4 (a tile of 1 row):
            // -0 again.
            let mut x = vec![0.0f32; 5 * k];
            let w = vec![1.0f32; 5 * k];
            x[..k].fill(-0.0);
            x[k + 3] = -0.0;
            x[2 * k + 9] = f32::NAN;
            x[3 * k + 1] = f32::INFINITY;
            x[4 * k..].fill(-0.0);
            let nt = Nt { m: 5, n: 5, k, lda: k, ldw: k };
            let mut out = vec![1.0f32; 25];
            run(&nt, &x, &w, &mut out);
            for j in 0..5 {
                for row in [0, 4] {
                    let o = out[row * 5 + j];
                    assert!(o == 0.0 && o.is_sign_negative(), "k {k} row {row}: {out:?}");
                }
                assert!(out[5 + j] == 0.0 && out[5 + j].is_sign_positive(), "k {k}: {out:?}");
                assert!(out[10 + j].is_nan(), "k {k}: {out:?}");
                assert_eq!(out[15 + j], f32::INFINITY, "k {k}");
            }
        }
    }
}
