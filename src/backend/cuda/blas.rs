//! Float matrix products through cuBLAS: planning a [`MatmulStep`] as cuBLAS calls (pure,
//! tested on any machine) and issuing them.
//!
//! # The column-major trick
//!
//! cuBLAS is column-major; tenjit's output is dense row-major `out[b..., m, n]`. A row-major
//! `m × n` matrix is the column-major `n × m` matrix of its transpose, so the product is
//! computed as `outᵀ = bᵀ · aᵀ`: cuBLAS's `A` is tenjit's `b`, its `B` is tenjit's `a`, its
//! `(m, n, k)` is `(n, m, k)` and `ldc = n`.
//!
//! An operand `x` (rows `R`, columns `C`, element `(r, c)` at `offset + r·rs + c·cs`) is given
//! to cuBLAS as `xᵀ` (`C × R`) in one of two ways ([`operand`]):
//!
//! * `cs = 1`: `xᵀ` is column-major with leading dimension `rs` — `CUBLAS_OP_N`, `ld = rs`;
//! * `rs = 1`: `x` is column-major with leading dimension `cs`, and cuBLAS transposes it —
//!   `CUBLAS_OP_T`, `ld = cs`.
//!
//! A stride along an axis of extent 1 is never used, so it may be anything. cuBLAS also
//! requires `ld ≥ max(1, rows of the stored matrix)`; views that fail both forms (a zero
//! stride over a broadcast axis, negative strides, non-unit strides on both axes, overlapping
//! rows) run the rendered matmul kernel instead ([`GemmPlan::Kernel`]).
//!
//! # Batches
//!
//! Batch dims of extent 1 are dropped and neighbouring dims merged when every operand's
//! strides allow (`s[d] = s[d+1] · batch[d+1]`, the output's always do). One remaining batch
//! dim is one `gemmStridedBatched` call (a stride of 0 broadcasts an operand over the batch);
//! several are a loop of such calls over the outer dims, up to [`MAX_CALLS`] calls. Negative
//! batch strides, counts or leading dimensions beyond `i32`, and `k = 0` (the kernel writes
//! the zeros) also go to the kernel.
//!
//! cuBLAS accumulates `f32` products in `f32` (with FMA, in its own order), where the
//! interpreter accumulates in `f64` and rounds once: results agree within the tolerance of
//! `tests/gemm.rs`, not bit for bit. The math mode is `CUBLAS_DEFAULT_MATH` (no TF32).

use super::runtime::{elem_bytes, CudaError};
use cudarc::cublas::sys::{cublasMath_t, cublasOperation_t};
use cudarc::cublas::CudaBlas;
use std::sync::{Arc, Mutex};
use tenjit_ir::kernel::MatmulStep;
use tenjit_ir::DType;

/// Most cuBLAS calls one step may take (batch dims that do not collapse loop over calls).
pub const MAX_CALLS: usize = 64;

/// Whether cuBLAS reads a stored matrix as is or transposed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trans {
    /// `CUBLAS_OP_N`.
    N,
    /// `CUBLAS_OP_T`.
    T,
}

impl Trans {
    fn op(self) -> cublasOperation_t {
        match self {
            Trans::N => cublasOperation_t::CUBLAS_OP_N,
            Trans::T => cublasOperation_t::CUBLAS_OP_T,
        }
    }
}

/// One operand as cuBLAS takes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlasOperand {
    /// Transposed or not.
    pub trans: Trans,
    /// The leading dimension.
    pub ld: i32,
    /// Elements between consecutive matrices of the batch (0: the same matrix for all).
    pub stride: i64,
}

/// The arguments of `cublas{S,D}gemmStridedBatched`, in cuBLAS's names: `C = op(A) · op(B)`,
/// `A` is tenjit's right operand `b`, `B` its left operand `a`, `C` the output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlasGemm {
    /// `f32` or `f64`.
    pub dtype: DType,
    /// Rows of `C` (tenjit's `n`).
    pub m: i32,
    /// Columns of `C` (tenjit's `m`).
    pub n: i32,
    /// The contracted size.
    pub k: i32,
    /// cuBLAS's `A` (tenjit's `b`).
    pub a: BlasOperand,
    /// cuBLAS's `B` (tenjit's `a`).
    pub b: BlasOperand,
    /// The leading dimension of `C` (tenjit's `n`).
    pub ldc: i32,
    /// Elements between consecutive output matrices.
    pub stride_c: i64,
    /// Matrices per call.
    pub batch: i32,
    /// One call per entry: the element offsets of `A`, `B` and `C` in their buffers.
    pub calls: Vec<[i64; 3]>,
}

