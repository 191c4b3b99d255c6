#!/usr/bin/env bash
# Lint the protobuf API (proto/) with buf, STANDARD rules (see buf.yaml).
# Installs the buf CLI from the PyPI package buf-bin into target/tools/venv on
# first use; later runs reuse it and print nothing but buf's own findings.
# Extra arguments are passed to `buf lint` (e.g. --error-format=json).
set -euo pipefail

BUF_VERSION="1.75.0"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${repo_root}/target/tools/venv"
buf="${venv}/bin/buf"

installed_version() {
  if [[ -x "${buf}" ]]; then
    "${buf}" --version 2>/dev/null || true
  fi
}

if [[ "$(installed_version)" != "${BUF_VERSION}" ]]; then
  echo "buf-lint: installing buf ${BUF_VERSION} (PyPI buf-bin) into ${venv}" >&2
  # A venv left broken (e.g. by a Python upgrade) is rebuilt.
  if [[ -d "${venv}" ]] && ! "${venv}/bin/python" -c '' 2>/dev/null; then
    rm -rf "${venv}"
  fi
  if [[ ! -x "${venv}/bin/python" ]]; then
    mkdir -p "$(dirname "${venv}")"
    if ! python3 -m venv "${venv}"; then
      rm -rf "${venv}"
      echo "buf-lint: 'python3 -m venv' failed; on Debian/Ubuntu: apt-get install -y python3-venv" >&2
      exit 1
    fi
  fi
  "${venv}/bin/python" -m pip install --quiet --disable-pip-version-check \
    "buf-bin==${BUF_VERSION}"
fi

cd "${repo_root}"
exec "${buf}" lint "$@"
