//! [`SymSize`]: a size that may be symbolic, as torch's `SymInt`. Inside a symbolic trace of
//! [`crate::jit()`], [`Tensor::sym_size`] of a marked dim is an expression over the trace's
//! size symbols (`s0`, `2*s0 + 1`); outside one it is the size. A model reads its sizes this
//! way when it computes shapes from them, so its trace holds for every size:
//!
//! ```
//! use tenjit::prelude::*;
//! // Heads of a [batch, length, 8] tensor, as nanoGPT writes it: `x.view(B, T, 2, 4)`.
//! let heads = |x: &Tensor| {
//!     let (b, t) = (x.sym_size(0), x.sym_size(1));
//!     x.reshape([b, t, 2.into(), 4.into()]).transpose(1, 2)
//! };
//! let f = tenjit::jit(move |a: &[Tensor]| vec![heads(&a[0])]);
//! for t in [3, 5, 9] {
//!     let x = Tensor::randn([2, t, 8]);
//!     x.mark_dynamic(1);
//!     assert_eq!(f.call(&[&x])[0].shape(), &[2, 2, t, 4]);
//! }
//! assert_eq!(f.trace_count(), 1);
//! ```
//!
//! Reading a symbolic size's value ([`SymSize::get`]) is a size read: the trace records it and
//! is traced again at each size (see [`crate::Jit::why_traced_again`]). What takes a `SymSize`
//! without reading it: arithmetic (`+`, `-`, `*`, floor `/` and `%` by constants),
//! [`Tensor::reshape`], [`Tensor::view`], [`Tensor::expand`], [`Tensor::arange`],
//! [`Tensor::unflatten`]. As with `usize`, arithmetic whose result is a negative constant (or
//! overflows, or divides by zero) panics, naming the operation.

use super::symbolic;
use super::{wrap_dim, Tensor};
use crate::error::{Error, OpErrorKind, OrPanic, Result};
use std::fmt;
use std::ops::{Add, Div, Mul, Rem, Sub};
use std::panic::Location;
use tenjit_ir::sym::{Dim, SymExpr};

/// A size that may be an expression over the size symbols of a symbolic trace (torch's
/// `SymInt`); see [the module docs](self).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SymSize(Dim);

impl SymSize {
    pub(crate) fn dim(&self) -> &Dim {
        &self.0
    }

    /// The size if it is a constant (always, outside a symbolic trace); `None` if symbolic.
    /// Whether a size is symbolic is a property of the trace, not of the size: no read.
    pub fn as_const(&self) -> Option<usize> {
        self.0.as_const().map(|v| v as usize)
    }

    /// Whether the size is an expression over symbols.
    pub fn is_symbolic(&self) -> bool {
        self.0.as_const().is_none()
    }

    /// The size's value: its constant, or its value at the trace's hints, which the trace
    /// records as a read of a dynamic size (the trace then holds only at these sizes). Panics
    /// for a symbolic size kept past the end of its trace (its symbols have no value there).
    #[track_caller]
    pub fn get(&self) -> usize {
        if let Some(v) = self.as_const() {
            return v;
        }
        symbolic::record_read("SymSize::get()", Location::caller());
        let hint = symbolic::hint_of(&self.0).unwrap_or_else(|e| panic!("SymSize::get(): {e}"));
        hint as usize
    }

    /// `self op other` over expressions; panics, naming them, on a negative constant result,
    /// an overflow or a zero divisor.
    fn combine(
        &self,
        other: &SymSize,
        op: &str,
        f: impl Fn(&SymExpr, &SymExpr) -> Option<SymExpr>,
    ) -> SymSize {
        let (a, b) = (self.0.expr(), other.0.expr());
        let e = a.zip(b).and_then(|(a, b)| f(&a, &b));
        let dim = e.and_then(|e| Dim::from_expr(e).ok());
        SymSize(dim.unwrap_or_else(|| panic!("size arithmetic `{self} {op} {other}` is out of range")))
    }
}

impl From<usize> for SymSize {
    fn from(size: usize) -> SymSize {
        SymSize(Dim::from(size as u64))
    }
}

