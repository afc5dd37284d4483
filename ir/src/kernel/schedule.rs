//! Row groups: which consecutive steps of a [`Program`] may run row block by row block, and
//! the values such a group computes once instead of in each of its kernels.
//!
//! Row softmax lowers to three kernels (the row max; the row sum of `exp(x - max)`; `exp(x -
//! max) / sum`), and each reads the whole matrix. Run one after the other, each pass streams
//! the matrix from memory again, and `exp` runs twice per element. But every kernel reads only
//! its own row of what the kernels before it wrote, so they can run together on a block of
//! rows that stays in cache: a [`Group`]. Inside a group, a costly value that two kernels of
//! the same iteration space both compute (`exp(x - max)` in the sum and in the division) is
//! computed once by a kernel of its own into a row-local buffer and loaded by both. A matrix
//! product followed by its elementwise epilogue (`relu(x @ w + b)`) groups the same way: the
//! epilogue runs on each block of rows as soon as the GEMM has produced it.
//!
//! # When steps group
//!
//! A step has a leading extent when it is a kernel whose space starts with a dimension that
//! it does not reduce, a matrix product without batch dims (its `m`; not a matrix-vector
//! product whose contraction is at least 8 times longer, `Xᵀ @ g`, which by its rows would be
//! split across threads by output element, each thread reading a strided part of every row of
//! `X`, instead of by the long contraction into partial sums), or a library routine
//! that works image by image ([`image_operands`]: `conv2d`, `conv2d_input` and the max-pool
//! ops, whose rows are their output's images). A run of steps with
//! the same leading extent `rows` (at least 2) is a group when every step reads what earlier
//! steps of the run wrote only *within its own row*: for a buffer `w` of `rows * s` elements
//! written in the group, a load at loop index `i` (with `i[0]` the row) must address
//! `i[0] * s + t` with `0 <= t < s` for every `i` — its stride along the row dimension is `s`
//! and the rest of its affine map stays in `[0, s)`. A matrix product may take its left
//! operand from the group (row `r` of the product needs row `r` of it), never its right one;
//! a library routine may take the operands it reads image by image from the group (they are
//! dense, an image a row), never the ones it reads whole (a convolution's weight). So a
//! convolution's bias and activation, and the next convolution or pool, run on the images the
//! convolution has just produced.
//! No step of a group writes a buffer that an earlier step of the group reads or writes.
//!
//! Under these conditions, running each step over rows `r0..r1` before the next step starts
//! on them reads exactly the values the sequential order reads, whatever the blocks. The
//! kernel-IR interpreter ([`eval`](super::eval)) runs groups one row at a time with the
//! group's local buffers poisoned beforehand, so the differential tests check the rule.
//!
//! # Reductions over a group's rows, in parts
//!
//! A reduction over the rows of what a group produced or read (the gradient's `Xᵀ @ err` of
//! a linear model whose forward product `X @ w` and error form the group, its loss and bias
//! gradient) cannot join the group as it is: its leading axis is the one it reduces. In a
//! group of at least [`parts::MIN_SPLIT_ROWS`] rows, [`gather`] splits such a reduction into
//! a *step over parts* ([`parts`]: its leading extent is `rows / part`, each index reducing
//! `part` consecutive rows to one row of a small buffer), which joins the group, and a step
//! after the group that combines the parts. A step over parts reads what earlier steps of
//! the group wrote only within its part (the row rule with the part's rows as the row), and
//! nothing in the group reads what it writes; the group's blocks then start and end at
//! multiples of the part ([`Group::part`]), and each block runs its steps over parts on its
//! whole parts after its other steps. So the data streams from memory once. Symbolic
//! programs' instances do not split ([`schedule_with`]).
//!
//! # Moving reductions next to a group
//!
//! Steps come from the lowering in graph order, where two independent row reductions of one
//! matrix may have another step between them (the total of the first one's rows, after
//! `split-reduce`). Before groups form, [`gather`] moves such a reduction up to the group it
//! may join, past steps it does not depend on and that do not depend on it.
//!
//! # Sharing inside a group
//!
//! Two kernels of one group with the same iteration space that both compute a value costing
//! at least [`SHARE_MIN_COST`] (in the weights of [`cost`]: 4 for `exp`, `log`, `sin`, `cos`,
//! `tanh`, `pow`) get a new elementwise kernel, placed before the first of them, that stores
//! the value into a new buffer; both load it instead. The buffer is local to the group, so a
//! backend keeps only the rows in flight. Values are bit for bit the same: the stored value
//! is the computed one, at its dtype.

