//! Graphs over symbolic dimensions: the text form, the symbolic type rules (proofs, guards and
//! errors), binding to sizes, and a property test: for random symbolic graphs and random
//! bindings, binding then typing gives exactly the symbolic types evaluated at the binding.

mod common;

use common::Rng;
use tenjit_ir::sym::Bindings;
use tenjit_ir::text::{parse, print};
use tenjit_ir::{interp, verify, BindError, Buffer, DType, Graph, Shape};

fn buf(dims: &[usize], v: Vec<f64>) -> Buffer {
    Buffer::from_vec(v, Shape::new(dims)).unwrap()
}

fn bind(pairs: &[(&str, u64)]) -> Bindings {
    pairs.iter().map(|&(n, v)| (n.to_string(), v)).collect()
}

fn parsed(text: &str) -> Graph {
    parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

const STEP: &str = "\
graph @step(%x: f32[B,784], %w: f32[784,10], %y: f32[B,10]) where B:1..=64 = 8 {
  %0 = matmul %x, %w : f32[B,10]
  %1 = sub %0, %y : f32[B,10]
  %2 = mul %1, %1 : f32[B,10]
  %3 = sum %2, axes=[0] : f32[10]
  %4 = reshape %2, shape=[B*10] : f32[B*10]
  return %3, %4
}
";

#[test]
fn a_symbolic_graph_prints_and_parses_back() {
    let g = parsed(STEP);
    assert!(g.is_symbolic());
    assert_eq!(g.hints(), &bind(&[("B", 8)]));
    let text = print(&g);
    assert!(text.contains("where B:1..=64 = 8 {"), "{text}");
    assert!(text.contains(": f32[B,10]"), "{text}");
    assert!(text.contains("shape=[10*B]"), "{text}");
    // The sizes at the hints are what code that knows no symbols sees.
    assert_eq!(g.ty(g.outputs()[1]).shape.dims(), &[80]);
    let again = parsed(&text);
    assert_eq!(print(&again), text);
    assert_eq!(again.fingerprint(), g.fingerprint());
    assert!(verify(&again).is_ok());
}

#[test]
fn symbols_change_the_fingerprint_and_the_hints_do_not_decide_equality_alone() {
    let g = parsed(STEP);
    let concrete = parsed(&STEP.replace("B*10", "80").replace('B', "8").replace(" where 8:1..=64 = 8", ""));
    assert!(!concrete.is_symbolic());
    assert_ne!(g.fingerprint(), concrete.fingerprint());
}

#[test]
fn binding_gives_the_concrete_graph_of_those_sizes() {
    let g = parsed(STEP);
    for b in [1, 2, 5, 64] {
        let bound = g.bind(&bind(&[("B", b)])).unwrap();
        let expected = STEP
            .replace("B*10", &(10 * b).to_string())
            .replace(" where B:1..=64 = 8", "")
            .replace('B', &b.to_string());
        assert_eq!(print(&bound), print(&parsed(&expected)), "B = {b}");
        assert!(!bound.is_symbolic());
    }
    assert_eq!(g.bindings_for(&[&[5, 784], &[784, 10], &[5, 10]]).unwrap(), bind(&[("B", 5)]));
    match g.bindings_for(&[&[5, 784], &[784, 10], &[6, 10]]) {
        Err(BindError::Input { index: 2, .. }) => {}
        other => panic!("expected input 2 to fail, got {other:?}"),
    }
    let out_of_range = g.bind(&bind(&[("B", 65)])).unwrap_err();
    assert!(out_of_range.to_string().contains("B = 65 is outside B:1..=64"), "{out_of_range}");
    assert!(matches!(g.bind(&Bindings::new()), Err(BindError::Symbol(_))));
}

