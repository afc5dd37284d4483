//! Element types, shapes, broadcasting and type promotion.
//!
//! This module is the one place where tenjit's typing rules live:
//!
//! * **Broadcasting** follows NumPy: shapes are aligned at their trailing dimension; two sizes
//!   are compatible when they are equal or one of them is 1; missing leading dimensions count
//!   as 1. See [`broadcast_shapes`].
//! * **Type promotion** follows PyTorch: the categories are ordered `bool < integer < float`;
//!   between two tensors the result is the higher category and, within a category, the wider
//!   type (`i32 + i64 → i64`, `f32 + f64 → f64`, `i64 + f32 → f32`, `bf16 + f32 → f32`, and
//!   `f16 + bf16 → f32` since neither holds the other). A Rust scalar (`t + 2.0`)
//!   is *weak*: it only contributes its category, so `f32 tensor * 2.0 → f32`,
//!   `i32 tensor + 1 → i32`, `i64 tensor * 0.5 → f32` (the default float), and
//!   `bool tensor + 1 → i64` (the default integer). See [`promote`] and [`promote_weak`].
//!   A 0-d tensor (a reduction's result, say) against a tensor with dimensions is half weak:
//!   it decides the dtype only when its category is higher, and then with its own dtype
//!   (`i32[3] + i64[] → i32`, `i32[3] + f64[] → f64`). See [`promote_with_zero_dim`].
//!
//! In the IR itself nothing is implicit: binary operands have equal dtypes and equal shapes,
//! and the front end inserts `cast` and `expand` nodes to make them so.

use crate::sym::Dim;
use smallvec::SmallVec;
use std::fmt;
use std::sync::Arc;

/// The element type of a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    /// Booleans, the result of comparisons.
    Bool,
    /// 32-bit signed integers.
    I32,
    /// 64-bit signed integers, the default integer type (`torch.long`).
    I64,
    /// IEEE half-precision floats (`torch.float16`): stored in 16 bits, computed in `f32`.
    F16,
    /// Brain floats (`torch.bfloat16`): `f32`'s exponent with 8 significand bits, stored in
    /// 16 bits and computed in `f32`.
    BF16,
    /// 32-bit IEEE floats, the default float type.
    F32,
    /// 64-bit IEEE floats.
    F64,
}

/// The kind of a dtype, ordered as promotion orders them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    /// `bool`.
    Bool,
    /// `i32`, `i64`.
    Int,
    /// `f16`, `bf16`, `f32`, `f64`.
    Float,
}

impl DType {
    /// Every dtype, in promotion order.
    pub const ALL: [DType; 7] =
        [DType::Bool, DType::I32, DType::I64, DType::F16, DType::BF16, DType::F32, DType::F64];

