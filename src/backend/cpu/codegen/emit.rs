//! The instruction emitter: element programs to CLIF, in scalar form or as 128-bit vectors.
//!
//! Values of a program live as [`Val`]s: a scalar (`i8` 0/1 for bool) or a vector of the
//! kernel's lane count (bool as a lane mask of all ones or zero, `i32x4` beside 4-lane values
//! and `i64x2` beside 2-lane ones). Scalars meet vectors by splatting. Ops without a native
//! vector instruction run lane by lane through their scalar form, so every op vectorizes.

use super::native;
use super::plan::{Map, Plan, Prog};
use super::sizes::{self, Amount, Class, Stride};
use super::{CodegenError, Tramp};
use crate::backend::cpu::vecmath;
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::immediates::Imm64;
use cranelift_codegen::ir::types::{
    self, F32, F32X4, F64, F64X2, I16, I16X8, I32, I32X4, I64, I64X2, I8, I8X16,
};
use cranelift_codegen::ir::{
    AbiParam, Block, Endianness, ExtFuncData, ExternalName, FuncRef, InstBuilder, MemFlagsData, Signature,
    Type, UserExternalName, Value,
};
use cranelift_codegen::isa::CallConv;
use cranelift_frontend::{FunctionBuilder, Variable};
use tenjit_ir::kernel::{Inst, Site};
use tenjit_ir::ops::{BinaryOp, CpuLowering, ReduceOp, Scalar, UnaryOp};
use tenjit_ir::types::Category;
use tenjit_ir::DType;

/// A value of an element program.
#[derive(Clone, Copy, Debug)]
pub(super) enum Val {
    /// A scalar of the instruction's dtype.
    S(Value),
    /// A vector of the kernel's lane count.
    V(Value),
}

/// How instructions are emitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Mode {
    Scalar,
    Vector(usize),
}

/// The row loop an instruction runs in: its dim, the index along it (the first lane's, for
/// vectors) and, per map-bearing instruction, its index without the row dim's term.
pub(super) struct Row {
    pub dim: usize,
    pub j: Value,
    pub bases: Vec<Option<Value>>,
    /// In a loop with pointer cursors (see `nest.rs`), `j` is the loop index plus `off`, and
    /// `ptrs` holds each varying load's address at the loop index (`off` is then folded into
    /// the load's immediate offset); `sp` is the same for a scratch row's element.
    pub off: i64,
    pub ptrs: Vec<Option<Value>>,
    pub sp: Option<Value>,
}

impl Row {
    /// A row whose loads compute their addresses from `bases` and `j`.
    pub fn new(dim: usize, j: Value, bases: Vec<Option<Value>>) -> Row {
        Row { dim, j, bases, off: 0, ptrs: Vec::new(), sp: None }
    }
}

/// A loop opened by [`Emitter::open_loop`].
pub(super) struct Loop {
    var: Variable,
    header: Block,
    exit: Block,
    step: i64,
    /// The loop index in the body.
    pub i: Value,
}

/// The CLIF type of a scalar of `d`.
pub(super) fn scalar_ty(d: DType) -> Type {
    match d {
        DType::Bool => I8,
        DType::I32 => I32,
        DType::I64 => I64,
        // A 16-bit float lives in an `f32` register, holding a value exact in its format; it
        // is 16 bits only in memory (`Emitter::load_elem`, `Emitter::store_elem`).
        DType::F16 | DType::BF16 | DType::F32 => F32,
        DType::F64 => F64,
    }
}

/// The CLIF type of an element of `d` in memory: a 16-bit float's bits are an `i16` there.
pub(super) fn mem_ty(d: DType) -> Type {
    match d {
        DType::F16 | DType::BF16 => I16,
        DType::Bool | DType::I32 | DType::I64 | DType::F32 | DType::F64 => scalar_ty(d),
    }
}

/// The CLIF type of a vector of `d` beside `lanes`-lane values (bool: the lane mask type).
pub(super) fn vector_ty(d: DType, lanes: usize) -> Type {
    match (d, lanes) {
        (DType::F16 | DType::BF16 | DType::F32, _) => F32X4,
        (DType::I32, _) => I32X4,
        (DType::F64, _) => F64X2,
        (DType::I64, _) => I64X2,
        (DType::Bool, 4) => I32X4,
        (DType::Bool, _) => I64X2,
    }
}

/// An integer binary op emitted as a sequence that can set the status word.
type IntSequence = fn(&mut Emitter, BinaryOp, DType, Value, Value) -> Value;

/// The integer binary ops that are sequences rather than one instruction: Python's `//` and
/// `%`, which flag a zero divisor, and `**`, which flags a negative exponent.
const INT_SEQUENCES: &[(BinaryOp, IntSequence)] = &[
    (BinaryOp::FloorDiv, |e, op, d, x, y| e.int_divmod(op, d, x, y)),
    (BinaryOp::Rem, |e, op, d, x, y| e.int_divmod(op, d, x, y)),
    (BinaryOp::Pow, |e, _, d, x, y| e.int_pow(d, x, y)),
];

/// Whether the emitter has a lowering of `op` on `d` as its row says (native instruction,
/// vector-math routine, or the generic call, which every float op has). The op-table test
/// asserts it for every op and accepted dtype.
pub fn unary_resolves(op: UnaryOp, d: DType) -> bool {
    match d.category() {
        Category::Float => match op.spec().cpu {
            CpuLowering::Native => native::find(native::FLOAT_UNARY, op).is_some(),
            CpuLowering::VecMath => vecmath::provides_unary(op),
            CpuLowering::Call => true,
        },
        Category::Int => native::find(native::INT_UNARY, op).is_some(),
        Category::Bool => {
            native::find(native::BOOL_UNARY_SCALAR, op).is_some()
                && native::find(native::BOOL_UNARY_VECTOR, op).is_some()
        }
    }
}

/// Whether the emitter has a lowering of `op` on `d` as its row says (see [`unary_resolves`]).
pub fn binary_resolves(op: BinaryOp, d: DType) -> bool {
    let native = native::find(Emitter::binary_table(d), op).is_some();
    match d.category() {
        Category::Float => match op.spec().cpu {
            CpuLowering::Native => native,
            CpuLowering::VecMath => vecmath::provides_binary(op),
            CpuLowering::Call => true,
        },
        Category::Int => native || native::find(INT_SEQUENCES, op).is_some(),
        Category::Bool => native,
    }
}

/// Status codes of one instruction that can fail: the codes of site `s` (its position in
/// [`tenjit_ir::kernel::Kernel::failing_sites`]) are `s * SITE_STRIDE + 1..`.
pub(super) const SITE_STRIDE: u32 = 64;

