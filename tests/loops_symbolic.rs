//! `fori_loop` with symbolic sizes: a loop whose operands' dims vary (a training loop over a
//! data set of `n` rows) compiles once per symbolic signature. The loop's body is made
//! symbolic with the graph holding it (its inputs typed over the graph's symbols, its sizes
//! expressions of them), lowered once with it, and instantiated per size like the rest of the
//! program. Values are checked against the interpreter (the oracle) and against the same
//! training loop computed in f64 here; compile counts through `compile_count` and
//! `instance_count`, as tests/dynamic_shapes.rs does. The tests take turns: the backend and
//! the counters are process-wide.

use std::sync::Mutex;
use tenjit::ir::graph::generalize;
use tenjit::ir::kernel::lower::lower_symbolic;
use tenjit::ir::kernel::symbolic::{instantiate, SymStep};
use tenjit::ir::Buffer;
use tenjit::prelude::*;
use tenjit::runtime::dynamic::Dynamic;
use tenjit::{Backend, ProgramOrigin};

/// The turn of the test using the backend and the counters.
static TURN: Mutex<()> = Mutex::new(());

/// Rows of `f` features in `[-1, 1)`, and targets `x @ w_true + 0.5` with a little noise,
/// from a counter-based formula (no random state).
fn data(n: usize, f: usize) -> (Vec<f32>, Vec<f32>) {
    let x: Vec<f32> = (0..n * f).map(|i| ((i * 7919 + 13) % 2003) as f32 / 1001.5 - 1.0).collect();
    let y = (0..n)
        .map(|r| {
            let dot: f32 = (0..f).map(|c| x[r * f + c] * (c as f32 * 0.25 - 0.5)).sum();
            dot + 0.5 + ((r * 31) % 7) as f32 * 0.01
        })
        .collect();
    (x, y)
}

/// `steps` steps of SGD (rate `lr`) on the mean squared error of `x @ w + b` against `y`,
/// in f64: the oracle's (w, b).
fn sgd_f64(x: &[f32], y: &[f32], n: usize, f: usize, steps: usize, lr: f64) -> (Vec<f64>, f64) {
    let (mut w, mut b) = (vec![0.0f64; f], 0.0f64);
    for _ in 0..steps {
        let r: Vec<f64> = (0..n)
            .map(|i| (0..f).map(|c| x[i * f + c] as f64 * w[c]).sum::<f64>() + b - y[i] as f64)
            .collect();
        let gw: Vec<f64> = (0..f)
            .map(|c| 2.0 / n as f64 * (0..n).map(|i| x[i * f + c] as f64 * r[i]).sum::<f64>())
            .collect();
        let gb = 2.0 / n as f64 * r.iter().sum::<f64>();
        for c in 0..f {
            w[c] -= lr * gw[c];
        }
        b -= lr * gb;
    }
    (w, b)
}

/// The loop: `steps` SGD steps of linear regression on `x: [n, f]`, `y: [n, 1]`, its loss the
/// mean of the squared residuals (`mean_dim(0)` over the rows when `by_rows`: a mean over
/// the symbolic dim, then the one column), its gradient by `tenjit::grad` inside the body.
fn sgd(x: &Tensor, y: &Tensor, steps: usize, lr: f64, by_rows: bool) -> Vec<Tensor> {
    sgd_f(x, y, x.shape()[1], steps, lr, by_rows)
}

/// [`sgd`] for `f` features (a symbolic trace must not read `x`'s shape: that would tie it to
/// its sizes).
fn sgd_f(x: &Tensor, y: &Tensor, f: usize, steps: usize, lr: f64, by_rows: bool) -> Vec<Tensor> {
    let init = [Tensor::zeros([f, 1]), Tensor::zeros([1])];
    tenjit::fori_loop(steps, &init, |p| {
        let (w, b) = (p[0].requires_grad_(), p[1].requires_grad_());
        let r = (x.matmul(&w) + &b - y).square();
        let loss = if by_rows { r.mean_dim(0, false).sum() } else { r.mean() };
        let g = tenjit::grad(&[&loss], &[&w, &b]);
        vec![&w - &g[0] * lr, &b - &g[1] * lr]
    })
}

/// The trained (w, b) as one vector, both realized together (one graph).
fn trained(out: &[Tensor]) -> Vec<f32> {
    tenjit::realize(&[&out[0], &out[1]]);
    let mut v = out[0].to_vec::<f32>();
    v.extend(out[1].to_vec::<f32>());
    v
}

