//! Automatic dynamic shapes: which compilations are the same structure at new sizes.
//!
//! Every graph compiled is remembered by its structure ([`Graph::structure_fingerprint`]:
//! ops, operands, dtypes and ranks, not sizes) and device. When a graph of a remembered
//! structure misses the cache, its sizes changed: the first time, [`generalize`] writes the
//! symbolic graph both are instances of (the structure's *symbolic signature*: which input dims
//! vary, and every size as an expression of them); afterwards each new graph of that structure
//! is checked against the signature ([`Graph::instance_bindings`]), and one that is no instance
//! (a guard it breaks, a size 0 or 1, a size that follows no expression) is said so and
//! generalized again. The compile report carries the outcome ([`Dynamic`]).
//!
//! The signature is what the compiler lowers once for every size
//! ([`tenjit_ir::kernel::lower::lower_symbolic`]); each graph of the structure that is an
//! instance then only instantiates that program at its sizes. Where a pass narrows the range of
//! the symbolic graph (`split-reduce` cuts a long axis into blocks only from the size where that
//! pays), the signature gets one program per range instead, the first graph of each range
//! lowering it ([`crate::ProgramOrigin::SymbolicRange`] says the range's guard). The table holds one entry per
//! structure and is bounded like the executable cache ([`super::cache::cache_capacity`]).

use crate::device::Device;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use tenjit_ir::graph::generalize;
use tenjit_ir::Graph;

/// What the dynamic-shape table says of a graph whose structure was compiled before at other
/// sizes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dynamic {
    /// The sizes that changed became symbols: the structure's symbolic signature is new.
    BecameSymbolic {
        /// Each symbol introduced, `dim 0 of input 0 became symbolic d0 (sizes 8, then 5)`.
        introduced: Vec<String>,
        /// The signature's first line, `graph @f(%x: f32[d0,4]) where d0:2.. = 5`.
        signature: String,
        /// Why the previous signature did not fit, when this one replaces it.
        replaces: Option<String>,
    },
    /// An instance of the structure's symbolic signature.
    Instance {
        /// The sizes it binds, `d0 = 13`.
        bindings: String,
    },
    /// The first graph of its structure, with input dims marked dynamic
    /// ([`crate::Tensor::mark_dynamic`]): they became symbolic at once.
    Marked {
        /// Each symbol introduced, `dim 1 of input 0 (marked dynamic) became symbolic d0
        /// (size 12)`.
        introduced: Vec<String>,
        /// The signature's first line.
        signature: String,
    },
    /// The first graph of its structure, with input dims marked dynamic that could not become
    /// symbolic: why (marks of one name at two sizes, a size outside its mark's range, an op
    /// that holds for no symbolic size).
    MarksRefused {
        /// What went wrong, and where.
        why: String,
    },
    /// Not an instance of the signature, and no symbolic graph covers both: why.
    NotSymbolic {
        /// What differs.
        why: String,
    },
}

impl fmt::Display for Dynamic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dynamic::Marked { introduced, signature } => {
                return write!(
                    f,
                    "first graph of its structure: {}; symbolic signature `{signature}`",
                    introduced.join(", ")
                )
            }
            Dynamic::MarksRefused { why } => {
                return write!(
                    f,
                    "first graph of its structure: its dims marked dynamic stay concrete: {why}"
                )
            }
            Dynamic::BecameSymbolic { .. } | Dynamic::Instance { .. } | Dynamic::NotSymbolic { .. } => {}
        }
        f.write_str("same structure, new sizes: ")?;
        match self {
            Dynamic::BecameSymbolic { introduced, signature, replaces } => {
                if let Some(why) = replaces {
                    write!(f, "the previous symbolic signature did not fit ({why}); ")?;
                }
                write!(f, "{}; symbolic signature `{signature}`", introduced.join(", "))
            }
            Dynamic::Instance { bindings } => {
                write!(f, "an instance of its symbolic signature at {bindings}")
            }
            Dynamic::NotSymbolic { why } => write!(f, "not symbolic: {why}"),
            Dynamic::Marked { .. } | Dynamic::MarksRefused { .. } => Ok(()),
        }
    }
}

/// A graph's symbolic signature and the sizes that bind it to the graph.
#[derive(Clone, Debug)]
pub(crate) struct Signature {
    /// The symbolic graph of the structure.
    pub graph: Arc<Graph>,
    /// The sizes of the graph observed.
    pub values: tenjit_ir::sym::Bindings,
}

struct Entry {
    /// The last graph of the structure, or, while it was an instance of `symbolic`, the sizes
    /// that bind `symbolic` to it (cheaper to keep than a copy of the graph).
    last: Last,
    symbolic: Option<Arc<Graph>>,
    used: u64,
}

enum Last {
    Graph(Graph),
    Instance(tenjit_ir::sym::Bindings),
}

#[derive(Default)]
struct Table {
    entries: HashMap<(Device, u128), Entry>,
    tick: u64,
}

static TABLE: Mutex<Option<Table>> = Mutex::new(None);

