//! `SymSize`, the front end's symbolic size (torch's `SymInt`): sizes read as expressions
//! inside a symbolic trace, arithmetic over them, and the ops that take them (`reshape`,
//! `view`, `arange`, `unflatten`) without reading a size, so a jitted closure is traced once;
//! `SymSize::get()` is a read, and says where. Values are compared with the closure run
//! lazily on the interpreter.

use std::sync::{Mutex, MutexGuard};
use tenjit::prelude::*;

fn lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

type Closure = fn(&[Tensor]) -> Vec<Tensor>;

/// Runs `f` jitted over inputs of length `lengths` (dim 1 marked dynamic) and checks every
/// value against the interpreter; returns the jit for its counts.
fn run(f: Closure, lengths: &[usize]) -> tenjit::Jit<Closure> {
    let jitted = tenjit::jit(f);
    for (k, &t) in lengths.iter().enumerate() {
        tenjit::manual_seed(k as u64);
        let x = Tensor::randn([3, t, 6]);
        x.mark_dynamic(1);
        let got = jitted.call(&[&x]);
        tenjit::set_backend(tenjit::Backend::Interp);
        let want = f(std::slice::from_ref(&x));
        tenjit::set_backend(tenjit::Backend::Cpu);
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.shape(), w.shape(), "length {t}");
            let (g, w) = (g.to_vec::<f32>(), w.to_vec::<f32>());
            for (a, b) in g.iter().zip(&w) {
                assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "length {t}: {a} against {b}");
            }
        }
    }
    jitted
}

#[test]
fn shapes_computed_from_sym_sizes_are_traced_once() {
    let _turn = lock();
    let f: Closure = |a| {
        let x = &a[0];
        let (b, t) = (x.sym_size(0), x.sym_size(1));
        // [B, T, 6] -> [B, T, 2, 3] -> [B, 2, T, 3] -> [B, 2, 3*T]: reshapes over expressions.
        let heads = x.reshape([b.clone(), t.clone(), 2.into(), 3.into()]).transpose(1, 2);
        let merged = heads.reshape([b.clone(), 2.into(), &t * 3]);
        // -1 inferred over expressions: [B*T, 6] and back.
        let rows = x.reshape([-1, 6]).view([b, t.clone(), 6.into()]);
        // Positions 0..T as a float column, broadcast against the rows.
        let pos = Tensor::arange(&t).to_dtype(DType::F32).unsqueeze(-1);
        let split = x.unflatten(-1, [3, -1]).sum_dim(-1, false);
        // A size broadcast to [B, T, 6] by SymSizes, and one kept by -1.
        let col = x.i(s![.., .., 0..1]).expand(x.sym_shape());
        let twice = x.unsqueeze(0).expand([2, -1, -1, -1]).sum_dim(0, false);
        vec![merged.square(), &rows + &pos, split, x.tril(0), col, twice]
    };
    let jitted = run(f, &[4, 7, 2, 9, 16]);
    assert_eq!(jitted.why_traced_again(), None);
    assert_eq!(jitted.trace_count(), 1, "{:?}", jitted.trace_reasons());
}

#[test]
fn reading_a_sym_size_is_a_read_that_says_where() {
    let _turn = lock();
    let f: Closure = |a| {
        let t = a[0].sym_size(1);
        vec![&a[0] * (t.get() as f64)]
    };
    let jitted = run(f, &[4, 7, 9]);
    let why = jitted.why_traced_again().expect("the closure read a size");
    assert!(why.contains("SymSize::get()") && why.contains("tests/sym_size.rs"), "{why}");
    assert_eq!(jitted.trace_count(), 3);
}

