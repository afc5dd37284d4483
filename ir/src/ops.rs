//! The op table: every primitive op of the IR, with its printed name, arity, type rule and
//! scalar semantics.
//!
//! This is the single place where an op is defined (DESIGN.md principle 1). Unary and binary
//! elementwise ops are rows of [`UnarySpec`] / [`BinarySpec`] (in `ops/elementwise.rs`) holding
//! everything about the op, down to its cost, accuracy class, CPU lowering and CUDA form: a new
//! elementwise primitive is one enum variant and one row, and the interpreter, the printer, the
//! parser, autodiff, both backends and the table-driven tests pick it up. The op enums and their
//! `ALL` arrays are declared together (`op_enum!`), so `ALL` cannot go stale. [`Op::kind`]
//! classifies the structural ops once; matches over [`Op`] elsewhere are exhaustive (no `_ =>`),
//! so the compiler lists every place a new structural op needs work.
//!
//! Floating-point semantics are defined in `f64`: an `f32` op is its `f64` op rounded to `f32`,
//! which is exact for `+ - * / sqrt` and the best attainable for transcendental functions. This
//! makes the interpreter an oracle to compare compiled code against. An `f16` or `bf16` op is
//! its `f32` op rounded to the 16-bit format (round to nearest, ties to even), as PyTorch's CPU
//! kernels compute them. Integer ops wrap on
//! overflow, as PyTorch's do; integer division or remainder by zero and negative integer powers
//! are evaluation errors rather than undefined results.

mod conv;
mod kind;
mod loops;
mod pool;
mod symbolic;

pub use conv::{ConvGeometry, ConvOp, ConvRole, ConvSizes};
pub use kind::{Library, Movement, OpKind};
pub use loops::{counter_type, Body, LoopOp};
pub use pool::{PoolGeometry, PoolOp, PoolRole};
pub use symbolic::Guard;
pub(crate) use symbolic::{has_symbolic_attr, infer_dims, SymEnv};

use crate::types::{broadcast_shapes, Category, DType, Shape, TensorType};
use smallvec::SmallVec;
use std::fmt;
use std::hash::{Hash, Hasher};

/// A small list of axes or sizes.
pub type Dims = SmallVec<[usize; 4]>;
/// A small list of signed values (slice starts and steps).
pub type IDims = SmallVec<[isize; 4]>;

/// A scalar constant. Floats compare and hash by their bits, so ops holding them are `Eq + Hash`
/// and CSE can hash-cons them.
#[derive(Clone, Copy, Debug)]
pub enum Scalar {
    /// A boolean.
    Bool(bool),
    /// An integer (of either integer dtype).
    Int(i64),
    /// A float (of either float dtype; an `f32` constant holds a value exact in `f32`).
    Float(f64),
}

impl Scalar {
    /// A size as a value of `dtype` (an `f32` size rounds to nearest, as a cast would).
    pub fn of_size(size: u64, dtype: DType) -> Scalar {
        if dtype.is_float() {
            Scalar::Float(size as f64).cast(dtype)
        } else {
            Scalar::Int(i64::try_from(size).unwrap_or(i64::MAX)).cast(dtype)
        }
    }

    /// Converts a value to the representation of `dtype`, rounding to `f32` or wrapping to `i32`
    /// as a cast would.
    pub fn cast(self, dtype: DType) -> Scalar {
        let f = self.as_f64();
        match dtype {
            DType::Bool => Scalar::Bool(f != 0.0),
            DType::I32 => Scalar::Int(match self {
                Scalar::Int(i) => i as i32 as i64,
                _ => f as i32 as i64,
            }),
            DType::I64 => Scalar::Int(match self {
                Scalar::Int(i) => i,
                _ => f as i64,
            }),
            DType::F32 => Scalar::Float(match self {
                // One rounding: i64 -> f32 directly, not through f64.
                Scalar::Int(i) => i as f32 as f64,
                _ => f as f32 as f64,
            }),
            // Through `f32`, as torch converts (and as the backends compute): round to `f32`,
            // then to the 16-bit format, each to nearest even.
            DType::F16 => Scalar::Float(half::f16::from_f32(self.cast(DType::F32).as_f64() as f32).to_f64()),
            DType::BF16 => {
                Scalar::Float(half::bf16::from_f32(self.cast(DType::F32).as_f64() as f32).to_f64())
            }
            DType::F64 => Scalar::Float(f),
        }
    }

