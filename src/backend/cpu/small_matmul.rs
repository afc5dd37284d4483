//! Matrix products small enough that a plain loop beats a call into `gemm`: a loop body runs
//! its products on every trip, and a `[4,1]x[1,1]` product (W5.small's) costs far less than
//! the call. The product accumulates in `f64` and rounds once, as the interpreter does.
//!
//! Whether a product qualifies ([`small_matmul_fits`]) is decided once, before the first trip,
//! and includes the bounds check of every element it addresses, so the loop itself
//! ([`small_matmul`]) checks nothing.

use tenjit_ir::kernel::{BufId, MatOperand, MatmulStep, Program};
use tenjit_ir::DType;

/// A matrix product of at most this many multiply-adds runs as a plain loop in a loop body
/// (a call into `gemm` costs more than such a product, and a body runs it on every trip).
pub(super) const SMALL_MATMUL_WORK: usize = 4096;

/// Whether product `m` of body `p` runs as [`small_matmul`]: no batch, `f32` or `f64`, at
/// most [`SMALL_MATMUL_WORK`] multiply-adds, and every element it addresses inside its buffer.
pub(super) fn small_matmul_fits(p: &Program, m: &MatmulStep) -> bool {
    let numel = |b: BufId| p.buffers[b].ty.shape.numel() as i128;
    let inside = |op: &MatOperand, rows: usize, cols: usize| {
        let (mut lo, mut hi) = (i128::from(op.offset), i128::from(op.offset));
        for (s, d) in [(op.row_stride, rows), (op.col_stride, cols)] {
            let span = i128::from(s) * (d as i128 - 1);
            lo += span.min(0);
            hi += span.max(0);
        }
        lo >= 0 && hi < numel(op.buf) && p.buffers[op.buf].ty.dtype == m.dtype
    };
    matches!(m.dtype, DType::F32 | DType::F64)
        && m.batch.is_empty()
        && m.m > 0
        && m.n > 0
        && m.k > 0
        && m.m.saturating_mul(m.n).saturating_mul(m.k) <= SMALL_MATMUL_WORK
        && numel(m.out) == (m.m * m.n) as i128
        && p.buffers[m.out].ty.dtype == m.dtype
        && inside(&m.a, m.m, m.k)
        && inside(&m.b, m.k, m.n)
}

/// An element type of [`small_matmul`], accumulated in `f64` and rounded once, as the
/// interpreter computes a float product.
pub(super) trait SmallFloat: Copy {
    /// The value in `f64` (exact).
    fn wide(self) -> f64;
    /// `x` rounded to this type.
    fn narrow(x: f64) -> Self;
}

impl SmallFloat for f32 {
    fn wide(self) -> f64 {
        self as f64
    }
    fn narrow(x: f64) -> f32 {
        x as f32
    }
}

impl SmallFloat for f64 {
    fn wide(self) -> f64 {
        self
    }
    fn narrow(x: f64) -> f64 {
        x
    }
}

/// Product `m` as a plain `i-j-p` loop.
///
/// # Safety
///
/// `m` passed [`small_matmul_fits`] for the program whose buffers `ptrs` points at, with `T`
/// its dtype: every element read or written lies in its buffer, and the output does not
/// overlap an operand (the lowering gives a product a fresh output buffer).
pub(super) unsafe fn small_matmul<T: SmallFloat>(m: &MatmulStep, ptrs: &[*mut u8]) {
    let (a, b, out) = (ptrs[m.a.buf] as *const T, ptrs[m.b.buf] as *const T, ptrs[m.out] as *mut T);
    for i in 0..m.m {
        for j in 0..m.n {
            let mut acc = 0.0f64;
            for q in 0..m.k {
                let ia = m.a.offset + m.a.row_stride * i as i64 + m.a.col_stride * q as i64;
                let ib = m.b.offset + m.b.row_stride * q as i64 + m.b.col_stride * j as i64;
                // SAFETY: the caller's contract puts both indices inside their buffers.
                acc += unsafe { (*a.offset(ia as isize)).wide() * (*b.offset(ib as isize)).wide() };
            }
            // SAFETY: the output is dense `[m, n]` and `i * n + j < m * n`.
            unsafe { *out.add(i * m.n + j) = T::narrow(acc) };
        }
    }
}
