//! `f16` and `bf16` tensors: casts and their rounding (ties to even, NaN, infinities, `f16`
//! subnormals, overflow), printing as PyTorch prints them, `.npy` and safetensors round trips,
//! compiled programs against the reference interpreter, and gradients.
//!
//! The interpreter computes a 16-bit op in `f32` and rounds its result to the format; compiled
//! code keeps values in `f32` inside a fused kernel and rounds where they are cast or stored.
//! So a cast or a single op compiles to the interpreter's bits, and a fused chain agrees to a
//! few units in the last place of the format: [`TOL_BF16`] and [`TOL_F16`].

use tenjit::half::{bf16, f16};
use tenjit::ir::{interp, BinaryOp, Buffer, DType, Graph, Op, ReduceOp, TensorType, UnaryOp};
use tenjit::prelude::*;

/// The relative tolerance of a fused bf16 chain against the interpreter: bf16 keeps 8
/// significant bits (a unit in the last place is 2^-7 relative at most), and a value kept in
/// `f32` where the interpreter rounds it differs by at most half of that per op; a few ops and
/// a sum stay below 4 units.
const TOL_BF16: f64 = 4.0 / 128.0;
/// The same for `f16`'s 11 significant bits.
const TOL_F16: f64 = 4.0 / 1024.0;

fn close(got: &[f32], want: &[f32], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let (g, w) = (g as f64, w as f64);
        let ok = (g.is_nan() && w.is_nan()) || g == w || (g - w).abs() <= tol * w.abs().max(1.0);
        assert!(ok, "{what}: element {i}: compiled {g}, interpreter {w}");
    }
}

fn bf16_bits(xs: &[f32]) -> Vec<u16> {
    Tensor::from_vec(xs.to_vec(), [xs.len()])
        .bfloat16()
        .to_vec::<bf16>()
        .iter()
        .map(|x| x.to_bits())
        .collect()
}

fn f16_bits(xs: &[f32]) -> Vec<u16> {
    Tensor::from_vec(xs.to_vec(), [xs.len()]).half().to_vec::<f16>().iter().map(|x| x.to_bits()).collect()
}

#[test]
fn bf16_casts_round_to_nearest_even() {
    let tie_down = 1.0 + 2f32.powi(-8); // halfway between 1 and 1 + 2^-7: to 1 (even)
    let tie_up = 1.0 + 3.0 * 2f32.powi(-8); // halfway between 1 + 2^-7 and 1 + 2^-6: up
    let above = 1.0 + 2f32.powi(-8) + 2f32.powi(-20);
    let got = bf16_bits(&[1.0, tie_down, tie_up, above, -2.5, f32::MAX, f32::INFINITY, -0.0, 1e-40]);
    assert_eq!(
        got,
        [
            0x3f80, 0x3f80, 0x3f82, 0x3f81, 0xc020, 0x7f80, // f32::MAX rounds up to infinity
            0x7f80, 0x8000, 0x0001, // an f32 subnormal keeps its high bits
        ]
    );
    // NaN stays NaN (quiet), whatever its payload.
    let nan = f32::from_bits(0x7f80_0001);
    let back = Tensor::from_vec(vec![nan, -f32::NAN], [2]).bfloat16().to_vec::<f32>();
    assert!(back.iter().all(|x| x.is_nan()), "{back:?}");
    // Widening is exact: bf16 -> f32 -> bf16 is the identity on every finite value.
    let all: Vec<bf16> = (0..=0xffffu16).map(bf16::from_bits).filter(|x| x.is_finite()).collect();
    let n = all.len();
    let round_trip = Tensor::from_vec(all.clone(), [n]).float().bfloat16().to_vec::<bf16>();
    assert!(round_trip.iter().zip(&all).all(|(a, b)| a.to_bits() == b.to_bits()));
}

