//! The autograd API: gradients are lazy IR (printable, fused with the forward pass),
//! differentiable again, and every misuse is a clear error.

use tenjit::prelude::*;
use tenjit::GradOptions;

#[test]
fn gradients_are_lazy_graphs_that_print() {
    let x = tensor!([1.0, 2.0, 3.0]).requires_grad_();
    let y = (x.sin() * &x).sum();
    y.backward();
    let g = x.grad().unwrap();
    assert!(!g.is_realized(), "backward records the gradient; nothing is computed yet");
    let text = tenjit::graph_with(&[&g], tenjit::TraceOptions { locations: false }).to_string();
    insta::assert_snapshot!("grad_of_x_sin_x", text);
    // d/dx x sin x = sin x + x cos x
    let want: Vec<f32> = [1.0f32, 2.0, 3.0].iter().map(|&v| v.sin() + v * v.cos()).collect();
    let got = g.to_vec::<f32>();
    assert!(got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-6), "{got:?} vs {want:?}");
}

#[test]
fn second_and_third_derivatives_through_create_graph() {
    let x = tensor!(0.5).to_dtype(DType::F64).requires_grad_();
    let y = x.tanh();
    let opts = GradOptions { create_graph: true, ..Default::default() };
    let d1 = tenjit::grad_with(&[&y], &[&x], opts).unwrap().remove(0);
    let d2 = tenjit::grad_with(&[&d1], &[&x], opts).unwrap().remove(0);
    let d3 = tenjit::grad(&[&d2], &[&x]).remove(0);
    let t = 0.5f64.tanh();
    let s = 1.0 - t * t;
    assert!((d1.item() - s).abs() < 1e-12);
    assert!((d2.item() - (-2.0 * t * s)).abs() < 1e-12);
    assert!((d3.item() - (-2.0 * s * s + 4.0 * t * t * s)).abs() < 1e-12);
    assert!(!d3.requires_grad(), "without create_graph the result is a plain value");
}

#[test]
fn functional_grad_of_several_inputs_and_an_unused_one() {
    let a = tensor!([[1.0, 2.0], [3.0, 4.0]]).requires_grad_();
    let b = tensor!([1.0, -1.0]).requires_grad_();
    let unused = tensor!([5.0]).requires_grad_();
    let y = (a.matmul(&b) * 2.0).sum();
    let g = tenjit::grad(&[&y], &[&a, &b, &unused]);
    assert_eq!(g[0].to_vec::<f32>(), vec![2.0, -2.0, 2.0, -2.0]);
    assert_eq!(g[1].to_vec::<f32>(), vec![8.0, 12.0]);
    assert_eq!(g[2].to_vec::<f32>(), vec![0.0]);
    assert!(a.grad().is_none(), "the functional form accumulates nothing");
}

#[test]
fn seeds_weight_non_scalar_outputs() {
    let x = tensor!([1.0, 2.0]).requires_grad_();
    let y = &x * &x;
    let err = y.try_backward().unwrap_err().to_string();
    assert!(err.contains("grad can be implicitly created only for scalar outputs"), "{err}");
    assert!(err.contains("tests/autograd.rs"), "{err}");
    y.backward_with(Some(&tensor!([1.0, 10.0])), false).unwrap();
    assert_eq!(x.grad().unwrap().to_vec::<f32>(), vec![2.0, 40.0]);
    let bad = y.backward_with(Some(&tensor!([1.0])), false).unwrap_err().to_string();
    assert!(bad.contains("the gradient for output 0 has type f32[1], the output f32[2]"), "{bad}");
}

