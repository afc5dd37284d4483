//! The bottom of the CPU executor: the worker pool, the buffer pointers its tasks share, the
//! launch of one compiled kernel over its space, and the error a run returns. The executor ([`exec`](super::exec)), row groups
//! ([`group`](super::group)) and library routines ([`library`](super::library)) build on this
//! module, which depends on none of them.
//!
//! The workers are rayon's global pool, started once per process, so a parallel launch costs
//! a wake-up (a few µs) rather than spawning threads (30–45 µs here). A parallel run splits
//! its work into one contiguous range per task; [`on_row_ranges`] reports the error of the
//! lowest range, so the error it returns never depends on thread timing.

use super::codegen::KernelError;
use crate::error::{EvalErrorKind, EvalOrigin};
use tenjit_ir::kernel::Kernel;
use tenjit_ir::Data;

/// Work (elements written, roughly) below which a step runs on the calling thread.
pub(super) const PARALLEL_MIN_ELEMENTS: usize = 1 << 16;

/// A failure while running a program: its kind (what [`crate::Error::Eval`] reports), the op
/// that failed, what failed, and the graph node and step it comes from.
#[derive(Clone, Debug)]
pub struct ExecError {
    /// What kind of failure.
    pub kind: EvalErrorKind,
    /// The failing op's name in the graph, for a failure found in data.
    pub op: Option<&'static str>,
    /// What failed.
    pub message: String,
    /// The graph node and the program step it comes from.
    pub origin: EvalOrigin,
}

impl ExecError {
    /// A failure of `kind` that is no one op's.
    pub(crate) fn new(kind: EvalErrorKind, message: impl Into<String>) -> ExecError {
        ExecError { kind, op: None, message: message.into(), origin: EvalOrigin::default() }
    }

    /// A failure of tenjit itself.
    pub(crate) fn internal(message: impl Into<String>) -> ExecError {
        ExecError::new(EvalErrorKind::Internal, message)
    }

    /// The error kernel `k` reported, with the node its failing instruction computes.
    pub(crate) fn of_kernel(k: &Kernel, e: KernelError) -> ExecError {
        let step = Some(format!("kernel {}", k.name));
        match e {
            KernelError::Arithmetic { op, message, site } => {
                let node = k.failing_sites().get(site).and_then(|&s| k.origin(s));
                let origin = EvalOrigin { node, step };
                ExecError { kind: EvalErrorKind::Arithmetic, op: Some(op), message: message.into(), origin }
            }
            KernelError::Arguments(_) => ExecError::internal(format!("kernel {}: {e}", k.name)),
        }
    }
}

impl From<ExecError> for crate::error::Error {
    fn from(e: ExecError) -> crate::error::Error {
        match e.op {
            Some(op) => crate::error::Error::eval_of(e.kind, op, e.message, e.origin),
            None => crate::error::Error::eval(e.kind, e.message),
        }
    }
}

impl std::fmt::Display for ExecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        crate::error::Error::from(self.clone()).fmt(f)
    }
}

impl std::error::Error for ExecError {}

/// The address of a buffer's first element.
pub(super) fn data_ptr(d: &Data) -> *mut u8 {
    match d {
        Data::Bool(v) => v.as_ptr() as *mut u8,
        Data::I32(v) => v.as_ptr() as *mut u8,
        Data::I64(v) => v.as_ptr() as *mut u8,
        Data::F16(v) => v.as_ptr() as *mut u8,
        Data::BF16(v) => v.as_ptr() as *mut u8,
        Data::F32(v) => v.as_ptr() as *mut u8,
        Data::F64(v) => v.as_ptr() as *mut u8,
    }
}

/// Buffer pointers shared by the tasks of one parallel launch (a kernel's or a row group's).
#[derive(Clone, Copy)]
pub(super) struct Ptrs<'a>(&'a [*mut u8]);

