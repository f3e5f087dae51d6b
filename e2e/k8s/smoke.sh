#!/usr/bin/env bash
# Proves a node started by node.sh works for the e2e suite: a 2-replica
# StatefulSet of a FROM-scratch busybox image with a volumeClaimTemplate, pod IPs
# reaching each other (busybox wget; its -T option segfaults in 1.35, hence timeout),
# a ClusterIP Service, the kubernetes Service from a pod,
# kubectl logs/exec, a deleted pod coming back with its data, a custom resource
# write, and PV reclaim.
# Cleans up after itself (namespace sluice-smoke). Takes about a minute.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
source "$here/common.sh"

RUN="$K8S_RUN"
NS=sluice-smoke
IMAGE=sluice-smoke-busybox:1
export DOCKER_BUILDKIT=0
[[ -f $RUN/kubeconfig ]] || die "no $RUN/kubeconfig: run node.sh up first"
kctl() { kubectl --kubeconfig "$RUN/kubeconfig" "$@"; }
t0=$SECONDS
step() { log "[$((SECONDS - t0))s] $*"; }
check() { # check DESCRIPTION CMD...: run CMD, fail loudly when it fails
    local what=$1; shift
    if "$@"; then step "ok: $what"; else die "FAILED: $what"; fi
}

build_image() {
    if docker image inspect "$IMAGE" >/dev/null 2>&1; then return 0; fi
    # Debian's statically linked busybox runs in an image with nothing else in it.
    if ! dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed'; then
        step "installing busybox-static"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q busybox-static >/dev/null
    fi
    step "building $IMAGE FROM scratch"
    local ctx
    ctx="$(mktemp -d)"
    mkdir -p "$ctx/bin" "$ctx/tmp"
    cp /bin/busybox "$ctx/bin/busybox"
    # One symlink per applet, so the image has sh, wget, nc, httpd, ...
    local a
    for a in $("$ctx/bin/busybox" --list); do [[ $a == busybox ]] || ln -s busybox "$ctx/bin/$a"; done
    printf 'FROM scratch\nCOPY bin /bin\nCOPY tmp /tmp\nENV PATH=/bin\n' >"$ctx/Dockerfile"
    # Classic builder (no buildx here); its deprecation notice is noise, so show
    # its output only when it fails.
    docker build -q -t "$IMAGE" "$ctx" >"$ctx.log" 2>&1 || { cat "$ctx.log" >&2; die "docker build failed"; }
    rm -f "$ctx.log"
    rm -rf "$ctx"
}

apply_workload() {
    kctl apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Namespace
metadata: {name: $NS}
---
apiVersion: v1
kind: Service
metadata: {name: web-headless, namespace: $NS}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: $NS}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web, namespace: $NS}
spec:
  serviceName: web-headless
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: $IMAGE
        imagePullPolicy: Never
        env:
        - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
        - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
        command: [sh, -c]
        args:
        - |
          echo "\$POD_NAME" > /data/index.html
          date >> /data/boots
          echo "smoke pod \$POD_NAME serving on \$POD_IP:8080"
          exec httpd -f -p 8080 -h /data
        ports: [{containerPort: 8080}]
        readinessProbe:
          tcpSocket: {port: 8080}
          periodSeconds: 1
        volumeMounts: [{name: data, mountPath: /data}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      storageClassName: standard
      resources: {requests: {storage: 100Mi}}
EOF
}

pod_ip() { kctl -n "$NS" get pod "$1" -o jsonpath='{.status.podIP}'; }
in_pod() { local p=$1; shift; kctl -n "$NS" exec "$p" -- "$@"; }

