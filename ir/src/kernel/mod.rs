//! The kernel IR: a backend-neutral description of a compiled graph as a [`Program`] of
//! [`Step`]s over buffers.
//!
//! A [`Kernel`] is one fused loop nest: an iteration space, the index map of every load (an
//! affine function of the loop indices: strides, broadcast strides of 0, permutations, slices
//! with negative steps and reshapes of dense views all reduce to one), an element program in
//! SSA form, and optionally a reduction with an epilogue that runs once per output element.
//! Matrix products are [`MatmulStep`]s for a tuned GEMM; the few ops no kernel expresses yet
//! are [`OpStep`]s that a backend runs as a library routine.
//!
//! Both code generators read only this IR; neither looks back at the graph. Its text form
//! (`Program`'s `Display`) is what `TENJIT_DUMP` writes and what snapshot tests pin.

use crate::graph::NodeId;
use crate::ops::{ArgOp, BinaryOp, Op, ReduceOp, Scalar, UnaryOp};
use crate::sym::SymExpr;
use crate::types::{DType, TensorType};
use smallvec::{smallvec, SmallVec};

/// A buffer of a program, by position in [`Program::buffers`].
pub type BufId = usize;

/// An instruction of a kernel's element program, by position.
pub type InstId = usize;

/// A compiled graph: buffers, the steps that fill them in order, and the outputs.
#[derive(Clone, Debug, PartialEq)]
pub struct Program {
    /// The graph's name.
    pub name: String,
    /// Every buffer the program reads or writes.
    pub buffers: Vec<BufferDecl>,
    /// Steps, run in order.
    pub steps: Vec<Step>,
    /// The buffers holding the graph's outputs, in order (an output may be an input buffer).
    pub outputs: Vec<BufId>,
    /// Runs of consecutive steps that may run row block by row block ([`Group`]), in step
    /// order and disjoint. Running the steps one after the other is always correct; a
    /// backend that honours a group keeps each row's intermediates in cache (CPU) or on chip.
    pub groups: Vec<Group>,
}

/// Consecutive steps that share a leading extent, `rows`, and depend on one another only
/// row by row: the result is the same whether the steps run one after the other over all
/// rows, or all of them on row block 0, then all on row block 1, and so on.
///
/// Every other step of a group has `rows` as its leading dimension: a kernel's space starts with it
/// and does not reduce it (its stores for row `r` cover row `r` of their buffers); a matrix
/// product has no batch dims and `m == rows`. A step reads a buffer written earlier in the
/// group only within the row it computes (see [`schedule`]). The
/// `local` buffers are written and read only by the group's steps and are no program output,
/// so a backend may keep only the rows in flight of each.
///
/// A group may also hold *steps over parts* (see [`parts`]): steps whose leading extent is
/// `rows / part`, each index of it covering `part` consecutive rows, that reduce their part
/// to one row of a small output (the partial sums of `Xᵀ @ g`, or of a loss, over 1024 rows
/// each). Such a step reads what the group wrote only within its part, and nothing in the
/// group reads what it writes; a backend runs it on a block of rows once the block's other
/// steps have, so blocks start and end at multiples of `part`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    /// Its steps, `steps.start..steps.end` of [`Program::steps`] (at least two).
    pub steps: std::ops::Range<usize>,
    /// The shared leading extent.
    pub rows: usize,
    /// The rows an index of a step over parts covers (a divisor of `rows`), or 1 when the
    /// group has no such step.
    pub part: usize,
    /// Buffers used only inside the group, row by row, sorted.
    pub local: Vec<BufId>,
}

/// A dense row-major buffer.
#[derive(Clone, Debug, PartialEq)]
pub struct BufferDecl {
    /// Element type and shape.
    pub ty: TensorType,
    /// Where it comes from.
    pub kind: BufferKind,
}

/// Where a buffer comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BufferKind {
    /// The graph input with this index (read-only).
    Input(usize),
    /// Written by a step; an intermediate or an output.
    Temp,
}

/// One step of a program.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// A fused loop nest.
    Kernel(Kernel),
    /// A (batched) matrix product.
    Matmul(MatmulStep),
    /// An op run as a library routine on dense operands.
    Op(OpStep),
    /// A counted loop running a body program (see [`LoopStep`]).
    Loop(Box<LoopStep>),
}

