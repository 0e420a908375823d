#!/usr/bin/env python3
"""Regenerate the bad-request corpus: NNN-name.req (raw bytes as sent on the
wire) and NNN-name.exp (what the daemon must answer). A maintainer tool: the
generated files are committed, and the test driver needs only bash.

The daemon under test runs with the secret below, max_body = 256K,
dedupe_window = 0 and an unreachable LogQS (valid events are unrouted).

.exp lines:  status N | body EXACT | contains TEXT | interim 100 | close
  close: the connection is closed without an answer (HTTP itself is broken).
"""
import base64, json, os, sys

HERE = os.path.dirname(os.path.abspath(__file__))
SECRET = b"corpus-secret"
AUTH = b"Bearer " + base64.b64encode(SECRET)
MAX_BODY = 256 * 1024
RID = "00000000-0000-4000-8000-000000000001"
U = "11111111-2222-4333-8444-555555555555"
STATES = "'ready', 'queued', 'processing', 'finalizing', 'completed', 'failed', 'cancelled' or 'archived'"
TYPES = "'ingestion', 'ingestion_part', 'digestion' or 'digestion_part'"

cases = []


def event(**over):
    ev = {"previous_state": "queued", "current_state": "ready", "process_type": "ingestion",
          "resource_id": RID, "workflow_id": U, "hook_id": U, "datastore_id": U,
          "datastore_endpoint": "https://example.invalid"}
    for k, v in over.items():
        if v is DROP:
            ev.pop(k, None)
        else:
            ev[k] = v
    return json.dumps(ev).encode()


DROP = object()


def request(body=b"", method=b"POST", path=b"/events", headers=None, auth=AUTH, ctype=b"application/json",
            length=True, version=b"HTTP/1.1"):
    h = [b"Host: 127.0.0.1"]
    if ctype is not None:
        h.append(b"Content-Type: " + ctype)
    if auth is not None:
        h.append(b"Authorization: " + auth)
    if length and method in (b"POST", b"PUT", b"PATCH"):
        h.append(b"Content-Length: " + str(len(body)).encode())
    h += headers or []
    return method + b" " + path + b" " + version + b"\r\n" + b"\r\n".join(h) + b"\r\n\r\n" + body


def chunked(body, size=4096):
    out = b""
    for i in range(0, len(body), size):
        part = body[i:i + size]
        out += b"%x\r\n" % len(part) + part + b"\r\n"
    return out + b"0\r\n\r\n"


def add(name, req, *exp):
    cases.append((name, req, exp))


def err422(field, typ):
    return ("status 422", 'contains {"loc":["body","%s"]' % field, 'contains "type":"%s"' % typ)


ACCEPTED = ("status 202", 'contains "status":"accepted"')

# --- every field: missing, null, each wrong JSON type ---------------------
required = {"current_state": "enum", "process_type": "enum", "resource_id": "uuid"}
optional = {"previous_state": "enum", "workflow_id": "uuid", "hook_id": "uuid", "datastore_id": "uuid",
            "datastore_endpoint": "string"}
for f in list(required) + list(optional):
    if f in required:
        add(f"missing-{f}", request(event(**{f: DROP})), *err422(f, "missing"))
        add(f"null-{f}", request(event(**{f: None})), *err422(f, "missing"))
    else:
        add(f"missing-{f}", request(event(**{f: DROP})), *ACCEPTED)
        add(f"null-{f}", request(event(**{f: None})), *ACCEPTED)
    kind = required.get(f) or optional.get(f)
    wrong_type = {"enum": "enum", "uuid": "uuid_type", "string": "string_type"}[kind]
    for tname, val in (("number", 42), ("bool", True), ("array", [1]), ("object", {"a": 1})):
        add(f"type-{tname}-{f}", request(event(**{f: val})), *err422(f, wrong_type))

# --- unknown enum values ---------------------------------------------------
add("enum-current_state", request(event(current_state="finished")), *err422("current_state", "enum"),
    "contains Input should be " + STATES)
