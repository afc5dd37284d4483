//! Automatic dynamic shapes at the graph level: two concrete graphs of one structure give the
//! symbolic graph both are instances of; later graphs are checked as instances of it.

use tenjit_ir::graph::{generalize, generalize_marked, Mark};
use tenjit_ir::text::{parse, print};
use tenjit_ir::{interp, Buffer, DType, Graph, Shape};

/// A step whose batch `b` appears as input dims, a reshape's size and a mean's count.
fn step(b: usize) -> Graph {
    let text = format!(
        "graph @step(%x: f32[{b},4], %w: f32[4,3], %y: f32[{b},3]) {{
  %0 = matmul %x, %w : f32[{b},3]
  %1 = sub %0, %y : f32[{b},3]
  %2 = mul %1, %1 : f32[{b},3]
  %3 = reshape %2, shape=[{n}] : f32[{n}]
  %4 = sum %3, axes=[0] : f32[]
  %5 = const {b}.0 : f32[]
  %6 = div %4, %5 : f32[]
  return %6
}}
",
        n = 3 * b
    );
    parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn no_names(_: usize, _: usize) -> Option<String> {
    None
}

#[test]
fn two_batch_sizes_give_one_symbolic_graph() {
    let (a, b) = (step(8), step(5));
    assert_eq!(a.structure_fingerprint(), b.structure_fingerprint());
    assert_ne!(a.fingerprint(), b.fingerprint());
    let gen = generalize(&a, &b, &no_names).unwrap();
    assert_eq!(gen.introduced.len(), 1, "x and y share the batch symbol");
    assert_eq!(gen.introduced[0].to_string(), "dim 0 of input 0 became symbolic d0 (sizes 8, then 5)");
    let text = print(&gen.graph);
    for needle in
        ["where d0:2.. = 5", "%x: f32[d0,4]", "%y: f32[d0,3]", "shape=[3*d0]", "size expr=[d0] : f32[]"]
    {
        assert!(text.contains(needle), "{needle}\n{text}");
    }
    assert!(gen.graph.guards().is_empty(), "{:?}", gen.graph.guards());
    // Every batch size from 2 on is an instance, bound to its size.
    for n in [2, 3, 13, 64] {
        let values = gen.graph.instance_bindings(&step(n)).unwrap();
        assert_eq!(values["d0"], n as u64);
    }
    // The symbolic graph computes the mean square error at any batch.
    let x = Buffer::from_vec((0..12).map(|i| i as f32).collect::<Vec<_>>(), Shape::new(&[3, 4])).unwrap();
    let w = Buffer::from_vec(vec![1.0f32; 12], Shape::new(&[4, 3])).unwrap();
    let y = Buffer::from_vec(vec![0.0f32; 9], Shape::new(&[3, 3])).unwrap();
    let sym = interp::eval(&gen.graph, &[x.clone(), w.clone(), y.clone()]).unwrap();
    let concrete = interp::eval(&step(3), &[x, w, y]).unwrap();
    assert_eq!(sym, concrete);
    assert_eq!(sym[0].cast(DType::F64).as_slice::<f64>().unwrap(), &[3.0 * (36.0 + 484.0 + 1444.0) / 3.0]);
}

#[test]
fn names_given_by_the_front_end_name_the_symbols() {
    let batch = |input: usize, dim: usize| (input == 0 && dim == 0).then(|| "batch".to_string());
    let gen = generalize(&step(8), &step(5), &batch).unwrap();
    assert!(print(&gen.graph).contains("where batch:2.. = 5"), "{}", print(&gen.graph));
}

