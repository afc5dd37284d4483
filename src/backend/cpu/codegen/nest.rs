//! Loop nests: the three loop shapes of [`Shape`] around rows of element programs.
//!
//! A *row* is the innermost loop: invariant instructions (those whose maps do not move along
//! the row's dim) are computed once before it, then the row runs as vectors unrolled
//! `unroll` times, then single vectors, then a scalar tail, so every element is visited once
//! and no access reaches past the row's end.
//!
//! Elementwise vector rows without status-setting ops take [`Emitter::padded_row`] instead:
//! no scalar copy of the body, the last partial vector computed on stack copies. Arg
//! reductions (`argmax`, `argmin`) have their own inner shape, [`Emitter::inner_arg`].

use super::emit::{mem_ty, scalar_ty, vector_ty, Emitter, Mode, Row, Val};
use super::plan::{acc_dtype, variant, Prog, Shape};
use super::sizes::Amount;
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::types::{self, F32, F64, F64X2, I32, I64};
use cranelift_codegen::ir::{Endianness, InstBuilder, MemFlagsData, StackSlotData, StackSlotKind, Value};
use cranelift_frontend::Variable;
use tenjit_ir::kernel::Inst;
use tenjit_ir::ops::{ReduceOp, Scalar};
use tenjit_ir::{ArgOp, DType};

/// Unroll factor of elementwise and column rows.
const UNROLL_ROW: usize = 2;
/// Unroll factor of reduction rows (independent accumulators hide the add latency).
const UNROLL_REDUCE: usize = 4;
/// Unroll factor of `f32` sum rows, which accumulate in `f32` vectors (see [`SUM_CHAIN`]).
const UNROLL_SUM: usize = 8;
/// `f32` sums are blocked: each `f32` lane adds at most this many elements before its block's
/// sum is added into `f64`. An inner row adds blocks of `SUM_CHAIN * 4 * UNROLL_SUM` = 512
/// elements in `UNROLL_SUM` vector accumulators (2 for a costly body), sums those pairwise
/// (three more `f32` adds)
/// and adds the result into two `f64x2` accumulators: at most 19 `f32` roundings deep, like
/// the 128-element blocks of NumPy's pairwise sum (16 + 3, then one more per halving), with
/// no cast per element; everything above a block is `f64`. A column reduction adds
/// `SUM_CHAIN` rows into an `f32` scratch row, then that row into the `f64` one.
const SUM_CHAIN: usize = 16;
/// Columns accumulated at once by the column shape (the scratch row: up to 32 KiB of `f64`,
/// plus 16 KiB of `f32` for an `f32` sum, so a dense matrix of up to 4096 columns is read row
/// after row, in address order).
const CHUNK: usize = 4096;

/// What a row does with its values.
enum Sink {
    /// Writes the kernel's stores.
    Stores,
    /// Combines the reduced value into vector accumulators and a scalar one. With `fold`
    /// (blocked `f32` sums), `vaccs` are `f32x4` and the row adds each block's sum into the
    /// two `f64x2` accumulators of `fold`; otherwise `vaccs` have the accumulator's dtype.
    Accs { vaccs: Vec<Variable>, sacc: Variable, fold: Option<[Variable; 2]> },
    /// Combines the reduced value into the scratch row at `base`, whose element 0 is column
    /// `c0`; its elements have the accumulator's dtype when `wide`, else the value's.
    Scratch { base: Value, c0: Value, wide: bool },
    /// An index-of-extremum reduction: per unrolled step a vector of best values and one of
    /// their indices (lanes of the value's width), and a scalar pair for the tail; `iota` is
    /// the vector of lane numbers.
    Arg { op: ArgOp, vaccs: Vec<(Variable, Variable)>, sacc: (Variable, Variable), iota: Option<Value> },
}

/// A reduction's facts for the sinks.
struct Red {
    op: ReduceOp,
    value: usize,
    /// The value's dtype.
    vd: DType,
    /// The accumulator's dtype.
    accd: DType,
    /// Whether the accumulator is wider than the value (`f32` into `f64`).
    widen: bool,
    /// An `f32` sum: accumulated in `f32` blocks added into `f64` (see [`SUM_CHAIN`]).
    blocked: bool,
}

impl Emitter<'_, '_> {
    /// Emits the kernel's loops at the current point (after the `start < end` check).
    pub fn kernel(&mut self) {
        if self.plan.empty {
            return;
        }
        match self.plan.shape {
            Shape::Elementwise { lanes } => self.elementwise(lanes),
            Shape::Inner { lanes } => match self.plan.arg() {
                Some(op) => self.inner_arg(op, lanes),
                None => self.inner(lanes),
            },
            Shape::Columns { lanes } => self.columns(lanes),
        }
    }

    fn red(&self) -> Red {
        let k = self.plan.kernel;
        let op = k.reduce.as_ref().map_or(ReduceOp::Sum, |r| r.op.extremum());
        let value = k.value.unwrap_or(0);
        let vd = k.body.get(value).map_or(DType::F32, |i| i.dtype);
        let accd = acc_dtype(op, vd);
        let blocked = op == ReduceOp::Sum && vd == DType::F32 && accd == DType::F64;
        Red { op, value, vd, accd, widen: accd != vd, blocked }
    }

    fn elementwise(&mut self, lanes: Option<usize>) {
        let last = self.plan.dims.len() - 1;
        let mut loops = Vec::new();
        for d in 0..last {
            let l = self.open_dim(d);
            loops.push((d, l));
        }
        let (lo, hi) = self.range(last);
        self.row(last, lo, hi, lanes, UNROLL_ROW, &Sink::Stores, None);
        for (d, l) in loops.into_iter().rev() {
            self.close_dim(d, l);
        }
    }