add("enum-previous_state", request(event(previous_state="READY")), *err422("previous_state", "enum"))
add("enum-process_type", request(event(process_type="log")), *err422("process_type", "enum"),
    "contains Input should be " + TYPES)

# --- UUIDs: hyphenated 8-4-4-4-12 in any case is accepted -----------------
for name, val in (("short", RID[:-1]), ("long", RID + "0"), ("braces", "{" + RID + "}"),
                  ("nonhex", "g" + RID[1:]), ("nohyphens", RID.replace("-", "")),
                  ("urn", "urn:uuid:" + RID), ("spaces", " " + RID), ("empty", ""),
                  ("hyphen-moved", RID[:7] + "-0" + RID[9:])):
    add(f"uuid-{name}-resource_id", request(event(resource_id=val)), *err422("resource_id", "uuid_parsing"))
add("uuid-braces-hook_id", request(event(hook_id="{" + U + "}")), *err422("hook_id", "uuid_parsing"))
add("uuid-upper-accepted", request(event(resource_id=RID.upper())), *ACCEPTED)
add("uuid-mixed-accepted", request(event(resource_id="0000000A-0000-4000-8000-00000000000b")), *ACCEPTED)
add("several-bad-fields", request(json.dumps({"current_state": 1, "resource_id": "x"}).encode()),
    *err422("current_state", "enum"), 'contains {"loc":["body","process_type"],"msg":"Field required"',
    'contains {"loc":["body","resource_id"]')

# --- JSON itself -----------------------------------------------------------
good = event()
add("json-truncated", request(good[:-5]), "status 400", "contains JSON decode error")
add("json-trailing-garbage", request(good + b" xyz"), "status 400", "contains end of file expected")
add("json-duplicate-keys", request(good[:-1] + b', "current_state": "failed"}'), "status 400",
    "contains duplicate object key")
add("json-deep-nesting-100000", request(b"[" * 100000 + b"]" * 100000), "status 400",
    "contains maximum parsing depth")
add("json-deep-nesting-unclosed", request(b'{"a":' + b"[" * 100000), "status 400", "contains JSON decode error")
add("json-huge-real", request(good[:-1] + b', "x": 1e999999}'), "status 400", "contains real number overflow")
add("json-huge-integer", request(good[:-1] + b', "x": 123456789012345678901234567890}'), "status 400",
    "contains too big integer")
add("json-invalid-utf8", request(good[:-1] + b', "x": "\xff\xfe"}'), "status 400", "contains unable to decode byte 0xff")
add("json-nul-byte-raw", request(good[:20] + b"\x00" + good[20:]), "status 400", "contains JSON decode error")
add("json-nul-escaped", request(event(datastore_endpoint="a\u0000b")), "status 400",
    "contains \\\\u0000 is not allowed")
add("json-top-array", request(b"[]"), "status 422", 'contains "loc":["body"]', "contains model_attributes_type")
add("json-top-string", request(b'"event"'), "status 422", "contains model_attributes_type")
add("json-top-number", request(b"42"), "status 422", "contains model_attributes_type")
add("json-empty-body", request(b""), "status 400", "contains JSON decode error")
add("json-whitespace-padded", request(b"\n\t " + good + b" \n"), *ACCEPTED)
add("json-unknown-fields-ignored", request(good[:-1] + b', "extra": {"deep": [1, 2, {"x": null}]}}'), *ACCEPTED)

# --- sizes -----------------------------------------------------------------
def padded(total):
    base = event()
    pad = total - len(base) - len(b', "pad": ""')
    body = base[:-1] + b', "pad": "' + b"p" * pad + b'"}'
    assert len(body) == total
    return body

add("size-exact-max-declared", request(padded(MAX_BODY)), *ACCEPTED)
add("size-max-plus-one-declared", request(padded(MAX_BODY + 1)), "status 413",
    'body {"detail":"Request body larger than max_body (262144 bytes)"}')
