#!/usr/bin/env bash
# Runs every test: unit, property, integration (against a local server that
# speaks the AWS wire protocols), the main job end to end, and an independent
# reader (DuckDB) over the lake it writes. Installs and starts what it needs.
set -euo pipefail
# on a failure, the servers' last words too: a flaky server is otherwise invisible in CI's log
trap 'echo "$0: failed at line $LINENO: $BASH_COMMAND" >&2
      for log in target/moto.log target/influxd.log; do
        [ -s "$log" ] && { echo "--- last lines of $log" >&2; tail -n 20 "$log" >&2; }
      done' ERR
cd "$(dirname "$0")/.."
mkdir -p target

echo "== python tools: moto (AWS protocols), duckdb (independent Parquet reader)"
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
  -r scripts/requirements-test.txt

missing=()
command -v influxd > /dev/null || missing+=(influxdb)
command -v chromium > /dev/null || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing from Debian: ${missing[*]} (InfluxDB 1.6 for the line-protocol sink, Chromium for the report test)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" > /dev/null
fi

# three distinct free ports (moto, InfluxDB HTTP, InfluxDB RPC), taken while all
# three sockets are open: asked for one at a time, the kernel may hand out the same port twice
read -r PORT INFLUX_PORT INFLUX_RPC_PORT < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')
wait_http() {
  python3 - "$1" "$2" <<'PY'
import sys, time, urllib.request
for _ in range(150):
    try:
        urllib.request.urlopen(sys.argv[1], timeout=1)
        sys.exit(0)
    except Exception:
        time.sleep(0.2)
sys.exit(f"{sys.argv[2]} did not start")
PY
}

echo "== starting moto_server on 127.0.0.1:$PORT"
moto_server -H 127.0.0.1 -p "$PORT" > target/moto.log 2>&1 &
MOTO_PID=$!
INFLUX_DIR=$(mktemp -d)
cat > "$INFLUX_DIR/influxdb.conf" <<CONF
reporting-disabled = true
bind-address = "127.0.0.1:$INFLUX_RPC_PORT"
[meta]
  dir = "$INFLUX_DIR/meta"
[data]
  dir = "$INFLUX_DIR/data"
  wal-dir = "$INFLUX_DIR/wal"
[http]
  bind-address = "127.0.0.1:$INFLUX_PORT"
  log-enabled = false
CONF
echo "== starting influxd on 127.0.0.1:$INFLUX_PORT"
influxd -config "$INFLUX_DIR/influxdb.conf" > target/influxd.log 2>&1 &
INFLUX_PID=$!
trap 'kill "$MOTO_PID" "$INFLUX_PID" 2>/dev/null || true; rm -rf "$INFLUX_DIR"' EXIT
wait_http "http://127.0.0.1:$PORT/moto-api/data.json" "moto_server (see target/moto.log)"
wait_http "http://127.0.0.1:$INFLUX_PORT/ping" "influxd (see target/influxd.log)"
export PIPELINE_TEST_AWS_ENDPOINT="http://127.0.0.1:$PORT"
export PIPELINE_TEST_INFLUX_URL="http://127.0.0.1:$INFLUX_PORT"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true

echo "== the SAM template: cfn-lint, checkov (PyPI, in a virtualenv), and agreement with the code"
python3 -m venv target/infra-lint
target/infra-lint/bin/pip install --quiet --disable-pip-version-check -r scripts/requirements-infra-lint.txt
PATH="$(pwd)/target/infra-lint/bin:$PATH" python3 scripts/check_template.py

echo "== cargo test (workspace, all targets; benches run once as smoke tests)"
cargo test --workspace --all-targets --all-features --locked
cargo test --workspace --doc --all-features --locked
# and the interleaved one-core/two-core measurement, one round of each job
for job in archive aggregate pipeline; do
  cargo run --locked -q -p pipeline-benches --example scaling -- "$job" 1 0
done
# and its one-thread mode, which docs/benchmarks.md counts instructions with
cargo run --locked -q -p pipeline-benches --example scaling -- archive 1 0 one

echo "== the Lambda binaries under the Lambda Runtime API (cargo lambda watch / invoke)"
bash scripts/lambda_runtime_test.sh

echo "== the main job end to end, with injected faults, then DuckDB reads the lake"
cargo run --locked -p pipeline-cli -- run --events 30000 --fault-rate 0.2 --batch-size 500 --out target/e2e
python3 scripts/check_lake.py target/e2e

echo "== the HTML report renders in headless Chromium with its charts"
CHROME_PROFILE=$(mktemp -d)
chromium_flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking
  --disable-component-update --disable-sync "--user-data-dir=$CHROME_PROFILE")
REPORT="file://$(pwd)/target/e2e/reports/report.html"
chromium "${chromium_flags[@]}" --dump-dom "$REPORT" > target/report-dom.html 2> target/chromium.log
chromium "${chromium_flags[@]}" --window-size=1000,1400 --screenshot=target/report.png "$REPORT" >> target/chromium.log 2>&1
rm -rf "$CHROME_PROFILE"
python3 - <<'PY'
import sys
dom = open("target/report-dom.html").read()
charts = dom.count('<svg class="chart"')
bars = dom.count('class="bar"')
sections = dom.count("<section")
ok = charts == sections == 6 and bars >= 20
print(f"{charts} charts, {bars} bars, {sections} report sections in the rendered page")
print(f"1 passed, 0 failed" if ok else "0 passed, 1 failed")
sys.exit(0 if ok else 1)
PY
test -s target/report.png
