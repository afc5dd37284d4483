//! Very wide graphs print: a node with tens of thousands of operands makes lines longer than a
//! Rust format width can pad (`u16::MAX`), which once panicked in the kernel list and in the
//! aligned location comments of the text form.

use tenjit_ir::kernel::{lower::lower, print::kernel_list};
use tenjit_ir::{text, DType, Graph, Op, Shape, TensorType};

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
