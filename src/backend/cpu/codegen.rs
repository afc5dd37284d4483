//! Kernel → CLIF → machine code: the CPU code generator.
//!
//! [`render`] turns a [`Kernel`] into the text of one CLIF function (pure and deterministic:
//! what `TENJIT_DUMP` writes and snapshot tests pin); [`compile`] builds the same function and
//! JIT-compiles it with Cranelift into a [`CompiledKernel`].
//!
//! # ABI
//!
//! ```text
//! extern "C" fn(bufs: *const *mut u8, start: u64, end: u64, status: *mut u32, sizes: *const i64)
//! ```
//!
//! `sizes` is the kernel's size table (`sizes.rs`): the extents, strides and offsets of its
//! canonical plan that the code reads at run time instead of holding them as constants, so
//! kernels of one structure at different sizes share one function. [`CompiledKernel`] builds
//! it once, from its own plan, and passes it on every call.
//!
//! `bufs[id]` is the base of buffer `id` (dense row-major; `f32`/`f64`/`i32`/`i64` natural,
//! bool one byte 0 or 1). The function computes the output points whose *outer index* lies in
//! `start..end` ([`CompiledKernel::outer_len`] is that index's range), so the runtime can split
//! a kernel over threads by disjoint ranges. It never traps: an integer division or remainder
//! by zero or a negative integer power stores a nonzero code in `*status` (the op's position
//! in [`BinaryOp::ALL`] plus one, plus 64 times the instruction's position in the kernel's
//! [`failing_sites`](tenjit_ir::kernel::Kernel::failing_sites), so the code says which
//! instruction failed) and goes on with a harmless value; [`CompiledKernel::run`] turns the
//! code into a [`KernelError`], whose site the executor maps to the graph node the
//! instruction computes.
//!
//! # Loop structure
//!
//! The plan (`plan.rs`) first canonicalizes the space: size-1 dims are dropped and adjacent
//! dims that every index map walks contiguously are merged (a dense `[n, m]` elementwise kernel
//! becomes one dim of `n * m`). The outer dim is the first kept (non-reduced) dim. Then one of
//! three shapes (`nest.rs`):
//!
//! * **elementwise**: loops over the dims, the last one a *row*;
//! * **inner reduction**: loops over the kept dims; per output point, loops over the reduced
//!   dims with the last reduced dim a row accumulating into registers, a horizontal combine,
//!   then the epilogue and the stores. An `argmax`/`argmin` ([`Combine::Arg`]) keeps a best
//!   value and a best index per lane (indices in lanes of the value's width), both chosen by
//!   one comparison per element (a select, not a vector `fmax`), combined at the end by
//!   value, then NaN, then smallest index (a float row whose best is the zero that `fmax`
//!   might not have chosen is reduced again on a cold path, so the value is the `max`/`min`
//!   reduction's, `+0` above `-0`); its epilogue reads the index as `acc` and
//!   the value as `acc_value`, so `max_dim` stores both from one pass. It is vectorized when
//!   the reduced dim is walked with stride 1, and otherwise runs scalar rows (never columns);
//! * **column reduction** (`x.sum(0)`): the last kept dim is the row, cut in chunks of 4096
//!   columns; per chunk, a scratch row on the stack accumulates over all reduced dims, then
//!   the epilogue runs per column. An `f32` sum adds blocks of 16 steps of the last reduced
//!   dim into an `f32` scratch row, which is then added into the `f64` one.
//!
//! A row first computes the instructions that do not vary along it (broadcast loads,
//! constants and what depends only on them), then runs the rest as 128-bit vectors unrolled
//! 2× (4× for reductions, 8× for `f32` sums), then single vectors, then a scalar tail, so
//! every element is visited exactly once and nothing is read past the row's end. Reduction
//! rows address their loads (and a scratch row) through loop-carried pointers, so the loop
//! body has no index arithmetic. An elementwise vector row
//! whose ops cannot set the status word emits its body only once or twice instead (compile
//! time is mostly Cranelift's, proportional to the code): unrolled 2× only when the body is
//! small (no vector math), then single vectors, the last of which, when partial, loads its
//! elements from 16-byte stack copies and stores only its valid lanes.
//!
//! A dense `f32` or `f64` row sum (one load, walked with stride 1 along the one reduced dim,
//! stored as it is) runs as a hand-written AVX2 routine instead where the CPU has AVX2
//! (`dense_sum`): the same ABI and size table, the same order guarantees for `f32` sums, and
//! 256-bit vectors, which Cranelift does not emit.
//!
//! # Vectorization rules
//!
//! A row vectorizes when every load that varies along it has stride 1 there (stride 0 means
//! invariant) and every varying value fits one lane count: `f32`/`i32` as 4 lanes,
//! `f64`/`i64` as 2, bool as a lane mask of the same width (a bool load reads its 4 or 2
//! bytes as one integer and widens them to the mask: the causal mask of attention). Bool
//! stores and mixed lane counts keep the scalar row. Ops without a vector instruction (integer `//`, `%`,
//! `**`, 64-bit int↔float casts, iota, rand, and the transcendental ops `vecmath` does not
//! provide) run lane by lane inside the vector row.
//!
//! # Semantics
//!
//! Integer and bool results equal the interpreter's exactly; so do float `+ - * /`, `sqrt`,
//! `neg`, `abs`, `floor`, `ceil`, comparisons, `where`, casts (`fcvt_to_sint_sat`: truncating,
//! saturating, NaN to 0) and `maximum`/`minimum` (Cranelift's `fmax`/`fmin`: NaN-propagating,
//! `+0` above `-0`, the op table's IEEE 754-2019 rule, so reductions agree in any order). Ops Cranelift lacks
//! (`exp`, `log`, `sin`, `cos`, `tanh`, `pow`, float `//` and `%`) come from `vecmath` or, when
//! it has none, call the op table's own `f64` function and round. Float products of `f32`
//! accumulate in `f64`, `f64` sums and products in `f64`. `f32` sums in vector rows are
//! blocked: each `f32` lane adds at most 16 elements (as each accumulator of NumPy's pairwise
//! sum does), the block sums are added in `f64`; the error is a few `f32` roundings of partial
//! sums, not of the result, and there is no conversion per element. The scalar shape visits
//! elements in the interpreter's order (`f32` sums in `f64`), the vector shapes in lane order,
//! so sums may differ from the interpreter in the last bits. Max/min reductions are exact, integer
//! reductions wrap exactly.

