//! Creating tensors: from data (`tensor!`, `from_vec`), filled (`zeros`, `ones`, `full`),
//! ranges (`arange`, `linspace`), `eye`, and the `*_like` forms.
//!
//! Defaults follow PyTorch: Rust float literals make `f32` tensors (the default float) and
//! integer literals `i64` tensors (the default integer), as Python's `float` and `int` do;
//! typed data (`from_vec` of `Vec<f64>`) keeps its type.

use super::symsize::SymSize;
use super::Tensor;
use crate::device::Device;
use crate::error::{Error, OrPanic, Result};
use tenjit_ir::sym::Dim;
use tenjit_ir::{BinaryOp, Buffer, DType, Element, Op, Scalar, Shape, TensorType};

/// A Rust scalar usable as a tensor value: `f64`, `f32`, `i64`, `i32`, `usize`, `bool`.
pub trait IntoScalar: Copy {
    /// The value as an IR scalar (floats stay floats, integers integers).
    fn scalar(self) -> Scalar;
}

impl IntoScalar for f64 {
    fn scalar(self) -> Scalar {
        Scalar::Float(self)
    }
}
impl IntoScalar for f32 {
    fn scalar(self) -> Scalar {
        Scalar::Float(self as f64)
    }
}
impl IntoScalar for half::f16 {
    fn scalar(self) -> Scalar {
        Scalar::Float(self.to_f64())
    }
}
impl IntoScalar for half::bf16 {
    fn scalar(self) -> Scalar {
        Scalar::Float(self.to_f64())
    }
}
impl IntoScalar for i64 {
    fn scalar(self) -> Scalar {
        Scalar::Int(self)
    }
}
impl IntoScalar for i32 {
    fn scalar(self) -> Scalar {
        Scalar::Int(self as i64)
    }
}
impl IntoScalar for usize {
    fn scalar(self) -> Scalar {
        Scalar::Int(self as i64)
    }
}
impl IntoScalar for bool {
    fn scalar(self) -> Scalar {
        Scalar::Bool(self)
    }
}

/// The end of [`Tensor::arange`]: a scalar or a [`SymSize`].
pub trait ArangeEnd {
    /// The end as it was given.
    fn end(self) -> RangeEnd;
}

/// The end of a range, from [`ArangeEnd`].
#[derive(Clone, Debug)]
pub enum RangeEnd {
    /// A number: the range's dtype follows it (`i64` for integers, `f32` for floats).
    Scalar(Scalar),
    /// A size, possibly symbolic: an `i64` range.
    Size(SymSize),
}

impl<T: IntoScalar> ArangeEnd for T {
    fn end(self) -> RangeEnd {
        RangeEnd::Scalar(self.scalar())
    }
}

impl ArangeEnd for SymSize {
    fn end(self) -> RangeEnd {
        RangeEnd::Size(self)
    }
}

impl ArangeEnd for &SymSize {
    fn end(self) -> RangeEnd {
        RangeEnd::Size(self.clone())
    }
}

/// Nested arrays of scalars, the argument of [`tensor!`](crate::tensor!): their shape is
/// static, so a ragged literal cannot be written.
pub trait Literal {
    /// The element type.
    type Elem: Element;
    /// Appends the static shape.
    fn shape(out: &mut Vec<usize>);
    /// Appends the elements in row-major order.
    fn flatten(&self, out: &mut Vec<Self::Elem>);
}

macro_rules! scalar_literal {
    ($($t:ty),*) => {$(
        impl Literal for $t {
            type Elem = $t;
            fn shape(_: &mut Vec<usize>) {}
            fn flatten(&self, out: &mut Vec<$t>) {
                out.push(*self);
            }
        }
    )*};
}
scalar_literal!(f32, f64, half::f16, half::bf16, i32, i64, bool);

impl<L: Literal, const N: usize> Literal for [L; N] {
    type Elem = L::Elem;
    fn shape(out: &mut Vec<usize>) {
        out.push(N);
        L::shape(out);
    }
    fn flatten(&self, out: &mut Vec<L::Elem>) {
        for x in self {
            x.flatten(out);
        }
    }
}

