#!/usr/bin/env bash
# Installs the fakesnow Snowflake emulator (DuckDB underneath) into a venv for the Snowflake sink tests.
# Idempotent: a venv whose pins already match is left alone. Runs as root on Debian 12.
# The tests start the server themselves (sinks/snowflake/tests/support); nothing is started here.
set -euo pipefail

FAKESNOW_VERSION="0.12.1"
# fakesnow imports a module snowflake-connector-python 5.x no longer ships: stay on 4.x.
SNOWFLAKE_CONNECTOR_VERSION="4.8.1"
VENV="${MILLIONX_FAKESNOW_VENV:-/opt/millionx/venv}"
STAMP="$VENV/.millionx-pins"
# fakesnow's own dependencies leave these open; pinned to the set the tests were written against.
PINNED_DEPS="duckdb==2.0.1 sqlglot==30.22.0 pyarrow==26.0.1 starlette==1.10.0 uvicorn==0.54.0"
WANT="fakesnow[server]==$FAKESNOW_VERSION snowflake-connector-python==$SNOWFLAKE_CONNECTOR_VERSION $PINNED_DEPS"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && "$VENV/bin/python" -c "import fakesnow" 2>/dev/null; then
  echo "30-fakesnow: $WANT already in $VENV"
else
  PY=/usr/bin/python3
  if ! "$PY" -c "import venv, ensurepip" 2>/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq python3 python3-venv >/dev/null
  fi
  rm -rf "$VENV"
  mkdir -p "$(dirname "$VENV")"
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-input $WANT
  echo "$WANT" > "$STAMP"
  echo "30-fakesnow: installed $WANT into $VENV"
fi
export MILLIONX_FAKESNOW_VENV="$VENV"
