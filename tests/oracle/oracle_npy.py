"""What the PyTorch oracle generators (gen_grads.py, gen_models.py) share: one folder of
arrays, each written once as <case>.<name>.npy, float64 or int64 (booleans as int64)."""

import os
import shutil

import numpy as np
import torch


class NpyWriter:
    def __init__(self, out):
        self.out = out
        self.written = set()

    def reset(self):
        """Empties the folder, so no stale file survives a renamed case."""
        shutil.rmtree(self.out, ignore_errors=True)
        os.makedirs(self.out)

    def save(self, case, name, value):
        """Saves one array as <case>.<name>.npy and returns it."""
        if isinstance(value, torch.Tensor):
            value = value.detach()
            value = value.to(torch.int64) if value.dtype == torch.bool else value
            value = value.numpy()
        arr = np.array(value, order="C")
        assert arr.dtype in (np.float64, np.int64), (case, name, arr.dtype)
        key = f"{case}.{name}"
        assert key not in self.written, f"duplicate {key}"
        self.written.add(key)
        np.save(os.path.join(self.out, key + ".npy"), arr)
        return arr
