#[test] fn boots() {}