/// Status code of an integer op that failed at site `site`: the op's position in
/// [`BinaryOp::ALL`] plus one, plus [`SITE_STRIDE`] per earlier site, so a kernel's only (or
/// first) failing instruction has the op's own code.
pub(super) fn status_code(op: BinaryOp, site: u32) -> u32 {
    const _: () = assert!(BinaryOp::ALL.len() < SITE_STRIDE as usize);
    BinaryOp::ALL
        .iter()
        .position(|&o| o == op)
        .map_or(u32::MAX, |p| p as u32 + 1 + site.saturating_mul(SITE_STRIDE))
}

/// The value a reduction's accumulator starts from: a neutral element that also keeps the
/// sign of a zero (`-0.0` for sums) and passes NaN through.
fn acc_init(op: ReduceOp, d: DType) -> Scalar {
    match (op, d.category()) {
        (ReduceOp::Sum, Category::Float) => Scalar::Float(-0.0),
        (ReduceOp::Sum, _) => Scalar::Int(0),
        (ReduceOp::Prod, Category::Float) => Scalar::Float(1.0),
        (ReduceOp::Prod, _) => Scalar::Int(1),
        (ReduceOp::Max, Category::Float) => Scalar::Float(f64::NEG_INFINITY),
        (ReduceOp::Max, _) => Scalar::Int(if d == DType::I32 { i32::MIN as i64 } else { i64::MIN }),
        (ReduceOp::Min, Category::Float) => Scalar::Float(f64::INFINITY),
        (ReduceOp::Min, _) => Scalar::Int(if d == DType::I32 { i32::MAX as i64 } else { i64::MAX }),
    }
}

/// Emits CLIF for one kernel function.
pub(super) struct Emitter<'a, 'p> {
    pub b: FunctionBuilder<'a>,
    pub plan: &'p Plan<'p>,
    pub call_conv: CallConv,
    /// Base pointer of each buffer the kernel touches, by `BufId`.
    pub ptrs: Vec<Option<Value>>,
    /// The `status` argument.
    pub status: Value,
    /// The `start` and `end` arguments.
    pub start: Value,
    pub end: Value,
    /// The current index of each canonical dim, where a loop over it is open.
    pub idx: Vec<Option<Value>>,
    /// The size table's entries, loaded in the entry block (see `sizes`), by slot.
    sizes: Vec<Option<Value>>,
    /// Open dims in nesting order, so index sums add outer terms first (loop-invariant
    /// prefixes for the optimizer).
    order: Vec<usize>,
    tramps: Vec<(u32, FuncRef)>,
    /// The first internal inconsistency met (emission goes on with a placeholder).
    pub error: Option<CodegenError>,
    /// The kernel's instructions that can fail, in order (their positions are status sites).
    sites: Vec<Site>,
    /// The site of the instruction being emitted (see [`status_code`]).
    site: u32,
}

impl<'a, 'p> Emitter<'a, 'p> {
    pub fn new(b: FunctionBuilder<'a>, plan: &'p Plan<'p>, call_conv: CallConv, args: [Value; 5]) -> Self {
        let [bufs, start, end, status, table] = args;
        let mut e = Emitter {
            b,
            plan,
            call_conv,
            ptrs: Vec::new(),
            status,
            start,
            end,
            idx: vec![None; plan.dims.len()],
            sizes: Vec::new(),
            order: Vec::new(),
            tramps: Vec::new(),
            error: None,
            sites: plan.kernel.failing_sites(),
            site: 0,
        };
        let k = plan.kernel;
        let mut used: Vec<usize> = k.stores.iter().map(|s| s.buf).collect();
        for ins in k.body.iter().chain(&k.epilogue) {
            if let Inst::Load { buf, .. } = ins.inst {
                used.push(buf);
            }
        }
        used.sort_unstable();
        used.dedup();
        e.ptrs = vec![None; used.last().map_or(0, |&u| u + 1)];
        for u in used {
            let p = e.b.ins().load(I64, MemFlagsData::trusted().with_readonly(), bufs, (u * 8) as i32);
            e.ptrs[u] = Some(p);
        }
        e.load_sizes(table);
        e
    }

    fn fail(&mut self, message: String) {
        if self.error.is_none() {
            self.error = Some(CodegenError::Internal(message));
        }
    }

    // ---- constants -------------------------------------------------------------------------

    /// An integer constant of type `ty`, wrapped to its width.
    pub fn iconst(&mut self, ty: Type, v: i64) -> Value {
        let v = match ty.bits() {
            8 => v as u8 as i64,
            16 => v as u16 as i64,
            32 => v as u32 as i64,
            _ => v,
        };
        self.b.ins().iconst(ty, Imm64::new(v))
    }

    /// A scalar constant of dtype `d` (the value converted as a cast would).
    pub fn constant(&mut self, s: Scalar, d: DType) -> Value {
        match s.cast(d) {
            Scalar::Bool(v) => self.iconst(I8, v as i64),
            Scalar::Int(v) => self.iconst(scalar_ty(d), v),
            Scalar::Float(v) => match d {
                DType::F16 | DType::BF16 | DType::F32 => self.b.ins().f32const(v as f32),
                DType::F64 | DType::Bool | DType::I32 | DType::I64 => self.b.ins().f64const(v),
            },
        }
    }

    /// The accumulator's starting value for `op` in dtype `d`.
    pub fn acc_init(&mut self, op: ReduceOp, d: DType) -> Value {
        self.constant(acc_init(op, d), d)
    }

    /// `x` (a scalar of `d`) splatted to a vector; bool becomes a lane mask.
    pub fn splat(&mut self, x: Value, d: DType, lanes: usize) -> Value {
        let ty = vector_ty(d, lanes);
        if d == DType::Bool {
            let lane = ty.lane_type();
            let wide = self.b.ins().uextend(lane, x);
            let mask = self.b.ins().ineg(wide);
            self.b.ins().splat(ty, mask)
        } else {
            self.b.ins().splat(ty, x)
        }
    }

    pub fn vector_val(&mut self, v: Option<Val>, d: DType, lanes: usize) -> Value {
        match v {
            Some(Val::V(x)) => x,
            Some(Val::S(x)) => self.splat(x, d, lanes),
            None => {
                self.fail("operand not computed".into());
                let z = self.iconst(I32, 0);
                self.b.ins().splat(vector_ty(d, lanes), z)
            }
        }
    }

    /// A uniform `i64` value (a draw's seed or offset) as a scalar: lane 0 of a vector.
    fn uniform_val(&mut self, v: Option<Val>) -> Value {
        match v {
            Some(Val::V(x)) => self.b.ins().extractlane(x, 0),
            Some(Val::S(_)) | None => self.scalar_val(v, DType::I64),
        }
    }

    pub fn scalar_val(&mut self, v: Option<Val>, d: DType) -> Value {
        match v {
            Some(Val::S(x)) => x,
            Some(Val::V(_)) | None => {
                self.fail("scalar operand missing".into());
                self.constant(Scalar::Int(0), d)
            }
        }
    }

