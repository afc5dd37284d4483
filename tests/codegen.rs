//! The CPU code generator against the kernel-IR interpreter: hand-built kernels are compiled
//! with `codegen::compile`, run over their outer range in several pieces (as threads would),
//! and compared with `tenjit_ir::kernel::eval::eval` (the helpers are in `common/kernels.rs`).

use tenjit::backend::cpu::codegen::{compile, render, CodegenError, KernelError};
use tenjit::ir::kernel::eval::eval;
use tenjit::ir::kernel::{Combine, Inst, Kernel, KernelReduce, Program, Step, Store};
use tenjit::ir::ops::BinaryKind;
use tenjit::ir::{Accuracy, ArgOp, BinaryOp, Buffer, DType, ReduceOp, Scalar, UnaryOp};

#[path = "common/kernels.rs"]
mod kernels;
#[path = "common/rng.rs"]
mod rng;
use kernels::*;
use rng::Rng;

// ---- elementwise -------------------------------------------------------------------------------

#[test]
fn broadcasting_and_negative_strides() {
    for dtype in [DType::F32, DType::F64, DType::I32, DType::I64] {
        let (m, n) = (7, 37);
        // out[i, j] = a[m-1-i, n-1-j] * b[j] + c[i]
        let body = vec![
            load(0, dtype, (m * n - 1) as i64, &[-(n as i64), -1]),
            load(1, dtype, 0, &[0, 1]),
            ins(Inst::Binary(BinaryOp::Mul, 0, 1), dtype),
            load(2, dtype, 0, &[1, 0]),
            ins(Inst::Binary(BinaryOp::Add, 2, 3), dtype),
        ];
        let k = elementwise(&[m, n], body, vec![Store { buf: 3, value: 4 }]);
        let bufs = vec![
            input(0, dtype, &[m, n]),
            input(1, dtype, &[n]),
            input(2, dtype, &[m]),
            temp(dtype, &[m, n]),
        ];
        let p = program(bufs, k, vec![3]);
        let a = values(dtype, m * n, 1).reshaped(vec![m, n].into()).unwrap();
        assert_agree(&p, &[a, values(dtype, n, 2), values(dtype, m, 3)], Tol::Exact);
    }
}

#[test]
fn partial_last_vectors_of_every_length() {
    // Rows of 1..=11 elements (no whole vector, whole vectors and a partial one, the 2x
    // unrolled loop), with a large body (not unrolled) and a small one, and two stores.
    for dtype in [DType::F32, DType::F64, DType::I32, DType::I64] {
        for n in 1..=11usize {
            for large in [false, true] {
                let (m, float) = (3, dtype.is_float());
                let mut body = vec![load(0, dtype, 0, &[n as i64, 1]), load(1, dtype, 0, &[0, 1])];
                body.push(ins(Inst::Binary(BinaryOp::Add, 0, 1), dtype));
                if large && float {
                    body.push(ins(Inst::Unary(UnaryOp::Sin, 2), dtype));
                    body.push(ins(Inst::Unary(UnaryOp::Exp, 3), dtype));
                } else {
                    body.push(ins(Inst::Binary(BinaryOp::Mul, 2, 2), dtype));
                }
                let last = body.len() - 1;
                let k = elementwise(
                    &[m, n],
                    body,
                    vec![Store { buf: 2, value: last }, Store { buf: 3, value: 2 }],
                );
                let p = program(
                    vec![
                        input(0, dtype, &[m, n]),
                        input(1, dtype, &[n]),
                        temp(dtype, &[m, n]),
                        temp(dtype, &[m, n]),
                    ],
                    k,
                    vec![2, 3],
                );
                let x = values(dtype, m * n, n as u64).reshaped(vec![m, n].into()).unwrap();
                let tol = if large && float { transcendental_tol(dtype) } else { Tol::Exact };
                assert_agree(&p, &[x, values(dtype, n, 99)], tol);
            }
        }
    }
}

#[test]
fn strided_and_transposed_loads_use_the_scalar_row() {
    let (m, n) = (9, 11);
    // out[i, j] = x[j, i] - y[i, 2j]
    let body = vec![
        load(0, DType::F32, 0, &[1, m as i64]),
        load(1, DType::F32, 0, &[(2 * n) as i64, 2]),
        ins(Inst::Binary(BinaryOp::Sub, 0, 1), DType::F32),
    ];
    let k = elementwise(&[m, n], body, vec![Store { buf: 2, value: 2 }]);
    let p = program(
        vec![input(0, DType::F32, &[n, m]), input(1, DType::F32, &[m, 2 * n]), temp(DType::F32, &[m, n])],
        k,
        vec![2],
    );
    let x = values(DType::F32, n * m, 4).reshaped(vec![n, m].into()).unwrap();
    let y = values(DType::F32, 2 * m * n, 5).reshaped(vec![m, 2 * n].into()).unwrap();
    assert_agree(&p, &[x, y], Tol::Exact);
}

/// A unary op on `n` elements read with stride `stride` (1: vector row, 0: invariant, 2:
/// scalar row).
fn unary_program(op: UnaryOp, dtype: DType, n: usize, stride: i64) -> Program {
    let body = vec![load(0, dtype, 0, &[stride]), ins(Inst::Unary(op, 0), dtype)];
    let len = if stride == 0 { 1 } else { (n - 1) * stride as usize + 1 };
    let k = elementwise(&[n], body, vec![Store { buf: 1, value: 1 }]);
    program(vec![input(0, dtype, &[len]), temp(dtype, &[n])], k, vec![1])
}

fn transcendental_tol(dtype: DType) -> Tol {
    match dtype {
        DType::F32 => Tol::Rel(4e-7),
        // A few f32 ulps can move the rounding to 16 bits by one unit: 2^-7 (bf16) or 2^-10
        // (f16) relative at most.
        DType::BF16 => Tol::Rel(1.0 / 128.0),
        DType::F16 => Tol::Rel(1.0 / 1024.0),
        DType::Bool | DType::I32 | DType::I64 | DType::F64 => Tol::Rel(1e-14),
    }
}

/// The tolerance of an op row's accuracy class.
fn row_tol(accuracy: Accuracy, dtype: DType) -> Tol {
    match accuracy {
        Accuracy::Exact => Tol::Exact,
        Accuracy::Ulp(_) => transcendental_tol(dtype),
    }
}

fn unary_tol(op: UnaryOp, dtype: DType) -> Tol {
    row_tol(op.spec().accuracy, dtype)
}

