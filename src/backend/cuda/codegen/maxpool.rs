//! Max pooling's library steps (`max_pool2d_select`, `max_pool2d_scatter`) as kernels, one
//! thread per output element. A selection finds its window's first maximum and copies the
//! chosen element; a scatter's thread owns one input element and walks, in row-major order,
//! the windows that cover it, adding the gradient of each window whose first maximum it is, in
//! `double`, rounded once: no atomics, and the interpreter's result bit for bit.

use super::sizes::{decompose, Sizes};
use super::{ctype, int_lit, load_elem, store_elem};
use tenjit_ir::ops::{PoolOp, PoolRole};
use tenjit_ir::DType;

/// The loop body of the grid-stride kernel for `op` on input sizes `input` and output sizes
/// `output`: reads `b{x}` and `b{other}`, writes `b{out}[flat]` (of dimensions `out_dims`,
/// indices `names`), indented by `ind`. The tensors' extents are size parameters of `sizes`;
/// the window's geometry is the op's and stays literal.
#[allow(clippy::too_many_arguments)]
pub(super) fn body(
    op: &PoolOp,
    (input, output): ([usize; 4], [usize; 4]),
    dt: DType,
    (x, other, out): (usize, usize, usize),
    out_dims: &[usize],
    names: &[String],
    ind: &str,
    sizes: &Sizes,
) -> String {
    let mut text = decompose(sizes, "flat", out_dims, names, ind);
    let (n0, n1, n2, n3) = (&names[0], &names[1], &names[2], &names[3]);
    let c = sizes.extent(input[1]).name;
    let [oh, ow] = [output[2], output[3]].map(|d| sizes.extent(d).name);
    text.push_str(&format!("{ind}const long long plane = {n0} * {c} + {n1};\n"));
    match op.role {
        PoolRole::Select => {
            text.push_str(&first_max(op, input, dt, x, n2, n3, ind, sizes));
            text.push_str(&format!("{ind}b{out}[flat] = b{other}[best];\n"));
        }
        PoolRole::Scatter => {
            let g = &op.geometry;
            let [k0, k1] = g.kernel.map(|d| int_lit(d as i64));
            let [s0, s1] = g.stride.map(|d| int_lit(d as i64));
            let [p0, p1] = g.padding.map(|d| int_lit(d as i64));
            let gv = load_elem(dt, &format!("b{other}[(plane * {oh} + i) * {ow} + j]"));
            let inner = format!("{ind}    ");
            text.push_str(&format!(
                "{ind}double acc = 0;\n\
                 {ind}const long long th = {n2} + {p0} - ({k0} - 1), tw = {n3} + {p1} - ({k1} - 1);\n\
                 {ind}const long long i_lo = th <= 0 ? 0 : (th + {s0} - 1) / {s0}, j_lo = tw <= 0 ? 0 : (tw + {s1} - 1) / {s1};\n\
                 {ind}const long long i_hi = ({n2} + {p0}) / {s0} < {oh} - 1 ? ({n2} + {p0}) / {s0} : {oh} - 1;\n\
                 {ind}const long long j_hi = ({n3} + {p1}) / {s1} < {ow} - 1 ? ({n3} + {p1}) / {s1} : {ow} - 1;\n\
                 {ind}for (long long i = i_lo; i <= i_hi; ++i)\n\
                 {ind}for (long long j = j_lo; j <= j_hi; ++j) {{\n"
            ));
            text.push_str(&first_max(op, input, dt, x, "i", "j", &inner, sizes));
            text.push_str(&format!("{inner}if (best == flat) acc += (double){gv};\n{ind}}}\n"));
            let value = match dt {
                DType::F64 => "acc".to_string(),
                _ => "(float)acc".to_string(),
            };
            text.push_str(&format!("{ind}b{out}[flat] = {};\n", store_elem(dt, &value)));
        }
    }
    text
}

/// Code that sets `best` to the flat index in `b{x}` of the first maximum of window
/// `(i, j)` of plane `plane`: row-major over the taps, padding skipped, a NaN chosen over any
/// number, `+0` over `-0` and otherwise the first of equal elements kept.
#[allow(clippy::too_many_arguments)]
fn first_max(
    op: &PoolOp,
    input: [usize; 4],
    dt: DType,
    x: usize,
    i: &str,
    j: &str,
    ind: &str,
    sizes: &Sizes,
) -> String {
    let g = &op.geometry;
    let [h, w] = [input[2], input[3]].map(|d| sizes.extent(d).name);
    let [k0, k1] = g.kernel.map(|d| int_lit(d as i64));
    let [s0, s1] = g.stride.map(|d| int_lit(d as i64));
    let [p0, p1] = g.padding.map(|d| int_lit(d as i64));
    let ty = ctype(dt);
    let v = load_elem(dt, &format!("b{x}[k]"));
    format!(
        "{ind}long long best = -1;\n\
         {ind}{ty} bv = 0;\n\
         {ind}for (long long p = 0; p < {k0}; ++p) {{\n\
         {ind}    const long long ih = {i} * {s0} + p - {p0};\n\
         {ind}    if (ih < 0 || ih >= {h}) continue;\n\
         {ind}    for (long long q = 0; q < {k1}; ++q) {{\n\
         {ind}        const long long iw = {j} * {s1} + q - {p1};\n\
         {ind}        if (iw < 0 || iw >= {w}) continue;\n\
         {ind}        const long long k = (plane * {h} + ih) * {w} + iw;\n\
         {ind}        const {ty} v = {v};\n\
         {ind}        if (best < 0 || (bv == bv && (v != v || v > bv || (v == bv && signbit(bv) && !signbit(v))))) {{ best = k; bv = v; }}\n\
         {ind}    }}\n\
         {ind}}}\n"
    )
}
