//! A reference interpreter of the kernel IR: [`eval`] runs a [`Program`] point by point.
//!
//! It is the middle link of the oracle chain `interp::eval(graph) == kernel::eval(lower(graph))
//! == compiled code`, so it follows the graph interpreter's arithmetic exactly:
//!
//! * every instruction computes with the op table's functions (floats in `f64`, integers in
//!   wrapping `i64`) and rounds its result to its dtype, as each graph node does;
//! * a reduction starts from the first element of its line (the op's identity only for an
//!   empty line), visits the reduced axes in row-major order, accumulates floats in `f64`
//!   and integers in `i64`, and rounds once, before the epilogue reads it as `acc`;
//! * an arg reduction keeps the first extremum's index (a later element replaces it only when
//!   strictly better; the first NaN wins and stays), as `argmax`/`argmin` do, and its
//!   `acc_value` is the `max`/`min` reduction of the same line;
//! * a matrix product accumulates in `f64` (floats) or wrapping `i64` over `k` in increasing
//!   order and rounds once;
//! * `rand` draws from [`crate::random`]; an [`OpStep`] runs the graph interpreter on a
//!   one-node graph.
//!
//! So for a graph `g` that evaluates without error, the outputs agree bit for bit, except
//! where `f16`/`bf16` values are involved: lowering computes those in `f32` inside a kernel
//! ([`super::half`]), rounding only at casts and stores, where the graph interpreter rounds
//! every node. (Fused code
//! computes only the elements it needs, so a graph whose interpretation fails, say on an
//! integer division by zero in an element nobody reads, may still run here.) The interpreter
//! never panics: an index outside its buffer, which would be a lowering bug, is an error too.

use super::{
    BufId, BufferKind, IndexMap, Inst, Instr, Kernel, LoopStep, MatOperand, MatmulStep, OpStep, Program, Step,
};
use crate::buffer::Buffer;
use crate::graph::Graph;
use crate::interp;
use crate::ops::{ArgOp, Scalar};
use crate::random;
use crate::types::{DType, Shape, TensorType};
use std::fmt;

/// Why a program could not be evaluated.
#[derive(Clone, Debug, PartialEq)]
pub enum KernelError {
    /// The number of input buffers differs from the program's number of inputs.
    InputCount {
        /// Inputs the program declares.
        expected: usize,
        /// Buffers given.
        got: usize,
    },
    /// An input buffer's type differs from the declared one.
    InputType {
        /// Position of the input.
        index: usize,
        /// Declared type.
        expected: Box<TensorType>,
        /// Type of the buffer given.
        got: Box<TensorType>,
    },
    /// An integer operation is undefined for the values met (division by zero, ...).
    Arithmetic {
        /// The step (kernel name or op name).
        step: String,
        /// The op's name.
        op: &'static str,
        /// What is undefined, from the op table.
        message: &'static str,
    },
    /// A library step failed in the graph interpreter (an index out of range, ...).
    Op {
        /// The op's name.
        step: String,
        /// The interpreter's error.
        error: interp::EvalError,
    },
    /// The program is malformed: a load outside its buffer, an operand of the wrong kind, an
    /// empty reduction without identity. A lowering bug, or a hand-built program's.
    Malformed {
        /// The step.
        step: String,
        /// What is wrong.
        message: String,
    },
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KernelError::InputCount { expected, got } => {
                write!(f, "the program takes {expected} input(s) but {got} were given")
            }
            KernelError::InputType { index, expected, got } => {
                write!(f, "input {index} is declared {expected} but the buffer given is {got}")
            }
            KernelError::Arithmetic { step, op, message } => write!(f, "{step}: {op}: {message}"),
            KernelError::Op { step, error } => write!(f, "{step}: {error}"),
            KernelError::Malformed { step, message } => write!(f, "{step}: malformed program: {message}"),
        }
    }
}

impl std::error::Error for KernelError {}

/// One element, widened for arithmetic: floats to `f64`, integers and booleans to `i64`.
#[derive(Clone, Copy, Debug, PartialEq)]
enum V {
    F(f64),
    I(i64),
}

