//! Two-dimensional convolution, as `F.conv2d` and `nn.Conv2d`: the IR's `conv2d` op (whose
//! gradients are its transposes `conv2d_input` and `conv2d_weight`, see
//! `tenjit_ir::ops::ConvOp`), with the bias added as an elementwise epilogue. The windowing
//! helpers here (padding, strided windows) serve the average pool.

use super::Module;
use crate::error::{Error, OpErrorKind, OrPanic, Result};
use crate::tensor::Tensor;
use crate::SliceItem;
use tenjit_ir::ops::{ConvGeometry, ConvOp, ConvRole, Dims};
use tenjit_ir::{DType, Op};

/// The geometry of a convolution, as the keyword arguments of `F.conv2d`: each pair is
/// `(height, width)`.
///
/// ```
/// use tenjit::nn::Conv2dOptions;
/// let opts = Conv2dOptions { padding: [1, 1], ..Default::default() };
/// assert_eq!((opts.stride, opts.dilation, opts.groups), ([1, 1], [1, 1], 1));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dOptions {
    /// The step between windows.
    pub stride: [usize; 2],
    /// Zeros added on each side of the input.
    pub padding: [usize; 2],
    /// The spacing between the kernel's taps.
    pub dilation: [usize; 2],
    /// The number of blocked connections from input channels to output channels.
    pub groups: usize,
}

impl Default for Conv2dOptions {
    fn default() -> Conv2dOptions {
        Conv2dOptions { stride: [1, 1], padding: [0, 0], dilation: [1, 1], groups: 1 }
    }
}

/// The output size of a windowed op along one dimension of input size `size`, or an error
/// naming `op` when the (dilated) kernel does not fit in the padded input.
pub(super) fn out_size(
    op: &'static str,
    size: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
) -> Result<usize> {
    let padded = size + 2 * padding;
    let span = dilation * (kernel - 1) + 1;
    if span > padded {
        return Err(Error::op_of(
            OpErrorKind::Shape,
            op,
            format!(
                "kernel size can't be greater than actual input size: the padded input is {padded} but the (dilated) kernel spans {span}"
            ),
        ));
    }
    Ok((padded - span) / stride + 1)
}

/// Checks that every entry of a pair is positive.
pub(super) fn positive(op: &'static str, what: &str, pair: [usize; 2]) -> Result<()> {
    if pair.contains(&0) {
        return Err(Error::op_of(
            OpErrorKind::Argument,
            op,
            format!("{what} must be greater than zero, got {pair:?}"),
        ));
    }
    Ok(())
}

/// Checks that `x` is a 4-D float tensor `[N, C, H, W]`.
pub(super) fn require_nchw(op: &'static str, x: &Tensor) -> Result<()> {
    super::require_float(op, x)?;
    if x.dim() != 4 {
        return Err(Error::op_of(
            OpErrorKind::Shape,
            op,
            format!("expected a 4-D input [N, C, H, W], got an input of shape {}", x.ir_shape()),
        ));
    }
    Ok(())
}

/// Zero-pads the last two dimensions of `x` by `padding` on each side.
pub(super) fn pad_spatial(x: &Tensor, padding: [usize; 2]) -> Result<Tensor> {
    if padding == [0, 0] {
        return Ok(x.clone());
    }
    let mut lo: Dims = std::iter::repeat_n(0, x.dim()).collect();
    let rank = x.dim();
    lo[rank - 2] = padding[0];
    lo[rank - 1] = padding[1];
    Tensor::from_op(Op::Pad { lo: lo.clone(), hi: lo }, &[x])
}

/// The `kernel[0]·kernel[1]` windows of a padded `x` whose last two dimensions are spatial,
/// row-major over the kernel's taps: each the `[..., out[0], out[1]]` slice starting at the
/// tap's (dilated) offset and stepping by `stride`.
pub(super) fn windows(
    x: &Tensor,
    kernel: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
    out: [usize; 2],
) -> Result<Vec<Tensor>> {
    let full = SliceItem::Range { start: None, end: None, step: 1 };
    let range = |tap: usize, d: usize| {
        let start = (tap * dilation[d]) as isize;
        let end = start + ((out[d] - 1) * stride[d] + 1) as isize;
        SliceItem::Range { start: Some(start), end: Some(end), step: stride[d] as isize }
    };
    let mut taps = Vec::with_capacity(kernel[0] * kernel[1]);
    for i in 0..kernel[0] {
        for j in 0..kernel[1] {
            let mut index = vec![full; x.dim() - 2];
            index.extend([range(i, 0), range(j, 1)]);
            taps.push(x.try_i(index)?);
        }
    }
    Ok(taps)
}

