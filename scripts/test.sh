#!/usr/bin/env bash
# Runs every test: unit, property, integration (against a local server that
# speaks the AWS wire protocols), the main job end to end, and an independent
# reader (DuckDB) over the lake it writes. Installs and starts what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p target

echo "== python tools: moto (AWS protocols), duckdb (independent Parquet reader)"
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
  'moto[dynamodb,s3]' flask flask-cors duckdb

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
echo "== starting moto_server on 127.0.0.1:$PORT"
moto_server -H 127.0.0.1 -p "$PORT" > target/moto.log 2>&1 &
MOTO_PID=$!
trap 'kill "$MOTO_PID" 2>/dev/null || true' EXIT
python3 - "$PORT" <<'PY'
import sys, time, urllib.request
url = f"http://127.0.0.1:{sys.argv[1]}/moto-api/data.json"
for _ in range(100):
    try:
        urllib.request.urlopen(url, timeout=1)
        sys.exit(0)
    except Exception:
        time.sleep(0.2)
sys.exit("moto_server did not start; see target/moto.log")
PY
export PIPELINE_TEST_AWS_ENDPOINT="http://127.0.0.1:$PORT"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true

echo "== cargo test (workspace, all targets; benches run once as smoke tests)"
cargo test --workspace --all-targets --locked
cargo test --workspace --doc --locked

echo "== the main job end to end, with injected faults, then DuckDB reads the lake"
cargo run --locked -p pipeline-cli -- run --events 30000 --fault-rate 0.2 --batch-size 500 --out target/e2e
python3 scripts/check_lake.py target/e2e
