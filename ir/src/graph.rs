//! `Graph`: a typed graph of primitive ops over petgraph's `StableDiGraph`.
//!
//! Every node holds its op and its result type; operands are incoming edges weighted by their
//! position. Nodes are only added through [`Graph::add`], which runs the op's type rule, so a
//! graph built through this API is well typed by construction; [`crate::verify()`] re-checks
//! graphs after passes and after parsing. petgraph stays behind this module's wall: the public
//! API speaks [`NodeId`] only.

use crate::ops::{Op, OpError, OpErrorKind};
use crate::types::TensorType;
use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::{EdgeRef, IntoEdgeReferences, NodeIndexable};
use petgraph::Direction;
use smallvec::SmallVec;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;

mod generalize;
mod mark;
mod symbolic;

pub use generalize::{generalize, Generalized, Introduced, NotGeneral};
pub use mark::{generalize_marked, Mark};
pub use symbolic::BindError;

/// A node of a [`Graph`]. Its `Display` is `%index`; printing a whole graph renumbers densely.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(u32);

impl NodeId {
    /// The raw index (stable while the node exists).
    pub fn index(self) -> usize {
        self.0 as usize
    }

    fn ix(self) -> NodeIndex<u32> {
        NodeIndex::new(self.0 as usize)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "%{}", self.0)
    }
}

/// What a node holds.
#[derive(Clone, Debug)]
struct NodeData {
    op: Op,
    ty: TensorType,
    loc: Option<String>,
    /// The operands in order: the sources of the node's incoming edges sorted by position,
    /// kept here as well because every pass and the lowering ask for them (sorting the edges
    /// on each call was an eighth of the W8 step's lowering). Every change of the edges
    /// (`add_at`, `set_op`, `replace_all_uses`) updates it.
    args: SmallVec<[NodeId; 3]>,
}

/// A typed graph of primitive ops with named inputs and ordered outputs.
#[derive(Clone, Debug)]
pub struct Graph {
    name: String,
    g: StableDiGraph<NodeData, u32, u32>,
    inputs: Vec<(String, NodeId)>,
    outputs: Vec<NodeId>,
    /// Slots of `g`, vacant ones included: one past the largest index ever given out (petgraph's
    /// `node_bound` stops at the last occupied slot).
    slots: usize,
    /// The size symbols its shapes may use, their sizes at the hints, and the guards its type
    /// rules added (see [`symbolic`]).
    sym: symbolic::SymInfo,
}

