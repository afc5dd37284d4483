//! The tenjit command-line tool.

fn main() {}
