//! Tests of the `tenjit` command-line tool: each runs the built binary on a graph in
//! `tests/cli/` and checks its exit code, standard output and standard error.
//!
//! `.npy` inputs are written by the tests themselves into a fresh directory under
//! [`std::env::temp_dir`], so no binary files are committed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use tenjit::ir::format::{format_tensor, PrintOptions};
use tenjit::ir::{npy, Buffer};

/// The graph most tests use: `%1 = x * x + b` (f32[2,3]) and `%2` its row sums (f32[2]).
const AFFINE: &str = "tests/cli/affine.tir";
/// `affine.tir` as the printer writes it.
const AFFINE_CANONICAL: &str = "\
graph @affine(%x: f32[2,3], %b: f32[2,3]) {
  %0 = mul %x, %x : f32[2,3]
  %1 = add %0, %b : f32[2,3]  ; at model.rs:7
  %2 = sum %1, axes=[1] : f32[2]
  return %1, %2
}
";
/// A graph whose line 3 column 8 holds an unknown op.
const BAD_OP: &str = "tests/cli/bad_op.tir";
/// `floor_div %n, %d` over i32[3].
const DIV: &str = "tests/cli/div.tir";
/// A scalar loss `sum((x @ w - y)^2) * 0.5` with an unused integer input `%n`.
const LOSS: &str = "tests/cli/loss.tir";
/// What `tenjit grad` prints for `loss.tir`: the loss, then its gradients with respect to
/// `%x`, `%w` and `%y` (`%n` is an integer and has none).
const LOSS_GRAD: &str = "\
graph @loss(%x: f32[2,3], %w: f32[3,1], %y: f32[2,1], %n: i64[]) {
  %0 = matmul %x, %w : f32[2,1]
  %1 = sub %0, %y : f32[2,1]
  %2 = mul %1, %1 : f32[2,1]
  %3 = sum %2, axes=[0,1] : f32[]
  %4 = const 0.5 : f32[]
  %5 = mul %3, %4 : f32[]
  %6 = const 1.0 : f32[]
  %7 = mul %6, %4 : f32[]
  %8 = reshape %7, shape=[1,1] : f32[1,1]
  %9 = expand %8, shape=[2,1] : f32[2,1]
  %10 = mul %9, %1 : f32[2,1]
  %11 = mul %9, %1 : f32[2,1]
  %12 = add %10, %11 : f32[2,1]
  %13 = neg %12 : f32[2,1]
  %14 = permute %w, perm=[1,0] : f32[1,3]
  %15 = matmul %12, %14 : f32[2,3]
  %16 = permute %x, perm=[1,0] : f32[3,2]
  %17 = matmul %16, %12 : f32[3,1]
  return %5, %15, %17, %13
}
";

/// What one run of the tool gave.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `tenjit args...` in the crate root, feeding `stdin` if given.
fn tenjit(args: &[&str], stdin: Option<&str>) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tenjit"));
    cmd.args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("the tenjit binary starts");
    if let Some(text) = stdin {
        // The tool may reject its arguments and exit before it reads standard input; the pipe
        // is then closed, and that is not a failure of the test.
        match child.stdin.take().unwrap().write_all(text.as_bytes()) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            r => r.unwrap(),
        }
    }
    let Output { status, stdout, stderr } = child.wait_with_output().unwrap();
    Run {
        code: status.code(),
        stdout: String::from_utf8(stdout).unwrap(),
        stderr: String::from_utf8(stderr).unwrap(),
    }
}

/// Asserts that the run failed with exit code `code` and a standard error containing each of
/// `needles`, with nothing on standard output.
fn assert_fails(r: &Run, code: i32, needles: &[&str]) {
    assert_eq!(r.code, Some(code), "exit code; stderr:\n{}", r.stderr);
    assert!(r.stderr.starts_with("error: "), "stderr:\n{}", r.stderr);
    for needle in needles {
        assert!(r.stderr.contains(needle), "stderr lacks {needle:?}:\n{}", r.stderr);
    }
    assert_eq!(r.stdout, "", "nothing goes to stdout on failure");
}

fn assert_ok(r: &Run) {
    assert_eq!(r.code, Some(0), "exit code; stderr:\n{}", r.stderr);
    assert_eq!(r.stderr, "");
}

/// A fresh, empty directory for test `name`.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tenjit-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Saves `b` as `dir/name` and returns the path as a string.
fn save(dir: &Path, name: &str, b: &Buffer) -> String {
    let path = dir.join(name);
    npy::save(&path, b).unwrap();
    path.to_str().unwrap().to_string()
}

