//! Gradient checks of reverse-mode autodiff (`tenjit_ir::autodiff`) against central finite
//! differences in `f64`, every value computed by the reference interpreter.
//!
//! * Every elementwise op of the table with a VJP rule, found by iterating `UnaryOp::ALL` and
//!   `BinaryOp::ALL`, so a new op is covered with no edit here. Sample points are drawn inside
//!   the op's domain and away from its kinks, judged by the op's own scalar semantics (its
//!   table row's `float`), so no op is named.
//! * Every structural `Op` variant, classified by one exhaustive match.
//! * Exact values at ties, NaNs and zeros (`maximum`/`minimum`, `max`/`min` reductions, `where`,
//!   `prod`, `pow`, `abs`, `sqrt`).
//! * A hundred random differentiable graphs.
//! * Second derivatives: gradient graphs differentiated again, against closed forms and, as
//!   Hessian-vector products, against finite differences of the gradient.
//! * `grad_graph` on parsed text, and the errors of `grad` and `grad_graph`.
//!
//! A failing check prints the forward graph and the gradient graph.

mod common;

use common::Rng;
use tenjit_ir::autodiff::{self, rules, Emit};
use tenjit_ir::interp::eval;
use tenjit_ir::ops::{
    BinaryKind, ConvGeometry, ConvOp, ConvRole, Dims, IDims, PoolGeometry, PoolOp, PoolRole,
};
use tenjit_ir::{
    text, ArgOp, BinaryOp, Buffer, DType, Graph, NodeId, Op, ReduceOp, Scalar, Shape, TensorType, UnaryOp,
};

// ---------------------------------------------------------------------------------------------
// Building graphs
// ---------------------------------------------------------------------------------------------

fn dims(d: &[usize]) -> Dims {
    d.iter().copied().collect()
}

fn idims(d: &[isize]) -> IDims {
    d.iter().copied().collect()
}

fn f64_ty(shape: &[usize]) -> TensorType {
    TensorType::new(DType::F64, Shape::new(shape))
}

/// A uniform draw from `[lo, hi)`.
fn uniform(rng: &mut Rng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * ((rng.next() >> 11) as f64 / (1u64 << 53) as f64)
}

/// The elements of an `f64` buffer.
fn f64s(b: &Buffer) -> Vec<f64> {
    b.as_slice::<f64>().unwrap_or_else(|| panic!("expected an f64 buffer, got {}", b.ty())).to_vec()
}

/// A graph under construction together with the values of its inputs.
struct Builder {
    graph: Graph,
    inputs: Vec<Buffer>,
}

/// A graph with one scalar floating-point output, and values for its inputs.
struct Case {
    graph: Graph,
    inputs: Vec<Buffer>,
}

impl Builder {
    fn new(name: &str) -> Builder {
        Builder { graph: Graph::new(name), inputs: Vec::new() }
    }

    /// Continues building on a case's graph (its output is left as it is).
    fn from_case(case: &Case) -> Builder {
        Builder { graph: case.graph.clone(), inputs: case.inputs.clone() }
    }

    /// An input holding `value`.
    fn input(&mut self, name: &str, value: Buffer) -> NodeId {
        self.inputs.push(value.clone());
        self.graph.add_input(name, value.ty())
    }

    /// An `f64` input holding `values`.
    fn values(&mut self, name: &str, shape: &[usize], values: Vec<f64>) -> NodeId {
        self.input(name, Buffer::from_vec(values, Shape::new(shape)).unwrap())
    }

    /// An `f64` input with random values in `[-2, 2)`.
    fn random(&mut self, rng: &mut Rng, name: &str, shape: &[usize]) -> NodeId {
        let n = Shape::new(shape).numel();
        let v = (0..n).map(|_| uniform(rng, -2.0, 2.0)).collect();
        self.values(name, shape, v)
    }

    /// An `i64` input holding `values` (indices).
    fn index(&mut self, name: &str, shape: &[usize], values: Vec<i64>) -> NodeId {
        self.input(name, Buffer::from_vec(values, Shape::new(shape)).unwrap())
    }

    fn op(&mut self, op: Op, args: &[NodeId]) -> NodeId {
        self.graph.add(op.clone(), args).unwrap_or_else(|e| panic!("building the test graph: {op:?}: {e}"))
    }

    fn unary(&mut self, u: UnaryOp, x: NodeId) -> NodeId {
        self.op(Op::Unary(u), &[x])
    }

    fn binary(&mut self, b: BinaryOp, x: NodeId, y: NodeId) -> NodeId {
        self.op(Op::Binary(b), &[x, y])
    }

    fn constant(&mut self, value: f64, ty: TensorType) -> NodeId {
        let value = Scalar::Float(value).cast(ty.dtype);
        self.op(Op::Const { value, ty }, &[])
    }

    /// A `rand` whose seed and offset are constants.
    fn rand(&mut self, ty: TensorType, seed: u64, offset: u64) -> NodeId {
        self.graph.add_rand(ty, seed, offset).unwrap_or_else(|e| panic!("building the test graph: rand: {e}"))
    }

    /// A constant with the type of `like`.
    fn constant_like(&mut self, value: f64, like: NodeId) -> NodeId {
        let ty = self.graph.ty(like).clone();
        self.constant(value, ty)
    }

    fn shape(&self, x: NodeId) -> Vec<usize> {
        self.graph.ty(x).shape.0.to_vec()
    }

    fn reduce(&mut self, op: ReduceOp, axes: &[usize], x: NodeId) -> NodeId {
        self.op(Op::Reduce { op, axes: dims(axes) }, &[x])
    }

    fn sum_all(&mut self, x: NodeId) -> NodeId {
        let axes: Vec<usize> = (0..self.shape(x).len()).collect();
        self.reduce(ReduceOp::Sum, &axes, x)
    }

    fn reshape(&mut self, x: NodeId, shape: &[usize]) -> NodeId {
        self.op(Op::Reshape { shape: Shape::new(shape) }, &[x])
    }

    fn expand(&mut self, x: NodeId, shape: &[usize]) -> NodeId {
        self.op(Op::Expand { shape: Shape::new(shape) }, &[x])
    }

    fn cast(&mut self, x: NodeId, dtype: DType) -> NodeId {
        self.op(Op::Cast { dtype }, &[x])
    }

    /// `sum(y * w)` for a random `f64` input `w` of `y`'s shape (`y` cast to `f64` first), as
    /// the case's one output.
    fn weighted_sum(mut self, y: NodeId, rng: &mut Rng) -> Case {
        let y = if self.graph.ty(y).dtype == DType::F64 { y } else { self.cast(y, DType::F64) };
        let shape = self.shape(y);
        let w = self.random(rng, "w", &shape);
        let p = self.binary(BinaryOp::Mul, y, w);
        let out = self.sum_all(p);
        self.finish(out)
    }

    /// `sum(y)` as the case's one output.
    fn plain_sum(mut self, y: NodeId) -> Case {
        let out = self.sum_all(y);
        self.finish(out)
    }

    fn finish(mut self, out: NodeId) -> Case {
        self.graph.set_outputs(vec![out]);
        Case { graph: self.graph, inputs: self.inputs }
    }
}

// ---------------------------------------------------------------------------------------------
// Gradients and the finite-difference check
// ---------------------------------------------------------------------------------------------

/// The gradients of a case's output (seed 1) with respect to every floating-point input, built
/// with `autodiff::grad`: the gradient graph (its outputs: the case's output, then one value per
/// input with a gradient) and, per input, which output holds its gradient (`None`: no gradient,
/// or not a float input).
fn gradient_graph(case: &Case) -> (Graph, Vec<Option<usize>>) {
    let mut g = case.graph.clone();
    let out = g.outputs()[0];
    let seed = g.add(Op::Const { value: Scalar::Float(1.0), ty: g.ty(out).clone() }, &[]).unwrap();
    let wrt: Vec<NodeId> = g.inputs().iter().map(|(_, n)| *n).filter(|&n| g.ty(n).dtype.is_float()).collect();
    let grads = autodiff::grad(&mut g, &[out], &[seed], &wrt)
        .unwrap_or_else(|e| panic!("{e}\nforward graph:\n{}", case.graph));
    let mut outputs = vec![out];
    let mut slots = Vec::new();
    for (_, n) in g.inputs() {
        let slot = wrt.iter().position(|w| w == n).and_then(|i| grads[i]).map(|d| {
            assert_eq!(
                g.ty(d),
                g.ty(*n),
                "the gradient has its input's type\nforward graph:\n{}",
                case.graph
            );
            outputs.push(d);
            outputs.len() - 1
        });
        slots.push(slot);
    }
    g.set_outputs(outputs);
    (g, slots)
}

/// Evaluates a graph, panicking with its text on failure.
fn run(g: &Graph, inputs: &[Buffer]) -> Vec<Buffer> {
    eval(g, inputs).unwrap_or_else(|e| panic!("{e}\ngraph:\n{g}"))
}

/// The gradients of a case's output with respect to each of its inputs (`None` where there is
/// none).
fn gradients(case: &Case) -> Vec<Option<Buffer>> {
    let (gg, slots) = gradient_graph(case);
    let outs = run(&gg, &case.inputs);
    slots.iter().map(|s| s.map(|k| outs[k].clone())).collect()
}

/// The case's output at `inputs`.
fn value(case: &Case, inputs: &[Buffer]) -> f64 {
    f64s(&run(&case.graph, inputs)[0])[0]
}

