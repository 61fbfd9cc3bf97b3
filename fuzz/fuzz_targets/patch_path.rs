//! Any string: parsing a PATCH path never panics, and a parsed path prints to text that parses
//! back to the same path.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scim::PatchPath;

fuzz_target!(|input: &str| {
    let Ok(parsed) = PatchPath::parse(input) else { return };
    let printed = parsed.to_string();
    match PatchPath::parse(&printed) {
        Ok(again) => assert_eq!(again, parsed, "{input:?} printed as {printed:?}"),
        Err(e) => panic!("{input:?} printed as {printed:?}, which does not parse: {e}"),
    }
});
