//! Matrix products for the CPU backend: runs a [`MatmulStep`] on host buffers.
//!
//! A step computes `out[b..., i, j] = Σ_p a[b..., i, p] * b[b..., p, j]` over a batch of
//! `step.batch` dims, where both operands are strided views ([`MatOperand`]: an offset, one
//! stride per batch dim — 0 for a broadcast dim — and row/column strides, any of which may be 0
//! or negative) into their buffers, and the output is dense row-major `[batch..., m, n]`.
//!
//! # Entry points
//!
//! [`matmul_f32`], [`matmul_f64`], [`matmul_i32`] and [`matmul_i64`] take the operand buffers'
//! full element slices; [`matmul_data`] dispatches on [`Data`] variants. `threads` is the number
//! of threads a product may use (0 and 1 both mean the calling thread only).
//!
//! # Validation
//!
//! Nothing is read or written before the step is checked; a bad step is an [`Error::Eval`], never
//! undefined behaviour:
//!
//! - the step's dtype is the function's element type (and, for [`matmul_data`], every buffer's);
//! - each operand has one batch stride per batch dim;
//! - `out.len()` is exactly `Π batch · m · n` (computed without overflow);
//! - for each operand whose index range `[batch..., rows, cols]` is non-empty, the smallest and
//!   largest element offsets it can address (`offset + Σ min(0, s·(d−1))` and
//!   `offset + Σ max(0, s·(d−1))`, in 128-bit arithmetic) lie inside its slice. Every element a
//!   product reads lies between the two, so every access is in bounds.
//!
//! # Floats: the `gemm` crate
//!
//! `f32` and `f64` products run on the `gemm-f32` and `gemm-f64` kernels (AVX-512 with the
//! `x86-v4` feature, chosen at run time),
//! one call per batch index. A matrix smaller than [`PARALLEL_MIN_WORK`] multiply-adds runs on
//! one thread; a batch of small matrices is split across up to `threads` workers instead.
//! An operand with a negative row or column stride is first copied (per batch index) into a
//! dense temporary, so `gemm` only ever sees non-negative strides; the copy costs `O(rows·cols)`
//! against the product's `O(m·n·k)`.
//!
//! Three shapes go elsewhere on `f32`: `n = 1` products to the matrix-vector routines of
//! `gemv`; `x @ w.T` of at most 256 rows (`skinny`'s routine: dot products of contiguous rows,
//! nothing packed), on one thread, with its rows split over the workers, or, when `w` is too
//! large for L2, as a sum over chunks of `k` that fit (partials added in a fixed order).
//!
//! `gemm` accumulates in the element type with fused multiply-adds, in its own blocking order,
//! whereas the reference interpreter (`tenjit_ir::interp`) accumulates float products in `f64`
//! and rounds once. Compiled float matmuls therefore match the interpreter to a tolerance, not
//! bit for bit: for `f32`, `|got − want| ≤ 1e-5 · √k · Σ_p |a_ip · b_pj|` (relative to the sum
//! of absolute products, which bounds cancellation); `f64` results are within `1e-13 · √k` of
//! that scale. The tests in `tests/gemm.rs` check exactly this against an `f64` reference.
//!
//! # Integers
//!
//! `i32` and `i64` products use a plain cache-friendly `i-p-j` loop with wrapping arithmetic.
//! This matches the interpreter exactly: it accumulates integer products wrapping in `i64` and
//! truncates to `i32`, and since truncation is a ring homomorphism `ℤ/2⁶⁴ → ℤ/2³²`, wrapping
//! `i32` multiply-adds give the same bits.
//!
//! `k = 0` gives zeros; empty `m`, `n` or batch dims give an empty output and read nothing.

use crate::error::{Error, Result};
use gemm_common::Parallelism;
use tenjit_ir::kernel::{MatOperand, MatmulStep};
use tenjit_ir::{DType, Data};

/// Matrices with fewer multiply-adds than this (`m·n·k < 128³`, about 2 M) run on one thread:
/// below it, splitting a product costs more than it saves. Measured on a 2-core AMD EPYC
/// (Zen 3): `[64,128]x[128,128]` (1 M) took 23 µs on one thread and 49 µs on two; one thread
/// already runs `gemm` at 85–95 GFLOP/s, near a core's FMA peak, and two reach only ~1.25× that
/// on larger products.
pub const PARALLEL_MIN_WORK: usize = 128 * 128 * 128;

/// A batch of matrices is split across the worker pool only when the whole product has at
/// least this many multiply-adds.
const BATCH_SPLIT_MIN_WORK: usize = 1 << 20;

