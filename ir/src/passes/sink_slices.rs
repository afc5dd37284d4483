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
use crate::ops::{Dims, IDims, Op};
use smallvec::SmallVec;

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

/// The bounds of a slice: start, step and size per axis.
#[derive(Clone, Debug, PartialEq)]
struct Bounds {
    start: IDims,
    step: IDims,
    size: Dims,
}

impl Bounds {
    /// The bounds that keep all of an axis of size `n`.
    fn whole(n: usize) -> (isize, isize, usize) {
        (0, 1, n)
    }

    /// Whether axis `d` keeps all `n` elements in order.
    fn keeps_whole(&self, d: usize, n: usize) -> bool {
        self.size[d] == n && (n <= 1 || (self.start[d] == 0 && self.step[d] == 1))
    }

    /// The bounds of axis `d`.
    fn axis(&self, d: usize) -> (isize, isize, usize) {
        (self.start[d], self.step[d], self.size[d])
    }

    /// Bounds built axis by axis.
    fn from_axes(axes: impl IntoIterator<Item = (isize, isize, usize)>) -> Bounds {
        let mut b = Bounds { start: IDims::new(), step: IDims::new(), size: Dims::new() };
        for (start, step, size) in axes {
            b.start.push(start);
            b.step.push(step);
            b.size.push(size);
        }
        b
    }
}

/// Sinks slice `s` one op down, if it can: rewrites `s` in place into the op that produced
/// its operand, applied to slices of that op's operands, and returns those slices (to sink
/// further). `None` when it stays.
fn sink(g: &mut Graph, s: NodeId) -> Option<Vec<NodeId>> {
    if !g.contains(s) {
        return None;
    }
    let Op::Slice { start, step, size, bounds: None } = g.op(s).clone() else {
        return None;
    };
    let bounds = Bounds { start, step, size };
    let x = g.args(s)[0];
    if bounds.size.contains(&0) || g.users(x) != [s] || g.outputs().contains(&x) {
        return None;
    }
    // The bounds logic reads sizes: symbolic operands stay where they are.
    if g.ty(x).shape.is_symbolic() || g.args(x).iter().any(|&a| g.ty(a).shape.is_symbolic()) {
        return None;
    }
    let xdims: Dims = g.ty(x).shape.0.clone();
    let args = g.args(x);
    let dims = |g: &Graph, a: NodeId| -> Dims { g.ty(a).shape.0.clone() };
    // The new op of `s` and, per operand, the bounds to slice it by (`None`: use it whole).
    let (op, per_arg): (Op, Vec<Option<Bounds>>) = match g.op(x).clone() {
        Op::Unary(_) | Op::Binary(_) | Op::Where | Op::Cast { .. } => {
            (g.op(x).clone(), args.iter().map(|_| Some(bounds.clone())).collect())
        }
        Op::Slice { start, step, size, bounds: None } => {
            let inner = Bounds { start, step, size };
            let composed = Bounds::from_axes(
                (0..xdims.len())
                    .map(|d| {
                        let (s2, t2, n) = bounds.axis(d);
                        let start = inner.start[d].checked_add(s2.checked_mul(inner.step[d])?)?;
                        Some((start, t2.checked_mul(inner.step[d])?, n))
                    })
                    .collect::<Option<Vec<_>>>()?,
            );
            let a = args[0];
            let op = slice_op(&composed);
            op.infer(&[g.ty(a)]).ok()?;
            g.set_op(s, op, &[a]).ok()?;
            g.remove(x);
            return Some(vec![s]);
        }
        Op::Permute { perm } => {
            let mut axes = vec![Bounds::whole(0); perm.len()];
            for (i, &p) in perm.iter().enumerate() {
                axes[p] = bounds.axis(i);
            }
            (Op::Permute { perm }, vec![Some(Bounds::from_axes(axes))])
        }
        Op::Expand { .. } => {
            let a = dims(g, args[0]);
            let axes = (0..a.len()).map(|d| if a[d] == xdims[d] { bounds.axis(d) } else { Bounds::whole(1) });
            (
                Op::Expand { shape: crate::types::Shape::from(bounds.size.clone()) },
                vec![Some(Bounds::from_axes(axes))],
            )
        }
        Op::Reshape { .. } => {
            let a = dims(g, args[0]);
            let mut axes: Vec<_> = a.iter().map(|&n| Bounds::whole(n)).collect();
            for d in 0..xdims.len() {
                if bounds.keeps_whole(d, xdims[d]) {
                    continue;
                }
                let before: usize = xdims[..d].iter().product();
                let e =
                    (0..a.len()).find(|&e| a[e] == xdims[d] && a[..e].iter().product::<usize>() == before)?;
                axes[e] = bounds.axis(d);
            }
            (
                Op::Reshape { shape: crate::types::Shape::from(bounds.size.clone()) },
                vec![Some(Bounds::from_axes(axes))],
            )
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
            let ba = Bounds::from_axes(batch.clone().chain([bounds.axis(r - 2), Bounds::whole(a[r - 1])]));
            let bb = Bounds::from_axes(batch.chain([Bounds::whole(b[r - 2]), bounds.axis(r - 1)]));
            (Op::Matmul, vec![Some(ba), Some(bb)])
        }
        // Symbolic bounds do not compose here.
        Op::Slice { bounds: Some(_), .. }
        | Op::Input { .. }
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
            Some(b) if !(0..adims.len()).all(|d| b.keeps_whole(d, adims[d])) => {
                let op = slice_op(b);
                op.infer(&[g.ty(a)]).ok()?;
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
    if g.set_op(s, op, &new_args).is_err() {
        // The type rule refused: nothing is left half done but the unused slices, which the
        // final dead-node sweep removes.
        return Some(Vec::new());
    }
    // `x` has no use left: removing it now lets its operands' slices see a single use.
    g.remove(x);
    Some(made)
}

/// The slice op of `b`.
fn slice_op(b: &Bounds) -> Op {
    Op::Slice { start: b.start.clone(), step: b.step.clone(), size: b.size.clone(), bounds: None }
}

/// For a reduction of an operand of dims `a` over `axes` (sorted), sliced by `out` on its
/// result: the same bounds on the kept axes, the reduced ones whole.
fn kept_axes(a: &[usize], axes: &[usize], out: &Bounds) -> Bounds {
    let mut o = 0;
    Bounds::from_axes((0..a.len()).map(|d| {
        if axes.contains(&d) {
            Bounds::whole(a[d])
        } else {
            o += 1;
            out.axis(o - 1)
        }
    }))
}
