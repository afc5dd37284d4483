//! From a traced graph to values: the pass pipeline, lowering to kernels, code generation,
//! the executable cache and the compile report.
//!
//! The cache key is the graph's structure, its [`Graph::fingerprint`] (ops, dtypes, shapes,
//! attributes; never data or source locations), so a training loop compiles once. Every compilation is
//! recorded in a [`CompileReport`] with its time per stage and, for a cache miss, why it
//! missed: the first graph, or what differs from the nearest cached graph. `TENJIT_DUMP=DIR`
//! writes every stage of every compilation to `DIR`.

use crate::backend::cpu::exec::CpuExecutable;
use crate::backend::cuda::exec::CudaExecutable;
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};
use tenjit_ir::kernel::{Program, Step};
use tenjit_ir::{Buffer, Graph};

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
}

impl fmt::Display for MissReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MissReason::FirstGraph => f.write_str("first graph compiled"),
            MissReason::NewStructure { nearest } => {
                write!(f, "new structure; nearest cached graph differs: {nearest}")
            }
        }
    }
}

/// One compilation: its time per stage and why the cache missed.
#[derive(Clone, Debug)]
pub struct CompileReport {
    /// The compilation's number (0 for the first of the process).
    pub index: usize,
    /// Time per stage, in order: trace, passes, lower, codegen.
    pub stages: Vec<(&'static str, Duration)>,
    /// Why the cache missed.
    pub miss: MissReason,
    /// Number of steps (kernels, matmuls, library ops) of the program.
    pub steps: usize,
    /// Most bytes of temporary buffers live at once, with buffers reused once dead.
    pub peak_bytes: usize,
    /// Bytes of all temporary buffers together (what no reuse would need).
    pub total_bytes: usize,
}

impl fmt::Display for CompileReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "compilation {}: {} step(s);", self.index, self.steps)?;
        for (stage, t) in &self.stages {
            write!(f, " {stage} {:.3} ms", t.as_secs_f64() * 1e3)?;
        }
        write!(f, "; peak temporaries {} bytes ({} without reuse)", self.peak_bytes, self.total_bytes)?;
        write!(f, "; {}", self.miss)
    }
}

/// A cached executable with the text of its graph (for explaining later misses).
struct Entry {
    exe: Arc<CpuExecutable>,
    text: String,
}

struct Cache {
    /// Keyed by [`Graph::fingerprint`]: a hit costs one walk over the graph, no printing.
    entries: HashMap<u128, Entry>,
    /// CUDA executables, keyed by a front end's fingerprint of the structure and the device
    /// ordinal, with the text of their graph.
    cuda: HashMap<(u128, usize), (Arc<CudaExecutable>, String)>,
    /// Keyed by a front end's own fingerprint of the structure (the realize path hashes the
    /// lazy DAG itself), so a hit builds no graph at all.
    keyed: HashMap<u128, Arc<CpuExecutable>>,
    reports: Vec<CompileReport>,
}

static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
static COMPILATIONS: AtomicUsize = AtomicUsize::new(0);

fn cache() -> &'static Mutex<Cache> {
    CACHE.get_or_init(|| {
        Mutex::new(Cache {
            entries: HashMap::new(),
            keyed: HashMap::new(),
            cuda: HashMap::new(),
            reports: Vec::new(),
        })
    })
}

/// How many graphs this process has compiled (cache misses).
pub fn compile_count() -> usize {
    COMPILATIONS.load(Ordering::Relaxed)
}