/// A fused loop nest.
///
/// The iteration space is `space`. Without a reduction, the body runs at every point and each
/// store writes its value at the point's row-major position in its (space-shaped) buffer.
/// With a reduction, the body's `value` is combined over the `reduce.axes` of the space; then
/// the epilogue runs once per output point (the space without the reduced axes), where
/// [`Inst::Acc`] is the reduced value, and the stores write epilogue values at the output
/// point's row-major position.
///
/// An index-of-extremum reduction ([`Combine::Arg`], one reduced axis) has two results: its
/// [`Inst::Acc`] is the `i64` index along the axis (the first extremum, or the first NaN), and
/// [`Inst::AccValue`] the extremum itself, as the matching `max`/`min` reduction computes it.
/// So `x.max_dim(1)`, a `max` and an `argmax` of one operand over one axis, is one kernel whose
/// epilogue stores both.
#[derive(Clone, Debug, PartialEq)]
pub struct Kernel {
    /// `k0`, `k1`, ... in program order.
    pub name: String,
    /// The iteration space, outermost first.
    pub space: Vec<usize>,
    /// The reduction, if any.
    pub reduce: Option<KernelReduce>,
    /// The element program at each point of `space`.
    pub body: Vec<Instr>,
    /// For a reduction: the body instruction whose value is reduced.
    pub value: Option<InstId>,
    /// For a reduction: the element program at each output point (loads index the output
    /// space). Empty for an elementwise kernel.
    pub epilogue: Vec<Instr>,
    /// What the kernel writes: body values (elementwise) or epilogue values (reduction).
    pub stores: Vec<Store>,
    /// Why the kernel ends here: the reason its result is materialized rather than fused into
    /// its consumers (`"graph output"`, `"reduction output used at two shapes"`, ...).
    pub reason: String,
    /// The graph node each instruction that can fail ([`Kernel::failing_sites`]) computes,
    /// where known, so a backend's error can name the user's op. Not printed: it is not part
    /// of what the kernel computes.
    pub origins: Vec<InstOrigin>,
}

/// The graph node an instruction of a kernel computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct InstOrigin {
    /// The instruction.
    pub site: Site,
    /// The node of the lowered graph it computes.
    pub node: NodeId,
}

/// An instruction of a kernel: of its body, or of its epilogue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Site {
    /// Whether the instruction is in the epilogue (else in the body).
    pub epilogue: bool,
    /// Its position there.
    pub inst: InstId,
}

/// The reduction of a kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelReduce {
    /// The combine op.
    pub op: Combine,
    /// The reduced axes of the iteration space, sorted (exactly one for [`Combine::Arg`]).
    pub axes: Vec<usize>,
}

/// How a reduction combines the body's values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Combine {
    /// A reduction to one value: [`Inst::Acc`] has the body value's dtype.
    Reduce(ReduceOp),
    /// The index of the extremum along the one reduced axis: [`Inst::Acc`] is that `i64`
    /// index (the first extremum on ties, the first NaN if any, as `argmax`/`argmin`), and
    /// [`Inst::AccValue`] the extremum (of the body value's dtype), equal to what
    /// [`Combine::Reduce`] of [`Combine::extremum`] computes.
    Arg(ArgOp),
}

impl Combine {
    /// Printed name: `sum`, ..., `argmax`, `argmin`.
    pub fn name(self) -> &'static str {
        match self {
            Combine::Reduce(op) => op.name(),
            Combine::Arg(op) => op.name(),
        }
    }

    /// The reduction computing the value: the op itself, or `max`/`min` for an arg reduction.
    pub fn extremum(self) -> ReduceOp {
        match self {
            Combine::Reduce(op) => op,
            Combine::Arg(ArgOp::ArgMax) => ReduceOp::Max,
            Combine::Arg(ArgOp::ArgMin) => ReduceOp::Min,
        }
    }

    /// The arg op, for an index-of-extremum reduction.
    pub fn arg(self) -> Option<ArgOp> {
        match self {
            Combine::Reduce(_) => None,
            Combine::Arg(op) => Some(op),
        }
    }
}

impl From<ReduceOp> for Combine {
    fn from(op: ReduceOp) -> Combine {
        Combine::Reduce(op)
    }
}

/// An instruction with its result dtype.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Instr {
    /// What it computes.
    pub inst: Inst,
    /// The dtype of its value.
    pub dtype: DType,
}

