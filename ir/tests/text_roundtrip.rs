//! Tests of the text form and the Graphviz export: round trips over random graphs, the file
//! tests in `tests/filetests/`, exact parse errors, robustness against garbled text, and
//! snapshots of one printed and drawn graph.

use std::collections::BTreeSet;
use tenjit_ir::ops::Dims;
use tenjit_ir::text::{parse, print, ParseError};
use tenjit_ir::{
    dot, verify, ArgOp, BinaryOp, DType, Graph, NodeId, Op, ReduceOp, Scalar, Shape, TensorType, UnaryOp,
};

mod common;
use common::{graphs, Rng};

const FLOATS: [f64; 14] = [
    0.0,
    -0.0,
    1.0,
    0.1,
    -2.5,
    1.0 / 3.0,
    f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
    1e-45,
    5e-324,
    1e300,
    3.4028235e38,
    -1.17549435e-38,
];
const INTS: [i64; 6] = [0, 1, -1, 7, i64::MIN, i32::MAX as i64];
const LOCS: [&str; 4] =
    ["examples/tutorial.rs:42", "src/tensor/mod.rs:7:13", "dir with space/f.rs:1", "odd ; at text.rs:9"];
const NAMES: [&str; 10] = ["x", "w", "bias_1", "a.b", "has space", "0", "", "q\"uote", "tab\tname", "ünï"];

fn random_shape(r: &mut Rng, min_rank: usize) -> Vec<usize> {
    graphs::shape(r, min_rank, 25)
}

fn random_type(r: &mut Rng) -> TensorType {
    TensorType::new(r.pick(&DType::ALL), random_shape(r, 0))
}

fn random_scalar(r: &mut Rng, dtype: DType) -> Scalar {
    graphs::scalar(r, dtype, &FLOATS, &INTS)
}

/// A random index (`i64`) value that fits `x` along `axis` for gather and scatter_add.
fn index_for(g: &mut Graph, r: &mut Rng, x: &TensorType, axis: usize) -> Option<NodeId> {
    let dims: Vec<usize> = x
        .shape
        .dims()
        .iter()
        .enumerate()
        .map(|(d, &n)| if d == axis { 1 + r.below(3) } else { r.below(n + 1) })
        .collect();
    let ty = TensorType::new(DType::I64, dims);
    let op = if r.chance(2) {
        Op::Const { value: Scalar::Int(0), ty }
    } else {
        Op::Iota { axis: r.below(x.shape.rank()), ty }
    };
    g.add(op, &[]).ok()
}

