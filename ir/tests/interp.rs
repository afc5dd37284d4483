//! Tests of the reference interpreter: exact values for every op, and every evaluation error.

use tenjit_ir::interp::{eval, EvalError};
use tenjit_ir::ops::{Accepts, BinaryKind, Dims, IDims};
use tenjit_ir::random;
use tenjit_ir::{
    ArgOp, BinaryOp, Buffer, DType, Element, Graph, NodeId, Op, ReduceOp, Scalar, Shape, TensorType, UnaryOp,
};

fn dims(d: &[usize]) -> Dims {
    d.iter().copied().collect()
}

fn idims(d: &[isize]) -> IDims {
    d.iter().copied().collect()
}

fn buf<T: Element>(v: Vec<T>, shape: &[usize]) -> Buffer {
    Buffer::from_vec(v, Shape::new(shape)).unwrap()
}

fn vals<T: Element>(b: &Buffer) -> Vec<T> {
    b.as_slice::<T>().unwrap_or_else(|| panic!("buffer is {}, not {}", b.dtype(), T::DTYPE)).to_vec()
}

/// Evaluates `op` applied to one graph input per buffer.
fn run(op: Op, inputs: &[Buffer]) -> Result<Buffer, EvalError> {
    let mut g = Graph::new("t");
    let ids: Vec<NodeId> =
        inputs.iter().enumerate().map(|(i, b)| g.add_input(format!("x{i}"), b.ty())).collect();
    let y = g.add(op, &ids).expect("the type rule accepts the test's operands");
    g.set_outputs(vec![y]);
    eval(&g, inputs).map(|mut v| v.remove(0))
}

fn run_ok(op: Op, inputs: &[Buffer]) -> Buffer {
    run(op.clone(), inputs).unwrap_or_else(|e| panic!("{op:?}: {e}"))
}

/// Equality that compares floats by bits, so NaN equals NaN.
fn assert_same(got: &Buffer, want: &Buffer, what: &str) {
    assert_eq!(got.ty(), want.ty(), "{what}: type");
    assert_eq!(got.scalars(), want.scalars(), "{what}: values");
}

fn samples(dtype: DType) -> Buffer {
    match dtype {
        DType::Bool => buf(vec![false, true], &[2]),
        DType::I32 => buf(vec![-7i32, -2, 0, 2, 7, i32::MAX, i32::MIN], &[7]),
        DType::I64 => buf(vec![-7i64, -2, 0, 2, 3, i64::MAX, i64::MIN], &[7]),
        DType::F16 | DType::BF16 => Buffer::from_scalars(
            dtype,
            Shape::new(&[9]),
            [-5.5, -2.0, -0.0, 0.0, 0.1, 2.0, 5.5, f64::NAN, f64::INFINITY].map(Scalar::Float),
        ),
        DType::F32 => buf(vec![-5.5f32, -2.0, -0.0, 0.0, 0.1, 2.0, 5.5, f32::NAN, f32::INFINITY], &[9]),
        DType::F64 => buf(vec![-5.5f64, -2.0, -0.0, 0.0, 0.1, 2.0, 5.5, f64::NAN, f64::NEG_INFINITY], &[9]),
    }
}

/// The table's result for one element, converted to `out` as the interpreter documents.
fn table_value(
    dtype: DType,
    float: impl Fn(f64) -> f64,
    int: impl Fn(i64) -> Result<i64, &'static str>,
    x: Scalar,
) -> Result<Scalar, &'static str> {
    if dtype.is_float() {
        Ok(Scalar::Float(float(x.as_f64())))
    } else {
        int(x.as_i64()).map(Scalar::Int)
    }
}

#[test]
fn unary_ops_follow_the_table_on_every_accepted_dtype() {
    let mut checked = 0;
    for op in UnaryOp::ALL {
        let spec = op.spec();
        for dtype in DType::ALL.into_iter().filter(|&d| spec.accepts.admits(d)) {
            let x = samples(dtype);
            let want: Vec<Scalar> = x
                .scalars()
                .into_iter()
                .map(|s| table_value(dtype, spec.float, |i| Ok((spec.int)(i)), s).unwrap())
                .collect();
            let want = Buffer::from_scalars(dtype, x.shape().clone(), want);
            assert_same(&run_ok(Op::Unary(op), &[x]), &want, spec.name);
            checked += 1;
        }
    }
    assert!(checked >= UnaryOp::ALL.len());
}

