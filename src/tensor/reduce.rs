//! Reductions: `sum`, `mean`, `prod`, `max`, `min`, `amax`, `amin`, `argmax`, `argmin`,
//! `var`, `std` and `norm`, over all elements or given dims, with `keepdim`.
//!
//! As in PyTorch: sums and products of integers and bools are `i64`; `mean`, `var`, `std` and
//! `norm` need floats; `var`/`std` are unbiased by default (`correction = 1`); `max_dim` and
//! `min_dim` return values and indices, the first index on ties; a NaN is the maximum and the
//! minimum (it propagates).

use super::{wrap_dim, Tensor};
use crate::error::{Error, OpErrorKind, OrPanic, Result};
use smallvec::SmallVec;
use tenjit_ir::ops::Dims as IrDims;
use tenjit_ir::sym::{Dim, SymExpr};
use tenjit_ir::{ArgOp, DType, Op, ReduceOp, Shape, TensorType};

/// The dims argument of a reduction: one dim (`0`, `-1`) or several (`[0, 1]`).
#[derive(Clone, Debug)]
pub struct Dims(pub SmallVec<[isize; 4]>);

impl From<isize> for Dims {
    fn from(d: isize) -> Dims {
        Dims(SmallVec::from_slice(&[d]))
    }
}
impl From<i32> for Dims {
    fn from(d: i32) -> Dims {
        Dims(SmallVec::from_slice(&[d as isize]))
    }
}
impl<const N: usize> From<[isize; N]> for Dims {
    fn from(d: [isize; N]) -> Dims {
        Dims(SmallVec::from_slice(&d))
    }
}
impl<const N: usize> From<[i32; N]> for Dims {
    fn from(d: [i32; N]) -> Dims {
        Dims(d.iter().map(|&x| x as isize).collect())
    }
}
impl From<&[isize]> for Dims {
    fn from(d: &[isize]) -> Dims {
        Dims(SmallVec::from_slice(d))
    }
}
impl From<Vec<isize>> for Dims {
    fn from(d: Vec<isize>) -> Dims {
        Dims(SmallVec::from_vec(d))
    }
}

impl Tensor {
    /// Normalized, sorted, distinct axes.
    #[track_caller]
    fn axes(&self, op: &'static str, dims: Dims) -> Result<IrDims> {
        let mut axes = IrDims::new();
        for &d in &dims.0 {
            axes.push(wrap_dim(op, d, self.dim())?);
        }
        axes.sort_unstable();
        if axes.windows(2).any(|w| w[0] == w[1]) {
            return Err(Error::op_of(
                OpErrorKind::Axis,
                op,
                format!("dim {:?} appears multiple times in the list of dims", dims.0.as_slice()),
            ));
        }
        if self.dim() == 0 {
            axes.clear();
        }
        Ok(axes)
    }

    /// Reduces `axes` with `op`, then reinserts them as size 1 when `keepdim`.
    #[track_caller]
    pub(crate) fn reduce(&self, op: ReduceOp, axes: IrDims, keepdim: bool) -> Result<Tensor> {
        let name = op.name();
        if self.dtype() == DType::Bool && matches!(op, ReduceOp::Max | ReduceOp::Min) {
            return Err(Error::op_of(
                OpErrorKind::DType,
                name,
                "bool tensors are not supported; convert with to_dtype first",
            ));
        }
        // A symbolic dim is never 0: whether a size is 0 holds at every size.
        if op.identity().is_none() && axes.iter().any(|&a| self.shape_unrecorded()[a] == 0) {
            return Err(Error::op_of(
                OpErrorKind::Shape,
                name,
                format!(
                    "cannot reduce over a zero-size dimension of a tensor of shape {} (no identity)",
                    self.ir_shape()
                ),
            ));
        }
        let x = match op {
            ReduceOp::Sum | ReduceOp::Prod if !self.dtype().is_float() => self.try_to_dtype(DType::I64)?,
            _ => self.clone(),
        };
        let reduced =
            if axes.is_empty() { x } else { Tensor::from_op(Op::Reduce { op, axes: axes.clone() }, &[&x])? };
        if keepdim {
            reduced.keep(&axes, &self.ty_unrecorded().shape)
        } else {
            Ok(reduced)
        }
    }

    /// Reinserts reduced `axes` of `full` as size 1.
    #[track_caller]
    fn keep(&self, axes: &[usize], full: &Shape) -> Result<Tensor> {
        let full = full.sym_dims();
        let dims = (0..full.len()).map(|d| if axes.contains(&d) { Dim::from(1u64) } else { full[d].clone() });
        self.reshape_dims(dims.collect())
    }