/// Checks the gradient of the case's output with respect to every `f64` input against central
/// differences (an input without a gradient must have zero differences). Returns which inputs
/// have a gradient. Panics, printing both graphs, on a mismatch.
fn check_fd(case: &Case, what: &str) -> Vec<bool> {
    let (gg, slots) = gradient_graph(case);
    let outs = run(&gg, &case.inputs);
    let f0 = f64s(&outs[0])[0];
    for (i, input) in case.inputs.iter().enumerate() {
        match input.dtype() {
            DType::F64 => {}
            DType::F32 => panic!("{what}: the finite-difference check needs f64 inputs"),
            _ => continue,
        }
        let x = f64s(input);
        let analytic = match slots[i] {
            Some(k) => f64s(&outs[k]),
            None => vec![0.0; x.len()],
        };
        for j in 0..x.len() {
            let h = 1e-6 * (1.0 + x[j].abs());
            let at = |delta: f64| {
                let mut v = x.clone();
                v[j] += delta;
                let mut inputs = case.inputs.to_vec();
                inputs[i] = Buffer::from_vec(v, input.shape().clone()).unwrap();
                value(case, &inputs)
            };
            let numeric = (at(h) - at(-h)) / (2.0 * h);
            let a = analytic[j];
            let tol = 1e-5 * (1.0 + a.abs().max(numeric.abs())) + 1e-8 * f0.abs();
            if (a - numeric).abs() > tol || a.is_nan() != numeric.is_nan() {
                panic!(
                    "{what}: d out / d {}[{j}] is {a} by autodiff, {numeric} by central differences \
                     (x = {}, out = {f0})\nforward graph:\n{}\ngradient graph:\n{gg}",
                    case.graph.inputs()[i].0,
                    x[j],
                    case.graph
                );
            }
        }
    }
    slots.iter().map(Option::is_some).collect()
}

/// The Hessian-vector product of a case as a case of its own: the gradient graph, with output
/// `sum_i sum(grad_i * v_i)` for random `f64` inputs `v_i`, one per input with a gradient. Its
/// gradient with respect to the original inputs is `H v`, computed by differentiating gradient
/// IR. `None` when no input has a gradient.
fn hvp_case(case: &Case, rng: &mut Rng) -> Option<Case> {
    let mut b = Builder::from_case(case);
    let out = b.graph.outputs()[0];
    let seed = b.constant_like(1.0, out);
    let wrt: Vec<NodeId> =
        b.graph.inputs().iter().map(|(_, n)| *n).filter(|&n| b.graph.ty(n).dtype == DType::F64).collect();
    let grads = autodiff::grad(&mut b.graph, &[out], &[seed], &wrt).unwrap();
    let mut total: Option<NodeId> = None;
    for (i, d) in grads.into_iter().enumerate() {
        let Some(d) = d else { continue };
        let shape = b.shape(d);
        let v = b.random(rng, &format!("v{i}"), &shape);
        let p = b.binary(BinaryOp::Mul, d, v);
        let s = b.sum_all(p);
        total = Some(match total {
            Some(t) => b.binary(BinaryOp::Add, t, s),
            None => s,
        });
    }
    total.map(|t| b.finish(t))
}

/// [`check_fd`] on the case and on its Hessian-vector product.
fn check_fd2(case: &Case, what: &str, rng: &mut Rng) -> Vec<bool> {
    let flows = check_fd(case, what);
    if let Some(h) = hvp_case(case, rng) {
        check_fd(&h, &format!("{what} (second order)"));
    }
    flows
}

// ---------------------------------------------------------------------------------------------
// The op table
// ---------------------------------------------------------------------------------------------

/// Shapes every elementwise rule is checked at.
const SHAPES: &[&[usize]] = &[&[], &[3], &[2, 3], &[2, 1, 2]];

/// Whether `f` is finite, moderate and smooth around `x`: its one-sided slopes over a step much
/// wider than the finite-difference step agree. Keeps samples inside an op's domain and away
/// from its kinks, ties and jumps without naming the op.
fn smooth_at(f: impl Fn(f64) -> f64, x: f64) -> bool {
    let h = 1e-3;
    let (l, m, r) = (f(x - h), f(x), f(x + h));
    if ![l, m, r].iter().all(|v| v.is_finite() && v.abs() < 1e3) {
        return false;
    }
    let (d1, d2) = ((m - l) / h, (r - m) / h);
    (d1 - d2).abs() <= 0.1 * (1.0 + d1.abs().max(d2.abs()))
}

/// A value in `±[0.1, 3)` with a random sign.
fn signed(rng: &mut Rng) -> f64 {
    let v = uniform(rng, 0.1, 3.0);
    if rng.chance(2) {
        -v
    } else {
        v
    }
}

/// A point drawn by `draw` at which `ok` holds (many draws are tried).
fn sample<T>(rng: &mut Rng, what: &str, mut draw: impl FnMut(&mut Rng) -> T, ok: impl Fn(&T) -> bool) -> T {
    for _ in 0..10_000 {
        let p = draw(rng);
        if ok(&p) {
            return p;
        }
    }
    panic!("{what}: found no point inside the op's domain")
}

#[test]
fn every_unary_rule_matches_finite_differences() {
    let mut rng = Rng::new(1);
    let mut checked = Vec::new();
    for u in UnaryOp::ALL {
        let spec = u.spec();
        if spec.vjp.is_none() || !spec.accepts.admits(DType::F64) {
            continue;
        }
        for shape in SHAPES {
            let what = format!("{} at {shape:?}", spec.name);
            let n = Shape::new(shape).numel();
            let xs: Vec<f64> =
                (0..n).map(|_| sample(&mut rng, &what, signed, |&x| smooth_at(spec.float, x))).collect();
            let mut b = Builder::new(spec.name);
            let x = b.values("x", shape, xs);
            let y = b.unary(u, x);
            let case = b.weighted_sum(y, &mut rng);
            let flows = check_fd2(&case, &what, &mut rng);
            assert!(flows[0], "{what}: an op with a rule gives its operand a gradient");
        }
        checked.push(spec.name);
    }
    for name in ["neg", "abs", "sqrt", "exp", "log", "sin", "cos", "tanh", "floor", "ceil"] {
        assert!(checked.contains(&name), "{name} has a rule and was checked: {checked:?}");
    }
}

#[test]
fn every_binary_rule_matches_finite_differences() {
    let mut rng = Rng::new(2);
    let mut checked = Vec::new();
    for op in BinaryOp::ALL {
        let spec = op.spec();
        if spec.vjp.is_none() || !spec.accepts.admits(DType::F64) {
            continue;
        }
        let f = spec.float;
        for shape in SHAPES {
            let what = format!("{} at {shape:?}", spec.name);
            let n = Shape::new(shape).numel();
            let smooth = |&(a, b): &(f64, f64)| smooth_at(|t| f(t, b), a) && smooth_at(|t| f(a, t), b);
            let pairs: Vec<(f64, f64)> =
                (0..n).map(|_| sample(&mut rng, &what, |r| (signed(r), signed(r)), smooth)).collect();
            let mut b = Builder::new(spec.name);
            let x = b.values("a", shape, pairs.iter().map(|p| p.0).collect());
            let y = b.values("b", shape, pairs.iter().map(|p| p.1).collect());
            let z = b.binary(op, x, y);
            let case = b.weighted_sum(z, &mut rng);
            let flows = check_fd2(&case, &what, &mut rng);
            assert!(flows[0] && flows[1], "{what}: an op with a rule gives both operands a gradient");

            // The same value as both operands: the two cotangents add up.
            let what = format!("{}(x, x) at {shape:?}", spec.name);
            let xs: Vec<f64> =
                (0..n).map(|_| sample(&mut rng, &what, signed, |&t| smooth_at(|t| f(t, t), t))).collect();
            let mut b = Builder::new(spec.name);
            let x = b.values("x", shape, xs);
            let z = b.binary(op, x, x);
            let case = b.weighted_sum(z, &mut rng);
            check_fd2(&case, &what, &mut rng);
        }
        checked.push(spec.name);
    }
    for name in ["add", "sub", "mul", "div", "pow", "maximum", "minimum", "floor_div", "rem"] {
        assert!(checked.contains(&name), "{name} has a rule and was checked: {checked:?}");
    }
}