/// Asserts `got` is the f64 oracle's (w, b) within `tol` (relative to 1 + |value|).
fn assert_oracle(got: &[f32], want: &(Vec<f64>, f64), tol: f64, what: &str) {
    let mut all = want.0.clone();
    all.push(want.1);
    assert_eq!(got.len(), all.len(), "{what}");
    for (a, b) in got.iter().zip(&all) {
        assert!((*a as f64 - b).abs() <= tol * (1.0 + b.abs()), "{what}: {got:?} vs oracle {all:?}");
    }
}

fn assert_close(got: &[f32], want: &[f32], tol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (a, b) in got.iter().zip(want) {
        assert!((a - b).abs() <= tol * (1.0 + b.abs()), "{what}: {got:?} vs {want:?}");
    }
}

/// Runs the loop at each size of `sizes` (marking the rows of `x` and `y` when `mark`), and
/// returns the trained values per size with the compile report of each realization.
fn run_sizes(
    sizes: &[usize],
    f: usize,
    mark: bool,
    by_rows: bool,
) -> Vec<(Vec<f32>, Option<tenjit::CompileReport>)> {
    sizes
        .iter()
        .map(|&n| {
            let (xv, yv) = data(n, f);
            let (x, y) = (Tensor::from_vec(xv, [n, f]), Tensor::from_vec(yv, [n, 1]));
            if mark {
                x.mark_dynamic_as(0, "N", 2..);
                y.mark_dynamic_as(0, "N", 2..);
            }
            let reports = tenjit::compile_reports().len();
            let got = trained(&sgd(&x, &y, 100, 0.05, by_rows));
            let report = tenjit::compile_reports().get(reports).cloned();
            (got, report)
        })
        .collect()
}

/// Checks every size's values against the f64 oracle and against the interpreter.
fn check_values(sizes: &[usize], f: usize, by_rows: bool, got: &[(Vec<f32>, Option<tenjit::CompileReport>)]) {
    tenjit::set_backend(Backend::Interp);
    let interp = run_sizes(sizes, f, false, by_rows);
    tenjit::set_backend(Backend::Cpu);
    for ((&n, (cpu, _)), (want, _)) in sizes.iter().zip(got).zip(&interp) {
        let (xv, yv) = data(n, f);
        assert_oracle(cpu, &sgd_f64(&xv, &yv, n, f, 100, 0.05), 2e-4, &format!("n = {n}"));
        assert_close(cpu, want, 1e-5, &format!("n = {n} against the interpreter"));
    }
}

/// 100 SGD steps of linear regression on `X: [n, 8]`, `y: [n, 1]` realized lazily at
/// n = 5, 9, 17, 33, 100: the first size compiles its graph, the second makes the rows
/// symbolic (the loop's body with them) and compiles the symbolic program, and every later
/// size is an instance of it: one compilation after the generalization. n = 1 (and 0) stay
/// special, as they do for every graph, and n = 1 still computes the right values.
#[test]
fn an_sgd_loop_compiles_once_across_data_set_sizes() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    tenjit::set_backend(Backend::Cpu);
    let sizes = [5, 9, 17, 33, 100];
    let (compiles, instances) = (tenjit::compile_count(), tenjit::instance_count());
    let got = run_sizes(&sizes, 8, false, false);
    assert_eq!(tenjit::compile_count() - compiles, 2, "n = 5, then the symbolic program at n = 9");
    assert_eq!(tenjit::instance_count() - instances, 3, "n = 17, 33, 100 are instances");
    let origins: Vec<ProgramOrigin> =
        got.iter().map(|(_, r)| r.clone().expect("a compile report").origin).collect();
    assert_eq!(
        origins[1..],
        [ProgramOrigin::Symbolic, ProgramOrigin::Instance, ProgramOrigin::Instance, ProgramOrigin::Instance],
        "{:#?}",
        got.iter().map(|(_, r)| r.as_ref().map(|r| r.to_string())).collect::<Vec<_>>()
    );
    check_values(&sizes, 8, false, &got);

    // n = 1 is no instance (sizes 0 and 1 are lowered for their value): it compiles, and is right.
    let compiles = tenjit::compile_count();
    let one = run_sizes(&[1], 8, false, false);
    assert_eq!(tenjit::compile_count() - compiles, 1);
    check_values(&[1], 8, false, &one);
}

