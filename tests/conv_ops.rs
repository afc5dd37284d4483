//! The windowed ops: the three convolutions (`conv2d`, `conv2d_input`, `conv2d_weight`) and
//! max pooling's two (`max_pool2d_select`, `max_pool2d_scatter`). The CPU library routines
//! against the reference interpreter (convolutions over strides, paddings, dilations, groups,
//! the 1×1 fast path and batches below and above the worker count; pools over overlapping,
//! padded windows with ties and NaNs, bit for bit), in every float dtype; derivatives, first
//! and second order, against central finite differences in `f64`; the text form; and the
//! errors of operands that do not fit.

use tenjit::ir::ops::{ConvGeometry, ConvOp, ConvRole, PoolGeometry, PoolOp, PoolRole};
use tenjit::ir::text::{parse, print};
use tenjit::ir::{interp, Buffer, DType, Graph, Op, Scalar, Shape, TensorType};
use tenjit::nn::{self, Conv2dOptions};
use tenjit::prelude::*;
use tenjit::GradOptions;

/// Deterministic values in `[-1, 1)` of a dtype and shape.
fn values(dtype: DType, dims: &[usize], seed: u64) -> Buffer {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let n: usize = dims.iter().product();
    let v = (0..n).map(|_| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        Scalar::Float((s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0).cast(dtype)
    });
    Buffer::from_scalars(dtype, Shape::new(dims), v.collect::<Vec<_>>())
}

fn floats(b: &Buffer) -> Vec<f64> {
    b.scalars().iter().map(|s| s.as_f64()).collect()
}

/// A geometry: stride, padding, dilation, groups.
fn geometry(stride: [usize; 2], padding: [usize; 2], dilation: [usize; 2], groups: usize) -> ConvGeometry {
    ConvGeometry { stride, padding, dilation, groups }
}

