#!/usr/bin/env bash
# dockerd runtime that wraps runc. This machine's kernel refuses a negative
# oom_score_adj even to root (no CAP_SYS_RESOURCE in the bounding set), and the
# kubelet asks for -998 on every pod sandbox (-997 for Guaranteed pods), so plain
# runc fails with "can't get final child's PID from pipe". Clamp negative
# oomScoreAdj to 0 in the OCI config (create/run) or process spec (exec), then
# hand over to the real runc with the same arguments.
# It must not read stdin or write stdout: runc passes them on to the container.
set -euo pipefail

RUNC="${SLUICE_REAL_RUNC:-/usr/sbin/runc}"
[[ -x $RUNC ]] || RUNC=/usr/bin/runc

# clamp FILE JQ_PATH: rewrite FILE only when the value there is negative.
clamp() {
    local file=$1 path=$2 tmp
    [[ -f $file ]] || return 0
    if jq -e "($path // 0) < 0" "$file" >/dev/null 2>&1; then
        tmp="$(mktemp "$file.XXXXXX")"
        jq -c "$path = 0" "$file" >"$tmp"
        chmod --reference="$file" "$tmp"
        mv -f "$tmp" "$file"
    fi
}

bundle="" process="" sub=""
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    a=${args[i]}
    case $a in
        --bundle | -b) bundle=${args[i + 1]:-} ;;
        --bundle=*) bundle=${a#--bundle=} ;;
        --process | -p) process=${args[i + 1]:-} ;;
        --process=*) process=${a#--process=} ;;
        create | run | exec) [[ -z $sub ]] && sub=$a ;;
    esac
done

case $sub in
    create | run) clamp "${bundle:-.}/config.json" .process.oomScoreAdj ;;
    exec) [[ -n $process ]] && clamp "$process" .oomScoreAdj ;;
esac

exec "$RUNC" "$@"
