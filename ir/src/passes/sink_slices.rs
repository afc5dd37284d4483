//! Sinking slices toward the inputs, so that only the elements a slice keeps are computed.
//!
//! `model(x)[:, -1]` asks for one row of a computation over all rows. When the sliced value
//! has no other use, the slice moves below the op that produced it — `slice(f(a, b))` becomes
//! `f(slice a, slice b)` — and keeps moving until it meets a value something else needs in
//! full. In a transformer's generation step the last block's attention output, its MLP and
//! the vocabulary head then run on one row instead of the whole context; the queries of that
//! block are sliced too, while its keys and values stay whole (the attention of the last row
//! reads them all).
//!
//! | the sliced value | becomes | why every kept element is the same |
//! |---|---|---|
//! | `unary(a)`, `cast(a)` | `unary(slice a)` | elementwise: element `i` depends on `a[i]` only |
//! | `binary(a, b)`, `where(c, a, b)` | the op of the operands' slices | elementwise, equal shapes |
//! | `slice(a)` | one composed slice of `a` | index composition |
//! | `permute(a)` | `permute(slice a)` | the slice of result axis `i` applies to axis `perm[i]` |
//! | `expand(a)` | `expand(slice a)` | an expanded axis keeps its one element |
//! | `reshape(a)` | `reshape(slice a)` | when every sliced axis is also an axis of `a` at the same place in row-major order (below) |
//! | `reduce(a)`, `argmax/argmin(a)` | the reduction of `a` sliced on the kept axes | each output element combines the same elements in the same order |
//! | `matmul(a, b)` | `matmul` of `a` sliced on the batch and row axes, `b` on the batch and column axes | each output element is the same dot product |
//!
//! A reshape's result axis `d` is also `a`'s axis `e` when their sizes are equal and so are
//! the products of the sizes before them: the flat position of an element then splits into
//! the same (before, along, after) parts in both shapes. A reshape sinks when every axis the
//! slice does not keep whole is such an axis; the others are whole on both sides.
//!
//! Every rewrite computes each kept element by the same arithmetic on the same operands as
//! before, so the interpreter's results are bit for bit unchanged (the pass-preservation
//! property test checks it on random graphs). A slice stays where it is when its operand has
//! other uses (computing the value once in full is what those uses need anyway), is a graph
//! output, keeps no element, or comes from any other op (`pad`, `concat`, `gather`, `iota`,
//! `rand`, convolutions, loops, ...). Slices a rewrite makes of one operand with the same bounds are
//! one node, so two paths that meet again at a shared value can keep sinking through it.

use crate::graph::{Graph, NodeId};
use crate::ops::{Dims, IDims, Op, SliceBounds};
use crate::sym::{Dim, SymExpr};
use crate::types::{Shape, TensorType};
use smallvec::SmallVec;
use std::sync::Arc;

/// The `sink-slices` pass (see the [module](self) docs).
pub struct SinkSlices;

impl super::Pass for SinkSlices {
    fn name(&self) -> &'static str {
        "sink-slices"
    }

    fn run(&self, g: &mut Graph) -> bool {
        // Dead users would keep a value from looking single-use.
        let mut changed = g.remove_dead() > 0;
        let Some(order) = g.topo_order() else {
            return changed;
        };
        let mut work: Vec<NodeId> =
            order.into_iter().filter(|&n| matches!(g.op(n), Op::Slice { .. })).collect();
        // Outermost slices first: each rewrite pushes the slices it makes.
        work.reverse();
        while let Some(s) = work.pop() {
            if let Some(made) = sink(g, s) {
                changed = true;
                work.extend(made);
            }
        }
        g.remove_dead();
        changed
    }
}

/// The bounds of a slice: start, step and size per axis, the start and size as expressions of
/// the graph's symbols (constants in a concrete graph).
#[derive(Clone, Debug, PartialEq)]
struct Bounds {
    start: Vec<SymExpr>,
    step: IDims,
    size: Vec<SymExpr>,
}

/// One axis of bounds: start, step, size.
type Axis = (SymExpr, isize, SymExpr);

fn c(v: i64) -> SymExpr {
    SymExpr::constant(v).unwrap_or_default()
}

impl Bounds {
    /// The bounds of slice op `op`, `None` for another op.
    fn of(op: &Op) -> Option<Bounds> {
        let Op::Slice { start, step, size, bounds } = op else { return None };
        Some(match bounds {
            Some(b) => Bounds {
                start: b.start.clone(),
                step: step.clone(),
                size: b.size.iter().map(|d| d.expr()).collect::<Option<_>>()?,
            },
            None => Bounds {
                start: start.iter().map(|&v| c(v as i64)).collect(),
                step: step.clone(),
                size: size.iter().map(|&v| c(v as i64)).collect(),
            },
        })
    }

    /// The bounds that keep all of an axis of size `n`.
    fn whole(n: &SymExpr) -> Axis {
        (SymExpr::default(), 1, n.clone())
    }

