//! Keeps the README's cheat sheet true: every entry of its tenjit column must appear in the
//! README's doctest (which `cargo test` compiles and runs), so an entry that does not compile
//! or does not do what the table says fails the build.

const README: &str = include_str!("../README.md");

/// The inline-code spans of a table cell.
fn spans(cell: &str) -> Vec<&str> {
    cell.split('`').skip(1).step_by(2).collect()
}

#[test]
fn every_tenjit_entry_of_the_cheat_sheet_is_doctested() {
    let start = README.find("| NumPy | PyTorch | tenjit |").expect("the cheat sheet");
    let table: Vec<&str> = README[start..].lines().skip(2).take_while(|l| l.starts_with('|')).collect();
    assert!(table.len() > 60, "the cheat sheet has {} rows", table.len());
    let doctest_start = README[start..].find("```rust").expect("the cheat sheet's doctest") + start;
    let doctest_end =
        README[doctest_start + 7..].find("```").expect("end of the doctest") + doctest_start + 7;
    let doctest = &README[doctest_start..doctest_end];
    let mut missing = Vec::new();
    for row in &table {
        let cells: Vec<&str> = row.trim_matches('|').split(" | ").collect();
        assert_eq!(cells.len(), 3, "a row of three columns: {row}");
        let entries = spans(cells[2]);
        assert!(!entries.is_empty(), "the tenjit column of `{row}` is empty");
        for e in entries {
            if !doctest.contains(e) {
                missing.push(e);
            }
        }
    }
    assert!(missing.is_empty(), "cheat-sheet entries not exercised by the doctest: {missing:?}");
}
