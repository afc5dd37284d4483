//! Tests of symbolic dimensions: canonical equality, algebraic identities, evaluation against a
//! direct evaluation of the unsimplified expression, bounds, the text round trip, parse errors
//! and overflow.

mod common;

use common::Rng;
use tenjit_ir::sym::{Bindings, Dim, Equality, SymError, SymExpr, Symbol, Symbols};

fn e(text: &str) -> SymExpr {
    SymExpr::parse(text).unwrap_or_else(|err| panic!("{text}: {err}"))
}

fn sym(name: &str) -> SymExpr {
    SymExpr::symbol(name).unwrap()
}

fn k(v: i32) -> SymExpr {
    SymExpr::from(v)
}

fn bind(pairs: &[(&str, u64)]) -> Bindings {
    pairs.iter().map(|&(n, v)| (n.to_string(), v)).collect()
}

fn table(decls: &[(&str, u64, Option<u64>)]) -> Symbols {
    let mut t = Symbols::new();
    for &(n, lo, hi) in decls {
        t.insert(Symbol::new(n, lo, hi).unwrap()).unwrap();
    }
    t
}

#[test]
fn canonical_equality_and_identities() {
    let (b, t) = (sym("B"), sym("T"));
    let lhs = b.mul(&t).unwrap().add(&t).unwrap();
    let rhs = t.mul(&b.add(&k(1)).unwrap()).unwrap();
    assert_eq!(lhs, rhs);
    assert_eq!(lhs.to_string(), "B*T + T");
    assert_eq!(e("T*(B + 1)"), lhs);
    // Commutativity, associativity, distributivity, cancellation.
    assert_eq!(e("T + B"), e("B + T"));
    assert_eq!(e("(B + T) + 3"), e("B + (T + 3)"));
    assert_eq!(e("(B + 2)*(T - 1)"), e("B*T - B + 2*T - 2"));
    assert_eq!(e("T - T"), k(0));
    assert_eq!(e("T*0 + 5"), k(5));
    // Floor division and remainder normal forms.
    assert_eq!(e("(4*T + 5)//4"), e("T + 1"));
    assert_eq!(e("(4*T + 5)%4"), k(1));
    assert_eq!(e("(5*T + 5)//4"), e("T + 1 + (T + 1)//4"));
    assert_eq!(e("(5*T + 5)%4"), e("(T + 1)%4"));
    assert_eq!(e("(2*T)//4"), e("T//2"));
    assert_eq!(e("(2*T)%4"), e("2*(T%2)"));
    assert_eq!(e("(T//2)//3"), e("T//6"));
    assert_eq!(e("(T%4)//4"), k(0));
    assert_eq!(e("(T%8)%4"), e("T%4"));
    assert_eq!(e("(T%4)%8"), e("T%4"));
    assert_eq!(e("T//1"), t);
    assert_eq!(e("T%1"), k(0));
    assert_eq!(e("(6*B*T)//3"), e("2*B*T"));
    assert_ne!(e("T//2"), e("T//3"));
    assert_ne!(e("T%4"), e("T//4"));
    // Equal expressions hash alike, whatever order they were built in.
    let set: std::collections::HashSet<SymExpr> =
        ["B*T + T", "T*(B + 1)", "T + T*B", "(B + 1)*T + 0*S"].into_iter().map(e).collect();
    assert_eq!(set.len(), 1);
    assert!(e("(T - T)*B + 7").is_const());
    assert_eq!(e("7 + B - B").as_const(), Some(7));
    let names: Vec<String> = e("B*(T//2) + (S + 1)%3").symbols().into_iter().collect();
    assert_eq!(names, ["B", "S", "T"]);
}

#[test]
fn printing() {
    let cases = [
        ("B*T", "B*T"),
        ("1 + T", "T + 1"),
        ("(T + 1)//2", "(T + 1)//2"),
        ("T%4", "T%4"),
        ("4 - T", "-T + 4"),
        ("B*(T//2)", "B*(T//2)"),
        ("(T//2)*B", "B*(T//2)"),
        ("5 - T//2", "-(T//2) + 5"),
        ("3*(T%4) - T*T", "-T*T + 3*(T%4)"),
        ("(B*T)//2 + 0", "(B*T)//2"),
        ("0", "0"),
        ("-7", "-7"),
    ];
    for (input, printed) in cases {
        let x = e(input);
        assert_eq!(x.to_string(), printed, "{input}");
        assert_eq!(e(printed), x, "{printed} reads back");
    }
}

