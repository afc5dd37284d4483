//! Running a compiled program on the CPU: buffers are allocated per run, kernels run on the
//! calling thread or, when large, split over their outermost output dimension across all
//! cores; row groups run block of rows by block of rows (`group`), matrix products go to
//! `gemm`, and the few ops without a kernel run as library routines (`library`).
//!
//! Loop steps run their compiled bodies (`loops`).
//!
//! A run with two or more parallel steps runs on a worker of the pool, not on the calling
//! thread: a parallel step launched from outside the pool wakes the workers and puts the
//! caller to sleep until they finish (two wake-ups through the kernel, tens of µs under a
//! hypervisor), where a step launched from a worker shares its work with the other workers,
//! which spin a while between steps before they sleep. W10's generation (about 20 parallel
//! row groups per token) took 198-258 ms per 128 tokens that way against 235-462 ms from the
//! caller (alternating runs, AMD EPYC Zen 4, 2 cores, loaded by a build); a run with fewer
//! parallel steps stays on the caller, since the move itself costs a wake-up (W5.small's
//! one-kernel step: 1.9 µs from the caller, 16 µs through the pool).
//!
//! The executor sits above `loops`, `group` and `library`, which sit above `pool` (the workers,
//! kernel launches and the error type): nothing below calls back up.

use super::gemm;
use super::group;
use super::library::{self, Operand};
use super::loops::CompiledBody;
use super::memory::{self, step_buffers, MemoryPlan};
use super::pool::{data_ptr, run_kernel};
use crate::error::EvalErrorKind;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tenjit_ir::kernel::{print, BufId, BufferKind, OpStep, Program, Step};
use tenjit_ir::{Buffer, Data};

pub use super::pool::{threads, ExecError};

/// A program whose kernels are compiled to machine code.
pub struct CpuExecutable {
    /// The program, its compiled kernels and its compiled loop bodies.
    body: CompiledBody,
    memory: MemoryPlan,
    /// The buffers released after each step.
    releases: Vec<Vec<BufId>>,
    /// This executable's number in the profile (`crate::backend::profile`).
    id: u64,
    /// Whether a run moves onto a worker of the pool (see the module docs).
    in_pool: bool,
}

impl CpuExecutable {
    /// Compiles every kernel of `program` (and of the bodies of its loops).
    pub fn compile(program: Program) -> Result<CpuExecutable, ExecError> {
        let body = CompiledBody::compile(program)?;
        let memory = memory::plan(&body.program);
        let mut releases = vec![Vec::new(); body.program.steps.len()];
        for (b, r) in memory.release_after.iter().enumerate() {
            if let Some(s) = r {
                releases[*s].push(b);
            }
        }
        static COMPILED: AtomicU64 = AtomicU64::new(0);
        let id = COMPILED.fetch_add(1, Ordering::Relaxed);
        let in_pool = threads() > 1 && parallel_steps(&body.program) >= 2;
        Ok(CpuExecutable { body, memory, releases, id, in_pool })
    }

    /// The program.
    pub fn program(&self) -> &Program {
        &self.body.program
    }

    /// Whether a run moves onto a worker of the pool: the program has two or more steps
    /// that split over the workers, on a machine with more than one (see the module docs).
    pub fn runs_on_workers(&self) -> bool {
        self.in_pool
    }

    /// The program's memory plan.
    pub fn memory(&self) -> &MemoryPlan {
        &self.memory
    }

    /// Runs the program on `inputs` (one per graph input, typed as declared).
    pub fn run(&self, inputs: &[Arc<Buffer>]) -> Result<Vec<Buffer>, ExecError> {
        if self.in_pool && rayon::current_thread_index().is_none() {
            return rayon::scope(|_| self.run_here(inputs));
        }
        self.run_here(inputs)
    }

