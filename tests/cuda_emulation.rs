//! The generated CUDA C executed on the CPU: every case's program is compiled as the runtime
//! compiles it, rendered by the CUDA code generator with its real prelude, launch geometry and
//! parameter order, compiled by the host `g++` against a small SIMT emulation
//! (`tests/emul/simt.h`: blocks in a shuffled order, each block's threads as fibers resumed in
//! a shuffled order, barriers, warp shuffles, poisoned shared memory) and run; the results are
//! compared with the interpreter's (the cases are in `tests/emul/cases.rs`). All cases share
//! one translation unit, compiled once per run of this binary. The last test checks the
//! emulation itself with hand-written kernels.
//!
//! Without a host C++ compiler these tests fail with a message saying to install g++.
//! `TENJIT_EMUL_CASES=N` runs every group with N times as many thread orders (seeds), and adds
//! longer rows and a grid-stride reduction.

#[path = "common/cuda_corpus.rs"]
mod cuda_corpus;
mod emul;
#[path = "common/random_graphs.rs"]
mod random_graphs;
#[path = "common/rng.rs"]
mod rng;

use emul::cases::seeds;
use emul::Emulator;
use std::sync::OnceLock;

fn emulator() -> &'static Emulator {
    static E: OnceLock<Emulator> = OnceLock::new();
    E.get_or_init(|| Emulator::build(emul::cases::all()))
}

/// Runs `group` with `base` seeds (times `TENJIT_EMUL_CASES`) and fails with every difference.
fn check(group: &str, base: u64) {
    let mut failures = Vec::new();
    for seed in 1..=base * seeds() {
        failures.extend(emulator().check(group, seed));
    }
    let n = failures.len();
    failures.truncate(40);
    assert!(n == 0, "{n} differences from the interpreter:\n{}", failures.join("\n"));
}

#[test]
fn the_op_and_dtype_corpus() {
    check("corpus", 1);
}

#[test]
fn reductions_below_and_above_a_warp_and_a_block() {
    check("reductions", 2);
}

#[test]
fn argmax_and_argmin_with_ties_and_nan() {
    check("arg", 2);
}

/// Instances of symbolic programs (elementwise with broadcasts, row reductions below and above
/// a warp, row softmax as a row group, a matrix product) at sizes that are no multiple of 32
/// or 256 and at 0 and 1: each agrees with the interpreter, and the instances of one
/// structure run the very same compiled kernels (one text, the sizes as parameters).
#[test]
fn symbolic_programs_at_many_sizes() {
    check("sizes", 2);
    let e = emulator();
    let mut by_class: std::collections::BTreeMap<String, Vec<(String, Vec<usize>)>> = Default::default();
    for (i, case) in e.cases().iter().enumerate() {
        if case.group == "sizes" && !case.name.contains(" edge ") {
            let class = case.name.split(" at ").next().unwrap().to_string();
            by_class.entry(class).or_default().push((case.name.clone(), e.kernel_entries(i).to_vec()));
        }
    }
    assert!(by_class.len() >= 6, "{:?}", by_class.keys());
    for (class, cases) in &by_class {
        assert!(cases.len() >= 3, "{class}: {} instances", cases.len());
        for (name, entries) in cases {
            assert_eq!(entries, &cases[0].1, "{name} runs other kernels than {}", cases[0].0);
        }
    }
}

#[test]
fn softmax_and_linear_relu() {
    check("models", 1);
}

#[test]
fn sixteen_bit_floats() {
    check("half", 2);
}

#[test]
fn row_groups_as_one_kernel() {
    check("groups", 2);
}

#[test]
fn gather_scatter_add_concat_pad() {
    check("library", 1);
}

#[test]
fn integer_division_by_zero_sets_the_error_word() {
    check("division", 1);
}

#[test]
fn random_graphs() {
    check("graphs", 1);
}

#[test]
fn philox_random_numbers() {
    check("random", 1);
}

// ---- the emulation itself ------------------------------------------------------------------

