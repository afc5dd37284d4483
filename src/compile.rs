//! From a traced graph to an executable: the pass pipeline (`tenjit_ir::passes::pipeline`,
//! one list for every consumer), lowering to kernels, compiling through the runtime's
//! backend for the device, and the compile report.
//!
//! Executables are cached by the runtime ([`crate::runtime::cache`]) per device and structure:
//! the lazy DAG's own fingerprint on the realize path, the graph's [`Graph::fingerprint`]
//! (ops, dtypes, shapes, attributes; never data or source locations) for `run_graph` and `jit`,
//! so a training loop compiles once. Every compilation is recorded in a [`CompileReport`] with
//! its time per stage and, for a cache miss, why it missed: the first graph, or what differs
//! from the nearest graph cached for that device. `TENJIT_DUMP=DIR` writes every stage of
//! every compilation to `DIR`.

use crate::device::Device;
use crate::error::{Error, Result};
use crate::runtime::cache::{self, Key};
use crate::runtime::{Executable, Value};
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};
use tenjit_ir::kernel::Program;
use tenjit_ir::{Buffer, Graph};

mod symbolic;

/// Where values are computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// The reference interpreter (the oracle).
    Interp,
    /// Fused kernels compiled to machine code by Cranelift (the default).
    Cpu,
    /// CUDA C compiled by NVRTC, on the first GPU (`cuda:0`): CPU tensors are copied there for
    /// each realization and their values copied back. Tensors moved to a GPU with
    /// `Tensor::to` are computed on it whatever the backend.
    Cuda,
}

impl Backend {
    /// Parses `interp`, `cpu` or `cuda`.
    pub fn parse(s: &str) -> Option<Backend> {
        match s {
            "interp" => Some(Backend::Interp),
            "cpu" => Some(Backend::Cpu),
            "cuda" => Some(Backend::Cuda),
            _ => None,
        }
    }
}

static BACKEND: RwLock<Option<Backend>> = RwLock::new(None);

/// Selects the backend for every later realization (overrides `TENJIT_BACKEND`).
pub fn set_backend(backend: Backend) {
    *BACKEND.write().unwrap_or_else(|p| p.into_inner()) = Some(backend);
}

/// The backend in use: the one set with [`set_backend`], else `TENJIT_BACKEND`
/// (`interp`, `cpu` or `cuda`), else the CPU compiler.
pub fn backend() -> Backend {
    if let Some(b) = *BACKEND.read().unwrap_or_else(|p| p.into_inner()) {
        return b;
    }
    static FROM_ENV: OnceLock<Backend> = OnceLock::new();
    *FROM_ENV.get_or_init(|| match std::env::var("TENJIT_BACKEND") {
        Ok(v) => Backend::parse(&v).unwrap_or_else(|| {
            eprintln!("tenjit: TENJIT_BACKEND={v} is not one of interp, cpu, cuda; using cpu");
            Backend::Cpu
        }),
        Err(_) => Backend::Cpu,
    })
}

/// Why a compilation happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MissReason {
    /// The cache was empty.
    FirstGraph,
    /// No cached graph has this structure; `nearest` describes how the closest one differs.
    NewStructure {
        /// The first line that differs from the nearest cached graph, both versions.
        nearest: String,
    },
    /// A graph of this structure was compiled at other sizes: whether the sizes became
    /// symbolic, and why not where they did not.
    NewSizes(crate::runtime::dynamic::Dynamic),
}

impl fmt::Display for MissReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MissReason::FirstGraph => f.write_str("first graph compiled"),
            MissReason::NewStructure { nearest } => {
                write!(f, "new structure; nearest cached graph differs: {nearest}")
            }
            MissReason::NewSizes(dynamic) => dynamic.fmt(f),
        }
    }
}

/// Where the program of a compiled graph came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProgramOrigin {
    /// Lowered from the graph, for its sizes.
    Concrete,
    /// Lowered from the graph's symbolic signature, once for every size in its range, then
    /// instantiated at the graph's sizes. (A pass may cap the range above the sizes met so far,
    /// where it would decide otherwise: a graph above compiles apart, its report saying so.)
    Symbolic,
    /// Instantiated at the graph's sizes from its signature's symbolic program, lowered before:
    /// no pass and no lowering ran (a cache miss that is no compilation).
    Instance,
    /// The graph's signature has no symbolic program (why): lowered for its sizes.
    NoSymbolicProgram(String),
    /// Lowered from the graph's symbolic signature once for the sizes a range guard admits
    /// (the guard and why: `d0 >= 262144 (pass split-reduce narrowed the range ...)`), then
    /// instantiated; the signature's other sizes compile apart.
    SymbolicRange(String),
}

