//! The CPU compiler seen through the Tensor API: how many kernels the tutorial's graphs,
//! softmax and a Linear+ReLU layer become (the minimum a hand-written version would have),
//! and snapshots of their kernel lists and kernel IR.

use tenjit::prelude::*;

fn leaf(shape: &[usize]) -> Tensor {
    Tensor::rand(shape.to_vec()).realize().clone()
}

#[test]
fn row_softmax_is_one_pass_that_computes_exp_once() {
    // max per row; exp(x - max); its sum per row; exp(x - max) / sum. A hand-written softmax
    // makes one pass over the rows and computes exp once per element; so does this: the four
    // kernels are one row group (each block of rows stays in cache from kernel to kernel),
    // and exp(x - max) is computed by one kernel into a row-local buffer.
    let x = leaf(&[4, 8]);
    let e = (&x - x.amax(1, true)).exp();
    let softmax = &e / e.sum_dim(1, true);
    let stages = tenjit::inspect(&[&softmax]);
    assert_eq!(stages.kernel_count(), 4, "{}", stages.kernels());
    assert_eq!(stages.pass_count(), 1, "{}", stages.kernels());
    assert_eq!(stages.kernel_ir().matches(" exp ").count(), 1, "{}", stages.kernel_ir());
    insta::assert_snapshot!("softmax_kernels", stages.kernels());
    insta::assert_snapshot!("softmax_kernel_ir", stages.kernel_ir());
    let rows = softmax.sum_dim(1, false).to_vec::<f32>();
    assert!(rows.iter().all(|s| (s - 1.0).abs() < 1e-6), "{rows:?}");
}

#[test]
fn normalization_is_three_kernels() {
    // The column mean; the variance with its sqrt and + 1e-8 in the epilogue; the final
    // elementwise (x - mean) / (std + 1e-8). CSE shares the mean between its two uses.
    let data = leaf(&[100, 3]);
    let normalized = (&data - data.mean_dim(0, true)) / (data.std_dim(0, 1.0, true) + 1e-8);
    let stages = tenjit::inspect(&[&normalized]);
    assert_eq!(stages.kernel_count(), 3, "{}", stages.kernels());
    insta::assert_snapshot!("normalization_kernels", stages.kernels());
    insta::assert_snapshot!("normalization_kernel_ir", stages.kernel_ir());
}

#[test]
fn sin_plus_cos_squared_is_one_kernel() {
    let x = leaf(&[1000]);
    let y = x.sin() + x.cos().pow(2);
    let stages = tenjit::inspect(&[&y]);
    assert_eq!(stages.kernel_count(), 1, "{}", stages.kernels());
    insta::assert_snapshot!("sincos_kernel_ir", stages.kernel_ir());
}

#[test]
fn linear_relu_is_a_matmul_and_one_kernel() {
    let x = leaf(&[8, 16]);
    let w = leaf(&[16, 4]);
    let b = leaf(&[4]);
    let y = (x.matmul(&w) + &b).relu();
    let stages = tenjit::inspect(&[&y]);
    assert_eq!(stages.kernel_count(), 2, "{}", stages.kernels());
    assert_eq!(stages.fused_kernel_count(), 1);
    // The epilogue runs on each block of rows the GEMM has just produced, so the product
    // itself is never stored in full.
    assert_eq!(stages.pass_count(), 1, "{}", stages.kernels());
    assert_eq!(stages.program().groups[0].local.len(), 1);
    assert_eq!(stages.memory().total_bytes, 8 * 4 * 4, "only the output is allocated");
    insta::assert_snapshot!("linear_relu_kernels", stages.kernels());
    insta::assert_snapshot!("linear_relu_kernel_ir", stages.kernel_ir());
}

#[test]
fn tutorial_graphs() {
    let a = tensor!([1.0, 2.0, 3.0]);
    let b = tensor!([4.0, 5.0, 6.0]);
    let w = tensor!([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]]);
    let x = tensor!([[1., 2.], [3., 4.]]);
    let cases = [
        ("tutorial_elementwise", tenjit::inspect(&[&((&a * &b + 1.0).sqrt())])),
        ("tutorial_matvec", tenjit::inspect(&[&w.matmul(&a)])),
        ("tutorial_sums", tenjit::inspect(&[&x.sum(), &x.sum_dim(0, false), &x.sum_dim(1, false)])),
        ("tutorial_mean_std", tenjit::inspect(&[&x.mean(), &x.std()])),
    ];
    for (name, stages) in cases {
        insta::assert_snapshot!(name, format!("{}\n{}", stages.kernels(), stages.kernel_ir()));
    }
}