    /// Whether axis `d` keeps all `n` elements in order (for every size).
    fn keeps_whole(&self, d: usize, n: &SymExpr) -> bool {
        self.size[d] == *n
            && (n.as_const().is_some_and(|v| v <= 1)
                || (self.start[d].as_const() == Some(0) && self.step[d] == 1))
    }

    /// The bounds of axis `d`.
    fn axis(&self, d: usize) -> Axis {
        (self.start[d].clone(), self.step[d], self.size[d].clone())
    }

    /// Bounds built axis by axis.
    fn from_axes(axes: impl IntoIterator<Item = Axis>) -> Bounds {
        let mut b = Bounds { start: Vec::new(), step: IDims::new(), size: Vec::new() };
        for (start, step, size) in axes {
            b.start.push(start);
            b.step.push(step);
            b.size.push(size);
        }
        b
    }

    /// The slice op of these bounds in `g`: its starts and sizes at the graph's hints, with
    /// their expressions where one is not constant.
    fn op(&self, g: &Graph) -> Option<Op> {
        let hints = g.hints();
        let start =
            self.start.iter().map(|e| e.eval_i64(hints).map(|v| v as isize)).collect::<Option<IDims>>()?;
        let size = self.size.iter().map(|e| e.eval(hints).map(|v| v as usize)).collect::<Option<Dims>>()?;
        let symbolic = self.start.iter().chain(&self.size).any(|e| !e.is_const());
        let bounds = if symbolic {
            let size =
                self.size.iter().map(|e| Dim::from_expr(e.clone()).ok()).collect::<Option<Vec<_>>>()?;
            Some(Arc::new(SliceBounds { start: self.start.clone(), size }))
        } else {
            None
        };
        Some(Op::Slice { start, step: self.step.clone(), size, bounds })
    }
}

/// The dims of `a` as expressions.
fn dims(g: &Graph, a: NodeId) -> Vec<SymExpr> {
    let shape = &g.ty(a).shape;
    match shape.sym_dims_ref() {
        Some(dims) => dims.iter().map(|d| d.expr().unwrap_or_default()).collect(),
        None => shape.dims().iter().map(|&d| c(d as i64)).collect(),
    }
}

/// The product of `dims`, `None` on an overflow.
fn product(dims: &[SymExpr]) -> Option<SymExpr> {
    dims.iter().try_fold(c(1), |acc, d| acc.mul(d).ok())
}

/// Whether adding `op` on `args` types it, without a new guard.
fn types(g: &Graph, op: &Op, args: &[NodeId]) -> Option<TensorType> {
    let (ty, guards) = g.infer_with_guards(op, args).ok()?;
    (guards == g.guards().len()).then_some(ty)
}

