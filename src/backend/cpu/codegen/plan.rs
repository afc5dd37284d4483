//! The loop plan of a kernel: validation, the canonical iteration space, and the choice of
//! loop shape (scalar, vector rows, column accumulation).
//!
//! Everything here is plain Rust over the kernel IR; no CLIF. The plan keeps three facts true
//! for the emitter:
//!
//! * every index map (loads, iota, rand, stores) is over the same canonical dims, so one
//!   point (one index per dim) evaluates any of them;
//! * every load reads inside its buffer at every point of the space (checked here, so the
//!   generated code cannot read or write out of bounds);
//! * the canonical space has at least one kept dim, the first of which is the outer dim the
//!   runtime splits over threads.

use super::CodegenError;
use tenjit_ir::kernel::{BufferDecl, Combine, IndexMap, Inst, Instr, Kernel};
use tenjit_ir::{ArgOp, DType, ReduceOp};

/// An affine index over the canonical dims: `offset + Σ strides[d] * i[d]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct Map {
    pub offset: i64,
    pub strides: Vec<i64>,
    /// Where the size table holds its offset and strides (see `sizes`): the `j`-th map of a
    /// plan of `n` dims at `n + j * (n + 1)`, after the `n` extents.
    pub slot: usize,
}

/// Which element program an instruction belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Prog {
    Body,
    Epilogue,
}

/// How a reduction's loops are arranged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Shape {
    /// Elementwise: the last dim is the row loop (vectorized with `lanes` when `Some`).
    Elementwise { lanes: Option<usize> },
    /// Reduction with the innermost reduced dim as the row loop, accumulating into registers.
    Inner { lanes: Option<usize> },
    /// Reduction with the last kept dim as the row loop, accumulating into a scratch row over
    /// all reduced dims (column sums).
    Columns { lanes: usize },
}

/// A validated kernel in canonical form.
#[derive(Debug)]
pub(super) struct Plan<'k> {
    pub kernel: &'k Kernel,
    /// Canonical dims: size-1 dims dropped, adjacent compatible dims merged.
    pub dims: Vec<usize>,
    /// Whether each canonical dim is reduced.
    pub reduced: Vec<bool>,
    /// The index map of each body instruction that has one.
    pub body_maps: Vec<Option<Map>>,
    /// The index map of each epilogue instruction that has one (stride 0 on reduced dims).
    pub epi_maps: Vec<Option<Map>>,
    /// Row-major position in the output (stride 0 on reduced dims).
    pub store_map: Map,
    /// The output has no elements: the function does nothing.
    pub empty: bool,
    /// A reduction over no elements: every output point sees the identity.
    pub empty_reduce: bool,
    /// The loop shape.
    pub shape: Shape,
}

impl Plan<'_> {
    /// The outer dim: the first kept dim.
    pub fn outer(&self) -> usize {
        self.reduced.iter().position(|&r| !r).unwrap_or(0)
    }

    /// Kept dims in order.
    pub fn kept(&self) -> Vec<usize> {
        (0..self.dims.len()).filter(|&d| !self.reduced[d]).collect()
    }

    /// Reduced dims in order.
    pub fn reduced_dims(&self) -> Vec<usize> {
        (0..self.dims.len()).filter(|&d| self.reduced[d]).collect()
    }

    /// The size of the outer dim (`0` when the output is empty).
    pub fn outer_len(&self) -> usize {
        if self.empty {
            0
        } else {
            self.dims[self.outer()]
        }
    }

    /// The program and its maps.
    pub fn prog(&self, p: Prog) -> (&[Instr], &[Option<Map>]) {
        match p {
            Prog::Body => (&self.kernel.body, &self.body_maps),
            Prog::Epilogue => (&self.kernel.epilogue, &self.epi_maps),
        }
    }

    /// The reduced value's dtype, for a reduction.
    pub fn value_dtype(&self) -> Option<DType> {
        self.kernel.value.map(|v| self.kernel.body[v].dtype)
    }

    /// The arg op of an index-of-extremum reduction.
    pub fn arg(&self) -> Option<ArgOp> {
        self.kernel.reduce.as_ref().and_then(|r| r.op.arg())
    }
}

