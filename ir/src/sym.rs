//! Symbolic dimensions: named, bounded size symbols and canonical integer expressions over them.
//!
//! A [`Symbol`] is a size variable with a name and an inclusive range (`T:1..=64`, or `T:1..`
//! when unbounded above), as tinygrad's `Variable("start_pos", 1, max_context)`; a [`Symbols`]
//! table holds a graph's symbols. A [`SymExpr`] is an integer expression over symbols (sums,
//! products, floor division and remainder by positive constants) kept in one canonical form, so
//! that equal expressions are equal values (`B*T + T == T*(B + 1)`), hash alike and print alike;
//! a [`Dim`] is one dimension of a shape, a constant or such an expression. Everything is checked
//! arithmetic: construction reports [`SymError::Overflow`] and [`SymExpr::eval`] returns `None`
//! rather than wrap or panic. What the module keeps true: every `SymExpr` value is canonical,
//! every printed expression parses back to the same value, and no input panics.
//!
//! Decisions are three-valued where a verifier needs them: [`SymExpr::equality`] answers
//! [`Equality::Proven`] (equal as expressions, or the symbols' ranges force it),
//! [`Equality::Disproven`] (the difference is a nonzero constant, its bounds exclude zero, or
//! its coefficients' gcd does not divide its constant), or [`Equality::NeedsGuard`] with the two
//! sides, for a caller that can check them at run time. [`SymExpr::bounds`] is exact for
//! monotone forms and conservative otherwise; [`SymExpr::divides`] answers when provable.
//!
//! # Where it plugs in
//!
//! * **Shapes.** A [`crate::types::Shape`] keeps its sizes as `usize`s and, when symbolic, the
//!   [`Dim`] of each: the sizes are the expressions' values at the graph's *hints* (the sizes it
//!   was traced or declared with), so code that knows nothing of symbols sees one valid instance.
//!   A graph declares its symbols with their hints ([`crate::Graph::declare_symbol`]), printed
//!   after its inputs (`graph @f(%x: f32[B,784]) where B:1..=64 = 8`); the text IR reads a
//!   bracket of dims with [`SymExpr::parse`], whose `%` is a remainder, not a value.
//! * **Type rules.** Every node is typed at the hints by [`crate::Op::infer`] and for every
//!   binding by the symbolic rules (`ops/symbolic.rs`): equal dims ask
//!   [`SymExpr::equality`] (`Disproven` is an error, `NeedsGuard` adds a
//!   [`crate::ops::Guard`]), a slice of a symbolic axis must stay inside it for every size,
//!   a reshape needs equal element counts. A `size` op is a value of an expression (a mean's
//!   count); slices carry symbolic starts and sizes ([`crate::ops::SliceBounds`]).
//! * **Binding.** [`crate::Graph::bind`] evaluates every expression at a binding (checked
//!   against the ranges and the guards) into a concrete graph; the interpreter and
//!   `tenjit::run_graph` bind from their inputs' shapes.
//! * **Generalization.** [`crate::graph::generalize`] writes the symbolic graph two concrete
//!   graphs of one structure are instances of, and [`crate::Graph::instance_bindings`]
//!   checks later ones: the runtime's automatic dynamic shapes.
//! * **Not yet:** the lowering keeps concrete sizes, so a symbolic graph compiles per binding.
//!   The plan for the kernel IR: lower a symbolic graph with sizes that carry their expressions
//!   beside their hint values (views, spaces, matmul sizes), deciding on expressions (proven
//!   equal or guarded) rather than on hint values, so that a program instantiated at a binding
//!   is the program of the bound graph; CPU kernels already read their sizes from a table
//!   filled per kernel, which per-launch evaluation then fills.

mod bounds;
mod expr;
mod text;

pub use bounds::Bounds;
pub use expr::SymExpr;

use std::collections::BTreeMap;
use std::fmt;

/// Values bound to symbols, by name.
pub type Bindings = BTreeMap<String, u64>;

/// What went wrong building, parsing or binding a symbolic expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SymError {
    /// A coefficient or constant left `-i64::MAX..=i64::MAX` in the named operation.
    Overflow(&'static str),
    /// A floor division or remainder by zero or by a constant too large for `i64`.
    BadDivisor {
        /// `floor_div` or `rem`.
        op: &'static str,
        /// The divisor given.
        divisor: u64,
    },
    /// A symbol name that is not `[A-Za-z_][A-Za-z0-9_]*`.
    BadName(String),
    /// A symbol whose range is empty (`lo > hi`).
    EmptyRange {
        /// The symbol.
        name: String,
        /// Its lower end.
        lo: u64,
        /// Its upper end.
        hi: u64,
    },
    /// A symbol declared twice in one table.
    Duplicate(String),
    /// A symbol that is not in the table.
    Unknown(String),
    /// A binding outside its symbol's range, or a symbol with no binding (`value` is `None`).
    Binding {
        /// The symbol.
        symbol: Symbol,
        /// The value bound, if any.
        value: Option<u64>,
    },
    /// A dimension that is a negative constant.
    Negative(i64),
    /// Text that does not parse.
    Parse {
        /// Column, from 1, in characters.
        col: usize,
        /// What was expected and what was found.
        message: String,
    },
}

