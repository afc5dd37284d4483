//! Shape ops: `reshape` (with `-1`), `view`, `flatten`, `squeeze`, `unsqueeze`, `permute`,
//! `transpose`, `t`, `expand` / `broadcast_to` and `contiguous`.
//!
//! Values are always computed densely, so every shape op is a plain `ir` movement op. What
//! differs between `view` and `reshape` is only *whether PyTorch allows it*: each tensor
//! records the strides PyTorch would give it (permutes and expands make them non-contiguous),
//! and `view` fails where PyTorch's `view` fails, with the same advice to use `reshape`.

use super::symsize::{DimList, IntoDims};
use super::{contiguous_strides, wrap_dim, Strides, Tensor};
use crate::error::{Error, OpErrorKind, OrPanic, Result};
use smallvec::SmallVec;
use tenjit_ir::sym::{Dim, SymExpr};
use tenjit_ir::{Op, Shape};

/// Resolves a shape with at most one `-1` against `numel` elements.
#[track_caller]
pub(crate) fn infer_shape(op: &'static str, dims: &[isize], numel: usize, from: &Shape) -> Result<Shape> {
    let mut infer = None;
    let mut known = 1usize;
    for (i, &d) in dims.iter().enumerate() {
        match d {
            -1 if infer.is_none() => infer = Some(i),
            -1 => return Err(Error::op(op, "only one dimension can be inferred")),
            d if d < 0 => {
                return Err(Error::op_of(OpErrorKind::Shape, op, format!("invalid shape dimension {d}")))
            }
            d => {
                known = known.checked_mul(d as usize).ok_or_else(|| {
                    Error::op_of(
                        OpErrorKind::Size,
                        op,
                        format!("shape {dims:?} is too large: its size overflows"),
                    )
                })?
            }
        }
    }
    let mut out: Vec<usize> = dims.iter().map(|&d| d.max(0) as usize).collect();
    if let Some(i) = infer {
        if known == 0 || !numel.is_multiple_of(known) {
            return Err(Error::op_of(
                OpErrorKind::Shape,
                op,
                format!("shape {dims:?} is invalid for input of size {numel} (shape {from})"),
            ));
        }
        out[i] = numel / known;
    }
    let shape = Shape::from(out);
    if shape.numel() != numel {
        return Err(Error::op_of(
            OpErrorKind::Shape,
            op,
            format!("shape {dims:?} is invalid for input of size {numel} (shape {from})"),
        ));
    }
    Ok(shape)
}

/// The torch-style strides of a view of `new` over a tensor of shape `old` and strides
/// `old_strides`, or `None` if no view exists (`tenjit_ir::types::view_strides`).
fn view_strides(old: &[usize], old_strides: &[isize], new: &[usize]) -> Option<Strides> {
    let strides: Vec<i64> = old_strides.iter().map(|&s| s as i64).collect();
    tenjit_ir::types::view_strides(old, &strides, new).map(|v| v.into_iter().map(|s| s as isize).collect())
}

impl Tensor {
    #[track_caller]
    fn reshape_to(&self, shape: Shape, strides: Strides) -> Result<Tensor> {
        if self.ty_unrecorded().shape == shape && *self.strides() == strides {
            return Ok(self.clone());
        }
        Tensor::from_op_strided(Op::Reshape { shape }, &[self], Some(strides))
    }

    /// The same elements in the shape `dims`, whose expressions may be over the symbols of a
    /// symbolic trace (for the library's reshapes of symbolic dims: the type rules check the
    /// element count again).
    pub(crate) fn reshape_dims(&self, dims: Vec<Dim>) -> Result<Tensor> {
        let shape = super::symbolic::shape_of(dims).map_err(|e| Error::op("reshape", e))?;
        let strides = view_strides(self.shape_unrecorded(), self.strides(), shape.dims())
            .unwrap_or_else(|| contiguous_strides(&shape));
        self.reshape_to(shape, strides)
    }

    /// The same elements in a new shape; one dimension may be `-1` (inferred), as
    /// `x.reshape(2, -1)`.
    ///
    /// ```
    /// use tenjit::prelude::*;
    /// let x = Tensor::arange(6).reshape([2, -1]);
    /// assert_eq!(x.shape(), &[2, 3]);
    /// ```
    #[track_caller]
    pub fn reshape(&self, dims: impl IntoDims) -> Tensor {
        self.try_reshape(dims).or_panic()
    }

