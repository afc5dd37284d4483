//! The parser never panics, and a graph it accepts verifies and prints to text that parses back
//! to the same text.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tenjit_ir::{text, verify};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let Ok(g) = text::parse(s) else { return };
    verify(&g).expect("a parsed graph verifies");
    let printed = g.to_string();
    let again = text::parse(&printed).expect("the printed graph parses");
    assert_eq!(again.to_string(), printed, "print(parse(print(g))) == print(g)");
});
