//! The CUDA runtime: devices, device buffers and compiled programs run on a GPU.
//!
//! Two kinds of tests:
//!
//! * Everywhere (CI has no GPU): without a driver, or with every device hidden
//!   (`CUDA_VISIBLE_DEVICES=""`, in a child process, so GPU machines check this path too),
//!   `is_available()` is false, `device_count()` is 0, and uploads and compiles return a clear
//!   error instead of panicking.
//! * On a GPU (`#[ignore]`d here; `cargo test --test cuda_runtime -- --ignored` on a machine
//!   with an NVIDIA GPU, its driver and `scripts/setup-cuda-tools.sh` run): round trips of
//!   every dtype, and programs run on the device against the reference interpreter — the op ×
//!   dtype corpus, random programs, integer division by zero, and matrix products through
//!   cuBLAS and through the rendered kernel.

use std::process::Command;
use std::sync::Arc;
use tenjit::backend::cuda::blas;
use tenjit::backend::cuda::exec::{CudaExecutable, CudaOptions, StepPlan};
use tenjit::backend::cuda::runtime::{self, CudaError, DeviceBuffer};
use tenjit::ir::interp::{self, EvalError};
use tenjit::ir::kernel::lower::lower;
use tenjit::ir::{
    Accuracy, ArgOp, BinaryOp, Buffer, DType, Graph, NodeId, Op, ReduceOp, Scalar, Shape, TensorType, UnaryOp,
};

fn ty(d: DType, s: &[usize]) -> TensorType {
    TensorType::new(d, Shape::new(s))
}

use cuda_corpus::graph_of as graph;

/// The types of `g`'s inputs, in order.
fn input_types(g: &Graph) -> Vec<TensorType> {
    g.inputs().iter().map(|(_, id)| g.ty(*id).clone()).collect()
}

fn one(op: Op, inputs: &[TensorType]) -> Graph {
    graph(op.name(), inputs, |g, ids| vec![g.add(op.clone(), ids).unwrap()])
}

// ---- without a device ------------------------------------------------------------------------

/// The checks of a process in which no device can be used.
fn check_no_device() {
    assert!(!runtime::is_available());
    let no_driver = runtime::unavailable_reason() == Some(CudaError::NoDriver);
    if runtime::unavailable_reason().is_some() {
        assert_eq!(runtime::device_count(), 0);
    }
    let buf = Buffer::from_vec(vec![1.0f32, 2.0, 3.0], [3]).unwrap();
    let err = runtime::upload(&buf, 0).unwrap_err();
    let text = err.to_string();
    if no_driver {
        assert_eq!(
            text,
            "no CUDA driver found (libcuda.so is not loadable): CUDA devices are unavailable on this machine"
        );
    } else if runtime::device_count() == 0 {
        assert_eq!(text, "device cuda:0 does not exist (0 devices)");
    }
    // Every entry point gives the same answer.
    let g = one(Op::Unary(UnaryOp::Exp), &[ty(DType::F32, &[3])]);
    assert_eq!(CudaExecutable::compile(lower(&g), 0).unwrap_err(), err);
    assert_eq!(runtime::device_info(0).unwrap_err(), err);
    assert_eq!(runtime::synchronize(0).unwrap_err(), err);
    // An ordinal past the end names itself (or the missing driver).
    let far = runtime::upload(&buf, 3).unwrap_err();
    if no_driver {
        assert_eq!(far, CudaError::NoDriver);
    } else {
        assert_eq!(
            far.to_string(),
            format!("device cuda:3 does not exist ({} devices)", runtime::device_count())
        );
    }
    // Asking again gives the same answer (the probe is cached and never panics).
    assert!(!runtime::is_available());
}

#[test]
fn without_a_usable_device_every_entry_point_is_a_clear_error() {
    if runtime::is_available() {
        // A GPU machine: the child-process test below checks this path.
        assert!(runtime::device_count() > 0);
        return;
    }
    check_no_device();
}