#[test]
fn what_cannot_be_symbolic_is_said() {
    // Sizes 0 and 1 stay special.
    let err = generalize(&step(8), &step(1), &no_names).unwrap_err();
    assert_eq!(err.to_string(), "dim 0 of input 0 is 8, then 1: sizes 0 and 1 are not made symbolic");
    // Another structure.
    let other = parse("graph @f(%x: f32[5,4]) {\n  %0 = exp %x : f32[5,4]\n  return %0\n}\n").unwrap();
    assert!(generalize(&step(8), &other, &no_names).unwrap_err().to_string().contains("structure"));
    // The same sizes: nothing to generalize.
    assert!(generalize(&step(8), &step(8), &no_names).unwrap_err().to_string().contains("no size differs"));
    // A constant that changes but is no size.
    let half = |b: usize, c: &str| {
        parse(&format!(
            "graph @f(%x: f32[{b}]) {{\n  %0 = const {c} : f32[{b}]\n  %1 = mul %x, %0 : f32[{b}]\n  return %1\n}}\n"
        ))
        .unwrap()
    };
    let err = generalize(&half(8, "0.5"), &half(5, "0.25"), &no_names).unwrap_err();
    assert!(err.to_string().contains("not a size") || err.to_string().contains("structure"), "{err}");
}

#[test]
fn a_later_graph_that_is_no_instance_names_where_it_departs() {
    // A constant that is `d0 - 1` at 8 and 5, but 2 at 11.
    let g = |b: usize, c: usize| {
        parse(&format!(
            "graph @f(%x: f32[{b}]) {{\n  %0 = const {c}.0 : f32[{b}]\n  %1 = mul %x, %0 : f32[{b}]\n  return %1\n}}\n"
        ))
        .unwrap()
    };
    let gen = generalize(&g(8, 7), &g(5, 4), &no_names).unwrap();
    assert!(print(&gen.graph).contains("size expr=[d0 - 1]"), "{}", print(&gen.graph));
    assert_eq!(gen.graph.instance_bindings(&g(11, 10)).unwrap()["d0"], 11);
    let err = gen.graph.instance_bindings(&g(11, 2)).unwrap_err();
    assert!(err.to_string().contains("%1 is Const { value: Float(2.0)"), "{err}");
    // A guard the instance breaks, and a size outside the range.
    let pair = |b: usize, t: usize| {
        parse(&format!(
            "graph @f(%a: f32[{b}], %b: f32[{t}]) {{\n  %0 = exp %a : f32[{b}]\n  return %0\n}}\n"
        ))
        .unwrap()
    };
    let gen = generalize(&pair(8, 6), &pair(5, 3), &no_names).unwrap();
    assert_eq!(gen.introduced.len(), 2);
    assert!(gen.graph.instance_bindings(&pair(9, 1)).unwrap_err().to_string().contains("outside d1:2.."));
}

#[test]
fn products_of_symbols_are_found() {
    let g = |b: usize, t: usize| {
        parse(&format!(
            "graph @f(%x: f32[{b},{t},2]) {{\n  %0 = reshape %x, shape=[{bt},2] : f32[{bt},2]\n  return %0\n}}\n",
            bt = b * t
        ))
        .unwrap()
    };
    let gen = generalize(&g(4, 6), &g(3, 5), &no_names).unwrap();
    assert!(print(&gen.graph).contains("shape=[d0*d1,2]"), "{}", print(&gen.graph));
    assert!(gen.graph.instance_bindings(&g(7, 9)).is_ok());
}

#[test]
fn sizes_created_inside_the_graph_become_symbols_too() {
    // A batch drawn in the graph (`rand([b, 3])`) has no input dim to come from.
    let g = |b: usize| {
        parse(&format!(
            "graph @f(%s: i64[], %o: i64[], %w: f32[3,2]) {{\n  %0 = rand %s, %o : f32[{b},3]\n  %1 = matmul %0, %w : f32[{b},2]\n  return %1\n}}\n"
        ))
        .unwrap()
    };
    let gen = generalize(&g(8), &g(5), &no_names).unwrap();
    assert_eq!(gen.introduced[0].to_string(), "dim 0 of %3 (rand) became symbolic d0 (sizes 8, then 5)");
    assert_eq!(gen.graph.instance_bindings(&g(40)).unwrap()["d0"], 40);
    let err = gen.graph.instance_bindings(&g(1)).unwrap_err();
    assert!(err.to_string().contains("outside d0:2.."), "{err}");
}

