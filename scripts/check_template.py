"""Checks infra/template.yaml: cfn-lint and checkov pass (every skipped checkov check
is justified next to its resource), and the template agrees with the code:

- every Lambda binary of the workspace is deployed, as arm64 provided.al2023 built
  by cargo-lambda, with a role of its own;
- no role allows a wildcard action, and only the actions that take no resource
  (X-Ray's, Timestream's DescribeEndpoints) are granted on every resource;
- every environment variable a function is given is one the Rust code reads;
- the stream consumers' event source mappings set every failure-handling setting;
- the Glue tables have the columns of infra/athena/*.sql (which a Rust test holds
  to the Arrow schemas of the lake);
- every alarm names a runbook section that docs/operations.md has;
- samconfig.toml deploys dev, staging and prod.

With `--metrics-read`, it prints instead, as JSON, which of the functions' own EMF metrics
the alarms and the dashboard read ({"namespace": ..., "binaries": {binary: [metric, ...]}}),
and scripts/lambda_runtime_test.sh checks that each binary emits every one of them.

Usage: python3 scripts/check_template.py [--metrics-read] (from the repository root).
"""

import json
import re
import subprocess
import sys
import tomllib

from cfnlint.decode import decode

TEMPLATE = "infra/template.yaml"
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


template, matches = decode(TEMPLATE)
if matches:
    sys.exit(f"{TEMPLATE} does not parse: {matches}")
resources = template["Resources"]
globals_fn = template["Globals"]["Function"]
functions = {k: v for k, v in resources.items() if v["Type"] == "AWS::Serverless::Function"}


def ref_name(value):
    """The logical id a `!Ref`/`!GetAtt` (or a `${Name}` of a `!Sub`) points at."""
    if isinstance(value, dict):
        value = value.get("Ref") or value.get("Fn::GetAtt", [None])[0]
    return value


def dashboard_rows(body):
    """Each metric row of the dashboard's widgets, with CloudWatch's "." (the previous
    row's item at that place) and "..." (the previous row's leading items) expanded."""
    text = body["Fn::Sub"] if isinstance(body, dict) else body
    text = re.sub(r"\$\{([A-Za-z0-9]+)(\.[A-Za-z]+)?\}", lambda m: m.group(1), text)
    for widget in json.loads(text)["widgets"]:
        previous = []
        for row in widget.get("properties", {}).get("metrics", []):
            row = [x for x in row if not isinstance(x, dict)]  # rendering options
            if row and row[0] == "...":
                row = previous[: len(previous) - len(row) + 1] + row[1:]
            row = [previous[i] if x == "." else x for i, x in enumerate(row)]
            previous = row
            yield row


def metrics_read():
    """{function logical id: {metric names}} of the functions' own namespace, read by
    the alarms and the dashboard under the `FunctionName` dimension."""
    namespace = globals_fn["Environment"]["Variables"]["METRICS_NAMESPACE"]
    read = {}
    for res in resources.values():
        props = res.get("Properties", {})
        if res["Type"] == "AWS::CloudWatch::Alarm" and props.get("Namespace") == namespace:
            for d in props.get("Dimensions", []):
                if d["Name"] == "FunctionName":
                    read.setdefault(ref_name(d["Value"]), set()).add(props["MetricName"])
        if res["Type"] == "AWS::CloudWatch::Dashboard":
            for row in dashboard_rows(props["DashboardBody"]):
                if row[0] == namespace:
                    dims = dict(zip(row[2::2], row[3::2]))
                    read.setdefault(dims.get("FunctionName"), set()).add(row[1])
    return namespace, read


if sys.argv[1:] == ["--metrics-read"]:
    namespace, read = metrics_read()
    binary_of = {name: fn["Metadata"]["BuildProperties"]["Binary"] for name, fn in functions.items()}
    unknown = set(read) - set(binary_of)
    if unknown:
        sys.exit(f"alarms or the dashboard read {namespace} metrics of no function: {sorted(map(str, unknown))}")
    print(json.dumps({"namespace": namespace,
                      "binaries": {binary_of[f]: sorted(names) for f, names in sorted(read.items())}}))
    sys.exit(0)

lint = subprocess.run(["cfn-lint", TEMPLATE], capture_output=True, text=True)
check(lint.returncode == 0, "cfn-lint: no errors or warnings" + (f"\n{lint.stdout}{lint.stderr}" if lint.returncode else ""))

scan = subprocess.run(
    ["checkov", "-f", TEMPLATE, "--framework", "cloudformation", "--skip-download", "--output", "json"],
    capture_output=True,
    text=True,
    env={"BC_SKIP_MAPPING": "TRUE", "PATH": __import__("os").environ["PATH"], "HOME": __import__("os").environ.get("HOME", "/root")},
)
try:
    report = json.loads(scan.stdout)
    summary = report["summary"]
    failed = [f"{c['check_id']} {c['resource']}" for c in report["results"]["failed_checks"]]
    check(summary["failed"] == 0, f"checkov: {summary['passed']} passed, {summary['failed']} failed {failed}")
    skipped = sorted({c["check_id"] for c in report["results"]["skipped_checks"]})
    check(set(skipped) <= {"CKV_AWS_18", "CKV_AWS_115", "CKV_AWS_116", "CKV_AWS_117"}, f"checkov: only the justified checks are skipped: {skipped}")
except (json.JSONDecodeError, KeyError, TypeError) as e:
    check(False, f"checkov ran ({e}): {scan.stdout[-2000:]}{scan.stderr[-2000:]}")


