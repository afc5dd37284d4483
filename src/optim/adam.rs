//! Adam and AdamW, as torch's (one update rule, two ways to apply weight decay).

use super::{data_scalar, finish_step, with_grads};
use crate::error::{OrPanic, Result};
use crate::tensor::Tensor;

/// The state Adam keeps for one parameter.
#[derive(Clone, Debug)]
pub struct AdamState {
    /// Steps taken for this parameter.
    pub step: u64,
    /// The first moment (`exp_avg`).
    pub exp_avg: Tensor,
    /// The second moment (`exp_avg_sq`).
    pub exp_avg_sq: Tensor,
}

/// Adam, as `torch.optim.Adam` (not AMSGrad; weight decay is the L2 penalty, not AdamW's):
///
/// ```text
/// t = t + 1
/// g = grad + weight_decay * p
/// m = m + (1 - beta1) * (g - m)
/// v = beta2 * v + (1 - beta2) * g²
/// p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
/// ```
///
/// ```
/// use tenjit::prelude::*;
/// use tenjit::optim::Adam;
///
/// let mut w = tensor!([1.0, -2.0]).requires_grad_();
/// let mut opt = Adam::new(0.1);
/// (&w * &w).sum().backward();
/// opt.step(&mut [&mut w]);
/// // The first step moves each weight by about lr, against the sign of its gradient.
/// let v = w.to_vec::<f32>();
/// assert!((v[0] - 0.9).abs() < 1e-6 && (v[1] + 1.9).abs() < 1e-6);
/// assert_eq!(opt.state(0).unwrap().step, 1);
/// ```
#[derive(Clone, Debug)]
pub struct Adam {
    /// The learning rate.
    pub lr: f64,
    /// The decay rates of the first and second moments.
    pub betas: (f64, f64),
    /// Added to the denominator for numerical stability.
    pub eps: f64,
    /// L2 penalty added to the gradient.
    pub weight_decay: f64,
    state: Vec<Option<AdamState>>,
    len: usize,
}

impl Adam {
    /// Adam with learning rate `lr` and torch's defaults: `betas = (0.9, 0.999)`,
    /// `eps = 1e-8`, no weight decay.
    pub fn new(lr: f64) -> Adam {
        Adam { lr, betas: (0.9, 0.999), eps: 1e-8, weight_decay: 0.0, state: Vec::new(), len: 0 }
    }

    /// Sets `betas`.
    pub fn with_betas(mut self, beta1: f64, beta2: f64) -> Adam {
        self.betas = (beta1, beta2);
        self
    }

    /// Sets `eps`.
    pub fn with_eps(mut self, eps: f64) -> Adam {
        self.eps = eps;
        self
    }

    /// Sets the L2 penalty.
    pub fn with_weight_decay(mut self, weight_decay: f64) -> Adam {
        self.weight_decay = weight_decay;
        self
    }

    /// The state of parameter `i`, once a step has made it.
    pub fn state(&self, i: usize) -> Option<&AdamState> {
        self.state.get(i).and_then(Option::as_ref)
    }

    /// One update of `params` from their gradients (`optimizer.step()`); panics on error.
    #[track_caller]
    pub fn step(&mut self, params: &mut [&mut Tensor]) {
        self.try_step(params).or_panic()
    }

    /// [`Adam::step`] as a `Result`.
    #[track_caller]
    pub fn try_step(&mut self, params: &mut [&mut Tensor]) -> Result<()> {
        let hyper = Hyper {
            name: "Adam",
            lr: self.lr,
            betas: self.betas,
            eps: self.eps,
            weight_decay: self.weight_decay,
        };
        update(&hyper, false, &mut self.state, &mut self.len, params)
    }
}

/// AdamW, as `torch.optim.AdamW`: Adam whose weight decay is decoupled from the gradient
/// (it shrinks the parameter directly, `p = p * (1 - lr * weight_decay)`, before the Adam
/// update of the plain gradient). torch's default `weight_decay` is `0.01`. A learning rate
/// changed between steps (a schedule, see [`super::WarmupCosine`]) is data: it never
/// recompiles the step.
///
/// ```
/// use tenjit::prelude::*;
/// use tenjit::optim::AdamW;
///
/// let mut w = tensor!([1.0, -2.0]).requires_grad_();
/// let mut opt = AdamW::new(0.1).with_weight_decay(0.5);
/// (&w * &w).sum().backward();
/// opt.step(&mut [&mut w]);
/// // p * (1 - 0.1 * 0.5), then a step of about lr against the gradient's sign.
/// let v = w.to_vec::<f32>();
/// assert!((v[0] - (0.95 - 0.1)).abs() < 1e-6 && (v[1] - (-1.9 + 0.1)).abs() < 1e-6);
/// ```
#[derive(Clone, Debug)]
pub struct AdamW {
    /// The learning rate.
    pub lr: f64,
    /// The decay rates of the first and second moments.
    pub betas: (f64, f64),
    /// Added to the denominator for numerical stability.
    pub eps: f64,
    /// The decoupled weight decay.
    pub weight_decay: f64,
    state: Vec<Option<AdamState>>,
    len: usize,
}

