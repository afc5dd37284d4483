//! Neural-network layers and functions, named as in PyTorch: the [`Module`] trait; layers
//! ([`Linear`] and [`Conv2d`] with torch's default initialization, [`Embedding`], [`LayerNorm`],
//! [`Dropout`]); convolution and pooling ([`conv2d`], [`max_pool2d`], [`avg_pool2d`]);
//! [`dropout`]; activations
//! ([`relu`], [`gelu`], [`silu`], [`softmax`], [`log_softmax`], [`logsumexp`]); normalization
//! ([`layer_norm`]) and attention ([`scaled_dot_product_attention`]); losses ([`mse_loss`],
//! [`nll_loss`], [`cross_entropy`]); [`clip_grad_norm_`]; and state dicts ([`StateDict`],
//! [`load_state_dict`]).
//!
//! Everything here is built from tensor ops, so it records lazily, differentiates with
//! `backward()` and compiles with the rest of the step.
//!
//! ```
//! use tenjit::prelude::*;
//! use tenjit::nn::{self, Linear, Module};
//!
//! tenjit::manual_seed(0);
//! let model = Linear::new(4, 3);
//! let x = Tensor::randn([8, 4]);
//! let targets = tensor!([0, 1, 2, 0, 1, 2, 0, 1]);
//! let loss = nn::cross_entropy(&model.forward(&x), &targets);
//! loss.backward();
//! assert_eq!(model.weight.grad().unwrap().shape(), &[3, 4]);
//! ```

mod activation;
mod attention;
mod conv;
mod dropout;
mod embedding;
mod norm;
mod pool;
mod state;
mod utils;

pub use activation::{gelu, silu, try_gelu, try_silu, Approximate};
pub use attention::{scaled_dot_product_attention, try_scaled_dot_product_attention, Attention};
pub use conv::{conv2d, try_conv2d, Conv2d, Conv2dOptions};
pub use dropout::{dropout, try_dropout, Dropout};
pub use embedding::{embedding, try_embedding, Embedding};
pub use norm::{layer_norm, try_layer_norm, LayerNorm};
pub use pool::{avg_pool2d, max_pool2d, try_avg_pool2d, try_max_pool2d};
pub use state::{load_state_dict, prefixed, state_dict, StateDict};
pub use utils::{clip_grad_norm_, try_clip_grad_norm_};

use crate::error::{Error, OpErrorKind, OrPanic, Result};
use crate::tensor::Tensor;
use tenjit_ir::DType;

/// A layer with parameters: `forward` and access to its parameters, as `torch.nn.Module`.
pub trait Module {
    /// Applies the layer to `x`.
    fn forward(&self, x: &Tensor) -> Tensor;

    /// The parameters, in a fixed order (`module.parameters()`).
    fn parameters(&self) -> Vec<&Tensor>;

    /// The parameters as mutable handles, in the order of [`Module::parameters`], for an
    /// optimizer's `step`.
    fn parameters_mut(&mut self) -> Vec<&mut Tensor>;

    /// Clears the gradient of every parameter (`module.zero_grad()`).
    fn zero_grad(&self) {
        for p in self.parameters() {
            p.zero_grad();
        }
    }

    /// The parameters with their names, in the order of [`Module::parameters`]
    /// (`module.named_parameters()`); by default named by position (`0`, `1`, ...). A module
    /// made of modules names its parts' parameters with [`prefixed`].
    fn named_parameters(&self) -> Vec<(String, &Tensor)> {
        self.parameters().into_iter().enumerate().map(|(i, p)| (i.to_string(), p)).collect()
    }

    /// [`Module::named_parameters`] as mutable handles, for [`load_state_dict`].
    fn named_parameters_mut(&mut self) -> Vec<(String, &mut Tensor)> {
        self.parameters_mut().into_iter().enumerate().map(|(i, p)| (i.to_string(), p)).collect()
    }

    /// The parameters by name (`module.state_dict()`), to save with
    /// [`crate::save_safetensors`] or load into another module.
    fn state_dict(&self) -> StateDict {
        state_dict(self.named_parameters())
    }

