//! The CPU backend's library routines (`gather`, `scatter_add`, `concat`, `pad`) against the
//! reference interpreter: random shapes, axes and dtypes, empty and size-1 axes, operands
//! computed upstream (reversed and permuted views, materialized before the routine), outputs
//! large enough to be split over the workers, and indices out of range. Results must be equal
//! bit for bit (`scatter_add` adds in the interpreter's order), and a bad index must fail with
//! the interpreter's message.

#[path = "common/rng.rs"]
mod rng;

use rng::Rng;
use tenjit::ir::interp;
use tenjit::ir::ops::{Dims, IDims};
use tenjit::ir::{Buffer, DType, Graph, NodeId, Op, Scalar, Shape, TensorType};

/// Random values of `ty`: floats of many magnitudes (so that the order of a sum shows in its
/// last bits), small integers, bools.
fn values(r: &mut Rng, ty: &TensorType) -> Buffer {
    let scalars: Vec<Scalar> = (0..ty.shape.numel())
        .map(|_| match ty.dtype {
            DType::Bool => Scalar::Bool(r.chance(0.5)),
            DType::I32 | DType::I64 => Scalar::Int(r.below(2001) as i64 - 1000),
            DType::F16 | DType::BF16 | DType::F32 | DType::F64 => {
                Scalar::Float((r.unit() - 0.5) * 10f64.powi(r.below(17) as i32 - 8))
            }
        })
        .collect();
    Buffer::from_scalars(ty.dtype, ty.shape.clone(), scalars)
}

/// Index values for an axis of `size`: in range, or with probability `bad` per element out of
/// it (negative or too large).
fn indices(r: &mut Rng, dims: &[usize], size: usize, bad: f64) -> Buffer {
    let n: usize = dims.iter().product();
    let v: Vec<i64> = (0..n)
        .map(|_| {
            if r.chance(bad) || size == 0 {
                if r.chance(0.5) {
                    -1 - r.below(3) as i64
                } else {
                    (size + r.below(3)) as i64
                }
            } else {
                r.below(size) as i64
            }
        })
        .collect();
    Buffer::from_vec(v, dims.to_vec()).unwrap()
}

/// A random dimension: often 1, sometimes 0.
fn dim(r: &mut Rng) -> usize {
    match r.below(10) {
        0 => 0,
        1..=3 => 1,
        _ => 2 + r.below(4),
    }
}

/// A case: a graph whose one output is the routine, and its inputs.
struct Case {
    g: Graph,
    inputs: Vec<Buffer>,
    /// Whether every operand of the routine is a graph input, so the routine is node
    /// `%{operands}` in both the graph and the step the CPU runs.
    direct: bool,
}

/// Builds graphs of one routine over operands that are inputs or, at random, computed from a
/// larger input by a reversed slice or a permutation (so the operand is materialized first).
struct Builder<'a> {
    r: &'a mut Rng,
    g: Graph,
    inputs: Vec<Buffer>,
    operands: Vec<(TensorType, Buffer)>,
    upstream: bool,
}

