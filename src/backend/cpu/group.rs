//! Running a row group ([`Group`], see `tenjit_ir::kernel::schedule`) on the CPU.
//!
//! The rows are split into one contiguous range per thread, and each thread runs every step
//! of the group on a block of rows before moving to the next block, so what one step writes
//! is still in the core's cache when the next reads it. A block holds about
//! [`BLOCK_BYTES`] of the group's rows, those it writes and those its kernels read, so two
//! row sums of one matrix (a one-pass variance) read each row from memory once and from L2
//! once; a group with a matrix product takes blocks of at least [`MATMUL_BLOCK_ROWS`] rows,
//! so that `gemm` repacks its right operand rarely.
//!
//! The group's local buffers never exist in full: each thread has a scratch buffer per local
//! buffer, holding one block of its rows, and the kernels see a base pointer shifted so that
//! row `r` of the block lands in the scratch. A kernel runs over rows `r0..r1` as its outer
//! range `r0 * q..r1 * q`, where `q` is how many outer indices a row spans (the code
//! generator merges the leading dims a kernel walks densely into one outer dimension, of which
//! the row is the most significant part). A matrix product runs rows `r0..r1` as a product of
//! `r1 - r0` rows on the thread.
//!
//! A group with steps over parts (`tenjit_ir::kernel::parts`: reductions over the group's
//! rows, `part` rows an index) gives each thread, and each block, whole parts: ranges and
//! blocks start at multiples of the part. A step over parts runs, after the block's other
//! steps, on the block's parts: a kernel over its outer range for those parts, a product over
//! parts batch by batch (`matmul_parts`). Its output is a program buffer, combined after the
//! group, so every part is reduced in the same order whatever the blocks and threads.

use super::codegen::CompiledKernel;
use super::gemm;
use super::memory;
use super::pool::{data_ptr, on_workers, threads, ExecError, Ptrs};
use crate::error::EvalErrorKind;
use std::sync::atomic::{AtomicUsize, Ordering};
use tenjit_ir::kernel::schedule::{image_operands, step_unit};
use tenjit_ir::kernel::{BufId, Group, Inst, MatOperand, MatmulStep, OpStep, Program, Step};
use tenjit_ir::Op;
use tenjit_ir::{DType, Data};

/// The bytes of rows (written and read) a block aims at: the block's inputs, outputs and
/// intermediates then stay in a core's L2 (512 KiB to 2 MiB on the machines we measure).
pub const BLOCK_BYTES: usize = 256 << 10;

/// The fewest rows a block of a group with a matrix product has.
pub const MATMUL_BLOCK_ROWS: usize = 128;

/// A forced block size (rows), or 0 for the default: see [`set_block_rows`].
static FORCED_BLOCK_ROWS: AtomicUsize = AtomicUsize::new(0);

/// Makes every row group run in blocks of `rows` rows and split over all cores whatever its
/// size, or (with `None`) restores the default. For tests that exercise block and thread
/// boundaries on small graphs; results never depend on it.
pub fn set_block_rows(rows: Option<usize>) {
    FORCED_BLOCK_ROWS.store(rows.unwrap_or(0), Ordering::Relaxed);
}

/// Groups with less work than this (elements of kernel spaces plus multiply-adds) run on the
/// calling thread.
pub(super) const PARALLEL_MIN_WORK: usize = 1 << 16;

/// A local buffer: its id, dtype and elements per row.
#[derive(Clone, Copy)]
struct Local {
    buf: BufId,
    dtype: DType,
    row_len: usize,
}

