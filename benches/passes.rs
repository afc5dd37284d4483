//! Compile time on long graphs: the standard passes and the lowering over a chain of
//! `x * c + c` steps (three nodes a step, seven shared constants after CSE), at 30,000,
//! 100,000 and 300,000 nodes. Each stage should grow linearly with the graph; before dead
//! nodes were removed in one sweep, DCE alone took 7.8 s at 300,000 nodes.
//!
//! `cargo bench --bench passes` prints one line per size with the median of 3 runs of each
//! stage; `-- FILE.tir...` times the same stages on graphs from files instead (the graphs
//! `TENJIT_DUMP` writes as `NNN-0-traced.tir`, such as the W8 training step's). Nothing here
//! asserts a time.

use std::time::{Duration, Instant};
use tenjit::ir::{kernel, passes, verify, BinaryOp, DType, Graph, Op, Scalar, Shape, TensorType};

fn chain(steps: usize) -> Graph {
    let mut g = Graph::new("chain");
    let ty = TensorType::new(DType::F32, Shape::new(&[4]));
    let mut x = g.add_input("x", ty.clone());
    for i in 0..steps {
        let c = g.add(Op::Const { value: Scalar::Float((i % 7 + 2) as f64), ty: ty.clone() }, &[]).unwrap();
        x = g.add(Op::Binary(BinaryOp::Mul), &[x, c]).unwrap();
        x = g.add(Op::Binary(BinaryOp::Add), &[x, c]).unwrap();
    }
    g.set_outputs(vec![x]);
    g
}

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e3
}

fn main() {
    // Lowering recurses along the chain: give it room (a deep expression is one kernel).
    std::thread::Builder::new()
        .stack_size(1 << 30)
        .spawn(run)
        .expect("a benchmark thread")
        .join()
        .expect("the benchmark finished");
}

fn run() {
    let standard = passes::standard();
    let names: Vec<&str> = standard.iter().map(|p| p.name()).collect();
    println!("nodes    {}  verify(all)  lower   (ms, median of 3)", names.join("  "));
    let files: Vec<String> = std::env::args().skip(1).filter(|a| a.ends_with(".tir")).collect();
    let graphs: Vec<(String, Graph)> = if files.is_empty() {
        [10_000, 33_333, 100_000]
            .into_iter()
            .map(|steps| ((3 * steps + 1).to_string(), chain(steps)))
            .collect()
    } else {
        files
            .iter()
            .map(|f| {
                let text = std::fs::read_to_string(f).unwrap_or_else(|e| panic!("{f}: {e}"));
                (f.clone(), tenjit::ir::text::parse(&text).unwrap_or_else(|e| panic!("{f}: {e}")))
            })
            .collect()
    };
    for (label, graph) in graphs {
        let mut times: Vec<Vec<Duration>> = vec![Vec::new(); names.len() + 2];
        for _ in 0..3 {
            let mut g = graph.clone();
            let mut verify_time = Duration::ZERO;
            for (i, pass) in standard.iter().enumerate() {
                let t = Instant::now();
                pass.run(&mut g);
                times[i].push(t.elapsed());
                let t = Instant::now();
                verify(&g).expect("the pipeline keeps the graph valid");
                verify_time += t.elapsed();
            }
            times[names.len()].push(verify_time);
            let t = Instant::now();
            let program = kernel::lower::lower(&g);
            times[names.len() + 1].push(t.elapsed());
            assert!(!files.is_empty() || program.steps.len() == 1, "a chain is one kernel");
        }
        let cells: Vec<String> = times.into_iter().map(|t| format!("{:8.1}", median(t))).collect();
        println!("{label:<8} {}", cells.join(" "));
    }
}
