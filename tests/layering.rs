//! The crate's layering, read from its source: front end → compile → runtime → backends, one
//! direction.
//!
//! Each file's dependencies are the modules its `crate::` and `super::` paths name (comments
//! excluded), resolved to the file that defines them; a name the crate root re-exports
//! (`crate::grad`) counts as the module it comes from; a module's own submodules, named by
//! relative paths, are not counted. The tests assert that backends name no front-end, compile
//! or runtime module (but for the trait their `backend.rs` implements), that only the runtime
//! names a backend, and that no two files depend on each other through a chain of such paths.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, relative to the crate root, with `/` separators.
fn rust_files(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let mut entries: Vec<PathBuf> =
        std::fs::read_dir(dir).expect("readable source folder").map(|e| e.expect("entry").path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(root).expect("under the root");
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
}

/// The module path of a file: `src/tensor/mod.rs` is `["tensor"]`, `src/lib.rs` is `[]`.
fn module_of(file: &str) -> Vec<String> {
    let stem = file.trim_start_matches("src/").trim_end_matches(".rs");
    let mut parts: Vec<String> = stem.split('/').map(str::to_string).collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

/// The file that defines the longest prefix of `path` that is a module (the crate root when
/// none is).
fn resolve(files: &BTreeSet<String>, path: &[String]) -> String {
    for k in (1..=path.len()).rev() {
        let base = format!("src/{}", path[..k].join("/"));
        for candidate in [format!("{base}.rs"), format!("{base}/mod.rs")] {
            if files.contains(&candidate) {
                return candidate;
            }
        }
    }
    "src/lib.rs".to_string()
}

/// The source without comment lines (docs may name any module).
fn code_of(text: &str) -> String {
    text.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

/// The paths after each `crate::` or `super::` in `code`: (which keyword, the segments).
/// A brace group (`crate::{a, b::c}`) gives one path per member.
fn paths(code: &str) -> Vec<(bool, Vec<String>)> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    for (kw, is_crate) in [("crate::", true), ("super::", false)] {
        let mut from = 0;
        while let Some(at) = code[from..].find(kw) {
            let start = from + at;
            from = start + kw.len();
            if start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_') {
                continue;
            }
            let mut segments = Vec::new();
            let mut i = from;
            loop {
                let rest = &code[i..];
                if rest.starts_with('{') {
                    let end = rest.find('}').unwrap_or(rest.len());
                    for member in rest[1..end].split(',') {
                        let mut p = segments.clone();
                        p.extend(member.trim().split("::").filter(|s| !s.is_empty()).map(str::to_string));
                        if p.len() > segments.len() {
                            out.push((is_crate, p));
                        }
                    }
                    segments.clear();
                    break;
                }
                let len = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
                if len == 0 {
                    break;
                }
                segments.push(rest[..len].to_string());
                i += len;
                if code[i..].starts_with("::") {
                    i += 2;
                } else {
                    break;
                }
            }
            if !segments.is_empty() {
                out.push((is_crate, segments));
            }
        }
    }
    out
}

/// The names `src/lib.rs` re-exports, each with the module path it comes from.
fn reexports(lib: &str) -> BTreeMap<String, Vec<String>> {
    let mut map = BTreeMap::new();
    let code = code_of(lib);
    for statement in code.split(';') {
        let Some(at) = statement.find("pub use ") else { continue };
        let text: String = statement[at + 8..].split_whitespace().collect();
        match text.split_once("::{") {
            Some((module, names)) => {
                for name in names.trim_end_matches('}').split(',').filter(|n| !n.is_empty()) {
                    map.insert(name.to_string(), module.split("::").map(str::to_string).collect());
                }
            }
            None => {
                if let Some((module, name)) = text.rsplit_once("::") {
                    map.insert(name.to_string(), module.split("::").map(str::to_string).collect());
                }
            }
        }
    }
    map
}

/// Per source file, the files it depends on (itself and the crate root excluded).
fn dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut list = Vec::new();
    rust_files(root, &root.join("src"), &mut list);
    let files: BTreeSet<String> = list.iter().cloned().collect();
    let read = |f: &str| std::fs::read_to_string(root.join(f)).expect("readable source file");
    let reexported = reexports(&read("src/lib.rs"));
    let mut graph = BTreeMap::new();
    for file in &list {
        let module = module_of(file);
        let mut deps = BTreeSet::new();
        for (is_crate, segments) in paths(&code_of(&read(file))) {
            // `super::` is the parent of the file's module (for `a/mod.rs` and `a.rs` alike).
            let mut path: Vec<String> =
                if is_crate { Vec::new() } else { module[..module.len().saturating_sub(1)].to_vec() };
            path.extend(segments);
            // A crate-root name that is not a module is a re-export: follow it.
            let root_item = is_crate && resolve(&files, &path[..1]) == "src/lib.rs";
            if let Some(from) = reexported.get(&path[0]).filter(|_| root_item) {
                path = from.iter().chain(&path).cloned().collect();
            }
            let target = resolve(&files, &path);
            if &target != file && target != "src/lib.rs" {
                deps.insert(target);
            }
        }
        graph.insert(file.clone(), deps);
    }
    graph
}

