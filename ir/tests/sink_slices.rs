//! Tests of the `sink-slices` pass: hand-written cases that pin where a slice ends up (and
//! where it must stay), and random chains of the ops it sinks through, ended by a random slice,
//! whose interpreter results must stay the same bit for bit.

use tenjit_ir::interp::eval;
use tenjit_ir::ops::Dims;
use tenjit_ir::passes::sink_slices::SinkSlices;
use tenjit_ir::passes::Pass;
use tenjit_ir::text::{parse, print};
use tenjit_ir::{
    verify, BinaryOp, Buffer, DType, Graph, NodeId, Op, ReduceOp, Scalar, Shape, TensorType, UnaryOp,
};

mod common;
use common::{graphs, Rng};

/// Runs the pass on `text`'s graph, checks the interpreter's results are unchanged on random
/// inputs, and returns the printed result.
fn sunk(text: &str) -> String {
    let before = parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let mut g = before.clone();
    SinkSlices.run(&mut g);
    verify(&g).unwrap_or_else(|e| panic!("{e}\n{}", print(&g)));
    let mut r = Rng::new(7);
    let inputs = random_inputs(&before, &mut r);
    assert_eq!(
        scalars(&eval(&before, &inputs).unwrap()),
        scalars(&eval(&g, &inputs).unwrap()),
        "{}",
        print(&g)
    );
    print(&g)
}

fn random_inputs(g: &Graph, r: &mut Rng) -> Vec<Buffer> {
    g.inputs()
        .iter()
        .map(|(_, id)| {
            let ty = g.ty(*id);
            let values: Vec<Scalar> = (0..ty.shape.numel())
                .map(|_| match ty.dtype {
                    DType::Bool => Scalar::Bool(r.chance(2)),
                    DType::I32 | DType::I64 => Scalar::Int(r.below(19) as i64 - 9).cast(ty.dtype),
                    _ => Scalar::Float((r.next() >> 11) as f64 / (1u64 << 53) as f64 * 8.0 - 4.0)
                        .cast(ty.dtype),
                })
                .collect();
            Buffer::from_scalars(ty.dtype, ty.shape.concrete(), values)
        })
        .collect()
}

fn scalars(bufs: &[Buffer]) -> Vec<(TensorType, Vec<Scalar>)> {
    bufs.iter().map(|b| (b.ty().clone(), b.scalars())).collect()
}

#[test]
fn the_last_row_of_a_linear_layer_is_one_row_of_products() {
    // `model(x)[:, -1]`: the matmul and the activation run on one row.
    let out = sunk(
        "graph @g(%x: f32[1,6,4], %w: f32[4,3]) {
  %0 = reshape %x, shape=[6,4] : f32[6,4]
  %1 = matmul %0, %w : f32[6,3]
  %2 = reshape %1, shape=[1,6,3] : f32[1,6,3]
  %3 = tanh %2 : f32[1,6,3]
  %4 = slice %3, start=[0,5,0], step=[1,1,1], size=[1,1,3] : f32[1,1,3]
  return %4
}",
    );
    assert!(out.contains("matmul") && out.contains(": f32[1,3]") && !out.contains("f32[6,3]"), "{out}");
    assert!(out.contains("slice %x, start=[0,5,0]"), "{out}");
}

#[test]
fn slices_sink_through_reductions_permutes_and_expands() {
    let out = sunk(
        "graph @g(%x: f32[4,5,6], %b: f32[1,5]) {
  %0 = sum %x, axes=[2] : f32[4,5]
  %1 = expand %b, shape=[4,5] : f32[4,5]
  %2 = add %0, %1 : f32[4,5]
  %3 = permute %2, perm=[1,0] : f32[5,4]
  %4 = slice %3, start=[4,3], step=[-2,-1], size=[2,2] : f32[2,2]
  return %4
}",
    );
    assert!(out.contains("slice %x, start=[3,4,0], step=[-1,-2,1], size=[2,2,6]"), "{out}");
    assert!(out.contains("slice %b, start=[0,4], step=[1,-2], size=[1,2]"), "{out}");
}

#[test]
fn a_value_used_elsewhere_keeps_the_slice_above_it() {
    let text = "graph @g(%x: f32[4,4], %w: f32[4,4]) {
  %0 = matmul %x, %w : f32[4,4]
  %1 = exp %0 : f32[4,4]
  %2 = slice %1, start=[0,0], step=[1,1], size=[1,4] : f32[1,4]
  return %2, %0
}";
    let out = sunk(text);
    assert!(out.contains("matmul %x, %w : f32[4,4]") && out.contains("slice %0"), "{out}");
}