/// Vector lanes of a dtype in a 128-bit register (`None` for bool, which lives in masks).
pub(super) fn lanes_of(d: DType) -> Option<usize> {
    match d {
        // In `f32` registers (16-bit only in memory; f16's conversions keep its rows scalar).
        DType::F16 | DType::BF16 | DType::F32 | DType::I32 => Some(4),
        DType::F64 | DType::I64 => Some(2),
        DType::Bool => None,
    }
}

/// The accumulator dtype of a reduction: `f32` sums and products accumulate in `f64`.
pub(super) fn acc_dtype(op: ReduceOp, d: DType) -> DType {
    match (op, d) {
        (ReduceOp::Sum | ReduceOp::Prod, DType::F32) => DType::F64,
        (ReduceOp::Sum | ReduceOp::Prod | ReduceOp::Max | ReduceOp::Min, _) => d,
    }
}

fn invalid(k: &Kernel, message: String) -> CodegenError {
    CodegenError::Invalid { kernel: k.name.clone(), message }
}

/// Checks operand references and dtypes of one element program.
fn check_prog(
    k: &Kernel,
    prog: &[Instr],
    epilogue: bool,
    buffers: &[BufferDecl],
    rank: usize,
) -> Result<(), CodegenError> {
    let name = if epilogue { "epilogue" } else { "body" };
    for (i, ins) in prog.iter().enumerate() {
        let err = |m: String| invalid(k, format!("{name} instruction {i}: {m}"));
        let arg = |a: usize| -> Result<DType, CodegenError> {
            if a < i {
                Ok(prog[a].dtype)
            } else {
                Err(err(format!("operand {a} is not an earlier instruction")))
            }
        };
        let check_map = |m: &IndexMap| {
            if m.strides.len() == rank {
                Ok(())
            } else {
                Err(err(format!("index map has {} strides for rank {rank}", m.strides.len())))
            }
        };
        match &ins.inst {
            Inst::Load { buf, index } => {
                let decl = buffers.get(*buf).ok_or_else(|| err(format!("no buffer {buf}")))?;
                if decl.ty.dtype != ins.dtype {
                    return Err(err(format!("loads {} from a {} buffer", ins.dtype, decl.ty.dtype)));
                }
                check_map(index)?;
            }
            Inst::Const(_) => {}
            Inst::Iota { index } => check_map(index)?,
            Inst::Rand { seed, offset, counter } => {
                if !ins.dtype.is_float() {
                    return Err(err(format!("rand of {}", ins.dtype)));
                }
                for w in [*seed, *offset] {
                    if arg(w)? != DType::I64 || !uniform(prog, w) {
                        return Err(err(format!("rand operand {w} is not a uniform i64 value")));
                    }
                }
                check_map(counter)?;
            }
            Inst::Unary(op, a) => {
                let t = arg(*a)?;
                if t != ins.dtype || !op.spec().accepts.admits(t) {
                    return Err(err(format!("{} of {t} gives {}", op.spec().name, ins.dtype)));
                }
            }
            Inst::Binary(op, a, b) => {
                let (ta, tb) = (arg(*a)?, arg(*b)?);
                let spec = op.spec();
                let result = match spec.kind {
                    tenjit_ir::ops::BinaryKind::Arith => ta,
                    tenjit_ir::ops::BinaryKind::Compare => DType::Bool,
                };
                if ta != tb || !spec.accepts.admits(ta) || result != ins.dtype {
                    return Err(err(format!("{} of {ta} and {tb} gives {}", spec.name, ins.dtype)));
                }
            }
            Inst::Where(c, a, b) => {
                let (tc, ta, tb) = (arg(*c)?, arg(*a)?, arg(*b)?);
                if tc != DType::Bool || ta != tb || ta != ins.dtype {
                    return Err(err(format!("where of {tc}, {ta}, {tb} gives {}", ins.dtype)));
                }
            }
            Inst::Cast(a) => {
                arg(*a)?;
            }
            Inst::Acc | Inst::AccValue => {
                let value = k.value.and_then(|v| k.body.get(v)).map(|v| v.dtype);
                let arg = k.reduce.as_ref().and_then(|r| r.op.arg()).is_some();
                let want = match (&ins.inst, arg) {
                    (Inst::Acc, true) => Some(DType::I64),
                    (Inst::Acc, false) | (Inst::AccValue, true) => value,
                    _ => None,
                };
                if !epilogue || want != Some(ins.dtype) {
                    return Err(err("acc outside a reduction's epilogue, or of the wrong dtype".into()));
                }
            }
        }
    }
    Ok(())
}

