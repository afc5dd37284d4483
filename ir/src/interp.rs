//! The reference interpreter: executable semantics of the IR, the oracle every backend is tested
//! against.
//!
//! [`eval`] verifies a graph, checks the input buffers against the declared input types and
//! evaluates the live nodes in [`Graph::live_order`], freeing each value after its last use. It
//! never panics on any graph or inputs: a graph that does not verify, wrong inputs, and
//! evaluation errors (integer division by zero, an index out of range, ...) come back as an
//! [`EvalError`].
//!
//! Semantics follow the docs of [`Op`] and the op table:
//!
//! * Elementwise ops apply the table's functions with no per-op code: floats are computed in
//!   `f64` and rounded once to the result dtype; integers in `i64` with wrapping, truncated to
//!   `i32` for `i32`; booleans are 0 and 1 through the integer function.
//! * `f16` and `bf16` are computed in `f32`, as PyTorch's CPU kernels do: every op's result is
//!   its `f32` result (the `f64` one rounded to `f32`) rounded to the node's dtype, to nearest
//!   with ties to even (NaN stays NaN, overflow gives infinity, `f16` keeps its subnormals).
//!   Casts to them go through `f32` too. Compiled code keeps values in `f32` inside a fused
//!   kernel and rounds only where a value is cast or stored (`kernel::half`), so it agrees
//!   with this oracle to the 16-bit format's precision, not bit for bit.
//! * `cast` truncates floats toward zero and saturates (NaN becomes 0), rounds `f64 → f32` and
//!   integers to floats to nearest, wraps integers to `i32`, and maps anything to `bool` as
//!   `!= 0` (so NaN is `true`).
//! * Reductions visit each output's elements in row-major order starting from the first one;
//!   the op's identity is used only for empty reductions. Float sums and products accumulate in
//!   `f64` and round once at the end; integer ones wrap. `max`/`min` propagate NaN. `argmax` and
//!   `argmin` return the first index on ties, and the first NaN if there is one.
//! * `matmul` accumulates in `f64` for floats (one rounding at the end) and in wrapping `i64`
//!   for integers, over `k` in increasing order.
//! * `gather` and `scatter_add` are `torch.gather` and `torch.scatter_add_`: indices must lie
//!   in `0..size`; `scatter_add` adds in row-major order of the index, each addition rounded to
//!   the dtype (so the result matches a sequential loop in the dtype's own arithmetic).
//! * `rand` uses [`crate::random`], whose module doc is the contract for its bits.

use crate::buffer::{Buffer, Data, Element};
use crate::graph::{Graph, NodeId};
use crate::ops::{ArgOp, BinaryOp, Op};
use crate::random;
use crate::types::{DType, TensorType};
use crate::verify::{verify, VerifyError, VerifyErrors};
use smallvec::SmallVec;
use std::fmt;

/// Why a graph could not be evaluated.
#[derive(Clone, Debug, PartialEq)]
pub enum EvalError {
    /// The graph does not verify.
    Verify(VerifyErrors),
    /// The number of input buffers differs from the graph's number of inputs.
    InputCount {
        /// Inputs the graph declares.
        expected: usize,
        /// Buffers given.
        got: usize,
    },
    /// An input buffer's type differs from the declared one.
    InputType {
        /// Position of the input.
        index: usize,
        /// The input's name.
        name: String,
        /// Declared type (boxed to keep the error small).
        expected: Box<TensorType>,
        /// Type of the buffer given.
        got: Box<TensorType>,
    },
    /// Inputs whose shapes bind a symbolic graph's symbols out of their ranges, or break one of
    /// its guards.
    Bind(crate::graph::BindError),
    /// An integer operation is undefined for the values met (division or remainder by zero,
    /// a negative power).
    Arithmetic {
        /// The node evaluated.
        node: NodeId,
        /// Its op's name.
        op: &'static str,
        /// What is undefined, from the op table.
        message: &'static str,
        /// The user's source location recorded on the node, if any.
        loc: Option<String>,
    },
    /// A `gather` or `scatter_add` index outside `0..size`.
    IndexOutOfRange {
        /// The node evaluated.
        node: NodeId,
        /// Its op's name.
        op: &'static str,
        /// The offending index value.
        index: i64,
        /// The axis indexed.
        axis: usize,
        /// That axis's size.
        size: usize,
        /// The user's source location recorded on the node, if any.
        loc: Option<String>,
    },
    /// A value whose element count or byte size does not fit in the address space.
    TooLarge {
        /// The node evaluated.
        node: NodeId,
        /// Its type.
        ty: TensorType,
    },
    /// An inconsistency the verifier should have excluded: a bug of the interpreter.
    Internal {
        /// The node evaluated.
        node: NodeId,
        /// What went wrong.
        message: String,
    },
}

