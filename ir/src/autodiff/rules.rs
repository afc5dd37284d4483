//! Vector-Jacobian products: the elementwise rules the op table points at, and [`vjp`], the
//! one exhaustive match over every op.
//!
//! A rule receives the operands, the op's result `y` and the cotangent `g` of `y`, and returns
//! one cotangent per operand (`None` for operands that carry no gradient: indices, conditions).

use super::{Emit, GradError};
use crate::graph::NodeId;
use crate::ops::{BinaryOp, ConvOp, ConvRole, Op, PoolOp, PoolRole, ReduceOp, UnaryOp};
use crate::types::{Shape, TensorType};
use smallvec::SmallVec;

/// The VJP of an elementwise unary op: `(emit, x, y, g) -> dx`.
pub type UnaryVjp = fn(&mut Emit, NodeId, NodeId, NodeId) -> Result<NodeId, GradError>;

/// The VJP of an elementwise binary op: `(emit, a, b, y, g) -> (da, db)`.
pub type BinaryVjp = fn(&mut Emit, NodeId, NodeId, NodeId, NodeId) -> Result<(NodeId, NodeId), GradError>;

type R1 = Result<NodeId, GradError>;
type R2 = Result<(NodeId, NodeId), GradError>;

/// `-g`.
pub fn neg(e: &mut Emit, _x: NodeId, _y: NodeId, g: NodeId) -> R1 {
    e.neg(g)
}

/// `g * sign(x)`, with `sign(0) = 0`.
pub fn abs(e: &mut Emit, x: NodeId, _y: NodeId, g: NodeId) -> R1 {
    let zero = e.zeros_like(x)?;
    let pos = e.binary(BinaryOp::Gt, x, zero)?;
    let neg = e.binary(BinaryOp::Lt, x, zero)?;
    let ng = e.neg(g)?;
    let lower = e.keep(neg, ng)?;
    e.select(pos, g, lower)
}

/// `g / (2 y)`.
pub fn sqrt(e: &mut Emit, _x: NodeId, y: NodeId, g: NodeId) -> R1 {
    let two_y = e.scale(y, 2.0)?;
    e.div(g, two_y)
}

/// `g * y`.
pub fn exp(e: &mut Emit, _x: NodeId, y: NodeId, g: NodeId) -> R1 {
    e.mul(g, y)
}

/// `g / x`.
pub fn log(e: &mut Emit, x: NodeId, _y: NodeId, g: NodeId) -> R1 {
    e.div(g, x)
}

/// `g * cos(x)`.
pub fn sin(e: &mut Emit, x: NodeId, _y: NodeId, g: NodeId) -> R1 {
    let c = e.unary(UnaryOp::Cos, x)?;
    e.mul(g, c)
}

/// `-g * sin(x)`.
pub fn cos(e: &mut Emit, x: NodeId, _y: NodeId, g: NodeId) -> R1 {
    let s = e.unary(UnaryOp::Sin, x)?;
    let ns = e.neg(s)?;
    e.mul(g, ns)
}

/// `g * (1 - y²)`.
pub fn tanh(e: &mut Emit, _x: NodeId, y: NodeId, g: NodeId) -> R1 {
    let yy = e.mul(y, y)?;
    let one = e.constant(1.0, y)?;
    let d = e.binary(BinaryOp::Sub, one, yy)?;
    e.mul(g, d)
}

/// `g / (1 + |x|)²`: d softsign(x) = 1 / (1 + |x|)².
pub fn softsign(e: &mut Emit, x: NodeId, _y: NodeId, g: NodeId) -> R1 {
    let ax = e.unary(UnaryOp::Abs, x)?;
    let one = e.constant(1.0, x)?;
    let d = e.binary(BinaryOp::Add, one, ax)?;
    let dd = e.mul(d, d)?;
    e.div(g, dd)
}

/// `g * 2/√π * e^(-x²)`.
pub fn erf(e: &mut Emit, x: NodeId, _y: NodeId, g: NodeId) -> R1 {
    let xx = e.mul(x, x)?;
    let nxx = e.neg(xx)?;
    let ex = e.unary(UnaryOp::Exp, nxx)?;
    let d = e.scale(ex, std::f64::consts::FRAC_2_SQRT_PI)?;
    e.mul(g, d)
}

