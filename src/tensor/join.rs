//! Joining and splitting: `cat`, `stack`, `split`, `chunk`.

use super::{wrap_dim, Tensor};
use crate::error::{Error, OpErrorKind, OrPanic, Result};
use smallvec::SmallVec;
use std::sync::Arc;
use tenjit_ir::ops::SliceBounds;
use tenjit_ir::sym::{Dim, SymExpr};
use tenjit_ir::types::promote;
use tenjit_ir::Op;

impl Tensor {
    /// Concatenates tensors along an existing dim, promoting dtypes, as `torch.cat`.
    ///
    /// ```
    /// use tenjit::prelude::*;
    /// let c = Tensor::cat(&[&tensor!([1, 2]), &tensor!([3])], 0);
    /// assert_eq!(c.to_string(), "tensor([1, 2, 3])");
    /// ```
    #[track_caller]
    pub fn cat(tensors: &[&Tensor], dim: isize) -> Tensor {
        Tensor::try_cat(tensors, dim).or_panic()
    }

    /// [`Tensor::cat`] as a `Result`.
    #[track_caller]
    pub fn try_cat(tensors: &[&Tensor], dim: isize) -> Result<Tensor> {
        let Some(first) = tensors.first() else {
            return Err(Error::op("cat", "expected a non-empty list of tensors"));
        };
        let d = wrap_dim("cat", dim, first.dim())?;
        if first.dim() == 0 {
            return Err(Error::op("cat", "zero-dimensional tensors cannot be concatenated"));
        }
        let dtype = tensors.iter().map(|t| t.dtype()).reduce(promote).expect("non-empty");
        for (i, t) in tensors.iter().enumerate() {
            let same =
                t.dim() == first.dim() && (0..t.dim()).all(|j| j == d || t.shape()[j] == first.shape()[j]);
            if !same {
                return Err(Error::op_of(OpErrorKind::Shape,
                    "cat",
                    format!(
                        "sizes of tensors must match except in dimension {d}: tensor 0 is {} but tensor {i} is {}",
                        first.ir_shape(),
                        t.ir_shape()
                    ),
                ));
            }
        }
        if tensors.len() == 1 {
            return first.try_to_dtype(dtype);
        }
        let mut cast = Vec::with_capacity(tensors.len());
        for t in tensors {
            cast.push(t.try_to_dtype(dtype)?);
        }
        let refs: Vec<&Tensor> = cast.iter().collect();
        Tensor::from_op(Op::Concat { axis: d }, &refs)
    }

    /// Stacks equally shaped tensors along a new dim, as `torch.stack`.
    #[track_caller]
    pub fn stack(tensors: &[&Tensor], dim: isize) -> Tensor {
        Tensor::try_stack(tensors, dim).or_panic()
    }

    /// [`Tensor::stack`] as a `Result`.
    #[track_caller]
    pub fn try_stack(tensors: &[&Tensor], dim: isize) -> Result<Tensor> {
        let Some(first) = tensors.first() else {
            return Err(Error::op("stack", "expected a non-empty list of tensors"));
        };
        if let Some((i, t)) = tensors.iter().enumerate().find(|(_, t)| t.shape() != first.shape()) {
            return Err(Error::op_of(
                OpErrorKind::Shape,
                "stack",
                format!(
                    "stack expects each tensor to be equal size, but got {} at entry 0 and {} at entry {i}",
                    first.ir_shape(),
                    t.ir_shape()
                ),
            ));
        }
        let d = wrap_dim("stack", dim, first.dim() + 1)?;
        let mut expanded = Vec::with_capacity(tensors.len());
        for t in tensors {
            expanded.push(t.try_unsqueeze(d as isize)?);
        }
        let refs: Vec<&Tensor> = expanded.iter().collect();
        Tensor::try_cat(&refs, d as isize)
    }

    /// Splits into pieces of `size` along `dim` (the last may be smaller), as
    /// `torch.split(x, size, dim)`: the tutorial's mini-batches.
    ///
    /// ```
    /// use tenjit::prelude::*;
    /// let batches = Tensor::zeros([100, 3]).split(16, 0);
    /// assert_eq!(batches.len(), 7);
    /// assert_eq!(batches[6].shape(), &[4, 3]);
    /// ```
    #[track_caller]
    pub fn split(&self, size: usize, dim: isize) -> Vec<Tensor> {
        self.try_split(size, dim).or_panic()
    }

    /// [`Tensor::split`] as a `Result`.
    #[track_caller]
    pub fn try_split(&self, size: usize, dim: isize) -> Result<Vec<Tensor>> {
        let d = wrap_dim("split", dim, self.dim())?;
        if self.dim() == 0 {
            return Err(Error::op("split", "cannot split a 0-D tensor"));
        }
        if size == 0 {
            return Err(Error::op("split", "split size must be positive"));
        }
        let n = self.const_size(d);
        let mut pieces = Vec::new();
        let mut start = 0;
        while start < n || (n == 0 && pieces.is_empty()) {
            let len = size.min(n - start);
            pieces.push(self.narrow_dim(d, start, len)?);
            start += len;
            if n == 0 {
                break;
            }
        }
        Ok(pieces)
    }

    /// Splits into `chunks` pieces of equal size along `dim` (the last may be smaller), as
    /// `torch.chunk`.
    #[track_caller]
    pub fn chunk(&self, chunks: usize, dim: isize) -> Vec<Tensor> {
        self.try_chunk(chunks, dim).or_panic()
    }

    /// [`Tensor::chunk`] as a `Result`.
    #[track_caller]
    pub fn try_chunk(&self, chunks: usize, dim: isize) -> Result<Vec<Tensor>> {
        if chunks == 0 {
            return Err(Error::op("chunk", "chunk expects `chunks` to be greater than 0"));
        }
        let d = wrap_dim("chunk", dim, self.dim())?;
        let n = if self.dim() == 0 { 1 } else { self.const_size(d) };
        self.try_split(n.div_ceil(chunks).max(1), dim)
    }

    /// Size `d` when it is constant (no read); else the size at the trace's hints, a read.
    #[track_caller]
    fn const_size(&self, d: usize) -> usize {
        match self.sym_dims()[d].as_const() {
            Some(n) => n as usize,
            None => self.shape()[d],
        }
    }

    /// Elements `start..start+len` along axis `d`.
    #[track_caller]
    pub(crate) fn narrow_dim(&self, d: usize, start: usize, len: usize) -> Result<Tensor> {
        if start == 0 && len == self.const_size(d) {
            return Ok(self.clone());
        }
        let r = self.dim();
        let first = if len == 0 { 0 } else { start };
        let mut st: SmallVec<[isize; 4]> = SmallVec::from_elem(0, r);
        st[d] = first as isize;
        let mut size: SmallVec<[usize; 4]> = SmallVec::from_slice(self.shape_unrecorded());
        size[d] = len;
        // Inside a symbolic trace the other dims keep their expressions (dim `d` is constant,
        // or `const_size` recorded the read and `d` is taken at its hint).
        let bounds = if self.ty_unrecorded().shape.is_symbolic() {
            let mut sym_size = self.sym_dims();
            sym_size[d] = Dim::from(len as u64);
            let mut sym_start = vec![SymExpr::from(0); r];
            sym_start[d] = SymExpr::constant(first as i64).map_err(|e| Error::op("narrow", e.to_string()))?;
            Some(Arc::new(SliceBounds { start: sym_start, size: sym_size }))
        } else {
            None
        };
        Tensor::from_op_strided(
            Op::Slice { start: st, step: SmallVec::from_elem(1, r), size, bounds },
            &[self],
            Some(self.strides().clone()),
        )
    }
}
