//! The CUDA code generator without a GPU: snapshots of the CUDA C of the tutorial's kernels,
//! row softmax and a Linear+ReLU layer; and every kernel of the op × dtype corpus (and of
//! random graphs) rendered, compiled by NVRTC to PTX for `compute_80` and `compute_90`, and
//! assembled by `ptxas` for `sm_80` and `sm_90`.
//!
//! NVRTC and ptxas come from `scripts/setup-cuda-tools.sh`; without them these tests fail
//! with a message saying to run it.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use tenjit::backend::cuda::codegen::{self, Access, CudaModule, CudaStep, ParamKind, RenderedKernel};
use tenjit::backend::cuda::nvrtc::{self, Arch, Nvrtc, NvrtcError};
use tenjit::ir::kernel::lower::lower;
use tenjit::ir::kernel::{Program, Step};
use tenjit::ir::{ArgOp, BinaryOp, DType, Graph, NodeId, Op, ReduceOp, Shape, TensorType, UnaryOp};
use tenjit::prelude::*;

// ---- tools ---------------------------------------------------------------------------------

fn nvrtc() -> &'static Nvrtc {
    Nvrtc::load().unwrap_or_else(|e| panic!("{e}"))
}

fn ptxas() -> PathBuf {
    nvrtc::find_ptxas().unwrap_or_else(|| {
        panic!("ptxas was not found: run `scripts/setup-cuda-tools.sh` (it installs NVRTC and ptxas)")
    })
}

/// Compiles `source` with NVRTC for both architectures and assembles the PTX with ptxas.
fn compile_and_assemble(what: &str, source: &str) {
    let dir = std::env::temp_dir().join(format!("tenjit-cuda-codegen-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for arch in Arch::ALL {
        let ptx = nvrtc().compile(source, arch).unwrap_or_else(|e| panic!("{what}: {e}"));
        static SERIAL: AtomicUsize = AtomicUsize::new(0);
        let file = dir.join(format!("m{}-{}.ptx", SERIAL.fetch_add(1, Ordering::Relaxed), arch.sm()));
        let cubin = file.with_extension("cubin");
        std::fs::write(&file, &ptx).unwrap();
        let out = Command::new(ptxas())
            .arg(format!("-arch={}", arch.sm()))
            .arg(&file)
            .arg("-o")
            .arg(&cubin)
            .output()
            .unwrap_or_else(|e| panic!("running ptxas: {e}"));
        assert!(
            out.status.success(),
            "{what}: ptxas -arch={} rejected the PTX:\n{}\n---- source ----\n{source}",
            arch.sm(),
            String::from_utf8_lossy(&out.stderr)
        );
        let _ = std::fs::remove_file(&file);
        let _ = std::fs::remove_file(&cubin);
    }
}

/// A module's kernels (no prelude) with their launches and parameters, for snapshots.
fn describe(module: &CudaModule) -> String {
    let mut s = String::new();
    for step in &module.steps {
        let kernel: &RenderedKernel = match step {
            CudaStep::Kernel(k) => k,
            CudaStep::Matmul { desc, kernel } => {
                s.push_str(&format!(
                    "// cuBLAS: {} batch={:?} m={} k={} n={} a=b{} b=b{} out=b{}\n",
                    desc.dtype, desc.batch, desc.m, desc.k, desc.n, desc.a.buf, desc.b.buf, desc.out
                ));
                kernel
            }
            CudaStep::InGroup { first } => {
                s.push_str(&format!("// in the group kernel of step {first}\n\n"));
                continue;
            }
        };
        let params: Vec<String> = kernel
            .params
            .iter()
            .map(|p| match p.kind {
                ParamKind::Buffer { dtype, access, .. } => {
                    let a = match access {
                        Access::Read => "read",
                        Access::Write => "write",
                        Access::ReadWrite => "read-write",
                    };
                    format!("{} {dtype} {a}", p.name)
                }
                ParamKind::Size { value } => format!("{}={value}", p.name),
                ParamKind::ErrorFlag => format!("{} error flag", p.name),
            })
            .collect();
        let l = kernel.launch;
        s.push_str(&format!(
            "// launch {}: grid={} block={} shared={}; params: {}\n{}\n",
            kernel.name,
            l.grid,
            l.block,
            l.shared_bytes,
            params.join(", "),
            kernel.source
        ));
    }
    s
}

fn render(program: &Program) -> CudaModule {
    codegen::render_program(program).unwrap_or_else(|e| panic!("{e}\n{program}"))
}

// ---- snapshots -----------------------------------------------------------------------------

fn leaf(shape: &[usize]) -> Tensor {
    Tensor::rand(shape.to_vec()).realize().clone()
}

fn snapshot_and_compile(name: &str, stages: &tenjit::Inspect) {
    let module = render(stages.program());
    insta::assert_snapshot!(name, describe(&module));
    compile_and_assemble(name, &module.source);
}

#[test]
fn the_prelude_is_pinned() {
    insta::assert_snapshot!("prelude", codegen::prelude());
}

#[test]
fn row_softmax() {
    let x = leaf(&[4, 8]);
    let e = (&x - x.amax(1, true)).exp();
    let softmax = &e / e.sum_dim(1, true);
    snapshot_and_compile("softmax", &tenjit::inspect(&[&softmax]));
    // A row long enough for one block per row.
    let x = leaf(&[4, 1000]);
    let e = (&x - x.amax(1, true)).exp();
    let softmax = &e / e.sum_dim(1, true);
    snapshot_and_compile("softmax_long_rows", &tenjit::inspect(&[&softmax]));
}

#[test]
fn linear_relu() {
    let x = leaf(&[8, 16]);
    let w = leaf(&[16, 4]);
    let b = leaf(&[4]);
    let y = (x.matmul(&w) + &b).relu();
    snapshot_and_compile("linear_relu", &tenjit::inspect(&[&y]));
}

#[test]
fn tutorial_graphs() {
    let a = tensor!([1.0, 2.0, 3.0]);
    let b = tensor!([4.0, 5.0, 6.0]);
    let w = tensor!([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]]);
    let x = tensor!([[1., 2.], [3., 4.]]);
    snapshot_and_compile("tutorial_elementwise", &tenjit::inspect(&[&((&a * &b + 1.0).sqrt())]));
    snapshot_and_compile("tutorial_matvec", &tenjit::inspect(&[&w.matmul(&a)]));
    snapshot_and_compile(
        "tutorial_sums",
        &tenjit::inspect(&[&x.sum(), &x.sum_dim(0, false), &x.sum_dim(1, false)]),
    );
    snapshot_and_compile("tutorial_mean_std", &tenjit::inspect(&[&x.mean(), &x.std()]));
    let t = Tensor::arange(10);
    snapshot_and_compile("tutorial_argmax", &tenjit::inspect(&[&t.reshape([2, 5]).argmax_dim(1, false)]));
    // One block per row, and max and argmax from one kernel.
    let x = leaf(&[3, 100]);
    let (m, i) = x.max_dim(1, false);
    snapshot_and_compile("max_argmax_long_rows", &tenjit::inspect(&[&m, &i]));
}

