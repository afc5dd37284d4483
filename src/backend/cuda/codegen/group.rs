//! Row groups as one kernel: the CUDA form of what the CPU backend gets from a [`Group`]
//! (`src/backend/cpu/group.rs`).
//!
//! A group's steps all run over the same leading extent, `rows`, and each reads what earlier
//! steps wrote only within its own row (`tenjit_ir::kernel::schedule`). So one block can run
//! every step on one row before it moves to the next: the kernel is a grid-stride loop of
//! blocks over rows, and inside it each step's code in program order, restricted to the row,
//! with a `__syncthreads()` after each step (what a step writes is then visible to every
//! thread of the block for the next, and the last barrier lets the next row reuse shared
//! memory). The group's local buffers are one row each in shared memory (`s{buf}`, pointers
//! into the kernel's dynamic shared memory at offsets that are size parameters, so the text
//! does not depend on the row's length: [`Launch::shared_bytes`] is computed from it), so
//! softmax's `exp(x - max)` and its row max and sum never go to global memory; an input row
//! that several steps read is copied into shared memory once at the row's start (`staged`),
//! so softmax and layer norm read their row from global memory once.
//!
//! Each step keeps its own kernel shape within the row: an elementwise step strides the
//! row's points over the block's threads; a reduction over more than
//! [`SMALL_REDUCTION`](super::SMALL_REDUCTION) elements per output point runs the same
//! block tree as a kernel of its own (threads stride over the reduced extent, warp shuffles,
//! then shared memory across warps), once per output point of the row; a smaller one gives
//! each thread output points and visits their elements in order. So `max`/`min` and arg
//! reductions are exact, and float sums differ from the interpreter's only by the tree's
//! association, as they do in a kernel of their own (the block size may differ from the one
//! that kernel would pick, so the last bit of an `f32` sum may too).
//!
//! A group renders as separate launches, as every other step does, when [`why_separate`]
//! says why it cannot be one kernel: a matrix product among its steps (it runs through cuBLAS
//! or the generated matmul kernel, over all rows at once) or a library routine (a convolution
//! or a max pool, image by image on the CPU, one kernel over all images here), or local buffers whose rows do not
//! fit in [`GROUP_SHARED_BYTES`] of shared memory (the locals are then allocated in full in
//! global memory).

use super::expr::{self, Frame};
use super::sizes::Sizes;
use super::{
    c_name, elem_type, invalid, params, signature, CodegenError, Launch, RenderedKernel, MAX_GRID,
    MAX_REDUCTION_BLOCK, SMALL_REDUCTION,
};
use std::collections::{BTreeMap, BTreeSet};
use tenjit_ir::kernel::schedule::row_local;
use tenjit_ir::kernel::{BufId, BufferDecl, Group, Inst, Kernel, Program, Step};

/// The most shared memory a row group's kernel gives its local buffers and staged input rows
/// (one row of each, in dynamic shared memory, padded to 16 bytes each); a kernel's shared
/// memory is at most 48 KiB without opting in, and the reductions' static partial results take
/// some of the rest.
pub const GROUP_SHARED_BYTES: usize = 32 << 10;

/// Why group `g` of `program` runs as separate launches, or `None` when it renders as one
/// kernel (see the module doc).
pub fn why_separate(program: &Program, g: &Group) -> Option<String> {
    if g.rows == 0 || g.steps.end > program.steps.len() {
        return Some("an empty or malformed group".into());
    }
    if g.part > 1 {
        return Some("it has steps over parts of its rows, which need every row of a part first".into());
    }
    if program.steps[g.steps.clone()].iter().any(|s| !matches!(s, Step::Kernel(_))) {
        return Some("it has a matrix product or a library routine, which run over all rows at once".into());
    }
    let bytes = local_bytes(program, g);
    if bytes > GROUP_SHARED_BYTES {
        return Some(format!(
            "its local buffers take {bytes} bytes a row, more than the {GROUP_SHARED_BYTES} bytes of shared memory a group kernel gives them"
        ));
    }
    None
}

