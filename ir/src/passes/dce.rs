//! (in progress)

use crate::graph::Graph;

/// The `dce` pass.
pub struct Dce;

impl super::Pass for Dce {
    fn name(&self) -> &'static str {
        "dce"
    }
    fn run(&self, _g: &mut Graph) -> bool {
        false
    }
}