/// How a matrix product runs on the device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GemmPlan {
    /// Through cuBLAS.
    Blas(BlasGemm),
    /// Through the rendered matmul kernel, and why.
    Kernel(&'static str),
}

/// How cuBLAS can read `xᵀ` for an operand `x` of `rows × cols` with strides `rs`, `cs`, or
/// `None`. See the module doc.
pub fn operand(rows: usize, cols: usize, rs: i64, cs: i64) -> Option<(Trans, i32)> {
    let fits = |ld: i64, min: usize| ld >= (min.max(1) as i64) && i32::try_from(ld).is_ok();
    // xᵀ (cols × rows) stored column-major: (c, r) at c + r·ld.
    if cs == 1 || cols <= 1 {
        let ld = if rows <= 1 { cols.max(1) as i64 } else { rs };
        if fits(ld, cols) {
            return Some((Trans::N, ld as i32));
        }
    }
    // x (rows × cols) stored column-major: (r, c) at r + c·ld, transposed by cuBLAS.
    if rs == 1 || rows <= 1 {
        let ld = if cols <= 1 { rows.max(1) as i64 } else { cs };
        if fits(ld, rows) {
            return Some((Trans::T, ld as i32));
        }
    }
    None
}

/// A batch dim after collapsing: extent and the strides of `a`, `b` and the output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct BatchDim {
    extent: usize,
    strides: [i64; 3],
}

/// The batch dims with extent-1 dims dropped and mergeable neighbours merged.
fn collapse(step: &MatmulStep) -> Vec<BatchDim> {
    let nb = step.batch.len();
    let mut out_stride = (step.m * step.n) as i64;
    let mut dims = vec![BatchDim { extent: 1, strides: [0; 3] }; nb];
    for d in (0..nb).rev() {
        dims[d] = BatchDim {
            extent: step.batch[d],
            strides: [step.a.batch_strides[d], step.b.batch_strides[d], out_stride],
        };
        out_stride = out_stride.saturating_mul(step.batch[d] as i64);
    }
    let mut merged: Vec<BatchDim> = Vec::new();
    for d in dims.into_iter().filter(|d| d.extent != 1) {
        if let Some(last) = merged.last_mut() {
            // last (outer) and d (inner) merge when the outer stride steps over the inner dim.
            let ok = (0..3).all(|i| Some(last.strides[i]) == d.strides[i].checked_mul(d.extent as i64));
            if ok {
                if let Some(extent) = last.extent.checked_mul(d.extent) {
                    *last = BatchDim { extent, strides: d.strides };
                    continue;
                }
            }
        }
        merged.push(d);
    }
    merged
}

