//! Vector math as CLIF: exp, log, sin, cos, tanh, pow and friends as polynomial approximations
//! with range reduction, emitted inline so they vectorize (Cranelift has no such instructions,
//! and libm calls run one element at a time).
//!
//! (in progress: the stub below only fixes the interface)

use cranelift_codegen::ir::{Type, Value};
use cranelift_frontend::FunctionBuilder;
use tenjit_ir::{BinaryOp, UnaryOp};

/// Emits `op(x)` for a float `x` of type `ty` (`F32`, `F64`, `F32X4` or `F64X2`), returning
/// `None` for ops this module does not provide (the caller emits those itself).
pub fn emit_unary(_b: &mut FunctionBuilder, _op: UnaryOp, _ty: Type, _x: Value) -> Option<Value> {
    None
}

/// Emits `op(x, y)` for floats of type `ty`, returning `None` for ops this module does not
/// provide (`pow` is the one it exists for).
pub fn emit_binary(
    _b: &mut FunctionBuilder,
    _op: BinaryOp,
    _ty: Type,
    _x: Value,
    _y: Value,
) -> Option<Value> {
    None
}
