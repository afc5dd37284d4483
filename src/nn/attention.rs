//! Scaled dot-product attention, as `F.scaled_dot_product_attention`: `softmax(q kᵀ · scale +
//! mask) v`, with an optional causal mask. Written as the composite it is, the scores, the
//! mask and the softmax fuse into the kernels of the row reductions, and the gradient is the
//! composite's.

use crate::error::{Error, OpErrorKind, OrPanic, Result};
use crate::tensor::Tensor;
use tenjit_ir::DType;

/// The options of [`scaled_dot_product_attention`], as the keyword arguments of torch's.
#[derive(Clone, Copy, Debug, Default)]
pub struct Attention<'a> {
    /// A mask broadcastable to the scores `[..., L, S]`: boolean (`true` takes part) or float
    /// (added to the scores).
    pub attn_mask: Option<&'a Tensor>,
    /// Each query position `i` attends to key positions `j <= i` (the lower triangle
    /// aligned at the top left, as torch's `is_causal`).
    pub is_causal: bool,
    /// The scale of the scores; `1/√E` (`E` the queries' last dimension) when `None`.
    pub scale: Option<f64>,
}

/// `softmax(q @ kᵀ * scale + mask, -1) @ v` for `q: [..., L, E]`, `k: [..., S, E]`,
/// `v: [..., S, Ev]`, giving `[..., L, Ev]`, as `F.scaled_dot_product_attention`.
///
/// ```
/// use tenjit::prelude::*;
/// use tenjit::nn::{scaled_dot_product_attention, Attention};
/// let q = Tensor::randn([2, 4, 8]);
/// let y = scaled_dot_product_attention(&q, &q, &q, Attention { is_causal: true, ..Default::default() });
/// assert_eq!(y.shape(), &[2, 4, 8]);
/// // The first position attends only to itself.
/// assert_eq!(y.i(s![.., 0]).to_vec::<f32>(), q.i(s![.., 0]).to_vec::<f32>());
/// ```
#[track_caller]
pub fn scaled_dot_product_attention(q: &Tensor, k: &Tensor, v: &Tensor, opts: Attention<'_>) -> Tensor {
    try_scaled_dot_product_attention(q, k, v, opts).or_panic()
}

/// [`scaled_dot_product_attention`] as a `Result`.
#[track_caller]
pub fn try_scaled_dot_product_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    opts: Attention<'_>,
) -> Result<Tensor> {
    for (name, t) in [("query", q), ("key", k), ("value", v)] {
        super::require_float("scaled_dot_product_attention", t)?;
        if t.dim() < 2 {
            return Err(Error::op_of(
                OpErrorKind::Shape,
                "scaled_dot_product_attention",
                format!("{name} must have at least 2 dimensions, got shape {:?}", t.shape()),
            ));
        }
    }
    // The sizes as expressions: inside a symbolic trace, lengths are symbols and the causal
    // mask is built over them; only the default scale reads a size (the head dim, a constant
    // in every model we know of, so no read is recorded for it).
    let (l, s) = (q.sym_dims()[q.dim() - 2].clone(), k.sym_dims()[k.dim() - 2].clone());
    let scale = match opts.scale {
        Some(scale) => scale,
        None => 1.0 / (q.sym_size(-1).get() as f64).sqrt(),
    };
    let mut scores = q.try_matmul(&k.try_transpose(-2, -1)?)?.try_mul(scale)?;
    if opts.is_causal {
        let future = Tensor::triangle_mask(l, s, 1, false)?;
        scores = scores.try_masked_fill(&future, f64::NEG_INFINITY)?;
    }
    if let Some(mask) = opts.attn_mask {
        scores = if mask.dtype() == DType::Bool {
            scores.try_masked_fill(&mask.logical_not(), f64::NEG_INFINITY)?
        } else {
            scores.try_add(mask)?
        };
    }
    super::try_softmax(&scores, -1)?.try_matmul(v)
}
