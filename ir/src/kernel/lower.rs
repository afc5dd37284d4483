//! Fusion: [`lower`] turns a [`Graph`] into a [`Program`] of fused kernels, and records why
//! each kernel ends where it does (DESIGN.md principle 5).
//!
//! The decision is made on the graph, in three steps, before any kernel is built:
//!
//! 1. **Structural boundaries.** Graph outputs are materialized (an output that is a graph
//!    input gets a copy kernel, so every output buffer is a fresh dense buffer). `gather`,
//!    `scatter_add`, `concat` and `pad` run as library routines ([`OpStep`]) on dense operands, so their operands are materialized unless they are
//!    inputs. A `matmul` is a [`MatmulStep`]; each operand is a strided view of a buffer: the
//!    movement ops above the operand's base fold into the operand's strides (`x.t() @ w` needs
//!    no copy), and the base is materialized unless it is an input. When the view is not
//!    affine, the operand itself is materialized.
//! 2. **Reductions and their epilogues.** Every reduction (`argmax` and `argmin` included:
//!    [`Combine::Arg`]) is the body of a kernel whose iteration space is the reduced operand's
//!    shape; its elementwise and movement producers fuse into the body. From the reduction, a chain of single-use consumers that stay in the
//!    output space (elementwise ops, and reshapes that only insert or remove size-1 axes, as
//!    `keepdim` does) fuses into the epilogue. The chain ends, and its last value is
//!    materialized, where the value is an output, is used more than once, is broadcast back
//!    over the reduced axes (`x - mean`, softmax), feeds another reduction, or is moved.
//!    An `argmax` (`argmin`) and a `max` (`min`) of the same value over the same axis, as
//!    `x.max_dim(1)` builds, are *paired*: one kernel computes both ([`Inst::AccValue`] is the
//!    `max`), its epilogue runs both chains and stores both ends. Pairing needs the two chains
//!    to be independent (no path from one to the other); the program order then puts
//!    everything the pair depends on before it.
//! 3. **Sharing.** Everything else (elementwise ops, `const`, `iota`, `rand`, movement ops)
//!    fuses into each consumer. A value reached from two kernels, or at more than one index
//!    map within one kernel, is recomputed when that is cheap: movement ops, `const` and
//!    `iota` always are; other values when their fused expression costs at most
//!    [`RECOMPUTE_BUDGET`] (a weighted op count: 1 for plain arithmetic, 2 for division and
//!    square roots, 4 for transcendental functions and powers, 16 for `rand`) and they appear
//!    at no more than [`MAX_INDEX_MAPS`] index maps. Otherwise they are materialized once.
//!
//! 4. **Row groups.** Last, [`schedule`](super::schedule) groups consecutive steps that depend
//!    on one another only row by row (softmax's three kernels; a matmul and its epilogue), so
//!    a backend runs them block of rows by block of rows, and computes a costly value that
//!    two kernels of a group share once, into a row-local buffer.
//!
//! Movement ops compose into each load's [`IndexMap`] (strides, 0 for broadcasts, negative
//! steps for reversed slices). A reshape composes with the view below it by PyTorch's
//! `computeStride` rule; when it cannot (a reshape merging axes of a permuted, sliced or
//! broadcast view), the reshape's operand is materialized first and the kernels are rebuilt.
//! `iota` and `rand` compose the same way: an `iota` is a view with stride 1 along its axis
//! and 0 elsewhere, a `rand` a dense view of its counters starting at its offset.
//!
//! Buffers are the graph's inputs first, then one temporary per step in program order; every
//! temporary is dense and row-major, typed as the graph value it holds (for an epilogue, that
//! type differs from the output space only by size-1 axes, so the layout is the same).
//!
//! The result depends only on the graph (ordered maps, topological order), so the printed
//! program is deterministic.

use super::symbolic::{is_one, sym_view_strides, SymProgram, SymStep};
use super::{
    can_fail, BufId, BufferDecl, BufferKind, Combine, IndexMap, Inst, InstId, InstOrigin, Instr, Kernel,
    KernelReduce, LoopStep, MatOperand, MatmulStep, OpStep, Program, Site, Step, Store, SymIndex,
};
use crate::graph::{Graph, NodeId};
use crate::ops::{Movement, Op, OpKind};
use crate::sym::{Dim, SymError, SymExpr};
use crate::types::Shape;
use rustc_hash::FxHashMap as HashMap;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

/// The most a value may cost (in weighted ops, see the module doc) and still be recomputed in
/// each kernel that uses it rather than materialized.
pub const RECOMPUTE_BUDGET: u64 = 8;

/// The most index maps a value may be recomputed at (summed over kernels) before it is
/// materialized, however cheap: this bounds how much recomputation fusion can introduce.
pub const MAX_INDEX_MAPS: usize = 4;

/// Lowers a graph into a program of fused kernels, matrix products and library steps.
///
/// The graph must verify (see [`crate::verify()`]); `lower` panics on a cyclic graph. Passes
/// such as CSE usually run first, but nothing relies on them: a value built twice is computed
/// twice.
///
/// ```
/// use tenjit_ir::kernel::{lower::lower, Step};
/// use tenjit_ir::{DType, Graph, Op, TensorType, UnaryOp};
/// let mut g = Graph::new("f");
/// let x = g.add_input("x", TensorType::new(DType::F32, [4]));
/// let s = g.add(Op::Unary(UnaryOp::Sin), &[x]).unwrap();
/// let e = g.add(Op::Unary(UnaryOp::Exp), &[s]).unwrap();
/// g.set_outputs(vec![e]);
/// let p = lower(&g);
/// assert_eq!(p.steps.len(), 1);
/// assert!(matches!(&p.steps[0], Step::Kernel(k) if k.reason == "graph output"));
/// ```
pub fn lower(g: &Graph) -> Program {
    let (mut program, _) = build(g, false).unwrap_or_else(|e| panic!("lower: {e}"));
    super::squeeze::squeeze(&mut program);
    super::schedule::schedule(&mut program);
    program
}

/// Lowers a symbolic graph once for every binding of its symbols (see
/// [`super::symbolic`]): the fusion decisions are [`lower`]'s, made on the dims' expressions,
/// and every size keeps its expression, in the bodies of its loops too (a body's sizes are
/// expressions over the graph's symbols). `Err` says why the graph has no symbolic program (a
/// hint below 2, where a size-1 decision would hold for the hints only; an expression that
/// overflows); [`lower`] of each bound graph is then the way to run it.
pub fn lower_symbolic(g: &Graph) -> Result<SymProgram, String> {
    if !g.is_symbolic() {
        return Err("the graph has no symbols".into());
    }
    if let Some((name, v)) = g.hints().iter().find(|(_, &v)| v < 2) {
        return Err(format!("symbol {name} has hint {v}: sizes 0 and 1 are lowered for their value"));
    }
    g.live_order().ok_or("the graph has a cycle")?;
    OVERFLOW.with(|o| o.borrow_mut().take());
    let (program, steps) = build(g, true)?;
    if let Some(e) = OVERFLOW.with(|o| o.borrow_mut().take()) {
        return Err(format!("a size's expression overflows: {e}"));
    }
    Ok(SymProgram { program, steps })
}