    /// Converts every float parameter to the float dtype `dtype`, as `model.to(torch.bfloat16)`:
    /// each is replaced by its converted value (realized now), and one that required grad still
    /// does, with no gradient. Integer and bool parameters are left alone.
    ///
    /// ```
    /// use tenjit::prelude::*;
    /// use tenjit::nn::{Linear, Module};
    /// let mut layer = Linear::new(3, 2);
    /// layer.to_dtype(DType::BF16)?;
    /// assert_eq!(layer.weight.dtype(), DType::BF16);
    /// assert!(layer.weight.requires_grad());
    /// let y = layer.forward(&Tensor::ones([4, 3]).bfloat16());
    /// assert_eq!(y.dtype(), DType::BF16);
    /// # Ok::<(), tenjit::Error>(())
    /// ```
    fn to_dtype(&mut self, dtype: DType) -> Result<()> {
        if !dtype.is_float() {
            return Err(Error::op_of(
                OpErrorKind::DType,
                "to_dtype",
                format!("a module's parameters convert to float dtypes only, not {}", dtype.torch_name()),
            ));
        }
        for p in self.parameters_mut() {
            if !p.dtype().is_float() || p.dtype() == dtype {
                continue;
            }
            let value = p.detach().try_to_dtype(dtype)?;
            value.try_realize()?;
            *p = if p.requires_grad() { value.requires_grad_() } else { value };
        }
        Ok(())
    }
}

/// Names `weight` and, when present, `bias`, as torch's layers name theirs.
fn weight_and_bias<T>(weight: T, bias: Option<T>) -> Vec<(String, T)> {
    std::iter::once(("weight".to_string(), weight)).chain(bias.map(|b| ("bias".to_string(), b))).collect()
}

/// A fully connected layer `y = x @ weight^T + bias`, as `torch.nn.Linear`.
///
/// ```
/// use tenjit::prelude::*;
/// use tenjit::nn::{Linear, Module};
///
/// tenjit::manual_seed(0);
/// let layer = Linear::new(3, 2);
/// assert_eq!(layer.weight.shape(), &[2, 3]);
/// let y = layer.forward(&Tensor::ones([5, 3]));
/// assert_eq!(y.shape(), &[5, 2]);
///
/// // torch's default initialization: U(-1/sqrt(in), 1/sqrt(in)).
/// let bound = 1.0 / 3f32.sqrt();
/// assert!(layer.weight.to_vec::<f32>().iter().all(|w| w.abs() <= bound));
/// ```
#[derive(Clone, Debug)]
pub struct Linear {
    /// The weight, of shape `[out_features, in_features]`; requires grad.
    pub weight: Tensor,
    /// The bias, of shape `[out_features]`, if the layer has one; requires grad.
    pub bias: Option<Tensor>,
}

impl Linear {
    /// A layer with a bias, initialized as torch's (`kaiming_uniform_(a=sqrt(5))` for the
    /// weight, which is `U(-1/sqrt(in), 1/sqrt(in))`, and the same range for the bias) from
    /// tenjit's seeded generator ([`manual_seed`](crate::manual_seed)); `f32` parameters.
    #[track_caller]
    pub fn new(in_features: usize, out_features: usize) -> Linear {
        Linear::with_options(in_features, out_features, true, DType::F32)
    }

    /// [`Linear::new`] with or without a bias (`nn.Linear(in, out, bias=False)`) and with
    /// parameters of a float `dtype`.
    #[track_caller]
    pub fn with_options(in_features: usize, out_features: usize, bias: bool, dtype: DType) -> Linear {
        if !dtype.is_float() {
            panic!(
                "{}",
                Error::op_of(
                    OpErrorKind::DType,
                    "Linear",
                    format!("parameters must be of a float dtype, got {dtype}")
                )
            );
        }
        let bound = if in_features == 0 { 0.0 } else { 1.0 / (in_features as f64).sqrt() };
        let uniform =
            |shape: Vec<usize>| (Tensor::full_dtype(shape, 0, dtype).rand_like() * 2.0 - 1.0) * bound;
        let weight = uniform(vec![out_features, in_features]);
        let bias = bias.then(|| uniform(vec![out_features]));
        let layer = Linear::from_tensors(weight, bias);
        crate::realize(&layer.parameters());
        layer
    }

