//! tenjit's side of the training benchmarks of `../shared/BENCH.md`: W5 (the tutorial's linear
//! regression, 100 epochs of SGD with lr 0.01, small and big), W6 (one step of a 784→256→10
//! MLP with softmax cross-entropy, batch 128) and W7 (the first call of those steps in a fresh
//! process: trace + autodiff + compile + run). `W5.stream` (tenjit only) runs W5.big's step on
//! 16 times its rows, from memory, against the machine's read sweep.
//!
//! Each training workload runs two ways: `lazy` (the PyTorch-style loop: build the step,
//! `backward()`, update in `no_grad`, realize; each step finds its executable in the cache)
//! and `jit` (the step traced once by `tenjit::jit`; each call binds buffers and runs kernels).
//! W5 runs a third way, `fori_loop`: every epoch in one call of one compiled program (the
//! step as the body of `tenjit::fori_loop`, traced once by `tenjit::jit`), as
//! `jax.jit(fori_loop)` runs it.
//! W5 reports the time of the 100-epoch loop, as the peers do; `--json FILE` appends the
//! peers' record format and `--only W5.small` picks workloads. W7 re-runs this binary as a
//! child process per case (`--first-call ID`), so each first call is in a fresh process.

mod common;

use common::Bench;
use std::time::Instant;
use tenjit::prelude::*;

const LR: f64 = 0.01;
const EPOCHS: usize = 100;
const BIG_N: usize = 65536;
const BIG_D: usize = 64;
const MLP: (usize, usize, usize, usize) = (128, 784, 256, 10);

/// The linear-regression data of W5: `(X, y, w0, b0)` with `y` of the shape the step uses.
fn w5_data(small: bool) -> (Tensor, Tensor, Tensor, Tensor) {
    if small {
        let x = tensor!([[1.0], [2.0], [3.0], [4.0]]);
        let y = tensor!([2.0, 4.0, 6.0, 8.0]);
        (x, y, Tensor::zeros([1]), Tensor::zeros([1]))
    } else {
        tenjit::manual_seed(5);
        let x = Tensor::randn([BIG_N, BIG_D]);
        let wt = Tensor::randn([BIG_D, 1]);
        let y = x.matmul(&wt) + 0.5 + Tensor::randn([BIG_N, 1]) * 0.01;
        tenjit::realize(&[&x, &y]);
        (x, y, Tensor::zeros([BIG_D, 1]), Tensor::zeros([1]))
    }
}

/// The W5 loss.
fn w5_loss(x: &Tensor, y: &Tensor, w: &Tensor, b: &Tensor) -> Tensor {
    (x.matmul(w) + b - y).square().mean()
}

/// One lazy W5 step: forward, backward, update in `no_grad`, realize.
fn w5_lazy_step(x: &Tensor, y: &Tensor, w: &mut Tensor, b: &mut Tensor) -> Tensor {
    let loss = w5_loss(x, y, w, b);
    loss.backward();
    tenjit::no_grad(|| {
        let (gw, gb) = (w.grad().expect("w.grad"), b.grad().expect("b.grad"));
        w.sub_(gw * LR);
        b.sub_(gb * LR);
    });
    w.zero_grad();
    b.zero_grad();
    tenjit::realize(&[w, b]);
    loss
}

/// The W5 step for `tenjit::jit`: `[w, b] -> [w', b', loss]`.
fn w5_jit(x: Tensor, y: Tensor) -> tenjit::Jit<impl Fn(&[Tensor]) -> Vec<Tensor>> {
    tenjit::jit(move |p: &[Tensor]| {
        let (w, b) = (p[0].requires_grad_(), p[1].requires_grad_());
        let loss = w5_loss(&x, &y, &w, &b);
        let g = tenjit::grad(&[&loss], &[&w, &b]);
        vec![&w - &g[0] * LR, &b - &g[1] * LR, loss]
    })
}

/// The W5 epochs as one program: `tenjit::jit` of a `fori_loop` of the SGD step, so one call
/// runs every epoch (as `jax.jit(fori_loop)` does).
fn w5_fori(x: Tensor, y: Tensor) -> tenjit::Jit<impl Fn(&[Tensor]) -> Vec<Tensor>> {
    tenjit::jit(move |p: &[Tensor]| {
        tenjit::fori_loop(EPOCHS, p, |q| {
            let (w, b) = (q[0].requires_grad_(), q[1].requires_grad_());
            let loss = w5_loss(&x, &y, &w, &b);
            let g = tenjit::grad(&[&loss], &[&w, &b]);
            vec![&w - &g[0] * LR, &b - &g[1] * LR]
        })
    })
}

