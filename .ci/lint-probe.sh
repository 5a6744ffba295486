#!/usr/bin/env bash
# Checks that the core's compiler-checked invariants bite: compiles src/engine/lint_probe.rs
# (a clock read, file reads, getrandom, randomly seeded maps and an unsafe block, all inside
# the engine) and expects clippy to refuse each one. Fails if clippy accepts the probe, or if
# any expected refusal is missing (a deny attribute removed, a clippy.toml entry gone).
set -uo pipefail
cd "$(dirname "$0")/.."
out=$(cargo clippy --lib --message-format=short -- --cfg palisade_lint_probe 2>&1)
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
  'disallowed method `getrandom::getrandom`' \
  'disallowed method `std::collections::HashMap::new`' \
  'disallowed method `ahash::AHashMap::new`' \
  'disallowed type `std::collections::HashMap`' \
  'usage of an `unsafe` block'; do
  if ! grep -F "src/engine/lint_probe.rs" <<<"$out" | grep -qF "$expected"; then
    echo "lint probe: no refusal for: $expected" >&2
    missing=1
  fi
done
if [ "$missing" -ne 0 ]; then
  echo "$out" >&2
  exit 1
fi
# Nothing but the probe may be refused.
if grep -E '^src/' <<<"$out" | grep -vq '^src/engine/lint_probe.rs'; then
  echo "lint probe: refusals outside the probe:" >&2
  grep -E '^src/' <<<"$out" | grep -v '^src/engine/lint_probe.rs' >&2
  exit 1
fi
echo "lint probe: the core refuses clocks, files, randomness, randomly seeded maps and unsafe"
