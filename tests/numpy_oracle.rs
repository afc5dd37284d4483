//! Values checked against NumPy.
//!
//! `tests/oracle/gen_numpy.py` draws the inputs with fixed seeds, computes the expected values
//! with NumPy (PyTorch's semantics where the two differ: unbiased `std`/`var` by default,
//! PyTorch's result dtypes) and commits both as `.npy` files under `tests/oracle/data/`:
//! inputs in `in/`, expected values in `out/`, one file per case, named as the case. These
//! tests load the same inputs with `Tensor::load_npy`, so no Python is needed to run them.
//!
//! Tolerances: integers and bools exact; `f32` `rtol 1e-5, atol 1e-6` (`rtol 1e-4` for
//! reductions and what is built on them: matmul, normalization); `f64` `rtol = atol = 1e-12`.
//! NaN matches NaN, infinities match only themselves. Dtype and shape must match exactly.
//! Each test checks every case of its group and then reports all failures together.
//!
//! Regenerate the data with `python3 tests/oracle/gen_numpy.py` (see `tests/oracle/README.md`).

// `s![4..0;-2]` is NumPy's `[4:0:-2]`: a reversed range is how a negative-step slice is written.
#![allow(clippy::reversed_empty_ranges)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use tenjit::prelude::*;

fn data_path(kind: &str, name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oracle/data").join(kind).join(format!("{name}.npy"))
}

/// An input written by the generator.
fn inp(name: &str) -> Tensor {
    let path = data_path("in", name);
    Tensor::load_npy(&path).unwrap_or_else(|e| panic!("loading input {}: {e}", path.display()))
}

/// How closely a float result must match.
#[derive(Clone, Copy, Debug)]
enum Tol {
    /// Elementwise ops: f32 `rtol 1e-5, atol 1e-6`.
    Elem,
    /// Reductions and what is built on them: f32 `rtol 1e-4, atol 1e-6`.
    Red,
}

impl Tol {
    fn rtol_atol(self, dtype: DType) -> (f64, f64) {
        match (dtype, self) {
            (DType::F64, _) => (1e-12, 1e-12),
            (_, Tol::Elem) => (1e-5, 1e-6),
            (_, Tol::Red) => (1e-4, 1e-6),
        }
    }
}

/// Collects the failures of a group of cases and reports them all at the end.
struct Oracle {
    group: &'static str,
    checked: usize,
    failures: Vec<String>,
}

/// The multi-index of flat position `i` in `shape` (row-major).
fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        if shape[d] > 0 {
            idx[d] = i % shape[d];
            i /= shape[d];
        }
    }
    idx
}

impl Oracle {
    fn new(group: &'static str) -> Oracle {
        Oracle { group, checked: 0, failures: Vec::new() }
    }

    /// Elementwise tolerance; the expected value is `out/<case>.npy`.
    fn check(&mut self, case: &str, got: impl FnOnce() -> Tensor) {
        self.compare(case, case, Tol::Elem, got);
    }

    /// Reduction tolerance; the expected value is `out/<case>.npy`.
    fn check_red(&mut self, case: &str, got: impl FnOnce() -> Tensor) {
        self.compare(case, case, Tol::Red, got);
    }

    /// Compares what `got` computes with `out/<expected>.npy`, reporting failures as `label`.
    /// A panic inside `got` (a tenjit error) is a failure of the case, not of the group.
    fn compare(&mut self, label: &str, expected: &str, tol: Tol, got: impl FnOnce() -> Tensor) {
        self.checked += 1;
        if let Err(msg) = Self::try_compare(label, expected, tol, got) {
            self.failures.push(msg);
        }
    }