    /// The value as an `f64` (`true` is 1).
    pub fn as_f64(self) -> f64 {
        match self {
            Scalar::Bool(b) => b as i64 as f64,
            Scalar::Int(i) => i as f64,
            Scalar::Float(f) => f,
        }
    }

    /// The value as an `i64` (floats truncate toward zero, saturating).
    pub fn as_i64(self) -> i64 {
        match self {
            Scalar::Bool(b) => b as i64,
            Scalar::Int(i) => i,
            Scalar::Float(f) => f as i64,
        }
    }

    /// The category of the value.
    pub fn category(self) -> Category {
        match self {
            Scalar::Bool(_) => Category::Bool,
            Scalar::Int(_) => Category::Int,
            Scalar::Float(_) => Category::Float,
        }
    }

    /// Prints the value as the text IR spells it for `dtype`: the shortest text that parses
    /// back to the same bits (`0.1`, `-inf`, `nan`, `3`, `true`).
    pub fn text(self, dtype: DType) -> String {
        match self.cast(dtype) {
            Scalar::Bool(b) => b.to_string(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => {
                if f.is_nan() {
                    "nan".to_string()
                } else if f.is_infinite() {
                    if f > 0.0 { "inf" } else { "-inf" }.to_string()
                } else if matches!(dtype, DType::F16 | DType::BF16 | DType::F32) {
                    // Exact in `f32`, so `f32`'s shortest form parses back to the same bits.
                    format!("{:?}", f as f32)
                } else {
                    format!("{f:?}")
                }
            }
        }
    }

    /// Parses a constant written for `dtype`, the inverse of [`Scalar::text`].
    pub fn parse(s: &str, dtype: DType) -> Option<Scalar> {
        match dtype {
            DType::Bool => match s {
                "true" => Some(Scalar::Bool(true)),
                "false" => Some(Scalar::Bool(false)),
                _ => None,
            },
            DType::I32 => s.parse::<i32>().ok().map(|i| Scalar::Int(i as i64)),
            DType::I64 => s.parse::<i64>().ok().map(Scalar::Int),
            DType::F16 | DType::BF16 | DType::F32 => parse_float(s).map(|f| Scalar::Float(f).cast(dtype)),
            DType::F64 => parse_float(s).map(Scalar::Float),
        }
    }
}

fn parse_float(s: &str) -> Option<f64> {
    match s {
        "nan" => Some(f64::NAN),
        "inf" => Some(f64::INFINITY),
        "-inf" => Some(f64::NEG_INFINITY),
        _ if s.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '.') => s.parse().ok(),
        _ => None,
    }
}

impl PartialEq for Scalar {
    fn eq(&self, other: &Scalar) -> bool {
        match (self, other) {
            (Scalar::Bool(a), Scalar::Bool(b)) => a == b,
            (Scalar::Int(a), Scalar::Int(b)) => a == b,
            (Scalar::Float(a), Scalar::Float(b)) => a.to_bits() == b.to_bits(),
            _ => false,
        }
    }
}

impl Eq for Scalar {}

impl Hash for Scalar {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            Scalar::Bool(b) => (0u8, *b).hash(state),
            Scalar::Int(i) => (1u8, *i).hash(state),
            Scalar::Float(f) => (2u8, f.to_bits()).hash(state),
        }
    }
}

/// Declares an op enum and its `ALL` array from one list of variants, so a variant cannot exist
/// without being in `ALL` (every table-driven test iterates `ALL`). The order of `ALL` is the
/// order of declaration.
macro_rules! op_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $($(#[$vmeta:meta])* $variant:ident,)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: [$name; [$(stringify!($variant)),*].len()] = [$($name::$variant),*];
        }
    };
}