/// Sinks slice `s` one op down, if it can: rewrites `s` in place into the op that produced
/// its operand, applied to slices of that op's operands, and returns those slices (to sink
/// further). `None` when it stays.
fn sink(g: &mut Graph, s: NodeId) -> Option<Vec<NodeId>> {
    if !g.contains(s) {
        return None;
    }
    let bounds = Bounds::of(g.op(s))?;
    let x = g.args(s)[0];
    if bounds.size.iter().any(|n| n.as_const() == Some(0)) || g.users(x) != [s] || g.outputs().contains(&x) {
        return None;
    }
    let xdims = dims(g, x);
    let args = g.args(x);
    // The new op of `s` and, per operand, the bounds to slice it by (`None`: use it whole).
    let (op, per_arg): (Op, Vec<Option<Bounds>>) = match g.op(x).clone() {
        Op::Unary(_) | Op::Binary(_) | Op::Where | Op::Cast { .. } => {
            (g.op(x).clone(), args.iter().map(|_| Some(bounds.clone())).collect())
        }
        inner @ Op::Slice { .. } => {
            let inner = Bounds::of(&inner)?;
            let composed = Bounds::from_axes(
                (0..xdims.len())
                    .map(|d| {
                        let (s2, t2, n) = bounds.axis(d);
                        let start = inner.start[d].add(&s2.scale(inner.step[d] as i64).ok()?).ok()?;
                        Some((start, t2.checked_mul(inner.step[d])?, n))
                    })
                    .collect::<Option<Vec<_>>>()?,
            );
            let a = args[0];
            let op = composed.op(g)?;
            if types(g, &op, &[a])? != *g.ty(s) {
                return None;
            }
            g.set_op(s, op, &[a]).ok()?;
            g.remove(x);
            return Some(vec![s]);
        }
        Op::Permute { perm } => {
            let mut axes = vec![Bounds::whole(&c(0)); perm.len()];
            for (i, &p) in perm.iter().enumerate() {
                axes[p] = bounds.axis(i);
            }
            (Op::Permute { perm }, vec![Some(Bounds::from_axes(axes))])
        }
        Op::Expand { .. } => {
            let a = dims(g, args[0]);
            let mut axes = Vec::with_capacity(a.len());
            for d in 0..a.len() {
                axes.push(if a[d] == xdims[d] {
                    bounds.axis(d)
                } else if a[d].as_const() == Some(1) {
                    Bounds::whole(&c(1))
                } else {
                    // Equal only under a guard: left alone.
                    return None;
                });
            }
            let shape = shape_of(g, &bounds.size)?;
            (Op::Expand { shape }, vec![Some(Bounds::from_axes(axes))])
        }
        Op::Reshape { .. } => {
            let a = dims(g, args[0]);
            let mut axes: Vec<Axis> = a.iter().map(Bounds::whole).collect();
            for d in 0..xdims.len() {
                if bounds.keeps_whole(d, &xdims[d]) {
                    continue;
                }
                let before = product(&xdims[..d])?;
                let e =
                    (0..a.len()).find(|&e| a[e] == xdims[d] && product(&a[..e]).as_ref() == Some(&before))?;
                axes[e] = bounds.axis(d);
            }
            let shape = shape_of(g, &bounds.size)?;
            (Op::Reshape { shape }, vec![Some(Bounds::from_axes(axes))])
        }
        Op::Reduce { op, axes } => {
            let kept = kept_axes(&dims(g, args[0]), &axes, &bounds);
            (Op::Reduce { op, axes }, vec![Some(kept)])
        }
        Op::ArgReduce { op, axis } => {
            let kept = kept_axes(&dims(g, args[0]), &[axis], &bounds);
            (Op::ArgReduce { op, axis }, vec![Some(kept)])
        }
        Op::Matmul => {
            let (a, b) = (dims(g, args[0]), dims(g, args[1]));
            let r = xdims.len();
            let batch = (0..r - 2).map(|d| bounds.axis(d));
            let ba = Bounds::from_axes(batch.clone().chain([bounds.axis(r - 2), Bounds::whole(&a[r - 1])]));
            let bb = Bounds::from_axes(batch.chain([Bounds::whole(&b[r - 2]), bounds.axis(r - 1)]));
            (Op::Matmul, vec![Some(ba), Some(bb)])
        }
        Op::Input { .. }
        | Op::Const { .. }
        | Op::Size { .. }
        | Op::Iota { .. }
        | Op::Rand { .. }
        | Op::Pad { .. }
        | Op::Concat { .. }
        | Op::Gather { .. }
        | Op::ScatterAdd { .. }
        | Op::Conv(_)
        | Op::Pool(_)
        | Op::Loop(_) => return None,
    };
    // Check everything before changing the graph: each operand's slice and the new op's type.
    let mut new_args: SmallVec<[NodeId; 3]> = SmallVec::new();
    let mut to_make: Vec<(usize, Op)> = Vec::new();
    for (i, (&a, b)) in args.iter().zip(&per_arg).enumerate() {
        let adims = dims(g, a);
        match b {
            Some(b) if !(0..adims.len()).all(|d| b.keeps_whole(d, &adims[d])) => {
                let op = b.op(g)?;
                types(g, &op, &[a])?;
                to_make.push((i, op));
            }
            Some(_) | None => {}
        }
        new_args.push(a);
    }
    let mut made = Vec::new();
    for (i, op) in to_make {
        let a = new_args[i];
        // One node per slice of one operand, so shared values keep sinking.
        let existing = g.users(a).into_iter().find(|&u| g.op(u) == &op && g.args(u).as_slice() == [a]);
        // A slice met again is looked at again: its operand may have just lost its last
        // other use.
        let sl = match existing {
            Some(u) => u,
            None => g.add_at(op, &[a], g.loc(s).map(str::to_string)).ok()?,
        };
        made.push(sl);
        new_args[i] = sl;
    }
    // The new op must give `s` its type again, without a new guard; else nothing changes but
    // the unused slices, which the final dead-node sweep removes.
    if types(g, &op, &new_args).as_ref() != Some(g.ty(s)) || g.set_op(s, op, &new_args).is_err() {
        return Some(Vec::new());
    }
    // `x` has no use left: removing it now lets its operands' slices see a single use.
    g.remove(x);
    Some(made)
}

/// The shape of dims `dims` in `g` (symbolic where one is not constant).
fn shape_of(g: &Graph, dims: &[SymExpr]) -> Option<Shape> {
    let hints = g.hints();
    let sizes = dims.iter().map(|e| e.eval(hints).map(|v| v as usize)).collect::<Option<Vec<_>>>()?;
    if dims.iter().all(|e| e.is_const()) {
        return Some(Shape::new(&sizes));
    }
    let dims = dims.iter().map(|e| Dim::from_expr(e.clone()).ok()).collect::<Option<Vec<_>>>()?;
    Shape::symbolic(dims, &sizes).ok()
}

/// For a reduction of an operand of dims `a` over `axes` (sorted), sliced by `out` on its
/// result: the same bounds on the kept axes, the reduced ones whole.
fn kept_axes(a: &[SymExpr], axes: &[usize], out: &Bounds) -> Bounds {
    let mut o = 0;
    Bounds::from_axes((0..a.len()).map(|d| {
        if axes.contains(&d) {
            Bounds::whole(&a[d])
        } else {
            o += 1;
            out.axis(o - 1)
        }
    }))
}