/// Dropout on a matrix product as realization compiles it: the seed and the offset are
/// runtime inputs (`%s0`, `%s1`), the draw is inside the one elementwise kernel after the GEMM.
#[test]
fn dropout_draws_inside_the_kernel() {
    let text = "graph @dropout(%x: f32[8,16], %w: f32[16,4], %s0: i64[], %s1: i64[]) {
  %0 = matmul %x, %w : f32[8,4]
  %1 = rand %s0, %s1 : f32[8,4]
  %2 = const 0.25 : f32[8,4]
  %3 = ge %1, %2 : bool[8,4]
  %4 = cast %3 : f32[8,4]
  %5 = mul %0, %4 : f32[8,4]
  %6 = const 1.3333333 : f32[8,4]
  %7 = mul %5, %6 : f32[8,4]
  return %7
}
";
    let g = tenjit::ir::text::parse(text).unwrap_or_else(|e| panic!("{e}"));
    let program = lower(&g);
    let module = render(&program);
    insta::assert_snapshot!("dropout_matmul", describe(&module));
    compile_and_assemble("dropout_matmul", &module.source);
}

// ---- the op x dtype corpus -----------------------------------------------------------------

#[path = "common/cuda_corpus.rs"]
mod cuda_corpus;
use cuda_corpus::corpus;

/// The prelude with the 16-bit float helpers, which the corpus's f16 and bf16 kernels call.
fn full_prelude() -> String {
    codegen::prelude() + codegen::half_prelude()
}

