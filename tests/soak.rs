//! Long loops hold memory and compilations flat: the README's training loop (backward, an
//! in-place update under `no_grad`, `zero_grad`) on a 256×256 weight, with the loss read each
//! step and without reading anything, and `optim::Adam` on fresh random data each step, keep
//! their resident memory, their live tensor nodes and bytes (`tenjit::live`) and their compile
//! count constant after the first steps. (An updated parameter's old node once stayed alive
//! through its gradient: 256 KiB per step here; a loop that read nothing once never computed
//! anything, and grew without end.)
//!
//! 150 steps per loop in the normal run; `TENJIT_SOAK_STEPS=N` runs more. The figures of a
//! long run are in BENCHMARKS.md.

use tenjit::optim::Adam;
use tenjit::prelude::*;

/// Resident memory of this process, in bytes (Linux; `None` elsewhere).
fn rss() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Runs `step` for a warm-up and then `steps` times, and checks that resident memory, live
/// tensors and the compile count stay flat after the warm-up.
fn soak(name: &str, steps: usize, mut step: impl FnMut(usize)) {
    let warmup = 20;
    for i in 0..warmup {
        step(i);
    }
    let (rss0, live0, compiles0) = (rss().unwrap_or(0), tenjit::live(), tenjit::compile_count());
    for i in warmup..warmup + steps {
        step(i);
    }
    let grown = rss().unwrap_or(0).saturating_sub(rss0);
    let live = tenjit::live();
    eprintln!(
        "{name}: {steps} steps: resident memory grew by {} KiB; live nodes {} -> {}, bytes {} -> {}",
        grown / 1024,
        live0.nodes,
        live.nodes,
        live0.bytes,
        live.bytes
    );
    // A leaked 256 KiB weight per step would be 37 MiB over 150 steps.
    assert!(grown < 16 << 20, "{name}: resident memory grew by {} KiB over {steps} steps", grown / 1024);
    assert!(live.nodes <= live0.nodes + 8, "{name}: live nodes grew from {} to {}", live0.nodes, live.nodes);
    assert!(
        live.bytes <= live0.bytes + (64 << 10),
        "{name}: live bytes grew from {} to {}",
        live0.bytes,
        live.bytes
    );
    assert_eq!(tenjit::compile_count(), compiles0, "{name}: the loop compiled again after its first steps");
}

// Process-wide counts: other tests of this binary would compile too, so it has one test.
#[test]
fn long_training_loops_hold_memory_and_compilations_flat() {
    let steps: usize = std::env::var("TENJIT_SOAK_STEPS").ok().and_then(|v| v.parse().ok()).unwrap_or(150);
    tenjit::manual_seed(7);
    let n = 256;
    let x = Tensor::randn([64, n]);
    let y = Tensor::randn([64, n]);
    for read_loss in [true, false] {
        let mut w = (Tensor::randn([n, n]) * 0.01).realize().clone().requires_grad_();
        let name = if read_loss { "README loop, loss read" } else { "README loop, nothing read" };
        soak(name, steps, |i| {
            let loss = (x.matmul(&w) - &y).square().mean();
            loss.backward();
            tenjit::no_grad(|| {
                w.sub_(w.grad().expect("a gradient") * 0.1);
            });
            w.zero_grad();
            if read_loss {
                assert!(loss.item().is_finite(), "step {i}");
            }
        });
        assert!(w.to_vec::<f32>().iter().all(|v| v.is_finite()));
    }

    let mut w1 = (Tensor::randn([n, 64]) * 0.05).realize().clone().requires_grad_();
    let mut w2 = (Tensor::randn([64, 16]) * 0.05).realize().clone().requires_grad_();
    let mut adam = Adam::new(1e-3);
    soak("Adam, fresh random data", steps, |_| {
        let x = Tensor::randn([32, n]);
        let t = Tensor::randn([32, 16]);
        let loss = (x.matmul(&w1).relu().matmul(&w2) - &t).square().mean();
        loss.backward();
        adam.step(&mut [&mut w1, &mut w2]);
        w1.zero_grad();
        w2.zero_grad();
    });
}