/// With every device hidden, the runtime sees none (on this machine: no driver at all). Runs
/// in a child process, since the answer is cached per process.
#[test]
fn hidden_devices_are_no_devices() {
    if std::env::var_os("TENJIT_TEST_CUDA_HIDDEN").is_some() {
        check_no_device();
        println!("NO-DEVICE-OK");
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "hidden_devices_are_no_devices", "--nocapture", "--test-threads=1"])
        .env("TENJIT_TEST_CUDA_HIDDEN", "1")
        .env("CUDA_VISIBLE_DEVICES", "")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("NO-DEVICE-OK") && stdout.contains("1 passed"), "{stdout}");
}

// ---- GPU helpers -----------------------------------------------------------------------------

/// Compiles `g` for device 0, uploads `inputs`, runs and downloads the outputs.
fn run_on_gpu(g: &Graph, inputs: &[Buffer], options: CudaOptions) -> Result<Vec<Buffer>, CudaError> {
    let exe = CudaExecutable::compile_with(lower(g), 0, options)?;
    let dev: Vec<Arc<DeviceBuffer>> =
        inputs.iter().map(|b| runtime::upload(b, 0).map(Arc::new)).collect::<Result<_, _>>()?;
    let outs = exe.run(&dev)?;
    outs.iter().map(runtime::download).collect()
}

#[path = "common/rng.rs"]
mod rng;
use rng::Rng;

/// Values of `t`: floats in [-3, 3], integers in `ints`, random bools.
fn random_buffer(r: &mut Rng, t: &TensorType, ints: (i64, i64)) -> Buffer {
    let values: Vec<Scalar> = (0..t.shape.numel())
        .map(|_| match t.dtype {
            DType::Bool => Scalar::Bool(r.below(2) == 1),
            DType::I32 | DType::I64 => {
                let span = (i128::from(ints.1) - i128::from(ints.0) + 1) as u128;
                Scalar::Int((i128::from(ints.0) + (u128::from(r.next()) % span) as i128) as i64)
            }
            DType::F16 | DType::BF16 | DType::F32 | DType::F64 => {
                Scalar::Float((r.below(60_001) as f64 - 30_000.0) / 10_000.0)
            }
        })
        .collect();
    Buffer::from_scalars(t.dtype, t.shape.clone(), values)
}

/// Whether `got` matches `want`: integers and bools exactly, floats within `rel` of the value
/// or `rel` of the largest magnitude of the output (cancellation), NaN matching NaN.
fn matches(got: &Buffer, want: &Buffer, rel: f64) -> Result<(), String> {
    if got.ty() != want.ty() {
        return Err(format!("type {} instead of {}", got.ty(), want.ty()));
    }
    let scale = (0..want.numel())
        .map(|i| want.scalar(i).as_f64().abs())
        .filter(|x| x.is_finite())
        .fold(1.0, f64::max);
    for i in 0..want.numel() {
        let (g, w) = (got.scalar(i), want.scalar(i));
        let ok = match (g, w) {
            (Scalar::Float(g), Scalar::Float(w)) => {
                (g.is_nan() && w.is_nan()) || g == w || (g - w).abs() <= rel * w.abs().max(1.0) + rel * scale
            }
            _ => g == w,
        };
        if !ok {
            return Err(format!("element {i}: got {g:?}, want {w:?}"));
        }
    }
    Ok(())
}

/// Runs `g` on the GPU and the interpreter and compares: the same values (within `rel` for
/// floats), or both failing (with the interpreter's message for arithmetic failures).
fn differential(what: &str, g: &Graph, inputs: &[Buffer], rel: f64, options: CudaOptions) {
    let want = interp::eval(g, inputs);
    let got = run_on_gpu(g, inputs, options);
    match (got, want) {
        (Ok(got), Ok(want)) => {
            assert_eq!(got.len(), want.len(), "{what}");
            for (k, (a, b)) in got.iter().zip(&want).enumerate() {
                if let Err(e) = matches(a, b, rel) {
                    panic!("{what}: output {k}: {e}\n{g}\ninputs: {inputs:?}");
                }
            }
        }
        (Err(CudaError::Kernel(f)), Err(EvalError::Arithmetic { op, message, .. })) => {
            assert_eq!(f.to_string(), format!("{op}: {message}"), "{what}");
        }
        (Err(CudaError::Kernel(_)), Err(EvalError::IndexOutOfRange { .. })) => {}
        (got, want) => panic!("{what}: the GPU gave {got:?}, the interpreter {want:?}\n{g}"),
    }
}

