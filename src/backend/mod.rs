//! Backends: from the kernel IR to something that runs. A backend sees only
//! `tenjit_ir::kernel` programs, never the graph or the tensors, and implements the runtime's
//! [`Backend`](crate::runtime::Backend) trait in its folder's `backend.rs`, the one file that
//! names anything above the backends.
//!
//! Rendering (kernel → CLIF text, kernel → CUDA C) is pure and snapshot-tested; compiling needs
//! the JIT or NVRTC. A new backend is a new folder here that implements the trait, plus its
//! line in [`crate::runtime::backend_for`], where backends are registered by device.

pub mod cpu;
pub mod cuda;
pub mod profile;