/// Records `graph`, about to be compiled for `device`, and says how it relates to the graphs
/// of its structure compiled before (`None`: the structure is new), with its symbolic signature
/// when it is an instance of one.
///
/// A new structure whose input dims `marks` are marked dynamic is made symbolic at
/// once ([`tenjit_ir::graph::generalize_marked`]); where that fails, it is a new structure as
/// any other.
///
/// A new structure that comes with its symbolic graph (`traced`: a front end traced it over
/// size symbols, [`crate::jit`]) takes that graph as its signature, where it binds to `graph`.
pub(crate) fn observe(
    device: Device,
    graph: &Graph,
    marks: &[tenjit_ir::graph::Mark],
    traced: Option<&Graph>,
) -> Option<(Dynamic, Option<Signature>)> {
    let key = (device, graph.structure_fingerprint());
    let mut guard = TABLE.lock().unwrap_or_else(|p| p.into_inner());
    let table = guard.get_or_insert_with(Table::default);
    table.tick += 1;
    let used = table.tick;
    let traced =
        traced.and_then(|sym| sym.instance_bindings_of_structure(graph).ok().map(|values| (sym, values)));
    if let (None, Some((sym, values))) = (table.entries.get(&key), traced) {
        let sym = Arc::new(sym.clone());
        table
            .entries
            .insert(key, Entry { last: Last::Graph(graph.clone()), symbolic: Some(sym.clone()), used });
        evict(table);
        let introduced = sym.symbols().iter().map(|s| format!("{s} traced as a symbol")).collect();
        let dynamic = Dynamic::Marked { introduced, signature: header(&sym) };
        return Some((dynamic, Some(Signature { graph: sym, values })));
    }
    let Some(entry) = table.entries.get_mut(&key) else {
        let marked = (!marks.is_empty()).then(|| tenjit_ir::graph::generalize_marked(graph, marks));
        let symbolic = marked.as_ref().and_then(|m| m.as_ref().ok()).map(|gen| Arc::new(gen.graph.clone()));
        table
            .entries
            .insert(key, Entry { last: Last::Graph(graph.clone()), symbolic: symbolic.clone(), used });
        evict(table);
        let gen = match marked? {
            Ok(gen) => gen,
            Err(why) => return Some((Dynamic::MarksRefused { why: why.to_string() }, None)),
        };
        let sym = symbolic?;
        let signature = Signature { values: sym.hints().clone(), graph: sym };
        let dynamic = Dynamic::Marked {
            introduced: gen.introduced.iter().map(|i| i.to_string()).collect(),
            signature: header(&gen.graph),
        };
        return Some((dynamic, Some(signature)));
    };
    entry.used = used;
    let mut replaces = None;
    if let Some(sym) = &entry.symbolic {
        match sym.instance_bindings_of_structure(graph) {
            Ok(values) => {
                let bindings: Vec<String> = values.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                let signature = Signature { graph: sym.clone(), values: values.clone() };
                entry.last = Last::Instance(values);
                return Some((Dynamic::Instance { bindings: bindings.join(", ") }, Some(signature)));
            }
            Err(why) => replaces = Some(why.to_string()),
        }
    }
    let last = match (&entry.last, &entry.symbolic) {
        (Last::Instance(values), Some(sym)) => sym.bind(values).ok(),
        (Last::Graph(g), _) => Some(g.clone()),
        (Last::Instance(_), None) => None,
    };
    let generalized = match &last {
        Some(last) => generalize(last, graph, &|_, _| None),
        None => Err(tenjit_ir::graph::NotGeneral { reason: "the previous graph is gone".into() }),
    };
    let mut found = None;
    let outcome = match generalized {
        Ok(gen) => {
            let signature = header(&gen.graph);
            let gen_graph = Arc::new(gen.graph);
            // `generalize` checked that the signature binds back to this graph.
            if let Ok(values) = gen_graph.instance_bindings_of_structure(graph) {
                found = Some(Signature { graph: gen_graph.clone(), values });
            }
            entry.symbolic = Some(gen_graph);
            Dynamic::BecameSymbolic {
                introduced: gen.introduced.iter().map(|i| i.to_string()).collect(),
                signature,
                replaces,
            }
        }
        Err(why) => Dynamic::NotSymbolic {
            why: match replaces {
                Some(first) => format!("not an instance of its symbolic signature ({first}); {why}"),
                None => why.to_string(),
            },
        },
    };
    entry.last = Last::Graph(graph.clone());
    Some((outcome, found))
}

/// The first line of `g`'s text, without its brace (loop bodies print first).
fn header(g: &Graph) -> String {
    let text = tenjit_ir::text::print(g);
    text.lines().rfind(|l| l.starts_with("graph @")).unwrap_or_default().trim_end_matches(" {").to_string()
}

/// Drops the least recently used structures beyond the executable cache's capacity.
fn evict(table: &mut Table) {
    let capacity = super::cache::cache_capacity();
    if table.entries.len() <= capacity {
        return;
    }
    let mut ages: Vec<(u64, (Device, u128))> = table.entries.iter().map(|(k, e)| (e.used, *k)).collect();
    ages.sort_unstable_by_key(|&(used, _)| used);
    for (_, k) in &ages[..ages.len() - capacity] {
        table.entries.remove(k);
    }
}
