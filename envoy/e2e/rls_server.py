#!/usr/bin/env python3
"""A small global rate limit service for tollgate's end-to-end tests.

It speaks Envoy's ``envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit`` gRPC API (the
one envoyproxy/ratelimit + Redis implements) using only ``grpcio``: a generic handler receives
the raw request bytes and the protobuf messages are decoded/encoded by hand below, so no
generated code or ``protobuf`` package is needed.

Semantics follow envoyproxy/ratelimit's fixed-window Redis cache:

* Every descriptor has a counter per fixed window (``--unit``: second, minute, hour, day), keyed
  by domain + descriptor entries (``domain|k1=v1|k2=v2``).
* The hits charged to a descriptor are its own ``hits_addend`` (UInt64Value) when present (0 means
  "check without charging"), else the request's ``hits_addend``, where 0 (unset) counts as 1.
* The counter is incremented FIRST (like Redis ``INCRBY``) and then compared: the descriptor is
  OVER_LIMIT when the counter after the increment exceeds ``--limit``. Hits of an over-limit call
  are still recorded, exactly as envoyproxy/ratelimit does (without its optional local cache).
* OK statuses report ``limit_remaining = limit - counter``; OVER_LIMIT ones report 0. Every status
  carries ``current_limit`` and ``duration_until_reset`` (time left in the window).
* The overall code is OVER_LIMIT when any descriptor is, else OK. An empty domain or an empty
  descriptor list is answered with gRPC INVALID_ARGUMENT, like envoyproxy/ratelimit.

Every call is recorded and served as JSON by a tiny HTTP server on ``--http-port``:

* ``GET /calls``  -> ``[{"domain", "hits_addend", "descriptors": [{"entries": [[k, v], ...],
  "hits_addend": int|null, "hits": int, "limit": [requests_per_unit, unit]|null, "code": "OK"|"OVER_LIMIT", "total": int,
  "limit_remaining": int}], "overall": "OK"|"OVER_LIMIT"|"ERROR", "error": str|null,
  "time": float}, ...]`` (``hits`` is the effective charge described above; calls answered with
  a gRPC error have ``overall`` "ERROR", an ``error`` text and ``hits`` 0 on each descriptor)
* ``GET /totals`` -> ``{"<key>": counter}`` for the current windows
* ``POST /reset`` -> forget calls and counters
* ``POST /config`` with JSON ``{"limit": N, "delay_ms": N, "fail_status": <gRPC code int or
  null>}`` -> change the limit, delay every answer, or fail every call with that status code
* ``GET /health`` -> ``{"status": "ok"}``

Run: ``python envoy/e2e/rls_server.py --port P --http-port Q --limit N [--unit hour]``.
Ports may be 0 (the OS picks). When ready it prints ``rls listening on <grpc port>`` and then
``rls http listening on <http port>``, one per line, flushed.
"""

import argparse
import json
import sys
import threading
import time
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc

SERVICE = "envoy.service.ratelimit.v3.RateLimitService"
METHOD = "ShouldRateLimit"

CODE_UNKNOWN, CODE_OK, CODE_OVER_LIMIT = 0, 1, 2
CODE_NAMES = {CODE_UNKNOWN: "UNKNOWN", CODE_OK: "OK", CODE_OVER_LIMIT: "OVER_LIMIT"}

# RateLimitResponse.RateLimit.Unit values and their window lengths in seconds.
UNITS = {"second": (1, 1), "minute": (2, 60), "hour": (3, 3600), "day": (4, 86400)}

UINT32_MAX = 0xFFFFFFFF


# ---------------------------------------------------------------------------------------------
# Protobuf wire format, by hand.
# ---------------------------------------------------------------------------------------------

class DecodeError(ValueError):
    """The bytes are not a well-formed protobuf message."""


