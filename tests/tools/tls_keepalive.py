"""Test helper: one HTTPS keep-alive connection kept across a reload.
usage: tls_keepalive.py PORT CAFILE FLAG
GET /healthz, wait until FLAG exists (the reload is done), GET /healthz again
on the same connection; prints both statuses and whether the connection was
the same one.
"""
import http.client
import os
import ssl
import sys
import time

port, ca, flag = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
c.request("GET", "/healthz")
r = c.getresponse(); r.read()
first, sock = r.status, c.sock
for _ in range(200):
    if os.path.exists(flag):
        break
    time.sleep(0.05)
c.request("GET", "/healthz")
r = c.getresponse(); r.read()
print(first, r.status, "same-connection" if c.sock is sock else "new-connection")
