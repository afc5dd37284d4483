//! Indexing: basic slicing with the [`s!`](crate::s) macro (ranges with steps and negative
//! bounds, integer indices that drop a dim, `..`, [`NewAxis`], [`Ellipsis`]), and advanced
//! indexing with tensors: `index_select`, `gather`, `masked_select`, `one_hot`.
//!
//! `t.i(s![1..3, ..;-1])` is NumPy's `t[1:3, ::-1]`: a range is `start..end`, `start..`,
//! `..end` or `..`, optionally followed by `;step`; bounds may be negative (counted from the
//! end) and are clamped as Python clamps them; a negative step walks backwards. (PyTorch
//! rejects negative steps; NumPy's semantics are used.)

use super::symsize::SymSize;
use super::{wrap_dim, Strides, Tensor};
use crate::device::Device;
use crate::error::{AtCaller, Error, OpErrorKind, OrPanic, Result};
use smallvec::SmallVec;
use std::ops::{Range, RangeFrom, RangeFull, RangeInclusive, RangeTo, RangeToInclusive};
use std::sync::Arc;
use tenjit_ir::ops::SliceBounds;
use tenjit_ir::sym::{Dim, SymExpr};
use tenjit_ir::{Buffer, DType, Op, Shape};

/// One entry of an index expression.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SliceItem {
    /// An integer index: selects one position and drops the dimension.
    Index(isize),
    /// A range with a step: keeps the dimension.
    Range {
        /// First index (`None`: from the start, or from the end for a negative step).
        start: Option<isize>,
        /// One past the last index (`None`: to the end, or the start for a negative step).
        end: Option<isize>,
        /// Step, never zero.
        step: isize,
    },
    /// Inserts a dimension of size 1 (`None` / `np.newaxis` in Python).
    NewAxis,
    /// Stands for as many full ranges as needed (`...` in Python).
    Ellipsis,
}

/// Inserts a new axis of size 1, as Python's `None` in an index.
#[derive(Clone, Copy, Debug)]
pub struct NewAxis;
/// Python's `...` in an index: as many full ranges as needed.
#[derive(Clone, Copy, Debug)]
pub struct Ellipsis;

impl From<NewAxis> for SliceItem {
    fn from(_: NewAxis) -> SliceItem {
        SliceItem::NewAxis
    }
}

impl From<Ellipsis> for SliceItem {
    fn from(_: Ellipsis) -> SliceItem {
        SliceItem::Ellipsis
    }
}

impl SliceItem {
    /// Sets the step of a range (`s!` writes it as `range;step`).
    pub fn step_by(self, step: isize) -> SliceItem {
        match self {
            SliceItem::Range { start, end, .. } => SliceItem::Range { start, end, step },
            other => other,
        }
    }
}

macro_rules! int_items {
    ($($t:ty),*) => {$(
        impl From<$t> for SliceItem {
            fn from(i: $t) -> SliceItem {
                SliceItem::Index(i as isize)
            }
        }
        impl From<Range<$t>> for SliceItem {
            fn from(r: Range<$t>) -> SliceItem {
                SliceItem::Range { start: Some(r.start as isize), end: Some(r.end as isize), step: 1 }
            }
        }
        impl From<RangeFrom<$t>> for SliceItem {
            fn from(r: RangeFrom<$t>) -> SliceItem {
                SliceItem::Range { start: Some(r.start as isize), end: None, step: 1 }
            }
        }
        impl From<RangeTo<$t>> for SliceItem {
            fn from(r: RangeTo<$t>) -> SliceItem {
                SliceItem::Range { start: None, end: Some(r.end as isize), step: 1 }
            }
        }
        impl From<RangeInclusive<$t>> for SliceItem {
            fn from(r: RangeInclusive<$t>) -> SliceItem {
                let end = *r.end() as isize + 1;
                // `a..=-1` means "through the last element".
                let end = if end == 0 { None } else { Some(end) };
                SliceItem::Range { start: Some(*r.start() as isize), end, step: 1 }
            }
        }
        impl From<RangeToInclusive<$t>> for SliceItem {
            fn from(r: RangeToInclusive<$t>) -> SliceItem {
                let end = r.end as isize + 1;
                SliceItem::Range { start: None, end: if end == 0 { None } else { Some(end) }, step: 1 }
            }
        }
    )*};
}
int_items!(i32, i64, isize, usize);

