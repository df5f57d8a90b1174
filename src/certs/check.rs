//! `certs check`: every managed certificate, in the state directory and on each host (read over
//! SSH, so it works when the certificates have already expired and TLS no longer does): expiry,
//! and drift between a host's copy, the state directory and the inventory.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use base64::Engine;
use serde::Serialize;

use crate::layout::{KUBELET_KUBECONFIG, KUBELET_RENEWED_CLIENT};
use crate::pki::{self, inspect, Ca, Pki};
use crate::render::Rendered;

/// Exit code when a certificate has expired or expires within the warning window.
pub const EXIT_EXPIRING: u8 = 3;
/// Exit code when a host's copy differs from the state directory, or a certificate no longer
/// matches the inventory.
pub const EXIT_DRIFT: u8 = 4;

#[derive(Debug, Serialize)]
pub struct Row {
    /// `apiserver`, `kubelet-server@worker-1`, `kubernetes-ca`, ...
    pub name: String,
    /// None for the state directory's copy.
    pub host: Option<String>,
    pub path: String,
    pub subject: String,
    pub issuer: String,
    pub sans: Vec<String>,
    pub not_after: i64,
    pub days_left: i64,
    pub expired: bool,
    pub expiring: bool,
    pub drift: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub warn_days: i64,
    pub rows: Vec<Row>,
}

impl Report {
    pub fn exit_code(&self) -> u8 {
        if self.rows.iter().any(|r| r.expired || r.expiring) {
            EXIT_EXPIRING
        } else if self.rows.iter().any(|r| !r.drift.is_empty()) {
            EXIT_DRIFT
        } else {
            0
        }
    }
}

/// A certificate a host should have: where, which one, and its PEM.
#[derive(Debug, Clone)]
pub struct Expected {
    pub path: String,
    pub name: String,
    /// The state directory's copy; for a [`Form::Renewed`] one, the CA that must have signed it.
    pub pem: String,
    pub form: Form,
}

/// How a host holds a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// A PEM file of its own.
    File,
    /// A kubeconfig's client-certificate-data.
    Kubeconfig,
    /// The client certificate the kubelet renewed itself through the CSR API, the one it uses
    /// while it is there: not provisioner's copy, so it only has to be signed by the cluster CA;
    /// absent until the kubelet's first renewal. Its file holds the key too, which never leaves
    /// the host.
    Renewed,
}

/// The certificates each rendered host carries: every `.crt` file and every kubeconfig's client
/// certificate, and on a node the client certificate its kubelet renewed.
pub fn expected(rendered: &Rendered, pki: &Pki) -> BTreeMap<String, Vec<Expected>> {
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    for ca in Ca::ALL {
        names.insert(pki.ca(ca).cert.trim().to_string(), ca.name().to_string());
    }
    for (spec, pem) in pki.leaves() {
        names.insert(pem.cert.trim().to_string(), spec.id());
    }
    let mut out = BTreeMap::new();
    for h in &rendered.hosts {
        let mut list = Vec::new();
        for f in &h.files {
            let text = String::from_utf8_lossy(&f.content);
            let (pem, form) = if f.path.ends_with(".crt") {
                (text.trim().to_string(), Form::File)
            } else if let Some(pem) = kubeconfig_client_cert(&text) {
                (pem, Form::Kubeconfig)
            } else {
                continue;
            };
            let name = names.get(&pem).cloned().unwrap_or_else(|| f.path.clone());
            if f.path == KUBELET_KUBECONFIG {
                list.push(Expected {
                    path: KUBELET_RENEWED_CLIENT.to_string(),
                    name: format!("{name} (renewed by the kubelet)"),
                    pem: pki.ca(Ca::Cluster).cert.clone(),
                    form: Form::Renewed,
                });
            }
            list.push(Expected {
                path: f.path.clone(),
                name,
                pem,
                form,
            });
        }
        out.insert(h.host.clone(), list);
    }
    out
}

/// The PEM of a kubeconfig's client-certificate-data.
fn kubeconfig_client_cert(text: &str) -> Option<String> {
    let data = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("client-certificate-data:"))?;
    decode_b64_pem(data.trim())
}

fn decode_b64_pem(data: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .ok()?;
    Some(String::from_utf8(bytes).ok()?.trim().to_string())
}

/// One command printing each file's certificate: `.crt` files whole, kubeconfigs only their
/// client-certificate-data line, `.pem` pairs only their certificates, so no private key ever
/// leaves the host.
pub fn read_script(list: &[Expected]) -> String {
    let paths: Vec<&str> = list.iter().map(|e| e.path.as_str()).collect();
    crate::shell::read_certs(&paths)
}

