//! A test over the op table: every elementwise op in every `ALL` has what each consumer needs
//! (a name the parser reads back, a gradient unless its result is boolean, a cost, an accuracy
//! class, a CPU lowering that resolves and a CUDA form for every dtype it accepts), so a new row
//! that forgets a fact fails here by name rather than being skipped by the table-driven tests.

use tenjit::backend::cpu::codegen::{binary_resolves, unary_resolves};
use tenjit::ir::ops::{Accuracy, BinaryKind, CudaForm};
use tenjit::ir::{text, ArgOp, BinaryOp, DType, Graph, Op, ReduceOp, TensorType, UnaryOp};

/// The dtypes an op accepts.
fn accepted(admits: impl Fn(DType) -> bool) -> Vec<DType> {
    DType::ALL.into_iter().filter(|&d| admits(d)).collect()
}

/// `op` on inputs of `dtype`, printed, parsed and printed again: the same text and op.
fn round_trips(op: &Op, dtype: DType, arity: usize) -> Result<(), String> {
    let mut g = Graph::new("t");
    let xs: Vec<_> = (0..arity).map(|i| g.add_input(format!("x{i}"), TensorType::new(dtype, [3]))).collect();
    let y = g.add(op.clone(), &xs).map_err(|e| e.to_string())?;
    g.set_outputs(vec![y]);
    let printed = text::print(&g);
    let parsed = text::parse(&printed).map_err(|e| format!("{printed}: {e}"))?;
    if text::print(&parsed) != printed {
        return Err(format!("prints differently after parsing:\n{printed}"));
    }
    Ok(())
}

/// The template of `form` for `dtype` names each operand and nothing else.
fn cuda_form_renders(form: &CudaForm, dtype: DType, operands: &[&str]) -> Result<(), String> {
    let t = form.template(dtype);
    if t.is_empty() {
        return Err(format!("no CUDA form for {dtype}"));
    }
    let mut rest = t.replace("{err}", "");
    for o in operands {
        if !rest.contains(o) {
            return Err(format!("CUDA form {t:?} for {dtype} does not use {o}"));
        }
        rest = rest.replace(o, "");
    }
    if rest.contains('{') || rest.contains('}') {
        return Err(format!("CUDA form {t:?} for {dtype} has an unknown placeholder"));
    }
    Ok(())
}

fn accuracy_is_sane(a: Accuracy) -> Result<(), String> {
    match a {
        Accuracy::Exact => Ok(()),
        Accuracy::Ulp(0) => Err("Ulp(0) is Exact".into()),
        Accuracy::Ulp(_) => Ok(()),
    }
}

#[test]
fn every_unary_row_has_what_each_consumer_needs() {
    let mut failures = Vec::new();
    for op in UnaryOp::ALL {
        let spec = op.spec();
        let mut fail = |what: String| failures.push(format!("{} ({op:?}): {what}", spec.name));
        let dtypes = accepted(|d| spec.accepts.admits(d));
        if dtypes.is_empty() {
            fail("accepts no dtype".into());
        }
        let boolean = dtypes.iter().all(|&d| d == DType::Bool);
        if spec.vjp.is_none() != boolean {
            fail(format!("VJP present: {}, result boolean: {boolean}", spec.vjp.is_some()));
        }
        if spec.cost.weight == 0 || spec.cost.cpu == 0 {
            fail(format!("cost {:?} is zero", spec.cost));
        }
        if let Err(e) = accuracy_is_sane(spec.accuracy) {
            fail(e);
        }
        for d in dtypes {
            if let Err(e) = round_trips(&Op::Unary(op), d, 1) {
                fail(format!("text round trip on {d}: {e}"));
            }
            if !unary_resolves(op, d) {
                fail(format!("no CPU lowering on {d} (lowering {:?})", spec.cpu));
            }
            if let Err(e) = cuda_form_renders(&spec.cuda, d, &["{x}"]) {
                fail(e);
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_binary_row_has_what_each_consumer_needs() {
    let mut failures = Vec::new();
    for op in BinaryOp::ALL {
        let spec = op.spec();
        let mut fail = |what: String| failures.push(format!("{} ({op:?}): {what}", spec.name));
        let dtypes = accepted(|d| spec.accepts.admits(d));
        if dtypes.is_empty() {
            fail("accepts no dtype".into());
        }
        let boolean = spec.kind == BinaryKind::Compare || dtypes.iter().all(|&d| d == DType::Bool);
        if spec.vjp.is_none() != boolean {
            fail(format!("VJP present: {}, result boolean: {boolean}", spec.vjp.is_some()));
        }
        if spec.cost.weight == 0 || spec.cost.cpu == 0 {
            fail(format!("cost {:?} is zero", spec.cost));
        }
        if let Err(e) = accuracy_is_sane(spec.accuracy) {
            fail(e);
        }
        for d in dtypes {
            if let Err(e) = round_trips(&Op::Binary(op), d, 2) {
                fail(format!("text round trip on {d}: {e}"));
            }
            if !binary_resolves(op, d) {
                fail(format!("no CPU lowering on {d} (lowering {:?})", spec.cpu));
            }
            if let Err(e) = cuda_form_renders(&spec.cuda, d, &["{x}", "{y}"]) {
                fail(e);
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_reduction_name_round_trips() {
    for op in ReduceOp::ALL {
        let r = Op::Reduce { op, axes: [0].into_iter().collect() };
        round_trips(&r, DType::F32, 1).unwrap_or_else(|e| panic!("{}: {e}", op.name()));
    }
    for op in ArgOp::ALL {
        round_trips(&Op::ArgReduce { op, axis: 0 }, DType::F32, 1)
            .unwrap_or_else(|e| panic!("{}: {e}", op.name()));
    }
}

#[test]
fn names_are_distinct() {
    let mut names: Vec<&str> = UnaryOp::ALL.iter().map(|o| o.spec().name).collect();
    names.extend(BinaryOp::ALL.iter().map(|o| o.spec().name));
    names.extend(ReduceOp::ALL.iter().map(|o| o.name()));
    names.extend(ArgOp::ALL.iter().map(|o| o.name()));
    let mut sorted = names.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), names.len(), "duplicate op names in {names:?}");
}

/// The op added from its row alone, through the user API: values and gradient (exact here).
#[test]
fn softsign_through_the_tensor_api() {
    use tenjit::prelude::*;
    let x = tensor!([-3.0, 0.0, 1.0]).requires_grad_();
    let y = x.softsign();
    assert_eq!(y.to_vec::<f32>(), vec![-0.75, 0.0, 0.5]);
    y.sum().backward();
    assert_eq!(x.grad().unwrap().to_vec::<f32>(), vec![1.0 / 16.0, 1.0, 0.25]);
}