// ---- without a device: the GPU tests' programs plan ------------------------------------------

/// Every program the GPU tests run renders and plans here (no GPU needed), and the matrix
/// products the lowering emits (transposed views, an expanded batch) map to cuBLAS calls,
/// except the flipped operand, which cuBLAS cannot read.
#[test]
fn the_gpu_test_programs_render_and_plan() {
    use tenjit::backend::cuda::codegen::render_program;
    use tenjit::backend::cuda::exec::ExecPlan;
    let mut r = Rng(0x2545_f491_4f6c_dd1d);
    let mut graphs: Vec<(String, Graph)> = cuda_corpus::corpus(700);
    graphs.extend((0..200).map(|i| (format!("random program {i}"), random_graph(&mut r))));
    let mut matmuls = Vec::new();
    for d in [DType::I32, DType::I64, DType::F32, DType::F64] {
        for (name, g) in matmul_cases(d) {
            matmuls.push(name.clone());
            graphs.push((name, g));
        }
    }
    let mut checked = 0;
    for (name, g) in &graphs {
        let p = lower(g);
        let m = render_program(&p).unwrap_or_else(|e| panic!("{name}: {e}\n{p}"));
        let plan = ExecPlan::new(&p, &m, true).unwrap_or_else(|e| panic!("{name}: {e}\n{p}"));
        let blas = plan.steps.iter().filter(|s| matches!(s, StepPlan::Blas { .. })).count();
        let float = name.ends_with("f32") || name.ends_with("f64");
        let is_matmul = name.contains("matmul") || matmuls.contains(name);
        if is_matmul {
            let want = usize::from(float && !name.starts_with("flipped"));
            assert_eq!(blas, want, "{name}\n{plan}\n{p}");
            checked += 1;
            if float && name.starts_with("broadcast batch") {
                // One call over the batch of 5, the right operand (cuBLAS's A) repeated.
                let Some(StepPlan::Blas { gemm, .. }) =
                    plan.steps.iter().find(|s| matches!(s, StepPlan::Blas { .. }))
                else {
                    unreachable!()
                };
                assert_eq!((gemm.batch, gemm.a.stride, gemm.calls.len()), (5, 0, 1), "{name}\n{plan}");
            }
        } else if !float {
            assert_eq!(blas, 0, "{name}\n{plan}");
        }
    }
    // Two per non-bool dtype: i32, i64, f16, bf16, f32, f64.
    assert_eq!(checked, matmuls.len() + 12, "the corpus has 12 matmuls");
}

// ---- GPU: buffers ----------------------------------------------------------------------------

