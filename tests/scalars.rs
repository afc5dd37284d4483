//! Scalars are data: a Rust number in the API is a runtime operand of the compiled program
//! unless its value changes the program (`tenjit_ir::passes::simplify::is_structural`), so a
//! learning-rate schedule, a loop over many scalars and threads with distinct scalars compile
//! a bounded number of times, and their values agree with the interpreter and with values
//! computed here.
//!
//! `compile_count()` and the backend are process-wide, so the tests of this binary take turns
//! (`serial`).

use std::sync::{Mutex, MutexGuard};
use tenjit::optim::{Adam, Sgd};
use tenjit::prelude::*;
use tenjit::Backend;

/// Holds the other tests of this binary off while one counts compilations.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    let guard = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    tenjit::set_backend(Backend::Cpu);
    guard
}

/// A small deterministic generator of test numbers.
struct Rng(u64);

impl Rng {
    /// A number in `[lo, hi)`.
    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        lo + (hi - lo) * ((self.0 >> 11) as f64 / (1u64 << 53) as f64)
    }
}

/// The learning rate at `step` of `steps`: linear warmup over the first tenth, then cosine.
fn schedule(step: usize, steps: usize, peak: f64) -> f64 {
    let warmup = steps / 10;
    if step < warmup {
        peak * (step + 1) as f64 / warmup as f64
    } else {
        let t = (step - warmup) as f64 / (steps - warmup) as f64;
        peak * 0.5 * (1.0 + (std::f64::consts::PI * t).cos()) + 1e-4
    }
}

/// The README's linear-regression loop with a learning rate that changes every step, reading
/// the loss each step; returns the trained `w` and `b` and the compilations the loop made
/// after its first two steps.
fn readme_loop(steps: usize) -> (Vec<f32>, Vec<f32>, usize) {
    let xs = tensor!([[1.0], [2.0], [3.0], [4.0]]);
    let ys = tensor!([2.0, 4.0, 6.0, 8.0]);
    let mut w = tensor!([0.5]).requires_grad_();
    let mut b = tensor!([0.0]).requires_grad_();
    let mut mark = 0;
    for step in 0..steps {
        if step == 2 {
            mark = tenjit::compile_count();
        }
        let lr = schedule(step, steps, 0.05);
        let loss = (xs.matmul(&w) + &b - &ys).square().mean();
        loss.backward();
        tenjit::no_grad(|| {
            w.sub_(w.grad().unwrap() * lr);
            b.sub_(b.grad().unwrap() * lr);
        });
        w.zero_grad();
        b.zero_grad();
        // The loss read each step realizes the step, so each step runs an executable.
        assert!(loss.item().is_finite(), "step {step}");
    }
    let (w, b) = (w.to_vec::<f32>(), b.to_vec::<f32>());
    (w, b, tenjit::compile_count() - mark)
}

fn assert_close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{what}[{i}]: {x} against {y}");
    }
}

#[test]
fn a_learning_rate_schedule_compiles_once() {
    let _serial = serial();
    let (w, b, compiles) = readme_loop(120);
    assert!(compiles <= 1, "the scheduled loop compiled {compiles} times after its first steps");
    tenjit::set_backend(Backend::Interp);
    let (wi, bi, _) = readme_loop(120);
    tenjit::set_backend(Backend::Cpu);
    assert_close(&w, &wi, 1e-5, "w");
    assert_close(&b, &bi, 1e-5, "b");
    assert!((w[0] - 2.0).abs() < 0.1, "the loop trains: w = {w:?}");
}

/// `optim::Sgd` (momentum) and `Adam` with `lr` changed before every step. (They pass their
/// hyperparameters as 0-d data tensors already; this keeps them at one compilation.)
fn optim_loop(adam: bool, steps: usize) -> (Vec<f32>, usize) {
    tenjit::manual_seed(3);
    let x = Tensor::randn([16, 4]);
    let y = Tensor::randn([16, 1]);
    let mut w = (Tensor::randn([4, 1]) * 0.1).realize().clone().requires_grad_();
    let mut sgd = Sgd::new(0.1).with_momentum(0.9);
    let mut opt = Adam::new(0.01);
    let mut mark = 0;
    for step in 0..steps {
        if step == 2 {
            mark = tenjit::compile_count();
        }
        w.zero_grad();
        let loss = (x.matmul(&w) - &y).square().mean();
        loss.backward();
        if adam {
            opt.lr = schedule(step, steps, 0.05);
            opt.step(&mut [&mut w]);
        } else {
            sgd.lr = schedule(step, steps, 0.1);
            sgd.step(&mut [&mut w]);
        }
    }
    (w.to_vec::<f32>(), tenjit::compile_count() - mark)
}