/// The plan and the kernels of `g`, materializing the operand of each reshape that is no view
/// until every one is (with `symbolic`, every size keeps its expression: see
/// [`lower_symbolic`]); one symbolic entry per step when `symbolic`. `Err` when a reshape is
/// no view of its operand even once that is materialized: never for a concrete graph; for a
/// symbolic one, a reshape whose sizes are equal only under a guard.
fn build(g: &Graph, symbolic: bool) -> Result<(Program, Vec<SymStep>), String> {
    let mut plan = Plan::new(g, symbolic);
    plan.bodies = loop_bodies(g, symbolic)?;
    plan.structural();
    plan.epilogues();
    plan.pair();
    loop {
        let realized = plan.share();
        match Builder::new(&plan, &realized).build() {
            Ok(built) => return Ok(built),
            Err(NotAView { reshape }) => {
                let operand = g.args(reshape)[0];
                let input = plan.is_input(operand);
                if input || !plan.force(operand, "reshape of a non-contiguous view".into()) {
                    let shape = &g.ty(reshape).shape;
                    return Err(format!("the reshape {reshape} to {shape} is no view of its dense operand {operand} for every size"));
                }
            }
        }
    }
}

/// The body of each loop of `g` (by its key), simplified and lowered once for all the loop's
/// nodes (and for every rebuild of the kernels): the program of its step, and the step's
/// symbolic entry. In a symbolic lowering, a symbolic body is lowered symbolically (its
/// program at the hints, unsqueezed, with its expressions in a [`SymStep::Loop`], which
/// [`super::symbolic::instantiate`] instantiates with the graph); any other body is lowered
/// for its sizes.
fn loop_bodies(g: &Graph, symbolic: bool) -> Result<HashMap<u128, (Program, SymStep)>, String> {
    let mut bodies = HashMap::default();
    for n in g.live_order().ok_or("the graph has a cycle")? {
        let Op::Loop(l) = g.op(n) else { continue };
        if bodies.contains_key(&l.body.key()) {
            continue;
        }
        let mut body = l.body.graph().clone();
        let passes = crate::passes::pipeline();
        let refs: Vec<&dyn crate::passes::Pass> = passes.iter().map(|p| p.as_ref()).collect();
        // The passes keep a verified graph verified; should one not, the body runs unsimplified.
        if crate::passes::run_passes(&mut body, &refs, &mut |_, _| {}).is_err() {
            body = l.body.graph().clone();
        }
        let lowered = if symbolic && body.is_symbolic() {
            let (program, steps) = build(&body, true).map_err(|e| format!("the body of loop {n}: {e}"))?;
            (program.clone(), SymStep::Loop { body: Box::new(SymProgram { program, steps }) })
        } else {
            (lower(&body), SymStep::Buffers)
        };
        bodies.insert(l.body.key(), lowered);
    }
    Ok(bodies)
}

thread_local! {
    /// The first expression that overflowed while a symbolic program was built (see
    /// [`checked`]): [`lower_symbolic`] fails with it.
    static OVERFLOW: RefCell<Option<SymError>> = const { RefCell::new(None) };
}

/// `r`'s expression, or 0 after recording the overflow for [`lower_symbolic`] to report
/// (the program built meanwhile is dropped).
fn checked(r: Result<SymExpr, SymError>) -> SymExpr {
    r.unwrap_or_else(|e| {
        OVERFLOW.with(|o| o.borrow_mut().get_or_insert(e).clone());
        SymExpr::default()
    })
}

/// The dims of `shape` as expressions.
fn dim_exprs(shape: &Shape) -> Vec<SymExpr> {
    match shape.sym_dims_ref() {
        Some(dims) => dims.iter().map(|d| checked(d.expr().ok_or(SymError::Overflow("a dim")))).collect(),
        None => shape.dims().iter().map(|&d| checked(SymExpr::constant(d as i64))).collect(),
    }
}

/// How the lowering treats an op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A graph input: a buffer.
    Input,
    /// `const`, `iota`, `rand`: computed from the index alone.
    Source,
    /// Unary, binary, `where`, `cast`.
    Elementwise,
    /// Reshape, permute, expand, slice: folded into index maps.
    Movement,
    /// A reduction: the body of a kernel.
    Reduce,
    /// A matrix product: a [`MatmulStep`].
    Matmul,
    /// A library routine: an [`OpStep`].
    Library,
}

fn kind(op: &Op) -> Kind {
    match op.kind() {
        OpKind::Input => Kind::Input,
        OpKind::Source => Kind::Source,
        OpKind::Elementwise => Kind::Elementwise,
        OpKind::Movement(_) => Kind::Movement,
        OpKind::Reduce => Kind::Reduce,
        OpKind::Matmul => Kind::Matmul,
        // A loop is planned as a library routine is (materialized, dense operands), and
        // built as a loop step.
        OpKind::Library(_) | OpKind::Loop(_) => Kind::Library,
    }
}

/// The cost of computing one element of `op` from its operands, for the recompute decision.
fn weight(op: &Op) -> u64 {
    match op {
        Op::Input { .. } | Op::Const { .. } | Op::Size { .. } | Op::Iota { .. } => 0,
        Op::Reshape { .. } | Op::Permute { .. } | Op::Expand { .. } | Op::Slice { .. } => 0,
        Op::Rand { .. } => 16,
        Op::Unary(u) => u.spec().cost.weight,
        Op::Binary(b) => b.spec().cost.weight,
        Op::Where | Op::Cast { .. } => 1,
        // Materialized values are loads: they cost nothing to the consumer.
        Op::Reduce { .. }
        | Op::ArgReduce { .. }
        | Op::Matmul
        | Op::Gather { .. }
        | Op::ScatterAdd { .. }
        | Op::Concat { .. }
        | Op::Pad { .. }
        | Op::Conv(_)
        | Op::Pool(_)
        | Op::Loop(_) => 0,
    }
}

/// An affine view of a value: element `[i...]` is at `offset + Σ strides[d] * i[d]` of the
/// underlying buffer (or is that index, for `iota`, or that counter, for `rand`).
///
/// In a symbolic lowering every view also holds its offset and strides as expressions (`sym`),
/// and the numbers are their values at the hints.
#[derive(Clone, Debug, PartialEq, Eq)]
struct View {
    offset: i64,
    strides: Vec<i64>,
    sym: Option<Box<SymIndex>>,
}

impl View {
    /// The view `offset + Σ strides[d] * i[d]` of constants (expressions too when `symbolic`).
    fn new(g: &Graph, offset: i64, strides: Vec<i64>, symbolic: bool) -> View {
        if !symbolic {
            return View { offset, strides, sym: None };
        }
        let c = |v: i64| checked(SymExpr::constant(v));
        View::of(g, SymIndex { offset: c(offset), strides: strides.iter().map(|&s| c(s)).collect() })
    }

