//! The kernels of a convolution, as `tenjit::inspect` lists them (snapshots pin the lists):
//! the input padded (a library routine), the `kH·kW` windows gathered into the columns by one
//! elementwise kernel, one GEMM, and the bias and activation in one elementwise kernel after
//! it, which a following max pool absorbs into its reduction.

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
fn conv_bias_relu_is_pad_im2col_gemm_and_one_epilogue() {
    let stages = tenjit::inspect(&[&conv_relu()]);
    assert_eq!(stages.kernel_count(), 4, "{}", stages.kernels());
    insta::assert_snapshot!("conv_bias_relu_kernels", stages.kernels());
}

#[test]
fn a_max_pool_absorbs_the_conv_epilogue() {
    let pooled = nn::max_pool2d(&conv_relu(), [2, 2], [2, 2], [0, 0]);
    let stages = tenjit::inspect(&[&pooled]);
    assert_eq!(stages.kernel_count(), 4, "{}", stages.kernels());
    insta::assert_snapshot!("conv_relu_max_pool_kernels", stages.kernels());
}
