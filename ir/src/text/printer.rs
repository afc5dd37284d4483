//! The printer: a [`Graph`] as text, deterministically.
//!
//! Values are named in one place, [`Listing`], which the Graphviz export shares: inputs by their
//! names, every other live value `%0, %1, ...` in [`Graph::live_order`] order.

use crate::graph::{Graph, NodeId};
use crate::ops::Op;
use std::collections::BTreeMap;
use std::fmt::Write;

/// The values a printout lists and the name of each.
pub(crate) struct Listing {
    /// Graph inputs that exist, in signature order.
    pub(crate) inputs: Vec<NodeId>,
    /// The values defined in the body, in print order (live values, topologically).
    pub(crate) body: Vec<NodeId>,
    /// Whether the graph has a cycle (the body is then every node in index order).
    pub(crate) cyclic: bool,
    names: BTreeMap<NodeId, String>,
    /// The printed name of each loop body, by its key (empty: bodies print under their own
    /// graph's name).
    bodies: Vec<(u128, String)>,
}

impl Listing {
    /// Names the values of `g`.
    pub(crate) fn new(g: &Graph) -> Listing {
        let mut names = BTreeMap::new();
        let mut inputs = Vec::new();
        for (name, id) in g.inputs() {
            if g.contains(*id) && !names.contains_key(id) {
                names.insert(*id, format!("%{}", quote_name(name)));
                inputs.push(*id);
            }
        }
        let (order, cyclic) = match g.live_order() {
            Some(order) => (order, false),
            None => (g.nodes(), true),
        };
        let body: Vec<NodeId> = order.into_iter().filter(|n| !names.contains_key(n)).collect();
        for (k, n) in body.iter().enumerate() {
            names.insert(*n, format!("%{k}"));
        }
        Listing { inputs, body, cyclic, names, bodies: Vec::new() }
    }

    /// The printed name of `n` (`%x`, `%3`), or `%?INDEX` for a node the listing lacks.
    pub(crate) fn name(&self, n: NodeId) -> String {
        self.names.get(&n).cloned().unwrap_or_else(|| format!("%?{}", n.index()))
    }
}

