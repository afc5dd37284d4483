//! The elementwise rows of the op table: every unary and binary primitive with everything
//! about it (name, dtype rule, semantics, gradient, cost, accuracy class, CPU lowering and CUDA
//! form), as one [`UnarySpec`] or [`BinarySpec`] per op. Every consumer reads these rows, so a
//! new elementwise primitive is its variant, its row, its VJP rule and a `Tensor` method (the
//! recipe is in `ir/README.md`).

use crate::autodiff::rules::{self, BinaryVjp, UnaryVjp};
use crate::types::DType;

/// Which dtypes an elementwise op accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accepts {
    /// Integers and floats.
    Numeric,
    /// Floats only (the front end casts integers to the default float first, as torch does).
    Float,
    /// Booleans only.
    Bool,
    /// Every dtype.
    Any,
}

impl Accepts {
    /// Whether `dtype` is accepted.
    pub fn admits(self, dtype: DType) -> bool {
        match self {
            Accepts::Numeric => dtype != DType::Bool,
            Accepts::Float => dtype.is_float(),
            Accepts::Bool => dtype == DType::Bool,
            Accepts::Any => true,
        }
    }

    pub(crate) fn describe(self) -> &'static str {
        match self {
            Accepts::Numeric => "an integer or float dtype",
            Accepts::Float => "a float dtype",
            Accepts::Bool => "bool",
            Accepts::Any => "any dtype",
        }
    }
}

/// Per-element cost of an op, in two scales that different consumers read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cost {
    /// Relative weight for fusion and scheduling decisions: 1 for a simple instruction, 2 for a
    /// square root or a division, 4 for a transcendental function or a power.
    pub weight: u64,
    /// A rough size of the CPU code per vector of elements, in CLIF instructions (1 for a
    /// native instruction, about 40 for a vector-math routine or a call per lane); the CPU
    /// backend unrolls less when a row is large. It is not derived from `weight`: a square
    /// root weighs 2 but is one instruction.
    pub cpu: usize,
}

/// How close compiled results are to the interpreter's, per element: the class the
/// differential tests read their tolerances from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accuracy {
    /// Bit for bit equal to the interpreter (correctly rounded, as `+ - * / sqrt`, rounding,
    /// comparisons and logic).
    Exact,
    /// Within this many ulp of the interpreter's result (vector math, libm, a composed
    /// expression with more than one rounding).
    Ulp(u32),
}

/// How the CPU backend lowers an op on floats. The row says which kind of lowering; the
/// backend decides how (this crate knows nothing of Cranelift).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuLowering {
    /// A Cranelift instruction (or a short fixed sequence) exists: the backend's table of
    /// native ops has an entry.
    Native,
    /// A polynomial routine of the backend's vector-math module.
    VecMath,
    /// The generic fallback, needing nothing per op: a scalar call per element into the row's
    /// own `float` function (in `f64`; an `f32` operand is widened and the result rounded).
    Call,
}

/// How the CUDA backend spells an op: a C expression template per operand category, with
/// `{x}` and `{y}` standing for the operands and `{err}` for the error word of an integer op
/// that can fail. An empty template is a category the op does not accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CudaForm {
    /// The template for `f32` operands.
    pub f32: &'static str,
    /// The template for `f64` operands.
    pub f64: &'static str,
    /// The template for integer and `bool` operands.
    pub int: &'static str,
}

impl CudaForm {
    /// The template for operands of `dtype` (empty when the op has none).
    pub fn template(&self, dtype: DType) -> &'static str {
        match dtype {
            // The 16-bit floats are computed in `f32`.
            DType::F16 | DType::BF16 | DType::F32 => self.f32,
            DType::F64 => self.f64,
            DType::Bool | DType::I32 | DType::I64 => self.int,
        }
    }
}

/// An integer evaluation result: `Err` names what is undefined (division by zero, ...).
pub type IntResult = Result<i64, &'static str>;

