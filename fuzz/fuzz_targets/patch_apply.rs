//! Placeholder so the fuzz crate builds; the PATCH-application target replaces it.
#![no_main]

libfuzzer_sys::fuzz_target!(|_data: &[u8]| {});