    // ---- loops and indices -----------------------------------------------------------------

    /// Opens `for (i = lo; i + step <= hi; i += step)` (with `whole = false`: `i < hi`).
    pub fn open_loop(&mut self, lo: Value, hi: Value, step: i64, whole: bool) -> Loop {
        let var = self.b.declare_var(I64);
        self.b.def_var(var, lo);
        let header = self.b.create_block();
        let body = self.b.create_block();
        let exit = self.b.create_block();
        self.b.ins().jump(header, &[]);
        self.b.switch_to_block(header);
        let i = self.b.use_var(var);
        let ok = if whole {
            let next = self.b.ins().iadd_imm_s(i, step);
            self.b.ins().icmp(IntCC::SignedLessThanOrEqual, next, hi)
        } else {
            self.b.ins().icmp(IntCC::SignedLessThan, i, hi)
        };
        self.b.ins().brif(ok, body, &[], exit, &[]);
        self.b.switch_to_block(body);
        self.b.seal_block(body);
        Loop { var, header, exit, step, i }
    }

    /// Closes a loop; returns the first index it did not visit.
    pub fn close_loop(&mut self, l: Loop) -> Value {
        let next = self.b.ins().iadd_imm_s(l.i, l.step);
        self.b.def_var(l.var, next);
        self.b.ins().jump(l.header, &[]);
        self.b.seal_block(l.header);
        self.b.switch_to_block(l.exit);
        self.b.seal_block(l.exit);
        self.b.use_var(l.var)
    }

    /// The range of dim `d`: `start..end` for the outer dim, else `0..extent`.
    pub fn range(&mut self, d: usize) -> (Value, Value) {
        if d == self.plan.outer() {
            (self.start, self.end)
        } else {
            let n = self.extent(d);
            (self.iconst(I64, 0), n)
        }
    }

    /// Opens a loop over the whole range of dim `d` and makes its index current.
    pub fn open_dim(&mut self, d: usize) -> Loop {
        let (lo, hi) = self.range(d);
        let l = self.open_loop(lo, hi, 1, true);
        self.set_idx(d, l.i);
        l
    }

    /// Closes a loop opened by [`Emitter::open_dim`].
    pub fn close_dim(&mut self, d: usize, l: Loop) {
        self.clear_idx(d);
        self.close_loop(l);
    }

    pub fn set_idx(&mut self, d: usize, i: Value) {
        self.idx[d] = Some(i);
        self.order.retain(|&o| o != d);
        self.order.push(d);
    }

    pub fn clear_idx(&mut self, d: usize) {
        self.idx[d] = None;
        self.order.retain(|&o| o != d);
    }

    /// The value of `m` at the current point, leaving out dim `skip`.
    pub fn index(&mut self, m: &Map, skip: Option<usize>) -> Value {
        let mut v: Option<Value> = None;
        let order = self.order.clone();
        for d in order {
            if Some(d) == skip {
                continue;
            }
            let Some(i) = self.idx[d] else { continue };
            let s = self.stride(m, d);
            let Some(t) = self.scaled(i, s, 1) else { continue };
            v = Some(match v {
                None => t,
                Some(v) => self.b.ins().iadd(v, t),
            });
        }
        for (d, &s) in m.strides.iter().enumerate() {
            if s != 0 && Some(d) != skip && self.idx[d].is_none() {
                self.fail(format!("index of dim {d} used outside its loop"));
            }
        }
        match (v, self.offset(m)) {
            (None, None) => self.iconst(I64, 0),
            (None, Some(o)) => o,
            (Some(v), None) => v,
            (Some(v), Some(o)) => self.b.ins().iadd(v, o),
        }
    }

    /// `base + j * stride` along the row, or the full index when there is no row base.
    pub fn row_index(&mut self, m: &Map, row: Option<&Row>, base: Option<Value>) -> Value {
        match (row, base) {
            (Some(r), Some(base)) => {
                let s = self.stride(m, r.dim);
                match self.scaled(r.j, s, 1) {
                    None => base,
                    Some(t) => self.b.ins().iadd(base, t),
                }
            }
            _ => self.index(m, None),
        }
    }

    /// The address of load `i` (of buffer `buf`, map `m`, elements of `size` bytes) and an
    /// immediate offset from it: from the row's pointer cursor where it has one.
    fn load_addr(
        &mut self,
        i: usize,
        buf: usize,
        m: &Map,
        row: Option<&Row>,
        base: Option<Value>,
        size: usize,
    ) -> (Value, i32) {
        if let Some(r) = row {
            // A cursor of a runtime stride serves only the copy at its own index.
            let imm = match (self.stride(m, r.dim), r.off) {
                (Stride::Zero, _) | (Stride::Var(_), 0) => Some(0),
                (Stride::One, off) => i32::try_from(off * size as i64).ok(),
                (Stride::Var(_), _) => None,
            };
            if let (Some(&Some(p)), Some(imm)) = (r.ptrs.get(i), imm) {
                return (p, imm);
            }
        }
        let ix = self.row_index(m, row, base);
        (self.addr(buf, ix, size), 0)
    }

    /// The address of element `index` of buffer `buf`.
    pub fn addr(&mut self, buf: usize, index: Value, size: usize) -> Value {
        let off = self.b.ins().imul_imm_s(index, size as i64);
        let p = self.ptrs.get(buf).copied().flatten();
        match p {
            Some(p) => self.b.ins().iadd(p, off),
            None => {
                self.fail(format!("buffer {buf} has no pointer"));
                off
            }
        }
    }

    /// Makes instruction `i` of `prog` the one whose failures the status codes name.
    fn enter_site(&mut self, prog: Prog, i: usize) {
        let site = Site { epilogue: matches!(prog, Prog::Epilogue), inst: i };
        self.site = self.sites.iter().position(|&s| s == site).unwrap_or(0) as u32;
    }

    /// Sets the status word to `code` when `cond` holds.
    fn flag_if(&mut self, cond: Value, code: u32) {
        let set = self.b.create_block();
        let cont = self.b.create_block();
        self.b.ins().brif(cond, set, &[], cont, &[]);
        self.b.switch_to_block(set);
        self.b.seal_block(set);
        self.b.set_cold_block(set);
        let c = self.iconst(I32, code as i64);
        self.b.ins().store(MemFlagsData::trusted(), c, self.status, 0);
        self.b.ins().jump(cont, &[]);
        self.b.switch_to_block(cont);
        self.b.seal_block(cont);
    }

