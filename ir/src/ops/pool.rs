//! Max pooling as two primitive ops, closed under differentiation as XLA's `reduce_window` and
//! `select_and_scatter` are:
//!
//! - `max_pool2d_select(x, t)`: for each window of `x` `[N, C, H, W]`, the element of `t`
//!   (same shape) at the window's first maximum; `max_pool2d(x)` is `max_pool2d_select(x, x)`;
//! - `max_pool2d_scatter(x, g)`: `g` `[N, C, OH, OW]` added, window by window in row-major
//!   order, at the first maximum of each window of `x`, into zeros of `x`'s shape.
//!
//! `x` only chooses positions, so neither op has a derivative with respect to it; the
//! derivative of `select` with respect to `t` is `scatter` and that of `scatter` with respect
//! to `g` is `select`. The first maximum is torch's: windows read row-major over the kernel's
//! taps, positions in the padding never chosen (torch pads with `-inf`), a NaN chosen over any
//! number (the first NaN), and of equal elements the first, except that `+0` is above `-0`
//! as in the `max` reduction (IEEE 754-2019 `maximum`), so that `max_pool2d_select(x, x)`
//! equals the maximum of each window, zeros' signs included.

use super::{OpError, OpErrorKind};
use crate::types::{Shape, TensorType};

/// The geometry of a max pool: each pair is `(height, width)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PoolGeometry {
    /// The window's size (each at least 1).
    pub kernel: [usize; 2],
    /// The step between windows (each at least 1).
    pub stride: [usize; 2],
    /// Positions added on each side, never chosen (each at most half the kernel).
    pub padding: [usize; 2],
}

/// Which of the two ops.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PoolRole {
    /// `max_pool2d_select(x, t) -> [N, C, OH, OW]`.
    Select,
    /// `max_pool2d_scatter(x, g) -> [N, C, H, W]`.
    Scatter,
}

/// A max-pool op: its role and geometry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PoolOp {
    /// Which op.
    pub role: PoolRole,
    /// Kernel, stride, padding.
    pub geometry: PoolGeometry,
}

