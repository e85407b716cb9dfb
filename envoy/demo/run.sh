#!/usr/bin/env bash
# Starts the demo: the mock provider on 127.0.0.1:8081 and Envoy + tollgate on 127.0.0.1:10000
# (admin 127.0.0.1:9901). Ctrl-C stops both. Run from the repository root via `make demo`.
set -euo pipefail
cd "$(dirname "$0")/../.."
ENVOY_BIN="${ENVOY_BIN:-$(ls .venv/lib/python3*/site-packages/envoy/_bin/envoy | head -1)}"
MOCK_BIN=target/release/mock-provider

pids=()
cleanup() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "demo stopped"
}
trap cleanup INT TERM EXIT

"$MOCK_BIN" --port 8081 &
pids+=($!)
"$ENVOY_BIN" -c envoy/demo/envoy.yaml --disable-hot-restart --concurrency 2 --log-level warn &
pids+=($!)

for _ in $(seq 1 100); do
  if curl -sf localhost:9901/ready >/dev/null 2>&1; then break; fi
  sleep 0.1
done
curl -sf localhost:9901/ready >/dev/null || { echo "envoy did not become ready"; exit 1; }

cat <<'TXT'

tollgate demo is up: Envoy on http://127.0.0.1:10000 (admin http://127.0.0.1:9901). Try:

  curl -si localhost:10000/v1/chat/completions -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'
  curl -sN localhost:10000/v1/chat/completions -d '{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}'
  curl -si localhost:10000/v1/chat/completions -H 'x-request-id: <bad id>' -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'
  curl -s  localhost:9901/stats/prometheus | grep tollgate

Envoy's JSON access log prints below. Ctrl-C stops the demo.
TXT
wait
