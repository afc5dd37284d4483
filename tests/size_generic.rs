//! Size-generic CPU kernels: kernels of one structure at many sizes (extents 0 to 1000, on
//! both axes of a 2-D space) share one compiled function, which reads their extents, strides
//! and offsets from each kernel's own size table, and every one of them agrees with the
//! kernel-IR interpreter. Then a program at growing sizes (attention's `[heads, T, T]`
//! scores) against the graph interpreter.

use tenjit::backend::cpu::codegen::{compile, CompiledKernel};
use tenjit::ir::kernel::{Combine, Inst, Kernel, KernelReduce, Program, Store};
use tenjit::ir::{interp, ArgOp, BinaryOp, Buffer, DType, ReduceOp, Scalar, UnaryOp};

#[path = "common/kernels.rs"]
mod kernels;
#[path = "common/rng.rs"]
mod rng;
use kernels::*;

/// The extents each axis takes (the other axis is 3 or 7 meanwhile).
const SIZES: [usize; 9] = [0, 1, 2, 3, 7, 8, 9, 33, 1000];

/// `(rows, cols)` pairs: every size on each axis, and a few larger squares.
fn pairs() -> Vec<(usize, usize)> {
    let mut v: Vec<(usize, usize)> = SIZES.iter().flat_map(|&s| [(s, 3), (7, s)]).collect();
    v.extend([(33, 33), (9, 130)]);
    v
}

/// A kernel family: the program of one structure at `(rows, cols)`.
type Family = fn(DType, usize, usize) -> Program;

/// `out[i, j] = x[i, j] * w[j] + c[i]`: two broadcasts keep the dims apart.
fn broadcast(d: DType, m: usize, n: usize) -> Program {
    let body = vec![
        load(0, d, 0, &[n as i64, 1]),
        load(1, d, 0, &[0, 1]),
        ins(Inst::Binary(BinaryOp::Mul, 0, 1), d),
        load(2, d, 0, &[1, 0]),
        ins(Inst::Binary(BinaryOp::Add, 2, 3), d),
    ];
    let k = elementwise(&[m, n], body, vec![Store { buf: 3, value: 4 }]);
    program(vec![input(0, d, &[m, n]), input(1, d, &[n]), input(2, d, &[m]), temp(d, &[m, n])], k, vec![3])
}

/// `out[i, j] = x[m - 1 - i, n - 1 - j] - x[i, 2 j + 1]` over an `[m, 2n]` buffer `x`: a
/// reversed view (negative strides, an offset) and a strided one.
fn slices(d: DType, m: usize, n: usize) -> Program {
    let (mi, ni) = (m as i64, n as i64);
    let last = (mi - 1) * 2 * ni + ni - 1;
    let body = vec![
        load(0, d, last.max(0), &[-2 * ni, -1]),
        load(0, d, 1, &[2 * ni, 2]),
        ins(Inst::Binary(BinaryOp::Sub, 0, 1), d),
    ];
    let k = elementwise(&[m, n], body, vec![Store { buf: 1, value: 2 }]);
    program(vec![input(0, d, &[m, 2 * n]), temp(d, &[m, n])], k, vec![1])
}

/// The reduction of `f(x)` over `axes` of a dense `[m, n]` `x`, then `acc + 1`.
fn reduce(d: DType, op: ReduceOp, axes: &[usize], m: usize, n: usize) -> Program {
    let body = vec![load(0, d, 0, &[n as i64, 1]), ins(Inst::Unary(UnaryOp::Abs, 0), d)];
    let epilogue = vec![
        ins(Inst::Acc, d),
        ins(Inst::Const(Scalar::Int(1)), d),
        ins(Inst::Binary(BinaryOp::Add, 0, 1), d),
    ];
    let out: Vec<usize> =
        [m, n].iter().enumerate().filter(|(a, _)| !axes.contains(a)).map(|(_, &s)| s).collect();
    let k = reduction(&[m, n], op, axes, body, epilogue, vec![Store { buf: 1, value: 2 }]);
    program(vec![input(0, d, &[m, n]), temp(d, &out)], k, vec![1])
}

