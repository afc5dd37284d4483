//! From lazy tensors to values: `trace` turns the DAG behind a set of tensors into an
//! [`ir::Graph`](tenjit_ir::Graph) whose inputs are the realized leaves it reaches, and
//! `realize` evaluates that graph and stores the values back in the nodes.
//!
//! Realized nodes drop their operands, so they are leaves for every later trace: the graph of
//! a loop that realizes each step stays the size of one step. Traversals are iterative, so
//! long chains cannot overflow the stack.

use crate::compile::Backend;
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use std::collections::HashMap;
use std::sync::Arc;
use tenjit_ir::{Buffer, Graph, NodeId};

/// What a trace produced: the graph, the buffers bound to its inputs and the graph node of
/// each root.
pub(crate) struct Traced {
    pub graph: Graph,
    pub inputs: Vec<Arc<Buffer>>,
    /// The tensor behind each input, in order.
    pub leaves: Vec<Tensor>,
}

/// Options of [`graph_with`].
#[derive(Clone, Copy, Debug)]
pub struct TraceOptions {
    /// Record each node's source location (printed as `; at file:line:col`).
    pub locations: bool,
}

impl Default for TraceOptions {
    fn default() -> TraceOptions {
        TraceOptions { locations: true }
    }
}

pub(crate) fn trace(roots: &[&Tensor], opts: TraceOptions) -> Traced {
    let mut graph = Graph::new("main");
    let mut inputs = Vec::new();
    let mut leaves = Vec::new();
    let mut ids: HashMap<*const crate::tensor::Node, NodeId> = HashMap::new();
    // Iterative post-order DFS: (tensor, operands snapshot once expanded).
    let mut stack: Vec<(Tensor, Option<Vec<Tensor>>)> =
        roots.iter().rev().map(|t| ((*t).clone(), None)).collect();
    while let Some((t, expanded)) = stack.pop() {
        let key = Arc::as_ptr(&t.0);
        if ids.contains_key(&key) {
            continue;
        }
        match expanded {
            None => {
                // Snapshot the operands before checking the value: a concurrent realization
                // sets the value before it clears the operands, so if no value is set after
                // the snapshot, the snapshot is complete.
                let args = t.0.inputs.lock().unwrap_or_else(|p| p.into_inner()).clone();
                if let Some(buf) = t.value() {
                    let id = graph.add_input(format!("in{}", inputs.len()), buf.ty());
                    inputs.push(buf.clone());
                    leaves.push(t.clone());
                    ids.insert(key, id);
                    continue;
                }
                let pending: Vec<Tensor> =
                    args.iter().filter(|a| !ids.contains_key(&Arc::as_ptr(&a.0))).cloned().collect();
                stack.push((t, Some(args)));
                for a in pending.into_iter().rev() {
                    stack.push((a, None));
                }
            }
            Some(args) => {
                let op = t.0.op.clone().expect("a node without a value has an op");
                let arg_ids: Vec<NodeId> = args.iter().map(|a| ids[&Arc::as_ptr(&a.0)]).collect();
                let loc = opts.locations.then(|| t.0.loc.to_string());
                let id = graph.add_at(op, &arg_ids, loc).unwrap_or_else(|e| {
                    panic!("tenjit bug: a node typed at creation no longer types in the graph: {e}")
                });
                ids.insert(key, id);
            }
        }
    }
    graph.set_outputs(roots.iter().map(|t| ids[&Arc::as_ptr(&t.0)]).collect());
    Traced { graph, inputs, leaves }
}

/// Computes the values of `tensors` together (one graph, shared work computed once).
pub fn try_realize(tensors: &[&Tensor]) -> Result<()> {
    let mut pending: Vec<&Tensor> = tensors.iter().copied().filter(|t| !t.is_realized()).collect();
    if pending.is_empty() {
        return Ok(());
    }
    // Losses and updated parameters are computed with the next realization (see autograd).
    let deferred = crate::autograd::take_pending();
    for l in &deferred {
        if l.device() == pending[0].device() && !pending.iter().any(|t| t.same_node(l)) {
            pending.push(l);
        }
    }
    for t in &pending {
        t.device().check_available()?;
    }
    let start = std::time::Instant::now();
    let traced = trace(&pending, TraceOptions { locations: false });
    let outputs = match crate::compile::backend() {
        Backend::Interp => {
            let inputs: Vec<Buffer> = traced.inputs.iter().map(|b| (**b).clone()).collect();
            tenjit_ir::interp::eval(&traced.graph, &inputs)
                .map_err(|e| Error::Eval { message: e.to_string() })?
        }
        Backend::Cpu => crate::compile::run_cpu(&traced.graph, &traced.inputs, start.elapsed())?,
        Backend::Cuda => return Err(crate::device::Device::Cuda(0).check_available().unwrap_err()),
    };
    for (t, buf) in pending.iter().zip(outputs) {
        let _ = t.0.value.set(Arc::new(buf));
        // Nodes gradients flow through keep their operands for `backward()`.
        if t.grad_state() == crate::autograd::INTERIOR {
            continue;
        }
        // The value is set first, then the operands dropped (see `trace`).
        let old = std::mem::take(&mut *t.0.inputs.lock().unwrap_or_else(|p| p.into_inner()));
        drop(old);
    }
    Ok(())
}

/// Computes the values of `tensors` together; panics with the error's message on failure.
#[track_caller]
pub fn realize(tensors: &[&Tensor]) {
    if let Err(e) = try_realize(tensors) {
        panic!("{e}");
    }
}

/// The `ir::Graph` behind a set of tensors: realized tensors are its inputs (`%in0`, ...),
/// the tensors asked for its outputs, in order. Nodes carry the caller's source locations.
///
/// ```
/// use tenjit::prelude::*;
/// let x = tensor!([1.0, 2.0]);
/// let y = (&x * 2.0).exp();
/// let g = tenjit::graph(&[&y]);
/// assert!(g.to_string().contains("exp"));
/// ```
pub fn graph(tensors: &[&Tensor]) -> Graph {
    graph_with(tensors, TraceOptions::default())
}

/// [`graph`] with options (for example without source locations, for stable snapshots).
pub fn graph_with(tensors: &[&Tensor], opts: TraceOptions) -> Graph {
    trace(tensors, opts).graph
}

impl Tensor {
    /// Computes this tensor's value now (it is otherwise computed when first needed).
    #[track_caller]
    pub fn realize(&self) -> &Tensor {
        realize(&[self]);
        self
    }

    /// Computes this tensor's value, returning evaluation errors.
    pub fn try_realize(&self) -> Result<&Tensor> {
        try_realize(&[self])?;
        Ok(self)
    }

    /// The realized value.
    pub(crate) fn buffer(&self) -> Result<Arc<Buffer>> {
        try_realize(&[self])?;
        Ok(self.value().expect("realized").clone())
    }
}
