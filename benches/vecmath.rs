//! Throughput of the vector math in `tenjit::backend::cpu::vecmath`: JIT-compiles
//! `out[i] = op(a[i], b[i])` (a vector loop, not unrolled, and a scalar tail) per op and type,
//! runs it over an in-cache buffer and prints G elements/s per thread, the compile time and the
//! size of the machine code. Printing only, nothing is asserted about speed:
//! `cargo bench --bench vecmath`. With `VECMATH_DISASM=exp` (an op name)
//! it also prints that op's f32 code. Besides the single ops it measures W1's two kernels,
//! `sin(a) + cos(a)²` and `sqrt(exp(a))`.

use cranelift_codegen::ir::types::{F32, F64};
use cranelift_codegen::ir::{InstBuilder, Type};
use std::time::Instant;
use tenjit::backend::cpu::vecmath::harness::{self, Loop};
use tenjit::backend::cpu::vecmath::{emit_binary, emit_unary};
use tenjit_ir::{BinaryOp, UnaryOp};

#[derive(Clone, Copy, Debug)]
enum Op {
    Unary(UnaryOp),
    Pow,
    /// `sin(a) + cos(a)²`, W1.sincos's kernel.
    SinCos,
    /// `sqrt(exp(a))`, the transcendental part of W1.sqrtexp's kernel.
    SqrtExp,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Unary(UnaryOp::Exp) => "exp",
            Op::Unary(UnaryOp::Log) => "log",
            Op::Unary(UnaryOp::Sin) => "sin",
            Op::Unary(UnaryOp::Cos) => "cos",
            Op::Unary(UnaryOp::Tanh) => "tanh",
            Op::Unary(UnaryOp::Erf) => "erf",
            Op::Unary(_) => "other",
            Op::Pow => "pow",
            Op::SinCos => "sin+cos²",
            Op::SqrtExp => "sqrt∘exp",
        }
    }

    /// The argument ranges measured: `a` in `lo..hi`, and `b` in `-5..5` for pow.
    fn range(self) -> (f64, f64) {
        match self {
            Op::Unary(UnaryOp::Exp) => (-20.0, 20.0),
            Op::Unary(UnaryOp::Log) => (1e-3, 1e3),
            Op::Unary(UnaryOp::Sin | UnaryOp::Cos) | Op::SinCos => (-3.0, 3.0),
            Op::SqrtExp => (-3.0, 3.0),
            Op::Unary(UnaryOp::Tanh | UnaryOp::Erf) => (-5.0, 5.0),
            Op::Unary(_) => (0.0, 1.0),
            Op::Pow => (0.1, 10.0),
        }
    }
}

const OPS: [Op; 9] = [
    Op::Unary(UnaryOp::Exp),
    Op::Unary(UnaryOp::Log),
    Op::Unary(UnaryOp::Sin),
    Op::Unary(UnaryOp::Cos),
    Op::Unary(UnaryOp::Tanh),
    Op::Unary(UnaryOp::Erf),
    Op::Pow,
    Op::SinCos,
    Op::SqrtExp,
];

/// Compiles the loop of `op` over `scalar` elements: whole vectors, then a scalar tail.
fn compile(op: Op, scalar: Type, disasm: bool) -> Loop {
    harness::compile(scalar, true, disasm, |b, ty, x, y| {
        match op {
            Op::Unary(u) => emit_unary(b, u, ty, x),
            Op::Pow => emit_binary(b, BinaryOp::Pow, ty, x, y),
            Op::SinCos => {
                let s = emit_unary(b, UnaryOp::Sin, ty, x).expect("sin");
                let c = emit_unary(b, UnaryOp::Cos, ty, x).expect("cos");
                let c2 = b.ins().fmul(c, c);
                Some(b.ins().fadd(s, c2))
            }
            Op::SqrtExp => emit_unary(b, UnaryOp::Exp, ty, x).map(|e| b.ins().sqrt(e)),
        }
        .expect("vecmath provides the op")
    })
}

/// xorshift64*, uniform in `[0, 1)`.
fn unit(state: &mut u64) -> f64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
}

/// Median G elements/s of `kernel` over `reps` passes of an in-cache buffer of `n` elements.
fn throughput<T: Copy>(kernel: &Loop, a: &[T], b: &[T], out: &mut [T]) -> f64 {
    let n = a.len();
    let reps = 200;
    let mut rates: Vec<f64> = (0..9)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..reps {
                (kernel.func)(a.as_ptr().cast(), b.as_ptr().cast(), out.as_mut_ptr().cast(), n);
            }
            (n * reps) as f64 / start.elapsed().as_secs_f64() / 1e9
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

fn measure<T: Copy>(op: Op, scalar: Type, conv: fn(f64) -> T) {
    let n = 4096;
    let mut state = 0x9e37_79b9_7f4a_7c15;
    let (lo, hi) = op.range();
    let a: Vec<T> = (0..n)
        .map(|_| {
            let u = unit(&mut state);
            // log spans decades, the others are uniform.
            conv(if matches!(op, Op::Unary(UnaryOp::Log)) {
                lo * (hi / lo).powf(u)
            } else {
                lo + (hi - lo) * u
            })
        })
        .collect();
    let b: Vec<T> = (0..n).map(|_| conv(-5.0 + 10.0 * unit(&mut state))).collect();
    let mut out = a.clone();
    let disasm = std::env::var("VECMATH_DISASM").is_ok_and(|v| v == op.name()) && scalar == F32;
    let kernel = compile(op, scalar, disasm);
    let rate = throughput(&kernel, &a, &b, &mut out);
    println!(
        "{:>4} {}: {rate:6.2} G elements/s   compile {:7.0} µs   code {:5} bytes",
        op.name(),
        if scalar == F32 { "f32" } else { "f64" },
        kernel.compile_us,
        kernel.code_bytes
    );
}

fn main() {
    for op in OPS {
        measure::<f32>(op, F32, |v| v as f32);
    }
    for op in OPS {
        measure::<f64>(op, F64, |v| v);
    }
}
