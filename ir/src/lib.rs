//! `tenjit-ir`: the middle of the tenjit compiler, everything testable without a backend.
//!
//! * [`types`]: dtypes, shapes, broadcasting and type promotion.
//! * [`ops`]: the op table, the one place each primitive op is defined.
//! * [`Graph`]: a typed graph of primitive ops; [`verify()`] checks one.
//! * [`Buffer`]: a dense host tensor value.

pub mod buffer;
pub mod graph;
pub mod ops;
pub mod types;
pub mod verify;

pub use buffer::{Buffer, Data, Element};
pub use graph::{Graph, NodeId};
pub use ops::{ArgOp, BinaryOp, Op, OpError, ReduceOp, Scalar, UnaryOp};
pub use types::{DType, Shape, TensorType};
pub use verify::{verify, VerifyError, VerifyErrors};
