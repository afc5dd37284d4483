//! Reductions over a row group's rows split into parts that run inside the group
//! (`tenjit_ir::kernel::parts`): a linear model's training step reads `X` once (the forward
//! product, the error, the gradient's product `Xᵀ @ err`, the bias gradient and the loss on
//! each block of rows), column sums, maxima and integer sums over many rows, and the sizes
//! that do not split. Every case is checked against values computed here in `f64` from the
//! tensors' elements, on the CPU backend (in its default blocks and in forced small blocks,
//! which the parts round up) and in the interpreter.

use tenjit::prelude::*;

#[path = "common/on_both.rs"]
mod on_both;
use on_both::on_both;

#[path = "common/rng.rs"]
mod rng;

/// `n` deterministic pseudo-random values in `[-1, 1)`.
fn noise(n: usize, seed: u64) -> Vec<f64> {
    let mut r = rng::Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    (0..n).map(|_| 2.0 * r.unit() - 1.0).collect()
}

/// `f32` values as a tensor of `dims`, and the same values (rounded to `f32`) in `f64`.
fn tensor(values: &[f64], dims: &[usize]) -> (Tensor, Vec<f64>) {
    let v: Vec<f32> = values.iter().map(|&x| x as f32).collect();
    let exact = v.iter().map(|&x| x as f64).collect();
    (Tensor::from_vec(v, dims), exact)
}

/// Checks `got` against `want` to relative tolerance `tol` of the largest `|want|`.
fn close(got: &Tensor, want: &[f64], tol: f64, what: &str) {
    let got = got.to_dtype(DType::F64).to_vec::<f64>();
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let scale = want.iter().fold(1.0f64, |m, w| m.max(w.abs()));
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol * scale, "{what}: element {i} is {g}, want {w}");
    }
}

/// One SGD step of linear regression on `x` (`[n, d]`), `y` (`[n, 1]`), with `w` and `b`:
/// the loss, `w'` and `b'`, computed here in `f64`.
fn linreg_step(x: &[f64], y: &[f64], w: &[f64], b: f64, n: usize, d: usize, lr: f64) -> (f64, Vec<f64>, f64) {
    let err: Vec<f64> = (0..n).map(|i| (0..d).map(|j| x[i * d + j] * w[j]).sum::<f64>() + b - y[i]).collect();
    let loss = err.iter().map(|e| e * e).sum::<f64>() / n as f64;
    let gw: Vec<f64> =
        (0..d).map(|j| (0..n).map(|i| 2.0 * err[i] * x[i * d + j]).sum::<f64>() / n as f64).collect();
    let gb = err.iter().sum::<f64>() * 2.0 / n as f64;
    (loss, w.iter().zip(&gw).map(|(w, g)| w - lr * g).collect(), b - lr * gb)
}

/// The linear-regression step as tenjit traces it: `[w, b] -> [w', b', loss]`.
fn step(x: &Tensor, y: &Tensor, w: &Tensor, b: &Tensor, lr: f64) -> Vec<Tensor> {
    let (w, b) = (w.detach().requires_grad_(), b.detach().requires_grad_());
    let loss = (x.matmul(&w) + &b - y).square().mean();
    let g = tenjit::grad(&[&loss], &[&w, &b]);
    vec![&w - &g[0] * lr, &b - &g[1] * lr, loss]
}

#[test]
fn a_linear_model_step_reads_x_in_one_group_with_its_gradient_sums_in_parts() {
    // 12288 rows: parts of 1024; 5000 rows: parts of 1000 (the largest divisor up to 1024).
    for (n, parts) in [(12288usize, "parts=12x1024"), (5000, "parts=5x1000")] {
        let d = 24;
        let (x, xv) = tensor(&noise(n * d, 3), &[n, d]);
        let (y, yv) = tensor(&noise(n, 4), &[n, 1]);
        let (w, wv) = tensor(&noise(d, 5).iter().map(|v| v * 0.5).collect::<Vec<_>>(), &[d, 1]);
        let (b, bv) = tensor(&[0.25], &[1]);
        let (loss, w1, b1) = linreg_step(&xv, &yv, &wv, bv[0], n, d, 0.1);
        let out = step(&x, &y, &w, &b, 0.1);
        let list = tenjit::inspect(&out.iter().collect::<Vec<_>>()).kernels().to_string();
        // One group: X @ w, the error, Xᵀ @ err over parts, and the two sums over parts.
        assert!(list.contains(&format!("group g0 rows={n} {parts}")), "{n}: {list}");
        assert!(list.contains("5 steps run row block by row block"), "{n}: {list}");
        assert_eq!(list.matches("combined after the group").count(), 2, "{n}: {list}");
        assert!(list.contains("parts' products"), "{n}: {list}");
        on_both(|backend| {
            for block in [None, Some(1), Some(700)] {
                tenjit::backend::cpu::set_block_rows(block);
                let what = format!("n={n} {backend:?} block rows {block:?}");
                let out = step(&x, &y, &w, &b, 0.1);
                tenjit::realize(&out.iter().collect::<Vec<_>>());
                close(&out[2], &[loss], 1e-5, &format!("{what}: loss"));
                close(&out[0], &w1, 1e-5, &format!("{what}: w'"));
                close(&out[1], &[b1], 1e-5, &format!("{what}: b'"));
            }
            tenjit::backend::cpu::set_block_rows(None);
        });
    }
}

