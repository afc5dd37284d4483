//! Dropout: the share of zeros and the scale of the kept values, the gradient (the mask over
//! `1 - p`), the identity in evaluation, reproducibility under `manual_seed`, errors, a
//! training loop with dropout that compiles once (the seed and offset of each step's draw are
//! runtime operands), and the kernels of a dropout on a matrix product: the draw runs inside
//! the one elementwise kernel that applies the mask.

use std::sync::Mutex;
use tenjit::nn::{self, Dropout, Linear, Module};
use tenjit::prelude::*;

/// The generator and the compile count are process-wide: the tests take turns.
static TURN: Mutex<()> = Mutex::new(());

#[test]
fn drops_about_p_and_scales_the_rest() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    tenjit::manual_seed(1);
    let n = 100_000;
    for p in [0.1, 0.5, 0.9] {
        let y = nn::dropout(&Tensor::ones([n]), p, true).to_vec::<f32>();
        let zeros = y.iter().filter(|&&v| v == 0.0).count() as f64 / n as f64;
        assert!((zeros - p).abs() < 0.01, "p = {p}: {zeros} of the elements are zero");
        let scale = (1.0 / (1.0 - p)) as f32;
        assert!(y.iter().all(|&v| v == 0.0 || (v - scale).abs() <= 1e-6 * scale), "p = {p}");
    }
}

#[test]
fn the_gradient_is_the_mask_over_one_minus_p() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    tenjit::manual_seed(2);
    let x = (Tensor::rand([64, 8]) + 0.5).realize().requires_grad_();
    let y = nn::dropout(&x, 0.3, true);
    y.sum().backward();
    let (xv, yv, g) = (x.to_vec::<f32>(), y.to_vec::<f32>(), x.grad().unwrap().to_vec::<f32>());
    for i in 0..xv.len() {
        let kept = yv[i] != 0.0;
        let want = if kept { 1.0 / 0.7 } else { 0.0 };
        assert!(
            (g[i] - want).abs() < 1e-5,
            "element {i}: grad {} for a {} element",
            g[i],
            if kept { "kept" } else { "dropped" }
        );
        if kept {
            assert!((yv[i] - xv[i] / 0.7).abs() < 1e-5 * yv[i].abs());
        }
    }
}

#[test]
fn evaluation_p_zero_and_seeds() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let x = Tensor::randn([10]);
    assert!(nn::dropout(&x, 0.5, false).same_node(&x), "evaluation is the identity");
    assert!(nn::dropout(&x, 0.0, true).same_node(&x), "p = 0 is the identity");
    assert!(nn::dropout(&x, 1.0, true).to_vec::<f32>().iter().all(|&v| v == 0.0));
    let mut layer = Dropout::new(0.5);
    layer.eval();
    assert!(layer.forward(&x).same_node(&x));
    layer.train();
    assert!(layer.parameters().is_empty());
    let draw = || {
        tenjit::manual_seed(3);
        nn::dropout(&Tensor::ones([32]), 0.5, true).to_vec::<f32>()
    };
    assert_eq!(draw(), draw(), "the same seed gives the same mask");
    let e = nn::try_dropout(&x, 1.5, true).unwrap_err().to_string();
    assert!(e.contains("dropout probability has to be between 0 and 1, but got 1.5"), "{e}");
    let e = nn::try_dropout(&Tensor::arange(3), 0.5, true).unwrap_err().to_string();
    assert!(e.contains("expected a float tensor"), "{e}");
}

#[test]
fn a_training_loop_with_dropout_compiles_once() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    tenjit::manual_seed(4);
    let mut layer = Linear::new(16, 4);
    let x = Tensor::randn([32, 16]);
    let t = Tensor::randn([32, 4]);
    let mut opt = tenjit::optim::Sgd::new(0.05);
    let mut compiles = Vec::new();
    let mut losses = Vec::new();
    for _ in 0..12 {
        layer.zero_grad();
        let loss = nn::mse_loss(&layer.forward(&nn::dropout(&x, 0.2, true)), &t);
        loss.backward();
        opt.step(&mut layer.parameters_mut());
        losses.push(loss.item());
        compiles.push(tenjit::compile_count());
    }
    assert_eq!(compiles[3], compiles[11], "fresh masks recompiled the step: {compiles:?}");
    assert!(losses[11] < losses[0], "the loss fell: {losses:?}");
}

#[test]
fn dropout_on_a_matmul_is_one_elementwise_kernel_drawing_the_mask() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    tenjit::manual_seed(5);
    let a = Tensor::rand([8, 16]).realize().clone();
    let b = Tensor::rand([16, 4]).realize().clone();
    let y = nn::dropout(&a.matmul(&b), 0.25, true);
    let stages = tenjit::inspect(&[&y]);
    // The GEMM, then one kernel: draw, compare, select, scale.
    assert_eq!(stages.kernel_count(), 2, "{}", stages.kernels());
    insta::assert_snapshot!("dropout_matmul_kernels", stages.kernels());
    insta::assert_snapshot!("dropout_matmul_kernel_ir", stages.kernel_ir());
    // The compiled step drops the interpreter's elements (the GEMM may round differently).
    let got = y.to_vec::<f32>();
    tenjit::set_backend(tenjit::Backend::Interp);
    tenjit::manual_seed(5);
    let _ = (Tensor::rand([8, 16]), Tensor::rand([16, 4]));
    let want = nn::dropout(&a.matmul(&b), 0.25, true).to_vec::<f32>();
    tenjit::set_backend(tenjit::Backend::Cpu);
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(*g == 0.0, *w == 0.0, "element {i}: compiled {g}, interpreter {w}");
        assert!((g - w).abs() <= 1e-5 * w.abs(), "element {i}: compiled {g}, interpreter {w}");
    }
    assert!(got.contains(&0.0) && got.iter().any(|&v| v != 0.0));
}
