//! Products of a few rows by a matrix stored by rows, `x @ w.T` (every `nn::Linear`), as a
//! hand-written AVX2/FMA routine instead of a call into `gemm`.
//!
//! A row group runs its products block of rows by block of rows (32 rows at most, often
//! fewer), each on one thread. For such a block `gemm` first packs the transposed weight
//! matrix into panels, a strided gather of every weight, then multiplies: on W10's products
//! (`[m, 512] x [512, 128]` and `[m, 128] x [128, 384 | 512]`) the packing took ~135 µs of the
//! ~180 µs of a 32-row block, and as much for a block of 3 rows. Here each output element is a
//! dot product of two contiguous rows, `out[i, j] = Σ_p x[i, p] · w[j, p]`: tiles of 4 rows
//! of `x` by 3 rows of `w` keep 12 vector accumulators (all 16 registers with the 3 loads of
//! `w` and 1 of `x`), the rows of `w` are read from the cache as they are, and nothing is
//! packed. The weight matrix must fit in L2 ([`MAX_WEIGHT_BYTES`]) since every 4 rows read all
//! of it.
//!
//! The accumulators start at `-0.0`, so the sign of a zero result is the interpreter's (a sum
//! of `-0` products is `-0`); each lane adds its products in order with fused multiply-adds,
//! the 8 lanes and the tail of `k mod 8` products are added last: a reassociation of the sum,
//! as `gemm`'s, within the tolerance of a float product. NaN and infinities propagate as in
//! any order of IEEE operations. The routine runs when the CPU has AVX2 and FMA and
//! `TENJIT_CPU_ROUTINES` is not `0` ([`super::routines_enabled`]). Where the CPU also has
//! AVX-512F, [`Nt::run`] runs the 16-lane routine of `skinny_avx512` instead, whose batched
//! horizontal sums make it faster than `gemm` from `k = 128` (64 for at most 64 rows) on.

/// Dot products shorter than this go to `gemm` where the CPU has no AVX-512: the 12 horizontal sums that end a tile cost
/// more than `gemm`'s packing when there are few vectors to add before them (measured on W10's
/// blocks of 32 rows, Zen 4: `k = 128` took 56 µs here against `gemm`'s 46 for `n = 384`, and
/// 74 against 62 for `n = 512`; `k = 512, n = 128` took 58 µs against 169, where `gemm`'s
/// packing reads the weights 2 KiB apart; `W4.attention`'s `k = 32` products were twice as
/// slow here).
pub(super) const MIN_K: usize = 256;
/// Where the CPU has AVX-512 (the routine of `skinny_avx512`), dot products shorter than this
/// go to `gemm` (measured on one thread, Zen 4, µs of this routine against `gemm`'s: `k = 128`
/// is faster here for every number of rows, `n = 384`: 3.7 against 21.6 for 3 rows, 32.8
/// against 47.3 for 32, 67 against 76 for 64, 230 against 240 for 256; `n = 512`: 45.6
/// against 63.2 for 32 rows; `k = 512, n = 128`: 36 against 175 for 32 rows).
pub(super) const AVX512_MIN_K: usize = 128;
/// With at most [`AVX512_FEW_ROWS`] rows, dot products from this length on run here with
/// AVX-512 (`k = 64, n = 64`: 3.6 µs against `gemm`'s 4.1 for 32 rows, even for 64 and 128,
/// 21.6 against 20.1 for 256 rows; `k = 32, n = 64`: 2.5 against 2.2 for 32 rows).
pub(super) const AVX512_MIN_K_FEW_ROWS: usize = 64;
/// See [`AVX512_MIN_K_FEW_ROWS`].
pub(super) const AVX512_FEW_ROWS: usize = 64;
/// Products with more rows than this go to `gemm` (whose packing is then a small part).
pub(super) const MAX_ROWS: usize = 256;
/// The weight matrix (`n × k` elements) must be at most this large: each tile of 4 rows reads
/// all of it, from L2.
pub(super) const MAX_WEIGHT_BYTES: usize = 512 * 1024;

pub(super) use super::nt::Nt;

impl Nt {
    /// Whether a product of these sizes runs here on this CPU: at most [`MAX_ROWS`] rows, a
    /// weight matrix of at most [`MAX_WEIGHT_BYTES`], dot products of at least [`MIN_K`]
    /// (with AVX-512, [`AVX512_MIN_K`], or [`AVX512_MIN_K_FEW_ROWS`] for few rows).
    pub(super) fn fits(&self) -> bool {
        self.m > 0
            && self.m <= MAX_ROWS
            && self.n > 0
            && self.k >= self.min_k()
            && self.n.saturating_mul(self.k).saturating_mul(4) <= MAX_WEIGHT_BYTES
            && available()
    }