/// A 2-D convolution (cross-correlation, as torch's) of `input` `[N, C, H, W]` with `weight`
/// `[O, C/groups, kH, kW]` plus an optional `bias` `[O]`, as `F.conv2d`: the result is
/// `[N, O, OH, OW]` with `OH = (H + 2·padding - dilation·(kH - 1) - 1) / stride + 1` (and
/// `OW` alike).
///
/// ```
/// use tenjit::prelude::*;
/// use tenjit::nn::{self, Conv2dOptions};
/// let x = Tensor::arange(16).to_dtype(DType::F32).reshape([1, 1, 4, 4]);
/// let w = Tensor::ones([1, 1, 2, 2]);
/// let y = nn::conv2d(&x, &w, None, Conv2dOptions { stride: [2, 2], ..Default::default() });
/// assert_eq!(y.to_vec::<f32>(), vec![10.0, 18.0, 42.0, 50.0]);
/// ```
#[track_caller]
pub fn conv2d(input: &Tensor, weight: &Tensor, bias: Option<&Tensor>, options: Conv2dOptions) -> Tensor {
    try_conv2d(input, weight, bias, options).or_panic()
}

/// [`conv2d`] as a `Result`: fails when the input or weight is not 4-D, the channels do not
/// divide into the groups or match the weight, the bias is not `[O]`, an option is zero or
/// the kernel does not fit in the padded input.
#[track_caller]
pub fn try_conv2d(
    input: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    options: Conv2dOptions,
) -> Result<Tensor> {
    const OP: &str = "conv2d";
    let Conv2dOptions { stride, padding, dilation, groups } = options;
    require_nchw(OP, input)?;
    if weight.dim() != 4 {
        return Err(Error::op_of(
            OpErrorKind::Shape,
            OP,
            format!(
                "expected a 4-D weight [out_channels, in_channels/groups, kH, kW], got a weight of shape {}",
                weight.ir_shape()
            ),
        ));
    }
    positive(OP, "stride", stride)?;
    positive(OP, "dilation", dilation)?;
    if groups == 0 {
        return Err(Error::op_of(OpErrorKind::Argument, OP, "groups must be greater than zero"));
    }
    let (c, h, w) = (input.shape()[1], input.shape()[2], input.shape()[3]);
    let (o, cg, kh, kw) = (weight.shape()[0], weight.shape()[1], weight.shape()[2], weight.shape()[3]);
    if !c.is_multiple_of(groups) || !o.is_multiple_of(groups) {
        return Err(Error::op_of(
            OpErrorKind::Shape,
            OP,
            format!("in_channels ({c}) and out_channels ({o}) must both be divisible by groups ({groups})"),
        ));
    }
    if cg * groups != c {
        return Err(Error::op_of(
            OpErrorKind::Shape,
            OP,
            format!(
                "given groups={groups}, weight of size {:?}, expected input {:?} to have {} channels, but got {c} channels instead",
                weight.shape(),
                input.shape(),
                cg * groups
            ),
        ));
    }
    if kh == 0 || kw == 0 {
        return Err(Error::op_of(
            OpErrorKind::Shape,
            OP,
            format!("the kernel must not be empty, got a weight of shape {}", weight.ir_shape()),
        ));
    }
    if let Some(b) = bias {
        if b.shape() != [o] {
            return Err(Error::op_of(
                OpErrorKind::Shape,
                OP,
                format!("the bias must be of shape [{o}] (out_channels), got {}", b.ir_shape()),
            ));
        }
    }
    out_size(OP, h, kh, stride[0], padding[0], dilation[0])?;
    out_size(OP, w, kw, stride[1], padding[1], dilation[1])?;
    let geometry = ConvGeometry { stride, padding, dilation, groups };
    let y = Tensor::from_op(Op::Conv(ConvOp { role: ConvRole::Forward, geometry }), &[input, weight])?;
    match bias {
        Some(b) => y.try_add(&b.try_reshape([1, o as isize, 1, 1])?),
        None => Ok(y),
    }
}

