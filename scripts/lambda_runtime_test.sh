#!/usr/bin/env bash
# The Lambda binaries under the Lambda Runtime API: `cargo lambda watch` emulates
# the runtime, `cargo lambda invoke` sends real-shaped Kinesis invocations (valid,
# poison, mixed, and with the dead-letter queue unavailable), and the script checks
# the partial-batch responses and what the sinks hold; then the metrics aggregator
# (two invocations of one tumbling window), the lake compactor and the report
# generator (the lake's last day, with the dead letters). Last, the Python
# peer of the benchmarks (benches/python) handles the mixed invocation too, and its
# rows, partitions and dead letters must be the event-processor's, record for record.
set -euo pipefail
trap 'echo "$0: failed at line $LINENO: $BASH_COMMAND" >&2' ERR
cd "$(dirname "$0")/.."
# cargo-lambda and DuckDB, at the versions CI passed with (test.sh installs the same file)
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -r scripts/requirements-test.txt
# the Python peer in its own environment, at the versions its figures were measured with
python3 -m venv target/peer-venv
target/peer-venv/bin/pip install --quiet --disable-pip-version-check -r benches/python/requirements.txt
# cfn-lint's template reader, for the metrics the template's alarms and dashboard read
python3 -m venv target/infra-lint
target/infra-lint/bin/pip install --quiet --disable-pip-version-check -r scripts/requirements-infra-lint.txt

WORK=$(mktemp -d)
PIDS=()
# each emulator runs in its own process group, so cleanup stops it and its children
# (and nothing else on the machine)
cleanup() { for p in "${PIDS[@]}"; do kill -- "-$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

PIPELINE=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug/pipeline
gen() { # name events poison-rate shards seed: keeps the last shard's invocation, so
  # each case has its own shard id (sequence numbers, lake keys and letters never collide)
  "$PIPELINE" generate --events "$2" --poison-rate "$3" --shards "$4" --seed "$5" --format kinesis \
    --batch-size 10000 --max-record-bytes 65536 --out "$WORK/$1-all" > /dev/null 2>&1
  mkdir -p "$WORK/$1"
  cp "$(ls "$WORK/$1-all"/invocation-*.json | tail -1)" "$WORK/$1/invocation-00000.json"
}
gen valid 400 0 1 11
gen poison 240 1 2 12
gen mixed 1500 0.1 3 13

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
watch() { # package binary port env log: starts the Runtime API emulator, waits until it serves
  setsid cargo lambda watch -p "$1" --bin "$2" -P "$3" --env-var "$4" > "$5" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 600); do
    grep -q "starting Runtime server" "$5" 2>/dev/null && return 0
    sleep 1
  done
  echo "cargo lambda watch ($2) did not start"; cat "$5"; exit 1
}
start() { # port lake dlq extra-env: the event-processor
  watch pipeline-processors event-processor "$1" "LAKE_URI=file://$2,DLQ_URI=file://$3,MAX_RECORD_BYTES=65536$4" "$WORK/watch-$1.log"
}
invoke() { # port file
  cargo lambda invoke event-processor -P "$1" --data-file "$2" 2> "$WORK/invoke.err" || { cat "$WORK/invoke.err" >&2; return 1; }
}

OK_PORT=$(free_port)
start "$OK_PORT" "$WORK/lake" "$WORK/dlq" ""
for case in valid poison mixed; do
  invoke "$OK_PORT" "$WORK/$case/invocation-00000.json" > "$WORK/$case.response"
done

# the DLQ is unavailable: a folder that cannot be created
BAD_PORT=$(free_port)
start "$BAD_PORT" "$WORK/lake2" "/proc/no-such-dlq" ",RETRY_MAX_ATTEMPTS=2,RETRY_BASE_MS=5"
invoke "$BAD_PORT" "$WORK/mixed/invocation-00000.json" > "$WORK/dlq-down.response"

# the metrics aggregator: the same mixed batch as two invocations of one tumbling window
python3 - "$WORK" <<'PY'
import json, sys
work = sys.argv[1]
records = json.load(open(f"{work}/mixed/invocation-00000.json"))["Records"]
half = len(records) // 2
for name, part, final in [("window-1", records[:half], False), ("window-2", records[half:], True)]:
    event = {"Records": part, "window": {"start": "2026-11-25T12:00:00Z", "end": "2026-11-25T12:05:00Z"},
             "state": {}, "shardId": "shardId-000000000002", "eventSourceARN": "arn:aws:kinesis:eu-west-1:123456789012:stream/events",
             "isFinalInvokeForWindow": final, "isWindowTerminatedEarly": False}
    json.dump(event, open(f"{work}/{name}.json", "w"))
