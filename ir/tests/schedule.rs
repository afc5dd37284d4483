//! Row groups (`kernel::schedule`): which steps group, which do not, and that a grouped
//! program computes what the graph does. Each case is a graph in the text form; values are
//! checked by running the program in the kernel-IR interpreter, which runs a group one row at
//! a time with its local buffers poisoned, against the graph interpreter.

use tenjit_ir::kernel::eval::eval;
use tenjit_ir::kernel::lower::lower;
use tenjit_ir::kernel::print::kernel_list;
use tenjit_ir::kernel::{Program, Step};
use tenjit_ir::{interp, text, Buffer, Scalar};

/// Lowers `src`, checks the program against the graph interpreter bit for bit, and returns it.
fn lowered(src: &str) -> Program {
    let g = text::parse(src).unwrap_or_else(|e| panic!("{e}\n{src}"));
    let p = lower(&g);
    let inputs: Vec<Buffer> = g
        .inputs()
        .iter()
        .enumerate()
        .map(|(i, (_, n))| {
            let ty = g.ty(*n);
            let values =
                (0..ty.shape.numel()).map(|j| Scalar::Float(((j * 5 + i * 3) % 13) as f64 * 0.25 - 1.5));
            Buffer::from_scalars(ty.dtype, ty.shape.clone(), values)
        })
        .collect();
    let want = interp::eval(&g, &inputs).expect("graph evaluates");
    let got = eval(&p, &inputs).unwrap_or_else(|e| panic!("{e}\n{p}"));
    for (w, x) in want.iter().zip(&got) {
        let (w, x) = (w.scalars(), x.scalars());
        assert!(
            w.iter().zip(&x).all(|(a, b)| format!("{a:?}") == format!("{b:?}")),
            "program differs from the graph:\n{p}\nwant {w:?}\ngot  {x:?}"
        );
    }
    p
}

fn group_spans(p: &Program) -> Vec<(usize, usize)> {
    p.groups.iter().map(|g| (g.steps.start, g.steps.end)).collect()
}

#[test]
fn a_kernel_reading_other_rows_does_not_join() {
    // e = exp(x) is materialized (an output); y = flip(e) - e^T reads rows 3 - i and column i
    // of e for row i, so it cannot run on row i right after e's row i. Same extent, 4 rows.
    let p = lowered(
        "graph @other_rows(%x: f32[4,4]) {
           %0 = exp %x : f32[4,4]
           %1 = slice %0, start=[3,0], step=[-1,1], size=[4,4] : f32[4,4]
           %2 = permute %0, perm=[1,0] : f32[4,4]
           %3 = sub %1, %2 : f32[4,4]
           return %0, %3
         }",
    );
    assert_eq!(p.steps.len(), 2, "{}", kernel_list(&p));
    assert!(p.groups.is_empty(), "{}", kernel_list(&p));
    // Reading its own row is fine: exp(x) and exp(x) * 2 group.
    let p = lowered(
        "graph @same_row(%x: f32[4,4]) {
           %0 = exp %x : f32[4,4]
           %1 = add %0, %0 : f32[4,4]
           return %0, %1
         }",
    );
    assert_eq!(group_spans(&p), [(0, 2)], "{}", kernel_list(&p));
}

#[test]
fn a_column_reduction_does_not_join() {
    // The column mean needs every row before any row of x - mean can be computed.
    let p = lowered(
        "graph @center(%x: f32[6,3]) {
           %0 = sum %x, axes=[0] : f32[3]
           %1 = reshape %0, shape=[1,3] : f32[1,3]
           %2 = expand %1, shape=[6,3] : f32[6,3]
           %3 = sub %x, %2 : f32[6,3]
           return %3
         }",
    );
    assert!(p.groups.is_empty(), "{}", kernel_list(&p));
}

#[test]
fn a_matmul_takes_only_its_left_operand_from_a_group() {
    // h = relu(x @ w) then h @ v groups (row r of h @ v needs row r of h); h^T @ h does not
    // (row r of it needs every row of h).
    let p = lowered(
        "graph @layers(%x: f32[8,4], %w: f32[4,4], %v: f32[4,2]) {
           %0 = matmul %x, %w : f32[8,4]
           %1 = const 0.0 : f32[8,4]
           %2 = maximum %0, %1 : f32[8,4]
           %3 = matmul %2, %v : f32[8,2]
           %4 = permute %2, perm=[1,0] : f32[4,8]
           %5 = matmul %4, %2 : f32[4,4]
           return %3, %5
         }",
    );
    assert_eq!(group_spans(&p), [(0, 3)], "{}", kernel_list(&p));
    assert!(matches!(p.steps[3], Step::Matmul(_)), "{p}");
    // h is read by the product after the group, so it is stored in full; x @ w is not.
    let Step::Matmul(first) = &p.steps[0] else { panic!("{p}") };
    assert_eq!(p.groups[0].local, [first.out], "{p}");
}

