//! A graph's size symbols: declaring them, typing nodes over them, and binding them to sizes.
//!
//! A graph may declare symbols ([`Graph::declare_symbol`]), each with a range and a *hint*,
//! the size it was traced or declared with; its shapes may then be expressions over them
//! ([`crate::types::Shape::symbolic`]). Every node is typed twice: by [`Op::infer`] at the
//! hints, and by the symbolic rules ([`crate::ops::Guard`]'s module) for every binding, which
//! may add guards. [`Graph::bind`] turns a symbolic graph into the concrete graph of one
//! binding, checking the ranges and the guards first; [`Graph::bindings_for`] reads a binding
//! off the shapes of a call's inputs.

use super::{Graph, NodeId};
use crate::ops::{has_symbolic_attr, infer_dims, Guard, Op, OpError, Scalar, SymEnv};
use crate::sym::{Bindings, Dim, SymError, SymExpr, Symbol, Symbols};
use crate::types::{Shape, TensorType};
use std::collections::HashMap;
use std::fmt;

/// The symbol table of a graph, the hints, and the guards its nodes added.
#[derive(Clone, Debug, Default)]
pub(super) struct SymInfo {
    symbols: Symbols,
    hints: Bindings,
    guards: Vec<Guard>,
}

impl SymInfo {
    /// The type of `op` on operands typed `tys`: [`Op::infer`] at the hints, then the
    /// symbolic rules where an operand or the op's own shape is symbolic (adding guards).
    pub(super) fn infer(&mut self, op: &Op, tys: &[&TensorType]) -> Result<TensorType, OpError> {
        let mut guards = std::mem::take(&mut self.guards);
        let ty = self.infer_with(op, tys, &mut guards);
        self.guards = guards;
        ty
    }

    fn infer_with(
        &self,
        op: &Op,
        tys: &[&TensorType],
        guards: &mut Vec<Guard>,
    ) -> Result<TensorType, OpError> {
        if !has_symbolic_attr(op) && !tys.iter().any(|t| t.shape.is_symbolic()) {
            return op.infer(tys);
        }
        let concrete: Vec<TensorType> =
            tys.iter().map(|t| TensorType { dtype: t.dtype, shape: t.shape.concrete() }).collect();
        let refs: Vec<&TensorType> = concrete.iter().collect();
        let mut ty = op.infer(&refs)?;
        let mut env = SymEnv { symbols: &self.symbols, hints: &self.hints, guards };
        ty.shape = infer_dims(op, tys, &ty, &mut env)?;
        Ok(ty)
    }

    pub(super) fn hash_into(&self, f: &mut super::Fingerprint) {
        if self.symbols.iter().next().is_some() {
            f.add(&self.symbols);
            f.add(&self.guards);
        }
    }
}

/// Why a symbolic graph could not be bound to sizes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BindError {
    /// A symbol with no size, or one outside its range.
    Symbol(SymError),
    /// A guard that does not hold at these sizes.
    Guard {
        /// The guard.
        guard: Guard,
        /// Its two sides' sizes.
        sizes: (u64, u64),
    },
    /// An input whose shape does not match its declared (symbolic) shape.
    Input {
        /// The input's position.
        index: usize,
        /// Its declared shape.
        declared: String,
        /// The shape given.
        given: Vec<usize>,
    },
    /// A node whose type rule fails at these sizes.
    Op(OpError),
    /// A graph with a cycle.
    Cycle,
}

impl fmt::Display for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BindError::Symbol(e) => e.fmt(f),
            BindError::Guard { guard, sizes } => {
                write!(f, "guard {guard} fails: {} != {}", sizes.0, sizes.1)
            }
            BindError::Input { index, declared, given } => {
                write!(f, "input {index} has shape {given:?}, which is not an instance of {declared}")
            }
            BindError::Op(e) => e.fmt(f),
            BindError::Cycle => f.write_str("the graph has a cycle"),
        }
    }
}

impl std::error::Error for BindError {}

