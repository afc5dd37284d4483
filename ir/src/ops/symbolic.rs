//! The symbolic type rules: each op's result dims as expressions over its operands' dims.
//!
//! [`Op::infer`] checks an op at one instance of its sizes (a symbolic shape's sizes at the
//! graph's hints). [`infer_dims`] runs after it, on the expressions, and answers for every
//! binding of the symbols: where two dims must be equal (elementwise operands, a matmul's
//! contracted dims, an expand of a dim that is not 1, a reshape's element counts) it asks
//! [`SymExpr::equality`]: `Proven` types the node, `Disproven` is an error naming both dims,
//! and `NeedsGuard` records a [`Guard`] that a call must satisfy (checked by
//! [`crate::Graph::bind`]). A slice along a symbolic axis must stay inside the axis for every
//! size in the symbol's range. Convolutions and pools take a symbolic batch only; loops take
//! no symbolic operand yet, and say so.
//!
//! The result keeps the sizes [`Op::infer`] computed as its hints, and every expression must
//! evaluate to its hint: a symbolic attribute edited as plain sizes (its expressions stale) is
//! an error here rather than a silently specialized graph.

use super::{ConvRole, Op, OpError, OpErrorKind};
use crate::sym::{Bindings, Dim, Equality, SymExpr, Symbols};
use crate::types::{Shape, TensorType};
use std::fmt;

/// A condition a symbolic graph holds under: two dims equal at run time.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Guard {
    /// One side.
    pub lhs: SymExpr,
    /// The other.
    pub rhs: SymExpr,
}

impl fmt::Display for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} == {}", self.lhs, self.rhs)
    }
}

/// The symbols and hints a rule decides against, and the guards it adds.
pub(crate) struct SymEnv<'a> {
    /// The graph's symbols.
    pub symbols: &'a Symbols,
    /// Their sizes at the hints.
    pub hints: &'a Bindings,
    /// Guards added so far (the rule appends new ones, each once).
    pub guards: &'a mut Vec<Guard>,
}

/// Whether `op` carries a shape of its own that is symbolic.
pub(crate) fn has_symbolic_attr(op: &Op) -> bool {
    match op {
        Op::Input { ty, .. } | Op::Const { ty, .. } | Op::Iota { ty, .. } | Op::Rand { ty } => {
            ty.shape.is_symbolic()
        }
        Op::Size { .. } => true,
        Op::Reshape { shape } | Op::Expand { shape } => shape.is_symbolic(),
        Op::Slice { bounds, .. } => bounds.is_some(),
        Op::Loop(l) => l.body.graph().is_symbolic(),
        Op::Unary(_)
        | Op::Binary(_)
        | Op::Where
        | Op::Cast { .. }
        | Op::Reduce { .. }
        | Op::ArgReduce { .. }
        | Op::Permute { .. }
        | Op::Pad { .. }
        | Op::Concat { .. }
        | Op::Matmul
        | Op::Gather { .. }
        | Op::ScatterAdd { .. }
        | Op::Conv(_)
        | Op::Pool(_) => false,
    }
}

/// The symbolic result shape of `op` on `args`, given `out`, the result [`Op::infer`]
/// computed at the hints.
pub(crate) fn infer_dims(
    op: &Op,
    args: &[&TensorType],
    out: &TensorType,
    env: &mut SymEnv,
) -> Result<Shape, OpError> {
    let mut rule = Rule { op: op.name(), env };
    let dims = rule.dims(op, args, out)?;
    rule.check_hints(&dims, &out.shape)?;
    Shape::symbolic(dims, out.shape.dims())
        .map_err(|message| rule.err(OpErrorKind::Shape, format!("inconsistent symbolic result: {message}")))
}

struct Rule<'e, 'a> {
    op: &'static str,
    env: &'e mut SymEnv<'a>,
}

impl Rule<'_, '_> {
    fn err(&self, kind: OpErrorKind, message: String) -> OpError {
        OpError { op: self.op, kind, message }
    }

    fn expr(&self, d: &Dim) -> Result<SymExpr, OpError> {
        d.expr().ok_or_else(|| self.err(OpErrorKind::Size, format!("dimension {d} is too large")))
    }

