//! Symbolic graphs from concrete ones: what torch calls automatic dynamic shapes.
//!
//! A front end traces concrete graphs. When it meets a second graph of the same structure
//! ([`Graph::structure_fingerprint`]: the same ops, operands, dtypes and ranks, any sizes)
//! with other sizes, [`generalize`] writes the one symbolic graph both are instances of: each
//! input dim whose sizes differ becomes a symbol (dims with the same pair of sizes share one),
//! every size an op carries (a reshape's or expand's shape, a constant's, iota's or rand's
//! type, a constant that is a size, like the count a mean divides by) is written as an
//! expression over the symbols that gives both sizes, and every node is typed again by the
//! symbolic rules, which add the guards the graph needs. Sizes 0 and 1 stay special: an input
//! dim that is 0 or 1 in either graph is not made symbolic, as in torch.
//!
//! A `loop`'s body is generalized with the graph: its inputs take its operands' symbolic
//! types, its nodes are fitted as the graph's are, over the graph's symbols (a size inside a
//! body that follows none of them is no instance), and the body declares those symbols.
//!
//! The expressions are found from two samples (`c*S + k`, `c*S*T + k`), so they are a guess;
//! [`generalize`] checks that binding the result to either graph's sizes gives that graph, and
//! [`Graph::instance_bindings`] checks every later graph the same way before it is treated as
//! an instance, so a wrong guess costs a recompilation, never a wrong result.

use super::{Graph, NodeId};
use crate::ops::{Body, LoopOp, Op, Scalar};
use crate::sym::{Bindings, Dim, SymExpr, Symbol};
use crate::types::{Shape, TensorType};
use std::collections::HashMap;
use std::fmt;

/// A symbol [`generalize`] introduced: which dim it stands for and its two sizes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Introduced {
    /// The symbol's name.
    pub name: String,
    /// The first dim that has it: `dim 0 of input 1`, or `dim 0 of %5 (rand)` for a size a
    /// source op (rand, iota, a filled constant) creates in the graph.
    pub at: String,
    /// Its size in the first graph and in the second (the same size twice for a dim marked
    /// dynamic, [`super::generalize_marked`], of which there is one graph).
    pub sizes: (usize, usize),
}

impl fmt::Display for Introduced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.sizes.0 == self.sizes.1 {
            // A dim marked dynamic ([`super::generalize_marked`]), seen at one size.
            return write!(
                f,
                "{} (marked dynamic) became symbolic {} (size {})",
                self.at, self.name, self.sizes.1
            );
        }
        write!(f, "{} became symbolic {} (sizes {}, then {})", self.at, self.name, self.sizes.0, self.sizes.1)
    }
}

/// A symbolic graph both given graphs are instances of.
#[derive(Clone, Debug)]
pub struct Generalized {
    /// The symbolic graph; its hints are the second graph's sizes.
    pub graph: Graph,
    /// The symbols it introduced, in order.
    pub introduced: Vec<Introduced>,
}

/// Why two graphs have no symbolic graph in common (the reason a front end compiles the
/// second one separately, and reports).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotGeneral {
    /// What differs, and where.
    pub reason: String,
}

