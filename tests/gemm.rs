//! Tests of the CPU matrix product (`tenjit::backend::cpu::gemm`) against an `f64` reference:
//! strided, transposed, broadcast, offset and negative-stride operands, degenerate sizes,
//! every numeric dtype, and the validation that turns bad steps into errors.

use std::time::Instant;
use tenjit::backend::cpu::gemm::{matmul_data, matmul_f32, matmul_f64, matmul_i32, matmul_i64};
use tenjit::ir::kernel::{MatOperand, MatmulStep};
use tenjit::ir::Data;
use tenjit::DType;

/// A deterministic pseudo-random value in [-1, 1).
fn rnd(seed: &mut u64) -> f64 {
    *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    ((*seed >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
}

fn op(offset: i64, batch_strides: Vec<i64>, row_stride: i64, col_stride: i64) -> MatOperand {
    MatOperand { buf: 0, offset, batch_strides, row_stride, col_stride }
}

fn step(
    dtype: DType,
    batch: Vec<usize>,
    m: usize,
    k: usize,
    n: usize,
    a: MatOperand,
    b: MatOperand,
) -> MatmulStep {
    MatmulStep { dtype, batch, m, k, n, a, b: MatOperand { buf: 1, ..b }, out: 2 }
}

/// Element `[bi, r, c]` offset of an operand (flat batch index, row-major over `batch`).
fn at(o: &MatOperand, batch: &[usize], mut bi: usize, r: usize, c: usize) -> usize {
    let mut x = o.offset + o.row_stride * r as i64 + o.col_stride * c as i64;
    for (&d, &s) in batch.iter().zip(&o.batch_strides).rev() {
        x += s * (bi % d) as i64;
        bi /= d;
    }
    usize::try_from(x).unwrap()
}

/// `(value, Σ|products|)` of every output element, in f64.
fn reference(s: &MatmulStep, a: &[f64], b: &[f64]) -> Vec<(f64, f64)> {
    let count: usize = s.batch.iter().product();
    let mut out = Vec::new();
    for bi in 0..count {
        for i in 0..s.m {
            for j in 0..s.n {
                let (mut v, mut scale) = (0.0, 0.0);
                for p in 0..s.k {
                    let x = a[at(&s.a, &s.batch, bi, i, p)] * b[at(&s.b, &s.batch, bi, p, j)];
                    v += x;
                    scale += x.abs();
                }
                out.push((v, scale));
            }
        }
    }
    out
}

fn out_len(s: &MatmulStep) -> usize {
    s.batch.iter().product::<usize>() * s.m * s.n
}

/// Runs `s` in f32 and f64 (and i32/i64 on small integer data) on random buffers of the given
/// lengths and compares with the reference.
fn check(s: &MatmulStep, a_len: usize, b_len: usize, threads: usize) {
    let mut seed = 0x5eed ^ ((a_len as u64) << 20) ^ b_len as u64;
    let a: Vec<f64> = (0..a_len).map(|_| rnd(&mut seed)).collect();
    let b: Vec<f64> = (0..b_len).map(|_| rnd(&mut seed)).collect();
    let n = out_len(s);

    // f32: round the inputs first so the reference sees the same values.
    let (a32, b32): (Vec<f32>, Vec<f32>) =
        (a.iter().map(|&x| x as f32).collect(), b.iter().map(|&x| x as f32).collect());
    let want = reference(
        s,
        &a32.iter().map(|&x| f64::from(x)).collect::<Vec<_>>(),
        &b32.iter().map(|&x| f64::from(x)).collect::<Vec<_>>(),
    );
    let mut got = vec![f32::NAN; n];
    matmul_f32(&MatmulStep { dtype: DType::F32, ..s.clone() }, &a32, &b32, &mut got, threads).unwrap();
    let tol = 1e-5 * (s.k.max(1) as f64).sqrt();
    for (idx, (&g, &(w, scale))) in got.iter().zip(&want).enumerate() {
        assert!(
            (f64::from(g) - w).abs() <= tol * scale + 1e-30,
            "f32 {s:?}: element {idx}: got {g}, want {w} (scale {scale})"
        );
    }

    let want = reference(s, &a, &b);
    let mut got = vec![f64::NAN; n];
    matmul_f64(&MatmulStep { dtype: DType::F64, ..s.clone() }, &a, &b, &mut got, threads).unwrap();
    let tol = 1e-13 * (s.k.max(1) as f64).sqrt();
    for (idx, (&g, &(w, scale))) in got.iter().zip(&want).enumerate() {
        assert!((g - w).abs() <= tol * scale + 1e-300, "f64 {s:?}: element {idx}: got {g}, want {w}");
    }

    // Integers: exact, small values in -8..8.
    let ai: Vec<i64> = a.iter().map(|&x| (x * 8.0).floor() as i64).collect();
    let bi: Vec<i64> = b.iter().map(|&x| (x * 8.0).floor() as i64).collect();
    let want: Vec<i64> = reference(
        s,
        &ai.iter().map(|&x| x as f64).collect::<Vec<_>>(),
        &bi.iter().map(|&x| x as f64).collect::<Vec<_>>(),
    )
    .into_iter()
    .map(|(v, _)| v as i64)
    .collect();
    let mut got = vec![-1i64; n];
    matmul_i64(&MatmulStep { dtype: DType::I64, ..s.clone() }, &ai, &bi, &mut got, threads).unwrap();
    assert_eq!(got, want, "i64 {s:?}");
    let (a3, b3): (Vec<i32>, Vec<i32>) =
        (ai.iter().map(|&x| x as i32).collect(), bi.iter().map(|&x| x as i32).collect());
    let mut got = vec![-1i32; n];
    matmul_i32(&MatmulStep { dtype: DType::I32, ..s.clone() }, &a3, &b3, &mut got, threads).unwrap();
    assert_eq!(got, want.iter().map(|&x| x as i32).collect::<Vec<_>>(), "i32 {s:?}");
}

/// A dense row-major `[batch..., m, k] x [batch..., k, n]` step.
fn dense(batch: &[usize], m: usize, k: usize, n: usize) -> (MatmulStep, usize, usize) {
    let count: usize = batch.iter().product();
    let strides = |inner: usize| {
        let mut s = vec![0i64; batch.len()];
        let mut acc = inner as i64;
        for d in (0..batch.len()).rev() {
            s[d] = acc;
            acc *= batch[d] as i64;
        }
        s
    };
    let s = step(
        DType::F32,
        batch.to_vec(),
        m,
        k,
        n,
        op(0, strides(m * k), k as i64, 1),
        op(0, strides(k * n), n as i64, 1),
    );
    (s, count * m * k, count * k * n)
}

#[test]
fn dense_sizes() {
    for &(m, k, n) in &[
        (1, 1, 1),
        (1, 7, 1),
        (1, 5, 9),
        (9, 5, 1),
        (3, 1, 4),
        (33, 17, 70),
        (33, 70, 17),
        (64, 64, 64),
        (65, 129, 31),
    ] {
        let (s, al, bl) = dense(&[], m, k, n);
        check(&s, al, bl, 1);
        check(&s, al, bl, 2);
    }
}

#[test]
fn batched_dense() {
    let (s, al, bl) = dense(&[2, 3], 5, 6, 7);
    check(&s, al, bl, 1);
    let (s, al, bl) = dense(&[4], 40, 40, 40);
    check(&s, al, bl, 2);
    // Many small matrices: exercises the batch split across threads.
    let (s, al, bl) = dense(&[300], 24, 24, 24);
    check(&s, al, bl, 3);
}

#[test]
fn large_parallel() {
    let (s, al, bl) = dense(&[], 200, 300, 150);
    check(&s, al, bl, 4);
}

#[test]
fn transposed_operands() {
    // a stored [k, m] (a^T), b stored [n, k] (b^T): row stride 1.
    let (m, k, n) = (33, 17, 70);
    let s = step(DType::F32, vec![], m, k, n, op(0, vec![], 1, m as i64), op(0, vec![], 1, k as i64));
    check(&s, m * k, k * n, 1);
    check(&s, m * k, k * n, 2);
    // Both transposed, larger (parallel path: above `gemm::PARALLEL_MIN_WORK`).
    let (m, k, n) = (150, 130, 140);
    assert!(m * k * n >= tenjit::backend::cpu::gemm::PARALLEL_MIN_WORK);
    let s = step(DType::F32, vec![], m, k, n, op(0, vec![], 1, m as i64), op(0, vec![], 1, k as i64));
    check(&s, m * k, k * n, 2);
}

#[test]
fn few_rows_by_a_matrix_stored_by_rows_split_over_threads() {
    // `x @ w.T` (b stored as [n, k]: row stride 1) with few rows and enough work to run in
    // parallel: the skinny routine on blocks of the rows, one per worker (rows that divide
    // into tiles of 4 and rows that do not), against the f64 reference.
    for &(m, k, n, threads) in &[(64, 128, 512, 2), (100, 512, 128, 2), (37, 128, 512, 3), (256, 128, 384, 2)]
    {
        assert!(m * k * n >= tenjit::backend::cpu::gemm::PARALLEL_MIN_WORK);
        let s = step(DType::F32, vec![], m, k, n, op(0, vec![], k as i64, 1), op(0, vec![], 1, k as i64));
        check(&s, m * k, k * n, threads);
        check(&s, m * k, k * n, 1);
    }
}

#[test]
fn few_rows_by_a_long_matrix_stored_by_rows_in_chunks_of_k() {
    // `x @ w.T` whose weight matrix is too large for the skinny routine at once: summed over
    // chunks of `k`, split over the workers (the CNN's fc1 shape, and lengths that leave a
    // short last chunk), against the f64 reference on one and several threads.
    for &(m, k, n) in &[(64, 9216, 128), (5, 3000, 300), (100, 5003, 96)] {
        let s = step(DType::F32, vec![], m, k, n, op(0, vec![], k as i64, 1), op(0, vec![], 1, k as i64));
        check(&s, m * k, k * n, 2);
        check(&s, m * k, k * n, 1);
    }
}

#[test]
fn broadcast_batch() {
    // a broadcast over batch (stride 0), b batched.
    let (m, k, n) = (6, 5, 4);
    let s = step(
        DType::F32,
        vec![3, 2],
        m,
        k,
        n,
        op(0, vec![0, 0], k as i64, 1),
        op(0, vec![2 * (k * n) as i64, (k * n) as i64], n as i64, 1),
    );
    check(&s, m * k, 6 * k * n, 1);
    // b broadcast over the second batch dim only.
    let s = step(
        DType::F32,
        vec![3, 2],
        m,
        k,
        n,
        op(0, vec![2 * (m * k) as i64, (m * k) as i64], k as i64, 1),
        op(0, vec![(k * n) as i64, 0], n as i64, 1),
    );
    check(&s, 6 * m * k, 3 * k * n, 2);
    // Zero strides inside a matrix (an expanded row / column).
    let s = step(DType::F32, vec![], 8, 9, 10, op(0, vec![], 0, 1), op(0, vec![], 1, 0));
    check(&s, 9, 9, 1);
}

#[test]
fn sliced_offset_operands() {
    // a = big[2:2+m, 3:3+k] of a [20, 30] buffer; b = every other column of a [k, 2n] buffer,
    // starting at column 1; batch stride larger than the matrix.
    let (m, k, n) = (11, 13, 9);
    let s = step(
        DType::F32,
        vec![2],
        m,
        k,
        n,
        op(600 + 2 * 30 + 3, vec![-600], 30, 1),
        op(5, vec![(k * 2 * n + 7) as i64], (2 * n) as i64, 2),
    );
    check(&s, 1200, 2 * (k * 2 * n + 7), 1);
}

#[test]
fn negative_strides() {
    let (m, k, n) = (7, 6, 5);
    let last_a = (m * k - 1) as i64;
    let last_b = (k * n - 1) as i64;
    // Fully reversed a (flip of both axes), b reversed along rows.
    let s = step(
        DType::F32,
        vec![],
        m,
        k,
        n,
        op(last_a, vec![], -(k as i64), -1),
        op(((k - 1) * n) as i64, vec![], -(n as i64), 1),
    );
    check(&s, m * k, k * n, 1);
    // a reversed along columns only, b along columns only.
    let s = step(
        DType::F32,
        vec![],
        m,
        k,
        n,
        op((k - 1) as i64, vec![], k as i64, -1),
        op((n - 1) as i64, vec![], n as i64, -1),
    );
    check(&s, m * k, k * n, 1);
    // a dense, b fully reversed.
    let s =
        step(DType::F32, vec![], m, k, n, op(0, vec![], k as i64, 1), op(last_b, vec![], -(n as i64), -1));
    check(&s, m * k, k * n, 1);
    // Transposed and reversed, batched with a negative batch stride; large enough to thread.
    let (m, k, n) = (40, 50, 60);
    let s = step(
        DType::F32,
        vec![2],
        m,
        k,
        n,
        op((2 * m * k - 1) as i64, vec![-((m * k) as i64)], -1, -(m as i64)),
        op((k * n - 1) as i64, vec![0], -(n as i64), -1),
    );
    check(&s, 2 * m * k, k * n, 2);
}

#[test]
fn zero_k_gives_zeros() {
    let s = step(DType::F32, vec![2], 3, 0, 4, op(0, vec![0], 0, 1), op(0, vec![0], 4, 1));
    let mut out = vec![f32::NAN; 24];
    matmul_f32(&s, &[], &[], &mut out, 2).unwrap();
    assert!(out.iter().all(|&x| x == 0.0));
    let s = MatmulStep { dtype: DType::I64, ..s };
    let mut out = vec![5i64; 24];
    matmul_i64(&s, &[], &[], &mut out, 1).unwrap();
    assert!(out.iter().all(|&x| x == 0));
    check(&step(DType::F32, vec![], 3, 0, 2, op(0, vec![], 0, 1), op(0, vec![], 2, 1)), 0, 0, 1);
}

#[test]
fn empty_dims() {
    // A 0-size batch, m = 0, n = 0: nothing read, empty output, even with empty buffers.
    for (batch, m, n) in [(vec![0], 3, 4), (vec![2, 0], 3, 4), (vec![2], 0, 4), (vec![2], 3, 0)] {
        let s = step(
            DType::F32,
            batch.clone(),
            m,
            5,
            n,
            op(0, vec![7; batch.len()], 5, 1),
            op(0, vec![7; batch.len()], n as i64, 1),
        );
        let mut out: Vec<f32> = vec![];
        let need_a = batch.iter().all(|&d| d > 0) && m > 0;
        let need_b = batch.iter().all(|&d| d > 0) && n > 0;
        let a = vec![1.0f32; if need_a { 7 * (batch[0] - 1) + 5 * m } else { 0 }];
        let b = vec![1.0f32; if need_b { 7 * (batch[0] - 1) + 5 * n } else { 0 }];
        matmul_f32(&s, &a, &b, &mut out, 2).unwrap();
        let s = MatmulStep { dtype: DType::I32, ..s };
        matmul_i32(&s, &[1; 100], &[1; 100], &mut [], 1).unwrap();
    }
}

#[test]
fn integer_wrapping_matches_interpreter() {
    // i32: the interpreter accumulates in i64 and truncates; wrapping i32 gives the same bits.
    let (m, k, n) = (2, 3, 2);
    let s = step(DType::I32, vec![], m, k, n, op(0, vec![], k as i64, 1), op(0, vec![], n as i64, 1));
    let a = [i32::MAX, i32::MIN, 7, -3, 123_456_789, i32::MAX];
    let b = [i32::MAX, 2, i32::MIN, -5, 987_654_321, 11];
    let mut got = [0i32; 4];
    matmul_i32(&s, &a, &b, &mut got, 1).unwrap();
    for i in 0..m {
        for j in 0..n {
            let want = (0..k).fold(0i64, |acc, p| {
                acc.wrapping_add(i64::from(a[i * k + p]).wrapping_mul(i64::from(b[p * n + j])))
            }) as i32;
            assert_eq!(got[i * n + j], want);
        }
    }
    let s = MatmulStep { dtype: DType::I64, ..s };
    let a64 = [i64::MAX, 3, -2, i64::MIN, 5, 6];
    let b64 = [i64::MAX, 1, 2, 3, i64::MIN, -1];
    let mut got = [0i64; 4];
    matmul_i64(&s, &a64, &b64, &mut got, 1).unwrap();
    assert_eq!(
        got[0],
        i64::MAX.wrapping_mul(i64::MAX).wrapping_add(6).wrapping_add(-2i64.wrapping_mul(i64::MIN))
    );
}

#[test]
fn data_dispatch() {
    let s = step(DType::F64, vec![], 2, 2, 2, op(0, vec![], 2, 1), op(0, vec![], 2, 1));
    let mut out = Data::F64(vec![0.0; 4]);
    matmul_data(&s, &Data::F64(vec![1., 2., 3., 4.]), &Data::F64(vec![5., 6., 7., 8.]), &mut out, 1).unwrap();
    assert_eq!(out, Data::F64(vec![19., 22., 43., 50.]));
    let mut out = Data::F32(vec![0.0; 4]);
    let err = matmul_data(&s, &Data::F64(vec![0.; 4]), &Data::F64(vec![0.; 4]), &mut out, 1).unwrap_err();
    assert!(err.to_string().contains("matmul"), "{err}");
    // Step dtype differs from the buffers'.
    let mut out = Data::F32(vec![0.0; 4]);
    assert!(matmul_data(&s, &Data::F32(vec![0.; 4]), &Data::F32(vec![0.; 4]), &mut out, 1).is_err());
}

#[test]
fn bad_steps_are_errors() {
    let good = step(DType::F32, vec![2], 3, 4, 5, op(0, vec![12], 4, 1), op(0, vec![20], 5, 1));
    let (a, b) = (vec![0f32; 24], vec![0f32; 40]);
    let mut out = vec![0f32; 30];
    matmul_f32(&good, &a, &b, &mut out, 1).unwrap();
    let cases: Vec<(&str, MatmulStep, usize, usize, usize)> = vec![
        ("a too short", good.clone(), 23, 40, 30),
        ("b too short", good.clone(), 24, 39, 30),
        ("out too short", good.clone(), 24, 40, 29),
        ("out too long", good.clone(), 24, 40, 31),
        ("a offset past end", MatmulStep { a: op(1, vec![12], 4, 1), ..good.clone() }, 24, 40, 30),
        ("negative reach", MatmulStep { a: op(0, vec![12], -4, 1), ..good.clone() }, 24, 40, 30),
        ("negative offset", MatmulStep { a: op(-1, vec![0], 0, 0), ..good.clone() }, 24, 40, 30),
        ("batch stride too big", MatmulStep { b: op(0, vec![21], 5, 1), ..good.clone() }, 24, 40, 30),
        ("batch stride count", MatmulStep { a: op(0, vec![], 4, 1), ..good.clone() }, 24, 40, 30),
        ("dtype", MatmulStep { dtype: DType::F64, ..good.clone() }, 24, 40, 30),
        ("huge stride", MatmulStep { a: op(0, vec![12], i64::MAX, 1), ..good.clone() }, 24, 40, 30),
        ("huge negative stride", MatmulStep { a: op(0, vec![i64::MIN], 4, 1), ..good.clone() }, 24, 40, 30),
        (
            "overflowing output",
            MatmulStep {
                batch: vec![usize::MAX, 2],
                a: op(0, vec![0, 0], 4, 1),
                b: op(0, vec![0, 0], 5, 1),
                ..good.clone()
            },
            24,
            40,
            30,
        ),
    ];
    for (what, s, al, bl, ol) in cases {
        let mut out = vec![0f32; ol];
        let r = matmul_f32(&s, &a[..al.min(24)], &b[..bl.min(40)], &mut out, 2);
        assert!(r.is_err(), "{what}: accepted");
        let mut out = vec![0i64; ol];
        let s = MatmulStep { dtype: if s.dtype == DType::F32 { DType::I64 } else { DType::I32 }, ..s };
        let r = matmul_i64(&s, &vec![0; al.min(24)], &vec![0; bl.min(40)], &mut out, 1);
        assert!(r.is_err(), "{what} (i64): accepted");
    }
}

/// Prints the throughput of a square f32 product (not an assertion; the real measurement
/// belongs in benches/). The size is small in debug builds so the test stays fast.
#[test]
fn gemm_speed() {
    let size = if cfg!(debug_assertions) { 128 } else { 1024 };
    let (s, al, bl) = dense(&[], size, size, size);
    let a = vec![0.5f32; al];
    let b = vec![0.25f32; bl];
    let mut out = vec![0f32; size * size];
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    for t in [1, threads] {
        matmul_f32(&s, &a, &b, &mut out, t).unwrap();
        let reps = 5;
        let start = Instant::now();
        for _ in 0..reps {
            matmul_f32(&s, &a, &b, &mut out, t).unwrap();
        }
        let secs = start.elapsed().as_secs_f64() / reps as f64;
        let gflops = 2.0 * (size as f64).powi(3) / secs / 1e9;
        println!("gemm_speed: {size}^3 f32, {t} thread(s): {:.3} ms, {gflops:.1} GFLOP/s", secs * 1e3);
        assert_eq!(out[0], 0.125 * size as f32);
    }
}
