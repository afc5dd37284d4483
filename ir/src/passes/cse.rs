//! (in progress)

use crate::graph::Graph;

/// The `cse` pass.
pub struct Cse;

impl super::Pass for Cse {
    fn name(&self) -> &'static str {
        "cse"
    }
    fn run(&self, _g: &mut Graph) -> bool {
        false
    }
}