impl fmt::Display for ProgramOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProgramOrigin::Concrete => f.write_str("lowered for these sizes"),
            ProgramOrigin::Symbolic => f.write_str("one program lowered for every size of the signature"),
            ProgramOrigin::Instance => f.write_str("the signature's program instantiated, nothing lowered"),
            ProgramOrigin::NoSymbolicProgram(why) => {
                write!(f, "lowered for these sizes: the signature has no symbolic program ({why})")
            }
            ProgramOrigin::SymbolicRange(guard) => {
                write!(f, "one program lowered for the sizes of the signature where {guard}")
            }
        }
    }
}

/// One compilation (or instantiation): its time per stage and why the cache missed.
#[derive(Clone, Debug)]
pub struct CompileReport {
    /// The report's number (0 for the first of the process), compilations and
    /// instantiations together.
    pub index: usize,
    /// Time per stage, in order: trace, shapes (explaining the miss: the nearest cached graph,
    /// or the symbolic signature of its structure), passes, lower, instantiate (a program from a
    /// symbolic signature), codegen.
    pub stages: Vec<(&'static str, Duration)>,
    /// Why the cache missed.
    pub miss: MissReason,
    /// Where the program came from: an [`ProgramOrigin::Instance`] is no compilation.
    pub origin: ProgramOrigin,
    /// Number of steps (kernels, matmuls, library ops) of the program.
    pub steps: usize,
    /// Most bytes of temporary buffers live at once, with buffers reused once dead.
    pub peak_bytes: usize,
    /// Bytes of all temporary buffers together (what no reuse would need).
    pub total_bytes: usize,
    /// The tensor nodes alive in the process when it compiled, and the bytes their values
    /// held ([`crate::live`]): a number that grows from one compilation to the next points at
    /// a loop that keeps what it made.
    pub live: crate::runtime::live::Live,
}

impl fmt::Display for CompileReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.origin == ProgramOrigin::Instance { "instance" } else { "compilation" };
        write!(f, "{what} {}: {} step(s);", self.index, self.steps)?;
        for (stage, t) in &self.stages {
            write!(f, " {stage} {:.3} ms", t.as_secs_f64() * 1e3)?;
        }
        write!(f, "; peak temporaries {} bytes ({} without reuse)", self.peak_bytes, self.total_bytes)?;
        write!(f, "; live tensors {} ({} bytes)", self.live.nodes, self.live.bytes)?;
        write!(f, "; {}; {}", self.miss, self.origin)
    }
}

/// The report of every compilation, oldest first.
static REPORTS: Mutex<Vec<CompileReport>> = Mutex::new(Vec::new());
/// Held while a graph is compiled, so two threads missing on one graph compile it once.
static COMPILING: Mutex<()> = Mutex::new(());
static COMPILATIONS: AtomicUsize = AtomicUsize::new(0);
static INSTANCES: AtomicUsize = AtomicUsize::new(0);
static REPORTED: AtomicUsize = AtomicUsize::new(0);

/// How many graphs this process has compiled: cache misses that ran the passes and the
/// lowering (for the graph's sizes, or once for every size of a symbolic signature).
pub fn compile_count() -> usize {
    COMPILATIONS.load(Ordering::Relaxed)
}

/// How many cache misses this process answered by instantiating the symbolic program of the
/// graph's signature at its sizes (no pass, no lowering; [`ProgramOrigin::Instance`]).
pub fn instance_count() -> usize {
    INSTANCES.load(Ordering::Relaxed)
}