for name, fn in functions.items():
    for skip in fn.get("Metadata", {}).get("checkov", {}).get("skip", []):
        check(len(skip.get("comment", "")) >= 30, f"{name}: skip of {skip['id']} is justified")
for name, res in resources.items():
    for skip in res.get("Metadata", {}).get("checkov", {}).get("skip", []):
        if name not in functions:
            check(len(skip.get("comment", "")) >= 30, f"{name}: skip of {skip['id']} is justified")

meta = json.loads(subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps", "--offline"],
                                 capture_output=True, text=True, check=True).stdout)
binaries = {t["name"] for p in meta["packages"] for t in p["targets"] if "bin" in t["kind"]} - {"pipeline"}
deployed = {fn["Metadata"]["BuildProperties"]["Binary"]: name for name, fn in functions.items()
            if fn.get("Metadata", {}).get("BuildMethod") == "rust-cargolambda"}
check(set(deployed) == binaries, f"every Lambda binary is deployed (missing {binaries - set(deployed)}, unknown {set(deployed) - binaries})")
check(globals_fn.get("Runtime") == "provided.al2023" and globals_fn.get("Architectures") == ["arm64"],
      "functions run on provided.al2023, arm64")
roles = [fn["Properties"].get("Role", {}).get("Fn::GetAtt", [None])[0] for fn in functions.values()]
check(None not in roles and len(set(roles)) == len(roles), "one role per function")

for name, res in resources.items():
    if res["Type"] != "AWS::IAM::Role":
        continue
    for policy in res["Properties"].get("Policies", []):
        for st in policy["PolicyDocument"]["Statement"]:
            actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            check(all("*" not in a for a in actions), f"{name}/{st.get('Sid')}: no wildcard action")
            if st.get("Resource") == "*":
                # the only actions that take no resource
                check(all(a.startswith("xray:") or a == "timestream:DescribeEndpoints" for a in actions),
                      f"{name}/{st.get('Sid')}: '*' only for X-Ray and Timestream endpoint discovery")
    check("ManagedPolicyArns" not in res["Properties"], f"{name}: no managed policies (they grant more)")

# every setting the template gives a function is one the code reads: a misspelt
# name would leave the function on its default without a word
sources = "".join(open(f).read() for f in sorted(__import__("glob").glob("*/src/**/*.rs", recursive=True)))
READ_BY_LIBRARIES = {"RUST_LOG"}  # tracing-subscriber's EnvFilter
for name, fn in [("Globals", {"Properties": globals_fn})] + sorted(functions.items()):
    for var in fn["Properties"].get("Environment", {}).get("Variables", {}):
        check(var in READ_BY_LIBRARIES or f'"{var}"' in sources, f"{name}: the code reads {var}")

REQUIRED_ESM = {"BatchSize", "MaximumBatchingWindowInSeconds", "ParallelizationFactor", "BisectBatchOnFunctionError",
                "MaximumRetryAttempts", "MaximumRecordAgeInSeconds", "FunctionResponseTypes", "DestinationConfig"}
consumers = 0
for name, fn in functions.items():
    for event in fn["Properties"].get("Events", {}).values():
        if event["Type"] == "Kinesis":
            consumers += 1
            props = event["Properties"]
            check(REQUIRED_ESM <= set(props), f"{name}: event source mapping sets {sorted(REQUIRED_ESM - set(props)) or 'everything'}")
            check(props.get("FunctionResponseTypes") == ["ReportBatchItemFailures"], f"{name}: ReportBatchItemFailures")
check(consumers == 2, "two stream consumers (archiver, aggregator)")

for table in ["user_events", "order_events", "order_items"]:
    sql = open(f"infra/athena/{table}.sql").read()
    body = sql[sql.index("CREATE EXTERNAL TABLE"):]
    body = body[body.index("(") + 1: body.index("\n)")]
    want = [(m.group(1), m.group(2)) for line in body.splitlines() if (m := re.match(r"\s*(\w+)\s+([\w<>]+)", line))]
    glue = [r for r in resources.values() if r["Type"] == "AWS::Glue::Table" and r["Properties"]["TableInput"]["Name"] == table]
    check(len(glue) == 1, f"Glue table {table} exists")
    if glue:
        tin = glue[0]["Properties"]["TableInput"]
        got = [(c["Name"], c["Type"]) for c in tin["StorageDescriptor"]["Columns"]]
        check(got == want, f"Glue table {table}: columns as in infra/athena/{table}.sql")
        check(tin["Parameters"].get("projection.enabled") == "true", f"Glue table {table}: partition projection")

runbook = open("docs/operations.md").read()
anchors = {re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-") for h in re.findall(r"^#+ (.*)$", runbook, re.M)}
for name, res in resources.items():
    if res["Type"] == "AWS::CloudWatch::Alarm":
        m = re.search(r"docs/operations\.md#([\w-]+)", res["Properties"]["AlarmDescription"])
        check(bool(m) and m.group(1) in anchors, f"{name}: runbook section {m.group(1) if m else None} exists")

config = tomllib.load(open("infra/samconfig.toml", "rb"))
for env in ["dev", "staging", "prod"]:
    overrides = " ".join(config.get(env, {}).get("deploy", {}).get("parameters", {}).get("parameter_overrides", []))
    check(f"Stage={env}" in overrides, f"samconfig: {env} deploys with Stage={env}")

print(f"{len(failures)} failed")
sys.exit(1 if failures else 0)
