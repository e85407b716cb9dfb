#!/usr/bin/env bash
# Packages target/tollgate.wasm as an OCI image layout (a directory any OCI tool can push:
# `skopeo copy oci:target/oci:TAG docker://…`, `oras cp --from-oci-layout target/oci:TAG …`).
#
# The image is the Wasm "compat" variant that Istio's agent pulls for `oci://` module URLs
# (istio/istio pkg/wasm/imagefetcher.go; spec: solo-io/wasm spec/spec-compat.md):
#   - an OCI image manifest whose single (last) layer is application/vnd.oci.image.layer.v1.tar+gzip
#   - that layer is a tar holding one file, plugin.wasm, the module byte for byte
#   - manifest annotation module.wasm.image/variant: compat
# Nothing but bash, GNU tar, gzip, sha256sum, stat and date. The build is reproducible: file
# owner, mode and mtime are fixed (SOURCE_DATE_EPOCH, default 0) and gzip stores no name or time,
# so the same module always gives the same manifest digest.
#
#   envoy/oci/build.sh [WASM] [OUT]     defaults: target/tollgate.wasm, target/oci
#   TAG=…  the tag recorded in index.json (default: the workspace version from Cargo.toml)
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
wasm="${1:-$root/target/tollgate.wasm}"
out="${2:-$root/target/oci}"
tag="${TAG:-$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -1)}"
epoch="${SOURCE_DATE_EPOCH:-0}"

[ -f "$wasm" ] || { echo "no module at $wasm: run make build first" >&2; exit 1; }
[ -n "$tag" ] || { echo "no TAG and no version in Cargo.toml" >&2; exit 1; }
# `\0asm`: refuse to package something that is not a WebAssembly binary.
[ "$(head -c 4 "$wasm" | od -An -tx1 | tr -d ' \n')" = "0061736d" ] \
  || { echo "$wasm is not a WebAssembly module" >&2; exit 1; }
if [ -e "$out" ] && [ -n "$(ls -A "$out")" ] && [ ! -f "$out/oci-layout" ]; then
  echo "$out exists and is not an OCI layout; refusing to replace it" >&2
  exit 1
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

sha() { sha256sum "$1" | cut -d' ' -f1; }
size() { stat -c %s "$1"; }

# The layer: plugin.wasm alone, normalized metadata.
mkdir "$work/rootfs"
cp "$wasm" "$work/rootfs/plugin.wasm"
chmod 0644 "$work/rootfs/plugin.wasm"
tar --format=ustar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" \
  -C "$work/rootfs" -cf "$work/layer.tar" plugin.wasm
gzip -9 -n -c "$work/layer.tar" > "$work/layer.tar.gz"
diff_id="$(sha "$work/layer.tar")"
layer_digest="$(sha "$work/layer.tar.gz")"
layer_size="$(size "$work/layer.tar.gz")"
created="$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)"

# The image config (OCI image-spec config; platform wasip1/wasm like Go's GOOS/GOARCH).
printf '{"created":"%s","architecture":"wasm","os":"wasip1","config":{},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created":"%s","created_by":"envoy/oci/build.sh","comment":"tollgate %s"}]}' \
  "$created" "$diff_id" "$created" "$tag" > "$work/config.json"
config_digest="$(sha "$work/config.json")"
config_size="$(size "$work/config.json")"

printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.title":"plugin.wasm"}}],"annotations":{"module.wasm.image/variant":"compat","org.opencontainers.image.title":"tollgate","org.opencontainers.image.version":"%s","org.opencontainers.image.created":"%s"}}' \
  "$config_digest" "$config_size" "$layer_digest" "$layer_size" "$tag" "$created" > "$work/manifest.json"
manifest_digest="$(sha "$work/manifest.json")"
manifest_size="$(size "$work/manifest.json")"

# The layout: oci-layout, index.json naming the manifest by tag, blobs/sha256/<digest>.
rm -rf "$out"
mkdir -p "$out/blobs/sha256"
printf '{"imageLayoutVersion":"1.0.0"}' > "$out/oci-layout"
cp "$work/layer.tar.gz" "$out/blobs/sha256/$layer_digest"
cp "$work/config.json" "$out/blobs/sha256/$config_digest"
cp "$work/manifest.json" "$out/blobs/sha256/$manifest_digest"
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"%s"}}]}' \
  "$manifest_digest" "$manifest_size" "$tag" > "$out/index.json"

echo "$out: OCI image layout, tag $tag (Wasm compat variant, plugin.wasm $(size "$wasm") bytes)"
echo "manifest digest: sha256:$manifest_digest"
echo "push:  skopeo copy --preserve-digests oci:$out:$tag docker://REGISTRY/tollgate:$tag"
echo "   or: oras cp --from-oci-layout $out:$tag REGISTRY/tollgate:$tag"
