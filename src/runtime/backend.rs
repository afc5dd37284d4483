//! What a backend implements for the runtime, and the values they exchange: the [`Backend`]
//! trait (compile a kernel program into an [`Executable`]; allocate, upload, download and free
//! buffers; render), and [`Value`], a buffer in host memory or in a backend's own memory.
//!
//! This file names nothing else in the crate but its error type, so a backend that implements
//! the trait depends on no more than this.

use crate::error::Result;
use std::any::Any;
use std::panic::RefUnwindSafe;
use std::sync::Arc;
use tenjit_ir::kernel::Program;
use tenjit_ir::{Buffer, TensorType};

/// What a backend does for the runtime: compiles kernel programs, holds buffers in its memory
/// and moves them to and from the host's. One instance serves one device.
pub trait Backend: Send + Sync {
    /// The backend's name, as errors and reports print it (`cpu`, `cuda`).
    fn name(&self) -> &'static str;

    /// Checks that this backend's device can be used in this process (a driver is present,
    /// the device exists); the error says why not.
    fn check_available(&self) -> Result<()>;

    /// Compiles a lowered program into something this backend runs.
    fn compile(&self, program: Program) -> Result<Arc<dyn Executable>>;

    /// New storage for a value of type `ty` in this backend's memory; its contents are
    /// unspecified until written.
    fn allocate(&self, ty: &TensorType) -> Result<Value>;

    /// Copies a host buffer into this backend's memory (the host backend shares it).
    fn upload(&self, host: &Arc<Buffer>) -> Result<Value>;

    /// Copies a value this backend holds into host memory.
    fn download(&self, value: &Value) -> Result<Buffer>;

    /// Gives back a value no longer needed, so its memory can be reused (a value still shared
    /// elsewhere stays alive).
    fn free(&self, value: Value);

    /// What this backend's code generator makes of `program`, as named texts (pure: needs no
    /// device, and is what `TENJIT_DUMP` and `tenjit compile --emit` print).
    fn render(&self, program: &Program) -> Vec<(String, String)>;
}

/// A program compiled by a [`Backend`], ready to run any number of times.
pub trait Executable: Send + Sync {
    /// Runs the program on `inputs` (one per program input, typed as compiled; values in host
    /// memory are copied to the backend's memory first) and hands each output, in order, to
    /// `output`. Nothing is handed over when the run fails.
    fn run(&self, inputs: &[Value], output: &mut dyn FnMut(Value)) -> Result<()>;
}

/// A buffer in a backend's own memory, of a type only that backend knows (it downcasts).
/// Unwind-safe, as tensors are.
pub type DeviceValue = Arc<dyn Any + Send + Sync + RefUnwindSafe>;

/// A computed value: in host memory, or in a backend's own memory.
#[derive(Clone)]
pub enum Value {
    /// A buffer in host memory.
    Host(Arc<Buffer>),
    /// A buffer in a backend's memory, of a type only that backend knows (it downcasts).
    Device(DeviceValue),
}

impl Value {
    /// The host buffer, when the value is in host memory.
    pub fn host(&self) -> Option<&Arc<Buffer>> {
        match self {
            Value::Host(b) => Some(b),
            Value::Device(_) => None,
        }
    }
}

impl std::fmt::Debug for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Host(b) => write!(f, "Value::Host({})", b.ty()),
            Value::Device(_) => f.write_str("Value::Device(..)"),
        }
    }
}