/// Whether instruction `i` of `prog` is the same at every point of the space: it reads no
/// index map with a nonzero stride, nor the reduced value.
fn uniform(prog: &[Instr], i: usize) -> bool {
    let mut seen = vec![false; i + 1];
    let mut stack = vec![i];
    while let Some(j) = stack.pop() {
        if std::mem::replace(&mut seen[j], true) {
            continue;
        }
        let fixed = match &prog[j].inst {
            Inst::Load { index, .. } | Inst::Iota { index } | Inst::Rand { counter: index, .. } => {
                index.strides.iter().all(|&s| s == 0)
            }
            Inst::Acc | Inst::AccValue => false,
            Inst::Const(_) | Inst::Unary(..) | Inst::Binary(..) | Inst::Where(..) | Inst::Cast(_) => true,
        };
        if !fixed {
            return false;
        }
        stack.extend(prog[j].inst.operands().into_iter().filter(|&a| a < j));
    }
    true
}

/// The smallest and largest value of `m` over `space` (which has no zero dim), in `i128`.
fn map_range(m: &IndexMap, space: &[usize]) -> (i128, i128) {
    let (mut lo, mut hi) = (m.offset as i128, m.offset as i128);
    for (&s, &n) in m.strides.iter().zip(space) {
        let span = s as i128 * (n as i128 - 1);
        if span < 0 {
            lo += span;
        } else {
            hi += span;
        }
    }
    (lo, hi)
}

/// Checks that every load of `prog` stays inside its buffer over `space`.
fn check_bounds(
    k: &Kernel,
    prog: &[Instr],
    buffers: &[BufferDecl],
    space: &[usize],
) -> Result<(), CodegenError> {
    if space.contains(&0) {
        return Ok(());
    }
    for (i, ins) in prog.iter().enumerate() {
        let map = match &ins.inst {
            Inst::Load { buf, index } => Some((buffers[*buf].ty.shape.numel() as i128, index)),
            Inst::Iota { index } | Inst::Rand { counter: index, .. } => {
                // Any value is fine; only its arithmetic must stay in i64.
                let (lo, hi) = map_range(index, space);
                if lo < i64::MIN as i128 || hi > i64::MAX as i128 {
                    return Err(invalid(k, format!("instruction {i}: index overflows i64")));
                }
                None
            }
            Inst::Const(_)
            | Inst::Unary(..)
            | Inst::Binary(..)
            | Inst::Where(..)
            | Inst::Cast(_)
            | Inst::Acc
            | Inst::AccValue => None,
        };
        if let Some((numel, m)) = map {
            let (lo, hi) = map_range(m, space);
            if lo < 0 || hi >= numel {
                return Err(invalid(
                    k,
                    format!("instruction {i} reads elements {lo}..={hi} of a buffer of {numel}"),
                ));
            }
        }
    }
    Ok(())
}

/// One dim of the space while canonicalizing: its size, whether it is reduced, and its
/// stride in every map (body maps, epilogue maps, then the store map).
struct Dim {
    size: usize,
    reduced: bool,
    strides: Vec<i64>,
}

