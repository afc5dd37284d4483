//! Kernel IR → CUDA C: the CUDA code generator's pure half.
//!
//! [`render_program`] turns a [`Program`] into a [`CudaModule`]: one CUDA C translation unit
//! (the [`prelude`] and one `extern "C" __global__` function per step) and, per step, what the
//! runtime needs to launch it ([`RenderedKernel`]: name, parameters, [`Launch`] geometry) or,
//! for a float matrix product, the [`MatmulStep`] of its cuBLAS call. [`render_kernel`] and
//! [`render_op`] render one [`Kernel`] and one [`OpStep`]. Rendering is deterministic and
//! needs no GPU and no NVRTC; the text is what `TENJIT_DUMP` writes and snapshot tests pin,
//! and `tests/cuda_emulation.rs` runs it on the CPU (host `g++` and a SIMT emulation) with the
//! launches and parameters rendered here, against the interpreter.
//!
//! # ABI
//!
//! A kernel's parameters are, in order, the buffers it touches by increasing [`BufId`]
//! (`const T* __restrict__` when only read, `T* __restrict__` when only written; buffers are
//! dense and row-major, bool one byte 0 or 1), then its sizes ([`ParamKind::Size`], each a
//! `long long` passed by value), then `int* err` when the kernel can fail. The runtime passes
//! distinct allocations (the restrict qualifiers promise no aliasing), each size's `value` and
//! a zeroed error word; after the launch a nonzero word is an [`ErrorCode`], which
//! [`ErrorCode::describe`] turns into the CPU backend's error. A launch whose grid is 0 has no
//! work (an empty space) and is skipped.
//!
//! # Sizes are parameters
//!
//! Every generated kernel (fused kernels, row groups, the matmul kernel, library steps) takes
//! its sizes at run time, so programs of one structure at different sizes (the instances of
//! one symbolic program, `tenjit_ir::kernel::symbolic::instantiate`, or concrete programs
//! lowered alike) render the same CUDA C text: one NVRTC compile and one module serve them all (`ptx_cache.rs` keys on
//! the text). The size parameters are named `n0, n1, ...` (extents and counts: a loop's trip
//! count, a dim a flat index is decomposed by, a row's length) and `st0, st1, ...` (the
//! strides and offsets of index maps, byte offsets into dynamic shared memory), numbered in
//! the order the renderer meets them, which depends only on the structure. What stays in the
//! text, and so may differ between sizes, is a size's *class*, as in the CPU backend's size
//! table (`src/backend/cpu/codegen/sizes.rs`): a stride of 0 (the term is dropped), 1 (the
//! index itself) or another value (a parameter); an offset of 0 or not; an extent of 1 (the
//! index is 0); an empty reduction (its start value); a reduction's kernel shape (over at
//! most [`SMALL_REDUCTION`] elements or more); and whether a row group fits in shared memory
//! ([`why_separate`]). Each [`RenderedKernel::launch`] is computed from the values its size
//! parameters carry (the grid follows the extent), and the bounds of every access are checked
//! on those values when the instance is rendered. The library steps (gather, scatter_add,
//! concat, pad, the convolutions, max pooling) take their tensors' extents as parameters too;
//! their attributes (an axis, pad widths, a window's geometry) are structure.
//!
//! # Kernel shapes
//!
//! * **Elementwise**: a grid-stride loop over the flat iteration space; each thread decomposes
//!   the flat index into the loop indices (by the extents, size parameters), runs the
//!   element program and stores.
//! * **Block reduction** (reduced extent above [`SMALL_REDUCTION`]): one block per output
//!   point (grid-stride over output points); the block's threads stride over the reduced
//!   extent, each accumulating its share, then combine with `__shfl_down_sync` within warps
//!   and through shared memory across warps; thread 0 runs the epilogue and the stores. The
//!   block size is chosen from the reduced extent at launch (`blockDim.x` in the text, at
//!   most [`MAX_REDUCTION_BLOCK`] threads).
//! * **Thread reduction** (small reduced extent): one thread per output point visits the
//!   reduced extent in row-major order, exactly as the interpreter does.
//! * **Row group** ([`render_group`]): the steps of a [`Program::groups`] entry as one kernel, a
//!   block per row running each step's shape on its row, the group's local buffers in dynamic
//!   shared memory (sized by the row at launch: [`Launch::shared_bytes`]).
//!
//! # Semantics
//!
//! Each instruction computes what the op table defines (see the prelude): IEEE
//! round-to-nearest float arithmetic without FMA contraction, wrapping integer arithmetic,
//! NaN-propagating `maximum`/`minimum`, Python `//` and `%`, saturating float → int casts
//! (`__float2int_rz` and friends: truncation, NaN to 0), Philox `rand` bit for bit. So
//! integer, bool and exactly rounded float results equal the interpreter's bits;
//! transcendental functions are within the CUDA math library's stated ulp bounds. Reductions
//! of `f32` sums and products accumulate in `f64` (in tree order for block reductions, so they
//! may differ from the interpreter's sequential `f64` sum in the last bit of the `f32`
//! result); integer reductions wrap exactly; `max`/`min` and `argmax`/`argmin` are exact,
//! including NaN (first NaN wins), ties (first index wins) and the sign of a zero (`max` of
//! `+0` and `-0` is `+0`, `min` is `-0`, in any order: the op table's IEEE 754-2019 rule).
//!
//! `f16` and `bf16` buffers hold the formats' bits (`tj_f16`, `tj_bf16`); a module with such
//! buffers gets [`half_prelude`]'s conversions after the prelude. A 16-bit value is a
//! `float` in a kernel (the lowering computes them in `f32`, `tenjit_ir::kernel::half`): loads
//! widen it exactly, casts to a 16-bit dtype and stores round to nearest even, with the `half`
//! crate's bits; their matrix products run in the generated matmul kernel (`f32` products
//! summed in `double`, rounded once), not cuBLAS.

