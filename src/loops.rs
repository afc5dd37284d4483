//! `fori_loop`: a counted loop whose body is traced once and compiled, with the whole loop, into
//! one program, like `jax.lax.fori_loop` with static bounds.
//!
//! [`fori_loop`] runs `body` once, on placeholder tensors of the carried values' types (as
//! [`crate::jit()`] runs its closure), and records the graph from the placeholders to the
//! body's results as the body of a `loop` op of the IR (`tenjit_ir::ops::LoopOp`). What the
//! body reads without computing it from the carried values (the tensors it captures, and
//! whatever it computes from them alone) is computed once, before the loop, and passed to
//! every trip as a loop-invariant input. The results are lazy tensors like any other, so a
//! loop composes with everything, inside [`crate::jit()`] and outside it; realizing them
//! compiles the whole loop into one program that runs the body `trips` times without
//! returning to the front end.
//!
//! **Sizes that vary.** A loop over tensors whose sizes change from call to call (the rows of
//! a data set) is compiled once per symbolic signature, as any other graph
//! ([`crate::runtime::dynamic`]): at the second size, or at once for dims marked dynamic
//! ([`Tensor::mark_dynamic`]), the body is made symbolic with the graph (its sizes expressions
//! of the graph's size symbols), lowered once and instantiated for each size. Inside a symbolic
//! trace ([`crate::jit()`] over marked dims), the body is traced over the trace's symbols
//! directly, so a jitted closure running a loop is traced once across sizes.
//!
//! As with `jit`, the body must not read values (`item`, `to_vec`, printing): its placeholders
//! hold no data. It may not draw random numbers yet (a clear error says so: draw them before
//! the loop and pass them in). Gradients work inside the body (an SGD step's `tenjit::grad`)
//! and through the loop, in reverse mode as JAX's (`tenjit_ir::autodiff::loops`), for loops
//! that carry floating-point values; a gradient through a loop carrying an integer is an
//! error.
//!
//! ```
//! use tenjit::prelude::*;
//! let x = tensor!([[1.0], [2.0], [3.0], [4.0]]);
//! let y = &x * 2.0;
//! // 100 SGD steps of linear regression as one compiled loop.
//! let out = tenjit::fori_loop(100, &[tensor!([[0.5]]), tensor!([0.0])], |p| {
//!     let (w, b) = (p[0].requires_grad_(), p[1].requires_grad_());
//!     let loss = (x.matmul(&w) + &b - &y).square().mean();
//!     let g = tenjit::grad(&[&loss], &[&w, &b]);
//!     vec![&w - &g[0] * 0.01, &b - &g[1] * 0.01]
//! });
//! assert!((out[0].item() - 2.0).abs() < 0.3);
//! ```

use crate::device::Device;
use crate::error::{Error, OrPanic, Result};
use crate::realize::Flat;
use crate::runtime::Value;
use crate::tensor::Tensor;
use std::panic::Location;
use std::sync::Arc;
use tenjit_ir::ops::{counter_type, Body, LoopOp};
use tenjit_ir::{Buffer, Graph, NodeId, Op, Scalar, TensorType};

/// Runs `body` `trips` times on the carried values, starting from `init`: each trip's results
/// are the next trip's carried values, and the last trip's are returned (with `trips == 0`,
/// `init`). The body must return as many values as it is given, each of the type it was given.
/// Panics with the error's message on failure (see [`try_fori_loop`]).
#[track_caller]
pub fn fori_loop<F>(trips: usize, init: &[Tensor], body: F) -> Vec<Tensor>
where
    F: Fn(&[Tensor]) -> Vec<Tensor>,
{
    try_fori_loop(trips, init, body).or_panic()
}

/// [`fori_loop`] as a `Result`: an error names the carried value whose type the body changed,
/// or says what else does not fit.
#[track_caller]
pub fn try_fori_loop<F>(trips: usize, init: &[Tensor], body: F) -> Result<Vec<Tensor>>
where
    F: Fn(&[Tensor]) -> Vec<Tensor>,
{
    build(trips, init, Location::caller(), &|_, carried| body(carried))
}