    #[track_caller]
    fn all_axes(&self) -> IrDims {
        (0..self.dim()).collect()
    }

    #[track_caller]
    fn require_float(&self, op: &'static str) -> Result<()> {
        if self.dtype().is_float() {
            Ok(())
        } else {
            Err(Error::op_of(
                OpErrorKind::DType,
                op,
                format!(
                    "could not infer output dtype. Input dtype must be a floating point dtype, but got {}",
                    self.dtype()
                ),
            ))
        }
    }

    /// Sum of all elements, as `x.sum()`.
    ///
    /// ```
    /// use tenjit::prelude::*;
    /// let x = tensor!([[1., 2.], [3., 4.]]);
    /// assert_eq!(x.sum().to_string(), "tensor(10.)");
    /// assert_eq!(x.sum_dim(0, false).to_string(), "tensor([4., 6.])");
    /// assert_eq!(x.sum_dim(1, false).to_string(), "tensor([3., 7.])");
    /// ```
    #[track_caller]
    pub fn sum(&self) -> Tensor {
        self.reduce(ReduceOp::Sum, self.all_axes(), false).or_panic()
    }

    /// Sum over `dims`, as `x.sum(dim, keepdim)`.
    #[track_caller]
    pub fn sum_dim(&self, dims: impl Into<Dims>, keepdim: bool) -> Tensor {
        self.try_sum_dim(dims, keepdim).or_panic()
    }

    /// [`Tensor::sum_dim`] as a `Result`.
    #[track_caller]
    pub fn try_sum_dim(&self, dims: impl Into<Dims>, keepdim: bool) -> Result<Tensor> {
        let axes = self.axes("sum", dims.into())?;
        self.reduce(ReduceOp::Sum, axes, keepdim)
    }

    /// Product of all elements.
    #[track_caller]
    pub fn prod(&self) -> Tensor {
        self.reduce(ReduceOp::Prod, self.all_axes(), false).or_panic()
    }

    /// Product over `dims`.
    #[track_caller]
    pub fn prod_dim(&self, dims: impl Into<Dims>, keepdim: bool) -> Tensor {
        self.try_prod_dim(dims, keepdim).or_panic()
    }

    /// [`Tensor::prod_dim`] as a `Result`.
    #[track_caller]
    pub fn try_prod_dim(&self, dims: impl Into<Dims>, keepdim: bool) -> Result<Tensor> {
        let axes = self.axes("prod", dims.into())?;
        self.reduce(ReduceOp::Prod, axes, keepdim)
    }

    /// Mean of all elements (floats only, as torch).
    #[track_caller]
    pub fn mean(&self) -> Tensor {
        self.try_mean_dim(Dims((0..self.dim() as isize).collect()), false).or_panic()
    }

    /// Mean over `dims`.
    #[track_caller]
    pub fn mean_dim(&self, dims: impl Into<Dims>, keepdim: bool) -> Tensor {
        self.try_mean_dim(dims, keepdim).or_panic()
    }

    /// [`Tensor::mean_dim`] as a `Result`.
    #[track_caller]
    pub fn try_mean_dim(&self, dims: impl Into<Dims>, keepdim: bool) -> Result<Tensor> {
        self.require_float("mean")?;
        let axes = self.axes("mean", dims.into())?;
        let shape = &self.ty_unrecorded().shape;
        let sum = self.reduce(ReduceOp::Sum, axes.clone(), keepdim)?;
        if shape.is_symbolic() {
            // The count is a `size` of the reduced dims' expressions, so it follows them.
            let dims = shape.sym_dims();
            let count = axes.iter().try_fold(SymExpr::from(1), |n, &a| {
                dims[a]
                    .expr()
                    .ok_or_else(|| Error::op("mean", format!("dim {} is too large", dims[a])))
                    .and_then(|d| n.mul(&d).map_err(|e| Error::op("mean", e.to_string())))
            })?;
            let ty = TensorType::new(sum.dtype(), Shape::scalar());
            return sum.try_div(&Tensor::from_op(Op::Size { expr: count, ty }, &[])?);
        }
        let n: usize = axes.iter().map(|&a| shape.dims()[a]).product();
        sum.try_div(n as f64)
    }

    /// Variance of all elements with Bessel's correction (`correction = 1`), as `x.var()`.
    #[track_caller]
    pub fn var(&self) -> Tensor {
        self.try_var_dim(Dims((0..self.dim() as isize).collect()), 1.0, false).or_panic()
    }