main() {
    kctl delete namespace "$NS" --ignore-not-found --wait=true >/dev/null
    build_image
    step "applying StatefulSet web (2 replicas) and Services"
    apply_workload
    kctl -n "$NS" rollout status statefulset/web --timeout=180s >/dev/null
    step "StatefulSet rolled out"
    kctl -n "$NS" get pods,pvc -o wide

    check "both pods Running" \
        test "$(kctl -n "$NS" get pods -l app=web -o jsonpath='{range .items[*]}{.status.phase}{" "}{end}')" == "Running Running "
    check "both PVCs Bound" \
        test "$(kctl -n "$NS" get pvc -o jsonpath='{range .items[*]}{.status.phase}{" "}{end}')" == "Bound Bound "

    local ip0 ip1 cip
    ip0="$(pod_ip web-0)"; ip1="$(pod_ip web-1)"
    step "pod IPs: web-0 $ip0, web-1 $ip1"
    check "web-0 reaches web-1 by pod IP (kubectl exec + wget)" \
        test "$(in_pod web-0 timeout 5 wget -qO- "http://$ip1:8080/")" == web-1
    check "web-1 reaches web-0 by pod IP (kubectl exec + nc)" \
        sh -c "printf 'GET / HTTP/1.0\r\n\r\n' | kubectl --kubeconfig '$RUN/kubeconfig' -n $NS exec -i web-1 -- nc -w 5 '$ip0' 8080 2>/dev/null | tail -n 1 | grep -qx web-0"

    cip="$(kctl -n "$NS" get service web -o jsonpath='{.spec.clusterIP}')"
    # Until both backends answered: kube-proxy picks one at random, and web-0
    # reaching itself through the Service needs hairpin mode on its bridge port.
    local seen="" out
    for _ in $(seq 1 30); do
        out="$(in_pod web-0 timeout 5 wget -qO- "http://$cip/")"
        [[ $seen == *"$out"* ]] || seen="$seen $out"
        [[ $seen == *web-0* && $seen == *web-1* ]] && break
    done
    step "ClusterIP $cip answered from web-0 with:$seen"
    check "ClusterIP Service reaches both pods from a pod, itself included" \
        test -n "$(grep web-0 <<<"$seen" | grep web-1)"
    check "ClusterIP Service reaches a pod from the host" \
        sh -c "curl -fsS --max-time 5 'http://$cip/' | grep -q '^web-'"
    check "a pod reaches the API server through the kubernetes Service (10.96.0.1:443)" \
        sh -c "printf 'GET / HTTP/1.0\r\n\r\n' | kubectl --kubeconfig '$RUN/kubeconfig' -n $NS exec -i web-0 -- nc -w 5 10.96.0.1 443 2>/dev/null | grep -q 'HTTP request to an HTTPS server'"
    check "kubectl logs" sh -c "kubectl --kubeconfig '$RUN/kubeconfig' -n $NS logs web-1 2>/dev/null | grep -q 'smoke pod web-1 serving on $ip1:8080'"

    in_pod web-0 sh -c 'echo kept > /data/marker'
    step "deleting pod web-0; its claim must come back with it"
    kctl -n "$NS" delete pod web-0 --wait=true >/dev/null
    kctl -n "$NS" wait --for=condition=Ready pod/web-0 --timeout=120s >/dev/null
    check "web-0 back with its volume's data" test "$(in_pod web-0 cat /data/marker)" == kept
    check "web-0 booted twice on the same volume" test "$(in_pod web-0 sh -c 'wc -l < /data/boots')" -eq 2

    # Custom resources: the vendored reflect2 made kube-apiserver panic on
    # every custom-resource write before build.sh's vendor fix.
    kctl apply -f - >/dev/null <<EOF
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: smokes.smoke.sluice.dev}
spec:
  group: smoke.sluice.dev
  scope: Namespaced
  names: {plural: smokes, singular: smoke, kind: Smoke}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, properties: {replicas: {type: integer}}}
          status: {type: object, properties: {ready: {type: integer}}}
EOF
    kctl wait --for=condition=Established crd/smokes.smoke.sluice.dev --timeout=60s >/dev/null
    kctl -n "$NS" apply -f - >/dev/null <<EOF
apiVersion: smoke.sluice.dev/v1
kind: Smoke
metadata: {name: one}
spec: {replicas: 3}
EOF
    kctl -n "$NS" patch smoke one --type merge -p '{"spec": {"replicas": 5}}' >/dev/null
    check "custom resource created and patched" \
        test "$(kctl -n "$NS" get smoke one -o jsonpath='{.spec.replicas}')" == 5
    kctl delete crd smokes.smoke.sluice.dev >/dev/null

    step "deleting namespace $NS (claims included)"
    kctl delete namespace "$NS" --wait=true >/dev/null
    "$here/node.sh" reclaim
    check "every PV Available again" \
        sh -c "! kubectl --kubeconfig '$RUN/kubeconfig' get pv -o jsonpath='{range .items[*]}{.status.phase}{\"\\n\"}{end}' 2>/dev/null | grep -vx Available"
    step "smoke test passed"
}

main "$@"