add("size-exact-max-chunked",
    request(chunked(padded(MAX_BODY)), length=False, headers=[b"Transfer-Encoding: chunked"]), *ACCEPTED)
add("size-max-plus-one-chunked",
    request(chunked(padded(MAX_BODY + 1)), length=False, headers=[b"Transfer-Encoding: chunked"]),
    "status 413", 'body {"detail":"Request body larger than max_body (262144 bytes)"}')
add("size-declared-huge", request(b"", headers=[]).replace(b"Content-Length: 0", b"Content-Length: 99999999999"),
    "status 413")
add("size-small-chunks",
    request(chunked(event(), 3), length=False, headers=[b"Transfer-Encoding: chunked"]), *ACCEPTED)

# --- framing ---------------------------------------------------------------
add("framing-cl-and-te", request(chunked(event()), headers=[b"Transfer-Encoding: chunked"]), "status 400",
    'body {"detail":"Bad Request: both Content-Length and Transfer-Encoding"}')
add("framing-two-content-lengths",
    request(event(), headers=[b"Content-Length: 3"]), "status 400",
    'body {"detail":"Bad Request: more than one Content-Length header"}')
add("framing-two-equal-content-lengths",
    request(event(), headers=[b"Content-Length: %d" % len(event())]), "status 400",
    'body {"detail":"Bad Request: more than one Content-Length header"}')
add("framing-te-gzip", request(event(), length=False, headers=[b"Transfer-Encoding: gzip"]), "status 400",
    'body {"detail":"Bad Request: only Transfer-Encoding: chunked is supported"}')
add("framing-bad-chunk-size",
    request(b"ZZ\r\n" + event() + b"\r\n0\r\n\r\n", length=False, headers=[b"Transfer-Encoding: chunked"]),
    "status 400")
add("framing-content-length-not-a-number", request(event()).replace(b"Content-Length: ", b"Content-Length: x"),
    "status 400")

# --- Expect: 100-continue --------------------------------------------------
add("expect-100-with-auth", request(event(), headers=[b"Expect: 100-continue"]), "interim 100", *ACCEPTED)
add("expect-100-without-auth", request(event(), auth=None, headers=[b"Expect: 100-continue"]), "status 401",
    'body {"detail":"Authorization header is missing"}')

# --- headers too large -----------------------------------------------------
add("header-line-40k", request(event(), headers=[b"X-Big: " + b"a" * 40000]), "status 431")
add("header-count-3000", request(event(), headers=[b"X-H%d: v" % i for i in range(3000)]), "status 431")

# --- Authorization variants ------------------------------------------------
INVALID = 'body {"detail":"Invalid authorization token"}'
add("auth-missing", request(event(), auth=None), "status 401", 'body {"detail":"Authorization header is missing"}')
add("auth-lowercase-scheme", request(event(), auth=AUTH.replace(b"Bearer", b"bearer")), *ACCEPTED)
add("auth-uppercase-scheme", request(event(), auth=AUTH.replace(b"Bearer", b"BEARER")), *ACCEPTED)
add("auth-extra-space", request(event(), auth=AUTH.replace(b" ", b"  ")), "status 401", INVALID)
add("auth-empty-token", request(event(), auth=b"Bearer "), "status 401", INVALID)
add("auth-scheme-only", request(event(), auth=b"Bearer"), "status 401", INVALID)
add("auth-empty-header", request(event(), auth=b""), "status 401", INVALID)
add("auth-invalid-base64", request(event(), auth=b"Bearer !!!not*base64"), "status 401", INVALID)
add("auth-base64-no-padding", request(event(), auth=AUTH.rstrip(b"=")), "status 401", INVALID)
add("auth-raw-secret", request(event(), auth=b"Bearer " + SECRET), "status 401", INVALID)
add("auth-wrong-secret", request(event(), auth=b"Bearer " + base64.b64encode(b"other-secret")), "status 401", INVALID)
add("auth-prefix-of-secret", request(event(), auth=b"Bearer " + base64.b64encode(SECRET[:-1])), "status 401", INVALID)
add("auth-secret-plus-suffix", request(event(), auth=b"Bearer " + base64.b64encode(SECRET + b"x")), "status 401", INVALID)
add("auth-basic-scheme", request(event(), auth=b"Basic " + base64.b64encode(SECRET)), "status 401", INVALID)
add("auth-10k-token", request(event(), auth=b"Bearer " + b"A" * 10240), "status 401", INVALID)
add("auth-secret-with-nul", request(event(), auth=b"Bearer " + base64.b64encode(SECRET + b"\x00")), "status 401", INVALID)
add("auth-before-size", request(padded(MAX_BODY + 1), auth=None), "status 401")
add("auth-before-content-type", request(event(), auth=None, ctype=b"text/plain"), "status 401")

