"""Cold start of a Lambda binary under an emulated Lambda Runtime API.

For each run: start a minimal Runtime API server (the endpoints a custom runtime
uses: invocation/next, invocation/{id}/response and /error, init/error), spawn the
binary as Lambda would (AWS_LAMBDA_RUNTIME_API and the function's environment),
hand it one event, and record

- init: process start -> the binary's first `GET invocation/next` (what Lambda
  reports as Init Duration),
- first event: process start -> the response to that event posted,
- peak RSS of the process (the largest over the runs).

With `--warm N`, each run then hands the same event N more times to the same
process and records, for each of these warm invocations, event handed ->
response posted and the process's minor page faults in between (from
/proc/PID/stat): a warm function should not map and fault in memory anew
every invocation. The first warm invocations are not counted (buffers grow).

Prints the medians (and min/max) over the runs and the binary's size.

    python3 benches/cold_start.py target/release/event-processor EVENT.json \
        --env LAKE_URI=file:///tmp/cs/lake --env DLQ_URI=file:///tmp/cs/dlq --runs 20
    python3 benches/cold_start.py target/release/event-processor EVENT.json \
        --env LAKE_URI=file:///tmp/cs/lake --env DLQ_URI=file:///tmp/cs/dlq --runs 3 --warm 30
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


# warm invocations not counted: the decoder's and encoder's buffers grow in them
WARM_SKIPPED = 3


def minor_faults(pid):
    """The process's minor page faults so far (field 10 of /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[7])


class Api:
    def __init__(self, event, warm=0):
        self.event = event
        self.invocations = 1 + warm
        self.handed = 0
        self.first_next = None
        self.responded = None
        self.error = None
        self.pid = None
        self.handed_at = None
        self.faults_at = None
        self.warm = []  # (ms, minor faults) of each warm invocation
        self.done = threading.Event()


def make_handler(api):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _reply(self, code, body=b"", headers=()):
            self.send_response(code)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path != "/2018-06-01/runtime/invocation/next":
                return self._reply(404)
            if api.first_next is None:
                api.first_next = time.perf_counter()
            if api.handed >= api.invocations:
                api.done.wait(30)  # a further call waits for the end of the run
                return self._reply(500)
            api.handed += 1
            if api.handed > 1 and api.pid is not None:
                api.faults_at = minor_faults(api.pid)
            api.handed_at = time.perf_counter()
            deadline = int(time.time() * 1000) + 60_000
            self._reply(200, api.event, [
                ("Content-Type", "application/json"),
                ("Lambda-Runtime-Aws-Request-Id", f"cold-start-{api.handed}"),
                ("Lambda-Runtime-Deadline-Ms", str(deadline)),
                ("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:cold-start"),
                ("Lambda-Runtime-Trace-Id", "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"),
            ])

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            now = time.perf_counter()
            if not self.path.endswith("/response"):
                api.error = body.decode(errors="replace") or self.path
            elif api.handed == 1:
                api.responded = now
                api.response = body
            elif api.faults_at is not None:
                faults = minor_faults(api.pid) - api.faults_at
                api.warm.append(((now - api.handed_at) * 1000, faults))
            self._reply(202, b"{}")
            if api.error or api.handed >= api.invocations:
                api.done.set()

    return Handler


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # the binary is killed mid-request at the end of each run


def run_once(binary, event, env, warm=0):
    api = Api(event, warm)
    server = Server(("127.0.0.1", 0), make_handler(api))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    full_env = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}",
        "AWS_LAMBDA_FUNCTION_NAME": "cold-start",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/cold-start",
        "AWS_LAMBDA_LOG_STREAM_NAME": "cold-start",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_EC2_METADATA_DISABLED": "true",
        **env,
    }
    start = time.perf_counter()
    proc = subprocess.Popen([binary], env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    api.pid = proc.pid
    finished = api.done.wait(60 + 10 * warm)
    proc.kill()
    _, stderr = proc.communicate()
    server.shutdown()
    if not finished or api.error or api.responded is None:
        raise SystemExit(f"{binary}: no response ({api.error or 'timeout'}); stderr:\n{stderr.decode(errors='replace')[-2000:]}")
    return (api.first_next - start) * 1000, (api.responded - start) * 1000, api.response, api.warm[WARM_SKIPPED:]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("binary")
    ap.add_argument("event")
    ap.add_argument("--env", action="append", default=[], help="KEY=VALUE for the function")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warm", type=int, default=0, help="warm invocations after the first, each run")
    args = ap.parse_args()
    if args.warm and args.warm <= WARM_SKIPPED:
        ap.error(f"--warm must be more than {WARM_SKIPPED} (the first {WARM_SKIPPED} are not counted)")
    env = dict(e.split("=", 1) for e in args.env)
    event = open(args.event, "rb").read()
    inits, firsts, warm = [], [], []
    response = b""
    for _ in range(args.runs):
        init, first, response, warm_run = run_once(args.binary, event, env, args.warm)
        inits.append(init)
        firsts.append(first)
        warm.extend(warm_run)
    name = os.path.basename(args.binary)
    size = os.path.getsize(args.binary)
    warm_figures = {}
    if warm:
        warm_figures = {
            "warm_invocations": len(warm),
            "warm_ms_median": round(statistics.median(ms for ms, _ in warm), 1),
            "warm_ms_min": round(min(ms for ms, _ in warm), 1),
            "warm_minor_faults_median": statistics.median(f for _, f in warm),
            "warm_minor_faults_max": max(f for _, f in warm),
        }
    print(json.dumps({
        "binary": name,
        "bytes": size,
        "runs": args.runs,
        "init_ms_median": round(statistics.median(inits), 1),
        "init_ms_min": round(min(inits), 1),
        "init_ms_max": round(max(inits), 1),
        "first_event_ms_median": round(statistics.median(firsts), 1),
        "first_event_ms_min": round(min(firsts), 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
        **warm_figures,
        "event_bytes": len(event),
        "response_head": response[:120].decode(errors="replace"),
    }))


if __name__ == "__main__":
    main()
