//! Where the time goes (`tenjit::profile`): a per-step profile of the programs the CPU backend
//! runs, as
//! `torch.profiler`'s table of operators. With `TENJIT_PROFILE=1` in the environment (or
//! [`set_enabled`]`(true)`), every run of a compiled program times each of its steps (a kernel,
//! a GEMM, a library routine, or a row group as one) and adds the time to a process-wide
//! table; [`report`] returns the table, heaviest steps first, each named as
//! `tenjit::inspect` lists it, so a slow line leads straight to the kernel list and the dump.
//! Off, a run pays one atomic load.
//!
//! ```
//! use tenjit::prelude::*;
//! tenjit::profile::set_enabled(true);
//! let x = Tensor::randn([64, 64]).realize().clone();
//! let y = (x.exp() * 2.0).sum_dim(1, false);
//! y.realize();
//! let profile = tenjit::profile::report();
//! assert!(profile.entries.iter().any(|e| e.step.contains("reduce sum") && e.calls == 1));
//! println!("{profile}");
//! tenjit::profile::set_enabled(false);
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// 0: not yet read from the environment; 1: off; 2: on.
static STATE: AtomicU8 = AtomicU8::new(0);

/// The accumulated steps, by (executable, step index).
fn table() -> &'static Mutex<HashMap<(u64, usize), ProfileEntry>> {
    static TABLE: OnceLock<Mutex<HashMap<(u64, usize), ProfileEntry>>> = OnceLock::new();
    TABLE.get_or_init(Default::default)
}

/// Whether runs are being profiled: [`set_enabled`]'s last value, else whether
/// `TENJIT_PROFILE` is set to something other than `0` or empty.
pub fn enabled() -> bool {
    match STATE.load(Ordering::Relaxed) {
        0 => {
            let on = std::env::var("TENJIT_PROFILE").is_ok_and(|v| !v.is_empty() && v != "0");
            STATE.store(if on { 2 } else { 1 }, Ordering::Relaxed);
            on
        }
        s => s == 2,
    }
}

/// Turns profiling on or off for the runs that start from now on.
pub fn set_enabled(on: bool) {
    STATE.store(if on { 2 } else { 1 }, Ordering::Relaxed);
}

/// Forgets every recorded step.
pub fn reset() {
    table().lock().unwrap_or_else(|e| e.into_inner()).clear();
}

/// One step of one compiled program, over all the runs recorded.
#[derive(Clone, Debug, PartialEq)]
pub struct ProfileEntry {
    /// Which compiled program (numbered in the order the backend compiled them).
    pub executable: u64,
    /// The step's position in its program.
    pub index: usize,
    /// The step as the kernel list names it: `k3  reduce sum  [64,10] axes=[1]`, `matmul
    /// matmul f32  [64,9216]x[9216,128]`, `conv2d  library  stride=[1,1], ...`, or `group
    /// k1, k2, k3  [64,10]` for a row group, which runs as one.
    pub step: String,
    /// What it is: `matmul`, `elementwise`, `reduce`, `group`, or a library routine's name
    /// (`conv2d`, `gather`, ...).
    pub kind: String,
    /// How many runs timed it.
    pub calls: u64,
    /// Their total time.
    pub total: Duration,
}

/// A snapshot of the profile: the recorded steps, heaviest first.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Profile {
    /// The steps, by decreasing total time.
    pub entries: Vec<ProfileEntry>,
}

/// The profile recorded so far.
pub fn report() -> Profile {
    let mut entries: Vec<ProfileEntry> =
        table().lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
    entries.sort_by(|a, b| {
        b.total.cmp(&a.total).then(a.executable.cmp(&b.executable)).then(a.index.cmp(&b.index))
    });
    Profile { entries }
}

/// Adds one timing of step `index` of executable `executable`, named and classified by `name`
/// (`(step, kind)`) the first time.
pub(crate) fn record(
    executable: u64,
    index: usize,
    name: impl FnOnce() -> (String, String),
    elapsed: Duration,
) {
    let mut table = table().lock().unwrap_or_else(|e| e.into_inner());
    let entry = table.entry((executable, index)).or_insert_with(|| {
        let (step, kind) = name();
        ProfileEntry { executable, index, step, kind, calls: 0, total: Duration::ZERO }
    });
    entry.calls += 1;
    entry.total += elapsed;
}

impl Profile {
    /// The total time and step count of each kind of step, heaviest first.
    pub fn by_kind(&self) -> Vec<(String, Duration, usize)> {
        let mut kinds: Vec<(String, Duration, usize)> = Vec::new();
        for e in &self.entries {
            match kinds.iter_mut().find(|(k, _, _)| *k == e.kind) {
                Some((_, total, n)) => {
                    *total += e.total;
                    *n += 1;
                }
                None => kinds.push((e.kind.clone(), e.total, 1)),
            }
        }
        kinds.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        kinds
    }
}

impl fmt::Display for Profile {
    /// The time of each kind of step, then a table: total milliseconds, share of all recorded
    /// time, calls, mean microseconds per call, the program (`e3`) and its step.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all: f64 = self.entries.iter().map(|e| e.total.as_secs_f64()).sum();
        writeln!(f, "tenjit profile: {} steps, {:.3} ms in all", self.entries.len(), all * 1e3)?;
        let kinds: Vec<String> = self
            .by_kind()
            .iter()
            .map(|(k, t, n)| format!("{k} {:.3} ms ({n})", t.as_secs_f64() * 1e3))
            .collect();
        writeln!(f, "by kind: {}", kinds.join(", "))?;
        writeln!(f, "{:>10}  {:>6}  {:>6}  {:>10}  step", "total ms", "share", "calls", "mean us")?;
        for e in &self.entries {
            let total = e.total.as_secs_f64();
            let share = if all > 0.0 { 100.0 * total / all } else { 0.0 };
            writeln!(
                f,
                "{:>10.3}  {:>5.1}%  {:>6}  {:>10.1}  e{} {}",
                total * 1e3,
                share,
                e.calls,
                total * 1e6 / e.calls.max(1) as f64,
                e.executable,
                e.step
            )?;
        }
        Ok(())
    }
}