impl V {
    fn of(s: Scalar) -> V {
        match s {
            Scalar::Bool(b) => V::I(b as i64),
            Scalar::Int(i) => V::I(i),
            Scalar::Float(x) => V::F(x),
        }
    }

    /// Converts to `dtype` as the graph interpreter stores a result: floats truncate and
    /// saturate to integers, round to `f32` (and through it to `f16`/`bf16`); integers wrap to
    /// `i32`; `!= 0` to bool.
    fn to(self, dtype: DType) -> V {
        match (self, dtype) {
            (V::F(x), DType::Bool) => V::I((x != 0.0) as i64),
            (V::F(x), DType::I32) => V::I(x as i32 as i64),
            (V::F(x), DType::I64) => V::I(x as i64),
            (V::F(x), DType::F32) => V::F(x as f32 as f64),
            (V::F(x), DType::F16 | DType::BF16) => V::F(Scalar::Float(x).cast(dtype).as_f64()),
            (V::F(x), DType::F64) => V::F(x),
            (V::I(x), DType::Bool) => V::I((x != 0) as i64),
            (V::I(x), DType::I32) => V::I(x as i32 as i64),
            (V::I(x), DType::I64) => V::I(x),
            (V::I(x), DType::F32) => V::F(x as f32 as f64),
            (V::I(x), DType::F16 | DType::BF16) => V::F(Scalar::Int(x).cast(dtype).as_f64()),
            (V::I(x), DType::F64) => V::F(x as f64),
        }
    }

    fn scalar(self, dtype: DType) -> Scalar {
        match (self, dtype) {
            (V::I(x), DType::Bool) => Scalar::Bool(x != 0),
            (V::I(x), _) => Scalar::Int(x),
            (V::F(x), _) => Scalar::Float(x),
        }
    }
}

/// A buffer's elements and dtype while the program runs.
struct Mem {
    dtype: DType,
    data: Vec<V>,
}

/// Evaluates `p` on `inputs` (one buffer per program input, in order) and returns the output
/// buffers in order.
pub fn eval(p: &Program, inputs: &[Buffer]) -> Result<Vec<Buffer>, KernelError> {
    let declared: Vec<(usize, &TensorType)> = p
        .buffers
        .iter()
        .filter_map(|b| match b.kind {
            BufferKind::Input(i) => Some((i, &b.ty)),
            BufferKind::Temp => None,
        })
        .collect();
    if declared.len() != inputs.len() {
        return Err(KernelError::InputCount { expected: declared.len(), got: inputs.len() });
    }
    let mut mem = Vec::with_capacity(p.buffers.len());
    for b in &p.buffers {
        let data = match b.kind {
            BufferKind::Input(i) => {
                let buf = inputs
                    .get(i)
                    .ok_or(KernelError::InputCount { expected: declared.len(), got: inputs.len() })?;
                if buf.ty() != b.ty {
                    return Err(KernelError::InputType {
                        index: i,
                        expected: Box::new(b.ty.clone()),
                        got: Box::new(buf.ty()),
                    });
                }
                buf.scalars().into_iter().map(V::of).collect()
            }
            BufferKind::Temp => {
                let zero = if b.ty.dtype.is_float() { V::F(0.0) } else { V::I(0) };
                vec![zero; b.ty.shape.numel()]
            }
        };
        mem.push(Mem { dtype: b.ty.dtype, data });
    }
    let mut at = 0;
    while at < p.steps.len() {
        let Some(g) = p.groups.iter().find(|g| g.steps.start == at) else {
            run_step(p, &p.steps[at], &mut mem, None)?;
            at += 1;
            continue;
        };
        if g.steps.end > p.steps.len() || g.steps.end <= at {
            return Err(malformed("group", format!("steps {:?} of {}", g.steps, p.steps.len())));
        }
        // A group runs one row at a time. Its local buffers start poisoned, so a step that
        // read a row its group has not written yet would show in the results.
        for &b in &g.local {
            let m = mem.get_mut(b).ok_or_else(|| malformed("group", format!("no buffer b{b}")))?;
            let poison = if m.dtype.is_float() { V::F(f64::NAN) } else { V::I(0x5a5a_5a5a) };
            m.data.iter_mut().for_each(|v| *v = poison);
        }
        // A step over parts runs part `r / part` once the part's last row `r` has run.
        let units: Vec<usize> = p.steps[g.steps.clone()]
            .iter()
            .map(|s| {
                crate::kernel::schedule::step_unit(p, s, g.rows, g.part).ok_or_else(|| {
                    malformed("group", format!("a step without {} rows in group {:?}", g.rows, g.steps))
                })
            })
            .collect::<Result<_, _>>()?;
        for r in 0..g.rows {
            for (step, &unit) in p.steps[g.steps.clone()].iter().zip(&units) {
                if (r + 1) % unit == 0 {
                    run_step(p, step, &mut mem, Some(r / unit))?;
                }
            }
        }
        at = g.steps.end;
    }
    p.outputs
        .iter()
        .map(|&b| {
            let decl = p.buffers.get(b).ok_or_else(|| malformed("outputs", format!("no buffer b{b}")))?;
            let m = &mem[b];
            Ok(Buffer::from_scalars(m.dtype, decl.ty.shape.clone(), m.data.iter().map(|v| v.scalar(m.dtype))))
        })
        .collect()
}