/// The element-program instructions. Operands refer to earlier instructions of the same
/// program.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Inst {
    /// The element of `buf` at `index` (a flat element offset).
    Load {
        /// The buffer read.
        buf: BufId,
        /// Its index map.
        index: IndexMap,
    },
    /// A constant.
    Const(Scalar),
    /// The integer `index` at this point, converted to the instruction's dtype (`iota`).
    Iota {
        /// The value as an affine function of the loop indices.
        index: IndexMap,
    },
    /// The Philox uniform draw with key `seed` and counter `offset + counter` (see
    /// `crate::random`), in wrapping `u64` arithmetic.
    ///
    /// `seed` and `offset` are earlier `i64` instructions read as the bits of a `u64`; they
    /// are uniform (the same at every point of the space: constants, or loads with stride 0
    /// everywhere), which is what the lowering emits and what backends may rely on.
    Rand {
        /// The generator key.
        seed: InstId,
        /// The counter of the draw's element 0.
        offset: InstId,
        /// The element's position in the draw at this point (the map is evaluated in
        /// wrapping 64-bit arithmetic).
        counter: IndexMap,
    },
    /// A unary op.
    Unary(UnaryOp, InstId),
    /// A binary op.
    Binary(BinaryOp, InstId, InstId),
    /// `where(cond, a, b)`.
    Where(InstId, InstId, InstId),
    /// Conversion to the instruction's dtype.
    Cast(InstId),
    /// Epilogue only: the reduced value at this output point (for [`Combine::Arg`], the
    /// `i64` index of the extremum).
    Acc,
    /// Epilogue of a [`Combine::Arg`] reduction only: the extremum's value at this output
    /// point.
    AccValue,
}

impl Inst {
    /// The instructions this one reads, in operand order.
    pub fn operands(&self) -> SmallVec<[InstId; 3]> {
        match *self {
            Inst::Unary(_, a) | Inst::Cast(a) => smallvec![a],
            Inst::Binary(_, a, b) | Inst::Rand { seed: a, offset: b, .. } => smallvec![a, b],
            Inst::Where(c, a, b) => smallvec![c, a, b],
            Inst::Load { .. } | Inst::Const(_) | Inst::Iota { .. } | Inst::Acc | Inst::AccValue => {
                SmallVec::new()
            }
        }
    }

    /// The index map of a load, an `iota` or a random draw's counter (over the loop indices);
    /// `None` for the instructions that have none.
    pub fn index(&self) -> Option<&IndexMap> {
        match self {
            Inst::Load { index, .. } | Inst::Iota { index } | Inst::Rand { counter: index, .. } => {
                Some(index)
            }
            Inst::Const(_)
            | Inst::Unary(..)
            | Inst::Binary(..)
            | Inst::Where(..)
            | Inst::Cast(_)
            | Inst::Acc
            | Inst::AccValue => None,
        }
    }

    /// [`Inst::index`], to change it.
    pub fn index_mut(&mut self) -> Option<&mut IndexMap> {
        match self {
            Inst::Load { index, .. } | Inst::Iota { index } | Inst::Rand { counter: index, .. } => {
                Some(index)
            }
            Inst::Const(_)
            | Inst::Unary(..)
            | Inst::Binary(..)
            | Inst::Where(..)
            | Inst::Cast(_)
            | Inst::Acc
            | Inst::AccValue => None,
        }
    }
}

/// Whether instruction `i` of `list` can fail at run time: an integer `//`, `%` or `**`.
pub fn can_fail(list: &[Instr], i: InstId) -> bool {
    match list[i].inst {
        Inst::Binary(op, a, _) => {
            matches!(op, BinaryOp::FloorDiv | BinaryOp::Rem | BinaryOp::Pow)
                && list.get(a).is_some_and(|x| !x.dtype.is_float())
        }
        Inst::Load { .. }
        | Inst::Const(_)
        | Inst::Iota { .. }
        | Inst::Rand { .. }
        | Inst::Unary(..)
        | Inst::Where(..)
        | Inst::Cast(_)
        | Inst::Acc
        | Inst::AccValue => false,
    }
}

/// An affine index: `offset + Σ strides[d] * i[d]` over the loop indices `i` (of the space
/// for body instructions, of the output space for epilogue instructions).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IndexMap {
    /// Value at the origin.
    pub offset: i64,
    /// One stride per loop index (0 where the index does not matter: broadcasting).
    pub strides: Vec<i64>,
    /// In a symbolic program ([`symbolic::SymProgram`]): the offset and strides as expressions
    /// of the graph's symbols, whose values at the graph's hints are `offset` and `strides`.
    /// `None` in a concrete program (every program a backend compiles).
    pub sym: Option<Box<SymIndex>>,
}

/// The offset and strides of an index map as expressions of a graph's symbols.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SymIndex {
    /// Value at the origin.
    pub offset: SymExpr,
    /// One stride per loop index.
    pub strides: Vec<SymExpr>,
}

impl IndexMap {
    /// The concrete map `offset + Σ strides[d] * i[d]`.
    pub fn new(offset: i64, strides: Vec<i64>) -> IndexMap {
        IndexMap { offset, strides, sym: None }
    }

    /// The value at loop indices `idx` (one per stride), in wrapping `i64` arithmetic.
    pub fn at(&self, idx: &[usize]) -> i64 {
        self.strides
            .iter()
            .zip(idx)
            .fold(self.offset, |acc, (&s, &i)| acc.wrapping_add(s.wrapping_mul(i as i64)))
    }
}