    /// The name used in the text IR (`f32`, `i64`, `bool`, ...).
    pub fn name(self) -> &'static str {
        match self {
            DType::Bool => "bool",
            DType::I32 => "i32",
            DType::I64 => "i64",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::F32 => "f32",
            DType::F64 => "f64",
        }
    }

    /// The name PyTorch prints (`torch.float32`, `torch.int64`, ...).
    pub fn torch_name(self) -> &'static str {
        match self {
            DType::Bool => "torch.bool",
            DType::I32 => "torch.int32",
            DType::I64 => "torch.int64",
            DType::F16 => "torch.float16",
            DType::BF16 => "torch.bfloat16",
            DType::F32 => "torch.float32",
            DType::F64 => "torch.float64",
        }
    }

    /// Parses a text-IR dtype name.
    pub fn parse(s: &str) -> Option<DType> {
        DType::ALL.into_iter().find(|d| d.name() == s)
    }

    /// The category of this dtype.
    pub fn category(self) -> Category {
        match self {
            DType::Bool => Category::Bool,
            DType::I32 | DType::I64 => Category::Int,
            DType::F16 | DType::BF16 | DType::F32 | DType::F64 => Category::Float,
        }
    }

    /// Whether this is a float dtype (`f16`, `bf16`, `f32` or `f64`).
    pub fn is_float(self) -> bool {
        self.category() == Category::Float
    }

    /// Whether this is `i32` or `i64`.
    pub fn is_int(self) -> bool {
        self.category() == Category::Int
    }

    /// Size of one element in bytes.
    pub fn size_bytes(self) -> usize {
        match self {
            DType::Bool => 1,
            DType::F16 | DType::BF16 => 2,
            DType::I32 | DType::F32 => 4,
            DType::I64 | DType::F64 => 8,
        }
    }

    /// Whether this is a 16-bit float (`f16` or `bf16`): stored in 16 bits, computed in `f32`,
    /// each op's result rounded to the storage type (round to nearest, ties to even).
    pub fn is_half(self) -> bool {
        match self {
            DType::F16 | DType::BF16 => true,
            DType::Bool | DType::I32 | DType::I64 | DType::F32 | DType::F64 => false,
        }
    }

    /// The dtype arithmetic on this dtype is computed in: `f32` for the 16-bit floats, the
    /// dtype itself otherwise.
    pub fn compute(self) -> DType {
        if self.is_half() {
            DType::F32
        } else {
            self
        }
    }

    /// The default dtype of a category: `bool`, `i64`, `f32`.
    pub fn default_of(category: Category) -> DType {
        match category {
            Category::Bool => DType::Bool,
            Category::Int => DType::I64,
            Category::Float => DType::F32,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Promotes two tensor dtypes as PyTorch does: higher category wins, then the wider type;
/// `f16` with `bf16` gives `f32` (neither holds the other).
pub fn promote(a: DType, b: DType) -> DType {
    // DType's declaration order is bool < i32 < i64 < f16 < bf16 < f32 < f64, which is the
    // promotion lattice except for the one incomparable pair.
    if a.is_half() && b.is_half() && a != b {
        DType::F32
    } else {
        a.max(b)
    }
}

/// Promotes the dtype of a tensor with dimensions with that of a 0-d tensor, as PyTorch's
/// `result_type` does: the 0-d tensor only matters when its category is higher.
pub fn promote_with_zero_dim(dimensioned: DType, zero_dim: DType) -> DType {
    if zero_dim.category() > dimensioned.category() {
        zero_dim
    } else {
        dimensioned
    }
}

/// Promotes a tensor dtype with a weak scalar of the given category (a Rust literal).
pub fn promote_weak(tensor: DType, scalar: Category) -> DType {
    if scalar > tensor.category() {
        DType::default_of(scalar)
    } else {
        tensor
    }
}

/// A tensor shape: one size per dimension, outermost first.
///
/// The sizes in `.0` are always concrete. A shape over symbolic dimensions
/// ([`crate::sym`]) keeps its expressions as well: `.0` then holds their values at the
/// graph's *hints* (the sizes it was traced or declared with), so code that knows nothing of
/// symbols sees one valid instance, and code that does ([`Shape::sym_dims`], the graph's
/// symbolic type rules, the text form, [`crate::Graph::bind`]) sees the expressions. Two shapes
/// are equal when both their sizes and their expressions are.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Shape(pub SmallVec<[usize; 4]>, Option<Arc<[Dim]>>);

impl Shape {
    /// A shape from its dimensions.
    pub fn new(dims: &[usize]) -> Shape {
        Shape(SmallVec::from_slice(dims), None)
    }

    /// The shape of a scalar, `[]`.
    pub fn scalar() -> Shape {
        Shape(SmallVec::new(), None)
    }

    /// A shape over symbolic dims whose sizes at the hints are `hints` (one per dim; a
    /// constant dim must equal its hint). All-constant dims give a concrete shape.
    pub fn symbolic(dims: Vec<Dim>, hints: &[usize]) -> Result<Shape, String> {
        if dims.len() != hints.len() {
            return Err(format!("{} dims with {} hints", dims.len(), hints.len()));
        }
        for (d, &h) in dims.iter().zip(hints) {
            if let Some(c) = d.as_const() {
                if c != h as u64 {
                    return Err(format!("constant dim {c} with hint {h}"));
                }
            }
        }
        let sym = dims.iter().any(|d| d.as_const().is_none()).then(|| Arc::from(dims));
        Ok(Shape(SmallVec::from_slice(hints), sym))
    }

    /// Whether some dim is a symbolic expression.
    pub fn is_symbolic(&self) -> bool {
        self.1.is_some()
    }

    /// The dims as expressions (constants for a concrete shape).
    pub fn sym_dims(&self) -> Vec<Dim> {
        match &self.1 {
            Some(dims) => dims.to_vec(),
            None => self.0.iter().map(|&d| Dim::from(d as u64)).collect(),
        }
    }

    /// The dims' expressions of a symbolic shape, without copying them; `None` when concrete.
    pub fn sym_dims_ref(&self) -> Option<&[Dim]> {
        self.1.as_deref()
    }

    /// The same sizes without expressions: the shape at the hints.
    pub fn concrete(&self) -> Shape {
        Shape(self.0.clone(), None)
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.0.len()
    }

    /// The dimensions as a slice (for a symbolic shape: their sizes at the hints).
    pub fn dims(&self) -> &[usize] {
        &self.0
    }

    /// Number of elements (1 for a scalar).
    pub fn numel(&self) -> usize {
        self.0.iter().product()
    }

    /// Row-major (C order) strides in elements.
    pub fn strides(&self) -> SmallVec<[usize; 4]> {
        let mut strides: SmallVec<[usize; 4]> = SmallVec::from_elem(1, self.rank());
        for i in (0..self.rank().saturating_sub(1)).rev() {
            strides[i] = strides[i + 1] * self.0[i + 1];
        }
        strides
    }

    /// Writes `[d0,d1,...]` with `sep` between dims: expressions where symbolic.
    fn write_dims(&self, f: &mut fmt::Formatter<'_>, sep: &str) -> fmt::Result {
        f.write_str("[")?;
        for i in 0..self.rank() {
            if i > 0 {
                f.write_str(sep)?;
            }
            match &self.1 {
                Some(dims) => write!(f, "{}", dims[i])?,
                None => write!(f, "{}", self.0[i])?,
            }
        }
        f.write_str("]")
    }
}

impl PartialOrd for Shape {
    fn partial_cmp(&self, other: &Shape) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Shape {
    /// By sizes, then by the expressions' text (concrete shapes first).
    fn cmp(&self, other: &Shape) -> std::cmp::Ordering {
        let text = |s: &Shape| s.1.as_ref().map(|d| d.iter().map(Dim::to_string).collect::<Vec<_>>());
        self.0.cmp(&other.0).then_with(|| text(self).cmp(&text(other)))
    }
}

impl From<&[usize]> for Shape {
    fn from(d: &[usize]) -> Shape {
        Shape::new(d)
    }
}

impl<const N: usize> From<[usize; N]> for Shape {
    fn from(d: [usize; N]) -> Shape {
        Shape::new(&d)
    }
}

impl From<Vec<usize>> for Shape {
    fn from(d: Vec<usize>) -> Shape {
        Shape(SmallVec::from_vec(d), None)
    }
}

impl From<SmallVec<[usize; 4]>> for Shape {
    fn from(d: SmallVec<[usize; 4]>) -> Shape {
        Shape(d, None)
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_dims(f, ", ")
    }
}

/// The static type of a value: its dtype and shape.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TensorType {
    /// Element type.
    pub dtype: DType,
    /// Shape.
    pub shape: Shape,
}

impl TensorType {
    /// A type from a dtype and a shape.
    pub fn new(dtype: DType, shape: impl Into<Shape>) -> TensorType {
        TensorType { dtype, shape: shape.into() }
    }
}

impl fmt::Display for TensorType {
    /// Prints the text-IR form, `f32[4,1]` (no spaces, so it reads as one token).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.dtype)?;
        self.shape.write_dims(f, ",")
    }
}

/// Broadcasts two shapes with NumPy's rules, or returns `None` when they are incompatible.
///
/// Over symbolic shapes the result keeps the expressions: a dim broadcast against a constant 1
/// is the other dim, two equal dims are that dim, and two different dims of equal sizes at
/// the hints are the symbolic one (the type rules then add the guard that they are equal).
pub fn broadcast_shapes(a: &Shape, b: &Shape) -> Option<Shape> {
    if a.is_symbolic() || b.is_symbolic() {
        return broadcast_symbolic(a, b);
    }
    let rank = a.rank().max(b.rank());
    let mut out: SmallVec<[usize; 4]> = SmallVec::with_capacity(rank);
    for i in 0..rank {
        // Align at the trailing dimension; missing leading dims are 1.
        let da = if i + a.rank() >= rank { a.0[i + a.rank() - rank] } else { 1 };
        let db = if i + b.rank() >= rank { b.0[i + b.rank() - rank] } else { 1 };
        out.push(match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        });
    }
    Some(Shape(out, None))
}

