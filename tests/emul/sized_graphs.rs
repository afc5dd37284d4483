//! Symbolic graphs for the tests of size parameters (`tests/cuda_sizes.rs` renders them,
//! `tests/emul/sized_cases.rs` runs them): each family is one graph in the text IR, lowered
//! once (`lower_symbolic`, after the runtime's passes) and instantiated at several bindings.
//! A family's `classes` group bindings whose instances have one structure (no symbol of value
//! 0 or 1, reductions on the same side of `SMALL_REDUCTION`), so they must render one CUDA C
//! text; `edges` are bindings at the special sizes (0 and 1), run but not compared as text.

use tenjit::ir::kernel::lower::lower_symbolic;
use tenjit::ir::kernel::symbolic::{instantiate, SymProgram};
use tenjit::ir::kernel::Program;
use tenjit::ir::sym::Bindings;
use tenjit::ir::text::parse;
use tenjit::ir::Graph;

/// One symbolic graph and the bindings it is instantiated at.
pub struct Family {
    /// What it is, for messages.
    pub name: &'static str,
    /// The graph's text.
    pub text: &'static str,
    /// Bindings of one structure each: their instances render the same text.
    pub classes: Vec<Vec<Bindings>>,
    /// Bindings at the special sizes 0 and 1.
    #[allow(dead_code)] // The emulation runs them; the text tests do not.
    pub edges: Vec<Bindings>,
}

/// `B` and `N` bound to each pair.
fn bn(pairs: &[(u64, u64)]) -> Vec<Bindings> {
    pairs.iter().map(|&(b, n)| [("B".to_string(), b), ("N".to_string(), n)].into_iter().collect()).collect()
}

/// The families: an elementwise kernel with broadcasts both ways, row reductions over fewer
/// and more elements than a warp, row softmax (a row group) and a matrix product.
pub fn families() -> Vec<Family> {
    vec![
        Family {
            name: "broadcast",
            text: "\
graph @broadcast(%x: f32[B,N], %b: f32[N], %c: f32[B,1]) where B:0..=300 = 8, N:0..=1000 = 40 {
  %0 = reshape %b, shape=[1,N] : f32[1,N]
  %1 = expand %0, shape=[B,N] : f32[B,N]
  %2 = add %x, %1 : f32[B,N]
  %3 = expand %c, shape=[B,N] : f32[B,N]
  %4 = mul %2, %3 : f32[B,N]
  return %4
}
",
            classes: vec![bn(&[(3, 37), (17, 5), (64, 300), (300, 7)])],
            edges: bn(&[(1, 37), (3, 1), (0, 5), (4, 0)]),
        },
        Family {
            name: "row reductions",
            text: "\
graph @rows(%x: f32[B,N]) where B:0..=300 = 8, N:1..=1000 = 40 {
  %0 = sum %x, axes=[1] : f32[B]
  %1 = max %x, axes=[1] : f32[B]
  return %0, %1
}
",
            classes: vec![
                bn(&[(3, 3), (17, 17), (64, 31), (5, 20)]),
                bn(&[(3, 33), (17, 100), (2, 257), (5, 1000)]),
            ],
            edges: bn(&[(1, 40), (3, 1), (0, 40)]),
        },
        Family {
            name: "softmax",
            text: "\
graph @softmax(%x: f32[B,N]) where B:0..=300 = 8, N:1..=1000 = 40 {
  %0 = max %x, axes=[1] : f32[B]
  %1 = reshape %0, shape=[B,1] : f32[B,1]
  %2 = expand %1, shape=[B,N] : f32[B,N]
  %3 = sub %x, %2 : f32[B,N]
  %4 = exp %3 : f32[B,N]
  %5 = sum %4, axes=[1] : f32[B]
  %6 = reshape %5, shape=[B,1] : f32[B,1]
  %7 = expand %6, shape=[B,N] : f32[B,N]
  %8 = div %4, %7 : f32[B,N]
  return %8
}
",
            classes: vec![bn(&[(3, 5), (17, 17), (64, 31)]), bn(&[(3, 33), (17, 300), (2, 1000)])],
            edges: bn(&[(1, 37), (0, 7), (4, 1)]),
        },
        Family {
            name: "matmul",
            text: "\
graph @matmul(%a: f32[B,N], %w: f32[N,10]) where B:0..=300 = 8, N:0..=1000 = 40 {
  %0 = matmul %a, %w : f32[B,10]
  return %0
}
",
            classes: vec![bn(&[(3, 17), (17, 64), (64, 5), (33, 300)])],
            edges: bn(&[(1, 17), (3, 1), (0, 9)]),
        },
    ]
}

/// The graph of `text`, parsed.
pub fn graph(text: &str) -> Graph {
    parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// The symbolic program of `g`, after the runtime's passes.
pub fn symbolic(g: &Graph) -> SymProgram {
    let mut g = g.clone();
    let passes = tenjit::ir::passes::pipeline();
    let refs: Vec<&dyn tenjit::ir::passes::Pass> = passes.iter().map(|p| p.as_ref()).collect();
    tenjit::ir::passes::run_passes(&mut g, &refs, &mut |_, _| {}).unwrap_or_else(|e| panic!("{e}"));
    lower_symbolic(&g).unwrap_or_else(|e| panic!("{e}\n{g}"))
}

/// The instance of `sym` at `values`.
pub fn instance(sym: &SymProgram, values: &Bindings) -> Program {
    instantiate(sym, values).unwrap_or_else(|e| panic!("{e:?} at {values:?}"))
}

/// `values` as text (`B=3 N=37`).
pub fn show(values: &Bindings) -> String {
    values.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
}
