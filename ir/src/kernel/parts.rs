//! Reductions over a row group's rows, split into parts that run inside the group.
//!
//! A linear model's training step reads its data matrix `X` twice: once in the forward
//! product `X @ w`, whose rows a row group runs block by block with the error that follows
//! it, and once in the gradient's product `Xᵀ @ err`, a sum over the same rows. The loss
//! (`mean(err²)`) and the bias gradient (`sum(err)`) are sums over those rows too. None of
//! the sums can join the group as they are: their leading axis is the one they reduce. Split
//! into parts of `part` rows, each becomes a *step over parts* that reduces part `i` of the
//! rows (the rows the group has just produced, still in cache) to row `i` of a small buffer,
//! followed, after the group, by a step that combines the parts. So `X` streams from memory
//! once per step instead of twice.
//!
//! - A kernel reducing axis 0 of a space `[rows, ...]` becomes a kernel over
//!   `[rows / part, part, ...]` reducing axis 1 (and the other axes it reduced), whose loads,
//!   iotas and random counters address element `i * part + j` where they addressed `i`, into a
//!   buffer of the partial results; then a kernel reducing that buffer's axis 0 with the same
//!   combine op and the original epilogue and stores.
//! - A matrix product contracting `rows` (`Xᵀ @ g`: `k == rows`, no batch dims) becomes the
//!   batched product of its `rows / part` parts (`k == part`, batch strides of `part`
//!   contracted elements) into a `[rows / part, m, n]` buffer, then a kernel summing its
//!   axis 0 into the product's output. Only products with small outputs split (`m * n` at
//!   most [`MAX_PART_OUTPUT`]): a weight gradient's `[m, n]` per part would cost more to
//!   write and sum than the read it saves.
//!
//! Splitting reassociates the reduction (as `split-reduce` and the GEMMs do): each part is
//! reduced in the order its step reduces, then the parts in order. Max, min and integer sums
//! give the same values; a float sum differs by rounding only. The split depends on the sizes
//! alone, so a program gives the same bits on any number of threads.
//!
//! [`schedule`](super::schedule) decides where to split (a reduction that reads what an open
//! group reads or writes, and that the group admits once split), with [`part_rows`] rows a
//! part.

use super::{BufferDecl, BufferKind, Combine, IndexMap, Inst, InstOrigin, Instr, Kernel, KernelReduce};
use super::{MatmulStep, Program, Step, Store};
use crate::types::{Shape, TensorType};

/// The fewest rows a group must have for its row reductions to split into parts: below it, a
/// group's data is small enough that reading it twice costs little.
pub const MIN_SPLIT_ROWS: usize = 4096;

/// The most rows a part holds (the largest divisor of the group's rows up to this): a part's
/// rows of a matrix of 64 floats are 256 KiB, a block a core's L2 keeps.
pub const MAX_PART_ROWS: usize = 1024;

/// The fewest rows a part holds: smaller parts would make the partial results as large as
/// what they save.
pub const MIN_PART_ROWS: usize = 64;

/// The largest output (`m * n`) of a matrix product that splits into parts.
pub const MAX_PART_OUTPUT: usize = 4096;

/// The rows of a part for a group of `rows` rows: the largest divisor of `rows` between
/// [`MIN_PART_ROWS`] and [`MAX_PART_ROWS`] that leaves at least two parts, or `None` (a group
/// under [`MIN_SPLIT_ROWS`] rows, or no such divisor).
pub fn part_rows(rows: usize) -> Option<usize> {
    if rows < MIN_SPLIT_ROWS {
        return None;
    }
    (MIN_PART_ROWS..=MAX_PART_ROWS.min(rows / 2)).rev().find(|&c| rows.is_multiple_of(c))
}

/// Whether `step`, a step whose leading extent is `rows / part`, reduces each of its parts:
/// a kernel whose axis 1 has `part` points and is reduced, or a batched product with one
/// batch dim contracting `part` elements.
pub fn reduces_parts(step: &Step, part: usize) -> bool {
    match step {
        Step::Kernel(k) => {
            k.space.get(1) == Some(&part) && k.reduce.as_ref().is_some_and(|r| r.axes.contains(&1))
        }
        Step::Matmul(m) => m.batch.len() == 1 && m.k == part,
        Step::Op(_) | Step::Loop(_) => false,
    }
}

/// A reduction split in two: the step over parts, the kernel that combines the parts, and the
/// buffer between them.
pub struct Split {
    /// The step over parts, writing `buffer`.
    pub parts: Step,
    /// The kernel reducing `buffer`'s axis 0 into what the original step wrote.
    pub combine: Kernel,
    /// The partial results, `[rows / part, ...]`; its id is `p.buffers.len()` at the split.
    pub buffer: BufferDecl,
}

/// Step `at` of `p`, a reduction over a leading extent of `rows` (see the module doc), split
/// into parts of `part` rows; `None` when it is no such reduction, its sizes do not divide,
/// or an address would overflow. `p` is not changed: [`apply`] inserts the split.
pub fn split(p: &Program, at: usize, rows: usize, part: usize) -> Option<Split> {
    if part < 2 || !rows.is_multiple_of(part) || rows / part < 2 {
        return None;
    }
    let buf = p.buffers.len();
    match p.steps.get(at)? {
        Step::Kernel(k) => split_kernel(k, rows, part, buf),
        Step::Matmul(m) => split_matmul(m, rows, part, buf),
        Step::Op(_) | Step::Loop(_) => None,
    }
}

