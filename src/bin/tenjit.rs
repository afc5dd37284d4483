//! The tenjit command-line tool: reads a graph in the text IR and prints it, differentiates it,
//! draws it, or runs it on the reference interpreter.
//!
//! ```text
//! tenjit dump FILE                                  parse, verify, print the canonical text
//! tenjit grad FILE                                  print the gradient graph of FILE
//! tenjit run FILE [--input NAME=PATH.npy | --value NAME=V,V,...]... [--out DIR]
//! tenjit dot FILE                                   print Graphviz DOT
//! tenjit compile FILE --emit ir|fused|kernels|clif|cuda  print a stage of the compiler
//! ```
//!
//! `FILE` may be `-` for standard input. Errors go to standard error as `error: ...`, naming the
//! file (and `line:col` for parse errors); the exit code is 1 for errors in the files or inputs
//! given and 2 for a malformed command line. The tool never panics on bad input.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tenjit::ir::format::{format_tensor, PrintOptions};
use tenjit::ir::text::Lines;
use tenjit::ir::{autodiff, dot, interp, npy, text, verify, Buffer, Graph, Scalar, TensorType};

const USAGE: &str = "\
tenjit: read, draw and run graphs in the tenjit text IR

usage:
  tenjit dump FILE                   parse and verify FILE, print its canonical text
  tenjit grad FILE                   print the gradient graph of FILE, whose one output must be
                                     a float scalar: it returns that output, then its gradient
                                     with respect to each float input, in order
  tenjit run FILE [--input NAME=PATH.npy | --value NAME=V,V,...]... [--out DIR]
                                     run FILE on the reference interpreter
  tenjit dot FILE                    print FILE as a Graphviz DOT digraph
  tenjit compile FILE [--emit STAGE] print a stage of compiling FILE:
                                     ir      the graph after the pass pipeline (sink-slices,
                                             transpose-products, simplify, cse, dce,
                                             split-reduce)
                                     fused   the kernel list, with why each boundary exists
                                     kernels the kernel IR (the default)
                                     clif    the CLIF of each kernel (CPU)
                                     cuda    the CUDA C of the program (GPU)
  tenjit --help                      print this help

FILE may be '-' to read standard input.

run options:
  -i, --input NAME=PATH.npy  the value of graph input %NAME, read from a .npy file (NumPy's
                             np.save, or Tensor::save_npy, writes one)
  -v, --value NAME=V,V,...   the value of graph input %NAME written out: its elements in
                             row-major order, as many as its declared type holds, or one
                             value that fills it (brackets and spaces are ignored, so
                             '[[1, 2], [3, 4]]' works); every input of the graph must be
                             given exactly once, with --input or --value
  -o, --out DIR              write output i to DIR/out<i>.npy (DIR is created) and print a
                             one-line summary per output; without --out the outputs' values
                             are printed

exit status: 0 on success, 1 on an error in the files or inputs, 2 on a usage error";

/// Why the tool stopped.
#[derive(Debug)]
enum Failure {
    /// The command line is malformed (exit code 2).
    Usage(String),
    /// A file, input or graph is wrong (exit code 1).
    User(String),
}

fn usage(msg: impl Into<String>) -> Failure {
    Failure::Usage(msg.into())
}

fn user(msg: impl Into<String>) -> Failure {
    Failure::User(msg.into())
}

/// A stage `tenjit compile` prints.
#[derive(Debug, Clone, Copy)]
enum Emit {
    Ir,
    Fused,
    Kernels,
    Clif,
    Cuda,
}

/// A parsed command line.
#[derive(Debug)]
enum Command {
    Help,
    Dump { file: String },
    Grad { file: String },
    Dot { file: String },
    Compile { file: String, emit: Emit },
    Run { file: String, inputs: Vec<(String, Source)>, out: Option<PathBuf> },
}

/// Where `tenjit run` takes an input's value from.
#[derive(Debug)]
enum Source {
    /// A `.npy` file.
    File(PathBuf),
    /// Elements written on the command line, comma-separated.
    Values(String),
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match parse_args(&args).and_then(execute) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(msg)) => {
            eprintln!("error: {msg}");
            eprintln!("run 'tenjit --help' for usage");
            ExitCode::from(2)
        }
        Err(Failure::User(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(1)
        }
    }
}

