//! Library routines on the CPU: the ops a program runs as [`OpStep`]s (`gather`,
//! `scatter_add`, `concat`, `pad`; the convolutions and max pooling are in `conv`
//! and `maxpool`), as typed loops over the operands' slices that write
//! straight into the step's output buffer.
//!
//! Each routine computes what the reference interpreter (`tenjit_ir::interp`) computes, bit for
//! bit, and fails where it fails, with its message: an index outside its axis is an error
//! naming the graph node of the step, never a read or write out of bounds. Large outputs are split over the workers by rows of
//! the outermost output dimension ([`on_row_ranges`]), which returns the error of the lowest
//! rows, so the index reported is always the first bad one in row-major order, as the
//! interpreter reports it. `scatter_add` adds into each output element in the interpreter's
//! order (the source's row-major order): a split along a dimension other than the scattered
//! axis gives each task the output rows its source rows add into, and a scatter along the
//! outermost axis runs on one thread.
//!
//! Operands are dense and row-major. A rank below 2 is widened with trailing size-1 axes
//! first, which changes no element's position and lets every routine walk lines (the last
//! axis) of rows (the first).

use super::pool::{on_row_ranges, ExecError};
use crate::error::{EvalErrorKind, EvalOrigin};
use smallvec::SmallVec;
use std::ops::Range;
use tenjit_ir::kernel::OpStep;
use tenjit_ir::{Data, Element, Op};

/// Dimensions, strides or a multi-index (inline up to rank 4).
type Dims = SmallVec<[usize; 4]>;

/// Runs `$body` with `$o` bound to `$out`'s elements, whatever their type.
macro_rules! with_out {
    ($out:expr, $o:ident => $body:expr) => {
        match $out {
            Data::Bool($o) => $body,
            Data::I32($o) => $body,
            Data::I64($o) => $body,
            Data::F16($o) => $body,
            Data::BF16($o) => $body,
            Data::F32($o) => $body,
            Data::F64($o) => $body,
        }
    };
}

/// A dense operand: its elements and its dimensions.
#[derive(Clone, Copy)]
pub(super) struct Operand<'a> {
    /// The elements, row-major.
    pub data: &'a Data,
    /// The dimensions.
    pub dims: &'a [usize],
}

/// Runs library step `step` on `args` (one per operand of the step), writing every element of
/// `out`, which has dimensions `out_dims`.
pub(super) fn run(
    step: &OpStep,
    args: &[Operand<'_>],
    out: &mut Data,
    out_dims: &[usize],
) -> Result<(), ExecError> {
    let arg = |i: usize| args.get(i).copied().ok_or_else(|| internal(step, "an operand is missing"));
    let fits = |data: &Data, dims: &[usize]| data.len() == dims.iter().product::<usize>();
    if !args.iter().all(|a| fits(a.data, a.dims)) || !fits(out, out_dims) {
        return Err(internal(step, "a buffer's length differs from its shape's"));
    }
    match &step.op {
        Op::Pad { lo, .. } => {
            let x = arg(0)?;
            with_out!(out, o => pad(step, slice(step, x)?, x.dims, lo, o, out_dims))
        }
        Op::Concat { axis } => {
            with_out!(out, o => {
                let parts = args.iter().map(|&a| Ok((slice(step, a)?, a.dims))).collect::<Result<Vec<_>, _>>()?;
                concat(&parts, *axis, o, out_dims)
            })
        }
        Op::Gather { axis } => {
            let (x, index) = (arg(0)?, arg(1)?);
            let size = axis_size(step, x, *axis)?;
            let bad = |at: BadIndex| out_of_range(step, "gather", at, *axis, size);
            with_out!(out, o => gather(slice(step, x)?, x.dims, *axis, slice(step, index)?, o, out_dims).map_err(bad))
        }
        Op::ScatterAdd { axis } => {
            let (base, index, src) = (arg(0)?, arg(1)?, arg(2)?);
            let size = axis_size(step, base, *axis)?;
            let bad = |at: BadIndex| out_of_range(step, "scatter_add", at, *axis, size);
            let index = slice(step, index)?;
            macro_rules! scatter {
                ($o:expr) => {
                    scatter_add(slice(step, base)?, *axis, index, slice(step, src)?, src.dims, $o, out_dims)
                        .map_err(bad)
                };
            }
            match out {
                Data::I32(o) => scatter!(o),
                Data::I64(o) => scatter!(o),
                Data::F16(o) => scatter!(o),
                Data::BF16(o) => scatter!(o),
                Data::F32(o) => scatter!(o),
                Data::F64(o) => scatter!(o),
                Data::Bool(_) => Err(internal(step, "a scatter_add of bools")),
            }
        }
        Op::Conv(c) => {
            let (a, b) = (arg(0)?, arg(1)?);
            super::conv::run(c, (a.data, a.dims), (b.data, b.dims), out)
        }
        Op::Pool(p) => {
            let (x, other) = (arg(0)?, arg(1)?);
            super::maxpool::run(p, (x.data, x.dims), (other.data, other.dims), out)
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
        | Op::Matmul
        | Op::Loop(_) => Err(internal(step, "not a library routine")),
    }
}

/// An inconsistency between a step and its buffers, which lowering excludes: our own bug.
fn internal(step: &OpStep, message: &str) -> ExecError {
    ExecError::internal(format!("{}: library routine bug: {message}", step.op.name()))
}

/// The elements of `a` as `T`, or an error if they are of another type.
fn slice<'a, T: Element>(step: &OpStep, a: Operand<'a>) -> Result<&'a [T], ExecError> {
    T::slice(a.data)
        .ok_or_else(|| internal(step, &format!("an operand is {}, not {}", a.data.dtype(), T::DTYPE)))
}