/// The fewest rows of a block when a skinny product (`x @ w.T`) splits its rows over the
/// workers: its routine works in tiles of 4 rows.
const SKINNY_SPLIT_MIN_ROWS: usize = 8;

/// Runs a `f32` [`MatmulStep`] on host buffers.
///
/// `a` and `b` are the operand buffers' full element slices (the operands' offsets and strides
/// index into them); `out` is the dense `[batch..., m, n]` output, overwritten. `threads` bounds
/// the threads used (0 or 1: the calling thread only).
///
/// # Errors
///
/// [`Error::Eval`] when the step fails the checks in the [module docs](self), before anything
/// is read or written.
pub fn matmul_f32(step: &MatmulStep, a: &[f32], b: &[f32], out: &mut [f32], threads: usize) -> Result<()> {
    float_matmul(step, DType::F32, a, b, out, threads)
}

/// Runs a `f64` [`MatmulStep`] on host buffers; see [`matmul_f32`].
///
/// # Errors
///
/// [`Error::Eval`] when the step fails the checks in the [module docs](self).
pub fn matmul_f64(step: &MatmulStep, a: &[f64], b: &[f64], out: &mut [f64], threads: usize) -> Result<()> {
    float_matmul(step, DType::F64, a, b, out, threads)
}

/// Runs an `f16` [`MatmulStep`] on host buffers: the operands widened to `f32`, an `f32`
/// product (`f32` accumulation, as torch's CPU matmul of 16-bit floats), the result rounded to
/// `f16`; see [`matmul_f32`].
///
/// # Errors
///
/// [`Error::Eval`] when the step fails the checks in the [module docs](self).
pub fn matmul_f16(
    step: &MatmulStep,
    a: &[half::f16],
    b: &[half::f16],
    out: &mut [half::f16],
    threads: usize,
) -> Result<()> {
    half_matmul(step, DType::F16, a, b, out, threads, half::f16::to_f32, half::f16::from_f32)
}

/// Runs a `bf16` [`MatmulStep`] on host buffers, as [`matmul_f16`] does.
///
/// # Errors
///
/// [`Error::Eval`] when the step fails the checks in the [module docs](self).
pub fn matmul_bf16(
    step: &MatmulStep,
    a: &[half::bf16],
    b: &[half::bf16],
    out: &mut [half::bf16],
    threads: usize,
) -> Result<()> {
    half_matmul(step, DType::BF16, a, b, out, threads, half::bf16::to_f32, half::bf16::from_f32)
}

/// A 16-bit float product through `f32`: the whole operand buffers widened (so the step's
/// offsets and strides index them unchanged), [`matmul_f32`], and the output rounded.
#[allow(clippy::too_many_arguments)]
fn half_matmul<T: Copy>(
    step: &MatmulStep,
    dtype: DType,
    a: &[T],
    b: &[T],
    out: &mut [T],
    threads: usize,
    widen: fn(T) -> f32,
    round: fn(f32) -> T,
) -> Result<()> {
    if step.dtype != dtype {
        return Err(fail(format!("a {:?} product run as {dtype:?}", step.dtype)));
    }
    let wide = |v: &[T]| v.iter().map(|&x| widen(x)).collect::<Vec<f32>>();
    let (a32, b32) = (wide(a), wide(b));
    let mut out32 = vec![0f32; out.len()];
    let step32 = MatmulStep { dtype: DType::F32, ..step.clone() };
    matmul_f32(&step32, &a32, &b32, &mut out32, threads)?;
    out.iter_mut().zip(out32).for_each(|(o, x)| *o = round(x));
    Ok(())
}

/// Runs an `i32` [`MatmulStep`] on host buffers with wrapping arithmetic (the same bits as the
/// interpreter's wrapping `i64` accumulation truncated to `i32`); see [`matmul_f32`].
///
/// `threads` is accepted for symmetry; integer products run on the calling thread.
///
/// # Errors
///
/// [`Error::Eval`] when the step fails the checks in the [module docs](self).
pub fn matmul_i32(step: &MatmulStep, a: &[i32], b: &[i32], out: &mut [i32], threads: usize) -> Result<()> {
    let _ = threads;
    int_matmul(step, DType::I32, a, b, out)
}

/// Runs an `i64` [`MatmulStep`] on host buffers with wrapping arithmetic; see [`matmul_i32`].
///
/// # Errors
///
/// [`Error::Eval`] when the step fails the checks in the [module docs](self).
pub fn matmul_i64(step: &MatmulStep, a: &[i64], b: &[i64], out: &mut [i64], threads: usize) -> Result<()> {
    let _ = threads;
    int_matmul(step, DType::I64, a, b, out)
}

