#!/usr/bin/env python3
"""A real global rate limit service for tollgate's tests, benches and demo.

Envoy's ``envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit`` gRPC API (what
envoyproxy/ratelimit serves in production) over the ``limits`` library's fixed-window strategy
with its Redis storage, on a real ``redis-server``. Counting is the library's; this file only
speaks the protocol (with the wire helpers of ``rls_server.py``, the in-test stub kept for
protocol corner cases).

Semantics match envoyproxy/ratelimit's Redis backend:

* Each descriptor is counted on its own, under its ``limit`` override (requests_per_unit per unit,
  what tollgate sends); a descriptor without one uses ``--limit``/``--unit`` when given, else it is
  answered OK and not counted (envoyproxy/ratelimit: no matching config, no limit).
* The hits are the descriptor's ``hits_addend`` when present (0 = check only), else the request's
  ``hits_addend``, where 0 counts as 1.
* ``FixedWindowRateLimiter.hit`` adds the hits first (an atomic INCRBY + EXPIRE script) and then
  compares: OVER_LIMIT when the counter exceeds the limit, and over-limit hits stay counted. The
  window starts at a counter's first hit (envoyproxy/ratelimit aligns it to the clock instead).
* Statuses carry ``current_limit``, ``limit_remaining`` and ``duration_until_reset``.
* Redis down or slow (``--redis-timeout-ms``): gRPC UNAVAILABLE. The Redis client reconnects by
  itself once the server is back.

Run: ``python envoy/e2e/ratelimit_service.py --redis redis://127.0.0.1:6379 --port 0``.
Prints ``ratelimit listening on <port>`` (flushed) when ready.
"""

import argparse
import os
import sys
import threading
import time
from concurrent import futures
from urllib.parse import quote

import grpc
import limits
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rls_server import (  # noqa: E402  (the stub's hand-written wire format)
    CODE_OK,
    CODE_OVER_LIMIT,
    METHOD,
    SERVICE,
    DecodeError,
    decode_request,
    encode_response,
)

# RateLimitUnit wire values -> the limits library's items.
ITEMS = {
    1: limits.RateLimitItemPerSecond,
    2: limits.RateLimitItemPerMinute,
    3: limits.RateLimitItemPerHour,
    4: limits.RateLimitItemPerDay,
}
UNIT_NAMES = {"second": 1, "minute": 2, "hour": 3, "day": 4}


class Service:
    def __init__(self, redis_url, timeout_ms, default_limit, default_unit):
        timeout = timeout_ms / 1000.0
        self.storage = storage_from_string(
            redis_url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        self.limiter = FixedWindowRateLimiter(self.storage)
        self.default = (default_limit, default_unit) if default_limit else None
        self.lock = threading.Lock()
        self.stats = {"ok": 0, "over_limit": 0, "errors": 0, "hits": 0}

    def count(self, name, n=1):
        with self.lock:
            self.stats[name] += n

    def should_rate_limit(self, raw, context):
        try:
            request = decode_request(raw)
        except DecodeError as e:
            self.count("errors")
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"malformed request: {e}")
        if not request["domain"] or not request["descriptors"]:
            self.count("errors")
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "domain and descriptors are required")
        request_hits = request["hits_addend"] or 1
        overall, statuses = CODE_OK, []
        for d in request["descriptors"]:
            hits = d["hits_addend"] if d["hits_addend"] is not None else request_hits
            limit = d.get("limit") or self.default
            if limit is None or limit[0] == 0:
                statuses.append({"code": CODE_OK, "requests_per_unit": 0, "unit": 0,
                                 "limit_remaining": 0, "reset_seconds": 0})
                continue
            per_unit, unit = limit
            item_class = ITEMS.get(unit)
            if item_class is None:
                self.count("errors")
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unsupported unit {unit}")
            item = item_class(per_unit, namespace="RLS")
            ids = [quote(request["domain"], safe="")] + [
                quote(f"{k}={v}", safe="") for k, v in d["entries"]
            ]
            try:
                within = self.limiter.hit(item, *ids, cost=hits)
                reset_at, remaining = self.limiter.get_window_stats(item, *ids)
            except Exception as e:  # noqa: BLE001  (any storage failure is UNAVAILABLE)
                self.count("errors")
                context.abort(grpc.StatusCode.UNAVAILABLE, f"storage: {type(e).__name__}")
            self.count("hits", hits)
            code = CODE_OK if within else CODE_OVER_LIMIT
            if not within:
                overall = CODE_OVER_LIMIT
            statuses.append({
                "code": code,
                "requests_per_unit": per_unit,
                "unit": unit,
                "limit_remaining": remaining if within else 0,
                "reset_seconds": max(1, int(reset_at - time.time() + 0.999)),
            })
        self.count("ok" if overall == CODE_OK else "over_limit")
        return encode_response(overall, statuses)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis", required=True, help="redis://host:port")
    parser.add_argument("--port", type=int, default=0, help="gRPC port (0: any)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--redis-timeout-ms", type=int, default=200)
    parser.add_argument("--limit", type=int, default=0,
                        help="limit for descriptors without an override (0: none)")
    parser.add_argument("--unit", choices=sorted(UNIT_NAMES), default="minute")
    parser.add_argument("--workers", type=int, default=16)
    args = parser.parse_args(argv)

    service = Service(args.redis, args.redis_timeout_ms, args.limit, UNIT_NAMES[args.unit])
    handler = grpc.method_handlers_generic_handler(SERVICE, {
        METHOD: grpc.unary_unary_rpc_method_handler(service.should_rate_limit),
    })
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=args.workers))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port(f"{args.host}:{args.port}")
    if port == 0:
        print(f"ratelimit could not bind {args.host}:{args.port}", file=sys.stderr, flush=True)
        return 1
    server.start()
    print(f"ratelimit listening on {port}", flush=True)
    try:
        server.wait_for_termination()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
