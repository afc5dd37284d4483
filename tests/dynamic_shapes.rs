//! Automatic dynamic shapes at the runtime: a training step run at new batch sizes is reported
//! as the same structure at new sizes, the batch becomes a symbol at the second size (whose
//! program is lowered once for every size), later sizes are instances of that symbolic
//! signature (its program instantiated: no compilation), and sizes 0 and 1 stay special. One
//! test, so no other test's compilations interleave with the reports.

#[path = "../examples/common/digits.rs"]
mod digits;
#[path = "../examples/common/gpt.rs"]
mod gpt;

use digits::{Mlp, Optimizer};
use tenjit::nn::{self, Module};
use tenjit::optim::{self, Sgd};
use tenjit::prelude::*;
use tenjit::runtime::dynamic::Dynamic;
use tenjit::MissReason;

/// One SGD step of the digits MLP on a batch of `batch` random images.
fn step(model: &mut Mlp, opt: &mut Optimizer, batch: usize) {
    let x = Tensor::rand([batch, 64]);
    let y = Tensor::randint(0, 10, [batch]);
    optim::zero_grad(&model.parameters());
    let loss = nn::cross_entropy(&model.forward(&x), &y);
    loss.backward();
    opt.step(&mut model.parameters_mut());
    assert!(loss.item().is_finite());
}

#[test]
fn new_batch_sizes_are_explained_as_symbolic_sizes() {
    tenjit::set_backend(tenjit::Backend::Cpu);
    tenjit::manual_seed(0);
    let mut model = Mlp::new();
    let mut opt = Optimizer::Sgd(Sgd::new(0.05));
    let mut misses = Vec::new();
    // Compilations and instantiations per batch size: 32 compiles, 20 compiles the symbolic
    // program, 13 and 64 instantiate it, 1 is special.
    let expected = [(32, 1, 0), (20, 1, 0), (13, 0, 1), (1, 1, 0), (64, 0, 1)];
    for (batch, compiled, instantiated) in expected {
        let (before, instances) = (tenjit::compile_count(), tenjit::instance_count());
        step(&mut model, &mut opt, batch);
        step(&mut model, &mut opt, batch);
        // The first step at a size compiles or instantiates the step; the second finds it.
        assert_eq!(tenjit::compile_count() - before, compiled, "batch {batch}");
        assert_eq!(tenjit::instance_count() - instances, instantiated, "batch {batch}");
        misses.push(tenjit::compile_reports().last().unwrap().miss.clone());
    }
    // Every batch size from 2 to 64 after that: one compilation, for a batch of 2 (the mean's
    // divisor 2 stays a constant, since `x / 2` simplifies, where other batch sizes lift it to
    // a scalar input: another structure); instances otherwise.
    let (before, instances) = (tenjit::compile_count(), tenjit::instance_count());
    for batch in 2..=64 {
        step(&mut model, &mut opt, batch);
    }
    assert_eq!(tenjit::compile_count() - before, 1, "batches 2..=64");
    // 63 sizes: 2 compiles, 13, 20, 32 and 64 are cached.
    assert_eq!(tenjit::instance_count() - instances, 63 - 1 - 4, "batches 2..=64");
    assert!(!matches!(misses[0], MissReason::NewSizes(_)), "{}", misses[0]);
    let MissReason::NewSizes(Dynamic::BecameSymbolic { introduced, signature, replaces: None }) = &misses[1]
    else {
        panic!("batch 20: {}", misses[1]);
    };
    assert_eq!(introduced.len(), 1, "{introduced:?}");
    assert!(introduced[0].ends_with("became symbolic d0 (sizes 32, then 20)"), "{introduced:?}");
    assert!(signature.ends_with("where d0:2.. = 20"), "{signature}");
    assert_eq!(misses[2], MissReason::NewSizes(Dynamic::Instance { bindings: "d0 = 13".into() }));
    // A batch of one is special (its graph simplifies to another structure).
    assert!(!matches!(misses[3], MissReason::NewSizes(Dynamic::Instance { .. })), "{}", misses[3]);
    assert_eq!(misses[4], MissReason::NewSizes(Dynamic::Instance { bindings: "d0 = 64".into() }));
    let text = misses[2].to_string();
    assert!(
        text.contains("same structure, new sizes: an instance of its symbolic signature at d0 = 13"),
        "{text}"
    );

    generation_is_one_symbolic_signature();
    marked_generation_compiles_twice();
    a_named_bounded_mark_proves_a_slice_of_positions();
    split_reductions_are_one_symbolic_program();
}