    fn inner(&mut self, lanes: Option<usize>) {
        let plan = self.plan;
        let red = self.red();
        let kept = plan.kept();
        let reds = plan.reduced_dims();
        let mut loops = Vec::new();
        for &d in &kept {
            let l = self.open_dim(d);
            loops.push((d, l));
        }
        let result = if plan.empty_reduce {
            let id = red.op.identity().unwrap_or(Scalar::Int(0));
            self.constant(id, red.vd)
        } else {
            let sacc = self.b.declare_var(scalar_ty(red.accd));
            let init = self.acc_init(red.op, red.accd);
            self.b.def_var(sacc, init);
            let mut vaccs = Vec::new();
            let mut fold = None;
            let mut unroll = UNROLL_REDUCE;
            if let Some(l) = lanes {
                let (vty, n) = if red.blocked {
                    // The row resets these `f32` accumulators per block; the block sums go
                    // into `fold`.
                    let splat = self.b.ins().splat(F64X2, init);
                    let declare = |e: &mut Self| {
                        let v = e.b.declare_var(F64X2);
                        e.b.def_var(v, splat);
                        v
                    };
                    fold = Some([declare(self), declare(self)]);
                    // A costly body (vector math) needs no more independent adds, and each
                    // copy costs compile time.
                    let (ins, maps) = plan.prog(Prog::Body);
                    let var = reds.last().map(|&d| variant(ins, maps, d, false)).unwrap_or_default();
                    unroll = if row_cost(ins, &var) > LARGE_ROW { 2 } else { UNROLL_SUM };
                    (vector_ty(red.vd, l), unroll)
                } else if red.widen {
                    (F64X2, 2 * UNROLL_REDUCE)
                } else {
                    (vector_ty(red.accd, l), UNROLL_REDUCE)
                };
                let init = if red.blocked { self.acc_init(red.op, red.vd) } else { init };
                let splat = self.b.ins().splat(vty, init);
                for _ in 0..n {
                    let v = self.b.declare_var(vty);
                    self.b.def_var(v, splat);
                    vaccs.push(v);
                }
            }
            let sink = Sink::Accs { vaccs: vaccs.clone(), sacc, fold };
            match reds.split_last() {
                None => {
                    // Every reduced dim had size 1: one value per output point.
                    let n = plan.kernel.body.len();
                    let mut vals = vec![None; n];
                    self.emit_set(Prog::Body, &vec![true; n], Mode::Scalar, &mut vals, None, &[]);
                    let row = Row::new(0, init, Vec::new());
                    self.sink_scalar(&sink, Some(&red), &vals, &row, None);
                }
                Some((&lr, outer)) => {
                    let mut rl = Vec::new();
                    for &d in outer {
                        let l = self.open_dim(d);
                        rl.push((d, l));
                    }
                    let (lo, hi) = self.range(lr);
                    self.row(lr, lo, hi, lanes, unroll, &sink, Some(&red));
                    for (d, l) in rl.into_iter().rev() {
                        self.close_dim(d, l);
                    }
                }
            }
            let mut s = self.b.use_var(sacc);
            // What is left to combine: the `f64` block sums, or the accumulators themselves.
            let vaccs = match fold {
                Some(f) => f.to_vec(),
                None => vaccs,
            };
            if let Some((first, rest)) = vaccs.split_first() {
                let mut v = self.b.use_var(*first);
                for &vk in rest {
                    let x = self.b.use_var(vk);
                    v = self.combine(red.op, red.accd, v, x);
                }
                let n = self.b.func.dfg.value_type(v).lane_count() as usize;
                for x in self.lanes(v, n) {
                    s = self.combine(red.op, red.accd, s, x);
                }
            }
            if red.widen {
                self.b.ins().fdemote(F32, s)
            } else {
                s
            }
        };
        self.epilogue_and_store(&[result]);
        for (d, l) in loops.into_iter().rev() {
            self.close_dim(d, l);
        }
    }

    fn columns(&mut self, lanes: usize) {
        let plan = self.plan;
        let red = self.red();
        let kept = plan.kept();
        let Some((&lk, outer_kept)) = kept.split_last() else { return };
        let reds = plan.reduced_dims();
        let mut loops = Vec::new();
        for &d in outer_kept {
            let l = self.open_dim(d);
            loops.push((d, l));
        }
        let (lo, hi) = self.range(lk);
        let asize = red.accd.size_bytes();
        let slot = self.b.create_sized_stack_slot(StackSlotData::new(
            StackSlotKind::ExplicitSlot,
            (CHUNK * asize) as u32,
            4,
        ));
        let chunk = self.open_loop(lo, hi, CHUNK as i64, false);
        let c0 = chunk.i;
        let c_end = self.b.ins().iadd_imm_s(c0, CHUNK as i64);
        let full = self.b.ins().icmp(IntCC::SignedLessThanOrEqual, c_end, hi);
        let c1 = self.b.ins().select(full, c_end, hi);
        let base = self.b.ins().stack_addr(I64, slot, 0);
        // Fill the scratch row with the accumulator's starting value.
        let init = self.acc_init(red.op, red.accd);
        let avty = Self::acc_vector_ty(red.accd);
        let vinit = self.b.ins().splat(avty, init);
        self.fill(base, CHUNK * asize, vinit);
        if let (true, Some((&lr, outer_reds))) = (red.blocked, reds.split_last()) {
            // An `f32` sum: blocks of `SUM_CHAIN` steps of the last reduced dim add into an
            // `f32` scratch row, which is then added into the `f64` one and reset.
            let slot32 = self.b.create_sized_stack_slot(StackSlotData::new(
                StackSlotKind::ExplicitSlot,
                (CHUNK * 4) as u32,
                4,
            ));
            let base32 = self.b.ins().stack_addr(I64, slot32, 0);
            let init32 = self.acc_init(red.op, red.vd);
            let vinit32 = self.b.ins().splat(vector_ty(red.vd, 4), init32);
            self.fill(base32, CHUNK * 4, vinit32);
            let mut rl = Vec::new();
            for &d in outer_reds {
                let l = self.open_dim(d);
                rl.push((d, l));
            }
            let (rlo, rhi) = self.range(lr);
            let blk = self.open_loop(rlo, rhi, SUM_CHAIN as i64, false);
            let b_end = self.b.ins().iadd_imm_s(blk.i, SUM_CHAIN as i64);
            let whole = self.b.ins().icmp(IntCC::SignedLessThanOrEqual, b_end, rhi);
            let b_end = self.b.ins().select(whole, b_end, rhi);
            let r = self.open_loop(blk.i, b_end, 1, true);
            self.set_idx(lr, r.i);
            let sink = Sink::Scratch { base: base32, c0, wide: false };
            self.row(lk, c0, c1, Some(lanes), UNROLL_REDUCE, &sink, Some(&red));
            self.close_dim(lr, r);
            // Columns `c0..c1` in whole vectors: both rows have `CHUNK` elements, a multiple of
            // 4, and the lanes past `c1` hold starting values that are never read.
            let n = self.b.ins().isub(c1, c0);
            let n4 = self.b.ins().iadd_imm_s(n, 3);
            let n4 = self.b.ins().band_imm_s(n4, -4);
            let zero = self.iconst(I64, 0);
            let f = self.open_loop(zero, n4, 4, true);
            let flags = MemFlagsData::trusted();
            let off32 = self.b.ins().imul_imm_s(f.i, 4);
            let a32 = self.b.ins().iadd(base32, off32);
            let x = self.b.ins().load(vector_ty(red.vd, 4), flags, a32, 0);
            self.b.ins().store(flags, vinit32, a32, 0);
            let off64 = self.b.ins().imul_imm_s(f.i, 8);
            let a64 = self.b.ins().iadd(base, off64);
            let (lo, hi) = self.widen_halves(x);
            for (at, part) in [(0, lo), (16, hi)] {
                let old = self.b.ins().load(F64X2, flags, a64, at);
                let c = self.b.ins().fadd(old, part);
                self.b.ins().store(flags, c, a64, at);
            }
            self.close_loop(f);
            self.close_loop(blk);
            for (d, l) in rl.into_iter().rev() {
                self.close_dim(d, l);
            }
        } else {
            let mut rl = Vec::new();
            for &d in &reds {
                let l = self.open_dim(d);
                rl.push((d, l));
            }
            let sink = Sink::Scratch { base, c0, wide: red.widen };
            self.row(lk, c0, c1, Some(lanes), UNROLL_ROW, &sink, Some(&red));
            for (d, l) in rl.into_iter().rev() {
                self.close_dim(d, l);
            }
        }
        // The epilogue, column by column.
        let col = self.open_loop(c0, c1, 1, true);
        self.set_idx(lk, col.i);
        let off = self.b.ins().isub(col.i, c0);
        let off = self.b.ins().imul_imm_s(off, asize as i64);
        let a = self.b.ins().iadd(base, off);
        let acc = self.b.ins().load(scalar_ty(red.accd), MemFlagsData::trusted(), a, 0);
        let acc = if red.widen { self.b.ins().fdemote(F32, acc) } else { acc };
        self.epilogue_and_store(&[acc]);
        self.clear_idx(lk);
        self.close_loop(col);
        self.close_loop(chunk);
        for (d, l) in loops.into_iter().rev() {
            self.close_dim(d, l);
        }
    }

