//! Vector math as CLIF: exp, log, sin, cos, tanh, erf and pow as polynomial approximations with
//! range reduction, emitted inline so they vectorize (Cranelift has no such instructions, and libm
//! calls run one element at a time). The op rows whose CPU lowering is `VecMath` are exactly the
//! ops of this module's tables (a test asserts it); other float ops are the emitter's.
//!
//! Every function is written once, for a 128-bit vector of one float format (`F32X4` or
//! `F64X2`); a scalar `F32`/`F64` is splatted into a vector, computed, and lane 0 is taken out,
//! so the scalar tail of a loop gives bit-for-bit the results of its vector body, and no lane's
//! result depends on its neighbours. No float-to-int conversion is used (`F64X2` has none on
//! x86-64 without AVX-512): an integer-valued float `k` reaches the bit level as the mantissa of
//! `k + 1.5·2^52` (`1.5·2^23`); the f32 paths get `k` and its bits from one FMA,
//! `x·c + 1.5·2^23`. The f64 paths evaluate Taylor polynomials by Estrin's scheme; the f32 fast
//! paths (`exp`, `sin`, `cos`) use minimax polynomials of lower degree by Horner's rule (one FMA
//! per coefficient and no copies of powers of the argument: the loops are throughput-bound,
//! and out-of-order execution overlaps the chains of independent iterations) and stay in f32
//! lanes throughout. Clamps are written as `hi < a ? hi : a` and `a < lo ? lo : a`, which
//! Cranelift lowers to one `minps`/`maxps` each (its IEEE `fmin`/`fmax` take nine instructions
//! each on x86-64), and lane selects on integer masks stay in the integer domain (one
//! `pblendvb` instead of three instructions).
//!
//! | function | algorithm |
//! |---|---|
//! | `exp` | clamp to `[−1418, 710]` (f32: `[−176, 89]`: below −746 (f32 −104) the result is 0, and from the clamp on it is computed as `h·0·0` with no subnormal product, which is slow); `k = nearest(x·log2 e)`, `r = x − k·ln2` (two-part ln 2, FMA). f64: `expm1(r)` to `r^13`; result `(s1 + s1·p)·s2` with `2^k = s1·s2` split in halves, so overflow gives `inf`, and underflow gives subnormals (one rounding, or two in the subnormal range: ≤ 1 ulp there) and then `0`. f32: `exp r` by a degree-6 minimax polynomial (`1 + r + c2·r² + … + c6·r⁶`, relative error 3e-9); `2^k = 2^k1·2^k2` with `k2 = k >> 1` in integer lanes, applied by two multiplications (overflow `inf`, one rounding into the subnormals). `exp(nan) = nan`. |
//! | `log` | subnormals scaled by `2^54` (f32: `2^24`); `x = 2^e·m`, `m ∈ [√½, √2)`; `log m = f − (f²/2 − s·(f²/2 + R(s²)))` with `f = m − 1`, `s = f/(2+f)`, `R` the `atanh` series (fdlibm's arrangement) to `s^20` (f32: `s^10`); `e·ln2` added by one FMA. `log(±0) = −inf`, `log(x < 0) = nan`, `log(inf) = inf`, `log(nan) = nan`. |
//! | `sin`, `cos` | `k = nearest(x·2/π)`, Cody–Waite `r = x − k·π/2` with a three-part π/2 and FMA (exact first step). f64: Taylor polynomials for sine and cosine on `[−π/4, π/4]` (to `r^17`/`r^18`; the rounding error of `1 − r²/2` is kept). f32: minimax polynomials on `[−π/4, π/4]`, `r + r³·S(r²)` and `1 + r²·C(r²)` with four coefficients each (relative errors 5e-12 and 7e-11). Both are computed and one is picked and signed by `k mod 4`, so `sin x` and `cos x` of the same `x` share everything but the last selects once Cranelift's GVN merges them; `sin(±0) = ±0`. Lanes with `|x| > 1e8` (f32: `1e5`), `±inf` included, are recomputed in a cold block by Rust's `f64::sin`/`f64::cos` (libm, with Payne–Hanek reduction) through `call_indirect` to the function's address (the JIT runs in this process): correct for every argument, `sin/cos(±inf) = nan`. On x86-64 those functions use the Windows x64 convention on every OS, which preserves xmm6–xmm15, so the hot path need not spill its vectors around the cold call. Below the limits `k` is the nearest quadrant to within one, the first reduction step is exact and `r` is within about an ulp: the f32 check over every 7th input and the f64 sweeps up to `1e8` stay within 1 ulp. |
//! | `tanh` | `tanh |x| = em/(em + 2)` with `em = expm1(2|x|) = 2^k·expm1(r) + (2^k − 1)` kept as a double (both terms exact), so there is no cancellation near 0; the sum `em + 2` and the quotient are corrected by their exact rounding errors; `|x|` clamped to 20 (f32: 10), where `tanh` rounds to ±1; sign copied from `x` (`tanh(−0) = −0`). |
//! | `erf` | f32: on `|x| < 1`, `x·(c0 + x²·R(x²))` with `c0 = 2/√π` split in two parts (`fma(x, c0_hi, x·(c0_lo + x²·R))`, so its rounding costs nothing) and `R` a degree-5 least-squares-minimax polynomial; on `1 ≤ |x| ≤ 4`, `1 − exp(Q(|x| − 2.5) − x²)` with `Q` a degree-6 fit of `log erfc(x) + x²` (small, so evaluating it cancels nothing) and `x²` as an exact product pair; `|x|` clamped to 4, where `erf` rounds to 1; the second region is computed only when some lane needs it (then both, one selected per lane), sign copied from `x` (`erf(−0) = −0`, NaN stays NaN). f64: libm's `erf` lane by lane (no vector routine yet). |
//! | `pow` | f64: `exp(y·log|x|)` with `log|x|` as a double-double (error about `2^−68`: `s` with the remainder of its division, `2s³/3` as a double-double, `e·ln2` exact by FMA) and `y·log|x|` as a double-double folded into the reduction of `exp`. f32: each half promoted to `F64X2`, plain f64 `log` and `exp`, demoted (one rounding). When any lane has `x ≤ 0`, `x` or `y` non-finite, or a NaN, a cold block applies IEEE `pow`'s special cases: `pow(x, ±0) = 1` and `pow(1, y) = 1` even for NaN, `pow(−1, ±inf) = 1`, `pow(±0, y < 0) = inf` (`±inf` for odd `y`), `pow(±0, y > 0) = 0` (`±0` for odd `y`), `pow(±inf, y)` likewise, `pow(x, ±inf)` by whether `|x| < 1`, a finite negative `x` with non-integer `y` gives NaN, and odd integer `y` keeps the sign of `x`. |
//!
//! Accuracy, asserted by the tests below (which print what they measure): f32 ≤ 2 ulp for exp,
//! log, sin, cos and tanh, ≤ 4 ulp for pow; f64 ≤ 4 ulp for exp, log, sin and cos (every
//! argument) and tanh, ≤ 8 ulp for pow. An ulp here is the distance in representable numbers to
//! the reference rounded to the type: std's f64 function for f32 (so the figure is the true error
//! to within half an ulp), std itself for f64 (glibc, which has its own error of up to about
//! 1 ulp, 2 for tanh). Measured maxima:
//!
//! | ulp | exp | log | sin | cos | tanh | pow | erf |
//! |---|---|---|---|---|---|---|---|
//! | f32 sweeps | 1 | 1 | 1 | 1 | 1 | 0 | 1 |
//! | f32, every 7th of all 2^32 inputs (`TENJIT_VECMATH_STRIDE=7` on the test `f32_strided_sweep_of_all_inputs`) | 1 | 1 | 1 | 1 | 2 (at −0.124068) | — | — |
//! | f64 vs std (sweeps, 10^7 random arguments each) | 1 | 1 | 2 | 1 | 3 (1.4 against mpmath) | 1 | libm's |
//!
//! Throughput is measured, not asserted: `cargo bench --bench vecmath` prints G elements/s per
//! thread, compile time and code size per routine (the figures and their history are in
//! BENCHMARKS.md and the commit log). The loops are bound by instruction count, not by the FMA
//! units, so fewer instructions per vector is what makes a routine faster.
//!
//! Control flow: `sin`, `cos`, `pow` and f32 `erf` end the caller's current block with a branch
//! to a cold block and leave the builder in a new, sealed block that holds the result; `exp`,
//! `log` and `tanh` are straight-line code in the current block.

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::immediates::Imm64;
use cranelift_codegen::ir::{
    types, AbiParam, BlockArg, ConstantData, Endianness, InstBuilder, MemFlagsData, Signature, Type, Value,
};
use cranelift_codegen::isa::CallConv;
use cranelift_frontend::FunctionBuilder;
use tenjit_ir::{BinaryOp, UnaryOp};

#[doc(hidden)]
pub mod harness;

/// A unary routine on a widened vector.
type UnaryRoutine = fn(&mut Emitter, Value) -> Value;
/// A binary routine on widened vectors.
type BinaryRoutine = fn(&mut Emitter, Value, Value) -> Value;

/// The unary ops this module provides: the CPU side of the op rows whose lowering is
/// [`CpuLowering::VecMath`](tenjit_ir::ops::CpuLowering::VecMath). A lookup table, not a match,
/// so a new op that this module does not provide needs no entry.
const UNARY: &[(UnaryOp, UnaryRoutine)] = &[
    (UnaryOp::Exp, exp),
    (UnaryOp::Log, log),
    (UnaryOp::Sin, |e, x| sin_cos(e, x, Trig::Sin)),
    (UnaryOp::Cos, |e, x| sin_cos(e, x, Trig::Cos)),
    (UnaryOp::Tanh, tanh),
    (UnaryOp::Erf, erf),
];

