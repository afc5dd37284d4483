//! Running a compiled program on a CUDA device.
//!
//! [`CudaExecutable::compile`] renders a [`Program`] to CUDA C, compiles it with NVRTC for the
//! device's architecture (through the PTX disk cache), loads the module (once per device and
//! source: an in-memory module cache) and looks up each kernel. [`CudaExecutable::run`] runs
//! it on device buffers, as the CPU executor runs a program on host buffers: inputs are
//! borrowed, temps are allocated on the device just before the first step that touches them
//! (in full, except the local buffers of a row group rendered as one kernel, which live in its
//! shared memory) and, where the device allocates in stream order, freed right after the last
//! one; outputs are moved out (an output that is an input, or that appears twice, is copied).
//!
//! Every step is issued on the device's one stream, in program order: kernels with their
//! [`RenderedKernel::launch`] geometry (a grid of 0 is skipped) and their arguments in the
//! order of their parameters ([`kernel_args`]: buffer addresses, then the values of the size
//! parameters, by value, so instances of one structure share one module and differ only in
//! these values and the launch; then the error word), float matrix products through
//! cuBLAS where [`blas::plan`] maps their layout, and everything else (integer products,
//! layouts cuBLAS cannot read) through the rendered kernel. Kernels that can fail share one
//! zeroed error word per run, read back once at the end, when the stream is synchronized; a
//! nonzero word is the CPU backend's error ([`CudaError::Kernel`]).
//!
//! The pure part, what runs where and which buffers live when, is an [`ExecPlan`], computed
//! from the program and its rendering alone, and tested without a GPU.

use super::blas::{self, Blas, BlasGemm, GemmPlan};
use super::codegen::{self, CudaModule, CudaStep, ErrorCode, Param, ParamKind, RenderedKernel};
use super::nvrtc::{self, Arch, Nvrtc};
use super::ptx_cache::CacheKey;
use super::runtime::{self, driver_error, CudaError, Device, DeviceBuffer, Storage};
use cudarc::driver::{CudaFunction, DevicePtr, LaunchConfig, PushKernelArg};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use tenjit_ir::kernel::{BufId, BufferKind, Program};
use tenjit_ir::{DType, TensorType};

/// Choices a compile can make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CudaOptions {
    /// Run float matrix products through cuBLAS where their layout allows (when cuBLAS can be
    /// loaded); otherwise every product runs the rendered kernel.
    pub cublas: bool,
}

impl Default for CudaOptions {
    fn default() -> CudaOptions {
        CudaOptions { cublas: true }
    }
}

/// How one step runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepPlan {
    /// Launch the step's kernel (the `index`-th of [`CudaModule::kernels`]).
    Launch {
        /// The kernel's position among the module's kernels (the step's position, less the
        /// steps before it that a row group's kernel computes).
        index: usize,
    },
    /// A float matrix product through cuBLAS.
    Blas {
        /// The calls.
        gemm: BlasGemm,
        /// The left operand's buffer.
        a: BufId,
        /// The right operand's buffer.
        b: BufId,
        /// The output buffer.
        out: BufId,
    },
    /// Nothing to do: the kernel's grid is empty.
    Skip,
    /// Nothing to do: the step is part of the row group whose kernel the step `first`
    /// launches.
    InGroup {
        /// The group's first step.
        first: usize,
    },
}

/// Where an output comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputAction {
    /// A device copy of input `i` (the output is an input buffer).
    CopyInput(usize),
    /// The temp itself, moved out (its last appearance among the outputs).
    Move(BufId),
    /// A device copy of the temp (it appears again later among the outputs).
    Copy(BufId),
}

/// What a run does, step by step: computed from a program and its rendering alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecPlan {
    /// How each step runs.
    pub steps: Vec<StepPlan>,
    /// The temps allocated just before each step (the first step touching them).
    pub allocate_before: Vec<Vec<BufId>>,
    /// The temps no later step or output needs, freed after each step.
    pub release_after: Vec<Vec<BufId>>,
    /// Where each output comes from.
    pub outputs: Vec<OutputAction>,
    /// Whether some launched kernel takes the error word.
    pub error_flag: bool,
}

