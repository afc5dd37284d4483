//! Fused kernels: element programs as C statements, and the elementwise and reduction
//! kernel shapes around them (see the parent module's doc).

use super::sizes::{affine, decompose, Sizes};
use super::{
    buffer, c_name, cast, check_bounds, ctype, grid_for, index_names, invalid, literal, load_elem, loads,
    params, signature, store_elem, CodegenError, Launch, RenderedKernel, ELEMENTWISE_BLOCK, MAX_GRID,
    MAX_REDUCTION_BLOCK, SMALL_REDUCTION,
};
use tenjit_ir::kernel::{BufId, BufferDecl, Combine, Inst, Instr, Kernel};
use tenjit_ir::ops::BinaryKind;
use tenjit_ir::types::Category;
use tenjit_ir::{ArgOp, BinaryOp, DType, ReduceOp, Scalar, UnaryOp};

/// Where a kernel's code runs: a `__global__` function of its own over the whole iteration
/// space, or one step of a row group's kernel (see [`super::group`]) over the one row `row` of
/// its leading dimension that the block is at.
#[derive(Clone, Copy)]
pub(super) enum Frame<'a> {
    /// A kernel of its own.
    Whole,
    /// One step of a row group's kernel, run by a block on row `row` of `rows`; the `local`
    /// buffers are one row each in shared memory (`s{buf}`), indexed from the row's start.
    Row {
        /// The group's leading extent (this instance's: the text takes it as a parameter).
        rows: usize,
        /// The buffers held one row at a time in shared memory (the group's local buffers
        /// and its staged input rows), sorted.
        local: &'a [BufId],
    },
}

impl Frame<'_> {
    /// Whether `buf` lives in shared memory, one row at a time.
    fn is_local(&self, buf: BufId) -> bool {
        match self {
            Frame::Whole => false,
            Frame::Row { local, .. } => local.binary_search(&buf).is_ok(),
        }
    }
}

/// What `acc` and `acc_value` name in an epilogue: C expressions and their dtypes.
struct AccNames {
    acc: (String, DType),
    value: Option<(String, DType)>,
}

/// An element program being rendered.
struct Prog<'a> {
    kernel: &'a Kernel,
    buffers: &'a [BufferDecl],
    /// Value name prefix (`v` for the body, `e` for the epilogue).
    prefix: &'static str,
    /// Loop index names and extents the index maps range over.
    names: &'a [String],
    dims: &'a [usize],
    acc: Option<&'a AccNames>,
    frame: Frame<'a>,
    /// The kernel's size parameters.
    sizes: &'a Sizes,
}

