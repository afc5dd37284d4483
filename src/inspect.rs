//! Every stage of the compiler as text, for any set of tensors: the traced graph, the graph
//! after each pass, the kernel list with the reason for each boundary, the kernel IR and the
//! CLIF of each kernel. Texts carry no source locations, so they are stable under edits and
//! can be pinned with snapshot tests.
//!
//! ```
//! use tenjit::prelude::*;
//! let x = Tensor::zeros([4, 8]).realize().clone();
//! let m = x.amax(1, true);
//! let e = (&x - &m).exp();
//! let softmax = &e / e.sum_dim(1, true);
//! let stages = tenjit::inspect(&[&softmax]);
//! // max; exp(x - max), computed once; their sum; the division: four kernels that run as one
//! // pass over the rows, each block of rows staying in cache.
//! assert_eq!(stages.kernel_count(), 4);
//! assert_eq!(stages.pass_count(), 1);
//! // In a test of your own model: insta::assert_snapshot!(stages.kernels());
//! println!("{}", stages.kernels());
//! ```

use crate::compile::Stages;
use crate::realize::{trace, TraceOptions};
use crate::tensor::Tensor;
use tenjit_ir::kernel::{Program, Step};

/// The compiler's stages for a set of tensors; see the module docs.
#[derive(Clone, Debug)]
pub struct Inspect {
    stages: Stages,
    program: Program,
}

/// Compiles the graph behind `tensors` (without running it) and returns every stage as text.
pub fn inspect(tensors: &[&Tensor]) -> Inspect {
    let traced = trace(tensors, TraceOptions { locations: false });
    let (program, stages, _) = crate::compile::lower(&traced.graph, true)
        .unwrap_or_else(|e| panic!("tenjit bug: lowering failed: {e}"));
    Inspect { stages, program }
}

impl Inspect {
    /// The traced graph.
    pub fn graph(&self) -> &str {
        &self.stages.traced
    }

    /// The graph after each pass, with the pass's name, in order.
    pub fn passes(&self) -> &[(&'static str, String)] {
        &self.stages.passes
    }

    /// The graph after all passes.
    pub fn optimized(&self) -> &str {
        self.stages.passes.last().map(|(_, t)| t.as_str()).unwrap_or(&self.stages.traced)
    }

    /// The kernel list: one line per step, with the reason each boundary exists.
    pub fn kernels(&self) -> &str {
        &self.stages.kernels
    }

    /// The kernel IR of the whole program.
    pub fn kernel_ir(&self) -> &str {
        &self.stages.program
    }

    /// The CLIF of every kernel, each headed by its name.
    pub fn clif(&self) -> String {
        self.stages.clif.iter().map(|(name, text)| format!("; kernel {name}\n{text}\n")).collect()
    }

    /// The CUDA C the CUDA backend would compile for the same tensors (rendered whether or not
    /// a GPU is present).
    pub fn cuda(&self) -> &str {
        &self.stages.cuda
    }

    /// Number of steps (kernels, matrix products, library ops).
    pub fn kernel_count(&self) -> usize {
        self.program.steps.len()
    }

    /// Number of passes the program makes over its data: a row group (steps that run row block
    /// by row block, see `tenjit_ir::kernel::schedule`) counts once, any other step once.
    pub fn pass_count(&self) -> usize {
        let grouped: usize = self.program.groups.iter().map(|g| g.steps.len()).sum();
        self.program.steps.len() - grouped + self.program.groups.len()
    }

    /// Number of row groups.
    pub fn group_count(&self) -> usize {
        self.program.groups.len()
    }

    /// Number of fused kernels (steps that are loop nests).
    pub fn fused_kernel_count(&self) -> usize {
        self.program.steps.iter().filter(|s| matches!(s, Step::Kernel(_))).count()
    }

    /// The memory plan: when each temporary is released, and the peak it implies.
    pub fn memory(&self) -> crate::runtime::MemoryPlan {
        crate::runtime::memory_plan(&self.program)
    }

    /// The lowered program.
    pub fn program(&self) -> &Program {
        &self.program
    }
}