fn malformed(step: &str, message: String) -> KernelError {
    KernelError::Malformed { step: step.to_string(), message }
}

/// Runs one step, over all of it or (in a group) over row `row` only.
fn run_step(p: &Program, step: &Step, mem: &mut [Mem], row: Option<usize>) -> Result<(), KernelError> {
    match (step, row) {
        (Step::Kernel(k), _) => run_kernel(k, mem, row),
        (Step::Matmul(m), _) => run_matmul(m, mem, row),
        (Step::Op(s), row) => run_op(p, s, mem, row),
        (Step::Loop(l), None) => run_loop(p, l, mem),
        (Step::Loop(_), Some(_)) => Err(malformed("loop", "a loop step in a row group".into())),
    }
}

/// Runs a loop step: the body program `trips` times on buffers of the carried values, the
/// invariants and the counter, then the final carried values into the step's outputs.
fn run_loop(p: &Program, l: &LoopStep, mem: &mut [Mem]) -> Result<(), KernelError> {
    let buffer = |b: BufId| -> Result<Buffer, KernelError> {
        let decl = p.buffers.get(b).ok_or_else(|| malformed("loop", format!("no buffer b{b}")))?;
        let m = &mem[b];
        Ok(Buffer::from_scalars(m.dtype, decl.ty.shape.clone(), m.data.iter().map(|v| v.scalar(m.dtype))))
    };
    let mut inputs: Vec<Buffer> = l.args.iter().map(|&b| buffer(b)).collect::<Result<_, _>>()?;
    let counter = crate::ops::counter_type();
    inputs.push(Buffer::full(&counter, Scalar::Int(0)));
    for trip in 0..l.trips {
        let last = inputs.len() - 1;
        inputs[last] = Buffer::full(&counter, Scalar::Int(trip as i64));
        let outputs = eval(&l.body, &inputs)?;
        if outputs.len() != l.carried() {
            return Err(malformed(
                "loop",
                format!("the body returns {} values for {}", outputs.len(), l.carried()),
            ));
        }
        for (k, out) in outputs.into_iter().enumerate() {
            inputs[k] = out;
        }
    }
    for (k, &b) in l.outs.iter().enumerate() {
        let m = mem.get_mut(b).ok_or_else(|| malformed("loop", format!("no buffer b{b}")))?;
        let value = inputs.get(k).ok_or_else(|| malformed("loop", format!("no carried value {k}")))?;
        if m.data.len() != value.numel() {
            return Err(malformed(
                "loop",
                format!("output b{b} holds {} elements, not {}", m.data.len(), value.numel()),
            ));
        }
        m.data = value.scalars().into_iter().map(V::of).collect();
    }
    Ok(())
}