/// [`fori_loop`] whose body also takes the trip's number, an `i64[]` tensor counting from 0
/// (JAX's `fori_loop` passes it too).
#[track_caller]
pub fn fori_loop_i<F>(trips: usize, init: &[Tensor], body: F) -> Vec<Tensor>
where
    F: Fn(&Tensor, &[Tensor]) -> Vec<Tensor>,
{
    try_fori_loop_i(trips, init, body).or_panic()
}

/// [`fori_loop_i`] as a `Result`.
#[track_caller]
pub fn try_fori_loop_i<F>(trips: usize, init: &[Tensor], body: F) -> Result<Vec<Tensor>>
where
    F: Fn(&Tensor, &[Tensor]) -> Vec<Tensor>,
{
    build(trips, init, Location::caller(), &body)
}

/// Traces `body` on placeholders and builds the loop's result nodes.
fn build(
    trips: usize,
    init: &[Tensor],
    loc: &'static Location<'static>,
    body: &dyn Fn(&Tensor, &[Tensor]) -> Vec<Tensor>,
) -> Result<Vec<Tensor>> {
    let err = |message: String| Error::Op {
        op: "fori_loop",
        kind: crate::error::OpErrorKind::Argument,
        message,
        at: loc,
    };
    if init.is_empty() {
        return Err(err("the loop carries no value: give it at least one initial value".into()));
    }
    // A placeholder of a symbolic type (inside a symbolic trace, `crate::jit()`) holds zeros
    // of its size at the hints and keeps the type.
    let placeholder = |ty: &TensorType| {
        let concrete = TensorType { dtype: ty.dtype, shape: ty.shape.concrete() };
        let zeros = Buffer::full(&concrete, Scalar::Int(0).cast(ty.dtype));
        Tensor::from_value(Value::Host(Arc::new(zeros)), ty.clone(), Device::Cpu, loc)
    };
    let carried: Vec<Tensor> = init.iter().map(|t| placeholder(t.ty_unrecorded())).collect();
    let counter = placeholder(&counter_type());
    let draws = crate::tensor::random::draws_on_this_thread();
    let results = {
        // The placeholders hold no data: nothing may be realized while the body runs.
        let _tracing = crate::lazy::Tracing::new();
        body(&counter, &carried)
    };
    if crate::tensor::random::draws_on_this_thread() != draws {
        return Err(err(
            "the body draws random numbers (rand, randn, dropout, ...), which a loop does not support yet: \
             draw them before the loop and pass them in"
                .into(),
        ));
    }
    if results.len() != init.len() {
        return Err(err(format!(
            "the body takes {} carried value(s) but returns {}: it must return one new value for each",
            init.len(),
            results.len()
        )));
    }
    for (k, (before, after)) in init.iter().zip(&results).enumerate() {
        let (before, after) = (before.ty_unrecorded(), after.ty_unrecorded());
        if before != after {
            return Err(err(format!(
                "carried value {k} is {before} before the body and {after} after it: a carried value keeps its type"
            )));
        }
    }
    if trips == 0 {
        return Ok(init.to_vec());
    }
    let (graph, invariants) = body_graph(&carried, &counter, &results).map_err(err)?;
    let body = Body::new(graph).map_err(|e| Error::from_op_error(e, loc))?;
    let mut operands: Vec<&Tensor> = init.iter().collect();
    operands.extend(invariants.iter());
    (0..init.len())
        .map(|result| {
            let op = Op::Loop(LoopOp { body: body.clone(), trips, result });
            Tensor::from_op_named_at(op, &operands, "fori_loop", loc)
        })
        .collect()
}