impl<'a> Builder<'a> {
    fn new(r: &'a mut Rng) -> Builder<'a> {
        let upstream = r.chance(0.3);
        Builder { r, g: Graph::new("lib"), inputs: Vec::new(), operands: Vec::new(), upstream }
    }

    /// Queues an operand holding `value` (added to the graph by `finish`).
    fn operand(&mut self, value: Buffer) {
        self.operands.push((value.ty(), value));
    }

    /// Adds the queued operands and `op` over them.
    fn finish(mut self, op: Op) -> Case {
        let mut args = Vec::new();
        let direct = !self.upstream;
        // All inputs come first, so that with no upstream ops the routine is `%{operands}`.
        let ops = std::mem::take(&mut self.operands);
        let mut pending = Vec::new();
        for (i, (ty, value)) in ops.into_iter().enumerate() {
            if self.upstream && ty.shape.rank() > 0 && self.r.chance(0.6) {
                pending.push((i, ty, value));
                args.push(None);
            } else {
                self.inputs.push(value);
                args.push(Some(self.g.add_input(format!("x{i}"), ty)));
            }
        }
        for (i, ty, value) in pending {
            args[i] = Some(self.computed(i, &ty, &value));
        }
        let args: Vec<NodeId> = args.into_iter().map(Option::unwrap).collect();
        let out = self.g.add(op, &args).unwrap();
        self.g.set_outputs(vec![out]);
        Case { g: self.g, inputs: self.inputs, direct }
    }

    /// `value` computed from an input: reversed along every axis (a slice with negative
    /// steps of an input holding the reversed data) or permuted back from a transposed input.
    fn computed(&mut self, i: usize, ty: &TensorType, value: &Buffer) -> NodeId {
        let dims = ty.shape.dims();
        let rank = dims.len();
        if self.r.chance(0.5) || rank < 2 {
            // Input `rev` holds `value` reversed; slicing it with step -1 gives `value` back.
            let rev: Vec<Scalar> = (0..value.numel()).map(|k| value.scalar(reverse(dims, k))).collect();
            let rev = Buffer::from_scalars(ty.dtype, ty.shape.clone(), rev);
            self.inputs.push(rev);
            let x = self.g.add_input(format!("x{i}r"), ty.clone());
            let start: IDims = dims.iter().map(|&d| d as isize - 1).collect();
            let step: IDims = dims.iter().map(|_| -1).collect();
            self.g.add(Op::Slice { start, step, size: Dims::from_slice(dims), bounds: None }, &[x]).unwrap()
        } else {
            // Input `t` holds `value` with its last two axes swapped; swapping back gives it.
            let mut perm: Vec<usize> = (0..rank).collect();
            perm.swap(rank - 2, rank - 1);
            let mut td = dims.to_vec();
            td.swap(rank - 2, rank - 1);
            let tty = TensorType::new(ty.dtype, Shape::new(&td));
            let mut probe = Graph::new("t");
            let x = probe.add_input("x", ty.clone());
            let t = probe.add(Op::Permute { perm: Dims::from_slice(&perm) }, &[x]).unwrap();
            probe.set_outputs(vec![t]);
            let transposed = interp::eval(&probe, std::slice::from_ref(value)).unwrap().remove(0);
            self.inputs.push(transposed);
            let x = self.g.add_input(format!("x{i}t"), tty);
            self.g.add(Op::Permute { perm: Dims::from_slice(&perm) }, &[x]).unwrap()
        }
    }
}

/// The flat position of the element that reversing every axis of `dims` moves to `k`.
fn reverse(dims: &[usize], mut k: usize) -> usize {
    let mut flat = 0;
    let mut stride = 1;
    for &d in dims.iter().rev() {
        flat += (d - 1 - k % d) * stride;
        k /= d;
        stride *= d;
    }
    flat
}

/// A random `gather`.
fn gather(r: &mut Rng, bad: f64) -> Case {
    let rank = 1 + r.below(4);
    let x_dims: Vec<usize> = (0..rank).map(|_| dim(r)).collect();
    let axis = r.below(rank);
    let index_dims: Vec<usize> =
        (0..rank).map(|d| if d == axis { dim(r) } else { r.below(x_dims[d] + 1) }).collect();
    let dtype = *r.pick(&DType::ALL);
    let x = values(r, &TensorType::new(dtype, Shape::new(&x_dims)));
    let index = indices(r, &index_dims, x_dims[axis], bad);
    let mut b = Builder::new(r);
    b.operand(x);
    b.operand(index);
    b.finish(Op::Gather { axis })
}

/// A random `scatter_add`.
fn scatter_add(r: &mut Rng, bad: f64) -> Case {
    let rank = 1 + r.below(4);
    let base_dims: Vec<usize> = (0..rank).map(|_| dim(r)).collect();
    let axis = r.below(rank);
    // More source elements along the axis than the base has, so destinations repeat.
    let index_dims: Vec<usize> =
        (0..rank).map(|d| if d == axis { dim(r) * 2 } else { r.below(base_dims[d] + 1) }).collect();
    let dtype = *r.pick(&[DType::I32, DType::I64, DType::F32, DType::F64]);
    let base = values(r, &TensorType::new(dtype, Shape::new(&base_dims)));
    let index = indices(r, &index_dims, base_dims[axis], bad);
    let src = values(r, &TensorType::new(dtype, Shape::new(&index_dims)));
    let mut b = Builder::new(r);
    b.operand(base);
    b.operand(index);
    b.operand(src);
    b.finish(Op::ScatterAdd { axis })
}

/// A random `concat` of one to four parts.
fn concat(r: &mut Rng) -> Case {
    let rank = 1 + r.below(4);
    let dims: Vec<usize> = (0..rank).map(|_| dim(r)).collect();
    let axis = r.below(rank);
    let dtype = *r.pick(&DType::ALL);
    let parts: Vec<Buffer> = (0..1 + r.below(4))
        .map(|_| {
            let mut d = dims.clone();
            d[axis] = dim(r);
            values(r, &TensorType::new(dtype, Shape::new(&d)))
        })
        .collect();
    let mut b = Builder::new(r);
    for p in parts {
        b.operand(p);
    }
    b.finish(Op::Concat { axis })
}

/// A random `pad`, rank 0 included.
fn pad(r: &mut Rng) -> Case {
    let rank = r.below(5);
    let dims: Vec<usize> = (0..rank).map(|_| dim(r)).collect();
    let lo: Dims = (0..rank).map(|_| r.below(3)).collect();
    let hi: Dims = (0..rank).map(|_| r.below(3)).collect();
    let dtype = *r.pick(&DType::ALL);
    let x = values(r, &TensorType::new(dtype, Shape::new(&dims)));
    let mut b = Builder::new(r);
    b.operand(x);
    b.finish(Op::Pad { lo, hi })
}

/// The elements of `b`, floats as their bits, so that equality is bit for bit.
fn bits(b: &Buffer) -> Vec<(u64, i64)> {
    (0..b.numel())
        .map(|i| match b.scalar(i) {
            Scalar::Float(f) if b.dtype() == DType::F32 => (u64::from((f as f32).to_bits()), 0),
            Scalar::Float(f) => (f.to_bits(), 0),
            Scalar::Int(k) => (0, k),
            Scalar::Bool(v) => (0, i64::from(v)),
        })
        .collect()
}

/// Runs `case` on the CPU backend and in the interpreter and compares them.
fn check(name: &str, case: &Case) {
    tenjit::set_backend(tenjit::Backend::Cpu);
    let want = interp::eval(&case.g, &case.inputs);
    let got = tenjit::run_graph(&case.g, &case.inputs);
    let shown = || format!("{name}:\n{}", case.g);
    match (got, want) {
        (Ok(got), Ok(want)) => {
            assert_eq!(got[0].ty(), want[0].ty(), "{}", shown());
            assert!(bits(&got[0]) == bits(&want[0]), "{}\n got {}\nwant {}", shown(), got[0], want[0]);
        }
        (Err(got), Err(want)) => {
            let want = want.to_string();
            let got = got.to_string();
            let got = got.strip_prefix("evaluation failed: ").unwrap_or(&got);
            if case.direct {
                assert_eq!(got, want, "{}", shown());
            } else {
                // The node named differs when operands are computed; the rest is the same.
                let tail = |s: &str| s.split_once(": ").map(|(_, t)| t.to_string());
                assert_eq!(tail(got), tail(&want), "{}", shown());
            }
        }
        (Ok(_), Err(e)) => panic!("{}\nthe interpreter failed ({e}) but the CPU backend ran", shown()),
        (Err(e), Ok(_)) => panic!("{}\nthe CPU backend failed: {e}", shown()),
    }
}

#[test]
fn random_library_ops_agree_with_the_interpreter_bit_for_bit() {
    let mut r = Rng(0x11b_0e5);
    for case in 0..300 {
        check(&format!("gather case {case}"), &gather(&mut r, 0.0));
        check(&format!("scatter_add case {case}"), &scatter_add(&mut r, 0.0));
        check(&format!("concat case {case}"), &concat(&mut r));
        check(&format!("pad case {case}"), &pad(&mut r));
    }
}

#[test]
fn out_of_range_indices_fail_with_the_interpreters_message() {
    let mut r = Rng(0xbad1d);
    let mut failed = 0;
    for case in 0..200 {
        for c in [gather(&mut r, 0.15), scatter_add(&mut r, 0.15)] {
            failed += usize::from(interp::eval(&c.g, &c.inputs).is_err());
            check(&format!("bad index case {case}"), &c);
        }
    }
    assert!(failed >= 100, "only {failed} cases had a bad index");
}

/// A graph of `op` over inputs holding `args`.
fn direct(op: Op, args: Vec<Buffer>) -> Case {
    let mut g = Graph::new("lib");
    let ids: Vec<NodeId> =
        args.iter().enumerate().map(|(i, a)| g.add_input(format!("x{i}"), a.ty())).collect();
    let out = g.add(op, &ids).unwrap();
    g.set_outputs(vec![out]);
    Case { g, inputs: args, direct: true }
}

#[test]
fn large_outputs_split_over_the_workers_agree() {
    // Each output has more than 2^16 elements, so the routine runs on all workers (when the
    // machine has more than one core); the axes cover the split dimension and the others.
    let mut r = Rng(0x1a29e);
    let (rows, cols) = (301, 263);
    for axis in 0..2 {
        let x = values(&mut r, &TensorType::new(DType::F32, Shape::new(&[rows, cols])));
        let index = indices(&mut r, &[rows, cols], [rows, cols][axis], 0.0);
        check("gather large", &direct(Op::Gather { axis }, vec![x, index]));
        let base = values(&mut r, &TensorType::new(DType::F64, Shape::new(&[rows, cols])));
        let mut src_dims = [rows, cols];
        src_dims[axis] *= 2;
        let index = indices(&mut r, &src_dims, [rows, cols][axis], 0.0);
        let src = values(&mut r, &TensorType::new(DType::F64, Shape::new(&src_dims)));
        check("scatter_add large", &direct(Op::ScatterAdd { axis }, vec![base, index, src]));
        let a = values(&mut r, &TensorType::new(DType::I32, Shape::new(&[rows, cols])));
        let b = values(&mut r, &TensorType::new(DType::I32, Shape::new(&[rows, cols])));
        check("concat large", &direct(Op::Concat { axis }, vec![a, b]));
    }
    let x = values(&mut r, &TensorType::new(DType::I64, Shape::new(&[rows, cols])));
    let pad = Op::Pad { lo: Dims::from_slice(&[3, 1]), hi: Dims::from_slice(&[2, 5]) };
    check("pad large", &direct(pad, vec![x]));
    // A long rank-1 gather splits its only axis.
    let x = values(&mut r, &TensorType::new(DType::F64, Shape::new(&[1000])));
    let index = indices(&mut r, &[100_000], 1000, 0.0);
    check("gather rank 1", &direct(Op::Gather { axis: 0 }, vec![x, index]));
}

#[test]
fn the_first_bad_index_is_reported_however_the_work_is_split() {
    // Two bad indices, in rows that different workers take: the first in row-major order is
    // the one named, as the interpreter names it.
    let (rows, cols) = (400, 200);
    let x = Buffer::from_vec(vec![1.5f32; rows * cols], vec![rows, cols]).unwrap();
    let mut index = vec![0i64; rows * cols];
    index[10 * cols + 7] = -4;
    index[390 * cols + 3] = 999;
    let index = Buffer::from_vec(index.clone(), vec![rows, cols]).unwrap();
    let case = direct(Op::Gather { axis: 1 }, vec![x, index.clone()]);
    check("gather, two bad indices", &case);
    let e = tenjit::run_graph(&case.g, &case.inputs).unwrap_err().to_string();
    assert_eq!(e, "evaluation failed: %2: gather: index -4 is out of bounds for dimension 1 with size 200");
    let base = Buffer::from_vec(vec![0i64; rows * cols], vec![rows, cols]).unwrap();
    let src = Buffer::from_vec(vec![1i64; rows * cols], vec![rows, cols]).unwrap();
    let case = direct(Op::ScatterAdd { axis: 1 }, vec![base, index, src]);
    check("scatter_add, two bad indices", &case);
    let e = tenjit::run_graph(&case.g, &case.inputs).unwrap_err().to_string();
    assert_eq!(
        e,
        "evaluation failed: %3: scatter_add: index -4 is out of bounds for dimension 1 with size 200"
    );
}