/// Takes the value of option `name`, either from `--name=VALUE` (`inline`) or the next argument.
fn option_value(
    name: &str,
    inline: Option<&str>,
    rest: &mut std::slice::Iter<'_, String>,
) -> Result<String, Failure> {
    match inline {
        Some(v) => Ok(v.to_string()),
        None => rest.next().cloned().ok_or_else(|| usage(format!("option '{name}' needs a value"))),
    }
}

fn parse_args(args: &[String]) -> Result<Command, Failure> {
    let Some((cmd, rest)) = args.split_first() else {
        return Err(usage("no command given (expected dump, grad, run, dot or compile)"));
    };
    let cmd = cmd.as_str();
    match cmd {
        "-h" | "--help" | "help" => return Ok(Command::Help),
        "dump" | "grad" | "run" | "dot" | "compile" => {}
        _ => {
            return Err(usage(format!("unknown command '{cmd}' (expected dump, grad, run, dot or compile)")))
        }
    }
    let mut file: Option<String> = None;
    let mut inputs = Vec::new();
    let mut out: Option<PathBuf> = None;
    let mut emit = Emit::Kernels;
    let mut it = rest.iter();
    while let Some(arg) = it.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(Command::Help);
        }
        if arg.len() > 1 && arg.starts_with('-') {
            let (name, inline) = match arg.split_once('=') {
                Some((n, v)) if n.starts_with("--") => (n, Some(v)),
                _ => (arg.as_str(), None),
            };
            match (cmd, name) {
                ("run", "-i" | "--input" | "-v" | "--value") => {
                    let file = matches!(name, "-i" | "--input");
                    let form = if file { "NAME=PATH.npy" } else { "NAME=V,V,..." };
                    let value = option_value(name, inline, &mut it)?;
                    let Some((input, rhs)) = value.split_once('=') else {
                        return Err(usage(format!("'{name} {value}': expected {form}")));
                    };
                    let input = input.strip_prefix('%').unwrap_or(input);
                    if input.is_empty() || rhs.is_empty() {
                        return Err(usage(format!("'{name} {value}': expected {form}")));
                    }
                    let source =
                        if file { Source::File(PathBuf::from(rhs)) } else { Source::Values(rhs.to_string()) };
                    inputs.push((input.to_string(), source));
                }
                ("run", "-o" | "--out") => {
                    let value = option_value(name, inline, &mut it)?;
                    if out.replace(PathBuf::from(value)).is_some() {
                        return Err(usage("option '--out' given more than once"));
                    }
                }
                ("compile", "--emit") => {
                    let value = option_value(name, inline, &mut it)?;
                    emit = match value.as_str() {
                        "ir" => Emit::Ir,
                        "fused" => Emit::Fused,
                        "kernels" => Emit::Kernels,
                        "clif" => Emit::Clif,
                        "cuda" => Emit::Cuda,
                        other => {
                            return Err(usage(format!(
                                "'--emit {other}': expected ir, fused, kernels, clif or cuda"
                            )))
                        }
                    };
                }
                _ => return Err(usage(format!("unknown option '{name}' for 'tenjit {cmd}'"))),
            }
            continue;
        }
        if let Some(first) = &file {
            return Err(usage(format!("'tenjit {cmd}' takes one FILE, got '{first}' and '{arg}'")));
        }
        file = Some(arg.clone());
    }
    let Some(file) = file else {
        return Err(usage(format!("'tenjit {cmd}' needs a FILE ('-' for standard input)")));
    };
    Ok(match cmd {
        "dump" => Command::Dump { file },
        "grad" => Command::Grad { file },
        "dot" => Command::Dot { file },
        "compile" => Command::Compile { file, emit },
        _ => Command::Run { file, inputs, out },
    })
}

