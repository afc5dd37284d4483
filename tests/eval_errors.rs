//! Errors found in data while a program runs (an index out of range, an integer division by
//! zero) name the op the user called, the offending value and its bound, and the line of the
//! call, on the CPU backend and in the interpreter alike, however the op was fused and
//! whichever call site compiled the program.

use tenjit::ir::kernel::Step;
use tenjit::prelude::*;
use tenjit::{Backend, Error, EvalErrorKind};

#[path = "common/on_both.rs"]
mod on_both;
use on_both::{on_both, TURN};

/// Realizes `t`, which must fail in data with `kind`, at line `line` of this file, naming op
/// `op` with `message`; returns the error's text.
fn fails_at(t: &Tensor, kind: EvalErrorKind, op: &str, message: &str, line: u32, backend: Backend) -> String {
    let err = t.try_realize().expect_err("the realization fails");
    let text = err.to_string();
    match &err {
        Error::Eval { kind: k, op: Some(o), message: m, at: Some(at), .. } => {
            assert_eq!((*k, *o, m.as_str()), (kind, op, message), "{backend:?}: {text}");
            assert_eq!((at.file(), at.line()), ("tests/eval_errors.rs", line), "{backend:?}: {text}");
        }
        other => panic!("{backend:?}: not a located evaluation error: {other:?}"),
    }
    let head = format!("evaluation failed: {op}: {message} (at tests/eval_errors.rs:{line}:");
    assert!(text.starts_with(&head), "{backend:?}: `{text}` does not start with `{head}`");
    text
}

#[test]
fn gather_index_out_of_range() {
    on_both(|b| {
        let x = tensor!([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]);
        let (y, line) = (x.gather(1, &tensor!([[0, 5], [1, 2]])), line!());
        let text = fails_at(
            &y,
            EvalErrorKind::IndexOutOfRange,
            "gather",
            "index 5 is out of bounds for dimension 1 with size 3",
            line,
            b,
        );
        // Our own names follow, in parentheses.
        assert!(text.ends_with(')') && text.contains("gather"), "{text}");
        let (y, line) = (x.gather(0, &tensor!([[0, 1, -1]])), line!());
        fails_at(
            &y,
            EvalErrorKind::IndexOutOfRange,
            "gather",
            "index -1 is out of bounds for dimension 0 with size 2",
            line,
            b,
        );
    });
}

#[test]
fn index_select_index_out_of_range() {
    on_both(|b| {
        let (y, line) = (Tensor::eye(3).index_select(0, &tensor!([0, 5])), line!());
        fails_at(
            &y,
            EvalErrorKind::IndexOutOfRange,
            "index_select",
            "index 5 is out of bounds for dimension 0 with size 3",
            line,
            b,
        );
        let x = Tensor::arange(12).reshape([3, 4]);
        let (y, line) = (x.index_select(1, &tensor!([-2])), line!());
        fails_at(
            &y,
            EvalErrorKind::IndexOutOfRange,
            "index_select",
            "index -2 is out of bounds for dimension 1 with size 4",
            line,
            b,
        );
    });
}

#[test]
fn scatter_add_of_a_gradient_index_out_of_range() {
    // The gradient of a gather scatters into its operand; the nodes of a gradient are
    // recorded at the call that asked for it.
    on_both(|b| {
        let x = tensor!([1.0, 2.0, 3.0]).requires_grad_();
        for (bad, message) in [
            (7, "index 7 is out of bounds for dimension 0 with size 3"),
            (-3, "index -3 is out of bounds for dimension 0 with size 3"),
        ] {
            let y = x.gather(0, &Tensor::from_vec(vec![0i64, bad], [2]));
            let (g, line) = (tenjit::grad(&[&y.sum()], &[&x]), line!());
            fails_at(&g[0], EvalErrorKind::IndexOutOfRange, "scatter_add", message, line, b);
        }
    });
}

#[test]
fn integer_division_and_remainder_by_zero() {
    on_both(|b| {
        let (n, d) = (tensor!([7, 8, 9]), tensor!([2, 0, 3]));
        let (q, line) = (n.floor_divide(&d), line!());
        fails_at(&q, EvalErrorKind::Arithmetic, "floor_divide", "integer division by zero", line, b);
        let (r, line) = (&n % &d, line!());
        let text = fails_at(&r, EvalErrorKind::Arithmetic, "remainder", "integer remainder by zero", line, b);
        assert!(!text.contains("kernel k0:"), "{text}");
    });
}