impl ExecPlan {
    /// Plans `program`, rendered as `module`; float products go to cuBLAS when `cublas` and
    /// [`blas::plan`] allow.
    pub fn new(program: &Program, module: &CudaModule, cublas: bool) -> Result<ExecPlan, CudaError> {
        if module.steps.len() != program.steps.len() {
            return Err(CudaError::Internal(format!(
                "{} steps rendered for a program of {}",
                module.steps.len(),
                program.steps.len()
            )));
        }
        let nbuf = program.buffers.len();
        let check = |b: BufId| -> Result<BufId, CudaError> {
            if b < nbuf {
                Ok(b)
            } else {
                Err(CudaError::Internal(format!(
                    "a step uses buffer b{b}, which the program does not declare"
                )))
            }
        };
        let mut steps = Vec::with_capacity(module.steps.len());
        let mut touched: Vec<Vec<BufId>> = Vec::with_capacity(module.steps.len());
        let mut error_flag = false;
        // The position of the next kernel among the module's kernels.
        let mut next_kernel = 0;
        for step in &module.steps {
            let (kernel, desc) = match step {
                CudaStep::Kernel(k) => (k, None),
                CudaStep::Matmul { desc, kernel } => (kernel, Some(desc)),
                CudaStep::InGroup { first } => {
                    touched.push(Vec::new());
                    steps.push(StepPlan::InGroup { first: *first });
                    continue;
                }
            };
            let index = next_kernel;
            next_kernel += 1;
            let gemm = match desc {
                Some(d) if cublas => match blas::plan(d) {
                    GemmPlan::Blas(g) => Some((g, d)),
                    GemmPlan::Kernel(_) => None,
                },
                _ => None,
            };
            let plan = match gemm {
                Some((gemm, d)) => {
                    touched.push(vec![check(d.a.buf)?, check(d.b.buf)?, check(d.out)?]);
                    StepPlan::Blas { gemm, a: d.a.buf, b: d.b.buf, out: d.out }
                }
                None => {
                    let mut uses = Vec::new();
                    for p in &kernel.params {
                        if let ParamKind::Buffer { buf, .. } = p.kind {
                            uses.push(check(buf)?);
                        }
                    }
                    touched.push(uses);
                    if kernel.launch.grid == 0 {
                        StepPlan::Skip
                    } else {
                        error_flag |= kernel.can_fail();
                        StepPlan::Launch { index }
                    }
                }
            };
            steps.push(plan);
        }
        let is_temp = |b: BufId| program.buffers[b].kind == BufferKind::Temp;
        let mut allocate_before = vec![Vec::new(); steps.len()];
        let mut release_after = vec![Vec::new(); steps.len()];
        let mut first = vec![None; nbuf];
        let mut last = vec![None; nbuf];
        for (s, uses) in touched.iter().enumerate() {
            for &b in uses {
                first[b].get_or_insert(s);
                last[b] = Some(s);
            }
        }
        for b in 0..nbuf {
            if !is_temp(b) {
                continue;
            }
            if let Some(s) = first[b] {
                allocate_before[s].push(b);
            }
            if let Some(s) = last[b] {
                if !program.outputs.contains(&b) {
                    release_after[s].push(b);
                }
            }
        }
        let mut outputs = Vec::with_capacity(program.outputs.len());
        for (k, &o) in program.outputs.iter().enumerate() {
            let decl = program
                .buffers
                .get(o)
                .ok_or_else(|| CudaError::Internal(format!("output b{o} is not a declared buffer")))?;
            outputs.push(match decl.kind {
                BufferKind::Input(i) => OutputAction::CopyInput(i),
                BufferKind::Temp if first[o].is_none() => {
                    return Err(CudaError::Internal(format!("output buffer b{o} is never written")))
                }
                BufferKind::Temp if program.outputs[k + 1..].contains(&o) => OutputAction::Copy(o),
                BufferKind::Temp => OutputAction::Move(o),
            });
        }
        Ok(ExecPlan { steps, allocate_before, release_after, outputs, error_flag })
    }
}