/// Renders `programs` into modules of about `batch` kernels each (kernels renamed so names
/// stay unique), compiles and assembles every module.
fn compile_programs(what: &str, programs: Vec<(String, Program)>, batch: usize) -> usize {
    let mut count = 0;
    let mut source = full_prelude();
    let mut names = Vec::new();
    let mut kernels = 0;
    let total = programs.len();
    for (i, (name, mut p)) in programs.into_iter().enumerate() {
        p.name = format!("p{i}");
        for step in &mut p.steps {
            match step {
                Step::Kernel(k) => k.name = format!("p{i}_{}", k.name),
                Step::Matmul(_) | Step::Op(_) | Step::Loop(_) => {}
            }
        }
        let module = codegen::render_program(&p).unwrap_or_else(|e| panic!("{name}: {e}\n{p}"));
        for k in module.kernels() {
            source.push('\n');
            source.push_str(&k.source);
            kernels += 1;
            count += 1;
        }
        names.push(name);
        if kernels >= batch || i + 1 == total {
            // TENJIT_CUDA_CODEGEN_DUMP=dir keeps each batch's source for reading.
            if let Some(dir) = std::env::var_os("TENJIT_CUDA_CODEGEN_DUMP") {
                let _ = std::fs::create_dir_all(&dir);
                let _ = std::fs::write(PathBuf::from(dir).join(format!("{what}-{i}.cu")), &source);
            }
            compile_and_assemble(&format!("{what} [{}]", names.join(", ")), &source);
            source = full_prelude();
            names.clear();
            kernels = 0;
        }
    }
    count
}

#[test]
fn every_corpus_kernel_compiles_and_assembles() {
    let programs: Vec<(String, Program)> = corpus(70).into_iter().map(|(n, g)| (n, lower(&g))).collect();
    let n = compile_programs("corpus", programs, 200);
    assert!(n > 300, "only {n} kernels");
}

// ---- random graphs -------------------------------------------------------------------------

#[path = "common/rng.rs"]
mod rng;
use rng::Rng;

/// A random graph of elementwise, broadcast, movement and reduction ops over one dtype.
fn random_graph(r: &mut Rng) -> Graph {
    let dtype = [DType::F32, DType::F64, DType::I32, DType::I64][r.below(4)];
    let rank = 1 + r.below(3);
    let shape: Vec<usize> = (0..rank).map(|_| 1 + r.below(40)).collect();
    let mut g = Graph::new("rand");
    let mut pool: Vec<NodeId> =
        (0..2).map(|i| g.add_input(format!("x{i}"), TensorType::new(dtype, Shape::new(&shape)))).collect();
    for _ in 0..6 + r.below(8) {
        let a = pool[r.below(pool.len())];
        let b = pool[r.below(pool.len())];
        let ta = g.ty(a).clone();
        let op = match r.below(7) {
            0 | 1 => Op::Binary(BinaryOp::ALL[r.below(BinaryOp::ALL.len())]),
            2 => Op::Unary(UnaryOp::ALL[r.below(UnaryOp::ALL.len())]),
            3 => Op::Reduce {
                op: ReduceOp::ALL[r.below(4)],
                axes: [r.below(ta.shape.rank().max(1))].into_iter().collect(),
            },
            4 => Op::Permute { perm: (0..ta.shape.rank()).rev().collect() },
            5 => Op::Cast { dtype: DType::ALL[r.below(5)] },
            _ => Op::ArgReduce { op: ArgOp::ALL[r.below(2)], axis: r.below(ta.shape.rank().max(1)) },
        };
        let args: Vec<NodeId> = match op.arity() {
            Some(2) => vec![a, b],
            _ => vec![a],
        };
        if let Ok(n) = g.add(op, &args) {
            pool.push(n);
        }
    }
    let last = *pool.last().unwrap_or(&pool[0]);
    g.set_outputs(vec![last]);
    g
}

#[test]
fn random_graphs_compile_and_assemble() {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let programs: Vec<(String, Program)> =
        (0..60).map(|i| (format!("random graph {i}"), lower(&random_graph(&mut r)))).collect();
    compile_programs("random", programs, 200);
}

// ---- failures ------------------------------------------------------------------------------