impl PoolOp {
    /// The printed name: `max_pool2d_select` or `max_pool2d_scatter`.
    pub fn name(&self) -> &'static str {
        match self.role {
            PoolRole::Select => "max_pool2d_select",
            PoolRole::Scatter => "max_pool2d_scatter",
        }
    }

    /// The attributes as `(key, value)` text, in printed order: `kernel`, `stride`, `padding`.
    pub fn attrs(&self) -> Vec<(&'static str, String)> {
        let pair = |p: [usize; 2]| format!("[{},{}]", p[0], p[1]);
        let g = &self.geometry;
        vec![("kernel", pair(g.kernel)), ("stride", pair(g.stride)), ("padding", pair(g.padding))]
    }

    /// One op of each role with a 1×1 geometry: the parser's prototypes.
    pub fn prototypes() -> [PoolOp; 2] {
        let geometry = PoolGeometry { kernel: [1, 1], stride: [1, 1], padding: [0, 0] };
        [PoolRole::Select, PoolRole::Scatter].map(|role| PoolOp { role, geometry })
    }

    /// The input `[N, C, H, W]` and output `[N, C, OH, OW]` sizes for operands of these shapes,
    /// or an error naming what does not fit.
    pub fn sizes(&self, x: &Shape, other: &Shape) -> Result<([usize; 4], [usize; 4]), OpError> {
        let op = self.name();
        let err = |kind: OpErrorKind, message: String| OpError { op, kind, message };
        let g = &self.geometry;
        if g.kernel.contains(&0) || g.stride.contains(&0) {
            return Err(err(
                OpErrorKind::Argument,
                format!("kernel {:?} and stride {:?} must be at least 1", g.kernel, g.stride),
            ));
        }
        if g.padding[0] > g.kernel[0] / 2 || g.padding[1] > g.kernel[1] / 2 {
            return Err(err(
                OpErrorKind::Argument,
                format!("padding {:?} must be at most half the kernel {:?}", g.padding, g.kernel),
            ));
        }
        let Ok(input) = <[usize; 4]>::try_from(x.dims()) else {
            return Err(err(OpErrorKind::Shape, format!("the input {x} must be 4-D [N, C, H, W]")));
        };
        let out = |d: usize| {
            let padded = input[2 + d].checked_add(2 * g.padding[d])?;
            Some(padded.checked_sub(g.kernel[d])? / g.stride[d] + 1)
        };
        let (Some(oh), Some(ow)) = (out(0), out(1)) else {
            return Err(err(
                OpErrorKind::Shape,
                format!(
                    "the kernel {:?} does not fit the input {:?} padded by {:?}",
                    g.kernel,
                    &input[2..],
                    g.padding
                ),
            ));
        };
        let output = [input[0], input[1], oh, ow];
        let want = match self.role {
            PoolRole::Select => input,
            PoolRole::Scatter => output,
        };
        if other.dims() != want {
            let what = match self.role {
                PoolRole::Select => "the selected tensor",
                PoolRole::Scatter => "the scattered gradient",
            };
            return Err(err(OpErrorKind::Shape, format!("{what} is {other} but must be {want:?}")));
        }
        Ok((input, output))
    }

    /// The type rule: two operands of one float dtype, shapes as [`PoolOp::sizes`] checks.
    pub fn infer(&self, x: &TensorType, other: &TensorType) -> Result<TensorType, OpError> {
        if x.dtype != other.dtype || !x.dtype.is_float() {
            return Err(OpError {
                op: self.name(),
                kind: OpErrorKind::DType,
                message: format!("operands {x} and {other} must be of one float dtype"),
            });
        }
        let (input, output) = self.sizes(&x.shape, &other.shape)?;
        let dims = match self.role {
            PoolRole::Select => output,
            PoolRole::Scatter => input,
        };
        Ok(TensorType::new(x.dtype, Shape::from(dims.to_vec())))
    }

    /// The flat index in `x` (of dimensions `input`) of the first maximum of window `(i, j)` of
    /// plane `plane` (`n·C + c`), reading `x` through `at`.
    pub fn first_max(
        &self,
        input: [usize; 4],
        plane: usize,
        (i, j): (usize, usize),
        at: impl Fn(usize) -> f64,
    ) -> usize {
        let g = &self.geometry;
        let [_, _, h, w] = input;
        let mut best: Option<(usize, f64)> = None;
        for p in 0..g.kernel[0] {
            let Some(ih) = (i * g.stride[0] + p).checked_sub(g.padding[0]).filter(|&ih| ih < h) else {
                continue;
            };
            for q in 0..g.kernel[1] {
                let Some(iw) = (j * g.stride[1] + q).checked_sub(g.padding[1]).filter(|&iw| iw < w) else {
                    continue;
                };
                let k = (plane * h + ih) * w + iw;
                let v = at(k);
                let better = match best {
                    None => true,
                    // `+0` above `-0`, as the `max` reduction orders them.
                    Some((_, b)) => {
                        !b.is_nan()
                            && (v.is_nan()
                                || v > b
                                || (v == b && b.is_sign_negative() && !v.is_sign_negative()))
                    }
                };
                if better {
                    best = Some((k, v));
                }
            }
        }
        // A window always holds an input element: the padding is at most half the kernel.
        best.map_or(0, |(k, _)| k)
    }

    /// The reference op in `f64` for sizes `(input, output)` (of [`PoolOp::sizes`]) on the
    /// elements of `x` and of the other operand: each result element the chosen element of
    /// `t`, or the `f64` sum of the `g` elements scattered to it in row-major window order,
    /// for the caller to round once.
    pub fn eval_f64(&self, (input, output): ([usize; 4], [usize; 4]), x: &[f64], other: &[f64]) -> Vec<f64> {
        let [n, c, _, _] = input;
        let [_, _, oh, ow] = output;
        let mut out = match self.role {
            PoolRole::Select => Vec::with_capacity(n * c * oh * ow),
            PoolRole::Scatter => vec![0.0; x.len()],
        };
        let mut k = 0;
        for plane in 0..n * c {
            for i in 0..oh {
                for j in 0..ow {
                    let m = self.first_max(input, plane, (i, j), |at| x[at]);
                    match self.role {
                        PoolRole::Select => out.push(other[m]),
                        PoolRole::Scatter => out[m] += other[k],
                    }
                    k += 1;
                }
            }
        }
        out
    }
}