/// Builds a tensor from a nested array literal, as `torch.tensor([[1., 2.], [3., 4.]])`.
///
/// Float literals give `f32` and integer literals `i64` (PyTorch's defaults for Python
/// numbers); a second argument picks the dtype: `tensor!([1, 2], DType::I32)`.
///
/// ```
/// use tenjit::prelude::*;
/// let m = tensor!([[1., 2.], [3., 4.]]);
/// assert_eq!(m.shape(), &[2, 2]);
/// assert_eq!(m.dtype(), DType::F32);
/// assert_eq!(tensor!([1, 2, 3]).dtype(), DType::I64);
/// assert_eq!(tensor!([1, 2], DType::I32).dtype(), DType::I32);
/// ```
#[macro_export]
macro_rules! tensor {
    ($lit:expr) => {
        $crate::Tensor::from_literal(&$lit)
    };
    ($lit:expr, $dtype:expr) => {
        $crate::Tensor::from_literal_dtype(&$lit, $dtype)
    };
}

impl Tensor {
    /// A tensor from a nested array literal, with PyTorch's default dtypes (`f64` → `f32`,
    /// `i32` → `i64`); see [`tensor!`](crate::tensor!).
    #[track_caller]
    pub fn from_literal<L: Literal>(lit: &L) -> Tensor {
        let dtype = match <L::Elem as Element>::DTYPE {
            DType::F64 | DType::F32 => DType::F32,
            DType::F16 => DType::F16,
            DType::BF16 => DType::BF16,
            DType::I32 | DType::I64 => DType::I64,
            DType::Bool => DType::Bool,
        };
        Tensor::from_literal_dtype(lit, dtype)
    }

    /// A tensor from a nested array literal, converted to `dtype`.
    #[track_caller]
    pub fn from_literal_dtype<L: Literal>(lit: &L, dtype: DType) -> Tensor {
        let mut shape = Vec::new();
        L::shape(&mut shape);
        let mut data = Vec::new();
        lit.flatten(&mut data);
        let buf = Buffer::from_vec(data, shape).expect("a literal's shape matches its elements");
        let buf = if buf.dtype() == dtype { buf } else { buf.cast(dtype) };
        Tensor::from_buffer(buf, Device::Cpu)
    }

    /// A tensor from row-major data and a shape; the dtype is the element type's.
    ///
    /// ```
    /// use tenjit::prelude::*;
    /// let t = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]);
    /// assert_eq!(t.to_string(), "tensor([[1., 2., 3.],\n        [4., 5., 6.]])");
    /// ```
    #[track_caller]
    pub fn from_vec<T: Element>(data: Vec<T>, shape: impl Into<Shape>) -> Tensor {
        Tensor::try_from_vec(data, shape).or_panic()
    }

    /// [`Tensor::from_vec`], failing when the data does not fill the shape.
    #[track_caller]
    pub fn try_from_vec<T: Element>(data: Vec<T>, shape: impl Into<Shape>) -> Result<Tensor> {
        let buf = match Buffer::from_vec(data, shape) {
            Ok(b) => b,
            Err(e) => return Err(Error::op("from_vec", e.to_string())),
        };
        Ok(Tensor::from_buffer(buf, Device::Cpu))
    }

    /// A tensor holding a copy of `buffer`'s value.
    #[track_caller]
    pub fn from_ir_buffer(buffer: Buffer) -> Tensor {
        Tensor::from_buffer(buffer, Device::Cpu)
    }

    /// A scalar (0-d) tensor, as `torch.tensor(3.5)`; floats give `f32`, integers `i64`.
    #[track_caller]
    pub fn scalar<S: IntoScalar>(value: S) -> Tensor {
        let s = value.scalar();
        let dtype = DType::default_of(s.category());
        Tensor::from_buffer(
            Buffer::full(&TensorType::new(dtype, Shape::scalar()), s.cast(dtype)),
            Device::Cpu,
        )
    }

    /// A tensor of `shape` filled with `value`, of `dtype`.
    #[track_caller]
    pub fn full_dtype<S: IntoScalar>(shape: impl Into<Shape>, value: S, dtype: DType) -> Tensor {
        let ty = TensorType::new(dtype, shape.into());
        Tensor::from_op(Op::Const { value: value.scalar().cast(dtype), ty }, &[]).or_panic()
    }

