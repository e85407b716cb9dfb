#!/usr/bin/env python3
"""Regenerates fuzz/seeds/<target>/ from the repository's fixtures, golden files, README
examples and test literals. Each seed is encoded in its target's input layout (see
fuzz/src/lib.rs). Run from anywhere: `python3 fuzz/make_seeds.py`."""
import glob, hashlib, json, os, re, struct, base64, hmac

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fuzz", "seeds")

def read(path):
    with open(os.path.join(ROOT, path), "rb") as f:
        return f.read()

def files(pattern):
    return sorted(glob.glob(os.path.join(ROOT, pattern)))

def raw_literals(paths):
    """r#"..."# string literals in Rust sources."""
    out = []
    for p in paths:
        text = open(p, encoding="utf-8").read()
        out += re.findall(r'r#"(.*?)"#', text, re.S)
    return out

def json_objects(strings):
    out = []
    for s in strings:
        try:
            if isinstance(json.loads(s), dict):
                out.append(s.encode())
        except ValueError:
            pass
    return out

def split_input(selector, payload, cuts=()):
    cuts = list(cuts)[:8]
    head = bytes([selector, len(cuts)]) + b"".join(struct.pack("<H", c % 65536) for c in cuts)
    return head + payload

written = {}
def seed(target, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)
    written[target] = written.get(target, 0) + 1

