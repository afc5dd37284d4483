//! The counter-based random generator: Philox4x32-10 and the mapping of its output to uniform
//! floats. This module is the contract every backend follows for the `rand` op.
//!
//! [`philox4x32_10`] is the generator of Salmon et al., "Parallel random numbers: as easy as
//! 1, 2, 3" (SC 2011), bit for bit as in Random123, cuRAND, JAX and NumPy's `Philox`: ten
//! rounds with multipliers `0xD2511F53`, `0xCD9E8D57` and key increments (Weyl constants)
//! `0x9E3779B9`, `0xBB67AE85`. It is a pure function of a 128-bit counter and a 64-bit key.
//!
//! The `rand` op (`Op::Rand { ty }`, whose two `i64[]` operands hold the bits of the `u64`
//! `seed` and `offset`) draws element `i` (row-major) as follows, and a backend must produce
//! exactly these bits (the interpreter, the CPU kernels and the CUDA kernels all do, inside the
//! kernel that consumes the draw):
//!
//! * counter `c = offset + i` (wrapping in `u64`) becomes the Philox counter
//!   `[c as u32, (c >> 32) as u32, 0, 0]`;
//! * the seed becomes the key `[seed as u32, (seed >> 32) as u32]`;
//! * with `out = philox4x32_10(counter, key)`:
//!   * `f32`: `(out[0] >> 8) as f32 * 2^-24`, the top 24 bits of `out[0]`;
//!   * `f64`: `(((out[0] as u64) << 32 | out[1] as u64) >> 11) as f64 * 2^-53`, the top 53 bits
//!     of the 64-bit word whose high half is `out[0]` and low half `out[1]`.
//!
//! Both conversions are exact (the integer fits the mantissa and the scale is a power of two),
//! so every value is a multiple of `2^-24` (resp. `2^-53`) in `[0, 1)`: 0 is possible, 1 is not.
//! [`uniform_f32`] and [`uniform_f64`] implement the two formulas.

/// First round multiplier.
const M0: u32 = 0xD251_1F53;
/// Second round multiplier.
const M1: u32 = 0xCD9E_8D57;
/// Key increment of the first key word (the golden ratio).
const W0: u32 = 0x9E37_79B9;
/// Key increment of the second key word (`sqrt(3) - 1`).
const W1: u32 = 0xBB67_AE85;

/// The high and low 32-bit halves of the 64-bit product `a * b`.
fn mulhilo(a: u32, b: u32) -> (u32, u32) {
    let p = a as u64 * b as u64;
    ((p >> 32) as u32, p as u32)
}

/// One Philox round: two multiplications and a permutation of the four words.
fn round(c: [u32; 4], k: [u32; 2]) -> [u32; 4] {
    let (hi0, lo0) = mulhilo(M0, c[0]);
    let (hi1, lo1) = mulhilo(M1, c[2]);
    [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0]
}

/// Philox4x32-10: the 128-bit block for `counter` under `key`.
///
/// ```
/// use tenjit_ir::random::philox4x32_10;
/// assert_eq!(philox4x32_10([0; 4], [0; 2]), [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
/// ```
pub fn philox4x32_10(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut c = round(counter, key);
    let mut k = key;
    for _ in 1..10 {
        k = [k[0].wrapping_add(W0), k[1].wrapping_add(W1)];
        c = round(c, k);
    }
    c
}

/// The Philox block of element counter `counter` under `seed`, split as the module doc says.
pub fn bits(seed: u64, counter: u64) -> [u32; 4] {
    philox4x32_10([counter as u32, (counter >> 32) as u32, 0, 0], [seed as u32, (seed >> 32) as u32])
}

/// The uniform `f32` in `[0, 1)` of element counter `counter` under `seed`: the top 24 bits of
/// the block's first word, times `2^-24`.
pub fn uniform_f32(seed: u64, counter: u64) -> f32 {
    let out = bits(seed, counter);
    (out[0] >> 8) as f32 * (1.0 / (1u32 << 24) as f32)
}

/// The uniform `f64` in `[0, 1)` of element counter `counter` under `seed`: the top 53 bits of
/// `out[0]:out[1]` (high:low), times `2^-53`.
pub fn uniform_f64(seed: u64, counter: u64) -> f64 {
    let out = bits(seed, counter);
    let word = ((out[0] as u64) << 32) | out[1] as u64;
    (word >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random123's `kat_vectors` for philox4x32-10.
    #[test]
    fn known_answers() {
        assert_eq!(philox4x32_10([0; 4], [0; 2]), [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
        assert_eq!(
            philox4x32_10([0xffffffff; 4], [0xffffffff; 2]),
            [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]
        );
        assert_eq!(
            philox4x32_10([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0]),
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]
        );
    }

    #[test]
    fn uniform_formulas_use_the_documented_bits() {
        let out = bits(0, 0);
        assert_eq!(out, philox4x32_10([0; 4], [0; 2]));
        assert_eq!(uniform_f32(0, 0), (0x6627e8d5u32 >> 8) as f32 / 16777216.0);
        let word = (0x6627e8d5u64 << 32) | 0xe169c58d;
        assert_eq!(uniform_f64(0, 0), (word >> 11) as f64 / 9007199254740992.0);
        // The 64-bit seed and counter are split low word first.
        let (seed, counter) = (0x0123_4567_89ab_cdef_u64, 0xfedc_ba98_7654_3210_u64);
        assert_eq!(
            bits(seed, counter),
            philox4x32_10([0x76543210, 0xfedcba98, 0, 0], [0x89abcdef, 0x01234567])
        );
    }

    #[test]
    fn uniforms_lie_in_the_unit_interval() {
        for c in 0..10_000u64 {
            let (a, b) = (uniform_f32(7, c), uniform_f64(7, c));
            assert!((0.0..1.0).contains(&a) && (0.0..1.0).contains(&b), "counter {c}: {a} {b}");
        }
    }
}
