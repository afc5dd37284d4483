//! Dense row sums as hand-written AVX2 routines: the CPU backend's choice for the one kernel
//! shape where Cranelift's 128-bit vectors are what bounds the time.
//!
//! A kernel whose whole work is `out[i] = sum_j x[offset + i * stride + j]` over `f32` or
//! `f64` elements (a row sum `x.sum(-1)` of a dense or row-sliced tensor, the first stage of a
//! full sum split by `split-reduce`, the second stage over the partial sums) runs as
//! [`sum_rows_f32`] or [`sum_rows_f64`] instead of JIT-compiled code. They have the kernel
//! ABI (`codegen`'s module docs) and read the same size table, so everything around a kernel
//! (the shared-code cache, the split over threads, row groups, `CompiledKernel::run`) stays
//! as it is. They load 256-bit vectors into 8 independent accumulators, one load folded into
//! each add, and end a row with one masked load: on the Zen 3 machine of `BENCHMARKS.md`, one
//! thread over rows in L2 sums `f32` rows of 1024 or 4096 elements at ~100 GB/s against the
//! generated 128-bit loop's ~70, `f64` rows at 75–85 GB/s against 55–65, and rows of 17 to 100
//! elements about as fast as the generated code.
//!
//! The order of the additions keeps what the generated code promises (`codegen`'s
//! "Semantics"): an `f32` sum adds blocks in `f32` lanes, each lane adding at most
//! [`SUM_CHAIN`] elements, and adds the blocks' sums in `f64`; an `f64` sum adds in lane
//! order. NaN and infinities propagate as in any order of IEEE additions, and accumulators
//! start at `-0.0`, as the generated code's do, so a row of `-0.0` sums to `-0.0`. The choice is made
//! from the kernel's structure alone (what `shared::Key` holds) and the CPU, at run time: a
//! CPU without AVX2 (or another architecture) gets the generated code, and so does every
//! kernel of a process started with `TENJIT_CPU_ROUTINES=0` (to compare the two, or to rule
//! the routines out).

use super::plan::{Plan, Shape};
use super::KernelFn;
use tenjit_ir::kernel::{BufferDecl, Combine, Inst};
use tenjit_ir::{DType, ReduceOp};

/// Elements an `f32` lane adds before its block's sum is added into `f64`, as in the
/// generated code.
const SUM_CHAIN: usize = 16;

/// Independent vector accumulators: enough to keep both of Zen 3's add pipes busy (latency 3)
/// when the row is in L1.
const ACCS: usize = 8;

/// Size-table slots the routines read (for a plan of two canonical dims, `[kept, reduced]`,
/// one body map and the store map; see `sizes`): the row length, the load's offset and outer
/// stride, the store's offset and outer stride.
const ROW_LEN: usize = 1;
const LOAD_OFFSET: usize = 2;
const LOAD_STRIDE: usize = 3;
const STORE_OFFSET: usize = 5;
const STORE_STRIDE: usize = 6;
/// Entries of that table.
const TABLE_LEN: usize = 8;

/// A hand-written routine a kernel can run as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Routine {
    /// Row sums of `f32` elements.
    F32,
    /// Row sums of `f64` elements.
    F64,
}