impl From<RangeFull> for SliceItem {
    fn from(_: RangeFull) -> SliceItem {
        SliceItem::Range { start: None, end: None, step: 1 }
    }
}

/// Builds an index expression for [`Tensor::i`], as NumPy's `t[1:3, ::-1]`:
/// `s![1..3, ..;-1]`. Entries: `a..b`, `a..`, `..b`, `..`, `a..=b` (each optionally `;step`),
/// an integer, [`NewAxis`] or [`Ellipsis`].
///
/// ```
/// use tenjit::prelude::*;
/// let t = Tensor::arange(12).reshape([3, 4]);
/// assert_eq!(t.i(s![1..3, ..;-1]).to_string(), "tensor([[ 7,  6,  5,  4],\n        [11, 10,  9,  8]])");
/// assert_eq!(t.i(s![-1]).to_string(), "tensor([ 8,  9, 10, 11])");
/// assert_eq!(t.i(s![.., 1]).to_string(), "tensor([1, 5, 9])");
/// assert_eq!(t.i(s![Ellipsis, NewAxis]).shape(), &[3, 4, 1]);
/// ```
#[macro_export]
macro_rules! s {
    (@item $e:expr ; $step:expr) => { $crate::SliceItem::from($e).step_by($step) };
    (@item $e:expr) => { $crate::SliceItem::from($e) };
    ($($e:expr $(; $step:expr)?),* $(,)?) => {
        [$( $crate::s!(@item $e $(; $step)?) ),*]
    };
}

/// Python's `slice.indices`: (start, count) of a range with a nonzero `step` over a dimension of
/// size `n`. The arithmetic is in `i128`, so no step (`isize::MIN` and `isize::MAX` included)
/// overflows: `a[::isize::MIN]` is the last element, as in NumPy.
fn resolve(start: Option<isize>, end: Option<isize>, step: isize, n: usize) -> (isize, usize) {
    let n = n as i128;
    let clamp = |v: i128, lo: i128, hi: i128| v.max(lo).min(hi);
    let norm = |v: isize| if v < 0 { v as i128 + n } else { v as i128 };
    let step = step as i128;
    let (s, e) = if step > 0 {
        (start.map_or(0, |v| clamp(norm(v), 0, n)), end.map_or(n, |v| clamp(norm(v), 0, n)))
    } else {
        (start.map_or(n - 1, |v| clamp(norm(v), -1, n - 1)), end.map_or(-1, |v| clamp(norm(v), -1, n - 1)))
    };
    // Elements s, s + step, ... strictly before e (after it, for a negative step).
    let count = if step > 0 && e > s {
        (e - s + step - 1) / step
    } else if step < 0 && s > e {
        (s - e - step - 1) / -step
    } else {
        0
    };
    // `s` lies in -1..=n and `count` in 0..=n, both of which fit the dimension's types.
    (s as isize, count as usize)
}

