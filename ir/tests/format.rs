//! Printing buffers as PyTorch prints tensors. Every expected string is what `repr(tensor)`
//! prints for the same values with torch's default print options unless the test says
//! otherwise (checked against a line-by-line port of `torch/_tensor_str.py`).

use tenjit_ir::format::{format_tensor, format_tensor_with, PrintOptions};
use tenjit_ir::{Buffer, Element};

fn buf<T: Element>(v: Vec<T>, dims: &[usize]) -> Buffer {
    Buffer::from_vec(v, dims).unwrap()
}

fn show<T: Element>(v: Vec<T>, dims: &[usize]) -> String {
    buf(v, dims).to_string()
}

fn show_with<T: Element>(v: Vec<T>, dims: &[usize], opts: PrintOptions) -> String {
    format_tensor(&buf(v, dims), &opts)
}

#[test]
fn whole_floats_print_with_a_trailing_point() {
    assert_eq!(show(vec![5.0f32, 7.0, 9.0], &[3]), "tensor([5., 7., 9.])");
    assert_eq!(show(vec![4.0f32, 10.0, 18.0], &[3]), "tensor([ 4., 10., 18.])");
    assert_eq!(show(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2]), "tensor([[1., 2.],\n        [3., 4.]])");
    assert_eq!(show(vec![0.0f32, 0.0, 0.0], &[3]), "tensor([0., 0., 0.])");
    assert_eq!(show(vec![-0.0f32], &[1]), "tensor([-0.])");
}

#[test]
fn fractions_print_with_precision_decimals() {
    let roots: Vec<f32> = [1.0f32, 2.0, 3.0].iter().map(|x| x.sqrt()).collect();
    assert_eq!(show(roots, &[3]), "tensor([1.0000, 1.4142, 1.7321])");
    assert_eq!(show(vec![0.1f32, 0.2], &[2]), "tensor([0.1000, 0.2000])");
    assert_eq!(show(vec![0.0f32, 0.5], &[2]), "tensor([0.0000, 0.5000])");
    assert_eq!(show(vec![-1.5f32, 2.25], &[2]), "tensor([-1.5000,  2.2500])");
    assert_eq!(
        show(vec![0.3367f32, 0.1288, 0.2345, 0.2303, -1.1229, -0.1863, 2.2082, -0.6380], &[2, 2, 2]),
        "tensor([[[ 0.3367,  0.1288],\n         [ 0.2345,  0.2303]],\n\n        [[-1.1229, -0.1863],\n         [ 2.2082, -0.6380]]])"
    );
}

#[test]
fn wide_ranges_print_in_scientific_notation() {
    assert_eq!(show(vec![1e-5f32, 1e5], &[2]), "tensor([1.0000e-05, 1.0000e+05])");
    assert_eq!(show(vec![1.0f32, 1e8, -2.0], &[3]), "tensor([ 1.0000e+00,  1.0000e+08, -2.0000e+00])");
    assert_eq!(show(vec![1.0f32, 1e10], &[2]), "tensor([1.0000e+00, 1.0000e+10])");
    assert_eq!(
        show(vec![1e-10f64, 1.0, 123456.789], &[3]),
        "tensor([1.0000e-10, 1.0000e+00, 1.2346e+05], dtype=torch.float64)"
    );
}

#[test]
fn scalars() {
    assert_eq!(show(vec![10.0f32], &[]), "tensor(10.)");
    assert_eq!(show(vec![2.5f32], &[]), "tensor(2.5000)");
    assert_eq!(show(vec![3i64], &[]), "tensor(3)");
    assert_eq!(show(vec![true], &[]), "tensor(True)");
    assert_eq!(show(vec![-7i32], &[]), "tensor(-7, dtype=torch.int32)");
}

#[test]
fn integers_and_booleans() {
    assert_eq!(show(vec![6i64, 7, 8, 9], &[4]), "tensor([6, 7, 8, 9])");
    assert_eq!(show(vec![1i32, 2], &[2]), "tensor([1, 2], dtype=torch.int32)");
    // Booleans are padded like everything else: `False` is one wider than `True`.
    assert_eq!(show(vec![true, false], &[2]), "tensor([ True, False])");
    assert_eq!(show(vec![true, true], &[2]), "tensor([True, True])");
    assert_eq!(
        show(vec![1i32, -100000, i32::MAX, 0], &[2, 2]),
        "tensor([[         1,    -100000],\n        [2147483647,          0]], dtype=torch.int32)"
    );
}