fn w5(bench: &mut Bench, small: bool) {
    let id = if small { "W5.small" } else { "W5.big" };
    if !bench.want(id) {
        return;
    }
    let (x, y, w0, b0) = w5_data(small);
    let reps = if small { 21 } else { 7 };
    let mut final_w = Vec::new();
    let lazy = bench.time_as(id, "lazy", reps, None, None, || {
        let (mut w, mut b) = (w0.detach().requires_grad_(), b0.detach().requires_grad_());
        for _ in 0..EPOCHS {
            w5_lazy_step(&x, &y, &mut w, &mut b);
        }
        final_w = w.to_vec::<f32>();
    });
    let lazy_w = final_w.clone();
    let step = w5_jit(x.clone(), y.clone());
    let jit = bench.time_as(id, "jit", reps, None, None, || {
        let (mut w, mut b) = (w0.clone(), b0.clone());
        for _ in 0..EPOCHS {
            let out = step.call(&[&w, &b]);
            (w, b) = (out[0].clone(), out[1].clone());
        }
        final_w = w.to_vec::<f32>();
    });
    let agree = lazy_w.iter().zip(&final_w).all(|(a, b)| (a - b).abs() <= 1e-5 * (1.0 + a.abs()));
    assert!(agree, "{id}: the lazy and jit loops learned different weights");
    let train = w5_fori(x, y);
    let fori = bench.time_as(id, "fori_loop", reps, None, None, || {
        let out = train.call(&[&w0, &b0]);
        final_w = out[0].to_vec::<f32>();
    });
    let agree = lazy_w.iter().zip(&final_w).all(|(a, b)| (a - b).abs() <= 1e-5 * (1.0 + a.abs()));
    assert!(agree, "{id}: the lazy loop and fori_loop learned different weights");
    for (variant, t) in [("lazy", lazy), ("jit", jit), ("fori_loop", fori)] {
        if let Some(t) = t {
            println!("  {id} ({variant}): {:.2} µs per epoch", t / EPOCHS as f64 * 1e6);
        }
    }
}

/// Rows of `W5.stream`: W5.big's step on 16 times its rows (256 MiB of `X`, beyond any L3).
const STREAM_N: usize = 16 * BIG_N;

/// `W5.stream` (tenjit only, no peer runs it): one `tenjit::jit` step of W5.big's linear
/// regression on [`STREAM_N`] rows, so `X` streams from memory: its GB/s (of `X`'s bytes per
/// step) against the machine's read sweep of `X`. The step's reductions over the rows run in
/// parts inside the forward product's row group (`tenjit_ir::kernel::parts`), so a step reads
/// `X` once; reading it twice would halve the figure.
fn w5_stream(bench: &mut Bench) {
    if !bench.want("W5.stream") {
        return;
    }
    tenjit::manual_seed(7);
    let x = Tensor::randn([STREAM_N, BIG_D]);
    let y = x.matmul(&Tensor::randn([BIG_D, 1])) + 0.5;
    tenjit::realize(&[&x, &y]);
    bench.reference = common::limits::measure(bench, "W5.stream", &x.to_vec::<f32>());
    let step = w5_jit(x, y);
    let (mut w, mut b) = (Tensor::zeros([BIG_D, 1]), Tensor::zeros([1]));
    let bytes = (STREAM_N * BIG_D * 4) as f64;
    bench.time_as("W5.stream", "jit", 11, Some(bytes), None, || {
        let out = step.call(&[&w, &b]);
        (w, b) = (out[0].clone(), out[1].clone());
        let _ = out[2].item();
    });
    bench.reference = None;
}

/// The W6 inputs: `(x, labels, [W1, b1, W2, b2])`.
fn w6_data() -> (Tensor, Tensor, Vec<Tensor>) {
    let (batch, inp, hidden, out) = MLP;
    tenjit::manual_seed(6);
    let x = Tensor::randn([batch, inp]);
    let labels = Tensor::randint(0, out as i64, [batch]);
    let w1 = Tensor::randn([inp, hidden]) * (2.0 / inp as f64).sqrt();
    let w2 = Tensor::randn([hidden, out]) * (2.0 / hidden as f64).sqrt();
    let params = vec![w1, Tensor::zeros([hidden]), w2, Tensor::zeros([out])];
    let mut all: Vec<&Tensor> = params.iter().collect();
    all.extend([&x, &labels]);
    tenjit::realize(&all);
    (x, labels, params)
}