#[test]
fn every_unary_op_on_every_accepted_dtype() {
    let mut failures = Vec::new();
    let mut count = 0;
    for op in UnaryOp::ALL {
        for dtype in DType::ALL {
            if !op.spec().accepts.admits(dtype) {
                continue;
            }
            for stride in [1, 0, 2] {
                let n = 45;
                let p = unary_program(op, dtype, n, stride);
                let len = if stride == 0 { 1 } else { (n - 1) * stride as usize + 1 };
                let x = if stride == 0 {
                    Buffer::from_scalars(dtype, vec![1].into(), [values(dtype, 4, 9).scalar(3)])
                } else {
                    values(dtype, len, 7)
                };
                count += 1;
                for d in check(&p, &[x], unary_tol(op, dtype)) {
                    failures.push(format!("{} {dtype} stride {stride}: {d}", op.spec().name));
                }
            }
        }
    }
    assert!(count > 40);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A binary op on two length-`n` inputs; `b` is broadcast (stride 0) when `splat_b`.
fn binary_program(op: BinaryOp, dtype: DType, n: usize, splat_b: bool) -> Program {
    let out = match op.spec().kind {
        BinaryKind::Arith => dtype,
        BinaryKind::Compare => DType::Bool,
    };
    let body = vec![
        load(0, dtype, 0, &[1]),
        load(1, dtype, 0, &[if splat_b { 0 } else { 1 }]),
        ins(Inst::Binary(op, 0, 1), out),
    ];
    let k = elementwise(&[n], body, vec![Store { buf: 2, value: 2 }]);
    program(
        vec![input(0, dtype, &[n]), input(1, dtype, &[if splat_b { 1 } else { n }]), temp(out, &[n])],
        k,
        vec![2],
    )
}

fn binary_tol(op: BinaryOp, dtype: DType) -> Tol {
    row_tol(op.spec().accuracy, dtype)
}

/// Operands for `op` on `dtype` whose integer results are defined (no zero divisor, no
/// negative power, no `i64::MIN // -1`).
fn binary_operands(op: BinaryOp, dtype: DType, n: usize) -> (Buffer, Buffer) {
    let a = values(dtype, n, 11);
    let b = values(dtype, n, 12);
    if !dtype.is_int() {
        return (a, b);
    }
    match op {
        BinaryOp::FloorDiv | BinaryOp::Rem => {
            // Divisors of both signs, never zero; -1 included (MIN // -1 wraps for i32).
            let b = Buffer::from_scalars(
                dtype,
                vec![n].into(),
                (0..n)
                    .map(|i| Scalar::Int([-1, 1, 3, -3, 7, -100, 2, i32::MAX as i64][i % 8]))
                    .collect::<Vec<_>>(),
            );
            (a, b)
        }
        BinaryOp::Pow => (a, positive_ints(dtype, n, 13, 40)),
        BinaryOp::Add
        | BinaryOp::Sub
        | BinaryOp::Mul
        | BinaryOp::Div
        | BinaryOp::Maximum
        | BinaryOp::Minimum
        | BinaryOp::Eq
        | BinaryOp::Ne
        | BinaryOp::Lt
        | BinaryOp::Le
        | BinaryOp::Gt
        | BinaryOp::Ge
        | BinaryOp::And
        | BinaryOp::Or => (a, b),
    }
}

#[test]
fn every_binary_op_on_every_accepted_dtype() {
    let mut failures = Vec::new();
    let mut count = 0;
    for op in BinaryOp::ALL {
        for dtype in DType::ALL {
            if !op.spec().accepts.admits(dtype) {
                continue;
            }
            for splat_b in [false, true] {
                let n = 53;
                let p = binary_program(op, dtype, n, splat_b);
                let (a, b) = binary_operands(op, dtype, n);
                let b = if splat_b { Buffer::from_scalars(dtype, vec![1].into(), [b.scalar(2)]) } else { b };
                count += 1;
                for d in check(&p, &[a, b], binary_tol(op, dtype)) {
                    failures.push(format!("{} {dtype} splat {splat_b}: {d}", op.spec().name));
                }
            }
        }
    }
    assert!(count > 100);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn float_pairs_cover_the_special_values() {
    // Every special value against every other, for the ops whose float semantics are subtle.
    let k = SPECIAL_F.len();
    for dtype in [DType::F32, DType::F64] {
        let a: Vec<Scalar> = (0..k * k).map(|i| Scalar::Float(SPECIAL_F[i / k])).collect();
        let b: Vec<Scalar> = (0..k * k).map(|i| Scalar::Float(SPECIAL_F[i % k])).collect();
        let a = Buffer::from_scalars(dtype, vec![k * k].into(), a);
        let b = Buffer::from_scalars(dtype, vec![k * k].into(), b);
        for op in [
            BinaryOp::Maximum,
            BinaryOp::Minimum,
            BinaryOp::FloorDiv,
            BinaryOp::Rem,
            BinaryOp::Div,
            BinaryOp::Lt,
            BinaryOp::Ne,
        ] {
            let p = binary_program(op, dtype, k * k, false);
            let d = check(&p, &[a.clone(), b.clone()], binary_tol(op, dtype));
            assert!(d.is_empty(), "{} {dtype}: {}", op.spec().name, d.join("\n"));
        }
    }
}

#[test]
fn integer_division_by_zero_and_negative_powers_are_errors() {
    for dtype in [DType::I32, DType::I64] {
        for (op, message) in [
            (BinaryOp::FloorDiv, "integer division by zero"),
            (BinaryOp::Rem, "integer remainder by zero"),
            (BinaryOp::Pow, "integers to negative integer powers are not allowed"),
        ] {
            let n = 21;
            let p = binary_program(op, dtype, n, false);
            let a = values(dtype, n, 3);
            let bad = if op == BinaryOp::Pow { -2 } else { 0 };
            let b = Buffer::from_scalars(
                dtype,
                vec![n].into(),
                (0..n).map(|i| Scalar::Int(if i == 17 { bad } else { 3 })).collect::<Vec<_>>(),
            );
            let got = run(&p, &[a.clone(), b]);
            assert_eq!(got, Err(KernelError::Arithmetic { op: op.spec().name, message, site: 0 }), "{dtype}");
            assert_agree(&p, &[a, positive_ints(dtype, n, 5, 9)], Tol::Exact);
        }
    }
    // i32::MIN // -1 wraps to i32::MIN, and % -1 is 0, without trapping.
    let p = binary_program(BinaryOp::FloorDiv, DType::I32, 1, false);
    let min = Buffer::from_vec(vec![i32::MIN], [1]).unwrap();
    let m1 = Buffer::from_vec(vec![-1i32], [1]).unwrap();
    assert_eq!(run(&p, &[min.clone(), m1.clone()]).unwrap()[0].as_slice::<i32>(), Some(&[i32::MIN][..]));
    let p = binary_program(BinaryOp::Rem, DType::I64, 1, false);
    let min = Buffer::from_vec(vec![i64::MIN], [1]).unwrap();
    let m1 = Buffer::from_vec(vec![-1i64], [1]).unwrap();
    assert_eq!(run(&p, &[min, m1]).unwrap()[0].as_slice::<i64>(), Some(&[0i64][..]));
}

#[test]
fn casts_between_every_pair_of_dtypes() {
    let mut failures = Vec::new();
    for from in DType::ALL {
        for to in DType::ALL {
            for stride in [1, 2] {
                let n = 41;
                let len = (n - 1) * stride + 1;
                let body = vec![load(0, from, 0, &[stride as i64]), ins(Inst::Cast(0), to)];
                let k = elementwise(&[n], body, vec![Store { buf: 1, value: 1 }]);
                let p = program(vec![input(0, from, &[len]), temp(to, &[n])], k, vec![1]);
                let mut x = values(from, len, 21).scalars();
                if from.is_float() {
                    // Out of range of every integer type, and the edges of i32.
                    x[12] = Scalar::Float(3e9);
                    x[13] = Scalar::Float(-3e9);
                    x[14] = Scalar::Float(1e19);
                    x[15] = Scalar::Float(-1e19);
                    x[16] = Scalar::Float(2147483647.9);
                    x[17] = Scalar::Float(-2147483648.5);
                    x[18] = Scalar::Float(16777217.0);
                }
                if from == DType::I64 {
                    x[12] = Scalar::Int(i64::MAX);
                    x[13] = Scalar::Int(i64::MIN);
                    x[14] = Scalar::Int(1 << 40);
                    x[15] = Scalar::Int((1 << 53) + 1);
                    x[16] = Scalar::Int(16777217);
                }
                let x = Buffer::from_scalars(
                    from,
                    vec![len].into(),
                    x.into_iter().map(|s| s.cast(from)).collect::<Vec<_>>(),
                );
                for d in check(&p, &[x], Tol::Exact) {
                    failures.push(format!("{from} -> {to} stride {stride}: {d}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn where_with_loaded_and_computed_masks() {
    for dtype in [DType::F32, DType::F64, DType::I32, DType::I64, DType::Bool] {
        let n = 39;
        // out = where(a > b, a, where(c, b, a)) with c a bool input: relu-like selects.
        let cmp_dtype = if dtype == DType::Bool { DType::I32 } else { dtype };
        let body = vec![
            load(0, dtype, 0, &[1]),
            load(1, dtype, 0, &[1]),
            load(2, DType::Bool, 0, &[1]),
            load(3, cmp_dtype, 0, &[1]),
            ins(Inst::Const(Scalar::Int(0)), cmp_dtype),
            ins(Inst::Binary(BinaryOp::Gt, 3, 4), DType::Bool),
            ins(Inst::Where(2, 1, 0), dtype),
            ins(Inst::Where(5, 0, 6), dtype),
        ];
        let k = elementwise(&[n], body, vec![Store { buf: 4, value: 7 }]);
        let p = program(
            vec![
                input(0, dtype, &[n]),
                input(1, dtype, &[n]),
                input(2, DType::Bool, &[n]),
                input(3, cmp_dtype, &[n]),
                temp(dtype, &[n]),
            ],
            k,
            vec![4],
        );
        let inputs =
            [values(dtype, n, 1), values(dtype, n, 2), values(DType::Bool, n, 3), values(cmp_dtype, n, 4)];
        assert_agree(&p, &inputs, Tol::Exact);
    }
    // A vector row with an internal mask: where(x < 0, -x, x * 2) cast to i32.
    let n = 67;
    let body = vec![
        load(0, DType::F32, 0, &[1]),
        ins(Inst::Const(Scalar::Float(0.0)), DType::F32),
        ins(Inst::Binary(BinaryOp::Lt, 0, 1), DType::Bool),
        ins(Inst::Unary(UnaryOp::Neg, 0), DType::F32),
        ins(Inst::Const(Scalar::Float(2.0)), DType::F32),
        ins(Inst::Binary(BinaryOp::Mul, 0, 4), DType::F32),
        ins(Inst::Where(2, 3, 5), DType::F32),
        ins(Inst::Cast(6), DType::I32),
        ins(Inst::Unary(UnaryOp::Not, 2), DType::Bool),
        ins(Inst::Cast(8), DType::F32),
        ins(Inst::Binary(BinaryOp::Add, 9, 6), DType::F32),
    ];
    let k = elementwise(&[n], body, vec![Store { buf: 1, value: 7 }, Store { buf: 2, value: 10 }]);
    let p = program(
        vec![input(0, DType::F32, &[n]), temp(DType::I32, &[n]), temp(DType::F32, &[n])],
        k,
        vec![1, 2],
    );
    assert_agree(&p, &[values(DType::F32, n, 8)], Tol::Exact);
}

#[test]
fn iota_and_rand_match_the_interpreter() {
    for dtype in [DType::F32, DType::F64, DType::I32, DType::I64] {
        let (m, n) = (5, 23);
        let mut body = vec![
            ins(Inst::Iota { index: map(3, &[0, 1]) }, dtype),
            load(0, dtype, 0, &[1, 0]),
            ins(Inst::Binary(BinaryOp::Mul, 0, 1), dtype),
        ];
        let mut stores = vec![Store { buf: 1, value: 2 }];
        let mut bufs = vec![input(0, dtype, &[m]), temp(dtype, &[m, n])];
        if dtype.is_float() {
            body.push(ins(Inst::Const(Scalar::Int(42)), DType::I64));
            body.push(ins(Inst::Const(Scalar::Int(1000)), DType::I64));
            body.push(ins(Inst::Rand { seed: 3, offset: 4, counter: map(0, &[n as i64, 1]) }, dtype));
            stores.push(Store { buf: 2, value: 5 });
            bufs.push(temp(dtype, &[m, n]));
        }
        let outs = (1..bufs.len()).collect();
        let p = program(bufs, elementwise(&[m, n], body, stores), outs);
        assert_agree(&p, &[values(dtype, m, 3)], Tol::Exact);
    }
}

#[test]
fn zero_dimensional_and_empty_spaces() {
    // A 0-d elementwise kernel.
    let body = vec![
        load(0, DType::F64, 0, &[]),
        load(1, DType::F64, 0, &[]),
        ins(Inst::Binary(BinaryOp::Div, 0, 1), DType::F64),
    ];
    let k = elementwise(&[], body, vec![Store { buf: 2, value: 2 }]);
    let p = program(
        vec![input(0, DType::F64, &[]), input(1, DType::F64, &[]), temp(DType::F64, &[])],
        k.clone(),
        vec![2],
    );
    assert_eq!(compile(&k, &p.buffers).unwrap().outer_len(), 1);
    let x = Buffer::from_vec(vec![3.0f64], Vec::<usize>::new()).unwrap();
    let y = Buffer::from_vec(vec![4.0f64], Vec::<usize>::new()).unwrap();
    assert_agree(&p, &[x, y], Tol::Exact);

    // An elementwise kernel over an empty space does nothing.
    let body = vec![load(0, DType::I32, 0, &[5, 1]), ins(Inst::Unary(UnaryOp::Neg, 0), DType::I32)];
    let k = elementwise(&[0, 5], body, vec![Store { buf: 1, value: 1 }]);
    let p = program(vec![input(0, DType::I32, &[0, 5]), temp(DType::I32, &[0, 5])], k.clone(), vec![1]);
    assert_eq!(compile(&k, &p.buffers).unwrap().outer_len(), 0);
    assert_agree(&p, &[Buffer::from_vec(Vec::<i32>::new(), [0, 5]).unwrap()], Tol::Exact);

    // A sum over an empty axis is the identity, through the epilogue.
    for op in [ReduceOp::Sum, ReduceOp::Prod] {
        let body = vec![load(0, DType::F32, 0, &[0, 1])];
        let epilogue = vec![
            ins(Inst::Acc, DType::F32),
            ins(Inst::Const(Scalar::Float(1.5)), DType::F32),
            ins(Inst::Binary(BinaryOp::Add, 0, 1), DType::F32),
        ];
        let k = reduction(&[3, 0], op, &[1], body, epilogue, vec![Store { buf: 1, value: 2 }]);
        let p = program(vec![input(0, DType::F32, &[3, 0]), temp(DType::F32, &[3])], k, vec![1]);
        assert_agree(&p, &[Buffer::from_vec(Vec::<f32>::new(), [3, 0]).unwrap()], Tol::Exact);
    }
}

// ---- reductions ----------------------------------------------------------------------------

fn reduce_tol(op: ReduceOp, dtype: DType) -> Tol {
    match (op, dtype) {
        // f32 sums add up to 16 elements per lane in f32 (as NumPy's pairwise sum does per
        // accumulator), then in f64: the error is a few f32 roundings of partial sums, which
        // for these values in [-5, 5] reach tens, so ~1e-6 each, not roundings of the result.
        (ReduceOp::Sum, DType::F32) => Tol::Rel(1e-5),
        (ReduceOp::Prod, DType::F32) => Tol::Rel(1.2e-7),
        (ReduceOp::Sum | ReduceOp::Prod, DType::F64) => Tol::Rel(1e-13),
        (ReduceOp::Max | ReduceOp::Min, _) => Tol::Exact,
        (ReduceOp::Sum | ReduceOp::Prod, _) => Tol::Exact,
    }
}

/// Reduces `x` (dense, shape `shape`) over `axes` into a dense output, epilogue `acc`.
fn reduce_program(op: ReduceOp, dtype: DType, shape: &[usize], axes: &[usize]) -> Program {
    let out: Vec<usize> = (0..shape.len()).filter(|d| !axes.contains(d)).map(|d| shape[d]).collect();
    let body = vec![load(0, dtype, 0, &dense(shape))];
    let k = reduction(shape, op, axes, body, vec![ins(Inst::Acc, dtype)], vec![Store { buf: 1, value: 0 }]);
    program(vec![input(0, dtype, shape), temp(dtype, &out)], k, vec![1])
}

/// Inputs for a reduction test: small values so products stay finite and sums meaningful.
fn reduce_input(op: ReduceOp, dtype: DType, shape: &[usize], seed: u64) -> Buffer {
    let n: usize = shape.iter().product();
    let mut r = Rng(seed | 1);
    let s = (0..n).map(|_| match (op, dtype.is_float()) {
        (ReduceOp::Prod, true) => Scalar::Float(0.9 + 0.2 * r.unit()),
        (_, true) => Scalar::Float(r.unit() * 10.0 - 5.0),
        (ReduceOp::Prod, false) => Scalar::Int([1, -1, 3, 1, 1, 2][(r.next() % 6) as usize]),
        (_, false) => Scalar::Int((r.next() % 2_000_001) as i64 * 1000 - 1_000_000_000),
    });
    Buffer::from_scalars(dtype, shape.to_vec().into(), s.collect::<Vec<_>>())
}

#[test]
fn reductions_of_every_op_and_dtype_in_every_shape() {
    let cases: [(&[usize], &[usize]); 9] = [
        (&[13, 77], &[1]),      // rows: inner reduction
        (&[77, 13], &[0]),      // short columns: column reduction
        (&[40, 1030], &[0]),    // wide columns
        (&[3, 4100], &[0]),     // wider than a chunk: a full chunk and a partial one
        (&[3, 20, 37], &[1]),   // middle axis: columns under an outer dim
        (&[4, 9, 6], &[0, 2]),  // interleaved axes
        (&[6, 7], &[0, 1]),     // all axes: 0-d output
        (&[5, 1, 3], &[1]),     // a size-1 reduced axis
        (&[2, 3, 50], &[1, 2]), // trailing axes merge into one
    ];
    let mut failures = Vec::new();
    for op in ReduceOp::ALL {
        for dtype in [DType::F32, DType::F64, DType::I32, DType::I64] {
            for (shape, axes) in cases {
                let p = reduce_program(op, dtype, shape, axes);
                let x = reduce_input(op, dtype, shape, 17);
                for d in check(&p, &[x], reduce_tol(op, dtype)) {
                    failures.push(format!("{} {dtype} {shape:?} over {axes:?}: {d}", op.name()));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Whether `p`'s one kernel runs as a hand-written routine (`render` says so).
fn runs_as_routine(p: &Program) -> bool {
    let Step::Kernel(k) = &p.steps[0] else { unreachable!() };
    render(k, &p.buffers).unwrap().contains("; runs as the AVX2 routine")
}

/// A dense `f32` or `f64` row sum (one load walked with stride 1 along the row, the sum stored
/// as it is) runs as the CPU backend's hand-written AVX2 routine where the CPU has AVX2: over
/// lengths around its vector (8 or 4 lanes), its step (64 or 32 elements) and its `f32`
/// block (1024), rows read at an offset inside longer rows, and NaN and infinities, against
/// the kernel-IR interpreter. Sums with more in their body, or of integers, do not.
#[test]
fn dense_row_sums_run_as_the_hand_written_routine() {
    let avx2 = std::is_x86_feature_detected!("avx2")
        && std::env::var("TENJIT_CPU_ROUTINES").map_or(true, |v| v.trim() != "0");
    let lens = [
        1usize, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65, 127, 1023, 1024, 1025, 1087, 2049, 4100,
    ];
    let mut failures = Vec::new();
    for dtype in [DType::F32, DType::F64] {
        for len in lens {
            for pad in [0usize, 5] {
                let (rows, stride) = (5, len + pad);
                let body = vec![load(0, dtype, pad.min(3) as i64, &[stride as i64, 1])];
                let k = reduction(
                    &[rows, len],
                    ReduceOp::Sum,
                    &[1],
                    body,
                    vec![ins(Inst::Acc, dtype)],
                    vec![Store { buf: 1, value: 0 }],
                );
                let p = program(vec![input(0, dtype, &[rows * stride]), temp(dtype, &[rows])], k, vec![1]);
                assert_eq!(runs_as_routine(&p), avx2 && len > 1, "{dtype} rows of {len} in rows of {stride}");
                let mut x = reduce_input(ReduceOp::Sum, dtype, &[rows * stride], len as u64).scalars();
                // Row 1 holds a NaN, row 2 an infinity, row 3 both infinities (NaN).
                x[stride + len / 2] = Scalar::Float(f64::NAN);
                x[2 * stride + len - 1] = Scalar::Float(f64::INFINITY);
                x[3 * stride] = Scalar::Float(f64::NEG_INFINITY);
                x[3 * stride + len - 1] = Scalar::Float(f64::INFINITY);
                // Row 4 is all -0.0: its sum is -0.0, as every IEEE sum of -0s (the tolerance
                // compares zeros by value, so the sign is asserted apart).
                for v in &mut x[4 * stride + pad.min(3)..][..len] {
                    *v = Scalar::Float(-0.0);
                }
                let x = Buffer::from_scalars(dtype, vec![rows * stride].into(), x);
                for d in check(&p, std::slice::from_ref(&x), reduce_tol(ReduceOp::Sum, dtype)) {
                    failures.push(format!("{dtype} rows of {len} in rows of {stride}: {d}"));
                }
                let sums = run(&p, &[x]).expect("the sums run");
                if let Scalar::Float(z) = sums[0].scalar(4) {
                    if z != 0.0 || z.is_sign_positive() {
                        failures.push(format!(
                            "{dtype} rows of {len} in rows of {stride}: a row of -0.0 sums to {z:?}"
                        ));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(runs_as_routine(&reduce_program(ReduceOp::Sum, DType::F32, &[800], &[0])), avx2);
    assert!(!runs_as_routine(&reduce_program(ReduceOp::Sum, DType::I32, &[8, 100], &[1])));
    assert!(!runs_as_routine(&reduce_program(ReduceOp::Max, DType::F32, &[8, 100], &[1])));
    assert!(!runs_as_routine(&reduce_program(ReduceOp::Sum, DType::F32, &[100, 8], &[0])));
}

#[test]
fn max_and_min_propagate_nan_and_keep_infinities() {
    for dtype in [DType::F32, DType::F64] {
        for (shape, axes) in [(&[3usize, 41][..], &[1usize][..]), (&[41, 3], &[0])] {
            for op in [ReduceOp::Max, ReduceOp::Min] {
                let p = reduce_program(op, dtype, shape, axes);
                let mut x = reduce_input(op, dtype, shape, 3).scalars();
                x[5] = Scalar::Float(f64::NAN);
                x[50] = Scalar::Float(f64::INFINITY);
                x[70] = Scalar::Float(f64::NEG_INFINITY);
                let x = Buffer::from_scalars(dtype, shape.to_vec().into(), x);
                assert_agree(&p, &[x], Tol::Exact);
            }
        }
    }
}

/// The sign of a zero under `max`/`min` follows IEEE 754-2019 (`+0` above `-0`), so the result
/// is the same in any order: the interpreter's row-order fold, the CPU's vector lanes and
/// the CUDA tree all give `+0` for `max` and `-0` for `min` of a row of `-1`s (`1`s) holding
/// both zeros, whichever comes first. (NumPy returns the later zero of the row instead.)
#[test]
fn max_and_min_of_signed_zeros_do_not_depend_on_order() {
    for dtype in [DType::F32, DType::F64] {
        for n in [2usize, 9, 40, 4097] {
            for (first, second) in [(0.0, -0.0), (-0.0, 0.0)] {
                for op in [ReduceOp::Max, ReduceOp::Min] {
                    let fill = if op == ReduceOp::Max { -1.0 } else { 1.0 };
                    let mut x = vec![Scalar::Float(fill); n];
                    x[n / 3] = Scalar::Float(first);
                    x[n - 1] = Scalar::Float(second);
                    let x = Buffer::from_scalars(dtype, vec![1, n].into(), x);
                    let p = reduce_program(op, dtype, &[1, n], &[1]);
                    let want = if op == ReduceOp::Max { 0.0f64 } else { -0.0 };
                    let got = run(&p, std::slice::from_ref(&x)).unwrap();
                    let oracle = eval(&p, &[x]).unwrap();
                    for (who, b) in [("compiled", &got[0]), ("kernel evaluator", &oracle[0])] {
                        let Scalar::Float(v) = b.scalar(0) else { panic!("not a float") };
                        assert_eq!(
                            v.to_bits(),
                            want.to_bits(),
                            "{who}: {} {dtype} of {n} with {first:?} before {second:?} gave {v:?}",
                            op.name()
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn reduction_with_a_fused_body_and_epilogue() {
    // mean((x - y[j])^2 over all axes) * scale + bias: an all-axes reduction with an epilogue
    // that loads 0-d buffers.
    let (m, n) = (6, 29);
    let body = vec![
        load(0, DType::F32, 0, &[n as i64, 1]),
        load(1, DType::F32, 0, &[0, 1]),
        ins(Inst::Binary(BinaryOp::Sub, 0, 1), DType::F32),
        ins(Inst::Binary(BinaryOp::Mul, 2, 2), DType::F32),
    ];
    let epilogue = vec![
        ins(Inst::Acc, DType::F32),
        ins(Inst::Const(Scalar::Float(1.0 / (m * n) as f64)), DType::F32),
        ins(Inst::Binary(BinaryOp::Mul, 0, 1), DType::F32),
        load(2, DType::F32, 0, &[]),
        ins(Inst::Binary(BinaryOp::Add, 2, 3), DType::F32),
        ins(Inst::Cast(4), DType::F64),
    ];
    let k = reduction(
        &[m, n],
        ReduceOp::Sum,
        &[0, 1],
        body,
        epilogue,
        vec![Store { buf: 3, value: 4 }, Store { buf: 4, value: 5 }],
    );
    let p = program(
        vec![
            input(0, DType::F32, &[m, n]),
            input(1, DType::F32, &[n]),
            input(2, DType::F32, &[]),
            temp(DType::F32, &[]),
            temp(DType::F64, &[]),
        ],
        k,
        vec![3, 4],
    );
    let bias = Buffer::from_vec(vec![0.25f32], Vec::<usize>::new()).unwrap();
    assert_agree(
        &p,
        &[values(DType::F32, m * n, 1).reshaped(vec![m, n].into()).unwrap(), values(DType::F32, n, 2), bias],
        Tol::Rel(3e-7),
    );

    // A count: sum(cast(x > 0, i64)) over rows, then a comparison in the epilogue.
    let body = vec![
        load(0, DType::F64, 0, &[n as i64, 1]),
        ins(Inst::Const(Scalar::Float(0.0)), DType::F64),
        ins(Inst::Binary(BinaryOp::Gt, 0, 1), DType::Bool),
        ins(Inst::Cast(2), DType::I64),
    ];
    let epilogue = vec![
        ins(Inst::Acc, DType::I64),
        ins(Inst::Iota { index: map(10, &[1]) }, DType::I64),
        ins(Inst::Binary(BinaryOp::Ge, 0, 1), DType::Bool),
    ];
    let k = reduction(
        &[m, n],
        ReduceOp::Sum,
        &[1],
        body,
        epilogue,
        vec![Store { buf: 1, value: 0 }, Store { buf: 2, value: 2 }],
    );
    let p = program(
        vec![input(0, DType::F64, &[m, n]), temp(DType::I64, &[m]), temp(DType::Bool, &[m])],
        k,
        vec![1, 2],
    );
    assert_agree(&p, &[values(DType::F64, m * n, 5).reshaped(vec![m, n].into()).unwrap()], Tol::Exact);
}

/// `argmax`/`argmin` of `x` (dense, shape `shape`) over `axis`, storing the indices and the
/// extremum's value.
fn arg_program(op: ArgOp, dtype: DType, shape: &[usize], axis: usize) -> Program {
    let out: Vec<usize> = (0..shape.len()).filter(|&d| d != axis).map(|d| shape[d]).collect();
    let k = Kernel {
        name: "k0".into(),
        space: shape.to_vec(),
        reduce: Some(KernelReduce { op: Combine::Arg(op), axes: vec![axis] }),
        body: vec![load(0, dtype, 0, &dense(shape))],
        value: Some(0),
        epilogue: vec![ins(Inst::Acc, DType::I64), ins(Inst::AccValue, dtype)],
        stores: vec![Store { buf: 1, value: 0 }, Store { buf: 2, value: 1 }],
        reason: "graph output".into(),
        origins: Vec::new(),
    };
    program(vec![input(0, dtype, shape), temp(DType::I64, &out), temp(dtype, &out)], k, vec![1, 2])
}

/// Inputs with many ties: few distinct values, some NaNs and infinities (floats) or the
/// extreme integers, and whole lines of the bound the accumulators start from.
fn arg_input(dtype: DType, shape: &[usize], axis: usize, seed: u64, nans: bool) -> Buffer {
    let n: usize = shape.iter().product();
    let inner: usize = shape[axis + 1..].iter().product();
    let size = shape[axis];
    let mut r = Rng(seed | 1);
    let s = (0..n).map(|i| {
        let line = (i / (inner * size)) * inner + i % inner;
        let pick = r.next() % 64;
        if dtype.is_float() {
            Scalar::Float(match (line % 5, pick) {
                (1, _) => f64::NEG_INFINITY,
                (2, _) => f64::INFINITY,
                (_, 0) if nans => f64::NAN,
                (_, 1) => f64::INFINITY,
                (_, 2) => f64::NEG_INFINITY,
                (_, 3) => -0.0,
                (_, p) => (p % 7) as f64 - 3.0,
            })
        } else {
            let (lo, hi) =
                if dtype == DType::I32 { (i32::MIN as i64, i32::MAX as i64) } else { (i64::MIN, i64::MAX) };
            Scalar::Int(match (line % 5, pick) {
                (1, _) => lo,
                (2, _) => hi,
                (_, 1) => hi,
                (_, 2) => lo,
                (_, p) => (p % 7) as i64 - 3,
            })
        }
    });
    Buffer::from_scalars(dtype, shape.to_vec().into(), s.collect::<Vec<_>>())
}

#[test]
fn arg_reductions_of_every_dtype_in_every_shape() {
    let cases: [(&[usize], usize); 9] = [
        (&[13, 77], 1),    // rows: 4- or 2-lane vectors, unrolled, and a tail
        (&[77, 13], 0),    // strided: scalar rows
        (&[3, 20, 37], 1), // middle axis
        (&[5, 1, 3], 1),   // a size-1 axis
        (&[6, 3], 1),      // rows shorter than a vector
        (&[2, 4100], 1),   // long rows
        (&[1000], 0),      // a 0-d output
        (&[4, 9, 6], 2),   // last axis under two kept dims
        (&[0, 5], 1),      // no output points
    ];
    let mut failures = Vec::new();
    for op in ArgOp::ALL {
        for dtype in [DType::F32, DType::F64, DType::I32, DType::I64] {
            for (shape, axis) in cases {
                for (seed, nans) in [(1, false), (2, true), (3, true)] {
                    let p = arg_program(op, dtype, shape, axis);
                    let x = arg_input(dtype, shape, axis, seed, nans);
                    for d in check(&p, &[x], Tol::Exact) {
                        failures
                            .push(format!("{} {dtype} {shape:?} over {axis} (seed {seed}): {d}", op.name()));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Rows whose extremum is a zero: the lanes of a vector row keep the first of two equal
/// elements, but the value must be the `max` (`min`) reduction's, `+0` above `-0`, with both
/// zeros anywhere in the row (a lane may see `-0` first and `+0` later, or never see `+0`),
/// one zero alone, and NaNs that win over both.
#[test]
fn arg_reductions_of_zero_rows_keep_the_reductions_signed_zero() {
    let (m, n) = (24, 67);
    let mut failures = Vec::new();
    for op in ArgOp::ALL {
        // The other elements are below (above) zero, so the extremum is a zero.
        let away = match op {
            ArgOp::ArgMax => -1.0,
            ArgOp::ArgMin => 1.0,
        };
        for dtype in [DType::F32, DType::F64] {
            for seed in 1..4u64 {
                let mut r = Rng((seed * 7919) | 1);
                let s = (0..m * n).map(|i| {
                    let (row, col) = (i / n, i % n);
                    let pick = r.next() % 16;
                    Scalar::Float(match (row % 6, pick) {
                        (0, _) => -0.0,
                        (1, _) => 0.0,
                        (2, 0..=2) => -0.0,
                        (2, 3) => 0.0,
                        (3, _) if col == n - 1 => 0.0,
                        (3, 0..=3) => -0.0,
                        (4, 0) if col > n / 2 => f64::NAN,
                        (4, 1..=3) => 0.0,
                        (4, 4..=6) => -0.0,
                        (5, _) if col == 0 => -0.0,
                        (_, p) => away * (1.0 + p as f64),
                    })
                });
                let x = Buffer::from_scalars(dtype, vec![m, n].into(), s.collect::<Vec<_>>());
                let p = arg_program(op, dtype, &[m, n], 1);
                for d in check(&p, &[x], Tol::Exact) {
                    failures.push(format!("{} {dtype} (seed {seed}): {d}", op.name()));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn arg_reductions_fuse_their_body_and_take_vector_rows() {
    // argmax(sin(x) * w[j]) over rows, with the index cast in the epilogue.
    let (m, n) = (9, 53);
    let body = vec![
        load(0, DType::F32, 0, &[n as i64, 1]),
        ins(Inst::Unary(UnaryOp::Sin, 0), DType::F32),
        load(1, DType::F32, 0, &[0, 1]),
        ins(Inst::Binary(BinaryOp::Mul, 1, 2), DType::F32),
    ];
    let epilogue = vec![ins(Inst::Acc, DType::I64), ins(Inst::Cast(0), DType::F64)];
    let k = Kernel {
        name: "k0".into(),
        space: vec![m, n],
        reduce: Some(KernelReduce { op: Combine::Arg(ArgOp::ArgMax), axes: vec![1] }),
        value: Some(3),
        body,
        epilogue,
        stores: vec![Store { buf: 2, value: 1 }],
        reason: "graph output".into(),
        origins: Vec::new(),
    };
    let p = program(
        vec![input(0, DType::F32, &[m, n]), input(1, DType::F32, &[n]), temp(DType::F64, &[m])],
        k,
        vec![2],
    );
    let x = values(DType::F32, m * n, 7).reshaped(vec![m, n].into()).unwrap();
    assert_agree(&p, &[x, values(DType::F32, n, 8)], Tol::Exact);
    assert_eq!(shape_of(&p), "inner reduction, 4-lane rows");
    assert_eq!(
        shape_of(&arg_program(ArgOp::ArgMin, DType::F64, &[8, 100], 1)),
        "inner reduction, 2-lane rows"
    );
    assert_eq!(
        shape_of(&arg_program(ArgOp::ArgMin, DType::I32, &[100, 8], 0)),
        "inner reduction, scalar rows"
    );
}

#[test]
fn f32_sum_of_ten_million_is_accurate() {
    let n = 10_000_000;
    let mut r = Rng(12345);
    let x: Vec<f32> = (0..n).map(|_| r.unit() as f32).collect();
    let exact: f64 = x.iter().map(|&v| v as f64).sum();
    for (shape, axes) in [(vec![n], vec![0]), (vec![n / 1000, 1000], vec![0, 1])] {
        let p = reduce_program(ReduceOp::Sum, DType::F32, &shape, &axes);
        let input = Buffer::from_vec(x.clone(), shape.clone()).unwrap();
        let got = run(&p, &[input]).unwrap()[0].as_slice::<f32>().unwrap()[0] as f64;
        let rel = (got - exact).abs() / exact;
        assert!(rel < 1e-6, "{shape:?}: {got} vs {exact}: relative error {rel}");
    }
    // Column sums of a tall matrix: 10^7 elements into 10 columns.
    let p = reduce_program(ReduceOp::Sum, DType::F32, &[n / 10, 10], &[0]);
    let got = run(&p, &[Buffer::from_vec(x.clone(), [n / 10, 10]).unwrap()]).unwrap();
    for (c, &g) in got[0].as_slice::<f32>().unwrap().iter().enumerate() {
        let exact: f64 = x.iter().skip(c).step_by(10).map(|&v| v as f64).sum();
        assert!(((g as f64 - exact) / exact).abs() < 1e-6, "column {c}: {g} vs {exact}");
    }
}

#[test]
fn integer_sums_wrap_exactly() {
    for dtype in [DType::I32, DType::I64] {
        let n = 1001;
        let big = if dtype == DType::I32 { i32::MAX as i64 } else { i64::MAX };
        let x = Buffer::from_scalars(
            dtype,
            vec![n].into(),
            (0..n).map(|i| Scalar::Int(big - i as i64)).collect::<Vec<_>>(),
        );
        let p = reduce_program(ReduceOp::Sum, dtype, &[n], &[0]);
        assert_agree(&p, &[x], Tol::Exact);
    }
}

// ---- errors, text ----------------------------------------------------------------------------

#[test]
fn out_of_bounds_maps_are_rejected() {
    let body = vec![load(0, DType::F32, 1, &[1]), ins(Inst::Unary(UnaryOp::Neg, 0), DType::F32)];
    let k = elementwise(&[8], body, vec![Store { buf: 1, value: 1 }]);
    let bufs = vec![input(0, DType::F32, &[8]), temp(DType::F32, &[8])];
    assert!(matches!(compile(&k, &bufs), Err(CodegenError::Invalid { .. })));
    assert!(matches!(render(&k, &bufs), Err(CodegenError::Invalid { .. })));
    // A negative stride that walks off the front.
    let body = vec![load(0, DType::F32, 6, &[-1]), ins(Inst::Unary(UnaryOp::Neg, 0), DType::F32)];
    let k = elementwise(&[8], body, vec![Store { buf: 1, value: 1 }]);
    assert!(matches!(compile(&k, &bufs), Err(CodegenError::Invalid { .. })));
    // A dtype mismatch.
    let body = vec![load(0, DType::F64, 0, &[1])];
    let k = elementwise(&[8], body, vec![Store { buf: 1, value: 0 }]);
    assert!(matches!(compile(&k, &bufs), Err(CodegenError::Invalid { .. })));
}

#[test]
fn run_checks_its_arguments() {
    let p = unary_program(UnaryOp::Neg, DType::F32, 8, 1);
    let Step::Kernel(k) = &p.steps[0] else { unreachable!() };
    let c = compile(k, &p.buffers).unwrap();
    let mut a = vec![0f32; 8];
    let mut b = vec![0f32; 8];
    let ptrs = [a.as_mut_ptr() as *mut u8, b.as_mut_ptr() as *mut u8];
    // SAFETY: both pointers are live 8-element f32 buffers.
    unsafe {
        assert!(matches!(c.run(&ptrs[..1], 0, 8), Err(KernelError::Arguments(_))));
        assert!(matches!(c.run(&ptrs, 0, 9), Err(KernelError::Arguments(_))));
        assert!(matches!(c.run(&[std::ptr::null_mut(), ptrs[1]], 0, 8), Err(KernelError::Arguments(_))));
        assert_eq!(c.run(&ptrs, 3, 3), Ok(()));
        assert_eq!(c.run(&ptrs, 0, 8), Ok(()));
    }
}

#[test]
fn compiled_kernels_run_on_several_threads() {
    let n = 100_000;
    let p = unary_program(UnaryOp::Sqrt, DType::F64, n, 1);
    let Step::Kernel(k) = &p.steps[0] else { unreachable!() };
    let c = compile(k, &p.buffers).unwrap();
    let x: Vec<f64> = (0..n).map(|i| i as f64).collect();
    let mut y = vec![0f64; n];
    let (xp, yp) = (x.as_ptr() as usize, y.as_mut_ptr() as usize);
    std::thread::scope(|s| {
        for t in 0..4 {
            let c = &c;
            s.spawn(move || {
                let ptrs = [xp as *mut u8, yp as *mut u8];
                // SAFETY: the buffers outlive the scope; each thread writes its own rows.
                unsafe { c.run(&ptrs, t * n / 4, (t + 1) * n / 4).unwrap() };
            });
        }
    });
    assert!(y.iter().enumerate().all(|(i, &v)| v == (i as f64).sqrt()));
}

#[test]
fn rendering_is_deterministic() {
    let p = binary_program(BinaryOp::Pow, DType::F32, 10, false);
    let Step::Kernel(k) = &p.steps[0] else { unreachable!() };
    assert_eq!(render(k, &p.buffers).unwrap(), render(k, &p.buffers).unwrap());
}

#[test]
fn clif_of_an_elementwise_kernel() {
    // out[i, j] = max(x[i, j] * w[j], 0) on a dense [4, 16] space: one merged row.
    let body = vec![
        load(0, DType::F32, 0, &[16, 1]),
        load(1, DType::F32, 0, &[0, 1]),
        ins(Inst::Binary(BinaryOp::Mul, 0, 1), DType::F32),
        ins(Inst::Const(Scalar::Float(0.0)), DType::F32),
        ins(Inst::Binary(BinaryOp::Maximum, 2, 3), DType::F32),
    ];
    let k = elementwise(&[4, 16], body, vec![Store { buf: 2, value: 4 }]);
    let bufs = vec![input(0, DType::F32, &[4, 16]), input(1, DType::F32, &[16]), temp(DType::F32, &[4, 16])];
    insta::assert_snapshot!(render(&k, &bufs).unwrap());
}

#[test]
fn clif_of_a_reduction_kernel() {
    // out[i] = sqrt(sum_j x[i, j]^2): a row reduction with an epilogue.
    let body = vec![load(0, DType::F64, 0, &[64, 1]), ins(Inst::Binary(BinaryOp::Mul, 0, 0), DType::F64)];
    let epilogue = vec![ins(Inst::Acc, DType::F64), ins(Inst::Unary(UnaryOp::Sqrt, 0), DType::F64)];
    let k = reduction(&[8, 64], ReduceOp::Sum, &[1], body, epilogue, vec![Store { buf: 1, value: 1 }]);
    let bufs = vec![input(0, DType::F64, &[8, 64]), temp(DType::F64, &[8])];
    insta::assert_snapshot!(render(&k, &bufs).unwrap());
}

/// The loop shape `render` reports for a kernel.
fn shape_of(p: &Program) -> String {
    let Step::Kernel(k) = &p.steps[0] else { unreachable!() };
    let text = render(k, &p.buffers).unwrap();
    let first = text.lines().next().unwrap();
    first.split(": ").nth(1).unwrap().split(';').next().unwrap().to_string()
}

#[test]
fn fast_paths_are_taken_where_they_apply() {
    let f = DType::F32;
    assert_eq!(shape_of(&unary_program(UnaryOp::Neg, f, 64, 1)), "elementwise, 4-lane rows");
    assert_eq!(shape_of(&unary_program(UnaryOp::Neg, DType::I64, 64, 1)), "elementwise, 2-lane rows");
    assert_eq!(shape_of(&unary_program(UnaryOp::Neg, f, 64, 2)), "elementwise, scalar rows");
    assert_eq!(shape_of(&unary_program(UnaryOp::Not, DType::Bool, 64, 1)), "elementwise, scalar rows");
    assert_eq!(shape_of(&binary_program(BinaryOp::Lt, f, 64, false)), "elementwise, scalar rows");
    assert_eq!(shape_of(&reduce_program(ReduceOp::Sum, f, &[8, 100], &[1])), "inner reduction, 4-lane rows");
    assert_eq!(
        shape_of(&reduce_program(ReduceOp::Max, DType::I64, &[800], &[0])),
        "inner reduction, 2-lane rows"
    );
    assert_eq!(shape_of(&reduce_program(ReduceOp::Sum, f, &[100, 8], &[0])), "column reduction, 4-lane rows");
    assert_eq!(
        shape_of(&reduce_program(ReduceOp::Sum, f, &[3, 100, 8], &[1])),
        "column reduction, 4-lane rows"
    );
    assert_eq!(
        shape_of(&reduce_program(ReduceOp::Min, DType::F64, &[7, 3], &[0])),
        "column reduction, 2-lane rows"
    );
    assert_eq!(shape_of(&reduce_program(ReduceOp::Sum, f, &[3, 0], &[1])), "inner reduction, scalar rows");
}

// ---- shared machine code ---------------------------------------------------------------------

/// `out = x * x + y` over buffers `x, y, out` of `n` `f32`s.
fn square_add(x: usize, y: usize, out: usize, n: usize) -> Kernel {
    let body = vec![
        load(x, DType::F32, 0, &[1]),
        ins(Inst::Binary(BinaryOp::Mul, 0, 0), DType::F32),
        load(y, DType::F32, 0, &[1]),
        ins(Inst::Binary(BinaryOp::Add, 1, 2), DType::F32),
    ];
    elementwise(&[n], body, vec![Store { buf: out, value: 3 }])
}

/// `out = x * x + y` over `[rows, cols]` buffers `x` and `out` of `f32` and a row `y` of
/// `cols` added to every row (a bias: the rows cannot merge into one dim).
fn square_add_rows(x: usize, y: usize, out: usize, rows: usize, cols: usize) -> Kernel {
    let s = [cols as i64, 1];
    let body = vec![
        load(x, DType::F32, 0, &s),
        ins(Inst::Binary(BinaryOp::Mul, 0, 0), DType::F32),
        load(y, DType::F32, 0, &[0, 1]),
        ins(Inst::Binary(BinaryOp::Add, 1, 2), DType::F32),
    ];
    elementwise(&[rows, cols], body, vec![Store { buf: out, value: 3 }])
}

#[test]
fn kernels_that_differ_only_in_their_extents_share_their_code() {
    // The outer dim is a range the caller passes and the row length a value of the size
    // table, so 3, 7 or 64 rows of 5 or 6 columns run one function, each over its own rows.
    // (`tests/size_generic.rs` has many more structures and sizes.)
    let f = |i, r, c| input(i, DType::F32, &[r, c]);
    let sizes = [(3, 5), (7, 5), (64, 5), (7, 6)];
    let mut buffers = Vec::new();
    let mut kernels = Vec::new();
    for (j, &(r, c)) in sizes.iter().enumerate() {
        let b = buffers.len();
        buffers.extend([f(2 * j, r, c), input(2 * j + 1, DType::F32, &[c]), temp(DType::F32, &[r, c])]);
        kernels.push(square_add_rows(b, b + 1, b + 2, r, c));
    }
    let c: Vec<_> = kernels.iter().map(|k| compile(k, &buffers).unwrap()).collect();
    assert!(c[0].shares_code_with(&c[1]) && c[0].shares_code_with(&c[2]), "rows are a runtime range");
    assert!(c[0].shares_code_with(&c[3]), "the row length is a runtime value");
    assert_eq!(c.iter().map(|k| k.outer_len()).collect::<Vec<_>>(), [3, 7, 64, 7]);
    // Each runs over its own rows, against the kernel IR's evaluator.
    let mut p = program(buffers, kernels[0].clone(), vec![2, 5, 8, 11]);
    for k in &kernels[1..] {
        p.steps.push(Step::Kernel(k.clone()));
    }
    let mut inputs = Vec::new();
    for (&(r, c), j) in sizes.iter().zip(0u64..) {
        let v = values(DType::F32, r * c, 2 * j);
        inputs.push(Buffer::from_scalars(DType::F32, vec![r, c].into(), v.scalars()));
        inputs.push(values(DType::F32, c, 2 * j + 1));
    }
    assert_agree(&p, &inputs, Tol::Exact);
}

#[test]
fn kernels_of_one_structure_share_their_code_and_keep_their_buffers() {
    let f = |i, n| input(i, DType::F32, &[n]);
    let buffers = vec![f(0, 9), f(1, 9), temp(DType::F32, &[9]), f(2, 9), temp(DType::F32, &[9]), f(3, 5)];
    let buffers = [buffers, vec![temp(DType::F32, &[5])]].concat();
    // The second kernel reads its buffers in another order: x is b3, y is b2 (the first's output).
    let (k0, k1, k2) = (square_add(0, 1, 2, 9), square_add(3, 2, 4, 9), square_add(5, 5, 6, 5));
    let c: Vec<_> = [&k0, &k1, &k2].iter().map(|k| compile(k, &buffers).unwrap()).collect();
    assert!(c[0].shares_code_with(&c[1]), "same structure and types: one compilation");
    assert!(!c[0].shares_code_with(&c[2]), "another structure is another function");
    let mut p = program(buffers, k0, vec![2, 4, 6]);
    p.steps.push(Step::Kernel(k1));
    p.steps.push(Step::Kernel(k2));
    let inputs = [
        values(DType::F32, 9, 1),
        values(DType::F32, 9, 2),
        values(DType::F32, 9, 3),
        values(DType::F32, 5, 4),
    ];
    assert_agree(&p, &inputs, Tol::Exact);
}

/// Masks read from bool buffers in vector rows (`masked_fill` with a stored causal mask): rows
/// of every length up to a few vectors, 4- and 2-lane values, an elementwise `where` and a
/// masked row maximum, bit for bit against the interpreter.
#[test]
fn bool_loads_in_vector_rows() {
    for dtype in [DType::F32, DType::F64, DType::I32, DType::I64] {
        for n in 1..=13usize {
            let m = 3;
            let body = vec![
                load(0, DType::Bool, 0, &[n as i64, 1]),
                load(1, dtype, 0, &[n as i64, 1]),
                ins(Inst::Const(Scalar::Int(-7)), dtype),
                ins(Inst::Where(0, 2, 1), dtype),
            ];
            let bufs = |out: &[usize]| {
                vec![input(0, DType::Bool, &[m, n]), input(1, dtype, &[m, n]), temp(dtype, out)]
            };
            let k = elementwise(&[m, n], body.clone(), vec![Store { buf: 2, value: 3 }]);
            let clif = render(&k, &bufs(&[m, n])).unwrap();
            assert!(n < 4 || clif.contains("uwiden_low"), "a vector row widens the mask bytes:\n{clif}");
            let mask = values(DType::Bool, m * n, n as u64).reshaped(vec![m, n].into()).unwrap();
            let x = values(dtype, m * n, 7 + n as u64).reshaped(vec![m, n].into()).unwrap();
            assert_agree(&program(bufs(&[m, n]), k, vec![2]), &[mask.clone(), x.clone()], Tol::Exact);
            let epilogue = vec![ins(Inst::Acc, dtype)];
            let max =
                reduction(&[m, n], ReduceOp::Max, &[1], body, epilogue, vec![Store { buf: 2, value: 0 }]);
            assert_agree(&program(bufs(&[m]), max, vec![2]), &[mask, x], Tol::Exact);
        }
    }
}