    /// Stores the vector `v` over the `bytes` (a multiple of 16) at `base`.
    fn fill(&mut self, base: Value, bytes: usize, v: Value) {
        let zero = self.iconst(I64, 0);
        let end = self.iconst(I64, bytes as i64);
        let fill = self.open_loop(zero, end, 16, true);
        let a = self.b.ins().iadd(base, fill.i);
        self.b.ins().store(MemFlagsData::trusted(), v, a, 0);
        self.close_loop(fill);
    }

    /// An index-of-extremum reduction (the inner shape): per output point, the reduced row
    /// runs with per-lane best values and indices (in vector rows, one pair of vectors per
    /// unrolled step; in the tail, a scalar pair), combined at the end by value, then index.
    ///
    /// Every accumulator starts at (the op's neutral bound, a sentinel index larger than any
    /// real one). A later element replaces a lane's best only when strictly better, or when it
    /// is the first NaN, so each lane holds the first extremum of the elements it saw; the
    /// final combine prefers the larger (smaller) value, then any NaN, then the smaller index,
    /// which makes it associative. Only a row whose elements all equal the bound keeps the
    /// sentinel: its answer is index 0, whose value is that bound.
    fn inner_arg(&mut self, op: ArgOp, lanes: Option<usize>) {
        let plan = self.plan;
        let red = self.red();
        let kept = plan.kept();
        let mut loops = Vec::new();
        for &d in &kept {
            let l = self.open_dim(d);
            loops.push((d, l));
        }
        let (value, index) = match plan.reduced_dims().last() {
            None => {
                // A size-1 axis: the one element, at index 0.
                let n = plan.kernel.body.len();
                let mut vals = vec![None; n];
                self.emit_set(Prog::Body, &vec![true; n], Mode::Scalar, &mut vals, None, &[]);
                let v = self.scalar_val(vals[red.value], red.vd);
                (v, self.iconst(I64, 0))
            }
            Some(&lr) => {
                let init = self.acc_init(red.op, red.vd);
                let declare = |e: &mut Self, ty, x: Value| {
                    let v = e.b.declare_var(ty);
                    e.b.def_var(v, x);
                    v
                };
                let big = self.iconst(I64, i64::MAX);
                let sacc = (declare(self, scalar_ty(red.vd), init), declare(self, I64, big));
                let (mut vaccs, mut iota, mut sentinel) = (Vec::new(), None, i64::MAX);
                if let Some(l) = lanes {
                    let vty = vector_ty(red.vd, l);
                    let ity = vector_ty(if l == 4 { DType::I32 } else { DType::I64 }, l);
                    if l == 4 {
                        sentinel = i32::MAX as i64;
                    }
                    let s = self.iconst(ity.lane_type(), sentinel);
                    let (vinit, iinit) = (self.b.ins().splat(vty, init), self.b.ins().splat(ity, s));
                    for _ in 0..UNROLL_REDUCE {
                        vaccs.push((declare(self, vty, vinit), declare(self, ity, iinit)));
                    }
                    let zero = self.iconst(ity.lane_type(), 0);
                    let mut v = self.b.ins().splat(ity, zero);
                    for k in 1..l {
                        let c = self.iconst(ity.lane_type(), k as i64);
                        v = self.b.ins().insertlane(v, c, k as u8);
                    }
                    iota = Some(v);
                }
                let sink = Sink::Arg { op, vaccs: vaccs.clone(), sacc, iota };
                let (lo, hi) = self.range(lr);
                self.row(lr, lo, hi, lanes, UNROLL_REDUCE, &sink, Some(&red));
                let mut best = (self.b.use_var(sacc.0), self.b.use_var(sacc.1));
                if let Some((&(v0, i0), rest)) = vaccs.split_first() {
                    let mut acc = (self.b.use_var(v0), self.b.use_var(i0));
                    for &(v, i) in rest {
                        let other = (self.b.use_var(v), self.b.use_var(i));
                        acc = self.arg_combine(op, red.vd, acc, other);
                    }
                    let n = self.b.func.dfg.value_type(acc.0).lane_count() as usize;
                    let (vs, is) = (self.lanes(acc.0, n), self.lanes(acc.1, n));
                    for (v, i) in vs.into_iter().zip(is) {
                        let i = if self.b.func.dfg.value_type(i) == I32 {
                            self.b.ins().sextend(I64, i)
                        } else {
                            i
                        };
                        best = self.arg_combine(op, red.vd, best, (v, i));
                    }
                }
                let kept_sentinel =
                    self.b.ins().icmp_imm_s(IntCC::SignedGreaterThanOrEqual, best.1, sentinel);
                let zero = self.iconst(I64, 0);
                let value = if red.vd.is_float() { self.signed_zero(op, &red, lr, best.0) } else { best.0 };
                (value, self.b.ins().select(kept_sentinel, zero, best.1))
            }
        };
        self.epilogue_and_store(&[index, value]);
        for (d, l) in loops.into_iter().rev() {
            self.close_dim(d, l);
        }
    }

