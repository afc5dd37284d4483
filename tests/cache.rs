//! The executable cache: a loop compiles once, and every miss is explained. One test, so no
//! other test's compilations interleave with the counts.

use tenjit::prelude::*;
use tenjit::MissReason;

#[test]
fn loops_compile_once_and_misses_are_explained() {
    tenjit::set_backend(tenjit::Backend::Cpu);
    let before = tenjit::compile_count();
    let mut w = tensor!([1.0, -2.0, 3.0]);
    for _ in 0..1000 {
        w = &w - 0.01 * (2.0 * &w);
        w.realize();
    }
    assert_eq!(tenjit::compile_count() - before, 1, "a 1,000-step loop compiles once");
    let mut expected = [1.0f32, -2.0, 3.0];
    for _ in 0..1000 {
        for v in &mut expected {
            *v -= 0.01 * (2.0 * *v);
        }
    }
    assert_eq!(w.to_vec::<f32>(), expected.to_vec());

    // Data does not matter, structure does: new values hit, a new shape misses.
    let a = Tensor::from_vec(vec![5.0f32, 6.0, 7.0], [3]);
    (&a - 0.01 * (2.0 * &a)).realize();
    assert_eq!(tenjit::compile_count() - before, 1);
    let b = Tensor::from_vec(vec![5.0f32; 4], [4]);
    (&b - 0.01 * (2.0 * &b)).realize();
    assert_eq!(tenjit::compile_count() - before, 2);
    // A third size is an instance of the symbolic signature the second made: no compilation.
    let instances = tenjit::instance_count();
    let c = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0], [5]);
    let y = &c - 0.01 * (2.0 * &c);
    assert_eq!(y.to_vec::<f32>(), vec![0.98f32, 1.96, 2.94, 3.92, 4.9]);
    assert_eq!(tenjit::compile_count() - before, 2);
    assert_eq!(tenjit::instance_count() - instances, 1);

    // Fresh random numbers every step (a dropout-like mask, a shuffle) are data, not structure.
    let x = tensor!([1.0, 2.0, 3.0, 4.0]);
    let mark = tenjit::compile_count();
    let mut sums = Vec::new();
    for _ in 0..20 {
        let mask = Tensor::rand([4]).gt(0.5).to_dtype(DType::F32);
        let noise = Tensor::randn([4]) * 0.1;
        let order = Tensor::randperm(4);
        sums.push(((&x * &mask + noise).index_select(0, &order)).sum().item());
    }
    assert_eq!(tenjit::compile_count() - mark, 1, "a loop drawing new random numbers compiles once");
    assert!(sums.windows(2).any(|w| w[0] != w[1]), "the draws differ from step to step");

    let reports = tenjit::compile_reports();
    let first = &reports[reports.len() - 4];
    let second = &reports[reports.len() - 3];
    let instance = &reports[reports.len() - 2];
    if before == 0 {
        assert_eq!(first.miss, MissReason::FirstGraph);
    }
    // The second is the first one's structure at a new size: the size became a symbol.
    let MissReason::NewSizes(tenjit::runtime::dynamic::Dynamic::BecameSymbolic { introduced, .. }) =
        &second.miss
    else {
        panic!("the second compilation is the first's structure at new sizes: {second}");
    };
    assert_eq!(introduced, &["dim 0 of input 0 became symbolic d0 (sizes 3, then 4)"]);
    let stages: Vec<&str> = second.stages.iter().map(|(s, _)| *s).collect();
    assert_eq!(stages, ["trace", "shapes", "passes", "lower", "instantiate", "codegen"]);
    assert_eq!(second.origin, tenjit::ProgramOrigin::Symbolic, "{second}");
    // The instance ran no pass and no lowering.
    assert_eq!(instance.origin, tenjit::ProgramOrigin::Instance, "{instance}");
    let stages: Vec<&str> = instance.stages.iter().map(|(s, _)| *s).collect();
    assert_eq!(stages, ["trace", "shapes", "instantiate", "codegen"]);
    assert!(instance.to_string().starts_with("instance "), "{instance}");
    assert!(instance.to_string().contains("at d0 = 5"), "{instance}");
    // The third, the random loop, is a new structure: the report names the nearest one.
    let third = &reports[reports.len() - 1];
    let MissReason::NewStructure { nearest } = &third.miss else {
        panic!("the third compilation has a nearest cached graph: {third}");
    };
    assert!(nearest.contains(" became "), "{nearest}");
    assert!(third.to_string().contains("new structure"), "{third}");
}
