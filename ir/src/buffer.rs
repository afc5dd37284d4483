//! `Buffer`: a dense, row-major tensor value on the host, with its shape.
//!
//! Buffers are what the interpreter consumes and produces, what realized tensors hold, and
//! what `.npy` files load into. The element storage is one `Vec` per dtype ([`Data`]); the
//! [`Element`] trait maps Rust element types to dtypes.

use crate::ops::Scalar;
use crate::types::{DType, Shape, TensorType};
use std::fmt;

/// Typed element storage.
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    /// `bool` elements.
    Bool(Vec<bool>),
    /// `i32` elements.
    I32(Vec<i32>),
    /// `i64` elements.
    I64(Vec<i64>),
    /// `f16` elements.
    F16(Vec<half::f16>),
    /// `bf16` elements.
    BF16(Vec<half::bf16>),
    /// `f32` elements.
    F32(Vec<f32>),
    /// `f64` elements.
    F64(Vec<f64>),
}

impl Data {
    /// The dtype of the elements.
    pub fn dtype(&self) -> DType {
        match self {
            Data::Bool(_) => DType::Bool,
            Data::I32(_) => DType::I32,
            Data::I64(_) => DType::I64,
            Data::F16(_) => DType::F16,
            Data::BF16(_) => DType::BF16,
            Data::F32(_) => DType::F32,
            Data::F64(_) => DType::F64,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Data::Bool(v) => v.len(),
            Data::I32(v) => v.len(),
            Data::I64(v) => v.len(),
            Data::F16(v) => v.len(),
            Data::BF16(v) => v.len(),
            Data::F32(v) => v.len(),
            Data::F64(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A Rust type that is the element type of a dtype.
pub trait Element: Copy + Send + Sync + fmt::Debug + 'static {
    /// The dtype of this element type.
    const DTYPE: DType;
    /// Wraps a vector as [`Data`].
    fn into_data(v: Vec<Self>) -> Data;
    /// The vector inside `d`, if `d` holds this element type.
    fn slice(d: &Data) -> Option<&[Self]>;
    /// Converts a scalar of this dtype's representation.
    fn from_scalar(s: Scalar) -> Self;
    /// The element as a scalar.
    fn to_scalar(self) -> Scalar;
}

macro_rules! element {
    ($t:ty, $variant:ident, $dtype:expr, |$s:ident| $from:expr, |$x:ident| $to:expr) => {
        impl Element for $t {
            const DTYPE: DType = $dtype;
            fn into_data(v: Vec<Self>) -> Data {
                Data::$variant(v)
            }
            fn slice(d: &Data) -> Option<&[Self]> {
                match d {
                    Data::$variant(v) => Some(v),
                    _ => None,
                }
            }
            fn from_scalar($s: Scalar) -> Self {
                $from
            }
            fn to_scalar(self) -> Scalar {
                let $x = self;
                $to
            }
        }
    };
}

element!(bool, Bool, DType::Bool, |s| s.as_f64() != 0.0, |x| Scalar::Bool(x));
element!(i32, I32, DType::I32, |s| s.as_i64() as i32, |x| Scalar::Int(x as i64));
element!(i64, I64, DType::I64, |s| s.as_i64(), |x| Scalar::Int(x));
element!(half::f16, F16, DType::F16, |s| half::f16::from_f32(s.as_f64() as f32), |x| Scalar::Float(
    x.to_f64()
));
element!(half::bf16, BF16, DType::BF16, |s| half::bf16::from_f32(s.as_f64() as f32), |x| Scalar::Float(
    x.to_f64()
));
element!(f32, F32, DType::F32, |s| s.as_f64() as f32, |x| Scalar::Float(x as f64));
element!(f64, F64, DType::F64, |s| s.as_f64(), |x| Scalar::Float(x));

/// A dense row-major tensor value.
#[derive(Clone, Debug, PartialEq)]
pub struct Buffer {
    shape: Shape,
    data: Data,
}

/// A buffer whose element count does not match its shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LengthMismatch {
    /// The shape asked for.
    pub shape: Shape,
    /// The number of elements given.
    pub len: usize,
}

impl fmt::Display for LengthMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} elements do not fill shape {} ({} elements)", self.len, self.shape, self.shape.numel())
    }
}

