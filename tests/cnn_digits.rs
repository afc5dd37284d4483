//! The CNN of `examples/cnn_digits.rs`, trained for two epochs on 640 images of the real data
//! set (kept short for debug builds), must classify most held-out digits (chance is 10%);
//! after the first epoch, training compiles nothing new.

#[path = "../examples/common/cnn.rs"]
mod cnn;
#[path = "../examples/common/digits.rs"]
mod digits;

use digits::{Digits, Optimizer, Split};
use tenjit::nn::Module;
use tenjit::optim::Adam;
use tenjit::prelude::*;

#[test]
fn cnn_learns_the_digits() {
    let data = Digits::load(&digits::data_path()).unwrap();
    let (train, test) = data.split(0.2, 0);
    let train = Split { x: train.x.i(s![..640]), y: train.y.i(s![..640]) };
    tenjit::manual_seed(0);
    let mut model = cnn::Cnn::new();
    let names: Vec<String> = model.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "fc.weight", "fc.bias"]);
    let mut opt = Optimizer::Adam(Adam::new(0.003));
    let mut losses = Vec::new();
    let mut compiled_after_first = 0;
    for epoch in 0..2 {
        let before = tenjit::compile_count();
        losses.push(digits::train_epoch(&mut model, &mut opt, &train, 32, |l| assert!(l.is_finite())));
        if epoch > 0 {
            compiled_after_first += tenjit::compile_count() - before;
        }
    }
    let (acc, _) = digits::evaluate(&model, &test);
    assert!(acc >= 0.6, "test accuracy {acc} < 0.6 (losses {losses:?})");
    assert!(losses[1] < losses[0], "the loss did not fall: {losses:?}");
    assert_eq!(compiled_after_first, 0, "the second epoch compiled {compiled_after_first} new graphs");
}
