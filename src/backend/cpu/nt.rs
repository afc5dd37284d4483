//! The shape of a skinny product `x @ w.T` (`skinny.rs`, `skinny_avx512.rs`): both routines
//! read it, and neither names the other's module for it.

/// `m × k` rows `x` (row stride `lda`, contiguous along `k`) by the `n × k` rows `w` (row
/// stride `ldw`), transposed, into the dense `m × n` `out`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Nt {
    /// Rows of `x` and of `out`.
    pub m: usize,
    /// Rows of `w`, columns of `out`.
    pub n: usize,
    /// The length of each dot product.
    pub k: usize,
    /// Row stride of `x`.
    pub lda: usize,
    /// Row stride of `w`.
    pub ldw: usize,
}

/// A value of a small grid (multiples of 1/4 below 3 in size: products and their sums over
/// the routines' test lengths are exact in `f32`, so any order of a sum gives the same bits),
/// for the tests of the product routines.
#[cfg(test)]
pub(super) fn grid(seed: usize) -> f32 {
    ((seed * 7919 + 13) % 23) as f32 * 0.25 - 2.75
}

#[cfg(test)]
impl Nt {
    /// `x @ w.T` of this shape, each dot product summed in `f64` and rounded once.
    pub(super) fn reference(&self, x: &[f32], w: &[f32]) -> Vec<f32> {
        let mut out = Vec::new();
        for i in 0..self.m {
            for j in 0..self.n {
                let s: f64 =
                    (0..self.k).map(|p| x[i * self.lda + p] as f64 * w[j * self.ldw + p] as f64).sum();
                out.push(s as f32);
            }
        }
        out
    }
}
