#!/usr/bin/env bash
# Install the servers the integration tests need; each install is skipped when the tool
# is already there.
set -euo pipefail

BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
TOOLS="${AUDITBRIDGE_TOOLS:-$HOME/.local/share/auditbridge}"

# Tansu and lading are real release builds from crates.io, made cheaper to compile: one
# target directory shared by both (their common dependencies are built once) and
# optimisation level 1, ample for a test broker and receiver. The directory is removed
# once both are installed.
build_dir="$TOOLS/cargo-build"
server_install() {
  CARGO_TARGET_DIR="$build_dir" CARGO_PROFILE_RELEASE_OPT_LEVEL=1 \
    CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_LTO=false \
    cargo install "$@"
}

if [ ! -x "$BIN/tansu" ]; then
  echo "installing tansu 0.6.0 (Kafka-compatible broker)"
  server_install tansu --version 0.6.0 --locked --no-default-features --features dynostore
else
  echo "tansu: present"
fi

if [ ! -x "$BIN/lading" ]; then
  echo "installing lading 0.17.4 (independent Splunk HEC receiver)"
  command -v protoc >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq protobuf-compiler; }
  # Not --locked: its pinned `time` crate no longer builds on current Rust.
  server_install lading --version 0.17.4
else
  echo "lading: present"
fi
rm -rf "$build_dir"

if [ ! -x "$TOOLS/moto/bin/moto_server" ]; then
  echo "installing moto 5.2.5 (AWS API server: SQS, S3, SNS, EventBridge, IAM) into $TOOLS/moto"
  python3 -m venv "$TOOLS/moto"
  "$TOOLS/moto/bin/pip" install --quiet 'moto[s3,sqs,sns,iam,events]==5.2.5' flask flask-cors
else
  echo "moto: present"
fi

if [ ! -x "$TOOLS/elastic-rules/bin/python" ] || ! "$TOOLS/elastic-rules/bin/python" -c "import eql, lark" 2>/dev/null; then
  echo "installing eql 1.0.1 and lark 1.3.1 (to run Elastic's prebuilt rules on our ECS) into $TOOLS/elastic-rules"
  python3 -m venv "$TOOLS/elastic-rules"
  "$TOOLS/elastic-rules/bin/pip" install --quiet eql==1.0.1 lark==1.3.1
else
  echo "eql: present"
fi

if [ ! -x "$TOOLS/pubsub/bin/python" ] || ! "$TOOLS/pubsub/bin/python" -c "import grpc, google.pubsub_v1" 2>/dev/null; then
  echo "installing google-cloud-pubsub 2.44.0 and grpcio (the Pub/Sub test endpoint, tests/common/gcp_server.py) into $TOOLS/pubsub"
  python3 -m venv "$TOOLS/pubsub"
  "$TOOLS/pubsub/bin/pip" install --quiet google-cloud-pubsub==2.44.0 grpcio==1.85.3
else
  echo "pubsub endpoint: present"
fi

if [ ! -x "$TOOLS/azurite/node_modules/.bin/azurite-blob" ]; then
  echo "installing azurite 3.35.0 (Azure Storage API server, for the Event Hubs blob checkpoint store) into $TOOLS/azurite"
  command -v npm >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm; }
  mkdir -p "$TOOLS/azurite"
  npm install --prefix "$TOOLS/azurite" --no-audit --no-fund --loglevel=error azurite@3.35.0
else
  echo "azurite: present"
fi