mod dense_sum;
mod emit;
mod native;
mod nest;
mod plan;
mod shared;
mod sizes;

pub use emit::{binary_resolves, unary_resolves};

use cranelift_codegen::ir::types::{F32, F64, I32, I64};
use cranelift_codegen::ir::{AbiParam, ExternalName, Function, InstBuilder, Signature, Type, UserFuncName};
use cranelift_codegen::isa::{CallConv, OwnedTargetIsa, TargetFrontendConfig};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, Linkage, Module};
use smallvec::SmallVec;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, OnceLock};
#[cfg(doc)]
use tenjit_ir::kernel::Combine;
use tenjit_ir::kernel::{BufId, BufferDecl, Kernel};
use tenjit_ir::random;
use tenjit_ir::{BinaryOp, DType, UnaryOp};

/// Why a kernel could not be rendered or compiled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CodegenError {
    /// The kernel is malformed: a bad operand, dtype, index map or an out-of-bounds access.
    Invalid {
        /// The kernel's name.
        kernel: String,
        /// What is wrong.
        message: String,
    },
    /// Cranelift rejected the function or could not set up the JIT.
    Cranelift(String),
    /// An inconsistency of this code generator: a bug.
    Internal(String),
}

impl fmt::Display for CodegenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodegenError::Invalid { kernel, message } => write!(f, "kernel {kernel}: {message}"),
            CodegenError::Cranelift(m) => write!(f, "cranelift: {m}"),
            CodegenError::Internal(m) => write!(f, "code generator bug: {m}"),
        }
    }
}

impl std::error::Error for CodegenError {}

