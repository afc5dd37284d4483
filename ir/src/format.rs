//! Prints a [`Buffer`] exactly as PyTorch prints a tensor (`repr(t)`, `print(t)`).
//!
//! This is a faithful port of `torch/_tensor_str.py` for the dtypes tenjit has. A
//! `Formatter` looks at the elements that will be shown (all of them, or the summarized edges
//! when the tensor has more than `threshold` elements) and decides once for the whole tensor:
//!
//! * integers and booleans print with Python's `str`, right-aligned to the widest element;
//! * floats whose finite non-zero values are all integral print as `5.` (*int mode*);
//! * otherwise floats print with `precision` decimals (`0.1000`), unless the ratio of the
//!   largest to the smallest magnitude exceeds 1000, the largest exceeds `1e8` or (outside int
//!   mode) the smallest is below `1e-4`, in which case they print in scientific notation
//!   (`1.0000e+05`); `nan`, `inf` and `-inf` print as Python prints them.
//!
//! Every element is padded to one common width, rows break at `linewidth`, blocks of 3-D and
//! higher tensors are separated by blank lines, and summarized dimensions show `...`. The
//! text ends with PyTorch's suffixes: `dtype=` when the dtype is not the default of its kind
//! (`float32`, `int64` and `bool` are not printed), `size=` for empty tensors of shape other
//! than `(0,)`, and whatever the caller adds (`requires_grad=True`, `grad_fn=<AddBackward0>`).
//! Float elements are formatted from their exact value widened to `f64`, as Python's `float`
//! of a `torch.float32` element is, with round-half-to-even on that exact value as Python does.

use crate::buffer::Buffer;
use crate::ops::Scalar;
use crate::types::DType;
use std::fmt;

/// The printing options of `torch.set_printoptions`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrintOptions {
    /// Digits after the decimal point of float elements (torch default 4).
    pub precision: usize,
    /// Tensors with more than this many elements are summarized (torch default 1000; torch's
    /// `inf` is `usize::MAX` here).
    pub threshold: usize,
    /// Elements shown at each edge of a summarized dimension (torch default 3).
    pub edgeitems: usize,
    /// Characters per line before a row of elements wraps (torch default 80).
    pub linewidth: usize,
    /// Forces scientific notation on (`Some(true)`) or off (`Some(false)`); `None` lets the
    /// formatter decide, as torch does by default.
    pub sci_mode: Option<bool>,
}

impl Default for PrintOptions {
    /// torch's defaults: `precision=4, threshold=1000, edgeitems=3, linewidth=80`.
    fn default() -> PrintOptions {
        PrintOptions { precision: 4, threshold: 1000, edgeitems: 3, linewidth: 80, sci_mode: None }
    }
}

impl PrintOptions {
    /// torch's `profile="short"`: two decimals and two edge items.
    pub fn short() -> PrintOptions {
        PrintOptions { precision: 2, edgeitems: 2, ..PrintOptions::default() }
    }

    /// torch's `profile="full"`: never summarize.
    pub fn full() -> PrintOptions {
        PrintOptions { threshold: usize::MAX, ..PrintOptions::default() }
    }
}

/// Prints `b` as `repr(tensor)` does, e.g. `tensor([1., 2.], dtype=torch.float64)`.
pub fn format_tensor(b: &Buffer, opts: &PrintOptions) -> String {
    format_tensor_with(b, opts, &[])
}