/// The binary ops this module provides (`pow` is the one it exists for).
const BINARY: &[(BinaryOp, BinaryRoutine)] =
    &[(BinaryOp::Pow, |e, x, y| if e.t.is_f64() { pow_f64(e, x, y) } else { pow_f32(e, x, y) })];

/// Whether this module provides `op`.
pub fn provides_unary(op: UnaryOp) -> bool {
    UNARY.iter().any(|&(o, _)| o == op)
}

/// Whether this module provides `op`.
pub fn provides_binary(op: BinaryOp) -> bool {
    BINARY.iter().any(|&(o, _)| o == op)
}

/// Emits `op(x)` for a float `x` of type `ty` (`F32`, `F64`, `F32X4` or `F64X2`), returning
/// `None` for ops this module does not provide (the caller emits those itself) and for other
/// types. `sin` and `cos` split the current block (see the module doc).
pub fn emit_unary(b: &mut FunctionBuilder, op: UnaryOp, ty: Type, x: Value) -> Option<Value> {
    let func = UNARY.iter().find(|&&(o, _)| o == op)?.1;
    let format = Format::of(ty)?;
    let mut e = Emitter::new(b, format, ty);
    let xv = e.widen(x);
    let y = func(&mut e, xv);
    Some(e.narrow(y))
}

/// Emits `op(x, y)` for floats of type `ty`, returning `None` for ops this module does not
/// provide and for other types. `pow` splits the current block (see the module doc).
pub fn emit_binary(b: &mut FunctionBuilder, op: BinaryOp, ty: Type, x: Value, y: Value) -> Option<Value> {
    let func = BINARY.iter().find(|&&(o, _)| o == op)?.1;
    let format = Format::of(ty)?;
    let mut e = Emitter::new(b, format, ty);
    let (xv, yv) = (e.widen(x), e.widen(y));
    let r = func(&mut e, xv, yv);
    Some(e.narrow(r))
}

/// One float format as a 128-bit vector.
#[derive(Clone, Copy)]
struct Format {
    /// The vector type: `F32X4` or `F64X2`.
    vty: Type,
    /// The integer vector of the same lane width: `I32X4` or `I64X2`.
    ity: Type,
    /// Explicit mantissa bits: 23 or 52.
    mant: u8,
}

const F32: Format = Format { vty: types::F32X4, ity: types::I32X4, mant: 23 };
const F64: Format = Format { vty: types::F64X2, ity: types::I64X2, mant: 52 };

impl Format {
    fn of(ty: Type) -> Option<Format> {
        match ty {
            types::F32 | types::F32X4 => Some(F32),
            types::F64 | types::F64X2 => Some(F64),
            _ => None,
        }
    }

    fn is_f64(self) -> bool {
        self.mant == 52
    }

    fn bits(self) -> u8 {
        if self.is_f64() {
            64
        } else {
            32
        }
    }

    fn bias(self) -> i64 {
        if self.is_f64() {
            1023
        } else {
            127
        }
    }

    /// Picks the f32 or the f64 value of a constant.
    fn pick(self, f32: f64, f64: f64) -> f64 {
        if self.is_f64() {
            f64
        } else {
            f32
        }
    }
}

/// Emits CLIF for one format: every value is a vector of `format.vty` (floats) or `format.ity`
/// (integers and lane masks, all ones for true).
struct Emitter<'a, 'f> {
    b: &'a mut FunctionBuilder<'f>,
    t: Format,
    /// The type the caller works in (a scalar or the vector).
    ty: Type,
}

/// Emits `if any lane of mask { slow(fast) } else { fast }` and returns the joined value: the
/// current block ends with the branch and the builder is left in the (sealed) join block.
fn if_any_lane(
    e: &mut Emitter,
    mask: Value,
    fast: Value,
    slow: impl FnOnce(&mut Emitter, Value) -> Value,
) -> Value {
    let any = e.b.ins().vany_true(mask);
    let slow_block = e.b.create_block();
    let join = e.b.create_block();
    let result = e.b.append_block_param(join, e.t.vty);
    e.b.set_cold_block(slow_block);
    e.b.ins().brif(any, slow_block, &[], join, &[BlockArg::from(fast)]);
    e.b.seal_block(slow_block);
    e.b.switch_to_block(slow_block);
    let y = slow(e, fast);
    e.b.ins().jump(join, &[BlockArg::from(y)]);
    e.b.seal_block(join);
    e.b.switch_to_block(join);
    result
}

/// Vector bitcasts reinterpret lanes in place; the flag only fixes how.
fn le() -> MemFlagsData {
    MemFlagsData::new().with_endianness(Endianness::Little)
}

impl<'a, 'f> Emitter<'a, 'f> {
    fn new(b: &'a mut FunctionBuilder<'f>, t: Format, ty: Type) -> Self {
        Emitter { b, t, ty }
    }

    /// How many lanes carry values the caller asked for.
    fn lanes(&self) -> u8 {
        if self.ty.is_vector() {
            self.ty.lane_count() as u8
        } else {
            1
        }
    }

    fn widen(&mut self, x: Value) -> Value {
        if self.ty.is_vector() {
            x
        } else {
            self.b.ins().splat(self.t.vty, x)
        }
    }

    fn narrow(&mut self, x: Value) -> Value {
        if self.ty.is_vector() {
            x
        } else {
            self.b.ins().extractlane(x, 0)
        }
    }

    /// A float constant in every lane.
    fn c(&mut self, v: f64) -> Value {
        let s = if self.t.is_f64() { self.b.ins().f64const(v) } else { self.b.ins().f32const(v as f32) };
        self.b.ins().splat(self.t.vty, s)
    }

    /// An integer constant in every lane (bits above the lane width are dropped).
    fn ci(&mut self, v: i64) -> Value {
        let lane = self.t.ity.lane_type();
        let v = if self.t.is_f64() { v } else { v & 0xffff_ffff };
        let s = self.b.ins().iconst(lane, Imm64::new(v));
        self.b.ins().splat(self.t.ity, s)
    }

    fn add(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fadd(a, b)
    }
    fn sub(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fsub(a, b)
    }
    fn mul(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fmul(a, b)
    }
    fn div(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fdiv(a, b)
    }
    /// `a·b + c` with one rounding.
    fn fma(&mut self, a: Value, b: Value, c: Value) -> Value {
        self.b.ins().fma(a, b, c)
    }
    fn neg(&mut self, a: Value) -> Value {
        self.b.ins().fneg(a)
    }
    fn abs(&mut self, a: Value) -> Value {
        self.b.ins().fabs(a)
    }
    fn nearest(&mut self, a: Value) -> Value {
        self.b.ins().nearest(a)
    }
    fn floor(&mut self, a: Value) -> Value {
        self.b.ins().floor(a)
    }
    /// NaN-propagating clamp to `[lo, hi]`: `hi < a ? hi : a`, then `a < lo ? lo : a`, the
    /// forms Cranelift lowers to one `minps`/`maxps` each (IEEE `fmin`/`fmax` take about nine
    /// instructions on x86-64); a NaN `a` fails both comparisons and passes through.
    fn clamp(&mut self, a: Value, lo: f64, hi: f64) -> Value {
        let hi = self.c(hi);
        let lo = self.c(lo);
        let above = self.cmp(FloatCC::LessThan, hi, a);
        let a = self.sel(above, hi, a);
        let below = self.cmp(FloatCC::LessThan, a, lo);
        self.sel(below, lo, a)
    }
    fn add_c(&mut self, a: Value, v: f64) -> Value {
        let c = self.c(v);
        self.add(a, c)
    }
    fn mul_c(&mut self, a: Value, v: f64) -> Value {
        let c = self.c(v);
        self.mul(a, c)
    }
    /// `a·v + c` with one rounding.
    fn fma_c(&mut self, a: Value, v: f64, c: Value) -> Value {
        let v = self.c(v);
        self.fma(a, v, c)
    }

    /// `coeffs[0] + coeffs[1]·x + coeffs[2]·x² + …` by Estrin's scheme: pairs `c[2i] + c[2i+1]·x`
    /// become the coefficients of a polynomial in `x²`. The dependency chain grows with the
    /// logarithm of the degree rather than the degree (Horner), which is what bounds the
    /// throughput of these long straight-line sequences.
    fn poly(&mut self, x: Value, coeffs: &[f64]) -> Value {
        let coeffs: Vec<Value> = coeffs.iter().map(|&c| self.c(c)).collect();
        self.estrin(x, &coeffs)
    }

    /// `coeffs[0] + coeffs[1]·x + …` by Horner's rule: one FMA per coefficient and no copies of
    /// `x`'s powers. Its long dependency chain is hidden by out-of-order execution across the
    /// loop's independent iterations, so it beats Estrin's scheme on throughput.
    fn horner(&mut self, x: Value, coeffs: &[f64]) -> Value {
        let (&top, rest) = coeffs.split_last().expect("a polynomial has a coefficient");
        let mut acc = self.c(top);
        for &c in rest.iter().rev() {
            let c = self.c(c);
            acc = self.fma(acc, x, c);
        }
        acc
    }