/// [`broadcast_shapes`] where a shape is symbolic.
fn broadcast_symbolic(a: &Shape, b: &Shape) -> Option<Shape> {
    let sizes = broadcast_shapes(&a.concrete(), &b.concrete())?;
    let rank = sizes.rank();
    let padded = |s: &Shape| -> Vec<Dim> {
        let mut d = vec![Dim::from(1u64); rank - s.rank()];
        d.extend(s.sym_dims());
        d
    };
    let (da, db) = (padded(a), padded(b));
    let dims: Vec<Dim> = da
        .into_iter()
        .zip(db)
        .map(|(x, y)| match (x.as_const(), y.as_const()) {
            (Some(1), _) => y,
            (_, Some(1)) | (None, _) => x,
            (Some(_), None) => y,
            (Some(_), Some(_)) => x,
        })
        .collect();
    Shape::symbolic(dims, sizes.dims()).ok()
}

/// PyTorch's `computeStride`: the strides a view of shape `new` would have over elements laid
/// out with shape `old` and strides `stride`, or `None` when no such view exists (a reshape that
/// merges dimensions a permutation or a slice made non-contiguous). The front end uses it to
/// fail `view` exactly where PyTorch does; the lowering uses it to fold reshapes into index maps.
/// Arithmetic wraps: sizes come from graphs that verified.
pub fn view_strides(old: &[usize], stride: &[i64], new: &[usize]) -> Option<Vec<i64>> {
    if old.is_empty() {
        return Some(vec![1; new.len()]);
    }
    if old.contains(&0) {
        // No element is ever read: any strides do.
        return Some(Shape::new(new).strides().iter().map(|&s| s as i64).collect());
    }
    let mut new_stride = vec![0i64; new.len()];
    let mut view_d = new.len() as isize - 1;
    let mut chunk_base_stride = stride[old.len() - 1];
    let (mut tensor_numel, mut view_numel) = (1i64, 1i64);
    for tensor_d in (0..old.len()).rev() {
        tensor_numel = tensor_numel.wrapping_mul(old[tensor_d] as i64);
        let chunk_ends = tensor_d == 0
            || (old[tensor_d - 1] != 1
                && stride[tensor_d - 1] != tensor_numel.wrapping_mul(chunk_base_stride));
        if chunk_ends {
            while view_d >= 0 && (view_numel < tensor_numel || new[view_d as usize] == 1) {
                new_stride[view_d as usize] = view_numel.wrapping_mul(chunk_base_stride);
                view_numel = view_numel.wrapping_mul(new[view_d as usize] as i64);
                view_d -= 1;
            }
            if view_numel != tensor_numel {
                return None;
            }
            if tensor_d > 0 {
                chunk_base_stride = stride[tensor_d - 1];
                tensor_numel = 1;
                view_numel = 1;
            }
        }
    }
    (view_d == -1).then_some(new_stride)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_follows_numpy() {
        let s = |d: &[usize]| Shape::new(d);
        assert_eq!(broadcast_shapes(&s(&[3, 1]), &s(&[3, 1])), Some(s(&[3, 1])));
        assert_eq!(broadcast_shapes(&s(&[2, 3]), &s(&[3])), Some(s(&[2, 3])));
        assert_eq!(broadcast_shapes(&s(&[4]), &s(&[4, 1])), Some(s(&[4, 4])));
        assert_eq!(broadcast_shapes(&s(&[]), &s(&[2, 5])), Some(s(&[2, 5])));
        assert_eq!(broadcast_shapes(&s(&[2, 3]), &s(&[4])), None);
        assert_eq!(broadcast_shapes(&s(&[0, 3]), &s(&[1, 3])), Some(s(&[0, 3])));
    }

    #[test]
    fn promotion_follows_torch() {
        use DType::*;
        assert_eq!(promote(I32, I64), I64);
        assert_eq!(promote(I64, F32), F32);
        assert_eq!(promote(F32, F64), F64);
        assert_eq!(promote(Bool, I32), I32);
        assert_eq!(promote(F16, BF16), F32);
        assert_eq!(promote(BF16, F16), F32);
        assert_eq!(promote(BF16, BF16), BF16);
        assert_eq!(promote(I64, BF16), BF16);
        assert_eq!(promote(F16, F32), F32);
        assert_eq!(promote(BF16, F64), F64);
        assert_eq!(promote_weak(BF16, Category::Float), BF16);
        assert_eq!(promote_weak(F16, Category::Int), F16);
        assert_eq!(promote_with_zero_dim(BF16, F32), BF16);
        assert_eq!(promote_with_zero_dim(I64, F16), F16);
        assert_eq!(promote_weak(F32, Category::Float), F32);
        assert_eq!(promote_weak(I32, Category::Int), I32);
        assert_eq!(promote_weak(I64, Category::Float), F32);
        assert_eq!(promote_weak(Bool, Category::Int), I64);
        assert_eq!(promote_weak(F64, Category::Int), F64);
        assert_eq!(promote_with_zero_dim(I32, I64), I32);
        assert_eq!(promote_with_zero_dim(F32, F64), F32);
        assert_eq!(promote_with_zero_dim(I32, F64), F64);
        assert_eq!(promote_with_zero_dim(Bool, I32), I32);
    }

    #[test]
    fn strides_are_row_major() {
        assert_eq!(Shape::new(&[2, 3, 4]).strides().as_slice(), &[12, 4, 1]);
        assert_eq!(Shape::scalar().strides().len(), 0);
    }
}