/// [`for_each_index`] over all of `dims`, or over its row `row` (the multi-indices whose first
/// index is `row`); returns the row-major position of the first index visited.
fn for_each_row_index(
    step: &str,
    dims: &[usize],
    row: Option<usize>,
    mut f: impl FnMut(&[usize]) -> Result<(), KernelError>,
) -> Result<usize, KernelError> {
    let Some(r) = row else {
        for_each_index(dims, f)?;
        return Ok(0);
    };
    if dims.first().is_none_or(|&n| r >= n) {
        return Err(malformed(step, format!("row {r} of a space {dims:?} in a row group")));
    }
    let mut idx = vec![r; dims.len()];
    for_each_index(&dims[1..], |rest| {
        idx[1..].copy_from_slice(rest);
        f(&idx)
    })?;
    Ok(r * dims[1..].iter().product::<usize>())
}

/// The multi-indices of `dims` in row-major order, passed to `f`.
fn for_each_index(
    dims: &[usize],
    mut f: impl FnMut(&[usize]) -> Result<(), KernelError>,
) -> Result<(), KernelError> {
    if dims.contains(&0) {
        return Ok(());
    }
    let mut idx = vec![0usize; dims.len()];
    loop {
        f(&idx)?;
        let mut d = dims.len();
        loop {
            if d == 0 {
                return Ok(());
            }
            d -= 1;
            idx[d] += 1;
            if idx[d] < dims[d] {
                break;
            }
            idx[d] = 0;
        }
    }
}

fn read(mem: &[Mem], step: &str, buf: BufId, at: i64) -> Result<V, KernelError> {
    let m = mem.get(buf).ok_or_else(|| malformed(step, format!("no buffer b{buf}")))?;
    usize::try_from(at)
        .ok()
        .and_then(|i| m.data.get(i).copied())
        .ok_or_else(|| malformed(step, format!("index {at} is outside b{buf} ({} elements)", m.data.len())))
}

/// Runs an element program at loop indices `idx`, with `acc` the reduced value and, for an
/// arg reduction, the extremum's value (epilogue).
fn run_program(
    k: &Kernel,
    prog: &[Instr],
    idx: &[usize],
    acc: Option<[V; 2]>,
    mem: &[Mem],
    vals: &mut Vec<V>,
) -> Result<(), KernelError> {
    vals.clear();
    let step = k.name.as_str();
    let get = |vals: &[V], id: usize| -> Result<V, KernelError> {
        vals.get(id)
            .copied()
            .ok_or_else(|| malformed(step, format!("operand %{id} is not defined before use")))
    };
    let index = |map: &IndexMap| -> Result<i64, KernelError> {
        if map.strides.len() != idx.len() {
            return Err(malformed(
                step,
                format!("index map of rank {} in a space of rank {}", map.strides.len(), idx.len()),
            ));
        }
        Ok(map.at(idx))
    };
    for instr in prog {
        let dtype = instr.dtype;
        let v = match &instr.inst {
            Inst::Load { buf, index: map } => read(mem, step, *buf, index(map)?)?,
            Inst::Const(s) => V::of(*s).to(dtype),
            Inst::Iota { index: map } => V::I(index(map)?).to(dtype),
            Inst::Rand { seed, offset, counter } => {
                let word = |a: usize| match get(vals, a)? {
                    V::I(x) => Ok(x as u64),
                    V::F(_) => Err(malformed(step, format!("rand operand %{a} is not an integer"))),
                };
                let (seed, c) = (word(*seed)?, word(*offset)?.wrapping_add(index(counter)? as u64));
                match dtype {
                    DType::F32 => V::F(random::uniform_f32(seed, c) as f64),
                    DType::F64 => V::F(random::uniform_f64(seed, c)),
                    DType::F16 | DType::BF16 => V::F(random::uniform_f32(seed, c) as f64).to(dtype),
                    DType::Bool | DType::I32 | DType::I64 => {
                        return Err(malformed(step, format!("rand of dtype {dtype}")))
                    }
                }
            }
            Inst::Unary(op, x) => {
                let spec = op.spec();
                match get(vals, *x)? {
                    V::F(x) => V::F((spec.float)(x)).to(dtype),
                    V::I(x) => V::I((spec.int)(x)).to(dtype),
                }
            }
            Inst::Binary(op, x, y) => {
                let spec = op.spec();
                match (get(vals, *x)?, get(vals, *y)?) {
                    (V::F(x), V::F(y)) => V::F((spec.float)(x, y)).to(dtype),
                    (V::I(x), V::I(y)) => V::I((spec.int)(x, y).map_err(|message| {
                        KernelError::Arithmetic { step: step.to_string(), op: spec.name, message }
                    })?)
                    .to(dtype),
                    _ => return Err(malformed(step, format!("{} of a float and an integer", spec.name))),
                }
            }
            Inst::Where(c, x, y) => match get(vals, *c)? {
                V::I(0) => get(vals, *y)?,
                V::I(_) => get(vals, *x)?,
                V::F(_) => return Err(malformed(step, "where on a float condition".into())),
            },
            Inst::Cast(x) => get(vals, *x)?.to(dtype),
            Inst::Acc => acc.ok_or_else(|| malformed(step, "acc outside an epilogue".into()))?[0],
            Inst::AccValue => match (acc, k.reduce.as_ref().and_then(|r| r.op.arg())) {
                (Some([_, v]), Some(_)) => v,
                _ => return Err(malformed(step, "acc_value outside an arg reduction's epilogue".into())),
            },
        };
        vals.push(v);
    }
    Ok(())
}