impl fmt::Display for NotGeneral {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for NotGeneral {}

fn not(reason: String) -> NotGeneral {
    NotGeneral { reason }
}

/// The symbolic graph `a` and `b` are both instances of, with `b`'s sizes as its hints;
/// `name_of(input, dim)` names the symbol of an input dim that becomes symbolic (`None`:
/// `d0`, `d1`, ... in order). See the module documentation.
pub fn generalize(
    a: &Graph,
    b: &Graph,
    name_of: &dyn Fn(usize, usize) -> Option<String>,
) -> Result<Generalized, NotGeneral> {
    if a.structure_fingerprint() != b.structure_fingerprint() {
        return Err(not("the graphs differ in structure, not only in sizes".into()));
    }
    let mut out = Graph::new(b.name());
    let mut fit = Fitter { symbols: Vec::new(), introduced: Vec::new() };
    // Symbols for the input dims whose sizes differ.
    let mut input_dims: Vec<Vec<Dim>> = Vec::new();
    for (i, ((_, ia), (_, ib))) in a.inputs().iter().zip(b.inputs()).enumerate() {
        let (da, db) = (a.ty(*ia).shape.dims(), b.ty(*ib).shape.dims());
        let mut dims = Vec::new();
        for (d, (&x, &y)) in da.iter().zip(db).enumerate() {
            if x == y {
                dims.push(Dim::from(y as u64));
                continue;
            }
            let known = fit.symbols.iter().find(|s| s.sizes == (x as i64, y as i64)).map(|s| s.expr.clone());
            let expr = match known {
                Some(expr) => expr,
                None => fit
                    .introduce(&mut out, name_of(i, d), format!("dim {d} of input {i}"), (x, y))
                    .map_err(not)?,
            };
            dims.push(Dim::from_expr(expr).map_err(|e| not(e.to_string()))?);
        }
        input_dims.push(dims);
    }
    let mut input_types = Vec::new();
    for (dims, (_, ib)) in input_dims.into_iter().zip(b.inputs()) {
        let ty = b.ty(*ib);
        input_types.push(TensorType::new(ty.dtype, Shape::symbolic(dims, ty.shape.dims()).map_err(not)?));
    }
    fit.nodes(a, b, &mut out, input_types)?;
    if fit.introduced.is_empty() {
        return Err(not("no size differs".into()));
    }
    let values_a: Bindings = fit.symbols.iter().map(|s| (s.name.clone(), s.sizes.0 as u64)).collect();
    for (g, values) in [(a, &values_a), (b, out.hints())] {
        let bound = out.bind(values).map_err(|e| not(format!("the symbolic graph does not bind: {e}")))?;
        if bound.fingerprint() != g.fingerprint() {
            return Err(not(format!(
                "the symbolic graph found does not give both graphs: {}",
                departure(&bound, g)
            )));
        }
    }
    Ok(Generalized { graph: out, introduced: fit.introduced })
}

/// Where `op`, a slice of symbolic length on operands `args` of `out`, would read past a
/// constant axis for large sizes of its length's symbol (`pos[:T]` of a table of 64
/// positions), bounds that symbol so it does not (`T <= 64`, torch's range guard): a size above
/// the bound is then no instance, and compiles apart. Returns the symbols bounded. A slice that
/// types already, whose length is not a bare symbol, or whose symbol has a bound already (a
/// mark's range, [`super::Mark`]), is left alone.
pub(super) fn bound_for_slice(out: &mut Graph, op: &Op, args: &[NodeId]) -> Vec<String> {
    let mut bounded = Vec::new();
    let Op::Slice { step, bounds: Some(b), .. } = op else { return bounded };
    if args.len() != 1 || out.infer(op, args).is_ok() {
        return bounded;
    }
    let dims = out.ty(args[0]).shape.sym_dims();
    for (d, n) in dims.iter().enumerate() {
        let (Some(n), Some(start)) = (n.as_const(), b.start[d].as_const()) else { continue };
        let Some(symbol) = b.size[d].expr().and_then(|e| e.as_symbol()) else { continue };
        // A bound someone gave (a mark's range) is kept: the slice is then refused.
        if out.symbols().get(&symbol).is_none_or(|s| s.hi.is_some()) {
            continue;
        }
        // Indices start, start + step, ..., start + (T - 1) * step stay below n.
        let (step, start) = (step[d], start);
        if step < 1 || start < 0 || start as u64 >= n {
            continue;
        }
        let hi = (n - 1 - start as u64) / step as u64 + 1;
        if out.narrow_symbol(&symbol, hi).is_ok() {
            bounded.push(symbol);
        }
    }
    bounded
}

impl Graph {
    /// A fingerprint of the structure without sizes: every node's op with the attributes that
    /// are not sizes, its dtype and rank, its operands, and the outputs. Graphs that differ
    /// only in sizes (a batch of 8, then of 5) share it; [`generalize`] needs it equal.
    pub fn structure_fingerprint(&self) -> u128 {
        let mut position = vec![u32::MAX; self.slots];
        for (i, n) in self.nodes().into_iter().enumerate() {
            position[n.index()] = i as u32;
        }
        let mut f = super::Fingerprint::new();
        for n in self.nodes() {
            let op = self.op(n);
            // A size is the constant of an instance.
            f.add(if matches!(op, Op::Size { .. }) { "const" } else { op.name() });
            skeleton(op, &mut f);
            let ty = self.ty(n);
            f.add(&(ty.dtype, ty.shape.rank()));
            for a in self.args(n) {
                f.add(&position.get(a.index()).copied().unwrap_or(u32::MAX));
            }
        }
        for o in self.outputs() {
            f.add(&position.get(o.index()).copied().unwrap_or(u32::MAX));
        }
        f.finish()
    }

