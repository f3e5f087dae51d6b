#!/usr/bin/env bash
# Runs a single-node Kubernetes 1.20.2 on this machine with the binaries that
# build.sh put in the cache: etcd, kube-apiserver, controller-manager, scheduler,
# kubelet (Docker runtime) and kube-proxy, all state in one run directory.
#
#   node.sh up       start it (cleans up a previous or crashed run first); waits for Ready
#   node.sh down     stop everything it started and undo its host changes
#   node.sh status   say what runs
#   node.sh reclaim  make Released PersistentVolumes Available again (wipes their data)
#
# Environment: SLUICE_K8S_RUN (run dir, /tmp/sluice-k8s), SLUICE_K8S_CACHE
# (build cache), SLUICE_K8S_NODE_IP (default: the default-route interface's
# address), SLUICE_K8S_PVS (number of PersistentVolumes, 8), SLUICE_K8S_PV_SIZE (1Gi),
# SLUICE_K8S_READY_TIMEOUT (seconds to wait for each step, 120).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
source "$here/common.sh"

RUN="$K8S_RUN"
NODE_NAME=sluice-node
API_PORT=6443
ETCD_CLIENT=http://127.0.0.1:12379   # not 2379: stays clear of any other etcd
ETCD_PEER=http://127.0.0.1:12380
SERVICE_CIDR=10.96.0.0/16
SERVICE_IP=10.96.0.1                 # first address of SERVICE_CIDR: the kubernetes Service
PAUSE_IMAGE=k8s.gcr.io/pause:3.2
RUNTIME_NAME=sluice-runc
WRAPPER="$here/runc-clamp-oom.sh"
TIMEOUT="${SLUICE_K8S_READY_TIMEOUT:-120}"
PV_COUNT="${SLUICE_K8S_PVS:-8}"
PV_SIZE="${SLUICE_K8S_PV_SIZE:-1Gi}"
# Everything node.sh starts besides dockerd (teardown stops them in its own order).
COMPONENTS=(kubelet kube-proxy kube-scheduler kube-controller-manager kube-apiserver etcd)

export DOCKER_BUILDKIT=0   # no buildx here; the classic builder handles FROM scratch offline

kctl() { kubectl --kubeconfig "$RUN/kubeconfig" "$@"; }

node_ip() {
    if [[ -n ${SLUICE_K8S_NODE_IP:-} ]]; then echo "$SLUICE_K8S_NODE_IP"; return; fi
    local dev ip
    dev="$(ip -4 route show default | awk '{for (i = 1; i < NF; i++) if ($i == "dev") {print $(i + 1); exit}}')"
    dev="${dev:-eth0}"
    ip="$(ip -4 -o addr show dev "$dev" scope global | awk '{split($4, a, "/"); print a[1]; exit}')"
    [[ -n $ip ]] || die "no IPv4 address on $dev; set SLUICE_K8S_NODE_IP"
    echo "$ip"
}

# ---- processes: recorded as "PID STARTTIME" so a reused PID is never signalled ----

starttime() { awk '{print $22}' "/proc/$1/stat" 2>/dev/null; }

# start NAME CMD...: run detached, output to $RUN/logs/NAME.log, PID to $RUN/pids/NAME.
start() {
    local name=$1; shift
    log "starting $name"
    # setsid: own session, so the caller's job control or terminal can't reach it.
    setsid "$@" </dev/null >"$RUN/logs/$name.log" 2>&1 9>&- &
    local pid=$!
    local st=""
    for _ in 1 2 3 4 5 6 7 8 9 10; do st="$(starttime "$pid")" && [[ -n $st ]] && break; sleep 0.1; done
    echo "$pid $st" >"$RUN/pids/$name"
}

# pid_of NAME [DIR]: the recorded PID if that very process still runs.
pid_of() {
    local f="${2:-$RUN}/pids/$1" pid st
    [[ -f $f ]] || return 1
    read -r pid st <"$f" || return 1
    [[ -n $pid && -d /proc/$pid && "$(starttime "$pid")" == "$st" ]] || return 1
    echo "$pid"
}