    /// A tensor of `shape` filled with `value` (`f32` for a float, `i64` for an integer).
    ///
    /// ```
    /// use tenjit::prelude::*;
    /// assert_eq!(Tensor::full([2], 7.0).to_string(), "tensor([7., 7.])");
    /// assert_eq!(Tensor::full([2], 7).to_string(), "tensor([7, 7])");
    /// ```
    #[track_caller]
    pub fn full<S: IntoScalar>(shape: impl Into<Shape>, value: S) -> Tensor {
        Tensor::full_dtype(shape, value, DType::default_of(value.scalar().category()))
    }

    /// `f32` zeros, as `torch.zeros(2, 3)`.
    ///
    /// ```
    /// use tenjit::prelude::*;
    /// assert_eq!(Tensor::zeros([2, 3]).to_string(), "tensor([[0., 0., 0.],\n        [0., 0., 0.]])");
    /// ```
    #[track_caller]
    pub fn zeros(shape: impl Into<Shape>) -> Tensor {
        Tensor::full_dtype(shape, 0.0, DType::F32)
    }

    /// `f32` ones, as `torch.ones(2, 3)`.
    #[track_caller]
    pub fn ones(shape: impl Into<Shape>) -> Tensor {
        Tensor::full_dtype(shape, 1.0, DType::F32)
    }

    /// Zeros of this tensor's shape and dtype.
    #[track_caller]
    pub fn zeros_like(&self) -> Tensor {
        Tensor::full_dtype(self.ir_shape().clone(), 0, self.dtype())
    }

    /// Ones of this tensor's shape and dtype.
    #[track_caller]
    pub fn ones_like(&self) -> Tensor {
        Tensor::full_dtype(self.ir_shape().clone(), 1, self.dtype())
    }

    /// `value` in this tensor's shape and dtype.
    #[track_caller]
    pub fn full_like<S: IntoScalar>(&self, value: S) -> Tensor {
        Tensor::full_dtype(self.ir_shape().clone(), value, self.dtype())
    }

    /// `0, 1, ..., end-1`, as `torch.arange(end)` (`i64` for an integer end, `f32` for a float).
    ///
    /// ```
    /// use tenjit::prelude::*;
    /// assert_eq!(Tensor::arange(4).to_string(), "tensor([0, 1, 2, 3])");
    /// ```
    ///
    /// The end may be a [`SymSize`] (`Tensor::arange(x.sym_size(1))`, positions of a symbolic
    /// length), which reads no size: the range is as long as the size at every size.
    #[track_caller]
    pub fn arange<S: ArangeEnd>(end: S) -> Tensor {
        let end = match end.end() {
            RangeEnd::Scalar(end) => end,
            RangeEnd::Size(n) if n.is_symbolic() => {
                return Tensor::iota(vec![n.dim().clone()], DType::I64).or_panic();
            }
            RangeEnd::Size(n) => Scalar::Int(n.get() as i64),
        };
        let zero = match end {
            Scalar::Float(_) => Scalar::Float(0.0),
            _ => Scalar::Int(0),
        };
        let one = match end {
            Scalar::Float(_) => Scalar::Float(1.0),
            _ => Scalar::Int(1),
        };
        Tensor::try_arange_scalars(zero, end, one).or_panic()
    }

    /// `start, start+step, ...` up to but excluding `end`, as `torch.arange(start, end, step)`.
    ///
    /// ```
    /// use tenjit::prelude::*;
    /// assert_eq!(Tensor::arange_step(6, 10, 1).to_string(), "tensor([6, 7, 8, 9])");
    /// assert_eq!(Tensor::arange_step(0.0, 1.0, 0.25).to_string(), "tensor([0.0000, 0.2500, 0.5000, 0.7500])");
    /// ```
    #[track_caller]
    pub fn arange_step<S: IntoScalar>(start: S, end: S, step: S) -> Tensor {
        Tensor::try_arange_step(start, end, step).or_panic()
    }

    /// [`Tensor::arange_step`], failing on a zero step or a step of the wrong sign.
    #[track_caller]
    pub fn try_arange_step<S: IntoScalar>(start: S, end: S, step: S) -> Result<Tensor> {
        Tensor::try_arange_scalars(start.scalar(), end.scalar(), step.scalar())
    }

