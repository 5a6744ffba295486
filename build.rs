//! Build script: records the commit the binary is built from, for `palisade --version` and
//! `palisade_build_info`. Outside a git checkout (a crates.io download, `cargo install` from a
//! tarball) or without git, the commit is `PALISADE_COMMIT` from the environment if set
//! (packagers), else `unknown`; the build never fails over it.

use std::path::PathBuf;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-env-changed=PALISADE_COMMIT");
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    // Only the repository this crate is the root of: a crate unpacked inside some other
    // checkout must not take that checkout's commit.
    let ours = git(&["rev-parse", "--show-toplevel"])
        .map(PathBuf::from)
        .and_then(|top| top.canonicalize().ok())
        .is_some_and(|top| manifest.canonicalize().is_ok_and(|m| m == top));
    let from_git = if ours {
        // Rebuild when HEAD moves: HEAD itself, the branch it names, and packed refs.
        // (Only files that exist: cargo reruns the script every build for a missing one.)
        let branch = git(&["symbolic-ref", "-q", "HEAD"]);
        let paths = ["HEAD", "packed-refs"].into_iter().chain(branch.as_deref());
        for path in paths {
            if let Some(p) = git(&["rev-parse", "--git-path", path]) {
                if std::path::Path::new(&p).exists() {
                    println!("cargo:rerun-if-changed={p}");
                }
            }
        }
        git(&["rev-parse", "--short=12", "HEAD"])
    } else {
        None
    };
    let commit = std::env::var("PALISADE_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or(from_git)
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=PALISADE_COMMIT={commit}");
}