#[test]
fn a_compile_error_shows_the_log_and_the_source() {
    let err =
        nvrtc().compile("extern \"C\" __global__ void broken() { undefined_name; }", Arch::Sm90).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, NvrtcError::Compile { .. }), "{text}");
    assert!(text.contains("undefined_name") && text.contains("identifier"), "{text}");
    assert!(text.contains("    1 | extern \"C\" __global__ void broken()"), "{text}");
}

#[test]
fn nvrtc_comes_from_the_tools_directory_and_the_cache_is_used() {
    let n = nvrtc();
    assert!(n.version() >= (12, 0), "{:?}", n.version());
    let lib = n.library().unwrap_or_else(|| panic!("cudarc uses a system NVRTC, not the tools directory's"));
    assert!(lib.ends_with("nvidia/cuda_nvrtc/lib/libnvrtc.so.12"), "{}", lib.display());
    let src = "extern \"C\" __global__ void cached(float* x) { x[threadIdx.x] = 1.0f; }";
    let a = n.compile_cached(src, Arch::Sm80).unwrap();
    let b = n.compile_cached(src, Arch::Sm80).unwrap();
    assert_eq!(a, b);
    assert!(a.contains(".entry cached"), "{a}");
}

/// With no tools directory and no system NVRTC, loading fails with a message naming the
/// setup script. Runs in a child process (this process has NVRTC loaded already).
#[test]
fn without_nvrtc_the_error_says_to_run_the_setup_script() {
    if std::env::var_os("TENJIT_TEST_NVRTC_ABSENT").is_some() {
        match Nvrtc::load() {
            Err(e @ NvrtcError::NotFound { .. }) => {
                assert!(e.to_string().contains("scripts/setup-cuda-tools.sh"), "{e}");
                println!("NOT-FOUND-OK");
            }
            // A machine with a system NVRTC finds that one.
            Ok(n) => {
                assert!(n.library().is_none());
                println!("SYSTEM-NVRTC");
            }
            Err(e) => panic!("{e}"),
        }
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "without_nvrtc_the_error_says_to_run_the_setup_script", "--nocapture"])
        .env("TENJIT_TEST_NVRTC_ABSENT", "1")
        .env("TENJIT_CUDA_TOOLS", "/nonexistent/tenjit-cuda-tools")
        .env("HOME", "/nonexistent/home")
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("1 passed"), "{stdout}");
    assert!(stdout.contains("NOT-FOUND-OK") || stdout.contains("SYSTEM-NVRTC"), "{stdout}");
}

#[test]
fn malformed_steps_are_errors_not_panics() {
    let x = leaf(&[4, 8]);
    let stages = tenjit::inspect(&[&x.exp().sum_dim(1, false)]);
    let mut p = stages.program().clone();
    let Some(Step::Kernel(k)) = p.steps.iter_mut().find(|s| matches!(s, Step::Kernel(_))) else {
        panic!("no kernel:\n{}", stages.kernel_ir())
    };
    // A load past the end of its buffer.
    let load = k.body.iter_mut().find_map(|i| match &mut i.inst {
        tenjit::ir::kernel::Inst::Load { index, .. } => Some(index),
        _ => None,
    });
    load.unwrap().offset = 1;
    let err = codegen::render_program(&p).unwrap_err();
    assert!(matches!(err, codegen::CodegenError::Invalid { .. }), "{err}");
    assert!(err.to_string().contains("leave a buffer of 32 elements"), "{err}");
    // A store into a buffer that does not exist.
    let mut p = stages.program().clone();
    for s in &mut p.steps {
        if let Step::Kernel(k) = s {
            k.stores[0].buf = 99;
        }
    }
    assert!(codegen::render_program(&p).is_err());
}

#[test]
fn error_codes_name_the_op_table_messages() {
    use codegen::{DeviceFailure, ErrorCode};
    let code = ErrorCode::of_binary(BinaryOp::FloorDiv);
    assert_eq!(
        code.describe(),
        Some(DeviceFailure::Arithmetic { op: "floor_div", message: "integer division by zero" })
    );
    assert_eq!(
        ErrorCode::of_binary(BinaryOp::Pow).describe().map(|f| f.to_string()).as_deref(),
        Some("pow: integers to negative integer powers are not allowed")
    );
    assert_eq!(
        ErrorCode(codegen::GATHER_INDEX_CODE).describe(),
        Some(DeviceFailure::IndexOutOfRange { op: "gather" })
    );
    assert_eq!(ErrorCode(0).describe(), None);
    assert_eq!(ErrorCode(1).describe(), None, "add cannot fail");
    // The prelude's macros carry the same codes.
    assert!(codegen::prelude().contains(&format!("#define TJ_ERR_FLOOR_DIV {}", code.0)));
}

