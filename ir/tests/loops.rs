//! The `loop` op: its text form (bodies printed first, parsed back to the same text), the
//! interpreter (the body run `trips` times), the kernel program (the same values as the
//! interpreter), type errors that name the value at fault, and CSE, which merges the nodes of
//! one loop but never loops with different bodies or trip counts.

use tenjit_ir::interp::eval;
use tenjit_ir::kernel::{eval as kernel_eval, lower::lower, Step};
use tenjit_ir::ops::{counter_type, Body, LoopOp};
use tenjit_ir::passes::cse::Cse;
use tenjit_ir::passes::Pass;
use tenjit_ir::text::{parse, print};
use tenjit_ir::{verify, BinaryOp, Buffer, DType, Graph, NodeId, Op, TensorType};

fn f32s(n: usize) -> TensorType {
    TensorType::new(DType::F32, [n])
}

/// The body `(a, b, v, i) -> (b, a + b * v + i)`: a Fibonacci-like recurrence that reads an
/// invariant and the counter.
fn fib_body() -> Body {
    let mut g = Graph::new("fib");
    let a = g.add_input("a", f32s(2));
    let b = g.add_input("b", f32s(2));
    let v = g.add_input("v", f32s(2));
    let i = g.add_input("i", counter_type());
    let bv = g.add(Op::Binary(BinaryOp::Mul), &[b, v]).unwrap();
    let s = g.add(Op::Binary(BinaryOp::Add), &[a, bv]).unwrap();
    let fi = g.add(Op::Cast { dtype: DType::F32 }, &[i]).unwrap();
    let fi = g.add(Op::Reshape { shape: [1].into() }, &[fi]).unwrap();
    let fi = g.add(Op::Expand { shape: [2].into() }, &[fi]).unwrap();
    let s = g.add(Op::Binary(BinaryOp::Add), &[s, fi]).unwrap();
    g.set_outputs(vec![b, s]);
    Body::new(g).unwrap()
}

/// A graph running `body` for `trips` on inputs `a`, `b`, `v`, returning both results.
fn fib_graph(body: &Body, trips: usize) -> (Graph, [NodeId; 2]) {
    let mut g = Graph::new("main");
    let a = g.add_input("a", f32s(2));
    let b = g.add_input("b", f32s(2));
    let v = g.add_input("v", f32s(2));
    let r: Vec<NodeId> = (0..2)
        .map(|result| g.add(Op::Loop(LoopOp { body: body.clone(), trips, result }), &[a, b, v]).unwrap())
        .collect();
    g.set_outputs(r.clone());
    (g, [r[0], r[1]])
}

fn inputs() -> Vec<Buffer> {
    vec![
        Buffer::from_vec(vec![0.0f32, 1.0], [2]).unwrap(),
        Buffer::from_vec(vec![1.0f32, 1.0], [2]).unwrap(),
        Buffer::from_vec(vec![1.0f32, 0.5], [2]).unwrap(),
    ]
}

/// The recurrence computed by hand.
fn fib(trips: usize) -> [Vec<f32>; 2] {
    fib_counting(0..trips)
}

/// The recurrence computed by hand, with the counter taking the values `counters`.
fn fib_counting(counters: impl Iterator<Item = usize>) -> [Vec<f32>; 2] {
    let (mut a, mut b, v) = ([0.0f32, 1.0], [1.0f32, 1.0], [1.0f32, 0.5]);
    for i in counters {
        let s = [a[0] + b[0] * v[0] + i as f32, a[1] + b[1] * v[1] + i as f32];
        (a, b) = (b, s);
    }
    [a.to_vec(), b.to_vec()]
}

#[test]
fn text_form_prints_the_body_first_and_parses_back() {
    let (g, _) = fib_graph(&fib_body(), 5);
    let text = print(&g);
    let want = "\
graph @main.loop0(%a: f32[2], %b: f32[2], %v: f32[2], %i: i64[]) {
  %0 = mul %b, %v : f32[2]
  %1 = add %a, %0 : f32[2]
  %2 = cast %i : f32[]
  %3 = reshape %2, shape=[1] : f32[1]
  %4 = expand %3, shape=[2] : f32[2]
  %5 = add %1, %4 : f32[2]
  return %b, %5
}

graph @main(%a: f32[2], %b: f32[2], %v: f32[2]) {
  %0 = loop %a, %b, %v, body=@main.loop0, trips=5, result=0 : f32[2]
  %1 = loop %a, %b, %v, body=@main.loop0, trips=5, result=1 : f32[2]
  return %0, %1
}
";
    assert_eq!(text, want);
    let back = parse(&text).unwrap();
    verify(&back).unwrap();
    assert_eq!(print(&back), text);
    assert_eq!(back.fingerprint(), g.fingerprint(), "the parsed body is the same body");
}

#[test]
fn nested_bodies_print_before_their_users() {
    let inner = fib_body();
    let mut outer = Graph::new("outer");
    let ins: Vec<NodeId> = ["a", "b", "v"].iter().map(|n| outer.add_input(*n, f32s(2))).collect();
    outer.add_input("i", counter_type());
    let r: Vec<NodeId> = (0..2)
        .map(|result| outer.add(Op::Loop(LoopOp { body: inner.clone(), trips: 2, result }), &ins).unwrap())
        .collect();
    outer.set_outputs(r);
    let (g, _) = fib_graph(&Body::new(outer).unwrap(), 3);
    let text = print(&g);
    let inner_at = text.find("graph @main.loop0(").expect("the inner body is printed");
    let outer_at = text.find("graph @main.loop1(").expect("the outer body is printed");
    assert!(inner_at < outer_at, "{text}");
    assert!(text.contains("body=@main.loop0, trips=2"), "{text}");
    assert_eq!(print(&parse(&text).unwrap()), text);
    // Three outer trips of two inner trips each: six steps of the recurrence, the inner
    // counter counting 0, 1 each time.
    let out = eval(&g, &inputs()).unwrap();
    let want = fib_counting([0, 1, 0, 1, 0, 1].into_iter());
    for (o, w) in out.iter().zip(&want) {
        assert_eq!(o.as_slice::<f32>().unwrap(), &w[..]);
    }
}

