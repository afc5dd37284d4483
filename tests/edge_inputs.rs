//! Odd inputs a user can write get NumPy's or PyTorch's answer or a clear error, never a silent
//! wrong result or a panic inside a `try_` method: slice steps at the ends of `isize`, labels out
//! of range for `one_hot`, and class counts too large for memory.

use tenjit::prelude::*;

#[test]
fn huge_slice_steps_keep_at_most_one_element_as_numpy_does() {
    let x = Tensor::arange(3);
    // NumPy: np.arange(3)[::-(2**63)] == [2], np.arange(3)[::2**63-1] == [0].
    assert_eq!(x.i(s![..;isize::MIN]).to_vec::<i64>(), vec![2]);
    assert_eq!(x.i(s![..;isize::MAX]).to_vec::<i64>(), vec![0]);
    assert_eq!(x.i(s![1..;isize::MAX]).to_vec::<i64>(), vec![1]);
    assert_eq!(x.i(s![..1;isize::MIN]).to_vec::<i64>(), vec![2]);
    assert_eq!(x.i(s![isize::MIN..isize::MAX;isize::MIN]).to_vec::<i64>(), Vec::<i64>::new());
    // On a matrix, where the step multiplies a row stride.
    let m = Tensor::arange(12).reshape([3, 4]);
    assert_eq!(m.i(s![..;isize::MIN, ..;isize::MAX]).to_vec::<i64>(), vec![8]);
    assert_eq!(m.i(s![..;isize::MIN]).shape(), &[1, 4]);
    // Ordinary negative steps are unchanged.
    assert_eq!(x.i(s![..;-2]).to_vec::<i64>(), vec![2, 0]);
}

#[test]
fn one_hot_rejects_labels_out_of_range() {
    let err = tensor!([0, 5]).try_one_hot(3).unwrap_err().to_string();
    assert!(
        err.starts_with("one_hot: class value 5 is out of range for num_classes = 3 (expected 0..3) (at tests/edge_inputs.rs:"),
        "{err}"
    );
    let err = tensor!([-1, 0]).try_one_hot(3).unwrap_err().to_string();
    assert!(err.contains("class value -1 is out of range"), "{err}");
    // Labels computed lazily are checked too.
    let err = (tensor!([1, 2]) * 2).try_one_hot(4).unwrap_err().to_string();
    assert!(err.contains("class value 4 is out of range"), "{err}");
    assert_eq!(tensor!([2, 0]).one_hot(3).to_vec::<i64>(), vec![0, 0, 1, 1, 0, 0]);
}

#[test]
fn one_hot_with_too_many_classes_is_an_error_not_a_panic() {
    let err = tensor!([0, 1]).try_one_hot(usize::MAX).unwrap_err().to_string();
    assert!(err.contains("is too large"), "{err}");
    let err = tensor!([0, 1]).try_one_hot(1 << 62).unwrap_err().to_string();
    assert!(err.contains("is too large"), "{err}");
}

#[test]
fn shapes_whose_size_overflows_are_errors() {
    let huge = [1usize << 32, 1 << 32];
    let r = std::panic::catch_unwind(|| Tensor::ones(huge));
    let msg = r.unwrap_err();
    let msg = msg.downcast_ref::<String>().expect("a formatted panic message");
    assert!(msg.contains("too large"), "{msg}");
    assert!(msg.starts_with("const: the result f32[4294967296,4294967296] is too large"), "{msg}");
    // An empty tensor cannot be reshaped into a shape whose product wraps to 0 either.
    let empty = Tensor::zeros([0]);
    let err = empty.try_reshape([1isize << 32, 1 << 32, 0]).unwrap_err().to_string();
    assert!(err.contains("too large"), "{err}");
    let err = empty.try_reshape([1isize << 62, 1 << 62, 0]).unwrap_err().to_string();
    assert!(err.contains("too large"), "{err}");
    // Bytes count, not only elements: 2^61 f64 elements are 2^64 bytes.
    let err = Tensor::zeros([1]).to_dtype(DType::F64).try_expand([1isize << 61]).unwrap_err().to_string();
    assert!(err.contains("too large"), "{err}");
}

#[test]
fn memory_the_system_refuses_is_an_error_naming_the_shape_and_size() {
    // 2^45 f32 elements are 128 TiB, more than any machine (or x86-64 user address space) has:
    // the allocation fails everywhere, and must not abort the process.
    let huge = Tensor::zeros([1usize << 45]);
    let err = huge.try_realize().unwrap_err();
    assert!(matches!(err, tenjit::Error::Eval { kind: tenjit::EvalErrorKind::OutOfMemory, .. }), "{err:?}");
    let err = err.to_string();
    assert!(err.contains("out of memory: cannot allocate 35184372088832 f32 elements (128.0 TiB)"), "{err}");
    assert!(err.contains("f32[35184372088832]"), "{err}");
    let err = huge.try_to_vec::<f32>().unwrap_err().to_string();
    assert!(err.contains("out of memory"), "{err}");
    // The process goes on.
    assert_eq!(Tensor::ones([3]).sum().item(), 3.0);
}
