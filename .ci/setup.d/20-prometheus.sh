#!/usr/bin/env bash
# Prometheus + Alertmanager from Debian's packages: promtool and amtool check and unit-test ops/ (the
# millionx-metrics tests fail without them). Idempotent; runs as root on Debian 12. Safe to source: the work
# runs in a subshell, so neither `set -e` nor an early return leaks into the caller.
(
  set -euo pipefail
  if command -v promtool >/dev/null 2>&1 && command -v amtool >/dev/null 2>&1; then
    exit 0
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager >/dev/null
  # The packages' postinst scripts may start the daemons where systemd runs; the tests need only the CLIs.
  command -v promtool >/dev/null && command -v amtool >/dev/null
)
