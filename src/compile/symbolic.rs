//! One program per symbolic signature: the graphs of a structure that are instances of its
//! symbolic signature ([`crate::runtime::dynamic`]) share the program lowered once from the
//! signature ([`tenjit_ir::kernel::lower::lower_symbolic`]), instantiated at each graph's
//! sizes. Building it runs the passes on the symbolic graph and the symbolic lowering (a
//! compilation); each later instance runs neither (an instantiation: sizes evaluated, unit axes
//! squeezed, row groups formed). A signature that has no symbolic program (a hint below 2, a
//! pass that takes the sizes further) is remembered with the reason, and its graphs are
//! lowered for their sizes.
//!
//! A pass may narrow the range of the symbolic graph it runs on, a range guard (`split-reduce`
//! cuts a long axis into blocks only from the size where that pays, `d0 >= 262144`): the
//! program then holds for that range alone, and the first graph of the signature outside it
//! builds the program of the rest of the range (with its hints at that graph's sizes), so a
//! signature has a few programs, each for a range of its sizes, and the compile report of each
//! says its guard ([`crate::ProgramOrigin::SymbolicRange`]).
//! `TENJIT_SYMBOLIC_PROGRAMS=0` turns symbolic programs off (a baseline for benchmarks).

use super::{StageTimes, Stages};
use crate::device::Device;
use crate::runtime::dynamic::Signature;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tenjit_ir::kernel::symbolic::{instantiate, SymProgram};
use tenjit_ir::kernel::Program;
use tenjit_ir::passes::split_reduce::SplitReduce;
use tenjit_ir::passes::Pass;
use tenjit_ir::sym::{Bindings, Symbol, Symbols};

/// The symbolic program of a signature for the sizes of one range of its symbols (the
/// signature's own, or a narrower one), or why it has none.
struct Piece {
    /// The ranges of the symbols it holds for.
    symbols: Symbols,
    /// The program, or why there is none.
    program: Result<Arc<SymProgram>, String>,
    /// The range guard that makes it hold for fewer sizes than the signature, with why, as the
    /// compile report says it (`d0 >= 262144 (...)`); `None` for the signature's whole range.
    guard: Option<String>,
    /// The pass that narrowed its range, if one did.
    narrowed_by: Option<&'static str>,
}

/// The pieces of each signature (by device and the signature's fingerprint), the ranges of
/// their symbols disjoint.
type Table = HashMap<(Device, u128), Vec<Arc<Piece>>>;

static PROGRAMS: Mutex<Option<Table>> = Mutex::new(None);

/// A program for one graph, from its signature's symbolic program.
pub(super) struct Instance {
    /// The concrete program at the graph's sizes.
    pub program: Program,
    /// Whether the symbolic program was built for this graph (a compilation), rather than
    /// found (an instantiation).
    pub built: bool,
    /// When built for fewer sizes than the signature's: the range guard, with why.
    pub guard: Option<String>,
    /// The stages run: passes and lower when built, then instantiate.
    pub times: StageTimes,
    /// The stages' text, when recorded and built.
    pub stages: Stages,
}

/// The program of the graph that `sig` binds, from the symbolic program of its signature
/// for the range of sizes the graph's are in (lowered now if new), or why it has none.
///
/// A signature has one program for all its sizes, unless a pass narrows the range of the
/// symbolic graph it runs on (`split-reduce` cuts a long axis into blocks only for sizes from
/// where that pays): sizes outside that range are compiled apart, into a program of their own
/// range (the signature's less the ranges of its programs so far), once.
pub(super) fn instance(
    device: Device,
    graph: &tenjit_ir::Graph,
    sig: &Signature,
    record: bool,
) -> Result<Instance, String> {
    if !enabled() {
        return Err("TENJIT_SYMBOLIC_PROGRAMS=0".into());
    }
    let key = (device, sig.graph.fingerprint());
    let pieces = PROGRAMS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert_with(HashMap::new)
        .get(&key)
        .cloned()
        .unwrap_or_default();
    let mut times = StageTimes::new();
    let mut stages = Stages::default();
    let found = pieces.iter().find(|p| p.symbols.check_bindings(&sig.values).is_ok()).cloned();
    let built = found.is_none();
    let piece = match found {
        Some(found) => found,
        None => {
            let piece = Arc::new(build(graph, sig, &pieces, record, &mut times, &mut stages));
            let mut guard = PROGRAMS.lock().unwrap_or_else(|p| p.into_inner());
            let table = guard.get_or_insert_with(HashMap::new);
            if table.len() >= crate::runtime::cache::cache_capacity() && !table.contains_key(&key) {
                table.clear();
            }
            table.entry(key).or_default().push(piece.clone());
            piece
        }
    };
    if piece.symbols.check_bindings(&sig.values).is_err() {
        return Err("its symbolic program was built for a range without these sizes".into());
    }
    let sym = piece.program.clone()?;
    let t = Instant::now();
    let program = instantiate(&sym, &sig.values)
        .map_err(|e| format!("its symbolic program does not instantiate: {e}"))?;
    times.push(("instantiate", t.elapsed()));
    if record {
        stages.kernels = tenjit_ir::kernel::print::kernel_list(&program);
        stages.program = program.to_string();
    }
    let guard = if built { piece.guard.clone() } else { None };
    Ok(Instance { program, built, guard, times, stages })
}

