//! Random graphs for differential tests: a few inputs of random dtypes and small shapes, then
//! elementwise, broadcast, movement, reduction, matmul and library ops drawn at random, with
//! transcendental functions kept to arguments of moderate size. Shared by
//! `tests/differential.rs` (the CPU backend) and `tests/cuda_emulation.rs` (the CUDA C on the
//! emulation).

use crate::rng::Rng;
use tenjit::ir::types::broadcast_shapes;
use tenjit::ir::{
    ArgOp, BinaryOp, Buffer, DType, Graph, NodeId, Op, ReduceOp, Scalar, Shape, TensorType, UnaryOp,
};

fn random_shape(r: &mut Rng) -> Vec<usize> {
    let rank = r.below(4);
    (0..rank).map(|_| 1 + r.below(5)).collect()
}

fn random_buffer(r: &mut Rng, ty: &TensorType) -> Buffer {
    let n = ty.shape.numel();
    let values: Vec<Scalar> = (0..n)
        .map(|_| match ty.dtype {
            DType::Bool => Scalar::Bool(r.chance(0.5)),
            DType::I32 | DType::I64 => Scalar::Int(r.below(11) as i64 - 5),
            DType::F16 | DType::BF16 | DType::F32 | DType::F64 => {
                Scalar::Float((r.below(60_001) as f64 - 30_000.0) / 10_000.0)
            }
        })
        .collect();
    Buffer::from_scalars(ty.dtype, ty.shape.clone(), values)
}

/// A bound on a result given a bound on the operand.
type Bound = fn(f64) -> f64;

/// A bound on `|op(x)|` given a bound `b` on `|x|`, for the unary ops that have a useful one
/// (others are unbounded as far as this test knows).
const UNARY_BOUNDS: &[(UnaryOp, Bound)] = &[
    (UnaryOp::Neg, |b| b + 1.0),
    (UnaryOp::Abs, |b| b + 1.0),
    (UnaryOp::Floor, |b| b + 1.0),
    (UnaryOp::Ceil, |b| b + 1.0),
    (UnaryOp::Sqrt, f64::sqrt),
    (UnaryOp::Exp, f64::exp),
    (UnaryOp::Log, |_| 200.0),
    (UnaryOp::Sin, |_| 1.0),
    (UnaryOp::Cos, |_| 1.0),
    (UnaryOp::Tanh, |_| 1.0),
    (UnaryOp::Not, |_| 1.0),
];

/// An upper bound of |value| of a node (infinite when unknown). Transcendental functions are
/// only applied to arguments of moderate size: a 1-ulp difference in `exp(x)` for a large `x`
/// becomes a large difference in `cos(exp(x))`, which is rounding, not a bug, and would
/// drown real disagreements. (Large arguments are covered by the vector-math sweeps.)
fn bound(g: &Graph, op: &Op, args: &[NodeId]) -> f64 {
    let b = |i: usize| magnitude(g, args[i]);
    match op {
        Op::Input { .. } => 5.0,
        Op::Const { value, .. } => value.as_f64().abs(),
        Op::Size { .. } => f64::INFINITY,
        Op::Iota { ty, .. } => ty.shape.numel() as f64,
        Op::Rand { .. } => 1.0,
        Op::Unary(u) => UNARY_BOUNDS.iter().find(|(o, _)| o == u).map_or(f64::INFINITY, |(_, f)| f(b(0))),
        Op::Binary(op) => match op {
            BinaryOp::Add | BinaryOp::Sub => b(0) + b(1),
            BinaryOp::Mul => b(0) * b(1),
            BinaryOp::Maximum | BinaryOp::Minimum => b(0).max(b(1)),
            BinaryOp::Rem => b(1),
            BinaryOp::Div | BinaryOp::Pow | BinaryOp::FloorDiv => f64::INFINITY,
            _ => 1.0,
        },
        Op::Where => b(1).max(b(2)),
        Op::Cast { .. } => b(0) + 1.0,
        Op::Reduce { op, axes } => {
            let n: usize = axes.iter().map(|&a| g.ty(args[0]).shape.dims()[a]).product();
            match op {
                ReduceOp::Sum => b(0) * n as f64,
                ReduceOp::Prod => b(0).max(1.0).powi(n as i32),
                ReduceOp::Max | ReduceOp::Min => b(0),
            }
        }
        Op::ArgReduce { .. } => 1e3,
        Op::Matmul => b(0) * b(1) * g.ty(args[0]).shape.dims().last().copied().unwrap_or(1) as f64,
        Op::Reshape { .. } | Op::Permute { .. } | Op::Expand { .. } | Op::Slice { .. } | Op::Pad { .. } => {
            b(0)
        }
        Op::Concat { .. } => (0..args.len()).map(b).fold(0.0, f64::max),
        Op::Gather { .. } => b(0),
        Op::ScatterAdd { .. } => f64::INFINITY,
        Op::Conv(_) | Op::Loop(_) => f64::INFINITY,
        Op::Pool(_) => b(0).max(b(1)),
    }
}