#[test]
fn two_paths_to_one_value_meet_in_one_slice() {
    // Layer norm's centred value is used twice (squared, and divided): both uses are sliced,
    // the two slices are one node, and it sinks on through the shared value.
    let out = sunk(
        "graph @g(%x: f32[3,8]) {
  %0 = exp %x : f32[3,8]
  %1 = mul %0, %0 : f32[3,8]
  %2 = sum %1, axes=[1] : f32[3]
  %3 = reshape %2, shape=[3,1] : f32[3,1]
  %4 = expand %3, shape=[3,8] : f32[3,8]
  %5 = div %0, %4 : f32[3,8]
  %6 = slice %5, start=[2,0], step=[1,1], size=[1,8] : f32[1,8]
  return %6
}",
    );
    assert_eq!(out.matches("slice").count(), 1, "{out}");
    assert!(out.contains("slice %x, start=[2,0]"), "{out}");
}

#[test]
fn reshapes_that_mix_the_sliced_axis_keep_the_slice() {
    let out = sunk(
        "graph @g(%x: f32[6,4]) {
  %0 = exp %x : f32[6,4]
  %1 = reshape %0, shape=[4,6] : f32[4,6]
  %2 = slice %1, start=[1,0], step=[1,1], size=[1,6] : f32[1,6]
  return %2
}",
    );
    assert!(out.contains("slice %1") || out.contains("reshape %0"), "{out}");
    assert!(out.contains("exp %x : f32[6,4]"), "{out}");
}

/// One random step on the chain's value `x`: an op the pass sinks through (or a `pad`, which
/// it must not), sometimes using a second input or an earlier value of the chain.
fn step(g: &mut Graph, r: &mut Rng, x: NodeId, earlier: &[NodeId]) -> Option<NodeId> {
    let ty = g.ty(x).clone();
    let dims = ty.shape.dims().to_vec();
    let rank = dims.len();
    match r.below(10) {
        0 => g.add(Op::Unary(r.pick(&[UnaryOp::Exp, UnaryOp::Neg, UnaryOp::Tanh])), &[x]).ok(),
        1 => {
            let other = earlier.iter().copied().find(|&e| g.ty(e) == &ty && e != x).unwrap_or(x);
            g.add(Op::Binary(r.pick(&[BinaryOp::Add, BinaryOp::Mul, BinaryOp::Sub])), &[x, other]).ok()
        }
        2 => g.add(Op::Permute { perm: graphs::permutation(r, rank) }, &[x]).ok(),
        3 if rank >= 1 => {
            let axis = r.below(rank);
            let op = if r.chance(2) {
                Op::Reduce { op: r.pick(&[ReduceOp::Sum, ReduceOp::Max]), axes: Dims::from_slice(&[axis]) }
            } else {
                Op::ArgReduce { op: tenjit_ir::ArgOp::ArgMax, axis }
            };
            let y = g.add(op, &[x]).ok()?;
            // Keep the chain in floats.
            g.add(Op::Cast { dtype: DType::F64 }, &[y]).ok()
        }
        4 => {
            // Insert a unit axis somewhere and expand it.
            let at = r.below(rank + 1);
            let mut with_one = dims.clone();
            with_one.insert(at, 1);
            let y = g.add(Op::Reshape { shape: Shape::new(&with_one) }, &[x]).ok()?;
            with_one[at] = 1 + r.below(3);
            g.add(Op::Expand { shape: Shape::new(&with_one) }, &[y]).ok()
        }
        5 if rank >= 2 => {
            // Merge the last two axes.
            let mut to = dims[..rank - 2].to_vec();
            to.push(dims[rank - 2] * dims[rank - 1]);
            g.add(Op::Reshape { shape: Shape::new(&to) }, &[x]).ok()
        }
        6 if rank >= 2 => {
            // A product with a new right operand over the last axis.
            let mut wd = dims.clone();
            wd[rank - 2] = dims[rank - 1];
            wd[rank - 1] = 1 + r.below(4);
            let name = format!("w{}", g.inputs().len());
            let w = g.add_input(name, TensorType::new(ty.dtype, Shape::new(&wd)));
            g.add(Op::Matmul, &[x, w]).ok()
        }
        7 if rank >= 1 => {
            let mut lo: Dims = Dims::from_elem(0, rank);
            lo[r.below(rank)] = 1;
            g.add(Op::Pad { lo: lo.clone(), hi: lo }, &[x]).ok()
        }
        8 => g.add(Op::Cast { dtype: r.pick(&[DType::F32, DType::F64]) }, &[x]).ok(),
        _ => None,
    }
}

