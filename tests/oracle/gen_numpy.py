#!/usr/bin/env python3
"""Generates the NumPy oracle data for tests/numpy_oracle.rs.

Run from anywhere:  python3 tests/oracle/gen_numpy.py   (needs numpy)

Writes tests/oracle/data/in/<name>.npy (inputs, generated here with fixed seeds) and
tests/oracle/data/out/<case>.npy (expected values). The output is deterministic: running the
script twice gives byte-identical files. Both directories are emptied first, so a case removed
here leaves no stale file behind.

Expected values follow PyTorch's semantics where NumPy's differ, computed with NumPy:
  * std/var default to the unbiased estimator (ddof=1); ddof=0 cases say so in their name;
  * dtypes are PyTorch's: int / int and int (op) float scalar give float32, sums of integers
    give int64, float32 (op) int64 stays float32;
  * float results are computed in float64 from the (exact) float32 inputs and rounded once to
    float32, unless the op is exact in float32 anyway.
"""

import os
import shutil
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")
IN = os.path.join(DATA, "in")
OUT = os.path.join(DATA, "out")

f32, f64, i32, i64 = np.float32, np.float64, np.int32, np.int64

_written = set()


def _save(folder, name, arr):
    arr = np.array(arr, order="C")  # (ascontiguousarray would turn 0-d into 1-d)
    assert arr.dtype in (f32, f64, i32, i64, np.bool_), (name, arr.dtype)
    assert name not in _written, f"duplicate name {name}"
    _written.add(name)
    np.save(os.path.join(folder, name + ".npy"), arr)
    return arr


def inp(name, arr):
    """Saves an input and returns it (as saved, so the expected values see the same bits)."""
    return _save(IN, name, arr)


def out(case, arr, dtype=None):
    """Saves an expected value, converted to `dtype` (PyTorch's result dtype) if given."""
    arr = np.asarray(arr)
    if dtype is not None:
        arr = arr.astype(dtype)
    _save(OUT, case, arr)


def up(a):
    """float32 -> float64 (exact) for computing reference values."""
    return np.asarray(a, dtype=f64)


