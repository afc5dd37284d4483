//! Two-dimensional pooling, as `F.max_pool2d` and `F.avg_pool2d`. The max of an input that
//! needs a gradient is the IR's `max_pool2d_select` of the input by itself, whose gradient
//! (`max_pool2d_scatter`) goes to the first maximum of each window, as torch's; without one it
//! is a fused maximum over the windows. The average is composed: windows that tile the input
//! are reduced through a view, others summed from the convolution's strided windows.

use super::conv::{out_size, pad_spatial, positive, require_nchw, windows};
use crate::error::{Error, OpErrorKind, OrPanic, Result};
use crate::tensor::Tensor;
use tenjit_ir::ops::{PoolGeometry, PoolOp, PoolRole};
use tenjit_ir::{Op, ReduceOp, Shape};

/// Checks the pool's arguments and returns its output size `[OH, OW]`. As torch, padding may
/// be at most half the kernel, so that every window holds an element of the input.
fn geometry(
    op: &'static str,
    x: &Tensor,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
) -> Result<[usize; 2]> {
    require_nchw(op, x)?;
    positive(op, "kernel_size", kernel)?;
    positive(op, "stride", stride)?;
    if padding[0] > kernel[0] / 2 || padding[1] > kernel[1] / 2 {
        return Err(Error::op_of(
            OpErrorKind::Argument,
            op,
            format!("pad should be at most half of effective kernel size, but got pad={padding:?} and kernel_size={kernel:?}"),
        ));
    }
    let (h, w) = (x.shape()[2], x.shape()[3]);
    Ok([
        out_size(op, h, kernel[0], stride[0], padding[0], 1)?,
        out_size(op, w, kernel[1], stride[1], padding[1], 1)?,
    ])
}

/// The windows of a pool whose windows tile the input (stride equal to the kernel, no
/// padding: the common `avg_pool2d(x, 2)`), as `[N, C, OH, OW, kH, kW]` through views only (a
/// crop to whole tiles, a reshape and a permute); `None` for other pools. Reduced over the
/// last two axes, its gradient is elementwise over the input instead of a padded copy per tap.
fn tiles(
    x: &Tensor,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    out: [usize; 2],
) -> Result<Option<Tensor>> {
    if stride != kernel || padding != [0, 0] {
        return Ok(None);
    }
    let (n, c) = (x.shape()[0] as isize, x.shape()[1] as isize);
    let [kh, kw] = kernel.map(|k| k as isize);
    let [oh, ow] = out.map(|o| o as isize);
    let full = crate::SliceItem::Range { start: None, end: None, step: 1 };
    let crop = |end: isize| crate::SliceItem::Range { start: Some(0), end: Some(end), step: 1 };
    let cropped = x.try_i(vec![full, full, crop(oh * kh), crop(ow * kw)])?;
    let tiles = cropped.try_reshape([n, c, oh, kh, ow, kw])?.try_permute([0, 1, 2, 4, 3, 5])?;
    Ok(Some(tiles))
}

/// The maximum over each `kernel` window of `x` `[N, C, H, W]`, the windows `stride` apart on
/// an input padded with `-inf`, as `F.max_pool2d(x, kernel, stride, padding)` (torch's
/// default stride is the kernel). The gradient goes to the first maximum of each window.
///
/// ```
/// use tenjit::prelude::*;
/// let x = Tensor::arange(16).to_dtype(DType::F32).reshape([1, 1, 4, 4]);
/// let y = tenjit::nn::max_pool2d(&x, [2, 2], [2, 2], [0, 0]);
/// assert_eq!(y.to_vec::<f32>(), vec![5.0, 7.0, 13.0, 15.0]);
/// ```
#[track_caller]
pub fn max_pool2d(x: &Tensor, kernel: [usize; 2], stride: [usize; 2], padding: [usize; 2]) -> Tensor {
    try_max_pool2d(x, kernel, stride, padding).or_panic()
}

