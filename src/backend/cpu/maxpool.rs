//! Max pooling's library steps on the CPU (`max_pool2d_select`, `max_pool2d_scatter`): one
//! pass over each window, planes (`n, c`) split over the workers. Both compute what the
//! interpreter computes bit for bit: the selection copies an element, and the scatter adds a
//! plane's gradients in `f64` in row-major window order and rounds once, as it does.

use super::pool::{on_row_ranges, ExecError};
use tenjit_ir::ops::{PoolOp, PoolRole};
use tenjit_ir::{Data, Shape};

/// A float element read as `f64` and rounded back as the interpreter rounds (16-bit formats
/// through `f32`), with the key that orders elements as the pool chooses them.
pub(super) trait Elem: Copy + Default + Send + Sync {
    fn wide(self) -> f64;
    fn narrow(v: f64) -> Self;
    /// An integer whose order is the pool's: any NaN above everything (all NaNs equal), then
    /// the numbers in order with `+0` above `-0`.
    fn key(self) -> u64;
}

/// [`Elem::key`] of an `f64`: the bits made monotonic (negatives flipped, positives offset).
fn key64(v: f64) -> u64 {
    let b = v.to_bits();
    let ordered = if b >> 63 == 1 { !b } else { b | 1 << 63 };
    if v.is_nan() {
        u64::MAX
    } else {
        ordered
    }
}

/// [`Elem::key`] of an `f32`, as [`key64`] on 32 bits.
fn key32(v: f32) -> u64 {
    let b = v.to_bits();
    let ordered = if b >> 31 == 1 { !b } else { b | 1 << 31 };
    if v.is_nan() {
        u64::MAX
    } else {
        ordered as u64
    }
}

impl Elem for f32 {
    fn wide(self) -> f64 {
        self as f64
    }
    fn narrow(v: f64) -> f32 {
        v as f32
    }
    fn key(self) -> u64 {
        key32(self)
    }
}

impl Elem for f64 {
    fn wide(self) -> f64 {
        self
    }
    fn narrow(v: f64) -> f64 {
        v
    }
    fn key(self) -> u64 {
        key64(self)
    }
}

impl Elem for half::f16 {
    fn wide(self) -> f64 {
        self.to_f64()
    }
    fn narrow(v: f64) -> half::f16 {
        half::f16::from_f32(v as f32)
    }
    fn key(self) -> u64 {
        key32(self.to_f32())
    }
}

impl Elem for half::bf16 {
    fn wide(self) -> f64 {
        self.to_f64()
    }
    fn narrow(v: f64) -> half::bf16 {
        half::bf16::from_f32(v as f32)
    }
    fn key(self) -> u64 {
        key32(self.to_f32())
    }
}

/// Runs max-pool op `op` on `x` and the other operand (dense, of dimensions `x_dims` and
/// `other_dims`) into `out`.
pub(super) fn run(
    op: &PoolOp,
    (x, x_dims): (&Data, &[usize]),
    (other, other_dims): (&Data, &[usize]),
    out: &mut Data,
) -> Result<(), ExecError> {
    let bug = |m: String| ExecError::internal(format!("{}: library routine bug: {m}", op.name()));
    let sizes = op
        .sizes(&Shape::from(x_dims.to_vec()), &Shape::from(other_dims.to_vec()))
        .map_err(|e| bug(e.to_string()))?;
    match (x, other, out) {
        (Data::F32(x), Data::F32(t), Data::F32(o)) => pool(op, sizes, x, t, o, true),
        (Data::F64(x), Data::F64(t), Data::F64(o)) => pool(op, sizes, x, t, o, true),
        (Data::F16(x), Data::F16(t), Data::F16(o)) => pool(op, sizes, x, t, o, true),
        (Data::BF16(x), Data::BF16(t), Data::BF16(o)) => pool(op, sizes, x, t, o, true),
        _ => return Err(bug("operands of mixed or non-float dtypes".into())),
    }
    .map_err(bug)
}

/// [`run`] on dense slices on the calling thread: what a row group runs on a block of
/// images (`x_dims[0]` of them).
pub(super) fn run_slices<T: Elem>(
    op: &PoolOp,
    (x, x_dims): (&[T], &[usize]),
    (other, other_dims): (&[T], &[usize]),
    out: &mut [T],
) -> Result<(), ExecError> {
    let bug = |m: String| ExecError::internal(format!("{}: library routine bug: {m}", op.name()));
    let sizes = op
        .sizes(&Shape::from(x_dims.to_vec()), &Shape::from(other_dims.to_vec()))
        .map_err(|e| bug(e.to_string()))?;
    pool(op, sizes, x, other, out, false).map_err(bug)
}