fn write_loc(f: &mut fmt::Formatter<'_>, loc: &Option<String>) -> fmt::Result {
    match loc {
        Some(loc) => write!(f, " (at {loc})"),
        None => Ok(()),
    }
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EvalError::Verify(errors) => write!(f, "cannot evaluate: {}", errors.to_string().trim_end()),
            EvalError::InputCount { expected, got } => {
                write!(f, "the graph takes {expected} input(s) but {got} were given")
            }
            EvalError::InputType { index, name, expected, got } => {
                write!(f, "input {index} (%{name}) is declared {expected} but the buffer given is {got}")
            }
            EvalError::Bind(e) => write!(f, "the inputs' shapes do not fit the graph: {e}"),
            EvalError::Arithmetic { node, op, message, loc } => {
                write!(f, "{node}: {op}: {message}")?;
                write_loc(f, loc)
            }
            EvalError::IndexOutOfRange { node, op, index, axis, size, loc } => {
                write!(
                    f,
                    "{node}: {op}: index {index} is out of bounds for dimension {axis} with size {size}"
                )?;
                write_loc(f, loc)
            }
            EvalError::TooLarge { node, ty } => {
                write!(f, "{node}: a value of type {ty} is too large to hold in memory")
            }
            EvalError::Internal { node, message } => write!(f, "{node}: interpreter bug: {message}"),
        }
    }
}

impl std::error::Error for EvalError {}

/// Evaluates `g` on `inputs` (one buffer per graph input, in order) and returns its outputs in
/// order.
///
/// ```
/// use tenjit_ir::{interp::eval, BinaryOp, Buffer, DType, Graph, Op, TensorType};
/// let mut g = Graph::new("f");
/// let x = g.add_input("x", TensorType::new(DType::I64, [3]));
/// let y = g.add(Op::Binary(BinaryOp::Mul), &[x, x]).unwrap();
/// g.set_outputs(vec![y]);
/// let out = eval(&g, &[Buffer::from_vec(vec![1i64, -2, 3], [3]).unwrap()]).unwrap();
/// assert_eq!(out[0].as_slice::<i64>(), Some(&[1i64, 4, 9][..]));
/// ```
pub fn eval(g: &Graph, inputs: &[Buffer]) -> Result<Vec<Buffer>, EvalError> {
    verify(g).map_err(EvalError::Verify)?;
    if inputs.len() != g.inputs().len() {
        return Err(EvalError::InputCount { expected: g.inputs().len(), got: inputs.len() });
    }
    if g.is_symbolic() {
        // A symbolic graph runs at the sizes its inputs bind.
        let given: Vec<&[usize]> = inputs.iter().map(|b| b.shape().dims()).collect();
        let bound = g.bind_inputs(&given);
        return match bound {
            Ok(bound) => eval(&bound, inputs),
            Err(crate::graph::BindError::Input { index, .. }) => Err(EvalError::InputType {
                index,
                name: g.inputs()[index].0.clone(),
                expected: Box::new(g.ty(g.inputs()[index].1).clone()),
                got: Box::new(inputs[index].ty()),
            }),
            Err(e) => Err(EvalError::Bind(e)),
        };
    }
    for (index, ((name, id), buf)) in g.inputs().iter().zip(inputs).enumerate() {
        if buf.ty() != *g.ty(*id) {
            return Err(EvalError::InputType {
                index,
                name: name.clone(),
                expected: Box::new(g.ty(*id).clone()),
                got: Box::new(buf.ty()),
            });
        }
    }
    let order = g.live_order().ok_or_else(|| {
        EvalError::Verify(VerifyErrors(vec![VerifyError {
            node: None,
            message: "the graph has a cycle".into(),
        }]))
    })?;
    let bound = order.iter().map(|n| n.index() + 1).max().unwrap_or(0);
    // Remaining uses of each value; outputs count as uses so they survive to the end.
    let mut uses = vec![0usize; bound];
    for &n in &order {
        for a in g.args(n) {
            uses[a.index()] += 1;
        }
    }
    for o in g.outputs() {
        uses[o.index()] += 1;
    }
    let mut values: Vec<Option<Buffer>> = vec![None; bound];
    // The results of each loop evaluated so far, by body, trip count and operands: the nodes
    // of one loop (one per carried value) share one evaluation.
    let mut loops: Vec<Evaluated<'_>> = Vec::new();
    for &n in &order {
        if uses[n.index()] == 0 {
            continue; // An input no output depends on.
        }
        let args = g.args(n);
        let value = {
            let mut operands = Vec::with_capacity(args.len());
            for a in &args {
                let v = values[a.index()].as_ref().ok_or_else(|| EvalError::Internal {
                    node: n,
                    message: format!("operand {a} has no value"),
                })?;
                operands.push(v);
            }
            match g.op(n) {
                Op::Loop(l) => {
                    let same =
                        |(m, a, _): &&Evaluated<'_>| m.body == l.body && m.trips == l.trips && *a == args;
                    if let Some((_, _, results)) = loops.iter().find(same) {
                        results[l.result].clone()
                    } else {
                        let results = run_loop(l, &operands).map_err(|e| in_loop(e, g, n))?;
                        let value = results[l.result].clone();
                        loops.push((l, args.clone(), results));
                        value
                    }
                }
                _ => eval_node(g, n, &operands, inputs)?,
            }
        };
        for a in &args {
            uses[a.index()] -= 1;
            if uses[a.index()] == 0 {
                values[a.index()] = None;
            }
        }
        values[n.index()] = Some(value);
    }
    let mut outputs = Vec::with_capacity(g.outputs().len());
    for &o in g.outputs() {
        uses[o.index()] -= 1;
        let value = if uses[o.index()] == 0 { values[o.index()].take() } else { values[o.index()].clone() };
        outputs.push(
            value.ok_or_else(|| EvalError::Internal { node: o, message: "output has no value".into() })?,
        );
    }
    Ok(outputs)
}

