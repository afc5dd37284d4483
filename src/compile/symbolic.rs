//! One program per symbolic signature: the graphs of a structure that are instances of its
//! symbolic signature ([`crate::runtime::dynamic`]) share the program lowered once from the
//! signature ([`tenjit_ir::kernel::lower::lower_symbolic`]), instantiated at each graph's
//! sizes. Building it runs the passes on the symbolic graph and the symbolic lowering (a
//! compilation); each later instance runs neither (an instantiation: sizes evaluated, unit axes
//! squeezed, row groups formed). A signature that has no symbolic program (a hint below 2, a
//! pass that takes the sizes further) is remembered with the reason, and its graphs are lowered for their sizes.
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

/// The symbolic program of each signature (by device and the signature's fingerprint), or why
/// it has none.
type Table = HashMap<(Device, u128), Result<Arc<SymProgram>, String>>;

static PROGRAMS: Mutex<Option<Table>> = Mutex::new(None);

/// A program for one graph, from its signature's symbolic program.
pub(super) struct Instance {
    /// The concrete program at the graph's sizes.
    pub program: Program,
    /// Whether the symbolic program was built for this graph (a compilation), rather than
    /// found (an instantiation).
    pub built: bool,
    /// The stages run: passes and lower when built, then instantiate.
    pub times: StageTimes,
    /// The stages' text, when recorded and built.
    pub stages: Stages,
}

/// The program of the graph that `sig` binds, from the symbolic program of its signature
/// (lowered now if new), or why the signature has none.
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
    let found = PROGRAMS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert_with(HashMap::new)
        .get(&key)
        .cloned();
    let mut times = StageTimes::new();
    let mut stages = Stages::default();
    let built = found.is_none();
    let sym = match found {
        Some(found) => found?,
        None => {
            let lowered = lower_symbolic(graph, &sig.graph, record, &mut times, &mut stages).map(Arc::new);
            let mut guard = PROGRAMS.lock().unwrap_or_else(|p| p.into_inner());
            let table = guard.get_or_insert_with(HashMap::new);
            if table.len() >= crate::runtime::cache::cache_capacity() {
                table.clear();
            }
            table.insert(key, lowered.clone());
            lowered?
        }
    };
    let t = Instant::now();
    let program = instantiate(&sym, &sig.values)
        .map_err(|e| format!("its symbolic program does not instantiate: {e}"))?;
    times.push(("instantiate", t.elapsed()));
    if record {
        stages.kernels = tenjit_ir::kernel::print::kernel_list(&program);
        stages.program = program.to_string();
    }
    Ok(Instance { program, built, times, stages })
}

/// Whether symbolic programs are used: unless `TENJIT_SYMBOLIC_PROGRAMS=0` (every graph is then
/// lowered for its sizes, as a baseline to compare with).
fn enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("TENJIT_SYMBOLIC_PROGRAMS").map_or(true, |v| v != "0"))
}

/// The passes and the symbolic lowering of the signature `g`, of which `concrete` is an
/// instance. The passes run on both: where they take the concrete graph further than the
/// symbolic one (a pass that decides on sizes, as `sink-slices` does on a slice of a symbolic
/// start), the symbolic program would be the slower one, so there is none and the reason names
/// the pass.
fn lower_symbolic(
    concrete: &tenjit_ir::Graph,
    g: &tenjit_ir::Graph,
    record: bool,
    times: &mut StageTimes,
    stages: &mut Stages,
) -> Result<SymProgram, String> {
    let t = Instant::now();
    let mut g = g.clone();
    if record {
        stages.traced = g.to_string();
    }
    let passes = tenjit_ir::passes::pipeline();
    let refs: Vec<&dyn tenjit_ir::passes::Pass> = passes.iter().map(|p| p.as_ref()).collect();
    let split = SplitReduce::default();
    let (mut symbolic_after, mut symbolic_splits) = (Vec::new(), Splits::default());
    tenjit_ir::passes::run_passes(&mut g, &refs, &mut |name, g| {
        symbolic_after.push((name, g.structure_fingerprint()));
        symbolic_splits.observe(&split, name, g);
        if record {
            stages.passes.push((name, g.to_string()));
        }
    })
    .map_err(|e| format!("the passes fail on its symbolic graph: {e}"))?;
    let mut concrete = concrete.clone();
    let (mut concrete_after, mut concrete_splits) = (Vec::new(), Splits::default());
    tenjit_ir::passes::run_passes(&mut concrete, &refs, &mut |name, g| {
        concrete_after.push((name, g.structure_fingerprint()));
        concrete_splits.observe(&split, name, g);
    })
    .map_err(|e| format!("the passes fail on the graph: {e}"))?;
    times.push(("passes", t.elapsed()));
    for ((name, a), (_, b)) in concrete_after.iter().zip(&symbolic_after) {
        // `split-reduce` splits a symbolic graph in its own form (an axis cut into blocks and a
        // remainder), so from there on the graphs differ by design: the symbolic one must split
        // every reduction the concrete one splits.
        if *name == split.name() {
            if concrete_splits.before.iter().any(|p| !symbolic_splits.before.contains(p)) {
                return Err(format!("pass {name} takes these sizes further than the symbolic graph"));
            }
            break;
        }
        if a != b {
            return Err(format!("pass {name} takes these sizes further than the symbolic graph"));
        }
    }
    let t = Instant::now();
    let sym = tenjit_ir::kernel::lower::lower_symbolic(&g)?;
    times.push(("lower", t.elapsed()));
    Ok(sym)
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