    fn dim(&self, e: SymExpr) -> Result<Dim, OpError> {
        Dim::from_expr(e).map_err(|err| self.err(OpErrorKind::Shape, err.to_string()))
    }

    /// Requires `a == b` for every binding: proven, or guarded.
    fn equal(&mut self, a: &Dim, b: &Dim, what: &str) -> Result<(), OpError> {
        if a == b {
            return Ok(());
        }
        let (ea, eb) = (self.expr(a)?, self.expr(b)?);
        match ea.equality(&eb, self.env.symbols) {
            Equality::Proven => Ok(()),
            Equality::Disproven => {
                Err(self.err(OpErrorKind::Shape, format!("{what}: {a} and {b} are never equal")))
            }
            Equality::NeedsGuard(lhs, rhs) => {
                let guard = Guard { lhs, rhs };
                if !self.env.guards.contains(&guard) {
                    self.env.guards.push(guard);
                }
                Ok(())
            }
        }
    }

    fn equal_shapes(&mut self, a: &Shape, b: &Shape, what: &str) -> Result<(), OpError> {
        for (x, y) in a.sym_dims().iter().zip(b.sym_dims().iter()) {
            self.equal(x, y, what)?;
        }
        Ok(())
    }

    /// The least value of `d` over the symbols' ranges.
    fn min(&self, d: &Dim) -> Result<i128, OpError> {
        Ok(self.expr(d)?.min(self.env.symbols).unwrap_or(i128::MIN))
    }

    /// Requires `d >= 1` for every binding (an axis reduced by an op without identity).
    fn nonempty(&self, d: &Dim, what: &str) -> Result<(), OpError> {
        if self.min(d)? >= 1 {
            return Ok(());
        }
        Err(self.err(OpErrorKind::Shape, format!("{what}: axis of size {d} may be empty")))
    }

    /// Requires `small <= big` for every binding: equal, or bounded apart.
    fn at_most(&mut self, small: &Dim, big: &Dim, what: &str) -> Result<(), OpError> {
        if small == big {
            return Ok(());
        }
        let (s, b) = (self.expr(small)?, self.expr(big)?);
        let (max_s, min_b) = (s.max(self.env.symbols), b.min(self.env.symbols));
        if max_s.zip(min_b).is_some_and(|(x, y)| x <= y) {
            return Ok(());
        }
        self.equal(small, big, what)
    }

    fn product(&self, dims: &[Dim]) -> Result<SymExpr, OpError> {
        let mut p = SymExpr::from(1);
        for d in dims {
            p = p.mul(&self.expr(d)?).map_err(|e| self.err(OpErrorKind::Size, e.to_string()))?;
        }
        Ok(p)
    }

    fn sum(&self, a: &Dim, b: u64) -> Result<Dim, OpError> {
        let b = i64::try_from(b).ok().and_then(|b| SymExpr::constant(b).ok());
        let b = b.ok_or_else(|| self.err(OpErrorKind::Size, "a size overflows".into()))?;
        let s = self.expr(a)?.add(&b).map_err(|e| self.err(OpErrorKind::Size, e.to_string()))?;
        self.dim(s)
    }

    fn check_hints(&self, dims: &[Dim], out: &Shape) -> Result<(), OpError> {
        for (i, (d, &h)) in dims.iter().zip(out.dims()).enumerate() {
            if d.eval(self.env.hints) != Some(h as u64) {
                return Err(self.err(
                    OpErrorKind::Shape,
                    format!("dim {i} of the result is {d}, which is not its size {h} at the hints"),
                ));
            }
        }
        Ok(())
    }

