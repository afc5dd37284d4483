//! Support shared by the IR's integration tests: a small deterministic random generator, so
//! the random-graph tests need no crate and every run sees the same graphs, and the pieces of
//! the random-graph generator ([`graphs`]).

// Each test binary compiles this module and uses a subset of it.
#![allow(dead_code)]

pub mod graphs;
pub mod symbolic;

/// A small deterministic generator (xorshift64*), so the tests need no crate.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    pub fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }

    pub fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}