#[test]
fn a_reshape_not_decided_over_expressions_reads_the_sizes() {
    let _turn = lock();
    // [B, T, 6] -> [B, 2, -1]: -1 is 3*T, exact; [-1, 4] of 3*T*6 elements is not exact over
    // expressions (T*18/4), so it reads the sizes (and the closure is traced per length).
    let exact: Closure = |a| vec![a[0].reshape([3, 2, -1])];
    assert_eq!(run(exact, &[4, 6, 8]).trace_count(), 1);
    let inexact: Closure = |a| vec![a[0].reshape([-1, 4])];
    let jitted = run(inexact, &[4, 6, 8]);
    assert!(
        jitted.why_traced_again().is_some_and(|w| w.contains("numel()")),
        "{:?}",
        jitted.why_traced_again()
    );
}

#[test]
fn sym_sizes_outside_a_trace_are_constants() {
    let x = Tensor::zeros([2, 3, 4]);
    let (b, t) = (x.sym_size(0), x.sym_size(-2));
    assert_eq!((b.as_const(), t.as_const()), (Some(2), Some(3)));
    let n = &b * &t + 1;
    assert_eq!((n.get(), n.to_string(), n.is_symbolic()), (7, "7".to_string(), false));
    assert_eq!(((&n / 2).get(), (&n % 4).get(), (n - 5usize).get()), (3, 3, 2));
    assert_eq!(x.sym_shape().iter().map(|s| s.get()).collect::<Vec<_>>(), [2, 3, 4]);
    assert_eq!(x.reshape([b, t, 2.into(), 2.into()]).shape(), &[2, 3, 2, 2]);
    assert_eq!(Tensor::arange(x.sym_size(2)).to_vec::<i64>(), [0, 1, 2, 3]);
    assert!(x.try_sym_size(3).is_err());
    assert!(x.try_expand([-1, 2, 3, 4]).unwrap_err().to_string().contains("a new dim needs a size"));
    assert!(x.try_expand([2, -2, 4]).unwrap_err().to_string().contains("invalid shape dimension -2"));
    let err = x.try_unflatten(1, [2, -1]).unwrap_err().to_string();
    assert!(err.contains("unflatten") && err.contains("[2, -1]"), "{err}");
}

#[test]
fn a_sym_size_displays_its_expression_inside_a_trace() {
    let _turn = lock();
    static SHOWN: Mutex<Vec<(String, bool)>> = Mutex::new(Vec::new());
    let f: Closure = |a| {
        let t = a[0].sym_size(1);
        SHOWN.lock().unwrap().push((format!("{}", &t * 2 + 1), t.is_symbolic()));
        vec![a[0].clone()]
    };
    let jitted = tenjit::jit(f);
    for t in [4, 7, 9] {
        let x = Tensor::randn([3, t, 6]);
        x.mark_dynamic(1);
        assert_eq!(jitted.call(&[&x])[0].shape(), &[3, t, 6]);
    }
    // Traced once, on a symbol: the size printed as an expression (no read), never a number.
    let shown = SHOWN.lock().unwrap().clone();
    assert_eq!(shown.len(), 1, "{shown:?}");
    let (text, symbolic) = &shown[0];
    assert!(*symbolic, "{text}");
    assert_eq!(text, "2*d0 + 1", "the jit's first size symbol is d0");
}

#[test]
fn slices_of_a_symbolic_dim_are_traced_once() {
    let _turn = lock();
    // The last position, everything after the first, every second of the last two, and an
    // index from the start: bounds over the length.
    let f: Closure = |a| {
        let x = &a[0];
        vec![
            x.i(s![.., -1]),
            x.i(s![.., 1..]),
            x.i(s![.., -2..;2]),
            x.i(s![0, 1, ..]),
            x.i(s![.., ..-1, 2..5]),
        ]
    };
    let jitted = run(f, &[4, 7, 5, 9, 16]);
    assert_eq!(jitted.why_traced_again(), None);
    assert_eq!(jitted.trace_count(), 1, "{:?}", jitted.trace_reasons());
    // An end past the smallest length clamps there in Python: not an expression, so a read.
    let clamped: Closure = |a| vec![a[0].i(s![.., ..6])];
    let jitted = run(clamped, &[4, 7, 9]);
    assert!(jitted.why_traced_again().is_some(), "traced once over a bound that clamps");
}