fn magnitude(g: &Graph, n: NodeId) -> f64 {
    let args = g.args(n);
    bound(g, g.op(n), &args)
}

/// Adds `op(args)` if its type rule accepts it.
fn try_add(g: &mut Graph, pool: &mut Vec<NodeId>, op: Op, args: &[NodeId]) -> Option<NodeId> {
    let moderate = |i: usize, limit: f64| magnitude(g, args[i]) <= limit;
    let allowed = match &op {
        Op::Unary(UnaryOp::Sin | UnaryOp::Cos) => moderate(0, 100.0),
        Op::Unary(UnaryOp::Exp) => moderate(0, 20.0),
        Op::Unary(UnaryOp::Tanh | UnaryOp::Log) => moderate(0, 1e4),
        Op::Binary(BinaryOp::Pow) => moderate(0, 10.0) && moderate(1, 4.0),
        _ => true,
    };
    if !allowed {
        return None;
    }
    let n = g.add(op, args).ok()?;
    pool.push(n);
    Some(n)
}

/// Makes `b` broadcast-compatible with `a`'s shape and dtype (or returns None).
fn partner(g: &mut Graph, pool: &mut Vec<NodeId>, a: NodeId, b: NodeId) -> Option<NodeId> {
    let (ta, tb) = (g.ty(a).clone(), g.ty(b).clone());
    let b = if ta.dtype == tb.dtype { b } else { try_add(g, pool, Op::Cast { dtype: ta.dtype }, &[b])? };
    if tb.shape == ta.shape {
        return Some(b);
    }
    let out = broadcast_shapes(&ta.shape, &tb.shape)?;
    if out != ta.shape {
        return None;
    }
    let lead = ta.shape.rank() - tb.shape.rank();
    let mut padded = vec![1; lead];
    padded.extend_from_slice(tb.shape.dims());
    let b = try_add(g, pool, Op::Reshape { shape: Shape::from(padded) }, &[b])?;
    try_add(g, pool, Op::Expand { shape: ta.shape.clone() }, &[b])
}

