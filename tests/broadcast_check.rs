//! The broadcast check: a broadcast that stretches both operands warns (once per call site,
//! naming the op, the shapes and this file's line), errs in strict mode, and is silent when
//! only one side is broadcast.
//!
//! The mode is process-wide and the tests of this binary run on parallel threads, so every
//! test that depends on the mode holds `MODE_LOCK` and sets the mode it needs, restoring the
//! previous one when it ends. Warnings are per thread (`take_warnings`), so they never mix
//! between tests.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use tenjit::prelude::*;
use tenjit::{broadcast_check, set_broadcast_check, take_warnings, BroadcastCheck};

static MODE_LOCK: Mutex<()> = Mutex::new(());

/// Holds the lock with `mode` set; restores the previous mode on drop.
struct Mode {
    previous: BroadcastCheck,
    _lock: MutexGuard<'static, ()>,
}

fn mode(mode: BroadcastCheck) -> Mode {
    let lock = MODE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let previous = broadcast_check();
    set_broadcast_check(mode);
    take_warnings(); // this thread starts clean
    Mode { previous, _lock: lock }
}

impl Drop for Mode {
    fn drop(&mut self) {
        set_broadcast_check(self.previous);
    }
}

fn pred() -> Tensor {
    tensor!([1., 2., 3., 4.])
}

fn column() -> Tensor {
    tensor!([[2.], [4.], [6.], [8.]])
}

fn hint() -> &'static str {
    "expand one operand explicitly if this is intended, or set TENJIT_STRICT=1 to make it an error"
}

#[test]
fn vector_minus_column_warns_with_the_shapes_and_this_line() {
    let _m = mode(BroadcastCheck::Warn);
    let (p, y) = (pred(), column());
    let d = &p - &y;
    let line = line!() - 1;
    assert_eq!(d.shape(), &[4, 4], "the op still broadcasts, as NumPy and PyTorch");
    let w = take_warnings();
    assert_eq!(
        w,
        [format!(
            "tenjit warning: sub broadcasts both operands: [4] and [4, 1] give [4, 4] (at {}:{line}:13); {}",
            file!(),
            hint()
        )]
    );
    assert!(take_warnings().is_empty(), "take_warnings drains");

    // The other order, a method, and (1, 3) against (2, 1).
    let d = y.add(&p);
    let line = line!() - 1;
    let e = tensor!([[1., 2., 3.]]).mul(tensor!([[1.], [2.]]));
    assert_eq!(e.shape(), &[2, 3]);
    let w = take_warnings();
    assert_eq!(w.len(), 2, "{w:?}");
    assert_eq!(
        w[0],
        format!(
            "tenjit warning: add broadcasts both operands: [4, 1] and [4] give [4, 4] (at {}:{line}:15); {}",
            file!(),
            hint()
        )
    );
    assert!(
        w[1].starts_with("tenjit warning: mul broadcasts both operands: [1, 3] and [2, 1] give [2, 3] (at ")
    );
    assert_eq!(d.shape(), &[4, 4]);
}

#[test]
fn where_warns_when_all_its_operands_are_stretched() {
    let _m = mode(BroadcastCheck::Warn);
    let (p, y) = (pred(), column());
    let r = Tensor::where_(&y.gt(3.0), &p, 0.0);
    assert_eq!(r.shape(), &[4, 4]);
    let r = Tensor::where_(&p.gt(3.0), &y, &y);
    assert_eq!(r.shape(), &[4, 4]);
    let w = take_warnings();
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(
        w[0].starts_with(
            "tenjit warning: where broadcasts all its operands: [4, 1], [4] and [] give [4, 4] (at "
        ),
        "{}",
        w[0]
    );
    assert!(w[1].starts_with(
        "tenjit warning: where broadcasts all its operands: [4], [4, 1] and [4, 1] give [4, 4]"
    ));
    // A `where` with one operand of the result's shape is fine.
    let _ = Tensor::where_(&p.gt(2.0), &p, 0.0);
    let _ = Tensor::where_(&y.gt(3.0), y.expand([4, 4]), &p);
    let _ = Tensor::where_(&p.gt(2.0), &y, y.expand([4, 4]));
    let _ = Tensor::where_(&tensor!([[true], [false]]), Tensor::ones([2, 3]), 0.0);
    assert_eq!(take_warnings(), Vec::<String>::new());
}