/// The W6 loss: softmax cross-entropy of a ReLU MLP (the log-softmax shifted by the row max).
fn w6_loss(x: &Tensor, labels: &Tensor, p: &[Tensor]) -> Tensor {
    let h = (x.matmul(&p[0]) + &p[1]).relu();
    let logits = h.matmul(&p[2]) + &p[3];
    let shifted = &logits - logits.amax(1, true).detach();
    let log_probs = &shifted - shifted.exp().sum_dim(1, true).log();
    -log_probs.gather(1, &labels.unsqueeze(1)).mean()
}

/// One lazy W6 step: forward, backward, SGD update in `no_grad`, realize.
fn w6_lazy_step(x: &Tensor, labels: &Tensor, params: &mut [Tensor]) -> Tensor {
    let loss = w6_loss(x, labels, params);
    loss.backward();
    tenjit::no_grad(|| {
        for p in params.iter_mut() {
            let g = p.grad().expect("grad");
            p.sub_(g * LR);
            p.zero_grad();
        }
    });
    let refs: Vec<&Tensor> = params.iter().collect();
    tenjit::realize(&refs);
    loss
}

fn w6(bench: &mut Bench) {
    if !bench.want("W6.mlp") {
        return;
    }
    let (x, labels, p0) = w6_data();
    let mut params: Vec<Tensor> = p0.iter().map(|p| p.detach().requires_grad_()).collect();
    bench.time_as("W6.mlp", "lazy", 21, None, None, || {
        w6_lazy_step(&x, &labels, &mut params);
    });
    let step = tenjit::jit(move |p: &[Tensor]| {
        let params: Vec<Tensor> = p.iter().map(|t| t.requires_grad_()).collect();
        let loss = w6_loss(&x, &labels, &params);
        let refs: Vec<&Tensor> = params.iter().collect();
        let grads = tenjit::grad(&[&loss], &refs);
        let mut out: Vec<Tensor> = params.iter().zip(&grads).map(|(p, g)| p - g * LR).collect();
        out.push(loss);
        out
    });
    let mut params = p0;
    bench.time_as("W6.mlp", "jit", 21, None, None, || {
        let refs: Vec<&Tensor> = params.iter().collect();
        let mut out = step.call(&refs);
        out.pop();
        params = out;
    });
}

/// `--first-call ID` (in a child process): prints the time of this process's first W5 or W6
/// step.
fn first_call(id: &str) {
    let seconds = match id {
        "W5.small" | "W5.big" => {
            let (x, y, w0, b0) = w5_data(id == "W5.small");
            let t = Instant::now();
            let (mut w, mut b) = (w0.requires_grad_(), b0.requires_grad_());
            w5_lazy_step(&x, &y, &mut w, &mut b);
            t.elapsed()
        }
        "W6.mlp" => {
            let (x, labels, p0) = w6_data();
            let t = Instant::now();
            let mut params: Vec<Tensor> = p0.iter().map(|p| p.requires_grad_()).collect();
            w6_lazy_step(&x, &labels, &mut params);
            t.elapsed()
        }
        other => panic!("--first-call: unknown workload {other}"),
    };
    println!("{}", seconds.as_secs_f64());
}

fn w7(bench: &mut Bench) {
    let exe = std::env::current_exe().expect("the bench binary's path");
    for id in ["W5.small", "W5.big", "W6.mlp"] {
        // The peers' ids: W7.W5.small, W7.W5.big, W7.W6.
        let wid = format!("W7.{}", id.trim_end_matches(".mlp"));
        if !bench.want(&wid) && !bench.want("W7") {
            continue;
        }
        let mut runs: Vec<f64> = (0..5)
            .map(|_| {
                let out =
                    std::process::Command::new(&exe).args(["--first-call", id]).output().expect("run child");
                assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
                String::from_utf8_lossy(&out.stdout)
                    .trim()
                    .lines()
                    .last()
                    .unwrap_or("")
                    .parse()
                    .expect("a time")
            })
            .collect();
        runs.sort_by(f64::total_cmp);
        bench.record(&wid, "first call", runs[runs.len() / 2], runs[0], runs[runs.len() - 1], runs.len());
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--first-call") {
        first_call(&args[i + 1]);
        return;
    }
    let mut bench = Bench::from_args(&args);
    println!("tenjit {} backend, {} threads", common::backend_name(), tenjit::backend::cpu::exec::threads());
    w5(&mut bench, true);
    w5(&mut bench, false);
    w5_stream(&mut bench);
    w6(&mut bench);
    w7(&mut bench);
}
