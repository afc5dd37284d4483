#!/usr/bin/env python3
"""Generates the gradient oracle data for tests/grad_oracle.rs, with PyTorch autograd.

Run from anywhere (needs torch and numpy):

    /root/.cache/peers-venv/bin/python tests/oracle/gen_grads.py
    # or any python with torch 2.x:  python3 tests/oracle/gen_grads.py

then `cargo test --test grad_oracle`.

Writes tests/oracle/data/grad/<case>.<name>.npy: the inputs of each case (drawn here with
fixed seeds) and the expected values (the function's value, the gradients with respect to
each input, or the parameters after some optimizer steps). Everything is float64 (class
targets int64) and computed in float64, so the Rust side can compare its f64 results at
~1e-10 relative and its f32 results more loosely. The folder is emptied first, and the
output is deterministic: running the script twice gives byte-identical files.
"""

import os

import numpy as np
from oracle_npy import NpyWriter
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "data", "grad")

torch.use_deterministic_algorithms(True)
torch.set_num_threads(1)

WRITER = NpyWriter(OUT)
save = WRITER.save


def rng(seed):
    return np.random.default_rng(seed)


def leaf(case, name, arr):
    """Saves an input and returns it as a float64 leaf that requires grad."""
    arr = save(case, name, np.asarray(arr, dtype=np.float64))
    return torch.tensor(arr, dtype=torch.float64, requires_grad=True)


def const(case, name, arr, dtype=np.float64):
    """Saves an input that needs no gradient."""
    arr = save(case, name, np.asarray(arr, dtype=dtype))
    return torch.tensor(arr)


def grads(case, value, inputs):
    """Saves `value` and the gradient of its sum with respect to each named input."""
    save(case, "value", value)
    names = list(inputs)
    gs = torch.autograd.grad(value.sum(), [inputs[n] for n in names])
    for n, g in zip(names, gs):
        save(case, "grad_" + n, g)


def composite_cases():
    r = rng(1)
    logits = leaf("ce", "logits", r.normal(size=(8, 5)) * 2.0)
    targets = const("ce", "targets", r.integers(0, 5, size=8), np.int64)
    grads("ce", F.cross_entropy(logits, targets), {"logits": logits})

    r = rng(2)
    x = leaf("norm", "x", r.normal(size=(3, 4)))
    grads("norm", x.norm(), {"x": x})

    r = rng(3)
    x = leaf("std", "x", r.normal(size=(4, 5)))
    grads("std", x.std(), {"x": x})

    r = rng(4)
    x = leaf("std_dim", "x", r.normal(size=(4, 5)))
    w = const("std_dim", "w", r.normal(size=4))
    grads("std_dim", (x.std(dim=1) * w).sum(), {"x": x})

    r = rng(5)
    x = leaf("linear_relu", "x", r.normal(size=(6, 4)))
    w = leaf("linear_relu", "w", r.normal(size=(3, 4)) * 0.5)
    b = leaf("linear_relu", "b", r.normal(size=3) * 0.5)
    y = torch.relu(x @ w.T + b)
    grads("linear_relu", (y * y).sum(), {"x": x, "w": w, "b": b})

    # relu and clamp exactly at their kinks: the gradient is 0 there (torch 2.15: the minimum-norm
    # subgradient for relu and for clamp with scalar bounds).
    r = rng(6)
    x = leaf("kinks", "x", [-1.0, 0.0, 2.0, 0.5, -0.5, 0.25, -0.75, 0.0])
    w1 = const("kinks", "w1", r.normal(size=8))
    w2 = const("kinks", "w2", r.normal(size=8))
    w3 = const("kinks", "w3", r.normal(size=8))
    loss = (
        (torch.relu(x) * w1).sum()
        + (torch.clamp(x, -0.5, 0.5) * w2).sum()
        + (torch.clamp(x, min=0.0) * w3).sum()
    )
    grads("kinks", loss, {"x": x})

    r = rng(7)
    a = leaf("broadcast", "a", r.normal(size=(4, 1)))
    b = leaf("broadcast", "b", r.normal(size=3))
    c = leaf("broadcast", "c", r.normal(size=(4, 3)))
    grads("broadcast", ((a + b) * c).sum(), {"a": a, "b": b, "c": c})

    r = rng(8)
    xs = r.normal(size=(5, 7))
    xs[0] += 500.0  # needs the max shift
    x = leaf("logsumexp", "x", xs)
    w = const("logsumexp", "w", r.normal(size=5))
    grads("logsumexp", (torch.logsumexp(x, dim=1) * w).sum(), {"x": x})

    r = rng(9)
    x = leaf("softmax", "x", r.normal(size=(5, 7)) * 3.0)
    w = const("softmax", "w", r.normal(size=(5, 7)))
    grads("softmax", (torch.softmax(x, dim=1) * w).sum(), {"x": x})

    r = rng(10)
    x = leaf("log_softmax", "x", r.normal(size=(4, 6)) * 3.0)
    w = const("log_softmax", "w", r.normal(size=(4, 6)))
    grads("log_softmax", (torch.log_softmax(x, dim=1) * w).sum(), {"x": x})

    r = rng(11)
    pred = leaf("mse", "pred", r.normal(size=(6, 3)))
    target = leaf("mse", "target", r.normal(size=(6, 3)))
    grads("mse", F.mse_loss(pred, target), {"pred": pred, "target": target})


