//! The parser: recursive descent over the lexer's tokens, rebuilding the graph through
//! [`Graph::add_input`] and [`Graph::add_at`] so that every type is re-inferred.
//!
//! Each statement is first read into a [`Stmt`] (names, literals and attribute values as text),
//! then turned into an [`Op`] once its type annotation is known, then added to the graph. The
//! op is found by name among [`prototypes`], which are built from the op table's own lists, so
//! the text form has no name table of its own.

use super::lexer::{lex, Key, Tok, Token};
use super::ParseError;
use crate::graph::{Graph, NodeId};
use crate::ops::{
    ArgOp, BinaryOp, Body, ConvGeometry, ConvOp, ConvRole, Dims, IDims, Library, LoopOp, Movement, Op,
    OpKind, PoolGeometry, PoolOp, ReduceOp, Scalar, UnaryOp,
};
use crate::types::{DType, Shape, TensorType};
use crate::verify::verify;
use std::collections::HashMap;

/// One op of each kind, with placeholder attributes: the parser's list of op names.
fn prototypes() -> Vec<Op> {
    let ty = TensorType::new(DType::F32, Shape::scalar());
    let mut ops = vec![
        Op::Input { index: 0, ty: ty.clone() },
        Op::Const { value: Scalar::Float(0.0), ty: ty.clone() },
        Op::Iota { ty: ty.clone(), axis: 0 },
        Op::Size { expr: crate::sym::SymExpr::default(), ty: ty.clone() },
        Op::Rand { ty },
        Op::Where,
        Op::Cast { dtype: DType::F32 },
        Op::Reshape { shape: Shape::scalar() },
        Op::Permute { perm: Dims::new() },
        Op::Expand { shape: Shape::scalar() },
        Op::Slice { start: IDims::new(), step: IDims::new(), size: Dims::new(), bounds: None },
        Op::Pad { lo: Dims::new(), hi: Dims::new() },
        Op::Concat { axis: 0 },
        Op::Matmul,
        Op::Gather { axis: 0 },
        Op::ScatterAdd { axis: 0 },
    ];
    ops.extend(ConvOp::prototypes().map(Op::Conv));
    ops.extend(PoolOp::prototypes().map(Op::Pool));
    ops.extend(UnaryOp::ALL.map(Op::Unary));
    ops.extend(BinaryOp::ALL.map(Op::Binary));
    ops.extend(ReduceOp::ALL.map(|op| Op::Reduce { op, axes: Dims::new() }));
    ops.extend(ArgOp::ALL.map(|op| Op::ArgReduce { op, axis: 0 }));
    ops
}

/// A position in the text.
#[derive(Clone, Copy, Debug)]
struct Pos {
    line: usize,
    col: usize,
}

impl Pos {
    fn of(t: &Token) -> Pos {
        Pos { line: t.line, col: t.col }
    }

    fn err(self, message: impl Into<String>) -> ParseError {
        ParseError { line: self.line, col: self.col, message: message.into() }
    }
}

/// An attribute value as written.
enum AttrValue {
    /// One integer.
    Int(String, Pos),
    /// A list of integers.
    List(Vec<(String, Pos)>),
    /// A graph of the same text, `@name` (a loop's body).
    Global(String, Pos),
    /// Symbolic dims `[B,T*2]`, as written between the brackets.
    Dims(String, Pos),
}

/// The dims of a type or shape attribute as read: plain sizes, or symbolic dims to be
/// evaluated at the graph's hints.
enum DimsText {
    Plain(Vec<usize>),
    Symbolic(String, Pos),
}

/// A symbolic shape from the text between its brackets: each dim an expression over the
/// graph's declared symbols, its size at the hints computed from them.
fn symbolic_shape(text: &str, pos: Pos, g: &Graph) -> Result<Shape, ParseError> {
    let mut dims = Vec::new();
    let mut sizes = Vec::new();
    for piece in text.split(',') {
        let dim = crate::sym::Dim::parse(piece.trim())
            .map_err(|e| pos.err(format!("bad dimension `{}`: {e}", piece.trim())))?;
        if let Some(e) = dim.expr() {
            g.symbols().check(&e).map_err(|e| {
                pos.err(format!(
                    "{e} in `[{text}]` (declare it after the inputs: `where NAME:LO..=HI = HINT`)"
                ))
            })?;
        }
        let size = dim
            .eval(g.hints())
            .and_then(|v| usize::try_from(v).ok())
            .ok_or_else(|| pos.err(format!("dimension `{}` has no size at the hints", piece.trim())))?;
        dims.push(dim);
        sizes.push(size);
    }
    if checked_numel(&sizes).is_none() {
        return Err(pos.err(format!("shape [{text}] has more elements than fit in memory at the hints")));
    }
    Shape::symbolic(dims, &sizes).map_err(|e| pos.err(e))
}