// ---- the prelude's semantics, checked on the host --------------------------------------------

/// Definitions that let the prelude compile as host C++ (the CUDA intrinsics it uses, with
/// their round-to-nearest meaning; `-ffp-contract=off` keeps products unfused).
const HOST_SHIM: &str = r#"
#include <cmath>
#include <cstdio>
#define __device__
#define __forceinline__ inline
static inline unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((unsigned long long)a * b) >> 32); }
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline double __dmul_rn(double a, double b) { return a * b; }
static inline double __ddiv_rn(double a, double b) { return a / b; }
static inline int atomicCAS(int* p, int cmp, int v) { int old = *p; if (old == cmp) *p = v; return old; }
static inline float __int_as_float(int x) { float f; memcpy(&f, &x, 4); return f; }
static inline int __float_as_int(float f) { int x; memcpy(&x, &f, 4); return x; }
static inline double __longlong_as_double(long long x) { double d; memcpy(&d, &x, 8); return d; }
static inline long long __double_as_longlong(double d) { long long x; memcpy(&x, &d, 8); return x; }
static unsigned long long bits(double x) { unsigned long long b; memcpy(&b, &x, 8); return b; }
static unsigned long long bits(float x) { unsigned b; memcpy(&b, &x, 4); return b; }
static unsigned long long bits(int x) { return (unsigned long long)(unsigned)x; }
static unsigned long long bits(long long x) { return (unsigned long long)x; }
"#;

