//! The op × dtype corpus: every primitive op on every dtype it accepts, compiled for the CPU
//! and compared with the reference interpreter: integers and bools bitwise, floats within
//! stated tolerances (bitwise for + - * / sqrt, comparisons, casts and movement; a few ulp for
//! transcendental functions and reassociated float sums and matrix products).

use tenjit::ir::ops::{Accepts, Accuracy};
use tenjit::ir::{
    interp, ArgOp, BinaryOp, Buffer, DType, Graph, Op, ReduceOp, Scalar, Shape, TensorType, UnaryOp,
};

/// Deterministic test values of a dtype: specials first, then a spread.
fn values(dtype: DType, n: usize) -> Buffer {
    let specials_f =
        [0.0, -0.0, 1.0, -1.0, 0.5, -2.5, 3.0, 1e-3, 7.25, -6.0, f64::INFINITY, f64::NEG_INFINITY, f64::NAN];
    let v: Vec<Scalar> = (0..n)
        .map(|i| match dtype {
            DType::Bool => Scalar::Bool(i % 3 == 1),
            DType::I32 | DType::I64 => Scalar::Int(((i * 7) % 13) as i64 - 6),
            DType::F16 | DType::BF16 | DType::F32 | DType::F64 => {
                if i < specials_f.len() {
                    Scalar::Float(specials_f[i])
                } else {
                    Scalar::Float(((i * 37) % 101) as f64 / 10.0 - 5.0)
                }
            }
        })
        .collect();
    Buffer::from_scalars(dtype, Shape::new(&[n]), v)
}

