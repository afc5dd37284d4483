//! Symbolic graphs from one concrete graph and the input dims the user marked dynamic (torch's
//! `mark_dynamic`): the first graph of a structure is then compiled for every size of those
//! dims, where [`super::generalize`] needs a second graph first.
//!
//! Each marked dim of size 2 or more becomes a symbol; every node is added again to a symbolic
//! graph, typed by the symbolic rules from its operands, and the sizes an op carries are
//! written over the symbols from the structure of the op: a reshape's dims by the row-major
//! chunks of equal products that it maps (`[B, T, C] -> [B*T, C]`), a slice's bounds by where
//! they sit in a symbolic axis (all of it, or its last elements: `x[:, -1]` of `T` starts at
//! `T - 1`), and the dims of an expand or of a source op (`iota`, `rand`, a filled constant)
//! by the one symbol whose size they have, if exactly one has it. These are guesses from one
//! sample; the result is checked to bind back to the graph at its sizes, and every later graph
//! of the structure is checked as an instance before it shares the program, so a wrong guess
//! costs a compilation, never a wrong result.
//!
//! A `loop` whose operands have marked dims gets a body over the same symbols, its sizes
//! guessed the same way; a constant of the body that is the size of one symbol (`x / n`, which
//! outside a loop would be lifted into a runtime operand) is guessed to be a `size` of it.
//!
//! A [`Mark`] may name its symbol and bound it (torch's `mark_dynamic(t, d, min=, max=)`,
//! tinygrad's `Variable("T", 1, 64)`): marks of one name are one symbol, so two inputs whose
//! marked dims share a name are known equal (an add of the two needs no guard), and a bound
//! lets the type rules prove what holds only up to it (a slice `pos[:T]` of a table of 64
//! positions, with `T` at most 64). A size outside a mark's range is not an instance: it is
//! compiled apart, as sizes 0 and 1 are.

use super::generalize::{departure, loop_body, Generalized, Introduced, NotGeneral};
use super::Graph;
use crate::ops::{LoopOp, Op, Scalar, SliceBounds};
use crate::sym::{Dim, SymExpr, Symbol};
use crate::types::{Shape, TensorType};
use std::collections::HashMap;
use std::sync::Arc;

fn not(reason: String) -> NotGeneral {
    NotGeneral { reason }
}

/// An input dim marked dynamic: which one, and the symbol it becomes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Mark {
    /// The graph input.
    pub input: usize,
    /// Its dim.
    pub dim: usize,
    /// The symbol's name; `None`: `d0`, `d1`, ... in order (names not otherwise taken).
    pub name: Option<String>,
    /// The least size the symbol stands for; below 2 counts as 2 (sizes 0 and 1 stay
    /// special).
    pub lo: u64,
    /// The greatest, or `None` for no bound.
    pub hi: Option<u64>,
}

impl Mark {
    /// Dim `dim` of input `input`, as a symbol of sizes 2 and more named in order.
    pub fn new(input: usize, dim: usize) -> Mark {
        Mark { input, dim, name: None, lo: 2, hi: None }
    }

    /// The range as the text IR prints it (`2..=64`, `2..`).
    fn range(&self) -> String {
        match self.hi {
            Some(hi) => format!("{}..={hi}", self.lo.max(2)),
            None => format!("{}..", self.lo.max(2)),
        }
    }
}

/// The symbolic graph of `g` whose input dims `marks` (input, dim) are symbols, its hints the
/// sizes of `g` (see the module documentation). Marked dims of size 0 or 1 stay constants.
///
/// A graph that holds only where a marked size is one constant (a guard `T == 6`: the rows of
/// a marked input added to a slice of 6 rows of a table, which a bound on the mark would have
/// let grow with `T`) is refused, naming the op and any guess that failed on the way.
pub fn generalize_marked(g: &Graph, marks: &[Mark]) -> Result<Generalized, NotGeneral> {
    let guessed = build(g, marks, true);
    if let Ok(gen) = &guessed {
        if gen.graph.guards().is_empty() {
            return guessed;
        }
    }
    // A guess by size that needs a guard (an axis broadcast to the size of a head count, which
    // happens to be the size of a symbol): without such guesses, if that needs none.
    match build(g, marks, false) {
        Ok(plain) if plain.graph.guards().is_empty() => Ok(plain),
        _ => guessed,
    }
}

