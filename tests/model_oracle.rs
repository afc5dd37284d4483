//! The transformer's pieces checked against PyTorch (`tests/oracle/gen_models.py`, data in
//! `tests/oracle/data/models`): `erf`, `gelu` (both forms), `silu`, `tril`/`triu`,
//! `masked_fill`, `layer_norm`, `embedding`, `scaled_dot_product_attention` (causal, float and
//! boolean masks), `clip_grad_norm_`, AdamW with a warmup-cosine schedule and two parameter
//! groups, and a small GPT (the W8 model, narrower) through its logits, loss, every gradient,
//! the gradient norm and one AdamW step, and on the weights torch saved as safetensors. Each
//! value and each vector-Jacobian product (for a random cotangent) in `f64` and `f32`, with
//! the tolerances of `common/torch_oracle.rs`. The same GPT converted to `bf16` gives torch's
//! `bf16` logits to `bf16`'s precision (`BF16_LOGITS_TOL`).

#[path = "common/torch_oracle.rs"]
mod torch_oracle;

use std::collections::BTreeMap;
use tenjit::nn::{self, Approximate, Attention, Module};
use tenjit::optim::{AdamW, WarmupCosine};
use tenjit::prelude::*;
use torch_oracle::{check_vjp, Case};

/// A named function of one tensor, checked against the case of that name.
type Unary = (&'static str, fn(&Tensor) -> Tensor);

fn run(name: &'static str, body: impl Fn(&Case)) {
    torch_oracle::run("models", name, body)
}

#[test]
fn elementwise_activations() {
    let cases: [Unary; 4] = [
        ("erf", |x| x.erf()),
        ("gelu", |x| nn::gelu(x, Approximate::None)),
        ("gelu_tanh", |x| nn::gelu(x, Approximate::Tanh)),
        ("silu", nn::silu),
    ];
    for (name, f) in cases {
        run(name, |c| {
            let x = c.leaf("x");
            check_vjp(c, &f(&x), &[("x", &x)]);
        });
    }
}

#[test]
fn triangles_and_masked_fill() {
    let cases: [Unary; 3] = [("tril", |x| x.tril(0)), ("tril_m1", |x| x.tril(-1)), ("triu_2", |x| x.triu(2))];
    for (name, f) in cases {
        run(name, |c| {
            let x = c.leaf("x");
            check_vjp(c, &f(&x), &[("x", &x)]);
        });
    }
    run("masked_fill", |c| {
        let x = c.leaf("x");
        let mask = c.data("mask").to_dtype(DType::Bool);
        check_vjp(c, &x.masked_fill(&mask, 2.5), &[("x", &x)]);
    });
}

#[test]
fn layer_norm() {
    run("layer_norm", |c| {
        let (x, w, b) = (c.leaf("x"), c.leaf("weight"), c.leaf("bias"));
        let y = nn::layer_norm(&x, &[8], Some(&w), Some(&b), 1e-5);
        check_vjp(c, &y, &[("x", &x), ("weight", &w), ("bias", &b)]);
    });
    run("layer_norm2", |c| {
        let (x, w) = (c.leaf("x"), c.leaf("weight"));
        let y = nn::layer_norm(&x, &[4, 6], Some(&w), None, 1e-5);
        check_vjp(c, &y, &[("x", &x), ("weight", &w)]);
    });
}

#[test]
fn embedding() {
    run("embedding", |c| {
        let w = c.leaf("weight");
        let y = nn::embedding(&c.data("indices"), &w);
        check_vjp(c, &y, &[("weight", &w)]);
    });
}

#[test]
fn attention() {
    run("sdpa_causal", |c| {
        let (q, k, v) = (c.leaf("q"), c.leaf("k"), c.leaf("v"));
        let y =
            nn::scaled_dot_product_attention(&q, &k, &v, Attention { is_causal: true, ..Default::default() });
        check_vjp(c, &y, &[("q", &q), ("k", &k), ("v", &v)]);
    });
    run("sdpa_mask", |c| {
        let (q, k, v) = (c.leaf("q"), c.leaf("k"), c.leaf("v"));
        let mask = c.data("mask");
        let opts = Attention { attn_mask: Some(&mask), scale: Some(0.3), ..Default::default() };
        let y = nn::scaled_dot_product_attention(&q, &k, &v, opts);
        check_vjp(c, &y, &[("q", &q), ("k", &k), ("v", &v)]);
    });
    run("sdpa_bool", |c| {
        let (q, k, v) = (c.leaf("q"), c.leaf("k"), c.leaf("v"));
        let mask = c.data("mask").to_dtype(DType::Bool);
        let y = nn::scaled_dot_product_attention(
            &q,
            &k,
            &v,
            Attention { attn_mask: Some(&mask), ..Default::default() },
        );
        check_vjp(c, &y, &[("q", &q), ("k", &k), ("v", &v)]);
    });
}

#[test]
fn clip_grad_norm() {
    for (name, max_norm) in [("clip", 1.0), ("clip_noop", 100.0)] {
        run(name, |c| {
            let (a, b) = (c.leaf("a"), c.leaf("b"));
            a.set_grad(Some(c.data("grad_a")));
            b.set_grad(Some(c.data("grad_b")));
            let norm = nn::clip_grad_norm_(&[&a, &b], max_norm);
            c.check("norm", &norm);
            c.check("clipped_a", &a.grad().unwrap());
            c.check("clipped_b", &b.grad().unwrap());
        });
    }
}

#[test]
fn adamw_with_a_schedule_and_two_groups() {
    run("adamw", |c| {
        let (mut w, mut b) = (c.leaf("w"), c.leaf("b"));
        let (x, y) = (c.data("x"), c.data("y"));
        let schedule = WarmupCosine { max_lr: 1e-2, min_lr: 1e-3, warmup: 2, decay_steps: 6 };
        let mut decay = AdamW::new(1e-2).with_betas(0.9, 0.99).with_weight_decay(0.1);
        let mut no_decay = AdamW::new(1e-2).with_betas(0.9, 0.99).with_weight_decay(0.0);
        for it in 0..6 {
            let lr = schedule.lr(it);
            (decay.lr, no_decay.lr) = (lr, lr);
            w.zero_grad();
            b.zero_grad();
            (x.matmul(&w) + &b - &y).square().mean().backward();
            nn::clip_grad_norm_(&[&w, &b], 1.0);
            decay.step(&mut [&mut w]);
            no_decay.step(&mut [&mut b]);
        }
        c.check("w_after", &w);
        c.check("b_after", &b);
    });
}

/// The small GPT of `gen_models.py`: parameters by torch's names.
struct Gpt {
    params: BTreeMap<String, Tensor>,
    heads: usize,
    layers: usize,
}

impl Gpt {
    fn load(c: &Case, layers: usize, heads: usize) -> Gpt {
        let mut names = vec!["wte.weight".to_string(), "wpe.weight".to_string(), "ln_f.weight".to_string()];
        for l in 0..layers {
            for p in ["ln1", "qkv", "proj", "ln2", "fc", "fc_proj"] {
                names.push(format!("blocks.{l}.{p}.weight"));
            }
        }
        let params = names.into_iter().map(|n| (n.clone(), c.leaf(&format!("param.{n}")))).collect();
        Gpt { params, heads, layers }
    }

    fn p(&self, name: &str) -> &Tensor {
        &self.params[name]
    }

    fn linear(&self, x: &Tensor, name: &str) -> Tensor {
        x.matmul(&self.p(name).t())
    }

    fn forward(&self, idx: &Tensor) -> Tensor {
        let (b, t) = (idx.shape()[0], idx.shape()[1]);
        let emb = self.p("wte.weight");
        let c = emb.shape()[1];
        let h = self.heads;
        let mut x = nn::embedding(idx, emb) + nn::embedding(&Tensor::arange(t as i64), self.p("wpe.weight"));
        let ln = |x: &Tensor, name: &str| nn::layer_norm(x, &[c], Some(self.p(name)), None, 1e-5);
        for l in 0..self.layers {
            let qkv =
                self.linear(&ln(&x, &format!("blocks.{l}.ln1.weight")), &format!("blocks.{l}.qkv.weight"));
            let heads: Vec<Tensor> = qkv
                .split(c, 2)
                .iter()
                .map(|t| {
                    t.reshape([b as isize, t.shape()[1] as isize, h as isize, (c / h) as isize])
                        .transpose(1, 2)
                })
                .collect();
            let causal = Attention { is_causal: true, ..Default::default() };
            let y = nn::scaled_dot_product_attention(&heads[0], &heads[1], &heads[2], causal);
            let y = y.transpose(1, 2).reshape([b as isize, t as isize, c as isize]);
            x = &x + self.linear(&y, &format!("blocks.{l}.proj.weight"));
            let hidden =
                self.linear(&ln(&x, &format!("blocks.{l}.ln2.weight")), &format!("blocks.{l}.fc.weight"));
            x = &x
                + self.linear(&nn::gelu(&hidden, Approximate::None), &format!("blocks.{l}.fc_proj.weight"));
        }
        // The head's weight is the token embedding (weight tying).
        ln(&x, "ln_f.weight").matmul(&emb.t())
    }
}

impl Module for Gpt {
    fn forward(&self, idx: &Tensor) -> Tensor {
        Gpt::forward(self, idx)
    }

    fn parameters(&self) -> Vec<&Tensor> {
        self.params.values().collect()
    }

    fn parameters_mut(&mut self) -> Vec<&mut Tensor> {
        self.params.values_mut().collect()
    }
}

/// How far the `bf16` GPT's logits may be from torch's `bf16` logits. Both compute each op in
/// `f32`, but round to `bf16` at different places: torch after every op, tenjit where a fused
/// kernel stores its result, with other fusions, reduction orders and a different attention
/// kernel; over two layers each side is some 20 roundings of 2^-9 relative away from the exact
/// value (torch's own `bf16` logits are 0.027 from its `f64` ones here). The logits are below
/// 8 in magnitude, where one unit in the last place of `bf16` is 2^-5: the bound is two of them.
const BF16_LOGITS_TOL: f64 = 2.0 / 32.0;

#[test]
fn the_gpt_in_bf16_gives_torchs_bf16_logits() {
    // torch's float64 weights, as float32, then converted as `model.to(torch.bfloat16)`.
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/oracle/data/models/gpt.weights.safetensors");
    let state = tenjit::load_safetensors(path).expect("torch's weights load");
    let params = state.into_iter().map(|(n, t)| (n, t.float())).collect();
    let mut gpt = Gpt { params, heads: 2, layers: 2 };
    gpt.to_dtype(DType::BF16).expect("converts");
    assert!(gpt.parameters().iter().all(|p| p.dtype() == DType::BF16));
    let logits = gpt.forward(&torch_oracle::load("models", "gpt", "x"));
    assert_eq!(logits.dtype(), DType::BF16);
    let got = logits.to_vec::<f64>();
    let want = torch_oracle::load("models", "gpt", "logits_bf16").to_vec::<f64>();
    let exact = torch_oracle::load("models", "gpt", "logits").to_vec::<f64>();
    assert_eq!(got.len(), want.len());
    let max_diff = got.iter().zip(&want).map(|(g, w)| (g - w).abs()).fold(0.0, f64::max);
    let max_err = got.iter().zip(&exact).map(|(g, w)| (g - w).abs()).fold(0.0, f64::max);
    eprintln!("bf16 GPT logits: {max_diff:.4} from torch's bf16 ones, {max_err:.4} from the exact ones");
    assert!(exact.iter().all(|w| w.abs() < 8.0), "the tolerance assumes logits below 8");
    assert!(max_diff <= BF16_LOGITS_TOL, "logits differ from torch's bf16 ones by {max_diff}");
    // And they are a bf16 computation's distance from the exact logits, not more.
    assert!(max_err <= BF16_LOGITS_TOL, "logits differ from torch's float64 ones by {max_err}");
}

#[test]
fn a_small_gpt_trains_one_step_as_torch_does() {
    run("gpt", |c| {
        let mut gpt = Gpt::load(c, 2, 2);
        let (x, y) = (c.data("x"), c.data("y"));
        let logits = gpt.forward(&x);
        let vocab = logits.shape()[2] as isize;
        let loss = nn::cross_entropy(&logits.reshape([-1, vocab]), &y.reshape([-1]));
        c.check("logits", &logits);
        c.check("loss", &loss);
        loss.backward();
        for (name, p) in &gpt.params {
            c.check(&format!("grad.{name}"), &p.grad().unwrap_or_else(|| panic!("{name} has no gradient")));
        }
        let all: Vec<&Tensor> = gpt.params.values().collect();
        c.check("grad_norm", &nn::clip_grad_norm_(&all, 1.0));
        let mut decay = AdamW::new(1e-3).with_betas(0.9, 0.99).with_weight_decay(0.1);
        let mut no_decay = AdamW::new(1e-3).with_betas(0.9, 0.99).with_weight_decay(0.0);
        let (mut matrices, mut vectors): (Vec<&mut Tensor>, Vec<&mut Tensor>) =
            gpt.params.values_mut().partition(|p| p.dim() >= 2);
        decay.step(&mut matrices);
        no_decay.step(&mut vectors);
        for (name, p) in &gpt.params {
            c.check(&format!("after.{name}"), p);
        }
    });
}

#[test]
fn the_gpt_runs_on_the_weights_torch_saved() {
    run("gpt", |c| {
        let mut gpt = Gpt::load(c, 2, 2);
        // Zeroed parameters of the case's dtype, then torch's float64 file loaded by name.
        for p in gpt.params.values_mut() {
            *p = p.zeros_like().requires_grad_();
        }
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/oracle/data/models/gpt.weights.safetensors");
        let state = tenjit::load_safetensors(path).expect("torch's weights load");
        nn::load_state_dict(gpt.params.iter_mut().map(|(n, p)| (n.clone(), p)).collect(), &state, true)
            .expect("every parameter is in the file");
        c.check("logits", &gpt.forward(&c.data("x")));
    });
}
