//! The `Tensor` handle: a cheap, thread-safe reference to an immutable node of a lazy graph.
//!
//! Every op on tensors records a node holding an `ir` op, its operands, its static type, its
//! device and the caller's source location; nothing is computed until a value is asked for
//! ([`Tensor::realize`], `item`, `to_vec`, printing). A realized node keeps its value and drops
//! its operands, so it becomes a buffer-backed leaf: a loop that realizes each step keeps the
//! graph and memory bounded.
//!
//! The user ops are grouped as the tutorial groups them: [`creation`], [`random`],
//! [`elementwise`], [`reduce`], [`shape`], [`index`], [`linalg`], [`join`], [`convert`],
//! [`inplace`] and [`display`].

pub mod convert;
pub mod creation;
pub mod display;
pub mod elementwise;
pub mod index;
pub mod inplace;
pub mod join;
pub mod linalg;
pub mod random;
pub mod reduce;
pub mod shape;

use crate::backend::cuda::runtime::DeviceBuffer;
use crate::device::Device;
use crate::error::{Error, Result};
use smallvec::SmallVec;
use std::panic::Location;
use std::sync::atomic::AtomicU8;
use std::sync::{Arc, Mutex, OnceLock};
use tenjit_ir::{Buffer, DType, Op, Shape, TensorType};

/// Torch-style element strides of a tensor's logical layout. tenjit's values are always
/// materialized contiguously, but `view` must fail exactly where PyTorch's fails, so each node
/// records the strides PyTorch would give it.
pub(crate) type Strides = SmallVec<[isize; 4]>;

/// The contiguous (row-major) strides of `shape`.
pub(crate) fn contiguous_strides(shape: &Shape) -> Strides {
    shape.strides().iter().map(|&s| s as isize).collect()
}

pub(crate) struct Node {
    /// The op; `None` for a leaf created from data.
    pub(crate) op: Option<Op>,
    pub(crate) ty: TensorType,
    pub(crate) device: Device,
    pub(crate) strides: Strides,
    pub(crate) loc: &'static Location<'static>,
    /// Operands; emptied once the node is realized.
    pub(crate) inputs: Mutex<Vec<Tensor>>,
    /// The value in host memory, once realized (for a tensor on a GPU: a copy, made when the
    /// host first asks for the value).
    pub(crate) value: OnceLock<Arc<Buffer>>,
    /// The value in a GPU's memory, once realized there (tensors on `Device::Cuda`).
    pub(crate) device_value: OnceLock<Arc<DeviceBuffer>>,
    /// Whether gradients flow through or into this node (see [`crate::autograd`]).
    pub(crate) grad_state: AtomicU8,
    /// The gradient accumulated by `backward()` (leaves that require grad).
    pub(crate) grad: Mutex<Option<Tensor>>,
}

impl Drop for Node {
    /// Drops a long chain of lazy nodes iteratively: a recursive drop of 100,000 chained
    /// nodes would overflow the stack.
    fn drop(&mut self) {
        // A value no other handle shares goes back to the backend's buffer pool.
        if let Some(buf) = self.value.take().and_then(Arc::into_inner) {
            crate::backend::cpu::memory::release(buf.into_data());
        }
        let mut stack = std::mem::take(self.inputs.get_mut().unwrap_or_else(|p| p.into_inner()));
        while let Some(t) = stack.pop() {
            if let Some(mut node) = Arc::into_inner(t.0) {
                stack.append(node.inputs.get_mut().unwrap_or_else(|p| p.into_inner()));
            }
        }
    }
}