mod conv;
mod expr;
mod group;
mod maxpool;
mod ops;
mod prelude;
mod sizes;

pub use group::{render_group, why_separate, GROUP_SHARED_BYTES};
pub use prelude::{half_prelude, prelude};
pub(crate) use sizes::Sizes;

use std::fmt;
use tenjit_ir::kernel::{BufId, BufferDecl, Inst, Kernel, MatmulStep, OpStep, Program, Step};
use tenjit_ir::{BinaryOp, DType, Scalar};

/// Reductions over at most this many elements per output point run one thread per output
/// point; larger ones one block per output point.
pub const SMALL_REDUCTION: usize = 32;

/// Threads per block of elementwise kernels and of one-thread-per-point reductions.
pub const ELEMENTWISE_BLOCK: u32 = 256;

/// Most threads of a block reduction's block (its partial results take one shared slot per
/// warp of this many threads).
pub const MAX_REDUCTION_BLOCK: u32 = 256;

/// Most blocks of a grid-stride launch (more would only add scheduling work).
pub const MAX_GRID: u32 = 65_535;

/// Why a step could not be rendered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CodegenError {
    /// The step is malformed: a bad operand, dtype or index map, or an access outside a
    /// buffer (a lowering bug, or a hand-built program's).
    Invalid {
        /// The step's name.
        step: String,
        /// What is wrong.
        message: String,
    },
    /// The step is well formed but this generator has no CUDA form for it.
    Unsupported {
        /// The step's name.
        step: String,
        /// What is missing.
        message: String,
    },
}

impl fmt::Display for CodegenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodegenError::Invalid { step, message } => write!(f, "{step}: invalid step: {message}"),
            CodegenError::Unsupported { step, message } => {
                write!(f, "{step}: not supported on CUDA: {message}")
            }
        }
    }
}

impl std::error::Error for CodegenError {}

pub(crate) fn invalid(step: &str, message: impl Into<String>) -> CodegenError {
    CodegenError::Invalid { step: step.to_string(), message: message.into() }
}

/// Code of the failure of a gather whose index is outside its axis.
pub const GATHER_INDEX_CODE: i32 = 64;
/// Code of the failure of a scatter_add whose index is outside its axis.
pub const SCATTER_INDEX_CODE: i32 = 65;

/// A nonzero value of a kernel's error word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ErrorCode(pub i32);

/// What an [`ErrorCode`] means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceFailure {
    /// An integer op is undefined for the values met, with the op table's name and message
    /// (as the CPU backend's `KernelError::Arithmetic`).
    Arithmetic {
        /// The op's name.
        op: &'static str,
        /// What is undefined.
        message: &'static str,
    },
    /// A gather or scatter_add index outside its axis (the offending value is not reported).
    IndexOutOfRange {
        /// `gather` or `scatter_add`.
        op: &'static str,
    },
}