    /// The view of expressions `sym`, with their values at `g`'s hints.
    fn of(g: &Graph, sym: SymIndex) -> View {
        let at = |e: &SymExpr| {
            e.eval_i64(g.hints()).unwrap_or_else(|| {
                checked(Err(SymError::Overflow("a size at the hints")));
                0
            })
        };
        View {
            offset: at(&sym.offset),
            strides: sym.strides.iter().map(at).collect(),
            sym: Some(Box::new(sym)),
        }
    }

    /// The dense row-major view of a buffer of shape `shape` (with expressions when
    /// `symbolic`).
    fn dense(g: &Graph, shape: &Shape, symbolic: bool) -> View {
        if symbolic {
            let dims = dim_exprs(shape);
            let mut strides = vec![SymExpr::from(1); dims.len()];
            for d in (0..dims.len().saturating_sub(1)).rev() {
                strides[d] = checked(strides[d + 1].mul(&dims[d + 1]));
            }
            return View::of(g, SymIndex { offset: SymExpr::default(), strides });
        }
        let dims = shape.dims();
        let mut strides = vec![1i64; dims.len()];
        for d in (0..dims.len().saturating_sub(1)).rev() {
            strides[d] = strides[d + 1].wrapping_mul(dims[d + 1] as i64);
        }
        View { offset: 0, strides, sym: None }
    }

    /// [`View::apply`] of a view with expressions: every decision on the dims' expressions.
    fn apply_symbolic(sym: SymIndex, g: &Graph, m: NodeId) -> Option<View> {
        let in_dims = dim_exprs(&g.ty(g.args(m)[0]).shape);
        let SymIndex { mut offset, mut strides } = sym;
        let OpKind::Movement(movement) = g.op(m).kind() else {
            unreachable!("lower: {m} is not a movement op")
        };
        match movement {
            Movement::Permute { perm } => strides = perm.iter().map(|&p| strides[p].clone()).collect(),
            Movement::Expand { .. } => {
                for (s, d) in strides.iter_mut().zip(&in_dims) {
                    if is_one(d) {
                        *s = SymExpr::default();
                    }
                }
            }
            Movement::Slice { start, step, .. } => {
                let starts: Vec<SymExpr> = match g.op(m) {
                    Op::Slice { bounds: Some(b), .. } => b.start.clone(),
                    _ => start.iter().map(|&s| checked(SymExpr::constant(s as i64))).collect(),
                };
                for d in 0..strides.len() {
                    offset = checked(offset.add(&checked(starts[d].mul(&strides[d]))));
                    strides[d] = checked(strides[d].scale(step[d] as i64));
                }
            }
            Movement::Reshape { .. } => {
                strides = sym_view_strides(&in_dims, &strides, &dim_exprs(&g.ty(m).shape))?;
            }
        }
        Some(View::of(g, SymIndex { offset, strides }))
    }

    /// The view after the movement op `m` (whose operand this view describes), or `None` when
    /// `m` is a reshape the view cannot follow.
    fn apply(self, g: &Graph, m: NodeId) -> Option<View> {
        if let Some(sym) = self.sym {
            return View::apply_symbolic(*sym, g, m);
        }
        let arg = g.args(m)[0];
        let in_dims = g.ty(arg).shape.dims();
        let View { offset, strides, .. } = self;
        let OpKind::Movement(movement) = g.op(m).kind() else {
            unreachable!("lower: {m} is not a movement op")
        };
        match movement {
            Movement::Permute { perm } => {
                Some(View { offset, strides: perm.iter().map(|&p| strides[p]).collect(), sym: None })
            }
            Movement::Expand { .. } => Some(View {
                offset,
                strides: (0..strides.len()).map(|d| if in_dims[d] == 1 { 0 } else { strides[d] }).collect(),
                sym: None,
            }),
            Movement::Slice { start, step, .. } => {
                let offset = (0..strides.len())
                    .fold(offset, |o, d| o.wrapping_add((start[d] as i64).wrapping_mul(strides[d])));
                let strides = (0..strides.len()).map(|d| strides[d].wrapping_mul(step[d] as i64)).collect();
                Some(View { offset, strides, sym: None })
            }
            Movement::Reshape { shape } => crate::types::view_strides(in_dims, &strides, shape.dims())
                .map(|strides| View { offset, strides, sym: None }),
        }
    }

    /// `base` seen through `chain`, the movement ops from a consumer down to `base` (so they
    /// apply last to first); `Err` names the reshape that cannot follow.
    fn through(self, g: &Graph, chain: &[NodeId]) -> Result<View, NotAView> {
        chain.iter().rev().try_fold(self, |v, &m| v.apply(g, m).ok_or(NotAView { reshape: m }))
    }
}

/// Whether the reshape `u` of `c` only inserts or removes size-1 axes (for every binding of
/// a symbolic graph: a dim is 1 when its expression is the constant 1).
fn squeezes_only(g: &Graph, c: NodeId, u: NodeId) -> bool {
    if !matches!(g.op(u), Op::Reshape { .. }) {
        return false;
    }
    if g.is_symbolic() {
        let non_one = |n: NodeId| -> Vec<SymExpr> {
            dim_exprs(&g.ty(n).shape).into_iter().filter(|d| !is_one(d)).collect()
        };
        return non_one(c) == non_one(u);
    }
    let non_one =
        |n: NodeId| -> Vec<usize> { g.ty(n).shape.dims().iter().copied().filter(|&d| d != 1).collect() };
    non_one(c) == non_one(u)
}

/// A reshape whose operand's view it cannot follow.
#[derive(Debug)]
struct NotAView {
    reshape: NodeId,
}

/// How a kernel reaches a value: the space its index maps range over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Mode {
    /// The iteration space of an elementwise kernel.
    Elementwise,
    /// The iteration space of a reduction's body.
    Body,
    /// The output space of a reduction's epilogue.
    Epilogue,
}

/// One place a value is computed: the kernel (by its root), the space, and the movement ops
/// from the kernel's root down to the value.
type Context = (NodeId, Mode, Vec<NodeId>);

/// The fusion decisions that do not depend on sharing.
struct Plan<'g> {
    g: &'g Graph,
    /// Whether every size keeps its expression ([`lower_symbolic`]).
    symbolic: bool,
    /// Live nodes in topological order.
    order: Vec<NodeId>,
    /// Live users of each node, by node index.
    users: Vec<Vec<NodeId>>,
    /// Values materialized for structural reasons, with the reason.
    forced: BTreeMap<NodeId, String>,
    /// The end of each reduction's epilogue chain, mapped to the reduction.
    epilogue_of: BTreeMap<NodeId, NodeId>,
    /// Nodes inside some epilogue chain (the reduction included).
    claimed: BTreeSet<NodeId>,
    /// Graph inputs that are also outputs: each gets a copy kernel.
    copies: Vec<NodeId>,
    /// Each reduction's epilogue chain, from the reduction to the chain's end.
    chain_of: BTreeMap<NodeId, Vec<NodeId>>,
    /// Paired reductions: the `max`/`min` mapped to its `argmax`/`argmin`, whose kernel also
    /// computes it.
    values_of: BTreeMap<NodeId, NodeId>,
    /// The inverse of `values_of`.
    pair_of: BTreeMap<NodeId, NodeId>,
    /// The lowered body of each loop, by the body's key ([`loop_bodies`]).
    bodies: HashMap<u128, (Program, SymStep)>,
}

