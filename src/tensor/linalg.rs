//! Linear algebra: `matmul` with every case of `torch.matmul`, and `dot`.
//!
//! The IR has one contraction primitive, a batched matrix product with equal batch dims;
//! the 1-D cases and batch broadcasting are composed here from reshapes and expands, and a
//! stack of matrices times one matrix folds its batch into the rows.

use super::Tensor;
use crate::error::{Error, OpErrorKind, OrPanic, Result};
use tenjit_ir::sym::{Dim, SymExpr};
use tenjit_ir::types::{broadcast_shapes, promote};
use tenjit_ir::{DType, Op};

impl Tensor {
    /// Matrix product with `torch.matmul`'s rules: 1-D·1-D is a dot product, 2-D@1-D a
    /// matrix-vector product, 1-D@2-D a vector-matrix product, and higher ranks are batched
    /// with the batch dims broadcast.
    ///
    /// ```
    /// use tenjit::prelude::*;
    /// let w = tensor!([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]]);
    /// let x = tensor!([1., 2., 3.]);
    /// assert_eq!(w.matmul(&x).to_string(), "tensor([1.4000, 3.2000])");
    /// ```
    #[track_caller]
    pub fn matmul(&self, other: &Tensor) -> Tensor {
        self.try_matmul(other).or_panic()
    }

    /// [`Tensor::matmul`] as a `Result`.
    #[track_caller]
    pub fn try_matmul(&self, other: &Tensor) -> Result<Tensor> {
        let (ra, rb) = (self.dim(), other.dim());
        if ra == 0 || rb == 0 {
            return Err(Error::op_of(
                OpErrorKind::Shape,
                "matmul",
                format!(
                    "both arguments need at least 1 dimension, got {} and {}",
                    self.ir_shape(),
                    other.ir_shape()
                ),
            ));
        }
        if self.dtype() == DType::Bool || other.dtype() == DType::Bool {
            return Err(Error::op_of(
                OpErrorKind::DType,
                "matmul",
                "bool tensors are not supported; convert with to_dtype first",
            ));
        }
        let dtype = promote(self.dtype(), other.dtype());
        let a = self.try_to_dtype(dtype)?;
        let b = other.try_to_dtype(dtype)?;
        // Promote vectors to matrices, remembering which dims to drop at the end.
        let a = if ra == 1 { a.try_unsqueeze(0)? } else { a };
        let b = if rb == 1 { b.try_unsqueeze(-1)? } else { b };
        // Sizes as expressions: over the symbols of a symbolic trace, the reshapes and
        // expands below follow them (the type rules check them again).
        let (sa, sb) = (a.ty_unrecorded().shape.sym_dims(), b.ty_unrecorded().shape.sym_dims());
        let (ha, hb) = (a.shape_unrecorded(), b.shape_unrecorded());
        let (m, k) = (sa[sa.len() - 2].clone(), sa[sa.len() - 1].clone());
        let n = sb[sb.len() - 1].clone();
        let (hk, hk2) = (ha[ha.len() - 1], hb[hb.len() - 2]);
        if hk != hk2 {
            return Err(Error::op_of(
                OpErrorKind::Shape,
                "matmul",
                format!(
                    "shapes {} and {} cannot be multiplied (inner dimensions {hk} and {hk2} differ)",
                    self.ty_unrecorded().shape,
                    other.ty_unrecorded().shape
                ),
            ));
        }
        let product = |dims: &[Dim]| -> Result<Dim> {
            let mut p = SymExpr::from(1);
            for d in dims {
                let e = d.expr().ok_or_else(|| Error::op("matmul", format!("dim {d} is too large")))?;
                p = p.mul(&e).map_err(|e| Error::op("matmul", e.to_string()))?;
            }
            Dim::from_expr(p).map_err(|e| Error::op("matmul", e.to_string()))
        };
        // The result's dims, less those the vector cases added.
        let result = |batch: &[Dim]| -> Vec<Dim> {
            let mut dims = batch.to_vec();
            if ra > 1 {
                dims.push(m.clone());
            }
            if rb > 1 {
                dims.push(n.clone());
            }
            dims
        };
        if sa.len() > 2 && sb.len() == 2 {
            // A stack of matrices times one matrix (`x @ w` in every linear layer): the batch
            // folds into the rows, as torch does, so the product is one `[B·m, k] x [k, n]`
            // matrix product rather than `B` small ones against an expanded `w`; its gradient
            // with respect to `w` is then one product contracting over all `B·m` rows too.
            let flat = a.reshape_dims(vec![product(&sa[..sa.len() - 1])?, k])?;
            let out = Tensor::from_op(Op::Matmul, &[&flat, &b])?;
            return out.reshape_dims(result(&sa[..sa.len() - 2]));
        }
        let shape =
            |dims: &[Dim]| super::symbolic::shape_of(dims.to_vec()).map_err(|e| Error::op("matmul", e));
        let batch_a = shape(&sa[..sa.len() - 2])?;
        let batch_b = shape(&sb[..sb.len() - 2])?;
        let Some(batch) = broadcast_shapes(&batch_a, &batch_b) else {
            return Err(Error::op_of(
                OpErrorKind::Shape,
                "matmul",
                format!(
                    "batch dimensions {batch_a} and {batch_b} of {} and {} cannot broadcast",
                    self.ty_unrecorded().shape,
                    other.ty_unrecorded().shape
                ),
            ));
        };
        let batch = batch.sym_dims();
        let full = |rows: &Dim, cols: &Dim| {
            let mut d = batch.clone();
            d.extend([rows.clone(), cols.clone()]);
            shape(&d)
        };
        let a = a.expand_to("matmul", &full(&m, &k)?)?;
        let b = b.expand_to("matmul", &full(&k, &n)?)?;
        let out = Tensor::from_op(Op::Matmul, &[&a, &b])?;
        out.reshape_dims(result(&batch))
    }

    /// Dot product of two 1-D tensors of equal length.
    ///
    /// ```
    /// use tenjit::prelude::*;
    /// assert_eq!(tensor!([1., 2., 3.]).dot(&tensor!([4., 5., 6.])).to_string(), "tensor(32.)");
    /// ```
    #[track_caller]
    pub fn dot(&self, other: &Tensor) -> Tensor {
        self.try_dot(other).or_panic()
    }

    /// [`Tensor::dot`] as a `Result`: fails unless both are 1-D of one length.
    #[track_caller]
    pub fn try_dot(&self, other: &Tensor) -> Result<Tensor> {
        if self.dim() != 1 || other.dim() != 1 {
            return Err(Error::op_of(
                OpErrorKind::Shape,
                "dot",
                format!("1D tensors expected, but got {}D and {}D tensors", self.dim(), other.dim()),
            ));
        }
        if self.numel() != other.numel() {
            return Err(Error::op(
                "dot",
                format!(
                    "inconsistent tensor size, expected tensor [{}] and src [{}] to have the same number of elements",
                    self.numel(),
                    other.numel()
                ),
            ));
        }
        self.try_matmul(other)
    }
}
