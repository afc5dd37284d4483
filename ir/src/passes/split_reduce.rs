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
//! This is not part of the standard simplification pipeline: it changes rounding, and it only
//! pays on a parallel backend, which runs it after the standard passes.

use crate::graph::{Graph, NodeId};
use crate::ops::{Dims, Op, ReduceOp};
use crate::types::{DType, Shape};

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

impl SplitReduce {
    /// Splits node `n` if it is a reduction worth splitting.
    fn split(&self, g: &mut Graph, n: NodeId) -> bool {
        let Op::Reduce { op, axes } = g.op(n).clone() else {
            return false;
        };
        let x = g.args(n)[0];
        let shape = g.ty(x).shape.clone();
        // The split reads sizes: a reduction over symbolic sizes stays whole.
        if shape.is_symbolic() {
            return false;
        }
        let outputs = g.ty(n).shape.numel();
        if shape.numel() < self.min_elements {
            return false;
        }
        let dims = shape.dims();
        if outputs >= self.min_parallel {
            // A column reduction: its long first axis becomes blocks of rows.
            let t = ROW_BLOCKS;
            if axes.contains(&0) && dims[0].is_multiple_of(t) && dims[0] / t >= MIN_BLOCK_ROWS {
                return split_axis(g, n, op, x, &axes, 0, t);
            }
            return false;
        }
        // A reduced axis long enough to be the first stage's parallel dimension.
        let wide = axes.iter().copied().find(|&a| dims[a] >= self.min_parallel);
        match wide {
            Some(a) if axes.len() > 1 => split_at(g, n, op, x, &axes, a),
            _ => {
                // One long reduced axis: reshape it into [t, m], t a power of two.
                let Some(&a) = axes.iter().max_by_key(|&&a| dims[a]) else {
                    return false;
                };
                let len = dims[a];
                let Some(t) = [1024usize, 512, 256, 128, 64]
                    .into_iter()
                    .find(|&t| t >= self.min_parallel && len.is_multiple_of(t) && len / t >= 1024)
                else {
                    return false;
                };
                split_axis(g, n, op, x, &axes, a, t)
            }
        }
    }
}

/// Splits reduction `n` of `x` over `axes` into `reduce(reduce(reshape(x), ...), {a})`, with
/// the reduced axis `a` reshaped into `[t, len / t]` and the `t` part reduced second.
fn split_axis(g: &mut Graph, n: NodeId, op: ReduceOp, x: NodeId, axes: &Dims, a: usize, t: usize) -> bool {
    let dims = g.ty(x).shape.dims().to_vec();
    let mut split: Vec<usize> = dims[..a].to_vec();
    split.extend([t, dims[a] / t]);
    split.extend_from_slice(&dims[a + 1..]);
    let Ok(reshaped) = g.add(Op::Reshape { shape: Shape::from(split) }, &[x]) else {
        return false;
    };
    // Axes after `a` shift by one; `a` becomes the pair (a, a + 1).
    let mut shifted: Dims = Dims::new();
    for &b in axes {
        match b.cmp(&a) {
            std::cmp::Ordering::Less => shifted.push(b),
            std::cmp::Ordering::Equal => shifted.extend([a, a + 1]),
            std::cmp::Ordering::Greater => shifted.push(b + 1),
        }
    }
    split_at(g, n, op, reshaped, &shifted, a)
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
