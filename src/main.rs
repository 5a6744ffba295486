//! The `palisade` binary: installs the allocator and hands the command line to [`palisade::cli`].
//!
//! Nothing else lives here, so that every command is reachable (and testable) from the library.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(palisade::cli::main());
}
