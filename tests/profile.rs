//! `tenjit::profile`: with profiling on, each run of a compiled program adds each step's time
//! to the table, named as the kernel list names it; off, nothing is recorded. One test, since
//! the table and the switch are process-wide.

use tenjit::prelude::*;

#[test]
fn runs_are_profiled_step_by_step_only_when_enabled() {
    tenjit::profile::set_enabled(false);
    tenjit::profile::reset();
    let x = Tensor::randn([128, 64]).realize().clone();
    let w = Tensor::randn([64, 32]).realize().clone();
    let step = || {
        let y = tenjit::nn::softmax(&x.matmul(&w).relu(), 1);
        let total = (x.exp() * 2.0).sum_dim(0, false);
        tenjit::realize(&[&y, &total]);
    };
    step();
    assert!(tenjit::profile::report().entries.is_empty(), "nothing is recorded while profiling is off");

    tenjit::profile::set_enabled(true);
    for _ in 0..3 {
        step();
    }
    let profile = tenjit::profile::report();
    tenjit::profile::set_enabled(false);
    let text = profile.to_string();
    assert!(!profile.entries.is_empty(), "{text}");
    assert!(
        profile.entries.iter().all(|e| e.calls == 3),
        "each step of the one program ran three times:\n{text}"
    );
    let executables: std::collections::BTreeSet<u64> = profile.entries.iter().map(|e| e.executable).collect();
    assert_eq!(executables.len(), 1, "one compiled program:\n{text}");
    let named = |prefix: &str| profile.entries.iter().any(|e| e.step.starts_with(prefix));
    assert!(named("group matmul, k"), "the product and softmax's row group run as one:\n{text}");
    assert!(named("k") && profile.entries.iter().any(|e| e.step.contains("reduce sum")), "{text}");
    let order: Vec<_> = profile.entries.iter().map(|e| e.total).collect();
    assert!(order.windows(2).all(|p| p[0] >= p[1]), "heaviest first:\n{text}");
    assert!(text.starts_with("tenjit profile: ") && text.contains("group matmul, k"), "{text}");
    let kinds: Vec<String> = profile.by_kind().into_iter().map(|(k, _, _)| k).collect();
    assert!(kinds.contains(&"group".to_string()) && kinds.contains(&"reduce".to_string()), "{kinds:?}");
    assert!(text.contains("by kind: "), "{text}");

    tenjit::profile::reset();
    assert!(tenjit::profile::report().entries.is_empty());
}