impl Graph {
    /// Declares a size symbol its shapes may use, with `hint`, the size it stands for in the
    /// shapes' sizes ([`crate::types::Shape::dims`]). Fails on a second symbol of one name or
    /// a hint outside the range.
    ///
    /// ```
    /// use tenjit_ir::sym::{Dim, SymExpr, Symbol};
    /// use tenjit_ir::{DType, Graph, Op, Shape, TensorType, UnaryOp};
    /// let mut g = Graph::new("f");
    /// g.declare_symbol(Symbol::new("B", 1, Some(64)).unwrap(), 8).unwrap();
    /// let b = Dim::from_expr(SymExpr::symbol("B").unwrap()).unwrap();
    /// let shape = Shape::symbolic(vec![b, Dim::from(3)], &[8, 3]).unwrap();
    /// let x = g.add_input("x", TensorType::new(DType::F32, shape));
    /// let y = g.add(Op::Unary(UnaryOp::Exp), &[x]).unwrap();
    /// g.set_outputs(vec![y]);
    /// assert_eq!(g.ty(y).to_string(), "f32[B,3]");
    /// let concrete = g.bind(&[("B".to_string(), 5)].into()).unwrap();
    /// assert_eq!(concrete.ty(concrete.outputs()[0]).to_string(), "f32[5,3]");
    /// ```
    pub fn declare_symbol(&mut self, symbol: Symbol, hint: u64) -> Result<(), SymError> {
        if !symbol.contains(hint) {
            return Err(SymError::Binding { symbol, value: Some(hint) });
        }
        let name = symbol.name.clone();
        self.sym.symbols.insert(symbol)?;
        self.sym.hints.insert(name, hint);
        Ok(())
    }

    /// Lowers the greatest value of the symbol `name` to `hi`, as a range guard: the graph
    /// then holds for fewer sizes, so what its nodes were proven to hold still holds, and a
    /// binding above `hi` is refused by [`Graph::bind`]. Fails if that leaves the range empty
    /// or below the symbol's hint.
    pub fn narrow_symbol(&mut self, name: &str, hi: u64) -> Result<(), SymError> {
        let hint = self.sym.hints.get(name).copied().unwrap_or(0);
        if hint > hi {
            let symbol =
                self.sym.symbols.get(name).cloned().ok_or_else(|| SymError::Unknown(name.to_string()))?;
            return Err(SymError::Binding { symbol, value: Some(hint) });
        }
        self.sym.symbols.narrow(name, hi)
    }

    /// Raises the least value of the symbol `name` to `lo`, as a range guard from below: the
    /// graph then holds for fewer sizes, so what its nodes were proven to hold still holds, and
    /// a binding below `lo` is refused by [`Graph::bind`] (a pass that needs long axes, as
    /// `split-reduce` does to cut one into blocks, leaves the short sizes to another graph).
    /// Fails if that leaves the range empty or above the symbol's hint.
    pub fn narrow_symbol_below(&mut self, name: &str, lo: u64) -> Result<(), SymError> {
        let hint = self.sym.hints.get(name).copied().unwrap_or(0);
        if hint < lo {
            let symbol =
                self.sym.symbols.get(name).cloned().ok_or_else(|| SymError::Unknown(name.to_string()))?;
            return Err(SymError::Binding { symbol, value: Some(hint) });
        }
        self.sym.symbols.narrow_below(name, lo)
    }

