//! The convolution library steps (`conv2d`, `conv2d_input`, `conv2d_weight`) as direct
//! kernels: one thread per output element, summing its terms in a fixed order in `float`
//! (`double` for `f64`), so results are deterministic. These are correct, not fast: the
//! weight gradient's thread walks the whole batch and output plane. cuDNN (or an implicit-GEMM
//! kernel of our own) is the way to speed, once a GPU can measure it.

use super::sizes::{decompose, Sizes};
use super::{ctype, int_lit, load_elem, store_elem};
use tenjit_ir::ops::{ConvOp, ConvRole, ConvSizes};
use tenjit_ir::DType;

/// The loop body of the grid-stride kernel for `op` with sizes `s`: reads `b{a}` and `b{b}` (the
/// step's operands, in the op's order), writes `b{out}[flat]`, whose dimensions are
/// `out_dims`; `names` are the four output index names and `ind` the indentation. The tensors'
/// extents are size parameters of `sizes`; the geometry (stride, dilation, padding, groups) is
/// the op's and stays literal.
#[allow(clippy::too_many_arguments)]
pub(super) fn body(
    op: &ConvOp,
    s: &ConvSizes,
    dt: DType,
    (a, b, out): (usize, usize, usize),
    out_dims: &[usize],
    names: &[String],
    ind: &str,
    sizes: &Sizes,
) -> String {
    let g = &op.geometry;
    let mut text = decompose(sizes, "flat", out_dims, names, ind);
    // One list of extents for the three roles: a role passes some it does not read.
    let ext = |d: usize| sizes.extent(d).name;
    let [c, h, w] = [s.input[1], s.input[2], s.input[3]].map(ext);
    let [o, cg, kh, kw] = s.weight.map(ext);
    let [n, oh, ow] = [s.output[0], s.output[2], s.output[3]].map(ext);
    let og = ext(s.weight[0] / g.groups);
    let [s0, s1] = g.stride.map(|d| int_lit(d as i64));
    let [d0, d1] = g.dilation.map(|d| int_lit(d as i64));
    let [p0, p1] = g.padding.map(|d| int_lit(d as i64));
    let acc = ctype(dt);
    let (i0, i1, i2, i3) = (&names[0], &names[1], &names[2], &names[3]);
    let load = |buf: usize, at: &str| load_elem(dt, &format!("b{buf}[{at}]"));
    let inner = format!("{ind}        ");
    text.push_str(&format!("{ind}{acc} acc = 0;\n"));
    match op.role {
        ConvRole::Forward => {
            // out [N, O, OH, OW]: input rows of the output channel's group.
            let x = load(a, &format!("(({i0} * {c} + grp * {cg} + ci) * {h} + ih) * {w} + iw"));
            let wt = load(b, &format!("(({i1} * {cg} + ci) * {kh} + p) * {kw} + q"));
            text.push_str(&format!(
                "{ind}const long long grp = {i1} / {og};\n\
                 {ind}for (long long ci = 0; ci < {cg}; ++ci)\n\
                 {ind}for (long long p = 0; p < {kh}; ++p) {{\n\
                 {ind}    const long long ih = {i2} * {s0} + p * {d0} - {p0};\n\
                 {ind}    if (ih < 0 || ih >= {h}) continue;\n\
                 {ind}    for (long long q = 0; q < {kw}; ++q) {{\n\
                 {ind}        const long long iw = {i3} * {s1} + q * {d1} - {p1};\n\
                 {ind}        if (iw < 0 || iw >= {w}) continue;\n\
                 {inner}acc += {x} * {wt};\n\
                 {ind}    }}\n\
                 {ind}}}\n"
            ));
        }
        ConvRole::Input { .. } => {
            // out [N, C, H, W]: every output position whose window covers (ih, iw) = (i2, i3).
            let dy = load(a, &format!("(({i0} * {o} + oc) * {oh} + y) * {ow} + x"));
            let wt = load(b, &format!("((oc * {cg} + ci) * {kh} + p) * {kw} + q"));
            text.push_str(&format!(
                "{ind}const long long grp = {i1} / {cg}, ci = {i1} % {cg};\n\
                 {ind}for (long long oc = grp * {og}; oc < (grp + 1) * {og}; ++oc)\n\
                 {ind}for (long long p = 0; p < {kh}; ++p) {{\n\
                 {ind}    const long long ty = {i2} + {p0} - p * {d0};\n\
                 {ind}    if (ty < 0 || ty % {s0} != 0 || ty / {s0} >= {oh}) continue;\n\
                 {ind}    const long long y = ty / {s0};\n\
                 {ind}    for (long long q = 0; q < {kw}; ++q) {{\n\
                 {ind}        const long long tx = {i3} + {p1} - q * {d1};\n\
                 {ind}        if (tx < 0 || tx % {s1} != 0 || tx / {s1} >= {ow}) continue;\n\
                 {ind}        const long long x = tx / {s1};\n\
                 {inner}acc += {dy} * {wt};\n\
                 {ind}    }}\n\
                 {ind}}}\n"
            ));
        }
        ConvRole::Weight { .. } => {
            // out [O, C/G, kH, kW]: the whole batch and output plane.
            let x = load(a, &format!("((m * {c} + ch) * {h} + ih) * {w} + iw"));
            let dy = load(b, &format!("((m * {o} + {i0}) * {oh} + y) * {ow} + xo"));
            text.push_str(&format!(
                "{ind}const long long ch = ({i0} / {og}) * {cg} + {i1};\n\
                 {ind}for (long long m = 0; m < {n}; ++m)\n\
                 {ind}for (long long y = 0; y < {oh}; ++y) {{\n\
                 {ind}    const long long ih = y * {s0} + {i2} * {d0} - {p0};\n\
                 {ind}    if (ih < 0 || ih >= {h}) continue;\n\
                 {ind}    for (long long xo = 0; xo < {ow}; ++xo) {{\n\
                 {ind}        const long long iw = xo * {s1} + {i3} * {d1} - {p1};\n\
                 {ind}        if (iw < 0 || iw >= {w}) continue;\n\
                 {inner}acc += {x} * {dy};\n\
                 {ind}    }}\n\
                 {ind}}}\n"
            ));
        }
    }
    text.push_str(&format!("{ind}b{out}[flat] = {};\n", store_elem(dt, "acc")));
    text
}
