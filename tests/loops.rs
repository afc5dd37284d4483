//! `fori_loop`: loops compiled into one program on the CPU agree with the interpreter (the
//! oracle) and with values computed by hand, for elementwise, reduction and matmul bodies,
//! 0, 1 and many trips, carried values that swap places or stay unchanged, invariants, nested
//! loops, loops inside `tenjit::jit`, gradients through loops, and the W5.small training loop;
//! bad bodies are clear errors.

use tenjit::prelude::*;
use tenjit::Backend;

#[path = "common/on_both.rs"]
mod on_both;
use on_both::on_both;

/// Runs `case` on the CPU backend and in the interpreter; asserts the values agree to `tol`
/// (relative) and returns the CPU's.
fn both(tol: f32, case: impl Fn() -> Vec<Vec<f32>>) -> Vec<Vec<f32>> {
    let results = std::sync::Mutex::new(Vec::new());
    on_both(|_| results.lock().unwrap().push(case()));
    let results = results.into_inner().unwrap();
    let (cpu, interp) = (&results[0], &results[1]);
    assert_eq!(cpu.len(), interp.len());
    for (c, i) in cpu.iter().zip(interp) {
        assert_eq!(c.len(), i.len());
        for (a, b) in c.iter().zip(i) {
            assert!((a - b).abs() <= tol * (1.0 + b.abs()), "cpu {c:?} and interpreter {i:?} differ");
        }
    }
    cpu.clone()
}

fn values(ts: &[Tensor]) -> Vec<Vec<f32>> {
    ts.iter().map(|t| t.to_vec::<f32>()).collect()
}

#[test]
fn elementwise_body_for_zero_one_and_many_trips() {
    for trips in [0usize, 1, 2, 7] {
        let got = both(1e-6, || {
            let x = tensor!([1.0, -2.0, 3.0]);
            values(&tenjit::fori_loop(trips, &[x], |c| vec![&c[0] * 0.5 + 1.0]))
        });
        let mut want = vec![1.0f32, -2.0, 3.0];
        for _ in 0..trips {
            want.iter_mut().for_each(|v| *v = *v * 0.5 + 1.0);
        }
        assert_eq!(got[0], want, "{trips} trips");
    }
}

#[test]
fn reduction_and_matmul_bodies() {
    let got = both(1e-5, || {
        let v = tensor!([[1.0, 2.0], [3.0, 4.0]]);
        let s = Tensor::zeros([2]);
        values(&tenjit::fori_loop(5, &[v, s], |c| vec![&c[0] * 0.9, &c[1] + c[0].sum_dim(1, false)]))
    });
    let (mut v, mut s) = (vec![1.0f32, 2.0, 3.0, 4.0], [0.0f32; 2]);
    for _ in 0..5 {
        s[0] += v[0] + v[1];
        s[1] += v[2] + v[3];
        v.iter_mut().for_each(|x| *x *= 0.9);
    }
    assert!(got[1].iter().zip(s).all(|(a, b)| (a - b).abs() < 1e-4), "{:?} vs {s:?}", got[1]);

    both(1e-5, || {
        let w = tensor!([[0.5, -0.25, 0.0], [0.1, 0.2, 0.3], [-0.4, 0.0, 0.6]]);
        let h = tensor!([[1.0], [0.5], [-1.0]]);
        values(&tenjit::fori_loop(12, &[h], |c| vec![w.matmul(&c[0]).tanh()]))
    });
}

#[test]
fn carried_values_that_swap_or_stay() {
    for trips in [3usize, 4] {
        let got = both(0.0, || {
            let (a, b) = (tensor!([1.0, 2.0]), tensor!([10.0, 20.0]));
            values(&tenjit::fori_loop(trips, &[a, b], |c| vec![c[1].clone(), c[0].clone()]))
        });
        let swapped = trips % 2 == 1;
        assert_eq!(got[0], if swapped { vec![10.0, 20.0] } else { vec![1.0, 2.0] });
        assert_eq!(got[1], if swapped { vec![1.0, 2.0] } else { vec![10.0, 20.0] });
    }
    let got = both(0.0, || {
        let (a, b) = (tensor!([1.0, 2.0]), tensor!([0.0, 0.0]));
        values(&tenjit::fori_loop(4, &[a, b], |c| vec![c[0].clone(), &c[1] + &c[0]]))
    });
    assert_eq!(got, vec![vec![1.0, 2.0], vec![4.0, 8.0]]);
}

