//! The CUDA C prelude: the device helpers generated kernels call, written once.
//!
//! Everything here reproduces the op table's scalar semantics (`tenjit_ir::ops`) and the
//! counter-based generator (`tenjit_ir::random`) on the device. The prelude includes no header
//! (NVRTC provides the CUDA math library and intrinsics built in), so a module compiles with
//! NVRTC alone.

use super::{ErrorCode, GATHER_INDEX_CODE, SCATTER_INDEX_CODE};
use tenjit_ir::BinaryOp;

/// The prelude's text: error codes, wrapping integer arithmetic, Python-style `//` and `%`,
/// NaN-propagating `maximum`/`minimum`, the arg-reduction merge, and Philox4x32-10.
pub fn prelude() -> String {
    let code = |op: BinaryOp| ErrorCode::of_binary(op).0;
    let mut s = String::new();
    s.push_str(HEADER);
    s.push_str(&format!(
        "#define TJ_ERR_POW {}\n#define TJ_ERR_FLOOR_DIV {}\n#define TJ_ERR_REM {}\n\
         #define TJ_ERR_GATHER_INDEX {}\n#define TJ_ERR_SCATTER_INDEX {}\n",
        code(BinaryOp::Pow),
        code(BinaryOp::FloorDiv),
        code(BinaryOp::Rem),
        GATHER_INDEX_CODE,
        SCATTER_INDEX_CODE,
    ));
    s.push_str(BODY);
    s
}

const HEADER: &str = r#"// ---- tenjit CUDA prelude ------------------------------------------------------------------
// Device helpers of generated kernels; the scalar semantics of tenjit's op table.
//
// Float arithmetic is IEEE round-to-nearest and never contracted into FMA: products, quotients
// and square roots use the __fmul_rn/__fdiv_rn/__fsqrt_rn intrinsics (and the __d* forms), so
// a kernel computes the interpreter's bits whatever the --fmad/--use_fast_math flags say.
// Transcendental functions are the CUDA math library's accurate ones (never the __expf-style
// fast intrinsics). Their maximum errors, as the CUDA C Programming Guide states them (full
// range, no -ftz): expf 2 ulp, logf 1 ulp, sinf/cosf 2 ulp, tanhf 2 ulp, powf 4 ulp; exp 1,
// log 1, sin/cos 2, tanh 2, pow 2 ulp.
//
// A kernel that can fail takes an `int* err`: the first failure stores its code there (see
// TJ_ERR_*; arithmetic codes are the op's position in BinaryOp::ALL plus one, as the CPU
// backend's status word) and the kernel goes on with a harmless value.

typedef unsigned int tj_u32;
typedef unsigned long long tj_u64;

// A kernel's dynamic shared memory (a row group's rows, sized at launch), 16-byte aligned. A
// host emulation defines the macro before the prelude.
#ifndef TJ_DYNAMIC_SHARED
#define TJ_DYNAMIC_SHARED(name) extern __shared__ __align__(16) unsigned char name[]
#endif

"#;

const BODY: &str = r#"
__device__ __forceinline__ void tj_fail(int* err, int code) { atomicCAS(err, 0, code); }

// Wrapping integer arithmetic (two's complement), computed unsigned so no signed overflow.
__device__ __forceinline__ int tj_add(int a, int b) { return (int)((tj_u32)a + (tj_u32)b); }
__device__ __forceinline__ int tj_sub(int a, int b) { return (int)((tj_u32)a - (tj_u32)b); }
__device__ __forceinline__ int tj_mul(int a, int b) { return (int)((tj_u32)a * (tj_u32)b); }
__device__ __forceinline__ int tj_neg(int a) { return (int)(0u - (tj_u32)a); }
__device__ __forceinline__ int tj_abs(int a) { return a < 0 ? tj_neg(a) : a; }
__device__ __forceinline__ long long tj_add(long long a, long long b) { return (long long)((tj_u64)a + (tj_u64)b); }
__device__ __forceinline__ long long tj_sub(long long a, long long b) { return (long long)((tj_u64)a - (tj_u64)b); }
__device__ __forceinline__ long long tj_mul(long long a, long long b) { return (long long)((tj_u64)a * (tj_u64)b); }
__device__ __forceinline__ long long tj_neg(long long a) { return (long long)(0ull - (tj_u64)a); }
__device__ __forceinline__ long long tj_abs(long long a) { return a < 0 ? tj_neg(a) : a; }

