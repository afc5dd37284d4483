//! Marking dims dynamic: `x.mark_dynamic(1)` says dim 1 of `x` will take other sizes (torch's
//! `torch._dynamo.mark_dynamic`), so the first graph that reads `x` is compiled once for
//! every size of that dim (see [`crate::runtime::dynamic`]), where an unmarked dim becomes
//! symbolic at the second size the structure meets. [`Tensor::mark_dynamic_as`] also names
//! the symbol and bounds it (torch's `min=`/`max=`, tinygrad's `Variable("T", 1, 64)`).

use super::{wrap_dim, Tensor};
use crate::error::{Error, OrPanic, Result};
use std::ops::{Bound, RangeBounds};
use tenjit_ir::graph::Mark;
use tenjit_ir::sym::Symbol;

impl Tensor {
    /// Marks dim `dim` (negative counts from the end) dynamic: the graphs that read this tensor
    /// as an input are compiled for every size of that dim from the first one (a dim of size 0
    /// or 1 stays its size). A mark counts where the tensor is an input of a graph: a tensor of
    /// values (built from data, or computed already), not one a graph still computes. Returns
    /// the tensor, for chaining.
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
        self.add_mark(Mark::new(0, d));
        Ok(self)
    }

    /// Marks dim `dim` dynamic as the symbol `name`, ranging over `sizes`: dims of several
    /// tensors marked with one name are one symbol (known equal, so combining them needs no
    /// guard), and the bound lets the compiler prove what holds only up to it (a slice
    /// `pos[:T]` of a table of 64 positions, for `T` in `1..=64`). Sizes 0 and 1 stay special
    /// whatever the range: a range starting below 2 starts at 2, and those sizes compile apart,
    /// as sizes outside the range do. Returns the tensor, for chaining.
    ///
    /// ```
    /// use tenjit::prelude::*;
    /// let ids = Tensor::from_vec(vec![3i64, 1, 4], [1, 3]);
    /// ids.mark_dynamic_as(1, "T", 1..=64);
    /// assert_eq!(ids.dynamic_dims(), vec![1]);
    /// // The dim's size must be in the range.
    /// assert!(ids.try_mark_dynamic_as(1, "T", 4..=64).is_err());
    /// ```
    #[track_caller]
    pub fn mark_dynamic_as(&self, dim: isize, name: &str, sizes: impl RangeBounds<usize>) -> &Tensor {
        self.try_mark_dynamic_as(dim, name, sizes).or_panic()
    }

    /// [`Tensor::mark_dynamic_as`] as a `Result`: an error names a dim out of range, a name
    /// that is no identifier, an empty range, or a size outside the range.
    #[track_caller]
    pub fn try_mark_dynamic_as(
        &self,
        dim: isize,
        name: &str,
        sizes: impl RangeBounds<usize>,
    ) -> Result<&Tensor> {
        let d = wrap_dim("mark_dynamic_as", dim, self.dim())?;
        let bad = |message: String| Error::op("mark_dynamic_as", message);
        let lo = match sizes.start_bound() {
            Bound::Included(&n) => n as u64,
            Bound::Excluded(&n) => n as u64 + 1,
            Bound::Unbounded => 0,
        };
        let hi = match sizes.end_bound() {
            Bound::Included(&n) => Some(n as u64),
            Bound::Excluded(&0) => return Err(bad(format!("the range of {name} is empty"))),
            Bound::Excluded(&n) => Some(n as u64 - 1),
            Bound::Unbounded => None,
        };
        let symbol = Symbol::new(name, lo, hi).map_err(|e| bad(e.to_string()))?;
        let size = self.shape()[d] as u64;
        if !symbol.contains(size) {
            return Err(bad(format!(
                "dim {d} has size {size}, outside the range {symbol} it is marked with"
            )));
        }
        self.add_mark(Mark { input: 0, dim: d, name: Some(name.to_string()), lo, hi });
        Ok(self)
    }

    /// The dims marked dynamic, in order.
    pub fn dynamic_dims(&self) -> Vec<usize> {
        let mut dims: Vec<usize> = self.marks().iter().map(|m| m.dim).collect();
        dims.sort_unstable();
        dims
    }

    /// The marks on this tensor's dims (their `input` is 0: the graph input this tensor is
    /// is known only when a graph is built).
    pub(crate) fn marks(&self) -> Vec<Mark> {
        self.0.dynamic.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Adds `mark`, replacing an earlier mark of its dim.
    fn add_mark(&self, mark: Mark) {
        if self.dim() == 0 {
            return;
        }
        let mut marks = self.0.dynamic.lock().unwrap_or_else(|p| p.into_inner());
        marks.retain(|m| m.dim != mark.dim);
        marks.push(mark);
    }
}
