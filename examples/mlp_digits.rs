//! A first neural network: a 64→128→10 MLP (`nn::Linear`, `relu`, `cross_entropy`) trained
//! with SGD + momentum on the UCI handwritten digits (1,797 8×8 images, see
//! `examples/data/README.md`), in mini-batches. Each training step — forward, `backward()`
//! and the optimizer's update — is one compiled executable.
//!
//! ```sh
//! cargo run --release --example mlp_digits
//! cargo run --example mlp_digits -- --adam      # Adam instead of SGD
//! ```

#[path = "common/digits.rs"]
mod digits;

use digits::{Mlp, Optimizer, CLASSES};
use tenjit::optim::{Adam, Sgd};

const EPOCHS: usize = 12;
const BATCH: usize = 32;
const SEED: u64 = 0;

fn main() {
    let adam = std::env::args().any(|a| a == "--adam");
    let (train, test) = digits::load_split(SEED);

    tenjit::manual_seed(SEED);
    let mut model = Mlp::new();
    let mut opt = if adam {
        println!("optimizer: Adam(lr=0.002)");
        Optimizer::Adam(Adam::new(0.002))
    } else {
        println!("optimizer: SGD(lr=0.05, momentum=0.9)");
        Optimizer::Sgd(Sgd::new(0.05).with_momentum(0.9))
    };

    digits::fit(&mut model, &mut opt, &train, &test, EPOCHS, BATCH);

    let (acc, confusion) = digits::evaluate(&model, &test);
    println!("\ntest accuracy: {:.2}% ({} images)\n", 100.0 * acc, test.len());
    println!("confusion matrix (rows: true digit, columns: predicted)");
    print!("     ");
    for p in 0..CLASSES {
        print!("{p:>4}");
    }
    println!("   accuracy");
    for (t, row) in confusion.iter().enumerate() {
        print!("  {t}: ");
        for &n in row {
            if n == 0 {
                print!("{:>4}", ".");
            } else {
                print!("{n:>4}");
            }
        }
        let total: usize = row.iter().sum();
        println!("   {:>6.2}%", 100.0 * row[t] as f64 / total.max(1) as f64);
    }
    let mistakes: Vec<String> = confusion
        .iter()
        .enumerate()
        .flat_map(|(t, row)| row.iter().enumerate().map(move |(p, &n)| (n, t, p)))
        .filter(|&(n, t, p)| t != p && n > 0)
        .map(|(n, t, p)| format!("{t}→{p} ×{n}"))
        .collect();
    println!("\nmistakes: {}", if mistakes.is_empty() { "none".to_string() } else { mistakes.join(", ") });
}
