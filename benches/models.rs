//! tenjit's side of the model workloads of `../shared/BENCH.md`, as
//! `../shared/peers/bench_models_torch.py` runs them for PyTorch:
//!
//! - W8: one training step of the char-level GPT (nanoGPT's shakespeare_char CPU
//!   configuration, vocabulary 65, batch 12, block 64; `examples/common/gpt.rs`): forward,
//!   cross-entropy, backward, gradient clipping at 1.0, AdamW with weight decay 0.1 on matrices.
//!   Each timed step is computed (its loss read), so the step's single executable runs once.
//! - W9: one training step of PyTorch's MNIST example CNN (conv 1→32 3×3, relu, conv 32→64
//!   3×3, relu, max-pool 2, flatten 9216, linear 128, relu, linear 10, log-softmax and NLL;
//!   dropout off), batch 64 of 28×28 inputs, SGD with lr 0.01 and momentum 0.9.
//! - W10: greedy generation of 128 tokens with the W8 model from a 1-token prompt, the context
//!   cropped to the last 64 tokens, no KV cache; tokens per second on the second call (the
//!   first compiles once per context length until shapes can vary, and is reported too).
//!
//! ```sh
//! cargo bench --bench models                           # W8, W9, W10
//! cargo bench --bench models -- --only W8 --json out.jsonl
//! TENJIT_PROFILE=1 cargo bench --bench models -- --only W9   # and the time of every step
//! $HOME/.cache/peers-venv/bin/python benches/side_by_side.py --only W8,W9,W10 --peers models_torch
//! ```
//!
//! Inputs are random with fixed seeds: these are timings, not accuracy runs.

mod common;
#[path = "../examples/common/gpt.rs"]
mod gpt;

use common::Bench;
use gpt::{Config, Gpt, GptOptimizer};
use std::time::Instant;
use tenjit::nn::{self, Conv2d, Conv2dOptions, Linear, Module};
use tenjit::optim::Sgd;
use tenjit::prelude::*;

const VOCAB: usize = 65;
const BATCH: usize = 12;

/// Random token ids `[rows, cols]` below `VOCAB`.
fn tokens(rows: usize, cols: usize) -> Tensor {
    (Tensor::rand([rows, cols]) * VOCAB as f64).floor().to_dtype(DType::I64).clamp(0, VOCAB as i64 - 1)
}

fn w8(bench: &mut Bench) {
    if !bench.want("W8.gpt_step") {
        return;
    }
    tenjit::manual_seed(8);
    let cfg = Config::shakespeare_char(VOCAB);
    let (x, y) = (tokens(BATCH, cfg.block).realize().clone(), tokens(BATCH, cfg.block).realize().clone());
    let mut model = Gpt::new(cfg);
    let mut opt = GptOptimizer::new(1e-3);
    let compiles = tenjit::compile_count();
    let t = Instant::now();
    let first = model.train_step(&mut opt, &x, &y).item();
    let first_call = t.elapsed().as_secs_f64();
    let mut last = first;
    bench.time_as("W8.gpt_step", "lazy", 11, None, None, || {
        last = model.train_step(&mut opt, &x, &y).item();
    });
    bench.record("W8.gpt_step", "first call", first_call, first_call, first_call, 1);
    println!(
        "  W8: {} parameters; loss {first:.3} -> {last:.3}; {} compilations",
        model.parameter_count(),
        tenjit::compile_count() - compiles
    );
}

/// PyTorch's examples/mnist network, dropout off.
struct MnistNet {
    conv1: Conv2d,
    conv2: Conv2d,
    fc1: Linear,
    fc2: Linear,
}

