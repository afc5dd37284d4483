//! Tests of fusion, the kernel IR's text form and its interpreter: the kernel counts and
//! boundary reasons of the design's target graphs (softmax, normalization, `sin + cos²`,
//! Linear+ReLU), snapshots of their programs and kernel lists, and a differential test over
//! random graphs: `kernel::eval(lower(g)) == interp::eval(g)`, bit for bit.

use tenjit_ir::interp;
use tenjit_ir::kernel::eval::{eval, KernelError};
use tenjit_ir::kernel::lower::lower;
use tenjit_ir::kernel::print::kernel_list;
use tenjit_ir::kernel::{BufferKind, Inst, Program, Step};
use tenjit_ir::ops::{Dims, IDims};
use tenjit_ir::{
    ArgOp, BinaryOp, Buffer, DType, Graph, NodeId, Op, ReduceOp, Scalar, Shape, TensorType, UnaryOp,
};

mod common;
use common::{graphs, Rng};

fn f32t(dims: &[usize]) -> TensorType {
    TensorType::new(DType::F32, Shape::new(dims))
}

fn add(g: &mut Graph, op: Op, args: &[NodeId]) -> NodeId {
    g.add(op.clone(), args).unwrap_or_else(|e| panic!("{op:?}: {e}"))
}

fn reduce(g: &mut Graph, op: ReduceOp, x: NodeId, axes: &[usize]) -> NodeId {
    add(g, Op::Reduce { op, axes: axes.iter().copied().collect() }, &[x])
}

fn reshape(g: &mut Graph, x: NodeId, dims: &[usize]) -> NodeId {
    add(g, Op::Reshape { shape: Shape::new(dims) }, &[x])
}

fn expand(g: &mut Graph, x: NodeId, dims: &[usize]) -> NodeId {
    add(g, Op::Expand { shape: Shape::new(dims) }, &[x])
}

fn bin(g: &mut Graph, op: BinaryOp, a: NodeId, b: NodeId) -> NodeId {
    add(g, Op::Binary(op), &[a, b])
}

fn un(g: &mut Graph, op: UnaryOp, a: NodeId) -> NodeId {
    add(g, Op::Unary(op), &[a])
}

fn constant(g: &mut Graph, value: f64, dims: &[usize]) -> NodeId {
    add(g, Op::Const { value: Scalar::Float(value).cast(DType::F32), ty: f32t(dims) }, &[])
}

fn kernels(p: &Program) -> usize {
    p.steps.iter().filter(|s| matches!(s, Step::Kernel(_))).count()
}

fn reasons(p: &Program) -> Vec<String> {
    p.steps
        .iter()
        .map(|s| match s {
            Step::Kernel(k) => k.reason.clone(),
            Step::Matmul(_) => "matmul".into(),
            Step::Op(o) => o.reason.clone(),
            Step::Loop(_) => "loop".into(),
        })
        .collect()
}

/// Float inputs of `g`'s types, with a fixed pattern of values.
fn inputs_for(g: &Graph) -> Vec<Buffer> {
    g.inputs()
        .iter()
        .enumerate()
        .map(|(i, (_, n))| {
            let ty = g.ty(*n);
            let values =
                (0..ty.shape.numel()).map(|j| Scalar::Float(((j * 7 + i * 3) % 11) as f64 * 0.37 - 1.5));
            Buffer::from_scalars(ty.dtype, ty.shape.clone(), values)
        })
        .collect()
}

/// Checks `kernel::eval(lower(g)) == interp::eval(g)` bit for bit, and returns the program.
fn lower_checked(g: &Graph) -> Program {
    let p = lower(g);
    let inputs = inputs_for(g);
    let want = interp::eval(g, &inputs).unwrap_or_else(|e| panic!("interp: {e}"));
    let got = eval(&p, &inputs).unwrap_or_else(|e| panic!("kernel eval: {e}\n{p}"));
    assert_same(&got, &want, &p);
    p
}

fn assert_same(got: &[Buffer], want: &[Buffer], p: &Program) {
    assert_eq!(got.len(), want.len(), "output count\n{p}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.ty(), w.ty(), "output {i}: type\n{p}");
        // Scalars compare floats by their bits, so NaN equals NaN and -0 differs from 0.
        assert_eq!(g.scalars(), w.scalars(), "output {i}: values\n{p}");
    }
}

/// Row softmax as the front end builds it after CSE: `max` and `exp(x - max)` shared.
fn softmax() -> Graph {
    let mut g = Graph::new("softmax");
    let x = g.add_input("x", f32t(&[4, 8]));
    let m = reduce(&mut g, ReduceOp::Max, x, &[1]);
    let m = reshape(&mut g, m, &[4, 1]);
    let mb = expand(&mut g, m, &[4, 8]);
    let d = bin(&mut g, BinaryOp::Sub, x, mb);
    let e = un(&mut g, UnaryOp::Exp, d);
    let s = reduce(&mut g, ReduceOp::Sum, e, &[1]);
    let s = reshape(&mut g, s, &[4, 1]);
    let sb = expand(&mut g, s, &[4, 8]);
    let y = bin(&mut g, BinaryOp::Div, e, sb);
    g.set_outputs(vec![y]);
    g
}