/// The start and size of `item` along a dim of size `n` as expressions over a symbolic trace's
/// symbols, when they are expressions of `n` that equal `resolved` (the start and size at the
/// trace's hints): an index, or a range of positive step whose ends are absent, counted from
/// the start, or counted from the end (`x[:, -1]`, `x[:, 1:]`, `x[:, -64:]`). Python's
/// clamping of an end past the dim is not an expression: where it applies at the hints the
/// expressions disagree with `resolved` (`None`: the caller reads the size); where it would
/// apply at other sizes, the symbolic type rule of the slice rejects the bounds (the trace is
/// then not replayed).
fn sym_bounds(item: &SliceItem, n: &Dim, resolved: (isize, usize)) -> Option<(SymExpr, Dim)> {
    let n = n.expr()?;
    let at = |v: isize| -> Option<SymExpr> {
        let k = SymExpr::constant(v as i64).ok()?;
        if v < 0 {
            n.add(&k).ok()
        } else {
            Some(k)
        }
    };
    let (start, count) = match *item {
        SliceItem::Index(i) => (at(i)?, SymExpr::from(1)),
        SliceItem::Range { start, end, step } if step > 0 => {
            let s = start.map_or(Some(SymExpr::from(0)), at)?;
            let e = end.map_or(Some(n.clone()), at)?;
            let span = e.sub(&s).ok()?;
            let count = if step == 1 {
                span
            } else {
                span.add(&SymExpr::constant(step as i64 - 1).ok()?).ok()?.floor_div(step as u64).ok()?
            };
            (s, count)
        }
        _ => return None,
    };
    let agrees = super::symbolic::eval_at_hints(&start) == Some(resolved.0 as i64)
        && super::symbolic::eval_at_hints(&count) == Some(resolved.1 as i64);
    agrees.then_some(())?;
    Some((start, Dim::from_expr(count).ok()?))
}

impl Tensor {
    /// Basic indexing with an index expression from [`s!`](crate::s); see the module docs.
    #[track_caller]
    pub fn i(&self, index: impl AsRef<[SliceItem]>) -> Tensor {
        self.try_i(index).or_panic()
    }

