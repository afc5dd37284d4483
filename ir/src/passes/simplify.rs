//! Constant folding and algebraic simplification, exact in IEEE arithmetic.
//!
//! Every rule is directional and rewrites one node `n` either into a use of an earlier node
//! (`n`'s uses move there; [`Dce`](super::dce::Dce) removes `n`) or, in place, into another op
//! of the same type (a folded constant, a composed view), so `n` keeps its id and its source
//! location. A rule fires only when the result is bit-for-bit what the interpreter computes
//! for the original, for every input; identities that hold only up to signed zeros, NaN
//! payloads or rounding are not rules:
//!
//! * `x * 0 → 0` is wrong for `inf`, NaN and negative `x` (`-1 * 0 = -0`), and
//!   `x + 0 → x` for `x = -0` (`-0 + 0 = +0`); `x + (-0) → x` is exact and is a rule.
//! * `a + b → b + a` is not done: with two NaN operands the payload returned may differ.
//! * `x == x → true` and `x - x → 0` fail for NaN and `inf`.
//!
//! Constant folding evaluates the op table's own functions on the splat's value, exactly as
//! the interpreter does (floats in `f64` rounded once to the result dtype, integers in
//! wrapping `i64` truncated to `i32`, [`Scalar::cast`] for `cast`). An integer op that is
//! undefined for the values (division by zero, a negative power) is not folded, so the error
//! still happens at run time. `iota`, `rand`, `matmul`, `gather`, `scatter_add` and reductions
//! that would combine more than one element are never folded.
//!
//! | rule | rewrite | why it is exact |
//! |---|---|---|
//! | `fold-unary` | `op(c) → c'` | the op table's function on `c` |
//! | `fold-binary` | `c1 op c2 → c` | the op table's function; not folded when an integer op fails |
//! | `fold-where` | `where(c, k, k) → k` for equal constant arms | both arms are the same splat |
//! | `fold-cast` | `cast(c) → c'` | [`Scalar::cast`] is the interpreter's cast |
//! | `fold-view` | `reshape/permute/expand/slice(c) → c` | a view of a splat is a splat |
//! | `fold-pad` | `pad(0) → 0` | padding adds `+0`, so only a `+0` (or `0`, `false`) splat stays one |
//! | `fold-concat` | `concat(c, c, ...) → c` | equal splats joined |
//! | `fold-arg` | `argmax/argmin(c) → 0` | every element ties; the first index wins |
//! | `reduce-empty` | `sum/prod` over no elements `→` identity | nothing is combined |
//! | `reduce-unit` | reduction over one element `→ reshape x` | nothing is combined |
//! | `where-const` | `where(true, a, b) → a`, `where(false, a, b) → b` | selection |
//! | `add-zero` | `x + (-0.0) → x`, `(-0.0) + x → x` (floats); `x + 0 → x`, `0 + x → x` (integers) | `-0.0` is the IEEE additive identity |
//! | `sub-zero` | `x - (+0.0) → x` (floats), `x - 0 → x` (integers) | `x - (+0) = x + (-0)` |
//! | `mul-one` | `x * 1 → x`, `1 * x → x` | IEEE multiplication by one is exact |
//! | `div-one` | `x / 1 → x` | exact |
//! | `pow-one` | `x ** 1 → x` | `pow(x, 1) = x`; integer `wrapping_pow(x, 1) = x` |
//! | `pow-two` | `x ** 2 → x * x` | `pow(x, 2)` is `x·x` correctly rounded, which `x * x` is; integer `wrapping_pow(x, 2) = x.wrapping_mul(x)` |
//! | `and-true` | `x and true → x`, `true and x → x` | logic |
//! | `or-false` | `x or false → x`, `false or x → x` | logic |
//! | `neg-neg` | `-(-x) → x` | negation flips the sign bit; wrapping negation is an involution |
//! | `not-not` | `not(not x) → x` | logic |
//! | `cast-same` | `cast x` to its own dtype `→ x` | converting to the same dtype is the identity |
//! | `cast-cast` | `cast(cast(x, b), c) → cast(x, c)` when `x → b` is lossless | see below |
//! | `reshape-self` | `reshape x` to its own shape `→ x` | same elements, same order |
//! | `reshape-reshape` | `reshape(reshape x, s1), s2 → reshape x, s2` | row-major order is kept by both |
//! | `expand-self` | `expand x` to its own shape `→ x` | nothing grows |
//! | `expand-expand` | `expand(expand x, s1), s2 → expand x, s2` | an axis that grows in either grows from size 1 |
//! | `permute-identity` | `permute x, [0,1,...] → x` | no axis moves |
//! | `permute-permute` | `permute(permute x, p), q → permute x, r` with `r[i] = p[q[i]]` | composition |
//! | `slice-identity` | a slice covering `x` in order `→ x` | every element is itself |
//! | `slice-slice` | `slice(slice x, s1, t1), s2, t2 → slice x, s1 + s2·t1, t2·t1` | index composition |
//! | `pad-none` | `pad x, lo=0, hi=0 → x` | nothing added |
//! | `concat-single` | `concat x → x` | nothing joined |
//!
//! `cast-cast` needs the inner cast to be lossless — `bool → anything`, `i32 → i64`,
//! `i32 → f64`, `f32 → f64`, `f16` or `bf16 → f32` or `f64` — so the value reaching the outer
//! cast is the original one, and a cast's result depends only on the value (the interpreter
//! widens `f32` to `f64` itself, so `f32 → f64 → c` is literally the computation of `f32 → c`,
//! and it converts to `f16`/`bf16` through `f32`; an `i32` value converts to an integer or a
//! float identically whether it arrives as `i32`, `i64` or an exact `f64`). A lossy inner cast
//! (`i64 → f64`, `i32 → f32`, `f32 → bf16`, `f16 → bf16`, any float to an integer) is left
//! alone.
//!
//! # Values that change the program
//!
//! Most rules look only at ops and types. The algebraic ones also match a constant operand by
//! its value, and [`is_structural`] lists exactly those values: `-0.0` and `+0.0` (`add-zero`,
//! `sub-zero`, and the `+0` of `fold-pad`), `1` (`mul-one`, `div-one`, `pow-one`), `2`
//! (`pow-two`), each in every numeric dtype, and both booleans (`where-const`, `and-true`,
//! `or-false`). The rules name their values through the same constants [`is_structural`]
//! reads, so the list and the rules cannot drift apart. The front end keeps these values in
//! its executable-cache key and passes every other constant to the compiled program as a
//! runtime operand, so a learning rate that changes each step does not compile a new program.
//! Such an operand is no longer a constant here, so the folding rules do not see it: the
//! computation happens at run time, with the same result.
//!
//! The pass visits live nodes once in topological order and applies rules to each until none
//! fires, so operands are final before their users are looked at and one run reaches a fixpoint.
//! No rule compares operands by node identity (such as `where(c, x, x) → x`), so merging
//! duplicates later ([`Cse`](super::cse::Cse)) cannot enable a new rewrite: the standard
//! pipeline run twice changes nothing the second time.

