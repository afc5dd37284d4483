//! Dead-code elimination: removes every node no output depends on.
//!
//! Inputs stay even when unused, since they are the graph's signature. Surviving nodes keep
//! their ids and source locations. The printer and the interpreter already skip dead nodes
//! ([`Graph::live_order`]); this pass makes the graph itself small, so later passes and dumps
//! count only what is computed.

use crate::graph::Graph;

/// The `dce` pass: removes nodes from which no output is reachable (inputs excepted).
pub struct Dce;

impl super::Pass for Dce {
    fn name(&self) -> &'static str {
        "dce"
    }

    fn run(&self, g: &mut Graph) -> bool {
        g.remove_dead() > 0
    }
}
