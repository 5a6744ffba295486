//! What this binary was built from: the crate version and the commit (recorded by `build.rs`;
//! `unknown` outside a git checkout), for `palisade --version` and `palisade_build_info`.

/// The crate version, `0.1.0`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The commit, abbreviated to 12 hex digits (uncommitted changes are not marked); `unknown`
/// when the build was not from a git checkout.
pub const COMMIT: &str = env!("PALISADE_COMMIT");

/// `palisade --version`'s text after the name: `0.1.0 (commit 0123456789ab)`.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("PALISADE_COMMIT"),
    ")"
);
