//! `jit` over size symbols: a trace whose dynamic dims are symbols ([`crate::tensor::symbolic`])
//! serves every size that satisfies its guards, by binding its graph instead of running the
//! closure again.

use super::{add_draw_inputs, bindings_of, compile, marks_of, placeholder, Binding, Compiled, Jit, Replay};
use crate::error::Result;
use crate::realize::{trace_in, Calls, TraceOptions};
use crate::tensor::Tensor;
use std::collections::HashMap;
use std::panic::Location;
use std::sync::Arc;
use std::time::Instant;
use tenjit_ir::graph::Mark;
use tenjit_ir::sym::{Bindings, Dim, SymExpr, Symbol};
use tenjit_ir::{Buffer, Graph, NodeId, Op, Scalar, Shape, TensorType};

/// A closure's graph traced over size symbols.
pub(super) struct SymbolicTrace {
    /// The graph, its inputs the trace's leaves then a seed and an offset per draw.
    graph: Graph,
    /// The `rand` nodes, in the order of their seed and offset inputs.
    draws: Vec<NodeId>,
    /// The call that built each node.
    calls: Calls,
    /// The value of each input after the draws' (see [`lift_sizes`]).
    sizes: Vec<(SymExpr, TensorType)>,
}

/// A symbolic trace's graph bound to one call's sizes, with the node each node became and
/// the symbols' values.
pub(super) type Bound = (Graph, HashMap<NodeId, NodeId>, Bindings);

impl SymbolicTrace {
    /// The graph at the sizes of `args`, if they are an instance of the trace (traced with
    /// arguments of types `signature`, its inputs bound as `bindings`): the same dtypes and
    /// ranks, sizes in the symbols' ranges, and every guard holding; else what fails.
    pub(super) fn bind(
        &self,
        signature: &[TensorType],
        bindings: &[Binding],
        args: &[&Tensor],
    ) -> std::result::Result<Bound, String> {
        if !same_kinds(signature, args) {
            return Err("other dtypes or ranks".into());
        }
        let mut given: Vec<&[usize]> = bindings
            .iter()
            .map(|b| match b {
                Binding::Arg(i) => args[*i].shape_unrecorded(),
                Binding::Captured(buf) => buf.shape().dims(),
            })
            .collect();
        given.extend(self.draws.iter().flat_map(|_| [&[][..], &[][..]]));
        given.extend(self.sizes.iter().map(|(_, ty)| ty.shape.dims()));
        let values = self.graph.bindings_for(&given).map_err(|e| e.to_string())?;
        let (graph, map) = self.graph.bind_nodes(&values).map_err(|e| e.to_string())?;
        Ok((graph, map, values))
    }
}

/// Whether `args` have the dtypes and ranks of `signature`, one each.
fn same_kinds(signature: &[TensorType], args: &[&Tensor]) -> bool {
    signature.len() == args.len()
        && signature.iter().zip(args).all(|(s, a)| s.dtype == a.dtype() && s.shape.rank() == a.dim())
}

/// The dims of `args` to trace over symbols: those marked dynamic, and those whose size
/// differs from an earlier trace's of the same dtypes and ranks (torch's automatic dynamic);
/// none when an earlier trace of those kinds read a dynamic size (the closure would read it
/// again). Sizes 0 and 1 stay special.
pub(super) fn dynamic_dims(args: &[&Tensor], traces: &[Arc<Compiled>]) -> Vec<Mark> {
    let earlier: Vec<&Compiled> = traces
        .iter()
        .filter(|c| c.traced.is_some() && same_kinds(&c.signature, args))
        .map(|c| &**c)
        .collect();
    if earlier.iter().any(|c| matches!(c.replay, Replay::Concrete(Some(_)))) {
        return Vec::new();
    }
    let mut marks: Vec<Mark> = Vec::new();
    for (i, a) in args.iter().enumerate() {
        let shape = a.shape_unrecorded();
        for m in a.marks() {
            marks.push(Mark { input: i, ..m });
        }
        for c in &earlier {
            for (d, (&was, &is)) in c.signature[i].shape.dims().iter().zip(shape).enumerate() {
                if was != is && !marks.iter().any(|m| m.input == i && m.dim == d) {
                    marks.push(Mark::new(i, d));
                }
            }
        }
    }
    marks.retain(|m| args[m.input].shape_unrecorded()[m.dim] >= 2);
    marks
}