fn write_stores(k: &Kernel, vals: &[V], at: usize, mem: &mut [Mem]) -> Result<(), KernelError> {
    for s in &k.stores {
        let v = *vals
            .get(s.value)
            .ok_or_else(|| malformed(&k.name, format!("store of undefined %{}", s.value)))?;
        let m = mem.get_mut(s.buf).ok_or_else(|| malformed(&k.name, format!("no buffer b{}", s.buf)))?;
        let dtype = m.dtype;
        let slot = m
            .data
            .get_mut(at)
            .ok_or_else(|| malformed(&k.name, format!("store at {at} is outside b{}", s.buf)))?;
        *slot = v.to(dtype);
    }
    Ok(())
}

fn run_kernel(k: &Kernel, mem: &mut [Mem], row: Option<usize>) -> Result<(), KernelError> {
    let mut vals = Vec::with_capacity(k.body.len().max(k.epilogue.len()));
    let start = match row {
        Some(r) => r * k.out_space().iter().skip(1).product::<usize>(),
        None => 0,
    };
    let Some(reduce) = &k.reduce else {
        let mut at = start;
        for_each_row_index(&k.name, &k.space, row, |idx| {
            run_program(k, &k.body, idx, None, mem, &mut vals)?;
            write_stores(k, &vals, at, mem)?;
            at += 1;
            Ok(())
        })?;
        return Ok(());
    };
    if row.is_some() && reduce.axes.contains(&0) {
        return Err(malformed(&k.name, "a reduction over the rows of its row group".into()));
    }
    let value = k.value.ok_or_else(|| malformed(&k.name, "a reduction without a value".into()))?;
    let dtype = k.body.get(value).map(|i| i.dtype).ok_or_else(|| malformed(&k.name, "no value".into()))?;
    let out_axes: Vec<usize> = (0..k.space.len()).filter(|d| !reduce.axes.contains(d)).collect();
    let out_dims: Vec<usize> = out_axes.iter().map(|&d| k.space[d]).collect();
    let red_dims: Vec<usize> = reduce.axes.iter().map(|&d| k.space[d]).collect();
    let extremum = reduce.op.extremum();
    let spec = extremum.combine().spec();
    let arg = reduce.op.arg();
    if arg.is_some() && reduce.axes.len() != 1 {
        return Err(malformed(&k.name, format!("{} over {} axes", reduce.op.name(), reduce.axes.len())));
    }
    let mut full = vec![0usize; k.space.len()];
    let mut at = start;
    for_each_row_index(&k.name, &out_dims, row, |out| {
        for (&d, &i) in out_axes.iter().zip(out) {
            full[d] = i;
        }
        let mut acc: Option<V> = None;
        // For an arg reduction: the best value so far, its index, and whether it is a NaN
        // (then it stays), as the graph interpreter's `arg_extremum`.
        let mut best: Option<(V, usize)> = None;
        let mut nan = false;
        for_each_index(&red_dims, |red| {
            for (&d, &i) in reduce.axes.iter().zip(red) {
                full[d] = i;
            }
            run_program(k, &k.body, &full, None, mem, &mut vals)?;
            let x = vals[value];
            if let Some(op) = arg {
                let is_nan = matches!(x, V::F(f) if f.is_nan());
                best = match best {
                    None => {
                        nan = is_nan;
                        Some((x, red[0]))
                    }
                    Some(b) if nan => Some(b),
                    Some(_) if is_nan => {
                        nan = true;
                        Some((x, red[0]))
                    }
                    Some((b, i)) => {
                        let better = match (op, b, x) {
                            (ArgOp::ArgMax, V::F(b), V::F(x)) => x > b,
                            (ArgOp::ArgMin, V::F(b), V::F(x)) => x < b,
                            (ArgOp::ArgMax, V::I(b), V::I(x)) => x > b,
                            (ArgOp::ArgMin, V::I(b), V::I(x)) => x < b,
                            _ => return Err(malformed(&k.name, "reduction over mixed categories".into())),
                        };
                        Some(if better { (x, red[0]) } else { (b, i) })
                    }
                };
            }
            acc = Some(match (acc, x) {
                (None, x) => x,
                (Some(V::F(a)), V::F(x)) => V::F((spec.float)(a, x)),
                (Some(V::I(a)), V::I(x)) => V::I((spec.int)(a, x).map_err(|message| {
                    KernelError::Arithmetic { step: k.name.clone(), op: extremum.name(), message }
                })?),
                _ => return Err(malformed(&k.name, "reduction over mixed categories".into())),
            });
            Ok(())
        })?;
        let acc = match acc {
            Some(a) => a,
            None => V::of(extremum.identity().filter(|_| arg.is_none()).ok_or_else(|| {
                malformed(&k.name, format!("empty {} reduction has no identity", reduce.op.name()))
            })?),
        }
        .to(dtype);
        let accs = match best {
            Some((_, i)) => [V::I(i as i64), acc],
            None => [acc, acc],
        };
        run_program(k, &k.epilogue, out, Some(accs), mem, &mut vals)?;
        write_stores(k, &vals, at, mem)?;
        at += 1;
        Ok(())
    })?;
    Ok(())
}