#[test]
fn the_interpreter_runs_the_body_trips_times() {
    let body = fib_body();
    for trips in [0, 1, 2, 9] {
        let (g, _) = fib_graph(&body, trips);
        let out = eval(&g, &inputs()).unwrap();
        let want = fib(trips);
        for (o, w) in out.iter().zip(&want) {
            assert_eq!(o.as_slice::<f32>().unwrap(), &w[..], "{trips} trips");
        }
    }
}

#[test]
fn the_kernel_program_agrees_with_the_interpreter() {
    let body = fib_body();
    for trips in [0, 1, 4, 7] {
        let (g, _) = fib_graph(&body, trips);
        let p = lower(&g);
        let loops = p.steps.iter().filter(|s| matches!(s, Step::Loop(_))).count();
        assert_eq!(loops, 1, "both results come from one loop step\n{p}");
        assert!(p.to_string().contains(&format!("trips={trips}")), "{p}");
        assert_eq!(
            kernel_eval::eval(&p, &inputs()).unwrap(),
            eval(&g, &inputs()).unwrap(),
            "{trips} trips\n{p}"
        );
    }
    // A result nobody reads is still computed: the next trip needs it.
    let (mut g, [_, b]) = fib_graph(&body, 3);
    g.set_outputs(vec![b]);
    g.remove_dead();
    let p = lower(&g);
    assert_eq!(kernel_eval::eval(&p, &inputs()).unwrap()[0].as_slice::<f32>().unwrap(), &fib(3)[1][..]);
}

#[test]
fn type_errors_name_the_value() {
    // A body that changes a carried value's type.
    let mut g = Graph::new("grow");
    let c = g.add_input("c", f32s(2));
    g.add_input("i", counter_type());
    let y = g.add(Op::Concat { axis: 0 }, &[c, c]).unwrap();
    g.set_outputs(vec![y]);
    let e = Body::new(g).unwrap_err().to_string();
    assert!(
        e.contains("carried value 0 (%c) of the body @grow is f32[2] before the body and f32[4] after it"),
        "{e}"
    );
    // A body without the counter.
    let mut g = Graph::new("nocounter");
    let c = g.add_input("c", f32s(2));
    g.set_outputs(vec![c]);
    let e = Body::new(g).unwrap_err().to_string();
    assert!(e.contains("takes 1 input(s)"), "{e}");
    // Operands that do not fit the body.
    let body = fib_body();
    let mut g = Graph::new("main");
    let a = g.add_input("a", f32s(2));
    let x = g.add_input("x", f32s(3));
    let e = g.add(Op::Loop(LoopOp { body: body.clone(), trips: 1, result: 0 }), &[a, a, x]).unwrap_err();
    assert_eq!(e.to_string(), "loop: invariant 0 is f32[3] but the body @fib takes f32[2]");
    let e = g.add(Op::Loop(LoopOp { body: body.clone(), trips: 1, result: 0 }), &[a, a]).unwrap_err();
    assert_eq!(e.to_string(), "loop: expects 3 operand(s), got 2");
    let e = g.add(Op::Loop(LoopOp { body, trips: 1, result: 2 }), &[a, a, a]).unwrap_err();
    assert!(e.to_string().contains("result 2 is out of range"), "{e}");
    // Text naming a body that is not there.
    let e = parse(
        "graph @m(%x: f32[2]) {\n  %0 = loop %x, body=@nope, trips=1, result=0 : f32[2]\n  return %0\n}\n",
    )
    .unwrap_err()
    .to_string();
    assert_eq!(e, "2:22: bad attribute `body`: no graph `@nope` is defined above");
}

#[test]
fn cse_merges_one_loop_but_not_different_ones() {
    let body = fib_body();
    let mut g = Graph::new("main");
    let ins: Vec<NodeId> = ["a", "b", "v"].iter().map(|n| g.add_input(*n, f32s(2))).collect();
    let node = |g: &mut Graph, body: &Body, trips: usize| {
        g.add(Op::Loop(LoopOp { body: body.clone(), trips, result: 1 }), &ins).unwrap()
    };
    let same = [node(&mut g, &body, 3), node(&mut g, &body, 3)];
    let other_trips = node(&mut g, &body, 4);
    // The same recurrence without the counter: another body.
    let mut other = Graph::new("fib");
    let a = other.add_input("a", f32s(2));
    let b = other.add_input("b", f32s(2));
    let v = other.add_input("v", f32s(2));
    other.add_input("i", counter_type());
    let bv = other.add(Op::Binary(BinaryOp::Mul), &[b, v]).unwrap();
    let s = other.add(Op::Binary(BinaryOp::Add), &[a, bv]).unwrap();
    other.set_outputs(vec![b, s]);
    let other_body = node(&mut g, &Body::new(other).unwrap(), 3);
    g.set_outputs(vec![same[0], same[1], other_trips, other_body]);
    assert!(Cse.run(&mut g));
    let o = g.outputs().to_vec();
    assert_eq!(o[0], o[1], "the same loop is merged");
    assert!(o[2] != o[0] && o[3] != o[0] && o[2] != o[3], "different loops stay apart");
    let loops = g.nodes().into_iter().filter(|&n| matches!(g.op(n), Op::Loop(_))).count();
    assert_eq!(loops, 3);
}
