//! (in progress)

use crate::graph::Graph;

/// The `simplify` pass.
pub struct Simplify;

impl super::Pass for Simplify {
    fn name(&self) -> &'static str {
        "simplify"
    }
    fn run(&self, _g: &mut Graph) -> bool {
        false
    }
}
