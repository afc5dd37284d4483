//! Two-dimensional convolution as three primitive ops, as XLA and PyTorch have it rather than
//! as a composition of windows: `conv2d` (`F.conv2d`) and its two transposes,
//! `conv2d_input` and `conv2d_weight` (`torch.nn.grad.conv2d_input` / `conv2d_weight`), the
//! products that carry a cotangent back to the input and to the weight. The three are one
//! bilinear form read three ways,
//!
//! ```text
//! ⟨conv2d(x, w), dy⟩ = ⟨x, conv2d_input(dy, w)⟩ = ⟨w, conv2d_weight(x, dy)⟩,
//! ```
//!
//! so the vector-Jacobian product of each is a pair of the others, and autodiff of any order
//! stays inside the three. All of them walk the same index space ([`ConvOp::for_each_tap`]):
//! every `(n, g, o, c, oh, ow, kh, kw)` whose input position `oh·stride − padding + kh·dilation`
//! (and its width twin) lies inside the input, pairing one input element, one weight element
//! and one output element.

use super::{OpError, OpErrorKind};
use crate::types::{Shape, TensorType};

/// The geometry every convolution op shares, as `F.conv2d`'s keyword arguments: each pair is
/// `(height, width)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvGeometry {
    /// The step between windows (each at least 1).
    pub stride: [usize; 2],
    /// Zeros added on each side of the input.
    pub padding: [usize; 2],
    /// The spacing between the kernel's taps (each at least 1).
    pub dilation: [usize; 2],
    /// The number of blocked connections from input to output channels (at least 1).
    pub groups: usize,
}

impl ConvGeometry {
    /// The output size along spatial axis `d` of an input of size `size` under a kernel of
    /// size `kernel`, or `None` when the dilated kernel does not fit in the padded input.
    pub fn out_size(&self, d: usize, size: usize, kernel: usize) -> Option<usize> {
        let padded = size.checked_add(self.padding[d].checked_mul(2)?)?;
        let span = self.dilation[d].checked_mul(kernel.checked_sub(1)?)?.checked_add(1)?;
        if span > padded || self.stride[d] == 0 {
            return None;
        }
        Some((padded - span) / self.stride[d] + 1)
    }
}

/// Which of the three products a convolution op computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConvRole {
    /// `conv2d(x [N, C, H, W], w [O, C/G, kH, kW]) -> y [N, O, OH, OW]`.
    Forward,
    /// `conv2d_input(dy [N, O, OH, OW], w [O, C/G, kH, kW]) -> dx [N, C, H, W]`: the input's
    /// spatial size, which the output's does not determine when the stride exceeds 1.
    Input {
        /// `(H, W)` of the input.
        size: [usize; 2],
    },
    /// `conv2d_weight(x [N, C, H, W], dy [N, O, OH, OW]) -> dw [O, C/G, kH, kW]`: the kernel's
    /// spatial size.
    Weight {
        /// `(kH, kW)` of the kernel.
        kernel: [usize; 2],
    },
}

/// A convolution op: its role and its geometry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvOp {
    /// Which product.
    pub role: ConvRole,
    /// Stride, padding, dilation, groups.
    pub geometry: ConvGeometry,
}

/// The sizes of one convolution: input `[n, c, h, w]`, weight `[o, c/groups, kh, kw]`, output
/// `[n, o, oh, ow]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvSizes {
    /// `[N, C, H, W]`.
    pub input: [usize; 4],
    /// `[O, C/G, kH, kW]`.
    pub weight: [usize; 4],
    /// `[N, O, OH, OW]`.
    pub output: [usize; 4],
}

fn four(s: &Shape) -> Option<[usize; 4]> {
    s.dims().try_into().ok()
}