impl fmt::Display for ExecPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |v: &[BufId]| v.iter().map(|b| format!("b{b}")).collect::<Vec<_>>().join(" ");
        for (s, step) in self.steps.iter().enumerate() {
            write!(f, "s{s}: ")?;
            match step {
                StepPlan::Launch { index } => write!(f, "launch kernel {index}")?,
                StepPlan::Blas { gemm, a, b, out } => write!(
                    f,
                    "cublas {} m={} n={} k={} batch={} calls={} (b{a} @ b{b} -> b{out})",
                    gemm.dtype,
                    gemm.m,
                    gemm.n,
                    gemm.k,
                    gemm.batch,
                    gemm.calls.len()
                )?,
                StepPlan::Skip => write!(f, "skip (empty grid)")?,
                StepPlan::InGroup { first } => write!(f, "in the group kernel of s{first}")?,
            }
            if !self.allocate_before[s].is_empty() {
                write!(f, "; alloc {}", list(&self.allocate_before[s]))?;
            }
            if !self.release_after[s].is_empty() {
                write!(f, "; free {}", list(&self.release_after[s]))?;
            }
            writeln!(f)?;
        }
        let outs: Vec<String> = self
            .outputs
            .iter()
            .map(|o| match o {
                OutputAction::CopyInput(i) => format!("copy of input {i}"),
                OutputAction::Move(b) => format!("b{b}"),
                OutputAction::Copy(b) => format!("copy of b{b}"),
            })
            .collect();
        writeln!(f, "outputs: {}", outs.join(", "))?;
        if self.error_flag {
            writeln!(f, "error word: yes")?;
        }
        Ok(())
    }
}

/// Checks the inputs given to a program compiled for `device`: each input buffer the program
/// declares is present, of its declared type, on `device`. `inputs` are the given buffers'
/// types and devices, in order.
pub fn check_inputs(
    program: &Program,
    device: usize,
    inputs: &[(&TensorType, usize)],
) -> Result<(), CudaError> {
    for decl in &program.buffers {
        if let BufferKind::Input(i) = decl.kind {
            let &(ty, dev) =
                inputs.get(i).ok_or(CudaError::MissingInput { index: i, given: inputs.len() })?;
            if *ty != decl.ty {
                return Err(CudaError::InputType {
                    index: i,
                    expected: Box::new(decl.ty.clone()),
                    got: Box::new(ty.clone()),
                });
            }
            if dev != device {
                return Err(CudaError::InputDevice { index: i, expected: device, got: dev });
            }
        }
    }
    Ok(())
}

/// One argument of a kernel launch, as its C parameter takes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelArg {
    /// A device address (a buffer's `T*`, the error word's `int*`).
    Ptr(u64),
    /// A size parameter's `long long`, by value.
    Size(i64),
}

/// The argument values of a kernel with `params`, in order: each buffer's device address from
/// `ptrs` (by buffer id; 0 for a buffer that is not allocated, an error), each size
/// parameter's value, then the error word's address `err`.
pub fn kernel_args(
    name: &str,
    params: &[Param],
    ptrs: &[u64],
    err: Option<u64>,
) -> Result<Vec<KernelArg>, CudaError> {
    params
        .iter()
        .map(|p| match p.kind {
            ParamKind::Buffer { buf, .. } => match ptrs.get(buf) {
                Some(&ptr) if ptr != 0 => Ok(KernelArg::Ptr(ptr)),
                _ => Err(CudaError::Internal(format!("kernel {name}: buffer b{buf} is not allocated"))),
            },
            ParamKind::Size { value } => Ok(KernelArg::Size(value)),
            ParamKind::ErrorFlag => err
                .map(KernelArg::Ptr)
                .ok_or_else(|| CudaError::Internal(format!("kernel {name}: no error word"))),
        })
        .collect()
}

/// The error a nonzero error word stands for.
pub fn error_for_code(code: i32) -> CudaError {
    match ErrorCode(code).describe() {
        Some(failure) => CudaError::Kernel(failure),
        None => CudaError::UnknownErrorCode(code),
    }
}

/// Loaded modules, by device and by the key of their PTX (source, architecture, options and
/// NVRTC version), so the same source is loaded once per device.
type ModuleCache = HashMap<(usize, CacheKey), Arc<cudarc::driver::CudaModule>>;

static MODULES: Mutex<Option<ModuleCache>> = Mutex::new(None);

/// The cuBLAS handle of each device, created on first use (`None`: cuBLAS is not loadable).
static BLAS: Mutex<Vec<Option<Option<Arc<Blas>>>>> = Mutex::new(Vec::new());

fn blas_for(dev: &Device) -> Result<Option<Arc<Blas>>, CudaError> {
    let mut all = BLAS.lock().unwrap_or_else(|p| p.into_inner());
    if all.len() <= dev.ordinal {
        all.resize(dev.ordinal + 1, None);
    }
    if let Some(b) = &all[dev.ordinal] {
        return Ok(b.clone());
    }
    let b = if blas::library_present() { Some(Arc::new(Blas::new(dev.stream.clone())?)) } else { None };
    all[dev.ordinal] = Some(b.clone());
    Ok(b)
}

