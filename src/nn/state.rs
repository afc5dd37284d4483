//! State dicts, as PyTorch's: a module's parameters by name ([`StateDict`]), loaded back by
//! name with the checks `load_state_dict` makes, and saved to or read from safetensors files
//! ([`crate::save_safetensors`], [`crate::load_safetensors`]), so weights move between tenjit
//! and PyTorch.

use crate::error::{Error, OpErrorKind, Result};
use crate::tensor::Tensor;
use std::collections::BTreeMap;

/// Tensors by name (`model.state_dict()`), sorted by name.
pub type StateDict = BTreeMap<String, Tensor>;

/// `named` with `prefix.` in front of each name, for a module made of modules
/// (`blocks.0.` + `ln1.weight`).
///
/// ```
/// use tenjit::nn::{prefixed, LayerNorm, Module};
/// let ln = LayerNorm::new(&[4]);
/// let names: Vec<String> = prefixed("ln_f", ln.named_parameters()).into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names, ["ln_f.weight", "ln_f.bias"]);
/// ```
pub fn prefixed<T>(prefix: &str, named: Vec<(String, T)>) -> Vec<(String, T)> {
    named.into_iter().map(|(n, t)| (format!("{prefix}.{n}"), t)).collect()
}

/// The state dict of named parameters: each value shares the parameter's (no copy) but is a
/// handle of its own, not requiring grad.
pub fn state_dict(named: Vec<(String, &Tensor)>) -> StateDict {
    named.into_iter().map(|(n, t)| (n, t.detach())).collect()
}

/// Sets each named parameter to the tensor of the same name in `state`, as
/// `model.load_state_dict(state, strict)`: the shapes must agree, the value is converted to the
/// parameter's dtype and device, and a parameter that required grad still does (with no
/// gradient). With `strict`, a parameter `state` lacks or a name of `state` no parameter has is
/// an error listing them all, and nothing is loaded; without, they are skipped. A shape
/// mismatch is always an error, and nothing is loaded.
///
/// ```
/// use tenjit::prelude::*;
/// use tenjit::nn::{self, Linear, Module};
/// tenjit::manual_seed(1);
/// let trained = Linear::new(3, 2);
/// let mut fresh = Linear::new(3, 2);
/// nn::load_state_dict(fresh.named_parameters_mut(), &trained.state_dict(), true)?;
/// assert_eq!(fresh.weight.to_vec::<f32>(), trained.weight.to_vec::<f32>());
/// assert!(fresh.weight.requires_grad());
///
/// let mut wrong = Linear::new(4, 2);
/// let e = nn::load_state_dict(wrong.named_parameters_mut(), &trained.state_dict(), true).unwrap_err();
/// assert!(e.to_string().contains("size mismatch for weight"));
/// # Ok::<(), tenjit::Error>(())
/// ```
pub fn load_state_dict(params: Vec<(String, &mut Tensor)>, state: &StateDict, strict: bool) -> Result<()> {
    let missing: Vec<&str> =
        params.iter().filter(|(n, _)| !state.contains_key(n)).map(|(n, _)| n.as_str()).collect();
    let unexpected: Vec<&str> =
        state.keys().filter(|k| !params.iter().any(|(n, _)| n == *k)).map(String::as_str).collect();
    let mut problems = Vec::new();
    if strict && !missing.is_empty() {
        problems.push(format!("Missing key(s) in state_dict: {}.", quoted(&missing)));
    }
    if strict && !unexpected.is_empty() {
        problems.push(format!("Unexpected key(s) in state_dict: {}.", quoted(&unexpected)));
    }
    for (name, p) in &params {
        if let Some(v) = state.get(name) {
            if v.shape() != p.shape() {
                problems.push(format!(
                    "size mismatch for {name}: copying a param with shape {:?} from checkpoint, the shape in current model is {:?}.",
                    v.shape(),
                    p.shape()
                ));
            }
        }
    }
    if !problems.is_empty() {
        return Err(Error::op_of(OpErrorKind::Shape, "load_state_dict", problems.join(" ")));
    }
    for (name, p) in params {
        let Some(v) = state.get(&name) else { continue };
        let value = v.detach().try_to_dtype(p.dtype())?.try_to(p.device())?;
        value.try_realize()?;
        *p = if p.requires_grad() { value.requires_grad_() } else { value };
    }
    Ok(())
}

fn quoted(names: &[&str]) -> String {
    names.iter().map(|n| format!("\"{n}\"")).collect::<Vec<_>>().join(", ")
}
