//! Random numbers drawn inside compiled kernels: the CPU backend gives the interpreter's
//! uniform draws bit for bit, for odd sizes, with seeds and offsets as runtime operands
//! (including 0 and values above `i64::MAX`); Box–Muller normals computed from them agree to
//! the rounding of `log`, `cos` and `sqrt` (the CPU's vector math is not the interpreter's
//! libm, so a normal may differ in its last bit); and a program drawing fresh numbers under
//! any seed compiles once.

use std::sync::Mutex;
use tenjit::ir::random::{uniform_f32, uniform_f64};
use tenjit::ir::{interp, BinaryOp, Buffer, DType, Graph, NodeId, Op, Scalar, Shape, TensorType, UnaryOp};
use tenjit::prelude::*;
use tenjit::Backend;

/// The generator and the compile count are process-wide: the tests take turns.
static TURN: Mutex<()> = Mutex::new(());

/// Seeds and offsets: 0, 1, near `i64::MAX`, above it, and near a counter wrap.
const WORDS: [u64; 6] = [0, 1, 0x0123_4567_89ab_cdef, i64::MAX as u64 + 3, u64::MAX - 2, u64::MAX];

/// An `i64[]` buffer holding the bits of `w`.
fn word(w: u64) -> Buffer {
    Buffer::from_vec(vec![w as i64], Shape::scalar()).unwrap()
}

/// The type of a seed or an offset.
fn word_ty() -> TensorType {
    TensorType::new(DType::I64, Shape::scalar())
}

/// A graph with inputs `%seed`, `%offset` (`i64[]`) and two outputs: the `rand` of `dtype`
/// and `shape`, and the Box–Muller normal of two draws (`Tensor::randn`'s formula).
fn draws(dtype: DType, shape: &[usize]) -> Graph {
    let mut g = Graph::new("draws");
    let (seed, offset) = (g.add_input("seed", word_ty()), g.add_input("offset", word_ty()));
    let ty = TensorType::new(dtype, Shape::new(shape));
    let add = |g: &mut Graph, op: Op, args: &[NodeId]| g.add(op, args).unwrap();
    let c = |g: &mut Graph, v: f64| {
        g.add(Op::Const { value: Scalar::Float(v).cast(dtype), ty: ty.clone() }, &[]).unwrap()
    };
    let u1 = add(&mut g, Op::Rand { ty: ty.clone() }, &[seed, offset]);
    // The second draw continues the counter: offset + numel, wrapping.
    let numel = Scalar::Int(shape.iter().product::<usize>() as i64);
    let n = add(&mut g, Op::Const { value: numel, ty: word_ty() }, &[]);
    let offset2 = add(&mut g, Op::Binary(BinaryOp::Add), &[offset, n]);
    let u2 = add(&mut g, Op::Rand { ty: ty.clone() }, &[seed, offset2]);
    // sqrt(-2 ln(1 - u1)) * cos(2π u2).
    let one = c(&mut g, 1.0);
    let m1 = add(&mut g, Op::Binary(BinaryOp::Sub), &[one, u1]);
    let ln = add(&mut g, Op::Unary(UnaryOp::Log), &[m1]);
    let m2 = c(&mut g, -2.0);
    let r2 = add(&mut g, Op::Binary(BinaryOp::Mul), &[ln, m2]);
    let r = add(&mut g, Op::Unary(UnaryOp::Sqrt), &[r2]);
    let tau = c(&mut g, std::f64::consts::TAU);
    let a = add(&mut g, Op::Binary(BinaryOp::Mul), &[u2, tau]);
    let cos = add(&mut g, Op::Unary(UnaryOp::Cos), &[a]);
    let normal = add(&mut g, Op::Binary(BinaryOp::Mul), &[r, cos]);
    g.set_outputs(vec![u1, normal]);
    g
}