# stop NAME DIR: TERM, then KILL after 20 s.
stop() {
    local name=$1 dir=$2 pid
    pid="$(pid_of "$name" "$dir")" || { rm -f "$dir/pids/$name"; return 0; }
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 200); do [[ -d /proc/$pid ]] || break; sleep 0.1; done
    if [[ -d /proc/$pid ]]; then
        log "$name did not stop in 20 s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        for _ in $(seq 50); do [[ -d /proc/$pid ]] || break; sleep 0.1; done
    fi
    rm -f "$dir/pids/$name"
}

fail_with_log() {
    local name=$1; shift
    log "ERROR: $*"
    if [[ -f $RUN/logs/$name.log ]]; then
        log "last lines of $RUN/logs/$name.log:"
        tail -n 30 "$RUN/logs/$name.log" >&2
    fi
    exit 1
}

# wait_for NAME WHAT CMD...: poll CMD until it succeeds; fail early if NAME died.
wait_for() {
    local name=$1 what=$2; shift 2
    local deadline=$((SECONDS + TIMEOUT))
    until "$@" >/dev/null 2>&1; do
        if [[ -n $name ]] && ! pid_of "$name" >/dev/null; then
            fail_with_log "$name" "$name exited while waiting for $what"
        fi
        ((SECONDS < deadline)) || fail_with_log "$name" "timed out after ${TIMEOUT}s waiting for $what"
        sleep 1
    done
}

# ---- docker ----

docker_ok() { timeout 10 docker info >/dev/null 2>&1; }

# True when this kernel lets root set a negative oom_score_adj (then plain runc works).
negative_oom_ok() { (echo -1 >/proc/self/oom_score_adj) 2>/dev/null; }

# True when the running dockerd has hairpin mode (see ensure_docker).
userland_proxy_off() {
    local pid
    pid="$(cat /var/run/docker.pid 2>/dev/null)" || return 1
    tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qx -- --userland-proxy=false && return 0
    jq -e '."userland-proxy" == false' /etc/docker/daemon.json >/dev/null 2>&1
}

ensure_docker() {
    if docker_ok; then
        local rt
        rt="$(docker info -f '{{.DefaultRuntime}}' 2>/dev/null)"
        if [[ $rt == "$RUNTIME_NAME" ]]; then
            log "docker already running with default runtime $rt"
        elif negative_oom_ok; then
            log "docker already running (default runtime $rt); this kernel allows negative oom_score_adj, so it will do"
        else
            die "a dockerd not started by node.sh is running with default runtime '$rt'. \
This kernel refuses negative oom_score_adj, so pod sandboxes would fail under it. \
Stop that dockerd (node.sh never stops what it did not start) or restart it with: \
dockerd --add-runtime $RUNTIME_NAME=$WRAPPER --default-runtime $RUNTIME_NAME --userland-proxy=false"
        fi
        userland_proxy_off ||
            log "WARNING: that dockerd runs without --userland-proxy=false: a pod cannot reach itself through a Service"
        return 0
    fi
    [[ -x $WRAPPER ]] || die "$WRAPPER is not executable"
    command -v dockerd >/dev/null || die "dockerd missing: run build.sh"
    # dockerd started by node.sh; images stay in the default /var/lib/docker, so
    # they survive down/up. --userland-proxy=false makes Docker turn on hairpin
    # mode on each container's bridge port: without it a pod that reaches a
    # Service is dropped whenever kube-proxy picks that same pod as the backend.
    start dockerd dockerd --add-runtime "$RUNTIME_NAME=$WRAPPER" --default-runtime "$RUNTIME_NAME" \
        --userland-proxy=false
    wait_for dockerd "docker to answer" docker_ok
    # Record dockerd's own containerd, so that down can stop it if dockerd leaves it behind.
    local dpid cpid
    dpid="$(pid_of dockerd)"
    for _ in $(seq 50); do
        cpid="$(ps -o pid= --ppid "$dpid" | awk 'NR == 1 {print $1}')"
        [[ -n $cpid ]] && break
        sleep 0.1
    done
    [[ -n $cpid ]] && echo "$cpid $(starttime "$cpid")" >"$RUN/pids/containerd"
    log "dockerd up (pid $dpid, runtime $RUNTIME_NAME -> $WRAPPER)"
}

