//! One pass pipeline for every consumer: realization, `tenjit::inspect`, `TENJIT_DUMP` and the
//! CLI's `tenjit compile` all run `tenjit::ir::passes::pipeline()`, so they cannot drift apart.

use tenjit::prelude::*;

fn pipeline_names() -> Vec<&'static str> {
    tenjit::ir::passes::pipeline().iter().map(|p| p.name()).collect()
}

#[test]
fn inspect_runs_the_pipeline() {
    let x = Tensor::zeros([4, 8]).realize().clone();
    let y = (&x * 2.0).exp().sum();
    let stages = tenjit::inspect(&[&y]);
    let names: Vec<&str> = stages.passes().iter().map(|(name, _)| *name).collect();
    assert_eq!(names, pipeline_names());
}

#[test]
fn compile_stages_run_the_pipeline() {
    let g: tenjit::ir::Graph =
        tenjit::ir::text::parse("graph @f(%x: f32[4]) {\n  %0 = exp %x : f32[4]\n  return %0\n}\n")
            .expect("a valid graph");
    let stages = tenjit::compile_stages(&g).expect("compiles");
    let names: Vec<&str> = stages.passes.iter().map(|(name, _)| *name).collect();
    assert_eq!(names, pipeline_names());
}

#[test]
fn cli_help_names_every_pass() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tenjit")).arg("--help").output().expect("runs");
    let help = String::from_utf8_lossy(&out.stdout);
    for name in pipeline_names() {
        assert!(help.contains(name), "`tenjit --help` does not name the pass {name}:\n{help}");
    }
}