    /// Variance over `dims`: `sum((x - mean)²) / (N - correction)`.
    ///
    /// An `f32` or `f64` variance over trailing dims (all dims, or the last ones) reads `x`
    /// once: with `d = x - k`, `k` the first element of each reduced slice, the variance is
    /// `(Σd² - (Σd)²/N) / (N - correction)` (clamped at 0 before the division), and the two
    /// sums run together over the same rows (a row group), so each row is read from memory
    /// once. The shift keeps the cancellation small: `Σd²/N` is the variance plus
    /// `(mean - k)²`, of the order of the variance unless the first element is an outlier;
    /// `(Σd)²/N` is the compensation for `k` not being the mean. Other variances (over a
    /// leading dim, whose sums do not share a pass, or of 16-bit floats) take two passes:
    /// the mean, then the sum of squared deviations from it, which shares the mean with a
    /// `mean_dim` over the same dims.
    #[track_caller]
    pub fn var_dim(&self, dims: impl Into<Dims>, correction: f64, keepdim: bool) -> Tensor {
        self.try_var_dim(dims, correction, keepdim).or_panic()
    }

    /// [`Tensor::var_dim`] as a `Result`.
    #[track_caller]
    pub fn try_var_dim(&self, dims: impl Into<Dims>, correction: f64, keepdim: bool) -> Result<Tensor> {
        self.require_float("var")?;
        let axes = self.axes("var", dims.into())?;
        let n: usize = axes.iter().map(|&a| self.shape()[a]).product();
        // torch divides by max(0, N - correction): 0/0 gives NaN, x/0 gives inf.
        let denominator = (n as f64 - correction).max(0.0);
        // The trailing dims of the tensor: rows of the reduced elements, whose two sums run
        // together row block by row block.
        let trailing = axes.iter().enumerate().all(|(i, &a)| a + axes.len() == self.dim() + i);
        if matches!(self.dtype(), DType::F32 | DType::F64) && n > 0 && trailing {
            let mut k = self.clone();
            for &a in &axes {
                k = k.narrow_dim(a, 0, 1)?;
            }
            let d = self.try_sub(&k)?;
            let s1 = d.reduce(ReduceOp::Sum, axes.clone(), keepdim)?;
            let s2 = d.try_mul(&d)?.reduce(ReduceOp::Sum, axes, keepdim)?;
            // Rounding can leave a constant slice's Σd² - (Σd)²/N a hair below 0; a NaN
            // stays NaN (`maximum` propagates it).
            let m2 = s2.try_sub(&s1.try_mul(&s1)?.try_div(n as f64)?)?.try_maximum(0.0)?;
            return m2.try_div(denominator);
        }
        let mean = self.reduce(ReduceOp::Sum, axes.clone(), true)?.try_div(n as f64)?;
        let centered = self.try_sub(&mean)?;
        let sq = centered.try_mul(&centered)?;
        sq.reduce(ReduceOp::Sum, axes, keepdim)?.try_div(denominator)
    }

    /// Standard deviation of all elements (unbiased), as `x.std()`.
    #[track_caller]
    pub fn std(&self) -> Tensor {
        self.var().sqrt()
    }

    /// Standard deviation over `dims` with a correction (1 is unbiased, 0 the population).
    #[track_caller]
    pub fn std_dim(&self, dims: impl Into<Dims>, correction: f64, keepdim: bool) -> Tensor {
        self.var_dim(dims, correction, keepdim).sqrt()
    }

    /// The 2-norm of all elements, `sqrt(sum(x²))`.
    #[track_caller]
    pub fn norm(&self) -> Tensor {
        self.try_norm_dim(Dims((0..self.dim() as isize).collect()), false).or_panic()
    }

    /// The 2-norm over `dims`.
    #[track_caller]
    pub fn norm_dim(&self, dims: impl Into<Dims>, keepdim: bool) -> Tensor {
        self.try_norm_dim(dims, keepdim).or_panic()
    }

    /// [`Tensor::norm_dim`] as a `Result`.
    #[track_caller]
    pub fn try_norm_dim(&self, dims: impl Into<Dims>, keepdim: bool) -> Result<Tensor> {
        self.require_float("norm")?;
        let axes = self.axes("norm", dims.into())?;
        Ok(self.try_mul(self)?.reduce(ReduceOp::Sum, axes, keepdim)?.sqrt())
    }

    /// Maximum of all elements.
    #[track_caller]
    pub fn max(&self) -> Tensor {
        self.reduce(ReduceOp::Max, self.all_axes(), false).or_panic()
    }

    /// Minimum of all elements.
    #[track_caller]
    pub fn min(&self) -> Tensor {
        self.reduce(ReduceOp::Min, self.all_axes(), false).or_panic()
    }

    /// Maximum over `dims` (values only), as `torch.amax`.
    #[track_caller]
    pub fn amax(&self, dims: impl Into<Dims>, keepdim: bool) -> Tensor {
        let axes = self.axes("amax", dims.into()).or_panic();
        self.reduce(ReduceOp::Max, axes, keepdim).or_panic()
    }

