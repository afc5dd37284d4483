//! Hand-built kernels for the CPU code generator's tests: builders of kernels and buffers,
//! a runner that compiles each kernel with `codegen::compile` and runs it over its outer range
//! in several pieces (as threads would), and the comparison with the kernel-IR interpreter
//! (`tenjit_ir::kernel::eval::eval`). Included with `#[path = "common/kernels.rs"] mod
//! kernels;` (after `mod rng;`) by each test file of hand-built kernels; each uses a subset.

#![allow(dead_code)]

use tenjit::backend::cpu::codegen::{compile, KernelError};
use tenjit::ir::kernel::eval::eval;
use tenjit::ir::kernel::{
    BufferDecl, BufferKind, IndexMap, Inst, Instr, Kernel, KernelReduce, Program, Step, Store,
};
use tenjit::ir::{Buffer, DType, Data, ReduceOp, Scalar, TensorType};

// ---- building kernels ------------------------------------------------------------------------

pub fn map(offset: i64, strides: &[i64]) -> IndexMap {
    IndexMap::new(offset, strides.to_vec())
}

pub fn load(buf: usize, dtype: DType, offset: i64, strides: &[i64]) -> Instr {
    Instr { inst: Inst::Load { buf, index: map(offset, strides) }, dtype }
}

pub fn ins(inst: Inst, dtype: DType) -> Instr {
    Instr { inst, dtype }
}

pub fn input(i: usize, dtype: DType, shape: &[usize]) -> BufferDecl {
    BufferDecl { ty: TensorType::new(dtype, shape.to_vec()), kind: BufferKind::Input(i) }
}

pub fn temp(dtype: DType, shape: &[usize]) -> BufferDecl {
    BufferDecl { ty: TensorType::new(dtype, shape.to_vec()), kind: BufferKind::Temp }
}

/// Row-major strides of `shape`.
pub fn dense(shape: &[usize]) -> Vec<i64> {
    let mut s = vec![0i64; shape.len()];
    let mut acc = 1i64;
    for d in (0..shape.len()).rev() {
        s[d] = acc;
        acc *= shape[d] as i64;
    }
    s
}

pub fn elementwise(space: &[usize], body: Vec<Instr>, stores: Vec<Store>) -> Kernel {
    Kernel {
        name: "k0".into(),
        space: space.to_vec(),
        reduce: None,
        body,
        value: None,
        epilogue: Vec::new(),
        stores,
        reason: "graph output".into(),
        origins: Vec::new(),
    }
}

pub fn reduction(
    space: &[usize],
    op: ReduceOp,
    axes: &[usize],
    body: Vec<Instr>,
    epilogue: Vec<Instr>,
    stores: Vec<Store>,
) -> Kernel {
    Kernel {
        name: "k0".into(),
        space: space.to_vec(),
        reduce: Some(KernelReduce { op: op.into(), axes: axes.to_vec() }),
        value: Some(body.len() - 1),
        body,
        epilogue,
        stores,
        reason: "graph output".into(),
        origins: Vec::new(),
    }
}

pub fn program(buffers: Vec<BufferDecl>, kernel: Kernel, outputs: Vec<usize>) -> Program {
    Program { name: "t".into(), buffers, steps: vec![Step::Kernel(kernel)], outputs, groups: Vec::new() }
}

// ---- running -----------------------------------------------------------------------------------

/// Element bytes of a buffer, in an 8-byte aligned allocation.
pub fn bytes_of(b: &Buffer) -> Vec<u64> {
    let raw: Vec<u8> = match b.data() {
        Data::Bool(v) => v.iter().map(|&x| x as u8).collect(),
        Data::I32(v) => v.iter().flat_map(|x| x.to_ne_bytes()).collect(),
        Data::I64(v) => v.iter().flat_map(|x| x.to_ne_bytes()).collect(),
        Data::F16(v) => v.iter().flat_map(|x| x.to_ne_bytes()).collect(),
        Data::BF16(v) => v.iter().flat_map(|x| x.to_ne_bytes()).collect(),
        Data::F32(v) => v.iter().flat_map(|x| x.to_ne_bytes()).collect(),
        Data::F64(v) => v.iter().flat_map(|x| x.to_ne_bytes()).collect(),
    };
    let mut out = vec![0u64; raw.len().div_ceil(8).max(1)];
    for (i, chunk) in raw.chunks(8).enumerate() {
        let mut w = [0u8; 8];
        w[..chunk.len()].copy_from_slice(chunk);
        out[i] = u64::from_ne_bytes(w);
    }
    out
}

pub fn buffer_of(words: &[u64], ty: &TensorType) -> Buffer {
    let raw: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
    let n = ty.shape.numel();
    let data = match ty.dtype {
        DType::Bool => Data::Bool(raw[..n].iter().map(|&x| x != 0).collect()),
        DType::I32 => {
            Data::I32(raw.chunks(4).take(n).map(|c| i32::from_ne_bytes(c.try_into().unwrap())).collect())
        }
        DType::I64 => {
            Data::I64(raw.chunks(8).take(n).map(|c| i64::from_ne_bytes(c.try_into().unwrap())).collect())
        }
        DType::F16 => Data::F16(
            raw.chunks(2).take(n).map(|c| half::f16::from_ne_bytes(c.try_into().unwrap())).collect(),
        ),
        DType::BF16 => Data::BF16(
            raw.chunks(2).take(n).map(|c| half::bf16::from_ne_bytes(c.try_into().unwrap())).collect(),
        ),
        DType::F32 => {
            Data::F32(raw.chunks(4).take(n).map(|c| f32::from_ne_bytes(c.try_into().unwrap())).collect())
        }
        DType::F64 => {
            Data::F64(raw.chunks(8).take(n).map(|c| f64::from_ne_bytes(c.try_into().unwrap())).collect())
        }
    };
    Buffer::new(ty.shape.clone(), data).unwrap()
}

