//! Random tensors from a counter-based generator (Philox4x32-10, see `tenjit_ir::random`).
//!
//! A global seed and a global counter define every draw: each call reserves as many counter
//! values as it has elements, and an element's value depends only on the seed and its counter.
//! So the same seed gives the same numbers on every backend, every run and every thread count.
//! `manual_seed` resets the counter. Normal variates use the Box–Muller transform of two uniform
//! draws.
//!
//! A uniform draw is a lazy `rand` op computed inside the kernel that consumes it (on the CPU
//! and on the GPU alike): no buffer of random numbers is written or copied. Its seed and
//! counter offset, reserved from the generator when the tensor is created, are the op's two
//! `i64[]` operands, constants that realization always lifts to runtime operands (never
//! folded, whatever their value), so a training loop drawing fresh numbers each step
//! (shuffles, dropout masks) compiles once. What is computed from the draws (`randn`'s
//! Box–Muller, `randint`'s scaling, dropout's mask) fuses with them.

use super::Tensor;
use crate::device::Device;
use crate::error::{Error, OrPanic, Result};
use std::sync::Mutex;
use tenjit_ir::{Buffer, DType, Op, Scalar, Shape, TensorType};

/// PyTorch's default initial seed.
const DEFAULT_SEED: u64 = 67_280_421_310_721;

static STATE: Mutex<(u64, u64)> = Mutex::new((DEFAULT_SEED, 0));

/// Seeds the generator and resets its counter, as `torch.manual_seed`.
///
/// ```
/// use tenjit::prelude::*;
/// tenjit::manual_seed(42);
/// let a = Tensor::rand([3]).to_vec::<f32>();
/// tenjit::manual_seed(42);
/// let b = Tensor::rand([3]).to_vec::<f32>();
/// assert_eq!(a, b);
/// ```
pub fn manual_seed(seed: u64) {
    let mut s = STATE.lock().unwrap_or_else(|p| p.into_inner());
    *s = (seed, 0);
}

thread_local! {
    /// How many reservations this thread has made: how [`crate::fori_loop`] sees that its body
    /// drew random numbers.
    static DRAWS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many reservations of counters this thread has made so far.
pub(crate) fn draws_on_this_thread() -> u64 {
    DRAWS.with(|d| d.get())
}

/// Reserves `n` counter values: returns (seed, first counter).
pub(crate) fn reserve(n: usize) -> (u64, u64) {
    DRAWS.with(|d| d.set(d.get() + 1));
    let mut s = STATE.lock().unwrap_or_else(|p| p.into_inner());
    let out = *s;
    s.1 = s.1.wrapping_add(n as u64);
    out
}

impl Tensor {
    /// A lazy `rand` of `shape` (`f64` for `F64`, else `f32`) drawing the next `numel`
    /// counters of the generator: element `i` is `tenjit_ir::random`'s draw of counter
    /// `offset + i` under the generator's seed.
    #[track_caller]
    fn uniform(shape: Shape, dtype: DType) -> Tensor {
        let dtype = if dtype == DType::F64 { DType::F64 } else { DType::F32 };
        let (seed, offset) = reserve(shape.numel());
        let word = |bits: u64| {
            let ty = TensorType::new(DType::I64, Shape::scalar());
            Tensor::from_op(Op::Const { value: Scalar::Int(bits as i64), ty }, &[]).or_panic()
        };
        let (seed, offset) = (word(seed), word(offset));
        Tensor::from_op(Op::Rand { ty: TensorType::new(dtype, shape) }, &[&seed, &offset]).or_panic()
    }

    /// Uniform `f32` values in `[0, 1)`, as `torch.rand`.
    #[track_caller]
    pub fn rand(shape: impl Into<Shape>) -> Tensor {
        Tensor::uniform(shape.into(), DType::F32)
    }

    /// Uniform values in `[0, 1)` of this tensor's shape (float dtypes keep theirs).
    #[track_caller]
    pub fn rand_like(&self) -> Tensor {
        let dtype = if self.dtype().is_float() { self.dtype() } else { DType::F32 };
        Tensor::uniform(self.ty_unrecorded().shape.clone(), dtype)
    }

    /// Standard normal `f32` values, as `torch.randn`.
    ///
    /// ```
    /// use tenjit::prelude::*;
    /// tenjit::manual_seed(0);
    /// let x = Tensor::randn([10000]);
    /// assert!(x.mean().item().abs() < 0.05);
    /// assert!((x.std().item() - 1.0).abs() < 0.05);
    /// ```
    #[track_caller]
    pub fn randn(shape: impl Into<Shape>) -> Tensor {
        Tensor::standard_normal(shape.into(), DType::F32)
    }

    /// Standard normal values of this tensor's shape.
    #[track_caller]
    pub fn randn_like(&self) -> Tensor {
        let dtype = if self.dtype().is_float() { self.dtype() } else { DType::F32 };
        Tensor::standard_normal(self.ty_unrecorded().shape.clone(), dtype)
    }

    #[track_caller]
    fn standard_normal(shape: Shape, dtype: DType) -> Tensor {
        // Box–Muller: sqrt(-2 ln(1 - u1)) * cos(2π u2); 1 - u1 lies in (0, 1], so the log is
        // finite.
        let u1 = Tensor::uniform(shape.clone(), dtype);
        let u2 = Tensor::uniform(shape, dtype);
        let radius = u1.rsub(1.0).log().mul(-2.0).sqrt();
        radius.mul(u2.mul(std::f64::consts::TAU).cos())
    }

    /// Normal values with the given mean and standard deviation, as `torch.normal`.
    #[track_caller]
    pub fn normal(mean: f64, std: f64, shape: impl Into<Shape>) -> Tensor {
        Tensor::randn(shape).mul(std).add(mean)
    }

    /// Uniform integers in `[low, high)` (`i64`), as `torch.randint`.
    #[track_caller]
    pub fn randint(low: i64, high: i64, shape: impl Into<Shape>) -> Tensor {
        Tensor::try_randint(low, high, shape).or_panic()
    }

    /// [`Tensor::randint`] as a `Result`: fails unless `low < high`.
    #[track_caller]
    pub fn try_randint(low: i64, high: i64, shape: impl Into<Shape>) -> Result<Tensor> {
        if low >= high {
            return Err(Error::op(
                "randint",
                format!("random_ expects 'from' to be less than 'to', but got from={low} >= to={high}"),
            ));
        }
        let u = Tensor::uniform(shape.into(), DType::F64);
        // floor(u * (high - low)) + low, computed in f64 (exact for ranges below 2^53).
        Ok(u.mul((high - low) as f64).floor().to_dtype(DType::I64).add(low))
    }

    /// A random permutation of `0..n` (`i64`), as `torch.randperm`: the argsort of `n`
    /// uniform draws. The sort runs on the host, so the `f64` draws are made there too (the
    /// same numbers a `rand` of `n` elements gives, with no program to compile).
    #[track_caller]
    pub fn randperm(n: usize) -> Tensor {
        let (seed, offset) = reserve(n);
        let keys: Vec<f64> =
            (0..n as u64).map(|i| tenjit_ir::random::uniform_f64(seed, offset.wrapping_add(i))).collect();
        let mut idx: Vec<i64> = (0..n as i64).collect();
        idx.sort_by(|&a, &b| keys[a as usize].total_cmp(&keys[b as usize]).then(a.cmp(&b)));
        Tensor::from_buffer(Buffer::from_vec(idx, [n]).expect("n indices"), Device::Cpu)
    }
}