    /// The extremum of a float row whose lanes chose their best values by [`arg_better`]
    /// (`best`, after the final combine), as the `max`/`min` reduction computes it.
    ///
    /// A lane keeps the first of two equal elements, so where `-0` and `+0` meet, it may keep
    /// the zero that `fmax` (`fmin`) would not. Everything else is the same: a larger (smaller)
    /// element or the first NaN replaces the best, and a NaN stays. So only a row whose best
    /// is `-0` for a maximum (`+0` for a minimum) may be wrong, and only when the row holds
    /// the other zero too; such a row is reduced again, on a cold path, with `fmax` (`fmin`)
    /// one element at a time. Selecting instead of `fmax` in the hot loop saves the several
    /// instructions of a NaN-propagating vector `fmax` per vector (on x86-64).
    ///
    /// [`arg_better`]: Self::arg_better
    fn signed_zero(&mut self, op: ArgOp, red: &Red, lr: usize, best: Value) -> Value {
        let ty = self.b.func.dfg.value_type(best);
        let ity = if ty == F64 { I64 } else { I32 };
        let bits = self.b.ins().bitcast(ity, MemFlagsData::new(), best);
        let zero = self.b.ins().iconst(ity, 0);
        let suspect = match op {
            // -0: only the sign bit set.
            ArgOp::ArgMax => {
                let sign = self.b.ins().iconst(ity, if ity == I64 { i64::MIN } else { i32::MIN as i64 });
                self.b.ins().icmp(IntCC::Equal, bits, sign)
            }
            ArgOp::ArgMin => self.b.ins().icmp(IntCC::Equal, bits, zero),
        };
        let rescan = self.b.create_block();
        let cont = self.b.create_block();
        self.b.append_block_param(cont, ty);
        self.b.ins().brif(suspect, rescan, &[], cont, &[best.into()]);
        self.b.set_cold_block(rescan);
        self.b.switch_to_block(rescan);
        self.b.seal_block(rescan);
        let acc = self.b.declare_var(ty);
        let init = self.acc_init(red.op, red.vd);
        self.b.def_var(acc, init);
        let sink = Sink::Accs { vaccs: Vec::new(), sacc: acc, fold: None };
        let (lo, hi) = self.range(lr);
        self.row(lr, lo, hi, None, 1, &sink, Some(red));
        let v = self.b.use_var(acc);
        self.b.ins().jump(cont, &[v.into()]);
        self.b.switch_to_block(cont);
        self.b.seal_block(cont);
        self.b.block_params(cont)[0]
    }

    /// Whether the later element `x` replaces the best-so-far `best` (scalars or vectors):
    /// strictly better, or the first NaN.
    fn arg_better(&mut self, op: ArgOp, d: DType, x: Value, best: Value) -> Value {
        if d.is_float() {
            let cc = match op {
                ArgOp::ArgMax => FloatCC::UnorderedOrGreaterThan,
                ArgOp::ArgMin => FloatCC::UnorderedOrLessThan,
            };
            let c = self.b.ins().fcmp(cc, x, best);
            let ordered = self.b.ins().fcmp(FloatCC::Ordered, best, best);
            self.b.ins().band(c, ordered)
        } else {
            let cc = match op {
                ArgOp::ArgMax => IntCC::SignedGreaterThan,
                ArgOp::ArgMin => IntCC::SignedLessThan,
            };
            self.b.ins().icmp(cc, x, best)
        }
    }

    /// `b` where `cond` holds, else `a` (value and index; scalars or vectors).
    fn arg_select(&mut self, cond: Value, b: (Value, Value), a: (Value, Value)) -> (Value, Value) {
        let ty = self.b.func.dfg.value_type(b.0);
        if ty.is_vector() {
            let mask = |e: &mut Self, ty| {
                if e.b.func.dfg.value_type(cond) == ty {
                    cond
                } else {
                    e.b.ins().bitcast(ty, MemFlagsData::new().with_endianness(Endianness::Little), cond)
                }
            };
            let vmask = mask(self, ty);
            let ity = self.b.func.dfg.value_type(b.1);
            let imask = mask(self, ity);
            (self.b.ins().bitselect(vmask, b.0, a.0), self.b.ins().bitselect(imask, b.1, a.1))
        } else {
            (self.b.ins().select(cond, b.0, a.0), self.b.ins().select(cond, b.1, a.1))
        }
    }

    /// The better of two (value, index) pairs in any order: the larger (smaller) value, a NaN
    /// over a number, and the smaller index on ties (or between NaNs).
    fn arg_combine(&mut self, op: ArgOp, d: DType, a: (Value, Value), b: (Value, Value)) -> (Value, Value) {
        let lt = self.b.ins().icmp(IntCC::SignedLessThan, b.1, a.1);
        let take = if d.is_float() {
            let cc = match op {
                ArgOp::ArgMax => FloatCC::GreaterThan,
                ArgOp::ArgMin => FloatCC::LessThan,
            };
            let better = self.b.ins().fcmp(cc, b.0, a.0);
            let eq = self.b.ins().fcmp(FloatCC::Equal, b.0, a.0);
            let b_nan = self.b.ins().fcmp(FloatCC::Unordered, b.0, b.0);
            let a_ord = self.b.ins().fcmp(FloatCC::Ordered, a.0, a.0);
            let tie = self.b.ins().band(eq, lt);
            let nan_first = self.b.ins().bor(a_ord, lt);
            let nan = self.b.ins().band(b_nan, nan_first);
            let t = self.b.ins().bor(better, tie);
            self.b.ins().bor(t, nan)
        } else {
            let cc = match op {
                ArgOp::ArgMax => IntCC::SignedGreaterThan,
                ArgOp::ArgMin => IntCC::SignedLessThan,
            };
            let better = self.b.ins().icmp(cc, b.0, a.0);
            let eq = self.b.ins().icmp(IntCC::Equal, b.0, a.0);
            let tie = self.b.ins().band(eq, lt);
            self.b.ins().bor(better, tie)
        };
        let (_, i) = self.arg_select(take, b, a);
        (self.arg_value(op, d, take, b.0, a.0), i)
    }

    /// The better value of two lanes' bests in the final combine, where `better` says whether
    /// `x` won the index: for floats the extremum of the two (`fmax`/`fmin`: NaN-propagating,
    /// `+0` above `-0`), so the value is the `max`/`min` reduction's over the same elements,
    /// even when the winning index holds the other zero; for integers the winner's value.
    fn arg_value(&mut self, op: ArgOp, d: DType, better: Value, x: Value, best: Value) -> Value {
        if d.is_float() {
            match op {
                ArgOp::ArgMax => self.b.ins().fmax(best, x),
                ArgOp::ArgMin => self.b.ins().fmin(best, x),
            }
        } else {
            self.arg_select(better, (x, x), (best, best)).0
        }
    }