/// The same loop with the rows of `X` and `y` marked dynamic (as one symbol, `N`) and its loss
/// a mean over the rows (`mean_dim(0)`, whose divisor must follow `N`): the first size compiles
/// the symbolic program, every later one (7 and 33 are no multiples of the vector width) is an
/// instance. (Not 2: its mean divides by 2.0, a constant the simplifier knows, which is not
/// lifted into a runtime operand as other sizes are, so its graph is another structure.)
#[test]
fn a_marked_loop_compiles_once_with_a_mean_over_the_symbolic_dim() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    tenjit::set_backend(Backend::Cpu);
    let sizes = [12, 7, 33, 3, 64];
    let (compiles, instances) = (tenjit::compile_count(), tenjit::instance_count());
    let got = run_sizes(&sizes, 6, true, true);
    let reports: Vec<String> =
        got.iter().map(|(_, r)| r.as_ref().map(|r| r.to_string()).unwrap_or_default()).collect();
    assert_eq!(tenjit::compile_count() - compiles, 1, "{reports:#?}");
    assert_eq!(tenjit::instance_count() - instances, 4, "{reports:#?}");
    let first = got[0].1.clone().expect("a compile report");
    assert_eq!(first.origin, ProgramOrigin::Symbolic, "{first}");
    check_values(&sizes, 6, true, &got);
}

/// The loop's graph at two sizes generalizes into one symbolic graph whose loop body is
/// symbolic over the graph's symbol; it prints and parses back to itself, binds to the graph
/// of a third size, and its symbolic program, instantiated there, runs as the interpreter
/// does (the CUDA code generator refuses it clearly, as every loop).
#[test]
fn a_symbolic_loop_body_prints_parses_and_binds() {
    let graph_at = |n: usize| {
        let (xv, yv) = data(n, 3);
        let (x, y) = (Tensor::from_vec(xv, [n, 3]), Tensor::from_vec(yv, [n, 1]));
        let out = sgd(&x, &y, 4, 0.1, true);
        tenjit::graph_with(&[&out[0], &out[1]], tenjit::TraceOptions { locations: false })
    };
    let (a, b, c) = (graph_at(4), graph_at(6), graph_at(11));
    let sym = generalize(&a, &b, &|_, _| None).expect("the graphs generalize").graph;
    let text = tenjit::ir::text::print(&sym);
    // The body declares the graph's symbol, and its inputs' rows are it.
    let body = text.split("graph @").nth(1).expect("the body prints first");
    assert!(body.contains("where d0:2.. = 6"), "{text}");
    assert!(body.contains("f32[d0,3]") && body.contains("f32[d0,1]"), "{text}");
    let parsed = tenjit::ir::text::parse(&text).expect("the text parses");
    assert_eq!(tenjit::ir::text::print(&parsed), text);
    // Bound at n = 11, it is the graph traced at 11, the parsed one too.
    let values = sym.instance_bindings(&c).expect("n = 11 is an instance");
    assert_eq!(values.get("d0"), Some(&11));
    assert_eq!(sym.bind(&values).unwrap().fingerprint(), c.fingerprint());
    let bound = tenjit::ir::text::print(&parsed.bind(&values).unwrap());
    assert_eq!(bound, tenjit::ir::text::print(&c));
    assert!(!bound.contains("d0"), "{bound}");

    // Lowered once (the loop's body with it), instantiated at n = 11, the program computes
    // what the interpreter computes on the graph traced at 11.
    let lowered = lower_symbolic(&sym).expect("a symbolic program");
    assert!(lowered.steps.iter().any(|s| matches!(s, SymStep::Loop { .. })), "{lowered:?}");
    let program = instantiate(&lowered, &values).expect("it instantiates at n = 11");
    let (xv, yv) = data(11, 3);
    let inputs = [Buffer::from_vec(xv, [11, 3]).unwrap(), Buffer::from_vec(yv, [11, 1]).unwrap()];
    let want = tenjit::ir::interp::eval(&c, &inputs).expect("the interpreter runs it");
    // The CUDA code generator refuses it as it refuses every loop: clearly, no panic.
    let e = tenjit::backend::cuda::codegen::render_program(&program).unwrap_err().to_string();
    assert!(e.contains("fori_loop is not compiled for CUDA yet"), "{e}");
    let got = tenjit::ir::kernel::eval::eval(&program, &inputs).expect("the program runs");
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_close(
            g.as_slice::<f32>().unwrap(),
            w.as_slice::<f32>().unwrap(),
            1e-5,
            "the program at n = 11",
        );
    }
}

