//! Any text as matchers: an error or matchers that print and parse back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use remedy::matcher::parse_matchers;

fuzz_target!(|text: &str| {
    if let Ok(matchers) = parse_matchers(text) {
        let printed: Vec<String> = matchers.iter().map(ToString::to_string).collect();
        let again = parse_matchers(&printed.join(",")).expect("printed matchers parse");
        assert_eq!(matchers, again);
    }
});
