//! `split-reduce`: a reduction of many elements into a few values becomes two reductions, so
//! that the first has enough outputs to spread over every core (a backend splits a kernel over
//! its output's outermost dimension).
//!
//! `reduce(x, axes)` with a small output and a large operand becomes
//! `reduce(reduce(x, axes \ {a}), {a})` for a reduced axis `a` of at least `min_parallel`
//! elements; a single long reduced axis is first reshaped into `[t, n / t]`. The combine ops
//! (sum, product, max, min) are associative, so the value is the same up to floating-point
//! rounding of a sum or product in a different order (the first stage's partial results are
//! rounded to the dtype). Index reductions (`argmax`) are left alone.
//!
//! This is not part of the standard simplification pipeline: it changes rounding, and it only
//! pays on a parallel backend, which runs it after the standard passes.

use crate::graph::{Graph, NodeId};
use crate::ops::{Dims, Op};
use crate::types::Shape;

/// The `split-reduce` pass; see the module docs.
pub struct SplitReduce {
    /// Reductions of fewer elements stay whole.
    pub min_elements: usize,
    /// A reduction with at least this many outputs is parallel already; the first stage of a
    /// split has at least this many.
    pub min_parallel: usize,
}

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
        let outputs = g.ty(n).shape.numel();
        if outputs >= self.min_parallel || shape.numel() < self.min_elements {
            return false;
        }
        let dims = shape.dims();
        // A reduced axis long enough to be the first stage's parallel dimension.
        let wide = axes.iter().copied().find(|&a| dims[a] >= self.min_parallel);
        let (x, axes, a) = match wide {
            Some(a) if axes.len() > 1 => (x, axes, a),
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
                let mut split: Vec<usize> = dims[..a].to_vec();
                split.extend([t, len / t]);
                split.extend_from_slice(&dims[a + 1..]);
                let Ok(reshaped) = g.add(Op::Reshape { shape: Shape::from(split) }, &[x]) else {
                    return false;
                };
                // Axes after `a` shift by one; `a` becomes the pair (a, a + 1).
                let mut shifted: Dims = Dims::new();
                for &b in &axes {
                    match b.cmp(&a) {
                        std::cmp::Ordering::Less => shifted.push(b),
                        std::cmp::Ordering::Equal => shifted.extend([a, a + 1]),
                        std::cmp::Ordering::Greater => shifted.push(b + 1),
                    }
                }
                (reshaped, shifted, a)
            }
        };
        let inner: Dims = axes.iter().copied().filter(|&b| b != a).collect();
        let Ok(first) = g.add(Op::Reduce { op, axes: inner }, &[x]) else {
            return false;
        };
        // Where axis `a` sits in the first stage's result.
        let pos = a - axes.iter().filter(|&&b| b < a).count();
        let second = Op::Reduce { op, axes: Dims::from_slice(&[pos]) };
        g.set_op(n, second, &[first]).is_ok()
    }
}