impl fmt::Display for SymError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SymError::Overflow(op) => write!(f, "{op}: a coefficient overflows i64"),
            SymError::BadDivisor { op, divisor } => {
                write!(f, "{op}: the divisor must be a positive integer up to {}, not {divisor}", i64::MAX)
            }
            SymError::BadName(name) => write!(f, "`{name}` is not a symbol name ([A-Za-z_][A-Za-z0-9_]*)"),
            SymError::EmptyRange { name, lo, hi } => write!(f, "symbol {name}: empty range {lo}..={hi}"),
            SymError::Duplicate(name) => write!(f, "symbol {name} is declared twice"),
            SymError::Unknown(name) => write!(f, "unknown symbol {name}"),
            SymError::Binding { symbol, value: Some(v) } => {
                write!(f, "{} = {v} is outside {symbol}", symbol.name)
            }
            SymError::Binding { symbol, value: None } => write!(f, "symbol {symbol} has no value"),
            SymError::Negative(v) => write!(f, "a dimension cannot be negative ({v})"),
            SymError::Parse { col, message } => write!(f, "column {col}: {message}"),
        }
    }
}

impl std::error::Error for SymError {}

/// The answer to "are these two expressions equal for every binding?".
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Equality {
    /// Equal for every binding in the symbols' ranges.
    Proven,
    /// Different for every binding in the symbols' ranges.
    Disproven,
    /// Undecided: equal only when the guard `.0 == .1` holds at run time.
    NeedsGuard(SymExpr, SymExpr),
}

/// A named size variable with an inclusive range; `hi == None` is unbounded above.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Symbol {
    /// The name, `[A-Za-z_][A-Za-z0-9_]*`.
    pub name: String,
    /// The least value.
    pub lo: u64,
    /// The greatest value, or `None` if unbounded.
    pub hi: Option<u64>,
}

impl Symbol {
    /// The symbol `name` ranging over `lo..=hi` (`hi == None`: `lo..`), checked.
    pub fn new(name: &str, lo: u64, hi: Option<u64>) -> Result<Symbol, SymError> {
        SymExpr::symbol(name)?;
        if let Some(hi) = hi.filter(|&hi| hi < lo) {
            return Err(SymError::EmptyRange { name: name.to_string(), lo, hi });
        }
        Ok(Symbol { name: name.to_string(), lo, hi })
    }

    /// The expression that is this symbol.
    pub fn expr(&self) -> SymExpr {
        SymExpr::symbol(&self.name).unwrap_or_default()
    }

    /// Parses the text form `Display` prints: `T:1..=64`, or `T:1..` when unbounded.
    ///
    /// ```
    /// use tenjit_ir::sym::Symbol;
    /// assert_eq!(Symbol::parse("T:1..=64").unwrap(), Symbol::new("T", 1, Some(64)).unwrap());
    /// assert_eq!(Symbol::parse(" B : 2.. ").unwrap().to_string(), "B:2..");
    /// assert!(Symbol::parse("B:5..=2").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Symbol, SymError> {
        let bad =
            |message: &str| SymError::Parse { col: 1, message: format!("{message} in `{}`", text.trim()) };
        let (name, range) =
            text.split_once(':').ok_or_else(|| bad("expected `NAME:LO..=HI` or `NAME:LO..`"))?;
        let (lo, hi) = range.split_once("..").ok_or_else(|| bad("expected a range `LO..=HI` or `LO..`"))?;
        let number = |t: &str| t.trim().parse::<u64>().map_err(|_| bad("expected a non-negative integer"));
        let hi = match hi.trim() {
            "" => None,
            h => {
                Some(number(h.strip_prefix('=').ok_or_else(|| bad("expected `..=` before the upper end"))?)?)
            }
        };
        Symbol::new(name.trim(), number(lo)?, hi)
    }

    /// Whether `value` is in the range.
    pub fn contains(&self, value: u64) -> bool {
        self.lo <= value && self.hi.is_none_or(|hi| value <= hi)
    }
}

impl fmt::Display for Symbol {
    /// `T:1..=64`, or `T:1..` when unbounded.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.hi {
            Some(hi) => write!(f, "{}:{}..={hi}", self.name, self.lo),
            None => write!(f, "{}:{}..", self.name, self.lo),
        }
    }
}

/// A table of symbols by name, iterated in name order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Symbols {
    table: BTreeMap<String, Symbol>,
}

