//! Random graphs over symbolic dims, for the IR's tests and the compiler's: two symbols `B`
//! (0 to 64) and `T` (1 to 64), unary, binary, expand of a unit axis, sum reductions, permutes,
//! reshapes that merge two axes and matmuls; every op typed by the graph's symbolic rules.

use super::Rng;
use tenjit_ir::ops::{BinaryOp, Dims, IDims, ReduceOp, Scalar, UnaryOp};
use tenjit_ir::sym::{Bindings, Dim, SymExpr, Symbol};
use tenjit_ir::text::print;
use tenjit_ir::{Buffer, DType, Graph, NodeId, Op, Shape, TensorType};

fn bind(pairs: &[(&str, u64)]) -> Bindings {
    pairs.iter().map(|&(n, v)| (n.to_string(), v)).collect()
}

/// One input buffer per input of the concrete graph `g`, element `i` of each `value(i)`.
pub fn inputs_for(g: &Graph, value: impl Fn(usize) -> f64) -> Vec<Buffer> {
    g.inputs()
        .iter()
        .map(|&(_, id)| {
            let dims = g.ty(id).shape.dims().to_vec();
            let n: usize = dims.iter().product();
            Buffer::from_vec((0..n).map(&value).collect::<Vec<f64>>(), Shape::new(&dims)).unwrap()
        })
        .collect()
}

/// A symbolic dim, `name`.
pub fn s(name: &str) -> Dim {
    Dim::from_expr(SymExpr::symbol(name).unwrap()).unwrap()
}

pub fn shape(dims: &[Dim], hints: &Bindings) -> Shape {
    let sizes: Vec<usize> = dims.iter().map(|d| d.eval(hints).unwrap() as usize).collect();
    Shape::symbolic(dims.to_vec(), &sizes).unwrap()
}

/// A random symbolic graph over `B` and `T`: unary, binary, expand of a unit axis, reductions,
/// permutes, reshapes that merge two axes, matmul, products and sums with splats of 1 and 0,
/// slices of constant axes and of the first row of `T`; each op's result typed by the graph.
/// The hints are drawn from 0 (`B`) or 1 (`T`) up, so a rule that decides on hint sizes meets
/// empty and unit axes.
pub fn random_graph(r: &mut Rng) -> Graph {
    let mut g = Graph::new("random");
    let hints = bind(&[("B", r.below(6) as u64), ("T", 1 + r.below(5) as u64)]);
    g.declare_symbol(Symbol::new("B", 0, Some(64)).unwrap(), hints["B"]).unwrap();
    g.declare_symbol(Symbol::new("T", 1, Some(64)).unwrap(), hints["T"]).unwrap();
    let pool = [s("B"), s("T"), Dim::from(3), Dim::from(1)];
    let mut vals: Vec<NodeId> = Vec::new();
    for i in 0..2 {
        let rank = 1 + r.below(3);
        let dims: Vec<Dim> = (0..rank).map(|_| r.pick(&pool)).collect();
        vals.push(g.add_input(format!("x{i}"), TensorType::new(DType::F64, shape(&dims, &hints))));
    }
    for _ in 0..12 {
        let a = r.pick(&vals);
        let ty = g.ty(a).clone();
        let dims = ty.shape.sym_dims();
        let rank = dims.len();
        let made = match r.below(9) {
            0 => g.add(Op::Unary(r.pick(&[UnaryOp::Exp, UnaryOp::Neg, UnaryOp::Abs])), &[a]),
            1 => {
                // A partner of the same symbolic shape, if any, else itself.
                let b = vals.iter().copied().find(|&v| v != a && g.ty(v) == &ty).unwrap_or(a);
                g.add(Op::Binary(r.pick(&[BinaryOp::Add, BinaryOp::Mul, BinaryOp::Maximum])), &[a, b])
            }
            2 if rank > 0 => {
                let axes: Dims = (0..rank).filter(|_| r.chance(2)).collect();
                g.add(Op::Reduce { op: ReduceOp::Sum, axes }, &[a])
            }
            3 if rank > 1 => {
                let mut perm: Dims = (0..rank).collect();
                perm.swap(0, rank - 1);
                g.add(Op::Permute { perm }, &[a])
            }
            4 if rank > 1 => {
                let merged = SymExpr::mul(&dims[0].expr().unwrap(), &dims[1].expr().unwrap()).unwrap();
                let mut to = vec![Dim::from_expr(merged).unwrap()];
                to.extend(dims[2..].iter().cloned());
                g.add(Op::Reshape { shape: shape(&to, g.hints()) }, &[a])
            }
            5 if dims.contains(&Dim::from(1)) => {
                let to: Vec<Dim> =
                    dims.iter().map(|d| if *d == Dim::from(1) { r.pick(&pool) } else { d.clone() }).collect();
                g.add(Op::Expand { shape: shape(&to, g.hints()) }, &[a])
            }
            7 => {
                let (value, op) =
                    r.pick(&[(1.0, BinaryOp::Mul), (-0.0, BinaryOp::Add), (0.0, BinaryOp::Sub)]);
                let c = g.add(Op::Const { value: Scalar::Float(value), ty: ty.clone() }, &[]).unwrap();
                g.add(Op::Binary(op), &[a, c])
            }
            8 if dims.iter().any(|d| *d == Dim::from(3) || *d == s("T")) => {
                // Rows 1..3 of a constant axis of 3, or row 0 of `T` (never empty).
                let d = dims.iter().position(|d| *d == Dim::from(3) || *d == s("T")).unwrap();
                let (first, len) = if dims[d] == Dim::from(3) { (1, 2) } else { (0, 1) };
                let hint = ty.shape.dims();
                let start: IDims = (0..rank).map(|i| if i == d { first } else { 0 }).collect();
                let size: Dims = (0..rank).map(|i| if i == d { len } else { hint[i] }).collect();
                let step: IDims = (0..rank).map(|_| 1).collect();
                if dims.iter().enumerate().any(|(i, x)| i != d && x.as_const().is_none()) {
                    // Other symbolic axes would need symbolic sizes: take them whole another time.
                    continue;
                }
                g.add(Op::Slice { start, step, size, bounds: None }, &[a])
            }
            6 if rank == 2 => {
                let b_dims = vec![dims[1].clone(), r.pick(&pool)];
                let b = g.add_input(
                    format!("w{}", vals.len()),
                    TensorType::new(DType::F64, shape(&b_dims, g.hints())),
                );
                g.add(Op::Matmul, &[a, b])
            }
            _ => continue,
        };
        vals.push(made.unwrap_or_else(|e| panic!("{e}\n{}", print(&g))));
    }
    let n = vals.len();
    g.set_outputs(vals[n - 3..].to_vec());
    g
}
