//! The MLP of `examples/mlp_digits.rs`, trained for a few epochs on the real data set (the
//! committed `examples/data/digits.csv.gz`), must classify at least 90% of the held-out
//! digits; after the first epoch, training compiles nothing new (one executable per step,
//! reused), and in the first the last, smaller batch is an instance of the step's program.

#[path = "../examples/common/digits.rs"]
mod digits;

use digits::{Digits, Mlp, Optimizer};
use tenjit::optim::{Adam, Sgd};

fn train(opt: Optimizer, epochs: usize) -> (Vec<f64>, f64, usize) {
    let data = Digits::load(&digits::data_path()).unwrap();
    assert_eq!(data.len(), 1797);
    let (train, test) = data.split(0.2, 0);
    tenjit::manual_seed(0);
    let mut model = Mlp::new();
    let mut opt = opt;
    let mut losses = Vec::new();
    let mut compiled_after_first = 0;
    for epoch in 0..epochs {
        let before = tenjit::compile_count();
        losses.push(digits::train_epoch(&mut model, &mut opt, &train, 32, |l| assert!(l.is_finite())));
        if epoch > 0 {
            compiled_after_first += tenjit::compile_count() - before;
        } else {
            // The last, smaller batch (30 rows) instantiates the program of the batch dim,
            // which `train_epoch` marks dynamic: it compiles nothing.
            assert_ne!(train.len() % 32, 0);
            let last = tenjit::compile_reports().last().cloned().unwrap();
            assert_eq!(last.origin, tenjit::ProgramOrigin::Instance, "{last}");
        }
    }
    let (acc, confusion) = digits::evaluate(&model, &test);
    assert_eq!(confusion.iter().flatten().sum::<usize>(), test.len());
    (losses, acc, compiled_after_first)
}

// One test per optimizer would run in parallel and blur the compile counts: one test trains
// both, one after the other.
#[test]
fn mlp_learns_the_digits() {
    let (losses, acc, compiled) = train(Optimizer::Sgd(Sgd::new(0.05).with_momentum(0.9)), 3);
    assert!(acc >= 0.90, "SGD: test accuracy {acc} < 0.90 (losses {losses:?})");
    assert!(losses[2] < losses[0] * 0.5, "SGD: the loss did not fall: {losses:?}");
    assert_eq!(compiled, 0, "SGD: epochs after the first compiled {compiled} new graphs");

    let (losses, acc, compiled) = train(Optimizer::Adam(Adam::new(0.002)), 4);
    assert!(acc >= 0.90, "Adam: test accuracy {acc} < 0.90 (losses {losses:?})");
    assert!(losses[3] < losses[0] * 0.5, "Adam: the loss did not fall: {losses:?}");
    assert_eq!(compiled, 0, "Adam: epochs after the first compiled {compiled} new graphs");
}

#[test]
fn digits_parse_errors_are_clear() {
    let row = |label: &str| format!("{}{label}\n", "0,".repeat(64));
    assert_eq!(Digits::parse(&row("7")).unwrap().labels, vec![7]);
    let err = Digits::parse(&format!("{}{}", row("3"), "1,2,3\n")).err().unwrap();
    assert!(err.contains("line 2") && err.contains("found 3"), "{err}");
    let err = Digits::parse(&row("x")).err().unwrap();
    assert!(err.contains("column 65") && err.contains("\"x\""), "{err}");
    let err = Digits::parse(&row("12")).err().unwrap();
    assert!(err.contains("label 12"), "{err}");
    let err = Digits::load(std::path::Path::new("/nonexistent/digits.csv.gz")).err().unwrap();
    assert!(err.contains("cannot open"), "{err}");
}