use crate::graph::{Graph, NodeId};
use crate::ops::{BinaryOp, Dims, IDims, Op, Scalar, UnaryOp};
use crate::types::{DType, TensorType};
use smallvec::{smallvec, SmallVec};

/// The `simplify` pass: constant folding and the exact algebraic rules of the module docs.
pub struct Simplify;

impl super::Pass for Simplify {
    fn name(&self) -> &'static str {
        "simplify"
    }

    fn run(&self, g: &mut Graph) -> bool {
        simplify(g, &mut |_, _| {})
    }
}

impl Simplify {
    /// Runs the pass and returns each rewrite as `(rule name, node)`, in the order applied.
    /// Tests use it to check which rule fired.
    pub fn run_logged(g: &mut Graph) -> Vec<(&'static str, NodeId)> {
        let mut log = Vec::new();
        simplify(g, &mut |rule, n| log.push((rule, n)));
        log
    }

    /// The names of all rules, in the order they are tried.
    pub fn rule_names() -> impl Iterator<Item = &'static str> {
        RULES.iter().map(|(name, _)| *name)
    }
}

/// What a rule turns node `n` into.
enum Rewrite {
    /// Every use of `n` becomes a use of this node, which `n` depends on.
    Use(NodeId),
    /// `n` becomes this op of these operands, of the same type, keeping its id and location.
    Op(Op, SmallVec<[NodeId; 3]>),
}

