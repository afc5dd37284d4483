//! Gradients of composite functions and optimizer steps checked against PyTorch autograd.
//!
//! `tests/oracle/gen_grads.py` draws the inputs with fixed seeds and computes, in float64 with
//! torch, each function's value and its gradients (or the parameters after a few steps of
//! `torch.optim.SGD`/`Adam`), and commits them as `tests/oracle/data/grad/<case>.<name>.npy`.
//! Each case runs here twice: in `f64` (`rtol 1e-10`) and, from the same inputs rounded to
//! `f32`, in `f32` (`rtol 1e-4`). The absolute tolerance is relative to the largest expected
//! magnitude of the array (`1e-12` and `1e-5` of it), for elements that cancel to near zero.
//! No Python runs here. `ORACLE_VERBOSE=1` (with `-- --nocapture`) prints how much of its
//! tolerance each comparison uses. Regenerate with
//! `/root/.cache/peers-venv/bin/python tests/oracle/gen_grads.py`.

use tenjit::nn::{self, Linear};
use tenjit::optim::{self, Adam, Sgd};
use tenjit::prelude::*;

#[path = "common/torch_oracle.rs"]
mod torch_oracle;

use torch_oracle::Case;

/// Loads an array of `tests/oracle/data/grad`.
fn load(case: &str, name: &str) -> Tensor {
    torch_oracle::load("grad", case, name)
}

/// Runs a case of `tests/oracle/data/grad`.
fn run(name: &'static str, body: impl Fn(&torch_oracle::Case)) {
    torch_oracle::run("grad", name, body)
}

#[test]
fn cross_entropy() {
    run("ce", |c| {
        let logits = c.leaf("logits");
        let loss = nn::cross_entropy(&logits, &c.data("targets"));
        loss.backward();
        c.check("value", &loss);
        c.check("grad_logits", &logits.grad().expect("logits has a grad"));
    });
}

#[test]
fn norm() {
    run("norm", |c| {
        let x = c.leaf("x");
        let y = x.norm();
        let g = tenjit::grad(&[&y], &[&x]);
        c.check("value", &y);
        c.check("grad_x", &g[0]);
    });
}

#[test]
fn std_unbiased() {
    run("std", |c| {
        let x = c.leaf("x");
        let y = x.std();
        let g = tenjit::grad(&[&y], &[&x]);
        c.check("value", &y);
        c.check("grad_x", &g[0]);
    });
}

#[test]
fn std_over_a_dim() {
    run("std_dim", |c| {
        let x = c.leaf("x");
        let y = (x.std_dim(1, 1.0, false) * c.data("w")).sum();
        let g = tenjit::grad(&[&y], &[&x]);
        c.check("value", &y);
        c.check("grad_x", &g[0]);
    });
}

#[test]
fn linear_relu_sum_of_squares() {
    run("linear_relu", |c| {
        let (x, w, b) = (c.leaf("x"), c.leaf("w"), c.leaf("b"));
        let layer = nn::relu(&(x.matmul(&w.t()) + &b));
        let y = (&layer * &layer).sum();
        let g = tenjit::grad(&[&y], &[&x, &w, &b]);
        c.check("value", &y);
        c.check("grad_x", &g[0]);
        c.check("grad_w", &g[1]);
        c.check("grad_b", &g[2]);
    });
}

#[test]
fn relu_and_clamp_at_their_kinks() {
    run("kinks", |c| {
        let x = c.leaf("x");
        let y = (x.relu() * c.data("w1")).sum()
            + (x.clamp(-0.5, 0.5) * c.data("w2")).sum()
            + (x.clamp_min(0.0) * c.data("w3")).sum();
        y.backward();
        c.check("value", &y);
        c.check("grad_x", &x.grad().unwrap());
    });
}

#[test]
fn broadcast_then_reduce() {
    run("broadcast", |c| {
        let (a, b, cc) = (c.leaf("a"), c.leaf("b"), c.leaf("c"));
        let y = ((&a + &b) * &cc).sum();
        y.backward();
        c.check("value", &y);
        c.check("grad_a", &a.grad().unwrap());
        c.check("grad_b", &b.grad().unwrap());
        c.check("grad_c", &cc.grad().unwrap());
    });
}

