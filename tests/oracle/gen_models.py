#!/usr/bin/env python3
"""Generates the oracle data of tests/model_oracle.rs with PyTorch: the transformer's
primitives and layers, AdamW with a learning-rate schedule, clip_grad_norm_, and a small GPT
(the W8 model of ../shared/peers/bench_models_torch.py, scaled down) through one training step;
and of tests/cnn_oracle.rs: conv2d, max_pool2d and avg_pool2d, and a small CNN through one Adam
step.

    /root/.cache/peers-venv/bin/python tests/oracle/gen_models.py

Writes tests/oracle/data/models/<case>.<name>.npy (and the small GPT's initial weights as
gpt.weights.safetensors, with half.safetensors holding f16 and bf16 tensors torch wrote and
u8.safetensors a dtype tenjit lacks): each case's inputs (drawn here with fixed seeds; boolean
masks as int64) and expected values, all float64 (indices int64) and computed in float64, but
for the GPT's logits computed in bfloat16 (`gpt.logits_bf16`: the model converted with
`model.to(torch.bfloat16)`, its values widened exactly to float64). A function's gradients are those of `sum(value * cot)` for a random cotangent `cot`
(saved too), so every element of the vector-Jacobian product is checked, not only its sum. The
folder is emptied first and the output is deterministic.
"""

import copy
import math
import os

import numpy as np
from oracle_npy import NpyWriter
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "data", "models")

torch.use_deterministic_algorithms(True)
torch.set_num_threads(1)
torch.set_default_dtype(torch.float64)

WRITER = NpyWriter(OUT)
save = WRITER.save


def leaf(case, name, arr):
    arr = save(case, name, np.asarray(arr, dtype=np.float64))
    return torch.tensor(arr, requires_grad=True)


def vjp(case, value, inputs, seed):
    """Saves `value`, a random cotangent and the gradient of sum(value * cot) for each input."""
    save(case, "value", value)
    cot = torch.tensor(save(case, "cot", np.random.default_rng(seed).normal(size=value.shape)))
    names = list(inputs)
    gs = torch.autograd.grad((value * cot).sum(), [inputs[n] for n in names])
    for n, g in zip(names, gs):
        save(case, "grad_" + n, g)


def elementwise_cases():
    r = np.random.default_rng(1)
    x = r.normal(size=(5, 7)) * 1.5
    for case, f in [
        ("erf", torch.erf),
        ("gelu", lambda t: F.gelu(t)),
        ("gelu_tanh", lambda t: F.gelu(t, approximate="tanh")),
        ("silu", F.silu),
    ]:
        t = leaf(case, "x", x)
        vjp(case, f(t), {"x": t}, 2)


def mask_cases():
    r = np.random.default_rng(3)
    x = r.normal(size=(2, 4, 5))
    for case, f in [
        ("tril", lambda t: t.tril()),
        ("tril_m1", lambda t: t.tril(-1)),
        ("triu_2", lambda t: t.triu(2)),
    ]:
        t = leaf(case, "x", x)
        vjp(case, f(t), {"x": t}, 4)
    t = leaf("masked_fill", "x", x)
    mask = torch.tensor(save("masked_fill", "mask", (r.random(size=(4, 5)) < 0.4).astype(np.int64))).bool()
    vjp("masked_fill", t.masked_fill(mask, 2.5), {"x": t}, 5)


def layer_norm_cases():
    r = np.random.default_rng(6)
    x = leaf("layer_norm", "x", r.normal(size=(3, 4, 8)) * 2.0 + 1.0)
    w = leaf("layer_norm", "weight", r.normal(size=(8,)))
    b = leaf("layer_norm", "bias", r.normal(size=(8,)))
    vjp("layer_norm", F.layer_norm(x, (8,), w, b, 1e-5), {"x": x, "weight": w, "bias": b}, 7)
    x = leaf("layer_norm2", "x", r.normal(size=(3, 4, 6)))
    w = leaf("layer_norm2", "weight", r.normal(size=(4, 6)))
    vjp("layer_norm2", F.layer_norm(x, (4, 6), w, None, 1e-5), {"x": x, "weight": w}, 8)


