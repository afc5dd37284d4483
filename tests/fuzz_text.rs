//! An in-process fuzz test of the text IR. Each case mutates a graph from the repository's own
//! `.tir` files (an op, a dtype, a number, an operand, a line, a character) and sends it through
//! everything that reads text: parse → verify → print → reparse (the same text), the gradient
//! graph of a float scalar output (itself printed and reparsed), and evaluation by the CPU
//! compiler against the reference interpreter. Nothing may panic; bad text is an error; a graph
//! that parses evaluates to the interpreter's values (compared exactly up to a small tolerance
//! where the graph uses only ops the compiler computes exactly; otherwise both must succeed or
//! fail together).
//!
//! A mutation that only breaks a type annotation is repaired (the annotation is replaced by the
//! type the parser inferred), so most cases reach the compiler. A failing case is shrunk, a line
//! at a time, and printed with the property it breaks.
//!
//! 3,000 cases in the normal run; `TENJIT_FUZZ_CASES=N` runs more, `TENJIT_FUZZ_SEED=S` another
//! stream. `fuzz/` has a `cargo fuzz` target of the parser for long coverage-guided runs.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::LazyLock;
use tenjit::ir::{
    autodiff, interp, text, verify, Accuracy, ArgOp, BinaryOp, Buffer, DType, Graph, Op, ReduceOp, Scalar,
    UnaryOp,
};