PY
AGG_PORT=$(free_port)
watch pipeline-aggregators metrics-aggregator "$AGG_PORT" \
  "METRICS_SINK=local,METRICS_DIR=$WORK/metrics,MAX_RECORD_BYTES=65536" "$WORK/watch-agg.log"
cargo lambda invoke metrics-aggregator -P "$AGG_PORT" --data-file "$WORK/window-1.json" > "$WORK/window-1.response"
# the second invocation carries the state the first returned, as Lambda does
python3 - "$WORK" <<'PY'
import json, sys
work = sys.argv[1]
state = json.load(open(f"{work}/window-1.response"))["state"]
event = json.load(open(f"{work}/window-2.json"))
event["state"] = state
json.dump(event, open(f"{work}/window-2.json", "w"))
PY
cargo lambda invoke metrics-aggregator -P "$AGG_PORT" --data-file "$WORK/window-2.json" > "$WORK/window-2.response"

# the lake compactor over the archiver's lake: every partition the three invocations wrote
python3 - "$WORK" <<'PY'
import glob, json, os, sys
work = sys.argv[1]
days = sorted({p.split("dt=")[1][:10] for p in glob.glob(f"{work}/lake/*/dt=*")})
files = {os.path.dirname(p) for p in glob.glob(f"{work}/lake/**/*.parquet", recursive=True)}
json.dump({"start": f"{days[0]}T00:00:00Z", "hours": 24 * len(days)}, open(f"{work}/compact.json", "w"))
json.dump({"date": days[-1]}, open(f"{work}/report.json", "w"))
json.dump(sorted(files), open(f"{work}/partitions-before.json", "w"))
PY
# the files as the archiver wrote them, for DuckDB below: compaction rewrites them
cp -r "$WORK/lake" "$WORK/lake-as-written"
COMPACT_PORT=$(free_port)
watch pipeline-processors lake-compactor "$COMPACT_PORT" "LAKE_URI=file://$WORK/lake,COMPACT_KEYS_MB=16" "$WORK/watch-compact.log"
cargo lambda invoke lake-compactor -P "$COMPACT_PORT" --data-file "$WORK/compact.json" > "$WORK/compact.response"

# the report generator over the compacted lake and the dead letters, for the lake's last day
REPORT_PORT=$(free_port)
watch pipeline-reports report-generator "$REPORT_PORT" \
  "LAKE_URI=file://$WORK/lake,REPORTS_URI=file://$WORK/reports,DEAD_LETTERS_URI=file://$WORK/dlq" "$WORK/watch-report.log"
cargo lambda invoke report-generator -P "$REPORT_PORT" --data-file "$WORK/report.json" > "$WORK/report.response"

# which of the functions' own metrics the template's alarms and dashboard read
target/infra-lint/bin/python scripts/check_template.py --metrics-read > "$WORK/metrics-read.json"

# the Python peer of the benchmarks on the mixed invocation, with the function's record limit
MAX_RECORD_BYTES=65536 target/peer-venv/bin/python benches/python/powertools_peer.py \
  "$WORK/mixed/invocation-00000.json" 1 --verdicts "$WORK/peer-mixed.json" --lake "$WORK/peer-lake"

python3 - "$WORK" <<'PY'
import glob, hashlib, json, os, sys
work = sys.argv[1]
failures, checked = [], []
def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    checked.append(what)
    if not cond:
        failures.append(what)
def payload(case):
    return json.load(open(f"{work}/{case}/invocation-00000.json"))["Records"]
def response(name):
    return json.load(open(f"{work}/{name}.response"))
for case in ["valid", "poison", "mixed"]:
    check(response(case) == {"batchItemFailures": []}, f"{case}: every record durably handled")
letters = [json.load(open(p)) for p in glob.glob(f"{work}/dlq/**/*.json", recursive=True)]
poison_n = len(payload("poison"))
by_seq = {l["sequence_number"] for l in letters}
check(all(r["kinesis"]["sequenceNumber"] in by_seq for r in payload("poison")), f"poison: all {poison_n} records dead-lettered")
check(all(l["data_base64"] and l["reason"] for l in letters), "letters carry the raw record and a reason")
import duckdb
files = glob.glob(f"{work}/lake/*_events/**/*.parquet", recursive=True)
rows = duckdb.sql(f"SELECT count(DISTINCT event_id) FROM read_parquet({files!r})").fetchall()[0][0]
total = len(payload("valid")) + poison_n + len(payload("mixed"))
check(rows + len(letters) == total, f"lake rows {rows} + dead letters {len(letters)} = {total} records")
down = response("dlq-down")
mixed = payload("mixed")
seqs = [f["itemIdentifier"] for f in down["batchItemFailures"]]
check(len(seqs) == 1, f"DLQ down: one failure reported ({seqs})")
if seqs:
    idx = [r["kinesis"]["sequenceNumber"] for r in mixed].index(seqs[0])
    check(idx > 0, f"DLQ down: checkpointed at record {idx}, after the records it stored")