/// Compiles every kernel of `p` and runs it over its outer range in up to three pieces.
pub fn run(p: &Program, inputs: &[Buffer]) -> Result<Vec<Buffer>, KernelError> {
    let mut mem: Vec<Vec<u64>> = p
        .buffers
        .iter()
        .map(|b| match b.kind {
            BufferKind::Input(i) => bytes_of(&inputs[i]),
            BufferKind::Temp => vec![0u64; (b.ty.shape.numel() * b.ty.dtype.size_bytes()).div_ceil(8).max(1)],
        })
        .collect();
    for step in &p.steps {
        let Step::Kernel(k) = step else { panic!("only kernels here") };
        let c = compile(k, &p.buffers).unwrap_or_else(|e| panic!("compile: {e}"));
        let ptrs: Vec<*mut u8> = mem.iter_mut().map(|m| m.as_mut_ptr() as *mut u8).collect();
        let n = c.outer_len();
        let cuts = [0, n / 3, n / 3 + (n - n / 3) / 2, n];
        for w in cuts.windows(2) {
            // SAFETY: every pointer is a live allocation at least as large as its declared
            // buffer, and no one else touches them during the call.
            unsafe { c.run(&ptrs, w[0], w[1])? };
        }
    }
    Ok(p.outputs.iter().map(|&o| buffer_of(&mem[o], &p.buffers[o].ty)).collect())
}

/// How closely floats must agree.
#[derive(Clone, Copy, Debug)]
pub enum Tol {
    /// Bit for bit, the sign of a zero included (every NaN equal to every NaN).
    Exact,
    /// Relative error at most this (absolute below 1).
    Rel(f64),
}

pub fn same_float(a: f64, b: f64, tol: Tol) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    match tol {
        Tol::Exact => a.to_bits() == b.to_bits(),
        Tol::Rel(r) => a == b || (a - b).abs() <= r * a.abs().max(b.abs()).max(1.0),
    }
}

/// Differences between two buffers, as readable lines (empty when they agree).
pub fn diff(got: &Buffer, want: &Buffer, tol: Tol) -> Vec<String> {
    if got.ty() != want.ty() {
        return vec![format!("type {} vs {}", got.ty(), want.ty())];
    }
    let mut out = Vec::new();
    for i in 0..got.numel() {
        let (g, w) = (got.scalar(i), want.scalar(i));
        let ok = match (g, w) {
            (Scalar::Float(a), Scalar::Float(b)) => same_float(a, b, tol),
            _ => g == w,
        };
        if !ok && out.len() < 5 {
            out.push(format!("[{i}] got {g:?}, want {w:?}"));
        }
    }
    out
}

/// Runs `p` compiled and interpreted; returns the differences (or the mismatch of errors).
pub fn check(p: &Program, inputs: &[Buffer], tol: Tol) -> Vec<String> {
    let want = eval(p, inputs);
    let got = run(p, inputs);
    match (got, want) {
        (Ok(g), Ok(w)) => g.iter().zip(&w).flat_map(|(g, w)| diff(g, w, tol)).collect(),
        (
            Err(KernelError::Arithmetic { op, .. }),
            Err(tenjit::ir::kernel::eval::KernelError::Arithmetic { op: o, .. }),
        ) if op == o => Vec::new(),
        (g, w) => vec![format!("got {g:?}, want {w:?}")],
    }
}

pub fn assert_agree(p: &Program, inputs: &[Buffer], tol: Tol) {
    let d = check(p, inputs, tol);
    assert!(d.is_empty(), "{}", d.join("\n"));
}

// ---- test data -----------------------------------------------------------------------------

use super::rng::Rng;

pub const SPECIAL_F: [f64; 12] =
    [0.0, -0.0, 1.0, -1.0, 0.5, -2.5, 3.75, f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 1e30, -7e-3];
pub const SPECIAL_I: [i64; 10] = [0, 1, -1, 2, -7, 7, 100, i32::MAX as i64, i32::MIN as i64, 12345];

/// `n` values of `dtype`: special values first, then random ones of moderate size.
pub fn values(dtype: DType, n: usize, seed: u64) -> Buffer {
    let mut r = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let scalars = (0..n).map(|i| match dtype {
        DType::Bool => Scalar::Bool(r.next() & 1 == 1),
        DType::I32 | DType::I64 => {
            Scalar::Int(if i < SPECIAL_I.len() { SPECIAL_I[i] } else { (r.next() % 2001) as i64 - 1000 })
        }
        DType::F16 | DType::BF16 | DType::F32 | DType::F64 => {
            Scalar::Float(if i < SPECIAL_F.len() { SPECIAL_F[i] } else { (r.unit() - 0.5) * 20.0 })
        }
    });
    Buffer::from_scalars(dtype, vec![n].into(), scalars.collect::<Vec<_>>())
}

pub fn positive_ints(dtype: DType, n: usize, seed: u64, hi: u64) -> Buffer {
    let mut r = Rng(seed | 1);
    Buffer::from_scalars(
        dtype,
        vec![n].into(),
        (0..n).map(|_| Scalar::Int((r.next() % hi) as i64 + 1)).collect::<Vec<_>>(),
    )
}
