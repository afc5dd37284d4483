//! The elementwise ops that have a Cranelift instruction, per dtype category: the CPU side of
//! the op rows whose lowering is [`CpuLowering::Native`](tenjit_ir::ops::CpuLowering::Native), and the
//! integer and `bool` forms of every op that accepts those dtypes.
//!
//! These are lookup tables rather than matches over the op enums: an op that is not listed has
//! no native form, and the emitter lowers it the way its row says (vector math or the generic
//! call into the row's own `float` function), so a new op needs no entry here. Every entry is
//! valid on a scalar and on a 128-bit vector of the same element type, except the `bool`
//! tables, whose scalars are `i8` 0/1 and whose lanes are all-ones/zero masks.

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{InstBuilder, Value};
use cranelift_frontend::FunctionBuilder;
use tenjit_ir::{BinaryOp, UnaryOp};

/// A unary instruction.
pub(super) type Unary = fn(&mut FunctionBuilder, Value) -> Value;
/// A binary instruction.
pub(super) type Binary = fn(&mut FunctionBuilder, Value, Value) -> Value;

/// Float unary ops.
pub(super) const FLOAT_UNARY: &[(UnaryOp, Unary)] = &[
    (UnaryOp::Neg, |b, x| b.ins().fneg(x)),
    (UnaryOp::Abs, |b, x| b.ins().fabs(x)),
    (UnaryOp::Sqrt, |b, x| b.ins().sqrt(x)),
    (UnaryOp::Floor, |b, x| b.ins().floor(x)),
    (UnaryOp::Ceil, |b, x| b.ins().ceil(x)),
];

/// Integer unary ops.
pub(super) const INT_UNARY: &[(UnaryOp, Unary)] =
    &[(UnaryOp::Neg, |b, x| b.ins().ineg(x)), (UnaryOp::Abs, |b, x| b.ins().iabs(x))];

/// `bool` unary ops on `i8` 0/1 scalars.
pub(super) const BOOL_UNARY_SCALAR: &[(UnaryOp, Unary)] = &[(UnaryOp::Not, |b, x| b.ins().bxor_imm_s(x, 1))];

/// `bool` unary ops on lane masks.
pub(super) const BOOL_UNARY_VECTOR: &[(UnaryOp, Unary)] = &[(UnaryOp::Not, |b, x| b.ins().bnot(x))];

/// Float binary ops.
pub(super) const FLOAT_BINARY: &[(BinaryOp, Binary)] = &[
    (BinaryOp::Add, |b, x, y| b.ins().fadd(x, y)),
    (BinaryOp::Sub, |b, x, y| b.ins().fsub(x, y)),
    (BinaryOp::Mul, |b, x, y| b.ins().fmul(x, y)),
    (BinaryOp::Div, |b, x, y| b.ins().fdiv(x, y)),
    (BinaryOp::Maximum, |b, x, y| b.ins().fmax(x, y)),
    (BinaryOp::Minimum, |b, x, y| b.ins().fmin(x, y)),
    (BinaryOp::Eq, |b, x, y| b.ins().fcmp(FloatCC::Equal, x, y)),
    (BinaryOp::Ne, |b, x, y| b.ins().fcmp(FloatCC::NotEqual, x, y)),
    (BinaryOp::Lt, |b, x, y| b.ins().fcmp(FloatCC::LessThan, x, y)),
    (BinaryOp::Le, |b, x, y| b.ins().fcmp(FloatCC::LessThanOrEqual, x, y)),
    (BinaryOp::Gt, |b, x, y| b.ins().fcmp(FloatCC::GreaterThan, x, y)),
    (BinaryOp::Ge, |b, x, y| b.ins().fcmp(FloatCC::GreaterThanOrEqual, x, y)),
];

/// Integer binary ops (`//`, `%` and `**` are sequences in the emitter: they set the status).
pub(super) const INT_BINARY: &[(BinaryOp, Binary)] = &[
    (BinaryOp::Add, |b, x, y| b.ins().iadd(x, y)),
    (BinaryOp::Sub, |b, x, y| b.ins().isub(x, y)),
    (BinaryOp::Mul, |b, x, y| b.ins().imul(x, y)),
    (BinaryOp::Maximum, |b, x, y| b.ins().smax(x, y)),
    (BinaryOp::Minimum, |b, x, y| b.ins().smin(x, y)),
    (BinaryOp::Eq, |b, x, y| b.ins().icmp(IntCC::Equal, x, y)),
    (BinaryOp::Ne, |b, x, y| b.ins().icmp(IntCC::NotEqual, x, y)),
    (BinaryOp::Lt, |b, x, y| b.ins().icmp(IntCC::SignedLessThan, x, y)),
    (BinaryOp::Le, |b, x, y| b.ins().icmp(IntCC::SignedLessThanOrEqual, x, y)),
    (BinaryOp::Gt, |b, x, y| b.ins().icmp(IntCC::SignedGreaterThan, x, y)),
    (BinaryOp::Ge, |b, x, y| b.ins().icmp(IntCC::SignedGreaterThanOrEqual, x, y)),
];

/// `bool` binary ops: comparisons order `false < true` (unsigned, so they hold for 0/1 scalars
/// and for 0/-1 lane masks alike).
pub(super) const BOOL_BINARY: &[(BinaryOp, Binary)] = &[
    (BinaryOp::Eq, |b, x, y| b.ins().icmp(IntCC::Equal, x, y)),
    (BinaryOp::Ne, |b, x, y| b.ins().icmp(IntCC::NotEqual, x, y)),
    (BinaryOp::Lt, |b, x, y| b.ins().icmp(IntCC::UnsignedLessThan, x, y)),
    (BinaryOp::Le, |b, x, y| b.ins().icmp(IntCC::UnsignedLessThanOrEqual, x, y)),
    (BinaryOp::Gt, |b, x, y| b.ins().icmp(IntCC::UnsignedGreaterThan, x, y)),
    (BinaryOp::Ge, |b, x, y| b.ins().icmp(IntCC::UnsignedGreaterThanOrEqual, x, y)),
    (BinaryOp::And, |b, x, y| b.ins().band(x, y)),
    (BinaryOp::Or, |b, x, y| b.ins().bor(x, y)),
];

/// The entry of `op` in `table`, if it has one.
pub(super) fn find<O: PartialEq + Copy, F: Copy>(table: &[(O, F)], op: O) -> Option<F> {
    table.iter().find(|(o, _)| *o == op).map(|&(_, f)| f)
}
