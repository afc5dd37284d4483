//! `jit`: a function traced once from a closure, like `jax.jit`.
//!
//! [`jit`] wraps a closure over tensors. The first call with given argument types runs the
//! closure on placeholder tensors of those types, traces the graph from its results (gradients
//! included: `backward`/[`grad`](crate::grad()) inside the closure are part of the trace) and
//! compiles it. Every later call with the same types binds the arguments' buffers to the
//! compiled program and runs its kernels: no nodes are built, nothing is hashed.
//!
//! As with `jax.jit`, the closure must not read values (`item`, `to_vec`, printing, boolean
//! masks): its placeholders hold no data. Tensors it captures are constants of the compiled
//! function (their values as they were at the first call). Random ops draw fresh numbers on
//! every call, as they would outside `jit`: each call reserves new counters of the process's
//! generator ([`crate::manual_seed`]) for every `rand` of the trace, whose seed and offset are
//! runtime operands of the compiled program, so the function still compiles once.
//!
//! ```
//! use tenjit::prelude::*;
//! let x = tensor!([[1.0], [2.0], [3.0], [4.0]]);
//! let y = &x * 2.0;
//! // One SGD step of linear regression, forward, backward and update.
//! let step = tenjit::jit(move |p: &[Tensor]| {
//!     let (w, b) = (p[0].requires_grad_(), p[1].requires_grad_());
//!     let loss = (x.matmul(&w) + &b - &y).square().mean();
//!     let g = tenjit::grad(&[&loss], &[&w, &b]);
//!     vec![&w - &g[0] * 0.01, &b - &g[1] * 0.01, loss]
//! });
//! let (mut w, mut b) = (tensor!([[0.5]]), tensor!([0.0]));
//! for _ in 0..100 {
//!     let out = step.call(&[&w, &b]);
//!     (w, b) = (out[0].clone(), out[1].clone());
//! }
//! assert!((w.item() - 2.0).abs() < 0.3);
//! ```

use crate::compile::Target;
use crate::device::Device;
use crate::error::{Error, OrPanic, Result};
use crate::realize::{trace, TraceOptions};
use crate::runtime::{Executable, Value};
use crate::tensor::Tensor;
use std::panic::Location;
use std::sync::{Arc, Mutex};
use tenjit_ir::graph::Mark;
use tenjit_ir::{Buffer, DType, Graph, Op, Scalar, Shape, TensorType};

/// A function traced once per argument signature and compiled (see the [module](self) docs).
pub struct Jit<F> {
    f: F,
    traces: Mutex<Vec<Arc<Compiled>>>,
}

/// Where a compiled program's input comes from.
enum Binding {
    /// The call's argument with this index.
    Arg(usize),
    /// A tensor the closure captured.
    Captured(Arc<Buffer>),
}

struct Compiled {
    signature: Vec<TensorType>,
    graph: Graph,
    /// The element count of each `rand` of the graph, whose seed and offset are its last
    /// inputs, a pair per draw in this order.
    draws: Vec<usize>,
    /// The call in the closure that built each node of `graph`, for evaluation errors.
    calls: crate::realize::Calls,
    bindings: Vec<Binding>,
    exe: Option<Arc<dyn Executable>>,
}

/// Wraps `f` as a traced, compiled function (see the [module](self) docs).
pub fn jit<F>(f: F) -> Jit<F>
where
    F: Fn(&[Tensor]) -> Vec<Tensor>,
{
    Jit { f, traces: Mutex::new(Vec::new()) }
}