    #[track_caller]
    fn try_arange_scalars(start: Scalar, end: Scalar, step: Scalar) -> Result<Tensor> {
        let float = [start, end, step].iter().any(|s| matches!(s, Scalar::Float(_)));
        let (s, e, st) = (start.as_f64(), end.as_f64(), step.as_f64());
        if st == 0.0 {
            return Err(Error::op("arange", "step must be nonzero"));
        }
        if !(s.is_finite() && e.is_finite()) {
            return Err(Error::op("arange", format!("unsupported range: {s} -> {e}")));
        }
        if (st > 0.0 && e < s) || (st < 0.0 && e > s) {
            return Err(Error::op("arange", "upper bound and larger bound inconsistent with step sign"));
        }
        // The element count as torch computes it: ceil((end - start) / step) in double.
        let n = ((e - s) / st).ceil().max(0.0) as usize;
        let shape = Shape::new(&[n]);
        if float {
            // start + i * step in f64, rounded once to f32, as torch's CPU kernel does.
            let i =
                Tensor::from_op(Op::Iota { ty: TensorType::new(DType::F64, shape.clone()), axis: 0 }, &[])?;
            let v = i.mul(st).add(s);
            v.try_to_dtype(DType::F32)
        } else {
            let i =
                Tensor::from_op(Op::Iota { ty: TensorType::new(DType::I64, shape.clone()), axis: 0 }, &[])?;
            let v = i.mul(step.as_i64()).add(start.as_i64());
            Ok(v)
        }
    }

    /// `i` along the last of `dims` (expressions over a symbolic trace's symbols allowed), in
    /// `dtype`: the `iota` op.
    #[track_caller]
    pub(crate) fn iota_along(dims: Vec<Dim>, axis: usize, dtype: DType) -> Result<Tensor> {
        let shape = super::symbolic::shape_of(dims).map_err(|e| Error::op("arange", e))?;
        Tensor::from_op(Op::Iota { ty: TensorType::new(dtype, shape), axis }, &[])
    }

    #[track_caller]
    fn iota(dims: Vec<Dim>, dtype: DType) -> Result<Tensor> {
        let axis = dims.len() - 1;
        Tensor::iota_along(dims, axis, dtype)
    }

    /// `steps` evenly spaced `f32` values from `start` to `end` inclusive, computed as torch
    /// does (from the start for the first half and from the end for the second).
    ///
    /// ```
    /// use tenjit::prelude::*;
    /// assert_eq!(Tensor::linspace(0.0, 1.0, 5).to_string(), "tensor([0.0000, 0.2500, 0.5000, 0.7500, 1.0000])");
    /// ```
    #[track_caller]
    pub fn linspace(start: f64, end: f64, steps: usize) -> Tensor {
        let shape = Shape::new(&[steps]);
        let i = Tensor::from_op(Op::Iota { ty: TensorType::new(DType::F64, shape), axis: 0 }, &[]).or_panic();
        if steps <= 1 {
            return i.add(start).to_dtype(DType::F32);
        }
        let step = (end - start) / (steps - 1) as f64;
        let from_start = i.mul(step).add(start);
        // end - (steps - 1 - i) * step
        let from_end = i.rsub((steps - 1) as f64).mul(step).rsub(end);
        let first_half = i.lt((steps / 2) as f64);
        Tensor::where_(&first_half, &from_start, &from_end).to_dtype(DType::F32)
    }

    /// The `n × n` identity matrix (`f32`).
    #[track_caller]
    pub fn eye(n: usize) -> Tensor {
        Tensor::eye_nm(n, n)
    }

    /// The `n × m` matrix with ones on the diagonal (`f32`).
    #[track_caller]
    pub fn eye_nm(n: usize, m: usize) -> Tensor {
        let ty = TensorType::new(DType::I64, [n, m]);
        let rows = Tensor::from_op(Op::Iota { ty: ty.clone(), axis: 0 }, &[]).or_panic();
        let cols = Tensor::from_op(Op::Iota { ty, axis: 1 }, &[]).or_panic();
        Tensor::from_op(Op::Binary(BinaryOp::Eq), &[&rows, &cols]).or_panic().to_dtype(DType::F32)
    }
}
