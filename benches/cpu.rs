//! tenjit's side of the CPU benchmarks of `../shared/BENCH.md` (W1–W4, and W7's compile
//! latency for a fused kernel), with the same workload ids as the peers' scripts.
//!
//! `cargo bench --bench cpu` prints a table; `-- --json FILE` also appends JSON lines in the
//! peers' record format (`peer`, `workload`, `median_s`, ...), so one table can hold both
//! (`benches/side_by_side.sh` runs tenjit and the peers back to back and prints the ratios).
//! `-- --only W1,W4.mm1024` picks workloads. Timings are medians; nothing here asserts a time.
//!
//! Next to W2 it measures the machine's own limits on the same 64 MiB (`common/limits.rs`): a
//! read-only sweep and a copy, written in Rust, and prints each W2 reduction's bandwidth as a
//! fraction of the read sweep.

mod common;

use common::Bench;
use tenjit::prelude::*;

const N1: usize = 1 << 24;
const M2: usize = 4096;

fn uniform(n: usize, lo: f64, hi: f64) -> Tensor {
    (Tensor::rand([n]) * (hi - lo) + lo).realize().clone()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut b = Bench::from_args(&args);
    tenjit::manual_seed(1);
    println!(
        "tenjit {} backend, {} threads",
        common::backend_name(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    if b.want("W1") {
        let x = uniform(N1, -3.0, 3.0);
        let (a, bb, c) = (uniform(N1, -1.0, 1.0), uniform(N1, -1.0, 1.0), uniform(N1, -1.0, 1.0));
        b.time("W1.sincos", 7, Some(8.0 * N1 as f64), None, || {
            (x.sin() + x.cos().pow(2)).realize();
        });
        b.time("W1.sqrtexp", 7, Some(16.0 * N1 as f64), None, || {
            ((&a * &bb + &c).exp().sqrt()).realize();
        });
    }
    if b.want("W2") || b.want("W3") {
        let x = Tensor::randn([M2, M2]).realize().clone();
        let mb = 4.0 * (M2 * M2) as f64;
        if b.want("W2") {
            b.reference = common::limits::measure(&mut b, "W2", &x.to_vec::<f32>());
        }
        b.time("W2.sum", 7, Some(mb), None, || {
            x.sum().realize();
        });
        b.time("W2.sum_dim1", 7, Some(mb), None, || {
            x.sum_dim(1, false).realize();
        });
        b.time("W2.mean_dim0", 7, Some(mb), None, || {
            x.mean_dim(0, false).realize();
        });
        b.time("W2.std", 7, Some(mb), None, || {
            x.std_dim([0, 1], 0.0, false).realize();
        });
        b.time("W2.max_argmax_dim1", 7, Some(mb), None, || {
            let (v, i) = x.max_dim(1, false);
            tenjit::realize(&[&v, &i]);
        });
        b.reference = None;
        b.time("W3.softmax", 7, Some(2.0 * mb), None, || {
            let e = (&x - x.amax(1, true)).exp();
            (&e / e.sum_dim(1, true)).realize();
        });
    }
    for n in [512usize, 1024, 2048] {
        let id = format!("W4.mm{n}");
        if b.want(&id) {
            let (p, q) = (Tensor::randn([n, n]).realize().clone(), Tensor::randn([n, n]).realize().clone());
            b.time(&id, 7, None, Some(2.0 * (n * n * n) as f64), || {
                p.matmul(&q).realize();
            });
        }
    }
    // The products of the W8 step (768 rows) and of W10's forward pass (64 rows), each as
    // `nn::Linear` runs it (`x @ wᵀ`), and attention's batched products: not a peer workload,
    // but where the model benchmarks spend most of their time.
    for (m, k, n) in
        [(64, 128, 512), (64, 512, 128), (64, 128, 128), (768, 128, 512), (768, 512, 128), (768, 128, 384)]
    {
        let id = format!("W4.linear.{m}x{k}x{n}");
        if b.want(&id) {
            let (x, w) = (Tensor::randn([m, k]).realize().clone(), Tensor::randn([n, k]).realize().clone());
            b.time(&id, 21, None, Some(2.0 * (m * n * k) as f64), || {
                x.matmul(&w.t()).realize();
            });
        }
    }
    if b.want("W4.attention.48x64x32x64") {
        let (q, kt) =
            (Tensor::randn([48, 64, 32]).realize().clone(), Tensor::randn([48, 32, 64]).realize().clone());
        b.time("W4.attention.48x64x32x64", 21, None, Some(2.0 * (48 * 64 * 64 * 32) as f64), || {
            q.matmul(&kt).realize();
        });
    }
    if b.want("W7") {
        // Compile latency of one fused elementwise kernel: a new structure each time (the
        // length differs; a different constant would not do, as constants are data), so every
        // call traces, runs the passes, lowers and JIT-compiles.
        let x = uniform(4096, -1.0, 1.0);
        let mut k = 0;
        b.time("W7.compile_elementwise", 21, None, None, || {
            k += 1;
            let v = x.i(s![..1024 + k]);
            ((&v * 1.5).sin() + v.exp()).realize();
        });
    }
}