use super::{
    parts, BufId, BufferDecl, BufferKind, Group, IndexMap, Inst, InstId, InstOrigin, Instr, Kernel, Program,
    Site, Step, Store,
};
use crate::ops::{ConvRole, Op, PoolRole};
use crate::types::{Shape, TensorType};
use std::collections::{BTreeSet, HashMap};

/// The least cost (see [`cost`]) of a value that two kernels of one group both compute for it
/// to be computed once and shared through a row-local buffer.
pub const SHARE_MIN_COST: u64 = 4;

/// Moves steps next to a group they may join (see [`gather`]), forms the groups of `p`
/// (replacing any it had), shares costly values inside them, and names the kernels `k0`,
/// `k1`, ... in step order again.
pub fn schedule(p: &mut Program) {
    schedule_with(p, true);
}

/// [`schedule`], splitting reductions over a group's rows into parts ([`parts`]) only when
/// `split` is set. A symbolic program's instances keep one structure for every size, so
/// they do not split (the split depends on the rows' divisors).
pub fn schedule_with(p: &mut Program, split: bool) {
    gather(p, split);
    loop {
        p.groups = groups(p);
        if !share_one(p) {
            break;
        }
    }
    let mut next = 0;
    for step in &mut p.steps {
        if let Step::Kernel(k) = step {
            k.name = format!("k{next}");
            next += 1;
        }
    }
    // The reason of a kernel that computes a shared value names the kernels that load it.
    for s in 0..p.steps.len() {
        let Step::Kernel(k) = &p.steps[s] else { continue };
        if k.reason != SHARED {
            continue;
        }
        let buf = k.stores[0].buf;
        let users: Vec<String> = p.steps[s + 1..]
            .iter()
            .filter_map(|step| match step {
                Step::Kernel(u) if step_buffers(step).0.contains(&buf) => Some(u.name.clone()),
                _ => None,
            })
            .collect();
        if let Step::Kernel(k) = &mut p.steps[s] {
            k.reason = format!("computed once for {}, kept row by row", users.join(" and "));
        }
    }
}

/// The reason of a kernel that computes a shared value, until its users are named.
const SHARED: &str = "shared";

/// The leading extent of a step of `p`, if it has one (see the module doc).
pub fn leading_rows(p: &Program, step: &Step) -> Option<usize> {
    match step {
        Step::Kernel(k) => {
            let first = *k.space.first()?;
            let reduces_rows = k.reduce.as_ref().is_some_and(|r| r.axes.contains(&0));
            (!reduces_rows).then_some(first)
        }
        Step::Matmul(m) => (m.batch.is_empty() && !(m.n == 1 && m.k >= 8 * m.m)).then_some(m.m),
        Step::Op(op) => {
            image_operands(&op.op)?;
            p.buffers.get(op.out)?.ty.shape.dims().first().copied()
        }
        Step::Loop(_) => None,
    }
}

