//! Embedding lookups, as `F.embedding` and `nn.Embedding`: rows of a weight matrix gathered
//! by integer indices; the weight's gradient adds each index's cotangent into its row.

use super::Module;
use crate::error::{Error, OpErrorKind, OrPanic, Result};
use crate::tensor::Tensor;
use tenjit_ir::DType;

/// The rows of `weight` (`[num_embeddings, dim]`) at `indices` (any shape, integer): a tensor
/// of shape `indices.shape + [dim]`, as `F.embedding(indices, weight)`. An index out of range
/// is an error when the value is computed.
///
/// ```
/// use tenjit::prelude::*;
/// let w = tensor!([[0.0, 0.5], [1.0, 1.5], [2.0, 2.5]]);
/// let e = tenjit::nn::embedding(&tensor!([[2, 0]]), &w);
/// assert_eq!(e.shape(), &[1, 2, 2]);
/// assert_eq!(e.to_vec::<f32>(), [2.0, 2.5, 0.0, 0.5]);
/// ```
#[track_caller]
pub fn embedding(indices: &Tensor, weight: &Tensor) -> Tensor {
    try_embedding(indices, weight).or_panic()
}

/// [`embedding`] as a `Result`.
#[track_caller]
pub fn try_embedding(indices: &Tensor, weight: &Tensor) -> Result<Tensor> {
    if weight.dim() != 2 {
        return Err(Error::op_of(
            OpErrorKind::Shape,
            "embedding",
            format!("'weight' must be 2-D, got shape {:?}", weight.shape()),
        ));
    }
    if !indices.dtype().is_int() {
        return Err(Error::op_of(
            OpErrorKind::DType,
            "embedding",
            format!("expected indices of an integer dtype, got {}", indices.dtype()),
        ));
    }
    let rows = weight.try_index_select(0, &indices.flatten())?;
    // Over sizes that may be symbolic (`SymSize`s): no size is read.
    let mut shape = indices.sym_shape();
    shape.push(weight.try_sym_size(1)?);
    rows.try_reshape(shape)
}

/// A lookup table of `num_embeddings` vectors of size `embedding_dim`, initialized from
/// `N(0, 1)`, as `torch.nn.Embedding`. Its `forward` takes integer indices.
///
/// ```
/// use tenjit::prelude::*;
/// use tenjit::nn::{Embedding, Module};
/// let emb = Embedding::new(10, 3);
/// assert_eq!(emb.forward(&tensor!([1, 2, 9])).shape(), &[3, 3]);
/// ```
#[derive(Clone, Debug)]
pub struct Embedding {
    /// The table, `[num_embeddings, embedding_dim]`.
    pub weight: Tensor,
}

impl Embedding {
    /// `nn.Embedding(num_embeddings, embedding_dim)`, in `f32`.
    pub fn new(num_embeddings: usize, embedding_dim: usize) -> Embedding {
        Embedding::with_dtype(num_embeddings, embedding_dim, DType::F32)
    }

    /// `nn.Embedding(num_embeddings, embedding_dim, dtype=dtype)`.
    pub fn with_dtype(num_embeddings: usize, embedding_dim: usize, dtype: DType) -> Embedding {
        let weight = Tensor::randn([num_embeddings, embedding_dim]).to_dtype(dtype);
        Embedding { weight: weight.realize().requires_grad_() }
    }

    /// A table holding `weight` (which should require grad to be trained).
    pub fn from_weight(weight: Tensor) -> Embedding {
        Embedding { weight }
    }
}

impl Module for Embedding {
    #[track_caller]
    fn forward(&self, indices: &Tensor) -> Tensor {
        embedding(indices, &self.weight)
    }

    fn parameters(&self) -> Vec<&Tensor> {
        vec![&self.weight]
    }

    fn parameters_mut(&mut self) -> Vec<&mut Tensor> {
        vec![&mut self.weight]
    }

    fn named_parameters(&self) -> Vec<(String, &Tensor)> {
        super::weight_and_bias(&self.weight, None)
    }

    fn named_parameters_mut(&mut self) -> Vec<(String, &mut Tensor)> {
        super::weight_and_bias(&mut self.weight, None)
    }
}