#[test]
#[ignore = "needs an NVIDIA GPU and driver; run with --ignored on a GPU machine"]
fn upload_download_round_trips_every_dtype() {
    assert!(runtime::is_available(), "{:?}", runtime::unavailable_reason());
    let info = runtime::device_info(0).unwrap();
    println!("{info:?}");
    let mut r = Rng(7);
    for d in DType::ALL {
        for shape in [&[][..], &[0][..], &[1][..], &[3, 5][..], &[1000, 37][..], &[2, 0, 3][..]] {
            let t = ty(d, shape);
            let buf = random_buffer(&mut r, &t, (i64::from(i32::MIN), i64::from(i32::MAX)));
            let dev = runtime::upload(&buf, 0).unwrap();
            assert_eq!(dev.ty(), &t);
            assert_eq!(dev.device(), 0);
            assert_eq!(runtime::download(&dev).unwrap(), buf, "{t}");
        }
    }
    // Extremes survive bit for bit.
    let f = Buffer::from_vec(vec![f64::NAN, f64::INFINITY, -0.0, f64::MIN_POSITIVE / 2.0], [4]).unwrap();
    let back = runtime::download(&runtime::upload(&f, 0).unwrap()).unwrap();
    let bits = |b: &Buffer| b.as_slice::<f64>().unwrap().iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&back), bits(&f));
    let i = Buffer::from_vec(vec![i64::MIN, i64::MAX, -1], [3]).unwrap();
    assert_eq!(runtime::download(&runtime::upload(&i, 0).unwrap()).unwrap(), i);
    // Buffers move between threads.
    let dev = Arc::new(runtime::upload(&i, 0).unwrap());
    let d2 = dev.clone();
    let back = std::thread::spawn(move || runtime::download(&d2).unwrap()).join().unwrap();
    assert_eq!(back, i);
    // A device that does not exist.
    let n = runtime::device_count();
    assert_eq!(runtime::upload(&i, n).unwrap_err(), CudaError::NoDevice { device: n, count: n });
}

// ---- GPU: the op x dtype corpus --------------------------------------------------------------

#[path = "common/cuda_corpus.rs"]
mod cuda_corpus;

/// Inputs for a corpus graph: index inputs (i64 operands of gather and scatter_add) inside
/// their axes, other integers in `ints`.
fn corpus_inputs(r: &mut Rng, g: &Graph, name: &str, ints: (i64, i64)) -> Vec<Buffer> {
    let indexed = name.starts_with("gather") || name.starts_with("scatter_add");
    input_types(g)
        .into_iter()
        .enumerate()
        .map(
            |(i, t)| {
                if indexed && i == 1 {
                    random_buffer(r, &t, (0, 2))
                } else {
                    random_buffer(r, &t, ints)
                }
            },
        )
        .collect()
}

#[test]
#[ignore = "needs an NVIDIA GPU and driver; run with --ignored on a GPU machine"]
fn the_op_corpus_matches_the_interpreter() {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let corpus = cuda_corpus::corpus(700);
    assert!(corpus.len() > 300);
    for (name, g) in &corpus {
        // Integers with zeros (division by zero, negative powers) and without.
        for ints in [(-5, 5), (1, 6)] {
            let inputs = corpus_inputs(&mut r, g, name, ints);
            differential(name, g, &inputs, 1e-5, CudaOptions::default());
        }
    }
}

// ---- GPU: random programs --------------------------------------------------------------------

/// A bound on a result given a bound on the operand.
type Bound = fn(f64) -> f64;

/// A bound on `|op(x)|` given a bound `b` on `|x|`, for the unary ops that have a useful one.
const UNARY_BOUNDS: &[(UnaryOp, Bound)] = &[
    (UnaryOp::Neg, |b| b),
    (UnaryOp::Abs, |b| b),
    (UnaryOp::Floor, |b| b + 1.0),
    (UnaryOp::Ceil, |b| b + 1.0),
    (UnaryOp::Sqrt, f64::sqrt),
    (UnaryOp::Exp, f64::exp),
    (UnaryOp::Log, |_| 800.0),
    (UnaryOp::Sin, |_| 1.0),
    (UnaryOp::Cos, |_| 1.0),
    (UnaryOp::Tanh, |_| 1.0),
    (UnaryOp::Not, |_| 1.0),
];

