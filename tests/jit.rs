//! `tenjit::jit`: traced once per signature, values equal to the lazy computation, and a whole
//! training step (forward, backward, update) as one compiled executable with a pinned kernel
//! list.

use std::sync::{Mutex, MutexGuard};
use tenjit::prelude::*;

/// `compile_count()` is process-wide: the tests of this file take turns.
fn lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn close(a: &[f32], b: &[f32], tol: f32) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol * (1.0 + y.abs()))
}

#[test]
fn traces_once_per_signature_and_matches_the_lazy_values() {
    let _turn = lock();
    let f = tenjit::jit(|p: &[Tensor]| vec![(&p[0] * &p[1]).sin() + p[1].exp(), p[0].sum()]);
    let a = tensor!([1.0, 2.0, 3.0]);
    let b = tensor!([0.5, -1.0, 2.0]);
    for _ in 0..50 {
        let out = f.call(&[&a, &b]);
        assert_eq!(out[0].to_vec::<f32>(), ((&a * &b).sin() + b.exp()).to_vec::<f32>());
        assert_eq!(out[1].item(), 6.0);
    }
    assert_eq!(f.trace_count(), 1);
    // A new shape is a new signature, traced once more.
    let c = tensor!([1.0, 2.0]);
    let out = f.call(&[&c, &c]);
    assert_eq!(out[1].item(), 3.0);
    assert_eq!(f.trace_count(), 2);
    assert!(f.graph_for(&[&c, &c]).unwrap().to_string().contains("sin"));
    // Further lengths are neither traced nor compiled: the second length was traced over a
    // size symbol, and each later one binds that trace and instantiates its program.
    let (compiles, instances) = (tenjit::compile_count(), tenjit::instance_count());
    for n in 4..12 {
        let v: Vec<f32> = (0..n).map(|i| i as f32 * 0.25).collect();
        let x = Tensor::from_vec(v.clone(), [n]);
        let out = f.call(&[&x, &x]);
        let want: Vec<f32> = v.iter().map(|&a| (a * a).sin() + a.exp()).collect();
        assert!(close(&out[0].to_vec::<f32>(), &want, 1e-5), "length {n}");
        assert!((out[1].item() - v.iter().sum::<f32>() as f64).abs() < 1e-4, "length {n}");
    }
    assert_eq!(f.trace_count(), 2);
    assert_eq!(f.signature_count(), 10);
    assert_eq!(tenjit::compile_count(), compiles);
    assert_eq!(tenjit::instance_count() - instances, 8);
}

#[test]
fn captured_tensors_are_constants_of_the_function() {
    let _turn = lock();
    let k = tensor!([10.0, 20.0]);
    let f = tenjit::jit(move |p: &[Tensor]| vec![&p[0] + &k]);
    let out = f.call(&[&tensor!([1.0, 2.0])]);
    assert_eq!(out[0].to_vec::<f32>(), vec![11.0, 22.0]);
    let out = f.call(&[&tensor!([3.0, 4.0])]);
    assert_eq!(out[0].to_vec::<f32>(), vec![13.0, 24.0]);
}

#[test]
fn errors_of_the_compiled_program_come_back() {
    let _turn = lock();
    let (f, line) = (tenjit::jit(|p: &[Tensor]| vec![p[0].floor_divide(&p[1])]), line!());
    let a = Tensor::from_vec(vec![1i64, 2], [2]);
    let ok = Tensor::from_vec(vec![1i64, 1], [2]);
    assert_eq!(f.call(&[&a, &ok])[0].to_vec::<i64>(), vec![1, 2]);
    let zero = Tensor::from_vec(vec![1i64, 0], [2]);
    let err = f.try_call(&[&a, &zero]).unwrap_err().to_string();
    assert!(err.contains("division by zero"), "{err}");
    // The op the closure called, and where.
    let at = format!("floor_divide: integer division by zero (at tests/jit.rs:{line}:");
    assert!(err.contains(&at), "{err}");
}

/// One step of linear regression by SGD, as the closure `tenjit::jit` traces.
fn regression_step(x: Tensor, y: Tensor, lr: f64) -> impl Fn(&[Tensor]) -> Vec<Tensor> {
    move |p: &[Tensor]| {
        let (w, b) = (p[0].requires_grad_(), p[1].requires_grad_());
        let loss = (x.matmul(&w) + &b - &y).square().mean();
        let g = tenjit::grad(&[&loss], &[&w, &b]);
        vec![&w - &g[0] * lr, &b - &g[1] * lr, loss]
    }
}

#[test]
fn a_jitted_training_loop_matches_the_lazy_loop() {
    let _turn = lock();
    let x = tensor!([[1.0], [2.0], [3.0], [4.0]]);
    let y = tensor!([2.0, 4.0, 6.0, 8.0]);
    let step = tenjit::jit(regression_step(x.clone(), y.clone(), 0.01));
    let (mut w, mut b) = (tensor!([0.5]), tensor!([-0.25]));
    let mut losses = Vec::new();
    for _ in 0..100 {
        let out = step.call(&[&w, &b]);
        (w, b) = (out[0].clone(), out[1].clone());
        losses.push(out[2].item() as f32);
    }
    assert_eq!(step.trace_count(), 1);

    let mut lw = tensor!([0.5]).requires_grad_();
    let mut lb = tensor!([-0.25]).requires_grad_();
    let mut lazy_losses = Vec::new();
    for _ in 0..100 {
        let loss = (x.matmul(&lw) + &lb - &y).square().mean();
        loss.backward();
        tenjit::no_grad(|| {
            lw.sub_(lw.grad().unwrap() * 0.01);
            lb.sub_(lb.grad().unwrap() * 0.01);
        });
        lw.zero_grad();
        lb.zero_grad();
        lazy_losses.push(loss.item() as f32);
    }
    assert!(close(&w.to_vec::<f32>(), &lw.to_vec::<f32>(), 1e-6));
    assert!(close(&b.to_vec::<f32>(), &lb.to_vec::<f32>(), 1e-6));
    assert!(close(&losses, &lazy_losses, 1e-5));
    assert!(losses[99] < losses[0] / 10.0, "the loss went down: {} -> {}", losses[0], losses[99]);
}