def read_varint(buf, pos):
    """Returns (value, new position); rejects truncated or over-64-bit varints."""
    value = 0
    for i in range(10):
        if pos >= len(buf):
            raise DecodeError("truncated varint")
        b = buf[pos]
        pos += 1
        if i == 9 and (b & 0x7F) > 1:
            raise DecodeError("varint overflows 64 bits")
        value |= (b & 0x7F) << (7 * i)
        if not b & 0x80:
            return value, pos
    raise DecodeError("varint longer than 10 bytes")


def iter_fields(buf):
    """Yields (field number, wire type, value) for every field of a message.

    Varints yield ints, length-delimited fields yield bytes; fixed-width fields and groups are
    skipped (yielded as None) so unknown fields of every wire type are tolerated.
    """
    pos = 0
    while pos < len(buf):
        key, pos = read_varint(buf, pos)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise DecodeError("field number 0")
        if wire == 0:
            value, pos = read_varint(buf, pos)
        elif wire == 1:
            pos = skip_bytes(buf, pos, 8)
            value = None
        elif wire == 2:
            length, pos = read_varint(buf, pos)
            end = skip_bytes(buf, pos, length)
            value = bytes(buf[pos:end])
            pos = end
        elif wire == 3:
            pos = skip_group(buf, pos, field)
            value = None
        elif wire == 5:
            pos = skip_bytes(buf, pos, 4)
            value = None
        else:
            raise DecodeError(f"bad wire type {wire}")
        yield field, wire, value


def skip_bytes(buf, pos, n):
    if n > len(buf) - pos:
        raise DecodeError("truncated field")
    return pos + n


def skip_group(buf, pos, field):
    """Skips to just after the end-group tag matching a start-group of ``field``."""
    stack = [field]
    while stack:
        key, pos = read_varint(buf, pos)
        f, wire = key >> 3, key & 7
        if f == 0:
            raise DecodeError("field number 0")
        if wire == 0:
            _, pos = read_varint(buf, pos)
        elif wire == 1:
            pos = skip_bytes(buf, pos, 8)
        elif wire == 2:
            length, pos = read_varint(buf, pos)
            pos = skip_bytes(buf, pos, length)
        elif wire == 3:
            if len(stack) >= 64:
                raise DecodeError("groups nested too deeply")
            stack.append(f)
        elif wire == 4:
            if stack.pop() != f:
                raise DecodeError("mismatched end group")
        elif wire == 5:
            pos = skip_bytes(buf, pos, 4)
        else:
            raise DecodeError(f"bad wire type {wire}")
    return pos


def text(value):
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DecodeError("string is not UTF-8") from e


def decode_request(buf):
    """Decodes a RateLimitRequest into a dict.

    RateLimitRequest { string domain = 1; repeated RateLimitDescriptor descriptors = 2;
                       uint32 hits_addend = 3; }
    RateLimitDescriptor { repeated Entry entries = 1; RateLimitOverride limit = 2;
                          google.protobuf.UInt64Value hits_addend = 3; }
    Entry { string key = 1; string value = 2; }
    """
    request = {"domain": "", "descriptors": [], "hits_addend": 0}
    for field, wire, value in iter_fields(buf):
        if field == 1 and wire == 2:
            request["domain"] = text(value)
        elif field == 2 and wire == 2:
            request["descriptors"].append(decode_descriptor(value))
        elif field == 3 and wire == 0:
            request["hits_addend"] = value & UINT32_MAX
    return request


def decode_descriptor(buf):
    """RateLimitDescriptor; ``limit`` is the RateLimitOverride as (requests_per_unit, unit)."""
    descriptor = {"entries": [], "hits_addend": None, "limit": None}
    for field, wire, value in iter_fields(buf):
        if field == 1 and wire == 2:
            key, val = "", ""
            for f, w, v in iter_fields(value):
                if f == 1 and w == 2:
                    key = text(v)
                elif f == 2 and w == 2:
                    val = text(v)
            descriptor["entries"].append([key, val])
        elif field == 2 and wire == 2:
            # RateLimitOverride { uint32 requests_per_unit = 1; RateLimitUnit unit = 2; }
            per_unit, unit = 0, 0
            for f, w, v in iter_fields(value):
                if f == 1 and w == 0:
                    per_unit = v & UINT32_MAX
                elif f == 2 and w == 0:
                    unit = v
            descriptor["limit"] = (per_unit, unit)
        elif field == 3 and wire == 2:
            hits = 0  # an empty UInt64Value is present with value 0
            for f, w, v in iter_fields(value):
                if f == 1 and w == 0:
                    hits = v
            descriptor["hits_addend"] = hits
    return descriptor


