//! The `sizes` group: instances of the symbolic programs of `sized_graphs.rs`, each run at
//! several sizes (not multiples of 32 or 256, and the special sizes 0 and 1) against the
//! interpreter on the bound graph. A case's name is `{family} {class} at {bindings}`; the
//! instances of one class render one text, so the driver compiles their kernels once and
//! runs that code at every size (`Emulator::kernel_entries`).

use super::sized_graphs::{families, graph, instance, show, symbolic};
use super::Case;
use tenjit::ir::{Buffer, Scalar};

/// The group's cases: every class's bindings, then the edges.
pub fn sized_cases(out: &mut Vec<Case>) {
    for family in families() {
        let g = graph(family.text);
        let sym = symbolic(&g);
        let classes = family.classes.iter().enumerate().map(|(c, class)| (format!("class {c}"), class));
        let edges = std::iter::once(("edge".to_string(), &family.edges));
        for (label, bindings) in classes.chain(edges) {
            for values in bindings {
                let bound = g.bind(values).unwrap_or_else(|e| panic!("{}: {e:?}", family.name));
                let inputs: Vec<Buffer> = bound
                    .inputs()
                    .iter()
                    .enumerate()
                    .map(|(j, &(_, n))| {
                        let t = bound.ty(n);
                        // Values in [-2.2, 2.2), a different pattern per input, no two rows alike.
                        let v: Vec<Scalar> = (0..t.shape.numel())
                            .map(|i| Scalar::Float(((i * 7919 + j * 31) % 45) as f64 * 0.1 - 2.2))
                            .collect();
                        Buffer::from_scalars(t.dtype, t.shape.clone(), v)
                    })
                    .collect();
                let name = format!("{} {label} at {}", family.name, show(values));
                let mut case = Case::new("sizes", name, bound, inputs);
                case.program = Some(instance(&sym, values));
                out.push(case);
            }
        }
    }
}