/// The bytes of one row of each of the group's local buffers.
fn local_bytes(program: &Program, g: &Group) -> usize {
    g.local
        .iter()
        .filter_map(|&b| program.buffers.get(b))
        .map(|d| d.ty.shape.numel() / g.rows.max(1) * d.ty.dtype.size_bytes())
        .sum()
}

/// The buffers the group only reads, row by row, in two steps or more: each row of them is
/// copied into shared memory once (`s{buf}`, as a local buffer) and the steps read it there,
/// as long as they fit in [`GROUP_SHARED_BYTES`] with the local buffers (first come, first
/// staged). So softmax and layer norm read their input row from global memory once.
fn staged(program: &Program, g: &Group, kernels: &[Kernel]) -> Vec<BufId> {
    let rows = g.rows;
    let written: BTreeSet<BufId> = kernels.iter().flat_map(|k| k.stores.iter().map(|s| s.buf)).collect();
    // Per buffer read: the steps that read it, and whether every read stays in its row.
    let mut reads: BTreeMap<BufId, (BTreeSet<usize>, bool)> = BTreeMap::new();
    for (s, k) in kernels.iter().enumerate() {
        let out = k.out_space();
        let body = k.body.iter().map(|i| (i, &k.space));
        for (instr, dims) in body.chain(k.epilogue.iter().map(|i| (i, &out))) {
            let Inst::Load { buf, index } = &instr.inst else { continue };
            if written.contains(buf) {
                continue;
            }
            let Some(decl) = program.buffers.get(*buf) else { continue };
            let numel = decl.ty.shape.numel();
            let rest: Vec<(i64, usize)> =
                index.strides.iter().copied().zip(dims.iter().copied()).skip(1).collect();
            let local = numel % rows == 0
                && numel > 0
                && index.strides.len() == dims.len()
                && !index.strides.is_empty()
                && row_local(index.offset, index.strides[0], &rest, numel / rows);
            let e = reads.entry(*buf).or_insert_with(|| (BTreeSet::new(), true));
            e.0.insert(s);
            e.1 &= local;
        }
    }
    let mut room = GROUP_SHARED_BYTES.saturating_sub(local_bytes(program, g));
    let mut out = Vec::new();
    for (buf, (steps, local)) in reads {
        let decl = &program.buffers[buf];
        let bytes = decl.ty.shape.numel() / rows * decl.ty.dtype.size_bytes();
        if steps.len() >= 2 && local && bytes <= room {
            room -= bytes;
            out.push(buf);
        }
    }
    out
}

/// The threads per block a step of a group would like for one row: one per point of an
/// elementwise step or per output point of a small reduction, half the reduced extent of a
/// large one (as its kernel of its own), between 32 and 256, a power of two.
fn step_block(k: &Kernel, rows: usize) -> u32 {
    let n: usize = k.space.iter().product();
    let want = match &k.reduce {
        None => n / rows,
        Some(r) => {
            let red_n: usize = r.axes.iter().filter_map(|&a| k.space.get(a)).product();
            if red_n > SMALL_REDUCTION {
                expr::reduction_block(red_n) as usize
            } else {
                n / red_n.max(1) / rows
            }
        }
    };
    want.next_power_of_two().clamp(32, MAX_REDUCTION_BLOCK as usize) as u32
}

