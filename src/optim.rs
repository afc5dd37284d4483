//! Optimizers with PyTorch's update rules: [`Sgd`] (momentum, dampening, Nesterov, weight
//! decay), as `torch.optim.SGD`, and [`Adam`] (bias-corrected, L2 weight decay), as
//! `torch.optim.Adam`.
//!
//! `step` reads each parameter's `grad()` and updates the parameters in place inside
//! [`no_grad`](crate::no_grad) (they stay leaves that require grad, keeping their gradients).
//! The new parameters and the optimizer's state are computed with the next realization — a
//! value read, or the next step's `backward()` at the latest (see [`crate::lazy`]) — with the
//! loss, the gradients and every other optimizer's step (two AdamW for two weight decays, as
//! torch's parameter groups), so one training step is one compiled executable. Values that change from step to step (the
//! learning rate, Adam's bias corrections) enter the graph as data, not as constants, so the
//! step compiles once (plus once for the first step, whose state starts empty).
//!
//! Optimizer state is kept per position in the parameter list: pass the parameters in the same
//! order at every step. Parameters without a gradient are skipped, as in torch.
//!
//! ```
//! use tenjit::prelude::*;
//! use tenjit::nn::{self, Linear, Module};
//! use tenjit::optim::{self, Sgd};
//!
//! tenjit::manual_seed(0);
//! let mut model = Linear::new(2, 1);
//! let x = tensor!([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]);
//! let y = tensor!([[1.0], [2.0], [3.0]]);
//! let mut opt = Sgd::new(0.1).with_momentum(0.9);
//! let mut losses = Vec::new();
//! for _ in 0..100 {
//!     optim::zero_grad(&model.parameters());
//!     let loss = nn::mse_loss(&model.forward(&x), &y);
//!     loss.backward();
//!     opt.step(&mut model.parameters_mut());
//!     losses.push(loss.item());
//! }
//! assert!(losses[99] < 1e-4 && losses[99] < losses[0]);
//! ```

mod adam;
mod schedule;

pub use adam::{Adam, AdamState, AdamW};
pub use schedule::WarmupCosine;

use crate::error::{Error, OpErrorKind, OrPanic, Result};
use crate::tensor::Tensor;
use std::borrow::Borrow;
use tenjit_ir::{Buffer, DType, Scalar, Shape, TensorType};

/// Clears the gradient of each parameter (`optimizer.zero_grad()`, torch's default
/// `set_to_none=True`). Takes `&[&Tensor]`, `&[&mut Tensor]` or `&[Tensor]`.
pub fn zero_grad<P: Borrow<Tensor>>(params: &[P]) {
    for p in params {
        p.borrow().zero_grad();
    }
}

/// A 0-d tensor holding `v` as data (a graph input, not a constant: a new value does not
/// change the graph's structure, so it does not recompile).
fn data_scalar(v: f64, dtype: DType) -> Tensor {
    Tensor::from_ir_buffer(Buffer::full(
        &TensorType::new(dtype, Shape::scalar()),
        Scalar::Float(v).cast(dtype),
    ))
}

/// The parameters that have a gradient, with their positions, after checking that the list
/// has the length the optimizer's state was built for.
#[track_caller]
fn with_grads(
    op: &'static str,
    params: &[&mut Tensor],
    state_len: &mut usize,
) -> Result<Vec<(usize, Tensor)>> {
    if *state_len == 0 {
        *state_len = params.len();
    } else if params.len() != *state_len {
        return Err(Error::op(
            op,
            format!(
                "step was called with {} parameters, but the optimizer's state is for {}; pass the same parameters in the same order at every step",
                params.len(),
                *state_len
            ),
        ));
    }
    let mut out = Vec::new();
    for (i, p) in params.iter().enumerate() {
        let Some(g) = p.grad() else { continue };
        if g.ty() != p.ty() {
            return Err(Error::op_of(
                OpErrorKind::Shape,
                op,
                format!("parameter {i} is {} but its gradient is {}", p.ty(), g.ty()),
            ));
        }
        out.push((i, g));
    }
    Ok(out)
}

/// Ends an optimizer step: the updated parameters (asked for by their in-place update) and the
/// optimizer's new state wait for the next realization, which computes them with the loss, the
/// gradients and any other optimizer's step in one executable (see [`crate::lazy`]).
fn finish_step(params: &[&mut Tensor], state: &[&Tensor]) -> Result<()> {
    for t in params.iter().map(|p| &**p).chain(state.iter().copied()) {
        crate::realize::realize_with_next(t, crate::realize::Pending::Update);
    }
    Ok(())
}