/// An error a running kernel reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelError {
    /// An integer op is undefined for the values met.
    Arithmetic {
        /// The op's name.
        op: &'static str,
        /// What is undefined, from the op table.
        message: &'static str,
        /// The failing instruction: its position in the kernel's
        /// [`failing_sites`](tenjit_ir::kernel::Kernel::failing_sites).
        site: usize,
    },
    /// The buffers or the range given do not fit the kernel.
    Arguments(String),
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KernelError::Arithmetic { op, message, .. } => write!(f, "{op}: {message}"),
            KernelError::Arguments(m) => write!(f, "kernel arguments: {m}"),
        }
    }
}

impl std::error::Error for KernelError {}

impl KernelError {
    /// The kind of evaluation error this is.
    pub fn kind(&self) -> crate::error::EvalErrorKind {
        match self {
            KernelError::Arithmetic { .. } => crate::error::EvalErrorKind::Arithmetic,
            KernelError::Arguments(_) => crate::error::EvalErrorKind::Internal,
        }
    }

    /// The error of a nonzero status word.
    fn from_status(code: u32) -> KernelError {
        // Codes of site `s` start at `s * SITE_STRIDE + 1` (see `emit::status_code`).
        let Some(c) = code.checked_sub(1) else {
            return KernelError::Arguments(format!("unknown status {code}"));
        };
        let (site, position) = ((c / emit::SITE_STRIDE) as usize, (c % emit::SITE_STRIDE) as usize);
        let Some(&op) = BinaryOp::ALL.get(position) else {
            return KernelError::Arguments(format!("unknown status {code}"));
        };
        let spec = op.spec();
        // The table's own message: evaluate the op at an input it rejects.
        let failing = if op == BinaryOp::Pow { (spec.int)(1, -1) } else { (spec.int)(1, 0) };
        KernelError::Arithmetic { op: spec.name, message: failing.err().unwrap_or("undefined result"), site }
    }
}

// ---- trampolines ---------------------------------------------------------------------------

/// A Rust function generated code calls: the op table's functions, for ops Cranelift has no
/// instruction for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tramp {
    /// A unary op's `f64` function.
    Unary(UnaryOp),
    /// A binary op's `f64` function.
    Binary(BinaryOp),
    /// `pow` on `i64` (non-negative exponents).
    IntPow,
    /// The uniform draw of `rand` (`f32` or `f64`).
    Rand(DType),
    /// The `f16` with these bits (the low 16 of an `i32`) as an `f32` (exact).
    F16ToF32,
    /// The bits of an `f32` rounded to `f16` (to nearest even), in the low 16 of an `i32`.
    F32ToF16,
}

extern "C" fn unary_f64<const I: usize>(x: f64) -> f64 {
    UnaryOp::ALL.get(I).map_or(f64::NAN, |op| (op.spec().float)(x))
}

extern "C" fn binary_f64<const I: usize>(x: f64, y: f64) -> f64 {
    BinaryOp::ALL.get(I).map_or(f64::NAN, |op| (op.spec().float)(x, y))
}

extern "C" fn int_pow(a: i64, b: i64) -> i64 {
    (BinaryOp::Pow.spec().int)(a, b).unwrap_or(0)
}

extern "C" fn rand_f32(seed: u64, counter: u64) -> f32 {
    random::uniform_f32(seed, counter)
}

extern "C" fn rand_f64(seed: u64, counter: u64) -> f64 {
    random::uniform_f64(seed, counter)
}

extern "C" fn f16_to_f32(bits: u32) -> f32 {
    half::f16::from_bits(bits as u16).to_f32()
}

extern "C" fn f32_to_f16(x: f32) -> u32 {
    half::f16::from_f32(x).to_bits() as u32
}

/// The most unary or binary ops the trampoline tables hold (checked at compile time).
const MAX_OPS: usize = 32;