#[test]
fn f16_casts_round_to_nearest_even_with_subnormals() {
    let unit = 2f32.powi(-24); // the smallest subnormal
    let got = f16_bits(&[
        1.0,
        1.0 + 2f32.powi(-11), // tie: to 1 (even)
        1.0 + 3.0 * 2f32.powi(-11),
        65504.0,
        65519.0,
        65520.0, // the midpoint past the largest finite f16: to infinity
        -1e6,
        unit,
        unit / 2.0,     // a tie between 0 and the smallest subnormal: 0
        unit * 1.5,     // a tie between 1 and 2 units: 2 (even)
        unit * 2.5,     // between 2 and 3 units: 2 (even)
        unit * 1023.0,  // the largest subnormal
        2f32.powi(-14), // the smallest normal
        unit * 1023.75, // rounds up into the smallest normal
        -0.0,
    ]);
    assert_eq!(
        got,
        [
            0x3c00, 0x3c00, 0x3c02, 0x7bff, 0x7bff, 0x7c00, 0xfc00, 0x0001, 0x0000, 0x0002, 0x0002, 0x03ff,
            0x0400, 0x0400, 0x8000,
        ]
    );
    let back = Tensor::from_vec(vec![f32::NAN], [1]).half().to_vec::<f32>();
    assert!(back[0].is_nan());
    // f16 -> f32 -> f16 is the identity on every finite value, subnormals included.
    let all: Vec<f16> = (0..=0xffffu16).map(f16::from_bits).filter(|x| x.is_finite()).collect();
    let n = all.len();
    let round_trip = Tensor::from_vec(all.clone(), [n]).float().half().to_vec::<f16>();
    assert!(round_trip.iter().zip(&all).all(|(a, b)| a.to_bits() == b.to_bits()));
    // Integers convert through f32, as torch does.
    assert_eq!(Tensor::arange(2050).half().to_vec::<f32>()[2049], 2048.0);
    assert_eq!(tensor!([true, false]).bfloat16().to_vec::<f32>(), [1.0, 0.0]);
    assert_eq!(tensor!([2.75, -2.75]).bfloat16().to_dtype(DType::I64).to_vec::<i64>(), [2, -2]);
}

#[test]
fn creation_and_promotion() {
    let z = Tensor::zeros([2, 2]).bfloat16();
    assert_eq!(z.dtype(), DType::BF16);
    let f = Tensor::full_dtype([3], 0.1, DType::F16);
    assert_eq!(f.to_vec::<f16>(), [f16::from_f32(0.1); 3]);
    let v = Tensor::from_vec(vec![bf16::from_f32(1.5), bf16::from_f32(-2.0)], [2]);
    assert_eq!(v.dtype(), DType::BF16);
    // Literals and scalars of the half types keep their dtype where the element type decides.
    let lit = tensor!([[f16::from_f32(0.5)], [f16::from_f32(-1.0)]]);
    assert_eq!((lit.dtype(), lit.shape()), (DType::F16, &[2, 1][..]));
    assert_eq!(Tensor::full_dtype([2], bf16::from_f32(3.0), DType::BF16).to_vec::<f32>(), [3.0, 3.0]);
    assert_eq!(Tensor::scalar(bf16::from_f32(0.25)).item(), 0.25);
    // A Rust scalar is weak: bf16 * 2.0 stays bf16; bf16 + f32 tensor is f32; f16 + bf16 is f32.
    assert_eq!((&v * 2.0).dtype(), DType::BF16);
    assert_eq!((&v * 2.0).to_vec::<f32>(), [3.0, -4.0]);
    assert_eq!((&v + &tensor!([1.0, 1.0])).dtype(), DType::F32);
    assert_eq!((&v + &v.half()).dtype(), DType::F32);
    assert_eq!(Tensor::arange(3).bfloat16().to_vec::<i64>(), [0, 1, 2]);
    assert_eq!(v.sum().item(), -0.5);
}