/// Hand-written kernels that check the emulation: a block sum through shared memory with and
/// without its barrier, and shuffles whose results CUDA's documentation fixes.
const SELF_TEST: &str = r#"
extern "C" __global__ void sum_synced(const float* __restrict__ x, float* __restrict__ out) {
    __shared__ float part[64];
    part[threadIdx.x] = x[blockIdx.x * 64 + threadIdx.x];
    __syncthreads();
    if (threadIdx.x == 0) { float s = 0.0f; for (int i = 0; i < 64; ++i) s += part[i]; out[blockIdx.x] = s; }
}
extern "C" __global__ void sum_racy(const float* __restrict__ x, float* __restrict__ out) {
    __shared__ float part[64];
    part[threadIdx.x] = x[blockIdx.x * 64 + threadIdx.x];
    if (threadIdx.x == 0) { float s = 0.0f; for (int i = 0; i < 64; ++i) s += part[i]; out[blockIdx.x] = s; }
}
extern "C" __global__ void shuffles(int* __restrict__ out) {
    const int t = threadIdx.x;
    out[4 * t + 0] = __shfl_down_sync(0xffffffffu, t, 5);
    out[4 * t + 1] = __shfl_up_sync(0xffffffffu, t, 3, 8);
    out[4 * t + 2] = __shfl_xor_sync(0xffffffffu, t, 9, 16);
    out[4 * t + 3] = __shfl_sync(0xffffffffu, t, 33);
}
extern "C" __global__ void divergent(int* __restrict__ out) {
    if (threadIdx.x < 16) out[threadIdx.x] = __shfl_down_sync(0xffffffffu, (int)threadIdx.x, 1);
}
static void call_synced(void** a) { sum_synced((const float*)a[0], (float*)a[1]); }
static void call_racy(void** a) { sum_racy((const float*)a[0], (float*)a[1]); }
static void call_shuffles(void** a) { shuffles((int*)a[0]); }
static void call_divergent(void** a) { divergent((int*)a[0]); }
static const tj_kernel_entry tj_kernels[] = {
    {"sum_synced", call_synced}, {"sum_racy", call_racy}, {"shuffles", call_shuffles}, {"divergent", call_divergent},
};
"#;

/// A job of one case: buffers (bytes, and the data of an input), one launch of `kernel` over
/// `grid` blocks of `block` threads with buffer arguments `args`, and output buffer `out`.
fn job(
    buffers: &[(usize, Option<Vec<u8>>)],
    kernel: u32,
    grid: u32,
    block: u32,
    args: &[i32],
    out: u32,
) -> Vec<u8> {
    let mut j = Vec::new();
    j.extend(1u32.to_le_bytes());
    j.extend((buffers.len() as u32).to_le_bytes());
    for (bytes, data) in buffers {
        j.extend((*bytes as u64).to_le_bytes());
        j.push(u8::from(data.is_some()));
        j.extend(data.iter().flatten());
    }
    j.extend(1u32.to_le_bytes());
    for v in [kernel, grid, block, 0, args.len() as u32] {
        j.extend(v.to_le_bytes());
    }
    for a in args {
        j.extend(a.to_le_bytes());
    }
    j.extend(1u32.to_le_bytes());
    j.extend(out.to_le_bytes());
    j.extend((buffers[out as usize].0 as u64).to_le_bytes());
    j
}

/// The emulation is not sequential: a block sum that skips its barrier reads shared memory
/// before the other threads wrote it (poison, or a partial sum) under some thread orders,
/// while the same sum with the barrier is right under every order. Shuffles follow CUDA's
/// lane rules, and a shuffle that half a warp skips is reported, not run.
#[test]
fn the_emulation_is_not_sequential_and_shuffles_like_cuda() {
    let mut tu = emul::header();
    tu.push_str(SELF_TEST);
    tu.push_str(&emul::footer());
    let (exe, dir) = emul::compile_driver("self_test", &tu);
    let x: Vec<u8> = (0..3 * 64).flat_map(|i| (i as f32).to_le_bytes()).collect();
    let want: Vec<f32> = (0..3).map(|b| (0..64).map(|i| (b * 64 + i) as f32).sum()).collect();
    let sums = |kernel: u32, seed: u64| -> Vec<f32> {
        let j = job(&[(x.len(), Some(x.clone())), (12, None)], kernel, 3, 64, &[0, 1], 1);
        let out = emul::run_driver(&exe, &dir, "sum", seed, &j).unwrap();
        out[4..].chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
    };
    let mut racy_wrong = 0;
    for seed in 1..=8 {
        assert_eq!(sums(0, seed), want, "with its barrier (seed {seed})");
        racy_wrong += usize::from(sums(1, seed) != want);
    }
    assert!(racy_wrong > 0, "a block sum without its barrier was right under 8 thread orders");

    let j = job(&[(64 * 16, None)], 2, 1, 64, &[0], 0);
    let out = emul::run_driver(&exe, &dir, "shuffles", 1, &j).unwrap();
    let got: Vec<i32> = out[4..].chunks(4).map(|c| i32::from_le_bytes(c.try_into().unwrap())).collect();
    for t in 0..64i32 {
        let (lane, warp) = (t % 32, t - t % 32);
        let down = if lane + 5 < 32 { t + 5 } else { t };
        let up = if lane % 8 >= 3 { t - 3 } else { t };
        let to = lane ^ 9;
        let xor = if to / 16 <= lane / 16 { warp + to } else { t };
        let idx = warp + 33 % 32;
        assert_eq!(&got[4 * t as usize..4 * t as usize + 4], &[down, up, xor, idx], "thread {t}");
    }

    let j = job(&[(32 * 4, None)], 3, 1, 32, &[0], 0);
    let err = emul::run_driver(&exe, &dir, "divergent", 1, &j).unwrap_err();
    assert!(err.contains("deadlock") && err.contains("divergent"), "{err}");
}

