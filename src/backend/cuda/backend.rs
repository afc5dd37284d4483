//! The CUDA backend behind the runtime's `Backend` trait, one instance per device: programs
//! compile to [`CudaExecutable`]s, values are [`DeviceBuffer`]s in the device's memory, and
//! host values given to a run are uploaded first. Every failure is a clear error, also on a
//! machine without a driver.
//!
//! This file is the CUDA folder's one link to the runtime: it names the trait it implements
//! and nothing else above the backends.

use super::codegen::DeviceFailure;
use super::exec::CudaExecutable;
use super::runtime::{self, CudaError, DeviceBuffer, Storage};
use crate::error::{DeviceErrorKind, Error, Result};
use crate::runtime::backend::{Backend, Executable, Value};
use std::sync::Arc;
use tenjit_ir::kernel::{Inst, Program, Step};
use tenjit_ir::Op;
use tenjit_ir::{Buffer, TensorType};

/// One CUDA device as a runtime backend.
pub struct CudaBackend {
    ordinal: usize,
}

impl CudaBackend {
    /// The backend of device `ordinal` (nothing is opened until it is used).
    pub fn new(ordinal: usize) -> CudaBackend {
        CudaBackend { ordinal }
    }
}

/// A CUDA failure as a tenjit error of the matching kind.
fn cuda_error(e: CudaError) -> Error {
    use crate::error::{DeviceErrorKind as D, EvalErrorKind as E};
    let message = e.to_string();
    match e {
        CudaError::NoDriver | CudaError::DriverUnusable { .. } | CudaError::NoDevice { .. } => {
            Error::device(D::Unavailable, message)
        }
        CudaError::Driver { .. } | CudaError::Blas { .. } => Error::device(D::Driver, message),
        CudaError::UnsupportedDevice { .. } => Error::device(D::Unsupported, message),
        CudaError::InputDevice { .. } => Error::device(D::Mismatch, message),
        CudaError::MissingInput { .. } | CudaError::InputType { .. } => Error::eval(E::Input, message),
        CudaError::Kernel(DeviceFailure::Arithmetic { .. }) => Error::eval(E::Arithmetic, message),
        CudaError::Kernel(DeviceFailure::IndexOutOfRange { .. }) => Error::eval(E::IndexOutOfRange, message),
        CudaError::Codegen(_)
        | CudaError::Nvrtc(_)
        | CudaError::UnknownErrorCode(_)
        | CudaError::Internal(_) => Error::internal(message),
    }
}

/// The error of a failure the error word of `program` reported, naming the graph node it
/// comes from. The word is shared by every kernel of the program and says only what failed
/// (an op and its kind), so the node is that of the first step that can fail that way: exact
/// when one step can, as in most programs. A bad index's axis and its size come from the
/// step; its value is not reported by the device.
pub fn kernel_failure(program: &Program, failure: &DeviceFailure) -> Error {
    use crate::error::{EvalErrorKind as E, EvalOrigin};
    match failure {
        DeviceFailure::Arithmetic { op, message } => {
            let found = program.steps.iter().find_map(|step| match step {
                Step::Kernel(k) => k.failing_sites().into_iter().find_map(|site| {
                    let list = if site.epilogue { &k.epilogue } else { &k.body };
                    match list[site.inst].inst {
                        Inst::Binary(b, ..) if b.spec().name == *op => Some(EvalOrigin {
                            node: k.origin(site),
                            step: Some(format!("kernel {}", k.name)),
                        }),
                        _ => None,
                    }
                }),
                Step::Matmul(_) | Step::Op(_) | Step::Loop(_) => None,
            });
            Error::eval_of(E::Arithmetic, op, *message, found.unwrap_or_default())
        }
        DeviceFailure::IndexOutOfRange { op } => {
            let found = program.steps.iter().find_map(|step| match step {
                Step::Op(s) if s.op.name() == *op => {
                    let (Op::Gather { axis } | Op::ScatterAdd { axis }) = s.op else {
                        return None;
                    };
                    // The indexed operand is the first.
                    let size =
                        s.args.first().and_then(|&a| program.buffers[a].ty.shape.dims().get(axis).copied());
                    let origin = EvalOrigin { node: s.origin, step: Some(format!("{op} step")) };
                    Some((axis, size, origin))
                }
                Step::Kernel(_) | Step::Matmul(_) | Step::Op(_) | Step::Loop(_) => None,
            });
            match found {
                Some((axis, Some(size), origin)) => Error::eval_of(
                    E::IndexOutOfRange,
                    op,
                    format!("an index is out of bounds for dimension {axis} with size {size}"),
                    origin,
                ),
                Some((_, None, origin)) => Error::eval_of(
                    E::IndexOutOfRange,
                    op,
                    "an index is out of bounds for its dimension",
                    origin,
                ),
                None => Error::eval(E::IndexOutOfRange, failure.to_string()),
            }
        }
    }
}