/// Whether symbolic programs are used: unless `TENJIT_SYMBOLIC_PROGRAMS=0` (every graph is then
/// lowered for its sizes, as a baseline to compare with).
fn enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("TENJIT_SYMBOLIC_PROGRAMS").map_or(true, |v| v != "0"))
}

/// The piece of `sig`'s signature for the sizes of `sig.values`, which no piece of `others`
/// holds for: the signature, with its hints at those sizes and its range narrowed away from
/// theirs, through the passes and the symbolic lowering.
fn build(
    concrete: &tenjit_ir::Graph,
    sig: &Signature,
    others: &[Arc<Piece>],
    record: bool,
    times: &mut StageTimes,
    stages: &mut Stages,
) -> Piece {
    let values = &sig.values;
    let restricted = restrict(&sig.graph, values, others);
    let g = match restricted {
        Ok(g) => g,
        Err(why) => {
            return Piece { symbols: point(values), program: Err(why), guard: None, narrowed_by: None }
        }
    };
    let range = g.symbols().clone();
    let (lowered, narrowed_by) = lower_symbolic(concrete, g, record, times, stages);
    let (symbols, program) = match lowered {
        Ok((symbols, sym)) => (symbols, Ok(Arc::new(sym))),
        Err(why) => (range.clone(), Err(why)),
    };
    let guard = guard_text(sig.graph.symbols(), &range, &symbols, narrowed_by, others);
    Piece { symbols, program, guard, narrowed_by }
}

/// `g` with its hints at `values` (the sizes being compiled, which the passes then decide at)
/// and its range narrowed to exclude the ranges of `others` (none of which holds `values`).
fn restrict(
    g: &tenjit_ir::Graph,
    values: &Bindings,
    others: &[Arc<Piece>],
) -> Result<tenjit_ir::Graph, String> {
    let mut g = if g.hints() == values {
        g.clone()
    } else {
        g.with_hints(values).map_err(|e| format!("its signature does not bind these sizes: {e}"))?
    };
    for piece in others {
        // A symbol whose value is outside this piece's range: the new range stays on that side.
        let outside = piece.symbols.iter().find_map(|s| {
            let v = *values.get(&s.name)?;
            (!s.contains(v)).then(|| (s.clone(), v))
        });
        let Some((Symbol { name, lo, hi }, v)) = outside else { continue };
        let narrowed = match hi {
            Some(hi) if v > hi => g.narrow_symbol_below(&name, hi + 1),
            _ => g.narrow_symbol(&name, lo.saturating_sub(1)),
        };
        narrowed.map_err(|e| format!("its range does not narrow to these sizes: {e}"))?;
    }
    Ok(g)
}

/// The ranges of one binding alone.
fn point(values: &Bindings) -> Symbols {
    let mut symbols = Symbols::new();
    for (name, &v) in values {
        if let Ok(symbol) = Symbol::new(name, v, Some(v)) {
            let _ = symbols.insert(symbol);
        }
    }
    symbols
}

/// The range guard of a piece of ranges `piece` of a signature of ranges `signature`, with
/// why, as the compile report says it: `d0 >= 262144 (pass split-reduce narrowed ...)` where
/// the pass `narrowed_by` raised a lower end, `d0 <= 262143 (the signature's other sizes have
/// programs of their own: d0 >= 262144, narrowed by pass split-reduce ...)` where pieces
/// `others` came first. `None` for the
/// signature's first piece unless a lower end was raised: one that a pass only capped from
/// above (sizes no graph met yet, where it would decide otherwise) is the signature's program,
/// and the report of a size above says the cap.
fn guard_text(
    signature: &Symbols,
    before: &Symbols,
    piece: &Symbols,
    narrowed_by: Option<&'static str>,
    others: &[Arc<Piece>],
) -> Option<String> {
    let raised = piece.iter().any(|s| before.get(&s.name).is_some_and(|b| s.lo > b.lo));
    if others.is_empty() && !raised {
        return None;
    }
    let conditions = conditions(signature, piece);
    if conditions.is_empty() {
        return None;
    }
    let why = match narrowed_by {
        Some(pass) if raised => format!("pass {pass} narrowed the range to sizes where its decisions hold"),
        _ => {
            let ranges: Vec<String> = others
                .iter()
                .map(|p| {
                    let range = conditions_of(signature, &p.symbols);
                    match p.narrowed_by {
                        Some(pass) => format!("{range}, narrowed by pass {pass}"),
                        None => range,
                    }
                })
                .collect();
            format!("the signature's other sizes have programs of their own: {}", ranges.join("; "))
        }
    };
    Some(format!("{} ({why}; other sizes compile apart)", conditions.join(", ")))
}