impl Prog<'_> {
    /// The statements of `prog`, one per instruction, and whether any can fail.
    fn render(&self, prog: &[Instr], indent: &str) -> Result<(String, bool), CodegenError> {
        let mut out = String::new();
        let mut can_fail = false;
        for (i, ins) in prog.iter().enumerate() {
            let (expr, fails) = self.inst(prog, i)?;
            can_fail |= fails;
            out.push_str(&format!("{indent}const {} {}{i} = {expr};\n", ctype(ins.dtype), self.prefix));
        }
        Ok((out, can_fail))
    }

    fn err(&self, message: String) -> CodegenError {
        invalid(&self.kernel.name, message)
    }

    /// An earlier instruction's name and dtype.
    fn operand(&self, prog: &[Instr], at: usize, id: usize) -> Result<(String, DType), CodegenError> {
        match prog.get(id) {
            Some(ins) if id < at => Ok((format!("{}{id}", self.prefix), ins.dtype)),
            _ => Err(self.err(format!("%{at} uses %{id}, which is not defined before it"))),
        }
    }

    /// The C expression of instruction `i` (of its own dtype) and whether it can fail.
    fn inst(&self, prog: &[Instr], i: usize) -> Result<(String, bool), CodegenError> {
        let d = prog[i].dtype;
        let step = &self.kernel.name;
        Ok(match &prog[i].inst {
            Inst::Load { buf, index } => {
                let decl = buffer(step, self.buffers, *buf)?;
                let what = format!("%{i} load of b{buf}");
                let (name, strides, len) = match self.frame {
                    // A local buffer holds the block's row: the row's stride drops out (the
                    // group's row rule makes it the row length).
                    Frame::Row { rows, .. } if self.frame.is_local(*buf) => {
                        let mut strides = index.strides.clone();
                        if let Some(s0) = strides.first_mut() {
                            *s0 = 0;
                        }
                        (format!("s{buf}"), strides, decl.ty.shape.numel() / rows.max(1))
                    }
                    Frame::Row { .. } | Frame::Whole => {
                        (format!("b{buf}"), index.strides.clone(), decl.ty.shape.numel())
                    }
                };
                check_bounds(step, &what, index.offset, &strides, self.dims, len)?;
                let at = affine(self.sizes, index.offset, &strides, self.names);
                let bd = decl.ty.dtype;
                let x = if bd == DType::Bool {
                    format!("({name}[{at}] != 0)")
                } else {
                    load_elem(bd, &format!("{name}[{at}]"))
                };
                (cast(bd, d, &x), false)
            }
            Inst::Const(s) => (literal(*s, d), false),
            Inst::Iota { index } => {
                if index.strides.len() != self.names.len() {
                    return Err(self.err(format!("%{i}: iota index of the wrong rank")));
                }
                let at = affine(self.sizes, index.offset, &index.strides, self.names);
                (cast(DType::I64, d, &format!("(long long)({at})")), false)
            }
            Inst::Rand { seed, offset, counter } => {
                if counter.strides.len() != self.names.len() {
                    return Err(self.err(format!("%{i}: rand counter of the wrong rank")));
                }
                let f = match d {
                    // `kernel::half` widens a 16-bit `rand` to `f32` before it gets here.
                    DType::F16 | DType::BF16 | DType::F32 => "tj_rand_f32",
                    DType::F64 => "tj_rand_f64",
                    DType::Bool | DType::I32 | DType::I64 => {
                        return Err(self.err(format!("%{i}: rand of dtype {d}")))
                    }
                };
                // The seed and offset are i64 values holding the bits of a u64.
                let word = |id: usize| -> Result<String, CodegenError> {
                    match self.operand(prog, i, id)? {
                        (name, DType::I64) => Ok(format!("(tj_u64){name}")),
                        (_, t) => Err(self.err(format!("%{i}: rand operand %{id} is {t}, not i64"))),
                    }
                };
                let (seed, offset) = (word(*seed)?, word(*offset)?);
                let counter = counter_expr(self.sizes, counter.offset, &counter.strides, self.names);
                (format!("{f}({seed}, {offset} + {counter})"), false)
            }
            Inst::Unary(op, a) => {
                let (x, t) = self.operand(prog, i, *a)?;
                (cast(t, d, &self.unary(*op, t, &x)?), false)
            }
            Inst::Binary(op, a, b) => {
                let (x, t) = self.operand(prog, i, *a)?;
                let (y, t2) = self.operand(prog, i, *b)?;
                if t != t2 {
                    return Err(self.err(format!("%{i}: {} of {t} and {t2}", op.spec().name)));
                }
                let (e, fails) = self.binary(*op, t, &x, &y)?;
                let natural = match op.spec().kind {
                    BinaryKind::Arith => t,
                    BinaryKind::Compare => DType::Bool,
                };
                (cast(natural, d, &e), fails)
            }
            Inst::Where(c, a, b) => {
                let (c, tc) = self.operand(prog, i, *c)?;
                let (x, ta) = self.operand(prog, i, *a)?;
                let (y, tb) = self.operand(prog, i, *b)?;
                if tc != DType::Bool {
                    return Err(self.err(format!("%{i}: where on a {tc} condition")));
                }
                (format!("({c} ? {} : {})", cast(ta, d, &x), cast(tb, d, &y)), false)
            }
            Inst::Cast(a) => {
                let (x, t) = self.operand(prog, i, *a)?;
                (cast(t, d, &x), false)
            }
            Inst::Acc => match self.acc {
                Some(AccNames { acc: (name, t), .. }) => (cast(*t, d, name), false),
                None => return Err(self.err(format!("%{i}: acc outside an epilogue"))),
            },
            Inst::AccValue => match self.acc.and_then(|a| a.value.as_ref()) {
                Some((name, t)) => (cast(*t, d, name), false),
                None => return Err(self.err(format!("%{i}: acc_value outside an arg reduction's epilogue"))),
            },
        })
    }

    /// `op(x)` on an operand of dtype `t`: the row's CUDA template.
    fn unary(&self, op: UnaryOp, t: DType, x: &str) -> Result<String, CodegenError> {
        let spec = op.spec();
        let (e, _) = self.fill(spec.name, spec.accepts.admits(t), spec.cuda.template(t), t, x, "")?;
        Ok(e)
    }

    /// `op(x, y)` on operands of dtype `t`, and whether it can fail: the row's CUDA template.
    fn binary(&self, op: BinaryOp, t: DType, x: &str, y: &str) -> Result<(String, bool), CodegenError> {
        let spec = op.spec();
        self.fill(spec.name, spec.accepts.admits(t), spec.cuda.template(t), t, x, y)
    }

    /// Fills an op row's template (see [`CudaForm`](tenjit_ir::ops::CudaForm)) with the
    /// operands; the result can fail when the template uses the error word.
    fn fill(
        &self,
        name: &str,
        accepted: bool,
        template: &str,
        t: DType,
        x: &str,
        y: &str,
    ) -> Result<(String, bool), CodegenError> {
        if !accepted || template.is_empty() {
            return Err(self.err(format!("{name} does not accept {t}")));
        }
        let can_fail = template.contains("{err}");
        Ok((template.replace("{x}", x).replace("{y}", y).replace("{err}", "err"), can_fail))
    }
}