/// Runs a [`MatmulStep`] on [`Data`] buffers, dispatching on the element type to
/// [`matmul_f32`], [`matmul_f64`], [`matmul_i32`] or [`matmul_i64`].
///
/// # Errors
///
/// [`Error::Eval`] when the three buffers and the step do not share one numeric dtype, or when
/// the step fails the checks in the [module docs](self).
pub fn matmul_data(step: &MatmulStep, a: &Data, b: &Data, out: &mut Data, threads: usize) -> Result<()> {
    match (a, b, out) {
        (Data::F32(a), Data::F32(b), Data::F32(o)) => matmul_f32(step, a, b, o, threads),
        (Data::F64(a), Data::F64(b), Data::F64(o)) => matmul_f64(step, a, b, o, threads),
        (Data::I32(a), Data::I32(b), Data::I32(o)) => matmul_i32(step, a, b, o, threads),
        (Data::I64(a), Data::I64(b), Data::I64(o)) => matmul_i64(step, a, b, o, threads),
        (Data::F16(a), Data::F16(b), Data::F16(o)) => matmul_f16(step, a, b, o, threads),
        (Data::BF16(a), Data::BF16(b), Data::BF16(o)) => matmul_bf16(step, a, b, o, threads),
        (a, b, o) => Err(fail(format!(
            "buffers of dtypes {:?}, {:?} -> {:?} for a {:?} product",
            a.dtype(),
            b.dtype(),
            o.dtype(),
            step.dtype
        ))),
    }
}

fn fail(message: String) -> Error {
    Error::internal(format!("matmul: {message}"))
}

/// A step that passed validation.
struct Checked {
    /// Number of batch indices (product of the batch dims).
    count: usize,
    m: usize,
    n: usize,
    k: usize,
}

/// Checks `step` against the slices' lengths; see the module docs for the rules.
fn validate(step: &MatmulStep, dtype: DType, a_len: usize, b_len: usize, out_len: usize) -> Result<Checked> {
    if step.dtype != dtype {
        return Err(fail(format!("a {:?} step run on {dtype:?} buffers", step.dtype)));
    }
    let (m, n, k) = (step.m, step.n, step.k);
    let count = step
        .batch
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| fail(format!("batch {:?} overflows", step.batch)))?;
    let want = count
        .checked_mul(m)
        .and_then(|x| x.checked_mul(n))
        .ok_or_else(|| fail(format!("output [{:?}, {m}, {n}] overflows", step.batch)))?;
    if out_len != want {
        return Err(fail(format!(
            "output has {out_len} elements, the step writes {want} ({:?} x {m} x {n})",
            step.batch
        )));
    }
    check_operand("a", &step.a, &step.batch, m, k, a_len)?;
    check_operand("b", &step.b, &step.batch, k, n, b_len)?;
    Ok(Checked { count, m, n, k })
}

/// Checks that every element `operand` addresses over `[batch..., rows, cols]` lies in
/// `0..len` (when that index range is non-empty).
fn check_operand(
    name: &str,
    op: &MatOperand,
    batch: &[usize],
    rows: usize,
    cols: usize,
    len: usize,
) -> Result<()> {
    if op.batch_strides.len() != batch.len() {
        return Err(fail(format!(
            "operand {name} has {} batch strides for {} batch dims",
            op.batch_strides.len(),
            batch.len()
        )));
    }
    let dims = batch.iter().copied().chain([rows, cols]);
    let strides = op.batch_strides.iter().copied().chain([op.row_stride, op.col_stride]);
    if batch.contains(&0) || rows == 0 || cols == 0 {
        return Ok(());
    }
    let (mut lo, mut hi) = (i128::from(op.offset), i128::from(op.offset));
    for (d, s) in dims.zip(strides) {
        // d ≤ usize::MAX < 2^64 and |s| ≤ 2^63, so the product fits in i128; at most a few
        // dozen terms are summed, far from overflowing.
        let span = i128::from(s) * (d as i128 - 1);
        if span < 0 {
            lo += span;
        } else {
            hi += span;
        }
    }
    if lo < 0 || hi >= len as i128 {
        return Err(fail(format!(
            "operand {name} (offset {}, batch strides {:?}, row stride {}, col stride {}) \
             addresses elements {lo}..={hi} of a buffer of {len}",
            op.offset, op.batch_strides, op.row_stride, op.col_stride
        )));
    }
    Ok(())
}

