#!/usr/bin/env bash
# The whole test suite: starts the test servers, runs every test, stops the servers.
# Needs the servers installed (scripts/install-test-servers.sh; .ci/run does it).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/test-servers.sh start
trap 'scripts/test-servers.sh stop' EXIT
set -a
# shellcheck disable=SC1091
. target/test-servers/env
set +a
cargo test --locked
