"""An independent reader checks the lake: DuckDB reads every table with its
Hive partitions, the row counts per event_type match what the main job
produced, and timestamps come back as timestamps (UTC-adjusted), with no cast.

Usage: python3 scripts/check_lake.py OUT_DIR   (OUT_DIR holds lake/ and summary.json)
"""

import json
import sys
from pathlib import Path

import duckdb

out = Path(sys.argv[1] if len(sys.argv) > 1 else "out")
lake = out / "lake"
summary = json.loads((out / "summary.json").read_text())
con = duckdb.connect()
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


expected_by_type = {
    k.split(":", 1)[1]: v for k, v in summary["expected"].items() if k.startswith("event:")
}
for table in ["user_events", "order_events", "order_items"]:
    src = f"read_parquet('{lake}/{table}/*/*/*.parquet', hive_partitioning = true)"
    cols = {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()}
    check(cols.get("occurred_at") == "TIMESTAMP WITH TIME ZONE", f"{table}.occurred_at is {cols.get('occurred_at')}")
    check(cols.get("arrived_at") == "TIMESTAMP WITH TIME ZONE", f"{table}.arrived_at is {cols.get('arrived_at')}")
    check("dt" in cols and "hour" in cols, f"{table} has Hive partition columns dt, hour")
    check(cols.get("sequence_number") == "VARCHAR", f"{table}.sequence_number is a string")
    check(cols.get("schema_version") == "INTEGER", f"{table}.schema_version is int32")
    # partition values agree with the event time they were derived from
    bad = con.execute(
        f"""SELECT count(*) FROM {src}
            WHERE strftime(occurred_at AT TIME ZONE 'UTC', '%Y-%m-%d') <> CAST(dt AS VARCHAR)
               OR CAST(hour AS INTEGER) <> hour(occurred_at AT TIME ZONE 'UTC')"""
    ).fetchone()[0]
    check(bad == 0, f"{table}: every row sits in the partition of its occurred_at ({bad} misplaced)")
    if table == "order_items":
        n = con.execute(f"SELECT count(*) FROM (SELECT DISTINCT event_id, line_number FROM {src})").fetchone()[0]
        check(n == summary["expected_order_items"], f"order_items: {n} distinct lines, expected {summary['expected_order_items']}")
        continue
    counts = dict(
        con.execute(f"SELECT event_type, count(DISTINCT event_id) FROM {src} GROUP BY 1").fetchall()
    )
    table_types = {t for t in expected_by_type if (t.startswith("order.") == (table == "order_events"))}
    check(set(counts) == table_types, f"{table}: event types {sorted(counts)}")
    for event_type, n in counts.items():
        check(n == expected_by_type.get(event_type), f"{table}: {event_type} has {n} distinct events, expected {expected_by_type.get(event_type)}")

amounts = con.execute(
    f"SELECT typeof(amount_cents), typeof(item_count) FROM read_parquet('{lake}/order_events/*/*/*.parquet') LIMIT 1"
).fetchone()
check(amounts == ("BIGINT", "INTEGER"), f"order_events amount_cents/item_count types {amounts}")
first = con.execute(
    f"SELECT min(occurred_at) FROM read_parquet('{lake}/user_events/*/*/*.parquet')"
).fetchone()[0]
check(first is not None and first.year == 2026, f"timestamps read as instants ({first})")
# the files' own metadata: zstd (uncompressed only where the writer chose so for
# small-domain columns), and statistics Athena can prune by in every column chunk
meta = f"parquet_metadata('{lake}/*/*/*/*.parquet')"
codecs = dict(con.execute(f"SELECT compression, count(*) FROM {meta} GROUP BY 1").fetchall())
check(set(codecs) <= {"ZSTD", "UNCOMPRESSED"} and codecs.get("ZSTD", 0) > codecs.get("UNCOMPRESSED", 0),
      f"column chunk codecs {codecs}")
unpruned = con.execute(
    f"""SELECT count(*) FROM {meta}
        WHERE path_in_schema IN ('event_id', 'occurred_at', 'sequence_number')
          AND (stats_min_value IS NULL OR stats_max_value IS NULL OR stats_null_count IS NULL)"""
).fetchone()[0]
check(unpruned == 0, f"event_id, occurred_at and sequence_number have min/max/null-count statistics in every chunk ({unpruned} without)")
if failures:
    print(f"{len(failures)} lake checks failed")
    sys.exit(1)
print("the lake reads correctly in DuckDB")