/// How many ulp apart two results are: NaNs are equal whatever their payloads; `+0` and `-0`
/// are one ulp apart, so an exact op must get the sign of a zero right.
fn ulps_apart(a: f64, b: f64, dtype: DType) -> u64 {
    if a.is_nan() && b.is_nan() || a.to_bits() == b.to_bits() {
        return 0;
    }
    if a == b {
        return 1;
    }
    if a.is_nan() || b.is_nan() || a.is_infinite() || b.is_infinite() {
        return u64::MAX;
    }
    match dtype {
        DType::F32 => ((a as f32).to_bits() as i64 - (b as f32).to_bits() as i64).unsigned_abs(),
        _ => (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs(),
    }
}

/// The ulp allowed by an op row's accuracy class.
fn max_ulp(accuracy: Accuracy) -> u64 {
    match accuracy {
        Accuracy::Exact => 0,
        Accuracy::Ulp(n) => n.into(),
    }
}

/// Runs `g` both ways and compares, allowing `max_ulp` for floats.
fn check(name: &str, g: &Graph, inputs: &[Buffer], max_ulp: u64) {
    let want = interp::eval(g, inputs);
    let got = tenjit::run_graph(g, inputs);
    let (want, got) = match (want, got) {
        (Ok(w), Ok(g)) => (w, g),
        (Err(_), Err(_)) => return,
        (w, g) => panic!("{name}: interpreter {w:?}, compiled {g:?}"),
    };
    for (w, g) in want.iter().zip(&got) {
        assert_eq!(w.ty(), g.ty(), "{name}");
        for i in 0..w.numel() {
            let (a, b) = (g.scalar(i), w.scalar(i));
            let ok = match (a, b) {
                (Scalar::Float(x), Scalar::Float(y)) => ulps_apart(x, y, w.dtype()) <= max_ulp,
                _ => a == b,
            };
            assert!(ok, "{name}: element {i}: compiled {a:?}, interpreter {b:?} (up to {max_ulp} ulp)");
        }
    }
}

fn accepted(a: Accepts) -> Vec<DType> {
    DType::ALL.into_iter().filter(|&d| a.admits(d)).collect()
}

#[test]
fn every_unary_op_on_every_dtype() {
    tenjit::set_backend(tenjit::Backend::Cpu);
    for op in UnaryOp::ALL {
        for dtype in accepted(op.spec().accepts) {
            let mut g = Graph::new("u");
            let x = g.add_input("x", TensorType::new(dtype, [37]));
            let y = g.add(Op::Unary(op), &[x]).unwrap();
            g.set_outputs(vec![y]);
            check(
                &format!("{} {dtype}", op.spec().name),
                &g,
                &[values(dtype, 37)],
                max_ulp(op.spec().accuracy),
            );
        }
    }
}

#[test]
fn every_binary_op_on_every_dtype() {
    for op in BinaryOp::ALL {
        for dtype in accepted(op.spec().accepts) {
            let mut g = Graph::new("b");
            let x = g.add_input("x", TensorType::new(dtype, [6, 7]));
            let y = g.add_input("y", TensorType::new(dtype, [6, 7]));
            let z = g.add(Op::Binary(op), &[x, y]).unwrap();
            g.set_outputs(vec![z]);
            let a = values(dtype, 42).reshaped(Shape::new(&[6, 7])).unwrap();
            // The second operand: the same values, rotated, so every pair of specials meets.
            let rotated: Vec<Scalar> = (0..42).map(|i| a.scalar((i * 5 + 3) % 42)).collect();
            let b = Buffer::from_scalars(dtype, Shape::new(&[6, 7]), rotated);
            check(&format!("{} {dtype}", op.spec().name), &g, &[a, b], max_ulp(op.spec().accuracy));
        }
    }
}

#[test]
fn every_cast() {
    for from in DType::ALL {
        for to in DType::ALL {
            let mut g = Graph::new("c");
            let x = g.add_input("x", TensorType::new(from, [40]));
            let y = g.add(Op::Cast { dtype: to }, &[x]).unwrap();
            g.set_outputs(vec![y]);
            check(&format!("cast {from} -> {to}"), &g, &[values(from, 40)], 0);
        }
    }
}

#[test]
fn every_reduction_on_every_dtype() {
    for op in ReduceOp::ALL {
        for dtype in [DType::I32, DType::I64, DType::F32, DType::F64] {
            for axes in [vec![0], vec![1], vec![0, 1]] {
                let mut g = Graph::new("r");
                let x = g.add_input("x", TensorType::new(dtype, [5, 9]));
                let y = g.add(Op::Reduce { op, axes: smallvec::SmallVec::from_slice(&axes) }, &[x]).unwrap();
                g.set_outputs(vec![y]);
                let data = values(dtype, 45).reshaped(Shape::new(&[5, 9])).unwrap();
                check(&format!("{} {dtype} axes {axes:?}", op.name()), &g, &[data], 2);
            }
        }
    }
    for op in [ArgOp::ArgMax, ArgOp::ArgMin] {
        for dtype in [DType::I32, DType::I64, DType::F32, DType::F64] {
            let mut g = Graph::new("a");
            let x = g.add_input("x", TensorType::new(dtype, [5, 9]));
            let y = g.add(Op::ArgReduce { op, axis: 1 }, &[x]).unwrap();
            g.set_outputs(vec![y]);
            check(
                &format!("{} {dtype}", op.name()),
                &g,
                &[values(dtype, 45).reshaped(Shape::new(&[5, 9])).unwrap()],
                0,
            );
        }
    }
}

#[test]
fn movement_matmul_and_library_ops_on_every_dtype() {
    for dtype in DType::ALL {
        let ty = TensorType::new(dtype, [3, 4]);
        let data = values(dtype, 12).reshaped(Shape::new(&[3, 4])).unwrap();
        let cases: Vec<(&str, Op)> = vec![
            ("permute", Op::Permute { perm: smallvec::SmallVec::from_slice(&[1, 0]) }),
            ("reshape", Op::Reshape { shape: Shape::new(&[2, 6]) }),
            (
                "slice",
                Op::Slice {
                    start: smallvec::SmallVec::from_slice(&[2, 3]),
                    step: smallvec::SmallVec::from_slice(&[-1, -2]),
                    size: smallvec::SmallVec::from_slice(&[2, 2]),
                    bounds: None,
                },
            ),
            (
                "pad",
                Op::Pad {
                    lo: smallvec::SmallVec::from_slice(&[1, 0]),
                    hi: smallvec::SmallVec::from_slice(&[0, 2]),
                },
            ),
        ];
        for (name, op) in cases {
            let mut g = Graph::new("m");
            let x = g.add_input("x", ty.clone());
            let y = g.add(op, &[x]).unwrap();
            g.set_outputs(vec![y]);
            check(&format!("{name} {dtype}"), &g, std::slice::from_ref(&data), 0);
        }
        let mut g = Graph::new("cat");
        let x = g.add_input("x", ty.clone());
        let y = g.add(Op::Concat { axis: 1 }, &[x, x]).unwrap();
        g.set_outputs(vec![y]);
        check(&format!("concat {dtype}"), &g, std::slice::from_ref(&data), 0);

        let mut g = Graph::new("gather");
        let x = g.add_input("x", ty.clone());
        let i = g.add_input("i", TensorType::new(DType::I64, [2, 4]));
        let y = g.add(Op::Gather { axis: 0 }, &[x, i]).unwrap();
        g.set_outputs(vec![y]);
        let idx = Buffer::from_vec(vec![2i64, 0, 1, 1, 0, 2, 2, 0], [2, 4]).unwrap();
        check(&format!("gather {dtype}"), &g, &[data.clone(), idx], 0);

        if dtype != DType::Bool {
            let mut g = Graph::new("mm");
            let a = g.add_input("a", ty.clone());
            let b = g.add_input("b", TensorType::new(dtype, [4, 5]));
            let y = g.add(Op::Matmul, &[a, b]).unwrap();
            g.set_outputs(vec![y]);
            let finite = |n: usize, shape: &[usize]| {
                let v: Vec<Scalar> = (0..n).map(|i| Scalar::Float(((i * 7) % 11) as f64 - 5.0)).collect();
                Buffer::from_scalars(dtype, Shape::new(shape), v)
            };
            check(&format!("matmul {dtype}"), &g, &[finite(12, &[3, 4]), finite(20, &[4, 5])], 0);
        }
    }
}
