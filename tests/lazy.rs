//! The realization policy (`tenjit::lazy`): a training loop that never reads a value runs one
//! compiled step per iteration with flat memory; a chain with no step boundary is realized at
//! the depth limit; gradient accumulation stays lazy until the update; `jit` traces realize
//! nothing; loops on several threads agree with one thread.
//!
//! The compile count, the live-node count and the depth limit are process-wide, so the tests
//! of this file take turns.

use std::sync::Mutex;
use tenjit::optim::{Adam, Sgd};
use tenjit::prelude::*;

static TURN: Mutex<()> = Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    TURN.lock().unwrap_or_else(|p| p.into_inner())
}

/// Data for a least-squares fit: inputs, targets, and a small initial weight.
fn problem(seed: u64, n: usize) -> (Tensor, Tensor, Tensor) {
    tenjit::manual_seed(seed);
    let x = Tensor::randn([32, n]);
    let y = Tensor::randn([32, n]);
    let w = (Tensor::randn([n, n]) * 0.01).realize().clone().requires_grad_();
    (x, y, w)
}

/// One step of the README's loop: loss, backward, an update under `no_grad`, `zero_grad`.
fn readme_step(x: &Tensor, y: &Tensor, w: &mut Tensor) -> Tensor {
    let loss = (x.matmul(w) - y).square().mean();
    loss.backward();
    tenjit::no_grad(|| {
        w.sub_(w.grad().expect("a gradient") * 0.1);
    });
    w.zero_grad();
    loss
}

fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= 1e-5 + 1e-4 * w.abs(), "{what}: element {i}: {g} against {w}");
    }
}

#[test]
fn a_loop_that_never_reads_a_value_runs_one_step_per_iteration() {
    let _turn = turn();
    let (x, y, mut w) = problem(3, 48);
    // A step is far shallower than this limit, but the depths recorded before each step's
    // weight was computed add up from step to step: they must not trip it.
    let limit = tenjit::set_lazy_depth_limit(64);
    let steps = 120;
    let warmup = 5;
    let (mut compiles0, mut live0) = (0, tenjit::live());
    for step in 0..steps {
        if step == warmup {
            compiles0 = tenjit::compile_count();
            live0 = tenjit::live();
        }
        let loss = (x.matmul(&w) - &y).square().mean();
        loss.backward();
        // The previous step's update was realized when this backward() started.
        assert!(step == 0 || w.is_realized(), "step {step}: the updated weight is still lazy");
        tenjit::no_grad(|| {
            w.sub_(w.grad().expect("a gradient") * 0.1);
        });
        w.zero_grad();
        assert!(!w.is_realized(), "step {step}: the update is computed with the next step");
    }
    tenjit::set_lazy_depth_limit(limit);
    let live = tenjit::live();
    assert_eq!(tenjit::compile_count(), compiles0, "the loop compiled again after its first steps");
    assert!(live.nodes <= live0.nodes + 4, "live nodes grew from {} to {}", live0.nodes, live.nodes);
    assert!(live.bytes <= live0.bytes + 4096, "live bytes grew from {} to {}", live0.bytes, live.bytes);

    // The same loop reading the loss each step computes the same weights.
    let (x, y, mut v) = problem(3, 48);
    for _ in 0..steps {
        assert!(readme_step(&x, &y, &mut v).item().is_finite());
    }
    assert_close(&w.to_vec::<f32>(), &v.to_vec::<f32>(), "weights without and with item()");
}

#[test]
fn a_chain_with_no_boundary_is_realized_at_the_depth_limit() {
    let _turn = turn();
    let before = tenjit::set_lazy_depth_limit(100);
    let x0 = tensor!([1.0f32, -3.0, 8.0]);
    let mut chain = vec![x0.clone()];
    for _ in 0..150 {
        let next = chain.last().unwrap() * 0.99;
        chain.push(next);
    }
    tenjit::set_lazy_depth_limit(before);
    // chain[k] is k ops from the data: chain[101] went past the limit when it was made.
    assert!(!chain[100].is_realized(), "a node within the limit stays lazy");
    assert!(chain[101].is_realized(), "the node past the limit is computed as it is made");
    assert!(!chain[150].is_realized(), "depth counts again from the computed node");
    let mut want = vec![1.0f32, -3.0, 8.0];
    for _ in 0..150 {
        want.iter_mut().for_each(|v| *v *= 0.99);
    }
    assert_close(&chain[150].to_vec::<f32>(), &want, "the chain's value");
}

#[test]
fn a_long_loop_with_no_boundary_stays_bounded() {
    let _turn = turn();
    let mut x = Tensor::zeros([1000]);
    let compiles0 = tenjit::compile_count();
    let live0 = tenjit::live();
    // Ten times the default limit: the chain is cut into pieces of the same structure.
    for _ in 0..(5 * tenjit::lazy_depth_limit()) {
        x = &x * 0.5 + 1.0;
    }
    let compiles = tenjit::compile_count() - compiles0;
    assert!(compiles <= 3, "{compiles} compilations for one repeated chain");
    assert!(tenjit::live().nodes <= live0.nodes + 2 * tenjit::lazy_depth_limit() + 2);
    assert_close(&x.to_vec::<f32>(), &[2.0; 1000], "x converges to 2");
}

