//! Running a loop step on the CPU: the body's program, compiled once with the executable that
//! holds it, runs `trips` times with its carried buffers swapped between trips.
//!
//! Everything is prepared once per run of the step, nothing per trip: every temporary of the
//! body is allocated once, the buffers of the carried values twice (set A and set B), and three
//! tables of buffer pointers are built: for the first trip (carried values read from the
//! step's operands, written to A), for odd trips (read A, write B) and for even trips after
//! the first (read B, write A). A trip then writes the counter and calls the compiled kernels,
//! GEMMs and library routines on its table: no allocation, no copy, no bookkeeping, and no
//! profiling timer (the executor times the loop step as a whole). The final carried values are
//! copied once into the step's outputs.
//!
//! A body output never aliases a body input (the lowering gives an output that is an input a
//! copy kernel), so a trip never overwrites what it reads; two outputs may share a buffer
//! (CSE merged two equal carried values), which the tables handle by mapping both carried
//! inputs of the next trip to it.

use super::codegen::{self, CompiledKernel};
use super::gemm;
use super::library::{self, Operand};
use super::memory;
use super::pool::{data_ptr, run_kernel, threads, ExecError};
use super::small_matmul::{small_matmul, small_matmul_fits};
use crate::error::EvalErrorKind;
use tenjit_ir::kernel::{BufId, BufferKind, Group, LoopStep, Program, Step};
use tenjit_ir::{DType, Data};

/// A program with its kernels compiled, and the compiled bodies of its loops: a loop body, or
/// (inside [`CpuExecutable`](super::exec::CpuExecutable)) a whole program.
pub(super) struct CompiledBody {
    pub(super) program: Program,
    /// The compiled kernel of each step (`None` for the steps that are not kernels).
    pub(super) kernels: Vec<Option<CompiledKernel>>,
    /// The compiled body of each loop step (`None` for other steps).
    pub(super) loops: Vec<Option<Box<CompiledBody>>>,
}

impl CompiledBody {
    /// Compiles every kernel of `program`, and of the bodies of its loops.
    pub(super) fn compile(program: Program) -> Result<CompiledBody, ExecError> {
        let list: Vec<&tenjit_ir::kernel::Kernel> = program
            .steps
            .iter()
            .filter_map(|step| match step {
                Step::Kernel(k) => Some(k),
                Step::Matmul(_) | Step::Op(_) | Step::Loop(_) => None,
            })
            .collect();
        let mut compiled = codegen::compile_all(&list, &program.buffers, threads())
            .map_err(|e| ExecError::internal(format!("compiling kernels: {e}")))?
            .into_iter();
        let mut kernels = Vec::with_capacity(program.steps.len());
        let mut loops = Vec::with_capacity(program.steps.len());
        for step in &program.steps {
            kernels.push(match step {
                Step::Kernel(_) => compiled.next(),
                Step::Matmul(_) | Step::Op(_) | Step::Loop(_) => None,
            });
            loops.push(match step {
                Step::Loop(l) => Some(Box::new(CompiledBody::compile(l.body.clone())?)),
                Step::Kernel(_) | Step::Matmul(_) | Step::Op(_) => None,
            });
        }
        Ok(CompiledBody { program, kernels, loops })
    }
}

/// Where a body buffer lives in one phase: an operand of the loop step, or storage of the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Loc {
    /// The step's operand with this index (an initial carried value or an invariant).
    Arg(usize),
    /// Storage the run owns, by index.
    Own(usize),
}

/// What the body runs, in order: a row group (by index), a single step, or a matrix product
/// small enough for a plain loop (by step).
#[derive(Clone, Copy)]
enum Unit {
    Group(usize),
    Step(usize),
    SmallMatmul(usize),
}

/// A row group doing less work than this (points of its kernels plus multiply-adds of its
/// products) runs step by step in a loop body: its buffers fit in cache whole, and running
/// the steps directly skips the group's scheduling and scratch allocation on every trip.
const SMALL_GROUP_WORK: usize = 1 << 16;