/// The element offset of `op`'s `[bi..., 0, 0]`, for a flat batch index `bi` in row-major
/// order of `batch`. Only called after [`check_operand`], so it lies in the slice.
fn batch_base(op: &MatOperand, batch: &[usize], mut bi: usize) -> usize {
    let mut at = op.offset;
    for (&d, &s) in batch.iter().zip(&op.batch_strides).rev() {
        at += s * (bi % d) as i64;
        bi /= d;
    }
    at as usize
}

/// A `gemm-f32`/`gemm-f64` kernel: `dst := alpha·dst + beta·lhs·rhs` for an `m × n` result
/// and inner size `k`, each matrix given by a pointer and its (column, row) strides, then
/// `read_dst`, `alpha`, `beta`, three conjugation flags (ignored for real types) and the
/// parallelism.
type GemmFn<T> = unsafe fn(
    usize,
    usize,
    usize,
    *mut T,
    isize,
    isize,
    bool,
    *const T,
    isize,
    isize,
    *const T,
    isize,
    isize,
    T,
    T,
    bool,
    bool,
    bool,
    Parallelism,
);

/// An element type `gemm` multiplies.
pub(super) trait Float: Copy + Default + Send + Sync + std::ops::AddAssign + 'static {
    const ZERO: Self;
    const ONE: Self;
    /// The fastest kernel for this CPU (detected once, then cached by the crate).
    fn gemm_fn() -> GemmFn<Self>;
    /// Computes `nt` (`x @ w.T` of rows contiguous along `k`) into `out` with a routine of
    /// `skinny`, if that is faster here than `gemm` and this CPU has it; false otherwise.
    fn skinny(_nt: &super::skinny::Nt, _x: &[Self], _w: &[Self], _out: &mut [Self]) -> bool {
        false
    }
    /// Whether [`Float::skinny`] would run `nt` (and so would run any block of its rows).
    fn skinny_fits(_nt: &super::skinny::Nt) -> bool {
        false
    }
    /// Computes the matrix-vector product `y = A·x` ([`Gemv::Rows`]) or `y = Aᵀ·x`
    /// ([`Gemv::Cols`]) of `super::gemv` for `A` stored by rows (row stride `lda`), if this
    /// CPU has the routine; false otherwise (nothing written).
    fn gemv(_g: Gemv, _a: &[Self], _x: &[Self], _y: &mut [Self], _threads: usize) -> bool {
        false
    }
}

/// A matrix-vector product for [`Float::gemv`] on `A`, stored by rows with row stride `lda`.
#[derive(Clone, Copy, Debug)]
pub(super) enum Gemv {
    /// `y = A·x` for an `m × k` `A`.
    Rows { m: usize, k: usize, lda: usize },
    /// `y = Aᵀ·x` for a `rows × cols` `A`.
    Cols { rows: usize, cols: usize, lda: usize },
}

impl Float for f32 {
    const ZERO: f32 = 0.0;
    const ONE: f32 = 1.0;
    fn gemm_fn() -> GemmFn<f32> {
        gemm_f32::gemm::f32::get_gemm_fn()
    }
    fn skinny_fits(nt: &super::skinny::Nt) -> bool {
        nt.fits()
    }
    fn skinny(nt: &super::skinny::Nt, x: &[f32], w: &[f32], out: &mut [f32]) -> bool {
        if !nt.fits() {
            return false;
        }
        nt.run(x, w, out);
        true
    }
    fn gemv(g: Gemv, a: &[f32], x: &[f32], y: &mut [f32], threads: usize) -> bool {
        if !super::gemv::available() {
            return false;
        }
        match g {
            Gemv::Rows { m, k, lda } => super::gemv::ax(m, k, a, lda, x, y, threads),
            Gemv::Cols { rows, cols, lda } => super::gemv::atx(rows, cols, a, lda, x, y, threads),
        }
        true
    }
}

impl Float for f64 {
    const ZERO: f64 = 0.0;
    const ONE: f64 = 1.0;
    fn gemm_fn() -> GemmFn<f64> {
        gemm_f64::gemm::f64::get_gemm_fn()
    }
}

/// One product as a `gemm` kernel takes it ([`GemmFn`]): `dst := alpha·dst + beta·lhs·rhs`
/// for an `m × n` `dst` and inner size `k`, each matrix a pointer with its (column, row)
/// strides.
struct Call<T> {
    m: usize,
    n: usize,
    k: usize,
    dst: (*mut T, isize, isize),
    read_dst: bool,
    lhs: (*const T, isize, isize),
    rhs: (*const T, isize, isize),
    alpha: T,
    beta: T,
}