/// For a library op that works image by image — its output's image `n` is computed from
/// image `n` of some operands and all of the others — which operands it reads image by
/// image; `None` for an op that mixes images. `conv2d` and `conv2d_input` read one image of
/// their first operand and all of the weight; the max-pool ops read one image of both
/// operands. Such a step has its output's images as its rows, and joins a row group: a
/// convolution's bias and activation then run on the images it has just produced.
pub fn image_operands(op: &Op) -> Option<&'static [bool]> {
    match op {
        Op::Conv(c) => match c.role {
            ConvRole::Forward | ConvRole::Input { .. } => Some(&[true, false]),
            ConvRole::Weight { .. } => None,
        },
        Op::Pool(p) => match p.role {
            PoolRole::Select | PoolRole::Scatter => Some(&[true, true]),
        },
        Op::Input { .. }
        | Op::Const { .. }
        | Op::Size { .. }
        | Op::Iota { .. }
        | Op::Rand { .. }
        | Op::Unary(_)
        | Op::Binary(_)
        | Op::Where
        | Op::Cast { .. }
        | Op::Reduce { .. }
        | Op::ArgReduce { .. }
        | Op::Reshape { .. }
        | Op::Permute { .. }
        | Op::Expand { .. }
        | Op::Slice { .. }
        | Op::Pad { .. }
        | Op::Concat { .. }
        | Op::Matmul
        | Op::Gather { .. }
        | Op::ScatterAdd { .. }
        | Op::Loop(_) => None,
    }
}

/// The buffers a step reads and the ones it writes.
pub fn step_buffers(step: &Step) -> (Vec<BufId>, Vec<BufId>) {
    match step {
        Step::Kernel(k) => {
            let reads = k
                .body
                .iter()
                .chain(&k.epilogue)
                .filter_map(|i| match &i.inst {
                    Inst::Load { buf, .. } => Some(*buf),
                    _ => None,
                })
                .collect();
            (reads, k.stores.iter().map(|s| s.buf).collect())
        }
        Step::Matmul(m) => (vec![m.a.buf, m.b.buf], vec![m.out]),
        Step::Op(op) => (op.args.clone(), vec![op.out]),
        Step::Loop(l) => (l.args.clone(), l.outs.clone()),
    }
}

/// Whether an affine map over `dims` (with `dims[0]` the row) stays in its row of a buffer
/// whose rows hold `row_len` elements.
pub fn row_local(offset: i64, row_stride: i64, rest: &[(i64, usize)], row_len: usize) -> bool {
    if rest.iter().any(|&(_, n)| n == 0) {
        return true; // nothing is read
    }
    let (mut lo, mut hi) = (offset as i128, offset as i128);
    for &(s, n) in rest {
        let span = s as i128 * (n as i128 - 1);
        lo += span.min(0);
        hi += span.max(0);
    }
    row_stride as i128 == row_len as i128 && lo >= 0 && hi < row_len as i128
}

/// The leading extent a step has as a step over parts (see [`parts`]): a kernel's
/// [`leading_rows`], or a product's one batch dim.
fn parts_extent(p: &Program, step: &Step) -> Option<usize> {
    match step {
        Step::Matmul(m) if m.batch.len() == 1 => Some(m.batch[0]),
        Step::Kernel(_) => leading_rows(p, step),
        Step::Matmul(_) | Step::Op(_) | Step::Loop(_) => None,
    }
}

/// The rows each index of `step` covers in a group of `rows` rows whose parts (if any yet)
/// hold `part` rows: 1 for a step with the group's leading extent, the part's rows for a
/// step over parts, `None` for a step that has neither.
pub fn step_unit(p: &Program, step: &Step, rows: usize, part: usize) -> Option<usize> {
    if leading_rows(p, step) == Some(rows) {
        return Some(1);
    }
    let e = parts_extent(p, step).filter(|&e| e >= 2 && e < rows && rows.is_multiple_of(e))?;
    let c = rows / e;
    ((part == 1 || part == c) && parts::reduces_parts(step, c)).then_some(c)
}

/// What a group under construction has written and read.
struct Open {
    rows: usize,
    /// The rows of its parts, 1 while it has no step over parts.
    part: usize,
    written: BTreeSet<BufId>,
    read: BTreeSet<BufId>,
    /// What its steps over parts wrote: nothing in the group may read it.
    partial: BTreeSet<BufId>,
}