    /// A layer with the given parameters (`weight` `[out, in]`, `bias` `[out]`), which are
    /// marked as requiring grad. Panics if the shapes or dtypes do not fit together.
    #[track_caller]
    pub fn from_tensors(weight: Tensor, bias: Option<Tensor>) -> Linear {
        Linear::try_from_tensors(weight, bias).or_panic()
    }

    /// [`Linear::from_tensors`] as a `Result`.
    #[track_caller]
    pub fn try_from_tensors(weight: Tensor, bias: Option<Tensor>) -> Result<Linear> {
        if weight.dim() != 2 || !weight.dtype().is_float() {
            return Err(Error::op_of(
                OpErrorKind::DType,
                "Linear",
                format!("the weight must be a 2-D float tensor [out, in], got {}", weight.ty()),
            ));
        }
        if let Some(b) = &bias {
            if b.shape() != [weight.shape()[0]] || b.dtype() != weight.dtype() {
                return Err(Error::op_of(
                    OpErrorKind::DType,
                    "Linear",
                    format!(
                        "the bias must be {}[{}] to match the weight, got {}",
                        weight.dtype(),
                        weight.shape()[0],
                        b.ty()
                    ),
                ));
            }
        }
        let weight = weight.detach();
        weight.try_set_requires_grad(true)?;
        let bias = match bias {
            Some(b) => {
                let b = b.detach();
                b.try_set_requires_grad(true)?;
                Some(b)
            }
            None => None,
        };
        Ok(Linear { weight, bias })
    }

    /// `in_features`: the size of the inputs' last dim.
    pub fn in_features(&self) -> usize {
        self.weight.shape()[1]
    }

    /// `out_features`: the size of the outputs' last dim.
    pub fn out_features(&self) -> usize {
        self.weight.shape()[0]
    }

    /// `x @ weight^T + bias` for `x` of shape `[..., in_features]`.
    #[track_caller]
    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.try_forward(x).or_panic()
    }

    /// [`Linear::forward`] as a `Result`.
    #[track_caller]
    pub fn try_forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.dim() == 0 || !x.trailing_dims_are(&[self.in_features()]) {
            return Err(Error::op_of(
                OpErrorKind::Shape,
                "Linear",
                format!(
                    "the input's last dim must be in_features = {}, got an input of shape {}",
                    self.in_features(),
                    x.ir_shape()
                ),
            ));
        }
        let y = x.try_matmul(&self.weight.try_t()?)?;
        match &self.bias {
            Some(b) => y.try_add(b),
            None => Ok(y),
        }
    }

    /// The weight, then the bias if any.
    pub fn parameters(&self) -> Vec<&Tensor> {
        std::iter::once(&self.weight).chain(self.bias.as_ref()).collect()
    }

    /// The weight, then the bias if any, as mutable handles.
    pub fn parameters_mut(&mut self) -> Vec<&mut Tensor> {
        std::iter::once(&mut self.weight).chain(self.bias.as_mut()).collect()
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Tensor {
        Linear::forward(self, x)
    }

    fn parameters(&self) -> Vec<&Tensor> {
        Linear::parameters(self)
    }

    fn parameters_mut(&mut self) -> Vec<&mut Tensor> {
        Linear::parameters_mut(self)
    }

    fn named_parameters(&self) -> Vec<(String, &Tensor)> {
        weight_and_bias(&self.weight, self.bias.as_ref())
    }

    fn named_parameters_mut(&mut self) -> Vec<(String, &mut Tensor)> {
        weight_and_bias(&mut self.weight, self.bias.as_mut())
    }
}

/// `max(x, 0)`, as `torch.relu` (gradient 0 at 0, NaN stays NaN).
#[track_caller]
pub fn relu(x: &Tensor) -> Tensor {
    x.relu()
}