/// The reports of every compilation so far, oldest first.
pub fn compile_reports() -> Vec<CompileReport> {
    REPORTS.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// The first line where two graph texts differ, as `- old` / `+ new`.
fn first_difference(old: &str, new: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (old.lines().collect(), new.lines().collect());
    for i in 0..a.len().max(b.len()) {
        let (x, y) = (a.get(i).copied().unwrap_or(""), b.get(i).copied().unwrap_or(""));
        if x != y {
            return format!("line {}: `{}` became `{}`", i + 1, x.trim(), y.trim());
        }
    }
    "identical text".into()
}

/// The number of differing lines, a distance between graph texts.
fn distance(old: &str, new: &str) -> usize {
    let (a, b): (Vec<&str>, Vec<&str>) = (old.lines().collect(), new.lines().collect());
    (0..a.len().max(b.len())).filter(|&i| a.get(i) != b.get(i)).count()
}

/// Every stage of one compilation, as text.
#[derive(Clone, Debug, Default)]
pub struct Stages {
    /// The traced graph.
    pub traced: String,
    /// The graph after each pass, with the pass's name.
    pub passes: Vec<(&'static str, String)>,
    /// The kernel list (one line per step, with the reason for each boundary).
    pub kernels: String,
    /// The kernel IR of the whole program.
    pub program: String,
    /// The CLIF of each kernel, with its name.
    pub clif: Vec<(String, String)>,
    /// The CUDA C of the whole program (what the CUDA backend compiles with NVRTC).
    pub cuda: String,
}

/// Time per compilation stage, in order.
type StageTimes = Vec<(&'static str, Duration)>;

/// Runs the passes and the lowering on `graph`, recording each stage's text when `record`. A
/// symbolic graph is compiled for its hints (the passes and the lowering decide on concrete
/// sizes; `run_graph` binds a symbolic graph to its inputs' sizes before it gets here).
pub(crate) fn lower(graph: &Graph, record: bool) -> Result<(Program, Stages, StageTimes)> {
    let mut stages = Stages::default();
    let mut times = Vec::new();
    if record {
        stages.traced = graph.to_string();
    }
    let mut g = if graph.is_symbolic() {
        graph.bind(graph.hints()).map_err(|e| {
            Error::eval(
                crate::error::EvalErrorKind::Input,
                format!("the graph does not bind at its hints: {e}"),
            )
        })?
    } else {
        graph.clone()
    };
    let t = Instant::now();
    let passes = tenjit_ir::passes::pipeline();
    let refs: Vec<&dyn tenjit_ir::passes::Pass> = passes.iter().map(|p| p.as_ref()).collect();
    let mut observe = |name: &'static str, g: &Graph| {
        if record {
            stages.passes.push((name, g.to_string()));
        }
    };
    tenjit_ir::passes::run_passes(&mut g, &refs, &mut observe)
        .map_err(|e| Error::internal(format!("tenjit bug: {e}")))?;
    times.push(("passes", t.elapsed()));
    let t = Instant::now();
    let program = tenjit_ir::kernel::lower::lower(&g);
    times.push(("lower", t.elapsed()));
    if record {
        stages.kernels = tenjit_ir::kernel::print::kernel_list(&program);
        stages.program = program.to_string();
        stages.clif = crate::runtime::render(&program, Device::Cpu);
        stages.cuda =
            crate::runtime::render(&program, Device::Cuda(0)).into_iter().map(|(_, text)| text).collect();
    }
    Ok((program, stages, times))
}

fn dump_dir() -> Option<&'static std::path::Path> {
    static DIR: OnceLock<Option<std::path::PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| std::env::var_os("TENJIT_DUMP").map(std::path::PathBuf::from)).as_deref()
}

/// Writes every stage of compilation `index` under the dump directory.
fn dump(index: usize, stages: &Stages, report: &CompileReport) {
    let Some(dir) = dump_dir() else { return };
    let write = |name: String, text: &str| {
        let path = dir.join(name);
        if let Err(e) = std::fs::create_dir_all(dir).and_then(|_| std::fs::write(&path, text)) {
            eprintln!("tenjit: TENJIT_DUMP: cannot write {}: {e}", path.display());
        }
    };
    write(format!("{index:03}-0-traced.tir"), &stages.traced);
    for (i, (name, text)) in stages.passes.iter().enumerate() {
        write(format!("{index:03}-{}-after-{name}.tir", i + 1), text);
    }
    write(format!("{index:03}-kernels.txt"), &format!("{}\n{report}\n", stages.kernels));
    write(format!("{index:03}-kernel-ir.txt"), &stages.program);
    let clif: String = stages.clif.iter().map(|(name, text)| format!("; kernel {name}\n{text}\n")).collect();
    write(format!("{index:03}-clif.txt"), &clif);
    write(format!("{index:03}-cuda.cu"), &stages.cuda);
}

/// The executable for the lazy structure `key` (a front end's fingerprint of it) on `device`:
/// from the cache, or built with `graph()` (the graph and its input dims marked dynamic),
/// lowered and compiled now (which counts as a compilation, with its report). A key missing
/// from the cache may still find the executable of its graph, compiled for another key.
pub(crate) fn executable_lazy(
    device: Device,
    key: u128,
    graph: impl FnOnce() -> (Graph, Vec<tenjit_ir::graph::Mark>),
    start: Instant,
) -> Result<Arc<dyn Executable>> {
    if let Some(exe) = cache::get(device, Key::Lazy(key)) {
        return Ok(exe);
    }
    let (graph, marks) = graph();
    let exe = executable_marked(device, &graph, start.elapsed(), &marks)?;
    cache::insert_alias(device, Key::Lazy(key), exe.clone());
    Ok(exe)
}