/// A rand counter: the index map evaluated in wrapping 64-bit unsigned arithmetic (its
/// nonzero offset and strides other than 0 and 1 are size parameters, their bits as `tj_u64`).
fn counter_expr(sizes: &Sizes, offset: i64, strides: &[i64], names: &[String]) -> String {
    let mut terms = Vec::new();
    if offset != 0 {
        terms.push(format!("(tj_u64){}", sizes.value(offset).name));
    }
    for (&st, n) in strides.iter().zip(names) {
        match st {
            0 => {}
            1 => terms.push(format!("(tj_u64){n}")),
            _ => terms.push(format!("(tj_u64){n} * (tj_u64){}", sizes.value(st).name)),
        }
    }
    if terms.is_empty() {
        "0ull".into()
    } else {
        terms.join(" + ")
    }
}

/// A store of value `v` (dtype `d`) into `target[at]` (a buffer of dtype `bd`), converted to
/// the buffer's dtype.
fn store(target: &str, bd: DType, v: &str, d: DType, at: &str) -> String {
    match bd {
        DType::Bool => format!("{target}[{at}] = (unsigned char){};", cast(d, DType::Bool, v)),
        DType::I32 | DType::I64 | DType::F16 | DType::BF16 | DType::F32 | DType::F64 => {
            format!("{target}[{at}] = {};", store_elem(bd, &cast(d, bd, v)))
        }
    }
}

/// The stores of a kernel at flat output index `at` (in a row frame: the index within the
/// row, and the row's length a size parameter), with values named `prefix{id}`.
#[allow(clippy::too_many_arguments)]
fn stores(
    k: &Kernel,
    prog: &[Instr],
    buffers: &[BufferDecl],
    prefix: &str,
    at: &str,
    indent: &str,
    frame: Frame,
    sizes: &Sizes,
) -> Result<String, CodegenError> {
    let out_n: usize = k.out_space().iter().product();
    let mut s = String::new();
    for st in &k.stores {
        let decl = buffer(&k.name, buffers, st.buf)?;
        if decl.ty.shape.numel() != out_n {
            return Err(invalid(
                &k.name,
                format!(
                    "store into b{} of {} elements from an output space of {out_n}",
                    st.buf,
                    decl.ty.shape.numel()
                ),
            ));
        }
        let d = prog
            .get(st.value)
            .map(|i| i.dtype)
            .ok_or_else(|| invalid(&k.name, format!("store of undefined %{}", st.value)))?;
        let (target, at) = match frame {
            Frame::Row { .. } if frame.is_local(st.buf) => (format!("s{}", st.buf), at.to_string()),
            Frame::Row { rows, .. } => {
                (format!("b{}", st.buf), format!("row * {} + {at}", sizes.extent(out_n / rows.max(1)).name))
            }
            Frame::Whole => (format!("b{}", st.buf), at.to_string()),
        };
        s.push_str(indent);
        s.push_str(&store(&target, decl.ty.dtype, &format!("{prefix}{}", st.value), d, &at));
        s.push('\n');
    }
    Ok(s)
}