fn run_matmul(s: &MatmulStep, mem: &mut [Mem], row: Option<usize>) -> Result<(), KernelError> {
    let step = "matmul";
    let at = |op: &MatOperand, batch: &[usize], r: usize, c: usize| -> i64 {
        let b = op
            .batch_strides
            .iter()
            .zip(batch)
            .fold(op.offset, |o, (&st, &i)| o.wrapping_add(st.wrapping_mul(i as i64)));
        b.wrapping_add(op.row_stride.wrapping_mul(r as i64))
            .wrapping_add(op.col_stride.wrapping_mul(c as i64))
    };
    if s.a.batch_strides.len() != s.batch.len() || s.b.batch_strides.len() != s.batch.len() {
        return Err(malformed(step, "batch strides do not match the batch dims".into()));
    }
    // In a group: row `r` of a product without batch dims, or batch `r` of a product over
    // parts (one batch dim).
    let (rows, batches) = match row {
        None => (0..s.m, None),
        Some(r) if s.batch.is_empty() && r < s.m => (r..r + 1, None),
        Some(r) if s.batch.len() == 1 && r < s.batch[0] => (0..s.m, Some(r)),
        Some(r) => return Err(malformed(step, format!("row {r} of a matmul with m={} in a row group", s.m))),
    };
    let mut out = Vec::new();
    let mem_ref: &[Mem] = mem;
    let batch_dims: &[usize] = if batches.is_some() { &[1] } else { &s.batch };
    for_each_index(batch_dims, |batch| {
        let at_batch = batches.map(|r| [r]);
        let batch = at_batch.as_ref().map_or(batch, |b| &b[..]);
        for i in rows.clone() {
            for j in 0..s.n {
                let mut a = Vec::with_capacity(s.k);
                let mut b = Vec::with_capacity(s.k);
                for p in 0..s.k {
                    a.push(read(mem_ref, step, s.a.buf, at(&s.a, batch, i, p))?);
                    b.push(read(mem_ref, step, s.b.buf, at(&s.b, batch, p, j))?);
                }
                let floats = s.dtype.is_float();
                out.push(if floats {
                    let f = |v: V| match v {
                        V::F(x) => x,
                        V::I(x) => x as f64,
                    };
                    // The same expression as the graph interpreter, for the same bits.
                    V::F(a.iter().zip(&b).map(|(&x, &y)| f(x) * f(y)).sum::<f64>()).to(s.dtype)
                } else {
                    let n = |v: V| match v {
                        V::I(x) => x,
                        V::F(x) => x as i64,
                    };
                    V::I(
                        a.iter()
                            .zip(&b)
                            .fold(0i64, |acc, (&x, &y)| acc.wrapping_add(n(x).wrapping_mul(n(y)))),
                    )
                    .to(s.dtype)
                });
            }
        }
        Ok(())
    })?;
    let m = mem.get_mut(s.out).ok_or_else(|| malformed(step, format!("no buffer b{}", s.out)))?;
    let expected = s.batch.iter().product::<usize>() * s.m * s.n;
    if m.data.len() != expected {
        return Err(malformed(
            step,
            format!("output b{} holds {} elements, not {expected}", s.out, m.data.len()),
        ));
    }
    let first = batches.map_or(rows.start * s.n, |r| r * s.m * s.n);
    m.data[first..first + out.len()].copy_from_slice(&out);
    Ok(())
}

