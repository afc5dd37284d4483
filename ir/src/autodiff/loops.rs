//! The reverse-mode rule of `loop`, as JAX differentiates `fori_loop` with a static trip count
//! (through `scan`): run the loop again recording the carried values at the start of every
//! trip, then run the body's VJP over the trips in reverse.
//!
//! For a loop node yielding carried value `k`, with cotangent `g`:
//!
//! 1. **History.** A loop over the body `(c, h, v, i) -> (body(c, v, i), h with row i set to
//!    c)` from `(init, 0, v)` leaves in `h_j`, a `[T, ...]` tensor, carried value `j` at the
//!    start of each trip. (Writing row `i` is a `where` over `h`, so recording costs `O(T)`
//!    per trip: fine for the small states of a training loop, quadratic for long loops of
//!    large states.)
//! 2. **Backward.** A loop over the body `(gc, gv, h, v, j)`: with `t = T - 1 - j`, it reads
//!    trip `t`'s carried values `c_t` from the history (a `gather` of row `t`), runs the body on
//!    `(c_t, v, t)` and its VJP with seeds `gc`, and returns the cotangents of `c_t` as the new
//!    `gc` and `gv` plus the cotangents of the float invariants. It starts from `g` for carried
//!    value `k` and zeros elsewhere; after `T` trips, `gc` is the cotangent of the initial
//!    values and `gv` that of the invariants.
//!
//! Both are ordinary loops, so they compile to one program each and differentiate again (a
//! gradient of a gradient runs this rule on them). A loop carrying an integer value has no rule
//! yet (a clear error). A symbolic body (its sizes over the symbols of the graph holding the
//! loop) gives symbolic history and backward bodies, over the same symbols.

use super::{error, grad, Emit, GradError};
use crate::graph::{Graph, NodeId};
use crate::ops::{counter_type, BinaryOp, Body, LoopOp, Op, Scalar};
use crate::sym::Dim;
use crate::types::{DType, Shape, TensorType};
use smallvec::SmallVec;

/// Cotangents of the operands `args` of loop `l`, given the cotangent `g` of its result;
/// `wanted` says which operands need one.
pub fn vjp(
    e: &mut Emit,
    l: &LoopOp,
    args: &[NodeId],
    g: NodeId,
    wanted: &[bool],
) -> Result<SmallVec<[Option<NodeId>; 3]>, GradError> {
    let body = &l.body;
    let (c, v) = (body.carried(), body.invariants());
    let mut out: SmallVec<[Option<NodeId>; 3]> = args.iter().map(|_| None).collect();
    if !wanted.iter().any(|&w| w) {
        return Ok(out);
    }
    let tys: Vec<TensorType> = (0..c + v).map(|i| body.input_type(i).clone()).collect();
    if let Some(ty) = tys[..c].iter().find(|t| !t.dtype.is_float()) {
        return Err(error(format!(
            "fori_loop is not differentiable yet when it carries an integer value ({ty}); only \
             floating-point carried values are"
        )));
    }
    let trips = l.trips;
    if trips == 0 {
        // The result is the initial value itself.
        out[l.result] = Some(g);
        return Ok(out);
    }
    // 1. The carried values at the start of every trip.
    let history = history_body(body, trips)?;
    let mut operands: Vec<NodeId> = args[..c].to_vec();
    for ty in &tys[..c] {
        operands.push(e.full(0.0, history_type(ty, trips)?)?);
    }
    operands.extend_from_slice(&args[c..]);
    let mut hist = Vec::with_capacity(c);
    for j in 0..c {
        hist.push(e.op(Op::Loop(LoopOp { body: history.clone(), trips, result: c + j }), &operands)?);
    }
    // 2. The body's VJP, trip by trip from the last.
    let floats: Vec<usize> = (0..v).filter(|&m| tys[c + m].dtype.is_float()).collect();
    let backward = backward_body(body, trips, &floats)?;
    let mut operands = Vec::with_capacity(2 * c + floats.len() + v);
    for (j, ty) in tys[..c].iter().enumerate() {
        operands.push(if j == l.result { g } else { e.full(0.0, ty.clone())? });
    }
    for &m in &floats {
        operands.push(e.full(0.0, tys[c + m].clone())?);
    }
    operands.extend_from_slice(&hist);
    operands.extend_from_slice(&args[c..]);
    let results = (0..c).map(|j| (j, j)).chain(floats.iter().enumerate().map(|(q, &m)| (c + m, c + q)));
    for (arg, result) in results {
        if wanted[arg] {
            out[arg] = Some(e.op(Op::Loop(LoopOp { body: backward.clone(), trips, result }), &operands)?);
        }
    }
    Ok(out)
}

