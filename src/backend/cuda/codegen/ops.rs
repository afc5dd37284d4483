//! Library steps as kernels: gather, scatter_add, concat, pad, the convolutions and max
//! pooling ([`OpStep`]s; their bodies are in `conv.rs` and `maxpool.rs`) and the matrix
//! product kernel of a [`MatmulStep`].
//!
//! Each is a grid-stride loop over its output, one thread per output element, so every
//! result is computed by one thread in the interpreter's order: `scatter_add` included, whose
//! thread for an output element walks the index along the axis and adds the matching source
//! elements in row-major order. Its float results are therefore deterministic and equal to
//! the interpreter's bit for bit; the cost is `base.numel() × index.shape[axis]` index reads.
//!
//! Every size is a parameter (see the parent module's "Sizes are parameters"): the output's
//! count and extents, the operands' extents and dense strides, the matrix product's strides
//! and offsets, a concat's boundaries. An op's attributes (the axis, a pad's widths, a
//! convolution's or pool's stride, dilation, padding and window) are its structure and stay
//! literals.

use super::sizes::{affine, decompose, Sizes};
use super::{
    buffer, c_name, cast, check_bounds, ctype, grid_for, index_names, invalid, literal, load_elem, params,
    signature, store_elem, CodegenError, RenderedKernel, ELEMENTWISE_BLOCK,
};
use tenjit_ir::kernel::{BufferDecl, MatmulStep, OpStep};
use tenjit_ir::ops::{Library, OpKind};
use tenjit_ir::types::Category;
use tenjit_ir::{DType, Op, Scalar, Shape};

/// Dense row-major strides of `dims`.
fn strides(dims: &[usize]) -> Vec<i64> {
    let mut s = vec![0i64; dims.len()];
    let mut acc = 1i64;
    for d in (0..dims.len()).rev() {
        s[d] = acc;
        acc = acc.saturating_mul(dims[d] as i64);
    }
    s
}

/// The opening of a grid-stride kernel over `n` (a C expression) output elements named `flat`.
fn open(name: &str, comment: &str, sig: &str, n: &str) -> String {
    let block = ELEMENTWISE_BLOCK;
    format!(
        "// {comment}\nextern \"C\" __global__ void __launch_bounds__({block}) {name}({sig}) {{\n    \
         for (long long flat = blockIdx.x * (long long)blockDim.x + threadIdx.x; flat < {n}; flat += (long long)gridDim.x * blockDim.x) {{\n"
    )
}