#[test]
fn invariants_and_the_counter() {
    // A lazy tensor the body captures is computed once, before the loop.
    let got = both(1e-6, || {
        let base = tensor!([1.0, 2.0]);
        let step = (&base * 2.0).exp() * 0.0 + 0.5;
        values(&tenjit::fori_loop(6, std::slice::from_ref(&base), |c| vec![&c[0] + &step]))
    });
    assert_eq!(got[0], vec![4.0, 5.0]);
    // The counter counts trips from 0: the sum of 0..10.
    let got = both(0.0, || {
        let s = Tensor::zeros([1]);
        values(&tenjit::fori_loop_i(10, &[s], |i, c| vec![&c[0] + i.to_dtype(DType::F32)]))
    });
    assert_eq!(got[0], vec![45.0]);
}

#[test]
fn nested_loops() {
    let got = both(0.0, || {
        let x = Tensor::zeros([2]);
        values(&tenjit::fori_loop(3, &[x], |outer| {
            tenjit::fori_loop(4, &[outer[0].clone()], |inner| vec![&inner[0] + 1.0])
        }))
    });
    assert_eq!(got[0], vec![12.0, 12.0]);
}

#[test]
fn fori_loop_inside_jit() {
    let step = tenjit::jit(|p: &[Tensor]| tenjit::fori_loop(5, &[p[0].clone()], |c| vec![&c[0] * 2.0]));
    let out = step.call(&[&tensor!([1.0, 3.0])]);
    assert_eq!(out[0].to_vec::<f32>(), vec![32.0, 96.0]);
    let out = step.call(&[&tensor!([0.5, 1.0])]);
    assert_eq!(out[0].to_vec::<f32>(), vec![16.0, 32.0]);
    assert_eq!(step.trace_count(), 1);
}

#[test]
fn the_whole_loop_is_one_program() {
    let _turn = on_both::TURN.lock().unwrap_or_else(|p| p.into_inner());
    tenjit::set_backend(Backend::Cpu);
    let x = tensor!([1.0, 2.0]);
    let out = tenjit::fori_loop(100, &[x], |c| vec![&c[0] + 1.0]);
    let stages = tenjit::compile_stages(&tenjit::graph(&[&out[0]])).unwrap();
    assert!(stages.program.contains("<- loop b0 trips=100"), "{}", stages.program);
    assert!(stages.kernels.contains("trips=100"), "{}", stages.kernels);
    assert_eq!(out[0].to_vec::<f32>(), vec![101.0, 102.0]);
}