/// The size of `a`'s axis `axis`.
fn axis_size(step: &OpStep, a: Operand<'_>, axis: usize) -> Result<usize, ExecError> {
    a.dims.get(axis).copied().ok_or_else(|| internal(step, "the axis is beyond the operand's rank"))
}

/// An index outside its axis: the value met.
#[derive(Clone, Copy, Debug)]
struct BadIndex(i64);

/// A bad index met by `step`, worded as the interpreter and PyTorch word it, with the graph
/// node the step computes.
fn out_of_range(
    step: &OpStep,
    op: &'static str,
    BadIndex(index): BadIndex,
    axis: usize,
    size: usize,
) -> ExecError {
    ExecError {
        kind: EvalErrorKind::IndexOutOfRange,
        op: Some(op),
        message: crate::error::out_of_bounds(index, axis, size),
        origin: EvalOrigin { node: step.origin, step: Some(format!("library routine {op}")) },
    }
}

/// `k` as an index into an axis of `size`, if it lies in `0..size`.
fn checked_index(k: i64, size: usize) -> Result<usize, BadIndex> {
    usize::try_from(k).ok().filter(|&k| k < size).ok_or(BadIndex(k))
}

/// `dims` with trailing size-1 axes added up to rank 2.
fn widen(dims: &[usize]) -> Dims {
    let mut d = Dims::from_slice(dims);
    while d.len() < 2 {
        d.push(1);
    }
    d
}

/// Dense row-major strides of `dims`.
fn strides(dims: &[usize]) -> Dims {
    let mut s = Dims::from_elem(0, dims.len());
    let mut acc = 1;
    for d in (0..dims.len()).rev() {
        s[d] = acc;
        acc *= dims[d];
    }
    s
}

/// Steps `idx` to the next multi-index of `dims` in row-major order (wrapping to zeros after
/// the last).
fn advance(idx: &mut [usize], dims: &[usize]) {
    for d in (0..idx.len()).rev() {
        idx[d] += 1;
        if idx[d] < dims[d] {
            return;
        }
        idx[d] = 0;
    }
}