/// [`generalize_marked`], guessing the dims of expands and source ops by their sizes when
/// `by_size`.
fn build(g: &Graph, marks: &[Mark], by_size: bool) -> Result<Generalized, NotGeneral> {
    let mut out = Graph::new(g.name());
    let mut symbols: Vec<(SymExpr, usize)> = Vec::new();
    let mut introduced = Vec::new();
    let mut input_dims: Vec<Vec<Dim>> = Vec::new();
    let mut unnamed = 0;
    for (i, (_, id)) in g.inputs().iter().enumerate() {
        let mut dims = Vec::new();
        for (d, &n) in g.ty(*id).shape.dims().iter().enumerate() {
            let Some(mark) = marks.iter().find(|m| (m.input, m.dim) == (i, d)).filter(|_| n >= 2) else {
                dims.push(Dim::from(n as u64));
                continue;
            };
            let at = format!("dim {d} of input {i}");
            let expr = match symbol_of(&mut out, marks, mark, n, &mut unnamed)
                .map_err(|e| not(format!("{at}: {e}")))?
            {
                Symbolized::New(name) => {
                    introduced.push(Introduced { name: name.clone(), at, sizes: (n, n) });
                    let expr = SymExpr::symbol(&name).map_err(|e| not(e.to_string()))?;
                    symbols.push((expr.clone(), n));
                    expr
                }
                Symbolized::Known(expr) => expr,
            };
            dims.push(Dim::from_expr(expr).map_err(|e| not(e.to_string()))?);
        }
        input_dims.push(dims);
    }
    if introduced.is_empty() {
        return Err(not("no dim marked dynamic has a size of 2 or more".into()));
    }
    let mut input_types = Vec::new();
    for (dims, (_, id)) in input_dims.into_iter().zip(g.inputs()) {
        let ty = g.ty(*id);
        input_types.push(TensorType::new(ty.dtype, Shape::symbolic(dims, ty.shape.dims()).map_err(not)?));
    }
    nodes(g, &mut out, input_types, &symbols, by_size, false)?;
    let bound = out.bind(out.hints()).map_err(|e| not(format!("the symbolic graph does not bind: {e}")))?;
    if bound.fingerprint() != g.fingerprint() {
        return Err(not(format!(
            "the symbolic graph found does not give the graph: {}",
            departure(&bound, g)
        )));
    }
    Ok(Generalized { graph: out, introduced })
}