/// `(X - mean) / (std + 1e-8)` over axis 0, as the front end builds it after CSE (`X - mean`
/// shared by the variance and the result).
fn normalize() -> Graph {
    let (n, d) = (6, 3);
    let mut g = Graph::new("normalize");
    let x = g.add_input("X", f32t(&[n, d]));
    let s = reduce(&mut g, ReduceOp::Sum, x, &[0]);
    let s = reshape(&mut g, s, &[1, d]);
    let count = constant(&mut g, n as f64, &[1, d]);
    let mean = bin(&mut g, BinaryOp::Div, s, count);
    let mb = expand(&mut g, mean, &[n, d]);
    let xc = bin(&mut g, BinaryOp::Sub, x, mb);
    let sq = bin(&mut g, BinaryOp::Mul, xc, xc);
    let v = reduce(&mut g, ReduceOp::Sum, sq, &[0]);
    let v = reshape(&mut g, v, &[1, d]);
    let dof = constant(&mut g, (n - 1) as f64, &[1, d]);
    let var = bin(&mut g, BinaryOp::Div, v, dof);
    let std = un(&mut g, UnaryOp::Sqrt, var);
    let eps = constant(&mut g, 1e-8, &[1, d]);
    let den = bin(&mut g, BinaryOp::Add, std, eps);
    let db = expand(&mut g, den, &[n, d]);
    let y = bin(&mut g, BinaryOp::Div, xc, db);
    g.set_outputs(vec![y]);
    g
}

/// `sin(x) + cos(x)**2`.
fn sin_cos() -> Graph {
    let mut g = Graph::new("sin_cos");
    let x = g.add_input("x", f32t(&[3, 5]));
    let s = un(&mut g, UnaryOp::Sin, x);
    let c = un(&mut g, UnaryOp::Cos, x);
    let two = constant(&mut g, 2.0, &[3, 5]);
    let c2 = bin(&mut g, BinaryOp::Pow, c, two);
    let y = bin(&mut g, BinaryOp::Add, s, c2);
    g.set_outputs(vec![y]);
    g
}

/// `relu(x @ w + b)`, with relu as `maximum(x, 0)`.
fn linear_relu() -> Graph {
    let mut g = Graph::new("linear_relu");
    let x = g.add_input("x", f32t(&[4, 3]));
    let w = g.add_input("w", f32t(&[3, 2]));
    let b = g.add_input("b", f32t(&[2]));
    let mm = add(&mut g, Op::Matmul, &[x, w]);
    let b = reshape(&mut g, b, &[1, 2]);
    let b = expand(&mut g, b, &[4, 2]);
    let z = bin(&mut g, BinaryOp::Add, mm, b);
    let zero = constant(&mut g, 0.0, &[4, 2]);
    let y = bin(&mut g, BinaryOp::Maximum, z, zero);
    g.set_outputs(vec![y]);
    g
}

#[test]
fn softmax_is_one_row_group_that_computes_exp_once() {
    let p = lower_checked(&softmax());
    // max; exp(x - max), shared by the sum and the division; the sum; the division. They run
    // as one group, row block by row block, with the max, the exps and the sum row-local.
    assert_eq!(kernels(&p), 4);
    assert_eq!(
        reasons(&p),
        [
            "reduction output used at a broadcast shape",
            "computed once for k2 and k3, kept row by row",
            "reduction output used at a broadcast shape",
            "graph output"
        ]
    );
    assert_eq!(p.groups.len(), 1);
    assert_eq!(p.groups[0].steps, 0..4);
    assert_eq!(p.groups[0].local.len(), 3);
    let exps = p
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::Kernel(k) => Some(k.body.iter().filter(|i| i.inst == Inst::Unary(UnaryOp::Exp, 2)).count()),
            _ => None,
        })
        .sum::<usize>();
    assert_eq!(exps, 1, "exp is computed in one kernel:\n{p}");
    insta::assert_snapshot!("softmax_program", p.to_string());
    insta::assert_snapshot!("softmax_list", kernel_list(&p));
}