fn header(k: &Kernel, what: &str) -> String {
    format!("// kernel {}: {what}; {}\n", k.name, k.reason.replace('\n', " "))
}

/// A space's structure for a comment: its rank and its extents of 1 (the sizes themselves are
/// parameters, so they stay out of the text).
fn dims_text(dims: &[usize]) -> String {
    let ones: Vec<String> =
        dims.iter().enumerate().filter(|(_, &d)| d == 1).map(|(i, _)| i.to_string()).collect();
    if ones.is_empty() {
        format!("a rank-{} space", dims.len())
    } else {
        format!("a rank-{} space (extent 1 at {})", dims.len(), ones.join(", "))
    }
}

/// Renders a fused kernel.
pub(super) fn render_kernel(k: &Kernel, buffers: &[BufferDecl]) -> Result<RenderedKernel, CodegenError> {
    // 16-bit values compute in `f32` (lowered kernels already do; a hand-built one may not).
    let k = &*tenjit_ir::kernel::half::widened(k);
    let sizes = Sizes::default();
    let (text, launch, can_fail) = render_in(k, buffers, Frame::Whole, &sizes)?;
    let params = params(&k.name, buffers, &buffer_uses(k), &sizes, can_fail)?;
    let name = c_name(&k.name);
    let source = text.replace("@SIGNATURE@", &format!("{name}({})", signature(&params)));
    Ok(RenderedKernel { name, source, launch, params })
}

/// The buffers kernel `k` uses: (buffer, read, written), loads first.
pub(super) fn buffer_uses(k: &Kernel) -> Vec<(BufId, bool, bool)> {
    let mut uses: Vec<(BufId, bool, bool)> =
        loads(&k.body).chain(loads(&k.epilogue)).map(|b| (b, true, false)).collect();
    uses.extend(k.stores.iter().map(|s| (s.buf, false, true)));
    uses
}

/// Renders kernel `k` (already widened) in `frame`, its size parameters added to `sizes`:
/// the text (a `__global__` function whose signature is `@SIGNATURE@`, or a `{ ... }` scope
/// for a row group's kernel), its launch (for [`Frame::Whole`], from the same values as the
/// size parameters) and whether it can fail.
pub(super) fn render_in(
    k: &Kernel,
    buffers: &[BufferDecl],
    frame: Frame,
    sizes: &Sizes,
) -> Result<(String, Launch, bool), CodegenError> {
    if let Frame::Row { rows, .. } = frame {
        let reduces_row = k.reduce.as_ref().is_some_and(|r| r.axes.contains(&0));
        if k.space.first() != Some(&rows) || reduces_row || rows == 0 {
            return Err(invalid(&k.name, format!("not a step over the {rows} rows of a row group")));
        }
    }
    match &k.reduce {
        None => elementwise(k, buffers, frame, sizes),
        Some(r) => reduction(k, buffers, r.op, &r.axes, frame, sizes),
    }
}

