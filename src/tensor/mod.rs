//! The `Tensor` handle: a cheap, thread-safe reference to an immutable node of a lazy graph.
//!
//! Every op on tensors records a node holding an `ir` op, its operands, its static type, its
//! device and the caller's source location; nothing is computed until a value is asked for
//! ([`Tensor::realize`], `item`, `to_vec`, printing). A realized node keeps its value and drops
//! its operands, so it becomes a buffer-backed leaf: a loop that realizes each step keeps the
//! graph and memory bounded.
//!
//! The user ops are grouped as the tutorial groups them: [`creation`], [`random`],
//! [`elementwise`], [`reduce`], [`shape`], [`index`], [`mask`], [`linalg`], [`join`], [`convert`],
//! [`inplace`], [`display`] and [`safetensors`].

pub mod convert;
pub mod creation;
mod depth;
pub mod display;
mod dynamic;
pub mod elementwise;
pub mod index;
pub mod inplace;
pub mod join;
pub mod linalg;
pub mod mask;
pub mod random;
pub mod reduce;
pub mod safetensors;
pub mod shape;
pub(crate) mod symbolic;
pub mod symsize;

use crate::device::Device;
use crate::error::{Error, OpErrorKind, Result};
use crate::runtime::{Slot, Value};
use smallvec::SmallVec;
use std::cell::Cell;
use std::panic::Location;
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use tenjit_ir::{Buffer, DType, Op, Shape, TensorType};

/// Torch-style element strides of a tensor's logical layout. tenjit's values are always
/// materialized contiguously, but `view` must fail exactly where PyTorch's fails, so each node
/// records the strides PyTorch would give it.
pub(crate) type Strides = SmallVec<[isize; 4]>;

/// The contiguous (row-major) strides of `shape`.
pub(crate) fn contiguous_strides(shape: &Shape) -> Strides {
    shape.strides().iter().map(|&s| s as isize).collect()
}

/// The node does not require grad.
pub(crate) const NO_GRAD: u8 = 0;
/// A leaf that requires grad: gradients accumulate into it and stop.
pub(crate) const LEAF: u8 = 1;
/// Computed from something that requires grad: gradients flow through it.
pub(crate) const INTERIOR: u8 = 2;

