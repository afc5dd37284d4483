//! Elementwise ops: arithmetic, powers, transcendental functions, comparisons and logic, with
//! NumPy broadcasting and PyTorch type promotion (see `tenjit_ir::types`).
//!
//! Every binary op goes through one function, `binary`: it promotes the dtypes (a Rust
//! scalar is a weak operand), applies the op's own dtype needs (true division and
//! transcendental functions compute in floats, logic in bools), broadcasts the shapes with
//! explicit `expand` nodes and records one `ir` binary op. A broadcast that stretches both
//! operands is reported by the [broadcast check](mod@crate::broadcast_check). The operators
//! `+ - * / %`, unary `-`, and `& | !` on bool tensors are sugar over the methods, for tensors
//! and scalars on either side.

use super::creation::IntoScalar;
use super::Tensor;
use crate::error::{AtCaller, Error, OpErrorKind, OrPanic, Result};
use std::ops;
use std::panic::Location;
use tenjit_ir::ops::Accepts;
use tenjit_ir::sym::Dim;
use tenjit_ir::types::{promote, promote_weak, promote_with_zero_dim};
use tenjit_ir::{BinaryOp, DType, Op, Scalar, Shape, TensorType, UnaryOp};

/// One operand of a binary op: a tensor or a weak Rust scalar.
#[derive(Clone, Debug)]
pub enum Operand {
    /// A tensor.
    Tensor(Tensor),
    /// A Rust scalar: weak in type promotion.
    Scalar(Scalar),
}

/// What may stand as an operand: `&Tensor`, `Tensor`, or a Rust scalar.
pub trait IntoOperand {
    /// Converts to an operand.
    fn into_operand(self) -> Operand;
}

impl IntoOperand for &Tensor {
    fn into_operand(self) -> Operand {
        Operand::Tensor(self.clone())
    }
}
impl IntoOperand for Tensor {
    fn into_operand(self) -> Operand {
        Operand::Tensor(self)
    }
}
impl<S: IntoScalar> IntoOperand for S {
    fn into_operand(self) -> Operand {
        Operand::Scalar(self.scalar())
    }
}

impl Operand {
    fn dtype_with(&self, other: &Operand) -> DType {
        match (self, other) {
            (Operand::Tensor(a), Operand::Tensor(b)) => match (a.dim(), b.dim()) {
                (0, 0) => promote(a.dtype(), b.dtype()),
                (0, _) => promote_with_zero_dim(b.dtype(), a.dtype()),
                (_, 0) => promote_with_zero_dim(a.dtype(), b.dtype()),
                _ => promote(a.dtype(), b.dtype()),
            },
            (Operand::Tensor(a), Operand::Scalar(s)) | (Operand::Scalar(s), Operand::Tensor(a)) => {
                promote_weak(a.dtype(), s.category())
            }
            (Operand::Scalar(a), Operand::Scalar(b)) => DType::default_of(a.category().max(b.category())),
        }
    }

    /// This operand as a tensor of `dtype` and `shape` (broadcast and cast).
    #[track_caller]
    fn materialize(&self, op: &'static str, dtype: DType, shape: &Shape) -> Result<Tensor> {
        match self {
            Operand::Tensor(t) => t.try_to_dtype(dtype)?.expand_to(op, shape),
            Operand::Scalar(s) => Tensor::from_op(
                Op::Const { value: s.cast(dtype), ty: TensorType::new(dtype, shape.clone()) },
                &[],
            ),
        }
    }

    fn shape(&self) -> Shape {
        match self {
            // Symbolic dims broadcast as expressions; the type rules check the result again.
            Operand::Tensor(t) => t.ty_unrecorded().shape.clone(),
            Operand::Scalar(_) => Shape::scalar(),
        }
    }
}