/// Runs loop `step`, whose body `body` is compiled, on the step's operands `args` (initial
/// carried values, then invariants), writing the final carried values into `outs`.
pub(super) fn run(
    step: &LoopStep,
    body: &CompiledBody,
    args: &[&Data],
    outs: &mut [Data],
) -> Result<(), ExecError> {
    let carried = step.carried();
    if outs.len() != carried || args.len() < carried {
        return Err(ExecError::internal("a loop step's operands do not match its body"));
    }
    if step.trips == 0 {
        for (out, arg) in outs.iter_mut().zip(args) {
            copy_into(out, arg)?;
        }
        return Ok(());
    }
    let p = &body.program;
    let outputs = &p.outputs;
    let mut own: Vec<Data> = Vec::new();
    let allocate = |own: &mut Vec<Data>, b: BufId| -> Result<usize, ExecError> {
        let ty = &p.buffers[b].ty;
        let data = memory::allocate(ty.dtype, ty.shape.numel()).map_err(|e| {
            ExecError::new(EvalErrorKind::OutOfMemory, format!("{e} for buffer b{b} of a loop body"))
        })?;
        own.push(data);
        Ok(own.len() - 1)
    };
    // Set A: every temporary of the body; set B: a second buffer for each carried output.
    let mut set_a = vec![usize::MAX; p.buffers.len()];
    let mut set_b = vec![usize::MAX; p.buffers.len()];
    for (b, decl) in p.buffers.iter().enumerate() {
        if decl.kind == BufferKind::Temp {
            set_a[b] = allocate(&mut own, b)?;
            if outputs.contains(&b) {
                set_b[b] = allocate(&mut own, b)?;
            }
        }
    }
    own.push(Data::I64(vec![0]));
    let counter = own.len() - 1;
    // The tables of the three phases: first trip, odd trips, even trips after the first.
    let locs: Vec<Vec<Loc>> = (0..3)
        .map(|phase| {
            p.buffers
                .iter()
                .enumerate()
                .map(|(b, decl)| match decl.kind {
                    BufferKind::Input(i) if i < carried => match phase {
                        0 => Loc::Arg(i),
                        1 => Loc::Own(set_a[outputs[i]]),
                        _ => Loc::Own(set_b[outputs[i]]),
                    },
                    BufferKind::Input(i) if i < args.len() => Loc::Arg(i),
                    BufferKind::Input(_) => Loc::Own(counter),
                    BufferKind::Temp if phase == 1 && set_b[b] != usize::MAX => Loc::Own(set_b[b]),
                    BufferKind::Temp => Loc::Own(set_a[b]),
                })
                .collect()
        })
        .collect();
    if outputs.iter().any(|&o| p.buffers[o].kind != BufferKind::Temp) {
        return Err(ExecError::internal("a loop body's output is one of its inputs"));
    }
    // Moving a `Data` in and out of `own` keeps its elements where they are, so these
    // pointers stay valid for the whole run.
    let ptrs: Vec<Vec<*mut u8>> = locs
        .iter()
        .map(|table| {
            table
                .iter()
                .map(|loc| match *loc {
                    Loc::Arg(i) => data_ptr(args[i]),
                    Loc::Own(j) => data_ptr(&own[j]),
                })
                .collect()
        })
        .collect();
    let mut units = Vec::new();
    let mut s = 0;
    while s < p.steps.len() {
        match p.groups.iter().position(|g| g.steps.start == s) {
            Some(g) if group_work(p, &p.groups[g]) >= SMALL_GROUP_WORK => {
                units.push(Unit::Group(g));
                s = p.groups[g].steps.end;
            }
            Some(_) | None => {
                let small = match &p.steps[s] {
                    Step::Matmul(m) => small_matmul_fits(p, m),
                    Step::Kernel(_) | Step::Op(_) | Step::Loop(_) => false,
                };
                units.push(if small { Unit::SmallMatmul(s) } else { Unit::Step(s) });
                s += 1;
            }
        }
    }
    let mut result = Ok(());
    for trip in 0..step.trips {
        let phase = if trip == 0 { 0 } else { 2 - trip % 2 };
        if let Data::I64(c) = &mut own[counter] {
            c[0] = trip as i64;
        }
        result = run_trip(body, &units, &ptrs[phase], &locs[phase], args, &mut own);
        if result.is_err() {
            break;
        }
    }
    if result.is_ok() {
        let last = if step.trips == 1 { 0 } else { 2 - (step.trips - 1) % 2 };
        for (k, out) in outs.iter_mut().enumerate() {
            let src = match locs[last][outputs[k]] {
                Loc::Arg(i) => args[i],
                Loc::Own(j) => &own[j],
            };
            result = copy_into(out, src);
            if result.is_err() {
                break;
            }
        }
    }
    own.into_iter().for_each(memory::release);
    result
}

