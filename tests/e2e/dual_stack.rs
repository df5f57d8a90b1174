//! A dual-stack cluster's own checks: every Node has an address of each family, a pod one of
//! each, and a dual-stack Service answers on both of its cluster IPs from a pod on another
//! worker (kube-proxy's rules of each family, and the pod routes or overlay of each).

use crate::cluster::Kubectl;

/// `client` (a pod with busybox) reaches the `target` pod (serving port 8080, on another
/// worker) through a dual-stack Service, at its IPv4 and at its IPv6 cluster IP.
pub fn service_answers_on_both_families(k: &Kubectl, client: &str) {
    for node in k.json(&["get", "nodes"])["items"].as_array().unwrap() {
        let families: Vec<bool> = node["status"]["addresses"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["type"] == "InternalIP")
            .map(|a| a["address"].as_str().unwrap().contains(':'))
            .collect();
        assert_eq!(families, [false, true], "{}", node["status"]["addresses"]);
    }
    let pod_ips = k.json(&["get", "pod", "target"])["status"]["podIPs"].clone();
    assert_eq!(pod_ips.as_array().map(Vec::len), Some(2), "{pod_ips}");

    k.apply(
        "apiVersion: v1
kind: Service
metadata:
  name: target-dual
spec:
  ipFamilyPolicy: RequireDualStack
  ipFamilies: [IPv4, IPv6]
  selector: {app: target}
  ports:
  - port: 80
    targetPort: 8080
",
    );
    let ips = k.json(&["get", "service", "target-dual"])["spec"]["clusterIPs"].clone();
    let ips: Vec<&str> = ips
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(ips.len(), 2, "{ips:?}");
    for ip in ips {
        let url = if ip.contains(':') {
            format!("http://[{ip}]:80/")
        } else {
            format!("http://{ip}:80/")
        };
        let page = k.wget_ok(client, &url);
        assert!(page.contains(crate::smoke::INDEX), "{url}: {page}");
    }
    k.run(&["delete", "service", "target-dual"]);
}
