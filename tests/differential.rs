//! Differential testing: random graphs of elementwise, broadcast, movement, reduction,
//! matmul and library ops, compiled by the CPU backend and compared with the reference
//! interpreter. A failing case is shrunk (nodes are cut into inputs while it keeps failing)
//! and printed as a small text-IR graph with its inputs.
//!
//! 500 graphs in the normal run; `TENJIT_DIFF_CASES=N` runs more, `TENJIT_DIFF_SEED=S` another
//! stream.

use tenjit::ir::interp;
use tenjit::ir::types::broadcast_shapes;
use tenjit::ir::{
    ArgOp, BinaryOp, Buffer, DType, Graph, NodeId, Op, ReduceOp, Scalar, Shape, TensorType, UnaryOp,
};

#[path = "common/rng.rs"]
mod rng;
use rng::Rng;

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
            DType::F32 | DType::F64 => Scalar::Float((r.below(60_001) as f64 - 30_000.0) / 10_000.0),
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

fn random_graph(r: &mut Rng) -> (Graph, Vec<Buffer>) {
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
                try_add(&mut g, &mut pool, Op::Slice { start, step, size }, &[a]);
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

/// Whether two results agree: ints and bools exactly, floats to a relative tolerance: `f32`'s
/// when any value of the graph is `f32` (its rounding shows through later casts), else `f64`'s;
/// two zeros only with the same sign.
fn agree(a: &Buffer, b: &Buffer, f32_graph: bool) -> Result<(), String> {
    if a.ty() != b.ty() {
        return Err(format!("types {} and {}", a.ty(), b.ty()));
    }
    let tol = if f32_graph { 2e-4 } else { 1e-9 };
    for i in 0..a.numel() {
        let (x, y) = (a.scalar(i), b.scalar(i));
        let ok = match (x, y) {
            // NaN payloads may differ; the sign of a zero may not (max/min and every exact op
            // give the interpreter's zero, and rounding never flips the sign of a zero result).
            (Scalar::Float(x), Scalar::Float(y)) if x == 0.0 && y == 0.0 => x.to_bits() == y.to_bits(),
            (Scalar::Float(x), Scalar::Float(y)) => {
                (x.is_nan() && y.is_nan()) || x == y || (x - y).abs() <= tol * y.abs().max(1.0)
            }
            _ => x == y,
        };
        if !ok {
            return Err(format!("element {i}: compiled {x:?}, interpreter {y:?}"));
        }
    }
    Ok(())
}

/// Runs one case both ways: `Ok` if they agree (or both fail), else the disagreement.
fn check(g: &Graph, inputs: &[Buffer]) -> Result<(), String> {
    let expected = interp::eval(g, inputs);
    let got = tenjit::run_graph(g, inputs);
    match (got, expected) {
        (Ok(got), Ok(expected)) => {
            let f32_graph = g.nodes().iter().any(|&n| g.ty(n).dtype == DType::F32);
            for (i, (a, b)) in got.iter().zip(&expected).enumerate() {
                agree(a, b, f32_graph).map_err(|e| format!("output {i}: {e}"))?;
            }
            Ok(())
        }
        (Err(_), Err(_)) => Ok(()),
        // Fused code computes only the elements the outputs need, so an integer division by
        // zero in an element that a slice drops is reported by the interpreter (which computes
        // every element of every node) and not by compiled code. That is the documented
        // difference; every other failure must agree.
        (Ok(_), Err(interp::EvalError::Arithmetic { .. })) => Ok(()),
        (Ok(_), Err(e)) => Err(format!("the interpreter failed ({e}) but the compiled graph ran")),
        (Err(e), Ok(_)) => Err(format!("the compiled graph failed: {e}")),
    }
}

/// Shrinks a failing case: cuts nodes into inputs (with their interpreted values) while the
/// failure persists, and drops outputs that do not matter.
fn shrink(mut g: Graph, mut inputs: Vec<Buffer>) -> (Graph, Vec<Buffer>) {
    loop {
        let mut progressed = false;
        let order = g.live_order().expect("acyclic");
        for &n in order.iter().rev() {
            if matches!(g.op(n), Op::Input { .. }) || g.outputs().contains(&n) {
                continue;
            }
            let Some((cut, cut_inputs)) = cut_node(&g, &inputs, n) else { continue };
            if check(&cut, &cut_inputs).is_err() {
                (g, inputs) = (cut, cut_inputs);
                progressed = true;
                break;
            }
        }
        if !progressed {
            return (g, inputs);
        }
    }
}

/// `g` with node `n` replaced by a new input holding `n`'s interpreted value.
fn cut_node(g: &Graph, inputs: &[Buffer], n: NodeId) -> Option<(Graph, Vec<Buffer>)> {
    let mut probe = g.clone();
    probe.set_outputs(vec![n]);
    let value = interp::eval(&probe, inputs).ok()?.remove(0);
    let mut out = Graph::new("shrunk");
    let mut map = std::collections::HashMap::new();
    let mut new_inputs = Vec::new();
    for m in g.live_order()? {
        let id = match g.op(m) {
            _ if m == n => {
                new_inputs.push(value.clone());
                out.add_input(format!("x{}", new_inputs.len() - 1), g.ty(m).clone())
            }
            Op::Input { index, .. } => {
                new_inputs.push(inputs[*index].clone());
                out.add_input(format!("x{}", new_inputs.len() - 1), g.ty(m).clone())
            }
            op => {
                let args: Vec<NodeId> = g.args(m).iter().map(|a| map[a]).collect();
                out.add(op.clone(), &args).ok()?
            }
        };
        map.insert(m, id);
    }
    out.set_outputs(g.outputs().iter().map(|o| map[o]).collect());
    Some((out, new_inputs))
}

#[test]
fn compiled_graphs_agree_with_the_interpreter() {
    let cases: usize = std::env::var("TENJIT_DIFF_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(500);
    let seed: u64 = std::env::var("TENJIT_DIFF_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0x5eed);
    let mut r = Rng(seed.max(1));
    tenjit::set_backend(tenjit::Backend::Cpu);
    let compiled_before = tenjit::compile_count();
    let mut kernels = 0;
    let mut grouped = 0;
    for case in 0..cases {
        let (g, inputs) = random_graph(&mut r);
        let list = tenjit::compile_stages(&g).map(|s| s.kernels).unwrap_or_default();
        kernels += list.lines().count();
        grouped += usize::from(list.contains("group g"));
        // Row groups run in their default blocks, or a row at a time split over the cores,
        // so block and thread boundaries fall inside these small graphs too.
        tenjit::backend::cpu::set_block_rows((case % 2 == 1).then_some(1 + case % 3));
        if let Err(e) = check(&g, &inputs) {
            let (small, small_inputs) = shrink(g, inputs);
            let shown: Vec<String> = small_inputs.iter().map(|b| format!("{b}")).collect();
            panic!(
                "case {case} (seed {seed}): {e}\nshrunk to: {}\n{small}\ninputs:\n{}",
                check(&small, &small_inputs).unwrap_err(),
                shown.join("\n")
            );
        }
    }
    // The cases really were compiled (not answered by the interpreter or one cached program).
    let compiled = tenjit::compile_count() - compiled_before;
    assert!(compiled >= cases / 2, "only {compiled} of {cases} cases compiled");
    tenjit::backend::cpu::set_block_rows(None);
    assert!(grouped >= cases / 50, "only {grouped} of {cases} cases have a row group");
    println!("{cases} cases, {compiled} compilations, {kernels} steps, {grouped} with row groups");
}
