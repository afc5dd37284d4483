//! A test of `gemv.rs` through `gemm.rs`'s dispatch (`n = 1` products of `matmul_f32`), in a
//! file of its own: `gemm.rs` calls `gemv.rs`, so a test inside `gemv.rs` calling back into
//! `gemm.rs` would close an import cycle (`tests/layering.rs`).

/// `n = 1` steps through `gemm::matmul_f32` (the dispatch to these routines): batches,
/// offsets, a transposed left operand, a vector with a row stride of 3 or -2 (gathered)
/// and a broadcast batch dim; each against the `f64` sum of its own elements, bit for bit
/// on the grid.
#[test]
fn matrix_vector_steps_through_matmul() {
    use super::gemm::matmul_f32;
    use super::gemv::tests::reference;
    use super::nt::grid;
    use tenjit_ir::kernel::{MatOperand, MatmulStep};
    use tenjit_ir::DType;
    if !super::gemv::available() {
        // The dispatch then sends these products to `gemm`, which `tests/gemm.rs` checks.
        eprintln!("gemv_dispatch: this CPU has no AVX2/FMA (or TENJIT_CPU_ROUTINES=0): nothing to test");
        return;
    }
    let op = |offset: i64, batch_strides: Vec<i64>, row_stride: i64, col_stride: i64| MatOperand {
        buf: 0,
        offset,
        batch_strides,
        row_stride,
        col_stride,
    };
    let (m, k) = (37, 300);
    // (a, b) operands over a batch of 2: rows of a contiguous, a transposed (row stride 1),
    // b strided, b reversed, a broadcast over the batch.
    let cases = [
        (op(5, vec![(m * k) as i64], k as i64, 1), op(0, vec![k as i64], 1, 1)),
        (op(3, vec![(m * k) as i64], 1, m as i64), op(1, vec![3 * k as i64], 3, 1)),
        (op(0, vec![0], 1, m as i64 + 2), op(4 * k as i64, vec![-(k as i64)], -2, 1)),
        (op(0, vec![0], k as i64 + 1, 1), op(0, vec![0], 1, 7)),
    ];
    let (a, b): (Vec<f32>, Vec<f32>) =
        ((0..3 * m * k).map(grid).collect(), (0..6 * k).map(|i| grid(5 * i + 1)).collect());
    for (ca, cb) in cases {
        let step = MatmulStep {
            dtype: DType::F32,
            batch: vec![2],
            m,
            k,
            n: 1,
            a: ca.clone(),
            b: cb.clone(),
            out: 0,
        };
        let at = |o: &MatOperand, bi: usize, r: usize, c: usize| {
            (o.offset + o.batch_strides[0] * bi as i64 + o.row_stride * r as i64 + o.col_stride * c as i64)
                as usize
        };
        let want: Vec<f32> = (0..2 * m)
            .map(|o| {
                let (bi, i) = (o / m, o % m);
                reference(k, |p| (a[at(&ca, bi, i, p)], b[at(&cb, bi, p, 0)])).0 as f32
            })
            .collect();
        for threads in [1, 2] {
            let mut out = vec![f32::NAN; 2 * m];
            matmul_f32(&step, &a, &b, &mut out, threads).unwrap();
            assert_eq!(out, want, "{ca:?} {cb:?} threads {threads}");
        }
    }
}