/// A random graph and inputs for it.
pub fn random_graph(r: &mut Rng) -> (Graph, Vec<Buffer>) {
    let mut g = Graph::new("case");
    let mut pool = Vec::new();
    let mut inputs = Vec::new();
    for i in 0..1 + r.below(3) {
        let dtype =
            *r.pick(&[DType::F32, DType::F32, DType::F32, DType::F64, DType::I32, DType::I64, DType::Bool]);
        let ty = TensorType::new(dtype, random_shape(r));
        inputs.push(random_buffer(r, &ty));
        pool.push(g.add_input(format!("x{i}"), ty));
    }
    for _ in 0..3 + r.below(8) {
        let a = *r.pick(&pool);
        let ta = g.ty(a).clone();
        let rank = ta.shape.rank();
        match r.below(16) {
            0..=2 => {
                let op = *r.pick(&UnaryOp::ALL);
                try_add(&mut g, &mut pool, Op::Unary(op), &[a]);
            }
            3..=5 => {
                let op = *r.pick(&BinaryOp::ALL);
                let b = *r.pick(&pool);
                if let Some(b) = partner(&mut g, &mut pool, a, b) {
                    try_add(&mut g, &mut pool, Op::Binary(op), &[a, b]);
                }
            }
            6 => {
                let value = match ta.dtype {
                    DType::Bool => Scalar::Bool(r.chance(0.5)),
                    DType::I32 | DType::I64 => Scalar::Int(r.below(7) as i64 - 3),
                    _ => Scalar::Float(*r.pick(&[0.5, -2.0, 3.0, 0.0, 1e-3])),
                };
                if let Some(c) = try_add(&mut g, &mut pool, Op::Const { value, ty: ta.clone() }, &[]) {
                    let op = *r.pick(&[
                        BinaryOp::Add,
                        BinaryOp::Mul,
                        BinaryOp::Maximum,
                        BinaryOp::Lt,
                        BinaryOp::Sub,
                    ]);
                    try_add(&mut g, &mut pool, Op::Binary(op), &[a, c]);
                }
            }
            7 => {
                let dtype = *r.pick(&DType::ALL);
                try_add(&mut g, &mut pool, Op::Cast { dtype }, &[a]);
            }
            8 | 9 if rank > 0 => {
                let mut axes: Vec<usize> = (0..rank).filter(|_| r.chance(0.5)).collect();
                if axes.is_empty() {
                    axes.push(r.below(rank));
                }
                let op = *r.pick(&ReduceOp::ALL);
                try_add(&mut g, &mut pool, Op::Reduce { op, axes: axes.into() }, &[a]);
            }
            10 if rank > 0 => {
                let mut perm: Vec<usize> = (0..rank).collect();
                for i in (1..rank).rev() {
                    perm.swap(i, r.below(i + 1));
                }
                try_add(&mut g, &mut pool, Op::Permute { perm: perm.into() }, &[a]);
            }
            11 => {
                let n = ta.shape.numel();
                let shape = if r.chance(0.5) || n == 0 { vec![n] } else { vec![1, n] };
                try_add(&mut g, &mut pool, Op::Reshape { shape: Shape::from(shape) }, &[a]);
            }
            12 if rank > 0 => {
                let mut start = smallvec::SmallVec::new();
                let mut step = smallvec::SmallVec::new();
                let mut size = smallvec::SmallVec::new();
                for &d in ta.shape.dims() {
                    let s: isize = *r.pick(&[1, 2, -1, -2]);
                    let first = if s > 0 { r.below(d) } else { d - 1 - r.below(d) };
                    let room = if s > 0 { (d - first - 1) / s as usize } else { first / (-s) as usize };
                    start.push(first as isize);
                    step.push(s);
                    size.push(1 + r.below(room + 1));
                }
                try_add(&mut g, &mut pool, Op::Slice { start, step, size, bounds: None }, &[a]);
            }
            13 if rank == 2 && ta.dtype != DType::Bool => {
                let k = ta.shape.dims()[1];
                let ty = TensorType::new(ta.dtype, [k, 1 + r.below(4)]);
                inputs.push(random_buffer(r, &ty));
                let b = g.add_input(format!("x{}", inputs.len() - 1), ty);
                try_add(&mut g, &mut pool, Op::Matmul, &[a, b]);
            }
            14 if rank > 0 && ta.dtype != DType::Bool => {
                let axis = r.below(rank);
                if ta.shape.dims()[axis] > 0 {
                    try_add(
                        &mut g,
                        &mut pool,
                        Op::ArgReduce { op: *r.pick(&[ArgOp::ArgMax, ArgOp::ArgMin]), axis },
                        &[a],
                    );
                }
            }
            15 => {
                let b = *r.pick(&pool);
                let (cond, x) = (b, a);
                if g.ty(cond).dtype == DType::Bool && g.ty(cond).shape == ta.shape {
                    let y = try_add(&mut g, &mut pool, Op::Unary(UnaryOp::Neg), &[x]).unwrap_or(x);
                    try_add(&mut g, &mut pool, Op::Where, &[cond, x, y]);
                }
            }
            _ => {}
        }
    }
    let last = *pool.last().expect("a node");
    let mut outs = vec![last];
    if r.chance(0.3) {
        outs.push(*r.pick(&pool));
    }
    g.set_outputs(outs);
    (g, inputs)
}
