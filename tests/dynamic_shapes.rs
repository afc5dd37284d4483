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
    let mut ids = vec![1i64];
    tenjit::no_grad(|| {
        for _ in 0..12 {
            let x = Tensor::from_vec(ids.clone(), [1, ids.len()]);
            x.mark_dynamic(1);
            let next = model.forward(&x).i(s![0, -1]).argmax().item() as i64;
            ids.push(next);
        }
    });
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
    let mut ids = vec![3i64];
    tenjit::no_grad(|| {
        for _ in 0..12 {
            let x = Tensor::from_vec(ids.clone(), [1, ids.len()]);
            let next = model.forward(&x).i(s![0, -1]).argmax().item() as i64;
            ids.push(next);
        }
    });
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
