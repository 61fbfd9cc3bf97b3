//! The end-to-end suite: boots the real `scim-bridge` binary on 127.0.0.1:0 against SQLite and
//! PostgreSQL (and the Coder fake) and drives it over HTTP and its CLI.

mod support;
