#!/usr/bin/env bash
# Checks the monitoring set-up with promtool (Debian's `prometheus` package; ops/setup.sh test
# installs it where absent):
#   - ops/prometheus.yml and the rules it loads (ops/alert_rules.yml) are valid;
#   - every alert fires, with its labels and annotations, and stays quiet, in the cases of
#     ops/alert_rules_test.yml (`promtool test rules`);
#   - every alert has such a case, and its runbook_url names a file under ops/runbooks/ with a
#     section of the alert's name;
#   - every Grafana panel query (ops/grafana/dashboards/*.json) is valid PromQL.
# That each series a rule or a panel names is exported is checked by the Rust test
# tests/api/monitoring.rs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

command -v promtool >/dev/null || { echo "error: promtool not found (apt-get install prometheus)" >&2; exit 1; }

echo "==> promtool check config ops/prometheus.yml"
promtool check config ops/prometheus.yml

echo "==> promtool test rules ops/alert_rules_test.yml"
(cd ops && promtool test rules alert_rules_test.yml)

echo "==> every alert has a firing case and a runbook section"
failed=0
alerts="$(sed -nE 's/^  - alert: (.+)$/\1/p' ops/alert_rules.yml)"
count="$(wc -l <<<"${alerts}")"
while read -r alert; do
  if ! grep -qxF -- "- name: ${alert} fires" ops/alert_rules_test.yml ||
    ! grep -qxF "    alertname: ${alert}" ops/alert_rules_test.yml; then
    echo "error: ${alert} has no firing case in ops/alert_rules_test.yml" >&2
    failed=1
  fi
  url="$(awk -v a="${alert}" '$0 ~ "^  - alert: " a "$" { f = 1 } f && /runbook_url:/ { print $2; exit }' ops/alert_rules.yml)"
  file="${url%%#*}"
  if [[ -z "${url}" || ! -f "${file}" ]]; then
    echo "error: ${alert}: runbook ${url:-(none)} is not a file" >&2
    failed=1
  elif [[ "${url#*#}" != "${alert,,}" ]] || ! grep -qxF "## ${alert}" "${file}"; then
    echo "error: ${alert}: ${file} has no section '## ${alert}' (anchor ${url#*#})" >&2
    failed=1
  fi
done <<<"${alerts}"
((count >= 20)) || { echo "error: ${count} alert rules, at least 20 wanted" >&2; failed=1; }
echo "    ${count} alerts"

echo "==> every Grafana panel query is valid PromQL"
rules="$(mktemp --suffix=.yml)"
trap 'rm -f "${rules}"' EXIT
python3 - "${rules}" ops/grafana/dashboards/*.json <<'PY'
import json, sys
out, files = sys.argv[1], sys.argv[2:]
lines = ["groups:"]
for n, path in enumerate(files):
    lines.append(f"  - name: {json.dumps(path)}\n    rules:")
    for panel in json.load(open(path))["panels"]:
        for target in panel["targets"]:
            lines.append(f"      - record: dashboard_{n}_panel_{panel['id']}_{target['refId']}")
            lines.append(f"        expr: {json.dumps(target['expr'])}")
open(out, "w").write("\n".join(lines) + "\n")
PY
promtool check rules "${rules}" >/dev/null || { promtool check rules "${rules}"; failed=1; }
echo "    $(grep -c 'record:' "${rules}") panel queries"
((failed == 0)) && echo "==> monitoring checks passed"

exit "${failed}"