#[test]
fn a_bound_graph_computes_what_the_concrete_one_does() {
    let g = parsed(STEP);
    let bound = g.bind(&bind(&[("B", 3)])).unwrap();
    let xs: Vec<f64> = (0..3 * 784).map(|i| (i % 7) as f64 * 0.25).collect();
    let ws: Vec<f64> = (0..7840).map(|i| (i % 5) as f64 - 2.0).collect();
    let ys: Vec<f64> = (0..30).map(|i| i as f64).collect();
    let cast = |b: Buffer| b.cast(DType::F32);
    let out = interp::eval(
        &bound,
        &[
            cast(buf(&[3, 784], xs.clone())),
            cast(buf(&[784, 10], ws.clone())),
            cast(buf(&[3, 10], ys.clone())),
        ],
    )
    .unwrap();
    // Column 0 of the summed squares, computed here in f64.
    let mut expect = 0.0f64;
    for r in 0..3 {
        let dot: f64 = (0..784).map(|k| xs[r * 784 + k] * ws[k * 10]).sum();
        let d = dot - ys[r * 10];
        expect += d * d;
    }
    let got = out[0].cast(DType::F64).as_slice::<f64>().unwrap()[0];
    assert!((got - expect).abs() <= 1e-4 * expect.abs(), "{got} vs {expect}");
}

#[test]
fn equal_dims_are_proven_guarded_or_refuted() {
    // Two symbols that may differ: the rule adds a guard, which a binding must satisfy.
    let g = parsed(
        "graph @f(%a: f32[B], %b: f32[T]) where B:1..=64 = 4, T:1..=64 = 4 {\n  %0 = add %a, %b : f32[B]\n  return %0\n}\n",
    );
    assert_eq!(g.guards().len(), 1);
    assert_eq!(g.guards()[0].to_string(), "B == T");
    assert!(print(&g).contains("; guard B == T"));
    assert!(g.bind(&bind(&[("B", 7), ("T", 7)])).is_ok());
    let err = g.bind(&bind(&[("B", 7), ("T", 3)])).unwrap_err();
    assert_eq!(err.to_string(), "guard B == T fails: 7 != 3");

    // A constant against an expression: guarded too, and only one size passes.
    let g = parsed(
        "graph @f(%a: f32[B,3], %w: f32[B+1,2]) where B:1..=64 = 2 {\n  %0 = matmul %a, %w : f32[B,2]\n  return %0\n}\n",
    );
    assert_eq!(g.guards()[0].to_string(), "3 == B + 1");
    assert!(g.bind(&bind(&[("B", 2)])).is_ok());
    assert!(matches!(g.bind(&bind(&[("B", 3)])), Err(BindError::Guard { .. })));
    // Sizes that differ at the hints fail the rule at the hints already.
    let err = parse(
        "graph @f(%a: f32[B,3], %w: f32[B+2,2]) where B:1..=64 = 2 {\n  %0 = matmul %a, %w : f32[B,2]\n  return %0\n}\n",
    )
    .unwrap_err();
    assert!(err.to_string().contains("are not [..., m, k] x [..., k, n]"), "{err}");

    // Equal as expressions: no guard.
    let g = parsed(
        "graph @f(%a: f32[B,T,4]) where B:1..=8 = 2, T:1..=8 = 3 {\n  %0 = reshape %a, shape=[T*B,4] : f32[B*T,4]\n  %1 = reshape %0, shape=[B,T*4] : f32[B,4*T]\n  return %1\n}\n",
    );
    assert!(g.guards().is_empty(), "{:?}", g.guards());
    let err = parse(
        "graph @f(%a: f32[B,T,4]) where B:1..=8 = 2, T:1..=8 = 3 {\n  %0 = reshape %a, shape=[B*T*2] : f32[2*B*T]\n  return %0\n}\n",
    )
    .unwrap_err();
    assert!(err.to_string().contains("reshape"), "{err}");
}

