"""The archiver as a team would write it in Python: AWS Lambda Powertools'
BatchProcessor (Kinesis, partial batch responses), orjson, and pyarrow, doing the
same job as `event-processor` on the same invocation payload:

- decode each record (base64), parse it (orjson), validate it against the event
  contract (every rule of docs/event-contract.md, with the same reason codes);
- route valid events to three tables (user_events, order_events, order_items)
  partitioned by dt/hour of occurred_at (UTC), poison records to a dead-letter list;
- encode one Parquet object (zstd, statistics) per table and partition, with the
  lake's schema (INT64 millisecond UTC timestamps, int32/int64 as in the Rust schema);
- return the partial-batch response.

It is the peer for the "at least 20x" goal of issue #8. Run:

    python3 -m pip install -r benches/python/requirements.txt
    cargo run --release -p pipeline-cli -- generate --events 10000 --seed 7 --shards 1 \
        --batch-size 10000 --format kinesis --out target/peer
    python3 benches/python/powertools_peer.py target/peer/invocation-00000.json

It prints the median events/s over repeated runs (one core: CPython runs this on one).
`MAX_RECORD_BYTES` is read from the environment, as the Rust function reads it. With
`--verdicts OUT.json` it also writes what it did with each record (rows and event ids per
table, partitions, each dead letter's reason and field path by sequence number), and with
`--lake DIR` its Parquet objects; CI compares both with what `event-processor` did with the
same payload (scripts/lambda_runtime_test.sh).
"""

import argparse
import base64
import binascii
import hashlib
import io
import json
import os
import re
import statistics
import sys
import time
from collections import defaultdict
from datetime import datetime, timezone

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

MAX_RECORD_BYTES = int(os.environ.get("MAX_RECORD_BYTES", 1024 * 1024))
UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
OCCURRED = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?Z$")
COUNTRY = re.compile(r"^[A-Z]{2}$")
CURRENCY = re.compile(r"^[A-Z]{3}$")
MAX_CENTS = 2**53 - 1
MAX_I32 = 2**31 - 1


class Poison(Exception):
    def __init__(self, reason, path=None):
        super().__init__(reason)
        self.reason, self.path = reason, path


def is_int(v):
    return (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer())


def field(obj, key, path):
    if key not in obj:
        raise Poison("missing_field", f"{path}/{key}")
    return obj[key]


def string(obj, key, path, max_len=128, pattern=None, enum=None):
    v = field(obj, key, path)
    if not isinstance(v, str):
        raise Poison("wrong_type", f"{path}/{key}")
    if not 1 <= len(v) <= max_len or (pattern and not pattern.match(v)) or (enum and v not in enum):
        raise Poison("invalid_field", f"{path}/{key}")
    return v


def integer(obj, key, path, lo, hi):
    v = field(obj, key, path)
    if not is_int(v):
        raise Poison("wrong_type", f"{path}/{key}")
    v = int(v)
    if not lo <= v <= hi:
        raise Poison("invalid_field", f"{path}/{key}")
    return v


def boolean(obj, key, path):
    v = field(obj, key, path)
    if not isinstance(v, bool):
        raise Poison("wrong_type", f"{path}/{key}")
    return v


def email(obj, key, path):
    v = string(obj, key, path, max_len=254)
    local, at, domain = v.partition("@")
    if not at or not local or "@" in domain or any(c.isspace() for c in v) or "" in domain.split(".") or "." not in domain:
        raise Poison("invalid_field", f"{path}/{key}")
    return domain


def occurred_ms(obj):
    v = string(obj, "occurred_at", "", max_len=64)
    m = OCCURRED.match(v)
    if not m:
        raise Poison("invalid_field", "/occurred_at")
    try:
        dt = datetime(*map(int, m.groups()[:6]), tzinfo=timezone.utc)
    except ValueError:
        raise Poison("invalid_field", "/occurred_at") from None
    frac = (m.group(7) or ".")[1:4].ljust(3, "0")
    return int(dt.timestamp()) * 1000 + int(frac)