#[test]
fn the_failing_division_of_a_fused_chain_is_named() {
    on_both(|b| {
        let (n, ones, zeros) =
            (tensor!([[7, 8], [9, 10]]), tensor!([[1, 1], [1, 1]]), tensor!([[1, 1], [0, 1]]));
        // One elementwise chain, so one kernel on the CPU with two divisions: the second fails.
        let first = (&n * 3 + 1).floor_divide(&ones);
        let (second, line) = ((&first - 2).floor_divide(&zeros), line!());
        let out = (second + 5).abs();
        let program = tenjit::inspect(&[&out]).program().clone();
        match &program.steps[..] {
            [Step::Kernel(k)] => assert_eq!(k.failing_sites().len(), 2, "{program}"),
            _ => panic!("not one kernel:\n{program}"),
        }
        fails_at(&out, EvalErrorKind::Arithmetic, "floor_divide", "integer division by zero", line, b);
        // The same chain with the first division failing names the first line.
        let (first, line) = ((&n * 3 + 1) % &zeros, line!());
        let second = (&first - 2).floor_divide(&ones);
        let out = (second + 5).abs();
        fails_at(&out, EvalErrorKind::Arithmetic, "remainder", "integer remainder by zero", line, b);
    });
}

#[test]
fn the_failing_division_of_a_row_group_is_named() {
    // Softmax-like rows over a quotient: reductions and their elementwise consumers, which the
    // CPU scheduler runs row block by row block.
    on_both(|b| {
        let n = Tensor::arange(64).reshape([8, 8]);
        let mut d = vec![1i64; 64];
        d[37] = 0;
        let d = Tensor::from_vec(d, [8, 8]);
        let (q, line) = (n.floor_divide(&d), line!());
        let s = q.to_dtype(DType::F32);
        let e = (&s - s.amax(1, true)).exp();
        let p = &e / e.sum_dim(1, true);
        let stages = tenjit::inspect(&[&p]);
        assert_eq!(stages.group_count(), 1, "{}", stages.kernels());
        fails_at(&p, EvalErrorKind::Arithmetic, "floor_divide", "integer division by zero", line, b);
    });
}

#[test]
fn each_call_site_of_one_compiled_program_reports_its_own_line() {
    on_both(|b| {
        let x = Tensor::arange(15).reshape([3, 5]).to_dtype(DType::F64);
        x.realize();
        let bad = tensor!([[4, 9, 0]]);
        bad.realize();
        let before = tenjit::compile_count();
        let (y, first) = (x.gather(1, &bad).sum(), line!());
        let message = "index 9 is out of bounds for dimension 1 with size 5";
        fails_at(&y, EvalErrorKind::IndexOutOfRange, "gather", message, first, b);
        let (y, second) = (x.gather(1, &bad).sum(), line!());
        fails_at(&y, EvalErrorKind::IndexOutOfRange, "gather", message, second, b);
        let compiled = tenjit::compile_count() - before;
        let want = if b == Backend::Cpu { 1 } else { 0 };
        assert_eq!(compiled, want, "{b:?}: one compilation serves both call sites");
    });
}

#[test]
fn cuda_failures_name_the_node_they_come_from() {
    // The CUDA runtime's error word names only what failed; the node is found in the program,
    // as here, and the realization maps it to the call site as for the CPU. No GPU needed.
    use tenjit::backend::cuda::backend::kernel_failure;
    use tenjit::backend::cuda::codegen::DeviceFailure;
    use tenjit::EvalOrigin;
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let node_of = |e: Error| match e {
        Error::Eval { origin: Some(EvalOrigin { node: Some(n), .. }), message, .. } => (n, message),
        other => panic!("no node: {other:?}"),
    };
    let x = tensor!([[1.0, 2.0, 3.0]]);
    let (y, line) = (x.index_select(1, &tensor!([0, 4])), line!());
    let y = y.exp();
    let program = tenjit::inspect(&[&y]).program().clone();
    let (n, message) = node_of(kernel_failure(&program, &DeviceFailure::IndexOutOfRange { op: "gather" }));
    assert_eq!(message, "an index is out of bounds for dimension 1 with size 3");
    let g = tenjit::graph(&[&y]);
    assert_eq!(g.op(n).name(), "gather");
    let at = format!("tests/eval_errors.rs:{line}:");
    assert!(g.loc(n).is_some_and(|l| l.starts_with(&at)), "{g}");

    let (a, d) = (tensor!([5, 6]), tensor!([1, 0]));
    let q = (&a + 1).floor_divide(&a);
    let (r, line) = (&q % &d, line!());
    let out = r * 3;
    let program = tenjit::inspect(&[&out]).program().clone();
    let failure = DeviceFailure::Arithmetic { op: "rem", message: "integer remainder by zero" };
    let (n, _) = node_of(kernel_failure(&program, &failure));
    let g = tenjit::graph(&[&out]);
    assert_eq!(g.op(n).name(), "rem");
    let at = format!("tests/eval_errors.rs:{line}:");
    assert!(g.loc(n).is_some_and(|l| l.starts_with(&at)), "{g}");
}
