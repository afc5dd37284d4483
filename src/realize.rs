//! From lazy tensors to values: `trace` turns the DAG behind a set of tensors into an
//! [`ir::Graph`](tenjit_ir::Graph) whose inputs are the realized leaves it reaches, and
//! `realize` finds the executable of that structure (compiled once, see [`crate::compile`]),
//! runs it through the [`runtime`](crate::runtime) on the tensors' device and stores the
//! values back in the nodes. Tensors waiting for the next realization (losses after
//! `backward()`, parameters updated in place; see [`crate::lazy`], which says when values are
//! computed) join it.
//!
//! Scalars are data: on the realize path, a constant whose value no simplifier rule matches
//! (see [`is_structural`]) is *lifted*. The executable's graph takes it as an input holding
//! one element (named `%s0`, `%s1`, ... in dumps and compile reports, expanded to the
//! constant's shape with `expand`), and the cache key records "a lifted scalar of this type",
//! never its value, so `w.sub_(g * lr)` with a new `lr` each step finds the same executable.
//! The interpreter runs the same lifted graph, so both backends agree. [`graph`] and
//! `tenjit::inspect` show the user's graph with its constants inline.
//!
//! Realized nodes drop their operands, so they are leaves for every later trace: the graph of
//! a loop that realizes each step stays the size of one step. Traversals are iterative, so
//! long chains cannot overflow the stack.

use crate::compile::Target;
use crate::device::Device;
use crate::error::{Error, Result};
use crate::runtime::Value;
use crate::tensor::{Node, Tensor, INTERIOR};
use rustc_hash::FxHashMap as HashMap;
use smallvec::SmallVec;
use std::cell::RefCell;
use std::panic::Location;
use std::sync::{Arc, Weak};
use tenjit_ir::graph::Mark;
use tenjit_ir::passes::simplify::is_structural;
use tenjit_ir::{Buffer, Graph, NodeId, Op, Scalar, Shape, TensorType};

/// Why a tensor waits for the next realization.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pending {
    /// A loss `backward()` was called on.
    Loss,
    /// A leaf that requires grad, updated in place: the end of a training step.
    Update,
}

thread_local! {
    /// What [`realize_with_next`] asked for on this thread, not computed yet.
    static PENDING: RefCell<Vec<(Weak<Node>, Pending)>> = const { RefCell::new(Vec::new()) };
}

/// Asks for `t` to be computed with the next realization on this thread (unless this thread
/// is tracing a function for [`crate::jit()`]: a loss or an update there belongs to the trace).
pub(crate) fn realize_with_next(t: &Tensor, why: Pending) {
    if crate::lazy::tracing() {
        return;
    }
    PENDING.with(|p| p.borrow_mut().push((Arc::downgrade(&t.0), why)));
}

/// What [`realize_with_next`] asked for on `device` that is alive and not computed; those
/// entries leave the list (entries of other devices stay for their own realization).
pub(crate) fn take_pending(device: crate::Device) -> Vec<Tensor> {
    let mut taken = Vec::new();
    PENDING.with(|p| {
        p.borrow_mut().retain(|(weak, _)| {
            let Some(node) = weak.upgrade() else { return false };
            let t = Tensor(node);
            if t.is_realized() {
                return false;
            }
            if t.device() == device {
                taken.push(t);
                return false;
            }
            true
        })
    });
    taken
}

/// The devices of the tensors waiting for the next realization on this thread.
pub(crate) fn pending_devices() -> Vec<crate::Device> {
    let mut devices = Vec::new();
    PENDING.with(|p| {
        for (weak, _) in p.borrow().iter() {
            if let Some(node) = weak.upgrade() {
                if !devices.contains(&node.device) {
                    devices.push(node.device);
                }
            }
        }
    });
    devices
}

/// The step boundary at the start of `backward()`: when a parameter was updated in place since
/// the last realization, computes everything pending (that update, the losses before it).
pub(crate) fn at_backward() -> Result<()> {
    if crate::lazy::tracing() {
        return Ok(());
    }
    let update_pending = PENDING.with(|p| {
        p.borrow()
            .iter()
            .any(|(w, why)| *why == Pending::Update && w.upgrade().is_some_and(|n| !Tensor(n).is_realized()))
    });
    if !update_pending {
        return Ok(());
    }
    // Any realization takes the pending list with it; asking for nothing computes just that.
    realize_pending()
}

