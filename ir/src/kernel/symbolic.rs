//! Programs lowered once for every size: a symbolic graph's [`SymProgram`], and its
//! [`instantiate`]ion at one binding of the symbols.
//!
//! [`lower_symbolic`](super::lower::lower_symbolic) lowers a symbolic graph with the fusion
//! decisions of [`lower`](super::lower::lower), made on the graph's dims as expressions rather
//! than on their values: a dim is 1 only when its expression is the constant 1, two dims are
//! equal only when their expressions are, a reshape is a view only when the strides it needs are
//! proven (equal expressions, never a coincidence of the hints). Every size the program holds
//! (iteration spaces, strides and offsets of index maps, matrix product extents, buffer shapes,
//! the value of a `size` op) keeps its expression beside its value at the hints, so the program
//! is valid for every binding of the symbols, and [`instantiate`] evaluates the expressions for
//! one binding into the concrete [`Program`] a backend compiles: no pass, no fusion decision,
//! no kernel built again. What depends on the values themselves runs there, per binding: the
//! unit axes a binding makes ([`squeeze`](super::squeeze)) and the row groups
//! ([`schedule`](super::schedule)), both cheap walks over the steps.
//!
//! A loop whose body is symbolic (its sizes over the graph's symbols) has its body lowered
//! symbolically too, into a [`SymStep::Loop`]; [`instantiate`] instantiates the body at the same
//! binding, so the concrete program's loop step holds the body's program at these sizes.
//!
//! A `size` op is lowered as an `iota` whose index map is constant (all strides 0) with the
//! size's expression as its offset: the integer value converted to the instruction's dtype,
//! which is what the `size` op means. It stays an `iota` in every instance (where
//! [`lower`](super::lower::lower) of the bound graph has a constant): its value is then an
//! offset, which a backend reads at run time like any other, so one machine-code kernel
//! serves every size.

use super::{IndexMap, Program, Step, SymIndex};
use crate::sym::{Bindings, Dim, SymExpr};
use crate::types::{Shape, TensorType};

/// A program valid for every binding of a graph's symbols: the program at the graph's hints,
/// with each size's expression (in its index maps' [`IndexMap::sym`], and per step in `steps`).
/// Unit axes are not squeezed and steps not grouped: [`instantiate`] does both per binding.
#[derive(Clone, Debug, PartialEq)]
pub struct SymProgram {
    /// The program at the hints, index maps carrying their expressions.
    pub program: Program,
    /// The expressions of each step's own sizes, one entry per step of `program`.
    pub steps: Vec<SymStep>,
}

/// The sizes of one step of a [`SymProgram`] as expressions.
#[derive(Clone, Debug, PartialEq)]
pub enum SymStep {
    /// A kernel's iteration space.
    Kernel {
        /// One dim per axis of the space.
        space: Vec<Dim>,
    },
    /// A matrix product's extents and operands.
    Matmul {
        /// Batch dims.
        batch: Vec<Dim>,
        /// Rows of the left operand and of the output.
        m: Dim,
        /// The contracted size.
        k: Dim,
        /// Columns of the right operand and of the output.
        n: Dim,
        /// The left operand's offset and strides (batch strides, then rows, then columns).
        a: SymIndex,
        /// The right operand's offset and strides.
        b: SymIndex,
    },
    /// A step whose sizes are its buffers' (a library routine; a loop whose body is concrete).
    Buffers,
    /// A loop whose body is symbolic: the body's program, instantiated with the graph's.
    Loop {
        /// The body's symbolic program (over the symbols of the graph holding the loop).
        body: Box<SymProgram>,
    },
}

/// Why a symbolic program does not instantiate at a binding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstantiateError {
    /// What failed, naming the size.
    pub reason: String,
}

impl std::fmt::Display for InstantiateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for InstantiateError {}

fn fail(reason: String) -> InstantiateError {
    InstantiateError { reason }
}

/// The value of `e` under `values` as a signed offset or stride.
fn signed(e: &SymExpr, values: &Bindings) -> Result<i64, InstantiateError> {
    e.eval_i64(values)
        .ok_or_else(|| fail(format!("`{e}` has no value at this binding (unbound or out of range)")))
}

/// The value of dim `d` under `values`.
fn size(d: &Dim, values: &Bindings) -> Result<usize, InstantiateError> {
    d.eval(values).and_then(|v| usize::try_from(v).ok()).ok_or_else(|| {
        fail(format!("dim `{d}` has no size at this binding (unbound, negative or too large)"))
    })
}

fn sizes(dims: &[Dim], values: &Bindings) -> Result<Vec<usize>, InstantiateError> {
    dims.iter().map(|d| size(d, values)).collect()
}

/// Evaluates a map's expressions into its offset and strides, and drops them.
fn bind_map(map: &mut IndexMap, values: &Bindings) -> Result<(), InstantiateError> {
    if let Some(sym) = map.sym.take() {
        map.offset = signed(&sym.offset, values)?;
        map.strides = sym.strides.iter().map(|s| signed(s, values)).collect::<Result<_, _>>()?;
    }
    Ok(())
}