#[test]
fn binary_ops_follow_the_table_on_every_accepted_dtype() {
    for op in BinaryOp::ALL {
        let spec = op.spec();
        for dtype in DType::ALL.into_iter().filter(|&d| spec.accepts.admits(d)) {
            let s = samples(dtype).scalars();
            let pairs: Vec<(Scalar, Scalar)> =
                s.iter().flat_map(|&a| s.iter().map(move |&b| (a, b))).collect();
            let out = match spec.kind {
                BinaryKind::Arith => dtype,
                BinaryKind::Compare => DType::Bool,
            };
            let eval_pair = |(a, b): (Scalar, Scalar)| {
                table_value(dtype, |x| (spec.float)(x, b.as_f64()), |i| (spec.int)(i, b.as_i64()), a)
            };
            let (ok, bad): (Vec<_>, Vec<_>) = pairs.into_iter().partition(|&p| eval_pair(p).is_ok());
            let n = ok.len();
            let lhs = Buffer::from_scalars(dtype, Shape::new(&[n]), ok.iter().map(|p| p.0));
            let rhs = Buffer::from_scalars(dtype, Shape::new(&[n]), ok.iter().map(|p| p.1));
            let want = Buffer::from_scalars(out, Shape::new(&[n]), ok.iter().map(|&p| eval_pair(p).unwrap()));
            assert_same(&run_ok(Op::Binary(op), &[lhs, rhs]), &want, &format!("{} {dtype}", spec.name));
            // Each undefined integer case is an evaluation error carrying the table's message.
            if let Some(&(a, b)) = bad.first() {
                let lhs = Buffer::from_scalars(dtype, Shape::new(&[1]), [a]);
                let rhs = Buffer::from_scalars(dtype, Shape::new(&[1]), [b]);
                match run(Op::Binary(op), &[lhs, rhs]) {
                    Err(EvalError::Arithmetic { op: name, message, .. }) => {
                        assert_eq!(name, spec.name);
                        assert_eq!(Err(message), eval_pair((a, b)));
                    }
                    other => panic!("{} {dtype} on {a:?}, {b:?}: {other:?}", spec.name),
                }
            }
        }
    }
}

fn binary<T: Element>(op: BinaryOp, a: Vec<T>, b: Vec<T>) -> Buffer {
    let n = a.len();
    run_ok(Op::Binary(op), &[buf(a, &[n]), buf(b, &[n])])
}

#[test]
fn integer_division_rounds_as_python() {
    let a = vec![-7i64, 7, 7, -7, 6];
    let b = vec![2i64, -2, 2, -2, 3];
    assert_eq!(vals::<i64>(&binary(BinaryOp::FloorDiv, a.clone(), b.clone())), [-4, -4, 3, 3, 2]);
    assert_eq!(vals::<i64>(&binary(BinaryOp::Rem, a, b)), [1, -1, 1, -1, 0]);
    let a32 = vec![-7i32, 7, i32::MIN];
    let b32 = vec![2i32, -2, -1];
    assert_eq!(vals::<i32>(&binary(BinaryOp::FloorDiv, a32.clone(), b32.clone())), [-4, -4, i32::MIN]);
    assert_eq!(vals::<i32>(&binary(BinaryOp::Rem, a32, b32)), [1, -1, 0]);
}

#[test]
fn float_division_rounds_as_python() {
    let a = vec![5.5f64, -7.0, 7.0, 5.5, -0.5, 1.0];
    let b = vec![-2.0f64, 2.0, 2.0, 2.0, 2.0, 0.0];
    assert_eq!(vals::<f64>(&binary(BinaryOp::Rem, a.clone(), b.clone()))[..5], [-0.5, 1.0, 1.0, 1.5, 1.5]);
    let q = vals::<f64>(&binary(BinaryOp::FloorDiv, a, b));
    assert_eq!(q, [-3.0, -4.0, 3.0, 2.0, -1.0, f64::INFINITY]);
    let q = vals::<f32>(&binary(BinaryOp::FloorDiv, vec![5.5f32, 0.0], vec![-2.0f32, -3.0]));
    assert_eq!(q[0], -3.0);
    assert!(q[1] == 0.0 && q[1].is_sign_negative(), "0 // -3 is -0.0, got {}", q[1]);
}

#[test]
fn integers_wrap_around() {
    let add = binary(BinaryOp::Add, vec![i32::MAX, i32::MIN], vec![1i32, -1]);
    assert_eq!(vals::<i32>(&add), [i32::MIN, i32::MAX]);
    assert_eq!(vals::<i64>(&binary(BinaryOp::Mul, vec![i64::MAX], vec![2i64])), [-2]);
    assert_eq!(vals::<i32>(&binary(BinaryOp::Pow, vec![2i32, 3, -2], vec![31i32, 2, 3])), [i32::MIN, 9, -8]);
    let neg = run_ok(Op::Unary(UnaryOp::Neg), &[buf(vec![i32::MIN, 5], &[2])]);
    assert_eq!(vals::<i32>(&neg), [i32::MIN, -5]);
    let abs = run_ok(Op::Unary(UnaryOp::Abs), &[buf(vec![i64::MIN, -5], &[2])]);
    assert_eq!(vals::<i64>(&abs), [i64::MIN, 5]);
}

