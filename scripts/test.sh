#!/usr/bin/env bash
# Runs every test of the workspace: unit, integration and end-to-end.
# Later stages install and start the local AWS-protocol servers here.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo test (workspace, all targets; benches run once as smoke tests)"
cargo test --workspace --all-targets --locked
cargo test --workspace --doc --locked
