//! The broadcast check: a binary op (or `where`) whose broadcast stretches *both* operands is
//! most often a shape bug, and tenjit says so.
//!
//! NumPy and PyTorch broadcast `[4]` against `[4, 1]` to `[4, 4]` without a word. In the
//! classic linear-regression slip, `X @ w + b` has shape `[4]` while the targets `y` have shape
//! `[4, 1]`, so `X @ w + b - y` is a `[4, 4]` matrix of every prediction against every target,
//! and its mean is a loss that trains to the wrong line. tenjit checks every elementwise
//! binary op and `where`: when each operand has an axis (counting the leading axes it lacks)
//! that is stretched to a larger size in the result, it warns, naming the op, the shapes, the
//! result's shape and the caller's file, line and column:
//!
//! ```text
//! tenjit warning: sub broadcasts both operands: [4] and [4, 1] give [4, 4] (at examples/linear_regression.rs:31:20); expand one operand explicitly if this is intended, or set TENJIT_STRICT=1 to make it an error
//! ```
//!
//! Broadcasting one side only never warns: a bias `[3]` against `[4, 3]`, a Rust scalar, a 0-d
//! tensor, a `[4, 1]` column against `[4, 3]`. For `where`, it warns when its condition and
//! operands (other than scalars and 0-d tensors) are all stretched. An intended outer broadcast states itself with an
//! explicit [`Tensor::expand`](crate::Tensor::expand) of one operand (then only the other one is
//! stretched by the op).
//!
//! The check has three modes ([`BroadcastCheck`]), process-wide, set with
//! [`set_broadcast_check`]: `Warn` (the default), `Error` (the default when the environment
//! variable `TENJIT_STRICT=1` is set when the check is first used) where the op fails with an
//! [`Error::Op`] from the `try_*` methods and panics with the same message
//! from the panicking forms and operators, and `Allow`, which turns the check off.
//!
//! Each warning is printed to stderr once per call site, so a training loop does not flood the
//! terminal, and kept for [`take_warnings`], which returns the warnings this thread produced
//! since its last call (each call site at most once).
//!
//! ```
//! use tenjit::broadcast_check::{self, BroadcastCheck};
//! use tenjit::prelude::*;
//!
//! let pred = tensor!([1., 2., 3., 4.]); // shape [4]
//! let y = tensor!([[2.], [4.], [6.], [8.]]); // shape [4, 1]
//! let diff = &pred - &y; // warns: a [4, 4] result
//! assert_eq!(diff.shape(), &[4, 4]);
//! let warnings = broadcast_check::take_warnings();
//! assert_eq!(warnings.len(), 1);
//! assert!(warnings[0].starts_with("tenjit warning: sub broadcasts both operands: [4] and [4, 1] give [4, 4] (at "));
//!
//! // One side only: no warning.
//! let _ = &y + &tensor!([1., 2., 3.]).expand([4, 3]);
//! let _ = &pred * 2.0;
//! assert!(broadcast_check::take_warnings().is_empty());
//!
//! // Strict: the same op is an error.
//! broadcast_check::set_broadcast_check(BroadcastCheck::Error);
//! let err = pred.try_sub(&y).unwrap_err();
//! assert!(err.to_string().starts_with("sub: broadcasts both operands: [4] and [4, 1] give [4, 4]"));
//! // The fix: make the shapes agree.
//! assert_eq!(pred.try_sub(&y.reshape([4])).unwrap().shape(), &[4]);
//! broadcast_check::set_broadcast_check(BroadcastCheck::Warn);
//! ```

use crate::error::{Error, OpErrorKind, Result};
use std::cell::RefCell;
use std::collections::HashSet;
use std::panic::Location;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;
use tenjit_ir::Shape;

/// What to do about a broadcast that stretches both operands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BroadcastCheck {
    /// Say nothing (NumPy and PyTorch behavior).
    Allow,
    /// Print a warning once per call site and keep it for [`take_warnings`] (the default).
    Warn,
    /// Fail the op with an [`Error::Op`] (the default under `TENJIT_STRICT=1`).
    Error,
}

const UNSET: u8 = 0;

impl BroadcastCheck {
    fn code(self) -> u8 {
        match self {
            BroadcastCheck::Allow => 1,
            BroadcastCheck::Warn => 2,
            BroadcastCheck::Error => 3,
        }
    }

    fn from_code(code: u8) -> BroadcastCheck {
        match code {
            1 => BroadcastCheck::Allow,
            3 => BroadcastCheck::Error,
            _ => BroadcastCheck::Warn,
        }
    }
}

static MODE: AtomicU8 = AtomicU8::new(UNSET);
/// The call sites whose warning was printed (process-wide).
static PRINTED: Mutex<Option<HashSet<&'static Location<'static>>>> = Mutex::new(None);

thread_local! {
    /// The warnings this thread produced since the last `take_warnings`, one per call site.
    static WARNINGS: RefCell<Vec<(&'static Location<'static>, String)>> = const { RefCell::new(Vec::new()) };
}