    /// This graph with its hints moved to `values` (one value per symbol, in range, satisfying
    /// the guards): the same symbols, expressions and nodes, every size at the hints evaluated
    /// again, so that the decisions passes make at the hints are made at `values`.
    ///
    /// ```
    /// use tenjit_ir::text;
    /// let g = text::parse("graph @f(%x: f32[N,4]) where N:2.. = 8 {\n  %0 = exp %x : f32[N,4]\n  return %0\n}").unwrap();
    /// let h = g.with_hints(&[("N".to_string(), 3)].into()).unwrap();
    /// assert_eq!(h.hints()["N"], 3);
    /// assert_eq!(h.ty(h.outputs()[0]).shape.dims(), &[3, 4]);
    /// assert!(g.with_hints(&[("N".to_string(), 1)].into()).is_err());
    /// ```
    pub fn with_hints(&self, values: &Bindings) -> Result<Graph, BindError> {
        self.check(values)?;
        let hints = self.sym.symbols.iter().map(|s| (s.name.clone(), values[&s.name])).collect();
        self.rebuilt(Rebuild::Rehint(&hints)).map(|(g, _)| g)
    }

    /// The declared size symbols.
    pub fn symbols(&self) -> &Symbols {
        &self.sym.symbols
    }

    /// Each symbol's hint.
    pub fn hints(&self) -> &Bindings {
        &self.sym.hints
    }

    /// The value of the `size` node `n` at the hints (what code that knows no symbols computes);
    /// 0 for a node that is no `size`.
    pub fn size_value(&self, n: NodeId) -> Scalar {
        match self.op(n) {
            Op::Size { expr, ty } => Scalar::of_size(expr.eval(&self.sym.hints).unwrap_or(0), ty.dtype),
            _ => Scalar::Int(0),
        }
    }

    /// The guards the type rules added: equalities of dims every binding must satisfy.
    pub fn guards(&self) -> &[Guard] {
        &self.sym.guards
    }

    /// Whether the graph declares symbols.
    pub fn is_symbolic(&self) -> bool {
        self.sym.symbols.iter().next().is_some()
    }

    /// The type `op` would have on `args`, by the same rules as [`Graph::add`], without
    /// adding it (guards it would add are dropped).
    pub fn infer(&self, op: &Op, args: &[NodeId]) -> Result<TensorType, OpError> {
        self.infer_with_guards(op, args).map(|(ty, _)| ty)
    }

    /// The type of `op` on operands of types `tys` by the rules of [`Graph::add`] over this
    /// graph's symbols, keeping the guards the symbolic rules add, without adding a node: a
    /// front end that types its nodes as it builds them (a symbolic trace) holds its symbols
    /// and guards in a graph of no nodes and types each node here.
    ///
    /// ```
    /// use tenjit_ir::sym::{Dim, SymExpr, Symbol};
    /// use tenjit_ir::{BinaryOp, DType, Graph, Op, Shape, TensorType};
    /// let mut types = Graph::new("trace");
    /// types.declare_symbol(Symbol::new("B", 2, None).unwrap(), 8).unwrap();
    /// let b = Dim::from_expr(SymExpr::symbol("B").unwrap()).unwrap();
    /// let x = TensorType::new(DType::F32, Shape::symbolic(vec![b, Dim::from(3)], &[8, 3]).unwrap());
    /// let y = TensorType::new(DType::F32, Shape::new(&[8, 3]));
    /// let sum = types.type_op(&Op::Binary(BinaryOp::Add), &[&x, &y]).unwrap();
    /// // The add holds only where B is 8: a guard says so.
    /// assert_eq!(types.guards().len(), 1);
    /// assert_eq!(sum.shape.dims(), &[8, 3]);
    /// ```
    pub fn type_op(&mut self, op: &Op, tys: &[&TensorType]) -> Result<TensorType, OpError> {
        self.sym.infer(op, tys)
    }

    /// [`Graph::infer`], with the number of guards the graph would have after adding it: more
    /// than [`Graph::guards`] says when the op holds only under a new guard.
    pub fn infer_with_guards(&self, op: &Op, args: &[NodeId]) -> Result<(TensorType, usize), OpError> {
        let tys: Vec<&TensorType> = args.iter().map(|&a| self.ty(a)).collect();
        let mut guards = self.sym.guards.clone();
        let ty = self.sym.infer_with(op, &tys, &mut guards)?;
        Ok((ty, guards.len()))
    }

