//! Differential testing: random graphs of elementwise, broadcast, movement, reduction,
//! matmul and library ops, compiled by the CPU backend and compared with the reference
//! interpreter. A failing case is shrunk (nodes are cut into inputs while it keeps failing)
//! and printed as a small text-IR graph with its inputs.
//!
//! 500 graphs in the normal run; `TENJIT_DIFF_CASES=N` runs more, `TENJIT_DIFF_SEED=S` another
//! stream.

use tenjit::ir::interp;
use tenjit::ir::{Buffer, DType, Graph, NodeId, Op, Scalar};

#[path = "common/random_graphs.rs"]
mod random_graphs;
#[path = "common/rng.rs"]
mod rng;
use random_graphs::random_graph;
use rng::Rng;

/// Whether two results agree: ints and bools exactly, floats to a relative tolerance `tol`;
/// two zeros only with the same sign.
fn agree(a: &Buffer, b: &Buffer, tol: f64) -> Result<(), String> {
    if a.ty() != b.ty() {
        return Err(format!("types {} and {}", a.ty(), b.ty()));
    }
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

/// The relative tolerance of a graph's results: the precision of the coarsest float format of
/// any value it computes, whose rounding shows through later casts. Compiled kernels keep 16-bit
/// intermediates in `f32` and round at the edges (`tenjit_ir::kernel::half`) where the
/// interpreter rounds every node, so a `bf16` value cast to `f16` or `f32` agrees to `bf16`'s
/// precision (one step is 2^-8 of the value, up to 2^-7 below a power of two), not to its own.
fn tolerance(g: &Graph) -> f64 {
    // Inputs are exact in every wider format; computed values are rounded.
    let computed = g.nodes().into_iter().filter(|&n| !matches!(g.op(n), Op::Input { .. }));
    let dtypes: Vec<DType> = computed.map(|n| g.ty(n).dtype).collect();
    if dtypes.contains(&DType::BF16) {
        8e-3
    } else if dtypes.contains(&DType::F16) {
        1e-3
    } else if dtypes.contains(&DType::F32) {
        2e-4
    } else {
        1e-9
    }
}

/// Runs one case both ways: `Ok` if they agree (or both fail), else the disagreement.
fn check(g: &Graph, inputs: &[Buffer]) -> Result<(), String> {
    let expected = interp::eval(g, inputs);
    let got = tenjit::run_graph(g, inputs);
    match (got, expected) {
        (Ok(got), Ok(expected)) => {
            for (i, (a, b)) in got.iter().zip(&expected).enumerate() {
                agree(a, b, tolerance(g)).map_err(|e| format!("output {i}: {e}"))?;
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