/// [`max_pool2d`] as a `Result`: fails when `x` is not a 4-D float tensor, the kernel or
/// stride has a zero, the padding is more than half the kernel or the kernel does not fit.
#[track_caller]
pub fn try_max_pool2d(
    x: &Tensor,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
) -> Result<Tensor> {
    let out = geometry("max_pool2d", x, kernel, stride, padding)?;
    if x.requires_grad() {
        let op = PoolOp { role: PoolRole::Select, geometry: PoolGeometry { kernel, stride, padding } };
        return Tensor::from_op(Op::Pool(op), &[x, x]);
    }
    // Without a gradient, the same values as one fused expression, which absorbs the producer
    // of `x` (a convolution's bias and activation): the maximum over the windows' axes where
    // they tile the input, else of the strided windows of `x` padded with `-inf`.
    if let Some(tiles) = tiles(x, kernel, stride, padding, out)? {
        return tiles.reduce(ReduceOp::Max, [4, 5].into_iter().collect(), false);
    }
    let xp = if padding == [0, 0] {
        x.clone()
    } else {
        let (h, w) = (x.shape()[2], x.shape()[3]);
        let inside = pad_spatial(&Tensor::ones(Shape::new(&[h, w])), padding)?.try_ne(0.0)?;
        Tensor::try_where(&inside, &pad_spatial(x, padding)?, f64::NEG_INFINITY)?
    };
    let taps = windows(&xp, kernel, stride, [1, 1], out)?;
    taps[1..].iter().try_fold(taps[0].clone(), |acc, tap| acc.try_maximum(tap))
}

/// The mean over each `kernel` window of `x` `[N, C, H, W]`, the windows `stride` apart on
/// an input zero-padded by `padding`, as `F.avg_pool2d(x, kernel, stride, padding,
/// count_include_pad=count_include_pad)`: with `count_include_pad` the padding's zeros count
/// in the divisor, without it only the input's elements do.
///
/// ```
/// use tenjit::prelude::*;
/// let x = Tensor::ones([1, 1, 2, 2]);
/// let y = tenjit::nn::avg_pool2d(&x, [2, 2], [1, 1], [1, 1], true);
/// assert_eq!(y.to_vec::<f32>(), vec![0.25, 0.5, 0.25, 0.5, 1.0, 0.5, 0.25, 0.5, 0.25]);
/// let y = tenjit::nn::avg_pool2d(&x, [2, 2], [1, 1], [1, 1], false);
/// assert_eq!(y.to_vec::<f32>(), vec![1.0; 9]);
/// ```
#[track_caller]
pub fn avg_pool2d(
    x: &Tensor,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    count_include_pad: bool,
) -> Tensor {
    try_avg_pool2d(x, kernel, stride, padding, count_include_pad).or_panic()
}

/// [`avg_pool2d`] as a `Result`, failing as [`try_max_pool2d`] does.
#[track_caller]
pub fn try_avg_pool2d(
    x: &Tensor,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    count_include_pad: bool,
) -> Result<Tensor> {
    let out = geometry("avg_pool2d", x, kernel, stride, padding)?;
    if let Some(tiles) = tiles(x, kernel, stride, padding, out)? {
        return tiles.try_mean_dim([4, 5], false);
    }
    let window_sum = |t: &Tensor| -> Result<Tensor> {
        // One elementwise sum of the taps' strided views.
        let taps = windows(&pad_spatial(t, padding)?, kernel, stride, [1, 1], out)?;
        taps[1..].iter().try_fold(taps[0].clone(), |acc, tap| acc.try_add(tap))
    };
    let sums = window_sum(x)?;
    if count_include_pad || padding == [0, 0] {
        return sums.try_div((kernel[0] * kernel[1]) as f64);
    }
    // The number of the input's elements in each window: the window sums of ones.
    let (h, w) = (x.shape()[2], x.shape()[3]);
    let counts = window_sum(&Tensor::full_dtype(Shape::new(&[h, w]), 1.0, x.dtype()))?;
    sums.try_div(&counts)
}