/// Validates `k` and builds its plan.
pub(super) fn plan<'k>(k: &'k Kernel, buffers: &[BufferDecl]) -> Result<Plan<'k>, CodegenError> {
    let rank = k.space.len();
    let red_axes: Vec<usize> = k.reduce.as_ref().map(|r| r.axes.clone()).unwrap_or_default();
    for (i, &a) in red_axes.iter().enumerate() {
        if a >= rank || (i > 0 && red_axes[i - 1] >= a) {
            return Err(invalid(k, format!("reduced axes {red_axes:?} for rank {rank}")));
        }
    }
    let is_red = |d: usize| red_axes.contains(&d);
    let out_space: Vec<usize> = (0..rank).filter(|&d| !is_red(d)).map(|d| k.space[d]).collect();
    let red_space: Vec<usize> = red_axes.iter().map(|&d| k.space[d]).collect();
    let out_n: u128 = out_space.iter().map(|&n| n as u128).product();
    let red_n: u128 = red_space.iter().map(|&n| n as u128).product();
    if out_n.checked_mul(red_n.max(1)).is_none_or(|n| n > i64::MAX as u128) {
        return Err(invalid(k, format!("space {:?} is too large", k.space)));
    }

    check_prog(k, &k.body, false, buffers, rank)?;
    match &k.reduce {
        None => {
            if !k.epilogue.is_empty() || k.value.is_some() {
                return Err(invalid(k, "an elementwise kernel with an epilogue or a value".into()));
            }
        }
        Some(r) => {
            let v = k
                .value
                .filter(|&v| v < k.body.len())
                .ok_or_else(|| invalid(k, "a reduction without a valid value instruction".into()))?;
            let d = k.body[v].dtype;
            if d == DType::Bool {
                return Err(invalid(k, format!("{} of bool", r.op.name())));
            }
            let identity = match r.op {
                Combine::Reduce(op) => op.identity(),
                Combine::Arg(_) => None,
            };
            if matches!(r.op, Combine::Arg(_)) && r.axes.len() != 1 {
                return Err(invalid(k, format!("{} over {} axes", r.op.name(), r.axes.len())));
            }
            if identity.is_none() && red_n == 0 && out_n > 0 {
                return Err(invalid(k, format!("{} over an empty axis has no identity", r.op.name())));
            }
        }
    }
    check_prog(k, &k.epilogue, true, buffers, out_space.len())?;
    let stored = if k.reduce.is_some() { &k.epilogue } else { &k.body };
    for s in &k.stores {
        let decl = buffers.get(s.buf).ok_or_else(|| invalid(k, format!("store to no buffer {}", s.buf)))?;
        let ins =
            stored.get(s.value).ok_or_else(|| invalid(k, format!("store of no instruction {}", s.value)))?;
        if decl.ty.dtype != ins.dtype || decl.ty.shape.numel() as u128 != out_n {
            return Err(invalid(k, format!("store of {} over {out_n} points into {}", ins.dtype, decl.ty)));
        }
    }
    let full_space = if red_n == 0 { out_space.clone() } else { k.space.clone() };
    if red_n > 0 {
        check_bounds(k, &k.body, buffers, &full_space)?;
    }
    check_bounds(k, &k.epilogue, buffers, &out_space)?;

    let empty = out_n == 0;
    let empty_reduce = k.reduce.is_some() && red_n == 0;

    // Every map, expressed over the full space: body maps as they are, epilogue maps and the
    // store map with stride 0 on reduced dims.
    let body_ix: Vec<Option<&IndexMap>> = k.body.iter().map(|i| i.inst.index()).collect();
    let epi_ix: Vec<Option<&IndexMap>> = k.epilogue.iter().map(|i| i.inst.index()).collect();
    let mut out_strides = vec![0i64; out_space.len()];
    let mut acc = 1i64;
    for (d, &n) in out_space.iter().enumerate().rev() {
        out_strides[d] = acc;
        acc = acc.saturating_mul(n as i64);
    }
    let mut dims: Vec<Dim> = Vec::with_capacity(rank);
    let mut out_d = 0;
    for d in 0..rank {
        let reduced = is_red(d);
        let mut strides = Vec::new();
        for m in &body_ix {
            strides.extend(m.map(|m| m.strides[d]));
        }
        for m in &epi_ix {
            strides.extend(m.map(|m| if reduced { 0 } else { m.strides[out_d] }));
        }
        strides.push(if reduced { 0 } else { out_strides[out_d] });
        if !reduced {
            out_d += 1;
        }
        dims.push(Dim { size: k.space[d], reduced, strides });
    }
    if empty_reduce {
        dims.retain(|d| !d.reduced);
    }
    // Size-1 dims contribute nothing.
    dims.retain(|d| d.size != 1);
    // Merge neighbours of one kind whose strides nest in every map.
    let mut merged: Vec<Dim> = Vec::with_capacity(dims.len());
    for d in dims {
        if let Some(prev) = merged.last_mut() {
            let nests = prev.reduced == d.reduced
                && prev.strides.iter().zip(&d.strides).all(|(&p, &s)| p == s.wrapping_mul(d.size as i64));
            if nests {
                prev.size *= d.size;
                prev.strides = d.strides;
                continue;
            }
        }
        merged.push(d);
    }
    if merged.iter().all(|d| d.reduced) {
        let n = body_ix.iter().flatten().count() + epi_ix.iter().flatten().count() + 1;
        merged.insert(0, Dim { size: 1, reduced: false, strides: vec![0; n] });
    }

    let n = merged.len();
    let column = |j: usize| Map {
        offset: 0,
        strides: merged.iter().map(|d| d.strides[j]).collect(),
        slot: n + j * (n + 1),
    };
    let mut j = 0;
    let mut maps_of = |ix: &[Option<&IndexMap>]| -> Vec<Option<Map>> {
        ix.iter()
            .map(|m| {
                m.map(|m| {
                    let mut map = column(j);
                    map.offset = m.offset;
                    j += 1;
                    map
                })
            })
            .collect()
    };
    let body_maps = maps_of(&body_ix);
    let epi_maps = maps_of(&epi_ix);
    let store_map = column(j);

    let mut p = Plan {
        kernel: k,
        dims: merged.iter().map(|d| d.size).collect(),
        reduced: merged.iter().map(|d| d.reduced).collect(),
        body_maps,
        epi_maps,
        store_map,
        empty,
        empty_reduce,
        shape: Shape::Elementwise { lanes: None },
    };
    p.shape = choose_shape(&p);
    Ok(p)
}