/// The seed graphs: every `.tir` file of the repository's tests.
fn corpus() -> Vec<String> {
    let mut files = Vec::new();
    for dir in ["ir/tests/filetests", "ir/tests/passes", "tests/cli"] {
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{dir}: {e}"))
            .map(|e| e.expect("a directory entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "tir"))
            .collect();
        paths.sort();
        files.extend(paths.into_iter().map(|p| std::fs::read_to_string(p).expect("a readable seed")));
    }
    assert!(files.len() >= 8, "the seed corpus is missing");
    files
}

#[path = "common/rng.rs"]
mod rng;
use rng::Rng;

/// Op names a mutation may substitute, from the op table, grouped so a swap often keeps the
/// arity.
static UNARY: LazyLock<Vec<&str>> = LazyLock::new(|| UnaryOp::ALL.iter().map(|u| u.spec().name).collect());
static BINARY: LazyLock<Vec<&str>> = LazyLock::new(|| BinaryOp::ALL.iter().map(|b| b.spec().name).collect());
static REDUCE: LazyLock<Vec<&str>> = LazyLock::new(|| {
    let reduce = ReduceOp::ALL.iter().map(|r| r.name());
    reduce.chain(ArgOp::ALL.iter().map(|a| a.name())).collect()
});
const DTYPES: &[&str] = &["bool", "i32", "i64", "f32", "f64"];
const SIZES: &[&str] = &["0", "1", "2", "3", "4", "7"];
const NUMBERS: &[&str] = &["-1", "0.5", "-0.0", "nan", "inf", "65536", "4294967296"];

/// The text split into tokens (runs of word characters, single other characters), so a
/// mutation can replace one.
fn tokens(s: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut word = String::new();
    for c in s.chars() {
        if c.is_alphanumeric() || c == '_' || c == '.' || c == '%' {
            word.push(c);
        } else {
            if !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
            out.push(c.to_string());
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// One random mutation of `text`.
fn mutate(r: &mut Rng, text: &str) -> String {
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let body: Vec<usize> = (0..lines.len()).filter(|&i| lines[i].trim_start().starts_with('%')).collect();
    if body.is_empty() {
        return text.to_string();
    }
    let at = body[r.below(body.len())];
    match r.below(13) {
        // Delete a line, or duplicate it under a fresh name.
        0 => {
            lines.remove(at);
        }
        1 => {
            let copy = lines[at].trim_start().split_once(' ').map_or("", |(_, rest)| rest).to_string();
            lines.insert(at + 1, format!("  %fuzz{} {copy}", r.below(1000)));
        }
        // Replace a token of the line by one of its kind.
        kind => {
            let mut toks = tokens(&lines[at]);
            let candidates: Vec<usize> = (0..toks.len())
                .filter(|&i| {
                    let t = toks[i].as_str();
                    match kind {
                        2 | 3 => UNARY.contains(&t) || BINARY.contains(&t) || REDUCE.contains(&t),
                        4 => DTYPES.contains(&t),
                        5..=7 => t.chars().next().is_some_and(|c| c.is_ascii_digit()),
                        8 | 9 => t.starts_with('%') && i > 2,
                        _ => true,
                    }
                })
                .collect();
            if candidates.is_empty() {
                return mutate_char(r, text);
            }
            let i = candidates[r.below(candidates.len())];
            toks[i] = match kind {
                2 | 3 if UNARY.contains(&toks[i].as_str()) => r.pick(&UNARY).to_string(),
                2 | 3 if BINARY.contains(&toks[i].as_str()) => r.pick(&BINARY).to_string(),
                2 | 3 => r.pick(&REDUCE).to_string(),
                4 => r.pick(DTYPES).to_string(),
                5 | 6 => r.pick(SIZES).to_string(),
                7 => r.pick(NUMBERS).to_string(),
                8 | 9 => {
                    // Another value defined above, or an input.
                    let defined: Vec<String> =
                        lines[..at].iter().flat_map(|l| tokens(l)).filter(|t| t.starts_with('%')).collect();
                    if defined.is_empty() {
                        return mutate_char(r, text);
                    }
                    defined[r.below(defined.len())].clone()
                }
                10 | 11 => return mutate_char(r, text),
                _ => String::new(),
            };
            lines[at] = toks.concat();
        }
    }
    lines.join("\n") + "\n"
}

/// Inserts, deletes or replaces one character anywhere.
fn mutate_char(r: &mut Rng, text: &str) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    let at = r.below(chars.len() + 1);
    let c =
        *[',', '[', ']', '(', ')', '=', ':', '%', '"', '\\', '-', '9', 'x', '\n', ' ', '{', '}', ';', 'é']
            .get(r.below(19))
            .expect("in range");
    match r.below(3) {
        0 => chars.insert(at, c),
        1 if at < chars.len() => {
            chars.remove(at);
        }
        _ if at < chars.len() => chars[at] = c,
        _ => chars.push(c),
    }
    chars.into_iter().collect()
}

/// Parses `text`, replacing annotations the parser reports as wrong by the inferred type, a
/// few times, so a mutation that only changed a type still yields a graph.
fn parse_repairing(text: &str) -> (String, Result<Graph, text::ParseError>) {
    let mut text = text.to_string();
    for _ in 0..8 {
        match text::parse(&text) {
            Err(e) if e.message.starts_with("annotated ") && e.message.contains(" gives ") => {
                let inferred = e.message.rsplit(" gives ").next().expect("split").to_string();
                let mut lines: Vec<String> = text.lines().map(String::from).collect();
                let Some(line) = lines.get_mut(e.line - 1) else { break };
                let Some(colon) = line.rfind(" : ") else { break };
                let (code, comment) = match line[colon..].find(';') {
                    Some(c) => (line[..colon].to_string(), format!("  {}", &line[colon + c..])),
                    None => (line[..colon].to_string(), String::new()),
                };
                *line = format!("{code} : {inferred}{comment}");
                text = lines.join("\n") + "\n";
            }
            result => return (text, result),
        }
    }
    let result = text::parse(&text);
    (text, result)
}

/// Small integer-valued inputs (exact in every dtype), so exact ops give exact results.
fn inputs(r: &mut Rng, g: &Graph) -> Vec<Buffer> {
    g.inputs()
        .iter()
        .map(|(_, id)| {
            let ty = g.ty(*id);
            let values: Vec<Scalar> = (0..ty.shape.numel())
                .map(|_| match ty.dtype {
                    DType::Bool => Scalar::Bool(r.below(2) == 1),
                    DType::I32 | DType::I64 => Scalar::Int(r.below(7) as i64 - 3),
                    DType::F16 | DType::BF16 | DType::F32 | DType::F64 => {
                        Scalar::Float(r.below(7) as f64 - 3.0)
                    }
                })
                .collect();
            Buffer::from_scalars(ty.dtype, ty.shape.clone(), values)
        })
        .collect()
}

/// Whether the compiler computes `op` as the interpreter does, to rounding of sums: the op
/// table's accuracy class says so for elementwise ops.
fn exact(op: &Op) -> bool {
    let exact = |a: Accuracy| matches!(a, Accuracy::Exact);
    match op {
        Op::Unary(u) => exact(u.spec().accuracy),
        Op::Binary(b) => exact(b.spec().accuracy),
        // A loop's body may hold anything, and repeats its rounding every trip.
        Op::Matmul | Op::Conv(_) | Op::Loop(_) => false,
        Op::Input { .. }
        | Op::Const { .. }
        | Op::Size { .. }
        | Op::Iota { .. }
        | Op::Rand { .. }
        | Op::Where
        | Op::Cast { .. }
        | Op::Reduce { .. }
        | Op::ArgReduce { .. }
        | Op::Reshape { .. }
        | Op::Permute { .. }
        | Op::Expand { .. }
        | Op::Slice { .. }
        | Op::Pad { .. }
        | Op::Concat { .. }
        | Op::Gather { .. }
        | Op::ScatterAdd { .. }
        | Op::Pool(_) => true,
    }
}

/// Equal values: bit-equal, both NaN, or floats within a relative 1e-5 (sums are added in
/// another order by the compiler).
fn agree(a: &Buffer, b: &Buffer) -> Result<(), String> {
    if a.ty() != b.ty() {
        return Err(format!("types {} and {} differ", a.ty(), b.ty()));
    }
    for i in 0..a.shape().numel() {
        let (x, y) = (a.scalar(i), b.scalar(i));
        let same = match (x, y) {
            (Scalar::Float(x), Scalar::Float(y)) => {
                x == y || (x.is_nan() && y.is_nan()) || (x - y).abs() <= 1e-5 * x.abs().max(y.abs())
            }
            _ => x == y,
        };
        if !same {
            return Err(format!("element {i}: compiled {y:?}, interpreter {x:?}"));
        }
    }
    Ok(())
}

/// Runs every stage on `text`; `Err` names the property that broke. Panics are caught.
fn check(text: &str, seed: u64) -> Result<(), String> {
    let outcome = catch_unwind(AssertUnwindSafe(|| check_stages(text, seed)));
    match outcome {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(format!("panicked: {msg}"))
        }
    }
}

fn check_stages(text: &str, seed: u64) -> Result<(), String> {
    let Ok(g) = text::parse(text) else { return Ok(()) };
    verify(&g).map_err(|e| format!("a parsed graph does not verify: {e}"))?;
    let printed = g.to_string();
    let again = text::parse(&printed).map_err(|e| format!("the printed graph does not parse: {e}"))?;
    if again.to_string() != printed {
        return Err("print(parse(print(g))) != print(g)".into());
    }
    let mut graphs = vec![g.clone()];
    let out = g.outputs().first().copied();
    if g.outputs().len() == 1 && out.is_some_and(|o| g.ty(o).shape.rank() == 0 && g.ty(o).dtype.is_float()) {
        if let Ok(dg) = autodiff::grad_graph(&g) {
            verify(&dg).map_err(|e| format!("the gradient graph does not verify: {e}"))?;
            let printed = dg.to_string();
            let again =
                text::parse(&printed).map_err(|e| format!("the gradient graph does not parse: {e}"))?;
            if again.to_string() != printed {
                return Err("the gradient graph does not print back the same".into());
            }
            graphs.push(dg);
        }
    }
    let mut r = Rng(seed | 1);
    for g in &graphs {
        // Graphs a mutation made huge (a dimension of 65536) are only parsed and printed.
        let elements = g.nodes().iter().try_fold(0usize, |sum, &n| {
            let numel = g.ty(n).shape.dims().iter().try_fold(1usize, |a, &d| a.checked_mul(d))?;
            sum.checked_add(numel)
        });
        if elements.is_none_or(|e| e > 1 << 20) {
            continue;
        }
        let xs = inputs(&mut r, g);
        let want = interp::eval(g, &xs);
        let got = tenjit::run_graph(g, &xs);
        let compare = g.nodes().iter().all(|&n| exact(g.op(n)));
        match (want, got) {
            (Ok(want), Ok(got)) if compare => {
                for (i, (w, c)) in want.iter().zip(&got).enumerate() {
                    agree(w, c).map_err(|e| format!("output {i}: {e}"))?;
                }
            }
            (Ok(_), Ok(_)) => {}
            (Err(_), Err(_)) => {}
            (Ok(_), Err(e)) => {
                return Err(format!("the compiled graph fails where the interpreter does not: {e}"))
            }
            (Err(e), Ok(_)) => {
                return Err(format!("the interpreter fails ({e}) where the compiled graph does not"))
            }
        }
    }
    Ok(())
}

/// Removes lines (and re-repairs annotations) while the same property still breaks.
fn shrink(mut text: String, seed: u64, failure: &str) -> String {
    let kind = |f: &str| f.split(':').next().unwrap_or("").to_string();
    loop {
        let lines: Vec<&str> = text.lines().collect();
        let smaller = (0..lines.len()).rev().find_map(|i| {
            let mut fewer = lines.clone();
            fewer.remove(i);
            let (candidate, _) = parse_repairing(&(fewer.join("\n") + "\n"));
            match check(&candidate, seed) {
                Err(f) if kind(&f) == kind(failure) => Some(candidate),
                _ => None,
            }
        });
        match smaller {
            Some(s) => text = s,
            None => return text,
        }
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[test]
fn mutated_text_never_panics_and_compiles_to_the_interpreters_values() {
    tenjit::set_backend(tenjit::Backend::Cpu);
    let corpus = corpus();
    let cases = env_u64("TENJIT_FUZZ_CASES", 3_000);
    let mut r = Rng(env_u64("TENJIT_FUZZ_SEED", 0x5eed_7e47) | 1);
    let (mut parsed, mut compared) = (0, 0);
    for case in 0..cases {
        let seed = r.next();
        let mut text = corpus[r.below(corpus.len())].clone();
        for _ in 0..1 + r.below(3) {
            text = mutate(&mut r, &text);
        }
        let (text, result) = parse_repairing(&text);
        if let Err(e) = &result {
            if std::env::var_os("TENJIT_FUZZ_LOG").is_some() {
                eprintln!("PARSEERR {}", e.message.split(['`', '%']).next().unwrap_or(""));
            }
        }
        if let Ok(g) = &result {
            parsed += 1;
            compared += g.nodes().iter().all(|&n| exact(g.op(n))) as usize;
        }
        if let Err(failure) = check(&text, seed) {
            let small = shrink(text.clone(), seed, &failure);
            let small_failure = check(&small, seed).err().unwrap_or(failure.clone());
            panic!(
                "case {case} (seed {seed}): {small_failure}\n--- shrunk graph ---\n{small}\n--- original ---\n{text}"
            );
        }
    }
    eprintln!("{cases} cases: {parsed} parsed, {compared} compared value by value");
    // The mutations must reach the compiler, or the test checks only the parser.
    assert!(parsed * 4 >= cases as usize, "only {parsed} of {cases} mutated texts parsed");
    assert!(
        compared * 10 >= cases as usize,
        "only {compared} of {cases} graphs were compared value by value"
    );
}