TYPES = {"user.signed_up", "user.logged_in", "user.profile_updated", "order.created", "order.payment_succeeded",
         "order.payment_failed", "order.fulfilled", "order.cancelled"}
METHODS = {"card", "paypal", "apple_pay", "bank_transfer"}


def validate(event):
    """The contract's checks in its order; returns (common columns, type, data, occurred ms)."""
    if not isinstance(event, dict):
        raise Poison("not_an_object")
    version = field(event, "schema_version", "")
    if not is_int(version):
        raise Poison("wrong_type", "/schema_version")
    if int(version) != 1:
        raise Poison("unsupported_schema_version", "/schema_version")
    etype = field(event, "event_type", "")
    if not isinstance(etype, str):
        raise Poison("wrong_type", "/event_type")
    if etype not in TYPES:
        raise Poison("unknown_event_type", "/event_type")
    event_id = string(event, "event_id", "", pattern=UUID)
    ms = occurred_ms(event)
    source = string(event, "source", "")
    correlation = string(event, "correlation_id", "", pattern=UUID)
    data = field(event, "data", "")
    if not isinstance(data, dict):
        raise Poison("wrong_type", "/data")
    p = "/data"
    row = {"user_id": None, "country": None}
    if etype == "user.signed_up":
        row.update(user_id=string(data, "user_id", p), email_domain=email(data, "email", p),
                   country=string(data, "country", p, pattern=COUNTRY),
                   channel=string(data, "channel", p, enum={"web", "ios", "android", "partner"}),
                   marketing_opt_in=boolean(data, "marketing_opt_in", p))
    elif etype == "user.logged_in":
        row.update(user_id=string(data, "user_id", p), login_method=string(data, "method", p, enum={"password", "sso", "magic_link"}),
                   country=string(data, "country", p, pattern=COUNTRY))
    elif etype == "user.profile_updated":
        row["user_id"] = string(data, "user_id", p)
        fields = field(data, "changed_fields", p)
        if not isinstance(fields, list):
            raise Poison("wrong_type", f"{p}/changed_fields")
        if not 1 <= len(fields) <= 50:
            raise Poison("invalid_field", f"{p}/changed_fields")
        for i, f in enumerate(fields):
            if not isinstance(f, str):
                raise Poison("wrong_type", f"{p}/changed_fields/{i}")
            if not 1 <= len(f) <= 64:
                raise Poison("invalid_field", f"{p}/changed_fields/{i}")
        row["changed_fields"] = fields
    else:
        row.update(order_id=string(data, "order_id", p), user_id=string(data, "user_id", p),
                   country=string(data, "country", p, pattern=COUNTRY))
        if etype == "order.created":
            row["currency"] = string(data, "currency", p, pattern=CURRENCY)
            items = field(data, "items", p)
            if not isinstance(items, list):
                raise Poison("wrong_type", f"{p}/items")
            if not 1 <= len(items) <= 100:
                raise Poison("invalid_field", f"{p}/items")
            lines = []
            for i, it in enumerate(items):
                ip = f"{p}/items/{i}"
                if not isinstance(it, dict):
                    raise Poison("wrong_type", ip)
                lines.append((string(it, "sku", ip, max_len=64), integer(it, "quantity", ip, 1, MAX_I32),
                              integer(it, "unit_price_cents", ip, 0, MAX_CENTS)))
            total = integer(data, "total_cents", p, 0, MAX_CENTS)
            if total != sum(q * u for _, q, u in lines):
                raise Poison("total_mismatch", f"{p}/total_cents")
            row.update(amount_cents=total, item_count=len(lines), lines=lines)
        elif etype in ("order.payment_succeeded", "order.payment_failed"):
            if etype == "order.payment_succeeded":
                row["payment_id"] = string(data, "payment_id", p)
            row["amount_cents"] = integer(data, "amount_cents", p, 0, MAX_CENTS)
            row["currency"] = string(data, "currency", p, pattern=CURRENCY)
            row["payment_method"] = string(data, "method", p, enum=METHODS)
            if etype == "order.payment_failed":
                row["failure_reason"] = string(data, "reason", p, enum={"card_declined", "insufficient_funds",
                                                                        "fraud_suspected", "provider_error"})
        elif etype == "order.fulfilled":
            row.update(warehouse=string(data, "warehouse", p), carrier=string(data, "carrier", p),
                       shipped_items=integer(data, "shipped_items", p, 1, MAX_I32))
        else:
            row["cancel_reason"] = string(data, "reason", p, enum={"customer_request", "payment_failed", "out_of_stock"})
    common = {"event_id": event_id, "event_type": etype, "schema_version": 1, "occurred_at": ms, "source": source,
              "correlation_id": correlation}
    return common, etype, row, ms


