//! The text form of graphs: [`print()`] writes a [`Graph`] as text and [`parse`] reads it back.
//!
//! The two are exact inverses on printed text: `print(&parse(&print(g))?) == print(g)` for every
//! graph `g` that verifies and whose inputs have distinct names, which the round-trip tests check
//! over hundreds of random graphs. (Locations are kept to one line: the printer turns control
//! characters in them into spaces and trims them.)
//!
//! Printing is deterministic: values are renumbered densely in [`Graph::live_order`] order, dead
//! nodes are left out, nothing iterates a hash map. Parsing rebuilds the graph through
//! [`Graph::add_input`] and [`Graph::add_at`], so every type is re-inferred and an annotation
//! that disagrees with the inferred type is an error: a hand-written file cannot lie about its
//! types. The parser never panics; every problem is a [`ParseError`] with a line and column.
//!
//! ```text
//! graph @mse(%x: f32[4,1], %w: f32[1,1], %y: f32[4,1]) {
//!   %0 = matmul %x, %w : f32[4,1]  ; at examples/tutorial.rs:42
//!   %1 = sub %0, %y : f32[4,1]
//!   %2 = mul %1, %1 : f32[4,1]
//!   %3 = sum %2, axes=[0,1] : f32[]
//!   %4 = const 0.25 : f32[]
//!   %5 = mul %3, %4 : f32[]
//!   return %5
//! }
//! ```
//!
//! The grammar, and every op's operands and attributes, are in `ir/README.md`. In short: one
//! value per line, `%name = op operands, key=value, ... : type`; inputs are named in the
//! signature; `;` starts a comment, and a `; at LOCATION` comment on a value's line is that
//! node's source location. Ops whose attributes would only restate the result type (`const`,
//! `iota`, `rand`, `cast`) take it from the type annotation.

mod lexer;
mod parser;
mod printer;

pub(crate) use printer::{clean_loc, op_text, Listing};

use crate::graph::{Graph, NodeId};
use std::collections::HashMap;
use std::fmt;

/// Prints `g` in the text form, the bodies of its loops first (each once, named
/// `@NAME.loopK`). Never fails: a graph that does not verify prints as far as it
/// can (a cycle is noted in a comment, a missing output prints as `%?N`), so broken graphs can be
/// dumped too.
pub fn print(g: &Graph) -> String {
    printer::print(g)
}

/// Parses the text form of one graph, re-inferring every type, then verifies it. The text may
/// define loop bodies first, as graphs the last one's `loop` ops name (`body=@name`), as
/// [`print()`] writes them.
pub fn parse(text: &str) -> Result<Graph, ParseError> {
    parser::parse(text)
}

/// The line and column (1-based, columns in characters) where each node of a parsed graph is
/// defined.
pub type Lines = HashMap<NodeId, (usize, usize)>;

/// [`parse`], also giving the line and column (1-based, columns in characters) where each
/// node is defined, inputs included, so a tool can point at the text of a node an
/// evaluation error names.
pub fn parse_with_lines(text: &str) -> Result<(Graph, Lines), ParseError> {
    parser::parse_with_lines(text)
}

/// An error in IR text: where it is (1-based line and column, columns counted in characters)
/// and what was expected and found there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1, in characters.
    pub col: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.col, self.message)
    }
}

impl std::error::Error for ParseError {}

impl fmt::Display for Graph {
    /// The text form, as [`print()`] writes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&print(self))
    }
}
