//! The CPU backend: kernels → CLIF → machine code with Cranelift's JIT, vector math emitted as
//! CLIF, and matrix products through the `gemm` crate.

pub mod backend;
pub mod codegen;
mod conv;
pub mod exec;
pub mod gemm;
mod group;
mod library;
mod loops;
mod maxpool;
mod pool;
mod small_matmul;

pub use group::set_block_rows;
pub mod memory;
pub mod vecmath;
