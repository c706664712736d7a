# Host-side pieces of the single-node cluster (sourced by `cluster`): certificates, configs, cgroups, network, pause.

make_pki() {  # CA, apiserver serving cert, apiserver->kubelet client cert, service-account keys, static tokens
    local p="$STATE/pki"
    [ -f "$p/tokens.csv" ] && return 0
    mkdir -p "$p" && chmod 700 "$p"
    local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
    openssl req -x509 "${ec[@]}" -keyout "$p/ca.key" -out "$p/ca.crt" -days 3650 -subj "/CN=spaces-k8s-ca" 2>/dev/null
    sign() {  # $1 name, $2 subject, $3 extensions
        openssl req "${ec[@]}" -keyout "$p/$1.key" -out "$p/$1.csr" -subj "$2" 2>/dev/null
        printf '%s\n' "$3" >"$p/$1.ext"
        openssl x509 -req -in "$p/$1.csr" -CA "$p/ca.crt" -CAkey "$p/ca.key" -CAcreateserial -days 3650 \
            -extfile "$p/$1.ext" -out "$p/$1.crt" 2>/dev/null
        rm -f "$p/$1.csr" "$p/$1.ext"
    }
    sign apiserver "/CN=kube-apiserver" "subjectAltName=IP:$NODE_IP,IP:127.0.0.1,IP:$SERVICE_IP0,DNS:kubernetes,\
DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost
extendedKeyUsage=serverAuth"
    sign apiserver-kubelet "/O=system:masters/CN=kube-apiserver-kubelet-client" "extendedKeyUsage=clientAuth"
    openssl genrsa -out "$p/sa.key" 2048 2>/dev/null
    openssl rsa -in "$p/sa.key" -pubout -out "$p/sa.pub" 2>/dev/null
    tok() { openssl rand -hex 24; }
    {
        echo "$(tok),admin,admin,system:masters"
        echo "$(tok),system:kube-controller-manager,system:kube-controller-manager"
        echo "$(tok),system:kube-scheduler,system:kube-scheduler"
        echo "$(tok),system:node:$NODE_NAME,system:node:$NODE_NAME,system:nodes"
        echo "$(tok),system:kube-proxy,system:kube-proxy"
    } >"$p/tokens.csv.new"
    chmod 600 "$p"/*
    mv "$p/tokens.csv.new" "$p/tokens.csv"
}

kubeconfig() {  # $1 file, $2 user in tokens.csv
    local token
    token="$(awk -F, -v u="$2" '$2 == u {print $1}' "$STATE/pki/tokens.csv")"
    umask 077
    cat >"$1" <<KC
apiVersion: v1
kind: Config
clusters:
- name: spaces-k8s
  cluster:
    server: https://$NODE_IP:$API_PORT
    certificate-authority-data: $(base64 -w0 "$STATE/pki/ca.crt")
users:
- name: $2
  user:
    token: $token
contexts:
- name: spaces-k8s
  context: {cluster: spaces-k8s, user: "$2"}
current-context: spaces-k8s
KC
    umask 022
}

write_configs() {
    mkdir -p "$STATE/conf" "$STATE/cni/net.d" "$STATE/logs" "$RUN"
    kubeconfig "$STATE/admin.kubeconfig" admin
    kubeconfig "$STATE/conf/controller-manager.kubeconfig" system:kube-controller-manager
    kubeconfig "$STATE/conf/scheduler.kubeconfig" system:kube-scheduler
    kubeconfig "$STATE/conf/kubelet.kubeconfig" "system:node:$NODE_NAME"
    kubeconfig "$STATE/conf/kube-proxy.kubeconfig" system:kube-proxy
    # Services route (iptables mode): ClusterIPs, the `kubernetes` Service for in-cluster clients. Nothing on the
    # host is changed beyond its own KUBE-* chains: no conntrack sysctls, no route_localnet, NodePorts on the node
    # IP only. (No cluster DNS: Service names still do not resolve.)
    cat >"$STATE/conf/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $STATE/conf/kube-proxy.kubeconfig}
hostnameOverride: $NODE_NAME
mode: iptables
clusterCIDR: $POD_CIDR
bindAddress: $NODE_IP
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: [$NODE_IP/32]
iptables: {localhostNodePorts: false, syncPeriod: 10s, minSyncPeriod: 0s}
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
YAML
    cat >"$STATE/conf/containerd.toml" <<TOML
version = 2
root = "$STATE/containerd"
state = "$RUN/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "$RUN/containerd/containerd.sock"
[ttrpc]
  address = "$RUN/containerd/containerd.sock.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # the VM lacks CAP_SYS_RESOURCE: a negative oom_score_adj is refused and runc fails every sandbox without this
  restrict_oom_score_adj = true
  # pod network namespaces under our run dir, so that cluster down finds and unmounts every one
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$RUN/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$STATE/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."$REGISTRY"]
    endpoint = ["http://$REGISTRY"]
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."localhost:$REGISTRY_PORT"]
    endpoint = ["http://$REGISTRY"]
TOML
    cat >"$STATE/cni/net.d/10-spaces-k8s.conflist" <<JSON
{"cniVersion": "0.4.0", "name": "spaces-k8s", "plugins": [
  {"type": "bridge", "bridge": "$CNI_BRIDGE", "isGateway": true, "ipMasq": true, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}],
            "dataDir": "$STATE/cni/ipam"}}
]}
JSON
    cat >"$STATE/conf/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $STATE/pki/ca.crt}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://$RUN/containerd/containerd.sock
cgroupDriver: cgroupfs
cgroupRoot: /$CGROUP_ROOT
failCgroupV1: false
failSwapOn: false
podLogsDir: $STATE/pod-logs
volumePluginDir: $STATE/kubelet/volume-plugins
nodeStatusUpdateFrequency: 2s
nodeStatusReportFrequency: 10s
syncFrequency: 10s
serializeImagePulls: false
imageGCHighThresholdPercent: 95
imageGCLowThresholdPercent: 90
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
resolvConf: /etc/resolv.conf
YAML
}

cgroup_roots() {  # kubelet on cgroup v1 wants its root in every hierarchy
    local h
    for h in /sys/fs/cgroup/*/; do
        [ -d "$h" ] || continue
        mkdir -p "$h$CGROUP_ROOT" 2>/dev/null || continue
        if [ -f "${h}cpuset.cpus" ]; then
            cat "${h}cpuset.cpus" >"$h$CGROUP_ROOT/cpuset.cpus"
            cat "${h}cpuset.mems" >"$h$CGROUP_ROOT/cpuset.mems"
        fi
    done
}