impl<T: Float> Call<T> {
    /// The row-major `m × n` product `dst := (read_dst ? dst : 0) + a·b` of `a` (`m × k`) and
    /// `b` (`k × n`), each a pointer with its (row, column) strides, `dst`'s element `(i, j)`
    /// at `i·n + j`. The kernels prefer a column-major destination, so for `n > 1` the product
    /// is computed as its transpose, `dstᵀ = bᵀ·aᵀ`: the same memory, the operands swapped and
    /// each matrix's strides exchanged (what the `gemm` facade does too).
    ///
    /// # Safety
    ///
    /// Until [`Call::run`] returns: every `a + i·rs + p·cs` (`i < m`, `p < k`) and
    /// `b + p·rs + j·cs` (`p < k`, `j < n`) is a readable `T`; `dst..dst + m·n` is writable (and
    /// readable when `read_dst`) and aliases neither operand; `m, n, k > 0`.
    unsafe fn row_major(
        (m, n, k): (usize, usize, usize),
        dst: *mut T,
        read_dst: bool,
        (a, a_rs, a_cs): (*const T, isize, isize),
        (b, b_rs, b_cs): (*const T, isize, isize),
    ) -> Call<T> {
        let alpha = if read_dst { T::ONE } else { T::ZERO };
        if n > 1 {
            let (dst, lhs, rhs) = ((dst, n as isize, 1), (b, b_rs, b_cs), (a, a_rs, a_cs));
            Call { m: n, n: m, k, dst, read_dst, lhs, rhs, alpha, beta: T::ONE }
        } else {
            let (dst, lhs, rhs) = ((dst, 1, n as isize), (a, a_cs, a_rs), (b, b_cs, b_rs));
            Call { m, n, k, dst, read_dst, lhs, rhs, alpha, beta: T::ONE }
        }
    }

    /// Runs the product on up to `threads` threads: a product of at least
    /// [`PARALLEL_MIN_WORK`] multiply-adds uses `gemm`'s own split over the worker pool (a
    /// split of our own, one block of the output per thread, measured no better on W8's and
    /// W10's products), a smaller one the calling thread.
    ///
    /// # Safety
    ///
    /// The contract of [`Call::row_major`], which built `self`.
    unsafe fn run(&self, threads: usize) {
        let work = self.m.saturating_mul(self.n).saturating_mul(self.k);
        let parallelism = if threads > 1 && work >= PARALLEL_MIN_WORK {
            Parallelism::Rayon(threads)
        } else {
            Parallelism::None
        };
        let (dst, lhs, rhs) = (self.dst, self.lhs, self.rhs);
        // SAFETY: the contract of `row_major`.
        unsafe {
            (T::gemm_fn())(
                self.m,
                self.n,
                self.k,
                dst.0,
                dst.1,
                dst.2,
                self.read_dst,
                lhs.0,
                lhs.1,
                lhs.2,
                rhs.0,
                rhs.1,
                rhs.2,
                self.alpha,
                self.beta,
                false,
                false,
                false,
                parallelism,
            )
        }
    }
}

/// A matrix view with a non-negative `(row, col)` stride pair, after any copy.
struct View<'s, T> {
    data: &'s [T],
    base: usize,
    rs: isize,
    cs: isize,
}

/// `op`'s matrix at element `base` of `data`: itself when its strides are non-negative, else a
/// dense row-major copy in `scratch`.
fn view<'s, T: Float>(
    data: &'s [T],
    op: &MatOperand,
    base: usize,
    rows: usize,
    cols: usize,
    scratch: &'s mut Vec<T>,
) -> View<'s, T> {
    if op.row_stride >= 0 && op.col_stride >= 0 {
        return View { data, base, rs: op.row_stride as isize, cs: op.col_stride as isize };
    }
    scratch.clear();
    for r in 0..rows {
        let row = base as i64 + op.row_stride * r as i64;
        scratch.extend((0..cols).map(|c| data[(row + op.col_stride * c as i64) as usize]));
    }
    View { data: scratch, base: 0, rs: cols as isize, cs: 1 }
}

