//! The op × dtype corpus of the CUDA tests: every primitive op on every dtype it accepts (as
//! `tests/op_corpus.rs` enumerates them for the CPU), the ops it covers elsewhere (iota, rand,
//! where, scatter_add, special constants, the convolutions and
//! max pooling) and reductions long enough for
//! block reductions.
//! Shared by `tests/cuda_codegen.rs` (compiled to PTX here) and `tests/cuda_runtime.rs` (run
//! on a GPU).

use tenjit::ir::ops::{Accepts, ConvGeometry, ConvOp, ConvRole, PoolGeometry, PoolOp, PoolRole};
use tenjit::ir::{ArgOp, BinaryOp, DType, Graph, NodeId, Op, ReduceOp, Scalar, Shape, TensorType, UnaryOp};

pub fn accepted(a: Accepts) -> Vec<DType> {
    DType::ALL.into_iter().filter(|&d| a.admits(d)).collect()
}

/// A graph of inputs `x0, x1, …` of these types whose outputs `build` adds.
pub fn graph_of(
    name: &str,
    inputs: &[TensorType],
    build: impl FnOnce(&mut Graph, &[NodeId]) -> Vec<NodeId>,
) -> Graph {
    let mut g = Graph::new(name);
    let ids: Vec<NodeId> =
        inputs.iter().enumerate().map(|(i, t)| g.add_input(format!("x{i}"), t.clone())).collect();
    let outs = build(&mut g, &ids);
    g.set_outputs(outs);
    g
}

/// [`graph_of`] with one output.
pub fn graph(
    name: &str,
    inputs: &[TensorType],
    build: impl FnOnce(&mut Graph, &[NodeId]) -> NodeId,
) -> Graph {
    graph_of(name, inputs, |g, ids| vec![build(g, ids)])
}

pub fn one(op: Op, inputs: &[TensorType]) -> Graph {
    graph(op.name(), inputs, |g, ids| g.add(op.clone(), ids).unwrap())
}

