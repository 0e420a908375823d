"""Benchmark baseline: the LogQS tutorial's digestion statistics, in Python
with requests, over all parts (the tutorial read 10), part indexes fetched
with a thread pool. usage: tutorial_stats.py API_URL DATASTORE KEY_ID KEY_SECRET DIGESTION_ID"""
import base64
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import requests

api, ds, key_id, key_secret, dig_id = sys.argv[1:6]
base = f"{api}/apps/lqs/{ds}/api/"
session = requests.Session()
adapter = requests.adapters.HTTPAdapter(pool_connections=8, pool_maxsize=8)
session.mount("http://", adapter)
session.headers.update({
    "Content-Type": "application/json",
    "Authorization": "Bearer " + base64.b64encode(f"{key_id}:{key_secret}".encode()).decode(),
})


def get(path, params=None):
    r = session.get(base + path, params=params)
    r.raise_for_status()
    return r.json()


def patch(path, body):
    r = session.patch(base + path, json=body)
    r.raise_for_status()
    return r.json()


t0 = time.monotonic()
digestion = get(f"digestions/{dig_id}")["data"]
parts, offset = [], 0
while True:
    page = get(f"digestions/{dig_id}/parts", dict(include_count="True", offset=offset, limit=1000,
                                                  order="created_at", sort="ASC"))
    parts += page["data"]
    offset += len(page["data"])
    if not page["data"] or offset >= page["count"]:
        break


def fetch(part):
    if part.get("index") is not None:
        return part["index"]
    return get(f"digestions/{dig_id}/parts/{part['id']}")["data"]["index"]


record_count = record_size = 0
with ThreadPoolExecutor(max_workers=8) as pool:
    for index in pool.map(fetch, parts):
        for entry in index:
            record_count += 1
            record_size += entry[7] if entry[7] is not None else entry[4]
log = get(f"logs/{digestion['log_id']}")["data"]
context = log["context"] or {}
context["digestion_stats"] = {"digestion_id": dig_id, "record_count": record_count, "record_size": record_size}
patch(f"logs/{digestion['log_id']}", {"context": context})
patch(f"digestions/{dig_id}", {"state": "completed"})
print(f"RESULT seconds={time.monotonic() - t0:.3f} record_count={record_count} record_size={record_size}")
