//! Programs lowered once for every size: `lower_symbolic` of a symbolic graph, instantiated at
//! a binding, computes what the bound graph computes (the interpreter is the oracle, at random
//! bindings including 0 and 1), and is the very program `lower` gives the bound graph wherever
//! the binding makes no size coincide with another (no symbolic dim of value 1, the hints' own
//! decisions).

mod common;

use common::Rng;
use tenjit_ir::kernel::lower::{lower, lower_symbolic};
use tenjit_ir::kernel::symbolic::instantiate;
use tenjit_ir::kernel::{eval, Inst, Program, Step};
use tenjit_ir::ops::Scalar;
use tenjit_ir::sym::Bindings;
use tenjit_ir::text::{parse, print};
use tenjit_ir::{interp, Buffer, Graph};

fn bind(pairs: &[(&str, u64)]) -> Bindings {
    pairs.iter().map(|&(n, v)| (n.to_string(), v)).collect()
}

fn f64s(b: &Buffer) -> Vec<f64> {
    b.scalars().into_iter().map(|s| s.as_f64()).collect()
}

fn close(a: &[Buffer], b: &[Buffer]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.shape() == y.shape()
                && f64s(x).iter().zip(f64s(y)).all(|(p, q)| {
                    (p.is_nan() && q.is_nan()) || p == &q || (p - q).abs() <= 1e-9 * (1.0 + q.abs())
                })
        })
}

/// `p` with every `iota` of constant index map (strides all 0) written as the constant it is:
/// how `lower` of a bound graph has a `size` op, which an instance keeps as such an `iota`.
fn consts(mut p: Program) -> Program {
    for step in &mut p.steps {
        if let Step::Kernel(k) = step {
            for instr in k.body.iter_mut().chain(k.epilogue.iter_mut()) {
                if let Inst::Iota { index } = &instr.inst {
                    if index.strides.iter().all(|&s| s == 0) && index.offset >= 0 {
                        instr.inst = Inst::Const(Scalar::of_size(index.offset as u64, instr.dtype));
                    }
                }
            }
        }
    }
    p
}

/// The graph with hints of at least 2 (a symbolic program is lowered at such hints), or
/// `None` when its hints are smaller.
fn with_big_hints(g: Graph) -> Option<Graph> {
    g.hints().values().all(|&v| v >= 2).then_some(g)
}

#[test]
fn instances_of_random_symbolic_programs_agree_with_the_interpreter() {
    let mut r = Rng::new(0x5eed_0017);
    let (mut lowered, mut compared, mut identical, mut differ_at_distinct) = (0, 0, 0, Vec::new());
    for case in 0..400 {
        let Some(g) = with_big_hints(common::symbolic::random_graph(&mut r)) else { continue };
        let text = print(&g);
        let sym = lower_symbolic(&g).unwrap_or_else(|e| panic!("case {case}: {e}\n{text}"));
        lowered += 1;
        for _ in 0..4 {
            let values = bind(&[("B", r.below(10) as u64), ("T", 1 + r.below(9) as u64)]);
            let Ok(bound) = g.bind(&values) else { continue };
            let p = instantiate(&sym, &values)
                .unwrap_or_else(|e| panic!("case {case} at {values:?}: {e}\n{text}"));
            let inputs = common::symbolic::inputs_for(&bound, |i| (i % 7) as f64 * 0.5 - 1.5);
            let want = interp::eval(&bound, &inputs).unwrap();
            let got = eval::eval(&p, &inputs)
                .unwrap_or_else(|e| panic!("case {case} at {values:?}: {e}\n{text}\n{p}"));
            assert!(close(&got, &want), "case {case} at {values:?}\n{text}\n{p}\n{got:?}\n{want:?}");
            compared += 1;
            let concrete = lower(&bound);
            if consts(p.clone()) == consts(concrete.clone()) {
                identical += 1;
            } else if values.values().all(|&v| v >= 2) && values["B"] != values["T"] {
                differ_at_distinct.push(format!("case {case} at {values:?}\n{text}\n{p}\n{concrete}"));
            }
        }
    }
    assert!(lowered > 150 && compared > 400, "{lowered} graphs lowered, {compared} bindings compared");
    assert!(identical * 2 > compared, "{identical} of {compared} instances are the bound graph's program");
    assert!(differ_at_distinct.is_empty(), "{} differ:\n{}", differ_at_distinct.len(), differ_at_distinct[0]);
}

const GPT_STEP: &str = "\
graph @attn(%q: f32[T,16], %k: f32[T,16], %pos: f32[64,16]) where T:2..=64 = 8 {
  %0 = slice %pos, start=[0,0], step=[1,1], size=[T,16] : f32[T,16]
  %1 = add %q, %0 : f32[T,16]
  %2 = permute %k, perm=[1,0] : f32[16,T]
  %3 = matmul %1, %2 : f32[T,T]
  %4 = max %3, axes=[1] : f32[T]
  %5 = reshape %4, shape=[T,1] : f32[T,1]
  %6 = expand %5, shape=[T,T] : f32[T,T]
  %7 = sub %3, %6 : f32[T,T]
  %8 = exp %7 : f32[T,T]
  %9 = sum %8, axes=[1] : f32[T]
  %10 = size expr=[T] : f32[T]
  %11 = div %9, %10 : f32[T]
  %12 = slice %1, start=[T - 1,0], step=[1,1], size=[1,16] : f32[1,16]
  return %11, %12
}
";