fn pool<T: Elem>(
    op: &PoolOp,
    (input, output): ([usize; 4], [usize; 4]),
    x: &[T],
    other: &[T],
    out: &mut [T],
    parallel: bool,
) -> Result<(), String> {
    let [n, c, h, w] = input;
    let [_, _, oh, ow] = output;
    let (plane_in, plane_out) = (h * w, oh * ow);
    let (want_other, want_out) = match op.role {
        PoolRole::Select => (n * c * plane_in, n * c * plane_out),
        PoolRole::Scatter => (n * c * plane_out, n * c * plane_in),
    };
    if x.len() != n * c * plane_in || other.len() != want_other || out.len() != want_out {
        return Err(format!(
            "buffers of {}, {} and {} elements for sizes {input:?} -> {output:?}",
            x.len(),
            other.len(),
            out.len()
        ));
    }
    if out.is_empty() {
        return Ok(());
    }
    let planes = n * c;
    let work = planes * plane_out * op.geometry.kernel[0] * op.geometry.kernel[1];
    let windows = Windows::new(op, input, output);
    let task = |range: std::ops::Range<usize>, block: &mut [T]| -> Result<(), String> {
        let per = block.len() / range.len().max(1);
        let mut chosen = vec![0usize; plane_out];
        let mut acc = Vec::new();
        for (plane, o) in range.zip(block.chunks_mut(per.max(1))) {
            windows.first_maxima(&x[plane * plane_in..][..plane_in], &mut chosen);
            match op.role {
                PoolRole::Select => {
                    let t = &other[plane * plane_in..][..plane_in];
                    for (dst, &k) in o.iter_mut().zip(&chosen) {
                        *dst = t[k];
                    }
                }
                PoolRole::Scatter => {
                    acc.clear();
                    acc.resize(plane_in, 0.0f64);
                    let g = &other[plane * plane_out..][..plane_out];
                    for (&gv, &k) in g.iter().zip(&chosen) {
                        acc[k] += gv.wide();
                    }
                    for (dst, &v) in o.iter_mut().zip(&acc) {
                        *dst = T::narrow(v);
                    }
                }
            }
        }
        Ok(())
    };
    if parallel {
        on_row_ranges(out, planes, work, task)
    } else {
        task(0..planes, out)
    }
}

/// The windows of one plane, each clipped to the input once: row and column ranges of taps.
struct Windows {
    /// Per output row: the input rows `lo..hi` it covers.
    rows: Vec<(usize, usize)>,
    /// Per output column: the input columns `lo..hi` it covers.
    cols: Vec<(usize, usize)>,
    /// The input's width.
    w: usize,
}

impl Windows {
    fn new(op: &PoolOp, input: [usize; 4], output: [usize; 4]) -> Windows {
        let g = &op.geometry;
        let span = |d: usize, i: usize| {
            let start = i * g.stride[d];
            let lo = start.saturating_sub(g.padding[d]);
            let hi = (start + g.kernel[d]).saturating_sub(g.padding[d]).min(input[2 + d]);
            (lo, hi.max(lo))
        };
        Windows {
            rows: (0..output[2]).map(|i| span(0, i)).collect(),
            cols: (0..output[3]).map(|j| span(1, j)).collect(),
            w: input[3],
        }
    }

    /// The index in `x` (one plane) of each window's first maximum, row-major over the
    /// windows: the first of equal elements, a NaN above any number (the first NaN), `+0`
    /// above `-0`, as `PoolOp::first_max` defines it.
    fn first_maxima<T: Elem>(&self, x: &[T], chosen: &mut [usize]) {
        let mut out = chosen.iter_mut();
        for &(r0, r1) in &self.rows {
            for &(c0, c1) in &self.cols {
                // The first of the largest keys: only a strictly larger key replaces it.
                let mut best = r0 * self.w + c0;
                let mut bk = x[best].key();
                for r in r0..r1 {
                    let start = r * self.w + c0;
                    for (at, v) in (start..).zip(&x[start..start + (c1 - c0)]) {
                        let k = v.key();
                        best = if k > bk { at } else { best };
                        bk = bk.max(k);
                    }
                }
                if let Some(slot) = out.next() {
                    *slot = best;
                }
            }
        }
    }
}