/// Adds to `out` the nodes of `g`, its inputs typed `input_types`, the sizes of every other
/// node written over `symbols` (guessed by size when `by_size`), and sets the outputs. `g` is
/// a loop's body when `in_body`: a constant there may be a size ([`size_in_body`]).
fn nodes(
    g: &Graph,
    out: &mut Graph,
    input_types: Vec<TensorType>,
    symbols: &[(SymExpr, usize)],
    by_size: bool,
    in_body: bool,
) -> Result<(), NotGeneral> {
    let none: [(SymExpr, usize); 0] = [];
    let order = g.rebuild_order().ok_or_else(|| not("the graph has a cycle".into()))?;
    let mut map = HashMap::new();
    // Guesses that did not type, for the message if a marked size ends up fixed.
    let mut failed: Vec<String> = Vec::new();
    for y in order {
        if let Op::Input { index, .. } = g.op(y) {
            map.insert(y, out.add_input(g.inputs()[*index].0.clone(), input_types[*index].clone()));
            continue;
        }
        let args: Vec<_> = g.args(y).iter().map(|a| map[a]).collect();
        let guesses: &[(SymExpr, usize)] = if by_size { symbols } else { &none };
        let at = format!("{y} ({})", g.op(y).name());
        let operand = |k: usize| out.ty(args[k]).shape.sym_dims();
        let op = match g.op(y) {
            Op::Reshape { shape } => {
                let sizes = out.ty(args[0]).shape.dims().to_vec();
                Op::Reshape { shape: reshaped(&operand(0), &sizes, shape.dims(), symbols).map_err(not)? }
            }
            Op::Expand { shape } => {
                Op::Expand { shape: expanded(&operand(0), shape.dims(), guesses).map_err(not)? }
            }
            Op::Slice { start, step, size, bounds: None } => {
                let (from, sizes) = (operand(0), out.ty(args[0]).shape.dims().to_vec());
                let op = sliced(&from, &sizes, start, step, size, guesses).map_err(not)?;
                // A length guessed to be a symbol may need a bound the symbol lacks: an
                // unbounded one gets it, a mark's own range is kept.
                if !guesses.is_empty() {
                    super::generalize::bound_for_slice(out, &op, &args);
                }
                match out.infer(&op, &args) {
                    Err(e) if !guesses.is_empty() => {
                        failed.push(format!("{at} as long as a marked dim: {e}"));
                        sliced(&from, &sizes, start, step, size, &none).map_err(not)?
                    }
                    Ok(_) | Err(_) => op,
                }
            }
            Op::Const { value, ty } => {
                let ty = source(ty, guesses).map_err(not)?;
                match size_in_body(*value, &ty, guesses).filter(|_| in_body) {
                    Some(expr) => Op::Size { expr, ty },
                    None => Op::Const { value: *value, ty },
                }
            }
            Op::Iota { ty, axis } => Op::Iota { ty: source(ty, guesses).map_err(not)?, axis: *axis },
            Op::Rand { ty } => Op::Rand { ty: source(ty, guesses).map_err(not)? },
            // A body whose operands have symbolic sizes is made symbolic over them.
            Op::Loop(l) if args.iter().any(|&a| out.ty(a).shape.is_symbolic()) => {
                let inner = l.body.graph();
                let body = loop_body(out, &args, inner, &mut |body, types| {
                    nodes(inner, body, types, symbols, by_size, true)
                })?;
                Op::Loop(LoopOp { body, trips: l.trips, result: l.result })
            }
            other => other.clone(),
        };
        let id =
            out.add_at(op, &args, g.loc(y).map(str::to_string)).map_err(|e| not(format!("{at}: {e}")))?;
        if let Some(pin) = out.guards().iter().find(|g| g.lhs.is_const() || g.rhs.is_const()) {
            let mut why = format!("{at} holds only where {pin}, which fixes a marked size");
            if !failed.is_empty() {
                why.push_str(&format!(" (guessed before: {})", failed.join("; ")));
            }
            return Err(not(why));
        }
        map.insert(y, id);
    }
    out.set_outputs(g.outputs().iter().map(|o| map[o]).collect());
    Ok(())
}

/// What a marked dim of size `n` became.
enum Symbolized {
    /// A symbol declared now, with this name.
    New(String),
    /// The symbol of an earlier mark of the same name.
    Known(SymExpr),
}

/// Declares in `out` the symbol of `mark` at size `n`, or finds the one an earlier mark of its
/// name declared (which must have the same size and range); `unnamed` counts the names given
/// so far to marks without one.
fn symbol_of(
    out: &mut Graph,
    marks: &[Mark],
    mark: &Mark,
    n: usize,
    unnamed: &mut usize,
) -> Result<Symbolized, String> {
    let n = n as u64;
    let name = match &mark.name {
        Some(name) => name.clone(),
        None => loop {
            let name = format!("d{unnamed}");
            *unnamed += 1;
            if !marks.iter().any(|m| m.name.as_deref() == Some(name.as_str())) {
                break name;
            }
        },
    };
    let symbol = Symbol::new(&name, mark.lo.max(2), mark.hi).map_err(|e| e.to_string())?;
    if let Some(known) = out.symbols().get(&name) {
        let hint = out.hints().get(&name).copied();
        if *known != symbol || hint != Some(n) {
            return Err(format!(
                "marked dynamic as {name}:{} at size {n}, but an earlier dim marked {known} has size {}",
                mark.range(),
                hint.unwrap_or(0)
            ));
        }
        return Ok(Symbolized::Known(symbol.expr()));
    }
    if !symbol.contains(n) {
        return Err(format!("size {n} is outside the range {name}:{} it was marked with", mark.range()));
    }
    out.declare_symbol(symbol, n).map_err(|e| e.to_string())?;
    Ok(Symbolized::New(name))
}

