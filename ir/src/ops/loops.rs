//! `loop`: a counted loop over a body graph with carried values, `jax.lax.fori_loop` with a
//! static trip count, as one op of the IR.
//!
//! A loop's operands are the initial carried values, then the loop-invariant inputs. Its
//! [`Body`] is a graph whose inputs are the carried values, then the invariants, then the
//! iteration counter (an `i64[]`, 0 on the first trip); its outputs are the new carried values,
//! of the same types as the carried inputs. After `trips` runs of the body, the carried values
//! are the loop's results (with `trips == 0`, the initial values).
//!
//! **Several results, one node per result.** The IR has one typed result per node, and a
//! loop has as many results as carried values. Rather than giving the IR tuple types (every
//! pass, the printer and both backends read one [`TensorType`] per node), a loop with `n`
//! carried values is `n` nodes that share the body, the trip count and the operands and differ
//! only in [`LoopOp::result`], the carried value each one yields. Since a loop is pure (a
//! `rand` inside is counter-based), nodes that agree on all of it are one computation: CSE may
//! merge two of them (same result), the interpreter evaluates the loop once for all of them,
//! and the kernel lowering emits one loop step for the whole family, whose results are
//! buffers of the nodes still alive. DCE removes a result no one reads; the step still
//! computes it, as the next trip needs it.
//!
//! **Symbolic bodies.** In a symbolic graph (see [`crate::graph`]'s symbolic graphs), a loop's
//! operands may have symbolic dims (a data set of `n` rows a training loop captures); its body
//! then declares the same symbols, at the same hints, and its inputs are typed over them, so
//! the body's sizes are expressions of the graph's symbols. The symbolic type rule checks
//! this, adds the body's guards to the graph's, and [`crate::Graph::bind`] binds the body with
//! the graph. [`crate::graph::generalize`] and [`crate::graph::generalize_marked`] make a
//! concrete loop's body symbolic with its operands, and the kernel lowering lowers it once,
//! with the graph, for every size ([`crate::kernel::symbolic`]).
//!
//! A body is immutable once built and verified ([`Body::new`]): it compares and hashes by
//! its structural fingerprint ([`Graph::fingerprint`], which sees every op, type, operand and
//! output but no name or location), so CSE never merges loops with different bodies, and an
//! executable cache keyed by the outer graph's structure sees the body's structure too.

use super::{OpError, OpErrorKind};
use crate::graph::Graph;
use crate::types::{DType, Shape, TensorType};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// The body of a loop: a verified graph `(carried..., invariants..., counter) -> carried...`.
#[derive(Clone)]
pub struct Body {
    graph: Arc<Graph>,
    key: u128,
}

impl Body {
    /// Checks and wraps `graph` as a loop body: it must verify, have at least one output, and
    /// take the carried values (typed as its outputs, in order), then any invariants, then
    /// the counter, an `i64[]`, last.
    pub fn new(graph: Graph) -> Result<Body, OpError> {
        let err = |message: String| Err(OpError { op: "loop", kind: OpErrorKind::Argument, message });
        if let Err(errors) = crate::verify::verify(&graph) {
            return err(format!(
                "the body @{} does not verify: {}",
                graph.name(),
                errors.to_string().trim_end()
            ));
        }
        let carried = graph.outputs().len();
        let inputs = graph.inputs();
        if carried == 0 {
            return err(format!("the body @{} carries no value (it returns nothing)", graph.name()));
        }
        if inputs.len() < carried + 1 {
            return err(format!(
                "the body @{} returns {carried} carried value(s) but takes {} input(s): it needs the \
                 carried values, the invariants, then the counter",
                graph.name(),
                inputs.len()
            ));
        }
        let counter = graph.ty(inputs[inputs.len() - 1].1);
        if *counter != counter_type() {
            return err(format!(
                "the body @{}'s last input (the counter) is {counter}, expected i64[]",
                graph.name()
            ));
        }
        for (k, (&out, (name, input))) in graph.outputs().iter().zip(inputs).enumerate() {
            let (before, after) = (graph.ty(*input), graph.ty(out));
            if before != after {
                return err(format!(
                    "carried value {k} (%{name}) of the body @{} is {before} before the body and {after} \
                     after it",
                    graph.name()
                ));
            }
        }
        let key = graph.fingerprint();
        Ok(Body { graph: Arc::new(graph), key })
    }

    /// The body graph.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// How many values the loop carries (the body's outputs).
    pub fn carried(&self) -> usize {
        self.graph.outputs().len()
    }

    /// How many loop-invariant inputs the body takes.
    pub fn invariants(&self) -> usize {
        self.graph.inputs().len() - self.carried() - 1
    }

    /// The type of the body's input `i`.
    pub fn input_type(&self, i: usize) -> &TensorType {
        self.graph.ty(self.graph.inputs()[i].1)
    }

    /// The structural fingerprint the body compares and hashes by.
    pub fn key(&self) -> u128 {
        self.key
    }
}

/// The type of a loop's counter: `i64[]`.
pub fn counter_type() -> TensorType {
    TensorType::new(DType::I64, Shape::scalar())
}

impl PartialEq for Body {
    fn eq(&self, other: &Body) -> bool {
        self.key == other.key
    }
}

impl Eq for Body {}

impl Hash for Body {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key.hash(state);
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Body(@{}, {:032x})", self.graph.name(), self.key)
    }
}

/// A loop node: the body, the trip count, and which carried value this node yields.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LoopOp {
    /// The body.
    pub body: Body,
    /// How many times the body runs.
    pub trips: usize,
    /// The carried value this node yields, `0..body.carried()`.
    pub result: usize,
}

impl LoopOp {
    /// The type rule: the operands are the carried values' initial values and the invariants,
    /// typed as the body's inputs; the result is carried value `result`. A symbolic body (its
    /// sizes expressions over the symbols of the graph holding the loop) is typed here at its
    /// hints, and by the symbolic rules over its expressions.
    pub fn infer(&self, args: &[&TensorType]) -> Result<TensorType, OpError> {
        let err = |kind: OpErrorKind, message: String| Err(OpError { op: "loop", kind, message });
        let body = &self.body;
        let (carried, invariants) = (body.carried(), body.invariants());
        if args.len() != carried + invariants {
            return err(
                OpErrorKind::Argument,
                format!(
                    "the body @{} takes {carried} carried value(s) and {invariants} invariant(s), but the \
                     loop has {} operand(s)",
                    body.graph().name(),
                    args.len()
                ),
            );
        }
        for (i, a) in args.iter().enumerate() {
            let want = body.input_type(i);
            // A symbolic body is compared at its hints here; the symbolic rule compares the
            // dims' expressions (`crate::ops::symbolic`).
            if a.dtype != want.dtype || a.shape.dims() != want.shape.dims() {
                let what = if i < carried {
                    format!("carried value {i}")
                } else {
                    format!("invariant {}", i - carried)
                };
                return err(
                    if a.dtype != want.dtype { OpErrorKind::DType } else { OpErrorKind::Shape },
                    format!("{what} is {a} but the body @{} takes {want}", body.graph().name()),
                );
            }
        }
        if self.result >= carried {
            return err(
                OpErrorKind::Argument,
                format!("result {} is out of range: the loop carries {carried} value(s)", self.result),
            );
        }
        let ty = body.input_type(self.result);
        Ok(TensorType { dtype: ty.dtype, shape: ty.shape.concrete() })
    }
}
