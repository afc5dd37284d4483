//! Named tensors in the `safetensors` format (Hugging Face's, which PyTorch models are shared
//! in): [`save_safetensors`] and [`load_safetensors`], through the `safetensors` crate.
//!
//! The dtypes tenjit has (`bool`, `i32`, `i64`, `f16`, `bf16`, `f32`, `f64`; safetensors'
//! `BOOL`, `I32`, `I64`, `F16`, `BF16`, `F32`, `F64`) load and save as themselves; a file
//! holding another dtype (`u8`, `f8`, ...) loads with an error naming the tensor and its dtype.

use super::Tensor;
use crate::error::{Error, Result};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::BTreeMap;
use std::path::Path;
use tenjit_ir::{Buffer, Data, Shape};

/// Writes `tensors` to `path` as a safetensors file, by name (computing them first if they
/// are lazy), as `safetensors.torch.save_file`.
///
/// ```
/// use tenjit::prelude::*;
/// let path = std::env::temp_dir().join("tenjit_doc_weights.safetensors");
/// let w = Tensor::arange(6).reshape([2, 3]).to_dtype(DType::F32);
/// tenjit::save_safetensors(&path, &[("layer.weight", &w)])?;
/// let loaded = tenjit::load_safetensors(&path)?;
/// assert_eq!(loaded["layer.weight"].to_vec::<f32>(), [0., 1., 2., 3., 4., 5.]);
/// # std::fs::remove_file(&path).ok();
/// # Ok::<(), tenjit::Error>(())
/// ```
pub fn save_safetensors(path: impl AsRef<Path>, tensors: &[(&str, &Tensor)]) -> Result<()> {
    let path = path.as_ref();
    let io = |message: String| Error::Io { path: path.display().to_string(), message };
    let mut names = std::collections::HashSet::new();
    let mut owned: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        if !names.insert(*name) {
            return Err(io(format!("the tensor name `{name}` is given twice")));
        }
        let buf = t.buffer()?;
        let (dtype, bytes) = to_bytes(buf.data());
        owned.push((name.to_string(), dtype, buf.shape().dims().to_vec(), bytes));
    }
    let views = owned
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            TensorView::new(*dtype, shape.clone(), bytes)
                .map(|v| (name.as_str(), v))
                .map_err(|e| io(format!("tensor `{name}`: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize_to_file(views, None, path).map_err(|e| io(e.to_string()))
}

/// Reads every tensor of the safetensors file at `path`, by name, as host tensors (leaves,
/// not requiring grad), as `safetensors.torch.load_file`.
pub fn load_safetensors(path: impl AsRef<Path>) -> Result<BTreeMap<String, Tensor>> {
    let path = path.as_ref();
    let io = |message: String| Error::Io { path: path.display().to_string(), message };
    let bytes = std::fs::read(path).map_err(|e| io(e.to_string()))?;
    let file = SafeTensors::deserialize(&bytes).map_err(|e| io(format!("not a safetensors file: {e}")))?;
    let mut out = BTreeMap::new();
    for (name, view) in file.tensors() {
        let data = from_bytes(view.dtype(), view.data()).ok_or_else(|| {
            io(format!("tensor `{name}` is {:?}, a dtype tenjit does not have yet", view.dtype()))
        })?;
        if view.shape().iter().try_fold(1usize, |n, &d| n.checked_mul(d)).is_none() {
            return Err(io(format!(
                "tensor `{name}`: the shape {:?} has more elements than memory",
                view.shape()
            )));
        }
        let shape = Shape::new(view.shape());
        let buffer = Buffer::new(shape, data).map_err(|e| io(format!("tensor `{name}`: {e}")))?;
        out.insert(name, Tensor::from_ir_buffer(buffer));
    }
    Ok(out)
}

/// The safetensors dtype and little-endian bytes of `data`.
fn to_bytes(data: &Data) -> (Dtype, Vec<u8>) {
    fn le<T, const N: usize>(v: &[T], f: impl Fn(&T) -> [u8; N]) -> Vec<u8> {
        v.iter().flat_map(f).collect()
    }
    match data {
        Data::Bool(v) => (Dtype::BOOL, v.iter().map(|&b| b as u8).collect()),
        Data::I32(v) => (Dtype::I32, le(v, |x| x.to_le_bytes())),
        Data::I64(v) => (Dtype::I64, le(v, |x| x.to_le_bytes())),
        Data::F16(v) => (Dtype::F16, le(v, |x| x.to_le_bytes())),
        Data::BF16(v) => (Dtype::BF16, le(v, |x| x.to_le_bytes())),
        Data::F32(v) => (Dtype::F32, le(v, |x| x.to_le_bytes())),
        Data::F64(v) => (Dtype::F64, le(v, |x| x.to_le_bytes())),
    }
}

/// The elements of little-endian `bytes` of `dtype`; `None` for a dtype tenjit lacks.
fn from_bytes(dtype: Dtype, bytes: &[u8]) -> Option<Data> {
    fn read<T, const N: usize>(bytes: &[u8], f: impl Fn([u8; N]) -> T) -> Vec<T> {
        bytes.chunks_exact(N).map(|c| f(c.try_into().expect("chunks of N bytes"))).collect()
    }
    Some(match dtype {
        Dtype::BOOL => Data::Bool(bytes.iter().map(|&b| b != 0).collect()),
        Dtype::I32 => Data::I32(read(bytes, i32::from_le_bytes)),
        Dtype::I64 => Data::I64(read(bytes, i64::from_le_bytes)),
        Dtype::F16 => Data::F16(read(bytes, half::f16::from_le_bytes)),
        Dtype::BF16 => Data::BF16(read(bytes, half::bf16::from_le_bytes)),
        Dtype::F32 => Data::F32(read(bytes, f32::from_le_bytes)),
        Dtype::F64 => Data::F64(read(bytes, f64::from_le_bytes)),
        _ => return None,
    })
}