/// Runs group `g` of `program`. `ptrs` holds a live pointer for every buffer the group reads
/// and every non-local buffer it writes; `kernels[s]` is the compiled kernel of step `s`.
pub(super) fn run(
    program: &Program,
    kernels: &[Option<CompiledKernel>],
    g: &Group,
    ptrs: &[*mut u8],
) -> Result<(), ExecError> {
    let rows = g.rows;
    let steps = &program.steps[g.steps.clone()];
    let row_len = |b: BufId| program.buffers[b].ty.shape.numel() / rows;
    let locals: Vec<Local> = g
        .local
        .iter()
        .map(|&buf| Local { buf, dtype: program.buffers[buf].ty.dtype, row_len: row_len(buf) })
        .collect();
    // The rows each index of a step covers (1, or the group's part for a step over parts).
    let units: Vec<usize> = steps
        .iter()
        .map(|step| {
            step_unit(program, step, rows, g.part)
                .ok_or_else(|| ExecError::internal(format!("a step without {rows} rows in its group")))
        })
        .collect::<Result<_, _>>()?;
    // The kernels' outer indices per index of their leading extent.
    let mut per_row = Vec::with_capacity(steps.len());
    let mut work = 0usize;
    let mut row_bytes = 0usize;
    let mut has_matmul = false;
    // The program buffers the kernels' bodies read: a block's rows of them are in cache too.
    let mut read: Vec<BufId> = Vec::new();
    for ((s, step), &unit) in g.steps.clone().zip(steps).zip(&units) {
        let extent = rows / unit;
        match step {
            Step::Kernel(k) => {
                let ck = kernels[s]
                    .as_ref()
                    .ok_or_else(|| ExecError::internal(format!("kernel {} was not compiled", k.name)))?;
                if ck.outer_len() % extent != 0 {
                    return Err(ExecError::internal(format!(
                        "kernel {}: {} outer indices for a leading extent of {extent} in its group",
                        k.name,
                        ck.outer_len()
                    )));
                }
                per_row.push(ck.outer_len() / extent);
                work = work.saturating_add(k.space.iter().product());
                for st in &k.stores {
                    row_bytes += row_len(st.buf) * program.buffers[st.buf].ty.dtype.size_bytes();
                }
                for i in &k.body {
                    if let Inst::Load { buf, .. } = i.inst {
                        if !g.local.contains(&buf) && !read.contains(&buf) {
                            read.push(buf);
                        }
                    }
                }
            }
            Step::Matmul(m) => {
                has_matmul = true;
                per_row.push(0);
                let batches = m.batch.iter().product::<usize>();
                work =
                    work.saturating_add(batches.saturating_mul(m.m).saturating_mul(m.n).saturating_mul(m.k));
                if unit == 1 {
                    row_bytes += m.n * m.dtype.size_bytes();
                }
            }
            Step::Op(op) => {
                let per_image = image_operands(&op.op)
                    .ok_or_else(|| ExecError::internal(format!("{} in a row group", op.op.name())))?;
                per_row.push(0);
                let out = &program.buffers[op.out].ty;
                work = work.saturating_add(out.shape.numel());
                row_bytes += row_len(op.out) * out.dtype.size_bytes();
                for (&b, &one) in op.args.iter().zip(per_image) {
                    if one && !read.contains(&b) {
                        read.push(b);
                    }
                }
            }
            Step::Loop(_) => return Err(ExecError::internal("a loop in a row group")),
        }
    }
    for &b in &read {
        let numel = program.buffers[b].ty.shape.numel();
        // Only a buffer with a row per row of the group is read a block at a time; a smaller
        // one (a bias, a row of scales) is read whole by every block.
        if numel >= rows && numel.is_multiple_of(rows) {
            row_bytes += row_len(b) * program.buffers[b].ty.dtype.size_bytes();
        }
    }
    let forced = FORCED_BLOCK_ROWS.load(Ordering::Relaxed);
    let n = if work < PARALLEL_MIN_WORK && forced == 0 { 1 } else { threads().min(rows) };
    // Threads and blocks start at multiples of the part, where a step over parts begins.
    let part = g.part.max(1);
    let chunk = rows.div_ceil(n.max(1)).next_multiple_of(part);
    let mut block = (BLOCK_BYTES / row_bytes.max(1)).max(1);
    if has_matmul {
        block = block.max(MATMUL_BLOCK_ROWS);
    }
    if forced > 0 {
        block = forced;
    }
    let block = block.next_multiple_of(part).min(chunk).max(1);
    let shared = Ptrs::new(ptrs);
    let thread = |t: usize| -> Result<(), ExecError> {
        let (lo, hi) = (t * chunk, ((t + 1) * chunk).min(rows));
        if lo >= hi {
            return Ok(());
        }
        let scratch: Result<Vec<Data>, _> =
            locals.iter().map(|l| memory::allocate(l.dtype, block * l.row_len)).collect();
        let scratch = scratch.map_err(|e| {
            ExecError::new(EvalErrorKind::OutOfMemory, format!("{e} for a row group's scratch"))
        })?;
        let mut mine: Vec<*mut u8> = shared.get().to_vec();
        let result = (|| {
            for r0 in (lo..hi).step_by(block) {
                let r1 = (r0 + block).min(hi);
                for (l, data) in locals.iter().zip(&scratch) {
                    // Row `r` of the buffer is row `r - r0` of the scratch. The shifted base is
                    // only ever offset by the indices of rows `r0..r1`.
                    let shift = r0 * l.row_len * l.dtype.size_bytes();
                    mine[l.buf] = data_ptr(data).wrapping_sub(shift);
                }
                for (((s, step), &q), &u) in g.steps.clone().zip(steps).zip(&per_row).zip(&units) {
                    // The step's indices for rows `r0..r1` (whole parts for a step over parts).
                    let (i0, i1) = (r0 / u, r1.div_ceil(u));
                    match step {
                        Step::Kernel(k) => {
                            let ck = kernels[s].as_ref().expect("checked above");
                            // SAFETY: `mine` points every buffer the kernel uses at live storage
                            // of its declared type: program buffers in full, local ones at a
                            // scratch that holds rows `r0..r1`, the only rows the kernel touches
                            // for outer indices `i0 * q..i1 * q` (the group's row rule; a step
                            // over parts reads only its parts' rows, and `r0..r1` holds whole
                            // parts). Other threads touch other rows of the buffers written here.
                            unsafe { ck.run(&mine, i0 * q, i1 * q) }
                                .map_err(|e| ExecError::of_kernel(k, e))?;
                        }
                        Step::Matmul(m) if u > 1 => matmul_parts(program, m, &mine, i0, i1)?,
                        Step::Matmul(m) => matmul_rows(program, g, m, &mine, r0, r1)?,
                        Step::Op(op) => op_rows(program, g, op, &mine, r0, r1)?,
                        Step::Loop(_) => unreachable!("checked above"),
                    }
                }
            }
            Ok(())
        })();
        scratch.into_iter().for_each(memory::release);
        result
    };
    if n <= 1 {
        return thread(0);
    }
    on_workers(n, thread)
}