def put_varint(out, value):
    value &= (1 << 64) - 1
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def put_varint_field(out, field, value):
    if value:
        put_varint(out, field << 3)
        put_varint(out, value)


def put_message(out, field, body):
    put_varint(out, (field << 3) | 2)
    put_varint(out, len(body))
    out.extend(body)


def encode_response(overall, statuses):
    """Encodes a RateLimitResponse.

    RateLimitResponse { Code overall_code = 1; repeated DescriptorStatus statuses = 2; }
    DescriptorStatus { Code code = 1; RateLimit current_limit = 2; uint32 limit_remaining = 3;
                       google.protobuf.Duration duration_until_reset = 4; }
    RateLimit { uint32 requests_per_unit = 1; Unit unit = 2; }
    Duration { int64 seconds = 1; int32 nanos = 2; }
    """
    out = bytearray()
    put_varint_field(out, 1, overall)
    for status in statuses:
        body = bytearray()
        put_varint_field(body, 1, status["code"])
        limit = bytearray()
        put_varint_field(limit, 1, min(status["requests_per_unit"], UINT32_MAX))
        put_varint_field(limit, 2, status["unit"])
        put_message(body, 2, limit)
        put_varint_field(body, 3, min(status["limit_remaining"], UINT32_MAX))
        duration = bytearray()
        put_varint_field(duration, 1, status["reset_seconds"])
        put_message(body, 4, duration)
        put_message(out, 2, body)
    return bytes(out)


# ---------------------------------------------------------------------------------------------
# The service.
# ---------------------------------------------------------------------------------------------

class RateLimitState:
    """Fixed-window counters and the call log, shared by the gRPC and HTTP servers."""

    def __init__(self, limit, unit):
        self.lock = threading.Lock()
        self.limit = limit
        self.unit_code, self.window = UNITS[unit]
        self.counters = {}  # (key, window start) -> hits
        self.calls = []
        self.delay_ms = 0
        self.fail_status = None

    @staticmethod
    def key(domain, entries):
        return "|".join([domain] + [f"{k}={v}" for k, v in entries])

    def should_rate_limit(self, raw, context):
        with self.lock:
            delay_ms, fail_status = self.delay_ms, self.fail_status
        if delay_ms:
            time.sleep(delay_ms / 1000.0)
        call = {"time": time.time(), "domain": None, "hits_addend": None, "descriptors": [],
                "overall": "ERROR", "error": None}
        try:
            request = decode_request(raw)
        except DecodeError as e:
            call["error"] = f"malformed request: {e}"
            self.record(call)
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, call["error"])
        call["domain"] = request["domain"]
        call["hits_addend"] = request["hits_addend"]
        if fail_status is not None:
            call["descriptors"] = [dict(d, hits=0) for d in request["descriptors"]]
            call["error"] = f"configured failure {fail_status}"
            self.record(call)
            context.abort(grpc_status(fail_status), call["error"])
        if not request["domain"] or not request["descriptors"]:
            call["descriptors"] = [dict(d, hits=0) for d in request["descriptors"]]
            call["error"] = "domain and descriptors are required"
            self.record(call)
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, call["error"])

        now = time.time()
        window_start = int(now) // self.window * self.window
        reset_seconds = max(1, window_start + self.window - int(now))
        statuses = []
        overall = CODE_OK
        with self.lock:
            for d in request["descriptors"]:
                if d["hits_addend"] is not None:
                    hits = d["hits_addend"]
                else:
                    hits = max(1, request["hits_addend"])
                slot = (self.key(request["domain"], d["entries"]), window_start)
                total = self.counters.get(slot, 0) + hits  # increment first, like INCRBY
                self.counters[slot] = total
                over = total > self.limit
                code = CODE_OVER_LIMIT if over else CODE_OK
                if over:
                    overall = CODE_OVER_LIMIT
                remaining = 0 if over else self.limit - total
                statuses.append({"code": code, "requests_per_unit": self.limit,
                                 "unit": self.unit_code, "limit_remaining": remaining,
                                 "reset_seconds": reset_seconds})
                call["descriptors"].append({"entries": d["entries"],
                                            "hits_addend": d["hits_addend"], "hits": hits,
                                            "limit": d["limit"],
                                            "code": CODE_NAMES[code], "total": total,
                                            "limit_remaining": remaining})
            call["overall"] = CODE_NAMES[overall]
            self.calls.append(call)
        return encode_response(overall, statuses)

    def record(self, call):
        with self.lock:
            self.calls.append(call)

    def snapshot_calls(self):
        with self.lock:
            return json.loads(json.dumps(self.calls))

    def totals(self):
        now_start = int(time.time()) // self.window * self.window
        with self.lock:
            return {k: v for (k, start), v in self.counters.items() if start == now_start}

    def reset(self):
        with self.lock:
            self.calls.clear()
            self.counters.clear()

    def configure(self, settings):
        with self.lock:
            if "limit" in settings:
                self.limit = int(settings["limit"])
            if "delay_ms" in settings:
                self.delay_ms = max(0, int(settings["delay_ms"]))
            if "fail_status" in settings:
                fs = settings["fail_status"]
                self.fail_status = None if fs is None else int(fs)