impl<'g> Plan<'g> {
    fn new(g: &'g Graph, symbolic: bool) -> Plan<'g> {
        let order = g.live_order().expect("lower: the graph has a cycle (verify it first)");
        let bound = order.iter().map(|n| n.index() + 1).max().unwrap_or(0);
        let mut live = vec![false; bound];
        for n in &order {
            live[n.index()] = true;
        }
        let mut users = vec![Vec::new(); bound];
        for &n in &order {
            users[n.index()] = g.users(n).into_iter().filter(|u| live[u.index()]).collect();
        }
        Plan {
            g,
            symbolic,
            order,
            users,
            forced: BTreeMap::new(),
            epilogue_of: BTreeMap::new(),
            claimed: BTreeSet::new(),
            copies: Vec::new(),
            chain_of: BTreeMap::new(),
            values_of: BTreeMap::new(),
            pair_of: BTreeMap::new(),
            bodies: HashMap::default(),
        }
    }

    fn is_input(&self, n: NodeId) -> bool {
        kind(self.g.op(n)) == Kind::Input
    }

    /// Materializes `n` for `reason` unless it already is; returns whether it was not.
    fn force(&mut self, n: NodeId, reason: String) -> bool {
        if self.forced.contains_key(&n) {
            return false;
        }
        self.forced.insert(n, reason);
        true
    }

    /// Step 1: outputs, library routines and matrix products.
    fn structural(&mut self) {
        let g = self.g;
        for &o in g.outputs() {
            if self.is_input(o) {
                if !self.copies.contains(&o) {
                    self.copies.push(o);
                }
            } else {
                self.force(o, "graph output".into());
            }
        }
        for n in self.order.clone() {
            match kind(g.op(n)) {
                Kind::Library => {
                    let name = g.op(n).name();
                    self.force(n, format!("{name} runs as a library routine"));
                    for a in g.args(n) {
                        if !self.is_input(a) {
                            self.force(a, format!("dense operand of {name}"));
                        }
                    }
                }
                Kind::Matmul => {
                    self.force(n, "matmul runs as a GEMM".into());
                    for a in g.args(n) {
                        self.matmul_operand(a);
                    }
                }
                // A draw reads its seed and offset as uniform values: constants, or loads of
                // one element, so anything computed for them is materialized first.
                Kind::Source if matches!(g.op(n), Op::Rand { .. }) => {
                    for a in g.args(n) {
                        if !self.is_input(a) && !matches!(g.op(a), Op::Const { .. }) {
                            self.force(a, "seed or offset of rand".into());
                        }
                    }
                }
                Kind::Input | Kind::Source | Kind::Elementwise | Kind::Movement | Kind::Reduce => {}
            }
        }
    }

    /// Makes matmul operand `a` a strided view of a buffer. Where a reshape on the way down
    /// cannot be followed as a view (the heads of attention merged back, `y.transpose(1, 2)
    /// .reshape(b, t, c)`), what that reshape reads is materialized (one copy, dense in its own
    /// shape, of which every reshape is a view) rather than `a` itself, which would copy twice
    /// once the reshape's other readers materialize its operand anyway.
    fn matmul_operand(&mut self, a: NodeId) {
        let g = self.g;
        loop {
            let (base, chain) = self.strip(a, &BTreeMap::new());
            match View::dense(g, &g.ty(base).shape, self.symbolic).through(g, &chain) {
                Ok(_) => {
                    if !self.is_input(base) {
                        self.force(base, "matmul operand".into());
                    }
                    return;
                }
                Err(NotAView { reshape }) => {
                    let below = g.args(reshape)[0];
                    if self.is_input(below) || !self.force(below, "reshape of a non-contiguous view".into()) {
                        self.force(a, "matmul operand is not a strided view".into());
                        return;
                    }
                }
            }
        }
    }

    /// The value under the movement ops above `a` that are not materialized, and those ops
    /// from `a` down.
    fn strip(&self, a: NodeId, realized: &BTreeMap<NodeId, String>) -> (NodeId, Vec<NodeId>) {
        let (mut base, mut chain) = (a, Vec::new());
        while kind(self.g.op(base)) == Kind::Movement
            && !realized.contains_key(&base)
            && !self.forced.contains_key(&base)
        {
            chain.push(base);
            base = self.g.args(base)[0];
        }
        (base, chain)
    }

    /// Step 2: each reduction with the chain of consumers its epilogue absorbs.
    fn epilogues(&mut self) {
        let g = self.g;
        for r in self.order.clone() {
            if kind(g.op(r)) != Kind::Reduce {
                continue;
            }
            let mut c = r;
            let mut chain = vec![r];
            let reason = loop {
                if self.forced.contains_key(&c) {
                    break None;
                }
                let users = &self.users[c.index()];
                if users.len() != 1 {
                    break Some(format!("reduction output used by {} ops", users.len()));
                }
                let u = users[0];
                if self.claimed.contains(&u) {
                    break Some("reduction output used in another reduction's epilogue".into());
                }
                match kind(g.op(u)) {
                    Kind::Elementwise => {}
                    Kind::Movement if squeezes_only(g, c, u) => {}
                    Kind::Movement => {
                        break Some(match g.op(u) {
                            Op::Expand { .. } => "reduction output used at a broadcast shape".into(),
                            op => format!("reduction output used through {}", op.name()),
                        })
                    }
                    Kind::Reduce => break Some("reduction output feeds another reduction".into()),
                    Kind::Input | Kind::Source | Kind::Matmul | Kind::Library => {
                        break Some(format!("reduction output used by {}", g.op(u).name()))
                    }
                }
                self.claimed.insert(c);
                c = u;
                chain.push(u);
            };
            self.claimed.insert(c);
            self.chain_of.insert(r, chain);
            if c != r {
                self.epilogue_of.insert(c, r);
            }
            if let Some(reason) = reason {
                self.force(c, reason);
            }
        }
    }

    /// Step 2b: pairs an `argmax` (`argmin`) with a `max` (`min`) of the same operand over the
    /// same axis, when their epilogue chains are independent, and reorders the nodes so that
    /// everything either chain depends on comes before both.
    fn pair(&mut self) {
        let g = self.g;
        for a in self.order.clone() {
            let Op::ArgReduce { op, axis } = g.op(a) else { continue };
            let want = Combine::Arg(*op).extremum();
            let x = g.args(a)[0];
            let found = self.users[x.index()].iter().copied().find(|&m| {
                matches!(g.op(m), Op::Reduce { op, axes } if *op == want && axes[..] == [*axis])
                    && g.args(m)[0] == x
                    && !self.pair_of.contains_key(&m)
            });
            let Some(m) = found else { continue };
            let (ca, cm) = (&self.chain_of[&a], &self.chain_of[&m]);
            let group: BTreeSet<NodeId> = ca.iter().chain(cm).copied().collect();
            // Neither chain may read the other directly...
            let crosses = |chain: &[NodeId], other: &[NodeId]| {
                chain[1..].iter().any(|&n| g.args(n).iter().any(|p| other.contains(p)))
            };
            if group.len() != ca.len() + cm.len() || crosses(ca, cm) || crosses(cm, ca) {
                continue;
            }
            // ... or through values outside the pair.
            let mut anc = BTreeSet::new();
            let mut stack: Vec<NodeId> = group.iter().flat_map(|&n| g.args(n)).collect();
            while let Some(n) = stack.pop() {
                if !group.contains(&n) && anc.insert(n) {
                    stack.extend(g.args(n));
                }
            }
            let mut desc = BTreeSet::new();
            let mut stack: Vec<NodeId> = group.iter().flat_map(|&n| self.users[n.index()].clone()).collect();
            while let Some(n) = stack.pop() {
                if !group.contains(&n) && desc.insert(n) {
                    stack.extend(self.users[n.index()].iter().copied());
                }
            }
            if anc.intersection(&desc).next().is_some() {
                continue;
            }
            self.values_of.insert(m, a);
            self.pair_of.insert(a, m);
            // Ancestors, then the pair, then the rest: still a topological order.
            let (first, rest): (Vec<NodeId>, Vec<NodeId>) =
                self.order.iter().partition(|n| anc.contains(n) || group.contains(n));
            let (before, pair): (Vec<NodeId>, Vec<NodeId>) = first.into_iter().partition(|n| anc.contains(n));
            self.order = before.into_iter().chain(pair).chain(rest).collect();
        }
    }

    /// The node naming the kernel of reduction `r`: the end of its (or its pair's) chain.
    fn kernel_root(&self, r: NodeId) -> NodeId {
        let r = self.values_of.get(&r).copied().unwrap_or(r);
        self.chain_of.get(&r).and_then(|c| c.last()).copied().unwrap_or(r)
    }

    /// Step 3: the forced values plus those shared too expensively to recompute.
    fn share(&self) -> BTreeMap<NodeId, String> {
        let g = self.g;
        let mut realized = self.forced.clone();
        let bound = self.users.len();
        // The cost of one element of each value, recomputing everything not materialized.
        let mut cost = vec![0u64; bound];
        for &n in &self.order {
            let below: u64 = g
                .args(n)
                .iter()
                .filter(|a| !self.forced.contains_key(a))
                .fold(0u64, |s, a| s.saturating_add(cost[a.index()]));
            cost[n.index()] = match kind(g.op(n)) {
                // Never recomputed: a load or the epilogue's accumulator.
                Kind::Reduce | Kind::Matmul | Kind::Library => 0,
                Kind::Input | Kind::Source | Kind::Elementwise | Kind::Movement => {
                    weight(g.op(n)).saturating_add(below)
                }
            };
        }
        let mut contexts: Vec<BTreeSet<Context>> = vec![BTreeSet::new(); bound];
        for &n in self.order.iter().rev() {
            let k = kind(g.op(n));
            if k == Kind::Input {
                continue;
            }
            let mine = std::mem::take(&mut contexts[n.index()]);
            let shareable = matches!(k, Kind::Elementwise) || matches!(g.op(n), Op::Rand { .. });
            if !realized.contains_key(&n) && shareable && mine.len() >= 2 {
                let roots: BTreeSet<NodeId> = mine.iter().map(|c| c.0).collect();
                if cost[n.index()] > RECOMPUTE_BUDGET || mine.len() > MAX_INDEX_MAPS {
                    let reason = if roots.len() >= 2 {
                        format!("used by {} kernels", roots.len())
                    } else {
                        format!("used at {} index maps in one kernel", mine.len())
                    };
                    realized.insert(n, reason);
                }
            }
            let starts: Vec<Context> = if realized.contains_key(&n) {
                match k {
                    Kind::Matmul | Kind::Library => Vec::new(),
                    Kind::Reduce => vec![(n, Mode::Body, Vec::new())],
                    Kind::Input | Kind::Source | Kind::Elementwise | Kind::Movement => {
                        let mode = if self.epilogue_of.contains_key(&n) {
                            Mode::Epilogue
                        } else {
                            Mode::Elementwise
                        };
                        vec![(n, mode, Vec::new())]
                    }
                }
            } else {
                mine.into_iter().collect()
            };
            for (root, mode, chain) in starts {
                let mut push = |a: NodeId, ctx: Context| {
                    if !self.is_input(a) {
                        contexts[a.index()].insert(ctx);
                    }
                };
                match k {
                    Kind::Elementwise => {
                        for a in g.args(n) {
                            push(a, (root, mode, chain.clone()));
                        }
                    }
                    Kind::Movement => {
                        let mut chain = chain;
                        chain.push(n);
                        push(g.args(n)[0], (root, mode, chain));
                    }
                    // A paired reduction's body is its pair's.
                    Kind::Reduce => {
                        let root = if self.values_of.contains_key(&n) { self.kernel_root(n) } else { root };
                        push(g.args(n)[0], (root, Mode::Body, Vec::new()))
                    }
                    Kind::Input | Kind::Source | Kind::Matmul | Kind::Library => {}
                }
            }
        }
        realized
    }
}

/// Builds the program from the plan and the set of materialized values.
struct Builder<'p, 'g> {
    plan: &'p Plan<'g>,
    realized: &'p BTreeMap<NodeId, String>,
    buffers: Vec<BufferDecl>,
    buf_of: HashMap<NodeId, BufId>,
    steps: Vec<Step>,
    /// With a symbolic plan: the sizes of each step as expressions.
    sym_steps: Vec<SymStep>,
    kernels: usize,
}

/// One element program under construction: instructions are interned, so equal
/// instructions are one.
#[derive(Default)]
struct Insts {
    list: Vec<Instr>,
    interned: HashMap<Instr, InstId>,
    memo: HashMap<(NodeId, Vec<NodeId>), InstId>,
    /// The node each instruction that can fail computes (the first one, for an instruction
    /// two nodes share).
    origins: Vec<(InstId, NodeId)>,
}

impl Insts {
    fn push(&mut self, instr: Instr) -> InstId {
        if let Some(&id) = self.interned.get(&instr) {
            return id;
        }
        self.list.push(instr.clone());
        self.interned.insert(instr, self.list.len() - 1);
        self.list.len() - 1
    }
}

/// What a kernel being built computes where.
struct Target {
    /// The kernel's root value (computed, never loaded).
    root: NodeId,
    mode: Mode,
    /// The root's dims (the space the views are built over).
    root_dims: Vec<usize>,
    /// The dims of the space the index maps range over.
    space: Vec<usize>,
    /// In the epilogue: the reduction, read as [`Inst::Acc`].
    reduce: Option<NodeId>,
    /// In the epilogue of a paired arg reduction: the `max`/`min`, read as [`Inst::AccValue`].
    values: Option<NodeId>,
    /// In a symbolic lowering: `root_dims` and `space` as expressions.
    sym: Option<(Vec<Dim>, Vec<Dim>)>,
}

impl Target {
    /// The index map of a view over the root's dims.
    fn index(&self, v: View) -> IndexMap {
        if let Some((root_dims, space_dims)) = &self.sym {
            let sym = *v.sym.expect("lower: a view without expressions in a symbolic kernel");
            if root_dims == space_dims {
                return IndexMap { offset: v.offset, strides: v.strides, sym: Some(Box::new(sym)) };
            }
            let non_one = |dims: &[Dim]| -> Vec<usize> {
                (0..dims.len()).filter(|&d| dims[d].as_const() != Some(1)).collect()
            };
            let (root, space) = (non_one(root_dims), non_one(space_dims));
            assert_eq!(root.len(), space.len(), "lower: epilogue space does not match its root");
            let mut strides = vec![0i64; space_dims.len()];
            let mut sym_strides = vec![SymExpr::default(); space_dims.len()];
            for (&r, &s) in root.iter().zip(&space) {
                strides[s] = v.strides[r];
                sym_strides[s] = sym.strides[r].clone();
            }
            let sym = SymIndex { offset: sym.offset, strides: sym_strides };
            return IndexMap { offset: v.offset, strides, sym: Some(Box::new(sym)) };
        }
        if self.root_dims == self.space {
            return IndexMap::new(v.offset, v.strides);
        }
        // Epilogue: the root's dims and the output space differ only by size-1 axes.
        let root: Vec<usize> = (0..self.root_dims.len()).filter(|&d| self.root_dims[d] != 1).collect();
        let space: Vec<usize> = (0..self.space.len()).filter(|&d| self.space[d] != 1).collect();
        assert_eq!(root.len(), space.len(), "lower: epilogue space does not match its root");
        let mut strides = vec![0i64; self.space.len()];
        for (&r, &s) in root.iter().zip(&space) {
            strides[s] = v.strides[r];
        }
        IndexMap::new(v.offset, strides)
    }
}

impl<'p, 'g> Builder<'p, 'g> {
    fn new(plan: &'p Plan<'g>, realized: &'p BTreeMap<NodeId, String>) -> Builder<'p, 'g> {
        Builder {
            plan,
            realized,
            buffers: Vec::new(),
            buf_of: HashMap::default(),
            steps: Vec::new(),
            sym_steps: Vec::new(),
            kernels: 0,
        }
    }