    /// The binding under which this symbolic graph is `concrete`, if it is an instance: the
    /// symbols read off `concrete`'s input shapes, and binding this graph to them must give
    /// `concrete` exactly. The error says what differs: the failed guard or range, or the
    /// node where the instance departs from the symbolic graph.
    pub fn instance_bindings(&self, concrete: &Graph) -> Result<Bindings, NotGeneral> {
        if self.structure_fingerprint() != concrete.structure_fingerprint() {
            return Err(not("the structure differs".into()));
        }
        self.instance_bindings_of_structure(concrete)
    }

    /// [`Graph::instance_bindings`] for a caller that knows both graphs have one structure
    /// ([`Graph::structure_fingerprint`]); a different structure is an error or a wrong
    /// answer, never a panic.
    pub fn instance_bindings_of_structure(&self, concrete: &Graph) -> Result<Bindings, NotGeneral> {
        let (mine, theirs) = (self.nodes(), concrete.nodes());
        if mine.len() != theirs.len() {
            return Err(not("the structure differs".into()));
        }
        // Each symbol's size where it first stands alone as a dim, in node order.
        let mut values = Bindings::new();
        for (&p, &q) in mine.iter().zip(&theirs) {
            let Some(dims) = self.ty(p).shape.sym_dims_ref() else { continue };
            for (d, &size) in dims.iter().zip(concrete.ty(q).shape.dims()) {
                if let Some(name) = d.expr().and_then(|e| e.as_symbol()) {
                    values.entry(name).or_insert(size as u64);
                }
            }
        }
        self.symbols().check_bindings(&values).map_err(|e| not(e.to_string()))?;
        for guard in self.guards() {
            let (l, r) = (guard.lhs.eval(&values), guard.rhs.eval(&values));
            if l.is_none() || l != r {
                return Err(not(format!("guard {guard} fails at {values:?}")));
            }
        }
        // Node by node, the symbolic graph's sizes at `values` must be the concrete ones (the
        // structure, operands included, is equal already).
        for (&p, &q) in mine.iter().zip(&theirs) {
            let (op, ty) = (self.op(p), self.ty(p));
            let op_fits = if crate::ops::has_symbolic_attr(op) {
                super::symbolic::bind_op(op, &values).is_ok_and(|bound| bound == *concrete.op(q))
            } else {
                op == concrete.op(q)
            };
            let theirs_ty = concrete.ty(q);
            let ty_fits = ty.dtype == theirs_ty.dtype
                && match ty.shape.sym_dims_ref() {
                    Some(dims) => {
                        ty.shape.rank() == theirs_ty.shape.rank()
                            && dims
                                .iter()
                                .zip(theirs_ty.shape.dims())
                                .all(|(d, &n)| d.eval(&values) == Some(n as u64))
                    }
                    None => ty.shape == theirs_ty.shape,
                };
            if !(op_fits && ty_fits) {
                let bound =
                    super::symbolic::bind_op(op, &values).map(|o| format!("{o:?}")).unwrap_or_default();
                return Err(not(if ty_fits {
                    format!("at {values:?}, {q} is {:?} but the symbolic graph gives {bound}", concrete.op(q))
                } else {
                    format!(
                        "at {values:?}, {q} ({}) is {theirs_ty} but the symbolic graph gives {ty}",
                        op.name()
                    )
                }));
            }
        }
        Ok(values)
    }
}

/// Where `concrete` first departs from `bound`, a symbolic graph bound to its sizes.
pub(super) fn departure(bound: &Graph, concrete: &Graph) -> String {
    let at = bound
        .nodes()
        .into_iter()
        .zip(concrete.nodes())
        .find(|&(p, q)| bound.op(p) != concrete.op(q) || bound.ty(p) != concrete.ty(q));
    match at {
        Some((p, q)) if bound.ty(p) != concrete.ty(q) => {
            format!(
                "{q} ({}) is {} but the symbolic graph gives {}",
                concrete.op(q).name(),
                concrete.ty(q),
                bound.ty(p)
            )
        }
        Some((p, q)) => format!("{q} is {:?} but the symbolic graph gives {:?}", concrete.op(q), bound.op(p)),
        None => "the outputs differ".into(),
    }
}

/// Adds the attributes of `op` that are not sizes.
fn skeleton(op: &Op, f: &mut super::Fingerprint) {
    match op {
        Op::Input { index, .. } => f.add(index),
        Op::Const { value, .. } => match value {
            // A whole number may be a size (a mean's count); any other value is structure.
            Scalar::Float(v) if v.fract() == 0.0 => {}
            Scalar::Int(_) => {}
            v => f.add(v),
        },
        Op::Size { .. } | Op::Rand { .. } | Op::Reshape { .. } | Op::Expand { .. } => {}
        Op::Iota { axis, .. } => f.add(axis),
        Op::Unary(u) => f.add(u),
        Op::Binary(b) => f.add(b),
        Op::Where | Op::Matmul => {}
        Op::Cast { dtype } => f.add(dtype),
        Op::Reduce { op, axes } => f.add(&(op, axes)),
        Op::ArgReduce { op, axis } => f.add(&(op, axis)),
        Op::Permute { perm } => f.add(perm),
        Op::Slice { step, .. } => f.add(step),
        Op::Pad { .. } => {}
        Op::Concat { axis } | Op::Gather { axis } | Op::ScatterAdd { axis } => f.add(axis),
        Op::Conv(c) => f.add(c),
        Op::Pool(p) => f.add(p),
        // A body's sizes may follow the graph's, as its operands' do.
        Op::Loop(l) => {
            f.add(&(l.trips, l.result));
            f.add(&l.body.graph().structure_fingerprint());
        }
    }
}

/// Adds a body's nodes to a graph, given its inputs' types (see [`loop_body`]).
pub(super) type AddNodes<'a> = dyn FnMut(&mut Graph, Vec<TensorType>) -> Result<(), NotGeneral> + 'a;

/// The body of a loop on operands `args` of the symbolic graph `out`, from `body`, its
/// concrete body: a graph declaring `out`'s symbols at their hints, with inputs typed as the
/// operands (the counter last), whose nodes `nodes` adds (from the body's inputs' types). A
/// body's sizes are so expressions over the symbols of the graph holding the loop, bound with
/// it ([`Graph::bind`]).
pub(super) fn loop_body(
    out: &Graph,
    args: &[NodeId],
    body: &Graph,
    nodes: &mut AddNodes,
) -> Result<Body, NotGeneral> {
    let mut g = Graph::new(body.name());
    for symbol in out.symbols().iter() {
        let hint = out.hints().get(&symbol.name).copied().unwrap_or(0);
        g.declare_symbol(symbol.clone(), hint).map_err(|e| not(e.to_string()))?;
    }
    let mut types: Vec<TensorType> = args.iter().map(|&a| out.ty(a).clone()).collect();
    types.push(crate::ops::counter_type());
    if types.len() != body.inputs().len() {
        return Err(not(format!(
            "loop @{}: {} operands for {} body inputs",
            body.name(),
            args.len(),
            body.inputs().len() - 1
        )));
    }
    nodes(&mut g, types)?;
    Body::new(g).map_err(|e| not(format!("loop @{}: {e}", body.name())))
}

/// A symbol and its sizes in the two graphs.
struct Sym {
    name: String,
    expr: SymExpr,
    sizes: (i64, i64),
}

struct Fitter {
    symbols: Vec<Sym>,
    introduced: Vec<Introduced>,
}

impl Fitter {
    /// Adds to `out` the nodes of `b` (with `a`, of the same structure, the same graph at the
    /// first sizes), its inputs typed `input_types`, every other node's sizes fitted, and sets
    /// the outputs.
    fn nodes(
        &mut self,
        a: &Graph,
        b: &Graph,
        out: &mut Graph,
        input_types: Vec<TensorType>,
    ) -> Result<(), NotGeneral> {
        let (na, nb) = (a.nodes(), b.nodes());
        let mut map: HashMap<NodeId, NodeId> = HashMap::new();
        let position: HashMap<NodeId, usize> = nb.iter().enumerate().map(|(i, &n)| (n, i)).collect();
        let order = b.rebuild_order().ok_or_else(|| not("the graph has a cycle".into()))?;
        for y in order {
            let x = na[position[&y]];
            if let Op::Input { index, .. } = b.op(y) {
                map.insert(y, out.add_input(b.inputs()[*index].0.clone(), input_types[*index].clone()));
                continue;
            }
            let at = format!("{y} ({})", b.op(y).name());
            let args: Vec<NodeId> = b.args(y).iter().map(|n| map[n]).collect();
            let op = match (a.op(x), b.op(y)) {
                (Op::Loop(la), Op::Loop(lb)) => Op::Loop(self.loop_op(la, lb, out, &args, &at)?),
                (oa, ob) => self.op(oa, ob, out, &at).map_err(|why| not(format!("{at}: {why}")))?,
            };
            bound_for_slice(out, &op, &args);
            let id =
                out.add_at(op, &args, b.loc(y).map(str::to_string)).map_err(|e| not(format!("{y}: {e}")))?;
            map.insert(y, id);
        }
        out.set_outputs(b.outputs().iter().map(|o| map[o]).collect());
        Ok(())
    }

