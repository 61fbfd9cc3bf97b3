//! What this binary was built from (set by build.rs).

/// The crate version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The commit, abbreviated; "unknown" when built without git (the Docker context has no .git)
/// and without `SCIM_BRIDGE_GIT_COMMIT`.
pub const COMMIT: &str = env!("SCIM_BRIDGE_GIT_COMMIT");
/// `scim-bridge --version`: `0.1.0 (commit 0123456789ab, built 2026-12-03)`.
pub const VERSION_LINE: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("SCIM_BRIDGE_GIT_COMMIT"),
    ", built ",
    env!("SCIM_BRIDGE_BUILD_DATE"),
    ")"
);

/// A metrics registry carrying `scim_bridge_build_info` for this build.
pub fn metrics() -> server::Metrics {
    let metrics = server::Metrics::new();
    metrics.set_build_info(VERSION, COMMIT);
    metrics
}