#[test]
fn normalization_is_three_kernels() {
    let p = lower_checked(&normalize());
    // mean (sum with a division epilogue); variance with sqrt and + 1e-8 in its epilogue; the
    // final elementwise kernel, which recomputes X - mean rather than storing it.
    assert_eq!(kernels(&p), 3);
    let Step::Kernel(var) = &p.steps[1] else { panic!("{p}") };
    let epilogue: Vec<String> = var
        .epilogue
        .iter()
        .filter_map(|i| match &i.inst {
            Inst::Unary(u, _) => Some(u.spec().name.to_string()),
            Inst::Binary(b, _, _) => Some(b.spec().name.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(epilogue, ["div", "sqrt", "add"]);
    assert_eq!(reasons(&p)[..2], ["reduction output used at a broadcast shape"; 2]);
    insta::assert_snapshot!("normalize_program", p.to_string());
    insta::assert_snapshot!("normalize_list", kernel_list(&p));
}

#[test]
fn sin_plus_cos_squared_is_one_kernel() {
    let p = lower_checked(&sin_cos());
    assert_eq!(kernels(&p), 1);
    assert_eq!(p.steps.len(), 1);
    insta::assert_snapshot!("sin_cos_program", p.to_string());
}

#[test]
fn linear_relu_is_a_matmul_and_one_kernel() {
    let p = lower_checked(&linear_relu());
    assert_eq!(p.steps.len(), 2);
    assert!(matches!(p.steps[0], Step::Matmul(_)));
    assert_eq!(kernels(&p), 1);
    insta::assert_snapshot!("linear_relu_program", p.to_string());
    insta::assert_snapshot!("linear_relu_list", kernel_list(&p));
}

#[test]
fn transposed_matmul_operand_needs_no_copy() {
    let mut g = Graph::new("xt_w");
    let x = g.add_input("x", f32t(&[3, 4]));
    let w = g.add_input("w", f32t(&[3, 2]));
    let xt = add(&mut g, Op::Permute { perm: Dims::from_slice(&[1, 0]) }, &[x]);
    let y = add(&mut g, Op::Matmul, &[xt, w]);
    g.set_outputs(vec![y]);
    let p = lower_checked(&g);
    assert_eq!(p.steps.len(), 1, "{p}");
    let Step::Matmul(m) = &p.steps[0] else { panic!("{p}") };
    assert_eq!((m.a.buf, m.a.row_stride, m.a.col_stride), (0, 1, 4));
}

#[test]
fn reshape_of_a_permuted_view_materializes_it() {
    let mut g = Graph::new("flatten_t");
    let x = g.add_input("x", f32t(&[3, 4]));
    let e = un(&mut g, UnaryOp::Exp, x);
    let t = add(&mut g, Op::Permute { perm: Dims::from_slice(&[1, 0]) }, &[e]);
    let f = reshape(&mut g, t, &[12]);
    let y = un(&mut g, UnaryOp::Neg, f);
    g.set_outputs(vec![y]);
    let p = lower_checked(&g);
    assert_eq!(reasons(&p), ["reshape of a non-contiguous view", "graph output"]);
    insta::assert_snapshot!("flatten_transposed_program", p.to_string());
}

#[test]
fn reshapes_that_keep_a_view_fuse() {
    // A reversed slice and a permute that leaves dims contiguous, then a split reshape.
    let mut g = Graph::new("views");
    let x = g.add_input("x", f32t(&[2, 6]));
    let s = add(
        &mut g,
        Op::Slice {
            start: IDims::from_slice(&[1, 5]),
            step: IDims::from_slice(&[-1, -1]),
            size: Dims::from_slice(&[2, 6]),
            bounds: None,
        },
        &[x],
    );
    let r = reshape(&mut g, s, &[2, 2, 3]);
    let y = un(&mut g, UnaryOp::Abs, r);
    g.set_outputs(vec![y]);
    let p = lower_checked(&g);
    assert_eq!(p.steps.len(), 1, "{p}");
    let Step::Kernel(k) = &p.steps[0] else { panic!("{p}") };
    let Inst::Load { index, .. } = &k.body[0].inst else { panic!("{p}") };
    assert_eq!((index.offset, index.strides.as_slice()), (11, &[-6, -3, -1][..]));
}

#[test]
fn an_output_that_is_an_input_is_copied() {
    let mut g = Graph::new("id");
    let x = g.add_input("x", f32t(&[2, 2]));
    let t = add(&mut g, Op::Permute { perm: Dims::from_slice(&[1, 0]) }, &[x]);
    g.set_outputs(vec![x, t]);
    let p = lower_checked(&g);
    assert_eq!(kernels(&p), 2);
    assert!(p.outputs.iter().all(|&b| p.buffers[b].kind == BufferKind::Temp));
    insta::assert_snapshot!("copies_list", kernel_list(&p));
}

#[test]
fn library_ops_get_dense_operands() {
    // `pad` of a transposed view needs it dense; `argmax` is a kernel that reads the view.
    let mut g = Graph::new("lib");
    let x = g.add_input("x", f32t(&[3, 4]));
    let t = add(&mut g, Op::Permute { perm: Dims::from_slice(&[1, 0]) }, &[x]);
    let a = add(&mut g, Op::ArgReduce { op: ArgOp::ArgMax, axis: 1 }, &[t]);
    let p = add(&mut g, Op::Pad { lo: Dims::from_slice(&[1, 0]), hi: Dims::from_slice(&[0, 2]) }, &[t]);
    g.set_outputs(vec![a, p]);
    let prog = lower_checked(&g);
    assert_eq!(reasons(&prog), ["dense operand of pad", "graph output", "pad runs as a library routine"]);
    insta::assert_snapshot!("library_program", prog.to_string());
}

/// `x.max_dim(1, keepdim)` as the front end builds it: a `max` and an `argmax` of `x`.
fn max_dim(keepdim: bool, op: ArgOp) -> Graph {
    let mut g = Graph::new("max_dim");
    let x = g.add_input("x", f32t(&[4, 6]));
    let e = un(&mut g, UnaryOp::Exp, x);
    let extremum = if op == ArgOp::ArgMax { ReduceOp::Max } else { ReduceOp::Min };
    let mut m = reduce(&mut g, extremum, e, &[1]);
    let mut a = add(&mut g, Op::ArgReduce { op, axis: 1 }, &[e]);
    if keepdim {
        m = reshape(&mut g, m, &[4, 1]);
        a = reshape(&mut g, a, &[4, 1]);
    }
    g.set_outputs(vec![m, a]);
    g
}

#[test]
fn max_and_argmax_of_one_operand_are_one_kernel() {
    for op in ArgOp::ALL {
        for keepdim in [false, true] {
            let p = lower_checked(&max_dim(keepdim, op));
            assert_eq!(kernels(&p), 1, "{p}");
            assert_eq!(p.steps.len(), 1, "{p}");
            let Step::Kernel(k) = &p.steps[0] else { unreachable!() };
            assert_eq!(k.stores.len(), 2, "{p}");
            assert!(k.epilogue.iter().any(|i| i.inst == Inst::AccValue), "{p}");
        }
    }
    insta::assert_snapshot!("max_dim_program", lower(&max_dim(true, ArgOp::ArgMax)).to_string());
    insta::assert_snapshot!("max_dim_list", kernel_list(&lower(&max_dim(false, ArgOp::ArgMin))));
}

#[test]
fn dependent_max_and_argmax_are_two_kernels() {
    // max(x) + argmax(x): the values' chain reads the indices, so they cannot share a kernel.
    let mut g = Graph::new("dependent");
    let x = g.add_input("x", f32t(&[5, 7]));
    let m = reduce(&mut g, ReduceOp::Max, x, &[1]);
    let a = add(&mut g, Op::ArgReduce { op: ArgOp::ArgMax, axis: 1 }, &[x]);
    let c = add(&mut g, Op::Cast { dtype: DType::F32 }, &[a]);
    let y = bin(&mut g, BinaryOp::Add, m, c);
    g.set_outputs(vec![y]);
    let p = lower_checked(&g);
    assert_eq!(kernels(&p), 2, "{p}");
    // Different axes, or a max of another value, are separate kernels too.
    let mut g = Graph::new("axes");
    let x = g.add_input("x", f32t(&[5, 7]));
    let m = reduce(&mut g, ReduceOp::Max, x, &[0]);
    let a = add(&mut g, Op::ArgReduce { op: ArgOp::ArgMax, axis: 1 }, &[x]);
    let n = reduce(&mut g, ReduceOp::Min, x, &[1]);
    g.set_outputs(vec![m, a, n]);
    let p = lower_checked(&g);
    assert_eq!(kernels(&p), 3, "{p}");
    // A pair whose values chain reads a reduction built after it (so the program order must
    // put that reduction first), and whose indices go through their own chain.
    let mut g = Graph::new("reordered");
    let x = g.add_input("x", f32t(&[5, 7]));
    let s = un(&mut g, UnaryOp::Sin, x);
    let m = reduce(&mut g, ReduceOp::Min, s, &[1]);
    let a = add(&mut g, Op::ArgReduce { op: ArgOp::ArgMin, axis: 1 }, &[s]);
    let c = add(&mut g, Op::Cast { dtype: DType::F32 }, &[a]);
    let one = constant(&mut g, 1.0, &[5]);
    let y = bin(&mut g, BinaryOp::Add, c, one);
    let t = reduce(&mut g, ReduceOp::Sum, x, &[1]);
    let z = bin(&mut g, BinaryOp::Mul, m, t);
    g.set_outputs(vec![y, z]);
    let p = lower_checked(&g);
    assert_eq!(kernels(&p), 2, "{p}");
    assert!(p.steps.iter().any(|s| matches!(s, Step::Kernel(k) if k.stores.len() == 2)), "{p}");
}

#[test]
fn a_value_too_costly_to_recompute_is_materialized_once() {
    let mut g = Graph::new("shared");
    let x = g.add_input("x", f32t(&[4, 4]));
    let mut v = x;
    for op in [UnaryOp::Exp, UnaryOp::Sin, UnaryOp::Tanh] {
        v = un(&mut g, op, v);
    }
    let a = reduce(&mut g, ReduceOp::Sum, v, &[0]);
    let b = reduce(&mut g, ReduceOp::Max, v, &[1]);
    g.set_outputs(vec![a, b]);
    let p = lower_checked(&g);
    assert_eq!(reasons(&p), ["used by 2 kernels", "graph output", "graph output"]);
}

#[test]
fn eval_checks_its_inputs() {
    let p = lower(&sin_cos());
    assert_eq!(eval(&p, &[]), Err(KernelError::InputCount { expected: 1, got: 0 }));
    let wrong = Buffer::from_vec(vec![1i64; 15], [3, 5]).unwrap();
    assert!(matches!(eval(&p, &[wrong]), Err(KernelError::InputType { index: 0, .. })));
}

// ---------------------------------------------------------------------------------------
// Differential test over random graphs.

const FLOATS: [f64; 12] =
    [0.0, -0.0, 1.0, 0.1, -2.5, 1.0 / 3.0, 0.75, -1.25, 3.5, f64::NAN, f64::INFINITY, 1e30];
const INTS: [i64; 8] = [0, 1, -1, 2, 3, 7, -5, i32::MAX as i64];

fn random_shape(r: &mut Rng, min_rank: usize) -> Vec<usize> {
    graphs::shape(r, min_rank, 30)
}

fn random_scalar(r: &mut Rng, dtype: DType) -> Scalar {
    graphs::scalar(r, dtype, &FLOATS, &INTS)
}

fn random_buffer(r: &mut Rng, ty: &TensorType) -> Buffer {
    let values: Vec<Scalar> = (0..ty.shape.numel())
        .map(|_| {
            if ty.dtype.is_float() && !r.chance(8) {
                // Mostly ordinary values, so that sums and products stay finite and mean something.
                Scalar::Float((r.below(2001) as f64 - 1000.0) / 256.0)
            } else {
                random_scalar(r, ty.dtype)
            }
        })
        .collect();
    Buffer::from_scalars(ty.dtype, ty.shape.clone(), values)
}

/// A random index (`i64`) value that fits `x` along `axis` for gather and scatter_add.
fn index_for(g: &mut Graph, r: &mut Rng, x: &TensorType, axis: usize) -> Option<NodeId> {
    let dims: Vec<usize> = x
        .shape
        .dims()
        .iter()
        .enumerate()
        .map(|(d, &n)| if d == axis { 1 + r.below(3) } else { r.below(n + 1) })
        .collect();
    let ty = TensorType::new(DType::I64, dims);
    let n = x.shape.dims()[axis] as i64;
    if n == 0 {
        return None;
    }
    // (iota * k) % n: valid indices that vary.
    let iota = g.add(Op::Iota { axis: r.below(x.shape.rank()), ty: ty.clone() }, &[]).ok()?;
    let k = g.add(Op::Const { value: Scalar::Int(1 + r.below(3) as i64), ty: ty.clone() }, &[]).ok()?;
    let m = g.add(Op::Binary(BinaryOp::Mul), &[iota, k]).ok()?;
    let nn = g.add(Op::Const { value: Scalar::Int(n), ty }, &[]).ok()?;
    g.add(Op::Binary(BinaryOp::Rem), &[m, nn]).ok()
}

/// A source value of type `ty`: a constant, `rand` (floats) or an `iota` cast to it.
fn source(g: &mut Graph, r: &mut Rng, ty: TensorType) -> Option<NodeId> {
    if ty.dtype.is_float() && r.chance(3) {
        return g.add_rand(ty, r.next(), r.next() >> r.below(64)).ok();
    }
    if ty.dtype != DType::Bool && ty.shape.rank() > 0 && r.chance(2) {
        let axis = r.below(ty.shape.rank());
        return g.add(Op::Iota { ty, axis }, &[]).ok();
    }
    let value = random_scalar(r, ty.dtype);
    g.add(Op::Const { value, ty }, &[]).ok()
}

/// `keepdim` shape of `dims` reduced over `axes`.
fn keepdim(dims: &[usize], axes: &[usize]) -> Vec<usize> {
    dims.iter().enumerate().map(|(d, &n)| if axes.contains(&d) { 1 } else { n }).collect()
}

/// One random op (or a small pattern of ops) over the values in `vals`.
fn random_step(g: &mut Graph, r: &mut Rng, vals: &[NodeId]) -> Option<NodeId> {
    let (x, xt, same_type) = graphs::operand(g, r, vals);
    let rank = xt.shape.rank();
    let dims = xt.shape.dims().to_vec();
    let numeric = xt.dtype != DType::Bool;
    let (op, args): (Op, Vec<NodeId>) = match r.below(22) {
        0 | 1 => {
            let op = r.pick(&UnaryOp::ALL);
            if !op.spec().accepts.admits(xt.dtype) {
                return None;
            }
            (Op::Unary(op), vec![x])
        }
        2 | 3 => {
            let op = r.pick(&BinaryOp::ALL);
            let y = if r.chance(2) { r.pick(&same_type) } else { source(g, r, xt.clone())? };
            if op.spec().accepts.admits(xt.dtype) {
                (Op::Binary(op), vec![x, y])
            } else {
                let a = g.add(Op::Binary(BinaryOp::Ge), &[x, y]).ok()?;
                (Op::Binary(op), vec![a, a])
            }
        }
        4 => {
            let cmp = g.add(Op::Binary(BinaryOp::Lt), &[x, r.pick(&same_type)]).ok()?;
            (Op::Where, vec![cmp, x, r.pick(&same_type)])
        }
        5 => (Op::Cast { dtype: r.pick(&EXACT_DTYPES) }, vec![x]),
        6 => {
            let axes: Dims = (0..rank).filter(|_| r.chance(2)).collect();
            (Op::Reduce { op: r.pick(&ReduceOp::ALL), axes }, vec![x])
        }
        7 | 8 => {
            // x op broadcast(f(reduce(x, keepdim))): the `x - mean` and softmax pattern.
            if !numeric || rank == 0 {
                return None;
            }
            let axes: Dims = (0..rank).filter(|_| r.chance(2)).collect();
            let red = g.add(Op::Reduce { op: r.pick(&ReduceOp::ALL), axes: axes.clone() }, &[x]).ok()?;
            let mut k = g.add(Op::Reshape { shape: Shape::from(keepdim(&dims, &axes)) }, &[red]).ok()?;
            if r.chance(2) {
                let c = source(g, r, g.ty(k).clone())?;
                k = g
                    .add(Op::Binary(r.pick(&[BinaryOp::Mul, BinaryOp::Add, BinaryOp::Maximum])), &[k, c])
                    .ok()?;
            }
            if xt.dtype.is_float() && r.chance(2) {
                k = g.add(Op::Unary(r.pick(&[UnaryOp::Exp, UnaryOp::Sqrt, UnaryOp::Neg])), &[k]).ok()?;
            }
            let b = g.add(Op::Expand { shape: xt.shape.clone() }, &[k]).ok()?;
            (
                Op::Binary(r.pick(&[BinaryOp::Sub, BinaryOp::Add, BinaryOp::Mul, BinaryOp::Minimum])),
                vec![x, b],
            )
        }
        9 => {
            let shape: Vec<usize> = match r.below(5) {
                0 => vec![xt.shape.numel()],
                1 => dims.iter().rev().copied().collect(),
                2 => {
                    let mut d = dims.clone();
                    d.insert(r.below(d.len() + 1), 1);
                    d
                }
                3 if rank >= 2 => {
                    let mut d = dims[1..].to_vec();
                    d[0] *= dims[0];
                    d
                }
                _ => {
                    let n = xt.shape.numel();
                    match (2..=n).find(|f| n.is_multiple_of(*f)) {
                        Some(f) => vec![f, n / f],
                        None => vec![n],
                    }
                }
            };
            (Op::Reshape { shape: Shape::from(shape) }, vec![x])
        }
        10 => {
            // A reshape after a permute: fuses when the permuted axes stay contiguous.
            if rank < 2 {
                return None;
            }
            let t = g.add(Op::Permute { perm: graphs::permutation(r, rank) }, &[x]).ok()?;
            let td = g.ty(t).shape.dims().to_vec();
            let shape: Vec<usize> =
                if r.chance(2) { vec![xt.shape.numel()] } else { [&[td[0] * td[1]], &td[2..]].concat() };
            (Op::Reshape { shape: Shape::from(shape) }, vec![t])
        }
        11 => (Op::Permute { perm: graphs::permutation(r, rank) }, vec![x]),
        12 => {
            let shape: Vec<usize> = dims.iter().map(|&d| if d == 1 { 1 + r.below(4) } else { d }).collect();
            (Op::Expand { shape: Shape::from(shape) }, vec![x])
        }
        13 => (graphs::slice(r, &dims, &[1, 2, 3, -1, -2]), vec![x]),
        14 => {
            let lo: Dims = (0..rank).map(|_| r.below(3)).collect();
            let hi: Dims = (0..rank).map(|_| r.below(3)).collect();
            (Op::Pad { lo, hi }, vec![x])
        }
        15 => {
            let n = 1 + r.below(3);
            (Op::Concat { axis: r.below(rank) }, (0..n).map(|_| r.pick(&same_type)).collect())
        }
        16 | 17 => {
            if rank < 2 || !numeric {
                return None;
            }
            // Sometimes x.t() @ b, sometimes with a transposed right operand.
            let a = if r.chance(2) {
                let mut perm: Dims = (0..rank).collect();
                perm.swap(rank - 2, rank - 1);
                g.add(Op::Permute { perm }, &[x]).ok()?
            } else {
                x
            };
            let ad = g.ty(a).shape.dims().to_vec();
            let n = 1 + r.below(3);
            let b = if r.chance(2) {
                let mut bd = ad.clone();
                bd[rank - 2] = n;
                bd[rank - 1] = ad[rank - 1];
                let bt = source(g, r, TensorType::new(xt.dtype, bd))?;
                let mut perm: Dims = (0..rank).collect();
                perm.swap(rank - 2, rank - 1);
                g.add(Op::Permute { perm }, &[bt]).ok()?
            } else {
                let mut bd = ad.clone();
                bd[rank - 2] = ad[rank - 1];
                bd[rank - 1] = n;
                source(g, r, TensorType::new(xt.dtype, bd))?
            };
            (Op::Matmul, vec![a, b])
        }
        18 => {
            if rank == 0 {
                return None;
            }
            let axis = r.below(rank);
            let index = index_for(g, r, &xt, axis)?;
            (Op::Gather { axis }, vec![x, index])
        }
        19 => {
            if rank == 0 || !numeric {
                return None;
            }
            let axis = r.below(rank);
            let index = index_for(g, r, &xt, axis)?;
            let ty = TensorType::new(xt.dtype, g.ty(index).shape.clone());
            let src = source(g, r, ty)?;
            (Op::ScatterAdd { axis }, vec![x, index, src])
        }
        20 => {
            if rank == 0 || !numeric {
                return None;
            }
            (Op::ArgReduce { op: r.pick(&ArgOp::ALL), axis: r.below(rank) }, vec![x])
        }
        _ => {
            let s = source(g, r, xt.clone())?;
            (Op::Binary(BinaryOp::Eq), vec![x, s])
        }
    };
    g.add(op, &args).ok()
}

/// The dtypes whose lowered programs compute the interpreter's bits. `f16` and `bf16` stay in
/// `f32` inside a kernel (`kernel::half`) where the interpreter rounds every node, so they
/// agree only to their precision; `tests/half.rs` checks them with a tolerance.
const EXACT_DTYPES: [DType; 5] = [DType::Bool, DType::I32, DType::I64, DType::F32, DType::F64];

/// A random graph with its inputs.
fn random_graph(seed: u64) -> (Graph, Vec<Buffer>) {
    let mut r = Rng::new(seed);
    let mut g = Graph::new("random");
    let mut vals = Vec::new();
    let mut inputs = Vec::new();
    for i in 0..1 + r.below(3) {
        let dtype = if r.chance(3) { r.pick(&EXACT_DTYPES) } else { r.pick(&[DType::F32, DType::F64]) };
        let ty = TensorType::new(dtype, random_shape(&mut r, 0));
        inputs.push(random_buffer(&mut r, &ty));
        vals.push(g.add_input(format!("x{i}"), ty));
    }
    let steps = 3 + r.below(14);
    graphs::grow(&mut g, &mut r, &mut vals, steps, random_step, |g, r, vals| {
        // Half the arg reductions come with the max (min) over the same axis, as `max_dim`
        // builds them: the lowering pairs them into one kernel.
        let v = *vals.last().expect("just added");
        if let (Op::ArgReduce { op, axis }, true) = (g.op(v).clone(), r.chance(2)) {
            let op = if op == ArgOp::ArgMax { ReduceOp::Max } else { ReduceOp::Min };
            let x = g.args(v)[0];
            vals.push(g.add(Op::Reduce { op, axes: Dims::from_slice(&[axis]) }, &[x]).unwrap());
        }
    });
    graphs::set_sink_outputs(&mut g, &mut r, &vals, 3, 4);
    (g, inputs)
}

#[test]
fn lowered_programs_compute_what_the_graph_interpreter_computes() {
    let (mut checked, mut kernels_total, mut steps_total) = (0, 0, 0);
    // How often each boundary reason, and each kind of fused work, occurs: the generator must
    // exercise every rule of the lowering.
    let mut seen: std::collections::BTreeMap<String, usize> = Default::default();
    for seed in 0..1500u64 {
        let (g, inputs) = random_graph(seed);
        let Ok(want) = interp::eval(&g, &inputs) else {
            continue; // Integer division by zero and the like: fused code may not even meet it.
        };
        let p = lower(&g);
        let got = eval(&p, &inputs).unwrap_or_else(|e| panic!("seed {seed}: {e}\n{p}"));
        assert_eq!(got.len(), want.len(), "seed {seed}");
        for (i, (a, b)) in got.iter().zip(&want).enumerate() {
            assert_eq!(a.ty(), b.ty(), "seed {seed}: output {i}: type\n{p}");
            assert!(
                a.scalars() == b.scalars(),
                "seed {seed}: output {i}:\n got {:?}\nwant {:?}\n{p}",
                a.scalars(),
                b.scalars()
            );
        }
        // The text forms are deterministic functions of the program.
        assert_eq!(p.to_string(), lower(&g).to_string());
        let _ = kernel_list(&p);
        for step in &p.steps {
            let reason = match step {
                Step::Kernel(k) => {
                    if k.reduce.as_ref().is_some_and(|r| r.op.arg().is_some()) {
                        *seen.entry("(arg reduction)".into()).or_default() += 1;
                    }
                    if k.epilogue.iter().any(|i| i.inst == Inst::AccValue) {
                        *seen.entry("(paired max and argmax)".into()).or_default() += 1;
                    }
                    if k.epilogue.len() > 1 {
                        *seen.entry("(epilogue with elementwise ops)".into()).or_default() += 1;
                    }
                    if k.body.iter().chain(&k.epilogue).any(|i| match &i.inst {
                        Inst::Load { index, .. } => index.strides.iter().any(|&s| s < 0),
                        _ => false,
                    }) {
                        *seen.entry("(load with a negative stride)".into()).or_default() += 1;
                    }
                    k.reason.split(" (").next().unwrap_or_default().to_string()
                }
                Step::Matmul(m) => {
                    if m.a.row_stride < m.a.col_stride || m.b.row_stride < m.b.col_stride {
                        *seen.entry("(matmul with a transposed operand)".into()).or_default() += 1;
                    }
                    "matmul".into()
                }
                Step::Op(o) => o.reason.clone(),
                Step::Loop(_) => "loop".into(),
            };
            let reason = if reason.starts_with("used ") { "used by/at several".into() } else { reason };
            *seen.entry(reason).or_default() += 1;
        }
        checked += 1;
        kernels_total += kernels(&p);
        steps_total += p.steps.len();
    }
    eprintln!("{checked} random graphs agree bit for bit ({kernels_total} kernels, {steps_total} steps)");
    for (what, n) in &seen {
        eprintln!("{n:6}  {what}");
    }
    assert!(checked >= 1000, "only {checked} random graphs evaluated");
    for what in [
        "(epilogue with elementwise ops)",
        "(load with a negative stride)",
        "(matmul with a transposed operand)",
        "reshape of a non-contiguous view",
        "reduction output used at a broadcast shape",
        "used by/at several",
        "matmul operand",
        "graph output",
        "(arg reduction)",
        "(paired max and argmax)",
        "gather runs as a library routine",
        "scatter_add runs as a library routine",
        "concat runs as a library routine",
        "pad runs as a library routine",
    ] {
        assert!(seen.get(what).copied().unwrap_or(0) >= 5, "the random graphs rarely exercise {what}");
    }
}

/// The steps that can fail keep the node they compute: a library step its op's, a kernel each
/// of its integer `//`, `%` and `**`, in order, including in an epilogue.
#[test]
fn failing_steps_keep_their_graph_nodes() {
    let g = tenjit_ir::text::parse(
        "graph @g(%x: f32[3], %i: i64[2], %n: i64[4,3], %d: i64[4,3]) {
  %y = gather %x, %i, axis=0 : f32[2]
  %q = floor_div %n, %d : i64[4,3]
  %r = rem %q, %d : i64[4,3]
  %s = sum %r, axes=[1] : i64[4]
  %t = floor_div %s, %s : i64[4]
  return %y, %t
}
",
    )
    .unwrap();
    let p = lower(&g);
    let named = |op: &str| g.nodes().into_iter().filter(|&n| g.op(n).name() == op).collect::<Vec<_>>();
    let ops = p.steps.iter().filter_map(|s| match s {
        Step::Op(o) => Some(o),
        Step::Kernel(_) | Step::Matmul(_) | Step::Loop(_) => None,
    });
    let origins: Vec<Option<NodeId>> = ops.map(|o| o.origin).collect();
    assert_eq!(origins, vec![Some(named("gather")[0])], "{p}");
    let kernels: Vec<_> = p
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::Kernel(k) => Some(k),
            Step::Op(_) | Step::Matmul(_) | Step::Loop(_) => None,
        })
        .collect();
    let sites: Vec<NodeId> =
        kernels.iter().flat_map(|k| k.failing_sites().into_iter().map(|s| k.origin(s).unwrap())).collect();
    let divs = named("floor_div");
    assert_eq!(sites, vec![divs[0], named("rem")[0], divs[1]], "{p}");
    assert!(kernels.iter().any(|k| k.failing_sites().iter().any(|s| s.epilogue)), "{p}");
}