fn float_matmul<T: Float>(
    step: &MatmulStep,
    dtype: DType,
    a: &[T],
    b: &[T],
    out: &mut [T],
    threads: usize,
) -> Result<()> {
    let c = validate(step, dtype, a.len(), b.len(), out.len())?;
    if out.is_empty() {
        return Ok(());
    }
    if c.k == 0 {
        out.fill(T::ZERO);
        return Ok(());
    }
    if c.n == 1 && matrix_vector(step, &c, a, b, out, threads) {
        return Ok(());
    }
    let work = (c.m * c.n).saturating_mul(c.k);
    let threads = threads.max(1);
    let per_matrix_threads = if work < PARALLEL_MIN_WORK { 1 } else { threads };
    let split = threads.min(c.count);
    let total = work.saturating_mul(c.count);
    if per_matrix_threads == 1 && split > 1 && total >= BATCH_SPLIT_MIN_WORK {
        // Many small matrices: each thread runs a contiguous range of batch indices.
        let mn = c.m * c.n;
        let c = &c;
        let task = |bis: std::ops::Range<usize>, part: &mut [T]| -> Result<()> {
            for (bi, dst) in bis.zip(part.chunks_mut(mn)) {
                one_float(step, c, a, b, dst, bi, 1);
            }
            Ok(())
        };
        super::pool::on_row_ranges(out, c.count, usize::MAX, task)?;
    } else {
        for (bi, dst) in out.chunks_mut(c.m * c.n).enumerate() {
            one_float(step, &c, a, b, dst, bi, per_matrix_threads);
        }
    }
    Ok(())
}

/// Runs an `n = 1` product (every batch index) on the matrix-vector routines of
/// `super::gemv` when `A` is contiguous along `k` (`y = A·x`) or along `m` (a transposed
/// view, `y = Aᵀ·x` of the matrix stored by rows), with non-negative strides, and the CPU has
/// them ([`Float::gemv`]); false, with nothing written, otherwise. The vector is read in place
/// when contiguous, else gathered into a temporary (`k` elements against the product's `m·k`).
/// Like the `gemm` path, the output is overwritten.
fn matrix_vector<T: Float>(
    step: &MatmulStep,
    c: &Checked,
    a: &[T],
    b: &[T],
    out: &mut [T],
    threads: usize,
) -> bool {
    let (rs, cs) = (step.a.row_stride, step.a.col_stride);
    let g = if cs == 1 && rs >= 0 {
        Gemv::Rows { m: c.m, k: c.k, lda: rs as usize }
    } else if rs == 1 && cs >= 0 {
        Gemv::Cols { rows: c.k, cols: c.m, lda: cs as usize }
    } else {
        return false;
    };
    let mut x = Vec::new();
    for (bi, dst) in out.chunks_mut(c.m).enumerate() {
        let a0 = batch_base(&step.a, &step.batch, bi);
        let b0 = batch_base(&step.b, &step.batch, bi);
        let xs = if step.b.row_stride == 1 {
            &b[b0..b0 + c.k]
        } else {
            // In bounds by `validate`: these are the elements the `gemm` path reads.
            x.clear();
            x.extend((0..c.k).map(|p| b[(b0 as i64 + step.b.row_stride * p as i64) as usize]));
            &x[..]
        };
        if !T::gemv(g, &a[a0..], xs, dst, threads) {
            return false;
        }
    }
    true
}

/// The product for batch index `bi` into its dense `m × n` output `dst`, with `m, n, k > 0`.
fn one_float<T: Float>(
    step: &MatmulStep,
    c: &Checked,
    a: &[T],
    b: &[T],
    dst: &mut [T],
    bi: usize,
    threads: usize,
) {
    let (mut sa, mut sb) = (Vec::new(), Vec::new());
    let va = view(a, &step.a, batch_base(&step.a, &step.batch, bi), c.m, c.k, &mut sa);
    let vb = view(b, &step.b, batch_base(&step.b, &step.batch, bi), c.k, c.n, &mut sb);
    debug_assert_eq!(dst.len(), c.m * c.n);
    // A few rows by a matrix stored by rows (`x @ w.T`): no packing. On one thread, or with
    // the rows split over the workers, each block of rows by all of `w` (which fits in L2):
    // `gemm`'s own split of such a product packs `w` on every thread, and took 223 µs for
    // `[64,128] x [128,512]` on the two cores of Zen 4 where the split rows take 60-70 µs.
    if va.cs == 1 && vb.rs == 1 {
        let nt = super::skinny::Nt { m: c.m, n: c.n, k: c.k, lda: va.rs as usize, ldw: vb.cs as usize };
        let (x, w) = (&va.data[va.base..], &vb.data[vb.base..]);
        if threads == 1 || c.m * c.n * c.k < PARALLEL_MIN_WORK {
            if T::skinny(&nt, x, w, dst) {
                return;
            }
        } else if c.m >= 2 * SKINNY_SPLIT_MIN_ROWS && T::skinny_fits(&nt) {
            let lda = nt.lda;
            let split = super::pool::on_row_ranges(dst, c.m, usize::MAX, |rows, part| {
                let block = super::skinny::Nt { m: rows.len(), ..nt };
                // A block of `nt`'s rows fits where `nt` does (fewer rows never raise the
                // shortest dot product that runs there).
                T::skinny(&block, &x[rows.start * lda..], w, part).then_some(()).ok_or(())
            });
            if split.is_ok() {
                return;
            }
        }
        if skinny_split_k(&nt, x, w, dst, threads) {
            return;
        }
    }
    // SAFETY: `validate` checked that, for every batch index, every offset
    // `base + r·row_stride + col·col_stride` (r < rows, col < cols) of each operand lies between
    // the operand's smallest and largest addressable offsets, which lie inside its slice;
    // `batch_base` is such an offset for r = col = 0. A copied operand (`view`) is a dense
    // `rows × cols` buffer with base 0 and strides (cols, 1). So `gemm` reads `va` at
    // `va.base + i·va.rs + p·va.cs` (i < m, p < k) and `vb` at `vb.base + p·vb.rs + j·vb.cs`
    // (p < k, j < n), all in bounds, with non-negative strides that fit in `isize` (they came
    // from `i64` on a 64-bit target or from a length). `dst` is exactly `m·n` elements written
    // at `i·n + j`, a unique `&mut` borrow that aliases neither input, and `read_dst = false`
    // means its old contents are never read. `m, n, k > 0`.
    unsafe {
        Call::row_major(
            (c.m, c.n, c.k),
            dst.as_mut_ptr(),
            false,
            (va.data.as_ptr().wrapping_add(va.base), va.rs, va.cs),
            (vb.data.as_ptr().wrapping_add(vb.base), vb.rs, vb.cs),
        )
        .run(threads)
    }
}