/// Plans a float [`MatmulStep`] as cuBLAS calls, or says why the kernel must run it.
///
/// The step must be one the code generator rendered (its operands were checked to lie inside
/// their buffers); nothing here reads memory.
pub fn plan(step: &MatmulStep) -> GemmPlan {
    if !matches!(step.dtype, DType::F32 | DType::F64) {
        return GemmPlan::Kernel("cuBLAS runs float products only");
    }
    let nb = step.batch.len();
    if step.a.batch_strides.len() != nb || step.b.batch_strides.len() != nb {
        return GemmPlan::Kernel("batch strides do not match the batch dims");
    }
    if step.m == 0 || step.n == 0 || step.batch.contains(&0) {
        return GemmPlan::Kernel("empty output");
    }
    if step.k == 0 {
        return GemmPlan::Kernel("k = 0: the output is zeros");
    }
    let (Ok(m), Ok(n), Ok(k)) = (i32::try_from(step.m), i32::try_from(step.n), i32::try_from(step.k)) else {
        return GemmPlan::Kernel("a dimension exceeds cuBLAS's 32-bit sizes");
    };
    // cuBLAS's A is tenjit's b (k × n), its B is tenjit's a (m × k).
    let Some((ta, lda)) = operand(step.k, step.n, step.b.row_stride, step.b.col_stride) else {
        return GemmPlan::Kernel("the right operand's layout is not one cuBLAS reads");
    };
    let Some((tb, ldb)) = operand(step.m, step.k, step.a.row_stride, step.a.col_stride) else {
        return GemmPlan::Kernel("the left operand's layout is not one cuBLAS reads");
    };
    let dims = collapse(step);
    if dims.iter().any(|d| d.strides[0] < 0 || d.strides[1] < 0) {
        return GemmPlan::Kernel("a negative batch stride");
    }
    let (inner, outer) = match dims.split_last() {
        Some((inner, outer)) => (*inner, outer),
        None => (BatchDim { extent: 1, strides: [0; 3] }, &[][..]),
    };
    let Ok(batch) = i32::try_from(inner.extent) else {
        return GemmPlan::Kernel("a batch larger than cuBLAS's 32-bit count");
    };
    let ncalls = outer.iter().try_fold(1usize, |acc, d| acc.checked_mul(d.extent));
    if ncalls.is_none_or(|c| c > MAX_CALLS) {
        return GemmPlan::Kernel("batch dims that do not collapse, over too many cuBLAS calls");
    }
    // One call per index of the outer dims, row-major.
    let mut calls = vec![[step.b.offset, step.a.offset, 0]];
    for d in outer {
        let mut next = Vec::with_capacity(calls.len() * d.extent);
        for c in &calls {
            for i in 0..d.extent as i64 {
                // tenjit's (a, b, out) strides are cuBLAS's (B, A, C).
                next.push([c[0] + i * d.strides[1], c[1] + i * d.strides[0], c[2] + i * d.strides[2]]);
            }
        }
        calls = next;
    }
    GemmPlan::Blas(BlasGemm {
        dtype: step.dtype,
        m: n,
        n: m,
        k,
        a: BlasOperand { trans: ta, ld: lda, stride: inner.strides[1] },
        b: BlasOperand { trans: tb, ld: ldb, stride: inner.strides[0] },
        ldc: n,
        stride_c: inner.strides[2],
        batch,
        calls,
    })
}

/// A cuBLAS handle on a device's stream, shared by the executables on that device. Calls
/// through it hold its lock (a handle's configuration is not safe to share mid-call).
pub(crate) struct Blas {
    handle: Mutex<CudaBlas>,
}

impl std::fmt::Debug for Blas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Blas")
    }
}

/// Whether cuBLAS can be loaded. A `libcublas.so.12` from the `nvidia-cublas-cu12` wheel in a
/// CUDA tools directory (`nvidia/cublas/lib`, see [`super::nvrtc::tools_dirs`]) is loaded
/// first, by full path, so cudarc's later load by name finds it.
pub fn library_present() -> bool {
    static PRESENT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *PRESENT.get_or_init(|| {
        preload_from_tools();
        // SAFETY: `is_culib_present` only dlopens and closes candidate library names.
        unsafe { cudarc::cublas::sys::is_culib_present() }
    })
}

#[cfg(unix)]
fn preload_from_tools() {
    use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_NOW};
    for dir in super::nvrtc::tools_dirs() {
        let lib = dir.join("nvidia/cublas/lib");
        let (lt, blas) = (lib.join("libcublasLt.so.12"), lib.join("libcublas.so.12"));
        if !(lt.is_file() && blas.is_file()) {
            continue;
        }
        for path in [lt, blas] {
            // SAFETY: loading cuBLAS runs its initializers, which have no preconditions.
            match unsafe { Library::open(Some(&path), RTLD_NOW | RTLD_GLOBAL) } {
                // Kept loaded for the life of the process: cudarc calls into it.
                Ok(l) => std::mem::forget(l),
                Err(_) => return,
            }
        }
        return;
    }
}

#[cfg(not(unix))]
fn preload_from_tools() {}

impl Blas {
    /// A handle issuing its work on `stream`, in the default (full precision) math mode.
    pub(crate) fn new(stream: Arc<cudarc::driver::CudaStream>) -> Result<Blas, CudaError> {
        let err = |call: &str, e: cudarc::cublas::result::CublasError| CudaError::Blas {
            call: call.to_string(),
            status: format!("{:?}", e.0),
        };
        let blas = CudaBlas::new(stream).map_err(|e| err("cublasCreate", e))?;
        // SAFETY: the handle is valid (just created); the mode is a valid enum value.
        unsafe { cudarc::cublas::sys::cublasSetMathMode(*blas.handle(), cublasMath_t::CUBLAS_DEFAULT_MATH) }
            .result()
            .map_err(|e| err("cublasSetMathMode", e))?;
        Ok(Blas { handle: Mutex::new(blas) })
    }