/// Whether `file` belongs to the front end (tensors, realization, gradients, models).
fn is_front_end(file: &str) -> bool {
    file.starts_with("src/tensor/")
        || ["src/realize.rs", "src/autograd.rs", "src/nn.rs", "src/optim.rs"].contains(&file)
}

#[test]
fn backends_see_no_front_end_compile_or_runtime() {
    let forbidden = ["tensor", "realize", "autograd", "device", "compile", "runtime"];
    let mut offences = Vec::new();
    for (file, deps) in dependencies() {
        if !file.starts_with("src/backend/") {
            continue;
        }
        // A backend's `backend.rs` implements the runtime's trait, so it names the runtime
        // (and nothing else above the backends).
        let adapter = file.ends_with("/backend.rs");
        for dep in deps {
            let allowed = adapter && dep.starts_with("src/runtime/");
            if !allowed && forbidden.iter().any(|m| dep.starts_with(&format!("src/{m}"))) {
                offences.push(format!("{file} names {dep}"));
            }
        }
    }
    assert!(offences.is_empty(), "backends must see only kernels:\n{}", offences.join("\n"));
}

#[test]
fn only_the_runtime_names_a_backend() {
    // The front end above all, but also compile, jit, inspect and devices: they reach a
    // backend through the runtime.
    let mut offences = Vec::new();
    for (file, deps) in dependencies() {
        if !is_front_end(&file) && (file.starts_with("src/backend/") || file.starts_with("src/runtime/")) {
            continue;
        }
        for dep in deps {
            if dep.starts_with("src/backend/") {
                offences.push(format!("{file} names {dep}"));
            }
        }
    }
    assert!(
        offences.is_empty(),
        "the front end talks to backends through the runtime:\n{}",
        offences.join("\n")
    );
}

/// The files on a dependency circle with `start` (empty when there is none).
fn circle_through(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> BTreeSet<String> {
    let reach = |from: &str, forward: bool| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.to_string()];
        while let Some(f) = stack.pop() {
            let next: Vec<String> = if forward {
                graph.get(&f).map(|d| d.iter().cloned().collect()).unwrap_or_default()
            } else {
                graph.iter().filter(|(_, d)| d.contains(&f)).map(|(k, _)| k.clone()).collect()
            };
            for n in next {
                if seen.insert(n.clone()) {
                    stack.push(n);
                }
            }
        }
        seen
    };
    let (down, up) = (reach(start, true), reach(start, false));
    down.intersection(&up).cloned().collect()
}

#[test]
fn no_import_cycles() {
    let graph = dependencies();
    let mut circles = BTreeSet::new();
    for file in graph.keys() {
        let circle = circle_through(&graph, file);
        if !circle.is_empty() {
            circles.insert(circle.into_iter().collect::<Vec<_>>().join(" ↔ "));
        }
    }
    assert!(circles.is_empty(), "import cycles:\n{}", circles.into_iter().collect::<Vec<_>>().join("\n"));
}

#[test]
fn the_scanner_sees_paths() {
    // The checks above are only as good as the scanner: it must see every form of path.
    let code = "use crate::tensor::{Tensor, INTERIOR};\nuse super::elementwise::binary;\nlet x = crate::grad(&[]);\nuse crate::{a, b::c};";
    let found = paths(code);
    assert!(found.contains(&(true, vec!["tensor".into(), "Tensor".into()])));
    assert!(found.contains(&(true, vec!["tensor".into(), "INTERIOR".into()])));
    assert!(found.contains(&(false, vec!["elementwise".into(), "binary".into()])));
    assert!(found.contains(&(true, vec!["grad".into()])));
    assert!(found.contains(&(true, vec!["b".into(), "c".into()])));
    let graph = dependencies();
    assert!(graph["src/autograd.rs"].contains("src/realize.rs"));
    assert!(graph["src/tensor/inplace.rs"].contains("src/tensor/elementwise.rs"));
    assert!(graph["src/optim.rs"].contains("src/autograd.rs"), "crate::NoGradGuard is autograd's");
    assert!(graph["src/tensor/convert.rs"].contains("src/runtime/mod.rs"), "crate::runtime::upload");
}