/// One row of the unary table.
pub struct UnarySpec {
    /// Printed and parsed name; also the Tensor method's name.
    pub name: &'static str,
    /// Dtypes the op accepts; the result has the operand's dtype.
    pub accepts: Accepts,
    /// Semantics on floats (in `f64`; `f32` rounds the result).
    pub float: fn(f64) -> f64,
    /// Semantics on integers (in `i64`, wrapping; `i32` truncates the result). Booleans are
    /// 0 and 1.
    pub int: fn(i64) -> i64,
    /// The vector-Jacobian product on floats (`None`: no gradient flows, as for `not`).
    pub vjp: Option<UnaryVjp>,
    /// Per-element cost.
    pub cost: Cost,
    /// How the CPU lowers it on floats (integer and `bool` operands use native instructions).
    pub cpu: CpuLowering,
    /// How close compiled results are to the interpreter's.
    pub accuracy: Accuracy,
    /// The CUDA C expression.
    pub cuda: CudaForm,
}

op_enum! {
    /// Elementwise unary primitives.
    pub enum UnaryOp {
        /// `-x`.
        Neg,
        /// `|x|`.
        Abs,
        /// Square root.
        Sqrt,
        /// `e^x`.
        Exp,
        /// Natural logarithm.
        Log,
        /// Sine.
        Sin,
        /// Cosine.
        Cos,
        /// Hyperbolic tangent.
        Tanh,
        /// Round toward -inf.
        Floor,
        /// Round toward +inf.
        Ceil,
        /// Logical not.
        Not,
        /// `x / (1 + |x|)`.
        Softsign,
        /// The error function, `2/√π ∫₀ˣ e^(-t²) dt`.
        Erf,
    }
}

