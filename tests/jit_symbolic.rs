//! `tenjit::jit` traced once over size symbols: a closure whose dims are marked dynamic (or
//! meet a second size) is traced with those dims as symbols, and later sizes bind that trace
//! instead of running the closure; a closure that reads a dynamic size is traced at each size.
//! Every value is compared with the closure run lazily on the interpreter.

use std::sync::{Mutex, MutexGuard};
use tenjit::nn;
use tenjit::prelude::*;

/// The backend and `compile_count()` are process-wide: the tests of this file take turns.
fn lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// The closure's results on the interpreter, run lazily (no jit): the oracle.
fn reference(f: &dyn Fn(&[Tensor]) -> Vec<Tensor>, args: &[&Tensor]) -> Vec<Vec<f32>> {
    tenjit::set_backend(tenjit::Backend::Interp);
    let owned: Vec<Tensor> = args.iter().map(|a| (*a).clone()).collect();
    let out = f(&owned).iter().map(|t| t.to_vec::<f32>()).collect();
    tenjit::set_backend(tenjit::Backend::Cpu);
    out
}

fn assert_close(got: &[Tensor], want: &[Vec<f32>], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (g, w) in got.iter().zip(want) {
        let g = g.to_vec::<f32>();
        assert_eq!(g.len(), w.len(), "{what}");
        for (a, b) in g.iter().zip(w) {
            assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{what}: {g:?} against {w:?}");
        }
    }
}

/// One SGD step of a 3 -> 4 linear layer with ReLU and cross-entropy on a batch: forward,
/// gradients and the updated parameters.
fn sgd_step(p: &[Tensor]) -> Vec<Tensor> {
    let (x, targets) = (&p[0], &p[1]);
    let (w, b) = (p[2].requires_grad_(), p[3].requires_grad_());
    let logits = (x.matmul(&w) + &b).relu();
    let loss = nn::cross_entropy(&logits, targets) + logits.mean() * 0.1;
    let g = tenjit::grad(&[&loss], &[&w, &b]);
    vec![&w - &g[0] * 0.5, &b - &g[1] * 0.5, loss]
}

fn batch(n: usize, seed: u64) -> (Tensor, Tensor) {
    tenjit::manual_seed(seed);
    let x = Tensor::randn([n, 3]);
    let targets = Tensor::from_vec((0..n as i64).map(|i| (i * 7 + seed as i64) % 4).collect::<Vec<_>>(), [n]);
    (x, targets)
}

#[test]
fn a_marked_batch_is_traced_once_for_every_size() {
    let _turn = lock();
    tenjit::set_backend(tenjit::Backend::Cpu);
    let step = tenjit::jit(sgd_step);
    let w = Tensor::from_vec((0..12).map(|i| (i as f32 * 0.37).sin()).collect::<Vec<f32>>(), [3, 4]);
    let b = Tensor::from_vec(vec![0.1f32, -0.2, 0.3, 0.0], [4]);
    let (mut compiles, mut instances) = (0, 0);
    for (k, n) in [5usize, 2, 9, 17, 64, 33, 9].into_iter().enumerate() {
        let (x, targets) = batch(n, k as u64);
        tenjit::realize(&[&x, &targets]);
        if k == 0 {
            x.mark_dynamic(0);
            targets.mark_dynamic(0);
        }
        let counts = (tenjit::compile_count(), tenjit::instance_count());
        let got = step.call(&[&x, &targets, &w, &b]);
        compiles += tenjit::compile_count() - counts.0;
        instances += tenjit::instance_count() - counts.1;
        assert_close(&got, &reference(&sgd_step, &[&x, &targets, &w, &b]), &format!("batch {n}"));
    }
    assert_eq!(step.why_traced_again(), None);
    assert_eq!(step.trace_count(), 1, "the closure ran once");
    assert_eq!(step.signature_count(), 6, "six batch sizes");
    assert_eq!(compiles, 1, "one program for every batch");
    assert_eq!(instances, 5);
}

#[test]
fn a_second_size_makes_the_dim_symbolic() {
    let _turn = lock();
    tenjit::set_backend(tenjit::Backend::Cpu);
    let f = |p: &[Tensor]| vec![(&p[0] * &p[1]).sin() + p[1].exp(), p[0].sum(), p[0].mean()];
    let jitted = tenjit::jit(f);
    for n in [3usize, 4, 5, 8, 11, 2] {
        let x = Tensor::from_vec((0..n).map(|i| i as f32 * 0.25 - 0.5).collect::<Vec<f32>>(), [n]);
        let y = Tensor::from_vec((0..n).map(|i| 1.0 - i as f32 * 0.125).collect::<Vec<f32>>(), [n]);
        assert_close(&jitted.call(&[&x, &y]), &reference(&f, &[&x, &y]), &format!("length {n}"));
    }
    // Length 3 concretely, length 4 over a symbol; the rest bind that trace.
    assert_eq!(jitted.trace_count(), 2);
    assert_eq!(jitted.signature_count(), 6);
    // A length of 1 stays special: traced apart (at its own size).
    let one = tensor!([0.5]);
    assert_close(&jitted.call(&[&one, &one]), &reference(&f, &[&one, &one]), "length 1");
    assert_eq!(jitted.trace_count(), 3);
}