w1, w2 = json.load(open(f"{work}/window-1.response")), json.load(open(f"{work}/window-2.response"))
check(w1["batchItemFailures"] == [] and "aggregates_v1" in w1["state"], "aggregator: a window's first invocation returns its state")
check(w2 == {"state": {}, "batchItemFailures": []}, "aggregator: the final invocation closes the window")
# the archiver stored the same batch (shard 2): both functions must agree exactly
order_files = glob.glob(f"{work}/lake/order_events/**/*.parquet", recursive=True)
created = duckdb.sql(
    f"SELECT count(DISTINCT event_id) FROM read_parquet({order_files!r}) "
    "WHERE shard_id = 'shardId-000000000002' AND event_type = 'order.created'"
).fetchall()[0][0]
metrics = [json.loads(l) for f in glob.glob(f"{work}/metrics/**/*.jsonl", recursive=True) for l in open(f)]
written = sum(m["orders_created"] for m in metrics)
check(created > 0 and written == created, f"aggregator: {written} orders counted = {created} in the archiver's lake")
logs = "".join(open(p).read() for p in glob.glob(f"{work}/watch-*.log"))
check('"requestId"' in logs and '"xrayTraceId"' in logs, "logs carry the request id and the X-Ray trace id")
check('"CloudWatchMetrics"' in logs, "EMF metric lines are printed")
# every EMF line is one CloudWatch extracts (each declared metric a number, each
# dimension a string), and each function emits every metric its alarms and dashboard read
read = json.load(open(f"{work}/metrics-read.json"))
emitted, malformed = {}, []
for line in logs.splitlines():
    if '"_aws"' not in line:
        continue
    doc = json.loads(line[line.index("{"):])
    for directive in doc["_aws"]["CloudWatchMetrics"]:
        names = [m["Name"] for m in directive["Metrics"]]
        malformed += [n for n in names if not isinstance(doc.get(n), (int, float))]
        malformed += [d for dims in directive["Dimensions"] for d in dims if not isinstance(doc.get(d), str)]
        if directive["Namespace"] == read["namespace"]:
            emitted.setdefault(doc.get("FunctionName"), set()).update(names)
check(emitted and not malformed, f"EMF lines of {sorted(emitted)} declare only members they carry: {malformed[:3]}")
for binary, names in read["binaries"].items():
    missing = sorted(set(names) - emitted.get(binary, set()))
    check(not missing, f"{binary} emits the {len(names)} {read['namespace']} metrics its alarms and dashboard "
          f"read (missing: {missing})")
# an independent reader over the archiver's own files (not the compactor's):
# every column of every row decoded, random ids and sequence numbers in
# their own encodings
written_files = glob.glob(f"{work}/lake-as-written/*/**/*.parquet", recursive=True)
as_written = duckdb.sql(
    f"SELECT count(DISTINCT event_id), min(length(event_id)), max(length(correlation_id)), "
    f"count(DISTINCT sequence_number), min(length(sequence_number)), max(length(sequence_number)) "
    f"FROM read_parquet({[f for f in written_files if '_events/' in f]!r}, union_by_name = true)"
).fetchall()[0]
check(as_written == (rows, 36, 36, rows, 56, 56),
      f"DuckDB reads the archiver's files: {as_written[0]} events, UUIDs whole, "
      f"{as_written[3]} sequence numbers of {as_written[4]}-{as_written[5]} digits")
# each column's encodings, as a set of names (DuckDB lists a chunk's as "RLE, DELTA_BYTE_ARRAY")
encodings = {column: set(names.replace(",", " ").split()) for column, names in duckdb.sql(
    f"SELECT path_in_schema, string_agg(DISTINCT encodings, ',') FROM parquet_metadata({written_files!r}) "
    "WHERE path_in_schema IN ('event_id', 'event_type', 'sequence_number') GROUP BY path_in_schema"
).fetchall()}
check("DELTA_LENGTH_BYTE_ARRAY" in encodings.get("event_id", set())
      and "RLE_DICTIONARY" in encodings.get("event_type", set())
      and "DELTA_BYTE_ARRAY" in encodings.get("sequence_number", set()),
      f"the archiver's encodings: {encodings}")
unreadable = []
for f in written_files:
    try:
        duckdb.sql(f"SELECT * FROM read_parquet('{f}')").fetchall()
    except duckdb.Error as e:
        unreadable.append(f"{f}: {e}")
