#!/usr/bin/env bash
# The OpenVINO embedding backend: its runtime libraries from the PyPI wheel `openvino` into /opt/millionx/openvino
# (ops/models/fetch-openvino.sh) and model.onnx built from the MiniLM weights that 40-model.sh fetched
# (ops/models/build-minilm-onnx.sh). Without them the OpenVINO tests fail under CI=true.
# Idempotent. Safe to source or run: everything happens in a subshell, whose status is the script's.
(
    set -euo pipefail
    root="$(git rev-parse --show-toplevel 2>/dev/null || pwd)"
    if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
        apt-get update -qq
        apt-get install -y -qq python3-venv
    fi
    bash "$root/ops/models/fetch-openvino.sh"
    bash "$root/ops/models/build-minilm-onnx.sh"
)
