//! Backends: from the kernel IR to something that runs. A backend sees only
//! `tenjit_ir::kernel` programs, never the graph or the tensors.
//!
//! Rendering (kernel → CLIF text) is pure and snapshot-tested; compiling needs the JIT.

pub mod cpu;
pub mod cuda;