/// A loop evaluated during one [`eval`]: its op, its operands, and all of its results.
type Evaluated<'g> = (&'g crate::ops::LoopOp, SmallVec<[NodeId; 3]>, Vec<Buffer>);

/// An error of a loop's body as the error of loop node `n` of `g`: the body's nodes are no
/// nodes of `g`, so the failure is the loop's (at the loop's location).
fn in_loop(e: EvalError, g: &Graph, n: NodeId) -> EvalError {
    let at = g.loc(n).map(str::to_string);
    match e {
        EvalError::Arithmetic { op, message, loc, .. } => {
            EvalError::Arithmetic { node: n, op, message, loc: at.or(loc) }
        }
        EvalError::IndexOutOfRange { op, index, axis, size, loc, .. } => {
            EvalError::IndexOutOfRange { node: n, op, index, axis, size, loc: at.or(loc) }
        }
        EvalError::TooLarge { ty, .. } => EvalError::TooLarge { node: n, ty },
        EvalError::Internal { message, .. } => EvalError::Internal { node: n, message },
        e @ (EvalError::Verify(_)
        | EvalError::InputCount { .. }
        | EvalError::InputType { .. }
        | EvalError::Bind(_)) => e,
    }
}

/// Runs loop `l` on its operands: the body `l.trips` times, each trip's outputs the next
/// trip's carried values; returns every carried value (the initial ones when `trips == 0`).
/// An error inside the body names the body's node ([`in_loop`] makes it the loop's).
fn run_loop(l: &crate::ops::LoopOp, operands: &[&Buffer]) -> Result<Vec<Buffer>, EvalError> {
    let carried = l.body.carried();
    let mut inputs: Vec<Buffer> = operands.iter().map(|b| (*b).clone()).collect();
    inputs.push(Buffer::full(&crate::ops::counter_type(), crate::ops::Scalar::Int(0)));
    for trip in 0..l.trips {
        let last = inputs.len() - 1;
        inputs[last] = Buffer::full(&crate::ops::counter_type(), crate::ops::Scalar::Int(trip as i64));
        let outputs = eval(l.body.graph(), &inputs)?;
        for (k, out) in outputs.into_iter().enumerate() {
            inputs[k] = out;
        }
    }
    inputs.truncate(carried);
    Ok(inputs)
}

/// Elements widened for arithmetic: floats to `f64`, integers and booleans to `i64`.
enum Num {
    F(Vec<f64>),
    I(Vec<i64>),
}