check(written_files and not unreadable, f"every column of the archiver's {len(written_files)} files decodes: {unreadable[:1]}")
compacted = response("compact")
partitions = json.load(open(f"{work}/partitions-before.json"))
per_partition = {p: len(glob.glob(f"{p}/*.parquet")) for p in partitions}
check(compacted["partitions"] > 0 and compacted["files_in"] > compacted["partitions"],
      f"compactor: merged {compacted['files_in']} files into {compacted['partitions']}")
check(compacted.get("most_passes") == 1, f"compactor: one pass over each partition ({compacted.get('most_passes')})")
check(all(n == 1 for n in per_partition.values()), "compactor: one file per partition afterwards")
all_rows = duckdb.sql(f"SELECT count(*), count(DISTINCT event_id) FROM read_parquet({glob.glob(f'{work}/lake/*_events/**/*.parquet', recursive=True)!r})").fetchall()[0]
check(all_rows[0] == all_rows[1] == rows, f"compactor: {all_rows[0]} rows, as many as before, no duplicates")
report = response("report")
day = json.load(open(f"{work}/report.json"))["date"]
funnel = json.load(open(f"{work}/reports/{day}/funnel.json"))
dlq_report = json.load(open(f"{work}/reports/{day}/dlq_by_reason.json"))
check(report["objects_out"] == 13 and report["html"] == f"{day}/report.html"
      and os.path.exists(f"{work}/reports/{day}/report.html"),
      f"report generator: six reports as CSV and JSON and the page for {day}: {report}")
check(report["letters_in"] == len(letters) and sum(r["records"] for r in dlq_report) == len(letters),
      f"report generator: the {len(letters)} dead letters counted by reason ({report['letters_in']} read)")
check(funnel[0]["users"] > 0, f"report generator: the funnel over the lake's rows: {funnel}")
# the peer that the benchmarks compare us with does the same job: what it stores and
# dead-letters from the mixed invocation is what the event-processor stored and dead-lettered
peer = json.load(open(f"{work}/peer-mixed.json"))
shard = mixed[0]["eventID"].split(":")[0]
ours_files = [f for f in written_files if f"part-{shard}-" in os.path.basename(f)]
ours_ids = {}
for table in ["order_events", "order_items", "user_events"]:
    files = [f for f in ours_files if f"/{table}/" in f]
    if files:
        ours_ids[table] = sorted(r[0] for r in duckdb.sql(f"SELECT event_id FROM read_parquet({files!r})").fetchall())
ours = {
    "rows": {t: len(v) for t, v in ours_ids.items()},
    "event_ids_sha256": {t: hashlib.sha256("\n".join(v).encode()).hexdigest() for t, v in ours_ids.items()},
    "partitions": sorted({os.path.relpath(os.path.dirname(f), f"{work}/lake-as-written") for f in ours_files}),
    "letters": {l["sequence_number"]: [l["reason"], l["path"]] for l in letters
                if l["sequence_number"] in {r["kinesis"]["sequenceNumber"] for r in mixed}},
    "failures": response("mixed")["batchItemFailures"],
}
for key in ["rows", "event_ids_sha256", "partitions", "failures"]:
    check(peer[key] == ours[key], f"Python peer agrees on {key}: {peer[key] if key != 'event_ids_sha256' else 'same ids'}")
# and its tables hold the same rows, column for column, as read by DuckDB
for table in ours_ids:
    mine = [f for f in ours_files if f"/{table}/" in f]
    theirs = glob.glob(f"{work}/peer-lake/{table}/**/*.parquet", recursive=True)
    one_way = f"SELECT * FROM read_parquet({mine!r}) EXCEPT ALL SELECT * FROM read_parquet({theirs!r})"
    other_way = f"SELECT * FROM read_parquet({theirs!r}) EXCEPT ALL SELECT * FROM read_parquet({mine!r})"
    extra = duckdb.sql(f"SELECT count(*) FROM ({one_way})").fetchall()[0][0]
    missing = duckdb.sql(f"SELECT count(*) FROM ({other_way})").fetchall()[0][0]
    same_types = duckdb.sql(f"DESCRIBE SELECT * FROM read_parquet({mine!r})").fetchall() == \
        duckdb.sql(f"DESCRIBE SELECT * FROM read_parquet({theirs!r})").fetchall()
    check(theirs and same_types and extra == missing == 0,
          f"Python peer's {table} holds our rows column for column (types equal: {same_types}; "
          f"{extra} rows only ours, {missing} only the peer's)")
differ = {s: (peer["letters"].get(s), ours["letters"].get(s)) for s in peer["letters"].keys() | ours["letters"].keys()
          if peer["letters"].get(s) != ours["letters"].get(s)}
check(ours["letters"] and not differ,
      f"Python peer agrees on each of {len(ours['letters'])} dead letters' reason and path: {sorted(differ.items())[:3]}")
print(f"{len(checked) - len(failures)} passed, {len(failures)} failed")
sys.exit(1 if failures else 0)
PY
