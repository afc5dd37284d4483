//! Comparing tenjit with values PyTorch computed once and committed as `.npy` files
//! (`tests/oracle/gen_*.py`): each case runs in `f64` (`rtol 1e-10`) and, from the same inputs
//! rounded to `f32`, in `f32` (`rtol 1e-4`); the absolute tolerance is relative to the largest
//! expected magnitude of the array (`1e-12` and `1e-5` of it), for elements that cancel to near
//! zero. `ORACLE_VERBOSE=1` (with `-- --nocapture`) prints how much of its tolerance each
//! comparison uses.

// Each oracle test uses a subset.
#![allow(dead_code)]

use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use tenjit::prelude::*;

/// Loads `tests/oracle/data/<dir>/<case>.<name>.npy`.
pub fn load(dir: &str, case: &str, name: &str) -> Tensor {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/oracle/data")
        .join(dir)
        .join(format!("{case}.{name}.npy"));
    Tensor::load_npy(&path).unwrap_or_else(|e| panic!("loading {}: {e}", path.display()))
}

/// One case in one dtype: loads its inputs, compares results, collects failures.
pub struct Case {
    dir: &'static str,
    name: &'static str,
    dtype: DType,
    failures: RefCell<Vec<String>>,
}

impl Case {
    /// An input: floats converted to the case's dtype, integers as they are.
    pub fn data(&self, name: &str) -> Tensor {
        let t = load(self.dir, self.name, name);
        if t.dtype().is_float() {
            t.to_dtype(self.dtype).realize().clone()
        } else {
            t
        }
    }

    /// A float input that requires grad.
    pub fn leaf(&self, name: &str) -> Tensor {
        self.data(name).requires_grad_()
    }

    /// Compares `got` with `<case>.<name>.npy`.
    pub fn check(&self, name: &str, got: &Tensor) {
        if let Err(e) = self.compare(name, got) {
            self.failures.borrow_mut().push(format!("{} {} {name}: {e}", self.name, self.dtype));
        }
    }

    fn compare(&self, name: &str, got: &Tensor) -> Result<(), String> {
        let exp = load(self.dir, self.name, name);
        if got.dtype() != self.dtype {
            return Err(format!("dtype {}, expected {}", got.dtype(), self.dtype));
        }
        if got.shape() != exp.shape() {
            return Err(format!("shape {:?}, expected {:?}", got.shape(), exp.shape()));
        }
        let (rtol, atol_rel) = if self.dtype == DType::F64 { (1e-10, 1e-12) } else { (1e-4, 1e-5) };
        let got = got.to_dtype(DType::F64).to_vec::<f64>();
        let want = exp.to_vec::<f64>();
        let scale = want.iter().fold(0.0f64, |m, e| m.max(e.abs()));
        let atol = atol_rel * scale.max(f64::MIN_POSITIVE);
        if std::env::var_os("ORACLE_VERBOSE").is_some() {
            let used = got
                .iter()
                .zip(&want)
                .map(|(g, e)| (g - e).abs() / (atol + rtol * e.abs()))
                .fold(0.0, f64::max);
            eprintln!("{} {} {name}: {used:.3} of the tolerance", self.name, self.dtype);
        }
        let mut bad = Vec::new();
        for (i, (g, e)) in got.iter().zip(&want).enumerate() {
            // NaN anywhere is a failure.
            let ok = (g - e).abs() <= atol + rtol * e.abs();
            if !ok {
                bad.push(format!("[{i}] got {g:e}, expected {e:e}"));
            }
        }
        if bad.is_empty() {
            return Ok(());
        }
        let n = bad.len();
        bad.truncate(5);
        Err(format!("{n} of {} elements differ: {}", want.len(), bad.join(", ")))
    }
}

/// Runs `body` for the case `name` of `tests/oracle/data/<dir>` in `f64` and in `f32`; panics
/// listing every failure.
pub fn run(dir: &'static str, name: &'static str, body: impl Fn(&Case)) {
    let mut failures = Vec::new();
    for dtype in [DType::F64, DType::F32] {
        let case = Case { dir, name, dtype, failures: RefCell::new(Vec::new()) };
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| body(&case))) {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            case.failures.borrow_mut().push(format!("{name} {dtype}: panicked: {msg}"));
        }
        failures.extend(case.failures.into_inner());
    }
    assert!(failures.is_empty(), "disagreements with torch:\n  {}", failures.join("\n  "));
}

/// Checks `value` against the case's `value` and the gradient of `sum(value * cot)` (`cot` the
/// case's random cotangent) with respect to each named leaf against its `grad_<name>`.
pub fn check_vjp(c: &Case, value: &Tensor, leaves: &[(&str, &Tensor)]) {
    c.check("value", value);
    let cot = c.data("cot");
    let wrt: Vec<&Tensor> = leaves.iter().map(|(_, t)| *t).collect();
    let grads = tenjit::grad(&[&(value * &cot).sum()], &wrt);
    for ((name, _), g) in leaves.iter().zip(&grads) {
        c.check(&format!("grad_{name}"), g);
    }
}