    fn dims(&mut self, op: &Op, args: &[&TensorType], out: &TensorType) -> Result<Vec<Dim>, OpError> {
        let arg = |i: usize| args[i].shape.sym_dims();
        Ok(match op {
            Op::Input { ty, .. } | Op::Const { ty, .. } | Op::Iota { ty, .. } | Op::Rand { ty } => {
                ty.shape.sym_dims()
            }
            Op::Size { expr, ty } => {
                if expr.eval(self.env.hints).is_none() {
                    return Err(self.err(
                        OpErrorKind::Argument,
                        format!("size {expr} uses a symbol the graph does not declare, or is negative"),
                    ));
                }
                ty.shape.sym_dims()
            }
            Op::Unary(_) | Op::Cast { .. } => arg(0),
            Op::Binary(_) => {
                self.equal_shapes(&args[0].shape, &args[1].shape, "operands")?;
                arg(0)
            }
            Op::Where => {
                self.equal_shapes(&args[0].shape, &args[1].shape, "condition and value")?;
                self.equal_shapes(&args[1].shape, &args[2].shape, "values")?;
                arg(1)
            }
            Op::Reduce { op, axes } => {
                let x = arg(0);
                if op.identity().is_none() {
                    for &a in axes {
                        self.nonempty(&x[a], "reduced axis")?;
                    }
                }
                x.into_iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, d)| d).collect()
            }
            Op::ArgReduce { axis, .. } => {
                let mut x = arg(0);
                self.nonempty(&x[*axis], "reduced axis")?;
                x.remove(*axis);
                x
            }
            Op::Reshape { shape } => {
                let (from, to) = (self.product(&arg(0))?, self.product(&shape.sym_dims())?);
                let (from, to) = (self.dim(from)?, self.dim(to)?);
                self.equal(&from, &to, "element counts")?;
                shape.sym_dims()
            }
            Op::Permute { perm } => {
                let x = arg(0);
                perm.iter().map(|&p| x[p].clone()).collect()
            }
            Op::Expand { shape } => {
                let to = shape.sym_dims();
                for (a, b) in arg(0).iter().zip(&to) {
                    if a.as_const() != Some(1) {
                        self.equal(a, b, "expanded axis")?;
                    }
                }
                to
            }
            Op::Slice { step, bounds: Some(b), .. } => {
                let x = arg(0);
                for d in 0..x.len() {
                    let n = self.expr(&x[d])?;
                    let size = self.expr(&b.size[d])?;
                    // The last index read: start + (size - 1) * step; for an empty result, none.
                    let last = size
                        .sub(&SymExpr::from(1))
                        .and_then(|s| s.scale(step[d] as i64))
                        .and_then(|s| s.add(&b.start[d]))
                        .map_err(|e| self.err(OpErrorKind::Size, e.to_string()))?;
                    let inside = |e: &SymExpr| -> Option<bool> {
                        let below = n.sub(e).ok()?.sub(&SymExpr::from(1)).ok()?;
                        Some(e.min(self.env.symbols)? >= 0 && below.min(self.env.symbols)? >= 0)
                    };
                    let never_empty = size.min(self.env.symbols).is_some_and(|m| m >= 1);
                    if !(never_empty && inside(&b.start[d]) == Some(true) && inside(&last) == Some(true)) {
                        return Err(self.err(
                            OpErrorKind::Index,
                            format!(
                                "axis {d}: start {} step {} size {} may leave 0..{} (a slice of symbolic \
                                 bounds must stay inside its axis, and not be empty, for every size)",
                                b.start[d], step[d], b.size[d], x[d]
                            ),
                        ));
                    }
                }
                b.size.clone()
            }
            Op::Slice { start, step, size, bounds: None } => {
                let x = arg(0);
                for d in 0..x.len() {
                    if x[d].as_const().is_some() || size[d] == 0 {
                        continue;
                    }
                    let last = start[d] as i128 + (size[d] as i128 - 1) * step[d] as i128;
                    if start[d].max(last as isize) as i128 >= self.min(&x[d])? {
                        return Err(self.err(
                            OpErrorKind::Index,
                            format!(
                                "axis {d}: start {} step {} size {} may leave 0..{} (a slice of a \
                                 symbolic axis needs bounds that hold for every size)",
                                start[d], step[d], size[d], x[d]
                            ),
                        ));
                    }
                }
                size.iter().map(|&s| Dim::from(s as u64)).collect()
            }
            Op::Pad { lo, hi } => {
                let x = arg(0);
                let mut out = Vec::with_capacity(x.len());
                for (d, dim) in x.iter().enumerate() {
                    out.push(self.sum(&self.sum(dim, lo[d] as u64)?, hi[d] as u64)?);
                }
                out
            }
            Op::Concat { axis } => {
                let first = arg(0);
                let mut total = SymExpr::from(0);
                for a in args {
                    let dims = a.shape.sym_dims();
                    for d in 0..dims.len() {
                        if d != *axis {
                            self.equal(&first[d], &dims[d], "axes other than the joined one")?;
                        }
                    }
                    total = total
                        .add(&self.expr(&dims[*axis])?)
                        .map_err(|e| self.err(OpErrorKind::Size, e.to_string()))?;
                }
                let mut out = first;
                out[*axis] = self.dim(total)?;
                out
            }
            Op::Matmul => {
                let (a, b) = (arg(0), arg(1));
                let r = a.len();
                for d in 0..r - 2 {
                    self.equal(&a[d], &b[d], "batch dims")?;
                }
                self.equal(&a[r - 1], &b[r - 2], "contracted dims")?;
                let mut out = a;
                out[r - 1] = b[r - 1].clone();
                out
            }
            Op::Gather { axis } => {
                let (x, idx) = (arg(0), arg(1));
                for d in (0..x.len()).filter(|d| d != axis) {
                    self.at_most(&idx[d], &x[d], "index dims")?;
                }
                idx
            }
            Op::ScatterAdd { axis } => {
                let (base, idx) = (arg(0), arg(1));
                self.equal_shapes(&args[1].shape, &args[2].shape, "index and source")?;
                for d in (0..base.len()).filter(|d| d != axis) {
                    self.at_most(&idx[d], &base[d], "index dims")?;
                }
                base
            }
            Op::Conv(_) | Op::Pool(_) => {
                // The batch may be symbolic; every other size of a convolution or pool is
                // constant. Image operands share the batch; the result has it unless it is a
                // weight gradient (summed over the batch).
                let (images, batched): (&[usize], bool) = match op {
                    Op::Conv(c) => match c.role {
                        ConvRole::Forward | ConvRole::Input { .. } => (&[0], true),
                        ConvRole::Weight { .. } => (&[0, 1], false),
                    },
                    _ => (&[0, 1], true),
                };
                for (i, t) in args.iter().enumerate() {
                    let dims = t.shape.sym_dims();
                    let batch_dim = usize::from(images.contains(&i));
                    if let Some(d) = dims[batch_dim..].iter().find(|d| d.as_const().is_none()) {
                        return Err(self.err(
                            OpErrorKind::Shape,
                            format!(
                                "operand {t} has the symbolic size {d}: only the batch of {} may be symbolic",
                                self.op
                            ),
                        ));
                    }
                }
                let batch = arg(images[0])[0].clone();
                for &i in &images[1..] {
                    self.equal(&batch, &arg(i)[0], "batches")?;
                }
                let mut dims = out.shape.sym_dims();
                if batched {
                    dims[0] = batch;
                }
                dims
            }
            Op::Loop(l) => {
                // A symbolic body's sizes are expressions over this graph's symbols: each one
                // it declares must be one of them, at the same hint; its guards are this
                // graph's too; each operand's dims equal the body input's.
                let body = l.body.graph();
                for s in body.symbols().iter() {
                    let (ours, hint) = (self.env.symbols.get(&s.name), self.env.hints.get(&s.name));
                    if ours.is_none() || hint != body.hints().get(&s.name) {
                        return Err(self.err(
                            OpErrorKind::Argument,
                            format!(
                                "the body @{} has the size symbol {s}, which the graph holding the loop \
                                 does not declare at the same hint",
                                body.name()
                            ),
                        ));
                    }
                }
                for guard in body.guards() {
                    if !self.env.guards.contains(guard) {
                        self.env.guards.push(guard.clone());
                    }
                }
                for (i, a) in args.iter().enumerate() {
                    let what = format!("operand {i} and the body's input {i}");
                    self.equal_shapes(&a.shape, &l.body.input_type(i).shape, &what)?;
                }
                l.body.input_type(l.result).shape.sym_dims()
            }
        })
    }
}