    /// The shortest dot products that run here rather than in `gemm`, for this CPU and
    /// these rows.
    fn min_k(&self) -> usize {
        match super::skinny_avx512::available() {
            true if self.m <= AVX512_FEW_ROWS => AVX512_MIN_K_FEW_ROWS,
            true => AVX512_MIN_K,
            false => MIN_K,
        }
    }

    /// Computes the product into `out` with AVX-512 where the CPU has it, else AVX2 (for any
    /// sizes; [`Nt::fits`] says when that beats `gemm`). Panics unless the CPU has the
    /// routine ([`available`]) and the slices hold the operands: `x` at least
    /// `(m - 1)·lda + k` elements, `w` `(n - 1)·ldw + k`, `out` `m·n`.
    pub(super) fn run(&self, x: &[f32], w: &[f32], out: &mut [f32]) {
        if super::skinny_avx512::available() {
            super::skinny_avx512::run(self, x, w, out);
        } else {
            self.run_avx2(x, w, out);
        }
    }

    /// [`Nt::run`] with the AVX2 routine, also where the CPU has AVX-512.
    pub(super) fn run_avx2(&self, x: &[f32], w: &[f32], out: &mut [f32]) {
        let Nt { m, n, k, lda, ldw } = *self;
        assert!(available() && m > 0 && n > 0 && k > 0, "skinny product run where it cannot");
        assert!(x.len() >= (m - 1) * lda + k && w.len() >= (n - 1) * ldw + k && out.len() == m * n);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `available` says the CPU has AVX2 and FMA; the asserts above put every
        // access of `nt` (rows `i < m` of `x` at `i·lda .. i·lda + k`, rows `j < n` of `w` at
        // `j·ldw .. j·ldw + k`, `out[i·n + j]`) inside the slices.
        unsafe {
            x86::nt(self, x.as_ptr(), w.as_ptr(), out.as_mut_ptr())
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("available() is false off x86_64");
    }
}

/// Whether the CPU has AVX2 and FMA and the routines are on (checked once).
pub(super) fn available() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        let has = std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma");
        #[cfg(not(target_arch = "x86_64"))]
        let has = false;
        has && super::routines_enabled()
    })
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// See [`super::Nt::run`].
    ///
    /// # Safety
    ///
    /// AVX2 and FMA are available; rows `i < m` of `x` (`x + i·lda`, `k` elements), rows
    /// `j < n` of `w` (`w + j·ldw`, `k` elements) and `out[0 .. m·n]` are valid.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn nt(p: &super::Nt, x: *const f32, w: *const f32, out: *mut f32) {
        let (m, n) = (p.m, p.n);
        let mut i = 0;
        while i < m {
            let rows = (m - i).min(4);
            let mut j = 0;
            while j < n {
                let cols = (n - j).min(3);
                // SAFETY: rows i..i + rows of x and j..j + cols of w are inside the operands
                // (the caller's contract), and so are the outputs they make.
                unsafe {
                    match (rows, cols) {
                        (4, 3) => tile::<4, 3>(p, i, j, x, w, out),
                        (4, 2) => tile::<4, 2>(p, i, j, x, w, out),
                        (4, _) => tile::<4, 1>(p, i, j, x, w, out),
                        (3, 3) => tile::<3, 3>(p, i, j, x, w, out),
                        (3, 2) => tile::<3, 2>(p, i, j, x, w, out),
                        (3, _) => tile::<3, 1>(p, i, j, x, w, out),
                        (2, 3) => tile::<2, 3>(p, i, j, x, w, out),
                        (2, 2) => tile::<2, 2>(p, i, j, x, w, out),
                        (2, _) => tile::<2, 1>(p, i, j, x, w, out),
                        (_, 3) => tile::<1, 3>(p, i, j, x, w, out),
                        (_, 2) => tile::<1, 2>(p, i, j, x, w, out),
                        (_, _) => tile::<1, 1>(p, i, j, x, w, out),
                    }
                }
                j += cols;
            }
            i += rows;
        }
    }

    /// The `R × C` block of outputs at rows `i..`, columns `j..`: `R·C` vector accumulators
    /// over the `k / 8` full vectors of each dot product, then the lanes and the tail.
    ///
    /// # Safety
    ///
    /// As [`nt`], for the rows and columns of this block.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn tile<const R: usize, const C: usize>(
        p: &super::Nt,
        i: usize,
        j: usize,
        x: *const f32,
        w: *const f32,
        out: *mut f32,
    ) {
        let super::Nt { n, k, lda, ldw, .. } = *p;
        let zero = _mm256_set1_ps(-0.0);
        let mut acc = [[zero; C]; R];
        let full = k / 8 * 8;
        let mut q = 0;
        while q < full {
            let mut wv = [zero; C];
            for (c, v) in wv.iter_mut().enumerate() {
                // SAFETY: row j + c of w has k elements, and q + 8 <= k.
                *v = unsafe { _mm256_loadu_ps(w.add((j + c) * ldw + q)) };
            }
            for (r, row) in acc.iter_mut().enumerate() {
                // SAFETY: row i + r of x has k elements, and q + 8 <= k.
                let xv = unsafe { _mm256_loadu_ps(x.add((i + r) * lda + q)) };
                for (a, v) in row.iter_mut().zip(&wv) {
                    *a = _mm256_fmadd_ps(xv, *v, *a);
                }
            }
            q += 8;
        }
        for (r, row) in acc.iter().enumerate() {
            for (c, a) in row.iter().enumerate() {
                let mut s = lanes(*a);
                for t in full..k {
                    // SAFETY: t < k, inside rows i + r of x and j + c of w.
                    s = unsafe { (*x.add((i + r) * lda + t)).mul_add(*w.add((j + c) * ldw + t), s) };
                }
                // SAFETY: i + r < m and j + c < n, so the output is inside out[0 .. m·n].
                unsafe { *out.add((i + r) * n + j + c) = s };
            }
        }
    }

    /// The sum of the 8 lanes of `v` (pairwise).
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn lanes(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s)
    }
}

