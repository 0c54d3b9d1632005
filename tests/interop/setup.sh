#!/usr/bin/env bash
# Creates the Python environment of the interoperability test: a venv at $1 (default
# target/interop-venv) with grpcio and grpcio-tools from PyPI (tests/interop/requirements.txt).
# Idempotent: does nothing when the venv already imports both.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${1:-$here/../../target/interop-venv}"
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import grpc, grpc_tools" 2>/dev/null; then
  exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
"$venv/bin/python" -c "import grpc, grpc_tools; print('interop venv ready: grpcio', grpc.__version__)"
