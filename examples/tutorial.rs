//! The NumPy→PyTorch tutorial, written with tenjit: creating tensors, dtypes, reshaping,
//! indexing, elementwise ops, broadcasting, matrix products, reductions, a worked example and an
//! exercise (sections 1–10 here).
//!
//! Run it with:
//!
//! ```text
//! cargo run --example tutorial
//! ```
//!
//! Each step prints the PyTorch code it mirrors after `>>>`, then what tenjit prints for it:
//! the same text PyTorch would print. Everything is lazy: tenjit records a graph as you call
//! ops, checks shapes and dtypes at every call, and computes values only when they are printed.
//! The last step shows the graph tenjit recorded, as text IR.

use std::fmt::Display;
use tenjit::prelude::*;

/// Prints a section header.
fn section(title: &str) {
    println!("\n== {title} ==\n");
}

/// Prints one step: the PyTorch code and tenjit's result.
fn show(code: &str, value: impl Display) {
    println!(">>> {code}\n{value}");
}

/// A shape as PyTorch prints `x.shape`.
fn size(t: &Tensor) -> String {
    format!("torch.Size({:?})", t.shape())
}

fn main() {
    section("1. Creating tensors");
    let a = tensor!([1.0, 2.0, 3.0]);
    show("torch.tensor([1.0, 2.0, 3.0])", &a);
    show("torch.tensor([[1., 2.], [3., 4.]])", tensor!([[1., 2.], [3., 4.]]));
    show("torch.zeros(2, 3)", Tensor::zeros([2, 3]));
    show("torch.ones(3)", Tensor::ones([3]));
    show("torch.full((2, 2), 7.0)", Tensor::full([2, 2], 7.0));
    show("torch.arange(5)", Tensor::arange(5));
    show("torch.arange(0, 10, 3)", Tensor::arange_step(0, 10, 3));
    show("torch.arange(0.0, 1.0, 0.2)", Tensor::arange_step(0.0, 1.0, 0.2));
    show("torch.linspace(0, 1, 5)", Tensor::linspace(0.0, 1.0, 5));
    show("torch.eye(3)", Tensor::eye(3));
    tenjit::manual_seed(0);
    println!(">>> torch.manual_seed(0)");
    let r = Tensor::rand([2, 3]);
    show("r = torch.rand(2, 3); r", &r);
    show("r.shape", size(&r));
    show("torch.zeros_like(r)", Tensor::zeros_like(&r));

    section("2. Data types");
    show("torch.tensor([1.0, 2.0]).dtype", tensor!([1.0, 2.0]).dtype().torch_name());
    show("torch.tensor([1, 2]).dtype", tensor!([1, 2]).dtype().torch_name());
    show("torch.tensor([True, False]).dtype", tensor!([true, false]).dtype().torch_name());
    let i = tensor!([1, 2, 3]);
    show("i = torch.tensor([1, 2, 3]); i.float()", i.to_dtype(DType::F32));
    show("i.to(torch.int32)", i.to_dtype(DType::I32));
    show("torch.tensor([1.7, -1.7]).long()", tensor!([1.7, -1.7]).to_dtype(DType::I64));
    show("i / 2  # integer division gives floats", &i / 2);
    show("(i + 0.5).dtype", (&i + 0.5).dtype().torch_name());

    section("3. Reshaping");
    let x = Tensor::arange(12);
    let r = x.reshape([3, 4]);
    show("x = torch.arange(12); r = x.reshape(3, 4); r", &r);
    show("x.view(2, -1).shape", size(&x.view([2, -1])));
    show("r.flatten()", r.flatten());
    show("r.unsqueeze(0).shape", size(&r.unsqueeze(0)));
    show("r.unsqueeze(0).squeeze().shape", size(&r.unsqueeze(0).squeeze()));
    show("r.transpose(0, 1)", r.transpose(0, 1));
    show("r.t().is_contiguous()", if r.t().is_contiguous() { "True" } else { "False" });
    println!(">>> r.t().view(12)");
    match r.t().try_view([12]) {
        Ok(v) => println!("{v}"),
        Err(e) => println!("RuntimeError: {e}"),
    }
    show("r.t().reshape(12)", r.t().reshape([12]));
    show("torch.zeros(2, 3, 4).permute(2, 0, 1).shape", size(&Tensor::zeros([2, 3, 4]).permute([2, 0, 1])));

    section("4. Indexing and slicing");
    let t = Tensor::arange(10);
    show("t = torch.arange(10); t[2:5]", t.i(s![2..5]));
    show("t[-3:]", t.i(s![-3..]));
    show("t[::3]", t.i(s![..;3]));
    show("t.flip(0)  # t[::-1] in NumPy", t.i(s![..;-1]));
    show("t[t > 5]", t.masked_select(&t.gt(5)));
    let m = tensor!([[1., 2., 3.], [4., 5., 6.]]);
    show("m = torch.tensor([[1., 2., 3.], [4., 5., 6.]]); m[0]", m.i(s![0]));
    show("m[:, 1]", m.i(s![.., 1]));
    show("m[1, 2].item()", format!("{:?}", m.i(s![1, 2]).item()));
    show("m.flip(1)  # m[:, ::-1] in NumPy", m.i(s![.., ..;-1]));
    show("m[None, ...].shape", size(&m.i(s![NewAxis, Ellipsis])));
    show("torch.where(m > 3, m, 0.0)", Tensor::where_(&m.gt(3.0), &m, 0.0));

    section("5. Elementwise operations");
    let b = tensor!([4.0, 5.0, 6.0]);
    show("a + b", &a + &b);
    show("b - a", &b - &a);
    show("a * b", &a * &b);
    show("b / a", &b / &a);
    show("a ** 2", a.pow(2));
    show("torch.sqrt(a)", a.sqrt());
    show("torch.exp(a)", a.exp());
    show("2 * a + 1", 2.0 * &a + 1.0);
    show("torch.relu(torch.tensor([-1.0, 0.0, 2.0]))", tensor!([-1.0, 0.0, 2.0]).relu());
    show("(a > 1.5) & (b < 6.0)", a.gt(1.5) & b.lt(6.0));

    section("6. Broadcasting");
    let col = tensor!([[1.], [2.], [3.]]);
    show("col = torch.tensor([[1.], [2.], [3.]]); col + col", &col + &col);
    let v = tensor!([10., 20., 30.]);
    show("m + torch.tensor([10., 20., 30.])  # (2, 3) + (3,)", &m + &v);
    // Both operands are stretched: legal, but the classic shape bug, so tenjit warns on stderr,
    // once per call site (`examples/linear_regression.rs` shows the bug it catches;
    // TENJIT_STRICT=1 makes it an error).
    println!(">>> (col + torch.tensor([[1., 2., 3.]])).shape  # (3, 1) + (1, 3)");
    println!("{}", size(&(&col + tensor!([[1., 2., 3.]]))));
    println!(">>> m + torch.tensor([1., 2.])  # (2, 3) + (2,)");
    match m.try_add(tensor!([1., 2.])) {
        Ok(sum) => println!("{sum}"),
        Err(e) => println!("RuntimeError: {e}"),
    }

    section("7. Matrix multiplication");
    let ma = tensor!([[1., 2.], [3., 4.]]);
    let mb = tensor!([[5., 6.], [7., 8.]]);
    show("A @ B", ma.matmul(&mb));
    show("A.T", ma.t());
    show("torch.dot(a, b)", a.dot(&b));
    show(
        "(torch.ones(5, 2, 3) @ torch.ones(3, 4)).shape",
        size(&Tensor::ones([5, 2, 3]).matmul(&Tensor::ones([3, 4]))),
    );

    section("8. Reductions");
    let x = tensor!([[1., 2.], [3., 4.]]);
    show("x = torch.tensor([[1., 2.], [3., 4.]]); x.sum()", x.sum());
    show("x.sum(dim=0)", x.sum_dim(0, false));
    show("x.sum(dim=1)", x.sum_dim(1, false));
    show("x.sum(dim=1, keepdim=True)", x.sum_dim(1, true));
    show("x.mean()", x.mean());
    show("x.std()", x.std());
    show("x.max()", x.max());
    show("x.argmax()", x.argmax());
    let (values, indices) = x.max_dim(0, false);
    show("values, indices = x.max(dim=0); values", values);
    show("indices", indices);

    section("9. Putting it together");
    let w = tensor!([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]]);
    let xv = tensor!([1., 2., 3.]);
    show("W @ x", w.matmul(&xv));

    let labels = tensor!([0, 2, 1, 3]);
    show(
        "labels = torch.tensor([0, 2, 1, 3]); torch.eye(4)[labels]",
        Tensor::eye(4).index_select(0, &labels),
    );

    let data = Tensor::arange(300).reshape([100, 3]).to_dtype(DType::F32);
    println!(">>> X = torch.arange(300).reshape(100, 3).float()");
    let normalized = (&data - data.mean_dim(0, true)) / (data.std_dim(0, 1.0, true) + 1e-8);
    println!(">>> X_norm = (X - X.mean(dim=0)) / (X.std(dim=0) + 1e-8)");
    show("X_norm.mean(dim=0)", normalized.mean_dim(0, false));
    show("X_norm.std(dim=0)", normalized.std_dim(0, 1.0, false));

    println!(">>> for batch in X.split(16): print(batch.shape)");
    for batch in data.split(16, 0) {
        println!("{}", size(&batch));
    }

    section("10. Exercise: y = sin(x) + cos(x)**2");
    let x = tensor!([0.0, 0.5, 1.0, 1.5]);
    let y = x.sin() + x.cos().pow(2);
    println!(">>> x = torch.tensor([0.0, 0.5, 1.0, 1.5])");
    println!(">>> y = torch.sin(x) + torch.cos(x) ** 2");
    println!("nothing is computed yet; what tenjit recorded:");
    print!("{}", tenjit::graph(&[&y]));
    show("y", &y);
}