// ---- launch counts -------------------------------------------------------------------------

/// The program steps and the kernel launches of the graph of `outputs`, as the CUDA backend
/// plans it without cuBLAS, and how many loads from global memory of the program's first
/// input its kernels have.
fn launches(outputs: &[&tenjit::Tensor]) -> (usize, usize, usize) {
    use tenjit::backend::cuda::{codegen, exec};
    let g = tenjit::graph_with(outputs, tenjit::TraceOptions { locations: false });
    let program = emul::compile(&g);
    let module = codegen::render_program(&program).unwrap();
    let plan = exec::ExecPlan::new(&program, &module, false).unwrap();
    if std::env::var("TENJIT_EMUL_DUMP").is_ok() {
        eprintln!("{program}\n{}\n{plan}", module.source.split("// ---- program").nth(1).unwrap_or(""));
    }
    let n = plan.steps.iter().filter(|s| matches!(s, exec::StepPlan::Launch { .. })).count();
    let reads = module.kernels().map(|k| k.source.matches("b0[").count()).sum();
    (program.steps.len(), n, reads)
}

/// A row group is one launch: softmax's four kernels (row max, `exp(x - max)` kept row by
/// row, row sum, division) are one, as are layer norm's and the row steps of a causal
/// attention (whose matrix products stay launches of their own). Softmax and layer norm
/// read their input row from global memory once (one load of `b0`, their input, staged in
/// shared memory), where separate kernels read it two and three times.
#[test]
fn a_row_group_is_one_launch() {
    use tenjit::nn;
    let x = tenjit::Tensor::from_vec(vec![0.0f32; 4 * 1000], vec![4, 1000]);
    assert_eq!(launches(&[&nn::softmax(&x, -1)]), (4, 1, 1), "softmax");
    assert_eq!(launches(&[&nn::log_softmax(&x, -1)]), (4, 1, 1), "log_softmax");
    let w = tenjit::Tensor::from_vec(vec![1.0f32; 1000], vec![1000]);
    let y = nn::layer_norm(&x, &[1000], Some(&w), Some(&w), 1e-5);
    assert_eq!(launches(&[&y]), (3, 1, 1), "layer norm");
    let q = tenjit::Tensor::from_vec(vec![0.0f32; 2 * 40 * 8], vec![2, 40, 8]);
    let opts = nn::Attention { is_causal: true, ..Default::default() };
    let a = nn::scaled_dot_product_attention(&q, &q, &q, opts);
    assert_eq!(launches(&[&a]).0, 7, "attention");
    assert_eq!(launches(&[&a]).1, 3, "attention");
    let xg = x.requires_grad_();
    let y = nn::layer_norm(&xg, &[1000], Some(&w), Some(&w), 1e-5);
    let dx = tenjit::grad(&[&(&y * &y.sin()).sum()], &[&xg]);
    assert_eq!(launches(&[&dx[0]]), (7, 1, 1), "layer norm backward");
    // A row whose local buffers do not fit in shared memory (`exp(x - max)`, 36,000 bytes):
    // softmax's four steps are four launches, as before groups were one kernel.
    let long = tenjit::Tensor::from_vec(vec![0.0f32; 2 * 9000], vec![2, 9000]);
    assert_eq!(launches(&[&nn::softmax(&long, -1)]), (4, 4, 2), "softmax of long rows");
}
