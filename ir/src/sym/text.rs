//! The text form of symbolic expressions: a printer and a parser that round-trip exactly.
//!
//! The grammar is Python's integer arithmetic, without commas or brackets so that a dimension
//! can sit in a shape list (`f32[B*T,(T + 1)//2]`):
//!
//! ```text
//! expr   := term (("+" | "-") term)*
//! term   := factor (("*" | "//" | "%") factor)*       left-associative; the right operand of
//!                                                     `//` and `%` is a positive constant
//! factor := INTEGER | NAME | "-" factor | "(" expr ")"
//! NAME   := [A-Za-z_][A-Za-z0-9_]*
//! ```
//!
//! The printer writes the canonical form: nonconstant terms in canonical order, then the
//! constant; `+` and `-` with spaces, `*`, `//` and `%` without; a product repeats a factor for
//! a power (`T*T`). A division or remainder is bare only as the first factor of a term with
//! coefficient one (`T//2*B`), and in parentheses elsewhere (`B*(T//2)`, `-(T%4)`), so the
//! left-to-right grammar reads back the same tree. `parse(print(e)) == e` for every `e` whose
//! parentheses and unary minus nest at most 64 deep, the parser's limit (deeper text is an error,
//! never a stack overflow).

use super::expr::{Atom, Monomial, SymExpr};
use super::SymError;
use std::fmt;

/// How deeply parentheses and unary minus may nest, so hostile text cannot exhaust the stack.
const MAX_DEPTH: usize = 64;

fn write_atom(f: &mut fmt::Formatter<'_>, atom: &Atom, bare: bool) -> fmt::Result {
    let (x, op, d) = match atom {
        Atom::Sym(name) => return f.write_str(name),
        Atom::Div(x, d) => (x, "//", d),
        Atom::Rem(x, d) => (x, "%", d),
    };
    let open = if bare { "" } else { "(" };
    let close = if bare { "" } else { ")" };
    match x.single_atom() {
        Some(Atom::Sym(name)) => write!(f, "{open}{name}{op}{d}{close}"),
        _ => write!(f, "{open}({x}){op}{d}{close}"),
    }
}

/// Writes `magnitude * m`; `negated` says a unary minus precedes it.
fn write_term(f: &mut fmt::Formatter<'_>, m: &Monomial, magnitude: u64, negated: bool) -> fmt::Result {
    if m.0.is_empty() {
        return write!(f, "{magnitude}");
    }
    let mut started = magnitude != 1;
    if started {
        write!(f, "{magnitude}")?;
    }
    for (atom, power) in &m.0 {
        for _ in 0..*power {
            if started {
                f.write_str("*")?;
            }
            write_atom(f, atom, !started && !negated)?;
            started = true;
        }
    }
    Ok(())
}

impl fmt::Display for SymExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.terms.is_empty() {
            return f.write_str("0");
        }
        let nonconst = self.terms.iter().filter(|(m, _)| !m.0.is_empty());
        let constant = self.terms.iter().filter(|(m, _)| m.0.is_empty());
        for (i, (m, &c)) in nonconst.chain(constant).enumerate() {
            let negated = i == 0 && c < 0;
            match (i, c < 0) {
                (0, false) => {}
                (0, true) => f.write_str("-")?,
                (_, false) => f.write_str(" + ")?,
                (_, true) => f.write_str(" - ")?,
            }
            write_term(f, m, c.unsigned_abs(), negated)?;
        }
        Ok(())
    }
}

