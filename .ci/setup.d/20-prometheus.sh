#!/usr/bin/env bash
# Prometheus + Alertmanager from Debian's packages: promtool and amtool check and unit-test ops/ (the
# millionx-metrics tests fail without them). Idempotent; runs as root on Debian 12.
set -euo pipefail
if command -v promtool >/dev/null 2>&1 && command -v amtool >/dev/null 2>&1; then
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager >/dev/null
# The packages' postinst scripts may start the daemons where systemd runs; tests start their own.
command -v promtool >/dev/null && command -v amtool >/dev/null
