//! Error messages: each names the op, what was wrong and the caller's file and line.

use tenjit::prelude::*;

/// Evaluates a fallible call, returning its error and the line it was made on.
macro_rules! fails {
    ($e:expr) => {
        ($e.unwrap_err(), line!())
    };
}

/// The error text up to the location, checking that the location is the line of the call.
fn at_line((err, line): (tenjit::Error, u32)) -> String {
    let text = err.to_string();
    let marker = format!(" (at tests/errors.rs:{line}:");
    let cut = text.find(&marker).unwrap_or_else(|| panic!("`{text}` does not cite tests/errors.rs:{line}"));
    text[..cut].to_string()
}

#[test]
fn broadcast_error_names_shapes_and_line() {
    let a = Tensor::zeros([2, 3]);
    let b = Tensor::zeros([4]);
    let e = fails!(a.try_add(&b));
    assert_eq!(at_line(e), "add: shapes [2, 3] and [4] cannot broadcast");
}

#[test]
fn operator_panics_with_the_same_message() {
    let r = std::panic::catch_unwind(|| {
        let _ = Tensor::zeros([2, 3]) * Tensor::zeros([2]);
    });
    let msg = r.unwrap_err();
    let msg = msg.downcast_ref::<String>().expect("a formatted panic message");
    assert!(msg.starts_with("mul: shapes [2, 3] and [2] cannot broadcast (at tests/errors.rs:"), "{msg}");
}

#[test]
fn matmul_errors() {
    let e = fails!(Tensor::zeros([2, 3]).try_matmul(&Tensor::zeros([4, 5])));
    assert_eq!(
        at_line(e),
        "matmul: shapes [2, 3] and [4, 5] cannot be multiplied (inner dimensions 3 and 4 differ)"
    );
    let e = fails!(Tensor::zeros([2, 2, 3]).try_matmul(&Tensor::zeros([3, 3, 4])));
    assert_eq!(
        at_line(e),
        "matmul: batch dimensions [2] and [3] of [2, 2, 3] and [3, 3, 4] cannot broadcast"
    );
    let e = fails!(Tensor::zeros([2, 2]).try_dot(&Tensor::zeros([2, 2])));
    assert_eq!(at_line(e), "dot: 1D tensors expected, but got 2D and 2D tensors");
}

#[test]
fn shape_errors() {
    let x = Tensor::arange(6);
    let e = fails!(x.try_reshape([4, -1]));
    assert_eq!(at_line(e), "reshape: shape [4, -1] is invalid for input of size 6 (shape [6])");
    let e = fails!(x.try_reshape([-1, -1]));
    assert_eq!(at_line(e), "reshape: only one dimension can be inferred");
    let e = fails!(x.reshape([2, 3]).t().try_view([6]));
    assert!(at_line(e).ends_with("Use .reshape(...) instead."));
    let e = fails!(x.try_unsqueeze(3));
    assert_eq!(
        at_line(e),
        "unsqueeze: dimension out of range (expected to be in range of [-2, 1], but got 3)"
    );
    let e = fails!(x.reshape([2, 3]).try_permute([0, 0]));
    assert_eq!(at_line(e), "permute: dim 0 repeats in [0, 0]");
    let e = fails!(Tensor::zeros([2, 3, 4]).try_t());
    assert_eq!(at_line(e), "t: expects a tensor with <= 2 dimensions, but self is 3D");
    let e = fails!(Tensor::zeros([3, 2]).try_expand([3, 4]));
    assert_eq!(at_line(e), "expand: shape [3, 2] cannot broadcast to [3, 4]");
}