impl AdamW {
    /// AdamW with learning rate `lr` and torch's defaults: `betas = (0.9, 0.999)`,
    /// `eps = 1e-8`, `weight_decay = 0.01`.
    pub fn new(lr: f64) -> AdamW {
        AdamW { lr, betas: (0.9, 0.999), eps: 1e-8, weight_decay: 0.01, state: Vec::new(), len: 0 }
    }

    /// Sets `betas`.
    pub fn with_betas(mut self, beta1: f64, beta2: f64) -> AdamW {
        self.betas = (beta1, beta2);
        self
    }

    /// Sets `eps`.
    pub fn with_eps(mut self, eps: f64) -> AdamW {
        self.eps = eps;
        self
    }

    /// Sets the decoupled weight decay.
    pub fn with_weight_decay(mut self, weight_decay: f64) -> AdamW {
        self.weight_decay = weight_decay;
        self
    }

    /// The state of parameter `i`, once a step has made it.
    pub fn state(&self, i: usize) -> Option<&AdamState> {
        self.state.get(i).and_then(Option::as_ref)
    }

    /// One update of `params` from their gradients (`optimizer.step()`); panics on error.
    #[track_caller]
    pub fn step(&mut self, params: &mut [&mut Tensor]) {
        self.try_step(params).or_panic()
    }

    /// [`AdamW::step`] as a `Result`.
    #[track_caller]
    pub fn try_step(&mut self, params: &mut [&mut Tensor]) -> Result<()> {
        let hyper = Hyper {
            name: "AdamW",
            lr: self.lr,
            betas: self.betas,
            eps: self.eps,
            weight_decay: self.weight_decay,
        };
        update(&hyper, true, &mut self.state, &mut self.len, params)
    }
}

/// The hyperparameters of one Adam or AdamW step.
struct Hyper {
    name: &'static str,
    lr: f64,
    betas: (f64, f64),
    eps: f64,
    weight_decay: f64,
}

/// One Adam step over `params`, with the weight decay as an L2 penalty on the gradient
/// (Adam) or `decoupled` from it (AdamW).
#[track_caller]
fn update(
    h: &Hyper,
    decoupled: bool,
    state: &mut Vec<Option<AdamState>>,
    len: &mut usize,
    params: &mut [&mut Tensor],
) -> Result<()> {
    let (beta1, beta2) = h.betas;
    let grads = with_grads(h.name, params, len)?;
    state.resize(params.len(), None);
    let _off = crate::NoGradGuard::new();
    for (i, g) in grads {
        let p = &mut *params[i];
        let dtype = p.dtype();
        let s = state[i].get_or_insert_with(|| AdamState {
            step: 0,
            exp_avg: p.zeros_like(),
            exp_avg_sq: p.zeros_like(),
        });
        s.step += 1;
        let mut g = g;
        if h.weight_decay != 0.0 {
            if decoupled {
                // torch: param.mul_(1 - lr * weight_decay)
                p.mul_(data_scalar(1.0 - h.lr * h.weight_decay, dtype));
            } else {
                g = g.try_add(&p.try_mul(data_scalar(h.weight_decay, dtype))?)?;
            }
        }
        // torch: exp_avg.lerp_(grad, 1 - beta1); exp_avg_sq.mul_(beta2).addcmul_(grad, grad, 1 - beta2)
        let m = s.exp_avg.try_add(&g.try_sub(&s.exp_avg)?.try_mul(data_scalar(1.0 - beta1, dtype))?)?;
        let v = s
            .exp_avg_sq
            .try_mul(data_scalar(beta2, dtype))?
            .try_add(&g.try_mul(&g)?.try_mul(data_scalar(1.0 - beta2, dtype))?)?;
        let t = s.step as f64;
        let bias_correction1 = 1.0 - beta1.powf(t);
        let bias_correction2 = 1.0 - beta2.powf(t);
        let step_size = h.lr / bias_correction1;
        let denom = v
            .sqrt()
            .try_div(data_scalar(bias_correction2.sqrt(), dtype))?
            .try_add(data_scalar(h.eps, dtype))?;
        p.sub_(m.try_div(&denom)?.try_mul(data_scalar(step_size, dtype))?);
        s.exp_avg = m;
        s.exp_avg_sq = v;
    }
    let moments: Vec<&Tensor> = state.iter().flatten().flat_map(|s| [&s.exp_avg, &s.exp_avg_sq]).collect();
    finish_step(params, &moments)
}