/// `[f::<0>, f::<1>, ..., f::<31>]`.
macro_rules! instances {
    ($f:ident) => {
        [
            $f::<0>, $f::<1>, $f::<2>, $f::<3>, $f::<4>, $f::<5>, $f::<6>, $f::<7>, $f::<8>, $f::<9>,
            $f::<10>, $f::<11>, $f::<12>, $f::<13>, $f::<14>, $f::<15>, $f::<16>, $f::<17>, $f::<18>,
            $f::<19>, $f::<20>, $f::<21>, $f::<22>, $f::<23>, $f::<24>, $f::<25>, $f::<26>, $f::<27>,
            $f::<28>, $f::<29>, $f::<30>, $f::<31>,
        ]
    };
}

const _: () = assert!(UnaryOp::ALL.len() <= MAX_OPS && BinaryOp::ALL.len() <= MAX_OPS);

/// `unary_f64::<I>`, entry `I` for op `UnaryOp::ALL[I]`: the generic fallback of every unary
/// op, so a new op needs no entry here.
#[rustfmt::skip]
const UNARY_FNS: [extern "C" fn(f64) -> f64; MAX_OPS] = instances!(unary_f64);

/// `binary_f64::<I>`, entry `I` for op `BinaryOp::ALL[I]`.
#[rustfmt::skip]
const BINARY_FNS: [extern "C" fn(f64, f64) -> f64; MAX_OPS] = instances!(binary_f64);

impl Tramp {
    /// Every trampoline, in the order of their indices.
    fn all() -> Vec<Tramp> {
        let mut v: Vec<Tramp> = UnaryOp::ALL.iter().map(|&o| Tramp::Unary(o)).collect();
        v.extend(BinaryOp::ALL.iter().map(|&o| Tramp::Binary(o)));
        v.extend([
            Tramp::IntPow,
            Tramp::Rand(DType::F32),
            Tramp::Rand(DType::F64),
            Tramp::F16ToF32,
            Tramp::F32ToF16,
        ]);
        v
    }

    /// The index that names it in CLIF (`u0:index`) and its `FuncId` in the JIT module.
    fn index(self) -> u32 {
        let (nu, nb) = (UnaryOp::ALL.len(), BinaryOp::ALL.len());
        let i = match self {
            Tramp::Unary(o) => UnaryOp::ALL.iter().position(|&x| x == o).unwrap_or(0),
            Tramp::Binary(o) => nu + BinaryOp::ALL.iter().position(|&x| x == o).unwrap_or(0),
            Tramp::IntPow => nu + nb,
            // The 16-bit floats draw in `f32` (`kernel::half` widens their `rand`).
            Tramp::Rand(DType::F32 | DType::F16 | DType::BF16) => nu + nb + 1,
            Tramp::Rand(DType::F64 | DType::Bool | DType::I32 | DType::I64) => nu + nb + 2,
            Tramp::F16ToF32 => nu + nb + 3,
            Tramp::F32ToF16 => nu + nb + 4,
        };
        i as u32
    }

    /// Its symbol name.
    fn name(self) -> String {
        match self {
            Tramp::Unary(o) => format!("tenjit_{}", o.spec().name),
            Tramp::Binary(o) => format!("tenjit_{}", o.spec().name),
            Tramp::IntPow => "tenjit_pow_i64".into(),
            Tramp::Rand(DType::F32 | DType::F16 | DType::BF16) => "tenjit_rand_f32".into(),
            Tramp::Rand(DType::F64 | DType::Bool | DType::I32 | DType::I64) => "tenjit_rand_f64".into(),
            Tramp::F16ToF32 => "tenjit_f16_to_f32".into(),
            Tramp::F32ToF16 => "tenjit_f32_to_f16".into(),
        }
    }

    /// Its address.
    fn addr(self) -> *const u8 {
        let i = self.index() as usize;
        match self {
            Tramp::Unary(_) => UNARY_FNS[i] as *const u8,
            Tramp::Binary(_) => BINARY_FNS[i - UnaryOp::ALL.len()] as *const u8,
            Tramp::IntPow => int_pow as *const u8,
            Tramp::Rand(DType::F32 | DType::F16 | DType::BF16) => rand_f32 as *const u8,
            Tramp::Rand(DType::F64 | DType::Bool | DType::I32 | DType::I64) => rand_f64 as *const u8,
            Tramp::F16ToF32 => f16_to_f32 as *const u8,
            Tramp::F32ToF16 => f32_to_f16 as *const u8,
        }
    }