    fn try_compare(
        label: &str,
        expected: &str,
        tol: Tol,
        got: impl FnOnce() -> Tensor,
    ) -> Result<(), String> {
        let path = data_path("out", expected);
        let exp = Tensor::load_npy(&path).map_err(|e| format!("{label}: cannot load expected value: {e}"))?;
        let got = catch_unwind(AssertUnwindSafe(|| {
            let t = got();
            let dtype = t.dtype();
            let shape = t.shape().to_vec();
            let values: Vec<f64> = match dtype {
                DType::I64 | DType::I32 | DType::Bool => Vec::new(),
                _ => t.to_vec::<f64>(),
            };
            let ints: Vec<i64> = match dtype {
                DType::I64 | DType::I32 => t.to_vec::<i64>(),
                DType::Bool => t.to_vec::<bool>().into_iter().map(i64::from).collect(),
                _ => Vec::new(),
            };
            (dtype, shape, values, ints)
        }))
        .map_err(|p| {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "(non-string panic)".into());
            format!("{label}: tenjit panicked: {msg}")
        })?;
        let (dtype, shape, values, ints) = got;
        if dtype != exp.dtype() {
            return Err(format!("{label}: dtype: got {dtype}, expected {}", exp.dtype()));
        }
        if shape != exp.shape() {
            return Err(format!("{label}: shape: got {shape:?}, expected {:?}", exp.shape()));
        }
        let mut bad = Vec::new();
        if dtype.is_float() {
            let (rtol, atol) = tol.rtol_atol(dtype);
            let want = exp.to_vec::<f64>();
            if std::env::var_os("ORACLE_VERBOSE").is_some() {
                // How much of the tolerance each case uses: max |got - exp| / (atol + rtol |exp|).
                let used = values
                    .iter()
                    .zip(&want)
                    .filter(|(g, e)| g.is_finite() && e.is_finite())
                    .map(|(g, e)| (g - e).abs() / (atol + rtol * e.abs()))
                    .fold(0.0f64, f64::max);
                eprintln!("{label}: {used:.3} of the tolerance");
            }
            for (i, (&g, &e)) in values.iter().zip(&want).enumerate() {
                let ok = if e.is_nan() || g.is_nan() {
                    e.is_nan() && g.is_nan()
                } else if e.is_infinite() || g.is_infinite() {
                    g == e
                } else {
                    (g - e).abs() <= atol + rtol * e.abs()
                };
                if !ok {
                    bad.push(format!(
                        "index {:?}: got {g:e}, expected {e:e} (diff {:e}, rtol {rtol:e}, atol {atol:e})",
                        unravel(i, &shape),
                        (g - e).abs()
                    ));
                }
            }
        } else {
            let want: Vec<i64> = if dtype == DType::Bool {
                exp.to_vec::<bool>().into_iter().map(i64::from).collect()
            } else {
                exp.to_vec::<i64>()
            };
            for (i, (&g, &e)) in ints.iter().zip(&want).enumerate() {
                if g != e {
                    bad.push(format!("index {:?}: got {g}, expected {e}", unravel(i, &shape)));
                }
            }
        }
        if bad.is_empty() {
            return Ok(());
        }
        let n = bad.len();
        bad.truncate(6);
        Err(format!(
            "{label} ({dtype}{shape:?}): {n} of {} elements differ:\n      {}",
            shape.iter().product::<usize>(),
            bad.join("\n      ")
        ))
    }

    fn finish(self) {
        assert!(
            self.failures.is_empty(),
            "{}: {} of {} cases disagree with the expected values (NumPy, PyTorch semantics):\n  {}",
            self.group,
            self.failures.len(),
            self.checked,
            self.failures.join("\n  ")
        );
    }
}

#[test]
fn broadcasting_arithmetic() {
    let mut o = Oracle::new("broadcasting_arithmetic");
    let (a31, b3, a23, a41, b15) = (inp("a31"), inp("b3"), inp("a23"), inp("a41"), inp("b15"));
    o.check("bcast_add_3x1_3", || &a31 + &b3);
    o.check("bcast_sub_3x1_3", || a31.sub(&b3));
    o.check("bcast_add_2x3_3", || a23.add(&b3));
    o.check("bcast_mul_2x3_3", || &a23 * &b3);
    o.check("bcast_div_2x3_3", || &a23 / &b3);
    o.check("bcast_mul_4x1_1x5", || &a41 * &b15);
    o.check("bcast_sub_1x5_4x1", || &b15 - &a41);
    o.finish();
}

#[test]
fn scalar_operands() {
    let mut o = Oracle::new("scalar_operands");
    let x = inp("x24");
    o.check("scalar_add_right", || &x + 2.5);
    o.check("scalar_add_left", || 2.5 + &x);
    o.check("scalar_sub_right", || &x - 1.5);
    o.check("scalar_sub_left", || 1.5 - &x);
    o.check("scalar_mul_right", || &x * 3.0);
    o.check("scalar_mul_left", || 3.0 * &x);
    o.check("scalar_div_right", || &x / 4.0);
    o.check("scalar_div_left", || 1.0 / &x);
    o.check("scalar_neg", || -&x);
    let ia = inp("i_a");
    o.check("scalar_int_add", || &ia + 3);
    o.check("scalar_int_mul", || &ia * -2);
    o.check("scalar_int_sub_left", || 7 - &ia);
    o.check("scalar_int_times_float", || &ia * 2.5);
    o.check("scalar_int_plus_float_left", || 0.5 + &ia);
    o.finish();
}

#[test]
fn true_division_and_promotion() {
    let mut o = Oracle::new("true_division_and_promotion");
    let (ia, ib, ia32, ib32) = (inp("i_a"), inp("i_b"), inp("i32_a"), inp("i32_b"));
    o.check("truediv_i64_i64", || &ia / &ib);
    o.check("truediv_i64_scalar", || &ia / 4);
    o.check("truediv_i32_i32", || ia32.div(&ib32));
    let (xf, xd) = (inp("x34"), inp("x34_f64"));
    o.check("promote_i64_plus_f32", || &ia + &xf);
    o.check("promote_f32_plus_f64", || &xf + &xd);
    o.check("promote_i32_plus_i64", || &ia32 + &ib);
    o.check("promote_i32_times_i32", || &ia32 * &ib32);
    o.finish();
}