/// A statement as read, before it becomes an op.
struct Stmt {
    op_name: String,
    op_pos: Pos,
    operands: Vec<NodeId>,
    literals: Vec<(String, Pos)>,
    attrs: Vec<(String, Pos, AttrValue)>,
    ty: TensorType,
    ty_pos: Pos,
}

/// The attributes of one statement, taken one by one as the op asks for them.
struct Attrs {
    op: &'static str,
    pos: Pos,
    attrs: Vec<Option<(String, Pos, AttrValue)>>,
    expected: Vec<&'static str>,
}

impl Attrs {
    fn take(&mut self, key: &'static str) -> Result<(Pos, AttrValue), ParseError> {
        self.expected.push(key);
        let slot = self.attrs.iter_mut().find(|a| matches!(a, Some((k, _, _)) if k == key));
        match slot.and_then(Option::take) {
            Some((_, pos, value)) => Ok((pos, value)),
            None => Err(self.pos.err(format!("`{}` needs attribute `{key}`", self.op))),
        }
    }

    fn int<T: std::str::FromStr>(&mut self, key: &'static str, what: &str) -> Result<T, ParseError> {
        match self.take(key)? {
            (_, AttrValue::Int(text, pos)) => text
                .parse()
                .map_err(|_| pos.err(format!("bad attribute `{key}`: expected {what}, found `{text}`"))),
            (pos, AttrValue::List(_)) => {
                Err(pos.err(format!("bad attribute `{key}`: expected {what}, found a list")))
            }
            (_, AttrValue::Global(name, pos)) => {
                Err(pos.err(format!("bad attribute `{key}`: expected {what}, found `@{name}`")))
            }
            (_, AttrValue::Dims(text, pos)) => {
                Err(pos.err(format!("bad attribute `{key}`: expected {what}, found `[{text}]`")))
            }
        }
    }

    /// A graph defined earlier in the text, `@name`.
    fn global<'f>(
        &mut self,
        key: &'static str,
        functions: &'f [(String, Body)],
    ) -> Result<&'f Body, ParseError> {
        match self.take(key)? {
            (_, AttrValue::Global(name, pos)) => match functions.iter().find(|(n, _)| *n == name) {
                Some((_, body)) => Ok(body),
                None => Err(pos.err(format!("bad attribute `{key}`: no graph `@{name}` is defined above"))),
            },
            (pos, AttrValue::Int(..) | AttrValue::List(_) | AttrValue::Dims(..)) => {
                Err(pos.err(format!("bad attribute `{key}`: expected a graph `@name`")))
            }
        }
    }

    fn list<T: std::str::FromStr>(&mut self, key: &'static str, what: &str) -> Result<Vec<T>, ParseError> {
        match self.take(key)? {
            (_, AttrValue::List(items)) => items
                .into_iter()
                .map(|(text, pos)| {
                    text.parse().map_err(|_| {
                        pos.err(format!("bad attribute `{key}`: expected a list of {what}, found `{text}`"))
                    })
                })
                .collect(),
            (_, AttrValue::Int(text, pos)) => Err(pos.err(format!(
                "bad attribute `{key}`: expected a list of {what} like `[0,1]`, found `{text}`"
            ))),
            (_, AttrValue::Global(name, pos)) => Err(pos.err(format!(
                "bad attribute `{key}`: expected a list of {what} like `[0,1]`, found `@{name}`"
            ))),
            (_, AttrValue::Dims(text, pos)) => Err(pos.err(format!(
                "bad attribute `{key}`: expected a list of {what}, found symbolic dims `[{text}]`"
            ))),
        }
    }

    /// Whether attribute `key` is written as symbolic dims `[B,T-1]`.
    fn is_dims(&self, key: &str) -> bool {
        matches!(self.attrs.iter().flatten().find(|(k, _, _)| k == key), Some((_, _, AttrValue::Dims(..))))
    }

    /// A shape: a list of sizes, or symbolic dims over `g`'s symbols.
    fn shape(&mut self, key: &'static str, g: &Graph) -> Result<Shape, ParseError> {
        if !self.is_dims(key) {
            return Ok(Shape::from(self.list::<usize>(key, UINTS)?));
        }
        match self.take(key)? {
            (_, AttrValue::Dims(text, pos)) => symbolic_shape(&text, pos, g),
            (pos, _) => Err(pos.err(format!("bad attribute `{key}`"))),
        }
    }

    /// A list of exactly two non-negative integers, `(height, width)`.
    fn pair(&mut self, key: &'static str) -> Result<[usize; 2], ParseError> {
        let pos = self.attrs.iter().flatten().find(|(k, _, _)| k == key).map_or(self.pos, |a| a.1);
        let items: Vec<usize> = self.list(key, UINTS)?;
        <[usize; 2]>::try_from(items.as_slice()).map_err(|_| {
            pos.err(format!(
                "bad attribute `{key}`: expected two entries `[height,width]`, found {}",
                items.len()
            ))
        })
    }

    /// Fails on an attribute no one asked for.
    fn finish(self) -> Result<(), ParseError> {
        if let Some((key, pos, _)) = self.attrs.into_iter().flatten().next() {
            let expected = if self.expected.is_empty() {
                "none".to_string()
            } else {
                self.expected.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
            };
            return Err(pos.err(format!("unknown attribute `{key}` for `{}` (expected {expected})", self.op)));
        }
        Ok(())
    }
}