#[test]
fn bad_bodies_are_clear_errors() {
    let x = tensor!([1.0, 2.0]);
    let e = tenjit::try_fori_loop(3, std::slice::from_ref(&x), |c| vec![c[0].reshape([1, 2])])
        .unwrap_err()
        .to_string();
    assert!(e.contains("carried value 0 is f32[2] before the body and f32[1,2] after it"), "{e}");
    let e = tenjit::try_fori_loop(3, std::slice::from_ref(&x), |c| vec![c[0].clone(), c[0].clone()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("takes 1 carried value(s) but returns 2"), "{e}");
    let e = tenjit::try_fori_loop(3, std::slice::from_ref(&x), |c| vec![&c[0] + Tensor::rand([2])])
        .unwrap_err()
        .to_string();
    assert!(e.contains("draws random numbers"), "{e}");
    let e = tenjit::try_fori_loop(3, &[], |c| c.to_vec()).unwrap_err().to_string();
    assert!(e.contains("carries no value"), "{e}");
}

/// Reverse mode through a loop (the history and backward loops of the rule) gives the
/// gradients of the same computation unrolled, for the initial values and a captured weight.
#[test]
fn gradients_through_a_loop_equal_the_unrolled_ones() {
    let body = |c: &Tensor, w: &Tensor| (c * w).sin() + c * 0.5;
    let got = both(1e-5, || {
        let (x, w) = (tensor!([0.3, -1.2, 2.0]).requires_grad_(), tensor!([1.5, 0.5, -0.7]).requires_grad_());
        let out = tenjit::fori_loop(4, std::slice::from_ref(&x), |c| vec![body(&c[0], &w)]);
        let g = tenjit::grad(&[&out[0].square().sum()], &[&x, &w]);
        values(&g)
    });
    let (x, w) = (tensor!([0.3, -1.2, 2.0]).requires_grad_(), tensor!([1.5, 0.5, -0.7]).requires_grad_());
    let mut c = x.clone();
    for _ in 0..4 {
        c = body(&c, &w);
    }
    let want = values(&tenjit::grad(&[&c.square().sum()], &[&x, &w]));
    for (g, w) in got.iter().zip(&want) {
        assert!(g.iter().zip(w).all(|(a, b)| (a - b).abs() <= 1e-5 * (1.0 + b.abs())), "{g:?} vs {w:?}");
    }
}

#[test]
fn a_gradient_through_a_loop_carrying_an_integer_is_an_error() {
    let w = tensor!([1.0, 2.0]).requires_grad_();
    let n = Tensor::from_vec(vec![0i64], [1]);
    let out = tenjit::fori_loop(3, &[w.clone(), n], |c| vec![&c[0] * 2.0, &c[1] + 1]);
    let e = tenjit::try_grad(&[&out[0].sum()], &[&w]).unwrap_err().to_string();
    assert!(e.contains("fori_loop is not differentiable yet when it carries an integer value"), "{e}");
}

/// W5.small (the tutorial's linear regression, 100 epochs of SGD) as one `fori_loop` learns
/// what 100 calls of the `jit` step learn.
#[test]
fn w5_small_as_one_loop_equals_the_jit_steps() {
    let x = tensor!([[1.0], [2.0], [3.0], [4.0]]);
    let y = tensor!([2.0, 4.0, 6.0, 8.0]);
    let loss = |w: &Tensor, b: &Tensor| (x.matmul(w) + b - &y).square().mean();
    let sgd = |p: &[Tensor]| {
        let (w, b) = (p[0].requires_grad_(), p[1].requires_grad_());
        let g = tenjit::grad(&[&loss(&w, &b)], &[&w, &b]);
        vec![&w - &g[0] * 0.01, &b - &g[1] * 0.01]
    };
    let step = tenjit::jit(sgd);
    let (mut w, mut b) = (Tensor::zeros([1]), Tensor::zeros([1]));
    for _ in 0..100 {
        let out = step.call(&[&w, &b]);
        (w, b) = (out[0].clone(), out[1].clone());
    }
    let got = both(1e-6, || values(&tenjit::fori_loop(100, &[Tensor::zeros([1]), Tensor::zeros([1])], sgd)));
    for (g, want) in got.iter().zip([w.to_vec::<f32>(), b.to_vec::<f32>()]) {
        assert!((g[0] - want[0]).abs() <= 1e-6, "{g:?} vs {want:?}");
    }
}

/// A body large enough for the CPU's general paths: a GEMM (not the small-product loop) and a
/// row group run as one.
#[test]
fn a_large_body_runs_its_products_and_groups_as_usual() {
    let w: Vec<f32> = (0..64 * 64).map(|i| ((i * 37 % 101) as f32 - 50.0) / 800.0).collect();
    let h: Vec<f32> = (0..256 * 64).map(|i| ((i * 13 % 29) as f32 - 14.0) / 10.0).collect();
    both(1e-4, || {
        let w = Tensor::from_vec(w.clone(), [64, 64]);
        let bias = Tensor::from_vec((0..64).map(|i| i as f32 / 64.0).collect::<Vec<f32>>(), [64]);
        let h = Tensor::from_vec(h.clone(), [256, 64]);
        let out = tenjit::fori_loop(3, &[h], |c| vec![(c[0].matmul(&w) + &bias).tanh()]);
        values(&out)
    });
}

#[test]
fn an_error_inside_the_body_is_an_error_not_a_panic() {
    on_both(|backend| {
        let x = Tensor::from_vec(vec![6i64, 3], [2]);
        let d = Tensor::from_vec(vec![2i64, 0], [2]);
        let out = tenjit::fori_loop(2, &[x], |c| vec![c[0].remainder(&d)]);
        let e = out[0].try_realize().unwrap_err().to_string();
        // The failure is the loop's, at the user's call of fori_loop.
        assert!(e.contains("fori_loop: integer remainder by zero (at tests/loops.rs:"), "{backend:?}: {e}");
        assert!(e.contains("by zero") && e.contains("tests/loops.rs"), "{backend:?}: {e}");
    });
}

#[test]
fn a_result_nobody_reads() {
    let got = both(0.0, || {
        let (a, b) = (tensor!([1.0]), tensor!([0.0]));
        let out = tenjit::fori_loop(5, &[a, b], |c| vec![&c[0] * 2.0, &c[1] + &c[0]]);
        values(&out[1..])
    });
    assert_eq!(got[0], vec![31.0]);
}

/// The CUDA code generator does not compile loops yet: it says so rather than failing later.
#[test]
fn cuda_refuses_a_loop_with_a_clear_error() {
    let out = tenjit::fori_loop(3, &[tensor!([1.0, 2.0])], |c| vec![&c[0] * 2.0]);
    let program = tenjit::ir::kernel::lower::lower(&tenjit::graph(&[&out[0]]));
    let e = tenjit::backend::cuda::codegen::render_program(&program).unwrap_err().to_string();
    assert!(e.contains("fori_loop is not compiled for CUDA yet"), "{e}");
}

/// A body may return a captured tensor or a constant for a carried value: the loop's result
/// is that value (once the loop runs at all).
#[test]
fn a_body_returning_a_captured_tensor_or_a_constant() {
    let got = both(0.0, || {
        let captured = tensor!([7.0, 8.0]);
        let init = [tensor!([1.0, 2.0]), tensor!([3.0, 4.0])];
        values(&tenjit::fori_loop(2, &init, |_| vec![captured.clone(), Tensor::zeros([2])]))
    });
    assert_eq!(got, vec![vec![7.0, 8.0], vec![0.0, 0.0]]);
}

#[test]
fn views_of_invariants_stay_views_inside_the_body() {
    // `x.t()` of a captured matrix: hoisting it would copy `x` transposed into a dense loop
    // operand before the loop (and every trip would read both); the body reads `x` through the
    // view instead, as one step of `jit` would. A value computed from invariants alone through
    // a view (`x.t() @ x`) is still computed once, before the loop.
    let case = || {
        let x = tensor!([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]]);
        let w = tensor!([0.1, 0.2]);
        let out = tenjit::fori_loop(4, &[w], |c| {
            let gram = x.t().matmul(&x).sum();
            vec![&c[0] * 0.5 + x.matmul(&x.t().matmul(&c[0])) * 0.01 + gram * 0.001]
        });
        let list = tenjit::inspect(&[&out[0]]).kernels().to_string();
        let before_loop = |kind: &str| {
            list.lines().filter(|l| l.contains(kind) && l.contains("dense operand of loop")).count() as f32
        };
        values(&out)
            .into_iter()
            .chain([vec![before_loop("elementwise"), before_loop("reduce sum")]])
            .collect()
    };
    let got = both(1e-5, case);
    assert_eq!(
        got[1],
        [0.0, 1.0],
        "no copy of a view for the loop; the invariant sum computed once before it"
    );
    let (x, mut w) = ([[1.0f32, 2.0, 0.5], [0.0, -1.0, 3.0]], [0.1f32, 0.2]);
    let gram: f32 = (0..3).map(|i| (0..3).map(|j| x[0][i] * x[0][j] + x[1][i] * x[1][j]).sum::<f32>()).sum();
    for _ in 0..4 {
        let v: Vec<f32> = (0..3).map(|j| x[0][j] * w[0] + x[1][j] * w[1]).collect();
        let xv: Vec<f32> = (0..2).map(|i| (0..3).map(|j| x[i][j] * v[j]).sum()).collect();
        w = [w[0] * 0.5 + xv[0] * 0.01 + gram * 0.001, w[1] * 0.5 + xv[1] * 0.01 + gram * 0.001];
    }
    for (g, e) in got[0].iter().zip(w) {
        assert!((g - e).abs() <= 1e-5 * (1.0 + e.abs()), "{:?} against {w:?}", got[0]);
    }
}