    /// The loop `lb` (`la` at the first sizes) on operands `args` of `out`: its body made
    /// symbolic over `out`'s symbols, its inputs typed as the operands (see [`loop_body`]).
    fn loop_op(
        &mut self,
        la: &LoopOp,
        lb: &LoopOp,
        out: &Graph,
        args: &[NodeId],
        at: &str,
    ) -> Result<LoopOp, NotGeneral> {
        if la == lb {
            // No size of the body changed, so neither did its operands'.
            return Ok(lb.clone());
        }
        let (ga, gb) = (la.body.graph(), lb.body.graph());
        if la.trips != lb.trips || la.result != lb.result {
            return Err(not(format!("{at}: its trips or result changed")));
        }
        if ga.structure_fingerprint() != gb.structure_fingerprint() {
            return Err(not(format!("{at}: its body's structure changed")));
        }
        let known = self.symbols.len();
        let body = loop_body(out, args, gb, &mut |body, types| self.nodes(ga, gb, body, types))
            .map_err(|e| not(format!("{at}, in its body: {e}")))?;
        if self.symbols.len() != known {
            return Err(not(format!(
                "{at}: a size in its body (of a source op) follows none of the graph's symbols"
            )));
        }
        Ok(LoopOp { body, trips: lb.trips, result: lb.result })
    }