/// Zero: piecewise-constant functions (`floor`, `ceil`).
pub fn zero(e: &mut Emit, x: NodeId, _y: NodeId, _g: NodeId) -> R1 {
    e.zeros_like(x)
}

/// `(g, g)`.
pub fn add(_e: &mut Emit, _a: NodeId, _b: NodeId, _y: NodeId, g: NodeId) -> R2 {
    Ok((g, g))
}

/// `(g, -g)`.
pub fn sub(e: &mut Emit, _a: NodeId, _b: NodeId, _y: NodeId, g: NodeId) -> R2 {
    Ok((g, e.neg(g)?))
}

/// `(g b, g a)`.
pub fn mul(e: &mut Emit, a: NodeId, b: NodeId, _y: NodeId, g: NodeId) -> R2 {
    Ok((e.mul(g, b)?, e.mul(g, a)?))
}

/// `(g / b, -g a / b²)`.
pub fn div(e: &mut Emit, a: NodeId, b: NodeId, _y: NodeId, g: NodeId) -> R2 {
    let da = e.div(g, b)?;
    let ng = e.neg(g)?;
    let nga = e.mul(ng, a)?;
    let bb = e.mul(b, b)?;
    Ok((da, e.div(nga, bb)?))
}

/// `a ** b`: `g b a^(b-1)` (zero where `b == 0`) and `g y ln(a)` (zero where `a == 0` and
/// `b >= 0`), PyTorch's masks.
pub fn pow(e: &mut Emit, a: NodeId, b: NodeId, y: NodeId, g: NodeId) -> R2 {
    let zero = e.zeros_like(a)?;
    let one = e.constant(1.0, b)?;
    let bm1 = e.binary(BinaryOp::Sub, b, one)?;
    let p = e.binary(BinaryOp::Pow, a, bm1)?;
    let bp = e.mul(b, p)?;
    let ga = e.mul(g, bp)?;
    let b_zero = e.binary(BinaryOp::Eq, b, zero)?;
    let da = e.select(b_zero, zero, ga)?;
    let ln = e.unary(UnaryOp::Log, a)?;
    let yl = e.mul(y, ln)?;
    let gb = e.mul(g, yl)?;
    let a_zero = e.binary(BinaryOp::Eq, a, zero)?;
    let b_nonneg = e.binary(BinaryOp::Ge, b, zero)?;
    let mask = e.binary(BinaryOp::And, a_zero, b_nonneg)?;
    let db = e.select(mask, zero, gb)?;
    Ok((da, db))
}

/// The gradient of `maximum`/`minimum` for the operand that wins where `wins` holds: all of
/// `g` where it wins, half where they tie, nothing where it loses.
fn extremum(e: &mut Emit, a: NodeId, b: NodeId, g: NodeId, loses: BinaryOp) -> R2 {
    let half = e.scale(g, 0.5)?;
    let tie = e.binary(BinaryOp::Eq, a, b)?;
    let shared = e.select(tie, half, g)?;
    let zero = e.zeros_like(g)?;
    let a_loses = e.binary(loses, a, b)?;
    let b_loses = e.binary(loses, b, a)?;
    Ok((e.select(a_loses, zero, shared)?, e.select(b_loses, zero, shared)?))
}

/// `maximum(a, b)`: `g` to the larger, half to each on a tie.
pub fn maximum(e: &mut Emit, a: NodeId, b: NodeId, _y: NodeId, g: NodeId) -> R2 {
    extremum(e, a, b, g, BinaryOp::Lt)
}

/// `minimum(a, b)`: `g` to the smaller, half to each on a tie.
pub fn minimum(e: &mut Emit, a: NodeId, b: NodeId, _y: NodeId, g: NodeId) -> R2 {
    extremum(e, a, b, g, BinaryOp::Gt)
}

/// `floor_divide`: zero (piecewise constant).
pub fn floor_div(e: &mut Emit, a: NodeId, b: NodeId, _y: NodeId, _g: NodeId) -> R2 {
    Ok((e.zeros_like(a)?, e.zeros_like(b)?))
}

