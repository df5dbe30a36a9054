#!/usr/bin/env bash
# Kafka → pipeline throughput with 1 and 2 workers (writes benchmarks/kafka.md).
# Usage: bash benchmarks/kafka-bench.sh [SOCIAL] [MARKET]   (needs tansu: .ci/setup.d/50-kafka.sh)
# MILLIONX_BIN picks the binary (default: a release build, `cargo build --release` first).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${MILLIONX_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/millionx}"
tansu="${MILLIONX_TANSU:-/opt/millionx-tools/bin/tansu}"
social="${1:-50000}"; market="${2:-50000}"
work="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
"$tansu" broker --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
    >"$work/broker.log" 2>&1 &
broker=$!
trap 'kill "$broker" 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
for t in validated.social validated.market context.weather dlq.millionx; do
    "$tansu" topic create "$t" --broker "tcp://127.0.0.1:$port" --partitions 2 >/dev/null
done
export MILLIONX_PII_KEY=bench
"$bin" gen --out "$work/data" --social "$social" --market "$market" >/dev/null
start=$(date +%s.%N)
"$bin" produce --input "$work/data" --brokers "127.0.0.1:$port" --batch-messages 1 >/dev/null
produced=$(python3 -c "print(round($(date +%s.%N) - $start, 2))")
printf '[batch]\nmax_age_ms = 200\n' >"$work/c.toml"
rows=""
for w in 1 2; do
    "$bin" run --source kafka --brokers "127.0.0.1:$port" --group "bench-w$w" --exit-at-end -w "$w" \
        --config "$work/c.toml" --out "$work/out-$w" >/dev/null
    rows+=$(python3 - "$work/out-$w/summary.json" "$w" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print(f"| {sys.argv[2]} | {d['elapsed_s']:.2f} | {d['throughput_rps']:.0f} | {d['peak_rss_bytes'] / 2**20:.0f} |")
PY
)$'\n'
done
cat >"$root/benchmarks/kafka.md" <<MD
# Kafka source benchmark

\`bash benchmarks/kafka-bench.sh $social $market\` on $(nproc) cores, $(date -u +%Y-%m-%d), binary \`$(basename "$(dirname "$bin")")\`:
tansu 0.6.0 (memory storage) on 127.0.0.1, 2 partitions per topic, \`millionx gen --social $social --market $market\`,
produced in ${produced} s (one message per batch); then \`millionx run --source kafka --exit-at-end\` into the file sinks.
Throughput = records read / elapsed (the pipeline's summary).

| workers | elapsed (s) | records/s | peak RSS (MiB) |
|---|---|---|---|
${rows}
MD
cat "$root/benchmarks/kafka.md"
