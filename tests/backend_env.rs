//! `TENJIT_BACKEND=interp` selects the reference interpreter; `set_backend` overrides it.
//! One test: the variable is read once per process.

use tenjit::prelude::*;
use tenjit::Backend;

#[test]
fn the_backend_is_chosen_by_env_and_api() {
    std::env::set_var("TENJIT_BACKEND", "interp");
    assert_eq!(tenjit::backend(), Backend::Interp);
    let x = tensor!([1.0, 2.0, 3.0]);
    assert_eq!((&x * 2.0).exp().sum().to_vec::<f32>().len(), 1);
    assert_eq!(tenjit::compile_count(), 0, "the interpreter compiles nothing");
    tenjit::set_backend(Backend::Cpu);
    let y = (&x * 2.0).exp().sum().item();
    assert_eq!(tenjit::compile_count(), 1);
    tenjit::set_backend(Backend::Interp);
    let z = (&x * 2.0).exp().sum().item();
    assert!((y - z).abs() < 1e-4 * z.abs(), "cpu {y} vs interp {z}");
    tenjit::set_backend(Backend::Cuda);
    if tenjit::cuda::is_available() {
        let w = (&x * 2.0).exp().sum().item();
        assert!((w - z).abs() < 1e-4 * z.abs(), "cuda {w} vs interp {z}");
    } else {
        let e = (&x * 2.0).try_realize().unwrap_err().to_string();
        assert!(e.contains("not available"), "{e}");
    }
    assert_eq!(Backend::parse("cpu"), Some(Backend::Cpu));
    assert_eq!(Backend::parse("gpu"), None);
}