/// Prints `b` as [`format_tensor`] does, followed by `extra` suffixes after the dtype, in
/// order (the front end passes e.g. `requires_grad=True` or `grad_fn=<AddBackward0>`). Each
/// suffix goes on the last line after `, ` or, when that line would exceed `linewidth`, on a
/// new line indented under the first element, as torch's `_add_suffixes` does.
pub fn format_tensor_with(b: &Buffer, opts: &PrintOptions, extra: &[String]) -> String {
    const PREFIX: &str = "tensor(";
    let indent = PREFIX.len();
    let dtype = b.dtype();
    let mut suffixes: Vec<String> = Vec::new();
    let body = if b.numel() == 0 {
        // torch: print the shape unless it is (0,), and the dtype unless it is the default
        // float dtype (an empty tensor has no elements to show that it is an integer tensor).
        if b.shape().rank() != 1 {
            suffixes.push(format!("size={}", python_tuple(b.shape().dims())));
        }
        if dtype != DType::F32 {
            suffixes.push(format!("dtype={}", dtype.torch_name()));
        }
        "[]".to_string()
    } else {
        if opts.edgeitems == 0 {
            suffixes.push(format!("size={}", python_tuple(b.shape().dims())));
        }
        if !matches!(dtype, DType::F32 | DType::I64 | DType::Bool) {
            suffixes.push(format!("dtype={}", dtype.torch_name()));
        }
        Printer::new(b, opts).tensor_str(indent)
    };
    suffixes.extend(extra.iter().cloned());
    add_suffixes(format!("{PREFIX}{body}"), &suffixes, indent, opts.linewidth)
}

impl fmt::Display for Buffer {
    /// Prints the buffer as `print(tensor)` does with torch's default print options.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_tensor(self, &PrintOptions::default()))
    }
}

/// torch's `_add_suffixes`, including its count of the last line's length (one more than the
/// characters after the last newline, or two more than the whole text when there is none).
fn add_suffixes(mut text: String, suffixes: &[String], indent: usize, linewidth: usize) -> String {
    let last_newline = text.rfind('\n').map_or(-1, |i| i as i64);
    let mut last_line_len = char_len(&text) as i64 - last_newline + 1;
    for suffix in suffixes {
        let suffix_len = char_len(suffix) as i64;
        if last_line_len + suffix_len + 2 > linewidth as i64 {
            text.push_str(",\n");
            text.extend(std::iter::repeat_n(' ', indent));
            text.push_str(suffix);
            last_line_len = indent as i64 + suffix_len;
        } else {
            text.push_str(", ");
            text.push_str(suffix);
            last_line_len += suffix_len + 2;
        }
    }
    text.push(')');
    text
}

/// Python's `len` of a string: its number of characters.
fn char_len(s: &str) -> usize {
    s.chars().count()
}

/// Python's `str(tuple(shape))`: `(0, 3)`, `(5,)`, `()`.
fn python_tuple(dims: &[usize]) -> String {
    match dims {
        [] => "()".to_string(),
        [d] => format!("({d},)"),
        _ => {
            let parts: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
            format!("({})", parts.join(", "))
        }
    }
}

/// The element printer of one tensor: torch's `_Formatter`.
struct Formatter {
    floating: bool,
    int_mode: bool,
    sci_mode: bool,
    max_width: usize,
    precision: usize,
}

impl Formatter {
    /// Decides the mode and width from the elements that will be shown.
    fn new(floating: bool, values: impl Iterator<Item = Scalar>, opts: &PrintOptions) -> Formatter {
        // A format precision must fit in `u16`; past f64's longest exact expansion (767
        // significant digits) more digits are zeros anyway.
        let precision = opts.precision.min(u16::MAX as usize);
        let mut f = Formatter { floating, int_mode: true, sci_mode: false, max_width: 1, precision };
        if !floating {
            for v in values {
                f.max_width = f.max_width.max(char_len(&plain(v)));
            }
            return f;
        }
        let nonzero_finite: Vec<f64> =
            values.map(|v| v.as_f64()).filter(|x| x.is_finite() && *x != 0.0).collect();
        if nonzero_finite.is_empty() {
            // torch returns here, before applying a forced `sci_mode`.
            return f;
        }
        let (min, max) = nonzero_finite
            .iter()
            .fold((f64::INFINITY, 0.0f64), |(lo, hi), x| (lo.min(x.abs()), hi.max(x.abs())));
        // Every element is an f32 or f64 value held exactly in an f64, so `ceil` in f64 is the
        // `ceil` torch computes in the element type.
        f.int_mode = nonzero_finite.iter().all(|x| *x == x.ceil());
        let too_wide = max / min > 1000.0 || max > 1.0e8;
        if f.int_mode {
            if too_wide {
                f.sci_mode = true;
                f.max_width = widest(&nonzero_finite, |x| sci(x, precision));
            } else {
                f.max_width = widest(&nonzero_finite, |x| fixed(x, 0)) + 1;
            }
        } else if too_wide || min < 1.0e-4 {
            f.sci_mode = true;
            f.max_width = widest(&nonzero_finite, |x| sci(x, precision));
        } else {
            f.max_width = widest(&nonzero_finite, |x| fixed(x, precision));
        }
        if let Some(forced) = opts.sci_mode {
            f.sci_mode = forced;
        }
        f
    }

