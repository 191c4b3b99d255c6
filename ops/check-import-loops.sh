#!/usr/bin/env bash
# Fails when the server's modules import each other in a loop (see ops/import_loops.rs for how
# the graph is read and grouped). Needs only rustc. The checker is built into target/ops/, and
# its own tests run, whenever ops/import_loops.rs changes.
#
#   ops/check-import-loops.sh            the loops, if any (exit 1)
#   ops/check-import-loops.sh --edges    also every edge between nodes, with the line behind it
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

out="${CARGO_TARGET_DIR:-target}/ops"
bin="${out}/import_loops"
mkdir -p "${out}"
if [[ ! -x "${bin}" || ops/import_loops.rs -nt "${bin}" ]]; then
  rustc --edition 2021 --test --crate-name import_loops ops/import_loops.rs -o "${bin}-tests"
  "${bin}-tests" --quiet
  rustc --edition 2021 --crate-name import_loops ops/import_loops.rs -o "${bin}"
fi
exec "${bin}" "$@" server