#[test]
fn non_default_dtypes_are_named() {
    assert_eq!(show(vec![1.0f64, 2.0], &[2]), "tensor([1., 2.], dtype=torch.float64)");
}

#[test]
fn nan_and_infinities() {
    assert_eq!(show(vec![f32::NAN, 1.0, f32::INFINITY], &[3]), "tensor([nan, 1., inf])");
    assert_eq!(show(vec![f32::NAN, f32::NAN], &[2]), "tensor([nan, nan])");
    assert_eq!(show(vec![-1.0f32, f32::NAN], &[2]), "tensor([-1., nan])");
    assert_eq!(show(vec![f32::INFINITY, 0.5], &[2]), "tensor([   inf, 0.5000])");
    assert_eq!(show(vec![f32::NAN, 1e-5], &[2]), "tensor([       nan, 1.0000e-05])");
    assert_eq!(show(vec![f32::NEG_INFINITY], &[1]), "tensor([-inf])");
}

#[test]
fn three_dimensional_blocks_are_separated_by_blank_lines() {
    assert_eq!(
        show((0..12i64).collect(), &[2, 2, 3]),
        "tensor([[[ 0,  1,  2],\n         [ 3,  4,  5]],\n\n        [[ 6,  7,  8],\n         [ 9, 10, 11]]])"
    );
}

#[test]
fn empty_tensors() {
    assert_eq!(show(Vec::<f32>::new(), &[0]), "tensor([])");
    assert_eq!(show(Vec::<f32>::new(), &[0, 3]), "tensor([], size=(0, 3))");
    assert_eq!(show(Vec::<f64>::new(), &[0]), "tensor([], dtype=torch.float64)");
    // An empty tensor shows every dtype but float32, even int64 and bool.
    assert_eq!(show(Vec::<i64>::new(), &[0]), "tensor([], dtype=torch.int64)");
    assert_eq!(show(Vec::<bool>::new(), &[2, 0]), "tensor([], size=(2, 0), dtype=torch.bool)");
}

#[test]
fn long_tensors_are_summarized() {
    assert_eq!(show((0..2000i64).collect(), &[2000]), "tensor([   0,    1,    2,  ..., 1997, 1998, 1999])");
    let expected = "\
tensor([[   0,    1,    2,  ...,   97,   98,   99],
        [ 100,  101,  102,  ...,  197,  198,  199],
        [ 200,  201,  202,  ...,  297,  298,  299],
        ...,
        [9700, 9701, 9702,  ..., 9797, 9798, 9799],
        [9800, 9801, 9802,  ..., 9897, 9898, 9899],
        [9900, 9901, 9902,  ..., 9997, 9998, 9999]])";
    assert_eq!(show((0..10_000i64).collect(), &[100, 100]), expected);
}

#[test]
fn summarized_3d_tensors_elide_blocks_rows_and_columns() {
    let opts = PrintOptions { threshold: 100, edgeitems: 1, ..PrintOptions::default() };
    assert_eq!(
        show_with((0..128i64).collect(), &[4, 4, 8], opts),
        "\
tensor([[[  0,  ...,   7],
         ...,
         [ 24,  ...,  31]],

        ...,

        [[ 96,  ..., 103],
         ...,
         [120,  ..., 127]]])"
    );
}

#[test]
fn long_rows_wrap_at_the_line_width() {
    let values: Vec<f32> = (0..30).map(|i| i as f32 * 0.37).collect();
    assert_eq!(
        show(values, &[30]),
        "\
tensor([ 0.0000,  0.3700,  0.7400,  1.1100,  1.4800,  1.8500,  2.2200,  2.5900,
         2.9600,  3.3300,  3.7000,  4.0700,  4.4400,  4.8100,  5.1800,  5.5500,
         5.9200,  6.2900,  6.6600,  7.0300,  7.4000,  7.7700,  8.1400,  8.5100,
         8.8800,  9.2500,  9.6200,  9.9900, 10.3600, 10.7300])"
    );
    let narrow = PrintOptions { linewidth: 20, ..PrintOptions::default() };
    assert_eq!(
        show_with((0..12i64).collect(), &[12], narrow),
        "tensor([ 0,  1,  2,\n         3,  4,  5,\n         6,  7,  8,\n         9, 10, 11])"
    );
}