/// Runs library step `s` through the reference interpreter: on all of its operands, or (in
/// a row group) on image `row` of the operands it reads image by image
/// ([`image_operands`](super::schedule::image_operands)) and all of the others, into image
/// `row` of its output.
fn run_op(p: &Program, s: &OpStep, mem: &mut [Mem], row: Option<usize>) -> Result<(), KernelError> {
    let step = s.op.name();
    let per_image = match row {
        None => None,
        Some(_) => Some(
            super::schedule::image_operands(&s.op)
                .ok_or_else(|| malformed(step, "a library step that mixes images in a row group".into()))?,
        ),
    };
    // The part of buffer `b` the step sees: all of it, or its image `row`.
    let part = |b: BufId, one_image: bool| -> Result<(TensorType, std::ops::Range<usize>), KernelError> {
        let decl = p.buffers.get(b).ok_or_else(|| malformed(step, format!("no buffer b{b}")))?;
        let n = decl.ty.shape.numel();
        match row.filter(|_| one_image) {
            None => Ok((decl.ty.clone(), 0..n)),
            Some(r) => {
                let mut dims = decl.ty.shape.dims().to_vec();
                let images = dims.first().copied().unwrap_or(0);
                if r >= images {
                    return Err(malformed(step, format!("image {r} of b{b}, which has {images}")));
                }
                dims[0] = 1;
                let len = n / images;
                Ok((TensorType::new(decl.ty.dtype, Shape::new(&dims)), r * len..(r + 1) * len))
            }
        }
    };
    let mut g = Graph::new(step);
    let mut ids = Vec::new();
    let mut bufs = Vec::new();
    for (i, &b) in s.args.iter().enumerate() {
        let one = per_image.is_some_and(|per| per.get(i).copied().unwrap_or(false));
        let (ty, range) = part(b, one)?;
        ids.push(g.add_input(format!("x{i}"), ty.clone()));
        let m = &mem[b];
        let data =
            m.data.get(range).ok_or_else(|| malformed(step, format!("b{b} is shorter than its type")))?;
        bufs.push(Buffer::from_scalars(m.dtype, ty.shape.clone(), data.iter().map(|v| v.scalar(m.dtype))));
    }
    let y = g.add(s.op.clone(), &ids).map_err(|e| malformed(step, e.to_string()))?;
    g.set_outputs(vec![y]);
    let out = interp::eval(&g, &bufs).map_err(|error| KernelError::Op { step: step.to_string(), error })?;
    let (_, range) = part(s.out, true)?;
    let m = mem.get_mut(s.out).ok_or_else(|| malformed(step, format!("no buffer b{}", s.out)))?;
    if range.len() != out[0].numel() || range.end > m.data.len() {
        return Err(malformed(
            step,
            format!("output b{} holds {} elements here, not {}", s.out, range.len(), out[0].numel()),
        ));
    }
    for (dst, v) in m.data[range].iter_mut().zip(out[0].scalars()) {
        *dst = V::of(v);
    }
    Ok(())
}
