#!/usr/bin/env bash
# Installs the OpenVINO runtime libraries the embed crate's OpenVINO backend loads at run time (libopenvino_c.so,
# libopenvino.so, the CPU plugin, TBB) from the PyPI wheel `openvino`, pinned by version and wheel SHA-256. Only
# the wheel's openvino/libs/ directory is kept; no Python package is installed. Idempotent: a complete install of
# the pinned wheel is left alone.
#
# Destination: $MILLIONX_OPENVINO_DIR if set, else /opt/millionx/openvino. The libraries land in DEST/libs, with
# DEST/libs/libopenvino_c.so a symlink to the versioned file (the path the embed crate looks for; override it with
# MILLIONX_OPENVINO_LIB). Needs python3 with pip. Nothing is committed.
#
# Licence: OpenVINO is Apache-2.0 (the wheel's dist-info LICENSE); its bundled TBB and hwloc carry their own
# notices in the wheel's dist-info.
set -euo pipefail

PKG=openvino
VERSION=2026.4.1
# openvino-2026.4.1-22982-cp311-cp311-manylinux_2_28_x86_64.whl. The shared libraries do not depend on the Python
# version: the cp311 wheel is always the one fetched (--python-version), so the hash is the same on every machine.
WHEEL_SHA256=2d22b1da03f7caf74df30e9f6417d0ab2f637e4a38e08e1dcd294d2c37407aaf
C_LIB=libopenvino_c.so.2641

DEST="${MILLIONX_OPENVINO_DIR:-/opt/millionx/openvino}"
STAMP="$DEST/libs/.wheel-sha256"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WHEEL_SHA256" ] && [ -e "$DEST/libs/libopenvino_c.so" ]; then
  echo "fetch-openvino: OpenVINO $VERSION already in $DEST/libs"
  exit 0
fi

PY=${PYTHON:-python3}
command -v "$PY" >/dev/null || { echo "fetch-openvino: $PY not found (install python3 and python3-pip)" >&2; exit 1; }
"$PY" -m pip --version >/dev/null 2>&1 || { echo "fetch-openvino: pip not available for $PY" >&2; exit 1; }

mkdir -p "$DEST"
TMP=$(mktemp -d "$DEST/.fetch.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
echo "$PKG==$VERSION --hash=sha256:$WHEEL_SHA256" > "$TMP/requirements.txt"
echo "fetch-openvino: downloading $PKG==$VERSION from PyPI"
"$PY" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
  --python-version 3.11 --implementation cp --abi cp311 --platform manylinux_2_28_x86_64 \
  --require-hashes -r "$TMP/requirements.txt" --dest "$TMP/wheel"

WHEEL=$(ls "$TMP"/wheel/*.whl)
got=$(sha256sum "$WHEEL" | cut -d' ' -f1)
[ "$got" = "$WHEEL_SHA256" ] || { echo "fetch-openvino: wheel SHA-256 $got, expected $WHEEL_SHA256" >&2; exit 1; }

"$PY" - "$WHEEL" "$TMP/libs" <<'PYEOF'
import os, shutil, sys, zipfile
wheel, out = sys.argv[1:3]
os.makedirs(out)
with zipfile.ZipFile(wheel) as z:
    for info in z.infolist():
        if info.filename.startswith("openvino/libs/") and not info.is_dir():
            with z.open(info) as src, open(os.path.join(out, os.path.basename(info.filename)), "wb") as dst:
                shutil.copyfileobj(src, dst)
PYEOF
[ -f "$TMP/libs/$C_LIB" ] || { echo "fetch-openvino: the wheel has no openvino/libs/$C_LIB" >&2; exit 1; }
ln -s "$C_LIB" "$TMP/libs/libopenvino_c.so"
echo "$WHEEL_SHA256" > "$TMP/libs/.wheel-sha256"

# Swap the whole directory in last, so a reader never sees a half-written install.
rm -rf "$DEST/libs.old"
[ -d "$DEST/libs" ] && mv "$DEST/libs" "$DEST/libs.old"
mv "$TMP/libs" "$DEST/libs"
rm -rf "$DEST/libs.old"
echo "fetch-openvino: OpenVINO $VERSION installed in $DEST/libs"