/// A rule: looks at node `n` and its operands and proposes a rewrite, or `None`.
type Rule = fn(&Graph, NodeId) -> Option<Rewrite>;

/// The rules, tried in this order on each node. The algebra of each is in the module docs.
#[rustfmt::skip]
const RULES: &[(&str, Rule)] = &[
    ("fold-unary", fold_unary),             // op(c) -> c'
    ("fold-binary", fold_binary),           // c1 op c2 -> c   (unless an integer op fails)
    ("fold-where", fold_where),             // where(c, k, k) -> k
    ("fold-cast", fold_cast),               // cast(c) -> c'
    ("fold-view", fold_view),               // reshape/permute/expand/slice(c) -> c
    ("fold-pad", fold_pad),                 // pad(0) -> 0
    ("fold-concat", fold_concat),           // concat(c, c, ...) -> c
    ("fold-arg", fold_arg),                 // argmax/argmin(c) -> 0
    ("reduce-empty", reduce_empty),         // sum/prod over no elements -> identity
    ("reduce-unit", reduce_unit),           // reduce over one element -> reshape x
    ("where-const", where_const),           // where(true, a, b) -> a; where(false, a, b) -> b
    ("add-zero", add_zero),                 // x + (-0.0) -> x (floats); x + 0 -> x (integers)
    ("sub-zero", sub_zero),                 // x - (+0.0) -> x
    ("mul-one", mul_one),                   // x * 1 -> x
    ("div-one", div_one),                   // x / 1 -> x
    ("pow-one", pow_one),                   // x ** 1 -> x
    ("pow-two", pow_two),                   // x ** 2 -> x * x
    ("and-true", and_true),                 // x and true -> x
    ("or-false", or_false),                 // x or false -> x
    ("neg-neg", neg_neg),                   // -(-x) -> x
    ("not-not", not_not),                   // not(not x) -> x
    ("cast-same", cast_same),               // cast x to its own dtype -> x
    ("cast-cast", cast_cast),               // cast(cast(x, b), c) -> cast(x, c) if x -> b is lossless
    ("reshape-self", reshape_self),         // reshape x to its shape -> x
    ("reshape-reshape", reshape_reshape),   // reshape(reshape x) -> reshape x
    ("expand-self", expand_self),           // expand x to its shape -> x
    ("expand-expand", expand_expand),       // expand(expand x) -> expand x
    ("permute-identity", permute_identity), // permute x, [0, 1, ...] -> x
    ("permute-permute", permute_permute),   // permute(permute x, p), q -> permute x, p∘q
    ("slice-identity", slice_identity),     // slice covering x in order -> x
    ("slice-slice", slice_slice),           // slice(slice x) -> slice x, composed
    ("pad-none", pad_none),                 // pad x, lo=0, hi=0 -> x
    ("concat-single", concat_single),       // concat x -> x
];

/// Whether `rewrite` of `n` is right at every size of a symbolic graph: the value it uses has
/// `n`'s type, expressions included, or the op it makes types as `n` with no new guard.
fn holds_for_every_size(g: &Graph, n: NodeId, rewrite: &Rewrite) -> bool {
    match rewrite {
        Rewrite::Use(x) => g.ty(*x) == g.ty(n),
        Rewrite::Op(op, args) => {
            let before = g.guards().len();
            matches!(g.infer_with_guards(op, args), Ok((ty, guards)) if ty == *g.ty(n) && guards == before)
        }
    }
}