#[test]
fn sizes_without_a_part_or_too_few_rows_do_not_split() {
    // 4099 rows is prime: no part divides it; 2048 rows are too few to split.
    for n in [4099usize, 2048] {
        let d = 8;
        let (x, xv) = tensor(&noise(n * d, 6), &[n, d]);
        let (y, yv) = tensor(&noise(n, 7), &[n, 1]);
        let (w, wv) = tensor(&noise(d, 8), &[d, 1]);
        let (b, _) = tensor(&[0.0], &[1]);
        let (loss, w1, _) = linreg_step(&xv, &yv, &wv, 0.0, n, d, 0.05);
        let out = step(&x, &y, &w, &b, 0.05);
        let list = tenjit::inspect(&out.iter().collect::<Vec<_>>()).kernels().to_string();
        assert!(!list.contains("parts="), "{n}: {list}");
        on_both(|backend| {
            let out = step(&x, &y, &w, &b, 0.05);
            close(&out[2], &[loss], 1e-5, &format!("n={n} {backend:?}: loss"));
            close(&out[0], &w1, 1e-5, &format!("n={n} {backend:?}: w'"));
        });
    }
}

#[test]
fn column_sums_maxima_and_integer_sums_over_many_rows_split_into_parts() {
    // h = relu(x @ W + c) over 8192 rows, then reductions over the rows of what the group
    // produced: its column sums (kept dims in the parts), its column maxima, an integer
    // count of positive entries, its mean and Hᵀ @ v (m * n = 16).
    let (n, d, k) = (8192usize, 16usize, 16usize);
    let (x, xv) = tensor(&noise(n * d, 11), &[n, d]);
    let (wm, wmv) = tensor(&noise(d * k, 12), &[d, k]);
    let (c, cv) = tensor(&noise(k, 13), &[k]);
    let (v, vv) = tensor(&noise(n, 14), &[n, 1]);
    let h: Vec<f64> = (0..n * k)
        .map(|at| {
            let (i, j) = (at / k, at % k);
            ((0..d).map(|p| xv[i * d + p] * wmv[p * k + j]).sum::<f64>() + cv[j]).max(0.0)
        })
        .collect();
    let col = |f: &dyn Fn(f64, f64) -> f64, init: f64| -> Vec<f64> {
        (0..k).map(|j| (0..n).map(|i| h[i * k + j]).fold(init, f)).collect()
    };
    let sums = col(&|a, b| a + b, 0.0);
    let maxima = col(&|a, b| a.max(b), f64::NEG_INFINITY);
    let positive = col(&|a, b| a + f64::from(b > 0.0), 0.0);
    let mean = sums.iter().sum::<f64>() / (n * k) as f64;
    let htv: Vec<f64> = (0..k).map(|j| (0..n).map(|i| h[i * k + j] * vv[i]).sum()).collect();
    let build = || {
        let h = (x.matmul(&wm) + &c).relu();
        let count = h.gt(0.0).to_dtype(DType::I64).sum_dim(0, false);
        vec![h.sum_dim(0, false), h.amax(0, false), count, h.mean(), h.t().matmul(&v)]
    };
    let out = build();
    let list = tenjit::inspect(&out.iter().collect::<Vec<_>>()).kernels().to_string();
    assert!(list.contains("rows=8192 parts=8x1024"), "{list}");
    assert!(list.matches("combined after the group").count() >= 4, "{list}");
    on_both(|backend| {
        for block in [None, Some(3)] {
            tenjit::backend::cpu::set_block_rows(block);
            let what = format!("{backend:?} block rows {block:?}");
            let out = build();
            tenjit::realize(&out.iter().collect::<Vec<_>>());
            close(&out[0], &sums, 1e-5, &format!("{what}: column sums"));
            close(&out[1], &maxima, 1e-6, &format!("{what}: column maxima"));
            assert_eq!(out[2].dtype(), DType::I64, "{what}");
            let counts: Vec<i64> = out[2].to_vec::<i64>();
            let want: Vec<i64> = positive.iter().map(|&p| p as i64).collect();
            assert_eq!(counts, want, "{what}: counts");
            close(&out[3], &[mean], 1e-5, &format!("{what}: mean"));
            close(&out[4], &htv, 1e-5, &format!("{what}: Hᵀ @ v"));
        }
        tenjit::backend::cpu::set_block_rows(None);
    });
}

#[test]
fn a_total_of_row_results_runs_in_parts_in_their_group() {
    // The row sums of x * x and their total and maximum over 8192 rows: one group, the two
    // reductions over its rows in 8 parts (the case the CUDA emulation also runs).
    let (n, d) = (8192usize, 5usize);
    let (x, xv) = tensor(&noise(n * d, 21), &[n, d]);
    let rows: Vec<f64> = xv.chunks(d).map(|r| r.iter().map(|v| v * v).sum()).collect();
    let r = (&x * &x).sum_dim(1, false);
    let (total, max) = (r.sum(), r.amax(0, false));
    let list = tenjit::inspect(&[&total, &max]).kernels().to_string();
    assert!(list.contains("group g0 rows=8192 parts=8x1024"), "{list}");
    assert!(list.contains("3 steps run row block by row block"), "{list}");
    on_both(|backend| {
        let r = (&x * &x).sum_dim(1, false);
        let (total, max) = (r.sum(), r.amax(0, false));
        close(&total, &[rows.iter().sum()], 1e-5, &format!("{backend:?}: total"));
        close(&max, &[rows.iter().copied().fold(f64::MIN, f64::max)], 1e-6, &format!("{backend:?}: max"));
    });
}
