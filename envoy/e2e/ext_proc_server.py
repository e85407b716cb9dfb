#!/usr/bin/env python3
"""A small external processor for tollgate's end-to-end tests: tollgate next to ext_proc.

It speaks Envoy's ``envoy.service.ext_proc.v3.ExternalProcessor/Process`` bidirectional gRPC
stream with only ``grpcio``: a generic handler gets the raw bytes and the few protobuf fields it
needs are decoded and encoded by hand below (no generated code, no ``protobuf`` package).

Per stream it answers every message so the request goes on unchanged:

* request/response headers: CONTINUE;
* a request body chunk: in ``FULL_DUPLEX_STREAMED`` mode the chunk itself goes back as the
  streamed body mutation (that mode replaces the body with what the processor sends), with the
  chunk's end_of_stream; in the buffered modes a plain CONTINUE;
* trailers: an empty mutation.

The mode of a stream is what the client asked for in its ``x-ext-proc-mode`` request header
(``full-duplex`` or ``buffered``): the processor sees the request headers first.

Every stream is recorded and served as JSON by a tiny HTTP server on ``--http-port``:
``GET /streams`` -> ``[{"mode", "path", "body_bytes", "chunks", "sha256", "end_of_stream",
"trailers"}, ...]`` (one entry per finished stream), ``POST /reset`` -> forget them.

Run: ``python envoy/e2e/ext_proc_server.py --port P --http-port Q`` (0 lets the OS pick). When
ready it prints ``ext_proc listening on <grpc port>`` then ``ext_proc http listening on <http
port>``, one per line, flushed.
"""

import argparse
import hashlib
import json
import sys
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc

SERVICE = "envoy.service.ext_proc.v3.ExternalProcessor"
METHOD = "Process"

# ProcessingRequest oneof fields -> the ProcessingResponse field that answers them.
REQUEST_HEADERS, RESPONSE_HEADERS, REQUEST_BODY, RESPONSE_BODY = 2, 3, 4, 5
REQUEST_TRAILERS, RESPONSE_TRAILERS = 6, 7
ANSWER_FIELD = {
    REQUEST_HEADERS: 1,
    RESPONSE_HEADERS: 2,
    REQUEST_BODY: 3,
    RESPONSE_BODY: 4,
    REQUEST_TRAILERS: 5,
    RESPONSE_TRAILERS: 6,
}

STREAMS = []
LOCK = threading.Lock()


# ---- protobuf wire format, the parts used here -----------------------------------------------

def read_varint(buf, pos):
    value, shift = 0, 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def fields(buf):
    """Yields (field number, wire type, value) of a message; value is int or bytes."""
    pos = 0
    while pos < len(buf):
        key, pos = read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = read_varint(buf, pos)
        elif wire == 2:
            length, pos = read_varint(buf, pos)
            value = bytes(buf[pos:pos + length])
            if len(value) != length:
                raise ValueError("truncated field")
            pos += length
        elif wire == 1:
            value, pos = bytes(buf[pos:pos + 8]), pos + 8
        elif wire == 5:
            value, pos = bytes(buf[pos:pos + 4]), pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield number, wire, value


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def message_field(number, payload):
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def bool_field(number, value):
    return varint(number << 3) + varint(1 if value else 0)


# ---- ext_proc messages -------------------------------------------------------------------------

def header_map(buf):
    """HttpHeaders.headers (a HeaderMap) -> {name: value}; both value (2) and raw_value (3)."""
    out = {}
    for number, _, value in fields(buf):
        if number != 1:
            continue
        key, val = "", b""
        for n, _, v in fields(value):
            if n == 1:
                key = v.decode("utf-8", "replace")
            elif n in (2, 3):
                val = v
        out[key.lower()] = val.decode("utf-8", "replace")
    return out


def continue_response(answer_field):
    # ProcessingResponse{<answer>: HeadersResponse/BodyResponse{response: CommonResponse{}}}
    return message_field(answer_field, message_field(1, b""))


def streamed_body_response(chunk, end_of_stream):
    # ProcessingResponse{request_body: BodyResponse{response: CommonResponse{
    #   body_mutation: BodyMutation{streamed_response: StreamedBodyResponse{body, end_of_stream}}}}}
    streamed = message_field(1, chunk) + bool_field(2, end_of_stream)
    mutation = message_field(3, streamed)
    common = message_field(3, mutation)
    return message_field(3, message_field(1, common))


def process(request_iterator, context):
    record = {"mode": None, "path": None, "body_bytes": 0, "chunks": 0,
              "end_of_stream": False, "trailers": False}
    digest = hashlib.sha256()
    try:
        for raw in request_iterator:
            kind, payload = None, b""
            for number, wire, value in fields(raw):
                if number in ANSWER_FIELD and wire == 2:
                    kind, payload = number, value
            if kind is None:
                continue
            if kind == REQUEST_HEADERS:
                headers = {}
                for n, _, v in fields(payload):
                    if n == 1:
                        headers = header_map(v)
                record["mode"] = headers.get("x-ext-proc-mode", "buffered")
                record["path"] = headers.get(":path")
                yield continue_response(ANSWER_FIELD[kind])
            elif kind == REQUEST_BODY:
                chunk, eos = b"", False
                for n, _, v in fields(payload):
                    if n == 1:
                        chunk = v
                    elif n == 2:
                        eos = bool(v)
                digest.update(chunk)
                record["body_bytes"] += len(chunk)
                record["chunks"] += 1
                record["end_of_stream"] = record["end_of_stream"] or eos
                if record["mode"] == "full-duplex":
                    yield streamed_body_response(chunk, eos)
                else:
                    yield continue_response(ANSWER_FIELD[kind])
            elif kind == REQUEST_TRAILERS:
                record["trailers"] = True
                record["end_of_stream"] = True
                yield message_field(ANSWER_FIELD[kind], b"")
            elif kind == RESPONSE_TRAILERS:
                yield message_field(ANSWER_FIELD[kind], b"")
            else:
                yield continue_response(ANSWER_FIELD[kind])
    finally:
        record["sha256"] = digest.hexdigest()
        with LOCK:
            STREAMS.append(record)


class Http(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def send_json(self, body):
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        with LOCK:
            self.send_json(list(STREAMS))

    def do_POST(self):
        with LOCK:
            STREAMS.clear()
        self.send_json({"ok": True})


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--http-port", type=int, default=0)
    args = parser.parse_args()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16),
                         options=[("grpc.max_receive_message_length", 64 << 20),
                                  ("grpc.max_send_message_length", 64 << 20)])
    handler = grpc.method_handlers_generic_handler(
        SERVICE, {METHOD: grpc.stream_stream_rpc_method_handler(process)})
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    print(f"ext_proc listening on {port}", flush=True)
    http = ThreadingHTTPServer(("127.0.0.1", args.http_port), Http)
    print(f"ext_proc http listening on {http.server_address[1]}", flush=True)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    try:
        server.wait_for_termination()
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