#[test]
fn slice_bounds_that_follow_the_sizes_become_expressions() {
    // `x[:, -1]` of a context of `t` tokens.
    let g = |t: usize| {
        parse(&format!(
            "graph @f(%x: f32[2,{t},4]) {{\n  %0 = slice %x, start=[0,{},0], step=[1,1,1], size=[2,1,4] : f32[2,1,4]\n  return %0\n}}\n",
            t - 1
        ))
        .unwrap()
    };
    let gen = generalize(&g(8), &g(5), &no_names).unwrap();
    assert!(print(&gen.graph).contains("start=[0,d0 - 1,0]"), "{}", print(&gen.graph));
    assert_eq!(gen.graph.instance_bindings(&g(33)).unwrap()["d0"], 33);
}

#[test]
fn convolutions_and_pools_take_a_symbolic_batch() {
    let text = |n: usize| {
        let body =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/filetests/windows.tir"))
                .unwrap();
        let graph: String = body.lines().filter(|l| !l.starts_with(';')).map(|l| format!("{l}\n")).collect();
        // The batch of the file's graph is 2: every `[2,` starting an image type.
        graph.replace("f32[2,", &format!("f32[{n},"))
    };
    let (a, b) = (parse(&text(4)).unwrap(), parse(&text(3)).unwrap());
    let gen = generalize(&a, &b, &no_names).unwrap_or_else(|e| panic!("{e}\n{}", text(3)));
    assert_eq!(gen.introduced.len(), 1, "{:?}", gen.introduced);
    let printed = print(&gen.graph);
    assert!(
        printed
            .contains("conv2d %x, %w, stride=[2,1], padding=[1,2], dilation=[1,2], groups=2 : f32[d0,6,4,8]"),
        "{printed}"
    );
    assert!(printed.contains("conv2d_weight") && printed.contains(": f32[6,2,3,2]"), "{printed}");
    assert_eq!(gen.graph.instance_bindings(&parse(&text(7)).unwrap()).unwrap()["d0"], 7);
    // A symbolic spatial size is refused, naming the op.
    let err = parse(
        "graph @f(%x: f32[1,2,H,5], %w: f32[3,2,1,1]) where H:2.. = 5 {\n  %0 = conv2d %x, %w, stride=[1,1], padding=[0,0], dilation=[1,1], groups=1 : f32[1,3,H,5]\n  return %0\n}\n",
    )
    .unwrap_err();
    assert!(err.to_string().contains("only the batch of conv2d may be symbolic"), "{err}");
}

/// A context of `t` tokens through reshapes that split and merge it, a matmul, an iota over
/// it and its last row.
fn context(t: usize) -> Graph {
    let text = format!(
        "graph @ctx(%x: f32[{t},16], %w: f32[16,8]) {{
  %0 = exp %x : f32[{t},16]
  %1 = reshape %0, shape=[{t},4,4] : f32[{t},4,4]
  %2 = reshape %1, shape=[{t4},4] : f32[{t4},4]
  %3 = reshape %2, shape=[{t},16] : f32[{t},16]
  %4 = matmul %3, %w : f32[{t},8]
  %5 = iota axis=0 : f32[{t},8]
  %6 = add %4, %5 : f32[{t},8]
  %7 = slice %6, start=[{t1},0], step=[1,1], size=[1,8] : f32[1,8]
  %8 = sum %6, axes=[0] : f32[8]
  return %7, %8
}}
",
        t4 = 4 * t,
        t1 = t - 1
    );
    parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