impl fmt::Display for SymSize {
    /// The constant, or the expression over the trace's symbols (`s0`, `2*s0`): no read.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

macro_rules! arith {
    ($tr:ident, $method:ident, $sym:literal, $f:expr) => {
        impl $tr<&SymSize> for &SymSize {
            type Output = SymSize;
            /// Over expressions: no size is read.
            fn $method(self, rhs: &SymSize) -> SymSize {
                self.combine(rhs, $sym, $f)
            }
        }
        impl $tr<SymSize> for SymSize {
            type Output = SymSize;
            /// Over expressions: no size is read.
            fn $method(self, rhs: SymSize) -> SymSize {
                (&self).$method(&rhs)
            }
        }
        impl $tr<usize> for SymSize {
            type Output = SymSize;
            /// Over expressions: no size is read.
            fn $method(self, rhs: usize) -> SymSize {
                (&self).$method(&SymSize::from(rhs))
            }
        }
        impl $tr<usize> for &SymSize {
            type Output = SymSize;
            /// Over expressions: no size is read.
            fn $method(self, rhs: usize) -> SymSize {
                self.$method(&SymSize::from(rhs))
            }
        }
    };
}

arith!(Add, add, "+", |a, b| a.add(b).ok());
arith!(Sub, sub, "-", |a, b| a.sub(b).ok());
arith!(Mul, mul, "*", |a, b| a.mul(b).ok());

impl Div<usize> for &SymSize {
    type Output = SymSize;
    /// Floor division by a positive constant, over expressions.
    fn div(self, rhs: usize) -> SymSize {
        self.combine(&SymSize::from(rhs), "/", |a, _| a.floor_div(rhs as u64).ok())
    }
}

impl Div<usize> for SymSize {
    type Output = SymSize;
    /// Floor division by a positive constant, over expressions.
    fn div(self, rhs: usize) -> SymSize {
        &self / rhs
    }
}

impl Rem<usize> for &SymSize {
    type Output = SymSize;
    /// The remainder by a positive constant, over expressions.
    fn rem(self, rhs: usize) -> SymSize {
        self.combine(&SymSize::from(rhs), "%", |a, _| a.rem(rhs as u64).ok())
    }
}

impl Rem<usize> for SymSize {
    type Output = SymSize;
    /// The remainder by a positive constant, over expressions.
    fn rem(self, rhs: usize) -> SymSize {
        &self % rhs
    }
}

/// The dims [`Tensor::reshape`], [`Tensor::view`] and [`Tensor::expand`] take: integers (`-1`
/// infers a size in a reshape, keeps one in an expand) or [`SymSize`]s.
pub trait IntoDims {
    /// The dims as a [`DimList`].
    fn into_dims(self) -> DimList;
}

/// Dims for a reshape, from [`IntoDims`].
#[derive(Clone, Debug)]
pub struct DimList(Repr);

#[derive(Clone, Debug)]
enum Repr {
    Ints(Vec<isize>),
    Sizes(Vec<SymSize>),
}

macro_rules! into_dims {
    ($variant:ident, $elem:ty) => {
        impl<const N: usize> IntoDims for [$elem; N] {
            fn into_dims(self) -> DimList {
                DimList(Repr::$variant(self.to_vec()))
            }
        }
        impl<const N: usize> IntoDims for &[$elem; N] {
            fn into_dims(self) -> DimList {
                DimList(Repr::$variant(self.to_vec()))
            }
        }
        impl IntoDims for &[$elem] {
            fn into_dims(self) -> DimList {
                DimList(Repr::$variant(self.to_vec()))
            }
        }
        impl IntoDims for Vec<$elem> {
            fn into_dims(self) -> DimList {
                DimList(Repr::$variant(self))
            }
        }
        impl IntoDims for &Vec<$elem> {
            fn into_dims(self) -> DimList {
                DimList(Repr::$variant(self.clone()))
            }
        }
    };
}

into_dims!(Ints, isize);
into_dims!(Sizes, SymSize);

impl DimList {
    /// Whether an entry is a symbolic size.
    pub(crate) fn is_symbolic(&self) -> bool {
        matches!(&self.0, Repr::Sizes(v) if v.iter().any(SymSize::is_symbolic))
    }

    /// The dims as integers for the concrete rule: symbolic sizes at their hints, which is a
    /// size read.
    #[track_caller]
    pub(crate) fn ints(&self) -> Vec<isize> {
        match &self.0 {
            Repr::Ints(v) => v.clone(),
            Repr::Sizes(v) => v.iter().map(|s| s.get() as isize).collect(),
        }
    }

    /// Each entry as a dim, `None` for a `-1`; an error for another negative integer.
    pub(crate) fn entries(&self, op: &'static str) -> Result<Vec<Option<Dim>>> {
        match &self.0 {
            Repr::Sizes(v) => Ok(v.iter().map(|s| Some(s.0.clone())).collect()),
            Repr::Ints(v) => v
                .iter()
                .map(|&d| match d {
                    -1 => Ok(None),
                    d if d < 0 => {
                        Err(Error::op_of(OpErrorKind::Shape, op, format!("invalid shape dimension {d}")))
                    }
                    d => Ok(Some(Dim::from(d as u64))),
                })
                .collect(),
        }
    }