fn dim(e: SymExpr) -> Result<Dim, String> {
    Dim::from_expr(e).map_err(|e| e.to_string())
}

fn expr(d: &Dim) -> Result<SymExpr, String> {
    d.expr().ok_or_else(|| format!("dim {d} is too large"))
}

/// The dims of a reshape of dims `from` (expressions, of sizes `sizes`) to sizes `to`: chunk by chunk of equal
/// products (in row-major order), a chunk of one dim (besides 1s) on the result side is the
/// product of the operand's chunk; a chunk that splits one symbolic dim into several gives the
/// symbols of that dim to the result dims of their sizes; anything else stays constant (and
/// the reshape's type rule then says whether that holds for every size).
fn reshaped(
    from: &[Dim],
    sizes: &[usize],
    to: &[usize],
    symbols: &[(SymExpr, usize)],
) -> Result<Shape, String> {
    let mut dims: Vec<Dim> = to.iter().map(|&n| Dim::from(n as u64)).collect();
    if sizes.contains(&0) {
        return Err("a reshape of an empty tensor".into());
    }
    let (mut i, mut j) = (0, 0);
    while i < from.len() || j < to.len() {
        let (i0, j0) = (i, j);
        let (mut pa, mut pb) = (1usize, 1usize);
        if i < from.len() {
            pa = sizes[i];
            i += 1;
        }
        if j < to.len() {
            pb = to[j];
            j += 1;
        }
        while pa != pb {
            if pa < pb && i < from.len() {
                pa = pa.saturating_mul(sizes[i]);
                i += 1;
            } else if pb < pa && j < to.len() {
                pb = pb.saturating_mul(to[j]);
                j += 1;
            } else {
                return Err(format!("a reshape of {pa} elements into {pb}"));
            }
        }
        let a: Vec<&Dim> = from[i0..i].iter().filter(|d| d.as_const() != Some(1)).collect();
        let b: Vec<usize> = (j0..j).filter(|&k| to[k] != 1).collect();
        if a.iter().all(|d| d.as_const().is_some()) {
            continue;
        }
        match b[..] {
            [k] => {
                let product = a
                    .iter()
                    .try_fold(SymExpr::from(1), |acc, d| acc.mul(&expr(d)?).map_err(|e| e.to_string()))?;
                dims[k] = dim(product)?;
            }
            ref many => {
                // Split the chunk by the sizes of the symbols its dims are products of, then
                // check the products agree (else the dims stay constant).
                let factors: Vec<String> =
                    a.iter().filter_map(|d| d.expr()).flat_map(|e| e.symbols()).collect();
                let mut used: Vec<String> = Vec::new();
                let mut split = dims.clone();
                for &k in many {
                    let hit = factors.iter().find(|s| {
                        !used.contains(s)
                            && symbols
                                .iter()
                                .any(|(e, n)| e.as_symbol().as_deref() == Some(s.as_str()) && *n == to[k])
                    });
                    if let Some(s) = hit {
                        used.push(s.clone());
                        split[k] = dim(SymExpr::symbol(s).map_err(|e| e.to_string())?)?;
                    }
                }
                let whole = product(a.iter().copied());
                if whole.is_some() && whole == product(split[j0..j].iter()) {
                    dims = split;
                }
            }
        }
    }
    Shape::symbolic(dims, to)
}

/// The product of `dims`, `None` on an overflow.
fn product<'a>(dims: impl Iterator<Item = &'a Dim>) -> Option<SymExpr> {
    let mut acc = SymExpr::from(1);
    for d in dims {
        acc = acc.mul(&d.expr()?).ok()?;
    }
    Some(acc)
}

/// The symbol whose size is `n`, if exactly one has it (and `n` is 2 or more).
fn by_size(n: usize, symbols: &[(SymExpr, usize)]) -> Option<SymExpr> {
    let mut hits = symbols.iter().filter(|(_, v)| *v == n && n >= 2);
    match (hits.next(), hits.next()) {
        (Some((e, _)), None) => Some(e.clone()),
        _ => None,
    }
}