/// One random op over the values in `vals`; `None` when the op rejects what was picked.
fn random_step(g: &mut Graph, r: &mut Rng, vals: &[NodeId]) -> Option<NodeId> {
    let (x, xt, same_type) = graphs::operand(g, r, vals);
    let rank = xt.shape.rank();
    let loc = r.chance(4).then(|| r.pick(&LOCS).to_string());
    let (op, args): (Op, Vec<NodeId>) = match r.below(18) {
        0 => (Op::Unary(r.pick(&UnaryOp::ALL)), vec![x]),
        1 => {
            let op = r.pick(&BinaryOp::ALL);
            if op.spec().accepts.admits(xt.dtype) {
                (Op::Binary(op), vec![x, r.pick(&same_type)])
            } else {
                // Logic ops need booleans: compare first.
                let a = g.add(Op::Binary(BinaryOp::Ge), &[x, r.pick(&same_type)]).ok()?;
                (Op::Binary(op), vec![a, a])
            }
        }
        2 => {
            let cmp = g.add(Op::Binary(BinaryOp::Lt), &[x, r.pick(&same_type)]).ok()?;
            (Op::Where, vec![cmp, x, r.pick(&same_type)])
        }
        3 => (Op::Cast { dtype: r.pick(&DType::ALL) }, vec![x]),
        4 => {
            let axes: Dims = (0..rank).filter(|_| r.chance(2)).collect();
            (Op::Reduce { op: r.pick(&ReduceOp::ALL), axes }, vec![x])
        }
        5 => (Op::ArgReduce { op: r.pick(&ArgOp::ALL), axis: r.below(rank) }, vec![x]),
        6 => {
            let dims = xt.shape.dims();
            let shape: Vec<usize> = match r.below(4) {
                0 => vec![xt.shape.numel()],
                1 => dims.iter().rev().copied().collect(),
                2 => {
                    let mut d = dims.to_vec();
                    d.insert(r.below(d.len() + 1), 1);
                    d
                }
                _ if rank >= 2 => {
                    let mut d = dims[1..].to_vec();
                    d[0] *= dims[0];
                    d
                }
                _ => Vec::new(),
            };
            (Op::Reshape { shape: Shape::from(shape) }, vec![x])
        }
        7 => (Op::Permute { perm: graphs::permutation(r, rank) }, vec![x]),
        8 => {
            let shape: Vec<usize> =
                xt.shape.dims().iter().map(|&d| if d == 1 { 1 + r.below(4) } else { d }).collect();
            (Op::Expand { shape: Shape::from(shape) }, vec![x])
        }
        9 => (graphs::slice(r, xt.shape.dims(), &[1, 2, 3, -1, -2]), vec![x]),
        10 => {
            let lo: Dims = (0..rank).map(|_| r.below(3)).collect();
            let hi: Dims = (0..rank).map(|_| r.below(3)).collect();
            (Op::Pad { lo, hi }, vec![x])
        }
        11 => {
            let n = 1 + r.below(3);
            (Op::Concat { axis: r.below(rank) }, (0..n).map(|_| r.pick(&same_type)).collect())
        }
        12 => {
            if rank < 2 {
                return None;
            }
            let mut dims = xt.shape.dims().to_vec();
            dims[rank - 2] = dims[rank - 1];
            dims[rank - 1] = 1 + r.below(3);
            let ty = TensorType::new(xt.dtype, dims);
            let b = if xt.dtype.is_float() && r.chance(2) {
                g.add_rand(ty, r.next(), r.next() >> 1).ok()?
            } else {
                g.add(Op::Const { value: random_scalar(r, xt.dtype), ty }, &[]).ok()?
            };
            (Op::Matmul, vec![x, b])
        }
        13 => {
            let axis = r.below(rank);
            let index = index_for(g, r, &xt, axis)?;
            (Op::Gather { axis }, vec![x, index])
        }
        14 => {
            let axis = r.below(rank);
            let index = index_for(g, r, &xt, axis)?;
            let ty = TensorType::new(xt.dtype, g.ty(index).shape.clone());
            let src = g.add(Op::Const { value: random_scalar(r, xt.dtype), ty }, &[]).ok()?;
            (Op::ScatterAdd { axis }, vec![x, index, src])
        }
        15 => {
            let ty = random_type(r);
            (Op::Const { value: random_scalar(r, ty.dtype), ty }, vec![])
        }
        16 => {
            let ty = TensorType::new(r.pick(&DType::ALL), random_shape(r, 1));
            (Op::Iota { axis: r.below(ty.shape.rank()), ty }, vec![])
        }
        _ => {
            let ty = TensorType::new(r.pick(&[DType::F32, DType::F64]), random_shape(r, 0));
            let word = |g: &mut Graph, bits: u64| {
                g.add(Op::Const { value: Scalar::Int(bits as i64), ty: TensorType::new(DType::I64, []) }, &[])
            };
            let (seed, offset) = (word(g, r.next()).ok()?, word(g, r.next()).ok()?);
            (Op::Rand { ty }, vec![seed, offset])
        }
    };
    g.add_at(op, &args, loc).ok()
}

/// A random graph built through `Graph::add`, over every kind of op.
fn random_graph(seed: u64) -> Graph {
    let mut r = Rng::new(seed);
    let mut g = Graph::new(r.pick(&["g", "mse", "with space", "a.b_c"]));
    let mut vals = Vec::new();
    let mut used = BTreeSet::new();
    for i in 0..1 + r.below(3) {
        let mut name = r.pick(&NAMES).to_string();
        if !used.insert(name.clone()) {
            name = format!("{name}{i}");
            used.insert(name.clone());
        }
        let ty = random_type(&mut r);
        vals.push(g.add_input(name, ty));
    }
    let steps = 3 + r.below(30);
    graphs::grow(&mut g, &mut r, &mut vals, steps, random_step, |_, _, _| {});
    graphs::set_sink_outputs(&mut g, &mut r, &vals, 4, 4);
    g
}