    fn build(mut self) -> Result<(Program, Vec<SymStep>), NotAView> {
        let g = self.plan.g;
        for (i, (_, n)) in g.inputs().iter().enumerate() {
            self.buffers.push(BufferDecl { ty: g.ty(*n).clone(), kind: BufferKind::Input(i) });
            self.buf_of.insert(*n, i);
        }
        for &n in &self.plan.order {
            // The second end of a paired kernel is already written.
            if let Some(reason) = self.realized.get(&n).filter(|_| !self.buf_of.contains_key(&n)) {
                self.step(n, reason.clone())?;
            }
        }
        let mut copies = HashMap::default();
        for &n in &self.plan.copies {
            let name = format!("graph output (a copy of input b{})", self.buf_of[&n]);
            let buf = self.temp(n);
            let target = self.target(n, Mode::Elementwise, None);
            let mut body = Insts::default();
            let value = self.emit(&mut body, &target, n, &[])?;
            self.kernel(&target, None, body, None, Insts::default(), vec![Store { buf, value }], name);
            copies.insert(n, buf);
        }
        let outputs =
            g.outputs().iter().map(|o| copies.get(o).copied().unwrap_or_else(|| self.buf_of[o])).collect();
        let program = Program {
            name: g.name().to_string(),
            buffers: self.buffers,
            steps: self.steps,
            outputs,
            groups: Vec::new(),
        };
        Ok((program, self.sym_steps))
    }