#[test]
fn passes_show_in_the_stages() {
    let x = leaf(&[3]);
    let y = (&x * 1.0 + &x * 1.0).exp();
    let stages = tenjit::inspect(&[&y]);
    let names: Vec<&str> = stages.passes().iter().map(|(n, _)| *n).collect();
    assert_eq!(names, ["sink-slices", "transpose-products", "simplify", "cse", "dce", "split-reduce"]);
    // x * 1 is gone and the two products are one.
    assert!(!stages.optimized().contains("mul"), "{}", stages.optimized());
    assert!(stages.graph().contains("mul"));
    assert!(stages.clif().contains("function"));
}

#[test]
fn compiled_values_match_the_interpreter_on_the_tutorial() {
    let x = tensor!([[1., 2.], [3., 4.]]);
    assert_eq!(x.sum_dim(0, false).to_string(), "tensor([4., 6.])");
    assert_eq!(x.std().to_string(), "tensor(1.2910)");
    let t = Tensor::arange(10);
    assert_eq!(t.masked_select(&t.gt(5)).to_string(), "tensor([6, 7, 8, 9])");
    // A large f32 sum compiled with vector accumulators stays accurate.
    let n = 10_000_000;
    let v = (Tensor::arange(n as i64).remainder(1000).to_dtype(DType::F32) / 1000.0).realize().clone();
    let exact: f64 = (0..n).map(|i| ((i % 1000) as f32 / 1000.0) as f64).sum();
    let got = v.sum().item();
    assert!(((got - exact) / exact).abs() < 1e-6, "sum {got} vs {exact}");
}

#[test]
fn the_last_position_of_a_sequence_is_computed_alone() {
    // `model(x)[:, -1]`, as greedy generation asks for it: the slice sinks through the head,
    // the MLP and the residual add, so they run on one row; the first product stays whole
    // because the returned hidden state needs all of it.
    let x = leaf(&[1, 16, 8]);
    let (w1, w2, head) = (leaf(&[32, 8]), leaf(&[8, 32]), leaf(&[5, 8]));
    let h = x.matmul(&w1.t());
    let y = &x + tenjit::nn::gelu(&h, tenjit::nn::Approximate::None).matmul(&w2.t());
    let logits = y.matmul(&head.t());
    let last = logits.i(s![0, -1]);
    let stages = tenjit::inspect(&[&last, &h]);
    let kernels = stages.kernels();
    assert!(kernels.contains("[16,8]x[8,32]"), "{kernels}");
    assert!(kernels.contains("[1,32]x[32,8]") && kernels.contains("[1,8]x[8,5]"), "{kernels}");
    // The values are the last row of the whole computation (the passes' bit-for-bit equality
    // with the interpreter is `ir/tests/sink_slices.rs`'s).
    let want = logits.to_vec::<f32>();
    let got = last.to_vec::<f32>();
    for (j, g) in got.iter().enumerate() {
        let w = want[15 * 5 + j];
        assert!((g - w).abs() <= 1e-5 * (1.0 + w.abs()), "{j}: {g} against {w}");
    }
}