/// `[trips, ...ty]`: a history of values of type `ty`.
fn history_type(ty: &TensorType, trips: usize) -> Result<TensorType, GradError> {
    let mut dims = vec![trips];
    dims.extend_from_slice(ty.shape.dims());
    let mut sym = vec![Dim::from(trips as u64)];
    sym.extend(ty.shape.sym_dims());
    Ok(TensorType::new(ty.dtype, shape(sym, &dims)?))
}

/// The shape of dims `sym`, of sizes `dims` at the hints.
fn shape(sym: Vec<Dim>, dims: &[usize]) -> Result<Shape, GradError> {
    Shape::symbolic(sym, dims).map_err(|e| error(format!("the loop rule built a bad shape: {e}")))
}

/// A new graph for a body built from `body`: it declares `body`'s size symbols, at its hints.
fn graph_like(name: &str, body: &Body) -> Result<Graph, GradError> {
    let mut g = Graph::new(name);
    let from = body.graph();
    for s in from.symbols().iter() {
        let hint = from.hints().get(&s.name).copied().unwrap_or(0);
        g.declare_symbol(s.clone(), hint).map_err(|e| error(format!("a loop body's symbol: {e}")))?;
    }
    Ok(g)
}

/// Adds `op` to `g`; a type error is a bug of this rule.
fn add(g: &mut Graph, op: Op, args: &[NodeId]) -> Result<NodeId, GradError> {
    let name = op.name();
    g.add(op, args).map_err(|e| error(format!("the loop rule built ill-typed IR for {name}: {e}")))
}

/// Copies the live nodes of `src` into `dst`, its inputs being `inputs`; returns its outputs.
fn inline(dst: &mut Graph, src: &Graph, inputs: &[NodeId]) -> Result<Vec<NodeId>, GradError> {
    let order = src.live_order().ok_or_else(|| error("a loop body has a cycle"))?;
    let mut map = std::collections::HashMap::new();
    for ((_, n), &to) in src.inputs().iter().zip(inputs) {
        map.insert(*n, to);
    }
    for n in order {
        if map.contains_key(&n) {
            continue;
        }
        let args: Vec<NodeId> = src.args(n).iter().map(|a| map[a]).collect();
        map.insert(n, add(dst, src.op(n).clone(), &args)?);
    }
    Ok(src.outputs().iter().map(|o| map[o]).collect())
}

/// `x` (an `i64[]`) broadcast to `to`, through a reshape to all-ones.
fn broadcast(g: &mut Graph, x: NodeId, to: &Shape) -> Result<NodeId, GradError> {
    let ones = Shape::new(&vec![1; to.rank()]);
    let r = add(g, Op::Reshape { shape: ones }, &[x])?;
    add(g, Op::Expand { shape: to.clone() }, &[r])
}

/// `to` with its first dim 1.
fn first_row(to: &Shape) -> Result<Shape, GradError> {
    let (mut sym, mut dims) = (to.sym_dims(), to.dims().to_vec());
    (sym[0], dims[0]) = (Dim::from(1), 1);
    shape(sym, &dims)
}

