//! Max pooling's library steps on the CPU (`max_pool2d_select`, `max_pool2d_scatter`): one
//! pass over each window, planes (`n, c`) split over the workers. Both compute what the
//! interpreter computes bit for bit: the selection copies an element, and the scatter adds a
//! plane's gradients in `f64` in row-major window order and rounds once, as it does.

use super::pool::{on_row_ranges, ExecError};
use tenjit_ir::ops::{PoolOp, PoolRole};
use tenjit_ir::{Data, Shape};

/// A float element read as `f64` and rounded back as the interpreter rounds (16-bit formats
/// through `f32`).
trait Elem: Copy + Default + Send + Sync {
    fn wide(self) -> f64;
    fn narrow(v: f64) -> Self;
}

impl Elem for f32 {
    fn wide(self) -> f64 {
        self as f64
    }
    fn narrow(v: f64) -> f32 {
        v as f32
    }
}

impl Elem for f64 {
    fn wide(self) -> f64 {
        self
    }
    fn narrow(v: f64) -> f64 {
        v
    }
}

impl Elem for half::f16 {
    fn wide(self) -> f64 {
        self.to_f64()
    }
    fn narrow(v: f64) -> half::f16 {
        half::f16::from_f32(v as f32)
    }
}

impl Elem for half::bf16 {
    fn wide(self) -> f64 {
        self.to_f64()
    }
    fn narrow(v: f64) -> half::bf16 {
        half::bf16::from_f32(v as f32)
    }
}

/// Runs max-pool op `op` on `x` and the other operand (dense, of dimensions `x_dims` and
/// `other_dims`) into `out`.
pub(super) fn run(
    op: &PoolOp,
    (x, x_dims): (&Data, &[usize]),
    (other, other_dims): (&Data, &[usize]),
    out: &mut Data,
) -> Result<(), ExecError> {
    let bug = |m: String| ExecError::internal(format!("{}: library routine bug: {m}", op.name()));
    let sizes = op
        .sizes(&Shape::from(x_dims.to_vec()), &Shape::from(other_dims.to_vec()))
        .map_err(|e| bug(e.to_string()))?;
    match (x, other, out) {
        (Data::F32(x), Data::F32(t), Data::F32(o)) => pool(op, sizes, x, t, o),
        (Data::F64(x), Data::F64(t), Data::F64(o)) => pool(op, sizes, x, t, o),
        (Data::F16(x), Data::F16(t), Data::F16(o)) => pool(op, sizes, x, t, o),
        (Data::BF16(x), Data::BF16(t), Data::BF16(o)) => pool(op, sizes, x, t, o),
        _ => return Err(bug("operands of mixed or non-float dtypes".into())),
    }
    .map_err(bug)
}

fn pool<T: Elem>(
    op: &PoolOp,
    (input, output): ([usize; 4], [usize; 4]),
    x: &[T],
    other: &[T],
    out: &mut [T],
) -> Result<(), String> {
    let [n, c, h, w] = input;
    let [_, _, oh, ow] = output;
    let (plane_in, plane_out) = (h * w, oh * ow);
    let (want_other, want_out) = match op.role {
        PoolRole::Select => (n * c * plane_in, n * c * plane_out),
        PoolRole::Scatter => (n * c * plane_out, n * c * plane_in),
    };
    if x.len() != n * c * plane_in || other.len() != want_other || out.len() != want_out {
        return Err(format!(
            "buffers of {}, {} and {} elements for sizes {input:?} -> {output:?}",
            x.len(),
            other.len(),
            out.len()
        ));
    }
    if out.is_empty() {
        return Ok(());
    }
    let planes = n * c;
    let work = planes * plane_out * op.geometry.kernel[0] * op.geometry.kernel[1];
    on_row_ranges(out, planes, work, |range, block| {
        let per = block.len() / range.len().max(1);
        let mut acc = Vec::new();
        for (plane, o) in range.zip(block.chunks_mut(per.max(1))) {
            let windows = (0..oh).flat_map(|i| (0..ow).map(move |j| (i, j)));
            match op.role {
                PoolRole::Select => {
                    for (dst, ij) in o.iter_mut().zip(windows) {
                        *dst = other[op.first_max(input, plane, ij, |k| x[k].wide())];
                    }
                }
                PoolRole::Scatter => {
                    acc.clear();
                    acc.resize(plane_in, 0.0f64);
                    let g = &other[plane * plane_out..][..plane_out];
                    for (&gv, ij) in g.iter().zip(windows) {
                        acc[op.first_max(input, plane, ij, |k| x[k].wide()) - plane * plane_in] += gv.wide();
                    }
                    for (dst, &v) in o.iter_mut().zip(&acc) {
                        *dst = T::narrow(v);
                    }
                }
            }
        }
        Ok(())
    })
}