    /// Parameter types and the return type.
    fn signature(self) -> (Vec<Type>, Type) {
        match self {
            Tramp::Unary(_) => (vec![F64], F64),
            Tramp::Binary(_) => (vec![F64, F64], F64),
            Tramp::IntPow => (vec![I64, I64], I64),
            Tramp::Rand(DType::F32 | DType::F16 | DType::BF16) => (vec![I64, I64], F32),
            Tramp::Rand(DType::F64 | DType::Bool | DType::I32 | DType::I64) => (vec![I64, I64], F64),
            Tramp::F16ToF32 => (vec![I32], F32),
            Tramp::F32ToF16 => (vec![F32], I32),
        }
    }

    fn clif_signature(self, cc: CallConv) -> Signature {
        let mut sig = Signature::new(cc);
        let (params, ret) = self.signature();
        sig.params.extend(params.into_iter().map(AbiParam::new));
        sig.returns.push(AbiParam::new(ret));
        sig
    }
}

// ---- building and compiling ----------------------------------------------------------------

/// The host ISA (with native FMA and vector extensions), built once.
fn host_isa() -> Result<OwnedTargetIsa, CodegenError> {
    static ISA: OnceLock<Result<OwnedTargetIsa, String>> = OnceLock::new();
    ISA.get_or_init(|| {
        let mut flags = settings::builder();
        let settings = [
            // Measured on W1 and W7 (0.135): "none", like the single-pass register allocator,
            // cuts a vector-math kernel's compile time by a third but halves the speed of its
            // code; "speed" and "speed_and_size" are alike.
            ("opt_level", "speed"),
            ("is_pic", "false"),
            ("use_colocated_libcalls", "false"),
            // Inline stack probes: the column shape keeps up to 48 KiB of scratch rows on the stack.
            ("enable_probestack", "true"),
            ("probestack_strategy", "inline"),
            // Cranelift's own verifier costs a quarter of a kernel's compile time; debug builds
            // (the tests) keep it, and `render` always verifies.
            ("enable_verifier", if cfg!(debug_assertions) { "true" } else { "false" }),
        ];
        for (k, v) in settings {
            flags.set(k, v).map_err(|e| e.to_string())?;
        }
        let builder = cranelift_native::builder().map_err(str::to_string)?;
        builder.finish(settings::Flags::new(flags)).map_err(|e| e.to_string())
    })
    .clone()
    .map_err(CodegenError::Cranelift)
}

fn kernel_signature(cc: CallConv) -> Signature {
    let mut sig = Signature::new(cc);
    sig.params.extend([AbiParam::new(I64); 5]);
    sig
}

/// Builds the CLIF function of a planned kernel.
fn build(p: &plan::Plan, config: TargetFrontendConfig) -> Result<Function, CodegenError> {
    let cc = config.default_call_conv;
    let mut func =
        Function::with_name_signature(UserFuncName::testcase(&p.kernel.name), kernel_signature(cc));
    let mut fctx = FunctionBuilderContext::new();
    let mut b = FunctionBuilder::new(&mut func, &mut fctx);
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    b.seal_block(entry);
    let params = b.block_params(entry);
    let args = [params[0], params[1], params[2], params[3], params[4]];
    let mut e = emit::Emitter::new(b, p, cc, args);
    let ret = e.b.create_block();
    if !p.empty {
        let body = e.b.create_block();
        let ok = e.b.ins().icmp(cranelift_codegen::ir::condcodes::IntCC::SignedLessThan, e.start, e.end);
        e.b.ins().brif(ok, body, &[], ret, &[]);
        e.b.switch_to_block(body);
        e.b.seal_block(body);
        e.kernel();
    }
    e.b.ins().jump(ret, &[]);
    e.b.switch_to_block(ret);
    e.b.seal_block(ret);
    e.b.ins().return_(&[]);
    let emit::Emitter { b, error, .. } = e;
    b.finalize(config);
    func.dfg.resolve_all_aliases();
    match error {
        Some(err) => Err(err),
        None => Ok(func),
    }
}