    fn temp(&mut self, n: NodeId) -> BufId {
        self.buffers.push(BufferDecl { ty: self.plan.g.ty(n).clone(), kind: BufferKind::Temp });
        let buf = self.buffers.len() - 1;
        if !self.plan.is_input(n) {
            self.buf_of.insert(n, buf);
        }
        buf
    }

    fn target(&self, root: NodeId, mode: Mode, reduce: Option<NodeId>) -> Target {
        let g = self.plan.g;
        let root_dims = g.ty(root).shape.dims().to_vec();
        let space_node = reduce.unwrap_or(root);
        let space = g.ty(space_node).shape.dims().to_vec();
        let sym =
            self.plan.symbolic.then(|| (g.ty(root).shape.sym_dims(), g.ty(space_node).shape.sym_dims()));
        Target { root, mode, root_dims, space, reduce, values: None, sym }
    }

    /// The step that materializes `n`.
    fn step(&mut self, n: NodeId, reason: String) -> Result<(), NotAView> {
        let g = self.plan.g;
        match kind(g.op(n)) {
            Kind::Matmul => {
                let args = g.args(n);
                let ((a, a_sym), (b, b_sym)) = (self.operand(args[0])?, self.operand(args[1])?);
                let (ad, bd) = (g.ty(args[0]).shape.dims(), g.ty(args[1]).shape.dims());
                let r = ad.len();
                if let (Some(a), Some(b)) = (a_sym, b_sym) {
                    let (ad, bd) = (g.ty(args[0]).shape.sym_dims(), g.ty(args[1]).shape.sym_dims());
                    self.sym_steps.push(SymStep::Matmul {
                        batch: ad[..r - 2].to_vec(),
                        m: ad[r - 2].clone(),
                        k: ad[r - 1].clone(),
                        n: bd[r - 1].clone(),
                        a,
                        b,
                    });
                }
                let out = self.temp(n);
                self.steps.push(Step::Matmul(MatmulStep {
                    dtype: g.ty(n).dtype,
                    batch: ad[..r - 2].to_vec(),
                    m: ad[r - 2],
                    k: ad[r - 1],
                    n: bd[r - 1],
                    a,
                    b,
                    out,
                }));
            }
            Kind::Library if matches!(g.op(n), Op::Loop(_)) => self.loop_step(n),
            Kind::Library => {
                // Whatever else holds (a graph output, say), this is why it is a step.
                let reason = format!("{} runs as a library routine", g.op(n).name());
                let args = g.args(n).iter().map(|a| self.buf_of[a]).collect();
                let out = self.temp(n);
                self.push_buffers_step(Step::Op(OpStep {
                    op: g.op(n).clone(),
                    args,
                    out,
                    reason,
                    origin: Some(n),
                }));
            }
            Kind::Reduce => self.reduction(n, n, reason)?,
            Kind::Input | Kind::Source | Kind::Elementwise | Kind::Movement => {
                match self.plan.epilogue_of.get(&n) {
                    Some(&r) => self.reduction(r, n, reason)?,
                    None => {
                        let buf = self.temp(n);
                        let target = self.target(n, Mode::Elementwise, None);
                        let mut body = Insts::default();
                        let value = self.emit(&mut body, &target, n, &[])?;
                        self.kernel(
                            &target,
                            None,
                            body,
                            None,
                            Insts::default(),
                            vec![Store { buf, value }],
                            reason,
                        );
                    }
                }
            }
        }
        Ok(())
    }