impl Graph {
    /// An empty graph called `name` (printed as `graph @name(...)`).
    pub fn new(name: impl Into<String>) -> Graph {
        Graph {
            name: name.into(),
            g: StableDiGraph::default(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            slots: 0,
            sym: Default::default(),
        }
    }

    /// The graph's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Adds an input parameter of type `ty`.
    pub fn add_input(&mut self, name: impl Into<String>, ty: TensorType) -> NodeId {
        let index = self.inputs.len();
        let id = NodeId(
            self.g
                .add_node(NodeData {
                    op: Op::Input { index, ty: ty.clone() },
                    ty,
                    loc: None,
                    args: SmallVec::new(),
                })
                .index() as u32,
        );
        self.inputs.push((name.into(), id));
        self.slots = self.slots.max(id.index() + 1);
        id
    }

    /// Adds `op` applied to `args`, inferring its type; fails if the type rule rejects the
    /// operands or an operand does not exist.
    pub fn add(&mut self, op: Op, args: &[NodeId]) -> Result<NodeId, OpError> {
        self.add_at(op, args, None)
    }

    /// Adds a `rand` of type `ty` whose seed and offset are the constants `seed` and `offset`
    /// (`i64[]` nodes holding their bits); fails if `ty` is not a float type.
    ///
    /// ```
    /// use tenjit_ir::{DType, Graph, TensorType};
    /// let mut g = Graph::new("g");
    /// let r = g.add_rand(TensorType::new(DType::F32, [3]), 7, u64::MAX).unwrap();
    /// assert_eq!(g.args(r).len(), 2);
    /// ```
    pub fn add_rand(&mut self, ty: TensorType, seed: u64, offset: u64) -> Result<NodeId, OpError> {
        let word = |bits: u64| Op::Const {
            value: crate::ops::Scalar::Int(bits as i64),
            ty: TensorType::new(crate::types::DType::I64, crate::types::Shape::scalar()),
        };
        let seed = self.add(word(seed), &[])?;
        let offset = self.add(word(offset), &[])?;
        self.add(Op::Rand { ty }, &[seed, offset])
    }

    /// [`Graph::add`], recording the user's source location (printed as a trailing comment).
    pub fn add_at(&mut self, op: Op, args: &[NodeId], loc: Option<String>) -> Result<NodeId, OpError> {
        if let Op::Input { .. } = op {
            return Err(OpError {
                op: "input",
                kind: OpErrorKind::Argument,
                message: "inputs are added with add_input".into(),
            });
        }
        let mut tys = Vec::with_capacity(args.len());
        for &a in args {
            match self.g.node_weight(a.ix()) {
                Some(n) => tys.push(&n.ty),
                None => {
                    return Err(OpError {
                        op: op.name(),
                        kind: OpErrorKind::Argument,
                        message: format!("operand {a} does not exist"),
                    })
                }
            }
        }
        let ty = self.sym.infer(&op, &tys)?;
        let id = self.g.add_node(NodeData { op, ty, loc, args: SmallVec::from_slice(args) });
        self.slots = self.slots.max(id.index() + 1);
        for (pos, &a) in args.iter().enumerate() {
            self.g.add_edge(a.ix(), id, pos as u32);
        }
        Ok(NodeId(id.index() as u32))
    }

    /// Sets the graph's outputs, in order.
    pub fn set_outputs(&mut self, outputs: Vec<NodeId>) {
        self.outputs = outputs;
    }

    /// The outputs, in order.
    pub fn outputs(&self) -> &[NodeId] {
        &self.outputs
    }

    /// The inputs with their names, in order.
    pub fn inputs(&self) -> &[(String, NodeId)] {
        &self.inputs
    }

    /// Whether `n` is a node of this graph.
    pub fn contains(&self, n: NodeId) -> bool {
        self.g.contains_node(n.ix())
    }

    /// The op of `n`. Panics if `n` is not in the graph (a bug of the caller).
    pub fn op(&self, n: NodeId) -> &Op {
        &self.g[n.ix()].op
    }

    /// The result type of `n`.
    pub fn ty(&self, n: NodeId) -> &TensorType {
        &self.g[n.ix()].ty
    }

    /// The source location recorded for `n`, if any.
    pub fn loc(&self, n: NodeId) -> Option<&str> {
        self.g[n.ix()].loc.as_deref()
    }

    /// The operands of `n`, in order.
    pub fn args(&self, n: NodeId) -> SmallVec<[NodeId; 3]> {
        self.g.node_weight(n.ix()).map(|d| d.args.clone()).unwrap_or_default()
    }

    /// The nodes that use `n`, each once, in index order.
    pub fn users(&self, n: NodeId) -> Vec<NodeId> {
        let mut users: Vec<NodeId> = self
            .g
            .neighbors_directed(n.ix(), Direction::Outgoing)
            .map(|u| NodeId(u.index() as u32))
            .collect();
        users.sort_unstable();
        users.dedup();
        users
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.g.node_count()
    }

    /// Whether the graph has no nodes.
    pub fn is_empty(&self) -> bool {
        self.g.node_count() == 0
    }

    /// All nodes in index order.
    pub fn nodes(&self) -> Vec<NodeId> {
        self.g.node_indices().map(|i| NodeId(i.index() as u32)).collect()
    }

    /// Replaces the op and operands of `n` in place, keeping its id and its location, so a
    /// rewrite (a folded constant, a composed view) still cites the user's line. The new op must
    /// give `n` exactly the type it has, so every user stays well typed. Fails, changing
    /// nothing, if `n` is an input or not in the graph, `op` is an input, an operand does not
    /// exist or is `n` itself, or the type differs. The caller keeps the graph acyclic: no
    /// operand may depend on `n`.
    pub fn set_op(&mut self, n: NodeId, op: Op, args: &[NodeId]) -> Result<(), OpError> {
        let err = |message: String| Err(OpError { op: op.name(), kind: OpErrorKind::Argument, message });
        match self.g.node_weight(n.ix()) {
            None => return err(format!("node {n} does not exist")),
            Some(d) if matches!(d.op, Op::Input { .. }) => return err(format!("{n} is an input")),
            Some(_) => {}
        }
        if let Op::Input { .. } = op {
            return err("inputs are added with add_input".into());
        }
        let mut tys = Vec::with_capacity(args.len());
        for &a in args {
            if a == n {
                return err(format!("{n} cannot be its own operand"));
            }
            match self.g.node_weight(a.ix()) {
                Some(d) => tys.push(&d.ty),
                None => return err(format!("operand {a} does not exist")),
            }
        }
        let ty = self.sym.infer(&op, &tys)?;
        if ty != self.g[n.ix()].ty {
            return err(format!("the new op gives {ty} but {n} is typed {}", self.g[n.ix()].ty));
        }
        let old: Vec<_> = self.g.edges_directed(n.ix(), Direction::Incoming).map(|e| e.id()).collect();
        for e in old {
            self.g.remove_edge(e);
        }
        for (pos, &a) in args.iter().enumerate() {
            self.g.add_edge(a.ix(), n.ix(), pos as u32);
        }
        self.g[n.ix()].op = op;
        self.g[n.ix()].args = SmallVec::from_slice(args);
        Ok(())
    }

    /// Makes every use of `old` (operands of other nodes and outputs) a use of `new` instead,
    /// and returns how many uses moved. `old` itself stays, unused; [`Graph::remove_dead`]
    /// collects it.
    ///
    /// # Panics
    ///
    /// If either node is not in the graph or their types differ: both are bugs of the caller,
    /// as is a `new` that depends on `old` (the graph would get a cycle, which
    /// [`crate::verify()`] reports).
    pub fn replace_all_uses(&mut self, old: NodeId, new: NodeId) -> usize {
        assert!(self.contains(old) && self.contains(new), "replace_all_uses: {old} or {new} does not exist");
        assert_eq!(self.ty(old), self.ty(new), "replace_all_uses: {old} and {new} have different types");
        if old == new {
            return 0;
        }
        let uses: Vec<_> = self
            .g
            .edges_directed(old.ix(), Direction::Outgoing)
            .map(|e| (e.id(), e.target(), *e.weight()))
            .collect();
        for &(e, target, pos) in &uses {
            self.g.remove_edge(e);
            self.g.add_edge(new.ix(), target, pos);
            self.g[target].args[pos as usize] = new;
        }
        let mut moved = uses.len();
        for o in &mut self.outputs {
            if *o == old {
                *o = new;
                moved += 1;
            }
        }
        moved
    }

    /// Removes `n` if nothing uses it: no operand edge, no output, and it is not an input.
    /// Returns whether it was removed. Other nodes keep their ids.
    pub fn remove(&mut self, n: NodeId) -> bool {
        let removable = self.contains(n)
            && !matches!(self.op(n), Op::Input { .. })
            && !self.outputs.contains(&n)
            && self.g.edges_directed(n.ix(), Direction::Outgoing).next().is_none();
        if removable {
            self.g.remove_node(n.ix());
        }
        removable
    }

    /// Removes every node no output depends on, except inputs (the signature keeps them), and
    /// returns how many were removed. Surviving nodes keep their ids and locations. A graph
    /// with a cycle is left as it is (the verifier reports it).
    pub fn remove_dead(&mut self) -> usize {
        let Some(live) = self.live_order() else {
            return 0;
        };
        let mut keep = vec![false; self.g.node_bound()];
        for n in live {
            keep[n.index()] = true;
        }
        let dead: Vec<NodeId> =
            self.g.node_indices().filter(|i| !keep[i.index()]).map(|i| NodeId(i.index() as u32)).collect();
        self.remove_unused(&dead);
        dead.len()
    }

    /// Removes `nodes`, none of which may be an input, an output or an operand of a node that
    /// stays, in time linear in the size of the graph; the graph is left exactly as removing
    /// them one by one in this order would leave it, down to which ids later additions reuse.
    ///
    /// One by one, petgraph's `remove_node` walks the use list of each operand of the removed
    /// node to unlink it, which is quadratic when many dead nodes share an operand (a constant
    /// that CSE made common to a long chain). This rebuilds the storage instead: every node at
    /// its index, the edges between nodes that stay, and the list of free slots in the order
    /// the one-by-one removal would leave.
    pub fn remove_unused(&mut self, nodes: &[NodeId]) {
        if nodes.is_empty() {
            return;
        }
        let placeholder = || NodeData {
            op: Op::Input {
                index: 0,
                ty: TensorType::new(crate::types::DType::Bool, crate::types::Shape::scalar()),
            },
            ty: TensorType::new(crate::types::DType::Bool, crate::types::Shape::scalar()),
            loc: None,
            args: SmallVec::new(),
        };
        let mut old = std::mem::take(&mut self.g);
        let bound = self.slots;
        // The free slots, head first: every vacant slot is on the free list, and filling them
        // pops it in order.
        let vacant = bound - old.node_count();
        let free: Vec<usize> = (0..vacant).map(|_| old.add_node(placeholder()).index()).collect();
        let mut keep = vec![true; bound];
        for &i in &free {
            keep[i] = false;
        }
        for n in nodes {
            debug_assert!(keep[n.index()], "remove_unused: {n} is not in the graph or is listed twice");
            keep[n.index()] = false;
        }
        let mut g: StableDiGraph<NodeData, u32, u32> = StableDiGraph::with_capacity(bound, old.edge_count());
        for i in 0..bound {
            let w = std::mem::replace(&mut old[NodeIndex::new(i)], placeholder());
            g.add_node(if keep[i] { w } else { placeholder() });
        }
        for e in old.edge_references() {
            let (a, b) = (e.source().index(), e.target().index());
            if keep[a] && keep[b] {
                g.add_edge(NodeIndex::new(a), NodeIndex::new(b), *e.weight());
            } else {
                debug_assert!(!keep[b], "remove_unused: %{a} is removed but %{b}, which stays, uses it");
            }
        }
        // `remove_node` pushes onto the free list, so the old free slots go back last first,
        // then the removed nodes in order, which leaves them at its head, the last one first.
        for &i in free.iter().rev() {
            g.remove_node(NodeIndex::new(i));
        }
        for n in nodes {
            g.remove_node(n.ix());
        }
        self.g = g;
    }

    /// A deterministic topological order of all nodes (Kahn's algorithm, lowest index first),
    /// or `None` if the graph has a cycle.
    pub fn topo_order(&self) -> Option<Vec<NodeId>> {
        let mut indegree = vec![0usize; self.g.node_bound()];
        for e in (&self.g).edge_references() {
            indegree[e.target().index()] += 1;
        }
        let mut ready: BinaryHeap<Reverse<usize>> =
            self.g.node_indices().filter(|i| indegree[i.index()] == 0).map(|i| Reverse(i.index())).collect();
        let mut order = Vec::with_capacity(self.g.node_count());
        while let Some(Reverse(i)) = ready.pop() {
            order.push(NodeId(i as u32));
            for e in self.g.edges_directed(NodeIndex::new(i), Direction::Outgoing) {
                let t = e.target().index();
                indegree[t] -= 1;
                if indegree[t] == 0 {
                    ready.push(Reverse(t));
                }
            }
        }
        (order.len() == self.g.node_count()).then_some(order)
    }

    /// Nodes from which some output is reachable, in topological order. Printing and
    /// evaluation walk this list, so dead nodes never reach text.
    pub fn live_order(&self) -> Option<Vec<NodeId>> {
        let order = self.topo_order()?;
        let mut live = vec![false; self.g.node_bound()];
        for o in &self.outputs {
            if self.contains(*o) {
                live[o.index()] = true;
            }
        }
        for &n in order.iter().rev() {
            if live[n.index()] {
                for a in self.args(n) {
                    live[a.index()] = true;
                }
            }
        }
        Some(
            order
                .into_iter()
                .filter(|n| live[n.index()] || matches!(self.op(*n), Op::Input { .. }))
                .collect(),
        )
    }

    /// A 128-bit fingerprint of the structure: every node's op (with its attributes), operands
    /// and type in index order, and the outputs; never names, locations or data. Graphs built
    /// the same way have the same fingerprint, so it keys an executable cache without printing
    /// the graph; two different structures collide with probability about 2^-128.
    pub fn fingerprint(&self) -> u128 {
        let mut position = vec![u32::MAX; self.g.node_bound()];
        for (i, n) in self.g.node_indices().enumerate() {
            position[n.index()] = i as u32;
        }
        let mut f = Fingerprint::new();
        for n in self.g.node_indices() {
            let d = &self.g[n];
            f.add(&d.op);
            f.add(&d.ty);
            for a in self.args(NodeId(n.index() as u32)) {
                f.add(&position[a.index()]);
            }
        }
        for o in &self.outputs {
            f.add(&position.get(o.index()).copied().unwrap_or(u32::MAX));
        }
        self.sym.hash_into(&mut f);
        f.finish()
    }
}

/// A 128-bit structural hash (XXH3's 128-bit variant, one pass over what is added): what
/// [`Graph::fingerprint`] uses, and what front ends use to key caches of their own (traced
/// gradients) without building a graph.
#[derive(Clone)]
pub struct Fingerprint {
    state: xxhash_rust::xxh3::Xxh3Default,
}

impl Default for Fingerprint {
    fn default() -> Fingerprint {
        Fingerprint::new()
    }
}

impl Fingerprint {
    /// An empty fingerprint.
    pub fn new() -> Fingerprint {
        Fingerprint { state: xxhash_rust::xxh3::Xxh3Default::new() }
    }

    /// Mixes in `value`.
    pub fn add<T: std::hash::Hash + ?Sized>(&mut self, value: &T) {
        value.hash(&mut self.state);
    }

    /// The 128-bit value.
    pub fn finish(&self) -> u128 {
        self.state.digest128()
    }
}