# --- Content-Type ----------------------------------------------------------
UNSUP = 'body {"detail":"Content-Type must be application/json"}'
add("ctype-missing", request(event(), ctype=None), "status 415", UNSUP)
add("ctype-text-plain", request(event(), ctype=b"text/plain"), "status 415", UNSUP)
add("ctype-json-suffix", request(event(), ctype=b"application/jsonx"), "status 415", UNSUP)
add("ctype-form", request(event(), ctype=b"application/x-www-form-urlencoded"), "status 415", UNSUP)
add("ctype-uppercase", request(event(), ctype=b"APPLICATION/JSON"), *ACCEPTED)
add("ctype-charset", request(event(), ctype=b"application/json; charset=utf-8"), *ACCEPTED)
add("ctype-space-before-param", request(event(), ctype=b"application/json ; charset=utf-8"), *ACCEPTED)

# --- methods and paths -----------------------------------------------------
for m in (b"PUT", b"DELETE", b"PATCH"):
    add("method-" + m.decode().lower(), request(event(), method=m), "status 405",
        'body {"detail":"Method Not Allowed"}')
add("path-root", request(event(), path=b"/"), "status 404", 'body {"detail":"Not Found"}')
add("path-trailing-slash", request(event(), path=b"/events/"), "status 404")
add("path-prefix-only", request(event(), path=b"/eventsX"), "status 404")
add("path-traversal", request(b"", method=b"GET", path=b"/events/../events"), "status 404")
add("path-encoded-slash", request(b"", method=b"GET", path=b"/events/abc%2Fdef"), "status 404")
add("path-encoded-dots", request(b"", method=b"GET", path=b"/events/%2e%2e"), "status 400",
    'body {"detail":"event id must be a UUID"}')
add("path-id-too-long", request(b"", method=b"GET", path=b"/events/" + b"a" * 5000), "status 400")
add("path-unknown-event", request(b"", method=b"GET", path=b"/events/" + RID.encode()), "status 404",
    'body {"detail":"event not found"}')
add("path-query-on-post", request(event(), path=b"/events?source=logqs&x=%00"), *ACCEPTED)
add("path-history-post", request(b"", method=b"POST", path=b"/events/" + RID.encode() + b"/history"), "status 405")

# --- HTTP itself broken ----------------------------------------------------
add("http-garbage", b"GARBAGE\r\n\r\n", "close")
add("http-binary", bytes(range(256)) * 4, "status 400")
add("http-no-headers-end", b"POST /events HTTP/1.1\r\nHost: x\r\n", "close")
add("http-1.0-accepted", request(event(), version=b"HTTP/1.0"), *ACCEPTED)

if __name__ == "__main__":
    for f in os.listdir(HERE):
        if f.endswith((".req", ".exp")):
            os.unlink(os.path.join(HERE, f))
    for i, (name, req, exp) in enumerate(cases, 1):
        base = os.path.join(HERE, "%03d-%s" % (i, name))
        with open(base + ".req", "wb") as fh:
            fh.write(req)
        with open(base + ".exp", "w") as fh:
            fh.write("\n".join(exp) + "\n")
    print(f"{len(cases)} cases written", file=sys.stderr)
