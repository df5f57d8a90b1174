//! The smoke test that ends "Kubernetes The Hard Way", on a cluster `apply` built: data
//! encryption at rest, a Deployment across the workers, port-forward, logs, exec, a NodePort
//! Service from outside the cluster, a ClusterIP Service from a pod on the other worker,
//! cluster DNS from a pod, and NetworkPolicy enforced between the workers. Each with the real tools: kubectl at the cluster's version with the
//! admin kubeconfig `provisioner kubeconfig` prints, and etcdctl with the generated certificates.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::cluster::{Cluster, Kubectl};
use crate::common::{bundle, text};
use crate::machines::Machines;
use crate::netpol;
use crate::step::step;

/// An HTTP/1.0 GET; the whole answer (status line, headers, body).
fn http_get(addr: &str, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: smoke\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// `http_get` until it answers 200, for up to 60 s (rules and endpoints take a moment).
fn http_get_ok(addr: &str, path: &str) -> String {
    let start = Instant::now();
    loop {
        let r = http_get(addr, path);
        match &r {
            Ok(body) if body.starts_with("HTTP/1.") && body.contains(" 200 ") => {
                return body.clone()
            }
            _ if start.elapsed() > Duration::from_secs(60) => {
                panic!("GET http://{addr}{path} never answered 200: {r:?}")
            }
            _ => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

/// What the test bundle's web server's page says.
pub const INDEX: &str = "provisioner test web server";

pub fn web_image(c: &Cluster) -> String {
    bundle::image(&c.bundle, "web").expect("the test bundle carries the web image")["reference"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A pod `name` (labelled `app: NAME`) serving the web page on port 8080 on `node`, also on the
/// node's `host_port` when given; applied and waited for until Ready.
pub fn web_pod(c: &Cluster, k: &Kubectl, name: &str, node: &str, host_port: Option<u16>) {
    let host_port = host_port
        .map(|p| format!("\n      hostPort: {p}"))
        .unwrap_or_default();
    k.apply(&format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels: {{app: {name}}}
spec:
  nodeName: {node}
  containers:
  - name: web
    image: {}
    ports:
    - containerPort: 8080{host_port}
",
        web_image(c)
    ));
    let pod = format!("pod/{name}");
    k.run(&["wait", "--for=condition=Ready", &pod, "--timeout=120s"]);
}

/// A web Deployment (2 replicas) with a PodDisruptionBudget (maxUnavailable 1) behind a
/// NodePort Service (30080), rolled out; the Service's address at each of `workers`, once it
/// answers at the first (kube-proxy programs the NodePort a moment after the pods are ready).
pub fn web_behind_a_node_port(m: &Machines, c: &Cluster, workers: &[&str]) -> Vec<String> {
    let k = Kubectl::new(c);
    k.apply(&format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
      - name: web
        image: {}
        ports:
        - containerPort: 8080
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: web
spec:
  maxUnavailable: 1
  selector:
    matchLabels: {{app: web}}
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  type: NodePort
  selector: {{app: web}}
  ports:
  - port: 8080
    nodePort: 30080
",
        web_image(c)
    ));
    k.run(&["rollout", "status", "deployment/web", "--timeout=180s"]);
    let service: Vec<String> = workers
        .iter()
        .map(|w| format!("{}:30080", m.address(w)))
        .collect();
    let answered = (0..60).any(|_| {
        let ok = std::process::Command::new("curl")
            .args(["-sf", "--max-time", "2"])
            .arg(format!("http://{}/", service[0]))
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
        ok
    });
    assert!(answered, "http://{}/ never answered", service[0]);
    service
}

/// Runs the smoke test; `workers` are the cluster's two workers. Returns the web pods it
/// leaves running, with their nodes.
pub fn smoke_test(
    m: &Machines,
    c: &Cluster,
    etcd_host: &str,
    workers: [&str; 2],
) -> Vec<(String, String)> {
    let k = Kubectl::new(c);
    step("smoke: encryption at rest", || {
        encryption_at_rest(m, c, &k, etcd_host)
    });
    let pods = step("smoke: a deployment across the workers", || {
        deployment_across_workers(c, &k, workers)
    });
    step("smoke: port-forward, logs and exec", || {
        port_forward_logs_and_exec(&k, &pods[0].0)
    });
    step("smoke: a NodePort service from outside", || {
        node_port_from_outside(m, &k, workers)
    });
    step("smoke: a ClusterIP service and DNS from a pod", || {
        cluster_ip_and_dns_from_a_pod(c, &k, &pods, workers)
    });
    step("smoke: a hostPort from outside", || {
        host_port_from_outside(m, c, &k, workers[0])
    });
    step("smoke: the API servers reach a webhook's Service", || {
        api_servers_reach_a_webhook_service(&k)
    });
    step("smoke: NetworkPolicy is enforced across workers", || {
        let (client, _) = pods
            .iter()
            .find(|(_, n)| n == workers[0])
            .expect("a web pod on the first worker");
        netpol::enforced_across_workers(m, c, &k, client, workers[0], workers[1])
    });
    pods
}

/// A pod's hostPort answers at its worker's address (the CNI portmap plugin's rules).
fn host_port_from_outside(m: &Machines, c: &Cluster, k: &Kubectl, worker: &str) {
    web_pod(c, k, "hostport", worker, Some(18080));
    let body = http_get_ok(&format!("{}:18080", m.address(worker)), "/");
    assert!(body.contains(INDEX), "{worker}:18080: {body}");
    // The web server, process 1 of its container, ignores SIGTERM: no grace period to wait out.
    k.run(&[
        "delete",
        "pod",
        "hostport",
        "--grace-period=1",
        "--wait=true",
    ]);
}

/// An admission webhook is called through its Service, from the API servers, which run on
/// hosts without kube-proxy: they must dial the Service's endpoint (the pod), not its cluster
/// IP, or every call times out. The endpoint here is the `target` pod on a port nothing
/// listens on, so a call that reaches the pod is refused at once, and one that does not
/// times out; the webhook's own TLS is beside the point.
fn api_servers_reach_a_webhook_service(k: &Kubectl) {
    k.apply(
        r#"apiVersion: v1
kind: Service
metadata:
  name: webhook-reach
spec:
  selector: {app: target}
  ports:
  - port: 443
    targetPort: 9443
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: smoke-reach
webhooks:
- name: reach.smoke.provisioner.test
  clientConfig:
    service: {namespace: default, name: webhook-reach, port: 443}
  rules:
  - operations: [CREATE]
    apiGroups: [""]
    apiVersions: [v1]
    resources: [configmaps]
  objectSelector:
    matchLabels: {smoke: webhook}
  sideEffects: None
  admissionReviewVersions: [v1]
  failurePolicy: Fail
  timeoutSeconds: 10
"#,
    );
    let start = Instant::now();
    let refused = loop {
        let o = k.with_input(
            &["create", "-f", "-"],
            "apiVersion: v1
kind: ConfigMap
metadata:
  generateName: reach-
  labels: {smoke: webhook}
",
        );
        // The webhook configuration takes a moment to reach every API server: until then the
        // ConfigMap is created.
        let err = text(&o.stderr);
        if !o.status.success() && err.contains("connection refused") {
            break err;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the API server did not reach the webhook's pod (created: {}): {err}",
            o.status.success()
        );
        std::thread::sleep(Duration::from_secs(1));
    };
    assert!(
        refused.contains("reach.smoke.provisioner.test"),
        "{refused}"
    );
    k.run(&["delete", "validatingwebhookconfiguration", "smoke-reach"]);
    k.run(&["delete", "service", "webhook-reach"]);
    k.run(&["delete", "configmap", "-l", "smoke=webhook"]);
}

/// A Secret read back from etcd is encrypted with the provider the encryption config names.
fn encryption_at_rest(m: &Machines, c: &Cluster, k: &Kubectl, etcd_host: &str) {
    k.run(&[
        "create",
        "secret",
        "generic",
        "smoke",
        "--from-literal=mykey=mydata",
    ]);
    let o = c
        .etcdctl(m, etcd_host)
        .args([
            "get",
            "/registry/secrets/default/smoke",
            "--print-value-only",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "etcdctl get: {}", text(&o.stderr));
    assert!(
        o.stdout.starts_with(b"k8s:enc:secretbox:v1:"),
        "the Secret is not encrypted at rest: {:?}",
        String::from_utf8_lossy(&o.stdout[..o.stdout.len().min(80)])
    );
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains("mydata"),
        "the Secret's value is readable in etcd"
    );
}

/// 3 replicas of the web server, spread over both workers; (pod, node) of each.
fn deployment_across_workers(
    c: &Cluster,
    k: &Kubectl,
    workers: [&str; 2],
) -> Vec<(String, String)> {
    k.apply(&format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      topologySpreadConstraints:
      - maxSkew: 1
        topologyKey: kubernetes.io/hostname
        whenUnsatisfiable: DoNotSchedule
        labelSelector:
          matchLabels: {{app: web}}
      containers:
      - name: web
        image: {}
        ports:
        - containerPort: 8080
",
        web_image(c)
    ));
    k.run(&[
        "wait",
        "--for=condition=Available",
        "deployment/web",
        "--timeout=180s",
    ]);
    let pods = k.json(&["get", "pods", "-l", "app=web"]);
    let pods: Vec<(String, String)> = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["status"]["phase"] == "Running")
        .map(|p| {
            (
                p["metadata"]["name"].as_str().unwrap().to_string(),
                p["spec"]["nodeName"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(pods.len(), 3, "{pods:?}");
    for w in workers {
        assert!(
            pods.iter().any(|(_, n)| n == w),
            "no web pod on {w}: {pods:?}"
        );
    }
    pods
}

/// kubectl port-forward answers; the request shows in kubectl logs; kubectl exec runs a command.
/// All three go through the kubelet's API, with the serving certificate the tool issued.
fn port_forward_logs_and_exec(k: &Kubectl, pod: &str) {
    let mut pf: Child = k
        .command(&["port-forward", &format!("pod/{pod}"), ":8080"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // kubectl keeps printing (one line per address, one per connection): the pipe is drained
    // until it exits, or its next write would kill it.
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = pf.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
    // "Forwarding from 127.0.0.1:PORT -> 8080"
    let port = line
        .split_whitespace()
        .nth(2)
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse::<u16>().ok());
    let answer = port.map(|p| http_get(&format!("127.0.0.1:{p}"), "/index.html"));
    let _ = pf.kill();
    let _ = pf.wait();
    let answer = answer
        .unwrap_or_else(|| panic!("kubectl port-forward printed {line:?}"))
        .expect("HTTP through kubectl port-forward");
    assert!(answer.contains(INDEX), "{answer}");

    let logs = k.run(&["logs", pod]);
    assert!(
        logs.contains("127.0.0.1") && logs.contains("response:200"),
        "kubectl logs shows no request: {logs}"
    );

    let hostname = k.run(&["exec", pod, "--", "/bin/busybox", "hostname"]);
    assert_eq!(hostname.trim(), pod, "kubectl exec");
}

/// A NodePort Service answers from this machine at each worker's address (kube-proxy's rules).
fn node_port_from_outside(m: &Machines, k: &Kubectl, workers: [&str; 2]) {
    k.run(&[
        "expose",
        "deployment",
        "web",
        "--name=web-nodeport",
        "--type=NodePort",
        "--port=8080",
    ]);
    let svc = k.json(&["get", "service", "web-nodeport"]);
    let port = svc["spec"]["ports"][0]["nodePort"].as_u64().unwrap();
    for w in workers {
        let body = http_get_ok(&format!("{}:{port}", m.address(w)), "/");
        assert!(body.contains(INDEX), "{w}:{port}: {body}");
    }
}

/// From a pod on one worker: a ClusterIP Service whose only endpoint runs on the other worker
/// (pod to pod across workers over the pod routes), and the `kubernetes` Service's name
/// through the cluster DNS (the pod's resolv.conf, as the kubelet writes it).
fn cluster_ip_and_dns_from_a_pod(
    c: &Cluster,
    k: &Kubectl,
    pods: &[(String, String)],
    workers: [&str; 2],
) {
    web_pod(c, k, "target", workers[1], None);
    k.apply(
        "apiVersion: v1
kind: Service
metadata:
  name: target
spec:
  selector: {app: target}
  ports:
  - port: 80
    targetPort: 8080
",
    );
    let ip = k.json(&["get", "service", "target"])["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_string();
    let (client, _) = pods
        .iter()
        .find(|(_, n)| n == workers[0])
        .expect("a web pod on the first worker");
    let body = k.wget_ok(client, &format!("http://{ip}/"));
    assert!(body.contains(INDEX), "{body}");

    let lookup = k.run(&[
        "exec",
        client,
        "--",
        "/bin/busybox",
        "nslookup",
        "kubernetes.default.svc.cluster.local",
    ]);
    let api_ip = k.json(&["get", "service", "kubernetes"])["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(lookup.contains(&api_ip), "nslookup from {client}: {lookup}");
}