mod elementwise;

pub use elementwise::{
    Accepts, Accuracy, BinaryKind, BinaryOp, BinarySpec, Cost, CpuLowering, CudaForm, IntResult, UnaryOp,
    UnarySpec,
};

op_enum! {
    /// Reductions over axes.
    pub enum ReduceOp {
        /// Sum (identity 0).
        Sum,
        /// Product (identity 1).
        Prod,
        /// Maximum, NaN-propagating; undefined over an empty axis.
        Max,
        /// Minimum, NaN-propagating; undefined over an empty axis.
        Min,
    }
}

impl ReduceOp {
    /// Printed name.
    pub fn name(self) -> &'static str {
        match self {
            ReduceOp::Sum => "sum",
            ReduceOp::Prod => "prod",
            ReduceOp::Max => "max",
            ReduceOp::Min => "min",
        }
    }

    /// The binary op that combines two partial results.
    pub fn combine(self) -> BinaryOp {
        match self {
            ReduceOp::Sum => BinaryOp::Add,
            ReduceOp::Prod => BinaryOp::Mul,
            ReduceOp::Max => BinaryOp::Maximum,
            ReduceOp::Min => BinaryOp::Minimum,
        }
    }

    /// The identity of the combine op, when it has one that an empty reduction may return.
    pub fn identity(self) -> Option<Scalar> {
        match self {
            ReduceOp::Sum => Some(Scalar::Float(0.0)),
            ReduceOp::Prod => Some(Scalar::Float(1.0)),
            ReduceOp::Max | ReduceOp::Min => None,
        }
    }
}

op_enum! {
    /// Index-of-extremum reductions along one axis; the result is `i64`.
    pub enum ArgOp {
        /// Index of the maximum: the first one on ties, and the first NaN if any (as torch).
        ArgMax,
        /// Index of the minimum: the first one on ties, and the first NaN if any (as torch).
        ArgMin,
    }
}

impl ArgOp {
    /// Printed name.
    pub fn name(self) -> &'static str {
        match self {
            ArgOp::ArgMax => "argmax",
            ArgOp::ArgMin => "argmin",
        }
    }
}