    /// The binding that gives the inputs the shapes `given` (one per input, in order): each
    /// input dim that is a bare symbol binds it; every dim is then checked. Fails on a symbol
    /// no input dim is, or a size outside its range.
    pub fn bindings_for(&self, given: &[&[usize]]) -> Result<Bindings, BindError> {
        let mut values = Bindings::new();
        let declared: Vec<Shape> = self.inputs.iter().map(|&(_, id)| self.ty(id).shape.clone()).collect();
        for (shape, dims) in declared.iter().zip(given) {
            for (d, &v) in shape.sym_dims().iter().zip(dims.iter()) {
                let Some(name) = d.expr().and_then(|e| e.as_symbol()) else { continue };
                values.entry(name).or_insert(v as u64);
            }
        }
        // A symbol no input dim is (a size only an expand or a `rand` has) gets no value.
        self.sym.symbols.check_bindings(&values).map_err(BindError::Symbol)?;
        for (index, (shape, dims)) in declared.iter().zip(given).enumerate() {
            let fits = shape.rank() == dims.len()
                && shape.sym_dims().iter().zip(dims.iter()).all(|(d, &v)| d.eval(&values) == Some(v as u64));
            if !fits {
                return Err(BindError::Input { index, declared: shape.to_string(), given: dims.to_vec() });
            }
        }
        Ok(values)
    }

    /// The concrete graph at the sizes of inputs of shapes `given`: [`Graph::bindings_for`],
    /// then [`Graph::bind`].
    pub fn bind_inputs(&self, given: &[&[usize]]) -> Result<Graph, BindError> {
        self.bindings_for(given).and_then(|values| self.bind(&values))
    }

    /// The concrete graph of this one at the sizes `values`: every symbolic shape evaluated,
    /// every node typed again. Fails, naming the first problem, if a symbol is unbound or out
    /// of range, or a guard does not hold. A graph without symbols binds to a copy of itself.
    pub fn bind(&self, values: &Bindings) -> Result<Graph, BindError> {
        self.bind_nodes(values).map(|(g, _)| g)
    }

    /// [`Graph::bind`], with the node of the concrete graph each node became.
    pub fn bind_nodes(&self, values: &Bindings) -> Result<(Graph, HashMap<NodeId, NodeId>), BindError> {
        self.check(values)?;
        self.rebuilt(Rebuild::Bind(values))
    }

    /// Checks that `values` are in the symbols' ranges and satisfy the guards.
    fn check(&self, values: &Bindings) -> Result<(), BindError> {
        self.sym.symbols.check_bindings(values).map_err(BindError::Symbol)?;
        for guard in &self.sym.guards {
            let (l, r) = (guard.lhs.eval(values), guard.rhs.eval(values));
            if l != r || l.is_none() {
                return Err(BindError::Guard {
                    guard: guard.clone(),
                    sizes: (l.unwrap_or(0), r.unwrap_or(0)),
                });
            }
        }
        Ok(())
    }

    /// A copy of this graph, symbols and all, with its nodes in the order [`Graph::bind`]
    /// gives the concrete graphs it binds to (its inputs first where they are not), so that
    /// the copy and each binding have their nodes at the same indices; with the node of the
    /// copy each node became.
    pub fn reordered(&self) -> Result<(Graph, HashMap<NodeId, NodeId>), BindError> {
        self.rebuilt(Rebuild::Keep)
    }