/// Applies the rules to every live node in topological order, each node until no rule fires.
fn simplify(g: &mut Graph, log: &mut dyn FnMut(&'static str, NodeId)) -> bool {
    let Some(order) = g.live_order() else {
        return false;
    };
    let mut changed = false;
    for n in order {
        'node: loop {
            for &(name, rule) in RULES {
                let Some(rewrite) = rule(g, n) else {
                    continue;
                };
                log(name, n);
                changed = true;
                // Over symbolic sizes a rule decided at the hints may not hold for every size:
                // it applies only where the types agree as expressions and it adds no guard.
                if g.is_symbolic() && !holds_for_every_size(g, n, &rewrite) {
                    continue;
                }
                match rewrite {
                    Rewrite::Use(x) => {
                        g.replace_all_uses(n, x);
                        break 'node;
                    }
                    Rewrite::Op(op, args) => {
                        // A rule's rewrite keeps the type by construction; failing is our bug.
                        if let Err(e) = g.set_op(n, op, &args) {
                            panic!("simplify: rule `{name}` made an ill-typed rewrite of {n}: {e}");
                        }
                        continue 'node;
                    }
                }
            }
            break;
        }
    }
    changed
}

// ---------------------------------------------------------------------------------------------
// The values the rules match.

/// `+0` (`Scalar::Int(0)` converts to `+0.0` in a float dtype): `add-zero` on integers,
/// `sub-zero`, and the zero `pad` writes (`fold-pad`).
const ZERO: Scalar = Scalar::Int(0);
/// `-0.0`, the IEEE additive identity: `add-zero` on floats.
const NEG_ZERO: Scalar = Scalar::Float(-0.0);
/// `1`: `mul-one`, `div-one`, `pow-one`.
const ONE: Scalar = Scalar::Int(1);
/// `2`: `pow-two`.
const TWO: Scalar = Scalar::Int(2);
/// Every numeric value some rule matches a constant operand against.
const MATCHED: [Scalar; 4] = [ZERO, NEG_ZERO, ONE, TWO];

/// Whether some rule of this pass rewrites a node differently because one of its operands is
/// a constant of exactly `value` (of dtype `dtype`), rather than any other value of that
/// dtype: `±0`, `1` and `2` in a numeric dtype, and every `bool` (the module docs say which
/// rule matches which value). The front end keeps such constants in the compiled program and
/// in its cache key, and makes every other constant a runtime operand (see the README's
/// section on what compiles).
///
/// ```
/// use tenjit_ir::passes::simplify::is_structural;
/// use tenjit_ir::{DType, Scalar};
/// assert!(is_structural(Scalar::Float(1.0), DType::F32)); // x * 1 -> x
/// assert!(is_structural(Scalar::Int(2), DType::I64)); // x ** 2 -> x * x
/// assert!(!is_structural(Scalar::Float(0.37), DType::F32)); // a learning rate
/// assert!(!is_structural(Scalar::Int(-1), DType::I32));
/// ```
pub fn is_structural(value: Scalar, dtype: DType) -> bool {
    dtype == DType::Bool || MATCHED.iter().any(|m| m.cast(dtype) == value.cast(dtype))
}

// ---------------------------------------------------------------------------------------------
// Helpers.

/// The value of `n` if it is a constant splat.
fn splat(g: &Graph, n: NodeId) -> Option<Scalar> {
    match g.op(n) {
        Op::Const { value, .. } => Some(*value),
        _ => None,
    }
}

/// Whether `n` is a constant splat of exactly `value` (compared by bits, after converting
/// `value` to `n`'s dtype).
fn is_splat_of(g: &Graph, n: NodeId, value: Scalar) -> bool {
    splat(g, n) == Some(value.cast(g.ty(n).dtype))
}

/// The single operand of `n`.
fn arg0(g: &Graph, n: NodeId) -> NodeId {
    g.args(n)[0]
}

/// The operands of a binary node.
fn pair(g: &Graph, n: NodeId) -> (NodeId, NodeId) {
    let args = g.args(n);
    (args[0], args[1])
}

/// `n` rewritten in place to a splat of `value` of type `ty`.
fn constant(value: Scalar, ty: &TensorType) -> Rewrite {
    Rewrite::Op(Op::Const { value: value.cast(ty.dtype), ty: ty.clone() }, SmallVec::new())
}

/// An operand value as the interpreter computes with it: `f64` for floats, `i64` for integers
/// and booleans.
enum Num {
    F(f64),
    I(i64),
}

fn num(value: Scalar, dtype: DType) -> Num {
    if dtype.is_float() {
        Num::F(value.as_f64())
    } else {
        Num::I(value.as_i64())
    }
}