/// Sets the broadcast check for the whole process (overrides `TENJIT_STRICT`).
pub fn set_broadcast_check(mode: BroadcastCheck) {
    MODE.store(mode.code(), Ordering::Relaxed);
}

/// The broadcast check in use: the one set with [`set_broadcast_check`], else `Error` if the
/// environment variable `TENJIT_STRICT` was `1` when the check was first used, else `Warn`.
pub fn broadcast_check() -> BroadcastCheck {
    let code = MODE.load(Ordering::Relaxed);
    if code != UNSET {
        return BroadcastCheck::from_code(code);
    }
    let from_env = match std::env::var("TENJIT_STRICT") {
        Ok(v) => match v.trim() {
            "1" | "true" | "yes" | "on" => BroadcastCheck::Error,
            "" | "0" | "false" | "no" | "off" => BroadcastCheck::Warn,
            other => {
                eprintln!("tenjit: TENJIT_STRICT={other} is not 1 or 0; using 0 (broadcast warnings)");
                BroadcastCheck::Warn
            }
        },
        Err(_) => BroadcastCheck::Warn,
    };
    // A concurrent set_broadcast_check wins over the environment.
    match MODE.compare_exchange(UNSET, from_env.code(), Ordering::Relaxed, Ordering::Relaxed) {
        Ok(_) => from_env,
        Err(set) => BroadcastCheck::from_code(set),
    }
}

/// The warnings this thread produced since the last call (each call site once), oldest first.
/// Every warning is also printed to stderr, once per call site for the whole process.
pub fn take_warnings() -> Vec<String> {
    WARNINGS.with(|w| w.take()).into_iter().map(|(_, s)| s).collect()
}

/// Whether an operand of `shape` is stretched to a larger size along some axis of `result`
/// (the leading axes it lacks count as size 1).
fn stretched(shape: &Shape, result: &Shape) -> bool {
    let lead = result.rank() - shape.rank();
    result.dims().iter().enumerate().any(|(i, &r)| {
        let s = if i < lead { 1 } else { shape.dims()[i - lead] };
        s < r
    })
}

fn list(shapes: &[&Shape]) -> String {
    match shapes {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => {
            let init: Vec<String> = init.iter().map(|s| s.to_string()).collect();
            format!("{} and {last}", init.join(", "))
        }
    }
}

/// Checks the operands of op `op` (their shapes; Rust scalars and 0-d tensors as
/// `Shape::scalar()`) broadcast to `result` at the user's location `at`: warns, errs or passes
/// by the mode when at least two operands are not 0-d and every one of them is stretched.
pub(crate) fn check(
    op: &'static str,
    operands: &[&Shape],
    result: &Shape,
    at: &'static Location<'static>,
) -> Result<()> {
    // Rust scalars and 0-d tensors are meant to be broadcast: they never count. The check
    // fires when the result's shape is none of the other operands' own (each is stretched).
    let tensors = operands.iter().filter(|s| s.rank() > 0).count();
    let stretched_count = operands.iter().filter(|s| s.rank() > 0 && stretched(s, result)).count();
    if tensors < 2 || stretched_count < tensors {
        return Ok(());
    }
    let mode = broadcast_check();
    if mode == BroadcastCheck::Allow {
        return Ok(());
    }
    let which = if operands.len() == 2 { "both operands" } else { "all its operands" };
    let what = format!("broadcasts {which}: {} give {result}", list(operands));
    if mode == BroadcastCheck::Error {
        return Err(Error::Op {
            op,
            kind: OpErrorKind::Shape,
            message: format!(
                "{what}; expand one operand explicitly if this is intended; the broadcast check is strict, by TENJIT_STRICT=1 or set_broadcast_check"
            ),
            at,
        });
    }
    let line = format!(
        "tenjit warning: {op} {what} (at {at}); expand one operand explicitly if this is intended, or set TENJIT_STRICT=1 to make it an error"
    );
    let first = PRINTED.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert_with(HashSet::new).insert(at);
    if first {
        eprintln!("{line}");
    }
    WARNINGS.with(|w| {
        let mut w = w.borrow_mut();
        if !w.iter().any(|(loc, _)| *loc == at) {
            w.push((at, line));
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(d: &[usize]) -> Shape {
        Shape::new(d)
    }

    #[test]
    fn stretched_counts_missing_leading_axes_only_when_they_grow() {
        assert!(stretched(&s(&[4]), &s(&[4, 4])));
        assert!(stretched(&s(&[4, 1]), &s(&[4, 4])));
        assert!(!stretched(&s(&[3]), &s(&[1, 3])));
        assert!(!stretched(&s(&[4, 3]), &s(&[4, 3])));
        assert!(stretched(&Shape::scalar(), &s(&[2])));
        assert!(!stretched(&Shape::scalar(), &Shape::scalar()));
    }

    #[test]
    fn lists_shapes() {
        assert_eq!(list(&[&s(&[4]), &s(&[4, 1])]), "[4] and [4, 1]");
        assert_eq!(list(&[&s(&[4, 1]), &s(&[4]), &Shape::scalar()]), "[4, 1], [4] and []");
    }
}