/// Renders group `g` (the `index`-th of `program`) as one kernel named after the program and
/// the group (`main_g0`). The caller checks [`why_separate`] first.
pub fn render_group(program: &Program, g: &Group, index: usize) -> Result<RenderedKernel, CodegenError> {
    let name = c_name(&format!("{}_g{index}", program.name));
    if let Some(why) = why_separate(program, g) {
        return Err(invalid(&name, format!("the group cannot be one kernel: {why}")));
    }
    let buffers: &[BufferDecl] = &program.buffers;
    let kernels: Vec<Kernel> = program.steps[g.steps.clone()]
        .iter()
        .map(|s| match s {
            Step::Kernel(k) => Ok(tenjit_ir::kernel::half::widened(k).into_owned()),
            Step::Matmul(_) | Step::Op(_) | Step::Loop(_) => {
                Err(invalid(&name, "a step that is not a kernel"))
            }
        })
        .collect::<Result<_, _>>()?;
    let block = kernels.iter().map(|k| step_block(k, g.rows)).max().unwrap_or(32);
    let staged = staged(program, g, &kernels);
    let mut shared: Vec<BufId> = g.local.iter().chain(&staged).copied().collect();
    shared.sort_unstable();
    let frame = Frame::Row { rows: g.rows, local: &shared };
    let sizes = Sizes::default();
    let rows = sizes.extent(g.rows);
    // Each shared row at a 16-byte aligned offset of the dynamic shared memory.
    let mut shared_decls = String::new();
    let mut shared_bytes = 0usize;
    for (j, &b) in shared.iter().enumerate() {
        let decl = super::buffer(&name, buffers, b)?;
        let row_bytes = decl.ty.shape.numel() / g.rows * decl.ty.dtype.size_bytes();
        let t = elem_type(decl.ty.dtype);
        // The first row starts the memory; the others' offsets are parameters.
        let start = match j {
            0 => "tj_dynamic_shared".to_string(),
            _ => format!("tj_dynamic_shared + {}", sizes.value(shared_bytes as i64).name),
        };
        shared_decls.push_str(&format!("    {t}* const s{b} = ({t}*)({start});\n"));
        shared_bytes += row_bytes.div_ceil(16) * 16;
    }

    let mut body = String::new();
    for &b in &staged {
        let row_len = sizes.extent(buffers[b].ty.shape.numel() / g.rows).name;
        body.push_str(&format!(
            "        for (long long t = threadIdx.x; t < {row_len}; t += blockDim.x) s{b}[t] = b{b}[row * {row_len} + t];\n"
        ));
    }
    if !staged.is_empty() {
        body.push_str("        __syncthreads();\n");
    }
    let mut uses = Vec::new();
    let mut can_fail = false;
    for k in &kernels {
        let (text, _, fails) = expr::render_in(k, buffers, frame, &sizes)?;
        can_fail |= fails;
        uses.extend(expr::buffer_uses(k).into_iter().filter(|u| g.local.binary_search(&u.0).is_err()));
        for line in text.lines() {
            body.push_str("        ");
            body.push_str(line);
            body.push('\n');
        }
        body.push_str("        __syncthreads();\n");
    }
    let params = params(&name, buffers, &uses, &sizes, can_fail)?;

    let names: Vec<&str> = kernels.iter().map(|k| k.name.as_str()).collect();
    let list = |v: &[BufId]| v.iter().map(|b| format!("b{b}")).collect::<Vec<_>>().join(" ");
    let mut s = format!(
        "// group {name}: {} over the rows as one kernel; one block per row runs the steps in order, a barrier after each; in shared memory, one row each: local {}; staged input {}\n",
        names.join(", "),
        if g.local.is_empty() { "none".to_string() } else { list(&g.local) },
        if staged.is_empty() { "none".to_string() } else { list(&staged) },
    );
    s.push_str(&format!(
        "extern \"C\" __global__ void __launch_bounds__({MAX_REDUCTION_BLOCK}) {name}({}) {{\n",
        signature(&params)
    ));
    if !shared.is_empty() {
        s.push_str("    TJ_DYNAMIC_SHARED(tj_dynamic_shared);\n");
        s.push_str(&shared_decls);
    }
    s.push_str(&format!("    for (long long row = blockIdx.x; row < {}; row += gridDim.x) {{\n", rows.name));
    s.push_str(&body);
    s.push_str("    }\n}\n");
    let launch = Launch {
        grid: (rows.value as usize).min(MAX_GRID as usize) as u32,
        block,
        shared_bytes: shared_bytes as u32,
    };
    Ok(RenderedKernel { name, source: s, launch, params })
}