/// Greedy generation of `steps` tokens after the token `first`, the context marked dynamic
/// when `mark`: the tokens.
fn generate(model: &gpt::Gpt, first: i64, steps: usize, mark: bool) -> Vec<i64> {
    let mut ids = vec![first];
    tenjit::no_grad(|| {
        for _ in 0..steps {
            let x = Tensor::from_vec(ids.clone(), [1, ids.len()]);
            if mark {
                x.mark_dynamic(1);
            }
            ids.push(model.forward(&x).i(s![0, -1]).argmax().item() as i64);
        }
    });
    ids
}

/// Generation with the context's length marked dynamic (`x.mark_dynamic(1)`, as
/// `examples/char_gpt.rs` does): length 1 is its own structure, length 2 is compiled for every
/// length at once, and every longer context is an instance.
fn marked_generation_compiles_twice() {
    // Two layers: a structure the test has not met at other sizes. Four heads: with two, a
    // context of 2 leaves the one-sample guess ambiguous (is an axis of 2 the heads or the
    // context?), and the guess that needs no guard is not found before the second length.
    let model = gpt::Gpt::new(gpt::Config { vocab: 11, block: 12, embd: 16, heads: 4, layers: 2 });
    let (first, first_instances) = (tenjit::compile_count(), tenjit::instance_count());
    generate(&model, 1, 12, true);
    assert_eq!(tenjit::compile_count() - first, 2);
    assert_eq!(tenjit::instance_count() - first_instances, 10);
    let reports = tenjit::compile_reports();
    let marked = &reports[reports.len() - 11];
    assert_eq!(marked.origin, tenjit::ProgramOrigin::Symbolic, "{marked}");
    let MissReason::NewSizes(Dynamic::Marked { introduced, .. }) = &marked.miss else { panic!("{marked}") };
    assert_eq!(introduced, &["dim 1 of input 1 (marked dynamic) became symbolic d0 (size 2)"]);
    assert!(marked.to_string().contains("first graph of its structure: dim 1 of input 1"), "{marked}");
}

