//! Gradients, PyTorch-style: `requires_grad_`, `backward`, `grad`, `zero_grad`, `detach`,
//! `no_grad`, and a functional [`grad`](crate::grad()) like `torch.autograd.grad`/`jax.grad`.
//!
//! There is no tape. Each node records whether gradients flow through it (its inputs require
//! grad) or into it (a leaf the user marked). `backward()` traces the graph behind the loss
//! through the nodes gradients flow through, runs the IR's reverse-mode pass
//! ([`tenjit_ir::autodiff`]) over it, and imports the gradient nodes back as lazy tensors whose
//! operands are the forward pass's own nodes. So gradients are IR: they fuse and compile with
//! the forward pass, print like any graph, and are differentiable again with
//! `create_graph`.
//!
//! ```
//! use tenjit::prelude::*;
//! let x = tensor!(2.0).requires_grad_();
//! let y = &x * &x + &x * 3.0 + 1.0; // y = x² + 3x + 1
//! y.backward();
//! assert_eq!(x.grad().unwrap().item(), 7.0);
//! ```
//!
//! Like PyTorch: nodes that gradients flow through keep their operands after they are
//! computed (the graph lives as long as the loss does); a leaf that requires grad can't be
//! updated in place unless inside [`no_grad`]; gradients accumulate into `grad()` until
//! [`Tensor::zero_grad`]. A loss that `backward()` was called on, and a parameter updated in
//! place under `no_grad`, are computed with the next realization: reading `loss.item()` after
//! the update computes forward, backward and update as one executable, and the parameters are
//! values again for the next step.

use crate::error::{Error, OrPanic, Result};
use crate::tensor::{Node, Tensor};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::panic::Location;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use tenjit_ir::{Graph, NodeId, Op, Scalar, TensorType};

/// The node does not require grad.
pub(crate) const NO_GRAD: u8 = 0;
/// A leaf that requires grad: gradients accumulate into it and stop.
pub(crate) const LEAF: u8 = 1;
/// Computed from something that requires grad: gradients flow through it.
pub(crate) const INTERIOR: u8 = 2;

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
    static PENDING: RefCell<Vec<Weak<Node>>> = const { RefCell::new(Vec::new()) };
}

/// Whether ops record gradient information on this thread (false inside [`no_grad`]).
pub fn is_grad_enabled() -> bool {
    GRAD_ENABLED.with(Cell::get)
}

/// Runs `f` with gradient recording off on this thread, as `with torch.no_grad():`. Tensors
/// made inside do not require grad, and leaves that require grad can be updated in place.
///
/// ```
/// use tenjit::prelude::*;
/// let mut w = tensor!([1.0, 2.0]).requires_grad_();
/// (&w * &w).sum().backward();
/// let g = w.grad().unwrap();
/// tenjit::no_grad(|| { w.sub_(&g * 0.5); });
/// assert_eq!(w.to_string(), "tensor([0., 0.], requires_grad=True)");
/// ```
pub fn no_grad<R>(f: impl FnOnce() -> R) -> R {
    let _guard = NoGradGuard::new();
    f()
}

/// Gradient recording off until dropped (the guard form of [`no_grad`]).
pub struct NoGradGuard {
    previous: bool,
}

impl NoGradGuard {
    /// Turns gradient recording off on this thread until the guard is dropped.
    #[allow(clippy::new_without_default)]
    pub fn new() -> NoGradGuard {
        let previous = GRAD_ENABLED.with(|g| g.replace(false));
        NoGradGuard { previous }
    }
}

impl Drop for NoGradGuard {
    fn drop(&mut self) {
        GRAD_ENABLED.with(|g| g.set(self.previous));
    }
}

/// Runs `f` with gradient recording on (inside a [`no_grad`] scope, as `torch.enable_grad`).
pub fn enable_grad<R>(f: impl FnOnce() -> R) -> R {
    let previous = GRAD_ENABLED.with(|g| g.replace(true));
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            GRAD_ENABLED.with(|g| g.set(self.0));
        }
    }
    let _restore = Restore(previous);
    f()
}