    /// [`Tensor::reshape`] as a `Result`.
    #[track_caller]
    pub fn try_reshape(&self, dims: impl IntoDims) -> Result<Tensor> {
        let dims = dims.into_dims();
        if let Some(shape) = self.symbolic_target("reshape", &dims)? {
            return self.reshape_dims(shape);
        }
        let shape = infer_shape("reshape", &dims.ints(), self.numel(), self.ir_shape())?;
        let strides = view_strides(self.shape(), self.strides(), shape.dims())
            .unwrap_or_else(|| contiguous_strides(&shape));
        self.reshape_to(shape, strides)
    }

    /// The target dims of a reshape of a symbolic tensor (or to symbolic sizes) over
    /// expressions, when they can be decided without reading a size.
    fn symbolic_target(&self, op: &'static str, dims: &DimList) -> Result<Option<Vec<Dim>>> {
        if !self.ty_unrecorded().shape.is_symbolic() && !dims.is_symbolic() {
            return Ok(None);
        }
        dims.over(op, &self.sym_dims())
    }

    /// A view with a new shape; fails, as PyTorch's `view` does, when the tensor's layout
    /// (after `transpose`, `permute` or `expand`) cannot be viewed that way.
    ///
    /// ```
    /// use tenjit::prelude::*;
    /// let x = Tensor::arange(6).reshape([2, 3]);
    /// assert_eq!(x.view([3, 2]).shape(), &[3, 2]);
    /// assert!(x.t().try_view([6]).is_err()); // use reshape instead
    /// ```
    #[track_caller]
    pub fn view(&self, dims: impl IntoDims) -> Tensor {
        self.try_view(dims).or_panic()
    }

    /// [`Tensor::view`] as a `Result`.
    #[track_caller]
    pub fn try_view(&self, dims: impl IntoDims) -> Result<Tensor> {
        let dims = dims.into_dims();
        let shape = match self.symbolic_target("view", &dims)? {
            Some(target) => super::symbolic::shape_of(target).map_err(|e| Error::op("view", e))?,
            None => infer_shape("view", &dims.ints(), self.numel(), self.ir_shape())?,
        };
        // Whether a view exists is decided at the hints, where symbols are 2 or more: a dim
        // that could be 1 (and so viewable at any stride) is never symbolic.
        let Some(strides) = view_strides(self.shape_unrecorded(), self.strides(), shape.dims()) else {
            return Err(Error::op_of(
                OpErrorKind::Shape,
                "view",
                format!(
                    "view size {shape} is not compatible with input tensor's size {} and stride {:?} \
                     (at least one dimension spans across two contiguous subspaces). \
                     Use .reshape(...) instead.",
                    self.ir_shape(),
                    self.strides().as_slice()
                ),
            ));
        };
        self.reshape_to(shape, strides)
    }

    /// Flattens all dimensions into one.
    #[track_caller]
    pub fn flatten(&self) -> Tensor {
        self.reshape([-1])
    }

    /// Flattens dimensions `start..=end` (negative dims count from the end).
    #[track_caller]
    pub fn flatten_dims(&self, start: isize, end: isize) -> Tensor {
        self.try_flatten_dims(start, end).or_panic()
    }

    /// [`Tensor::flatten_dims`] as a `Result`.
    #[track_caller]
    pub fn try_flatten_dims(&self, start: isize, end: isize) -> Result<Tensor> {
        if self.dim() == 0 {
            return self.try_reshape([1]);
        }
        let (s, e) = (wrap_dim("flatten", start, self.dim())?, wrap_dim("flatten", end, self.dim())?);
        if s > e {
            return Err(Error::op_of(OpErrorKind::Axis, "flatten", "start_dim cannot come after end_dim"));
        }
        // Over expressions, so symbolic dims stay symbolic.
        let own = self.sym_dims();
        let mut merged = SymExpr::from(1);
        for d in &own[s..=e] {
            let x = d.expr().ok_or_else(|| Error::op("flatten", format!("dim {d} is too large")))?;
            merged = merged.mul(&x).map_err(|err| Error::op("flatten", err.to_string()))?;
        }
        let mut dims: Vec<Dim> = own[..s].to_vec();
        dims.push(Dim::from_expr(merged).map_err(|err| Error::op("flatten", err.to_string()))?);
        dims.extend_from_slice(&own[e + 1..]);
        self.reshape_dims(dims)
    }

