#!/usr/bin/env bash
# Builds the broker, operator and CLI images from the working tree: static release
# binaries, stripped, each copied into an image FROM scratch (nothing is pulled).
#   e2e/k8s/images.sh TAG [TAG...]   ->  sluice-broker:TAG, sluice-operator:TAG, sluice-cli:TAG
set -euo pipefail

[[ $# -ge 1 ]] || { echo "usage: $0 TAG [TAG...]" >&2; exit 2; }
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
target=x86_64-unknown-linux-gnu
cd "$root"
RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --target "$target" \
    -p sluice-broker -p sluice-operator -p sluice-cli

# The release profile keeps debug info for profiling; images do not need it.
stage="$root/target/images"
mkdir -p "$stage"
for bin in sluice-broker sluice-operator sluice; do
    strip -o "$stage/$bin" "$root/target/$target/release/$bin"
done
for image in broker operator cli; do
    tags=()
    for tag in "$@"; do tags+=(-t "sluice-$image:$tag"); done
    docker build -q -f "$image/Dockerfile" "${tags[@]}" "$stage" >/dev/null
    echo "sluice-$image: $(du -h "$stage/$( [[ $image == cli ]] && echo sluice || echo "sluice-$image")" | cut -f1) ${*/#/sluice-$image:}"
done