/// Renders a library step as kernel `name`.
pub(super) fn render_op(
    name: &str,
    step: &OpStep,
    buffers: &[BufferDecl],
) -> Result<RenderedKernel, CodegenError> {
    let shape = |b: usize| -> Result<(DType, Shape), CodegenError> {
        let d = buffer(name, buffers, b)?;
        Ok((d.ty.dtype, d.ty.shape.clone()))
    };
    let arg =
        |i: usize| step.args.get(i).copied().ok_or_else(|| invalid(name, format!("operand {i} is missing")));
    let (dt, out_shape) = shape(step.out)?;
    let out_dims = out_shape.dims().to_vec();
    let n = out_shape.numel();
    let names = index_names("c", out_dims.len());
    let sizes = Sizes::default();
    let total = sizes.extent(n);
    let ext = |v: usize| sizes.extent(v).name;
    let fname = c_name(name);
    let ind = "        ";
    let mut after = String::new();
    let OpKind::Library(library) = step.op.kind() else {
        return Err(CodegenError::Unsupported {
            step: name.to_string(),
            message: format!(
                "{} as a library step (it belongs in a fused kernel or a matmul step)",
                step.op.name()
            ),
        });
    };
    let (uses, can_fail, comment, body): (Vec<(usize, bool, bool)>, bool, String, String) = match library {
        Library::Gather { axis } => {
            let (x, idx) = (arg(0)?, arg(1)?);
            let (_, xs) = shape(x)?;
            let xdims = xs.dims();
            if axis >= xdims.len() || xdims.len() != out_dims.len() || shape(idx)?.1.dims() != out_dims {
                return Err(invalid(name, "gather operands do not fit"));
            }
            let mut terms: Vec<String> = names.clone();
            terms[axis] = "k".into();
            let decomp = decompose(&sizes, "flat", &out_dims, &names, ind);
            let bound = ext(xdims[axis]);
            let at = affine(&sizes, 0, &strides(xdims), &terms);
            let body = format!(
                "{decomp}{ind}const long long k = b{idx}[flat];\n\
                 {ind}if (k < 0 || k >= {bound}) {{ tj_fail(err, TJ_ERR_GATHER_INDEX); b{o}[flat] = 0; continue; }}\n\
                 {ind}b{o}[flat] = b{x}[{at}];\n",
                o = step.out,
            );
            (
                vec![(x, true, false), (idx, true, false), (step.out, false, true)],
                true,
                format!("{name}: gather along axis {axis}: out[c] = b{x}[c with axis {axis} replaced by b{idx}[c]]"),
                body,
            )
        }
        Library::ScatterAdd { axis } => {
            let (base, idx, src) = (arg(0)?, arg(1)?, arg(2)?);
            let (_, is) = shape(idx)?;
            let idims = is.dims().to_vec();
            if axis >= out_dims.len() || idims.len() != out_dims.len() || shape(src)?.1.dims() != idims {
                return Err(invalid(name, "scatter_add operands do not fit"));
            }
            if shape(base)?.1.dims() != out_dims {
                return Err(invalid(name, "scatter_add base and output differ"));
            }
            // Each addition rounded to the dtype (a 16-bit float's in `float`), as the
            // interpreter adds.
            let add = match dt.category() {
                Category::Float => {
                    cast(dt.compute(), dt, &format!("acc + {}", load_elem(dt, &format!("b{src}[p]"))))
                }
                Category::Int => format!("tj_add(acc, b{src}[p])"),
                Category::Bool => return Err(invalid(name, "scatter_add of bool")),
            };
            let mut terms = names.clone();
            terms[axis] = "t".into();
            let decomp = decompose(&sizes, "flat", &out_dims, &names, ind);
            let at = affine(&sizes, 0, &strides(&idims), &terms);
            let fits: Vec<String> = (0..idims.len())
                .filter(|&d| d != axis)
                .map(|d| format!("{} < {}", names[d], ext(idims[d])))
                .collect();
            let along = ext(idims[axis]);
            let fits = if fits.is_empty() { "true".to_string() } else { fits.join(" && ") };
            let t = ctype(dt);
            let (init, result) = (load_elem(dt, &format!("b{base}[flat]")), store_elem(dt, "acc"));
            let body = format!(
                "{decomp}{ind}{t} acc = {init};\n\
                 {ind}if ({fits}) {{\n\
                 {ind}    for (long long t = 0; t < {along}; ++t) {{\n\
                 {ind}        const long long p = {at};\n\
                 {ind}        if (b{idx}[p] == {}) acc = {add};\n\
                 {ind}    }}\n\
                 {ind}}}\n\
                 {ind}b{o}[flat] = {result};\n",
                names[axis],
                o = step.out,
            );
            after = format!(
                "    // Every index is checked, in a second grid-stride loop over the index.\n    \
                 for (long long q = blockIdx.x * (long long)blockDim.x + threadIdx.x; q < {}; q += (long long)gridDim.x * blockDim.x) {{\n\
                 {ind}if (b{idx}[q] < 0 || b{idx}[q] >= {}) tj_fail(err, TJ_ERR_SCATTER_INDEX);\n    }}\n",
                ext(is.numel()),
                ext(out_dims[axis]),
            );
            (
                vec![(base, true, false), (idx, true, false), (src, true, false), (step.out, false, true)],
                true,
                format!(
                    "{name}: scatter_add along axis {axis}: each output element adds its sources in order (deterministic)"
                ),
                body,
            )
        }
        Library::Concat { axis } => {
            if axis >= out_dims.len() || step.args.is_empty() {
                return Err(invalid(name, "concat operands do not fit"));
            }
            let mut body = decompose(&sizes, "flat", &out_dims, &names, ind);
            let mut start = 0usize;
            let mut uses = vec![(step.out, false, true)];
            for (j, &a) in step.args.iter().enumerate() {
                let (_, s) = shape(a)?;
                let dims = s.dims();
                if dims.len() != out_dims.len() {
                    return Err(invalid(name, "concat operands do not fit"));
                }
                let mut terms = names.clone();
                if start > 0 {
                    terms[axis] = format!("({} - {})", names[axis], sizes.value(start as i64).name);
                }
                let end = start + dims[axis];
                let cond = if step.args.len() == 1 {
                    ind.to_string()
                } else if j + 1 == step.args.len() {
                    format!("{ind}else ")
                } else if j == 0 {
                    format!("{ind}if ({} < {}) ", names[axis], sizes.value(end as i64).name)
                } else {
                    format!("{ind}else if ({} < {}) ", names[axis], sizes.value(end as i64).name)
                };
                let at = affine(&sizes, 0, &strides(dims), &terms);
                body.push_str(&format!("{cond}b{}[flat] = b{a}[{at}];\n", step.out));
                uses.push((a, true, false));
                start = end;
            }
            if start != out_dims[axis] {
                return Err(invalid(name, "concat operands do not fill the output"));
            }
            (uses, false, format!("{name}: concat along axis {axis}"), body)
        }
        Library::Conv(c) => {
            let (a, b) = (arg(0)?, arg(1)?);
            let conv_sizes = c.sizes(&shape(a)?.1, &shape(b)?.1).map_err(|e| invalid(name, e.to_string()))?;
            if out_dims.len() != 4 {
                return Err(invalid(name, "a convolution's result is not 4-D"));
            }
            let body =
                super::conv::body(c, &conv_sizes, dt, (a, b, step.out), &out_dims, &names, ind, &sizes);
            let attrs: Vec<String> = c.attrs().into_iter().map(|(k, v)| format!("{k}={v}")).collect();
            (
                vec![(a, true, false), (b, true, false), (step.out, false, true)],
                false,
                format!("{name}: {} {}", c.name(), attrs.join(", ")),
                body,
            )
        }
        Library::Pool(p) => {
            let (x, other) = (arg(0)?, arg(1)?);
            let pool_sizes =
                p.sizes(&shape(x)?.1, &shape(other)?.1).map_err(|e| invalid(name, e.to_string()))?;
            if out_dims.len() != 4 {
                return Err(invalid(name, "a max pool's result is not 4-D"));
            }
            let body =
                super::maxpool::body(p, pool_sizes, dt, (x, other, step.out), &out_dims, &names, ind, &sizes);
            let attrs: Vec<String> = p.attrs().into_iter().map(|(k, v)| format!("{k}={v}")).collect();
            (
                vec![(x, true, false), (other, true, false), (step.out, false, true)],
                false,
                format!("{name}: {} {}", p.name(), attrs.join(", ")),
                body,
            )
        }
        Library::Pad { lo, .. } => {
            let x = arg(0)?;
            let (_, xs) = shape(x)?;
            let xdims = xs.dims();
            if lo.len() != xdims.len() || out_dims.len() != xdims.len() {
                return Err(invalid(name, "pad operand does not fit"));
            }
            let decomp = decompose(&sizes, "flat", &out_dims, &names, ind);
            let inside: Vec<String> = (0..xdims.len())
                .map(|d| {
                    let c = if lo[d] == 0 { names[d].clone() } else { format!("({} - {})", names[d], lo[d]) };
                    format!("{c} >= 0 && {c} < {}", ext(xdims[d]))
                })
                .collect();
            let inside = if inside.is_empty() { "true".to_string() } else { inside.join(" && ") };
            let terms: Vec<String> = (0..xdims.len())
                .map(|d| if lo[d] == 0 { names[d].clone() } else { format!("({} - {})", names[d], lo[d]) })
                .collect();
            let zero = match dt {
                DType::Bool => "0".to_string(),
                // The bits of +0.0.
                DType::F16 | DType::BF16 => "0".to_string(),
                DType::I32 | DType::I64 | DType::F32 | DType::F64 => literal(Scalar::Int(0), dt),
            };
            let at = affine(&sizes, 0, &strides(xdims), &terms);
            let body = format!("{decomp}{ind}b{o}[flat] = ({inside}) ? b{x}[{at}] : {zero};\n", o = step.out);
            (vec![(x, true, false), (step.out, false, true)], false, format!("{name}: zero padding"), body)
        }
    };
    let params = params(name, buffers, &uses, &sizes, can_fail)?;
    let mut source = open(
        &fname,
        &format!("{comment}; {}", step.reason.replace('\n', " ")),
        &signature(&params),
        &total.name,
    );
    source.push_str(&body);
    source.push_str("    }\n");
    source.push_str(&after);
    source.push_str("}\n");
    let launch = match &step.op {
        // The index check needs threads even when the output is empty.
        Op::ScatterAdd { .. } => {
            let idx_n = step.args.get(1).and_then(|&b| buffers.get(b)).map_or(0, |d| d.ty.shape.numel());
            grid_for((total.value as usize).max(idx_n), ELEMENTWISE_BLOCK)
        }
        _ => grid_for(total.value as usize, ELEMENTWISE_BLOCK),
    };
    Ok(RenderedKernel { name: fname, source, launch, params })
}