impl fmt::Display for DeviceFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceFailure::Arithmetic { op, message } => write!(f, "{op}: {message}"),
            DeviceFailure::IndexOutOfRange { op } => write!(f, "{op}: an index is out of range for its axis"),
        }
    }
}

impl ErrorCode {
    /// The code of a failing integer binary op: its position in [`BinaryOp::ALL`] plus one.
    pub fn of_binary(op: BinaryOp) -> ErrorCode {
        ErrorCode(BinaryOp::ALL.iter().position(|&o| o == op).map_or(-1, |p| p as i32 + 1))
    }

    /// What the code means, or `None` for a code no kernel stores.
    pub fn describe(self) -> Option<DeviceFailure> {
        match self.0 {
            GATHER_INDEX_CODE => return Some(DeviceFailure::IndexOutOfRange { op: "gather" }),
            SCATTER_INDEX_CODE => return Some(DeviceFailure::IndexOutOfRange { op: "scatter_add" }),
            _ => {}
        }
        let op = *usize::try_from(self.0).ok()?.checked_sub(1).and_then(|i| BinaryOp::ALL.get(i))?;
        let spec = op.spec();
        // The table's own message: the op at an input it rejects.
        let failing = if op == BinaryOp::Pow { (spec.int)(1, -1) } else { (spec.int)(1, 0) };
        Some(DeviceFailure::Arithmetic { op: spec.name, message: failing.err()? })
    }
}

/// How a kernel uses a buffer parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Only read (`const T* __restrict__`).
    Read,
    /// Only written (`T* __restrict__`).
    Write,
    /// Read and written (`T*`; scatter_add's output starts as a copy of its base).
    ReadWrite,
}

/// What a kernel parameter is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamKind {
    /// The device pointer of a program buffer.
    Buffer {
        /// The buffer.
        buf: BufId,
        /// Its element type.
        dtype: DType,
        /// How the kernel uses it.
        access: Access,
    },
    /// A size (an extent, a stride, an offset: see the module doc), a `long long` passed by
    /// value; the same kernel text serves every instance, each with its own `value`.
    Size {
        /// The value of this instance.
        value: i64,
    },
    /// The `int*` error word (zeroed before the launch).
    ErrorFlag,
}

/// One kernel parameter, in the order of the C signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Param {
    /// The C name (`b3`, `n0`, `st2`, `err`).
    pub name: String,
    /// What to pass.
    pub kind: ParamKind,
}

/// A 1-D launch configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Launch {
    /// Blocks (0: nothing to do, skip the launch).
    pub grid: u32,
    /// Threads per block.
    pub block: u32,
    /// Dynamic shared memory in bytes (a row group's rows of its local buffers; 0 for every
    /// other kernel, whose shared memory is static).
    pub shared_bytes: u32,
}

/// One rendered `__global__` function and how to launch it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderedKernel {
    /// The C function name (`extern "C"`, so the PTX symbol is the same).
    pub name: String,
    /// The function's text (it calls the [`prelude`]'s helpers).
    pub source: String,
    /// The launch geometry.
    pub launch: Launch,
    /// The parameters, in order.
    pub params: Vec<Param>,
}

impl RenderedKernel {
    /// Whether the kernel takes an error word (it can fail).
    pub fn can_fail(&self) -> bool {
        self.params.iter().any(|p| p.kind == ParamKind::ErrorFlag)
    }

    /// The values of its size parameters ([`ParamKind::Size`]), in parameter order.
    pub fn size_values(&self) -> Vec<i64> {
        self.params
            .iter()
            .filter_map(|p| match p.kind {
                ParamKind::Size { value } => Some(value),
                ParamKind::Buffer { .. } | ParamKind::ErrorFlag => None,
            })
            .collect()
    }
}

/// A rendered step of a program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CudaStep {
    /// A kernel to launch.
    Kernel(RenderedKernel),
    /// A matrix product: floats go to cuBLAS with `desc`; `kernel` computes the same product
    /// (one thread per output element, `f64` accumulation for floats, wrapping for integers)
    /// and is what integer products run, and a fallback for layouts cuBLAS cannot take.
    Matmul {
        /// The product, for cuBLAS.
        desc: MatmulStep,
        /// A kernel computing it.
        kernel: RenderedKernel,
    },
    /// A step of a row group that renders as one kernel ([`render_group`]): that kernel is
    /// the rendered step at position `first` (the group's first step), and this one has
    /// nothing of its own to launch.
    InGroup {
        /// The position of the step whose kernel computes this one.
        first: usize,
    },
}

