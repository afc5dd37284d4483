//! Random tensors: the counter-based generator's contract. The generator is global (as
//! PyTorch's), so everything that seeds it runs in this one test, in order.

use tenjit::ir::random::{uniform_f32, uniform_f64};
use tenjit::prelude::*;

#[test]
fn seeded_draws_follow_the_counter_based_contract() {
    // Element i of the first draw after manual_seed(s) is uniform(s, i); the next draw
    // continues the counter.
    tenjit::manual_seed(1234);
    let a = Tensor::rand([2, 3]).to_vec::<f32>();
    let b = Tensor::rand([4]).to_vec::<f32>();
    let expected_a: Vec<f32> = (0..6).map(|i| uniform_f32(1234, i)).collect();
    let expected_b: Vec<f32> = (6..10).map(|i| uniform_f32(1234, i)).collect();
    assert_eq!(a, expected_a);
    assert_eq!(b, expected_b);

    // The same seed gives the same numbers again, whatever was drawn in between.
    tenjit::manual_seed(1234);
    assert_eq!(Tensor::rand([2, 3]).to_vec::<f32>(), expected_a);

    // A lazy random tensor has fixed values: realizing it twice (through two graphs) agrees.
    tenjit::manual_seed(7);
    let r = Tensor::rand([5]);
    let twice = (&r * 2.0).to_vec::<f32>();
    let plus = (&r + 0.0).to_vec::<f32>();
    assert_eq!(twice, plus.iter().map(|v| v * 2.0).collect::<Vec<_>>());

    // randint draws f64 uniforms: floor(u * (high - low)) + low.
    tenjit::manual_seed(99);
    let ints = Tensor::randint(-3, 4, [1000]).to_vec::<i64>();
    let expected: Vec<i64> = (0..1000).map(|i| (uniform_f64(99, i) * 7.0).floor() as i64 - 3).collect();
    assert_eq!(ints, expected);
    for v in -3..4 {
        assert!(ints.contains(&v), "{v} never drawn");
    }

    // randn and normal: moments of 20,000 draws.
    tenjit::manual_seed(0);
    let n = Tensor::randn([20_000]);
    assert!(n.mean().item().abs() < 0.03, "mean {}", n.mean().item());
    assert!((n.std().item() - 1.0).abs() < 0.03, "std {}", n.std().item());
    let g = Tensor::normal(5.0, 2.0, [20_000]);
    assert!((g.mean().item() - 5.0).abs() < 0.06);
    assert!((g.std().item() - 2.0).abs() < 0.06);
    // A fraction of draws beyond 2 sigma close to the normal's 4.55%.
    let tail = n.abs().gt(2.0).to_dtype(DType::F32).mean().item();
    assert!((tail - 0.0455).abs() < 0.006, "tail {tail}");

    // randperm is a permutation, and depends on the seed.
    tenjit::manual_seed(5);
    let p = Tensor::randperm(50).to_vec::<i64>();
    let mut sorted = p.clone();
    sorted.sort();
    assert_eq!(sorted, (0..50).collect::<Vec<_>>());
    tenjit::manual_seed(6);
    assert_ne!(Tensor::randperm(50).to_vec::<i64>(), p);

    // rand_like keeps a float dtype.
    let d = Tensor::zeros([3]).to_dtype(DType::F64).rand_like();
    assert_eq!(d.dtype(), DType::F64);
    assert!(d.to_vec::<f64>().iter().all(|v| (0.0..1.0).contains(v)));
}
