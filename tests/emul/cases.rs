//! The cases the emulation runs, by group: the op × dtype corpus, reductions around a warp and
//! a block, arg reductions with ties, NaN and signed zeros, softmax and Linear+ReLU (also in
//! `bf16` and `f16`), library
//! ops and their index errors, integer division by zero, Philox, random graphs. Inputs are
//! deterministic; `TENJIT_EMUL_CASES=N` ([`seeds`]) adds longer rows and a grid-stride
//! reduction.

use super::{Case, Tol};
use crate::cuda_corpus;
use crate::random_graphs;
use crate::rng::Rng;
use smallvec::SmallVec;
use tenjit::ir::{
    ArgOp, BinaryOp, Buffer, DType, Graph, NodeId, Op, ReduceOp, Scalar, Shape, TensorType, UnaryOp,
};

/// Every case of every group.
pub fn all() -> Vec<Case> {
    let mut cases = Vec::new();
    corpus_cases(&mut cases);
    reduction_cases(&mut cases);
    grid_stride_cases(&mut cases);
    arg_cases(&mut cases);
    signed_zero_arg_cases(&mut cases);
    model_cases(&mut cases);
    half_cases(&mut cases);
    library_cases(&mut cases);
    division_cases(&mut cases);
    random_cases(&mut cases);
    random_graph_cases(&mut cases);
    super::group_cases::group_cases(&mut cases);
    super::sized_cases::sized_cases(&mut cases);
    cases
}

fn ty(d: DType, s: &[usize]) -> TensorType {
    TensorType::new(d, Shape::new(s))
}

