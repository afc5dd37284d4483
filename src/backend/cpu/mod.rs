//! The CPU backend: kernels → CLIF → machine code with Cranelift's JIT, vector math emitted as
//! CLIF, and matrix products through the `gemm` crate (blocks of a few rows by a matrix stored
//! by rows, `x @ w.T`, through the AVX2 routine of `skinny`, which packs nothing).

pub mod backend;
pub mod codegen;
mod conv;
pub mod exec;
pub mod gemm;
mod gemv;
#[cfg(test)]
mod gemv_dispatch;
mod group;
mod library;
mod loops;
mod maxpool;
mod nt;
mod pool;
mod skinny;
mod skinny_avx512;
mod small_matmul;

pub use group::set_block_rows;
pub mod memory;
pub mod vecmath;

/// Whether the hand-written routines (the AVX2 row sums of `codegen::dense_sum`, the skinny
/// products of `skinny`) may run: not when `TENJIT_CPU_ROUTINES` is `0` (to compare with the
/// generated code and `gemm`, or to rule the routines out). Each routine also checks the CPU.
fn routines_enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("TENJIT_CPU_ROUTINES").map_or(true, |v| v.trim() != "0"))
}