#[test]
fn logsumexp() {
    run("logsumexp", |c| {
        let x = c.leaf("x");
        let y = (nn::logsumexp(&x, 1, false) * c.data("w")).sum();
        y.backward();
        c.check("value", &y);
        c.check("grad_x", &x.grad().unwrap());
    });
}

#[test]
fn softmax() {
    run("softmax", |c| {
        let x = c.leaf("x");
        let y = (nn::softmax(&x, 1) * c.data("w")).sum();
        y.backward();
        c.check("value", &y);
        c.check("grad_x", &x.grad().unwrap());
    });
}

#[test]
fn log_softmax() {
    run("log_softmax", |c| {
        let x = c.leaf("x");
        let y = (nn::log_softmax(&x, -1) * c.data("w")).sum();
        y.backward();
        c.check("value", &y);
        c.check("grad_x", &x.grad().unwrap());
    });
}

#[test]
fn mse_loss() {
    run("mse", |c| {
        let (pred, target) = (c.leaf("pred"), c.leaf("target"));
        let y = nn::mse_loss(&pred, &target);
        y.backward();
        c.check("value", &y);
        c.check("grad_pred", &pred.grad().unwrap());
        c.check("grad_target", &target.grad().unwrap());
    });
}

/// `Linear(4, 3) -> relu -> Linear(3, 2)` from the case's initial parameters.
struct Tiny {
    fc1: Linear,
    fc2: Linear,
}