/// A whole program rendered: one translation unit and its steps in program order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CudaModule {
    /// The program's name.
    pub name: String,
    /// The CUDA C source: the prelude, then every kernel in step order.
    pub source: String,
    /// The steps, in program order.
    pub steps: Vec<CudaStep>,
}

impl CudaModule {
    /// Every kernel of the module, in step order (a row group's kernel once).
    pub fn kernels(&self) -> impl Iterator<Item = &RenderedKernel> {
        self.steps.iter().filter_map(|s| match s {
            CudaStep::Kernel(k) => Some(k),
            CudaStep::Matmul { kernel, .. } => Some(kernel),
            CudaStep::InGroup { .. } => None,
        })
    }
}

/// Renders every step of `program` into one module. Kernels keep their IR names (`k0`); a
/// row group that can be one kernel (no [`why_separate`]) is rendered as one
/// ([`render_group`], named `main_g0`) at its first step, its other steps
/// [`CudaStep::InGroup`]; other steps are named by the program, their position and op
/// (`main_s3_gather`).
pub fn render_program(program: &Program) -> Result<CudaModule, CodegenError> {
    let mut steps = Vec::with_capacity(program.steps.len());
    let mut in_group = vec![None; program.steps.len()];
    for (gi, g) in program.groups.iter().enumerate() {
        if why_separate(program, g).is_none() {
            for s in g.steps.clone() {
                in_group[s] = Some((gi, g.steps.start));
            }
        }
    }
    for (i, step) in program.steps.iter().enumerate() {
        if let Some((gi, first)) = in_group[i] {
            steps.push(if i == first {
                CudaStep::Kernel(render_group(program, &program.groups[gi], gi)?)
            } else {
                CudaStep::InGroup { first }
            });
            continue;
        }
        steps.push(match step {
            Step::Kernel(k) => CudaStep::Kernel(render_kernel(k, &program.buffers)?),
            Step::Matmul(m) => CudaStep::Matmul {
                desc: m.clone(),
                kernel: ops::render_matmul(&format!("{}_s{i}_matmul", program.name), m, &program.buffers)?,
            },
            Step::Op(op) => CudaStep::Kernel(render_op(
                &format!("{}_s{i}_{}", program.name, op.op.name()),
                op,
                &program.buffers,
            )?),
            Step::Loop(_) => {
                return Err(CodegenError::Unsupported {
                    step: format!("{}_s{i}_loop", program.name),
                    message: "fori_loop is not compiled for CUDA yet (run it on the CPU backend)".into(),
                })
            }
        });
    }
    let half = program.buffers.iter().any(|b| b.ty.dtype.is_half());
    Ok(assemble(program.name.clone(), steps, half))
}

/// A module of already rendered steps: the prelude (with the 16-bit float helpers of
/// [`half_prelude`] when `half`, so `f32` and `f64` modules are unchanged), then each
/// kernel's text in order.
pub fn assemble(name: String, steps: Vec<CudaStep>, half: bool) -> CudaModule {
    let mut source = prelude();
    if half {
        source.push_str(half_prelude());
    }
    source.push_str(&format!("\n// ---- program @{name} ----\n"));
    let mut module = CudaModule { name, source, steps };
    let texts: Vec<String> = module.kernels().map(|k| k.source.clone()).collect();
    for t in texts {
        module.source.push('\n');
        module.source.push_str(&t);
    }
    module
}

/// Renders one fused kernel (its buffers declared by `buffers`, indexed by [`BufId`]).
pub fn render_kernel(kernel: &Kernel, buffers: &[BufferDecl]) -> Result<RenderedKernel, CodegenError> {
    expr::render_kernel(kernel, buffers)
}

/// Renders one library step (gather, scatter_add, concat, pad) as a kernel named `name`.
pub fn render_op(name: &str, step: &OpStep, buffers: &[BufferDecl]) -> Result<RenderedKernel, CodegenError> {
    ops::render_op(name, step, buffers)
}

// ---- shared helpers ------------------------------------------------------------------------

/// The C type of a value of `d` (a 16-bit float is a `float` holding a value exact in its
/// format: it is 16 bits only in memory).
pub(crate) fn ctype(d: DType) -> &'static str {
    match d {
        DType::Bool => "bool",
        DType::I32 => "int",
        DType::I64 => "long long",
        DType::F16 | DType::BF16 | DType::F32 => "float",
        DType::F64 => "double",
    }
}

