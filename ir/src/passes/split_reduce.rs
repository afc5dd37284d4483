//! `split-reduce`: a reduction of many elements into a few values becomes two reductions, so
//! that the first has enough outputs to spread over every core (a backend splits a kernel over
//! its output's outermost dimension).
//!
//! `reduce(x, axes)` with a small output and a large operand becomes
//! `reduce(reduce(x, axes \ {a}), {a})` for a reduced axis `a` of at least `min_parallel`
//! elements; a single long reduced axis is first reshaped into `[t, n / t]`. The combine ops
//! (sum, product, max, min) are associative, so the value is the same up to floating-point
//! rounding of a sum or product in a different order (the first stage's partial results are
//! rounded to the dtype, but for `f16` and `bf16`, whose two stages run in `f32`). Index
//! reductions (`argmax`) are left alone.
//!
//! A reduction with many outputs is parallel already, but when its first axis is reduced (a
//! column sum `x.sum(0)`), the backend's split over the output's outer dim gives each core a
//! slice of every row: short strided runs that the hardware prefetchers follow poorly. With a
//! long first axis it becomes `reduce(reduce(reshape(x, [t, n / t, ...]), {1, ...}), {0})`:
//! the first stage is split over `t` blocks of whole rows, contiguous in memory, and the second
//! adds `t` rows.
//!
//! On a symbolic graph the decisions read the sizes at the graph's hints, as everywhere else
//! (the reduction is large, or long in its first axis, at the hints), and the split holds for
//! every size: a split that reduces over axes of their own needs no size, and a long axis that
//! is symbolic, of length `n`, is cut into `t` blocks of `m = (n - 1) // t` and a remainder of
//! the last `n - t*m` elements (`1..=t`, never empty), two slices of `x` (views: they fuse into
//! the kernels that read them), combined by the reduction's own binary op:
//! `op(reduce(reduce(reshape(slice(x, 0, t*m), [t, m])), ...), reduce(slice(x, t*m, n - t*m)))`.
//! A slice of symbolic bounds must not be empty at any size, so the axis is cut only when its
//! range starts above `t` (then `m >= 1` too: no stage reduces an empty axis, whose `max` would
//! be undefined). A split reduction is correct at every size of its range, just slower than it
//! need be at sizes too small to pay for the second stage.
//!
//! Where the range starts too low (the default `2..` of a dim marked dynamic), the axis is of
//! one symbol, and the reduction is worth splitting at the hint, the symbol's range is first
//! raised to the least size from which the reduction is worth splitting and the axis is longer
//! than `t`, a range guard from below ([`Graph::narrow_symbol_below`]): `N:2..` becomes
//! `N:262144..` for the sum of a vector. Symmetrically, a reduction left whole at the hint
//! that would be split at larger sizes of its range (its operand's sizes of one symbol) lowers
//! the range to below the least of those sizes ([`Graph::narrow_symbol`]). So on a symbolic
//! graph the pass's decisions hold for every size of the range it leaves: sizes outside it
//! need a graph of their own, which the runtime compiles apart (one symbolic program per range,
//! [`SplitReduce::splits`] telling it which reductions a range's program must split).
//!
//! This is not part of the standard simplification pipeline: it changes rounding, and it only
//! pays on a parallel backend, which runs it after the standard passes.

use crate::graph::{Graph, NodeId};
use crate::ops::{BinaryOp, Dims, IDims, Op, ReduceOp, SliceBounds};
use crate::sym::{Dim, SymExpr};
use crate::types::{DType, Shape};
use std::sync::Arc;

/// The `split-reduce` pass; see the module docs.
pub struct SplitReduce {
    /// Reductions of fewer elements stay whole.
    pub min_elements: usize,
    /// A reduction with at least this many outputs is parallel already; the first stage of a
    /// split has at least this many.
    pub min_parallel: usize,
}

/// Blocks of rows a column reduction's first stage has (see the module docs): enough for the
/// cores of a large machine, few enough that the second stage (`t` rows) costs little.
const ROW_BLOCKS: usize = 16;
/// Column reductions are split only when each block has at least this many rows, so the
/// first stage's output (`ROW_BLOCKS` rows) is small beside its input.
const MIN_BLOCK_ROWS: usize = 64;