def embedding_cases():
    r = np.random.default_rng(9)
    w = leaf("embedding", "weight", r.normal(size=(10, 6)))
    idx = torch.tensor(save("embedding", "indices", r.integers(0, 10, size=(3, 5)).astype(np.int64)))
    vjp("embedding", F.embedding(idx, w), {"weight": w}, 10)


def attention_cases():
    r = np.random.default_rng(11)
    shape = (2, 2, 5, 4)
    q, k, v = (leaf("sdpa_causal", n, r.normal(size=shape)) for n in ("q", "k", "v"))
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    vjp("sdpa_causal", y, {"q": q, "k": k, "v": v}, 12)
    # Non-square, a float mask and an explicit scale.
    q = leaf("sdpa_mask", "q", r.normal(size=(3, 4, 6)))
    k = leaf("sdpa_mask", "k", r.normal(size=(3, 7, 6)))
    v = leaf("sdpa_mask", "v", r.normal(size=(3, 7, 5)))
    m = torch.tensor(save("sdpa_mask", "mask", r.normal(size=(4, 7))))
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=m, scale=0.3)
    vjp("sdpa_mask", y, {"q": q, "k": k, "v": v}, 13)
    # A boolean mask (true takes part) with every row keeping at least one key.
    q = leaf("sdpa_bool", "q", r.normal(size=(2, 3, 4)))
    k = leaf("sdpa_bool", "k", r.normal(size=(2, 5, 4)))
    v = leaf("sdpa_bool", "v", r.normal(size=(2, 5, 4)))
    keep = r.random(size=(3, 5)) < 0.6
    keep[:, 0] = True
    m = torch.tensor(save("sdpa_bool", "mask", keep.astype(np.int64))).bool()
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=m)
    vjp("sdpa_bool", y, {"q": q, "k": k, "v": v}, 14)


def clip_cases():
    r = np.random.default_rng(15)
    for case, max_norm in [("clip", 1.0), ("clip_noop", 100.0)]:
        a = torch.tensor(save(case, "a", r.normal(size=(3, 4))), requires_grad=True)
        b = torch.tensor(save(case, "b", r.normal(size=(5,))), requires_grad=True)
        a.grad = torch.tensor(save(case, "grad_a", r.normal(size=(3, 4)) * 2.0))
        b.grad = torch.tensor(save(case, "grad_b", r.normal(size=(5,))))
        norm = torch.nn.utils.clip_grad_norm_([a, b], max_norm)
        save(case, "norm", norm)
        save(case, "clipped_a", a.grad)
        save(case, "clipped_b", b.grad)


def lr_at(it, lr=1e-2, min_lr=1e-3, warmup=2, iters=6):
    if it < warmup:
        return lr * (it + 1) / (warmup + 1)
    ratio = (it - warmup) / (iters - warmup)
    return min_lr + 0.5 * (1 + math.cos(math.pi * ratio)) * (lr - min_lr)


def adamw_case():
    r = np.random.default_rng(16)
    case = "adamw"
    w = leaf(case, "w", r.normal(size=(4, 3)))
    b = leaf(case, "b", r.normal(size=(3,)))
    x = torch.tensor(save(case, "x", r.normal(size=(8, 4))))
    y = torch.tensor(save(case, "y", r.normal(size=(8, 3))))
    opt = torch.optim.AdamW([{"params": [w], "weight_decay": 0.1}, {"params": [b], "weight_decay": 0.0}],
                            lr=1e-2, betas=(0.9, 0.99))
    for it in range(6):
        for g in opt.param_groups:
            g["lr"] = lr_at(it)
        opt.zero_grad(set_to_none=True)
        loss = ((x @ w + b - y) ** 2).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_([w, b], 1.0)
        opt.step()
    save(case, "w_after", w)
    save(case, "b_after", b)


