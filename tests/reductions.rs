//! Reductions whose compiled form differs from their definition: the one-pass variance (the
//! shifted two-moment form of `Tensor::var_dim` over trailing dims) and the row groups that
//! run its two sums together, or the row sums of independent full reductions of one matrix. Each case is checked against a two-pass variance computed here
//! in `f64` from the tensor's elements (independent of tenjit), on the CPU backend and in the
//! interpreter, over lengths around the vector width (0, 1, 3, 4, 5, 7), odd lengths, `f64`,
//! large offsets, constant data and NaN/inf.

use tenjit::prelude::*;

#[path = "common/on_both.rs"]
mod on_both;
use on_both::on_both;

/// A deterministic pseudo-random sequence in `[-1, 1)` (a 64-bit LCG's top bits).
fn noise(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 11) as f64 / (1u64 << 52) as f64 - 1.0
        })
        .collect()
}

/// The variance of each row of `data` (rows of `len`), two-pass in `f64`, divided by
/// `max(0, len - correction)`.
fn rows_var(data: &[f64], len: usize, correction: f64) -> Vec<f64> {
    data.chunks(len.max(1))
        .map(|row| {
            let mean = row.iter().sum::<f64>() / len as f64;
            let ss: f64 = row.iter().map(|x| (x - mean) * (x - mean)).sum();
            ss / (len as f64 - correction).max(0.0)
        })
        .collect()
}

/// Checks `got` against `want` to relative tolerance `tol` (NaN against NaN, inf against inf).
fn close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = (g.is_nan() && w.is_nan()) || g == w || (g - w).abs() <= tol * w.abs().max(1e-30);
        assert!(ok, "{what}: element {i}: got {g}, want {w}");
    }
}

/// `x` as a tensor of `shape` and `dtype` (f32 rounds the values, and the reference reads the
/// rounded ones back).
fn tensor(x: &[f64], shape: &[usize], dtype: DType) -> (Tensor, Vec<f64>) {
    let t = Tensor::from_vec(x.to_vec(), shape.to_vec()).to_dtype(dtype).realize().clone();
    let back = t.to_dtype(DType::F64).to_vec::<f64>();
    (t, back)
}

#[test]
fn row_variances_match_a_two_pass_reference() {
    on_both(|backend| {
        for dtype in [DType::F32, DType::F64] {
            let tol = if dtype == DType::F32 { 2e-5 } else { 1e-12 };
            for len in [1usize, 3, 4, 5, 7, 8, 9, 33, 1027] {
                for correction in [0.0, 1.0] {
                    let rows = 5;
                    let (x, data) = tensor(&noise(rows * len, len as u64), &[rows, len], dtype);
                    let what = format!("{backend:?} {dtype} [{rows}, {len}] correction {correction}");
                    let got = x.var_dim(1, correction, false);
                    assert_eq!(got.dtype(), dtype, "{what}");
                    close(
                        &got.to_dtype(DType::F64).to_vec::<f64>(),
                        &rows_var(&data, len, correction),
                        tol,
                        &what,
                    );
                    let std = x.std_dim(-1, correction, true);
                    assert_eq!(std.shape(), &[rows, 1], "{what}");
                    let want: Vec<f64> = rows_var(&data, len, correction).iter().map(|v| v.sqrt()).collect();
                    close(&std.to_dtype(DType::F64).to_vec::<f64>(), &want, tol, &what);
                }
            }
        }
    });
}

#[test]
fn variance_over_all_and_trailing_dims() {
    on_both(|backend| {
        let (x, data) = tensor(&noise(2 * 3 * 5, 9), &[2, 3, 5], DType::F32);
        let what = format!("{backend:?}");
        close(&x.var().to_dtype(DType::F64).to_vec::<f64>(), &rows_var(&data, 30, 1.0), 2e-5, &what);
        let got = x.var_dim([1, 2], 0.0, true);
        assert_eq!(got.shape(), &[2, 1, 1], "{what}");
        close(&got.to_dtype(DType::F64).to_vec::<f64>(), &rows_var(&data, 15, 0.0), 2e-5, &what);
        // A leading dim takes the two-pass form; it must agree too.
        let cols = x.reshape([2, 15]).var_dim(0, 1.0, false).to_dtype(DType::F64).to_vec::<f64>();
        let t: Vec<f64> = (0..15).flat_map(|j| [data[j], data[15 + j]]).collect();
        close(&cols, &rows_var(&t, 2, 1.0), 2e-5, &what);
        // A scalar's variance is over no elements but itself.
        let s = Tensor::from_vec(vec![3.0f32], vec![]);
        close(
            &s.var_dim(Vec::<isize>::new(), 0.0, false).to_dtype(DType::F64).to_vec::<f64>(),
            &[0.0],
            0.0,
            &what,
        );
    });
}