/// Parses [`read_script`]'s output: path → PEM (None when the file is missing).
pub fn parse_read(output: &str, list: &[Expected]) -> BTreeMap<String, Option<String>> {
    let mut out = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    let finish = |cur: Option<(String, String)>, out: &mut BTreeMap<String, Option<String>>| {
        if let Some((path, body)) = cur {
            let body = body.trim();
            let kubeconfig = list
                .iter()
                .any(|e| e.path == path && e.form == Form::Kubeconfig);
            let pem = match body {
                "MISSING" => None,
                b if kubeconfig => Some(decode_b64_pem(b).unwrap_or_default()),
                b => Some(b.to_string()),
            };
            out.insert(path, pem);
        }
    };
    for line in output.lines() {
        if let Some(path) = line.strip_prefix("==> ") {
            finish(current.take(), &mut out);
            current = Some((path.to_string(), String::new()));
        } else if let Some((_, body)) = current.as_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    finish(current, &mut out);
    out
}

fn row(
    name: String,
    host: Option<String>,
    path: String,
    info: &inspect::CertInfo,
    drift: Vec<String>,
    now: i64,
    warn_days: i64,
) -> Row {
    let left = info.not_after - now;
    Row {
        name,
        host,
        path,
        subject: info.subject.clone(),
        issuer: info.issuer.clone(),
        sans: info.sans(),
        not_after: info.not_after,
        days_left: left.div_euclid(86_400),
        expired: left <= 0,
        expiring: left > 0 && left < warn_days * 86_400,
        drift,
    }
}

/// The state directory's certificates (as `pki::list` read them), with the identities that no
/// longer match the inventory.
pub fn state_rows(listed: &[pki::Listed], now: i64, warn_days: i64) -> Vec<Row> {
    listed
        .iter()
        .filter_map(|l| {
            let info = l.info.as_ref()?;
            let drift = l
                .stale
                .iter()
                .map(|w| format!("no longer matches the inventory: {w}"))
                .collect();
            Some(row(
                l.id(),
                None,
                l.file.clone(),
                info,
                drift,
                now,
                warn_days,
            ))
        })
        .collect()
}

/// One host's certificates compared with what the state directory says it should have.
pub fn host_rows(
    host: &str,
    expected: &[Expected],
    found: &BTreeMap<String, Option<String>>,
    state: &[Row],
    now: i64,
    warn_days: i64,
) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for e in expected {
        let pem = match found.get(&e.path) {
            Some(Some(pem)) => pem,
            // The kubelet has not renewed its certificate yet: it uses its kubeconfig's.
            _ if e.form == Form::Renewed => continue,
            _ => {
                rows.push(Row {
                    name: e.name.clone(),
                    host: Some(host.to_string()),
                    path: e.path.clone(),
                    subject: String::new(),
                    issuer: String::new(),
                    sans: Vec::new(),
                    not_after: 0,
                    days_left: 0,
                    expired: false,
                    expiring: false,
                    drift: vec!["missing on the host".into()],
                });
                continue;
            }
        };
        let mut drift = Vec::new();
        if e.form == Form::Renewed {
            if !inspect::signed_by_one_of(pem, &e.pem)? {
                drift.push("not signed by the cluster CA".to_string());
            }
        } else if pem.trim() != e.pem {
            drift.push("differs from the state directory".to_string());
        } else if let Some(s) = state.iter().find(|r| r.name == e.name) {
            // The same certificate as the state's, so the same identity problems.
            drift.extend(s.drift.iter().cloned());
        }
        let info = inspect::parse(pem)
            .with_context(|| format!("{host}: {} holds no readable certificate", e.path))?;
        rows.push(row(
            e.name.clone(),
            Some(host.to_string()),
            e.path.clone(),
            &info,
            drift,
            now,
            warn_days,
        ));
    }
    Ok(rows)
}

impl Row {
    /// `state:pki/apiserver.crt`, or `cp-1:/etc/kubernetes/pki/apiserver.crt`.
    fn place(&self) -> String {
        match &self.host {
            Some(h) => format!("{h}:{}", self.path),
            None => format!("state:{}", self.path),
        }
    }

    /// What is wrong with this copy, if anything.
    fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.subject.is_empty() {
            out.push("MISSING".to_string());
        } else if self.expired {
            out.push(format!("EXPIRED {} day(s) ago", -self.days_left));
        } else if self.expiring {
            out.push(format!("expires in {} day(s)", self.days_left));
        }
        out.extend(self.drift.iter().map(|d| format!("DRIFT: {d}")));
        out
    }
}