#[test]
fn optimizers_with_a_schedule_compile_once() {
    let _serial = serial();
    for adam in [false, true] {
        let (w, compiles) = optim_loop(adam, 60);
        assert!(compiles <= 1, "adam={adam}: {compiles} compilations after the first steps");
        tenjit::set_backend(Backend::Interp);
        let (wi, _) = optim_loop(adam, 60);
        tenjit::set_backend(Backend::Cpu);
        assert_close(&w, &wi, 1e-4, if adam { "adam w" } else { "sgd w" });
    }
}

#[test]
fn many_scalars_share_one_executable() {
    let _serial = serial();
    let data: Vec<f32> = (0..257).map(|i| (i as f32 * 0.37).sin()).collect();
    let x = Tensor::from_vec(data.clone(), [257]);
    let mut rng = Rng(1);
    let before = tenjit::compile_count();
    for _ in 0..100 {
        let (s, t) = (rng.uniform(-3.0, 3.0), rng.uniform(-3.0, 3.0));
        let got = (&x * s + t).to_vec::<f32>();
        let want: Vec<f32> = data.iter().map(|&v| v * s as f32 + t as f32).collect();
        assert_eq!(got, want, "x * {s} + {t}");
    }
    assert_eq!(tenjit::compile_count() - before, 1, "100 pairs of scalars compile once");
}

#[test]
fn the_values_rules_match_keep_their_own_executables() {
    let _serial = serial();
    let data: Vec<f32> = (0..33).map(|i| i as f32 - 16.5).collect();
    let x = Tensor::from_vec(data.clone(), [33]);
    // The simplifier still sees the identities: no multiply is left in `x * 1`, and `x ** 2`
    // is a multiply, not a power.
    let optimized = tenjit::inspect(&[&(&x * 1.0)]).optimized().to_string();
    assert!(!optimized.contains("mul"), "{optimized}");
    let optimized = tenjit::inspect(&[&x.pow(2.0)]).optimized().to_string();
    assert!(optimized.contains("mul") && !optimized.contains("pow"), "{optimized}");

    // A general value, then each special one: each special value compiles its own program
    // once, and a repeat compiles nothing.
    let mark = tenjit::compile_count();
    assert_eq!((&x * 0.5).to_vec::<f32>(), data.iter().map(|v| v * 0.5).collect::<Vec<_>>());
    assert_eq!((&x * 0.25).to_vec::<f32>(), data.iter().map(|v| v * 0.25).collect::<Vec<_>>());
    assert_eq!(tenjit::compile_count() - mark, 1);
    for (s, f) in [(1.0, 1.0f32), (2.0, 2.0)] {
        let mark = tenjit::compile_count();
        assert_eq!((&x * s).to_vec::<f32>(), data.iter().map(|v| v * f).collect::<Vec<_>>());
        assert_eq!(tenjit::compile_count() - mark, 1, "x * {s} has its own executable");
        let again = tenjit::compile_count();
        (&x * s).realize();
        assert_eq!(tenjit::compile_count(), again, "x * {s} again");
    }
    let mark = tenjit::compile_count();
    assert_eq!(x.pow(2.0).to_vec::<f32>(), data.iter().map(|v| v * v).collect::<Vec<_>>());
    assert_eq!(x.pow(3.0).to_vec::<f32>(), data.iter().map(|v| v.powf(3.0)).collect::<Vec<_>>());
    assert_eq!(x.pow(0.5).to_vec::<f32>()[20], data[20].powf(0.5));
    assert_eq!(tenjit::compile_count() - mark, 2, "x ** 2 is special, x ** 3 and x ** 0.5 are data");
    // `x + 0.0` keeps the constant (it turns -0 into +0): correct, and not folded away.
    let z = tensor!([-0.0, 1.0]);
    assert_eq!((&z + 0.0).to_vec::<f32>()[0].to_bits(), 0.0f32.to_bits());
}