#[test]
fn a_matrix_vector_product_with_a_long_contraction_runs_alone() {
    // x @ w (64 rows, k = 4) groups with its square; x^T @ g (4 rows, k = 64) does not, so
    // a backend can split its long contraction rather than its 4 outputs.
    let p = lowered(
        "graph @linear(%x: f32[64,4], %w: f32[4,1], %g: f32[64,1]) {
           %0 = matmul %x, %w : f32[64,1]
           %1 = mul %0, %0 : f32[64,1]
           %2 = permute %x, perm=[1,0] : f32[4,64]
           %3 = matmul %2, %g : f32[4,1]
           %4 = mul %3, %3 : f32[4,1]
           return %1, %4
         }",
    );
    let products: Vec<(usize, usize)> = p
        .steps
        .iter()
        .enumerate()
        .filter_map(|(s, step)| match step {
            Step::Matmul(m) => Some((s, m.m)),
            _ => None,
        })
        .collect();
    assert_eq!(products.len(), 2, "{p}");
    let grouped = |s: usize| p.groups.iter().any(|g| g.steps.contains(&s));
    for (s, m) in products {
        assert_eq!(grouped(s), m == 64, "product of {m} rows:\n{}", kernel_list(&p));
    }
}

#[test]
fn a_costly_value_shared_by_a_group_is_computed_once() {
    // tanh(x) feeds both a row sum and the elementwise output: one kernel computes it.
    let p = lowered(
        "graph @share(%x: f32[3,5]) {
           %0 = tanh %x : f32[3,5]
           %1 = sum %0, axes=[1] : f32[3]
           %2 = reshape %1, shape=[3,1] : f32[3,1]
           %3 = expand %2, shape=[3,5] : f32[3,5]
           %4 = mul %0, %3 : f32[3,5]
           return %4
         }",
    );
    assert_eq!(group_spans(&p), [(0, 3)], "{}", kernel_list(&p));
    assert_eq!(p.to_string().matches(" tanh ").count(), 1, "{p}");
    let list = kernel_list(&p);
    assert!(list.contains("computed once for k1 and k2, kept row by row"), "{list}");
}

#[test]
fn cheap_values_are_recomputed_not_shared() {
    // x * 2 costs less than a store and a load: each kernel computes it.
    let p = lowered(
        "graph @cheap(%x: f32[3,5]) {
           %c = const 2.0 : f32[3,5]
           %0 = mul %x, %c : f32[3,5]
           %1 = sum %0, axes=[1] : f32[3]
           %2 = reshape %1, shape=[3,1] : f32[3,1]
           %3 = expand %2, shape=[3,5] : f32[3,5]
           %4 = sub %0, %3 : f32[3,5]
           return %4
         }",
    );
    assert_eq!(p.steps.len(), 2, "{}", kernel_list(&p));
    assert_eq!(group_spans(&p), [(0, 2)]);
}

#[test]
fn independent_row_reductions_of_one_matrix_move_together() {
    // sum(x) and sum(x * x), split as split-reduce splits them: the row sums of x, their
    // total, the row sums of x * x, their total. The second row sum moves up past the first
    // total (it does not read it) and groups with the first row sum.
    let p = lowered(
        "graph @two_sums(%x: f32[6,5]) {
           %0 = sum %x, axes=[1] : f32[6]
           %1 = sum %0, axes=[0] : f32[]
           %2 = mul %x, %x : f32[6,5]
           %3 = sum %2, axes=[1] : f32[6]
           %4 = sum %3, axes=[0] : f32[]
           return %1, %4
         }",
    );
    assert_eq!(p.steps.len(), 4, "{}", kernel_list(&p));
    assert_eq!(group_spans(&p), [(0, 2)], "{}", kernel_list(&p));
    let axes = |s: &Step| match s {
        Step::Kernel(k) => k.reduce.as_ref().map(|r| r.axes.to_vec()),
        _ => None,
    };
    assert_eq!(axes(&p.steps[0]), Some(vec![1]), "{p}");
    assert_eq!(axes(&p.steps[1]), Some(vec![1]), "{p}");
}

#[test]
fn a_row_reduction_that_reads_the_step_before_it_stays() {
    // The second row sum reads the first total (x - total), so it must run after it: no
    // group forms, and the order is the graph's.
    let p = lowered(
        "graph @dependent(%x: f32[6,5]) {
           %0 = sum %x, axes=[1] : f32[6]
           %1 = sum %0, axes=[0] : f32[]
           %2 = reshape %1, shape=[1,1] : f32[1,1]
           %3 = expand %2, shape=[6,5] : f32[6,5]
           %4 = sub %x, %3 : f32[6,5]
           %5 = sum %4, axes=[1] : f32[6]
           return %0, %5
         }",
    );
    assert_eq!(p.steps.len(), 3, "{}", kernel_list(&p));
    assert!(p.groups.is_empty(), "{}", kernel_list(&p));
    let Step::Kernel(k) = &p.steps[1] else { panic!("{p}") };
    assert_eq!(k.space, [6], "{p}");
}