impl Symbols {
    /// An empty table.
    pub fn new() -> Symbols {
        Symbols::default()
    }

    /// Declares `symbol`; a second symbol of the same name is an error.
    pub fn insert(&mut self, symbol: Symbol) -> Result<(), SymError> {
        if self.table.contains_key(&symbol.name) {
            return Err(SymError::Duplicate(symbol.name));
        }
        self.table.insert(symbol.name.clone(), symbol);
        Ok(())
    }

    /// The symbol named `name`.
    pub fn get(&self, name: &str) -> Option<&Symbol> {
        self.table.get(name)
    }

    /// Lowers the greatest value of the symbol `name` to `hi` (no change if it is at most
    /// `hi` already); an unknown name or a range left empty is an error.
    pub fn narrow(&mut self, name: &str, hi: u64) -> Result<(), SymError> {
        let symbol = self.table.get_mut(name).ok_or_else(|| SymError::Unknown(name.to_string()))?;
        if hi < symbol.lo {
            return Err(SymError::EmptyRange { name: name.to_string(), lo: symbol.lo, hi });
        }
        symbol.hi = Some(symbol.hi.map_or(hi, |h| h.min(hi)));
        Ok(())
    }

    /// Raises the least value of the symbol `name` to `lo` (no change if it is at least `lo`
    /// already); an unknown name or a range left empty is an error.
    pub fn narrow_below(&mut self, name: &str, lo: u64) -> Result<(), SymError> {
        let symbol = self.table.get_mut(name).ok_or_else(|| SymError::Unknown(name.to_string()))?;
        if let Some(hi) = symbol.hi.filter(|&hi| hi < lo) {
            return Err(SymError::EmptyRange { name: name.to_string(), lo, hi });
        }
        symbol.lo = symbol.lo.max(lo);
        Ok(())
    }

    /// The symbols in name order.
    pub fn iter(&self) -> impl Iterator<Item = &Symbol> {
        self.table.values()
    }

    /// Checks that every symbol of `expr` is declared, naming the first that is not.
    pub fn check(&self, expr: &SymExpr) -> Result<(), SymError> {
        match expr.symbols().into_iter().find(|name| !self.table.contains_key(name)) {
            Some(name) => Err(SymError::Unknown(name)),
            None => Ok(()),
        }
    }

    /// Checks that every symbol is bound to a value in its range, naming the first that is not.
    pub fn check_bindings(&self, bindings: &Bindings) -> Result<(), SymError> {
        for symbol in self.table.values() {
            let value = bindings.get(&symbol.name).copied();
            if !value.is_some_and(|v| symbol.contains(v)) {
                return Err(SymError::Binding { symbol: symbol.clone(), value });
            }
        }
        Ok(())
    }
}

/// One dimension of a shape: a constant size, or a nonconstant expression over symbols.
///
/// The constant case holds no expression, so a static shape costs what it costs today.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Dim(DimRepr);

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum DimRepr {
    Const(u64),
    Expr(Box<SymExpr>),
}

impl From<u64> for Dim {
    fn from(size: u64) -> Dim {
        Dim(DimRepr::Const(size))
    }
}

impl Dim {
    /// The dimension `expr`; a constant expression becomes a constant, a negative one an error.
    pub fn from_expr(expr: SymExpr) -> Result<Dim, SymError> {
        match expr.as_const() {
            Some(v) => u64::try_from(v).map(Dim::from).map_err(|_| SymError::Negative(v)),
            None => Ok(Dim(DimRepr::Expr(Box::new(expr)))),
        }
    }

    /// The size, if constant.
    pub fn as_const(&self) -> Option<u64> {
        match &self.0 {
            DimRepr::Const(v) => Some(*v),
            DimRepr::Expr(_) => None,
        }
    }

    /// The dimension as an expression; `None` for a constant above `i64::MAX`.
    pub fn expr(&self) -> Option<SymExpr> {
        match &self.0 {
            DimRepr::Const(v) => SymExpr::constant(i64::try_from(*v).ok()?).ok(),
            DimRepr::Expr(e) => Some((**e).clone()),
        }
    }

    /// The size under `bindings` (see [`SymExpr::eval`]).
    pub fn eval(&self, bindings: &Bindings) -> Option<u64> {
        match &self.0 {
            DimRepr::Const(v) => Some(*v),
            DimRepr::Expr(e) => e.eval(bindings),
        }
    }

    /// Parses a dimension's text form (the grammar of [`SymExpr::parse`]).
    pub fn parse(text: &str) -> Result<Dim, SymError> {
        Dim::from_expr(SymExpr::parse(text)?)
            .map_err(|err| SymError::Parse { col: 1, message: err.to_string() })
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            DimRepr::Const(v) => write!(f, "{v}"),
            DimRepr::Expr(e) => write!(f, "{e}"),
        }
    }
}
