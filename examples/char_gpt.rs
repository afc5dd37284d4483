//! A character-level GPT trained on Shakespeare: nanoGPT's shakespeare_char CPU configuration
//! (block 64, batch 12, 4 layers, 4 heads, embedding 128, no dropout, the head tied to the
//! token embedding), AdamW (betas 0.9/0.99, weight decay 0.1 on matrices), 100 warmup
//! iterations then a cosine decay from 1e-3 to 1e-4, gradients clipped at norm 1.0, 2,000
//! iterations. The same run in PyTorch is `../shared/peers/train_char_gpt_torch.py`; both print
//! the train and val loss (the mean of 20 random batches) every 250 iterations.
//!
//! ```sh
//! cargo run --release --example char_gpt              # 2,000 iterations
//! cargo run --release --example char_gpt -- 200       # fewer
//! ```
//!
//! The corpus is `examples/data/shakespeare.txt.gz` (see `examples/data/README.md`). Each
//! training step (forward, backward, clipping, both optimizers' updates) is one executable,
//! compiled on the first steps and found in the cache after.

#[path = "common/gpt.rs"]
mod gpt;

use gpt::{Config, Gpt, GptOptimizer};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::Read;
use std::time::Instant;
use tenjit::nn;
use tenjit::optim::WarmupCosine;
use tenjit::prelude::*;

const BATCH: usize = 12;
const EVAL_EVERY: usize = 250;
const EVAL_BATCHES: usize = 20;

/// SplitMix64: the batches' offsets and the sampling's draws.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The corpus as token ids, and the vocabulary (the sorted distinct characters).
fn corpus() -> (Vec<i64>, Vec<char>) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/shakespeare.txt.gz");
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut text = String::new();
    flate2::read::GzDecoder::new(file)
        .read_to_string(&mut text)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut vocab: Vec<char> = text.chars().collect();
    vocab.sort_unstable();
    vocab.dedup();
    let ids = text.chars().map(|c| vocab.binary_search(&c).expect("in the vocabulary") as i64).collect();
    (ids, vocab)
}

/// A batch of `BATCH` windows of `block` tokens from `data` and the tokens that follow each.
fn batch(data: &[i64], block: usize, rng: &mut Rng) -> (Tensor, Tensor) {
    let (mut x, mut y) = (Vec::with_capacity(BATCH * block), Vec::with_capacity(BATCH * block));
    for _ in 0..BATCH {
        let i = rng.below(data.len() - block - 1);
        x.extend_from_slice(&data[i..i + block]);
        y.extend_from_slice(&data[i + 1..i + block + 1]);
    }
    (Tensor::from_vec(x, [BATCH, block]), Tensor::from_vec(y, [BATCH, block]))
}

/// The mean loss over `EVAL_BATCHES` random batches of `data`.
fn evaluate(model: &Gpt, data: &[i64], rng: &mut Rng) -> f64 {
    // One batch at a time: each is the same executable (realizing all twenty together would
    // compile one graph twenty forward passes wide).
    tenjit::no_grad(|| {
        let total: f64 = (0..EVAL_BATCHES)
            .map(|_| {
                let (x, y) = batch(data, model.cfg.block, rng);
                model.loss(&x, &y).item()
            })
            .sum();
        total / EVAL_BATCHES as f64
    })
}

/// `n` characters sampled after a newline, at temperature 1, with the last `block` as context.
fn sample(model: &Gpt, vocab: &[char], n: usize, rng: &mut Rng) -> String {
    let newline = vocab.binary_search(&'\n').unwrap_or(0) as i64;
    let mut ids = vec![newline];
    tenjit::no_grad(|| {
        for _ in 0..n {
            let context = &ids[ids.len().saturating_sub(model.cfg.block)..];
            let x = Tensor::from_vec(context.to_vec(), [1, context.len()]);
            // The context grows every step: one program for every length.
            x.mark_dynamic(1);
            let logits = model.forward(&x).i(s![0, -1]);
            let probs = nn::softmax(&logits, 0).to_vec::<f32>();
            let mut u = rng.uniform() as f32;
            let next = probs.iter().position(|&p| {
                u -= p;
                u <= 0.0
            });
            ids.push(next.unwrap_or(probs.len() - 1) as i64);
        }
    });
    ids[1..].iter().map(|&i| vocab[i as usize]).collect()
}

fn main() {
    let iters: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(2000);
    let (data, vocab) = corpus();
    let split = data.len() * 9 / 10;
    let (train, val) = (&data[..split], &data[split..]);
    println!(
        "{} characters, vocabulary of {}; {} to train on, {} to validate",
        data.len(),
        vocab.len(),
        train.len(),
        val.len()
    );

    tenjit::manual_seed(1337);
    let mut rng = Rng(1337);
    let mut model = Gpt::new(Config::shakespeare_char(vocab.len()));
    println!("{} parameters", model.parameter_count());
    let schedule = WarmupCosine { max_lr: 1e-3, min_lr: 1e-4, warmup: 100, decay_steps: iters };
    let mut opt = GptOptimizer::new(1e-3);

    let bar = ProgressBar::new(iters as u64).with_style(
        ProgressStyle::with_template("[{bar:40}] {pos}/{len} {msg} ({per_sec}, {eta} left)")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    let start = Instant::now();
    let mut val_loss = f64::NAN;
    let mut train_time = std::time::Duration::ZERO;
    for it in 0..=iters {
        if it % EVAL_EVERY == 0 || it == iters {
            let train_loss = evaluate(&model, train, &mut rng);
            val_loss = evaluate(&model, val, &mut rng);
            let line = format!(
                "iter {it}: train loss {train_loss:.4}, val loss {val_loss:.4} ({:.1} s, {:.1} ms per training step)",
                start.elapsed().as_secs_f64(),
                train_time.as_secs_f64() * 1e3 / it.max(1) as f64
            );
            bar.suspend(|| println!("{line}"));
        }
        if it == iters {
            break;
        }
        let step_start = Instant::now();
        opt.set_lr(schedule.lr(it));
        let (x, y) = batch(train, model.cfg.block, &mut rng);
        let loss = model.train_step(&mut opt, &x, &y);
        if it % 10 == 0 {
            bar.set_message(format!("loss {:.4}", loss.item()));
        }
        train_time += step_start.elapsed();
        bar.inc(1);
    }
    bar.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{:.1} ms per iteration (including evaluation); {} compilations",
        secs * 1e3 / iters.max(1) as f64,
        tenjit::compile_count()
    );
    println!("val loss {val_loss:.4}");
    println!("---\n{}\n---", sample(&model, &vocab, 300, &mut rng));
}