/// A jitted closure running the SGD loop on rows marked dynamic is traced once, over the
/// rows' symbol, loop body included (the mean's divisor in the body is a `size` of it): every
/// later size binds that trace, and the loop program is compiled once and instantiated for
/// the others.
#[test]
fn a_jitted_loop_on_marked_rows_is_traced_once() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    tenjit::set_backend(Backend::Cpu);
    let step = |p: &[Tensor]| sgd_f(&p[0], &p[1], 5, 100, 0.05, false);
    let jitted = tenjit::jit(step);
    let sizes = [6usize, 9, 17, 33, 100, 7];
    let (compiles, instances) = (tenjit::compile_count(), tenjit::instance_count());
    for (k, &n) in sizes.iter().enumerate() {
        let (xv, yv) = data(n, 5);
        let (x, y) = (Tensor::from_vec(xv.clone(), [n, 5]), Tensor::from_vec(yv.clone(), [n, 1]));
        if k == 0 {
            x.mark_dynamic(0);
            y.mark_dynamic(0);
        }
        let got = trained(&jitted.call(&[&x, &y]));
        assert_oracle(&got, &sgd_f64(&xv, &yv, n, 5, 100, 0.05), 2e-4, &format!("jit at n = {n}"));
    }
    assert_eq!(jitted.why_traced_again(), None, "{:?}", jitted.trace_reasons());
    assert_eq!(jitted.trace_count(), 1, "the closure ran once");
    assert_eq!(tenjit::compile_count() - compiles, 1, "one loop program for every size");
    assert_eq!(tenjit::instance_count() - instances, sizes.len() - 1);
}

/// A body that divides by the number of rows by hand (`/ n`, a constant of the body, which a
/// loop does not lift into a runtime operand as a realization does outside one), on rows
/// marked dynamic: the constant is taken for a `size` of the marked symbol, so the first size
/// compiles the one symbolic program and the others are instances, and the divisor follows
/// the size (values against f64 gradient descent and the interpreter).
#[test]
fn a_size_written_by_hand_in_a_marked_body_follows_the_symbol() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let run = |n: usize| {
        let (xv, yv) = data(n, 4);
        let (x, y) = (Tensor::from_vec(xv, [n, 4]), Tensor::from_vec(yv, [n, 1]));
        x.mark_dynamic_as(0, "N", 2..);
        y.mark_dynamic_as(0, "N", 2..);
        let out = tenjit::fori_loop(10, &[Tensor::zeros([4, 1])], |p| {
            let r = x.matmul(&p[0]) - &y;
            vec![&p[0] - x.t().matmul(&r) / (n as f64)]
        });
        out[0].to_vec::<f32>()
    };
    let sizes = [12usize, 7, 33, 5];
    tenjit::set_backend(Backend::Cpu);
    let (compiles, instances) = (tenjit::compile_count(), tenjit::instance_count());
    let got: Vec<Vec<f32>> = sizes.iter().map(|&n| run(n)).collect();
    assert_eq!(tenjit::compile_count() - compiles, 1);
    assert_eq!(tenjit::instance_count() - instances, 3);
    tenjit::set_backend(Backend::Interp);
    let interp: Vec<Vec<f32>> = sizes.iter().map(|&n| run(n)).collect();
    tenjit::set_backend(Backend::Cpu);
    for ((&n, cpu), want) in sizes.iter().zip(&got).zip(&interp) {
        assert_close(cpu, want, 1e-5, &format!("n = {n} against the interpreter"));
        // Gradient descent of rate 2 on the mean squared error: w -= X^T (X w - y) / n.
        let (xv, yv) = data(n, 4);
        let mut w = [0.0f64; 4];
        for _ in 0..10 {
            let r: Vec<f64> = (0..n)
                .map(|i| (0..4).map(|c| xv[i * 4 + c] as f64 * w[c]).sum::<f64>() - yv[i] as f64)
                .collect();
            for c in 0..4 {
                w[c] -= (0..n).map(|i| xv[i * 4 + c] as f64 * r[i]).sum::<f64>() / n as f64;
            }
        }
        let got64: Vec<f64> = cpu.iter().map(|&v| v as f64).collect();
        for (a, b) in got64.iter().zip(&w) {
            assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "n = {n}: {cpu:?} vs {w:?}");
        }
    }
}