impl Open {
    /// Whether `step` may join the group.
    fn admits(&self, p: &Program, step: &Step) -> bool {
        let Some(unit) = step_unit(p, step, self.rows, self.part) else { return false };
        // The step's leading extent, and the elements of buffer `b` each of its indices owns.
        let extent = self.rows / unit;
        let row_len = |b: BufId| p.buffers[b].ty.shape.numel() / extent;
        let (reads, writes) = step_buffers(step);
        if writes.iter().any(|w| self.written.contains(w) || self.read.contains(w))
            || reads.iter().any(|r| self.partial.contains(r))
        {
            return false;
        }
        match step {
            Step::Kernel(k) => {
                let out = k.out_space();
                let body = k.body.iter().map(|i| (i, &k.space));
                let epilogue = k.epilogue.iter().map(|i| (i, &out));
                body.chain(epilogue).all(|(instr, dims)| match &instr.inst {
                    Inst::Load { buf, index } if self.written.contains(buf) => {
                        let rest: Vec<(i64, usize)> =
                            index.strides.iter().copied().zip(dims.iter().copied()).skip(1).collect();
                        row_local(index.offset, index.strides[0], &rest, row_len(*buf))
                    }
                    _ => true,
                })
            }
            // A product over parts may read either operand from the group, within its part.
            Step::Matmul(m) if unit > 1 => [(&m.a, m.m, m.k), (&m.b, m.k, m.n)].iter().all(|(op, r, c)| {
                !self.written.contains(&op.buf)
                    || row_local(
                        op.offset,
                        op.batch_strides[0],
                        &[(op.row_stride, *r), (op.col_stride, *c)],
                        row_len(op.buf),
                    )
            }),
            Step::Matmul(m) => {
                !self.written.contains(&m.b.buf)
                    && (!self.written.contains(&m.a.buf)
                        || row_local(m.a.offset, m.a.row_stride, &[(m.a.col_stride, m.k)], row_len(m.a.buf)))
            }
            // Operands read image by image are dense with an image per row, so any is
            // row-local; the others are read whole and must not be written in the group.
            Step::Op(op) => image_operands(&op.op).is_some_and(|per_image| {
                op.args.iter().zip(per_image).all(|(b, &one)| one || !self.written.contains(b))
            }),
            Step::Loop(_) => false,
        }
    }

    fn add(&mut self, p: &Program, step: &Step) {
        let (reads, writes) = step_buffers(step);
        if let Some(unit) = step_unit(p, step, self.rows, self.part).filter(|&u| u > 1) {
            self.part = unit;
            self.partial.extend(writes.iter().copied());
        }
        self.read.extend(reads);
        self.written.extend(writes);
    }
}

/// How many steps past the end of an open group [`gather`] looks for one that may join it.
pub const GATHER_LOOKAHEAD: usize = 8;

/// Whether `step` is a row reduction that [`gather`] may move into the open group `open`:
/// a kernel with a reduction (its output is small beside what it reads, so it matters
/// little which group writes it) that reads a buffer the group reads but does not write,
/// and that the group admits.
fn joins_for_its_reads(p: &Program, open: &Open, step: &Step) -> bool {
    let Step::Kernel(k) = step else { return false };
    k.reduce.is_some()
        && step_buffers(step).0.iter().any(|b| open.read.contains(b) && !open.written.contains(b))
        && open.admits(p, step)
}

/// Whether step `l` of `p` may run before steps `from..l` instead of after them: it reads
/// nothing they write and writes nothing they read or write, so every step reads the same
/// values in either order.
fn commutes_back(p: &Program, from: usize, l: usize) -> bool {
    let (reads, writes) = step_buffers(&p.steps[l]);
    p.steps[from..l].iter().all(|s| {
        let (r, w) = step_buffers(s);
        !reads.iter().any(|b| w.contains(b)) && !writes.iter().any(|b| r.contains(b) || w.contains(b))
    })
}

