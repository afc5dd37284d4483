//! The CNN's pieces checked against PyTorch (`tests/oracle/gen_models.py`, data in
//! `tests/oracle/data/models`): `conv2d` over strides, paddings, dilations, groups, non-square
//! kernels, with and without a bias; `max_pool2d` (with ties, whose gradient torch gives to the
//! first maximum of each window) and `avg_pool2d` (with and without counting the padding); and
//! a small CNN (conv-relu-pool twice, then a linear layer, batch 4 of 8×8 images) through its
//! logits, loss, every gradient and one Adam step. Each value and each vector-Jacobian product
//! (for a random cotangent) in `f64` and `f32`, with the tolerances of `common/torch_oracle.rs`;
//! the error cases check torch's messages.

#[path = "common/torch_oracle.rs"]
mod torch_oracle;

use tenjit::nn::{self, Conv2d, Conv2dOptions, Linear, Module};
use tenjit::optim::Adam;
use tenjit::prelude::*;
use torch_oracle::{check_vjp, Case};

fn run(name: &'static str, body: impl Fn(&Case)) {
    torch_oracle::run("models", name, body)
}

/// A (height, width) pair.
type Pair = [usize; 2];
/// A conv case: name, bias, stride, padding, dilation, groups.
type ConvCase = (&'static str, bool, Pair, Pair, Pair, usize);
/// A max-pool case: name, kernel, stride, padding.
type MaxPoolCase = (&'static str, Pair, Pair, Pair);
/// An average-pool case: name, kernel, stride, padding, count_include_pad.
type AvgPoolCase = (&'static str, Pair, Pair, Pair, bool);

/// `CONV_CASES` of `gen_models.py`.
const CONV_CASES: [ConvCase; 5] = [
    ("conv_plain", true, [1, 1], [0, 0], [1, 1], 1),
    ("conv_stride_pad", false, [2, 2], [1, 1], [1, 1], 1),
    ("conv_dilated", true, [1, 2], [2, 1], [2, 1], 1),
    ("conv_groups", true, [1, 1], [1, 1], [1, 1], 2),
    ("conv_depthwise", false, [2, 1], [1, 2], [2, 2], 3),
];

#[test]
fn conv2d() {
    for (name, bias, stride, padding, dilation, groups) in CONV_CASES {
        run(name, |c| {
            let (x, w) = (c.leaf("x"), c.leaf("weight"));
            let b = bias.then(|| c.leaf("bias"));
            let y = nn::conv2d(&x, &w, b.as_ref(), Conv2dOptions { stride, padding, dilation, groups });
            let mut leaves = vec![("x", &x), ("weight", &w)];
            leaves.extend(b.as_ref().map(|b| ("bias", b)));
            check_vjp(c, &y, &leaves);
        });
    }
}

#[test]
fn max_pool2d() {
    // `MAX_POOL_CASES` of `gen_models.py`: name, kernel, stride, padding.
    let cases: [MaxPoolCase; 3] = [
        ("max_pool", [3, 2], [2, 1], [1, 0]),
        ("max_pool_ties", [2, 2], [1, 1], [0, 0]),
        ("max_pool_ties_pad", [3, 3], [2, 2], [1, 1]),
    ];
    for (name, kernel, stride, padding) in cases {
        run(name, |c| {
            let x = c.leaf("x");
            check_vjp(c, &nn::max_pool2d(&x, kernel, stride, padding), &[("x", &x)]);
        });
    }
}

#[test]
fn avg_pool2d() {
    // `AVG_POOL_CASES` of `gen_models.py`: name, kernel, stride, padding, count_include_pad.
    let cases: [AvgPoolCase; 3] = [
        ("avg_pool", [2, 3], [1, 2], [0, 1], true),
        ("avg_pool_pad", [3, 3], [2, 2], [1, 1], true),
        ("avg_pool_no_pad_count", [3, 3], [2, 2], [1, 1], false),
    ];
    for (name, kernel, stride, padding, include) in cases {
        run(name, |c| {
            let x = c.leaf("x");
            check_vjp(c, &nn::avg_pool2d(&x, kernel, stride, padding, include), &[("x", &x)]);
        });
    }
}

/// The CNN of `gen_models.py`: conv(1→4) → relu → maxpool 2 → conv(4→8) → relu → maxpool 2 →
/// linear(32 → 10).
struct Cnn {
    conv1: Conv2d,
    conv2: Conv2d,
    fc: Linear,
}

impl Cnn {
    fn load(c: &Case) -> Cnn {
        let same = Conv2dOptions { padding: [1, 1], ..Default::default() };
        let conv = |name: &str| {
            Conv2d::from_tensors(
                c.data(&format!("param.{name}.weight")),
                Some(c.data(&format!("param.{name}.bias"))),
                same,
            )
        };
        let fc = Linear::from_tensors(c.data("param.fc.weight"), Some(c.data("param.fc.bias")));
        Cnn { conv1: conv("conv1"), conv2: conv("conv2"), fc }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let x = nn::max_pool2d(&nn::relu(&self.conv1.forward(x)), [2, 2], [2, 2], [0, 0]);
        let x = nn::max_pool2d(&nn::relu(&self.conv2.forward(&x)), [2, 2], [2, 2], [0, 0]);
        self.fc.forward(&x.flatten_dims(1, -1))
    }

    /// Torch's names and the parameters, in `named_parameters` order.
    fn params(&mut self) -> Vec<(String, &mut Tensor)> {
        let mut all = Vec::new();
        for (prefix, m) in
            [("conv1", &mut self.conv1 as &mut dyn Module), ("conv2", &mut self.conv2), ("fc", &mut self.fc)]
        {
            all.extend(m.named_parameters_mut().into_iter().map(|(n, p)| (format!("{prefix}.{n}"), p)));
        }
        all
    }
}

#[test]
fn a_small_cnn_trains_one_step_as_torch_does() {
    run("cnn", |c| {
        let mut cnn = Cnn::load(c);
        let (x, y) = (c.data("x"), c.data("y"));
        let logits = cnn.forward(&x);
        let loss = nn::cross_entropy(&logits, &y);
        c.check("logits", &logits);
        c.check("loss", &loss);
        loss.backward();
        for (name, p) in cnn.params() {
            c.check(&format!("grad.{name}"), &p.grad().unwrap_or_else(|| panic!("{name} has no gradient")));
        }
        let mut params = cnn.params();
        let mut handles: Vec<&mut Tensor> = params.iter_mut().map(|(_, p)| &mut **p).collect();
        Adam::new(1e-2).step(&mut handles);
        for (name, p) in cnn.params() {
            c.check(&format!("after.{name}"), p);
        }
    });
}

#[test]
fn shapes_that_do_not_fit_are_clear_errors() {
    let x = Tensor::zeros([2, 4, 5, 5]);
    let opts = Conv2dOptions::default();
    let err = |r: tenjit::Result<Tensor>| r.expect_err("an error").to_string();
    let e = err(nn::try_conv2d(&x, &Tensor::zeros([6, 4, 3]), None, opts));
    assert!(e.contains("conv2d") && e.contains("4-D weight"), "{e}");
    let e = err(nn::try_conv2d(&Tensor::zeros([4, 5, 5]), &Tensor::zeros([6, 4, 3, 3]), None, opts));
    assert!(e.contains("4-D input"), "{e}");
    let e = err(nn::try_conv2d(&x, &Tensor::zeros([6, 2, 3, 3]), None, Conv2dOptions { groups: 3, ..opts }));
    assert!(e.contains("divisible by groups (3)"), "{e}");
    let e = err(nn::try_conv2d(&x, &Tensor::zeros([6, 3, 3, 3]), None, opts));
    assert!(e.contains("expected input [2, 4, 5, 5] to have 3 channels, but got 4 channels"), "{e}");
    let e = err(nn::try_conv2d(&x, &Tensor::zeros([6, 4, 6, 3]), None, opts));
    assert!(e.contains("kernel size can't be greater than actual input size"), "{e}");
    let e = err(nn::try_conv2d(&x, &Tensor::zeros([6, 4, 3, 3]), Some(&Tensor::zeros([5])), opts));
    assert!(e.contains("bias must be of shape [6]"), "{e}");
    let e =
        err(nn::try_conv2d(&x, &Tensor::zeros([6, 4, 3, 3]), None, Conv2dOptions { stride: [0, 1], ..opts }));
    assert!(e.contains("stride must be greater than zero"), "{e}");
    let e = err(nn::try_max_pool2d(&x, [2, 2], [2, 2], [2, 0]));
    assert!(e.contains("max_pool2d") && e.contains("at most half"), "{e}");
    let e = err(nn::try_avg_pool2d(&x, [6, 2], [1, 1], [0, 0], true));
    assert!(e.contains("avg_pool2d") && e.contains("kernel size can't be greater"), "{e}");
    let e = err(nn::try_max_pool2d(&Tensor::zeros([2, 2]).to_dtype(DType::I64), [1, 1], [1, 1], [0, 0]));
    assert!(e.contains("float"), "{e}");
}