/// Renders a matrix product as kernel `name`: one thread per output element, `k` in
/// increasing order, floats accumulated in `f64` from `-0.0` (as the interpreter's sum),
/// integers wrapping in 64 bits.
pub(super) fn render_matmul(
    name: &str,
    m: &MatmulStep,
    buffers: &[BufferDecl],
) -> Result<RenderedKernel, CodegenError> {
    let nb = m.batch.len();
    if m.a.batch_strides.len() != nb || m.b.batch_strides.len() != nb {
        return Err(invalid(name, "batch strides do not match the batch dims"));
    }
    let check = |op: &tenjit_ir::kernel::MatOperand, rows: usize, cols: usize, what: &str| {
        let len = buffer(name, buffers, op.buf)?.ty.shape.numel();
        let mut st = op.batch_strides.clone();
        st.extend([op.row_stride, op.col_stride]);
        let mut dims = m.batch.clone();
        dims.extend([rows, cols]);
        check_bounds(name, what, op.offset, &st, &dims, len)
    };
    check(&m.a, m.m, m.k, "left operand")?;
    check(&m.b, m.k, m.n, "right operand")?;
    let out = buffer(name, buffers, m.out)?;
    let mut out_dims = m.batch.clone();
    out_dims.extend([m.m, m.n]);
    let n: usize = out_dims.iter().product();
    if out.ty.shape.numel() != n || out.ty.dtype != m.dtype {
        return Err(invalid(
            name,
            format!("output b{} does not hold a {} [.., {}, {}] product", m.out, m.dtype, m.m, m.n),
        ));
    }
    let (acc_ty, init, term, fin) = match m.dtype.category() {
        Category::Float => (
            "double",
            "-0.0",
            "acc = acc + __dmul_rn((double)x, (double)y);",
            store_elem(m.dtype, &format!("({})acc", ctype(m.dtype))),
        ),
        Category::Int => (
            "tj_u64",
            "0ull",
            "acc = acc + (tj_u64)(long long)x * (tj_u64)(long long)y;",
            format!("({})acc", ctype(m.dtype)),
        ),
        Category::Bool => return Err(invalid(name, "matmul of bool")),
    };
    let mut names = index_names("t", nb);
    names.extend(["row".to_string(), "col".to_string()]);
    // Sizes in the order of the text: the output count, the decomposition's extents, the
    // contraction's length, then each operand's offset and strides.
    let sizes = Sizes::default();
    let total = sizes.extent(n);
    let decomp = decompose(&sizes, "flat", &out_dims, &names, "        ");
    let depth = sizes.extent(m.k);
    let operand = |op: &tenjit_ir::kernel::MatOperand, first: &str, second: &str| {
        let mut nm: Vec<String> = names[..nb].to_vec();
        nm.extend([first.to_string(), second.to_string()]);
        let mut st = op.batch_strides.clone();
        st.extend([op.row_stride, op.col_stride]);
        load_elem(m.dtype, &format!("b{}[{}]", op.buf, affine(&sizes, op.offset, &st, &nm)))
    };
    let (x, y) = (operand(&m.a, "row", "p"), operand(&m.b, "p", "col"));
    let uses = [(m.a.buf, true, false), (m.b.buf, true, false), (m.out, false, true)];
    let params = params(name, buffers, &uses, &sizes, false)?;
    let fname = c_name(name);
    let t = ctype(m.dtype);
    let ind = "        ";
    let comment = format!("{name}: matmul with {nb} batch dims ({}); one thread per output element", m.dtype);
    let mut s = open(&fname, &comment, &signature(&params), &total.name);
    s.push_str(&decomp);
    s.push_str(&format!("{ind}{acc_ty} acc = {init};\n"));
    s.push_str(&format!("{ind}for (long long p = 0; p < {}; ++p) {{\n", depth.name));
    s.push_str(&format!("{ind}    const {t} x = {x};\n"));
    s.push_str(&format!("{ind}    const {t} y = {y};\n"));
    s.push_str(&format!("{ind}    {term}\n{ind}}}\n"));
    s.push_str(&format!("{ind}b{}[flat] = {fin};\n", m.out));
    s.push_str("    }\n}\n");
    let launch = grid_for(total.value as usize, ELEMENTWISE_BLOCK);
    Ok(RenderedKernel { name: fname, source: s, launch, params })
}