    /// [`Self::poly`] with coefficients that are values.
    fn estrin(&mut self, x: Value, coeffs: &[Value]) -> Value {
        match coeffs {
            [] => unreachable!("a polynomial has a coefficient"),
            [c] => *c,
            [c0, c1] => self.fma(x, *c1, *c0),
            _ => {
                let pairs: Vec<Value> = coeffs
                    .chunks(2)
                    .map(|pair| match *pair {
                        [c0, c1] => self.fma(x, c1, c0),
                        [c0] => c0,
                        _ => unreachable!("chunks of two"),
                    })
                    .collect();
                let x2 = self.mul(x, x);
                self.estrin(x2, &pairs)
            }
        }
    }

    fn as_int(&mut self, a: Value) -> Value {
        self.b.ins().bitcast(self.t.ity, le(), a)
    }
    fn as_float(&mut self, a: Value) -> Value {
        self.b.ins().bitcast(self.t.vty, le(), a)
    }

    /// A lane mask: all ones where `a cc b`.
    fn cmp(&mut self, cc: FloatCC, a: Value, b: Value) -> Value {
        self.b.ins().fcmp(cc, a, b)
    }
    fn cmp_c(&mut self, cc: FloatCC, a: Value, v: f64) -> Value {
        let c = self.c(v);
        self.cmp(cc, a, c)
    }
    fn and(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().band(a, b)
    }
    fn or(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().bor(a, b)
    }
    fn xor(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().bxor(a, b)
    }
    fn not(&mut self, a: Value) -> Value {
        self.b.ins().bnot(a)
    }
    fn and_c(&mut self, a: Value, v: i64) -> Value {
        let c = self.ci(v);
        self.and(a, c)
    }
    /// Per lane: `a` where `mask`, else `b`.
    fn sel(&mut self, mask: Value, a: Value, b: Value) -> Value {
        let m = self.as_float(mask);
        self.b.ins().bitselect(m, a, b)
    }
    /// [`Self::sel`] for a mask straight from an integer `icmp`, selecting in the integer
    /// domain: the form Cranelift lowers to one `pblendvb` (a float-typed select on a bitcast
    /// `icmp` mask takes three instructions).
    fn sel_int_mask(&mut self, mask: Value, a: Value, b: Value) -> Value {
        let (a, b) = (self.as_int(a), self.as_int(b));
        let r = self.b.ins().bitselect(mask, a, b);
        self.as_float(r)
    }
    fn sel_c(&mut self, mask: Value, a: f64, b: Value) -> Value {
        let a = self.c(a);
        self.sel(mask, a, b)
    }

    /// The low bits of the integer-valued float `k` (|k| < 2^22) as an integer lane, in two's
    /// complement: `k + 1.5·2^p` puts `k` in the mantissa.
    fn int_bits(&mut self, k: Value) -> Value {
        let magic = self.t.pick(12_582_912.0, 6_755_399_441_055_744.0);
        let m = self.add_c(k, magic);
        self.as_int(m)
    }

    /// `2^k` for an integer-valued float `k` inside the normal exponent range.
    fn pow2(&mut self, k: Value) -> Value {
        let bits = self.int_bits(k);
        let bias = self.ci(self.t.bias());
        let biased = self.b.ins().iadd(bits, bias);
        let shifted = self.b.ins().ishl_imm_u(biased, i64::from(self.t.mant));
        self.as_float(shifted)
    }

    /// `(s, err)` with `s = a + b` rounded and `s + err = a + b` exactly (Knuth's TwoSum).
    fn two_sum(&mut self, a: Value, b: Value) -> (Value, Value) {
        let s = self.add(a, b);
        let bb = self.sub(s, a);
        let aa = self.sub(s, bb);
        let da = self.sub(a, aa);
        let db = self.sub(b, bb);
        let err = self.add(da, db);
        (s, err)
    }

    /// `(s, err)` with `s = a + b` rounded and `s + err = a + b` exactly, for `|a| ≥ |b|` or
    /// `a = 0` (Dekker's Fast2Sum).
    fn fast_two_sum(&mut self, a: Value, b: Value) -> (Value, Value) {
        let s = self.add(a, b);
        let t = self.sub(s, a);
        let err = self.sub(b, t);
        (s, err)
    }

    /// `(p, err)` with `p = a·b` rounded and `p + err = a·b` exactly.
    fn two_prod(&mut self, a: Value, b: Value) -> (Value, Value) {
        let p = self.mul(a, b);
        let np = self.neg(p);
        let err = self.fma(a, b, np);
        (p, err)
    }
}

/// `1/n!`.
fn inv_factorial(n: u32) -> f64 {
    1.0 / (1..=n).map(f64::from).product::<f64>()
}

/// Taylor coefficients `±1/n!` for the degrees `ns`, signs taken in turn from `signs`.
fn taylor(ns: impl IntoIterator<Item = u32>, signs: [f64; 2]) -> Vec<f64> {
    ns.into_iter().zip(signs.into_iter().cycle()).map(|(n, sign)| sign * inv_factorial(n)).collect()
}

const LN2_F32: (f64, f64) = (0.693_147_182_464_599_6, -1.904_654_212_125_933_6e-9);
const LN2_F64: (f64, f64) = (std::f64::consts::LN_2, 2.319_046_813_846_299_6e-17);
const LOG2_E: f64 = std::f64::consts::LOG2_E;

/// `expm1(r)` for `|r| ≤ ln2/2`: `r + r²·(1/2! + r/3! + …)`.
fn expm1_poly(e: &mut Emitter, r: Value) -> Value {
    let top = if e.t.is_f64() { 13 } else { 8 };
    let q = e.poly(r, &taylor(2..=top, [1.0, 1.0]));
    let r2 = e.mul(r, r);
    e.fma(r2, q, r)
}

/// `(k, r)` with `x + x_lo = k·ln2 + r`, `k` integer-valued.
fn exp_reduce(e: &mut Emitter, x: Value, x_lo: Option<Value>) -> (Value, Value) {
    let (hi, lo) = if e.t.is_f64() { LN2_F64 } else { LN2_F32 };
    let t = e.mul_c(x, LOG2_E);
    let k = e.nearest(t);
    let r = e.fma_c(k, -hi, x);
    let mut r = e.fma_c(k, -lo, r);
    if let Some(x_lo) = x_lo {
        r = e.add(r, x_lo);
    }
    (k, r)
}

/// `exp(x + x_lo)` for `x` already clamped to the range where `2^k` splits into two normal halves.
fn exp_clamped(e: &mut Emitter, x: Value, x_lo: Option<Value>) -> Value {
    let (k, r) = exp_reduce(e, x, x_lo);
    let p = expm1_poly(e, r);
    let half = e.mul_c(k, 0.5);
    let k1 = e.floor(half);
    let k2 = e.sub(k, k1);
    let s1 = e.pow2(k1);
    let s2 = e.pow2(k2);
    let m = e.fma(p, s1, s1);
    e.mul(m, s2)
}

/// The clamp for `exp`: below it the result rounds to 0, above it to inf, and inside it `2^k`
/// splits into two normal halves.
fn exp_range(t: Format) -> (f64, f64) {
    (t.pick(-104.0, -746.0), t.pick(89.0, 710.0))
}

/// The lower clamp of [`exp`]: the result rounds to 0 from `exp_range`'s low end down, but a
/// lane clamped there computes a subnormal product, which costs the CPU a slow path per lane
/// (half the lanes of a causal softmax are masked to -inf: its `exp` kernel took 2.5× as long
/// on Zen 4). Clamped here instead, `k` splits into halves of `2^-127` (f64: `2^-1023`),
/// whose bits are 0: the product is `h·0·0 = 0`, computed on normal numbers and zeros only.
/// (Any lower and a half's exponent would wrap.)
fn exp_zero_floor(t: Format) -> f64 {
    t.pick(-176.0, -1418.0)
}

fn exp(e: &mut Emitter, x: Value) -> Value {
    let (_, hi) = exp_range(e.t);
    let x = e.clamp(x, exp_zero_floor(e.t), hi);
    if e.t.is_f64() {
        exp_clamped(e, x, None)
    } else {
        exp_f32(e, x)
    }
}

/// `1.5·2^23`: adding it to an f32 of magnitude below `2^22` rounds it to an integer, which
/// the sum's low mantissa bits hold in two's complement.
const MAGIC_F32: f64 = 12_582_912.0;
/// The bits of [`MAGIC_F32`].
const MAGIC_F32_BITS: i64 = 0x4b40_0000;

/// Minimax coefficients of `exp r ≈ 1 + r + c2·r² + … + c6·r⁶` on `[−ln2/2, ln2/2]`, rounded to
/// f32 (relative error 3.1e-9 before rounding).
const EXP_F32: [f64; 7] = [
    1.0,
    1.0,
    0.499_999_940_395_355_2,
    0.166_665_211_319_923_4,
    0.041_668_388_992_547_99,
    0.008_368_710_055_947_304,
    0.001_381_461_275_741_458,
];

/// `2^k` for an integer lane `k` in the normal exponent range of f32.
fn pow2_i32(e: &mut Emitter, k: Value) -> Value {
    let bias = e.ci(127);
    let biased = e.b.ins().iadd(k, bias);
    let bits = e.b.ins().ishl_imm_u(biased, 23);
    e.as_float(bits)
}