#[test]
fn large_variances_run_one_pass_and_stay_accurate() {
    // Past split-reduce's threshold (2^18 elements): the two sums are split into row sums that
    // run as one row group. The offset of 1000 is 3000 standard deviations: a plain
    // Σx² - (Σx)²/N would lose every digit in f32; the shift by the first element keeps them.
    on_both(|backend| {
        let (rows, len) = (256, 1029);
        let raw: Vec<f64> = noise(rows * len, 5).iter().map(|v| 1000.0 + v).collect();
        let (x, data) = tensor(&raw, &[rows, len], DType::F32);
        let what = format!("{backend:?}");
        let all = x.std_dim([0, 1], 1.0, false).to_dtype(DType::F64).to_vec::<f64>();
        close(&all, &[rows_var(&data, rows * len, 1.0)[0].sqrt()], 2e-5, &what);
        let per_row = x.var_dim(1, 0.0, false).to_dtype(DType::F64).to_vec::<f64>();
        close(&per_row, &rows_var(&data, len, 0.0), 2e-5, &what);
    });
}

#[test]
fn variance_edge_values() {
    on_both(|backend| {
        for dtype in [DType::F32, DType::F64] {
            let what = format!("{backend:?} {dtype}");
            let var = |v: Vec<f64>, correction: f64| {
                let n = v.len();
                Tensor::from_vec(v, vec![n])
                    .to_dtype(dtype)
                    .var_dim(0, correction, false)
                    .to_dtype(DType::F64)
                    .item()
            };
            // Constant data has variance exactly 0 (never a rounding below it, so std is 0).
            assert_eq!(var(vec![0.1; 1001], 1.0), 0.0, "{what}");
            let c = Tensor::from_vec(vec![0.7f64; 37], vec![37]).to_dtype(dtype);
            assert_eq!(c.std().to_dtype(DType::F64).item(), 0.0, "{what}");
            // One element: 0/0 with Bessel's correction, 0 without; none: NaN either way.
            assert!(var(vec![2.5], 1.0).is_nan(), "{what}");
            assert_eq!(var(vec![2.5], 0.0), 0.0, "{what}");
            assert!(var(vec![], 0.0).is_nan(), "{what}");
            // A NaN anywhere, first or not, makes the variance NaN; so does an infinity.
            let mut v = noise(13, 1);
            v[6] = f64::NAN;
            assert!(var(v.clone(), 1.0).is_nan(), "{what}");
            v[6] = 0.5;
            v[0] = f64::NAN;
            assert!(var(v.clone(), 1.0).is_nan(), "{what}");
            v[0] = f64::INFINITY;
            assert!(var(v, 1.0).is_nan(), "{what}");
        }
    });
}

#[test]
fn independent_full_reductions_of_one_matrix_share_a_row_group() {
    // sum(x) and sum(x * x) (and mean with std) past split-reduce's threshold: each is split
    // into row sums and a total, and the second row sum moves up past the first total, so all
    // the row sums run as one row group reading x once. Values against sums computed here.
    on_both(|backend| {
        let (rows, len) = (512, 515);
        let (x, data) = tensor(&noise(rows * len, 9), &[rows, len], DType::F32);
        let what = format!("{backend:?}");
        let (s, sq) = (x.sum(), (&x * &x).sum());
        let list = tenjit::inspect(&[&s, &sq]).kernels().to_string();
        assert!(list.contains("group g0 rows=512  ; 2 steps"), "{list}");
        let list = tenjit::inspect(&[&x.mean(), &x.std()]).kernels().to_string();
        assert!(list.contains("group g0 rows=512  ; 3 steps"), "{list}");
        tenjit::realize(&[&s, &sq]);
        let want_s: f64 = data.iter().sum();
        let want_sq: f64 = data.iter().map(|v| v * v).sum();
        close(&s.to_dtype(DType::F64).to_vec::<f64>(), &[want_s], 1e-4, &what);
        close(&sq.to_dtype(DType::F64).to_vec::<f64>(), &[want_sq], 1e-5, &what);
    });
}
