//! The CUDA backend: kernel IR → CUDA C ([`codegen`]), CUDA C → PTX with NVRTC ([`nvrtc`])
//! and a disk cache of PTX ([`ptx_cache`]); devices, contexts and device buffers
//! ([`runtime`]); compiled programs and their launches ([`exec`]), with float matrix products
//! through cuBLAS ([`blas`]).
//!
//! Rendering, NVRTC (from PyPI, installed by `scripts/setup-cuda-tools.sh`) and the run
//! plans need no GPU; the runtime needs a driver, and without one every entry point returns a
//! clear [`runtime::CudaError`] instead of panicking.

pub mod backend;
pub mod blas;
pub mod codegen;
pub mod exec;
pub mod nvrtc;
pub mod ptx_cache;
pub mod runtime;