#[test]
fn index_errors() {
    let m = Tensor::zeros([2, 3]);
    let e = fails!(m.try_i(s![2]));
    assert_eq!(at_line(e), "index: index 2 is out of bounds for dimension 0 with size 2");
    let e = fails!(m.try_i(s![0, 0, 0]));
    assert_eq!(at_line(e), "index: too many indices for tensor of dimension 2");
    let e = fails!(m.try_i(s![..;0]));
    assert_eq!(at_line(e), "index: slice step cannot be zero");
    let e = fails!(m.try_masked_select(&Tensor::zeros([2, 3])));
    assert_eq!(at_line(e), "masked_select: mask must be a bool tensor, got f32[2,3]");
    let e = fails!(m.try_index_select(0, &tensor!([0.5])));
    assert_eq!(at_line(e), "index_select: index must be a 0-D or 1-D integer tensor, got f32[1]");
}

#[test]
fn index_out_of_range_in_data_is_an_evaluation_error() {
    let picked = Tensor::eye(3).index_select(0, &tensor!([0, 5]));
    let e = picked.try_realize().unwrap_err().to_string();
    assert!(e.starts_with("evaluation failed:"), "{e}");
    assert!(e.contains('5'), "{e}");
    let (picked, line) = (Tensor::eye(3).index_select(0, &tensor!([0, 5])), line!());
    let e = fails!(picked.try_realize());
    assert_eq!(
        at_line((e.0, line)),
        "evaluation failed: index_select: index 5 is out of bounds for dimension 0 with size 3"
    );
}

#[test]
fn dtype_errors() {
    let e = fails!(tensor!([1, 2]).try_mean_dim(0, false));
    assert_eq!(
        at_line(e),
        "mean: could not infer output dtype. Input dtype must be a floating point dtype, but got i64"
    );
    // A weak integer scalar promotes bool to i64, as torch: `tensor([True]) + 1` is `tensor([2])`.
    assert_eq!((tensor!([true]) + 1).to_string(), "tensor([2])");
    let e = fails!(tensor!([true]).try_sub(tensor!([true])));
    assert_eq!(at_line(e), "sub: bool tensors are not supported here; convert with to_dtype first");
    let e = fails!(tensor!([1, 2]).try_matmul(&tensor!([true, false])));
    assert_eq!(at_line(e), "matmul: bool tensors are not supported; convert with to_dtype first");
    let err = std::panic::catch_unwind(|| {
        let mut x = tensor!([1, 2]);
        x.add_(0.5);
    })
    .unwrap_err();
    let msg = err.downcast_ref::<String>().unwrap();
    assert!(msg.starts_with("add_: result type f32 can't be cast to the desired output type i64"), "{msg}");
}

#[test]
fn integer_division_by_zero_is_an_evaluation_error() {
    let e = tensor!([1, 2]).floor_divide(0).try_realize().unwrap_err().to_string();
    assert!(e.contains("division by zero"), "{e}");
}

#[test]
fn creation_errors() {
    let e = fails!(Tensor::try_from_vec(vec![1.0f32, 2.0, 3.0], [2, 2]));
    assert_eq!(at_line(e), "from_vec: 3 elements do not fill shape [2, 2] (4 elements)");
    let e = fails!(Tensor::try_arange_step(0, 10, 0));
    assert_eq!(at_line(e), "arange: step must be nonzero");
    let e = fails!(Tensor::try_arange_step(10, 0, 1));
    assert_eq!(at_line(e), "arange: upper bound and larger bound inconsistent with step sign");
    let e = fails!(Tensor::try_randint(5, 5, [2]));
    assert_eq!(at_line(e), "randint: random_ expects 'from' to be less than 'to', but got from=5 >= to=5");
    let e = fails!(Tensor::try_cat(&[&Tensor::zeros([2, 3]), &Tensor::zeros([2, 4])], 0));
    assert_eq!(
        at_line(e),
        "cat: sizes of tensors must match except in dimension 0: tensor 0 is [2, 3] but tensor 1 is [2, 4]"
    );
    let e = fails!(Tensor::zeros([4]).try_item());
    assert_eq!(at_line(e), "item: a Tensor with 4 elements cannot be converted to Scalar (shape [4])");
}

#[test]
fn reduction_errors() {
    let e = fails!(Tensor::zeros([2, 3]).try_sum_dim([0, 0], false));
    assert_eq!(at_line(e), "sum: dim [0, 0] appears multiple times in the list of dims");
    let e = fails!(Tensor::zeros([2, 3]).try_sum_dim(2, false));
    assert_eq!(at_line(e), "sum: dimension out of range (expected to be in range of [-2, 1], but got 2)");
}