/// A token of the expression grammar.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Tok<'a> {
    Num(&'a str),
    Name(&'a str),
    Punct(&'static str),
    Other(char),
    End,
}

struct Parser<'a> {
    src: &'a str,
    /// The byte offset of the next unread character.
    pos: usize,
    depth: usize,
}

impl<'a> Parser<'a> {
    fn col(&self, byte: usize) -> usize {
        self.src[..byte].chars().count() + 1
    }

    fn error(&self, byte: usize, message: String) -> SymError {
        SymError::Parse { col: self.col(byte), message }
    }

    /// The next token, its start and its end, without consuming it.
    fn peek(&self) -> (Tok<'a>, usize, usize) {
        let rest = &self.src[self.pos..];
        let start = self.pos + (rest.len() - rest.trim_start_matches([' ', '\t']).len());
        let rest = &self.src[start..];
        let Some(c) = rest.chars().next() else {
            return (Tok::End, start, start);
        };
        let word = |pred: fn(char) -> bool| rest.find(|c: char| !pred(c)).unwrap_or(rest.len());
        let (tok, len) = match c {
            '0'..='9' => {
                let n = word(|c| c.is_ascii_digit());
                (Tok::Num(&rest[..n]), n)
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let n = word(|c| c.is_ascii_alphanumeric() || c == '_');
                (Tok::Name(&rest[..n]), n)
            }
            '+' => (Tok::Punct("+"), 1),
            '-' => (Tok::Punct("-"), 1),
            '*' => (Tok::Punct("*"), 1),
            '%' => (Tok::Punct("%"), 1),
            '(' => (Tok::Punct("("), 1),
            ')' => (Tok::Punct(")"), 1),
            '/' if rest.starts_with("//") => (Tok::Punct("//"), 2),
            c => (Tok::Other(c), 0),
        };
        (tok, start, start + len)
    }

    fn describe(tok: Tok<'_>) -> String {
        match tok {
            Tok::Num(s) | Tok::Name(s) | Tok::Punct(s) => format!("`{s}`"),
            Tok::Other(c) => format!("`{}`", c.escape_debug()),
            Tok::End => "the end of the expression".to_string(),
        }
    }

    fn overflow(&self, at: usize, e: SymError) -> SymError {
        self.error(at, format!("{e}"))
    }

    fn expr(&mut self) -> Result<SymExpr, SymError> {
        let mut e = self.term()?;
        loop {
            let (tok, start, end) = self.peek();
            let negate = match tok {
                Tok::Punct("+") => false,
                Tok::Punct("-") => true,
                _ => return Ok(e),
            };
            self.pos = end;
            let t = self.term()?;
            let r = if negate { e.sub(&t) } else { e.add(&t) };
            e = r.map_err(|err| self.overflow(start, err))?;
        }
    }

    fn term(&mut self) -> Result<SymExpr, SymError> {
        let mut e = self.factor()?;
        loop {
            let (tok, start, end) = self.peek();
            let op = match tok {
                Tok::Punct(op @ ("*" | "//" | "%")) => op,
                Tok::Other('/') => {
                    return Err(self.error(start, "expected `//` (floor division), found `/`".into()))
                }
                _ => return Ok(e),
            };
            self.pos = end;
            let (_, rhs_start, _) = self.peek();
            let rhs = self.factor()?;
            let r = if op == "*" {
                e.mul(&rhs)
            } else {
                let divisor = rhs.as_const().filter(|&d| d > 0).ok_or_else(|| {
                    let found = self.src[rhs_start..self.pos].trim();
                    self.error(
                        rhs_start,
                        format!("expected a positive integer divisor after `{op}`, found `{found}`"),
                    )
                })?;
                let divisor = divisor as u64;
                if op == "//" {
                    e.floor_div(divisor)
                } else {
                    e.rem(divisor)
                }
            };
            e = r.map_err(|err| self.overflow(start, err))?;
        }
    }

    fn factor(&mut self) -> Result<SymExpr, SymError> {
        let (tok, start, end) = self.peek();
        if self.depth >= MAX_DEPTH {
            return Err(self.error(start, format!("expression nested more than {MAX_DEPTH} deep")));
        }
        self.depth += 1;
        self.pos = end;
        let e = match tok {
            Tok::Num(digits) => match digits.parse::<i64>() {
                Ok(v) => SymExpr::constant(v).map_err(|err| self.overflow(start, err))?,
                Err(_) => {
                    return Err(
                        self.error(start, format!("integer `{digits}` is too large (at most {})", i64::MAX))
                    )
                }
            },
            Tok::Name(name) => SymExpr::symbol(name)?,
            Tok::Punct("-") => self.factor()?.scale(-1).map_err(|err| self.overflow(start, err))?,
            Tok::Punct("(") => {
                let e = self.expr()?;
                let (close, at, after) = self.peek();
                if close != Tok::Punct(")") {
                    let found = Parser::describe(close);
                    return Err(self.error(at, format!("expected an operator or `)`, found {found}")));
                }
                self.pos = after;
                e
            }
            other => {
                self.pos = start;
                let found = Parser::describe(other);
                return Err(
                    self.error(start, format!("expected a number, a symbol, `-` or `(`, found {found}"))
                );
            }
        };
        self.depth -= 1;
        Ok(e)
    }
}

impl SymExpr {
    /// Parses the text form, which must be the whole of `text`, into canonical form. Errors name
    /// the column (from 1, in characters) and what was expected there; an operation that
    /// overflows is an error at its operator's column.
    pub fn parse(text: &str) -> Result<SymExpr, SymError> {
        let (e, end) = SymExpr::parse_prefix(text)?;
        let rest = &text[end..];
        let trimmed = rest.trim_start_matches([' ', '\t']);
        if let Some(c) = trimmed.chars().next() {
            let col = text[..text.len() - trimmed.len()].chars().count() + 1;
            let message =
                format!("expected an operator or the end of the expression, found `{}`", c.escape_debug());
            return Err(SymError::Parse { col, message });
        }
        Ok(e)
    }

    /// Parses the longest expression at the start of `text` and returns it with the byte offset
    /// where it ends, so a shape parser can read a dimension and then expect `,` or `]`. Errors
    /// name columns counted from the start of `text`.
    pub fn parse_prefix(text: &str) -> Result<(SymExpr, usize), SymError> {
        let mut p = Parser { src: text, pos: 0, depth: 0 };
        let e = p.expr()?;
        Ok((e, p.pos))
    }
}