    /// The graph rebuilt in [`Graph::rebuild_order`], bound to sizes, or with its symbols (at
    /// its hints or others).
    fn rebuilt(&self, how: Rebuild<'_>) -> Result<(Graph, HashMap<NodeId, NodeId>), BindError> {
        let order = self.rebuild_order().ok_or(BindError::Cycle)?;
        let mut out = Graph::new(self.name.clone());
        match how {
            Rebuild::Bind(_) => {}
            Rebuild::Keep => out.sym = SymInfo { guards: Vec::new(), ..self.sym.clone() },
            Rebuild::Rehint(hints) => {
                out.sym =
                    SymInfo { symbols: self.sym.symbols.clone(), hints: hints.clone(), guards: Vec::new() }
            }
        }
        let mut map: HashMap<NodeId, NodeId> = HashMap::new();
        for n in order {
            if let Op::Input { index, ty } = self.op(n) {
                let ty = match how {
                    Rebuild::Bind(values) => bind_type(ty, values)?,
                    Rebuild::Keep => ty.clone(),
                    Rebuild::Rehint(hints) => rehint_type(ty, hints)?,
                };
                map.insert(n, out.add_input(self.inputs[*index].0.clone(), ty));
                continue;
            }
            let op = match how {
                Rebuild::Bind(values) => bind_op(self.op(n), values)?,
                Rebuild::Keep => self.op(n).clone(),
                Rebuild::Rehint(hints) => rehint_op(self.op(n), hints)?,
            };
            let args: Vec<NodeId> = self.args(n).iter().map(|a| map[a]).collect();
            let id = out.add_at(op, &args, self.loc(n).map(str::to_string)).map_err(BindError::Op)?;
            map.insert(n, id);
        }
        out.set_outputs(self.outputs.iter().map(|o| map[o]).collect());
        Ok((out, map))
    }
}

impl Graph {
    /// An order to rebuild the graph in that keeps its node order, and so its fingerprint:
    /// the nodes in index order where that is topological and has the inputs in their order,
    /// else the inputs first, then a topological order. `None` for a graph with a cycle.
    pub(crate) fn rebuild_order(&self) -> Option<Vec<NodeId>> {
        let nodes = self.nodes();
        let mut inputs_seen = 0;
        let in_order = nodes.iter().all(|&n| {
            if let Op::Input { index, .. } = self.op(n) {
                inputs_seen += 1;
                return *index == inputs_seen - 1;
            }
            self.args(n).iter().all(|&a| a < n)
        });
        if in_order {
            return Some(nodes);
        }
        let mut order: Vec<NodeId> = self.inputs.iter().map(|&(_, id)| id).collect();
        order.extend(self.topo_order()?.into_iter().filter(|&n| !matches!(self.op(n), Op::Input { .. })));
        Some(order)
    }
}