TS = pa.timestamp("ms", tz="UTC")
COMMON = [("event_id", pa.string()), ("event_type", pa.string()), ("schema_version", pa.int32()),
          ("occurred_at", TS), ("source", pa.string()), ("correlation_id", pa.string()), ("shard_id", pa.string()),
          ("sequence_number", pa.string()), ("arrived_at", TS)]
SCHEMAS = {
    "user_events": pa.schema(COMMON + [("user_id", pa.string()), ("country", pa.string()), ("channel", pa.string()),
                                       ("login_method", pa.string()), ("marketing_opt_in", pa.bool_()),
                                       ("changed_fields", pa.list_(pa.string())), ("email_domain", pa.string())]),
    "order_events": pa.schema(COMMON + [("order_id", pa.string()), ("user_id", pa.string()), ("country", pa.string()),
                                        ("currency", pa.string()), ("amount_cents", pa.int64()), ("item_count", pa.int32()),
                                        ("payment_id", pa.string()), ("payment_method", pa.string()),
                                        ("failure_reason", pa.string()), ("warehouse", pa.string()),
                                        ("carrier", pa.string()), ("shipped_items", pa.int32()),
                                        ("cancel_reason", pa.string())]),
    "order_items": pa.schema(COMMON + [("order_id", pa.string()), ("user_id", pa.string()), ("line_number", pa.int32()),
                                       ("sku", pa.string()), ("quantity", pa.int32()), ("unit_price_cents", pa.int64()),
                                       ("currency", pa.string()), ("country", pa.string())]),
}


class Archiver:
    """One invocation's state: rows by (table, partition), dead letters."""

    def __init__(self):
        self.rows = defaultdict(list)
        self.dead_letters = []

    def record_handler(self, record):
        k = record.kinesis
        try:
            raw = base64.b64decode(k.data, validate=True)
        except (binascii.Error, ValueError):
            self.dead_letters.append(("invalid_base64", None, k.sequence_number, k.data))
            return
        try:
            if len(raw) > MAX_RECORD_BYTES:
                raise Poison("record_too_large")
            try:
                event = orjson.loads(raw)
            except orjson.JSONDecodeError as e:
                raise Poison("invalid_utf8" if "utf-8" in str(e).lower() else "malformed_json") from None
            common, etype, row, ms = validate(event)
        except Poison as p:
            self.dead_letters.append((p.reason, p.path, k.sequence_number, k.data))
            return
        meta = {"shard_id": record.event_id.split(":")[0], "sequence_number": k.sequence_number,
                "arrived_at": int(k.approximate_arrival_timestamp * 1000)}
        partition = datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("dt=%Y-%m-%d/hour=%H")
        if etype.startswith("user."):
            self.rows[("user_events", partition)].append({**common, **meta, **row})
        else:
            lines = row.pop("lines", None)
            self.rows[("order_events", partition)].append({**common, **meta, **row})
            for n, (sku, qty, price) in enumerate(lines or [], start=1):
                self.rows[("order_items", partition)].append(
                    {**common, **meta, "order_id": row["order_id"], "user_id": row["user_id"], "line_number": n,
                     "sku": sku, "quantity": qty, "unit_price_cents": price, "currency": row["currency"],
                     "country": row["country"]})

    def flush(self):
        """Encodes one Parquet object per table and partition; returns {key: bytes}."""
        objects = {}
        for (table, partition), rows in self.rows.items():
            schema = SCHEMAS[table]
            # pyarrow reads the row dicts in C++ (a struct array), not a Python loop per column
            arrow = pa.Table.from_batches([pa.RecordBatch.from_struct_array(pa.array(rows, type=pa.struct(schema)))])
            buf = io.BytesIO()
            pq.write_table(arrow, buf, compression="zstd", compression_level=1, write_statistics=True)
            objects[f"{table}/{partition}/part.parquet"] = buf.getvalue()
        return objects