/// The symbol a constant `value` of type `ty` in a loop's body stands for, if it is one: a
/// whole number of 2 or more that is the size of exactly one of `symbols`, and not structural
/// ([`crate::passes::simplify::is_structural`]). Outside a loop, such a constant is lifted into
/// a runtime operand by the front end (data, so it follows the size by itself); a body keeps
/// it (`x / n` of a mean written by hand), so it becomes a `size` of the symbol (a guess, as
/// every other here).
fn size_in_body(value: Scalar, ty: &TensorType, symbols: &[(SymExpr, usize)]) -> Option<SymExpr> {
    if crate::passes::simplify::is_structural(value, ty.dtype) {
        return None;
    }
    let n = match value {
        Scalar::Float(f) if f.fract() == 0.0 && (2.0..1e15).contains(&f) => f as usize,
        Scalar::Int(i) if i >= 2 => usize::try_from(i).ok()?,
        _ => return None,
    };
    (Scalar::of_size(n as u64, ty.dtype) == value).then(|| by_size(n, symbols)).flatten()
}

/// An expand of dims `from` to sizes `to`: a kept axis keeps its dim, a broadcast one takes
/// the one symbol of its size, if any.
fn expanded(from: &[Dim], to: &[usize], symbols: &[(SymExpr, usize)]) -> Result<Shape, String> {
    let mut dims = Vec::with_capacity(to.len());
    for (d, &n) in to.iter().enumerate() {
        let a = &from[d];
        dims.push(if a.as_const() != Some(1) {
            a.clone()
        } else {
            match by_size(n, symbols) {
                Some(e) => dim(e)?,
                None => Dim::from(n as u64),
            }
        });
    }
    Shape::symbolic(dims, to)
}

/// A source op's type: each dim the one symbol of its size, if any.
fn source(ty: &TensorType, symbols: &[(SymExpr, usize)]) -> Result<TensorType, String> {
    let sizes = ty.shape.dims();
    let dims: Vec<Dim> = sizes
        .iter()
        .map(|&n| match by_size(n, symbols) {
            Some(e) => dim(e),
            None => Ok(Dim::from(n as u64)),
        })
        .collect::<Result<_, _>>()?;
    Ok(TensorType::new(ty.dtype, Shape::symbolic(dims, sizes)?))
}

/// A slice of an operand of dims `from` (sizes `sizes`): on a symbolic axis, all of it stays
/// all of it, and the last elements (`x[:, -1]`) stay the last ones; on a constant axis, a
/// contiguous run as long as one of the `symbols` is that symbol (`pos[:T]` of a table of
/// positions); other bounds stay constants.
fn sliced(
    from: &[Dim],
    sizes: &[usize],
    start: &crate::ops::IDims,
    step: &crate::ops::IDims,
    size: &crate::ops::Dims,
    symbols: &[(SymExpr, usize)],
) -> Result<Op, String> {
    let (mut starts, mut lens) = (Vec::new(), Vec::new());
    for d in 0..from.len() {
        let (s, n, len) = (start[d], sizes[d], size[d]);
        let c = |v: i64| SymExpr::constant(v).map_err(|e| e.to_string());
        let (s_expr, len_dim) = match from[d].as_const() {
            Some(_) => match by_size(len, symbols).filter(|_| step[d] == 1 && s >= 0) {
                Some(e) => (c(s as i64)?, dim(e)?),
                None => (c(s as i64)?, Dim::from(len as u64)),
            },
            None if step[d] == 1 && s == 0 && len == n => (c(0)?, from[d].clone()),
            None if step[d] == 1 && s >= 0 && s as usize + len == n => {
                let back = c((n - s as usize) as i64)?;
                (expr(&from[d])?.sub(&back).map_err(|e| e.to_string())?, Dim::from(len as u64))
            }
            None => (c(s as i64)?, Dim::from(len as u64)),
        };
        starts.push(s_expr);
        lens.push(len_dim);
    }
    let symbolic = starts.iter().any(|e| !e.is_const()) || lens.iter().any(|d| d.as_const().is_none());
    let bounds = symbolic.then(|| Arc::new(SliceBounds { start: starts, size: lens }));
    Ok(Op::Slice { start: start.clone(), step: step.clone(), size: size.clone(), bounds })
}
