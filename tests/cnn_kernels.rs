//! The kernels of a convolution, as `tenjit::inspect` lists them (snapshots pin the lists):
//! the convolution itself (a library routine that never builds the batch's window matrix),
//! then the bias and activation in one elementwise kernel, which a following max pool absorbs
//! into its reduction; its gradients are the two transposed convolutions.

use tenjit::nn::{self, Conv2dOptions};
use tenjit::prelude::*;

/// `relu(conv2d(x, w, b))` on a batch of 4 3-channel 8×8 images, 16 3×3 filters, padding 1.
fn conv_relu() -> Tensor {
    let x = Tensor::zeros([4, 3, 8, 8]).realize().clone();
    let w = Tensor::zeros([16, 3, 3, 3]).realize().clone();
    let b = Tensor::zeros([16]).realize().clone();
    nn::relu(&nn::conv2d(&x, &w, Some(&b), Conv2dOptions { padding: [1, 1], ..Default::default() }))
}

#[test]
fn conv_bias_relu_is_one_conv_and_one_epilogue() {
    let stages = tenjit::inspect(&[&conv_relu()]);
    assert_eq!(stages.kernel_count(), 2, "{}", stages.kernels());
    insta::assert_snapshot!("conv_bias_relu_kernels", stages.kernels());
}

#[test]
fn a_max_pool_absorbs_the_conv_epilogue() {
    let pooled = nn::max_pool2d(&conv_relu(), [2, 2], [2, 2], [0, 0]);
    let stages = tenjit::inspect(&[&pooled]);
    assert_eq!(stages.kernel_count(), 2, "{}", stages.kernels());
    insta::assert_snapshot!("conv_relu_max_pool_kernels", stages.kernels());
}

#[test]
fn the_gradients_are_the_two_transposed_convolutions() {
    let x = Tensor::randn([4, 3, 8, 8]).realize().clone().requires_grad_();
    let w = Tensor::randn([16, 3, 3, 3]).realize().clone().requires_grad_();
    let y = nn::conv2d(&x, &w, None, Conv2dOptions { padding: [1, 1], stride: [2, 2], ..Default::default() });
    let grads = tenjit::grad(&[&y.sum()], &[&x, &w]);
    let stages = tenjit::inspect(&[&grads[0], &grads[1]]);
    let list = stages.kernels();
    for op in ["conv2d_input", "conv2d_weight"] {
        let steps = list.lines().filter(|l| l.trim_start().starts_with(&format!("{op} "))).count();
        assert_eq!(steps, 1, "{op} once in:\n{list}");
    }
    assert!(!list.contains("pad ") && !list.contains("matmul"), "no windows, pads or GEMM steps:\n{list}");
    insta::assert_snapshot!("conv_gradient_kernels", list);
}

#[test]
fn a_training_step_pools_by_selection_and_scatters_its_gradient() {
    let x = Tensor::randn([4, 3, 8, 8]).realize().clone();
    let w = Tensor::randn([16, 3, 3, 3]).realize().clone().requires_grad_();
    let b = Tensor::zeros([16]).realize().clone().requires_grad_();
    let y = nn::relu(&nn::conv2d(&x, &w, Some(&b), Conv2dOptions { padding: [1, 1], ..Default::default() }));
    let loss = nn::max_pool2d(&y, [2, 2], [2, 2], [0, 0]).sum();
    let grads = tenjit::grad(&[&loss], &[&w, &b]);
    let stages = tenjit::inspect(&[&loss, &grads[0], &grads[1]]);
    let list = stages.kernels();
    for op in ["conv2d", "max_pool2d_select", "max_pool2d_scatter", "conv2d_weight"] {
        let steps = list.lines().filter(|l| l.trim_start().starts_with(&format!("{op} "))).count();
        assert_eq!(steps, 1, "{op} once in:\n{list}");
    }
    assert!(!list.contains("pad ") && !list.contains("gather"), "no pads or gathers:\n{list}");
    insta::assert_snapshot!("conv_pool_training_kernels", list);
}