/// Whether device 0 can be used (the driver loads and its context opens). Never panics.
pub fn is_available() -> bool {
    runtime::is_available()
}

/// The number of CUDA devices (0 without a driver). Never panics.
pub fn device_count() -> usize {
    runtime::device_count()
}

/// The device buffer of a value of this backend.
fn device_buffer(value: &Value) -> Result<Arc<DeviceBuffer>> {
    match value {
        Value::Device(d) => {
            let any: Arc<dyn std::any::Any + Send + Sync> = d.clone();
            any.downcast::<DeviceBuffer>().map_err(|_| {
                Error::device(
                    DeviceErrorKind::Mismatch,
                    "the CUDA backend was given a value of another backend",
                )
            })
        }
        Value::Host(_) => {
            Err(Error::device(DeviceErrorKind::Mismatch, "the CUDA backend was given a host value"))
        }
    }
}

impl Backend for CudaBackend {
    fn name(&self) -> &'static str {
        "cuda"
    }

    fn check_available(&self) -> Result<()> {
        let i = self.ordinal;
        if !runtime::is_available() {
            return Err(Error::device(
                DeviceErrorKind::Unavailable,
                format!(
                    "device cuda:{i} is not available: no CUDA driver or device was found on this \
                     machine (tenjit::cuda::is_available() is false)"
                ),
            ));
        }
        let n = runtime::device_count();
        if i >= n {
            return Err(Error::device(
                DeviceErrorKind::Unavailable,
                format!("device cuda:{i} does not exist: this machine has {n} CUDA device(s)"),
            ));
        }
        Ok(())
    }

    fn compile(&self, program: Program) -> Result<Arc<dyn Executable>> {
        let exe = CudaExecutable::compile(program, self.ordinal).map_err(cuda_error)?;
        Ok(Arc::new(exe))
    }

    fn allocate(&self, ty: &TensorType) -> Result<Value> {
        let device = runtime::device(self.ordinal).map_err(cuda_error)?;
        let storage = Storage::alloc(&device.stream, ty.dtype, ty.shape.numel()).map_err(|e| {
            cuda_error(runtime::driver_error(format!("cuMemAllocAsync (allocating a {ty})"), e))
        })?;
        Ok(Value::Device(Arc::new(DeviceBuffer::from_storage(ty.clone(), self.ordinal, storage))))
    }

    fn upload(&self, host: &Arc<Buffer>) -> Result<Value> {
        let d = runtime::upload(host, self.ordinal).map_err(cuda_error)?;
        Ok(Value::Device(Arc::new(d)))
    }

    fn download(&self, value: &Value) -> Result<Buffer> {
        let d = device_buffer(value)?;
        runtime::download(&d).map_err(cuda_error)
    }

    fn free(&self, value: Value) {
        // Device memory is freed in stream order when the last handle to it is dropped.
        drop(value);
    }

    fn render(&self, program: &Program) -> Vec<(String, String)> {
        vec![("program".to_string(), render(program))]
    }
}

/// The CUDA C of `program` (or a comment saying why it cannot be rendered).
pub fn render(program: &Program) -> String {
    super::codegen::render_program(program)
        .map(|m| m.source)
        .unwrap_or_else(|e| format!("// cannot render: {e}\n"))
}

impl Executable for CudaExecutable {
    fn run(&self, inputs: &[Value], output: &mut dyn FnMut(Value)) -> Result<()> {
        let ordinal = self.device();
        let on_device = inputs
            .iter()
            .map(|v| match v {
                Value::Host(b) => runtime::upload(b, ordinal).map(Arc::new).map_err(cuda_error),
                Value::Device(_) => device_buffer(v),
            })
            .collect::<Result<Vec<_>>>()?;
        let outputs = CudaExecutable::run(self, &on_device).map_err(|e| match e {
            CudaError::Kernel(failure) => kernel_failure(self.program(), &failure),
            other => cuda_error(other),
        })?;
        for b in outputs {
            output(Value::Device(Arc::new(b)));
        }
        Ok(())
    }
}