    fn tramp(&mut self, t: Tramp) -> FuncRef {
        let index = t.index();
        if let Some(&(_, f)) = self.tramps.iter().find(|(i, _)| *i == index) {
            return f;
        }
        let mut sig = Signature::new(self.call_conv);
        let (params, ret) = t.signature();
        sig.params.extend(params.iter().map(|&p| AbiParam::new(p)));
        sig.returns.push(AbiParam::new(ret));
        let signature = self.b.import_signature(sig);
        let name = self.b.func.declare_imported_user_function(UserExternalName::new(0, index));
        let f = self.b.import_function(ExtFuncData {
            name: ExternalName::user(name),
            signature,
            colocated: false,
            patchable: false,
        });
        self.tramps.push((index, f));
        f
    }

    fn call(&mut self, t: Tramp, args: &[Value]) -> Value {
        let f = self.tramp(t);
        let call = self.b.ins().call(f, args);
        self.b.inst_results(call)[0]
    }

    // ---- instructions ----------------------------------------------------------------------

    /// Emits the instructions of `prog` selected by `which` in `mode`, filling `vals`.
    #[allow(clippy::too_many_arguments)]
    pub fn emit_set(
        &mut self,
        prog: Prog,
        which: &[bool],
        mode: Mode,
        vals: &mut [Option<Val>],
        row: Option<&Row>,
        acc: &[Value],
    ) {
        let n = self.plan.prog(prog).0.len();
        for i in 0..n {
            if !which[i] {
                continue;
            }
            let base = row.and_then(|r| r.bases.get(i).copied().flatten());
            let v = match mode {
                Mode::Scalar => Val::S(self.scalar_inst(prog, i, vals, row, base, acc)),
                Mode::Vector(l) => Val::V(self.vector_inst(prog, i, l, vals, row, base)),
            };
            vals[i] = Some(v);
        }
    }

    fn scalar_inst(
        &mut self,
        prog: Prog,
        i: usize,
        vals: &[Option<Val>],
        row: Option<&Row>,
        base: Option<Value>,
        acc: &[Value],
    ) -> Value {
        let plan = self.plan;
        let (ins, maps) = plan.prog(prog);
        let d = ins[i].dtype;
        let map = maps[i].as_ref();
        match &ins[i].inst {
            Inst::Load { buf, .. } => {
                let Some(m) = map else { return self.missing_map(d) };
                let (a, off) = self.load_addr(i, *buf, m, row, base, d.size_bytes());
                self.load_elem(d, a, off)
            }
            Inst::Const(s) => self.constant(*s, d),
            Inst::Iota { .. } => {
                let Some(m) = map else { return self.missing_map(d) };
                let ix = self.row_index(m, row, base);
                self.cast(DType::I64, d, ix)
            }
            Inst::Rand { seed, offset, .. } => {
                let Some(m) = map else { return self.missing_map(d) };
                let ix = self.row_index(m, row, base);
                let s = self.uniform_val(vals[*seed]);
                let o = self.uniform_val(vals[*offset]);
                let c = self.b.ins().iadd(o, ix);
                self.call(Tramp::Rand(d), &[s, c])
            }
            Inst::Unary(op, a) => {
                let x = self.scalar_val(vals[*a], d);
                self.unary(*op, d, x)
            }
            Inst::Binary(op, a, b) => {
                let t = ins[*a].dtype;
                self.enter_site(prog, i);
                let x = self.scalar_val(vals[*a], t);
                let y = self.scalar_val(vals[*b], t);
                self.binary(*op, t, x, y)
            }
            Inst::Where(c, a, b) => {
                let c = self.scalar_val(vals[*c], DType::Bool);
                let x = self.scalar_val(vals[*a], d);
                let y = self.scalar_val(vals[*b], d);
                self.b.ins().select(c, x, y)
            }
            Inst::Cast(a) => {
                let from = ins[*a].dtype;
                let x = self.scalar_val(vals[*a], from);
                self.cast(from, d, x)
            }
            Inst::Acc | Inst::AccValue => {
                let k = usize::from(matches!(ins[i].inst, Inst::AccValue));
                match acc.get(k) {
                    Some(&v) => v,
                    None => {
                        self.fail("acc outside an epilogue".into());
                        self.constant(Scalar::Int(0), d)
                    }
                }
            }
        }
    }

    fn missing_map(&mut self, d: DType) -> Value {
        self.fail("instruction without an index map".into());
        self.constant(Scalar::Int(0), d)
    }

    fn vector_inst(
        &mut self,
        prog: Prog,
        i: usize,
        lanes: usize,
        vals: &[Option<Val>],
        row: Option<&Row>,
        base: Option<Value>,
    ) -> Value {
        let plan = self.plan;
        let (ins, maps) = plan.prog(prog);
        let d = ins[i].dtype;
        let vty = vector_ty(d, lanes);
        let map = maps[i].as_ref();
        match &ins[i].inst {
            Inst::Load { buf, .. } => {
                let Some(m) = map else {
                    let z = self.missing_map(d);
                    return self.splat(z, d, lanes);
                };
                let (a, off) = self.load_addr(i, *buf, m, row, base, d.size_bytes());
                self.vector_load_elem(d, lanes, a, off)
            }
            Inst::Const(s) => {
                let c = self.constant(*s, d);
                self.splat(c, d, lanes)
            }
            Inst::Iota { .. } | Inst::Rand { .. } => {
                // Lane by lane: lane `k` is the scalar form at row index `j + k`.
                let Some(m) = map else {
                    let z = self.missing_map(d);
                    return self.splat(z, d, lanes);
                };
                let ix = self.row_index(m, row, base);
                let stride = match row {
                    Some(r) => self.stride(m, r.dim),
                    None => Stride::Zero,
                };
                // A draw's seed and offset are uniform, so scalars here (see `plan`).
                let words = match &ins[i].inst {
                    Inst::Rand { seed, offset, .. } => {
                        let s = self.uniform_val(vals[*seed]);
                        Some((s, self.uniform_val(vals[*offset])))
                    }
                    _ => None,
                };
                let mut out: Option<Value> = None;
                for k in 0..lanes {
                    let ixk = if k == 0 {
                        ix
                    } else {
                        match self.stride_times(stride, k as i64) {
                            Amount::Const(c) => self.b.ins().iadd_imm_s(ix, c),
                            Amount::Var(c) => self.b.ins().iadd(ix, c),
                        }
                    };
                    let x = match words {
                        Some((s, o)) => {
                            let c = self.b.ins().iadd(o, ixk);
                            self.call(Tramp::Rand(d), &[s, c])
                        }
                        None => self.cast(DType::I64, d, ixk),
                    };
                    out = Some(match out {
                        None => self.b.ins().splat(vty, x),
                        Some(v) => self.b.ins().insertlane(v, x, k as u8),
                    });
                }
                out.unwrap_or_else(|| self.b.ins().iconst(I8, 0))
            }
            Inst::Unary(op, a) => {
                let x = self.vector_val(vals[*a], d, lanes);
                self.vector_unary(*op, d, lanes, x)
            }
            Inst::Binary(op, a, b) => {
                let t = ins[*a].dtype;
                self.enter_site(prog, i);
                let x = self.vector_val(vals[*a], t, lanes);
                let y = self.vector_val(vals[*b], t, lanes);
                self.vector_binary(*op, t, lanes, x, y)
            }
            Inst::Where(c, a, b) => {
                let c = self.vector_val(vals[*c], DType::Bool, lanes);
                let x = self.vector_val(vals[*a], d, lanes);
                let y = self.vector_val(vals[*b], d, lanes);
                let c = if d.is_float() { self.bitcast(vty, c) } else { c };
                self.b.ins().bitselect(c, x, y)
            }
            Inst::Cast(a) => {
                let from = ins[*a].dtype;
                let x = self.vector_val(vals[*a], from, lanes);
                self.vector_cast(from, d, lanes, x)
            }
            Inst::Acc | Inst::AccValue => {
                self.fail("acc in a vector row".into());
                let z = self.constant(Scalar::Int(0), d);
                self.splat(z, d, lanes)
            }
        }
    }