impl UnaryOp {
    /// This op's row of the table.
    #[rustfmt::skip]
    pub fn spec(self) -> &'static UnarySpec {
        const fn float_only(_: i64) -> i64 {
            0
        }
        use Accepts::*;
        use Accuracy::*;
        use CpuLowering::*;
        match self {
            UnaryOp::Neg => &UnarySpec { name: "neg", accepts: Numeric, float: |x| -x, int: i64::wrapping_neg, vjp: Some(rules::neg), cost: Cost { weight: 1, cpu: 1 }, cpu: Native, accuracy: Exact, cuda: CudaForm { f32: "(-{x})", f64: "(-{x})", int: "tj_neg({x})" } },
            UnaryOp::Abs => &UnarySpec { name: "abs", accepts: Numeric, float: f64::abs, int: i64::wrapping_abs, vjp: Some(rules::abs), cost: Cost { weight: 1, cpu: 1 }, cpu: Native, accuracy: Exact, cuda: CudaForm { f32: "fabsf({x})", f64: "fabs({x})", int: "tj_abs({x})" } },
            UnaryOp::Sqrt => &UnarySpec { name: "sqrt", accepts: Float, float: f64::sqrt, int: float_only, vjp: Some(rules::sqrt), cost: Cost { weight: 2, cpu: 1 }, cpu: Native, accuracy: Exact, cuda: CudaForm { f32: "__fsqrt_rn({x})", f64: "__dsqrt_rn({x})", int: "" } },
            UnaryOp::Exp => &UnarySpec { name: "exp", accepts: Float, float: f64::exp, int: float_only, vjp: Some(rules::exp), cost: Cost { weight: 4, cpu: 40 }, cpu: VecMath, accuracy: Ulp(4), cuda: CudaForm { f32: "expf({x})", f64: "exp({x})", int: "" } },
            UnaryOp::Log => &UnarySpec { name: "log", accepts: Float, float: f64::ln, int: float_only, vjp: Some(rules::log), cost: Cost { weight: 4, cpu: 40 }, cpu: VecMath, accuracy: Ulp(4), cuda: CudaForm { f32: "logf({x})", f64: "log({x})", int: "" } },
            UnaryOp::Sin => &UnarySpec { name: "sin", accepts: Float, float: f64::sin, int: float_only, vjp: Some(rules::sin), cost: Cost { weight: 4, cpu: 40 }, cpu: VecMath, accuracy: Ulp(4), cuda: CudaForm { f32: "sinf({x})", f64: "sin({x})", int: "" } },
            UnaryOp::Cos => &UnarySpec { name: "cos", accepts: Float, float: f64::cos, int: float_only, vjp: Some(rules::cos), cost: Cost { weight: 4, cpu: 40 }, cpu: VecMath, accuracy: Ulp(4), cuda: CudaForm { f32: "cosf({x})", f64: "cos({x})", int: "" } },
            UnaryOp::Tanh => &UnarySpec { name: "tanh", accepts: Float, float: f64::tanh, int: float_only, vjp: Some(rules::tanh), cost: Cost { weight: 4, cpu: 40 }, cpu: VecMath, accuracy: Ulp(4), cuda: CudaForm { f32: "tanhf({x})", f64: "tanh({x})", int: "" } },
            UnaryOp::Floor => &UnarySpec { name: "floor", accepts: Float, float: f64::floor, int: float_only, vjp: Some(rules::zero), cost: Cost { weight: 1, cpu: 1 }, cpu: Native, accuracy: Exact, cuda: CudaForm { f32: "floorf({x})", f64: "floor({x})", int: "" } },
            UnaryOp::Ceil => &UnarySpec { name: "ceil", accepts: Float, float: f64::ceil, int: float_only, vjp: Some(rules::zero), cost: Cost { weight: 1, cpu: 1 }, cpu: Native, accuracy: Exact, cuda: CudaForm { f32: "ceilf({x})", f64: "ceil({x})", int: "" } },
            UnaryOp::Not => &UnarySpec { name: "not", accepts: Bool, float: |x| (x == 0.0) as i64 as f64, int: |x| (x == 0) as i64, vjp: None, cost: Cost { weight: 1, cpu: 1 }, cpu: Native, accuracy: Exact, cuda: CudaForm { f32: "", f64: "", int: "(!{x})" } },
            UnaryOp::Softsign => &UnarySpec { name: "softsign", accepts: Float, float: |x| x / (1.0 + x.abs()), int: float_only, vjp: Some(rules::softsign), cost: Cost { weight: 2, cpu: 40 }, cpu: Call, accuracy: Ulp(4), cuda: CudaForm { f32: "({x} / (1.0f + fabsf({x})))", f64: "({x} / (1.0 + fabs({x})))", int: "" } },
            UnaryOp::Erf => &UnarySpec { name: "erf", accepts: Float, float: libm::erf, int: float_only, vjp: Some(rules::erf), cost: Cost { weight: 4, cpu: 40 }, cpu: VecMath, accuracy: Ulp(4), cuda: CudaForm { f32: "erff({x})", f64: "erf({x})", int: "" } },
        }
    }
}

/// What a binary op's result is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryKind {
    /// Same dtype as the operands.
    Arith,
    /// `bool`.
    Compare,
}

/// One row of the binary table.
pub struct BinarySpec {
    /// Printed and parsed name.
    pub name: &'static str,
    /// Dtypes the op accepts (both operands have the same dtype).
    pub accepts: Accepts,
    /// Result kind.
    pub kind: BinaryKind,
    /// Semantics on floats (in `f64`); comparisons return 1.0 or 0.0.
    pub float: fn(f64, f64) -> f64,
    /// Semantics on integers and booleans (in `i64`, wrapping); comparisons return 1 or 0.
    pub int: fn(i64, i64) -> IntResult,
    /// The vector-Jacobian product on floats (`None` for comparisons and logic, whose results
    /// are booleans).
    pub vjp: Option<BinaryVjp>,
    /// Per-element cost.
    pub cost: Cost,
    /// How the CPU lowers it on floats (integer and `bool` operands use native instructions).
    pub cpu: CpuLowering,
    /// How close compiled results are to the interpreter's.
    pub accuracy: Accuracy,
    /// The CUDA C expression.
    pub cuda: CudaForm,
}