#[test]
fn maximum_and_minimum_propagate_nan() {
    let a = vec![f32::NAN, 1.0, 2.0, -0.5];
    let b = vec![1.0f32, f32::NAN, 3.0, -1.5];
    let max = vals::<f32>(&binary(BinaryOp::Maximum, a.clone(), b.clone()));
    assert!(max[0].is_nan() && max[1].is_nan());
    assert_eq!(max[2..], [3.0, -0.5]);
    let min = vals::<f32>(&binary(BinaryOp::Minimum, a.clone(), b.clone()));
    assert!(min[0].is_nan() && min[1].is_nan());
    assert_eq!(min[2..], [2.0, -1.5]);
    assert_eq!(vals::<bool>(&binary(BinaryOp::Eq, a.clone(), a.clone())), [false, true, true, true]);
    assert_eq!(vals::<bool>(&binary(BinaryOp::Ne, a.clone(), a)), [true, false, false, false]);
}

#[test]
fn float_ops_round_once_from_f64() {
    let x = vec![0.1f32, 1e-3, 3.0, 1e30];
    let y = vec![0.2f32, 7.0, 0.7, 1e30];
    let sum = vals::<f32>(&binary(BinaryOp::Add, x.clone(), y.clone()));
    let want: Vec<f32> = x.iter().zip(&y).map(|(a, b)| a + b).collect();
    assert_eq!(sum, want);
    let exp = vals::<f32>(&run_ok(Op::Unary(UnaryOp::Exp), &[buf(x.clone(), &[4])]));
    let want: Vec<f32> = x.iter().map(|&a| (a as f64).exp() as f32).collect();
    assert_eq!(exp, want);
    assert!(exp[3].is_infinite());
    let floor = run_ok(Op::Unary(UnaryOp::Floor), &[buf(vec![-2.5f64, 2.5, -0.0], &[3])]);
    assert_eq!(vals::<f64>(&floor), [-3.0, 2.0, -0.0]);
    let logic = binary(BinaryOp::And, vec![true, true, false], vec![true, false, false]);
    assert_eq!(vals::<bool>(&logic), [true, false, false]);
    let not = run_ok(Op::Unary(UnaryOp::Not), &[buf(vec![true, false], &[2])]);
    assert_eq!(vals::<bool>(&not), [false, true]);
}

fn cast(x: Buffer, dtype: DType) -> Buffer {
    run_ok(Op::Cast { dtype }, &[x])
}

#[test]
fn casts_truncate_saturate_and_round() {
    let x = buf(vec![2.7f32, -2.7, f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 3e9, -0.9], &[7]);
    assert_eq!(vals::<i32>(&cast(x.clone(), DType::I32)), [2, -2, 0, i32::MAX, i32::MIN, i32::MAX, 0]);
    assert_eq!(vals::<i64>(&cast(x.clone(), DType::I64)), [2, -2, 0, i64::MAX, i64::MIN, 3_000_000_000, 0]);
    assert_eq!(vals::<bool>(&cast(x, DType::Bool)), [true, true, true, true, true, true, true]);
    let x = buf(vec![0.0f64, -0.0, f64::NAN, 0.5], &[4]);
    assert_eq!(vals::<bool>(&cast(x, DType::Bool)), [false, false, true, true]);
    let x = buf(vec![(1i64 << 32) + 5, -1, 0, 2], &[4]);
    assert_eq!(vals::<i32>(&cast(x.clone(), DType::I32)), [5, -1, 0, 2]);
    assert_eq!(vals::<bool>(&cast(x, DType::Bool)), [true, true, false, true]);
    assert_eq!(vals::<f32>(&cast(buf(vec![true, false], &[2]), DType::F32)), [1.0, 0.0]);
    assert_eq!(vals::<i64>(&cast(buf(vec![true, false], &[2]), DType::I64)), [1, 0]);
    let x = buf(vec![0.1f64, 1e300, -1e-300], &[3]);
    let y = vals::<f32>(&cast(x, DType::F32));
    assert_eq!(y[..2], [0.1f32, f32::INFINITY]);
    assert!(y[2] == 0.0 && y[2].is_sign_negative());
    // i64 -> f32 rounds once: via f64 this value would round twice and land on 2^60.
    let big = (1i64 << 60) + (1 << 36) + 1;
    assert_eq!(vals::<f32>(&cast(buf(vec![big], &[1]), DType::F32)), [((1u64 << 60) + (1 << 37)) as f32]);
    assert_eq!(vals::<f64>(&cast(buf(vec![0.1f32], &[1]), DType::F64)), [0.1f32 as f64]);
}

fn reduce(op: ReduceOp, axes: &[usize], x: Buffer) -> Buffer {
    run_ok(Op::Reduce { op, axes: dims(axes) }, &[x])
}