impl Default for SplitReduce {
    fn default() -> SplitReduce {
        SplitReduce { min_elements: 1 << 18, min_parallel: 64 }
    }
}

impl super::Pass for SplitReduce {
    fn name(&self) -> &'static str {
        "split-reduce"
    }

    fn run(&self, g: &mut Graph) -> bool {
        let Some(order) = g.live_order() else {
            return false;
        };
        let mut changed = false;
        for n in order {
            changed |= self.split(g, n);
        }
        changed
    }
}

/// How a reduction is split: at one of its axes, or with one axis cut into blocks first.
#[derive(Clone)]
enum Plan {
    /// `reduce(reduce(x, axes \ {a}), {a})`.
    At(usize),
    /// Axis `.0` cut into `.1` blocks, then split at the blocks; where the axis is symbolic and
    /// its range starts too low for the cut, the symbol `.2.0` first has its range raised to
    /// start at `.2.1` (see the module docs).
    Cut(usize, usize, Option<(String, u64)>),
}

impl SplitReduce {
    /// The positions, in [`Graph::nodes`] order, of the reductions of `g` the pass splits. The
    /// runtime compares them between a symbolic graph and its instance, whose splits may differ
    /// in form (a symbolic axis is cut with a remainder) but not in which reductions they split.
    pub fn splits(&self, g: &Graph) -> Vec<usize> {
        let nodes = g.nodes();
        (0..nodes.len()).filter(|&i| self.plan(g, nodes[i]).is_some()).collect()
    }

    /// Splits node `n` if it is a reduction worth splitting; on a symbolic graph, narrows the
    /// range where the split needs it, or where a reduction left whole would be split at larger
    /// sizes.
    fn split(&self, g: &mut Graph, n: NodeId) -> bool {
        let Op::Reduce { op, axes } = g.op(n).clone() else {
            return false;
        };
        let x = g.args(n)[0];
        match self.plan(g, n) {
            None => self.cap(g, n),
            Some(Plan::At(a)) => split_at(g, n, op, x, &axes, a),
            Some(Plan::Cut(a, t, floor)) => {
                let narrowed = match floor {
                    Some((name, lo)) => match g.narrow_symbol_below(&name, lo) {
                        Ok(()) => true,
                        Err(_) => return false,
                    },
                    None => false,
                };
                split_axis(g, n, op, x, &axes, a, t) || narrowed
            }
        }
    }

    /// How node `n` is split, if it is a reduction worth splitting at the hints.
    fn plan(&self, g: &Graph, n: NodeId) -> Option<Plan> {
        let Op::Reduce { axes, .. } = g.op(n) else {
            return None;
        };
        let x = g.args(n)[0];
        // Sizes of a symbolic graph are read at its hints (see the module docs).
        let dims = g.ty(x).shape.dims();
        let outputs = g.ty(n).shape.numel();
        // Whether axis `a` can be cut into `t` blocks: a constant axis when `t` divides it, a
        // symbolic one when it is longer than `t` at every size (blocks and a remainder).
        let cuts = |a: usize, t: usize| match symbolic_len(g, x, a) {
            None => dims[a].is_multiple_of(t),
            Some(len) => len.min(g.symbols()).is_some_and(|lo| lo > t as i128),
        };
        self.decide(dims, outputs, axes, &cuts).or_else(|| self.plan_narrowed(g, n, x, axes))
    }

    /// The split of a reduction over `axes` of an operand of `dims` into `outputs` values, if
    /// it is worth splitting, where `cuts(a, t)` says whether axis `a` can be cut into `t`
    /// blocks.
    fn decide(
        &self,
        dims: &[usize],
        outputs: usize,
        axes: &Dims,
        cuts: &dyn Fn(usize, usize) -> bool,
    ) -> Option<Plan> {
        if dims.iter().fold(1usize, |a, &d| a.saturating_mul(d)) < self.min_elements {
            return None;
        }
        if outputs >= self.min_parallel {
            // A column reduction: its long first axis becomes blocks of rows.
            let t = ROW_BLOCKS;
            return (axes.contains(&0) && dims[0] / t >= MIN_BLOCK_ROWS && cuts(0, t))
                .then_some(Plan::Cut(0, t, None));
        }
        // A reduced axis long enough to be the first stage's parallel dimension.
        let wide = axes.iter().copied().find(|&a| dims[a] >= self.min_parallel);
        match wide {
            Some(a) if axes.len() > 1 => Some(Plan::At(a)),
            _ => {
                // One long reduced axis: reshape it into [t, m], t a power of two.
                let &a = axes.iter().max_by_key(|&&a| dims[a])?;
                let len = dims[a];
                [1024usize, 512, 256, 128, 64]
                    .into_iter()
                    .find(|&t| t >= self.min_parallel && len / t >= 1024 && cuts(a, t))
                    .map(|t| Plan::Cut(a, t, None))
            }
        }
    }