#[test]
fn floor_divide_and_remainder() {
    let mut o = Oracle::new("floor_divide_and_remainder");
    let (na, nb) = (inp("fd_ia"), inp("fd_ib"));
    o.check("floordiv_i64", || na.floor_divide(&nb));
    o.check("remainder_i64", || &na % &nb);
    o.compare("remainder_i64 (method)", "remainder_i64", Tol::Elem, || na.remainder(&nb));
    o.check("floordiv_i64_scalar_pos", || na.floor_divide(4));
    o.check("floordiv_i64_scalar_neg", || na.floor_divide(-4));
    o.check("remainder_i64_scalar_pos", || &na % 4);
    o.check("remainder_i64_scalar_neg", || &na % -4);
    let (na32, nb32) = (inp("fd_ia32"), inp("fd_ib32"));
    o.check("floordiv_i32", || na32.floor_divide(&nb32));
    o.check("remainder_i32", || na32.remainder(&nb32));
    let (fa, fb) = (inp("fd_fa"), inp("fd_fb"));
    o.check("floordiv_f32", || fa.floor_divide(&fb));
    o.check("remainder_f32", || &fa % &fb);
    o.check("floordiv_f32_scalar_neg", || fa.floor_divide(-2.5));
    o.check("remainder_f32_scalar_neg", || &fa % -2.5);
    o.check("remainder_f32_scalar_pos", || fa.remainder(2.5));
    let (fad, fbd) = (inp("fd_fa_f64"), inp("fd_fb_f64"));
    o.check("floordiv_f64", || fad.floor_divide(&fbd));
    o.check("remainder_f64", || &fad % &fbd);
    o.finish();
}

#[test]
fn pow() {
    let mut o = Oracle::new("pow");
    let (pb, pe) = (inp("pow_base"), inp("pow_exp"));
    o.check("pow_tensor_tensor", || pb.pow(&pe));
    o.check("pow_scalar_2", || pb.pow(2.0));
    o.check("pow_scalar_half", || pb.pow(0.5));
    o.check("pow_scalar_neg", || pb.pow(-1.5));
    let nb = inp("pow_negbase");
    o.check("pow_negbase_cube", || nb.pow(3.0));
    o.check("pow_negbase_square", || nb.pow(2.0));
    let (ib, ie) = (inp("pow_ibase"), inp("pow_iexp"));
    o.check("pow_int_int", || ib.pow(&ie));
    o.check("pow_int_scalar", || ib.pow(3));
    o.finish();
}

#[test]
fn unary_functions() {
    let mut o = Oracle::new("unary_functions");
    let (u, p) = (inp("u"), inp("u_pos"));
    o.check("unary_exp", || u.exp());
    o.check("unary_log", || p.log());
    o.check("unary_sqrt", || p.sqrt());
    o.check("unary_sin", || u.sin());
    o.check("unary_cos", || u.cos());
    o.check("unary_tanh", || u.tanh());
    o.check("unary_sigmoid", || u.sigmoid());
    o.check("unary_relu", || u.relu());
    o.check("unary_abs", || u.abs());
    o.check("unary_neg", || u.neg());
    o.check("unary_clamp", || u.clamp(-0.5, 0.5));
    o.check("unary_clamp_min", || u.clamp_min(-1.0));
    o.check("unary_clamp_max", || u.clamp_max(1.25));
    o.check("unary_floor", || u.floor());
    o.check("unary_ceil", || u.ceil());
    o.check("unary_square", || u.square());
    let ud = inp("u_f64");
    o.check("unary_f64_exp", || ud.exp());
    o.check("unary_f64_sin", || ud.sin());
    o.check("unary_f64_tanh", || ud.tanh());
    o.check("unary_f64_log_abs", || ud.abs().log());
    o.check("unary_f64_sigmoid", || ud.sigmoid());
    let ia = inp("i_a");
    o.check("unary_int_sqrt", || ia.abs().sqrt());
    o.check("unary_int_abs", || ia.abs());
    o.check("unary_int_relu", || ia.relu());
    o.check("unary_int_clamp", || ia.clamp(-5, 5));
    o.finish();
}