#[test]
fn reductions_over_axis_subsets() {
    let x = || buf(vec![1i64, 2, 3, 4, 5, 6], &[2, 3]);
    let sum = |axes: &[usize]| vals::<i64>(&reduce(ReduceOp::Sum, axes, x()));
    assert_eq!(sum(&[]), [1, 2, 3, 4, 5, 6]);
    assert_eq!(sum(&[0]), [5, 7, 9]);
    assert_eq!(sum(&[1]), [6, 15]);
    assert_eq!(sum(&[0, 1]), [21]);
    assert_eq!(reduce(ReduceOp::Sum, &[0, 1], x()).shape(), &Shape::scalar());
    assert_eq!(vals::<i64>(&reduce(ReduceOp::Prod, &[0], x())), [4, 10, 18]);
    assert_eq!(vals::<i64>(&reduce(ReduceOp::Prod, &[1], x())), [6, 120]);
    assert_eq!(vals::<i64>(&reduce(ReduceOp::Max, &[1], x())), [3, 6]);
    assert_eq!(vals::<i64>(&reduce(ReduceOp::Min, &[0], x())), [1, 2, 3]);
    // [2, 3, 4] holding 12i + 4j + k: summing i and k leaves 32j + 60.
    let x3 = buf((0..24).map(|v| v as f32).collect::<Vec<_>>(), &[2, 3, 4]);
    assert_eq!(vals::<f32>(&reduce(ReduceOp::Sum, &[0, 2], x3.clone())), [60.0, 92.0, 124.0]);
    assert_eq!(vals::<f32>(&reduce(ReduceOp::Max, &[1], x3.clone()))[..4], [8.0, 9.0, 10.0, 11.0]);
    assert_eq!(vals::<f32>(&reduce(ReduceOp::Min, &[0, 1, 2], x3)), [0.0]);
}

#[test]
fn float_sums_accumulate_in_f64() {
    // In f32, 1e8 + 1 == 1e8; accumulated in f64 the ones survive.
    let x = buf(vec![1e8f32, 1.0, -1e8, 1.0], &[4]);
    assert_eq!(vals::<f32>(&reduce(ReduceOp::Sum, &[0], x)), [2.0]);
    let wrap = buf(vec![i32::MAX, 1], &[2]);
    assert_eq!(vals::<i32>(&reduce(ReduceOp::Sum, &[0], wrap)), [i32::MIN]);
}

