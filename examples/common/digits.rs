//! The UCI handwritten digits and a 64→128→10 MLP trained on them: shared by
//! `examples/mlp_digits.rs`, `examples/cnn_digits.rs` and their tests (included with
//! `#[path]`); the training loop and the evaluation take any [`Module`].

#![allow(dead_code)] // each includer uses part of it

use std::io::Read;
use std::path::{Path, PathBuf};
use tenjit::nn::{self, Linear, Module};
use tenjit::optim::{self, Adam, Sgd};
use tenjit::prelude::*;

/// Pixels per image (8×8).
pub const PIXELS: usize = 64;
/// Digit classes.
pub const CLASSES: usize = 10;

/// Where the committed data set lives.
pub fn data_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/data/digits.csv.gz")
}

/// The data set: pixels scaled to [0, 1], one row of 64 per image, and the labels.
pub struct Digits {
    pub images: Vec<f32>,
    pub labels: Vec<i64>,
}

impl Digits {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Reads the gzipped CSV: each row is 64 pixel values 0..=16, then the label 0..=9.
    pub fn load(path: &Path) -> Result<Digits, String> {
        let file = std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let mut text = String::new();
        flate2::read::GzDecoder::new(file)
            .read_to_string(&mut text)
            .map_err(|e| format!("{}: not a readable gzipped text file: {e}", path.display()))?;
        Digits::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses the CSV text (see [`Digits::load`]).
    pub fn parse(text: &str) -> Result<Digits, String> {
        let mut images = Vec::new();
        let mut labels = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split(',').collect();
            if fields.len() != PIXELS + 1 {
                return Err(format!(
                    "line {}: expected {} comma-separated values (64 pixels and the label), found {}",
                    n + 1,
                    PIXELS + 1,
                    fields.len()
                ));
            }
            for (i, f) in fields.iter().enumerate() {
                // scikit-learn's copy writes integers; accept "3.0" too.
                let v: f64 = f.trim().parse().map_err(|_| {
                    format!("line {}, column {}: {:?} is not a number", n + 1, i + 1, f.trim())
                })?;
                let (max, what) = if i < PIXELS { (16.0, "pixel") } else { (9.0, "label") };
                if !(0.0..=max).contains(&v) || v.fract() != 0.0 {
                    return Err(format!(
                        "line {}, column {}: {what} {v} is not an integer in 0..={max}",
                        n + 1,
                        i + 1
                    ));
                }
                if i < PIXELS {
                    images.push((v / 16.0) as f32);
                } else {
                    labels.push(v as i64);
                }
            }
        }
        if labels.is_empty() {
            return Err("no rows".into());
        }
        Ok(Digits { images, labels })
    }

    /// A seeded shuffled split: `(train, test)` with `test_fraction` of the rows in `test`.
    pub fn split(&self, test_fraction: f64, seed: u64) -> (Split, Split) {
        tenjit::manual_seed(seed);
        let order = Tensor::randperm(self.len()).to_vec::<i64>();
        let n_test = (self.len() as f64 * test_fraction).round() as usize;
        let (test, train) = order.split_at(n_test);
        (self.subset(train), self.subset(test))
    }

    fn subset(&self, rows: &[i64]) -> Split {
        let mut images = Vec::with_capacity(rows.len() * PIXELS);
        let mut labels = Vec::with_capacity(rows.len());
        for &r in rows {
            let r = r as usize;
            images.extend_from_slice(&self.images[r * PIXELS..(r + 1) * PIXELS]);
            labels.push(self.labels[r]);
        }
        let n = labels.len();
        Split { x: Tensor::from_vec(images, [n, PIXELS]), y: Tensor::from_vec(labels, [n]) }
    }
}

/// Images `x` `[n, 64]` (`f32`) and labels `y` `[n]` (`i64`).
pub struct Split {
    pub x: Tensor,
    pub y: Tensor,
}

impl Split {
    pub fn len(&self) -> usize {
        self.y.shape()[0]
    }
}

/// `Linear(64, 128) -> relu -> Linear(128, 10)`.
pub struct Mlp {
    pub fc1: Linear,
    pub fc2: Linear,
}

