//! Common-subexpression elimination by hash-consing `(op, operands)`.
//!
//! Ops are `Eq + Hash` (constants compare by their bits), so two nodes with equal ops and equal
//! operand lists compute the same value and one of them suffices. Nodes are visited in the
//! graph's deterministic topological order, so operands are already merged when their users
//! are looked up, and the node kept is the first one in that order (with its location); the
//! others' uses move to it and they are removed. Inputs are never merged (each has its own
//! index). `rand` nodes with equal operands are merged: the generator is counter-based, so
//! equal `(seed, offset, type)` draw equal values.
//!
//! Operands are not reordered for commutative ops: `a + b` and `b + a` may differ in which NaN
//! payload they return, so merging them would not be exact.

use crate::graph::{Graph, NodeId};
use crate::ops::Op;
use rustc_hash::FxHashMap as HashMap;
use smallvec::SmallVec;

/// The `cse` pass: merges nodes with equal ops and operands, keeping the first.
pub struct Cse;

impl super::Pass for Cse {
    fn name(&self) -> &'static str {
        "cse"
    }

    fn run(&self, g: &mut Graph) -> bool {
        let Some(order) = g.topo_order() else {
            return false;
        };
        // A lookup table only: the kept node is decided by the visiting order, never by the
        // map's iteration order.
        let mut seen: HashMap<(Op, SmallVec<[NodeId; 3]>), NodeId> = HashMap::default();
        // Duplicates are removed together at the end, in the order they were found, in time
        // linear in the graph (see `Graph::remove_unused`).
        let mut duplicates = Vec::new();
        for n in order {
            if let Op::Input { .. } = g.op(n) {
                continue;
            }
            let key = (g.op(n).clone(), g.args(n));
            match seen.get(&key) {
                Some(&first) => {
                    g.replace_all_uses(n, first);
                    duplicates.push(n);
                }
                None => {
                    seen.insert(key, n);
                }
            }
        }
        g.remove_unused(&duplicates);
        !duplicates.is_empty()
    }
}