/// Which instructions of a program vary along `dim` (depend on an index map with a nonzero
/// stride there, or on the reduced value when `acc_varies`).
pub(super) fn variant(prog: &[Instr], maps: &[Option<Map>], dim: usize, acc_varies: bool) -> Vec<bool> {
    let mut v = vec![false; prog.len()];
    for (i, ins) in prog.iter().enumerate() {
        v[i] = match &ins.inst {
            Inst::Load { .. } | Inst::Iota { .. } => maps[i].as_ref().is_some_and(|m| m.strides[dim] != 0),
            Inst::Rand { seed, offset, .. } => {
                maps[i].as_ref().is_some_and(|m| m.strides[dim] != 0) || v[*seed] || v[*offset]
            }
            Inst::Const(_) => false,
            Inst::Unary(_, a) | Inst::Cast(a) => v[*a],
            Inst::Binary(_, a, b) => v[*a] || v[*b],
            Inst::Where(c, a, b) => v[*c] || v[*a] || v[*b],
            Inst::Acc | Inst::AccValue => acc_varies,
        };
    }
    v
}

/// The vector width for running the instructions of `prog` that vary along `dim` as vectors,
/// together with values of dtypes `extra` (stored or reduced values), or `None` when they
/// cannot: a varying load with a stride other than 1, a varying bool iota, or dtypes
/// of different lane counts.
pub(super) fn vector_lanes(
    prog: &[Instr],
    maps: &[Option<Map>],
    dim: usize,
    extra: &[DType],
) -> Option<usize> {
    let var = variant(prog, maps, dim, true);
    let mut lanes: Option<usize> = None;
    let mut want = |n: usize| -> bool {
        match lanes {
            Some(l) => l == n,
            None => {
                lanes = Some(n);
                true
            }
        }
    };
    for (i, ins) in prog.iter().enumerate() {
        if !var[i] {
            continue;
        }
        match &ins.inst {
            Inst::Load { .. } => {
                if maps[i].as_ref().is_none_or(|m| m.strides[dim] != 1) || ins.dtype == DType::F16 {
                    return None;
                }
            }
            Inst::Iota { .. } | Inst::Rand { .. } => {
                if ins.dtype == DType::Bool {
                    return None;
                }
            }
            // A conversion to or from f16 is a call: scalar. bf16's are vector integer ops.
            Inst::Cast(a) => {
                if ins.dtype == DType::F16 || prog[*a].dtype == DType::F16 {
                    return None;
                }
            }
            Inst::Const(_)
            | Inst::Unary(..)
            | Inst::Binary(..)
            | Inst::Where(..)
            | Inst::Acc
            | Inst::AccValue => {}
        }
        if let Some(n) = lanes_of(ins.dtype) {
            if !want(n) {
                return None;
            }
        }
    }
    for &d in extra {
        if !want(lanes_of(d)?) {
            return None;
        }
    }
    Some(lanes.unwrap_or(4))
}