/// Greedy generation with a tiny GPT (nanoGPT's `generate`, no KV cache): the context grows by
/// one token a step, so every step is a new size of one structure. From the third length on,
/// every step is an instance of one symbolic signature (a context of one token is its own
/// structure: its graph simplifies further), whose one program every longer context
/// instantiates.
fn generation_is_one_symbolic_signature() {
    let model = gpt::Gpt::new(gpt::Config { vocab: 11, block: 12, embd: 16, heads: 2, layers: 1 });
    let (first, first_instances) = (tenjit::compile_count(), tenjit::instance_count());
    let ids = generate(&model, 3, 12, false);
    // Three compilations: length 1 (its own structure), 2 (the first of the growing one), 3
    // (the symbolic program, `sink-slices` having moved the last position's slice, of start
    // `d0 - 1`, below the last block); every longer context an instance.
    assert_eq!(tenjit::compile_count() - first, 3);
    assert_eq!(tenjit::instance_count() - first_instances, 9);
    let reports = tenjit::compile_reports();
    for r in &reports[reports.len() - 9..] {
        assert_eq!(r.origin, tenjit::ProgramOrigin::Instance, "{r}");
    }
    let misses: Vec<&MissReason> = reports[reports.len() - 12..]
        .iter()
        .map(|r| &r.miss)
        .filter(|m| !matches!(m, MissReason::FirstGraph | MissReason::NewStructure { .. }))
        .collect();
    // Length 1 is a structure of its own, length 2 the first of the growing one.
    let became: Vec<&Vec<String>> = misses
        .iter()
        .filter_map(|m| match m {
            MissReason::NewSizes(Dynamic::BecameSymbolic { introduced, .. }) => Some(introduced),
            _ => None,
        })
        .collect();
    assert_eq!(
        became,
        [&vec!["dim 1 of input 1 became symbolic d0 (sizes 2, then 3)".to_string()]],
        "{misses:#?}"
    );
    let instances: Vec<&str> = misses
        .iter()
        .filter_map(|m| match m {
            MissReason::NewSizes(Dynamic::Instance { bindings }) => Some(bindings.as_str()),
            _ => None,
        })
        .collect();
    let lengths: Vec<String> = (4..=12).map(|t| format!("d0 = {t}")).collect();
    assert_eq!(instances, lengths, "{misses:#?}");

    // The instances compute what the interpreter computes: the last position's logits of
    // every prefix (another structure, itself made symbolic and instantiated).
    let logits = |backend: tenjit::Backend| -> Vec<Vec<f32>> {
        tenjit::set_backend(backend);
        tenjit::no_grad(|| {
            (1..ids.len())
                .map(|t| {
                    model.forward(&Tensor::from_vec(ids[..t].to_vec(), [1, t])).i(s![0, -1]).to_vec::<f32>()
                })
                .collect()
        })
    };
    let before = tenjit::instance_count();
    let (compiled, want) = (logits(tenjit::Backend::Cpu), logits(tenjit::Backend::Interp));
    tenjit::set_backend(tenjit::Backend::Cpu);
    assert!(tenjit::instance_count() - before >= 9);
    for (t, (a, b)) in compiled.iter().zip(&want).enumerate() {
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= 1e-4 * (1.0 + y.abs()), "length {}: {a:?} vs {b:?}", t + 1);
        }
    }
}

/// `x + pos[:t]` over a table of 64 positions, as a GPT adds position embeddings: with the
/// rows marked `T` in `1..=64` the slice is proven inside the table for every length, so one
/// compilation serves lengths 2..=64. Marked without a bound, the slice bounds the symbol
/// (`d0 <= 64`, a range guard), with the same effect; marked with a bound the table does not
/// hold, the marks are refused and the report says why. A mark whose range excludes the
/// size is an error.
fn a_named_bounded_mark_proves_a_slice_of_positions() {
    let pos = Tensor::from_vec((0..64 * 8).map(|i| (i % 7) as f32 * 0.05).collect::<Vec<f32>>(), [64, 8]);
    // `op` picks the structure (so the three cases do not share one).
    let run = |t: usize, mark: Option<std::ops::RangeInclusive<usize>>, op: &dyn Fn(&Tensor) -> Tensor| {
        let values: Vec<f32> = (0..t * 8).map(|i| (i % 13) as f32 * 0.1).collect();
        let x = Tensor::from_vec(values, [t, 8]);
        match mark {
            Some(range) => x.mark_dynamic_as(0, "T", range),
            None => x.mark_dynamic(0),
        };
        op(&(&x + pos.i(s![..t as isize]))).to_vec::<f32>()
    };
    let tanh = |y: &Tensor| y.tanh();
    let (before, instances) = (tenjit::compile_count(), tenjit::instance_count());
    // (Length 64 slices the whole table: no slice, another structure.)
    for t in [5, 9, 33, 63, 2, 17] {
        run(t, Some(1..=64), &tanh);
    }
    assert_eq!(tenjit::compile_count() - before, 1, "lengths 5, 9, 33, 63, 2, 17 marked T in 1..=64");
    assert_eq!(tenjit::instance_count() - instances, 5);
    let reports = tenjit::compile_reports();
    let first = &reports[reports.len() - 6];
    let MissReason::NewSizes(Dynamic::Marked { introduced, signature }) = &first.miss else {
        panic!("{first}")
    };
    assert_eq!(introduced, &["dim 0 of input 0 (marked dynamic) became symbolic T (size 5)"]);
    assert!(signature.ends_with("where T:2..=64 = 5"), "{signature}");
    // An instance computes what the interpreter computes.
    let compiled = run(23, Some(1..=64), &tanh);
    assert_eq!(tenjit::instance_count() - instances, 6);
    tenjit::set_backend(tenjit::Backend::Interp);
    let want = run(23, Some(1..=64), &tanh);
    tenjit::set_backend(tenjit::Backend::Cpu);
    assert_eq!(compiled.len(), 23 * 8);
    for (a, b) in compiled.iter().zip(&want) {
        assert!((a - b).abs() <= 1e-6, "{a} vs {b}");
    }

    // Marked without a bound: the slice bounds the symbol.
    let exp = |y: &Tensor| y.exp();
    let before = tenjit::compile_count();
    for t in [6, 40, 63] {
        run(t, None, &exp);
    }
    assert_eq!(tenjit::compile_count() - before, 1);
    let report = &tenjit::compile_reports()[tenjit::compile_reports().len() - 3];
    assert!(report.to_string().contains("where d0:2..=64 = 6"), "{report}");

    // Marked with a bound beyond the table: refused, naming the op that fixes the size.
    let sin = |y: &Tensor| y.sin();
    let before = tenjit::compile_count();
    run(6, Some(1..=100), &sin);
    run(7, Some(1..=100), &sin);
    assert_eq!(tenjit::compile_count() - before, 2);
    let report = &tenjit::compile_reports()[tenjit::compile_reports().len() - 2];
    let MissReason::NewSizes(Dynamic::MarksRefused { why }) = &report.miss else { panic!("{report}") };
    assert!(why.contains("which fixes a marked size") && why.contains("(slice)"), "{why}");
    assert!(report.to_string().contains("its dims marked dynamic stay concrete"), "{report}");

    // A size outside the range it is marked with is an error naming both.
    let x = Tensor::rand([70, 8]);
    let err = x.try_mark_dynamic_as(0, "T", 1..=64).unwrap_err().to_string();
    assert!(err.contains("dim 0 has size 70, outside the range T:1..=64"), "{err}");
    let err = x.try_mark_dynamic_as(0, "2T", 1..).unwrap_err().to_string();
    assert!(err.contains("mark_dynamic_as"), "{err}");
}

