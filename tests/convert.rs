//! Values out and in: `item`, `to_vec`, ndarray both ways, `.npy` files, in-place updates.

use tenjit::ndarray::{arr2, Array, ArrayD, IxDyn};
use tenjit::prelude::*;

#[test]
fn item_and_to_vec_convert_as_casts() {
    let x = tensor!([[1.5, -2.5], [3.0, 4.0]]);
    assert_eq!(x.sum().item(), 6.0);
    assert_eq!(x.to_vec::<f32>(), vec![1.5, -2.5, 3.0, 4.0]);
    assert_eq!(x.to_vec::<f64>(), vec![1.5, -2.5, 3.0, 4.0]);
    assert_eq!(x.to_vec::<i64>(), vec![1, -2, 3, 4]);
    assert_eq!(x.to_vec::<bool>(), vec![true, true, true, true]);
    assert_eq!(Tensor::arange(3).to_vec::<i32>(), vec![0, 1, 2]);
    assert_eq!(tensor!([7]).item(), 7.0);
}

#[test]
fn ndarray_round_trip() {
    let a = arr2(&[[1.0f64, 2.0, 3.0], [4.0, 5.0, 6.0]]);
    let t = Tensor::from(a.clone());
    assert_eq!(t.dtype(), DType::F64);
    assert_eq!(t.shape(), &[2, 3]);
    assert_eq!(t.t().to_ndarray::<f64>(), a.t().to_owned().into_dyn());
    // A non-standard layout (a transposed view made owned without copying) is copied in order.
    let transposed: Array<f64, _> = a.clone().reversed_axes();
    let tt = Tensor::from(transposed);
    assert_eq!(tt.to_vec::<f64>(), vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    let back: ArrayD<f32> = Tensor::arange(6).reshape([3, 2]).to_ndarray::<f32>();
    assert_eq!(back, ArrayD::from_shape_vec(IxDyn(&[3, 2]), vec![0.0f32, 1.0, 2.0, 3.0, 4.0, 5.0]).unwrap());
    let scalar = Tensor::from(tenjit::ndarray::arr0(3i32));
    assert_eq!(scalar.to_string(), "tensor(3, dtype=torch.int32)");
}

#[test]
fn npy_round_trip_every_dtype() {
    let dir = std::env::temp_dir().join(format!("tenjit-convert-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let tensors = [
        tensor!([[1.5, 2.5]]),
        tensor!([1.5, 2.5], DType::F64),
        tensor!([1, -2, 3]),
        tensor!([1, -2], DType::I32),
        tensor!([true, false]),
        Tensor::scalar(4.0),
        Tensor::zeros([0, 3]),
    ];
    for (i, t) in tensors.iter().enumerate() {
        let path = dir.join(format!("t{i}.npy"));
        t.save_npy(&path).unwrap();
        let back = Tensor::load_npy(&path).unwrap();
        assert_eq!(back.dtype(), t.dtype(), "tensor {i}");
        assert_eq!(back.shape(), t.shape(), "tensor {i}");
        assert_eq!(back.to_string(), t.to_string(), "tensor {i}");
    }
    let missing = Tensor::load_npy(dir.join("missing.npy")).unwrap_err().to_string();
    assert!(missing.contains("missing.npy"), "{missing}");
    std::fs::write(dir.join("bad.npy"), b"not an npy file").unwrap();
    let bad = Tensor::load_npy(dir.join("bad.npy")).unwrap_err().to_string();
    assert!(bad.contains("bad.npy"), "{bad}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn in_place_updates_are_functional() {
    let mut x = tensor!([1., 2., 3.]);
    let before = x.clone();
    x.add_(1.0).mul_(2.0);
    x -= 1.0;
    x /= 2.0;
    assert_eq!(x.to_string(), "tensor([1.5000, 2.5000, 3.5000])");
    // Other handles keep the old value.
    assert_eq!(before.to_string(), "tensor([1., 2., 3.])");
    x.sub_(tensor!([0.5, 0.5, 0.5]));
    assert_eq!(x.to_string(), "tensor([1., 2., 3.])");
    x.zero_();
    assert_eq!(x.to_string(), "tensor([0., 0., 0.])");
    x.fill_(7);
    assert_eq!(x.to_string(), "tensor([7., 7., 7.])");
    // An int tensor keeps its dtype under integer updates.
    let mut i = tensor!([1, 2]);
    i.add_(3);
    assert_eq!(i.to_string(), "tensor([4, 5])");
    // A broadcast that would grow the tensor is an error, as in torch.
    let mut small = tensor!([1., 2.]);
    let grow = std::panic::catch_unwind(move || {
        small.add_(Tensor::zeros([3, 2]));
    });
    let msg = grow.unwrap_err();
    let msg = msg.downcast_ref::<String>().unwrap();
    assert!(msg.starts_with("add_: output with shape [2] doesn't match the broadcast shape [3, 2]"), "{msg}");
}

#[test]
fn flip_reverses_dims() {
    let m = Tensor::arange(6).reshape([2, 3]);
    assert_eq!(m.flip([1]).to_string(), "tensor([[2, 1, 0],\n        [5, 4, 3]])");
    assert_eq!(m.flip([0, 1]).to_vec::<i64>(), vec![5, 4, 3, 2, 1, 0]);
    assert!(m.try_flip([1, -2, 1]).is_err());
}
