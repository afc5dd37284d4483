//! Widening of `f16` and `bf16` inside a kernel: arithmetic in `f32`, rounding at the edges.
//!
//! The 16-bit floats are storage formats. [`widen`] rewrites a kernel's element programs so
//! that only three kinds of instruction keep a 16-bit dtype: a [`Inst::Load`] of a 16-bit
//! buffer, a [`Inst::Const`] (a value exact in the format) and a [`Inst::Cast`] to the
//! format, which rounds its operand to nearest with ties to even. Every other instruction of a
//! 16-bit dtype (unary, binary, `where`, `acc`) computes in `f32` instead, its 16-bit operands
//! converted by an inserted `cast` to `f32` (exact); `iota` and `rand` compute in `f32` and are
//! rounded by an inserted `cast`; a store of a value that was 16-bit and is now `f32` gets a
//! rounding `cast` before it. So a fused kernel keeps its intermediate values in `f32`, where
//! PyTorch's eager mode rounds after every op: results agree with the graph interpreter (the
//! oracle, which rounds every node) to the 16-bit format's precision, not bit for bit.
//!
//! Lowering widens every kernel it makes, and a backend widens every kernel it is given
//! ([`widened`]: a no-op on lowered kernels, since widening twice changes nothing), so a
//! hand-built kernel with 16-bit arithmetic compiles too; the kernel-IR interpreter instead
//! rounds each instruction to its dtype, as written.
//!
//! A backend then needs only: 16-bit loads and stores, constants, the conversion of 16-bit
//! values to `f32` (the only cast whose operand is 16-bit), and the rounding conversion of
//! `f32` to 16 bits (the only cast to a 16-bit dtype). A kernel with no 16-bit value is returned
//! unchanged, so `f32` and `f64` programs are exactly what they were.

use super::{Inst, InstId, InstOrigin, Instr, Kernel, Store};
use crate::types::DType;
use std::borrow::Cow;

/// `k` with its 16-bit values computed in `f32`: borrowed when it has none (or is already
/// widened in effect), else [`widen`]ed.
pub fn widened(k: &Kernel) -> Cow<'_, Kernel> {
    if k.body.iter().chain(&k.epilogue).any(|i| i.dtype.is_half()) {
        Cow::Owned(widen(k.clone()))
    } else {
        Cow::Borrowed(k)
    }
}

/// Rewrites `k` so that its 16-bit values are computed in `f32` (see the module doc).
pub fn widen(k: Kernel) -> Kernel {
    let has_half = k.body.iter().chain(&k.epilogue).any(|i| i.dtype.is_half());
    if !has_half {
        return k;
    }
    let (mut body, body_map) = widen_list(&k.body);
    let (mut epilogue, epi_map) = widen_list(&k.epilogue);
    let value = k.value.map(|v| body.as_f32(body_map[v]));
    let reduces = k.reduce.is_some();
    let stores = k
        .stores
        .iter()
        .map(|s| {
            let (list, map, old) = if reduces {
                (&mut epilogue, &epi_map, &k.epilogue)
            } else {
                (&mut body, &body_map, &k.body)
            };
            let dtype = old[s.value].dtype;
            Store { buf: s.buf, value: list.as_dtype(map[s.value], dtype) }
        })
        .collect();
    let origins = k
        .origins
        .iter()
        .map(|o| {
            let map = if o.site.epilogue { &epi_map } else { &body_map };
            let mut site = o.site;
            site.inst = map[site.inst];
            InstOrigin { site, node: o.node }
        })
        .collect();
    Kernel { body: body.list, value, epilogue: epilogue.list, stores, origins, ..k }
}

/// An element program being rebuilt, with the `f32` widening of each 16-bit value made so far.
struct List {
    list: Vec<Instr>,
    widened: Vec<Option<InstId>>,
}

impl List {
    fn push(&mut self, inst: Inst, dtype: DType) -> InstId {
        self.list.push(Instr { inst, dtype });
        self.widened.push(None);
        self.list.len() - 1
    }

    /// `id` as an `f32` value: itself, or a (shared) cast of a 16-bit value to `f32`.
    fn as_f32(&mut self, id: InstId) -> InstId {
        if !self.list[id].dtype.is_half() {
            return id;
        }
        if let Some(w) = self.widened[id] {
            return w;
        }
        let w = self.push(Inst::Cast(id), DType::F32);
        self.widened[id] = Some(w);
        w
    }

    /// `id` as a value of `dtype`: itself, or a rounding cast of its `f32` value.
    fn as_dtype(&mut self, id: InstId, dtype: DType) -> InstId {
        if self.list[id].dtype == dtype {
            id
        } else {
            self.push(Inst::Cast(id), dtype)
        }
    }
}

/// Rewrites one element program; returns it and the new position of each old instruction.
fn widen_list(old: &[Instr]) -> (List, Vec<InstId>) {
    let mut out = List { list: Vec::with_capacity(old.len()), widened: Vec::with_capacity(old.len()) };
    let mut map: Vec<InstId> = Vec::with_capacity(old.len());
    for instr in old {
        let d = instr.dtype;
        let wide = d.compute();
        let new = match &instr.inst {
            Inst::Load { .. } | Inst::Const(_) => out.push(instr.inst.clone(), d),
            Inst::Cast(a) => {
                // Through `f32` either way, so the only conversions left are 16-bit to `f32`
                // (exact) and `f32` to 16-bit (rounding).
                let a = map[*a];
                let a = if d.is_half() { out.as_dtype(a, DType::F32) } else { out.as_f32(a) };
                out.as_dtype(a, d)
            }
            Inst::Iota { .. } | Inst::Rand { .. } => {
                let v = out.push(instr.inst.clone(), wide);
                out.as_dtype(v, d)
            }
            Inst::Unary(op, a) => {
                let a = out.as_f32(map[*a]);
                out.push(Inst::Unary(*op, a), wide)
            }
            Inst::Binary(op, a, b) => {
                let a = out.as_f32(map[*a]);
                let b = out.as_f32(map[*b]);
                out.push(Inst::Binary(*op, a, b), wide)
            }
            Inst::Where(c, a, b) => {
                let c = map[*c];
                let a = out.as_f32(map[*a]);
                let b = out.as_f32(map[*b]);
                out.push(Inst::Where(c, a, b), wide)
            }
            Inst::Acc | Inst::AccValue => out.push(instr.inst.clone(), wide),
        };
        map.push(new);
    }
    (out, map)
}
