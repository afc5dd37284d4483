//! The lazy runtime: realized tensors become leaves (bounded graphs in long loops), graphs
//! are built and realized from several threads at once, and long lazy chains neither overflow
//! the stack when traced nor when dropped.

use tenjit::prelude::*;

fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}

#[test]
fn tensor_is_send_sync_and_cheap_to_clone() {
    assert_send_sync::<Tensor>();
}

#[test]
fn long_loop_of_lazy_updates_stays_bounded() {
    let mut w = tensor!([1.0, -2.0, 3.0]);
    for step in 0..10_000 {
        w = &w - 0.01 * (2.0 * &w);
        w.realize();
        if step % 1000 == 0 {
            // Realized tensors are leaves: the graph of the next step has one input and
            // the same few nodes, whatever the step.
            let g = tenjit::graph(&[&(&w - 0.01 * (2.0 * &w))]);
            assert_eq!(g.inputs().len(), 1, "step {step}");
            assert!(g.len() <= 8, "step {step}: {} nodes", g.len());
        }
    }
    // w * 0.98^10000 underflows to (nearly) zero, computed in f32 step by step.
    let mut expected = [1.0f32, -2.0, 3.0];
    for _ in 0..10_000 {
        for v in &mut expected {
            *v -= 0.01 * (2.0 * *v);
        }
    }
    assert_eq!(w.to_vec::<f32>(), expected.to_vec());
}

#[test]
fn graphs_are_built_and_realized_from_many_threads() {
    let shared = Tensor::arange(1000).to_dtype(DType::F32);
    let handles: Vec<_> = (0..8)
        .map(|k| {
            let x = shared.clone();
            std::thread::spawn(move || {
                let y = (&x * k as f64 + 1.0).sum();
                (k, y.item())
            })
        })
        .collect();
    for h in handles {
        let (k, got) = h.join().unwrap();
        let expected: f64 = (0..1000).map(|i| (i * k) as f64 + 1.0).sum();
        assert_eq!(got, expected, "thread {k}");
    }
}

#[test]
fn one_lazy_tensor_realized_by_many_threads_agrees() {
    let x = Tensor::rand([256]);
    let y = (&x * 3.0).exp().sum();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let y = y.clone();
            std::thread::spawn(move || y.item())
        })
        .collect();
    let values: Vec<f64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(values.windows(2).all(|w| w[0] == w[1]), "{values:?}");
}

#[test]
fn long_lazy_chains_trace_and_drop_without_recursion() {
    let mut x = Tensor::zeros([2]);
    for _ in 0..50_000 {
        x = &x + 1.0;
    }
    assert_eq!(x.to_vec::<f32>(), vec![50_000.0, 50_000.0]);
    let mut y = Tensor::zeros([2]);
    for _ in 0..200_000 {
        y = &y + 1.0;
    }
    drop(y);
}

#[test]
fn shared_subexpressions_are_computed_once_per_graph() {
    let a = tensor!([1.0, 2.0]);
    let b = a.exp();
    let c = &b + &b;
    let g = tenjit::graph(&[&c]);
    let exps = g.nodes().into_iter().filter(|&n| g.op(n).name() == "exp").count();
    assert_eq!(exps, 1);
}

#[test]
fn backward_from_many_threads_loses_no_gradient() {
    // Four threads each call backward() 500 times on graphs that share one leaf: every call
    // adds 3 to each of its two elements, so the gradient sums to 4 · 500 · 2 · 3 = 12,000
    // (accumulation was once a lost update, summing to 9,500–11,900).
    let w = tensor!([1.0, 2.0]).requires_grad_();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let w = w.clone();
            std::thread::spawn(move || {
                for _ in 0..500 {
                    (&w * 3.0).sum().backward();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("a thread calling backward");
    }
    assert_eq!(w.grad().expect("a gradient").to_vec::<f32>(), vec![6000.0, 6000.0]);
}
