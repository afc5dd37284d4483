//! Programs instantiated from a symbolic signature against programs lowered for their sizes:
//! the same workloads (W1.sincos, W3.softmax, W8's training step), each first run at two other
//! sizes so that the size timed is an instance of the structure's symbolic signature, which
//! `TENJIT_SYMBOLIC_PROGRAMS=0` turns off (every size then lowered on its own). Run both,
//! alternately, and compare the medians:
//!
//! ```text
//! for v in 1 0 1 0; do TENJIT_SYMBOLIC_PROGRAMS=$v cargo bench --bench symbolic; done
//! ```
//!
//! Each line says how the timed size's program was made (`instance` or `lowered`), from the
//! compile report.

mod common;
#[path = "../examples/common/gpt.rs"]
mod gpt;

use common::Bench;
use gpt::{Config, Gpt, GptOptimizer};
use tenjit::prelude::*;

/// How the program of the last miss was made.
fn origin() -> String {
    tenjit::compile_reports().last().map_or("none".into(), |r| match r.origin {
        tenjit::ProgramOrigin::Instance => "instance".into(),
        ref other => format!("lowered ({other})"),
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut b = Bench::from_args(&args);
    tenjit::manual_seed(1);
    println!(
        "tenjit {} backend, {} threads, TENJIT_SYMBOLIC_PROGRAMS={}",
        common::backend_name(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        std::env::var("TENJIT_SYMBOLIC_PROGRAMS").unwrap_or_else(|_| "1 (default)".into())
    );
    if b.want("W1") {
        let sincos = |n: usize| {
            let x = (Tensor::rand([n]) * 6.0 - 3.0).realize().clone();
            move || {
                (x.sin() + x.cos().pow(2)).realize();
            }
        };
        for n in [(1 << 24) - 3, (1 << 24) - 5] {
            sincos(n)();
        }
        let run = sincos(1 << 24);
        run();
        let how = origin();
        b.time("W1.sincos", 7, Some(8.0 * (1 << 24) as f64), None, run);
        println!("  W1.sincos: {how}");
    }
    if b.want("W3") {
        let softmax = |rows: usize| {
            let x = Tensor::randn([rows, 4096]).realize().clone();
            move || {
                let e = (&x - x.amax(1, true)).exp();
                (&e / e.sum_dim(1, true)).realize();
            }
        };
        for rows in [4093, 4091] {
            softmax(rows)();
        }
        let run = softmax(4096);
        run();
        let how = origin();
        b.time("W3.softmax", 7, Some(2.0 * 4.0 * (4096 * 4096) as f64), None, run);
        println!("  W3.softmax: {how}");
    }
    if b.want("W8") {
        let cfg = Config::shakespeare_char(65);
        let mut model = Gpt::new(cfg);
        let mut opt = GptOptimizer::new(1e-3);
        let tokens = |rows: usize| {
            (Tensor::rand([rows, cfg.block]) * 65.0)
                .floor()
                .to_dtype(DType::I64)
                .clamp(0, 64)
                .realize()
                .clone()
        };
        // The first step is a structure of its own (the optimizer's state starts at zero).
        for batch in [9, 10, 11] {
            model.train_step(&mut opt, &tokens(batch), &tokens(batch)).item();
        }
        let (x, y) = (tokens(12), tokens(12));
        model.train_step(&mut opt, &x, &y).item();
        let how = origin();
        b.time("W8.gpt_step", 11, None, None, || {
            model.train_step(&mut opt, &x, &y).item();
        });
        println!("  W8.gpt_step: {how}");
    }
}