fn bind_type(ty: &mut TensorType, values: &Bindings) -> Result<(), InstantiateError> {
    if let Some(dims) = ty.shape.sym_dims_ref() {
        ty.shape = Shape::new(&sizes(dims, values)?);
    }
    Ok(())
}

/// The concrete program of `sym` at `values` (one value per symbol of the graph it was lowered
/// from; the caller checks the values against the symbols' ranges and the graph's guards, as
/// [`crate::Graph::bind`] does): every size evaluated, unit axes squeezed, steps grouped.
pub fn instantiate(sym: &SymProgram, values: &Bindings) -> Result<Program, InstantiateError> {
    let mut p = sym.program.clone();
    if p.steps.len() != sym.steps.len() {
        return Err(fail(format!("{} steps with {} symbolic entries", p.steps.len(), sym.steps.len())));
    }
    for b in &mut p.buffers {
        bind_type(&mut b.ty, values)?;
    }
    for (step, s) in p.steps.iter_mut().zip(&sym.steps) {
        match (step, s) {
            (Step::Kernel(k), SymStep::Kernel { space }) => {
                k.space = sizes(space, values)?;
                for instr in k.body.iter_mut().chain(k.epilogue.iter_mut()) {
                    if let Some(map) = instr.inst.index_mut() {
                        bind_map(map, values)?;
                    }
                }
            }
            (Step::Matmul(mm), SymStep::Matmul { batch, m, k, n, a, b }) => {
                mm.batch = sizes(batch, values)?;
                (mm.m, mm.k, mm.n) = (size(m, values)?, size(k, values)?, size(n, values)?);
                for (op, s) in [(&mut mm.a, a), (&mut mm.b, b)] {
                    let strides =
                        s.strides.iter().map(|e| signed(e, values)).collect::<Result<Vec<_>, _>>()?;
                    let r = strides.len();
                    if r < 2 {
                        return Err(fail(format!("matmul operand with {r} strides")));
                    }
                    op.offset = signed(&s.offset, values)?;
                    op.batch_strides = strides[..r - 2].to_vec();
                    (op.row_stride, op.col_stride) = (strides[r - 2], strides[r - 1]);
                }
            }
            (Step::Op(_) | Step::Loop(_), SymStep::Buffers) => {}
            (Step::Loop(l), SymStep::Loop { body }) => l.body = instantiate(body, values)?,
            (step, s) => {
                let kind = match step {
                    Step::Kernel(_) => "kernel",
                    Step::Matmul(_) => "matmul",
                    Step::Op(_) => "library",
                    Step::Loop(_) => "loop",
                };
                return Err(fail(format!("a {kind} step with symbolic sizes {s:?}")));
            }
        }
    }
    super::squeeze::squeeze(&mut p);
    super::schedule::schedule_with(&mut p, false);
    Ok(p)
}

/// Whether `d` is the constant 1.
pub(crate) fn is_one(d: &SymExpr) -> bool {
    d.as_const() == Some(1)
}

/// [`crate::types::view_strides`] over expressions: the strides a view of dims `new` has over
/// elements laid out with dims `old` and strides `stride`, for every binding of the symbols, or
/// `None` when that is not proven. The dims are grouped into chunks of equal products, each
/// chunk of `old` contiguous; products and strides are compared as expressions, so a chunk
/// that is contiguous only for some sizes is no view (the lowering then materializes the
/// reshape's operand, which is always correct).
pub(crate) fn sym_view_strides(old: &[SymExpr], stride: &[SymExpr], new: &[SymExpr]) -> Option<Vec<SymExpr>> {
    if old.is_empty() {
        return Some(vec![SymExpr::from(1); new.len()]);
    }
    let mut new_stride = vec![SymExpr::default(); new.len()];
    let mut view_d = new.len() as isize - 1;
    let mut chunk_base_stride = stride[old.len() - 1].clone();
    let (mut tensor_numel, mut view_numel) = (SymExpr::from(1), SymExpr::from(1));
    for tensor_d in (0..old.len()).rev() {
        tensor_numel = tensor_numel.mul(&old[tensor_d]).ok()?;
        let chunk_ends = tensor_d == 0
            || (!is_one(&old[tensor_d - 1])
                && stride[tensor_d - 1] != tensor_numel.mul(&chunk_base_stride).ok()?);
        if chunk_ends {
            while view_d >= 0 && (view_numel != tensor_numel || is_one(&new[view_d as usize])) {
                new_stride[view_d as usize] = view_numel.mul(&chunk_base_stride).ok()?;
                view_numel = view_numel.mul(&new[view_d as usize]).ok()?;
                view_d -= 1;
            }
            if view_numel != tensor_numel {
                return None;
            }
            if tensor_d > 0 {
                chunk_base_stride = stride[tensor_d - 1].clone();
                tensor_numel = SymExpr::from(1);
                view_numel = SymExpr::from(1);
            }
        }
    }
    (view_d == -1).then_some(new_stride)
}