    /// Runs the epilogue at the current output point with the reduced value `acc[0]` (and an
    /// arg reduction's extremum `acc[1]`), then the stores.
    fn epilogue_and_store(&mut self, acc: &[Value]) {
        let n = self.plan.kernel.epilogue.len();
        let mut vals = vec![None; n];
        self.emit_set(Prog::Epilogue, &vec![true; n], Mode::Scalar, &mut vals, None, acc);
        let plan = self.plan;
        for s in &plan.kernel.stores {
            let d = plan.kernel.epilogue[s.value].dtype;
            let x = self.scalar_val(vals[s.value], d);
            let ix = self.index(&plan.store_map, None);
            let a = self.addr(s.buf, ix, d.size_bytes());
            self.store_elem(d, x, a);
        }
    }

    /// One row of the body along `dim` over `lo..hi`.
    #[allow(clippy::too_many_arguments)]
    fn row(
        &mut self,
        dim: usize,
        lo: Value,
        hi: Value,
        lanes: Option<usize>,
        unroll: usize,
        sink: &Sink,
        red: Option<&Red>,
    ) {
        let plan = self.plan;
        let (ins, maps) = plan.prog(Prog::Body);
        let var = variant(ins, maps, dim, false);
        let inv: Vec<bool> = var.iter().map(|v| !v).collect();
        let mut vals = vec![None; ins.len()];
        self.emit_set(Prog::Body, &inv, Mode::Scalar, &mut vals, None, &[]);
        let mut bases = Vec::with_capacity(ins.len());
        for (i, m) in maps.iter().enumerate() {
            bases.push(match m {
                Some(m) if var[i] => Some(self.index(m, Some(dim))),
                Some(_) | None => None,
            });
        }
        // The address of each varying load's element at row index 0, for the loops' cursors:
        // reductions only (elementwise rows keep their index arithmetic, and arg reductions
        // measured no faster with cursors).
        let mut ptrs = vec![None; ins.len()];
        if red.is_some() && !matches!(sink, Sink::Arg { .. }) {
            for (i, x) in ins.iter().enumerate() {
                if let (Inst::Load { buf, .. }, Some(base)) = (&x.inst, bases[i]) {
                    ptrs[i] = Some(self.addr(*buf, base, x.dtype.size_bytes()));
                }
            }
        }
        let store_base = match sink {
            Sink::Stores => Some(self.index(&plan.store_map, Some(dim))),
            Sink::Accs { .. } | Sink::Scratch { .. } | Sink::Arg { .. } => None,
        };
        let mut j = lo;
        if let Some(l) = lanes {
            // Invariant values the vector row reads, splatted once before it (but a draw's seed
            // and offset, which it reads as scalars).
            let mut splat = vec![false; ins.len()];
            for (i, x) in ins.iter().enumerate() {
                if var[i] && !matches!(x.inst, Inst::Rand { .. }) {
                    for a in x.inst.operands() {
                        splat[a] = true;
                    }
                }
            }
            match (sink, red) {
                (Sink::Stores, _) => plan.kernel.stores.iter().for_each(|s| splat[s.value] = true),
                (Sink::Accs { .. } | Sink::Scratch { .. } | Sink::Arg { .. }, Some(r)) => {
                    splat[r.value] = true
                }
                (Sink::Accs { .. } | Sink::Scratch { .. } | Sink::Arg { .. }, None) => {}
            }
            let mut vvals = vals.clone();
            for i in 0..ins.len() {
                if splat[i] && !var[i] {
                    vvals[i] = Some(Val::V(self.vector_val(vals[i], ins[i].dtype, l)));
                }
            }
            if let (Sink::Stores, Some(store_base)) = (sink, store_base) {
                if !sets_status(ins, &var) {
                    let unroll = if row_cost(ins, &var) > LARGE_ROW { 1 } else { unroll };
                    let rv = RowVals {
                        dim,
                        lanes: l,
                        var: &var,
                        bases: &bases,
                        ptrs: &ptrs,
                        vvals: &vvals,
                        store_base: Some(store_base),
                    };
                    self.padded_row(&rv, j, hi, unroll);
                    return;
                }
            }
            let vr =
                RowVals { dim, lanes: l, var: &var, bases: &bases, ptrs: &ptrs, vvals: &vvals, store_base };
            match (sink, red) {
                (Sink::Accs { vaccs, fold: Some(fold), .. }, Some(r)) => {
                    // Whole blocks, then the rest (fewer elements than a block), each summed
                    // in fresh `f32` accumulators and folded into `f64`.
                    let block = (SUM_CHAIN * l * unroll) as i64;
                    let lp = self.open_loop(j, hi, block, true);
                    self.reset_accs(vaccs, r);
                    let end = self.b.ins().iadd_imm_s(lp.i, block);
                    self.vector_loop(&vr, lp.i, end, unroll, sink, red);
                    self.fold_block(vaccs, fold);
                    j = self.close_loop(lp);
                    self.reset_accs(vaccs, r);
                    j = self.vector_loop(&vr, j, hi, unroll, sink, red);
                    j = self.vector_loop(&vr, j, hi, 1, sink, red);
                    self.fold_block(vaccs, fold);
                }
                _ => {
                    if unroll > 1 {
                        j = self.vector_loop(&vr, j, hi, unroll, sink, red);
                    }
                    j = self.vector_loop(&vr, j, hi, 1, sink, red);
                }
            }
        }
        let rv = RowVals { dim, lanes: 1, var: &var, bases: &bases, ptrs: &ptrs, vvals: &vals, store_base };
        let cur = self.cursor(&rv, j, sink, red);
        let lp = self.open_loop(j, hi, 1, true);
        let row = self.cursor_row(&cur, &rv, lp.i, 0);
        let mut v = vals.clone();
        self.emit_set(Prog::Body, &var, Mode::Scalar, &mut v, Some(&row), &[]);
        self.sink_scalar(sink, red, &v, &row, store_base);
        self.advance(&cur, 1);
        self.close_loop(lp);
    }