/// The gradients of a loss after a loop with respect to the loop's initial value and to a
/// captured tensor with a symbolic dim (the reverse rule's history and backward loops, whose
/// bodies are symbolic too), for a loop of `trips` trips.
fn through_loop(x: &Tensor, y: &Tensor, trips: usize) -> Vec<Tensor> {
    let w0 = Tensor::from_vec(vec![0.5f32, -0.25, 0.125], [3, 1]).requires_grad_();
    let x = x.requires_grad_();
    let out = tenjit::fori_loop(trips, std::slice::from_ref(&w0), |p| {
        let r = x.matmul(&p[0]) - y;
        vec![&p[0] - x.t().matmul(&r) * 0.05]
    });
    let loss = out[0].square().sum();
    tenjit::grad(&[&loss], &[&w0, &x])
}

fn gradients(g: &[Tensor]) -> Vec<f32> {
    tenjit::realize(&[&g[0], &g[1]]);
    let mut v = g[0].to_vec::<f32>();
    v.extend(g[1].to_vec::<f32>());
    v
}

/// Gradients through a loop, lazily at new sizes: the forward, history and backward loops
/// become symbolic together (one compilation after the generalization), and the values are
/// the interpreter's.
#[test]
fn gradients_through_a_loop_compile_once_across_sizes() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let sizes = [5usize, 9, 17, 33];
    let run = |n: usize| {
        let (xv, yv) = data(n, 3);
        gradients(&through_loop(&Tensor::from_vec(xv, [n, 3]), &Tensor::from_vec(yv, [n, 1]), 5))
    };
    tenjit::set_backend(Backend::Cpu);
    let (compiles, instances) = (tenjit::compile_count(), tenjit::instance_count());
    let got: Vec<Vec<f32>> = sizes.iter().map(|&n| run(n)).collect();
    let reports: Vec<String> =
        tenjit::compile_reports().iter().rev().take(4).map(|r| r.to_string()).collect();
    assert_eq!(tenjit::compile_count() - compiles, 2, "{reports:#?}");
    assert_eq!(tenjit::instance_count() - instances, 2, "{reports:#?}");
    tenjit::set_backend(Backend::Interp);
    let want: Vec<Vec<f32>> = sizes.iter().map(|&n| run(n)).collect();
    tenjit::set_backend(Backend::Cpu);
    for ((&n, g), w) in sizes.iter().zip(&got).zip(&want) {
        assert_eq!(g.len(), 3 + n * 3);
        assert_close(g, w, 1e-4, &format!("gradients at n = {n}"));
    }
}

/// The same gradients in a jitted closure on rows marked dynamic: traced once (the loop rule
/// differentiates the symbolic body into symbolic history and backward bodies), compiled once.
#[test]
fn gradients_through_a_loop_in_jit_are_traced_once() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    tenjit::set_backend(Backend::Cpu);
    // Six trips: not the structure the lazy test compiled.
    let jitted = tenjit::jit(|p: &[Tensor]| through_loop(&p[0], &p[1], 6));
    let sizes = [6usize, 10, 3, 40];
    let (compiles, instances) = (tenjit::compile_count(), tenjit::instance_count());
    let mut got = Vec::new();
    for (k, &n) in sizes.iter().enumerate() {
        let (xv, yv) = data(n, 3);
        let (x, y) = (Tensor::from_vec(xv, [n, 3]), Tensor::from_vec(yv, [n, 1]));
        if k == 0 {
            x.mark_dynamic(0);
            y.mark_dynamic(0);
        }
        got.push(gradients(&jitted.call(&[&x, &y])));
    }
    assert_eq!(jitted.why_traced_again(), None, "{:?}", jitted.trace_reasons());
    assert_eq!(jitted.trace_count(), 1);
    assert_eq!(tenjit::compile_count() - compiles, 1);
    assert_eq!(tenjit::instance_count() - instances, sizes.len() - 1);
    tenjit::set_backend(Backend::Interp);
    for (&n, g) in sizes.iter().zip(&got) {
        let (xv, yv) = data(n, 3);
        let want = gradients(&through_loop(&Tensor::from_vec(xv, [n, 3]), &Tensor::from_vec(yv, [n, 1]), 6));
        assert_close(g, &want, 1e-4, &format!("jit gradients at n = {n}"));
    }
    tenjit::set_backend(Backend::Cpu);
}