/// Size symbols, each with its hint.
type Symbols = Vec<(Symbol, u64)>;

/// The symbols of `marks` (each with its hint) and the arguments' types over them; an error
/// names marks of one name whose sizes differ.
fn symbolic_types(
    args: &[&Tensor],
    marks: &[Mark],
) -> std::result::Result<(Symbols, Vec<TensorType>), String> {
    let taken: Vec<&str> = marks.iter().filter_map(|m| m.name.as_deref()).collect();
    let mut unnamed = (0..).map(|k| format!("d{k}")).filter(|n| !taken.contains(&n.as_str()));
    let mut symbols: Symbols = Vec::new();
    let mut duck: Vec<(u64, String)> = Vec::new();
    let mut types: Vec<TensorType> = args.iter().map(|a| a.ty_unrecorded().clone()).collect();
    let mut dims: Vec<Vec<Dim>> = types.iter().map(|t| t.shape.sym_dims()).collect();
    for m in marks {
        let size = args[m.input].shape_unrecorded()[m.dim] as u64;
        // Unnamed dims of one size share a symbol (torch's duck sizing): a batch marked on
        // the inputs and on the targets is one batch; a later call where they differ is no
        // instance and traces again.
        let name = match &m.name {
            Some(n) => n.clone(),
            None => match duck.iter().find(|(s, _)| *s == size) {
                Some((_, n)) => n.clone(),
                None => {
                    let n = unnamed.next().expect("names without end");
                    duck.push((size, n.clone()));
                    n
                }
            },
        };
        match symbols.iter().find(|(s, _)| s.name == name) {
            Some((_, hint)) if *hint != size => {
                return Err(format!("dims marked {name} have sizes {hint} and {size}"));
            }
            Some(_) => {}
            None => {
                let symbol = Symbol::new(&name, m.lo.max(2), m.hi).map_err(|e| e.to_string())?;
                symbols.push((symbol, size));
            }
        }
        let expr = SymExpr::symbol(&name).map_err(|e| e.to_string())?;
        dims[m.input][m.dim] = Dim::from_expr(expr).map_err(|e| e.to_string())?;
    }
    for (ty, d) in types.iter_mut().zip(dims) {
        let hints = ty.shape.dims().to_vec();
        ty.shape = Shape::symbolic(d, &hints)?;
    }
    Ok((symbols, types))
}

