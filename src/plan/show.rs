//! Prints a plan for people. Secret files are named, never shown.

use std::fmt::Write;

use super::{FileAction, Plan, UnitAction};

pub fn text(plan: &Plan) -> String {
    let mut out = String::new();
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
    if plan.is_empty() {
        out.push_str("Nothing to do: every host matches the inventory.\n");
    }
    out
}