#[test]
fn random_chains_keep_their_values_and_mostly_sink() {
    let (mut graphs_tried, mut moved, mut to_input) = (0, 0, 0);
    for seed in 0..600 {
        let mut r = Rng::new(seed);
        let mut g = Graph::new("g");
        let d = graphs::shape(&mut r, 1, 12);
        let mut chain = vec![g.add_input("x", TensorType::new(DType::F64, Shape::new(&d)))];
        for _ in 0..2 + r.below(6) {
            let x = *chain.last().unwrap();
            if let Some(y) = (0..20).find_map(|_| step(&mut g, &mut r, x, &chain)) {
                chain.push(y);
            }
        }
        let last = *chain.last().unwrap();
        let sl = graphs::slice(&mut r, g.ty(last).shape.dims(), &[1, 2, -1, -3]);
        let Ok(s) = g.add(sl, &[last]) else { continue };
        let mut outputs = vec![s];
        if r.chance(4) {
            outputs.push(r.pick(&chain));
        }
        g.set_outputs(outputs);
        let before = g.clone();
        SinkSlices.run(&mut g);
        verify(&g).unwrap_or_else(|e| panic!("seed {seed}: {e}\n{}", print(&g)));
        for k in 0..2 {
            let inputs = random_inputs(&before, &mut Rng::new(seed * 3 + k));
            let (Ok(want), Ok(got)) = (eval(&before, &inputs), eval(&g, &inputs)) else {
                panic!("seed {seed}: evaluation failed\n{}\n{}", print(&before), print(&g));
            };
            assert_eq!(scalars(&want), scalars(&got), "seed {seed}\n{}\n{}", print(&before), print(&g));
        }
        graphs_tried += 1;
        let slice_of = |g: &Graph, n: NodeId| g.args(n)[0];
        let sliced_last =
            g.nodes().into_iter().any(|n| matches!(g.op(n), Op::Slice { .. }) && slice_of(&g, n) == last);
        if !sliced_last {
            moved += 1;
        }
        if g.nodes().into_iter().any(|n| {
            matches!(g.op(n), Op::Slice { .. }) && g.inputs().iter().any(|(_, i)| *i == slice_of(&g, n))
        }) {
            to_input += 1;
        }
    }
    // Some slices cannot move (a slice that keeps no element, a chain ending in `pad`, a value
    // also returned, reshapes that mix axes): check that the pass moves many of the others,
    // and often all the way to an input, so the comparisons above cover the rewrites.
    assert!(graphs_tried >= 500, "{graphs_tried}");
    assert!(moved * 4 > graphs_tried, "{moved} of {graphs_tried} slices moved");
    assert!(to_input * 15 > graphs_tried, "{to_input} of {graphs_tried} slices reached an input");
}

/// Generation's last position, `logits[T - 1]` of a context of `T` tokens: the slice of
/// symbolic start sinks below the matmul and the elementwise op, for every `T`, and the
/// weights stay whole.
#[test]
fn a_slice_of_symbolic_start_sinks_for_every_size() {
    let text = "\
graph @head(%x: f32[T,16], %w: f32[16,8]) where T:2..=64 = 5 {
  %0 = exp %x : f32[T,16]
  %1 = matmul %0, %w : f32[T,8]
  %2 = slice %1, start=[T - 1,0], step=[1,1], size=[1,8] : f32[1,8]
  return %2
}
";
    let out = sunk(text);
    assert!(out.contains("slice %x, start=[T - 1,0], step=[1,1], size=[1,16] : f32[1,16]"), "{out}");
    assert!(out.contains(": f32[1,8]") && !out.contains("f32[T,8]"), "{out}");
    let (before, after) = (parse(text).unwrap(), parse(&out).unwrap());
    assert_eq!(after.guards(), before.guards());
    for t in [2u64, 3, 17, 64] {
        let values = [("T".to_string(), t)].into_iter().collect();
        let (b, a) = (before.bind(&values).unwrap(), after.bind(&values).unwrap());
        let mut r = Rng::new(t);
        let inputs = random_inputs(&b, &mut r);
        assert_eq!(scalars(&eval(&b, &inputs).unwrap()), scalars(&eval(&a, &inputs).unwrap()), "T = {t}");
    }
}