#[test]
fn suffixes_follow_the_dtype_and_wrap_like_torch() {
    let b = buf(vec![1.0f64, 2.0], &[2]);
    let opts = PrintOptions::default();
    assert_eq!(
        format_tensor_with(&b, &opts, &["grad_fn=<AddBackward0>".to_string()]),
        "tensor([1., 2.], dtype=torch.float64, grad_fn=<AddBackward0>)"
    );
    let b = buf((0..12).map(|i| i as f32 * 1.5).collect(), &[12]);
    assert_eq!(
        format_tensor_with(&b, &opts, &["requires_grad=True".to_string()]),
        "tensor([ 0.0000,  1.5000,  3.0000,  4.5000,  6.0000,  7.5000,  9.0000, 10.5000,\n        12.0000, 13.5000, 15.0000, 16.5000], requires_grad=True)"
    );
    let b = buf((0..15).map(|i| i as f32 * 1.25).collect(), &[15]);
    assert_eq!(
        format_tensor_with(&b, &opts, &["grad_fn=<MulBackward0>".to_string()]),
        "tensor([ 0.0000,  1.2500,  2.5000,  3.7500,  5.0000,  6.2500,  7.5000,  8.7500,\n        10.0000, 11.2500, 12.5000, 13.7500, 15.0000, 16.2500, 17.5000],\n       grad_fn=<MulBackward0>)"
    );
}

#[test]
fn print_options() {
    // f32 elements print from their exact value: f32 0.1 is 0.100000001490116...
    let p10 = PrintOptions { precision: 10, ..PrintOptions::default() };
    assert_eq!(show_with(vec![0.1f32], &[1], p10), "tensor([0.1000000015])");
    assert_eq!(show_with(vec![1.0f32 / 3.0, 2.0 / 3.0], &[2], PrintOptions::short()), "tensor([0.33, 0.67])");
    let sci = PrintOptions { sci_mode: Some(true), ..PrintOptions::default() };
    assert_eq!(show_with(vec![1.5f32, 2.0], &[2], sci.clone()), "tensor([1.5000e+00, 2.0000e+00])");
    // torch decides nothing, and so forces nothing, when no element is finite and non-zero.
    assert_eq!(show_with(vec![0.0f32, 0.0], &[2], sci), "tensor([0., 0.])");
    // Forcing fixed notation keeps the width chosen for scientific notation.
    let fixed = PrintOptions { sci_mode: Some(false), ..PrintOptions::default() };
    assert_eq!(show_with(vec![1e-5f32, 1e5], &[2], fixed), "tensor([    0.0000, 100000.0000])");
    let few = PrintOptions { threshold: 5, edgeitems: 2, ..PrintOptions::default() };
    assert_eq!(show_with((0..10i64).collect(), &[10], few), "tensor([0, 1,  ..., 8, 9])");
    let none = PrintOptions { threshold: 5, edgeitems: 0, ..PrintOptions::default() };
    assert_eq!(show_with((0..10i64).collect(), &[10], none.clone()), "tensor([...], size=(10,))");
    assert_eq!(show_with((0..12i64).collect(), &[3, 4], none), "tensor([...], size=(3, 4))");
    let extreme = PrintOptions { threshold: 0, edgeitems: usize::MAX, ..PrintOptions::default() };
    assert_eq!(show_with(vec![3i64], &[], extreme.clone()), "tensor(3)");
    assert_eq!(show_with(vec![1i64, 2, 3], &[3], extreme), "tensor([1, 2, 3])");
    let full = PrintOptions::full();
    assert_eq!(show_with((0..1001i64).collect(), &[1001], full).matches(',').count(), 1000);
}
