//! Masks: `tril`, `triu` and `masked_fill`, as PyTorch's. Each is a `where` over a condition
//! built from `arange` or given, so it fuses into the kernel that reads its result (a causal
//! attention mask costs no memory traffic) and its gradient flows where the values are kept.

use super::creation::IntoScalar;
use super::Tensor;
use crate::error::{Error, OpErrorKind, OrPanic, Result};
use tenjit_ir::sym::Dim;
use tenjit_ir::{DType, Shape};

impl Tensor {
    /// The lower triangle of the last two dimensions: elements with `col - row <= diagonal`
    /// are kept, the others are zero, as `torch.tril(x, diagonal)`.
    ///
    /// ```
    /// use tenjit::prelude::*;
    /// let x = Tensor::ones([3, 3]);
    /// assert_eq!(x.tril(0).to_vec::<f32>(), [1., 0., 0., 1., 1., 0., 1., 1., 1.]);
    /// assert_eq!(x.tril(-1).sum().item(), 3.0);
    /// ```
    #[track_caller]
    pub fn tril(&self, diagonal: i64) -> Tensor {
        self.try_tril(diagonal).or_panic()
    }

    /// [`Tensor::tril`] as a `Result`.
    #[track_caller]
    pub fn try_tril(&self, diagonal: i64) -> Result<Tensor> {
        self.triangle("tril", diagonal, true)
    }

    /// The upper triangle of the last two dimensions: elements with `col - row >= diagonal`
    /// are kept, the others are zero, as `torch.triu(x, diagonal)`.
    ///
    /// ```
    /// use tenjit::prelude::*;
    /// let x = Tensor::ones([2, 3]);
    /// assert_eq!(x.triu(1).to_vec::<f32>(), [0., 1., 1., 0., 0., 1.]);
    /// ```
    #[track_caller]
    pub fn triu(&self, diagonal: i64) -> Tensor {
        self.try_triu(diagonal).or_panic()
    }

    /// [`Tensor::triu`] as a `Result`.
    #[track_caller]
    pub fn try_triu(&self, diagonal: i64) -> Result<Tensor> {
        self.triangle("triu", diagonal, false)
    }

    /// `tril` (`lower`) or `triu`.
    #[track_caller]
    fn triangle(&self, op: &'static str, diagonal: i64, lower: bool) -> Result<Tensor> {
        let rank = self.dim();
        if rank < 2 {
            return Err(Error::op_of(
                OpErrorKind::Shape,
                op,
                format!(
                    "{op}: input tensor must have at least 2 dimensions, got a tensor of shape {}",
                    self.ir_shape()
                ),
            ));
        }
        // Over the dims' expressions: the mask is the same function of the positions at every size.
        let dims = self.sym_dims();
        let keep = Tensor::triangle_mask(dims[rank - 2].clone(), dims[rank - 1].clone(), diagonal, lower)?;
        let zero = Tensor::full_dtype(Shape::scalar(), 0, self.dtype());
        Tensor::try_where(&keep, self, &zero)
    }

    /// The `[rows, cols]` boolean mask of `col - row <= diagonal` (`lower`) or
    /// `col - row >= diagonal`.
    #[track_caller]
    pub(crate) fn triangle_mask(rows: Dim, cols: Dim, diagonal: i64, lower: bool) -> Result<Tensor> {
        let row = Tensor::iota_along(vec![rows.clone(), cols.clone()], 0, DType::I64)?;
        let col = Tensor::iota_along(vec![rows, cols], 1, DType::I64)?;
        let offset = col.try_sub(&row)?;
        if lower {
            offset.try_le(diagonal)
        } else {
            offset.try_ge(diagonal)
        }
    }

    /// `value` where `mask` is true, `self` elsewhere, as `x.masked_fill(mask, value)`: the
    /// mask is boolean and broadcasts to `self`'s shape, the value is cast to `self`'s dtype.
    ///
    /// ```
    /// use tenjit::prelude::*;
    /// let scores = tensor!([[1., 2.], [3., 4.]]);
    /// let causal = Tensor::ones([2, 2]).triu(1).to_dtype(DType::Bool);
    /// let masked = scores.masked_fill(&causal, f64::NEG_INFINITY);
    /// assert_eq!(masked.to_string(), "tensor([[1., -inf],\n        [3., 4.]])");
    /// ```
    #[track_caller]
    pub fn masked_fill(&self, mask: &Tensor, value: impl IntoScalar) -> Tensor {
        self.try_masked_fill(mask, value).or_panic()
    }

    /// [`Tensor::masked_fill`] as a `Result`.
    #[track_caller]
    pub fn try_masked_fill(&self, mask: &Tensor, value: impl IntoScalar) -> Result<Tensor> {
        if mask.dtype() != DType::Bool {
            return Err(Error::op_of(
                OpErrorKind::DType,
                "masked_fill",
                format!("masked_fill only supports boolean masks, but got mask with dtype {}", mask.dtype()),
            ));
        }
        // The expand is typed by the symbolic rules again: no read.
        let mask = mask.expand_to("masked_fill", &self.ty_unrecorded().shape)?;
        let value = Tensor::full_dtype(Shape::scalar(), value, self.dtype());
        Tensor::try_where(&mask, &value, self)
    }
}
