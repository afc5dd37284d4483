//! Loop nests: the three loop shapes of [`Shape`] around rows of element programs.
//!
//! A *row* is the innermost loop: invariant instructions (those whose maps do not move along
//! the row's dim) are computed once before it, then the row runs as vectors unrolled
//! `unroll` times, then single vectors, then a scalar tail, so every element is visited once
//! and no access reaches past the row's end.

use super::emit::{scalar_ty, vector_ty, Emitter, Mode, Row, Val};
use super::plan::{acc_dtype, variant, Prog, Shape};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::{F32, F64, F64X2, I64};
use cranelift_codegen::ir::{InstBuilder, MemFlagsData, StackSlotData, StackSlotKind, Value};
use cranelift_frontend::Variable;
use tenjit_ir::kernel::Inst;
use tenjit_ir::ops::{ReduceOp, Scalar};
use tenjit_ir::DType;

/// Unroll factor of elementwise and column rows.
const UNROLL_ROW: usize = 2;
/// Unroll factor of reduction rows (independent accumulators hide the add latency).
const UNROLL_REDUCE: usize = 4;
/// Columns accumulated at once by the column shape (the scratch row: up to 32 KiB of `f64`,
/// so a dense matrix of up to 4096 columns is read row after row, in address order).
const CHUNK: usize = 4096;

/// What a row does with its values.
enum Sink {
    /// Writes the kernel's stores.
    Stores,
    /// Combines the reduced value into vector accumulators and a scalar one.
    Accs { vaccs: Vec<Variable>, sacc: Variable },
    /// Combines the reduced value into the scratch row at `base`, whose element 0 is column
    /// `c0`.
    Scratch { base: Value, c0: Value },
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
}

impl Emitter<'_, '_> {
    /// Emits the kernel's loops at the current point (after the `start < end` check).
    pub fn kernel(&mut self) {
        if self.plan.empty {
            return;
        }
        match self.plan.shape {
            Shape::Elementwise { lanes } => self.elementwise(lanes),
            Shape::Inner { lanes } => self.inner(lanes),
            Shape::Columns { lanes } => self.columns(lanes),
        }
    }

    fn red(&self) -> Red {
        let k = self.plan.kernel;
        let op = k.reduce.as_ref().map_or(ReduceOp::Sum, |r| r.op);
        let value = k.value.unwrap_or(0);
        let vd = k.body.get(value).map_or(DType::F32, |i| i.dtype);
        let accd = acc_dtype(op, vd);
        Red { op, value, vd, accd, widen: accd != vd }
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
            if let Some(l) = lanes {
                let (vty, n) = if red.widen {
                    (F64X2, 2 * UNROLL_REDUCE)
                } else {
                    (vector_ty(red.accd, l), UNROLL_REDUCE)
                };
                let splat = self.b.ins().splat(vty, init);
                for _ in 0..n {
                    let v = self.b.declare_var(vty);
                    self.b.def_var(v, splat);
                    vaccs.push(v);
                }
            }
            let sink = Sink::Accs { vaccs: vaccs.clone(), sacc };
            match reds.split_last() {
                None => {
                    // Every reduced dim had size 1: one value per output point.
                    let n = plan.kernel.body.len();
                    let mut vals = vec![None; n];
                    self.emit_set(Prog::Body, &vec![true; n], Mode::Scalar, &mut vals, None, None);
                    let row = Row { dim: 0, j: init, bases: Vec::new() };
                    self.sink_scalar(&sink, Some(&red), &vals, &row, None);
                }
                Some((&lr, outer)) => {
                    let mut rl = Vec::new();
                    for &d in outer {
                        let l = self.open_dim(d);
                        rl.push((d, l));
                    }
                    let (lo, hi) = self.range(lr);
                    self.row(lr, lo, hi, lanes, UNROLL_REDUCE, &sink, Some(&red));
                    for (d, l) in rl.into_iter().rev() {
                        self.close_dim(d, l);
                    }
                }
            }
            let mut s = self.b.use_var(sacc);
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
        self.epilogue_and_store(result);
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
        let zero = self.iconst(I64, 0);
        let bytes = self.iconst(I64, (CHUNK * asize) as i64);
        let fill = self.open_loop(zero, bytes, 16, true);
        let a = self.b.ins().iadd(base, fill.i);
        self.b.ins().store(MemFlagsData::trusted(), vinit, a, 0);
        self.close_loop(fill);
        let mut rl = Vec::new();
        for &d in &reds {
            let l = self.open_dim(d);
            rl.push((d, l));
        }
        self.row(lk, c0, c1, Some(lanes), UNROLL_ROW, &Sink::Scratch { base, c0 }, Some(&red));
        for (d, l) in rl.into_iter().rev() {
            self.close_dim(d, l);
        }
        // The epilogue, column by column.
        let col = self.open_loop(c0, c1, 1, true);
        self.set_idx(lk, col.i);
        let off = self.b.ins().isub(col.i, c0);
        let off = self.b.ins().imul_imm_s(off, asize as i64);
        let a = self.b.ins().iadd(base, off);
        let acc = self.b.ins().load(scalar_ty(red.accd), MemFlagsData::trusted(), a, 0);
        let acc = if red.widen { self.b.ins().fdemote(F32, acc) } else { acc };
        self.epilogue_and_store(acc);
        self.clear_idx(lk);
        self.close_loop(col);
        self.close_loop(chunk);
        for (d, l) in loops.into_iter().rev() {
            self.close_dim(d, l);
        }
    }