def grpc_status(code):
    for status in grpc.StatusCode:
        if status.value[0] == code:
            return status
    return grpc.StatusCode.UNKNOWN


def make_http_handler(state):
    class Handler(BaseHTTPRequestHandler):
        def reply(self, status, payload):
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            path = self.path.split("?", 1)[0]
            if path == "/calls":
                self.reply(200, state.snapshot_calls())
            elif path == "/totals":
                self.reply(200, state.totals())
            elif path == "/health":
                self.reply(200, {"status": "ok"})
            else:
                self.reply(404, {"error": "not found"})

        def do_POST(self):
            path = self.path.split("?", 1)[0]
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            if path == "/reset":
                state.reset()
                self.reply(200, {"reset": True})
            elif path == "/config":
                try:
                    state.configure(json.loads(raw or b"{}"))
                except (ValueError, TypeError) as e:
                    self.reply(400, {"error": str(e)})
                    return
                self.reply(200, {"configured": True})
            else:
                self.reply(404, {"error": "not found"})

        def log_message(self, fmt, *args):  # keep test output quiet
            pass

    return Handler


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True, help="gRPC port (0: any)")
    parser.add_argument("--http-port", type=int, required=True, help="inspection port (0: any)")
    parser.add_argument("--limit", type=int, default=1_000_000,
                        help="hits allowed per descriptor per window")
    parser.add_argument("--unit", choices=sorted(UNITS), default="hour",
                        help="fixed window length")
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)

    state = RateLimitState(args.limit, args.unit)
    handler = grpc.method_handlers_generic_handler(SERVICE, {
        # No (de)serializers: the handler sees and returns raw protobuf bytes.
        METHOD: grpc.unary_unary_rpc_method_handler(state.should_rate_limit),
    })
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port(f"{args.host}:{args.port}")
    if port == 0:
        print(f"rls could not bind {args.host}:{args.port}", file=sys.stderr, flush=True)
        return 1
    http = ThreadingHTTPServer((args.host, args.http_port), make_http_handler(state))
    http.daemon_threads = True
    threading.Thread(target=http.serve_forever, daemon=True).start()
    server.start()
    print(f"rls listening on {port}", flush=True)
    print(f"rls http listening on {http.server_address[1]}", flush=True)
    try:
        server.wait_for_termination()
    except KeyboardInterrupt:
        pass
    finally:
        http.shutdown()
        server.stop(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