/// A row reduction (`max` for 16-bit floats, whose sums round differently).
fn rows(d: DType, m: usize, n: usize) -> Program {
    reduce(d, if d == DType::BF16 { ReduceOp::Max } else { ReduceOp::Sum }, &[1], m, n)
}

/// A column reduction (the column shape).
fn columns(d: DType, m: usize, n: usize) -> Program {
    reduce(d, if d == DType::BF16 { ReduceOp::Max } else { ReduceOp::Sum }, &[0], m, n)
}

/// A maximum over the whole space (every dim reduced).
fn everything(d: DType, m: usize, n: usize) -> Program {
    reduce(d, ReduceOp::Max, &[0, 1], m, n)
}

/// `argmax` along the rows of `[m, n]`, with the maximum.
fn argmax(d: DType, m: usize, n: usize) -> Program {
    let k = Kernel {
        name: "k0".into(),
        space: vec![m, n],
        reduce: Some(KernelReduce { op: Combine::Arg(ArgOp::ArgMax), axes: vec![1] }),
        body: vec![load(0, d, 0, &[n as i64, 1])],
        value: Some(0),
        epilogue: vec![ins(Inst::Acc, DType::I64), ins(Inst::AccValue, d)],
        stores: vec![Store { buf: 1, value: 0 }, Store { buf: 2, value: 1 }],
        reason: "graph output".into(),
        origins: Vec::new(),
    };
    program(vec![input(0, d, &[m, n]), temp(DType::I64, &[m]), temp(d, &[m])], k, vec![1, 2])
}

/// How closely a family's results must agree: exact but for sums, which the vector rows add
/// in another order. (16-bit floats compute in `f32` where the interpreter rounds every
/// instruction; their inputs are small integers, so every step is exact in both.)
fn tol(sums: bool, d: DType) -> Tol {
    match d {
        DType::F32 if sums => Tol::Rel(1e-5),
        DType::F64 if sums => Tol::Rel(1e-13),
        DType::F16 | DType::BF16 | DType::F32 | DType::F64 | DType::Bool | DType::I32 | DType::I64 => {
            Tol::Exact
        }
    }
}

/// Inputs of `p`: values of each input buffer's type (integers from 1 to 8 for 16-bit floats).
fn inputs(p: &Program, seed: u64) -> Vec<Buffer> {
    let mut ins: Vec<(usize, Buffer)> = p
        .buffers
        .iter()
        .filter_map(|b| match b.kind {
            tenjit::ir::kernel::BufferKind::Input(i) => {
                let n = b.ty.shape.numel();
                let seed = seed + i as u64;
                let v = match b.ty.dtype {
                    DType::F16 | DType::BF16 => positive_ints(b.ty.dtype, n, seed, 8),
                    DType::Bool | DType::I32 | DType::I64 | DType::F32 | DType::F64 => {
                        values(b.ty.dtype, n, seed)
                    }
                };
                let v = v.reshaped(b.ty.shape.clone()).unwrap();
                Some((i, v))
            }
            tenjit::ir::kernel::BufferKind::Temp => None,
        })
        .collect();
    ins.sort_by_key(|(i, _)| *i);
    ins.into_iter().map(|(_, b)| b).collect()
}

#[test]
fn kernels_of_one_structure_at_any_size_share_one_function() {
    // Each family, and whether it sums floats.
    let families: [(&str, Family, bool); 6] = [
        ("broadcast", broadcast, false),
        ("slices", slices, false),
        ("rows", rows, true),
        ("columns", columns, true),
        ("everything", everything, false),
        ("argmax", argmax, false),
    ];
    for (name, f, sums) in families {
        for d in [DType::F32, DType::F64, DType::BF16, DType::I64] {
            // Kept alive, so the shared cache (which holds weak references) keeps their code.
            let mut generic: Vec<(usize, usize, CompiledKernel)> = Vec::new();
            for (m, n) in pairs() {
                let p = f(d, m, n);
                let tenjit::ir::kernel::Step::Kernel(k) = &p.steps[0] else { unreachable!() };
                let Ok(c) = compile(k, &p.buffers) else {
                    // A maximum over an empty axis has no value: rejected.
                    assert!(m == 0 || n == 0, "{name} {d} [{m}, {n}] does not compile");
                    continue;
                };
                let diffs = check(&p, &inputs(&p, (m * 1000 + n) as u64), tol(sums, d));
                assert!(diffs.is_empty(), "{name} {d} [{m}, {n}]:\n{}", diffs.join("\n"));
                // Extents 0 and 1 change the structure (no work, a dropped dim).
                if m >= 2 && n >= 2 {
                    generic.push((m, n, c));
                }
            }
            let (m0, n0, first) = &generic[0];
            for (m, n, c) in &generic[1..] {
                assert!(
                    c.shares_code_with(first),
                    "{name} {d}: [{m}, {n}] compiled a function of its own, not [{m0}, {n0}]'s"
                );
            }
        }
    }
}

