//! tenjit on an NVIDIA GPU: W1 and W3 of `../shared/BENCH.md` against the device's copy
//! bandwidth measured here, W4 in TFLOP/s (tenjit's matmuls are cuBLAS calls: the ratio shows
//! what the rest of the step costs), and the W8 training step. `scripts/gpu-check.sh` builds and
//! runs it on the GPU machine; on a machine without CUDA it says so and exits with 1.
//!
//! ```sh
//! cargo bench --bench gpu -- --only W1,W3
//! ```
//!
//! A timed call realizes its result and reads one element back, which waits for the device, so
//! each time is a launch-to-finish time including the one-element copy.

mod common;
#[path = "../examples/common/gpt.rs"]
mod gpt;

use common::Bench;
use tenjit::prelude::*;

const N1: usize = 1 << 24;
const M2: usize = 4096;

/// Waits for `t`'s computation by reading one of its elements back.
fn finish(t: &Tensor) {
    t.realize();
    let first = t.reshape([-1]).i(s![..1]);
    let _ = first.to_vec::<f32>();
}

fn on_gpu(t: Tensor) -> Tensor {
    t.to(Device::Cuda(0)).realize().clone()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !tenjit::cuda::is_available() {
        eprintln!("no CUDA device here: run this benchmark on a GPU machine (scripts/gpu-check.sh)");
        std::process::exit(1);
    }
    let mut b = Bench::from_args(&args);
    tenjit::manual_seed(1);
    println!("tenjit on cuda:0");

    // The copy bandwidth the elementwise workloads are measured against: one read and one
    // write per element (an op the simplifier cannot remove).
    let x = on_gpu(Tensor::rand([N1]));
    let copy = b.time_as("BW.copy", "", 11, Some(8.0 * N1 as f64), None, || finish(&(&x * 1.000_001)));
    if let Some(t) = copy {
        println!("  device copy bandwidth: {:.0} GB/s (read + write of {N1} f32)", 8.0 * N1 as f64 / t / 1e9);
    }
    if b.want("W1") {
        let x = on_gpu(Tensor::rand([N1]) * 6.0 - 3.0);
        let (p, q, r) = (on_gpu(Tensor::rand([N1])), on_gpu(Tensor::rand([N1])), on_gpu(Tensor::rand([N1])));
        b.time("W1.sincos", 11, Some(8.0 * N1 as f64), None, || finish(&(x.sin() + x.cos().pow(2))));
        b.time("W1.sqrtexp", 11, Some(16.0 * N1 as f64), None, || finish(&(&p * &q + &r).exp().sqrt()));
    }
    if b.want("W3") {
        let x = on_gpu(Tensor::randn([M2, M2]));
        b.time("W3.softmax", 11, Some(8.0 * (M2 * M2) as f64), None, || {
            let e = (&x - x.amax(1, true)).exp();
            finish(&(&e / e.sum_dim(1, true)));
        });
    }
    for n in [512usize, 1024, 2048, 4096] {
        let id = format!("W4.mm{n}");
        if b.want(&id) {
            let (p, q) = (on_gpu(Tensor::randn([n, n])), on_gpu(Tensor::randn([n, n])));
            b.time(&id, 11, None, Some(2.0 * (n * n * n) as f64), || finish(&p.matmul(&q)));
        }
    }
    if b.want("W8") {
        w8(&mut b);
    }
}

/// The W8 training step on the GPU (the model of `benches/models.rs`, moved to the device).
fn w8(b: &mut Bench) {
    tenjit::manual_seed(8);
    let cfg = gpt::Config::shakespeare_char(65);
    let tokens = |rows: usize| {
        on_gpu((Tensor::rand([rows, cfg.block]) * 65.0).floor().to_dtype(DType::I64).clamp(0, 64))
    };
    let (x, y) = (tokens(12), tokens(12));
    let mut model = gpt::Gpt::new(cfg);
    for (_, p) in model.named_parameters_mut() {
        // A fresh leaf on the device: `to` alone would pass gradients back to the CPU copy.
        *p = p.detach().to(Device::Cuda(0)).realize().requires_grad_();
    }
    let mut opt = gpt::GptOptimizer::new(1e-3);
    b.time_as("W8.gpt_step", "cuda", 11, None, None, || {
        let _ = model.train_step(&mut opt, &x, &y).item();
    });
}