fn numeric(d: &Data) -> Num {
    match d {
        Data::Bool(v) => Num::I(v.iter().map(|&b| b as i64).collect()),
        Data::I32(v) => Num::I(v.iter().map(|&x| x as i64).collect()),
        Data::I64(v) => Num::I(v.clone()),
        Data::F16(v) => Num::F(v.iter().map(|x| x.to_f64()).collect()),
        Data::BF16(v) => Num::F(v.iter().map(|x| x.to_f64()).collect()),
        Data::F32(v) => Num::F(v.iter().map(|&x| x as f64).collect()),
        Data::F64(v) => Num::F(v.clone()),
    }
}

/// Converts integers to `dtype` as a cast does: wrap to `i32`, round to floats (to `f16` and
/// `bf16` through `f32`), `!= 0` to bool.
fn from_ints(dtype: DType, v: impl Iterator<Item = i64>) -> Data {
    match dtype {
        DType::Bool => Data::Bool(v.map(|x| x != 0).collect()),
        DType::I32 => Data::I32(v.map(|x| x as i32).collect()),
        DType::I64 => Data::I64(v.collect()),
        DType::F16 => Data::F16(v.map(|x| half::f16::from_f32(x as f32)).collect()),
        DType::BF16 => Data::BF16(v.map(|x| half::bf16::from_f32(x as f32)).collect()),
        DType::F32 => Data::F32(v.map(|x| x as f32).collect()),
        DType::F64 => Data::F64(v.map(|x| x as f64).collect()),
    }
}

/// Converts floats to `dtype` as a cast does: truncate and saturate to integers (NaN to 0),
/// round to `f32`, to `f16`/`bf16` through `f32` (each step to nearest even), `!= 0` to bool.
fn from_floats(dtype: DType, v: impl Iterator<Item = f64>) -> Data {
    match dtype {
        DType::Bool => Data::Bool(v.map(|x| x != 0.0).collect()),
        DType::I32 => Data::I32(v.map(|x| x as i32).collect()),
        DType::I64 => Data::I64(v.map(|x| x as i64).collect()),
        // Through `f32` (compute in `f32`, then round to the storage format), as torch does.
        DType::F16 => Data::F16(v.map(|x| half::f16::from_f32(x as f32)).collect()),
        DType::BF16 => Data::BF16(v.map(|x| half::bf16::from_f32(x as f32)).collect()),
        DType::F32 => Data::F32(v.map(|x| x as f32).collect()),
        DType::F64 => Data::F64(v.collect()),
    }
}

fn from_num(dtype: DType, v: Num) -> Data {
    match v {
        Num::F(v) => from_floats(dtype, v.into_iter()),
        Num::I(v) => from_ints(dtype, v.into_iter()),
    }
}

/// Runs `$body` with `$T` the element type of `$dtype`.
macro_rules! with_element {
    ($dtype:expr, $T:ident => $body:expr) => {
        match $dtype {
            DType::Bool => {
                type $T = bool;
                $body
            }
            DType::I32 => {
                type $T = i32;
                $body
            }
            DType::I64 => {
                type $T = i64;
                $body
            }
            DType::F16 => {
                type $T = half::f16;
                $body
            }
            DType::BF16 => {
                type $T = half::bf16;
                $body
            }
            DType::F32 => {
                type $T = f32;
                $body
            }
            DType::F64 => {
                type $T = f64;
                $body
            }
        }
    };
}

/// Builds `T` data where element `i` is `src[map[i]]`, or zero where the map says `None`.
fn take<T: Element + Default>(src: &Data, map: &[Option<usize>]) -> Option<Data> {
    let s = T::slice(src)?;
    let v: Option<Vec<T>> = map
        .iter()
        .map(|m| match m {
            Some(i) => s.get(*i).copied(),
            None => Some(T::default()),
        })
        .collect();
    Some(T::into_data(v?))
}

fn select<T: Element>(cond: &[bool], a: &Data, b: &Data) -> Option<Data> {
    let (a, b) = (T::slice(a)?, T::slice(b)?);
    Some(T::into_data(cond.iter().zip(a.iter().zip(b)).map(|(&c, (&x, &y))| if c { x } else { y }).collect()))
}

/// Concatenates along `axis`: for each index of the axes before it, each part's contiguous
/// block in turn.
fn concat<T: Element>(parts: &[&Buffer], axis: usize) -> Option<Data> {
    let first = parts.first()?;
    let outer: usize = first.shape().dims().get(..axis)?.iter().product();
    let mut out = Vec::new();
    for o in 0..outer {
        for p in parts {
            let chunk: usize = p.shape().dims().get(axis..)?.iter().product();
            out.extend_from_slice(T::slice(p.data())?.get(o * chunk..(o + 1) * chunk)?);
        }
    }
    Some(T::into_data(out))
}