/// How [`Graph::rebuilt`] treats the symbols.
#[derive(Clone, Copy)]
enum Rebuild<'a> {
    /// Bound to these sizes: a concrete graph.
    Bind(&'a Bindings),
    /// Kept, hints and all.
    Keep,
    /// Kept, with these hints.
    Rehint(&'a Bindings),
}

/// `s`, its expressions kept, with its sizes at the hints `hints`.
fn rehint_shape(s: &Shape, hints: &Bindings) -> Result<Shape, BindError> {
    if !s.is_symbolic() {
        return Ok(s.clone());
    }
    let sizes = bind_shape(s, hints)?;
    Shape::symbolic(s.sym_dims(), sizes.dims()).map_err(|message| {
        BindError::Op(OpError { op: "rehint", kind: crate::ops::OpErrorKind::Shape, message })
    })
}

fn rehint_type(t: &TensorType, hints: &Bindings) -> Result<TensorType, BindError> {
    Ok(TensorType { dtype: t.dtype, shape: rehint_shape(&t.shape, hints)? })
}

/// `op` with its own shapes' sizes at the hints `hints`, their expressions kept.
fn rehint_op(op: &Op, hints: &Bindings) -> Result<Op, BindError> {
    Ok(match op {
        Op::Input { index, ty } => Op::Input { index: *index, ty: rehint_type(ty, hints)? },
        Op::Const { value, ty } => Op::Const { value: *value, ty: rehint_type(ty, hints)? },
        Op::Iota { ty, axis } => Op::Iota { ty: rehint_type(ty, hints)?, axis: *axis },
        Op::Rand { ty } => Op::Rand { ty: rehint_type(ty, hints)? },
        Op::Reshape { shape } => Op::Reshape { shape: rehint_shape(shape, hints)? },
        Op::Expand { shape } => Op::Expand { shape: rehint_shape(shape, hints)? },
        Op::Slice { step, bounds: Some(b), .. } => {
            // The concrete start and size are the bounds at the hints.
            let Op::Slice { start, size, .. } = bind_op(op, hints)? else {
                return Err(BindError::Symbol(SymError::Unknown("a slice bound".into())));
            };
            Op::Slice { start, step: step.clone(), size, bounds: Some(b.clone()) }
        }
        _ => op.clone(),
    })
}

fn bind_shape(s: &Shape, values: &Bindings) -> Result<Shape, BindError> {
    if !s.is_symbolic() {
        return Ok(s.clone());
    }
    let mut dims = Vec::with_capacity(s.rank());
    for d in s.sym_dims() {
        match d.eval(values) {
            Some(v) => dims.push(v as usize),
            None => {
                let name =
                    d.expr().map(|e| e.symbols().into_iter().next().unwrap_or_default()).unwrap_or_default();
                return Err(BindError::Symbol(SymError::Unknown(name)));
            }
        }
    }
    Ok(Shape::from(dims))
}

fn bind_type(t: &TensorType, values: &Bindings) -> Result<TensorType, BindError> {
    Ok(TensorType { dtype: t.dtype, shape: bind_shape(&t.shape, values)? })
}

/// `op` with its own shapes evaluated at `values`.
pub(super) fn bind_op(op: &Op, values: &Bindings) -> Result<Op, BindError> {
    Ok(match op {
        Op::Input { index, ty } => Op::Input { index: *index, ty: bind_type(ty, values)? },
        Op::Const { value, ty } => Op::Const { value: *value, ty: bind_type(ty, values)? },
        Op::Size { expr, ty } => {
            let size = expr.eval(values).ok_or_else(|| {
                BindError::Symbol(SymError::Unknown(expr.symbols().into_iter().next().unwrap_or_default()))
            })?;
            Op::Const { value: Scalar::of_size(size, ty.dtype), ty: bind_type(ty, values)? }
        }
        Op::Iota { ty, axis } => Op::Iota { ty: bind_type(ty, values)?, axis: *axis },
        Op::Rand { ty } => Op::Rand { ty: bind_type(ty, values)? },
        Op::Reshape { shape } => Op::Reshape { shape: bind_shape(shape, values)? },
        Op::Slice { step, bounds: Some(b), .. } => {
            let size = |d: &Dim| d.eval(values).map(|v| v as usize);
            let start = |e: &SymExpr| e.eval(values).map(|v| v as isize);
            let unbound = || BindError::Symbol(SymError::Unknown("a slice bound".into()));
            Op::Slice {
                start: b.start.iter().map(start).collect::<Option<_>>().ok_or_else(unbound)?,
                step: step.clone(),
                size: b.size.iter().map(size).collect::<Option<_>>().ok_or_else(unbound)?,
                bounds: None,
            }
        }
        Op::Expand { shape } => Op::Expand { shape: bind_shape(shape, values)? },
        // A symbolic body is bound with the graph holding it: its symbols are that graph's.
        Op::Loop(l) if l.body.graph().is_symbolic() => {
            let body = crate::ops::Body::new(l.body.graph().bind(values)?).map_err(BindError::Op)?;
            Op::Loop(crate::ops::LoopOp { body, trips: l.trips, result: l.result })
        }
        Op::Unary(_)
        | Op::Binary(_)
        | Op::Where
        | Op::Cast { .. }
        | Op::Reduce { .. }
        | Op::ArgReduce { .. }
        | Op::Permute { .. }
        | Op::Slice { bounds: None, .. }
        | Op::Pad { .. }
        | Op::Concat { .. }
        | Op::Matmul
        | Op::Gather { .. }
        | Op::ScatterAdd { .. }
        | Op::Conv(_)
        | Op::Pool(_)
        | Op::Loop(_) => op.clone(),
    })
}
