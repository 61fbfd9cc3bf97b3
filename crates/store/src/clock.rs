//! Time and ids as parameters: leases, backoff, ETag timestamps and audit times read a
//! [`Clock`], and resource ids, request ids and secrets come from an [`IdSource`], both passed in
//! through `StoreOptions` (implemented in the `clock` crate, the one place that reads the system).

pub(crate) use ::clock::now_micros;
pub use ::clock::{Clock, IdSource, ManualClock, SeededIds, SystemClock, SystemIds};