/// Reorders steps so that independent row reductions of the same data are adjacent and
/// group, reading the data from memory once. Steps come in graph order, and a full reduction
/// of a large matrix is split into row sums and the total of the rows' results
/// (`split-reduce`), so `sum(x)` and `sum(x * x)` may lower to *row sums of `x`, their
/// total, row sums of `x * x`, their total*; the totals do not share the leading extent, so
/// the row sums would not group. Here, when a group under construction (or a single step
/// with a leading extent) cannot take the next step, the first of the next
/// [`GATHER_LOOKAHEAD`] steps that is a row reduction of a buffer the group reads, that the
/// group admits, and that commutes with the steps it passes (reads nothing they write,
/// writes nothing they use) moves up to join it. Only reductions move, so no group loses an
/// elementwise step whose row-local output it would have kept in cache. With `split`, a
/// reduction over the group's rows among those steps that reads what the group reads or
/// writes is split into parts ([`parts`]) and its step over parts moves up the same way.
pub fn gather(p: &mut Program, split: bool) {
    let mut i = 0;
    while i < p.steps.len() {
        let Some(mut open) = open_at(p, i) else {
            i += 1;
            continue;
        };
        let mut j = i + 1;
        loop {
            if j < p.steps.len() && open.admits(p, &p.steps[j]) {
                open.add(p, &p.steps[j]);
                j += 1;
                continue;
            }
            let end = (j + 1 + GATHER_LOOKAHEAD).min(p.steps.len());
            let found =
                (j + 1..end).find(|&l| joins_for_its_reads(p, &open, &p.steps[l]) && commutes_back(p, j, l));
            let l = match found {
                Some(l) => l,
                None if split => {
                    let Some((l, s)) = split_into(p, &open, j, end) else { break };
                    parts::apply(p, l, s);
                    l
                }
                None => break,
            };
            p.steps[j..=l].rotate_right(1);
            open.add(p, &p.steps[j]);
            j += 1;
        }
        i = j;
    }
}

/// The first of steps `j..end` that, split into parts ([`parts`]), reads what the open group
/// reads or writes, joins it, and commutes with the steps between `j` and it; with its split.
fn split_into(p: &Program, open: &Open, j: usize, end: usize) -> Option<(usize, parts::Split)> {
    let part = if open.part > 1 { open.part } else { parts::part_rows(open.rows)? };
    (j..end).find_map(|l| {
        let s = parts::split(p, l, open.rows, part)?;
        let (reads, _) = step_buffers(&s.parts);
        let shares = reads.iter().any(|b| open.read.contains(b) || open.written.contains(b));
        (shares && open.admits(p, &s.parts) && commutes_back(p, j, l)).then_some((l, s))
    })
}

/// The group that could start at step `i`, holding it: `None` when the step has no leading
/// extent of at least 2 rows.
fn open_at(p: &Program, i: usize) -> Option<Open> {
    let rows = leading_rows(p, &p.steps[i]).filter(|&r| r >= 2)?;
    let mut open =
        Open { rows, part: 1, written: BTreeSet::new(), read: BTreeSet::new(), partial: BTreeSet::new() };
    open.add(p, &p.steps[i]);
    Some(open)
}

/// The groups of `p`, formed greedily from the first step on.
fn groups(p: &Program) -> Vec<Group> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < p.steps.len() {
        let Some(mut open) = open_at(p, i) else {
            i += 1;
            continue;
        };
        let mut j = i + 1;
        while j < p.steps.len() && open.admits(p, &p.steps[j]) {
            open.add(p, &p.steps[j]);
            j += 1;
        }
        if j - i >= 2 {
            let later: BTreeSet<BufId> = p.steps[j..].iter().flat_map(|s| step_buffers(s).0).collect();
            let local = open
                .written
                .iter()
                .copied()
                .filter(|b| {
                    !later.contains(b) && !p.outputs.contains(b) && p.buffers[*b].kind == BufferKind::Temp
                })
                .collect();
            out.push(Group { steps: i..j, rows: open.rows, part: open.part, local });
        }
        i = j;
    }
    out
}

