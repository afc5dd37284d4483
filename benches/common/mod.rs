//! What the benchmarks share: timing with a median, the table line and the peers' JSON record.

// Each bench binary uses a subset.
#![allow(dead_code)]

pub mod limits;

use std::io::Write;
use std::time::{Duration, Instant};

/// The least time a measurement runs for (after its `reps` runs), as the peers' `timeit`
/// with `min_total_s=0.3`.
pub const MIN_TOTAL_S: f64 = 0.3;

/// The most runs the time rule takes a measurement to (as the peers' `max_reps`).
pub const MAX_REPS: usize = 200;

pub struct Bench {
    pub only: Option<Vec<String>>,
    pub json: Option<std::fs::File>,
    /// A reference bandwidth in GB/s (the machine's read sweep in its best run,
    /// `limits::measure`): while set, each line with a byte count also says what fraction of
    /// it the workload's best run reached (best against best, as other work on a shared
    /// machine only ever slows a run down).
    pub reference: Option<f64>,
    /// The fastest run of the last measurement, in seconds.
    pub last_min: Option<f64>,
}

impl Bench {
    /// `--only W1,W4.mm1024` and `--json FILE` from the command line.
    pub fn from_args(args: &[String]) -> Bench {
        let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
        Bench {
            only: arg("--only").map(|s| s.split(',').map(String::from).collect()),
            json: arg("--json")
                .map(|p| std::fs::OpenOptions::new().create(true).append(true).open(p).expect("--json file")),
            reference: None,
            last_min: None,
        }
    }

    pub fn want(&self, id: &str) -> bool {
        self.only.as_ref().is_none_or(|o| o.iter().any(|w| id == w || id.starts_with(&format!("{w}."))))
    }

    /// Times `f` (which must realize its result) after two warm-up runs, at least `reps` times and
    /// then on until [`MIN_TOTAL_S`] have passed (at most [`MAX_REPS`] runs), and reports the
    /// median: the protocol of the peers' `timeit` (`../shared/peers/common.py`), so a short
    /// workload's median is taken over as many runs as theirs.
    pub fn time(&mut self, id: &str, reps: usize, bytes: Option<f64>, flops: Option<f64>, f: impl FnMut()) {
        self.time_as(id, "", reps, bytes, flops, f);
    }

    /// [`Bench::time`] of one variant of tenjit (`jit`, `lazy`), named in the table and the
    /// record; returns the median in seconds.
    pub fn time_as(
        &mut self,
        id: &str,
        variant: &str,
        reps: usize,
        bytes: Option<f64>,
        flops: Option<f64>,
        mut f: impl FnMut(),
    ) -> Option<f64> {
        if !self.want(id) {
            return None;
        }
        f();
        f();
        let start = Instant::now();
        let mut ts: Vec<Duration> = Vec::with_capacity(reps);
        while ts.len() < reps || (start.elapsed().as_secs_f64() < MIN_TOTAL_S && ts.len() < MAX_REPS) {
            let t = Instant::now();
            f();
            ts.push(t.elapsed());
        }
        let reps = ts.len();
        ts.sort();
        let med = ts[ts.len() / 2].as_secs_f64();
        let (min, max) = (ts[0].as_secs_f64(), ts[ts.len() - 1].as_secs_f64());
        self.record_with(id, variant, (med, min, max), reps, bytes, flops);
        Some(med)
    }

    /// Prints and records a measured `(median, min, max)` in seconds over `n` runs.
    pub fn record(&mut self, id: &str, variant: &str, med: f64, min: f64, max: f64, n: usize) {
        self.record_with(id, variant, (med, min, max), n, None, None);
    }

    fn record_with(
        &mut self,
        id: &str,
        variant: &str,
        (med, min, max): (f64, f64, f64),
        reps: usize,
        bytes: Option<f64>,
        flops: Option<f64>,
    ) {
        let mut extra = String::new();
        if let Some(b) = bytes {
            extra += &format!("  {:6.1} GB/s", b / med / 1e9);
            if let Some(r) = self.reference {
                extra += &format!("  {:5.1}% of read (best runs)", 100.0 * b / min / 1e9 / r);
            }
        }
        if let Some(fl) = flops {
            extra += &format!("  {:6.1} GFLOP/s", fl / med / 1e9);
        }
        self.last_min = Some(min);
        let label = if variant.is_empty() { id.to_string() } else { format!("{id} ({variant})") };
        println!(
            "{label:<28} {:>9.3} ms  (min {:.3}, max {:.3}, n={reps}){extra}",
            med * 1e3,
            min * 1e3,
            max * 1e3
        );
        if let Some(file) = &mut self.json {
            let mut rec = format!(
                "{{\"peer\": \"tenjit\", \"variant\": \"tenjit {}{}\", \"workload\": \"{id}\", \"n\": {reps}, \
                 \"median_s\": {med}, \"min_s\": {min}, \"max_s\": {max}",
                backend_name(),
                if variant.is_empty() { String::new() } else { format!(" ({variant})") }
            );
            if let Some(b) = bytes {
                rec += &format!(", \"gbps\": {}", b / med / 1e9);
            }
            if let Some(fl) = flops {
                rec += &format!(", \"gflops\": {}", fl / med / 1e9);
            }
            rec += ", \"check\": \"ok\"}";
            let _ = writeln!(file, "{rec}");
        }
    }
}

pub fn backend_name() -> &'static str {
    match tenjit::backend() {
        tenjit::Backend::Interp => "interp",
        tenjit::Backend::Cpu => "cpu",
        tenjit::Backend::Cuda => "cuda",
    }
}