/// The multi-indices of a shape in row-major order.
struct Indices {
    dims: SmallVec<[usize; 4]>,
    idx: SmallVec<[usize; 4]>,
    started: bool,
    done: bool,
}

impl Indices {
    fn new(dims: &[usize]) -> Indices {
        Indices {
            dims: SmallVec::from_slice(dims),
            idx: SmallVec::from_elem(0, dims.len()),
            started: false,
            done: dims.contains(&0),
        }
    }

    /// The next multi-index, or `None` after the last one.
    fn step(&mut self) -> Option<&[usize]> {
        if self.done {
            return None;
        }
        if !self.started {
            self.started = true;
            return Some(&self.idx);
        }
        for d in (0..self.dims.len()).rev() {
            self.idx[d] += 1;
            if self.idx[d] < self.dims[d] {
                return Some(&self.idx);
            }
            self.idx[d] = 0;
        }
        self.done = true;
        None
    }
}

/// For each multi-index of `dims` in row-major order, `f` of it.
fn index_map(dims: &[usize], mut f: impl FnMut(&[usize]) -> Option<usize>) -> Vec<Option<usize>> {
    let mut out = Vec::new();
    let mut it = Indices::new(dims);
    while let Some(idx) = it.step() {
        out.push(f(idx));
    }
    out
}

/// Element counts a node may have: a guard against overflowing sizes (the index maps hold 16
/// bytes per element).
const MAX_ELEMENTS: usize = isize::MAX as usize / 16;