/// The max over `dim` (kept), cut off from the gradient: the shift that keeps `exp` finite.
/// Its gradient would cancel anyway. An infinite max (a row of `-inf`) becomes 0, as torch's.
#[track_caller]
fn stable_shift(x: &Tensor, dim: isize) -> Result<Tensor> {
    let m = x.detach().amax(dim, true);
    let finite = m.try_sub(&m)?.try_eq(0.0)?; // false for ±inf and NaN
    Tensor::try_where(&finite, &m, 0.0)
}

#[track_caller]
fn require_float(op: &'static str, x: &Tensor) -> Result<()> {
    if x.dtype().is_float() {
        Ok(())
    } else {
        Err(Error::op_of(OpErrorKind::DType, op, format!("expected a float tensor, got {}", x.ty())))
    }
}

/// `log(sum(exp(x), dim))`, computed stably (shifted by the max), as `torch.logsumexp`.
///
/// ```
/// use tenjit::prelude::*;
/// let x = tensor!([[1000.0, 1000.0], [0.0, 0.0]]);
/// let y = tenjit::nn::logsumexp(&x, 1, false).to_vec::<f32>();
/// assert!((y[0] - (1000.0 + 2f32.ln())).abs() < 1e-3 && (y[1] - 2f32.ln()).abs() < 1e-6);
/// ```
#[track_caller]
pub fn logsumexp(x: &Tensor, dim: isize, keepdim: bool) -> Tensor {
    try_logsumexp(x, dim, keepdim).or_panic()
}

/// [`logsumexp`] as a `Result`.
#[track_caller]
pub fn try_logsumexp(x: &Tensor, dim: isize, keepdim: bool) -> Result<Tensor> {
    require_float("logsumexp", x)?;
    let m = stable_shift(x, dim)?;
    let lse = x.try_sub(&m)?.exp().try_sum_dim(dim, true)?.log().try_add(&m)?;
    if keepdim {
        Ok(lse)
    } else {
        lse.try_squeeze_dim(dim)
    }
}

/// `log(softmax(x, dim))`, computed stably as `x - max - log(sum(exp(x - max)))`, as
/// `torch.log_softmax`.
///
/// ```
/// use tenjit::prelude::*;
/// let p = tenjit::nn::log_softmax(&tensor!([[0.0, 0.0]]), 1);
/// assert_eq!(p.exp().to_string(), "tensor([[0.5000, 0.5000]])");
/// ```
#[track_caller]
pub fn log_softmax(x: &Tensor, dim: isize) -> Tensor {
    try_log_softmax(x, dim).or_panic()
}

/// [`log_softmax`] as a `Result`.
#[track_caller]
pub fn try_log_softmax(x: &Tensor, dim: isize) -> Result<Tensor> {
    require_float("log_softmax", x)?;
    let shifted = x.try_sub(&stable_shift(x, dim)?)?;
    let lse = shifted.exp().try_sum_dim(dim, true)?.log();
    shifted.try_sub(&lse)
}

/// `exp(x) / sum(exp(x), dim)`, computed stably, as `torch.softmax`.
///
/// ```
/// use tenjit::prelude::*;
/// let p = tenjit::nn::softmax(&tensor!([1.0, 1.0, 1.0, 1.0]), 0);
/// assert_eq!(p.to_string(), "tensor([0.2500, 0.2500, 0.2500, 0.2500])");
/// ```
#[track_caller]
pub fn softmax(x: &Tensor, dim: isize) -> Tensor {
    try_softmax(x, dim).or_panic()
}

/// [`softmax`] as a `Result`.
#[track_caller]
pub fn try_softmax(x: &Tensor, dim: isize) -> Result<Tensor> {
    require_float("softmax", x)?;
    let e = x.try_sub(&stable_shift(x, dim)?)?.exp();
    e.try_div(&e.try_sum_dim(dim, true)?)
}

/// The mean squared error `mean((pred - target)²)`, as `F.mse_loss`. The shapes must be the
/// same (torch would broadcast with a warning; here it is an error).
///
/// ```
/// use tenjit::prelude::*;
/// let loss = tenjit::nn::mse_loss(&tensor!([1.0, 2.0]), &tensor!([0.0, 4.0]));
/// assert_eq!(loss.item(), 2.5);
/// ```
#[track_caller]
pub fn mse_loss(pred: &Tensor, target: &Tensor) -> Tensor {
    try_mse_loss(pred, target).or_panic()
}