/// Whether `name` prints without quotes: `[A-Za-z_][A-Za-z0-9_.]*`.
pub(crate) fn is_bare(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

/// `name` as the text form writes it after `%` or `@`: bare when it can be, else quoted with
/// `\\`, `\"`, `\n`, `\t`, `\r` and `\u{HEX}` escapes.
pub(crate) fn quote_name(name: &str) -> String {
    if is_bare(name) {
        return name.to_string();
    }
    let mut s = String::from("\"");
    for c in name.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            '\t' => s.push_str("\\t"),
            '\r' => s.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(s, "\\u{{{:x}}}", c as u32);
            }
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

/// How an op's attributes print: an optional literal (a constant's value) and `key=value`
/// pairs, in the order they print.
pub(crate) struct OpText {
    /// The positional literal, for `const`.
    pub(crate) literal: Option<String>,
    /// The attributes.
    pub(crate) attrs: Vec<(&'static str, String)>,
}

fn list<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    let items: Vec<String> = items.into_iter().map(|i| i.to_string()).collect();
    format!("[{}]", items.join(","))
}

/// The literal and attributes of `op` as text. Attributes that only restate the result type
/// (a constant's, iota's and rand's type, cast's dtype) are left to the type annotation.
pub(crate) fn op_text(op: &Op) -> OpText {
    let none = OpText { literal: None, attrs: Vec::new() };
    let attrs = |attrs: Vec<(&'static str, String)>| OpText { literal: None, attrs };
    match op {
        Op::Input { index, .. } => attrs(vec![("index", index.to_string())]),
        Op::Const { value, ty } => OpText { literal: Some(value.text(ty.dtype)), attrs: Vec::new() },
        Op::Iota { axis, .. } => attrs(vec![("axis", axis.to_string())]),
        Op::Size { expr, .. } => attrs(vec![("expr", format!("[{expr}]"))]),
        Op::Rand { .. } => none,
        Op::Unary(_) | Op::Binary(_) | Op::Where | Op::Cast { .. } | Op::Matmul => none,
        Op::Reduce { axes, .. } => attrs(vec![("axes", list(axes))]),
        Op::ArgReduce { axis, .. } => attrs(vec![("axis", axis.to_string())]),
        Op::Reshape { shape } => attrs(vec![("shape", list(shape.sym_dims()))]),
        Op::Permute { perm } => attrs(vec![("perm", list(perm))]),
        Op::Expand { shape } => attrs(vec![("shape", list(shape.sym_dims()))]),
        Op::Slice { start, step, size, bounds: None } => {
            attrs(vec![("start", list(start)), ("step", list(step)), ("size", list(size))])
        }
        Op::Slice { step, bounds: Some(b), .. } => {
            attrs(vec![("start", list(&b.start)), ("step", list(step)), ("size", list(&b.size))])
        }
        Op::Pad { lo, hi } => attrs(vec![("lo", list(lo)), ("hi", list(hi))]),
        Op::Concat { axis } | Op::Gather { axis } | Op::ScatterAdd { axis } => {
            attrs(vec![("axis", axis.to_string())])
        }
        Op::Conv(c) => attrs(c.attrs()),
        Op::Pool(p) => attrs(p.attrs()),
        Op::Loop(l) => attrs(vec![
            ("body", format!("@{}", quote_name(l.body.graph().name()))),
            ("trips", l.trips.to_string()),
            ("result", l.result.to_string()),
        ]),
    }
}

/// A location as one line: control characters become spaces, outer whitespace goes.
pub(crate) fn clean_loc(loc: &str) -> String {
    loc.chars().map(|c| if c.is_control() { ' ' } else { c }).collect::<String>().trim().to_string()
}

/// The type of `n` as text, or `?` for a node the graph lacks.
fn ty_text(g: &Graph, n: NodeId) -> String {
    if g.contains(n) {
        g.ty(n).to_string()
    } else {
        "?".to_string()
    }
}

/// The right-hand side of `n`'s definition: `op operands, attrs : type`.
pub(crate) fn definition(g: &Graph, l: &Listing, n: NodeId) -> String {
    let op = g.op(n);
    let mut text = op_text(op);
    if let Op::Loop(lp) = op {
        if let Some((_, name)) = l.bodies.iter().find(|(key, _)| *key == lp.body.key()) {
            text.attrs[0].1 = format!("@{}", quote_name(name));
        }
    }
    let mut items: Vec<String> = g.args(n).iter().map(|&a| l.name(a)).collect();
    items.extend(text.literal);
    items.extend(text.attrs.iter().map(|(k, v)| format!("{k}={v}")));
    let mut s = op.name().to_string();
    if !items.is_empty() {
        s.push(' ');
        s.push_str(&items.join(", "));
    }
    let _ = write!(s, " : {}", g.ty(n));
    s
}

/// Prints `g`; see [`crate::text::print`]. The bodies of its loops print first, each once,
/// named `@NAME.loopK` in order of first use (a body's own loops before it), so the text is one
/// self-contained unit whose last graph is `g`.
pub(crate) fn print(g: &Graph) -> String {
    let mut bodies: Vec<(u128, String, &Graph)> = Vec::new();
    collect_bodies(g, g.name(), &mut bodies);
    let names: Vec<(u128, String)> = bodies.iter().map(|(k, n, _)| (*k, n.clone())).collect();
    let mut out = String::new();
    for (_, name, body) in &bodies {
        print_one(body, name, &names, &mut out);
        out.push('\n');
    }
    print_one(g, g.name(), &names, &mut out);
    out
}

/// Adds the bodies of the loops of `g` not yet in `bodies`, each after the bodies it uses.
fn collect_bodies<'g>(g: &'g Graph, root: &str, bodies: &mut Vec<(u128, String, &'g Graph)>) {
    let order = g.live_order().unwrap_or_else(|| g.nodes());
    for n in order {
        if let Op::Loop(l) = g.op(n) {
            if bodies.iter().any(|(k, _, _)| *k == l.body.key()) {
                continue;
            }
            collect_bodies(l.body.graph(), root, bodies);
            let name = format!("{root}.loop{}", bodies.len());
            bodies.push((l.body.key(), name, l.body.graph()));
        }
    }
}

/// ` where B:1..=64 = 8, T:2.. = 5`: the declared symbols with their hints (empty without).
fn where_clause(g: &Graph) -> String {
    let decls: Vec<String> = g
        .symbols()
        .iter()
        .map(|s| format!("{s} = {}", g.hints().get(&s.name).copied().unwrap_or(s.lo)))
        .collect();
    if decls.is_empty() {
        String::new()
    } else {
        format!(" where {}", decls.join(", "))
    }
}

/// Prints one graph under `name`, naming loop bodies by `bodies`.
fn print_one(g: &Graph, name: &str, bodies: &[(u128, String)], out: &mut String) {
    let mut l = Listing::new(g);
    l.bodies = bodies.to_vec();
    let params: Vec<String> = l.inputs.iter().map(|&i| format!("{}: {}", l.name(i), ty_text(g, i))).collect();
    let _ = writeln!(out, "graph @{}({}){} {{", quote_name(name), params.join(", "), where_clause(g));
    if l.cyclic {
        out.push_str("  ; error: the graph has a cycle; its nodes are listed in index order\n");
    }
    for guard in g.guards() {
        let _ = writeln!(out, "  ; guard {guard}");
    }
    let lines: Vec<(String, String)> = l
        .body
        .iter()
        .map(|&n| {
            let loc = g.loc(n).map(clean_loc).unwrap_or_default();
            (format!("  {} = {}", l.name(n), definition(g, &l, n)), loc)
        })
        .collect();
    // Location comments line up in one column, after the longest line that has one.
    let width = lines.iter().filter(|(_, loc)| !loc.is_empty()).map(|(s, _)| s.chars().count()).max();
    for (line, loc) in &lines {
        out.push_str(line);
        if let (Some(width), false) = (width, loc.is_empty()) {
            // Padded by hand: a format width must fit in `u16`, and lines can be longer.
            out.extend(std::iter::repeat_n(' ', width - line.chars().count()));
            let _ = write!(out, "  ; at {loc}");
        }
        out.push('\n');
    }
    out.push_str("  return");
    let outputs: Vec<String> = g.outputs().iter().map(|&o| l.name(o)).collect();
    if !outputs.is_empty() {
        out.push(' ');
        out.push_str(&outputs.join(", "));
    }
    out.push_str("\n}\n");
}