/// An op without a rule must be one that never yields floats, or it would silently stop
/// gradients; and building its gradient must give its operands none.
#[test]
fn ops_without_a_rule_are_not_float_valued_and_pass_no_gradient() {
    let mut rng = Rng::new(3);
    let mut checked = 0;
    for u in UnaryOp::ALL {
        let spec = u.spec();
        if spec.vjp.is_some() {
            continue;
        }
        assert!(
            !spec.accepts.admits(DType::F32) && !spec.accepts.admits(DType::F64),
            "{} has no VJP but maps floats to floats",
            spec.name
        );
        // Feed it a value derived from a float input.
        let dtype =
            [DType::I64, DType::I32, DType::Bool].into_iter().find(|&d| spec.accepts.admits(d)).unwrap();
        let mut b = Builder::new(spec.name);
        let x = b.random(&mut rng, "x", &[4]);
        let c = b.cast(x, dtype);
        let y = b.unary(u, c);
        let case = b.weighted_sum(y, &mut rng);
        let flows = check_fd(&case, spec.name);
        assert!(!flows[0], "{}: no gradient reaches x", spec.name);
        assert_rule_passes_nothing(&case.graph, y, spec.name);
        checked += 1;
    }
    for op in BinaryOp::ALL {
        let spec = op.spec();
        if spec.vjp.is_some() {
            assert_eq!(spec.kind, BinaryKind::Arith, "{} has a VJP but a boolean result", spec.name);
            continue;
        }
        assert_eq!(spec.kind, BinaryKind::Compare, "{} has no VJP but is not boolean-valued", spec.name);
        let dtype = [DType::F64, DType::Bool].into_iter().find(|&d| spec.accepts.admits(d)).unwrap();
        let mut b = Builder::new(spec.name);
        let x = b.random(&mut rng, "x", &[2, 3]);
        let y = b.random(&mut rng, "y", &[2, 3]);
        let (cx, cy) = (b.cast(x, dtype), b.cast(y, dtype));
        let z = b.binary(op, cx, cy);
        let case = b.weighted_sum(z, &mut rng);
        let flows = check_fd(&case, spec.name);
        assert!(!flows[0] && !flows[1], "{}: no gradient reaches x or y", spec.name);
        assert_rule_passes_nothing(&case.graph, z, spec.name);
        checked += 1;
    }
    assert!(checked >= 9, "not, the six comparisons, and, or");
}

/// Calls the structural VJP of node `n` directly, asking for every operand, and asserts it
/// returns no cotangent.
fn assert_rule_passes_nothing(graph: &Graph, n: NodeId, what: &str) {
    let mut g = graph.clone();
    let args = g.args(n);
    let op = g.op(n).clone();
    let seed =
        g.add(Op::Const { value: Scalar::Float(1.0).cast(g.ty(n).dtype), ty: g.ty(n).clone() }, &[]).unwrap();
    let mut e = Emit::new(&mut g);
    let wanted = vec![true; args.len()];
    let grads = rules::vjp(&mut e, &op, &args, n, seed, &wanted).unwrap();
    assert!(grads.iter().all(Option::is_none), "{what}: the rule returned a cotangent");
}

// ---------------------------------------------------------------------------------------------
// Structural ops
// ---------------------------------------------------------------------------------------------

/// What a structural sample's gradient must be.
#[derive(Debug, PartialEq)]
enum Expect {
    /// Every `f64` input other than the weight gets a gradient, matching finite differences
    /// (also at second order).
    Flows,
    /// No input other than the weight gets a gradient, and the rule returns none.
    Stops,
    /// The first operand, input `x`, only chooses positions (a max pool's): it gets no
    /// gradient, and every other `f64` input gets one matching finite differences.
    Chooses,
    /// A float-to-float cast through `f32`: the gradient is the weight rounded to `f32`.
    RoundsThroughF32,
}

/// The number of `Op` variants [`classify`] distinguishes.
const VARIANTS: usize = 23;

/// The variant of node `n`'s op (an index below [`VARIANTS`]) and what its gradient must be.
/// One exhaustive match, no wildcard: a new `Op` variant does not compile until it is
/// classified here, and then [`every_structural_rule_matches_finite_differences`] fails until a
/// sample of it is added.
fn classify(g: &Graph, n: NodeId) -> (usize, Expect) {
    use Expect::*;
    match g.op(n) {
        Op::Input { .. } => (0, Flows),
        Op::Const { .. } => (1, Stops),
        Op::Iota { .. } => (2, Stops),
        Op::Rand { .. } => (3, Stops),
        Op::Unary(_) => (4, Flows),
        Op::Binary(_) => (5, Flows),
        Op::Where => (6, Flows),
        Op::Cast { dtype } => {
            let from = g.ty(g.args(n)[0]).dtype;
            let e = match (from, *dtype) {
                (DType::F64, DType::F64) => Flows,
                (f, t) if f.is_float() && t.is_float() => RoundsThroughF32,
                _ => Stops,
            };
            (7, e)
        }
        Op::Reduce { .. } => (8, Flows),
        Op::ArgReduce { .. } => (9, Stops),
        Op::Reshape { .. } => (10, Flows),
        Op::Permute { .. } => (11, Flows),
        Op::Expand { .. } => (12, Flows),
        Op::Slice { .. } => (13, Flows),
        Op::Pad { .. } => (14, Flows),
        Op::Concat { .. } => (15, Flows),
        Op::Matmul => (16, Flows),
        Op::Gather { .. } => (17, Flows),
        Op::ScatterAdd { .. } => (18, Flows),
        Op::Conv(_) => (19, Flows),
        Op::Pool(_) => {
            let args = g.args(n);
            (20, if args[0] == args[1] { Flows } else { Chooses })
        }
        Op::Loop(_) => (21, Flows),
        Op::Size { .. } => (22, Stops),
    }
}