    fn bitcast(&mut self, ty: Type, x: Value) -> Value {
        self.b.ins().bitcast(ty, MemFlagsData::new().with_endianness(Endianness::Little), x)
    }

    /// `f(lanes of args)` lane by lane, gathered into a vector of type `out`.
    fn per_lane(
        &mut self,
        lanes: usize,
        out: Type,
        args: &[Value],
        f: impl Fn(&mut Self, &[Value]) -> Value,
    ) -> Value {
        let mut v: Option<Value> = None;
        for k in 0..lanes {
            let xs: Vec<Value> = args.iter().map(|&a| self.b.ins().extractlane(a, k as u8)).collect();
            let r = f(self, &xs);
            v = Some(match v {
                None => self.b.ins().splat(out, r),
                Some(v) => self.b.ins().insertlane(v, r, k as u8),
            });
        }
        v.unwrap_or_else(|| self.b.ins().iconst(I8, 0))
    }

    // ---- scalar ops ------------------------------------------------------------------------

    /// `op(x)` on a scalar of dtype `d`: the row's `accepts` first, then a native instruction,
    /// the row's vector-math routine, or the generic call into the row's `float` function.
    pub fn unary(&mut self, op: UnaryOp, d: DType, x: Value) -> Value {
        let spec = op.spec();
        if !spec.accepts.admits(d) {
            return self.not_accepted(spec.name, d);
        }
        let native = match d.category() {
            Category::Float => native::FLOAT_UNARY,
            Category::Int => native::INT_UNARY,
            Category::Bool => native::BOOL_UNARY_SCALAR,
        };
        if let Some(f) = native::find(native, op) {
            return f(&mut self.b, x);
        }
        if !d.is_float() {
            return self.no_lowering(spec.name, d);
        }
        match spec.cpu {
            CpuLowering::Native | CpuLowering::Call => {}
            CpuLowering::VecMath => {
                if let Some(v) = vecmath::emit_unary(&mut self.b, op, scalar_ty(d), x) {
                    return v;
                }
            }
        }
        self.unary_call(op, d, x)
    }

    /// `op(x)` through the op table's `f64` function.
    fn unary_call(&mut self, op: UnaryOp, d: DType, x: Value) -> Value {
        let wide = if d == DType::F32 { self.b.ins().fpromote(F64, x) } else { x };
        let r = self.call(Tramp::Unary(op), &[wide]);
        if d == DType::F32 {
            self.b.ins().fdemote(F32, r)
        } else {
            r
        }
    }

    fn binary_call(&mut self, op: BinaryOp, d: DType, x: Value, y: Value) -> Value {
        let (x, y) = if d == DType::F32 {
            (self.b.ins().fpromote(F64, x), self.b.ins().fpromote(F64, y))
        } else {
            (x, y)
        };
        let r = self.call(Tramp::Binary(op), &[x, y]);
        if d == DType::F32 {
            self.b.ins().fdemote(F32, r)
        } else {
            r
        }
    }

    fn not_accepted(&mut self, name: &str, d: DType) -> Value {
        self.fail(format!("{name} does not accept {d}"));
        self.constant(Scalar::Int(0), d)
    }

    /// An op the row accepts on a non-float dtype without a CPU form for it: integer and
    /// `bool` ops have no generic fallback (the row's `int` function may fail, which compiled
    /// code reports through the status word), so such an op needs an entry in `native`.
    fn no_lowering(&mut self, name: &str, d: DType) -> Value {
        self.fail(format!("{name} has no CPU lowering for {d}"));
        self.constant(Scalar::Int(0), d)
    }

