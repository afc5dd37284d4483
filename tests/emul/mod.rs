//! The Rust half of the CUDA emulation (`tests/emul/simt.h` is the other): each case's graph
//! goes through the compiler's passes and lowering, `codegen::render_program` renders it with
//! the real prelude, and every case's kernels go into one C++ translation unit, compiled once
//! by the host `g++` with the SIMT header and the driver (`runner.h`); a kernel text rendered
//! for several cases (the same structure at other sizes: the sizes are parameters) is
//! compiled once, and its one function runs every one of them. A run writes a job file (each
//! case's buffers, the launches of its [`ExecPlan`] with the rendered grid, block,
//! shared-memory size, parameter order and size values, its outputs), runs the driver with a
//! seed for the thread and block orders, and compares what comes back with the interpreter's
//! results.

pub mod cases;
pub mod group_cases;
pub mod sized_cases;
pub mod sized_graphs;

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use tenjit::backend::cuda::codegen::{self, Access, CudaModule, ParamKind};
use tenjit::backend::cuda::exec::{ExecPlan, StepPlan};
use tenjit::ir::kernel::{BufferKind, Program, Step};
use tenjit::ir::ops::Accuracy;
use tenjit::ir::{interp, Buffer, DType, Data, Graph, Op, Scalar};

/// How closely floats must agree with the interpreter.
#[derive(Clone, Copy, Debug)]
pub enum Tol {
    /// Bit for bit, the sign of a zero included (NaN payloads aside).
    Exact,
    /// Relative error at most this (absolute below 1); zeros still agree in sign.
    Rel(f64),
}

/// One program to run: a graph, its inputs and the tolerance of its float results.
pub struct Case {
    /// Which test runs it.
    pub group: &'static str,
    /// What it is, for messages.
    pub name: String,
    /// The graph (compiled as the runtime compiles it).
    pub graph: Graph,
    /// Its inputs.
    pub inputs: Vec<Buffer>,
    /// How its floats are compared.
    pub tol: Tol,
    /// Whether the kernels may run where the interpreter fails with an arithmetic error (fused
    /// code computes only the elements a slice keeps, so a division by zero in an element it
    /// drops is the interpreter's alone: the documented difference).
    pub dropped_errors: bool,
    /// The program to run, when it is not the graph compiled (an instance of a symbolic
    /// program, whose graph here is the bound one).
    pub program: Option<Program>,
}

impl Case {
    /// A case whose tolerance follows the graph's ops: exact unless some op is only accurate
    /// to a few ulp, or a float sum, product, matrix product or convolution reassociates.
    pub fn new(group: &'static str, name: impl Into<String>, graph: Graph, inputs: Vec<Buffer>) -> Case {
        let mut exact = true;
        let mut f32_graph = false;
        let mut half_graph = false;
        for n in graph.nodes() {
            let float_in = graph.args(n).iter().any(|&a| graph.ty(a).dtype.is_float());
            f32_graph |= graph.ty(n).dtype == DType::F32;
            half_graph |= graph.ty(n).dtype.is_half();
            exact &= match graph.op(n) {
                Op::Unary(u) => u.spec().accuracy == Accuracy::Exact,
                Op::Binary(b) => b.spec().accuracy == Accuracy::Exact,
                Op::Reduce { op, .. } => op.identity().is_none() || !float_in,
                Op::Matmul | Op::Conv(_) => !float_in,
                _ => true,
            };
        }
        let tol = match (exact, f32_graph) {
            // A kernel keeps 16-bit values in `f32` where the interpreter rounds every node
            // (`kernel::half`): a few units in the last place of bf16 (2^-8).
            _ if half_graph => Tol::Rel(2e-2),
            (true, _) => Tol::Exact,
            (false, true) => Tol::Rel(1e-5),
            (false, false) => Tol::Rel(1e-12),
        };
        Case { group, name: name.into(), graph, inputs, tol, dropped_errors: false, program: None }
    }
}

/// The passes and the lowering, as the runtime runs them.
pub fn compile(graph: &Graph) -> Program {
    let mut g = graph.clone();
    let passes = tenjit::ir::passes::pipeline();
    let refs: Vec<&dyn tenjit::ir::passes::Pass> = passes.iter().map(|p| p.as_ref()).collect();
    tenjit::ir::passes::run_passes(&mut g, &refs, &mut |_, _| {}).unwrap_or_else(|e| panic!("{e}"));
    tenjit::ir::kernel::lower::lower(&g)
}

struct Prepared {
    program: Program,
    module: CudaModule,
    plan: ExecPlan,
    /// The position of each of the module's kernels in the driver's kernel table.
    entries: Vec<usize>,
}

/// Every case, compiled into one driver executable.
pub struct Emulator {
    exe: PathBuf,
    dir: PathBuf,
    cases: Vec<Case>,
    prepared: Vec<Prepared>,
}

