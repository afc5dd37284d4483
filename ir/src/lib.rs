//! `tenjit-ir`: the middle of the tenjit compiler, everything testable without a backend.
//!
//! * [`types`]: dtypes, shapes, broadcasting and type promotion.
//! * [`ops`]: the op table, the one place each primitive op is defined.
//! * [`Graph`]: a typed graph of primitive ops; [`verify()`] checks one.
//! * [`text`]: the text form of graphs (printer and parser); [`dot`]: Graphviz export.
//! * [`interp`]: the reference interpreter; [`random`]: the counter-based generator.
//! * [`passes`]: graph-to-graph passes (simplify, CSE, DCE); [`kernel`]: the kernel IR, the
//!   fusion that lowers a graph into it, its text form and its interpreter.
//! * [`sym`]: symbolic dimensions, bounded size symbols and canonical expressions over them
//!   (not yet used by [`Shape`]).
//! * [`Buffer`]: a dense host tensor value; [`format`](mod@format) prints it as PyTorch does; [`npy`]
//!   reads and writes `.npy` files.

#![warn(missing_docs)]

pub mod autodiff;
pub mod buffer;
pub mod dot;
pub mod format;
pub mod graph;
pub mod interp;
pub mod kernel;
pub mod npy;
pub mod ops;
pub mod passes;
pub mod random;
pub mod sym;
pub mod text;
pub mod types;
pub mod verify;

pub use buffer::{Buffer, Data, Element};
pub use graph::{BindError, Fingerprint, Graph, NodeId};
pub use ops::Guard;
pub use ops::{
    Accepts, Accuracy, ArgOp, BinaryOp, CpuLowering, CudaForm, Op, OpError, OpErrorKind, ReduceOp, Scalar,
    UnaryOp,
};
pub use types::{DType, Shape, TensorType};
pub use verify::{verify, VerifyError, VerifyErrors};
