//! The crate-level error type.
//!
//! Errors caught when an op is called name the op, what was wrong (shapes, dtypes, indices) and
//! the caller's source location, recorded with `#[track_caller]`:
//! `add: shapes [2, 3] and [4] cannot broadcast (at examples/tutorial.rs:42:13)`.

use std::fmt;
use std::panic::Location;
use tenjit_ir::NodeId;

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
    ///
    /// A failure found in data names the op the user called and where:
    /// `index_select: index 5 is out of bounds for dimension 0 with size 3 (at src/main.rs:7:20)`.
    Eval {
        /// What kind of failure.
        kind: EvalErrorKind,
        /// The op that failed as the user called it (`gather`, `index_select`,
        /// `floor_divide`, ...), when the failure is one op's.
        op: Option<&'static str>,
        /// What failed: for an op, the offending value and its bound.
        message: String,
        /// Where the user called the failing op, when it is known: realizing a tensor names
        /// the call site of the op in this realization, whichever call compiled the program.
        at: Option<&'static Location<'static>>,
        /// Where in the evaluated graph and the compiled program the failure arose, for
        /// tenjit's developers (printed in parentheses after the location).
        origin: Option<EvalOrigin>,
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

/// Where in the evaluated graph and its compiled program an evaluation failure arose.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EvalOrigin {
    /// The failing node of the graph that was evaluated (its text form numbers it, `%3`).
    pub node: Option<NodeId>,
    /// The failing step of the compiled program (`kernel k0`, `library routine gather`).
    pub step: Option<String>,
}

impl EvalOrigin {
    /// Whether it says anything.
    fn is_empty(&self) -> bool {
        self.node.is_none() && self.step.is_none()
    }
}

impl fmt::Display for EvalOrigin {
    /// `%3, kernel k0`, or whichever of the two is known.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.node, &self.step) {
            (Some(n), Some(s)) => write!(f, "{n}, {s}"),
            (Some(n), None) => write!(f, "{n}"),
            (None, Some(s)) => f.write_str(s),
            (None, None) => Ok(()),
        }
    }
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
        Error::Eval { kind, op: None, message: message.into(), at: None, origin: None }
    }

    /// An evaluation error of op `op` (its name in the graph) at `origin`.
    pub(crate) fn eval_of(
        kind: EvalErrorKind,
        op: &'static str,
        message: impl Into<String>,
        origin: EvalOrigin,
    ) -> Error {
        let origin = (!origin.is_empty()).then_some(origin);
        Error::Eval { kind, op: Some(op), message: message.into(), at: None, origin }
    }

    /// The node of the evaluated graph an evaluation error comes from, if one is known and no
    /// user location is set yet.
    pub(crate) fn unlocated_node(&self) -> Option<NodeId> {
        match self {
            Error::Eval { at: None, origin: Some(EvalOrigin { node, .. }), .. } => *node,
            Error::Op { .. } | Error::Eval { .. } | Error::Io { .. } | Error::Device { .. } => None,
        }
    }

    /// The error at the user's call `at` of op `user_op` (the front end's name for the
    /// failing node's op: `index_select` for a gather it built).
    pub(crate) fn located(mut self, user_op: &'static str, loc: &'static Location<'static>) -> Error {
        if let Error::Eval { op: op @ Some(_), at, .. } = &mut self {
            *op = Some(user_op);
            *at = Some(loc);
        }
        self
    }

    /// An internal evaluation error (a tenjit bug).
    pub(crate) fn internal(message: impl Into<String>) -> Error {
        Error::eval(EvalErrorKind::Internal, message)
    }

    /// An error of the reference interpreter, of the matching kind.
    pub(crate) fn from_interp(e: tenjit_ir::interp::EvalError) -> Error {
        use tenjit_ir::interp::EvalError as I;
        let origin = |node: NodeId| EvalOrigin { node: Some(node), step: None };
        match e {
            // The location the graph records (text IR's `; at` comments) stays in the message
            // the interpreter wrote; a realization's graph records none and maps the node.
            I::Arithmetic { node, op, message, loc: None } => {
                Error::eval_of(EvalErrorKind::Arithmetic, op, message, origin(node))
            }
            I::IndexOutOfRange { node, op, index, axis, size, loc: None } => Error::eval_of(
                EvalErrorKind::IndexOutOfRange,
                op,
                out_of_bounds(index, axis, size),
                origin(node),
            ),
            I::Arithmetic { .. } => Error::eval(EvalErrorKind::Arithmetic, e.to_string()),
            I::IndexOutOfRange { .. } => Error::eval(EvalErrorKind::IndexOutOfRange, e.to_string()),
            I::InputCount { .. } | I::InputType { .. } | I::Bind(_) => {
                Error::eval(EvalErrorKind::Input, e.to_string())
            }
            I::TooLarge { .. } => Error::eval(EvalErrorKind::OutOfMemory, e.to_string()),
            I::Verify(_) | I::Internal { .. } => Error::eval(EvalErrorKind::Internal, e.to_string()),
        }
    }

    /// A device error.
    pub(crate) fn device(kind: DeviceErrorKind, message: impl Into<String>) -> Error {
        Error::Device { kind, message: message.into() }
    }
}

/// PyTorch's words for an index outside its dimension.
pub(crate) fn out_of_bounds(index: i64, axis: usize, size: usize) -> String {
    format!("index {index} is out of bounds for dimension {axis} with size {size}")
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
            Error::Eval { op, message, at, origin, .. } => {
                f.write_str("evaluation failed: ")?;
                match (at, op) {
                    // The user's op and line first; our names follow in parentheses.
                    (Some(at), Some(op)) => {
                        write!(f, "{op}: {message} (at {at})")?;
                        match origin {
                            Some(origin) => write!(f, " ({origin})"),
                            None => Ok(()),
                        }
                    }
                    // Without a location, as the interpreter says it: `%2: gather: ...`.
                    (_, Some(op)) => {
                        let prefix = origin.as_ref().map(|o| match &o.node {
                            Some(n) => n.to_string(),
                            None => o.to_string(),
                        });
                        match prefix {
                            Some(p) => write!(f, "{p}: {op}: {message}"),
                            None => write!(f, "{op}: {message}"),
                        }
                    }
                    (_, None) => f.write_str(message),
                }
            }
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
