//! The convolution library steps on the CPU (`conv2d`, `conv2d_input`, `conv2d_weight`), as
//! matrix products on one image at a time, so no batch-sized im2col matrix is ever built:
//!
//! - `conv2d`: for each image and group, the image's windows are unfolded into a
//!   `[C/G·kH·kW, OH·OW]` scratch matrix (im2col; a 1×1 kernel with stride 1 and no padding
//!   uses the image itself) and multiplied by the group's `[O/G, C/G·kH·kW]` weight straight
//!   into the output;
//! - `conv2d_input`: the group's transposed weight times the image's output gradient gives the
//!   window-shaped gradient, which is folded back (col2im) by adding each tap into the input
//!   gradient;
//! - `conv2d_weight`: the image's output gradient times its transposed windows, accumulated
//!   over the images.
//!
//! Images are split over the workers (each with its own scratch; the weight gradient's
//! per-worker partial sums are added in worker order, so a run is deterministic for a given
//! thread count); a batch smaller than the workers gives them to each product instead. Float
//! sums run in the element type with the `gemm` kernels' fused multiply-adds, so results match
//! the interpreter (which sums in `f64`) to a matmul's tolerance; `f16` and `bf16` operands are
//! widened to `f32` and the result rounded once, as torch's CPU kernels do.

use super::gemm::{gemm_into, Float, Mat};
use super::pool::{on_row_ranges, threads, ExecError};
use tenjit_ir::ops::{ConvOp, ConvRole, ConvSizes};
use tenjit_ir::Data;

/// Runs convolution `op` on operands `a` and `b` (dense, of the op's operand shapes `a_dims`
/// and `b_dims`) into `out`.
pub(super) fn run(
    op: &ConvOp,
    (a, a_dims): (&Data, &[usize]),
    (b, b_dims): (&Data, &[usize]),
    out: &mut Data,
) -> Result<(), ExecError> {
    let shape = |d: &[usize]| tenjit_ir::Shape::from(d.to_vec());
    let s = op
        .sizes(&shape(a_dims), &shape(b_dims))
        .map_err(|e| ExecError::internal(format!("{}: library routine bug: {e}", op.name())))?;
    let conv = Conv { op, s, threads: threads() };
    let bug = || ExecError::internal(format!("{}: library routine bug: operands of mixed dtypes", op.name()));
    match (a, b, out) {
        (Data::F32(a), Data::F32(b), Data::F32(o)) => conv.run(a, b, o),
        (Data::F64(a), Data::F64(b), Data::F64(o)) => conv.run(a, b, o),
        (Data::F16(a), Data::F16(b), Data::F16(o)) => {
            let widen = |v: &[half::f16]| v.iter().map(|x| x.to_f32()).collect::<Vec<f32>>();
            let mut wide = vec![0f32; o.len()];
            conv.run(&widen(a), &widen(b), &mut wide)?;
            o.iter_mut().zip(wide).for_each(|(o, x)| *o = half::f16::from_f32(x));
            Ok(())
        }
        (Data::BF16(a), Data::BF16(b), Data::BF16(o)) => {
            let widen = |v: &[half::bf16]| v.iter().map(|x| x.to_f32()).collect::<Vec<f32>>();
            let mut wide = vec![0f32; o.len()];
            conv.run(&widen(a), &widen(b), &mut wide)?;
            o.iter_mut().zip(wide).for_each(|(o, x)| *o = half::bf16::from_f32(x));
            Ok(())
        }
        _ => Err(bug()),
    }
}

/// [`run`] on dense slices of one element type (`f32` or `f64`), on up to `threads`
/// threads: what a row group runs on a block of images (`a_dims[0]` of them), one thread
/// each.
pub(super) fn run_slices<T: Float>(
    op: &ConvOp,
    (a, a_dims): (&[T], &[usize]),
    (b, b_dims): (&[T], &[usize]),
    out: &mut [T],
    threads: usize,
) -> Result<(), ExecError> {
    let shape = |d: &[usize]| tenjit_ir::Shape::from(d.to_vec());
    let s = op
        .sizes(&shape(a_dims), &shape(b_dims))
        .map_err(|e| ExecError::internal(format!("{}: library routine bug: {e}", op.name())))?;
    Conv { op, s, threads }.run(a, b, out)
}