    /// Issues the calls of `g` on the handle's stream: `a`, `b` and `out` are the device
    /// addresses of tenjit's left operand, right operand and output buffers.
    ///
    /// # Safety
    ///
    /// The addresses are live allocations of `g.dtype` on the handle's device, `g` was planned
    /// by [`plan`] for a step the code generator checked against these buffers (so every
    /// element read lies inside `a` and `b` and every element written inside `out`), and the
    /// buffers stay allocated until the stream has run the calls.
    pub(crate) unsafe fn gemm(&self, g: &BlasGemm, a: u64, b: u64, out: u64) -> Result<(), CudaError> {
        let blas = self.handle.lock().unwrap_or_else(|p| p.into_inner());
        let h = *blas.handle();
        let size = elem_bytes(g.dtype) as u64;
        let at = |base: u64, off: i64| base + off as u64 * size;
        for c in &g.calls {
            // cuBLAS's A is tenjit's b, its B tenjit's a.
            let (pa, pb, pc) = (at(b, c[0]), at(a, c[1]), at(out, c[2]));
            let r = match g.dtype {
                DType::F32 => {
                    let (alpha, beta) = (1.0f32, 0.0f32);
                    // SAFETY: the caller's contract; alpha and beta are host scalars (the
                    // handle's default pointer mode).
                    unsafe {
                        cudarc::cublas::result::sgemm_strided_batched(
                            h,
                            g.a.trans.op(),
                            g.b.trans.op(),
                            g.m,
                            g.n,
                            g.k,
                            &alpha,
                            pa as *const f32,
                            g.a.ld,
                            g.a.stride,
                            pb as *const f32,
                            g.b.ld,
                            g.b.stride,
                            &beta,
                            pc as *mut f32,
                            g.ldc,
                            g.stride_c,
                            g.batch,
                        )
                    }
                }
                DType::F64 => {
                    let (alpha, beta) = (1.0f64, 0.0f64);
                    // SAFETY: as above.
                    unsafe {
                        cudarc::cublas::result::dgemm_strided_batched(
                            h,
                            g.a.trans.op(),
                            g.b.trans.op(),
                            g.m,
                            g.n,
                            g.k,
                            &alpha,
                            pa as *const f64,
                            g.a.ld,
                            g.a.stride,
                            pb as *const f64,
                            g.b.ld,
                            g.b.stride,
                            &beta,
                            pc as *mut f64,
                            g.ldc,
                            g.stride_c,
                            g.batch,
                        )
                    }
                }
                // `plan` gives cuBLAS `f32` and `f64` products only; the generated kernel runs
                // the others (16-bit floats widened to `float`, accumulated in `double`).
                DType::Bool | DType::I32 | DType::I64 | DType::F16 | DType::BF16 => {
                    return Err(CudaError::Internal(format!("cuBLAS asked for a {} product", g.dtype)))
                }
            };
            let name =
                if g.dtype == DType::F32 { "cublasSgemmStridedBatched" } else { "cublasDgemmStridedBatched" };
            r.map_err(|e| CudaError::Blas { call: name.to_string(), status: format!("{:?}", e.0) })?;
        }
        Ok(())
    }
}

