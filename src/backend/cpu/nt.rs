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