impl Routine {
    /// The routine planned kernel `p` (over `buffers`, indexed by the kernel's buffer ids) runs
    /// as on this CPU, if any: a sum with no other instruction than the load of its elements,
    /// walked with stride 1 along its one (canonical) reduced dim, the last, into a buffer of
    /// its own, stored as it is.
    pub(super) fn of(p: &Plan<'_>, buffers: &[BufferDecl]) -> Option<Routine> {
        if !avx2() {
            return None;
        }
        let k = p.kernel;
        let dense_row = !p.empty
            && !p.empty_reduce
            && matches!(p.shape, Shape::Inner { lanes: Some(_) })
            && p.reduced == [false, true]
            && k.reduce.as_ref().is_some_and(|r| r.op == Combine::Reduce(ReduceOp::Sum))
            && k.value == Some(0);
        if !dense_row {
            return None;
        }
        let ([load], [acc], [store]) = (k.body.as_slice(), k.epilogue.as_slice(), k.stores.as_slice()) else {
            return None;
        };
        let Inst::Load { buf, .. } = load.inst else { return None };
        let d = load.dtype;
        let routine = match d {
            DType::F32 => Routine::F32,
            DType::F64 => Routine::F64,
            DType::Bool | DType::I32 | DType::I64 | DType::F16 | DType::BF16 => return None,
        };
        let map = p.body_maps.first()?.as_ref()?;
        let fits = acc.inst == Inst::Acc
            && acc.dtype == d
            && store.value == 0
            && store.buf != buf
            && buffers.get(buf).is_some_and(|b| b.ty.dtype == d)
            && buffers.get(store.buf).is_some_and(|b| b.ty.dtype == d)
            && map.strides[1] == 1
            && map.slot == LOAD_OFFSET
            && p.store_map.slot == STORE_OFFSET
            && p.epi_maps.iter().all(Option::is_none);
        fits.then_some(routine)
    }

    /// The routine's function, with the kernel ABI.
    pub(super) fn function(self) -> KernelFn {
        match self {
            Routine::F32 => sum_rows_f32,
            Routine::F64 => sum_rows_f64,
        }
    }

    /// What `render` says the kernel runs as.
    pub(super) fn describe(self) -> &'static str {
        match self {
            Routine::F32 => "the AVX2 routine dense_sum::sum_rows_f32 (not this CLIF)",
            Routine::F64 => "the AVX2 routine dense_sum::sum_rows_f64 (not this CLIF)",
        }
    }
}

/// Whether this process runs the AVX2 routines: the CPU has AVX2 and `TENJIT_CPU_ROUTINES`
/// is not `0` (both checked once).
fn avx2() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        let has = std::is_x86_feature_detected!("avx2");
        #[cfg(not(target_arch = "x86_64"))]
        let has = false;
        has && super::super::routines_enabled()
    })
}

/// The rows `start..end` of a row-sum kernel: `(row, out)` pointers of each, from the size
/// table, and the row length.
///
/// # Safety
///
/// As for [`sum_rows_f32`].
unsafe fn rows<T>(
    bufs: *const *mut u8,
    start: u64,
    end: u64,
    sizes: *const i64,
) -> (impl Iterator<Item = (*const T, *mut T)>, usize) {
    // SAFETY: the caller passes the kernel's size table, of `TABLE_LEN` entries, and its two
    // buffer pointers.
    let (t, x, y) =
        unsafe { (std::slice::from_raw_parts(sizes, TABLE_LEN), *bufs as *const T, *bufs.add(1) as *mut T) };
    let (ls, so, ss) = (t[LOAD_STRIDE], t[STORE_OFFSET], t[STORE_STRIDE]);
    let lo = t[LOAD_OFFSET];
    let it = (start..end).map(move |i| {
        let i = i as i64;
        // The plan proved `lo + i * ls + j` inside the input and `so + i * ss` inside the output
        // for every outer index `i` and row index `j`, so these offsets are in bounds.
        (x.wrapping_offset((lo + i * ls) as isize), y.wrapping_offset((so + i * ss) as isize))
    });
    (it, t[ROW_LEN] as usize)
}