/// The prelude's helpers compiled for the host with `c++`, run on cases whose expected
/// results come from the op table and `tenjit_ir::random`: Philox draws, integer `//`, `%`
/// and `**` (wrapping, and the error codes of zero divisors and negative exponents), float
/// `//` and `%`, and NaN-propagating `maximum`/`minimum`.
#[test]
fn prelude_helpers_match_the_op_table_on_the_host() {
    use tenjit::ir::random;
    let mut calls = Vec::new();
    let mut want = Vec::new();
    let fbits = |x: f64, d: DType| if d == DType::F32 { (x as f32).to_bits() as u64 } else { x.to_bits() };
    for (seed, counter) in [(0u64, 0u64), (7, 1), (0x0123_4567_89ab_cdef, u64::MAX - 2), (u64::MAX, 1 << 40)]
    {
        calls.push(format!("bits(tj_rand_f32({seed}ull, {counter}ull))"));
        want.push(format!("{:x} 0", random::uniform_f32(seed, counter).to_bits()));
        calls.push(format!("bits(tj_rand_f64({seed}ull, {counter}ull))"));
        want.push(format!("{:x} 0", random::uniform_f64(seed, counter).to_bits()));
    }
    let ints = [i64::MIN, i32::MIN as i64, -7, -2, -1, 0, 1, 2, 3, 7, 13, i32::MAX as i64, i64::MAX];
    for op in [BinaryOp::FloorDiv, BinaryOp::Rem, BinaryOp::Pow] {
        let spec = op.spec();
        let code = codegen::ErrorCode::of_binary(op).0;
        for d in [DType::I32, DType::I64] {
            for &a in &ints {
                for &b in &ints {
                    let (a, b) = if d == DType::I32 { (a as i32 as i64, b as i32 as i64) } else { (a, b) };
                    let (ty, lit) = if d == DType::I32 { ("int", "") } else { ("long long", "LL") };
                    let lit = |v: i64| format!("({ty})({v}{lit})");
                    let lit = |v: i64| {
                        if v == i64::MIN {
                            format!("({ty})(-9223372036854775807LL - 1)")
                        } else {
                            lit(v)
                        }
                    };
                    calls.push(format!("bits(tj_{}({}, {}, &err))", spec.name, lit(a), lit(b)));
                    want.push(match (spec.int)(a, b) {
                        Ok(v) => {
                            format!("{:x} 0", if d == DType::I32 { v as i32 as u32 as u64 } else { v as u64 })
                        }
                        Err(_) => format!("{:x} {code}", 0u64),
                    });
                }
            }
        }
    }
    let floats = [
        0.0,
        -0.0,
        1.0,
        -1.0,
        0.5,
        -2.5,
        3.0,
        7.25,
        -6.0,
        1e-3,
        1e300,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
    ];
    for op in [BinaryOp::FloorDiv, BinaryOp::Rem, BinaryOp::Maximum, BinaryOp::Minimum] {
        let spec = op.spec();
        for d in [DType::F32, DType::F64] {
            for &a in &floats {
                for &b in &floats {
                    let ty = if d == DType::F32 { "float" } else { "double" };
                    let lit = |v: f64| {
                        if v.is_nan() {
                            "NAN".to_string()
                        } else if v.is_infinite() {
                            format!("{}INFINITY", if v < 0.0 { "-" } else { "" })
                        } else {
                            format!("{v:?}")
                        }
                    };
                    calls.push(format!("bits(tj_{}(({ty}){}, ({ty}){}))", spec.name, lit(a), lit(b)));
                    let (a, b) = if d == DType::F32 { (a as f32 as f64, b as f32 as f64) } else { (a, b) };
                    let v = (spec.float)(a, b);
                    // Every NaN is the same NaN here (the op table does not define payloads).
                    want.push(if v.is_nan() { "nan 0".to_string() } else { format!("{:x} 0", fbits(v, d)) });
                }
            }
        }
    }
    let mut program = String::from(HOST_SHIM);
    program = program.replace("#include <cstdio>", "#include <cstdio>\n#include <cstring>");
    program.push_str(&codegen::prelude());
    program.push_str("int main() {\n    int err;\n");
    for c in &calls {
        let nan_aware = c.contains("tj_floor_div((")
            || c.contains("tj_rem((")
            || c.contains("tj_maximum((")
            || c.contains("tj_minimum((");
        program.push_str("    err = 0;\n");
        if nan_aware {
            let inner = &c["bits(".len()..c.len() - 1];
            program.push_str(&format!(
                "    {{ auto v = {inner}; if (v != v) printf(\"nan %d\\n\", err); else printf(\"%llx %d\\n\", bits(v), err); }}\n"
            ));
        } else {
            // The call runs before `err` is read.
            program.push_str(&format!("    {{ auto b = {c}; printf(\"%llx %d\\n\", b, err); }}\n"));
        }
    }
    program.push_str("    return 0;\n}\n");
    let exe = host_binary("prelude", &program);
    let out = Command::new(&exe).output().unwrap();
    let got = String::from_utf8_lossy(&out.stdout);
    let got: Vec<&str> = got.lines().collect();
    assert_eq!(got.len(), want.len());
    let bad: Vec<String> = calls
        .iter()
        .zip(got.iter().zip(&want))
        .filter(|(_, (g, w))| g != w)
        .map(|(c, (g, w))| format!("{c}: prelude {g}, op table {w}"))
        .collect();
    assert!(
        bad.is_empty(),
        "{} of {} cases differ:\n{}",
        bad.len(),
        calls.len(),
        bad[..bad.len().min(20)].join("\n")
    );
    let _ = std::fs::remove_dir_all(exe.parent().unwrap());
}

/// A bf16 layer (matrix product, scale, `tanh`, a row sum) and an f16 softmax: 16-bit buffers,
/// `f32` arithmetic, rounding casts and stores, and the matmul kernel (cuBLAS takes `f32` and
/// `f64` only); with the half prelude, compiled and assembled.
#[test]
fn sixteen_bit_kernels() {
    let x = leaf(&[4, 8]).bfloat16();
    let w = leaf(&[8, 3]).bfloat16();
    let y = (x.matmul(&w) * 0.5).tanh();
    let s = y.sum_dim(1, true);
    let module = render(tenjit::inspect(&[&y, &s]).program());
    assert!(module.source.contains("typedef unsigned short tj_bf16;"));
    insta::assert_snapshot!("bf16_layer", describe(&module));
    compile_and_assemble("bf16_layer", &module.source);
    let h = leaf(&[4, 8]).half();
    let e = (&h - h.amax(1, true)).exp();
    let softmax = &e / e.sum_dim(1, true);
    snapshot_and_compile("f16_softmax", &tenjit::inspect(&[&softmax]));
    // A module without 16-bit buffers has no half prelude: f32 modules are unchanged.
    let plain = render(tenjit::inspect(&[&leaf(&[3]).exp()]).program());
    assert!(!plain.source.contains("tj_bf16"));
}