    /// The loop step of loop node `n` and of every other live node of the same loop (same body,
    /// trips and operands: one per carried value), each of which gets its result's buffer. A
    /// carried value no live node reads still gets one: the next trip needs it. The body is
    /// simplified and lowered on its own, into the step's program ([`loop_bodies`]).
    fn loop_step(&mut self, n: NodeId) {
        let g = self.plan.g;
        let Op::Loop(l) = g.op(n) else { unreachable!("lower: {n} is not a loop") };
        let args = g.args(n);
        let family: Vec<(usize, NodeId)> = self
            .plan
            .order
            .iter()
            .filter_map(|&m| match g.op(m) {
                Op::Loop(o) if o.body == l.body && o.trips == l.trips && g.args(m) == args => {
                    Some((o.result, m))
                }
                _ => None,
            })
            .collect();
        let mut outs = Vec::with_capacity(l.body.carried());
        for k in 0..l.body.carried() {
            let buf = match family.iter().find(|(r, _)| *r == k) {
                Some(&(_, m)) => self.temp(m),
                None => {
                    self.buffers
                        .push(BufferDecl { ty: l.body.input_type(k).clone(), kind: BufferKind::Temp });
                    self.buffers.len() - 1
                }
            };
            outs.push(buf);
        }
        // Nodes of the family that CSE did not merge share their result's buffer.
        for &(r, m) in &family {
            self.buf_of.entry(m).or_insert(outs[r]);
        }
        let (body, sym) = self.plan.bodies[&l.body.key()].clone();
        let args = args.iter().map(|a| self.buf_of[a]).collect();
        let step = Step::Loop(Box::new(LoopStep { body, trips: l.trips, args, outs, origin: Some(n) }));
        self.push_step(step, sym);
    }

    /// The kernel of reduction `r` whose epilogue computes `end` (and, for a paired
    /// reduction, its pair's chain too).
    fn reduction(&mut self, r: NodeId, end: NodeId, reason: String) -> Result<(), NotAView> {
        let g = self.plan.g;
        let plan = self.plan;
        let (main, values) = match (plan.values_of.get(&r), plan.pair_of.get(&r)) {
            (Some(&a), _) => (a, Some(r)),
            (None, Some(&m)) => (r, Some(m)),
            (None, None) => (r, None),
        };
        let (op, axes) = match g.op(main) {
            Op::Reduce { op, axes } => (Combine::Reduce(*op), axes.to_vec()),
            Op::ArgReduce { op, axis } => (Combine::Arg(*op), vec![*axis]),
            _ => unreachable!("lower: {main} is not a reduction"),
        };
        let x = g.args(main)[0];
        // The body computes `x` over its own space; `x` itself may be materialized (a load).
        let body_target = Target { root: main, ..self.target(x, Mode::Body, None) };
        let mut body = Insts::default();
        let value = self.emit(&mut body, &body_target, x, &[])?;
        let mut epilogue = Insts::default();
        let mut stores = Vec::new();
        let mut reasons = Vec::new();
        let end_of = |n: NodeId| plan.chain_of.get(&n).and_then(|c| c.last()).copied().unwrap_or(n);
        let ends = match values {
            // The indices first, then the values.
            Some(m) => vec![(main, end_of(main)), (m, end_of(m))],
            None => vec![(r, end)],
        };
        for (red, e) in ends {
            let epi_target = Target { values, ..self.target(e, Mode::Epilogue, Some(main)) };
            let result = if e == red {
                let inst = if red == main { Inst::Acc } else { Inst::AccValue };
                epilogue.push(Instr { inst, dtype: g.ty(red).dtype })
            } else {
                self.emit(&mut epilogue, &epi_target, e, &[])?
            };
            let buf = self.temp(e);
            stores.push(Store { buf, value: result });
            reasons.push(if e == end { reason.clone() } else { self.realized[&e].clone() });
        }
        let reason = match &reasons[..] {
            [a, b] if a != b => format!("indices: {a}; values: {b}"),
            _ => reason,
        };
        let reduce = KernelReduce { op, axes };
        self.kernel(&body_target, Some(reduce), body, Some(value), epilogue, stores, reason);
        Ok(())
    }

    /// Adds a step whose sizes are its buffers' (a library routine, a loop).
    fn push_buffers_step(&mut self, step: Step) {
        self.push_step(step, SymStep::Buffers);
    }

    /// Adds a step that is no kernel or matrix product, with its symbolic entry `sym`.
    fn push_step(&mut self, step: Step, sym: SymStep) {
        self.steps.push(step);
        if self.plan.symbolic {
            self.sym_steps.push(sym);
        }
    }

    /// Adds the kernel over `target`'s space.
    #[allow(clippy::too_many_arguments)]
    fn kernel(
        &mut self,
        target: &Target,
        reduce: Option<KernelReduce>,
        body: Insts,
        value: Option<InstId>,
        epilogue: Insts,
        stores: Vec<Store>,
        reason: String,
    ) {
        let name = format!("k{}", self.kernels);
        self.kernels += 1;
        let space = target.space.clone();
        if let Some((_, sym_space)) = &target.sym {
            self.sym_steps.push(SymStep::Kernel { space: sym_space.clone() });
        }
        let site = |epilogue: bool| {
            move |&(inst, node): &(InstId, NodeId)| InstOrigin { site: Site { epilogue, inst }, node }
        };
        let mut origins: Vec<InstOrigin> = body.origins.iter().map(site(false)).collect();
        origins.extend(epilogue.origins.iter().map(site(true)));
        self.steps.push(Step::Kernel(super::half::widen(Kernel {
            name,
            space,
            reduce,
            body: body.list,
            value,
            epilogue: epilogue.list,
            stores,
            reason,
            origins,
        })));
    }

