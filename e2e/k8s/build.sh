#!/usr/bin/env bash
# Installs what the single-node Kubernetes needs and builds its binaries from
# Debian's kubernetes source package into a cache outside the repo:
#   ${SLUICE_K8S_CACHE:-$HOME/.cache/sluice/k8s}/<key>/bin
# Idempotent: when the packages are installed and the binaries are in the cache
# it only checks them (a few seconds). A build from scratch takes ~20 minutes.
# Must run as root (apt-get, and CI runs it as root non-interactively).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
source "$here/common.sh"

[[ $(id -u) -eq 0 ]] || die "run as root (it installs Debian packages)"
export DEBIAN_FRONTEND=noninteractive

PACKAGES=(
    docker.io golang-go etcd-server rsync jq iptables conntrack ebtables socat
    ethtool dpkg-dev openssl xz-utils gcc libc6-dev make
    # Newer reflect2/json-iterator copied over the vendored ones (see fix_vendor).
    golang-github-modern-go-reflect2-dev golang-github-json-iterator-go-dev
)

key_dir="$K8S_CACHE/$K8S_KEY"
src_parent="$key_dir/src"
src_dir="$src_parent/kubernetes-${K8S_DEB_VERSION%%-*}"   # dpkg-source drops the Debian revision
# Go's build cache is content-addressed, so one copy serves every recipe version:
# a recipe bump then recompiles only what changed.
go_cache="$K8S_CACHE/go-build-cache"

missing_packages() {
    local p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || echo "$p"
    done
    # The machine images ship a current kubectl; Debian's 1.20 one will do where not.
    command -v kubectl >/dev/null || echo kubernetes-client
}

# apt-get source needs a deb-src entry; copy the image's deb822 sources with
# Types: deb-src, once.
ensure_deb_src() {
    local src=/etc/apt/sources.list.d/debian.sources dst=/etc/apt/sources.list.d/sluice-deb-src.sources
    if grep -rqs '^Types:.*deb-src\|^deb-src ' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        return 0
    fi
    [[ -f $src ]] || die "no $src to derive a deb-src entry from"
    log "adding deb-src entry $dst"
    sed 's/^Types:.*/Types: deb-src/' "$src" >"$dst"
}

fetch_source() {
    if [[ -f "$src_dir/.sluice-source-ok" ]]; then
        log "source already unpacked in $src_dir"
        return 0
    fi
    log "apt-get source kubernetes=$K8S_DEB_VERSION into $src_parent"
    rm -rf "$src_parent"
    mkdir -p "$src_parent"
    (cd "$src_parent" && apt-get source -q "kubernetes=$K8S_DEB_VERSION")
    [[ -d $src_dir ]] || die "apt-get source did not produce $src_dir"
    fix_vendor
    touch "$src_dir/.sluice-source-ok"
}

# The vendored reflect2 1.0.1 makes kube-apiserver panic (nil pointer in
# reflect.mapiterinit) on every custom-resource write under Go 1.19; Debian's
# newer reflect2 and matching json-iterator fix it.
fix_vendor() {
    local pkg
    for pkg in github.com/modern-go/reflect2 github.com/json-iterator/go; do
        [[ -d /usr/share/gocode/src/$pkg ]] || die "/usr/share/gocode/src/$pkg missing"
        log "vendor fix: replacing vendor/$pkg with Debian's copy"
        rm -rf "$src_dir/vendor/$pkg"
        cp -rL "/usr/share/gocode/src/$pkg" "$src_dir/vendor/$pkg"
        find "$src_dir/vendor/$pkg" -name '*_test.go' -delete
    done
}

build_binaries() {
    local what="cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler cmd/kubelet cmd/kube-proxy"
    mkdir -p "$go_cache" "$K8S_CACHE/home" "$src_dir/_output/local/go"
    # The make scripts put GOCACHE in _output/local/go/cache; point it at the shared cache.
    if [[ ! -L "$src_dir/_output/local/go/cache" ]]; then
        rm -rf "$src_dir/_output/local/go/cache"
        ln -s "$go_cache" "$src_dir/_output/local/go/cache"
    fi
    log "make WHAT=\"$what\" (about 20 minutes from scratch on 2 cores)"
    local start=$SECONDS
    # No .git in the source package: give the version stamp explicitly. HOME in
    # the cache keeps Go's files out of the user's home. GOFLAGS must stay unset:
    # the make scripts handle vendoring themselves.
    (cd "$src_dir" && env -u GOFLAGS HOME="$K8S_CACHE/home" \
        KUBE_GIT_VERSION=v1.20.2 KUBE_GIT_MAJOR=1 KUBE_GIT_MINOR=20 KUBE_GIT_TREE_STATE=clean \
        make WHAT="$what")
    log "make finished in $((SECONDS - start)) s"
}

# The pod sandbox image: nothing can be pulled, so build pause from the same tree.
build_pause() {
    log "compiling pause statically"
    gcc -Os -Wall -Werror -static -DVERSION=v3.2-sluice \
        -o "$src_dir/_output/pause" "$src_dir/build/pause/linux/pause.c"
    strip "$src_dir/_output/pause"
}

install_binaries() {
    local out="$src_dir/_output/local/bin/linux/amd64" b tmp="$key_dir/bin.tmp"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    for b in "${K8S_BINARIES[@]}"; do
        if [[ $b == pause ]]; then cp "$src_dir/_output/pause" "$tmp/"; else cp "$out/$b" "$tmp/"; fi
    done
    (cd "$tmp" && sha256sum "${K8S_BINARIES[@]}" >SHA256SUMS)
    rm -rf "$K8S_BIN"
    mv "$tmp" "$K8S_BIN"
    log "binaries installed in $K8S_BIN"
}

main() {
    mkdir -p "$K8S_CACHE"
    # Two builds at once would fight over the source tree.
    exec 9>"$K8S_CACHE/.build.lock"
    flock 9

    local need_build=0 missing
    if k8s_bin_ok; then
        log "binaries present and verified in $K8S_BIN"
    else
        need_build=1
        log "no complete build in $K8S_BIN: will build"
    fi
    missing="$(missing_packages | tr '\n' ' ')"
    missing="${missing% }"

    if [[ -n $missing || $need_build -eq 1 ]]; then
        [[ $need_build -eq 1 ]] && ensure_deb_src
        log "apt-get update"
        apt-get update -q
    fi
    if [[ -n $missing ]]; then
        log "installing: $missing"
        # shellcheck disable=SC2086
        apt-get install -y -q --no-install-recommends $missing
    else
        log "Debian packages already installed"
    fi

    if [[ $need_build -eq 1 ]]; then
        fetch_source
        build_binaries
        build_pause
        install_binaries
        # The Go build cache stays; the unpacked source tree is not needed any more.
        rm -rf "$src_parent"
        k8s_bin_ok || die "checksums of the fresh build do not verify"
    fi
    log "$("$K8S_BIN/kube-apiserver" --version)"
    log "done: $K8S_BIN"
}

main "$@"
