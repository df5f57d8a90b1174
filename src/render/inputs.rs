//! Which services read which file: a changed file restarts exactly these units.

/// Units to restart when the file (or binary) at `path` changes. Unit files restart their own
/// unit; files read only on demand (CNI configs, the admin kubeconfig, tools) restart nothing.
pub fn restarts(path: &str) -> &'static [&'static str] {
    const PKI: &str = "/etc/kubernetes/pki/";
    if let Some(unit) = path.strip_prefix("/etc/systemd/system/") {
        return match unit {
            "etcd.service" => &["etcd"],
            "kube-apiserver.service" => &["kube-apiserver"],
            "kube-controller-manager.service" => &["kube-controller-manager"],
            "kube-scheduler.service" => &["kube-scheduler"],
            "containerd.service" => &["containerd"],
            "kubelet.service" => &["kubelet"],
            "kube-proxy.service" => &["kube-proxy"],
            "pod-routes.service" => &["pod-routes"],
            _ => &[],
        };
    }
    if let Some(f) = path.strip_prefix(PKI) {
        return match f {
            "etcd/ca.crt" => &["etcd", "kube-apiserver"],
            "etcd/server.crt" | "etcd/server.key" | "etcd/peer.crt" | "etcd/peer.key" => &["etcd"],
            "ca.crt" => &["kube-apiserver", "kube-controller-manager", "kubelet"],
            "ca.key" => &["kube-controller-manager"],
            "front-proxy-ca.crt" => &["kube-apiserver", "kube-controller-manager"],
            "sa.key" => &["kube-apiserver", "kube-controller-manager"],
            "sa.pub" => &["kube-apiserver"],
            "kube-controller-manager.crt" | "kube-controller-manager.key" => {
                &["kube-controller-manager"]
            }
            "kube-scheduler.crt" | "kube-scheduler.key" => &["kube-scheduler"],
            f if f.starts_with("apiserver") || f.starts_with("front-proxy-client") => {
                &["kube-apiserver"]
            }
            _ => &[],
        };
    }
    match path {
        "/etc/kubernetes/encryption-config.yaml" | "/etc/kubernetes/audit-policy.yaml" => {
            &["kube-apiserver"]
        }
        "/etc/kubernetes/controller-manager.conf" => &["kube-controller-manager"],
        "/etc/kubernetes/scheduler.conf" | "/etc/kubernetes/kube-scheduler.yaml" => {
            &["kube-scheduler"]
        }
        "/etc/kubernetes/kubelet.conf" => &["kubelet"],
        "/etc/kubernetes/kube-proxy.conf" | "/var/lib/kube-proxy/config.yaml" => &["kube-proxy"],
        "/etc/containerd/config.toml" => &["containerd"],
        p if p.starts_with("/var/lib/kubelet/") => &["kubelet"],
        "/usr/local/bin/etcd" => &["etcd"],
        "/usr/local/bin/kube-apiserver" => &["kube-apiserver"],
        "/usr/local/bin/kube-controller-manager" => &["kube-controller-manager"],
        "/usr/local/bin/kube-scheduler" => &["kube-scheduler"],
        "/usr/local/bin/kubelet" => &["kubelet"],
        "/usr/local/bin/kube-proxy" => &["kube-proxy"],
        "/usr/local/bin/containerd"
        | "/usr/local/bin/containerd-shim-runc-v2"
        | "/usr/local/bin/runc" => &["containerd"],
        _ => &[],
    }
}
