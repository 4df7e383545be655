#!/usr/bin/env bash
# Regenerate the Python code for the protobuf schemas this project owns.
#
#   tools/proto.sh [OUT_DIR]      (default OUT_DIR: src/otel_llm/_proto; `make proto`)
#
# The code is generated with the protoc bundled in a pinned grpcio-tools, whose
# gencode ("Protobuf Python Version: 5.26.1") is the same as opentelemetry-proto's
# and runs on protobuf runtimes 5.26 through 7.x. grpcio-tools of that age needs
# protobuf<6, so it lives in a venv of its own (.venv-proto, never the project's
# .venv), made on first use and remade when the pin changes.
#
# Environment: PROTO_PYTHON (interpreter for the tool venv; default: the newest
# python3.12 ... python3.9 found, else python3), PROTO_VENV (default .venv-proto).
# Exit codes: 0 generated; 3 the tool venv could not be made (pip could not install
# grpcio-tools, e.g. no registry); anything else: a real failure.
set -euo pipefail

GRPCIO_TOOLS_VERSION=1.64.1   # bundles protoc 26.1: "Protobuf Python Version: 5.26.1"
SCHEMAS=(otel_llm/v1/spool.proto)

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/src/otel_llm/_proto}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
# grpcio-tools 1.64.1 has wheels for CPython 3.8-3.12: prefer one of those.
python="${PROTO_PYTHON:-}"
if [ -z "$python" ]; then
  for candidate in python3.12 python3.11 python3.10 python3.9 python3; do
    if "$candidate" -c "import venv" >/dev/null 2>&1; then python="$candidate"; break; fi
  done
fi
venv="${PROTO_VENV:-$root/.venv-proto}"
stamp="$venv/.grpcio-tools-$GRPCIO_TOOLS_VERSION"

if [ ! -f "$stamp" ]; then
  rm -rf "$venv"
  if ! "$python" -m venv "$venv" \
    || ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
      --only-binary=:all: "grpcio-tools==$GRPCIO_TOOLS_VERSION"; then
    rm -rf "$venv"
    echo "proto.sh: could not install grpcio-tools==$GRPCIO_TOOLS_VERSION into $venv" >&2
    exit 3
  fi
  touch "$stamp"
fi

cd "$root/proto"
"$venv/bin/python" -m grpc_tools.protoc -I. --python_out="$out" --pyi_out="$out" "${SCHEMAS[@]}"

# Packages for the generated modules: otel_llm._proto.otel_llm.v1.spool_pb2
init='"""Generated protobuf code; do not edit. Regenerate with `make proto`."""'
for dir in "$out" $(for s in "${SCHEMAS[@]}"; do
  d="$(dirname "$s")"
  while [ "$d" != "." ]; do echo "$out/$d"; d="$(dirname "$d")"; done
done | sort -u); do
  printf '%s\n' "$init" > "$dir/__init__.py"
done
