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

use crate::error::{Error, OpErrorKind, OrPanic, Result};
use crate::realize::{realize_with_next, Flat, Pending};
use crate::tensor::{grad_enabled, set_grad_enabled, Tensor, INTERIOR, LEAF, NO_GRAD};
use smallvec::SmallVec;
use std::collections::HashMap;
use std::panic::Location;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use tenjit_ir::{Graph, NodeId, Op, Scalar};

/// Whether ops record gradient information on this thread (false inside [`no_grad`]).
pub fn is_grad_enabled() -> bool {
    grad_enabled()
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
        let previous = set_grad_enabled(false);
        NoGradGuard { previous }
    }
}

impl Drop for NoGradGuard {
    fn drop(&mut self) {
        set_grad_enabled(self.previous);
    }
}

/// Runs `f` with gradient recording on (inside a [`no_grad`] scope, as `torch.enable_grad`).
pub fn enable_grad<R>(f: impl FnOnce() -> R) -> R {
    let previous = set_grad_enabled(true);
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            set_grad_enabled(self.0);
        }
    }
    let _restore = Restore(previous);
    f()
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
    Error::Op { op: "grad", kind: crate::OpErrorKind::Argument, message, at }
}

impl Tensor {
    fn zeros_like_for_grad(t: &Tensor) -> Tensor {
        let op = Op::Const { value: Scalar::Float(0.0), ty: t.ty_unrecorded().clone() };
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
            return Err(Error::op_of(
                OpErrorKind::DType,
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

    /// Adds `g` to the accumulated gradient in one step under the gradient's lock, so threads
    /// calling `backward()` on graphs that share this leaf lose no contribution.
    fn accumulate_grad(&self, g: &Tensor) -> Result<()> {
        let mut slot = self.0.grad.lock().unwrap_or_else(|p| p.into_inner());
        let total = match slot.as_ref() {
            Some(old) => old.try_add(g)?,
            None => g.clone(),
        };
        *slot = Some(total);
        Ok(())
    }

    /// Clears the accumulated gradient (`x.grad = None`, torch's `zero_grad(set_to_none=True)`).
    pub fn zero_grad(&self) {
        self.set_grad(None);
    }

    /// The same value, cut off from the gradient computation (`x.detach()`).
    #[track_caller]
    pub fn detach(&self) -> Tensor {
        let _off = NoGradGuard::new();
        let op = Op::Reshape { shape: self.ty_unrecorded().shape.clone() };
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
        // A parameter updated since the last realization ends the previous step: compute it.
        crate::realize::at_backward()?;
        self.backward_into(seed, create_graph, loc)?;
        realize_with_next(self, Pending::Loss);
        Ok(())
    }

    /// Adds the gradients of this tensor (seeded by `seed`, or ones) to the leaves behind it,
    /// and sends the gradient of each device move behind it back through the move.
    fn backward_into(
        &self,
        seed: Option<&Tensor>,
        create_graph: bool,
        loc: &'static Location<'static>,
    ) -> Result<()> {
        let seeds = seed.map(|s| [s]);
        let traced = GradTrace::new(&[self], seeds.as_ref().map(|s| &s[..]), loc)?;
        let mut wrt = traced.leaves();
        let leaves = wrt.len();
        wrt.extend(traced.moves());
        let targets: Vec<Tensor> =
            wrt.iter().map(|&p| traced.flat.entries[p as usize].tensor.clone()).collect();
        let grads = traced.run(&wrt, create_graph, loc)?;
        let _off = (!create_graph).then(NoGradGuard::new);
        for (k, (t, g)) in targets.iter().zip(grads).enumerate() {
            let Some(g) = g else { continue };
            if k < leaves {
                t.accumulate_grad(&g)?;
            } else if let Some(src) = &t.0.moved_from {
                src.backward_into(Some(&g.try_to(src.device())?), create_graph, loc)?;
            }
        }
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
    let mut present = Vec::new();
    let mut slots = Vec::new();
    for t in wrt {
        match traced.flat.index.get(&Arc::as_ptr(&t.0)) {
            Some(&p) => {
                slots.push(Some(present.len()));
                present.push(p);
            }
            None => slots.push(None),
        }
    }
    let asked = present.len();
    let moves = traced.moves();
    let moved: Vec<Tensor> = moves.iter().map(|&p| traced.flat.entries[p as usize].tensor.clone()).collect();
    present.extend(moves);
    let grads = traced.run(&present, create_graph, loc)?;
    let mut out: Vec<Option<Tensor>> = slots.into_iter().map(|s| s.and_then(|i| grads[i].clone())).collect();
    // A device move's gradient goes back through the move: the gradients of its source,
    // seeded with it, add to those found here.
    for (t, g) in moved.iter().zip(&grads[asked..]) {
        let (Some(src), Some(g)) = (&t.0.moved_from, g) else { continue };
        let back = if create_graph { g.try_to(src.device())? } else { no_grad(|| g.try_to(src.device()))? };
        let more = differentiate(&[src], Some(&[&back]), wrt, create_graph, loc)?;
        for (slot, m) in out.iter_mut().zip(more) {
            *slot = match (slot.take(), m) {
                (Some(a), Some(b)) => {
                    Some(if create_graph { a.try_add(&b)? } else { no_grad(|| a.try_add(&b))? })
                }
                (a, b) => a.or(b),
            };
        }
    }
    Ok(out)
}

/// The graph behind some outputs, expanded through the nodes gradients flow through; every
/// other node it reaches is an input. Kept as a flat list in topological order, so a cache hit
/// never builds an `ir::Graph`.
struct GradTrace {
    flat: Flat,
    /// Per output: the entry of its seed, or `None` for ones.
    seeds: Vec<Option<u32>>,
}

/// Where a gradient node's operand comes from: a traced entry or an earlier new node.
#[derive(Clone, Copy, Hash)]
enum Ref {
    Old(u32),
    New(u32),
}

/// The gradient computation for one traced structure, cached by it: the new nodes in
/// topological order and, per `wrt` entry, its gradient.
struct Recipe {
    nodes: Vec<(Op, SmallVec<[Ref; 3]>)>,
    results: Vec<Option<Ref>>,
}

fn recipes() -> &'static Mutex<HashMap<u128, Arc<Recipe>>> {
    static RECIPES: OnceLock<Mutex<HashMap<u128, Arc<Recipe>>>> = OnceLock::new();
    RECIPES.get_or_init(|| Mutex::new(HashMap::new()))
}

impl GradTrace {
    fn new(
        outputs: &[&Tensor],
        seeds: Option<&[&Tensor]>,
        loc: &'static Location<'static>,
    ) -> Result<GradTrace> {
        if let Some(seeds) = seeds {
            if seeds.len() != outputs.len() {
                return Err(grad_error(
                    loc,
                    format!("{} outputs but {} gradients for them", outputs.len(), seeds.len()),
                ));
            }
        }
        for (i, out) in outputs.iter().enumerate() {
            if out.grad_state() == NO_GRAD {
                return Err(grad_error(
                    loc,
                    format!("element {i} of the outputs does not require grad: nothing it was computed from requires grad"),
                ));
            }
            match seeds {
                // Types compared with their expressions: a seed of other dims is an error.
                Some(s) if s[i].ty_unrecorded() != out.ty_unrecorded() => {
                    return Err(grad_error(
                        loc,
                        format!(
                            "the gradient for output {i} has type {}, the output {}",
                            s[i].ty(),
                            out.ty()
                        ),
                    ));
                }
                // A symbolic dim is never 1 (symbols stand for sizes of 2 and more).
                None if out.shape_unrecorded().iter().product::<usize>() != 1 => {
                    return Err(grad_error(
                        loc,
                        format!(
                            "grad can be implicitly created only for scalar outputs; output {i} has shape {} (pass a gradient of that shape)",
                            out.ir_shape()
                        ),
                    ));
                }
                _ => {}
            }
        }
        // Expanded: the nodes gradients flow through; everything else is an input.
        let mut flat =
            Flat::walk(outputs, |t, args| t.grad_state() == INTERIOR && t.0.op.is_some() && !args.is_empty());
        let seeds = match seeds {
            Some(s) => s.iter().map(|t| Some(flat.input(t))).collect(),
            None => vec![None; outputs.len()],
        };
        Ok(GradTrace { flat, seeds })
    }

    /// The inputs that are leaves requiring grad, in order.
    fn leaves(&self) -> Vec<u32> {
        (0..self.flat.entries.len() as u32)
            .filter(|&p| {
                let e = &self.flat.entries[p as usize];
                e.op.is_none() && e.tensor.grad_state() == LEAF
            })
            .collect()
    }

    /// The inputs that are device moves of tensors that require grad ([`Tensor::to`]), in
    /// order: their gradients go on to the tensors they were moved from.
    fn moves(&self) -> Vec<u32> {
        (0..self.flat.entries.len() as u32)
            .filter(|&p| {
                let e = &self.flat.entries[p as usize];
                e.op.is_none() && e.tensor.grad_state() == INTERIOR && e.tensor.0.moved_from.is_some()
            })
            .collect()
    }

    /// The structure, as the recipe cache's key.
    fn key(&self, wrt: &[u32]) -> u128 {
        let mut f = tenjit_ir::Fingerprint::new();
        self.flat.structure(&mut f);
        f.add(&self.flat.roots);
        f.add(&self.seeds);
        f.add(wrt);
        f.finish()
    }

    /// Builds the graph, runs the reverse-mode pass and keeps the new nodes the gradients
    /// need (a cache miss).
    fn recipe(&self, wrt: &[u32]) -> std::result::Result<Recipe, String> {
        let mut g = Graph::new("grad");
        crate::tensor::symbolic::declare_in(&mut g).map_err(|e| format!("tenjit bug: {e}"))?;
        let mut ids = Vec::with_capacity(self.flat.entries.len());
        for (k, e) in self.flat.entries.iter().enumerate() {
            ids.push(match &e.op {
                None => g.add_input(format!("in{k}"), e.tensor.ty_unrecorded().clone()),
                Some((op, args)) => {
                    let args: Vec<NodeId> = args.iter().map(|&a| ids[a as usize]).collect();
                    g.add(op.clone(), &args)
                        .map_err(|e| format!("tenjit bug: a traced node no longer types: {e}"))?
                }
            });
        }
        let old: HashMap<NodeId, u32> = ids.iter().enumerate().map(|(k, &id)| (id, k as u32)).collect();
        let outputs: Vec<NodeId> = self.flat.roots.iter().map(|&p| ids[p as usize]).collect();
        let mut seeds = Vec::new();
        for (&o, s) in self.flat.roots.iter().zip(&self.seeds) {
            seeds.push(match s {
                Some(p) => ids[*p as usize],
                None => {
                    let ty = self.flat.entries[o as usize].tensor.ty_unrecorded().clone();
                    g.add(Op::Const { value: Scalar::Float(1.0), ty }, &[]).map_err(|e| e.to_string())?
                }
            });
        }
        let wrt_ids: Vec<NodeId> = wrt.iter().map(|&p| ids[p as usize]).collect();
        let grads = tenjit_ir::autodiff::grad(&mut g, &outputs, &seeds, &wrt_ids).map_err(|e| e.message)?;
        // The new nodes the gradients reach, in post-order.
        let mut new: HashMap<NodeId, u32> = HashMap::new();
        let mut nodes = Vec::new();
        let as_ref = |n: NodeId, new: &HashMap<NodeId, u32>| match old.get(&n) {
            Some(&p) => Ref::Old(p),
            None => Ref::New(new[&n]),
        };
        for root in grads.iter().flatten() {
            let mut stack = vec![(*root, false)];
            while let Some((n, expanded)) = stack.pop() {
                if old.contains_key(&n) || new.contains_key(&n) {
                    continue;
                }
                let args = g.args(n);
                if !expanded {
                    stack.push((n, true));
                    stack.extend(args.iter().map(|&a| (a, false)));
                    continue;
                }
                let refs = args.iter().map(|&a| as_ref(a, &new)).collect();
                new.insert(n, nodes.len() as u32);
                nodes.push((g.op(n).clone(), refs));
            }
        }
        let results = grads.iter().map(|r| r.map(|n| as_ref(n, &new))).collect();
        Ok(Recipe { nodes, results })
    }

    /// The gradients with respect to the `wrt` entries, as new lazy tensors: the recipe comes
    /// from the cache when this structure was differentiated before.
    fn run(
        self,
        wrt: &[u32],
        create_graph: bool,
        loc: &'static Location<'static>,
    ) -> Result<Vec<Option<Tensor>>> {
        let key = self.key(wrt);
        let cached = recipes().lock().unwrap_or_else(|p| p.into_inner()).get(&key).cloned();
        let recipe = match cached {
            Some(r) => r,
            None => {
                let r = Arc::new(self.recipe(wrt).map_err(|m| grad_error(loc, m))?);
                recipes().lock().unwrap_or_else(|p| p.into_inner()).insert(key, r.clone());
                r
            }
        };
        let _off = (!create_graph).then(NoGradGuard::new);
        let mut made: Vec<Tensor> = Vec::with_capacity(recipe.nodes.len());
        for (op, refs) in &recipe.nodes {
            let args: SmallVec<[&Tensor; 3]> = refs
                .iter()
                .map(|r| match *r {
                    Ref::Old(p) => &self.flat.entries[p as usize].tensor,
                    Ref::New(k) => &made[k as usize],
                })
                .collect();
            let t = Tensor::from_op_at(op.clone(), &args, None, loc)?;
            drop(args);
            made.push(t);
        }
        Ok(recipe
            .results
            .iter()
            .map(|r| {
                r.map(|r| match r {
                    Ref::Old(p) => self.flat.entries[p as usize].tensor.clone(),
                    Ref::New(k) => made[k as usize].clone(),
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    //! Gradients through a device move. A machine without a GPU has one device, so the move
    //! is made with [`Tensor::moved`] to the CPU (a copy, a new node holding its source, as a
    //! move to a GPU makes); `tests/devices.rs` moves to a GPU where there is one.
    use crate::compile::{backend, set_backend, Backend};
    use crate::device::Device;
    use crate::runtime::Value;
    use crate::Tensor;
    use std::sync::Arc;

    fn moved(x: &Tensor) -> Tensor {
        let host = x.buffer().unwrap();
        Tensor::moved(x, Value::Host(Arc::new((*host).clone())), Device::Cpu, std::panic::Location::caller())
    }

    fn close(got: &Tensor, want: &[f32]) {
        let got = got.to_vec::<f32>();
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() <= 1e-5 * (1.0 + w.abs()), "{got:?} vs {want:?}");
        }
        assert_eq!(got.len(), want.len());
    }

    /// `loss = Σ y³ + sin(y)` for `y` the move of `x`: its gradient reaches `x` (`3x² +
    /// cos x`), with `backward` and with `grad`, and its second derivative too (`6x - sin x`).
    fn check_on(b: Backend) {
        set_backend(b);
        let data = [0.5f32, -1.0, 2.0];
        let x = Tensor::from_vec(data.to_vec(), [3]).requires_grad_();
        let y = moved(&x);
        assert!(y.requires_grad() && !y.is_leaf(), "{b:?}");
        assert!(y.to_string().contains("grad_fn=<ToCopyBackward0>"), "{y}");
        let loss = (&y * &y * &y).sum() + y.sin().sum();
        let d1: Vec<f32> = data.iter().map(|v| 3.0 * v * v + v.cos()).collect();
        let d2: Vec<f32> = data.iter().map(|v| 6.0 * v - v.sin()).collect();
        loss.backward();
        close(&x.grad().expect("x has a gradient through the move"), &d1);
        assert!(y.grad().is_none(), "{b:?}: a move is not a leaf");
        // The same computation without the move.
        let x2 = Tensor::from_vec(data.to_vec(), [3]).requires_grad_();
        ((&x2 * &x2 * &x2).sum() + x2.sin().sum()).backward();
        assert_eq!(x.grad().unwrap().to_vec::<f32>(), x2.grad().unwrap().to_vec::<f32>(), "{b:?}");
        // Functional, with respect to the source and the move at once.
        let g = super::grad(&[&loss], &[&x, &y]);
        close(&g[0], &d1);
        close(&g[1], &d1);
        // Second order through the move.
        let opts = super::GradOptions { create_graph: true, ..Default::default() };
        let dx = super::grad_with(&[&loss], &[&x], opts).unwrap();
        close(&super::grad(&[&dx[0].sum()], &[&x])[0], &d2);
        // Through two moves.
        let z = moved(&moved(&x));
        close(&super::grad(&[&(&z * &z * &z).sum()], &[&x])[0], &data.map(|v| 3.0 * v * v));
    }

    #[test]
    fn gradients_flow_back_through_a_device_move() {
        let before = backend();
        for b in [Backend::Cpu, Backend::Interp] {
            check_on(b);
        }
        set_backend(before);
    }
}