#[test]
fn reductions_over_a_groups_rows_split_into_parts_that_run_in_the_group() {
    // An integer linear model over 8192 rows: `h = x @ w + 1`, then reductions over the rows
    // of what the group produced (a sum, a max, and `xᵀ @ h`), each split into 8 parts of
    // 1024 rows inside the group and combined after it. Integer sums and maxima are exact in
    // any order, so the kernel interpreter (which runs the group one row at a time, each part
    // once its last row has run, with poisoned local buffers) must give the graph
    // interpreter's bits.
    let g = tenjit_ir::text::parse(
        "graph @f(%x: i64[8192,3], %w: i64[3,1], %one: i64[8192,1]) {
  %0 = matmul %x, %w : i64[8192,1]
  %h = add %0, %one : i64[8192,1]
  %e = mul %h, %h : i64[8192,1]
  %s = sum %e, axes=[0] : i64[1]
  %m = max %h, axes=[0,1] : i64[]
  %xt = permute %x, perm=[1,0] : i64[3,8192]
  %g = matmul %xt, %h : i64[3,1]
  return %s, %m, %g
}",
    )
    .unwrap();
    let p = lower_checked(&g);
    let list = kernel_list(&p);
    assert!(list.contains("group g0 rows=8192 parts=8x1024"), "{list}");
    assert_eq!(list.matches("combined after the group").count(), 2, "{list}");
    assert!(list.contains("sum of the 8 parts' products"), "{list}");
    let reasons = reasons(&p);
    assert_eq!(p.groups[0].steps.len(), 5, "{reasons:?}\n{list}");
    // The same graph at 4099 rows (prime) has no part, and at 2048 rows is too small.
    for rows in [4099, 2048] {
        let text = g.to_string().replace("8192", &rows.to_string());
        let small = tenjit_ir::text::parse(&text).unwrap();
        let list = kernel_list(&lower_checked(&small));
        assert!(!list.contains("parts="), "{rows}: {list}");
    }
}