// SAFETY: the pointers are only dereferenced by generated kernel code and by `gemm`, and the
// tasks of one launch write disjoint rows: a kernel's tasks each get their own `start..end`
// range of the outermost output dimension, a row group's threads their own rows of every
// buffer the group writes (or their own scratch). Buffers read in full are not written during
// the launch.
unsafe impl Send for Ptrs<'_> {}
// SAFETY: as above; sharing the slice of pointers between threads only shares addresses.
unsafe impl Sync for Ptrs<'_> {}

impl<'a> Ptrs<'a> {
    /// Shares `ptrs` with the tasks of one launch.
    pub(super) fn new(ptrs: &'a [*mut u8]) -> Ptrs<'a> {
        Ptrs(ptrs)
    }

    /// The pointers (a method, so that closures capture the whole `Ptrs`).
    pub(super) fn get(self) -> &'a [*mut u8] {
        self.0
    }
}

/// Number of worker threads for large kernels.
/// Asked once: `available_parallelism` reads the cgroup files on every call (~10 µs).
pub fn threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
}

/// Runs `task(t)` for every `t` in `0..n` on the worker threads and waits for all of them; the
/// first error wins.
pub(super) fn on_workers<E: Send>(
    n: usize,
    task: impl Fn(usize) -> Result<(), E> + Sync + Send,
) -> Result<(), E> {
    use rayon::prelude::*;
    (0..n).into_par_iter().try_for_each(task)
}

/// Runs `task(r0..r1, rows)` over `out` viewed as `rows` equal rows, where the second argument
/// is rows `r0..r1` of `out`: on the calling thread as one range when `work` is below
/// [`PARALLEL_MIN_ELEMENTS`], else split into one contiguous range per worker. Every task runs
/// to its end or its own first error, and the error of the lowest range is returned, so a
/// task that reports the first bad element of its range makes the result the first bad
/// element of all of `out`, as a serial run would.
pub(super) fn on_row_ranges<T: Send, E: Send>(
    out: &mut [T],
    rows: usize,
    work: usize,
    task: impl Fn(std::ops::Range<usize>, &mut [T]) -> Result<(), E> + Sync + Send,
) -> Result<(), E> {
    use rayon::prelude::*;
    let n = threads().min(rows);
    if work < PARALLEL_MIN_ELEMENTS || n <= 1 || out.is_empty() {
        return task(0..rows, out);
    }
    let row_len = out.len() / rows;
    debug_assert_eq!(row_len * rows, out.len(), "rows of unequal length");
    let chunk = rows.div_ceil(n);
    let results: Vec<Result<(), E>> = out
        .par_chunks_mut(chunk * row_len)
        .enumerate()
        .map(|(t, part)| {
            let r0 = t * chunk;
            task(r0..r0 + part.len() / row_len, part)
        })
        .collect();
    results.into_iter().collect()
}

/// Runs compiled kernel `ck` over all of its space on the buffers `ptrs`, split across the
/// workers when `work` (its number of points) is large.
pub(super) fn run_kernel(
    ck: &super::codegen::CompiledKernel,
    ptrs: &[*mut u8],
    work: usize,
) -> Result<(), KernelError> {
    let outer = ck.outer_len();
    let n = threads().min(outer);
    if work < PARALLEL_MIN_ELEMENTS || n <= 1 {
        // SAFETY: `ptrs` holds one valid pointer per buffer of the program, each to an
        // allocation of the buffer's declared type and size; the kernel was compiled for
        // these declarations and reads and writes only within them.
        return unsafe { ck.run(ptrs, 0, outer) };
    }
    let shared = Ptrs::new(ptrs);
    let chunk = outer.div_ceil(n);
    on_workers(n, |t| {
        let (start, end) = (t * chunk, ((t + 1) * chunk).min(outer));
        // SAFETY: as above; the tasks cover disjoint `start..end` ranges of the outermost
        // output dimension, so their writes do not overlap.
        unsafe { ck.run(shared.get(), start, end) }
    })
}
