//! Graph-to-graph passes and the runner that applies them.
//!
//! A pass is small and named; the runner verifies the graph after each one, so a broken pass
//! is reported by name rather than three passes later, and hands each intermediate graph to
//! an observer (how `TENJIT_DUMP` writes the IR before and after every pass).

pub mod cse;
pub mod dce;
pub mod simplify;
pub mod sink_slices;
pub mod split_reduce;
pub mod transpose_products;

use crate::graph::Graph;
use crate::verify::{verify, VerifyErrors};
use std::fmt;

/// A graph-to-graph transformation that preserves the values of the graph's outputs.
pub trait Pass {
    /// The pass's name, as dumps and errors cite it.
    fn name(&self) -> &'static str;
    /// Rewrites `g` in place; returns whether anything changed.
    fn run(&self, g: &mut Graph) -> bool;
}

/// A pass left the graph malformed.
#[derive(Clone, Debug)]
pub struct PassError {
    /// The pass at fault.
    pub pass: &'static str,
    /// What the verifier found.
    pub errors: VerifyErrors,
}

impl fmt::Display for PassError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pass `{}` broke the graph: {}", self.pass, self.errors)
    }
}

impl std::error::Error for PassError {}

/// Runs `passes` in order, verifying after each, and calls `observe(name, graph)` with the
/// graph after each pass.
pub fn run_passes(
    g: &mut Graph,
    passes: &[&dyn Pass],
    observe: &mut dyn FnMut(&'static str, &Graph),
) -> Result<(), PassError> {
    for pass in passes {
        pass.run(g);
        verify(g).map_err(|errors| PassError { pass: pass.name(), errors })?;
        observe(pass.name(), g);
    }
    Ok(())
}

/// The compiler's pass pipeline, in order: the sinking of slices toward the inputs, the
/// transposing of products read only transposed, simplify (constant folding and algebraic
/// identities), CSE, DCE, then the splitting of large reductions for the cores. Realization,
/// `tenjit::inspect`, `TENJIT_DUMP` and `tenjit compile` all run this one list.
pub fn pipeline() -> Vec<Box<dyn Pass>> {
    vec![
        Box::new(sink_slices::SinkSlices),
        Box::new(transpose_products::TransposeProducts),
        Box::new(simplify::Simplify),
        Box::new(cse::Cse),
        Box::new(dce::Dce),
        Box::new(split_reduce::SplitReduce::default()),
    ]
}

/// The graph clean-up passes alone: slice sinking, the transposing of products, simplify, CSE,
/// DCE (the [`pipeline`] without the reduction splitting that only pays off on large data).
pub fn standard() -> Vec<Box<dyn Pass>> {
    vec![
        Box::new(sink_slices::SinkSlices),
        Box::new(transpose_products::TransposeProducts),
        Box::new(simplify::Simplify),
        Box::new(cse::Cse),
        Box::new(dce::Dce),
    ]
}
