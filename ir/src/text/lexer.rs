//! The lexer: IR text to tokens, each with its line and column.
//!
//! Line breaks are tokens, since the text form has one statement per line. Comments (`;` to end
//! of line) are dropped, except a `; at LOCATION` comment, which becomes a [`Tok::Loc`] token so
//! the parser can attach it to the value defined on that line.

use super::ParseError;

/// A value name after `%`: digits (`%3`) or a name (`%x`, `%"a b"`). The two never collide.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    /// `%` and digits.
    Num(String),
    /// `%` and a bare or quoted name.
    Name(String),
}

impl Key {
    /// The name this key gives an input.
    pub(crate) fn into_name(self) -> String {
        match self {
            Key::Num(s) | Key::Name(s) => s,
        }
    }
}

/// What a token is.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Tok {
    /// `%name`.
    Value(Key),
    /// `@name`.
    Global(String),
    /// A word: `[A-Za-z_][A-Za-z0-9_.]*` (op names, keys, dtypes, `nan`, `true`).
    Word(String),
    /// A number as written (`3`, `-0.25`, `1e-45`, `-inf`).
    Number(String),
    /// One of `( ) { } [ ] , : =`.
    Punct(char),
    /// A bracket holding symbolic dims, `[B,T*2,784]`: its contents, read by the parser of
    /// [`crate::sym::SymExpr`] (whose `%` is a remainder, not a value). A bracket of plain
    /// integers is punctuation and numbers instead.
    Dims(String),
    /// A graph's symbol declarations after the word `where` that follows its inputs, up to
    /// the `{` that opens the body: `B:1..=64 = 8, T:2.. = 5`.
    Where(String),
    /// A `; at LOCATION` comment.
    Loc(String),
    /// A line break.
    Newline,
    /// The end of the text.
    Eof,
}

/// A token with its position and source text.
#[derive(Clone, Debug)]
pub(crate) struct Token {
    /// What it is.
    pub(crate) tok: Tok,
    /// Line, from 1.
    pub(crate) line: usize,
    /// Column, from 1.
    pub(crate) col: usize,
    /// The text it was read from.
    pub(crate) text: String,
}

impl Token {
    /// How an error message names this token.
    pub(crate) fn describe(&self) -> String {
        match self.tok {
            Tok::Newline | Tok::Loc(_) => "end of line".to_string(),
            Tok::Eof => "end of input".to_string(),
            _ => format!("`{}`", self.text),
        }
    }
}

struct Lexer<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    line: usize,
    col: usize,
}

impl Lexer<'_> {
    fn peek(&mut self) -> Option<char> {
        self.chars.peek().copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.chars.next()?;
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    fn take_while(&mut self, text: &mut String, f: impl Fn(char) -> bool) {
        while let Some(c) = self.peek().filter(|&c| f(c)) {
            text.push(c);
            self.bump();
        }
    }

    /// Reads a quoted name after its opening `"` (already in `text`); returns its value.
    fn quoted(&mut self, text: &mut String, line: usize, col: usize) -> Result<String, ParseError> {
        let mut value = String::new();
        let unterminated =
            || ParseError { line, col, message: "unterminated quoted name: expected a closing `\"`".into() };
        loop {
            let c = match self.peek() {
                None | Some('\n') => return Err(unterminated()),
                Some(c) => c,
            };
            let (el, ec) = (self.line, self.col);
            self.bump();
            text.push(c);
            match c {
                '"' => return Ok(value),
                '\\' => {
                    let e = self.bump().ok_or_else(unterminated)?;
                    text.push(e);
                    let bad = |what: String| ParseError { line: el, col: ec, message: what };
                    match e {
                        '\\' => value.push('\\'),
                        '"' => value.push('"'),
                        'n' => value.push('\n'),
                        't' => value.push('\t'),
                        'r' => value.push('\r'),
                        'u' => {
                            let mut hex = String::new();
                            if self.bump() != Some('{') {
                                return Err(bad("bad escape: expected `\\u{HEX}`".into()));
                            }
                            self.take_while(&mut hex, |c| c.is_ascii_hexdigit());
                            if self.bump() != Some('}') {
                                return Err(bad("bad escape: expected `\\u{HEX}`".into()));
                            }
                            text.push_str(&format!("{{{hex}}}"));
                            let ch = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32);
                            value.push(
                                ch.ok_or_else(|| bad(format!("bad escape: `\\u{{{hex}}}` is no character")))?,
                            );
                        }
                        '\n' => return Err(unterminated()),
                        e => {
                            return Err(bad(format!(
                                "bad escape `\\{e}`: expected one of \\\\ \\\" \\n \\t \\r \\u{{HEX}}"
                            )))
                        }
                    }
                }
                c => value.push(c),
            }
        }
    }

    /// Reads a name after `%` or `@`: digits, a bare name or a quoted name.
    fn name(&mut self, text: &mut String, sigil: char) -> Result<Key, ParseError> {
        let (line, col) = (self.line, self.col);
        match self.peek() {
            Some(c) if c.is_ascii_digit() => {
                let mut digits = String::new();
                self.take_while(&mut digits, |c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
                text.push_str(&digits);
                if !digits.chars().all(|c| c.is_ascii_digit()) {
                    return Err(ParseError {
                        line,
                        col: col - 1,
                        message: format!(
                            "bad name `{sigil}{digits}`: a name starting with a digit is all digits"
                        ),
                    });
                }
                Ok(Key::Num(digits))
            }
            Some(c) if c.is_ascii_alphabetic() || c == '_' => {
                let mut name = String::new();
                self.take_while(&mut name, is_word_char);
                text.push_str(&name);
                Ok(Key::Name(name))
            }
            Some('"') => {
                self.bump();
                text.push('"');
                Ok(Key::Name(self.quoted(text, line, col)?))
            }
            _ => {
                let found = match self.peek() {
                    None => "end of input".to_string(),
                    Some('\n') => "end of line".to_string(),
                    Some(c) => format!("`{c}`"),
                };
                Err(ParseError {
                    line,
                    col,
                    message: format!(
                        "expected a name, a number or a quoted name after `{sigil}`, found {found}"
                    ),
                })
            }
        }
    }
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.'
}

