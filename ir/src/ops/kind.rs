//! The kinds of op, as the kernel lowering and the backends group them: one exhaustive match
//! over [`Op`] ([`Op::kind`]) that the lowering, the parser and the code generators read, in
//! place of each keeping its own list of "every op but these".

use super::{ConvOp, Dims, IDims, LoopOp, Op, PoolOp};
use crate::types::Shape;

/// What an op is to the kernel lowering, with the attributes of the kinds that code matches on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind<'a> {
    /// A graph input.
    Input,
    /// A value made from nothing: `const`, `iota`, `rand`.
    Source,
    /// Elementwise: unary, binary, `where`, `cast`; fuses into its consumers.
    Elementwise,
    /// A movement view; fuses as an index expression.
    Movement(Movement<'a>),
    /// A reduction (`sum`..., `argmax`...).
    Reduce,
    /// A matrix product: its own step.
    Matmul,
    /// A library routine: its own step.
    Library(Library<'a>),
    /// A loop over a body graph: its own step, which runs the body's program.
    Loop(&'a LoopOp),
}

/// A movement op's attributes, borrowed from its [`Op`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Movement<'a> {
    /// `reshape`.
    Reshape {
        /// Result shape.
        shape: &'a Shape,
    },
    /// `permute`.
    Permute {
        /// The permutation.
        perm: &'a Dims,
    },
    /// `expand`.
    Expand {
        /// Result shape.
        shape: &'a Shape,
    },
    /// `slice`.
    Slice {
        /// First index per axis.
        start: &'a IDims,
        /// Step per axis.
        step: &'a IDims,
        /// Result size per axis.
        size: &'a Dims,
    },
}

/// A library op's attributes, borrowed from its [`Op`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Library<'a> {
    /// `gather`.
    Gather {
        /// Axis indexed.
        axis: usize,
    },
    /// `scatter_add`.
    ScatterAdd {
        /// Axis indexed.
        axis: usize,
    },
    /// `concat`.
    Concat {
        /// Axis joined.
        axis: usize,
    },
    /// `pad`.
    Pad {
        /// Padding before.
        lo: &'a Dims,
        /// Padding after.
        hi: &'a Dims,
    },
    /// `conv2d`, `conv2d_input`, `conv2d_weight`.
    Conv(&'a ConvOp),
    /// `max_pool2d_select`, `max_pool2d_scatter`.
    Pool(&'a PoolOp),
}

impl Op {
    /// The kind of this op.
    pub fn kind(&self) -> OpKind<'_> {
        match self {
            Op::Input { .. } => OpKind::Input,
            Op::Const { .. } | Op::Size { .. } | Op::Iota { .. } | Op::Rand { .. } => OpKind::Source,
            Op::Unary(_) | Op::Binary(_) | Op::Where | Op::Cast { .. } => OpKind::Elementwise,
            Op::Reshape { shape } => OpKind::Movement(Movement::Reshape { shape }),
            Op::Permute { perm } => OpKind::Movement(Movement::Permute { perm }),
            Op::Expand { shape } => OpKind::Movement(Movement::Expand { shape }),
            Op::Slice { start, step, size, .. } => OpKind::Movement(Movement::Slice { start, step, size }),
            Op::Reduce { .. } | Op::ArgReduce { .. } => OpKind::Reduce,
            Op::Matmul => OpKind::Matmul,
            Op::Gather { axis } => OpKind::Library(Library::Gather { axis: *axis }),
            Op::ScatterAdd { axis } => OpKind::Library(Library::ScatterAdd { axis: *axis }),
            Op::Concat { axis } => OpKind::Library(Library::Concat { axis: *axis }),
            Op::Pad { lo, hi } => OpKind::Library(Library::Pad { lo, hi }),
            Op::Conv(c) => OpKind::Library(Library::Conv(c)),
            Op::Pool(p) => OpKind::Library(Library::Pool(p)),
            Op::Loop(l) => OpKind::Loop(l),
        }
    }
}
