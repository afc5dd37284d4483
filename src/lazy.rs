//! When lazy work is computed: the realization policy, in one place.
//!
//! Ops record nodes; values are computed (realized) at these points, and only these:
//!
//! 1. **When a value is asked for**: `item`, `to_vec`, `to_ndarray`, printing, `save_npy`,
//!    [`crate::realize()`], and the ops that need data to build the graph (a boolean mask's
//!    count, for instance).
//! 2. **At a training step's boundaries.** `backward()` asks for its loss, and an in-place update
//!    of a leaf that requires grad (`w.sub_(...)` under `no_grad`) asks for the updated
//!    parameter, to be computed with the next realization, so forward, backward and update run
//!    as one executable; an optimizer's `step()` is such an update of its parameters and
//!    state. The update is realized at the latest when the next `backward()` starts: a loop that never reads a value still
//!    runs one compiled step per iteration, in time linear in the steps and memory flat.
//!    Several `backward()` calls before one update (gradient accumulation) stay lazy and are
//!    computed together.
//! 3. **When a lazy chain gets too deep**: a node more than [`lazy_depth_limit`] ops away from
//!    computed values (1,024 by default) is realized as it is created, so a loop with no
//!    boundary at all (`x = x * 0.9 + 1.0` ten thousand times) compiles one chain of that depth
//!    (once; later chains have the same structure) instead of a graph that grows without end.
//!
//! Nothing is realized automatically while [`crate::jit()`] traces a function (its inputs are
//! placeholders there), and a node that is already computed is never computed again.
//!
//! The rules are applied where they happen: `realize_with_next` and the step boundary in
//! `src/realize.rs`, the depth bound where nodes are made (`src/tensor/mod.rs`). This module
//! holds their settings, which depend on nothing else in the crate. [`crate::live`] counts the
//! tensor nodes alive and the bytes their values hold, so tests can hold a long loop flat.

use std::cell::Cell;
use std::sync::atomic::{AtomicU32, Ordering};

thread_local! {
    /// How many [`Tracing`] guards are alive on this thread.
    static TRACING: Cell<u32> = const { Cell::new(0) };
}

/// While alive, nothing on this thread is realized automatically (see the module's rules):
/// [`crate::jit()`] holds one while it runs the traced function on placeholders.
pub(crate) struct Tracing(());

impl Tracing {
    pub(crate) fn new() -> Tracing {
        TRACING.with(|t| t.set(t.get() + 1));
        Tracing(())
    }
}

impl Drop for Tracing {
    fn drop(&mut self) {
        TRACING.with(|t| t.set(t.get() - 1));
    }
}

/// Whether a [`Tracing`] guard is alive on this thread.
pub(crate) fn tracing() -> bool {
    TRACING.with(|t| t.get() > 0)
}

static DEPTH_LIMIT: AtomicU32 = AtomicU32::new(1024);

/// How many ops a lazy node may be away from computed values before it is realized as it is
/// created (1,024 by default; see the module's rules).
pub fn lazy_depth_limit() -> usize {
    DEPTH_LIMIT.load(Ordering::Relaxed) as usize
}

/// Sets [`lazy_depth_limit`] for the process (at least 1; larger values let longer chains fuse
/// and cost compile time on graphs that never realize). Returns the previous limit.
///
/// ```
/// let before = tenjit::set_lazy_depth_limit(64);
/// assert_eq!(tenjit::lazy_depth_limit(), 64);
/// tenjit::set_lazy_depth_limit(before);
/// ```
pub fn set_lazy_depth_limit(limit: usize) -> usize {
    let limit = limit.clamp(1, u32::MAX as usize) as u32;
    DEPTH_LIMIT.swap(limit, Ordering::Relaxed) as usize
}
