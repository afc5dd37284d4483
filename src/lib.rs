//! tenjit: a lazy tensor compiler.
//!
//! Write the tensor code you know from NumPy and PyTorch; tenjit records it as a graph, checks
//! shapes and dtypes at every call, and computes values when they are needed.
//!
//! ```
//! use tenjit::prelude::*;
//! let x = tensor!([[1., 2.], [3., 4.]]);
//! let w = tensor!([[0.5], [0.25]]);
//! let y = x.matmul(&w) + 1.0;
//! assert_eq!(y.to_string(), "tensor([[2.0000],\n        [3.5000]])");
//! ```
//!
//! The crate reads in one direction: the front end ([`tensor`](mod@tensor),
//! [`realize`](mod@realize), [`autograd`], [`nn`], [`optim`], [`jit`](mod@jit)) →
//! [`compile`] (the pass pipeline, lowering to kernels, the compile report) → [`runtime`] (the
//! `Backend` trait, device-neutral values, the executable cache) → [`backend`](mod@backend)
//! (the CPU and CUDA implementations, which see only kernels). The compiler's middle,
//! everything testable without a backend, is the [`ir`] crate.

#![warn(missing_docs)]

pub mod autograd;
pub mod backend;
pub mod broadcast_check;
pub mod compile;
pub mod device;
pub mod error;
mod inspect;
pub mod jit;
pub mod lazy;
pub mod loops;
pub mod nn;
pub mod optim;
pub mod realize;
pub mod runtime;
pub mod tensor;

pub use autograd::{
    enable_grad, grad, grad_with, is_grad_enabled, no_grad, try_grad, GradOptions, NoGradGuard,
};
pub use broadcast_check::{broadcast_check, set_broadcast_check, take_warnings, BroadcastCheck};
pub use compile::{
    backend, compile_count, compile_reports, compile_stages, instance_count, run_graph, set_backend, Backend,
    CompileReport, MissReason, ProgramOrigin, Stages,
};
pub use device::Device;
pub use error::{DeviceErrorKind, Error, EvalErrorKind, EvalOrigin, OpErrorKind, Result};
pub use half;
pub use inspect::{inspect, Inspect};
pub use jit::{jit, Jit};
pub use lazy::{lazy_depth_limit, set_lazy_depth_limit};
pub use loops::{fori_loop, fori_loop_i, try_fori_loop, try_fori_loop_i};
pub use ndarray;
pub use realize::{graph, graph_with, realize, try_realize, TraceOptions};
pub use runtime::cache::{cache_capacity, cached_executables, set_cache_capacity};
pub use runtime::cuda;
pub use runtime::live::{live, Live};
pub use runtime::profile;
pub use tenjit_ir as ir;
pub use tenjit_ir::DType;
pub use tensor::creation::{IntoScalar, Literal};
pub use tensor::elementwise::{IntoOperand, Operand};
pub use tensor::index::{Ellipsis, NewAxis, SliceItem};
pub use tensor::random::manual_seed;
pub use tensor::reduce::Dims;
pub use tensor::safetensors::{load_safetensors, save_safetensors};
pub use tensor::Tensor;

/// Everything a tensor program needs: `use tenjit::prelude::*;`.
pub mod prelude {
    pub use crate::{s, tensor};
    pub use crate::{DType, Device, Ellipsis, NewAxis, SliceItem, Tensor};
}

/// The README's code blocks, compiled and run as doctests (its cheat sheet among them).
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
