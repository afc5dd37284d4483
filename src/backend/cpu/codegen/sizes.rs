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
//! offset is 0 (the common case, which then costs no add in the address arithmetic). Everything else is a runtime value read from the table: the extent of every dim,
//! every nonzero offset, and every stride of class [`Class::Other`]. The outer dim's extent is
//! in the table too, but the code walks the `start..end` range it is given instead.
//!
//! The table is built once per compiled kernel from its own plan ([`table`]), whose checks
//! proved every access of that kernel inside its buffers; the shared code is only ever called
//! with such a table. The function loads the entries it uses once, in its entry block
//! (read-only, non-trapping, movable loads, so the optimizer drops the ones it does not need
//! and keeps the rest out of the loops): `Emitter::load_sizes` and the accessors beside it in
//! `emit.rs`.
//!
//! Layout, for `n` canonical dims: entries `0..n` are the extents; then each map (body maps in
//! instruction order, epilogue maps, the store map) has `n + 1` entries starting at its
//! `Map::slot`: its offset, then its stride along each dim.

use super::plan::{Map, Plan};
use cranelift_codegen::ir::Value;

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

/// Every map of `p`, in table order: body maps, epilogue maps, the store map.
pub(super) fn maps<'p>(p: &'p Plan<'_>) -> impl Iterator<Item = &'p Map> {
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