    /// Declares a new symbol in `out` for a size that is `sizes.0`, then `sizes.1` (neither 0
    /// nor 1), first met at `at`.
    fn introduce(
        &mut self,
        out: &mut Graph,
        name: Option<String>,
        at: String,
        sizes: (usize, usize),
    ) -> Result<SymExpr, String> {
        let (x, y) = sizes;
        if x.min(y) <= 1 {
            return Err(format!("{at} is {x}, then {y}: sizes 0 and 1 are not made symbolic"));
        }
        let name = name.unwrap_or_else(|| format!("d{}", self.symbols.len()));
        let symbol = Symbol::new(&name, 2, None).map_err(|e| e.to_string())?;
        out.declare_symbol(symbol, y as u64).map_err(|e| e.to_string())?;
        let expr = SymExpr::symbol(&name).map_err(|e| e.to_string())?;
        self.introduced.push(Introduced { name: name.clone(), at, sizes });
        self.symbols.push(Sym { name, expr: expr.clone(), sizes: (x as i64, y as i64) });
        Ok(expr)
    }

    /// The type of a source op (rand, iota, a filled constant) at `at`: its dims fitted, and a
    /// dim no expression fits made a new symbol.
    fn source_ty(
        &mut self,
        a: &TensorType,
        b: &TensorType,
        out: &mut Graph,
        at: &str,
    ) -> Result<TensorType, String> {
        let mut dims = Vec::new();
        for (d, (&x, &y)) in a.shape.dims().iter().zip(b.shape.dims()).enumerate() {
            let dim = match self.fit(x, y) {
                Ok(dim) => dim,
                Err(_) => {
                    let expr = self.introduce(out, None, format!("dim {d} of {at}"), (x, y))?;
                    Dim::from_expr(expr).map_err(|e| e.to_string())?
                }
            };
            dims.push(dim);
        }
        Ok(TensorType::new(b.dtype, Shape::symbolic(dims, b.shape.dims())?))
    }

