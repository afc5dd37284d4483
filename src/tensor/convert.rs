//! Values out and in: `item`, `to_vec`, ndarray interop, `.npy` files, devices, and torch's
//! dtype shortcuts (`half`, `bfloat16`, `float`, `double`).
//!
//! ndarray interop: `Tensor::from(array)` takes the array's storage without copying when the
//! array is in standard (row-major, offset 0) layout and copies otherwise; `to_ndarray`
//! copies, because a realized tensor's buffer is shared by every handle to it.

use super::Tensor;
use crate::device::Device;
use crate::error::{Error, OpErrorKind, OrPanic, Result};
use crate::runtime::Value;
use ndarray::{Array, ArrayD, Dimension, IxDyn};
use std::path::Path;
use std::sync::Arc;
use tenjit_ir::{Buffer, DType, Element};

impl Tensor {
    /// Converts to `f16` (`x.half()`): each value rounded to nearest, ties to even.
    ///
    /// ```
    /// use tenjit::prelude::*;
    /// let x = tensor!([1.0, 65520.0]).half();
    /// assert_eq!(x.dtype(), DType::F16);
    /// assert_eq!(x.to_vec::<f32>(), [1.0, f32::INFINITY]);
    /// ```
    #[track_caller]
    pub fn half(&self) -> Tensor {
        self.to_dtype(DType::F16)
    }

    /// Converts to `bf16` (`x.bfloat16()`): each value rounded to nearest, ties to even.
    ///
    /// ```
    /// use tenjit::prelude::*;
    /// let x = tensor!([1.0, 2.5, 1.00390625]).bfloat16();
    /// assert_eq!(x.to_string(), "tensor([1.0000, 2.5000, 1.0000], dtype=torch.bfloat16)");
    /// ```
    #[track_caller]
    pub fn bfloat16(&self) -> Tensor {
        self.to_dtype(DType::BF16)
    }

    /// Converts to `f32` (`x.float()`).
    #[track_caller]
    pub fn float(&self) -> Tensor {
        self.to_dtype(DType::F32)
    }

    /// Converts to `f64` (`x.double()`).
    #[track_caller]
    pub fn double(&self) -> Tensor {
        self.to_dtype(DType::F64)
    }

    /// The value of a one-element tensor as `f64` (integers convert exactly up to 2^53), as
    /// `x.item()`.
    ///
    /// ```
    /// use tenjit::prelude::*;
    /// assert_eq!(tensor!([[1., 2.], [3., 4.]]).sum().item(), 10.0);
    /// ```
    #[track_caller]
    pub fn item(&self) -> f64 {
        self.try_item().or_panic()
    }

    /// [`Tensor::item`] as a `Result`: fails unless the tensor has exactly one element.
    #[track_caller]
    pub fn try_item(&self) -> Result<f64> {
        if self.numel() != 1 {
            return Err(Error::op_of(
                OpErrorKind::Shape,
                "item",
                format!(
                    "a Tensor with {} elements cannot be converted to Scalar (shape {})",
                    self.numel(),
                    self.ir_shape()
                ),
            ));
        }
        Ok(self.buffer()?.scalar(0).as_f64())
    }

    /// The elements in row-major order, converted to `T` as a cast would.
    ///
    /// ```
    /// use tenjit::prelude::*;
    /// assert_eq!(Tensor::arange(3).to_vec::<i64>(), vec![0, 1, 2]);
    /// assert_eq!(Tensor::arange(3).to_vec::<f32>(), vec![0.0, 1.0, 2.0]);
    /// ```
    #[track_caller]
    pub fn to_vec<T: Element>(&self) -> Vec<T> {
        self.try_to_vec().or_panic()
    }

    /// [`Tensor::to_vec`] as a `Result` (evaluation errors).
    pub fn try_to_vec<T: Element>(&self) -> Result<Vec<T>> {
        let buf = self.buffer()?;
        let copy = |s: &[T]| {
            // A copy the system cannot hold is an error, not an abort.
            let mut v = Vec::new();
            v.try_reserve_exact(s.len()).map_err(|_| {
                Error::eval(
                    crate::EvalErrorKind::OutOfMemory,
                    format!("out of memory: cannot copy the {} value of this tensor into a Vec", self.ty()),
                )
            })?;
            v.extend_from_slice(s);
            Ok(v)
        };
        match buf.as_slice::<T>() {
            Some(s) => copy(s),
            None => copy(buf.cast(T::DTYPE).as_slice::<T>().expect("cast to T's dtype")),
        }
    }

