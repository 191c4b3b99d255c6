#!/usr/bin/env bash
# Route solver benchmark (docs/performance.md, "Route solver"): this solver (akig-tsp), VROOM
# and OR-Tools side by side on the TSPLIB instances, each with the same time per instance, in
# one run, then one table of gaps to the proven optima and times.
#
#   ops/bench/tsp.sh [DATA_DIR]        # default ../shared/data/tsplib
#
# Environment: SMALL_MS (default 200) is the time per instance of up to 200 nodes, LARGE_MS
# (default 2000) the time per larger instance; SEED (default 1); SOLVERS (default
# "vroom,ortools", empty for this solver alone). Needs `pip install pyvroom ortools`.
set -euo pipefail

cd "$(dirname "$0")/../.."
DATA="${1:-../shared/data/tsplib}"
SMALL_MS="${SMALL_MS:-200}"
LARGE_MS="${LARGE_MS:-2000}"
SEED="${SEED:-1}"
SOLVERS="${SOLVERS-vroom,ortools}"

cargo build --release --quiet --bin akig-tsp
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT

run_group() { # min-nodes max-nodes time-ms
    target/release/akig-tsp --json --data "$DATA" --seed "$SEED" \
        --min-nodes "$1" --max-nodes "$2" --time-ms "$3" | sed 's/^{/{"solver":"akig",/' >>"$OUT/results.jsonl"
    if [ -n "$SOLVERS" ]; then
        python3 ops/bench/tsp_reference.py --data "$DATA" --solvers "$SOLVERS" \
            --min-nodes "$1" --max-nodes "$2" --time-ms "$3" >>"$OUT/results.jsonl"
    fi
}
run_group 0 200 "$SMALL_MS"
run_group 201 1000000 "$LARGE_MS"

python3 - "$OUT/results.jsonl" "$SOLVERS" "$SMALL_MS" "$LARGE_MS" <<'EOF'
import json, sys
path, solvers, small_ms, large_ms = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
solvers = ["akig"] + [s for s in solvers.split(",") if s]
names = {"akig": "this solver", "vroom": "VROOM", "ortools": "OR-Tools (GLS)"}
rows = {}
for line in open(path):
    r = json.loads(line)
    rows.setdefault((r["n"], r["instance"]), {})[r["solver"]] = r
print(f"time per instance: {small_ms} ms up to 200 nodes, {large_ms} ms above")
print()
print("| instance | n | " + " | ".join(f"{names[s]} gap % | ms" for s in solvers) + " |")
print("|---|---:|" + "---:|---:|" * len(solvers))
def cell(r):
    gap = "-" if r is None or r["gap"] is None else f"{r['gap']:.2f}"
    ms = "-" if r is None else f"{r['ms']:.0f}"
    return f"{gap} | {ms}"
for (n, name), by in sorted(rows.items()):
    print(f"| {name} | {n} | " + " | ".join(cell(by.get(s)) for s in solvers) + " |")
def mean(solver, keep):
    gaps = [by[solver]["gap"] for (n, _), by in rows.items()
            if keep(n) and solver in by and by[solver]["gap"] is not None]
    return f"{sum(gaps) / len(gaps):.2f}" if gaps else "-"
for label, keep in [("mean, ≤ 200 nodes", lambda n: n <= 200), ("mean, > 200 nodes", lambda n: n > 200), ("mean, all", lambda n: True)]:
    print(f"| **{label}** | | " + " | ".join(f"**{mean(s, keep)}** | " for s in solvers) + " |")
EOF