    /// The expression that is `x` in the first graph and `y` in the second: the constant when
    /// they are equal, else `c*m + k` for a monomial `m` of one or two symbols, preferring
    /// `k == 0`.
    fn fit(&self, x: usize, y: usize) -> Result<Dim, String> {
        if x == y {
            return Ok(Dim::from(y as u64));
        }
        let (x, y) = (x as i64, y as i64);
        let mut monomials: Vec<(SymExpr, i64, i64)> =
            self.symbols.iter().map(|s| (s.expr.clone(), s.sizes.0, s.sizes.1)).collect();
        for (i, s) in self.symbols.iter().enumerate() {
            for t in &self.symbols[i..] {
                if let (Ok(m), Some(ma), Some(mb)) =
                    (s.expr.mul(&t.expr), s.sizes.0.checked_mul(t.sizes.0), s.sizes.1.checked_mul(t.sizes.1))
                {
                    monomials.push((m, ma, mb));
                }
            }
        }
        let mut best: Option<SymExpr> = None;
        for (m, ma, mb) in monomials {
            if ma == mb || (y - x) % (mb - ma) != 0 {
                continue;
            }
            let c = (y - x) / (mb - ma);
            let Some(k) = c.checked_mul(mb).and_then(|cm| y.checked_sub(cm)) else { continue };
            let Ok(k_expr) = SymExpr::constant(k) else { continue };
            let Ok(e) = m.scale(c).and_then(|cm| cm.add(&k_expr)) else { continue };
            if k == 0 {
                return Dim::from_expr(e).map_err(|err| err.to_string());
            }
            best.get_or_insert(e);
        }
        match best {
            Some(e) => Dim::from_expr(e).map_err(|err| err.to_string()),
            None => Err(format!("sizes {x}, then {y} are no expression of the symbols")),
        }
    }

    fn shape(&self, a: &Shape, b: &Shape) -> Result<Shape, String> {
        let dims: Result<Vec<Dim>, String> =
            a.dims().iter().zip(b.dims()).map(|(&x, &y)| self.fit(x, y)).collect();
        Shape::symbolic(dims?, b.dims())
    }

    /// `b`'s op with its sizes written over the symbols (`a` is the same op in the first graph).
    fn op(&mut self, a: &Op, b: &Op, out: &mut Graph, at: &str) -> Result<Op, String> {
        Ok(match (a, b) {
            (Op::Const { value: va, ty: ta }, Op::Const { value: vb, ty }) => {
                let ty = self.source_ty(ta, ty, out, at)?;
                if va == vb {
                    Op::Const { value: *vb, ty }
                } else {
                    let whole = |v: &Scalar| match *v {
                        Scalar::Int(i) => usize::try_from(i).ok(),
                        Scalar::Float(f) if f.fract() == 0.0 && (0.0..1e15).contains(&f) => Some(f as usize),
                        _ => None,
                    };
                    match (whole(va), whole(vb)) {
                        (Some(x), Some(y)) => match self.fit(x, y)?.expr() {
                            Some(expr) => Op::Size { expr, ty },
                            None => return Err("a constant too large for a size".into()),
                        },
                        _ => return Err(format!("constant {vb:?} was {va:?}: not a size")),
                    }
                }
            }
            (Op::Iota { ty: ta, .. }, Op::Iota { ty, axis }) => {
                Op::Iota { ty: self.source_ty(ta, ty, out, at)?, axis: *axis }
            }
            (Op::Rand { ty: ta }, Op::Rand { ty }) => Op::Rand { ty: self.source_ty(ta, ty, out, at)? },
            (Op::Reshape { shape: sa }, Op::Reshape { shape }) => {
                Op::Reshape { shape: self.shape(sa, shape)? }
            }
            (Op::Expand { shape: sa }, Op::Expand { shape }) => Op::Expand { shape: self.shape(sa, shape)? },
            (Op::Slice { start: s0, size: z0, .. }, Op::Slice { start, step, size, .. }) => {
                if s0 == start && z0 == size {
                    return Ok(b.clone());
                }
                // Bounds that follow the sizes: `x[:, -1]` of a context that grows.
                let mut starts = Vec::new();
                for (&x, &y) in s0.iter().zip(start) {
                    let d = self.fit(x.max(0) as usize, y.max(0) as usize)?;
                    starts.push(d.expr().ok_or("a slice start too large")?);
                }
                let sizes: Result<Vec<Dim>, String> =
                    z0.iter().zip(size).map(|(&x, &y)| self.fit(x, y)).collect();
                Op::Slice {
                    start: start.clone(),
                    step: step.clone(),
                    size: size.clone(),
                    bounds: Some(std::sync::Arc::new(crate::ops::SliceBounds {
                        start: starts,
                        size: sizes?,
                    })),
                }
            }
            (Op::Pad { lo: l0, hi: h0 }, Op::Pad { lo, hi }) => {
                if l0 != lo || h0 != hi {
                    return Err("its padding changes with the sizes".into());
                }
                b.clone()
            }
            _ => {
                if a != b {
                    return Err(format!("op {a:?} became {b:?}"));
                }
                b.clone()
            }
        })
    }
}