/// What a trace produced: the graph (its outputs are the roots, in order) and the tensor
/// behind each of its inputs.
pub(crate) struct Traced {
    /// The graph; its inputs are named `in0`, `in1`, ... in order.
    pub graph: Graph,
    /// The tensor behind each input, in order.
    pub leaves: Vec<Tensor>,
    /// The call that built each node, so evaluation errors can name it.
    pub calls: Calls,
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

/// One node reached by a walk: its tensor and, unless it is an input of the walked graph, its
/// op and operands (positions of earlier entries).
pub(crate) struct Entry {
    pub tensor: Tensor,
    pub op: Option<(Op, SmallVec<[u32; 3]>)>,
    /// A seed or offset of a `rand`: lifted whatever its value (see [`lifted`]).
    pub rand_word: bool,
}

impl Entry {
    /// The API method the user called to build this node, and where; `None` for an input.
    fn call(&self) -> Option<(&'static str, &'static Location<'static>)> {
        let (op, _) = self.op.as_ref()?;
        Some((user_op(&self.tensor, op), self.tensor.0.loc))
    }
}

/// The API call that built each node of a traced graph, by node index (`None` for inputs):
/// the method's name and where it was called.
pub(crate) type Calls = Vec<Option<(&'static str, &'static Location<'static>)>>;

/// `e` at the call that built its node, if it is an evaluation error of a node of the graph
/// `calls` describes with no location yet.
pub(crate) fn locate_in(calls: &Calls, e: Error) -> Error {
    let Some(node) = e.unlocated_node() else {
        return e;
    };
    match calls.get(node.index()).copied().flatten() {
        Some((op, at)) => e.located(op, at),
        None => e,
    }
}

/// The DAG behind some roots as a flat list in topological order (post-order). Which nodes
/// are expanded into their op and which are inputs is the walker's choice: realization stops
/// at computed values, the gradient trace at nodes gradients do not flow through.
pub(crate) struct Flat {
    pub entries: Vec<Entry>,
    pub index: HashMap<*const crate::tensor::Node, u32>,
    pub roots: Vec<u32>,
}

impl Flat {
    /// The DAG behind `roots` down to computed values, which are its inputs.
    fn new(roots: &[&Tensor]) -> Flat {
        // The operands are snapshot before the value is checked: a concurrent realization sets
        // the value before it clears the operands, so if no value is set after the snapshot,
        // the snapshot is complete.
        Flat::walk(roots, |t, _| !t.is_realized())
    }

    /// Walks the DAG behind `roots` (iteratively, so long chains cannot overflow the stack),
    /// expanding a node into its op when `expand(node, its operands)` says so; every other
    /// node reached is an input.
    pub(crate) fn walk(roots: &[&Tensor], expand: impl Fn(&Tensor, &[Tensor]) -> bool) -> Flat {
        let mut flat = Flat { entries: Vec::new(), index: HashMap::default(), roots: Vec::new() };
        // (tensor, operands snapshot once expanded).
        let mut stack: Vec<(Tensor, Option<Vec<Tensor>>)> =
            roots.iter().rev().map(|t| ((*t).clone(), None)).collect();
        while let Some((t, expanded)) = stack.pop() {
            if flat.index.contains_key(&Arc::as_ptr(&t.0)) {
                continue;
            }
            match expanded {
                None => {
                    let args = t.0.inputs.lock().unwrap_or_else(|p| p.into_inner()).clone();
                    if !expand(&t, &args) {
                        flat.input(&t);
                        continue;
                    }
                    let pending: Vec<Tensor> = args
                        .iter()
                        .filter(|a| !flat.index.contains_key(&Arc::as_ptr(&a.0)))
                        .cloned()
                        .collect();
                    stack.push((t, Some(args)));
                    stack.extend(pending.into_iter().rev().map(|a| (a, None)));
                }
                Some(args) => {
                    let op = t.0.op.clone().expect("an expanded node has an op");
                    let positions = args.iter().map(|a| flat.index[&Arc::as_ptr(&a.0)]).collect();
                    flat.push(&t, Some((op, positions)));
                }
            }
        }
        flat.roots = roots.iter().map(|t| flat.index[&Arc::as_ptr(&t.0)]).collect();
        flat
    }

    fn push(&mut self, t: &Tensor, op: Option<(Op, SmallVec<[u32; 3]>)>) -> u32 {
        let p = self.entries.len() as u32;
        self.index.insert(Arc::as_ptr(&t.0), p);
        if let Some((Op::Rand { .. }, args)) = &op {
            for &a in args {
                self.entries[a as usize].rand_word = true;
            }
        }
        self.entries.push(Entry { tensor: t.clone(), op, rand_word: false });
        p
    }

    /// The position of `t` as an input (added if the walk did not reach it).
    pub(crate) fn input(&mut self, t: &Tensor) -> u32 {
        match self.index.get(&Arc::as_ptr(&t.0)) {
            Some(&p) => p,
            None => self.push(t, None),
        }
    }

    /// Mixes the structure of the entries (types, ops, attributes, operands; never data) into
    /// `f`, constants with their values.
    pub(crate) fn structure(&self, f: &mut tenjit_ir::Fingerprint) {
        self.structure_with(f, false);
    }

    /// [`Flat::structure`]; with `lift`, a lifted constant (see [`lifted`]) mixes in only that
    /// it is one: its type is already there, its value never is.
    fn structure_with(&self, f: &mut tenjit_ir::Fingerprint, lift: bool) {
        for e in &self.entries {
            f.add(e.tensor.ty_unrecorded());
            match &e.op {
                None => f.add(&0u8),
                Some(_) if lift && lifted(e).is_some() => f.add(&2u8),
                Some((op, args)) => {
                    f.add(&1u8);
                    f.add(op);
                    f.add(&args[..]);
                }
            }
        }
    }

    /// The values of the inputs of a walk that stopped at computed values, in order, as a
    /// computation on `device` reads them: every input must have been computed on `device`
    /// (for the CPU, in host memory). With `lift`, the lifted constants are inputs too, each a
    /// host buffer of one element (a backend on another device uploads it).
    fn input_values(&self, device: Device, lift: bool) -> Result<Vec<Value>> {
        let inputs = self.entries.iter().filter(|e| e.op.is_none() || (lift && lifted(e).is_some()));
        inputs
            .map(|e| {
                if let Some((value, ty)) = lifted(e) {
                    return Ok(Value::Host(Arc::new(Buffer::full(&lifted_type(ty), value))));
                }
                let value =
                    if e.tensor.device() == device { e.tensor.0.value.value_on(device) } else { None };
                value.ok_or_else(|| Error::Device {
                    kind: crate::DeviceErrorKind::Mismatch,
                    message: format!(
                        "a {} tensor created at {} is an input of a computation on {device}",
                        e.tensor.device(),
                        e.tensor.0.loc
                    ),
                })
            })
            .collect()
    }

    /// The structure (ops, attributes, types, operands, roots; never data, and constants
    /// lifted): the key of the executable cache on the realize path, so a hit builds no
    /// `ir::Graph`.
    fn key(&self) -> u128 {
        let mut f = tenjit_ir::Fingerprint::new();
        f.add("realize");
        self.structure_with(&mut f, true);
        f.add(&self.roots);
        f.finish()
    }

    /// An evaluation error of this walk's graph as realization compiles it (constants
    /// lifted) at the user's call: a failure tied to a node names the op the user called to
    /// build that node and where. The executable may have been compiled for another call
    /// site of the same structure; the location is this walk's.
    fn locate(&self, e: Error) -> Error {
        let Some(node) = e.unlocated_node() else {
            return e;
        };
        match self.entry_of_node(node.index()).and_then(|p| self.entries[p].call()) {
            Some((op, at)) => e.located(op, at),
            None => e,
        }
    }

    /// The entry behind node `node` of [`Flat::graph`] with constants lifted: each entry is
    /// one node, but for a lifted constant of rank above 0, which is two (its input, then the
    /// `expand` standing for the entry).
    fn entry_of_node(&self, node: usize) -> Option<usize> {
        let mut next = 0;
        for (p, e) in self.entries.iter().enumerate() {
            if let Some((_, ty)) = lifted(e) {
                if lifted_type(ty) != *ty {
                    next += 1;
                }
            }
            if next == node {
                return Some(p);
            }
            if next > node {
                return None;
            }
            next += 1;
        }
        None
    }

    /// The call that built each node of [`Flat::graph`] without lifting, by node index.
    fn calls(&self) -> Calls {
        self.entries.iter().map(Entry::call).collect()
    }

    /// The dims marked dynamic ([`Tensor::mark_dynamic`]) of the inputs of [`Flat::graph`]
    /// with `lift`.
    fn marks(&self, lift: bool) -> Vec<Mark> {
        let (mut index, mut marks) = (0, Vec::new());
        for e in &self.entries {
            if lift && lifted(e).is_some() {
                index += 1;
            } else if e.op.is_none() {
                marks.extend(e.tensor.marks().into_iter().map(|m| Mark { input: index, ..m }));
                index += 1;
            }
        }
        marks
    }

    /// The `ir::Graph`: inputs named `in0`, `in1`, ... in order of discovery. With `lift`,
    /// each lifted constant is an input too, named `s0`, `s1`, ..., of one element, expanded
    /// to the constant's shape.
    fn graph(&self, opts: TraceOptions, lift: bool) -> Graph {
        self.graph_in(Graph::new("main"), opts, lift).unwrap_or_else(|e| {
            panic!("tenjit bug: a node typed at creation no longer types in the graph: {e}")
        })
    }

    /// The graph of the entries added to `graph` (which may declare size symbols: a symbolic
    /// trace's), or the first node that does not type in it.
    fn graph_in(
        &self,
        mut graph: Graph,
        opts: TraceOptions,
        lift: bool,
    ) -> std::result::Result<Graph, String> {
        let mut ids: Vec<NodeId> = Vec::with_capacity(self.entries.len());
        let (mut inputs, mut scalars) = (0, 0);
        for e in &self.entries {
            if let Some((_, ty)) = lifted(e).filter(|_| lift) {
                let one = lifted_type(ty);
                let s = graph.add_input(format!("s{scalars}"), one.clone());
                scalars += 1;
                ids.push(if one == *ty {
                    s
                } else {
                    let loc = opts.locations.then(|| e.tensor.0.loc.to_string());
                    graph.add_at(Op::Expand { shape: ty.shape.clone() }, &[s], loc).map_err(|err| {
                        format!("a lifted constant does not expand to its shape {}: {err}", ty.shape)
                    })?
                });
                continue;
            }
            ids.push(match &e.op {
                None => {
                    inputs += 1;
                    graph.add_input(format!("in{}", inputs - 1), e.tensor.ty_unrecorded().clone())
                }
                Some((op, args)) => {
                    let args: Vec<NodeId> = args.iter().map(|&a| ids[a as usize]).collect();
                    let loc = opts.locations.then(|| e.tensor.0.loc.to_string());
                    graph
                        .add_at(op.clone(), &args, loc)
                        .map_err(|err| format!("{} built at {}: {err}", op.name(), e.tensor.0.loc))?
                }
            });
        }
        graph.set_outputs(self.roots.iter().map(|&r| ids[r as usize]).collect());
        Ok(graph)
    }
}

/// The value and type of entry `e` when realization makes it a runtime operand: a constant
/// whose value no simplifier rule matches ([`is_structural`]), and every constant seed or
/// offset of a `rand` (so an offset of 0 or 1 draws through the same program as any other).
/// Every other constant stays in the program and in the cache key.
fn lifted(e: &Entry) -> Option<(Scalar, &TensorType)> {
    let Some((Op::Const { value, ty }, _)) = &e.op else {
        return None;
    };
    (e.rand_word || !is_structural(*value, ty.dtype)).then_some((*value, ty))
}

/// The type of a lifted constant's input: its dtype, one element, its rank (so `expand` takes
/// it to the constant's shape; no buffer of the full shape is allocated).
fn lifted_type(ty: &TensorType) -> TensorType {
    TensorType::new(ty.dtype, Shape::new(&vec![1; ty.shape.rank()]))
}

/// The name of the API method the user called to build `t`, whose op is `op`: the method
/// recorded on the node, else PyTorch's name of the op where it differs from the IR's.
fn user_op(t: &Tensor, op: &Op) -> &'static str {
    if let Some(api) = t.0.api {
        return api;
    }
    match op {
        Op::Binary(tenjit_ir::ops::BinaryOp::FloorDiv) => "floor_divide",
        Op::Binary(tenjit_ir::ops::BinaryOp::Rem) => "remainder",
        other => other.name(),
    }
}

/// The graph behind `roots`, down to computed values (its inputs).
pub(crate) fn trace(roots: &[&Tensor], opts: TraceOptions) -> Traced {
    let flat = Flat::new(roots);
    let graph = flat.graph(opts, false);
    let leaves = flat.entries.iter().filter(|e| e.op.is_none()).map(|e| e.tensor.clone()).collect();
    Traced { graph, leaves, calls: flat.calls() }
}

/// [`trace`] into `graph`, which declares the size symbols of a symbolic trace
/// ([`crate::tensor::symbolic`]): every node typed again over them. Fails naming the first
/// node that does not type there.
pub(crate) fn trace_in(
    roots: &[&Tensor],
    opts: TraceOptions,
    graph: Graph,
) -> std::result::Result<Traced, String> {
    let flat = Flat::new(roots);
    let graph = flat.graph_in(graph, opts, false)?;
    let leaves = flat.entries.iter().filter(|e| e.op.is_none()).map(|e| e.tensor.clone()).collect();
    Ok(Traced { graph, leaves, calls: flat.calls() })
}

/// Computes the values of `tensors` together (one graph per device, shared work computed
/// once).
pub fn try_realize(tensors: &[&Tensor]) -> Result<()> {
    let pending: Vec<&Tensor> = tensors.iter().copied().filter(|t| !t.is_realized()).collect();
    let Some(first) = pending.first() else {
        return Ok(());
    };
    // Tensors of another device than the first are realized by a graph of their own.
    let device = first.device();
    let (here, elsewhere): (Vec<&Tensor>, Vec<&Tensor>) = pending.iter().partition(|t| t.device() == device);
    realize_on(device, here)?;
    try_realize(&elsewhere)
}

/// Computes the values of `asked`, unrealized tensors all on `device`, together with the
/// tensors waiting for the next realization on that device (see [`crate::lazy`]).
fn realize_on(device: Device, asked: Vec<&Tensor>) -> Result<()> {
    let deferred = take_pending(device);
    let mut pending: Vec<&Tensor> = asked;
    for l in &deferred {
        if !pending.iter().any(|t| t.same_node(l)) {
            pending.push(l);
        }
    }
    if pending.is_empty() {
        return Ok(());
    }
    device.check_available()?;
    let start = std::time::Instant::now();
    let flat = Flat::new(&pending);
    let opts = TraceOptions { locations: false };
    let target = match crate::compile::target(device) {
        Target::Interp => {
            let inputs: Vec<Buffer> = flat.input_values(device, true)?.iter().map(host_copy).collect();
            let outputs = tenjit_ir::interp::eval(&flat.graph(opts, true), &inputs)
                .map_err(|e| flat.locate(Error::from_interp(e)))?;
            for (t, buf) in pending.iter().zip(outputs) {
                t.0.value.set(Value::Host(Arc::new(buf)));
                release_operands(t);
            }
            return Ok(());
        }
        Target::Device(target) => target,
    };
    target.check_available()?;
    let graph = || (flat.graph(opts, true), flat.marks(true));
    let exe = crate::compile::executable_lazy(target, flat.key(), graph, start)?;
    let inputs = flat.input_values(device, true)?;
    if target == device {
        let mut next = pending.iter();
        return exe
            .run(&inputs, &mut |value| {
                let t = next.next().expect("one output per tensor asked for");
                t.0.value.set(value);
                release_operands(t);
            })
            .map_err(|e| flat.locate(e));
    }
    // CPU tensors computed on another device (the `cuda` backend setting) come back to the
    // host.
    let outputs = crate::compile::run_to_host(exe.as_ref(), &inputs, target).map_err(|e| flat.locate(e))?;
    for (t, buf) in pending.iter().zip(outputs) {
        t.0.value.set(Value::Host(Arc::new(buf)));
        release_operands(t);
    }
    Ok(())
}

/// A host value's buffer, copied (the interpreter takes its inputs by value).
fn host_copy(value: &Value) -> Buffer {
    match value {
        Value::Host(b) => (**b).clone(),
        Value::Device(_) => unreachable!("the interpreter runs CPU tensors, whose values are in host memory"),
    }
}

/// Computes what waits for the next realization (on every device), and nothing else.
pub(crate) fn realize_pending() -> Result<()> {
    for device in pending_devices() {
        realize_on(device, Vec::new())?;
    }
    Ok(())
}

/// Drops a freshly realized node's operands, unless gradients flow through it.
fn release_operands(t: &Tensor) {
    // Nodes gradients flow through keep their operands for `backward()`.
    if t.grad_state() == INTERIOR {
        return;
    }
    // The value is set first, then the operands dropped (see `trace`).
    let old = std::mem::take(&mut *t.0.inputs.lock().unwrap_or_else(|p| p.into_inner()));
    drop(old);
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

    /// The realized value, in host memory (copied from its GPU the first time it is asked for,
    /// for a tensor on one).
    pub(crate) fn buffer(&self) -> Result<Arc<Buffer>> {
        try_realize(&[self])?;
        let host = self.0.value.to_host(self.device())?;
        Ok(host.expect("a realized tensor has a value"))
    }
}