/// `remainder(a, b) = a - floor(a / b) b`: `(g, -g floor(a / b))`.
pub fn rem(e: &mut Emit, a: NodeId, b: NodeId, _y: NodeId, g: NodeId) -> R2 {
    let q = e.binary(BinaryOp::FloorDiv, a, b)?;
    let gq = e.mul(g, q)?;
    Ok((g, e.neg(gq)?))
}

/// Cotangents of the operands of `op` (operands `args`, result `y`, cotangent `g`); `wanted`
/// says which operands need one (a rule may skip the others).
pub fn vjp(
    e: &mut Emit,
    op: &Op,
    args: &[NodeId],
    y: NodeId,
    g: NodeId,
    wanted: &[bool],
) -> Result<SmallVec<[Option<NodeId>; 3]>, GradError> {
    let one = |d: NodeId| -> SmallVec<[Option<NodeId>; 3]> { smallvec::smallvec![Some(d)] };
    Ok(match op {
        Op::Input { .. }
        | Op::Const { .. }
        | Op::Size { .. }
        | Op::Iota { .. }
        | Op::Rand { .. }
        | Op::ArgReduce { .. } => SmallVec::new(),
        Op::Unary(u) => match u.spec().vjp {
            Some(rule) => one(rule(e, args[0], y, g)?),
            None => smallvec::smallvec![None],
        },
        Op::Binary(b) => match b.spec().vjp {
            Some(rule) => {
                let (da, db) = rule(e, args[0], args[1], y, g)?;
                smallvec::smallvec![Some(da), Some(db)]
            }
            None => smallvec::smallvec![None, None],
        },
        Op::Where => {
            let zero = e.zeros_like(g)?;
            let da = if wanted[1] { Some(e.select(args[0], g, zero)?) } else { None };
            let db = if wanted[2] { Some(e.select(args[0], zero, g)?) } else { None };
            smallvec::smallvec![None, da, db]
        }
        Op::Cast { dtype } => {
            // Only float-to-float casts carry gradients; a cast to an integer or bool stops it.
            let from = e.ty(args[0]).dtype;
            if from.is_float() && dtype.is_float() {
                one(e.cast(g, from)?)
            } else {
                smallvec::smallvec![None]
            }
        }
        Op::Reduce { op, axes } => one(reduce(e, *op, axes, args[0], y, g)?),
        Op::Reshape { .. } => {
            let shape = e.shape(args[0]);
            one(e.reshape(g, shape)?)
        }
        Op::Permute { perm } => {
            let mut inverse: SmallVec<[usize; 4]> = SmallVec::from_elem(0, perm.len());
            for (i, &p) in perm.iter().enumerate() {
                inverse[p] = i;
            }
            one(e.op(Op::Permute { perm: inverse }, &[g])?)
        }
        Op::Expand { shape } => {
            let from = e.shape(args[0]);
            let axes: SmallVec<[usize; 4]> =
                (0..from.rank()).filter(|&d| from.0[d] == 1 && shape.0[d] != 1).collect();
            let s = e.sum(g, &axes)?;
            one(e.reshape(s, from)?)
        }
        Op::Slice { start, step, size, .. } => {
            let from = e.shape(args[0]);
            let mut d = g;
            for axis in 0..from.rank() {
                d = unslice(e, d, axis, start[axis], step[axis], size[axis], from.0[axis])?;
            }
            one(d)
        }
        Op::Pad { lo, .. } => {
            let from = e.shape(args[0]);
            let start = lo.iter().map(|&l| l as isize).collect();
            let step = SmallVec::from_elem(1, from.rank());
            one(e.op(Op::Slice { start, step, size: from.0.clone(), bounds: None }, &[g])?)
        }
        Op::Concat { axis } => {
            let out = e.shape(g);
            let mut offset = 0;
            let mut grads = SmallVec::new();
            for (&a, &w) in args.iter().zip(wanted) {
                let part = e.shape(a);
                if w {
                    let mut start: SmallVec<[isize; 4]> = SmallVec::from_elem(0, out.rank());
                    start[*axis] = offset as isize;
                    let step = SmallVec::from_elem(1, out.rank());
                    grads.push(Some(
                        e.op(Op::Slice { start, step, size: part.0.clone(), bounds: None }, &[g])?,
                    ));
                } else {
                    grads.push(None);
                }
                offset += part.0[*axis];
            }
            grads
        }
        Op::Matmul => {
            let (a, b) = (args[0], args[1]);
            let da = if wanted[0] {
                let bt = transpose(e, b)?;
                Some(e.op(Op::Matmul, &[g, bt])?)
            } else {
                None
            };
            let db = if wanted[1] {
                let at = transpose(e, a)?;
                Some(e.op(Op::Matmul, &[at, g])?)
            } else {
                None
            };
            smallvec::smallvec![da, db]
        }
        Op::Conv(c) => conv_vjp(e, c, args, g, wanted)?,
        // `x` only chooses positions; select and scatter are each other's transposes in the
        // other operand.
        Op::Pool(p) => {
            let role = match p.role {
                PoolRole::Select => PoolRole::Scatter,
                PoolRole::Scatter => PoolRole::Select,
            };
            let d =
                if wanted[1] { Some(e.op(Op::Pool(PoolOp { role, ..*p }), &[args[0], g])?) } else { None };
            smallvec::smallvec![None, d]
        }
        Op::Loop(l) => super::loops::vjp(e, l, args, g, wanted)?,
        Op::Gather { axis } => smallvec::smallvec![Some(ungather(e, *axis, args[0], args[1], g)?), None],
        Op::ScatterAdd { axis } => {
            let dsrc = if wanted[2] { Some(e.op(Op::Gather { axis: *axis }, &[g, args[1]])?) } else { None };
            smallvec::smallvec![Some(g), None, dsrc]
        }
    })
}

