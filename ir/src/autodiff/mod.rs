//! Reverse-mode automatic differentiation as a graph transform.
//!
//! [`grad`] appends to a [`Graph`] the nodes that compute the vector-Jacobian product of some
//! outputs with respect to some nodes: the result is ordinary IR, printed, simplified, fused and
//! compiled like the forward pass, and differentiable again (gradients of gradients are
//! gradients of this IR).
//!
//! The rule of each elementwise primitive lives in its row of the op table
//! ([`UnarySpec::vjp`](crate::ops::UnarySpec::vjp), [`BinarySpec::vjp`](crate::ops::BinarySpec::vjp));
//! the rules of the structural ops (reductions, movement, matmul, gather, ...) are one
//! exhaustive match in [`rules`]. Every rule emits IR through [`Emit`].
//!
//! Conventions, as PyTorch defines them:
//! - only floating-point values carry gradients; integer and boolean results (comparisons,
//!   `argmax`, casts to integers) stop them;
//! - broadcasting is explicit in the IR (`expand`), so a broadcast operand's gradient is summed
//!   back to its shape by `expand`'s rule;
//! - `maximum`/`minimum` send half the gradient to each operand where they tie; `max`/`min`
//!   reductions share it evenly among all tied elements (NaN counts as the maximum when present),
//!   as `torch.amax` and the full `x.max()`;
//! - `floor`, `ceil` and `floor_divide` have zero gradients; `abs` has gradient `sign(x)`
//!   (0 at 0); `sqrt` at 0 gives `inf`; `pow` follows torch's masks (`x**0` has zero gradient
//!   in `x`, `0**y` zero gradient in `y` for `y >= 0`);
//! - `prod` gives each element the product of the other elements of its group, zeros included
//!   (with one zero, only the zero gets a nonzero gradient; with two or more, none does), in a
//!   form with no division by zero whose own gradient is the true second derivative;
//! - `gather`'s gradient is a `scatter_add` into zeros and `scatter_add`'s gradient for its
//!   source a `gather`.

pub mod loops;
pub mod rules;

use crate::graph::{Graph, NodeId};
use crate::ops::{BinaryOp, Op, Scalar, UnaryOp};
use crate::types::{DType, Shape, TensorType};
use smallvec::SmallVec;
use std::collections::HashMap;
use std::fmt;

/// Why a gradient could not be built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GradError {
    /// What went wrong.
    pub message: String,
}

impl fmt::Display for GradError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "grad: {}", self.message)
    }
}

impl std::error::Error for GradError {}

fn error(message: impl Into<String>) -> GradError {
    GradError { message: message.into() }
}

/// Emits gradient IR into a graph: typed helpers over [`Graph::add`], used by the VJP rules.
pub struct Emit<'g> {
    graph: &'g mut Graph,
    added: Vec<NodeId>,
}

