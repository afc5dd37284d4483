//! The executable cache is bounded: past its capacity the least recently used executable is
//! evicted (with its lazy-key aliases), and a structure that comes back is compiled again.
//! One test in its own binary, since compile counts are process-wide.

use tenjit::prelude::*;

/// A graph whose structure depends on `k`: `x` times k + 1 chained `exp`s, realized.
fn realize_structure(x: &Tensor, k: usize) {
    let mut y = x.clone();
    for _ in 0..=k {
        y = y.exp() * 0.5;
    }
    y.realize();
}

#[test]
fn the_cache_keeps_at_most_its_capacity_and_evicts_the_least_recently_used() {
    tenjit::set_cache_capacity(4);
    let x = tensor!([0.1, 0.2, 0.3]);
    for k in 0..10 {
        realize_structure(&x, k);
        assert!(tenjit::cached_executables() <= 4, "after {k}: {}", tenjit::cached_executables());
    }
    assert_eq!(tenjit::cached_executables(), 4);
    // The last four (6..=9) are cached: realizing them compiles nothing.
    let before = tenjit::compile_count();
    for k in 6..10 {
        realize_structure(&x, k);
    }
    assert_eq!(tenjit::compile_count(), before);
    // Use 6 again so it is the most recent; 0 was evicted long ago and compiles again,
    // evicting the least recently used, 7.
    realize_structure(&x, 6);
    realize_structure(&x, 0);
    assert_eq!(tenjit::compile_count(), before + 1);
    realize_structure(&x, 6);
    assert_eq!(tenjit::compile_count(), before + 1, "6 was used recently and stays");
    realize_structure(&x, 7);
    assert_eq!(tenjit::compile_count(), before + 2, "7 was the least recently used");
    // Shrinking the capacity evicts at once.
    tenjit::set_cache_capacity(2);
    assert_eq!(tenjit::cached_executables(), 2);
    tenjit::set_cache_capacity(tenjit::runtime::cache::DEFAULT_CAPACITY);
}