#[test]
fn printing_matches_torch() {
    // Each expected string is what torch 2.15 prints for the same values.
    let t = |v: &[f32]| Tensor::from_vec(v.to_vec(), [v.len()]);
    assert_eq!(
        t(&[1.0, 2.5, 1.0 + 1.0 / 256.0]).bfloat16().to_string(),
        "tensor([1.0000, 2.5000, 1.0000], dtype=torch.bfloat16)"
    );
    assert_eq!(t(&[1.0, 2.0]).half().to_string(), "tensor([1., 2.], dtype=torch.float16)");
    assert_eq!(
        t(&[0.1, -3.3, 1000.5]).half().to_string(),
        "tensor([ 9.9976e-02, -3.3008e+00,  1.0005e+03], dtype=torch.float16)"
    );
    assert_eq!(
        t(&[0.1, -3.3, 1000.5]).bfloat16().to_string(),
        "tensor([ 1.0010e-01, -3.2969e+00,  1.0000e+03], dtype=torch.bfloat16)"
    );
    assert_eq!(
        Tensor::from_vec(vec![f32::NAN, f32::INFINITY, -0.0, 6e-8], [2, 2]).half().to_string(),
        "tensor([[       nan,        inf],\n        [-0.0000e+00, 5.9605e-08]], dtype=torch.float16)"
    );
    assert_eq!(
        t(&[65519.0, 65520.0, 3.4e38]).half().to_string(),
        "tensor([65504.,    inf,    inf], dtype=torch.float16)"
    );
    assert_eq!(Tensor::zeros([0]).bfloat16().to_string(), "tensor([], dtype=torch.bfloat16)");
    assert_eq!(Tensor::full_dtype([], 2.0, DType::F16).to_string(), "tensor(2., dtype=torch.float16)");
}