/// Values that a sum in f64 gets exactly, for the oracle, with a sign that varies.
fn signal(n: usize) -> Vec<f32> {
    (0..n).map(|i| ((i * 7919) % 509) as f32 / 4.0 - 60.0).collect()
}

/// Runs `reduce` on a tensor of `shape(n)` marked dynamic by `mark` at each of `sizes`, and
/// asserts one compilation (the signature's symbolic program, of `steps` steps: the reduction
/// split for the cores) and instances for the other sizes, with values within f32 rounding of
/// `oracle` in f64 of the same data.
fn one_program_for_every_size(
    what: &str,
    sizes: &[usize],
    shape: &dyn Fn(usize) -> Vec<usize>,
    mark: &dyn Fn(&Tensor),
    reduce: &dyn Fn(&Tensor) -> Tensor,
    oracle: &dyn Fn(&[f32]) -> f64,
    steps: usize,
) {
    let (before, instances) = (tenjit::compile_count(), tenjit::instance_count());
    for &n in sizes {
        let dims = shape(n);
        let data = signal(dims.iter().product());
        let x = Tensor::from_vec(data.clone(), dims.as_slice());
        mark(&x);
        let got = reduce(&x).item();
        let want = oracle(&data);
        let scale: f64 = data.iter().map(|v| v.abs() as f64).sum::<f64>() + 1.0;
        assert!((got - want).abs() <= 1e-6 * scale, "{what} at {n}: {got} vs {want}");
        let report = tenjit::compile_reports().last().unwrap().clone();
        let origin =
            if n == sizes[0] { tenjit::ProgramOrigin::Symbolic } else { tenjit::ProgramOrigin::Instance };
        assert_eq!(report.origin, origin, "{what} at {n}: {report}");
        assert_eq!(report.steps, steps, "{what} at {n}: {report}");
    }
    assert_eq!(tenjit::compile_count() - before, 1, "{what}: one compilation for sizes {sizes:?}");
    assert_eq!(tenjit::instance_count() - instances, sizes.len() - 1, "{what}: sizes {sizes:?}");
}

