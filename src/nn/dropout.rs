//! Dropout, as `F.dropout` and `nn.Dropout`: in training, each element is zeroed with
//! probability `p` and the others are scaled by `1 / (1 - p)`; in evaluation, the identity.
//!
//! The mask is a lazy `rand` draw (see [`crate::tensor::random`]): its seed and counter
//! offset are reserved from the process's generator ([`crate::manual_seed`]) at each call and
//! enter the compiled step as runtime operands, so the draw runs inside the kernel that applies
//! the mask (no buffer of random numbers is written, nor copied to a GPU) and a training loop
//! with dropout compiles once. The gradient multiplies by the same mask node: the backward
//! kernel redraws it from the same seed and offset, so it drops exactly the forward's elements.

use super::Module;
use crate::error::{Error, OpErrorKind, OrPanic, Result};
use crate::tensor::Tensor;

/// Zeroes each element of `x` with probability `p` and scales the rest by `1 / (1 - p)` when
/// `training`; returns `x` unchanged otherwise, as `F.dropout(x, p, training)`.
///
/// ```
/// use tenjit::prelude::*;
/// tenjit::manual_seed(0);
/// let y = tenjit::nn::dropout(&Tensor::ones([1000]), 0.25, true).to_vec::<f32>();
/// let kept = y.iter().filter(|&&v| v != 0.0).count();
/// assert!((650..850).contains(&kept));
/// assert!(y.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.75).abs() < 1e-6));
/// ```
#[track_caller]
pub fn dropout(x: &Tensor, p: f64, training: bool) -> Tensor {
    try_dropout(x, p, training).or_panic()
}

/// [`dropout`] as a `Result`.
#[track_caller]
pub fn try_dropout(x: &Tensor, p: f64, training: bool) -> Result<Tensor> {
    if !(0.0..=1.0).contains(&p) {
        return Err(Error::op_of(
            OpErrorKind::Argument,
            "dropout",
            format!("dropout probability has to be between 0 and 1, but got {p}"),
        ));
    }
    super::require_float("dropout", x)?;
    if !training || p == 0.0 {
        return Ok(x.clone());
    }
    if p == 1.0 {
        return x.try_mul(0.0);
    }
    let keep = x.rand_like().try_to(x.device())?.try_ge(p)?;
    x.try_mul(&keep.try_to_dtype(x.dtype())?)?.try_mul(1.0 / (1.0 - p))
}

/// Dropout as a layer, as `torch.nn.Dropout(p)`: active after [`Dropout::train`] (the
/// default), the identity after [`Dropout::eval`]. It has no parameters.
///
/// ```
/// use tenjit::prelude::*;
/// use tenjit::nn::{Dropout, Module};
/// let mut d = Dropout::new(0.5);
/// let x = Tensor::ones([4]);
/// d.eval();
/// assert_eq!(d.forward(&x).to_vec::<f32>(), [1.0; 4]);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Dropout {
    /// The probability of zeroing an element.
    pub p: f64,
    training: bool,
}

impl Dropout {
    /// `nn.Dropout(p)`, in training mode.
    pub fn new(p: f64) -> Dropout {
        Dropout { p, training: true }
    }

    /// Training mode: elements are dropped.
    pub fn train(&mut self) {
        self.training = true;
    }

    /// Evaluation mode: the identity.
    pub fn eval(&mut self) {
        self.training = false;
    }
}

impl Module for Dropout {
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        dropout(x, self.p, self.training)
    }

    fn parameters(&self) -> Vec<&Tensor> {
        Vec::new()
    }

    fn parameters_mut(&mut self) -> Vec<&mut Tensor> {
        Vec::new()
    }
}
