//! The depth bound of the realization policy (rule 3 of [`crate::lazy`]): how many ops a lazy
//! node is from computed values, and its realization when that passes
//! [`crate::lazy_depth_limit`].
//!
//! A node records its depth when it is made, from its operands' recorded depths. An operand
//! computed later (a parameter realized at the next step's `backward()`, say) leaves the
//! recorded depths of the nodes made before too high, and they grow from step to step. So a
//! recorded depth past the limit is first measured again over the lazy graph behind the node,
//! refreshing each node's record on the way, and the node is realized only if it is truly
//! too deep: a loop whose steps end at boundaries never hits the limit however long it runs.

use super::Tensor;
use crate::error::Result;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The recorded depth of `t`: 0 once it is computed.
fn recorded(t: &Tensor) -> u32 {
    if t.is_realized() {
        0
    } else {
        t.0.depth.load(Ordering::Relaxed)
    }
}

/// The depth of a node computed from `inputs`: one more than its deepest operand that is not
/// computed yet. Computed values and sources (constants, `arange`, random draws: ops with no
/// operands) are depth 0.
pub(super) fn depth_of(inputs: &[&Tensor]) -> u32 {
    match inputs.iter().map(|t| recorded(t)).max() {
        Some(deepest) => deepest.saturating_add(1),
        None => 0,
    }
}

/// Realizes a freshly made node that is deeper than [`crate::lazy_depth_limit`].
pub(super) fn bound_depth(t: &Tensor) -> Result<()> {
    let limit = crate::lazy::lazy_depth_limit();
    if recorded(t) as usize <= limit || crate::lazy::tracing() {
        return Ok(());
    }
    if measure(t) as usize > limit {
        t.try_realize()?;
    }
    Ok(())
}

/// The true depth of `t`, walking the lazy graph behind it (iteratively: it may be long) and
/// storing each visited node's true depth in its record.
fn measure(t: &Tensor) -> u32 {
    let mut depth: HashMap<*const super::Node, u32> = HashMap::new();
    // (node, whether its operands have been pushed).
    let mut stack = vec![(t.clone(), false)];
    while let Some((n, expanded)) = stack.pop() {
        let key = Arc::as_ptr(&n.0);
        if depth.contains_key(&key) {
            continue;
        }
        if n.is_realized() {
            depth.insert(key, 0);
            continue;
        }
        let args = n.0.inputs.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if expanded || args.is_empty() {
            let d = match args.iter().map(|a| depth.get(&Arc::as_ptr(&a.0)).copied().unwrap_or(0)).max() {
                Some(deepest) => deepest.saturating_add(1),
                None => 0,
            };
            n.0.depth.store(d, Ordering::Relaxed);
            depth.insert(key, d);
            continue;
        }
        stack.push((n, true));
        stack
            .extend(args.into_iter().filter(|a| !depth.contains_key(&Arc::as_ptr(&a.0))).map(|a| (a, false)));
    }
    depth[&Arc::as_ptr(&t.0)]
}