    /// [`Tensor::i`] as a `Result`: fails on too many indices, an index out of bounds, a zero
    /// step or more than one ellipsis.
    #[track_caller]
    pub fn try_i(&self, index: impl AsRef<[SliceItem]>) -> Result<Tensor> {
        let items = index.as_ref();
        let consuming =
            items.iter().filter(|it| matches!(it, SliceItem::Index(_) | SliceItem::Range { .. })).count();
        let ellipses = items.iter().filter(|it| **it == SliceItem::Ellipsis).count();
        if ellipses > 1 {
            return Err(Error::op("index", "an index can only have a single ellipsis ('...')"));
        }
        if consuming > self.dim() {
            return Err(Error::op_of(
                OpErrorKind::Index,
                "index",
                format!("too many indices for tensor of dimension {}", self.dim()),
            ));
        }
        // Expand the ellipsis (or pad at the end) with full ranges.
        let full = SliceItem::Range { start: None, end: None, step: 1 };
        let mut expanded: Vec<SliceItem> = Vec::new();
        for it in items {
            if *it == SliceItem::Ellipsis {
                expanded.extend(std::iter::repeat_n(full, self.dim() - consuming));
            } else {
                expanded.push(*it);
            }
        }
        if ellipses == 0 {
            expanded.extend(std::iter::repeat_n(full, self.dim() - consuming));
        }
        let (mut start, mut step, mut size) = (SmallVec::new(), SmallVec::new(), SmallVec::new());
        let (mut out_shape, mut out_strides) = (Vec::new(), Strides::new());
        // Inside a symbolic trace, the bounds over the dims' expressions (see `sym_bounds`).
        let dims = self.sym_dims();
        let symbolic = self.ty_unrecorded().shape.is_symbolic();
        let (mut sym_start, mut sym_size, mut sym_out) = (Vec::new(), Vec::new(), Vec::new());
        let mut d = 0;
        for it in &expanded {
            // The start and count of a consuming item at the hints; `None` for a new axis.
            let resolved = match *it {
                SliceItem::Index(i) => {
                    let n = self.shape_unrecorded()[d];
                    let j = if i < 0 { i + n as isize } else { i };
                    if j < 0 || j >= n as isize {
                        return Err(Error::op_of(
                            OpErrorKind::Index,
                            "index",
                            format!("index {i} is out of bounds for dimension {d} with size {n}"),
                        ));
                    }
                    start.push(j);
                    step.push(1);
                    size.push(1);
                    Some((j, 1))
                }
                SliceItem::Range { start: s, end: e, step: st } => {
                    if st == 0 {
                        return Err(Error::op("index", "slice step cannot be zero"));
                    }
                    let (s0, count) = resolve(s, e, st, self.shape_unrecorded()[d]);
                    start.push(if count == 0 { 0 } else { s0 });
                    // With at most one element the step does not matter: 1 keeps huge steps
                    // (`isize::MIN`) out of the IR's index arithmetic.
                    // (Not for a symbolic dim, whose count is one only at its hint.)
                    let varies = symbolic && dims[d].as_const().is_none();
                    step.push(if count <= 1 && !varies { 1 } else { st });
                    size.push(count);
                    out_shape.push(count);
                    // A step past the dimension's size keeps at most one element, whose stride
                    // does not matter; saturating keeps the product from overflowing.
                    out_strides.push(self.strides()[d].saturating_mul(st));
                    Some((s0, count))
                }
                SliceItem::NewAxis => {
                    out_shape.push(1);
                    out_strides.push(1);
                    None
                }
                SliceItem::Ellipsis => unreachable!("expanded above"),
            };
            match resolved {
                Some(resolved) => {
                    if symbolic {
                        let (s0, n0) = match sym_bounds(it, &dims[d], resolved) {
                            Some(bounds) => bounds,
                            None => {
                                // Not an expression of the dim that agrees with its size here:
                                // by the size.
                                self.record_size_read("index");
                                let s0 = SymExpr::constant(resolved.0 as i64)
                                    .map_err(|e| Error::op("index", e.to_string()))?;
                                (s0, Dim::from(resolved.1 as u64))
                            }
                        };
                        sym_start.push(s0);
                        if !matches!(it, SliceItem::Index(_)) {
                            sym_out.push(n0.clone());
                        }
                        sym_size.push(n0);
                    }
                    d += 1;
                }
                None => sym_out.push(Dim::from(1)),
            }
        }
        let identity = if symbolic {
            (0..self.dim())
                .all(|d| sym_start[d].as_const() == Some(0) && step[d] == 1 && sym_size[d] == dims[d])
        } else {
            (0..self.dim()).all(|d| start[d] == 0 && step[d] == 1 && size[d] == self.shape_unrecorded()[d])
        };
        let sliced = if identity {
            self.clone()
        } else {
            let strides: Strides =
                (0..self.dim()).map(|d| self.strides()[d].saturating_mul(step[d])).collect();
            let bounds = symbolic.then(|| Arc::new(SliceBounds { start: sym_start, size: sym_size }));
            Tensor::from_op_strided(Op::Slice { start, step, size, bounds }, &[self], Some(strides))?
        };
        let shape = if symbolic {
            super::symbolic::shape_of(sym_out).map_err(|e| Error::op("index", e))?
        } else {
            Shape::from(out_shape)
        };
        if sliced.ty_unrecorded().shape == shape {
            return Ok(sliced);
        }
        Tensor::from_op_strided(Op::Reshape { shape }, &[&sliced], Some(out_strides))
    }

    /// Reverses the order of elements along `dims`, as `torch.flip` (NumPy's `x[::-1]`).
    ///
    /// ```
    /// use tenjit::prelude::*;
    /// assert_eq!(Tensor::arange(4).flip([0]).to_string(), "tensor([3, 2, 1, 0])");
    /// ```
    #[track_caller]
    pub fn flip(&self, dims: impl AsRef<[isize]>) -> Tensor {
        self.try_flip(dims).or_panic()
    }

