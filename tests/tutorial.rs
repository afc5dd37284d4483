//! The NumPy→PyTorch tutorial, section by section, with the values the tutorial prints.
//! The text IR of its graphs is pinned with insta snapshots.

use tenjit::prelude::*;
use tenjit::TraceOptions;

fn ir(tensors: &[&Tensor]) -> String {
    tenjit::graph_with(tensors, TraceOptions { locations: false }).to_string()
}

// Section 2: creating tensors.
#[test]
fn s02_creation() {
    let a = tensor!([1.0, 2.0, 3.0]);
    assert_eq!(a.to_string(), "tensor([1., 2., 3.])");
    let m = tensor!([[1., 2.], [3., 4.]]);
    assert_eq!(m.to_string(), "tensor([[1., 2.],\n        [3., 4.]])");
    assert_eq!(Tensor::zeros([2, 3]).to_string(), "tensor([[0., 0., 0.],\n        [0., 0., 0.]])");
    assert_eq!(Tensor::ones([3]).to_string(), "tensor([1., 1., 1.])");
    assert_eq!(Tensor::full([2, 2], 7.0).to_string(), "tensor([[7., 7.],\n        [7., 7.]])");
    assert_eq!(Tensor::arange(5).to_string(), "tensor([0, 1, 2, 3, 4])");
    assert_eq!(Tensor::arange_step(6, 10, 1).to_string(), "tensor([6, 7, 8, 9])");
    assert_eq!(Tensor::arange_step(0, 10, 3).to_string(), "tensor([0, 3, 6, 9])");
    assert_eq!(
        Tensor::arange_step(0.0, 1.0, 0.2).to_string(),
        "tensor([0.0000, 0.2000, 0.4000, 0.6000, 0.8000])"
    );
    assert_eq!(Tensor::linspace(0.0, 1.0, 5).to_string(), "tensor([0.0000, 0.2500, 0.5000, 0.7500, 1.0000])");
    assert_eq!(
        Tensor::eye(3).to_string(),
        "tensor([[1., 0., 0.],\n        [0., 1., 0.],\n        [0., 0., 1.]])"
    );
    let r = Tensor::rand([2, 3]);
    assert_eq!(r.shape(), &[2, 3]);
    assert!(r.to_vec::<f32>().iter().all(|&v| (0.0..1.0).contains(&v)));
    let z = Tensor::zeros_like(&r);
    assert_eq!(z.shape(), &[2, 3]);
    assert_eq!(z.sum().item(), 0.0);
    assert_eq!(Tensor::ones_like(&r).sum().item(), 6.0);
}

// Section 3: dtypes.
#[test]
fn s03_dtypes() {
    assert_eq!(tensor!([1.0, 2.0]).dtype(), DType::F32);
    assert_eq!(tensor!([1, 2]).dtype(), DType::I64);
    assert_eq!(tensor!([true, false]).dtype(), DType::Bool);
    let i = tensor!([1, 2, 3]);
    let f = i.to_dtype(DType::F32);
    assert_eq!(f.to_string(), "tensor([1., 2., 3.])");
    assert_eq!(i.to_dtype(DType::I32).to_string(), "tensor([1, 2, 3], dtype=torch.int32)");
    assert_eq!(
        tensor!([1.5, 2.5]).to_dtype(DType::F64).to_string(),
        "tensor([1.5000, 2.5000], dtype=torch.float64)"
    );
    assert_eq!(tensor!([1.7, -1.7]).to_dtype(DType::I64).to_string(), "tensor([ 1, -1])");
    // Integer division gives floats, as in torch.
    assert_eq!((tensor!([1, 2, 3]) / 2).to_string(), "tensor([0.5000, 1.0000, 1.5000])");
    // Promotion: int tensor + float scalar is f32; f32 + f64 tensor is f64.
    assert_eq!((tensor!([1, 2]) + 0.5).dtype(), DType::F32);
    assert_eq!((tensor!([1.0]) + tensor!([1.0], DType::F64)).dtype(), DType::F64);
    assert_eq!((tensor!([1, 2], DType::I32) + 1).dtype(), DType::I32);
}

