#!/usr/bin/env bash
# Builds the Debian package target/debian/palisade_VERSION-1_ARCH.deb: the release binary, the
# unit (dist/palisade.service), the default configuration as /etc/palisade/palisade.toml (a
# conffile), the manual pages and the shell completions. Needs cargo-deb
# (`cargo install --locked cargo-deb`).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --locked
bin=target/release/palisade
rm -rf target/dist
mkdir -p target/dist/man target/dist/completions
"$bin" man --dir target/dist/man
gzip -9n target/dist/man/*.1
"$bin" completions bash > target/dist/completions/palisade
"$bin" completions zsh > target/dist/completions/_palisade
"$bin" completions fish > target/dist/completions/palisade.fish
# The release profile keeps line tables for profiling; the package ships a stripped binary.
cargo deb --no-build --locked --strip "$@"