/// One convolution's op, sizes and thread budget.
struct Conv<'a> {
    op: &'a ConvOp,
    s: ConvSizes,
    threads: usize,
}

impl Conv<'_> {
    fn run<T: Float>(&self, a: &[T], b: &[T], out: &mut [T]) -> Result<(), ExecError> {
        let numel = |d: [usize; 4]| d.iter().product::<usize>();
        let (want_a, want_b, want_out) = match self.op.role {
            ConvRole::Forward => (numel(self.s.input), numel(self.s.weight), numel(self.s.output)),
            ConvRole::Input { .. } => (numel(self.s.output), numel(self.s.weight), numel(self.s.input)),
            ConvRole::Weight { .. } => (numel(self.s.input), numel(self.s.output), numel(self.s.weight)),
        };
        if (a.len(), b.len(), out.len()) != (want_a, want_b, want_out) {
            return Err(ExecError::internal(format!(
                "{}: library routine bug: buffers of {} and {} elements into {}, for sizes {:?}",
                self.op.name(),
                a.len(),
                b.len(),
                out.len(),
                self.s
            )));
        }
        let [n, ..] = self.s.input;
        if out.is_empty() || n == 0 {
            out.fill(T::default());
            return Ok(());
        }
        match self.op.role {
            ConvRole::Forward => self.by_image(out, n, |img, y, gemm_threads, cols| {
                self.forward_image(&a[img * self.image_len()..][..self.image_len()], b, y, cols, gemm_threads)
            }),
            ConvRole::Input { .. } => {
                let dy_len = self.s.output[1..].iter().product::<usize>();
                self.by_image(out, n, |img, dx, gemm_threads, cols| {
                    self.input_image(&a[img * dy_len..][..dy_len], b, dx, cols, gemm_threads)
                })
            }
            ConvRole::Weight { .. } => self.weight(a, b, out),
        }
    }

    /// `C·H·W`: one image's input elements.
    fn image_len(&self) -> usize {
        self.s.input[1..].iter().product()
    }

    /// `(C/G·kH·kW, OH·OW)`: the rows and columns of one group's window matrix.
    fn window_dims(&self) -> (usize, usize) {
        let [_, cg, kh, kw] = self.s.weight;
        (cg * kh * kw, self.s.output[2] * self.s.output[3])
    }

    /// Whether the window matrix of a group is the image's channels themselves.
    fn windows_are_input(&self) -> bool {
        let g = &self.op.geometry;
        self.s.weight[2..] == [1, 1] && g.stride == [1, 1] && g.padding == [0, 0]
    }

    /// Runs `task(image, its rows of out, threads for its products, scratch)` for every image,
    /// `out` being one equal block per image: images split over the workers, or one after the
    /// other with every worker on each product when there are fewer images than workers.
    fn by_image<T: Float>(
        &self,
        out: &mut [T],
        n: usize,
        task: impl Fn(usize, &mut [T], usize, &mut Vec<T>) -> Result<(), ExecError> + Sync + Send,
    ) -> Result<(), ExecError> {
        if n < self.threads || self.threads <= 1 {
            let mut cols = Vec::new();
            let per = out.len() / n;
            for (img, block) in out.chunks_mut(per).enumerate() {
                task(img, block, self.threads, &mut cols)?;
            }
            return Ok(());
        }
        let work = out.len().saturating_mul(self.window_dims().0.max(1));
        on_row_ranges(out, n, work, |rows, block| {
            let mut cols = Vec::new();
            let per = block.len() / rows.len().max(1);
            for (img, y) in rows.zip(block.chunks_mut(per.max(1))) {
                task(img, y, 1, &mut cols)?;
            }
            Ok(())
        })
    }

    /// For kernel column `q`: the output columns `j0..j1` whose input column
    /// `j·stride + q·dilation − padding` lies inside the input, and the input column of `j0`.
    fn columns(&self, q: usize) -> (usize, usize, usize) {
        let g = &self.op.geometry;
        let (w, ow) = (self.s.input[3], self.s.output[3]);
        let (s, off) = (g.stride[1], q * g.dilation[1]);
        // Smallest j with j·s + off ≥ padding; then the first j with j·s + off − padding ≥ w.
        let j0 = g.padding[1].saturating_sub(off).div_ceil(s).min(ow);
        let j1 = (w + g.padding[1]).saturating_sub(off).div_ceil(s).clamp(j0, ow);
        (j0, j1, (j0 * s + off).saturating_sub(g.padding[1]))
    }

    /// Unfolds group `grp` of one image `x` (`[C, H, W]`) into `cols` as the row-major
    /// `[C/G·kH·kW, OH·OW]` window matrix, zeros where a window reaches into the padding.
    fn im2col<T: Float>(&self, x: &[T], grp: usize, cols: &mut Vec<T>) {
        let [_, _, h, w] = self.s.input;
        let [_, cg, kh, kw] = self.s.weight;
        let [_, _, oh, ow] = self.s.output;
        let g = &self.op.geometry;
        let (rows, l) = self.window_dims();
        cols.clear();
        cols.resize(rows * l, T::default());
        for ci in 0..cg {
            let plane = &x[(grp * cg + ci) * h * w..][..h * w];
            for p in 0..kh {
                for q in 0..kw {
                    let row = &mut cols[((ci * kh + p) * kw + q) * l..][..l];
                    for i in 0..oh {
                        let Some(ih) = (i * g.stride[0] + p * g.dilation[0]).checked_sub(g.padding[0]) else {
                            continue;
                        };
                        if ih >= h {
                            continue;
                        }
                        let src = &plane[ih * w..][..w];
                        let dst = &mut row[i * ow..][..ow];
                        let (j0, j1, first) = self.columns(q);
                        if g.stride[1] == 1 {
                            dst[j0..j1].copy_from_slice(&src[first..first + (j1 - j0)]);
                        } else {
                            for (d, iw) in dst[j0..j1].iter_mut().zip((first..).step_by(g.stride[1])) {
                                *d = src[iw];
                            }
                        }
                    }
                }
            }
        }
    }

    /// Adds the window-shaped gradient `cols` (`[C/G·kH·kW, OH·OW]`) of group `grp` into one
    /// image's input gradient `dx` (`[C, H, W]`): the transpose of [`Conv::im2col`].
    fn col2im<T: Float>(&self, cols: &[T], grp: usize, dx: &mut [T]) {
        let [_, _, h, w] = self.s.input;
        let [_, cg, kh, kw] = self.s.weight;
        let [_, _, oh, ow] = self.s.output;
        let g = &self.op.geometry;
        let l = oh * ow;
        for ci in 0..cg {
            let plane = &mut dx[(grp * cg + ci) * h * w..][..h * w];
            for p in 0..kh {
                for q in 0..kw {
                    let row = &cols[((ci * kh + p) * kw + q) * l..][..l];
                    for i in 0..oh {
                        let Some(ih) = (i * g.stride[0] + p * g.dilation[0]).checked_sub(g.padding[0]) else {
                            continue;
                        };
                        if ih >= h {
                            continue;
                        }
                        let dst = &mut plane[ih * w..][..w];
                        let (j0, j1, first) = self.columns(q);
                        let src = &row[i * ow..][j0..j1];
                        if g.stride[1] == 1 {
                            for (d, &v) in dst[first..first + (j1 - j0)].iter_mut().zip(src) {
                                *d += v;
                            }
                        } else {
                            for (&v, iw) in src.iter().zip((first..).step_by(g.stride[1])) {
                                dst[iw] += v;
                            }
                        }
                    }
                }
            }
        }
    }

    /// `y` (`[O, OH·OW]`, one image's output) from the image `x` and the weight `wt`.
    fn forward_image<T: Float>(
        &self,
        x: &[T],
        wt: &[T],
        y: &mut [T],
        cols: &mut Vec<T>,
        threads: usize,
    ) -> Result<(), ExecError> {
        let (rows, l) = self.window_dims();
        let og = self.s.weight[0] / self.op.geometry.groups;
        for grp in 0..self.op.geometry.groups {
            let windows = if self.windows_are_input() {
                Mat { data: &x[grp * rows * l..][..rows * l], rs: l, cs: 1 }
            } else {
                self.im2col(x, grp, cols);
                Mat { data: cols.as_slice(), rs: l, cs: 1 }
            };
            let w = Mat { data: &wt[grp * og * rows..][..og * rows], rs: rows, cs: 1 };
            gemm_into((og, l, rows), w, windows, &mut y[grp * og * l..][..og * l], false, threads)
                .map_err(|e| self.gemm_error(e))?;
        }
        Ok(())
    }

    /// `dx` (`[C, H, W]`, one image's input gradient) from the image's output gradient `dy`
    /// (`[O, OH·OW]`) and the weight `wt`.
    fn input_image<T: Float>(
        &self,
        dy: &[T],
        wt: &[T],
        dx: &mut [T],
        cols: &mut Vec<T>,
        threads: usize,
    ) -> Result<(), ExecError> {
        let (rows, l) = self.window_dims();
        let og = self.s.weight[0] / self.op.geometry.groups;
        dx.fill(T::default());
        for grp in 0..self.op.geometry.groups {
            // The group's weight `[O/G, rows]` read transposed, `[rows, O/G]`.
            let w = Mat { data: &wt[grp * og * rows..][..og * rows], rs: 1, cs: rows };
            let g = Mat { data: &dy[grp * og * l..][..og * l], rs: l, cs: 1 };
            if self.windows_are_input() {
                let block = &mut dx[grp * rows * l..][..rows * l];
                gemm_into((rows, l, og), w, g, block, false, threads).map_err(|e| self.gemm_error(e))?;
            } else {
                cols.clear();
                cols.resize(rows * l, T::default());
                gemm_into((rows, l, og), w, g, cols, false, threads).map_err(|e| self.gemm_error(e))?;
                self.col2im(cols, grp, dx);
            }
        }
        Ok(())
    }

    /// The weight gradient `dw` (`[O, C/G, kH, kW]`) from the input `x` and the output
    /// gradient `dy`, summed over the images: each worker sums a contiguous range of images
    /// into its own partial, and the partials are added in worker order.
    fn weight<T: Float>(&self, x: &[T], dy: &[T], dw: &mut [T]) -> Result<(), ExecError> {
        let n = self.s.input[0];
        let parts = self.threads.min(n).max(1);
        let per = n.div_ceil(parts);
        let gemm_threads = if parts == 1 { self.threads } else { 1 };
        let partial = |t: usize| -> Result<Vec<T>, ExecError> {
            let mut acc = vec![T::default(); dw.len()];
            let mut cols = Vec::new();
            for img in t * per..((t + 1) * per).min(n) {
                self.weight_image(x, dy, img, &mut acc, &mut cols, gemm_threads)?;
            }
            Ok(acc)
        };
        use rayon::prelude::*;
        let sums: Vec<Vec<T>> = (0..parts).into_par_iter().map(partial).collect::<Result<_, _>>()?;
        dw.fill(T::default());
        for part in sums {
            for (d, p) in dw.iter_mut().zip(part) {
                *d += p;
            }
        }
        Ok(())
    }

    /// Adds image `img`'s term of the weight gradient into `acc`.
    fn weight_image<T: Float>(
        &self,
        x: &[T],
        dy: &[T],
        img: usize,
        acc: &mut [T],
        cols: &mut Vec<T>,
        threads: usize,
    ) -> Result<(), ExecError> {
        let (rows, l) = self.window_dims();
        let og = self.s.weight[0] / self.op.geometry.groups;
        let image = &x[img * self.image_len()..][..self.image_len()];
        let dy = &dy[img * self.s.output[1] * l..][..self.s.output[1] * l];
        for grp in 0..self.op.geometry.groups {
            // The windows `[rows, l]` read transposed, `[l, rows]`.
            let windows = if self.windows_are_input() {
                Mat { data: &image[grp * rows * l..][..rows * l], rs: 1, cs: l }
            } else {
                self.im2col(image, grp, cols);
                Mat { data: cols.as_slice(), rs: 1, cs: l }
            };
            let g = Mat { data: &dy[grp * og * l..][..og * l], rs: l, cs: 1 };
            gemm_into((og, rows, l), g, windows, &mut acc[grp * og * rows..][..og * rows], true, threads)
                .map_err(|e| self.gemm_error(e))?;
        }
        Ok(())
    }

    fn gemm_error(&self, e: crate::Error) -> ExecError {
        ExecError::internal(format!("{}: library routine bug: {e}", self.op.name()))
    }
}