/// An expression as built, before canonicalization, with its own direct evaluation.
#[derive(Clone, Debug)]
enum Raw {
    Const(i64),
    Sym(&'static str),
    Add(Box<Raw>, Box<Raw>),
    Sub(Box<Raw>, Box<Raw>),
    Mul(Box<Raw>, Box<Raw>),
    Div(Box<Raw>, u64),
    Rem(Box<Raw>, u64),
}

const NAMES: [&str; 3] = ["B", "T", "S"];

impl Raw {
    fn random(r: &mut Rng, depth: usize) -> Raw {
        if depth == 0 || r.chance(4) {
            return if r.chance(2) { Raw::Const(r.below(9) as i64) } else { Raw::Sym(r.pick(&NAMES)) };
        }
        let mut sub = || Box::new(Raw::random(r, depth - 1));
        let (a, b) = (sub(), sub());
        match r.below(5) {
            0 => Raw::Add(a, b),
            1 => Raw::Sub(a, b),
            2 => Raw::Mul(a, b),
            3 => Raw::Div(a, 1 + r.below(8) as u64),
            _ => Raw::Rem(a, 1 + r.below(8) as u64),
        }
    }

    fn build(&self) -> SymExpr {
        let built = match self {
            Raw::Const(v) => SymExpr::constant(*v),
            Raw::Sym(n) => SymExpr::symbol(n),
            Raw::Add(a, b) => a.build().add(&b.build()),
            Raw::Sub(a, b) => a.build().sub(&b.build()),
            Raw::Mul(a, b) => a.build().mul(&b.build()),
            Raw::Div(a, d) => a.build().floor_div(*d),
            Raw::Rem(a, d) => a.build().rem(*d),
        };
        built.unwrap()
    }

    fn eval(&self, b: &Bindings) -> i128 {
        match self {
            Raw::Const(v) => i128::from(*v),
            Raw::Sym(n) => i128::from(b[*n]),
            Raw::Add(x, y) => x.eval(b) + y.eval(b),
            Raw::Sub(x, y) => x.eval(b) - y.eval(b),
            Raw::Mul(x, y) => x.eval(b) * y.eval(b),
            Raw::Div(x, d) => x.eval(b).div_euclid(i128::from(*d)),
            Raw::Rem(x, d) => x.eval(b).rem_euclid(i128::from(*d)),
        }
    }