/// How a planned step runs, with what it needs loaded.
enum Exec {
    Launch { func: CudaFunction, kernel: RenderedKernel },
    Blas { gemm: BlasGemm, a: BufId, b: BufId, out: BufId },
    Skip,
}

/// A program compiled for one CUDA device.
pub struct CudaExecutable {
    program: Program,
    device: Arc<Device>,
    module: CudaModule,
    plan: ExecPlan,
    steps: Vec<Exec>,
    blas: Option<Arc<Blas>>,
    arch: Arch,
}

impl fmt::Debug for CudaExecutable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CudaExecutable(@{} on {:?}, {})", self.program.name, self.device, self.arch)
    }
}

impl CudaExecutable {
    /// Compiles `program` for device `device` with the default options.
    pub fn compile(program: Program, device: usize) -> Result<CudaExecutable, CudaError> {
        CudaExecutable::compile_with(program, device, CudaOptions::default())
    }

    /// Compiles `program` for device `device`: renders it, compiles the CUDA C with NVRTC for
    /// the device's architecture, loads the module and looks up every kernel. Programs of one
    /// structure at other sizes (instances of one symbolic program) render the same source,
    /// so they share the loaded module (and its one NVRTC compile); each keeps its own
    /// launches and size arguments.
    pub fn compile_with(
        program: Program,
        device: usize,
        options: CudaOptions,
    ) -> Result<CudaExecutable, CudaError> {
        let dev = runtime::device(device)?;
        let (major, minor) = dev.capability;
        let arch = Arch::for_capability(major, minor)
            .ok_or(CudaError::UnsupportedDevice { device, capability: dev.capability })?;
        let module = codegen::render_program(&program)?;
        let has_float_matmul = module.steps.iter().any(
            |s| matches!(s, CudaStep::Matmul { desc, .. } if matches!(desc.dtype, DType::F32 | DType::F64)),
        );
        let blas = if options.cublas && has_float_matmul { blas_for(&dev)? } else { None };
        let plan = ExecPlan::new(&program, &module, blas.is_some())?;
        let nvrtc = Nvrtc::load()?;
        let cu_module = load_module(&dev, nvrtc, &module.source, arch)?;
        let kernels: Vec<&RenderedKernel> = module.kernels().collect();
        let mut steps = Vec::with_capacity(plan.steps.len());
        for step in &plan.steps {
            steps.push(match step {
                StepPlan::Launch { index } => {
                    let kernel = kernels[*index].clone();
                    let func = cu_module
                        .load_function(&kernel.name)
                        .map_err(|e| driver_error(format!("cuModuleGetFunction ({})", kernel.name), e))?;
                    Exec::Launch { func, kernel }
                }
                StepPlan::Blas { gemm, a, b, out } => {
                    Exec::Blas { gemm: gemm.clone(), a: *a, b: *b, out: *out }
                }
                StepPlan::Skip | StepPlan::InGroup { .. } => Exec::Skip,
            });
        }
        Ok(CudaExecutable { program, device: dev, module, plan, steps, blas, arch })
    }

    /// The program.
    pub fn program(&self) -> &Program {
        &self.program
    }

    /// The device ordinal it runs on.
    pub fn device(&self) -> usize {
        self.device.ordinal
    }

    /// The architecture it was compiled for.
    pub fn arch(&self) -> Arch {
        self.arch
    }

    /// The rendered module (the CUDA C and each step's launch).
    pub fn module(&self) -> &CudaModule {
        &self.module
    }

    /// What a run does.
    pub fn plan(&self) -> &ExecPlan {
        &self.plan
    }

