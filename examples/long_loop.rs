//! The README's training loop run long, as a PyTorch user writes it: backward, the update
//! under `no_grad`, `zero_grad`, and no value read inside the loop. Prints, every so many
//! steps, the time per step, resident memory, live tensors and the compile count, which stay
//! flat (see "When values are computed" in the README).
//!
//! ```text
//! cargo run --release --example long_loop -- 10000
//! ```

use std::time::Instant;
use tenjit::prelude::*;

/// Resident memory of this process in MiB (Linux; 0 elsewhere).
fn rss_mib() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0.0);
    pages * 4096.0 / (1 << 20) as f64
}

fn main() {
    let steps: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let xs = tensor!([[1.0], [2.0], [3.0], [4.0]]);
    let ys = tensor!([2.0, 4.0, 6.0, 8.0]);
    let mut w = tensor!([0.5]).requires_grad_();
    let mut b = tensor!([0.0]).requires_grad_();
    let start = Instant::now();
    let mut last = (Instant::now(), 0);
    println!("{:>7} {:>12} {:>9} {:>11} {:>9}", "steps", "µs/step", "RSS MiB", "live nodes", "compiles");
    for step in 1..=steps {
        let loss = (xs.matmul(&w) + &b - &ys).square().mean();
        loss.backward();
        tenjit::no_grad(|| {
            w.sub_(w.grad().unwrap() * 0.05);
            b.sub_(b.grad().unwrap() * 0.05);
        });
        w.zero_grad();
        b.zero_grad();
        if step.is_power_of_two() && step >= 100 || step == steps {
            let per_step = last.0.elapsed().as_secs_f64() * 1e6 / (step - last.1) as f64;
            println!(
                "{step:>7} {per_step:>12.1} {:>9.1} {:>11} {:>9}",
                rss_mib(),
                tenjit::live().nodes,
                tenjit::compile_count()
            );
            last = (Instant::now(), step);
        }
    }
    println!(
        "{steps} steps in {:.2} s; w = {:.4}, b = {:.4}",
        start.elapsed().as_secs_f64(),
        w.item(),
        b.item()
    );
}
