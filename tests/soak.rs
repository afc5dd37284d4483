//! Long loops hold memory and compilations flat: the README's training loop (backward, an
//! in-place update under `no_grad`, `zero_grad`, the loss read each step) on a 256×256 weight
//! keeps its resident memory and its compile count constant after the first steps. (An updated
//! parameter's old node once stayed alive through its gradient: 256 KiB per step here.)
//!
//! 150 steps in the normal run; `TENJIT_SOAK_STEPS=N` runs more. The figures of a long run are
//! in BENCHMARKS.md.

use tenjit::prelude::*;

/// Resident memory of this process, in bytes (Linux; `None` elsewhere).
fn rss() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[test]
fn the_readme_training_loop_holds_memory_and_compilations_flat() {
    let steps: usize = std::env::var("TENJIT_SOAK_STEPS").ok().and_then(|v| v.parse().ok()).unwrap_or(150);
    tenjit::manual_seed(7);
    let n = 256;
    let x = Tensor::randn([64, n]);
    let y = Tensor::randn([64, n]);
    let mut w = (Tensor::randn([n, n]) * 0.01).realize().clone().requires_grad_();
    let warmup = 20;
    let (mut rss0, mut compiles0) = (0, 0);
    for step in 0..warmup + steps {
        if step == warmup {
            rss0 = rss().unwrap_or(0);
            compiles0 = tenjit::compile_count();
        }
        let loss = (x.matmul(&w) - &y).square().mean();
        loss.backward();
        tenjit::no_grad(|| {
            w.sub_(w.grad().expect("a gradient") * 0.1);
        });
        w.zero_grad();
        assert!(loss.item().is_finite(), "step {step}");
    }
    let grown = rss().unwrap_or(0).saturating_sub(rss0);
    eprintln!("{steps} steps: resident memory grew by {} KiB", grown / 1024);
    // A leaked 256 KiB weight per step would be 37 MiB over 150 steps.
    assert!(grown < 16 << 20, "resident memory grew by {} KiB over {steps} steps", grown / 1024);
    // Process-wide counts: other tests of this binary would compile too, so it has one test.
    assert_eq!(tenjit::compile_count(), compiles0, "the loop compiled again after its first steps");
}