/// Large reductions over a dynamic dim are split for the cores (`split-reduce`) in the
/// signature's one symbolic program: a full sum and a mean of `x: [n, 4096]` marked dynamic on
/// dim 0 reduce the rows first (no size needed), and the sum of a signal of length `N` marked
/// in `65..` cuts it into 64 blocks and a remainder, at lengths that are and are not multiples
/// of the blocks. Before, the symbolic graph stayed whole, and every size was lowered again.
fn split_reductions_are_one_symbolic_program() {
    let rows = |n: usize| vec![n, 4096];
    let mark0 = |x: &Tensor| {
        x.mark_dynamic(0);
    };
    let sum64 = |d: &[f32]| d.iter().map(|&v| v as f64).sum::<f64>();
    let sizes = [300, 64, 37, 2, 1000, 129];
    one_program_for_every_size("sum of [n, 4096]", &sizes, &rows, &mark0, &|x| x.sum(), &sum64, 2);
    let mean64 = |d: &[f32]| sum64(d) / d.len() as f64;
    let sizes = [257, 64, 3, 1000, 130];
    one_program_for_every_size("mean of [n, 4096]", &sizes, &rows, &mark0, &|x| x.mean(), &mean64, 2);
    let signal_len = |n: usize| vec![n];
    let mark_long = |x: &Tensor| {
        x.mark_dynamic_as(0, "N", 65..);
    };
    let sizes = [300000, 70000, 300001, 262144, 4097, 100, 65];
    // Blocks, their sums, the remainder's sum (added in the last kernel's epilogue).
    one_program_for_every_size("sum of a signal", &sizes, &signal_len, &mark_long, &|x| x.sum(), &sum64, 3);

    long_reductions_marked_in_the_default_range_compile_once_per_side_of_a_guard();
}

/// The values of a reduction of data of the given dims, in f64.
type Oracle = dyn Fn(&[f32], &[usize]) -> Vec<f64>;

/// Runs `reduce` on a tensor of `shape(n)` (of f64 when `wide`, else f32) marked dynamic on
/// dim 0 (the default range `2..`) at each of `sizes`, asserting values within f32 rounding of
/// `oracle` (one f64 value per output) on the same data, and returns the compile report of each
/// size.
fn reports_per_size(
    what: &str,
    sizes: &[usize],
    shape: &dyn Fn(usize) -> Vec<usize>,
    wide: bool,
    reduce: &dyn Fn(&Tensor) -> Tensor,
    oracle: &Oracle,
) -> Vec<tenjit::CompileReport> {
    let mut reports = Vec::new();
    for &n in sizes {
        let dims = shape(n);
        let data = signal(dims.iter().product());
        let x = if wide {
            Tensor::from_vec(data.iter().map(|&v| v as f64).collect::<Vec<f64>>(), dims.as_slice())
        } else {
            Tensor::from_vec(data.clone(), dims.as_slice())
        };
        x.mark_dynamic(0);
        let got: Vec<f64> = match wide {
            true => reduce(&x).to_vec::<f64>(),
            false => reduce(&x).to_vec::<f32>().into_iter().map(f64::from).collect(),
        };
        let want = oracle(&data, &dims);
        assert_eq!(got.len(), want.len(), "{what} at {n}");
        let scale: f64 = data.iter().map(|v| v.abs() as f64).sum::<f64>() + 1.0;
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() <= 1e-6 * scale, "{what} at {n}: {g} vs {w}");
        }
        reports.push(tenjit::compile_reports().last().unwrap().clone());
    }
    reports
}

/// The range guard a compilation's program holds under, if it was lowered for one.
fn guard(report: &tenjit::CompileReport) -> Option<&str> {
    match &report.origin {
        tenjit::ProgramOrigin::SymbolicRange(guard) => Some(guard),
        _ => None,
    }
}

