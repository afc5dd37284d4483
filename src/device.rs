//! Devices. Every tensor has one: the CPU, or a CUDA GPU when a driver and a device are
//! present at run time (the crate builds and runs its CPU path without CUDA installed). A
//! tensor moves between devices only when asked, with [`Tensor::to`](crate::Tensor::to),
//! `.cuda()` or `.cpu()`; an op on tensors of two devices is an error.

use crate::backend::cuda::exec::CudaExecutable;
use crate::backend::cuda::runtime;
use crate::error::{Error, Result};
use std::fmt;
use std::sync::Arc;
use tenjit_ir::Buffer;

/// Where a tensor's data lives and its kernels run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Device {
    /// The host CPU (the default).
    #[default]
    Cpu,
    /// The CUDA GPU with this ordinal.
    Cuda(usize),
}

impl Device {
    /// Checks that this device can be used in this process: always for the CPU; for a GPU,
    /// that a CUDA driver is present and the ordinal names one of its devices.
    pub fn check_available(self) -> Result<()> {
        match self {
            Device::Cpu => Ok(()),
            Device::Cuda(i) => {
                if !runtime::is_available() {
                    return Err(Error::Device {
                        message: format!(
                            "device cuda:{i} is not available: no CUDA driver or device was found on this \
                             machine (tenjit::cuda::is_available() is false)"
                        ),
                    });
                }
                let n = runtime::device_count();
                if i >= n {
                    return Err(Error::Device {
                        message: format!(
                            "device cuda:{i} does not exist: this machine has {n} CUDA device(s)"
                        ),
                    });
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

/// A CUDA failure as a tenjit error.
pub(crate) fn cuda_error(e: runtime::CudaError) -> Error {
    Error::Device { message: e.to_string() }
}

/// Runs `exe` on GPU `device` with host inputs: copies them there, runs, copies the outputs
/// back (the `TENJIT_BACKEND=cuda` path for CPU tensors).
pub(crate) fn run_on_device(exe: &CudaExecutable, inputs: &[Buffer], device: usize) -> Result<Vec<Buffer>> {
    let on_device = inputs
        .iter()
        .map(|b| runtime::upload(b, device).map(Arc::new))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(cuda_error)?;
    let outputs = exe.run(&on_device).map_err(cuda_error)?;
    outputs.iter().map(|d| runtime::download(d).map_err(cuda_error)).collect()
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
        crate::backend::cuda::runtime::is_available() && device_count() > 0
    }

    /// The number of CUDA devices (0 without a driver).
    pub fn device_count() -> usize {
        crate::backend::cuda::runtime::device_count()
    }
}