/// The body graph from the placeholders `carried` and `counter` to `results`, and the
/// tensors of its invariant inputs, in order. A node the placeholders do not reach is an
/// invariant: computed once, outside the loop. Inside a symbolic trace, the body declares the
/// trace's size symbols, so its sizes are expressions of the graph's that holds the loop.
fn body_graph(
    carried: &[Tensor],
    counter: &Tensor,
    results: &[Tensor],
) -> std::result::Result<(Graph, Vec<Tensor>), String> {
    let roots: Vec<&Tensor> = results.iter().collect();
    let flat = Flat::walk(&roots, |t, _| !t.is_realized());
    let is_placeholder = |t: &Tensor| t.same_node(counter) || carried.iter().any(|c| c.same_node(t));
    // Whether each entry is computed in the body: what depends on a placeholder, the cheap
    // values (constants, `iota`, views and casts of them) that fuse into their users rather
    // than being materialized once as invariants, and views of invariants (a loop's operands
    // are dense buffers, so hoisting `x.t()` would copy `x` transposed before the loop and
    // make every trip read both; inside, the body reads `x` through the view).
    let mut inside = vec![false; flat.entries.len()];
    let mut cheap = vec![false; flat.entries.len()];
    // What depends on a placeholder: it changes from trip to trip.
    let mut variant = vec![false; flat.entries.len()];
    for (p, e) in flat.entries.iter().enumerate() {
        let (depends, is_cheap, is_view) = match &e.op {
            None => (is_placeholder(&e.tensor), false, false),
            Some((op, args)) => {
                let depends = args.iter().any(|&a| variant[a as usize]);
                let all_cheap = args.iter().all(|&a| cheap[a as usize]);
                match op {
                    Op::Const { .. } | Op::Size { .. } | Op::Iota { .. } => (depends, true, false),
                    Op::Cast { .. } => (depends, all_cheap, false),
                    Op::Reshape { .. } | Op::Expand { .. } | Op::Permute { .. } | Op::Slice { .. } => {
                        (depends, all_cheap, true)
                    }
                    Op::Input { .. }
                    | Op::Rand { .. }
                    | Op::Unary(_)
                    | Op::Binary(_)
                    | Op::Where
                    | Op::Reduce { .. }
                    | Op::ArgReduce { .. }
                    | Op::Pad { .. }
                    | Op::Concat { .. }
                    | Op::Matmul
                    | Op::Gather { .. }
                    | Op::ScatterAdd { .. }
                    | Op::Conv(_)
                    | Op::Pool(_)
                    | Op::Loop(_) => (depends, false, false),
                }
            }
        };
        variant[p] = depends;
        cheap[p] = is_cheap && !depends;
        inside[p] = depends || cheap[p] || is_view;
    }
    // What the body needs: its results, and the operands of what it computes; a needed value
    // not computed inside is an invariant input.
    let mut needed = vec![false; flat.entries.len()];
    for &r in &flat.roots {
        needed[r as usize] = true;
    }
    for (p, e) in flat.entries.iter().enumerate().rev() {
        if let (true, true, Some((_, args))) = (needed[p], inside[p], &e.op) {
            for &a in args {
                needed[a as usize] = true;
            }
        }
    }
    let invariant: Vec<bool> = (0..flat.entries.len()).map(|p| needed[p] && !inside[p]).collect();
    let mut graph = Graph::new("body");
    crate::tensor::symbolic::declare_in(&mut graph)?;
    let mut ids: Vec<Option<NodeId>> = vec![None; flat.entries.len()];
    for (k, c) in carried.iter().enumerate() {
        let id = graph.add_input(format!("c{k}"), c.ty_unrecorded().clone());
        if let Some(&p) = flat.index.get(&std::sync::Arc::as_ptr(&c.0)) {
            ids[p as usize] = Some(id);
        }
    }
    let mut invariants = Vec::new();
    for (p, e) in flat.entries.iter().enumerate() {
        if invariant[p] {
            ids[p] =
                Some(graph.add_input(format!("v{}", invariants.len()), e.tensor.ty_unrecorded().clone()));
            invariants.push(e.tensor.clone());
        }
    }
    let i = graph.add_input("i", counter_type());
    if let Some(&p) = flat.index.get(&std::sync::Arc::as_ptr(&counter.0)) {
        ids[p as usize] = Some(i);
    }
    for (p, e) in flat.entries.iter().enumerate() {
        if let (true, true, Some((op, args))) = (inside[p], needed[p], &e.op) {
            let args: Vec<NodeId> = args
                .iter()
                .map(|&a| ids[a as usize].expect("an operand is defined before its use"))
                .collect();
            let id = graph.add(op.clone(), &args).unwrap_or_else(|e| {
                panic!("tenjit bug: a node typed at creation no longer types in a loop body: {e}")
            });
            ids[p] = Some(id);
        }
    }
    graph.set_outputs(
        flat.roots.iter().map(|&r| ids[r as usize].expect("every result is in the body")).collect(),
    );
    Ok((graph, invariants))
}
