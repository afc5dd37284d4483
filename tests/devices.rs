//! Devices through the Tensor API: `to`, `.cuda()`, `.cpu()`, `tenjit::cuda::is_available()`,
//! mixing devices, and values computed on a GPU against the CPU.
//!
//! On a machine without CUDA (CI), the first tests check that every way of asking for a GPU
//! is a clear error and never a panic or an abort. The tests marked `#[ignore]` need an NVIDIA
//! GPU and its driver: run them there with `cargo test --test devices -- --ignored`.

use tenjit::prelude::*;

#[test]
fn without_a_gpu_asking_for_one_is_a_clear_error() {
    if tenjit::cuda::is_available() {
        return; // A GPU machine runs the ignored tests below instead.
    }
    assert_eq!(tenjit::cuda::device_count(), 0);
    let x = Tensor::arange(4).to_dtype(DType::F32);
    let e = x.try_to(Device::Cuda(0)).unwrap_err().to_string();
    assert!(e.contains("cuda:0 is not available") && e.contains("is_available() is false"), "{e}");
    // The panicking form says the same.
    let p = std::panic::catch_unwind(|| Tensor::zeros([2]).cuda()).unwrap_err();
    let msg = p.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("cuda:0 is not available"), "{msg}");
    // The CPU path is untouched.
    assert_eq!((&x * 2.0).to_vec::<f32>(), [0.0, 2.0, 4.0, 6.0]);
    assert_eq!(x.cpu().device(), Device::Cpu);
}

const GPU: &str = "needs an NVIDIA GPU and driver; run with --ignored on a GPU machine";

fn close(a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol * (1.0 + y.abs()) || x.is_nan() && y.is_nan(),
            "element {i}: {x} vs {y}"
        );
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU and driver; run with --ignored on a GPU machine"]
fn values_round_trip_and_compute_on_the_gpu() {
    assert!(tenjit::cuda::is_available(), "{GPU}");
    let x = Tensor::randn([64, 33]).realize().clone();
    let g = x.cuda();
    assert_eq!(g.device(), Device::Cuda(0));
    assert_eq!(g.cpu().to_vec::<f32>(), x.to_vec::<f32>());
    // Elementwise, reductions, softmax, matmul: the same values as on the CPU.
    let on = |t: &Tensor| {
        let e = (t - t.amax(1, true)).exp();
        let sm = &e / e.sum_dim(1, true);
        let mm = t.matmul(&t.t());
        (sm, mm, t.sin() + t.cos().pow(2), t.argmax_dim(1, false))
    };
    let (a, b, c, d) = on(&x);
    let (ga, gb, gc, gd) = on(&g);
    assert_eq!(ga.device(), Device::Cuda(0));
    close(&ga.to_vec::<f32>(), &a.to_vec::<f32>(), 1e-5);
    close(&gb.to_vec::<f32>(), &b.to_vec::<f32>(), 1e-4);
    close(&gc.to_vec::<f32>(), &c.to_vec::<f32>(), 1e-6);
    assert_eq!(gd.to_vec::<i64>(), d.to_vec::<i64>());
    // Printing a GPU tensor copies it back and says where it lives.
    assert!(g.sum().to_string().contains("device='cuda:0'"), "{}", g.sum());
}

#[test]
#[ignore = "needs an NVIDIA GPU and driver; run with --ignored on a GPU machine"]
fn scalars_and_masks_go_to_the_device_of_what_they_meet() {
    assert!(tenjit::cuda::is_available(), "{GPU}");
    // Rust numbers, `arange`-built masks and constants are computed where their consumer is.
    let x = Tensor::randn([2, 5, 5]).realize().clone();
    let on = |t: &Tensor| {
        let scores = (t * 0.37 + 1.0).masked_fill(&Tensor::ones([5, 5]).triu(1).to_dtype(DType::Bool), -1e9);
        let attn = tenjit::nn::scaled_dot_product_attention(
            t,
            t,
            t,
            tenjit::nn::Attention { is_causal: true, ..Default::default() },
        );
        (scores, attn, t.tril(0) + Tensor::full([5], 2.0))
    };
    let (a, b, c) = on(&x);
    let (ga, gb, gc) = on(&x.cuda());
    for (g, c) in [(&ga, &a), (&gb, &b), (&gc, &c)] {
        assert_eq!(g.device(), Device::Cuda(0));
        close(&g.to_vec::<f32>(), &c.to_vec::<f32>(), 1e-5);
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU and driver; run with --ignored on a GPU machine"]
fn mixing_devices_is_an_error_and_gradients_work_on_the_gpu() {
    assert!(tenjit::cuda::is_available(), "{GPU}");
    let a = Tensor::ones([3]);
    let b = Tensor::ones([3]).cuda();
    let e = a.try_add(&b).unwrap_err().to_string();
    assert!(e.contains("different devices") && e.contains("cuda:0"), "{e}");
    let w = Tensor::randn([4, 2]).cuda().requires_grad_();
    let x = Tensor::randn([8, 4]).cuda();
    let loss = x.matmul(&w).relu().pow(2).mean();
    loss.backward();
    let grad = w.grad().expect("a gradient");
    assert_eq!(grad.device(), Device::Cuda(0));
    let (wc, xc) = (w.detach().cpu().requires_grad_(), x.cpu());
    xc.matmul(&wc).relu().pow(2).mean().backward();
    close(&grad.to_vec::<f32>(), &wc.grad().unwrap().to_vec::<f32>(), 1e-5);
}

#[test]
#[ignore = "needs an NVIDIA GPU and driver; run with --ignored on a GPU machine"]
fn gradients_flow_back_through_device_moves() {
    assert!(tenjit::cuda::is_available(), "{GPU}");
    // A CPU leaf moved to the GPU, a loss there: the gradient comes back to the CPU leaf, as
    // the same loss computed on the CPU gives it; and the other way, a GPU leaf moved to the
    // CPU; and the second derivative through the move.
    let data = Tensor::randn([4, 33]).realize().to_vec::<f32>();
    let loss = |t: &Tensor| {
        let e = (t - t.amax(1, true)).exp();
        (&e / e.sum_dim(1, true) * t.sin()).sum()
    };
    let x = Tensor::from_vec(data.clone(), [4, 33]).requires_grad_();
    let cpu = tenjit::grad(&[&loss(&x)], &[&x])[0].to_vec::<f32>();
    let g = x.cuda();
    assert!(g.requires_grad() && !g.is_leaf());
    loss(&g).backward();
    let back = x.grad().expect("the CPU leaf has a gradient through the move");
    assert_eq!(back.device(), Device::Cpu);
    close(&back.to_vec::<f32>(), &cpu, 1e-5);

    let xg = Tensor::from_vec(data.clone(), [4, 33]).cuda().requires_grad_();
    let dx = tenjit::grad(&[&loss(&xg.cpu())], &[&xg]);
    assert_eq!(dx[0].device(), Device::Cuda(0));
    close(&dx[0].to_vec::<f32>(), &cpu, 1e-5);

    let x = Tensor::from_vec(data, [4, 33]).requires_grad_();
    let cube = |t: &Tensor| (t * t * t).sum();
    let opts = tenjit::GradOptions { create_graph: true, ..Default::default() };
    let d1 = tenjit::grad_with(&[&cube(&x.cuda())], &[&x], opts).unwrap();
    let d2 = tenjit::grad(&[&d1[0].sum()], &[&x]);
    let want: Vec<f32> = x.to_vec::<f32>().iter().map(|v| 6.0 * v).collect();
    close(&d2[0].to_vec::<f32>(), &want, 1e-5);
}