ensure_pause_image() {
    if docker image inspect "$PAUSE_IMAGE" >/dev/null 2>&1; then
        log "image $PAUSE_IMAGE present"
        return 0
    fi
    log "building $PAUSE_IMAGE FROM scratch"
    local ctx="$RUN/pause-image"
    mkdir -p "$ctx"
    cp "$K8S_BIN/pause" "$ctx/pause"
    printf 'FROM scratch\nCOPY pause /pause\nENTRYPOINT ["/pause"]\n' >"$ctx/Dockerfile"
    docker build -q -t "$PAUSE_IMAGE" "$ctx" >"$RUN/logs/pause-build.log" 2>&1 ||
        fail_with_log pause-build "docker build of $PAUSE_IMAGE failed"
}

# ---- certificates and kubeconfig ----

make_pki() {
    local ip=$1 pki="$RUN/pki"
    mkdir -p "$pki"
    log "generating certificates in $pki"
    (
        cd "$pki"
        openssl req -x509 -new -nodes -newkey rsa:2048 -sha256 -days 3650 \
            -keyout ca.key -out ca.crt -subj "/CN=sluice-k8s-ca" 2>/dev/null
        # sign NAME SUBJECT EXTENSIONS
        sign() {
            openssl req -new -nodes -newkey rsa:2048 -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
            printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" "$3" >"$1.ext"
            openssl x509 -req -sha256 -days 3650 -in "$1.csr" -CA ca.crt -CAkey ca.key \
                -CAcreateserial -extfile "$1.ext" -out "$1.crt" 2>/dev/null
            rm -f "$1.csr" "$1.ext"
        }
        sign apiserver "/CN=kube-apiserver" "extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:$ip,IP:$SERVICE_IP,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost"
        # The API server's identity towards the kubelet (logs, exec, port-forward).
        sign apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "extendedKeyUsage=clientAuth"
        openssl genrsa -out sa.key 2048 2>/dev/null
        openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
        # Static token of an admin in system:masters: used by kubectl and the components.
        echo "$(openssl rand -hex 24),admin,admin,system:masters" >tokens.csv
        chmod 600 ./*.key tokens.csv
    )
    local token
    token="$(cut -d, -f1 "$pki/tokens.csv")"
    cat >"$RUN/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: sluice
  cluster:
    server: https://$ip:$API_PORT
    certificate-authority-data: $(base64 -w0 "$pki/ca.crt")
users:
- name: admin
  user:
    token: $token
contexts:
- name: sluice
  context: {cluster: sluice, user: admin}
current-context: sluice
EOF
    chmod 600 "$RUN/kubeconfig"
}

# ---- the node ----

api_ready() {
    curl -fsS --max-time 5 --cacert "$RUN/pki/ca.crt" \
        -H "Authorization: Bearer $(cut -d, -f1 "$RUN/pki/tokens.csv")" \
        "https://$1:$API_PORT/readyz" | grep -qx ok
}

node_ready() {
    [[ "$(kctl get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]]
}

default_sa_ready() {
    [[ -n "$(kctl -n default get serviceaccount default -o jsonpath='{.secrets[0].name}')" ]]
}

create_storage() {
    local i yaml="$RUN/storage.yaml"
    log "creating StorageClass standard and $PV_COUNT hostPath PersistentVolumes of $PV_SIZE"
    # Immediate binding: the PV controller binds each claim as soon as it exists,
    # with no dependence on the scheduler's volume binding.
    cat >"$yaml" <<EOF
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: standard
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: Immediate
reclaimPolicy: Retain
EOF
    for i in $(seq 1 "$PV_COUNT"); do
        mkdir -p "$RUN/pv/pv-$i"
        chmod 0777 "$RUN/pv/pv-$i"   # pods may run as any user
        cat >>"$yaml" <<EOF
---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: pv-$i
  labels: {sluice-k8s/pv: "true"}
spec:
  capacity: {storage: $PV_SIZE}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: standard
  hostPath: {path: $RUN/pv/pv-$i, type: Directory}
EOF
    done
    kctl apply -f "$yaml" >/dev/null
}

up() {
    [[ $(id -u) -eq 0 ]] || die "run as root"
    k8s_bin_ok || die "no verified binaries in $K8S_BIN: run e2e/k8s/build.sh first"
    local c
    for c in etcd kubectl openssl curl jq iptables-save conntrack; do
        command -v "$c" >/dev/null || die "$c missing: run e2e/k8s/build.sh first"
    done
    local t0=$SECONDS

    if [[ -d $RUN ]]; then
        log "cleaning up the previous run in $RUN"
        teardown
    fi
    mkdir -p "$RUN"/{pids,logs,etcd,kubelet,kubelet-pki,kubelet-plugins,pv}
    chmod 700 "$RUN/etcd"

    local ip
    ip="$(node_ip)"
    echo "NODE_IP=$ip" >"$RUN/node.env"
    log "node $NODE_NAME at $ip, run dir $RUN"

    ensure_docker
    # Pod containers left by a run whose dockerd died with it would be taken
    # for this node's pods by the new kubelet.
    local stale
    stale="$(docker_pod_containers)"
    if [[ -n $stale ]]; then
        log "removing $(wc -l <<<"$stale") pod containers left by an earlier run"
        # shellcheck disable=SC2086
        docker rm -f $stale >/dev/null
    fi
    ensure_pause_image
    local cgroup_driver bridge_cidr
    cgroup_driver="$(docker info -f '{{.CgroupDriver}}')"
    bridge_cidr="$(docker network inspect bridge -f '{{(index .IPAM.Config 0).Subnet}}')"
    [[ -n $bridge_cidr ]] || die "cannot read docker0's subnet"
    echo "POD_CIDR=$bridge_cidr" >>"$RUN/node.env"
    # Pods on docker0 reach a Service's backend on the same bridge only if
    # bridged packets go through iptables (for kube-proxy's DNAT replies).
    if [[ -f /proc/sys/net/bridge/bridge-nf-call-iptables ]]; then
        echo 1 >/proc/sys/net/bridge/bridge-nf-call-iptables
    else
        log "WARNING: br_netfilter missing: pod -> Service -> pod on the same bridge may fail"
    fi

    make_pki "$ip"
    local pki="$RUN/pki"

    start etcd etcd --name sluice --data-dir "$RUN/etcd" \
        --listen-client-urls "$ETCD_CLIENT" --advertise-client-urls "$ETCD_CLIENT" \
        --listen-peer-urls "$ETCD_PEER" --initial-advertise-peer-urls "$ETCD_PEER" \
        --initial-cluster "sluice=$ETCD_PEER" --initial-cluster-state new \
        --unsafe-no-fsync   # throwaway test data; fsync stalls on a busy disk
    wait_for etcd "etcd health" curl -fsS --max-time 3 "$ETCD_CLIENT/health"

    # Bound to the node's address (not only loopback): pods reach it through the
    # kubernetes Service, whose endpoint is the advertised address.
    start kube-apiserver "$K8S_BIN/kube-apiserver" \
        --etcd-servers="$ETCD_CLIENT" \
        --advertise-address="$ip" --bind-address="$ip" --secure-port="$API_PORT" \
        --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
        --client-ca-file="$pki/ca.crt" --token-auth-file="$pki/tokens.csv" \
        --authorization-mode=RBAC \
        --service-account-issuer=https://kubernetes.default.svc.cluster.local \
        --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
        --service-cluster-ip-range="$SERVICE_CIDR" --allow-privileged=true \
        --kubelet-client-certificate="$pki/apiserver-kubelet-client.crt" \
        --kubelet-client-key="$pki/apiserver-kubelet-client.key" \
        --kubelet-preferred-address-types=InternalIP,Hostname \
        --profiling=false
    wait_for kube-apiserver "kube-apiserver /readyz" api_ready "$ip"
    log "kube-apiserver ready after $((SECONDS - t0)) s"

    start kube-controller-manager "$K8S_BIN/kube-controller-manager" \
        --kubeconfig="$RUN/kubeconfig" --controllers='*' \
        --service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" \
        --cluster-signing-cert-file="$pki/ca.crt" --cluster-signing-key-file="$pki/ca.key" \
        --service-cluster-ip-range="$SERVICE_CIDR" \
        --leader-elect=false --bind-address=127.0.0.1 --port=0 \
        --cert-dir="$RUN/controller-manager-pki" --profiling=false
    start kube-scheduler "$K8S_BIN/kube-scheduler" \
        --kubeconfig="$RUN/kubeconfig" --leader-elect=false \
        --bind-address=127.0.0.1 --port=0 --cert-dir="$RUN/scheduler-pki" --profiling=false

    # Image GC off (threshold 100%): the images here are built locally and can
    # never be pulled back. Eviction only when nearly full.
    start kubelet "$K8S_BIN/kubelet" \
        --kubeconfig="$RUN/kubeconfig" --hostname-override="$NODE_NAME" --node-ip="$ip" \
        --container-runtime=docker --pod-infra-container-image="$PAUSE_IMAGE" \
        --cgroup-driver="$cgroup_driver" --fail-swap-on=false \
        --root-dir="$RUN/kubelet" --cert-dir="$RUN/kubelet-pki" \
        --experimental-dockershim-root-directory="$RUN/dockershim" \
        --volume-plugin-dir="$RUN/kubelet-plugins" \
        --read-only-port=0 --anonymous-auth=false --client-ca-file="$pki/ca.crt" \
        --authorization-mode=Webhook --cluster-domain=cluster.local \
        --image-gc-high-threshold=100 --image-gc-low-threshold=99 \
        --eviction-hard='memory.available<100Mi,nodefs.available<2%,imagefs.available<2%'

    # Conntrack timeouts 0: leave the host's sysctls as they are.
    start kube-proxy "$K8S_BIN/kube-proxy" \
        --kubeconfig="$RUN/kubeconfig" --hostname-override="$NODE_NAME" \
        --proxy-mode=iptables --cluster-cidr="$bridge_cidr" \
        --conntrack-max-per-core=0 --conntrack-tcp-timeout-established=0 \
        --conntrack-tcp-timeout-close-wait=0 \
        --metrics-bind-address=127.0.0.1:10249 --healthz-bind-address=127.0.0.1:10256

    wait_for kubelet "node $NODE_NAME to be Ready" node_ready
    log "node Ready after $((SECONDS - t0)) s"
    wait_for kube-controller-manager "the default service account's token" default_sa_ready
    create_storage
    for c in "${COMPONENTS[@]}"; do
        pid_of "$c" >/dev/null || fail_with_log "$c" "$c is not running"
    done
    log "up in $((SECONDS - t0)) s; kubectl --kubeconfig $RUN/kubeconfig"
}

# ---- teardown ----

docker_pod_containers() {
    # dockershim labels every sandbox and container it makes.
    docker ps -aq --filter label=io.kubernetes.docker.type 2>/dev/null || true
}

# Delete the KUBE-* chains of every table and the jumps into them from other
# chains, in one iptables-restore transaction per table.
clean_iptables() {
    local ipt=$1 table chains
    command -v "$ipt-save" >/dev/null || return 0
    for table in filter nat mangle; do
        chains="$("$ipt-save" -t "$table" 2>/dev/null | awk '/^:KUBE-/ {print substr($1, 2)}')" || continue
        [[ -n $chains ]] || continue
        log "$ipt: deleting $(wc -w <<<"$chains") KUBE-* chains in $table"
        {
            echo "*$table"
            # (|| true: no jump into them at all is fine too)
            "$ipt-save" -t "$table" | grep -E '^-A ' | grep -vE '^-A KUBE-' | grep -E -- '-j KUBE-' | sed 's/^-A /-D /' || true
            # shellcheck disable=SC2086 # one chain name per word
            printf -- '-F %s\n' $chains
            # shellcheck disable=SC2086
            printf -- '-X %s\n' $chains
            echo COMMIT
        } | "$ipt-restore" --noflush
    done
}

# Undo a run (the current one or a crashed one) whose state is in $RUN.
teardown() {
    [[ -d $RUN ]] || { log "nothing in $RUN"; return 0; }
    stop kubelet "$RUN"
    if docker_ok; then
        local ids
        ids="$(docker_pod_containers)"
        if [[ -n $ids ]]; then
            log "removing $(wc -l <<<"$ids") pod containers"
            # shellcheck disable=SC2086
            docker rm -f $ids >/dev/null
        fi
    fi
    # The API server's clients together, then the API server, then etcd: the API
    # server hangs on shutdown (until SIGKILL) when etcd goes first.
    local c
    for c in kube-proxy kube-scheduler kube-controller-manager; do stop "$c" "$RUN" & done
    wait
    stop kube-apiserver "$RUN"
    stop etcd "$RUN"

    # The kubelet mounts tmpfs (secrets, tokens) under its root dir.
    local m
    findmnt -rn -o TARGET | awk -v p="$RUN/" 'index($0, p) == 1' | sort -r | while read -r m; do
        log "unmounting $m"
        umount "$m" 2>/dev/null || umount -l "$m"
    done

    # kube-proxy --cleanup needs ipset, which is not here: delete its chains directly.
    clean_iptables iptables
    clean_iptables ip6tables

    if [[ -f $RUN/pids/dockerd ]]; then
        stop dockerd "$RUN"
        stop containerd "$RUN"   # normally gone with dockerd already
    fi
    # Docker sets FORWARD to DROP, which breaks other tests' bridged namespaces.
    iptables -P FORWARD ACCEPT
    rm -rf "$RUN"
    log "run dir $RUN removed"
}

down() {
    [[ $(id -u) -eq 0 ]] || die "run as root"
    teardown
    local ids
    if docker_ok; then
        ids="$(docker_pod_containers)"
        [[ -z $ids ]] || log "WARNING: pod containers still present: $ids"
    fi
}

status() {
    local rc=0 c pid
    if [[ ! -d $RUN ]]; then
        echo "no run directory $RUN: the node is down"
        return 3
    fi
    [[ -f $RUN/node.env ]] && cat "$RUN/node.env"
    for c in dockerd containerd "${COMPONENTS[@]}"; do
        if pid="$(pid_of "$c")"; then
            printf '%-24s running (pid %s)\n' "$c" "$pid"
        elif [[ -f $RUN/pids/$c ]]; then
            printf '%-24s DEAD (log: %s)\n' "$c" "$RUN/logs/$c.log"
            rc=1
        elif [[ $c == dockerd ]]; then
            printf '%-24s not started by node.sh (docker answers: %s)\n' "$c" "$(docker_ok && echo yes || echo no)"
        elif [[ $c != containerd ]]; then
            printf '%-24s not started\n' "$c"
            rc=1
        fi
    done
    if [[ -f $RUN/kubeconfig ]] && kctl get nodes 2>/dev/null; then :; else
        echo "API server does not answer"
        rc=1
    fi
    return $rc
}

# Released PVs keep their claimRef and data (reclaim policy Retain, no recycler
# here): wipe them and clear the claimRef so that new claims can bind.
reclaim() {
    local pv path
    for pv in $(kctl get pv -l sluice-k8s/pv=true -o jsonpath='{range .items[?(@.status.phase=="Released")]}{.metadata.name}{"\n"}{end}'); do
        path="$(kctl get pv "$pv" -o jsonpath='{.spec.hostPath.path}')"
        [[ $path == "$RUN/pv/"* ]] || continue
        log "reclaiming $pv ($path)"
        find "$path" -mindepth 1 -delete
        kctl patch pv "$pv" --type json -p '[{"op": "remove", "path": "/spec/claimRef"}]' >/dev/null
    done
}

main() {
    local cmd="${1:-}"
    case $cmd in
        up | down | reclaim)
            # One node.sh at a time on a run dir (the lock file lives beside it).
            exec 9>"$RUN.lock"
            flock 9
            "$cmd"
            ;;
        status) status ;;
        *) echo "usage: $0 up|down|status|reclaim" >&2; exit 2 ;;
    esac
}

main "$@"