/// A random graph over one dtype whose float results the GPU must reproduce to a tolerance:
/// ops whose result jumps on a last-bit difference (floor, ceil, comparisons, casts to integers
/// or bool, argmax) are applied only to values computed exactly (IEEE `+ - * / sqrt`, `max`,
/// `min`, integer ops), and `exp` only to bounded values.
fn random_graph(r: &mut Rng) -> Graph {
    let dtype = [DType::F32, DType::F64, DType::I32, DType::I64][r.below(4)];
    let rank = 1 + r.below(3);
    let shape: Vec<usize> = (0..rank)
        .map(|_| {
            let max = if r.below(4) == 0 { 300 } else { 40 };
            1 + r.below(max)
        })
        .collect();
    let mut g = Graph::new("rand");
    // (node, computed exactly, bound on |value|)
    let mut pool: Vec<(NodeId, bool, f64)> = (0..2)
        .map(|i| (g.add_input(format!("x{i}"), TensorType::new(dtype, Shape::new(&shape))), true, 6.0))
        .collect();
    for _ in 0..6 + r.below(8) {
        let (a, ea, ba) = pool[r.below(pool.len())];
        let (b, eb, bb) = pool[r.below(pool.len())];
        let ta = g.ty(a).clone();
        let fa = matches!(ta.dtype, DType::F32 | DType::F64);
        let n = ta.shape.numel().max(1) as f64;
        let (op, exact, bound) = match r.below(7) {
            0 | 1 => {
                let op = BinaryOp::ALL[r.below(BinaryOp::ALL.len())];
                let jumps = matches!(
                    op,
                    BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge
                ) || (fa && matches!(op, BinaryOp::FloorDiv | BinaryOp::Rem));
                if jumps && !(ea && eb) {
                    continue;
                }
                let exact = ea && eb && !(fa && matches!(op.spec().accuracy, Accuracy::Ulp(_)));
                let bound = match op {
                    BinaryOp::Add | BinaryOp::Sub => ba + bb,
                    BinaryOp::Mul => ba * bb,
                    BinaryOp::Maximum | BinaryOp::Minimum => ba.max(bb),
                    BinaryOp::Rem => bb,
                    _ => f64::INFINITY,
                };
                (Op::Binary(op), exact, bound)
            }
            2 => {
                let op = UnaryOp::ALL[r.below(UnaryOp::ALL.len())];
                // Exact ops of exact values stay exact; the bound of an op not listed is unknown.
                let exact = ea && op.spec().accuracy == Accuracy::Exact;
                let bound = UNARY_BOUNDS.iter().find(|(o, _)| *o == op).map_or(f64::INFINITY, |(_, f)| f(ba));
                if (matches!(op, UnaryOp::Floor | UnaryOp::Ceil) && !ea) || (op == UnaryOp::Exp && ba > 20.0)
                {
                    continue;
                }
                (Op::Unary(op), exact, bound)
            }
            3 => {
                let op = ReduceOp::ALL[r.below(4)];
                let axes = [r.below(ta.shape.rank().max(1))].into_iter().collect();
                // Float sums and products are accumulated in another order on the device.
                let exact = ea && !(fa && matches!(op, ReduceOp::Sum | ReduceOp::Prod));
                let bound = match op {
                    ReduceOp::Sum => ba * n,
                    ReduceOp::Prod => ba.powf(n),
                    ReduceOp::Max | ReduceOp::Min => ba,
                };
                (Op::Reduce { op, axes }, exact, bound)
            }
            4 => (Op::Permute { perm: (0..ta.shape.rank()).rev().collect() }, ea, ba),
            5 => {
                let to = DType::ALL[r.below(5)];
                if fa && !ea && !matches!(to, DType::F32 | DType::F64) {
                    continue;
                }
                (Op::Cast { dtype: to }, ea, ba)
            }
            _ => {
                if !ea {
                    continue;
                }
                (Op::ArgReduce { op: ArgOp::ALL[r.below(2)], axis: r.below(ta.shape.rank().max(1)) }, true, n)
            }
        };
        let args: Vec<NodeId> = match op.arity() {
            Some(2) => vec![a, b],
            _ => vec![a],
        };
        if let Ok(node) = g.add(op, &args) {
            pool.push((node, exact, bound));
        }
    }
    let last = pool.last().map_or(pool[0].0, |p| p.0);
    g.set_outputs(vec![last]);
    g
}