/// A skinny product (`x @ w.T`, at most `skinny::MAX_ROWS` rows) whose weight matrix is too
/// large for L2 (`skinny::MAX_WEIGHT_BYTES`), as the sum of products over chunks of `k` whose
/// part of `w` fits: the chunks are split over up to `threads` workers, each summing its
/// chunks' products (from the skinny routine) into a partial `out`, and the partials are added
/// in order, so a result depends on the sizes and the thread count only. `gemm` packs such a
/// `w` (read by columns, `k` floats apart) on every call: the MNIST CNN's fc1,
/// `[64, 9216] x [9216, 128]`, took 4.1 ms there (37 GFLOP/s on two cores of Zen 4). False,
/// with nothing written, when the chunks would not run on the routine.
fn skinny_split_k<T: Float>(nt: &super::skinny::Nt, x: &[T], w: &[T], dst: &mut [T], threads: usize) -> bool {
    use super::skinny::MAX_WEIGHT_BYTES;
    let chunk_max = MAX_WEIGHT_BYTES / (std::mem::size_of::<T>() * nt.n.max(1)) / 16 * 16;
    if chunk_max == 0 || nt.k <= chunk_max {
        return false;
    }
    // Chunks of equal length (a multiple of 16, the last shorter), each on the routine.
    let count = nt.k.div_ceil(chunk_max);
    let len = nt.k.div_ceil(count).next_multiple_of(16);
    let chunks: Vec<(usize, usize)> = (0..nt.k).step_by(len).map(|k0| (k0, len.min(nt.k - k0))).collect();
    if !chunks.iter().all(|&(_, l)| T::skinny_fits(&super::skinny::Nt { k: l, ..*nt })) {
        return false;
    }
    let parts = threads.max(1).min(chunks.len());
    let per = chunks.len().div_ceil(parts);
    let partials: Vec<std::sync::Mutex<Vec<T>>> =
        (0..parts).map(|_| std::sync::Mutex::new(vec![T::ZERO; dst.len()])).collect();
    let run_part = |t: usize| -> std::result::Result<(), ()> {
        // The first chunk's product is the partial itself, not added to a zero, so a sum of
        // `-0` products stays `-0` (the routine's accumulators start at `-0`).
        let mut acc = partials[t].lock().unwrap_or_else(|e| e.into_inner());
        let mut tmp = vec![T::ZERO; acc.len()];
        for (i, &(k0, l)) in chunks.iter().skip(t * per).take(per).enumerate() {
            let chunk = super::skinny::Nt { k: l, ..*nt };
            let into = if i == 0 { &mut acc[..] } else { &mut tmp[..] };
            if !T::skinny(&chunk, &x[k0..], &w[k0..], into) {
                return Err(());
            }
            if i > 0 {
                acc.iter_mut().zip(&tmp).for_each(|(a, &v)| *a += v);
            }
        }
        Ok(())
    };
    let done = if parts > 1 { super::pool::on_workers(parts, run_part) } else { run_part(0) };
    if done.is_err() {
        return false;
    }
    for (i, p) in partials.into_iter().enumerate() {
        let p = p.into_inner().unwrap_or_else(|e| e.into_inner());
        if i == 0 {
            dst.copy_from_slice(&p);
        } else {
            dst.iter_mut().zip(&p).for_each(|(d, &v)| *d += v);
        }
    }
    true
}