// Section 4: reshape, view, flatten.
#[test]
fn s04_reshape_view_flatten() {
    let x = Tensor::arange(12);
    let r = x.reshape([3, 4]);
    assert_eq!(
        r.to_string(),
        "tensor([[ 0,  1,  2,  3],\n        [ 4,  5,  6,  7],\n        [ 8,  9, 10, 11]])"
    );
    assert_eq!(x.view([2, -1]).shape(), &[2, 6]);
    assert_eq!(r.flatten().to_string(), "tensor([ 0,  1,  2,  3,  4,  5,  6,  7,  8,  9, 10, 11])");
    assert_eq!(r.unsqueeze(0).shape(), &[1, 3, 4]);
    assert_eq!(r.unsqueeze(0).squeeze().shape(), &[3, 4]);
    assert_eq!(r.t().shape(), &[4, 3]);
    assert!(!r.t().is_contiguous());
    let err = r.t().try_view([12]).unwrap_err().to_string();
    assert!(err.contains("Use .reshape(...) instead"), "{err}");
    assert_eq!(r.t().reshape([12]).to_vec::<i64>(), vec![0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]);
    assert_eq!(r.t().contiguous().view([12]).shape(), &[12]);
    assert_eq!(Tensor::zeros([2, 3, 4]).permute([2, 0, 1]).shape(), &[4, 2, 3]);
    assert_eq!(Tensor::zeros([3, 1]).expand([3, 4]).shape(), &[3, 4]);
}

// Section 5: indexing and slicing.
#[test]
fn s05_indexing() {
    let t = Tensor::arange(10);
    assert_eq!(t.i(s![2..5]).to_string(), "tensor([2, 3, 4])");
    assert_eq!(t.i(s![-3..]).to_string(), "tensor([7, 8, 9])");
    assert_eq!(t.i(s![..;3]).to_string(), "tensor([0, 3, 6, 9])");
    assert_eq!(t.i(s![..;-1]).to_string(), "tensor([9, 8, 7, 6, 5, 4, 3, 2, 1, 0])");
    assert_eq!(t.i(s![0]).to_string(), "tensor(0)");
    // tensor[tensor > 5]
    assert_eq!(t.masked_select(&t.gt(5)).to_string(), "tensor([6, 7, 8, 9])");
    let m = tensor!([[1., 2., 3.], [4., 5., 6.]]);
    assert_eq!(m.i(s![0]).to_string(), "tensor([1., 2., 3.])");
    assert_eq!(m.i(s![.., 1]).to_string(), "tensor([2., 5.])");
    assert_eq!(m.i(s![1, 2]).item(), 6.0);
    assert_eq!(m.i(s![.., ..;-1]).to_string(), "tensor([[3., 2., 1.],\n        [6., 5., 4.]])");
    assert_eq!(m.i(s![NewAxis, Ellipsis]).shape(), &[1, 2, 3]);
    assert_eq!(
        Tensor::where_(&m.gt(3.0), &m, 0.0).to_string(),
        "tensor([[0., 0., 0.],\n        [4., 5., 6.]])"
    );
}

