//! Large graphs: very wide ones print (a node with tens of thousands of operands makes lines
//! longer than a Rust format width can pad, `u16::MAX`, which once panicked in the kernel list
//! and in the aligned location comments of the text form), and long ones go through the passes
//! in linear time (removing dead nodes one by one was quadratic), leaving the graph exactly as
//! the one-by-one removal did.

use tenjit_ir::kernel::{lower::lower, print::kernel_list};
use tenjit_ir::{passes, text, BinaryOp, DType, Graph, NodeId, Op, Scalar, Shape, TensorType};

/// `concat` of `n` inputs `f32[1]` along axis 0, with a source location on the concat.
fn wide_concat(n: usize) -> Graph {
    let mut g = Graph::new("wide");
    let ty = TensorType::new(DType::F32, Shape::new(&[1]));
    let inputs: Vec<_> = (0..n).map(|i| g.add_input(format!("x{i}"), ty.clone())).collect();
    let c = g.add_at(Op::Concat { axis: 0 }, &inputs, Some("model.rs:1:1".into())).unwrap();
    let e = g.add_at(Op::Unary(tenjit_ir::UnaryOp::Exp), &[c], Some("model.rs:2:1".into())).unwrap();
    g.set_outputs(vec![e]);
    g
}

#[test]
fn a_concat_of_17000_operands_prints_as_text_and_as_a_kernel_list() {
    let g = wide_concat(17_000);
    let printed = g.to_string();
    assert!(printed.contains("; at model.rs:1:1"), "the concat line keeps its location");
    let exp_line = printed.lines().find(|l| l.contains("= exp")).unwrap();
    // The short line is padded to the long one's width, so both comments share a column.
    let concat_line = printed.lines().find(|l| l.contains("= concat")).unwrap();
    assert_eq!(exp_line.find("; at"), concat_line.find("; at"));
    assert_eq!(text::parse(&printed).unwrap().to_string(), printed);
    let list = kernel_list(&lower(&g));
    assert!(list.contains("concat"), "{}", &list[..list.len().min(300)]);
}

/// `x * c + c` repeated `n` times, with `c` one of the seven constants 2..=8 (no identities for
/// the simplifier), each made afresh: CSE makes
/// seven constants shared by the whole chain and leaves the copies dead.
fn chain(n: usize) -> Graph {
    let mut g = Graph::new("chain");
    let ty = TensorType::new(DType::F32, Shape::new(&[4]));
    let mut x = g.add_input("x", ty.clone());
    for i in 0..n {
        let c = g.add(Op::Const { value: Scalar::Float((i % 7 + 2) as f64), ty: ty.clone() }, &[]).unwrap();
        x = g.add(Op::Binary(BinaryOp::Mul), &[x, c]).unwrap();
        x = g.add(Op::Binary(BinaryOp::Add), &[x, c]).unwrap();
    }
    g.set_outputs(vec![x]);
    g
}

#[test]
fn a_chain_of_150000_nodes_goes_through_the_passes_and_the_lowering() {
    // Quadratic removal took minutes here; linear takes about a second in a debug build.
    let mut g = chain(50_000);
    let standard = passes::standard();
    let refs: Vec<&dyn passes::Pass> = standard.iter().map(|p| p.as_ref()).collect();
    passes::run_passes(&mut g, &refs, &mut |_, _| {}).unwrap();
    // 7 constants and the chain's 100,000 ops and its input remain.
    assert_eq!(g.len(), 100_008);
    // One kernel of 100,000 nested operations, lowered on a test thread's 2 MiB stack (the
    // lowering once recursed along the chain and overflowed at 10,000).
    let program = lower(&g);
    assert_eq!(program.steps.len(), 1);
}

/// The ids the next `k` added nodes get: the free slots in the order the graph reuses them.
fn next_ids(g: &Graph, k: usize) -> Vec<NodeId> {
    let mut g = g.clone();
    let ty = TensorType::new(DType::F32, Shape::new(&[4]));
    (0..k).map(|_| g.add(Op::Const { value: Scalar::Float(0.0), ty: ty.clone() }, &[]).unwrap()).collect()
}

#[test]
fn removal_leaves_the_free_slots_as_one_by_one_removal_does() {
    // Dead nodes 2..=9 of a chain, some already removed one by one (the last ones, which are
    // unused), so the free list holds slots before `remove_dead` adds its own.
    let mut g = Graph::new("g");
    let ty = TensorType::new(DType::F32, Shape::new(&[4]));
    let x = g.add_input("x", ty.clone());
    let y = g.add(Op::Unary(tenjit_ir::UnaryOp::Neg), &[x]).unwrap();
    let mut dead = vec![];
    let mut d = x;
    for _ in 0..8 {
        d = g.add(Op::Unary(tenjit_ir::UnaryOp::Exp), &[d]).unwrap();
        dead.push(d);
    }
    g.set_outputs(vec![y]);
    assert!(g.remove(dead[7]) && g.remove(dead[6]));
    // One by one, petgraph pushes each removed slot on the front of its free list: 6, then 7.
    assert_eq!(next_ids(&g, 2), vec![dead[6], dead[7]]);
    g.remove_dead();
    // `remove_dead` removes 2..=7 in index order, so they come back last first, then 6 and 7
    // (slots 8 and 9), then fresh slots.
    let mut expected: Vec<NodeId> = dead[..6].iter().rev().copied().collect();
    expected.extend([dead[6], dead[7]]);
    let fresh = next_ids(&g, 9);
    assert_eq!(&fresh[..8], &expected[..]);
    assert_eq!(fresh[8].index(), 10);
    assert_eq!(g.len(), 2);
    assert_eq!(g.to_string(), "graph @g(%x: f32[4]) {\n  %0 = neg %x : f32[4]\n  return %0\n}\n");
}