#[test]
fn an_mlp_forward_pass_keeps_its_activations_row_local() {
    // Two layers: every row of the batch goes through both matmuls and both ReLUs before the
    // next block of rows starts, so no hidden activation is ever stored in full.
    let x = leaf(&[64, 32]);
    let (w1, w2) = (leaf(&[32, 32]), leaf(&[32, 8]));
    let h = x.matmul(&w1).relu();
    let y = h.matmul(&w2).relu().sum_dim(1, false);
    let stages = tenjit::inspect(&[&y]);
    assert_eq!(stages.pass_count(), 1, "{}", stages.kernels());
    let plan = stages.memory();
    assert_eq!(plan.total_bytes, 64 * 4, "{plan:?}\n{}", stages.kernels());
    // The values are right with buffers released and recycled during the run.
    let got = y.to_vec::<f32>();
    let (xv, w1v, w2v) = (x.to_vec::<f32>(), w1.to_vec::<f32>(), w2.to_vec::<f32>());
    for r in 0..64 {
        let mut total = 0.0f64;
        for o in 0..8 {
            let mut acc = 0.0f64;
            for j in 0..32 {
                let hj: f64 =
                    (0..32).map(|k| xv[r * 32 + k] as f64 * w1v[k * 32 + j] as f64).sum::<f64>().max(0.0);
                acc += hj * w2v[j * 8 + o] as f64;
            }
            total += acc.max(0.0);
        }
        assert!((got[r] as f64 - total).abs() < 1e-3 * total.max(1.0), "row {r}: {} vs {total}", got[r]);
    }
}

#[test]
fn temporaries_are_reused_once_dead() {
    // Each layer reads the one before transposed, so no two steps share rows and nothing
    // groups across layers: each hidden activation is a full buffer, dead once read.
    let x = leaf(&[16, 16]);
    let h1 = x.matmul(&x).relu();
    let h2 = h1.t().matmul(&x).relu();
    let h3 = h2.t().matmul(&x).relu();
    let y = h3.t().sum_dim(1, false);
    let stages = tenjit::inspect(&[&y]);
    let plan = stages.memory();
    assert!(plan.peak_bytes < plan.total_bytes, "{plan:?}\n{}", stages.kernels());
    let xv: Vec<f64> = x.to_vec::<f32>().into_iter().map(f64::from).collect();
    let layer = |a: &[f64], transposed: bool| -> Vec<f64> {
        let at = |r: usize, c: usize| if transposed { a[c * 16 + r] } else { a[r * 16 + c] };
        let mut out = vec![0.0; 256];
        for r in 0..16 {
            for c in 0..16 {
                out[r * 16 + c] = (0..16).map(|k| at(r, k) * xv[k * 16 + c]).sum::<f64>().max(0.0);
            }
        }
        out
    };
    let h3v = layer(&layer(&layer(&xv, false), true), true);
    let got = y.to_vec::<f32>();
    for (c, g) in got.iter().enumerate() {
        let want: f64 = (0..16).map(|r| h3v[r * 16 + c]).sum();
        assert!((*g as f64 - want).abs() < 1e-4 * want.max(1.0), "column {c}: {g} vs {want}");
    }
}

#[test]
fn a_linear_weights_update_reads_its_gradient_in_the_weights_layout() {
    // `x @ Wᵀ` with W of [out, in]: autodiff gives W's gradient as (xᵀ @ dy)ᵀ. The
    // transpose-products pass computes it as dyᵀ @ x, so the SGD update reads the gradient
    // row by row like W (a load map `i0*64 + i1`), not by columns (`i0 + i1*48`); the values
    // match the interpreter's.
    let x = leaf(&[32, 64]);
    let w = leaf(&[48, 64]).requires_grad_();
    let loss = x.matmul(&w.t()).square().sum();
    let g = tenjit::grad(&[&loss], &[&w]);
    let updated = &w.detach() - &g[0] * 0.1;
    let stages = tenjit::inspect(&[&updated]);
    let names: Vec<&str> = stages.passes().iter().map(|(n, _)| *n).collect();
    assert!(names.contains(&"transpose-products"), "{names:?}");
    let ir = stages.kernel_ir();
    assert!(!ir.contains("i0 + i1*48]"), "{ir}");
    assert!(ir.contains("[i0*64 + i1]"), "{ir}");
    let got = updated.to_vec::<f32>();
    tenjit::set_backend(tenjit::Backend::Interp);
    let want =
        (&w.detach() - &tenjit::grad(&[&x.matmul(&w.t()).square().sum()], &[&w])[0] * 0.1).to_vec::<f32>();
    tenjit::set_backend(tenjit::Backend::Cpu);
    for (i, (a, b)) in got.iter().zip(&want).enumerate() {
        assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "element {i}: {a} against {b}");
    }
}