/// f32 `exp` for `x` clamped to `[−176, 89]` ([`exp_zero_floor`]), all in f32 lanes: `k` and
/// its integer bits from one FMA with [`MAGIC_F32`], a two-part `ln 2`, a degree-6 minimax
/// polynomial by Horner's rule, and `2^k = 2^k1·2^k2` with `k2 = k >> 1` (both halves normal
/// above −104, so overflow gives `inf` and underflow rounds once into the subnormals; below,
/// halves of `2^-127` are 0).
fn exp_f32(e: &mut Emitter, x: Value) -> Value {
    let magic = e.c(MAGIC_F32);
    let t = e.fma_c(x, LOG2_E, magic);
    let k = e.sub(t, magic);
    let r = e.fma_c(k, -LN2_F32.0, x);
    let r = e.fma_c(k, -LN2_F32.1, r);
    let h = e.horner(r, &EXP_F32);
    let tb = e.as_int(t);
    let magic_bits = e.ci(MAGIC_F32_BITS);
    let ki = e.b.ins().isub(tb, magic_bits);
    let k2 = e.b.ins().sshr_imm_u(ki, 1);
    let k1 = e.b.ins().isub(ki, k2);
    let s1 = pow2_i32(e, k1);
    let s2 = pow2_i32(e, k2);
    let y = e.mul(h, s1);
    e.mul(y, s2)
}

/// `x = 2^e·(1 + f)` with `1 + f ∈ [√½, √2)`, for positive finite `x` (subnormals included);
/// returns `(e, f)` as floats. Other inputs give unspecified lanes.
fn log_split(e: &mut Emitter, x: Value) -> (Value, Value) {
    let (min_normal, up, up_log2) = if e.t.is_f64() {
        (f64::MIN_POSITIVE, 18_014_398_509_481_984.0, 54.0)
    } else {
        (f64::from(f32::MIN_POSITIVE), 16_777_216.0, 24.0)
    };
    // The bit patterns of 1.0 and of √½ (rounded down), and 2^p as a float and its bits.
    let (one, sqrt_half, magic, magic_bits) = if e.t.is_f64() {
        (
            0x3ff0_0000_0000_0000_i64,
            0x3fe6_a09e_667f_3bcd_i64,
            4_503_599_627_370_496.0,
            0x4330_0000_0000_0000_i64,
        )
    } else {
        (0x3f80_0000, 0x3f35_04f3, 8_388_608.0, 0x4b00_0000)
    };
    let tiny = e.cmp_c(FloatCC::LessThan, x, min_normal);
    let scaled = e.mul_c(x, up);
    let x = e.sel(tiny, scaled, x);
    // Adding `one - sqrt_half` carries into the exponent exactly when the mantissa is ≥ √2.
    let bits = e.as_int(x);
    let off = e.ci(one - sqrt_half);
    let ix = e.b.ins().iadd(bits, off);
    let biased = e.b.ins().ushr_imm_u(ix, i64::from(e.t.mant));
    let magic_int = e.ci(magic_bits);
    let biased = e.or(biased, magic_int);
    let biased = e.as_float(biased);
    let biased = e.add_c(biased, -magic);
    let bias = e.t.bias() as f64;
    let adjust = e.c(bias + up_log2);
    let plain = e.c(bias);
    let adjust = e.sel(tiny, adjust, plain);
    let ex = e.sub(biased, adjust);
    let mant = e.and_c(ix, (1_i64 << e.t.mant) - 1);
    let sh = e.ci(sqrt_half);
    let mant = e.b.ins().iadd(mant, sh);
    let m = e.as_float(mant);
    let f = e.add_c(m, -1.0);
    (ex, f)
}

/// `2/(2n+1)` for `n` in `1..=count`: the series of `(log(1+f) − 2s)/s` in `z = s²`.
fn atanh_coeffs(count: u32) -> Vec<f64> {
    (1..=count).map(|n| 2.0 / f64::from(2 * n + 1)).collect()
}

/// `log x` for positive finite `x`, without special values.
fn log_core(e: &mut Emitter, x: Value) -> Value {
    let (ex, f) = log_split(e, x);
    let two = e.add_c(f, 2.0);
    let s = e.div(f, two);
    let z = e.mul(s, s);
    let count = if e.t.is_f64() { 10 } else { 5 };
    let p = e.poly(z, &atanh_coeffs(count));
    let r = e.mul(z, p);
    let half_f = e.mul_c(f, 0.5);
    let hfsq = e.mul(half_f, f);
    // log(1+f) = f − (hfsq − s·(hfsq + R)), fdlibm's arrangement; e·ln2 around it.
    let (ln2_hi, ln2_lo) = if e.t.is_f64() { LN2_F64 } else { LN2_F32 };
    let e_lo = e.mul_c(ex, ln2_lo);
    let h_r = e.add(hfsq, r);
    let t = e.fma(s, h_r, e_lo);
    let u = e.sub(hfsq, t);
    let u = e.sub(u, f);
    let neg_u = e.neg(u);
    e.fma_c(ex, ln2_hi, neg_u)
}

fn log(e: &mut Emitter, x: Value) -> Value {
    let y = log_core(e, x);
    let is_inf = e.cmp_c(FloatCC::Equal, x, f64::INFINITY);
    let y = e.sel_c(is_inf, f64::INFINITY, y);
    let is_zero = e.cmp_c(FloatCC::Equal, x, 0.0);
    let y = e.sel_c(is_zero, f64::NEG_INFINITY, y);
    let is_neg = e.cmp_c(FloatCC::LessThan, x, 0.0);
    let y = e.sel_c(is_neg, f64::NAN, y);
    let is_nan = e.cmp(FloatCC::Unordered, x, x);
    e.sel(is_nan, x, y)
}

/// `log x = hi + lo` for positive finite `x` in f64, to about `2^−64` relative.
fn log_dd(e: &mut Emitter, x: Value) -> (Value, Value) {
    let (ex, f) = log_split(e, x);
    // s = f/(2+f) with its low part: d = 2 + f exactly as dh + dl.
    let two = e.c(2.0);
    let (dh, dl) = e.fast_two_sum(two, f);
    let s = e.div(f, dh);
    let neg_s = e.neg(s);
    let rem = e.fma(neg_s, dh, f);
    let rem = e.fma(neg_s, dl, rem);
    let s_lo = e.div(rem, dh);
    // s³ and (2/3)·s³ as double-doubles.
    let (z, z_lo) = e.two_prod(s, s);
    let (s3, s3_err) = e.two_prod(z, s);
    let s3_lo = e.fma(z_lo, s, s3_err);
    let (c_hi, c_lo) = (0.666_666_666_666_666_6, 3.700_743_415_417_188e-17);
    let c = e.c(c_hi);
    let (t1, t1_err) = e.two_prod(c, s3);
    let t1_lo = e.fma_c(s3_lo, c_hi, t1_err);
    let t1_lo = e.fma_c(s3, c_lo, t1_lo);
    // The rest of 2·atanh(s): 2·s·z²·(1/5 + z/7 + …).
    let p = e.poly(z, &atanh_coeffs(12)[1..]);
    let sz = e.mul(s, z);
    let sz2 = e.mul(sz, z);
    let t2 = e.mul(sz2, p);
    // ex·ln2 exactly as two terms, then the sum of the large terms with their errors.
    let (ln2, ln2_lo) = LN2_F64;
    let ln2v = e.c(ln2);
    let (h0, h0_err) = e.two_prod(ex, ln2v);
    let two_s = e.mul_c(s, 2.0);
    let (h, l1) = e.fast_two_sum(h0, two_s);
    let (h, l2) = e.fast_two_sum(h, t1);
    let lo = e.fma_c(ex, ln2_lo, h0_err);
    // d/ds 2·atanh(s) ≈ 2 + 2s² + 2s⁴: the low part of s enters every term.
    let ds = e.fma_c(z, 2.0, two);
    let ds = e.fma(z, ds, two);
    let lo = e.fma(s_lo, ds, lo);
    let lo = e.add(lo, t1_lo);
    let lo = e.add(lo, t2);
    let lo = e.add(lo, l1);
    let lo = e.add(lo, l2);
    e.fast_two_sum(h, lo)
}

/// `pow(x, y)` for f64 lanes.
fn pow_f64(e: &mut Emitter, x: Value, y: Value) -> Value {
    let a = e.abs(x);
    let (l_hi, l_lo) = log_dd(e, a);
    let (p, p_err) = e.two_prod(y, l_hi);
    let p_lo = e.fma(y, l_lo, p_err);
    let (lo, hi) = exp_range(e.t);
    let pc = e.clamp(p, lo, hi);
    // Past the clamp the low part means nothing (and may be huge).
    let kept = e.cmp(FloatCC::Equal, p, pc);
    let zero = e.c(0.0);
    let p_lo = e.sel(kept, p_lo, zero);
    let m = exp_clamped(e, pc, Some(p_lo));
    if_special_pow(e, x, y, m)
}

/// `pow(x, y)` for f32 lanes: each half in f64 (plain `log` and `exp` are ample there).
fn pow_f32(e: &mut Emitter, x: Value, y: Value) -> Value {
    let halves = if e.lanes() > 2 { 2 } else { 1 };
    let mut out = [None, None];
    for (half, slot) in out.iter_mut().enumerate().take(halves) {
        let (xh, yh) = if half == 0 { (x, y) } else { (upper_half(e, x), upper_half(e, y)) };
        let x64 = e.b.ins().fvpromote_low(xh);
        let y64 = e.b.ins().fvpromote_low(yh);
        let mut e64 = Emitter::new(e.b, F64, types::F64X2);
        let a = e64.abs(x64);
        let l = log_core(&mut e64, a);
        let p = e64.mul(y64, l);
        let (lo, hi) = exp_range(F64);
        let p = e64.clamp(p, lo, hi);
        let m = exp_clamped(&mut e64, p, None);
        let r = if_special_pow(&mut e64, x64, y64, m);
        *slot = Some(e.b.ins().fvdemote(r));
    }
    match out {
        [Some(lo), Some(hi)] => {
            // Lanes 0, 1 of `lo` and lanes 0, 1 of `hi`.
            let mask: Vec<u8> = (0..8).chain(16..24).collect();
            shuffle_f32x4(e, lo, hi, mask)
        }
        [Some(lo), None] => lo,
        _ => unreachable!("the low half is always computed"),
    }
}