fn execute(cmd: Command) -> Result<(), Failure> {
    match cmd {
        Command::Help => write_stdout(USAGE),
        Command::Dump { file } => {
            let g = load_graph(&file)?;
            write_stdout(&text::print(&g))
        }
        Command::Grad { file } => {
            let g = load_graph(&file)?;
            let grad = autodiff::grad_graph(&g).map_err(|e| user(format!("{}: {e}", display_name(&file))))?;
            write_stdout(&text::print(&grad))
        }
        Command::Dot { file } => {
            let g = load_graph(&file)?;
            write_stdout(&dot::to_dot(&g))
        }
        Command::Run { file, inputs, out } => run(&file, &inputs, out.as_deref()),
        Command::Compile { file, emit } => {
            let g = load_graph(&file)?;
            let stages =
                tenjit::compile_stages(&g).map_err(|e| user(format!("{}: {e}", display_name(&file))))?;
            let text = match emit {
                Emit::Ir => stages.passes.last().map(|(_, t)| t.clone()).unwrap_or(stages.traced),
                Emit::Fused => stages.kernels,
                Emit::Kernels => stages.program,
                Emit::Clif => {
                    stages.clif.iter().map(|(name, text)| format!("; kernel {name}\n{text}\n")).collect()
                }
                Emit::Cuda => stages.cuda,
            };
            write_stdout(&text)
        }
    }
}

/// The name errors use for `file`.
fn display_name(file: &str) -> &str {
    if file == "-" {
        "<stdin>"
    } else {
        file
    }
}

/// Reads, parses and verifies the graph in `file` (`-` for standard input).
fn load_graph(file: &str) -> Result<Graph, Failure> {
    load_graph_with_lines(file).map(|(g, _)| g)
}

/// [`load_graph`], with the line and column of each node's definition.
fn load_graph_with_lines(file: &str) -> Result<(Graph, Lines), Failure> {
    let name = display_name(file);
    let mut src = String::new();
    let read = if file == "-" {
        io::stdin().read_to_string(&mut src).map(drop)
    } else {
        std::fs::File::open(file).and_then(|mut f| f.read_to_string(&mut src)).map(drop)
    };
    read.map_err(|e| user(format!("cannot read {name}: {e}")))?;
    let (g, lines) = text::parse_with_lines(&src).map_err(|e| user(format!("{name}:{e}")))?;
    verify(&g).map_err(|e| user(format!("{name}: {}", e.to_string().trim_end())))?;
    Ok((g, lines))
}

/// An evaluation error of a graph read from `name`, pointing at the line that defines the
/// failing node (`div.tir:3:3: floor_div: integer division by zero`), followed by the source
/// location the text records for it, if any.
fn eval_error(name: &str, lines: &Lines, e: &interp::EvalError) -> String {
    use interp::EvalError as E;
    let (node, what, loc) = match e {
        E::Arithmetic { node, op, message, loc } => (*node, format!("{op}: {message}"), loc),
        E::IndexOutOfRange { node, op, index, axis, size, loc } => (
            *node,
            format!("{op}: index {index} is out of bounds for dimension {axis} with size {size}"),
            loc,
        ),
        E::Verify(_)
        | E::InputCount { .. }
        | E::InputType { .. }
        | E::Bind(_)
        | E::TooLarge { .. }
        | E::Internal { .. } => {
            return format!("{name}: {e}");
        }
    };
    let at = loc.as_ref().map(|l| format!(" (at {l})")).unwrap_or_default();
    match lines.get(&node) {
        Some((line, col)) => format!("{name}:{line}:{col}: {what}{at}"),
        None => format!("{name}: {e}"),
    }
}

/// Writes `s` to standard output, ending it with a line break if it has none; a failed write is
/// an error, not a panic.
fn write_stdout(s: &str) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    let newline: &[u8] = if s.is_empty() || s.ends_with('\n') { b"" } else { b"\n" };
    out.write_all(s.as_bytes())
        .and_then(|()| out.write_all(newline))
        .and_then(|()| out.flush())
        .map_err(|e| user(format!("cannot write to standard output: {e}")))
}

/// A comma-separated list of `%name: type` for the graph's inputs, for error messages.
fn describe_inputs(g: &Graph) -> String {
    if g.inputs().is_empty() {
        return "the graph takes no inputs".to_string();
    }
    let list: Vec<String> = g.inputs().iter().map(|(n, id)| format!("%{n}: {}", g.ty(*id))).collect();
    format!("the graph's inputs are {}", list.join(", "))
}