fn eval_node(g: &Graph, n: NodeId, args: &[&Buffer], inputs: &[Buffer]) -> Result<Buffer, EvalError> {
    let ty = g.ty(n);
    let numel = ty.shape.dims().iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    if numel.is_none_or(|m| m > MAX_ELEMENTS) {
        return Err(EvalError::TooLarge { node: n, ty: ty.clone() });
    }
    let internal = |message: &str| EvalError::Internal { node: n, message: message.to_string() };
    let loc = || g.loc(n).map(str::to_string);
    let arg = |i: usize| args.get(i).copied().ok_or_else(|| internal("missing operand"));
    // A rand's seed or offset: the `u64` whose bits its `i64[]` operand holds.
    let word = |b: &Buffer| match b.data() {
        Data::I64(v) if v.len() == 1 => Ok(v[0] as u64),
        _ => Err(internal("rand's seed and offset must be i64[] values")),
    };
    let op = g.op(n);
    let data = match op {
        Op::Input { index, .. } => {
            inputs.get(*index).ok_or_else(|| internal("missing input"))?.data().clone()
        }
        Op::Const { value, ty } => Buffer::full(ty, *value).into_data(),
        Op::Size { ty, .. } => Buffer::full(ty, g.size_value(n)).into_data(),
        Op::Iota { ty, axis } => {
            let stride = ty.shape.strides().get(*axis).copied().ok_or_else(|| internal("bad axis"))?;
            let size = ty.shape.dims()[*axis];
            from_ints(ty.dtype, (0..ty.shape.numel()).map(|i| ((i / stride) % size) as i64))
        }
        Op::Rand { ty } => {
            let (seed, offset) = (word(arg(0)?)?, word(arg(1)?)?);
            let counters = (0..ty.shape.numel() as u64).map(|i| offset.wrapping_add(i));
            match ty.dtype {
                DType::F32 => Data::F32(counters.map(|c| random::uniform_f32(seed, c)).collect()),
                // The `f32` draw rounded to the storage format, as `torch.rand(dtype=bfloat16)`
                // draws in `f32`.
                DType::F16 => {
                    Data::F16(counters.map(|c| half::f16::from_f32(random::uniform_f32(seed, c))).collect())
                }
                DType::BF16 => {
                    Data::BF16(counters.map(|c| half::bf16::from_f32(random::uniform_f32(seed, c))).collect())
                }
                DType::F64 => Data::F64(counters.map(|c| random::uniform_f64(seed, c)).collect()),
                DType::Bool | DType::I32 | DType::I64 => return Err(internal("rand of a non-float dtype")),
            }
        }
        Op::Unary(u) => {
            let spec = u.spec();
            match numeric(arg(0)?.data()) {
                Num::F(v) => from_floats(ty.dtype, v.into_iter().map(spec.float)),
                Num::I(v) => from_ints(ty.dtype, v.into_iter().map(spec.int)),
            }
        }
        Op::Binary(b) => {
            let spec = b.spec();
            match (numeric(arg(0)?.data()), numeric(arg(1)?.data())) {
                (Num::F(x), Num::F(y)) => {
                    from_floats(ty.dtype, x.into_iter().zip(y).map(|(x, y)| (spec.float)(x, y)))
                }
                (Num::I(x), Num::I(y)) => {
                    let v: Result<Vec<i64>, &'static str> =
                        x.into_iter().zip(y).map(|(x, y)| (spec.int)(x, y)).collect();
                    let v = v.map_err(|message| EvalError::Arithmetic {
                        node: n,
                        op: spec.name,
                        message,
                        loc: loc(),
                    })?;
                    from_ints(ty.dtype, v.into_iter())
                }
                _ => return Err(internal("operands of different categories")),
            }
        }
        Op::Where => {
            let c = arg(0)?.as_slice::<bool>().ok_or_else(|| internal("condition is not bool"))?;
            let (a, b) = (arg(1)?.data(), arg(2)?.data());
            with_element!(ty.dtype, T => select::<T>(c, a, b)).ok_or_else(|| internal("where operands"))?
        }
        Op::Cast { dtype } => from_num(*dtype, numeric(arg(0)?.data())),
        Op::Reduce { op, axes } => {
            let x = arg(0)?;
            let dims = x.shape().dims();
            // Each input axis contributes its output stride, or nothing when it is reduced.
            let out_strides = ty.shape.strides();
            let mut kept = out_strides.iter();
            let contrib: SmallVec<[usize; 4]> = (0..dims.len())
                .map(|d| if axes.contains(&d) { 0 } else { kept.next().copied().unwrap_or(0) })
                .collect();
            let out_of = |idx: &[usize]| idx.iter().zip(&contrib).map(|(i, s)| i * s).sum::<usize>();
            let spec = op.combine().spec();
            let identity = op.identity();
            let out_n = ty.shape.numel();
            let missing = || internal("empty reduction without identity");
            match numeric(x.data()) {
                Num::F(v) => {
                    let mut acc: Vec<Option<f64>> = vec![None; out_n];
                    let mut it = Indices::new(dims);
                    for &x in &v {
                        let o = out_of(it.step().ok_or_else(|| internal("index walk"))?);
                        acc[o] = Some(match acc[o] {
                            None => x,
                            Some(a) => (spec.float)(a, x),
                        });
                    }
                    let acc: Option<Vec<f64>> =
                        acc.into_iter().map(|a| a.or(identity.map(|s| s.as_f64()))).collect();
                    from_floats(ty.dtype, acc.ok_or_else(missing)?.into_iter())
                }
                Num::I(v) => {
                    let mut acc: Vec<Option<i64>> = vec![None; out_n];
                    let mut it = Indices::new(dims);
                    for &x in &v {
                        let o = out_of(it.step().ok_or_else(|| internal("index walk"))?);
                        acc[o] = Some(match acc[o] {
                            None => x,
                            Some(a) => (spec.int)(a, x).map_err(|message| EvalError::Arithmetic {
                                node: n,
                                op: op.name(),
                                message,
                                loc: loc(),
                            })?,
                        });
                    }
                    let acc: Option<Vec<i64>> =
                        acc.into_iter().map(|a| a.or(identity.map(|s| s.as_i64()))).collect();
                    from_ints(ty.dtype, acc.ok_or_else(missing)?.into_iter())
                }
            }
        }
        Op::ArgReduce { op, axis } => {
            let x = arg(0)?;
            let dims = x.shape().dims();
            let size = dims[*axis];
            let outer: usize = dims[..*axis].iter().product();
            let inner: usize = dims[*axis + 1..].iter().product();
            let out = match numeric(x.data()) {
                Num::F(v) => arg_extremum(&v, *op, outer, size, inner, f64::is_nan),
                Num::I(v) => arg_extremum(&v, *op, outer, size, inner, |_| false),
            };
            Data::I64(out)
        }
        Op::Reshape { .. } => arg(0)?.data().clone(),
        Op::Permute { perm } => {
            let x = arg(0)?;
            let strides = x.shape().strides();
            let map = index_map(ty.shape.dims(), |idx| {
                Some(idx.iter().zip(perm).map(|(&i, &p)| i * strides[p]).sum())
            });
            with_element!(ty.dtype, T => take::<T>(x.data(), &map)).ok_or_else(|| internal("permute"))?
        }
        Op::Expand { .. } => {
            let x = arg(0)?;
            let (dims, strides) = (x.shape().dims(), x.shape().strides());
            let map = index_map(ty.shape.dims(), |idx| {
                Some((0..idx.len()).map(|d| if dims[d] == 1 { 0 } else { idx[d] * strides[d] }).sum())
            });
            with_element!(ty.dtype, T => take::<T>(x.data(), &map)).ok_or_else(|| internal("expand"))?
        }
        Op::Slice { start, step, .. } => {
            let x = arg(0)?;
            let strides = x.shape().strides();
            let map = index_map(ty.shape.dims(), |idx| {
                let mut flat = 0usize;
                for d in 0..idx.len() {
                    let i = start[d] + idx[d] as isize * step[d];
                    flat += usize::try_from(i).ok()? * strides[d];
                }
                Some(flat)
            });
            if map.iter().any(Option::is_none) {
                return Err(internal("slice leaves its operand"));
            }
            with_element!(ty.dtype, T => take::<T>(x.data(), &map)).ok_or_else(|| internal("slice"))?
        }
        Op::Pad { lo, .. } => {
            let x = arg(0)?;
            let (dims, strides) = (x.shape().dims(), x.shape().strides());
            let map = index_map(ty.shape.dims(), |idx| {
                let mut flat = 0usize;
                for d in 0..idx.len() {
                    let i = idx[d].checked_sub(lo[d]).filter(|&i| i < dims[d])?;
                    flat += i * strides[d];
                }
                Some(flat)
            });
            with_element!(ty.dtype, T => take::<T>(x.data(), &map)).ok_or_else(|| internal("pad"))?
        }
        Op::Concat { axis } => {
            with_element!(ty.dtype, T => concat::<T>(args, *axis)).ok_or_else(|| internal("concat"))?
        }
        Op::Matmul => {
            let (a, b) = (arg(0)?, arg(1)?);
            let (ad, bd) = (a.shape().dims(), b.shape().dims());
            let r = ad.len();
            let (m, k, nn) = (ad[r - 2], ad[r - 1], bd[r - 1]);
            let batch: usize = ad[..r - 2].iter().product();
            match (numeric(a.data()), numeric(b.data())) {
                (Num::F(x), Num::F(y)) => {
                    let mut out = Vec::with_capacity(batch * m * nn);
                    for bt in 0..batch {
                        let (xa, ya) = (&x[bt * m * k..][..m * k], &y[bt * k * nn..][..k * nn]);
                        for i in 0..m {
                            for j in 0..nn {
                                out.push((0..k).map(|p| xa[i * k + p] * ya[p * nn + j]).sum::<f64>());
                            }
                        }
                    }
                    from_floats(ty.dtype, out.into_iter())
                }
                (Num::I(x), Num::I(y)) => {
                    let mut out = Vec::with_capacity(batch * m * nn);
                    for bt in 0..batch {
                        let (xa, ya) = (&x[bt * m * k..][..m * k], &y[bt * k * nn..][..k * nn]);
                        for i in 0..m {
                            for j in 0..nn {
                                out.push((0..k).fold(0i64, |s, p| {
                                    s.wrapping_add(xa[i * k + p].wrapping_mul(ya[p * nn + j]))
                                }));
                            }
                        }
                    }
                    from_ints(ty.dtype, out.into_iter())
                }
                _ => return Err(internal("matmul operands of different categories")),
            }
        }
        Op::Conv(c) => {
            let (a, b) = (arg(0)?, arg(1)?);
            let sizes = c.sizes(a.shape(), b.shape()).map_err(|e| internal(&e.to_string()))?;
            match (numeric(a.data()), numeric(b.data())) {
                (Num::F(x), Num::F(y)) => from_floats(ty.dtype, c.eval_f64(&sizes, &x, &y).into_iter()),
                _ => return Err(internal("convolution operands are not floats")),
            }
        }
        Op::Loop(l) => run_loop(l, args).map_err(|e| in_loop(e, g, n))?.swap_remove(l.result).into_data(),
        Op::Pool(p) => {
            let (x, other) = (arg(0)?, arg(1)?);
            let sizes = p.sizes(x.shape(), other.shape()).map_err(|e| internal(&e.to_string()))?;
            match (numeric(x.data()), numeric(other.data())) {
                (Num::F(x), Num::F(y)) => from_floats(ty.dtype, p.eval_f64(sizes, &x, &y).into_iter()),
                _ => return Err(internal("max-pool operands are not floats")),
            }
        }
        Op::Gather { axis } => {
            let (x, index) = (arg(0)?, arg(1)?);
            let index = index.as_slice::<i64>().ok_or_else(|| internal("index is not i64"))?;
            let (dims, strides) = (x.shape().dims(), x.shape().strides());
            let mut map = Vec::with_capacity(index.len());
            let mut it = Indices::new(ty.shape.dims());
            for &k in index {
                let idx = it.step().ok_or_else(|| internal("index walk"))?;
                let k = checked_index(k, dims[*axis]).ok_or_else(|| EvalError::IndexOutOfRange {
                    node: n,
                    op: "gather",
                    index: k,
                    axis: *axis,
                    size: dims[*axis],
                    loc: loc(),
                })?;
                let flat: usize =
                    (0..idx.len()).map(|d| (if d == *axis { k } else { idx[d] }) * strides[d]).sum();
                map.push(Some(flat));
            }
            with_element!(ty.dtype, T => take::<T>(x.data(), &map)).ok_or_else(|| internal("gather"))?
        }
        Op::ScatterAdd { axis } => {
            let (base, index, src) = (arg(0)?, arg(1)?, arg(2)?);
            let index = index.as_slice::<i64>().ok_or_else(|| internal("index is not i64"))?;
            let (dims, strides) = (base.shape().dims(), base.shape().strides());
            // Destination of each source element, in row-major order of the index.
            let mut dest = Vec::with_capacity(index.len());
            let mut it = Indices::new(src.shape().dims());
            for &k in index {
                let idx = it.step().ok_or_else(|| internal("index walk"))?;
                let k = checked_index(k, dims[*axis]).ok_or_else(|| EvalError::IndexOutOfRange {
                    node: n,
                    op: "scatter_add",
                    index: k,
                    axis: *axis,
                    size: dims[*axis],
                    loc: loc(),
                })?;
                dest.push(
                    (0..idx.len()).map(|d| (if d == *axis { k } else { idx[d] }) * strides[d]).sum::<usize>(),
                );
            }
            let add = BinaryOp::Add.spec();
            match (numeric(base.data()), numeric(src.data())) {
                (Num::F(mut out), Num::F(v)) => {
                    for (&o, x) in dest.iter().zip(v) {
                        let s = (add.float)(out[o], x);
                        out[o] = crate::ops::Scalar::Float(s).cast(ty.dtype).as_f64();
                    }
                    from_floats(ty.dtype, out.into_iter())
                }
                (Num::I(mut out), Num::I(v)) => {
                    for (&o, x) in dest.iter().zip(v) {
                        let s = (add.int)(out[o], x).map_err(|message| EvalError::Arithmetic {
                            node: n,
                            op: "scatter_add",
                            message,
                            loc: loc(),
                        })?;
                        out[o] = if ty.dtype == DType::I32 { s as i32 as i64 } else { s };
                    }
                    from_ints(ty.dtype, out.into_iter())
                }
                _ => return Err(internal("scatter_add operands of different categories")),
            }
        }
    };
    Buffer::new(ty.shape.clone(), data).map_err(|e| internal(&e.to_string()))
}

/// `k` as an index into an axis of `size`, if it lies in `0..size`.
fn checked_index(k: i64, size: usize) -> Option<usize> {
    usize::try_from(k).ok().filter(|&k| k < size)
}

/// Index of the extremum of each `size`-long line of `v` viewed as `[outer, size, inner]`: the
/// first one on ties, the first NaN if any.
fn arg_extremum<T: PartialOrd + Copy>(
    v: &[T],
    op: ArgOp,
    outer: usize,
    size: usize,
    inner: usize,
    is_nan: impl Fn(T) -> bool,
) -> Vec<i64> {
    let mut out = Vec::with_capacity(outer * inner);
    for o in 0..outer {
        for j in 0..inner {
            let at = |k: usize| v[(o * size + k) * inner + j];
            let (mut best, mut best_k) = (at(0), 0);
            if !is_nan(best) {
                for k in 1..size {
                    let x = at(k);
                    if is_nan(x) {
                        best_k = k;
                        break;
                    }
                    let better = match op {
                        ArgOp::ArgMax => x > best,
                        ArgOp::ArgMin => x < best,
                    };
                    if better {
                        (best, best_k) = (x, k);
                    }
                }
            }
            out.push(best_k as i64);
        }
    }
    out
}