/// Replaces step `at` of `p` by `s.parts` and inserts `s.combine` right after it, with the
/// buffer between them.
pub fn apply(p: &mut Program, at: usize, s: Split) {
    p.buffers.push(s.buffer);
    p.steps[at] = s.parts;
    p.steps.insert(at + 1, Step::Kernel(s.combine));
}

/// A kernel reducing axis 0 of `[rows, ...]`, split.
fn split_kernel(k: &Kernel, rows: usize, part: usize, buf: usize) -> Option<Split> {
    let reduce = k.reduce.as_ref()?;
    let Combine::Reduce(op) = reduce.op else { return None };
    if k.space.first() != Some(&rows) || !reduce.axes.contains(&0) {
        return None;
    }
    let value = k.value?;
    let dtype = k.body.get(value)?.dtype;
    let n = rows / part;
    // Axis 0 becomes axes 0 (the part) and 1 (the row in it); the others move up by one.
    let mut space = vec![n, part];
    space.extend_from_slice(&k.space[1..]);
    let mut body = k.body.clone();
    for instr in &mut body {
        let index = match &mut instr.inst {
            Inst::Load { index, .. } | Inst::Iota { index } | Inst::Rand { counter: index, .. } => index,
            _ => continue,
        };
        if index.sym.is_some() || index.strides.len() != k.space.len() {
            return None;
        }
        let s0 = index.strides[0];
        let mut strides = vec![s0.checked_mul(part as i64)?, s0];
        strides.extend_from_slice(&index.strides[1..]);
        *index = IndexMap::new(index.offset, strides);
    }
    let mut axes = vec![1];
    axes.extend(reduce.axes.iter().filter(|&&a| a != 0).map(|&a| a + 1));
    let kept: Vec<usize> = k.out_space();
    let mut partial_dims = vec![n];
    partial_dims.extend_from_slice(&kept);
    let buffer = BufferDecl { ty: TensorType::new(dtype, Shape::new(&partial_dims)), kind: BufferKind::Temp };
    let body_origins = k.origins.iter().filter(|o| !o.site.epilogue).copied().collect();
    let parts = Kernel {
        name: String::new(),
        space,
        reduce: Some(KernelReduce { op: reduce.op, axes }),
        body,
        value: Some(value),
        epilogue: vec![Instr { inst: Inst::Acc, dtype }],
        stores: vec![Store { buf, value: 0 }],
        reason: format!("{} of parts of {part} rows, combined after the group", op.name()),
        origins: body_origins,
    };
    let epilogue_origins = k.origins.iter().filter(|o| o.site.epilogue).copied().collect();
    let combine = combine_kernel(buf, dtype, op, &partial_dims, k.epilogue.clone(), k.stores.clone());
    let combine = Kernel { reason: k.reason.clone(), origins: epilogue_origins, ..combine };
    Some(Split { parts: Step::Kernel(parts), combine, buffer })
}

/// A product contracting `rows`, split.
fn split_matmul(m: &MatmulStep, rows: usize, part: usize, buf: usize) -> Option<Split> {
    if !m.batch.is_empty() || m.k != rows || m.m.checked_mul(m.n)? > MAX_PART_OUTPUT {
        return None;
    }
    let n = rows / part;
    let mut step = m.clone();
    step.batch = vec![n];
    step.k = part;
    step.a.batch_strides = vec![m.a.col_stride.checked_mul(part as i64)?];
    step.b.batch_strides = vec![m.b.row_stride.checked_mul(part as i64)?];
    step.out = buf;
    let dims: Vec<usize> =
        [n, m.m, m.n].into_iter().enumerate().filter(|&(d, s)| d == 0 || s != 1).map(|(_, s)| s).collect();
    let buffer =
        BufferDecl { ty: TensorType::new(m.dtype, Shape::new(&[n, m.m, m.n])), kind: BufferKind::Temp };
    let combine = combine_kernel(
        buf,
        m.dtype,
        crate::ReduceOp::Sum,
        &dims,
        vec![Instr { inst: Inst::Acc, dtype: m.dtype }],
        vec![Store { buf: m.out, value: 0 }],
    );
    let combine = Kernel { reason: format!("sum of the {n} parts' products"), ..combine };
    Some(Split { parts: Step::Matmul(step), combine, buffer })
}

/// The kernel reducing axis 0 of dense buffer `buf` of `dims` with `op`, then running
/// `epilogue` and `stores`.
fn combine_kernel(
    buf: usize,
    dtype: crate::DType,
    op: crate::ReduceOp,
    dims: &[usize],
    epilogue: Vec<Instr>,
    stores: Vec<Store>,
) -> Kernel {
    Kernel {
        name: String::new(),
        space: dims.to_vec(),
        reduce: Some(KernelReduce { op: Combine::Reduce(op), axes: vec![0] }),
        body: vec![Instr { inst: Inst::Load { buf, index: super::schedule::dense(dims) }, dtype }],
        value: Some(0),
        epilogue,
        stores,
        reason: String::new(),
        origins: Vec::<InstOrigin>::new(),
    }
}