#[test]
fn max_and_min_reductions_propagate_nan() {
    let x = buf(vec![1.0f64, f64::NAN, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
    for op in [ReduceOp::Max, ReduceOp::Min] {
        let r = vals::<f64>(&reduce(op, &[1], x.clone()));
        assert!(r[0].is_nan(), "{op:?}");
        assert_eq!(r[1], if op == ReduceOp::Max { 6.0 } else { 4.0 });
    }
}

#[test]
fn empty_reductions_give_the_identity() {
    let x = buf(Vec::<f32>::new(), &[0, 3]);
    assert_eq!(vals::<f32>(&reduce(ReduceOp::Sum, &[0], x.clone())), [0.0; 3]);
    assert_eq!(vals::<f32>(&reduce(ReduceOp::Prod, &[0], x.clone())), [1.0; 3]);
    assert_eq!(vals::<f32>(&reduce(ReduceOp::Max, &[1], x)), Vec::<f32>::new());
}

fn arg(op: ArgOp, axis: usize, x: Buffer) -> Vec<i64> {
    vals::<i64>(&run_ok(Op::ArgReduce { op, axis }, &[x]))
}

#[test]
fn argmax_takes_the_first_tie_and_the_first_nan() {
    let nan = f32::NAN;
    let x = buf(vec![1.0f32, 3.0, 3.0, 2.0, 0.0, 5.0, nan, nan, 2.0, 2.0, 1.0, 1.0], &[3, 4]);
    assert_eq!(arg(ArgOp::ArgMax, 1, x.clone()), [1, 2, 0]);
    assert_eq!(arg(ArgOp::ArgMin, 1, x.clone()), [0, 2, 2]);
    assert_eq!(arg(ArgOp::ArgMax, 0, x.clone()), [2, 1, 1, 1]);
    assert_eq!(arg(ArgOp::ArgMin, 0, x), [1, 2, 1, 1]);
    let y = buf(vec![4i32, 1, 4, 1, 9, 9], &[1, 6]);
    assert_eq!(arg(ArgOp::ArgMax, 1, y.clone()), [4]);
    assert_eq!(arg(ArgOp::ArgMin, 1, y.clone()), [1]);
    assert_eq!(arg(ArgOp::ArgMax, 0, y), [0; 6]);
}

#[test]
fn matmul_is_batched() {
    // Two batches of [2, 3] x [3, 2].
    let a: Vec<i64> = (1..=12).collect();
    let b: Vec<i64> = (0..12).map(|v| v - 5).collect();
    let out = run_ok(Op::Matmul, &[buf(a.clone(), &[2, 2, 3]), buf(b.clone(), &[2, 3, 2])]);
    assert_eq!(out.shape(), &Shape::new(&[2, 2, 2]));
    let mut want = Vec::new();
    for bt in 0..2 {
        for i in 0..2 {
            for j in 0..2 {
                want.push((0..3).map(|p| a[bt * 6 + i * 3 + p] * b[bt * 6 + p * 2 + j]).sum::<i64>());
            }
        }
    }
    assert_eq!(vals::<i64>(&out), want);
    let af: Vec<f32> = a.iter().map(|&v| v as f32).collect();
    let bf: Vec<f32> = b.iter().map(|&v| v as f32).collect();
    let out = run_ok(Op::Matmul, &[buf(af, &[2, 2, 3]), buf(bf, &[2, 3, 2])]);
    assert_eq!(vals::<f32>(&out), want.iter().map(|&v| v as f32).collect::<Vec<_>>());
}

#[test]
fn matmul_accumulates_floats_in_f64_and_wraps_integers() {
    let out = run_ok(Op::Matmul, &[buf(vec![1e8f32, 1.0, -1e8], &[1, 3]), buf(vec![1.0f32; 3], &[3, 1])]);
    assert_eq!(vals::<f32>(&out), [1.0]);
    let out = run_ok(Op::Matmul, &[buf(vec![i32::MAX, 1], &[1, 2]), buf(vec![1i32, 1], &[2, 1])]);
    assert_eq!(vals::<i32>(&out), [i32::MIN]);
    let out = run_ok(Op::Matmul, &[buf(Vec::<f64>::new(), &[2, 0]), buf(Vec::<f64>::new(), &[0, 3])]);
    assert_eq!(vals::<f64>(&out), [0.0; 6]);
}

#[test]
fn slices_step_backwards() {
    let x = buf((0..10).collect::<Vec<i64>>(), &[10]);
    let op = Op::Slice { start: idims(&[9]), step: idims(&[-2]), size: dims(&[5]), bounds: None };
    assert_eq!(vals::<i64>(&run_ok(op, &[x])), [9, 7, 5, 3, 1]);
    let x = buf((0..12).collect::<Vec<i32>>(), &[3, 4]);
    let op = Op::Slice { start: idims(&[2, 1]), step: idims(&[-1, 2]), size: dims(&[3, 2]), bounds: None };
    assert_eq!(vals::<i32>(&run_ok(op, std::slice::from_ref(&x))), [9, 11, 5, 7, 1, 3]);
    let op = Op::Slice { start: idims(&[0, 0]), step: idims(&[1, 1]), size: dims(&[0, 4]), bounds: None };
    assert_eq!(run_ok(op, &[x]).numel(), 0);
}

#[test]
fn pad_fills_with_zeros() {
    let x = buf(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2]);
    let out = run_ok(Op::Pad { lo: dims(&[1, 0]), hi: dims(&[0, 2]) }, &[x]);
    assert_eq!(out.shape(), &Shape::new(&[3, 4]));
    assert_eq!(vals::<f32>(&out), [0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 0.0, 0.0, 3.0, 4.0, 0.0, 0.0]);
    let out = run_ok(Op::Pad { lo: dims(&[2]), hi: dims(&[1]) }, &[buf(vec![true], &[1])]);
    assert_eq!(vals::<bool>(&out), [false, false, true, false]);
}

#[test]
fn concat_joins_along_an_axis() {
    let a = buf(vec![1i64, 2], &[2, 1]);
    let b = buf(vec![3i64, 4, 5, 6], &[2, 2]);
    let out = run_ok(Op::Concat { axis: 1 }, &[a, b]);
    assert_eq!(out.shape(), &Shape::new(&[2, 3]));
    assert_eq!(vals::<i64>(&out), [1, 3, 4, 2, 5, 6]);
    let parts = [
        buf(vec![1.0f64, 2.0], &[1, 2]),
        buf(Vec::<f64>::new(), &[0, 2]),
        buf(vec![3.0f64, 4.0, 5.0, 6.0], &[2, 2]),
    ];
    let out = run_ok(Op::Concat { axis: 0 }, &parts);
    assert_eq!(vals::<f64>(&out), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
}

#[test]
fn permute_expand_and_reshape_move_elements() {
    let x = buf((0..6).collect::<Vec<i64>>(), &[2, 3]);
    let t = run_ok(Op::Permute { perm: dims(&[1, 0]) }, std::slice::from_ref(&x));
    assert_eq!(t.shape(), &Shape::new(&[3, 2]));
    assert_eq!(vals::<i64>(&t), [0, 3, 1, 4, 2, 5]);
    let x3 = buf((0..24).collect::<Vec<i64>>(), &[2, 3, 4]);
    let p = run_ok(Op::Permute { perm: dims(&[2, 0, 1]) }, &[x3]);
    assert_eq!(p.shape(), &Shape::new(&[4, 2, 3]));
    // p[k][i][j] = x[i][j][k] = 12i + 4j + k.
    let want: Vec<i64> =
        (0..4).flat_map(|k| (0..2).flat_map(move |i| (0..3).map(move |j| 12 * i + 4 * j + k))).collect();
    assert_eq!(vals::<i64>(&p), want);
    let row = buf(vec![1.0f32, 2.0, 3.0], &[1, 3]);
    let e = run_ok(Op::Expand { shape: Shape::new(&[2, 3]) }, &[row]);
    assert_eq!(vals::<f32>(&e), [1.0, 2.0, 3.0, 1.0, 2.0, 3.0]);
    let col = buf(vec![true, false], &[2, 1]);
    let e = run_ok(Op::Expand { shape: Shape::new(&[2, 3]) }, &[col]);
    assert_eq!(vals::<bool>(&e), [true, true, true, false, false, false]);
    let r = run_ok(Op::Reshape { shape: Shape::new(&[3, 1, 2]) }, &[x]);
    assert_eq!(r.shape(), &Shape::new(&[3, 1, 2]));
    assert_eq!(vals::<i64>(&r), [0, 1, 2, 3, 4, 5]);
}

#[test]
fn gather_follows_torch() {
    let x = buf(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2]);
    let index = buf(vec![0i64, 0, 1, 0], &[2, 2]);
    assert_eq!(vals::<f32>(&run_ok(Op::Gather { axis: 1 }, &[x.clone(), index])), [1.0, 1.0, 4.0, 3.0]);
    // Along axis 0 with an index smaller than x off the axis.
    let x = buf((0..12).collect::<Vec<i32>>(), &[3, 4]);
    let index = buf(vec![2i64, 0, 1, 1, 0, 2], &[3, 2]);
    assert_eq!(vals::<i32>(&run_ok(Op::Gather { axis: 0 }, &[x, index])), [8, 1, 4, 5, 0, 9]);
}

#[test]
fn gather_rejects_out_of_range_indices() {
    let x = buf(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2]);
    for bad in [2i64, -1] {
        let index = buf(vec![0i64, bad, 1, 0], &[2, 2]);
        let err = run(Op::Gather { axis: 1 }, &[x.clone(), index]).unwrap_err();
        match &err {
            EvalError::IndexOutOfRange { op, index, axis, size, .. } => {
                assert_eq!((*op, *index, *axis, *size), ("gather", bad, 1, 2));
            }
            other => panic!("{other:?}"),
        }
        assert!(err
            .to_string()
            .contains(&format!("gather: index {bad} is out of bounds for dimension 1 with size 2")));
    }
}

