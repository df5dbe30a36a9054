#!/usr/bin/env bash
# Puts the all-MiniLM-L6-v2 model files into the cache directory the embed tests and pipeline read
# (idempotent; see ops/models/fetch-minilm.sh). Sourced by .ci/run, so no `exit` and no `set -e` here.
bash "$(git rev-parse --show-toplevel 2>/dev/null || pwd)/ops/models/fetch-minilm.sh"