/// The grad state of a node of type `ty` computed from `inputs`.
pub(crate) fn state_of_result(ty: &TensorType, inputs: &[&Tensor]) -> u8 {
    if ty.dtype.is_float() && is_grad_enabled() && inputs.iter().any(|t| t.grad_state() != NO_GRAD) {
        INTERIOR
    } else {
        NO_GRAD
    }
}

/// Asks for `t` to be computed with the next realization on this thread: the losses
/// `backward()` was called on and the parameters updated in place under `no_grad`, so a
/// training step (forward, backward, update) is one executable and the chain of updates never
/// grows lazily from step to step.
pub(crate) fn realize_with_next(t: &Tensor) {
    PENDING.with(|p| p.borrow_mut().push(Arc::downgrade(&t.0)));
}

/// What [`realize_with_next`] asked for that is still alive and not computed.
pub(crate) fn take_pending() -> Vec<Tensor> {
    PENDING
        .with(|p| p.take())
        .iter()
        .filter_map(Weak::upgrade)
        .map(Tensor)
        .filter(|t| !t.is_realized())
        .collect()
}

/// Options of [`grad_with`].
#[derive(Clone, Copy, Default)]
pub struct GradOptions<'a> {
    /// The cotangent of each output (`grad_outputs` in torch); required for outputs with more
    /// than one element, ones by default for scalars.
    pub grad_outputs: Option<&'a [&'a Tensor]>,
    /// Record the gradient computation itself, so it can be differentiated again.
    pub create_graph: bool,
}

/// The gradients of the sum of `outputs` with respect to each of `inputs`, as
/// `torch.autograd.grad(outputs, inputs)`: new lazy tensors, nothing accumulated into `grad()`.
/// Every input must require grad; an input the outputs do not depend on gets zeros (as
/// `jax.grad`). Panics with the error's message on failure.
///
/// ```
/// use tenjit::prelude::*;
/// let x = tensor!([1.0, 2.0]).requires_grad_();
/// let y = (&x * &x * &x).sum();
/// let dx = tenjit::grad(&[&y], &[&x]);
/// assert_eq!(dx[0].to_string(), "tensor([ 3., 12.])");
/// ```
#[track_caller]
pub fn grad(outputs: &[&Tensor], inputs: &[&Tensor]) -> Vec<Tensor> {
    grad_with(outputs, inputs, GradOptions::default()).or_panic()
}

/// [`grad`](crate::grad()) as a `Result`.
#[track_caller]
pub fn try_grad(outputs: &[&Tensor], inputs: &[&Tensor]) -> Result<Vec<Tensor>> {
    grad_with(outputs, inputs, GradOptions::default())
}

/// [`grad`](crate::grad()) with cotangents and `create_graph`.
///
/// ```
/// use tenjit::prelude::*;
/// use tenjit::GradOptions;
/// let x = tensor!(3.0).requires_grad_();
/// let y = &x * &x * &x;
/// let opts = GradOptions { create_graph: true, ..Default::default() };
/// let dy = tenjit::grad_with(&[&y], &[&x], opts).unwrap();
/// let d2y = tenjit::grad(&[&dy[0]], &[&x]);
/// assert_eq!(d2y[0].item(), 18.0); // 6x
/// ```
#[track_caller]
pub fn grad_with(outputs: &[&Tensor], inputs: &[&Tensor], opts: GradOptions) -> Result<Vec<Tensor>> {
    let loc = Location::caller();
    for (i, t) in inputs.iter().enumerate() {
        if t.grad_state() == NO_GRAD {
            return Err(grad_error(
                loc,
                format!("input {i} ({}) does not require grad; call requires_grad_() on it before computing the outputs", t.ty()),
            ));
        }
    }
    let grads = differentiate(outputs, opts.grad_outputs, inputs, opts.create_graph, loc)?;
    let mut out = Vec::with_capacity(inputs.len());
    for (t, g) in inputs.iter().zip(grads) {
        out.push(match g {
            Some(g) => g,
            None => Tensor::zeros_like_for_grad(t),
        });
    }
    Ok(out)
}