/// Cotangents of a convolution op's two operands. The three ops are one bilinear form
/// `⟨conv2d(x, w), dy⟩ = ⟨x, conv2d_input(dy, w)⟩ = ⟨w, conv2d_weight(x, dy)⟩` (see
/// `ops/conv.rs`), so each operand's cotangent is another of the three applied to the cotangent
/// `g` and the other operand.
fn conv_vjp(
    e: &mut Emit,
    c: &ConvOp,
    args: &[NodeId],
    g: NodeId,
    wanted: &[bool],
) -> Result<SmallVec<[Option<NodeId>; 3]>, GradError> {
    let (a, b) = (args[0], args[1]);
    let geometry = c.geometry;
    let dims = |e: &Emit, n: NodeId| -> [usize; 2] {
        let s = e.shape(n);
        [s.0[2], s.0[3]]
    };
    let op = |role| Op::Conv(ConvOp { role, geometry });
    let forward = op(ConvRole::Forward);
    let pair = |e: &mut Emit, want: bool, role: Option<ConvRole>, l: NodeId, r: NodeId| match role {
        Some(role) if want => e.op(op(role), &[l, r]).map(Some),
        None if want => e.op(forward.clone(), &[l, r]).map(Some),
        _ => Ok(None),
    };
    let (da, db) = match c.role {
        // y = conv2d(x, w): dx = conv2d_input(g, w), dw = conv2d_weight(x, g).
        ConvRole::Forward => {
            let (size, kernel) = (dims(e, a), dims(e, b));
            let dx = pair(e, wanted[0], Some(ConvRole::Input { size }), g, b)?;
            let dw = pair(e, wanted[1], Some(ConvRole::Weight { kernel }), a, g)?;
            (dx, dw)
        }
        // dx = conv2d_input(dy, w): d(dy) = conv2d(g, w), dw = conv2d_weight(g, dy).
        ConvRole::Input { .. } => {
            let kernel = dims(e, b);
            let ddy = pair(e, wanted[0], None, g, b)?;
            let dw = pair(e, wanted[1], Some(ConvRole::Weight { kernel }), g, a)?;
            (ddy, dw)
        }
        // dw = conv2d_weight(x, dy): dx = conv2d_input(dy, g), d(dy) = conv2d(x, g).
        ConvRole::Weight { .. } => {
            let size = dims(e, a);
            let dx = pair(e, wanted[0], Some(ConvRole::Input { size }), b, g)?;
            let ddy = pair(e, wanted[1], None, a, g)?;
            (dx, ddy)
        }
    };
    Ok(smallvec::smallvec![da, db])
}