/// The kernel function of [`Routine::F32`]: `out[i] = sum(row i)` for outer rows
/// `start..end`, never setting the status word.
///
/// # Safety
///
/// The kernel ABI's contract (`CompiledKernel::run`): `bufs` holds the input's and the
/// output's base pointers (local buffers 0 and 1) and `sizes` the size table of a plan that
/// [`Routine::of`] chose this routine for, which proved every access inside those buffers;
/// the CPU has AVX2 (`Routine::of` checked it).
unsafe extern "C" fn sum_rows_f32(
    bufs: *const *mut u8,
    start: u64,
    end: u64,
    _: *mut u32,
    sizes: *const i64,
) {
    // SAFETY: as the function's contract states.
    let (rows, n) = unsafe { rows::<f32>(bufs, start, end, sizes) };
    for (row, out) in rows {
        // SAFETY: `row` points to `n` elements of the input, `out` to one of the output, and
        // the CPU has AVX2.
        unsafe { *out = avx2::sum_f32(std::slice::from_raw_parts(row, n)) };
    }
}

/// The kernel function of [`Routine::F64`], as [`sum_rows_f32`].
///
/// # Safety
///
/// As for [`sum_rows_f32`].
unsafe extern "C" fn sum_rows_f64(
    bufs: *const *mut u8,
    start: u64,
    end: u64,
    _: *mut u32,
    sizes: *const i64,
) {
    // SAFETY: as the function's contract states.
    let (rows, n) = unsafe { rows::<f64>(bufs, start, end, sizes) };
    for (row, out) in rows {
        // SAFETY: as in `sum_rows_f32`.
        unsafe { *out = avx2::sum_f64(std::slice::from_raw_parts(row, n)) };
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! The sums themselves, compiled for AVX2.

    use super::{ACCS, SUM_CHAIN};
    use std::arch::x86_64::*;

    /// Lane masks for the last, partial vector: the `k` valid lanes of 8 (4) are the mask
    /// read at `8 - k` (`4 - k`).
    static MASK32: [i32; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];
    static MASK64: [i64; 8] = [-1, -1, -1, -1, 0, 0, 0, 0];

    /// Adds the `f32` accumulators pairwise (the lanes stay apart) and their sum, widened,
    /// into `fold`.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn fold(accs: [__m256; ACCS], fold: &mut [__m256d; 2]) {
        let x = pairwise_ps(accs);
        fold[0] = _mm256_add_pd(fold[0], _mm256_cvtps_pd(_mm256_castps256_ps128(x)));
        fold[1] = _mm256_add_pd(fold[1], _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(x)));
    }

    /// The lane-wise sum of `xs`, added pairwise.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn pairwise_ps(mut xs: [__m256; ACCS]) -> __m256 {
        let mut m = ACCS;
        while m > 1 {
            for i in 0..m / 2 {
                xs[i] = _mm256_add_ps(xs[2 * i], xs[2 * i + 1]);
            }
            m /= 2;
        }
        xs[0]
    }

    /// The sum of the 4 lanes of `v`.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn lanes_pd(v: __m256d) -> f64 {
        let x = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd::<1>(v));
        _mm_cvtsd_f64(_mm_add_sd(x, _mm_unpackhi_pd(x, x)))
    }

    /// The sum of `x`: whole blocks of `ACCS * 8 * SUM_CHAIN` elements, each lane of the
    /// `ACCS` `f32` vector accumulators adding `SUM_CHAIN` of them; then the rest of the row
    /// (a shorter block), whole steps of `ACCS` vectors, then single vectors into accumulators
    /// 0 to 6 and a partial one (masked) into 7, so no lane adds more than `SUM_CHAIN`. Each
    /// block's sum is widened into `f64`, where the blocks are added.
    ///
    /// # Safety
    ///
    /// The CPU has AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn sum_f32(x: &[f32]) -> f32 {
        const STEP: usize = ACCS * 8;
        const BLOCK: usize = STEP * SUM_CHAIN;
        let (n, p) = (x.len(), x.as_ptr());
        let mut f = [_mm256_set1_pd(-0.0); 2];
        let mut j = 0;
        // SAFETY: every full load reads 8 elements at `j..j + 8` with `j + 8 <= n`; the
        // masked one reads only the lanes of `j..n`.
        unsafe {
            while n - j >= BLOCK {
                let mut accs = [_mm256_set1_ps(-0.0); ACCS];
                for _ in 0..SUM_CHAIN {
                    for (a, acc) in accs.iter_mut().enumerate() {
                        *acc = _mm256_add_ps(*acc, _mm256_loadu_ps(p.add(j + 8 * a)));
                    }
                    j += STEP;
                }
                fold(accs, &mut f);
            }
            if j < n {
                let mut accs = [_mm256_set1_ps(-0.0); ACCS];
                while n - j >= STEP {
                    for (a, acc) in accs.iter_mut().enumerate() {
                        *acc = _mm256_add_ps(*acc, _mm256_loadu_ps(p.add(j + 8 * a)));
                    }
                    j += STEP;
                }
                let mut a = 0;
                while n - j >= 8 {
                    accs[a] = _mm256_add_ps(accs[a], _mm256_loadu_ps(p.add(j)));
                    a += 1;
                    j += 8;
                }
                if j < n {
                    let mask = _mm256_loadu_si256(MASK32.as_ptr().add(8 - (n - j)).cast());
                    // Only the loaded lanes add: a masked-off lane's +0 would turn a -0 sum +0.
                    let acc = accs[ACCS - 1];
                    let sum = _mm256_add_ps(acc, _mm256_maskload_ps(p.add(j), mask));
                    accs[ACCS - 1] = _mm256_blendv_ps(acc, sum, _mm256_castsi256_ps(mask));
                }
                fold(accs, &mut f);
            }
            lanes_pd(_mm256_add_pd(f[0], f[1])) as f32
        }
    }

    /// The sum of `x` in `ACCS` vectors of 4 `f64` lanes: whole steps, then single vectors,
    /// then a partial one (masked).
    ///
    /// # Safety
    ///
    /// The CPU has AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn sum_f64(x: &[f64]) -> f64 {
        const STEP: usize = ACCS * 4;
        let (n, p) = (x.len(), x.as_ptr());
        let mut accs = [_mm256_set1_pd(-0.0); ACCS];
        let mut j = 0;
        // SAFETY: every full load reads 4 elements at `j..j + 4` with `j + 4 <= n`; the
        // masked one reads only the lanes of `j..n`.
        unsafe {
            while n - j >= STEP {
                for (a, acc) in accs.iter_mut().enumerate() {
                    *acc = _mm256_add_pd(*acc, _mm256_loadu_pd(p.add(j + 4 * a)));
                }
                j += STEP;
            }
            let mut a = 0;
            while n - j >= 4 {
                accs[a] = _mm256_add_pd(accs[a], _mm256_loadu_pd(p.add(j)));
                a += 1;
                j += 4;
            }
            if j < n {
                let mask = _mm256_loadu_si256(MASK64.as_ptr().add(4 - (n - j)).cast());
                let acc = accs[ACCS - 1];
                let sum = _mm256_add_pd(acc, _mm256_maskload_pd(p.add(j), mask));
                accs[ACCS - 1] = _mm256_blendv_pd(acc, sum, _mm256_castsi256_pd(mask));
            }
            let mut m = ACCS;
            while m > 1 {
                for i in 0..m / 2 {
                    accs[i] = _mm256_add_pd(accs[2 * i], accs[2 * i + 1]);
                }
                m /= 2;
            }
            lanes_pd(accs[0])
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod avx2 {
    //! No AVX2 here: `Routine::of` never chooses a routine, so these are never called.

    /// The sum of `x`, in order (unreachable: see the module docs).
    pub(super) unsafe fn sum_f32(x: &[f32]) -> f32 {
        x.iter().map(|&e| f64::from(e)).sum::<f64>() as f32
    }

    /// The sum of `x`, in order (unreachable: see the module docs).
    pub(super) unsafe fn sum_f64(x: &[f64]) -> f64 {
        x.iter().sum()
    }
}
