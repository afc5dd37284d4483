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

/// A program with several parallel steps (here a row group and a matrix product) runs on a
/// worker of the pool (its steps then share
/// their work without waking the caller), one with none on the caller; both compute what the
/// interpreter does.
#[test]
fn programs_with_parallel_steps_run_on_the_workers() {
    use std::sync::Arc;
    use tenjit::backend::cpu::exec::{threads, CpuExecutable};
    use tenjit::ir::kernel::lower::lower;
    use tenjit::ir::{interp, text::parse, Buffer, DType, Scalar, Shape, TensorType};
    let big = parse(
        "graph @f(%a: f32[256,256], %b: f32[256,256]) {
           %0 = matmul %a, %b : f32[256,256]
           %1 = tanh %0 : f32[256,256]
           %2 = permute %1, perm=[1,0] : f32[256,256]
           %3 = matmul %2, %b : f32[256,256]
           return %3
         }",
    )
    .unwrap();
    let small = parse("graph @g(%a: f32[8]) {\n  %0 = exp %a : f32[8]\n  return %0\n}").unwrap();
    let exe = CpuExecutable::compile(lower(&big)).unwrap();
    assert_eq!(exe.runs_on_workers(), threads() > 1);
    assert!(!CpuExecutable::compile(lower(&small)).unwrap().runs_on_workers());
    let ty = TensorType::new(DType::F32, Shape::new(&[256, 256]));
    let values = |k: f64| (0..256 * 256).map(move |i| Scalar::Float(((i as f64) * k).sin() * 0.05));
    let a = Buffer::from_scalars(DType::F32, ty.shape.clone(), values(0.37));
    let b = Buffer::from_scalars(DType::F32, ty.shape.clone(), values(0.11));
    let got = exe.run(&[Arc::new(a.clone()), Arc::new(b.clone())]).unwrap();
    let want = interp::eval(&big, &[a, b]).unwrap();
    let (g, w) = (got[0].as_slice::<f32>().unwrap(), want[0].as_slice::<f32>().unwrap());
    assert!(
        g.iter().zip(w).all(|(x, y)| (x - y).abs() <= 1e-4 * (1.0 + y.abs())),
        "differs from the interpreter"
    );
}