impl Mlp {
    pub fn new() -> Mlp {
        Mlp { fc1: Linear::new(PIXELS, 128), fc2: Linear::new(128, CLASSES) }
    }
}

impl Module for Mlp {
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

/// The optimizers the example can use.
pub enum Optimizer {
    Sgd(Sgd),
    Adam(Adam),
}

impl Optimizer {
    pub fn step(&mut self, params: &mut [&mut Tensor]) {
        match self {
            Optimizer::Sgd(o) => o.step(params),
            Optimizer::Adam(o) => o.step(params),
        }
    }
}

/// One pass over `train` in shuffled mini-batches of `batch_size` (the last, smaller batch
/// included): one realization (one executable) per step. Calls `on_step(loss)` after each
/// step and returns the mean loss over the samples.
pub fn train_epoch<M: Module>(
    model: &mut M,
    opt: &mut Optimizer,
    train: &Split,
    batch_size: usize,
    mut on_step: impl FnMut(f64),
) -> f64 {
    // A fresh order each epoch from the seeded generator (drawn as data: no recompilation).
    let order = Tensor::randperm(train.len()).to_vec::<i64>();
    let mut total = 0.0;
    for rows in order.chunks(batch_size) {
        // The batch's rows as data: every step has the same graph, so it compiles once, and
        // for every batch size (the last, smaller batch is an instance of its program).
        let idx = Tensor::from_vec(rows.to_vec(), [rows.len()]);
        idx.mark_dynamic(0);
        let x = train.x.index_select(0, &idx);
        let y = train.y.index_select(0, &idx);
        optim::zero_grad(&model.parameters());
        let loss = nn::cross_entropy(&model.forward(&x), &y);
        loss.backward();
        opt.step(&mut model.parameters_mut());
        let l = loss.item(); // computed with the step
        total += l * rows.len() as f64;
        on_step(l);
    }
    total / train.len() as f64
}

/// The committed data set split 80/20 with `seed`, its sizes printed; exits with the error if
/// the file cannot be read (for the examples).
pub fn load_split(seed: u64) -> (Split, Split) {
    let data = Digits::load(&data_path()).unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(1);
    });
    let (train, test) = data.split(0.2, seed);
    println!("{} images: {} to train on, {} to test", data.len(), train.len(), test.len());
    (train, test)
}

/// Trains `model` for `epochs` passes of [`train_epoch`] with a progress bar, printing after
/// each the mean loss, the test accuracy, the epoch's time and the compilations so far, then
/// the total time.
pub fn fit<M: Module>(
    model: &mut M,
    opt: &mut Optimizer,
    train: &Split,
    test: &Split,
    epochs: usize,
    batch: usize,
) {
    use indicatif::{ProgressBar, ProgressStyle};
    let steps = train.len().div_ceil(batch) as u64;
    let style = ProgressStyle::with_template("epoch {prefix:>2} [{bar:30}] {pos:>2}/{len} {msg}")
        .expect("a valid template")
        .progress_chars("=> ");
    let start = std::time::Instant::now();
    let compiled_before = tenjit::compile_count();
    for epoch in 1..=epochs {
        let t = std::time::Instant::now();
        let bar = ProgressBar::new(steps).with_style(style.clone()).with_prefix(epoch.to_string());
        let loss = train_epoch(model, opt, train, batch, |l| {
            bar.set_message(format!("loss {l:.4}"));
            bar.inc(1);
        });
        let train_time = t.elapsed();
        let (acc, _) = evaluate(model, test);
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
}

/// Accuracy and confusion matrix (`[true][predicted]` counts) on `data`.
pub fn evaluate<M: Module>(model: &M, data: &Split) -> (f64, [[usize; CLASSES]; CLASSES]) {
    let predicted = tenjit::no_grad(|| model.forward(&data.x).argmax_dim(1, false)).to_vec::<i64>();
    let truth = data.y.to_vec::<i64>();
    let mut confusion = [[0usize; CLASSES]; CLASSES];
    for (&t, &p) in truth.iter().zip(&predicted) {
        confusion[t as usize][p as usize] += 1;
    }
    let correct: usize = (0..CLASSES).map(|c| confusion[c][c]).sum();
    (correct as f64 / truth.len() as f64, confusion)
}