#[test]
fn comparisons_and_logic() {
    let mut o = Oracle::new("comparisons_and_logic");
    let (a, b) = (inp("cmp_a"), inp("cmp_b"));
    o.check("cmp_eq", || a.eq(&b));
    o.check("cmp_ne", || a.ne(&b));
    o.check("cmp_lt", || a.lt(&b));
    o.check("cmp_le", || a.le(&b));
    o.check("cmp_gt", || a.gt(&b));
    o.check("cmp_ge", || a.ge(&b));
    o.check("cmp_gt_scalar", || a.gt(0.5));
    o.check("cmp_le_scalar", || a.le(-0.5));
    let (ia, ib) = (inp("i_a"), inp("i_b"));
    o.check("cmp_eq_int_scalar", || ia.eq(3));
    o.check("cmp_lt_int_float", || ia.lt(2.5));
    let n = inp("cmp_nan");
    o.check("cmp_nan_eq_self", || n.eq(&n));
    o.check("cmp_nan_ne_self", || n.ne(&n));
    o.check("cmp_nan_lt_zero", || n.lt(0.0));
    let (la, lb) = (inp("logic_a"), inp("logic_b"));
    o.check("logic_and", || &la & &lb);
    o.compare("logic_and (method)", "logic_and", Tol::Elem, || la.logical_and(&lb));
    o.check("logic_or", || &la | &lb);
    o.compare("logic_or (method)", "logic_or", Tol::Elem, || la.logical_or(&lb));
    o.check("logic_not", || !&la);
    o.compare("logic_not (method)", "logic_not", Tol::Elem, || la.logical_not());
    o.check("logic_and_num", || ia.logical_and(ib.gt(0)));
    o.check("logic_not_int", || ia.logical_not());
    o.finish();
}

#[test]
fn maximum_minimum_nan() {
    let mut o = Oracle::new("maximum_minimum_nan");
    let (a, b) = (inp("mm_a"), inp("mm_b"));
    o.check("maximum_nan", || a.maximum(&b));
    o.check("minimum_nan", || a.minimum(&b));
    o.check("maximum_bcast", || inp("a31").maximum(inp("b3")));
    o.check("minimum_int", || inp("i_a").minimum(inp("i_b")));
    o.check("max_all_nan", || a.max());
    o.check("min_all_nan", || a.min());
    o.finish();
}

#[test]
fn reductions() {
    let mut o = Oracle::new("reductions");
    let (r, rp) = (inp("r345"), inp("r345_pos"));
    o.check_red("red_sum_all", || r.sum());
    o.check_red("red_mean_all", || r.mean());
    o.check_red("red_prod_all", || rp.prod());
    o.check_red("red_max_all", || r.max());
    o.check_red("red_min_all", || r.min());
    o.check("red_argmax_all", || r.argmax());
    o.check("red_argmin_all", || r.argmin());
    o.check_red("red_var_all", || r.var());
    o.check_red("red_var_all_ddof0", || r.var_dim([0, 1, 2], 0.0, false));
    o.check_red("red_std_all", || r.std());
    o.check_red("red_std_all_ddof0", || r.std_dim([0, 1, 2], 0.0, false));
    o.check_red("red_norm_all", || r.norm());
    for ax in 0..3isize {
        for kd in [false, true] {
            let sfx = format!("ax{ax}{}", if kd { "_keep" } else { "" });
            let c = |op: &str| format!("red_{op}_{sfx}");
            o.check_red(&c("sum"), || r.sum_dim(ax, kd));
            o.check_red(&c("mean"), || r.mean_dim(ax, kd));
            o.check_red(&c("prod"), || rp.prod_dim(ax, kd));
            o.check_red(&c("max"), || r.amax(ax, kd));
            o.compare(&format!("{} (max_dim values)", c("max")), &c("max"), Tol::Red, || r.max_dim(ax, kd).0);
            o.compare(&format!("{} (max_dim indices)", c("argmax")), &c("argmax"), Tol::Red, || {
                r.max_dim(ax, kd).1
            });
            o.check_red(&c("min"), || r.amin(ax, kd));
            o.compare(&format!("{} (min_dim values)", c("min")), &c("min"), Tol::Red, || r.min_dim(ax, kd).0);
            o.compare(&format!("{} (min_dim indices)", c("argmin")), &c("argmin"), Tol::Red, || {
                r.min_dim(ax, kd).1
            });
            o.check(&c("argmax"), || r.argmax_dim(ax, kd));
            o.check(&c("argmin"), || r.argmin_dim(ax, kd));
            o.check_red(&c("var"), || r.var_dim(ax, 1.0, kd));
            o.check_red(&format!("{}_ddof0", c("var")), || r.var_dim(ax, 0.0, kd));
            o.check_red(&c("std"), || r.std_dim(ax, 1.0, kd));
            o.check_red(&format!("{}_ddof0", c("std")), || r.std_dim(ax, 0.0, kd));
            o.check_red(&c("norm"), || r.norm_dim(ax, kd));
        }
    }
    o.check_red("red_sum_axneg1", || r.sum_dim(-1, false));
    o.check_red("red_sum_ax02", || r.sum_dim([0, 2], false));
    o.check_red("red_mean_ax12_keep", || r.mean_dim([1, 2], true));
    o.check_red("red_var_ax02", || r.var_dim([0, 2], 1.0, false));
    o.check_red("red_std_ax01_ddof0_keep", || r.std_dim([0, 1], 0.0, true));
    o.check_red("red_norm_ax12", || r.norm_dim([1, 2], false));
    let rd = inp("r345_f64");
    o.check_red("red_f64_sum_ax1", || rd.sum_dim(1, false));
    o.check_red("red_f64_mean_all", || rd.mean());
    o.check_red("red_f64_var_ax2", || rd.var_dim(2, 1.0, false));
    o.check_red("red_f64_std_all_ddof0", || rd.std_dim([0, 1, 2], 0.0, false));
    o.check_red("red_f64_prod_ax0", || rd.prod_dim(0, false));
    let ri = inp("r345_i32");
    o.check("red_i32_sum_all", || ri.sum());
    o.check("red_i32_sum_ax1", || ri.sum_dim(1, false));
    o.check("red_i32_max_ax2", || ri.amax(2, false));
    o.check("red_i32_min_all", || ri.min());
    o.check("red_i32_argmax_ax0", || ri.argmax_dim(0, false));
    o.check("red_i32_prod_ax2", || (ri.floor_divide(3) + 1).prod_dim(2, false));
    o.check("red_bool_sum_ax0", || inp("r_bool").sum_dim(0, false));
    o.finish();
}