#[test]
fn the_half_prelude_is_pinned() {
    insta::assert_snapshot!("half_prelude", codegen::half_prelude());
}

/// The half prelude's conversions compiled for the host with `c++` give the `half` crate's
/// bits (the interpreter's): `f16 → f32` for all 65536 patterns, `f32 → f16` and `f32 → bf16`
/// for every 4093rd `f32` pattern (all exponents, both signs, NaNs and subnormals among them)
/// and for the boundaries of each rounding.
#[test]
fn half_prelude_conversions_match_the_half_crate() {
    use tenjit::half::{bf16, f16};
    let mut f32s: Vec<u32> = (0..=u32::MAX).step_by(4093).collect();
    for base in [0x3380_0000u32, 0x3300_0000, 0x3880_0000, 0x477f_e000, 0x477f_f000, 0x3f80_0000, 0x7f7f_ffff]
    {
        for d in 0..=0x2000u32 {
            f32s.extend([base.wrapping_add(d), base.wrapping_sub(d), base.wrapping_add(d) | 0x8000_0000]);
        }
    }
    f32s.extend([0x7f80_0000, 0xff80_0000, 0x7f80_0001, 0x7fc0_0000, 0xffc0_1234, 0x0000_0001, 0x8000_0000]);
    let mut program = String::from(HOST_SHIM);
    program = program.replace("#include <cstdio>", "#include <cstdio>\n#include <cstring>");
    program.push_str(&codegen::prelude());
    program.push_str(codegen::half_prelude());
    program.push_str(
        "int main() {\n\
         \x20   for (unsigned h = 0; h < 65536; ++h) { float f = tj_f16_to_f32((tj_f16)h); fwrite(&f, 4, 1, stdout); }\n\
         \x20   unsigned x;\n\
         \x20   while (fread(&x, 4, 1, stdin) == 1) {\n\
         \x20       float f = __int_as_float((int)x);\n\
         \x20       tj_f16 h = tj_f32_to_f16(f); tj_bf16 b = tj_f32_to_bf16(f);\n\
         \x20       fwrite(&h, 2, 1, stdout); fwrite(&b, 2, 1, stdout);\n\
         \x20   }\n\
         \x20   return 0;\n}\n",
    );
    let exe = host_binary("half", &program);
    let input: Vec<u8> = f32s.iter().flat_map(|x| x.to_le_bytes()).collect();
    let mut child = Command::new(&exe)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &input));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert_eq!(out.stdout.len(), 65536 * 4 + f32s.len() * 4);
    let (widened, narrowed) = out.stdout.split_at(65536 * 4);
    for (h, w) in widened.chunks(4).enumerate() {
        let got = u32::from_le_bytes(w.try_into().unwrap());
        let want = f16::from_bits(h as u16).to_f32();
        assert!(got == want.to_bits() || (want.is_nan() && f32::from_bits(got).is_nan()), "f16 {h:#06x}");
    }
    for (&x, pair) in f32s.iter().zip(narrowed.chunks(4)) {
        let f = f32::from_bits(x);
        let (h, b) = (u16::from_le_bytes([pair[0], pair[1]]), u16::from_le_bytes([pair[2], pair[3]]));
        assert_eq!(h, f16::from_f32(f).to_bits(), "f32 {x:#010x} to f16");
        assert_eq!(b, bf16::from_f32(f).to_bits(), "f32 {x:#010x} to bf16");
    }
    let _ = std::fs::remove_dir_all(exe.parent().unwrap());
}

/// Compiles the C++ `program` for the host (no FMA contraction, as the emulation) into a fresh
/// temporary directory named after `name`, and returns the executable's path.
fn host_binary(name: &str, program: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tenjit-{name}-host-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (src, exe) = (dir.join(format!("{name}.cpp")), dir.join(name));
    std::fs::write(&src, program).unwrap();
    let cc = Command::new("c++")
        .args(["-std=c++17", "-O1", "-ffp-contract=off", "-o"])
        .arg(&exe)
        .arg(&src)
        .output()
        .unwrap_or_else(|e| panic!("running the host C++ compiler `c++`: {e}"));
    assert!(cc.status.success(), "c++ rejected the {name} program:\n{}", String::from_utf8_lossy(&cc.stderr));
    exe
}