/// The cost of computing one instruction from its operands: 4 for transcendental functions
/// and powers, 16 for a random draw, 2 for division and square roots, 1 for other arithmetic,
/// 0 for loads, constants and indices.
pub fn cost(inst: &Inst) -> u64 {
    match inst {
        Inst::Load { .. } | Inst::Const(_) | Inst::Iota { .. } | Inst::Acc | Inst::AccValue => 0,
        Inst::Rand { .. } => 16,
        Inst::Unary(u, _) => u.spec().cost.weight,
        Inst::Binary(b, _, _) => b.spec().cost.weight,
        Inst::Where(..) | Inst::Cast(_) => 1,
    }
}

/// The instruction with each operand replaced by `f(operand)`.
fn map_operands(inst: &Inst, f: impl Fn(InstId) -> InstId) -> Inst {
    match inst {
        Inst::Unary(op, a) => Inst::Unary(*op, f(*a)),
        Inst::Cast(a) => Inst::Cast(f(*a)),
        Inst::Binary(op, a, b) => Inst::Binary(*op, f(*a), f(*b)),
        Inst::Where(c, a, b) => Inst::Where(f(*c), f(*a), f(*b)),
        other => other.clone(),
    }
}

/// Canonical ids of a body's instructions in a table shared between programs: two
/// instructions (of any of the programs) get the same id when they compute the same value.
fn intern(body: &[Instr], table: &mut HashMap<Instr, usize>) -> Vec<usize> {
    let mut ids: Vec<usize> = Vec::with_capacity(body.len());
    for instr in body {
        let key = Instr { inst: map_operands(&instr.inst, |a| ids[a]), dtype: instr.dtype };
        let next = table.len();
        ids.push(*table.entry(key).or_insert(next));
    }
    ids
}

/// The cost of each instruction's whole expression tree.
fn tree_costs(body: &[Instr]) -> Vec<u64> {
    let mut costs: Vec<u64> = Vec::with_capacity(body.len());
    for instr in body {
        let c = cost(&instr.inst) + instr.inst.operands().iter().map(|&a| costs[a]).sum::<u64>();
        costs.push(c);
    }
    costs
}

/// Shares one costly value between kernels of a group, if there is one; returns whether it
/// did.
fn share_one(p: &mut Program) -> bool {
    for g in p.groups.clone() {
        for i in g.steps.clone() {
            let Step::Kernel(ki) = &p.steps[i] else { continue };
            // Every kernel of the group with the same space, with canonical instruction ids.
            let mut table = HashMap::new();
            let ids_i = intern(&ki.body, &mut table);
            let others: Vec<(usize, Vec<usize>)> = (i + 1..g.steps.end)
                .filter_map(|j| match &p.steps[j] {
                    Step::Kernel(kj) if kj.space == ki.space => Some((j, intern(&kj.body, &mut table))),
                    _ => None,
                })
                .collect();
            let elsewhere: BTreeSet<usize> = others.iter().flat_map(|(_, ids)| ids.iter().copied()).collect();
            let costs = tree_costs(&ki.body);
            let best = (0..ki.body.len())
                .filter(|&a| elsewhere.contains(&ids_i[a]) && costs[a] >= SHARE_MIN_COST)
                .max_by_key(|&a| (costs[a], std::cmp::Reverse(a)));
            let Some(a) = best else { continue };
            let users: Vec<(usize, InstId)> = others
                .iter()
                .filter_map(|(j, ids)| ids.iter().position(|&id| id == ids_i[a]).map(|b| (*j, b)))
                .collect();
            hoist(p, i, a, &users);
            return true;
        }
    }
    false
}