/// The conditions that the ranges `piece` add to the ranges `signature`: `d0 >= 4096`.
fn conditions(signature: &Symbols, piece: &Symbols) -> Vec<String> {
    let mut conditions = Vec::new();
    for s in piece.iter() {
        let Some(whole) = signature.get(&s.name) else { continue };
        let (above, below) = (s.lo > whole.lo, s.hi.is_some() && s.hi != whole.hi);
        match (above, below, s.hi) {
            (true, true, Some(hi)) => conditions.push(format!("{} <= {} <= {hi}", s.lo, s.name)),
            (true, _, _) => conditions.push(format!("{} >= {}", s.name, s.lo)),
            (false, true, Some(hi)) => conditions.push(format!("{} <= {hi}", s.name)),
            _ => {}
        }
    }
    conditions
}

/// [`conditions`], joined; `every size` when there are none.
fn conditions_of(signature: &Symbols, piece: &Symbols) -> String {
    let conditions = conditions(signature, piece);
    if conditions.is_empty() {
        return "every size".into();
    }
    conditions.join(", ")
}

/// The passes and the symbolic lowering of the signature `g` (its range maybe narrowed), of
/// which `concrete` is an instance: the ranges of the symbols after the passes (a pass may
/// narrow them, as `split-reduce` does) and the program, or why there is none; with the pass
/// that narrowed the ranges, if one did. The passes run on both graphs: where they take the
/// concrete graph further than the symbolic one (a pass that decides on sizes, as
/// `sink-slices` does on a slice of a symbolic start), the symbolic program would be the slower
/// one, so there is none and the reason names the pass.
fn lower_symbolic(
    concrete: &tenjit_ir::Graph,
    mut g: tenjit_ir::Graph,
    record: bool,
    times: &mut StageTimes,
    stages: &mut Stages,
) -> (Result<(Symbols, SymProgram), String>, Option<&'static str>) {
    let t = Instant::now();
    if record {
        stages.traced = g.to_string();
    }
    let passes = tenjit_ir::passes::pipeline();
    let refs: Vec<&dyn tenjit_ir::passes::Pass> = passes.iter().map(|p| p.as_ref()).collect();
    let split = SplitReduce::default();
    let (mut symbolic_after, mut symbolic_splits) = (Vec::new(), Splits::default());
    let (mut symbols, mut narrowed_by) = (g.symbols().clone(), None);
    let ran = tenjit_ir::passes::run_passes(&mut g, &refs, &mut |name, g| {
        symbolic_after.push((name, g.structure_fingerprint()));
        symbolic_splits.observe(&split, name, g);
        if g.symbols() != &symbols {
            narrowed_by = narrowed_by.or(Some(name));
            symbols = g.symbols().clone();
        }
        if record {
            stages.passes.push((name, g.to_string()));
        }
    });
    if let Err(e) = ran {
        return (Err(format!("the passes fail on its symbolic graph: {e}")), narrowed_by);
    }
    let mut concrete = concrete.clone();
    let (mut concrete_after, mut concrete_splits) = (Vec::new(), Splits::default());
    let ran = tenjit_ir::passes::run_passes(&mut concrete, &refs, &mut |name, g| {
        concrete_after.push((name, g.structure_fingerprint()));
        concrete_splits.observe(&split, name, g);
    });
    if let Err(e) = ran {
        return (Err(format!("the passes fail on the graph: {e}")), narrowed_by);
    }
    times.push(("passes", t.elapsed()));
    for ((name, a), (_, b)) in concrete_after.iter().zip(&symbolic_after) {
        // `split-reduce` splits a symbolic graph in its own form (an axis cut into blocks and a
        // remainder), so from there on the graphs differ by design: the symbolic one must split
        // every reduction the concrete one splits.
        let further = if *name == split.name() {
            concrete_splits.before.iter().any(|p| !symbolic_splits.before.contains(p))
        } else {
            a != b
        };
        if further {
            let why = format!("pass {name} takes these sizes further than the symbolic graph");
            return (Err(why), narrowed_by);
        }
        if *name == split.name() {
            break;
        }
    }
    let t = Instant::now();
    let sym = tenjit_ir::kernel::lower::lower_symbolic(&g);
    times.push(("lower", t.elapsed()));
    (sym.map(|sym| (g.symbols().clone(), sym)), narrowed_by)
}

/// The reductions `split-reduce` splits ([`SplitReduce::splits`]), read off the graph the
/// pipeline hands it: the graph after the passes before it.
#[derive(Default)]
struct Splits {
    before: Vec<usize>,
    seen: bool,
}

impl Splits {
    /// Records the splits of `g`, the graph after pass `name`, until `split-reduce` has run.
    fn observe(&mut self, split: &SplitReduce, name: &str, g: &tenjit_ir::Graph) {
        if self.seen || name == split.name() {
            self.seen = true;
            return;
        }
        self.before = split.splits(g);
    }
}