const UINT: &str = "a non-negative integer";
const UINTS: &str = "non-negative integers";

/// Turns a statement into its op: finds the op by name and reads its attributes.
fn build_op(
    stmt: &mut Stmt,
    protos: &[Op],
    functions: &[(String, Body)],
    g: &Graph,
) -> Result<Op, ParseError> {
    if stmt.op_name == "loop" {
        if let Some((text, pos)) = stmt.literals.first() {
            return Err(pos
                .err(format!("unexpected `{text}`: `loop` takes operands `%v` and `key=value` attributes")));
        }
        let mut a = Attrs {
            op: "loop",
            pos: stmt.op_pos,
            attrs: std::mem::take(&mut stmt.attrs).into_iter().map(Some).collect(),
            expected: Vec::new(),
        };
        let body = a.global("body", functions)?.clone();
        let op = Op::Loop(LoopOp { body, trips: a.int("trips", UINT)?, result: a.int("result", UINT)? });
        a.finish()?;
        return Ok(op);
    }
    let Some(proto) = protos.iter().find(|p| p.name() == stmt.op_name) else {
        return Err(stmt.op_pos.err(format!("unknown op `{}`", stmt.op_name)));
    };
    let name = proto.name();
    let mut a = Attrs {
        op: name,
        pos: stmt.op_pos,
        attrs: std::mem::take(&mut stmt.attrs).into_iter().map(Some).collect(),
        expected: Vec::new(),
    };
    let ty = stmt.ty.clone();
    // Only `const` takes a literal: its value.
    let allowed = usize::from(matches!(proto, Op::Const { .. }));
    if let Some((text, pos)) = stmt.literals.get(allowed) {
        return Err(
            pos.err(format!("unexpected `{text}`: `{name}` takes operands `%v` and `key=value` attributes"))
        );
    }
    let literal = stmt.literals.first().cloned();
    let dims = |v: Vec<usize>| Dims::from_vec(v);
    let op = match proto {
        Op::Input { .. } => {
            return Err(stmt.op_pos.err("inputs are declared in the graph signature, not with `input`"))
        }
        Op::Const { .. } => {
            let Some((text, pos)) = literal else {
                return Err(stmt.op_pos.err(format!("`const` needs a value, like `const 1.5 : {ty}`")));
            };
            let value = Scalar::parse(&text, ty.dtype)
                .ok_or_else(|| pos.err(format!("bad constant `{text}` for {}", ty.dtype)))?;
            Op::Const { value, ty }
        }
        Op::Iota { .. } => Op::Iota { axis: a.int("axis", UINT)?, ty },
        Op::Size { .. } => {
            let shape = a.shape("expr", g)?;
            match shape.sym_dims().as_slice() {
                [d] => Op::Size { expr: d.expr().unwrap_or_default(), ty },
                _ => return Err(stmt.op_pos.err("`size` needs one expression, like `expr=[B*T]`")),
            }
        }
        Op::Rand { .. } => Op::Rand { ty },
        Op::Unary(u) => Op::Unary(*u),
        Op::Binary(b) => Op::Binary(*b),
        Op::Where => Op::Where,
        Op::Cast { .. } => Op::Cast { dtype: ty.dtype },
        Op::Reduce { op, .. } => Op::Reduce { op: *op, axes: dims(a.list("axes", UINTS)?) },
        Op::ArgReduce { op, .. } => Op::ArgReduce { op: *op, axis: a.int("axis", UINT)? },
        Op::Reshape { .. } => Op::Reshape { shape: a.shape("shape", g)? },
        Op::Permute { .. } => Op::Permute { perm: dims(a.list("perm", UINTS)?) },
        Op::Expand { .. } => Op::Expand { shape: a.shape("shape", g)? },
        Op::Slice { .. } if a.is_dims("start") || a.is_dims("size") => {
            // Symbolic bounds: starts and sizes over the graph's symbols.
            let start = a.shape("start", g)?;
            let step = IDims::from_vec(a.list("step", "integers")?);
            let size = a.shape("size", g)?;
            let exprs: Option<Vec<crate::sym::SymExpr>> = start.sym_dims().iter().map(|d| d.expr()).collect();
            let bounds = crate::ops::SliceBounds {
                start: exprs.ok_or_else(|| stmt.op_pos.err("a slice start is too large"))?,
                size: size.sym_dims(),
            };
            Op::Slice {
                start: start.dims().iter().map(|&s| s as isize).collect(),
                step,
                size: Dims::from_slice(size.dims()),
                bounds: Some(std::sync::Arc::new(bounds)),
            }
        }
        Op::Slice { .. } => Op::Slice {
            start: IDims::from_vec(a.list("start", "integers")?),
            step: IDims::from_vec(a.list("step", "integers")?),
            size: dims(a.list("size", UINTS)?),
            bounds: None,
        },
        Op::Pad { .. } => Op::Pad { lo: dims(a.list("lo", UINTS)?), hi: dims(a.list("hi", UINTS)?) },
        Op::Concat { .. } => Op::Concat { axis: a.int("axis", UINT)? },
        Op::Matmul => Op::Matmul,
        Op::Gather { .. } => Op::Gather { axis: a.int("axis", UINT)? },
        Op::ScatterAdd { .. } => Op::ScatterAdd { axis: a.int("axis", UINT)? },
        Op::Conv(c) => {
            let geometry = ConvGeometry {
                stride: a.pair("stride")?,
                padding: a.pair("padding")?,
                dilation: a.pair("dilation")?,
                groups: a.int("groups", UINT)?,
            };
            let role = match c.role {
                ConvRole::Forward => ConvRole::Forward,
                ConvRole::Input { .. } => ConvRole::Input { size: a.pair("size")? },
                ConvRole::Weight { .. } => ConvRole::Weight { kernel: a.pair("kernel")? },
            };
            Op::Conv(ConvOp { role, geometry })
        }
        Op::Pool(p) => {
            let geometry = PoolGeometry {
                kernel: a.pair("kernel")?,
                stride: a.pair("stride")?,
                padding: a.pair("padding")?,
            };
            Op::Pool(PoolOp { role: p.role, geometry })
        }
        Op::Loop(_) => return Err(stmt.op_pos.err("tenjit bug: `loop` is not a prototype")),
    };
    a.finish()?;
    Ok(op)
}