impl ConvOp {
    /// The printed name: `conv2d`, `conv2d_input` or `conv2d_weight`.
    pub fn name(&self) -> &'static str {
        match self.role {
            ConvRole::Forward => "conv2d",
            ConvRole::Input { .. } => "conv2d_input",
            ConvRole::Weight { .. } => "conv2d_weight",
        }
    }

    /// The op's attributes as `(key, value)` text, in the order the text IR prints them:
    /// `stride`, `padding`, `dilation`, `groups`, then `size` or `kernel` by role.
    pub fn attrs(&self) -> Vec<(&'static str, String)> {
        let pair = |p: [usize; 2]| format!("[{},{}]", p[0], p[1]);
        let g = &self.geometry;
        let mut attrs = vec![
            ("stride", pair(g.stride)),
            ("padding", pair(g.padding)),
            ("dilation", pair(g.dilation)),
            ("groups", g.groups.to_string()),
        ];
        match self.role {
            ConvRole::Forward => {}
            ConvRole::Input { size } => attrs.push(("size", pair(size))),
            ConvRole::Weight { kernel } => attrs.push(("kernel", pair(kernel))),
        }
        attrs
    }

    /// One op of each role with default geometry: the parser's prototypes.
    pub fn prototypes() -> [ConvOp; 3] {
        let geometry = ConvGeometry { stride: [1, 1], padding: [0, 0], dilation: [1, 1], groups: 1 };
        [ConvRole::Forward, ConvRole::Input { size: [0, 0] }, ConvRole::Weight { kernel: [0, 0] }]
            .map(|role| ConvOp { role, geometry })
    }

    /// The input, weight and output sizes for operands of these shapes, or an error naming
    /// what does not fit. The operands are `(x, w)`, `(dy, w)` or `(x, dy)` by role.
    pub fn sizes(&self, a: &Shape, b: &Shape) -> Result<ConvSizes, OpError> {
        let op = self.name();
        let err = |kind: OpErrorKind, message: String| OpError { op, kind, message };
        let g = &self.geometry;
        if g.stride.contains(&0) || g.dilation.contains(&0) || g.groups == 0 {
            return Err(err(
                OpErrorKind::Argument,
                format!(
                    "stride {:?}, dilation {:?} and groups {} must be at least 1",
                    g.stride, g.dilation, g.groups
                ),
            ));
        }
        let (Some(a4), Some(b4)) = (four(a), four(b)) else {
            return Err(err(OpErrorKind::Shape, format!("operands {a} and {b} must both be 4-D")));
        };
        let (input, weight, output) = match self.role {
            ConvRole::Forward => (Some(a4), b4, None),
            ConvRole::Input { size } => {
                let (dy, w) = (a4, b4);
                (w[1].checked_mul(g.groups).map(|c| [dy[0], c, size[0], size[1]]), w, Some(dy))
            }
            ConvRole::Weight { kernel } => {
                let (x, dy) = (a4, b4);
                (Some(x), [dy[1], x[1] / g.groups, kernel[0], kernel[1]], Some(dy))
            }
        };
        let input = input.ok_or_else(|| err(OpErrorKind::Size, "the channel count overflows".into()))?;
        let [n, c, h, w] = input;
        let [o, cg, kh, kw] = weight;
        if c % g.groups != 0 || o % g.groups != 0 || cg.checked_mul(g.groups) != Some(c) {
            return Err(err(
                OpErrorKind::Shape,
                format!(
                    "input channels {c} and output channels {o} must be divisible by groups {}, with {} weight channels per group (got weight {:?})",
                    g.groups,
                    c / g.groups,
                    weight
                ),
            ));
        }
        if kh == 0 || kw == 0 {
            return Err(err(OpErrorKind::Shape, format!("the kernel {:?} must not be empty", [kh, kw])));
        }
        let (Some(oh), Some(ow)) = (g.out_size(0, h, kh), g.out_size(1, w, kw)) else {
            return Err(err(
                OpErrorKind::Shape,
                format!(
                    "the kernel {:?} (dilation {:?}) does not fit the input {:?} padded by {:?}",
                    [kh, kw],
                    g.dilation,
                    [h, w],
                    g.padding
                ),
            ));
        };
        let want = [n, o, oh, ow];
        if let Some(dy) = output {
            if dy != want {
                return Err(err(
                    OpErrorKind::Shape,
                    format!("the output gradient is {dy:?} but input {input:?} and weight {weight:?} give {want:?}"),
                ));
            }
        }
        Ok(ConvSizes { input, weight, output: want })
    }

    /// The type rule: both operands of one float dtype, shapes as [`ConvOp::sizes`] checks.
    pub fn infer(&self, a: &TensorType, b: &TensorType) -> Result<TensorType, OpError> {
        if a.dtype != b.dtype || !a.dtype.is_float() {
            return Err(OpError {
                op: self.name(),
                kind: OpErrorKind::DType,
                message: format!("operands {a} and {b} must be of one float dtype"),
            });
        }
        let s = self.sizes(&a.shape, &b.shape)?;
        let dims = match self.role {
            ConvRole::Forward => s.output,
            ConvRole::Input { .. } => s.input,
            ConvRole::Weight { .. } => s.weight,
        };
        Ok(TensorType::new(a.dtype, Shape::from(dims.to_vec())))
    }

    /// Calls `f(x, w, y)` with the flat row-major indices of the input, weight and output
    /// elements of every term of the convolution sum, output element by output element
    /// (row-major), and within one in `(c, kh, kw)` order.
    pub fn for_each_tap(&self, s: &ConvSizes, mut f: impl FnMut(usize, usize, usize)) {
        let g = &self.geometry;
        let [n, c, h, w] = s.input;
        let [o, cg, kh, kw] = s.weight;
        let [_, _, oh, ow] = s.output;
        let og = o / g.groups;
        let mut y = 0;
        for b in 0..n {
            for oc in 0..o {
                let group = oc / og;
                for i in 0..oh {
                    for j in 0..ow {
                        for ci in 0..cg {
                            let ch = group * cg + ci;
                            for p in 0..kh {
                                let Some(ih) =
                                    (i * g.stride[0] + p * g.dilation[0]).checked_sub(g.padding[0])
                                else {
                                    continue;
                                };
                                if ih >= h {
                                    continue;
                                }
                                for q in 0..kw {
                                    let Some(iw) =
                                        (j * g.stride[1] + q * g.dilation[1]).checked_sub(g.padding[1])
                                    else {
                                        continue;
                                    };
                                    if iw >= w {
                                        continue;
                                    }
                                    let xi = ((b * c + ch) * h + ih) * w + iw;
                                    let wi = ((oc * cg + ci) * kh + p) * kw + q;
                                    f(xi, wi, y);
                                }
                            }
                        }
                        y += 1;
                    }
                }
            }
        }
    }

    /// The reference product in `f64`: `a` and `b` are the operands' elements (row-major, as
    /// [`ConvOp::sizes`] describes them), the result the elements of the op's result, each a
    /// sum of `f64` products in [`ConvOp::for_each_tap`]'s order, for the caller to round once.
    pub fn eval_f64(&self, s: &ConvSizes, a: &[f64], b: &[f64]) -> Vec<f64> {
        let len = |d: [usize; 4]| d.iter().product::<usize>();
        match self.role {
            ConvRole::Forward => {
                let mut y = vec![0.0; len(s.output)];
                self.for_each_tap(s, |xi, wi, yi| y[yi] += a[xi] * b[wi]);
                y
            }
            ConvRole::Input { .. } => {
                let mut dx = vec![0.0; len(s.input)];
                self.for_each_tap(s, |xi, wi, yi| dx[xi] += a[yi] * b[wi]);
                dx
            }
            ConvRole::Weight { .. } => {
                let mut dw = vec![0.0; len(s.weight)];
                self.for_each_tap(s, |xi, wi, yi| dw[wi] += a[xi] * b[yi]);
                dw
            }
        }
    }
}