    /// Removes every dimension of size 1.
    #[track_caller]
    pub fn squeeze(&self) -> Tensor {
        // A symbolic dim is never 1: reading whether a size is 1 holds at every size.
        let keep: Vec<usize> = (0..self.dim()).filter(|&d| self.shape_unrecorded()[d] != 1).collect();
        self.keep_dims(&keep).or_panic()
    }

    /// Removes dimension `dim` if its size is 1 (otherwise returns the tensor unchanged).
    #[track_caller]
    pub fn squeeze_dim(&self, dim: isize) -> Tensor {
        self.try_squeeze_dim(dim).or_panic()
    }

    /// [`Tensor::squeeze_dim`] as a `Result`.
    #[track_caller]
    pub fn try_squeeze_dim(&self, dim: isize) -> Result<Tensor> {
        if self.dim() == 0 {
            return Ok(self.clone());
        }
        let d = wrap_dim("squeeze", dim, self.dim())?;
        if self.shape_unrecorded()[d] != 1 {
            return Ok(self.clone());
        }
        let keep: Vec<usize> = (0..self.dim()).filter(|&i| i != d).collect();
        self.keep_dims(&keep)
    }

    #[track_caller]
    fn keep_dims(&self, keep: &[usize]) -> Result<Tensor> {
        let own = self.sym_dims();
        let shape = super::symbolic::shape_of(keep.iter().map(|&d| own[d].clone()).collect())
            .map_err(|e| Error::op("squeeze", e))?;
        let strides: Strides = keep.iter().map(|&d| self.strides()[d]).collect();
        self.reshape_to(shape, strides)
    }

    /// Inserts a dimension of size 1 at `dim` (`-1` appends).
    #[track_caller]
    pub fn unsqueeze(&self, dim: isize) -> Tensor {
        self.try_unsqueeze(dim).or_panic()
    }

    /// [`Tensor::unsqueeze`] as a `Result`.
    #[track_caller]
    pub fn try_unsqueeze(&self, dim: isize) -> Result<Tensor> {
        let d = wrap_dim("unsqueeze", dim, self.dim() + 1)?;
        let mut dims = self.sym_dims();
        let mut strides = self.strides().clone();
        // Strides are layout metadata (a view's), not part of the graph.
        let stride = if d < self.dim() { self.shape_unrecorded()[d] as isize * self.strides()[d] } else { 1 };
        dims.insert(d, Dim::from(1u64));
        strides.insert(d, stride);
        let shape = super::symbolic::shape_of(dims).map_err(|e| Error::op("unsqueeze", e))?;
        self.reshape_to(shape, strides)
    }

    /// Reorders dimensions: result dimension `i` is dimension `dims[i]`.
    ///
    /// ```
    /// use tenjit::prelude::*;
    /// assert_eq!(Tensor::zeros([2, 3, 4]).permute([2, 0, 1]).shape(), &[4, 2, 3]);
    /// ```
    #[track_caller]
    pub fn permute(&self, dims: impl AsRef<[isize]>) -> Tensor {
        self.try_permute(dims).or_panic()
    }

    /// [`Tensor::permute`] as a `Result`.
    #[track_caller]
    pub fn try_permute(&self, dims: impl AsRef<[isize]>) -> Result<Tensor> {
        let dims = dims.as_ref();
        if dims.len() != self.dim() {
            return Err(Error::op_of(
                OpErrorKind::Shape,
                "permute",
                format!(
                    "number of dims {} does not match the tensor's {} ({})",
                    dims.len(),
                    self.dim(),
                    self.ir_shape()
                ),
            ));
        }
        let mut perm: SmallVec<[usize; 4]> = SmallVec::new();
        for &d in dims {
            perm.push(wrap_dim("permute", d, self.dim())?);
        }
        let mut seen = vec![false; self.dim()];
        for &p in &perm {
            if std::mem::replace(&mut seen[p], true) {
                return Err(Error::op_of(
                    OpErrorKind::Axis,
                    "permute",
                    format!("dim {p} repeats in {dims:?}"),
                ));
            }
        }
        if perm.iter().enumerate().all(|(i, &p)| i == p) {
            return Ok(self.clone());
        }
        let strides: Strides = perm.iter().map(|&p| self.strides()[p]).collect();
        Tensor::from_op_strided(Op::Permute { perm }, &[self], Some(strides))
    }