/// `(name, input [N, C, H, W], weight [O, C/G, kH, kW], geometry)`.
type Case = (&'static str, [usize; 4], [usize; 4], ConvGeometry);

fn cases() -> Vec<Case> {
    vec![
        ("plain 3x3", [2, 3, 6, 5], [4, 3, 3, 3], geometry([1, 1], [0, 0], [1, 1], 1)),
        ("stride 2, padding 1, one image", [1, 2, 7, 7], [3, 2, 3, 3], geometry([2, 2], [1, 1], [1, 1], 1)),
        ("dilated, unequal", [3, 2, 8, 6], [2, 2, 2, 3], geometry([1, 2], [2, 1], [2, 1], 1)),
        ("groups", [2, 4, 5, 5], [6, 2, 3, 3], geometry([1, 1], [1, 1], [1, 1], 2)),
        ("depthwise", [5, 3, 6, 6], [3, 1, 3, 2], geometry([2, 1], [1, 2], [2, 2], 3)),
        ("1x1 (the image is its windows)", [3, 4, 5, 6], [6, 2, 1, 1], geometry([1, 1], [0, 0], [1, 1], 2)),
        ("1x1 strided", [2, 3, 5, 5], [4, 3, 1, 1], geometry([2, 2], [0, 0], [1, 1], 1)),
        ("kernel wider than the input", [2, 1, 2, 2], [2, 1, 3, 3], geometry([1, 1], [1, 1], [1, 1], 1)),
        // Enough work to split the images over the workers.
        ("large", [6, 8, 20, 20], [16, 8, 3, 3], geometry([1, 1], [1, 1], [1, 1], 1)),
    ]
}

/// Each op of a case: its operands' shapes.
fn roles(input: [usize; 4], weight: [usize; 4], g: &ConvGeometry) -> Vec<(ConvRole, [usize; 4], [usize; 4])> {
    let forward = ConvOp { role: ConvRole::Forward, geometry: *g };
    let out = forward.sizes(&Shape::new(&input), &Shape::new(&weight)).unwrap().output;
    vec![
        (ConvRole::Forward, input, weight),
        (ConvRole::Input { size: [input[2], input[3]] }, out, weight),
        (ConvRole::Weight { kernel: [weight[2], weight[3]] }, input, out),
    ]
}

/// One op on two inputs.
fn graph(op: &Op, a: &TensorType, b: &TensorType) -> Graph {
    let mut g = Graph::new(op.name());
    let (x, y) = (g.add_input("a", a.clone()), g.add_input("b", b.clone()));
    let out = g.add(op.clone(), &[x, y]).unwrap();
    g.set_outputs(vec![out]);
    g
}

#[test]
fn the_cpu_routines_match_the_interpreter() {
    for (name, input, weight, geometry) in cases() {
        for (role, a_dims, b_dims) in roles(input, weight, &geometry) {
            let op = Op::Conv(ConvOp { role, geometry });
            for dtype in [DType::F64, DType::F32, DType::BF16, DType::F16] {
                let ty = |d: [usize; 4]| TensorType::new(dtype, Shape::new(&d));
                let g = graph(&op, &ty(a_dims), &ty(b_dims));
                let inputs = [values(dtype, &a_dims, 1), values(dtype, &b_dims, 2)];
                let want = interp::eval(&g, &inputs).unwrap().remove(0);
                let got = tenjit::run_graph(&g, &inputs).unwrap().remove(0);
                assert_eq!(got.ty(), want.ty(), "{name}: {}", op.name());
                // The scale of each element: the same sum over absolute values.
                let abs = |b: &Buffer| {
                    let v: Vec<Scalar> = floats(b).iter().map(|x| Scalar::Float(x.abs())).collect();
                    Buffer::from_scalars(DType::F64, b.shape().clone(), v)
                };
                let g64 = graph(
                    &op,
                    &TensorType::new(DType::F64, Shape::new(&a_dims)),
                    &TensorType::new(DType::F64, Shape::new(&b_dims)),
                );
                let scale = floats(&interp::eval(&g64, &[abs(&inputs[0]), abs(&inputs[1])]).unwrap()[0]);
                let tol = match dtype {
                    DType::F64 => 1e-13,
                    DType::F32 => 1e-6,
                    _ => 1e-2,
                };
                for (i, ((x, y), s)) in floats(&got).iter().zip(floats(&want)).zip(&scale).enumerate() {
                    assert!(
                        (x - y).abs() <= tol * s.max(f64::MIN_POSITIVE),
                        "{name}: {} {dtype}: element {i}: compiled {x}, interpreter {y} (scale {s})",
                        op.name()
                    );
                }
            }
        }
    }
}

#[test]
fn the_max_pool_routines_match_the_interpreter_bit_for_bit() {
    // Values from a small set, so windows hold ties, with NaNs in some.
    let keyed = |dtype: DType, dims: &[usize], nans: bool| {
        let n: usize = dims.iter().product();
        let v = (0..n).map(|i| {
            let v = if nans && i % 17 == 5 { f64::NAN } else { ((i * 7 + i / 3) % 5) as f64 - 2.0 };
            Scalar::Float(v).cast(dtype)
        });
        Buffer::from_scalars(dtype, Shape::new(dims), v.collect::<Vec<_>>())
    };
    let geometries = [
        ([2, 2], [2, 2], [0, 0]),
        ([3, 3], [2, 2], [1, 1]),
        ([3, 2], [1, 2], [1, 0]),
        ([2, 3], [3, 1], [0, 1]),
    ];
    for (kernel, stride, padding) in geometries {
        let geometry = PoolGeometry { kernel, stride, padding };
        for (dims, nans) in [([2, 3, 7, 6], false), ([1, 2, 9, 8], true), ([8, 16, 24, 24], false)] {
            for dtype in [DType::F64, DType::F32, DType::BF16, DType::F16] {
                let select = Op::Pool(PoolOp { role: PoolRole::Select, geometry });
                let x = keyed(dtype, &dims, nans);
                let out = select.infer(&[&x.ty(), &x.ty()]).unwrap();
                let g = values(dtype, out.shape.dims(), 9);
                let scatter = Op::Pool(PoolOp { role: PoolRole::Scatter, geometry });
                for (op, other) in [(select, x.clone()), (scatter, g)] {
                    let graph = graph(&op, &x.ty(), &other.ty());
                    let inputs = [x.clone(), other];
                    let want = interp::eval(&graph, &inputs).unwrap().remove(0);
                    let got = tenjit::run_graph(&graph, &inputs).unwrap().remove(0);
                    let bits =
                        |b: &Buffer| b.scalars().iter().map(|s| s.as_f64().to_bits()).collect::<Vec<_>>();
                    assert_eq!(
                        bits(&got),
                        bits(&want),
                        "{} {dtype} {dims:?} {kernel:?}/{stride:?}/{padding:?}",
                        op.name()
                    );
                }
            }
        }
    }
}

/// `L(x, w) = Σ tanh(conv2d(x, w)) · r` in `f64`.
fn loss(x: &Tensor, w: &Tensor, r: &Tensor, o: Conv2dOptions) -> Tensor {
    (nn::conv2d(x, w, None, o).tanh() * r).sum()
}

/// The central difference of `f` at `t` along element `i`.
fn central(t: &Tensor, i: usize, f: impl Fn(&Tensor) -> f64) -> f64 {
    let h = 1e-5;
    let mut v = t.to_vec::<f64>();
    let base = v[i];
    v[i] = base + h;
    let up = f(&Tensor::from_vec(v.clone(), t.shape().to_vec()));
    v[i] = base - h;
    let down = f(&Tensor::from_vec(v, t.shape().to_vec()));
    (up - down) / (2.0 * h)
}

#[test]
fn first_and_second_derivatives_match_finite_differences() {
    let o = Conv2dOptions { stride: [2, 1], padding: [1, 1], dilation: [1, 2], groups: 2 };
    let t = |dims: [usize; 4], seed| {
        let b = values(DType::F64, &dims, seed);
        Tensor::from_vec(floats(&b), dims.to_vec())
    };
    let (x, w) = (t([2, 4, 6, 7], 3), t([4, 2, 3, 2], 4));
    let y = nn::conv2d(&x, &w, None, o);
    let r = t(y.shape().try_into().unwrap(), 5);
    let r2 = t([2, 4, 6, 7], 6);
    let close = |got: f64, want: f64, what: &str| {
        assert!(
            (got - want).abs() <= 1e-6 * want.abs().max(1.0),
            "{what}: autodiff {got}, finite difference {want}"
        );
    };
    // First order.
    let (xg, wg) = (x.clone().requires_grad_(), w.clone().requires_grad_());
    let grads = tenjit::grad(&[&loss(&xg, &wg, &r, o)], &[&xg, &wg]);
    let (dx, dw) = (grads[0].to_vec::<f64>(), grads[1].to_vec::<f64>());
    for i in [0, 17, 45, 100, 335] {
        close(dx[i], central(&x, i, |x| loss(x, &w, &r, o).item()), &format!("dL/dx[{i}]"));
    }
    for i in [0, 9, 23, 47] {
        close(dw[i], central(&w, i, |w| loss(&x, w, &r, o).item()), &format!("dL/dw[{i}]"));
    }
    // Second order: G(x, w) = Σ dL/dx · r2, differentiated through conv2d_input's and
    // conv2d_weight's own derivatives.
    let g_of = |x: &Tensor, w: &Tensor, create: bool| {
        let opts = GradOptions { create_graph: create, ..Default::default() };
        let dx = tenjit::grad_with(&[&loss(x, w, &r, o)], &[x], opts).unwrap().remove(0);
        (dx * &r2).sum()
    };
    let (xg, wg) = (x.clone().requires_grad_(), w.clone().requires_grad_());
    let grads = tenjit::grad(&[&g_of(&xg, &wg, true)], &[&xg, &wg]);
    let (ddx, ddw) = (grads[0].to_vec::<f64>(), grads[1].to_vec::<f64>());
    let g_at = |x: &Tensor, w: &Tensor| g_of(&x.clone().requires_grad_(), w, false).item();
    for i in [1, 30, 200] {
        close(ddx[i], central(&x, i, |x| g_at(x, &w)), &format!("dG/dx[{i}]"));
    }
    for i in [2, 21, 40] {
        close(ddw[i], central(&w, i, |w| g_at(&x, w)), &format!("dG/dw[{i}]"));
    }
}

#[test]
fn the_ops_print_and_parse() {
    let geometry = geometry([2, 1], [1, 0], [1, 2], 2);
    for (role, a, b) in roles([2, 4, 7, 6], [6, 2, 3, 2], &geometry) {
        let op = Op::Conv(ConvOp { role, geometry });
        let ty = |d: [usize; 4]| TensorType::new(DType::F32, Shape::new(&d));
        let g = graph(&op, &ty(a), &ty(b));
        let text = print(&g);
        assert!(text.contains("stride=[2,1], padding=[1,0], dilation=[1,2], groups=2"), "{text}");
        let back = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(print(&back), text);
    }
    let forward = Op::Conv(ConvOp { role: ConvRole::Forward, geometry });
    let ty = |d: [usize; 4]| TensorType::new(DType::F32, Shape::new(&d));
    let bad =
        print(&graph(&forward, &ty([2, 4, 7, 6]), &ty([6, 2, 3, 2]))).replace("stride=[2,1]", "stride=[2]");
    let e = parse(&bad).unwrap_err().to_string();
    assert!(e.contains("`stride`") && e.contains("two entries"), "{e}");
}

#[test]
fn operands_that_do_not_fit_are_errors() {
    let conv = |role| Op::Conv(ConvOp { role, geometry: geometry([1, 1], [0, 0], [1, 1], 2) });
    let ty = |d: &[usize]| TensorType::new(DType::F32, Shape::new(d));
    let e = conv(ConvRole::Forward).infer(&[&ty(&[1, 4, 5, 5]), &ty(&[4, 3, 3, 3])]).unwrap_err();
    assert!(e.to_string().starts_with("conv2d: input channels 4"), "{e}");
    let e =
        conv(ConvRole::Input { size: [5, 5] }).infer(&[&ty(&[1, 4, 2, 2]), &ty(&[4, 2, 3, 3])]).unwrap_err();
    assert!(e.to_string().contains("the output gradient is [1, 4, 2, 2] but"), "{e}");
    let e = conv(ConvRole::Weight { kernel: [9, 9] })
        .infer(&[&ty(&[1, 4, 5, 5]), &ty(&[1, 4, 3, 3])])
        .unwrap_err();
    assert!(e.to_string().contains("does not fit the input [5, 5]"), "{e}");
    let mixed = TensorType::new(DType::F64, Shape::new(&[4, 2, 3, 3]));
    let e = conv(ConvRole::Forward).infer(&[&ty(&[1, 4, 5, 5]), &mixed]).unwrap_err();
    assert!(e.to_string().contains("one float dtype"), "{e}");
    // Through the front end, as torch words it.
    let x = Tensor::zeros([1, 3, 5, 5]);
    let e = nn::try_conv2d(&x, &Tensor::zeros([2, 2, 3, 3]), None, Conv2dOptions::default()).unwrap_err();
    assert!(e.to_string().contains("expected input [1, 3, 5, 5] to have 2 channels"), "{e}");
}

#[test]
fn max_pool_gradients_go_to_the_first_maximum_and_tiling_average_pools_agree() {
    // Windows of 2×3 tiling a 5×7 input (the last row and column cropped, as torch does), values
    // in {0, 1, 2} so that most windows hold ties.
    let (h, w) = (5, 7);
    let v: Vec<f64> = (0..2 * h * w).map(|i| ((i * 7 + i / 5) % 3) as f64).collect();
    let x = Tensor::from_vec(v.clone(), vec![1, 2, h, w]).requires_grad_();
    let y = nn::max_pool2d(&x, [2, 3], [2, 3], [0, 0]);
    assert_eq!(y.shape(), &[1, 2, 2, 2]);
    let dx = tenjit::grad(
        &[&(y.clone() * Tensor::arange(8).to_dtype(DType::F64).reshape([1, 2, 2, 2])).sum()],
        &[&x],
    )
    .remove(0)
    .to_vec::<f64>();
    let (mut want_y, mut want_dx) = (Vec::new(), vec![0.0; v.len()]);
    for c in 0..2 {
        for i in 0..2 {
            for j in 0..2 {
                let taps = (0..2).flat_map(|p| (0..3).map(move |q| c * h * w + (2 * i + p) * w + 3 * j + q));
                let first = taps.clone().fold(None, |best: Option<usize>, t| match best {
                    Some(b) if v[b] >= v[t] => Some(b),
                    _ => Some(t),
                });
                let first = first.unwrap();
                want_y.push(v[first]);
                want_dx[first] = ((c * 2 + i) * 2 + j) as f64;
            }
        }
    }
    assert_eq!(y.to_vec::<f64>(), want_y);
    assert_eq!(dx, want_dx);
    // The same without a gradient; the average over windows that tile the input.
    let plain = nn::max_pool2d(&x.detach(), [2, 3], [2, 3], [0, 0]);
    assert_eq!(plain.to_vec::<f64>(), want_y);
    let avg = nn::avg_pool2d(&x.detach(), [2, 3], [2, 3], [0, 0], true).to_vec::<f64>();
    let want_avg: Vec<f64> = (0..8)
        .map(|k| {
            let (c, i, j) = (k / 4, k / 2 % 2, k % 2);
            (0..6).map(|t| v[c * h * w + (2 * i + t / 3) * w + 3 * j + t % 3]).sum::<f64>() / 6.0
        })
        .collect();
    assert!(avg.iter().zip(&want_avg).all(|(a, b)| (a - b).abs() < 1e-12), "{avg:?} vs {want_avg:?}");
}

#[test]
fn max_pool_values_are_the_same_with_and_without_a_gradient() {
    // Signed zeros and NaNs in windows that tile the input and in overlapping, padded ones.
    let v: Vec<f64> = (0..2 * 3 * 6 * 6)
        .map(|i| match (i % 29, i % 13, i % 4) {
            (7, _, _) => f64::NAN,
            (_, 3, _) => 0.0,
            (_, _, 0) => -1.0,
            _ => -0.0,
        })
        .collect();
    let x = Tensor::from_vec(v, vec![2, 3, 6, 6]);
    for (kernel, stride, padding) in
        [([2, 2], [2, 2], [0, 0]), ([3, 3], [2, 2], [1, 1]), ([2, 3], [1, 2], [1, 0])]
    {
        let plain = nn::max_pool2d(&x, kernel, stride, padding).to_vec::<f64>();
        let traced =
            nn::max_pool2d(&x.clone().requires_grad_(), kernel, stride, padding).detach().to_vec::<f64>();
        let same =
            plain.iter().zip(&traced).all(|(a, b)| a.to_bits() == b.to_bits() || a.is_nan() && b.is_nan());
        assert!(same, "{kernel:?}/{stride:?}/{padding:?}: {plain:?} vs {traced:?}");
        let zeros = |sign: bool| plain.iter().any(|v| *v == 0.0 && v.is_sign_negative() == sign);
        assert!(
            plain.iter().any(|v| v.is_nan()) && zeros(true) && zeros(false),
            "the specials are in play: {plain:?}"
        );
    }
}

/// A small CNN's forward and backward pieces as one graph: conv + bias + ReLU, a strided
/// conv, a max pool, and back through the pool and the second conv's input gradient.
fn cnn_graph(dtype: DType, n: usize) -> Graph {
    let ty = |d: &[usize]| TensorType::new(dtype, Shape::new(d));
    let mut g = Graph::new("cnn");
    let x = g.add_input("x", ty(&[n, 3, 9, 9]));
    let w1 = g.add_input("w1", ty(&[4, 3, 3, 3]));
    let b1 = g.add_input("b1", ty(&[4]));
    let w2 = g.add_input("w2", ty(&[6, 4, 3, 3]));
    let conv =
        |role, stride, padding| Op::Conv(ConvOp { role, geometry: geometry(stride, padding, [1, 1], 1) });
    let y1 = g.add(conv(ConvRole::Forward, [1, 1], [1, 1]), &[x, w1]).unwrap();
    let b = g.add(Op::Reshape { shape: Shape::new(&[1, 4, 1, 1]) }, &[b1]).unwrap();
    let b = g.add(Op::Expand { shape: Shape::new(&[n, 4, 9, 9]) }, &[b]).unwrap();
    let z = g.add(Op::Binary(tenjit::ir::BinaryOp::Add), &[y1, b]).unwrap();
    let zero = g.add(Op::Const { value: Scalar::Float(0.0), ty: ty(&[n, 4, 9, 9]) }, &[]).unwrap();
    let a1 = g.add(Op::Binary(tenjit::ir::BinaryOp::Maximum), &[z, zero]).unwrap();
    let y2 = g.add(conv(ConvRole::Forward, [2, 2], [0, 0]), &[a1, w2]).unwrap();
    let pool = |role| {
        Op::Pool(PoolOp { role, geometry: PoolGeometry { kernel: [2, 2], stride: [2, 2], padding: [0, 0] } })
    };
    let p = g.add(pool(PoolRole::Select), &[y2, y2]).unwrap();
    let s = g.add(pool(PoolRole::Scatter), &[y2, p]).unwrap();
    let dx = g.add(conv(ConvRole::Input { size: [9, 9] }, [2, 2], [0, 0]), &[s, w2]).unwrap();
    g.set_outputs(vec![p, dx]);
    g
}

#[test]
fn convolutions_and_pools_run_image_by_image_in_row_groups() {
    // The forward convolution, its bias and ReLU, the next convolution and the pool form one
    // group over the images, so the first convolution's output never exists in full; the
    // scatter and the input gradient another. Block and thread boundaries fall between
    // images with forced blocks of one and two images.
    let stages = tenjit::compile_stages(&cnn_graph(DType::F32, 5)).unwrap();
    let list = stages.kernels;
    let g0: Vec<&str> = list
        .lines()
        .skip_while(|l| !l.starts_with("group g0"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .collect();
    let named = |op: &str| g0.iter().filter(|l| l.trim_start().starts_with(&format!("{op} "))).count();
    assert_eq!((named("conv2d"), named("max_pool2d_select")), (2, 1), "{list}");
    assert!(list.contains("  conv2d_input ") && list.contains("  max_pool2d_scatter "), "{list}");
    for dtype in [DType::F64, DType::F32, DType::BF16] {
        for n in [1, 2, 5] {
            for block in [None, Some(1), Some(2)] {
                tenjit::backend::cpu::set_block_rows(block);
                let g = cnn_graph(dtype, n);
                let dims: Vec<Vec<usize>> =
                    g.inputs().iter().map(|(_, i)| g.ty(*i).shape.dims().to_vec()).collect();
                let inputs: Vec<Buffer> =
                    dims.iter().zip(1..).map(|(d, seed)| values(dtype, d, seed)).collect();
                let want = interp::eval(&g, &inputs).unwrap();
                let got = tenjit::run_graph(&g, &inputs).unwrap();
                tenjit::backend::cpu::set_block_rows(None);
                // The kernel IR's own evaluator runs the group an image at a time, with the
                // local buffers poisoned: the same values as the graph's.
                let program = tenjit::ir::kernel::lower::lower(&g);
                assert!(!program.groups.is_empty() || n == 1, "{program}");
                let stepped = tenjit::ir::kernel::eval::eval(&program, &inputs).unwrap();
                for (w, e) in want.iter().zip(&stepped) {
                    assert_eq!(floats(w), floats(e), "{dtype} n={n}: the kernel IR's evaluator");
                }
                let tol = match dtype {
                    DType::F64 => 1e-12,
                    DType::F32 => 1e-5,
                    _ => 5e-2,
                };
                for (o, (w, c)) in want.iter().zip(&got).enumerate() {
                    assert_eq!(w.ty(), c.ty());
                    for (i, (x, y)) in floats(w).iter().zip(floats(c)).enumerate() {
                        assert!(
                            (x - y).abs() <= tol * (1.0 + x.abs()),
                            "{dtype} n={n} block {block:?}: output {o} element {i}: interpreter {x}, compiled {y}"
                        );
                    }
                }
            }
        }
    }
}
