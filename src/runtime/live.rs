//! The process-wide count of live tensor nodes and of the bytes their computed values hold:
//! [`live`], for tests that hold a long loop flat and for the compile report.

use std::sync::atomic::{AtomicUsize, Ordering};

static LIVE_NODES: AtomicUsize = AtomicUsize::new(0);
static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

/// The tensor nodes alive in the process and the bytes their computed values hold: what
/// [`live`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Live {
    /// Tensor nodes alive: those user handles refer to, and those a lazy graph or a gradient
    /// still needs.
    pub nodes: usize,
    /// Bytes of the computed values those nodes hold (each value counted once, where it was
    /// computed; a host copy of a GPU value is not counted again).
    pub bytes: usize,
}

/// The tensor nodes alive in this process and the bytes their values hold. A loop that frees
/// what each step made keeps both flat.
///
/// ```
/// use tenjit::prelude::*;
/// let x = Tensor::zeros([256]);
/// x.realize();
/// let now = tenjit::live();
/// assert!(now.nodes >= 1 && now.bytes >= 256 * 4);
/// ```
pub fn live() -> Live {
    Live { nodes: LIVE_NODES.load(Ordering::Relaxed), bytes: LIVE_BYTES.load(Ordering::Relaxed) }
}

/// Counts a tensor node created (the front end calls it once per node).
pub fn node_created() {
    LIVE_NODES.fetch_add(1, Ordering::Relaxed);
}

/// Counts a tensor node dropped.
pub fn node_dropped() {
    LIVE_NODES.fetch_sub(1, Ordering::Relaxed);
}

/// Counts `bytes` of computed value held (`held`) or given back.
pub fn value_bytes(bytes: usize, held: bool) {
    if held {
        LIVE_BYTES.fetch_add(bytes, Ordering::Relaxed);
    } else {
        LIVE_BYTES.fetch_sub(bytes, Ordering::Relaxed);
    }
}