/// A description of the plan, for the rendered text: its shape and canonical space, then
/// this kernel's size table (the function itself reads the table, so it holds no sizes).
fn describe(p: &plan::Plan) -> String {
    let shape = match p.shape {
        plan::Shape::Elementwise { lanes: Some(l) } => format!("elementwise, {l}-lane rows"),
        plan::Shape::Elementwise { lanes: None } => "elementwise, scalar rows".into(),
        plan::Shape::Inner { lanes: Some(l) } => format!("inner reduction, {l}-lane rows"),
        plan::Shape::Inner { lanes: None } => "inner reduction, scalar rows".into(),
        plan::Shape::Columns { lanes } => format!("column reduction, {lanes}-lane rows"),
    };
    let dims: Vec<String> = p
        .dims
        .iter()
        .zip(&p.reduced)
        .map(|(n, &r)| if r { format!("r{n}") } else { n.to_string() })
        .collect();
    let table: Vec<String> = sizes::table(p).iter().map(i64::to_string).collect();
    format!(
        "; kernel {}: {shape}; canonical space [{}]; outer dim {}\n; size table [{}]",
        p.kernel.name,
        dims.join(", "),
        p.outer_len(),
        table.join(", ")
    )
}

/// The CLIF text of `kernel`'s function: comments naming the loop shape, the size table the
/// kernel passes and the called trampolines, then the size-generic function as Cranelift
/// prints it (shared by every kernel of the same structure). Deterministic for a given host.
pub fn render(kernel: &Kernel, buffers: &[BufferDecl]) -> Result<String, CodegenError> {
    let kernel = tenjit_ir::kernel::half::widened(kernel);
    let p = plan::plan(&kernel, buffers)?;
    let func = build(&p, host_isa()?.frontend_config())?;
    cranelift_codegen::verify_function(&func, &settings::Flags::new(settings::builder()))
        .map_err(|e| CodegenError::Internal(format!("CLIF does not verify: {e}")))?;
    let mut text = describe(&p);
    text.push('\n');
    if let Some(r) = dense_sum::Routine::of(&p, buffers) {
        text.push_str(&format!("; runs as {} on this CPU\n", r.describe()));
    }
    let names = func.params.user_named_funcs();
    for data in func.dfg.ext_funcs.values() {
        if let ExternalName::User(r) = data.name {
            let index = names[r].index;
            if let Some(t) = Tramp::all().into_iter().find(|t| t.index() == index) {
                text.push_str(&format!("; u0:{index} = {}\n", t.name()));
            }
        }
    }
    text.push_str(&func.display().to_string());
    Ok(text)
}

type KernelFn = unsafe extern "C" fn(*const *mut u8, u64, u64, *mut u32, *const i64);

/// JIT-compiles `kernel` (its buffers declared by `buffers`, indexed by `BufId`), or reuses
/// the code of a kernel of the same structure over buffers of the same types compiled earlier
/// in the process (see `shared`).
pub fn compile(kernel: &Kernel, buffers: &[BufferDecl]) -> Result<CompiledKernel, CodegenError> {
    let mut all = compile_all(&[kernel], buffers, 1)?;
    all.pop().ok_or_else(|| CodegenError::Internal("no kernel compiled".into()))
}