/// The history body: `(c..., h..., v..., i) -> (body(c, v, i)..., h with row i set to c...)`.
fn history_body(body: &Body, trips: usize) -> Result<Body, GradError> {
    let (c, v) = (body.carried(), body.invariants());
    let mut g = graph_like("history", body)?;
    let cs: Vec<NodeId> = (0..c).map(|j| g.add_input(format!("c{j}"), body.input_type(j).clone())).collect();
    let mut hs = Vec::with_capacity(c);
    for j in 0..c {
        hs.push(g.add_input(format!("h{j}"), history_type(body.input_type(j), trips)?));
    }
    let vs: Vec<NodeId> =
        (0..v).map(|m| g.add_input(format!("v{m}"), body.input_type(c + m).clone())).collect();
    let i = g.add_input("i", counter_type());
    let mut inputs = cs.clone();
    inputs.extend(&vs);
    inputs.push(i);
    let mut outputs = inline(&mut g, body.graph(), &inputs)?;
    for (&cj, &hj) in cs.iter().zip(&hs) {
        let all = g.ty(hj).shape.clone();
        let rows = add(&mut g, Op::Iota { ty: TensorType::new(DType::I64, all.clone()), axis: 0 }, &[])?;
        let at = broadcast(&mut g, i, &all)?;
        let mask = add(&mut g, Op::Binary(BinaryOp::Eq), &[rows, at])?;
        let one = add(&mut g, Op::Reshape { shape: first_row(&all)? }, &[cj])?;
        let spread = add(&mut g, Op::Expand { shape: all }, &[one])?;
        outputs.push(add(&mut g, Op::Where, &[mask, spread, hj])?);
    }
    g.set_outputs(outputs);
    Body::new(g).map_err(|e| error(format!("the loop rule built a bad history body: {e}")))
}

/// The backward body: `(gc..., gv..., h..., v..., j) -> (cotangents of c_t..., gv + those of
/// the float invariants...)` at trip `t = trips - 1 - j`; `floats` are the float invariants.
fn backward_body(body: &Body, trips: usize, floats: &[usize]) -> Result<Body, GradError> {
    let (c, v) = (body.carried(), body.invariants());
    let mut g = graph_like("backward", body)?;
    let gcs: Vec<NodeId> =
        (0..c).map(|j| g.add_input(format!("gc{j}"), body.input_type(j).clone())).collect();
    let gvs: Vec<NodeId> =
        floats.iter().map(|&m| g.add_input(format!("gv{m}"), body.input_type(c + m).clone())).collect();
    let mut hs = Vec::with_capacity(c);
    for j in 0..c {
        hs.push(g.add_input(format!("h{j}"), history_type(body.input_type(j), trips)?));
    }
    let vs: Vec<NodeId> =
        (0..v).map(|m| g.add_input(format!("v{m}"), body.input_type(c + m).clone())).collect();
    let j = g.add_input("j", counter_type());
    let last = add(&mut g, Op::Const { value: Scalar::Int(trips as i64 - 1), ty: counter_type() }, &[])?;
    let t = add(&mut g, Op::Binary(BinaryOp::Sub), &[last, j])?;
    // Row `t` of each history: a gather of one row, reshaped to the carried value's shape.
    let mut ct = Vec::with_capacity(c);
    for (k, &h) in hs.iter().enumerate() {
        let row = first_row(&g.ty(h).shape)?;
        let index = broadcast(&mut g, t, &row)?;
        let picked = add(&mut g, Op::Gather { axis: 0 }, &[h, index])?;
        ct.push(add(&mut g, Op::Reshape { shape: body.input_type(k).shape.clone() }, &[picked])?);
    }
    let mut inputs = ct.clone();
    inputs.extend(&vs);
    inputs.push(t);
    let ys = inline(&mut g, body.graph(), &inputs)?;
    let mut wrt = ct.clone();
    wrt.extend(floats.iter().map(|&m| vs[m]));
    let grads = grad(&mut g, &ys, &gcs, &wrt)?;
    let mut outputs = Vec::with_capacity(c + floats.len());
    for (k, d) in grads[..c].iter().enumerate() {
        outputs.push(match d {
            Some(d) => *d,
            None => {
                add(&mut g, Op::Const { value: Scalar::Float(0.0), ty: body.input_type(k).clone() }, &[])?
            }
        });
    }
    for (q, d) in grads[c..].iter().enumerate() {
        outputs.push(match d {
            Some(d) => add(&mut g, Op::Binary(BinaryOp::Add), &[gvs[q], *d])?,
            None => gvs[q],
        });
    }
    g.set_outputs(outputs);
    Body::new(g).map_err(|e| error(format!("the loop rule built a bad backward body: {e}")))
}
