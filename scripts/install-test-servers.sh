#!/usr/bin/env bash
# Install the servers the integration tests need; each install is skipped when the tool
# is already there. On a fresh machine Tansu takes 15–45 minutes to build.
set -euo pipefail

if [ ! -x "$HOME/.cargo/bin/tansu" ]; then
  echo "installing tansu 0.6.0 (Kafka-compatible broker)"
  cargo install tansu --version 0.6.0 --locked --no-default-features --features dynostore
else
  echo "tansu: present"
fi