/// A lazy tensor: a cheap `Clone` handle (`Arc`) to a node of the graph, `Send + Sync`, with no
/// lifetime and no context argument.
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
        let value = OnceLock::new();
        let _ = value.set(Arc::new(buffer));
        Tensor::leaf(ty, device, loc, value, OnceLock::new())
    }

    /// A leaf on `device` holding `value`, which lives on that GPU.
    pub(crate) fn from_device_buffer(
        value: DeviceBuffer,
        device: Device,
        loc: &'static Location<'static>,
    ) -> Tensor {
        let ty = value.ty().clone();
        let device_value = OnceLock::new();
        let _ = device_value.set(Arc::new(value));
        Tensor::leaf(ty, device, loc, OnceLock::new(), device_value)
    }

    fn leaf(
        ty: TensorType,
        device: Device,
        loc: &'static Location<'static>,
        value: OnceLock<Arc<Buffer>>,
        device_value: OnceLock<Arc<DeviceBuffer>>,
    ) -> Tensor {
        Tensor(Arc::new(Node {
            op: None,
            strides: contiguous_strides(&ty.shape),
            ty,
            device,
            loc,
            inputs: Mutex::new(Vec::new()),
            value,
            device_value,
            grad_state: AtomicU8::new(crate::autograd::NO_GRAD),
            grad: Mutex::new(None),
        }))
    }

    /// A node applying `op` to `inputs`, typed by the op table, with contiguous strides.
    #[track_caller]
    pub(crate) fn from_op(op: Op, inputs: &[&Tensor]) -> Result<Tensor> {
        let strides = None;
        Tensor::from_op_strided(op, inputs, strides)
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
        let device = inputs.first().map(|t| t.device()).unwrap_or_default();
        if let Some(other) = inputs.iter().find(|t| t.device() != device) {
            return Err(Error::op(
                op.name(),
                format!("operands are on different devices, {device} and {}", other.device()),
            ));
        }
        let tys: Vec<&TensorType> = inputs.iter().map(|t| &t.0.ty).collect();
        let ty = op.infer(&tys).map_err(|e| Error::from_op_error(e, loc))?;
        let strides = strides.unwrap_or_else(|| contiguous_strides(&ty.shape));
        let grad_state = crate::autograd::state_of_result(&ty, inputs);
        Ok(Tensor(Arc::new(Node {
            op: Some(op),
            ty,
            device,
            strides,
            loc,
            inputs: Mutex::new(inputs.iter().map(|t| (*t).clone()).collect()),
            value: OnceLock::new(),
            device_value: OnceLock::new(),
            grad_state: AtomicU8::new(grad_state),
            grad: Mutex::new(None),
        })))
    }

    /// The shape, as PyTorch's `x.shape`.
    pub fn shape(&self) -> &[usize] {
        self.0.ty.shape.dims()
    }

    /// The shape, as PyTorch's `x.size()` (the same as [`Tensor::shape`]).
    pub fn size(&self) -> &[usize] {
        self.shape()
    }

    /// The shape as an `ir` [`Shape`].
    pub fn ir_shape(&self) -> &Shape {
        &self.0.ty.shape
    }

    /// The static type (dtype and shape).
    pub fn ty(&self) -> &TensorType {
        &self.0.ty
    }

    /// The number of dimensions (`x.dim()`, `x.ndim`).
    pub fn dim(&self) -> usize {
        self.0.ty.shape.rank()
    }

    /// The number of elements.
    pub fn numel(&self) -> usize {
        self.0.ty.shape.numel()
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
        self.0.value.get().is_some() || self.0.device_value.get().is_some()
    }

    /// Whether two handles refer to the same node.
    pub fn same_node(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    pub(crate) fn strides(&self) -> &Strides {
        &self.0.strides
    }

    pub(crate) fn value(&self) -> Option<&Arc<Buffer>> {
        self.0.value.get()
    }

    /// The value on its GPU, when it has been computed there.
    pub(crate) fn device_value(&self) -> Option<&Arc<DeviceBuffer>> {
        self.0.device_value.get()
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

/// Normalizes a possibly negative dim for a tensor of rank `rank` (`-1` is the last), as
/// PyTorch's `maybe_wrap_dim`.
#[track_caller]
pub(crate) fn wrap_dim(op: &'static str, dim: isize, rank: usize) -> Result<usize> {
    let r = rank.max(1) as isize;
    if dim < -r || dim >= r {
        return Err(Error::op(
            op,
            format!("dimension out of range (expected to be in range of [{}, {}], but got {dim})", -r, r - 1),
        ));
    }
    Ok(if dim < 0 { (dim + r) as usize } else { dim as usize })
}