#[test]
fn one_program_serves_every_context_length() {
    let g = parse(GPT_STEP).unwrap_or_else(|e| panic!("{e}"));
    let sym = lower_symbolic(&g).unwrap();
    assert!(sym.program.steps.iter().any(|s| matches!(s, Step::Matmul(_))));
    for t in [2u64, 3, 5, 8, 17, 64] {
        let values = bind(&[("T", t)]);
        let bound = g.bind(&values).unwrap();
        let p: Program = instantiate(&sym, &values).unwrap();
        assert_eq!(consts(p.clone()), consts(lower(&bound)), "T = {t}");
        let inputs = common::symbolic::inputs_for(&bound, |i| ((i * 7) % 11) as f64 * 0.1 - 0.5);
        let inputs: Vec<Buffer> = inputs.into_iter().map(|b| b.cast(tenjit_ir::DType::F32)).collect();
        let want = interp::eval(&bound, &inputs).unwrap();
        let got = eval::eval(&p, &inputs).unwrap();
        for (a, b) in got.iter().zip(&want) {
            let (a, b) = (f64s(a), f64s(b));
            assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() <= 1e-4 * (1.0 + y.abs())), "T = {t}");
        }
    }
}

#[test]
fn graphs_without_a_symbolic_program_say_why() {
    let concrete = parse("graph @f(%x: f32[4]) {\n  %0 = exp %x : f32[4]\n  return %0\n}\n").unwrap();
    assert!(lower_symbolic(&concrete).unwrap_err().contains("no symbols"));
    let small = parse(&GPT_STEP.replace("T:2..=64 = 8", "T:1..=64 = 1")).unwrap();
    assert!(lower_symbolic(&small).unwrap_err().contains("hint 1"));
}

/// `split-reduce` on symbolic graphs: the split graph has one symbolic program, whose slices
/// of the cut axis are views read by the kernels (no copy step), and its instances compute what
/// the unsplit graph bound at the same sizes computes, at sizes that are and are not multiples
/// of the blocks and at the ends of the range.
#[test]
fn split_reductions_lower_once_for_every_size() {
    use tenjit_ir::passes::{split_reduce::SplitReduce, Pass};
    let cases: [(&str, usize, &[u64]); 4] = [
        (
            "graph @f(%x: f32[N]) where N:65..=400000 = 300000 {\n  %0 = sum %x, axes=[0] : f32[]\n  return %0\n}",
            3,
            &[65, 66, 128, 129, 5000, 300000, 400000],
        ),
        (
            "graph @f(%x: f32[N]) where N:65..=400000 = 300000 {\n  %0 = max %x, axes=[0] : f32[]\n  return %0\n}",
            3,
            &[65, 127, 4097, 300000],
        ),
        (
            "graph @f(%x: f32[N,64]) where N:17.. = 4096 {\n  %0 = sum %x, axes=[0] : f32[64]\n  return %0\n}",
            3,
            &[17, 31, 32, 33, 4096, 4111],
        ),
        (
            "graph @f(%x: f32[B,4096]) where B:0..=256 = 64 {\n  %0 = sum %x, axes=[0,1] : f32[]\n  return %0\n}",
            2,
            &[0, 1, 2, 63, 64, 65, 256],
        ),
    ];
    for (src, kernels, sizes) in cases {
        let g = parse(src).unwrap_or_else(|e| panic!("{e}"));
        let mut split = g.clone();
        assert!(SplitReduce::default().run(&mut split), "{src}");
        let sym = lower_symbolic(&split).unwrap_or_else(|e| panic!("{e}\n{split}"));
        let steps = &sym.program.steps;
        assert!(
            steps.len() == kernels && steps.iter().all(|s| matches!(s, Step::Kernel(_))),
            "{} steps, {kernels} kernels expected:\n{}",
            steps.len(),
            sym.program
        );
        let symbol = g.symbols().iter().next().unwrap().name.clone();
        for &v in sizes {
            let values = bind(&[(symbol.as_str(), v)]);
            let bound = g.bind(&values).unwrap();
            let p = instantiate(&sym, &values).unwrap_or_else(|e| panic!("{symbol} = {v}: {e}"));
            let inputs = common::symbolic::inputs_for(&bound, |i| ((i * 7919) % 509) as f64 / 4.0 - 60.0);
            let inputs: Vec<Buffer> = inputs.into_iter().map(|b| b.cast(tenjit_ir::DType::F32)).collect();
            let want = interp::eval(&bound, &inputs).unwrap();
            let got = eval::eval(&p, &inputs).unwrap_or_else(|e| panic!("{symbol} = {v}: {e}\n{p}"));
            let scale = 64.0 * v as f64 * 64.0 + 1.0;
            for (a, b) in f64s(&got[0]).iter().zip(f64s(&want[0])) {
                assert!((a - b).abs() <= 1e-6 * scale, "{src}\n{symbol} = {v}: {a} vs {b}");
            }
        }
    }
}
