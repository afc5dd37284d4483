//! Running a compiled program on the CPU: buffers are allocated per run, kernels run on the
//! calling thread or, when large, split over their outermost output dimension across all
//! cores; matrix products go to `gemm`, and the few ops without a kernel run through the
//! reference interpreter's implementation of that one op.

use super::codegen::{self, CompiledKernel};
use super::gemm;
use super::group;
use super::memory::{self, step_buffers, MemoryPlan};
use std::sync::Arc;
use tenjit_ir::kernel::{BufId, BufferKind, OpStep, Program, Step};
use tenjit_ir::{Buffer, Data, Graph};

/// Kernels with fewer elements than this run on the calling thread.
const PARALLEL_MIN_ELEMENTS: usize = 1 << 16;

/// A program whose kernels are compiled to machine code.
pub struct CpuExecutable {
    program: Program,
    /// The compiled kernel of each step (`None` for non-kernel steps).
    kernels: Vec<Option<CompiledKernel>>,
    memory: MemoryPlan,
    /// The buffers released after each step.
    releases: Vec<Vec<BufId>>,
}

/// A failure while running a program.
#[derive(Clone, Debug)]
pub struct ExecError(pub String);

impl std::fmt::Display for ExecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ExecError {}

/// The address of a buffer's first element.
pub(super) fn data_ptr(d: &Data) -> *mut u8 {
    match d {
        Data::Bool(v) => v.as_ptr() as *mut u8,
        Data::I32(v) => v.as_ptr() as *mut u8,
        Data::I64(v) => v.as_ptr() as *mut u8,
        Data::F32(v) => v.as_ptr() as *mut u8,
        Data::F64(v) => v.as_ptr() as *mut u8,
    }
}

/// Buffer pointers shared by the threads of one kernel launch.
#[derive(Clone, Copy)]
struct Ptrs<'a>(&'a [*mut u8]);

// SAFETY: the pointers are only dereferenced by generated kernel code, and the threads of one
// launch write disjoint output rows (each thread gets its own `start..end` range of the
// outermost output dimension); inputs are only read.
unsafe impl Send for Ptrs<'_> {}
// SAFETY: as above; sharing the slice of pointers between threads only shares addresses.
unsafe impl Sync for Ptrs<'_> {}

/// Number of worker threads for large kernels.
/// Asked once: `available_parallelism` reads the cgroup files on every call (~10 µs).
pub fn threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
}

impl CpuExecutable {
    /// Compiles every kernel of `program`.
    pub fn compile(program: Program) -> Result<CpuExecutable, ExecError> {
        let mut kernels = Vec::with_capacity(program.steps.len());
        for step in &program.steps {
            kernels.push(match step {
                Step::Kernel(k) => Some(
                    codegen::compile(k, &program.buffers)
                        .map_err(|e| ExecError(format!("compiling kernel {}: {e}", k.name)))?,
                ),
                Step::Matmul(_) | Step::Op(_) => None,
            });
        }
        let memory = memory::plan(&program);
        let mut releases = vec![Vec::new(); program.steps.len()];
        for (b, r) in memory.release_after.iter().enumerate() {
            if let Some(s) = r {
                releases[*s].push(b);
            }
        }
        Ok(CpuExecutable { program, kernels, memory, releases })
    }

    /// The program.
    pub fn program(&self) -> &Program {
        &self.program
    }

    /// The program's memory plan.
    pub fn memory(&self) -> &MemoryPlan {
        &self.memory
    }

    /// Runs the program on `inputs` (one per graph input, typed as declared).
    pub fn run(&self, inputs: &[Arc<Buffer>]) -> Result<Vec<Buffer>, ExecError> {
        let p = &self.program;
        // Inputs are borrowed; temps are allocated just before the step that writes them and
        // released right after their last reader (see `memory`).
        let mut temps: Vec<Option<Data>> = vec![None; p.buffers.len()];
        let mut ptrs: Vec<*mut u8> = vec![std::ptr::null_mut(); p.buffers.len()];
        for (id, decl) in p.buffers.iter().enumerate() {
            if let BufferKind::Input(i) = decl.kind {
                let buf = inputs.get(i).ok_or_else(|| ExecError(format!("input {i} is missing")))?;
                if buf.ty() != decl.ty {
                    return Err(ExecError(format!(
                        "input {i} is {} but the program was compiled for {}",
                        buf.ty(),
                        decl.ty
                    )));
                }
                ptrs[id] = data_ptr(buf.data());
            }
        }
        let mut s = 0;
        while s < p.steps.len() {
            // A row group runs as one: its buffers are allocated first (but for its local ones,
            // which only exist as each thread's scratch), and released after it.
            let group = p.groups.iter().find(|g| g.steps.start == s);
            let span = group.map_or(s..s + 1, |g| g.steps.clone());
            for step in &p.steps[span.clone()] {
                if matches!(step, Step::Op(_)) {
                    continue;
                }
                for &w in &step_buffers(step).1 {
                    let local = group.is_some_and(|g| g.local.contains(&w));
                    if temps[w].is_none() && p.buffers[w].kind == BufferKind::Temp && !local {
                        let ty = &p.buffers[w].ty;
                        let data = memory::allocate(ty.dtype, ty.shape.numel());
                        ptrs[w] = data_ptr(&data);
                        temps[w] = Some(data);
                    }
                }
            }
            if let Some(g) = group {
                group::run(p, &self.kernels, g, &ptrs)?;
            } else {
                self.run_step(s, inputs, &mut temps, &mut ptrs)?;
            }
            for s in span.clone() {
                for &b in &self.releases[s] {
                    if let Some(d) = temps[b].take() {
                        memory::release(d);
                        ptrs[b] = std::ptr::null_mut();
                    }
                }
            }
            s = span.end;
        }
        let mut outs = Vec::with_capacity(p.outputs.len());
        for (k, &o) in p.outputs.iter().enumerate() {
            let decl = &p.buffers[o];
            // Move a temp out (no copy), unless a later output is the same buffer.
            let again = p.outputs[k + 1..].contains(&o);
            let data = match decl.kind {
                BufferKind::Input(i) => Some(inputs[i].data().clone()),
                BufferKind::Temp if again => temps[o].clone(),
                BufferKind::Temp => temps[o].take(),
            }
            .ok_or_else(|| ExecError(format!("output buffer b{o} was never written")))?;
            outs.push(Buffer::new(decl.ty.shape.clone(), data).map_err(|e| ExecError(e.to_string()))?);
        }
        Ok(outs)
    }