class Tiny(torch.nn.Module):
    """Linear(4, 3) -> relu -> Linear(3, 2)."""

    def __init__(self, case, seed):
        super().__init__()
        r = rng(seed)
        self.fc1 = torch.nn.Linear(4, 3).double()
        self.fc2 = torch.nn.Linear(3, 2).double()
        with torch.no_grad():
            for name, p in [("w1", self.fc1.weight), ("b1", self.fc1.bias), ("w2", self.fc2.weight), ("b2", self.fc2.bias)]:
                p.copy_(torch.tensor(save(case, name, r.uniform(-0.5, 0.5, size=tuple(p.shape)))))

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


def optimizer_case(case, seed, make_opt, loss_kind, steps=3):
    """A few steps of an optimizer on Tiny; saves the losses and the parameters after."""
    model = Tiny(case, seed)
    r = rng(seed + 100)
    x = torch.tensor(save(case, "x", r.normal(size=(5, 4))))
    if loss_kind == "mse":
        y = torch.tensor(save(case, "y", r.normal(size=(5, 2))))
        loss_fn = F.mse_loss
    else:
        y = torch.tensor(save(case, "y", r.integers(0, 2, size=5).astype(np.int64)))
        loss_fn = F.cross_entropy
    opt = make_opt(model.parameters())
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    save(case, "losses", np.array(losses))
    for name, p in [("w1", model.fc1.weight), ("b1", model.fc1.bias), ("w2", model.fc2.weight), ("b2", model.fc2.bias)]:
        save(case, "after_" + name, p)


def optimizer_cases():
    optimizer_case(
        "sgd_momentum", 20, lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01), "mse"
    )
    optimizer_case(
        "sgd_nesterov",
        21,
        lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.02),
        "ce",
    )
    optimizer_case("sgd_dampening", 22, lambda ps: torch.optim.SGD(ps, lr=0.2, momentum=0.5, dampening=0.3), "mse")
    optimizer_case("adam", 23, lambda ps: torch.optim.Adam(ps, lr=0.01), "ce")
    optimizer_case(
        "adam_wd",
        24,
        lambda ps: torch.optim.Adam(ps, lr=0.05, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
        "mse",
    )


def linreg_numpy_case():
    """The tutorial's linear regression, 100 epochs of SGD (lr 0.01) from w = 0.5, b = -0.25,
    computed in NumPy (float64) with the gradients written by hand."""
    case = "linreg_numpy"
    x = save(case, "x", np.array([1.0, 2.0, 3.0, 4.0]))
    y = save(case, "y", 2.0 * x)
    w, b, lr = 0.5, -0.25, 0.01
    save(case, "w0", np.array([w]))
    save(case, "b0", np.array([b]))
    for _ in range(100):
        err = x * w + b - y
        loss = np.mean(err ** 2)
        gw, gb = np.mean(2 * err * x), np.mean(2 * err)
        w, b = w - lr * gw, b - lr * gb
    save(case, "w", np.array([w]))
    save(case, "b", np.array([b]))
    save(case, "loss", np.array(loss))


def main():
    WRITER.reset()
    composite_cases()
    optimizer_cases()
    linreg_numpy_case()
    print(f"wrote {len(WRITER.written)} files to {os.path.relpath(OUT)}")


if __name__ == "__main__":
    main()
