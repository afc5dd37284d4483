//! Row groups rendered as one kernel (`codegen::render_group`): softmax, log_softmax, layer
//! norm forward and backward and the row steps of a causal attention, built with the front
//! end and traced, with rows below and above one warp and one block, lengths that divide no
//! block size, row counts above and below a block's threads, and rows too long for shared
//! memory (separate launches), and sums over parts of many rows (separate launches too). The interpreter is the oracle, on inputs made from each
//! graph's input types.

use super::Case;
use crate::rng::Rng;
use tenjit::ir::{Buffer, DType, Graph, Scalar};
use tenjit::nn::{self, Attention};
use tenjit::prelude::*;

/// A data leaf of `shape` (its values do not matter: the case draws its own inputs).
fn leaf(shape: &[usize]) -> Tensor {
    Tensor::from_vec(vec![0.0f32; shape.iter().product()], shape.to_vec())
}

/// The group's cases.
pub fn group_cases(out: &mut Vec<Case>) {
    for (rows, n) in [(3, 5), (7, 32), (2, 33), (5, 300), (3, 257), (2, 1000), (300, 7)] {
        let x = leaf(&[rows, n]);
        out.push(traced(&format!("softmax [{rows}, {n}]"), &[&nn::softmax(&x, -1)]));
        out.push(traced(&format!("log_softmax [{rows}, {n}]"), &[&nn::log_softmax(&x, -1)]));
        let w = leaf(&[n]).requires_grad_();
        let b = leaf(&[n]).requires_grad_();
        let xg = leaf(&[rows, n]).requires_grad_();
        let y = nn::layer_norm(&xg, &[n], Some(&w), Some(&b), 1e-5);
        out.push(traced(&format!("layer_norm [{rows}, {n}]"), &[&y]));
        let loss = (&y * &y.sin()).sum();
        let grads = tenjit::grad(&[&loss], &[&xg, &w, &b]);
        out.push(traced(&format!("layer_norm backward [{rows}, {n}]"), &grads.iter().collect::<Vec<_>>()));
    }
    // Reductions over many rows split into parts inside a group (`kernel::parts`): the CUDA
    // backend runs such a group's steps as launches of their own, the parts then combined.
    let x = leaf(&[8192, 5]);
    let r = (&x * &x).sum_dim(1, false);
    out.push(traced("sum and max over parts [8192, 5]", &[&r.sum(), &r.amax(0, false)]));
    // Rows whose local buffers do not fit in shared memory: separate launches.
    let x = leaf(&[2, 9000]);
    out.push(traced("softmax [2, 9000]", &[&nn::softmax(&x, -1)]));
    for (b, l, e) in [(2, 5, 4), (1, 40, 8), (3, 33, 16)] {
        let q = leaf(&[b, l, e]).requires_grad_();
        let k = leaf(&[b, l, e]);
        let v = leaf(&[b, l, e]);
        let y =
            nn::scaled_dot_product_attention(&q, &k, &v, Attention { is_causal: true, ..Default::default() });
        out.push(traced(&format!("causal attention [{b}, {l}, {e}]"), &[&y]));
        let dq = tenjit::grad(&[&(&y * &y).sum()], &[&q]);
        out.push(traced(&format!("causal attention backward [{b}, {l}, {e}]"), &[&dq[0]]));
    }
}

/// The graph of `outputs` as a case of the `groups` group, with inputs drawn for its input types:
/// values in [-4, 4), and 1e-5 for a scalar input (a layer norm's epsilon is one).
fn traced(name: &str, outputs: &[&Tensor]) -> Case {
    let g: Graph = tenjit::graph_with(outputs, tenjit::TraceOptions { locations: false });
    let mut r = Rng(0x5EED_0000 ^ name.len() as u64 ^ g.len() as u64);
    let inputs: Vec<Buffer> = g
        .inputs()
        .iter()
        .map(|&(_, n)| {
            let t = g.ty(n);
            let v: Vec<Scalar> = (0..t.shape.numel())
                .map(|_| match t.dtype {
                    DType::Bool => Scalar::Bool(r.chance(0.5)),
                    DType::I32 | DType::I64 => Scalar::Int(r.below(7) as i64),
                    _ if t.shape.rank() == 0 => Scalar::Float(1e-5),
                    _ => Scalar::Float(r.unit() * 8.0 - 4.0),
                })
                .collect();
            Buffer::from_scalars(t.dtype, t.shape.clone(), v)
        })
        .collect();
    Case::new("groups", name, g, inputs)
}