/// The report as people read it: one row per certificate for all its copies (the state
/// directory's and every host's), problems first, then one line per problem naming the copy.
/// `verbose` adds every copy's subject, issuer, SANs and expiry.
pub fn text(r: &Report, verbose: bool) -> String {
    use std::fmt::Write;
    let mut groups: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
    for row in &r.rows {
        groups.entry(&row.name).or_default().push(row);
    }
    let mut table: Vec<[String; 6]> = Vec::new();
    let mut keyed = Vec::new();
    for (name, copies) in &groups {
        let issued: Vec<&&Row> = copies.iter().filter(|c| !c.subject.is_empty()).collect();
        let hosts = copies.iter().filter(|c| c.host.is_some()).count();
        let place = match (copies.iter().any(|c| c.host.is_none()), hosts) {
            (true, 0) => "state".to_string(),
            (true, n) => format!("state + {n} host(s)"),
            (false, n) => format!("{n} host(s)"),
        };
        let soonest = issued.iter().min_by_key(|c| c.not_after);
        let state = if copies.iter().any(|c| c.expired) {
            "EXPIRED"
        } else if issued.len() < copies.len() {
            "MISSING"
        } else if copies.iter().any(|c| !c.drift.is_empty()) {
            "DRIFT"
        } else if copies.iter().any(|c| c.expiring) {
            "EXPIRING"
        } else {
            "ok"
        };
        let (expires, days, ca) = match soonest {
            Some(c) => (
                inspect::rfc3339(c.not_after)
                    .split('T')
                    .next()
                    .unwrap_or("")
                    .to_string(),
                c.days_left.to_string(),
                c.issuer.trim_start_matches("CN=").to_string(),
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        let days_left = soonest.map_or(i64::MIN, |c| c.days_left);
        keyed.push(((state == "ok", days_left), table.len()));
        table.push([
            name.to_string(),
            place,
            expires,
            days,
            ca,
            state.to_string(),
        ]);
    }
    keyed.sort();
    let header = [
        "CERTIFICATE",
        "WHERE",
        "EXPIRES",
        "DAYS LEFT",
        "CA",
        "STATE",
    ]
    .map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for row in &table {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: &[String; 6]| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            match i {
                5 => l.push_str(cell),
                3 => {
                    let _ = write!(l, "{cell:>w$}  ");
                }
                _ => {
                    let _ = write!(l, "{cell:<w$}  ");
                }
            }
        }
        l
    };
    let mut out = String::new();
    let _ = writeln!(out, "{}", line(&header));
    for (_, i) in &keyed {
        let _ = writeln!(out, "{}", line(&table[*i]));
    }
    let problems: Vec<String> = r
        .rows
        .iter()
        .flat_map(|row| {
            row.problems()
                .into_iter()
                .map(|p| format!("  {}  {p}", row.place()))
        })
        .collect();
    if !problems.is_empty() {
        let _ = writeln!(out, "\nproblems:\n{}", problems.join("\n"));
    }
    if verbose {
        let _ = writeln!(out, "\ncopies:");
        for row in &r.rows {
            let _ = writeln!(out, "  {} at {}", row.name, row.place());
            if !row.subject.is_empty() {
                let _ = writeln!(out, "    subject {}; issuer {}", row.subject, row.issuer);
                if !row.sans.is_empty() {
                    let _ = writeln!(out, "    SANs {}", row.sans.join(", "));
                }
                let _ = writeln!(out, "    not after {}", inspect::rfc3339(row.not_after));
            }
        }
    }
    let count = |f: &dyn Fn(&&Row) -> bool| r.rows.iter().filter(f).count();
    let _ = writeln!(
        out,
        "{} certificate(s) checked{}: {} expired, {} expiring within {} days, {} drifted",
        r.rows.len(),
        if verbose { "" } else { " (-v shows each copy)" },
        count(&|x| x.expired),
        count(&|x| x.expiring),
        r.warn_days,
        count(&|x| !x.drift.is_empty())
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_back_what_the_script_prints() {
        let list = vec![
            Expected {
                path: "/a.crt".into(),
                name: "a".into(),
                pem: "A".into(),
                form: Form::File,
            },
            Expected {
                path: "/k.conf".into(),
                name: "k".into(),
                pem: "K".into(),
                form: Form::Kubeconfig,
            },
            Expected {
                path: "/gone.crt".into(),
                name: "g".into(),
                pem: "G".into(),
                form: Form::File,
            },
        ];
        let b64 = base64::engine::general_purpose::STANDARD.encode("-----BEGIN X-----\nK\n");
        let out = format!("==> /a.crt\nline1\nline2\n==> /k.conf\n{b64}\n==> /gone.crt\nMISSING\n");
        let got = parse_read(&out, &list);
        assert_eq!(got["/a.crt"].as_deref(), Some("line1\nline2"));
        assert_eq!(got["/k.conf"].as_deref(), Some("-----BEGIN X-----\nK"));
        assert_eq!(got["/gone.crt"], None);
    }

    #[test]
    fn the_script_prints_certificates_and_never_keys() {
        let dir = tempfile::tempdir().unwrap();
        let at = |n: &str| dir.path().join(n).display().to_string();
        std::fs::write(at("a.crt"), "CERT\n").unwrap();
        std::fs::write(
            at("k.conf"),
            "users:\n- user:\n    client-certificate-data: Q0VSVA==\n    client-key-data: S0VZ\n",
        )
        .unwrap();
        // The kubelet's renewed pair: certificate and key in one file.
        let cert = "-----BEGIN CERTIFICATE-----\nQ0VSVA==\n-----END CERTIFICATE-----";
        std::fs::write(
            at("pair.pem"),
            format!("{cert}\n-----BEGIN EC PRIVATE KEY-----\nS0VZ\n-----END EC PRIVATE KEY-----\n"),
        )
        .unwrap();
        let list: Vec<Expected> = ["a.crt", "k.conf", "pair.pem", "gone.crt"]
            .into_iter()
            .map(|n| Expected {
                path: at(n),
                name: n.into(),
                pem: String::new(),
                form: match n {
                    "k.conf" => Form::Kubeconfig,
                    "pair.pem" => Form::Renewed,
                    _ => Form::File,
                },
            })
            .collect();
        let text = crate::shell::run_locally(&read_script(&list));
        assert!(!text.contains("S0VZ"), "a key left the host: {text}");
        let got = parse_read(&text, &list);
        assert_eq!(got[&at("a.crt")].as_deref(), Some("CERT"));
        assert_eq!(got[&at("k.conf")].as_deref(), Some("CERT"));
        assert_eq!(got[&at("pair.pem")].as_deref(), Some(cert));
        assert_eq!(got[&at("gone.crt")], None);
    }

    #[test]
    fn the_worst_finding_decides_the_exit_code() {
        let base = || Row {
            name: "x".into(),
            host: None,
            path: "p".into(),
            subject: "CN=x".into(),
            issuer: "CN=ca".into(),
            sans: vec![],
            not_after: 0,
            days_left: 100,
            expired: false,
            expiring: false,
            drift: vec![],
        };
        let mut r = Report {
            warn_days: 30,
            rows: vec![base()],
        };
        assert_eq!(r.exit_code(), 0);
        r.rows[0].drift.push("differs".into());
        assert_eq!(r.exit_code(), EXIT_DRIFT);
        r.rows.push(Row {
            expiring: true,
            ..base()
        });
        assert_eq!(r.exit_code(), EXIT_EXPIRING);
    }
}

#[cfg(test)]
mod rendered_tests {
    use super::*;

    #[test]
    fn every_certificate_a_host_gets_is_found_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let cluster = crate::inventory::bundled_for_test(dir.path());
        let (pki, _) = crate::pki::ensure(&cluster).unwrap();
        let rendered = crate::render::render(&cluster, &pki).unwrap();
        let e = expected(&rendered, &pki);
        let names = |h: &str| -> Vec<String> { e[h].iter().map(|x| x.name.clone()).collect() };
        let worker = names("worker-1");
        for want in [
            "ca",
            "kubelet-server@worker-1",
            "kubelet-client@worker-1",
            "kube-proxy",
        ] {
            assert!(worker.contains(&want.to_string()), "{want} in {worker:?}");
        }
        let cp = names("cp-1");
        for want in [
            "apiserver",
            "etcd-peer@cp-1",
            "admin",
            "controller-manager",
            "front-proxy-client",
        ] {
            assert!(cp.contains(&want.to_string()), "{want} in {cp:?}");
        }
        assert!(
            !cp.contains(&"super-admin".to_string()),
            "super-admin never leaves the state directory"
        );
        // A host copy equal to the state's is clean; another one drifts; a missing one too.
        // Until the kubelet renews its client certificate, there is no row for the renewal.
        let list = &e["worker-1"];
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let mut found: BTreeMap<String, Option<String>> = list
            .iter()
            .filter(|x| x.form != Form::Renewed)
            .map(|x| (x.path.clone(), Some(x.pem.clone())))
            .collect();
        let rows = host_rows("worker-1", list, &found, &[], now, 30).unwrap();
        assert_eq!(rows.len(), list.len() - 1);
        assert!(rows
            .iter()
            .all(|r| r.drift.is_empty() && !r.expired && !r.expiring));
        // A renewal signed by the cluster CA is clean, by another CA it drifts.
        let renewed = |cert: (crate::pki::Cert, Option<&str>),
                       found: &mut BTreeMap<String, Option<String>>| {
            let pem = pki.leaf(cert.0, cert.1).cert.trim().to_string();
            found.insert(KUBELET_RENEWED_CLIENT.into(), Some(pem));
            let rows = host_rows("worker-1", list, found, &[], now, 30).unwrap();
            let row = rows.into_iter().find(|r| r.path == KUBELET_RENEWED_CLIENT);
            row.expect("a row for the renewed certificate")
        };
        let row = renewed(
            (crate::pki::Cert::KubeletClient, Some("worker-1")),
            &mut found,
        );
        assert_eq!(row.name, "kubelet-client@worker-1 (renewed by the kubelet)");
        assert!(row.drift.is_empty(), "{:?}", row.drift);
        let row = renewed((crate::pki::Cert::FrontProxyClient, None), &mut found);
        assert_eq!(row.drift, ["not signed by the cluster CA"]);
        found.remove(KUBELET_RENEWED_CLIENT);
        let other = pki
            .leaf(crate::pki::Cert::Admin, None)
            .cert
            .trim()
            .to_string();
        found.insert("/var/lib/kubelet/pki/kubelet.crt".into(), Some(other));
        found.insert("/etc/kubernetes/pki/ca.crt".into(), None);
        let rows = host_rows("worker-1", list, &found, &[], now, 30).unwrap();
        let drifted: Vec<(&str, &str)> = rows
            .iter()
            .filter(|r| !r.drift.is_empty())
            .map(|r| (r.path.as_str(), r.drift[0].as_str()))
            .collect();
        assert_eq!(
            drifted,
            [
                ("/etc/kubernetes/pki/ca.crt", "missing on the host"),
                (
                    "/var/lib/kubelet/pki/kubelet.crt",
                    "differs from the state directory"
                )
            ]
        );
    }
}

#[cfg(test)]
mod table_tests {
    use super::*;

    fn copy(name: &str, host: Option<&str>, days_left: i64, drift: &[&str]) -> Row {
        Row {
            name: name.into(),
            host: host.map(String::from),
            path: format!("/etc/kubernetes/pki/{name}.crt"),
            subject: format!("CN={name}"),
            issuer: "CN=kubernetes-ca".into(),
            sans: Vec::new(),
            not_after: 1_800_000_000 + days_left * 86_400,
            days_left,
            expired: days_left <= 0,
            expiring: days_left > 0 && days_left < 30,
            drift: drift.iter().map(|d| d.to_string()).collect(),
        }
    }

    #[test]
    fn one_row_per_certificate_problems_first_then_each_problem_where_it_is() {
        let r = Report {
            warn_days: 30,
            rows: vec![
                copy("apiserver", None, 300, &[]),
                copy("apiserver", Some("cp-1"), 300, &[]),
                copy("apiserver", Some("cp-2"), 300, &[]),
                copy("kubelet-server@w-1", None, 200, &[]),
                copy(
                    "kubelet-server@w-1",
                    Some("w-1"),
                    5,
                    &["differs from the state directory"],
                ),
            ],
        };
        let out = text(&r, false);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("CERTIFICATE"), "{out}");
        assert!(
            lines[1].starts_with("kubelet-server@w-1"),
            "problems first: {out}"
        );
        assert!(
            lines[1].contains("state + 1 host(s)") && lines[1].ends_with("DRIFT"),
            "{out}"
        );
        assert!(
            lines[1].contains(" 5  kubernetes-ca"),
            "the soonest expiry: {out}"
        );
        assert!(
            lines[2].starts_with("apiserver") && lines[2].ends_with("ok"),
            "{out}"
        );
        assert!(lines[2].contains("state + 2 host(s)"), "{out}");
        assert!(out.contains(
            "  w-1:/etc/kubernetes/pki/kubelet-server@w-1.crt  DRIFT: differs from the state directory"
        ));
        assert!(out.contains("expires in 5 day(s)"), "{out}");
        assert!(!out.contains("subject"), "details only with -v: {out}");
        assert!(text(&r, true).contains("apiserver at cp-2:/etc/kubernetes/pki/apiserver.crt"));
        assert!(
            out.ends_with("0 expired, 1 expiring within 30 days, 1 drifted\n"),
            "{out}"
        );
    }
}
