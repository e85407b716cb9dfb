#!/usr/bin/env bash
# Starts the demo: the mock provider on 127.0.0.1:8081 and Envoy + tollgate on 127.0.0.1:10000
# (admin 127.0.0.1:9901). Ctrl-C stops both. Run from the repository root via `make demo`.
set -euo pipefail
cd "$(dirname "$0")/../.."
ENVOY_BIN="${ENVOY_BIN:-$(ls .venv/lib/python3*/site-packages/envoy/_bin/envoy | head -1)}"
MOCK_BIN=target/release/mock-provider
MINT_BIN=target/release/mint_token
KEY_BIN=target/release/make_key
TOKEN=$("$MINT_BIN" --key envoy/demo/keys/demo-es256.pem --kid tollgate-demo-1 \
  --sub demo-user --iss https://demo.tollgate.local --aud tollgate-demo --ttl 86400)
# The demo's key set (served by the mock at /tollgate/keys.json, fetched by tollgate every 10 s)
# starts with one fresh key; `make key` adds more. Only hashes are written to the file.
KEYSET=target/demo/keys.json
rm -f "$KEYSET"
TG_KEY=$("$KEY_BIN" --id demo-app --owner demo-app --team demo --append "$KEYSET" | sed -n 's/^TG_KEY=//p')

pids=()
cleanup() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "demo stopped"
}
trap cleanup INT TERM EXIT

"$MOCK_BIN" --port 8081 --jwks envoy/demo/keys/jwks.json --keyset "$KEYSET" &
pids+=($!)
"$ENVOY_BIN" -c envoy/demo/envoy.yaml --disable-hot-restart --concurrency 2 --log-level warn &
pids+=($!)

for _ in $(seq 1 100); do
  if curl -sf localhost:9901/ready >/dev/null 2>&1; then break; fi
  sleep 0.1
done
curl -sf localhost:9901/ready >/dev/null || { echo "envoy did not become ready"; exit 1; }

cat <<TXT

tollgate demo is up: Envoy on http://127.0.0.1:10000 (admin http://127.0.0.1:9901).
/v1/ requires a JWT (ES256, keys fetched from the mock's JWKS) or a tollgate API key. A demo token
(also: make token) and a demo key (new each start; make key issues more, see docs/keys.md):

  TOKEN=$TOKEN
  TG_KEY=$TG_KEY

Try:

  # a completion; note x-request-id and the x-ratelimit-* headers
  curl -si localhost:10000/v1/chat/completions -H "authorization: Bearer \$TOKEN" -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'
  # the same with the key, as the OpenAI SDK sends it (the Anthropic SDK's x-api-key works too)
  curl -si localhost:10000/v1/chat/completions -H "authorization: Bearer \$TG_KEY" -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'
  # the calling key, its team and budgets
  curl -s localhost:10000/tollgate/status -H "x-api-key: \$TG_KEY"
  # no token: 401 with WWW-Authenticate, OpenAI error shape, correlation id
  curl -si localhost:10000/v1/chat/completions -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'
  # a stream (usage counted even without stream_options; the client sees the stream it asked for)
  curl -sN localhost:10000/v1/chat/completions -H "authorization: Bearer \$TOKEN" -d '{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}'
  # a prompt carrying a key arrives redacted at the provider (see what it received)
  curl -s localhost:10000/v1/chat/completions -H "authorization: Bearer \$TOKEN" -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"my key is sk-proj-T3stK3yAbCdEfGhIjKlMnOpQrStUvWxYz0123456789"}]}' >/dev/null
  curl -s localhost:8081/__mock/requests | grep -o 'REDACTED[^]]*'
  # spend the demo user's 2000-token/minute budget with ~500-token prompts: 200 200 200 429 …
  P=\$(printf 'lorem ipsum %.0s' \$(seq 1 170)); for i in 1 2 3 4 5; do curl -s -o /dev/null -w '%{http_code} ' localhost:10000/v1/chat/completions -H "authorization: Bearer \$TOKEN" -d "{\\"model\\":\\"gpt-4o-mini\\",\\"max_tokens\\":200,\\"messages\\":[{\\"role\\":\\"user\\",\\"content\\":\\"\$P\\"}]}"; done; echo
  # failover: OpenAI first, Anthropic as the fallback (both served by the mock). Make OpenAI's API
  # fail; the next request is answered by Anthropic, translated to OpenAI's format (see the
  # access log's "provider"), then clear the fault
  curl -s -X POST localhost:8081/__mock/faults -d '{"status":500,"path_prefix":"/v1/chat/completions"}'
  curl -s localhost:10000/v1/chat/completions -H "authorization: Bearer \$TOKEN" -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'
  curl -s localhost:8081/__mock/requests | grep -o '"path":"[^"]*"' | tail -2
  curl -s -X DELETE localhost:8081/__mock/faults
  # metrics with labels
  curl -s localhost:9901/stats/prometheus | grep -E '^(tollgate|gen_ai)_'

Envoy's JSON access log (tokens, cost, user, TTFT per request) prints below. Ctrl-C stops the demo.
TXT
wait