def main():
    for d in (IN, OUT):
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
    rng = np.random.default_rng(20240607)

    def randn(*shape, dtype=f32):
        return rng.standard_normal(shape).astype(dtype)

    def unif(lo, hi, *shape, dtype=f32):
        return rng.uniform(lo, hi, shape).astype(dtype)

    # ---------------------------------------------------------------- broadcasting arithmetic
    a31 = inp("a31", randn(3, 1))
    b3 = inp("b3", randn(3))
    a23 = inp("a23", randn(2, 3))
    a41 = inp("a41", randn(4, 1))
    b15 = inp("b15", randn(1, 5))
    out("bcast_add_3x1_3", up(a31) + up(b3), f32)
    out("bcast_sub_3x1_3", up(a31) - up(b3), f32)
    out("bcast_add_2x3_3", up(a23) + up(b3), f32)
    out("bcast_mul_2x3_3", up(a23) * up(b3), f32)
    out("bcast_div_2x3_3", up(a23) / up(b3), f32)
    out("bcast_mul_4x1_1x5", up(a41) * up(b15), f32)
    out("bcast_sub_1x5_4x1", up(b15) - up(a41), f32)

    # ---------------------------------------------------------------- scalars on both sides
    x = inp("x24", randn(2, 4))
    X = up(x)
    out("scalar_add_right", X + 2.5, f32)
    out("scalar_add_left", 2.5 + X, f32)
    out("scalar_sub_right", X - 1.5, f32)
    out("scalar_sub_left", 1.5 - X, f32)
    out("scalar_mul_right", X * 3.0, f32)
    out("scalar_mul_left", 3.0 * X, f32)
    out("scalar_div_right", X / 4.0, f32)
    out("scalar_div_left", 1.0 / X, f32)
    out("scalar_neg", -X, f32)
    ia = inp("i_a", rng.integers(-20, 21, (3, 4)).astype(i64))
    out("scalar_int_add", ia + 3, i64)
    out("scalar_int_mul", ia * -2, i64)
    out("scalar_int_sub_left", 7 - ia, i64)
    out("scalar_int_times_float", ia.astype(f64) * 2.5, f32)  # torch: int tensor * float -> f32
    out("scalar_int_plus_float_left", 0.5 + ia.astype(f64), f32)

    # ---------------------------------------------------------------- true division of ints
    ib = inp("i_b", rng.choice(np.array([-7, -4, -3, -2, -1, 1, 2, 3, 5, 8]), (3, 4)).astype(i64))
    out("truediv_i64_i64", ia.astype(f64) / ib.astype(f64), f32)
    out("truediv_i64_scalar", ia.astype(f64) / 4, f32)
    ia32 = inp("i32_a", ia.astype(i32))
    ib32 = inp("i32_b", ib.astype(i32))
    out("truediv_i32_i32", ia32.astype(f64) / ib32.astype(f64), f32)

    # ---------------------------------------------------------------- type promotion
    xf = inp("x34", randn(3, 4))
    xd = inp("x34_f64", randn(3, 4, dtype=f64))
    out("promote_i64_plus_f32", ia.astype(f64) + up(xf), f32)
    out("promote_f32_plus_f64", up(xf) + xd, f64)
    out("promote_i32_plus_i64", ia32.astype(i64) + ib, i64)
    out("promote_i32_times_i32", ia32 * ib32, i32)

    # ---------------------------------------------------------------- floor_divide, remainder
    na = inp("fd_ia", np.array([-7, -6, -5, -1, 0, 1, 5, 6, 7, 13, -13, 100], dtype=i64).reshape(12, 1))
    nb = inp("fd_ib", np.array([3, -3, 2, -2, 5, -7], dtype=i64))
    out("floordiv_i64", np.floor_divide(na, nb), i64)
    out("remainder_i64", np.remainder(na, nb), i64)
    out("floordiv_i64_scalar_pos", np.floor_divide(na, 4), i64)
    out("floordiv_i64_scalar_neg", np.floor_divide(na, -4), i64)
    out("remainder_i64_scalar_pos", np.remainder(na, 4), i64)
    out("remainder_i64_scalar_neg", np.remainder(na, -4), i64)
    na32 = inp("fd_ia32", na.astype(i32))
    nb32 = inp("fd_ib32", nb.astype(i32))
    out("floordiv_i32", np.floor_divide(na32, nb32), i32)
    out("remainder_i32", np.remainder(na32, nb32), i32)
    fa = np.concatenate([
        np.array([-7.5, -6.0, -3.0, -1.0, -0.25, 0.0, 0.25, 1.0, 3.0, 6.0, 7.5], dtype=f32),
        unif(-10, 10, 9),
    ]).reshape(20, 1)
    fa = inp("fd_fa", fa)
    fb = inp("fd_fb", np.array([1.5, -1.5, 2.0, -2.0, 0.75, -3.25], dtype=f32))
    # exact in float32 (fmod is exact), so computed in float32 as torch does
    out("floordiv_f32", np.floor_divide(fa, fb), f32)
    out("remainder_f32", np.remainder(fa, fb), f32)
    out("floordiv_f32_scalar_neg", np.floor_divide(fa, f32(-2.5)), f32)
    out("remainder_f32_scalar_neg", np.remainder(fa, f32(-2.5)), f32)
    out("remainder_f32_scalar_pos", np.remainder(fa, f32(2.5)), f32)
    fad = inp("fd_fa_f64", fa.astype(f64) * 1.1)
    fbd = inp("fd_fb_f64", fb.astype(f64))
    out("floordiv_f64", np.floor_divide(fad, fbd), f64)
    out("remainder_f64", np.remainder(fad, fbd), f64)

    # ---------------------------------------------------------------- pow
    pb = inp("pow_base", unif(0.1, 2.0, 3, 4))
    pe = inp("pow_exp", unif(-2.0, 3.0, 3, 4))
    out("pow_tensor_tensor", up(pb) ** up(pe), f32)
    out("pow_scalar_2", up(pb) ** 2.0, f32)
    out("pow_scalar_half", up(pb) ** 0.5, f32)
    out("pow_scalar_neg", up(pb) ** -1.5, f32)
    nbase = inp("pow_negbase", np.array([-2.0, -1.5, -0.5, 0.0, 0.5, 3.0], dtype=f32))
    out("pow_negbase_cube", up(nbase) ** 3.0, f32)
    out("pow_negbase_square", up(nbase) ** 2.0, f32)
    pib = inp("pow_ibase", np.array([-3, -2, -1, 0, 1, 2, 3, 7], dtype=i64))
    pie = inp("pow_iexp", np.array([3, 2, 5, 4, 9, 10, 0, 3], dtype=i64))
    out("pow_int_int", pib ** pie, i64)
    out("pow_int_scalar", pib ** 3, i64)

    # ---------------------------------------------------------------- unary functions
    u = inp("u", unif(-3.0, 3.0, 4, 6))
    up_pos = inp("u_pos", unif(0.01, 5.0, 4, 6))
    U, P = up(u), up(up_pos)
    out("unary_exp", np.exp(U), f32)
    out("unary_log", np.log(P), f32)
    out("unary_sqrt", np.sqrt(P), f32)
    out("unary_sin", np.sin(U), f32)
    out("unary_cos", np.cos(U), f32)
    out("unary_tanh", np.tanh(U), f32)
    out("unary_sigmoid", 1.0 / (1.0 + np.exp(-U)), f32)
    out("unary_relu", np.maximum(U, 0.0), f32)
    out("unary_abs", np.abs(U), f32)
    out("unary_neg", -U, f32)
    out("unary_clamp", np.clip(U, -0.5, 0.5), f32)
    out("unary_clamp_min", np.maximum(U, -1.0), f32)
    out("unary_clamp_max", np.minimum(U, 1.25), f32)
    out("unary_floor", np.floor(U), f32)
    out("unary_ceil", np.ceil(U), f32)
    out("unary_square", U * U, f32)
    ud = inp("u_f64", rng.uniform(-3.0, 3.0, (4, 6)))
    out("unary_f64_exp", np.exp(ud), f64)
    out("unary_f64_sin", np.sin(ud), f64)
    out("unary_f64_tanh", np.tanh(ud), f64)
    out("unary_f64_log_abs", np.log(np.abs(ud)), f64)
    out("unary_f64_sigmoid", 1.0 / (1.0 + np.exp(-ud)), f64)
    out("unary_int_sqrt", np.sqrt(np.abs(ia).astype(f64)), f32)  # int -> f32 as torch
    out("unary_int_abs", np.abs(ia), i64)
    out("unary_int_relu", np.maximum(ia, 0), i64)
    out("unary_int_clamp", np.clip(ia, -5, 5), i64)

    # ---------------------------------------------------------------- comparisons, logic
    ca = inp("cmp_a", np.round(unif(-2, 2, 4, 5) * 2) / 2)  # halves: many ties
    cb = inp("cmp_b", np.round(unif(-2, 2, 5) * 2) / 2)
    out("cmp_eq", ca == cb)
    out("cmp_ne", ca != cb)
    out("cmp_lt", ca < cb)
    out("cmp_le", ca <= cb)
    out("cmp_gt", ca > cb)
    out("cmp_ge", ca >= cb)
    out("cmp_gt_scalar", ca > 0.5)
    out("cmp_le_scalar", ca <= -0.5)
    out("cmp_eq_int_scalar", ia == 3)
    out("cmp_lt_int_float", ia.astype(f64) < 2.5)
    cn = inp("cmp_nan", np.array([np.nan, 1.0, -1.0, np.inf, -np.inf, 0.0], dtype=f32))
    out("cmp_nan_eq_self", cn == cn)
    out("cmp_nan_ne_self", cn != cn)
    out("cmp_nan_lt_zero", cn < 0.0)
    la = inp("logic_a", rng.random((3, 4)) < 0.5)
    lb = inp("logic_b", rng.random((4,)) < 0.5)
    out("logic_and", np.logical_and(la, lb))
    out("logic_or", np.logical_or(la, lb))
    out("logic_not", np.logical_not(la))
    out("logic_and_num", np.logical_and(ia, ib > 0))
    out("logic_not_int", np.logical_not(ia))

    # ---------------------------------------------------------------- maximum/minimum with NaN
    ma = inp("mm_a", np.array([1.0, np.nan, 3.0, np.nan, -np.inf, 0.0, -0.5], dtype=f32))
    mb = inp("mm_b", np.array([2.0, 5.0, np.nan, np.nan, 1.0, np.inf, -0.25], dtype=f32))
    out("maximum_nan", np.maximum(ma, mb))
    out("minimum_nan", np.minimum(ma, mb))
    out("maximum_bcast", np.maximum(up(a31), up(b3)), f32)
    out("minimum_int", np.minimum(ia, ib), i64)
    out("max_all_nan", np.max(ma))
    out("min_all_nan", np.min(ma))

    # ---------------------------------------------------------------- reductions on (3,4,5)
    r = inp("r345", randn(3, 4, 5))
    rp = inp("r345_pos", unif(0.5, 1.5, 3, 4, 5))
    R, RP = up(r), up(rp)
    out("red_sum_all", R.sum(), f32)
    out("red_mean_all", R.mean(), f32)
    out("red_prod_all", RP.prod(), f32)
    out("red_max_all", R.max(), f32)
    out("red_min_all", R.min(), f32)
    out("red_argmax_all", R.argmax(), i64)
    out("red_argmin_all", R.argmin(), i64)
    out("red_var_all", R.var(ddof=1), f32)
    out("red_var_all_ddof0", R.var(ddof=0), f32)
    out("red_std_all", R.std(ddof=1), f32)
    out("red_std_all_ddof0", R.std(ddof=0), f32)
    out("red_norm_all", np.sqrt((R * R).sum()), f32)
    for ax in (0, 1, 2):
        for kd in (False, True):
            sfx = f"ax{ax}" + ("_keep" if kd else "")
            out(f"red_sum_{sfx}", R.sum(axis=ax, keepdims=kd), f32)
            out(f"red_mean_{sfx}", R.mean(axis=ax, keepdims=kd), f32)
            out(f"red_prod_{sfx}", RP.prod(axis=ax, keepdims=kd), f32)
            out(f"red_max_{sfx}", R.max(axis=ax, keepdims=kd), f32)
            out(f"red_min_{sfx}", R.min(axis=ax, keepdims=kd), f32)
            out(f"red_argmax_{sfx}", R.argmax(axis=ax, keepdims=kd), i64)
            out(f"red_argmin_{sfx}", R.argmin(axis=ax, keepdims=kd), i64)
            out(f"red_var_{sfx}", R.var(axis=ax, ddof=1, keepdims=kd), f32)
            out(f"red_var_{sfx}_ddof0", R.var(axis=ax, ddof=0, keepdims=kd), f32)
            out(f"red_std_{sfx}", R.std(axis=ax, ddof=1, keepdims=kd), f32)
            out(f"red_std_{sfx}_ddof0", R.std(axis=ax, ddof=0, keepdims=kd), f32)
            out(f"red_norm_{sfx}", np.sqrt((R * R).sum(axis=ax, keepdims=kd)), f32)
    out("red_sum_axneg1", R.sum(axis=-1), f32)
    out("red_sum_ax02", R.sum(axis=(0, 2)), f32)
    out("red_mean_ax12_keep", R.mean(axis=(1, 2), keepdims=True), f32)
    out("red_var_ax02", R.var(axis=(0, 2), ddof=1), f32)
    out("red_std_ax01_ddof0_keep", R.std(axis=(0, 1), ddof=0, keepdims=True), f32)
    out("red_norm_ax12", np.sqrt((R * R).sum(axis=(1, 2))), f32)
    rd = inp("r345_f64", randn(3, 4, 5, dtype=f64))
    out("red_f64_sum_ax1", rd.sum(axis=1), f64)
    out("red_f64_mean_all", rd.mean(), f64)
    out("red_f64_var_ax2", rd.var(axis=2, ddof=1), f64)
    out("red_f64_std_all_ddof0", rd.std(ddof=0), f64)
    out("red_f64_prod_ax0", rd.prod(axis=0), f64)
    ri = inp("r345_i32", rng.integers(-9, 10, (3, 4, 5)).astype(i32))
    out("red_i32_sum_all", ri.astype(i64).sum(), i64)  # torch: integer sums are int64
    out("red_i32_sum_ax1", ri.astype(i64).sum(axis=1), i64)
    out("red_i32_max_ax2", ri.max(axis=2), i32)
    out("red_i32_min_all", ri.min(), i32)
    out("red_i32_argmax_ax0", np.argmax(ri, axis=0), i64)  # ties: first index, as torch
    out("red_i32_prod_ax2", (ri.astype(i64) // 3 + 1).prod(axis=2), i64)
    rb = inp("r_bool", rng.random((4, 5)) < 0.4)
    out("red_bool_sum_ax0", rb.astype(i64).sum(axis=0), i64)

    # ---------------------------------------------------------------- matmul and dot
    v4 = inp("v4", randn(4))
    w4 = inp("w4", randn(4))
    m34 = inp("m34", randn(3, 4))
    m45 = inp("m45", randn(4, 5))
    b234 = inp("b234", randn(2, 3, 4))
    b2134 = inp("b2134", randn(2, 1, 3, 4))
    b542 = inp("b542", randn(5, 4, 2))
    out("matmul_1d_1d", up(v4) @ up(w4), f32)
    out("matmul_2d_1d", up(m34) @ up(v4), f32)
    out("matmul_1d_2d", up(v4) @ up(m45), f32)
    out("matmul_2d_2d", up(m34) @ up(m45), f32)
    out("matmul_3d_2d", up(b234) @ up(m45), f32)
    out("matmul_2d_3d", up(m34) @ up(b542), f32)
    out("matmul_3d_1d", up(b234) @ up(v4), f32)
    out("matmul_1d_3d", up(v4) @ up(b542), f32)
    out("matmul_bcast_batch", up(b2134) @ up(b542), f32)
    out("dot_f32", np.dot(up(v4), up(w4)), f32)
    md1 = inp("m34_f64", randn(3, 4, dtype=f64))
    md2 = inp("m45_f64", randn(4, 5, dtype=f64))
    out("matmul_f64", md1 @ md2, f64)
    mi1 = inp("m34_i64", rng.integers(-5, 6, (3, 4)).astype(i64))
    mi2 = inp("m45_i64", rng.integers(-5, 6, (4, 5)).astype(i64))
    out("matmul_i64", mi1 @ mi2, i64)
    big1 = inp("m_33x70", randn(33, 70))
    big2 = inp("m_70x17", randn(70, 17))
    out("matmul_33x70x17", up(big1) @ up(big2), f32)

    # ---------------------------------------------------------------- shape ops
    s = inp("s234", np.arange(24, dtype=f32).reshape(2, 3, 4) * 0.5 - 3.0)
    out("shape_transpose_0_2", s.transpose(2, 1, 0))
    out("shape_transpose_neg", np.swapaxes(s, -1, -2))
    out("shape_permute_201", s.transpose(2, 0, 1))
    out("shape_reshape_4_m1", s.reshape(4, -1))
    out("shape_reshape_after_permute", s.transpose(2, 0, 1).reshape(6, 4))
    out("shape_flatten", s.reshape(-1))
    out("shape_flatten_dims_1_2", s.reshape(2, 12))
    out("shape_t_2d", m34.T)
    s1 = inp("s1312", randn(1, 3, 1, 2))
    out("shape_squeeze_all", s1.squeeze())
    out("shape_squeeze_dim2", s1.squeeze(2))
    out("shape_unsqueeze_1", np.expand_dims(s, 1))
    out("shape_unsqueeze_neg1", np.expand_dims(s, -1))
    out("shape_expand", np.broadcast_to(a31, (3, 4)))
    out("shape_permute_then_add", s.transpose(1, 0, 2) + s.transpose(1, 0, 2)[:, ::-1, :])

    # ---------------------------------------------------------------- slicing (NumPy semantics)
    g = inp("g56", np.arange(30, dtype=f32).reshape(5, 6) - 10.0)
    out("slice_1to3_rev", g[1:3, ::-1])
    out("slice_step2_last", g[::2, -1])
    out("slice_ellipsis_newaxis", g[..., None])
    out("slice_newaxis_first", g[None, 1:4])
    out("slice_neg_bounds", g[-4:-1, 1:-1])
    out("slice_step2_stepm2", g[::2, ::-2])
    out("slice_rev_from4_to0_stepm2", g[4:0:-2])
    out("slice_row_neg1", g[-1])
    out("slice_scalar_elem", g[2, -3])
    out("slice_clamped_bounds", g[2:100, -100:3])
    out("slice_empty", g[3:1])
    out("slice_rev_then_slice", g[::-1][1:3])
    out("slice_negstep_bounds", g[-1:-4:-1, 5:0:-3])
    out("slice_inclusive_1_3", g[1:4, 2])
    out("slice_then_mul", g[1:3, ::-1] * 2.0)
    g3 = inp("g345", np.arange(60, dtype=i64).reshape(3, 4, 5))
    out("slice3_ellipsis_int", g3[..., 1])
    out("slice3_int_ellipsis", g3[1, ...])
    out("slice3_mixed", g3[::2, None, 1:, -2])
    out("slice3_all_neg_steps", g3[::-1, ::-2, ::-3])

    # ---------------------------------------------------------------- advanced indexing
    t = inp("t35", randn(3, 5))
    idx0 = inp("idx_rows", np.array([2, 0, 2, 1], dtype=i64))
    idx1 = inp("idx_cols", np.array([4, 4, 0, 3, 1, 2], dtype=i64))
    out("index_select_ax0", np.take(t, idx0, axis=0))
    out("index_select_ax1", np.take(t, idx1, axis=1))
    out("index_select_axneg1", np.take(t, idx1, axis=-1))
    idx1_32 = inp("idx_cols_i32", idx1.astype(i32))
    out("index_select_i32_index", np.take(t, idx1_32, axis=1))
    gi1 = inp("gather_idx_ax1", rng.integers(0, 5, (3, 4)).astype(i64))
    gi0 = inp("gather_idx_ax0", rng.integers(0, 3, (2, 5)).astype(i64))
    out("gather_ax1", np.take_along_axis(t, gi1, axis=1))
    out("gather_ax0", np.take_along_axis(t, gi0, axis=0))
    mu = inp("mask_src", unif(0, 1, 4, 5))
    out("masked_select_gt_half", mu[mu > 0.5])
    out("masked_select_bcast_mask", t[np.broadcast_to(np.array([True, False, True, False, True]), t.shape)])
    out("masked_select_int", ia[ia > 0])
    wb = inp("where_b", randn(3, 5))
    out("where_tensor_tensor", np.where(t > 0, t, wb))
    out("where_scalar_else", np.where(t > 0, t, f32(0.0)))
    out("where_bcast_cond", np.where(np.array([True, False, True])[:, None], t, wb))
    labels = inp("labels", np.array([0, 3, 1, 1, 2, 0, 3], dtype=i64))
    out("one_hot_eye_index", np.eye(4, dtype=f32)[labels])
    out("one_hot_method", np.eye(4, dtype=i64)[labels])

    # ---------------------------------------------------------------- cat, stack, split
    c1 = inp("cat_a", randn(2, 3))
    c2 = inp("cat_b", randn(4, 3))
    c3 = inp("cat_c", randn(2, 1))
    out("cat_ax0", np.concatenate([c1, c2], axis=0))
    out("cat_ax1", np.concatenate([c1, c3, c1], axis=1))
    out("cat_axneg1", np.concatenate([c3, c1], axis=-1))
    out("cat_promote_i64_f32", np.concatenate([ia[:2, :3].astype(f32), c1], axis=0))
    out("stack_ax0", np.stack([c1, c1 * 2, c1 - 1], axis=0))
    out("stack_ax1", np.stack([c1, c1 * 2], axis=1))
    out("stack_axneg1", np.stack([c1, c1 * 2], axis=-1))
    xn = inp("x100x3", (randn(100, 3) * np.array([1.0, 10.0, 0.1], dtype=f32) + np.array([0.0, 5.0, -2.0], dtype=f32)).astype(f32))
    for k, piece in enumerate(np.array_split(xn, range(16, 100, 16), axis=0)):
        out(f"split16_piece{k}", piece)
    for k, piece in enumerate(np.array_split(xn, [15 * j for j in range(1, 7)], axis=0)):
        out(f"chunk7_piece{k}", piece)  # torch.chunk(x, 7): pieces of ceil(100/7) = 15 rows
    for k, piece in enumerate(np.array_split(xn, [2], axis=1)):
        out(f"split2_ax1_piece{k}", piece)

    # ---------------------------------------------------------------- creation
    out("arange_int_10", np.arange(10), i64)
    out("arange_int_6_10", np.arange(6, 10), i64)
    out("arange_int_neg_step", np.arange(10, -3, -3), i64)
    n = int(np.ceil((1.0 - 0.0) / 0.1))
    out("arange_float_0_1_01", 0.0 + np.arange(n, dtype=f64) * 0.1, f32)  # torch: start + i*step in f64
    n = int(np.ceil((1.0 - -1.0) / 0.25))
    out("arange_float_m1_1_025", -1.0 + np.arange(n, dtype=f64) * 0.25, f32)
    out("arange_float_end_5", np.arange(5, dtype=f64), f32)
    n = int(np.ceil((0.0 - 2.0) / -0.3))
    out("arange_float_neg_step", 2.0 + np.arange(n, dtype=f64) * -0.3, f32)
    out("linspace_0_1_5", np.linspace(0.0, 1.0, 5), f32)
    out("linspace_m3_7_11", np.linspace(-3.0, 7.0, 11), f32)
    out("linspace_0_1_7", np.linspace(0.0, 1.0, 7), f32)
    out("linspace_1_0_4", np.linspace(1.0, 0.0, 4), f32)
    out("linspace_single", np.linspace(2.0, 5.0, 1), f32)
    out("eye_4", np.eye(4), f32)
    out("eye_3x5", np.eye(3, 5), f32)
    out("eye_5x2", np.eye(5, 2), f32)

    # ---------------------------------------------------------------- tutorial normalization
    XN = up(xn)
    out("normalize_mean0", XN.mean(0), f32)
    out("normalize_std0", XN.std(0, ddof=1), f32)
    out("normalize", (XN - XN.mean(0)) / (XN.std(0, ddof=1) + 1e-8), f32)

    # ---------------------------------------------------------------- dtype conversions
    cv = inp("conv_f32", np.array([-2.7, -2.5, -1.0, -0.5, -0.0, 0.0, 0.4, 0.5, 1.0, 2.5, 2.7, 1e6 + 0.5, -123456.75], dtype=f32))
    out("conv_f32_to_i64", cv.astype(i64))  # truncation toward zero
    out("conv_f32_to_i32", cv.astype(i32))
    out("conv_f32_to_bool", cv.astype(np.bool_))
    out("conv_f32_to_f64", cv.astype(f64))
    ci = inp("conv_i64", np.array([0, 1, -3, 0, 7, -1, 2**40, -(2**33)], dtype=i64))
    out("conv_i64_to_bool", ci.astype(np.bool_))
    out("conv_i64_to_f32", ci.astype(f32))
    out("conv_i64_to_f64", ci.astype(f64))
    out("conv_i64_to_i32_small", ci[:6].astype(i32))
    out("conv_bool_to_f32", la.astype(f32))
    out("conv_bool_to_i64", la.astype(i64))
    cd = inp("conv_f64", np.array([0.1, 1.0 / 3.0, -2.0 / 3.0, 1e-30, 3.4e38, -7.9], dtype=f64))
    out("conv_f64_to_f32", cd.astype(f32))
    out("conv_f64_to_i64", cd[[0, 1, 2, 3, 5]].astype(i64))

    # ---------------------------------------------------------------- special values
    sv = inp("special", np.array([0.0, -0.0, -1.0, 1e-30, 100.0, -100.0, np.inf, -np.inf, np.nan], dtype=f32))
    SV = up(sv)
    with np.errstate(all="ignore"):
        out("special_exp", np.exp(SV), f32)
        out("special_log", np.log(SV), f32)
        out("special_sqrt", np.sqrt(SV), f32)
        out("special_tanh", np.tanh(SV), f32)
        out("special_sigmoid", 1.0 / (1.0 + np.exp(-SV)), f32)
        out("special_relu", np.maximum(SV, 0.0), f32)  # NaN propagates, as torch.relu
        out("special_abs", np.abs(SV), f32)
        out("special_clamp", np.clip(SV, -1.0, 1.0), f32)
        out("special_recip", 1.0 / SV, f32)
        out("special_floordiv_by_zero", np.floor_divide(np.array([1.0, -1.0, 0.0, 2.5], dtype=f32), f32(0.0)), f32)
        out("special_remainder_by_zero", np.remainder(np.array([1.0, -1.0, 0.0, 2.5], dtype=f32), f32(0.0)), f32)
        pw_b = inp("special_pow_base", np.array([0.0, 0.0, 0.0, -8.0, -2.0, 1.0, np.inf, 2.0], dtype=f32))
        pw_e = inp("special_pow_exp", np.array([0.0, -1.0, 2.0, 1.0 / 3.0, 0.5, np.nan, -1.0, np.inf], dtype=f32))
        out("special_pow", up(pw_b) ** up(pw_e), f32)
    out("special_to_bool", sv.astype(np.bool_))
    out("special_argmax_nan", np.argmax(np.array([1.0, np.nan, 3.0, np.nan, -np.inf, 0.0, -0.5])), i64)
    out("special_argmin_nan", np.argmin(np.array([1.0, np.nan, 3.0, np.nan, -np.inf, 0.0, -0.5])), i64)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out("special_var_single_elem", up(a31).var(axis=1, ddof=1), f32)  # 0/0: NaN, as torch
    out("special_var_single_elem_ddof0", up(a31).var(axis=1, ddof=0), f32)

    # ---------------------------------------------------------------- large reductions
    # Input defined by a formula that tenjit builds too (1e6 elements would not fit the data
    # budget): x[i] = ((i * 7919) % 1000) / 1000 in float32.
    big = ((np.arange(1_000_000, dtype=i64) * 7919) % 1000).astype(f32) / f32(1000.0)
    B = up(big)
    out("big_sum_1e6", B.sum(), f32)
    out("big_mean_1e6", B.mean(), f32)
    out("big_var_1e6", B.var(ddof=1), f32)
    out("big_sum_rows_1000x1000", B.reshape(1000, 1000).sum(axis=1), f32)
    out("big_sum_cols_1000x1000", B.reshape(1000, 1000).sum(axis=0), f32)
    off = inp("var_offset", (randn(50) + f32(10000.0)).astype(f32))
    out("var_large_offset", up(off).var(ddof=1), f32)
    out("std_large_offset", up(off).std(ddof=1), f32)

    # ---------------------------------------------------------------- compound expressions (fusion)
    q = up(u)  # (4, 6)
    e = np.exp(q - q.max(axis=1, keepdims=True))
    out("fused_softmax_ax1", e / e.sum(axis=1, keepdims=True), f32)
    out("fused_logsumexp_ax1", np.log(np.exp(q).sum(axis=1)), f32)
    out("fused_permute_affine_sum", (R.transpose(2, 0, 1) * 2.0 + 1.0).sum(axis=1), f32)
    out("fused_slice_mean", R[:, ::-1, 1:4].mean(axis=1, keepdims=True), f32)
    out("fused_matmul_transposed", up(m45).T @ up(m34).T, f32)
    out("fused_matmul_sliced", up(g)[::2, 1:5] @ up(m45), f32)
    y35 = inp("y35", randn(3, 5))
    out("fused_mse", ((up(m34) @ up(m45) - up(y35)) ** 2).mean(), f32)
    out("fused_outer_then_sum", (up(a41) * up(b15)).sum(axis=0), f32)
    out("fused_where_chain_sum", np.where(q > 0, q * 2.0, -q).sum(axis=1), f32)
    out("fused_cat_then_sum", np.concatenate([up(c1), up(c2)], axis=0).sum(axis=0), f32)
    out("fused_linear_relu", np.maximum(up(m34) @ up(m45) + up(b15), 0.0), f32)
    out("fused_reduce_reuse", (R - R.mean(axis=2, keepdims=True)) * R.sum(axis=(0, 2))[None, :, None], f32)

    # ---------------------------------------------------------------- edge cases
    out("edge_masked_select_transposed", t.T[t.T > 0])  # row-major order of the transposed view
    out("edge_index_select_permuted", np.take(r.transpose(1, 0, 2), idx0[:3] % 3, axis=1))
    out("edge_gather_axneg1", np.take_along_axis(t, gi1, axis=-1))
    out("edge_cat_transposed", np.concatenate([c1.T, c2.T], axis=1))
    out("edge_argmax_permuted_keep", R.transpose(2, 1, 0).argmax(axis=1, keepdims=True), i64)
    out("edge_slice_clamp_negstep", g[100:-100:-2])
    out("edge_slice_of_transposed", g.T[1:5:2, ::-3])
    big32 = inp("i32_big", np.array([2**31 - 1, 2**31 - 1, 2**31 - 2, 5], dtype=i32))
    out("edge_i32_sum_no_overflow", big32.astype(i64).sum(), i64)  # torch sums int32 as int64
    with np.errstate(over="ignore"):
        out("edge_i32_mul_wraps", big32 * np.int32(3), i32)  # two's complement, as torch
        big64 = inp("i64_big", np.array([2**62, 2**63 - 1, -(2**63)], dtype=i64))
        out("edge_i64_add_wraps", big64 + big64, i64)
    out("edge_linspace_zero_steps", np.linspace(0.0, 1.0, 0), f32)
    out("edge_arange_empty", np.arange(3, 3), i64)
    emp = inp("empty_0x3", np.zeros((0, 3), dtype=f32))
    out("edge_sum_empty_ax0", up(emp).sum(axis=0), f32)
    out("edge_prod_empty_ax0", up(emp).prod(axis=0), f32)
    out("edge_sum_empty_all", up(emp).sum(), f32)
    out("edge_sum_empty_ax1", up(emp).sum(axis=1), f32)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out("edge_mean_empty_ax0", up(emp).mean(axis=0), f32)  # 0/0: NaN, as torch
    # PyTorch promotion with 0-d tensors (NumPy 2 differs): a 0-d tensor of the same category
    # does not widen a dimensioned one, so f32[n] + f64[] is f32 and i32[n] + i64[] is i32.
    z64 = inp("zerodim_f64", np.array(0.1, dtype=f64))
    zi64 = inp("zerodim_i64", np.array(7, dtype=i64))
    out("promote_f32_plus_0d_f64", up(xf) + z64, f32)
    out("promote_i32_plus_0d_i64", ia32 + np.int32(7), i32)
    out("promote_i32_times_0d_f64", ia32.astype(f64) * z64, f64)  # higher category: the 0-d dtype
    out("promote_0d_i64_plus_0d_f64", zi64 + z64, f64)

    total = sum(os.path.getsize(os.path.join(d, f)) for d in (IN, OUT) for f in os.listdir(d))
    print(f"wrote {len(os.listdir(IN))} inputs and {len(os.listdir(OUT))} expected values, {total} bytes")


if __name__ == "__main__":
    main()
