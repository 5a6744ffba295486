//! Compiled only by `.ci/lint-probe.sh` (`--cfg palisade_lint_probe`): one call of each thing
//! the core may not do, which clippy must refuse here. If the script sees clippy accept any of
//! them, the core's lint attributes or `clippy.toml` have stopped biting.
//!
//! Never part of a build: nothing here runs. (Randomness needs no probe: `getrandom` is not a
//! dependency of this crate, and ahash is built without `runtime-rng`, so the core cannot name it.)

#![allow(dead_code, unused_unsafe)]

fn reads_the_clock() {
    let _ = std::time::Instant::now();
    let _ = std::time::SystemTime::now();
}

fn touches_files() {
    let _ = std::fs::read("probe");
    let _ = std::fs::File::open("probe");
}

fn seeds_a_map_at_random() {
    let _ = std::collections::HashMap::<u8, u8>::new();
    let _ = ahash::AHashMap::<u8, u8>::new();
}

fn uses_unsafe() -> u8 {
    unsafe { 0 }
}