/// The inputs of `affine.tir`, saved in `dir`: x = 1..=6, b = 1.
fn affine_inputs(dir: &Path) -> (String, String) {
    let x = Buffer::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]).unwrap();
    let b = Buffer::from_vec(vec![1.0f32; 6], [2, 3]).unwrap();
    (save(dir, "x.npy", &x), save(dir, "b.npy", &b))
}

/// x * x + 1 for x = 1..=6, and its row sums.
fn affine_expected() -> (Buffer, Buffer) {
    (
        Buffer::from_vec(vec![2.0f32, 5.0, 10.0, 17.0, 26.0, 37.0], [2, 3]).unwrap(),
        Buffer::from_vec(vec![17.0f32, 80.0], [2]).unwrap(),
    )
}

#[test]
fn dump_prints_canonical_text() {
    let r = tenjit(&["dump", AFFINE], None);
    assert_ok(&r);
    assert_eq!(r.stdout, AFFINE_CANONICAL);
}

#[test]
fn dump_round_trips_through_stdin() {
    let first = tenjit(&["dump", AFFINE], None);
    assert_ok(&first);
    let second = tenjit(&["dump", "-"], Some(&first.stdout));
    assert_ok(&second);
    assert_eq!(second.stdout, first.stdout);
}

#[test]
fn run_writes_npy_outputs() {
    let dir = temp_dir("run_writes_npy_outputs");
    let (x, b) = affine_inputs(&dir);
    let out = dir.join("nested").join("out");
    let out_str = out.to_str().unwrap();
    // Options may come before or after FILE, and `--opt=value` works too.
    let r = tenjit(
        &["run", "--input", &format!("b={b}"), AFFINE, "-i", &format!("x={x}"), &format!("--out={out_str}")],
        None,
    );
    assert_ok(&r);
    let out0 = out.join("out0.npy");
    let out1 = out.join("out1.npy");
    assert_eq!(
        r.stdout,
        format!("out0: f32[2,3] -> {}\nout1: f32[2] -> {}\n", out0.display(), out1.display())
    );
    let (want0, want1) = affine_expected();
    assert_eq!(npy::load(&out0).unwrap(), want0);
    assert_eq!(npy::load(&out1).unwrap(), want1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn run_prints_values_without_out() {
    let dir = temp_dir("run_prints_values_without_out");
    let (x, b) = affine_inputs(&dir);
    let r = tenjit(&["run", AFFINE, "--input", &format!("x={x}"), "--input", &format!("%b={b}")], None);
    assert_ok(&r);
    let (want0, want1) = affine_expected();
    let opts = PrintOptions::default();
    let expected = format!(
        "out0: f32[2,3]\n{}\nout1: f32[2]\n{}\n",
        format_tensor(&want0, &opts),
        format_tensor(&want1, &opts)
    );
    assert_eq!(r.stdout, expected);
    assert!(r.stdout.contains("tensor([17., 80.])"), "{}", r.stdout);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn run_reads_the_graph_from_stdin() {
    let dir = temp_dir("run_reads_the_graph_from_stdin");
    let x = save(&dir, "x.npy", &Buffer::from_vec(vec![0.0f32, 0.0, 0.0], [3]).unwrap());
    let graph = "graph @f(%x: f32[3]) {\n  %0 = exp %x : f32[3]\n  return %0\n}\n";
    let r = tenjit(&["run", "-", "--input", &format!("x={x}")], Some(graph));
    assert_ok(&r);
    assert_eq!(r.stdout, "out0: f32[3]\ntensor([1., 1., 1.])\n");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn run_binds_a_symbolic_graph_to_its_inputs_sizes() {
    let dir = temp_dir("run_binds_a_symbolic_graph_to_its_inputs_sizes");
    let graph = "graph @mean(%x: f32[B,3]) where B:2..=64 = 4 {\n  %0 = sum %x, axes=[0] : f32[3]\n  \
                 %1 = size expr=[B] : f32[3]\n  %2 = div %0, %1 : f32[3]\n  return %2\n}\n";
    let two = save(
        &dir,
        "two.npy",
        &Buffer::from_vec((0..6).map(|i| i as f32).collect::<Vec<_>>(), [2, 3]).unwrap(),
    );
    let r = tenjit(&["run", "-", "--input", &format!("x={two}")], Some(graph));
    assert_ok(&r);
    assert_eq!(r.stdout, "out0: f32[3]\ntensor([1.5000, 2.5000, 3.5000])\n");
    // A size outside the symbol's range, and values for the hints' shape only.
    let one = save(&dir, "one.npy", &Buffer::from_vec(vec![1.0f32; 3], [1, 3]).unwrap());
    assert_fails(
        &tenjit(&["run", "-", "--input", &format!("x={one}")], Some(graph)),
        1,
        &["B = 1 is outside B:2..=64"],
    );
    assert_fails(
        &tenjit(&["run", "-", "--value", "x=1,2,3"], Some(graph)),
        1,
        &["holds 12 at the graph's hints"],
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn grad_prints_the_gradient_graph_and_it_runs() {
    let r = tenjit(&["grad", LOSS], None);
    assert_ok(&r);
    assert_eq!(r.stdout, LOSS_GRAD);
    // Run the printed graph: x @ w - y = [2, -3], so the loss is 6.5 and the gradients are
    // (x @ w - y) @ wᵀ, xᵀ @ (x @ w - y) and -(x @ w - y), all exact in f32.
    let dir = temp_dir("grad_prints_the_gradient_graph_and_it_runs");
    let f32s = |v: Vec<f32>, shape: &[usize]| Buffer::from_vec(v, shape.to_vec()).unwrap();
    let x = save(&dir, "x.npy", &f32s(vec![1.0, 2.0, 3.0, 0.0, 1.0, -1.0], &[2, 3]));
    let w = save(&dir, "w.npy", &f32s(vec![1.0, 0.0, 2.0], &[3, 1]));
    let y = save(&dir, "y.npy", &f32s(vec![5.0, 1.0], &[2, 1]));
    let n = save(&dir, "n.npy", &Buffer::from_vec(vec![7i64], [0usize; 0]).unwrap());
    let out = dir.join("out");
    let inputs = [format!("x={x}"), format!("w={w}"), format!("y={y}"), format!("n={n}")];
    let mut args = vec!["run", "-", "--out", out.to_str().unwrap()];
    for i in &inputs {
        args.extend(["-i", i.as_str()]);
    }
    assert_ok(&tenjit(&args, Some(&r.stdout)));
    let load = |i: usize| npy::load(out.join(format!("out{i}.npy"))).unwrap();
    assert_eq!(load(0), f32s(vec![6.5], &[]));
    assert_eq!(load(1), f32s(vec![2.0, 0.0, 4.0, -3.0, 0.0, -6.0], &[2, 3]));
    assert_eq!(load(2), f32s(vec![2.0, 1.0, 9.0], &[3, 1]));
    assert_eq!(load(3), f32s(vec![-2.0, 3.0], &[2, 1]));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn grad_needs_one_float_scalar_output() {
    let r = tenjit(&["grad", AFFINE], None);
    assert_fails(&r, 1, &["error: tests/cli/affine.tir: grad: expected one output, the graph has 2"]);
    let r = tenjit(&["grad", "-"], Some("graph @g(%x: f32[2]) {\n  return %x\n}\n"));
    assert_fails(&r, 1, &["error: <stdin>: grad: the output must be a floating-point scalar, it is f32[2]"]);
    let r = tenjit(&["grad", "-"], Some("graph @g(%x: i32[]) {\n  return %x\n}\n"));
    assert_fails(&r, 1, &["floating-point scalar, it is i32[]"]);
}

#[test]
fn dot_draws_every_node() {
    let r = tenjit(&["dot", AFFINE], None);
    assert_ok(&r);
    assert!(r.stdout.starts_with("digraph \"affine\" {"), "{}", r.stdout);
    assert!(r.stdout.trim_end().ends_with('}'), "{}", r.stdout);
    for needle in
        ["%x\\nf32[2,3]", "%b\\nf32[2,3]", "%0 = mul", "%1 = add", "%2 = sum", "return 0", "return 1"]
    {
        assert!(r.stdout.contains(needle), "dot lacks {needle:?}:\n{}", r.stdout);
    }
}

#[test]
fn help_prints_usage() {
    for args in [&["--help"][..], &["-h"], &["help"], &["run", "--help"]] {
        let r = tenjit(args, None);
        assert_ok(&r);
        assert!(r.stdout.contains("usage:"), "{}", r.stdout);
        assert!(
            r.stdout
                .contains("tenjit run FILE [--input NAME=PATH.npy | --value NAME=V,V,...]... [--out DIR]"),
            "{}",
            r.stdout
        );
    }
}

#[test]
fn missing_file_is_an_error() {
    for cmd in ["dump", "grad", "dot", "run"] {
        let r = tenjit(&[cmd, "tests/cli/no_such_file.tir"], None);
        assert_fails(&r, 1, &["cannot read tests/cli/no_such_file.tir"]);
    }
}

#[test]
fn parse_error_names_file_line_and_column() {
    for cmd in ["dump", "grad", "dot", "run"] {
        let r = tenjit(&[cmd, BAD_OP], None);
        assert_fails(&r, 1, &["error: tests/cli/bad_op.tir:3:8: unknown op", "frobnicate"]);
    }
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(BAD_OP)).unwrap();
    let r = tenjit(&["dump", "-"], Some(&text));
    assert_fails(&r, 1, &["error: <stdin>:3:8: unknown op"]);
}

#[test]
fn missing_input_is_named() {
    let dir = temp_dir("missing_input_is_named");
    let (x, _) = affine_inputs(&dir);
    let r = tenjit(&["run", AFFINE, "--input", &format!("x={x}")], None);
    assert_fails(&r, 1, &["tests/cli/affine.tir", "missing input(s) %b", "%x: f32[2,3], %b: f32[2,3]"]);
    let r = tenjit(&["run", AFFINE], None);
    assert_fails(&r, 1, &["missing input(s) %x, %b"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unknown_input_name_lists_the_valid_ones() {
    let dir = temp_dir("unknown_input_name_lists_the_valid_ones");
    let (x, b) = affine_inputs(&dir);
    let r = tenjit(
        &["run", AFFINE, "-i", &format!("x={x}"), "-i", &format!("b={b}"), "-i", &format!("z={x}")],
        None,
    );
    assert_fails(&r, 1, &["tests/cli/affine.tir", "no input %z", "%x: f32[2,3], %b: f32[2,3]"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn duplicate_input_is_an_error() {
    let dir = temp_dir("duplicate_input_is_an_error");
    let (x, b) = affine_inputs(&dir);
    let r = tenjit(
        &["run", AFFINE, "-i", &format!("x={x}"), "-i", &format!("b={b}"), "-i", &format!("x={b}")],
        None,
    );
    assert_fails(&r, 1, &["input %x is given more than once"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn wrong_input_type_names_the_file_and_both_types() {
    let dir = temp_dir("wrong_input_type_names_the_file_and_both_types");
    let (_, b) = affine_inputs(&dir);
    // Wrong shape.
    let x = save(&dir, "x_t.npy", &Buffer::from_vec(vec![0.0f32; 6], [3, 2]).unwrap());
    let r = tenjit(&["run", AFFINE, "-i", &format!("x={x}"), "-i", &format!("b={b}")], None);
    assert_fails(&r, 1, &[&format!("error: {x}: input %x"), "declared f32[2,3]", "holds f32[3,2]"]);
    // Wrong dtype.
    let x = save(&dir, "x_f64.npy", &Buffer::from_vec(vec![0.0f64; 6], [2, 3]).unwrap());
    let r = tenjit(&["run", AFFINE, "-i", &format!("x={x}"), "-i", &format!("b={b}")], None);
    assert_fails(&r, 1, &[&format!("error: {x}: input %x"), "declared f32[2,3]", "holds f64[2,3]"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unreadable_npy_names_the_file() {
    let dir = temp_dir("unreadable_npy_names_the_file");
    let (x, _) = affine_inputs(&dir);
    let bad = dir.join("not_npy.npy");
    std::fs::write(&bad, b"hello").unwrap();
    let bad = bad.to_str().unwrap();
    let r = tenjit(&["run", AFFINE, "-i", &format!("x={x}"), "-i", &format!("b={bad}")], None);
    assert_fails(&r, 1, &[&format!("error: {bad}: not a .npy file")]);
    let missing = dir.join("missing.npy");
    let missing = missing.to_str().unwrap();
    let r = tenjit(&["run", AFFINE, "-i", &format!("x={x}"), "-i", &format!("b={missing}")], None);
    assert_fails(&r, 1, &[&format!("error: {missing}: ")]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn evaluation_error_names_the_file() {
    let dir = temp_dir("evaluation_error_names_the_file");
    let n = save(&dir, "n.npy", &Buffer::from_vec(vec![6i32, 7, 8], [3]).unwrap());
    let d = save(&dir, "d.npy", &Buffer::from_vec(vec![2i32, 0, 4], [3]).unwrap());
    let r = tenjit(&["run", DIV, "-i", &format!("n={n}"), "-i", &format!("d={d}")], None);
    // The line and column of the failing node's definition.
    assert_fails(&r, 1, &["error: tests/cli/div.tir:3:3: floor_div: integer division by zero"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn evaluation_error_names_the_line_and_the_recorded_location() {
    let graph = "graph @g(%x: f32[3], %i: i64[2]) {\n\n  %y = gather %x, %i, axis=0 : f32[2]  ; at src/model.rs:12:5\n  return %y\n}\n";
    let r = tenjit(&["run", "-", "-v", "x=1,2,3", "-v", "i=0,-4"], Some(graph));
    assert_fails(
        &r,
        1,
        &["error: <stdin>:3:3: gather: index -4 is out of bounds for dimension 0 with size 3 (at src/model.rs:12:5)"],
    );
}

#[test]
fn usage_errors_exit_with_2() {
    let cases: &[(&[&str], &str)] = &[
        (&[], "no command given"),
        (&["frob", AFFINE], "unknown command 'frob'"),
        (&["dump"], "'tenjit dump' needs a FILE"),
        (&["run"], "'tenjit run' needs a FILE"),
        (&["grad"], "'tenjit grad' needs a FILE"),
        (&["grad", AFFINE, "--out", "x"], "unknown option '--out' for 'tenjit grad'"),
        (&["dump", AFFINE, BAD_OP], "takes one FILE"),
        (&["dump", AFFINE, "--out", "x"], "unknown option '--out' for 'tenjit dump'"),
        (&["run", AFFINE, "--verbose"], "unknown option '--verbose'"),
        (&["run", AFFINE, "--input"], "option '--input' needs a value"),
        (&["run", AFFINE, "--input", "x"], "expected NAME=PATH.npy"),
        (&["run", AFFINE, "--input", "=a.npy"], "expected NAME=PATH.npy"),
        (&["run", AFFINE, "--out", "a", "--out", "b"], "'--out' given more than once"),
    ];
    for (args, message) in cases {
        let r = tenjit(args, None);
        assert_fails(&r, 2, &[message, "tenjit --help"]);
    }
}

#[test]
fn compile_prints_each_stage() {
    let file = "tests/cli/affine.tir";
    for (emit, expect) in [
        ("ir", "graph @"),
        ("fused", "k0"),
        ("kernels", "program @"),
        ("clif", "function %k0"),
        ("cuda", "extern \"C\" __global__"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tenjit"))
            .args(["compile", file, "--emit", emit])
            .output()
            .unwrap();
        assert!(out.status.success(), "--emit {emit}: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains(expect), "--emit {emit} printed:\n{text}");
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tenjit"))
        .args(["compile", file, "--emit", "asm"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected ir, fused, kernels, clif or cuda"));
}

#[test]
fn run_takes_values_written_on_the_command_line() {
    // The affine inputs of `affine_inputs`, written out: x row by row, b as one filling value
    // where it is uniform.
    let dir = temp_dir("run_takes_values_written_on_the_command_line");
    let (x, b) = affine_inputs(&dir);
    let from_files = tenjit(&["run", AFFINE, "-i", &format!("x={x}"), "-i", &format!("b={b}")], None);
    assert_ok(&from_files);
    let x_text = format_values(&npy::load(Path::new(&x)).unwrap());
    let b_text = format_values(&npy::load(Path::new(&b)).unwrap());
    let inline =
        tenjit(&["run", AFFINE, "--value", &format!("x={x_text}"), "-v", &format!("%b={b_text}")], None);
    assert_ok(&inline);
    assert_eq!(inline.stdout, from_files.stdout);
    // Brackets and spaces are ignored; one value fills the input.
    let r = tenjit(&["run", "-", "-v", "x=[[1, 2], [3, 4]]", "-v", "s=2"], Some(VALUES_GRAPH));
    assert_ok(&r);
    assert_eq!(r.stdout, "out0: f32[2,2]\ntensor([[2., 4.],\n        [6., 8.]])\n");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `x * s` over `f32[2,2]`.
const VALUES_GRAPH: &str =
    "graph @f(%x: f32[2,2], %s: f32[2,2]) {\n  %0 = mul %x, %s : f32[2,2]\n  return %0\n}\n";

/// A buffer's elements as `--value` text.
fn format_values(b: &Buffer) -> String {
    (0..b.shape().numel()).map(|i| b.scalar(i).as_f64().to_string()).collect::<Vec<_>>().join(",")
}

#[test]
fn bad_values_are_named() {
    let r = tenjit(&["run", "-", "-v", "x=1,2,3", "-v", "s=1"], Some(VALUES_GRAPH));
    assert_fails(&r, 1, &["input %x", "3 values given but f32[2,2] holds 4"]);
    let r = tenjit(&["run", "-", "-v", "x=1,two,3,4", "-v", "s=1"], Some(VALUES_GRAPH));
    assert_fails(&r, 1, &["input %x", "element 1 `two` is not a f32 value"]);
    let r = tenjit(&["run", "-", "-v", "x"], Some(VALUES_GRAPH));
    assert_fails(&r, 2, &["expected NAME=V,V,..."]);
}
