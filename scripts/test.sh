#!/usr/bin/env bash
# The whole test suite: installs the test servers that are missing (each install is
# skipped when present), starts them, runs every test, stops them.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-servers.sh
scripts/test-servers.sh start
trap 'scripts/test-servers.sh stop' EXIT
set -a
# shellcheck disable=SC1091
. target/test-servers/env
set +a
cargo test --locked
