//! Reads and writes NumPy `.npy` files as [`Buffer`]s.
//!
//! The format is NumPy's `numpy.lib.format`: the magic `\x93NUMPY`, a version byte pair, a
//! little-endian header length (2 bytes in version 1.0, 4 bytes in 2.0 and 3.0), a header that
//! is a Python dict literal such as `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }`,
//! then the raw elements.
//!
//! * Reading accepts versions 1.0, 2.0 and 3.0; the dtypes `f2`, `f4`, `f8`, `i4`, `i8` and `b1` in
//!   either byte order (big-endian data is byte-swapped); C or Fortran order (Fortran-order data
//!   is reordered to row-major); any shape, including `()` and empty ones. Anything else is an
//!   [`NpyError`] that says what was wrong and at which byte, and names the file when reading
//!   by path. No input makes the reader panic, and a header that claims more data than the
//!   input holds is reported without allocating for the claim.
//! * Writing produces what `numpy.save` produces, byte for byte: version 1.0 (2.0 when the
//!   header does not fit in 65535 bytes), little-endian, C order, a header padded with spaces
//!   so that the data starts at a multiple of 64 bytes. `f16` is `<f2`; `bf16` has no NumPy
//!   dtype (ml_dtypes' `bfloat16` saves as untyped `<V2` bytes that read back as void), so
//!   writing one is an error that names the dtype and says to cast to `f32` first.

use crate::buffer::{Buffer, Data};
use crate::types::{DType, Shape};
use std::fmt;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// The first six bytes of every `.npy` file.
const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// The data of a written file starts at a multiple of this many bytes, as NumPy aligns it.
const ALIGN: usize = 64;
/// NumPy leaves room in the header for the leading dimension to grow to this many digits.
const GROWTH_AXIS_MAX_DIGITS: usize = 21;

/// An error reading a `.npy` file: what went wrong and, when known, the file.
#[derive(Debug)]
pub struct NpyError {
    /// The file being read, when reading by path.
    pub path: Option<PathBuf>,
    /// What was wrong.
    pub kind: NpyErrorKind,
}

/// What was wrong with a `.npy` input. Byte offsets count from the start of the file.
#[derive(Debug)]
pub enum NpyErrorKind {
    /// The file could not be opened or read.
    Io(io::Error),
    /// The input does not start with `\x93NUMPY` followed by two version bytes.
    BadMagic {
        /// The first bytes found (at most 8).
        found: Vec<u8>,
    },
    /// The format version is not 1.0, 2.0 or 3.0.
    UnsupportedVersion {
        /// Major version byte.
        major: u8,
        /// Minor version byte.
        minor: u8,
    },
    /// The input ends inside the header.
    TruncatedHeader {
        /// Where the header should end, as its length field says (or, when the input ends
        /// inside the length field, where that field should end).
        expected_end: u64,
        /// Where the input ended.
        found_end: u64,
    },
    /// The header is not the dict NumPy writes.
    MalformedHeader {
        /// Byte offset of the problem in the file.
        offset: u64,
        /// What was expected or found there.
        message: String,
    },
    /// The `descr` names a dtype tenjit does not have.
    UnsupportedDtype {
        /// The `descr` string as written in the header.
        descr: String,
    },
    /// The shape's element or byte count does not fit in memory addresses.
    ShapeOverflow {
        /// The shape as written in the header.
        shape: Vec<u64>,
    },
    /// The input ends before the data the shape needs.
    TruncatedData {
        /// The array's shape.
        shape: Vec<usize>,
        /// The array's `descr`.
        descr: String,
        /// Offset of the first data byte.
        data_start: u64,
        /// Bytes the shape needs.
        expected: u64,
        /// Bytes present.
        found: u64,
    },
}

impl NpyError {
    fn new(kind: NpyErrorKind) -> NpyError {
        NpyError { path: None, kind }
    }