/// A primitive op with its attributes. Attributes that determine the result type (a reshape's
/// shape, a constant's dtype) are part of the op, so the type of every node can be inferred
/// from its op and its operands' types.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// The graph input with this index; its type is declared in the graph's signature.
    Input {
        /// Position in the graph's input list.
        index: usize,
        /// Declared type.
        ty: TensorType,
    },
    /// A tensor filled with one value.
    Const {
        /// The value (in the representation of `ty.dtype`).
        value: Scalar,
        /// Result type.
        ty: TensorType,
    },
    /// A tensor filled with the value of a size expression over the graph's symbols (`size
    /// expr=[B*T] : f32[]`): the element count a mean divides by when the count is symbolic.
    /// Binding the graph ([`crate::Graph::bind`]) turns it into a [`Op::Const`]; code that
    /// knows no symbols reads it at the graph's hints.
    Size {
        /// The size.
        expr: crate::sym::SymExpr,
        /// Result type (an integer or float dtype).
        ty: TensorType,
    },
    /// `iota`: each element is its index along `axis`.
    Iota {
        /// Result type (an integer or float dtype).
        ty: TensorType,
        /// The axis whose index is the value.
        axis: usize,
    },
    /// Uniform random floats in `[0, 1)` from the counter-based Philox4x32-10 generator:
    /// element `i` (row-major) is drawn from counter `offset + i` under key `seed`, so values
    /// depend on nothing but `(seed, offset, i)`. The seed and the offset are its two operands,
    /// `i64[]` values read as the bits of a `u64`: runtime data, so a program drawing fresh
    /// numbers each step is one program.
    Rand {
        /// Result type (`f32` or `f64`).
        ty: TensorType,
    },
    /// Elementwise unary op.
    Unary(UnaryOp),
    /// Elementwise binary op on operands of equal dtype and shape.
    Binary(BinaryOp),
    /// `where(cond, a, b)`: `a` where `cond` is true, else `b`; equal shapes.
    Where,
    /// Convert to another dtype (floats to ints truncate toward zero and saturate).
    Cast {
        /// Target dtype.
        dtype: DType,
    },
    /// Reduce over `axes` (sorted, distinct), removing them.
    Reduce {
        /// Combine op.
        op: ReduceOp,
        /// Reduced axes.
        axes: Dims,
    },
    /// Index of the maximum or minimum along `axis`, removing it; `i64` result.
    ArgReduce {
        /// Which extremum.
        op: ArgOp,
        /// Reduced axis.
        axis: usize,
    },
    /// Same elements in row-major order, new shape.
    Reshape {
        /// Result shape (same element count).
        shape: Shape,
    },
    /// Permute axes: result axis `i` is operand axis `perm[i]`.
    Permute {
        /// The permutation.
        perm: Dims,
    },
    /// Broadcast size-1 axes to `shape` (same rank).
    Expand {
        /// Result shape.
        shape: Shape,
    },
    /// Strided window: result element `i` on each axis `d` is operand element
    /// `start[d] + i * step[d]`, for `i < size[d]`. Steps may be negative, never zero.
    Slice {
        /// First index per axis (for symbolic bounds: at the graph's hints).
        start: IDims,
        /// Step per axis.
        step: IDims,
        /// Result size per axis (for symbolic bounds: at the graph's hints).
        size: Dims,
        /// The starts and sizes as expressions over the graph's symbols, when some are
        /// (`x[:, -1]` of a context of `T` tokens starts at `T - 1`); `None` for a slice of
        /// constant bounds.
        bounds: Option<std::sync::Arc<SliceBounds>>,
    },
    /// Zero padding: `lo[d]` zeros before and `hi[d]` after each axis `d`.
    Pad {
        /// Padding before.
        lo: Dims,
        /// Padding after.
        hi: Dims,
    },
    /// Concatenation of equally-typed operands along `axis`.
    Concat {
        /// Axis joined.
        axis: usize,
    },
    /// Batched matrix product: `[..., m, k] x [..., k, n] -> [..., m, n]`, equal batch dims.
    Matmul,
    /// `torch.gather`: `out[i][j] = x[index[i][j]][j]` for `axis = 0`; the result has the
    /// index's shape; `index` is `i64` of the same rank as `x`.
    Gather {
        /// Axis indexed.
        axis: usize,
    },
    /// `scatter_add(base, index, src)`: `base` with each `src` element added at the position
    /// `index` names along `axis`; `index` and `src` have equal shapes.
    ScatterAdd {
        /// Axis indexed.
        axis: usize,
    },
    /// A 2-D convolution or one of its transposes (`conv2d`, `conv2d_input`,
    /// `conv2d_weight`; see [`ConvOp`]), on two float operands of one dtype.
    Conv(ConvOp),
    /// Max pooling's selection or scatter (`max_pool2d_select`, `max_pool2d_scatter`; see
    /// [`PoolOp`]), on two float operands of one dtype.
    Pool(PoolOp),
    /// A counted loop over a body graph (see [`LoopOp`]): the operands are the initial
    /// carried values, then the invariants; the result is carried value `result` after
    /// `trips` runs of the body.
    Loop(LoopOp),
}

/// A slice's starts and sizes as expressions over a graph's symbols.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SliceBounds {
    /// First index per axis.
    pub start: Vec<crate::sym::SymExpr>,
    /// Result size per axis.
    pub size: Vec<crate::sym::Dim>,
}

/// An error of an op's type rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpError {
    /// The op's printed name.
    pub op: &'static str,
    /// What kind of mistake it is, for a caller to match on.
    pub kind: OpErrorKind,
    /// What is wrong, naming the offending types or attributes.
    pub message: String,
}