/// Reads a [`MatOperand`]'s element `(batch index, r, c)` offset; used by the tests' cuBLAS
/// emulation and kept beside the plan it checks.
#[cfg(test)]
fn element(op: &tenjit_ir::kernel::MatOperand, bidx: &[usize], r: usize, c: usize) -> i64 {
    op.offset
        + op.batch_strides.iter().zip(bidx).map(|(&s, &i)| s * i as i64).sum::<i64>()
        + op.row_stride * r as i64
        + op.col_stride * c as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use tenjit_ir::kernel::MatOperand;

    fn mat(buf: usize, offset: i64, batch_strides: Vec<i64>, rs: i64, cs: i64) -> MatOperand {
        MatOperand { buf, offset, batch_strides, row_stride: rs, col_stride: cs }
    }

    fn step(batch: Vec<usize>, m: usize, k: usize, n: usize, a: MatOperand, b: MatOperand) -> MatmulStep {
        MatmulStep { dtype: DType::F64, batch, m, k, n, a, b, out: 2 }
    }

    /// A dense row-major step `[batch..., m, k] @ [batch..., k, n]`.
    fn dense(batch: &[usize], m: usize, k: usize, n: usize) -> MatmulStep {
        let strides = |rows: usize, cols: usize| {
            let mut s = vec![0i64; batch.len()];
            let mut acc = (rows * cols) as i64;
            for d in (0..batch.len()).rev() {
                s[d] = acc;
                acc *= batch[d] as i64;
            }
            s
        };
        step(
            batch.to_vec(),
            m,
            k,
            n,
            mat(0, 0, strides(m, k), k as i64, 1),
            mat(1, 0, strides(k, n), n as i64, 1),
        )
    }

    /// cuBLAS's strided batched gemm on host memory, by its definition (column-major,
    /// `C = op(A) · op(B)`, alpha 1, beta 0).
    fn emulate(g: &BlasGemm, a: &[f64], b: &[f64], out: &mut [f64]) {
        // tenjit's b is cuBLAS's A, its a cuBLAS's B.
        let (ca, cb) = (b, a);
        let get = |x: &[f64], o: &BlasOperand, base: i64, rows: i32, cols: i32, i: i32, j: i32| {
            // Element (i, j) of op(X), an rows × cols matrix.
            assert!(i < rows && j < cols);
            let idx = match o.trans {
                Trans::N => base + i as i64 + j as i64 * o.ld as i64,
                Trans::T => base + j as i64 + i as i64 * o.ld as i64,
            };
            x[usize::try_from(idx).expect("negative index")]
        };
        for call in &g.calls {
            for t in 0..g.batch as i64 {
                for i in 0..g.m {
                    for j in 0..g.n {
                        let mut acc = 0.0;
                        for p in 0..g.k {
                            let x = get(ca, &g.a, call[0] + t * g.a.stride, g.m, g.k, i, p);
                            let y = get(cb, &g.b, call[1] + t * g.b.stride, g.k, g.n, p, j);
                            acc += x * y;
                        }
                        let idx = call[2] + t * g.stride_c + i as i64 + j as i64 * g.ldc as i64;
                        out[idx as usize] = acc;
                    }
                }
            }
        }
    }

    /// The product by its definition over the step's strided views.
    fn reference(s: &MatmulStep, a: &[f64], b: &[f64]) -> Vec<f64> {
        let nbatch: usize = s.batch.iter().product();
        let mut out = vec![f64::NAN; nbatch * s.m * s.n];
        for flat in 0..nbatch {
            let mut bidx = vec![0; s.batch.len()];
            let mut rest = flat;
            for d in (0..s.batch.len()).rev() {
                bidx[d] = rest % s.batch[d];
                rest /= s.batch[d];
            }
            for i in 0..s.m {
                for j in 0..s.n {
                    let mut acc = 0.0;
                    for p in 0..s.k {
                        acc +=
                            a[element(&s.a, &bidx, i, p) as usize] * b[element(&s.b, &bidx, p, j) as usize];
                    }
                    out[(flat * s.m + i) * s.n + j] = acc;
                }
            }
        }
        out
    }

    /// Elements of a buffer large enough for every address the operand reaches.
    fn values(op: &MatOperand, batch: &[usize], rows: usize, cols: usize, seed: u64) -> Vec<f64> {
        let mut hi = op.offset;
        for (&s, &n) in op.batch_strides.iter().zip(batch) {
            hi += s.max(0) * (n as i64 - 1);
        }
        hi += op.row_stride.max(0) * (rows as i64 - 1) + op.col_stride.max(0) * (cols as i64 - 1);
        (0..=hi as u64).map(|i| ((i * 7 + seed * 13) % 17) as f64 - 8.0).collect()
    }

    /// Plans `s`, expecting cuBLAS, and checks the emulated calls against the definition.
    fn check_blas(s: &MatmulStep) -> BlasGemm {
        let GemmPlan::Blas(g) = plan(s) else { panic!("expected cuBLAS for {s:?}, got {:?}", plan(s)) };
        let a = values(&s.a, &s.batch, s.m, s.k, 1);
        let b = values(&s.b, &s.batch, s.k, s.n, 2);
        let nbatch: usize = s.batch.iter().product();
        let mut out = vec![f64::NAN; nbatch * s.m * s.n];
        emulate(&g, &a, &b, &mut out);
        assert_eq!(out, reference(s, &a, &b), "{s:?}\n{g:?}");
        g
    }

    #[test]
    fn a_dense_product_is_one_call_with_the_operands_swapped() {
        let g = check_blas(&dense(&[], 3, 4, 5));
        assert_eq!((g.m, g.n, g.k, g.ldc, g.batch), (5, 3, 4, 5, 1));
        assert_eq!(g.a, BlasOperand { trans: Trans::N, ld: 5, stride: 0 });
        assert_eq!(g.b, BlasOperand { trans: Trans::N, ld: 4, stride: 0 });
        assert_eq!(g.calls, vec![[0, 0, 0]]);
    }

    #[test]
    fn transposed_views_use_op_t() {
        // a = x.T for a dense x of [k, m]: element (r, c) at c·m + r.
        let s = step(vec![], 3, 4, 5, mat(0, 0, vec![], 1, 3), mat(1, 0, vec![], 5, 1));
        let g = check_blas(&s);
        assert_eq!(g.b, BlasOperand { trans: Trans::T, ld: 3, stride: 0 });
        // b = y.T for a dense y of [n, k].
        let s = step(vec![], 3, 4, 5, mat(0, 0, vec![], 4, 1), mat(1, 0, vec![], 1, 4));
        let g = check_blas(&s);
        assert_eq!(g.a, BlasOperand { trans: Trans::T, ld: 4, stride: 0 });
        // Both transposed, with offsets and padded leading dimensions (a slice of a wider
        // matrix).
        let s = step(vec![], 3, 4, 5, mat(0, 2, vec![], 1, 7), mat(1, 3, vec![], 1, 9));
        check_blas(&s);
    }

    #[test]
    fn batches_are_strided_and_broadcast_batches_have_stride_zero() {
        let g = check_blas(&dense(&[6], 3, 4, 5));
        assert_eq!((g.batch, g.a.stride, g.b.stride, g.stride_c), (6, 20, 12, 15));
        // A broadcast left operand (one matrix for the whole batch).
        let mut s = dense(&[6], 3, 4, 5);
        s.a.batch_strides = vec![0];
        let g = check_blas(&s);
        assert_eq!(g.b.stride, 0);
        // Two dense batch dims collapse into one call.
        let g = check_blas(&dense(&[2, 3], 3, 4, 5));
        assert_eq!((g.batch, g.calls.len()), (6, 1));
        // Extent-1 batch dims are dropped whatever their strides.
        let mut s = dense(&[1, 4, 1], 2, 2, 2);
        s.a.batch_strides[0] = 999;
        s.b.batch_strides[2] = -5;
        let g = check_blas(&s);
        assert_eq!((g.batch, g.calls.len()), (4, 1));
    }

    #[test]
    fn batch_dims_that_do_not_collapse_loop_over_calls() {
        // The left operand broadcast over the outer dim only: [2, 3] batch, a strides [0, 12].
        let mut s = dense(&[2, 3], 3, 4, 5);
        s.a.batch_strides = vec![0, 12];
        let g = check_blas(&s);
        assert_eq!((g.batch, g.calls.len()), (3, 2));
        assert_eq!(g.calls, vec![[0, 0, 0], [60, 0, 45]]);
        // A permuted batch: the outer dim has the smaller stride.
        let mut s = dense(&[2, 3], 2, 2, 2);
        s.a.batch_strides = vec![4, 8];
        check_blas(&s);
        // Too many calls: the kernel.
        let mut s = dense(&[100, 3], 2, 2, 2);
        s.a.batch_strides = vec![0, 4];
        assert!(matches!(plan(&s), GemmPlan::Kernel(_)));
    }

    #[test]
    fn degenerate_extents_ignore_their_strides() {
        // A row vector times a matrix (m = 1): the left operand's row stride is unused.
        let s = step(vec![], 1, 4, 5, mat(0, 0, vec![], 0, 1), mat(1, 0, vec![], 5, 1));
        check_blas(&s);
        // A matrix times a column vector (n = 1) whose column stride is 0.
        let s = step(vec![], 3, 4, 1, mat(0, 0, vec![], 4, 1), mat(1, 0, vec![], 1, 0));
        check_blas(&s);
        // k = 1: an outer product; the row strides of b are unused.
        let s = step(vec![], 3, 1, 5, mat(0, 0, vec![], 1, 0), mat(1, 0, vec![], 0, 1));
        check_blas(&s);
        // All ones.
        check_blas(&step(vec![], 1, 1, 1, mat(0, 3, vec![], 0, 0), mat(1, 2, vec![], 0, 0)));
    }

    #[test]
    fn layouts_cublas_cannot_read_go_to_the_kernel() {
        let cases = [
            // Non-unit strides on both axes of a.
            step(vec![], 3, 4, 5, mat(0, 0, vec![], 8, 2), mat(1, 0, vec![], 5, 1)),
            // A negative column stride (a flip).
            step(vec![], 3, 4, 5, mat(0, 3, vec![], 4, -1), mat(1, 0, vec![], 5, 1)),
            // A broadcast row (row stride 0 over 3 rows).
            step(vec![], 3, 4, 5, mat(0, 0, vec![], 0, 1), mat(1, 0, vec![], 5, 1)),
            // Overlapping rows (ld below the row length).
            step(vec![], 3, 4, 5, mat(0, 0, vec![], 2, 1), mat(1, 0, vec![], 5, 1)),
        ];
        for s in cases {
            assert!(matches!(plan(&s), GemmPlan::Kernel(_)), "{s:?}: {:?}", plan(&s));
        }
        // A negative batch stride.
        let mut s = dense(&[3], 2, 2, 2);
        s.a.batch_strides = vec![-4];
        s.a.offset = 8;
        assert!(matches!(plan(&s), GemmPlan::Kernel(_)));
        // k = 0, empty outputs and integer products.
        assert!(matches!(plan(&dense(&[], 3, 0, 5)), GemmPlan::Kernel(_)));
        assert!(matches!(plan(&dense(&[0], 3, 2, 5)), GemmPlan::Kernel(_)));
        let mut s = dense(&[], 3, 2, 5);
        s.dtype = DType::I32;
        assert!(matches!(plan(&s), GemmPlan::Kernel(_)));
        // Malformed batch strides are not a panic.
        let mut s = dense(&[2], 3, 2, 5);
        s.b.batch_strides.clear();
        assert!(matches!(plan(&s), GemmPlan::Kernel(_)));
    }

    /// Random strided steps: whatever the plan, a cuBLAS plan computes the definition.
    #[test]
    fn random_layouts_plan_correctly() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let mut blas = 0;
        for _ in 0..2000 {
            let nb = next(3) as usize;
            let batch: Vec<usize> = (0..nb).map(|_| 1 + next(3) as usize).collect();
            let (m, k, n) = (1 + next(4) as usize, 1 + next(4) as usize, 1 + next(4) as usize);
            let operand = |rows: usize, cols: usize, next: &mut dyn FnMut(u64) -> u64| {
                // Dense, transposed, padded or broadcast layouts, nonnegative strides.
                let pad = next(3) as i64;
                let (rs, cs) = match next(4) {
                    0 => (cols as i64 + pad, 1),
                    1 => (1, rows as i64 + pad),
                    2 => (next(3) as i64, next(3) as i64),
                    _ => (0, 1),
                };
                let span = (rows * cols) as i64 + pad * rows.max(cols) as i64 + 1;
                let bs: Vec<i64> =
                    (0..nb).map(|_| if next(4) == 0 { 0 } else { span * (1 + next(3) as i64) }).collect();
                mat(0, next(3) as i64, bs, rs, cs)
            };
            let a = operand(m, k, &mut next);
            let mut b = operand(k, n, &mut next);
            b.buf = 1;
            let s = step(batch, m, k, n, a, b);
            if let GemmPlan::Blas(_) = plan(&s) {
                check_blas(&s);
                blas += 1;
            }
        }
        assert!(blas > 500, "only {blas} of 2000 random steps went to cuBLAS");
    }
}