    fn malformed(offset: usize, message: impl Into<String>) -> NpyError {
        NpyError::new(NpyErrorKind::MalformedHeader { offset: offset as u64, message: message.into() })
    }

    fn in_file(mut self, path: &Path) -> NpyError {
        self.path = Some(path.to_path_buf());
        self
    }
}

impl fmt::Display for NpyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(p) => write!(f, "{}: ", p.display())?,
            None => f.write_str("npy: ")?,
        }
        match &self.kind {
            NpyErrorKind::Io(e) => write!(f, "{e}"),
            NpyErrorKind::BadMagic { found } => {
                write!(f, "not a .npy file: it starts with {} instead of \\x93NUMPY", escape_bytes(found))
            }
            NpyErrorKind::UnsupportedVersion { major, minor } => {
                write!(f, "unsupported .npy format version {major}.{minor} at byte 6 (tenjit reads 1.0, 2.0 and 3.0)")
            }
            NpyErrorKind::TruncatedHeader { expected_end, found_end } => write!(
                f,
                "truncated header: the input ends at byte {found_end}, the header should end at byte {expected_end}"
            ),
            NpyErrorKind::MalformedHeader { offset, message } => {
                write!(f, "malformed header at byte {offset}: {message}")
            }
            NpyErrorKind::UnsupportedDtype { descr } => write!(
                f,
                "unsupported dtype '{descr}' (tenjit reads f2, f4, f8, i4, i8 and b1, as '<f4', '>i8', '|b1', ...)"
            ),
            NpyErrorKind::ShapeOverflow { shape } => {
                let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
                write!(f, "shape ({}) is too large to address", dims.join(", "))
            }
            NpyErrorKind::TruncatedData { shape, descr, data_start, expected, found } => write!(
                f,
                "truncated data: shape {} of '{descr}' needs {expected} bytes from byte {data_start}, \
                 but the input ends after {found} (at byte {})",
                python_tuple(shape),
                data_start + found
            ),
        }
    }
}

impl std::error::Error for NpyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            NpyErrorKind::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for NpyError {
    fn from(e: io::Error) -> NpyError {
        NpyError::new(NpyErrorKind::Io(e))
    }
}

/// Bytes as a Python bytes literal body: printable ASCII as is, the rest as `\xNN`.
fn escape_bytes(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "nothing (the input is empty)".to_string();
    }
    let mut s = String::from("b'");
    for &b in bytes {
        if (0x20..0x7f).contains(&b) && b != b'\'' && b != b'\\' {
            s.push(b as char);
        } else {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    s.push('\'');
    s
}

/// The little-endian `descr` NumPy writes for a dtype, or `None` for `bf16`, which NumPy has
/// no dtype for.
fn descr_of(dtype: DType) -> Option<&'static str> {
    Some(match dtype {
        DType::Bool => "|b1",
        DType::I32 => "<i4",
        DType::I64 => "<i8",
        DType::F16 => "<f2",
        DType::BF16 => return None,
        DType::F32 => "<f4",
        DType::F64 => "<f8",
    })
}

/// Parses a `descr` into a dtype and whether its data is big-endian.
fn parse_descr(descr: &str) -> Option<(DType, bool)> {
    let (order, kind) = descr.split_at_checked(1)?;
    let dtype = match kind {
        "b1" => DType::Bool,
        "i4" => DType::I32,
        "i8" => DType::I64,
        "f2" => DType::F16,
        "f4" => DType::F32,
        "f8" => DType::F64,
        _ => return None,
    };
    let big = match order {
        "<" | "=" => false,
        ">" => true,
        // `|` means "byte order not applicable", which is only true of one-byte types.
        "|" if dtype.size_bytes() == 1 => false,
        _ => return None,
    };
    Some((dtype, big))
}

/// Python's `repr` of a shape tuple: `()`, `(3,)`, `(2, 3)`.
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