/// How many thread orders each group runs (`TENJIT_EMUL_CASES`, default 1).
pub fn seeds() -> u64 {
    std::env::var("TENJIT_EMUL_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(1).max(1)
}

/// `n` values of `d`: special values first (zeros of both signs, NaN, infinities), then a
/// spread; integers small and signed.
fn values(d: DType, n: usize, seed: u64) -> Buffer {
    const SPECIAL: [f64; 12] =
        [0.0, -0.0, 1.0, -1.0, 0.5, -2.5, 3.75, f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 1e30, -7e-3];
    let mut r = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let v: Vec<Scalar> = (0..n)
        .map(|i| match d {
            DType::Bool => Scalar::Bool(r.chance(0.5)),
            DType::I32 | DType::I64 => Scalar::Int(r.below(41) as i64 - 20),
            DType::F16 | DType::BF16 | DType::F32 | DType::F64 if i < SPECIAL.len() && seed % 2 == 1 => {
                Scalar::Float(SPECIAL[i])
            }
            DType::F16 | DType::BF16 | DType::F32 | DType::F64 => Scalar::Float(r.unit() * 10.0 - 5.0),
        })
        .collect();
    Buffer::from_scalars(d, Shape::new(&[n]), v)
}

fn shaped(b: Buffer, t: &TensorType) -> Buffer {
    b.reshaped(t.shape.clone()).unwrap()
}

/// Integers in `lo..hi`.
fn ints(d: DType, t: &TensorType, lo: i64, hi: i64, seed: u64) -> Buffer {
    let mut r = Rng(seed | 1);
    let v: Vec<Scalar> =
        (0..t.shape.numel()).map(|_| Scalar::Int(lo + r.below((hi - lo) as usize) as i64)).collect();
    Buffer::from_scalars(d, t.shape.clone(), v)
}

use cuda_corpus::graph_of as graph;

fn dims(v: &[usize]) -> SmallVec<[usize; 4]> {
    SmallVec::from_slice(v)
}

// ---- the cases -----------------------------------------------------------------------------

/// The op × dtype corpus, each input of its declared type (indices in range, divisors and
/// exponents positive, so the error paths are left to `division_by_zero`).
fn corpus_cases(out: &mut Vec<Case>) {
    for (name, g) in cuda_corpus::corpus(70) {
        let inputs: Vec<Buffer> = g
            .inputs()
            .iter()
            .enumerate()
            .map(|(k, (_, n))| {
                let t = g.ty(*n).clone();
                let seed = 7 + k as u64;
                if name.starts_with("gather") && k == 1 {
                    ints(DType::I64, &t, 0, 3, seed)
                } else if name.starts_with("scatter_add") && k == 1 {
                    ints(DType::I64, &t, 0, 4, seed)
                } else if k == 1
                    && t.dtype.is_int()
                    && ["floor_div", "rem", "pow"].iter().any(|p| name.starts_with(p))
                {
                    ints(t.dtype, &t, 1, 9, seed)
                } else {
                    shaped(values(t.dtype, t.shape.numel(), seed), &t)
                }
            })
            .collect();
        out.push(Case::new("corpus", name, g, inputs));
    }
}

/// Row lengths around a warp (32), a block (256) and the block-mode threshold.
fn row_lengths() -> Vec<usize> {
    let mut v = vec![5, 31, 32, 33, 64, 65, 255, 256, 257, 1000, 4097];
    if seeds() > 1 {
        v.extend([2, 63, 127, 129, 511, 513, 1023, 1025, 2049, 8191]);
    }
    v
}

fn reduction_cases(out: &mut Vec<Case>) {
    for n in row_lengths() {
        for op in ReduceOp::ALL {
            for d in [DType::F32, DType::F64, DType::I32, DType::I64] {
                let red = |axis: usize| Op::Reduce { op, axes: dims(&[axis]) };
                // Rows (axis 1) and columns (axis 0).
                for (shape, axis) in [([3, n], 1), ([n, 2], 0)] {
                    let t = ty(d, &shape);
                    let g =
                        graph("r", std::slice::from_ref(&t), |g, x| vec![g.add(red(axis), &[x[0]]).unwrap()]);
                    // Products of many elements stay finite near 1; odd seeds bring the specials.
                    let x = if op == ReduceOp::Prod && d.is_float() {
                        let v: Vec<Scalar> = (0..t.shape.numel())
                            .map(|i| Scalar::Float(1.0 + ((i % 7) as f64 - 3.0) / 64.0))
                            .collect();
                        Buffer::from_scalars(d, t.shape.clone(), v)
                    } else {
                        shaped(values(d, t.shape.numel(), n as u64), &t)
                    };
                    out.push(Case::new(
                        "reductions",
                        format!("{} {d} {shape:?} over {axis}", op.name()),
                        g,
                        vec![x],
                    ));
                }
            }
        }
        // The signed-zero bug: a row of -1s (1s for min) with +0 and -0 at indices 1 and 32, in
        // both orders.
        if n > 32 {
            for d in [DType::F32, DType::F64] {
                for (op, fill) in [(ReduceOp::Max, -1.0), (ReduceOp::Min, 1.0)] {
                    for (a, b) in [(0.0, -0.0), (-0.0, 0.0)] {
                        let t = ty(d, &[2, n]);
                        let mut v = vec![Scalar::Float(fill); 2 * n];
                        v[1] = Scalar::Float(a);
                        v[32] = Scalar::Float(b);
                        v[n + 1] = Scalar::Float(b);
                        v[n + n - 1] = Scalar::Float(a);
                        let x = Buffer::from_scalars(d, t.shape.clone(), v);
                        let g = graph("z", std::slice::from_ref(&t), |g, x| {
                            vec![g.add(Op::Reduce { op, axes: dims(&[1]) }, &[x[0]]).unwrap()]
                        });
                        out.push(Case::new(
                            "reductions",
                            format!("{} {d} of {n} with {a:?}, {b:?}", op.name()),
                            g,
                            vec![x],
                        ));
                    }
                }
            }
        }
    }
}

/// More output points than a grid has blocks (65,535), so a block reduces several rows in
/// turn and reuses its shared memory: run under `TENJIT_EMUL_CASES` only (about half a
/// minute per thread order: two million fibers).
fn grid_stride_cases(out: &mut Vec<Case>) {
    if seeds() == 1 {
        return;
    }
    let t = ty(DType::F32, &[65_600, 33]);
    let g = graph("wide", std::slice::from_ref(&t), |g, x| {
        vec![g.add(Op::Reduce { op: ReduceOp::Sum, axes: dims(&[1]) }, &[x[0]]).unwrap()]
    });
    let x = shaped(values(DType::F32, t.shape.numel(), 4), &t);
    out.push(Case::new("reductions", "sum f32 [65600, 33]", g, vec![x]));
}

/// Argmax/argmin with ties and NaN, alone and with the max (one kernel).
fn arg_cases(out: &mut Vec<Case>) {
    for n in [5, 33, 300, 4097] {
        for d in [DType::F32, DType::F64, DType::I32, DType::I64] {
            let t = ty(d, &[4, n]);
            // Few distinct values (ties everywhere); NaNs in row 1 (two) and row 3 (late).
            let mut r = Rng(n as u64);
            let mut v: Vec<Scalar> = (0..4 * n)
                .map(|_| {
                    if d.is_float() {
                        Scalar::Float(r.below(3) as f64 - 1.0)
                    } else {
                        Scalar::Int(r.below(3) as i64 - 1)
                    }
                })
                .collect();
            if d.is_float() {
                v[n + n / 2] = Scalar::Float(f64::NAN);
                v[n + n - 1] = Scalar::Float(f64::NAN);
                v[3 * n + n - 1] = Scalar::Float(f64::NAN);
                v[2 * n] = Scalar::Float(-0.0);
            }
            let x = Buffer::from_scalars(d, t.shape.clone(), v);
            for (arg, red) in [(ArgOp::ArgMax, ReduceOp::Max), (ArgOp::ArgMin, ReduceOp::Min)] {
                let g = graph("a", std::slice::from_ref(&t), |g, x| {
                    let m = g.add(Op::Reduce { op: red, axes: dims(&[1]) }, &[x[0]]).unwrap();
                    let i = g.add(Op::ArgReduce { op: arg, axis: 1 }, &[x[0]]).unwrap();
                    vec![m, i]
                });
                out.push(Case::new("arg", format!("{} {d} [4, {n}]", arg.name()), g, vec![x.clone()]));
                let g = graph("c", std::slice::from_ref(&t), |g, x| {
                    vec![g.add(Op::ArgReduce { op: arg, axis: 0 }, &[x[0]]).unwrap()]
                });
                out.push(Case::new("arg", format!("{} {d} [4, {n}] over 0", arg.name()), g, vec![x.clone()]));
            }
        }
    }
}

/// A max and an argmax in one kernel over rows whose extremum is a zero of both signs: the
/// index is the first zero's, the value the `max`'s (`+0`; `-0` for `min`) in any order.
fn signed_zero_arg_cases(out: &mut Vec<Case>) {
    for n in [5, 33, 300] {
        for d in [DType::F32, DType::F64] {
            for (arg, red, fill) in
                [(ArgOp::ArgMax, ReduceOp::Max, -1.0), (ArgOp::ArgMin, ReduceOp::Min, 1.0)]
            {
                let t = ty(d, &[2, n]);
                let mut v = vec![Scalar::Float(fill); 2 * n];
                v[1] = Scalar::Float(-0.0);
                v[n - 1] = Scalar::Float(0.0);
                v[n + 1] = Scalar::Float(0.0);
                v[2 * n - 1] = Scalar::Float(-0.0);
                let x = Buffer::from_scalars(d, t.shape.clone(), v);
                let g = graph("z", std::slice::from_ref(&t), |g, x| {
                    let m = g.add(Op::Reduce { op: red, axes: dims(&[1]) }, &[x[0]]).unwrap();
                    let i = g.add(Op::ArgReduce { op: arg, axis: 1 }, &[x[0]]).unwrap();
                    vec![m, i]
                });
                out.push(Case::new(
                    "arg",
                    format!("{} {d} [2, {n}] of signed zeros", arg.name()),
                    g,
                    vec![x],
                ));
            }
        }
    }
}

/// Row softmax (max, subtract, exp, sum, divide) and a Linear+ReLU layer.
fn model_cases(out: &mut Vec<Case>) {
    softmax_cases(out, "models", &[DType::F32, DType::F64], &[8, 33, 1000, 4097]);
    linear_relu_cases(out, "models", DType::F32);
}

/// Softmax and Linear+ReLU in `bf16` and `f16`: 16-bit loads and stores, `f32` arithmetic,
/// the matmul kernel, each compared with the interpreter to the formats' precision.
fn half_cases(out: &mut Vec<Case>) {
    softmax_cases(out, "half", &[DType::BF16, DType::F16], &[33, 1000]);
    linear_relu_cases(out, "half", DType::BF16);
    linear_relu_cases(out, "half", DType::F16);
}

/// Row softmax of `[4, n]` for each dtype and row length.
fn softmax_cases(out: &mut Vec<Case>, group: &'static str, dtypes: &[DType], lengths: &[usize]) {
    for &n in lengths {
        for &d in dtypes {
            let t = ty(d, &[4, n]);
            let g = graph("softmax", std::slice::from_ref(&t), |g, x| {
                let keep = |g: &mut Graph, v: NodeId| {
                    let r = g.add(Op::Reshape { shape: Shape::new(&[4, 1]) }, &[v]).unwrap();
                    g.add(Op::Expand { shape: Shape::new(&[4, n]) }, &[r]).unwrap()
                };
                let m = g.add(Op::Reduce { op: ReduceOp::Max, axes: dims(&[1]) }, &[x[0]]).unwrap();
                let m = keep(g, m);
                let s = g.add(Op::Binary(BinaryOp::Sub), &[x[0], m]).unwrap();
                let e = g.add(Op::Unary(UnaryOp::Exp), &[s]).unwrap();
                let sum = g.add(Op::Reduce { op: ReduceOp::Sum, axes: dims(&[1]) }, &[e]).unwrap();
                let sum = keep(g, sum);
                vec![g.add(Op::Binary(BinaryOp::Div), &[e, sum]).unwrap()]
            });
            let x = shaped(values(d, 4 * n, 2 + n as u64), &t);
            out.push(Case::new(group, format!("softmax {d} [4, {n}]"), g, vec![x]));
        }
    }
}

/// `relu(x @ w + b)` of dtype `d`.
fn linear_relu_cases(out: &mut Vec<Case>, group: &'static str, d: DType) {
    for (m, k, n) in [(8, 16, 4), (33, 70, 65)] {
        let (tx, tw, tb) = (ty(d, &[m, k]), ty(d, &[k, n]), ty(d, &[n]));
        let g = graph("linear_relu", &[tx.clone(), tw.clone(), tb.clone()], |g, x| {
            let y = g.add(Op::Matmul, &[x[0], x[1]]).unwrap();
            let b = g.add(Op::Reshape { shape: Shape::new(&[1, n]) }, &[x[2]]).unwrap();
            let b = g.add(Op::Expand { shape: Shape::new(&[m, n]) }, &[b]).unwrap();
            let y = g.add(Op::Binary(BinaryOp::Add), &[y, b]).unwrap();
            let zero = g.add(Op::Const { value: Scalar::Float(0.0), ty: ty(d, &[m, n]) }, &[]).unwrap();
            vec![g.add(Op::Binary(BinaryOp::Maximum), &[y, zero]).unwrap()]
        });
        let inputs = vec![
            shaped(values(d, m * k, 4), &tx),
            shaped(values(d, k * n, 6), &tw),
            shaped(values(d, n, 8), &tb),
        ];
        let name = if d == DType::F32 {
            format!("linear+relu {m}x{k}x{n}")
        } else {
            format!("linear+relu {d} {m}x{k}x{n}")
        };
        out.push(Case::new(group, name, g, inputs));
    }
}

/// Gather, scatter_add (many duplicate indices: the order of additions shows), concat, pad,
/// and the index errors of gather and scatter_add.
fn library_cases(out: &mut Vec<Case>) {
    for d in [DType::F32, DType::I64] {
        let (tb, ti, ts) = (ty(d, &[5, 300]), ty(DType::I64, &[5, 700]), ty(d, &[5, 700]));
        let g = graph("scatter", &[tb.clone(), ti.clone(), ts.clone()], |g, x| {
            vec![g.add(Op::ScatterAdd { axis: 1 }, &[x[0], x[1], x[2]]).unwrap()]
        });
        let src = if d == DType::F32 {
            // Magnitudes far apart, so a different order of additions changes the sum.
            let mut r = Rng(3);
            let v: Vec<Scalar> = (0..ts.shape.numel())
                .map(|_| Scalar::Float((r.unit() - 0.5) * 10f64.powi(r.below(12) as i32 - 4)))
                .collect();
            Buffer::from_scalars(d, ts.shape.clone(), v)
        } else {
            shaped(values(d, ts.shape.numel(), 3), &ts)
        };
        let base = shaped(values(d, tb.shape.numel(), 5), &tb);
        out.push(Case::new(
            "library",
            format!("scatter_add {d}"),
            g.clone(),
            vec![base.clone(), ints(DType::I64, &ti, 0, 7, 9), src.clone()],
        ));
        let mut bad = ints(DType::I64, &ti, 0, 300, 9).scalars();
        bad[1234] = Scalar::Int(300);
        let bad = Buffer::from_scalars(DType::I64, ti.shape.clone(), bad);
        out.push(Case::new("library", format!("scatter_add {d} out of range"), g, vec![base, bad, src]));

        let (tx, tg) = (ty(d, &[40, 9]), ty(DType::I64, &[300, 9]));
        let g = graph("gather", &[tx.clone(), tg.clone()], |g, x| {
            vec![g.add(Op::Gather { axis: 0 }, &[x[0], x[1]]).unwrap()]
        });
        let x = shaped(values(d, tx.shape.numel(), 11), &tx);
        out.push(Case::new(
            "library",
            format!("gather {d}"),
            g.clone(),
            vec![x.clone(), ints(DType::I64, &tg, 0, 40, 13)],
        ));
        out.push(Case::new(
            "library",
            format!("gather {d} out of range"),
            g,
            vec![x, ints(DType::I64, &tg, -1, 40, 13)],
        ));

        let (ta, tc) = (ty(d, &[300, 7]), ty(d, &[300, 2]));
        let g = graph("concat", &[ta.clone(), tc.clone()], |g, x| {
            let p = g.add(Op::Pad { lo: dims(&[1, 2]), hi: dims(&[3, 0]) }, &[x[0]]).unwrap();
            let c = g.add(Op::Concat { axis: 1 }, &[x[0], x[1], x[0]]).unwrap();
            vec![p, c]
        });
        let inputs =
            vec![shaped(values(d, ta.shape.numel(), 15), &ta), shaped(values(d, tc.shape.numel(), 17), &tc)];
        out.push(Case::new("library", format!("pad and concat {d}"), g, inputs));
    }
}

/// Integer division and remainder by zero and negative powers: the error word.
fn division_cases(out: &mut Vec<Case>) {
    for d in [DType::I32, DType::I64] {
        for op in [BinaryOp::FloorDiv, BinaryOp::Rem, BinaryOp::Pow] {
            let t = ty(d, &[3, 700]);
            let g = graph("div", &[t.clone(), t.clone()], |g, x| {
                vec![g.add(Op::Binary(op), &[x[0], x[1]]).unwrap()]
            });
            let a = ints(d, &t, -50, 50, 1);
            let mut b = ints(d, &t, 1, 9, 2).scalars();
            b[1500] = Scalar::Int(if op == BinaryOp::Pow { -2 } else { 0 });
            let b = Buffer::from_scalars(d, t.shape.clone(), b);
            out.push(Case::new(
                "division",
                format!("{} {d} failing", op.spec().name),
                g.clone(),
                vec![a.clone(), b],
            ));
            out.push(Case::new(
                "division",
                format!("{} {d}", op.spec().name),
                g,
                vec![a, ints(d, &t, 1, 9, 3)],
            ));
        }
        // MIN // -1 wraps, MIN % -1 is 0.
        let t = ty(d, &[4]);
        let min = if d == DType::I32 { i32::MIN as i64 } else { i64::MIN };
        let a = Buffer::from_scalars(d, t.shape.clone(), [min, min, 7, -7].map(Scalar::Int));
        let b = Buffer::from_scalars(d, t.shape.clone(), [-1, 3, -1, 2].map(Scalar::Int));
        let g = graph("wrap", &[t.clone(), t.clone()], |g, x| {
            vec![
                g.add(Op::Binary(BinaryOp::FloorDiv), &[x[0], x[1]]).unwrap(),
                g.add(Op::Binary(BinaryOp::Rem), &[x[0], x[1]]).unwrap(),
            ]
        });
        out.push(Case::new("division", format!("MIN by -1 {d}"), g, vec![a, b]));
    }
}

/// Philox random numbers, bit for bit, at offsets near a counter wrap.
fn random_cases(out: &mut Vec<Case>) {
    for d in [DType::F32, DType::F64] {
        for (shape, seed, offset) in [
            (vec![1000usize], 42u64, 0u64),
            (vec![7, 300], 0x0123_4567_89ab_cdef, u64::MAX - 1000),
            (vec![3, 5], 7, 1 << 32),
        ] {
            // The seed and offset as constants, and as runtime operands (as realization passes
            // them), drawn inside a fused kernel that scales the draw.
            let t = ty(d, &shape);
            let g = graph("rand", &[], |g, _| vec![g.add_rand(t.clone(), seed, offset).unwrap()]);
            out.push(Case::new("random", format!("rand {d} {shape:?} at {offset}"), g, vec![]));
            let word = ty(DType::I64, &[]);
            let g = graph("rand", &[word.clone(), word], |g, ids| {
                let r = g.add(Op::Rand { ty: t.clone() }, ids).unwrap();
                let two = g.add(Op::Const { value: Scalar::Float(2.0), ty: t.clone() }, &[]).unwrap();
                vec![g.add(Op::Binary(BinaryOp::Mul), &[r, two]).unwrap()]
            });
            let words = [seed, offset]
                .map(|w| Buffer::from_scalars(DType::I64, Shape::scalar(), vec![Scalar::Int(w as i64)]));
            out.push(Case::new(
                "random",
                format!("rand {d} {shape:?} at {offset}, runtime seed"),
                g,
                words.to_vec(),
            ));
        }
    }
}

/// Random graphs of `tests/differential.rs` (another stream), with its tolerances: `f32`'s
/// rounding shows through later casts.
fn random_graph_cases(out: &mut Vec<Case>) {
    let mut r = Rng(0xC0DA);
    for i in 0..150 * seeds() as usize {
        let (g, inputs) = random_graphs::random_graph(&mut r);
        let f32_graph = g.nodes().iter().any(|&n| g.ty(n).dtype == DType::F32);
        let mut case = Case::new("graphs", format!("random graph {i}:\n{g}"), g, inputs);
        case.tol = Tol::Rel(if f32_graph { 2e-4 } else { 1e-9 });
        case.dropped_errors = true;
        out.push(case);
    }
}