/// Applies a binary primitive with promotion and broadcasting.
#[track_caller]
pub(crate) fn binary(op: BinaryOp, lhs: Operand, rhs: Operand) -> Result<Tensor> {
    let spec = op.spec();
    let name = spec.name;
    let mut dtype = lhs.dtype_with(&rhs);
    match spec.accepts {
        Accepts::Float if !dtype.is_float() => dtype = DType::F32,
        Accepts::Bool => dtype = DType::Bool,
        Accepts::Numeric if dtype == DType::Bool => {
            return Err(Error::op_of(
                OpErrorKind::DType,
                name,
                "bool tensors are not supported here; convert with to_dtype first",
            ));
        }
        _ => {}
    }
    let (ls, rs) = (lhs.shape(), rhs.shape());
    let shape = tenjit_ir::ops::broadcast_for(name, &ls, &rs).at_caller()?;
    crate::broadcast_check::check(name, &[&ls, &rs], &shape, Location::caller())?;
    let a = lhs.materialize(name, dtype, &shape)?;
    let b = rhs.materialize(name, dtype, &shape)?;
    Tensor::from_op(Op::Binary(op), &[&a, &b])
}

impl Tensor {
    /// Broadcasts to `shape` (NumPy rules), recording an `expand` when sizes change.
    #[track_caller]
    pub(crate) fn expand_to(&self, op: &'static str, shape: &Shape) -> Result<Tensor> {
        // Over symbolic dims, the shapes are expressions the type rules check again.
        let own = &self.ty_unrecorded().shape;
        if own == shape {
            return Ok(self.clone());
        }
        let (from, to) = (own.concrete(), shape.concrete());
        let ok = tenjit_ir::types::broadcast_shapes(&from, &to) == Some(to);
        if !ok {
            return Err(Error::op_of(
                OpErrorKind::Shape,
                op,
                format!("shape {own} cannot broadcast to {shape}"),
            ));
        }
        let lead = shape.rank() - self.dim();
        let mut padded = vec![1usize; lead];
        padded.extend_from_slice(own.dims());
        let base = if lead > 0 {
            let mut dims = vec![Dim::from(1u64); lead];
            dims.extend(own.sym_dims());
            let to =
                Shape::symbolic(dims, &padded).map_err(|e| Error::internal(format!("expand_to: {e}")))?;
            Tensor::from_op(Op::Reshape { shape: to }, &[self])?
        } else {
            self.clone()
        };
        let mut strides = base.strides().clone();
        if lead > 0 {
            strides = std::iter::repeat_n(0, lead).chain(self.strides().iter().copied()).collect();
        }
        for (d, s) in strides.iter_mut().enumerate() {
            if padded[d] != shape.dims()[d] {
                *s = 0;
            }
        }
        Tensor::from_op_strided(Op::Expand { shape: shape.clone() }, &[&base], Some(strides))
    }

    /// Converts to `dtype` (`x.to(torch.float64)`); floats to integers truncate toward zero.
    #[track_caller]
    pub fn to_dtype(&self, dtype: DType) -> Tensor {
        self.try_to_dtype(dtype).or_panic()
    }

    /// [`Tensor::to_dtype`] as a `Result`.
    #[track_caller]
    pub fn try_to_dtype(&self, dtype: DType) -> Result<Tensor> {
        if self.dtype() == dtype {
            return Ok(self.clone());
        }
        Tensor::from_op(Op::Cast { dtype }, &[self])
    }

    /// Applies a unary primitive, converting the operand as the op needs (integers to `f32`
    /// for float functions, anything to `bool` for logic).
    #[track_caller]
    fn unary(&self, op: UnaryOp) -> Result<Tensor> {
        let spec = op.spec();
        let x = match spec.accepts {
            Accepts::Float if !self.dtype().is_float() => self.try_to_dtype(DType::F32)?,
            Accepts::Bool => self.try_to_dtype(DType::Bool)?,
            Accepts::Numeric if self.dtype() == DType::Bool => {
                return Err(Error::op_of(
                    OpErrorKind::DType,
                    spec.name,
                    "bool tensors are not supported here; convert with to_dtype first",
                ));
            }
            _ => self.clone(),
        };
        Tensor::from_op(Op::Unary(op), &[&x])
    }
}