#[test]
fn npy_and_safetensors_round_trips() {
    let dir = std::env::temp_dir().join(format!("tenjit-half-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let h = Tensor::from_vec(vec![0.5f32, -1.25, 65504.0, 6e-8, f32::INFINITY, -0.0], [2, 3]).half();
    let path = dir.join("h.npy");
    h.save_npy(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert!(String::from_utf8_lossy(&bytes[..64]).contains("'descr': '<f2'"));
    let back = Tensor::load_npy(&path).unwrap();
    assert_eq!(back.dtype(), DType::F16);
    assert_eq!(back.shape(), &[2, 3]);
    assert_eq!(back.to_vec::<f16>(), h.to_vec::<f16>());
    // bf16 has no NumPy dtype: saving one says so and names the dtype.
    let err = h.bfloat16().save_npy(dir.join("b.npy")).unwrap_err().to_string();
    assert!(err.contains("torch.bfloat16") && err.contains("no NumPy dtype"), "{err}");

    let b = Tensor::from_vec(vec![1.0f32, -2.5, 3.0e38, 1e-3], [4]).bfloat16();
    let st = dir.join("w.safetensors");
    tenjit::save_safetensors(&st, &[("h", &h), ("b", &b)]).unwrap();
    let loaded = tenjit::load_safetensors(&st).unwrap();
    assert_eq!(loaded["h"].dtype(), DType::F16);
    assert_eq!(loaded["b"].dtype(), DType::BF16);
    assert_eq!(loaded["h"].to_vec::<f16>(), h.to_vec::<f16>());
    assert_eq!(loaded["b"].to_vec::<bf16>(), b.to_vec::<bf16>());
    std::fs::remove_dir_all(&dir).ok();
}

/// `y = sum(exp(a * b + c) / (1 + |a|), axis 1)`, `z = a @ w`, `m = max(a, axis 0)` of one
/// dtype: an elementwise chain, a reduction and a matrix product.
fn program(dtype: DType) -> (Graph, Vec<Buffer>) {
    let mut g = Graph::new("half");
    let t = |d: &[usize]| TensorType::new(dtype, d);
    let a = g.add_input("a", t(&[5, 7]));
    let b = g.add_input("b", t(&[5, 7]));
    let c = g.add_input("c", t(&[5, 7]));
    let w = g.add_input("w", t(&[7, 3]));
    let one = g.add(Op::Const { value: tenjit::ir::Scalar::Float(1.0), ty: t(&[5, 7]) }, &[]).unwrap();
    let ab = g.add(Op::Binary(BinaryOp::Mul), &[a, b]).unwrap();
    let abc = g.add(Op::Binary(BinaryOp::Add), &[ab, c]).unwrap();
    let e = g.add(Op::Unary(UnaryOp::Exp), &[abc]).unwrap();
    let abs = g.add(Op::Unary(UnaryOp::Abs), &[a]).unwrap();
    let den = g.add(Op::Binary(BinaryOp::Add), &[abs, one]).unwrap();
    let q = g.add(Op::Binary(BinaryOp::Div), &[e, den]).unwrap();
    let y = g.add(Op::Reduce { op: ReduceOp::Sum, axes: [1].into_iter().collect() }, &[q]).unwrap();
    let z = g.add(Op::Matmul, &[a, w]).unwrap();
    let m = g.add(Op::Reduce { op: ReduceOp::Max, axes: [0].into_iter().collect() }, &[a]).unwrap();
    g.set_outputs(vec![y, z, m]);
    let values = |n: usize, k: usize| -> Buffer {
        let v: Vec<f64> = (0..n).map(|i| (((i * 37 + k * 11) % 29) as f64 - 14.0) / 9.0).collect();
        let shape: &[usize] = if n == 21 { &[7, 3] } else { &[5, 7] };
        Buffer::from_scalars(dtype, shape.into(), v.into_iter().map(tenjit::ir::Scalar::Float))
    };
    let inputs = vec![values(35, 0), values(35, 1), values(35, 2), values(21, 3)];
    (g, inputs)
}

fn as_f32(b: &Buffer) -> Vec<f32> {
    b.scalars().iter().map(|s| s.as_f64() as f32).collect()
}

#[test]
fn compiled_programs_agree_with_the_interpreter() {
    for (dtype, tol) in [(DType::BF16, TOL_BF16), (DType::F16, TOL_F16)] {
        let (g, inputs) = program(dtype);
        let want = interp::eval(&g, &inputs).unwrap();
        let got = tenjit::run_graph(&g, &inputs).unwrap();
        for (i, (a, b)) in got.iter().zip(&want).enumerate() {
            assert_eq!(a.ty(), b.ty(), "{dtype} output {i}");
            close(&as_f32(a), &as_f32(b), tol, &format!("{dtype} output {i}"));
        }
        // The max of loaded values involves no arithmetic: the same bits.
        assert_eq!(got[2].scalars(), want[2].scalars(), "{dtype} max");
    }
}

#[test]
fn single_ops_compile_to_the_interpreters_bits() {
    // One exact op per kernel: loads widen exactly, f32 arithmetic is correctly rounded, and
    // the store rounds once, as the interpreter does.
    for dtype in [DType::BF16, DType::F16] {
        for op in [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div] {
            let mut g = Graph::new("op");
            let x = g.add_input("x", TensorType::new(dtype, [64]));
            let y = g.add_input("y", TensorType::new(dtype, [64]));
            let r = g.add(Op::Binary(op), &[x, y]).unwrap();
            g.set_outputs(vec![r]);
            let v = |k: u64| {
                let s = (0..64u64).map(|i| {
                    tenjit::ir::Scalar::Float(((i * 7919 + k * 104_729) % 2001) as f64 / 37.0 - 27.0)
                });
                Buffer::from_scalars(dtype, [64].into(), s)
            };
            let inputs = [v(1), v(2)];
            let want = interp::eval(&g, &inputs).unwrap();
            let got = tenjit::run_graph(&g, &inputs).unwrap();
            assert_eq!(got[0].scalars(), want[0].scalars(), "{dtype} {op:?}");
        }
    }
}

#[test]
fn gradients_of_bf16_tensors_are_bf16() {
    let x = Tensor::from_vec(vec![0.5f32, -1.0, 2.0, 0.25, 3.0, -0.75], [2, 3]).bfloat16().requires_grad_();
    let w = Tensor::from_vec(vec![1.5f32, -0.5, 0.25, 2.0, 1.0, -1.0], [3, 2]).bfloat16().requires_grad_();
    let loss = (x.matmul(&w).tanh() * 3.0).sum();
    assert_eq!(loss.dtype(), DType::BF16);
    loss.backward();
    let (gx, gw) = (x.grad().unwrap(), w.grad().unwrap());
    assert_eq!(gx.dtype(), DType::BF16);
    assert_eq!(gw.dtype(), DType::BF16);
    // The same in f32: d/dx sum(3 tanh(x w)) = 3 (1 - tanh²(x w)) wᵀ.
    let x32 = x.float().detach().requires_grad_();
    let w32 = w.float().detach().requires_grad_();
    (x32.matmul(&w32).tanh() * 3.0).sum().backward();
    close(&gx.to_vec::<f32>(), &x32.grad().unwrap().to_vec::<f32>(), TOL_BF16, "dx");
    close(&gw.to_vec::<f32>(), &w32.grad().unwrap().to_vec::<f32>(), TOL_BF16, "dw");
}

#[test]
fn long_sums_accumulate_in_f32() {
    // The CPU backend splits a reduction this long into two stages; for a 16-bit float both
    // run in f32, so the sum is the exact one rounded once to bf16, as torch's.
    let n = 1 << 18;
    let v: Vec<f32> = (0..n).map(|i| (i % 13) as f32 * 0.37 - 1.1).collect();
    let x = Tensor::from_vec(v, [n]).bfloat16();
    let exact: f64 = x.to_vec::<f32>().iter().map(|&v| v as f64).sum();
    let got = x.sum().item();
    // The f32 partial sums are far finer than bf16 (and the exact sum is not near a tie).
    let once = bf16::from_f32(exact as f32).to_f64();
    assert_eq!(got, once, "sum {got}, exact {exact}");
    let split = tenjit::inspect(&[&x.sum()]).kernels().to_string();
    assert!(split.lines().count() >= 2, "the sum runs in two stages:\n{split}");
}

#[test]
fn bf16_rows_of_every_length_compile_to_the_interpreters_bits() {
    // Vector rows of 4 lanes with a partial last vector: bf16 loads into an f32 result, an f32
    // load rounded to bf16, and a bf16 store, each a single rounding, so bit for bit.
    for n in [1usize, 3, 4, 5, 8, 13, 37] {
        let mut g = Graph::new("rows");
        let x = g.add_input("x", TensorType::new(DType::BF16, [n]));
        let y = g.add_input("y", TensorType::new(DType::F32, [n]));
        let xf = g.add(Op::Cast { dtype: DType::F32 }, &[x]).unwrap();
        let p = g.add(Op::Binary(BinaryOp::Mul), &[xf, y]).unwrap();
        let yb = g.add(Op::Cast { dtype: DType::BF16 }, &[y]).unwrap();
        let s = g.add(Op::Binary(BinaryOp::Add), &[yb, x]).unwrap();
        g.set_outputs(vec![p, s]);
        let specials = [f64::NAN, f64::INFINITY, -0.0, 3.4e38, 1.0 + 1.0 / 256.0, -2.5];
        let v = |k: usize| {
            (0..n).map(move |i| {
                let x = if (i + k).is_multiple_of(5) {
                    specials[(i + k) % 6]
                } else {
                    (i * 37 + k) as f64 / 7.0 - 3.0
                };
                tenjit::ir::Scalar::Float(x)
            })
        };
        let inputs = [
            Buffer::from_scalars(DType::BF16, [n].into(), v(1)),
            Buffer::from_scalars(DType::F32, [n].into(), v(2)),
        ];
        let want = interp::eval(&g, &inputs).unwrap();
        let got = tenjit::run_graph(&g, &inputs).unwrap();
        for (a, b) in got.iter().zip(&want) {
            let same = a.scalars().iter().zip(b.scalars()).all(|(p, q)| {
                let (p, q) = (p.as_f64(), q.as_f64());
                p.to_bits() == q.to_bits() || (p.is_nan() && q.is_nan())
            });
            assert!(same, "n={n}: {a} vs {b}");
        }
    }
}