/// [`compile`] for each of `kernels`, each structure compiled once, the new ones spread over
/// up to `threads` threads (Cranelift compiles functions independently).
pub fn compile_all(
    kernels: &[&Kernel],
    buffers: &[BufferDecl],
    threads: usize,
) -> Result<Vec<CompiledKernel>, CodegenError> {
    struct Item {
        local: Kernel,
        map: Vec<BufId>,
        decls: Vec<BufferDecl>,
        key: shared::Key,
        outer_len: usize,
        sizes: Arc<[i64]>,
    }
    let mut items = Vec::with_capacity(kernels.len());
    for &kernel in kernels {
        // 16-bit values compute in `f32` (lowered kernels already do; a hand-built one may not).
        let (local, map) = shared::canonical(&tenjit_ir::kernel::half::widened(kernel));
        let decls = map
            .iter()
            .map(|&b| buffers.get(b).cloned().ok_or_else(|| CodegenError::Internal(format!("no buffer {b}"))))
            .collect::<Result<Vec<BufferDecl>, CodegenError>>()?;
        // Planning also checks that every access of this kernel stays inside its own buffers,
        // whatever code it ends up sharing.
        let p = plan::plan(&local, &decls)?;
        let key = shared::Key::new(&p, decls.iter().map(|d| d.ty.dtype).collect());
        let outer_len = p.outer_len();
        let sizes = sizes::table(&p).into();
        items.push(Item { local, map, decls, key, outer_len, sizes });
    }
    // The code of each distinct key: cached, or compiled now (the first kernel of that key).
    let mut codes: HashMap<&shared::Key, Option<Arc<shared::Code>>> = HashMap::new();
    let mut todo: Vec<usize> = Vec::new();
    for (i, it) in items.iter().enumerate() {
        if !codes.contains_key(&it.key) {
            let cached = shared::lookup(&it.key);
            if cached.is_none() {
                todo.push(i);
            }
            codes.insert(&it.key, cached);
        }
    }
    let build_one = |&i: &usize| compile_code(kernels[i], &items[i].local, &items[i].decls).map(Arc::new);
    let built: Vec<Result<Arc<shared::Code>, CodegenError>> = if threads > 1 && todo.len() > 1 {
        use rayon::prelude::*;
        todo.par_iter().with_max_len(1).map(build_one).collect()
    } else {
        todo.iter().map(build_one).collect()
    };
    for (&i, code) in todo.iter().zip(built) {
        let code = code?;
        shared::insert(items[i].key.clone(), &code);
        codes.insert(&items[i].key, Some(code));
    }
    items
        .iter()
        .map(|it| match codes.get(&it.key) {
            Some(Some(code)) => Ok(CompiledKernel {
                code: Arc::clone(code),
                map: it.map.clone(),
                outer_len: it.outer_len,
                sizes: Arc::clone(&it.sizes),
            }),
            _ => Err(CodegenError::Internal("a kernel's code is missing".into())),
        })
        .collect()
}

/// How many functions [`compile`] and [`compile_all`] have JIT-compiled in this process:
/// kernels that found their code in the shared cache do not count.
pub fn functions_compiled() -> usize {
    FUNCTIONS_COMPILED.load(std::sync::atomic::Ordering::Relaxed)
}

static FUNCTIONS_COMPILED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Compiles `local` (`kernel` with local buffer ids, declared by `decls`) to machine code, or
/// picks the hand-written routine it runs as (`dense_sum`).
fn compile_code(kernel: &Kernel, local: &Kernel, decls: &[BufferDecl]) -> Result<shared::Code, CodegenError> {
    let p = plan::plan(local, decls)?;
    if let Some(r) = dense_sum::Routine::of(&p, decls) {
        return Ok(shared::Code { module: None, f: r.function() });
    }
    FUNCTIONS_COMPILED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let isa = host_isa()?;
    let cc = isa.default_call_conv();
    let func = build(&p, isa.frontend_config())?;
    let cranelift = |e: cranelift_module::ModuleError| CodegenError::Cranelift(format!("{e:?}"));
    let mut jb = JITBuilder::with_isa(isa, default_libcall_names());
    let tramps = Tramp::all();
    for t in &tramps {
        jb.symbol(t.name(), t.addr());
    }
    let mut module = JITModule::new(jb);
    for t in &tramps {
        let id =
            module.declare_function(&t.name(), Linkage::Import, &t.clif_signature(cc)).map_err(cranelift)?;
        if id.as_u32() != t.index() {
            return Err(CodegenError::Internal(format!("{} got function id {}", t.name(), id.as_u32())));
        }
    }
    let id = module
        .declare_function(&format!("tenjit_kernel_{}", kernel.name), Linkage::Local, &kernel_signature(cc))
        .map_err(cranelift)?;
    let mut ctx = module.make_context();
    ctx.func = func;
    module.define_function(id, &mut ctx).map_err(cranelift)?;
    module.finalize_definitions().map_err(cranelift)?;
    let code = module.get_finalized_function(id);
    // SAFETY: `code` is the finalized machine code of a function built with
    // `kernel_signature(cc)`, the host's C calling convention with five pointer-sized
    // arguments and no results, which is what `KernelFn` declares.
    let f = unsafe { std::mem::transmute::<*const u8, KernelFn>(code) };
    Ok(shared::Code { module: Some(module), f })
}