def handler(event, context=None):
    archiver = Archiver()
    processor = BatchProcessor(event_type=EventType.KinesisDataStreams)
    response = process_partial_response(event=event, record_handler=archiver.record_handler,
                                        processor=processor, context=context)
    objects = archiver.flush()
    return response, objects, archiver


def verdicts(response, objects, archiver):
    """What the invocation did with each record, in a form the Rust function's output maps to."""
    ids = defaultdict(list)
    for (table, _), rows in archiver.rows.items():
        ids[table].extend(r["event_id"] for r in rows)
    return {
        "rows": {t: len(v) for t, v in sorted(ids.items())},
        # order-independent: the sorted event ids of each table (order_items repeats one per line)
        "event_ids_sha256": {t: hashlib.sha256("\n".join(sorted(v)).encode()).hexdigest() for t, v in sorted(ids.items())},
        "partitions": sorted(key.rsplit("/", 1)[0] for key in objects),
        "letters": {seq: [reason, path] for reason, path, seq, _ in archiver.dead_letters},
        "failures": response["batchItemFailures"],
    }


def main(path, runs=15, verdicts_out=None, lake_out=None):
    payload = open(path, "rb").read()
    n = len(orjson.loads(payload)["Records"])
    rates = []
    for i in range(runs):
        start = time.perf_counter()
        event = orjson.loads(payload)  # the runtime hands the handler parsed JSON
        response, objects, archiver = handler(event)
        elapsed = time.perf_counter() - start
        if i == 0:
            rows = sum(len(r) for r in archiver.rows.values())
            print(f"{n} records: {rows} rows in {len(objects)} objects "
                  f"({sum(map(len, objects.values()))} Parquet bytes), {len(archiver.dead_letters)} dead letters, "
                  f"{len(response['batchItemFailures'])} failures")
            if verdicts_out:
                with open(verdicts_out, "w") as f:
                    json.dump(verdicts(response, objects, archiver), f, indent=1)
            for key, data in objects.items() if lake_out else ():
                os.makedirs(os.path.dirname(os.path.join(lake_out, key)), exist_ok=True)
                with open(os.path.join(lake_out, key), "wb") as f:
                    f.write(data)
        rates.append(n / elapsed)
    print(f"python powertools+orjson+pyarrow: median {statistics.median(rates):,.0f} events/s "
          f"(min {min(rates):,.0f}, max {max(rates):,.0f}, {runs} runs)")


if __name__ == "__main__":
    args = argparse.ArgumentParser(description="The Python peer of the archiver (issue #8).")
    args.add_argument("invocation", help="a Kinesis invocation payload (JSON)")
    args.add_argument("runs", nargs="?", type=int, default=15, help="invocations to time (default 15)")
    args.add_argument("--verdicts", metavar="OUT", help="write what the first invocation did, as JSON")
    args.add_argument("--lake", metavar="DIR", help="write the first invocation's Parquet objects under DIR")
    a = args.parse_args()
    main(a.invocation, a.runs, a.verdicts, a.lake)