#[test]
fn threads_with_distinct_scalars_compile_a_handful_of_times() {
    let _serial = serial();
    let data: Vec<f32> = (0..64).map(|i| (i as f32).cos()).collect();
    let x = Tensor::from_vec(data.clone(), [64]);
    x.realize();
    let before = tenjit::compile_count();
    std::thread::scope(|scope| {
        for t in 0..4u64 {
            let (x, data) = (&x, &data);
            scope.spawn(move || {
                let mut rng = Rng(100 + t);
                for _ in 0..300 {
                    let s = rng.uniform(0.1, 4.0);
                    let got = (x * s - s).sum().item();
                    let want: f64 = data.iter().map(|&v| (v * s as f32 - s as f32) as f64).sum();
                    assert!((got - want).abs() < 1e-3 * (1.0 + want.abs()), "{got} against {want}");
                }
            });
        }
    });
    let compiles = tenjit::compile_count() - before;
    assert!(compiles <= 4, "4 threads x 300 distinct scalars compiled {compiles} times");
}

#[test]
fn integer_f64_and_bool_constants() {
    let _serial = serial();
    let ints = Tensor::arange(10i64);
    let mark = tenjit::compile_count();
    for k in [3i64, 5, -7, 1000, 12345] {
        let got = ((&ints * k) + k).to_vec::<i64>();
        assert_eq!(got, (0..10).map(|i| i * k + k).collect::<Vec<_>>(), "k = {k}");
        let got = ints.floor_divide(k).to_vec::<i64>();
        let floor: Vec<i64> = (0..10).map(|i| (i as f64 / k as f64).floor() as i64).collect();
        assert_eq!(got, floor, "k = {k}");
    }
    assert_eq!(tenjit::compile_count() - mark, 2, "five integers, two programs, each compiled once");

    let f = Tensor::from_vec(vec![1.5f64, -2.25, 3.0], [3]);
    let mark = tenjit::compile_count();
    for s in [0.1, 0.7, 1e10, -3.5] {
        assert_eq!((&f * s).to_vec::<f64>(), vec![1.5 * s, -2.25 * s, 3.0 * s]);
    }
    assert_eq!(tenjit::compile_count() - mark, 1, "f64 scalars are data");

    // Booleans always shape the program (`where`, `and`, `or` fold on them): each value is
    // its own executable, and both are right.
    let mask = tensor!([true, false, true]);
    for v in [true, false, true] {
        assert_eq!(mask.logical_and(v).to_vec::<bool>(), vec![v, false, v]);
        assert_eq!(mask.logical_or(v).to_vec::<bool>(), vec![true, v, true]);
    }
}

#[test]
fn full_of_a_varying_value_is_one_program() {
    let _serial = serial();
    let mark = tenjit::compile_count();
    for v in [0.37, -4.5, 123.0, 1e-7] {
        let t = Tensor::full([3, 5], v);
        assert_eq!(t.to_vec::<f32>(), vec![v as f32; 15]);
        let s = Tensor::full([], v);
        assert_eq!(s.item(), v as f32 as f64);
        let r = (Tensor::full([2, 1], v) + tensor!([1.0, 2.0])).to_vec::<f32>();
        assert_eq!(r, vec![v as f32 + 1.0, v as f32 + 2.0, v as f32 + 1.0, v as f32 + 2.0]);
    }
    assert_eq!(tenjit::compile_count() - mark, 3, "three structures, each compiled once");
}

/// Resident memory of this process, in bytes (Linux; `None` elsewhere).
fn rss() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[test]
fn a_schedule_holds_memory_and_the_cache_flat() {
    let _serial = serial();
    let steps: usize = std::env::var("TENJIT_SOAK_STEPS").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    tenjit::manual_seed(9);
    let x = Tensor::randn([32, 64]);
    let y = Tensor::randn([32, 64]);
    let mut w = (Tensor::randn([64, 64]) * 0.01).realize().clone().requires_grad_();
    let warmup = 20;
    let (mut rss0, mut cached0) = (0, 0);
    for step in 0..warmup + steps {
        if step == warmup {
            rss0 = rss().unwrap_or(0);
            cached0 = tenjit::cached_executables();
        }
        let lr = schedule(step, warmup + steps, 0.1);
        let loss = (x.matmul(&w) - &y).square().mean();
        loss.backward();
        tenjit::no_grad(|| w.sub_(w.grad().unwrap() * lr));
        w.zero_grad();
        assert!(loss.item().is_finite(), "step {step}");
    }
    let grown = rss().unwrap_or(0).saturating_sub(rss0);
    // A compilation per step held about 100 KB each: 30 MB over 300 steps.
    assert!(grown < 8 << 20, "resident memory grew by {} KiB over {steps} steps", grown / 1024);
    assert_eq!(tenjit::cached_executables(), cached0, "the schedule added executables");
}