    /// `for (; j + lanes * n <= hi; j += lanes * n)`: `n` vectors of the row's body per
    /// iteration, into `sink`. Returns the first element it did not visit.
    fn vector_loop(
        &mut self,
        vr: &RowVals,
        j: Value,
        hi: Value,
        n: usize,
        sink: &Sink,
        red: Option<&Red>,
    ) -> Value {
        let l = vr.lanes;
        let cur = self.cursor(vr, j, sink, red);
        let lp = self.open_loop(j, hi, (l * n) as i64, true);
        for u in 0..n {
            let row = self.cursor_row(&cur, vr, lp.i, (u * l) as i64);
            let mut v = vr.vvals.to_vec();
            self.emit_set(Prog::Body, vr.var, Mode::Vector(l), &mut v, Some(&row), &[]);
            self.sink_vector(sink, red, u, l, &v, &row, vr.store_base);
        }
        self.advance(&cur, (l * n) as i64);
        self.close_loop(lp)
    }

    /// Pointer cursors for a row loop starting at row index `j`: per varying load with a
    /// hoisted pointer, and for a scratch row, a variable holding the address at the loop
    /// index and the bytes it moves per element. Loop-carried, so the loop body addresses its
    /// elements with no index arithmetic (Cranelift recomputes, in the loop, address arithmetic
    /// on values it could hoist).
    fn cursor(&mut self, vr: &RowVals, j: Value, sink: &Sink, red: Option<&Red>) -> Cursor {
        let (ins, maps) = self.plan.prog(Prog::Body);
        let mut loads = vec![None; ins.len()];
        for (i, p) in vr.ptrs.iter().enumerate() {
            if let (Some(p), Some(m)) = (p, &maps[i]) {
                let s = self.stride(m, vr.dim);
                let step = self.stride_times(s, ins[i].dtype.size_bytes() as i64);
                let off = match step {
                    Amount::Const(c) => self.b.ins().imul_imm_s(j, c),
                    Amount::Var(c) => self.b.ins().imul(j, c),
                };
                let a = self.b.ins().iadd(*p, off);
                let v = self.b.declare_var(I64);
                self.b.def_var(v, a);
                loads[i] = Some((v, step));
            }
        }
        let scratch = match (sink, red) {
            (Sink::Scratch { base, c0, wide }, Some(r)) => {
                let step = if *wide { r.accd } else { r.vd }.size_bytes() as i64;
                let k = self.b.ins().isub(j, *c0);
                let off = self.b.ins().imul_imm_s(k, step);
                let a = self.b.ins().iadd(*base, off);
                let v = self.b.declare_var(I64);
                self.b.def_var(v, a);
                Some((v, Amount::Const(step)))
            }
            _ => None,
        };
        Cursor { loads, scratch }
    }

    /// The row at loop index `j0` plus `off` (an unrolled copy), addressed from `cur`.
    fn cursor_row(&mut self, cur: &Cursor, vr: &RowVals, j0: Value, off: i64) -> Row {
        let j = if off == 0 { j0 } else { self.b.ins().iadd_imm_s(j0, off) };
        let mut row = Row::new(vr.dim, j, vr.bases.to_vec());
        row.off = off;
        row.ptrs = cur.loads.iter().map(|c| c.map(|(v, _)| self.b.use_var(v))).collect();
        row.sp = cur.scratch.map(|(v, _)| self.b.use_var(v));
        row
    }

    /// Moves the cursors `n` elements along the row.
    fn advance(&mut self, cur: &Cursor, n: i64) {
        for &(v, step) in cur.loads.iter().flatten().chain(&cur.scratch) {
            let a = self.b.use_var(v);
            let a = match step {
                Amount::Const(c) => self.b.ins().iadd_imm_s(a, n * c),
                Amount::Var(c) => {
                    let c = if n == 1 { c } else { self.b.ins().imul_imm_s(c, n) };
                    self.b.ins().iadd(a, c)
                }
            };
            self.b.def_var(v, a);
        }
    }

    /// Sets the `f32` accumulators of a blocked sum to the sum's starting value.
    fn reset_accs(&mut self, vaccs: &[Variable], r: &Red) {
        let init = self.acc_init(r.op, r.vd);
        let v = self.b.ins().splat(vector_ty(r.vd, 4), init);
        for &a in vaccs {
            self.b.def_var(a, v);
        }
    }

    /// Adds a block's `f32` accumulators pairwise, then their sum, widened, into `fold`.
    fn fold_block(&mut self, vaccs: &[Variable], fold: &[Variable; 2]) {
        let mut xs: Vec<Value> = vaccs.iter().map(|&a| self.b.use_var(a)).collect();
        while xs.len() > 1 {
            let next: Vec<Value> =
                xs.chunks(2).map(|p| if let [a, b] = *p { self.b.ins().fadd(a, b) } else { p[0] }).collect();
            xs = next;
        }
        let Some(&x) = xs.first() else { return };
        let (lo, hi) = self.widen_halves(x);
        for (&f, part) in fold.iter().zip([lo, hi]) {
            let a = self.b.use_var(f);
            let c = self.b.ins().fadd(a, part);
            self.b.def_var(f, c);
        }
    }

