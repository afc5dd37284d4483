//! The NumPy→PyTorch tutorial's section 13, linear regression with autograd, written with
//! tenjit.
//!
//! Run it with:
//!
//! ```text
//! cargo run --example linear_regression
//! ```
//!
//! The tutorial fits `y = 2x` with `w = torch.randn(1)` and `b = torch.zeros(1)`, so
//! `X @ w + b` has shape `(4,)` while `y = 2 * X` has shape `(4, 1)`: `y_pred - y` broadcasts
//! to a `(4, 4)` matrix of every prediction against every target, and PyTorch and NumPy
//! compute that loss without a word. tenjit's broadcast check warns (or, with
//! `TENJIT_STRICT=1`, fails) at that line. The example shows the catch, then trains with the
//! shapes made to agree: the learned line every 10 epochs, what 100 epochs really learn at
//! `lr = 0.01` (not yet `2x + 0`), and how many epochs the fit needs. Each training step
//! (forward, backward, update) is one executable, compiled once and then found in the cache.

use tenjit::prelude::*;
use tenjit::BroadcastCheck;

/// One step of gradient descent: MSE loss, `backward()`, `w -= lr * w.grad` under `no_grad`,
/// gradients zeroed; `w` and `b` are computed (with the loss) as one executable. Returns the
/// loss.
fn step(x: &Tensor, y: &Tensor, w: &mut Tensor, b: &mut Tensor, lr: f64) -> Tensor {
    let y_pred = x.matmul(w) + &*b; // (4,)
    let loss = (&y_pred - y).pow(2).mean();
    loss.backward();
    tenjit::no_grad(|| {
        let (gw, gb) = (w.grad().expect("w.grad"), b.grad().expect("b.grad"));
        *w -= lr * &gw;
        *b -= lr * &gb;
    });
    w.zero_grad();
    b.zero_grad();
    tenjit::realize(&[w, b]);
    loss
}

/// The learned line `y = 1.9876x + 0.0312`, with the epoch's loss (computed before its update).
fn line(w: &Tensor, b: &Tensor, loss: &Tensor) -> String {
    format!("y = {:.4}x + {:.4}   (loss {:.3e})", w.item(), b.item(), loss.item())
}

fn main() {
    tenjit::manual_seed(0);
    println!(">>> X = torch.tensor([[1.0], [2.0], [3.0], [4.0]])");
    let x = tensor!([[1.0], [2.0], [3.0], [4.0]]);
    println!(">>> y = 2 * X");
    let y = 2.0 * &x;
    println!(">>> w = torch.randn(1, requires_grad=True)");
    let mut w = Tensor::randn([1]).requires_grad_();
    println!(">>> b = torch.zeros(1, requires_grad=True)");
    let mut b = Tensor::zeros([1]).requires_grad_();
    println!("w = {w}\nb = {b}");

    println!("\n== The tutorial's code as written ==\n");
    let user_mode = tenjit::broadcast_check();
    tenjit::set_broadcast_check(BroadcastCheck::Warn);
    println!(">>> y_pred = X @ w + b");
    let y_pred = x.matmul(&w) + &b;
    println!(">>> loss = ((y_pred - y) ** 2).mean()");
    let diff = &y_pred - &y;
    let caught = tenjit::take_warnings();
    println!(
        "y_pred is {:?}, y is {:?}: y_pred - y is {:?}, every prediction against every target.",
        y_pred.shape(),
        y.shape(),
        diff.shape()
    );
    println!("PyTorch and NumPy say nothing; tenjit warned (printed once on stderr, and kept for take_warnings()):");
    for warning in &caught {
        println!("  {warning}");
    }
    assert_eq!(caught.len(), 1, "the tutorial's loss broadcasts both operands");
    println!("The (4, 4) loss is {:.4}, not the MSE of the 4 predictions.", diff.pow(2).mean().item());

    tenjit::set_broadcast_check(BroadcastCheck::Error);
    println!("\nWith TENJIT_STRICT=1 (or set_broadcast_check(BroadcastCheck::Error)) it is an error:");
    match y_pred.try_sub(&y) {
        Ok(_) => unreachable!("strict mode rejects the (4,) - (4, 1) broadcast"),
        Err(e) => println!("  Error: {e}"),
    }
    tenjit::set_broadcast_check(user_mode);

    println!("\n== Training with the shapes made to agree ==\n");
    println!(">>> y = y.reshape(-1)  # (4,), like X @ w + b");
    let y = y.reshape([-1]);
    let lr = 0.01;
    println!(">>> lr = {lr}");
    println!(">>> for epoch in range(100): ...  # MSE, loss.backward(), w -= lr * w.grad under no_grad");
    let compiles = tenjit::compile_count();
    let mut epochs = 0;
    let mut loss = tensor!(0.0);
    while epochs < 100 {
        loss = step(&x, &y, &mut w, &mut b, lr);
        if epochs % 10 == 0 {
            println!("epoch {epochs:3}: {}", line(&w, &b, &loss));
        }
        epochs += 1;
    }
    println!("after {epochs} epochs: {}", line(&w, &b, &loss));
    println!(
        "Learned: y = {:.2}x + {:.2}, near 2x + 0 but not there: at lr 0.01 the intercept converges slowly.",
        w.item(),
        b.item()
    );

    println!("\n== Training on until the loss is below 1e-6 ==\n");
    while loss.item() >= 1e-6 && epochs < 100_000 {
        loss = step(&x, &y, &mut w, &mut b, lr);
        epochs += 1;
        if epochs % 500 == 0 {
            println!("epoch {epochs:5}: {}", line(&w, &b, &loss));
        }
    }
    println!("after {epochs} epochs: {}", line(&w, &b, &loss));
    println!(
        "It took {epochs} epochs to fit y = 2x + 0 (w within {:.1e} of 2, b within {:.1e} of 0).",
        (w.item() - 2.0).abs(),
        b.item().abs()
    );
    println!(
        "{epochs} training steps compiled {} time(s); every other step ran a cached executable.",
        tenjit::compile_count() - compiles
    );
}