/// The executable of `graph` on `device`, from the cache (by the graph's fingerprint) or
/// compiled now; `trace_time` is what building the graph took, for the report.
pub(crate) fn executable(device: Device, graph: &Graph, trace_time: Duration) -> Result<Arc<dyn Executable>> {
    executable_marked(device, graph, trace_time, &[])
}

/// [`executable`] of a graph whose input dims `marks` are marked dynamic: the
/// first graph of a structure with marks is compiled for every size of those dims.
pub(crate) fn executable_marked(
    device: Device,
    graph: &Graph,
    trace_time: Duration,
    marks: &[tenjit_ir::graph::Mark],
) -> Result<Arc<dyn Executable>> {
    let fingerprint = graph.fingerprint();
    if let Some(exe) = cache::get(device, Key::Graph(fingerprint)) {
        return Ok(exe);
    }
    compiled(device, graph, fingerprint, trace_time, marks, None)
}

/// [`executable`] of `graph`, an instance of `symbolic`, a graph a front end traced over
/// size symbols: the first graph of its structure takes it as its symbolic signature (no
/// guessing the symbols from one sample, as marks do).
pub(crate) fn executable_traced(
    device: Device,
    graph: &Graph,
    trace_time: Duration,
    symbolic: &Graph,
) -> Result<Arc<dyn Executable>> {
    let fingerprint = graph.fingerprint();
    if let Some(exe) = cache::get(device, Key::Graph(fingerprint)) {
        return Ok(exe);
    }
    compiled(device, graph, fingerprint, trace_time, &[], Some(symbolic))
}

/// Compiles `graph` (of fingerprint `fingerprint`) for `device`, unless another thread just
/// did, and caches it.
fn compiled(
    device: Device,
    graph: &Graph,
    fingerprint: u128,
    trace_time: Duration,
    marks: &[tenjit_ir::graph::Mark],
    traced: Option<&Graph>,
) -> Result<Arc<dyn Executable>> {
    let _one_at_a_time = COMPILING.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(exe) = cache::get(device, Key::Graph(fingerprint)) {
        return Ok(exe);
    }
    let backend = crate::runtime::backend_for(device)?;
    let text = graph.to_string();
    let shapes = Instant::now();
    let (miss, signature) = match crate::runtime::dynamic::observe(device, graph, marks, traced) {
        Some((dynamic, signature)) => (MissReason::NewSizes(dynamic), signature),
        None => (cache::with_texts(device, |texts| miss_reason(texts.iter().copied(), &text)), None),
    };
    let shapes = shapes.elapsed();
    let record = dump_dir().is_some();
    let from_signature = signature.map(|sig| symbolic::instance(device, graph, &sig, record));
    let (program, stages, mut times, origin) = match from_signature {
        Some(Ok(instance)) => {
            let origin = match (instance.built, instance.guard) {
                (false, _) => ProgramOrigin::Instance,
                (true, None) => ProgramOrigin::Symbolic,
                (true, Some(guard)) => ProgramOrigin::SymbolicRange(guard),
            };
            (instance.program, instance.stages, instance.times, origin)
        }
        Some(Err(why)) => {
            let (program, stages, times) = lower(graph, record)?;
            (program, stages, times, ProgramOrigin::NoSymbolicProgram(why))
        }
        None => {
            let (program, stages, times) = lower(graph, record)?;
            (program, stages, times, ProgramOrigin::Concrete)
        }
    };
    times.insert(0, ("trace", trace_time));
    times.insert(1, ("shapes", shapes));
    let t = Instant::now();
    let steps = program.steps.len();
    let memory = crate::runtime::memory_plan(&program);
    let exe = backend.compile(program)?;
    times.push(("codegen", t.elapsed()));
    let prefix = match device {
        Device::Cpu => String::new(),
        Device::Cuda(_) => format!("{device}: "),
    };
    let report = record_compilation(times, miss, origin, steps, &memory, &stages, &prefix);
    REPORTS.lock().unwrap_or_else(|p| p.into_inner()).push(report);
    cache::insert_compiled(device, fingerprint, text, exe.clone());
    Ok(exe)
}