/// One trip of the body: every unit on the phase's pointers (`ptrs`) and locations (`locs`).
fn run_trip(
    body: &CompiledBody,
    units: &[Unit],
    ptrs: &[*mut u8],
    locs: &[Loc],
    args: &[&Data],
    own: &mut [Data],
) -> Result<(), ExecError> {
    let p = &body.program;
    for &unit in units {
        let s = match unit {
            Unit::Group(g) => {
                super::group::run(p, &body.kernels, &p.groups[g], ptrs)?;
                continue;
            }
            Unit::SmallMatmul(s) => {
                let Step::Matmul(m) = &p.steps[s] else {
                    return Err(ExecError::internal("a small product is not a matmul step"));
                };
                match m.dtype {
                    // SAFETY: `small_matmul_fits` checked, before the first trip, that this
                    // step has no batch, an `f32` or `f64` dtype, and operands and output
                    // within their buffers, whose pointers `ptrs` holds.
                    DType::F32 => unsafe { small_matmul::<f32>(m, ptrs) },
                    // SAFETY: as above.
                    DType::F64 => unsafe { small_matmul::<f64>(m, ptrs) },
                    other => return Err(ExecError::internal(format!("a small {other} product"))),
                }
                continue;
            }
            Unit::Step(s) => s,
        };
        match (&p.steps[s], &body.kernels[s]) {
            (Step::Kernel(k), Some(ck)) => {
                let work: usize = k.space.iter().product();
                run_kernel(ck, ptrs, work).map_err(|e| ExecError::of_kernel(k, e))?;
            }
            (Step::Kernel(k), None) => {
                return Err(ExecError::internal(format!("kernel {} was not compiled", k.name)));
            }
            (Step::Matmul(m), _) => {
                let mut out = take(own, locs[m.out])?;
                let r = gemm::matmul_data(
                    m,
                    data(locs[m.a.buf], args, own),
                    data(locs[m.b.buf], args, own),
                    &mut out,
                    threads(),
                );
                put(own, locs[m.out], out);
                r.map_err(|e| ExecError::internal(format!("matmul: {e}")))?;
            }
            (Step::Op(op), _) => {
                let mut out = take(own, locs[op.out])?;
                let operands: Vec<Operand<'_>> = op
                    .args
                    .iter()
                    .map(|&a| Operand { data: data(locs[a], args, own), dims: p.buffers[a].ty.shape.dims() })
                    .collect();
                let r = library::run(op, &operands, &mut out, p.buffers[op.out].ty.shape.dims());
                put(own, locs[op.out], out);
                r?;
            }
            (Step::Loop(inner), _) => {
                let exe = body.loops[s]
                    .as_deref()
                    .ok_or_else(|| ExecError::internal("a loop body was not compiled"))?;
                let mut outs = Vec::with_capacity(inner.outs.len());
                for &o in &inner.outs {
                    outs.push(take(own, locs[o])?);
                }
                let r = {
                    let inner_args: Vec<&Data> =
                        inner.args.iter().map(|&a| data(locs[a], args, own)).collect();
                    run(inner, exe, &inner_args, &mut outs)
                };
                for (&o, d) in inner.outs.iter().zip(outs) {
                    put(own, locs[o], d);
                }
                r?;
            }
        }
    }
    Ok(())
}

/// The work of row group `g`: the points of its kernels and the multiply-adds of its products.
fn group_work(p: &Program, g: &Group) -> usize {
    p.steps[g.steps.clone()]
        .iter()
        .map(|step| match step {
            Step::Kernel(k) => k.space.iter().product(),
            Step::Matmul(m) => m.m * m.n * m.k,
            Step::Op(_) | Step::Loop(_) => usize::MAX,
        })
        .fold(0usize, usize::saturating_add)
}

/// The data at `loc`.
fn data<'a>(loc: Loc, args: &[&'a Data], own: &'a [Data]) -> &'a Data {
    match loc {
        Loc::Arg(i) => args[i],
        Loc::Own(j) => &own[j],
    }
}

/// Takes the storage at `loc` out of `own` to write it (a step's output is always owned).
fn take(own: &mut [Data], loc: Loc) -> Result<Data, ExecError> {
    match loc {
        Loc::Own(j) => Ok(std::mem::replace(&mut own[j], Data::Bool(Vec::new()))),
        Loc::Arg(_) => Err(ExecError::internal("a loop body writes one of the loop's operands")),
    }
}

/// Puts storage taken by [`take`] back.
fn put(own: &mut [Data], loc: Loc, d: Data) {
    if let Loc::Own(j) = loc {
        own[j] = d;
    }
}

/// Copies `src` into `dst`, of the same dtype and length.
fn copy_into(dst: &mut Data, src: &Data) -> Result<(), ExecError> {
    match (dst, src) {
        (Data::Bool(d), Data::Bool(s)) if d.len() == s.len() => d.copy_from_slice(s),
        (Data::I32(d), Data::I32(s)) if d.len() == s.len() => d.copy_from_slice(s),
        (Data::I64(d), Data::I64(s)) if d.len() == s.len() => d.copy_from_slice(s),
        (Data::F16(d), Data::F16(s)) if d.len() == s.len() => d.copy_from_slice(s),
        (Data::BF16(d), Data::BF16(s)) if d.len() == s.len() => d.copy_from_slice(s),
        (Data::F32(d), Data::F32(s)) if d.len() == s.len() => d.copy_from_slice(s),
        (Data::F64(d), Data::F64(s)) if d.len() == s.len() => d.copy_from_slice(s),
        _ => return Err(ExecError::internal("a loop's carried value changed type")),
    }
    Ok(())
}