/// The C type of a buffer element of `d` (bool is one byte, 0 or 1; the 16-bit floats are
/// their bits, `tj_f16` and `tj_bf16` of [`half_prelude`]).
pub(crate) fn elem_type(d: DType) -> &'static str {
    match d {
        DType::Bool => "unsigned char",
        DType::F16 => "tj_f16",
        DType::BF16 => "tj_bf16",
        DType::I32 | DType::I64 | DType::F32 | DType::F64 => ctype(d),
    }
}

/// The value of the buffer element `raw` (a C lvalue of [`elem_type`]`(d)`) as a value of `d`:
/// a 16-bit float widened to `float` (exact).
pub(crate) fn load_elem(d: DType, raw: &str) -> String {
    match d {
        DType::F16 => format!("tj_f16_to_f32({raw})"),
        DType::BF16 => format!("tj_bf16_to_f32({raw})"),
        DType::Bool | DType::I32 | DType::I64 | DType::F32 | DType::F64 => raw.to_string(),
    }
}

/// The buffer element of dtype `d` holding `value` (a C value of [`ctype`]`(d)`): a 16-bit
/// float's `float` rounded to its bits (to nearest even; exact for a value already rounded).
pub(crate) fn store_elem(d: DType, value: &str) -> String {
    match d {
        DType::F16 => format!("tj_f32_to_f16({value})"),
        DType::BF16 => format!("tj_f32_to_bf16({value})"),
        DType::Bool | DType::I32 | DType::I64 | DType::F32 | DType::F64 => value.to_string(),
    }
}

/// An integer literal of type `long long` (or `int` where it fits, for readability).
pub(crate) fn int_lit(v: i64) -> String {
    if v == i64::MIN {
        "(-9223372036854775807LL - 1)".into()
    } else if v == i32::MIN as i64 {
        "(-2147483647 - 1)".into()
    } else if i32::try_from(v).is_ok() {
        v.to_string()
    } else {
        format!("{v}LL")
    }
}

/// A constant of dtype `d`, exact: floats as their shortest round-trip decimal, non-finite
/// ones by their bits.
pub(crate) fn literal(s: Scalar, d: DType) -> String {
    match (s.cast(d), d) {
        (Scalar::Bool(b), _) => b.to_string(),
        (Scalar::Int(i), DType::I32) => int_lit(i),
        (Scalar::Int(i), _) => match i {
            i64::MIN => int_lit(i),
            _ => format!("{i}LL"),
        },
        (Scalar::Float(f), DType::F16 | DType::BF16 | DType::F32) => {
            let x = f as f32;
            if x.is_finite() {
                format!("{x:?}f")
            } else {
                format!("__int_as_float(0x{:08x})", x.to_bits())
            }
        }
        (Scalar::Float(f), _) => {
            if f.is_finite() {
                format!("{f:?}")
            } else {
                format!("__longlong_as_double(0x{:016x}LL)", f.to_bits())
            }
        }
    }
}

/// `x` (of dtype `from`) converted to `to` as the interpreter's casts do: floats to integers
/// truncate and saturate (NaN to 0), integers wrap, anything to bool is `!= 0`.
pub(crate) fn cast(from: DType, to: DType, x: &str) -> String {
    use DType::*;
    match (from, to) {
        // A 16-bit float is a `float` value: conversions go through `float`, and to a 16-bit
        // format round (to nearest even).
        (F16, F16) | (BF16, BF16) => x.to_string(),
        (F16 | BF16, _) => cast(F32, to, x),
        (_, F16) => format!("tj_round_f16({})", cast(from, F32, x)),
        (_, BF16) => format!("tj_round_bf16({})", cast(from, F32, x)),
        (Bool, Bool) | (I32, I32) | (I64, I64) | (F32, F32) | (F64, F64) => x.to_string(),
        (_, Bool) => format!("({x} != 0)"),
        (F32, I32) => format!("__float2int_rz({x})"),
        (F32, I64) => format!("__float2ll_rz({x})"),
        (F64, I32) => format!("__double2int_rz({x})"),
        (F64, I64) => format!("__double2ll_rz({x})"),
        (Bool | I32 | I64 | F32, F64) | (Bool | I32 | I64 | F64, F32) | (Bool | I32 | I64, I32 | I64) => {
            format!("({}){x}", ctype(to))
        }
    }
}

