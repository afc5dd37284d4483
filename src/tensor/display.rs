//! Printing: `Display` computes the value and prints it exactly as PyTorch prints a tensor
//! (`tensor([ 4., 10., 18.])`), using `tenjit_ir::format`.

use super::{Tensor, INTERIOR, LEAF};
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
                match (self.grad_state(), &self.0.op) {
                    (LEAF, _) => extra.push("requires_grad=True".to_string()),
                    (INTERIOR, Some(op)) => extra.push(format!("grad_fn=<{}Backward0>", camel(op.name()))),
                    (INTERIOR, None) => extra.push("grad_fn=<ToCopyBackward0>".to_string()),
                    _ => {}
                }
                let opts = tenjit_ir::format::PrintOptions::default();
                f.write_str(&tenjit_ir::format::format_tensor_with(&buf, &opts, &extra))
            }
            Err(e) => write!(f, "<error: {e}>"),
        }
    }
}

/// `floor_div` -> `FloorDiv`, as torch names its backward nodes.
fn camel(name: &str) -> String {
    name.split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect()
}
