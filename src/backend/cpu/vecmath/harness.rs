//! A JIT harness for the vector math, shared by this module's tests and `benches/vecmath.rs`:
//! it compiles `out[i] = f(a[i], b[i])` for `i < n` (a loop over whole 128-bit vectors followed
//! by a scalar tail, or a scalar loop only) around any element expression, and runs it. Not part
//! of the library's API.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::I64;
use cranelift_codegen::ir::{AbiParam, InstBuilder, MemFlagsData, Type, UserFuncName, Value};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, Linkage, Module};
use std::time::Instant;

/// The compiled loop's signature: `(a, b, out, n)`.
pub type LoopFn = extern "C" fn(*const u8, *const u8, *mut u8, usize);

/// A compiled loop and the module that owns its code.
pub struct Loop {
    _module: JITModule,
    /// The loop.
    pub func: LoopFn,
    /// Compile time in microseconds (building the CLIF and compiling it).
    pub compile_us: f64,
    /// Size of the machine code in bytes.
    pub code_bytes: usize,
}

impl Loop {
    /// Applies the loop to `a` and `b` (equal lengths; `b` is ignored by unary expressions).
    pub fn run<T: Copy + Default>(&self, a: &[T], b: &[T]) -> Vec<T> {
        assert_eq!(a.len(), b.len());
        let mut out = vec![T::default(); a.len()];
        (self.func)(a.as_ptr().cast(), b.as_ptr().cast(), out.as_mut_ptr().cast(), a.len());
        out
    }
}

fn new_module() -> JITModule {
    let mut flags = settings::builder();
    flags.set("opt_level", "speed").unwrap();
    flags.set("is_pic", "false").unwrap();
    let isa = cranelift_native::builder().unwrap().finish(settings::Flags::new(flags)).unwrap();
    JITModule::new(JITBuilder::with_isa(isa, default_libcall_names()))
}

/// Compiles `out[i] = emit(a[i], b[i])` over `scalar` elements: with `vector`, a loop over whole
/// vectors followed by a scalar tail, else a scalar loop only. `emit` receives the builder, the
/// type of the values (vector or scalar) and the two operands. With `disasm`, the machine code
/// is printed.
pub fn compile(
    scalar: Type,
    vector: bool,
    disasm: bool,
    mut emit: impl FnMut(&mut FunctionBuilder, Type, Value, Value) -> Value,
) -> Loop {
    let mut module = new_module();
    let mut ctx = module.make_context();
    ctx.set_disasm(disasm);
    let start = Instant::now();
    let mut fctx = FunctionBuilderContext::new();
    let ptr = module.target_config().pointer_type();
    for _ in 0..3 {
        ctx.func.signature.params.push(AbiParam::new(ptr));
    }
    ctx.func.signature.params.push(AbiParam::new(I64));
    let id = module.declare_function("kernel", Linkage::Local, &ctx.func.signature).unwrap();
    ctx.func.name = UserFuncName::user(0, id.as_u32());
    {
        let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        let [pa, pb, po, n] = b.block_params(entry).try_into().unwrap();
        let i = b.declare_var(I64);
        let zero = b.ins().iconst(I64, 0);
        b.def_var(i, zero);
        let size = i64::from(scalar.bytes());
        let flags = MemFlagsData::trusted();
        let vty = scalar.by(16 / scalar.bytes()).unwrap();
        let loops = if vector { vec![(vty, 16 / size), (scalar, 1)] } else { vec![(scalar, 1)] };
        for (ty, step) in loops {
            let head = b.create_block();
            let body = b.create_block();
            let done = b.create_block();
            b.ins().jump(head, &[]);
            b.switch_to_block(head);
            let iv = b.use_var(i);
            let end = b.ins().iadd_imm_s(iv, step);
            let more = b.ins().icmp(IntCC::SignedLessThanOrEqual, end, n);
            b.ins().brif(more, body, &[], done, &[]);
            b.switch_to_block(body);
            let off = b.ins().imul_imm_s(iv, size);
            let addr_a = b.ins().iadd(pa, off);
            let addr_b = b.ins().iadd(pb, off);
            let addr_o = b.ins().iadd(po, off);
            let x = b.ins().load(ty, flags, addr_a, 0);
            let y = b.ins().load(ty, flags, addr_b, 0);
            let r = emit(&mut b, ty, x, y);
            b.ins().store(flags, r, addr_o, 0);
            b.def_var(i, end);
            b.ins().jump(head, &[]);
            b.switch_to_block(done);
        }
        b.ins().return_(&[]);
        b.seal_all_blocks();
        b.finalize(module.target_config());
    }
    module.define_function(id, &mut ctx).unwrap();
    let compile_us = start.elapsed().as_secs_f64() * 1e6;
    let compiled = ctx.compiled_code().expect("compiled");
    let code_bytes = compiled.code_buffer().len();
    if disasm {
        println!("{}", compiled.vcode.as_deref().unwrap_or("(no disassembly)"));
    }
    module.finalize_definitions().unwrap();
    let code = module.get_finalized_function(id);
    // SAFETY: `code` is the function just compiled with the signature `(ptr, ptr, ptr, i64)` in
    // the host's default calling convention, which is the ABI of `LoopFn`; it stays valid while
    // `module` (kept in the `Loop`) is alive.
    let func = unsafe { std::mem::transmute::<*const u8, LoopFn>(code) };
    Loop { _module: module, func, compile_us, code_bytes }
}