impl std::error::Error for LengthMismatch {}

impl Buffer {
    /// A buffer from typed storage; fails if the element count does not match the shape.
    pub fn new(shape: Shape, data: Data) -> Result<Buffer, LengthMismatch> {
        if shape.numel() != data.len() {
            return Err(LengthMismatch { shape, len: data.len() });
        }
        Ok(Buffer { shape, data })
    }

    /// A buffer from a vector of elements.
    pub fn from_vec<T: Element>(v: Vec<T>, shape: impl Into<Shape>) -> Result<Buffer, LengthMismatch> {
        Buffer::new(shape.into(), T::into_data(v))
    }

    /// A buffer of `dtype` from scalars (each converted as a cast would).
    pub fn from_scalars(dtype: DType, shape: Shape, values: impl IntoIterator<Item = Scalar>) -> Buffer {
        fn collect<T: Element>(values: impl IntoIterator<Item = Scalar>) -> Data {
            T::into_data(values.into_iter().map(T::from_scalar).collect())
        }
        let data = match dtype {
            DType::Bool => collect::<bool>(values),
            DType::I32 => collect::<i32>(values),
            DType::I64 => collect::<i64>(values),
            DType::F16 => collect::<half::f16>(values),
            DType::BF16 => collect::<half::bf16>(values),
            DType::F32 => collect::<f32>(values),
            DType::F64 => collect::<f64>(values),
        };
        assert_eq!(data.len(), shape.numel(), "Buffer::from_scalars: element count does not match {shape}");
        Buffer { shape, data }
    }

    /// A buffer of `ty` filled with `value`.
    pub fn full(ty: &TensorType, value: Scalar) -> Buffer {
        Buffer::from_scalars(ty.dtype, ty.shape.clone(), std::iter::repeat_n(value, ty.shape.numel()))
    }

    /// The shape.
    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// The dtype.
    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }

    /// The type (dtype and shape).
    pub fn ty(&self) -> TensorType {
        TensorType::new(self.dtype(), self.shape.clone())
    }

    /// The storage.
    pub fn data(&self) -> &Data {
        &self.data
    }

    /// Takes the storage out.
    pub fn into_data(self) -> Data {
        self.data
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.data.len()
    }

    /// The elements as a slice of `T`, if `T` is this buffer's element type.
    pub fn as_slice<T: Element>(&self) -> Option<&[T]> {
        T::slice(&self.data)
    }

    /// The element at flat (row-major) position `i` as a scalar.
    pub fn scalar(&self, i: usize) -> Scalar {
        match &self.data {
            Data::Bool(v) => v[i].to_scalar(),
            Data::I32(v) => v[i].to_scalar(),
            Data::I64(v) => v[i].to_scalar(),
            Data::F16(v) => v[i].to_scalar(),
            Data::BF16(v) => v[i].to_scalar(),
            Data::F32(v) => v[i].to_scalar(),
            Data::F64(v) => v[i].to_scalar(),
        }
    }

    /// All elements as scalars, row-major.
    pub fn scalars(&self) -> Vec<Scalar> {
        (0..self.numel()).map(|i| self.scalar(i)).collect()
    }

    /// The same elements under another shape of equal element count.
    pub fn reshaped(self, shape: Shape) -> Result<Buffer, LengthMismatch> {
        Buffer::new(shape, self.data)
    }

    /// All elements converted to `dtype` as a cast would.
    pub fn cast(&self, dtype: DType) -> Buffer {
        Buffer::from_scalars(dtype, self.shape.clone(), (0..self.numel()).map(|i| self.scalar(i).cast(dtype)))
    }
}
