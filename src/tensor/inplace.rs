//! PyTorch's in-place style (`add_`, `sub_`, `mul_`, `div_`, `zero_`, `fill_`), functional
//! under the hood: the method records the new value and points the handle at it. Other handles
//! to the old value keep the old value, as values are immutable.
//!
//! As in PyTorch, the result keeps the tensor's dtype and shape: an update whose result type
//! would be of a higher category (an `i64` tensor `add_` a float) or a larger shape is an
//! error.

use super::elementwise::{binary, IntoOperand, Operand};
use super::{grad_enabled, Tensor, LEAF};
use crate::error::{Error, OpErrorKind, OrPanic, Result};
use tenjit_ir::BinaryOp;

impl Tensor {
    #[track_caller]
    fn update(&mut self, op: BinaryOp, name: &'static str, other: Operand) -> Result<()> {
        let r = binary(op, Operand::Tensor(self.clone()), other)?;
        if r.dtype().category() > self.dtype().category() {
            return Err(Error::op_of(
                OpErrorKind::DType,
                name,
                format!(
                    "result type {} can't be cast to the desired output type {}",
                    r.dtype(),
                    self.dtype()
                ),
            ));
        }
        if r.shape() != self.shape() {
            return Err(Error::op_of(
                OpErrorKind::Shape,
                name,
                format!(
                    "output with shape {} doesn't match the broadcast shape {}",
                    self.ir_shape(),
                    r.ir_shape()
                ),
            ));
        }
        let r = r.try_to_dtype(self.dtype())?;
        self.assign(name, r)
    }

    /// Points this handle at `new`, the updated value. A leaf that requires grad stays one
    /// (its accumulated gradient moves to the new node, as in torch the gradient stays with
    /// the parameter), and may only be updated inside `no_grad`, as in torch. Moving, not
    /// copying: the gradient's graph refers to the old node, so an old node that kept it would
    /// keep itself alive, one parameter buffer per step.
    #[track_caller]
    fn assign(&mut self, name: &'static str, new: Tensor) -> Result<()> {
        if self.grad_state() == LEAF {
            if grad_enabled() {
                return Err(Error::op(
                    name,
                    "a leaf tensor that requires grad can't be updated in place; do the update inside tenjit::no_grad",
                ));
            }
            new.0.grad_state.store(LEAF, std::sync::atomic::Ordering::Relaxed);
            new.set_grad(self.0.grad.lock().unwrap_or_else(|p| p.into_inner()).take());
            crate::realize::realize_with_next(&new, crate::realize::Pending::Update);
            *self = new;
            return Ok(());
        }
        *self = new;
        Ok(())
    }

    /// `self += other`, as `x.add_(other)`.
    ///
    /// ```
    /// use tenjit::prelude::*;
    /// let mut x = tensor!([1., 2.]);
    /// x.add_(1.0);
    /// assert_eq!(x.to_string(), "tensor([2., 3.])");
    /// ```
    #[track_caller]
    pub fn add_(&mut self, other: impl IntoOperand) -> &mut Tensor {
        self.update(BinaryOp::Add, "add_", other.into_operand()).or_panic();
        self
    }

    /// `self -= other`.
    #[track_caller]
    pub fn sub_(&mut self, other: impl IntoOperand) -> &mut Tensor {
        self.update(BinaryOp::Sub, "sub_", other.into_operand()).or_panic();
        self
    }

    /// `self *= other`.
    #[track_caller]
    pub fn mul_(&mut self, other: impl IntoOperand) -> &mut Tensor {
        self.update(BinaryOp::Mul, "mul_", other.into_operand()).or_panic();
        self
    }

    /// `self /= other` (float tensors; an integer tensor cannot hold the quotient).
    #[track_caller]
    pub fn div_(&mut self, other: impl IntoOperand) -> &mut Tensor {
        self.update(BinaryOp::Div, "div_", other.into_operand()).or_panic();
        self
    }

    /// Sets every element to zero.
    #[track_caller]
    pub fn zero_(&mut self) -> &mut Tensor {
        let new = self.zeros_like();
        self.assign("zero_", new).or_panic();
        self
    }

    /// Sets every element to `value` (converted to the tensor's dtype).
    #[track_caller]
    pub fn fill_(&mut self, value: impl super::creation::IntoScalar) -> &mut Tensor {
        let new = self.full_like(value);
        self.assign("fill_", new).or_panic();
        self
    }
}

macro_rules! assign_operator {
    ($trait:ident, $method:ident, $op:ident, $name:literal) => {
        impl<O: IntoOperand> std::ops::$trait<O> for Tensor {
            #[track_caller]
            fn $method(&mut self, rhs: O) {
                self.update(BinaryOp::$op, $name, rhs.into_operand()).or_panic();
            }
        }
    };
}

assign_operator!(AddAssign, add_assign, Add, "add_");
assign_operator!(SubAssign, sub_assign, Sub, "sub_");
assign_operator!(MulAssign, mul_assign, Mul, "mul_");
assign_operator!(DivAssign, div_assign, Div, "div_");

#[cfg(test)]
mod tests {
    use crate::prelude::*;
    use std::sync::Arc;

    #[test]
    fn an_updated_parameter_lets_its_old_node_go() {
        // The README's training step: the old leaf must not outlive the step (it once stayed
        // alive through its gradient, whose graph refers to it).
        let xs = tensor!([[1.0], [2.0], [3.0]]);
        let ys = tensor!([2.0, 4.0, 6.0]);
        let mut w = tensor!([0.5]).requires_grad_();
        let loss = (xs.matmul(&w) - &ys).square().mean();
        loss.backward();
        let old = Arc::downgrade(&w.0);
        crate::no_grad(|| {
            w.sub_(w.grad().expect("a gradient") * 0.05);
        });
        assert!(w.grad().is_some(), "the gradient stays with the parameter until zero_grad");
        w.zero_grad();
        drop(loss);
        w.realize();
        assert!(old.upgrade().is_none(), "the old parameter node is still alive");
        // d/dw mean((x w - y)²) = 2/3 · Σ x (x w - y) = -14 at w = 0.5.
        assert!((w.item() - 1.2).abs() < 1e-6, "{}", w.item());
    }
}