# A small GPT: the W8 model with fewer and narrower layers.
VOCAB, BLOCK, EMBD, HEADS, LAYERS, BATCH = 11, 8, 16, 2, 2, 3


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1 = nn.LayerNorm(EMBD, bias=False)
        self.qkv = nn.Linear(EMBD, 3 * EMBD, bias=False)
        self.proj = nn.Linear(EMBD, EMBD, bias=False)
        self.ln2 = nn.LayerNorm(EMBD, bias=False)
        self.fc = nn.Linear(EMBD, 4 * EMBD, bias=False)
        self.fc_proj = nn.Linear(4 * EMBD, EMBD, bias=False)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(EMBD, dim=2)
        q, k, v = (t.view(B, T, HEADS, C // HEADS).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(C // HEADS))
        mask = torch.ones(T, T, dtype=torch.bool).tril()
        att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        x = x + self.proj(y)
        return x + self.fc_proj(F.gelu(self.fc(self.ln2(x))))


class GPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = nn.Embedding(VOCAB, EMBD)
        self.wpe = nn.Embedding(BLOCK, EMBD)
        self.blocks = nn.ModuleList(Block() for _ in range(LAYERS))
        self.ln_f = nn.LayerNorm(EMBD, bias=False)
        self.head = nn.Linear(EMBD, VOCAB, bias=False)
        self.head.weight = self.wte.weight
        for n, p in self.named_parameters():
            if p.dim() == 2:
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * LAYERS) if n.endswith("proj.weight") else 0.02)
        # Larger embeddings than nanoGPT's, so the logits (and the test) are not all near zero.
        with torch.no_grad():
            self.wte.weight.mul_(20.0)
            self.wpe.weight.mul_(20.0)

    def forward(self, idx):
        T = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(T))
        for b in self.blocks:
            x = b(x)
        return self.head(self.ln_f(x))


def gpt_case():
    case = "gpt"
    torch.manual_seed(42)
    model = GPT()
    for n, p in model.named_parameters():
        save(case, "param." + n, p)
    # The same initial weights as PyTorch shares them (float64; the head is tied to wte).
    save_file({n: p.detach().contiguous() for n, p in model.named_parameters()},
              os.path.join(OUT, "gpt.weights.safetensors"))
    # 16-bit floats as torch writes them, and a dtype tenjit does not have, for the error it gives.
    half = torch.tensor([[1.0, -2.5, 65504.0], [1e-7, 0.1, -0.0]])
    save_file({"w": half.to(torch.float16), "b": half.to(torch.bfloat16)}, os.path.join(OUT, "half.safetensors"))
    save_file({"w": torch.ones(2, 3, dtype=torch.uint8)}, os.path.join(OUT, "u8.safetensors"))
    r = np.random.default_rng(17)
    x = torch.tensor(save(case, "x", r.integers(0, VOCAB, size=(BATCH, BLOCK)).astype(np.int64)))
    y = torch.tensor(save(case, "y", r.integers(0, VOCAB, size=(BATCH, BLOCK)).astype(np.int64)))
    # The same weights and batch in bfloat16, as torch's CPU kernels compute it: each op in
    # float32, its result rounded to bfloat16.
    with torch.no_grad():
        save(case, "logits_bf16", copy.deepcopy(model).to(torch.bfloat16)(x).double())
    logits = model(x)
    loss = F.cross_entropy(logits.view(-1, VOCAB), y.view(-1))
    save(case, "logits", logits)
    save(case, "loss", loss)
    loss.backward()
    for n, p in model.named_parameters():
        save(case, "grad." + n, p.grad)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.99))
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    save(case, "grad_norm", norm)
    opt.step()
    for n, p in model.named_parameters():
        save(case, "after." + n, p)


# The CNN's pieces: (case, input shape, weight shape, bias, stride, padding, dilation, groups).
# tests/cnn_oracle.rs holds the same table.
CONV_CASES = [
    ("conv_plain", (2, 3, 7, 6), (4, 3, 3, 3), True, (1, 1), (0, 0), (1, 1), 1),
    ("conv_stride_pad", (2, 3, 7, 8), (5, 3, 2, 3), False, (2, 2), (1, 1), (1, 1), 1),
    ("conv_dilated", (2, 2, 9, 7), (3, 2, 3, 2), True, (1, 2), (2, 1), (2, 1), 1),
    ("conv_groups", (2, 4, 6, 5), (6, 2, 3, 3), True, (1, 1), (1, 1), (1, 1), 2),
    ("conv_depthwise", (1, 3, 8, 6), (3, 1, 3, 3), False, (2, 1), (1, 2), (2, 2), 3),
]