    /// The cut of a symbolic axis, of one symbol, whose range starts too low for it: the
    /// symbol's range raised to the least size from which the reduction is worth splitting (and
    /// the axis longer than the blocks), when the hint is there.
    fn plan_narrowed(&self, g: &Graph, n: NodeId, x: NodeId, axes: &Dims) -> Option<Plan> {
        if !g.is_symbolic() {
            return None;
        }
        let one_symbol = |a: usize| symbolic_len(g, x, a).is_some_and(|len| len.symbols().len() == 1);
        let shape = &g.ty(x).shape;
        let Plan::Cut(a, t, _) =
            self.decide(shape.dims(), g.ty(n).shape.numel(), axes, &|a, _| one_symbol(a))?
        else {
            return None;
        };
        let len = symbolic_len(g, x, a)?;
        let name = len.symbols().into_iter().next()?;
        let (lo, hint) = (g.symbols().get(&name)?.lo, *g.hints().get(&name)?);
        let pays = |v: u64| {
            let at = at_size(g, &name, v);
            len.eval(&at).is_some_and(|l| l > t as u64) && self.pays_at(g, n, &at)
        };
        if !pays(hint) {
            return None;
        }
        let floor = least(lo, hint, &pays);
        let mut narrowed = g.symbols().clone();
        narrowed.narrow_below(&name, floor).ok()?;
        len.min(&narrowed).is_some_and(|m| m > t as i128).then_some(Plan::Cut(a, t, Some((name, floor))))
    }

    /// Whether the reduction `n` would be split at the sizes `at` (a symbolic axis cut with a
    /// remainder where it is longer than the blocks).
    fn pays_at(&self, g: &Graph, n: NodeId, at: &crate::sym::Bindings) -> bool {
        let Op::Reduce { axes, .. } = g.op(n) else {
            return false;
        };
        let x = g.args(n)[0];
        let eval = |shape: &Shape| -> Option<Vec<usize>> {
            shape.sym_dims().iter().map(|d| d.eval(at).map(|v| v as usize)).collect()
        };
        let (Some(dims), Some(out)) = (eval(&g.ty(x).shape), eval(&g.ty(n).shape)) else {
            return false;
        };
        let outputs = out.iter().fold(1usize, |a, &d| a.saturating_mul(d));
        let cuts = |a: usize, t: usize| match symbolic_len(g, x, a) {
            None => dims[a].is_multiple_of(t),
            Some(_) => dims[a] > t,
        };
        self.decide(&dims, outputs, axes, &cuts).is_some()
    }

    /// Lowers the greatest value of the symbol of a reduction left whole at the hints to just
    /// below the least size from which it would be split (when its operand's sizes are of one
    /// symbol), so that those sizes get a graph of their own, split. Whether it narrowed.
    fn cap(&self, g: &mut Graph, n: NodeId) -> bool {
        if !matches!(g.op(n), Op::Reduce { .. }) {
            return false;
        }
        let Some(dims) = g.ty(g.args(n)[0]).shape.sym_dims_ref() else {
            return false;
        };
        let names: std::collections::BTreeSet<String> =
            dims.iter().filter_map(|d| d.expr()).flat_map(|e| e.symbols()).collect();
        let mut names = names.into_iter();
        let (Some(name), None) = (names.next(), names.next()) else {
            return false;
        };
        let (Some(symbol), Some(&hint)) = (g.symbols().get(&name), g.hints().get(&name)) else {
            return false;
        };
        // Past this, sizes are out of reach of any tensor.
        let top = symbol.hi.unwrap_or(1 << 40);
        let pays = |v: u64| self.pays_at(g, n, &at_size(g, &name, v));
        if top <= hint || pays(hint) || !pays(top) {
            return false;
        }
        let first = least(hint + 1, top, &pays);
        g.narrow_symbol(&name, first - 1).is_ok()
    }
}

