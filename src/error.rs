//! The crate-level error type.
//!
//! Errors caught when an op is called name the op, what was wrong (shapes, dtypes, indices) and
//! the caller's source location, recorded with `#[track_caller]`:
//! `add: shapes [2, 3] and [4] cannot broadcast (at examples/tutorial.rs:42:13)`.

use std::fmt;
use std::panic::Location;

pub use tenjit_ir::OpErrorKind;

/// Everything that can go wrong in tenjit's public API. Each variant has a `kind` to match on
/// and a message for people:
///
/// ```
/// use tenjit::{prelude::*, Error, OpErrorKind};
/// let err = Tensor::zeros([2, 3]).try_add(&Tensor::zeros([4])).unwrap_err();
/// match err {
///     Error::Op { op: "add", kind: OpErrorKind::Broadcast { lhs, rhs }, .. } => {
///         assert_eq!((lhs, rhs), (vec![2, 3], vec![4]));
///     }
///     other => panic!("{other}"),
/// }
/// ```
#[derive(Clone, Debug)]
pub enum Error {
    /// An op was called with operands or arguments it cannot take.
    Op {
        /// The op's name as the user called it (`add`, `reshape`, `matmul`, ...).
        op: &'static str,
        /// What kind of mistake: shapes that do not broadcast (with both), a dtype, an axis, an
        /// index, a size, another argument.
        kind: OpErrorKind,
        /// What was wrong, naming the offending shapes, dtypes or indices.
        message: String,
        /// Where the user called it.
        at: &'static Location<'static>,
    },
    /// Evaluating a graph failed (integer division by zero, an index out of range found in
    /// data, memory the system refused, ...).
    Eval {
        /// What kind of failure.
        kind: EvalErrorKind,
        /// What failed.
        message: String,
    },
    /// Reading or writing a file failed.
    Io {
        /// The file.
        path: String,
        /// What failed.
        message: String,
    },
    /// A device could not be used: it is not there, a value lives on another one, or its
    /// driver failed.
    Device {
        /// What kind of failure.
        kind: DeviceErrorKind,
        /// What failed.
        message: String,
    },
}

/// What kind of evaluation failure an [`Error::Eval`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EvalErrorKind {
    /// An integer op undefined for the values met: division or remainder by zero, a negative
    /// power.
    Arithmetic,
    /// An index found in data (`gather`, `index_select`, `scatter_add`) outside its axis.
    IndexOutOfRange,
    /// The system refused the memory for a value.
    OutOfMemory,
    /// The inputs given do not fit the graph (their number or types).
    Input,
    /// A failure of tenjit itself (a compilation that failed, a broken invariant): a bug to
    /// report.
    Internal,
}

/// What kind of device failure an [`Error::Device`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DeviceErrorKind {
    /// No driver, or no device of that ordinal.
    Unavailable,
    /// A value on one device was used on another, or on the host where only a device copy
    /// exists.
    Mismatch,
    /// The operation is not supported on this device (such as `tenjit::jit` on a GPU).
    Unsupported,
    /// The device's driver or one of its libraries failed.
    Driver,
}

impl Error {
    /// An op error of kind [`OpErrorKind::Argument`] at the caller's location.
    #[track_caller]
    pub(crate) fn op(op: &'static str, message: impl Into<String>) -> Error {
        Error::op_of(OpErrorKind::Argument, op, message)
    }

    /// An op error of `kind` at the caller's location.
    #[track_caller]
    pub(crate) fn op_of(kind: OpErrorKind, op: &'static str, message: impl Into<String>) -> Error {
        Error::Op { op, kind, message: message.into(), at: Location::caller() }
    }

    /// An `ir` type-rule error at `at`.
    pub(crate) fn from_op_error(e: tenjit_ir::OpError, at: &'static Location<'static>) -> Error {
        Error::Op { op: e.op, kind: e.kind, message: e.message, at }
    }

    /// An evaluation error.
    pub(crate) fn eval(kind: EvalErrorKind, message: impl Into<String>) -> Error {
        Error::Eval { kind, message: message.into() }
    }

    /// An internal evaluation error (a tenjit bug).
    pub(crate) fn internal(message: impl Into<String>) -> Error {
        Error::eval(EvalErrorKind::Internal, message)
    }

    /// An error of the reference interpreter, of the matching kind.
    pub(crate) fn from_interp(e: tenjit_ir::interp::EvalError) -> Error {
        use tenjit_ir::interp::EvalError as I;
        let kind = match &e {
            I::Arithmetic { .. } => EvalErrorKind::Arithmetic,
            I::IndexOutOfRange { .. } => EvalErrorKind::IndexOutOfRange,
            I::InputCount { .. } | I::InputType { .. } => EvalErrorKind::Input,
            I::TooLarge { .. } => EvalErrorKind::OutOfMemory,
            I::Verify(_) | I::Internal { .. } => EvalErrorKind::Internal,
        };
        Error::eval(kind, e.to_string())
    }

    /// A device error.
    pub(crate) fn device(kind: DeviceErrorKind, message: impl Into<String>) -> Error {
        Error::Device { kind, message: message.into() }
    }
}

/// Turns an `ir` type-rule error into an [`Error::Op`] at the caller's location.
pub(crate) trait AtCaller<T> {
    fn at_caller(self) -> Result<T>;
}

impl<T> AtCaller<T> for std::result::Result<T, tenjit_ir::OpError> {
    #[track_caller]
    fn at_caller(self) -> Result<T> {
        match self {
            Ok(v) => Ok(v),
            Err(e) => Err(Error::op_of(e.kind, e.op, e.message)),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Op { op, message, at, .. } => write!(f, "{op}: {message} (at {at})"),
            Error::Eval { message, .. } => write!(f, "evaluation failed: {message}"),
            Error::Io { path, message } => write!(f, "{path}: {message}"),
            Error::Device { message, .. } => f.write_str(message),
        }
    }
}

impl std::error::Error for Error {}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Unwraps a result in a panicking API method, reporting the error's own message (which
/// already names the user's location).
pub(crate) trait OrPanic<T> {
    fn or_panic(self) -> T;
}

impl<T> OrPanic<T> for Result<T> {
    #[track_caller]
    fn or_panic(self) -> T {
        match self {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        }
    }
}