fn grad_error(at: &'static Location<'static>, message: String) -> Error {
    Error::Op { op: "grad", message, at }
}

impl Tensor {
    pub(crate) fn grad_state(&self) -> u8 {
        self.0.grad_state.load(Ordering::Relaxed)
    }

    fn zeros_like_for_grad(t: &Tensor) -> Tensor {
        let op = Op::Const { value: Scalar::Float(0.0), ty: t.ty().clone() };
        Tensor::from_op(op, &[]).expect("zeros of a float type")
    }

    /// Whether gradients flow into or through this tensor (`x.requires_grad`).
    pub fn requires_grad(&self) -> bool {
        self.grad_state() != NO_GRAD
    }

    /// Whether this is a leaf: it requires no grad, or it is one the user marked
    /// (`x.is_leaf`). Gradients accumulate in leaves only.
    pub fn is_leaf(&self) -> bool {
        self.grad_state() != INTERIOR
    }

    /// Marks this leaf as requiring grad and returns it, as `x.requires_grad_()`; panics for
    /// non-float tensors or tensors computed from ones that require grad.
    ///
    /// ```
    /// use tenjit::prelude::*;
    /// let w = Tensor::randn([3]).requires_grad_();
    /// assert!(w.requires_grad() && w.is_leaf());
    /// ```
    #[track_caller]
    pub fn requires_grad_(&self) -> Tensor {
        self.try_set_requires_grad(true).or_panic();
        self.clone()
    }

    /// Sets or clears `requires_grad` on a leaf.
    #[track_caller]
    pub fn try_set_requires_grad(&self, flag: bool) -> Result<()> {
        if self.grad_state() == INTERIOR {
            return Err(Error::op(
                "requires_grad_",
                "you can only change requires_grad flags of leaf tensors; use detach() to get a leaf",
            ));
        }
        if flag && !self.dtype().is_float() {
            return Err(Error::op(
                "requires_grad_",
                format!(
                    "only tensors of floating point dtype can require gradients, this one is {}",
                    self.dtype()
                ),
            ));
        }
        self.0.grad_state.store(if flag { LEAF } else { NO_GRAD }, Ordering::Relaxed);
        Ok(())
    }

