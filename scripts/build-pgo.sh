#!/usr/bin/env bash
# Build the release binary with profile-guided optimization: an instrumented build, a
# training run over the bundled samples (samples/), then a build that uses the profile.
# The container image is built this way; BENCHMARKS.md has what it changes.
#
#   scripts/build-pgo.sh        # → target/pgo/auditbridge
#
# Two release builds: about twice the time of `cargo build --release`.
set -euo pipefail
cd "$(dirname "$0")/.."

host=$(rustc -vV | sed -n 's/^host: //p')
profdata="$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-profdata"
[ -x "$profdata" ] || rustup component add llvm-tools
out="$PWD/target/pgo"
rm -rf "$out/profiles" "$out/merged.profdata"
mkdir -p "$out"

# With --target, RUSTFLAGS reach only the program's crates: build scripts and proc macros
# stay uninstrumented and are not rebuilt between the two builds.
build() { # target directory, rustc flag
  RUSTFLAGS="$2" cargo build --release --locked --bin auditbridge \
    --target "$host" --target-dir "$out/$1"
}

build generate "-Cprofile-generate=$out/profiles"
trained="$out/generate/$host/release/auditbridge"

work=$(mktemp -d)
collector=
cleanup() {
  [ -z "$collector" ] || kill "$collector" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The samples are 225 records; forty copies give the loops counts that outweigh start-up.
for i in $(seq 40); do
  mkdir -p "$work/inputs/$i"
  cp -r samples/cloudtrail samples/entra "$work/inputs/$i/"
done

for format in ecs ocsf both raw; do
  "$trained" replay --format "$format" "$work/inputs" > /dev/null 2> "$work/replay-$format.log"
done

# The sinks' code (HEC envelopes, gzip, acknowledgement) runs only in `run`. Kafka is not
# trained: its work is librdkafka's C, which this build does not touch, and the program
# sent 7 % fewer instructions to Kafka after training without it (BENCHMARKS.md).
python3 scripts/pgo/hec-collector.py "$work/port" &
collector=$!
for _ in $(seq 50); do [ -s "$work/port" ] && break; sleep 0.1; done
[ -s "$work/port" ] || { echo "the training collector did not start" >&2; exit 1; }
cat > "$work/train.toml" <<TOML
[pipeline]
format = "both"

[dead_letter]
path = "$work/dead-letters.ndjson"

# Every copy of a sample has the same id: with the window on, most would not reach a sink.
[dedup]
enabled = false

[keys]
credential_report = "samples/keys/credential-report.csv"

[sources.samples]
type = "file"
paths = ["$work/inputs"]

[sinks.splunk]
type = "splunk_hec"
endpoint = "http://127.0.0.1:$(cat "$work/port")"
token = "\${PGO_TRAINING_TOKEN}"
ack_poll_interval_ms = 100

[sinks.splunk_documents]
type = "splunk_hec"
endpoint = "http://127.0.0.1:$(cat "$work/port")"
token = "\${PGO_TRAINING_TOKEN}"
formats = ["ecs", "ocsf", "ocsf_finding"]
ack_poll_interval_ms = 100
TOML
PGO_TRAINING_TOKEN=training "$trained" run --config "$work/train.toml" > /dev/null 2> "$work/run.log" \
  || { cat "$work/run.log" >&2; exit 1; }
grep -q '"sink_records_delivered":{"splunk":9000,"splunk_documents":' "$work/run.log" \
  || { echo "the training run did not deliver every record to both sinks:" >&2; cat "$work/run.log" >&2; exit 1; }

"$profdata" merge -o "$out/merged.profdata" "$out/profiles"
build use "-Cprofile-use=$out/merged.profdata"
cp "$out/use/$host/release/auditbridge" "$out/auditbridge"
echo "built $out/auditbridge"