thread_local! {
    /// Whether ops record gradient information on this thread (see [`crate::autograd`]).
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// Whether ops record gradient information on this thread (false inside `no_grad`).
pub(crate) fn grad_enabled() -> bool {
    GRAD_ENABLED.with(Cell::get)
}

/// Turns gradient recording on this thread on or off; returns the previous setting.
pub(crate) fn set_grad_enabled(on: bool) -> bool {
    GRAD_ENABLED.with(|g| g.replace(on))
}

/// The grad state of a node of type `ty` computed from `inputs`: gradients flow through it
/// when it is a float, recording is on, and one of its inputs requires grad.
pub(crate) fn state_of_result(ty: &TensorType, inputs: &[&Tensor]) -> u8 {
    if ty.dtype.is_float() && grad_enabled() && inputs.iter().any(|t| t.grad_state() != NO_GRAD) {
        INTERIOR
    } else {
        NO_GRAD
    }
}

pub(crate) struct Node {
    /// The op; `None` for a leaf created from data.
    pub(crate) op: Option<Op>,
    pub(crate) ty: TensorType,
    pub(crate) device: Device,
    pub(crate) strides: Strides,
    pub(crate) loc: &'static Location<'static>,
    /// The name of the API method that built the node when it is not its op's (`index_select`
    /// builds a `gather`), so an error found when it is evaluated names what the user called.
    pub(crate) api: Option<&'static str>,
    /// Operands; emptied once the node is realized.
    pub(crate) inputs: Mutex<Vec<Tensor>>,
    /// The value once realized, where it was computed (for a tensor on a GPU, with a host
    /// copy made when the host first asks for it).
    pub(crate) value: Slot,
    /// Whether gradients flow through or into this node (see [`crate::autograd`]).
    pub(crate) grad_state: AtomicU8,
    /// The gradient accumulated by `backward()` (leaves that require grad).
    pub(crate) grad: Mutex<Option<Tensor>>,
    /// How many ops this node is from computed values, as last known (0 for data; an
    /// operand computed since makes it an overestimate, corrected when it matters); see
    /// `depth.rs`.
    pub(crate) depth: AtomicU32,
    /// Computed from sources alone (constants, `arange`), so computable on any device: until
    /// it is computed, an op combining it with tensors of a device runs it there.
    pub(crate) floating: bool,
    /// For a tensor made by moving one that requires grad to another device
    /// ([`Tensor::to`]): that tensor, which the move's gradient goes back to (see
    /// [`crate::autograd`]).
    pub(crate) moved_from: Option<Tensor>,
    /// The dims marked dynamic ([`Tensor::mark_dynamic`]).
    pub(crate) dynamic: Mutex<Vec<tenjit_ir::graph::Mark>>,
}

impl Drop for Node {
    /// Drops a long chain of lazy nodes iteratively: a recursive drop of 100,000 chained
    /// nodes would overflow the stack.
    fn drop(&mut self) {
        crate::runtime::live::node_dropped();
        // The value itself is given back to its backend by the slot's own drop.
        let mut stack = std::mem::take(self.inputs.get_mut().unwrap_or_else(|p| p.into_inner()));
        while let Some(mut t) = stack.pop() {
            // The last handle of an input: take its inputs here, so that its own drop (at the
            // end of this iteration, with no inputs left) does not recurse. `get_mut` leaves
            // the node in place (moving it out of the `Arc` copies it: 2% of W10's time); a
            // node a weak handle still sees is moved out.
            match Arc::get_mut(&mut t.0) {
                Some(node) => stack.append(node.inputs.get_mut().unwrap_or_else(|p| p.into_inner())),
                None => {
                    if let Some(mut node) = Arc::into_inner(t.0) {
                        stack.append(node.inputs.get_mut().unwrap_or_else(|p| p.into_inner()));
                    }
                }
            }
        }
    }
}

/// A lazy tensor: a cheap `Clone` handle (`Arc`) to a node of the graph, `Send + Sync`, with no
/// lifetime and no context argument.
///
/// # Threads
///
/// Tensors may be shared between threads and used from any of them:
/// - building ops on shared tensors, and realizing them (`item`, `to_vec`, printing,
///   [`crate::realize()`]) from several threads at once: the first value stored is the
///   one every thread sees;
/// - `backward()` from several threads on graphs that share leaves: each call adds its
///   gradient to a leaf's `grad()` in one step under that leaf's lock, so no contribution is lost
///   (the order of the additions, and so the rounding of the sum, depends on the threads);
/// - the executable cache and the compile reports are shared by the process.
///
/// Per thread: [`crate::no_grad`] and [`crate::enable_grad`] (as in PyTorch), and the
/// broadcast warnings [`crate::take_warnings`] returns. Per process: [`crate::manual_seed`]
/// (one generator; draws from several threads interleave), [`crate::set_backend`] and
/// [`crate::set_broadcast_check`]. In-place ops on values (`add_`, `sub_`, `zero_`, ...) take
/// `&mut self` and point this handle at a new node, so a clone another thread holds keeps the
/// old value; `set_grad` and `zero_grad` act on the node's gradient, which every clone shares.
///
/// ```
/// use tenjit::prelude::*;
/// let a = tensor!([1.0, 2.0, 3.0]);
/// let b = tensor!([4.0, 5.0, 6.0]);
/// let c = &a + &b; // recorded, not computed
/// assert_eq!(c.to_string(), "tensor([5., 7., 9.])");
/// ```
#[derive(Clone)]
pub struct Tensor(pub(crate) Arc<Node>);

impl Tensor {
    /// A leaf holding `buffer`.
    #[track_caller]
    pub(crate) fn from_buffer(buffer: Buffer, device: Device) -> Tensor {
        Tensor::from_buffer_at(buffer, device, Location::caller())
    }

    /// A leaf holding `buffer`, recorded at `loc`.
    pub(crate) fn from_buffer_at(buffer: Buffer, device: Device, loc: &'static Location<'static>) -> Tensor {
        let ty = buffer.ty();
        Tensor::from_value(Value::Host(Arc::new(buffer)), ty, device, loc)
    }

    /// A leaf of type `ty` on `device` holding `value`, which lives in that device's memory.
    pub(crate) fn from_value(
        value: Value,
        ty: TensorType,
        device: Device,
        loc: &'static Location<'static>,
    ) -> Tensor {
        crate::runtime::live::node_created();
        Tensor(Arc::new(Node {
            op: None,
            strides: contiguous_strides(&ty.shape),
            value: Slot::with(value, bytes_of(&ty)),
            ty,
            device,
            loc,
            api: None,
            inputs: Mutex::new(Vec::new()),
            grad_state: AtomicU8::new(NO_GRAD),
            grad: Mutex::new(None),
            depth: AtomicU32::new(0),
            floating: false,
            moved_from: None,
            dynamic: Default::default(),
        }))
    }

    /// `src` moved to `device`, where its value is `value`: a leaf of the graph on `device`
    /// that, when `src` requires grad and recording is on, passes its gradient back to `src`
    /// (moved back to `src`'s device) instead of keeping it, as torch's `.to` does.
    pub(crate) fn moved(
        src: &Tensor,
        value: Value,
        device: Device,
        loc: &'static Location<'static>,
    ) -> Tensor {
        let t = Tensor::from_value(value, src.ty().clone(), device, loc);
        if state_of_result(src.ty(), &[src]) == NO_GRAD {
            return t;
        }
        let mut node = Arc::into_inner(t.0).expect("a node no one else holds yet");
        node.moved_from = Some(src.clone());
        node.grad_state = AtomicU8::new(INTERIOR);
        Tensor(Arc::new(node))
    }

    /// A node applying `op` to `inputs`, typed by the op table, with contiguous strides.
    #[track_caller]
    pub(crate) fn from_op(op: Op, inputs: &[&Tensor]) -> Result<Tensor> {
        let strides = None;
        Tensor::from_op_strided(op, inputs, strides)
    }

    /// [`Tensor::from_op`] for API method `api`, whose name errors found in the node's data
    /// use instead of the op's.
    #[track_caller]
    pub(crate) fn from_op_named(op: Op, inputs: &[&Tensor], api: &'static str) -> Result<Tensor> {
        Tensor::build(op, inputs, None, Location::caller(), Some(api))
    }

    /// [`Tensor::from_op`] with the torch-style strides of the result (for views).
    #[track_caller]
    pub(crate) fn from_op_strided(op: Op, inputs: &[&Tensor], strides: Option<Strides>) -> Result<Tensor> {
        Tensor::from_op_at(op, inputs, strides, Location::caller())
    }

    /// [`Tensor::from_op_strided`] recorded at `loc` (for nodes the library builds on the
    /// user's behalf, such as gradients).
    pub(crate) fn from_op_at(
        op: Op,
        inputs: &[&Tensor],
        strides: Option<Strides>,
        loc: &'static Location<'static>,
    ) -> Result<Tensor> {
        Tensor::build(op, inputs, strides, loc, None)
    }

    /// [`Tensor::from_op_at`] for API function `api`, whose name errors found in the node's
    /// data use instead of the op's.
    pub(crate) fn from_op_named_at(
        op: Op,
        inputs: &[&Tensor],
        api: &'static str,
        loc: &'static Location<'static>,
    ) -> Result<Tensor> {
        Tensor::build(op, inputs, None, loc, Some(api))
    }

    /// A node applying `op` to `inputs` at `loc`, built by API method `api` if given.
    fn build(
        op: Op,
        inputs: &[&Tensor],
        strides: Option<Strides>,
        loc: &'static Location<'static>,
        api: Option<&'static str>,
    ) -> Result<Tensor> {
        // Constants, `arange` and what is computed from them alone are computed wherever
        // their consumer is: they take the device of the other operands.
        let floating = inputs.iter().all(|t| t.is_floating());
        let device = inputs.iter().find(|t| !t.is_floating()).map(|t| t.device()).unwrap_or_default();
        if let Some(other) = inputs.iter().find(|t| !t.is_floating() && t.device() != device) {
            return Err(Error::op(
                op.name(),
                format!("operands are on different devices, {device} and {}", other.device()),
            ));
        }
        let tys: Vec<&TensorType> = inputs.iter().map(|t| &t.0.ty).collect();
        let ty = match symbolic::type_of(&op, &tys) {
            Some(ty) => ty,
            None => op.infer(&tys).map_err(|e| Error::from_op_error(e, loc))?,
        };
        let strides = strides.unwrap_or_else(|| contiguous_strides(&ty.shape));
        let grad_state = state_of_result(&ty, inputs);
        crate::runtime::live::node_created();
        let t = Tensor(Arc::new(Node {
            op: Some(op),
            value: Slot::new(bytes_of(&ty)),
            ty,
            device,
            strides,
            loc,
            api,
            inputs: Mutex::new(inputs.iter().map(|t| (*t).clone()).collect()),
            grad_state: AtomicU8::new(grad_state),
            grad: Mutex::new(None),
            depth: AtomicU32::new(depth::depth_of(inputs)),
            floating,
            moved_from: None,
            dynamic: Default::default(),
        }));
        depth::bound_depth(&t)?;
        Ok(t)
    }

    /// The shape, as PyTorch's `x.shape`.
    #[track_caller]
    pub fn shape(&self) -> &[usize] {
        self.record_size_read("shape()");
        self.0.ty.shape.dims()
    }

    /// The shape, as PyTorch's `x.size()` (the same as [`Tensor::shape`]).
    #[track_caller]
    pub fn size(&self) -> &[usize] {
        self.record_size_read("size()");
        self.0.ty.shape.dims()
    }

    /// The shape as an `ir` [`Shape`].
    #[track_caller]
    pub fn ir_shape(&self) -> &Shape {
        self.record_size_read("ir_shape()");
        &self.0.ty.shape
    }

    /// The static type (dtype and shape).
    #[track_caller]
    pub fn ty(&self) -> &TensorType {
        self.record_size_read("ty()");
        &self.0.ty
    }

    /// The number of dimensions (`x.dim()`, `x.ndim`).
    pub fn dim(&self) -> usize {
        self.0.ty.shape.rank()
    }

    /// The number of elements.
    #[track_caller]
    pub fn numel(&self) -> usize {
        self.record_size_read("numel()");
        self.0.ty.shape.numel()
    }

    /// The shape, for the library's reads that cannot change a graph at another size of a
    /// symbolic dim (see [`symbolic`]): checks the symbolic type rules make again, choices
    /// that depend only on whether a size is 1.
    pub(crate) fn shape_unrecorded(&self) -> &[usize] {
        self.0.ty.shape.dims()
    }

    /// The dims as expressions (constants where concrete), for the library's shape arithmetic
    /// that follows symbolic dims.
    pub(crate) fn sym_dims(&self) -> Vec<tenjit_ir::sym::Dim> {
        self.0.ty.shape.sym_dims()
    }

    /// The type, read as [`Tensor::shape_unrecorded`] reads the shape.
    pub(crate) fn ty_unrecorded(&self) -> &TensorType {
        &self.0.ty
    }

    /// Whether dim `d` of this tensor and dim `od` of `other` have one size: without reading
    /// sizes where both are the same expression (one symbol), else by their sizes, a read.
    #[track_caller]
    pub(crate) fn same_size(&self, d: usize, other: &Tensor, od: usize) -> bool {
        let (a, b) = (&self.0.ty.shape, &other.0.ty.shape);
        if (a.is_symbolic() || b.is_symbolic()) && a.sym_dims()[d] == b.sym_dims()[od] {
            return true;
        }
        self.shape()[d] == other.shape()[od]
    }

    /// Whether the last `sizes.len()` dims are `sizes` (false when the rank is smaller): by
    /// the dims' constants when they are, reading sizes only where a dim is symbolic.
    #[track_caller]
    pub(crate) fn trailing_dims_are(&self, sizes: &[usize]) -> bool {
        let Some(first) = self.dim().checked_sub(sizes.len()) else { return false };
        let dims = self.sym_dims();
        let consts: Option<Vec<usize>> =
            dims[first..].iter().map(|d| d.as_const().map(|c| c as usize)).collect();
        match consts {
            Some(c) => c == sizes,
            None => self.shape()[first..] == *sizes,
        }
    }

    /// Records, in an active symbolic trace, that the caller read this tensor's sizes, if one
    /// of them is symbolic.
    #[track_caller]
    fn record_size_read(&self, what: &str) {
        if self.0.ty.shape.is_symbolic() {
            symbolic::record_read(what, Location::caller());
        }
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.0.ty.dtype
    }

    /// The device the tensor lives on.
    pub fn device(&self) -> Device {
        self.0.device
    }

    /// Whether the value has been computed (or the tensor was created from data).
    pub fn is_realized(&self) -> bool {
        self.0.value.is_set()
    }

    /// Whether this node is computed from constants alone and not computed yet, so it goes to
    /// whichever device its consumer is on.
    pub(crate) fn is_floating(&self) -> bool {
        self.0.floating && !self.is_realized()
    }

    /// Whether two handles refer to the same node.
    pub fn same_node(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// Whether gradients flow through or into this node: [`NO_GRAD`], [`LEAF`] or
    /// [`INTERIOR`].
    pub(crate) fn grad_state(&self) -> u8 {
        self.0.grad_state.load(Ordering::Relaxed)
    }

    pub(crate) fn strides(&self) -> &Strides {
        &self.0.strides
    }
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor({}, {}", self.0.ty, self.0.device)?;
        if let Some(op) = &self.0.op {
            write!(f, ", {}", op.name())?;
        }
        write!(f, ", at {})", self.0.loc)
    }
}

/// The size in bytes of a value of type `ty`.
fn bytes_of(ty: &TensorType) -> usize {
    ty.shape.numel().saturating_mul(ty.dtype.size_bytes())
}

/// Normalizes a possibly negative dim for a tensor of rank `rank` (`-1` is the last), as
/// PyTorch's `maybe_wrap_dim`.
#[track_caller]
pub(crate) fn wrap_dim(op: &'static str, dim: isize, rank: usize) -> Result<usize> {
    let r = rank.max(1) as isize;
    if dim < -r || dim >= r {
        return Err(Error::op_of(
            OpErrorKind::Axis,
            op,
            format!("dimension out of range (expected to be in range of [{}, {}], but got {dim})", -r, r - 1),
        ));
    }
    Ok(if dim < 0 { (dim + r) as usize } else { dim as usize })
}
