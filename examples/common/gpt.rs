//! nanoGPT's model, as `../shared/peers/bench_models_torch.py` writes it for W8: token and
//! position embeddings, pre-norm blocks (LayerNorm without bias, causal self-attention, a GELU
//! MLP, no biases), a final LayerNorm and a head tied to the token embedding; nanoGPT's
//! initialization (normal, std 0.02, and 0.02/√(2·layers) for the projections back into the
//! residual stream). Parameters carry torch's names, so a state dict moves between the two.

#![allow(dead_code)]

use tenjit::nn::{self, Approximate, Attention, Embedding, LayerNorm, Linear, Module};
use tenjit::optim::AdamW;
use tenjit::prelude::*;

/// The model's sizes.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    pub vocab: usize,
    pub block: usize,
    pub embd: usize,
    pub heads: usize,
    pub layers: usize,
}

impl Config {
    /// nanoGPT's shakespeare_char CPU configuration (W8) for a vocabulary of `vocab`.
    pub fn shakespeare_char(vocab: usize) -> Config {
        Config { vocab, block: 64, embd: 128, heads: 4, layers: 4 }
    }
}

/// One transformer block.
pub struct Block {
    ln1: LayerNorm,
    qkv: Linear,
    proj: Linear,
    ln2: LayerNorm,
    fc: Linear,
    fc_proj: Linear,
}

/// The model.
pub struct Gpt {
    pub cfg: Config,
    wte: Embedding,
    wpe: Embedding,
    blocks: Vec<Block>,
    ln_f: LayerNorm,
}

/// A bias-free linear layer with weight `N(0, std²)`, trainable.
fn linear(inputs: usize, outputs: usize, std: f64) -> Linear {
    Linear::from_tensors((Tensor::randn([outputs, inputs]) * std).realize().requires_grad_(), None)
}

fn layer_norm(embd: usize) -> LayerNorm {
    LayerNorm::with_options(&[embd], 1e-5, false, DType::F32)
}

impl Gpt {
    /// A freshly initialized model.
    pub fn new(cfg: Config) -> Gpt {
        let std = 0.02;
        let proj_std = 0.02 / (2.0 * cfg.layers as f64).sqrt();
        let embedding = |n: usize| {
            Embedding::from_weight((Tensor::randn([n, cfg.embd]) * std).realize().requires_grad_())
        };
        let blocks = (0..cfg.layers)
            .map(|_| Block {
                ln1: layer_norm(cfg.embd),
                qkv: linear(cfg.embd, 3 * cfg.embd, std),
                proj: linear(cfg.embd, cfg.embd, proj_std),
                ln2: layer_norm(cfg.embd),
                fc: linear(cfg.embd, 4 * cfg.embd, std),
                fc_proj: linear(4 * cfg.embd, cfg.embd, proj_std),
            })
            .collect();
        Gpt { cfg, wte: embedding(cfg.vocab), wpe: embedding(cfg.block), blocks, ln_f: layer_norm(cfg.embd) }
    }

    /// The logits `[B, T, vocab]` of token indices `[B, T]` (`T <= block`).
    pub fn forward(&self, idx: &Tensor) -> Tensor {
        // Sizes as `SymSize`s (torch's SymInts): under `tenjit::jit` with a dynamic length,
        // the forward is traced once for every length.
        let (b, t) = (idx.sym_size(0), idx.sym_size(1));
        let (c, h) = (self.cfg.embd, self.cfg.heads);
        let mut x = self.wte.forward(idx) + self.wpe.forward(&Tensor::arange(&t));
        for blk in &self.blocks {
            let qkv = blk.qkv.forward(&blk.ln1.forward(&x));
            let heads: Vec<Tensor> = qkv
                .split(c, 2)
                .iter()
                .map(|p| p.reshape([b.clone(), t.clone(), h.into(), (c / h).into()]).transpose(1, 2))
                .collect();
            let causal = Attention { is_causal: true, ..Default::default() };
            let y = nn::scaled_dot_product_attention(&heads[0], &heads[1], &heads[2], causal);
            x = &x + blk.proj.forward(&y.transpose(1, 2).reshape([b.clone(), t.clone(), c.into()]));
            let hidden = nn::gelu(&blk.fc.forward(&blk.ln2.forward(&x)), Approximate::None);
            x = &x + blk.fc_proj.forward(&hidden);
        }
        self.ln_f.forward(&x).matmul(&self.wte.weight.t())
    }