remove_cgroups() {  # deepest first; only empty ones go (a live process keeps its group)
    local h
    for h in /sys/fs/cgroup/*/; do
        [ -d "$h$CGROUP_ROOT" ] || continue
        find "$h$CGROUP_ROOT" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    done
}

node_network() {  # no dummy netdev in this kernel: an empty bridge carries the node IP
    ip link show "$NODE_BRIDGE" >/dev/null 2>&1 || ip link add "$NODE_BRIDGE" type bridge
    ip addr show dev "$NODE_BRIDGE" | grep -q " $NODE_IP/32" || ip addr add "$NODE_IP/32" dev "$NODE_BRIDGE"
    ip link set "$NODE_BRIDGE" up
}

pod_egress() {  # pods reach out as Spaces do on the local backend (PyPI, model hubs, DNS); Docker's FORWARD policy
    # is DROP, so without these a pod's DNS query is dropped and waits out its timeouts (Streamlit's start: 20 s)
    local rule
    for rule in "-i $CNI_BRIDGE -j ACCEPT" "-o $CNI_BRIDGE -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"; do
        # shellcheck disable=SC2086
        iptables -C FORWARD $rule -m comment --comment "$IPT_MARK" 2>/dev/null \
            || iptables -I FORWARD 1 $rule -m comment --comment "$IPT_MARK"
    done
    [ "$(cat /proc/sys/net/ipv4/ip_forward)" = 1 ] || echo 1 >/proc/sys/net/ipv4/ip_forward
}

remove_network() {
    local b
    for b in "$CNI_BRIDGE" "$NODE_BRIDGE"; do ip link show "$b" >/dev/null 2>&1 && ip link del "$b"; done
    # our FORWARD rules; the kubelet's chains (KUBE-FIREWALL, its canaries) and the bridge plugin's masquerade
    # chains (CNI-*, left behind when down kills pods without a CNI DEL). Jumps into them go first, then the chains.
    local cmd t rule c
    for cmd in iptables ip6tables; do
        command -v "$cmd" >/dev/null || continue
        for t in mangle nat filter; do
            while read -r rule; do
                [ -n "$rule" ] && { eval "$cmd -t $t -D ${rule#-A }" 2>/dev/null || true; }
            done <<<"$("$cmd" -t "$t" -S 2>/dev/null | grep -E "^-A [A-Z]+ .*(-j (KUBE|CNI)-|$IPT_MARK)" || true)"
            for c in $("$cmd" -t "$t" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^(KUBE|CNI)-/ {print $2}'); do
                "$cmd" -t "$t" -F "$c" 2>/dev/null || true
            done
            for c in $("$cmd" -t "$t" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^(KUBE|CNI)-/ {print $2}'); do
                "$cmd" -t "$t" -X "$c" 2>/dev/null || true
            done
        done
    done
    true
}

pause_image() {  # the sandbox image: a static C program that sleeps until signalled; cached as an image tar
    local tar="$CACHE/images/pause.tar" w
    [ -f "$tar" ] && { echo "$tar"; return 0; }
    command -v gcc >/dev/null || { echo "gcc is needed to make the pause image" >&2; return 1; }
    w="$(mktemp -d)"
    cat >"$w/pause.c" <<'C'
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
static void bye(int s) { (void)s; _exit(0); }
static void reap(int s) { (void)s; while (waitpid(-1, NULL, WNOHANG) > 0) {} }
int main(void) {
    struct sigaction a = {0}, r = {0};
    a.sa_handler = bye; sigaction(SIGINT, &a, NULL); sigaction(SIGTERM, &a, NULL);
    r.sa_handler = reap; r.sa_flags = SA_NOCLDSTOP; sigaction(SIGCHLD, &r, NULL);
    for (;;) pause();
}
C
    gcc -static -Os -s -o "$w/pause" "$w/pause.c" || { rm -rf "$w"; return 1; }
    python3 "$HERE/image_tar.py" "$w/pause" /pause "$PAUSE_IMAGE" "$w/pause.tar" || { rm -rf "$w"; return 1; }
    mkdir -p "$CACHE/images" && mv "$w/pause.tar" "$tar" && rm -rf "$w"
    echo "$tar"
}
