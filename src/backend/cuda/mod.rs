//! The CUDA backend's GPU-free half: kernel IR → CUDA C ([`codegen`]), CUDA C → PTX with
//! NVRTC ([`nvrtc`]) and a disk cache of PTX ([`ptx_cache`]).
//!
//! Everything here runs on a machine without a GPU: rendering is pure, and NVRTC (from PyPI,
//! installed by `scripts/setup-cuda-tools.sh`) compiles to PTX without a driver. Launching
//! the PTX, and cuBLAS for float matrix products, is the runtime's business.

pub mod codegen;
pub mod nvrtc;
pub mod ptx_cache;