impl Kernel {
    /// The instructions that can fail at run time, body first, each in order: integer `//`,
    /// `%` (a zero divisor) and `**` (a negative exponent). A backend reports a failure by its
    /// position in this list, and [`Kernel::origin`] names the node it computes.
    pub fn failing_sites(&self) -> Vec<Site> {
        let sites = |list: &[Instr], epilogue: bool| -> Vec<Site> {
            (0..list.len()).filter(|&i| can_fail(list, i)).map(|inst| Site { epilogue, inst }).collect()
        };
        let mut all = sites(&self.body, false);
        all.extend(sites(&self.epilogue, true));
        all
    }

    /// The graph node instruction `site` computes, if recorded.
    pub fn origin(&self, site: Site) -> Option<NodeId> {
        self.origins.iter().find(|o| o.site == site).map(|o| o.node)
    }

    /// The output space: `space` without the reduced axes (all of `space` without a
    /// reduction). Stores write dense buffers of this many elements, row-major.
    pub fn out_space(&self) -> Vec<usize> {
        match &self.reduce {
            Some(r) => {
                self.space.iter().enumerate().filter(|(d, _)| !r.axes.contains(d)).map(|(_, &n)| n).collect()
            }
            None => self.space.clone(),
        }
    }
}

/// A store of an instruction's value into a buffer shaped like the (output) space.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Store {
    /// The buffer written.
    pub buf: BufId,
    /// The instruction stored.
    pub value: InstId,
}

/// A matrix product `out[b, m, n] = Σ_k a[b, m, k] * b[b, k, n]` over a batch of `batch`
/// dims, with strided operands and a dense output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatmulStep {
    /// Element type (all three buffers).
    pub dtype: DType,
    /// Batch dims.
    pub batch: Vec<usize>,
    /// Rows of `a` and of the output.
    pub m: usize,
    /// The contracted size.
    pub k: usize,
    /// Columns of `b` and of the output.
    pub n: usize,
    /// The left operand.
    pub a: MatOperand,
    /// The right operand.
    pub b: MatOperand,
    /// The dense `[batch..., m, n]` output.
    pub out: BufId,
}

/// A strided matrix operand: element `[b..., r, c]` is at
/// `offset + Σ batch_strides[j] * b[j] + row_stride * r + col_stride * c`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatOperand {
    /// The buffer read.
    pub buf: BufId,
    /// Offset of element `[0..., 0, 0]`.
    pub offset: i64,
    /// Stride of each batch dim (0 for a broadcast one).
    pub batch_strides: Vec<i64>,
    /// Stride between rows.
    pub row_stride: i64,
    /// Stride between columns.
    pub col_stride: i64,
}

/// An op run as a library routine: dense row-major operands, a dense output.
#[derive(Clone, Debug, PartialEq)]
pub struct OpStep {
    /// The op (its type rule holds for the operand buffers' types).
    pub op: Op,
    /// Operand buffers.
    pub args: Vec<BufId>,
    /// Output buffer.
    pub out: BufId,
    /// Why this op is not part of a fused kernel.
    pub reason: String,
    /// The node of the lowered graph it computes (so a failure names the user's op).
    pub origin: Option<NodeId>,
}

/// A counted loop: the body's own [`Program`] run `trips` times, each trip's outputs the next
/// trip's carried values.
///
/// The body program's inputs are the carried values, then the invariants, then the counter
/// (an `i64[]` holding the trip's number, from 0); its outputs are the new carried values,
/// each a fresh buffer of the body program (never one of its inputs). `args` are this
/// program's buffers holding the initial carried values and the invariants, in the body's
/// input order; `outs` receive the final carried values (with `trips == 0`, copies of the
/// initial ones). A backend may keep two sets of carried buffers and swap them between trips
/// (nothing is allocated or copied per trip).
#[derive(Clone, Debug, PartialEq)]
pub struct LoopStep {
    /// The body, lowered.
    pub body: Program,
    /// How many times the body runs.
    pub trips: usize,
    /// The initial carried values, then the invariants.
    pub args: Vec<BufId>,
    /// One dense output per carried value.
    pub outs: Vec<BufId>,
    /// A node of the lowered graph it computes (a failure inside the body is reported as
    /// this loop's). Not printed.
    pub origin: Option<NodeId>,
}

impl LoopStep {
    /// How many values the loop carries.
    pub fn carried(&self) -> usize {
        self.outs.len()
    }
}

pub mod eval;
pub mod half;
pub mod lower;
pub mod parts;
pub mod print;
pub mod schedule;
pub mod squeeze;
pub mod symbolic;