#[test]
fn matmul_and_dot() {
    let mut o = Oracle::new("matmul_and_dot");
    let (v4, w4, m34, m45) = (inp("v4"), inp("w4"), inp("m34"), inp("m45"));
    let (b234, b2134, b542) = (inp("b234"), inp("b2134"), inp("b542"));
    o.check_red("matmul_1d_1d", || v4.matmul(&w4));
    o.check_red("matmul_2d_1d", || m34.matmul(&v4));
    o.check_red("matmul_1d_2d", || v4.matmul(&m45));
    o.check_red("matmul_2d_2d", || m34.matmul(&m45));
    o.check_red("matmul_3d_2d", || b234.matmul(&m45));
    o.check_red("matmul_2d_3d", || m34.matmul(&b542));
    o.check_red("matmul_3d_1d", || b234.matmul(&v4));
    o.check_red("matmul_1d_3d", || v4.matmul(&b542));
    o.check_red("matmul_bcast_batch", || b2134.matmul(&b542));
    o.check_red("dot_f32", || v4.dot(&w4));
    o.check_red("matmul_f64", || inp("m34_f64").matmul(&inp("m45_f64")));
    o.check("matmul_i64", || inp("m34_i64").matmul(&inp("m45_i64")));
    o.check_red("matmul_33x70x17", || inp("m_33x70").matmul(&inp("m_70x17")));
    o.finish();
}

#[test]
fn shape_ops() {
    let mut o = Oracle::new("shape_ops");
    let s = inp("s234");
    o.check("shape_transpose_0_2", || s.transpose(0, 2));
    o.check("shape_transpose_neg", || s.transpose(-1, -2));
    o.check("shape_permute_201", || s.permute([2, 0, 1]));
    o.check("shape_reshape_4_m1", || s.reshape([4, -1]));
    o.check("shape_reshape_after_permute", || s.permute([2, 0, 1]).reshape([6, 4]));
    o.check("shape_flatten", || s.flatten());
    o.check("shape_flatten_dims_1_2", || s.flatten_dims(1, 2));
    o.check("shape_t_2d", || inp("m34").t());
    let s1 = inp("s1312");
    o.check("shape_squeeze_all", || s1.squeeze());
    o.check("shape_squeeze_dim2", || s1.squeeze_dim(2));
    o.check("shape_unsqueeze_1", || s.unsqueeze(1));
    o.check("shape_unsqueeze_neg1", || s.unsqueeze(-1));
    o.check("shape_expand", || inp("a31").expand([3, 4]));
    o.check("shape_permute_then_add", || {
        let p = s.permute([1, 0, 2]);
        &p + &p.i(s![.., ..;-1, ..])
    });
    o.finish();
}