    /// Width of one element, the same for all.
    fn width(&self) -> usize {
        self.max_width
    }

    /// One element, right-aligned to the common width.
    fn format(&self, v: Scalar) -> String {
        let text = if self.floating {
            let x = v.as_f64();
            if self.sci_mode {
                sci(x, self.precision)
            } else if self.int_mode {
                let mut t = fixed(x, 0);
                if x.is_finite() {
                    t.push('.');
                }
                t
            } else {
                fixed(x, self.precision)
            }
        } else {
            plain(v)
        };
        pad(text, self.max_width)
    }
}

/// The largest `char_len` of `render(x)` over `xs` (at least 1).
fn widest(xs: &[f64], render: impl Fn(f64) -> String) -> usize {
    xs.iter().map(|x| char_len(&render(*x))).max().unwrap_or(1).max(1)
}

/// Left-pads `text` with spaces to `width` characters.
fn pad(text: String, width: usize) -> String {
    let len = char_len(&text);
    if len >= width {
        text
    } else {
        let mut out = " ".repeat(width - len);
        out.push_str(&text);
        out
    }
}

/// Python's `str` of an integer or boolean element: `3`, `-7`, `True`.
fn plain(v: Scalar) -> String {
    match v {
        Scalar::Bool(true) => "True".to_string(),
        Scalar::Bool(false) => "False".to_string(),
        Scalar::Int(i) => i.to_string(),
        Scalar::Float(x) => nonfinite(x).unwrap_or_else(|| x.to_string()),
    }
}

/// Python's text for a non-finite float (`nan`, `inf`, `-inf`), or `None` for finite ones.
fn nonfinite(x: f64) -> Option<String> {
    if x.is_nan() {
        Some("nan".to_string())
    } else if x.is_infinite() {
        Some(if x > 0.0 { "inf" } else { "-inf" }.to_string())
    } else {
        None
    }
}

/// Python's `'{:.Nf}'.format(x)`.
fn fixed(x: f64, precision: usize) -> String {
    nonfinite(x).unwrap_or_else(|| format!("{x:.precision$}"))
}

/// Python's `'{:.Ne}'.format(x)`: a signed exponent of at least two digits, `1.0000e+05`.
fn sci(x: f64, precision: usize) -> String {
    if let Some(t) = nonfinite(x) {
        return t;
    }
    let rust = format!("{x:.precision$e}");
    let (mantissa, exp) = rust.split_once('e').unwrap_or((&rust, "0"));
    let (sign, digits) = match exp.strip_prefix('-') {
        Some(d) => ('-', d),
        None => ('+', exp),
    };
    format!("{mantissa}e{sign}{digits:0>2}")
}

/// Walks one non-empty buffer as `_tensor_str` does.
struct Printer<'a> {
    buffer: &'a Buffer,
    dims: Vec<usize>,
    strides: Vec<usize>,
    opts: &'a PrintOptions,
    summarize: bool,
    formatter: Formatter,
}