    /// The dims over `own` (the input's dims) without reading a size: each entry's
    /// expression, `-1` as the element count divided exactly by the others. `None` when the
    /// entries cannot be decided over expressions (the caller takes the concrete rule, which
    /// reads the sizes); `Err` for what is wrong at every size (two `-1`s, a negative dim).
    pub(crate) fn over(&self, op: &'static str, own: &[Dim]) -> Result<Option<Vec<Dim>>> {
        let entries = self.entries(op)?;
        if entries.iter().filter(|e| e.is_none()).count() > 1 {
            return Err(Error::op(op, "only one dimension can be inferred"));
        }
        let (Some(numel), Some(known)) = (product(own.iter()), product(entries.iter().flatten())) else {
            return Ok(None);
        };
        let inferred = match entries.iter().position(Option::is_none) {
            Some(_) if known.as_const() == Some(0) => return Ok(None),
            Some(_) => match numel.div_exact(&known).map(Dim::from_expr) {
                Some(Ok(d)) => Some(d),
                _ => return Ok(None),
            },
            None if numel == known => None,
            None => return Ok(None),
        };
        Ok(Some(entries.into_iter().map(|e| e.or_else(|| inferred.clone()).expect("one -1")).collect()))
    }
}

/// The product of `dims` as an expression; `None` if it overflows.
fn product<'a>(mut dims: impl Iterator<Item = &'a Dim>) -> Option<SymExpr> {
    dims.try_fold(SymExpr::from(1), |acc, d| acc.mul(&d.expr()?).ok())
}

impl Tensor {
    /// Size `dim` (negative counts from the end) as a [`SymSize`]: an expression over the
    /// size symbols inside a symbolic trace, with no read recorded; the size elsewhere.
    ///
    /// ```
    /// use tenjit::prelude::*;
    /// let x = Tensor::zeros([2, 3]);
    /// assert_eq!(x.sym_size(-1).as_const(), Some(3));
    /// ```
    #[track_caller]
    pub fn sym_size(&self, dim: isize) -> SymSize {
        self.try_sym_size(dim).or_panic()
    }

    /// [`Tensor::sym_size`] as a `Result`.
    #[track_caller]
    pub fn try_sym_size(&self, dim: isize) -> Result<SymSize> {
        let d = wrap_dim("sym_size", dim, self.dim())?;
        let dims = self.sym_dims();
        dims.get(d).cloned().map(SymSize).ok_or_else(|| Error::op("sym_size", "a scalar has no dimensions"))
    }

    /// Every size as a [`SymSize`] (see [`Tensor::sym_size`]).
    pub fn sym_shape(&self) -> Vec<SymSize> {
        self.sym_dims().into_iter().map(SymSize).collect()
    }

    /// Splits dim `dim` into `sizes` (one may be `-1`), as torch's `x.unflatten(dim, sizes)`:
    /// `[B, T, 12].unflatten(-1, [3, -1])` is `[B, T, 3, 4]`. It reads no size, so it holds
    /// for every size of a symbolic dim.
    ///
    /// ```
    /// use tenjit::prelude::*;
    /// let x = Tensor::arange(24).reshape([2, 12]);
    /// assert_eq!(x.unflatten(1, [3, -1]).shape(), &[2, 3, 4]);
    /// ```
    #[track_caller]
    pub fn unflatten(&self, dim: isize, sizes: impl IntoDims) -> Tensor {
        self.try_unflatten(dim, sizes).or_panic()
    }

    /// [`Tensor::unflatten`] as a `Result`: fails when `sizes` do not multiply to the dim.
    #[track_caller]
    pub fn try_unflatten(&self, dim: isize, sizes: impl IntoDims) -> Result<Tensor> {
        let d = wrap_dim("unflatten", dim, self.dim())?;
        let own = self.sym_dims();
        let sizes = sizes.into_dims();
        let Some(split) = sizes.over("unflatten", &own[d..=d])? else {
            if own[d].as_const().is_some() {
                return Err(Error::op_of(
                    OpErrorKind::Shape,
                    "unflatten",
                    format!(
                        "sizes {:?} don't multiply up to the size of dim {dim} ({})",
                        sizes.ints(),
                        own[d]
                    ),
                ));
            }
            // Not decided over expressions (`[2, -1]` of a symbolic dim): by the sizes, a read.
            let shape = self.shape();
            let mut ints: Vec<isize> = shape[..d].iter().map(|&s| s as isize).collect();
            ints.extend(sizes.ints());
            ints.extend(shape[d + 1..].iter().map(|&s| s as isize));
            return self.try_reshape(ints);
        };
        let mut dims = own[..d].to_vec();
        dims.extend(split);
        dims.extend_from_slice(&own[d + 1..]);
        self.reshape_dims(dims)
    }
}