/// The gradient of `gather(x, index)` along `axis`: `g` added into zeros at the gathered
/// positions. When the index picks one element per row along `axis` (cross-entropy's pick of
/// the target's log-probability), that is `where(iota == index, g, 0)` broadcast along the
/// axis, which fuses into its neighbours; otherwise a `scatter_add` into zeros.
fn ungather(e: &mut Emit, axis: usize, x: NodeId, index: NodeId, g: NodeId) -> R1 {
    let (xs, is) = (e.shape(x), e.shape(index));
    let one_per_row = is.0[axis] == 1 && (0..xs.rank()).all(|d| d == axis || is.0[d] == xs.0[d]);
    if !one_per_row {
        let zeros = e.zeros_like(x)?;
        return e.op(Op::ScatterAdd { axis }, &[zeros, index, g]);
    }
    let positions = e.op(Op::Iota { ty: TensorType::new(e.ty(index).dtype, xs.clone()), axis }, &[])?;
    let index = e.op(Op::Expand { shape: xs.clone() }, &[index])?;
    let picked = e.binary(BinaryOp::Eq, positions, index)?;
    let g = e.op(Op::Expand { shape: xs }, &[g])?;
    e.keep(picked, g)
}

/// Swaps the last two axes.
fn transpose(e: &mut Emit, x: NodeId) -> R1 {
    let r = e.shape(x).rank();
    let mut perm: SmallVec<[usize; 4]> = (0..r).collect();
    perm.swap(r - 2, r - 1);
    e.op(Op::Permute { perm }, &[x])
}

/// The gradient of a reduction of `x` over `axes` to `y`.
fn reduce(e: &mut Emit, op: ReduceOp, axes: &[usize], x: NodeId, y: NodeId, g: NodeId) -> R1 {
    let shape = e.shape(x);
    match op {
        ReduceOp::Sum => e.unreduce(g, axes, &shape),
        ReduceOp::Max | ReduceOp::Min => {
            // Evenly among the elements equal to the result (NaNs when the result is NaN).
            let ye = e.unreduce(y, axes, &shape)?;
            let eq = e.binary(BinaryOp::Eq, x, ye)?;
            let xn = e.is_nan(x)?;
            let yn = e.is_nan(ye)?;
            let both = e.binary(BinaryOp::And, xn, yn)?;
            let mask = e.binary(BinaryOp::Or, eq, both)?;
            let ones = e.cast(mask, e.ty(x).dtype)?;
            let count = e.sum(ones, axes)?;
            let share = e.div(g, count)?;
            let spread = e.unreduce(share, axes, &shape)?;
            e.keep(mask, spread)
        }
        ReduceOp::Prod => prod(e, axes, x, g),
    }
}