#[test]
fn a_guard_that_fails_traces_again() {
    let _turn = lock();
    tenjit::set_backend(tenjit::Backend::Cpu);
    // The marked dim meets an unmarked one of the same size: the trace holds where they are
    // equal (a guard), so a call with both at a new size is no instance of it; that call's
    // second size of the unmarked dim makes both symbolic (one symbol: equal sizes).
    let f = |p: &[Tensor]| vec![(&p[0] + &p[1]).square().sum_dim(1, false)];
    let jitted = tenjit::jit(f);
    let m =
        |n: usize, s: f32| Tensor::from_vec((0..2 * n).map(|i| i as f32 * s).collect::<Vec<f32>>(), [n, 2]);
    let (x, y) = (m(5, 0.1), m(5, -0.3));
    x.mark_dynamic(0);
    assert_close(&jitted.call(&[&x, &y]), &reference(&f, &[&x, &y]), "5 rows");
    for n in [7usize, 9, 3] {
        let (x, y) = (m(n, 0.1), m(n, -0.3));
        assert_close(&jitted.call(&[&x, &y]), &reference(&f, &[&x, &y]), &format!("{n} rows"));
    }
    assert_eq!(jitted.trace_count(), 2, "5 rows under a guard, then 7 rows over one symbol");
    let reasons = jitted.trace_reasons();
    assert_eq!(reasons[0], "the first call");
    // The unmarked operand's rows are a constant of the first trace.
    let second =
        "not an instance of the symbolic trace: input 1 has shape [7, 2], which is not an instance of [5, 2]";
    assert_eq!(reasons[1], second);
    // Rows that differ between the two operands broadcast nowhere: the same error as lazily.
    let (a, b) = (m(4, 0.1), m(6, 0.1));
    let panic =
        std::panic::catch_unwind(|| jitted.call(&[&a, &b])).expect_err("shapes that do not broadcast");
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("shapes [4, 2] and [6, 2] cannot broadcast"), "{message}");
}

#[test]
fn a_closure_that_reads_a_dynamic_size_is_traced_at_each_size() {
    let _turn = lock();
    tenjit::set_backend(tenjit::Backend::Cpu);
    let f = |p: &[Tensor]| {
        // All but the last element: the bound comes from the size read here.
        let n = p[0].shape()[0] as isize;
        vec![p[0].i(s![0..n - 1]).sum()]
    };
    let jitted = tenjit::jit(f);
    for n in [4usize, 6, 9] {
        let x = Tensor::from_vec((1..=n).map(|i| i as f32).collect::<Vec<f32>>(), [n]);
        x.mark_dynamic(0);
        let got = jitted.call(&[&x]);
        assert_eq!(got[0].item(), ((n - 1) * n / 2) as f64, "length {n}");
    }
    assert_eq!(jitted.trace_count(), 3);
    let why = jitted.why_traced_again().expect("a trace that read a size");
    assert!(why.contains("`shape()` read a dynamic size at tests/jit_symbolic.rs"), "{why}");
}

#[test]
fn random_draws_follow_the_bound_size() {
    let _turn = lock();
    tenjit::set_backend(tenjit::Backend::Cpu);
    let jitted = tenjit::jit(|p: &[Tensor]| vec![nn::dropout(&p[0], 0.5, true)]);
    for n in [6usize, 40, 300] {
        let x = Tensor::ones([n, 2]);
        x.mark_dynamic(0);
        let a = jitted.call(&[&x])[0].to_vec::<f32>();
        let b = jitted.call(&[&x])[0].to_vec::<f32>();
        assert_eq!(a.len(), 2 * n);
        assert!(a.iter().all(|&v| v == 0.0 || v == 2.0), "{a:?}");
        if n >= 40 {
            assert!(a.contains(&0.0) && a.contains(&2.0), "{a:?}");
            assert_ne!(a, b, "each call draws a new mask");
        }
    }
    assert_eq!(jitted.trace_count(), 1);
}

#[test]
fn a_size_outside_a_marks_range_is_traced_apart_and_says_why() {
    let _turn = lock();
    tenjit::set_backend(tenjit::Backend::Cpu);
    let f = |p: &[Tensor]| vec![p[0].exp().sum_dim(0, false)];
    let jitted = tenjit::jit(f);
    let x = |n: usize| Tensor::from_vec((0..3 * n).map(|i| i as f32 * 0.01).collect::<Vec<f32>>(), [n, 3]);
    let first = x(5);
    first.mark_dynamic_as(0, "T", 2..=8);
    for n in [5usize, 8, 2, 9] {
        let a = if n == 5 { first.clone() } else { x(n) };
        assert_close(&jitted.call(&[&a]), &reference(&f, &[&a]), &format!("{n} rows"));
    }
    let reasons = jitted.trace_reasons();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons[1].starts_with("not an instance of the symbolic trace") && reasons[1].contains('9'),
        "{reasons:?}"
    );
    assert!(reasons[1].contains('T'), "{reasons:?}");
}
