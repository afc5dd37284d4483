//! Marking dims dynamic: `x.mark_dynamic(1)` says dim 1 of `x` will take other sizes (torch's
//! `torch._dynamo.mark_dynamic`), so the first graph that reads `x` is compiled once for
//! every size of that dim (see [`crate::runtime::dynamic`]), where an unmarked dim becomes
//! symbolic at the second size the structure meets.

use super::{wrap_dim, Tensor};
use crate::error::{OrPanic, Result};
use std::sync::atomic::Ordering;

impl Tensor {
    /// Marks dim `dim` (negative counts from the end) dynamic: the graphs that read this tensor
    /// as an input are compiled for every size of that dim from the first one (a dim of size 0
    /// or 1 stays its size). Returns the tensor, for chaining.
    ///
    /// ```
    /// use tenjit::prelude::*;
    /// let ids = Tensor::from_vec(vec![3i64, 1, 4], [1, 3]);
    /// ids.mark_dynamic(1);
    /// assert_eq!(ids.dynamic_dims(), vec![1]);
    /// ```
    #[track_caller]
    pub fn mark_dynamic(&self, dim: isize) -> &Tensor {
        self.try_mark_dynamic(dim).or_panic()
    }

    /// [`Tensor::mark_dynamic`] as a `Result`: an error names a dim out of range.
    #[track_caller]
    pub fn try_mark_dynamic(&self, dim: isize) -> Result<&Tensor> {
        let d = wrap_dim("mark_dynamic", dim, self.dim())?;
        if self.dim() > 0 && d < 64 {
            self.0.dynamic.fetch_or(1 << d, Ordering::Relaxed);
        }
        Ok(self)
    }

    /// The dims marked dynamic, in order.
    pub fn dynamic_dims(&self) -> Vec<usize> {
        let bits = self.0.dynamic.load(Ordering::Relaxed);
        (0..self.dim().min(64)).filter(|&d| bits >> d & 1 == 1).collect()
    }
}