/// Calls `line(n, idx, elems)` for each line (run along the last axis) of rows `rows` of an
/// output with dimensions `dims` (rank 2 or more), whose elements are `part`: `n` counts the
/// lines from the first of `rows`, `idx` is the line's index over all axes but the last.
fn for_lines<T, E>(
    dims: &[usize],
    rows: Range<usize>,
    part: &mut [T],
    mut line: impl FnMut(usize, &[usize], &mut [T]) -> Result<(), E>,
) -> Result<(), E> {
    let (outer, len) = (&dims[..dims.len() - 1], dims[dims.len() - 1]);
    if part.is_empty() {
        return Ok(());
    }
    let mut idx = Dims::from_elem(0, outer.len());
    idx[0] = rows.start;
    for (n, elems) in part.chunks_mut(len).enumerate() {
        line(n, &idx, elems)?;
        advance(&mut idx, outer);
    }
    Ok(())
}

/// `pad`: zeros around `x`, `lo[d]` of them before axis `d`.
fn pad<T: Element + Default>(
    step: &OpStep,
    x: &[T],
    x_dims: &[usize],
    lo: &[usize],
    out: &mut [T],
    out_dims: &[usize],
) -> Result<(), ExecError> {
    if lo.len() != x_dims.len() || x_dims.len() != out_dims.len() {
        return Err(internal(step, "the padding does not match the operand's rank"));
    }
    let (xd, od) = (widen(x_dims), widen(out_dims));
    let mut lo = Dims::from_slice(lo);
    lo.resize(od.len(), 0);
    let (xs, last) = (strides(&xd), od.len() - 1);
    let (lo_last, x_len) = (lo[last], xd[last]);
    on_row_ranges(out, od[0], out.len(), |rows, part| {
        for_lines(&od, rows, part, |_, idx, line| {
            let inside = (0..last).all(|d| idx[d] >= lo[d] && idx[d] - lo[d] < xd[d]);
            if !inside {
                line.fill(T::default());
                return Ok(());
            }
            let start: usize = (0..last).map(|d| (idx[d] - lo[d]) * xs[d]).sum();
            line[..lo_last].fill(T::default());
            line[lo_last..lo_last + x_len].copy_from_slice(&x[start..start + x_len]);
            line[lo_last + x_len..].fill(T::default());
            Ok(())
        })
    })
}

/// `concat` along `axis`: for each index of the axes before it, each part's block in turn.
fn concat<T: Element>(
    parts: &[(&[T], &[usize])],
    axis: usize,
    out: &mut [T],
    out_dims: &[usize],
) -> Result<(), ExecError> {
    // The output is `outer` blocks of `width` elements; block `o` is block `o` of each part
    // in turn (`widths[p]` elements of part `p`, after those of the parts before it).
    let outer: usize = out_dims[..axis].iter().product();
    let width: usize = out_dims[axis..].iter().product();
    let widths: Vec<usize> = parts.iter().map(|(_, dims)| dims[axis..].iter().product()).collect();
    // Columns `c0..c0 + dst.len()` of block `o`.
    let fill = |o: usize, c0: usize, dst: &mut [T]| {
        let c1 = c0 + dst.len();
        let mut start = 0;
        for ((data, _), &w) in parts.iter().zip(&widths) {
            let (a, b) = (start.max(c0), (start + w).min(c1));
            if a < b {
                let src = o * w + (a - start);
                dst[a - c0..b - c0].copy_from_slice(&data[src..src + (b - a)]);
            }
            start += w;
        }
    };
    if out.is_empty() {
        return Ok(());
    }
    let rows = out_dims[0];
    let row_len = out.len() / rows;
    on_row_ranges(out, rows, out.len(), |rows, part| {
        if axis == 0 {
            // One block: the rows are a range of its columns.
            fill(0, rows.start * row_len, part);
        } else {
            // Each row is `outer / out_dims[0]` whole blocks.
            let per_row = outer / out_dims[0];
            for (k, block) in part.chunks_mut(width).enumerate() {
                fill(rows.start * per_row + k, 0, block);
            }
        }
        Ok(())
    })
}