impl<'g> Emit<'g> {
    /// An emitter appending to `graph`.
    pub fn new(graph: &'g mut Graph) -> Emit<'g> {
        Emit { graph, added: Vec::new() }
    }

    /// The nodes added so far, in order of creation (a topological order).
    pub fn added(&self) -> &[NodeId] {
        &self.added
    }

    /// The type of node `n`.
    pub fn ty(&self, n: NodeId) -> TensorType {
        self.graph.ty(n).clone()
    }

    /// The shape of node `n`.
    pub fn shape(&self, n: NodeId) -> Shape {
        self.graph.ty(n).shape.clone()
    }

    /// Adds `op` applied to `args`. A type error here is a bug in a rule, reported as such.
    pub fn op(&mut self, op: Op, args: &[NodeId]) -> Result<NodeId, GradError> {
        let name = op.name();
        let id = self
            .graph
            .add(op, args)
            .map_err(|e| error(format!("a rule for {name} built ill-typed IR: {e}")))?;
        self.added.push(id);
        Ok(id)
    }

    /// A constant with the type of `like`.
    pub fn constant(&mut self, value: f64, like: NodeId) -> Result<NodeId, GradError> {
        let ty = self.ty(like);
        self.full(value, ty)
    }

    /// A constant of type `ty` (a float value rounded to the dtype, as `1/√π` must be in `f32`).
    pub fn full(&mut self, value: f64, ty: TensorType) -> Result<NodeId, GradError> {
        let value =
            if ty.dtype.is_float() { Scalar::Float(value).cast(ty.dtype) } else { Scalar::Int(value as i64) };
        self.op(Op::Const { value, ty }, &[])
    }

    /// Zeros of the type of `like`.
    pub fn zeros_like(&mut self, like: NodeId) -> Result<NodeId, GradError> {
        self.constant(0.0, like)
    }

    /// An elementwise unary op.
    pub fn unary(&mut self, u: UnaryOp, x: NodeId) -> Result<NodeId, GradError> {
        self.op(Op::Unary(u), &[x])
    }

    /// An elementwise binary op.
    pub fn binary(&mut self, b: BinaryOp, x: NodeId, y: NodeId) -> Result<NodeId, GradError> {
        self.op(Op::Binary(b), &[x, y])
    }

    /// `x + y`.
    pub fn add(&mut self, x: NodeId, y: NodeId) -> Result<NodeId, GradError> {
        self.binary(BinaryOp::Add, x, y)
    }

    /// `x * y`.
    pub fn mul(&mut self, x: NodeId, y: NodeId) -> Result<NodeId, GradError> {
        self.binary(BinaryOp::Mul, x, y)
    }

    /// `x / y`.
    pub fn div(&mut self, x: NodeId, y: NodeId) -> Result<NodeId, GradError> {
        self.binary(BinaryOp::Div, x, y)
    }

    /// `-x`.
    pub fn neg(&mut self, x: NodeId) -> Result<NodeId, GradError> {
        self.unary(UnaryOp::Neg, x)
    }

    /// `x * c` for a constant `c`.
    pub fn scale(&mut self, x: NodeId, c: f64) -> Result<NodeId, GradError> {
        let c = self.constant(c, x)?;
        self.mul(x, c)
    }

    /// `where(cond, a, b)`.
    pub fn select(&mut self, cond: NodeId, a: NodeId, b: NodeId) -> Result<NodeId, GradError> {
        self.op(Op::Where, &[cond, a, b])
    }

    /// `where(cond, x, 0)`.
    pub fn keep(&mut self, cond: NodeId, x: NodeId) -> Result<NodeId, GradError> {
        let zero = self.zeros_like(x)?;
        self.select(cond, x, zero)
    }

    /// `x != x`: whether each element is NaN.
    pub fn is_nan(&mut self, x: NodeId) -> Result<NodeId, GradError> {
        self.binary(BinaryOp::Ne, x, x)
    }

    /// Reshape to `shape`; no node when the shape is already that.
    pub fn reshape(&mut self, x: NodeId, shape: Shape) -> Result<NodeId, GradError> {
        if self.shape(x) == shape {
            return Ok(x);
        }
        self.op(Op::Reshape { shape }, &[x])
    }

    /// A value reduced over `axes` (shape without them) broadcast back to `shape`: reshape to
    /// keep the reduced axes as 1s, then expand.
    pub fn unreduce(&mut self, g: NodeId, axes: &[usize], shape: &Shape) -> Result<NodeId, GradError> {
        // Over the dims' expressions, so a symbolic shape stays symbolic.
        let dims = shape.sym_dims();
        let one = || crate::sym::Dim::from(1u64);
        let kept: Vec<_> =
            (0..shape.rank()).map(|d| if axes.contains(&d) { one() } else { dims[d].clone() }).collect();
        let sizes: SmallVec<[usize; 4]> =
            (0..shape.rank()).map(|d| if axes.contains(&d) { 1 } else { shape.0[d] }).collect();
        let kept =
            Shape::symbolic(kept, &sizes).map_err(|m| GradError { message: format!("unreduce: {m}") })?;
        let g = self.reshape(g, kept)?;
        if self.shape(g) == *shape {
            return Ok(g);
        }
        self.op(Op::Expand { shape: shape.clone() }, &[g])
    }

    /// Sum over `axes` (removing them); no node when `axes` is empty.
    pub fn sum(&mut self, x: NodeId, axes: &[usize]) -> Result<NodeId, GradError> {
        if axes.is_empty() {
            return Ok(x);
        }
        self.op(Op::Reduce { op: crate::ops::ReduceOp::Sum, axes: axes.iter().copied().collect() }, &[x])
    }

    /// Cast to `dtype`; no node when `x` has it already.
    pub fn cast(&mut self, x: NodeId, dtype: DType) -> Result<NodeId, GradError> {
        if self.ty(x).dtype == dtype {
            return Ok(x);
        }
        self.op(Op::Cast { dtype }, &[x])
    }
}

/// Appends to `graph` the gradients of `outputs`, weighted by the cotangents `seeds` (nodes of
/// the graph, one per output with the output's type), with respect to each node of `wrt`.
///
/// Returns, per `wrt` node, its gradient node, or `None` when no output depends on it through
/// floating-point values. The graph's outputs are left as they were; the caller decides which
/// of the new nodes to return.
///
/// ```
/// use tenjit_ir::{autodiff, Graph, Op, UnaryOp, DType, TensorType};
/// let mut g = Graph::new("f");
/// let x = g.add_input("x", TensorType::new(DType::F64, [3]));
/// let y = g.add(Op::Unary(UnaryOp::Sin), &[x]).unwrap();
/// let seed = g.add(Op::Const { value: tenjit_ir::Scalar::Float(1.0), ty: g.ty(y).clone() }, &[]).unwrap();
/// let dx = autodiff::grad(&mut g, &[y], &[seed], &[x]).unwrap()[0].unwrap();
/// g.set_outputs(vec![dx]);
/// assert!(g.to_string().contains("cos"));
/// assert_eq!(g.ty(dx), g.ty(x));
/// ```
pub fn grad(
    graph: &mut Graph,
    outputs: &[NodeId],
    seeds: &[NodeId],
    wrt: &[NodeId],
) -> Result<Vec<Option<NodeId>>, GradError> {
    if outputs.len() != seeds.len() {
        return Err(error(format!("{} outputs but {} seeds", outputs.len(), seeds.len())));
    }
    for (&o, &s) in outputs.iter().zip(seeds) {
        if graph.ty(o) != graph.ty(s) {
            return Err(error(format!(
                "the seed for an output of type {} has type {}",
                graph.ty(o),
                graph.ty(s)
            )));
        }
    }
    for &w in wrt {
        if !graph.ty(w).dtype.is_float() {
            return Err(error(format!(
                "only floating-point tensors have gradients; asked for one of type {}",
                graph.ty(w)
            )));
        }
    }
    let order = graph.topo_order().ok_or_else(|| error("the graph has a cycle"))?;
    // Which nodes lie on a floating-point path from a `wrt` node.
    let mut needs: HashMap<NodeId, bool> = HashMap::new();
    for &n in &order {
        let float = graph.ty(n).dtype.is_float();
        let on_path =
            wrt.contains(&n) || graph.args(n).iter().any(|a| needs.get(a).copied().unwrap_or(false));
        needs.insert(n, float && on_path);
    }
    let mut cotangents: HashMap<NodeId, Vec<NodeId>> = HashMap::new();
    for (&o, &s) in outputs.iter().zip(seeds) {
        if needs[&o] {
            cotangents.entry(o).or_default().push(s);
        }
    }
    let mut emit = Emit::new(graph);
    let mut total: HashMap<NodeId, NodeId> = HashMap::new();
    for &n in order.iter().rev() {
        let Some(parts) = cotangents.remove(&n) else { continue };
        let g = sum_all(&mut emit, &parts)?;
        total.insert(n, g);
        let args = emit.graph.args(n);
        let wanted: SmallVec<[bool; 3]> = args.iter().map(|a| needs[a]).collect();
        if !wanted.iter().any(|&w| w) {
            continue;
        }
        let op = emit.graph.op(n).clone();
        let grads = rules::vjp(&mut emit, &op, &args, n, g, &wanted)?;
        for ((&a, da), &w) in args.iter().zip(grads).zip(&wanted) {
            if let (Some(da), true) = (da, w) {
                cotangents.entry(a).or_default().push(da);
            }
        }
    }
    Ok(wrt.iter().map(|w| total.get(w).copied()).collect())
}

/// The sum of cotangents, added in the order they arrived (deterministic). Cotangents that
/// are zero paddings of disjoint ranges of one axis (the gradients of `q, k, v =
/// qkv.split(c, 2)`) are first joined into one `concat`, zeros filling the gaps: one pass
/// writing the result instead of a full-size buffer per part and the sums of them.
fn sum_all(emit: &mut Emit, parts: &[NodeId]) -> Result<NodeId, GradError> {
    let parts = join_pads(emit, parts)?;
    let mut acc = parts[0];
    for &p in &parts[1..] {
        acc = emit.add(acc, p)?;
    }
    Ok(acc)
}

/// `pad` cotangents that pad only along one axis, over disjoint ranges, replaced by one
/// `concat` of their operands and zeros (in place of the first of them); the others kept in
/// order. The sum and the join agree but for the sign of a zero: `-0 + 0` is `+0`, the join
/// keeps `-0`.
fn join_pads(emit: &mut Emit, parts: &[NodeId]) -> Result<Vec<NodeId>, GradError> {
    // (part index, axis, start, length) of each pad along a single axis.
    let mut pads: Vec<(usize, usize, usize, usize)> = Vec::new();
    for (i, &p) in parts.iter().enumerate() {
        if let Op::Pad { lo, hi } = emit.graph.op(p) {
            let mut axes = (0..lo.len()).filter(|&d| lo[d] != 0 || hi[d] != 0);
            if let (Some(axis), None) = (axes.next(), axes.next()) {
                let len = emit.graph.ty(emit.graph.args(p)[0]).shape.0[axis];
                pads.push((i, axis, lo[axis], len));
            }
        }
    }
    let Some(&(_, axis, _, _)) = pads.first() else {
        return Ok(parts.to_vec());
    };
    pads.retain(|p| p.1 == axis);
    pads.sort_by_key(|p| p.2);
    let disjoint = pads.windows(2).all(|w| w[0].2 + w[0].3 <= w[1].2);
    if pads.len() < 2 || !disjoint {
        return Ok(parts.to_vec());
    }
    let ty = emit.ty(parts[pads[0].0]);
    let mut pieces = Vec::new();
    let mut at = 0;
    for &(i, _, start, len) in &pads {
        if start > at {
            pieces.push(zeros_along(emit, &ty, axis, start - at)?);
        }
        pieces.push(emit.graph.args(parts[i])[0]);
        at = start + len;
    }
    if at < ty.shape.0[axis] {
        pieces.push(zeros_along(emit, &ty, axis, ty.shape.0[axis] - at)?);
    }
    let joined = emit.op(Op::Concat { axis }, &pieces)?;
    let first = pads.iter().map(|p| p.0).min().unwrap_or(0);
    let joined_parts: Vec<usize> = pads.iter().map(|p| p.0).collect();
    Ok(parts
        .iter()
        .enumerate()
        .filter_map(|(i, &p)| {
            if i == first {
                Some(joined)
            } else if joined_parts.contains(&i) {
                None
            } else {
                Some(p)
            }
        })
        .collect())
}

/// Zeros of type `ty` but `size` long along `axis`.
fn zeros_along(emit: &mut Emit, ty: &TensorType, axis: usize, size: usize) -> Result<NodeId, GradError> {
    let mut ty = ty.clone();
    ty.shape.0[axis] = size;
    emit.full(0.0, ty)
}

/// The gradient graph of a graph with one scalar floating-point output: its outputs become
/// that output followed by its gradient with respect to each floating-point input, in order
/// (an input it does not depend on gets zeros). What `tenjit grad FILE` prints.
pub fn grad_graph(graph: &Graph) -> Result<Graph, GradError> {
    let [out] = graph.outputs() else {
        return Err(error(format!("expected one output, the graph has {}", graph.outputs().len())));
    };
    let out = *out;
    let ty = graph.ty(out).clone();
    if ty.shape.rank() != 0 || !ty.dtype.is_float() {
        return Err(error(format!("the output must be a floating-point scalar, it is {ty}")));
    }
    let mut g = graph.clone();
    let wrt: Vec<NodeId> = g.inputs().iter().map(|(_, n)| *n).filter(|&n| g.ty(n).dtype.is_float()).collect();
    let seed = g.add(Op::Const { value: Scalar::Float(1.0), ty }, &[]).map_err(|e| error(e.to_string()))?;
    let grads = grad(&mut g, &[out], &[seed], &wrt)?;
    let mut outputs = vec![out];
    for (w, d) in wrt.iter().zip(grads) {
        let d = match d {
            Some(d) => d,
            None => {
                let ty = g.ty(*w).clone();
                g.add(Op::Const { value: Scalar::Float(0.0), ty }, &[]).map_err(|e| error(e.to_string()))?
            }
        };
        outputs.push(d);
    }
    g.set_outputs(outputs);
    g.remove_dead();
    Ok(g)
}