def thirds(payload):
    n = len(payload)
    return [n // 3, 2 * n // 3]

def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=")

usage_fixtures = files("filter/src/usage/fixtures/*")
translate_fixtures = files("filter/src/translate/fixtures/*")
sse_fixtures = [p for p in usage_fixtures + translate_fixtures if p.endswith(".sse")]
ndjson_fixtures = [p for p in usage_fixtures if p.endswith(".ndjson")]
json_fixtures = [p for p in usage_fixtures + translate_fixtures if p.endswith(".json")]

# ---- jwt: raw tokens, signed claims, requests
jwt_literals = raw_literals(files("filter/src/jwt/*.rs"))
tokens = [s for p in files("filter/src/jwt/tests/*.rs")
          for s in re.findall(r'"(eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*)"', read(p).decode())]
for t in tokens:
    seed("jwt", b"\x00" + t.encode())
    seed("jwt", b"\x02" + b"GET /v1/chat/completions\nauthorization: Bearer " + t.encode())
    seed("jwt", b"\x02" + b"POST /v1/admin?access_token=" + t.encode() + b"\ncookie: a=b")
claims = [
    {"iss": "https://issuer.test", "aud": "api", "exp": 1700000600, "sub": "u1"},
    {"iss": "https://issuer.test", "aud": ["x", "api"], "exp": 1700000600, "iat": 1699999990,
     "nbf": 1699999000, "scope": "admin read", "org": {"team": "blue"}, "sub": "u2"},
    {"iss": "https://issuer.test", "aud": "api", "exp": 1600000000},
    {"iss": "https://other", "aud": "api", "exp": 1700000600},
    {"iss": "https://issuer.test", "aud": "api", "exp": 1800000000},
    {"iss": "https://issuer.test", "aud": "api", "exp": 0, "jti": "j"},
]
for i, c in enumerate(claims):
    seed("jwt", bytes([1, i % 4]) + json.dumps(c).encode())
seed("jwt", b"\x02GET /health\n")
seed("jwt", b"\x02OPTIONS /v1/x\norigin: https://a\naccess-control-request-method: POST")

# ---- key_set: remote key set documents, valid and with every kind of bad entry
def key_entry(i, **extra):
    e = {"id": f"k{i}", "sha256": hashlib.sha256(f"tg-{i}".encode()).hexdigest(),
         "owner": f"o{i}", "team": "t"}
    e.update(extra)
    return e
seed("key_set", json.dumps({"keys": []}).encode())
seed("key_set", json.dumps({"keys": [key_entry(1), key_entry(2, models=["gpt-4o", "claude-*"])]}).encode())
seed("key_set", json.dumps({"keys": [key_entry(1, budgets=[{"period": "day", "max_tokens": 1000},
                                                           {"period": 60, "max_requests": 5}],
                                                expires_at="2027-01-01T00:00:00Z",
                                                labels={"env": "prod"}, revoked=True),
                                      key_entry(2, expires_at=1800000000)]}).encode())
seed("key_set", json.dumps({"keys": [key_entry(1), key_entry(1), dict(key_entry(3), sha256="zz"),
                                      {"id": 4}, "x", dict(key_entry(5), extra=1),
                                      key_entry(6, budgets=[{"period": "fortnight"}])]}).encode())
seed("key_set", b'{"keys": [], "keys": []}')
seed("key_set", b'[[]]')  # serde's struct-as-array form: once read as an empty set

# ---- jwks
for s in json_objects(jwt_literals):
    if b'"keys"' in s:
        seed("jwks", s)

# ---- stream_parsers: every parser and cap over every stream fixture, split in thirds
for p in sse_fixtures + ndjson_fixtures:
    body = read(os.path.relpath(p, ROOT))
    for parser in range(4):
        for cap in (0, 2, 3):
            seed("stream_parsers", split_input(parser | cap << 2, body, thirds(body)))

# ---- usage: fixtures with their kind and framing
KINDS = ["openai_chat", "openai_responses", "openai_embeddings", "anthropic", "gemini", "ollama"]
def kind_of(name):
    for i, k in enumerate(["openai_chat", "openai_responses", "openai_embeddings", "anthropic",
                           "gemini", "ollama"]):
        if name.startswith(k) or (k == "openai_chat" and name.startswith("vllm")):
            return i
    return 0
for p in usage_fixtures:
    name = os.path.basename(p)
    body = read(os.path.relpath(p, ROOT))
    framing = 0 if name.endswith(".sse") else 1 if name.endswith(".ndjson") else 2
    sel = kind_of(name) + 6 * framing
    seed("usage", split_input(sel, body, thirds(body)))
    seed("usage", split_input(sel | 0x80, body, thirds(body)))

# ---- translate_request: OpenAI request bodies
requests = [read("filter/src/translate/fixtures/openai_request_agent.json")]
requests += [s for s in json_objects(raw_literals(files("filter/src/translate/tests/request_tests.rs")))
             if b'"messages"' in s]
for body in requests:
    for sel in range(4):
        seed("translate_request", bytes([sel]) + body)

# ---- translate_response: provider bodies and error bodies
for p in json_fixtures:
    name = os.path.basename(p)
    body = read(os.path.relpath(p, ROOT))
    if name.startswith("anthropic"):
        seed("translate_response", b"\x00" + body)
    elif name.startswith("gemini"):
        seed("translate_response", b"\x01" + body)
for s in json_objects(raw_literals(files("filter/src/translate/tests/response_tests.rs"))):
    seed("translate_response", b"\x00" + s)
    seed("translate_response", b"\x01" + s)
seed("translate_response", b"\x02\x1d" + b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}')
seed("translate_response", b"\x03\x00" + b'{"error":{"code":429,"message":"Resource exhausted","status":"RESOURCE_EXHAUSTED"}}')

# ---- translate_stream: Anthropic / Gemini SSE fixtures
for p in sse_fixtures:
    name = os.path.basename(p)
    body = read(os.path.relpath(p, ROOT))
    src = 0 if name.startswith("anthropic") else 1 if name.startswith("gemini") else None
    if src is None:
        continue
    for flags in (0, 2, 4):
        seed("translate_stream", split_input(src | flags, body, thirds(body)))

# ---- masking: text with planted secrets (bytes 1-4), headers, JSON bodies
texts = [
    b'{"messages":[{"role":"user","content":"my key is \x01 and \x03 ok"}]}',
    b"Authorization: Bearer \x02\napi_key=Zx9Qw8Er7Ty6Ui5Op4\n\x04",
    b"password: correct-horse-battery-staple-42 token=\x01\x02",
    b"-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----",
    b"acme_live_0123456789abcdefXYZ and sk-proj-abcdefghijklmnopqrstuvwxyz0123456789ABCD",
    b"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlc2lnbmF0dXJl \x03",
]
for t in texts:
    for sel in (0, 1):
        seed("masking", split_input(sel, t, thirds(t)))
for p in sse_fixtures[:3]:
    body = read(os.path.relpath(p, ROOT))
    seed("masking", split_input(0, body, thirds(body)))

# ---- config: README and docs/configuration.md examples and test literals that parse as JSON objects
readme = read("README.md").decode() + read("docs/configuration.md").decode()
configs = [b.encode() for b in re.findall(r"```json\n(.*?)```", readme, re.S)]
configs += json_objects(raw_literals(files("envoy/e2e/tests/*.rs") + files("host-tests/tests/*.rs")
                                     + files("filter/src/config/*.rs") + files("filter/src/failover/*.rs")
                                     + files("filter/src/exchange/tests/*.rs")))
for c in configs:
    seed("config", c)
seed("config", b"")
seed("config", b"{}")

# ---- ratelimit_response: RateLimitResponse messages (mode 0) and verdict descriptions (mode 1)
def pb_varint(v):
    out = b""
    while v >= 0x80:
        out += bytes([(v & 0x7f) | 0x80])
        v >>= 7
    return out + bytes([v])
def pb_field(field, wire, payload):
    key = pb_varint(field << 3 | wire)
    return key + (payload if wire != 2 else pb_varint(len(payload)) + payload)
def rls_status(code, remaining=None, seconds=None, nanos=None):
    body = pb_field(1, 0, pb_varint(code))
    if remaining is not None:
        body += pb_field(3, 0, pb_varint(remaining))
    if seconds is not None or nanos is not None:
        d = b""
        if seconds:
            d += pb_field(1, 0, pb_varint(seconds))
        if nanos:
            d += pb_field(2, 0, pb_varint(nanos))
        body += pb_field(4, 2, d)
    return pb_field(2, 2, body)
for overall, statuses in [
    (1, [rls_status(1, 99, 60)]),
    (2, [rls_status(2, 0, 59, 500_000_000), rls_status(1, 10)]),
    (1, []),
    (0, [rls_status(3)]),
]:
    msg = pb_field(1, 0, pb_varint(overall)) + b"".join(statuses)
    seed("ratelimit_response", b"\x00" + msg)
    seed("ratelimit_response", b"\x00" + msg + pb_field(7, 5, b"\x01\x02\x03\x04"))
seed("ratelimit_response", b"\x00" + b"\x0b\x08\x01\x0c")  # a group
for i in range(4):
    seed("ratelimit_response", bytes([1, 2 + i, 0, 1, 4, 0, 0, 0, 9, 1, 2, 3, 4, 5, 6, 7, 8, i]))

# ---- backoff_hint: header selector, `now` (2026-12-03, little-endian ms), header value
now = struct.pack("<Q", 1_796_256_000_000)
for sel, value in [
    (0, "30"), (0, "1.5"), (0, "0"),
    (0, "Thu, 03 Dec 2026 00:00:20 GMT"),
    (0, "Thursday, 03-Dec-26 00:00:20 GMT"),
    (0, "Thu Dec  3 00:00:20 2026"),
    (0, "Sun, 06 Nov 1994 08:49:37 GMT"),
    (0, "Sunday, 06-Nov-94 08:49:37 GMT"),
    (0, "Sun Nov  6 08:49:37 1994"),
    (1, "250"), (1, "12.5"),
    (2, "6m0s"), (3, "1h2m3.5s"), (3, "20ms"),
    (4, "2026-12-03T00:00:05Z"), (5, "2026-12-03T00:00:03.250+00:00"),
]:
    seed("backoff_hint", bytes([sel]) + now + value.encode())

# ---- pipeline, pipeline_features: a chat request (JSON or stream) and the provider's answer
# (the usage fixtures), cut between them and once inside the answer, for each configuration.
chat_json = b'{"model":"gpt-4o-mini","temperature":0,"max_tokens":20,"messages":[{"role":"user","content":"hello there"}]}'
chat_stream = b'{"model":"gpt-4o-mini","temperature":0,"stream":true,"messages":[{"role":"user","content":"hello there"}]}'
answer_json = read("filter/src/usage/fixtures/openai_chat.json")
answer_sse = read("filter/src/usage/fixtures/openai_chat_stream.sse")
for target in ["pipeline", "pipeline_features"]:
    for features in range(4):
        for request, answer, bits in [(chat_json, answer_json, 0x00), (chat_stream, answer_sse, 0x90)]:
            cuts = [len(request), len(request) + 37]
            seed(target, split_input(features | bits, request + answer, cuts))

for target, n in sorted(written.items()):
    print(f"{target}: {n} seeds")
