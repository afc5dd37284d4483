//! A small CNN for the 8×8 digits: shared by `examples/cnn_digits.rs` and
//! `tests/cnn_digits.rs` (included with `#[path]`, next to `digits.rs`).

#![allow(dead_code)] // each includer uses part of it

use tenjit::nn::{self, Conv2d, Conv2dOptions, Linear, Module};
use tenjit::prelude::*;

/// `conv(1→16, 3×3, pad 1) → relu → maxpool 2 → conv(16→32, 3×3, pad 1) → relu → maxpool 2 →
/// Linear(128, 10)`, on the rows of 64 pixels seen as `[1, 8, 8]` images.
pub struct Cnn {
    pub conv1: Conv2d,
    pub conv2: Conv2d,
    pub fc: Linear,
}

impl Cnn {
    pub fn new() -> Cnn {
        let same = Conv2dOptions { padding: [1, 1], ..Default::default() };
        Cnn {
            conv1: Conv2d::new(1, 16, [3, 3], same),
            conv2: Conv2d::new(16, 32, [3, 3], same),
            fc: Linear::new(128, 10),
        }
    }
}

impl Module for Cnn {
    fn forward(&self, x: &Tensor) -> Tensor {
        let x = x.reshape([-1, 1, 8, 8]);
        let x = nn::max_pool2d(&nn::relu(&self.conv1.forward(&x)), [2, 2], [2, 2], [0, 0]);
        let x = nn::max_pool2d(&nn::relu(&self.conv2.forward(&x)), [2, 2], [2, 2], [0, 0]);
        self.fc.forward(&x.flatten_dims(1, -1))
    }

    fn parameters(&self) -> Vec<&Tensor> {
        let mut p = self.conv1.parameters();
        p.extend(self.conv2.parameters());
        p.extend(self.fc.parameters());
        p
    }

    fn parameters_mut(&mut self) -> Vec<&mut Tensor> {
        let mut p = self.conv1.parameters_mut();
        p.extend(self.conv2.parameters_mut());
        p.extend(self.fc.parameters_mut());
        p
    }

    fn named_parameters(&self) -> Vec<(String, &Tensor)> {
        let mut p = nn::prefixed("conv1", self.conv1.named_parameters());
        p.extend(nn::prefixed("conv2", self.conv2.named_parameters()));
        p.extend(nn::prefixed("fc", self.fc.named_parameters()));
        p
    }
}