// Section 6: elementwise operations.
#[test]
fn s06_elementwise() {
    let a = tensor!([1.0, 2.0, 3.0]);
    let b = tensor!([4.0, 5.0, 6.0]);
    assert_eq!((&a + &b).to_string(), "tensor([5., 7., 9.])");
    assert_eq!((&a * &b).to_string(), "tensor([ 4., 10., 18.])");
    assert_eq!((&b - &a).to_string(), "tensor([3., 3., 3.])");
    assert_eq!((&b / &a).to_string(), "tensor([4.0000, 2.5000, 2.0000])");
    assert_eq!(a.pow(2).to_string(), "tensor([1., 4., 9.])");
    assert_eq!(a.sqrt().to_string(), "tensor([1.0000, 1.4142, 1.7321])");
    assert_eq!(a.exp().to_string(), "tensor([ 2.7183,  7.3891, 20.0855])");
    assert_eq!((2.0 * &a + 1.0).to_string(), "tensor([3., 5., 7.])");
    assert_eq!((10.0 - &a).to_string(), "tensor([9., 8., 7.])");
    assert_eq!(tensor!([-1.0, 0.0, 2.0]).relu().to_string(), "tensor([0., 0., 2.])");
    assert_eq!(tensor!([0.0]).sigmoid().to_string(), "tensor([0.5000])");
    assert_eq!(tensor!([-7, 7]).floor_divide(2).to_string(), "tensor([-4,  3])");
    assert_eq!(tensor!([-7, 7]).remainder(-2).to_string(), "tensor([-1, -1])");
    assert_eq!((tensor!([-7, 7]) % 3).to_string(), "tensor([2, 1])");
    assert_eq!(tensor!([-2.0, 0.5, 3.0]).clamp(-1.0, 1.0).to_string(), "tensor([-1.0000,  0.5000,  1.0000])");
    let mask = a.gt(1.5) & b.lt(6.0);
    assert_eq!(mask.to_string(), "tensor([False,  True, False])");
    assert_eq!((!&mask).to_string(), "tensor([ True, False,  True])");
}

// Section 7: broadcasting.
#[test]
fn s07_broadcasting() {
    let col = tensor!([[1.], [2.], [3.]]);
    assert_eq!((&col + &col).to_string(), "tensor([[2.],\n        [4.],\n        [6.]])");
    let m = tensor!([[1., 2., 3.], [4., 5., 6.]]);
    let v = tensor!([10., 20., 30.]);
    assert_eq!((&m + &v).to_string(), "tensor([[11., 22., 33.],\n        [14., 25., 36.]])");
    let row = tensor!([[1., 2., 3.]]);
    tenjit::take_warnings();
    assert_eq!((&col + &row).shape(), &[3, 3]);
    let warnings = tenjit::take_warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0]
        .starts_with("tenjit warning: add broadcasts both operands: [3, 1] and [1, 3] give [3, 3]"));
    let err = m.try_add(tensor!([1., 2.])).unwrap_err().to_string();
    assert!(err.starts_with("add: shapes [2, 3] and [2] cannot broadcast (at tests/tutorial.rs:"), "{err}");
}

// Section 8: matrix multiplication and transpose.
#[test]
fn s08_matmul() {
    let a = tensor!([[1., 2.], [3., 4.]]);
    let b = tensor!([[5., 6.], [7., 8.]]);
    assert_eq!(a.matmul(&b).to_string(), "tensor([[19., 22.],\n        [43., 50.]])");
    assert_eq!(a.t().to_string(), "tensor([[1., 3.],\n        [2., 4.]])");
    assert_eq!(tensor!([1., 2., 3.]).dot(&tensor!([4., 5., 6.])).to_string(), "tensor(32.)");
    let batched = Tensor::ones([5, 2, 3]).matmul(&Tensor::ones([3, 4]));
    assert_eq!(batched.shape(), &[5, 2, 4]);
    assert_eq!(batched.sum().item(), 5.0 * 2.0 * 4.0 * 3.0);
    assert_eq!(tensor!([3., 4.]).norm().item(), 5.0);
}