    /// The native instruction table of binary ops on dtype `d`.
    fn binary_table(d: DType) -> &'static [(BinaryOp, native::Binary)] {
        match d.category() {
            Category::Float => native::FLOAT_BINARY,
            Category::Int => native::INT_BINARY,
            Category::Bool => native::BOOL_BINARY,
        }
    }

    /// `op(x, y)` on scalars of dtype `d` (the operands' dtype): the row's `accepts` first,
    /// then a native instruction, an integer sequence that sets the status, the row's
    /// vector-math routine, or the generic call into the row's `float` function.
    pub fn binary(&mut self, op: BinaryOp, d: DType, x: Value, y: Value) -> Value {
        let spec = op.spec();
        if !spec.accepts.admits(d) {
            return self.not_accepted(spec.name, d);
        }
        if let Some(f) = native::find(Self::binary_table(d), op) {
            return f(&mut self.b, x, y);
        }
        match d.category() {
            Category::Float => {
                match spec.cpu {
                    CpuLowering::Native | CpuLowering::Call => {}
                    CpuLowering::VecMath => {
                        if let Some(v) = vecmath::emit_binary(&mut self.b, op, scalar_ty(d), x, y) {
                            return v;
                        }
                    }
                }
                self.binary_call(op, d, x, y)
            }
            Category::Int => match native::find(INT_SEQUENCES, op) {
                Some(f) => f(self, op, d, x, y),
                None => self.no_lowering(spec.name, d),
            },
            Category::Bool => self.no_lowering(spec.name, d),
        }
    }

    /// Python's `//` and `%` on integers, as the op table defines them: a zero divisor sets
    /// the status (and divides by 1 instead), `MIN // -1` wraps, and neither traps.
    fn int_divmod(&mut self, op: BinaryOp, d: DType, a: Value, b: Value) -> Value {
        let ty = scalar_ty(d);
        let zero = self.b.ins().icmp_imm_s(IntCC::Equal, b, 0);
        self.flag_if(zero, status_code(op, self.site));
        let minus_one = self.b.ins().icmp_imm_s(IntCC::Equal, b, -1);
        let unsafe_divisor = self.b.ins().bor(zero, minus_one);
        let one = self.iconst(ty, 1);
        let safe = self.b.ins().select(unsafe_divisor, one, b);
        // With divisor -1: a // -1 = -a (wrapping), a % -1 = 0 = a % 1.
        let r = self.b.ins().srem(a, safe);
        let r_nonzero = self.b.ins().icmp_imm_s(IntCC::NotEqual, r, 0);
        if op == BinaryOp::Rem {
            // r + b when r and b have different signs.
            let x = self.b.ins().bxor(r, b);
            let signs = self.b.ins().icmp_imm_s(IntCC::SignedLessThan, x, 0);
            let adjust = self.b.ins().band(r_nonzero, signs);
            let shifted = self.b.ins().iadd(r, b);
            self.b.ins().select(adjust, shifted, r)
        } else {
            let q = self.b.ins().sdiv(a, safe);
            let neg = self.b.ins().ineg(a);
            let q = self.b.ins().select(minus_one, neg, q);
            // q - 1 when the division is inexact and a and b have different signs.
            let x = self.b.ins().bxor(a, b);
            let signs = self.b.ins().icmp_imm_s(IntCC::SignedLessThan, x, 0);
            let adjust = self.b.ins().band(r_nonzero, signs);
            let q1 = self.b.ins().iadd_imm_s(q, -1);
            self.b.ins().select(adjust, q1, q)
        }
    }

    /// `a ** b` on integers: a negative exponent sets the status; the power itself is the op
    /// table's function.
    fn int_pow(&mut self, d: DType, a: Value, b: Value) -> Value {
        let neg = self.b.ins().icmp_imm_s(IntCC::SignedLessThan, b, 0);
        self.flag_if(neg, status_code(BinaryOp::Pow, self.site));
        if d == DType::I32 {
            let a = self.b.ins().sextend(I64, a);
            let b = self.b.ins().sextend(I64, b);
            let r = self.call(Tramp::IntPow, &[a, b]);
            self.b.ins().ireduce(I32, r)
        } else {
            self.call(Tramp::IntPow, &[a, b])
        }
    }

    /// A scalar element of dtype `d` at `a + off`; a 16-bit float arrives widened to `f32`.
    pub fn load_elem(&mut self, d: DType, a: Value, off: i32) -> Value {
        let flags = MemFlagsData::trusted();
        match d {
            DType::BF16 => {
                // bf16 is the high half of an f32: the widening is exact.
                let bits = self.b.ins().uload16(I32, flags, a, off);
                let bits = self.b.ins().ishl_imm_u(bits, 16);
                self.bitcast(F32, bits)
            }
            DType::F16 => {
                let bits = self.b.ins().uload16(I32, flags, a, off);
                self.call(Tramp::F16ToF32, &[bits])
            }
            DType::Bool | DType::I32 | DType::I64 | DType::F32 | DType::F64 => {
                self.b.ins().load(scalar_ty(d), flags, a, off)
            }
        }
    }

    /// Stores the scalar `x` of dtype `d` at `a`; a 16-bit float's `f32` register holds a value
    /// already exact in its format (`kernel::half` stores only loads, constants and rounding
    /// casts), so bf16 keeps its high half and f16's conversion is exact.
    pub fn store_elem(&mut self, d: DType, x: Value, a: Value) {
        let flags = MemFlagsData::trusted();
        match d {
            DType::BF16 => {
                let bits = self.bitcast(I32, x);
                let bits = self.b.ins().ushr_imm_u(bits, 16);
                self.b.ins().istore16(flags, bits, a, 0);
            }
            DType::F16 => {
                let bits = self.call(Tramp::F32ToF16, &[x]);
                self.b.ins().istore16(flags, bits, a, 0);
            }
            DType::Bool | DType::I32 | DType::I64 | DType::F32 | DType::F64 => {
                self.b.ins().store(flags, x, a, 0);
            }
        }
    }

    /// A vector of `lanes` elements of `d` at `a + off`; bf16 arrives widened to `f32x4`, bool
    /// as a lane mask (f16 rows are scalar: `plan::vector_lanes`).
    pub fn vector_load_elem(&mut self, d: DType, lanes: usize, a: Value, off: i32) -> Value {
        let flags = MemFlagsData::new().with_notrap();
        match d {
            DType::BF16 => {
                let bits = self.b.ins().uload16x4(flags, a, off);
                let bits = self.b.ins().ishl_imm_u(bits, 16);
                self.bitcast(F32X4, bits)
            }
            DType::F16 => {
                self.fail("a vector load of f16".into());
                self.splat_zero(d, lanes)
            }
            DType::Bool => {
                // `lanes` bytes of 0 or 1, read as one integer (nothing past them), zero-extended
                // lane by lane to the mask's width and compared with zero.
                let (word, wty) = if lanes == 4 { (I32, I32X4) } else { (I16, I16X8) };
                let x = self.b.ins().load(word, flags, a, off);
                let v = self.b.ins().scalar_to_vector(wty, x);
                let mut v = self.bitcast(I8X16, v);
                for _ in 0..if lanes == 4 { 2 } else { 3 } {
                    v = self.b.ins().uwiden_low(v);
                }
                let zero = self.splat_zero(DType::Bool, lanes);
                self.b.ins().icmp(IntCC::NotEqual, v, zero)
            }
            DType::I32 | DType::I64 | DType::F32 | DType::F64 => {
                self.b.ins().load(vector_ty(d, lanes), flags, a, off)
            }
        }
    }

    /// Stores the vector `x` of dtype `d` at `a`; a bf16 `f32x4` holds values exact in bf16,
    /// whose high halves are packed into 8 bytes.
    pub fn vector_store_elem(&mut self, d: DType, x: Value, a: Value) {
        let flags = MemFlagsData::new().with_notrap();
        match d {
            DType::BF16 => {
                let bits = self.bitcast(I32X4, x);
                let high = self.b.ins().ushr_imm_u(bits, 16);
                // Each lane is below 2^16, so the saturating narrowing keeps it.
                let packed = self.b.ins().unarrow(high, high);
                let words = self.bitcast(I64X2, packed);
                let low = self.b.ins().extractlane(words, 0);
                self.b.ins().store(flags, low, a, 0);
            }
            DType::F16 => self.fail("a vector store of f16".into()),
            DType::Bool | DType::I32 | DType::I64 | DType::F32 | DType::F64 => {
                self.b.ins().store(flags, x, a, 0);
            }
        }
    }

    /// The lanes of the `f32x4` `x` rounded to bf16 (to nearest, ties to even; NaN quiet), as
    /// [`Emitter::round_half`] rounds a scalar.
    fn vector_round_bf16(&mut self, x: Value) -> Value {
        let splat = |e: &mut Self, v: u32| {
            let c = e.iconst(I32, v as i64);
            e.b.ins().splat(I32X4, c)
        };
        let bits = self.bitcast(I32X4, x);
        let (one, bias, high, quiet_bit) =
            (splat(self, 1), splat(self, 0x7fff), splat(self, 0xffff_0000), splat(self, 0x0040_0000));
        let lsb = self.b.ins().ushr_imm_u(bits, 16);
        let lsb = self.b.ins().band(lsb, one);
        let add = self.b.ins().iadd(lsb, bias);
        let rounded = self.b.ins().iadd(bits, add);
        let rounded = self.b.ins().band(rounded, high);
        let quiet = self.b.ins().bor(bits, quiet_bit);
        let quiet = self.b.ins().band(quiet, high);
        let nan = self.b.ins().fcmp(FloatCC::Unordered, x, x);
        let nan = self.bitcast(I32X4, nan);
        let out = self.b.ins().bitselect(nan, quiet, rounded);
        self.bitcast(F32X4, out)
    }

    /// `x` (an `f32`) rounded to the 16-bit float `to` (to nearest, ties to even), kept in an
    /// `f32` register.
    fn round_half(&mut self, to: DType, x: Value) -> Value {
        if to == DType::F16 {
            let bits = self.call(Tramp::F32ToF16, &[x]);
            return self.call(Tramp::F16ToF32, &[bits]);
        }
        // bf16: add 0x7fff plus the lowest kept bit, then clear the low half (ties to even;
        // a carry into the exponent rounds up to the next binade or to infinity). A NaN keeps
        // its sign and becomes quiet, so no payload truncates to infinity.
        let bits = self.bitcast(I32, x);
        let lsb = self.b.ins().ushr_imm_u(bits, 16);
        let lsb = self.b.ins().band_imm_u(lsb, 1);
        let bias = self.b.ins().iadd_imm_u(lsb, 0x7fff);
        let rounded = self.b.ins().iadd(bits, bias);
        let rounded = self.b.ins().band_imm_u(rounded, 0xffff_0000);
        let quiet = self.b.ins().bor_imm_u(bits, 0x0040_0000);
        let quiet = self.b.ins().band_imm_u(quiet, 0xffff_0000);
        let nan = self.b.ins().fcmp(FloatCC::Unordered, x, x);
        let out = self.b.ins().select(nan, quiet, rounded);
        self.bitcast(F32, out)
    }

    /// Converts a scalar of `from` to `to` as the interpreter's cast does.
    pub fn cast(&mut self, from: DType, to: DType, x: Value) -> Value {
        use DType::*;
        let ty = scalar_ty(to);
        let ins = self.b.ins();
        match (from, to) {
            // Through `f32`, where a 16-bit float's register already is.
            (F16 | BF16, _) | (_, F16 | BF16) => {
                let f = if from.is_half() { x } else { self.cast(from, F32, x) };
                if to.is_half() {
                    self.round_half(to, f)
                } else {
                    self.cast(F32, to, f)
                }
            }
            (Bool, Bool) | (I32, I32) | (I64, I64) | (F32, F32) | (F64, F64) => x,
            (Bool, I32 | I64) => ins.uextend(ty, x),
            (Bool, F32 | F64) => {
                let w = ins.uextend(types::I32, x);
                self.b.ins().fcvt_from_sint(ty, w)
            }
            (I32 | I64, Bool) => ins.icmp_imm_s(IntCC::NotEqual, x, 0),
            (F32 | F64, Bool) => {
                let z = if from == F32 { ins.f32const(0.0) } else { ins.f64const(0.0) };
                self.b.ins().fcmp(FloatCC::NotEqual, x, z)
            }
            (I32, I64) => ins.sextend(types::I64, x),
            (I64, I32) => ins.ireduce(types::I32, x),
            (I32 | I64, F32 | F64) => ins.fcvt_from_sint(ty, x),
            (F32 | F64, I32 | I64) => ins.fcvt_to_sint_sat(ty, x),
            (F32, F64) => ins.fpromote(types::F64, x),
            (F64, F32) => ins.fdemote(types::F32, x),
        }
    }

    /// Combines an accumulator with a value (both of dtype `d`, scalars or vectors).
    pub fn combine(&mut self, op: ReduceOp, d: DType, a: Value, x: Value) -> Value {
        let ins = self.b.ins();
        match (op, d.is_float()) {
            (ReduceOp::Sum, true) => ins.fadd(a, x),
            (ReduceOp::Sum, false) => ins.iadd(a, x),
            (ReduceOp::Prod, true) => ins.fmul(a, x),
            (ReduceOp::Prod, false) => ins.imul(a, x),
            (ReduceOp::Max, true) => ins.fmax(a, x),
            (ReduceOp::Max, false) => ins.smax(a, x),
            (ReduceOp::Min, true) => ins.fmin(a, x),
            (ReduceOp::Min, false) => ins.smin(a, x),
        }
    }

    // ---- vector ops ------------------------------------------------------------------------

    fn vector_unary(&mut self, op: UnaryOp, d: DType, lanes: usize, x: Value) -> Value {
        let vty = vector_ty(d, lanes);
        let spec = op.spec();
        if !spec.accepts.admits(d) {
            let z = self.not_accepted(spec.name, d);
            return self.splat(z, d, lanes);
        }
        let native = match d.category() {
            Category::Float => native::FLOAT_UNARY,
            Category::Int => native::INT_UNARY,
            Category::Bool => native::BOOL_UNARY_VECTOR,
        };
        if let Some(f) = native::find(native, op) {
            return f(&mut self.b, x);
        }
        if d.is_float() && spec.cpu == CpuLowering::VecMath {
            if let Some(v) = vecmath::emit_unary(&mut self.b, op, vty, x) {
                return v;
            }
        }
        if d == DType::Bool {
            let z = self.no_lowering(spec.name, d);
            return self.splat(z, d, lanes);
        }
        self.per_lane(lanes, vty, &[x], |e, xs| e.unary(op, d, xs[0]))
    }

    fn vector_binary(&mut self, op: BinaryOp, d: DType, lanes: usize, x: Value, y: Value) -> Value {
        let vty = vector_ty(d, lanes);
        let spec = op.spec();
        if !spec.accepts.admits(d) {
            let z = self.not_accepted(spec.name, d);
            return self.splat(z, d, lanes);
        }
        if let Some(f) = native::find(Self::binary_table(d), op) {
            return f(&mut self.b, x, y);
        }
        if d.is_float() && spec.cpu == CpuLowering::VecMath {
            if let Some(v) = vecmath::emit_binary(&mut self.b, op, vty, x, y) {
                return v;
            }
        }
        if d == DType::Bool {
            let z = self.no_lowering(spec.name, d);
            return self.splat(z, d, lanes);
        }
        self.per_lane(lanes, vty, &[x, y], |e, xs| e.binary(op, d, xs[0], xs[1]))
    }

    fn vector_cast(&mut self, from: DType, to: DType, lanes: usize, x: Value) -> Value {
        use DType::*;
        let vty = vector_ty(to, lanes);
        match (from, to) {
            // A bf16 vector is an f32x4 of exact values; f16 rows are scalar (`plan::vector_lanes`),
            // and `kernel::half` leaves no other cast of a 16-bit value.
            (BF16, F32) => x,
            (F32, BF16) => self.vector_round_bf16(x),
            (F16 | BF16, _) | (_, F16 | BF16) => {
                self.fail(format!("vector cast from {from} to {to}"));
                self.splat_zero(to, lanes)
            }
            (Bool, Bool) | (I32, I32) | (I64, I64) | (F32, F32) | (F64, F64) => x,
            (Bool, F32 | F64) => {
                let ones = self.constant(Scalar::Float(1.0), to);
                let ones = self.b.ins().splat(vty, ones);
                let m = self.bitcast(vty, x);
                self.b.ins().band(m, ones)
            }
            (Bool, I32 | I64) => {
                let one = self.iconst(vty.lane_type(), 1);
                let ones = self.b.ins().splat(vty, one);
                self.b.ins().band(x, ones)
            }
            (I32 | I64, Bool) => {
                let z = self.iconst(vector_ty(from, lanes).lane_type(), 0);
                let z = self.b.ins().splat(vector_ty(from, lanes), z);
                self.b.ins().icmp(IntCC::NotEqual, x, z)
            }
            (F32 | F64, Bool) => {
                let z = self.constant(Scalar::Float(0.0), from);
                let z = self.b.ins().splat(vector_ty(from, lanes), z);
                self.b.ins().fcmp(FloatCC::NotEqual, x, z)
            }
            (F32, I32) => self.b.ins().fcvt_to_sint_sat(I32X4, x),
            (I32, F32) => self.b.ins().fcvt_from_sint(F32X4, x),
            (F64, I64) | (I64, F64) => self.per_lane(lanes, vty, &[x], |e, xs| e.cast(from, to, xs[0])),
            (I32, I64)
            | (I64, I32)
            | (F32, F64)
            | (F64, F32)
            | (I32, F64)
            | (F64, I32)
            | (I64, F32)
            | (F32, I64) => {
                self.fail(format!("vector cast from {from} to {to} changes the lane count"));
                self.splat_zero(to, lanes)
            }
        }
    }

    fn splat_zero(&mut self, d: DType, lanes: usize) -> Value {
        let z = self.constant(Scalar::Int(0), if d == DType::Bool { DType::I32 } else { d });
        let z = if d == DType::Bool && lanes == 2 { self.b.ins().sextend(I64, z) } else { z };
        self.b.ins().splat(vector_ty(d, lanes), z)
    }

    /// The low and high halves of an `f32x4` as two `f64x2`.
    pub fn widen_halves(&mut self, x: Value) -> (Value, Value) {
        let lo = self.b.ins().fvpromote_low(x);
        let mask: Vec<u8> = (8u8..16).chain(0u8..8).collect();
        let imm = self.b.func.dfg.immediates.push(mask.into());
        let bytes = self.bitcast(cranelift_codegen::ir::types::I8X16, x);
        let swapped = self.b.ins().shuffle(bytes, bytes, imm);
        let swapped = self.bitcast(F32X4, swapped);
        let hi = self.b.ins().fvpromote_low(swapped);
        (lo, hi)
    }

    /// The scalar lanes of a vector of type `ty`.
    pub fn lanes(&mut self, v: Value, n: usize) -> Vec<Value> {
        (0..n).map(|k| self.b.ins().extractlane(v, k as u8)).collect()
    }

    /// A vector type of the accumulator dtype `d` (2 lanes for 64-bit types, else 4).
    pub fn acc_vector_ty(d: DType) -> Type {
        match d {
            DType::F64 => F64X2,
            DType::I64 => I64X2,
            DType::F16 | DType::BF16 | DType::F32 => F32X4,
            DType::I32 | DType::Bool => I32X4,
        }
    }
}