#[test]
fn scatter_add_follows_torch() {
    let base = buf(vec![0.0f32; 5], &[5]);
    let index = buf(vec![0i64, 1, 0, 4], &[4]);
    let src = buf(vec![1.0f32, 2.0, 3.0, 4.0], &[4]);
    let out = run_ok(Op::ScatterAdd { axis: 0 }, &[base, index, src]);
    assert_eq!(vals::<f32>(&out), [4.0, 2.0, 0.0, 0.0, 4.0]);
    // torch.zeros(3, 3).scatter_add_(0, [[0, 1, 2], [0, 0, 0]], ones(2, 3)), on an i64 base of ones.
    let base = buf(vec![1i64; 9], &[3, 3]);
    let index = buf(vec![0i64, 1, 2, 0, 0, 0], &[2, 3]);
    let src = buf(vec![1i64; 6], &[2, 3]);
    let out = run_ok(Op::ScatterAdd { axis: 0 }, &[base, index, src]);
    assert_eq!(vals::<i64>(&out), [3, 2, 2, 1, 2, 1, 1, 1, 2]);
    // Along axis 1, with src narrower than base off the axis.
    let base = buf(vec![0i32; 6], &[3, 2]);
    let index = buf(vec![1i64, 1, 0, 1], &[2, 2]);
    let src = buf(vec![5i32, 6, 7, 8], &[2, 2]);
    let out = run_ok(Op::ScatterAdd { axis: 1 }, &[base, index, src]);
    assert_eq!(vals::<i32>(&out), [0, 11, 7, 8, 0, 0]);
}

