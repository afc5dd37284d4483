//! Graphviz export: [`to_dot`] draws a graph as a DOT `digraph`.
//!
//! Values carry the names the text form gives them (inputs by name, the rest `%0, %1, ...`), so
//! a drawing and a printout of one graph can be read side by side. Only live values are drawn.
//! Inputs are blue, outputs are yellow `return i` nodes, and an edge is labelled with its operand
//! position when its op has more than one operand. The output is deterministic.

use crate::graph::{Graph, NodeId};
use crate::text::{op_text, Listing};
use std::collections::BTreeMap;
use std::fmt::Write;

/// `s` as a DOT string literal: quoted, with `"` and `\` escaped and line breaks as `\n`.
fn quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Draws `g` as a Graphviz `digraph`: one node per live value, labelled with its name, op,
/// attributes and type; one edge per operand; one `return i` node per output.
pub fn to_dot(g: &Graph) -> String {
    let l = Listing::new(g);
    let mut ids: BTreeMap<NodeId, String> = BTreeMap::new();
    let mut out = String::new();
    let _ = writeln!(out, "digraph {} {{", quoted(g.name()));
    out.push_str("  node [shape=box, style=rounded, fontname=\"monospace\"];\n");
    out.push_str("  edge [fontname=\"monospace\", fontsize=10];\n");
    for (i, &n) in l.inputs.iter().enumerate() {
        let id = format!("in{i}");
        let label = format!("{}\n{}", l.name(n), g.ty(n));
        let _ = writeln!(
            out,
            "  {id} [label={}, shape=invhouse, style=filled, fillcolor=\"#dbeafe\"];",
            quoted(&label)
        );
        ids.insert(n, id);
    }
    for (k, &n) in l.body.iter().enumerate() {
        let id = format!("n{k}");
        let op = g.op(n);
        let text = op_text(op);
        let mut label = format!("{} = {}", l.name(n), op.name());
        if let Some(lit) = &text.literal {
            let _ = write!(label, " {lit}");
        }
        if !text.attrs.is_empty() {
            let attrs: Vec<String> = text.attrs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let _ = write!(label, "\n{}", attrs.join(", "));
        }
        let _ = write!(label, "\n{}", g.ty(n));
        let tooltip = match g.loc(n) {
            Some(loc) => format!(", tooltip={}", quoted(&format!("at {}", crate::text::clean_loc(loc)))),
            None => String::new(),
        };
        let _ = writeln!(out, "  {id} [label={}{tooltip}];", quoted(&label));
        ids.insert(n, id);
    }
    for &n in &l.body {
        let args = g.args(n);
        for (pos, a) in args.iter().enumerate() {
            let (Some(from), Some(to)) = (ids.get(a), ids.get(&n)) else { continue };
            if args.len() > 1 {
                let _ = writeln!(out, "  {from} -> {to} [label=\"{pos}\"];");
            } else {
                let _ = writeln!(out, "  {from} -> {to};");
            }
        }
    }
    for (i, o) in g.outputs().iter().enumerate() {
        let _ = writeln!(
            out,
            "  out{i} [label=\"return {i}\", shape=house, style=filled, fillcolor=\"#fde68a\"];"
        );
        match ids.get(o) {
            Some(from) => {
                let _ = writeln!(out, "  {from} -> out{i};");
            }
            None => {
                let _ = writeln!(out, "  missing{i} [label={}, color=red];", quoted(&l.name(*o)));
                let _ = writeln!(out, "  missing{i} -> out{i};");
            }
        }
    }
    out.push_str("}\n");
    out
}