#[test]
fn slices_and_reductions_of_symbolic_axes_must_hold_for_every_size() {
    // Taking row 0 of a symbolic axis is fine when B >= 1; row 2 is not.
    let ok = "graph @f(%a: f32[B,5]) where B:1..=8 = 4 {\n  %0 = slice %a, start=[0,0], step=[1,1], size=[1,5] : f32[1,5]\n  return %0\n}\n";
    parsed(ok);
    let err = parse(&ok.replace("start=[0,0]", "start=[2,0]")).unwrap_err();
    assert!(err.to_string().contains("may leave 0..B"), "{err}");
    // A max over an axis that may be empty has no value; a sum does.
    let err = parse(
        "graph @f(%a: f32[B,5]) where B:0..=8 = 4 {\n  %0 = max %a, axes=[0] : f32[5]\n  return %0\n}\n",
    )
    .unwrap_err();
    assert!(err.to_string().contains("may be empty"), "{err}");
    parsed("graph @f(%a: f32[B,5]) where B:0..=8 = 4 {\n  %0 = sum %a, axes=[0] : f32[5]\n  return %0\n}\n");
}

#[test]
fn symbolic_text_errors_name_what_is_wrong() {
    let cases = [
        ("graph @f(%a: f32[B]) {\n  return %a\n}\n", "unknown symbol B"),
        ("graph @f(%a: f32[B]) where B:1..=4 = 9 {\n  return %a\n}\n", "B = 9 is outside B:1..=4"),
        ("graph @f(%a: f32[B]) where B:1..=4 {\n  return %a\n}\n", "expected `NAME:LO..=HI = HINT`"),
        ("graph @f(%a: f32[B]) where B:1..=4 = 2, B:1..=4 = 2 {\n  return %a\n}\n", "declared twice"),
        ("graph @f(%a: f32[B*]) where B:1..=4 = 2 {\n  return %a\n}\n", "bad dimension `B*`"),
        ("graph @f(%a: f32[B]) where B:1..=4 = 2 {\n  %0 = exp %a : f32[B+1]\n  return %0\n}\n", "annotated"),
    ];
    for (text, needle) in cases {
        let err = parse(text).unwrap_err().to_string();
        assert!(err.contains(needle), "{text}\n-> {err}\n(expected `{needle}`)");
    }
    // `where` the op is still an op.
    parsed("graph @f(%c: bool[B], %a: f32[B]) where B:1..=4 = 2 {\n  %0 = where %c, %a, %a : f32[B]\n  return %0\n}\n");
}

#[test]
fn binding_random_symbolic_graphs_agrees_with_their_symbolic_types() {
    let mut r = Rng::new(0x5eed_0013);
    for case in 0..300 {
        let g = common::symbolic::random_graph(&mut r);
        verify(&g).unwrap_or_else(|e| panic!("case {case}: {e}\n{}", print(&g)));
        let text = print(&g);
        assert_eq!(print(&parsed(&text)), text, "case {case}");
        for _ in 0..4 {
            let values = bind(&[("B", r.below(10) as u64), ("T", 1 + r.below(9) as u64)]);
            let (bound, map) =
                g.bind_nodes(&values).unwrap_or_else(|e| panic!("case {case} at {values:?}: {e}\n{text}"));
            verify(&bound).unwrap();
            for n in g.nodes() {
                let m = map[&n];
                let want: Vec<usize> =
                    g.ty(n).shape.sym_dims().iter().map(|d| d.eval(&values).unwrap() as usize).collect();
                assert_eq!(
                    bound.ty(m).shape.dims(),
                    want.as_slice(),
                    "case {case} at {values:?}, {n}\n{text}"
                );
            }
            // The interpreter runs every binding, empty axes included.
            let inputs = common::symbolic::inputs_for(&bound, |i| (i % 5) as f64 * 0.5 - 1.0);
            interp::eval(&bound, &inputs)
                .unwrap_or_else(|e| panic!("case {case} at {values:?}: {e}\n{text}"));
        }
    }
}

