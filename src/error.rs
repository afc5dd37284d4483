//! The crate-level error type.
//!
//! Errors caught when an op is called name the op, what was wrong (shapes, dtypes, indices) and
//! the caller's source location, recorded with `#[track_caller]`:
//! `add: shapes [2, 3] and [4] cannot broadcast (at examples/tutorial.rs:42:13)`.

use std::fmt;
use std::panic::Location;

/// Everything that can go wrong in tenjit's public API.
#[derive(Clone, Debug)]
pub enum Error {
    /// An op was called with operands or arguments it cannot take.
    Op {
        /// The op's name as the user called it (`add`, `reshape`, `matmul`, ...).
        op: &'static str,
        /// What was wrong, naming the offending shapes, dtypes or indices.
        message: String,
        /// Where the user called it.
        at: &'static Location<'static>,
    },
    /// Evaluating a graph failed (integer division by zero, an index out of range found in
    /// data, ...).
    Eval {
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
    /// A device was asked for that this process does not have.
    Device {
        /// What failed.
        message: String,
    },
}

impl Error {
    /// An op error at the caller's location.
    #[track_caller]
    pub(crate) fn op(op: &'static str, message: impl Into<String>) -> Error {
        Error::Op { op, message: message.into(), at: Location::caller() }
    }

    /// An `ir` type-rule error at `at`.
    pub(crate) fn from_op_error(e: tenjit_ir::OpError, at: &'static Location<'static>) -> Error {
        Error::Op { op: e.op, message: e.message, at }
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
            Err(e) => Err(Error::op(e.op, e.message)),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Op { op, message, at } => write!(f, "{op}: {message} (at {at})"),
            Error::Eval { message } => write!(f, "evaluation failed: {message}"),
            Error::Io { path, message } => write!(f, "{path}: {message}"),
            Error::Device { message } => f.write_str(message),
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