    /// The gradient accumulated by `backward()` (`x.grad`), or `None`.
    pub fn grad(&self) -> Option<Tensor> {
        self.0.grad.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the accumulated gradient.
    pub fn set_grad(&self, grad: Option<Tensor>) {
        *self.0.grad.lock().unwrap_or_else(|p| p.into_inner()) = grad;
    }

    /// Clears the accumulated gradient (`x.grad = None`, torch's `zero_grad(set_to_none=True)`).
    pub fn zero_grad(&self) {
        self.set_grad(None);
    }

    /// The same value, cut off from the gradient computation (`x.detach()`).
    #[track_caller]
    pub fn detach(&self) -> Tensor {
        let _off = NoGradGuard::new();
        let op = Op::Reshape { shape: self.ir_shape().clone() };
        Tensor::from_op_strided(op, &[self], Some(self.strides().clone()))
            .expect("a reshape to the same shape")
    }

    /// Computes the gradient of this scalar with respect to every leaf that requires grad and
    /// adds it to their `grad()`, as `loss.backward()`. Panics if this is not a scalar or does
    /// not require grad.
    #[track_caller]
    pub fn backward(&self) {
        self.try_backward().or_panic()
    }

    /// [`Tensor::backward`] as a `Result`.
    #[track_caller]
    pub fn try_backward(&self) -> Result<()> {
        self.backward_with(None, false)
    }

    /// `backward` with a cotangent `seed` of this tensor's type (`y.backward(gradient)`) and
    /// `create_graph` (record the gradient computation so it can be differentiated again).
    #[track_caller]
    pub fn backward_with(&self, seed: Option<&Tensor>, create_graph: bool) -> Result<()> {
        let loc = Location::caller();
        let seeds = seed.map(|s| [s]);
        let mut leaves = Vec::new();
        let grads = {
            let traced = GradTrace::new(&[self], seeds.as_ref().map(|s| &s[..]), loc)?;
            for (&id, t) in &traced.inputs {
                if t.grad_state() == LEAF {
                    leaves.push((id, t.clone()));
                }
            }
            leaves.sort_by_key(|(id, _)| id.index());
            let wrt: Vec<NodeId> = leaves.iter().map(|(id, _)| *id).collect();
            traced.run(&wrt, create_graph, loc)?
        };
        let _off = (!create_graph).then(NoGradGuard::new);
        for ((_, leaf), g) in leaves.iter().zip(grads) {
            let Some(g) = g else { continue };
            let total = match leaf.grad() {
                Some(old) => old.try_add(&g)?,
                None => g,
            };
            leaf.set_grad(Some(total));
        }
        realize_with_next(self);
        Ok(())
    }
}

/// Gradients of `outputs` (seeded by `seeds` or ones) with respect to `wrt`.
fn differentiate(
    outputs: &[&Tensor],
    seeds: Option<&[&Tensor]>,
    wrt: &[&Tensor],
    create_graph: bool,
    loc: &'static Location<'static>,
) -> Result<Vec<Option<Tensor>>> {
    let traced = GradTrace::new(outputs, seeds, loc)?;
    let ids: HashMap<*const Node, NodeId> =
        traced.nodes.iter().map(|(&id, t)| (Arc::as_ptr(&t.0), id)).collect();
    let mut present = Vec::new();
    let mut slots = Vec::new();
    for t in wrt {
        match ids.get(&Arc::as_ptr(&t.0)) {
            Some(&id) => {
                slots.push(Some(present.len()));
                present.push(id);
            }
            None => slots.push(None),
        }
    }
    let grads = traced.run(&present, create_graph, loc)?;
    Ok(slots.into_iter().map(|s| s.and_then(|i| grads[i].clone())).collect())
}

/// The graph behind some outputs, expanded through the nodes gradients flow through; every
/// other node it reaches is an input. Each graph node remembers its tensor.
struct GradTrace {
    graph: Graph,
    outputs: Vec<NodeId>,
    seeds: Vec<NodeId>,
    /// Every traced node's tensor.
    nodes: HashMap<NodeId, Tensor>,
    /// The graph inputs' tensors.
    inputs: HashMap<NodeId, Tensor>,
}

impl GradTrace {
    fn new(
        outputs: &[&Tensor],
        seeds: Option<&[&Tensor]>,
        loc: &'static Location<'static>,
    ) -> Result<GradTrace> {
        let mut tr = GradTrace {
            graph: Graph::new("grad"),
            outputs: Vec::new(),
            seeds: Vec::new(),
            nodes: HashMap::new(),
            inputs: HashMap::new(),
        };
        if let Some(seeds) = seeds {
            if seeds.len() != outputs.len() {
                return Err(grad_error(
                    loc,
                    format!("{} outputs but {} gradients for them", outputs.len(), seeds.len()),
                ));
            }
        }
        let mut ids: HashMap<*const Node, NodeId> = HashMap::new();
        for (i, out) in outputs.iter().enumerate() {
            if out.grad_state() == NO_GRAD {
                return Err(grad_error(
                    loc,
                    format!("element {i} of the outputs does not require grad: nothing it was computed from requires grad"),
                ));
            }
            let id = tr.add(out, &mut ids);
            tr.outputs.push(id);
            let seed = match seeds {
                Some(s) => {
                    if s[i].ty() != out.ty() {
                        return Err(grad_error(
                            loc,
                            format!(
                                "the gradient for output {i} has type {}, the output {}",
                                s[i].ty(),
                                out.ty()
                            ),
                        ));
                    }
                    tr.input(s[i], &mut ids)
                }
                None => {
                    if out.numel() != 1 {
                        return Err(grad_error(
                            loc,
                            format!(
                                "grad can be implicitly created only for scalar outputs; output {i} has shape {} (pass a gradient of that shape)",
                                out.ir_shape()
                            ),
                        ));
                    }
                    let op = Op::Const { value: Scalar::Float(1.0), ty: out.ty().clone() };
                    tr.graph.add(op, &[]).expect("a constant")
                }
            };
            tr.seeds.push(seed);
        }
        Ok(tr)
    }

