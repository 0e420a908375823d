#!/usr/bin/env python3
"""How long a status stream takes to show a received event.

usage: stream_latency.py POST_BASE STREAM_BASE SECRET_B64 N

Follows STREAM_BASE's /events/stream (with curl -N), posts N hook events to
POST_BASE one at a time, 50-250 ms apart (so a change never lands on a
timer's beat by design), and prints "p50_ms p90_ms max_ms missing": the
time from sending each POST to its "received" message on the stream."""
import json
import random
import subprocess
import sys
import threading
import time
import urllib.request
import uuid

post_base, stream_base, secret_b64, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
seen = {}
lock = threading.Lock()
curl = subprocess.Popen(["curl", "-sN", "--max-time", "600", stream_base + "/events/stream"],
                        stdout=subprocess.PIPE, text=True, bufsize=1)


def follow():
    for line in curl.stdout:
        if line.startswith("data: "):
            t = time.monotonic()
            d = json.loads(line[6:])
            if d.get("change") == "received":
                with lock:
                    seen.setdefault(d["event_id"], t)


threading.Thread(target=follow, daemon=True).start()
time.sleep(1.0)   # the stream is open before the first event
random.seed(7)
sent = {}
for i in range(n):
    time.sleep(random.uniform(0.05, 0.25))
    body = json.dumps({"hook_id": str(uuid.uuid4()), "process_type": "ingestion", "resource_id": str(uuid.uuid4()),
                       "previous_state": None, "current_state": "ready"}).encode()
    req = urllib.request.Request(post_base + "/events", data=body, method="POST",
                                 headers={"Content-Type": "application/json", "Authorization": "Bearer " + secret_b64})
    t0 = time.monotonic()
    with urllib.request.urlopen(req, timeout=10) as r:
        sent[json.loads(r.read())["event_id"]] = t0
deadline = time.monotonic() + 5
while time.monotonic() < deadline:
    with lock:
        if all(e in seen for e in sent):
            break
    time.sleep(0.05)
curl.kill()
with lock:
    ms = sorted((seen[e] - t0) * 1000 for e, t0 in sent.items() if e in seen)
missing = len(sent) - len(ms)
if not ms:
    print("- - - %d" % missing)
else:
    print("%.1f %.1f %.1f %d" % (ms[len(ms) // 2], ms[min(len(ms) - 1, int(len(ms) * 0.9))], ms[-1], missing))