/// Asserts that the normals `got` and `want` agree to a relative `tol`.
fn close(got: &Buffer, want: &Buffer, tol: f64, what: &str) {
    for (i, (a, b)) in got.scalars().iter().zip(want.scalars()).enumerate() {
        let (a, b) = (a.as_f64(), b.as_f64());
        assert!((a - b).abs() <= tol * b.abs().max(1.0), "{what}: normal {i}: compiled {a}, interpreter {b}");
    }
}

/// The bits of each element.
fn bits(b: &Buffer) -> Vec<u64> {
    b.scalars().iter().map(|s| s.as_f64().to_bits()).collect()
}

#[test]
fn compiled_draws_match_the_interpreter_bit_for_bit() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    for dtype in [DType::F32, DType::F64] {
        for shape in [&[1][..], &[7], &[4097], &[3, 5]] {
            let g = draws(dtype, shape);
            for (i, &seed) in WORDS.iter().enumerate() {
                // Each seed with two offsets, so that every word is an offset too.
                for offset in [WORDS[i], WORDS[(i + 2) % WORDS.len()]] {
                    let inputs = [word(seed), word(offset)];
                    let want = interp::eval(&g, &inputs).unwrap();
                    let got = tenjit::run_graph(&g, &inputs).unwrap();
                    let what = format!("{dtype} {shape:?} seed {seed:#x} offset {offset:#x}");
                    let first = bits(&got[0]).iter().zip(&bits(&want[0])).position(|(x, y)| x != y);
                    assert_eq!(first, None, "{what}: the uniform draw");
                    let tol = if dtype == DType::F32 { 1e-6 } else { 1e-13 };
                    close(&got[1], &want[1], tol, &what);
                    // The uniform draw is `tenjit_ir::random`'s contract.
                    let last = shape.iter().product::<usize>() as u64 - 1;
                    let contract = match dtype {
                        DType::F32 => uniform_f32(seed, offset.wrapping_add(last)) as f64,
                        _ => uniform_f64(seed, offset.wrapping_add(last)),
                    };
                    assert_eq!(want[0].scalars()[last as usize].as_f64(), contract, "{what}");
                }
            }
        }
    }
}

/// The draws of one step after `manual_seed(seed)`: counters 0, 1, 2.., 4099.. of the seed.
fn step(seed: u64) -> Vec<Vec<f32>> {
    tenjit::manual_seed(seed);
    let (a, b, c, n) = (Tensor::rand([1]), Tensor::rand([1]), Tensor::rand([4097]), Tensor::randn([7]));
    let a = a.to_vec::<f32>();
    let compiled = tenjit::compile_count();
    let b = b.to_vec::<f32>();
    assert_eq!(tenjit::compile_count(), compiled, "offset 1 compiled another program than offset 0");
    vec![a, b, (&c * 2.0).to_vec::<f32>(), n.to_vec::<f32>()]
}

#[test]
fn drawing_under_any_seed_compiles_once_and_matches_the_interpreter() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let mut counts = Vec::new();
    for seed in WORDS {
        let got = step(seed);
        counts.push(tenjit::compile_count());
        assert_eq!(got[0], [uniform_f32(seed, 0)]);
        assert_eq!(got[1], [uniform_f32(seed, 1)]);
        let want: Vec<f32> = (2..4099).map(|i| uniform_f32(seed, i) * 2.0).collect();
        assert_eq!(got[2], want, "seed {seed:#x}");
        tenjit::set_backend(Backend::Interp);
        let oracle = step(seed);
        tenjit::set_backend(Backend::Cpu);
        for (k, (g, o)) in got.iter().zip(&oracle).enumerate().take(3) {
            let first = g.iter().zip(o).position(|(a, b)| a.to_bits() != b.to_bits());
            assert_eq!(first, None, "seed {seed:#x}, draw {k}: compiled {g:?}, interpreter {o:?}");
        }
        for (a, b) in got[3].iter().zip(&oracle[3]) {
            assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "seed {seed:#x}: normal {a} vs {b}");
        }
    }
    assert!(counts.windows(2).all(|w| w[0] == w[1]), "a new seed or offset recompiled: {counts:?}");
}