    /// Runs the epilogue at the current output point with the reduced value `acc`, then the
    /// stores.
    fn epilogue_and_store(&mut self, acc: Value) {
        let n = self.plan.kernel.epilogue.len();
        let mut vals = vec![None; n];
        self.emit_set(Prog::Epilogue, &vec![true; n], Mode::Scalar, &mut vals, None, Some(acc));
        let plan = self.plan;
        for s in &plan.kernel.stores {
            let d = plan.kernel.epilogue[s.value].dtype;
            let x = self.scalar_val(vals[s.value], d);
            let ix = self.index(&plan.store_map, None);
            let a = self.addr(s.buf, ix, d.size_bytes());
            self.b.ins().store(MemFlagsData::trusted(), x, a, 0);
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
        self.emit_set(Prog::Body, &inv, Mode::Scalar, &mut vals, None, None);
        let mut bases = Vec::with_capacity(ins.len());
        for (i, m) in maps.iter().enumerate() {
            bases.push(match m {
                Some(m) if var[i] => Some(self.index(m, Some(dim))),
                Some(_) | None => None,
            });
        }
        let store_base = match sink {
            Sink::Stores => Some(self.index(&plan.store_map, Some(dim))),
            Sink::Accs { .. } | Sink::Scratch { .. } => None,
        };
        let mut j = lo;
        if let Some(l) = lanes {
            // Invariant values the vector row reads, splatted once before it.
            let mut splat = vec![false; ins.len()];
            for (i, x) in ins.iter().enumerate() {
                if var[i] {
                    for a in operands(&x.inst) {
                        splat[a] = true;
                    }
                }
            }
            match (sink, red) {
                (Sink::Stores, _) => plan.kernel.stores.iter().for_each(|s| splat[s.value] = true),
                (Sink::Accs { .. } | Sink::Scratch { .. }, Some(r)) => splat[r.value] = true,
                (Sink::Accs { .. } | Sink::Scratch { .. }, None) => {}
            }
            let mut vvals = vals.clone();
            for i in 0..ins.len() {
                if splat[i] && !var[i] {
                    vvals[i] = Some(Val::V(self.vector_val(vals[i], ins[i].dtype, l)));
                }
            }
            let steps: &[usize] = if unroll > 1 { &[unroll, 1] } else { &[1] };
            for &n in steps {
                let lp = self.open_loop(j, hi, (l * n) as i64, true);
                for u in 0..n {
                    let ju = if u == 0 { lp.i } else { self.b.ins().iadd_imm_s(lp.i, (u * l) as i64) };
                    let row = Row { dim, j: ju, bases: bases.clone() };
                    let mut v = vvals.clone();
                    self.emit_set(Prog::Body, &var, Mode::Vector(l), &mut v, Some(&row), None);
                    self.sink_vector(sink, red, u, l, &v, &row, store_base);
                }
                j = self.close_loop(lp);
            }
        }
        let lp = self.open_loop(j, hi, 1, true);
        let row = Row { dim, j: lp.i, bases };
        let mut v = vals;
        self.emit_set(Prog::Body, &var, Mode::Scalar, &mut v, Some(&row), None);
        self.sink_scalar(sink, red, &v, &row, store_base);
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
                    self.b.ins().store(MemFlagsData::new().with_notrap(), x, a, 0);
                }
            }
            (Sink::Accs { vaccs, .. }, Some(r)) => {
                let x = self.vector_val(vals[r.value], r.vd, lanes);
                let parts = if r.widen {
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
            (Sink::Scratch { base, c0 }, Some(r)) => {
                let x = self.vector_val(vals[r.value], r.vd, lanes);
                let off = self.b.ins().isub(row.j, *c0);
                let off = self.b.ins().imul_imm_s(off, r.accd.size_bytes() as i64);
                let a = self.b.ins().iadd(*base, off);
                let flags = MemFlagsData::new().with_notrap();
                let parts = if r.widen {
                    let (lo, hi) = self.widen_halves(x);
                    vec![(0, lo), (16, hi)]
                } else {
                    vec![(0, x)]
                };
                for (at, part) in parts {
                    let ty = self.b.func.dfg.value_type(part);
                    let old = self.b.ins().load(ty, flags, a, at);
                    let c = self.combine(r.op, r.accd, old, part);
                    self.b.ins().store(flags, c, a, at);
                }
            }
            (Sink::Accs { .. } | Sink::Scratch { .. }, None) => {}
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
                    self.b.ins().store(MemFlagsData::trusted(), x, a, 0);
                }
            }
            (Sink::Accs { sacc, .. }, Some(r)) => {
                let x = self.scalar_val(vals[r.value], r.vd);
                let x = if r.widen { self.b.ins().fpromote(F64, x) } else { x };
                let a = self.b.use_var(*sacc);
                let c = self.combine(r.op, r.accd, a, x);
                self.b.def_var(*sacc, c);
            }
            (Sink::Scratch { base, c0 }, Some(r)) => {
                let x = self.scalar_val(vals[r.value], r.vd);
                let x = if r.widen { self.b.ins().fpromote(F64, x) } else { x };
                let off = self.b.ins().isub(row.j, *c0);
                let off = self.b.ins().imul_imm_s(off, r.accd.size_bytes() as i64);
                let a = self.b.ins().iadd(*base, off);
                let old = self.b.ins().load(scalar_ty(r.accd), MemFlagsData::trusted(), a, 0);
                let c = self.combine(r.op, r.accd, old, x);
                self.b.ins().store(MemFlagsData::trusted(), c, a, 0);
            }
            (Sink::Accs { .. } | Sink::Scratch { .. }, None) => {}
        }
    }
}

/// The operands of an instruction.
fn operands(i: &Inst) -> Vec<usize> {
    match *i {
        Inst::Unary(_, a) | Inst::Cast(a) => vec![a],
        Inst::Binary(_, a, b) => vec![a, b],
        Inst::Where(c, a, b) => vec![c, a, b],
        Inst::Load { .. } | Inst::Const(_) | Inst::Iota { .. } | Inst::Rand { .. } | Inst::Acc => Vec::new(),
    }
}