// Python's // and % on integers (rounding toward -inf; the remainder has the divisor's sign).
// A zero divisor fails; MIN // -1 wraps to MIN.
template <typename T>
__device__ __forceinline__ T tj_floor_div(T a, T b, int* err) {
    if (b == 0) { tj_fail(err, TJ_ERR_FLOOR_DIV); return 0; }
    if (b == -1) return tj_neg(a);
    T q = a / b, r = a % b;
    return (r != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}
template <typename T>
__device__ __forceinline__ T tj_rem(T a, T b, int* err) {
    if (b == 0) { tj_fail(err, TJ_ERR_REM); return 0; }
    if (b == -1) return 0;
    T r = a % b;
    return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}

// a ** b on integers by squaring, wrapping; a negative exponent fails.
__device__ __forceinline__ int tj_pow(int a, int b, int* err) {
    if (b < 0) { tj_fail(err, TJ_ERR_POW); return 0; }
    tj_u32 base = (tj_u32)a, r = 1u, e = (tj_u32)b;
    while (e) { if (e & 1u) r *= base; base *= base; e >>= 1; }
    return (int)r;
}
__device__ __forceinline__ long long tj_pow(long long a, long long b, int* err) {
    if (b < 0) { tj_fail(err, TJ_ERR_POW); return 0; }
    tj_u64 base = (tj_u64)a, r = 1ull, e = b > 0xffffffffll ? 0xffffffffull : (tj_u64)b;
    while (e) { if (e & 1ull) r *= base; base *= base; e >>= 1; }
    return (long long)r;
}

// NaN-propagating maximum and minimum (fmaxf/fminf would drop a NaN), IEEE 754-2019's: +0.0
// is above -0.0, so the result does not depend on the operands' order and a block reduction's
// tree gives what the interpreter's row-order fold gives. Equal operands differ at most in the
// sign of a zero: the AND of their bits keeps -0.0 only if both are, the OR if either is.
__device__ __forceinline__ float tj_maximum(float a, float b) { return (a != a || b != b) ? a + b : a == b ? __int_as_float(__float_as_int(a) & __float_as_int(b)) : (b > a ? b : a); }
__device__ __forceinline__ float tj_minimum(float a, float b) { return (a != a || b != b) ? a + b : a == b ? __int_as_float(__float_as_int(a) | __float_as_int(b)) : (b < a ? b : a); }
__device__ __forceinline__ double tj_maximum(double a, double b) { return (a != a || b != b) ? a + b : a == b ? __longlong_as_double(__double_as_longlong(a) & __double_as_longlong(b)) : (b > a ? b : a); }
__device__ __forceinline__ double tj_minimum(double a, double b) { return (a != a || b != b) ? a + b : a == b ? __longlong_as_double(__double_as_longlong(a) | __double_as_longlong(b)) : (b < a ? b : a); }
__device__ __forceinline__ int tj_maximum(int a, int b) { return a > b ? a : b; }
__device__ __forceinline__ int tj_minimum(int a, int b) { return a < b ? a : b; }
__device__ __forceinline__ long long tj_maximum(long long a, long long b) { return a > b ? a : b; }
__device__ __forceinline__ long long tj_minimum(long long a, long long b) { return a < b ? a : b; }

// Python's // and % on floats, as torch computes them (the op table's float_floor_div and
// float_rem). f32 goes through f64, exactly as the op table defines f32 ops.
__device__ __forceinline__ double tj_floor_div(double a, double b) {
    if (b == 0.0) return __ddiv_rn(a, b);
    double m = fmod(a, b);
    double div = __ddiv_rn(a - m, b);
    if (m != 0.0 && ((b < 0.0) != (m < 0.0))) div -= 1.0;
    if (div != 0.0) {
        double f = floor(div);
        if (div - f > 0.5) f += 1.0;
        return f;
    }
    return copysign(0.0, __ddiv_rn(a, b));
}
__device__ __forceinline__ double tj_rem(double a, double b) {
    double m = fmod(a, b);
    return (m != 0.0 && ((b < 0.0) != (m < 0.0))) ? m + b : m;
}
__device__ __forceinline__ float tj_floor_div(float a, float b) { return (float)tj_floor_div((double)a, (double)b); }
__device__ __forceinline__ float tj_rem(float a, float b) { return (float)tj_rem((double)a, (double)b); }

// One step of an argmax (MAX) or argmin: merges candidate (v2, i2, nan2) into (v, i, nan).
// The first NaN wins; otherwise the better value, and the smaller index on ties. Visiting
// elements in increasing index order this keeps the first extremum; merging partial results
// of interleaved subsets it gives the same answer. The value is the extremum by
// tj_maximum/tj_minimum (a tie of +0 and -0 keeps the max's +0 even where the index holds -0),
// so it equals the max/min reduction of the same elements. An empty candidate has index
// LLONG_MAX.
template <bool MAX, typename T>
__device__ __forceinline__ void tj_arg_merge(T& v, long long& i, bool& nan, T v2, long long i2, bool nan2) {
    if (nan || nan2) {
        if (nan2 && (!nan || i2 < i)) { v = v2; i = i2; nan = true; }
        return;
    }
    if ((MAX ? v2 > v : v2 < v) || (v2 == v && i2 < i)) i = i2;
    v = MAX ? tj_maximum(v, v2) : tj_minimum(v, v2);
}

// Philox4x32-10 (Salmon et al. 2011), bit for bit as tenjit_ir::random: counter
// [c lo, c hi, 0, 0], key [seed lo, seed hi].
__device__ __forceinline__ void tj_philox(tj_u32 c[4], tj_u64 seed, tj_u64 counter) {
    tj_u32 k0 = (tj_u32)seed, k1 = (tj_u32)(seed >> 32);
    c[0] = (tj_u32)counter; c[1] = (tj_u32)(counter >> 32); c[2] = 0u; c[3] = 0u;
    #pragma unroll
    for (int round = 0; round < 10; ++round) {
        if (round > 0) { k0 += 0x9E3779B9u; k1 += 0xBB67AE85u; }
        tj_u32 hi0 = __umulhi(0xD2511F53u, c[0]), lo0 = 0xD2511F53u * c[0];
        tj_u32 hi1 = __umulhi(0xCD9E8D57u, c[2]), lo1 = 0xCD9E8D57u * c[2];
        tj_u32 n0 = hi1 ^ c[1] ^ k0, n2 = hi0 ^ c[3] ^ k1;
        c[0] = n0; c[1] = lo1; c[2] = n2; c[3] = lo0;
    }
}
// The top 24 bits of word 0, times 2^-24 (exact).
__device__ __forceinline__ float tj_rand_f32(tj_u64 seed, tj_u64 counter) {
    tj_u32 c[4];
    tj_philox(c, seed, counter);
    return __fmul_rn((float)(c[0] >> 8), 5.9604644775390625e-8f);
}
// The top 53 bits of word0:word1, times 2^-53 (exact).
__device__ __forceinline__ double tj_rand_f64(tj_u64 seed, tj_u64 counter) {
    tj_u32 c[4];
    tj_philox(c, seed, counter);
    tj_u64 w = ((tj_u64)c[0] << 32) | (tj_u64)c[1];
    return __dmul_rn((double)(w >> 11), 1.1102230246251565e-16);
}
// ---- end of prelude ------------------------------------------------------------------------
"#;

/// The 16-bit float helpers of a module that has `f16` or `bf16` buffers: the storage types
/// `tj_f16` and `tj_bf16` (the formats' bits, as `__half` and `__nv_bfloat16` hold them) and
/// their conversions, the same bits as the `half` crate's (and so as the interpreter's):
/// widening is exact, narrowing rounds to nearest with ties to even, overflows to infinity,
/// keeps `f16` subnormals, and turns a NaN into a quiet NaN of the same sign.
///
/// They are written in plain C on integer bits rather than with `cuda_fp16.h`/`cuda_bf16.h`'s
/// `__float2half_rn`/`__float2bfloat16_rn`: NVRTC has those headers only through an include
/// path into the CUDA runtime's headers, which the PyPI tools tenjit compiles with do not
/// install, and plain C also runs unchanged in the tests' g++ emulation. Arithmetic on 16-bit
/// values is `float` arithmetic in either case, so only loads, stores and rounding casts use
/// them.
pub fn half_prelude() -> &'static str {
    HALF
}

