//! Bounds of symbolic expressions by interval arithmetic, and the decisions built on them.
//!
//! Each symbol ranges over its declared interval (a symbol missing from the table over every
//! size, `0..`); the bounds of an expression follow by interval arithmetic in `i128`, where an
//! endpoint that overflows becomes unbounded, so a bound is always safe. For a monotone form (a
//! polynomial with nonnegative coefficients, since sizes are nonnegative) the bounds are exact:
//! the minimum is the value at every symbol's lower end, the maximum at every upper end. For
//! other forms they are conservative (they contain every value, perhaps more).

use super::expr::{gcd, Atom, SymExpr};
use super::{Equality, Symbols};

/// A closed integer interval whose ends may be unbounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Bounds {
    /// The least value, or `None` if unbounded below.
    pub lo: Option<i128>,
    /// The greatest value, or `None` if unbounded above.
    pub hi: Option<i128>,
}

/// An interval end: `None` is the infinity on that end's side.
type End = Option<i128>;

/// An interval end as an extended integer, for products of ends.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ext {
    NegInf,
    Fin(i128),
    PosInf,
}

impl Ext {
    fn lo(end: End) -> Ext {
        end.map_or(Ext::NegInf, Ext::Fin)
    }

    fn hi(end: End) -> Ext {
        end.map_or(Ext::PosInf, Ext::Fin)
    }

    fn sign(self) -> i32 {
        match self {
            Ext::NegInf => -1,
            Ext::PosInf => 1,
            Ext::Fin(v) => v.signum() as i32,
        }
    }

    /// The product; an infinity times zero is zero, since an infinite end is never attained.
    fn mul(self, other: Ext) -> Ext {
        match (self, other) {
            (Ext::Fin(a), Ext::Fin(b)) => match a.checked_mul(b) {
                Some(p) => Ext::Fin(p),
                None if (a < 0) == (b < 0) => Ext::PosInf,
                None => Ext::NegInf,
            },
            _ => match self.sign() * other.sign() {
                0 => Ext::Fin(0),
                s if s > 0 => Ext::PosInf,
                _ => Ext::NegInf,
            },
        }
    }

    fn finite(self) -> End {
        match self {
            Ext::Fin(v) => Some(v),
            Ext::NegInf | Ext::PosInf => None,
        }
    }
}

impl Bounds {
    /// The single value `v`.
    pub fn point(v: i128) -> Bounds {
        Bounds { lo: Some(v), hi: Some(v) }
    }

    /// Whether `v` lies in the interval.
    pub fn contains(&self, v: i128) -> bool {
        self.lo.is_none_or(|lo| lo <= v) && self.hi.is_none_or(|hi| v <= hi)
    }

    /// Whether every value lies in `0..divisor`.
    pub(super) fn within(&self, divisor: i64) -> bool {
        self.lo.is_some_and(|lo| lo >= 0) && self.hi.is_some_and(|hi| hi < i128::from(divisor))
    }

    /// The values in both intervals (two safe bounds of one expression overlap).
    fn intersect(self, other: Bounds) -> Bounds {
        let lo = match (self.lo, other.lo) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let hi = match (self.hi, other.hi) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Bounds { lo, hi }
    }

    fn add(self, other: Bounds) -> Bounds {
        let add = |a: End, b: End| a.zip(b).and_then(|(a, b)| a.checked_add(b));
        // An overflowing sum of two finite ends leaves that end unbounded, which is safe.
        Bounds { lo: add(self.lo, other.lo), hi: add(self.hi, other.hi) }
    }

    fn mul(self, other: Bounds) -> Bounds {
        let (a, b) = ([Ext::lo(self.lo), Ext::hi(self.hi)], [Ext::lo(other.lo), Ext::hi(other.hi)]);
        let products = [a[0].mul(b[0]), a[0].mul(b[1]), a[1].mul(b[0]), a[1].mul(b[1])];
        let lo = products.iter().copied().min().and_then(Ext::finite);
        let hi = products.iter().copied().max().and_then(Ext::finite);
        Bounds { lo, hi }
    }

    fn floor_div(self, d: i64) -> Bounds {
        let d = i128::from(d);
        Bounds { lo: self.lo.map(|v| v.div_euclid(d)), hi: self.hi.map(|v| v.div_euclid(d)) }
    }

    fn rem(self, d: i64) -> Bounds {
        let d = i128::from(d);
        match (self.lo, self.hi) {
            (Some(lo), Some(hi)) if lo.div_euclid(d) == hi.div_euclid(d) => {
                Bounds { lo: Some(lo.rem_euclid(d)), hi: Some(hi.rem_euclid(d)) }
            }
            _ => Bounds { lo: Some(0), hi: Some(d - 1) },
        }
    }
}

impl SymExpr {
    /// The bounds with each symbol ranging as `range_of` says.
    fn bounds_with(&self, range_of: &dyn Fn(&str) -> Bounds) -> Bounds {
        let mut sum = Bounds::point(0);
        for (m, &c) in &self.terms {
            let mut term = Bounds::point(i128::from(c));
            for (atom, power) in &m.0 {
                let b = match atom {
                    Atom::Sym(name) => range_of(name),
                    Atom::Div(x, d) => x.bounds_with(range_of).floor_div(*d),
                    Atom::Rem(x, d) => x.bounds_with(range_of).rem(*d),
                };
                for _ in 0..*power {
                    term = term.mul(b);
                }
            }
            sum = sum.add(term);
        }
        sum
    }