# (case, input shape, kernel, stride, padding, integer-valued input with ties).
MAX_POOL_CASES = [
    ("max_pool", (2, 3, 7, 6), (3, 2), (2, 1), (1, 0), False),
    ("max_pool_ties", (2, 2, 6, 6), (2, 2), (1, 1), (0, 0), True),
    ("max_pool_ties_pad", (1, 2, 7, 5), (3, 3), (2, 2), (1, 1), True),
]

# (case, input shape, kernel, stride, padding, count_include_pad).
AVG_POOL_CASES = [
    ("avg_pool", (2, 3, 6, 7), (2, 3), (1, 2), (0, 1), True),
    ("avg_pool_pad", (2, 2, 7, 7), (3, 3), (2, 2), (1, 1), True),
    ("avg_pool_no_pad_count", (2, 2, 7, 7), (3, 3), (2, 2), (1, 1), False),
]


def conv_cases():
    r = np.random.default_rng(20)
    for i, (case, xs, ws, bias, stride, padding, dilation, groups) in enumerate(CONV_CASES):
        x = leaf(case, "x", r.normal(size=xs))
        w = leaf(case, "weight", r.normal(size=ws))
        inputs = {"x": x, "weight": w}
        b = None
        if bias:
            b = inputs["bias"] = leaf(case, "bias", r.normal(size=ws[0]))
        y = F.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
        vjp(case, y, inputs, 21 + i)


def pool_cases():
    r = np.random.default_rng(30)
    for i, (case, xs, kernel, stride, padding, ties) in enumerate(MAX_POOL_CASES):
        # Small integers make ties in most windows: torch's gradient goes to the first maximum.
        x = leaf(case, "x", r.integers(-2, 3, size=xs).astype(np.float64) if ties else r.normal(size=xs))
        vjp(case, F.max_pool2d(x, kernel, stride, padding), {"x": x}, 31 + i)
    for i, (case, xs, kernel, stride, padding, include) in enumerate(AVG_POOL_CASES):
        x = leaf(case, "x", r.normal(size=xs))
        y = F.avg_pool2d(x, kernel, stride, padding, count_include_pad=include)
        vjp(case, y, {"x": x}, 41 + i)


class Cnn(nn.Module):
    """conv(1->4, 3x3, pad 1) -> relu -> maxpool 2 -> conv(4->8, 3x3, pad 1) -> relu -> maxpool 2
    -> linear(32 -> 10), on 8x8 images."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 8, 3, padding=1)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc(x.flatten(1))


def cnn_case():
    case = "cnn"
    torch.manual_seed(43)
    model = Cnn()
    for n, p in model.named_parameters():
        save(case, "param." + n, p)
    r = np.random.default_rng(50)
    x = torch.tensor(save(case, "x", r.random(size=(4, 1, 8, 8))))
    y = torch.tensor(save(case, "y", r.integers(0, 10, size=(4,)).astype(np.int64)))
    logits = model(x)
    loss = F.cross_entropy(logits, y)
    save(case, "logits", logits)
    save(case, "loss", loss)
    loss.backward()
    for n, p in model.named_parameters():
        save(case, "grad." + n, p.grad)
    torch.optim.Adam(model.parameters(), lr=1e-2).step()
    for n, p in model.named_parameters():
        save(case, "after." + n, p)


def main():
    WRITER.reset()
    elementwise_cases()
    mask_cases()
    layer_norm_cases()
    embedding_cases()
    attention_cases()
    clip_cases()
    adamw_case()
    gpt_case()
    conv_cases()
    pool_cases()
    cnn_case()
    print(f"wrote {len(WRITER.written)} arrays to {OUT}")


if __name__ == "__main__":
    main()
