#!/usr/bin/env python3
"""torch eager on CUDA, the W8 step (the char-level GPT of examples/common/gpt.rs: vocab 65,
block 64, batch 12, 4 layers, 4 heads, width 128, tied head; cross-entropy, backward, clip 1.0,
AdamW with weight decay 0.1 on matrices), for scripts/gpu-check.sh to print next to tenjit's.
Prints the median step time of 20 after 5 of warm-up (on the CPU where there is no GPU)."""
import math, statistics, time
import torch, torch.nn as nn, torch.nn.functional as F

V, T, B, L, H, C = 65, 64, 12, 4, 4, 128
dev = "cuda" if torch.cuda.is_available() else "cpu"


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(C, bias=False), nn.LayerNorm(C, bias=False)
        self.qkv, self.proj = nn.Linear(C, 3 * C, bias=False), nn.Linear(C, C, bias=False)
        self.fc, self.fc_proj = nn.Linear(C, 4 * C, bias=False), nn.Linear(4 * C, C, bias=False)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = (z.view(b, t, H, c // H).transpose(1, 2) for z in self.qkv(self.ln1(x)).split(C, dim=2))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, c)
        x = x + self.proj(y)
        return x + self.fc_proj(F.gelu(self.fc(self.ln2(x))))


class Gpt(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(V, C), nn.Embedding(T, C)
        self.blocks = nn.ModuleList(Block() for _ in range(L))
        self.ln_f = nn.LayerNorm(C, bias=False)

    def forward(self, idx):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device))
        for blk in self.blocks:
            x = blk(x)
        return self.ln_f(x) @ self.wte.weight.t()


torch.manual_seed(8)
model = Gpt().to(dev)
params = list(model.parameters())
opt = torch.optim.AdamW([{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
                         {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}],
                        lr=1e-3, betas=(0.9, 0.99))
x = torch.randint(0, V, (B, T), device=dev)
y = torch.randint(0, V, (B, T), device=dev)


def step():
    loss = F.cross_entropy(model(x).view(-1, V), y.view(-1))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    if dev == "cuda":
        torch.cuda.synchronize()


for _ in range(5):
    step()
times = []
for _ in range(20):
    t = time.perf_counter()
    step()
    times.append(time.perf_counter() - t)
print(f"W8.gpt_step (torch eager {dev}) {statistics.median(times) * 1e3:.3f} ms (min {min(times) * 1e3:.3f})")
