//! A GPT traced once for every context length: its forward reads its sizes as `SymSize`s
//! (`idx.sym_size(1)`), so `tenjit::jit` with a dynamic length runs the closure once and binds
//! that trace at every later length. Values are compared with the model run lazily on the
//! interpreter.

#[path = "../examples/common/gpt.rs"]
mod gpt;

use gpt::{Config, Gpt};
use std::sync::{Arc, Mutex, MutexGuard};
use tenjit::prelude::*;

/// The backend and `compile_count()` are process-wide: the tests of this file take turns.
fn lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn tiny() -> Config {
    Config { vocab: 11, block: 16, embd: 16, heads: 2, layers: 2 }
}

fn tokens(b: usize, t: usize, seed: i64) -> Tensor {
    Tensor::from_vec((0..(b * t) as i64).map(|i| (i * 7 + seed) % 11).collect::<Vec<_>>(), [b, t])
}

fn assert_close(got: &Tensor, want: &Tensor, what: &str) {
    let (g, w) = (got.to_vec::<f32>(), want.to_vec::<f32>());
    assert_eq!(got.shape(), want.shape(), "{what}");
    for (a, b) in g.iter().zip(&w) {
        assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{what}: {a} against {b}");
    }
}

#[test]
fn a_gpt_forward_is_traced_once_for_every_length() {
    let _turn = lock();
    let mut compiles = 0;
    tenjit::manual_seed(1);
    let model = Arc::new(Gpt::new(tiny()));
    let m = model.clone();
    let forward = tenjit::jit(move |a: &[Tensor]| vec![m.forward(&a[0])]);
    for (k, t) in [5usize, 3, 9, 16, 2, 7].into_iter().enumerate() {
        let idx = tokens(2, t, k as i64);
        idx.mark_dynamic(1);
        let before = tenjit::compile_count();
        let got = forward.call(&[&idx]);
        compiles += tenjit::compile_count() - before;
        tenjit::set_backend(tenjit::Backend::Interp);
        let want = model.forward(&idx);
        assert_close(&got[0], &want, &format!("length {t}"));
        tenjit::set_backend(tenjit::Backend::Cpu);
    }
    assert_eq!(forward.why_traced_again(), None);
    assert_eq!(forward.trace_count(), 1, "{:?}", forward.trace_reasons());
    assert_eq!(compiles, 1, "one program for every length");
}

#[test]
fn a_gpt_loss_and_its_gradients_are_traced_once_for_every_length() {
    let _turn = lock();
    let mut compiles = 0;
    tenjit::manual_seed(2);
    let mut model = Gpt::new(tiny());
    let params: Vec<Tensor> = model.named_parameters_mut().into_iter().map(|(_, p)| p.clone()).collect();
    let model = Arc::new(model);
    let (m, ps) = (model.clone(), params.clone());
    let step = move |a: &[Tensor]| {
        let loss = m.loss(&a[0], &a[1]);
        let refs: Vec<&Tensor> = ps.iter().collect();
        let mut out = tenjit::grad(&[&loss], &refs);
        out.push(loss);
        out
    };
    let jitted = tenjit::jit(step.clone());
    for (k, t) in [4usize, 7, 2, 16, 11].into_iter().enumerate() {
        let (x, y) = (tokens(3, t, k as i64), tokens(3, t, k as i64 + 1));
        x.mark_dynamic(1);
        y.mark_dynamic(1);
        let before = tenjit::compile_count();
        let got = jitted.call(&[&x, &y]);
        compiles += tenjit::compile_count() - before;
        tenjit::set_backend(tenjit::Backend::Interp);
        let want = step(&[x.clone(), y.clone()]);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_close(g, w, &format!("length {t}, output {i}"));
        }
        tenjit::set_backend(tenjit::Backend::Cpu);
    }
    assert_eq!(jitted.why_traced_again(), None);
    assert_eq!(jitted.trace_count(), 1, "{:?}", jitted.trace_reasons());
    assert_eq!(compiles, 1, "one program for every length");
}