fn run(file: &str, given: &[(String, Source)], out: Option<&Path>) -> Result<(), Failure> {
    let name = display_name(file);
    let (g, lines) = load_graph_with_lines(file)?;
    // Match the given inputs to the graph's by name.
    let mut by_name: BTreeMap<&str, &Source> = BTreeMap::new();
    for (input, source) in given {
        if !g.inputs().iter().any(|(n, _)| n == input) {
            return Err(user(format!("{name}: the graph has no input %{input}; {}", describe_inputs(&g))));
        }
        if by_name.insert(input, source).is_some() {
            return Err(user(format!("input %{input} is given more than once")));
        }
    }
    let missing: Vec<String> = g
        .inputs()
        .iter()
        .filter(|(n, _)| !by_name.contains_key(n.as_str()))
        .map(|(n, _)| format!("%{n}"))
        .collect();
    if !missing.is_empty() {
        return Err(user(format!(
            "{name}: missing input(s) {} (give each with --input NAME=PATH.npy or --value NAME=V,V,...); {}",
            missing.join(", "),
            describe_inputs(&g)
        )));
    }
    // Load each input and check its type against the declared one.
    let mut buffers: Vec<Buffer> = Vec::with_capacity(g.inputs().len());
    for (input, id) in g.inputs() {
        let declared = g.ty(*id);
        let path = match by_name[input.as_str()] {
            Source::Values(text) => {
                buffers.push(parse_values(text, declared).map_err(|e| user(format!("input %{input}: {e}")))?);
                continue;
            }
            Source::File(path) => path,
        };
        let buf = npy::load(path).map_err(|e| user(format!("{e} (the value of input %{input})")))?;
        // A symbolic shape takes any sizes its symbols allow: running the graph checks them.
        let fits = if declared.shape.is_symbolic() {
            buf.dtype() == declared.dtype && buf.shape().rank() == declared.shape.rank()
        } else {
            buf.ty() == *declared
        };
        if !fits {
            return Err(user(format!(
                "{}: input %{input} of {name} is declared {declared} but the file holds {}",
                path.display(),
                buf.ty()
            )));
        }
        buffers.push(buf);
    }
    let outputs = interp::eval(&g, &buffers).map_err(|e| user(eval_error(name, &lines, &e)))?;
    match out {
        Some(dir) => write_outputs(dir, &outputs),
        None => print_outputs(&outputs),
    }
}

/// The value of an input of type `ty` written as `--value` text: comma-separated elements in
/// row-major order (brackets and whitespace ignored), as many as `ty` holds, or one that fills it.
fn parse_values(text: &str, ty: &TensorType) -> Result<Buffer, String> {
    let cleaned: String = text.chars().filter(|c| !matches!(c, '[' | ']') && !c.is_whitespace()).collect();
    let mut values = Vec::new();
    for (i, item) in cleaned.split(',').enumerate() {
        let value = Scalar::parse(item, ty.dtype)
            .ok_or_else(|| format!("element {i} `{item}` is not a {} value", ty.dtype))?;
        values.push(value);
    }
    let numel = ty.shape.numel();
    // A symbolic input takes its sizes at the graph's hints here (an .npy file gives others).
    let at_hints = if ty.shape.is_symbolic() {
        format!(" at the graph's hints (give an .npy file with --input to run {ty} at other sizes)")
    } else {
        String::new()
    };
    let shape = ty.shape.concrete();
    match values.len() {
        1 => Ok(Buffer::full(&tenjit_ir::TensorType::new(ty.dtype, shape), values[0])),
        n if n == numel => Ok(Buffer::from_scalars(ty.dtype, shape, values)),
        n => Err(format!("{n} values given but {ty} holds {numel}{at_hints} (or give one value to fill it)")),
    }
}

fn io_error(what: impl Display, e: io::Error) -> Failure {
    user(format!("{what}: {e}"))
}

fn write_outputs(dir: &Path, outputs: &[Buffer]) -> Result<(), Failure> {
    std::fs::create_dir_all(dir).map_err(|e| io_error(format_args!("cannot create {}", dir.display()), e))?;
    let mut summary = String::new();
    for (i, buf) in outputs.iter().enumerate() {
        let path = dir.join(format!("out{i}.npy"));
        npy::save(&path, buf).map_err(|e| io_error(format_args!("cannot write {}", path.display()), e))?;
        summary.push_str(&format!("out{i}: {} -> {}\n", buf.ty(), path.display()));
    }
    write_stdout(&summary)
}

fn print_outputs(outputs: &[Buffer]) -> Result<(), Failure> {
    let mut text = String::new();
    for (i, buf) in outputs.iter().enumerate() {
        text.push_str(&format!("out{i}: {}\n{}\n", buf.ty(), format_tensor(buf, &PrintOptions::default())));
    }
    write_stdout(&text)
}