#[test]
fn devices() {
    assert_eq!(Tensor::zeros([2]).device(), Device::Cpu);
    if !tenjit::cuda::is_available() {
        let e = Tensor::zeros([2]).try_to(Device::Cuda(0)).unwrap_err().to_string();
        assert!(e.contains("cuda:0 is not available"), "{e}");
    }
    let e = Tensor::zeros([2]).try_to(Device::Cuda(1000)).unwrap_err().to_string();
    assert!(e.contains("cuda:1000"), "{e}");
    assert_eq!(Tensor::zeros([2]).cpu().device(), Device::Cpu);
}

#[test]
fn errors_have_kinds_to_match_on() {
    use tenjit::{DeviceErrorKind, Error, EvalErrorKind, OpErrorKind};
    let op_kind = |e: Error| match e {
        Error::Op { kind, .. } => kind,
        other => panic!("not an op error: {other}"),
    };
    let eval_kind = |e: Error| match e {
        Error::Eval { kind, .. } => kind,
        other => panic!("not an evaluation error: {other}"),
    };
    // A failure found in data also names the op the user called and where.
    let eval_at = |e: Error| match e {
        Error::Eval { op: Some(op), at: Some(at), .. } => (op, at.file(), at.line()),
        other => panic!("not a located evaluation error: {other:?}"),
    };
    // Caught when the op is called.
    let x = Tensor::zeros([2, 3]);
    match op_kind(x.try_add(Tensor::zeros([4])).unwrap_err()) {
        OpErrorKind::Broadcast { lhs, rhs } => assert_eq!((lhs, rhs), (vec![2, 3], vec![4])),
        other => panic!("{other:?}"),
    }
    assert_eq!(op_kind(x.try_sum_dim(5, false).unwrap_err()), OpErrorKind::Axis);
    assert_eq!(op_kind(x.try_matmul(&Tensor::zeros([4, 5])).unwrap_err()), OpErrorKind::Shape);
    assert_eq!(op_kind(x.try_reshape([4, 2]).unwrap_err()), OpErrorKind::Shape);
    assert_eq!(op_kind(x.try_i(s![7]).unwrap_err()), OpErrorKind::Index);
    assert_eq!(op_kind(x.try_gather(1, &x).unwrap_err()), OpErrorKind::DType);
    assert_eq!(op_kind(tensor!([true]).try_matmul(&tensor!([true])).unwrap_err()), OpErrorKind::DType);
    assert_eq!(op_kind(x.try_expand([1isize << 62, 2, 3]).unwrap_err()), OpErrorKind::Size);
    // Found in data, when values are computed.
    let n = tensor!([1, 2, 3]);
    assert_eq!(
        eval_kind(n.floor_divide(tensor!([1, 0, 1])).try_realize().unwrap_err()),
        EvalErrorKind::Arithmetic
    );
    let (quotient, line) = (n.floor_divide(tensor!([0, 1, 1])), line!());
    assert_eq!(eval_at(quotient.try_realize().unwrap_err()), ("floor_divide", "tests/errors.rs", line));
    let bad = tensor!([[0, 5]]);
    let gathered = Tensor::zeros([1, 3]).gather(1, &bad);
    assert_eq!(eval_kind(gathered.try_realize().unwrap_err()), EvalErrorKind::IndexOutOfRange);
    let (gathered, line) = (Tensor::zeros([1, 3]).gather(1, &bad), line!());
    assert_eq!(eval_at(gathered.try_realize().unwrap_err()), ("gather", "tests/errors.rs", line));
    // Devices.
    if !tenjit::cuda::is_available() {
        match x.try_to(Device::Cuda(0)).unwrap_err() {
            Error::Device { kind, .. } => assert_eq!(kind, DeviceErrorKind::Unavailable),
            other => panic!("{other}"),
        }
    }
}