#[test]
fn a_size_is_a_value_of_a_symbolic_size() {
    let text = "\
graph @mean(%x: f32[B,3]) where B:2..=64 = 4 {
  %0 = sum %x, axes=[0] : f32[3]
  %1 = size expr=[B] : f32[3]
  %2 = div %0, %1 : f32[3]
  return %2
}
";
    let g = parsed(text);
    assert_eq!(print(&g), text);
    let x = |b: usize| buf(&[b, 3], (0..b * 3).map(|i| i as f64).collect()).cast(DType::F32);
    // The interpreter binds the symbols from the inputs; a bound graph holds a constant.
    let at_hint = interp::eval(&g, &[x(4)]).unwrap();
    assert_eq!(at_hint[0].cast(DType::F64).as_slice::<f64>().unwrap(), &[4.5, 5.5, 6.5]);
    let bound = g.bind(&bind(&[("B", 2)])).unwrap();
    assert!(print(&bound).contains("const 2.0 : f32[3]"), "{}", print(&bound));
    let out = interp::eval(&bound, &[x(2)]).unwrap();
    assert_eq!(out[0].cast(DType::F64).as_slice::<f64>().unwrap(), &[1.5, 2.5, 3.5]);
    let err = parse(&text.replace("expr=[B]", "expr=[C]")).unwrap_err();
    assert!(err.to_string().contains("unknown symbol C"), "{err}");
}

#[test]
fn slices_may_have_symbolic_bounds() {
    // The last position of a context of `T` tokens.
    let text = "\
graph @last(%x: f32[B,T,4]) where B:1..=8 = 2, T:1..=64 = 5 {
  %0 = slice %x, start=[0,T - 1,0], step=[1,1,1], size=[B,1,4] : f32[B,1,4]
  return %0
}
";
    let g = parsed(text);
    assert_eq!(print(&g), text);
    let bound = g.bind(&bind(&[("B", 3), ("T", 9)])).unwrap();
    assert!(
        print(&bound).contains("start=[0,8,0], step=[1,1,1], size=[3,1,4] : f32[3,1,4]"),
        "{}",
        print(&bound)
    );
    // The interpreter reads the last position at every length.
    for t in [1, 2, 7] {
        let x = buf(&[1, t, 4], (0..t * 4).map(|i| i as f64).collect()).cast(DType::F32);
        let out = interp::eval(&g, &[x]).unwrap();
        let want: Vec<f64> = (0..4).map(|c| ((t - 1) * 4 + c) as f64).collect();
        assert_eq!(out[0].cast(DType::F64).as_slice::<f64>().unwrap(), want.as_slice(), "T = {t}");
    }
    // Bounds that leave the axis for some size are refused.
    // (At the hints already.)
    let err = parse(&text.replace("start=[0,T - 1,0]", "start=[0,T,0]")).unwrap_err();
    assert!(err.to_string().contains("leaves 0..5"), "{err}");
    // (Only for some sizes: T may be 1.)
    let err = parse(&text.replace("start=[0,T - 1,0]", "start=[0,1,0]")).unwrap_err();
    assert!(err.to_string().contains("may leave 0..T"), "{err}");
}

#[test]
fn passes_keep_a_symbolic_graph_equal_at_every_size() {
    // The hints may hold empty and unit axes, where a rule deciding on sizes would fire; over
    // symbols it must not, so the passed graph binds wherever the graph does and computes the
    // same values.
    let pipeline = tenjit_ir::passes::pipeline();
    let passes: Vec<&dyn tenjit_ir::passes::Pass> = pipeline.iter().map(|p| p.as_ref()).collect();
    let mut r = common::Rng::new(0x5eed_0015);
    let mut compared = 0;
    for case in 0..300 {
        let g = common::symbolic::random_graph(&mut r);
        let mut h = g.clone();
        tenjit_ir::passes::run_passes(&mut h, &passes, &mut |_, _| {})
            .unwrap_or_else(|e| panic!("case {case}: {e}\n{}", print(&g)));
        assert_eq!(h.guards(), g.guards(), "case {case}: the passes added guards\n{}", print(&h));
        for _ in 0..3 {
            let values = bind(&[("B", r.below(10) as u64), ("T", 1 + r.below(9) as u64)]);
            let Ok(bg) = g.bind(&values) else { continue };
            let bh =
                h.bind(&values).unwrap_or_else(|e| panic!("case {case} at {values:?}: {e}\n{}", print(&h)));
            let inputs = common::symbolic::inputs_for(&bg, |i| (i % 7) as f64 * 0.5 - 1.5);
            let (a, b) = (interp::eval(&bg, &inputs).unwrap(), interp::eval(&bh, &inputs).unwrap());
            assert_eq!(a, b, "case {case} at {values:?}\n{}\n{}", print(&g), print(&h));
            compared += 1;
        }
    }
    assert!(compared > 600, "{compared} bindings compared");
}