    /// An elementwise vector row whose last, partial vector runs the same code as the others:
    /// `unroll` vectors at a time (when `unroll > 1`), then one loop of single vectors in which
    /// each varying load reads either its buffer or, for the last `hi - j < lanes` elements, a
    /// 16-byte stack copy of them, and each store writes either its buffer or a stack vector
    /// whose valid lanes are then copied out. So the body is emitted once (twice unrolled) and
    /// no access leaves the row. The lanes past the row's end compute on zeros and are never
    /// stored; this is only used when no varying op can set the status word.
    fn padded_row(&mut self, rv: &RowVals, lo: Value, hi: Value, unroll: usize) {
        let plan = self.plan;
        let (ins, maps) = plan.prog(Prog::Body);
        let (dim, l) = (rv.dim, rv.lanes);
        let mut j = lo;
        if unroll > 1 {
            let lp = self.open_loop(j, hi, (l * unroll) as i64, true);
            for u in 0..unroll {
                let ju = if u == 0 { lp.i } else { self.b.ins().iadd_imm_s(lp.i, (u * l) as i64) };
                let row = Row::new(dim, ju, rv.bases.to_vec());
                let mut v = rv.vvals.to_vec();
                self.emit_set(Prog::Body, rv.var, Mode::Vector(l), &mut v, Some(&row), &[]);
                self.sink_vector(&Sink::Stores, None, u, l, &v, &row, rv.store_base);
            }
            j = self.close_loop(lp);
        }
        let loads: Vec<usize> =
            (0..ins.len()).filter(|&i| rv.var[i] && matches!(ins[i].inst, Inst::Load { .. })).collect();
        let stores = &plan.kernel.stores;
        let slot = |e: &mut Self| {
            let s = e.b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, 16, 4));
            e.b.ins().stack_addr(I64, s, 0)
        };
        let load_slots: Vec<Value> = loads.iter().map(|_| slot(self)).collect();
        let store_slots: Vec<Value> = stores.iter().map(|_| slot(self)).collect();
        let src: Vec<Variable> = loads.iter().map(|_| self.b.declare_var(I64)).collect();
        let dst: Vec<Variable> = stores.iter().map(|_| self.b.declare_var(I64)).collect();
        let lp = self.open_loop(j, hi, l as i64, false);
        let row = Row::new(dim, lp.i, rv.bases.to_vec());
        let rem = self.b.ins().isub(hi, lp.i);
        let full = self.b.ins().icmp_imm_s(IntCC::SignedGreaterThanOrEqual, rem, l as i64);
        let zero = self.iconst(I64, 0);
        let (whole, part, merge) = (self.b.create_block(), self.b.create_block(), self.b.create_block());
        self.b.ins().brif(full, whole, &[], part, &[]);
        // A whole vector: straight from and to the buffers.
        self.b.switch_to_block(whole);
        self.b.seal_block(whole);
        for (&i, &v) in loads.iter().zip(&src) {
            let (Inst::Load { buf, .. }, Some(m)) = (&ins[i].inst, &maps[i]) else { continue };
            let ix = self.row_index(m, Some(&row), row.bases[i]);
            let a = self.addr(*buf, ix, ins[i].dtype.size_bytes());
            self.b.def_var(v, a);
        }
        let out_ix = self.row_index(&plan.store_map, Some(&row), rv.store_base);
        for (s, &v) in stores.iter().zip(&dst) {
            let a = self.addr(s.buf, out_ix, ins[s.value].dtype.size_bytes());
            self.b.def_var(v, a);
        }
        self.b.ins().jump(merge, &[]);
        // The partial last vector: its elements copied into zeroed stack vectors.
        self.b.switch_to_block(part);
        self.b.seal_block(part);
        self.b.set_cold_block(part);
        let zeros = self.b.ins().splat(types::I64X2, zero);
        for (&a, &v) in load_slots.iter().zip(&src) {
            self.b.ins().store(MemFlagsData::trusted(), zeros, a, 0);
            self.b.def_var(v, a);
        }
        for (&a, &v) in store_slots.iter().zip(&dst) {
            self.b.def_var(v, a);
        }
        let copy = self.open_loop(zero, rem, 1, false);
        let row_k = Row::new(dim, self.b.ins().iadd(lp.i, copy.i), rv.bases.to_vec());
        for (&i, &a) in loads.iter().zip(&load_slots) {
            let (Inst::Load { buf, .. }, Some(m)) = (&ins[i].inst, &maps[i]) else { continue };
            let size = ins[i].dtype.size_bytes();
            let ix = self.row_index(m, Some(&row_k), row_k.bases[i]);
            let from = self.addr(*buf, ix, size);
            // The element's bits, whatever they are (16-bit floats copied as 16 bits).
            let x = self.b.ins().load(mem_ty(ins[i].dtype), MemFlagsData::trusted(), from, 0);
            let off = self.b.ins().imul_imm_s(copy.i, size as i64);
            let to = self.b.ins().iadd(a, off);
            self.b.ins().store(MemFlagsData::trusted(), x, to, 0);
        }
        self.close_loop(copy);
        self.b.ins().jump(merge, &[]);
        self.b.switch_to_block(merge);
        self.b.seal_block(merge);
        let mut v = rv.vvals.to_vec();
        let mut which = rv.var.to_vec();
        for (&i, &p) in loads.iter().zip(&src) {
            let p = self.b.use_var(p);
            v[i] = Some(Val::V(self.vector_load_elem(ins[i].dtype, l, p, 0)));
            which[i] = false;
        }
        self.emit_set(Prog::Body, &which, Mode::Vector(l), &mut v, Some(&row), &[]);
        for (s, &p) in stores.iter().zip(&dst) {
            let x = self.vector_val(v[s.value], ins[s.value].dtype, l);
            let p = self.b.use_var(p);
            self.vector_store_elem(ins[s.value].dtype, x, p);
        }
        let (out, cont) = (self.b.create_block(), self.b.create_block());
        self.b.ins().brif(full, cont, &[], out, &[]);
        // The partial vector's valid lanes, out to the buffers.
        self.b.switch_to_block(out);
        self.b.seal_block(out);
        self.b.set_cold_block(out);
        let copy = self.open_loop(zero, rem, 1, false);
        let k = self.b.ins().iadd(lp.i, copy.i);
        let row_k = Row::new(dim, k, Vec::new());
        let out_ix = self.row_index(&plan.store_map, Some(&row_k), rv.store_base);
        for (s, &a) in stores.iter().zip(&store_slots) {
            let d = ins[s.value].dtype;
            let off = self.b.ins().imul_imm_s(copy.i, d.size_bytes() as i64);
            let from = self.b.ins().iadd(a, off);
            let x = self.b.ins().load(mem_ty(d), MemFlagsData::trusted(), from, 0);
            let to = self.addr(s.buf, out_ix, d.size_bytes());
            self.b.ins().store(MemFlagsData::trusted(), x, to, 0);
        }
        self.close_loop(copy);
        self.b.ins().jump(cont, &[]);
        self.b.switch_to_block(cont);
        self.b.seal_block(cont);
        self.close_loop(lp);
    }

    #[allow(clippy::too_many_arguments)]
    fn sink_vector(
        &mut self,
        sink: &Sink,
        red: Option<&Red>,
        u: usize,
        lanes: usize,
        vals: &[Option<Val>],
        row: &Row,
        store_base: Option<Value>,
    ) {
        let plan = self.plan;
        match (sink, red) {
            (Sink::Stores, _) => {
                for s in &plan.kernel.stores {
                    let d = plan.kernel.body[s.value].dtype;
                    let x = self.vector_val(vals[s.value], d, lanes);
                    let ix = self.row_index(&plan.store_map, Some(row), store_base);
                    let a = self.addr(s.buf, ix, d.size_bytes());
                    self.vector_store_elem(d, x, a);
                }
            }
            (Sink::Accs { vaccs, fold, .. }, Some(r)) => {
                let x = self.vector_val(vals[r.value], r.vd, lanes);
                let parts = if r.widen && fold.is_none() {
                    let (lo, hi) = self.widen_halves(x);
                    vec![(2 * u, lo), (2 * u + 1, hi)]
                } else {
                    vec![(u, x)]
                };
                for (k, part) in parts {
                    let Some(&var) = vaccs.get(k) else { continue };
                    let a = self.b.use_var(var);
                    let c = self.combine(r.op, r.accd, a, part);
                    self.b.def_var(var, c);
                }
            }
            (Sink::Scratch { base, c0, wide }, Some(r)) => {
                let x = self.vector_val(vals[r.value], r.vd, lanes);
                let ad = if *wide { r.accd } else { r.vd };
                let (a, at0) = self.scratch_addr(row, *base, *c0, ad);
                let flags = MemFlagsData::new().with_notrap();
                let parts = if *wide {
                    let (lo, hi) = self.widen_halves(x);
                    vec![(0, lo), (16, hi)]
                } else {
                    vec![(0, x)]
                };
                for (at, part) in parts {
                    let at = at + at0;
                    let ty = self.b.func.dfg.value_type(part);
                    let old = self.b.ins().load(ty, flags, a, at);
                    let c = self.combine(r.op, r.accd, old, part);
                    self.b.ins().store(flags, c, a, at);
                }
            }
            (Sink::Arg { op, vaccs, iota, .. }, Some(r)) => {
                let x = self.vector_val(vals[r.value], r.vd, lanes);
                let (Some(&(bv, bi)), Some(iota)) = (vaccs.get(u), *iota) else { return };
                let ity = self.b.func.dfg.value_type(iota);
                let j = if ity.lane_type() == I32 { self.b.ins().ireduce(I32, row.j) } else { row.j };
                let j = self.b.ins().splat(ity, j);
                let xi = self.b.ins().iadd(j, iota);
                let (v, i) = (self.b.use_var(bv), self.b.use_var(bi));
                let better = self.arg_better(*op, r.vd, x, v);
                let (v, i) = self.arg_select(better, (x, xi), (v, i));
                self.b.def_var(bv, v);
                self.b.def_var(bi, i);
            }
            (Sink::Accs { .. } | Sink::Scratch { .. } | Sink::Arg { .. }, None) => {}
        }
    }

    /// The address of the scratch row's element for `row.j` (elements of `d`), and an
    /// immediate offset from it.
    fn scratch_addr(&mut self, row: &Row, base: Value, c0: Value, d: DType) -> (Value, i32) {
        let size = d.size_bytes() as i64;
        match row.sp {
            Some(sp) => (sp, (row.off * size) as i32),
            None => {
                let off = self.b.ins().isub(row.j, c0);
                let off = self.b.ins().imul_imm_s(off, size);
                (self.b.ins().iadd(base, off), 0)
            }
        }
    }

    fn sink_scalar(
        &mut self,
        sink: &Sink,
        red: Option<&Red>,
        vals: &[Option<Val>],
        row: &Row,
        store_base: Option<Value>,
    ) {
        let plan = self.plan;
        match (sink, red) {
            (Sink::Stores, _) => {
                for s in &plan.kernel.stores {
                    let d = plan.kernel.body[s.value].dtype;
                    let x = self.scalar_val(vals[s.value], d);
                    let ix = self.row_index(&plan.store_map, Some(row), store_base);
                    let a = self.addr(s.buf, ix, d.size_bytes());
                    self.store_elem(d, x, a);
                }
            }
            (Sink::Accs { sacc, .. }, Some(r)) => {
                let x = self.scalar_val(vals[r.value], r.vd);
                let x = if r.widen { self.b.ins().fpromote(F64, x) } else { x };
                let a = self.b.use_var(*sacc);
                let c = self.combine(r.op, r.accd, a, x);
                self.b.def_var(*sacc, c);
            }
            (Sink::Scratch { base, c0, wide }, Some(r)) => {
                let x = self.scalar_val(vals[r.value], r.vd);
                let ad = if *wide { r.accd } else { r.vd };
                let x = if ad != r.vd { self.b.ins().fpromote(F64, x) } else { x };
                let (a, at) = self.scratch_addr(row, *base, *c0, ad);
                let old = self.b.ins().load(scalar_ty(ad), MemFlagsData::trusted(), a, at);
                let c = self.combine(r.op, ad, old, x);
                self.b.ins().store(MemFlagsData::trusted(), c, a, at);
            }
            (Sink::Arg { op, sacc: (bv, bi), .. }, Some(r)) => {
                let x = self.scalar_val(vals[r.value], r.vd);
                let (v, i) = (self.b.use_var(*bv), self.b.use_var(*bi));
                let better = self.arg_better(*op, r.vd, x, v);
                let (v, i) = self.arg_select(better, (x, row.j), (v, i));
                self.b.def_var(*bv, v);
                self.b.def_var(*bi, i);
            }
            (Sink::Accs { .. } | Sink::Scratch { .. } | Sink::Arg { .. }, None) => {}
        }
    }
}

