//! The size table: the numbers of a kernel's loop plan that its machine code reads at run
//! time, so kernels of one structure at different sizes run one function.
//!
//! A plan's extents, strides and offsets are split in two. *Structural* facts are constants
//! of the code and part of its cache key (`shared::Key`): how many canonical dims there are
//! and which are reduced, the loop shape and its lanes (which already encode the size-dependent
//! choices of `plan::choose_shape`: a short reduced row taking the column shape, an arg
//! reduction's `i32` index lanes), the instruction program and the dtypes, and for every map
//! and dim the [`Class`] of its stride: `0` (the value does not move along the dim: it is
//! hoisted, splatted, and decides vectorization), `1` (contiguous: vector loads, immediate
//! offsets of unrolled copies, constant cursor steps) or another value, and whether each map's
//! offset is 0 (the common case, which then costs no add in the address arithmetic; measured
//! on W1). Everything else is a runtime value read from the table: the extent of every dim,
//! every nonzero offset, and every stride of class [`Class::Other`]. The outer dim's extent is
//! in the table too, but the code walks the `start..end` range it is given instead.
//!
//! The table is built once per compiled kernel from its own plan ([`table`]), whose checks
//! proved every access of that kernel inside its buffers; the shared code is only ever called
//! with such a table. The function loads the entries it uses once, in its entry block
//! (read-only, non-trapping, movable loads, so the optimizer drops the ones it does not need
//! and keeps the rest out of the loops).
//!
//! Layout, for `n` canonical dims: entries `0..n` are the extents; then each map (body maps in
//! instruction order, epilogue maps, the store map) has `n + 1` entries starting at its
//! [`Map::slot`]: its offset, then its stride along each dim.

use super::emit::Emitter;
use super::plan::{Map, Plan};
use cranelift_codegen::ir::types::I64;
use cranelift_codegen::ir::{InstBuilder, MemFlagsData, Value};

/// What the machine code knows of a stride: the only fact about it the cache key holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Class {
    /// The map does not move along the dim.
    Zero,
    /// The map walks the dim contiguously.
    One,
    /// Any other stride (negative, strided, a later dim's extent): a runtime value.
    Other,
}

impl Class {
    /// The class of stride `s`.
    pub(super) fn of(s: i64) -> Class {
        match s {
            0 => Class::Zero,
            1 => Class::One,
            _ => Class::Other,
        }
    }
}

/// A stride as the emitter uses it: a constant when structural, else the table's value.
#[derive(Clone, Copy, Debug)]
pub(super) enum Stride {
    /// Stride 0.
    Zero,
    /// Stride 1.
    One,
    /// Another stride, read from the table.
    Var(Value),
}

/// A multiple of a stride (an index step, a cursor's bytes per element).
#[derive(Clone, Copy, Debug)]
pub(super) enum Amount {
    /// Known to the code.
    Const(i64),
    /// Computed from the size table.
    Var(Value),
}

/// The slot of the first entry of the `j`-th map of a plan with `n` canonical dims.
pub(super) fn map_slot(n: usize, j: usize) -> usize {
    n + j * (n + 1)
}

/// Every map of `p`, in table order: body maps, epilogue maps, the store map.
fn maps<'p>(p: &'p Plan<'_>) -> impl Iterator<Item = &'p Map> {
    p.body_maps.iter().chain(&p.epi_maps).flatten().chain(std::iter::once(&p.store_map))
}

/// The size table of `p` (see the module doc for its layout).
pub(super) fn table(p: &Plan<'_>) -> Vec<i64> {
    let mut t: Vec<i64> = p.dims.iter().map(|&d| d as i64).collect();
    for m in maps(p) {
        debug_assert_eq!(t.len(), m.slot, "maps are laid out in table order");
        t.push(m.offset);
        t.extend(&m.strides);
    }
    t
}

/// Whether each map of `p` has a nonzero offset, and its stride classes, in table order: the
/// part of the maps the cache key holds.
pub(super) fn classes(p: &Plan<'_>) -> Vec<(bool, Vec<Class>)> {
    maps(p).map(|m| (m.offset != 0, m.strides.iter().map(|&s| Class::of(s)).collect())).collect()
}

impl Emitter<'_, '_> {
    /// Loads, at the current point (the entry block), every table entry the code may read:
    /// the extents, the nonzero offsets and the strides of class [`Class::Other`].
    pub(super) fn load_sizes(&mut self, table: Value) {
        let p = self.plan;
        let mut wanted: Vec<usize> = (0..p.dims.len()).collect();
        for m in maps(p) {
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
