//! Printing: `Display` computes the value and prints it exactly as PyTorch prints a tensor
//! (`tensor([ 4., 10., 18.])`), using `tenjit_ir::format`.

use super::Tensor;
use crate::device::Device;
use std::fmt;

impl fmt::Display for Tensor {
    /// Prints as PyTorch's `print(x)`. Evaluation errors print as `<error: ...>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.buffer() {
            Ok(buf) => {
                let mut extra = Vec::new();
                if let Device::Cuda(i) = self.device() {
                    extra.push(format!("device='cuda:{i}'"));
                }
                let opts = tenjit_ir::format::PrintOptions::default();
                f.write_str(&tenjit_ir::format::format_tensor_with(&buf, &opts, &extra))
            }
            Err(e) => write!(f, "<error: {e}>"),
        }
    }
}
