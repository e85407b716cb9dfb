#!/bin/sh
# Renders the compose variant of the demo Envoy config: envoy/demo/envoy.yaml with exactly these
# substitutions, nothing else (envoy/e2e/tests/deploy_assets.rs checks both the rules and the
# result):
#
#   1. the module path "target/tollgate.wasm"        -> "/etc/tollgate/tollgate.wasm" (mounted)
#   2. the mock provider 127.0.0.1:8081              -> mock-provider:8081 (the compose service),
#      as a socket address and inside URLs / comments
#   3. the listener (10000) and admin (9901) address -> 0.0.0.0, so compose can publish them
#   4. `type: STATIC` clusters                       -> `type: STRICT_DNS` (a host name needs DNS)
#
# docker-compose.yaml runs it in a one-shot `envoy-config` service before Envoy starts, so the
# demo config is the single source: whatever the demo gains (JWT, budgets, masking, …) the
# compose stack gets too. POSIX sh + sed only (it runs inside the envoyproxy/envoy image).
#
#   envoy/compose/render.sh [IN] [OUT]     defaults: stdin, stdout
set -eu

in="${1:--}"
out="${2:--}"

render() {
  printf '%s\n' \
    '# GENERATED from envoy/demo/envoy.yaml by envoy/compose/render.sh: edit the demo, not this.' \
    '# Differences: module at /etc/tollgate/tollgate.wasm, the mock provider is the compose' \
    '# service mock-provider (STRICT_DNS), listener and admin bind 0.0.0.0.'
  sed -E \
    -e 's#"target/tollgate\.wasm"#"/etc/tollgate/tollgate.wasm"#' \
    -e 's#address: 127\.0\.0\.1, port_value: 8081 #address: mock-provider, port_value: 8081 #' \
    -e 's#127\.0\.0\.1:8081#mock-provider:8081#g' \
    -e 's#address: 127\.0\.0\.1, port_value: (10000|9901) #address: 0.0.0.0, port_value: \1 #' \
    -e 's#type: STATIC$#type: STRICT_DNS#' \
    "$1"
}

if [ "$out" = "-" ]; then
  render "$in"
else
  tmp="$out.tmp.$$"
  render "$in" > "$tmp"
  mv "$tmp" "$out"
  echo "rendered $out from $in"
fi