/// The number of elements of `shape`, or `None` if it overflows `usize`.
fn checked_numel(dims: &[usize]) -> Option<usize> {
    dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

/// Rejects attributes whose arithmetic in the type rule would overflow (the type rules assume
/// sizes that fit in memory; text can name any size).
fn check_sizes(op: &Op, args: &[&TensorType], pos: Pos) -> Result<(), ParseError> {
    let too_big = || Err(pos.err(format!("{}: sizes overflow", op.name())));
    match op.kind() {
        OpKind::Movement(Movement::Reshape { shape } | Movement::Expand { shape }) => {
            if checked_numel(shape.dims()).is_none() {
                return too_big();
            }
        }
        OpKind::Movement(Movement::Slice { start, step, size }) => {
            for ((&b, &s), &n) in start.iter().zip(step.iter()).zip(size.iter()) {
                let last = isize::try_from(n)
                    .ok()
                    .and_then(|n| (n.max(1) - 1).checked_mul(s))
                    .and_then(|span| span.checked_add(b));
                if last.is_none() {
                    return too_big();
                }
            }
        }
        OpKind::Library(Library::Pad { lo, hi }) => {
            if let Some(x) = args.first() {
                for ((&l, &h), &d) in lo.iter().zip(hi.iter()).zip(x.shape.dims()) {
                    if l.checked_add(d).and_then(|n| n.checked_add(h)).is_none() {
                        return too_big();
                    }
                }
            }
        }
        OpKind::Library(Library::Concat { axis }) => {
            let mut sizes = args.iter().filter_map(|t| t.shape.dims().get(axis));
            if sizes.try_fold(0usize, |n, &d| n.checked_add(d)).is_none() {
                return too_big();
            }
        }
        OpKind::Input
        | OpKind::Source
        | OpKind::Elementwise
        | OpKind::Reduce
        | OpKind::Matmul
        | OpKind::Loop(_)
        | OpKind::Movement(Movement::Permute { .. })
        | OpKind::Library(
            Library::Gather { .. } | Library::ScatterAdd { .. } | Library::Conv(_) | Library::Pool(_),
        ) => {}
    }
    Ok(())
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    protos: Vec<Op>,
    g: Graph,
    values: HashMap<Key, (NodeId, Pos)>,
    node_pos: HashMap<NodeId, Pos>,
    /// The graphs defined before the current one, by name: the bodies its loops may name.
    functions: Vec<(String, Body)>,
}

impl Parser {
    fn peek(&self) -> &Token {
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    fn next(&mut self) -> Token {
        let t = self.peek().clone();
        if self.pos < self.tokens.len() - 1 {
            self.pos += 1;
        }
        t
    }

    fn expected(&self, what: &str) -> ParseError {
        let t = self.peek();
        Pos::of(t).err(format!("expected {what}, found {}", t.describe()))
    }

    fn is_punct(&self, c: char) -> bool {
        self.peek().tok == Tok::Punct(c)
    }

    fn expect_punct(&mut self, c: char, what: &str) -> Result<Token, ParseError> {
        if self.is_punct(c) {
            Ok(self.next())
        } else {
            Err(self.expected(what))
        }
    }

    /// Skips blank lines and comment lines (a location comment on a line of its own is an
    /// ordinary comment).
    fn skip_blank(&mut self) {
        while matches!(self.peek().tok, Tok::Newline | Tok::Loc(_)) {
            self.next();
        }
    }

    /// Ends a line: an optional location comment, then a line break or the end of input.
    fn end_line(&mut self, what: &str) -> Result<Option<String>, ParseError> {
        let loc = match &self.peek().tok {
            Tok::Loc(loc) => {
                let loc = loc.clone();
                self.next();
                Some(loc)
            }
            _ => None,
        };
        match self.peek().tok {
            Tok::Newline => {
                self.next();
                Ok(loc)
            }
            Tok::Eof => Ok(loc),
            _ => Err(self.expected(&format!("end of line after {what}"))),
        }
    }

    /// `dtype[d0,d1,...]`, its dims evaluated at the graph's hints.
    fn ty(&mut self) -> Result<(TensorType, Pos), ParseError> {
        let (dtype, dims, pos) = self.ty_parts()?;
        Ok((self.make_ty(dtype, dims, pos)?, pos))
    }

    /// A type from its parts: symbolic dims are evaluated at the graph's hints.
    fn make_ty(&self, dtype: DType, dims: DimsText, pos: Pos) -> Result<TensorType, ParseError> {
        let ty = match dims {
            DimsText::Plain(dims) => TensorType::new(dtype, dims),
            DimsText::Symbolic(text, at) => TensorType::new(dtype, symbolic_shape(&text, at, &self.g)?),
        };
        if checked_numel(ty.shape.dims()).is_none() {
            return Err(pos.err(format!("type {ty} has more elements than fit in memory")));
        }
        Ok(ty)
    }

    /// `dtype[d0,d1,...]` as written.
    fn ty_parts(&mut self) -> Result<(DType, DimsText, Pos), ParseError> {
        let t = self.next();
        let pos = Pos::of(&t);
        let dtype = match &t.tok {
            Tok::Word(w) => DType::parse(w).ok_or_else(|| {
                pos.err(format!("unknown dtype `{w}` (expected bool, i32, i64, f16, bf16, f32 or f64)"))
            })?,
            _ => return Err(pos.err(format!("expected a type like `f32[2,3]`, found {}", t.describe()))),
        };
        if let Tok::Dims(text) = &self.peek().tok {
            let text = text.clone();
            let at = Pos::of(self.peek());
            self.next();
            return Ok((dtype, DimsText::Symbolic(text, at), pos));
        }
        self.expect_punct('[', &format!("`[` after `{dtype}`"))?;
        let mut dims = Vec::new();
        if !self.is_punct(']') {
            loop {
                let t = self.next();
                match &t.tok {
                    Tok::Number(n) => dims.push(n.parse::<usize>().map_err(|_| {
                        Pos::of(&t).err(format!("bad dimension `{n}`: expected a non-negative integer"))
                    })?),
                    _ => return Err(Pos::of(&t).err(format!("expected a dimension, found {}", t.describe()))),
                }
                if !self.is_punct(',') {
                    break;
                }
                self.next();
            }
        }
        self.expect_punct(']', "`,` or `]` in the shape")?;
        Ok((dtype, DimsText::Plain(dims), pos))
    }

    /// A value reference: `%name`, defined earlier.
    fn use_value(&mut self, t: &Token) -> Result<NodeId, ParseError> {
        match &t.tok {
            Tok::Value(key) => match self.values.get(key) {
                Some((id, _)) => Ok(*id),
                None => Err(Pos::of(t).err(format!("undefined value `{}`", t.text))),
            },
            _ => Err(Pos::of(t).err(format!("expected a value `%name`, found {}", t.describe()))),
        }
    }

    /// Records a definition of `key`, rejecting a second one.
    fn define(&mut self, t: &Token, key: Key, id: NodeId) -> Result<(), ParseError> {
        if let Some((_, first)) = self.values.get(&key) {
            return Err(Pos::of(t).err(format!(
                "duplicate definition of `{}` (first defined at {}:{})",
                t.text, first.line, first.col
            )));
        }
        self.values.insert(key, (id, Pos::of(t)));
        Ok(())
    }

    /// `graph @name(%a: type, ...) {`.
    fn header(&mut self) -> Result<(), ParseError> {
        self.skip_blank();
        match &self.peek().tok {
            Tok::Word(w) if w == "graph" => {
                self.next();
            }
            _ => return Err(self.expected("`graph`")),
        }
        match &self.peek().tok {
            Tok::Global(name) => {
                self.g = Graph::new(name.clone());
                self.next();
            }
            _ => return Err(self.expected("the graph's name `@name`")),
        }
        self.expect_punct('(', "`(` after the graph's name")?;
        self.skip_blank();
        // Inputs are added after the `where` clause, which declares the symbols their types use.
        let mut inputs = Vec::new();
        if !self.is_punct(')') {
            loop {
                let t = self.next();
                let Tok::Value(key) = &t.tok else {
                    return Err(Pos::of(&t).err(format!("expected an input `%name`, found {}", t.describe())));
                };
                let key = key.clone();
                self.expect_punct(':', &format!("`:` and a type after `{}`", t.text))?;
                inputs.push((t, key, self.ty_parts()?));
                self.skip_blank();
                if !self.is_punct(',') {
                    break;
                }
                self.next();
                self.skip_blank();
            }
        }
        self.expect_punct(')', "`,` or `)` in the inputs")?;
        if let Tok::Where(decls) = &self.peek().tok {
            let (decls, pos) = (decls.clone(), Pos::of(self.peek()));
            self.next();
            self.declare_symbols(&decls, pos)?;
        }
        for (t, key, (dtype, dims, pos)) in inputs {
            let ty = self.make_ty(dtype, dims, pos)?;
            let id = self.g.add_input(key.clone().into_name(), ty);
            self.node_pos.insert(id, Pos::of(&t));
            self.define(&t, key, id)?;
        }
        self.expect_punct('{', "`{` after the inputs")?;
        self.end_line("`{`")?;
        Ok(())
    }

    /// `where B:1..=64 = 8, T:2.. = 5`: symbols with their ranges and hints.
    fn declare_symbols(&mut self, decls: &str, pos: Pos) -> Result<(), ParseError> {
        for decl in decls.split(',') {
            let bad =
                |message: String| pos.err(format!("bad symbol declaration `{}`: {message}", decl.trim()));
            let Some((symbol, hint)) = decl.rsplit_once('=').filter(|(s, _)| !s.ends_with('.')) else {
                return Err(bad("expected `NAME:LO..=HI = HINT`".into()));
            };
            let symbol = crate::sym::Symbol::parse(symbol).map_err(|e| bad(e.to_string()))?;
            let hint = hint.trim().parse::<u64>().map_err(|_| bad(format!("bad hint `{}`", hint.trim())))?;
            self.g.declare_symbol(symbol, hint).map_err(|e| bad(e.to_string()))?;
        }
        Ok(())
    }

    /// `%name = op items : type [; at loc]`.
    fn statement(&mut self, def: Token, key: Key) -> Result<(), ParseError> {
        self.expect_punct('=', &format!("`=` after `{}`", def.text))?;
        let t = self.next();
        let Tok::Word(op_name) = t.tok.clone() else {
            return Err(Pos::of(&t).err(format!("expected an op name, found {}", t.describe())));
        };
        let mut stmt = Stmt {
            op_name,
            op_pos: Pos::of(&t),
            operands: Vec::new(),
            literals: Vec::new(),
            attrs: Vec::new(),
            ty: TensorType::new(DType::F32, Shape::scalar()),
            ty_pos: Pos::of(&t),
        };
        if !self.is_punct(':') {
            loop {
                self.item(&mut stmt)?;
                if self.is_punct(',') {
                    self.next();
                } else if self.is_punct(':') {
                    break;
                } else {
                    return Err(self.expected("`,` or `:` and the result type"));
                }
            }
        }
        self.next();
        let (ty, ty_pos) = self.ty()?;
        stmt.ty = ty;
        stmt.ty_pos = ty_pos;
        let loc = self.end_line("the result type")?;
        let op = build_op(&mut stmt, &self.protos, &self.functions, &self.g)?;
        let arg_tys: Vec<&TensorType> = stmt.operands.iter().map(|&a| self.g.ty(a)).collect();
        check_sizes(&op, &arg_tys, stmt.op_pos)?;
        let arg_text: Vec<String> = arg_tys.iter().map(|t| t.to_string()).collect();
        let id = self.g.add_at(op, &stmt.operands, loc).map_err(|e| stmt.op_pos.err(e.to_string()))?;
        let inferred = self.g.ty(id);
        if *inferred != stmt.ty {
            let of = match arg_text.len() {
                0 => String::new(),
                1 => format!(" of {}", arg_text[0]),
                n => format!(" of {} and {}", arg_text[..n - 1].join(", "), arg_text[n - 1]),
            };
            return Err(stmt
                .ty_pos
                .err(format!("annotated {} but {}{of} gives {inferred}", stmt.ty, stmt.op_name)));
        }
        self.node_pos.insert(id, Pos::of(&def));
        self.define(&def, key, id)
    }

    /// One item after the op name: an operand, a literal or `key=value`.
    fn item(&mut self, stmt: &mut Stmt) -> Result<(), ParseError> {
        let t = self.next();
        let pos = Pos::of(&t);
        match &t.tok {
            Tok::Value(_) => {
                if let Some((key, _, _)) = stmt.attrs.first() {
                    return Err(
                        pos.err(format!("operand `{}` after attribute `{key}`: operands come first", t.text))
                    );
                }
                let id = self.use_value(&t)?;
                stmt.operands.push(id);
            }
            Tok::Word(key) if self.is_punct('=') => {
                self.next();
                if stmt.attrs.iter().any(|(k, _, _)| k == key) {
                    return Err(pos.err(format!("duplicate attribute `{key}`")));
                }
                let value = self.attr_value(key)?;
                stmt.attrs.push((key.clone(), pos, value));
            }
            Tok::Word(text) | Tok::Number(text) => stmt.literals.push((text.clone(), pos)),
            _ => {
                return Err(pos.err(format!(
                    "expected an operand `%v`, a constant or `key=value`, found {}",
                    t.describe()
                )))
            }
        }
        Ok(())
    }

    /// An attribute's value: an integer or a list `[i, j, ...]`.
    fn attr_value(&mut self, key: &str) -> Result<AttrValue, ParseError> {
        let t = self.next();
        match &t.tok {
            Tok::Number(n) => Ok(AttrValue::Int(n.clone(), Pos::of(&t))),
            Tok::Global(name) => Ok(AttrValue::Global(name.clone(), Pos::of(&t))),
            Tok::Dims(text) => Ok(AttrValue::Dims(text.clone(), Pos::of(&t))),
            Tok::Punct('[') => {
                let mut items = Vec::new();
                if !self.is_punct(']') {
                    loop {
                        let t = self.next();
                        match &t.tok {
                            Tok::Number(n) => items.push((n.clone(), Pos::of(&t))),
                            _ => {
                                return Err(Pos::of(&t).err(format!(
                                    "bad attribute `{key}`: expected an integer, found {}",
                                    t.describe()
                                )))
                            }
                        }
                        if !self.is_punct(',') {
                            break;
                        }
                        self.next();
                    }
                }
                self.expect_punct(']', &format!("`,` or `]` in attribute `{key}`"))?;
                Ok(AttrValue::List(items))
            }
            _ => Err(Pos::of(&t).err(format!(
                "bad attribute `{key}`: expected an integer or a list `[...]`, found {}",
                t.describe()
            ))),
        }
    }

    /// The body: definitions, then `return`, then `}`.
    fn body(&mut self) -> Result<(), ParseError> {
        loop {
            self.skip_blank();
            match &self.peek().tok {
                Tok::Value(key) => {
                    let key = key.clone();
                    let def = self.next();
                    self.statement(def, key)?;
                }
                Tok::Word(w) if w == "return" => break,
                Tok::Punct('}') => {
                    let t = self.peek();
                    return Err(Pos::of(t).err("missing `return` before `}`"));
                }
                _ => return Err(self.expected("a definition `%name = ...` or `return`")),
            }
        }
        self.next();
        let mut outputs = Vec::new();
        if !matches!(self.peek().tok, Tok::Newline | Tok::Loc(_) | Tok::Eof) {
            loop {
                let t = self.next();
                outputs.push(self.use_value(&t)?);
                if !self.is_punct(',') {
                    break;
                }
                self.next();
            }
        }
        self.g.set_outputs(outputs);
        self.end_line("the returned values")?;
        self.skip_blank();
        self.expect_punct('}', "`}` after `return`")?;
        self.skip_blank();
        Ok(())
    }

    /// Graphs until the end of the input: each one but the last is a loop body the graphs
    /// after it may name (`body=@name`); the last is the graph parsed.
    fn graphs(&mut self) -> Result<(), ParseError> {
        loop {
            let start = self.peek().clone();
            self.header()?;
            self.body()?;
            if self.peek().tok == Tok::Eof {
                return Ok(());
            }
            if !matches!(&self.peek().tok, Tok::Word(w) if w == "graph") {
                return Err(self.expected("end of input after the graph's `}`"));
            }
            let g = std::mem::replace(&mut self.g, Graph::new(""));
            let name = g.name().to_string();
            if self.functions.iter().any(|(n, _)| *n == name) {
                return Err(Pos::of(&start).err(format!("duplicate graph `@{name}`")));
            }
            let body = Body::new(g).map_err(|e| Pos::of(&start).err(e.to_string()))?;
            self.functions.push((name, body));
            self.values.clear();
            self.node_pos.clear();
        }
    }
}

/// Parses one graph, after the loop bodies it names; see [`crate::text::parse`].
pub(crate) fn parse(text: &str) -> Result<Graph, ParseError> {
    parse_with_lines(text).map(|(g, _)| g)
}

/// Parses one graph, with the line and column where each node is defined; see
/// [`crate::text::parse_with_lines`].
pub(crate) fn parse_with_lines(text: &str) -> Result<(Graph, super::Lines), ParseError> {
    let (tokens, lex_error) = lex(text);
    let mut p = Parser {
        tokens,
        pos: 0,
        protos: prototypes(),
        g: Graph::new(""),
        values: HashMap::new(),
        node_pos: HashMap::new(),
        functions: Vec::new(),
    };
    // Report the first error in the text: the parser's, if it stops before the lexer did.
    if let Err(e) = p.graphs() {
        return Err(match lex_error {
            Some(l) if (l.line, l.col) <= (e.line, e.col) => l,
            _ => e,
        });
    }
    if let Some(l) = lex_error {
        return Err(l);
    }
    if let Err(errors) = verify(&p.g) {
        let e = &errors.0[0];
        let pos = e.node.and_then(|n| p.node_pos.get(&n).copied()).unwrap_or(Pos { line: 1, col: 1 });
        return Err(pos.err(format!("the graph does not verify: {}", e.message)));
    }
    let lines = p.node_pos.iter().map(|(&n, pos)| (n, (pos.line, pos.col))).collect();
    Ok((p.g, lines))
}