/// The gradient of a product over `axes`: each element gets `g` times the product of the other
/// elements of its group, written so that it has no division by zero anywhere (not even in a
/// branch a `where` discards, whose gradient would be `0 / 0`) and its own gradient is the true
/// second derivative at zeros, as PyTorch's `prod_backward` in grad mode:
/// - for `x != 0`: `(P / x) * Z`, with `P` the product of the group's nonzero elements and `Z`
///   the product of its zeros (1 without zeros; 0 with them, but with the right derivative);
/// - for `x == 0`: `P` times the product of the group's other zeros: 1 when `x` is the only
///   zero, the other zero's value (`0`, whose derivative is 1) when there are two, 0 beyond.
fn prod(e: &mut Emit, axes: &[usize], x: NodeId, g: NodeId) -> R1 {
    let shape = e.shape(x);
    let dtype = e.ty(x).dtype;
    let zero = e.zeros_like(x)?;
    let one = e.constant(1.0, x)?;
    let two = e.constant(2.0, x)?;
    let product = Op::Reduce { op: ReduceOp::Prod, axes: axes.iter().copied().collect() };
    let is_zero = e.binary(BinaryOp::Eq, x, zero)?;
    let nonzero = e.select(is_zero, one, x)?;
    let zeros = e.select(is_zero, x, one)?;
    let p = e.op(product.clone(), &[nonzero])?;
    let p = e.unreduce(p, axes, &shape)?;
    let z = e.op(product, &[zeros])?;
    let z = e.unreduce(z, axes, &shape)?;
    let ratio = e.div(p, nonzero)?;
    let plain = e.mul(ratio, z)?;
    // The number of zeros in the group, and their sum (0, but carrying derivatives).
    let zf = e.cast(is_zero, dtype)?;
    let count = e.sum(zf, axes)?;
    let count = e.unreduce(count, axes, &shape)?;
    let zx = e.select(is_zero, x, zero)?;
    let sum = e.sum(zx, axes)?;
    let sum = e.unreduce(sum, axes, &shape)?;
    let other = e.binary(BinaryOp::Sub, sum, x)?;
    let only = e.binary(BinaryOp::Eq, count, one)?;
    let pair = e.binary(BinaryOp::Eq, count, two)?;
    let other = e.select(pair, other, zero)?;
    let other_zeros = e.select(only, one, other)?;
    let at_zero = e.mul(p, other_zeros)?;
    let d = e.select(is_zero, at_zero, plain)?;
    let ge = e.unreduce(g, axes, &shape)?;
    e.mul(ge, d)
}

/// Undoes a slice along one axis: `g` holds `n` elements taken from positions
/// `start + i * step` of an axis of length `len`; the result puts them back there, zeros
/// elsewhere.
fn unslice(e: &mut Emit, g: NodeId, axis: usize, start: isize, step: isize, n: usize, len: usize) -> R1 {
    if step == 1 && start == 0 && n == len {
        return Ok(g);
    }
    let mut shape = e.shape(g);
    let rank = shape.rank();
    if n == 0 {
        let mut ty = e.ty(g);
        ty.shape.0[axis] = len;
        return e.full(0.0, ty);
    }
    let ones = |k: isize| -> SmallVec<[isize; 4]> { SmallVec::from_elem(k, rank) };
    let (mut g, mut start, mut step) = (g, start, step);
    if step < 0 {
        // Reverse, so the positions increase.
        let mut st = ones(0);
        st[axis] = n as isize - 1;
        let mut sp = ones(1);
        sp[axis] = -1;
        g = e.op(Op::Slice { start: st, step: sp, size: shape.0.clone(), bounds: None }, &[g])?;
        start += (n as isize - 1) * step;
        step = -step;
    }
    let step = step as usize;
    if step > 1 {
        // Interleave step-1 zeros after each element: [.., n, ..] -> [.., n, step, ..] -> [.., n*step, ..].
        let mut wide: SmallVec<[usize; 4]> = shape.0.clone();
        wide.insert(axis + 1, 1);
        let gw = e.reshape(g, Shape::from(wide))?;
        let lo = SmallVec::from_elem(0, rank + 1);
        let mut hi: SmallVec<[usize; 4]> = SmallVec::from_elem(0, rank + 1);
        hi[axis + 1] = step - 1;
        let padded = e.op(Op::Pad { lo, hi }, &[gw])?;
        shape.0[axis] = n * step;
        g = e.reshape(padded, shape.clone())?;
    }
    let start = start as usize;
    let filled = shape.0[axis];
    let keep = len - start;
    if filled > keep {
        // Trailing interleaved zeros past the axis end.
        let mut size = shape.0.clone();
        size[axis] = keep;
        g = e.op(Op::Slice { start: ones(0), step: ones(1), size, bounds: None }, &[g])?;
    }
    let mut lo: SmallVec<[usize; 4]> = SmallVec::from_elem(0, rank);
    let mut hi: SmallVec<[usize; 4]> = SmallVec::from_elem(0, rank);
    lo[axis] = start;
    hi[axis] = keep.saturating_sub(filled);
    if start == 0 && hi[axis] == 0 {
        return Ok(g);
    }
    e.op(Op::Pad { lo, hi }, &[g])
}