/// A matrix inside a slice for [`gemm_into`]: element `(r, c)` is `data[r·rs + c·cs]`.
#[derive(Clone, Copy)]
pub(super) struct Mat<'a, T> {
    /// The elements.
    pub data: &'a [T],
    /// Row stride.
    pub rs: usize,
    /// Column stride.
    pub cs: usize,
}

/// `dst := Σ_p a[i, p]·b[p, j]` (or `dst += ...` when `accumulate`) for an `m × n` `dst`
/// whose element `(i, j)` is `dst[i·n + j]`, on up to `threads` threads: the product the
/// library routines (the convolutions) run on blocks of their operands. Fails, before reading
/// anything, when a matrix does not lie inside its slice.
pub(super) fn gemm_into<T: Float>(
    (m, n, k): (usize, usize, usize),
    a: Mat<'_, T>,
    b: Mat<'_, T>,
    dst: &mut [T],
    accumulate: bool,
    threads: usize,
) -> Result<()> {
    let inside = |x: &Mat<'_, T>, rows: usize, cols: usize| {
        rows == 0
            || cols == 0
            || (rows - 1)
                .checked_mul(x.rs)
                .zip((cols - 1).checked_mul(x.cs))
                .and_then(|(r, c)| r.checked_add(c))
                .is_some_and(|last| {
                    last < x.data.len() && x.rs <= isize::MAX as usize && x.cs <= isize::MAX as usize
                })
    };
    if dst.len() != m * n || !inside(&a, m, k) || !inside(&b, k, n) {
        return Err(fail(format!("a {m}x{k} by {k}x{n} product does not fit its buffers")));
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 {
        if !accumulate {
            dst.fill(T::ZERO);
        }
        return Ok(());
    }
    // SAFETY: `inside` checked that every element `r·rs + c·cs` of each operand (r, c below its
    // sizes) lies in its slice, with strides that fit in `isize`; `dst` is exactly `m·n`
    // elements written (and read when accumulating) at `i·n + j`, a unique borrow aliasing
    // neither operand; `m, n, k > 0`.
    unsafe {
        Call::row_major(
            (m, n, k),
            dst.as_mut_ptr(),
            accumulate,
            (a.data.as_ptr(), a.rs as isize, a.cs as isize),
            (b.data.as_ptr(), b.rs as isize, b.cs as isize),
        )
        .run(threads);
    }
    Ok(())
}

/// An integer element type with wrapping arithmetic.
trait Int: Copy + Default {
    fn mul_add(self, a: Self, b: Self) -> Self;
}

impl Int for i32 {
    #[inline]
    fn mul_add(self, a: i32, b: i32) -> i32 {
        self.wrapping_add(a.wrapping_mul(b))
    }
}

impl Int for i64 {
    #[inline]
    fn mul_add(self, a: i64, b: i64) -> i64 {
        self.wrapping_add(a.wrapping_mul(b))
    }
}

fn int_matmul<T: Int>(step: &MatmulStep, dtype: DType, a: &[T], b: &[T], out: &mut [T]) -> Result<()> {
    let c = validate(step, dtype, a.len(), b.len(), out.len())?;
    out.fill(T::default());
    if out.is_empty() || c.k == 0 {
        return Ok(());
    }
    let (ars, acs) = (step.a.row_stride, step.a.col_stride);
    let (brs, bcs) = (step.b.row_stride, step.b.col_stride);
    for (bi, dst) in out.chunks_mut(c.m * c.n).enumerate() {
        let a0 = batch_base(&step.a, &step.batch, bi) as i64;
        let b0 = batch_base(&step.b, &step.batch, bi) as i64;
        for (i, row) in dst.chunks_mut(c.n).enumerate() {
            for p in 0..c.k {
                // In bounds by `validate`; indexing is still checked.
                let x = a[(a0 + ars * i as i64 + acs * p as i64) as usize];
                let brow = b0 + brs * p as i64;
                if bcs == 1 {
                    let start = brow as usize;
                    for (o, &y) in row.iter_mut().zip(&b[start..start + c.n]) {
                        *o = o.mul_add(x, y);
                    }
                } else {
                    for (j, o) in row.iter_mut().enumerate() {
                        *o = o.mul_add(x, b[(brow + bcs * j as i64) as usize]);
                    }
                }
            }
        }
    }
    Ok(())
}
