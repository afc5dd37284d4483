//! The compiler on symbolic graphs: random graphs over the symbols `B` and `T` (from
//! `tenjit_ir`'s test generator), bound to random sizes (0 and 1 included, and sizes that are no
//! multiple of the vector width), run compiled (`tenjit::run_graph` binds a symbolic graph to
//! its inputs' sizes and compiles for them, reusing the machine code of kernels of one
//! structure) and by the interpreter on the concrete graph of those sizes.

#[path = "../ir/tests/common/mod.rs"]
mod ircommon;

use ircommon::symbolic::random_graph;
use ircommon::Rng;
use tenjit::ir::sym::Bindings;
use tenjit::ir::{interp, Scalar};

#[test]
fn symbolic_graphs_compile_and_agree_with_the_interpreter_at_every_size() {
    tenjit::set_backend(tenjit::Backend::Cpu);
    let mut r = Rng::new(0x5eed_0014);
    let sizes = [0u64, 1, 2, 3, 5, 8, 9, 17, 33];
    let (mut compared, mut unbound) = (0, 0);
    for case in 0..40 {
        let g = random_graph(&mut r);
        for _ in 0..3 {
            let values: Bindings =
                [("B".to_string(), r.pick(&sizes)), ("T".to_string(), r.pick(&sizes[1..]))].into();
            let bound = g.bind(&values).unwrap_or_else(|e| panic!("case {case} at {values:?}: {e}"));
            let inputs =
                ircommon::symbolic::inputs_for(&bound, |i| ((i * 7 + case) % 11) as f64 * 0.25 - 1.0);
            let want = interp::eval(&bound, &inputs).unwrap_or_else(|e| panic!("case {case}: {e}"));
            // A symbol that no input dim is (a size only an expand or a weight's width has)
            // gets no size from the inputs: a clear error, not a guess.
            let read = g.bindings_for(&inputs.iter().map(|b| b.shape().dims()).collect::<Vec<_>>());
            if let Err(e) = &read {
                let err = tenjit::run_graph(&g, &inputs).unwrap_err().to_string();
                assert!(err.contains("has no value"), "case {case}: {e} / {err}");
                unbound += 1;
                continue;
            }
            let got =
                tenjit::run_graph(&g, &inputs).unwrap_or_else(|e| panic!("case {case} at {values:?}: {e}"));
            compared += 1;
            assert_eq!(got.len(), want.len());
            for (o, (a, b)) in got.iter().zip(&want).enumerate() {
                assert_eq!(a.ty(), b.ty(), "case {case} at {values:?}, output {o}");
                for i in 0..a.numel() {
                    let (Scalar::Float(x), Scalar::Float(y)) = (a.scalar(i), b.scalar(i)) else {
                        panic!("case {case}: float outputs");
                    };
                    assert!(
                        x == y || (x - y).abs() <= 1e-9 * y.abs().max(1.0),
                        "case {case} at {values:?}, output {o}, element {i}: compiled {x}, interpreter {y}\n{}",
                        tenjit::ir::text::print(&g)
                    );
                }
            }
        }
    }
    assert!(
        compared >= 60 && unbound > 0,
        "{compared} runs compared, {unbound} with a symbol no input gives"
    );
}