#[test]
fn one_training_step_is_one_executable_with_a_pinned_kernel_list() {
    let _turn = lock();
    // A two-layer MLP step: forward, softmax cross-entropy, backward, SGD update.
    tenjit::manual_seed(3);
    let x = Tensor::randn([8, 6]).realize().clone();
    let labels = Tensor::from_vec(vec![0i64, 1, 2, 0, 1, 2, 0, 1], [8]);
    let mut params = vec![
        Tensor::randn([6, 5]).realize().requires_grad_(),
        Tensor::zeros([5]).requires_grad_(),
        Tensor::randn([5, 3]).realize().requires_grad_(),
        Tensor::zeros([3]).requires_grad_(),
    ];
    let step = |params: &mut Vec<Tensor>| {
        let h = (x.matmul(&params[0]) + &params[1]).relu();
        let logits = h.matmul(&params[2]) + &params[3];
        let loss = tenjit::nn::cross_entropy(&logits, &labels);
        loss.backward();
        let updated: Vec<Tensor> = tenjit::no_grad(|| {
            params.iter().map(|p| (p - p.grad().unwrap() * 0.1).requires_grad_()).collect()
        });
        (loss, updated)
    };
    let (loss, updated) = step(&mut params);
    let mut roots: Vec<&Tensor> = updated.iter().collect();
    roots.push(&loss);
    let stages = tenjit::inspect(&roots);
    insta::assert_snapshot!("mlp_training_step_kernels", stages.kernels());
    // Realizing the step compiles exactly one executable. The second step differs from the
    // first (its zero biases were constants, they are now values) and compiles once more;
    // every later step compiles nothing.
    let before = tenjit::compile_count();
    tenjit::realize(&roots);
    assert_eq!(tenjit::compile_count(), before + 1);
    let loss0 = loss.item();
    params = updated;
    for i in 0..4 {
        let (loss, updated) = step(&mut params);
        let mut roots: Vec<&Tensor> = updated.iter().collect();
        roots.push(&loss);
        tenjit::realize(&roots);
        assert!(loss.item() < loss0 * 1.5, "training does not diverge");
        params = updated;
        assert_eq!(tenjit::compile_count(), before + 2, "step {}", i + 2);
    }
    assert!(loss0.is_finite() && loss0 > 0.0);
}

/// Random ops inside a jitted function draw fresh numbers on every call (as outside `jit`),
/// from the process's generator, so a seed gives the same sequence of calls; the function is
/// traced once.
#[test]
fn random_ops_draw_fresh_numbers_on_every_call() {
    let _turn = lock();
    let make = || {
        tenjit::jit(|a: &[Tensor]| {
            vec![&a[0] + Tensor::rand([5]), tenjit::nn::dropout(&Tensor::ones([64]), 0.5, true)]
        })
    };
    let x = Tensor::zeros([5]);
    let run = |seed: u64| {
        tenjit::manual_seed(seed);
        let f = make();
        let calls: Vec<Vec<Vec<f32>>> =
            (0..3).map(|_| f.call(&[&x]).iter().map(|t| t.to_vec::<f32>()).collect()).collect();
        assert_eq!(f.trace_count(), 1);
        calls
    };
    let calls = run(11);
    for c in &calls {
        assert!(c[0].iter().all(|v| (0.0..1.0).contains(v)), "{:?}", c[0]);
        assert!(c[1].iter().all(|&v| v == 0.0 || v == 2.0), "{:?}", c[1]);
        assert!(c[1].contains(&0.0) && c[1].contains(&2.0), "{:?}", c[1]);
    }
    assert_ne!(calls[0][0], calls[1][0], "a second call draws new uniforms");
    assert_ne!(calls[1][1], calls[2][1], "and a new dropout mask");
    assert_eq!(run(11), calls, "the same seed, the same calls");
    assert_ne!(run(12), calls);
}

#[test]
fn an_argument_marked_dynamic_is_compiled_for_every_size_at_its_first_call() {
    let _turn = lock();
    let f = tenjit::jit(|p: &[Tensor]| vec![(&p[0] * 3.0).tanh().sum_dim(1, false)]);
    let x = |n: usize| Tensor::from_vec((0..2 * n).map(|i| i as f32 * 0.01).collect::<Vec<f32>>(), [2, n]);
    let first = x(5);
    first.mark_dynamic(1);
    let (compiles, instances) = (tenjit::compile_count(), tenjit::instance_count());
    f.call(&[&first]);
    assert_eq!(tenjit::compile_count(), compiles + 1);
    let last = tenjit::compile_reports().last().cloned().unwrap();
    assert_eq!(last.origin, tenjit::ProgramOrigin::Symbolic, "{last}");
    // Other lengths (unmarked tensors now: the signature exists) are instances.
    for n in [3, 9, 17] {
        let a = x(n);
        let want: Vec<f32> =
            (0..2).map(|r| (0..n).map(|c| ((r * n + c) as f32 * 0.03).tanh()).sum()).collect();
        assert!(close(&f.call(&[&a])[0].to_vec::<f32>(), &want, 1e-5), "length {n}");
    }
    assert_eq!(tenjit::compile_count(), compiles + 1);
    assert_eq!(tenjit::instance_count(), instances + 3);
}
