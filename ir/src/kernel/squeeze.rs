//! Dropping the unit axes of kernels' iteration spaces.
//!
//! A kernel's space is its root value's shape, so a batch of one (`[1, 4, T, T]` attention
//! scores in generation, `[1, T, C]` activations) gives spaces whose first axis has one
//! index. Every index map multiplies that index by a stride, but the index is always 0: the
//! axis changes nothing but the space's leading extent, and the leading extent is what a row
//! group shares ([`schedule`](super::schedule)), so with a batch of one nothing grouped. Here
//! every axis of extent 1 that a kernel does not reduce leaves its space, its index maps
//! (body maps index the space, epilogue maps the output space) and the numbering of its
//! reduced axes. The points, the elements each loads and the row-major order of its stores
//! are unchanged, so the program computes the same values; a reduced axis of extent 1 stays,
//! so a reduction stays a reduction.

use super::{IndexMap, Kernel, Program, Step};

/// Drops the unreduced unit axes of every kernel of `p` (see the module docs).
pub fn squeeze(p: &mut Program) {
    for step in &mut p.steps {
        if let Step::Kernel(k) = step {
            squeeze_kernel(k);
        }
    }
}

fn squeeze_kernel(k: &mut Kernel) {
    let reduced = |d: usize| k.reduce.as_ref().is_some_and(|r| r.axes.contains(&d));
    let keep: Vec<bool> = (0..k.space.len()).map(|d| k.space[d] != 1 || reduced(d)).collect();
    if keep.iter().all(|&x| x) {
        return;
    }
    // The output space's axes are the space's unreduced ones, in order.
    let out_keep: Vec<bool> = (0..k.space.len()).filter(|&d| !reduced(d)).map(|d| keep[d]).collect();
    let drop = |index: &mut IndexMap, keep: &[bool]| {
        if index.strides.len() == keep.len() {
            index.strides = index.strides.iter().zip(keep).filter(|(_, &k)| k).map(|(&s, _)| s).collect();
        }
    };
    for (list, keep) in [(&mut k.body, &keep), (&mut k.epilogue, &out_keep)] {
        for instr in list.iter_mut() {
            if let Some(index) = instr.inst.index_mut() {
                drop(index, keep);
            }
        }
    }
    if let Some(r) = &mut k.reduce {
        r.axes = r.axes.iter().map(|&a| a - keep[..a].iter().filter(|&&x| !x).count()).collect();
    }
    k.space = k.space.iter().zip(&keep).filter(|(_, &x)| x).map(|(&n, _)| n).collect();
}
