# shellcheck shell=bash disable=SC2034 # variables are used by the scripts that source this
# Settings shared by build.sh, node.sh and smoke.sh. Sourced, not run.

# The Debian source package the node is built from (Kubernetes 1.20.2, bookworm).
K8S_DEB_VERSION="1.20.5+really1.20.2-1.1+deb12u1"
# Version of the build recipe in build.sh: bump it whenever build.sh changes what
# it produces, so that every machine's cache misses and rebuilds.
K8S_RECIPE=1

K8S_CACHE="${SLUICE_K8S_CACHE:-${HOME:-/root}/.cache/sluice/k8s}"
K8S_KEY="kubernetes-${K8S_DEB_VERSION}-r${K8S_RECIPE}"
K8S_BIN="$K8S_CACHE/$K8S_KEY/bin"
K8S_RUN="${SLUICE_K8S_RUN:-/tmp/sluice-k8s}"

# What build.sh puts in $K8S_BIN.
K8S_BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy pause)

log() { printf '[%s %s] %s\n' "$(date +%H:%M:%S)" "${0##*/}" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# True when every binary is there and matches the checksums written at the end
# of a successful build (a half-finished build has no SHA256SUMS).
k8s_bin_ok() {
    [[ -f "$K8S_BIN/SHA256SUMS" ]] || return 1
    (cd "$K8S_BIN" && sha256sum --quiet -c SHA256SUMS >/dev/null 2>&1)
}