/// Splits `src` into tokens; the last one is [`Tok::Eof`]. On a lexical error, the tokens end
/// where it is and the error comes along, so that the parser can report whichever error comes
/// first in the text.
pub(crate) fn lex(src: &str) -> (Vec<Token>, Option<ParseError>) {
    let mut lx = Lexer { chars: src.chars().peekable(), line: 1, col: 1 };
    let mut tokens = Vec::new();
    let error = lex_into(&mut lx, &mut tokens).err();
    tokens.push(Token { tok: Tok::Eof, line: lx.line, col: lx.col, text: String::new() });
    if let Some(e) = &error {
        let eof = tokens.len() - 1;
        tokens[eof].line = e.line;
        tokens[eof].col = e.col;
    }
    (tokens, error)
}

fn lex_into(lx: &mut Lexer<'_>, tokens: &mut Vec<Token>) -> Result<(), ParseError> {
    loop {
        let (line, col) = (lx.line, lx.col);
        let Some(c) = lx.peek() else {
            return Ok(());
        };
        let mut text = String::new();
        let tok = match c {
            '\n' => {
                lx.bump();
                Tok::Newline
            }
            c if c.is_whitespace() => {
                lx.bump();
                continue;
            }
            ';' => {
                lx.take_while(&mut text, |c| c != '\n');
                match location(&text[1..]) {
                    Some(loc) => Tok::Loc(loc),
                    None => continue,
                }
            }
            '[' if symbolic_bracket(lx) => {
                lx.bump();
                text.push('[');
                let mut inner = String::new();
                lx.take_while(&mut inner, |c| c != ']');
                lx.bump();
                text.push_str(&inner);
                text.push(']');
                Tok::Dims(inner)
            }
            '(' | ')' | '{' | '}' | '[' | ']' | ',' | ':' | '=' => {
                lx.bump();
                text.push(c);
                Tok::Punct(c)
            }
            '%' | '@' => {
                lx.bump();
                text.push(c);
                let key = lx.name(&mut text, c)?;
                if c == '%' {
                    Tok::Value(key)
                } else {
                    Tok::Global(key.into_name())
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                lx.take_while(&mut text, is_word_char);
                // `where` after the inputs' `)` declares symbols; elsewhere it is the op.
                if text == "where" && tokens.last().is_some_and(|t| t.tok == Tok::Punct(')')) {
                    let mut decls = String::new();
                    lx.take_while(&mut decls, |c| c != '{' && c != '\n' && c != ';');
                    text.push_str(&decls);
                    Tok::Where(decls)
                } else {
                    Tok::Word(text.clone())
                }
            }
            c if c.is_ascii_digit() || c == '-' || c == '.' => {
                lx.bump();
                text.push(c);
                // Letters cover `inf`, `nan` and exponents; a sign may follow an exponent's `e`.
                while let Some(c) = lx.peek() {
                    let exponent_sign = (c == '-' || c == '+') && text.ends_with(['e', 'E']);
                    if !(is_word_char(c) || exponent_sign) {
                        break;
                    }
                    text.push(c);
                    lx.bump();
                }
                Tok::Number(text.clone())
            }
            c => {
                return Err(ParseError {
                    line,
                    col,
                    message: format!("unexpected character `{}`", c.escape_debug()),
                })
            }
        };
        tokens.push(Token { tok, line, col, text });
    }
}

/// Whether the `[` at the lexer's position opens symbolic dims: its contents, up to the `]` on
/// the same line, hold something other than digits, signs, commas and blanks.
fn symbolic_bracket(lx: &Lexer<'_>) -> bool {
    let mut ahead = lx.chars.clone();
    ahead.next();
    for c in ahead {
        match c {
            ']' => return false,
            '\n' => return false,
            c if c.is_ascii_digit() || c == '-' || c == ',' || c == ' ' || c == '\t' => {}
            _ => return true,
        }
    }
    false
}

/// The location in a comment's text (after `;`) if it is a `; at LOCATION` comment.
fn location(comment: &str) -> Option<String> {
    let rest = comment.trim_start().strip_prefix("at")?;
    if !rest.starts_with(char::is_whitespace) {
        return None;
    }
    let loc = rest.trim();
    (!loc.is_empty()).then(|| loc.to_string())
}