    /// [`Tensor::flip`] as a `Result`.
    #[track_caller]
    pub fn try_flip(&self, dims: impl AsRef<[isize]>) -> Result<Tensor> {
        let full = SliceItem::Range { start: None, end: None, step: 1 };
        let mut items = vec![full; self.dim()];
        for &d in dims.as_ref() {
            let d = wrap_dim("flip", d, self.dim())?;
            if items[d] != full {
                return Err(Error::op_of(
                    OpErrorKind::Axis,
                    "flip",
                    format!("dim {d} appears multiple times in the list of dims"),
                ));
            }
            items[d] = full.step_by(-1);
        }
        self.try_i(items)
    }

    /// Selects entries along `dim` at the positions of a 1-D integer `index`, as
    /// `torch.index_select` (one-hot rows: `Tensor::eye(4).index_select(0, &labels)`).
    ///
    /// ```
    /// use tenjit::prelude::*;
    /// let labels = tensor!([0, 2, 1, 3]);
    /// let one_hot = Tensor::eye(4).index_select(0, &labels);
    /// assert_eq!(one_hot.i(s![1]).to_string(), "tensor([0., 0., 1., 0.])");
    /// ```
    #[track_caller]
    pub fn index_select(&self, dim: isize, index: &Tensor) -> Tensor {
        self.try_index_select(dim, index).or_panic()
    }

    /// [`Tensor::index_select`] as a `Result`. Indices out of range are reported when the
    /// value is computed.
    #[track_caller]
    pub fn try_index_select(&self, dim: isize, index: &Tensor) -> Result<Tensor> {
        let d = wrap_dim("index_select", dim, self.dim())?;
        if index.dim() > 1 || !index.dtype().is_int() {
            return Err(Error::op_of(
                OpErrorKind::DType,
                "index_select",
                format!("index must be a 0-D or 1-D integer tensor, got {}", index.ty()),
            ));
        }
        if self.dim() == 0 {
            return Err(Error::op_of(
                OpErrorKind::Axis,
                "index_select",
                "cannot index a 0-D tensor along a dimension",
            ));
        }
        // Over the sizes' expressions, so a symbolic count of indices stays symbolic.
        let k = index.sym_shape().into_iter().fold(SymSize::from(1), |n, d| n * d);
        let mut view = vec![SymSize::from(1); self.dim()];
        view[d] = k.clone();
        let mut target = self.sym_dims();
        target[d] = k.dim().clone();
        let target = super::symbolic::shape_of(target).map_err(|e| Error::op("index_select", e))?;
        let idx = index.try_to_dtype(DType::I64)?.try_reshape(view)?.expand_to("index_select", &target)?;
        Tensor::from_op_named(Op::Gather { axis: d }, &[self, &idx], "index_select")
    }

    /// `torch.gather`: `out[i][j] = self[index[i][j]][j]` for `dim = 0`.
    #[track_caller]
    pub fn gather(&self, dim: isize, index: &Tensor) -> Tensor {
        self.try_gather(dim, index).or_panic()
    }

    /// [`Tensor::gather`] as a `Result`.
    #[track_caller]
    pub fn try_gather(&self, dim: isize, index: &Tensor) -> Result<Tensor> {
        let d = wrap_dim("gather", dim, self.dim())?;
        if !index.dtype().is_int() {
            return Err(Error::op_of(
                OpErrorKind::DType,
                "gather",
                format!("index must be an integer tensor, got {}", index.ty()),
            ));
        }
        let idx = index.try_to_dtype(DType::I64)?;
        Tensor::from_op(Op::Gather { axis: d }, &[self, &idx])
    }

    /// The elements where `mask` is true, as a 1-D tensor (`t[t > 5]`, `torch.masked_select`).
    ///
    /// The result's length depends on the data, so this is a realization boundary: the mask
    /// and the tensor are computed now, and what follows is built with the concrete shape.
    ///
    /// ```
    /// use tenjit::prelude::*;
    /// let t = Tensor::arange(10);
    /// assert_eq!(t.masked_select(&t.gt(5)).to_string(), "tensor([6, 7, 8, 9])");
    /// ```
    #[track_caller]
    pub fn masked_select(&self, mask: &Tensor) -> Tensor {
        self.try_masked_select(mask).or_panic()
    }