    /// Runs step `s` (not part of a group) over all of its space.
    fn run_step(
        &self,
        s: usize,
        inputs: &[Arc<Buffer>],
        temps: &mut [Option<Data>],
        ptrs: &mut [*mut u8],
    ) -> Result<(), ExecError> {
        let (step, kernel) = (&self.program.steps[s], &self.kernels[s]);
        match (step, kernel) {
            (Step::Kernel(k), Some(ck)) => {
                let work: usize = k.space.iter().product();
                run_kernel(ck, ptrs, work).map_err(|e| ExecError(format!("kernel {}: {e}", k.name)))?;
            }
            (Step::Matmul(m), _) => {
                let mut out =
                    temps[m.out].take().ok_or_else(|| ExecError("matmul output is not a temp".into()))?;
                let a = self.view(m.a.buf, inputs, temps);
                let b = self.view(m.b.buf, inputs, temps);
                let r = gemm::matmul_data(m, &a, &b, &mut out, threads());
                temps[m.out] = Some(out);
                r.map_err(|e| ExecError(format!("matmul: {e}")))?;
            }
            (Step::Op(op), _) => {
                let result = self.run_op(op, inputs, temps)?;
                temps[op.out] = Some(result.into_data());
                ptrs[op.out] = data_ptr(temps[op.out].as_ref().expect("just set"));
            }
            (Step::Kernel(k), None) => {
                return Err(ExecError(format!("kernel {} was not compiled", k.name)));
            }
        }
        Ok(())
    }

    /// A buffer's data, wherever it lives.
    fn view<'a>(
        &'a self,
        id: BufId,
        inputs: &'a [Arc<Buffer>],
        temps: &'a [Option<Data>],
    ) -> std::borrow::Cow<'a, Data> {
        match self.program.buffers[id].kind {
            BufferKind::Input(i) => std::borrow::Cow::Borrowed(inputs[i].data()),
            BufferKind::Temp => {
                std::borrow::Cow::Borrowed(temps[id].as_ref().expect("written before it is read"))
            }
        }
    }

    /// Runs one op through the reference interpreter's implementation.
    fn run_op(
        &self,
        step: &OpStep,
        inputs: &[Arc<Buffer>],
        temps: &[Option<Data>],
    ) -> Result<Buffer, ExecError> {
        let mut g = Graph::new("op");
        let mut args = Vec::new();
        let mut bufs = Vec::new();
        for (i, &a) in step.args.iter().enumerate() {
            let decl = &self.program.buffers[a];
            args.push(g.add_input(format!("a{i}"), decl.ty.clone()));
            let data = self.view(a, inputs, temps).into_owned();
            bufs.push(Buffer::new(decl.ty.shape.clone(), data).map_err(|e| ExecError(e.to_string()))?);
        }
        let out = g.add(step.op.clone(), &args).map_err(|e| ExecError(e.to_string()))?;
        g.set_outputs(vec![out]);
        let mut result = tenjit_ir::interp::eval(&g, &bufs).map_err(|e| ExecError(e.to_string()))?;
        Ok(result.remove(0))
    }
}

fn run_kernel(ck: &CompiledKernel, ptrs: &[*mut u8], work: usize) -> Result<(), String> {
    let outer = ck.outer_len();
    let n = threads().min(outer);
    if work < PARALLEL_MIN_ELEMENTS || n <= 1 {
        // SAFETY: `ptrs` holds one valid pointer per buffer of the program, each to an
        // allocation of the buffer's declared type and size; the kernel was compiled for
        // these declarations and reads and writes only within them.
        return unsafe { ck.run(ptrs, 0, outer) }.map_err(|e| e.to_string());
    }
    let shared = Ptrs(ptrs);
    let chunk = outer.div_ceil(n);
    on_workers(n, |t| {
        let p = shared;
        let (start, end) = (t * chunk, ((t + 1) * chunk).min(outer));
        // SAFETY: as above; the tasks cover disjoint `start..end` ranges of the outermost
        // output dimension, so their writes do not overlap.
        unsafe { ck.run(p.0, start, end) }.map_err(|e| e.to_string())
    })
}

/// Runs `task(t)` for every `t` in `0..n` on the worker threads and waits for all of them; the
/// first error wins. The workers are rayon's global pool, started once per process, so a
/// parallel launch costs a wake-up (a few µs) rather than spawning threads (30–45 µs here).
pub(super) fn on_workers<E: Send>(
    n: usize,
    task: impl Fn(usize) -> Result<(), E> + Sync + Send,
) -> Result<(), E> {
    use rayon::prelude::*;
    (0..n).into_par_iter().try_for_each(task)
}