    /// Minimum over `dims` (values only), as `torch.amin`.
    #[track_caller]
    pub fn amin(&self, dims: impl Into<Dims>, keepdim: bool) -> Tensor {
        let axes = self.axes("amin", dims.into()).or_panic();
        self.reduce(ReduceOp::Min, axes, keepdim).or_panic()
    }

    /// Maximum along `dim` with its index, as `values, indices = x.max(dim)`.
    ///
    /// ```
    /// use tenjit::prelude::*;
    /// let (v, i) = tensor!([[1., 5.], [7., 7.]]).max_dim(1, false);
    /// assert_eq!(v.to_string(), "tensor([5., 7.])");
    /// assert_eq!(i.to_string(), "tensor([1, 0])");
    /// ```
    #[track_caller]
    pub fn max_dim(&self, dim: isize, keepdim: bool) -> (Tensor, Tensor) {
        self.try_extremum_dim(ReduceOp::Max, ArgOp::ArgMax, dim, keepdim).or_panic()
    }

    /// Minimum along `dim` with its index.
    #[track_caller]
    pub fn min_dim(&self, dim: isize, keepdim: bool) -> (Tensor, Tensor) {
        self.try_extremum_dim(ReduceOp::Min, ArgOp::ArgMin, dim, keepdim).or_panic()
    }

    #[track_caller]
    fn try_extremum_dim(
        &self,
        op: ReduceOp,
        arg: ArgOp,
        dim: isize,
        keepdim: bool,
    ) -> Result<(Tensor, Tensor)> {
        let axes = self.axes(op.name(), Dims::from(dim))?;
        if self.requires_grad() && self.dim() > 0 {
            // As torch's `max(dim)`, the gradient goes to the element the index names (the
            // first on ties), so the values are gathered at the indices.
            let kept = self.arg_reduce(arg, axes.clone(), true)?;
            let values = self.try_gather(axes[0] as isize, &kept)?;
            return if keepdim {
                Ok((values, kept))
            } else {
                Ok((values.try_squeeze_dim(axes[0] as isize)?, kept.try_squeeze_dim(axes[0] as isize)?))
            };
        }
        let values = self.reduce(op, axes.clone(), keepdim)?;
        let indices = self.arg_reduce(arg, axes, keepdim)?;
        Ok((values, indices))
    }

    #[track_caller]
    fn arg_reduce(&self, op: ArgOp, axes: IrDims, keepdim: bool) -> Result<Tensor> {
        if self.dtype() == DType::Bool {
            return Err(Error::op_of(
                OpErrorKind::DType,
                op.name(),
                "bool tensors are not supported; convert with to_dtype first",
            ));
        }
        let Some(&axis) = axes.first() else {
            // A scalar: its only index is 0.
            return Ok(Tensor::full_dtype(Shape::scalar(), 0, DType::I64));
        };
        if self.shape()[axis] == 0 {
            return Err(Error::op_of(
                OpErrorKind::Shape,
                op.name(),
                format!("expected reduction dim {axis} to have non-zero size (shape {})", self.ir_shape()),
            ));
        }
        let r = Tensor::from_op(Op::ArgReduce { op, axis }, &[self])?;
        if keepdim {
            r.keep(&axes, self.ir_shape())
        } else {
            Ok(r)
        }
    }

    /// Index of the maximum of the flattened tensor (the first on ties).
    #[track_caller]
    pub fn argmax(&self) -> Tensor {
        self.flatten().arg_reduce(ArgOp::ArgMax, SmallVec::from_slice(&[0]), false).or_panic()
    }

    /// Index of the minimum of the flattened tensor (the first on ties).
    #[track_caller]
    pub fn argmin(&self) -> Tensor {
        self.flatten().arg_reduce(ArgOp::ArgMin, SmallVec::from_slice(&[0]), false).or_panic()
    }

    /// Indices of the maxima along `dim`.
    #[track_caller]
    pub fn argmax_dim(&self, dim: isize, keepdim: bool) -> Tensor {
        let axes = self.axes("argmax", Dims::from(dim)).or_panic();
        self.arg_reduce(ArgOp::ArgMax, axes, keepdim).or_panic()
    }

    /// Indices of the minima along `dim`.
    #[track_caller]
    pub fn argmin_dim(&self, dim: isize, keepdim: bool) -> Tensor {
        let axes = self.axes("argmin", Dims::from(dim)).or_panic();
        self.arg_reduce(ArgOp::ArgMin, axes, keepdim).or_panic()
    }
}
