#!/usr/bin/env bash
# Start or stop the real servers the integration tests talk to, on 127.0.0.1.
#   scripts/test-servers.sh start   # writes target/test-servers/env (KEY=value lines)
#   scripts/test-servers.sh stop    # stops them by PID
# Install them first with scripts/install-test-servers.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=target/test-servers
mkdir -p "$dir"

BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
TANSU="${TANSU:-$BIN/tansu}"
KAFKA_PORT="${AUDITBRIDGE_TEST_KAFKA_PORT:-19092}"
TOOLS="${AUDITBRIDGE_TOOLS:-$HOME/.local/share/auditbridge}"
MOTO_PORT="${AUDITBRIDGE_TEST_MOTO_PORT:-15000}"
LADING="${LADING:-$BIN/lading}"
LADING_HEC_PORT="${AUDITBRIDGE_TEST_LADING_PORT:-18088}"
LADING_METRICS_PORT="${AUDITBRIDGE_TEST_LADING_METRICS_PORT:-19000}"
AZURITE_PORT="${AUDITBRIDGE_TEST_AZURITE_PORT:-10000}"
PUBSUB_PORT="${AUDITBRIDGE_TEST_PUBSUB_PORT:-18085}"
PUBSUB_ADMIN_PORT="${AUDITBRIDGE_TEST_PUBSUB_ADMIN_PORT:-18086}"

wait_for() { # description, timeout seconds, command...
  local what=$1 limit=$2; shift 2
  for _ in $(seq 1 "$limit"); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  echo "$what did not become ready within ${limit}s; see $dir/*.log" >&2
  return 1
}

start() {
  : > "$dir/env"
  [ -x "$TANSU" ] || { echo "tansu is not installed ($TANSU): run scripts/install-test-servers.sh" >&2; exit 1; }
  # Tansu binds 0.0.0.0 by default: always pass both URLs.
  "$TANSU" broker \
    --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
    --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
    --storage-engine memory://tansu/ > "$dir/tansu.log" 2>&1 &
  echo $! > "$dir/tansu.pid"
  wait_for "tansu" 60 "$TANSU" topic list --broker "tcp://127.0.0.1:$KAFKA_PORT"
  {
    echo "AUDITBRIDGE_TEST_KAFKA=127.0.0.1:$KAFKA_PORT"
    echo "AUDITBRIDGE_TEST_KAFKA_PID=$(cat "$dir/tansu.pid")"
  } >> "$dir/env"

  [ -x "$TOOLS/moto/bin/moto_server" ] || { echo "moto is not installed: run scripts/install-test-servers.sh" >&2; exit 1; }
  "$TOOLS/moto/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" > "$dir/moto.log" 2>&1 &
  echo $! > "$dir/moto.pid"
  wait_for "moto" 60 "$TOOLS/moto/bin/python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$MOTO_PORT/moto-api/')"
  {
    echo "AUDITBRIDGE_TEST_AWS_ENDPOINT=http://127.0.0.1:$MOTO_PORT"
    echo "AUDITBRIDGE_TEST_MOTO_PYTHON=$TOOLS/moto/bin/python"
    # Not a server: the interpreter that runs Elastic's rules (tests/elastic_rules.rs).
    echo "AUDITBRIDGE_TEST_ELASTIC_PYTHON=$TOOLS/elastic-rules/bin/python"
    # moto accepts any credentials; the SDK's chain reads these.
    echo "AWS_ACCESS_KEY_ID=testing"
    echo "AWS_SECRET_ACCESS_KEY=testing"
    echo "AWS_REGION=us-east-1"
    echo "AWS_EC2_METADATA_DISABLED=true"
  } >> "$dir/env"

  [ -x "$LADING" ] || { echo "lading is not installed: run scripts/install-test-servers.sh" >&2; exit 1; }
  cat > "$dir/lading.yaml" <<YAML
generator: []
blackhole:
  - splunk_hec:
      binding_addr: "127.0.0.1:$LADING_HEC_PORT"
YAML
  "$LADING" --config-path "$dir/lading.yaml" --no-target \
    --prometheus-addr "127.0.0.1:$LADING_METRICS_PORT" \
    --experiment-duration-seconds 86400 --warmup-duration-seconds 0 > "$dir/lading.log" 2>&1 &
  echo $! > "$dir/lading.pid"
  wait_for "lading" 60 "$TOOLS/moto/bin/python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$LADING_METRICS_PORT/metrics')"
  {
    echo "AUDITBRIDGE_TEST_LADING_HEC=http://127.0.0.1:$LADING_HEC_PORT"
    echo "AUDITBRIDGE_TEST_LADING_METRICS=http://127.0.0.1:$LADING_METRICS_PORT/metrics"
  } >> "$dir/env"

  local azurite="$TOOLS/azurite/node_modules/.bin/azurite-blob"
  [ -x "$azurite" ] || { echo "azurite is not installed: run scripts/install-test-servers.sh" >&2; exit 1; }
  rm -rf "$dir/azurite" && mkdir -p "$dir/azurite"
  # --skipApiVersionCheck: the store sends a fixed REST version that Azurite may not list yet.
  "$azurite" --blobHost 127.0.0.1 --blobPort "$AZURITE_PORT" --location "$dir/azurite" \
    --skipApiVersionCheck --loose --silent > "$dir/azurite.log" 2>&1 &
  echo $! > "$dir/azurite.pid"
  wait_for "azurite" 60 "$TOOLS/moto/bin/python" -c "import socket; socket.create_connection(('127.0.0.1', $AZURITE_PORT), 1)"
  # Azurite's documented development account; not a secret.
  echo "AUDITBRIDGE_TEST_AZURITE='DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:$AZURITE_PORT/devstoreaccount1'" >> "$dir/env"
  [ -x "$TOOLS/pubsub/bin/python" ] || { echo "the Pub/Sub endpoint's Python is not installed: run scripts/install-test-servers.sh" >&2; exit 1; }
  "$TOOLS/pubsub/bin/python" tests/common/gcp_server.py --port "$PUBSUB_PORT" \
    --admin-port "$PUBSUB_ADMIN_PORT" > "$dir/pubsub.log" 2>&1 &
  echo $! > "$dir/pubsub.pid"
  wait_for "pubsub endpoint" 60 "$TOOLS/moto/bin/python" -c "import socket; socket.create_connection(('127.0.0.1', $PUBSUB_ADMIN_PORT), 1)"
  {
    echo "AUDITBRIDGE_TEST_PUBSUB=127.0.0.1:$PUBSUB_PORT"
    echo "AUDITBRIDGE_TEST_PUBSUB_ADMIN=http://127.0.0.1:$PUBSUB_ADMIN_PORT"
  } >> "$dir/env"
  echo "test servers up: $(tr '\n' ' ' < "$dir/env")"
}

stop() {
  for pidfile in "$dir"/*.pid; do
    [ -e "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    # A frozen (SIGSTOPped) server must be continued before it can terminate.
    kill -CONT "$pid" 2>/dev/null || true
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pidfile"
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
