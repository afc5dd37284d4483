//! tenjit: a lazy tensor compiler.

pub use tenjit_ir as ir;
