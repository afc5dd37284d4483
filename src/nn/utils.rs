//! Gradient utilities, as `torch.nn.utils`: [`clip_grad_norm_`].

use crate::error::{OrPanic, Result};
use crate::tensor::Tensor;
use tenjit_ir::DType;

/// Scales the gradients of `params` together so that their joint 2-norm is at most
/// `max_norm`, and returns that norm before clipping, as `torch.nn.utils.clip_grad_norm_`
/// (`coef = min(1, max_norm / (norm + 1e-6))`). Lazy: the norm and the scaled gradients are
/// computed with the step that reads them, so clipping adds no realization. Parameters
/// without a gradient are skipped.
///
/// ```
/// use tenjit::prelude::*;
/// let w = tensor!([0.0, 0.0]).requires_grad_();
/// w.set_grad(Some(tensor!([3.0, 4.0])));
/// let norm = tenjit::nn::clip_grad_norm_(&[&w], 1.0);
/// assert!((norm.item() - 5.0).abs() < 1e-6);
/// let g = w.grad().unwrap().to_vec::<f32>();
/// assert!((g[0] - 0.6).abs() < 1e-5 && (g[1] - 0.8).abs() < 1e-5);
/// ```
#[track_caller]
pub fn clip_grad_norm_(params: &[&Tensor], max_norm: f64) -> Tensor {
    try_clip_grad_norm_(params, max_norm).or_panic()
}

/// [`clip_grad_norm_`] as a `Result`.
#[track_caller]
pub fn try_clip_grad_norm_(params: &[&Tensor], max_norm: f64) -> Result<Tensor> {
    let _off = crate::NoGradGuard::new();
    let grads: Vec<(&Tensor, Tensor)> = params.iter().filter_map(|p| p.grad().map(|g| (*p, g))).collect();
    // The norm in the widest float dtype of the gradients.
    let dtype = if grads.iter().any(|(_, g)| g.dtype() == DType::F64) { DType::F64 } else { DType::F32 };
    let mut total: Option<Tensor> = None;
    for (_, g) in &grads {
        let sq = g.try_to_dtype(dtype)?.square().sum();
        total = Some(match total {
            None => sq,
            Some(t) => t.try_add(&sq)?,
        });
    }
    let Some(total) = total else {
        return Ok(Tensor::scalar(0.0));
    };
    let norm = total.sqrt();
    let coef = norm.try_add(1e-6)?.rdiv(max_norm).clamp_max(1.0);
    for (p, g) in grads {
        p.set_grad(Some(g.try_mul(coef.to_dtype(g.dtype()))?));
    }
    Ok(norm)
}
