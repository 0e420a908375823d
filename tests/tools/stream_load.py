"""Test helper for the stream tests. usage:
  stream_load.py stall PORT PATH TOKEN SECONDS   subscribe (a tiny receive window) and never read
  stream_load.py post PORT PATH N PREFIX AUTH    POST N events on one keep-alive connection; prints the 202s
"""
import http.client
import json
import socket
import sys
import time

cmd, port = sys.argv[1], int(sys.argv[2])
if cmd == "stall":
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    s.connect(("127.0.0.1", port))
    s.sendall(("GET %s HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n\r\n" % (sys.argv[3], sys.argv[4])).encode())
    time.sleep(float(sys.argv[5]))
elif cmd == "post":
    path, n, prefix = sys.argv[3], int(sys.argv[4]), sys.argv[5]
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    ok = 0
    for i in range(n):
        body = json.dumps({"current_state": "finalizing", "process_type": "digestion",
                           "resource_id": "%s%012d" % (prefix, i)})
        c.request("POST", path, body, {"Content-Type": "application/json", "Authorization": sys.argv[6]})
        r = c.getresponse()
        r.read()
        ok += r.status == 202
    print(ok)
