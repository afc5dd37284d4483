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
//! Sizes vary without tracing again where the closure lets them. When an argument's dims are
//! marked dynamic ([`Tensor::mark_dynamic`]), or a call brings a second size of a dim, the
//! closure is traced once over size symbols (placeholders whose shapes are expressions): later calls whose
//! sizes satisfy the trace's guards bind that graph to their sizes and run its compiled
//! program's instance, without running the closure. A closure that reads a dynamic size
//! (`x.shape()[0]` to slice or to divide by) cannot be replayed, since the size it read may
//! have shaped the graph: it is traced at each new size, as [`Jit::why_traced_again`] says
//! (at the size where that is found, the closure runs twice: over symbols, then at the sizes).
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
use symbolic::instance;
use tenjit_ir::graph::Mark;
use tenjit_ir::{Buffer, DType, Graph, NodeId, Op, Scalar, Shape, TensorType};

mod symbolic;

/// A function traced once per symbolic signature and compiled (see the [module](self) docs).
pub struct Jit<F> {
    f: F,
    traces: Mutex<Vec<Arc<Compiled>>>,
}

/// Where a compiled program's input comes from.
#[derive(Clone)]
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
    /// The values of the inputs after the draws': sizes a symbolic trace computes with.
    sizes: Vec<Arc<Buffer>>,
    exe: Option<Arc<dyn Executable>>,
    /// Why the closure ran for this entry (`None`: a symbolic trace's instance, bound
    /// without running it).
    traced: Option<String>,
    /// Whether this entry's trace holds at other sizes.
    replay: Replay,
}

/// Whether a traced entry serves other sizes without running the closure again.
enum Replay {
    /// Traced over size symbols: its graph holds at every binding that passes its guards.
    Symbolic(Arc<symbolic::SymbolicTrace>),
    /// Traced at its sizes: why not over symbols (`None` where no dim was dynamic).
    Concrete(Option<String>),
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
        inputs.extend(compiled.sizes.iter().cloned());
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

    /// How many times the closure has been traced (once per symbolic signature where the
    /// closure lets sizes vary, else once per signature).
    pub fn trace_count(&self) -> usize {
        self.traces.lock().unwrap_or_else(|p| p.into_inner()).iter().filter(|c| c.traced.is_some()).count()
    }

    /// Why the closure was traced, one line per trace in order: the first call, new dtypes or
    /// ranks, or the guard or range a call's sizes failed (`not an instance of the symbolic
    /// trace: guard d0 == 5 fails: 7 != 5`), torch's recompilation reasons.
    pub fn trace_reasons(&self) -> Vec<String> {
        let traces = self.traces.lock().unwrap_or_else(|p| p.into_inner());
        traces.iter().filter_map(|c| c.traced.clone()).collect()
    }