/// Writes `b` in `.npy` format, exactly as `numpy.save` writes the same array.
pub fn write_npy(w: &mut impl Write, b: &Buffer) -> io::Result<()> {
    let dims = b.shape().dims();
    let shape = python_tuple(dims);
    let descr = descr_of(b.dtype()).ok_or_else(|| {
        io::Error::other(format!(
            "npy: dtype {} has no NumPy dtype (ml_dtypes' bfloat16 saves as raw '<V2' bytes); \
             cast to f32 with .float() before saving",
            b.dtype().torch_name()
        ))
    })?;
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    // NumPy pads for the leading dimension to grow in place (`GROWTH_AXIS_MAX_DIGITS`).
    if let Some(first) = dims.first() {
        let digits = first.to_string().len();
        header.extend(std::iter::repeat_n(' ', GROWTH_AXIS_MAX_DIGITS.saturating_sub(digits)));
    }
    // Magic (6) + version (2) + length field, then the header and its closing newline,
    // padded with spaces so that the data starts at a multiple of `ALIGN`.
    let pad = |len_field: usize| ALIGN - (8 + len_field + header.len() + 1) % ALIGN;
    let fits_v1 = header.len() + 1 + pad(2) <= u16::MAX as usize;
    let (version, len_field) = if fits_v1 { (1u8, 2) } else { (2u8, 4) };
    let pad = pad(len_field);
    header.extend(std::iter::repeat_n(' ', pad));
    header.push('\n');
    let mut out = Vec::with_capacity(8 + len_field + header.len() + b.numel() * b.dtype().size_bytes());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[version, 0]);
    if len_field == 2 {
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    } else {
        let len = u32::try_from(header.len()).map_err(|_| io::Error::other("npy: header too long"))?;
        out.extend_from_slice(&len.to_le_bytes());
    }
    out.extend_from_slice(header.as_bytes());
    match b.data() {
        Data::Bool(v) => out.extend(v.iter().map(|&x| x as u8)),
        Data::I32(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        Data::I64(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        Data::F16(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        Data::BF16(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        Data::F32(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        Data::F64(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
    }
    w.write_all(&out)
}

/// Writes `b` to the file at `path` in `.npy` format (see [`write_npy`]).
pub fn save(path: impl AsRef<Path>, b: &Buffer) -> io::Result<()> {
    let path = path.as_ref();
    let mut file = io::BufWriter::new(std::fs::File::create(path)?);
    write_npy(&mut file, b)?;
    file.flush()
}

/// Reads one `.npy` array from `r`. Bytes after the array's data are not read.
pub fn read_npy(r: &mut impl Read) -> Result<Buffer, NpyError> {
    // Magic and version.
    let mut start = Vec::with_capacity(8);
    r.by_ref().take(8).read_to_end(&mut start)?;
    if start.len() < 8 || &start[..6] != MAGIC {
        return Err(NpyError::new(NpyErrorKind::BadMagic { found: start }));
    }
    let (major, minor) = (start[6], start[7]);
    let len_field = match (major, minor) {
        (1, 0) => 2,
        (2, 0) | (3, 0) => 4,
        _ => return Err(NpyError::new(NpyErrorKind::UnsupportedVersion { major, minor })),
    };
    // Header length.
    let mut len_bytes = Vec::with_capacity(4);
    r.by_ref().take(len_field as u64).read_to_end(&mut len_bytes)?;
    if len_bytes.len() < len_field {
        return Err(NpyError::new(NpyErrorKind::TruncatedHeader {
            expected_end: 8 + len_field as u64,
            found_end: 8 + len_bytes.len() as u64,
        }));
    }
    let header_len = len_bytes.iter().rev().fold(0u64, |acc, &b| acc << 8 | b as u64);
    let header_start = 8 + len_field;
    // Header text; `take` + `read_to_end` grows with what is really there.
    let mut header = Vec::new();
    r.by_ref().take(header_len).read_to_end(&mut header)?;
    if (header.len() as u64) < header_len {
        return Err(NpyError::new(NpyErrorKind::TruncatedHeader {
            expected_end: header_start as u64 + header_len,
            found_end: (header_start + header.len()) as u64,
        }));
    }
    // Versions 1.0 and 2.0 hold ASCII (NumPy writes nothing else there); 3.0 holds UTF-8.
    let text = if major == 3 || header.is_ascii() { std::str::from_utf8(&header).ok() } else { None };
    let Some(text) = text else {
        let bad = header.iter().position(|&b| !b.is_ascii()).unwrap_or(0);
        let what = if major == 3 { "the header is not valid UTF-8" } else { "the header is not ASCII" };
        return Err(NpyError::malformed(header_start + bad, what));
    };
    let parsed = parse_header(text, header_start)?;
    let (dtype, big_endian) = parse_descr(&parsed.descr)
        .ok_or_else(|| NpyError::new(NpyErrorKind::UnsupportedDtype { descr: parsed.descr.clone() }))?;
    // Element and byte counts, checked against overflow.
    let overflow = || NpyError::new(NpyErrorKind::ShapeOverflow { shape: parsed.shape.clone() });
    let mut dims = Vec::with_capacity(parsed.shape.len());
    let mut numel: usize = 1;
    for &d in &parsed.shape {
        let d = usize::try_from(d).map_err(|_| overflow())?;
        numel = numel.checked_mul(d).ok_or_else(overflow)?;
        dims.push(d);
    }
    let nbytes = numel.checked_mul(dtype.size_bytes()).ok_or_else(overflow)?;
    let mut bytes = Vec::new();
    r.by_ref().take(nbytes as u64).read_to_end(&mut bytes)?;
    if bytes.len() < nbytes {
        return Err(NpyError::new(NpyErrorKind::TruncatedData {
            shape: dims,
            descr: parsed.descr,
            data_start: header_start as u64 + header_len,
            expected: nbytes as u64,
            found: bytes.len() as u64,
        }));
    }
    let data = decode(dtype, big_endian, &bytes);
    let data = if parsed.fortran_order && dims.len() > 1 { fortran_to_c(data, &dims) } else { data };
    Ok(Buffer::new(Shape::new(&dims), data).expect("npy: the element count was checked against the shape"))
}

/// Reads the `.npy` file at `path` (see [`read_npy`]); errors name the file.
pub fn load(path: impl AsRef<Path>) -> Result<Buffer, NpyError> {
    let path = path.as_ref();
    let file = std::fs::File::open(path).map_err(|e| NpyError::from(e).in_file(path))?;
    read_npy(&mut io::BufReader::new(file)).map_err(|e| e.in_file(path))
}

/// Decodes raw element bytes (whose length is a multiple of the element size).
fn decode(dtype: DType, big_endian: bool, bytes: &[u8]) -> Data {
    fn words<const N: usize, T>(bytes: &[u8], big: bool, from: fn([u8; N]) -> T) -> Vec<T> {
        bytes
            .chunks_exact(N)
            .map(|c| {
                let mut a = [0u8; N];
                a.copy_from_slice(c);
                if big {
                    a.reverse();
                }
                from(a)
            })
            .collect()
    }
    match dtype {
        DType::Bool => Data::Bool(bytes.iter().map(|&b| b != 0).collect()),
        DType::I32 => Data::I32(words(bytes, big_endian, i32::from_le_bytes)),
        DType::I64 => Data::I64(words(bytes, big_endian, i64::from_le_bytes)),
        DType::F16 => Data::F16(words(bytes, big_endian, half::f16::from_le_bytes)),
        DType::BF16 => Data::BF16(words(bytes, big_endian, half::bf16::from_le_bytes)),
        DType::F32 => Data::F32(words(bytes, big_endian, f32::from_le_bytes)),
        DType::F64 => Data::F64(words(bytes, big_endian, f64::from_le_bytes)),
    }
}

/// Reorders column-major elements of shape `dims` into row-major order.
fn fortran_to_c(data: Data, dims: &[usize]) -> Data {
    fn reorder<T: Copy>(v: Vec<T>, dims: &[usize]) -> Vec<T> {
        // Column-major strides: the first dimension varies fastest.
        let mut fstrides = vec![1usize; dims.len()];
        for k in 1..dims.len() {
            fstrides[k] = fstrides[k - 1] * dims[k - 1];
        }
        let mut index = vec![0usize; dims.len()];
        let mut out = Vec::with_capacity(v.len());
        for _ in 0..v.len() {
            out.push(v[index.iter().zip(&fstrides).map(|(i, s)| i * s).sum::<usize>()]);
            // Advance the row-major multi-index: the last dimension varies fastest.
            for k in (0..dims.len()).rev() {
                index[k] += 1;
                if index[k] < dims[k] {
                    break;
                }
                index[k] = 0;
            }
        }
        out
    }
    match data {
        Data::Bool(v) => Data::Bool(reorder(v, dims)),
        Data::I32(v) => Data::I32(reorder(v, dims)),
        Data::I64(v) => Data::I64(reorder(v, dims)),
        Data::F16(v) => Data::F16(reorder(v, dims)),
        Data::BF16(v) => Data::BF16(reorder(v, dims)),
        Data::F32(v) => Data::F32(reorder(v, dims)),
        Data::F64(v) => Data::F64(reorder(v, dims)),
    }
}

/// The three entries of a `.npy` header.
struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<u64>,
}

/// A value in the header dict.
enum Value {
    Str(String),
    Bool(bool),
    Tuple(Vec<u64>),
    /// A list, kept as its text: the `descr` of a structured dtype.
    List(String),
}

/// Parses the header dict, reporting positions as file offsets (`base` is the header's).
fn parse_header(text: &str, base: usize) -> Result<Header, NpyError> {
    let mut p = HeaderParser { text, pos: 0, base };
    let (mut descr, mut fortran_order, mut shape) = (None, None, None);
    p.skip_ws();
    p.expect('{')?;
    loop {
        p.skip_ws();
        if p.eat('}') {
            break;
        }
        let key_at = p.pos;
        let key = p.string()?;
        p.skip_ws();
        p.expect(':')?;
        p.skip_ws();
        let value_at = p.pos;
        let value = p.value()?;
        let slot_type = match key.as_str() {
            "descr" => match value {
                Value::Str(s) => descr.replace(s).map(|_| ()),
                Value::List(text) => {
                    return Err(NpyError::new(NpyErrorKind::UnsupportedDtype { descr: text }))
                }
                _ => return Err(p.error_at(value_at, "'descr' must be a string such as '<f4'")),
            },
            "fortran_order" => match value {
                Value::Bool(b) => fortran_order.replace(b).map(|_| ()),
                _ => return Err(p.error_at(value_at, "'fortran_order' must be True or False")),
            },
            "shape" => match value {
                Value::Tuple(t) => shape.replace(t).map(|_| ()),
                _ => return Err(p.error_at(value_at, "'shape' must be a tuple of integers")),
            },
            _ => {
                return Err(p.error_at(
                    key_at,
                    format!("unexpected key '{key}' (expected 'descr', 'fortran_order', 'shape')"),
                ))
            }
        };
        if slot_type.is_some() {
            return Err(p.error_at(key_at, format!("key '{key}' appears twice")));
        }
        p.skip_ws();
        if p.eat(',') {
            continue;
        }
        p.skip_ws();
        p.expect('}')?;
        break;
    }
    p.skip_ws();
    if p.pos < text.len() {
        return Err(p.error_at(p.pos, "unexpected text after the header dict"));
    }
    let missing = |name: &str| p.error_at(0, format!("the header dict has no '{name}' key"));
    Ok(Header {
        descr: descr.ok_or_else(|| missing("descr"))?,
        fortran_order: fortran_order.ok_or_else(|| missing("fortran_order"))?,
        shape: shape.ok_or_else(|| missing("shape"))?,
    })
}

/// A cursor over the header text.
struct HeaderParser<'a> {
    text: &'a str,
    pos: usize,
    base: usize,
}

impl HeaderParser<'_> {
    fn error_at(&self, pos: usize, message: impl Into<String>) -> NpyError {
        NpyError::malformed(self.base + pos, message)
    }

    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn skip_ws(&mut self) {
        while let Some(c) = self.peek().filter(|c| c.is_whitespace()) {
            self.pos += c.len_utf8();
        }
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char) -> Result<(), NpyError> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(self.error_at(self.pos, format!("expected '{c}', found {}", self.found())))
        }
    }

    fn found(&self) -> String {
        match self.peek() {
            Some(c) => format!("{c:?}"),
            None => "the end of the header".to_string(),
        }
    }

    /// A quoted string without escapes, as NumPy writes keys and `descr`.
    fn string(&mut self) -> Result<String, NpyError> {
        let start = self.pos;
        let quote = match self.peek() {
            Some(q @ ('\'' | '"')) => q,
            _ => {
                return Err(self.error_at(start, format!("expected a quoted string, found {}", self.found())))
            }
        };
        self.pos += 1;
        let rest = &self.text[self.pos..];
        let Some(end) = rest.find(quote) else {
            return Err(self.error_at(start, "unterminated string"));
        };
        let s = rest[..end].to_string();
        if s.contains('\\') {
            return Err(self.error_at(start, "escapes in strings are not supported"));
        }
        self.pos += end + 1;
        Ok(s)
    }

    fn value(&mut self) -> Result<Value, NpyError> {
        let start = self.pos;
        match self.peek() {
            Some('\'' | '"') => self.string().map(Value::Str),
            Some('(') => self.tuple().map(Value::Tuple),
            _ => {
                let rest = &self.text[self.pos..];
                if rest.starts_with("True") {
                    self.pos += 4;
                    Ok(Value::Bool(true))
                } else if rest.starts_with("False") {
                    self.pos += 5;
                    Ok(Value::Bool(false))
                } else if rest.starts_with('[') {
                    self.list().map(Value::List)
                } else {
                    Err(self.error_at(
                        start,
                        format!("expected a string, True, False or a tuple, found {}", self.found()),
                    ))
                }
            }
        }
    }

    /// A bracketed list with nested brackets, returned as its text (not interpreted).
    fn list(&mut self) -> Result<String, NpyError> {
        let start = self.pos;
        let mut depth = 0usize;
        for (i, c) in self.text[start..].char_indices() {
            match c {
                '[' | '(' => depth += 1,
                ']' | ')' => depth = depth.saturating_sub(1),
                _ => {}
            }
            if depth == 0 {
                self.pos = start + i + 1;
                return Ok(self.text[start..self.pos].to_string());
            }
        }
        Err(self.error_at(start, "unterminated list"))
    }

    /// `()`, `(3,)`, `(2, 3)`; integers may carry Python 2's `L` suffix.
    fn tuple(&mut self) -> Result<Vec<u64>, NpyError> {
        self.expect('(')?;
        let mut dims = Vec::new();
        loop {
            self.skip_ws();
            if self.eat(')') {
                break;
            }
            let start = self.pos;
            let digits = self.text[start..].bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(
                    self.error_at(start, format!("expected a dimension size, found {}", self.found()))
                );
            }
            let n: u64 = self.text[start..start + digits]
                .parse()
                .map_err(|_| self.error_at(start, "dimension size does not fit in 64 bits"))?;
            self.pos += digits;
            self.eat('L');
            dims.push(n);
            self.skip_ws();
            if self.eat(',') {
                continue;
            }
            self.skip_ws();
            self.expect(')')?;
            if dims.len() == 1 {
                // `(3)` is the integer 3 in Python, not a tuple.
                return Err(
                    self.error_at(start, "a one-dimensional shape needs a trailing comma, as in (3,)")
                );
            }
            break;
        }
        Ok(dims)
    }
}