/// Checks that an affine index stays inside `0..len` over the box `dims` (nothing to check
/// when the box is empty).
pub(crate) fn check_bounds(
    step: &str,
    what: &str,
    offset: i64,
    strides: &[i64],
    dims: &[usize],
    len: usize,
) -> Result<(), CodegenError> {
    if strides.len() != dims.len() {
        return Err(invalid(
            step,
            format!("{what}: index of rank {} in a space of rank {}", strides.len(), dims.len()),
        ));
    }
    if dims.contains(&0) {
        return Ok(());
    }
    let (mut lo, mut hi) = (offset as i128, offset as i128);
    for (&s, &n) in strides.iter().zip(dims) {
        let span = s as i128 * (n as i128 - 1);
        if span < 0 {
            lo += span;
        } else {
            hi += span;
        }
    }
    if lo < 0 || hi >= len as i128 {
        return Err(invalid(step, format!("{what}: indices {lo}..={hi} leave a buffer of {len} elements")));
    }
    Ok(())
}

/// `prefix0, prefix1, ...` for `n` loop indices.
pub(crate) fn index_names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|d| format!("{prefix}{d}")).collect()
}

/// The declared buffer `buf`, or an error naming the step.
pub(crate) fn buffer<'a>(
    step: &str,
    buffers: &'a [BufferDecl],
    buf: BufId,
) -> Result<&'a BufferDecl, CodegenError> {
    buffers.get(buf).ok_or_else(|| invalid(step, format!("no buffer b{buf}")))
}

/// The parameter list of a kernel using `uses` (buffer, read, written), then the size
/// parameters of `sizes`, then the error word.
pub(crate) fn params(
    step: &str,
    buffers: &[BufferDecl],
    uses: &[(BufId, bool, bool)],
    sizes: &Sizes,
    can_fail: bool,
) -> Result<Vec<Param>, CodegenError> {
    let mut merged: Vec<(BufId, bool, bool)> = Vec::new();
    for &(b, r, w) in uses {
        match merged.iter_mut().find(|m| m.0 == b) {
            Some(m) => {
                m.1 |= r;
                m.2 |= w;
            }
            None => merged.push((b, r, w)),
        }
    }
    merged.sort_by_key(|m| m.0);
    let mut out = Vec::with_capacity(merged.len() + 1);
    for (buf, r, w) in merged {
        let dtype = buffer(step, buffers, buf)?.ty.dtype;
        let access = match (r, w) {
            (true, true) => Access::ReadWrite,
            (false, true) => Access::Write,
            (true, false) | (false, false) => Access::Read,
        };
        out.push(Param { name: format!("b{buf}"), kind: ParamKind::Buffer { buf, dtype, access } });
    }
    out.extend(sizes.params());
    if can_fail {
        out.push(Param { name: "err".into(), kind: ParamKind::ErrorFlag });
    }
    Ok(out)
}

/// The C parameter list of `params`.
pub(crate) fn signature(params: &[Param]) -> String {
    let list: Vec<String> = params
        .iter()
        .map(|p| match p.kind {
            ParamKind::Buffer { dtype, access: Access::Read, .. } => {
                format!("const {}* __restrict__ {}", elem_type(dtype), p.name)
            }
            ParamKind::Buffer { dtype, access: Access::Write, .. } => {
                format!("{}* __restrict__ {}", elem_type(dtype), p.name)
            }
            ParamKind::Buffer { dtype, access: Access::ReadWrite, .. } => {
                format!("{}* {}", elem_type(dtype), p.name)
            }
            ParamKind::Size { .. } => format!("long long {}", p.name),
            ParamKind::ErrorFlag => format!("int* {}", p.name),
        })
        .collect();
    list.join(", ")
}

/// The launch of a grid-stride loop over `n` items with `block` threads per block.
pub(crate) fn grid_for(n: usize, block: u32) -> Launch {
    let blocks = n.div_ceil(block as usize).min(MAX_GRID as usize) as u32;
    Launch { grid: blocks, block, shared_bytes: 0 }
}

/// The C function name of a kernel called `name` (non-identifier characters become `_`).
pub(crate) fn c_name(name: &str) -> String {
    let mut s: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    if !s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        s.insert(0, '_');
    }
    s
}

/// The buffers an element program loads.
pub(crate) fn loads(prog: &[tenjit_ir::kernel::Instr]) -> impl Iterator<Item = BufId> + '_ {
    prog.iter().filter_map(|i| match &i.inst {
        Inst::Load { buf, .. } => Some(*buf),
        _ => None,
    })
}