/// A structural sample: its name, and a function that adds its inputs and the sampled node
/// (returned) to a builder.
type Sample = (&'static str, fn(&mut Builder, &mut Rng) -> NodeId);

fn reduce(op: ReduceOp, axes: &[usize]) -> Op {
    Op::Reduce { op, axes: dims(axes) }
}

fn slice(start: &[isize], step: &[isize], size: &[usize]) -> Op {
    Op::Slice { start: idims(start), step: idims(step), size: dims(size), bounds: None }
}

/// A slice of a random `f64[7]`.
fn slice7(b: &mut Builder, r: &mut Rng, start: isize, step: isize, size: usize) -> NodeId {
    let x = b.random(r, "x", &[7]);
    b.op(slice(&[start], &[step], &[size]), &[x])
}

/// `x`'s rows: none, one, and two zeros (the rule's three cases), reduced by `prod` over axis 1.
fn prod_rows_with_zeros(b: &mut Builder, _: &mut Rng) -> NodeId {
    let x = b.values("x", &[3, 4], vec![1.5, -2.0, 0.5, 3.0, 2.0, 0.0, -1.5, 0.7, 0.0, 1.2, 0.0, -2.0]);
    b.op(reduce(ReduceOp::Prod, &[1]), &[x])
}

/// A convolution of the samples' geometry: stride 2, padding [1, 2], dilation [1, 2], 2 groups.
fn conv(role: ConvRole) -> Op {
    let geometry = ConvGeometry { stride: [2, 2], padding: [1, 2], dilation: [1, 2], groups: 2 };
    Op::Conv(ConvOp { role, geometry })
}

/// A max pool of the samples' geometry: 3×3 windows, stride 2, padding 1.
fn pool(role: PoolRole) -> Op {
    Op::Pool(PoolOp { role, geometry: PoolGeometry { kernel: [3, 3], stride: [2, 2], padding: [1, 1] } })
}

/// A sample (coerces the builder closure to a function pointer).
fn s(name: &'static str, build: fn(&mut Builder, &mut Rng) -> NodeId) -> Sample {
    (name, build)
}

/// `loop x, u, v, trips=3, result=1` over the body `(c, d, v, i) -> (sin(c) * v, c + d * v)`:
/// gradients flow to both initial values and the invariant, through every trip.
fn sample_loop(b: &mut Builder, r: &mut Rng) -> NodeId {
    let mut body = Graph::new("body");
    let c = body.add_input("c", f64_ty(&[2, 3]));
    let d = body.add_input("d", f64_ty(&[2, 3]));
    let v = body.add_input("v", f64_ty(&[2, 3]));
    body.add_input("i", tenjit_ir::ops::counter_type());
    let s = body.add(Op::Unary(UnaryOp::Sin), &[c]).unwrap();
    let c2 = body.add(Op::Binary(BinaryOp::Mul), &[s, v]).unwrap();
    let dv = body.add(Op::Binary(BinaryOp::Mul), &[d, v]).unwrap();
    let d2 = body.add(Op::Binary(BinaryOp::Add), &[c, dv]).unwrap();
    body.set_outputs(vec![c2, d2]);
    let body = tenjit_ir::ops::Body::new(body).unwrap();
    let x = b.random(r, "x", &[2, 3]);
    let u = b.random(r, "u", &[2, 3]);
    let v = b.random(r, "v", &[2, 3]);
    b.op(Op::Loop(tenjit_ir::ops::LoopOp { body, trips: 3, result: 1 }), &[x, u, v])
}

fn samples() -> Vec<Sample> {
    vec![
        s("loop", sample_loop),
        // Leaves.
        s("input", |b, r| b.random(r, "x", &[2, 3])),
        s("input 0-d", |b, r| b.random(r, "x", &[])),
        s("const", |b, _| b.constant(1.5, f64_ty(&[2, 3]))),
        s("iota", |b, _| b.op(Op::Iota { ty: f64_ty(&[2, 3]), axis: 1 }, &[])),
        s("size", |b, _| b.op(Op::Size { expr: tenjit_ir::sym::SymExpr::from(6), ty: f64_ty(&[2, 3]) }, &[])),
        s("rand", |b, _| b.rand(f64_ty(&[2, 3]), 7, 3)),
        // Elementwise (the table tests cover every row).
        s("unary", |b, r| {
            let x = b.random(r, "x", &[2, 3]);
            b.unary(UnaryOp::Sin, x)
        }),
        s("binary", |b, r| {
            let x = b.random(r, "x", &[2, 3]);
            let y = b.random(r, "y", &[2, 3]);
            b.binary(BinaryOp::Mul, x, y)
        }),
        s("where", |b, r| {
            let c =
                b.input("c", Buffer::from_vec(vec![true, false, false, true, true, false], [2, 3]).unwrap());
            let x = b.random(r, "x", &[2, 3]);
            let y = b.random(r, "y", &[2, 3]);
            b.op(Op::Where, &[c, x, y])
        }),
        s("where, one operand twice", |b, r| {
            let c = b.input("c", Buffer::from_vec(vec![true, false, true], [3]).unwrap());
            let x = b.random(r, "x", &[3]);
            let s = b.unary(UnaryOp::Sin, x);
            b.op(Op::Where, &[c, s, s])
        }),
        // Casts.
        s("cast f64 to f64", |b, r| {
            let x = b.random(r, "x", &[3]);
            b.cast(x, DType::F64)
        }),
        s("cast f64 to f32 and back", |b, r| {
            let x = b.random(r, "x", &[2, 3]);
            let y = b.cast(x, DType::F32);
            b.cast(y, DType::F64)
        }),
        s("cast f32 to f64", |b, r| {
            let v: Vec<f32> = (0..6).map(|_| uniform(r, -2.0, 2.0) as f32).collect();
            let x = b.input("x", Buffer::from_vec(v, [2, 3]).unwrap());
            b.cast(x, DType::F64)
        }),
        s("cast f64 to i64", |b, r| {
            let x = b.random(r, "x", &[2, 3]);
            let y = b.op(Op::Binary(BinaryOp::Mul), &[x, x]);
            b.cast(y, DType::I64)
        }),
        s("cast i64 to f64", |b, _| {
            let x = b.index("x", &[3], vec![3, -1, 4]);
            b.cast(x, DType::F64)
        }),
        // Reductions.
        s("sum over axis 1", |b, r| {
            let x = b.random(r, "x", &[2, 3]);
            b.op(reduce(ReduceOp::Sum, &[1]), &[x])
        }),
        s("sum over axes 0 and 2", |b, r| {
            let x = b.random(r, "x", &[2, 3, 2]);
            b.op(reduce(ReduceOp::Sum, &[0, 2]), &[x])
        }),
        s("sum over no axes", |b, r| {
            let x = b.random(r, "x", &[2, 3]);
            b.op(reduce(ReduceOp::Sum, &[]), &[x])
        }),
        s("sum of a 0-d value", |b, r| {
            let x = b.random(r, "x", &[]);
            b.op(reduce(ReduceOp::Sum, &[]), &[x])
        }),
        s("sum over an empty axis", |b, r| {
            let x = b.random(r, "x", &[0, 3]);
            b.op(reduce(ReduceOp::Sum, &[0]), &[x])
        }),
        s("prod over axis 1", |b, r| {
            let x = b.random(r, "x", &[2, 4]);
            b.op(reduce(ReduceOp::Prod, &[1]), &[x])
        }),
        s("prod, rows with no, one and two zeros", prod_rows_with_zeros),
        s("prod of all, one zero", |b, _| {
            let x = b.values("x", &[2, 3], vec![1.5, -2.0, 0.0, 3.0, 0.5, 1.25]);
            b.op(reduce(ReduceOp::Prod, &[0, 1]), &[x])
        }),
        s("prod over axis 0, two zeros in a column", |b, _| {
            let x = b.values("x", &[3, 2], vec![0.0, 2.0, 1.5, 0.0, 0.0, -3.0]);
            b.op(reduce(ReduceOp::Prod, &[0]), &[x])
        }),
        s("prod over an empty axis", |b, r| {
            let x = b.random(r, "x", &[2, 0]);
            b.op(reduce(ReduceOp::Prod, &[1]), &[x])
        }),
        s("prod over no axes, with a zero", |b, _| {
            let x = b.values("x", &[3], vec![0.0, 2.0, -1.0]);
            b.op(reduce(ReduceOp::Prod, &[]), &[x])
        }),
        s("max over axis 1", |b, r| {
            let x = b.random(r, "x", &[3, 4]);
            b.op(reduce(ReduceOp::Max, &[1]), &[x])
        }),
        s("max of all", |b, r| {
            let x = b.random(r, "x", &[2, 3, 2]);
            b.op(reduce(ReduceOp::Max, &[0, 1, 2]), &[x])
        }),
        s("min over axis 0", |b, r| {
            let x = b.random(r, "x", &[3, 4]);
            b.op(reduce(ReduceOp::Min, &[0]), &[x])
        }),
        s("min over axes 0 and 2", |b, r| {
            let x = b.random(r, "x", &[2, 2, 3]);
            b.op(reduce(ReduceOp::Min, &[0, 2]), &[x])
        }),
        s("max over no axes", |b, r| {
            let x = b.random(r, "x", &[3]);
            b.op(reduce(ReduceOp::Max, &[]), &[x])
        }),
        s("argmax", |b, r| {
            let x = b.random(r, "x", &[3, 4]);
            b.op(Op::ArgReduce { op: ArgOp::ArgMax, axis: 1 }, &[x])
        }),
        s("argmin", |b, r| {
            let x = b.random(r, "x", &[3, 4]);
            b.op(Op::ArgReduce { op: ArgOp::ArgMin, axis: 0 }, &[x])
        }),
        // Movement.
        s("reshape", |b, r| {
            let x = b.random(r, "x", &[2, 3]);
            b.reshape(x, &[3, 1, 2])
        }),
        s("reshape 0-d to [1]", |b, r| {
            let x = b.random(r, "x", &[]);
            b.reshape(x, &[1, 1])
        }),
        s("reshape to 0-d", |b, r| {
            let x = b.random(r, "x", &[1, 1]);
            b.reshape(x, &[])
        }),
        s("permute", |b, r| {
            let x = b.random(r, "x", &[2, 3, 4]);
            b.op(Op::Permute { perm: dims(&[2, 0, 1]) }, &[x])
        }),
        s("transpose", |b, r| {
            let x = b.random(r, "x", &[2, 3]);
            b.op(Op::Permute { perm: dims(&[1, 0]) }, &[x])
        }),
        s("expand rows", |b, r| {
            let x = b.random(r, "x", &[1, 3]);
            b.expand(x, &[4, 3])
        }),
        s("expand columns", |b, r| {
            let x = b.random(r, "x", &[2, 1]);
            b.expand(x, &[2, 5])
        }),
        s("expand both", |b, r| {
            let x = b.random(r, "x", &[1, 1]);
            b.expand(x, &[3, 2])
        }),
        s("expand, unchanged", |b, r| {
            let x = b.random(r, "x", &[2, 3]);
            b.expand(x, &[2, 3])
        }),
        s("slice, step 1", |b, r| slice7(b, r, 2, 1, 4)),
        s("slice, step 2", |b, r| slice7(b, r, 0, 2, 4)),
        s("slice, step 2 from 1", |b, r| slice7(b, r, 1, 2, 3)),
        s("slice, step 3", |b, r| slice7(b, r, 1, 3, 2)),
        s("slice, step 3 to the end", |b, r| slice7(b, r, 0, 3, 3)),
        s("slice, step 4, one element", |b, r| slice7(b, r, 5, 4, 1)),
        s("slice, reversed", |b, r| slice7(b, r, 6, -1, 7)),
        s("slice, step -2", |b, r| slice7(b, r, 5, -2, 3)),
        s("slice, step -3", |b, r| slice7(b, r, 6, -3, 3)),
        s("slice, step -2 from the end", |b, r| slice7(b, r, 6, -2, 2)),
        s("slice, empty", |b, r| slice7(b, r, 3, 1, 0)),
        s("slice, empty with step -2", |b, r| slice7(b, r, 0, -2, 0)),
        s("slice 2-d, mixed steps", |b, r| {
            let x = b.random(r, "x", &[5, 6]);
            b.op(slice(&[4, 1], &[-2, 2], &[3, 3]), &[x])
        }),
        s("slice 3-d, one axis empty", |b, r| {
            let x = b.random(r, "x", &[2, 3, 4]);
            b.op(slice(&[1, 0, 3], &[1, 1, -3], &[1, 0, 2]), &[x])
        }),
        s("pad", |b, r| {
            let x = b.random(r, "x", &[2, 3]);
            b.op(Op::Pad { lo: dims(&[1, 0]), hi: dims(&[0, 2]) }, &[x])
        }),
        s("pad 3-d", |b, r| {
            let x = b.random(r, "x", &[1, 2, 2]);
            b.op(Op::Pad { lo: dims(&[2, 1, 0]), hi: dims(&[1, 0, 3]) }, &[x])
        }),
        s("concat of three along axis 1", |b, r| {
            let x = b.random(r, "x", &[2, 1]);
            let y = b.random(r, "y", &[2, 3]);
            let z = b.random(r, "z", &[2, 2]);
            b.op(Op::Concat { axis: 1 }, &[x, y, z])
        }),
        s("concat of three along axis 0, one twice", |b, r| {
            let x = b.random(r, "x", &[1, 3]);
            let y = b.random(r, "y", &[2, 3]);
            b.op(Op::Concat { axis: 0 }, &[x, y, x])
        }),
        s("concat of one", |b, r| {
            let x = b.random(r, "x", &[3]);
            b.op(Op::Concat { axis: 0 }, &[x])
        }),
        s("matmul", |b, r| {
            let x = b.random(r, "x", &[2, 3]);
            let y = b.random(r, "y", &[3, 4]);
            b.op(Op::Matmul, &[x, y])
        }),
        s("matmul, batched", |b, r| {
            let x = b.random(r, "x", &[2, 2, 3]);
            let y = b.random(r, "y", &[2, 3, 2]);
            b.op(Op::Matmul, &[x, y])
        }),
        s("matmul, two batch axes, k = 1", |b, r| {
            let x = b.random(r, "x", &[2, 1, 3, 1]);
            let y = b.random(r, "y", &[2, 1, 1, 2]);
            b.op(Op::Matmul, &[x, y])
        }),
        s("matmul of a value with itself", |b, r| {
            let x = b.random(r, "x", &[3, 3]);
            b.op(Op::Matmul, &[x, x])
        }),
        s("conv2d, strided, padded, dilated, grouped", |b, r| {
            let x = b.random(r, "x", &[2, 4, 5, 4]);
            let w = b.random(r, "w", &[4, 2, 2, 3]);
            b.op(conv(ConvRole::Forward), &[x, w])
        }),
        s("conv2d_input", |b, r| {
            let dy = b.random(r, "dy", &[2, 4, 3, 2]);
            let w = b.random(r, "w", &[4, 2, 2, 3]);
            b.op(conv(ConvRole::Input { size: [5, 4] }), &[dy, w])
        }),
        s("conv2d_weight", |b, r| {
            let x = b.random(r, "x", &[2, 4, 5, 4]);
            let dy = b.random(r, "dy", &[2, 4, 3, 2]);
            b.op(conv(ConvRole::Weight { kernel: [2, 3] }), &[x, dy])
        }),
        s("max_pool2d_select, overlapping padded windows", |b, r| {
            let x = b.random(r, "x", &[1, 2, 5, 4]);
            let t = b.random(r, "t", &[1, 2, 5, 4]);
            b.op(pool(PoolRole::Select), &[x, t])
        }),
        s("max_pool2d_select of x by itself (max_pool2d)", |b, r| {
            let x = b.random(r, "x", &[1, 2, 5, 4]);
            b.op(pool(PoolRole::Select), &[x, x])
        }),
        s("max_pool2d_scatter", |b, r| {
            let x = b.random(r, "x", &[1, 2, 5, 4]);
            let g = b.random(r, "g", &[1, 2, 3, 2]);
            b.op(pool(PoolRole::Scatter), &[x, g])
        }),
        s("gather along axis 0, repeated indices", |b, r| {
            let x = b.random(r, "x", &[3, 4]);
            let i = b.index("i", &[2, 4], vec![0, 2, 2, 1, 0, 0, 2, 1]);
            b.op(Op::Gather { axis: 0 }, &[x, i])
        }),
        s("gather along axis 1, narrower index", |b, r| {
            let x = b.random(r, "x", &[3, 4]);
            let i = b.index("i", &[2, 5], vec![3, 3, 0, 1, 3, 2, 0, 0, 1, 2]);
            b.op(Op::Gather { axis: 1 }, &[x, i])
        }),
        s("gather one element per row (cross-entropy's pick)", |b, r| {
            let x = b.random(r, "x", &[4, 3]);
            let i = b.index("i", &[4, 1], vec![2, 0, 1, 2]);
            b.op(Op::Gather { axis: 1 }, &[x, i])
        }),
        s("gather one element per column along axis 0", |b, r| {
            let x = b.random(r, "x", &[3, 2, 2]);
            let i = b.index("i", &[1, 2, 2], vec![2, 0, 1, 1]);
            b.op(Op::Gather { axis: 0 }, &[x, i])
        }),
        s("scatter_add along axis 0, repeated indices", |b, r| {
            let base = b.random(r, "base", &[3, 4]);
            let i = b.index("i", &[2, 4], vec![0, 2, 2, 1, 0, 0, 2, 1]);
            let src = b.random(r, "src", &[2, 4]);
            b.op(Op::ScatterAdd { axis: 0 }, &[base, i, src])
        }),
        s("scatter_add along axis 1", |b, r| {
            let base = b.random(r, "base", &[2, 3]);
            let i = b.index("i", &[2, 4], vec![2, 2, 0, 1, 1, 1, 1, 0]);
            let src = b.random(r, "src", &[2, 4]);
            b.op(Op::ScatterAdd { axis: 1 }, &[base, i, src])
        }),
    ]
}

#[test]
fn every_structural_rule_matches_finite_differences() {
    let mut rng = Rng::new(4);
    let mut seen = [false; VARIANTS];
    for (name, build) in samples() {
        let mut b = Builder::new("sample");
        let node = build(&mut b, &mut rng);
        let (variant, expect) = classify(&b.graph, node);
        seen[variant] = true;
        let case = b.weighted_sum(node, &mut rng);
        let names: Vec<&str> = case.graph.inputs().iter().map(|(n, _)| n.as_str()).collect();
        let w = names.iter().position(|&n| n == "w").unwrap();
        match expect {
            Expect::Flows => {
                let flows = check_fd2(&case, name, &mut rng);
                for (i, input) in case.inputs.iter().enumerate() {
                    if input.dtype() == DType::F64 && input.numel() > 0 {
                        assert!(flows[i], "{name}: input {} gets a gradient\n{}", names[i], case.graph);
                    }
                }
            }
            Expect::Chooses => {
                let flows = check_fd2(&case, name, &mut rng);
                for (i, input) in case.inputs.iter().enumerate() {
                    if input.dtype() == DType::F64 && input.numel() > 0 {
                        assert_eq!(
                            flows[i],
                            names[i] != "x",
                            "{name}: only x's gradient is none\n{}",
                            case.graph
                        );
                    }
                }
            }
            Expect::Stops => {
                let flows = check_fd(&case, name);
                for (i, f) in flows.iter().enumerate() {
                    assert!(*f == (i == w), "{name}: only the weight gets a gradient, not {}", names[i]);
                }
                assert_rule_passes_nothing(&case.graph, node, name);
            }
            Expect::RoundsThroughF32 => {
                let grads = gradients(&case);
                let weights = f64s(&case.inputs[w]);
                let dx = grads[0].as_ref().unwrap_or_else(|| panic!("{name}: x gets a gradient"));
                assert_eq!(dx.ty(), case.inputs[0].ty(), "{name}");
                let want: Vec<f64> = weights.iter().map(|&v| v as f32 as f64).collect();
                assert_eq!(dx.cast(DType::F64).as_slice::<f64>().unwrap(), &want[..], "{name}");
                assert!(want.iter().zip(&weights).any(|(a, b)| a != b), "{name}: the weights round");
            }
        }
    }
    let missing: Vec<usize> = (0..VARIANTS).filter(|&v| !seen[v]).collect();
    assert!(missing.is_empty(), "no sample of the op variants {missing:?} (numbered as in classify)");
}

// ---------------------------------------------------------------------------------------------
// Exact values at ties, NaNs and zeros
// ---------------------------------------------------------------------------------------------

/// The gradients of `sum(f(inputs))` (seed 1) with respect to each input, as `f64` vectors
/// (`None`: no gradient).
fn exact_grads(inputs: &[Vec<f64>], f: impl Fn(&mut Builder, &[NodeId]) -> NodeId) -> Vec<Option<Vec<f64>>> {
    let mut b = Builder::new("exact");
    let ids: Vec<NodeId> =
        inputs.iter().enumerate().map(|(i, v)| b.values(&format!("x{i}"), &[v.len()], v.clone())).collect();
    let y = f(&mut b, &ids);
    let case = b.plain_sum(y);
    gradients(&case).into_iter().map(|g| g.map(|g| f64s(&g))).collect()
}

/// Asserts that `got` equals `want` exactly (NaNs equal).
fn assert_exact(got: &Option<Vec<f64>>, want: &[f64], what: &str) {
    let got = got.as_ref().unwrap_or_else(|| panic!("{what}: no gradient"));
    let same =
        got.len() == want.len() && got.iter().zip(want).all(|(a, b)| a == b || (a.is_nan() && b.is_nan()));
    assert!(same, "{what}: gradient {got:?}, expected {want:?}");
}

#[test]
fn maximum_and_minimum_split_ties_in_half() {
    let a = vec![1.0, 2.0, 3.0, 2.5, -0.0];
    let b = vec![1.0, 5.0, 3.0, -1.0, 0.0];
    let g = exact_grads(&[a.clone(), b.clone()], |b, x| b.binary(BinaryOp::Maximum, x[0], x[1]));
    assert_exact(&g[0], &[0.5, 0.0, 0.5, 1.0, 0.5], "maximum, a");
    assert_exact(&g[1], &[0.5, 1.0, 0.5, 0.0, 0.5], "maximum, b");
    let g = exact_grads(&[a, b], |b, x| b.binary(BinaryOp::Minimum, x[0], x[1]));
    assert_exact(&g[0], &[0.5, 1.0, 0.5, 0.0, 0.5], "minimum, a");
    assert_exact(&g[1], &[0.5, 0.0, 0.5, 1.0, 0.5], "minimum, b");
    // maximum(x, x) = x: the halves add up to the whole.
    let g = exact_grads(&[vec![-1.0, 2.0]], |b, x| b.binary(BinaryOp::Maximum, x[0], x[0]));
    assert_exact(&g[0], &[1.0, 1.0], "maximum(x, x)");
}

#[test]
fn max_and_min_reductions_share_among_ties() {
    let max = |b: &mut Builder, x: &[NodeId]| b.reduce(ReduceOp::Max, &[0], x[0]);
    let min = |b: &mut Builder, x: &[NodeId]| b.reduce(ReduceOp::Min, &[0], x[0]);
    assert_exact(&exact_grads(&[vec![1.0, 3.0, 3.0, 2.0]], max)[0], &[0.0, 0.5, 0.5, 0.0], "max, two tied");
    assert_exact(&exact_grads(&[vec![1.0, 3.0, 2.0]], max)[0], &[0.0, 1.0, 0.0], "max, no tie");
    let third = 1.0 / 3.0;
    assert_exact(
        &exact_grads(&[vec![4.0, 0.0, 4.0, 4.0]], max)[0],
        &[third, 0.0, third, third],
        "max, three tied",
    );
    assert_exact(&exact_grads(&[vec![1.0, -2.0, 5.0, -2.0]], min)[0], &[0.0, 0.5, 0.0, 0.5], "min, two tied");

    // Per group, over axis 1 of a [2, 4].
    let mut b = Builder::new("rows");
    let x = b.values("x", &[2, 4], vec![1.0, 3.0, 3.0, 2.0, 4.0, 4.0, 4.0, 0.0]);
    let y = b.reduce(ReduceOp::Max, &[1], x);
    let g = gradients(&b.plain_sum(y));
    let want = [0.0, 0.5, 0.5, 0.0, third, third, third, 0.0];
    assert_exact(&g[0].as_ref().map(f64s), &want, "max over rows");
}

#[test]
fn relu_as_where_or_maximum() {
    let x = vec![-1.0, 0.0, 2.0, 0.5, -0.0];
    // where(x > 0, x, 0): the gradient is 1 exactly where the condition holds.
    let g = exact_grads(std::slice::from_ref(&x), |b, v| {
        let zero = b.constant_like(0.0, v[0]);
        let pos = b.binary(BinaryOp::Gt, v[0], zero);
        b.op(Op::Where, &[pos, v[0], zero])
    });
    assert_exact(&g[0], &[0.0, 0.0, 1.0, 1.0, 0.0], "where(x > 0, x, 0)");
    // maximum(x, 0): torch.maximum's half at the tie x = 0.
    let g = exact_grads(&[x], |b, v| {
        let zero = b.constant_like(0.0, v[0]);
        b.binary(BinaryOp::Maximum, v[0], zero)
    });
    assert_exact(&g[0], &[0.0, 0.5, 1.0, 1.0, 0.5], "maximum(x, 0)");
}

#[test]
fn nan_is_the_maximum() {
    let nan = f64::NAN;
    let max = |b: &mut Builder, x: &[NodeId]| b.reduce(ReduceOp::Max, &[0], x[0]);
    let min = |b: &mut Builder, x: &[NodeId]| b.reduce(ReduceOp::Min, &[0], x[0]);
    assert_exact(&exact_grads(&[vec![1.0, nan, 3.0]], max)[0], &[0.0, 1.0, 0.0], "max with one NaN");
    assert_exact(&exact_grads(&[vec![nan, 2.0, nan]], max)[0], &[0.5, 0.0, 0.5], "max with two NaNs");
    assert_exact(&exact_grads(&[vec![1.0, nan, -3.0]], min)[0], &[0.0, 1.0, 0.0], "min with one NaN");
    // Elementwise, as torch.maximum: a NaN operand ties with nothing and loses to nothing, so
    // both operands get the whole gradient.
    let g = exact_grads(&[vec![nan, 1.0], vec![1.0, nan]], |b, x| b.binary(BinaryOp::Maximum, x[0], x[1]));
    assert_exact(&g[0], &[1.0, 1.0], "maximum with NaN, a");
    assert_exact(&g[1], &[1.0, 1.0], "maximum with NaN, b");
}

#[test]
fn prod_handles_zeros() {
    let prod = |b: &mut Builder, x: &[NodeId]| b.reduce(ReduceOp::Prod, &[0], x[0]);
    assert_exact(&exact_grads(&[vec![2.0, 4.0, 0.5]], prod)[0], &[2.0, 1.0, 8.0], "no zero");
    assert_exact(&exact_grads(&[vec![2.0, 0.0, 3.0]], prod)[0], &[0.0, 6.0, 0.0], "one zero");
    assert_exact(&exact_grads(&[vec![0.0, 0.0, 3.0]], prod)[0], &[0.0, 0.0, 0.0], "two zeros");
    assert_exact(&exact_grads(&[vec![0.0]], prod)[0], &[1.0], "a lone zero");
}

#[test]
fn pow_abs_and_sqrt_at_their_edges() {
    let pow = |b: &mut Builder, x: &[NodeId]| b.binary(BinaryOp::Pow, x[0], x[1]);
    // x ** 0 has zero gradient in x, even at 0 (not 0 * 0^-1); 0 ** y has zero gradient in y
    // for y >= 0 (not 0 * ln 0).
    let g = exact_grads(&[vec![0.0, 0.0, 2.0, 0.0], vec![0.0, 2.0, 0.0, 1.0]], pow);
    assert_exact(&g[0], &[0.0, 0.0, 0.0, 1.0], "pow, base");
    assert_exact(&g[1], &[0.0, 0.0, 2f64.ln(), 0.0], "pow, exponent");
    let g = exact_grads(&[vec![-2.0, 0.0, -0.0, 3.0]], |b, x| b.unary(UnaryOp::Abs, x[0]));
    assert_exact(&g[0], &[-1.0, 0.0, 0.0, 1.0], "abs");
    let g = exact_grads(&[vec![0.0, 4.0]], |b, x| b.unary(UnaryOp::Sqrt, x[0]));
    assert_exact(&g[0], &[f64::INFINITY, 0.25], "sqrt");
}

// ---------------------------------------------------------------------------------------------
// Random graphs
// ---------------------------------------------------------------------------------------------

/// A random shape of rank 0 to 3, sizes 1 to 4.
fn random_shape(rng: &mut Rng) -> Vec<usize> {
    (0..rng.below(4)).map(|_| 1 + rng.below(4)).collect()
}

/// `other` made to have shape `shape`: as it is, reshaped if it has as many elements, else
/// its sum broadcast (reshape to all ones, then expand).
fn fit(b: &mut Builder, other: NodeId, shape: &[usize]) -> NodeId {
    let have = b.shape(other);
    if have == shape {
        return other;
    }
    if have.iter().product::<usize>() == shape.iter().product::<usize>() {
        return b.reshape(other, shape);
    }
    let s = b.sum_all(other);
    let s = b.unary(UnaryOp::Tanh, s);
    let ones = vec![1; shape.len()];
    let s = b.reshape(s, &ones);
    if ones == shape {
        s
    } else {
        b.expand(s, shape)
    }
}

/// A random non-empty subset of `0..rank`, sorted.
fn random_axes(rng: &mut Rng, rank: usize) -> Vec<usize> {
    let mut axes: Vec<usize> = (0..rank).filter(|_| rng.chance(2)).collect();
    if axes.is_empty() {
        axes.push(rng.below(rank));
    }
    axes
}

/// The prime factors of `n`, then regrouped at random into a new shape with `n` elements.
fn random_reshape(rng: &mut Rng, n: usize) -> Vec<usize> {
    let mut factors = Vec::new();
    let mut m = n;
    let mut p = 2;
    while m > 1 {
        while m.is_multiple_of(p) {
            factors.push(p);
            m /= p;
        }
        p += 1;
    }
    let rank = 1 + rng.below(3);
    let mut shape = vec![1; rank];
    for f in factors {
        shape[rng.below(rank)] *= f;
    }
    shape
}

/// One step of a random graph, applied to `x` (with `other` available as a second operand).
fn random_step(b: &mut Builder, rng: &mut Rng, x: NodeId, other: NodeId) -> NodeId {
    let shape = b.shape(x);
    let rank = shape.len();
    match rng.below(16) {
        0 => {
            let u = rng.pick(&[UnaryOp::Sin, UnaryOp::Cos, UnaryOp::Tanh, UnaryOp::Neg]);
            b.unary(u, x)
        }
        1 => {
            let t = b.unary(UnaryOp::Tanh, x);
            b.unary(UnaryOp::Exp, t)
        }
        2 => {
            // log or sqrt of x² + 0.5.
            let xx = b.binary(BinaryOp::Mul, x, x);
            let c = b.constant_like(0.5, x);
            let p = b.binary(BinaryOp::Add, xx, c);
            b.unary(rng.pick(&[UnaryOp::Log, UnaryOp::Sqrt]), p)
        }
        3 | 4 => {
            let o = fit(b, other, &shape);
            let op = rng.pick(&[BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul]);
            if rng.chance(2) {
                b.binary(op, x, o)
            } else {
                b.binary(op, o, x)
            }
        }
        5 => {
            // x / (o² + 1).
            let o = fit(b, other, &shape);
            let oo = b.binary(BinaryOp::Mul, o, o);
            let one = b.constant_like(1.0, o);
            let d = b.binary(BinaryOp::Add, oo, one);
            b.binary(BinaryOp::Div, x, d)
        }
        6 => {
            // (tanh(x)² + 0.5) ** e, e a constant or tanh of another value.
            let t = b.unary(UnaryOp::Tanh, x);
            let tt = b.binary(BinaryOp::Mul, t, t);
            let c = b.constant_like(0.5, x);
            let base = b.binary(BinaryOp::Add, tt, c);
            let e = if rng.chance(2) {
                let c = rng.pick(&[-1.5, 0.5, 2.0, 3.0]);
                b.constant_like(c, x)
            } else {
                let o = fit(b, other, &shape);
                b.unary(UnaryOp::Tanh, o)
            };
            b.binary(BinaryOp::Pow, base, e)
        }
        7 => {
            let n = shape.iter().product();
            let to = random_reshape(rng, n);
            b.reshape(x, &to)
        }
        8 if rank >= 2 => {
            let mut perm: Vec<usize> = (0..rank).collect();
            for i in (1..rank).rev() {
                perm.swap(i, rng.below(i + 1));
            }
            b.op(Op::Permute { perm: dims(&perm) }, &[x])
        }
        9 if rank >= 1 => {
            let (mut start, mut step, mut size) = (vec![], vec![], vec![]);
            for &len in &shape {
                let s: isize = rng.pick(&[1, 1, 2, 3, -1, -2]);
                let first = rng.below(len);
                let room = if s > 0 { (len - 1 - first) / s as usize } else { first / (-s) as usize };
                start.push(first as isize);
                step.push(s);
                size.push(1 + rng.below(room + 1));
            }
            b.op(slice(&start, &step, &size), &[x])
        }
        10 if rank >= 1 => {
            let lo: Vec<usize> = (0..rank).map(|_| rng.below(2)).collect();
            let hi: Vec<usize> = (0..rank).map(|_| rng.below(2)).collect();
            b.op(Op::Pad { lo: dims(&lo), hi: dims(&hi) }, &[x])
        }
        11 if rank >= 1 => {
            let axis = rng.below(rank);
            let s = b.unary(UnaryOp::Sin, x);
            b.op(Op::Concat { axis }, &[x, s, x])
        }
        12 if rank >= 1 => {
            // sum or mean over some axes, or a max or min.
            let axes = random_axes(rng, rank);
            let op = rng.pick(&[ReduceOp::Sum, ReduceOp::Sum, ReduceOp::Max, ReduceOp::Min]);
            let r = b.reduce(op, &axes, x);
            if op == ReduceOp::Sum && rng.chance(2) {
                let n: usize = axes.iter().map(|&a| shape[a]).product();
                let c = b.constant_like(1.0 / n as f64, r);
                b.binary(BinaryOp::Mul, r, c)
            } else {
                r
            }
        }
        13 if rank >= 1 => {
            // x - max(x, axes), or x * mean(x, axes), the reduction broadcast back.
            let axes = random_axes(rng, rank);
            let op = rng.pick(&[ReduceOp::Sum, ReduceOp::Max]);
            let r = b.reduce(op, &axes, x);
            let kept: Vec<usize> = (0..rank).map(|d| if axes.contains(&d) { 1 } else { shape[d] }).collect();
            let r = b.reshape(r, &kept);
            let r = b.expand(r, &shape);
            b.binary(if op == ReduceOp::Max { BinaryOp::Sub } else { BinaryOp::Mul }, x, r)
        }
        14 => {
            // A size-1 axis broadcast: inserted, then expanded.
            let at = rng.below(rank + 1);
            let mut one = shape.clone();
            one.insert(at, 1);
            let r = b.reshape(x, &one);
            let mut wide = one.clone();
            wide[at] = 2 + rng.below(2);
            b.expand(r, &wide)
        }
        _ => {
            // matmul: x @ xᵀ, or x @ a new weight, or a dot product for rank < 2.
            if rank < 2 {
                let n = shape.iter().product();
                let row = b.reshape(x, &[1, n]);
                let col = b.reshape(x, &[n, 1]);
                return b.op(Op::Matmul, &[row, col]);
            }
            if rng.chance(2) {
                let mut perm: Vec<usize> = (0..rank).collect();
                perm.swap(rank - 2, rank - 1);
                let t = b.op(Op::Permute { perm: dims(&perm) }, &[x]);
                b.op(Op::Matmul, &[x, t])
            } else {
                let mut wshape = shape.clone();
                wshape[rank - 2] = shape[rank - 1];
                wshape[rank - 1] = 1 + rng.below(3);
                let name = format!("m{}", b.inputs.len());
                let w = b.random(rng, &name, &wshape);
                b.op(Op::Matmul, &[x, w])
            }
        }
    }
}

/// A random differentiable graph: 1 to 3 inputs, 3 to 10 random steps, and `sum(y * w)` of
/// the last value.
fn random_case(seed: u64) -> Case {
    let mut rng = Rng::new(seed);
    let mut b = Builder::new(&format!("random{seed}"));
    let mut pool: Vec<NodeId> = Vec::new();
    for i in 0..1 + rng.below(3) {
        let shape = random_shape(&mut rng);
        pool.push(b.random(&mut rng, &format!("x{i}"), &shape));
    }
    for _ in 0..3 + rng.below(8) {
        // Mostly the latest value, so graphs grow deep rather than wide.
        let x = if rng.chance(3) { rng.pick(&pool) } else { *pool.last().unwrap() };
        let other = rng.pick(&pool);
        let mut y = random_step(&mut b, &mut rng, x, other);
        // Keep values small.
        while b.shape(y).iter().product::<usize>() > 48 {
            y = b.reduce(ReduceOp::Sum, &[0], y);
        }
        pool.push(y);
    }
    let y = *pool.last().unwrap();
    // Every input feeds the output, so every gradient is checked for a value.
    let mut total = y;
    let shape = b.shape(y);
    let used = dependencies(&b.graph, y);
    let inputs: Vec<NodeId> = b.graph.inputs().iter().map(|(_, n)| *n).collect();
    for x in inputs {
        if !used.contains(&x) {
            let f = fit(&mut b, x, &shape);
            total = b.binary(BinaryOp::Add, total, f);
        }
    }
    b.weighted_sum(total, &mut rng)
}

/// The nodes `n` depends on, `n` included.
fn dependencies(g: &Graph, n: NodeId) -> std::collections::HashSet<NodeId> {
    let mut seen = std::collections::HashSet::from([n]);
    let mut stack = vec![n];
    while let Some(m) = stack.pop() {
        for a in g.args(m) {
            if seen.insert(a) {
                stack.push(a);
            }
        }
    }
    seen
}

#[test]
fn random_graphs_match_finite_differences() {
    let mut rng = Rng::new(5);
    let mut ops = std::collections::BTreeSet::new();
    for seed in 0..100 {
        let case = random_case(seed);
        for n in case.graph.nodes() {
            ops.insert(case.graph.op(n).name());
        }
        let flows = check_fd(&case, &format!("random graph {seed}"));
        for (i, input) in case.inputs.iter().enumerate() {
            assert!(
                flows[i] || input.dtype() != DType::F64,
                "random graph {seed}: input {} gets a gradient\n{}",
                case.graph.inputs()[i].0,
                case.graph
            );
        }
        // Second order on every fourth graph (the gradient graphs are larger).
        if seed % 4 == 0 {
            if let Some(h) = hvp_case(&case, &mut rng) {
                check_fd(&h, &format!("random graph {seed} (second order)"));
            }
        }
    }
    for op in ["expand", "reshape", "permute", "slice", "pad", "concat", "sum", "max", "matmul", "pow", "div"]
    {
        assert!(ops.contains(op), "the random graphs use {op}: {ops:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Second derivatives
// ---------------------------------------------------------------------------------------------

/// `f(x)`, `f'(x)` and `f''(x)` at a scalar `x`, the derivatives by applying `grad` twice.
fn derivatives(f: fn(&mut Builder, NodeId) -> NodeId, x: f64) -> [f64; 3] {
    let mut b = Builder::new("f");
    let xn = b.values("x", &[], vec![x]);
    let y = f(&mut b, xn);
    let seed = b.constant_like(1.0, y);
    let d1 = autodiff::grad(&mut b.graph, &[y], &[seed], &[xn]).unwrap()[0].expect("f depends on x");
    let seed = b.constant_like(1.0, d1);
    let d2 = autodiff::grad(&mut b.graph, &[d1], &[seed], &[xn]).unwrap()[0].expect("f' depends on x");
    b.graph.set_outputs(vec![y, d1, d2]);
    let out = run(&b.graph, &b.inputs);
    [f64s(&out[0])[0], f64s(&out[1])[0], f64s(&out[2])[0]]
}

#[test]
fn second_derivatives_match_closed_forms() {
    type F = fn(&mut Builder, NodeId) -> NodeId;
    type D = fn(f64) -> f64;
    let cases: [(&str, F, D, D, &[f64]); 6] = [
        (
            "x * x * x",
            |b, x| {
                let xx = b.binary(BinaryOp::Mul, x, x);
                b.binary(BinaryOp::Mul, xx, x)
            },
            |x| 3.0 * x * x,
            |x| 6.0 * x,
            &[0.7, -1.3, 2.0, 0.0],
        ),
        (
            "x ** 3",
            |b, x| {
                let three = b.constant_like(3.0, x);
                b.binary(BinaryOp::Pow, x, three)
            },
            |x| 3.0 * x * x,
            |x| 6.0 * x,
            &[0.7, -1.3, 2.0],
        ),
        ("sin x", |b, x| b.unary(UnaryOp::Sin, x), f64::cos, |x| -x.sin(), &[0.3, -2.0, 4.0]),
        (
            "exp(x) * x",
            |b, x| {
                let e = b.unary(UnaryOp::Exp, x);
                b.binary(BinaryOp::Mul, e, x)
            },
            |x| (x + 1.0) * x.exp(),
            |x| (x + 2.0) * x.exp(),
            &[0.5, -1.5, 1.0],
        ),
        (
            "tanh x",
            |b, x| b.unary(UnaryOp::Tanh, x),
            |x| 1.0 - x.tanh().powi(2),
            |x| -2.0 * x.tanh() * (1.0 - x.tanh().powi(2)),
            &[0.4, -1.1, 2.5],
        ),
        (
            "x * log x",
            |b, x| {
                let l = b.unary(UnaryOp::Log, x);
                b.binary(BinaryOp::Mul, x, l)
            },
            |x| x.ln() + 1.0,
            |x| 1.0 / x,
            &[0.25, 1.0, 3.5],
        ),
    ];
    for (name, f, d1, d2, points) in cases {
        for &x in points {
            let [_, got1, got2] = derivatives(f, x);
            let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * (1.0 + b.abs());
            assert!(close(got1, d1(x)), "{name} at {x}: f' = {got1}, expected {}", d1(x));
            assert!(close(got2, d2(x)), "{name} at {x}: f'' = {got2}, expected {}", d2(x));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// grad_graph on text, and errors
// ---------------------------------------------------------------------------------------------

const LOSS: &str = "\
graph @loss(%x: f64[3], %w: f64[3], %n: i64[3], %unused: f64[2]) {
  %0 = mul %x, %w : f64[3]
  %1 = sin %0 : f64[3]
  %2 = cast %n : f64[3]
  %3 = mul %1, %2 : f64[3]
  %4 = sum %3, axes=[0] : f64[]
  return %4
}
";

#[test]
fn grad_graph_of_parsed_text() {
    let g = text::parse(LOSS).unwrap();
    let gg = autodiff::grad_graph(&g).unwrap();
    tenjit_ir::verify(&gg).unwrap();
    // The output, then d/dx, d/dw and d/dunused (zeros); %n is an integer input and gets none.
    let types: Vec<String> = gg.outputs().iter().map(|&o| gg.ty(o).to_string()).collect();
    assert_eq!(types, ["f64[]", "f64[3]", "f64[3]", "f64[2]"]);
    let x = [0.5f64, -1.0, 2.0];
    let w = [1.5, 0.25, -0.75];
    let n = [2i64, -1, 3];
    let inputs = [
        Buffer::from_vec(x.to_vec(), [3]).unwrap(),
        Buffer::from_vec(w.to_vec(), [3]).unwrap(),
        Buffer::from_vec(n.to_vec(), [3]).unwrap(),
        Buffer::from_vec(vec![7.0, 8.0], [2]).unwrap(),
    ];
    let out = run(&gg, &inputs);
    let loss: f64 = (0..3).map(|i| (x[i] * w[i]).sin() * n[i] as f64).sum();
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-14 * (1.0 + b.abs());
    assert!(close(f64s(&out[0])[0], loss));
    for i in 0..3 {
        let c = (x[i] * w[i]).cos() * n[i] as f64;
        assert!(close(f64s(&out[1])[i], c * w[i]), "d/dx[{i}]");
        assert!(close(f64s(&out[2])[i], c * x[i]), "d/dw[{i}]");
    }
    assert_eq!(f64s(&out[3]), [0.0, 0.0]);
    // The gradient graph prints, parses back to itself, and differentiates again: here its
    // first output is the loss, and grad_graph needs one output.
    let printed = gg.to_string();
    assert_eq!(text::parse(&printed).unwrap().to_string(), printed);
    assert!(printed.contains("cos"), "{printed}");
}

#[test]
fn grad_graph_rejects_what_it_cannot_differentiate() {
    let cases = [
        ("graph @g(%x: f64[2]) {\n  return %x, %x\n}\n", "expected one output, the graph has 2"),
        ("graph @g(%x: f64[2]) {\n  return %x\n}\n", "must be a floating-point scalar, it is f64[2]"),
        ("graph @g(%x: i64[]) {\n  return %x\n}\n", "must be a floating-point scalar, it is i64[]"),
        ("graph @g(%x: f64[]) {\n  return\n}\n", "expected one output, the graph has 0"),
    ];
    for (src, message) in cases {
        let g = text::parse(src).unwrap();
        let e = autodiff::grad_graph(&g).unwrap_err();
        assert!(e.to_string().contains(message), "{e}");
        assert!(e.to_string().starts_with("grad: "), "{e}");
    }
    // A scalar output that depends on no float input: every gradient is zeros.
    let g =
        text::parse("graph @g(%n: i64[], %x: f64[2]) {\n  %0 = cast %n : f64[]\n  return %0\n}\n").unwrap();
    let gg = autodiff::grad_graph(&g).unwrap();
    let out = run(
        &gg,
        &[Buffer::from_vec(vec![4i64], []).unwrap(), Buffer::from_vec(vec![1.0, 2.0], [2]).unwrap()],
    );
    assert_eq!(f64s(&out[0]), [4.0]);
    assert_eq!(f64s(&out[1]), [0.0, 0.0]);
}

#[test]
fn grad_rejects_bad_arguments() {
    let mut g = Graph::new("g");
    let x = g.add_input("x", f64_ty(&[2]));
    let n = g.add_input("n", TensorType::new(DType::I64, Shape::new(&[2])));
    let y = g.add(Op::Unary(UnaryOp::Sin), &[x]).unwrap();
    let seed = g.add(Op::Const { value: Scalar::Float(1.0), ty: f64_ty(&[2]) }, &[]).unwrap();
    let bad_seed = g.add(Op::Const { value: Scalar::Float(1.0), ty: f64_ty(&[3]) }, &[]).unwrap();
    let err = |r: Result<Vec<Option<NodeId>>, autodiff::GradError>| r.unwrap_err().to_string();
    assert!(err(autodiff::grad(&mut g, &[y], &[], &[x])).contains("1 outputs but 0 seeds"));
    assert!(err(autodiff::grad(&mut g, &[y], &[bad_seed], &[x])).contains("has type f64[3]"));
    assert!(err(autodiff::grad(&mut g, &[y], &[seed], &[n])).contains("only floating-point tensors"));
    // Gradient with respect to an intermediate node, and to a node the output does not use.
    let z = g.add(Op::Unary(UnaryOp::Exp), &[y]).unwrap();
    let seed2 = g.add(Op::Const { value: Scalar::Float(1.0), ty: f64_ty(&[2]) }, &[]).unwrap();
    let other = g.add(Op::Unary(UnaryOp::Cos), &[x]).unwrap();
    let grads = autodiff::grad(&mut g, &[z], &[seed2], &[y, other]).unwrap();
    assert!(grads[1].is_none());
    g.set_outputs(vec![grads[0].unwrap()]);
    let out = run(
        &g,
        &[Buffer::from_vec(vec![0.5, -1.0], [2]).unwrap(), Buffer::from_vec(vec![0i64, 0], [2]).unwrap()],
    );
    let want: Vec<f64> = [0.5f64, -1.0].iter().map(|v| v.sin().exp()).collect();
    assert_eq!(f64s(&out[0]), want);
}

/// The cotangents of slices of one axis (`q, k, v = qkv.split(c, -1)`) are joined by one
/// `concat`, zeros filling the gaps, instead of a zero-padded buffer per slice and their sum.
#[test]
fn slices_of_one_axis_get_one_joined_gradient() {
    let mut g = Graph::new("split");
    let x = g.add_input("x", f64_ty(&[2, 7]));
    let slice = |g: &mut Graph, from: usize, len: usize| {
        let op = Op::Slice {
            start: idims(&[0, from as isize]),
            step: idims(&[1, 1]),
            size: dims(&[2, len]),
            bounds: None,
        };
        g.add(op, &[x]).unwrap()
    };
    let (a, b) = (slice(&mut g, 0, 2), slice(&mut g, 4, 3));
    let sum = |g: &mut Graph, v: NodeId| {
        g.add(Op::Reduce { op: ReduceOp::Sum, axes: dims(&[0, 1]) }, &[v]).unwrap()
    };
    let sa = g.add(Op::Unary(UnaryOp::Sin), &[a]).unwrap();
    let bb = g.add(Op::Binary(BinaryOp::Mul), &[b, b]).unwrap();
    let (s1, s2, s3) = (sum(&mut g, sa), sum(&mut g, bb), sum(&mut g, x));
    let t = g.add(Op::Binary(BinaryOp::Add), &[s1, s2]).unwrap();
    let loss = g.add(Op::Binary(BinaryOp::Add), &[t, s3]).unwrap();
    g.set_outputs(vec![loss]);
    let gg = autodiff::grad_graph(&g).unwrap();
    tenjit_ir::verify(&gg).unwrap();
    let text = gg.to_string();
    assert!(text.contains("concat") && !text.contains("pad"), "{text}");
    let xs: Vec<f64> = (0..14).map(|i| 0.3 * i as f64 - 2.0).collect();
    let out = run(&gg, &[Buffer::from_vec(xs.clone(), [2, 7]).unwrap()]);
    let want: Vec<f64> = (0..14)
        .map(|i| match i % 7 {
            0 | 1 => xs[i].cos() + 1.0,
            2 | 3 => 1.0,
            _ => 2.0 * xs[i] + 1.0,
        })
        .collect();
    assert_eq!(f64s(&out[1]), want);
}
