//! Activations of transformer blocks: [`gelu`] (exact and tanh forms) and [`silu`], as
//! `torch.nn.functional`'s. Built from elementwise ops, so they fuse with what surrounds them
//! and differentiate through their parts.

use crate::error::{OrPanic, Result};
use crate::tensor::Tensor;

/// Which form of GELU, as `F.gelu`'s `approximate` argument.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Approximate {
    /// `x Φ(x) = x/2 (1 + erf(x/√2))` (`approximate='none'`, the default).
    #[default]
    None,
    /// `x/2 (1 + tanh(√(2/π) (x + 0.044715 x³)))` (`approximate='tanh'`, GPT-2's).
    Tanh,
}

/// The Gaussian error linear unit, as `F.gelu(x, approximate=...)`.
///
/// ```
/// use tenjit::prelude::*;
/// use tenjit::nn::{gelu, Approximate};
/// let y = gelu(&tensor!([-1.0, 0.0, 1.0]), Approximate::None).to_vec::<f32>();
/// assert!((y[2] - 0.841_344_7).abs() < 1e-6 && y[1] == 0.0 && (y[0] + 0.158_655_3).abs() < 1e-6);
/// ```
#[track_caller]
pub fn gelu(x: &Tensor, approximate: Approximate) -> Tensor {
    try_gelu(x, approximate).or_panic()
}

/// [`gelu`] as a `Result`.
#[track_caller]
pub fn try_gelu(x: &Tensor, approximate: Approximate) -> Result<Tensor> {
    super::require_float("gelu", x)?;
    let inner = match approximate {
        Approximate::None => x.try_mul(std::f64::consts::FRAC_1_SQRT_2)?.erf(),
        Approximate::Tanh => {
            let cube = x.try_mul(x)?.try_mul(x)?;
            let k = (2.0 / std::f64::consts::PI).sqrt();
            x.try_add(&cube.try_mul(0.044715)?)?.try_mul(k)?.tanh()
        }
    };
    x.try_mul(0.5)?.try_mul(&inner.try_add(1.0)?)
}

/// `x * sigmoid(x)` (also called swish), as `F.silu`.
///
/// ```
/// use tenjit::prelude::*;
/// let y = tenjit::nn::silu(&tensor!([0.0, 1.0])).to_vec::<f32>();
/// assert!(y[0] == 0.0 && (y[1] - 0.731_058_6).abs() < 1e-6);
/// ```
#[track_caller]
pub fn silu(x: &Tensor) -> Tensor {
    try_silu(x).or_panic()
}

/// [`silu`] as a `Result`.
#[track_caller]
pub fn try_silu(x: &Tensor) -> Result<Tensor> {
    super::require_float("silu", x)?;
    x.try_mul(x.sigmoid())
}