fn elementwise(
    k: &Kernel,
    buffers: &[BufferDecl],
    frame: Frame,
    sizes: &Sizes,
) -> Result<(String, Launch, bool), CodegenError> {
    if !k.epilogue.is_empty() {
        return Err(invalid(&k.name, "an epilogue without a reduction"));
    }
    let n: usize = k.space.iter().product();
    let names = index_names("i", k.space.len());
    let p = Prog { kernel: k, buffers, prefix: "v", names: &names, dims: &k.space, acc: None, frame, sizes };
    let (body, can_fail) = p.render(&k.body, "        ")?;
    let block = ELEMENTWISE_BLOCK;
    let mut s;
    let launch;
    match frame {
        Frame::Whole => {
            let total = sizes.extent(n);
            s = header(k, &format!("elementwise over {}, grid-stride", dims_text(&k.space)));
            s.push_str(&format!("extern \"C\" __global__ void __launch_bounds__({block}) @SIGNATURE@ {{\n"));
            s.push_str(&format!(
                "    for (long long flat = blockIdx.x * (long long)blockDim.x + threadIdx.x; flat < {}; flat += (long long)gridDim.x * blockDim.x) {{\n",
                total.name
            ));
            s.push_str(&decompose(sizes, "flat", &k.space, &names, "        "));
            launch = grid_for(total.value as usize, block);
        }
        Frame::Row { rows, .. } => {
            let per = sizes.extent(n / rows);
            s = header(k, &format!("elementwise over {}, the points of the row", dims_text(&k.space)));
            s.push_str("{\n");
            s.push_str(&format!(
                "    for (long long flat = threadIdx.x; flat < {}; flat += blockDim.x) {{\n",
                per.name
            ));
            s.push_str(&decompose(sizes, "flat", &k.space[1..], &names[1..], "        "));
            s.push_str("        const long long i0 = row;\n");
            launch = grid_for(n, block);
        }
    }
    s.push_str(&body);
    s.push_str(&stores(k, &k.body, buffers, "v", "flat", "        ", frame, sizes)?);
    s.push_str("    }\n}\n");
    Ok((s, launch, can_fail))
}

/// How a reduction accumulates: the accumulator's C type, its start value, the conversion of
/// an element into it and the combine of two accumulators.
struct Accum {
    ty: String,
    init: String,
    convert: fn(&str) -> String,
    combine: fn(&str, &str) -> String,
}

fn accum(op: ReduceOp, d: DType, empty: bool, step: &str) -> Result<Accum, CodegenError> {
    use Category as C;
    let same = |x: &str| x.to_string();
    let to_f64 = |x: &str| format!("(double){x}");
    Ok(match (op, d.category()) {
        (_, C::Bool) => return Err(invalid(step, format!("{} over bool", op.name()))),
        // -0.0 keeps the sign of a sum of negative zeros; an empty sum is +0.0.
        (ReduceOp::Sum, C::Float) => Accum {
            ty: "double".into(),
            init: if empty { "0.0" } else { "-0.0" }.into(),
            convert: to_f64,
            combine: |a, x| format!("{a} + {x}"),
        },
        (ReduceOp::Prod, C::Float) => Accum {
            ty: "double".into(),
            init: "1.0".into(),
            convert: to_f64,
            combine: |a, x| format!("__dmul_rn({a}, {x})"),
        },
        (ReduceOp::Sum | ReduceOp::Prod, C::Int) => {
            let (ty, conv): (&str, fn(&str) -> String) = if d == DType::I32 {
                ("tj_u32", |x| format!("(tj_u32){x}"))
            } else {
                ("tj_u64", |x| format!("(tj_u64){x}"))
            };
            let (init, combine): (&str, fn(&str, &str) -> String) = if op == ReduceOp::Sum {
                ("0", |a, x| format!("{a} + {x}"))
            } else {
                ("1", |a, x| format!("{a} * {x}"))
            };
            Accum { ty: ty.into(), init: format!("({ty}){init}"), convert: conv, combine }
        }
        (ReduceOp::Max | ReduceOp::Min, C::Float | C::Int) => {
            let max = op == ReduceOp::Max;
            Accum {
                ty: ctype(d).into(),
                init: extreme_start(d, max),
                convert: same,
                combine: if max {
                    |a, x| format!("tj_maximum({a}, {x})")
                } else {
                    |a, x| format!("tj_minimum({a}, {x})")
                },
            }
        }
    })
}

/// The value a max (`max`) or min search starts from: -inf / +inf, or the integer bound.
fn extreme_start(d: DType, max: bool) -> String {
    let s = match (d.category(), max) {
        (Category::Float, true) => Scalar::Float(f64::NEG_INFINITY),
        (Category::Float, false) => Scalar::Float(f64::INFINITY),
        (_, true) => Scalar::Int(if d == DType::I32 { i32::MIN as i64 } else { i64::MIN }),
        (_, false) => Scalar::Int(if d == DType::I32 { i32::MAX as i64 } else { i64::MAX }),
    };
    literal(s, d)
}