    /// Runs the program on `inputs` (one per graph input, typed as declared, on this
    /// executable's device); returns the outputs, on the same device, once the device is done.
    pub fn run(&self, inputs: &[Arc<DeviceBuffer>]) -> Result<Vec<DeviceBuffer>, CudaError> {
        let given: Vec<(&TensorType, usize)> = inputs.iter().map(|b| (b.ty(), b.device())).collect();
        check_inputs(&self.program, self.device.ordinal, &given)?;
        let ordinal = self.device.ordinal;
        let guarded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.run_checked(inputs)));
        guarded.unwrap_or_else(|_| {
            Err(CudaError::DriverUnusable {
                message: format!("a driver call panicked while running on cuda:{ordinal}"),
            })
        })
    }

    fn run_checked(&self, inputs: &[Arc<DeviceBuffer>]) -> Result<Vec<DeviceBuffer>, CudaError> {
        let p = &self.program;
        let stream = &self.device.stream;
        let ordinal = self.device.ordinal;
        let mut temps: Vec<Option<Storage>> = (0..p.buffers.len()).map(|_| None).collect();
        let mut ptrs = vec![0u64; p.buffers.len()];
        for (id, decl) in p.buffers.iter().enumerate() {
            if let BufferKind::Input(i) = decl.kind {
                ptrs[id] = inputs[i].storage().ptr(stream);
            }
        }
        let err_word = if self.plan.error_flag {
            Some(
                stream
                    .alloc_zeros::<i32>(1)
                    .map_err(|e| driver_error("cuMemAllocAsync (the error word)", e))?,
            )
        } else {
            None
        };
        let err_ptr = err_word.as_ref().map(|w| w.device_ptr(stream).0);
        // Freeing mid-run is stream ordered only with asynchronous allocation; otherwise a
        // free synchronizes, so temps live to the end of the run.
        let release = self.device.ctx.has_async_alloc();
        for (s, step) in self.steps.iter().enumerate() {
            for &b in &self.plan.allocate_before[s] {
                let ty = &p.buffers[b].ty;
                let st = Storage::alloc(stream, ty.dtype, ty.shape.numel())
                    .map_err(|e| driver_error(format!("cuMemAlloc (b{b}: {ty} on cuda:{ordinal})"), e))?;
                ptrs[b] = st.ptr(stream);
                temps[b] = Some(st);
            }
            match step {
                Exec::Skip => {}
                Exec::Launch { func, kernel } => {
                    let args = kernel_args(&kernel.name, &kernel.params, &ptrs, err_ptr)?;
                    let l = kernel.launch;
                    let cfg = LaunchConfig {
                        grid_dim: (l.grid, 1, 1),
                        block_dim: (l.block, 1, 1),
                        shared_mem_bytes: l.shared_bytes,
                    };
                    let mut launch = stream.launch_builder(func);
                    // `args` lives to the end of this arm, past the launch that reads it.
                    for a in &args {
                        match a {
                            KernelArg::Ptr(p) => launch.arg(p),
                            KernelArg::Size(v) => launch.arg(v),
                        };
                    }
                    // SAFETY: the arguments are, in the order of the kernel's C signature (its
                    // `params`), the device addresses of live allocations of each parameter's
                    // element type and the buffer's full size (and the error word's `int`),
                    // and the size parameters' `long long` values (an `i64` each, the values
                    // the code generator rendered and checked this instance's accesses with);
                    // the code generator checked that every access stays inside its buffer;
                    // the allocations outlive the launch in stream order (temps are freed on
                    // this stream after it, inputs are borrowed for the whole run).
                    unsafe { launch.launch(cfg) }
                        .map_err(|e| driver_error(format!("cuLaunchKernel ({})", kernel.name), e))?;
                }
                Exec::Blas { gemm, a, b, out } => {
                    let blas =
                        self.blas.as_ref().ok_or_else(|| CudaError::Internal("no cuBLAS handle".into()))?;
                    self.device.ctx.bind_to_thread().map_err(|e| driver_error("cuCtxSetCurrent", e))?;
                    let (pa, pb, po) = (ptrs[*a], ptrs[*b], ptrs[*out]);
                    if pa == 0 || pb == 0 || po == 0 {
                        return Err(CudaError::Internal(format!("matmul s{s}: an operand is not allocated")));
                    }
                    // SAFETY: the three addresses are live allocations of the product's dtype
                    // on this device (typed by the program's declarations, which the code
                    // generator checked against the step); `plan` mapped the step's strided
                    // views exactly, so cuBLAS touches only elements the views address; the
                    // buffers outlive the calls in stream order.
                    unsafe { blas.gemm(gemm, pa, pb, po) }?;
                }
            }
            if release {
                for &b in &self.plan.release_after[s] {
                    temps[b] = None;
                    ptrs[b] = 0;
                }
            }
        }
        let mut outs = Vec::with_capacity(p.outputs.len());
        for (k, action) in self.plan.outputs.iter().enumerate() {
            let o = p.outputs[k];
            let ty = p.buffers[o].ty.clone();
            let numel = ty.shape.numel();
            let copy_err = |e| driver_error(format!("cuMemcpyDtoDAsync (output {k})"), e);
            let storage = match *action {
                OutputAction::CopyInput(i) => inputs[i].storage().copy(stream, numel).map_err(copy_err)?,
                OutputAction::Copy(b) => temps[b]
                    .as_ref()
                    .ok_or_else(|| CudaError::Internal(format!("output b{b} was never written")))?
                    .copy(stream, numel)
                    .map_err(copy_err)?,
                OutputAction::Move(b) => temps[b]
                    .take()
                    .ok_or_else(|| CudaError::Internal(format!("output b{b} was never written")))?,
            };
            outs.push(DeviceBuffer::from_storage(ty, ordinal, storage));
        }
        drop(temps);
        let word = match &err_word {
            Some(w) => {
                stream.clone_dtoh(w).map_err(|e| driver_error("cuMemcpyDtoHAsync (the error word)", e))?
            }
            None => vec![0],
        };
        // The run's one synchronization; the error word is read after it.
        stream
            .synchronize()
            .map_err(|e| driver_error(format!("cuStreamSynchronize (running @{})", p.name), e))?;
        let code = word.first().copied().unwrap_or(0);
        if code != 0 {
            return Err(error_for_code(code));
        }
        Ok(outs)
    }
}