#[test]
fn gradient_accumulation_stays_lazy_until_the_update() {
    let _turn = turn();
    let (x, y, mut w) = problem(5, 16);
    let (xa, xb) = (x.i(s![..16]), x.i(s![16..]));
    let (ya, yb) = (y.i(s![..16]), y.i(s![16..]));
    for step in 0..3 {
        (xa.matmul(&w) - &ya).square().mean().backward();
        (xb.matmul(&w) - &yb).square().mean().backward();
        let g = w.grad().expect("a gradient");
        assert!(!g.is_realized(), "step {step}: two backward() calls with no update in between stay lazy");
        // The accumulated gradient is the sum of the two micro-batches' gradients.
        let wd = w.detach();
        let want = tenjit::no_grad(|| {
            let ga = xa.transpose(0, 1).matmul(&(xa.matmul(&wd) - &ya)) * (2.0 / (16.0 * 16.0));
            let gb = xb.transpose(0, 1).matmul(&(xb.matmul(&wd) - &yb)) * (2.0 / (16.0 * 16.0));
            ga + gb
        });
        assert_close(&g.to_vec::<f32>(), &want.to_vec::<f32>(), "the accumulated gradient");
        tenjit::no_grad(|| {
            w.sub_(&g * 0.1);
        });
        w.zero_grad();
    }
}

#[test]
fn optimizers_on_fresh_random_data_hold_memory_flat() {
    let _turn = turn();
    tenjit::manual_seed(11);
    let mut w1 = (Tensor::randn([32, 32]) * 0.1).realize().clone().requires_grad_();
    let mut w2 = (Tensor::randn([32, 8]) * 0.1).realize().clone().requires_grad_();
    let mut sgd = Sgd::new(0.05).with_momentum(0.9);
    let mut v1 = w1.detach().requires_grad_();
    let mut v2 = w2.detach().requires_grad_();
    let mut adam = Adam::new(1e-3);
    let (mut compiles0, mut live0) = (0, tenjit::live());
    for step in 0..80 {
        if step == 5 {
            compiles0 = tenjit::compile_count();
            live0 = tenjit::live();
        }
        let x = Tensor::randn([16, 32]);
        let t = Tensor::randn([16, 8]);
        let loss = (x.matmul(&w1).relu().matmul(&w2) - &t).square().mean();
        loss.backward();
        sgd.step(&mut [&mut w1, &mut w2]);
        w1.zero_grad();
        w2.zero_grad();
        let loss = (x.matmul(&v1).tanh().matmul(&v2) - &t).square().mean();
        loss.backward();
        adam.step(&mut [&mut v1, &mut v2]);
        v1.zero_grad();
        v2.zero_grad();
    }
    let live = tenjit::live();
    assert_eq!(tenjit::compile_count(), compiles0, "the optimizers' loops compiled again");
    assert!(live.nodes <= live0.nodes + 8, "live nodes grew from {} to {}", live0.nodes, live.nodes);
    assert!(live.bytes <= live0.bytes + 8192, "live bytes grew from {} to {}", live0.bytes, live.bytes);
}

#[test]
fn a_jit_trace_realizes_nothing_and_keeps_the_pending_step() {
    let _turn = turn();
    let (x, y, mut w) = problem(9, 8);
    let loss = (x.matmul(&w) - &y).square().mean();
    loss.backward();
    tenjit::no_grad(|| {
        w.sub_(w.grad().unwrap() * 0.1);
    });
    w.zero_grad();
    let before = tenjit::set_lazy_depth_limit(4);
    let f = tenjit::jit(|args: &[Tensor]| {
        let a = args[0].requires_grad_();
        // Deeper than the limit, and a backward() inside: neither may realize placeholders.
        let deep = (((&a * 2.0).exp() + 1.0).log() * 3.0 - 1.0).tanh().sum();
        deep.backward();
        vec![a.grad().unwrap()]
    });
    let a = tensor!([0.5f32, -1.0]);
    let got = f.call(&[&a]).remove(0).to_vec::<f32>();
    tenjit::set_lazy_depth_limit(before);
    let want: Vec<f32> = [0.5f32, -1.0]
        .iter()
        .map(|&a| {
            let u = (((2.0 * a).exp() + 1.0).ln() * 3.0 - 1.0).tanh();
            let s = (2.0 * a).exp();
            (1.0 - u * u) * 3.0 * s * 2.0 / (s + 1.0)
        })
        .collect();
    assert_close(&got, &want, "the traced gradient");
    // The update made before the trace is still waiting, and the next backward() computes it.
    assert!(!w.is_realized());
    (x.matmul(&w) - &y).square().mean().backward();
    assert!(w.is_realized(), "the next backward() computes the pending update");
}

#[test]
fn training_loops_on_several_threads_agree_with_one_thread() {
    let _turn = turn();
    tenjit::manual_seed(21);
    let x = Tensor::randn([16, 24]).realize().clone();
    let y = Tensor::randn([16, 24]).realize().clone();
    let inits: Vec<Tensor> = (0..3).map(|_| (Tensor::randn([24, 24]) * 0.1).realize().clone()).collect();
    let train = |x: &Tensor, y: &Tensor, init: &Tensor| {
        let mut w = init.detach().requires_grad_();
        for _ in 0..40 {
            readme_step(x, y, &mut w);
        }
        w.to_vec::<f32>()
    };
    let alone: Vec<Vec<f32>> = inits.iter().map(|w| train(&x, &y, w)).collect();
    // Shared inputs, separate weights, every thread realizing and differentiating at once.
    let together: Vec<Vec<f32>> = std::thread::scope(|s| {
        let handles: Vec<_> = inits.iter().map(|w| s.spawn(|| train(&x, &y, w))).collect();
        handles.into_iter().map(|h| h.join().expect("a training thread")).collect()
    });
    for (k, (a, t)) in alone.iter().zip(&together).enumerate() {
        assert_close(t, a, &format!("thread {k}"));
    }
}