#[test]
fn slicing() {
    let mut o = Oracle::new("slicing");
    let g = inp("g56");
    o.check("slice_1to3_rev", || g.i(s![1..3, ..;-1]));
    o.check("slice_step2_last", || g.i(s![..;2, -1]));
    o.check("slice_ellipsis_newaxis", || g.i(s![Ellipsis, NewAxis]));
    o.check("slice_newaxis_first", || g.i(s![NewAxis, 1..4]));
    o.check("slice_neg_bounds", || g.i(s![-4..-1, 1..-1]));
    o.check("slice_step2_stepm2", || g.i(s![..;2, ..;-2]));
    o.check("slice_rev_from4_to0_stepm2", || g.i(s![4..0;-2]));
    o.check("slice_row_neg1", || g.i(s![-1]));
    o.check("slice_scalar_elem", || g.i(s![2, -3]));
    o.check("slice_clamped_bounds", || g.i(s![2..100, -100..3]));
    o.check("slice_empty", || g.i(s![3..1]));
    o.check("slice_rev_then_slice", || g.i(s![..;-1]).i(s![1..3]));
    o.check("slice_negstep_bounds", || g.i(s![-1..-4;-1, 5..0;-3]));
    o.check("slice_inclusive_1_3", || g.i(s![1..=3, 2]));
    o.check("slice_then_mul", || g.i(s![1..3, ..;-1]) * 2.0);
    let g3 = inp("g345");
    o.check("slice3_ellipsis_int", || g3.i(s![Ellipsis, 1]));
    o.check("slice3_int_ellipsis", || g3.i(s![1, Ellipsis]));
    o.check("slice3_mixed", || g3.i(s![..;2, NewAxis, 1.., -2]));
    o.check("slice3_all_neg_steps", || g3.i(s![..;-1, ..;-2, ..;-3]));
    o.finish();
}

#[test]
fn advanced_indexing() {
    let mut o = Oracle::new("advanced_indexing");
    let t = inp("t35");
    let (rows, cols) = (inp("idx_rows"), inp("idx_cols"));
    o.check("index_select_ax0", || t.index_select(0, &rows));
    o.check("index_select_ax1", || t.index_select(1, &cols));
    o.check("index_select_axneg1", || t.index_select(-1, &cols));
    o.check("index_select_i32_index", || t.index_select(1, &inp("idx_cols_i32")));
    o.check("gather_ax1", || t.gather(1, &inp("gather_idx_ax1")));
    o.check("gather_ax0", || t.gather(0, &inp("gather_idx_ax0")));
    let mu = inp("mask_src");
    o.check("masked_select_gt_half", || mu.masked_select(&mu.gt(0.5)));
    o.check("masked_select_bcast_mask", || t.masked_select(&tensor!([true, false, true, false, true])));
    let ia = inp("i_a");
    o.check("masked_select_int", || ia.masked_select(&ia.gt(0)));
    let wb = inp("where_b");
    o.check("where_tensor_tensor", || Tensor::where_(&t.gt(0.0), &t, &wb));
    o.check("where_scalar_else", || Tensor::where_(&t.gt(0.0), &t, 0.0));
    o.check("where_bcast_cond", || Tensor::where_(&tensor!([[true], [false], [true]]), &t, &wb));
    let labels = inp("labels");
    o.check("one_hot_eye_index", || Tensor::eye(4).index_select(0, &labels));
    o.check("one_hot_method", || labels.one_hot(4));
    o.finish();
}

#[test]
fn cat_stack_split() {
    let mut o = Oracle::new("cat_stack_split");
    let (a, b, c) = (inp("cat_a"), inp("cat_b"), inp("cat_c"));
    o.check("cat_ax0", || Tensor::cat(&[&a, &b], 0));
    o.check("cat_ax1", || Tensor::cat(&[&a, &c, &a], 1));
    o.check("cat_axneg1", || Tensor::cat(&[&c, &a], -1));
    o.check("cat_promote_i64_f32", || Tensor::cat(&[&inp("i_a").i(s![..2, ..3]), &a], 0));
    o.check("stack_ax0", || Tensor::stack(&[&a, &(&a * 2.0), &(&a - 1.0)], 0));
    o.check("stack_ax1", || Tensor::stack(&[&a, &(&a * 2.0)], 1));
    o.check("stack_axneg1", || Tensor::stack(&[&a, &(&a * 2.0)], -1));
    let x = inp("x100x3");
    let pieces = x.split(16, 0);
    assert_eq!(pieces.len(), 7, "split(16, 0) of 100 rows: piece count");
    for (k, p) in pieces.iter().enumerate() {
        o.check(&format!("split16_piece{k}"), || p.clone());
    }
    let pieces = x.chunk(7, 0);
    assert_eq!(pieces.len(), 7, "chunk(7, 0) of 100 rows: piece count");
    for (k, p) in pieces.iter().enumerate() {
        o.check(&format!("chunk7_piece{k}"), || p.clone());
    }
    let pieces = x.split(2, 1);
    assert_eq!(pieces.len(), 2, "split(2, 1) of 3 columns: piece count");
    for (k, p) in pieces.iter().enumerate() {
        o.check(&format!("split2_ax1_piece{k}"), || p.clone());
    }
    o.finish();
}