impl Tiny {
    fn load(c: &Case) -> Tiny {
        Tiny {
            fc1: Linear::from_tensors(c.data("w1"), Some(c.data("b1"))),
            fc2: Linear::from_tensors(c.data("w2"), Some(c.data("b2"))),
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        self.fc2.forward(&nn::relu(&self.fc1.forward(x)))
    }

    fn parameters(&self) -> Vec<&Tensor> {
        let mut p = self.fc1.parameters();
        p.extend(self.fc2.parameters());
        p
    }

    fn parameters_mut(&mut self) -> Vec<&mut Tensor> {
        let mut p = self.fc1.parameters_mut();
        p.extend(self.fc2.parameters_mut());
        p
    }
}

/// Three steps of an optimizer, as the generator ran them: the losses and the parameters.
fn optimizer_case(c: &Case, mut step: impl FnMut(&mut [&mut Tensor])) {
    let mut model = Tiny::load(c);
    let x = c.data("x");
    let y = c.data("y");
    let mut losses: Vec<Tensor> = Vec::new();
    for _ in 0..3 {
        optim::zero_grad(&model.parameters());
        let out = model.forward(&x);
        let loss = if y.dtype().is_float() { nn::mse_loss(&out, &y) } else { nn::cross_entropy(&out, &y) };
        loss.backward();
        if let Some(previous) = losses.last() {
            assert!(previous.is_realized(), "the previous step is computed when this backward() starts");
        }
        step(&mut model.parameters_mut());
        assert!(!loss.is_realized(), "a step waits for the next realization");
        losses.push(loss);
    }
    c.check("losses", &Tensor::stack(&losses.iter().collect::<Vec<_>>(), 0));
    for p in model.parameters() {
        assert!(p.is_leaf() && p.requires_grad() && p.is_realized());
    }
    c.check("after_w1", &model.fc1.weight);
    c.check("after_b1", model.fc1.bias.as_ref().unwrap());
    c.check("after_w2", &model.fc2.weight);
    c.check("after_b2", model.fc2.bias.as_ref().unwrap());
}

#[test]
fn sgd_momentum() {
    run("sgd_momentum", |c| {
        let mut opt = Sgd::new(0.1).with_momentum(0.9).with_weight_decay(0.01);
        optimizer_case(c, |p| opt.step(p));
    });
}

#[test]
fn sgd_nesterov() {
    run("sgd_nesterov", |c| {
        let mut opt = Sgd::new(0.05).with_momentum(0.8).with_nesterov(true).with_weight_decay(0.02);
        optimizer_case(c, |p| opt.step(p));
    });
}

#[test]
fn sgd_dampening() {
    run("sgd_dampening", |c| {
        let mut opt = Sgd::new(0.2).with_momentum(0.5).with_dampening(0.3);
        optimizer_case(c, |p| opt.step(p));
    });
}

#[test]
fn adam() {
    run("adam", |c| {
        let mut opt = Adam::new(0.01);
        optimizer_case(c, |p| opt.step(p));
        assert_eq!(opt.state(0).unwrap().step, 3);
    });
}

#[test]
fn adam_weight_decay() {
    run("adam_wd", |c| {
        let mut opt = Adam::new(0.05).with_betas(0.8, 0.99).with_eps(1e-6).with_weight_decay(0.1);
        optimizer_case(c, |p| opt.step(p));
    });
}

/// Parameters without a gradient are skipped; a step on a list of another length is an error.
#[test]
fn optimizer_skips_params_without_grad_and_checks_the_list() {
    let mut a = tensor!([1.0, 2.0]).requires_grad_();
    let mut b = tensor!([3.0]).requires_grad_();
    (&a * 2.0).sum().backward();
    let mut opt = Adam::new(0.1);
    opt.step(&mut [&mut a, &mut b]);
    assert_eq!(b.to_vec::<f32>(), vec![3.0]);
    assert!(opt.state(1).is_none());
    let v = a.to_vec::<f32>();
    assert!((v[0] - 0.9).abs() < 1e-6 && (v[1] - 1.9).abs() < 1e-6, "{v:?}");
    let err = opt.try_step(&mut [&mut a]).unwrap_err().to_string();
    assert!(err.contains("2") && err.contains("same order"), "{err}");
}

#[test]
fn mse_loss_requires_equal_shapes() {
    let err = nn::try_mse_loss(&Tensor::zeros([3, 1]), &Tensor::zeros([3])).unwrap_err().to_string();
    assert!(err.contains("mse_loss") && err.contains("[3, 1]") && err.contains("[3]"), "{err}");
}

#[test]
fn cross_entropy_checks_its_inputs() {
    let logits = Tensor::zeros([4, 3]);
    let err = nn::try_cross_entropy(&logits, &tensor!([0, 1, 2])).unwrap_err().to_string();
    assert!(err.contains("[4, 3]") && err.contains("[3]"), "{err}");
    let err = nn::try_cross_entropy(&logits, &tensor!([0.0, 1.0, 2.0, 0.0])).unwrap_err().to_string();
    assert!(err.contains("integer"), "{err}");
    // One sample: [C] logits with a 0-d target.
    let one = nn::cross_entropy(&tensor!([0.0, 0.0, 0.0, 0.0]), &tensor!(2));
    assert!((one.item() - 4f64.ln()).abs() < 1e-6);
}

/// The tutorial's linear regression, 100 epochs, against the same loop in NumPy with
/// hand-written gradients (`linreg_numpy_case` in gen_grads.py): within 1e-5 in `f32`.
#[test]
fn linear_regression_matches_numpy_by_hand() {
    for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 1e-5)] {
        let get = |name: &str| load("linreg_numpy", name).to_dtype(dtype);
        let (x, y) = (get("x").reshape([4, 1]), get("y"));
        let mut w = get("w0").requires_grad_();
        let mut b = get("b0").requires_grad_();
        let mut loss = Tensor::zeros([]);
        for _ in 0..100 {
            loss = (x.matmul(&w) + &b - &y).square().mean();
            loss.backward();
            tenjit::no_grad(|| {
                w.sub_(w.grad().unwrap() * 0.01);
                b.sub_(b.grad().unwrap() * 0.01);
            });
            w.zero_grad();
            b.zero_grad();
        }
        for (name, got) in [("w", w.item()), ("b", b.item()), ("loss", loss.item())] {
            let want = load("linreg_numpy", name).item();
            assert!((got - want).abs() <= tol * (1.0 + want.abs()), "{dtype} {name}: {got} vs NumPy {want}");
        }
    }
}