/// Lanes 2, 3 of an `F32X4` moved to lanes 0, 1.
fn upper_half(e: &mut Emitter, x: Value) -> Value {
    let mask: Vec<u8> = (8..16).chain(8..16).collect();
    shuffle_f32x4(e, x, x, mask)
}

fn shuffle_f32x4(e: &mut Emitter, a: Value, b: Value, mask: Vec<u8>) -> Value {
    let a = e.b.ins().bitcast(types::I8X16, le(), a);
    let b = e.b.ins().bitcast(types::I8X16, le(), b);
    let mask = e.b.func.dfg.immediates.push(ConstantData::from(mask));
    let s = e.b.ins().shuffle(a, b, mask);
    e.b.ins().bitcast(types::F32X4, le(), s)
}

/// `m = exp(y·log|x|)` is `pow(x, y)` for positive finite `x` and finite `y`; a cold block
/// fixes the other lanes when there are any.
fn if_special_pow(e: &mut Emitter, x: Value, y: Value, m: Value) -> Value {
    let pos = e.cmp_c(FloatCC::GreaterThan, x, 0.0);
    let fin = e.cmp_c(FloatCC::LessThan, x, f64::INFINITY);
    let ok = e.and(pos, fin);
    let ya = e.abs(y);
    let y_fin = e.cmp_c(FloatCC::LessThan, ya, f64::INFINITY);
    let ok = e.and(ok, y_fin);
    let special = e.not(ok);
    if_any_lane(e, special, m, |e, m| pow_special(e, x, y, m))
}

/// Applies the IEEE special cases of `pow` to `m = exp(y·log|x|)`.
fn pow_special(e: &mut Emitter, x: Value, y: Value, m: Value) -> Value {
    let a = e.abs(x);
    let ry = e.nearest(y);
    let y_int = e.cmp(FloatCC::Equal, ry, y);
    let yh = e.mul_c(y, 0.5);
    let ryh = e.nearest(yh);
    let half_frac = e.cmp(FloatCC::NotEqual, ryh, yh);
    let y_odd = e.and(y_int, half_frac);
    let y_neg = e.cmp_c(FloatCC::LessThan, y, 0.0);
    let bits = e.as_int(x);
    let zero_i = e.ci(0);
    let x_sign = e.b.ins().icmp(IntCC::SignedLessThan, bits, zero_i);
    let inf = e.c(f64::INFINITY);
    let zero = e.c(0.0);
    // Zero and infinite bases: inf or 0 by the sign of y.
    let a_zero = e.cmp_c(FloatCC::Equal, a, 0.0);
    let v = e.sel(y_neg, inf, zero);
    let r = e.sel(a_zero, v, m);
    let a_inf = e.cmp_c(FloatCC::Equal, a, f64::INFINITY);
    let v = e.sel(y_neg, zero, inf);
    let r = e.sel(a_inf, v, r);
    // Odd integer powers keep the sign of x.
    let flip = e.and(x_sign, y_odd);
    let nr = e.neg(r);
    let r = e.sel(flip, nr, r);
    // A finite negative base with a non-integer exponent.
    let x_neg = e.cmp_c(FloatCC::LessThan, x, 0.0);
    let finite = e.cmp_c(FloatCC::NotEqual, a, f64::INFINITY);
    let not_int = e.not(y_int);
    let bad = e.and(x_neg, finite);
    let bad = e.and(bad, not_int);
    let r = e.sel_c(bad, f64::NAN, r);
    // Infinite exponents: 1 for |x| = 1, else inf or 0 by whether |x| < 1 agrees with y < 0.
    let y_abs = e.abs(y);
    let y_inf = e.cmp_c(FloatCC::Equal, y_abs, f64::INFINITY);
    let a_small = e.cmp_c(FloatCC::LessThan, a, 1.0);
    let differ = e.xor(a_small, y_neg);
    let v = e.sel(differ, zero, inf);
    let a_one = e.cmp_c(FloatCC::Equal, a, 1.0);
    let v = e.sel_c(a_one, 1.0, v);
    let r = e.sel(y_inf, v, r);
    // NaNs, then the two cases that beat NaN.
    let x_nan = e.cmp(FloatCC::Unordered, x, y);
    let r = e.sel_c(x_nan, f64::NAN, r);
    let x_one = e.cmp_c(FloatCC::Equal, x, 1.0);
    let y_zero = e.cmp_c(FloatCC::Equal, y, 0.0);
    let one = e.or(x_one, y_zero);
    e.sel_c(one, 1.0, r)
}

fn tanh(e: &mut Emitter, x: Value) -> Value {
    let a = e.abs(x);
    let a = e.clamp(a, 0.0, e.t.pick(10.0, 20.0));
    let v = e.add(a, a);
    // em = expm1(2a) = 2^k·expm1(r) + (2^k − 1) as a double (eh, el): both terms are exact.
    let (k, r) = exp_reduce(e, v, None);
    let p = expm1_poly(e, r);
    let s = e.pow2(k);
    let sp = e.mul(s, p);
    let sm1 = e.add_c(s, -1.0);
    let (eh, el) = e.fast_two_sum(sm1, sp);
    // t = em/(em + 2), with the rounding errors of the sum and of the quotient corrected.
    let two = e.c(2.0);
    let (dh, dl) = e.two_sum(eh, two);
    let dl = e.add(dl, el);
    let t = e.div(eh, dh);
    let neg_t = e.neg(t);
    let rem = e.fma(neg_t, dh, eh);
    let rem = e.add(rem, el);
    let rem = e.fma(neg_t, dl, rem);
    let q = e.div(rem, dh);
    let t = e.add(t, q);
    // tanh(−x) = −tanh(x): copy the sign bit of x.
    let sign = 1_i64 << (e.t.bits() - 1);
    let xb = e.as_int(x);
    let sb = e.and_c(xb, sign);
    let tb = e.as_int(t);
    let r = e.or(tb, sb);
    e.as_float(r)
}

/// `erf` on `|x| < 1`: `R` in `erf x = x·(2/√π + x²·R(x²))`, lowest coefficient first (a
/// least-squares fit reweighted towards minimax relative error, 1e-9 on `[0, 1]`).
const ERF_SMALL: [f64; 6] = [
    -0.376_126_271_659_065_15,
    0.112_836_004_198_273_86,
    -0.026_854_453_022_005_537,
    0.005_189_549_467_288_251,
    -0.000_802_095_465_823_660_1,
    7.889_468_930_691_312e-5,
];

/// `erf` on `1 ≤ |x| ≤ 4`: `Q` in `erfc x = exp(Q(x − 2.5) − x²)`, lowest coefficient first
/// (the same fit; its error, relative to `erf`, is 1e-9).
const ERF_LARGE: [f64; 7] = [
    -1.556_817_892_054_591,
    -0.352_693_952_236_200_1,
    0.056_116_878_711_384_2,
    -0.010_711_214_883_405_193,
    0.002_465_429_591_810_314,
    -0.000_151_949_028_463_993_5,
    0.000_186_383_141_764_112_64,
];

/// `2/√π` as the sum of two `f32`s.
const TWO_OVER_SQRT_PI_F32: (f64, f64) = (1.128_379_225_730_896, -5.863_538_277_139_924e-8);