    /// The bounds when every symbol may be any size, the facts that hold without a table.
    pub(super) fn structural_bounds(&self) -> Bounds {
        self.bounds_with(&|_| Bounds { lo: Some(0), hi: None })
    }

    /// The bounds over the symbols' declared ranges (a symbol not in `symbols` ranges over every
    /// size): exact for monotone forms, conservative otherwise.
    ///
    /// The canonical form does not see `d*(x//d) == x - x%d`, so the bounds are also taken of
    /// the expression with every term `k*d*(x//d)` written as `k*x - k*(x%d)`, where its `x`
    /// may cancel against other terms, and the two intervals (both safe) are intersected:
    /// `T - 4*((T + 3)//4)` is then known to lie in `-3..=0`, and a remainder of blocks,
    /// `T - 64*(T//64)`, in `0..=63` (what a split of a symbolic axis into blocks needs).
    pub fn bounds(&self, symbols: &Symbols) -> Bounds {
        let range_of = |name: &str| match symbols.get(name) {
            Some(s) => Bounds { lo: Some(i128::from(s.lo)), hi: s.hi.map(i128::from) },
            None => Bounds { lo: Some(0), hi: None },
        };
        let direct = self.bounds_with(&range_of);
        match self.whole_divisions_written_out() {
            Some(e) => direct.intersect(e.bounds_with(&range_of)),
            None => direct,
        }
    }

    /// `self` with every term `k*d*(x//d)` (a division atom alone in its monomial, with a
    /// coefficient that is a multiple of its divisor) written as `k*x - k*(x%d)`; `None` when
    /// there is no such term or the arithmetic overflows.
    fn whole_divisions_written_out(&self) -> Option<SymExpr> {
        let mut out = self.clone();
        let mut any = false;
        for (m, &c) in &self.terms {
            let [(Atom::Div(x, d), 1)] = m.0.as_slice() else { continue };
            if c % d != 0 {
                continue;
            }
            let k = c / d;
            let term = SymExpr { terms: [(m.clone(), c)].into_iter().collect() };
            out = out
                .sub(&term)
                .ok()?
                .add(&x.scale(k).ok()?)
                .ok()?
                .sub(&x.rem(*d as u64).ok()?.scale(k).ok()?)
                .ok()?;
            any = true;
        }
        any.then_some(out)
    }

    /// The least value over the symbols' ranges, `None` if unbounded below.
    pub fn min(&self, symbols: &Symbols) -> Option<i128> {
        self.bounds(symbols).lo
    }

    /// The greatest value over the symbols' ranges, `None` if unbounded above.
    pub fn max(&self, symbols: &Symbols) -> Option<i128> {
        self.bounds(symbols).hi
    }

    /// Whether `self` is a multiple of `c` for every value of its symbols, as far as it can be
    /// proven: every coefficient, the constant included, is a multiple of `c`. `c == 0` is never
    /// a divisor.
    pub fn divides(&self, c: u64) -> bool {
        match i64::try_from(c) {
            Ok(c) if c > 0 => self.terms.values().all(|&k| k % c == 0),
            _ => false,
        }
    }

    /// Whether `self == other` for every binding of the symbols in their ranges.
    pub fn equality(&self, other: &SymExpr, symbols: &Symbols) -> Equality {
        let guard = || Equality::NeedsGuard(self.clone(), other.clone());
        if self == other {
            return Equality::Proven;
        }
        let Ok(diff) = self.sub(other) else {
            return guard();
        };
        let b = diff.bounds(symbols);
        if b == Bounds::point(0) {
            return Equality::Proven;
        }
        if !b.contains(0) {
            return Equality::Disproven;
        }
        // Every atom is an integer, so a difference `g*(...) + k` with `g` the gcd of the
        // non-constant coefficients is never zero unless `g` divides `k` (`2*T + 1 != 0`).
        let k = diff.as_const_term();
        let g = diff.terms.iter().filter(|(m, _)| !m.0.is_empty()).fold(0i64, |g, (_, &c)| gcd(g, c));
        if g > 1 && k % g != 0 {
            return Equality::Disproven;
        }
        guard()
    }

    /// Whether `self == other` is proven for every binding in the symbols' ranges.
    pub fn provably_equal(&self, other: &SymExpr, symbols: &Symbols) -> bool {
        matches!(self.equality(other, symbols), Equality::Proven)
    }

    /// Whether `self != other` is proven for every binding in the symbols' ranges.
    pub fn provably_ne(&self, other: &SymExpr, symbols: &Symbols) -> bool {
        matches!(self.equality(other, symbols), Equality::Disproven)
    }

    /// The constant term (zero if there is none).
    fn as_const_term(&self) -> i64 {
        self.terms.iter().find(|(m, _)| m.0.is_empty()).map_or(0, |(_, &c)| c)
    }
}