macro_rules! binary_methods {
    ($($(#[$doc:meta])* $name:ident, $try_name:ident, $op:ident;)*) => {
        #[allow(clippy::should_implement_trait)]
        impl Tensor {$(
            $(#[$doc])*
            #[track_caller]
            pub fn $name(&self, other: impl IntoOperand) -> Tensor {
                self.$try_name(other).or_panic()
            }
            #[doc = concat!("[`Tensor::", stringify!($name), "`] as a `Result`.")]
            #[track_caller]
            pub fn $try_name(&self, other: impl IntoOperand) -> Result<Tensor> {
                binary(BinaryOp::$op, Operand::Tensor(self.clone()), other.into_operand())
            }
        )*}
    };
}

binary_methods! {
    /// `self + other`, broadcasting.
    add, try_add, Add;
    /// `self - other`, broadcasting.
    sub, try_sub, Sub;
    /// `self * other`, broadcasting.
    mul, try_mul, Mul;
    /// True division `self / other` (integers divide as floats, as torch).
    div, try_div, Div;
    /// `self ** exponent`.
    pow, try_pow, Pow;
    /// Elementwise maximum (NaN-propagating).
    maximum, try_maximum, Maximum;
    /// Elementwise minimum (NaN-propagating).
    minimum, try_minimum, Minimum;
    /// Floor division `self // other`, rounding toward -inf as Python.
    floor_divide, try_floor_divide, FloorDiv;
    /// Remainder `self % other` with the sign of the divisor, as Python.
    remainder, try_remainder, Rem;
    /// `self == other`, a bool tensor.
    eq, try_eq, Eq;
    /// `self != other`, a bool tensor.
    ne, try_ne, Ne;
    /// `self < other`, a bool tensor.
    lt, try_lt, Lt;
    /// `self <= other`, a bool tensor.
    le, try_le, Le;
    /// `self > other`, a bool tensor.
    gt, try_gt, Gt;
    /// `self >= other`, a bool tensor.
    ge, try_ge, Ge;
    /// Logical and (nonzero is true).
    logical_and, try_logical_and, And;
    /// Logical or (nonzero is true).
    logical_or, try_logical_or, Or;
}

impl Tensor {
    /// `other - self` (for a scalar on the left: `2.0 - x`).
    #[track_caller]
    pub fn rsub(&self, other: impl IntoOperand) -> Tensor {
        binary(BinaryOp::Sub, other.into_operand(), Operand::Tensor(self.clone())).or_panic()
    }

    /// `other / self`.
    #[track_caller]
    pub fn rdiv(&self, other: impl IntoOperand) -> Tensor {
        binary(BinaryOp::Div, other.into_operand(), Operand::Tensor(self.clone())).or_panic()
    }
}

macro_rules! unary_methods {
    ($($(#[$doc:meta])* $name:ident, $op:ident;)*) => {
        #[allow(clippy::should_implement_trait)]
        impl Tensor {$(
            $(#[$doc])*
            #[track_caller]
            pub fn $name(&self) -> Tensor {
                self.unary(UnaryOp::$op).or_panic()
            }
        )*}
    };
}

unary_methods! {
    /// `-self`.
    neg, Neg;
    /// `|self|`.
    abs, Abs;
    /// Square root (integers compute in `f32`).
    sqrt, Sqrt;
    /// `e^self`.
    exp, Exp;
    /// Natural logarithm.
    log, Log;
    /// Sine.
    sin, Sin;
    /// Cosine.
    cos, Cos;
    /// Hyperbolic tangent.
    tanh, Tanh;
    /// Softsign, `self / (1 + |self|)` (integers compute in `f32`).
    softsign, Softsign;
    /// The error function (integers compute in `f32`), as `torch.erf`.
    erf, Erf;
    /// Logical not (nonzero is true).
    logical_not, Not;
}

impl Tensor {
    /// Rounds toward -inf; integers are returned unchanged.
    #[track_caller]
    pub fn floor(&self) -> Tensor {
        if self.dtype().is_float() {
            self.unary(UnaryOp::Floor).or_panic()
        } else {
            self.clone()
        }
    }

    /// Rounds toward +inf; integers are returned unchanged.
    #[track_caller]
    pub fn ceil(&self) -> Tensor {
        if self.dtype().is_float() {
            self.unary(UnaryOp::Ceil).or_panic()
        } else {
            self.clone()
        }
    }

    /// `self * self`.
    #[track_caller]
    pub fn square(&self) -> Tensor {
        self.mul(self)
    }

    /// The logistic function `1 / (1 + e^-x)`.
    #[track_caller]
    pub fn sigmoid(&self) -> Tensor {
        self.neg().exp().add(1.0).rdiv(1.0)
    }

    /// `max(x, 0)`, as `torch.relu`: `where(x <= 0, 0, x)`, so NaN stays NaN and the
    /// gradient at 0 is 0 (as torch's).
    #[track_caller]
    pub fn relu(&self) -> Tensor {
        if self.dtype() == DType::Bool {
            panic!(
                "{}",
                Error::op_of(
                    OpErrorKind::DType,
                    "relu",
                    "bool tensors are not supported here; convert with to_dtype first"
                )
            );
        }
        let zero = Tensor::full_dtype(Shape::scalar(), 0, self.dtype());
        Tensor::where_(&self.le(&zero), &zero, self)
    }

    /// Clamps into `[min, max]`, as `torch.clamp(x, min, max)`.
    #[track_caller]
    pub fn clamp(&self, min: impl IntoScalar, max: impl IntoScalar) -> Tensor {
        self.clamp_min(min).clamp_max(max)
    }

    /// `max(x, min)` with a scalar bound: `where(x <= min, min, x)`, so NaN stays NaN and the
    /// gradient at the bound is 0, as torch's `clamp` (the minimum-norm subgradient of recent
    /// torch, checked against 2.15; the same as `relu`'s at 0).
    #[track_caller]
    pub fn clamp_min(&self, min: impl IntoScalar) -> Tensor {
        let min = Operand::Scalar(min.scalar());
        Tensor::where_(&self.le(min.clone()), min, self)
    }

    /// `min(x, max)` with a scalar bound: `where(x >= max, max, x)`, so NaN stays NaN and the
    /// gradient at the bound is 0, as torch's `clamp`.
    #[track_caller]
    pub fn clamp_max(&self, max: impl IntoScalar) -> Tensor {
        let max = Operand::Scalar(max.scalar());
        Tensor::where_(&self.ge(max.clone()), max, self)
    }

    /// `where(cond, a, b)`: elements of `a` where `cond` is true, else of `b`, broadcasting all
    /// three and promoting `a` and `b`, as `torch.where`.
    ///
    /// ```
    /// use tenjit::prelude::*;
    /// let x = tensor!([1., -2., 3.]);
    /// assert_eq!(Tensor::where_(&x.gt(0), &x, &x.zeros_like()).to_string(), "tensor([1., 0., 3.])");
    /// ```
    #[track_caller]
    pub fn where_(cond: &Tensor, a: impl IntoOperand, b: impl IntoOperand) -> Tensor {
        Tensor::try_where(cond, a, b).or_panic()
    }

    /// [`Tensor::where_`] as a `Result`.
    #[track_caller]
    pub fn try_where(cond: &Tensor, a: impl IntoOperand, b: impl IntoOperand) -> Result<Tensor> {
        let (a, b) = (a.into_operand(), b.into_operand());
        let dtype = a.dtype_with(&b);
        let (sa, sb) = (a.shape(), b.shape());
        let sc = &cond.ty_unrecorded().shape;
        let shape = tenjit_ir::ops::broadcast_for("where", &sa, &sb)
            .and_then(|s| tenjit_ir::ops::broadcast_for("where", sc, &s))
            .at_caller()?;
        crate::broadcast_check::check("where", &[sc, &sa, &sb], &shape, Location::caller())?;
        let c = cond.try_to_dtype(DType::Bool)?.expand_to("where", &shape)?;
        let a = a.materialize("where", dtype, &shape)?;
        let b = b.materialize("where", dtype, &shape)?;
        Tensor::from_op(Op::Where, &[&c, &a, &b])
    }
}

impl IntoOperand for Operand {
    fn into_operand(self) -> Operand {
        self
    }
}

// Operators: tensor ∘ tensor in all four ownership forms, tensor ∘ scalar and scalar ∘ tensor.
// Scalars are `f64` and `i64` only, so an unsuffixed literal (`2.0 * &x`, `x / 2`) has exactly
// one impl to pick.
macro_rules! operator {
    ($trait:ident, $method:ident, $op:ident) => {
        operator!(@tensors $trait, $method, $op);
        operator!(@scalar $trait, $method, $op, f64, i64);
    };
    (@tensors $trait:ident, $method:ident, $op:ident) => {
        impl ops::$trait<&Tensor> for &Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: &Tensor) -> Tensor {
                binary(BinaryOp::$op, Operand::Tensor(self.clone()), Operand::Tensor(rhs.clone())).or_panic()
            }
        }
        impl ops::$trait<Tensor> for Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: Tensor) -> Tensor {
                binary(BinaryOp::$op, Operand::Tensor(self), Operand::Tensor(rhs)).or_panic()
            }
        }
        impl ops::$trait<&Tensor> for Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: &Tensor) -> Tensor {
                binary(BinaryOp::$op, Operand::Tensor(self), Operand::Tensor(rhs.clone())).or_panic()
            }
        }
        impl ops::$trait<Tensor> for &Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: Tensor) -> Tensor {
                binary(BinaryOp::$op, Operand::Tensor(self.clone()), Operand::Tensor(rhs)).or_panic()
            }
        }
    };
    (@scalar $trait:ident, $method:ident, $op:ident, $($s:ty),*) => {$(
        impl ops::$trait<$s> for &Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: $s) -> Tensor {
                binary(BinaryOp::$op, Operand::Tensor(self.clone()), rhs.into_operand()).or_panic()
            }
        }
        impl ops::$trait<$s> for Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: $s) -> Tensor {
                binary(BinaryOp::$op, Operand::Tensor(self), rhs.into_operand()).or_panic()
            }
        }
        impl ops::$trait<&Tensor> for $s {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: &Tensor) -> Tensor {
                binary(BinaryOp::$op, self.into_operand(), Operand::Tensor(rhs.clone())).or_panic()
            }
        }
        impl ops::$trait<Tensor> for $s {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: Tensor) -> Tensor {
                binary(BinaryOp::$op, self.into_operand(), Operand::Tensor(rhs)).or_panic()
            }
        }
    )*};
}

operator!(Add, add, Add);
operator!(Sub, sub, Sub);
operator!(Mul, mul, Mul);
operator!(Div, div, Div);
operator!(Rem, rem, Rem);

operator!(@tensors BitAnd, bitand, And);
operator!(@tensors BitOr, bitor, Or);

impl ops::Neg for &Tensor {
    type Output = Tensor;
    #[track_caller]
    fn neg(self) -> Tensor {
        Tensor::neg(self)
    }
}
impl ops::Neg for Tensor {
    type Output = Tensor;
    #[track_caller]
    fn neg(self) -> Tensor {
        Tensor::neg(&self)
    }
}
impl ops::Not for &Tensor {
    type Output = Tensor;
    #[track_caller]
    fn not(self) -> Tensor {
        self.logical_not()
    }
}
impl ops::Not for Tensor {
    type Output = Tensor;
    #[track_caller]
    fn not(self) -> Tensor {
        self.logical_not()
    }
}