/// What kind of mistake an op was called with: the part of an error a caller matches on (the
/// message says the rest).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpErrorKind {
    /// Two shapes that cannot broadcast against each other.
    Broadcast {
        /// The left operand's shape.
        lhs: Vec<usize>,
        /// The right operand's shape.
        rhs: Vec<usize>,
    },
    /// Operand shapes the op cannot combine: a matmul's inner sizes, a reshape's element
    /// count, a concat's other axes, an expand of a size that is not 1.
    Shape,
    /// A dtype the op does not take, or operands of different dtypes.
    DType,
    /// An axis or dimension out of range for the rank, or given twice.
    Axis,
    /// An index or a slice bound outside its axis (in the arguments; one found in data is an
    /// evaluation error).
    Index,
    /// A result too large to represent or to allocate.
    Size,
    /// Anything else about the arguments: how many there are, an attribute's form.
    Argument,
}

impl fmt::Display for OpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.op, self.message)
    }
}

impl std::error::Error for OpError {}

fn check_axes(op: &'static str, axes: &[usize], rank: usize) -> Result<(), OpError> {
    for (i, &a) in axes.iter().enumerate() {
        if a >= rank {
            let message = format!("axis {a} is out of range for rank {rank}");
            return Err(OpError { op, kind: OpErrorKind::Axis, message });
        }
        if i > 0 && axes[i - 1] >= a {
            let message = format!("axes {axes:?} must be sorted and distinct");
            return Err(OpError { op, kind: OpErrorKind::Axis, message });
        }
    }
    Ok(())
}