#[test]
fn creation() {
    let mut o = Oracle::new("creation");
    o.check("arange_int_10", || Tensor::arange(10));
    o.check("arange_int_6_10", || Tensor::arange_step(6, 10, 1));
    o.check("arange_int_neg_step", || Tensor::arange_step(10, -3, -3));
    o.check("arange_float_0_1_01", || Tensor::arange_step(0.0, 1.0, 0.1));
    o.check("arange_float_m1_1_025", || Tensor::arange_step(-1.0, 1.0, 0.25));
    o.check("arange_float_end_5", || Tensor::arange(5.0));
    o.check("arange_float_neg_step", || Tensor::arange_step(2.0, 0.0, -0.3));
    o.check("linspace_0_1_5", || Tensor::linspace(0.0, 1.0, 5));
    o.check("linspace_m3_7_11", || Tensor::linspace(-3.0, 7.0, 11));
    o.check("linspace_0_1_7", || Tensor::linspace(0.0, 1.0, 7));
    o.check("linspace_1_0_4", || Tensor::linspace(1.0, 0.0, 4));
    o.check("linspace_single", || Tensor::linspace(2.0, 5.0, 1));
    o.check("eye_4", || Tensor::eye(4));
    o.check("eye_3x5", || Tensor::eye_nm(3, 5));
    o.check("eye_5x2", || Tensor::eye_nm(5, 2));
    o.finish();
}

#[test]
fn tutorial_normalization() {
    let mut o = Oracle::new("tutorial_normalization");
    let x = inp("x100x3");
    o.check_red("normalize_mean0", || x.mean_dim(0, false));
    o.check_red("normalize_std0", || x.std_dim(0, 1.0, false));
    o.check_red("normalize", || (&x - &x.mean_dim(0, false)) / (x.std_dim(0, 1.0, false) + 1e-8));
    o.finish();
}

#[test]
fn dtype_conversions() {
    let mut o = Oracle::new("dtype_conversions");
    let f = inp("conv_f32");
    o.check("conv_f32_to_i64", || f.to_dtype(DType::I64));
    o.check("conv_f32_to_i32", || f.to_dtype(DType::I32));
    o.check("conv_f32_to_bool", || f.to_dtype(DType::Bool));
    o.check("conv_f32_to_f64", || f.to_dtype(DType::F64));
    let i = inp("conv_i64");
    o.check("conv_i64_to_bool", || i.to_dtype(DType::Bool));
    o.check("conv_i64_to_f32", || i.to_dtype(DType::F32));
    o.check("conv_i64_to_f64", || i.to_dtype(DType::F64));
    o.check("conv_i64_to_i32_small", || i.i(s![..6]).to_dtype(DType::I32));
    let b = inp("logic_a");
    o.check("conv_bool_to_f32", || b.to_dtype(DType::F32));
    o.check("conv_bool_to_i64", || b.to_dtype(DType::I64));
    let d = inp("conv_f64");
    o.check("conv_f64_to_f32", || d.to_dtype(DType::F32));
    o.check("conv_f64_to_i64", || d.index_select(0, &tensor!([0, 1, 2, 3, 5])).to_dtype(DType::I64));
    o.finish();
}

#[test]
fn special_values() {
    let mut o = Oracle::new("special_values");
    let v = inp("special");
    o.check("special_exp", || v.exp());
    o.check("special_log", || v.log());
    o.check("special_sqrt", || v.sqrt());
    o.check("special_tanh", || v.tanh());
    o.check("special_sigmoid", || v.sigmoid());
    o.check("special_relu", || v.relu());
    o.check("special_abs", || v.abs());
    o.check("special_clamp", || v.clamp(-1.0, 1.0));
    o.check("special_recip", || 1.0 / &v);
    let num = tensor!([1.0, -1.0, 0.0, 2.5]);
    o.check("special_floordiv_by_zero", || num.floor_divide(0.0));
    o.check("special_remainder_by_zero", || &num % 0.0);
    o.check("special_pow", || inp("special_pow_base").pow(inp("special_pow_exp")));
    o.check("special_to_bool", || v.to_dtype(DType::Bool));
    let m = Tensor::from_vec(vec![1.0f64, f64::NAN, 3.0, f64::NAN, f64::NEG_INFINITY, 0.0, -0.5], [7]);
    o.check("special_argmax_nan", || m.argmax());
    o.check("special_argmin_nan", || m.argmin());
    let a31 = inp("a31");
    o.check_red("special_var_single_elem", || a31.var_dim(1, 1.0, false));
    o.check_red("special_var_single_elem_ddof0", || a31.var_dim(1, 0.0, false));
    o.finish();
}

#[test]
fn large_reductions() {
    let mut o = Oracle::new("large_reductions");
    // The generator's formula: x[i] = ((i * 7919) % 1000) / 1000 in f32.
    let x = (Tensor::arange(1_000_000i64) * 7919 % 1000).to_dtype(DType::F32) / 1000.0;
    o.check_red("big_sum_1e6", || x.sum());
    o.check_red("big_mean_1e6", || x.mean());
    o.check_red("big_var_1e6", || x.var());
    o.check_red("big_sum_rows_1000x1000", || x.reshape([1000, 1000]).sum_dim(1, false));
    o.check_red("big_sum_cols_1000x1000", || x.reshape([1000, 1000]).sum_dim(0, false));
    let off = inp("var_offset");
    o.check_red("var_large_offset", || off.var());
    o.check_red("std_large_offset", || off.std());
    o.finish();
}