#[test]
fn another_stride_class_is_another_function() {
    // A contiguous row and a strided one are different code, strides 2 and 3 the same, a
    // reversed one (with its offset) the same as a strided one with an offset; an offset of 0
    // and a nonzero one differ, two nonzero ones do not.
    let d = DType::F32;
    let view = |offset: i64, step: i64| {
        let body = vec![load(0, d, offset, &[step]), ins(Inst::Unary(UnaryOp::Neg, 0), d)];
        let k = elementwise(&[5], body, vec![Store { buf: 1, value: 1 }]);
        program(vec![input(0, d, &[20]), temp(d, &[5])], k, vec![1])
    };
    let [dense, strided, strided_2, reversed, shifted_strided, shifted, shifted_more] =
        [view(0, 1), view(0, 3), view(0, 2), view(19, -3), view(4, 3), view(2, 1), view(7, 1)].map(|p| {
            assert_agree(&p, &inputs(&p, 5), Tol::Exact);
            let tenjit::ir::kernel::Step::Kernel(k) = &p.steps[0] else { unreachable!() };
            compile(k, &p.buffers).unwrap()
        });
    assert!(!dense.shares_code_with(&strided) && strided.shares_code_with(&strided_2));
    assert!(reversed.shares_code_with(&shifted_strided) && !strided.shares_code_with(&reversed));
    assert!(!dense.shares_code_with(&shifted) && shifted.shares_code_with(&shifted_more));
}

/// `softmax(x + mask)` over the last axis of `x: f32[h, t, t]`, `mask: f32[t, t]`, in text IR.
fn attention_scores(h: usize, t: usize) -> String {
    let s3 = format!("f32[{h},{t},{t}]");
    let s2 = format!("f32[{h},{t}]");
    let s1 = format!("f32[{h},{t},1]");
    format!(
        "graph @scores(%x: {s3}, %mask: f32[{t},{t}]) {{
  %m = reshape %mask, shape=[1,{t},{t}] : f32[1,{t},{t}]
  %0 = expand %m, shape=[{h},{t},{t}] : {s3}
  %1 = add %x, %0 : {s3}
  %2 = max %1, axes=[2] : {s2}
  %3 = reshape %2, shape=[{h},{t},1] : {s1}
  %4 = expand %3, shape=[{h},{t},{t}] : {s3}
  %5 = sub %1, %4 : {s3}
  %6 = exp %5 : {s3}
  %7 = sum %6, axes=[2] : {s2}
  %8 = reshape %7, shape=[{h},{t},1] : {s1}
  %9 = expand %8, shape=[{h},{t},{t}] : {s3}
  %10 = div %6, %9 : {s3}
  return %10
}}"
    )
}

#[test]
fn a_program_at_growing_sizes_agrees_with_the_interpreter() {
    // Generation's context grows by one token a step: from the second size on, the kernels
    // run code compiled for an earlier one.
    for t in [1, 2, 3, 4, 7, 8, 9, 17, 33] {
        let g = tenjit::ir::text::parse(&attention_scores(3, t)).unwrap();
        let inputs = [
            values(DType::F32, 3 * t * t, t as u64).reshaped(vec![3, t, t].into()).unwrap(),
            values(DType::F32, t * t, 99).reshaped(vec![t, t].into()).unwrap(),
        ];
        let want = interp::eval(&g, &inputs).unwrap();
        let got = tenjit::run_graph(&g, &inputs).unwrap();
        let d = diff(&got[0], &want[0], Tol::Rel(1e-5));
        assert!(d.is_empty(), "t = {t}:\n{}", d.join("\n"));
    }
}