#[test]
fn one_sided_broadcasts_never_warn() {
    let _m = mode(BroadcastCheck::Warn);
    let x = Tensor::ones([4, 3]);
    let bias = tensor!([1., 2., 3.]);
    let col = tensor!([[1.], [2.], [3.], [4.]]);
    let zero_d = tensor!(2.0);
    let _ = &x + &bias; // [4, 3] and [3]
    let _ = &bias + &x;
    let _ = &x * &col; // a column against a matrix
    let _ = &col - &x;
    let _ = &x / &zero_d; // a 0-d tensor
    let _ = &zero_d * &bias;
    let _ = 2.0 * &x + 1.0; // Rust scalars
    let _ = bias.pow(2);
    let _ = &bias + &tensor!([[1., 2., 3.]]); // [3] against [1, 3]: the missing axis is size 1
    let _ = &tensor!([1.]) - &col; // a one-element tensor against anything
    let _ = &tensor!([[5.]]) - &bias;
    let _ = &col - &col.expand([4, 3]); // explicit expand: the intended outer broadcast
    let _ = x.relu().clamp(0.5, 1.5);
    let _ = x.maximum(&bias).minimum(&zero_d);
    let _ = (&x - x.mean_dim(0, true)) / (x.std_dim(0, 1.0, true) + 1e-8);
    let _ = tensor!([0, 2, 1]).one_hot(4);
    let _ = Tensor::linspace(0.0, 1.0, 5);
    let _ = Tensor::eye(3).sum_dim(1, false);
    let _ = x.sigmoid().gt(&bias).logical_and(col.gt(0.0).expand([4, 3]));
    assert_eq!(take_warnings(), Vec::<String>::new());
}

#[test]
fn a_call_site_warns_once_per_take_however_often_it_runs() {
    let _m = mode(BroadcastCheck::Warn);
    let (p, y) = (pred(), column());
    for _ in 0..100 {
        let _ = &p - &y;
    }
    let w = take_warnings();
    assert_eq!(w.len(), 1, "a loop over one call site: {w:?}");
    for _ in 0..3 {
        let _ = &p - &y;
        let _ = &y - &p;
    }
    assert_eq!(take_warnings().len(), 2, "two call sites");
    let _ = &p - &y;
    assert_eq!(take_warnings().len(), 1, "a site warns again after a take");
}

#[test]
fn strict_mode_errors_through_try_and_panics_through_operators() {
    let _m = mode(BroadcastCheck::Error);
    let (p, y) = (pred(), column());
    let err = p.try_sub(&y).unwrap_err();
    let line = line!() - 1;
    assert!(matches!(err, tenjit::Error::Op { op: "sub", .. }), "{err:?}");
    let expected = format!(
        "sub: broadcasts both operands: [4] and [4, 1] give [4, 4]; expand one operand explicitly if this is intended; the broadcast check is strict, by TENJIT_STRICT=1 or set_broadcast_check (at {}:{line}:17)",
        file!()
    );
    assert_eq!(err.to_string(), expected);

    let panic = catch_unwind(AssertUnwindSafe(|| &p - &y)).unwrap_err();
    let line = line!() - 1;
    let msg = panic.downcast_ref::<String>().expect("a formatted panic message");
    assert!(msg.starts_with("sub: broadcasts both operands: [4] and [4, 1] give [4, 4]; "), "{msg}");
    assert!(msg.ends_with(&format!("(at {}:{line}:50)", file!())), "{msg}");

    let err = Tensor::try_where(&y.gt(3.0), &p, 0.0).unwrap_err();
    assert!(err
        .to_string()
        .starts_with("where: broadcasts all its operands: [4, 1], [4] and [] give [4, 4]"));

    // In-place ops go through the same check.
    let mut q = pred();
    let err = catch_unwind(AssertUnwindSafe(|| {
        q -= &y;
    }))
    .unwrap_err();
    assert!(err.downcast_ref::<String>().unwrap().starts_with("sub: broadcasts both operands"));

    // Strict mode stops nothing legitimate, and warns about nothing.
    assert_eq!((&p - &y.reshape([4])).to_vec::<f32>(), [-1.0, -2.0, -3.0, -4.0]);
    assert_eq!(p.try_add(y.expand([4, 4])).unwrap().shape(), &[4, 4]);
    assert!(take_warnings().is_empty());
}