#[test]
fn compound_expressions() {
    let mut o = Oracle::new("compound_expressions");
    let q = inp("u");
    o.check_red("fused_softmax_ax1", || {
        let e = (&q - &q.amax(1, true)).exp();
        &e / &e.sum_dim(1, true)
    });
    o.check_red("fused_logsumexp_ax1", || q.exp().sum_dim(1, false).log());
    let r = inp("r345");
    o.check_red("fused_permute_affine_sum", || (r.permute([2, 0, 1]) * 2.0 + 1.0).sum_dim(1, false));
    o.check_red("fused_slice_mean", || r.i(s![.., ..;-1, 1..4]).mean_dim(1, true));
    let (m34, m45) = (inp("m34"), inp("m45"));
    o.check_red("fused_matmul_transposed", || m45.t().matmul(&m34.t()));
    o.check_red("fused_matmul_sliced", || inp("g56").i(s![..;2, 1..5]).matmul(&m45));
    o.check_red("fused_mse", || (m34.matmul(&m45) - inp("y35")).pow(2.0).mean());
    let (a41, b15) = (inp("a41"), inp("b15"));
    o.check_red("fused_outer_then_sum", || (&a41 * &b15).sum_dim(0, false));
    o.check_red("fused_where_chain_sum", || Tensor::where_(&q.gt(0.0), &q * 2.0, -&q).sum_dim(1, false));
    o.check_red("fused_cat_then_sum", || Tensor::cat(&[&inp("cat_a"), &inp("cat_b")], 0).sum_dim(0, false));
    o.check_red("fused_linear_relu", || (m34.matmul(&m45) + &b15).relu());
    o.check_red("fused_reduce_reuse", || {
        (&r - &r.mean_dim(2, true)) * r.sum_dim([0, 2], false).reshape([1, 4, 1])
    });
    o.finish();
}

#[test]
fn edge_cases() {
    let mut o = Oracle::new("edge_cases");
    let t = inp("t35");
    o.check("edge_masked_select_transposed", || {
        let tt = t.t();
        tt.masked_select(&tt.gt(0.0))
    });
    let rows3 = inp("idx_rows").remainder(3).i(s![..3]);
    o.check("edge_index_select_permuted", || inp("r345").permute([1, 0, 2]).index_select(1, &rows3));
    o.check("edge_gather_axneg1", || t.gather(-1, &inp("gather_idx_ax1")));
    o.check("edge_cat_transposed", || Tensor::cat(&[&inp("cat_a").t(), &inp("cat_b").t()], 1));
    o.check("edge_argmax_permuted_keep", || inp("r345").permute([2, 1, 0]).argmax_dim(1, true));
    let g = inp("g56");
    o.check("edge_slice_clamp_negstep", || g.i(s![100..-100;-2]));
    o.check("edge_slice_of_transposed", || g.t().i(s![1..5;2, ..;-3]));
    let big32 = inp("i32_big");
    o.check("edge_i32_sum_no_overflow", || big32.sum());
    o.check("edge_i32_mul_wraps", || big32.mul(3));
    let big64 = inp("i64_big");
    o.check("edge_i64_add_wraps", || &big64 + &big64);
    o.check("edge_linspace_zero_steps", || Tensor::linspace(0.0, 1.0, 0));
    o.check("edge_arange_empty", || Tensor::arange_step(3, 3, 1));
    let e = inp("empty_0x3");
    o.check_red("edge_sum_empty_ax0", || e.sum_dim(0, false));
    o.check_red("edge_prod_empty_ax0", || e.prod_dim(0, false));
    o.check_red("edge_sum_empty_all", || e.sum());
    o.check_red("edge_sum_empty_ax1", || e.sum_dim(1, false));
    o.check_red("edge_mean_empty_ax0", || e.mean_dim(0, false));
    o.finish();
}

/// PyTorch's promotion with 0-d tensors, where NumPy 2 differs: a 0-d operand of the same
/// category as a dimensioned one does not widen it (`torch.result_type(uint8[2], tensor(1))`
/// is `uint8`); one of a higher category decides the dtype.
#[test]
fn zero_dim_promotion() {
    let mut o = Oracle::new("zero_dim_promotion");
    let (z64, zi64) = (inp("zerodim_f64"), inp("zerodim_i64"));
    o.check("promote_f32_plus_0d_f64", || &inp("x34") + &z64);
    o.check("promote_i32_plus_0d_i64", || &inp("i32_a") + &zi64);
    o.check("promote_i32_times_0d_f64", || &inp("i32_a") * &z64);
    o.check("promote_0d_i64_plus_0d_f64", || &zi64 + &z64);
    o.finish();
}