    fn input(&mut self, t: &Tensor, ids: &mut HashMap<*const Node, NodeId>) -> NodeId {
        let key = Arc::as_ptr(&t.0);
        if let Some(&id) = ids.get(&key) {
            return id;
        }
        let id = self.graph.add_input(format!("in{}", self.inputs.len()), t.ty().clone());
        self.inputs.insert(id, t.clone());
        self.nodes.insert(id, t.clone());
        ids.insert(key, id);
        id
    }

    /// Adds `root` and what it depends on (iterative post-order).
    fn add(&mut self, root: &Tensor, ids: &mut HashMap<*const Node, NodeId>) -> NodeId {
        let mut stack: Vec<(Tensor, Option<Vec<Tensor>>)> = vec![(root.clone(), None)];
        while let Some((t, expanded)) = stack.pop() {
            let key = Arc::as_ptr(&t.0);
            if ids.contains_key(&key) {
                continue;
            }
            match expanded {
                None => {
                    let args = t.0.inputs.lock().unwrap_or_else(|p| p.into_inner()).clone();
                    let expand = t.grad_state() == INTERIOR && t.0.op.is_some() && !args.is_empty();
                    if !expand {
                        self.input(&t, ids);
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
                    let op = t.0.op.clone().expect("expanded nodes have an op");
                    let arg_ids: Vec<NodeId> = args.iter().map(|a| ids[&Arc::as_ptr(&a.0)]).collect();
                    let id = self.graph.add(op, &arg_ids).unwrap_or_else(|e| {
                        panic!("tenjit bug: a node typed at creation no longer types in the graph: {e}")
                    });
                    self.nodes.insert(id, t.clone());
                    ids.insert(key, id);
                }
            }
        }
        ids[&Arc::as_ptr(&root.0)]
    }

    /// Runs the reverse-mode pass and imports each gradient as a tensor.
    fn run(
        mut self,
        wrt: &[NodeId],
        create_graph: bool,
        loc: &'static Location<'static>,
    ) -> Result<Vec<Option<Tensor>>> {
        let grads = tenjit_ir::autodiff::grad(&mut self.graph, &self.outputs, &self.seeds, wrt)
            .map_err(|e| grad_error(loc, e.message))?;
        let _off = (!create_graph).then(NoGradGuard::new);
        grads.into_iter().map(|g| g.map(|g| self.import(g, loc)).transpose()).collect()
    }

    /// The tensor of graph node `root`, creating tensors for the new (gradient) nodes.
    fn import(&mut self, root: NodeId, loc: &'static Location<'static>) -> Result<Tensor> {
        let mut stack = vec![(root, false)];
        while let Some((n, expanded)) = stack.pop() {
            if self.nodes.contains_key(&n) {
                continue;
            }
            let args = self.graph.args(n);
            if !expanded {
                stack.push((n, true));
                stack.extend(args.iter().filter(|a| !self.nodes.contains_key(a)).map(|&a| (a, false)));
                continue;
            }
            let arg_tensors: Vec<&Tensor> = args.iter().map(|a| &self.nodes[a]).collect();
            let t = Tensor::from_op_at(self.graph.op(n).clone(), &arg_tensors, None, loc)?;
            self.nodes.insert(n, t);
        }
        Ok(self.nodes[&root].clone())
    }
}