/// A symbolic body in text IR: the graph holding the loop declares the body's symbols, binds
/// it with itself, and the bound loop runs as the interpreter says; a graph that does not
/// declare a symbol its loop's body uses is refused, naming it.
#[test]
fn a_symbolic_body_in_text_must_share_the_graph_symbols() {
    // As the printer writes it: the body first, named after the graph.
    let good = r#"graph @main.loop0(%c: f32[n], %v: f32[n], %i: i64[]) where n:2.. = 4 {
  %0 = mul %c, %v : f32[n]
  return %0
}

graph @main(%x: f32[n], %v: f32[n]) where n:2.. = 4 {
  %0 = loop %x, %v, body=@main.loop0, trips=3, result=0 : f32[n]
  return %0
}
"#;
    let g = tenjit::ir::text::parse(good).expect("the symbolic loop parses");
    assert_eq!(tenjit::ir::text::print(&g), good);
    let bound = g.bind(&[("n".to_string(), 7)].into()).expect("it binds at n = 7");
    let x: Vec<f32> = (0..7).map(|i| i as f32 * 0.5 - 1.0).collect();
    let v: Vec<f32> = (0..7).map(|i| 1.0 + i as f32 * 0.25).collect();
    let inputs = [Buffer::from_vec(x.clone(), [7]).unwrap(), Buffer::from_vec(v.clone(), [7]).unwrap()];
    let got = tenjit::ir::interp::eval(&bound, &inputs).expect("the bound loop runs");
    let want: Vec<f32> = x.iter().zip(&v).map(|(a, b)| a * b * b * b).collect();
    assert_close(got[0].as_slice::<f32>().unwrap(), &want, 1e-6, "x * v^3 at n = 7");

    let bad = good
        .replace("graph @main(%x: f32[n], %v: f32[n]) where n:2.. = 4", "graph @main(%x: f32[4], %v: f32[4])")
        .replace("result=0 : f32[n]", "result=0 : f32[4]");
    let e = tenjit::ir::text::parse(&bad).unwrap_err().to_string();
    assert!(e.contains("the body @main.loop0 has the size symbol n"), "{e}");
}

/// A size inside the body that follows none of the graph's symbols (a `[k]` of ones the
/// carried value is multiplied by, `k` 3 then 4 while the rows are 5 then 9) leaves the loop concrete: the second graph is said not
/// to be symbolic, and why, and compiles for its sizes with the right values.
#[test]
fn a_body_size_that_follows_no_symbol_is_explained() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    tenjit::set_backend(Backend::Cpu);
    let run = |n: usize, k: usize| {
        let (xv, _) = data(n, 2);
        let total: f64 = xv.iter().map(|&v| v as f64).sum();
        let x = Tensor::from_vec(xv, [n, 2]);
        let out = tenjit::fori_loop(4, &[tensor!([0.25])], |p| {
            vec![(&p[0] * Tensor::ones([k])).sum_dim(0, true) * 0.5 + x.sum() * 0.5]
        });
        let want = (0..4).fold(0.25, |p, _| p * k as f64 * 0.5 + 0.5 * total);
        let got = out[0].to_vec::<f32>()[0] as f64;
        assert!((got - want).abs() <= 1e-5 * (1.0 + want.abs()), "n = {n}: {got} vs {want}");
        tenjit::compile_reports().last().cloned().expect("a compile report")
    };
    run(5, 3);
    let second = run(9, 4);
    let tenjit::MissReason::NewSizes(Dynamic::NotSymbolic { why }) = &second.miss else { panic!("{second}") };
    // The broadcast of the carried value to `[k]` is met first.
    assert!(
        why.contains("(loop), in its body: ") && why.contains("sizes 3, then 4 are no expression"),
        "{why}"
    );
}

