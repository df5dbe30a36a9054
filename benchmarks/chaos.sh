#!/usr/bin/env bash
# Chaos benchmark (issue 14): a Kafka-fed run (tansu) killed with SIGKILL at random instants and restarted
# until done, compared row for row with an uninterrupted run; plus the checkpoints' cost (wall time with
# and without state, snapshot size, store time). The harness is the ignored test `chaos_kill_9_at_random_instants`
# in tests/crash.rs (same helpers as the crash test). Figures go to benchmarks/REPORT.md by hand.
#
#   MILLIONX_CHAOS_KILLS=20 MILLIONX_CHAOS_RECORDS=25000 MILLIONX_CHAOS_PARTITIONS=2 benchmarks/chaos.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export MILLIONX_CHAOS_KILLS="${MILLIONX_CHAOS_KILLS:-20}"
export MILLIONX_CHAOS_RECORDS="${MILLIONX_CHAOS_RECORDS:-25000}"
export MILLIONX_CHAOS_PARTITIONS="${MILLIONX_CHAOS_PARTITIONS:-1}"
cargo test -p millionx --test crash chaos_kill_9_at_random_instants -- --ignored --nocapture 2>&1 | grep -E "^chaos:|test result"