/// Moves instruction `a` of kernel step `i` (equal to instruction `b` of kernel step `j` for
/// each `(j, b)` of `users`) into a new kernel before step `i` that stores it into a new
/// buffer, which they all load instead.
fn hoist(p: &mut Program, i: usize, a: InstId, users: &[(usize, InstId)]) {
    let Step::Kernel(ki) = &p.steps[i] else { unreachable!("hoist from a kernel") };
    let space = ki.space.clone();
    let dtype = ki.body[a].dtype;
    let buf = p.buffers.len();
    p.buffers.push(BufferDecl { ty: TensorType::new(dtype, Shape::new(&space)), kind: BufferKind::Temp });
    let (body, root, new_id) = subtree(&ki.body, a);
    // The moved instructions keep their origins in the new kernel.
    let origins = ki
        .origins
        .iter()
        .filter(|o| !o.site.epilogue && new_id[o.site.inst] != usize::MAX)
        .map(|o| InstOrigin { site: Site { epilogue: false, inst: new_id[o.site.inst] }, node: o.node })
        .collect();
    let shared = Kernel {
        name: String::new(),
        space: space.clone(),
        reduce: None,
        body,
        value: None,
        epilogue: Vec::new(),
        stores: vec![Store { buf, value: root }],
        reason: SHARED.into(),
        origins,
    };
    let load = Instr { inst: Inst::Load { buf, index: dense(&space) }, dtype };
    for &(s, at) in std::iter::once(&(i, a)).chain(users) {
        if let Step::Kernel(k) = &mut p.steps[s] {
            k.body[at] = load.clone();
            compact(k);
        }
    }
    p.steps.insert(i, Step::Kernel(shared));
}

/// The row-major dense map of `dims`.
pub(super) fn dense(dims: &[usize]) -> IndexMap {
    let mut strides = vec![0i64; dims.len()];
    let mut s = 1i64;
    for d in (0..dims.len()).rev() {
        strides[d] = s;
        s = s.wrapping_mul(dims[d] as i64);
    }
    IndexMap::new(0, strides)
}

/// The instructions `root` depends on, renumbered in order, `root`'s new id, and the new id
/// of each instruction (`usize::MAX` for those left out).
fn subtree(body: &[Instr], root: InstId) -> (Vec<Instr>, InstId, Vec<usize>) {
    let mut live = vec![false; body.len()];
    live[root] = true;
    for at in (0..=root).rev() {
        if live[at] {
            for o in body[at].inst.operands() {
                live[o] = true;
            }
        }
    }
    let mut new_id = vec![usize::MAX; body.len()];
    let mut out = Vec::new();
    for (at, instr) in body.iter().enumerate().take(root + 1) {
        if live[at] {
            new_id[at] = out.len();
            out.push(Instr { inst: map_operands(&instr.inst, |o| new_id[o]), dtype: instr.dtype });
        }
    }
    let root = new_id[root];
    (out, root, new_id)
}

/// Drops body instructions nothing uses any more, renumbering the rest (and the kernel's
/// reduced value and, without a reduction, its stores).
fn compact(k: &mut Kernel) {
    let mut live = vec![false; k.body.len()];
    match k.value {
        Some(v) => live[v] = true,
        None => k.stores.iter().for_each(|s| live[s.value] = true),
    }
    for at in (0..k.body.len()).rev() {
        if live[at] {
            for o in k.body[at].inst.operands() {
                live[o] = true;
            }
        }
    }
    let mut new_id = vec![usize::MAX; k.body.len()];
    let mut body = Vec::new();
    for (at, instr) in k.body.iter().enumerate() {
        if live[at] {
            new_id[at] = body.len();
            body.push(Instr { inst: map_operands(&instr.inst, |o| new_id[o]), dtype: instr.dtype });
        }
    }
    k.body = body;
    k.origins.retain_mut(|o| {
        if o.site.epilogue {
            return true;
        }
        o.site.inst = new_id[o.site.inst];
        o.site.inst != usize::MAX
    });
    match &mut k.value {
        Some(v) => *v = new_id[*v],
        None => k.stores.iter_mut().for_each(|s| s.value = new_id[s.value]),
    }
}