/// Stochastic gradient descent, as `torch.optim.SGD`:
///
/// ```text
/// g = grad + weight_decay * p
/// b = g                                  (first step)
/// b = momentum * b + (1 - dampening) * g (later steps)
/// g = g + momentum * b  if nesterov, else  g = b      (when momentum != 0)
/// p = p - lr * g
/// ```
///
/// ```
/// use tenjit::prelude::*;
/// use tenjit::optim::Sgd;
///
/// let mut w = tensor!([1.0, -2.0]).requires_grad_();
/// let mut opt = Sgd::new(0.1).with_momentum(0.5);
/// for _ in 0..2 {
///     w.zero_grad();
///     (&w * &w).sum().backward(); // grad = 2w
///     opt.step(&mut [&mut w]);
/// }
/// // step 1: b = 2w0 = [2, -4], w1 = w0 - 0.1 b = [0.8, -1.6]
/// // step 2: b = 0.5 b + 2 w1 = [2.6, -5.2], w2 = w1 - 0.1 b = [0.54, -1.08]
/// let v = w.to_vec::<f32>();
/// assert!((v[0] - 0.54).abs() < 1e-6 && (v[1] + 1.08).abs() < 1e-6);
/// assert!(w.requires_grad() && w.is_leaf());
/// ```
#[derive(Clone, Debug)]
pub struct Sgd {
    /// The learning rate.
    pub lr: f64,
    /// The momentum factor (0: none).
    pub momentum: f64,
    /// Dampening of the momentum's new gradient.
    pub dampening: f64,
    /// L2 penalty added to the gradient.
    pub weight_decay: f64,
    /// Nesterov momentum (needs `momentum > 0` and `dampening == 0`).
    pub nesterov: bool,
    buffers: Vec<Option<Tensor>>,
    len: usize,
}

impl Sgd {
    /// Plain SGD with learning rate `lr` (`SGD(params, lr)`).
    pub fn new(lr: f64) -> Sgd {
        Sgd {
            lr,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
            buffers: Vec::new(),
            len: 0,
        }
    }

    /// Sets the momentum factor.
    pub fn with_momentum(mut self, momentum: f64) -> Sgd {
        self.momentum = momentum;
        self
    }

    /// Sets the dampening of the momentum.
    pub fn with_dampening(mut self, dampening: f64) -> Sgd {
        self.dampening = dampening;
        self
    }

    /// Sets the L2 penalty.
    pub fn with_weight_decay(mut self, weight_decay: f64) -> Sgd {
        self.weight_decay = weight_decay;
        self
    }

    /// Turns Nesterov momentum on or off.
    pub fn with_nesterov(mut self, nesterov: bool) -> Sgd {
        self.nesterov = nesterov;
        self
    }

    /// The momentum buffer of parameter `i`, once a step has made it.
    pub fn momentum_buffer(&self, i: usize) -> Option<&Tensor> {
        self.buffers.get(i).and_then(Option::as_ref)
    }

    /// One update of `params` from their gradients (`optimizer.step()`); panics on error.
    #[track_caller]
    pub fn step(&mut self, params: &mut [&mut Tensor]) {
        self.try_step(params).or_panic()
    }

    /// [`Sgd::step`] as a `Result`.
    #[track_caller]
    pub fn try_step(&mut self, params: &mut [&mut Tensor]) -> Result<()> {
        if self.nesterov && (self.momentum <= 0.0 || self.dampening != 0.0) {
            return Err(Error::op("Sgd", "Nesterov momentum requires a momentum and zero dampening"));
        }
        let grads = with_grads("Sgd", params, &mut self.len)?;
        self.buffers.resize(params.len(), None);
        let _off = crate::NoGradGuard::new();
        for (i, g) in grads {
            let p = &mut *params[i];
            let dtype = p.dtype();
            let mut g = g;
            if self.weight_decay != 0.0 {
                g = g.try_add(&p.try_mul(data_scalar(self.weight_decay, dtype))?)?;
            }
            if self.momentum != 0.0 {
                let b = match self.buffers[i].take() {
                    None => g.detach(),
                    Some(b) => b
                        .try_mul(data_scalar(self.momentum, dtype))?
                        .try_add(&g.try_mul(data_scalar(1.0 - self.dampening, dtype))?)?,
                };
                g = if self.nesterov {
                    g.try_add(&b.try_mul(data_scalar(self.momentum, dtype))?)?
                } else {
                    b.clone()
                };
                self.buffers[i] = Some(b);
            }
            p.sub_(g.try_mul(data_scalar(self.lr, dtype))?);
        }
        let buffers: Vec<&Tensor> = self.buffers.iter().flatten().collect();
        finish_step(params, &buffers)
    }
}