impl MnistNet {
    fn new() -> MnistNet {
        let valid = Conv2dOptions::default();
        MnistNet {
            conv1: Conv2d::new(1, 32, [3, 3], valid),
            conv2: Conv2d::new(32, 64, [3, 3], valid),
            fc1: Linear::new(9216, 128),
            fc2: Linear::new(128, 10),
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let x = nn::relu(&self.conv1.forward(x));
        let x = nn::max_pool2d(&nn::relu(&self.conv2.forward(&x)), [2, 2], [2, 2], [0, 0]);
        let x = nn::relu(&self.fc1.forward(&x.flatten_dims(1, -1)));
        nn::log_softmax(&self.fc2.forward(&x), 1)
    }

    fn parameters_mut(&mut self) -> Vec<&mut Tensor> {
        let mut p = self.conv1.parameters_mut();
        p.extend(self.conv2.parameters_mut());
        p.extend(self.fc1.parameters_mut());
        p.extend(self.fc2.parameters_mut());
        p
    }
}

fn w9(bench: &mut Bench) {
    if !bench.want("W9.cnn_step") {
        return;
    }
    tenjit::manual_seed(90);
    let x = Tensor::randn([64, 1, 28, 28]).realize().clone();
    let y = (Tensor::rand([64]) * 10.0).floor().to_dtype(DType::I64).clamp(0, 9).realize().clone();
    let mut model = MnistNet::new();
    let mut opt = Sgd::new(0.01).with_momentum(0.9);
    let mut step = || {
        let loss = nn::nll_loss(&model.forward(&x), &y);
        let mut params = model.parameters_mut();
        for p in params.iter_mut() {
            p.zero_grad();
        }
        loss.backward();
        opt.step(&mut params);
        loss.item()
    };
    let compiles = tenjit::compile_count();
    let t = Instant::now();
    let first = step();
    let first_call = t.elapsed().as_secs_f64();
    let mut last = first;
    bench.time_as("W9.cnn_step", "lazy", 11, None, None, || last = step());
    bench.record("W9.cnn_step", "first call", first_call, first_call, first_call, 1);
    println!("  W9: loss {first:.3} -> {last:.3}; {} compilations", tenjit::compile_count() - compiles);
}

/// Greedy generation of `n` tokens after `prompt`, the context cropped to `block`, each next
/// token computed by `next` from the context `[1, T]` (its length marked dynamic).
fn generate_with(block: usize, prompt: i64, n: usize, next: &dyn Fn(&Tensor) -> i64) -> Vec<i64> {
    let mut ids = vec![prompt];
    tenjit::no_grad(|| {
        for _ in 0..n {
            let context = &ids[ids.len().saturating_sub(block)..];
            let x = Tensor::from_vec(context.to_vec(), [1, context.len()]);
            // The context grows every step: one program for every length.
            x.mark_dynamic(1);
            ids.push(next(&x));
        }
    });
    ids
}

fn w10(bench: &mut Bench) {
    if !bench.want("W10.gpt_generate") {
        return;
    }
    tenjit::manual_seed(10);
    let model = std::sync::Arc::new(Gpt::new(Config::shakespeare_char(VOCAB)));
    let (tokens, block) = (128, model.cfg.block);
    // Lazily: the forward is built and traced for every token, its program found by structure.
    let lazy = |x: &Tensor| model.forward(x).i(s![0, -1]).argmax().item() as i64;
    let compiles = tenjit::compile_count();
    let functions = tenjit::backend::cpu::codegen::functions_compiled();
    let t = Instant::now();
    let first = generate_with(block, 0, tokens, &lazy);
    let first_call = t.elapsed().as_secs_f64();
    let first_compiles = tenjit::compile_count() - compiles;
    let first_functions = tenjit::backend::cpu::codegen::functions_compiled() - functions;
    let median = bench.time_as("W10.gpt_generate", "lazy", 3, None, None, || {
        assert_eq!(generate_with(block, 0, tokens, &lazy), first, "greedy generation is deterministic");
    });
    bench.record("W10.gpt_generate", "first call", first_call, first_call, first_call, 1);
    if let Some(m) = median {
        println!(
            "  W10: {:.0} tokens/s after the first call ({:.0} tokens/s in it, {first_compiles} compilations, \
             {first_functions} kernel functions compiled)",
            tokens as f64 / m,
            tokens as f64 / first_call
        );
    }
    // Under `tenjit::jit`: the forward is traced once over the length (twice: length 1 is a
    // structure of its own) and later lengths bind that trace.
    let m = model.clone();
    let step = tenjit::jit(move |a: &[Tensor]| vec![m.forward(&a[0]).i(s![0, -1]).argmax()]);
    let jitted = |x: &Tensor| step.call(&[x])[0].item() as i64;
    let t = Instant::now();
    assert_eq!(generate_with(block, 0, tokens, &jitted), first, "jit generates what the lazy forward does");
    let first_call = t.elapsed().as_secs_f64();
    let median = bench.time_as("W10.gpt_generate", "jit", 3, None, None, || {
        assert_eq!(generate_with(block, 0, tokens, &jitted), first);
    });
    bench.record("W10.gpt_generate", "jit first call", first_call, first_call, first_call, 1);
    if let Some(m) = median {
        let why = step.why_traced_again().unwrap_or_else(|| "none read".into());
        println!(
            "  W10 jit: {:.0} tokens/s after the first call, {} traces (size reads: {why})",
            tokens as f64 / m,
            step.trace_count()
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut bench = Bench::from_args(&args);
    println!("tenjit {} backend, {} threads", common::backend_name(), tenjit::backend::cpu::exec::threads());
    w8(&mut bench);
    w9(&mut bench);
    w10(&mut bench);
    if tenjit::profile::enabled() {
        // Every run above, first calls included: where the time goes, step by step.
        eprintln!("{}", tenjit::profile::report());
    }
}