    /// The mean cross-entropy of the next-token predictions for `idx` against `targets`.
    pub fn loss(&self, idx: &Tensor, targets: &Tensor) -> Tensor {
        let logits = self.forward(idx);
        let v = self.cfg.vocab as isize;
        nn::cross_entropy(&logits.reshape([-1, v]), &targets.reshape([-1]))
    }

    /// The parameters by torch's names (the head is `wte.weight`, tied).
    pub fn named_parameters_mut(&mut self) -> Vec<(String, &mut Tensor)> {
        let mut out = nn::prefixed("wte", self.wte.named_parameters_mut());
        out.extend(nn::prefixed("wpe", self.wpe.named_parameters_mut()));
        for (l, blk) in self.blocks.iter_mut().enumerate() {
            let parts: [(&str, &mut dyn Module); 6] = [
                ("ln1", &mut blk.ln1),
                ("qkv", &mut blk.qkv),
                ("proj", &mut blk.proj),
                ("ln2", &mut blk.ln2),
                ("fc", &mut blk.fc),
                ("fc_proj", &mut blk.fc_proj),
            ];
            for (name, m) in parts {
                out.extend(nn::prefixed(&format!("blocks.{l}.{name}"), m.named_parameters_mut()));
            }
        }
        out.extend(nn::prefixed("ln_f", self.ln_f.named_parameters_mut()));
        out
    }

    /// One training step on inputs `x` and targets `y`: gradients cleared, the loss,
    /// `backward()`, the gradients clipped at norm 1.0, both optimizers' updates. Returns the
    /// loss, computed with the step when it is read (or at the next step's `backward()`).
    pub fn train_step(&mut self, opt: &mut GptOptimizer, x: &Tensor, y: &Tensor) -> Tensor {
        let loss = self.loss(x, y);
        let mut params = self.named_parameters_mut();
        for (_, p) in &params {
            p.zero_grad();
        }
        loss.backward();
        nn::clip_grad_norm_(&params.iter().map(|(_, p)| &**p).collect::<Vec<_>>(), 1.0);
        let (mut matrices, mut vectors): (Vec<&mut Tensor>, Vec<&mut Tensor>) =
            params.iter_mut().map(|(_, p)| &mut **p).partition(|p| p.dim() >= 2);
        opt.decay.step(&mut matrices);
        opt.no_decay.step(&mut vectors);
        loss
    }

    /// How many numbers the model learns.
    pub fn parameter_count(&mut self) -> usize {
        self.named_parameters_mut().iter().map(|(_, p)| p.numel()).sum()
    }
}

/// nanoGPT's optimizer: AdamW with betas (0.9, 0.99), weight decay 0.1 on the matrices and none
/// on the rest (torch's two parameter groups, as two optimizers sharing a learning rate).
pub struct GptOptimizer {
    pub decay: AdamW,
    pub no_decay: AdamW,
}

impl GptOptimizer {
    pub fn new(lr: f64) -> GptOptimizer {
        GptOptimizer {
            decay: AdamW::new(lr).with_betas(0.9, 0.99).with_weight_decay(0.1),
            no_decay: AdamW::new(lr).with_betas(0.9, 0.99).with_weight_decay(0.0),
        }
    }

    /// Sets both groups' learning rate (a schedule's value for this step).
    pub fn set_lr(&mut self, lr: f64) {
        (self.decay.lr, self.no_decay.lr) = (lr, lr);
    }
}