/// Rows `r0..r1` of matrix product `m`, on the calling thread.
fn matmul_rows(
    program: &Program,
    g: &Group,
    m: &MatmulStep,
    ptrs: &[*mut u8],
    r0: usize,
    r1: usize,
) -> Result<(), ExecError> {
    let rows = r1 - r0;
    let written_in_group = |b: BufId| {
        program.steps[g.steps.clone()]
            .iter()
            .any(|s| tenjit_ir::kernel::schedule::step_buffers(s).1.contains(&b))
    };
    let numel = |b: BufId| program.buffers[b].ty.shape.numel();
    // The left operand: when the group writes it, only rows `r0..r1` exist for this thread
    // (the row rule makes its row stride the row length); otherwise all of it, offset to row r0.
    let (a_start, a_len, a_offset) = if written_in_group(m.a.buf) {
        let row_len = numel(m.a.buf) / g.rows;
        (r0 * row_len, rows * row_len, m.a.offset)
    } else {
        (0, numel(m.a.buf), m.a.offset.wrapping_add((r0 as i64).wrapping_mul(m.a.row_stride)))
    };
    let sub = MatmulStep { m: rows, a: MatOperand { offset: a_offset, ..m.a.clone() }, ..m.clone() };
    let size = m.dtype.size_bytes();
    // Pointers to element 0 of the rows in use: local buffers' pointers are already shifted
    // so that row `r0` is at `r0 * row_len`.
    let a_ptr = ptrs[m.a.buf].wrapping_add(a_start * size);
    let out_ptr = ptrs[m.out].wrapping_add(r0 * m.n * size);
    let (b_ptr, b_len) = (ptrs[m.b.buf], numel(m.b.buf));
    let out_len = rows * m.n;
    // SAFETY: `a_ptr..+a_len` is rows `r0..r1` of a buffer the group writes (this thread's
    // rows, written by an earlier step of this block and not touched by other threads) or all
    // of a buffer nobody writes during the group; `b_ptr..+b_len` is all of a buffer nobody
    // writes during the group (the row rule keeps the right operand out of the group);
    // `out_ptr..+out_len` is rows `r0..r1` of the output, this thread's alone. All are live
    // allocations of `m.dtype`'s elements of at least that length.
    unsafe { matmul_on(&sub, (a_ptr, a_len), (b_ptr, b_len), (out_ptr, out_len)) }
}