    /// How many argument signatures have a compiled program: the traced ones and the sizes
    /// served by binding a symbolic trace.
    pub fn signature_count(&self) -> usize {
        self.traces.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Why the last trace with dynamic dims holds only at its own sizes, so that other sizes
    /// trace the closure again (the first size read or op the symbolic rules could not type);
    /// `None` when there is no such trace.
    ///
    /// ```
    /// use tenjit::prelude::*;
    /// let f = tenjit::jit(|p: &[Tensor]| {
    ///     let n = p[0].shape()[0] as isize;
    ///     vec![p[0].i(s![0..n - 1])]
    /// });
    /// let x = Tensor::ones([5]);
    /// x.mark_dynamic(0);
    /// f.call(&[&x]);
    /// assert!(f.why_traced_again().unwrap().contains("`shape()` read a dynamic size"));
    /// ```
    pub fn why_traced_again(&self) -> Option<String> {
        let traces = self.traces.lock().unwrap_or_else(|p| p.into_inner());
        traces.iter().rev().find_map(|c| match &c.replay {
            Replay::Concrete(why) if c.traced.is_some() => why.clone(),
            Replay::Concrete(_) | Replay::Symbolic(_) => None,
        })
    }

    /// The traced graph for arguments of these types, if traced already (for inspection).
    pub fn graph_for(&self, args: &[&Tensor]) -> Option<Graph> {
        let traces = self.traces.lock().unwrap_or_else(|p| p.into_inner());
        traces.iter().find(|c| matches_signature(&c.signature, args)).map(|c| c.graph.clone())
    }

    fn compiled_for(&self, args: &[&Tensor], loc: &'static Location<'static>) -> Result<Arc<Compiled>> {
        let start = std::time::Instant::now();
        let (dynamic, reason) = {
            let traces = self.traces.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(c) = traces.iter().find(|c| matches_signature(&c.signature, args)) {
                return Ok(c.clone());
            }
            // Why the closure runs, unless a symbolic trace serves these sizes.
            let mut reason =
                if traces.is_empty() { "the first call" } else { "new dtypes, ranks or sizes" }.to_string();
            let mut replay = None;
            for c in traces.iter() {
                if let Replay::Symbolic(sym) = &c.replay {
                    match sym.bind(&c.signature, &c.bindings, args) {
                        Ok(bound) => {
                            replay = Some((c.clone(), sym.clone(), bound));
                            break;
                        }
                        Err(why) => reason = format!("not an instance of the symbolic trace: {why}"),
                    }
                }
            }
            if let Some((c, sym, bound)) = replay {
                drop(traces);
                let compiled = Arc::new(instance(&sym, bound, args, c.bindings.clone(), None, start)?);
                self.traces.lock().unwrap_or_else(|p| p.into_inner()).push(compiled.clone());
                return Ok(compiled);
            }
            (symbolic::dynamic_dims(args, &traces), reason)
        };
        for a in args {
            a.device().check_available()?;
        }
        let mut why = None;
        if !dynamic.is_empty() {
            match self.trace_symbolic(args, &dynamic, loc, start, reason.clone())? {
                Ok(compiled) => {
                    let compiled = Arc::new(compiled);
                    self.traces.lock().unwrap_or_else(|p| p.into_inner()).push(compiled.clone());
                    return Ok(compiled);
                }
                Err(reason) => why = Some(reason),
            }
        }
        let mut compiled = self.trace(args, loc, start)?;
        compiled.traced = Some(reason);
        compiled.replay = Replay::Concrete(why);
        let compiled = Arc::new(compiled);
        self.traces.lock().unwrap_or_else(|p| p.into_inner()).push(compiled.clone());
        Ok(compiled)
    }

    /// Traces the closure at the sizes of `args` and compiles its graph.
    fn trace(
        &self,
        args: &[&Tensor],
        loc: &'static Location<'static>,
        start: std::time::Instant,
    ) -> Result<Compiled> {
        let signature: Vec<TensorType> = args.iter().map(|a| a.ty_unrecorded().clone()).collect();
        let placeholders: Vec<Tensor> = signature.iter().map(|ty| placeholder(ty.clone(), loc)).collect();
        let results = self.run_closure(&placeholders);
        let roots: Vec<&Tensor> = results.iter().collect();
        let traced = trace(&roots, TraceOptions { locations: false });
        let mut graph = traced.graph;
        let draws = add_draw_inputs(&mut graph)?.iter().map(|&n| graph.ty(n).shape.numel()).collect();
        let bindings = bindings_of(&traced.leaves, &placeholders)?;
        let exe = compile(&graph, &marks_of(&bindings, args), None, start)?;
        Ok(Compiled {
            signature,
            graph,
            draws,
            calls: traced.calls,
            bindings,
            sizes: Vec::new(),
            exe,
            traced: Some(String::new()),
            replay: Replay::Concrete(None),
        })
    }

    /// Runs the closure on `placeholders`, with nothing realized automatically meanwhile (the
    /// placeholders hold no data).
    fn run_closure(&self, placeholders: &[Tensor]) -> Vec<Tensor> {
        let tracing = crate::lazy::Tracing::new();
        let results = (self.f)(placeholders);
        drop(tracing);
        results
    }
}

/// A leaf of type `ty` holding zeros, standing for an argument while the closure is traced
/// (its type may be symbolic: the buffer has the sizes at the hints).
fn placeholder(ty: TensorType, loc: &'static Location<'static>) -> Tensor {
    let concrete = TensorType { dtype: ty.dtype, shape: ty.shape.concrete() };
    let zeros = Buffer::full(&concrete, Scalar::Int(0).cast(ty.dtype));
    Tensor::from_value(Value::Host(Arc::new(zeros)), ty, Device::Cpu, loc)
}

/// Gives each `rand` of `graph` two new inputs, its seed and offset, filled at every call;
/// returns the `rand` nodes in the order of their inputs.
fn add_draw_inputs(graph: &mut Graph) -> Result<Vec<NodeId>> {
    let mut draws = Vec::new();
    for n in graph.topo_order().unwrap_or_default() {
        if let op @ Op::Rand { .. } = graph.op(n).clone() {
            let seed = graph.add_input(format!("seed{}", draws.len()), rand_word());
            let offset = graph.add_input(format!("offset{}", draws.len()), rand_word());
            graph
                .set_op(n, op, &[seed, offset])
                .map_err(|e| Error::internal(format!("a traced rand takes no runtime seed: {e}")))?;
            draws.push(n);
        }
    }
    Ok(draws)
}

/// Where each of a trace's `leaves` comes from: an argument (one of `placeholders`) or a
/// captured tensor.
fn bindings_of(leaves: &[Tensor], placeholders: &[Tensor]) -> Result<Vec<Binding>> {
    leaves
        .iter()
        .map(|leaf| match placeholders.iter().position(|p| p.same_node(leaf)) {
            Some(i) => Ok(Binding::Arg(i)),
            None => Ok(Binding::Captured(leaf.buffer()?)),
        })
        .collect()
}

/// The dims of the arguments marked dynamic, at the graph inputs they are.
fn marks_of(bindings: &[Binding], args: &[&Tensor]) -> Vec<Mark> {
    bindings
        .iter()
        .enumerate()
        .flat_map(|(input, b)| match b {
            Binding::Arg(i) => args[*i].marks().into_iter().map(|m| Mark { input, ..m }).collect(),
            Binding::Captured(_) => Vec::new(),
        })
        .collect()
}

/// The executable of a traced `graph` (`None`: the interpreter runs it), an instance of
/// `symbolic` where traced over size symbols.
fn compile(
    graph: &Graph,
    marks: &[Mark],
    symbolic: Option<&Graph>,
    start: std::time::Instant,
) -> Result<Option<Arc<dyn Executable>>> {
    match crate::compile::target(Device::Cpu) {
        Target::Interp => Ok(None),
        Target::Device(Device::Cpu) => Ok(Some(match symbolic {
            Some(sym) => crate::compile::executable_traced(Device::Cpu, graph, start.elapsed(), sym)?,
            None => crate::compile::executable_marked(Device::Cpu, graph, start.elapsed(), marks)?,
        })),
        Target::Device(Device::Cuda(_)) => Err(Error::Device {
            kind: crate::DeviceErrorKind::Unsupported,
            message: "tenjit::jit compiles for the CPU (or runs the interpreter); with the cuda backend, \
                      call the function without jit"
                .into(),
        }),
    }
}

/// The type of a `rand`'s seed and offset: the bits of a `u64` in an `i64[]`.
fn rand_word() -> TensorType {
    TensorType::new(DType::I64, Shape::scalar())
}

fn matches_signature(signature: &[TensorType], args: &[&Tensor]) -> bool {
    signature.len() == args.len() && signature.iter().zip(args).all(|(s, a)| s == a.ty_unrecorded())
}
