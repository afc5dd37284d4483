//! Devices. Every tensor has one: the CPU, or a CUDA GPU when a driver and a device are
//! present at run time (the crate builds and runs its CPU path without CUDA installed). A
//! tensor moves between devices only when asked, with [`Tensor::to`](crate::Tensor::to),
//! `.cuda()` or `.cpu()`; an op on tensors of two devices is an error. Which backend serves a
//! device, and whether it can be used here ([`Device::check_available`]), is the runtime's
//! business ([`crate::runtime`]).

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

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}