#[cfg(test)]
mod tests {
    use super::super::nt::grid;
    use super::{available, Nt, MIN_K};

    #[test]
    fn dot_products_of_rows_agree_with_f64_sums() {
        if !available() {
            eprintln!("skinny: this CPU has no AVX2/FMA (or TENJIT_CPU_ROUTINES=0): nothing to test");
            return;
        }
        for m in 1..=9 {
            for n in 1..=7 {
                for k in [1, 7, 8, 9, 17, 33, 128, 256, 300] {
                    let (lda, ldw) = (k + m % 3, k + n % 2);
                    let x: Vec<f32> = (0..m * lda).map(|i| grid(i + 1)).collect();
                    let w: Vec<f32> = (0..n * ldw).map(|i| grid(i * 3 + 2)).collect();
                    let nt = Nt { m, n, k, lda, ldw };
                    let mut out = vec![f32::NAN; m * n];
                    nt.run_avx2(&x, &w, &mut out);
                    // The grid's values are multiples of 1/4 below 3 in size: every partial
                    // sum is exact in f32 for these lengths, so any order gives the same bits.
                    assert_eq!(out, nt.reference(&x, &w), "m {m} n {n} k {k}");
                }
            }
        }
    }

    #[test]
    fn the_dispatch_takes_the_thresholds_of_this_cpu() {
        let nt = |m: usize, k: usize| Nt { m, n: 128, k, lda: k, ldw: k };
        if !available() {
            eprintln!("skinny: this CPU has no AVX2/FMA (or TENJIT_CPU_ROUTINES=0): all to gemm");
            assert!(!nt(32, 512).fits() && !nt(32, 128).fits());
            return;
        }
        assert!(nt(32, 512).fits() && !nt(257, 512).fits() && !nt(32, 1400).fits(), "rows or weight size");
        if super::super::skinny_avx512::available() {
            assert!(nt(1, 128).fits() && nt(256, 128).fits() && nt(64, 64).fits());
            assert!(!nt(65, 64).fits() && !nt(64, 63).fits() && !nt(32, 32).fits());
        } else {
            eprintln!("skinny: this CPU has no AVX-512F: the AVX2 routine from k = {MIN_K}");
            assert!(nt(32, MIN_K).fits() && !nt(32, MIN_K - 1).fits() && !nt(32, 128).fits());
        }
    }

    #[test]
    fn signed_zeros_nan_and_infinities() {
        if !available() {
            eprintln!("skinny: this CPU has no AVX2/FMA (or TENJIT_CPU_ROUTINES=0): nothing to test");
            return;
        }
        let k = 11;
        // Row 0: every product -0 (the sum is -0); row 1: +0 and -0 products (+0); row 2: a NaN;
        // row 3: an infinity.
        let mut x = vec![0.0f32; 4 * k];
        let w = vec![1.0f32; 2 * k];
        x[..k].fill(-0.0);
        x[k + 3] = -0.0;
        x[2 * k + 9] = f32::NAN;
        x[3 * k + 1] = f32::INFINITY;
        let nt = Nt { m: 4, n: 2, k, lda: k, ldw: k };
        let mut out = vec![1.0f32; 8];
        nt.run_avx2(&x, &w, &mut out);
        assert!(out[0] == 0.0 && out[0].is_sign_negative() && out[1].is_sign_negative(), "{out:?}");
        assert!(out[2] == 0.0 && out[2].is_sign_positive(), "{out:?}");
        assert!(out[4].is_nan() && out[5].is_nan(), "{out:?}");
        assert_eq!(out[6], f32::INFINITY);
    }
}