/// A loop inside a loop's body over the captured rows: both bodies become symbolic (the inner
/// one over the outer body's symbols), compile once after the generalization, and compute six
/// steps of gradient descent as f64 does.
#[test]
fn nested_loops_over_symbolic_rows() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    tenjit::set_backend(Backend::Cpu);
    let sizes = [5usize, 9, 17, 30];
    let (compiles, instances) = (tenjit::compile_count(), tenjit::instance_count());
    for &n in &sizes {
        let (xv, yv) = data(n, 4);
        let (x, y) = (Tensor::from_vec(xv.clone(), [n, 4]), Tensor::from_vec(yv.clone(), [n, 1]));
        let out = tenjit::fori_loop(3, &[Tensor::zeros([4, 1])], |p| {
            tenjit::fori_loop(2, &p[..1], |q| vec![&q[0] - x.t().matmul(&(x.matmul(&q[0]) - &y)) * 0.02])
        });
        let got = out[0].to_vec::<f32>();
        let mut w = [0.0f64; 4];
        for _ in 0..6 {
            let r: Vec<f64> = (0..n)
                .map(|i| (0..4).map(|c| xv[i * 4 + c] as f64 * w[c]).sum::<f64>() - yv[i] as f64)
                .collect();
            for c in 0..4 {
                w[c] -= 0.02 * (0..n).map(|i| xv[i * 4 + c] as f64 * r[i]).sum::<f64>();
            }
        }
        for (a, b) in got.iter().zip(&w) {
            assert!((*a as f64 - b).abs() <= 1e-4 * (1.0 + b.abs()), "n = {n}: {got:?} vs {w:?}");
        }
    }
    assert_eq!(tenjit::compile_count() - compiles, 2);
    assert_eq!(tenjit::instance_count() - instances, 2);
}

/// A carried value with the symbolic dim (a `[n, 1]` state updated from the rows each trip):
/// lazily at new sizes and in a jitted closure on marked rows, one compilation each after the
/// generalization (the jit: one trace), values as the interpreter computes them.
#[test]
fn a_carried_value_with_a_symbolic_dim() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let f = |p: &[Tensor]| {
        let (x, h0) = (&p[0], &p[1]);
        let w = Tensor::from_vec(vec![0.5f32, -0.25, 0.75], [3, 1]);
        tenjit::fori_loop(5, &[h0.clone(), Tensor::zeros([1])], |c| {
            let h = (x.matmul(&w) + &c[0] * 0.5).tanh();
            vec![h.clone(), &c[1] + h.mean_dim(0, false)]
        })
    };
    let inputs = |n: usize| {
        let (xv, yv) = data(n, 3);
        (Tensor::from_vec(xv, [n, 3]), Tensor::from_vec(yv, [n, 1]))
    };
    let values = |out: &[Tensor]| {
        tenjit::realize(&[&out[0], &out[1]]);
        let mut v = out[0].to_vec::<f32>();
        v.extend(out[1].to_vec::<f32>());
        v
    };
    let sizes = [5usize, 9, 17, 40];
    tenjit::set_backend(Backend::Interp);
    let want: Vec<Vec<f32>> = sizes
        .iter()
        .map(|&n| {
            let (x, h) = inputs(n);
            values(&f(&[x, h]))
        })
        .collect();
    tenjit::set_backend(Backend::Cpu);
    let (compiles, instances) = (tenjit::compile_count(), tenjit::instance_count());
    for (&n, w) in sizes.iter().zip(&want) {
        let (x, h) = inputs(n);
        assert_close(&values(&f(&[x, h])), w, 1e-5, &format!("lazy at n = {n}"));
    }
    assert_eq!(tenjit::compile_count() - compiles, 2);
    assert_eq!(tenjit::instance_count() - instances, 2);

    let jitted = tenjit::jit(f);
    let (compiles, instances) = (tenjit::compile_count(), tenjit::instance_count());
    for (k, (&n, w)) in sizes.iter().zip(&want).enumerate() {
        let (x, h) = inputs(n);
        if k == 0 {
            x.mark_dynamic(0);
            h.mark_dynamic(0);
        }
        assert_close(&values(&jitted.call(&[&x, &h])), w, 1e-5, &format!("jit at n = {n}"));
    }
    assert_eq!(jitted.why_traced_again(), None, "{:?}", jitted.trace_reasons());
    assert_eq!(jitted.trace_count(), 1);
    // The jit's graph (its inputs the arguments, then the captured weights) is another
    // structure than the lazy one: one compilation, instances for the other sizes.
    assert_eq!(tenjit::compile_count() - compiles, 1);
    assert_eq!(tenjit::instance_count() - instances, 3);
}