/// A 2-D convolution layer, as `torch.nn.Conv2d`: `weight` `[out, in/groups, kH, kW]` and
/// `bias` `[out]`, initialized as torch's (`kaiming_uniform_(a=sqrt(5))`, which is
/// `U(-1/sqrt(fan_in), 1/sqrt(fan_in))` with `fan_in = in/groups·kH·kW`, and the same range
/// for the bias).
///
/// ```
/// use tenjit::prelude::*;
/// use tenjit::nn::{Conv2d, Conv2dOptions, Module};
/// tenjit::manual_seed(0);
/// let conv = Conv2d::new(3, 8, [3, 3], Conv2dOptions { padding: [1, 1], ..Default::default() });
/// assert_eq!(conv.forward(&Tensor::randn([2, 3, 5, 5])).shape(), &[2, 8, 5, 5]);
/// let bound = 1.0 / 27f32.sqrt();
/// assert!(conv.weight.to_vec::<f32>().iter().all(|w| w.abs() <= bound));
/// ```
#[derive(Clone, Debug)]
pub struct Conv2d {
    /// The kernel, of shape `[out_channels, in_channels/groups, kH, kW]`; requires grad.
    pub weight: Tensor,
    /// The bias, of shape `[out_channels]`, if the layer has one; requires grad.
    pub bias: Option<Tensor>,
    /// Stride, padding, dilation and groups.
    pub options: Conv2dOptions,
}

impl Conv2d {
    /// `nn.Conv2d(in_channels, out_channels, kernel_size, ...)` with a bias and `f32`
    /// parameters. Panics if the channels do not divide into `options.groups`.
    #[track_caller]
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel: [usize; 2],
        options: Conv2dOptions,
    ) -> Conv2d {
        Conv2d::with_options(in_channels, out_channels, kernel, options, true, DType::F32)
    }

    /// [`Conv2d::new`] with or without a bias and with parameters of a float `dtype`.
    #[track_caller]
    pub fn with_options(
        in_channels: usize,
        out_channels: usize,
        kernel: [usize; 2],
        options: Conv2dOptions,
        bias: bool,
        dtype: DType,
    ) -> Conv2d {
        let groups = options.groups;
        if !dtype.is_float()
            || groups == 0
            || !in_channels.is_multiple_of(groups)
            || !out_channels.is_multiple_of(groups)
        {
            panic!(
                "{}",
                Error::op_of(
                    OpErrorKind::Argument,
                    "Conv2d",
                    format!(
                        "needs float parameters and channels divisible by groups, got {dtype}, in_channels={in_channels}, out_channels={out_channels}, groups={groups}"
                    )
                )
            );
        }
        let fan_in = in_channels / groups * kernel[0] * kernel[1];
        let bound = if fan_in == 0 { 0.0 } else { 1.0 / (fan_in as f64).sqrt() };
        let uniform =
            |shape: Vec<usize>| (Tensor::full_dtype(shape, 0, dtype).rand_like() * 2.0 - 1.0) * bound;
        let weight = uniform(vec![out_channels, in_channels / groups, kernel[0], kernel[1]]);
        let bias = bias.then(|| uniform(vec![out_channels]));
        let layer = Conv2d::from_tensors(weight, bias, options);
        crate::realize(&layer.parameters());
        layer
    }

    /// A layer with the given parameters, which are marked as requiring grad.
    pub fn from_tensors(weight: Tensor, bias: Option<Tensor>, options: Conv2dOptions) -> Conv2d {
        let weight = weight.detach().requires_grad_();
        let bias = bias.map(|b| b.detach().requires_grad_());
        Conv2d { weight, bias, options }
    }
}

impl Module for Conv2d {
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        conv2d(x, &self.weight, self.bias.as_ref(), self.options)
    }

    fn parameters(&self) -> Vec<&Tensor> {
        std::iter::once(&self.weight).chain(self.bias.as_ref()).collect()
    }

    fn parameters_mut(&mut self) -> Vec<&mut Tensor> {
        std::iter::once(&mut self.weight).chain(self.bias.as_mut()).collect()
    }

    fn named_parameters(&self) -> Vec<(String, &Tensor)> {
        super::weight_and_bias(&self.weight, self.bias.as_ref())
    }

    fn named_parameters_mut(&mut self) -> Vec<(String, &mut Tensor)> {
        super::weight_and_bias(&mut self.weight, self.bias.as_mut())
    }
}
