#!/usr/bin/env bash
# Builds model.onnx (the all-MiniLM-L6-v2 encoder graph the OpenVINO embedding backend runs) next to
# model.safetensors in the model directory, with ops/models/build-minilm-onnx.py in a virtual environment of the
# packages pinned by hash in ops/models/onnx-build-requirements.txt (numpy, onnx; CPython 3.11). Idempotent: a
# model.onnx with the pinned SHA-256 is left alone. Run ops/models/fetch-minilm.sh first.
#
# Model directory: $MILLIONX_MODEL_DIR if set, else ${XDG_CACHE_HOME:-$HOME/.cache}/millionx/all-MiniLM-L6-v2.
# Virtual environment: $MILLIONX_ONNX_VENV if set, else /opt/millionx/onnx-build-venv. Nothing is committed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DEST="${MILLIONX_MODEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/millionx/all-MiniLM-L6-v2}"
VENV="${MILLIONX_ONNX_VENV:-/opt/millionx/onnx-build-venv}"
ONNX_SHA256=$(sed -n 's/^ONNX_SHA256 = "\([0-9a-f]*\)"$/\1/p' "$here/build-minilm-onnx.py")

if [ -f "$DEST/model.onnx" ] && [ "$(sha256sum "$DEST/model.onnx" | cut -d' ' -f1)" = "$ONNX_SHA256" ]; then
  echo "build-minilm-onnx: model.onnx already in $DEST"
  exit 0
fi
[ -f "$DEST/model.safetensors" ] || { echo "build-minilm-onnx: no $DEST/model.safetensors (run ops/models/fetch-minilm.sh)" >&2; exit 1; }

PY=${PYTHON:-python3}
req="$here/onnx-build-requirements.txt"
stamp="$VENV/.requirements-sha256"
want=$(sha256sum "$req" | cut -d' ' -f1)
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "build-minilm-onnx: making $VENV"
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --only-binary=:all: \
    --require-hashes -r "$req"
  echo "$want" > "$stamp"
fi
"$VENV/bin/python" "$here/build-minilm-onnx.py" "$DEST"