    /// [`CpuExecutable::run`] on the calling thread.
    fn run_here(&self, inputs: &[Arc<Buffer>]) -> Result<Vec<Buffer>, ExecError> {
        let p = &self.body.program;
        // Inputs are borrowed; temps are allocated just before the step that writes them and
        // released right after their last reader (see `memory`).
        let mut temps: Vec<Option<Data>> = vec![None; p.buffers.len()];
        let mut ptrs: Vec<*mut u8> = vec![std::ptr::null_mut(); p.buffers.len()];
        for (id, decl) in p.buffers.iter().enumerate() {
            if let BufferKind::Input(i) = decl.kind {
                let buf =
                    inputs.get(i).ok_or_else(|| ExecError::internal(format!("input {i} is missing")))?;
                if buf.ty() != decl.ty {
                    return Err(ExecError::internal(format!(
                        "input {i} is {} but the program was compiled for {}",
                        buf.ty(),
                        decl.ty
                    )));
                }
                ptrs[id] = data_ptr(buf.data());
            }
        }
        let profiling = crate::backend::profile::enabled();
        let mut s = 0;
        while s < p.steps.len() {
            // A row group runs as one: its buffers are allocated first (but for its local ones,
            // which only exist as each thread's scratch), and released after it.
            let group = p.groups.iter().find(|g| g.steps.start == s);
            let span = group.map_or(s..s + 1, |g| g.steps.clone());
            for step in &p.steps[span.clone()] {
                for &w in &step_buffers(step).1 {
                    let local = group.is_some_and(|g| g.local.contains(&w));
                    if temps[w].is_none() && p.buffers[w].kind == BufferKind::Temp && !local {
                        let ty = &p.buffers[w].ty;
                        let data = memory::allocate(ty.dtype, ty.shape.numel()).map_err(|e| {
                            ExecError::new(
                                EvalErrorKind::OutOfMemory,
                                format!("{e} for buffer b{w} of type {ty}"),
                            )
                        })?;
                        ptrs[w] = data_ptr(&data);
                        temps[w] = Some(data);
                    }
                }
            }
            let start = profiling.then(Instant::now);
            if let Some(g) = group {
                group::run(p, &self.body.kernels, g, &ptrs)?;
            } else {
                self.run_step(s, inputs, &mut temps, &mut ptrs)?;
            }
            if let Some(start) = start {
                crate::backend::profile::record(self.id, s, || self.step_name(span.clone()), start.elapsed());
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
            .ok_or_else(|| ExecError::internal(format!("output buffer b{o} was never written")))?;
            outs.push(
                Buffer::new(decl.ty.shape.clone(), data).map_err(|e| ExecError::internal(e.to_string()))?,
            );
        }
        Ok(outs)
    }

    /// A step as the profile names and classifies it: its kernel-list cells, or for a row
    /// group the names of its steps and the first one's space.
    fn step_name(&self, span: std::ops::Range<usize>) -> (String, String) {
        let steps = &self.body.program.steps[span];
        let cells: Vec<[String; 5]> = steps.iter().map(print::step_cells).collect();
        match (cells.as_slice(), steps) {
            ([one], [step]) => {
                let kind = match step {
                    Step::Kernel(k) if k.reduce.is_some() => "reduce",
                    Step::Kernel(_) => "elementwise",
                    Step::Matmul(_) => "matmul",
                    Step::Op(op) => op.op.name(),
                    Step::Loop(_) => "loop",
                };
                (format!("{}  {}  {}", one[0], one[1], one[2]), kind.to_string())
            }
            (many, _) => {
                let names: Vec<&str> = many.iter().map(|c| c[0].as_str()).collect();
                (format!("group {}  {}", names.join(", ").trim(), many[0][2]), "group".to_string())
            }
        }
    }

    /// Runs step `s` (not part of a group) over all of its space.
    fn run_step(
        &self,
        s: usize,
        inputs: &[Arc<Buffer>],
        temps: &mut [Option<Data>],
        ptrs: &mut [*mut u8],
    ) -> Result<(), ExecError> {
        let (step, kernel) = (&self.body.program.steps[s], &self.body.kernels[s]);
        match (step, kernel) {
            (Step::Kernel(k), Some(ck)) => {
                let work: usize = k.space.iter().product();
                run_kernel(ck, ptrs, work).map_err(|e| ExecError::of_kernel(k, e))?;
            }
            (Step::Matmul(m), _) => {
                let mut out =
                    temps[m.out].take().ok_or_else(|| ExecError::internal("matmul output is not a temp"))?;
                let a = self.data(m.a.buf, inputs, temps);
                let b = self.data(m.b.buf, inputs, temps);
                let r = gemm::matmul_data(m, a, b, &mut out, threads());
                temps[m.out] = Some(out);
                r.map_err(|e| ExecError::internal(format!("matmul: {e}")))?;
            }
            (Step::Op(op), _) => {
                let mut out = temps[op.out]
                    .take()
                    .ok_or_else(|| ExecError::internal(format!("{} output is not a temp", op.op.name())))?;
                let r = self.run_op(op, inputs, temps, &mut out);
                temps[op.out] = Some(out);
                r?;
            }
            (Step::Loop(l), _) => {
                let body = self.body.loops[s]
                    .as_deref()
                    .ok_or_else(|| ExecError::internal("a loop body was not compiled"))?;
                let mut outs = Vec::with_capacity(l.outs.len());
                for &o in &l.outs {
                    outs.push(
                        temps[o]
                            .take()
                            .ok_or_else(|| ExecError::internal("a loop's output is not a temp"))?,
                    );
                }
                let r = {
                    let args: Vec<&Data> = l.args.iter().map(|&a| self.data(a, inputs, temps)).collect();
                    // A failure inside the body is the loop's: the body's nodes are no nodes of
                    // the graph the caller evaluated.
                    super::loops::run(l, body, &args, &mut outs).map_err(|mut e| {
                        e.origin.node = l.origin;
                        e.origin.step =
                            Some(format!("loop step {s}, {}", e.origin.step.as_deref().unwrap_or("body")));
                        e
                    })
                };
                for (&o, d) in l.outs.iter().zip(outs) {
                    temps[o] = Some(d);
                }
                r?;
            }
            (Step::Kernel(k), None) => {
                return Err(ExecError::internal(format!("kernel {} was not compiled", k.name)));
            }
        }
        Ok(())
    }

    /// A buffer's data, wherever it lives.
    fn data<'a>(&self, id: BufId, inputs: &'a [Arc<Buffer>], temps: &'a [Option<Data>]) -> &'a Data {
        match self.body.program.buffers[id].kind {
            BufferKind::Input(i) => inputs[i].data(),
            BufferKind::Temp => temps[id].as_ref().expect("written before it is read"),
        }
    }

    /// Runs library step `step` into `out`, its output buffer.
    fn run_op(
        &self,
        step: &OpStep,
        inputs: &[Arc<Buffer>],
        temps: &[Option<Data>],
        out: &mut Data,
    ) -> Result<(), ExecError> {
        let buffers = &self.body.program.buffers;
        let args: Vec<Operand<'_>> = step
            .args
            .iter()
            .map(|&a| Operand { data: self.data(a, inputs, temps), dims: buffers[a].ty.shape.dims() })
            .collect();
        library::run(step, &args, out, buffers[step.out].ty.shape.dims())
    }
}

/// How many steps of `p` split over the workers, by the thresholds the steps use (a loop's
/// body counted once per trip): an estimate, for where a run goes (see the module docs).
fn parallel_steps(p: &Program) -> usize {
    let kernel_work = |k: &tenjit_ir::kernel::Kernel| k.space.iter().product::<usize>();
    let madds = |m: &tenjit_ir::kernel::MatmulStep| {
        m.batch.iter().product::<usize>().saturating_mul(m.m).saturating_mul(m.n).saturating_mul(m.k)
    };
    let mut count = 0usize;
    let mut s = 0;
    while s < p.steps.len() {
        if let Some(g) = p.groups.iter().find(|g| g.steps.start == s) {
            let work = p.steps[g.steps.clone()].iter().fold(0usize, |w, step| {
                w.saturating_add(match step {
                    Step::Kernel(k) => kernel_work(k),
                    Step::Matmul(m) => madds(m),
                    Step::Op(op) => p.buffers[op.out].ty.shape.numel(),
                    Step::Loop(_) => 0,
                })
            });
            count += usize::from(work >= group::PARALLEL_MIN_WORK);
            s = g.steps.end.max(s + 1);
            continue;
        }
        count = count.saturating_add(match &p.steps[s] {
            Step::Kernel(k) => usize::from(kernel_work(k) >= super::pool::PARALLEL_MIN_ELEMENTS),
            Step::Matmul(m) => usize::from(madds(m) >= gemm::PARALLEL_MIN_WORK),
            Step::Op(op) => {
                usize::from(p.buffers[op.out].ty.shape.numel() >= super::pool::PARALLEL_MIN_ELEMENTS)
            }
            Step::Loop(l) => parallel_steps(&l.body).saturating_mul(l.trips),
        });
        s += 1;
    }
    count
}
