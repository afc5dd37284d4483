//! Symbolic tracing: a closure run on placeholders whose marked dims are size symbols, so that
//! its graph holds for every size of them and [`crate::jit`] traces it once (torch's SymInt
//! tracing, with the sizes only readable as their hints).
//!
//! While a trace is active on this thread, [`Tensor::build`](super::Tensor) types each node
//! by the IR's symbolic rules ([`tenjit_ir::Graph::type_op`]) over the trace's symbols,
//! collecting the guards they add (`B == 8` where a marked batch meets a fixed one). What the
//! rules do not see is Rust code that reads a size and computes with it: a slice bound, a
//! divisor, a loop count. So every public size accessor of a tensor with a symbolic dim
//! ([`Tensor::shape`](super::Tensor::shape), `size`, `numel`, `ty`, `ir_shape`,
//! `is_contiguous`) records the read, with its caller's location, and a trace that read a size
//! (or met an op the symbolic rules cannot type) is not replayed at other sizes: `jit` traces
//! again at each, as it would without marks. The library's own reads go through unrecorded
//! accessors only where the value read cannot change the graph at another size of 2 or more:
//! a check that the symbolic rules make again, or a choice that depends only on whether a
//! size is 1. Two reads are not recorded: a size parsed out of a tensor's `Debug` text, and one
//! read on another thread the closure starts (the trace is this thread's).

use std::cell::RefCell;
use std::panic::Location;
use tenjit_ir::sym::{Dim, Symbol};
use tenjit_ir::{Graph, Op, Shape, TensorType};

thread_local! {
    static TRACE: RefCell<Option<State>> = const { RefCell::new(None) };
}

/// The active trace's symbols and guards (a graph of no nodes), and why it cannot be
/// replayed, if it cannot.
struct State {
    types: Graph,
    taint: Option<String>,
}

/// An active symbolic trace on this thread, from [`begin`] until [`Trace::finish`] or drop
/// (which ends it, restoring any trace it interrupted).
pub(crate) struct Trace {
    outer: Option<State>,
    done: bool,
}

/// Starts a symbolic trace over `symbols` (each with its hint) on this thread.
pub(crate) fn begin(symbols: &[(Symbol, u64)]) -> Result<Trace, String> {
    let mut types = Graph::new("trace");
    for (s, hint) in symbols {
        types.declare_symbol(s.clone(), *hint).map_err(|e| e.to_string())?;
    }
    let outer = TRACE.with(|t| t.borrow_mut().replace(State { types, taint: None }));
    Ok(Trace { outer, done: false })
}

impl Trace {
    /// Ends the trace, returning why it holds only at its hints: the first size read (or op
    /// the symbolic rules could not type) it recorded; `None` if none.
    pub(crate) fn finish(mut self) -> Option<String> {
        self.done = true;
        let state = TRACE.with(|t| std::mem::replace(&mut *t.borrow_mut(), self.outer.take()));
        state.and_then(|s| s.taint)
    }
}

impl Drop for Trace {
    fn drop(&mut self) {
        if !self.done {
            TRACE.with(|t| *t.borrow_mut() = self.outer.take());
        }
    }
}

/// The type of `op` on `tys` by the rules over the symbols of the active trace; `None` when
/// no trace is active (the caller types it by [`Op::infer`]). An op the symbolic rules reject
/// (where its concrete rule may accept it) taints the trace and is `None` too.
pub(crate) fn type_of(op: &Op, tys: &[&TensorType]) -> Option<TensorType> {
    TRACE.with(|t| {
        let mut t = t.borrow_mut();
        let state = t.as_mut()?;
        match state.types.type_op(op, tys) {
            Ok(ty) => Some(ty),
            Err(e) => {
                state.taint.get_or_insert_with(|| format!("{} has no symbolic type here: {e}", op.name()));
                None
            }
        }
    })
}

/// Records that `what` read a symbolic size at `loc`: the active trace (if any) cannot be
/// replayed at other sizes.
pub(crate) fn record_read(what: &str, loc: &'static Location<'static>) {
    TRACE.with(|t| {
        if let Some(state) = t.borrow_mut().as_mut() {
            state.taint.get_or_insert_with(|| format!("`{what}` read a dynamic size at {loc}"));
        }
    });
}

/// The shape of `dims`, with their sizes at the active trace's hints; dims that are all
/// constants need no trace. An error names a dim over symbols no active trace binds.
pub(crate) fn shape_of(dims: Vec<Dim>) -> Result<Shape, String> {
    let constant: Option<Vec<usize>> = dims.iter().map(|d| d.as_const().map(|c| c as usize)).collect();
    if let Some(sizes) = constant {
        return Ok(Shape::new(&sizes));
    }
    TRACE.with(|t| {
        let t = t.borrow();
        let hints = t.as_ref().map(|s| s.types.hints());
        let sizes: Option<Vec<usize>> = dims.iter().map(|d| Some(d.eval(hints?)? as usize)).collect();
        let sizes = sizes.ok_or_else(|| format!("dims {dims:?} use symbols outside a symbolic trace"))?;
        Shape::symbolic(dims, &sizes)
    })
}

/// Declares the active trace's symbols, with their hints, in `g` (a graph the library builds
/// from traced nodes, such as the gradient pass's); nothing without an active trace.
pub(crate) fn declare_in(g: &mut Graph) -> Result<(), String> {
    TRACE.with(|t| {
        let t = t.borrow();
        let Some(state) = t.as_ref() else { return Ok(()) };
        for s in state.types.symbols().iter() {
            let hint = state.types.hints().get(&s.name).copied().unwrap_or(0);
            g.declare_symbol(s.clone(), hint).map_err(|e| e.to_string())?;
        }
        Ok(())
    })
}

/// The size of `dim` at the active trace's hints (its constant outside one); an error names a
/// dim over symbols no active trace binds.
pub(crate) fn hint_of(dim: &Dim) -> Result<u64, String> {
    shape_of(vec![dim.clone()]).map(|s| s.dims()[0] as u64)
}

/// `expr`'s value at the active trace's hints; `None` outside a trace for a nonconstant
/// expression.
pub(crate) fn eval_at_hints(expr: &tenjit_ir::sym::SymExpr) -> Option<i64> {
    if let Some(c) = expr.as_const() {
        return Some(c);
    }
    TRACE.with(|t| expr.eval_i64(t.borrow().as_ref()?.types.hints()))
}