/// `gather` along `axis`: output element `idx` is `x`'s element `idx` with its `axis`
/// coordinate replaced by `index[idx]`.
fn gather<T: Element>(
    x: &[T],
    x_dims: &[usize],
    axis: usize,
    index: &[i64],
    out: &mut [T],
    out_dims: &[usize],
) -> Result<(), BadIndex> {
    let (xd, od) = (widen(x_dims), widen(out_dims));
    let (xs, last) = (strides(&xd), od.len() - 1);
    let (size, stride) = (xd[axis], xs[axis]);
    let row_len = od[1..].iter().product::<usize>();
    on_row_ranges(out, od[0], out.len(), |rows, part| {
        let first = rows.start * row_len;
        for_lines(&od, rows, part, |n, idx, line| {
            // Where the line starts in `x`, but for the indexed axis.
            let base: usize = (0..last).filter(|&d| d != axis).map(|d| idx[d] * xs[d]).sum();
            let at = first + n * line.len();
            let ks = &index[at..at + line.len()];
            if axis == last {
                for (o, &k) in line.iter_mut().zip(ks) {
                    *o = x[base + checked_index(k, size)?];
                }
            } else {
                for (j, (o, &k)) in line.iter_mut().zip(ks).enumerate() {
                    *o = x[base + j + checked_index(k, size)? * stride];
                }
            }
            Ok(())
        })
    })
}

/// Elements `scatter_add` can add: as the interpreter adds them (integers wrap).
trait Accumulate: Element {
    fn accumulate(self, x: Self) -> Self;
}

impl Accumulate for i32 {
    fn accumulate(self, x: i32) -> i32 {
        self.wrapping_add(x)
    }
}

impl Accumulate for i64 {
    fn accumulate(self, x: i64) -> i64 {
        self.wrapping_add(x)
    }
}

/// The 16-bit floats add in `f32` and round the sum to their format, as the interpreter does.
impl Accumulate for half::f16 {
    fn accumulate(self, x: half::f16) -> half::f16 {
        half::f16::from_f32(self.to_f32() + x.to_f32())
    }
}

impl Accumulate for half::bf16 {
    fn accumulate(self, x: half::bf16) -> half::bf16 {
        half::bf16::from_f32(self.to_f32() + x.to_f32())
    }
}

impl Accumulate for f32 {
    fn accumulate(self, x: f32) -> f32 {
        self + x
    }
}

impl Accumulate for f64 {
    fn accumulate(self, x: f64) -> f64 {
        self + x
    }
}

/// `scatter_add` along `axis`: `base`, with each `src` element (row-major) added at its own
/// index but for the `axis` coordinate, which `index` gives.
fn scatter_add<T: Accumulate>(
    base: &[T],
    axis: usize,
    index: &[i64],
    src: &[T],
    src_dims: &[usize],
    out: &mut [T],
    out_dims: &[usize],
) -> Result<(), BadIndex> {
    let (sd, od) = (widen(src_dims), widen(out_dims));
    let os = strides(&od);
    let (size, last) = (od[axis], sd.len() - 1);
    // Adds source rows `rows` into `part`, the output from row `part_row` on, line by line
    // (along the last axis) in row-major order.
    let (line_len, lines_per_row) = (sd[last], sd[1..last].iter().product::<usize>());
    let add_rows = |rows: Range<usize>, part: &mut [T], part_row: usize| -> Result<(), BadIndex> {
        if line_len == 0 || rows.is_empty() {
            return Ok(());
        }
        let mut idx = Dims::from_elem(0, last);
        idx[0] = rows.start;
        for line in rows.start * lines_per_row..rows.end * lines_per_row {
            let at = line * line_len;
            // Where the line lands in `part`, but for the scattered axis.
            let start: usize = (0..last).filter(|&d| d != axis).map(|d| idx[d] * os[d]).sum();
            let start = start - part_row * os[0];
            for j in 0..line_len {
                let k = checked_index(index[at + j], size)?;
                let o = if axis == last { start + k } else { start + j + k * os[axis] };
                part[o] = part[o].accumulate(src[at + j]);
            }
            advance(&mut idx, &sd[..last]);
        }
        Ok(())
    };
    if axis == 0 {
        out.copy_from_slice(base);
        return add_rows(0..sd[0], out, 0);
    }
    let work = out.len() + src.len();
    on_row_ranges(out, od[0], work, |rows, part| {
        part.copy_from_slice(&base[rows.start * os[0]..rows.end * os[0]]);
        let src_rows = rows.start.min(sd[0])..rows.end.min(sd[0]);
        add_rows(src_rows, part, rows.start)
    })
}