/// The hints of `g` with the symbol `name` at `v`.
fn at_size(g: &Graph, name: &str, v: u64) -> crate::sym::Bindings {
    let mut at = g.hints().clone();
    at.insert(name.to_string(), v);
    at
}

/// The least `v` in `lo..=hi` with `holds(v)`, for `holds` false then true as `v` grows and
/// true at `hi`.
fn least(mut lo: u64, mut hi: u64, holds: &dyn Fn(u64) -> bool) -> u64 {
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if holds(mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo
}

/// Splits reduction `n` of `x` over `axes` into `reduce(reduce(reshape(x), ...), {a})`, with
/// the reduced axis `a` reshaped into `[t, len / t]` and the `t` part reduced second; a
/// symbolic axis into blocks and a remainder ([`split_remainder`]).
fn split_axis(g: &mut Graph, n: NodeId, op: ReduceOp, x: NodeId, axes: &Dims, a: usize, t: usize) -> bool {
    if symbolic_len(g, x, a).is_some() {
        return split_remainder(g, n, op, x, axes, a, t).is_some();
    }
    let m = g.ty(x).shape.dims()[a] / t;
    let Some(reshaped) = reshape_blocks(g, x, a, t, Dim::from(m as u64)) else {
        return false;
    };
    split_at(g, n, op, reshaped, &block_axes(axes, a), a)
}

/// The length of axis `a` of `x` as an expression, when it is symbolic.
fn symbolic_len(g: &Graph, x: NodeId, a: usize) -> Option<SymExpr> {
    let dim = g.ty(x).shape.sym_dims_ref()?.get(a)?;
    dim.as_const().is_none().then(|| dim.expr()).flatten()
}

/// `x` with axis `a` reshaped into `[t, m]` (the other dims kept, expressions included).
fn reshape_blocks(g: &mut Graph, x: NodeId, a: usize, t: usize, m: Dim) -> Option<NodeId> {
    let shape = &g.ty(x).shape;
    let (mut dims, hints) = (shape.sym_dims(), shape.dims().to_vec());
    let m_hint = m.eval(g.hints())? as usize;
    dims.splice(a..=a, [Dim::from(t as u64), m]);
    let mut split: Vec<usize> = hints[..a].to_vec();
    split.extend([t, m_hint]);
    split.extend_from_slice(&hints[a + 1..]);
    let shape = Shape::symbolic(dims, &split).ok()?;
    g.add(Op::Reshape { shape }, &[x]).ok()
}

/// The reduced axes once axis `a` is split in two: axes after `a` shift by one, and `a` becomes
/// the pair `(a, a + 1)`.
fn block_axes(axes: &Dims, a: usize) -> Dims {
    let mut shifted: Dims = Dims::new();
    for &b in axes {
        match b.cmp(&a) {
            std::cmp::Ordering::Less => shifted.push(b),
            std::cmp::Ordering::Equal => shifted.extend([a, a + 1]),
            std::cmp::Ordering::Greater => shifted.push(b + 1),
        }
    }
    shifted
}

/// Splits reduction `n` of `x` over `axes`, whose axis `a` has the symbolic length `len`
/// (longer than `t` at every size), into `t` blocks of `m = (len - 1) // t` elements and a
/// remainder of `len - t*m` (`1..=t`):
/// `combine(reduce(reduce(reshape(slice(x, 0, t*m), [t, m]), ...), {a}), reduce(slice(x, t*m, rest)))`,
/// where `combine` is the reduction's binary op (`add` for a sum). A sum or product of a
/// 16-bit float runs in `f32` and rounds once at the end, as [`split_at`] does. `None` (the
/// graph left as it was, but for dead nodes) when an op does not type.
fn split_remainder(
    g: &mut Graph,
    n: NodeId,
    op: ReduceOp,
    x: NodeId,
    axes: &Dims,
    a: usize,
    t: usize,
) -> Option<()> {
    let len = symbolic_len(g, x, a)?;
    let one = SymExpr::from(1);
    let m = len.sub(&one).ok()?.floor_div(t as u64).ok()?;
    let head = m.scale(t as i64).ok()?;
    let rest = len.sub(&one).ok()?.rem(t as u64).ok()?.add(&one).ok()?;
    let dtype = g.ty(x).dtype;
    let widen = dtype.is_half() && matches!(op, ReduceOp::Sum | ReduceOp::Prod);
    let x = if widen { g.add(Op::Cast { dtype: DType::F32 }, &[x]).ok()? } else { x };
    let blocks = slice_axis(g, x, a, &SymExpr::default(), &head)?;
    let blocks = reshape_blocks(g, blocks, a, t, Dim::from_expr(m).ok()?)?;
    let split = block_axes(axes, a);
    let inner: Dims = split.iter().copied().filter(|&b| b != a).collect();
    let first = g.add(Op::Reduce { op, axes: inner }, &[blocks]).ok()?;
    let pos = a - split.iter().filter(|&&b| b < a).count();
    let second = g.add(Op::Reduce { op, axes: Dims::from_slice(&[pos]) }, &[first]).ok()?;
    let tail = slice_axis(g, x, a, &head, &rest)?;
    let tail = g.add(Op::Reduce { op, axes: axes.clone() }, &[tail]).ok()?;
    let combine = Op::Binary(combine_op(op));
    if widen {
        let total = g.add(combine, &[second, tail]).ok()?;
        return g.set_op(n, Op::Cast { dtype }, &[total]).ok();
    }
    g.set_op(n, combine, &[second, tail]).ok()
}

/// The elements `start..start + size` of axis `a` of `x` (the other axes whole).
fn slice_axis(g: &mut Graph, x: NodeId, a: usize, start: &SymExpr, size: &SymExpr) -> Option<NodeId> {
    let shape = &g.ty(x).shape;
    let rank = shape.rank();
    let mut starts = vec![SymExpr::default(); rank];
    let mut sizes = shape.sym_dims();
    starts[a] = start.clone();
    sizes[a] = Dim::from_expr(size.clone()).ok()?;
    let hints = g.hints();
    let start: IDims = starts.iter().map(|e| e.eval_i64(hints).map(|v| v as isize)).collect::<Option<_>>()?;
    let size: Dims = sizes.iter().map(|d| d.eval(hints).map(|v| v as usize)).collect::<Option<_>>()?;
    let step: IDims = std::iter::repeat_n(1, rank).collect();
    let bounds = Some(Arc::new(SliceBounds { start: starts, size: sizes }));
    g.add(Op::Slice { start, step, size, bounds }, &[x]).ok()
}

/// The binary op that combines two partial results of a reduction.
fn combine_op(op: ReduceOp) -> BinaryOp {
    match op {
        ReduceOp::Sum => BinaryOp::Add,
        ReduceOp::Prod => BinaryOp::Mul,
        ReduceOp::Max => BinaryOp::Maximum,
        ReduceOp::Min => BinaryOp::Minimum,
    }
}

/// Splits reduction `n` of `x` over `axes` into `reduce(reduce(x, axes \ {a}), {a})`. A sum
/// or product of a 16-bit float runs both stages in `f32` and rounds once at the end,
/// `cast(reduce(reduce(cast(x, f32))))`, so its partial results are not rounded to 16 bits.
fn split_at(g: &mut Graph, n: NodeId, op: ReduceOp, x: NodeId, axes: &Dims, a: usize) -> bool {
    let dtype = g.ty(x).dtype;
    let widen = dtype.is_half() && matches!(op, ReduceOp::Sum | ReduceOp::Prod);
    let x = if widen {
        let Ok(wide) = g.add(Op::Cast { dtype: DType::F32 }, &[x]) else {
            return false;
        };
        wide
    } else {
        x
    };
    let inner: Dims = axes.iter().copied().filter(|&b| b != a).collect();
    let Ok(first) = g.add(Op::Reduce { op, axes: inner }, &[x]) else {
        return false;
    };
    // Where axis `a` sits in the first stage's result.
    let pos = a - axes.iter().filter(|&&b| b < a).count();
    let second = Op::Reduce { op, axes: Dims::from_slice(&[pos]) };
    if widen {
        let Ok(total) = g.add(second, &[first]) else {
            return false;
        };
        return g.set_op(n, Op::Cast { dtype }, &[total]).is_ok();
    }
    g.set_op(n, second, &[first]).is_ok()
}
