#!/usr/bin/env bash
# Checks that the core's compiler-checked invariants bite: compiles
# crates/core/crates/core/src/engine/lint_probe.rs (a clock read, file reads, randomly seeded maps and an unsafe block, all inside
# the engine) and expects clippy to refuse each one. Fails if clippy accepts the probe, or if
# any expected refusal is missing (a deny attribute removed, a clippy.toml entry gone).
set -uo pipefail
cd "$(dirname "$0")/.."
out=$(cargo clippy -p palisade-core --lib --message-format=short -- --cfg palisade_lint_probe 2>&1)
status=$?
if [ "$status" -eq 0 ]; then
  echo "lint probe: clippy accepted the probe; the core's lints do not bite" >&2
  exit 1
fi
missing=0
for expected in \
  'disallowed method `std::time::Instant::now`' \
  'disallowed method `std::time::SystemTime::now`' \
  'disallowed method `std::fs::read`' \
  'disallowed method `std::fs::File::open`' \
  'disallowed method `std::collections::HashMap::new`' \
  'disallowed method `ahash::AHashMap::new`' \
  'disallowed type `std::collections::HashMap`' \
  'usage of an `unsafe` block'; do
  if ! grep -F "crates/core/src/engine/lint_probe.rs" <<<"$out" | grep -qF "$expected"; then
    echo "lint probe: no refusal for: $expected" >&2
    missing=1
  fi
done
if [ "$missing" -ne 0 ]; then
  echo "$out" >&2
  exit 1
fi
# Nothing but the probe may be refused.
if grep -E '^(src|crates)/' <<<"$out" | grep -vq '^crates/core/src/engine/lint_probe.rs'; then
  echo "lint probe: refusals outside the probe:" >&2
  grep -E '^(src|crates)/' <<<"$out" | grep -v '^crates/core/src/engine/lint_probe.rs' >&2
  exit 1
fi
echo "lint probe: the core refuses clocks, files, randomly seeded maps and unsafe"