/// The corpus, each graph with its name; the longer reductions have rows of `long_rows`
/// elements.
pub fn corpus(long_rows: usize) -> Vec<(String, Graph)> {
    let mut out = Vec::new();
    let ty = |d: DType, s: &[usize]| TensorType::new(d, Shape::new(s));
    for op in UnaryOp::ALL {
        for d in accepted(op.spec().accepts) {
            out.push((format!("{} {d}", op.spec().name), one(Op::Unary(op), &[ty(d, &[37])])));
        }
    }
    for op in BinaryOp::ALL {
        for d in accepted(op.spec().accepts) {
            out.push((
                format!("{} {d}", op.spec().name),
                one(Op::Binary(op), &[ty(d, &[6, 7]), ty(d, &[6, 7])]),
            ));
        }
    }
    for from in DType::ALL {
        for to in DType::ALL {
            out.push((format!("cast {from} {to}"), one(Op::Cast { dtype: to }, &[ty(from, &[40])])));
        }
    }
    let numeric = [DType::I32, DType::I64, DType::F32, DType::F64];
    for shape in [[5usize, 9], [40, long_rows]] {
        for op in ReduceOp::ALL {
            for d in numeric {
                for axes in [vec![0], vec![1], vec![0, 1]] {
                    let r = Op::Reduce { op, axes: smallvec::SmallVec::from_slice(&axes) };
                    out.push((format!("{} {d} {shape:?} {axes:?}", op.name()), one(r, &[ty(d, &shape)])));
                }
            }
        }
        for op in ArgOp::ALL {
            for d in numeric {
                for axis in [0, 1] {
                    let r = Op::ArgReduce { op, axis };
                    out.push((format!("{} {d} {shape:?} {axis}", op.name()), one(r, &[ty(d, &shape)])));
                }
            }
        }
    }
    // An empty sum and a 0-d reduction.
    out.push((
        "sum empty".into(),
        one(Op::Reduce { op: ReduceOp::Sum, axes: [1].into_iter().collect() }, &[ty(DType::F32, &[3, 0])]),
    ));
    for d in DType::ALL {
        let t = ty(d, &[3, 4]);
        let sv = |v: &[usize]| smallvec::SmallVec::from_slice(v);
        let si = |v: &[isize]| smallvec::SmallVec::from_slice(v);
        out.push((format!("permute {d}"), one(Op::Permute { perm: sv(&[1, 0]) }, std::slice::from_ref(&t))));
        out.push((
            format!("reshape {d}"),
            one(Op::Reshape { shape: Shape::new(&[2, 6]) }, std::slice::from_ref(&t)),
        ));
        let slice = Op::Slice { start: si(&[2, 3]), step: si(&[-1, -2]), size: sv(&[2, 2]), bounds: None };
        out.push((format!("slice {d}"), one(slice, std::slice::from_ref(&t))));
        out.push((
            format!("pad {d}"),
            one(Op::Pad { lo: sv(&[1, 0]), hi: sv(&[0, 2]) }, std::slice::from_ref(&t)),
        ));
        out.push((
            format!("concat {d}"),
            graph("cat", std::slice::from_ref(&t), |g, x| {
                g.add(Op::Concat { axis: 1 }, &[x[0], x[0]]).unwrap()
            }),
        ));
        out.push((
            format!("concat3 {d}"),
            one(Op::Concat { axis: 0 }, &[t.clone(), ty(d, &[1, 4]), t.clone()]),
        ));
        out.push((format!("gather {d}"), one(Op::Gather { axis: 0 }, &[t.clone(), ty(DType::I64, &[2, 4])])));
        let w = ty(d, &[4, 5]);
        out.push((format!("where {d}"), one(Op::Where, &[ty(DType::Bool, &[3, 4]), t.clone(), t.clone()])));
        if d != DType::Bool {
            out.push((format!("matmul {d}"), one(Op::Matmul, &[t.clone(), w])));
            out.push((
                format!("batched matmul {d}"),
                one(Op::Matmul, &[ty(d, &[2, 3, 4]), ty(d, &[2, 4, 5])]),
            ));
            let scatter = Op::ScatterAdd { axis: 1 };
            out.push((
                format!("scatter_add {d}"),
                one(scatter, &[t.clone(), ty(DType::I64, &[3, 6]), ty(d, &[3, 6])]),
            ));
            out.push((format!("iota {d}"), one(Op::Iota { ty: ty(d, &[3, 4]), axis: 1 }, &[])));
            let c = Op::Const { value: Scalar::Int(-7).cast(d), ty: ty(d, &[2]) };
            out.push((format!("const {d}"), one(c, &[])));
        }
    }
    // The three convolutions, with every geometry attribute away from its default.
    for d in [DType::F16, DType::BF16, DType::F32, DType::F64] {
        let geometry = ConvGeometry { stride: [2, 1], padding: [1, 2], dilation: [1, 2], groups: 2 };
        let conv = |role| Op::Conv(ConvOp { role, geometry });
        let (x, w, y) = (ty(d, &[2, 4, 7, 6]), ty(d, &[6, 2, 3, 2]), ty(d, &[2, 6, 4, 8]));
        out.push((format!("conv2d {d}"), one(conv(ConvRole::Forward), &[x.clone(), w.clone()])));
        out.push((format!("conv2d_input {d}"), one(conv(ConvRole::Input { size: [7, 6] }), &[y.clone(), w])));
        out.push((format!("conv2d_weight {d}"), one(conv(ConvRole::Weight { kernel: [3, 2] }), &[x, y])));
        let geometry = PoolGeometry { kernel: [3, 2], stride: [2, 1], padding: [1, 1] };
        let pool = |role| Op::Pool(PoolOp { role, geometry });
        let (x, g) = (ty(d, &[2, 3, 7, 6]), ty(d, &[2, 3, 4, 7]));
        out.push((format!("max_pool2d_select {d}"), one(pool(PoolRole::Select), &[x.clone(), x.clone()])));
        out.push((format!("max_pool2d_scatter {d}"), one(pool(PoolRole::Scatter), &[x, g])));
    }
    for d in [DType::F32, DType::F64] {
        let r = graph("rand", &[], |g, _| {
            g.add_rand(ty(d, &[5, 3]), 0x0123_4567_89ab_cdef, u64::MAX - 4).unwrap()
        });
        out.push((format!("rand {d}"), r));
        // The seed and offset as runtime operands (as realization passes them).
        let word = ty(DType::I64, &[]);
        let r = one(Op::Rand { ty: ty(d, &[5, 3]) }, &[word.clone(), word]);
        out.push((format!("rand {d} runtime seed"), r));
        for (v, name) in
            [(f64::NAN, "nan"), (f64::INFINITY, "inf"), (f64::NEG_INFINITY, "-inf"), (0.1, "0.1")]
        {
            let c = Op::Const { value: Scalar::Float(v).cast(d), ty: ty(d, &[2]) };
            out.push((format!("const {name} {d}"), one(c, &[])));
        }
    }
    for v in [i64::MIN, i64::MAX, i32::MIN as i64] {
        out.push((
            format!("const {v}"),
            one(Op::Const { value: Scalar::Int(v), ty: ty(DType::I64, &[2]) }, &[]),
        ));
    }
    out
}