#[test]
fn broadcasting_keeps_the_expressions() {
    use tenjit_ir::sym::{Dim, SymExpr};
    use tenjit_ir::types::broadcast_shapes;
    let b = Dim::from_expr(SymExpr::symbol("B").unwrap()).unwrap();
    let sym = |dims: Vec<Dim>, hints: &[usize]| Shape::symbolic(dims, hints).unwrap();
    let x = sym(vec![b.clone(), Dim::from(3)], &[8, 3]);
    // Against a 1, a missing dim, the same dim: the expression.
    let row = Shape::new(&[1, 3]);
    assert_eq!(broadcast_shapes(&x, &row).unwrap().to_string(), "[B, 3]");
    assert_eq!(broadcast_shapes(&Shape::new(&[3]), &x).unwrap().to_string(), "[B, 3]");
    assert_eq!(broadcast_shapes(&x, &x).unwrap(), x);
    // Against a constant of its size at the hints: the symbol (a type rule guards the rest).
    assert_eq!(broadcast_shapes(&Shape::new(&[8, 3]), &x).unwrap().to_string(), "[B, 3]");
    // Sizes that do not broadcast at the hints do not broadcast.
    assert_eq!(broadcast_shapes(&x, &Shape::new(&[5, 3])), None);
}

#[test]
fn a_reordered_graph_has_the_node_indices_of_its_bindings() {
    let mut g = parsed(
        "graph @f(%x: f32[B,3]) where B:2..=64 = 4 {
           %0 = exp %x : f32[B,3]
           %1 = sum %0, axes=[1] : f32[B]
           return %1
         }",
    );
    // An input added after the nodes that use it comes first in the reordered graph.
    // (as `jit` gives a traced `rand` its seed: `set_op` on a node before the new input).
    let x = g.inputs()[0].1;
    let first = g.nodes().into_iter().find(|&n| matches!(g.op(n), tenjit_ir::Op::Unary(_))).unwrap();
    let y = g.add_input("y", g.ty(x).clone());
    g.set_op(first, tenjit_ir::Op::Binary(tenjit_ir::BinaryOp::Add), &[x, y]).unwrap();
    let (r, map) = g.reordered().unwrap();
    assert_eq!(r.symbols().iter().count(), 1);
    assert_eq!(print(&r).lines().next(), print(&g).lines().next(), "the same signature");
    let bound = g.bind(&bind(&[("B", 7)])).unwrap();
    assert!(print(&bound).starts_with("graph @f(%x: f32[7,3], %y: f32[7,3])"), "{}", print(&bound));
    let bound_r = r.bind(&bind(&[("B", 7)])).unwrap();
    assert_eq!(print(&bound), print(&bound_r));
    // Node by node, the reordered graph's types bind to the bound graph's.
    for (old, new) in &map {
        assert_eq!(g.ty(*old), r.ty(*new));
    }
    assert_eq!(r.instance_bindings_of_structure(&bound).unwrap(), bind(&[("B", 7)]));
    assert!(g.instance_bindings_of_structure(&bound).is_err(), "the graph in its own order is not");
}
