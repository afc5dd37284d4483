//! Size parameters: the numbers of a kernel that its CUDA C reads at run time instead of
//! printing, so instances of one structure render the same text (see the parent module's
//! "Sizes are parameters").
//!
//! A [`Sizes`] collects a kernel's size parameters while it is rendered: each call names a
//! new parameter (`n{k}` for extents and counts, `st{k}` for strides and offsets) and records
//! this instance's value, in call order. The renderer's calls depend only on the structure
//! (and on the size classes it keeps: a stride of 0 or 1, an offset of 0, an extent of 1), so
//! two instances of one structure get the same names in the same order, and the same text.
//! Values are never merged by equality: two sizes that happen to be equal at one instance stay
//! two parameters, as they may differ at another.

use super::{Param, ParamKind};
use std::cell::RefCell;

/// One size parameter: its C name and this instance's value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Size {
    /// The C name (`n3`, `st0`).
    pub name: String,
    /// The value this instance passes.
    pub value: i64,
}

/// The size parameters of a kernel being rendered, in the order they were asked for.
#[derive(Debug, Default)]
pub(crate) struct Sizes {
    list: RefCell<Vec<Size>>,
    counts: RefCell<(usize, usize)>,
}

impl Sizes {
    /// A new extent or count parameter (`n{k}`) of value `v`.
    pub(crate) fn extent(&self, v: usize) -> Size {
        let k = {
            let mut c = self.counts.borrow_mut();
            c.0 += 1;
            c.0 - 1
        };
        self.push(format!("n{k}"), v as i64)
    }

    /// A new stride or offset parameter (`st{k}`) of value `v`.
    pub(crate) fn value(&self, v: i64) -> Size {
        let k = {
            let mut c = self.counts.borrow_mut();
            c.1 += 1;
            c.1 - 1
        };
        self.push(format!("st{k}"), v)
    }

    fn push(&self, name: String, value: i64) -> Size {
        let s = Size { name, value };
        self.list.borrow_mut().push(s.clone());
        s
    }

    /// The kernel parameters, in the order the sizes were asked for.
    pub(crate) fn params(&self) -> Vec<Param> {
        self.list
            .borrow()
            .iter()
            .map(|s| Param { name: s.name.clone(), kind: ParamKind::Size { value: s.value } })
            .collect()
    }
}

/// The affine index `offset + Σ strides[d] * names[d]` as a C expression of `long long`s whose
/// strides other than 0 and 1 and nonzero offset are size parameters.
pub(crate) fn affine(sizes: &Sizes, offset: i64, strides: &[i64], names: &[String]) -> String {
    let mut terms: Vec<String> = Vec::new();
    if offset != 0 {
        terms.push(sizes.value(offset).name);
    }
    for (&st, name) in strides.iter().zip(names) {
        match st {
            0 => {}
            1 => terms.push(name.clone()),
            _ => terms.push(format!("{name} * {}", sizes.value(st).name)),
        }
    }
    if terms.is_empty() {
        "0".into()
    } else {
        terms.join(" + ")
    }
}

/// Lines that decompose the flat index `flat` into `names` over `dims` (row-major), as
/// `const long long` declarations each prefixed by `indent`; every extent but the first (and
/// those of 1, whose index is 0) is a size parameter.
pub(crate) fn decompose(sizes: &Sizes, flat: &str, dims: &[usize], names: &[String], indent: &str) -> String {
    let mut out = String::new();
    match dims.len() {
        0 => {}
        1 => out.push_str(&format!("{indent}const long long {} = {flat};\n", names[0])),
        n => {
            out.push_str(&format!("{indent}long long rest = {flat};\n"));
            for d in (1..n).rev() {
                if dims[d] == 1 {
                    out.push_str(&format!("{indent}const long long {} = 0;\n", names[d]));
                    continue;
                }
                let e = sizes.extent(dims[d]).name;
                out.push_str(&format!("{indent}const long long {} = rest % {e}; rest /= {e};\n", names[d]));
            }
            out.push_str(&format!("{indent}const long long {} = rest;\n", names[0]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_follow_the_calls_and_keep_only_classes_in_the_text() {
        let sizes = Sizes::default();
        let names = vec!["i0".to_string(), "i1".to_string(), "i2".to_string()];
        let a = affine(&sizes, 5, &[7, 0, 1], &names);
        assert_eq!(a, "st0 + i0 * st1 + i2");
        let d = decompose(&sizes, "flat", &[4, 1, 9], &names, "");
        assert_eq!(d, "long long rest = flat;\nconst long long i2 = rest % n0; rest /= n0;\nconst long long i1 = 0;\nconst long long i0 = rest;\n");
        assert_eq!(affine(&sizes, 0, &[0, 0, 0], &names), "0");
        let p = sizes.params();
        let got: Vec<(String, ParamKind)> = p.into_iter().map(|p| (p.name, p.kind)).collect();
        assert_eq!(
            got,
            vec![
                ("st0".to_string(), ParamKind::Size { value: 5 }),
                ("st1".to_string(), ParamKind::Size { value: 7 }),
                ("n0".to_string(), ParamKind::Size { value: 9 }),
            ]
        );
        // Another instance of the same structure: the same text, other values.
        let other = Sizes::default();
        assert_eq!(affine(&other, -3, &[-2, 0, 1], &names), a);
        assert_eq!(decompose(&other, "flat", &[40, 1, 13], &names, ""), d);
        assert_eq!(other.params()[1].kind, ParamKind::Size { value: -2 });
    }
}