    /// The value as an `ir::Buffer` (row-major, with its shape).
    #[track_caller]
    pub fn to_buffer(&self) -> Buffer {
        (*self.buffer().or_panic()).clone()
    }

    /// The value as an `ndarray` array of `T` (a copy, converted as a cast would).
    #[track_caller]
    pub fn to_ndarray<T: Element>(&self) -> ArrayD<T> {
        let v = self.to_vec::<T>();
        ArrayD::from_shape_vec(IxDyn(self.shape()), v).expect("the shape matches the element count")
    }

    /// Writes the value to a NumPy `.npy` file.
    #[track_caller]
    pub fn save_npy(&self, path: impl AsRef<Path>) -> Result<()> {
        let buf = self.buffer()?;
        let p = path.as_ref();
        tenjit_ir::npy::save(p, &buf)
            .map_err(|e| Error::Io { path: p.display().to_string(), message: e.to_string() })
    }

    /// Reads a NumPy `.npy` file (`f16`, `f32`, `f64`, `i32`, `i64` or `bool`).
    pub fn load_npy(path: impl AsRef<Path>) -> Result<Tensor> {
        let p = path.as_ref();
        let buf = tenjit_ir::npy::load(p)
            .map_err(|e| Error::Io { path: p.display().to_string(), message: e.to_string() })?;
        Ok(Tensor::from_buffer(buf, Device::Cpu))
    }

    /// The tensor on `device`, as `x.to(device)`; fails for a device this process lacks. The
    /// move is differentiable, as torch's: when `self` requires grad, so does the result, and
    /// the gradient that reaches it is moved back to `self`'s device and flows on into `self`
    /// (the result is then not a leaf).
    #[track_caller]
    pub fn to(&self, device: Device) -> Tensor {
        self.try_to(device).or_panic()
    }

    /// [`Tensor::to`] as a `Result`: fails when the device is not available (no CUDA driver,
    /// or no such GPU) or the value cannot be computed.
    #[track_caller]
    pub fn try_to(&self, device: Device) -> Result<Tensor> {
        device.check_available()?;
        if device == self.device() {
            return Ok(self.clone());
        }
        let loc = std::panic::Location::caller();
        // The value is computed where the tensor lives, then copied.
        let host = self.buffer()?;
        let value = match device {
            Device::Cpu => Value::Host(Arc::new((*host).clone())),
            Device::Cuda(_) => crate::runtime::upload(&host, device)?,
        };
        Ok(Tensor::moved(self, value, device, loc))
    }

    /// The tensor on the CPU.
    #[track_caller]
    pub fn cpu(&self) -> Tensor {
        self.to(Device::Cpu)
    }

    /// The tensor on the first CUDA device (`cuda:0`); panics when none is available (see
    /// [`crate::cuda::is_available`]).
    #[track_caller]
    pub fn cuda(&self) -> Tensor {
        self.to(Device::Cuda(0))
    }
}

impl<T: Element, D: Dimension> From<Array<T, D>> for Tensor {
    /// Takes an ndarray array; zero-copy when it is in standard layout.
    #[track_caller]
    fn from(a: Array<T, D>) -> Tensor {
        let shape: Vec<usize> = a.shape().to_vec();
        let data = if a.is_standard_layout() {
            let (v, offset) = a.into_raw_vec_and_offset();
            if offset.unwrap_or(0) == 0 && v.len() == shape.iter().product::<usize>() {
                v
            } else {
                let a = ArrayD::from_shape_vec(IxDyn(&shape), v).ok();
                a.map(|a| a.iter().copied().collect()).unwrap_or_default()
            }
        } else {
            a.iter().copied().collect()
        };
        Tensor::from_buffer(
            Buffer::from_vec(data, shape).expect("ndarray's shape matches its data"),
            Device::Cpu,
        )
    }
}
