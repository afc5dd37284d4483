//! A small convolutional network on the UCI handwritten digits (1,797 8×8 images, see
//! `examples/data/README.md`): two conv-relu-maxpool stages (`nn::Conv2d`, `nn::max_pool2d`)
//! and a linear layer, trained with Adam in mini-batches. Each training step — forward,
//! `backward()` and the optimizer's update — is one compiled executable, reused every step.
//!
//! ```sh
//! cargo run --release --example cnn_digits
//! ```

#[path = "common/cnn.rs"]
mod cnn;
#[path = "common/digits.rs"]
mod digits;

use cnn::Cnn;
use digits::{Digits, Optimizer, CLASSES};
use indicatif::{ProgressBar, ProgressStyle};
use std::time::Instant;
use tenjit::optim::Adam;

const EPOCHS: usize = 15;
const BATCH: usize = 32;
const SEED: u64 = 0;
const LR: f64 = 0.003;

fn main() {
    let path = digits::data_path();
    let data = Digits::load(&path).unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(1);
    });
    let (train, test) = data.split(0.2, SEED);
    println!("{} images: {} to train on, {} to test", data.len(), train.len(), test.len());

    tenjit::manual_seed(SEED);
    let mut model = Cnn::new();
    println!("model: conv(1→16, 3×3) → relu → maxpool → conv(16→32, 3×3) → relu → maxpool → linear(128→10)");
    println!("optimizer: Adam(lr={LR})");
    let mut opt = Optimizer::Adam(Adam::new(LR));

    let steps = train.len().div_ceil(BATCH) as u64;
    let style = ProgressStyle::with_template("epoch {prefix:>2} [{bar:30}] {pos:>2}/{len} {msg}")
        .expect("a valid template")
        .progress_chars("=> ");
    let start = Instant::now();
    let compiled_before = tenjit::compile_count();
    for epoch in 1..=EPOCHS {
        let t = Instant::now();
        let bar = ProgressBar::new(steps).with_style(style.clone()).with_prefix(epoch.to_string());
        let loss = digits::train_epoch(&mut model, &mut opt, &train, BATCH, |l| {
            bar.set_message(format!("loss {l:.4}"));
            bar.inc(1);
        });
        let train_time = t.elapsed();
        let (acc, _) = digits::evaluate(&model, &test);
        bar.finish_and_clear();
        println!(
            "epoch {epoch:>2}: loss {loss:.4}  test accuracy {:.2}%  (train {train_time:.2?}, {} compilations so far)",
            100.0 * acc,
            tenjit::compile_count() - compiled_before
        );
    }
    println!(
        "trained in {:.2?} ({} compilations)",
        start.elapsed(),
        tenjit::compile_count() - compiled_before
    );

    let (acc, confusion) = digits::evaluate(&model, &test);
    println!("\nper digit (rows: true digit):");
    for (t, row) in confusion.iter().enumerate() {
        let total: usize = row.iter().sum();
        let wrong: Vec<String> =
            (0..CLASSES).filter(|&p| p != t && row[p] > 0).map(|p| format!("→{p} ×{}", row[p])).collect();
        println!("  {t}: {:>6.2}%  {}", 100.0 * row[t] as f64 / total.max(1) as f64, wrong.join(" "));
    }
    println!("\ntest accuracy: {:.2}% ({} images)", 100.0 * acc, test.len());
}
