//! The verifier: checks that a graph is well formed and collects every error it finds.
//!
//! A graph verifies when it is acyclic, every node's type is what its op's type rule infers
//! from its operands (for a symbolic graph: the expressions too, see [`Graph::infer`]), every
//! input node is the one its index names, and every output exists.

use crate::graph::{Graph, NodeId};
use crate::ops::Op;
use std::fmt;

/// One problem found by the verifier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyError {
    /// The node at fault, if the problem belongs to one.
    pub node: Option<NodeId>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.node {
            Some(n) => write!(f, "{n}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Every error the verifier found, in node order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyErrors(pub Vec<VerifyError>);

impl fmt::Display for VerifyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "the graph does not verify ({} error(s)):", self.0.len())?;
        for e in &self.0 {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for VerifyErrors {}

/// Verifies `g`, returning every error found.
pub fn verify(g: &Graph) -> Result<(), VerifyErrors> {
    let mut errors = Vec::new();
    let mut push = |node: Option<NodeId>, message: String| errors.push(VerifyError { node, message });
    if g.topo_order().is_none() {
        push(None, "the graph has a cycle".into());
    }
    for (i, (name, id)) in g.inputs().iter().enumerate() {
        if !g.contains(*id) {
            push(None, format!("input {i} (%{name}) does not exist"));
        } else if !matches!(g.op(*id), Op::Input { index, .. } if *index == i) {
            push(Some(*id), format!("input {i} (%{name}) is not an input node with index {i}"));
        }
    }
    for n in g.nodes() {
        let op = g.op(n);
        if let Op::Input { index, .. } = op {
            if g.inputs().get(*index).map(|(_, id)| *id) != Some(n) {
                push(Some(n), format!("input node with index {index} is not the graph's input {index}"));
            }
        }
        let args = g.args(n);
        match g.infer(op, &args) {
            Ok(ty) if ty == *g.ty(n) => {}
            Ok(ty) => push(Some(n), format!("{} is typed {} but its operands give {ty}", op.name(), g.ty(n))),
            Err(e) => push(Some(n), e.to_string()),
        }
    }
    for (i, o) in g.outputs().iter().enumerate() {
        if !g.contains(*o) {
            push(None, format!("output {i} ({o}) does not exist"));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(VerifyErrors(errors))
    }
}