    /// [`Tensor::masked_select`] as a `Result`.
    #[track_caller]
    pub fn try_masked_select(&self, mask: &Tensor) -> Result<Tensor> {
        if mask.dtype() != DType::Bool {
            return Err(Error::op_of(
                OpErrorKind::DType,
                "masked_select",
                format!("mask must be a bool tensor, got {}", mask.ty()),
            ));
        }
        let shape =
            tenjit_ir::ops::broadcast_for("masked_select", self.ir_shape(), mask.ir_shape()).at_caller()?;
        let x = self.expand_to("masked_select", &shape)?;
        let m = mask.expand_to("masked_select", &shape)?;
        crate::realize::try_realize(&[&x, &m])?;
        let (xb, mb) = (x.buffer()?, m.buffer()?);
        let keep = mb.as_slice::<bool>().expect("a bool mask");
        let picked: Vec<_> = (0..xb.numel()).filter(|&i| keep[i]).map(|i| xb.scalar(i)).collect();
        let n = picked.len();
        let buf = Buffer::from_scalars(xb.dtype(), Shape::new(&[n]), picked);
        // The selection is made on the host; the result lives where its operand does.
        Tensor::from_buffer(buf, Device::Cpu).try_to(self.device())
    }

    /// One-hot encoding of integer class labels (`i64`, a new last dimension of
    /// `num_classes`), as `torch.nn.functional.one_hot`. As in PyTorch, the labels are computed
    /// and read to check them: a label outside `0..num_classes` panics here (an error from
    /// [`Tensor::try_one_hot`]) rather than giving a row of zeros.
    ///
    /// ```
    /// use tenjit::prelude::*;
    /// let oh = tensor!([0, 2]).one_hot(3);
    /// assert_eq!(oh.to_string(), "tensor([[1, 0, 0],\n        [0, 0, 1]])");
    /// ```
    #[track_caller]
    pub fn one_hot(&self, num_classes: usize) -> Tensor {
        self.try_one_hot(num_classes).or_panic()
    }

    /// [`Tensor::one_hot`] as a `Result`.
    #[track_caller]
    pub fn try_one_hot(&self, num_classes: usize) -> Result<Tensor> {
        if !self.dtype().is_int() {
            return Err(Error::op_of(
                OpErrorKind::DType,
                "one_hot",
                format!("labels must be an integer tensor, got {}", self.ty()),
            ));
        }
        let classes = i64::try_from(num_classes)
            .ok()
            .filter(|_| self.numel().checked_mul(num_classes).is_some_and(|n| n <= isize::MAX as usize))
            .ok_or_else(|| {
                Error::op_of(
                    OpErrorKind::Size,
                    "one_hot",
                    format!("{num_classes} classes for labels of shape {:?} is too large", self.shape()),
                )
            })?;
        // As PyTorch does, the labels are read to check their range: a label outside
        // 0..num_classes would otherwise give a row of zeros.
        let labels = self.try_to_vec::<i64>()?;
        if let Some(&bad) = labels.iter().find(|&&l| l < 0 || l >= classes) {
            return Err(Error::op_of(OpErrorKind::Index,
                "one_hot",
                format!("class value {bad} is out of range for num_classes = {num_classes} (expected 0..{num_classes})"),
            ));
        }
        let classes = Tensor::arange(classes);
        // Labels [.., 1] against classes [C]: expand one side, an intended outer comparison.
        let mut sizes: Vec<isize> = self.shape().iter().map(|&d| d as isize).collect();
        sizes.push(num_classes as isize);
        Ok(self.try_unsqueeze(-1)?.try_expand(sizes)?.try_eq(&classes)?.to_dtype(DType::I64))
    }
}