op_enum! {
    /// Elementwise binary primitives. Their order is part of the ABI of compiled code: a
    /// failing integer op reports its position in [`BinaryOp::ALL`] plus one.
    pub enum BinaryOp {
        /// `a + b`.
        Add,
        /// `a - b`.
        Sub,
        /// `a * b`.
        Mul,
        /// `a / b` (floats only: integer `/` is true division in the front end).
        Div,
        /// `a ** b`.
        Pow,
        /// Elementwise maximum, NaN-propagating.
        Maximum,
        /// Elementwise minimum, NaN-propagating.
        Minimum,
        /// Floor division with Python's rounding (toward -inf).
        FloorDiv,
        /// Remainder with the sign of the divisor, as Python's `%`.
        Rem,
        /// `a == b`.
        Eq,
        /// `a != b`.
        Ne,
        /// `a < b`.
        Lt,
        /// `a <= b`.
        Le,
        /// `a > b`.
        Gt,
        /// `a >= b`.
        Ge,
        /// Logical and.
        And,
        /// Logical or.
        Or,
    }
}

/// IEEE 754-2019 `maximum`: NaN-propagating, and `+0` above `-0`, so the result does not
/// depend on the operands' order and a reduction gives the same value in any order (the rule
/// of Cranelift's `fmax`, WebAssembly's `f64.max` and the CUDA prelude's `tj_maximum`).
/// NumPy and torch return one of two equal zeros by position instead (`np.max([0., -0.])` is
/// `-0.0`, the later one), which no parallel reduction can reproduce.
fn nan_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == b {
        // Equal values differ at most in the sign of a zero: +0 unless both are -0.
        f64::from_bits(a.to_bits() & b.to_bits())
    } else {
        a.max(b)
    }
}

/// IEEE 754-2019 `minimum`: NaN-propagating, and `-0` below `+0` (see [`nan_max`]).
fn nan_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == b {
        // Equal values differ at most in the sign of a zero: -0 if either is -0.
        f64::from_bits(a.to_bits() | b.to_bits())
    } else {
        a.min(b)
    }
}

/// Python's `a % b` on floats, as torch.remainder computes it: fmod, then shifted by `b` when
/// the signs differ.
fn float_rem(a: f64, b: f64) -> f64 {
    let m = a % b;
    if m != 0.0 && ((b < 0.0) != (m < 0.0)) {
        m + b
    } else {
        m
    }
}

/// Python's `a // b` on floats, as torch.floor_divide computes it (exact for representable
/// quotients, and `copysign(0, a/b)` for zero).
fn float_floor_div(a: f64, b: f64) -> f64 {
    if b == 0.0 {
        return a / b;
    }
    let m = a % b;
    let mut div = (a - m) / b;
    if m != 0.0 && ((b < 0.0) != (m < 0.0)) {
        div -= 1.0;
    }
    if div != 0.0 {
        let mut f = div.floor();
        if div - f > 0.5 {
            f += 1.0;
        }
        f
    } else {
        0f64.copysign(a / b)
    }
}

fn int_floor_div(a: i64, b: i64) -> IntResult {
    if b == 0 {
        return Err("integer division by zero");
    }
    let q = a.wrapping_div(b);
    Ok(if (a.wrapping_rem(b) != 0) && ((a < 0) != (b < 0)) { q.wrapping_sub(1) } else { q })
}

fn int_rem(a: i64, b: i64) -> IntResult {
    if b == 0 {
        return Err("integer remainder by zero");
    }
    let r = a.wrapping_rem(b);
    Ok(if r != 0 && ((r < 0) != (b < 0)) { r + b } else { r })
}

fn int_pow(a: i64, b: i64) -> IntResult {
    if b < 0 {
        return Err("integers to negative integer powers are not allowed");
    }
    Ok(a.wrapping_pow(b.min(u32::MAX as i64) as u32))
}