#[test]
fn scatter_add_accumulates_in_the_dtype_in_index_order() {
    let src = vec![1e8f32, 3.0, 3.0, 3.0, 3.0];
    let sequential = src.iter().fold(0.0f32, |s, &x| s + x);
    let out = run_ok(
        Op::ScatterAdd { axis: 0 },
        &[buf(vec![0.0f32], &[1]), buf(vec![0i64; 5], &[5]), buf(src.clone(), &[5])],
    );
    assert_eq!(vals::<f32>(&out), [sequential]);
    assert_ne!(sequential, src.iter().map(|&x| x as f64).sum::<f64>() as f32);
}

#[test]
fn scatter_add_rejects_out_of_range_indices() {
    let args = [buf(vec![0i64; 3], &[3]), buf(vec![0i64, 3], &[2]), buf(vec![1i64, 1], &[2])];
    let err = run(Op::ScatterAdd { axis: 0 }, &args).unwrap_err();
    assert!(
        matches!(err, EvalError::IndexOutOfRange { op: "scatter_add", index: 3, axis: 0, size: 3, .. }),
        "{err:?}"
    );
}

#[test]
fn iota_counts_along_its_axis() {
    let op = Op::Iota { ty: TensorType::new(DType::I64, [2, 3]), axis: 1 };
    assert_eq!(vals::<i64>(&run_ok(op, &[])), [0, 1, 2, 0, 1, 2]);
    let op = Op::Iota { ty: TensorType::new(DType::F32, [2, 3]), axis: 0 };
    assert_eq!(vals::<f32>(&run_ok(op, &[])), [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
    let op = Op::Iota { ty: TensorType::new(DType::I32, [4]), axis: 0 };
    assert_eq!(vals::<i32>(&run_ok(op, &[])), [0, 1, 2, 3]);
}

#[test]
fn const_splats_and_where_selects() {
    let op = Op::Const { value: Scalar::Float(1.5), ty: TensorType::new(DType::F64, [2, 2]) };
    assert_eq!(vals::<f64>(&run_ok(op, &[])), [1.5; 4]);
    let op = Op::Const { value: Scalar::Int(-3), ty: TensorType::new(DType::I32, []) };
    assert_eq!(vals::<i32>(&run_ok(op, &[])), [-3]);
    let c = buf(vec![true, false, true], &[3]);
    let out = run_ok(Op::Where, &[c, buf(vec![1i64, 2, 3], &[3]), buf(vec![-1i64, -2, -3], &[3])]);
    assert_eq!(vals::<i64>(&out), [1, -2, 3]);
}

fn rand(dtype: DType, shape: &[usize], seed: u64, offset: u64) -> Buffer {
    // The seed and offset are graph inputs: runtime values, as realization passes them.
    let word = |bits: u64| buf(vec![bits as i64], &[]);
    run_ok(Op::Rand { ty: TensorType::new(dtype, Shape::new(shape)) }, &[word(seed), word(offset)])
}

#[test]
fn rand_is_uniform_deterministic_and_counter_based() {
    let a = vals::<f32>(&rand(DType::F32, &[1000], 42, 0));
    assert!(a.iter().all(|v| (0.0..1.0).contains(v)));
    assert_eq!(a, vals::<f32>(&rand(DType::F32, &[1000], 42, 0)));
    for (i, &v) in a.iter().enumerate() {
        assert_eq!(v, random::uniform_f32(42, i as u64));
    }
    // Element i draws counter offset + i, whatever the shape.
    let shifted = vals::<f32>(&rand(DType::F32, &[2, 495], 42, 5));
    assert_eq!(shifted[..], a[5..995]);
    let other = vals::<f32>(&rand(DType::F32, &[1000], 42, 1000));
    assert!(a.iter().zip(&other).filter(|(x, y)| x == y).count() < 5);
    let reseeded = vals::<f32>(&rand(DType::F32, &[1000], 43, 0));
    assert!(a.iter().zip(&reseeded).filter(|(x, y)| x == y).count() < 5);
    let d = vals::<f64>(&rand(DType::F64, &[1000], 42, 0));
    assert!(d.iter().all(|v| (0.0..1.0).contains(v)));
    for (i, &v) in d.iter().enumerate() {
        assert_eq!(v, random::uniform_f64(42, i as u64));
    }
}

#[test]
fn rand_mean_is_near_one_half() {
    // The mean of 10^5 uniforms has standard deviation 0.29 / 316 ≈ 0.0009.
    let n = 100_000;
    let f = vals::<f32>(&rand(DType::F32, &[n], 7, 123));
    let mean = f.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
    assert!((mean - 0.5).abs() < 0.005, "f32 mean {mean}");
    let d = vals::<f64>(&rand(DType::F64, &[n], 7, 123));
    let mean = d.iter().sum::<f64>() / n as f64;
    assert!((mean - 0.5).abs() < 0.005, "f64 mean {mean}");
    // Tail bins are populated evenly too.
    let low = d.iter().filter(|&&v| v < 0.1).count();
    assert!((9_000..11_000).contains(&low), "{low} of {n} below 0.1");
}

#[test]
fn graphs_chain_nodes_and_repeat_outputs() {
    // y = exp(x) * x - x; outputs (y, y, x); an unused input is accepted.
    let ty = TensorType::new(DType::F64, [3]);
    let mut g = Graph::new("chain");
    let x = g.add_input("x", ty.clone());
    let _unused = g.add_input("unused", TensorType::new(DType::I32, [2]));
    let e = g.add(Op::Unary(UnaryOp::Exp), &[x]).unwrap();
    let m = g.add(Op::Binary(BinaryOp::Mul), &[e, x]).unwrap();
    let y = g.add(Op::Binary(BinaryOp::Sub), &[m, x]).unwrap();
    g.set_outputs(vec![y, y, x]);
    let xs = vec![0.0f64, 1.0, -2.0];
    let out = eval(&g, &[buf(xs.clone(), &[3]), buf(vec![0i32, 0], &[2])]).unwrap();
    let want: Vec<f64> = xs.iter().map(|&v| v.exp() * v - v).collect();
    assert_eq!(out.len(), 3);
    assert_eq!(vals::<f64>(&out[0]), want);
    assert_eq!(vals::<f64>(&out[1]), want);
    assert_eq!(vals::<f64>(&out[2]), xs);
}

fn one_input_graph(ty: TensorType) -> Graph {
    let mut g = Graph::new("g");
    let x = g.add_input("x", ty);
    let y = g.add(Op::Unary(UnaryOp::Neg), &[x]).unwrap();
    g.set_outputs(vec![y]);
    g
}

#[test]
fn wrong_input_count_is_an_error() {
    let g = one_input_graph(TensorType::new(DType::F32, [2]));
    let err = eval(&g, &[]).unwrap_err();
    assert_eq!(err, EvalError::InputCount { expected: 1, got: 0 });
    assert_eq!(err.to_string(), "the graph takes 1 input(s) but 0 were given");
}

#[test]
fn wrong_input_type_is_an_error_naming_both_types() {
    let g = one_input_graph(TensorType::new(DType::F32, [2]));
    for given in [buf(vec![1.0f64, 2.0], &[2]), buf(vec![1.0f32, 2.0, 3.0], &[3])] {
        let err = eval(&g, std::slice::from_ref(&given)).unwrap_err();
        assert!(matches!(&err, EvalError::InputType { index: 0, name, .. } if name == "x"), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("%x") && text.contains("f32[2]") && text.contains(&given.ty().to_string()),
            "{text}"
        );
    }
}

#[test]
fn unverified_graphs_are_an_error() {
    let mut other = Graph::new("other");
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(other.add_input(format!("a{i}"), TensorType::new(DType::F32, [1])));
    }
    let mut g = Graph::new("g");
    let x = g.add_input("x", TensorType::new(DType::F32, [1]));
    g.set_outputs(vec![x, ids[4]]);
    let err = eval(&g, &[buf(vec![1.0f32], &[1])]).unwrap_err();
    assert!(matches!(err, EvalError::Verify(_)), "{err:?}");
    assert!(err.to_string().contains("output 1 (%4) does not exist"), "{err}");
}

#[test]
fn integer_errors_name_the_node_op_and_location() {
    let ty = TensorType::new(DType::I64, [2]);
    for (op, rhs, message) in [
        (BinaryOp::FloorDiv, 0, "integer division by zero"),
        (BinaryOp::Rem, 0, "integer remainder by zero"),
        (BinaryOp::Pow, -1, "integers to negative integer powers are not allowed"),
    ] {
        let mut g = Graph::new("g");
        let a = g.add_input("a", ty.clone());
        let b = g.add_input("b", ty.clone());
        let y = g.add_at(Op::Binary(op), &[a, b], Some("model.rs:7:3".into())).unwrap();
        g.set_outputs(vec![y]);
        let err = eval(&g, &[buf(vec![5i64, 6], &[2]), buf(vec![1i64, rhs], &[2])]).unwrap_err();
        assert_eq!(
            err,
            EvalError::Arithmetic { node: y, op: op.spec().name, message, loc: Some("model.rs:7:3".into()) }
        );
        assert_eq!(err.to_string(), format!("{y}: {}: {message} (at model.rs:7:3)", op.spec().name));
    }
}

#[test]
fn accepts_tables_cover_the_samples() {
    // The generic tests above skip dtypes an op rejects; make sure each op is exercised.
    for op in UnaryOp::ALL {
        assert!(DType::ALL.iter().any(|&d| op.spec().accepts.admits(d)), "{op:?}");
    }
    for op in BinaryOp::ALL {
        assert!(DType::ALL.iter().any(|&d| op.spec().accepts.admits(d)), "{op:?}");
    }
    assert!(Accepts::Any.admits(DType::Bool));
}