#[test]
#[ignore = "needs an NVIDIA GPU and driver; run with --ignored on a GPU machine"]
fn random_programs_match_the_interpreter() {
    let mut r = Rng(0x2545_f491_4f6c_dd1d);
    for i in 0..200 {
        let g = random_graph(&mut r);
        let ints = if i % 2 == 0 { (-5, 5) } else { (1, 6) };
        let inputs: Vec<Buffer> = input_types(&g).iter().map(|t| random_buffer(&mut r, t, ints)).collect();
        differential(&format!("random program {i}"), &g, &inputs, 1e-4, CudaOptions::default());
    }
}

// ---- GPU: failures ---------------------------------------------------------------------------

#[test]
#[ignore = "needs an NVIDIA GPU and driver; run with --ignored on a GPU machine"]
fn integer_division_by_zero_is_reported_as_the_cpu_reports_it() {
    use tenjit::backend::cpu::exec::CpuExecutable;
    for d in [DType::I32, DType::I64] {
        for op in [BinaryOp::FloorDiv, BinaryOp::Rem] {
            let g = one(Op::Binary(op), &[ty(d, &[1000]), ty(d, &[1000])]);
            let a = Buffer::full(&ty(d, &[1000]), Scalar::Int(7));
            let mut values = vec![Scalar::Int(3); 1000];
            values[617] = Scalar::Int(0);
            let b = Buffer::from_scalars(d, Shape::new(&[1000]), values);
            let gpu = run_on_gpu(&g, &[a.clone(), b.clone()], CudaOptions::default()).unwrap_err();
            let cpu = CpuExecutable::compile(lower(&g))
                .unwrap()
                .run(&[Arc::new(a.clone()), Arc::new(b.clone())])
                .unwrap_err()
                .to_string();
            let name = op.spec().name;
            assert!(matches!(gpu, CudaError::Kernel(_)), "{gpu:?}");
            assert!(gpu.to_string().starts_with(&format!("{name}: ")), "{d}: {gpu}");
            assert!(gpu.to_string().contains("by zero"), "{d}: {gpu}");
            assert!(cpu.ends_with(&gpu.to_string()), "CPU: {cpu}\nGPU: {gpu}");
            // The error word is per run: the next run with good inputs succeeds.
            let ok = run_on_gpu(
                &g,
                &[a.clone(), Buffer::full(&ty(d, &[1000]), Scalar::Int(3))],
                CudaOptions::default(),
            );
            assert!(ok.is_ok(), "{ok:?}");
        }
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU and driver; run with --ignored on a GPU machine"]
fn inputs_of_another_type_are_errors() {
    let g = one(Op::Binary(BinaryOp::Add), &[ty(DType::F32, &[3]), ty(DType::F32, &[3])]);
    let exe = CudaExecutable::compile(lower(&g), 0).unwrap();
    let a = Arc::new(runtime::upload(&Buffer::from_vec(vec![1.0f32, 2.0, 3.0], [3]).unwrap(), 0).unwrap());
    let b = Arc::new(runtime::upload(&Buffer::from_vec(vec![1.0f64, 2.0, 3.0], [3]).unwrap(), 0).unwrap());
    let e = exe.run(&[a.clone(), b]).unwrap_err();
    assert_eq!(e.to_string(), "input 1 is f64[3] but the program was compiled for f32[3]");
    let e = exe.run(std::slice::from_ref(&a)).unwrap_err();
    assert_eq!(e, CudaError::MissingInput { index: 1, given: 1 });
    // The executable is still usable, from several threads at once.
    let exe = Arc::new(exe);
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (exe, a) = (exe.clone(), a.clone());
            std::thread::spawn(move || runtime::download(&exe.run(&[a.clone(), a]).unwrap()[0]).unwrap())
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap().as_slice::<f32>().unwrap(), &[2.0, 4.0, 6.0]);
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU and driver; run with --ignored on a GPU machine"]
fn an_output_that_is_an_input_or_repeated_is_a_copy() {
    let t = ty(DType::I32, &[4]);
    let g = graph("outs", std::slice::from_ref(&t), |g, x| {
        let y = g.add(Op::Unary(UnaryOp::Neg), &[x[0]]).unwrap();
        vec![x[0], y, y]
    });
    let x = Buffer::from_vec(vec![1i32, -2, 3, 0], [4]).unwrap();
    let outs = run_on_gpu(&g, std::slice::from_ref(&x), CudaOptions::default()).unwrap();
    assert_eq!(outs[0], x);
    assert_eq!(outs[1].as_slice::<i32>().unwrap(), &[-1, 2, -3, 0]);
    assert_eq!(outs[1], outs[2]);
}

// ---- GPU: matrix products --------------------------------------------------------------------

/// Matrix products of `d`: plain, batched, through transposed views (permutes folded into
/// the operands' strides), a batch broadcast from one matrix (an expand), a slice with a
/// negative step (the kernel's job), a vector-like shape and a k of 1.
fn matmul_cases(d: DType) -> Vec<(String, Graph)> {
    let mm =
        |name: &str, a: &[usize], b: &[usize], prep: fn(&mut Graph, NodeId, NodeId) -> (NodeId, NodeId)| {
            let g = graph(name, &[ty(d, a), ty(d, b)], |g, x| {
                let (p, q) = prep(g, x[0], x[1]);
                vec![g.add(Op::Matmul, &[p, q]).unwrap()]
            });
            (format!("{name} {d}"), g)
        };
    let id = |_: &mut Graph, a: NodeId, b: NodeId| (a, b);
    vec![
        mm("plain", &[33, 70], &[70, 19], id),
        mm("batched", &[3, 17, 64], &[3, 64, 9], id),
        mm("a transposed", &[70, 33], &[70, 19], |g, a, b| {
            (g.add(Op::Permute { perm: [1, 0].into_iter().collect() }, &[a]).unwrap(), b)
        }),
        mm("b transposed", &[33, 70], &[19, 70], |g, a, b| {
            (a, g.add(Op::Permute { perm: [1, 0].into_iter().collect() }, &[b]).unwrap())
        }),
        mm("both transposed, batched", &[4, 70, 33], &[4, 19, 70], |g, a, b| {
            let p = g.add(Op::Permute { perm: [0, 2, 1].into_iter().collect() }, &[a]).unwrap();
            let q = g.add(Op::Permute { perm: [0, 2, 1].into_iter().collect() }, &[b]).unwrap();
            (p, q)
        }),
        mm("broadcast batch", &[5, 12, 16], &[16, 7], |g, a, b| {
            let b1 = g.add(Op::Reshape { shape: Shape::new(&[1, 16, 7]) }, &[b]).unwrap();
            (a, g.add(Op::Expand { shape: Shape::new(&[5, 16, 7]) }, &[b1]).unwrap())
        }),
        mm("flipped rows", &[12, 16], &[16, 7], |g, a, b| {
            let s = Op::Slice {
                start: [11, 0].into_iter().collect(),
                step: [-1, 1].into_iter().collect(),
                size: [12, 16].into_iter().collect(),
                bounds: None,
            };
            (g.add(s, &[a]).unwrap(), b)
        }),
        mm("row vector", &[1, 300], &[300, 5], id),
        mm("outer product", &[40, 1], &[1, 30], id),
    ]
}

#[test]
#[ignore = "needs an NVIDIA GPU and driver; run with --ignored on a GPU machine"]
fn float_matmuls_match_the_interpreter_through_cublas_and_the_kernel() {
    let mut r = Rng(99);
    println!("cuBLAS loadable: {}", blas::library_present());
    for d in [DType::F32, DType::F64] {
        for (name, g) in matmul_cases(d) {
            let exe = CudaExecutable::compile(lower(&g), 0).unwrap();
            let uses_blas = exe.plan().steps.iter().any(|s| matches!(s, StepPlan::Blas { .. }));
            if blas::library_present() && !name.starts_with("flipped") {
                assert!(uses_blas, "{name}: expected cuBLAS\n{}", exe.plan());
            }
            println!("{name}:\n{}", exe.plan());
            // Integer-valued floats: every partial sum is exact, so any order gives the
            // interpreter's result exactly.
            let inputs: Vec<Buffer> = input_types(&g)
                .iter()
                .map(|t| random_buffer(&mut r, t, (0, 0)).cast(DType::I64).cast(d))
                .collect();
            for cublas in [true, false] {
                differential(&name, &g, &inputs, 0.0, CudaOptions { cublas });
            }
            // Real values: within the tolerance of f32 accumulation.
            let inputs: Vec<Buffer> =
                input_types(&g).iter().map(|t| random_buffer(&mut r, t, (0, 0))).collect();
            let rel = if d == DType::F32 { 2e-4 } else { 1e-11 };
            for cublas in [true, false] {
                differential(&name, &g, &inputs, rel, CudaOptions { cublas });
            }
        }
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU and driver; run with --ignored on a GPU machine"]
fn integer_matmuls_run_the_kernel_and_wrap_as_the_interpreter() {
    let mut r = Rng(5);
    for d in [DType::I32, DType::I64] {
        for (name, g) in matmul_cases(d) {
            let exe = CudaExecutable::compile(lower(&g), 0).unwrap();
            assert!(!exe.plan().steps.iter().any(|s| matches!(s, StepPlan::Blas { .. })), "{name}");
            let big = if d == DType::I32 { i64::from(i32::MAX) } else { i64::MAX };
            for ints in [(-9, 9), (-big, big)] {
                let inputs: Vec<Buffer> =
                    input_types(&g).iter().map(|t| random_buffer(&mut r, t, ints)).collect();
                differential(&name, &g, &inputs, 0.0, CudaOptions::default());
            }
        }
    }
}

#[path = "emul/sized_graphs.rs"]
mod sized_graphs;

/// The instances of symbolic programs (`sized_graphs.rs`) run on the GPU at every size of
/// their classes and at 0 and 1, against the interpreter on the bound graph; instances of one
/// class compile one CUDA C source (one module), the sizes passed as kernel arguments.
#[test]
#[ignore = "needs an NVIDIA GPU and driver; run with --ignored on a GPU machine"]
fn symbolic_instances_run_one_module_at_every_size() {
    let mut r = Rng(0x51ce_5eed);
    for family in sized_graphs::families() {
        let g = sized_graphs::graph(family.text);
        let sym = sized_graphs::symbolic(&g);
        let edges = std::iter::once(&family.edges);
        for (c, bindings) in family.classes.iter().chain(edges).enumerate() {
            let mut sources = Vec::new();
            for values in bindings {
                let what = format!("{} at {}", family.name, sized_graphs::show(values));
                let bound = g.bind(values).unwrap_or_else(|e| panic!("{what}: {e:?}"));
                let inputs: Vec<Buffer> =
                    input_types(&bound).iter().map(|t| random_buffer(&mut r, t, (-3, 3))).collect();
                let want = interp::eval(&bound, &inputs).unwrap_or_else(|e| panic!("{what}: {e}"));
                let program = sized_graphs::instance(&sym, values);
                let exe = CudaExecutable::compile_with(program, 0, CudaOptions { cublas: false })
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                let dev: Vec<Arc<DeviceBuffer>> =
                    inputs.iter().map(|b| Arc::new(runtime::upload(b, 0).unwrap())).collect();
                let got: Vec<Buffer> =
                    exe.run(&dev).unwrap().iter().map(|b| runtime::download(b).unwrap()).collect();
                for (k, (a, b)) in got.iter().zip(&want).enumerate() {
                    if let Err(e) = matches(a, b, 1e-5) {
                        panic!("{what}: output {k}: {e}");
                    }
                }
                sources.push(exe.module().source.clone());
            }
            if c < family.classes.len() {
                assert!(
                    sources.windows(2).all(|w| w[0] == w[1]),
                    "{} class {c}: several sources",
                    family.name
                );
            }
        }
    }
}
