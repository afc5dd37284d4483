//! The canonical form of a symbolic expression and the arithmetic that keeps it canonical.
//!
//! An expression is a sum of monomials with nonzero integer coefficients; a monomial is a sorted
//! product of atoms with positive powers; an atom is a symbol, or a floor division or remainder
//! of a canonical expression by a constant greater than one. Every constructor and operation
//! returns that form, so two expressions that are equal as polynomials over their atoms are
//! equal as Rust values, hash alike and print alike. Floor division and remainder are brought
//! to a normal form by the rules in [`SymExpr::floor_div`] and [`SymExpr::rem`]; identities
//! between them that those rules do not reach (`T - 4*(T//4) == T%4`, say) are not recognized
//! by the form; the bounds ([`SymExpr::bounds`]) see `d*(x//d) == x - x%d`, and the decision
//! helpers treat the rest conservatively. Arithmetic is checked: an operation whose
//! coefficients would overflow `i64` returns [`SymError::Overflow`], never a wrapped value.

use super::{Bindings, SymError};
use std::collections::{BTreeMap, BTreeSet};

/// A factor of a monomial.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) enum Atom {
    /// A symbol, by name.
    Sym(String),
    /// `floor(operand / divisor)`, with a divisor greater than one and a canonical operand whose
    /// coefficients lie in `1..divisor` and whose constant lies in `0..divisor`.
    Div(Box<SymExpr>, i64),
    /// `operand mod divisor` (in `0..divisor`), with an operand normalized as for `Div`.
    Rem(Box<SymExpr>, i64),
}

impl Atom {
    /// The variant's place in the canonical order: symbols, then divisions, then remainders.
    fn rank(&self) -> u8 {
        match self {
            Atom::Sym(_) => 0,
            Atom::Div(..) => 1,
            Atom::Rem(..) => 2,
        }
    }
}