/// A compiled kernel: machine code (shared with the kernels of the same structure) and the
/// program buffers it works on, in the order of its local buffer ids.
pub struct CompiledKernel {
    code: Arc<shared::Code>,
    /// Program buffer of each local buffer id: every buffer the code touches.
    map: Vec<BufId>,
    /// The extent of the outer dim over these buffers (the code takes any range of it).
    outer_len: usize,
    /// The size table of this kernel's own plan (see `sizes`), which the code reads.
    sizes: Arc<[i64]>,
}

impl fmt::Debug for CompiledKernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompiledKernel").field("outer_len", &self.outer_len).finish_non_exhaustive()
    }
}

impl CompiledKernel {
    /// Runs the kernel over outer rows `start..end` (a sub-range of `0..outer_len()`).
    ///
    /// # Safety
    ///
    /// `bufs[id]` must point to a live buffer of the type the program declares for `id`, for
    /// every buffer the kernel reads or writes; buffers written must not be read or written by
    /// anyone else during the call (other calls on disjoint ranges may run concurrently: they
    /// write disjoint output elements).
    pub unsafe fn run(&self, bufs: &[*mut u8], start: usize, end: usize) -> Result<(), KernelError> {
        let outer_len = self.outer_len;
        if start > end || end > outer_len {
            return Err(KernelError::Arguments(format!("rows {start}..{end} of 0..{outer_len}")));
        }
        let mut local: SmallVec<[*mut u8; 16]> = SmallVec::with_capacity(self.map.len());
        for &id in &self.map {
            match bufs.get(id) {
                Some(p) if !p.is_null() => local.push(*p),
                Some(_) => return Err(KernelError::Arguments(format!("buffer {id} is null"))),
                None => {
                    return Err(KernelError::Arguments(format!(
                        "{} buffer pointers, but the kernel uses buffer {id}",
                        bufs.len()
                    )))
                }
            }
        }
        if start == end {
            return Ok(());
        }
        let mut status = 0u32;
        // SAFETY: the caller vouches for the buffers, and `local[i]` is the pointer to the
        // program buffer the code knows as `i`. The code was compiled for a plan of the same
        // structure (its key: dims and which are reduced, loop shape, instructions, stride
        // classes, dtypes), and every extent, stride and offset it does not hold as a constant
        // it reads from `self.sizes`, the table of this kernel's own plan, whose layout that
        // structure fixes; that plan proved every access inside these buffers for outer
        // indices in `0..outer_len`. So the code makes exactly the accesses of this kernel's
        // plan. The call covers `start..end` ⊆ `0..outer_len`, reads the live table and
        // writes `status`, a live local.
        unsafe { (self.code.f)(local.as_ptr(), start as u64, end as u64, &mut status, self.sizes.as_ptr()) };
        if status == 0 {
            Ok(())
        } else {
            Err(KernelError::from_status(status))
        }
    }

    /// The size of the outer index range.
    pub fn outer_len(&self) -> usize {
        self.outer_len
    }

    /// Whether `self` and `other` run the same machine code (over their own buffers and size
    /// tables): kernels of one structure over buffers of the same dtypes, whatever their
    /// extents, strides (but whether each is 0, 1 or another) and offsets, are compiled once
    /// per process.
    pub fn shares_code_with(&self, other: &CompiledKernel) -> bool {
        Arc::ptr_eq(&self.code, &other.code)
    }
}
