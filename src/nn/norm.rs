//! Layer normalization, as `F.layer_norm` and `nn.LayerNorm`: the statistics over the last
//! dimensions and the normalization are row reductions and elementwise ops, which the
//! scheduler groups into one pass over each row (as it does softmax).

use super::Module;
use crate::error::{Error, OpErrorKind, OrPanic, Result};
use crate::tensor::Tensor;
use tenjit_ir::DType;

/// Normalizes `x` over its last `normalized_shape.len()` dimensions (which must equal
/// `normalized_shape`) to zero mean and unit variance (biased, as torch), then scales by
/// `weight` and shifts by `bias` when given: `F.layer_norm(x, normalized_shape, weight, bias,
/// eps)`.
///
/// ```
/// use tenjit::prelude::*;
/// let y = tenjit::nn::layer_norm(&tensor!([[1.0, 3.0]]), &[2], None, None, 1e-5);
/// let v = y.to_vec::<f32>();
/// assert!((v[0] + 1.0).abs() < 1e-4 && (v[1] - 1.0).abs() < 1e-4);
/// ```
#[track_caller]
pub fn layer_norm(
    x: &Tensor,
    normalized_shape: &[usize],
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
) -> Tensor {
    try_layer_norm(x, normalized_shape, weight, bias, eps).or_panic()
}

/// [`layer_norm`] as a `Result`.
#[track_caller]
pub fn try_layer_norm(
    x: &Tensor,
    normalized_shape: &[usize],
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
) -> Result<Tensor> {
    super::require_float("layer_norm", x)?;
    let k = normalized_shape.len();
    if k == 0 || !x.trailing_dims_are(normalized_shape) {
        return Err(Error::op_of(
            OpErrorKind::Shape,
            "layer_norm",
            format!(
                "given normalized_shape={normalized_shape:?}, expected input with shape [*, {}], but got input of size {:?}",
                normalized_shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "),
                x.shape()
            ),
        ));
    }
    for (name, p) in [("weight", weight), ("bias", bias)] {
        if let Some(p) = p {
            if p.shape() != normalized_shape {
                return Err(Error::op_of(
                    OpErrorKind::Shape,
                    "layer_norm",
                    format!("{name} has shape {:?} but normalized_shape is {normalized_shape:?}", p.shape()),
                ));
            }
        }
    }
    let dims: Vec<isize> = (x.dim() - k..x.dim()).map(|d| d as isize).collect();
    let mean = x.try_mean_dim(dims.clone(), true)?;
    let centered = x.try_sub(&mean)?;
    let var = centered.try_mul(&centered)?.try_mean_dim(dims, true)?;
    let mut y = centered.try_div(var.try_add(eps)?.sqrt())?;
    if let Some(w) = weight {
        y = y.try_mul(w)?;
    }
    if let Some(b) = bias {
        y = y.try_add(b)?;
    }
    Ok(y)
}

/// Layer normalization with a learned elementwise affine map, as `torch.nn.LayerNorm`:
/// `weight` starts at ones and `bias` at zeros.
///
/// ```
/// use tenjit::prelude::*;
/// use tenjit::nn::{LayerNorm, Module};
/// let ln = LayerNorm::new(&[4]);
/// assert_eq!(ln.forward(&Tensor::randn([2, 4])).shape(), &[2, 4]);
/// assert_eq!(ln.parameters().len(), 2);
/// ```
#[derive(Clone, Debug)]
pub struct LayerNorm {
    /// The scale, of shape `normalized_shape`.
    pub weight: Tensor,
    /// The shift, of shape `normalized_shape` (absent with `bias: false`).
    pub bias: Option<Tensor>,
    /// The normalized trailing shape.
    pub normalized_shape: Vec<usize>,
    /// Added to the variance.
    pub eps: f64,
}

impl LayerNorm {
    /// `nn.LayerNorm(normalized_shape)`: `f32`, `eps = 1e-5`, with a bias.
    pub fn new(normalized_shape: &[usize]) -> LayerNorm {
        LayerNorm::with_options(normalized_shape, 1e-5, true, DType::F32)
    }

    /// `nn.LayerNorm(normalized_shape, eps, bias=bias, dtype=dtype)`.
    pub fn with_options(normalized_shape: &[usize], eps: f64, bias: bool, dtype: DType) -> LayerNorm {
        let shape = normalized_shape.to_vec();
        LayerNorm {
            weight: Tensor::full_dtype(shape.clone(), 1.0, dtype).realize().requires_grad_(),
            bias: bias.then(|| Tensor::full_dtype(shape.clone(), 0.0, dtype).realize().requires_grad_()),
            normalized_shape: shape,
            eps,
        }
    }
}

impl Module for LayerNorm {
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        layer_norm(x, &self.normalized_shape, Some(&self.weight), self.bias.as_ref(), self.eps)
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