/// Loop-carried addresses of a row loop, each with the bytes it moves per element; see
/// [`Emitter::cursor`].
struct Cursor {
    loads: Vec<Option<(Variable, Amount)>>,
    scratch: Option<(Variable, Amount)>,
}

/// What a vector row's loops need of the row set up by [`Emitter::row`].
struct RowVals<'v> {
    dim: usize,
    lanes: usize,
    /// Which body instructions vary along the row.
    var: &'v [bool],
    /// Each map-bearing instruction's index without the row term.
    bases: &'v [Option<Value>],
    /// Each varying load's address at row index 0.
    ptrs: &'v [Option<Value>],
    /// Invariant values, splatted where the vector row reads them.
    vvals: &'v [Option<Val>],
    /// The store map's index without the row term (rows that store).
    store_base: Option<Value>,
}

/// Rows whose varying instructions cost more than this (see [`row_cost`]) are not unrolled:
/// the vector math of one copy already gives the core enough independent work, and each copy
/// costs compile time.
const LARGE_ROW: usize = 24;

/// A rough size of the varying instructions of a row, in CLIF instructions per vector (the op
/// rows' `cost.cpu`).
fn row_cost(ins: &[tenjit_ir::kernel::Instr], var: &[bool]) -> usize {
    ins.iter()
        .zip(var)
        .filter(|(_, &v)| v)
        .map(|(i, _)| match &i.inst {
            Inst::Unary(u, _) => u.spec().cost.cpu,
            Inst::Binary(b, ..) => b.spec().cost.cpu,
            Inst::Iota { .. } | Inst::Rand { .. } => 8,
            Inst::Load { .. }
            | Inst::Const(_)
            | Inst::Where(..)
            | Inst::Cast(_)
            | Inst::Acc
            | Inst::AccValue => 1,
        })
        .sum()
}

/// Whether a varying instruction can set the status word (integer `//`, `%`, `**`): lanes
/// past a row's end must then not be computed.
fn sets_status(ins: &[tenjit_ir::kernel::Instr], var: &[bool]) -> bool {
    use tenjit_ir::BinaryOp as B;
    ins.iter().zip(var).any(|(i, &v)| {
        v && match i.inst {
            Inst::Binary(B::FloorDiv | B::Rem | B::Pow, a, _) => !ins[a].dtype.is_float(),
            _ => false,
        }
    })
}