impl Ord for Atom {
    /// The canonical order of atoms. It is written out rather than derived so that `SymExpr`
    /// need not be `Ord`, whose `min` and `max` would shadow the bounds methods of that name.
    fn cmp(&self, other: &Atom) -> std::cmp::Ordering {
        match (self, other) {
            (Atom::Sym(a), Atom::Sym(b)) => a.cmp(b),
            (Atom::Div(x, c), Atom::Div(y, d)) | (Atom::Rem(x, c), Atom::Rem(y, d)) => {
                x.terms.cmp(&y.terms).then(c.cmp(d))
            }
            (Atom::Sym(_) | Atom::Div(..) | Atom::Rem(..), _) => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for Atom {
    fn partial_cmp(&self, other: &Atom) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// A product of atoms, sorted by atom, each with a power of at least one. The empty product is
/// the monomial of the constant term.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct Monomial(pub(super) Vec<(Atom, u32)>);

impl Monomial {
    /// The product of two monomials, or `None` if a power overflows.
    fn times(&self, other: &Monomial) -> Option<Monomial> {
        let mut out: Vec<(Atom, u32)> = Vec::with_capacity(self.0.len() + other.0.len());
        let (mut i, mut j) = (0, 0);
        while i < self.0.len() || j < other.0.len() {
            let take_left = j == other.0.len() || (i < self.0.len() && self.0[i].0 <= other.0[j].0);
            let take_right = i == self.0.len() || (j < other.0.len() && other.0[j].0 <= self.0[i].0);
            if take_left && take_right {
                out.push((self.0[i].0.clone(), self.0[i].1.checked_add(other.0[j].1)?));
                i += 1;
                j += 1;
            } else if take_left {
                out.push(self.0[i].clone());
                i += 1;
            } else {
                out.push(other.0[j].clone());
                j += 1;
            }
        }
        Some(Monomial(out))
    }
}

impl Monomial {
    /// `self / other` when every atom of `other` divides `self` with at most its power.
    fn divided_by(&self, other: &Monomial) -> Option<Monomial> {
        let mut out = self.0.clone();
        for (atom, power) in &other.0 {
            let at = out.iter().position(|(a, _)| a == atom)?;
            out[at].1 = out[at].1.checked_sub(*power)?;
            if out[at].1 == 0 {
                out.remove(at);
            }
        }
        Some(Monomial(out))
    }
}

/// A symbolic integer expression over named size symbols, always in canonical form.
///
/// Build one with [`SymExpr::constant`], [`SymExpr::symbol`] (or [`super::Symbol::expr`]) and
/// the checked operations [`add`](SymExpr::add), [`sub`](SymExpr::sub), [`mul`](SymExpr::mul),
/// [`floor_div`](SymExpr::floor_div) and [`rem`](SymExpr::rem), or parse its text form
/// ([`SymExpr::parse`]). `Display` prints the text form (`B*T + T`, `(T + 1)//2`, `T%4`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SymExpr {
    /// Coefficient of each monomial; never zero.
    pub(super) terms: BTreeMap<Monomial, i64>,
}

/// A coefficient if it is in range: `i64::MIN` counts as an overflow, so that every coefficient
/// can be negated.
fn checked(v: Option<i64>) -> Option<i64> {
    v.filter(|&v| v != i64::MIN)
}

impl From<i32> for SymExpr {
    /// The constant `value`, which is always in range.
    fn from(value: i32) -> SymExpr {
        let mut terms = BTreeMap::new();
        if value != 0 {
            terms.insert(Monomial::default(), i64::from(value));
        }
        SymExpr { terms }
    }
}

/// Whether `name` is a valid symbol name: `[A-Za-z_][A-Za-z0-9_]*`.
pub(super) fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The greatest common divisor of two coefficients (`gcd(0, 0) == 0`), saturated to `i64::MAX`.
pub(super) fn gcd(a: i64, b: i64) -> i64 {
    let (mut a, mut b) = (a.unsigned_abs(), b.unsigned_abs());
    while b != 0 {
        (a, b) = (b, a % b);
    }
    i64::try_from(a).unwrap_or(i64::MAX)
}

impl SymExpr {
    /// The constant `value`; `i64::MIN` is out of range, since coefficients are kept in
    /// `-i64::MAX..=i64::MAX` so that negating one never overflows.
    pub fn constant(value: i64) -> Result<SymExpr, SymError> {
        let value = checked(Some(value)).ok_or(SymError::Overflow("constant"))?;
        let mut terms = BTreeMap::new();
        if value != 0 {
            terms.insert(Monomial::default(), value);
        }
        Ok(SymExpr { terms })
    }

    /// The symbol `name`, which must match `[A-Za-z_][A-Za-z0-9_]*`.
    pub fn symbol(name: &str) -> Result<SymExpr, SymError> {
        if !valid_name(name) {
            return Err(SymError::BadName(name.to_string()));
        }
        Ok(SymExpr::atom(Atom::Sym(name.to_string())))
    }

    fn atom(atom: Atom) -> SymExpr {
        SymExpr { terms: BTreeMap::from([(Monomial(vec![(atom, 1)]), 1)]) }
    }

    /// The value of a constant expression, `None` if it has a symbol.
    pub fn as_const(&self) -> Option<i64> {
        match self.terms.len() {
            0 => Some(0),
            1 => self.terms.get(&Monomial::default()).copied(),
            _ => None,
        }
    }

    /// The symbol's name if the expression is exactly one symbol (`T`, not `2*T` or `T + 1`).
    pub fn as_symbol(&self) -> Option<String> {
        match self.terms.iter().next() {
            Some((Monomial(atoms), 1)) if self.terms.len() == 1 => match atoms.as_slice() {
                [(Atom::Sym(name), 1)] => Some(name.clone()),
                _ => None,
            },
            _ => None,
        }
    }

    /// Whether the expression has no symbol.
    pub fn is_const(&self) -> bool {
        self.as_const().is_some()
    }

    /// Every symbol the expression mentions, including inside divisions, in name order.
    pub fn symbols(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        self.collect_symbols(&mut out);
        out
    }

    fn collect_symbols(&self, out: &mut BTreeSet<String>) {
        for (atom, _) in self.terms.keys().flat_map(|m| &m.0) {
            match atom {
                Atom::Sym(name) => {
                    out.insert(name.clone());
                }
                Atom::Div(x, _) | Atom::Rem(x, _) => x.collect_symbols(out),
            }
        }
    }

    /// Adds `coeff * monomial` into `terms`, dropping the term if it cancels.
    fn accumulate(terms: &mut BTreeMap<Monomial, i64>, m: Monomial, coeff: i64) -> Option<()> {
        let sum = checked(terms.get(&m).copied().unwrap_or(0).checked_add(coeff))?;
        if sum == 0 {
            terms.remove(&m);
        } else {
            terms.insert(m, sum);
        }
        Some(())
    }

    /// `self + other`.
    pub fn add(&self, other: &SymExpr) -> Result<SymExpr, SymError> {
        let mut terms = self.terms.clone();
        for (m, &c) in &other.terms {
            SymExpr::accumulate(&mut terms, m.clone(), c).ok_or(SymError::Overflow("add"))?;
        }
        Ok(SymExpr { terms })
    }

    /// `self - other`.
    pub fn sub(&self, other: &SymExpr) -> Result<SymExpr, SymError> {
        self.add(&other.scale(-1).map_err(|_| SymError::Overflow("sub"))?)
    }

    /// `self * k` for a constant `k`.
    pub fn scale(&self, k: i64) -> Result<SymExpr, SymError> {
        if k == 0 {
            return Ok(SymExpr::default());
        }
        let mut terms = BTreeMap::new();
        for (m, &c) in &self.terms {
            terms.insert(m.clone(), checked(c.checked_mul(k)).ok_or(SymError::Overflow("mul"))?);
        }
        Ok(SymExpr { terms })
    }

    /// `self * other`, multiplied out.
    pub fn mul(&self, other: &SymExpr) -> Result<SymExpr, SymError> {
        let mut terms = BTreeMap::new();
        for (a, &ca) in &self.terms {
            for (b, &cb) in &other.terms {
                let m = a.times(b).ok_or(SymError::Overflow("mul"))?;
                let c = checked(ca.checked_mul(cb)).ok_or(SymError::Overflow("mul"))?;
                SymExpr::accumulate(&mut terms, m, c).ok_or(SymError::Overflow("mul"))?;
            }
        }
        Ok(SymExpr { terms })
    }

    /// `self / divisor` when the division is exact as polynomials: `divisor` is one monomial
    /// (a coefficient times a product of atoms) that divides every term of `self`
    /// (`(6*B*T)/(3*T) = 2*B`); `None` otherwise (`T / 2`, `(T + 1) / T`, a sum as divisor).
    /// A reshape's inferred `-1` is this quotient of the element count by the other dims.
    pub fn div_exact(&self, divisor: &SymExpr) -> Option<SymExpr> {
        let (dm, &dc) = divisor.terms.iter().next().filter(|_| divisor.terms.len() == 1)?;
        let mut terms = BTreeMap::new();
        for (m, &c) in &self.terms {
            if c % dc != 0 {
                return None;
            }
            terms.insert(m.divided_by(dm)?, c / dc);
        }
        Some(SymExpr { terms })
    }

    /// Splits `self` as `divisor * quotient + rest`, each coefficient of `rest` in `0..divisor`.
    fn split(&self, divisor: i64) -> (SymExpr, SymExpr) {
        let (mut q, mut r) = (BTreeMap::new(), BTreeMap::new());
        for (m, &c) in &self.terms {
            let (cq, cr) = (c.div_euclid(divisor), c.rem_euclid(divisor));
            if cq != 0 {
                q.insert(m.clone(), cq);
            }
            if cr != 0 {
                r.insert(m.clone(), cr);
            }
        }
        (SymExpr { terms: q }, SymExpr { terms: r })
    }

    /// Divides every coefficient and the divisor by their common divisor.
    fn reduce(&self, divisor: i64) -> (SymExpr, i64, i64) {
        let g = self.terms.values().fold(divisor, |g, &c| gcd(g, c));
        let terms = self.terms.iter().map(|(m, &c)| (m.clone(), c / g)).collect();
        (SymExpr { terms }, divisor / g, g)
    }

    /// The expression if it is exactly one atom with coefficient one.
    pub(super) fn single_atom(&self) -> Option<&Atom> {
        let (m, &c) = self.terms.iter().next().filter(|_| self.terms.len() == 1)?;
        match m.0.as_slice() {
            [(atom, 1)] if c == 1 => Some(atom),
            _ => None,
        }
    }

    fn divisor(op: &'static str, divisor: u64) -> Result<i64, SymError> {
        match i64::try_from(divisor) {
            Ok(d) if d > 0 => Ok(d),
            _ => Err(SymError::BadDivisor { op, divisor }),
        }
    }

    /// `floor(self / divisor)` for a positive constant divisor.
    ///
    /// Normal form: multiples of the divisor leave the division (`(5*T + 5)//4 → T + 1 +
    /// (T + 1)//4`); a factor common to the divisor and every coefficient cancels
    /// (`(2*T)//4 → T//2`); nested divisions merge (`(T//2)//3 → T//6`); and an operand that is
    /// below the divisor for every value of its symbols gives zero (`(T%4)//4 → 0`).
    pub fn floor_div(&self, divisor: u64) -> Result<SymExpr, SymError> {
        let divisor = SymExpr::divisor("floor_div", divisor)?;
        let (q, r) = self.split(divisor);
        if r.terms.is_empty() {
            return Ok(q);
        }
        let (r, divisor, _) = r.reduce(divisor);
        let below = r.structural_bounds();
        let d = if below.within(divisor) {
            SymExpr::default()
        } else if let Some(Atom::Div(x, a)) = r.single_atom() {
            let merged = a.checked_mul(divisor).ok_or(SymError::Overflow("floor_div"))?;
            x.floor_div(merged as u64)?
        } else {
            SymExpr::atom(Atom::Div(Box::new(r), divisor))
        };
        q.add(&d)
    }

    /// `self mod divisor`, in `0..divisor`, for a positive constant divisor.
    ///
    /// Normal form: multiples of the divisor vanish (`(5*T + 5)%4 → (T + 1)%4`); a factor common
    /// to the divisor and every coefficient comes out (`(2*T)%4 → 2*(T%2)`); a remainder by a
    /// multiple of the divisor is dropped (`(T%8)%4 → T%4`); and an operand that is below the
    /// divisor for every value of its symbols is its own remainder (`(T%4)%8 → T%4`).
    pub fn rem(&self, divisor: u64) -> Result<SymExpr, SymError> {
        let divisor = SymExpr::divisor("rem", divisor)?;
        let (_, r) = self.split(divisor);
        if r.terms.is_empty() {
            return Ok(r);
        }
        let (r, divisor, g) = r.reduce(divisor);
        let below = r.structural_bounds();
        let m = if below.within(divisor) {
            r
        } else {
            let nested = match r.single_atom() {
                Some(Atom::Rem(x, a)) if a % divisor == 0 => Some(x.rem(divisor as u64)?),
                _ => None,
            };
            match nested {
                Some(m) => m,
                None => SymExpr::atom(Atom::Rem(Box::new(r), divisor)),
            }
        };
        m.scale(g)
    }

    /// Replaces the symbol `name` by `value` everywhere, and brings the result to canonical form.
    pub fn substitute(&self, name: &str, value: &SymExpr) -> Result<SymExpr, SymError> {
        let mut out = SymExpr::default();
        for (m, &c) in &self.terms {
            let mut term = SymExpr::constant(c)?;
            for (atom, power) in &m.0 {
                let factor = match atom {
                    Atom::Sym(s) if s == name => value.clone(),
                    Atom::Sym(_) => SymExpr::atom(atom.clone()),
                    Atom::Div(x, d) => x.substitute(name, value)?.floor_div(*d as u64)?,
                    Atom::Rem(x, d) => x.substitute(name, value)?.rem(*d as u64)?,
                };
                for _ in 0..*power {
                    term = term.mul(&factor)?;
                }
            }
            out = out.add(&term)?;
        }
        Ok(out)
    }

    /// The value under `bindings`: `None` if a symbol is unbound, an intermediate value overflows
    /// `i64`, or the value is negative.
    pub fn eval(&self, bindings: &Bindings) -> Option<u64> {
        self.eval_with(&|name| bindings.get(name).copied())
    }

    /// [`eval`](SymExpr::eval) with a lookup function for the symbols' values.
    pub fn eval_with(&self, value_of: &dyn Fn(&str) -> Option<u64>) -> Option<u64> {
        u64::try_from(self.eval_signed(value_of)?).ok()
    }

    /// The value under `bindings` as a signed integer (an offset or a stride may be
    /// negative): `None` if a symbol is unbound or an intermediate value overflows `i64`.
    pub fn eval_i64(&self, bindings: &Bindings) -> Option<i64> {
        self.eval_signed(&|name| bindings.get(name).copied())
    }

    /// The value as a signed integer, `None` on an unbound symbol or an overflow.
    pub(super) fn eval_signed(&self, value_of: &dyn Fn(&str) -> Option<u64>) -> Option<i64> {
        let mut sum: i64 = 0;
        for (m, &c) in &self.terms {
            let mut term = c;
            for (atom, power) in &m.0 {
                let v = match atom {
                    Atom::Sym(name) => i64::try_from(value_of(name)?).ok()?,
                    Atom::Div(x, d) => x.eval_signed(value_of)?.div_euclid(*d),
                    Atom::Rem(x, d) => x.eval_signed(value_of)?.rem_euclid(*d),
                };
                term = term.checked_mul(v.checked_pow(*power)?)?;
            }
            sum = sum.checked_add(term)?;
        }
        Some(sum)
    }
}
