//! `status` as people read it.

use super::ClusterStatus;

/// One cluster as people read it: a line per host, then the cluster-wide checks and findings.
pub fn text(s: &ClusterStatus) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let verdict = if s.healthy() { "healthy" } else { "UNHEALTHY" };
    let _ = writeln!(out, "{} ({}): {verdict}", s.cluster, s.inventory.display());
    if s.hosts.is_empty() {
        // Nothing was asked: the inventory, state directory or bundle could not be read.
        for p in &s.problems {
            let _ = writeln!(out, "  problem: {p}");
        }
        return out;
    }
    let rows: Vec<[String; 5]> = s
        .hosts
        .iter()
        .map(|h| {
            let active = h.units.values().filter(|v| *v == "active").count();
            let mut by_version: Vec<(String, Vec<String>)> = Vec::new();
            for (u, v) in &h.versions {
                match by_version.iter_mut().find(|(x, _)| x == v) {
                    Some((_, units)) => units.push(u.to_string()),
                    None => by_version.push((v.clone(), vec![u.to_string()])),
                }
            }
            let versions: Vec<String> = by_version
                .iter()
                .map(|(v, units)| format!("{} {v}", units.join(" ")))
                .collect();
            [
                h.host.clone(),
                if h.reachable { "ok" } else { "UNREACHABLE" }.to_string(),
                format!("{active}/{} active", h.units.len()),
                h.soonest_expiry.as_ref().map_or("-".into(), |e| {
                    format!("{}d {}", e.days_left, e.certificate)
                }),
                versions.join(", "),
            ]
        })
        .collect();
    let header = ["HOST", "SSH", "UNITS", "CERTS EXPIRE", "VERSIONS"].map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.len());
        }
    }
    for r in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "  {}", line.join("  ").trim_end());
    }
    if let Some(e) = &s.etcd {
        let _ = writeln!(
            out,
            "  etcd {}: {}/{} member(s) answer, leader {}, database {:.1} MiB",
            e.version,
            e.answering,
            e.members,
            e.leader.as_deref().unwrap_or("none"),
            e.db_size_bytes as f64 / (1 << 20) as f64
        );
    }
    let mut cluster = vec![format!(
        "API server {}",
        if s.api_ready { "ready" } else { "NOT ready" }
    )];
    if let Some((ready, total)) = s.nodes_ready {
        cluster.push(format!("{ready}/{total} worker Node(s) Ready"));
    }
    if let Some(e) = &s.soonest_expiry {
        cluster.push(format!(
            "soonest certificate expiry: {} in {} day(s)",
            e.certificate, e.days_left
        ));
    }
    cluster.push(match s.plan_changes {
        Some(0) => "plan: no change".into(),
        Some(n) => format!("plan: {n} change(s)"),
        None => "plan: unknown".into(),
    });
    let _ = writeln!(out, "  {}", cluster.join("; "));
    for p in &s.problems {
        let _ = writeln!(out, "  problem: {p}");
    }
    out
}
