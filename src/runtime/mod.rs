//! The runtime: the one door between the front end (tensors, realization, `jit`) and the
//! backends. It defines the [`Backend`] trait (compile a kernel program into an
//! [`Executable`]; allocate, upload, download and free buffers; run), the device-neutral value
//! handles a tensor node holds ([`Value`], [`Slot`]), and the executable cache keyed by device
//! and structure ([`cache`]).
//!
//! Backends are registered in one place, [`backend_for`], by device: a third backend is one new
//! folder under `src/backend/` that implements the trait, plus its line there. Nothing above
//! this module names a backend type; backends name nothing above it but the trait they
//! implement.

pub mod backend;
pub mod cache;
pub mod dynamic;
pub mod live;
mod slot;

pub use crate::backend::cpu::memory::MemoryPlan;
pub use crate::backend::profile;
pub use backend::{Backend, DeviceValue, Executable, Value};
pub use slot::Slot;

use crate::backend::cpu::backend::CpuBackend;
use crate::backend::cuda::backend::CudaBackend;
use crate::device::Device;
use crate::error::{Error, Result};
use std::sync::{Arc, OnceLock};
use tenjit_ir::kernel::Program;
use tenjit_ir::Buffer;

/// The backend that runs on `device`, once its availability is checked.
pub fn backend_for(device: Device) -> Result<&'static dyn Backend> {
    let backend = registered(device)?;
    backend.check_available()?;
    Ok(backend)
}

/// The backend registered for `device`, without checking that it can be used: the one place
/// where backends are registered. An error names a device this machine cannot have.
fn registered(device: Device) -> Result<&'static dyn Backend> {
    static CPU: CpuBackend = CpuBackend;
    match device {
        Device::Cpu => Ok(&CPU),
        Device::Cuda(ordinal) => cuda_backend(ordinal),
    }
}

/// The CUDA backend of device `ordinal`: one per device of this machine, made on first use
/// (and one for `cuda:0` on any machine, whose code generator needs no device).
fn cuda_backend(ordinal: usize) -> Result<&'static dyn Backend> {
    static CUDA: OnceLock<Vec<CudaBackend>> = OnceLock::new();
    let all = CUDA.get_or_init(|| (0..cuda::device_count().max(1)).map(CudaBackend::new).collect());
    match all.get(ordinal) {
        Some(b) => Ok(b),
        None => {
            // Past the last device: the backend's own check says why.
            CudaBackend::new(ordinal).check_available()?;
            Err(Error::device(
                crate::DeviceErrorKind::Unavailable,
                format!("device cuda:{ordinal} does not exist"),
            ))
        }
    }
}

impl Device {
    /// Checks that this device can be used in this process: always for the CPU; for a GPU,
    /// that a CUDA driver is present and the ordinal names one of its devices.
    pub fn check_available(self) -> Result<()> {
        registered(self)?.check_available()
    }
}

/// Copies `host` to `device`'s memory (the CPU shares it), as a value of that device.
pub fn upload(host: &Arc<Buffer>, device: Device) -> Result<Value> {
    backend_for(device)?.upload(host)
}

/// Returns a host value whose tensor is gone to the CPU backend's buffer pool.
pub(crate) fn free_host(value: Arc<Buffer>) {
    if let Ok(cpu) = registered(Device::Cpu) {
        cpu.free(Value::Host(value));
    }
}

/// Copies a value of `device` to host memory.
pub(crate) fn download(value: &Value, device: Device) -> Result<Buffer> {
    registered(device)?.download(value)
}

/// The number of threads the host runs parallel work on (for the front end's own parallel
/// loops, such as drawing random numbers).
pub fn host_threads() -> usize {
    crate::backend::cpu::exec::threads()
}

/// When each temporary buffer of a program is released, and the peak memory that implies
/// (device-neutral: the compile report uses it for every backend).
pub fn memory_plan(program: &Program) -> MemoryPlan {
    crate::backend::cpu::memory::plan(program)
}

/// What the code generator of `device`'s backend makes of `program`, as named texts (the CPU:
/// the CLIF of each kernel; CUDA: the CUDA C of the program). Rendering needs no device.
pub fn render(program: &Program, device: Device) -> Vec<(String, String)> {
    registered(device).map(|b| b.render(program)).unwrap_or_default()
}

/// CUDA support queries.
pub mod cuda {
    /// Whether a CUDA device can be used: a driver is present and has at least one device.
    /// Never panics, and is `false` on machines without CUDA.
    ///
    /// ```
    /// if !tenjit::cuda::is_available() {
    ///     assert!(tenjit::Tensor::zeros([2]).try_to(tenjit::Device::Cuda(0)).is_err());
    /// }
    /// ```
    pub fn is_available() -> bool {
        crate::backend::cuda::backend::is_available() && device_count() > 0
    }

    /// The number of CUDA devices (0 without a driver).
    pub fn device_count() -> usize {
        crate::backend::cuda::backend::device_count()
    }
}