impl BinaryOp {
    /// This op's row of the table.
    #[rustfmt::skip]
    pub fn spec(self) -> &'static BinarySpec {
        use Accepts::*;
        use Accuracy::*;
        use BinaryKind::*;
        use CpuLowering::*;
        fn b(x: bool) -> f64 {
            x as i64 as f64
        }
        fn bi(x: bool) -> IntResult {
            Ok(x as i64)
        }
        match self {
            BinaryOp::Add => &BinarySpec { name: "add", accepts: Numeric, kind: Arith, float: |a, b| a + b, int: |a, b| Ok(a.wrapping_add(b)), vjp: Some(rules::add), cost: Cost { weight: 1, cpu: 1 }, cpu: Native, accuracy: Exact, cuda: CudaForm { f32: "({x} + {y})", f64: "({x} + {y})", int: "tj_add({x}, {y})" } },
            BinaryOp::Sub => &BinarySpec { name: "sub", accepts: Numeric, kind: Arith, float: |a, b| a - b, int: |a, b| Ok(a.wrapping_sub(b)), vjp: Some(rules::sub), cost: Cost { weight: 1, cpu: 1 }, cpu: Native, accuracy: Exact, cuda: CudaForm { f32: "({x} - {y})", f64: "({x} - {y})", int: "tj_sub({x}, {y})" } },
            BinaryOp::Mul => &BinarySpec { name: "mul", accepts: Numeric, kind: Arith, float: |a, b| a * b, int: |a, b| Ok(a.wrapping_mul(b)), vjp: Some(rules::mul), cost: Cost { weight: 1, cpu: 1 }, cpu: Native, accuracy: Exact, cuda: CudaForm { f32: "__fmul_rn({x}, {y})", f64: "__dmul_rn({x}, {y})", int: "tj_mul({x}, {y})" } },
            BinaryOp::Div => &BinarySpec { name: "div", accepts: Float, kind: Arith, float: |a, b| a / b, int: |_, _| Err("div is defined on floats only"), vjp: Some(rules::div), cost: Cost { weight: 2, cpu: 1 }, cpu: Native, accuracy: Exact, cuda: CudaForm { f32: "__fdiv_rn({x}, {y})", f64: "__ddiv_rn({x}, {y})", int: "" } },
            BinaryOp::Pow => &BinarySpec { name: "pow", accepts: Numeric, kind: Arith, float: f64::powf, int: int_pow, vjp: Some(rules::pow), cost: Cost { weight: 4, cpu: 80 }, cpu: VecMath, accuracy: Ulp(4), cuda: CudaForm { f32: "powf({x}, {y})", f64: "pow({x}, {y})", int: "tj_pow({x}, {y}, {err})" } },
            BinaryOp::Maximum => &BinarySpec { name: "maximum", accepts: Numeric, kind: Arith, float: nan_max, int: |a, b| Ok(a.max(b)), vjp: Some(rules::maximum), cost: Cost { weight: 1, cpu: 1 }, cpu: Native, accuracy: Exact, cuda: CudaForm { f32: "tj_maximum({x}, {y})", f64: "tj_maximum({x}, {y})", int: "tj_maximum({x}, {y})" } },
            BinaryOp::Minimum => &BinarySpec { name: "minimum", accepts: Numeric, kind: Arith, float: nan_min, int: |a, b| Ok(a.min(b)), vjp: Some(rules::minimum), cost: Cost { weight: 1, cpu: 1 }, cpu: Native, accuracy: Exact, cuda: CudaForm { f32: "tj_minimum({x}, {y})", f64: "tj_minimum({x}, {y})", int: "tj_minimum({x}, {y})" } },
            BinaryOp::FloorDiv => &BinarySpec { name: "floor_div", accepts: Numeric, kind: Arith, float: float_floor_div, int: int_floor_div, vjp: Some(rules::floor_div), cost: Cost { weight: 2, cpu: 8 }, cpu: Call, accuracy: Exact, cuda: CudaForm { f32: "tj_floor_div({x}, {y})", f64: "tj_floor_div({x}, {y})", int: "tj_floor_div({x}, {y}, {err})" } },
            BinaryOp::Rem => &BinarySpec { name: "rem", accepts: Numeric, kind: Arith, float: float_rem, int: int_rem, vjp: Some(rules::rem), cost: Cost { weight: 2, cpu: 8 }, cpu: Call, accuracy: Exact, cuda: CudaForm { f32: "tj_rem({x}, {y})", f64: "tj_rem({x}, {y})", int: "tj_rem({x}, {y}, {err})" } },
            BinaryOp::Eq => &BinarySpec { name: "eq", accepts: Any, kind: Compare, float: |x, y| b(x == y), int: |x, y| bi(x == y), vjp: None, cost: Cost { weight: 1, cpu: 1 }, cpu: Native, accuracy: Exact, cuda: CudaForm { f32: "({x} == {y})", f64: "({x} == {y})", int: "({x} == {y})" } },
            BinaryOp::Ne => &BinarySpec { name: "ne", accepts: Any, kind: Compare, float: |x, y| b(x != y), int: |x, y| bi(x != y), vjp: None, cost: Cost { weight: 1, cpu: 1 }, cpu: Native, accuracy: Exact, cuda: CudaForm { f32: "({x} != {y})", f64: "({x} != {y})", int: "({x} != {y})" } },
            BinaryOp::Lt => &BinarySpec { name: "lt", accepts: Any, kind: Compare, float: |x, y| b(x < y), int: |x, y| bi(x < y), vjp: None, cost: Cost { weight: 1, cpu: 1 }, cpu: Native, accuracy: Exact, cuda: CudaForm { f32: "({x} < {y})", f64: "({x} < {y})", int: "({x} < {y})" } },
            BinaryOp::Le => &BinarySpec { name: "le", accepts: Any, kind: Compare, float: |x, y| b(x <= y), int: |x, y| bi(x <= y), vjp: None, cost: Cost { weight: 1, cpu: 1 }, cpu: Native, accuracy: Exact, cuda: CudaForm { f32: "({x} <= {y})", f64: "({x} <= {y})", int: "({x} <= {y})" } },
            BinaryOp::Gt => &BinarySpec { name: "gt", accepts: Any, kind: Compare, float: |x, y| b(x > y), int: |x, y| bi(x > y), vjp: None, cost: Cost { weight: 1, cpu: 1 }, cpu: Native, accuracy: Exact, cuda: CudaForm { f32: "({x} > {y})", f64: "({x} > {y})", int: "({x} > {y})" } },
            BinaryOp::Ge => &BinarySpec { name: "ge", accepts: Any, kind: Compare, float: |x, y| b(x >= y), int: |x, y| bi(x >= y), vjp: None, cost: Cost { weight: 1, cpu: 1 }, cpu: Native, accuracy: Exact, cuda: CudaForm { f32: "({x} >= {y})", f64: "({x} >= {y})", int: "({x} >= {y})" } },
            BinaryOp::And => &BinarySpec { name: "and", accepts: Bool, kind: Compare, float: |x, y| b(x != 0.0 && y != 0.0), int: |x, y| bi(x != 0 && y != 0), vjp: None, cost: Cost { weight: 1, cpu: 1 }, cpu: Native, accuracy: Exact, cuda: CudaForm { f32: "", f64: "", int: "({x} && {y})" } },
            BinaryOp::Or => &BinarySpec { name: "or", accepts: Bool, kind: Compare, float: |x, y| b(x != 0.0 || y != 0.0), int: |x, y| bi(x != 0 || y != 0), vjp: None, cost: Cost { weight: 1, cpu: 1 }, cpu: Native, accuracy: Exact, cuda: CudaForm { f32: "", f64: "", int: "({x} || {y})" } },
        }
    }
}
