//! Sizes are kernel parameters: the instances of one symbolic program (and concrete programs
//! of one structure) render byte-identical CUDA C, so one NVRTC compile and one module serve
//! every size, while each instance's size parameters and launch follow its sizes. The text
//! compiles with NVRTC and assembles with ptxas (`scripts/setup-cuda-tools.sh`); running it
//! at every size against the interpreter is `tests/cuda_emulation.rs`'s `sizes` group.

#[path = "emul/sized_graphs.rs"]
mod sized_graphs;

use sized_graphs::{families, graph, instance, show, symbolic};
use std::process::Command;
use tenjit::backend::cuda::codegen::{self, CudaModule, CudaStep, Launch, ParamKind};
use tenjit::backend::cuda::nvrtc::{self, Arch, Nvrtc};
use tenjit::ir::kernel::lower::lower;
use tenjit::ir::sym::Bindings;
use tenjit::ir::{DType, Graph, Op, Shape, TensorType};

/// Every kernel's size parameter values, in order.
fn size_values(m: &CudaModule) -> Vec<Vec<i64>> {
    m.kernels().map(|k| k.size_values()).collect()
}

fn launches(m: &CudaModule) -> Vec<Launch> {
    m.kernels().map(|k| k.launch).collect()
}

/// Compiles `source` with NVRTC for every architecture and assembles the PTX with ptxas.
fn compile_and_assemble(what: &str, source: &str) {
    let nvrtc = Nvrtc::load().unwrap_or_else(|e| panic!("{e}"));
    let ptxas =
        nvrtc::find_ptxas().unwrap_or_else(|| panic!("ptxas was not found: run scripts/setup-cuda-tools.sh"));
    let dir = std::env::temp_dir().join(format!("tenjit-cuda-sizes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for arch in Arch::ALL {
        let ptx = nvrtc.compile(source, arch).unwrap_or_else(|e| panic!("{what}: {e}"));
        let file = dir.join(format!("{}-{}.ptx", what.replace(' ', "_"), arch.sm()));
        std::fs::write(&file, &ptx).unwrap();
        let out = Command::new(&ptxas)
            .arg(format!("-arch={}", arch.sm()))
            .arg(&file)
            .arg("-o")
            .arg(file.with_extension("cubin"))
            .output()
            .unwrap_or_else(|e| panic!("running ptxas: {e}"));
        assert!(
            out.status.success(),
            "{what}: ptxas rejected the PTX:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn instances_of_one_structure_render_one_text_with_their_own_sizes() {
    for family in families() {
        let g = graph(family.text);
        let sym = symbolic(&g);
        let mut texts = Vec::new();
        for class in &family.classes {
            let modules: Vec<(&Bindings, CudaModule)> = class
                .iter()
                .map(|values| {
                    let p = instance(&sym, values);
                    let m = codegen::render_program(&p)
                        .unwrap_or_else(|e| panic!("{} at {}: {e}\n{p}", family.name, show(values)));
                    (values, m)
                })
                .collect();
            let (first_values, first) = &modules[0];
            let what = format!("{} at {}", family.name, show(first_values));
            assert!(first.kernels().count() > 0, "{what}: no kernel");
            for k in first.kernels() {
                assert!(
                    k.params.iter().any(|p| matches!(p.kind, ParamKind::Size { .. })),
                    "{what}: kernel {} takes no size:\n{}",
                    k.name,
                    k.source
                );
            }
            for (values, m) in &modules[1..] {
                assert_eq!(
                    m.source,
                    first.source,
                    "{} at {} renders another text than at {}",
                    family.name,
                    show(values),
                    show(first_values)
                );
                assert_ne!(
                    size_values(m),
                    size_values(first),
                    "{} at {}: the same sizes",
                    family.name,
                    show(values)
                );
            }
            // The grids follow the sizes (two small instances may still both fit one block).
            assert!(
                modules.iter().any(|(_, m)| launches(m) != launches(first)),
                "{}: every instance has the launches of {}",
                family.name,
                show(first_values)
            );
            let shape = |m: &CudaModule, f: fn(&CudaStep) -> bool| m.steps.iter().any(f);
            match family.name {
                "matmul" => {
                    assert!(shape(first, |s| matches!(s, CudaStep::Matmul { .. })), "{what}: no matmul")
                }
                "softmax" => {
                    assert!(shape(first, |s| matches!(s, CudaStep::InGroup { .. })), "{what}: no group")
                }
                _ => {}
            }
            compile_and_assemble(&what, &first.source);
            texts.push(first.source.clone());
        }
        // Reductions over at most a warp's elements and over more are two structures.
        texts.dedup();
        assert_eq!(texts.len(), family.classes.len(), "{}: two classes render one text", family.name);
    }
}

#[test]
fn launches_follow_the_sizes() {
    let g = graph(families().into_iter().find(|f| f.name == "broadcast").unwrap().text);
    let sym = symbolic(&g);
    for (b, n) in [(3u64, 37u64), (300, 7), (64, 300)] {
        let values: Bindings = [("B".to_string(), b), ("N".to_string(), n)].into_iter().collect();
        let m = codegen::render_program(&instance(&sym, &values)).unwrap();
        let k = m.kernels().next().unwrap();
        let points = (b * n) as i64;
        // The flat count is the first extent the kernel takes, and the grid covers it.
        let sizes = &size_values(&m)[0];
        assert!(sizes.contains(&points), "B={b} N={n}: no size of {points} in {sizes:?}");
        assert_eq!(k.launch.grid as i64, (points + 255) / 256, "B={b} N={n}");
        assert_eq!(k.launch.block, codegen::ELEMENTWISE_BLOCK);
    }
}

/// The modules of family `name`'s symbolic program instantiated at `B = b` and each `N` of
/// `ns`.
fn family_at(name: &str, b: u64, ns: [u64; 3]) -> Vec<(u64, CudaModule)> {
    let g = graph(families().into_iter().find(|f| f.name == name).unwrap().text);
    let sym = symbolic(&g);
    ns.into_iter()
        .map(|n| {
            let values: Bindings = [("B".to_string(), b), ("N".to_string(), n)].into_iter().collect();
            (n, codegen::render_program(&instance(&sym, &values)).unwrap())
        })
        .collect()
}

#[test]
fn a_row_group_sizes_its_dynamic_shared_memory_by_the_row() {
    let mut shared = Vec::new();
    for (n, m) in family_at("softmax", 5, [33, 300, 1000]) {
        assert!(m.steps.iter().any(|s| matches!(s, CudaStep::InGroup { .. })), "N={n}: no row group");
        assert!(m.source.contains("TJ_DYNAMIC_SHARED(tj_dynamic_shared)"), "N={n}");
        assert!(!m.source.contains(&format!("[{n}]")), "N={n}: the row length is in the text");
        let k = m.kernels().next().unwrap();
        assert_eq!(k.launch.grid, 5, "one block per row");
        // At least the staged input row and the row of exp(x - max), each padded to 16 bytes.
        let row = (n as u32 * 4).div_ceil(16) * 16;
        assert!(k.launch.shared_bytes >= 2 * row, "N={n}: {} bytes", k.launch.shared_bytes);
        shared.push(k.launch.shared_bytes);
    }
    assert!(shared.windows(2).all(|w| w[0] < w[1]), "{shared:?}");
}

#[test]
fn block_reductions_choose_their_block_at_launch() {
    let mut blocks = Vec::new();
    for (n, m) in family_at("row reductions", 3, [33, 100, 1000]) {
        assert!(m.source.contains("red += blockDim.x"), "N={n}");
        blocks.push(m.kernels().map(|k| k.launch.block).max().unwrap());
    }
    assert_eq!(blocks, vec![32, 64, 256]);
}

#[test]
fn concrete_programs_of_one_structure_render_one_text() {
    for family in families() {
        let g = graph(family.text);
        let class = &family.classes[0];
        let render = |values: &Bindings| {
            let mut bound = g.bind(values).unwrap_or_else(|e| panic!("{e:?}"));
            let passes = tenjit::ir::passes::pipeline();
            let refs: Vec<&dyn tenjit::ir::passes::Pass> = passes.iter().map(|p| p.as_ref()).collect();
            tenjit::ir::passes::run_passes(&mut bound, &refs, &mut |_, _| {}).unwrap();
            codegen::render_program(&lower(&bound)).unwrap()
        };
        let (a, b) = (render(&class[0]), render(&class[1]));
        assert_eq!(a.source, b.source, "{}: {} and {}", family.name, show(&class[0]), show(&class[1]));
        assert_ne!(size_values(&a), size_values(&b), "{}", family.name);
    }
}

/// A graph of one library op over inputs of types `inputs`.
fn one_op(op: Op, inputs: &[(DType, &[usize])]) -> Graph {
    let mut g = Graph::new("lib");
    let args: Vec<_> = inputs
        .iter()
        .enumerate()
        .map(|(i, (d, s))| g.add_input(format!("x{i}"), TensorType::new(*d, Shape::new(s))))
        .collect();
    let y = g.add(op, &args).unwrap_or_else(|e| panic!("{e}"));
    g.set_outputs(vec![y]);
    g
}

#[test]
fn library_steps_render_one_text_at_two_sizes() {
    use tenjit::ir::ops::{ConvGeometry, ConvOp, ConvRole, PoolGeometry, PoolOp, PoolRole};
    let f = DType::F32;
    let i = DType::I64;
    let sv = |v: &[usize]| smallvec::SmallVec::from_slice(v);
    let conv = |role| {
        Op::Conv(ConvOp {
            role,
            geometry: ConvGeometry { stride: [2, 1], padding: [1, 2], dilation: [1, 2], groups: 2 },
        })
    };
    let pool = |role| {
        Op::Pool(PoolOp { role, geometry: PoolGeometry { kernel: [3, 2], stride: [2, 1], padding: [1, 1] } })
    };
    type Inputs<'a> = Vec<(DType, &'a [usize])>;
    let cases: Vec<(&str, Op, Inputs, Inputs)> = vec![
        (
            "gather",
            Op::Gather { axis: 0 },
            vec![(f, &[3, 4]), (i, &[2, 4])],
            vec![(f, &[5, 7]), (i, &[6, 7])],
        ),
        (
            "scatter_add",
            Op::ScatterAdd { axis: 1 },
            vec![(f, &[3, 4]), (i, &[3, 6]), (f, &[3, 6])],
            vec![(f, &[5, 9]), (i, &[5, 3]), (f, &[5, 3])],
        ),
        (
            "concat",
            Op::Concat { axis: 0 },
            vec![(f, &[3, 4]), (f, &[2, 4])],
            vec![(f, &[7, 9]), (f, &[5, 9])],
        ),
        ("pad", Op::Pad { lo: sv(&[1, 0]), hi: sv(&[0, 2]) }, vec![(f, &[3, 4])], vec![(f, &[6, 9])]),
        (
            "conv2d",
            conv(ConvRole::Forward),
            vec![(f, &[2, 4, 7, 6]), (f, &[6, 2, 3, 2])],
            vec![(f, &[3, 4, 9, 11]), (f, &[6, 2, 3, 2])],
        ),
        (
            "conv2d_weight",
            conv(ConvRole::Weight { kernel: [3, 2] }),
            vec![(f, &[2, 4, 7, 6]), (f, &[2, 6, 4, 8])],
            vec![(f, &[3, 4, 9, 6]), (f, &[3, 6, 5, 8])],
        ),
        (
            "max_pool2d_select",
            pool(PoolRole::Select),
            vec![(f, &[2, 3, 7, 6]); 2],
            vec![(f, &[3, 2, 9, 8]); 2],
        ),
        (
            "max_pool2d_scatter",
            pool(PoolRole::Scatter),
            vec![(f, &[2, 3, 7, 6]), (f, &[2, 3, 4, 7])],
            vec![(f, &[3, 2, 9, 8]), (f, &[3, 2, 5, 9])],
        ),
    ];
    for (what, op, small, large) in cases {
        let kernel = |inputs: &[(DType, &[usize])]| {
            let m = codegen::render_program(&lower(&one_op(op.clone(), inputs)))
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            let k = m
                .kernels()
                .find(|k| k.name.ends_with(what))
                .unwrap_or_else(|| panic!("{what}: no library kernel in\n{}", m.source))
                .clone();
            k
        };
        let (a, b) = (kernel(&small), kernel(&large));
        assert_eq!(a.source, b.source, "{what}: two sizes render two texts");
        assert_ne!(a.size_values(), b.size_values(), "{what}");
        assert!(b.launch.grid >= a.launch.grid, "{what}");
    }
}