#[test]
fn a_dim_marked_dynamic_is_symbolic_from_the_first_graph() {
    let g = context(5);
    let gen = generalize_marked(&g, &[Mark::new(0, 0)]).unwrap_or_else(|e| panic!("{e}"));
    let text = print(&gen.graph);
    assert!(text.contains("where d0:2.. = 5"), "{text}");
    assert!(text.contains("shape=[4*d0,4]"), "{text}");
    assert!(text.contains("start=[d0 - 1,0]"), "{text}");
    assert!(gen.graph.guards().is_empty(), "{text}");
    assert_eq!(
        gen.introduced[0].to_string(),
        "dim 0 of input 0 (marked dynamic) became symbolic d0 (size 5)"
    );
    // Every other context length is an instance: its graph is the symbolic graph bound.
    for t in [2, 3, 9, 64] {
        let values = gen.graph.instance_bindings(&context(t)).unwrap_or_else(|e| panic!("{t}: {e}"));
        assert_eq!(values["d0"], t as u64);
        assert_eq!(gen.graph.bind(&values).unwrap().fingerprint(), context(t).fingerprint());
    }
    // A mark on a dim of size 1, or none, makes nothing symbolic.
    assert!(generalize_marked(&context(1), &[Mark::new(0, 0)]).is_err());
    assert!(generalize_marked(&g, &[]).is_err());
}

/// Positions `pos[:t]` of a table of 64, added to `t` token rows, and a second input of `t`
/// rows added too.
fn positions(t: usize) -> Graph {
    let text = format!(
        "graph @pos(%x: f32[{t},8], %y: f32[{t},8], %pos: f32[64,8]) {{
  %0 = slice %pos, start=[0,0], step=[1,1], size=[{t},8] : f32[{t},8]
  %1 = add %x, %0 : f32[{t},8]
  %2 = add %1, %y : f32[{t},8]
  return %2
}}
"
    );
    parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn named(input: usize, dim: usize, name: &str, lo: u64, hi: Option<u64>) -> Mark {
    Mark { input, dim, name: Some(name.into()), lo, hi }
}

#[test]
fn marks_of_one_name_are_one_symbol_and_a_bound_proves_a_slice_in_range() {
    let g = positions(5);
    let marks = [named(0, 0, "T", 1, Some(64)), named(1, 0, "T", 1, Some(64))];
    let gen = generalize_marked(&g, &marks).unwrap_or_else(|e| panic!("{e}"));
    let text = print(&gen.graph);
    // One symbol, its range from the marks (sizes 1 and 0 stay special), no guard: the adds
    // are of equal dims, and `pos[:T]` stays inside the table for every T up to 64.
    assert!(text.contains("where T:2..=64 = 5"), "{text}");
    assert!(text.contains("size=[T,8]"), "{text}");
    assert!(gen.graph.guards().is_empty(), "{text}");
    assert_eq!(gen.introduced.len(), 1, "{:?}", gen.introduced);
    assert_eq!(gen.introduced[0].to_string(), "dim 0 of input 0 (marked dynamic) became symbolic T (size 5)");
    for t in [2, 17, 64] {
        let values = gen.graph.instance_bindings(&positions(t)).unwrap_or_else(|e| panic!("{t}: {e}"));
        assert_eq!(values["T"], t as u64);
        assert_eq!(gen.graph.bind(&values).unwrap().fingerprint(), positions(t).fingerprint());
    }
    // Beyond the bound, a graph is not an instance (its slice would leave the table).
    let err = gen.graph.bind(&[("T".to_string(), 65u64)].into_iter().collect()).unwrap_err();
    assert!(err.to_string().contains("65"), "{err}");

    // Unnamed marks are two symbols: the add of the two inputs holds only under a guard.
    let two =
        generalize_marked(&pair(5), &[Mark::new(0, 0), Mark::new(1, 0)]).unwrap_or_else(|e| panic!("{e}"));
    let text = print(&two.graph);
    assert_eq!(two.graph.guards().len(), 1, "{text}");
    assert!(text.contains("guard d0 == d1"), "{text}");
    // Marked without a bound, the slice of the table bounds T (torch's range guard): lengths
    // up to 64 are instances, 65 is not.
    let gen = generalize_marked(&g, &[named(0, 0, "T", 2, None), named(1, 0, "T", 2, None)]).unwrap();
    assert!(print(&gen.graph).contains("where T:2..=64 = 5"), "{}", print(&gen.graph));
    // With a bound the table does not hold, the slice's length stays 5, so the add holds only
    // where T is 5: the marks are refused, saying why.
    let err =
        generalize_marked(&g, &[named(0, 0, "T", 2, Some(100)), named(1, 0, "T", 2, Some(100))]).unwrap_err();
    let why = err.to_string();
    assert!(why.contains("(add) holds only where T == 5, which fixes a marked size"), "{why}");
    assert!(why.contains("(slice) as long as a marked dim"), "{why}");
}