/// Whether the binary node `n` is `op` with one operand a splat of `value` (on the right, or
/// on either side when `either_side`); returns the other operand.
fn binary_with(g: &Graph, n: NodeId, op: BinaryOp, value: Scalar, either_side: bool) -> Option<NodeId> {
    if *g.op(n) != Op::Binary(op) {
        return None;
    }
    let (a, b) = pair(g, n);
    if is_splat_of(g, b, value) {
        Some(a)
    } else if either_side && is_splat_of(g, a, value) {
        Some(b)
    } else {
        None
    }
}

/// Number of elements a reduction combines into each result element.
fn reduced_count(g: &Graph, n: NodeId) -> Option<usize> {
    match g.op(n) {
        Op::Reduce { axes, .. } => {
            // A symbolic count is no number.
            let shape = &g.ty(arg0(g, n)).shape;
            if let Some(dims) = shape.sym_dims_ref() {
                if axes.iter().any(|&a| dims[a].as_const().is_none()) {
                    return None;
                }
            }
            let dims = shape.dims();
            Some(axes.iter().map(|&a| dims[a]).product())
        }
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Constant folding.

/// `op(c) → c'`: the op table's function applied to the splat's value.
fn fold_unary(g: &Graph, n: NodeId) -> Option<Rewrite> {
    let Op::Unary(u) = g.op(n) else {
        return None;
    };
    let c = splat(g, arg0(g, n))?;
    let ty = g.ty(n);
    let spec = u.spec();
    let value = match num(c, ty.dtype) {
        Num::F(x) => Scalar::Float((spec.float)(x)),
        Num::I(x) => Scalar::Int((spec.int)(x)),
    };
    Some(constant(value, ty))
}

/// `c1 op c2 → c`, unless the integer function reports an error (left for run time).
fn fold_binary(g: &Graph, n: NodeId) -> Option<Rewrite> {
    let Op::Binary(b) = g.op(n) else {
        return None;
    };
    let (x, y) = pair(g, n);
    let (cx, cy) = (splat(g, x)?, splat(g, y)?);
    let spec = b.spec();
    let value = match (num(cx, g.ty(x).dtype), num(cy, g.ty(y).dtype)) {
        (Num::F(a), Num::F(b)) => Scalar::Float((spec.float)(a, b)),
        (Num::I(a), Num::I(b)) => Scalar::Int((spec.int)(a, b).ok()?),
        _ => return None,
    };
    Some(constant(value, g.ty(n)))
}

/// `where(c, k, k) → k` when both arms are equal splats.
fn fold_where(g: &Graph, n: NodeId) -> Option<Rewrite> {
    if *g.op(n) != Op::Where {
        return None;
    }
    let args = g.args(n);
    let (a, b) = (splat(g, args[1])?, splat(g, args[2])?);
    (a == b).then(|| constant(a, g.ty(n)))
}

/// `cast(c) → c'` with [`Scalar::cast`], which is the interpreter's conversion.
fn fold_cast(g: &Graph, n: NodeId) -> Option<Rewrite> {
    let Op::Cast { dtype } = g.op(n) else {
        return None;
    };
    let c = splat(g, arg0(g, n))?;
    Some(constant(c.cast(*dtype), g.ty(n)))
}

/// `reshape/permute/expand/slice(c) → c`: every element of a view of a splat is the value.
fn fold_view(g: &Graph, n: NodeId) -> Option<Rewrite> {
    match g.op(n) {
        Op::Reshape { .. } | Op::Permute { .. } | Op::Expand { .. } | Op::Slice { .. } => {
            Some(constant(splat(g, arg0(g, n))?, g.ty(n)))
        }
        _ => None,
    }
}

/// `pad(0) → 0`: padding a `+0` splat with zeros keeps it a splat.
fn fold_pad(g: &Graph, n: NodeId) -> Option<Rewrite> {
    let Op::Pad { .. } = g.op(n) else {
        return None;
    };
    // The zero `pad` writes: `+0.0`, `0` or `false`.
    is_splat_of(g, arg0(g, n), ZERO).then(|| constant(ZERO, g.ty(n)))
}

/// `concat(c, c, ...) → c` when every operand is a splat of the same value.
fn fold_concat(g: &Graph, n: NodeId) -> Option<Rewrite> {
    let Op::Concat { .. } = g.op(n) else {
        return None;
    };
    let args = g.args(n);
    let c = splat(g, args[0])?;
    args.iter().all(|&a| splat(g, a) == Some(c)).then(|| constant(c, g.ty(n)))
}

/// `argmax/argmin(c) → 0`: all elements tie (NaN ones too), and the first index wins.
fn fold_arg(g: &Graph, n: NodeId) -> Option<Rewrite> {
    let Op::ArgReduce { .. } = g.op(n) else {
        return None;
    };
    splat(g, arg0(g, n))?;
    Some(constant(Scalar::Int(0), g.ty(n)))
}

/// `sum/prod` over zero elements `→` the op's identity (the operand has no elements to read).
fn reduce_empty(g: &Graph, n: NodeId) -> Option<Rewrite> {
    let Op::Reduce { op, .. } = g.op(n) else {
        return None;
    };
    let identity = op.identity()?;
    (reduced_count(g, n)? == 0).then(|| constant(identity, g.ty(n)))
}

/// A reduction over exactly one element per result `→ reshape x`: nothing is combined, and
/// the interpreter's one rounding of a single element is the identity.
fn reduce_unit(g: &Graph, n: NodeId) -> Option<Rewrite> {
    (reduced_count(g, n)? == 1)
        .then(|| Rewrite::Op(Op::Reshape { shape: g.ty(n).shape.clone() }, smallvec![arg0(g, n)]))
}

// ---------------------------------------------------------------------------------------------
// Algebra.

/// `where(true, a, b) → a`, `where(false, a, b) → b`.
fn where_const(g: &Graph, n: NodeId) -> Option<Rewrite> {
    if *g.op(n) != Op::Where {
        return None;
    }
    let args = g.args(n);
    match splat(g, args[0])? {
        Scalar::Bool(true) => Some(Rewrite::Use(args[1])),
        Scalar::Bool(false) => Some(Rewrite::Use(args[2])),
        Scalar::Int(_) | Scalar::Float(_) => None,
    }
}

/// `x + (-0.0) → x` and `(-0.0) + x → x` for floats (`-0.0 + 0.0 = 0.0`, `-0.0 + -0.0 = -0.0`,
/// and `y + -0.0 = y` otherwise); `x + 0 → x` and `0 + x → x` for integers. `x + (+0.0)` stays:
/// it turns `-0.0` into `+0.0`.
fn add_zero(g: &Graph, n: NodeId) -> Option<Rewrite> {
    let zero = if g.ty(n).dtype.is_float() { NEG_ZERO } else { ZERO };
    binary_with(g, n, BinaryOp::Add, zero, true).map(Rewrite::Use)
}

/// `x - (+0.0) → x` (it is `x + (-0.0)`), `x - 0 → x` for integers. `x - (-0.0)` stays.
fn sub_zero(g: &Graph, n: NodeId) -> Option<Rewrite> {
    binary_with(g, n, BinaryOp::Sub, ZERO, false).map(Rewrite::Use)
}

/// `x * 1 → x`, `1 * x → x`: multiplication by one is exact (NaN stays NaN).
fn mul_one(g: &Graph, n: NodeId) -> Option<Rewrite> {
    binary_with(g, n, BinaryOp::Mul, ONE, true).map(Rewrite::Use)
}

/// `x / 1 → x`: division by one is exact.
fn div_one(g: &Graph, n: NodeId) -> Option<Rewrite> {
    binary_with(g, n, BinaryOp::Div, ONE, false).map(Rewrite::Use)
}

/// `x ** 1 → x`: `pow(x, 1) = x` exactly, and `wrapping_pow(x, 1) = x`.
fn pow_one(g: &Graph, n: NodeId) -> Option<Rewrite> {
    binary_with(g, n, BinaryOp::Pow, ONE, false).map(Rewrite::Use)
}

/// `x ** 2 → x * x`: the square, correctly rounded either way (and a multiplication instead of
/// a transcendental call).
fn pow_two(g: &Graph, n: NodeId) -> Option<Rewrite> {
    if *g.op(n) != Op::Binary(BinaryOp::Pow) {
        return None;
    }
    let args = g.args(n);
    is_splat_of(g, args[1], TWO)
        .then(|| Rewrite::Op(Op::Binary(BinaryOp::Mul), SmallVec::from_slice(&[args[0], args[0]])))
}

/// `x and true → x`, `true and x → x`.
fn and_true(g: &Graph, n: NodeId) -> Option<Rewrite> {
    binary_with(g, n, BinaryOp::And, Scalar::Bool(true), true).map(Rewrite::Use)
}

/// `x or false → x`, `false or x → x`.
fn or_false(g: &Graph, n: NodeId) -> Option<Rewrite> {
    binary_with(g, n, BinaryOp::Or, Scalar::Bool(false), true).map(Rewrite::Use)
}

/// `u(u(x)) → x` for an involution `u`.
fn involution(g: &Graph, n: NodeId, u: UnaryOp) -> Option<Rewrite> {
    if *g.op(n) != Op::Unary(u) {
        return None;
    }
    let inner = arg0(g, n);
    (*g.op(inner) == Op::Unary(u)).then(|| Rewrite::Use(arg0(g, inner)))
}

/// `-(-x) → x`: negation flips the sign bit (floats) or wraps (integers); twice is the identity.
fn neg_neg(g: &Graph, n: NodeId) -> Option<Rewrite> {
    involution(g, n, UnaryOp::Neg)
}

/// `not(not x) → x`.
fn not_not(g: &Graph, n: NodeId) -> Option<Rewrite> {
    involution(g, n, UnaryOp::Not)
}

/// `cast x` to its own dtype `→ x`.
fn cast_same(g: &Graph, n: NodeId) -> Option<Rewrite> {
    let Op::Cast { dtype } = g.op(n) else {
        return None;
    };
    let x = arg0(g, n);
    (g.ty(x).dtype == *dtype).then_some(Rewrite::Use(x))
}

/// Whether converting `from → to` keeps every value exactly (so any later cast sees the
/// original value).
fn lossless(from: DType, to: DType) -> bool {
    from == to
        || from == DType::Bool
        || matches!(
            (from, to),
            (DType::I32, DType::I64)
                | (DType::I32, DType::F64)
                | (DType::F32, DType::F64)
                | (DType::F16 | DType::BF16, DType::F32 | DType::F64)
        )
}

/// `cast(cast(x, b), c) → cast(x, c)` when `x → b` is lossless.
fn cast_cast(g: &Graph, n: NodeId) -> Option<Rewrite> {
    let Op::Cast { dtype } = g.op(n) else {
        return None;
    };
    let inner = arg0(g, n);
    let Op::Cast { dtype: mid } = g.op(inner) else {
        return None;
    };
    let x = arg0(g, inner);
    lossless(g.ty(x).dtype, *mid).then(|| Rewrite::Op(Op::Cast { dtype: *dtype }, smallvec![x]))
}

/// `reshape x` to its own shape `→ x`.
fn reshape_self(g: &Graph, n: NodeId) -> Option<Rewrite> {
    let Op::Reshape { shape } = g.op(n) else {
        return None;
    };
    let x = arg0(g, n);
    (g.ty(x).shape == *shape).then_some(Rewrite::Use(x))
}

/// `reshape(reshape x, s1), s2 → reshape x, s2`: both keep row-major order.
fn reshape_reshape(g: &Graph, n: NodeId) -> Option<Rewrite> {
    let Op::Reshape { shape } = g.op(n) else {
        return None;
    };
    let inner = arg0(g, n);
    let Op::Reshape { .. } = g.op(inner) else {
        return None;
    };
    Some(Rewrite::Op(Op::Reshape { shape: shape.clone() }, smallvec![arg0(g, inner)]))
}

/// `expand x` to its own shape `→ x`.
fn expand_self(g: &Graph, n: NodeId) -> Option<Rewrite> {
    let Op::Expand { shape } = g.op(n) else {
        return None;
    };
    let x = arg0(g, n);
    (g.ty(x).shape == *shape).then_some(Rewrite::Use(x))
}

/// `expand(expand x, s1), s2 → expand x, s2`: an axis of `x` either keeps its size through
/// both or has size 1, so one expand reaches `s2`.
fn expand_expand(g: &Graph, n: NodeId) -> Option<Rewrite> {
    let Op::Expand { shape } = g.op(n) else {
        return None;
    };
    let inner = arg0(g, n);
    let Op::Expand { .. } = g.op(inner) else {
        return None;
    };
    Some(Rewrite::Op(Op::Expand { shape: shape.clone() }, smallvec![arg0(g, inner)]))
}

/// `permute x, [0, 1, ..., r-1] → x`.
fn permute_identity(g: &Graph, n: NodeId) -> Option<Rewrite> {
    let Op::Permute { perm } = g.op(n) else {
        return None;
    };
    perm.iter().enumerate().all(|(i, &p)| i == p).then(|| Rewrite::Use(arg0(g, n)))
}

/// `permute(permute x, p), q → permute x, r` with `r[i] = p[q[i]]`: result axis `i` is the
/// inner result's axis `q[i]`, which is `x`'s axis `p[q[i]]`.
fn permute_permute(g: &Graph, n: NodeId) -> Option<Rewrite> {
    let Op::Permute { perm: q } = g.op(n) else {
        return None;
    };
    let inner = arg0(g, n);
    let Op::Permute { perm: p } = g.op(inner) else {
        return None;
    };
    let perm: Dims = q.iter().map(|&i| p[i]).collect();
    Some(Rewrite::Op(Op::Permute { perm }, smallvec![arg0(g, inner)]))
}

/// A slice that keeps every element of `x` in place `→ x`: same shape, and on each axis of
/// more than one element start 0 and step 1 (an empty `x` has nothing to move).
fn slice_identity(g: &Graph, n: NodeId) -> Option<Rewrite> {
    let Op::Slice { start, step, size, bounds: None } = g.op(n) else {
        return None;
    };
    let x = arg0(g, n);
    let dims = g.ty(x).shape.dims();
    let same = dims == size.as_slice()
        && (dims.contains(&0) || (0..dims.len()).all(|d| dims[d] <= 1 || (start[d] == 0 && step[d] == 1)));
    same.then_some(Rewrite::Use(x))
}

/// `slice(slice x, s1, t1), s2, t2, size → slice x, s1 + s2·t1, t2·t1, size`: result element
/// `i` is inner element `s2 + i·t2`, which is `x`'s element `s1 + (s2 + i·t2)·t1`. Skipped if
/// the arithmetic overflows.
fn slice_slice(g: &Graph, n: NodeId) -> Option<Rewrite> {
    let Op::Slice { start: s2, step: t2, size, bounds: None } = g.op(n) else {
        return None;
    };
    let inner = arg0(g, n);
    let Op::Slice { start: s1, step: t1, bounds: None, .. } = g.op(inner) else {
        return None;
    };
    let start: Option<IDims> =
        (0..size.len()).map(|d| s1[d].checked_add(s2[d].checked_mul(t1[d])?)).collect();
    let step: Option<IDims> = (0..size.len()).map(|d| t2[d].checked_mul(t1[d])).collect();
    let op = Op::Slice { start: start?, step: step?, size: size.clone(), bounds: None };
    let x = arg0(g, inner);
    // An axis the outer slice leaves empty may carry any start; keep the rewrite only when the
    // type rule accepts it, as it does whenever the result is non-empty.
    op.infer(&[g.ty(x)]).ok()?;
    Some(Rewrite::Op(op, smallvec![x]))
}

/// `pad x, lo=0, hi=0 → x`.
fn pad_none(g: &Graph, n: NodeId) -> Option<Rewrite> {
    let Op::Pad { lo, hi } = g.op(n) else {
        return None;
    };
    lo.iter().chain(hi.iter()).all(|&p| p == 0).then(|| Rewrite::Use(arg0(g, n)))
}

/// `concat x → x`: a concatenation of one operand.
fn concat_single(g: &Graph, n: NodeId) -> Option<Rewrite> {
    let Op::Concat { .. } = g.op(n) else {
        return None;
    };
    let args = g.args(n);
    (args.len() == 1).then_some(Rewrite::Use(args[0]))
}