// Section 9: reductions.
#[test]
fn s09_reductions() {
    let x = tensor!([[1., 2.], [3., 4.]]);
    assert_eq!(x.sum().to_string(), "tensor(10.)");
    assert_eq!(x.sum_dim(0, false).to_string(), "tensor([4., 6.])");
    assert_eq!(x.sum_dim(1, false).to_string(), "tensor([3., 7.])");
    assert_eq!(x.sum_dim(1, true).to_string(), "tensor([[3.],\n        [7.]])");
    assert_eq!(x.mean().to_string(), "tensor(2.5000)");
    assert_eq!(x.std().to_string(), "tensor(1.2910)");
    assert_eq!(x.var_dim(0, 0.0, false).to_string(), "tensor([1., 1.])");
    assert_eq!(x.max().to_string(), "tensor(4.)");
    assert_eq!(x.min().to_string(), "tensor(1.)");
    assert_eq!(x.argmax().to_string(), "tensor(3)");
    assert_eq!(x.argmax_dim(1, false).to_string(), "tensor([1, 1])");
    assert_eq!(x.prod().to_string(), "tensor(24.)");
    let (values, indices) = x.max_dim(0, false);
    assert_eq!(values.to_string(), "tensor([3., 4.])");
    assert_eq!(indices.to_string(), "tensor([1, 1])");
    // First index on ties, as torch.
    assert_eq!(tensor!([1., 3., 3.]).argmax().item(), 1.0);
    let err = tensor!([1, 2]).try_mean_dim(0, false).unwrap_err().to_string();
    assert!(err.contains("mean: could not infer output dtype"), "{err}");
}

// Section 10: a layer's forward pass, one-hot labels, normalization, batches.
#[test]
fn s10_forward_and_data() {
    let w = tensor!([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]]);
    let x = tensor!([1., 2., 3.]);
    assert_eq!(w.matmul(&x).to_string(), "tensor([1.4000, 3.2000])");

    let labels = tensor!([0, 2, 1, 3]);
    let one_hot = Tensor::eye(4).index_select(0, &labels);
    assert_eq!(
        one_hot.to_string(),
        "tensor([[1., 0., 0., 0.],\n        [0., 0., 1., 0.],\n        [0., 1., 0., 0.],\n        [0., 0., 0., 1.]])"
    );
    assert_eq!(labels.one_hot(4).to_dtype(DType::F32).to_vec::<f32>(), one_hot.to_vec::<f32>());

    let data = Tensor::arange(300).reshape([100, 3]).to_dtype(DType::F32);
    let normalized = (&data - data.mean_dim(0, true)) / (data.std_dim(0, 1.0, true) + 1e-8);
    let mean = normalized.mean_dim(0, false).to_vec::<f32>();
    let std = normalized.std_dim(0, 1.0, false).to_vec::<f32>();
    assert!(mean.iter().all(|m| m.abs() < 1e-5), "{mean:?}");
    assert!(std.iter().all(|s| (s - 1.0).abs() < 1e-5), "{std:?}");

    let batches = data.split(16, 0);
    assert_eq!(batches.len(), 7);
    assert!(batches[..6].iter().all(|b| b.shape() == [16, 3]));
    assert_eq!(batches[6].shape(), &[4, 3]);
    assert_eq!(batches[6].i(s![0, 0]).item(), 96.0 * 3.0);
    let total: usize = batches.iter().map(|b| b.shape()[0]).sum();
    assert_eq!(total, 100);
}

#[test]
fn snapshots_of_tutorial_graphs() {
    let a = tensor!([1.0, 2.0, 3.0]);
    let b = tensor!([4.0, 5.0, 6.0]);
    insta::assert_snapshot!("elementwise", ir(&[&(&a * &b + 1.0).sqrt()]));

    let m = tensor!([[1., 2., 3.], [4., 5., 6.]]);
    let v = tensor!([10., 20., 30.]);
    insta::assert_snapshot!("broadcast", ir(&[&(&m + &v)]));

    let w = tensor!([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]]);
    let x = tensor!([1., 2., 3.]);
    insta::assert_snapshot!("matvec", ir(&[&w.matmul(&x)]));

    let xs = tensor!([[1., 2.], [3., 4.]]);
    insta::assert_snapshot!("reductions", ir(&[&xs.sum_dim(0, false), &xs.mean(), &xs.std()]));

    let data = Tensor::zeros([100, 3]).realize().clone();
    let normalized = (&data - data.mean_dim(0, true)) / (data.std_dim(0, 1.0, true) + 1e-8);
    insta::assert_snapshot!("normalization", ir(&[&normalized]));

    let labels = tensor!([0, 2, 1, 3]);
    insta::assert_snapshot!("one_hot", ir(&[&Tensor::eye(4).index_select(0, &labels)]));
}