fn elem(d: DType) -> (&'static str, usize) {
    match d {
        DType::Bool => ("unsigned char", 1),
        DType::I32 => ("int", 4),
        DType::I64 => ("long long", 8),
        DType::F16 | DType::BF16 => ("unsigned short", 2),
        DType::F32 => ("float", 4),
        DType::F64 => ("double", 8),
    }
}

fn bytes_of(b: &Buffer) -> Vec<u8> {
    match b.data() {
        Data::Bool(v) => v.iter().map(|&x| x as u8).collect(),
        Data::I32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Data::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Data::F16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Data::BF16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Data::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Data::F64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    }
}

fn buffer_of(bytes: &[u8], ty: &tenjit::ir::TensorType) -> Buffer {
    let data = match ty.dtype {
        DType::Bool => Data::Bool(bytes.iter().map(|&b| b != 0).collect()),
        DType::I32 => Data::I32(bytes.chunks(4).map(|c| i32::from_le_bytes(c.try_into().unwrap())).collect()),
        DType::I64 => Data::I64(bytes.chunks(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect()),
        DType::F16 => {
            Data::F16(bytes.chunks(2).map(|c| half::f16::from_le_bytes(c.try_into().unwrap())).collect())
        }
        DType::BF16 => {
            Data::BF16(bytes.chunks(2).map(|c| half::bf16::from_le_bytes(c.try_into().unwrap())).collect())
        }
        DType::F32 => Data::F32(bytes.chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()),
        DType::F64 => Data::F64(bytes.chunks(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect()),
    };
    Buffer::new(ty.shape.clone(), data).unwrap()
}

fn compiler() -> String {
    std::env::var("TENJIT_CXX").unwrap_or_else(|_| "g++".into())
}

impl Emulator {
    /// Compiles every case's program into one driver (g++ once).
    pub fn build(cases: Vec<Case>) -> Emulator {
        let mut tu = header();
        tu.push_str(&codegen::prelude());
        tu.push_str(codegen::half_prelude());
        let mut table = String::from("static const tj_kernel_entry tj_kernels[] = {\n");
        let mut prepared = Vec::with_capacity(cases.len());
        let mut count = 0;
        // The table entry of each kernel text (with its case's name prefix `c{i}_` taken out),
        // so a text rendered for several cases (instances of one structure at other sizes) is
        // compiled once and that one function runs them all.
        let mut by_text: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        for (i, case) in cases.iter().enumerate() {
            let mut program = case.program.clone().unwrap_or_else(|| compile(&case.graph));
            program.name = format!("c{i}");
            for step in &mut program.steps {
                match step {
                    Step::Kernel(k) => k.name = format!("c{i}_{}", k.name),
                    Step::Matmul(_) | Step::Op(_) | Step::Loop(_) => {}
                }
            }
            let module =
                codegen::render_program(&program).unwrap_or_else(|e| panic!("{}: {e}\n{program}", case.name));
            let plan =
                ExecPlan::new(&program, &module, false).unwrap_or_else(|e| panic!("{}: {e}", case.name));
            let mut entries = Vec::new();
            for k in module.kernels() {
                let text = k.source.replace(&format!("c{i}_"), "c@_");
                if let Some(&entry) = by_text.get(&text) {
                    entries.push(entry);
                    continue;
                }
                by_text.insert(text, count);
                entries.push(count);
                writeln!(tu, "\n// case {i}: {}", case.name.replace('\n', " ")).unwrap();
                tu.push_str(&k.source);
                let args: Vec<String> = k
                    .params
                    .iter()
                    .enumerate()
                    .map(|(j, p)| match p.kind {
                        ParamKind::Buffer { dtype, access: Access::Read, .. } => {
                            format!("(const {}*)a[{j}]", elem(dtype).0)
                        }
                        ParamKind::Buffer { dtype, access: Access::Write | Access::ReadWrite, .. } => {
                            format!("({}*)a[{j}]", elem(dtype).0)
                        }
                        ParamKind::Size { .. } => format!("*(const long long*)a[{j}]"),
                        ParamKind::ErrorFlag => format!("(int*)a[{j}]"),
                    })
                    .collect();
                writeln!(tu, "static void tj_call_{count}(void** a) {{ {}({}); }}", k.name, args.join(", "))
                    .unwrap();
                writeln!(table, "    {{\"{}\", tj_call_{count}}},", k.name).unwrap();
                count += 1;
            }
            prepared.push(Prepared { program, module, plan, entries });
        }
        table.push_str("};\n");
        tu.push('\n');
        tu.push_str(&table);
        tu.push_str(&footer());

        let (exe, dir) = compile_driver("kernels", &tu);
        Emulator { exe, dir, cases, prepared }
    }

    /// The cases, in the order they were given.
    pub fn cases(&self) -> &[Case] {
        &self.cases
    }

    /// The driver's kernel table entries that case `i`'s kernels run (one per kernel of its
    /// module, in order): cases whose kernels render one text share their entries.
    pub fn kernel_entries(&self, i: usize) -> &[usize] {
        &self.prepared[i].entries
    }

    /// Runs the cases of `group` with the thread and block orders of `seed`, and returns one
    /// line per disagreement with the interpreter (empty when all agree).
    pub fn check(&self, group: &str, seed: u64) -> Vec<String> {
        let ids: Vec<usize> = (0..self.cases.len()).filter(|&i| self.cases[i].group == group).collect();
        assert!(!ids.is_empty(), "no case in group {group}");
        let got = self.run(group, seed, &ids);
        let mut failures = Vec::new();
        for (&i, got) in ids.iter().zip(got) {
            let case = &self.cases[i];
            let want = interp::eval(&case.graph, &case.inputs);
            let what = format!("{} (seed {seed})", case.name);
            match (got, want) {
                (Ok(got), Ok(want)) => {
                    for (k, (g, w)) in got.iter().zip(&want).enumerate() {
                        if let Some(d) = diff(g, w, case.tol) {
                            failures.push(format!("{what}: output {k}: {d}"));
                        }
                    }
                }
                (Err(code), Err(e)) => {
                    let failure = codegen::ErrorCode(code).describe();
                    let op = match &e {
                        interp::EvalError::Arithmetic { op, .. }
                        | interp::EvalError::IndexOutOfRange { op, .. } => Some(*op),
                        _ => None,
                    };
                    let same = match failure {
                        Some(codegen::DeviceFailure::Arithmetic { op: o, .. })
                        | Some(codegen::DeviceFailure::IndexOutOfRange { op: o }) => Some(o) == op,
                        None => false,
                    };
                    if !same {
                        failures.push(format!("{what}: error word {code} ({failure:?}), interpreter: {e}"));
                    }
                }
                (Ok(_), Err(e)) => {
                    failures.push(format!("{what}: the interpreter failed ({e}), the kernels ran"))
                }
                (Err(code), Ok(_)) => failures.push(format!(
                    "{what}: the kernels stored error word {code} ({:?}), the interpreter ran",
                    codegen::ErrorCode(code).describe()
                )),
            }
        }
        failures
    }

    /// Runs cases `ids`: each one's outputs, or its nonzero error word.
    fn run(&self, group: &str, seed: u64, ids: &[usize]) -> Vec<Result<Vec<Buffer>, i32>> {
        let mut job = Vec::new();
        job.extend((ids.len() as u32).to_le_bytes());
        for &i in ids {
            let (case, p) = (&self.cases[i], &self.prepared[i]);
            job.extend((p.program.buffers.len() as u32).to_le_bytes());
            for decl in &p.program.buffers {
                let bytes = decl.ty.shape.numel() * elem(decl.ty.dtype).1;
                job.extend((bytes as u64).to_le_bytes());
                match decl.kind {
                    BufferKind::Input(k) => {
                        job.push(1);
                        job.extend(bytes_of(&case.inputs[k]));
                    }
                    BufferKind::Temp => job.push(0),
                }
            }
            let kernels: Vec<_> = p.module.kernels().collect();
            let launches: Vec<usize> = p
                .plan
                .steps
                .iter()
                .filter_map(|s| match s {
                    StepPlan::Launch { index } => Some(*index),
                    StepPlan::Skip | StepPlan::InGroup { .. } => None,
                    StepPlan::Blas { .. } => panic!("{}: a cuBLAS step in a plan without cuBLAS", case.name),
                })
                .collect();
            job.extend((launches.len() as u32).to_le_bytes());
            for index in launches {
                let k = kernels[index];
                let l = k.launch;
                for v in [p.entries[index] as u32, l.grid, l.block, l.shared_bytes, k.params.len() as u32] {
                    job.extend(v.to_le_bytes());
                }
                for param in &k.params {
                    match param.kind {
                        ParamKind::Buffer { buf, .. } => job.extend((buf as i32).to_le_bytes()),
                        ParamKind::Size { value } => {
                            job.extend((-2i32).to_le_bytes());
                            job.extend(value.to_le_bytes());
                        }
                        ParamKind::ErrorFlag => job.extend((-1i32).to_le_bytes()),
                    }
                }
            }
            job.extend((p.program.outputs.len() as u32).to_le_bytes());
            for &o in &p.program.outputs {
                let ty = &p.program.buffers[o].ty;
                job.extend((o as u32).to_le_bytes());
                job.extend(((ty.shape.numel() * elem(ty.dtype).1) as u64).to_le_bytes());
            }
        }
        let bytes = run_driver(&self.exe, &self.dir, group, seed, &job).unwrap_or_else(|e| panic!("{e}"));
        let mut at = 0;
        let mut take = |n: usize| {
            let s = &bytes[at..at + n];
            at += n;
            s
        };
        ids.iter()
            .map(|&i| {
                let p = &self.prepared[i];
                let code = i32::from_le_bytes(take(4).try_into().unwrap());
                let outs: Vec<Buffer> = p
                    .program
                    .outputs
                    .iter()
                    .map(|&o| {
                        let ty = &p.program.buffers[o].ty;
                        buffer_of(take(ty.shape.numel() * elem(ty.dtype).1), ty)
                    })
                    .collect();
                if code == 0 {
                    Ok(outs)
                } else {
                    Err(code)
                }
            })
            .collect()
    }
}

/// The start of a driver's translation unit: the SIMT header.
pub fn header() -> String {
    format!("#include \"{}\"\n", Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/emul/simt.h").display())
}

/// The end of a driver's translation unit (after the kernels and `tj_kernels`): the driver.
pub fn footer() -> String {
    format!("#include \"{}\"\n", Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/emul/runner.h").display())
}

/// Compiles the translation unit `tu` with the host C++ compiler into a driver called `name`,
/// in a folder of this run under cargo's scratch space for tests (the source stays there for
/// reading after a failure; folders of runs more than an hour old are removed). Returns the
/// executable and its folder.
pub fn compile_driver(name: &str, tu: &str) -> (PathBuf, PathBuf) {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cuda-emulation");
    if let Ok(entries) = std::fs::read_dir(&root) {
        for e in entries.flatten() {
            let age = e.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok());
            if age.is_some_and(|age| age.as_secs() > 3600) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    let dir = root.join(std::process::id().to_string());
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join(format!("{name}.cpp"));
    std::fs::write(&src, tu).unwrap();
    let exe = dir.join(name);
    let cxx = compiler();
    let out = Command::new(&cxx)
        .args(["-std=c++17", "-O1", "-ffp-contract=off", "-fno-fast-math", "-w", "-o"])
        .arg(&exe)
        .arg(&src)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "running `{cxx}` failed ({e}): the CUDA emulation tests need a host C++ compiler; \
                 install g++ (e.g. `apt-get install g++`) or name one in TENJIT_CXX"
            )
        });
    assert!(
        out.status.success(),
        "{cxx} rejected the emulated kernels ({}):\n{}",
        src.display(),
        String::from_utf8_lossy(&out.stderr).chars().take(8000).collect::<String>()
    );
    (exe, dir)
}

/// Runs driver `exe` on `job` (see `runner.h`) with the thread and block orders of `seed`:
/// the bytes it writes back, or what it said when it failed (an emulation error: a barrier
/// divergence, a deadlock, a bad shuffle mask).
pub fn run_driver(exe: &Path, dir: &Path, tag: &str, seed: u64, job: &[u8]) -> Result<Vec<u8>, String> {
    let job_path = dir.join(format!("{tag}-{seed}.job"));
    let out_path = dir.join(format!("{tag}-{seed}.out"));
    std::fs::File::create(&job_path).unwrap().write_all(job).unwrap();
    let out = Command::new(exe)
        .arg(seed.to_string())
        .arg(&job_path)
        .arg(&out_path)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", exe.display()));
    let _ = std::fs::remove_file(&job_path);
    let bytes = std::fs::read(&out_path);
    let _ = std::fs::remove_file(&out_path);
    if !out.status.success() {
        return Err(format!(
            "the emulation of {tag} (seed {seed}) failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    bytes.map_err(|e| format!("reading the emulation's output: {e}"))
}

/// The first difference between `got` and `want`, if any.
fn diff(got: &Buffer, want: &Buffer, tol: Tol) -> Option<String> {
    if got.ty() != want.ty() {
        return Some(format!("type {} vs {}", got.ty(), want.ty()));
    }
    let mut bad = 0;
    let mut first = None;
    for i in 0..got.numel() {
        let (g, w) = (got.scalar(i), want.scalar(i));
        let ok = match (g, w) {
            (Scalar::Float(a), Scalar::Float(b)) => same_float(a, b, tol),
            _ => g == w,
        };
        if !ok {
            bad += 1;
            first.get_or_insert(format!("element {i}: emulated {g:?}, interpreter {w:?}"));
        }
    }
    first.map(|f| format!("{f} ({bad} of {} differ)", got.numel()))
}

fn same_float(a: f64, b: f64, tol: Tol) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a == 0.0 && b == 0.0 {
        return a.to_bits() == b.to_bits();
    }
    match tol {
        Tol::Exact => a.to_bits() == b.to_bits(),
        Tol::Rel(r) => a == b || (a - b).abs() <= r * a.abs().max(b.abs()).max(1.0),
    }
}