/// Runs `step` on one thread over the elements at `a`, `b` and `out` (pointer, length in
/// elements of `step.dtype`).
///
/// # Safety
///
/// Each pointer must be valid for its length of `step.dtype`'s elements (reads for `a` and
/// `b`, writes for `out`), `out` must not alias `a` or `b`, and no other thread may write
/// them during the call.
unsafe fn matmul_on(
    step: &MatmulStep,
    (a_ptr, a_len): (*mut u8, usize),
    (b_ptr, b_len): (*mut u8, usize),
    (out_ptr, out_len): (*mut u8, usize),
) -> Result<(), ExecError> {
    macro_rules! run {
        ($t:ty, $f:path) => {{
            // SAFETY: the caller's contract: valid, unaliased spans of `$t` (`step.dtype`).
            let (a, b, out) = unsafe {
                (
                    std::slice::from_raw_parts(a_ptr as *const $t, a_len),
                    std::slice::from_raw_parts(b_ptr as *const $t, b_len),
                    std::slice::from_raw_parts_mut(out_ptr as *mut $t, out_len),
                )
            };
            $f(step, a, b, out, 1)
        }};
    }
    match step.dtype {
        DType::F32 => run!(f32, gemm::matmul_f32),
        DType::F64 => run!(f64, gemm::matmul_f64),
        DType::I32 => run!(i32, gemm::matmul_i32),
        DType::I64 => run!(i64, gemm::matmul_i64),
        DType::F16 => run!(half::f16, gemm::matmul_f16),
        DType::BF16 => run!(half::bf16, gemm::matmul_bf16),
        DType::Bool => return Err(ExecError::internal("matmul of bools")),
    }
    .map_err(|e| ExecError::internal(format!("matmul: {e}")))
}

/// Batches `i0..i1` of product `m` over parts (one batch dim: part `i` of the group's rows),
/// on the calling thread. Each operand is passed as the span of elements those batches
/// address, which for a buffer the group writes lies in the rows of the block (the group's
/// part rule), where its pointer in `ptrs` (a local buffer's shifted scratch) is valid.
fn matmul_parts(
    program: &Program,
    m: &MatmulStep,
    ptrs: &[*mut u8],
    i0: usize,
    i1: usize,
) -> Result<(), ExecError> {
    let count = i1 - i0;
    if m.batch.len() != 1 || i1 > m.batch[0] {
        return Err(ExecError::internal(format!("batches {i0}..{i1} of a product over {:?}", m.batch)));
    }
    if count == 0 || m.m == 0 || m.n == 0 || m.k == 0 {
        return Err(ExecError::internal("an empty product over parts"));
    }
    // The first and last elements an operand's batches `i0..i1` address, as offsets from the
    // buffer's start, and the operand rebased to the first of them.
    let span = |op: &MatOperand, rows: usize, cols: usize| -> Result<(usize, usize, MatOperand), ExecError> {
        let start = op.offset as i128 + op.batch_strides[0] as i128 * i0 as i128;
        let (mut lo, mut hi) = (start, start);
        for (s, n) in [(op.batch_strides[0], count), (op.row_stride, rows), (op.col_stride, cols)] {
            let reach = s as i128 * (n as i128 - 1);
            lo += reach.min(0);
            hi += reach.max(0);
        }
        let numel = program.buffers[op.buf].ty.shape.numel() as i128;
        if lo < 0 || hi >= numel {
            return Err(ExecError::internal(format!("a product over parts reads b{} outside it", op.buf)));
        }
        let rebased = MatOperand { offset: (start - lo) as i64, ..op.clone() };
        Ok((lo as usize, (hi - lo + 1) as usize, rebased))
    };
    let (a_lo, a_len, a) = span(&m.a, m.m, m.k)?;
    let (b_lo, b_len, b) = span(&m.b, m.k, m.n)?;
    let sub = MatmulStep { batch: vec![count], a, b, ..m.clone() };
    let size = m.dtype.size_bytes();
    let (a_ptr, b_ptr) = (ptrs[m.a.buf].wrapping_add(a_lo * size), ptrs[m.b.buf].wrapping_add(b_lo * size));
    let out_len = count * m.m * m.n;
    let out_ptr = ptrs[m.out].wrapping_add(i0 * m.m * m.n * size);
    // SAFETY: the operand spans are the elements batches `i0..i1` address, checked to lie
    // inside their buffers; a buffer the group writes is addressed only within the rows of the
    // running block (the part rule), which its pointer (a local buffer's shifted scratch)
    // holds and this thread alone writes. The output holds batches `i0..i1` of a buffer no
    // other step of the group touches, this thread's alone. All are live allocations of
    // `m.dtype`'s elements.
    unsafe { matmul_on(&sub, (a_ptr, a_len), (b_ptr, b_len), (out_ptr, out_len)) }
}

