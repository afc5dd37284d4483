//! Devices. Every tensor has one; only the CPU exists in this build, so asking for a GPU is a
//! clear error rather than a missing API.

use crate::error::{Error, Result};
use std::fmt;

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
    /// Checks that this device can be used in this process.
    pub fn check_available(self) -> Result<()> {
        match self {
            Device::Cpu => Ok(()),
            Device::Cuda(i) => Err(Error::Device {
                message: format!(
                    "device cuda:{i} is not available: this build of tenjit has no CUDA backend yet \
                     (tenjit::cuda::is_available() is false)"
                ),
            }),
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

/// CUDA support queries.
pub mod cuda {
    /// Whether a CUDA device can be used; always `false` until the CUDA backend lands.
    pub fn is_available() -> bool {
        false
    }
}