/// Row loops shorter than this prefer column accumulation when both shapes apply.
const SHORT_ROW: usize = 16;

fn choose_shape(p: &Plan) -> Shape {
    let k = p.kernel;
    let last = p.dims.len() - 1;
    let stored: Vec<DType> = {
        let prog = if k.reduce.is_some() { &k.epilogue } else { &k.body };
        k.stores.iter().map(|s| prog[s.value].dtype).collect()
    };
    let Some(r) = &k.reduce else {
        let lanes = if stored.iter().any(|&d| d == DType::Bool || d == DType::F16) {
            None
        } else {
            vector_lanes(&k.body, &p.body_maps, last, &stored)
        };
        return Shape::Elementwise { lanes };
    };
    let vd = p.value_dtype().unwrap_or(DType::F32);
    if p.empty_reduce || vd == DType::Bool || r.axes.is_empty() {
        return Shape::Inner { lanes: None };
    }
    let red = p.reduced_dims();
    if r.op.arg().is_some() {
        // Index-of-extremum reductions keep per-lane best values and indices in registers: the
        // inner shape only, vectorized when the reduced dim is walked with stride 1 (and, for
        // 4-lane rows, its indices fit the `i32` lanes).
        let lanes = red.last().and_then(|&d| {
            let l = vector_lanes(&k.body, &p.body_maps, d, &[vd])?;
            (l == 2 || p.dims[d] < i32::MAX as usize).then_some(l)
        });
        return Shape::Inner { lanes };
    }
    let lk = p.kept().last().copied().unwrap_or(0);
    let inner = red.last().and_then(|&d| vector_lanes(&k.body, &p.body_maps, d, &[vd]).map(|l| (d, l)));
    let columns =
        if !red.is_empty() && p.dims[lk] > 1 { vector_lanes(&k.body, &p.body_maps, lk, &[vd]) } else { None };
    match (inner, columns) {
        (Some((d, l)), Some(c)) => {
            if p.dims[d] >= SHORT_ROW {
                Shape::Inner { lanes: Some(l) }
            } else {
                Shape::Columns { lanes: c }
            }
        }
        (Some((_, l)), None) => Shape::Inner { lanes: Some(l) },
        (None, Some(c)) => Shape::Columns { lanes: c },
        (None, None) => Shape::Inner { lanes: None },
    }
}