#[test]
fn misuse_is_a_clear_error() {
    let x = tensor!([1.0, 2.0]);
    let err = x.sum().try_backward().unwrap_err().to_string();
    assert!(err.contains("does not require grad"), "{err}");
    let err = tenjit::try_grad(&[&x.sum()], &[&x]).unwrap_err().to_string();
    assert!(err.contains("does not require grad"), "{err}");
    let i = Tensor::from_vec(vec![1i64, 2], [2]);
    let err = i.try_set_requires_grad(true).unwrap_err().to_string();
    assert!(err.contains("only tensors of floating point dtype can require gradients"), "{err}");
    let w = tensor!([1.0]).requires_grad_();
    let y = &w * 2.0;
    let err = y.try_set_requires_grad(false).unwrap_err().to_string();
    assert!(err.contains("only change requires_grad flags of leaf tensors"), "{err}");
}

#[test]
fn no_grad_detach_and_integer_results_stop_gradients() {
    let w = tensor!([1.0, 2.0]).requires_grad_();
    let inside = tenjit::no_grad(|| &w * 2.0);
    assert!(!inside.requires_grad());
    assert!(!tenjit::is_grad_enabled() || tenjit::no_grad(|| !tenjit::is_grad_enabled()));
    assert!(!w.detach().requires_grad());
    assert!(!w.argmax().requires_grad());
    assert!(!w.gt(1.0).requires_grad());
    let y = (&w * w.detach()).sum();
    y.backward();
    assert_eq!(w.grad().unwrap().to_vec::<f32>(), vec![1.0, 2.0], "the detached factor is a constant");
    let guard = tenjit::NoGradGuard::new();
    assert!(!(&w + 1.0).requires_grad());
    drop(guard);
    assert!((&w + 1.0).requires_grad());
}

#[test]
fn printing_shows_requires_grad_and_grad_fn() {
    let w = tensor!([1.0, 2.0]).requires_grad_();
    assert_eq!(w.to_string(), "tensor([1., 2.], requires_grad=True)");
    assert_eq!((&w * 2.0).to_string(), "tensor([2., 4.], grad_fn=<MulBackward0>)");
}

#[test]
fn a_computed_loss_still_backpropagates() {
    // Reading the loss first (as a training loop printing it does) keeps its graph.
    let w = tensor!([3.0]).requires_grad_();
    let loss = (&w * &w).sum();
    assert_eq!(loss.item(), 9.0);
    loss.backward();
    assert_eq!(w.grad().unwrap().to_vec::<f32>(), vec![6.0]);
}

#[test]
fn broadcast_gradients_sum_back_to_the_operand_shape() {
    let col = tensor!([[1.0], [2.0]]).requires_grad_(); // [2, 1]
    let row = tensor!([10.0, 20.0, 30.0]).requires_grad_(); // [3]
    let y = (&col * &row).sum();
    y.backward();
    assert_eq!(col.grad().unwrap().shape(), &[2, 1]);
    assert_eq!(col.grad().unwrap().to_vec::<f32>(), vec![60.0, 60.0]);
    assert_eq!(row.grad().unwrap().to_vec::<f32>(), vec![3.0, 3.0, 3.0]);
}

#[test]
fn max_reductions_share_the_gradient_among_ties() {
    let x = tensor!([1.0, 3.0, 3.0, 2.0]).requires_grad_();
    x.max().backward();
    assert_eq!(x.grad().unwrap().to_vec::<f32>(), vec![0.0, 0.5, 0.5, 0.0]);
}

#[test]
fn max_dim_sends_the_gradient_to_the_index_as_torch() {
    let x = tensor!([[1.0, 3.0, 3.0], [5.0, 4.0, 5.0]]).requires_grad_();
    let (v, i) = x.max_dim(1, false);
    assert_eq!(v.to_vec::<f32>(), vec![3.0, 5.0]);
    assert_eq!(i.to_vec::<i64>(), vec![1, 0]);
    v.sum().backward();
    assert_eq!(x.grad().unwrap().to_vec::<f32>(), vec![0.0, 1.0, 0.0, 1.0, 0.0, 0.0]);
    let (v, _) = x.max_dim(0, true);
    assert_eq!(v.shape(), &[1, 3]);
}
