//! `transpose-products`: a matrix product read only through its transpose is computed
//! transposed, `(a @ b)ᵀ → bᵀ @ aᵀ`.
//!
//! Autodiff writes the gradient of an `nn.Linear` weight `W` (`[out, in]`, used as `x @ Wᵀ`)
//! as `(xᵀ @ dy)ᵀ`: the product comes out `[in, out]` and the optimizer's update reads it
//! through a transpose, one element every `out` floats, in the innermost loop of a kernel that
//! streams `W` and its state. Computed as `dyᵀ @ x`, the product comes out in `W`'s own layout
//! and the update reads it contiguously; the GEMM reads its operands through strides either
//! way (`xᵀᵀ` folds back to `x` in `simplify`). The MNIST CNN's SGD step on its
//! `[128, 9216]` weight took 2.6 ms in a kernel reading the gradient by columns.
//!
//! The rewrite applies to `permute(matmul(a, b), p)` where `p` swaps the last two axes and
//! keeps the batch axes in place, and the product has no other use and is no graph output. It
//! is exact: element `(j, i)` of `bᵀ @ aᵀ` is `Σ_p b[p, j]·a[i, p]`, the same products (IEEE
//! multiplication commutes) added in the same order as element `(i, j)` of `a @ b`, which is
//! how the interpreter computes both.

use crate::graph::{Graph, NodeId};
use crate::ops::{Dims, Op};

/// The pass.
pub struct TransposeProducts;

impl super::Pass for TransposeProducts {
    fn name(&self) -> &'static str {
        "transpose-products"
    }

    fn run(&self, g: &mut Graph) -> bool {
        let Some(order) = g.live_order() else { return false };
        let mut changed = false;
        for n in order {
            changed |= rewrite(g, n);
        }
        changed
    }
}

/// Whether `perm` swaps the last two of its axes and keeps the others in place.
fn swaps_last_two(perm: &[usize]) -> bool {
    let r = perm.len();
    r >= 2 && perm[r - 2] == r - 1 && perm[r - 1] == r - 2 && (0..r - 2).all(|i| perm[i] == i)
}

/// Rewrites node `n` if it is the transpose of a product used only there; returns whether it
/// did.
fn rewrite(g: &mut Graph, n: NodeId) -> bool {
    let Op::Permute { perm } = g.op(n) else { return false };
    if !swaps_last_two(perm) {
        return false;
    }
    let swap: Dims = perm.clone();
    let m = g.args(n)[0];
    if !matches!(g.op(m), Op::Matmul) || g.users(m) != [n] || g.outputs().contains(&m) {
        return false;
    }
    let (a, b) = (g.args(m)[0], g.args(m)[1]);
    let loc = g.loc(m).map(str::to_string);
    let Ok(bt) = g.add_at(Op::Permute { perm: swap.clone() }, &[b], loc.clone()) else { return false };
    let Ok(at) = g.add_at(Op::Permute { perm: swap }, &[a], loc) else { return false };
    g.set_op(n, Op::Matmul, &[bt, at]).is_ok()
}