/// The reports of every compilation so far, oldest first.
pub fn compile_reports() -> Vec<CompileReport> {
    cache().lock().unwrap_or_else(|p| p.into_inner()).reports.clone()
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

/// Runs the passes and the lowering on `graph`, recording each stage's text when `record`.
pub(crate) fn lower(graph: &Graph, record: bool) -> Result<(Program, Stages, StageTimes)> {
    let mut stages = Stages::default();
    let mut times = Vec::new();
    let mut g = graph.clone();
    if record {
        stages.traced = g.to_string();
    }
    let t = Instant::now();
    let passes = tenjit_ir::passes::standard();
    let refs: Vec<&dyn tenjit_ir::passes::Pass> = passes.iter().map(|p| p.as_ref()).collect();
    let mut observe = |name: &'static str, g: &Graph| {
        if record {
            stages.passes.push((name, g.to_string()));
        }
    };
    // The standard pipeline, then the splitting of large reductions for the cores.
    let split = tenjit_ir::passes::split_reduce::SplitReduce::default();
    let mut refs = refs;
    refs.push(&split);
    tenjit_ir::passes::run_passes(&mut g, &refs, &mut observe)
        .map_err(|e| Error::Eval { message: format!("tenjit bug: {e}") })?;
    times.push(("passes", t.elapsed()));
    let t = Instant::now();
    let program = tenjit_ir::kernel::lower::lower(&g);
    times.push(("lower", t.elapsed()));
    if record {
        stages.kernels = tenjit_ir::kernel::print::kernel_list(&program);
        stages.program = program.to_string();
        for step in &program.steps {
            if let Step::Kernel(k) = step {
                let text = crate::backend::cpu::codegen::render(k, &program.buffers)
                    .unwrap_or_else(|e| format!("; cannot render: {e}"));
                stages.clif.push((k.name.clone(), text));
            }
        }
        stages.cuda = crate::backend::cuda::codegen::render_program(&program)
            .map(|m| m.source)
            .unwrap_or_else(|e| format!("// cannot render: {e}\n"));
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

/// The compiled executable for `graph`, from the cache or compiled now.
pub(crate) fn executable(graph: &Graph, trace_time: Duration) -> Result<Arc<CpuExecutable>> {
    let key = graph.fingerprint();
    let mut cache = cache().lock().unwrap_or_else(|p| p.into_inner());
    if let Some(entry) = cache.entries.get(&key) {
        return Ok(entry.exe.clone());
    }
    let text = graph.to_string();
    let miss = miss_reason(cache.entries.values().map(|e| &e.text), &text);
    let record = dump_dir().is_some();
    let (program, stages, mut times) = lower(graph, record)?;
    times.insert(0, ("trace", trace_time));
    let t = Instant::now();
    let steps = program.steps.len();
    let exe = CpuExecutable::compile(program)
        .map_err(|e| Error::Eval { message: format!("compilation failed: {e}") })?;
    times.push(("codegen", t.elapsed()));
    let report = record_compilation(times, miss, steps, exe.memory(), &stages, "");
    cache.reports.push(report);
    let exe = Arc::new(exe);
    cache.entries.insert(key, Entry { exe: exe.clone(), text });
    Ok(exe)
}

/// Numbers a finished compilation, dumps its stages (`TENJIT_DUMP`), prints its report
/// (`TENJIT_REPORT`, after `prefix`) and returns the report.
fn record_compilation(
    stages_times: StageTimes,
    miss: MissReason,
    steps: usize,
    memory: &crate::backend::cpu::memory::MemoryPlan,
    stages: &Stages,
    prefix: &str,
) -> CompileReport {
    let index = COMPILATIONS.fetch_add(1, Ordering::Relaxed);
    let report = CompileReport {
        index,
        stages: stages_times,
        miss,
        steps,
        peak_bytes: memory.peak_bytes,
        total_bytes: memory.total_bytes,
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

/// The CUDA executable for the structure `key` (a front end's fingerprint of it) on GPU
/// `device`: from the cache, or built with `graph()`, lowered and compiled now (which counts
/// as a compilation, with its report).
pub(crate) fn cuda_executable_keyed(
    key: u128,
    graph: impl FnOnce() -> Graph,
    device: usize,
    start: Instant,
) -> Result<Arc<CudaExecutable>> {
    if let Some((exe, _)) = cache().lock().unwrap_or_else(|p| p.into_inner()).cuda.get(&(key, device)) {
        return Ok(exe.clone());
    }
    let graph = graph();
    let trace_time = start.elapsed();
    let text = graph.to_string();
    let record = dump_dir().is_some();
    let (program, stages, mut times) = lower(&graph, record)?;
    times.insert(0, ("trace", trace_time));
    let t = Instant::now();
    let steps = program.steps.len();
    let memory = crate::backend::cpu::memory::plan(&program);
    let exe =
        CudaExecutable::compile(program, device).map_err(|e| Error::Device { message: e.to_string() })?;
    times.push(("codegen", t.elapsed()));
    let mut cache = cache().lock().unwrap_or_else(|p| p.into_inner());
    let miss = miss_reason(cache.cuda.values().map(|(_, t)| t), &text);
    let report = record_compilation(times, miss, steps, &memory, &stages, &format!("cuda:{device}: "));
    cache.reports.push(report);
    let exe = Arc::new(exe);
    cache.cuda.insert((key, device), (exe.clone(), text));
    Ok(exe)
}

/// The executable for the structure `key` (a front end's fingerprint of it): from the cache,
/// or built with `graph()` and compiled (or found by the graph's own fingerprint) now.
pub(crate) fn executable_keyed(
    key: u128,
    graph: impl FnOnce() -> Graph,
    start: Instant,
) -> Result<Arc<CpuExecutable>> {
    if let Some(exe) = cache().lock().unwrap_or_else(|p| p.into_inner()).keyed.get(&key) {
        return Ok(exe.clone());
    }
    let graph = graph();
    let exe = executable(&graph, start.elapsed())?;
    cache().lock().unwrap_or_else(|p| p.into_inner()).keyed.insert(key, exe.clone());
    Ok(exe)
}

/// Evaluates `graph` on `inputs` with the CPU compiler.
pub(crate) fn run_cpu(graph: &Graph, inputs: &[Arc<Buffer>], trace_time: Duration) -> Result<Vec<Buffer>> {
    let exe = executable(graph, trace_time)?;
    exe.run(inputs).map_err(|e| Error::Eval { message: e.to_string() })
}

/// Evaluates `graph` on `inputs` with the selected [`backend`]: the interpreter, or compiled
/// kernels (cached by structure). The CLI and the differential tests use it.
pub fn run_graph(graph: &Graph, inputs: &[Buffer]) -> Result<Vec<Buffer>> {
    match backend() {
        Backend::Interp => {
            tenjit_ir::interp::eval(graph, inputs).map_err(|e| Error::Eval { message: e.to_string() })
        }
        Backend::Cpu => {
            let shared: Vec<Arc<Buffer>> = inputs.iter().cloned().map(Arc::new).collect();
            run_cpu(graph, &shared, Duration::ZERO)
        }
        Backend::Cuda => {
            crate::device::Device::Cuda(0).check_available()?;
            let exe = cuda_executable_keyed(graph.fingerprint(), || graph.clone(), 0, Instant::now())?;
            crate::device::run_on_device(&exe, inputs, 0)
        }
    }
}

/// Every stage of compiling `graph` as text (the traced graph, each pass, the kernel list, the
/// kernel IR, the CLIF and the CUDA C), without running it: what `tenjit compile --emit` prints.
pub fn compile_stages(graph: &Graph) -> Result<Stages> {
    Ok(lower(graph, true)?.1)
}