impl<F> Jit<F>
where
    F: Fn(&[Tensor]) -> Vec<Tensor>,
{
    /// Calls the function: traces and compiles it for these argument types the first time,
    /// then only runs the compiled program. Panics with the error's message on failure.
    #[track_caller]
    pub fn call(&self, args: &[&Tensor]) -> Vec<Tensor> {
        self.try_call(args).or_panic()
    }

    /// [`Jit::call`] as a `Result`.
    #[track_caller]
    pub fn try_call(&self, args: &[&Tensor]) -> Result<Vec<Tensor>> {
        let loc = Location::caller();
        if let Some(a) = args.iter().find(|a| a.device() != Device::Cpu) {
            return Err(Error::Device {
                kind: crate::DeviceErrorKind::Unsupported,
                message: format!(
                    "tenjit::jit runs on the CPU, but an argument is on {} (move it with .cpu(), or call \
                     the function without jit to compute on the GPU)",
                    a.device()
                ),
            });
        }
        let compiled = self.compiled_for(args, loc)?;
        let mut inputs = Vec::with_capacity(compiled.bindings.len());
        for b in &compiled.bindings {
            inputs.push(match b {
                Binding::Arg(i) => args[*i].buffer()?,
                Binding::Captured(buf) => buf.clone(),
            });
        }
        for &n in &compiled.draws {
            let (seed, offset) = crate::tensor::random::reserve(n);
            let word = |bits: u64| Arc::new(Buffer::full(&rand_word(), Scalar::Int(bits as i64)));
            inputs.extend([word(seed), word(offset)]);
        }
        match &compiled.exe {
            Some(exe) => {
                let inputs: Vec<Value> = inputs.into_iter().map(Value::Host).collect();
                let mut outputs = Vec::with_capacity(compiled.graph.outputs().len());
                exe.run(&inputs, &mut |v| {
                    let ty = v.host().expect("the CPU computes in host memory").ty();
                    outputs.push(Tensor::from_value(v, ty, Device::Cpu, loc));
                })
                .map_err(|e| crate::realize::locate_in(&compiled.calls, e))?;
                Ok(outputs)
            }
            None => {
                let owned: Vec<Buffer> = inputs.iter().map(|b| (**b).clone()).collect();
                let outputs = tenjit_ir::interp::eval(&compiled.graph, &owned)
                    .map_err(|e| crate::realize::locate_in(&compiled.calls, Error::from_interp(e)))?;
                Ok(outputs.into_iter().map(|b| Tensor::from_buffer_at(b, Device::Cpu, loc)).collect())
            }
        }
    }

    /// How many signatures have been traced and compiled.
    pub fn trace_count(&self) -> usize {
        self.traces.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// The traced graph for arguments of these types, if traced already (for inspection).
    pub fn graph_for(&self, args: &[&Tensor]) -> Option<Graph> {
        let traces = self.traces.lock().unwrap_or_else(|p| p.into_inner());
        traces.iter().find(|c| matches_signature(&c.signature, args)).map(|c| c.graph.clone())
    }

    fn compiled_for(&self, args: &[&Tensor], loc: &'static Location<'static>) -> Result<Arc<Compiled>> {
        {
            let traces = self.traces.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(c) = traces.iter().find(|c| matches_signature(&c.signature, args)) {
                return Ok(c.clone());
            }
        }
        for a in args {
            a.device().check_available()?;
        }
        let compiled = Arc::new(self.trace(args, loc)?);
        self.traces.lock().unwrap_or_else(|p| p.into_inner()).push(compiled.clone());
        Ok(compiled)
    }

    fn trace(&self, args: &[&Tensor], loc: &'static Location<'static>) -> Result<Compiled> {
        let start = std::time::Instant::now();
        let signature: Vec<TensorType> = args.iter().map(|a| a.ty().clone()).collect();
        let placeholders: Vec<Tensor> = signature
            .iter()
            .map(|ty| {
                Tensor::from_buffer_at(
                    Buffer::full(ty, tenjit_ir::Scalar::Int(0).cast(ty.dtype)),
                    Device::Cpu,
                    loc,
                )
            })
            .collect();
        // The inputs are placeholders: nothing may be realized automatically while `f` runs.
        let tracing = crate::lazy::Tracing::new();
        let results = (self.f)(&placeholders);
        drop(tracing);
        let roots: Vec<&Tensor> = results.iter().collect();
        let traced = trace(&roots, TraceOptions { locations: false });
        // Each `rand` reads its seed and offset from two new inputs, filled at every call.
        let mut graph = traced.graph;
        let mut draws = Vec::new();
        for n in graph.topo_order().unwrap_or_default() {
            if let op @ Op::Rand { .. } = graph.op(n).clone() {
                let seed = graph.add_input(format!("seed{}", draws.len()), rand_word());
                let offset = graph.add_input(format!("offset{}", draws.len()), rand_word());
                graph
                    .set_op(n, op, &[seed, offset])
                    .map_err(|e| Error::internal(format!("a traced rand takes no runtime seed: {e}")))?;
                draws.push(graph.ty(n).shape.numel());
            }
        }
        let bindings: Vec<Binding> = traced
            .leaves
            .iter()
            .map(|leaf| match placeholders.iter().position(|p| p.same_node(leaf)) {
                Some(i) => Ok(Binding::Arg(i)),
                None => Ok(Binding::Captured(leaf.buffer()?)),
            })
            .collect::<Result<_>>()?;
        // The dims of the arguments marked dynamic, at the graph inputs they are.
        let marks: Vec<Mark> = bindings
            .iter()
            .enumerate()
            .flat_map(|(input, b)| match b {
                Binding::Arg(i) => args[*i].marks().into_iter().map(|m| Mark { input, ..m }).collect(),
                Binding::Captured(_) => Vec::new(),
            })
            .collect();
        let exe = match crate::compile::target(Device::Cpu) {
            Target::Interp => None,
            Target::Device(Device::Cpu) => {
                Some(crate::compile::executable_marked(Device::Cpu, &graph, start.elapsed(), &marks)?)
            }
            Target::Device(Device::Cuda(_)) => {
                return Err(Error::Device {
                    kind: crate::DeviceErrorKind::Unsupported,
                    message: "tenjit::jit compiles for the CPU (or runs the interpreter); with the cuda \
                              backend, call the function without jit"
                        .into(),
                })
            }
        };
        Ok(Compiled { signature, graph, draws, calls: traced.calls, bindings, exe })
    }
}

/// The type of a `rand`'s seed and offset: the bits of a `u64` in an `i64[]`.
fn rand_word() -> TensorType {
    TensorType::new(DType::I64, Shape::scalar())
}

fn matches_signature(signature: &[TensorType], args: &[&Tensor]) -> bool {
    signature.len() == args.len() && signature.iter().zip(args).all(|(s, a)| s == a.ty())
}
