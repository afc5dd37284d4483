//! Learning-rate schedules. A schedule gives a plain `f64` per step, which the optimizers
//! pass to the compiled step as data, so a new value never recompiles it.

/// Linear warmup to `max_lr` over `warmup` steps (`max_lr * (step + 1) / (warmup + 1)`), then
/// a cosine decay to `min_lr` at `decay_steps`, and `min_lr` after: nanoGPT's `get_lr`.
///
/// ```
/// use tenjit::optim::WarmupCosine;
/// let s = WarmupCosine { max_lr: 1e-3, min_lr: 1e-4, warmup: 100, decay_steps: 2000 };
/// assert!((s.lr(0) - 1e-3 / 101.0).abs() < 1e-15);  // (0 + 1) / (100 + 1) of the peak
/// assert!((s.lr(100) - 1e-3).abs() < 1e-15);        // the peak
/// assert!((s.lr(1050) - 5.5e-4).abs() < 1e-12); // halfway down the cosine
/// assert_eq!(s.lr(5000), 1e-4);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WarmupCosine {
    /// The learning rate at the end of the warmup.
    pub max_lr: f64,
    /// The learning rate at `decay_steps` and after.
    pub min_lr: f64,
    /// The steps of linear warmup.
    pub warmup: usize,
    /// The step at which the decay reaches `min_lr`.
    pub decay_steps: usize,
}

impl WarmupCosine {
    /// The learning rate of step `step` (counted from 0).
    pub fn lr(&self, step: usize) -> f64 {
        if step < self.warmup {
            return self.max_lr * (step + 1) as f64 / (self.warmup + 1) as f64;
        }
        if step > self.decay_steps {
            return self.min_lr;
        }
        let span = (self.decay_steps - self.warmup).max(1) as f64;
        let ratio = (step - self.warmup) as f64 / span;
        let coeff = 0.5 * (1.0 + (std::f64::consts::PI * ratio).cos());
        self.min_lr + coeff * (self.max_lr - self.min_lr)
    }
}