// ---- the size table ------------------------------------------------------------------------

impl Emitter<'_, '_> {
    /// Loads, at the current point (the entry block), every table entry the code may read:
    /// the extents, the nonzero offsets and the strides of class [`Class::Other`].
    pub(super) fn load_sizes(&mut self, table: Value) {
        let p = self.plan;
        let mut wanted: Vec<usize> = (0..p.dims.len()).collect();
        for m in sizes::maps(p) {
            if m.offset != 0 {
                wanted.push(m.slot);
            }
            for (d, &s) in m.strides.iter().enumerate() {
                if Class::of(s) == Class::Other {
                    wanted.push(m.slot + 1 + d);
                }
            }
        }
        let flags = MemFlagsData::trusted().with_readonly().with_can_move();
        self.sizes = vec![None; wanted.iter().max().map_or(0, |&m| m + 1)];
        for s in wanted {
            let v = self.b.ins().load(I64, flags, table, (s * 8) as i32);
            self.sizes[s] = Some(v);
        }
    }

    /// Table entry `slot` (loaded by [`Emitter::load_sizes`]).
    fn size(&mut self, slot: usize) -> Value {
        match self.sizes.get(slot).copied().flatten() {
            Some(v) => v,
            None => {
                self.fail(format!("size table entry {slot} not loaded"));
                self.iconst(I64, 0)
            }
        }
    }