impl<'a> Printer<'a> {
    fn new(buffer: &'a Buffer, opts: &'a PrintOptions) -> Printer<'a> {
        let dims = buffer.shape().dims().to_vec();
        let strides = buffer.shape().strides().to_vec();
        let summarize = buffer.numel() > opts.threshold;
        let floating = buffer.dtype().is_float();
        let formatter = if summarize {
            let mut shown = Vec::new();
            summarized_indices(&dims, &strides, 0, 0, opts.edgeitems, &mut shown);
            Formatter::new(floating, shown.into_iter().map(|i| buffer.scalar(i)), opts)
        } else {
            Formatter::new(floating, (0..buffer.numel()).map(|i| buffer.scalar(i)), opts)
        };
        Printer { buffer, dims, strides, opts, summarize, formatter }
    }

    /// The bracketed body, as `_tensor_str(self, indent)`.
    fn tensor_str(&self, indent: usize) -> String {
        if self.dims.is_empty() {
            return self.formatter.format(self.buffer.scalar(0));
        }
        self.with_formatter(0, 0, indent)
    }

    /// `_tensor_str_with_formatter` for the sub-tensor at `offset` spanning dims `dim..`.
    fn with_formatter(&self, dim: usize, offset: usize, indent: usize) -> String {
        let rank = self.dims.len();
        if dim + 1 == rank {
            return self.vector_str(offset, indent);
        }
        let size = self.dims[dim];
        let edge = self.opts.edgeitems;
        let sub = |i: usize| self.with_formatter(dim + 1, offset + i * self.strides[dim], indent + 1);
        let slices: Vec<String> = if self.summarize && size > edge.saturating_mul(2) {
            let mut s: Vec<String> = (0..edge).map(sub).collect();
            s.push("...".to_string());
            s.extend((size - edge..size).map(sub));
            s
        } else {
            (0..size).map(sub).collect()
        };
        let sep = format!(",{}{}", "\n".repeat(rank - dim - 1), " ".repeat(indent + 1));
        format!("[{}]", slices.join(&sep))
    }

    /// `_vector_str` for the last dimension starting at `offset`.
    fn vector_str(&self, offset: usize, indent: usize) -> String {
        let element_length = self.formatter.width() + 2;
        let per_line =
            ((self.opts.linewidth as i64 - indent as i64).div_euclid(element_length as i64)).max(1) as usize;
        let size = self.dims[self.dims.len() - 1];
        let edge = self.opts.edgeitems;
        let at = |i: usize| self.formatter.format(self.buffer.scalar(offset + i));
        let data: Vec<String> = if self.summarize && edge == 0 {
            vec!["...".to_string()]
        } else if self.summarize && size > edge.saturating_mul(2) {
            let mut d: Vec<String> = (0..edge).map(at).collect();
            d.push(" ...".to_string());
            d.extend((size - edge..size).map(at));
            d
        } else {
            (0..size).map(at).collect()
        };
        let lines: Vec<String> = data.chunks(per_line).map(|line| line.join(", ")).collect();
        format!("[{}]", lines.join(&format!(",\n{}", " ".repeat(indent + 1))))
    }
}

/// Flat indices of the elements torch's `get_summarized_data` keeps, in order, for the
/// sub-tensor at `offset` spanning dims `dim..`.
fn summarized_indices(
    dims: &[usize],
    strides: &[usize],
    dim: usize,
    offset: usize,
    edge: usize,
    out: &mut Vec<usize>,
) {
    let rank = dims.len();
    if rank == 0 {
        out.push(offset);
        return;
    }
    let size = dims[dim];
    let stride = strides[dim];
    let both_edges = |edge: usize| -> Vec<usize> {
        if size > edge.saturating_mul(2) {
            // Python's `self[-0:]` is the whole dimension, so with `edgeitems = 0` a 1-D
            // tensor keeps all its elements.
            let tail = if edge == 0 { 0..size } else { size - edge..size };
            (0..edge).chain(tail).collect()
        } else {
            (0..size).collect()
        }
    };
    if dim + 1 == rank {
        out.extend(both_edges(edge).into_iter().map(|i| offset + i * stride));
    } else if edge > 0 {
        // With no edge items torch keeps nothing of a tensor of rank 2 or more (`new_empty`).
        for i in both_edges(edge) {
            summarized_indices(dims, strides, dim + 1, offset + i * stride, edge, out);
        }
    }
}