const HALF: &str = r#"
// ---- 16-bit floats: stored as their bits, computed in float ----------------------------------
typedef unsigned short tj_f16;
typedef unsigned short tj_bf16;

__device__ __forceinline__ float tj_bf16_to_f32(tj_bf16 b) { return __int_as_float((int)((tj_u32)b << 16)); }

// Round to nearest even on the bits; a NaN stays a (quiet) NaN.
__device__ __forceinline__ tj_bf16 tj_f32_to_bf16(float f) {
    tj_u32 x = (tj_u32)__float_as_int(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (tj_bf16)((x >> 16) | 0x40u);
    return (tj_bf16)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

__device__ __forceinline__ float tj_f16_to_f32(tj_f16 h) {
    tj_u32 sign = ((tj_u32)h & 0x8000u) << 16;
    tj_u32 e = ((tj_u32)h >> 10) & 0x1fu;
    tj_u32 m = (tj_u32)h & 0x3ffu;
    if (e == 0x1fu) return __int_as_float((int)(sign | 0x7f800000u | (m << 13)));
    if (e == 0u) {
        // Zero or a subnormal, m * 2^-24 (exact).
        float v = __fmul_rn((float)m, 5.9604644775390625e-8f);
        return sign ? -v : v;
    }
    return __int_as_float((int)(sign | ((e + 112u) << 23) | (m << 13)));
}

__device__ __forceinline__ tj_f16 tj_f32_to_f16(float f) {
    tj_u32 x = (tj_u32)__float_as_int(f);
    tj_u32 sign = (x >> 16) & 0x8000u;
    tj_u32 ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return (tj_f16)(sign | 0x7e00u | ((ax & 0x7fffffu) >> 13));
    // 65520 and above (the midpoint past 65504, whose last bit is odd) round to infinity.
    if (ax >= 0x477ff000u) return (tj_f16)(sign | 0x7c00u);
    if (ax >= 0x38800000u) {
        // Normal: rebias the exponent (127 - 15), round away 13 bits.
        tj_u32 r = ax - 0x38000000u;
        r = r + 0xfffu + ((r >> 13) & 1u);
        return (tj_f16)(sign | (r >> 13));
    }
    // 2^-25 and below round to zero (2^-25 is a tie, and zero is even).
    if (ax <= 0x33000000u) return (tj_f16)sign;
    // Subnormal: the significand with its implicit bit, shifted to units of 2^-24; a carry
    // into bit 10 gives the smallest normal, as it should.
    tj_u32 e = ax >> 23;
    tj_u32 m = (ax & 0x7fffffu) | 0x800000u;
    tj_u32 shift = 126u - e;
    tj_u32 r = m >> shift;
    tj_u32 rem = m & ((1u << shift) - 1u);
    tj_u32 halfway = 1u << (shift - 1u);
    if (rem > halfway || (rem == halfway && (r & 1u))) r += 1u;
    return (tj_f16)(sign | r);
}

__device__ __forceinline__ float tj_round_f16(float f) { return tj_f16_to_f32(tj_f32_to_f16(f)); }
__device__ __forceinline__ float tj_round_bf16(float f) { return tj_bf16_to_f32(tj_f32_to_bf16(f)); }
"#;