    /// A matmul operand: the strided view of its base buffer (and its expressions, in a
    /// symbolic lowering).
    fn operand(&self, a: NodeId) -> Result<(MatOperand, Option<SymIndex>), NotAView> {
        let g = self.plan.g;
        let (base, chain) = self.plan.strip(a, self.realized);
        let v = View::dense(g, &g.ty(base).shape, self.plan.symbolic).through(g, &chain)?;
        let r = v.strides.len();
        let operand = MatOperand {
            buf: self.buf_of[&base],
            offset: v.offset,
            batch_strides: v.strides[..r - 2].to_vec(),
            row_stride: v.strides[r - 2],
            col_stride: v.strides[r - 1],
        };
        Ok((operand, v.sym.map(|s| *s)))
    }

    /// Emits the instructions computing `n` as seen from `t.root` through `chain`.
    fn emit(&self, out: &mut Insts, t: &Target, n: NodeId, chain: &[NodeId]) -> Result<InstId, NotAView> {
        // An explicit stack instead of recursion, so a long chain of elementwise ops (one
        // kernel of 100,000 nested operations) cannot overflow the thread's stack. Operands are
        // visited first to last, depth first, so instructions come out in the order a recursive
        // walk gives. A frame is a node seen through a chain of views, and whether its operands
        // have been emitted.
        let g = self.plan.g;
        let mut stack: Vec<(NodeId, Vec<NodeId>, bool)> = vec![(n, chain.to_vec(), false)];
        while let Some((n, chain, operands_done)) = stack.pop() {
            let key = (n, chain);
            if out.memo.contains_key(&key) {
                continue;
            }
            let (n, chain) = (key.0, &key.1);
            let dtype = g.ty(n).dtype;
            let args = g.args(n);
            if n != t.root && self.realized.contains_key(&n) {
                let id = out.push(Instr { inst: self.load(t, n, chain)?, dtype });
                out.memo.insert(key, id);
                continue;
            }
            // The operands this node needs, each seen through `through`.
            let (operands, through): (&[NodeId], Vec<NodeId>) = match g.op(n) {
                Op::Unary(_) | Op::Binary(_) | Op::Where | Op::Cast { .. } => (&args, chain.clone()),
                Op::Reshape { .. } | Op::Permute { .. } | Op::Expand { .. } | Op::Slice { .. } => {
                    let mut through = chain.clone();
                    through.push(n);
                    (&args[..1], through)
                }
                Op::Input { .. }
                | Op::Const { .. }
                | Op::Size { .. }
                | Op::Iota { .. }
                | Op::Rand { .. }
                | Op::Reduce { .. }
                | Op::ArgReduce { .. }
                | Op::Pad { .. }
                | Op::Concat { .. }
                | Op::Matmul
                | Op::Gather { .. }
                | Op::ScatterAdd { .. }
                | Op::Conv(_)
                | Op::Pool(_)
                | Op::Loop(_) => (&[], Vec::new()),
            };
            if !operands_done && !operands.is_empty() {
                let pending: Vec<NodeId> = operands.to_vec();
                stack.push((key.0, key.1, true));
                stack.extend(pending.into_iter().rev().map(|a| (a, through.clone(), false)));
                continue;
            }
            let id = |a: NodeId| out.memo[&(a, through.clone())];
            let inst = match g.op(n) {
                Op::Input { .. } => self.load(t, n, chain)?,
                Op::Const { value, .. } => Inst::Const(*value),
                // A size of a symbolic graph is an `iota` whose map is the size, at every point.
                Op::Size { expr, ty } if self.plan.symbolic => {
                    let zeros = vec![SymExpr::default(); ty.shape.rank()];
                    let view = View::of(g, SymIndex { offset: expr.clone(), strides: zeros });
                    Inst::Iota { index: t.index(view.through(g, chain)?) }
                }
                // Lowered for its value at the hints.
                Op::Size { .. } => Inst::Const(g.size_value(n)),
                Op::Iota { ty, axis } => {
                    let strides = (0..ty.shape.rank()).map(|d| (d == *axis) as i64).collect();
                    let view = View::new(g, 0, strides, self.plan.symbolic);
                    Inst::Iota { index: t.index(view.through(g, chain)?) }
                }
                Op::Rand { ty } => {
                    let counter = t.index(View::dense(g, &ty.shape, self.plan.symbolic).through(g, chain)?);
                    let (seed, offset) = (self.uniform(out, t, args[0]), self.uniform(out, t, args[1]));
                    Inst::Rand { seed, offset, counter }
                }
                Op::Unary(u) => Inst::Unary(*u, id(args[0])),
                Op::Binary(b) => Inst::Binary(*b, id(args[0]), id(args[1])),
                Op::Where => Inst::Where(id(args[0]), id(args[1]), id(args[2])),
                Op::Cast { .. } => Inst::Cast(id(args[0])),
                Op::Reshape { .. } | Op::Permute { .. } | Op::Expand { .. } | Op::Slice { .. } => {
                    // A view is its operand seen through one more view: no instruction.
                    let operand = id(args[0]);
                    out.memo.insert(key, operand);
                    continue;
                }
                Op::Reduce { .. } | Op::ArgReduce { .. } => {
                    assert!(t.mode == Mode::Epilogue, "lower: {n} reached outside its kernel");
                    if t.reduce == Some(n) {
                        Inst::Acc
                    } else if t.values == Some(n) {
                        Inst::AccValue
                    } else {
                        unreachable!("lower: {n} reached outside its kernel")
                    }
                }
                Op::Pad { .. }
                | Op::Concat { .. }
                | Op::Matmul
                | Op::Gather { .. }
                | Op::ScatterAdd { .. }
                | Op::Conv(_)
                | Op::Pool(_)
                | Op::Loop(_) => {
                    unreachable!("lower: {n} runs as its own step")
                }
            };
            let id = out.push(Instr { inst, dtype });
            if can_fail(&out.list, id) && !out.origins.iter().any(|&(i, _)| i == id) {
                out.origins.push((id, n));
            }
            out.memo.insert(key, id);
        }
        Ok(out.memo[&(n, chain.to_vec())])
    }

    /// The one-element value `a` (a rand's seed or offset) at every point of the kernel: its
    /// constant, or a load with stride 0 everywhere (the plan materializes anything else).
    fn uniform(&self, out: &mut Insts, t: &Target, a: NodeId) -> InstId {
        let g = self.plan.g;
        let dtype = g.ty(a).dtype;
        let inst = if let (Op::Const { value, .. }, false) = (g.op(a), self.realized.contains_key(&a)) {
            Inst::Const(*value)
        } else {
            let everywhere = View::new(g, 0, vec![0; t.root_dims.len()], self.plan.symbolic);
            Inst::Load { buf: self.buf_of[&a], index: t.index(everywhere) }
        };
        out.push(Instr { inst, dtype })
    }

    /// A load of the materialized value `n` through `chain`.
    fn load(&self, t: &Target, n: NodeId, chain: &[NodeId]) -> Result<Inst, NotAView> {
        let g = self.plan.g;
        let v = View::dense(g, &g.ty(n).shape, self.plan.symbolic).through(g, chain)?;
        Ok(Inst::Load { buf: self.buf_of[&n], index: t.index(v) })
    }
}
