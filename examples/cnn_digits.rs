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
use digits::{Optimizer, CLASSES};
use tenjit::optim::Adam;

const EPOCHS: usize = 15;
const BATCH: usize = 32;
const SEED: u64 = 0;
const LR: f64 = 0.003;

fn main() {
    let (train, test) = digits::load_split(SEED);

    tenjit::manual_seed(SEED);
    let mut model = Cnn::new();
    println!("model: conv(1→16, 3×3) → relu → maxpool → conv(16→32, 3×3) → relu → maxpool → linear(128→10)");
    println!("optimizer: Adam(lr={LR})");
    let mut opt = Optimizer::Adam(Adam::new(LR));

    digits::fit(&mut model, &mut opt, &train, &test, EPOCHS, BATCH);

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