/// Images `r0..r1` of library step `op` (one that works image by image, see
/// [`image_operands`]), on the calling thread: the operands it reads image by image and its
/// output are those images of their buffers (for a local buffer, of the thread's scratch,
/// whose pointer is shifted so that image `r` is at `r * row_len`), the others whole.
fn op_rows(
    program: &Program,
    g: &Group,
    op: &OpStep,
    ptrs: &[*mut u8],
    r0: usize,
    r1: usize,
) -> Result<(), ExecError> {
    let name = op.op.name();
    let per_image =
        image_operands(&op.op).ok_or_else(|| ExecError::internal(format!("{name} in a row group")))?;
    let images = r1 - r0;
    // The pointer, length and dimensions of the part of buffer `b` the step sees.
    let part = |b: BufId, one: bool| {
        let ty = &program.buffers[b].ty;
        let mut dims: Vec<usize> = ty.shape.dims().to_vec();
        let numel = ty.shape.numel();
        if !one {
            return (ptrs[b], numel, dims);
        }
        let row_len = numel / g.rows;
        dims[0] = images;
        (ptrs[b].wrapping_add(r0 * row_len * ty.dtype.size_bytes()), images * row_len, dims)
    };
    let (a, b) = match op.args.as_slice() {
        [a, b] => (part(*a, per_image[0]), part(*b, per_image[1])),
        _ => return Err(ExecError::internal(format!("{name} with {} operands", op.args.len()))),
    };
    let out = part(op.out, true);
    macro_rules! run {
        ($t:ty, $f:expr) => {{
            // SAFETY: each pointer is a live allocation of the buffer's declared type: for a
            // part read image by image, images `r0..r1` of a buffer with one image per row of
            // the group (a buffer the group writes holds this thread's images, written by an
            // earlier step of this block; a local buffer's shifted scratch holds exactly rows
            // `r0..r1`); for a part read whole, all of a buffer nobody writes during the group
            // (the row rule). The output is images `r0..r1` of its buffer, this thread's alone.
            let (x, y, o) = unsafe {
                (
                    std::slice::from_raw_parts(a.0 as *const $t, a.1),
                    std::slice::from_raw_parts(b.0 as *const $t, b.1),
                    std::slice::from_raw_parts_mut(out.0 as *mut $t, out.1),
                )
            };
            $f(x, y, o)
        }};
    }
    let dtype = program.buffers[op.out].ty.dtype;
    match &op.op {
        Op::Conv(c) => {
            let conv =
                |x: &[f32], y: &[f32], o: &mut [f32]| super::conv::run_slices(c, (x, &a.2), (y, &b.2), o, 1);
            match dtype {
                DType::F32 => run!(f32, conv),
                DType::F64 => run!(f64, |x: &[f64], y: &[f64], o: &mut [f64]| {
                    super::conv::run_slices(c, (x, &a.2), (y, &b.2), o, 1)
                }),
                DType::F16 => run!(half::f16, |x: &[half::f16], y: &[half::f16], o: &mut [half::f16]| {
                    widened(x, y, o, |x, y, o| conv(x, y, o), half::f16::to_f32, half::f16::from_f32)
                }),
                DType::BF16 => {
                    run!(half::bf16, |x: &[half::bf16], y: &[half::bf16], o: &mut [half::bf16]| {
                        widened(x, y, o, |x, y, o| conv(x, y, o), half::bf16::to_f32, half::bf16::from_f32)
                    })
                }
                DType::Bool | DType::I32 | DType::I64 => {
                    Err(ExecError::internal(format!("{name} of {dtype}")))
                }
            }
        }
        Op::Pool(p) => {
            macro_rules! pool {
                ($t:ty) => {
                    run!($t, |x: &[$t], y: &[$t], o: &mut [$t]| super::maxpool::run_slices(
                        p,
                        (x, &a.2),
                        (y, &b.2),
                        o
                    ))
                };
            }
            match dtype {
                DType::F32 => pool!(f32),
                DType::F64 => pool!(f64),
                DType::F16 => pool!(half::f16),
                DType::BF16 => pool!(half::bf16),
                DType::Bool | DType::I32 | DType::I64 => {
                    Err(ExecError::internal(format!("{name} of {dtype}")))
                }
            }
        }
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
        | Op::Loop(_) => Err(ExecError::internal(format!("{name} in a row group"))),
    }
}

/// Runs `f` on `f32` copies of 16-bit operands and rounds its result into `o` once, as the
/// library routines do outside groups.
fn widened<H: Copy>(
    x: &[H],
    y: &[H],
    o: &mut [H],
    f: impl Fn(&[f32], &[f32], &mut [f32]) -> Result<(), ExecError>,
    wide: fn(H) -> f32,
    narrow: fn(f32) -> H,
) -> Result<(), ExecError> {
    let (xw, yw): (Vec<f32>, Vec<f32>) =
        (x.iter().map(|&v| wide(v)).collect(), y.iter().map(|&v| wide(v)).collect());
    let mut ow = vec![0f32; o.len()];
    f(&xw, &yw, &mut ow)?;
    o.iter_mut().zip(ow).for_each(|(o, v)| *o = narrow(v));
    Ok(())
}