/// Parses `text`, panicking with the error and the text on failure.
fn parse_ok(text: &str) -> Graph {
    parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

#[test]
fn random_graphs_round_trip() {
    let mut seen = BTreeSet::new();
    for seed in 0..500 {
        let g = random_graph(seed);
        verify(&g).unwrap();
        let text = print(&g);
        assert_eq!(g.to_string(), text);
        let back = parse_ok(&text);
        verify(&back).unwrap();
        assert_eq!(print(&back), text, "seed {seed}");
        assert_eq!(back.name(), g.name());
        assert_eq!(back.inputs().len(), g.inputs().len());
        for line in text.lines().filter(|l| l.starts_with("  %")) {
            seen.insert(line.split_whitespace().nth(2).unwrap().to_string());
        }
    }
    // Every op kind was generated, printed and parsed.
    let mut all: Vec<&str> = vec![
        "const",
        "iota",
        "rand",
        "where",
        "cast",
        "reshape",
        "permute",
        "expand",
        "slice",
        "pad",
        "concat",
        "matmul",
        "gather",
        "scatter_add",
    ];
    all.extend(UnaryOp::ALL.iter().map(|u| u.spec().name));
    all.extend(BinaryOp::ALL.iter().map(|b| b.spec().name));
    all.extend(ReduceOp::ALL.iter().map(|r| r.name()));
    all.extend(ArgOp::ALL.iter().map(|a| a.name()));
    let missing: Vec<&&str> = all.iter().filter(|n| !seen.contains(**n)).collect();
    assert!(missing.is_empty(), "never generated: {missing:?}");
}

/// The `.tir` files in `tests/filetests/`, sorted, with their text.
fn filetests() -> Vec<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/filetests");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "tir"))
        .collect();
    files.sort();
    assert!(files.len() >= 4);
    files
        .into_iter()
        .map(|p| {
            (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

#[test]
fn filetests_print_back_identically() {
    for (name, text) in filetests() {
        let g = parse(&text).unwrap_or_else(|e| panic!("{name}:{e}"));
        verify(&g).unwrap();
        // Comment lines are not kept; everything else prints back as written.
        let expected: String =
            text.lines().filter(|l| !l.trim_start().starts_with(';')).map(|l| format!("{l}\n")).collect();
        assert_eq!(print(&g), expected, "{name}");
    }
}

/// The graph of the README's first example, built through the API.
fn mse() -> Graph {
    let mut g = Graph::new("mse");
    let f = |d: &[usize]| TensorType::new(DType::F32, d);
    let x = g.add_input("x", f(&[4, 1]));
    let w = g.add_input("w", f(&[1, 1]));
    let y = g.add_input("y", f(&[4, 1]));
    let xw = g.add_at(Op::Matmul, &[x, w], Some("examples/tutorial.rs:42".into())).unwrap();
    let d = g.add(Op::Binary(BinaryOp::Sub), &[xw, y]).unwrap();
    let sq = g.add(Op::Binary(BinaryOp::Mul), &[d, d]).unwrap();
    let s = g.add_at(Op::Reduce { op: ReduceOp::Sum, axes: Dims::from_slice(&[0, 1]) }, &[sq], None).unwrap();
    let _dead = g.add(Op::Unary(UnaryOp::Exp), &[s]).unwrap();
    let q = g.add(Op::Const { value: Scalar::Float(0.25), ty: f(&[]) }, &[]).unwrap();
    let loss =
        g.add_at(Op::Binary(BinaryOp::Mul), &[s, q], Some("examples/tutorial.rs:43:5".into())).unwrap();
    g.set_outputs(vec![loss, d]);
    g
}

#[test]
fn snapshot_of_printed_graph() {
    insta::assert_snapshot!("mse_text", print(&mse()));
}

#[test]
fn snapshot_of_dot() {
    insta::assert_snapshot!("mse_dot", dot::to_dot(&mse()));
}

#[test]
fn dot_is_deterministic_and_draws_every_live_value() {
    let g = random_graph(7);
    let a = dot::to_dot(&g);
    assert_eq!(a, dot::to_dot(&g));
    let statements = print(&g).lines().filter(|l| l.starts_with("  %")).count();
    assert_eq!(
        a.lines().filter(|l| l.starts_with("  n") && !l.starts_with("  node") && !l.contains("->")).count(),
        statements
    );
}

#[test]
fn graphs_may_return_inputs_and_nothing() {
    let text = "graph @id(%x: f32[2]) {\n  return %x, %x\n}\n";
    assert_eq!(print(&parse_ok(text)), text);
    let text = "graph @empty() {\n  return\n}\n";
    assert_eq!(print(&parse_ok(text)), text);
}

#[test]
fn hand_written_names_are_renumbered_and_comments_dropped() {
    let text = "\n; a comment\ngraph @g(\n  %x: f32[3],\n  %y: f32[3]\n) {   ; trailing comment\n\n  \
                %sum = add %x, %y : f32[3]  ;   at  here.rs:1  \n  %7 = neg %sum : f32[3]\n  return %7 ; done\n}\n";
    let expected =
        "graph @g(%x: f32[3], %y: f32[3]) {\n  %0 = add %x, %y : f32[3]  ; at here.rs:1\n  %1 = neg %0 : f32[3]\n  \
         return %1\n}\n";
    assert_eq!(print(&parse_ok(text)), expected);
}

#[test]
fn locations_align_and_survive() {
    let g = parse_ok(
        "graph @g(%x: f64[2]) {\n  %0 = exp %x : f64[2] ; at a.rs:1\n  %1 = floor %0 : f64[2]\n  \
         %2 = sqrt %1 : f64[2] ; at b.rs:22:3\n  return %2\n}\n",
    );
    let text = print(&g);
    assert_eq!(
        text,
        "graph @g(%x: f64[2]) {\n  %0 = exp %x : f64[2]   ; at a.rs:1\n  %1 = floor %0 : f64[2]\n  \
         %2 = sqrt %1 : f64[2]  ; at b.rs:22:3\n  return %2\n}\n"
    );
    let locs: Vec<Option<&str>> = g.live_order().unwrap().into_iter().map(|n| g.loc(n)).collect();
    assert_eq!(locs, [None, Some("a.rs:1"), None, Some("b.rs:22:3")]);
}

#[test]
fn scalars_round_trip_bit_exactly() {
    for (dtype, value) in [
        (DType::F32, "-0.0"),
        (DType::F32, "1e-45"),
        (DType::F32, "3.4028235e38"),
        (DType::F64, "5e-324"),
        (DType::F64, "0.1"),
        (DType::F64, "-inf"),
        (DType::F32, "nan"),
        (DType::I64, "-9223372036854775808"),
        (DType::I32, "2147483647"),
        (DType::Bool, "false"),
    ] {
        let text = format!("graph @c() {{\n  %0 = const {value} : {dtype}[2]\n  return %0\n}}\n");
        let g = parse_ok(&text);
        assert_eq!(print(&g), text);
        let Op::Const { value: v, .. } = g.op(g.outputs()[0]) else { panic!("not a const") };
        assert_eq!(v.text(dtype), value);
    }
}

/// Parses `body` inside a one-input graph and returns the error as `line:col: message`.
fn error_of(text: &str) -> String {
    match parse(text) {
        Ok(g) => panic!("parsed:\n{}", print(&g)),
        Err(e) => e.to_string(),
    }
}

#[test]
fn parse_errors_name_the_place_and_the_problem() {
    let wrap = |body: &str| format!("graph @g(%x: f32[4], %i: i64[4]) {{\n{body}\n}}\n");
    let mut cases: Vec<(String, &str)> = vec![
        (wrap("  %0 = frob %x : f32[4]\n  return %0"), "2:8: unknown op `frob`"),
        (wrap("  %0 = neg %7 : f32[4]\n  return %0"), "2:12: undefined value `%7`"),
        (
            wrap("  %0 = neg %x : f32[4]\n  %0 = abs %x : f32[4]\n  return %0"),
            "3:3: duplicate definition of `%0` (first defined at 2:3)",
        ),
        (
            wrap("  %0 = neg %x : f8[4]\n  return %0"),
            "2:17: unknown dtype `f8` (expected bool, i32, i64, f16, bf16, f32 or f64)",
        ),
        (
            wrap("  %0 = sub %x, %x : f32[3]\n  return %0"),
            "2:21: annotated f32[3] but sub of f32[4] and f32[4] gives f32[4]",
        ),
        (wrap("  %0 = neg %x : f32[4]"), "3:1: missing `return` before `}`"),
        (
            wrap("  return %x\n}\ngarbage"),
            "4:1: expected end of input after the graph's `}`, found `garbage`",
        ),
        (
            wrap("  %0 = sum %x, axes=[0], keep=1 : f32[]\n  return %0"),
            "2:26: unknown attribute `keep` for `sum` (expected `axes`)",
        ),
        (wrap("  %0 = sum %x : f32[]\n  return %0"), "2:8: `sum` needs attribute `axes`"),
        (
            wrap("  %0 = sum %x, axes=[-1] : f32[]\n  return %0"),
            "2:22: bad attribute `axes`: expected a list of non-negative integers, found `-1`",
        ),
        (
            wrap("  %0 = sum %x, axes=0 : f32[]\n  return %0"),
            "2:21: bad attribute `axes`: expected a list of non-negative integers like `[0,1]`, found `0`",
        ),
        (wrap("  %0 = add %x, %i : f32[4]\n  return %0"), "2:8: add: operand types f32[4] and i64[4] differ"),
        (wrap("  %0 = const 1.5 : i64[4]\n  return %0"), "2:14: bad constant `1.5` for i64"),
        (
            wrap("  %0 = neg %x, 2 : f32[4]\n  return %0"),
            "2:16: unexpected `2`: `neg` takes operands `%v` and `key=value` attributes",
        ),
        (
            wrap("  %0 = neg %x f32[4]\n  return %0"),
            "2:15: expected `,` or `:` and the result type, found `f32`",
        ),
        (
            wrap("  %0 = neg %x : f32[4] extra\n  return %0"),
            "2:24: expected end of line after the result type, found `extra`",
        ),
        (
            wrap("  %0 = input : f32[4]\n  return %0"),
            "2:8: inputs are declared in the graph signature, not with `input`",
        ),
        (wrap("  %0 = iota axis=0, axis=1 : i64[4]\n  return %0"), "2:21: duplicate attribute `axis`"),
        (
            wrap("  %0 = cast %x : f64[5]\n  return %0"),
            "2:18: annotated f64[5] but cast of f32[4] gives f64[4]",
        ),
        ("graph g() {\n  return\n}\n".into(), "1:7: expected the graph's name `@name`, found `g`"),
        (
            "graph @g(%x: f32[4]) {\n  %0 = neg %x : f32[4]\n".into(),
            "3:1: expected a definition `%name = ...` or `return`, found end of input",
        ),
        ("graph @g() {\n  return\n".into(), "3:1: expected `}` after `return`, found end of input"),
        ("graph @g(%x: f32[4]) {\n  %0 = neg %x : f32[4] # hi\n}\n".into(), "2:24: unexpected character `#`"),
        ("graph @g(%\"x) {\n}\n".into(), "1:11: unterminated quoted name: expected a closing `\"`"),
        ("".into(), "1:1: expected `graph`, found end of input"),
        (
            wrap("  %0 = reshape %x, shape=[4294967296,4294967296,4] : f32[4]\n  return %0"),
            "2:8: reshape: sizes overflow",
        ),
        (
            wrap("  %0 = neg %x : f32[4294967296,4294967296,4]\n  return %0"),
            "2:17: type f32[4294967296,4294967296,4] has more elements than fit in memory",
        ),
        (
            wrap("  %0 = matmul %x, %x, axis=0 : f32[4]\n  return %0"),
            "2:23: unknown attribute `axis` for `matmul` (expected none)",
        ),
    ];
    // Sizes that would overflow in a type rule are rejected before it runs.
    let huge = |body: &str| format!("graph @g(%x: f32[4], %h: f32[0,18446744073709551615]) {{\n{body}\n}}\n");
    cases.extend([
        (
            huge("  %0 = pad %x, lo=[18446744073709551615], hi=[1] : f32[4]\n  return %0"),
            "2:8: pad: sizes overflow",
        ),
        (
            huge("  %0 = slice %x, start=[1], step=[9223372036854775807], size=[3] : f32[3]\n  return %0"),
            "2:8: slice: sizes overflow",
        ),
        (huge("  %0 = concat %h, %h, axis=1 : f32[0,1]\n  return %0"), "2:8: concat: sizes overflow"),
        (
            huge("  %0 = expand %x, shape=[18446744073709551615,2] : f32[4]\n  return %0"),
            "2:8: expand: sizes overflow",
        ),
    ]);
    let wrong: Vec<String> = cases
        .iter()
        .filter(|(text, expected)| error_of(text) != *expected)
        .map(|(text, expected)| format!("{text}expected: {expected}\n     got: {}\n", error_of(text)))
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    let e: ParseError = parse("graph").unwrap_err();
    assert_eq!((e.line, e.col), (1, 6));
}

/// Checks that `text` either fails to parse or parses to a graph that round-trips.
fn parse_without_panic(text: &str) -> bool {
    match parse(text) {
        Ok(g) => {
            let printed = print(&g);
            assert_eq!(print(&parse_ok(&printed)), printed);
            true
        }
        Err(_) => false,
    }
}

#[test]
fn garbled_text_is_an_error_not_a_panic() {
    let mut texts: Vec<String> = filetests().into_iter().map(|(_, t)| t).collect();
    texts.extend((1000..1040).map(|seed| print(&random_graph(seed))));
    let mut r = Rng::new(99);
    let junk = [
        "%",
        "\"",
        "[",
        "]",
        ",",
        "=",
        ":",
        "-",
        "9",
        "\n",
        ";",
        "@",
        "\\",
        "é",
        "}",
        "{",
        "(",
        ")",
        "%0",
        "-1",
        "18446744073709551615",
        "99999999999999999999",
        "4294967296",
        "nan",
        "f64",
        "i32[",
        "return",
    ];
    for text in &texts {
        let chars: Vec<char> = text.chars().collect();
        let end = text.trim_end().chars().count();
        // Every prefix that cuts off the closing `}` is an error.
        for cut in 0..end {
            let prefix: String = chars[..cut].iter().collect();
            assert!(!parse_without_panic(&prefix), "prefix parsed:\n{prefix}");
        }
        for _ in 0..200 {
            let mut c = chars.clone();
            for _ in 0..1 + r.below(3) {
                let at = r.below(c.len() + 1);
                match r.below(3) {
                    0 if at < c.len() => {
                        c.remove(at);
                    }
                    1 if at < c.len() => {
                        c.splice(at..at + 1, r.pick(&junk).chars());
                    }
                    _ => {
                        c.splice(at..at, r.pick(&junk).chars());
                    }
                }
            }
            let garbled: String = c.into_iter().collect();
            parse_without_panic(&garbled);
        }
        let lines: Vec<&str> = text.lines().collect();
        for i in 0..lines.len() {
            let mut dup = lines.clone();
            dup.insert(i, lines[i]);
            parse_without_panic(&dup.join("\n"));
            let mut swapped = lines.clone();
            swapped.swap(i, (i + 1) % lines.len());
            parse_without_panic(&swapped.join("\n"));
        }
    }
}

#[test]
fn readme_examples_parse_and_print_back() {
    let readme =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let blocks: Vec<&str> = readme
        .split("```")
        .skip(1)
        .step_by(2)
        .map(|b| b.trim_start_matches('\n'))
        .filter(|b| b.starts_with("graph @"))
        .collect();
    assert_eq!(blocks.len(), 4);
    for block in blocks {
        assert_eq!(print(&parse_ok(block)), block);
    }
}

#[test]
fn broken_graphs_still_print() {
    let mut other = Graph::new("other");
    for _ in 0..6 {
        other.add_input("t", TensorType::new(DType::F32, [2]));
    }
    let mut g = Graph::new("g");
    let x = g.add_input("x", TensorType::new(DType::F32, [2]));
    let x2 = g.add_input("x", TensorType::new(DType::F32, [2]));
    let y = g.add(Op::Binary(BinaryOp::Add), &[x, x2]).unwrap();
    g.set_outputs(vec![y, other.inputs()[5].1]);
    let text = print(&g);
    assert_eq!(text, "graph @g(%x: f32[2], %x: f32[2]) {\n  %0 = add %x, %x : f32[2]\n  return %0, %?5\n}\n");
    assert_eq!(error_of(&text), "1:22: duplicate definition of `%x` (first defined at 1:10)");
    assert!(dot::to_dot(&g).contains("missing1 -> out1"));
}