/// [`mse_loss`] as a `Result`.
#[track_caller]
pub fn try_mse_loss(pred: &Tensor, target: &Tensor) -> Result<Tensor> {
    if pred.shape() != target.shape() {
        return Err(Error::op_of(
            OpErrorKind::Shape,
            "mse_loss",
            format!(
                "the prediction and the target must have the same shape, got {} and {}",
                pred.ir_shape(),
                target.ir_shape()
            ),
        ));
    }
    require_float("mse_loss", pred)?;
    let d = pred.try_sub(target)?;
    Ok(d.try_mul(&d)?.mean())
}

/// Checks `[N, C]` scores against `[N]` class indices (or `[C]` against a 0-d index) and
/// returns them as `[N, C]` and `[N, 1]` (`i64`).
#[track_caller]
fn class_inputs(op: &'static str, scores: &Tensor, targets: &Tensor) -> Result<(Tensor, Tensor)> {
    require_float(op, scores)?;
    if !targets.dtype().is_int() {
        return Err(Error::op_of(
            OpErrorKind::DType,
            op,
            format!("the targets must be integer class indices, got {}", targets.ty()),
        ));
    }
    let (scores, targets) = match (scores.dim(), targets.dim()) {
        (2, 1) if scores.same_size(0, targets, 0) => (scores.clone(), targets.clone()),
        (1, 0) => (scores.try_unsqueeze(0)?, targets.try_unsqueeze(0)?),
        _ => {
            return Err(Error::op_of(
                OpErrorKind::Shape,
                op,
                format!(
                    "expected scores [N, C] with targets [N] (or [C] with a 0-d target), got {} and {}",
                    scores.ir_shape(),
                    targets.ir_shape()
                ),
            ))
        }
    };
    let targets = targets.try_to_dtype(DType::I64)?.try_unsqueeze(1)?;
    Ok((scores, targets))
}

/// The negative log likelihood `-mean(log_probs[i, targets[i]])`, as `F.nll_loss`, for
/// `log_probs` `[N, C]` and integer `targets` `[N]` in `0..C` (an index out of range is an
/// error when the value is computed).
#[track_caller]
pub fn nll_loss(log_probs: &Tensor, targets: &Tensor) -> Tensor {
    try_nll_loss(log_probs, targets).or_panic()
}

/// [`nll_loss`] as a `Result`.
#[track_caller]
pub fn try_nll_loss(log_probs: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let (lp, t) = class_inputs("nll_loss", log_probs, targets)?;
    Ok(lp.try_gather(1, &t)?.mean().neg())
}

/// The cross-entropy loss of unnormalized `logits` `[N, C]` for integer class `targets` `[N]`
/// in `0..C`, averaged over the batch: `-mean(log_softmax(logits, 1)[i, targets[i]])`, as
/// `F.cross_entropy`. An index out of range is an error when the value is computed.
///
/// ```
/// use tenjit::prelude::*;
/// let logits = tensor!([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]]).requires_grad_();
/// let loss = tenjit::nn::cross_entropy(&logits, &tensor!([0, 2]));
/// let expected = ((1.0 + 2.0 * (-2f64).exp()).ln() + 3f64.ln()) / 2.0;
/// assert!((loss.item() - expected).abs() < 1e-6);
///
/// // The gradient is (softmax - one_hot) / N.
/// loss.backward();
/// let g = logits.grad().unwrap().to_vec::<f32>();
/// assert!((g[5] - (1.0 / 3.0 - 1.0) / 2.0).abs() < 1e-6);
/// ```
#[track_caller]
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Tensor {
    try_cross_entropy(logits, targets).or_panic()
}

/// [`cross_entropy`] as a `Result`.
#[track_caller]
pub fn try_cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let (logits, t) = class_inputs("cross_entropy", logits, targets)?;
    Ok(try_log_softmax(&logits, 1)?.try_gather(1, &t)?.mean().neg())
}