impl<F> Jit<F>
where
    F: Fn(&[Tensor]) -> Vec<Tensor>,
{
    /// Traces the closure (for `reason`) with the dims `marks` of `args` as size symbols and
    /// compiles the graph at the arguments' sizes; `Ok(Err(why))` when the trace holds only at them (the
    /// closure read a dynamic size, or an op has no symbolic type), for a concrete trace.
    pub(super) fn trace_symbolic(
        &self,
        args: &[&Tensor],
        marks: &[Mark],
        loc: &'static Location<'static>,
        start: Instant,
        reason: String,
    ) -> Result<std::result::Result<Compiled, String>> {
        let (symbols, types) = match symbolic_types(args, marks) {
            Ok(st) => st,
            Err(why) => return Ok(Err(why)),
        };
        let placeholders: Vec<Tensor> = types.into_iter().map(|ty| placeholder(ty, loc)).collect();
        let trace = crate::tensor::symbolic::begin(&symbols).map_err(crate::error::Error::internal)?;
        let results = self.run_closure(&placeholders);
        if let Some(why) = trace.finish() {
            return Ok(Err(why));
        }
        let mut graph = Graph::new("main");
        for (s, hint) in &symbols {
            graph
                .declare_symbol(s.clone(), *hint)
                .map_err(|e| crate::error::Error::internal(e.to_string()))?;
        }
        let roots: Vec<&Tensor> = results.iter().collect();
        let traced = match trace_in(&roots, TraceOptions { locations: false }, graph) {
            Ok(t) => t,
            Err(e) => return Ok(Err(format!("the trace does not type over its symbols: {e}"))),
        };
        let mut graph = traced.graph;
        let draws = add_draw_inputs(&mut graph)?;
        let sizes = lift_sizes(&mut graph);
        let bindings = bindings_of(&traced.leaves, &placeholders)?;
        // In the order of the graphs it binds to, so that the runtime can check them as its
        // instances node by node.
        let (graph, order) = match graph.reordered() {
            Ok(r) => r,
            Err(e) => return Ok(Err(format!("the symbolic trace does not rebuild: {e}"))),
        };
        let draws = draws.iter().map(|n| order[n]).collect();
        let calls = remap_calls(&traced.calls, &order);
        let sym = Arc::new(SymbolicTrace { graph, draws, calls, sizes });
        let hints = sym.graph.hints().clone();
        let bound = match sym.graph.bind_nodes(&hints) {
            Ok((graph, map)) => (graph, map, hints),
            Err(e) => return Ok(Err(format!("the symbolic trace does not bind at its own sizes: {e}"))),
        };
        let mut compiled = instance(&sym, bound, args, bindings, Some(reason), start)?;
        compiled.replay = Replay::Symbolic(sym);
        Ok(Ok(compiled))
    }
}

/// The compiled entry of `sym` bound to the sizes of `args`.
pub(super) fn instance(
    sym: &SymbolicTrace,
    (graph, map, values): Bound,
    args: &[&Tensor],
    bindings: Vec<Binding>,
    traced: Option<String>,
    start: Instant,
) -> Result<Compiled> {
    let draws = sym.draws.iter().map(|n| graph.ty(map[n]).shape.numel()).collect();
    let mut sizes = Vec::with_capacity(sym.sizes.len());
    for (expr, ty) in &sym.sizes {
        let size = expr
            .eval(&values)
            .ok_or_else(|| crate::error::Error::internal(format!("size {expr} unbound")))?;
        sizes.push(Arc::new(Buffer::full(ty, Scalar::of_size(size, ty.dtype))));
    }
    let calls = remap_calls(&sym.calls, &map);
    let exe = compile(&graph, &marks_of(&bindings, args), Some(&sym.graph), start)?;
    Ok(Compiled {
        signature: args.iter().map(|a| a.ty_unrecorded().clone()).collect(),
        graph,
        draws,
        calls,
        bindings,
        sizes,
        exe,
        traced,
        replay: Replay::Concrete(None),
    })
}

/// Replaces each `size` node of `graph` (of a concrete type) with a new input of its type,
/// whose value each call's binding gives; returns their expressions and types in input order.
/// A size bound into the program would be a constant of it: part of its structure, so each
/// size's program would be a structure of its own, with the constant folded into others.
fn lift_sizes(graph: &mut Graph) -> Vec<(SymExpr, TensorType)> {
    let mut sizes = Vec::new();
    for n in graph.nodes() {
        let Op::Size { expr, ty } = graph.op(n).clone() else { continue };
        if ty.shape.is_symbolic() {
            continue;
        }
        let input = graph.add_input(format!("size{}", sizes.len()), ty.clone());
        graph.replace_all_uses(n, input);
        sizes.push((expr, ty));
    }
    sizes
}

/// The calls of a graph's nodes, `calls`, for the graph whose node each node became is `map`.
fn remap_calls(calls: &Calls, map: &HashMap<NodeId, NodeId>) -> Calls {
    let mut out: Calls = vec![None; map.values().map(|n| n.index() + 1).max().unwrap_or(0)];
    for (old, new) in map {
        if let Some(c) = calls.get(old.index()) {
            out[new.index()] = *c;
        }
    }
    out
}
