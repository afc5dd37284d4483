//! `TENJIT_DUMP=DIR` writes every stage of every compilation. One test: the variable is read
//! once per process.

use tenjit::prelude::*;

#[test]
fn tenjit_dump_writes_every_stage() {
    let dir = std::env::temp_dir().join(format!("tenjit-dump-{}", std::process::id()));
    std::env::set_var("TENJIT_DUMP", &dir);
    tenjit::set_backend(tenjit::Backend::Cpu);
    let x = Tensor::rand([64]).realize().clone();
    (x.sin() + x.cos().pow(2)).realize();
    let mut names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    // The first compilation of the process is the rand leaf's; take the last one's files.
    let last = names.iter().filter_map(|n| n.get(..3)).max().unwrap().to_string();
    let of_last: Vec<&str> = names.iter().filter(|n| n.starts_with(&last)).map(|n| &n[4..]).collect();
    assert_eq!(
        of_last,
        [
            "0-traced.tir",
            "1-after-sink-slices.tir",
            "2-after-transpose-products.tir",
            "3-after-simplify.tir",
            "4-after-cse.tir",
            "5-after-dce.tir",
            "6-after-split-reduce.tir",
            "clif.txt",
            "cuda.cu",
            "kernel-ir.txt",
            "kernels.txt"
        ]
    );
    let read = |name: &str| std::fs::read_to_string(dir.join(format!("{last}-{name}"))).unwrap();
    assert!(read("0-traced.tir").contains("sin"));
    assert!(read("kernels.txt").contains("k0  elementwise"), "{}", read("kernels.txt"));
    assert!(read("kernel-ir.txt").contains("cos"));
    assert!(read("clif.txt").contains("function %k0"));
    assert!(read("cuda.cu").contains("__global__ void"), "{}", read("cuda.cu"));
    // The dumped IR parses back.
    tenjit::ir::text::parse(&read("5-after-dce.tir")).unwrap();
    std::fs::remove_dir_all(&dir).ok();
}