/// Numbers a finished compilation, dumps its stages (`TENJIT_DUMP`), prints its report
/// (`TENJIT_REPORT`, after `prefix`) and returns the report.
fn record_compilation(
    stages_times: StageTimes,
    miss: MissReason,
    origin: ProgramOrigin,
    steps: usize,
    memory: &crate::runtime::MemoryPlan,
    stages: &Stages,
    prefix: &str,
) -> CompileReport {
    let counter = if origin == ProgramOrigin::Instance { &INSTANCES } else { &COMPILATIONS };
    counter.fetch_add(1, Ordering::Relaxed);
    let index = REPORTED.fetch_add(1, Ordering::Relaxed);
    let report = CompileReport {
        index,
        stages: stages_times,
        miss,
        origin,
        steps,
        peak_bytes: memory.peak_bytes,
        total_bytes: memory.total_bytes,
        live: crate::runtime::live::live(),
    };
    dump(index, stages, &report);
    if std::env::var_os("TENJIT_REPORT").is_some() {
        eprintln!("tenjit: {prefix}{report}");
    }
    report
}

/// Why a graph of text `text` missed a cache holding graphs of texts `cached`.
fn miss_reason<'a>(cached: impl Iterator<Item = &'a String>, text: &str) -> MissReason {
    cached
        .min_by_key(|k| (distance(k, text), (*k).clone()))
        .map(|nearest| MissReason::NewStructure { nearest: first_difference(nearest, text) })
        .unwrap_or(MissReason::FirstGraph)
}

/// Where the values of tensors on `device` are computed: the interpreter, or a backend's
/// device (a CPU tensor runs on `cuda:0` under the `cuda` backend setting).
pub(crate) enum Target {
    /// The reference interpreter.
    Interp,
    /// The backend of this device.
    Device(Device),
}

/// Where the values of tensors on `device` are computed, under the [`backend`] setting.
pub(crate) fn target(device: Device) -> Target {
    match (device, backend()) {
        (Device::Cpu, Backend::Interp) => Target::Interp,
        (Device::Cpu, Backend::Cpu) => Target::Device(Device::Cpu),
        (Device::Cpu, Backend::Cuda) => Target::Device(Device::Cuda(0)),
        (Device::Cuda(i), _) => Target::Device(Device::Cuda(i)),
    }
}

/// Runs `exe` (compiled for `device`) on `inputs` and returns the outputs in host memory.
pub(crate) fn run_to_host(exe: &dyn Executable, inputs: &[Value], device: Device) -> Result<Vec<Buffer>> {
    let mut outputs = Vec::new();
    exe.run(inputs, &mut |v| outputs.push(v))?;
    outputs
        .into_iter()
        .map(|v| match v {
            Value::Host(b) => Ok(Arc::try_unwrap(b).unwrap_or_else(|shared| (*shared).clone())),
            Value::Device(_) => crate::runtime::download(&v, device),
        })
        .collect()
}

/// Evaluates `graph` on `inputs` with the selected [`backend`]: the interpreter, or compiled
/// kernels (cached by structure). The CLI and the differential tests use it. A symbolic graph
/// runs at the sizes its inputs bind (compiled for those sizes).
pub fn run_graph(graph: &Graph, inputs: &[Buffer]) -> Result<Vec<Buffer>> {
    if graph.is_symbolic() && !matches!(target(Device::Cpu), Target::Interp) {
        let given: Vec<&[usize]> = inputs.iter().map(|b| b.shape().dims()).collect();
        let bound = graph.bind_inputs(&given).map_err(|e| {
            Error::eval(
                crate::error::EvalErrorKind::Input,
                format!("the inputs' shapes do not fit the graph: {e}"),
            )
        })?;
        return run_graph(&bound, inputs);
    }
    match target(Device::Cpu) {
        Target::Interp => tenjit_ir::interp::eval(graph, inputs).map_err(Error::from_interp),
        Target::Device(device) => {
            device.check_available()?;
            let exe = executable(device, graph, Duration::ZERO)?;
            let values: Vec<Value> = inputs.iter().map(|b| Value::Host(Arc::new(b.clone()))).collect();
            run_to_host(exe.as_ref(), &values, device)
        }
    }
}

/// Every stage of compiling `graph` as text (the traced graph, each pass, the kernel list, the
/// kernel IR, the CLIF and the CUDA C), without running it: what `tenjit compile --emit` prints.
pub fn compile_stages(graph: &Graph) -> Result<Stages> {
    Ok(lower(graph, true)?.1)
}