    /// Fully parenthesized text, nothing like the canonical printing.
    fn text(&self) -> String {
        match self {
            Raw::Const(v) => v.to_string(),
            Raw::Sym(n) => n.to_string(),
            Raw::Add(x, y) => format!("({} + {})", x.text(), y.text()),
            Raw::Sub(x, y) => format!("({}-{})", x.text(), y.text()),
            Raw::Mul(x, y) => format!("({} * {})", x.text(), y.text()),
            Raw::Div(x, d) => format!("({} // {d})", x.text()),
            Raw::Rem(x, d) => format!("({} % {d})", x.text()),
        }
    }
}

fn random_bindings(r: &mut Rng, syms: &Symbols) -> Bindings {
    syms.iter()
        .map(|s| {
            let hi = s.hi.unwrap_or(s.lo + 40);
            let v = match r.below(4) {
                0 => s.lo,
                1 => hi,
                _ => s.lo + r.below((hi - s.lo + 1) as usize) as u64,
            };
            (s.name.clone(), v)
        })
        .collect()
}

#[test]
fn eval_agrees_with_direct_evaluation() {
    let mut r = Rng::new(13);
    // Sizes 0 and 1 are in range, and values that are not multiples of the divisors.
    let syms = table(&[("B", 0, Some(9)), ("T", 1, Some(17)), ("S", 0, Some(1))]);
    for _ in 0..400 {
        let raw = Raw::random(&mut r, 3);
        let x = raw.build();
        assert_eq!(SymExpr::parse(&raw.text()), Ok(x.clone()), "{}", raw.text());
        for _ in 0..8 {
            let b = random_bindings(&mut r, &syms);
            let direct = raw.eval(&b);
            let want = u64::try_from(direct).ok();
            assert_eq!(x.eval(&b), want, "{} = {x} at {b:?}", raw.text());
        }
    }
}

#[test]
fn bounds_contain_every_sample() {
    let mut r = Rng::new(7);
    let syms = table(&[("B", 1, Some(8)), ("T", 0, Some(33)), ("S", 2, Some(5))]);
    for _ in 0..300 {
        let raw = Raw::random(&mut r, 3);
        let x = raw.build();
        let bounds = x.bounds(&syms);
        for _ in 0..8 {
            let b = random_bindings(&mut r, &syms);
            let v = raw.eval(&b);
            assert!(bounds.contains(v), "{x} = {v} at {b:?} is outside {bounds:?}");
        }
    }
    // Monotone forms are exact.
    let syms = table(&[("B", 1, Some(8)), ("T", 1, Some(64))]);
    assert_eq!((e("B*T + T").min(&syms), e("B*T + T").max(&syms)), (Some(2), Some(576)));
    assert_eq!((e("(T + 1)//2").min(&syms), e("(T + 1)//2").max(&syms)), (Some(1), Some(32)));
    // Unbounded symbols give unbounded ends, never a panic.
    let open = table(&[("T", 1, None)]);
    assert_eq!((e("T*T").min(&open), e("T*T").max(&open)), (Some(1), None));
    assert_eq!((e("5 - T").min(&open), e("5 - T").max(&open)), (None, Some(4)));
    assert_eq!(e("T%4").max(&open), Some(3));
}

/// The bounds see through `d*(x//d) == x - x%d`, which the canonical form keeps apart: a
/// remainder of blocks is below the block, a slice of whole blocks ends inside its axis, and
/// the identity is a proven equality. What they give stays safe at every value.
#[test]
fn bounds_see_whole_divisions() {
    let open = table(&[("N", 65, None)]);
    let blocks = e("64*((N - 1)//64)");
    let rest = e("N").sub(&blocks).unwrap();
    assert_eq!((rest.min(&open), rest.max(&open)), (Some(1), Some(64)));
    assert_eq!(blocks.min(&open), Some(64));
    let end = blocks.add(&e("(N - 1)%64")).unwrap();
    assert_eq!(end.equality(&e("N - 1"), &open), Equality::Proven);
    let round_up = e("T - 4*((T + 3)//4)");
    let t = table(&[("T", 0, None)]);
    assert_eq!((round_up.min(&t), round_up.max(&t)), (Some(-3), Some(0)));
    // Not a multiple of the divisor: nothing to write out, the plain bounds.
    assert_eq!(e("T - 3*(T//4)").max(&t), None);
    for n in 65..400u64 {
        let b = bind(&[("N", n)]);
        let v = i128::from(rest.eval(&b).unwrap());
        assert!((1..=64).contains(&v), "N = {n}: {v}");
    }
}

#[test]
fn print_parse_round_trip() {
    let mut r = Rng::new(99);
    let (mut divs, mut rems, mut negs) = (0, 0, 0);
    for _ in 0..500 {
        let x = Raw::random(&mut r, 4).build();
        let printed = x.to_string();
        assert_eq!(SymExpr::parse(&printed), Ok(x.clone()), "{printed}");
        assert!(!printed.contains(',') && !printed.contains('[') && !printed.contains(']'));
        divs += usize::from(printed.contains("//"));
        rems += usize::from(printed.contains('%'));
        negs += usize::from(printed.contains('-'));
    }
    // The random expressions reach every printed form, so the round trip covers them.
    assert!(divs > 50 && rems > 50 && negs > 50, "{divs} {rems} {negs}");
}

fn parse_err(text: &str) -> (usize, String) {
    match SymExpr::parse(text) {
        Err(SymError::Parse { col, message }) => (col, message),
        other => panic!("{text}: expected a parse error, got {other:?}"),
    }
}

#[test]
fn parse_errors_name_the_column() {
    let cases = [
        ("", 1, "expected a number, a symbol, `-` or `(`, found the end of the expression"),
        ("T +", 4, "expected a number, a symbol, `-` or `(`, found the end of the expression"),
        ("T / 2", 3, "expected `//` (floor division), found `/`"),
        ("T//0", 4, "expected a positive integer divisor after `//`, found `0`"),
        ("T%B", 3, "expected a positive integer divisor after `%`, found `B`"),
        ("(T + 1", 7, "expected an operator or `)`, found the end of the expression"),
        ("T T", 3, "expected an operator or the end of the expression, found `T`"),
        ("B*T, 4", 4, "expected an operator or the end of the expression, found `,`"),
        ("T $", 3, "expected an operator or the end of the expression, found `$`"),
        ("2*+", 3, "expected a number, a symbol, `-` or `(`, found `+`"),
        (
            "99999999999999999999",
            1,
            "integer `99999999999999999999` is too large (at most 9223372036854775807)",
        ),
        ("9223372036854775807 + 1", 21, "add: a coefficient overflows i64"),
    ];
    for (text, col, message) in cases {
        assert_eq!(parse_err(text), (col, message.to_string()), "{text:?}");
    }
    // Deep nesting is an error, not a stack overflow.
    let deep = format!("{}T{}", "(".repeat(10_000), ")".repeat(10_000));
    assert!(parse_err(&deep).1.contains("nested more than"));
    assert_eq!(parse_err(&"-".repeat(10_000)).0, 65);
    // A prefix stops where a shape list continues.
    let (x, end) = SymExpr::parse_prefix("B*T + 1,(T + 1)//2]").unwrap();
    assert_eq!((x.to_string(), end), ("B*T + 1".to_string(), 7));
}

#[test]
fn sizes_zero_and_one() {
    let x = e("(T + 1)//2 + B*T");
    assert_eq!(x.eval(&bind(&[("T", 0), ("B", 0)])), Some(0));
    assert_eq!(x.eval(&bind(&[("T", 1), ("B", 0)])), Some(1));
    assert_eq!(x.eval(&bind(&[("T", 1), ("B", 1)])), Some(2));
    assert_eq!(e("T - 1").eval(&bind(&[("T", 0)])), None);
    assert_eq!(e("T%4").eval(&bind(&[("T", 0)])), Some(0));
    assert_eq!(e("T").eval(&Bindings::new()), None);
    let syms = table(&[("T", 1, Some(64))]);
    assert_eq!(syms.check_bindings(&bind(&[("T", 1)])), Ok(()));
    let err = syms.check_bindings(&bind(&[("T", 0)])).unwrap_err();
    assert_eq!(err.to_string(), "T = 0 is outside T:1..=64");
    assert_eq!(
        syms.check_bindings(&Bindings::new()).unwrap_err().to_string(),
        "symbol T:1..=64 has no value"
    );
}

#[test]
fn overflow_is_reported_never_wrapped() {
    assert_eq!(SymExpr::constant(i64::MAX).unwrap().add(&k(1)), Err(SymError::Overflow("add")));
    assert_eq!(SymExpr::constant(i64::MIN), Err(SymError::Overflow("constant")));
    let big = e("9223372036854775807*T");
    assert_eq!(big.mul(&k(2)), Err(SymError::Overflow("mul")));
    assert_eq!(big.sub(&e("-T")), Err(SymError::Overflow("add")));
    assert_eq!(e("-9223372036854775807*T").sub(&sym("T")), Err(SymError::Overflow("add")));
    let cube = e("T*T*T");
    assert_eq!(cube.eval(&bind(&[("T", 1 << 20)])), Some(1 << 60));
    assert_eq!(cube.eval(&bind(&[("T", 1 << 21)])), None);
    assert_eq!(e("T").eval(&bind(&[("T", u64::MAX)])), None);
    assert_eq!(e("T + 9223372036854775807").eval(&bind(&[("T", 1)])), None);
    assert!(matches!(sym("T").floor_div(0), Err(SymError::BadDivisor { op: "floor_div", divisor: 0 })));
    assert!(matches!(sym("T").rem(u64::MAX), Err(SymError::BadDivisor { op: "rem", .. })));
    // Bounds saturate to unbounded rather than wrap.
    let syms = table(&[("T", 0, Some(u64::MAX))]);
    assert_eq!(cube.max(&syms), None);
    assert_eq!(cube.min(&syms), Some(0));
}

#[test]
fn equality_decisions() {
    let syms = table(&[("B", 1, Some(64)), ("T", 1, Some(512))]);
    let eq = |a: &str, b: &str| e(a).equality(&e(b), &syms);
    assert_eq!(eq("B*T + T", "T*(B + 1)"), Equality::Proven);
    assert_eq!(eq("T + 1", "T"), Equality::Disproven);
    assert_eq!(eq("2*T", "2*B + 1"), Equality::Disproven);
    assert_eq!(eq("B", "T + 64"), Equality::Disproven);
    assert_eq!(eq("T%4", "4"), Equality::Disproven);
    assert_eq!(eq("B", "T"), Equality::NeedsGuard(e("B"), e("T")));
    assert_eq!(eq("B*T", "64"), Equality::NeedsGuard(e("B*T"), k(64)));
    let pinned = table(&[("T", 4, Some(4))]);
    assert!(e("T").provably_equal(&k(4), &pinned));
    assert!(e("T").provably_ne(&k(3), &pinned));
    assert!(!e("T").provably_ne(&k(4), &syms));
    assert!(e("4*T + 8").divides(4));
    assert!(e("4*T + 8").divides(2));
    assert!(!e("4*T + 2").divides(4));
    assert!(!e("4*T").divides(0));
    assert!(k(0).divides(7));
}

#[test]
fn substitution() {
    let x = e("B*T + (T + 1)//2");
    let t = e("2*S + 1");
    let y = x.substitute("T", &t).unwrap();
    assert_eq!(y, e("2*B*S + B + S + 1"));
    for s in 0..6 {
        for b in 0..4 {
            let direct = x.eval(&bind(&[("B", b), ("T", 2 * s + 1)]));
            assert_eq!(y.eval(&bind(&[("B", b), ("S", s)])), direct);
        }
    }
    assert_eq!(x.substitute("T", &k(3)).unwrap().substitute("B", &k(5)).unwrap(), k(17));
    assert_eq!(x.substitute("Q", &k(3)).unwrap(), x);
}

#[test]
fn symbols_and_dims() {
    let mut syms = table(&[("T", 1, Some(64))]);
    assert_eq!(syms.insert(Symbol::new("T", 0, None).unwrap()), Err(SymError::Duplicate("T".into())));
    assert_eq!(Symbol::new("N", 5, Some(4)), Err(SymError::EmptyRange { name: "N".into(), lo: 5, hi: 4 }));
    assert_eq!(Symbol::new("2x", 0, None), Err(SymError::BadName("2x".into())));
    assert_eq!(Symbol::new("len", 1, None).unwrap().to_string(), "len:1..");
    assert_eq!(syms.check(&e("T*2")), Ok(()));
    assert_eq!(syms.check(&e("T*B")), Err(SymError::Unknown("B".into())));

    let d = Dim::parse("(T + 1)//2").unwrap();
    assert_eq!(d.as_const(), None);
    assert_eq!(d.to_string(), "(T + 1)//2");
    assert_eq!(d.eval(&bind(&[("T", 7)])), Some(4));
    let c = Dim::parse("B - B + 3").unwrap();
    assert_eq!((c.as_const(), c), (Some(3), Dim::from(3)));
    assert!(Dim::parse("T - T - 1").is_err());
    assert_eq!(Dim::from(5).expr(), Some(k(5)));
    assert_eq!(Dim::parse(&d.to_string()).unwrap(), d);
}

#[test]
fn exact_division_by_a_monomial() {
    let cases = [
        ("6*B*T", "3*T", Some("2*B")),
        ("B*T*64", "64", Some("B*T")),
        ("B*T*T + 2*T", "T", Some("B*T + 2")),
        ("B*T", "B*T", Some("1")),
        ("(T + 1)//2*B*4", "2*B", Some("2*((T + 1)//2)")),
        ("T", "2", None),
        ("T + 1", "T", None),
        ("B*T", "T*T", None),
        ("B*T", "B + T", None),
        ("4*T + 3", "2", None),
    ];
    for (num, den, want) in cases {
        let got = e(num).div_exact(&e(den));
        assert_eq!(got, want.map(e), "({num}) / ({den})");
    }
    // The quotient times the divisor is the dividend, at every binding.
    let q = e("6*B*T*T + 9*T").div_exact(&e("3*T")).unwrap();
    for (b, t) in [(2, 3), (5, 7), (0, 4)] {
        let at = bind(&[("B", b), ("T", t)]);
        assert_eq!(q.eval(&at).unwrap() * 3 * t, e("6*B*T*T + 9*T").eval(&at).unwrap());
    }
}
