#!/usr/bin/env bash
# Peak memory of `auditbridge run` while its Kafka broker is frozen (BENCHMARKS.md,
# fourteenth stop): 100,000 distinct CloudTrail records from files of 1,000, ECS, to a
# Tansu of its own with the broker stopped (SIGSTOP) half a second after the start. VmHWM
# is read after 20 s; then the broker resumes and the run must deliver every record.
#   cargo build --release && scripts/bench-kafka-frozen.sh [runs] [extra [pipeline] lines] [extra sink lines]
# Needs Tansu (scripts/install-test-servers.sh) and ../shared.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
pipeline_extra=${2:-}
sink_extra=${3:-}
bin=target/release/auditbridge
tansu="${TANSU:-${CARGO_HOME:-$HOME/.cargo}/bin/tansu}"
port=${AUDITBRIDGE_BENCH_KAFKA_PORT:-19192}
work=$(mktemp -d)
broker_pid=
cleanup() {
  if [ -n "$broker_pid" ]; then
    kill -CONT "$broker_pid" 2>/dev/null || true
    kill "$broker_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

python3 - "$work/in" <<'EOF'
import gzip, json, os, sys
out = sys.argv[1]
os.makedirs(out)
lines = gzip.open("../shared/data/corpus/cloudtrail_real_union.ndjson.gz", "rt").read().splitlines()
n, copy, chunk = 0, 0, []
while n < 100_000:
    for i, line in enumerate(lines):
        if n == 100_000:
            break
        record = json.loads(line)
        record["eventID"] = f"{record.get('eventID', 'line')}-{copy}-{i}"
        chunk.append(json.dumps(record))
        n += 1
        if len(chunk) == 1000:
            open(os.path.join(out, f"{n // 1000:05}.ndjson"), "w").write("\n".join(chunk))
            chunk = []
    copy += 1
EOF

"$tansu" broker --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
  --storage-engine memory://tansu/ >"$work/tansu.log" 2>&1 &
broker_pid=$!
for _ in $(seq 1 30); do
  if "$tansu" topic list --broker "tcp://127.0.0.1:$port" >/dev/null 2>&1; then break; fi
  sleep 1
done

echo "| run | peak RSS with the broker frozen, MB | delivered |"
echo "|---|---|---|"
for run in $(seq 1 "$runs"); do
  topic="frozen-$run-$$"
  "$tansu" topic create --broker "tcp://127.0.0.1:$port" --partitions 2 "$topic" >/dev/null
  cat >"$work/run.toml" <<EOT
[pipeline]
format = "ecs"
$pipeline_extra
[dedup]
enabled = false
[dead_letter]
path = "$work/dlq.ndjson"
[sources.in]
type = "file"
paths = ["$work/in"]
[sinks.kafka]
type = "kafka"
brokers = "127.0.0.1:$port"
topics = { ecs = "$topic" }
$sink_extra
EOT
  "$bin" run --config "$work/run.toml" >"$work/summary.json" 2>"$work/run.log" &
  pid=$!
  sleep 0.5
  kill -STOP "$broker_pid"
  sleep 20
  hwm=$(awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$pid/status")
  kill -CONT "$broker_pid"
  wait "$pid"
  delivered=$(grep -o '"sink_records_delivered":{"kafka":[0-9]*}' "$work/summary.json" "$work/run.log" | grep -o '[0-9]*}' | tr -d '}' | tail -1)
  echo "| $run | $hwm | ${delivered:-?} |"
done
