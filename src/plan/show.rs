//! Prints a plan for people. Secret files are named, never shown.

use std::fmt::Write;

use super::{FileAction, Plan, UnitAction};
use crate::component::Release;

pub fn text(plan: &Plan) -> String {
    let mut out = String::new();
    for m in &plan.versions {
        let _ = writeln!(out, "upgrade {} on {} host(s)", m.describe(), m.hosts.len());
    }
    if !plan.versions.is_empty() {
        out.push_str(UPGRADE_ORDER);
        if plan
            .versions
            .iter()
            .any(|m| m.release == Release::Etcd.name() && m.changes_minor())
        {
            out.push_str(
                "  etcd changes minor: its data cannot go back to the old one after this \
                 (only a snapshot restore can)\n",
            );
        }
    }
    for h in &plan.hosts {
        if h.is_empty() {
            let _ = writeln!(out, "{}: no changes", h.host);
            continue;
        }
        let count = |a| h.files.iter().filter(|c| c.action == a).count();
        let _ = writeln!(
            out,
            "{}: {} to create, {} to update, {} to fix the mode of; {} service action(s)",
            h.host,
            count(FileAction::Create),
            count(FileAction::Update),
            count(FileAction::Permissions),
            h.units.len()
        );
        for (d, mode) in &h.dirs {
            let _ = writeln!(out, "  + {d}/ ({mode:04o})");
        }
        for c in &h.files {
            let sign = match c.action {
                FileAction::Create => '+',
                FileAction::Update => '~',
                FileAction::Permissions => 'm',
            };
            let secret = if c.secret { ", secret" } else { "" };
            let _ = writeln!(out, "  {sign} {} ({:04o}{secret})", c.path, c.mode);
        }
        for r in &h.removes {
            let _ = writeln!(out, "  - {r} (no longer wanted)");
        }
        let follow_up = h.follow_up.files_part();
        if !follow_up.is_empty() {
            let _ = writeln!(out, "  then {}", follow_up.describe());
        }
        for l in &h.links {
            let from = l.from.as_deref().unwrap_or("(a file)");
            let _ = writeln!(out, "  > {} → {} (was {from})", l.path, l.target);
        }
        for u in &h.units {
            let verb = match u.action {
                UnitAction::Start => "start",
                UnitAction::Restart => "restart",
                UnitAction::Enable => "enable",
            };
            let _ = writeln!(out, "  {verb} {}: {}", u.unit, u.reason);
        }
        for i in &h.images {
            let _ = writeln!(
                out,
                "  import image {} ({}): {}",
                i.image.reference, i.image.digest, i.reason
            );
        }
    }
    for h in &plan.etcd_joins {
        let _ = writeln!(
            out,
            "{h}: its etcd member joins the running cluster: added as a learner just before it \
             starts, promoted to a voting member once caught up (one new member per apply)"
        );
    }
    for h in &plan.removals {
        let etcd = if plan.etcd_leaves.contains(h) {
            " (refused unless the members that stay keep a quorum), remove its etcd member"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "{h}: remove (installed, no longer in the inventory): drain, delete its Node{etcd}, \
             reset the host; apply needs --remove {h}"
        );
    }
    if plan.is_empty() && plan.removals.is_empty() {
        out.push_str("Nothing to do: every host matches the inventory.\n");
    }
    for r in &plan.refused {
        let _ = writeln!(out, "refused: {r}");
    }
    out
}

/// How `apply` walks a version change, in upstream's version-skew order.
const UPGRADE_ORDER: &str =
    "  order: an etcd snapshot, then etcd one member at a time (every member healthy \
     before the next); the API servers one host at a time, then the controller-managers and \
     schedulers; containerd one worker at a time; then the workers in batches of --max-unavailable (cordon, drain, upgrade, \
     Node Ready at the new version, uncordon). A failed gate switches that host back to its \
     previous version and stops.\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membership_changes_are_explained() {
        let plan = Plan {
            removals: vec!["cp-4".into(), "worker-1".into()],
            etcd_joins: vec!["cp-5".into()],
            etcd_leaves: vec!["cp-4".into()],
            ..Plan::default()
        };
        let out = text(&plan);
        assert!(
            out.contains("cp-5: its etcd member joins the running cluster: added as a learner"),
            "{out}"
        );
        assert!(
            out.contains(
                "cp-4: remove (installed, no longer in the inventory): drain, delete its Node \
                 (refused unless the members that stay keep a quorum), remove its etcd member, \
                 reset the host; apply needs --remove cp-4"
            ),
            "{out}"
        );
        assert!(
            out.contains("worker-1: remove (installed, no longer in the inventory): drain, delete its Node, reset the host"),
            "{out}"
        );
    }
}