    /// Swaps two dimensions.
    #[track_caller]
    pub fn transpose(&self, dim0: isize, dim1: isize) -> Tensor {
        self.try_transpose(dim0, dim1).or_panic()
    }

    /// [`Tensor::transpose`] as a `Result`.
    #[track_caller]
    pub fn try_transpose(&self, dim0: isize, dim1: isize) -> Result<Tensor> {
        if self.dim() == 0 {
            return Ok(self.clone());
        }
        let (a, b) = (wrap_dim("transpose", dim0, self.dim())?, wrap_dim("transpose", dim1, self.dim())?);
        let mut perm: Vec<isize> = (0..self.dim() as isize).collect();
        perm.swap(a, b);
        self.try_permute(perm)
    }

    /// The transpose of a matrix (`x.T`); vectors and scalars are returned unchanged.
    #[track_caller]
    pub fn t(&self) -> Tensor {
        self.try_t().or_panic()
    }

    /// [`Tensor::t`] as a `Result`: fails for more than 2 dimensions, as PyTorch's `t()`.
    #[track_caller]
    pub fn try_t(&self) -> Result<Tensor> {
        match self.dim() {
            0 | 1 => Ok(self.clone()),
            2 => self.try_transpose(0, 1),
            n => Err(Error::op_of(
                OpErrorKind::Shape,
                "t",
                format!("expects a tensor with <= 2 dimensions, but self is {n}D"),
            )),
        }
    }

    /// Broadcasts to `sizes` (`-1` keeps a size), as `x.expand(3, -1)`; the sizes may be
    /// [`SymSize`](super::symsize::SymSize)s.
    #[track_caller]
    pub fn expand(&self, sizes: impl IntoDims) -> Tensor {
        self.try_expand(sizes).or_panic()
    }

    /// [`Tensor::expand`] as a `Result`.
    #[track_caller]
    pub fn try_expand(&self, sizes: impl IntoDims) -> Result<Tensor> {
        let sizes = sizes.into_dims().entries("expand")?;
        if sizes.len() < self.dim() {
            return Err(Error::op_of(
                OpErrorKind::Shape,
                "expand",
                format!(
                    "the number of sizes {} must be at least the tensor's {} ({})",
                    sizes.len(),
                    self.dim(),
                    self.ir_shape()
                ),
            ));
        }
        let lead = sizes.len() - self.dim();
        let own = self.sym_dims();
        let mut shape = Vec::with_capacity(sizes.len());
        for (i, s) in sizes.into_iter().enumerate() {
            shape.push(match s {
                Some(d) => d,
                None if i >= lead => own[i - lead].clone(),
                None => {
                    return Err(Error::op(
                        "expand",
                        format!("invalid size -1 at dim {i}: a new dim needs a size"),
                    ))
                }
            });
        }
        let shape = super::symbolic::shape_of(shape).map_err(|e| Error::op("expand", e))?;
        self.expand_to("expand", &shape)
    }

    /// Broadcasts to `shape` with NumPy's rules.
    #[track_caller]
    pub fn broadcast_to(&self, shape: impl Into<Shape>) -> Tensor {
        self.expand_to("broadcast_to", &shape.into()).or_panic()
    }

    /// A tensor with PyTorch's contiguous layout (the values are the same; `view` then works).
    #[track_caller]
    pub fn contiguous(&self) -> Tensor {
        let shape = self.ty_unrecorded().shape.clone();
        self.reshape_to(shape.clone(), contiguous_strides(&shape)).or_panic()
    }

    /// Whether PyTorch would consider this tensor's layout contiguous.
    #[track_caller]
    pub fn is_contiguous(&self) -> bool {
        let c = contiguous_strides(self.ir_shape());
        self.shape().iter().zip(c.iter().zip(self.strides())).all(|(&n, (a, b))| n <= 1 || a == b)
    }
}