    /// The extent of canonical dim `d`.
    pub(super) fn extent(&mut self, d: usize) -> Value {
        self.size(d)
    }

    /// The offset of map `m`, `None` when it is 0.
    pub(super) fn offset(&mut self, m: &Map) -> Option<Value> {
        (m.offset != 0).then(|| self.size(m.slot))
    }

    /// The stride of map `m` along dim `d`.
    pub(super) fn stride(&mut self, m: &Map, d: usize) -> Stride {
        match m.strides.get(d).map(|&s| Class::of(s)) {
            Some(Class::Zero) | None => Stride::Zero,
            Some(Class::One) => Stride::One,
            Some(Class::Other) => Stride::Var(self.size(m.slot + 1 + d)),
        }
    }

    /// `i * s * k` (`None` for stride 0).
    pub(super) fn scaled(&mut self, i: Value, s: Stride, k: i64) -> Option<Value> {
        match s {
            Stride::Zero => None,
            Stride::One if k == 1 => Some(i),
            Stride::One => Some(self.b.ins().imul_imm_s(i, k)),
            Stride::Var(v) => {
                let t = self.b.ins().imul(i, v);
                Some(if k == 1 { t } else { self.b.ins().imul_imm_s(t, k) })
            }
        }
    }

    /// `s * k`: a constant when `s` is structural, else a value.
    pub(super) fn stride_times(&mut self, s: Stride, k: i64) -> Amount {
        match s {
            Stride::Zero => Amount::Const(0),
            Stride::One => Amount::Const(k),
            Stride::Var(v) if k == 1 => Amount::Var(v),
            Stride::Var(v) => Amount::Var(self.b.ins().imul_imm_s(v, k)),
        }
    }
}