/// A long reduction over a dim marked dynamic in the default range `2..` (the sum of a vector,
/// the column sum of `[n, 64]`): `split-reduce` cuts the axis into blocks only where its range
/// starts above them, so the symbolic program of the sizes where the split pays holds under a
/// range guard from below (`d0 >= 262144`, `d0 >= 4096`), and the sizes below compile apart,
/// into one program of their own (`d0 <= 262143`): two compilations for every size from 2 to
/// 300000, whichever side comes first, the compile report saying each guard. Before, each size
/// where the graph was split was lowered again.
fn long_reductions_marked_in_the_default_range_compile_once_per_side_of_a_guard() {
    let sum = |d: &[f32], _: &[usize]| vec![d.iter().map(|&v| v as f64).sum::<f64>()];
    let vector = |n: usize| vec![n];
    // The threshold 262144 and its neighbours, a multiple of the blocks, others, sizes 2 and 3.
    // (Of f64: the f32 vector's structure has the signature of the signal above.)
    let sizes = [300000, 2, 100, 262144, 262143, 70000, 262145, 299999, 3, 262400, 131072];
    let (before, instances) = (tenjit::compile_count(), tenjit::instance_count());
    let reports = reports_per_size("sum of a vector", &sizes, &vector, true, &|x| x.sum(), &sum);
    assert_eq!(tenjit::compile_count() - before, 2, "sum of a vector: sizes {sizes:?}");
    assert_eq!(tenjit::instance_count() - instances, sizes.len() - 2);
    let above = guard(&reports[0]).unwrap_or_else(|| panic!("{}", reports[0]));
    assert!(above.starts_with("d0 >= 262144 (pass split-reduce narrowed the range"), "{above}");
    assert!(reports[0]
        .to_string()
        .contains("one program lowered for the sizes of the signature where d0 >= 262144"));
    let below = guard(&reports[1]).unwrap_or_else(|| panic!("{}", reports[1]));
    let want = "d0 <= 262143 (the signature's other sizes have programs of their own: d0 >= 262144, \
                narrowed by pass split-reduce;";
    assert!(below.starts_with(want), "{below}");
    for (r, &n) in reports.iter().zip(&sizes).skip(2) {
        assert_eq!(r.origin, tenjit::ProgramOrigin::Instance, "sum of a vector at {n}: {r}");
    }
    // Above the guard: blocks, their sums and the remainder's; below: one reduction.
    for (r, &n) in reports.iter().zip(&sizes) {
        assert_eq!(r.steps > 1, n >= 262144, "sum of a vector at {n}: {r}");
    }

    // The column sum, small sizes first: the pass caps the first program's range below the split.
    let columns = |d: &[f32], dims: &[usize]| {
        let mut sums = vec![0.0f64; dims[1]];
        for (i, &v) in d.iter().enumerate() {
            sums[i % dims[1]] += v as f64;
        }
        sums
    };
    let rows = |n: usize| vec![n, 64];
    let sizes = [2, 5000, 4095, 4096, 3, 4097, 300000, 64, 65536, 4111];
    let (before, instances) = (tenjit::compile_count(), tenjit::instance_count());
    let reports =
        reports_per_size("column sum of [n, 64]", &sizes, &rows, false, &|x| x.sum_dim(0, false), &columns);
    assert_eq!(tenjit::compile_count() - before, 2, "column sum: sizes {sizes:?}");
    assert_eq!(tenjit::instance_count() - instances, sizes.len() - 2);
    // The first program, capped from above (a size no graph has met), is the signature's; the
    // report of the first size above says the cap.
    assert_eq!(reports[0].origin, tenjit::ProgramOrigin::Symbolic, "{}", reports[0]);
    let above = guard(&reports[1]).unwrap_or_else(|| panic!("{}", reports[1]));
    let want = "d0 >= 4096 (the signature's other sizes have programs of their own: d0 <= 4095, \
                narrowed by pass split-reduce;";
    assert!(above.starts_with(want), "{above}");
    for (r, &n) in reports.iter().zip(&sizes) {
        assert_eq!(r.steps > 1, n >= 4096, "column sum at {n}: {r}");
    }
}