#[test]
fn a_slice_of_a_table_by_a_growing_length_bounds_the_length() {
    // Automatic dynamic shapes: lengths 5 and 9 give `pos[:d0]`, which reads past the table
    // for d0 above 64, so d0 is bounded by 64.
    let gen = generalize(&positions(5), &positions(9), &no_names).unwrap_or_else(|e| panic!("{e}"));
    let text = print(&gen.graph);
    assert!(text.contains("where d0:2..=64 = 9"), "{text}");
    assert!(gen.graph.guards().is_empty(), "{text}");
    assert_eq!(gen.graph.instance_bindings(&positions(64)).unwrap()["d0"], 64);
    // A slice with a step: rows 0, 2, 4, ... of the table, d0 of them, fit for d0 <= 32.
    let strided = |t: usize| {
        let text = format!(
            "graph @pos(%x: f32[{t},8], %pos: f32[64,8]) {{\n  %0 = slice %pos, start=[0,0], step=[2,1], size=[{t},8] : f32[{t},8]\n  %1 = add %x, %0 : f32[{t},8]\n  return %1\n}}\n"
        );
        parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    };
    let gen = generalize(&strided(3), &strided(4), &no_names).unwrap_or_else(|e| panic!("{e}"));
    assert!(print(&gen.graph).contains("where d0:2..=32 = 4"), "{}", print(&gen.graph));
    assert!(gen.graph.instance_bindings(&strided(32)).is_ok());
}

/// Two inputs of `t` rows added.
fn pair(t: usize) -> Graph {
    let text = format!(
        "graph @pair(%x: f32[{t},8], %y: f32[{t},8]) {{\n  %0 = add %x, %y : f32[{t},8]\n  return %0\n}}\n"
    );
    parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

#[test]
fn marks_that_contradict_are_errors_naming_the_dim() {
    let g = positions(5);
    // A size outside the mark's range.
    let err = generalize_marked(&g, &[named(0, 0, "T", 2, Some(4))]).unwrap_err();
    assert!(err.to_string().contains("dim 0 of input 0: size 5 is outside the range T:2..=4"), "{err}");
    // One name, two ranges.
    let err = generalize_marked(&g, &[named(0, 0, "T", 2, Some(64)), named(1, 0, "T", 2, None)]).unwrap_err();
    assert!(err.to_string().contains("dim 0 of input 1: marked dynamic as T:2.. at size 5"), "{err}");
    // A name that is no identifier.
    let err = generalize_marked(&g, &[named(0, 0, "2T", 2, None)]).unwrap_err();
    assert!(err.to_string().contains("dim 0 of input 0"), "{err}");
    // An unnamed mark does not take a name another mark gives.
    let gen = generalize_marked(&pair(5), &[named(0, 0, "d0", 2, Some(64)), Mark::new(1, 0)]).unwrap();
    assert!(print(&gen.graph).contains("d0:2..=64 = 5, d1:2.. = 5"), "{}", print(&gen.graph));
}