#[test]
fn allow_silences_the_check() {
    let _m = mode(BroadcastCheck::Allow);
    let (p, y) = (pred(), column());
    let d = p.try_sub(&y).expect("allowed");
    assert_eq!(d.shape(), &[4, 4]);
    assert_eq!(d.sum().item(), (1.0 + 2.0 + 3.0 + 4.0) * 4.0 - (2.0 + 4.0 + 6.0 + 8.0) * 4.0);
    assert!(take_warnings().is_empty());
}

#[test]
fn warnings_are_per_thread() {
    let _m = mode(BroadcastCheck::Warn);
    let other = std::thread::spawn(|| {
        let _ = &pred() - &column();
        take_warnings()
    })
    .join()
    .unwrap();
    assert_eq!(other.len(), 1);
    assert!(take_warnings().is_empty(), "another thread's warnings are its own");
}

// The environment and stderr are per process: these run this test binary again as a child.

/// Runs `child_body` in a child process with `env`; returns its stderr.
fn run_child(case: &str, strict: Option<&str>) -> String {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["child_body", "--exact", "--nocapture", "--test-threads=1"]).env("TENJIT_BC_CHILD", case);
    match strict {
        Some(v) => cmd.env("TENJIT_STRICT", v),
        None => cmd.env_remove("TENJIT_STRICT"),
    };
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "child {case} failed:\n{stderr}\n{}", String::from_utf8_lossy(&out.stdout));
    stderr
}

/// The child's side of the tests below; does nothing in a normal run.
#[test]
fn child_body() {
    let Ok(case) = std::env::var("TENJIT_BC_CHILD") else { return };
    let (p, y) = (pred(), column());
    match case.as_str() {
        "loop" => {
            assert_eq!(broadcast_check(), BroadcastCheck::Warn);
            for _ in 0..50 {
                let _ = &p - &y;
                let _ = &y * &p;
            }
        }
        "strict" => {
            assert_eq!(broadcast_check(), BroadcastCheck::Error);
            assert!(p.try_sub(&y).is_err());
            set_broadcast_check(BroadcastCheck::Warn); // overrides the environment
            assert!(p.try_sub(&y).is_ok());
        }
        "not-strict" => {
            assert_eq!(broadcast_check(), BroadcastCheck::Warn);
            assert!(p.try_sub(&y).is_ok());
        }
        other => panic!("unknown case {other}"),
    }
}

#[test]
fn stderr_gets_each_call_site_once() {
    let stderr = run_child("loop", None);
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("tenjit warning:")).collect();
    assert_eq!(lines.len(), 2, "two call sites, 50 times each:\n{stderr}");
    assert!(
        lines[0].starts_with("tenjit warning: sub broadcasts both operands: [4] and [4, 1] give [4, 4] (at ")
    );
    assert!(
        lines[1].starts_with("tenjit warning: mul broadcasts both operands: [4, 1] and [4] give [4, 4] (at ")
    );
    assert!(lines.iter().all(|l| l.contains(file!()) && l.ends_with(hint())), "{stderr}");
}

#[test]
fn tenjit_strict_in_the_environment_sets_the_default() {
    let stderr = run_child("strict", Some("1"));
    assert_eq!(stderr.lines().filter(|l| l.starts_with("tenjit warning:")).count(), 1, "{stderr}");
    let stderr = run_child("not-strict", Some("0"));
    assert_eq!(stderr.lines().filter(|l| l.starts_with("tenjit warning:")).count(), 1, "{stderr}");
}
