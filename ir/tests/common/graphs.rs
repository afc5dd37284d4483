//! The random-graph generator of the IR's tests, in pieces: each test keeps its own mix of
//! ops (runnable values for the lowering, identities and duplicates for the simplifier, odd
//! names and locations for the printer) and builds it from these, so the draws every test
//! makes, and therefore its graphs for a seed, are defined once.

use super::Rng;
use tenjit_ir::ops::{Dims, IDims};
use tenjit_ir::{DType, Graph, NodeId, Op, Scalar, TensorType};

/// A shape of rank `min_rank..4`, each dimension in `1..=4` or, one time in `zero_one_in`, 0.
pub fn shape(r: &mut Rng, min_rank: usize, zero_one_in: usize) -> Vec<usize> {
    let rank = min_rank + r.below(4 - min_rank);
    (0..rank).map(|_| if r.chance(zero_one_in) { 0 } else { 1 + r.below(4) }).collect()
}

/// A scalar of `dtype`: a random bool, or a value of `ints` or `floats` converted to `dtype`.
pub fn scalar(r: &mut Rng, dtype: DType, floats: &[f64], ints: &[i64]) -> Scalar {
    match dtype {
        DType::Bool => Scalar::Bool(r.chance(2)),
        DType::I32 | DType::I64 => Scalar::Int(r.pick(ints)).cast(dtype),
        DType::F16 | DType::BF16 | DType::F32 | DType::F64 => Scalar::Float(r.pick(floats)).cast(dtype),
    }
}

/// The value a new step applies to (one of the three latest half of the time, so that chains
/// form and more of the graph is live), its type, and the values of that same type.
pub fn operand(g: &Graph, r: &mut Rng, vals: &[NodeId]) -> (NodeId, TensorType, Vec<NodeId>) {
    let x = if r.chance(2) { vals[vals.len() - 1 - r.below(vals.len().min(3))] } else { r.pick(vals) };
    let xt = g.ty(x).clone();
    let same_type: Vec<NodeId> = vals.iter().copied().filter(|v| *g.ty(*v) == xt).collect();
    (x, xt, same_type)
}

/// A random permutation of `rank` axes.
pub fn permutation(r: &mut Rng, rank: usize) -> Dims {
    let mut perm: Vec<usize> = (0..rank).collect();
    for i in (1..rank).rev() {
        perm.swap(i, r.below(i + 1));
    }
    Dims::from_vec(perm)
}

/// A random valid slice of a value with dimensions `dims`, each axis stepping by one of
/// `steps`.
pub fn slice(r: &mut Rng, dims: &[usize], steps: &[isize]) -> Op {
    let (mut start, mut step, mut size) = (IDims::new(), IDims::new(), Dims::new());
    for &n in dims {
        let s: isize = r.pick(steps);
        let b = r.below(n.max(1)) as isize;
        let max = if n == 0 {
            0
        } else if s > 0 {
            (n as isize - 1 - b) / s + 1
        } else {
            b / -s + 1
        };
        start.push(b);
        step.push(s);
        size.push(r.below(max as usize + 1));
    }
    Op::Slice { start, step, size, bounds: None }
}

/// Adds `n` steps to `g`: each is the first of up to 30 tries of `step` that gives a value,
/// which joins `vals`; `added` then sees `vals` (and may add more).
pub fn grow(
    g: &mut Graph,
    r: &mut Rng,
    vals: &mut Vec<NodeId>,
    n: usize,
    mut step: impl FnMut(&mut Graph, &mut Rng, &[NodeId]) -> Option<NodeId>,
    mut added: impl FnMut(&mut Graph, &mut Rng, &mut Vec<NodeId>),
) {
    for _ in 0..n {
        for _attempt in 0..30 {
            if let Some(v) = step(g, r, vals) {
                vals.push(v);
                added(g, r, vals);
                break;
            }
        }
    }
}

/// Makes the graph return the last `1..=most` values nothing uses (so most of the graph is
/// live) and, one time in `extra_one_in`, any value besides.
pub fn set_sink_outputs(g: &mut Graph, r: &mut Rng, vals: &[NodeId], most: usize, extra_one_in: usize) {
    let sinks: Vec<NodeId> = vals.iter().copied().filter(|&v| g.users(v).is_empty()).collect();
    let mut outputs: Vec<NodeId> = sinks[sinks.len().saturating_sub(1 + r.below(most))..].to_vec();
    if r.chance(extra_one_in) {
        outputs.push(r.pick(vals));
    }
    g.set_outputs(outputs);
}