fn erf(e: &mut Emitter, x: Value) -> Value {
    if e.t.is_f64() {
        return libm_lanes(e, x, libm_erf as LibmFn as usize);
    }
    let a = e.abs(x);
    let a = e.clamp(a, 0.0, 4.0);
    // |x| < 1: x·c0_hi + x·(c0_lo + x²·R(x²)).
    let s = e.mul(a, a);
    let r = e.horner(s, &ERF_SMALL);
    let lo = e.c(TWO_OVER_SQRT_PI_F32.1);
    let corr = e.fma(s, r, lo);
    let t = e.mul(a, corr);
    let small = e.fma_c(a, TWO_OVER_SQRT_PI_F32.0, t);
    // 1 ≤ |x| ≤ 4 (and NaN): 1 − exp(Q(|x| − 2.5) − x²), with x² = sh + sl exactly; computed
    // only when some lane needs it (GELU's inputs are mostly small).
    let large_lanes = e.cmp_c(FloatCC::UnorderedOrGreaterThanOrEqual, a, 1.0);
    let y = if_any_lane(e, large_lanes, small, |e, small| {
        let u = e.add_c(a, -2.5);
        let q = e.horner(u, &ERF_LARGE);
        let (sh, sl) = e.two_prod(a, a);
        let arg = e.sub(q, sh);
        let arg = e.sub(arg, sl);
        let ex = exp_f32(e, arg);
        let one = e.c(1.0);
        let large = e.sub(one, ex);
        e.sel(large_lanes, large, small)
    });
    // erf(−x) = −erf(x): copy the sign bit of x.
    let sign = 1_i64 << (e.t.bits() - 1);
    let xb = e.as_int(x);
    let sb = e.and_c(xb, sign);
    let yb = e.as_int(y);
    let r = e.or(yb, sb);
    e.as_float(r)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Trig {
    Sin,
    Cos,
}

/// Above this `|x|` the Cody–Waite reduction hands over to libm.
fn trig_limit(t: Format) -> f64 {
    t.pick(1.0e5, 1.0e8)
}

fn sin_cos(e: &mut Emitter, x: Value, which: Trig) -> Value {
    let near = if e.t.is_f64() { sin_cos_reduced(e, x, which) } else { sin_cos_f32(e, x, which) };
    let a = e.abs(x);
    let huge = e.cmp_c(FloatCC::GreaterThan, a, trig_limit(e.t));
    // Only the lanes past the limit take libm's value, so a lane never depends on its neighbours.
    if_any_lane(e, huge, near, |e, near| {
        let far = sin_cos_libm(e, x, which);
        e.sel(huge, far, near)
    })
}

/// Cody–Waite reduction by π/2 and the quadrant polynomials; for `|x| ≤ trig_limit`.
fn sin_cos_reduced(e: &mut Emitter, x: Value, which: Trig) -> Value {
    let (p1, p2, p3) = if e.t.is_f64() {
        (std::f64::consts::FRAC_PI_2, 6.123_233_995_736_766e-17, -1.497_384_904_859_169_8e-33)
    } else {
        (1.570_796_370_506_286_6, -4.371_138_828_673_793e-8, -1.715_124_510_005_881_9e-15)
    };
    let t = e.mul_c(x, std::f64::consts::FRAC_2_PI);
    let k = e.nearest(t);
    let r = e.fma_c(k, -p1, x);
    let r = e.fma_c(k, -p2, r);
    let r = e.fma_c(k, -p3, r);
    let mut q = e.int_bits(k);
    if which == Trig::Cos {
        let one = e.ci(1);
        q = e.b.ins().iadd(q, one);
    }
    let z = e.mul(r, r);
    let (sin_top, cos_top) = if e.t.is_f64() { (17, 18) } else { (9, 10) };
    // sin r = r + r³·(−1/3! + z/5! − …)
    let sp = e.poly(z, &taylor((3..=sin_top).step_by(2), [-1.0, 1.0]));
    let rz = e.mul(r, z);
    let sn = e.fma(rz, sp, r);
    // cos r = (1 − z/2) + z²·(1/4! − z/6! + …), with the rounding error of 1 − z/2 kept.
    let cp = e.poly(z, &taylor((4..=cos_top).step_by(2), [1.0, -1.0]));
    let hz = e.mul_c(z, 0.5);
    let one = e.c(1.0);
    let w = e.sub(one, hz);
    let back = e.sub(one, w);
    let corr = e.sub(back, hz);
    let z2 = e.mul(z, z);
    let tail = e.fma(z2, cp, corr);
    let cs = e.add(w, tail);
    // Quadrant q: sin, cos, −sin, −cos.
    let odd = e.and_c(q, 1);
    let zero = e.ci(0);
    let swap = e.b.ins().icmp(IntCC::NotEqual, odd, zero);
    let v = e.sel(swap, cs, sn);
    let two = e.and_c(q, 2);
    let sign = e.b.ins().ishl_imm_u(two, i64::from(e.t.bits() - 2));
    let vb = e.as_int(v);
    let vb = e.xor(vb, sign);
    let v = e.as_float(vb);
    match which {
        // sin(±0) = ±0.
        Trig::Sin => {
            let is_zero = e.cmp_c(FloatCC::Equal, x, 0.0);
            e.sel(is_zero, x, v)
        }
        Trig::Cos => v,
    }
}

/// Minimax coefficients on `|r| ≤ π/4 + 0.002`, rounded to f32: `sin r ≈ r + r·z·S(z)` and
/// `cos r ≈ 1 + z·C(z)` with `z = r²` (relative errors 5e-12 and 7e-11 before rounding).
const SIN_F32: [f64; 4] = [
    -0.166_666_671_633_720_4,
    0.008_333_329_111_337_662,
    -0.000_198_392_925_085_499_88,
    2.717_930_101_425_736e-6,
];
const COS_F32: [f64; 4] =
    [-0.5, 0.041_666_619_479_656_22, -0.001_388_665_870_763_361_5, 2.438_141_200_400_423_3e-5];

/// π/2 in three f32 parts (`π/2 − P1 − P2 − P3` about `1e−23`).
const PIO2_F32: (f64, f64, f64) =
    (1.570_796_370_506_286_6, -4.371_138_828_673_793e-8, -1.715_124_510_005_881_9e-15);

/// f32 `sin`/`cos` for `|x| ≤ trig_limit`, in f32 lanes: `k = rint(x·2/π)` and its integer
/// bits from one FMA with [`MAGIC_F32`], Cody–Waite `r = x − k·π/2` with a three-part π/2 (the
/// first FMA step is exact), both polynomials, the one picked by the quadrant's parity and
/// signed by its second bit.
fn sin_cos_f32(e: &mut Emitter, x: Value, which: Trig) -> Value {
    let (p1, p2, p3) = PIO2_F32;
    let magic = e.c(MAGIC_F32);
    let t = e.fma_c(x, std::f64::consts::FRAC_2_PI, magic);
    let k = e.sub(t, magic);
    let r = e.fma_c(k, -p1, x);
    let r = e.fma_c(k, -p2, r);
    let r = e.fma_c(k, -p3, r);
    // The quadrant: k (the low bits of t), plus one for cosine.
    let kb = e.as_int(t);
    let k_odd = e.and_c(kb, 1);
    let parity = e.ci(if which == Trig::Sin { 1 } else { 0 });
    let use_cos = e.b.ins().icmp(IntCC::Equal, k_odd, parity);
    let q = if which == Trig::Cos {
        let one = e.ci(1);
        e.b.ins().iadd(kb, one)
    } else {
        kb
    };
    // Both polynomials: `sin` and `cos` of the same `x` then share all but the last selects.
    let z = e.mul(r, r);
    let rz = e.mul(r, z);
    let sp = e.horner(z, &SIN_F32);
    let sn = e.fma(rz, sp, r);
    let cp = e.horner(z, &COS_F32);
    let one = e.c(1.0);
    let cs = e.fma(z, cp, one);
    let y = e.sel_int_mask(use_cos, cs, sn);
    // Quadrants 2 and 3 negate.
    let two = e.and_c(q, 2);
    let sign = e.b.ins().ishl_imm_u(two, 30);
    let yb = e.as_int(y);
    let yb = e.xor(yb, sign);
    let y = e.as_float(yb);
    match which {
        // sin(±0) = ±0.
        Trig::Sin => {
            let is_zero = e.cmp_c(FloatCC::Equal, x, 0.0);
            e.sel(is_zero, x, y)
        }
        Trig::Cos => y,
    }
}

// On x86-64 the cold path calls through the Windows x64 convention on every OS: it preserves
// xmm6–xmm15, so values of the hot path held there survive the call, where the System V
// convention clobbers every vector register and makes the register allocator spill them to the
// stack on the hot path too (measured: `sin(x) + cos(x)²` 0.62 → 0.9 G elements/s per thread).
#[cfg(target_arch = "x86_64")]
extern "win64" fn libm_sin(x: f64) -> f64 {
    x.sin()
}

#[cfg(target_arch = "x86_64")]
extern "win64" fn libm_cos(x: f64) -> f64 {
    x.cos()
}

#[cfg(target_arch = "x86_64")]
extern "win64" fn libm_erf(x: f64) -> f64 {
    (UnaryOp::Erf.spec().float)(x)
}

#[cfg(target_arch = "x86_64")]
type LibmFn = extern "win64" fn(f64) -> f64;

/// The calling convention of [`libm_sin`] and [`libm_cos`].
#[cfg(target_arch = "x86_64")]
fn libm_call_conv() -> CallConv {
    CallConv::WindowsFastcall
}

#[cfg(not(target_arch = "x86_64"))]
extern "C" fn libm_sin(x: f64) -> f64 {
    x.sin()
}

#[cfg(not(target_arch = "x86_64"))]
extern "C" fn libm_cos(x: f64) -> f64 {
    x.cos()
}

#[cfg(not(target_arch = "x86_64"))]
extern "C" fn libm_erf(x: f64) -> f64 {
    (UnaryOp::Erf.spec().float)(x)
}

#[cfg(not(target_arch = "x86_64"))]
type LibmFn = extern "C" fn(f64) -> f64;

/// The calling convention of `extern "C"` functions on the host.
#[cfg(not(target_arch = "x86_64"))]
fn libm_call_conv() -> CallConv {
    if cfg!(all(target_vendor = "apple", target_arch = "aarch64")) {
        CallConv::AppleAarch64
    } else {
        CallConv::SystemV
    }
}

/// Every used lane through Rust's `f64::sin`/`f64::cos` (libm, full-range reduction).
fn sin_cos_libm(e: &mut Emitter, x: Value, which: Trig) -> Value {
    let func = match which {
        Trig::Sin => libm_sin as LibmFn as usize,
        Trig::Cos => libm_cos as LibmFn as usize,
    };
    libm_lanes(e, x, func)
}

/// `func(x)` lane by lane, for a host function `func` of type [`LibmFn`] on `f64`.
fn libm_lanes(e: &mut Emitter, x: Value, func: usize) -> Value {
    let mut sig = Signature::new(libm_call_conv());
    sig.params.push(AbiParam::new(types::F64));
    sig.returns.push(AbiParam::new(types::F64));
    let sig = e.b.import_signature(sig);
    let ptr_ty = Type::int_with_byte_size(std::mem::size_of::<usize>() as u16).expect("pointer width");
    // The JIT runs in this process, so the function's address is the callee.
    let callee = e.b.ins().iconst(ptr_ty, func as i64);
    let mut out = x;
    for lane in 0..e.lanes() {
        let v = e.b.ins().extractlane(x, lane);
        let v = if e.t.is_f64() { v } else { e.b.ins().fpromote(types::F64, v) };
        let call = e.b.ins().call_indirect(sig, callee, &[v]);
        let r = e.b.inst_results(call)[0];
        let r = if e.t.is_f64() { r } else { e.b.ins().fdemote(types::F32, r) };
        out = e.b.ins().insertlane(out, r, lane);
    }
    out
}

#[cfg(test)]
mod tests {
    //! JIT-compiles `out[i] = op(a[i], b[i])` loops (a vector body with a scalar tail, and a
    //! scalar-only loop) and compares them with std over grids, random samples and special values.

    use super::*;
    use cranelift_frontend::FunctionBuilderContext;

    #[derive(Clone, Copy, Debug)]
    pub(crate) enum Op {
        Unary(UnaryOp),
        Pow,
    }

    fn emit(b: &mut FunctionBuilder, op: Op, ty: Type, x: Value, y: Value) -> Value {
        match op {
            Op::Unary(op) => emit_unary(b, op, ty, x),
            Op::Pow => emit_binary(b, BinaryOp::Pow, ty, x, y),
        }
        .expect("vecmath provides the op")
    }

    /// Compiles `out[i] = op(a[i], b[i])` for `i < n` over `scalar` elements: with `vector`, a
    /// loop over whole vectors followed by a scalar tail, else a scalar loop only.
    pub(crate) fn compile(op: Op, scalar: Type, vector: bool) -> harness::Loop {
        harness::compile(scalar, vector, false, |b, ty, x, y| emit(b, op, ty, x, y))
    }

    /// An element type under test.
    pub(crate) trait Elem: Copy + Default + std::fmt::Debug {
        const TYPE: Type;
        const NAME: &'static str;
        fn from_f64(v: f64) -> Self;
        fn to_f64(self) -> f64;
        /// The distance in ulps, 0 for two NaNs, `u64::MAX` for a NaN against a number and for
        /// zeros of different signs.
        fn ulps(self, want: Self) -> u64;
        /// The reference: std in f64, rounded to `Self`.
        fn reference(op: Op, a: Self, b: Self) -> Self {
            let (a, b) = (a.to_f64(), b.to_f64());
            Self::from_f64(match op {
                Op::Unary(UnaryOp::Exp) => a.exp(),
                Op::Unary(UnaryOp::Log) => a.ln(),
                Op::Unary(UnaryOp::Sin) => a.sin(),
                Op::Unary(UnaryOp::Cos) => a.cos(),
                Op::Unary(UnaryOp::Tanh) => a.tanh(),
                Op::Unary(UnaryOp::Erf) => (UnaryOp::Erf.spec().float)(a),
                Op::Unary(other) => unreachable!("{other:?} is not tested here"),
                Op::Pow => a.powf(b),
            })
        }
    }

    fn ordered(bits: u64, sign: u64) -> i128 {
        if bits & sign != 0 {
            -i128::from(bits & !sign)
        } else {
            i128::from(bits)
        }
    }

    impl Elem for f32 {
        const TYPE: Type = types::F32;
        const NAME: &'static str = "f32";
        fn from_f64(v: f64) -> Self {
            v as f32
        }
        fn to_f64(self) -> f64 {
            f64::from(self)
        }
        fn ulps(self, want: Self) -> u64 {
            match (self.is_nan(), want.is_nan()) {
                (true, true) => 0,
                (false, false) if self == 0.0 && want == 0.0 && self.to_bits() != want.to_bits() => u64::MAX,
                (false, false) => {
                    let s = 1 << 31;
                    ordered(self.to_bits().into(), s).abs_diff(ordered(want.to_bits().into(), s)) as u64
                }
                _ => u64::MAX,
            }
        }
    }

    impl Elem for f64 {
        const TYPE: Type = types::F64;
        const NAME: &'static str = "f64";
        fn from_f64(v: f64) -> Self {
            v
        }
        fn to_f64(self) -> f64 {
            self
        }
        fn ulps(self, want: Self) -> u64 {
            match (self.is_nan(), want.is_nan()) {
                (true, true) => 0,
                (false, false) if self == 0.0 && want == 0.0 && self.to_bits() != want.to_bits() => u64::MAX,
                (false, false) => {
                    let s = 1 << 63;
                    ordered(self.to_bits(), s).abs_diff(ordered(want.to_bits(), s)) as u64
                }
                _ => u64::MAX,
            }
        }
    }

    /// xorshift64*: reproducible samples without a dependency.
    pub(crate) struct Rng(u64);

    impl Rng {
        pub(crate) fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        /// Uniform in `[0, 1)`.
        pub(crate) fn unit(&mut self) -> f64 {
            (self.next() >> 11) as f64 / (1u64 << 53) as f64
        }
        pub(crate) fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
            lo + (hi - lo) * self.unit()
        }
        /// `±10^u` with `u` uniform in `[lo, hi]`.
        pub(crate) fn log_uniform(&mut self, lo: f64, hi: f64) -> f64 {
            let v = 10f64.powf(self.uniform(lo, hi));
            if self.next() & 1 == 0 {
                v
            } else {
                -v
            }
        }
    }

    fn grid(lo: f64, hi: f64, n: usize) -> impl Iterator<Item = f64> {
        (0..=n).map(move |i| lo + (hi - lo) * i as f64 / n as f64)
    }

    /// Values every op is tried on (as f64; each type rounds them).
    fn specials() -> Vec<f64> {
        let mut v = vec![
            0.0,
            f64::INFINITY,
            f64::NAN,
            1.0,
            0.5,
            2.0,
            3.0,
            2.5,
            -1.5,
            f64::from(f32::MIN_POSITIVE),
            f64::from(f32::from_bits(1)),
            f64::from(f32::from_bits(0x007f_ffff)),
            f64::from(f32::MAX),
            f64::MIN_POSITIVE,
            f64::from_bits(1),
            f64::from_bits(0x000f_ffff_ffff_ffff),
            f64::MAX,
            f64::EPSILON,
            1e-300,
            1e-30,
            1e-10,
            1e-5,
            std::f64::consts::PI,
            std::f64::consts::FRAC_PI_2,
            std::f64::consts::FRAC_PI_4,
            88.72,
            89.0,
            -103.97,
            -87.33,
            709.78,
            -745.13,
            -708.39,
            1e5,
            1e8,
            1e10,
            1e20,
            1e22,
            1e30,
            3.4e38,
            1e300,
        ];
        let negated: Vec<f64> = v.iter().map(|x| -x).collect();
        v.extend(negated);
        v
    }

    /// Inputs for one op; `b` is the exponent for pow and ignored otherwise.
    fn inputs<T: Elem>(op: Op) -> Vec<(T, T)> {
        let is64 = T::TYPE == types::F64;
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let n = 200_000;
        let mut a: Vec<f64> = specials();
        match op {
            Op::Unary(UnaryOp::Exp) => {
                let (lo, hi) = if is64 { (-760.0, 720.0) } else { (-110.0, 95.0) };
                a.extend(grid(lo, hi, n));
                a.extend((0..n).map(|_| rng.uniform(lo, hi)));
                a.extend((0..n).map(|_| rng.log_uniform(-40.0, 0.0)));
            }
            Op::Unary(UnaryOp::Log) => {
                if is64 {
                    a.extend((0..n).map(|_| f64::from_bits(rng.next() >> 1)));
                } else {
                    a.extend((0..n).map(|_| f64::from(f32::from_bits((rng.next() >> 33) as u32))));
                }
                a.extend(grid(0.5, 2.0, n));
                a.extend(grid(1.0 - 1e-6, 1.0 + 1e-6, 1000));
                a.extend((0..n).map(|_| rng.log_uniform(-45.0, 38.0).abs()));
            }
            Op::Unary(UnaryOp::Sin | UnaryOp::Cos) => {
                a.extend(grid(-20.0, 20.0, n));
                a.extend((0..n).map(|_| rng.uniform(-1e5, 1e5)));
                a.extend((0..n).map(|_| rng.log_uniform(-10.0, if is64 { 300.0 } else { 38.0 })));
                // Near multiples of π/2, where the reduction cancels.
                for k in (1..200_000).step_by(7) {
                    let x = k as f64 * std::f64::consts::FRAC_PI_2;
                    let x = T::from_f64(x).to_f64();
                    a.push(x);
                    a.push(-x);
                }
                if is64 {
                    a.extend((0..n).map(|_| rng.uniform(-1e8, 1e8)));
                }
            }
            Op::Unary(UnaryOp::Tanh) => {
                a.extend(grid(-25.0, 25.0, n));
                a.extend((0..n).map(|_| rng.log_uniform(-40.0, 2.0)));
                a.extend((0..n).map(|_| rng.uniform(-1.0, 1.0)));
            }
            Op::Unary(UnaryOp::Erf) => {
                a.extend(grid(-5.0, 5.0, n));
                a.extend(grid(0.9, 1.1, n / 4));
                a.extend((0..n).map(|_| rng.log_uniform(-40.0, 2.0)));
                a.extend((0..n).map(|_| -rng.log_uniform(-40.0, 2.0)));
            }
            Op::Unary(other) => unreachable!("{other:?} is not tested here"),
            Op::Pow => {
                let mut pairs: Vec<(f64, f64)> = Vec::new();
                let sp = specials();
                for &x in &sp {
                    for &y in &sp {
                        pairs.push((x, y));
                    }
                }
                let lim = if is64 { 300.0 } else { 37.0 };
                for _ in 0..n {
                    pairs.push((rng.log_uniform(-lim, lim).abs(), rng.uniform(-50.0, 50.0)));
                    // y·ln x anywhere in the finite range, including next to overflow.
                    let x = rng.log_uniform(-lim, lim).abs();
                    let (lo, hi) = if is64 { (-745.0, 709.8) } else { (-104.0, 88.8) };
                    pairs.push((x, rng.uniform(lo, hi) / x.ln()));
                    // Near 1 with large exponents.
                    let x = 1.0 + rng.log_uniform(-12.0, -1.0);
                    pairs.push((x, rng.log_uniform(0.0, 9.0)));
                    // Negative bases with integer exponents.
                    let y = (rng.uniform(-40.0, 40.0)).round();
                    pairs.push((-rng.log_uniform(-5.0, 5.0).abs(), y));
                }
                return pairs.into_iter().map(|(x, y)| (T::from_f64(x), T::from_f64(y))).collect();
            }
        }
        let mut pairs: Vec<(T, T)> = a.into_iter().map(|x| (T::from_f64(x), T::from_f64(1.0))).collect();
        if !is64 {
            // Every 997th f32 bit pattern: all exponents, both signs, NaNs included.
            let all = (0..1u64 << 32).step_by(997);
            pairs.extend(
                all.map(|bits| (T::from_f64(f64::from(f32::from_bits(bits as u32))), T::from_f64(1.0))),
            );
        }
        pairs
    }

    /// Runs `op` over its inputs through the vector and the scalar kernel, checks the two agree
    /// bit for bit, and returns the largest error and where it occurs.
    fn sweep<T: Elem>(op: Op) -> (u64, T, T, T, T) {
        let pairs = inputs::<T>(op);
        let a: Vec<T> = pairs.iter().map(|p| p.0).collect();
        let b: Vec<T> = pairs.iter().map(|p| p.1).collect();
        // An odd length, so the vector kernel runs its scalar tail.
        let len = a.len() - (1 - a.len() % 2);
        let (a, b) = (&a[..len], &b[..len]);
        let vector = compile(op, T::TYPE, true).run(a, b);
        let scalar = compile(op, T::TYPE, false).run(a, b);
        let mut worst = (0, a[0], b[0], vector[0], vector[0]);
        for i in 0..a.len() {
            assert_eq!(
                vector[i].ulps(scalar[i]),
                0,
                "{op:?} {}: vector and scalar code differ at {:?}, {:?}: {:?} vs {:?}",
                T::NAME,
                a[i],
                b[i],
                vector[i],
                scalar[i]
            );
            let want = T::reference(op, a[i], b[i]);
            let err = vector[i].ulps(want);
            if err > worst.0 {
                worst = (err, a[i], b[i], vector[i], want);
            }
        }
        worst
    }

    fn check<T: Elem>(op: Op, bound: u64) {
        let (err, a, b, got, want) = sweep::<T>(op);
        println!("{op:?} {}: max {err} ulp (at a = {a:?}, b = {b:?}: got {got:?}, want {want:?})", T::NAME);
        assert!(
            err <= bound,
            "{op:?} {}: {err} ulp > {bound} at a = {a:?}, b = {b:?}: got {got:?}, want {want:?}",
            T::NAME
        );
    }

    #[test]
    fn other_ops_and_types_are_left_to_the_caller() {
        let mut func = cranelift_codegen::ir::Function::new();
        let mut fctx = FunctionBuilderContext::new();
        let mut b = FunctionBuilder::new(&mut func, &mut fctx);
        let block = b.create_block();
        b.switch_to_block(block);
        let f = b.append_block_param(block, types::F32);
        let i = b.append_block_param(block, types::I32);
        for op in UnaryOp::ALL {
            let ours = op.spec().cpu == tenjit_ir::ops::CpuLowering::VecMath;
            assert_eq!(ours, provides_unary(op), "{op:?}: the row's lowering and this module disagree");
            if !ours {
                assert!(emit_unary(&mut b, op, types::F32, f).is_none(), "{op:?}");
            }
            assert!(emit_unary(&mut b, op, types::I32, i).is_none(), "{op:?} on i32");
        }
        assert!(emit_binary(&mut b, BinaryOp::Add, types::F32, f, f).is_none());
        assert!(emit_binary(&mut b, BinaryOp::Pow, types::I32, i, i).is_none());
    }

    /// Below the range where `exp` is subnormal, down to the clamp that computes it from
    /// zero halves and past it: every result is what libm gives (+0 from `zero_from` down).
    fn exp_underflows_to_zero<T: Elem>(xs: &[f64], zero_from: f64) {
        let xs: Vec<T> = xs.iter().map(|&x| T::from_f64(x)).collect();
        let got = compile(Op::Unary(UnaryOp::Exp), T::TYPE, true).run(&xs, &xs);
        for (&x, &y) in xs.iter().zip(&got) {
            let want = T::reference(Op::Unary(UnaryOp::Exp), x, x);
            assert!(y.ulps(want) <= 1, "exp({x:?}) {}: {y:?}, want {want:?}", T::NAME);
            assert!(x.to_f64() > zero_from || y.to_f64().to_bits() == 0, "exp({x:?}) = {y:?}, not +0");
        }
    }

    #[test]
    fn exp_underflows_to_zero_on_both_sides_of_the_zero_floor() {
        let (inf, min32) = (f64::NEG_INFINITY, f64::from(f32::MIN));
        exp_underflows_to_zero::<f32>(
            &[
                -87.0, -100.0, -103.9, -104.0, -104.5, -110.0, -150.0, -175.9, -176.0, -176.4, -177.0,
                -300.0, -1e30, inf, min32,
            ],
            -104.0,
        );
        exp_underflows_to_zero::<f64>(
            &[
                -700.0,
                -740.0,
                -745.1,
                -746.0,
                -800.0,
                -1000.0,
                -1417.9,
                -1418.0,
                -1418.4,
                -1419.0,
                -5000.0,
                inf,
                f64::MIN,
            ],
            -746.0,
        );
    }

    /// A stride through all 2^32 f32 bit patterns: every 65,537th in the normal run (65,536
    /// inputs per op); `TENJIT_VECMATH_STRIDE=7` checks every 7th (about a minute per op in a
    /// release build), which is how the table in the module docs was measured.
    #[test]
    fn f32_strided_sweep_of_all_inputs() {
        let stride: u64 =
            std::env::var("TENJIT_VECMATH_STRIDE").ok().and_then(|s| s.parse().ok()).unwrap_or(65_537).max(1);
        for op in [UnaryOp::Exp, UnaryOp::Log, UnaryOp::Sin, UnaryOp::Cos, UnaryOp::Tanh, UnaryOp::Erf] {
            let op = Op::Unary(op);
            let kernel = compile(op, types::F32, true);
            let mut worst = (0, 0.0_f32, 0.0_f32, 0.0_f32);
            let chunk = 1 << 24;
            let mut start = 0_u64;
            while start < 1 << 32 {
                let a: Vec<f32> = (start..(start + chunk * stride).min(1 << 32))
                    .step_by(stride as usize)
                    .map(|b| f32::from_bits(b as u32))
                    .collect();
                start += chunk * stride;
                let got = kernel.run(&a, &a);
                for (&x, &y) in a.iter().zip(&got) {
                    let want = f32::reference(op, x, x);
                    let err = y.ulps(want);
                    if err > worst.0 {
                        worst = (err, x, y, want);
                    }
                }
            }
            let (err, x, got, want) = worst;
            println!(
                "{op:?} f32, every {stride}th input: max {err} ulp (at {x:?}: got {got:?}, want {want:?})"
            );
            assert!(err <= 2, "{op:?}: {err} ulp at {x:?}");
        }
    }

    #[test]
    fn exp_accuracy() {
        check::<f32>(Op::Unary(UnaryOp::Exp), 2);
        check::<f64>(Op::Unary(UnaryOp::Exp), 4);
    }

    #[test]
    fn log_accuracy() {
        check::<f32>(Op::Unary(UnaryOp::Log), 2);
        check::<f64>(Op::Unary(UnaryOp::Log), 4);
    }

    #[test]
    fn sin_accuracy() {
        check::<f32>(Op::Unary(UnaryOp::Sin), 2);
        check::<f64>(Op::Unary(UnaryOp::Sin), 4);
    }

    #[test]
    fn cos_accuracy() {
        check::<f32>(Op::Unary(UnaryOp::Cos), 2);
        check::<f64>(Op::Unary(UnaryOp::Cos), 4);
    }

    #[test]
    fn tanh_accuracy() {
        check::<f32>(Op::Unary(UnaryOp::Tanh), 2);
        check::<f64>(Op::Unary(UnaryOp::Tanh), 4);
    }

    #[test]
    fn erf_accuracy() {
        check::<f32>(Op::Unary(UnaryOp::Erf), 2);
        check::<f64>(Op::Unary(UnaryOp::Erf), 0);
    }

    #[test]
    fn pow_accuracy() {
        check::<f32>(Op::Pow, 4);
        check::<f64>(Op::Pow, 8);
    }
}