impl Op {
    /// The printed name of the op.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Input { .. } => "input",
            Op::Const { .. } => "const",
            Op::Size { .. } => "size",
            Op::Iota { .. } => "iota",
            Op::Rand { .. } => "rand",
            Op::Unary(u) => u.spec().name,
            Op::Binary(b) => b.spec().name,
            Op::Where => "where",
            Op::Cast { .. } => "cast",
            Op::Reduce { op, .. } => op.name(),
            Op::ArgReduce { op, .. } => op.name(),
            Op::Reshape { .. } => "reshape",
            Op::Permute { .. } => "permute",
            Op::Expand { .. } => "expand",
            Op::Slice { .. } => "slice",
            Op::Pad { .. } => "pad",
            Op::Concat { .. } => "concat",
            Op::Matmul => "matmul",
            Op::Gather { .. } => "gather",
            Op::ScatterAdd { .. } => "scatter_add",
            Op::Conv(c) => c.name(),
            Op::Pool(p) => p.name(),
            Op::Loop(_) => "loop",
        }
    }

    /// Number of operands, or `None` for variadic ops (concat takes one or more).
    pub fn arity(&self) -> Option<usize> {
        match self {
            Op::Input { .. } | Op::Const { .. } | Op::Size { .. } | Op::Iota { .. } => Some(0),
            Op::Unary(_)
            | Op::Cast { .. }
            | Op::Reduce { .. }
            | Op::ArgReduce { .. }
            | Op::Reshape { .. }
            | Op::Permute { .. }
            | Op::Expand { .. }
            | Op::Slice { .. }
            | Op::Pad { .. } => Some(1),
            Op::Binary(_) | Op::Matmul | Op::Gather { .. } | Op::Rand { .. } | Op::Conv(_) | Op::Pool(_) => {
                Some(2)
            }
            Op::Where | Op::ScatterAdd { .. } => Some(3),
            Op::Concat { .. } => None,
            Op::Loop(l) => Some(l.body.carried() + l.body.invariants()),
        }
    }

    /// The type rule: the result type of this op applied to operands of the given types, or
    /// an error naming what does not fit.
    pub fn infer(&self, args: &[&TensorType]) -> Result<TensorType, OpError> {
        let ty = self.infer_shape(args)?;
        // Every value must be allocatable: its element count and byte size fit in `isize`, so
        // no later product of its dimensions wraps (a `[2^32, 2^32]` tensor once had 0
        // elements).
        let bytes = ty.shape.dims().iter().try_fold(ty.dtype.size_bytes(), |n, &d| n.checked_mul(d));
        if bytes.is_none_or(|b| b > isize::MAX as usize) {
            return Err(OpError {
                op: self.name(),
                kind: OpErrorKind::Size,
                message: format!("the result {} is too large: its size in bytes overflows", ty),
            });
        }
        Ok(ty)
    }

    /// [`Op::infer`] before the size check.
    fn infer_shape(&self, args: &[&TensorType]) -> Result<TensorType, OpError> {
        let name = self.name();
        let err = |kind: OpErrorKind, message: String| Err(OpError { op: name, kind, message });
        match self.arity() {
            Some(n) if n != args.len() => {
                return err(OpErrorKind::Argument, format!("expects {n} operand(s), got {}", args.len()));
            }
            None if args.is_empty() => {
                return err(OpErrorKind::Argument, "expects at least one operand".into())
            }
            _ => {}
        }
        match self {
            Op::Input { ty, .. } => Ok(ty.clone()),
            Op::Const { value, ty } => {
                if value.cast(ty.dtype) != *value {
                    return err(OpErrorKind::DType, format!("value {value:?} is not a {} value", ty.dtype));
                }
                Ok(ty.clone())
            }
            Op::Size { ty, .. } => {
                if ty.dtype == DType::Bool {
                    return err(OpErrorKind::DType, "size needs an integer or float dtype".into());
                }
                Ok(ty.clone())
            }
            Op::Iota { ty, axis } => {
                if ty.dtype == DType::Bool {
                    return err(OpErrorKind::DType, "iota needs an integer or float dtype".into());
                }
                check_axes(name, &[*axis], ty.shape.rank())?;
                Ok(ty.clone())
            }
            Op::Rand { ty } => {
                if !ty.dtype.is_float() {
                    return err(OpErrorKind::DType, format!("rand produces floats, not {}", ty.dtype));
                }
                for (what, a) in ["seed", "offset"].iter().zip(args) {
                    if a.dtype != DType::I64 || a.shape.rank() != 0 {
                        return err(OpErrorKind::DType, format!("rand's {what} is {a}, expected i64[]"));
                    }
                }
                Ok(ty.clone())
            }
            Op::Unary(u) => {
                let spec = u.spec();
                if !spec.accepts.admits(args[0].dtype) {
                    return err(
                        OpErrorKind::DType,
                        format!("operand is {}, expected {}", args[0], spec.accepts.describe()),
                    );
                }
                Ok(args[0].clone())
            }
            Op::Binary(b) => {
                let spec = b.spec();
                let (l, r) = (args[0], args[1]);
                if l != r {
                    return err(
                        if l.dtype != r.dtype { OpErrorKind::DType } else { OpErrorKind::Shape },
                        format!("operand types {l} and {r} differ"),
                    );
                }
                if !spec.accepts.admits(l.dtype) {
                    return err(
                        OpErrorKind::DType,
                        format!("operands are {l}, expected {}", spec.accepts.describe()),
                    );
                }
                Ok(match spec.kind {
                    BinaryKind::Arith => l.clone(),
                    BinaryKind::Compare => TensorType::new(DType::Bool, l.shape.clone()),
                })
            }
            Op::Where => {
                let (c, a, b) = (args[0], args[1], args[2]);
                if c.dtype != DType::Bool {
                    return err(OpErrorKind::DType, format!("condition is {c}, expected bool"));
                }
                if a != b || c.shape != a.shape {
                    return err(
                        if a.dtype != b.dtype { OpErrorKind::DType } else { OpErrorKind::Shape },
                        format!("operand types {c}, {a} and {b} do not match"),
                    );
                }
                Ok(a.clone())
            }
            Op::Cast { dtype } => Ok(TensorType::new(*dtype, args[0].shape.clone())),
            Op::Reduce { op, axes } => {
                let x = args[0];
                if x.dtype == DType::Bool {
                    return err(
                        OpErrorKind::DType,
                        format!("operand is {x}, expected an integer or float dtype"),
                    );
                }
                check_axes(name, axes, x.shape.rank())?;
                if op.identity().is_none() && axes.iter().any(|&a| x.shape.0[a] == 0) {
                    return err(
                        OpErrorKind::Shape,
                        format!("cannot reduce an empty axis of {x}: {name} has no identity"),
                    );
                }
                let shape: Dims = x
                    .shape
                    .0
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !axes.contains(i))
                    .map(|(_, &d)| d)
                    .collect();
                Ok(TensorType::new(x.dtype, Shape::from(shape)))
            }
            Op::ArgReduce { axis, .. } => {
                let x = args[0];
                if x.dtype == DType::Bool {
                    return err(
                        OpErrorKind::DType,
                        format!("operand is {x}, expected an integer or float dtype"),
                    );
                }
                check_axes(name, &[*axis], x.shape.rank())?;
                if x.shape.0[*axis] == 0 {
                    return err(OpErrorKind::Shape, format!("cannot take {name} over an empty axis of {x}"));
                }
                let mut shape = x.shape.0.clone();
                shape.remove(*axis);
                Ok(TensorType::new(DType::I64, Shape::from(shape)))
            }
            Op::Reshape { shape } => {
                if shape.numel() != args[0].shape.numel() {
                    return err(
                        OpErrorKind::Shape,
                        format!("cannot reshape {} ({} elements) to {shape}", args[0], args[0].shape.numel()),
                    );
                }
                Ok(TensorType::new(args[0].dtype, shape.clone()))
            }
            Op::Permute { perm } => {
                let x = args[0];
                let mut seen = vec![false; x.shape.rank()];
                if perm.len() != x.shape.rank()
                    || perm.iter().any(|&p| p >= seen.len() || std::mem::replace(&mut seen[p], true))
                {
                    return err(
                        OpErrorKind::Axis,
                        format!("{perm:?} is not a permutation of the axes of {x}"),
                    );
                }
                let shape: Dims = perm.iter().map(|&p| x.shape.0[p]).collect();
                Ok(TensorType::new(x.dtype, Shape::from(shape)))
            }
            Op::Expand { shape } => {
                let x = args[0];
                let ok = shape.rank() == x.shape.rank()
                    && x.shape.0.iter().zip(shape.0.iter()).all(|(&a, &b)| a == b || a == 1);
                if !ok {
                    return err(
                        OpErrorKind::Shape,
                        format!("cannot expand {x} to {shape}: only size-1 axes expand, rank kept"),
                    );
                }
                Ok(TensorType::new(x.dtype, shape.clone()))
            }
            Op::Slice { start, step, size, .. } => {
                let x = args[0];
                let r = x.shape.rank();
                if start.len() != r || step.len() != r || size.len() != r {
                    return err(
                        OpErrorKind::Argument,
                        format!("start, step and size need {r} entries for {x}"),
                    );
                }
                for d in 0..r {
                    let n = x.shape.0[d] as isize;
                    if step[d] == 0 {
                        return err(OpErrorKind::Argument, format!("step of axis {d} is zero"));
                    }
                    if size[d] > 0 {
                        let last = start[d] + (size[d] as isize - 1) * step[d];
                        if start[d] < 0 || start[d] >= n || last < 0 || last >= n {
                            return err(
                                OpErrorKind::Index,
                                format!(
                                    "axis {d}: start {} step {} size {} leaves 0..{n}",
                                    start[d], step[d], size[d]
                                ),
                            );
                        }
                    }
                }
                Ok(TensorType::new(x.dtype, Shape::from(size.clone())))
            }
            Op::Pad { lo, hi } => {
                let x = args[0];
                if lo.len() != x.shape.rank() || hi.len() != x.shape.rank() {
                    return err(
                        OpErrorKind::Argument,
                        format!("lo and hi need {} entries for {x}", x.shape.rank()),
                    );
                }
                let shape: Option<Dims> = (0..x.shape.rank())
                    .map(|d| lo[d].checked_add(x.shape.0[d])?.checked_add(hi[d]))
                    .collect();
                match shape {
                    Some(shape) => Ok(TensorType::new(x.dtype, Shape::from(shape))),
                    None => err(
                        OpErrorKind::Size,
                        format!("padding {x} by {lo:?} and {hi:?} overflows its sizes"),
                    ),
                }
            }
            Op::Concat { axis } => {
                let first = args[0];
                check_axes(name, &[*axis], first.shape.rank())?;
                let mut shape = first.shape.clone();
                shape.0[*axis] = 0;
                for a in args {
                    let same = a.dtype == first.dtype
                        && a.shape.rank() == first.shape.rank()
                        && (0..a.shape.rank()).all(|d| d == *axis || a.shape.0[d] == first.shape.0[d]);
                    if !same {
                        return err(
                            OpErrorKind::Shape,
                            format!("operands {first} and {a} differ outside axis {axis}"),
                        );
                    }
                    shape.0[*axis] = match shape.0[*axis].checked_add(a.shape.0[*axis]) {
                        Some(n) => n,
                        None => {
                            return err(OpErrorKind::Size, format!("the sizes along axis {axis} overflow"))
                        }
                    };
                }
                Ok(TensorType::new(first.dtype, shape))
            }
            Op::Matmul => {
                let (a, b) = (args[0], args[1]);
                let (ra, rb) = (a.shape.rank(), b.shape.rank());
                let ok = a.dtype == b.dtype
                    && a.dtype != DType::Bool
                    && ra >= 2
                    && ra == rb
                    && a.shape.0[..ra - 2] == b.shape.0[..rb - 2]
                    && a.shape.0[ra - 1] == b.shape.0[rb - 2];
                if !ok {
                    return err(
                        OpErrorKind::Shape,
                        format!(
                            "operands {a} and {b} are not [..., m, k] x [..., k, n] of one numeric dtype"
                        ),
                    );
                }
                let mut shape = a.shape.0.clone();
                shape[ra - 1] = b.shape.0[rb - 1];
                Ok(TensorType::new(a.dtype, Shape::from(shape)))
            }
            Op::Gather { axis } => {
                let (x, idx) = (args[0], args[1]);
                check_axes(name, &[*axis], x.shape.rank())?;
                let ok = idx.dtype == DType::I64
                    && idx.shape.rank() == x.shape.rank()
                    && (0..x.shape.rank()).all(|d| d == *axis || idx.shape.0[d] <= x.shape.0[d]);
                if !ok {
                    return err(
                        OpErrorKind::Shape,
                        format!(
                        "index {idx} does not fit {x} along axis {axis} (i64, same rank, no larger off-axis)"
                    ),
                    );
                }
                Ok(TensorType::new(x.dtype, idx.shape.clone()))
            }
            Op::ScatterAdd { axis } => {
                let (base, idx, src) = (args[0], args[1], args[2]);
                check_axes(name, &[*axis], base.shape.rank())?;
                let ok = idx.dtype == DType::I64
                    && src.dtype == base.dtype
                    && base.dtype != DType::Bool
                    && idx.shape == src.shape
                    && idx.shape.rank() == base.shape.rank()
                    && (0..base.shape.rank()).all(|d| d == *axis || idx.shape.0[d] <= base.shape.0[d]);
                if !ok {
                    return err(
                        OpErrorKind::Shape,
                        format!("base {base}, index {idx} and src {src} do not fit along axis {axis}"),
                    );
                }
                Ok(base.clone())
            }
            Op::Conv(c) => c.infer(args[0], args[1]),
            Op::Pool(p) => p.infer(args[0], args[1]),
            Op::Loop(l) => l.infer(args),
        }
    }
}

/// Broadcasts shapes for the front end, naming the op on failure.
pub fn broadcast_for(op: &'static str, a: &Shape, b: &Shape) -> Result<Shape, OpError> {
    broadcast_shapes(a, b).ok_or_else(|| OpError {
        op,
        kind: OpErrorKind::Broadcast { lhs: a.dims().to_vec(), rhs: b.dims().to_vec() },
        // Sizes, not expressions: the sizes the caller has (a symbolic trace's hints).
        message: format!("shapes {} and {} cannot broadcast", a.concrete(), b.concrete()),
    })
}