/// The module of `source` for `arch` on `dev`, compiled (through the PTX disk cache) and loaded
/// on first use.
fn load_module(
    dev: &Device,
    nvrtc: &Nvrtc,
    source: &str,
    arch: Arch,
) -> Result<Arc<cudarc::driver::CudaModule>, CudaError> {
    let key = (dev.ordinal, CacheKey::new(source, arch.compute(), &nvrtc::options(arch), nvrtc.version()));
    if let Some(m) =
        MODULES.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert_with(HashMap::new).get(&key)
    {
        return Ok(m.clone());
    }
    // Compiled and loaded outside the lock: another thread compiling the same source only
    // costs a duplicate compile, and the first module stored wins.
    let ptx = nvrtc.compile_cached(source, arch)?;
    if ptx.contains('\0') {
        return Err(CudaError::Internal("NVRTC's PTX contains a NUL byte".into()));
    }
    let loaded = dev
        .ctx
        .load_module(cudarc::nvrtc::Ptx::from_src(ptx))
        .map_err(|e| driver_error(format!("cuModuleLoadData ({arch} PTX on cuda:{})", dev.ordinal), e))?;
    let mut cache = MODULES.lock().unwrap_or_else(|p| p.into_inner());
    Ok(cache.get_or_insert_with(HashMap::new).entry(key).or_insert(loaded).clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tenjit_ir::kernel::lower::lower;
    use tenjit_ir::{BinaryOp, Graph, Op, ReduceOp, Shape, UnaryOp};

    fn ty(d: DType, s: &[usize]) -> TensorType {
        TensorType::new(d, Shape::new(s))
    }

    fn plan_of(g: &Graph, cublas: bool) -> (Program, CudaModule, ExecPlan) {
        let p = lower(g);
        let m = codegen::render_program(&p).unwrap_or_else(|e| panic!("{e}\n{p}"));
        let plan = ExecPlan::new(&p, &m, cublas).unwrap_or_else(|e| panic!("{e}\n{p}"));
        (p, m, plan)
    }

    #[test]
    fn a_float_matmul_goes_to_cublas_and_an_integer_one_to_the_kernel() {
        for (d, cublas, want_blas) in [
            (DType::F32, true, true),
            (DType::F64, true, true),
            (DType::F32, false, false),
            (DType::I64, true, false),
        ] {
            let mut g = Graph::new("mm");
            let a = g.add_input("a", ty(d, &[3, 4]));
            let b = g.add_input("b", ty(d, &[4, 5]));
            let y = g.add(Op::Matmul, &[a, b]).unwrap();
            g.set_outputs(vec![y]);
            let (p, _, plan) = plan_of(&g, cublas);
            let blas = plan.steps.iter().any(|s| matches!(s, StepPlan::Blas { .. }));
            assert_eq!(blas, want_blas, "{d} cublas={cublas}\n{plan}\n{p}");
            if let Some(StepPlan::Blas { gemm, .. }) =
                plan.steps.iter().find(|s| matches!(s, StepPlan::Blas { .. }))
            {
                assert_eq!((gemm.m, gemm.n, gemm.k), (5, 3, 4), "{plan}");
            }
        }
    }

    #[test]
    fn temps_are_allocated_before_their_first_step_and_freed_after_their_last() {
        // exp(x) summed over rows then added to the row sums: two kernels or more, with
        // intermediates that are no output.
        let mut g = Graph::new("chain");
        let x = g.add_input("x", ty(DType::F32, &[4, 300]));
        let e = g.add(Op::Unary(UnaryOp::Exp), &[x]).unwrap();
        let s = g.add(Op::Reduce { op: ReduceOp::Sum, axes: [1].into_iter().collect() }, &[e]).unwrap();
        let s2 = g.add(Op::Reduce { op: ReduceOp::Max, axes: [0].into_iter().collect() }, &[s]).unwrap();
        g.set_outputs(vec![s2, s2]);
        let (p, m, plan) = plan_of(&g, true);
        assert_eq!(plan.steps.len(), p.steps.len());
        let mut allocated = std::collections::HashSet::new();
        for (s, step) in m.steps.iter().enumerate() {
            for &b in &plan.allocate_before[s] {
                assert!(allocated.insert(b), "b{b} allocated twice\n{plan}");
            }
            let params = match step {
                CudaStep::Kernel(k) | CudaStep::Matmul { kernel: k, .. } => &k.params[..],
                CudaStep::InGroup { .. } => &[],
            };
            for prm in params {
                if let ParamKind::Buffer { buf, .. } = prm.kind {
                    if p.buffers[buf].kind == BufferKind::Temp {
                        assert!(allocated.contains(&buf), "s{s} uses b{buf} before it is allocated\n{plan}");
                    }
                }
            }
            for &b in &plan.release_after[s] {
                assert!(!p.outputs.contains(&b), "output b{b} freed\n{plan}");
                let later = m.steps[s + 1..].iter().any(|st| {
                    let params = match st {
                        CudaStep::Kernel(k) | CudaStep::Matmul { kernel: k, .. } => &k.params[..],
                        CudaStep::InGroup { .. } => &[],
                    };
                    params.iter().any(|q| q.kind_buf() == Some(b))
                });
                assert!(!later, "b{b} freed after s{s} but used later\n{plan}");
            }
        }
        // The same output twice: copied, then moved.
        let o = p.outputs[0];
        assert_eq!(plan.outputs, vec![OutputAction::Copy(o), OutputAction::Move(o)], "{plan}");
        assert!(!plan.error_flag);
    }

    trait KindBuf {
        fn kind_buf(&self) -> Option<BufId>;
    }

    impl KindBuf for Param {
        fn kind_buf(&self) -> Option<BufId> {
            match self.kind {
                ParamKind::Buffer { buf, .. } => Some(buf),
                ParamKind::Size { .. } | ParamKind::ErrorFlag => None,
            }
        }
    }

    #[test]
    fn an_output_that_is_an_input_is_copied() {
        let mut g = Graph::new("id");
        let x = g.add_input("x", ty(DType::I32, &[3]));
        let y = g.add(Op::Unary(UnaryOp::Neg), &[x]).unwrap();
        g.set_outputs(vec![y]);
        let mut p = lower(&g);
        // The lowering materializes a returned input as a temp; a hand-built program may
        // return the input buffer itself.
        let input = p.buffers.iter().position(|b| b.kind == BufferKind::Input(0)).unwrap();
        p.outputs.insert(0, input);
        let m = codegen::render_program(&p).unwrap();
        let plan = ExecPlan::new(&p, &m, true).unwrap();
        assert_eq!(plan.outputs[0], OutputAction::CopyInput(0), "{plan}");
        assert!(matches!(plan.outputs[1], OutputAction::Move(_)), "{plan}");
    }

    #[test]
    fn integer_division_takes_the_error_word_and_empty_grids_are_skipped() {
        let mut g = Graph::new("div");
        let a = g.add_input("a", ty(DType::I64, &[5]));
        let b = g.add_input("b", ty(DType::I64, &[5]));
        let y = g.add(Op::Binary(BinaryOp::FloorDiv), &[a, b]).unwrap();
        g.set_outputs(vec![y]);
        let (_, m, plan) = plan_of(&g, true);
        assert!(plan.error_flag, "{plan}");
        let k = m.kernels().next().unwrap();
        let args = kernel_args(&k.name, &k.params, &[0x1000, 0x2000, 0x3000], Some(0x4000)).unwrap();
        assert_eq!(args.last(), Some(&KernelArg::Ptr(0x4000)));
        assert_eq!(args.len(), k.params.len());
        // The buffers, then the size (the 5 points), then the error word.
        assert_eq!(args[3], KernelArg::Size(5), "{:?}", k.params);
        let e = kernel_args(&k.name, &k.params, &[0x1000, 0x2000, 0x3000], None).unwrap_err();
        assert!(e.to_string().contains("no error word"), "{e}");

        let mut g = Graph::new("empty");
        let a = g.add_input("a", ty(DType::F32, &[0, 3]));
        let y = g.add(Op::Unary(UnaryOp::Exp), &[a]).unwrap();
        g.set_outputs(vec![y]);
        let (_, _, plan) = plan_of(&g, true);
        assert!(plan.steps.iter().all(|s| *s == StepPlan::Skip), "{plan}");
        assert!(matches!(plan.outputs[0], OutputAction::Move(_)), "{plan}");
    }

    #[test]
    fn kernel_arguments_follow_the_parameter_order() {
        let params = vec![
            Param {
                name: "b2".into(),
                kind: ParamKind::Buffer { buf: 2, dtype: DType::F32, access: codegen::Access::Read },
            },
            Param {
                name: "b0".into(),
                kind: ParamKind::Buffer { buf: 0, dtype: DType::F32, access: codegen::Access::Write },
            },
            Param { name: "n0".into(), kind: ParamKind::Size { value: 17 } },
            Param { name: "st0".into(), kind: ParamKind::Size { value: -3 } },
            Param { name: "err".into(), kind: ParamKind::ErrorFlag },
        ];
        use KernelArg::{Ptr, Size};
        assert_eq!(
            kernel_args("k", &params, &[10, 20, 30], Some(99)).unwrap(),
            vec![Ptr(30), Ptr(10), Size(17), Size(-3), Ptr(99)]
        );
        let e = kernel_args("k0", &params, &[10, 20, 0], Some(99)).unwrap_err();
        assert_eq!(e.to_string(), "CUDA runtime: kernel k0: buffer b2 is not allocated");
        assert!(kernel_args("k0", &params, &[10], Some(99)).is_err());
    }

    #[test]
    fn inputs_are_checked_by_type_and_device() {
        let mut g = Graph::new("add");
        let a = g.add_input("a", ty(DType::F32, &[2, 3]));
        let b = g.add_input("b", ty(DType::F32, &[2, 3]));
        let y = g.add(Op::Binary(BinaryOp::Add), &[a, b]).unwrap();
        g.set_outputs(vec![y]);
        let p = lower(&g);
        let good = ty(DType::F32, &[2, 3]);
        let bad = ty(DType::F64, &[2, 3]);
        assert_eq!(check_inputs(&p, 0, &[(&good, 0), (&good, 0)]), Ok(()));
        let e = check_inputs(&p, 0, &[(&good, 0), (&bad, 0)]).unwrap_err();
        assert_eq!(e.to_string(), "input 1 is f64[2,3] but the program was compiled for f32[2,3]");
        let e = check_inputs(&p, 0, &[(&good, 0)]).unwrap_err();
        assert_eq!(e.to_string(), "input 1 is missing (1 inputs given)");
        let e = check_inputs(&p, 0, &[(&good, 0), (&good, 1)]).unwrap_err();
        assert_eq!(e.to_string(), "input 1 is on cuda:1 but the program was compiled for cuda:0");
    }

    #[test]
    fn error_words_become_the_cpu_messages() {
        let code = ErrorCode::of_binary(BinaryOp::FloorDiv).0;
        assert_eq!(error_for_code(code).to_string(), "floor_div: integer division by zero");
        assert_eq!(
            error_for_code(codegen::GATHER_INDEX_CODE).to_string(),
            "gather: an index is out of range for its axis"
        );
        assert_eq!(error_for_code(1), CudaError::UnknownErrorCode(1));
    }

    #[test]
    fn a_module_rendered_for_another_program_is_an_error_not_a_panic() {
        let mut g = Graph::new("neg");
        let x = g.add_input("x", ty(DType::F32, &[3]));
        let y = g.add(Op::Unary(UnaryOp::Neg), &[x]).unwrap();
        g.set_outputs(vec![y]);
        let p = lower(&g);
        let mut m = codegen::render_program(&p).unwrap();
        m.steps.clear();
        assert!(matches!(ExecPlan::new(&p, &m, true), Err(CudaError::Internal(_))));
    }
}