const FULL_MASK: &str = "0xffffffffu";

/// Renders the warp-level combine of a reduction's partial results at an indentation.
type WarpCombine = Box<dyn Fn(&str) -> String>;

fn reduction(
    k: &Kernel,
    buffers: &[BufferDecl],
    op: Combine,
    axes: &[usize],
    frame: Frame,
    sizes: &Sizes,
) -> Result<(String, Launch, bool), CodegenError> {
    let step = &k.name;
    let rank = k.space.len();
    if axes.iter().any(|&a| a >= rank) || axes.windows(2).any(|w| w[0] >= w[1]) {
        return Err(invalid(step, format!("reduced axes {axes:?} of a space of rank {rank}")));
    }
    let value = k.value.ok_or_else(|| invalid(step, "a reduction without a value"))?;
    let vd = k
        .body
        .get(value)
        .map(|i| i.dtype)
        .ok_or_else(|| invalid(step, format!("reduced value %{value} is undefined")))?;
    let arg = op.arg();
    if arg.is_some() && (axes.len() != 1 || vd == DType::Bool) {
        return Err(invalid(step, format!("{} of {vd} over {} axes", op.name(), axes.len())));
    }
    let out_axes: Vec<usize> = (0..rank).filter(|d| !axes.contains(d)).collect();
    let out_dims: Vec<usize> = out_axes.iter().map(|&d| k.space[d]).collect();
    let red_dims: Vec<usize> = axes.iter().map(|&d| k.space[d]).collect();
    let (out_n, red_n): (usize, usize) = (out_dims.iter().product(), red_dims.iter().product());
    if red_n == 0 && (arg.is_some() || op.extremum().identity().is_none()) {
        return Err(invalid(step, format!("empty {} reduction has no identity", op.name())));
    }

    let names = index_names("i", rank);
    let out_names = index_names("o", out_dims.len());
    let red_names: Vec<String> = axes.iter().map(|&d| names[d].clone()).collect();
    let body_prog =
        Prog { kernel: k, buffers, prefix: "v", names: &names, dims: &k.space, acc: None, frame, sizes };
    let block_mode = red_n > SMALL_REDUCTION;
    // The body runs inside the output-point and reduction loops, in both shapes.
    let (body, body_fails) = body_prog.render(&k.body, "            ")?;

    // Accumulation of one element `v{value}` at reduced flat index `red`.
    let acc_names;
    let (decl, step_line, combine_warp, final_lines): (String, String, WarpCombine, String);
    match arg {
        Some(a) => {
            let max = a == ArgOp::ArgMax;
            let t = ctype(vd);
            decl = format!(
                "{t} best = {}; long long best_i = 9223372036854775807LL; bool best_nan = false;",
                extreme_start(vd, max)
            );
            step_line =
                format!("tj_arg_merge<{max}>(best, best_i, best_nan, v{value}, red, v{value} != v{value});");
            combine_warp = Box::new(move |ind: &str| {
                format!(
                    "{ind}for (int off = 16; off > 0; off >>= 1) {{\n\
                     {ind}    const {t} other = __shfl_down_sync({FULL_MASK}, best, off);\n\
                     {ind}    const long long other_i = __shfl_down_sync({FULL_MASK}, best_i, off);\n\
                     {ind}    const bool other_nan = __shfl_down_sync({FULL_MASK}, (int)best_nan, off) != 0;\n\
                     {ind}    tj_arg_merge<{max}>(best, best_i, best_nan, other, other_i, other_nan);\n\
                     {ind}}}\n"
                )
            });
            final_lines = String::new();
            acc_names = AccNames { acc: ("best_i".into(), DType::I64), value: Some(("best".into(), vd)) };
        }
        None => {
            let a = accum(op.extremum(), vd, red_n == 0, step)?;
            decl = format!("{} acc = {};", a.ty, a.init);
            step_line = format!("acc = {};", (a.combine)("acc", &(a.convert)(&format!("v{value}"))));
            let combine = a.combine;
            combine_warp = Box::new(move |ind: &str| {
                format!(
                    "{ind}for (int off = 16; off > 0; off >>= 1) acc = {};\n",
                    combine("acc", &format!("__shfl_down_sync({FULL_MASK}, acc, off)"))
                )
            });
            final_lines = if a.ty == ctype(vd) {
                format!("const {} acc_out = acc;", a.ty)
            } else {
                format!("const {} acc_out = ({})acc;", ctype(vd), ctype(vd))
            };
            acc_names = AccNames { acc: ("acc_out".into(), vd), value: None };
        }
    }
    let epi_prog = Prog {
        kernel: k,
        buffers,
        prefix: "e",
        names: &out_names,
        dims: &out_dims,
        acc: Some(&acc_names),
        frame,
        sizes,
    };
    // The loop over output points: all of them (a kernel of its own), or the row's (a step
    // of a row group's kernel, whose row is `o0`), and how a block's threads share them.
    // Its trip count is a size parameter (all output points, or the row's).
    let point_loop = |by_block: bool| -> String {
        let (open, decomp) = match frame {
            Frame::Whole if by_block => (
                format!(
                    "for (long long point = blockIdx.x; point < {}; point += gridDim.x) {{\n",
                    sizes.extent(out_n).name
                ),
                decompose(sizes, "point", &out_dims, &out_names, "        "),
            ),
            Frame::Whole => (
                format!(
                    "for (long long point = blockIdx.x * (long long)blockDim.x + threadIdx.x; point < {}; point += (long long)gridDim.x * blockDim.x) {{\n",
                    sizes.extent(out_n).name
                ),
                decompose(sizes, "point", &out_dims, &out_names, "        "),
            ),
            Frame::Row { rows, .. } => {
                let per = sizes.extent(out_n / rows).name;
                let open = if by_block {
                    format!("for (long long point = 0; point < {per}; ++point) {{\n")
                } else {
                    format!("for (long long point = threadIdx.x; point < {per}; point += blockDim.x) {{\n")
                };
                let decomp = decompose(sizes, "point", &out_dims[1..], &out_names[1..], "        ");
                (open, format!("{decomp}        const long long o0 = row;\n"))
            }
        };
        format!("    {open}{decomp}")
    };
    let opening = |block: u32| match frame {
        Frame::Whole => format!("extern \"C\" __global__ void __launch_bounds__({block}) @SIGNATURE@ {{\n"),
        Frame::Row { .. } => "{\n".to_string(),
    };

    let what = format!("{} over axes {axes:?} of {}", op.name(), dims_text(&k.space));
    // The loop indices of the body at one reduced element: kept dims from the output point.
    let mut inner = String::new();
    let red_ind = "            ";
    inner.push_str(&decompose(sizes, "red", &red_dims, &red_names, red_ind));
    for (j, &d) in out_axes.iter().enumerate() {
        inner.push_str(&format!("{red_ind}const long long {} = {};\n", names[d], out_names[j]));
    }
    inner.push_str(&body);
    inner.push_str(&format!("{red_ind}{step_line}\n"));

    let red_extent = sizes.extent(red_n);
    let mut s;
    let launch;
    let epi_fails;
    if block_mode {
        // The block's size is the launch's (`blockDim.x`, a power of two from 32 to
        // `MAX_REDUCTION_BLOCK`), so `part` has a slot for each warp of the largest block.
        let warps = MAX_REDUCTION_BLOCK / 32;
        let ind = "                ";
        let (epilogue, f) = epi_prog.render(&k.epilogue, ind)?;
        epi_fails = f;
        s = header(k, &format!("{what}; one block per output point, warp shuffles then shared memory"));
        s.push_str(&opening(MAX_REDUCTION_BLOCK));
        match arg {
            Some(_) => s.push_str(&format!(
                "    __shared__ {} part[{warps}];\n    __shared__ long long part_i[{warps}];\n    __shared__ bool part_nan[{warps}];\n",
                ctype(vd)
            )),
            None => s.push_str(&format!("    __shared__ {} part[{warps}];\n", accum(op.extremum(), vd, red_n == 0, step)?.ty)),
        }
        s.push_str(&point_loop(true));
        s.push_str(&format!("        {decl}\n"));
        s.push_str(&format!(
            "        for (long long red = threadIdx.x; red < {}; red += blockDim.x) {{\n",
            red_extent.name
        ));
        s.push_str(&inner);
        s.push_str("        }\n");
        s.push_str("        // Combine the threads' partial results: within each warp, then across warps.\n");
        s.push_str(&combine_warp("        "));
        let (save, load) = match arg {
            Some(_) => (
                "part[threadIdx.x >> 5] = best; part_i[threadIdx.x >> 5] = best_i; part_nan[threadIdx.x >> 5] = best_nan;".to_string(),
                format!(
                    "if (threadIdx.x < (blockDim.x >> 5)) {{ best = part[threadIdx.x]; best_i = part_i[threadIdx.x]; best_nan = part_nan[threadIdx.x]; }} {}",
                    arg_reset(vd, arg)
                ),
            ),
            None => (
                "part[threadIdx.x >> 5] = acc;".to_string(),
                format!(
                    "acc = threadIdx.x < (blockDim.x >> 5) ? part[threadIdx.x] : {};",
                    accum(op.extremum(), vd, red_n == 0, step)?.init
                ),
            ),
        };
        s.push_str(&format!("        if ((threadIdx.x & 31) == 0) {{ {save} }}\n"));
        s.push_str("        __syncthreads();\n");
        s.push_str("        if (threadIdx.x < 32) {\n");
        s.push_str(&format!("            {load}\n"));
        s.push_str(&combine_warp("            "));
        s.push_str("            if (threadIdx.x == 0) {\n");
        if !final_lines.is_empty() {
            s.push_str(&format!("{ind}{final_lines}\n"));
        }
        s.push_str(&epilogue);
        s.push_str(&stores(k, &k.epilogue, buffers, "e", "point", ind, frame, sizes)?);
        s.push_str("            }\n        }\n");
        s.push_str("        __syncthreads();  // `part` is reused by the block's next output point\n");
        s.push_str("    }\n}\n");
        launch = Launch {
            grid: out_n.min(MAX_GRID as usize) as u32,
            block: reduction_block(red_extent.value as usize),
            shared_bytes: 0,
        };
    } else {
        let ind = "        ";
        let (epilogue, f) = epi_prog.render(&k.epilogue, ind)?;
        epi_fails = f;
        let block = ELEMENTWISE_BLOCK;
        s = header(k, &format!("{what}; one thread per output point, elements in order"));
        s.push_str(&opening(block));
        s.push_str(&point_loop(false));
        s.push_str(&format!("{ind}{decl}\n"));
        s.push_str(&format!("{ind}for (long long red = 0; red < {}; ++red) {{\n", red_extent.name));
        s.push_str(&inner);
        s.push_str(&format!("{ind}}}\n"));
        if !final_lines.is_empty() {
            s.push_str(&format!("{ind}{final_lines}\n"));
        }
        s.push_str(&epilogue);
        s.push_str(&stores(k, &k.epilogue, buffers, "e", "point", ind, frame, sizes)?);
        s.push_str("    }\n}\n");
        launch = grid_for(out_n, block);
    }
    Ok((s, launch, body_fails || epi_fails))
}

/// The threads of a block reduction's block over `red_n` elements per output point: half the
/// extent rounded up to a power of two, from 32 to [`MAX_REDUCTION_BLOCK`].
pub(super) fn reduction_block(red_n: usize) -> u32 {
    (red_n.next_power_of_two() / 2).clamp(32, MAX_REDUCTION_BLOCK as usize) as u32
}

/// Resets an arg reduction's candidate to empty (lanes past the last warp's partial).
fn arg_reset(vd: DType, arg: Option<ArgOp>) -> String {
    let max = arg == Some(ArgOp::ArgMax);
    format!("else {{ best = {}; best_i = 9223372036854775807LL; best_nan = false; }}", extreme_start(vd, max))
}
