//! `certs list` for people: each certificate's subject, issuer, SANs, expiry and staleness.

use std::fmt::Write;

use crate::pki::{inspect, Listed};

pub fn text(rows: &[Listed]) -> String {
    let mut out = String::new();
    for r in rows {
        let name = r.id();
        let Some(i) = &r.info else {
            let _ = writeln!(out, "{name}\n  not issued yet ({})", r.file);
            continue;
        };
        let _ = writeln!(
            out,
            "{name}\n  subject:   {}\n  issuer:    {}",
            i.subject, i.issuer
        );
        if !i.sans().is_empty() {
            let _ = writeln!(out, "  SANs:      {}", i.sans().join(", "));
        }
        let _ = writeln!(out, "  not after: {}", inspect::rfc3339(i.not_after));
        if !r.stale.is_empty() {
            let _ = writeln!(out, "  STALE:     {}", r.stale.join("; "));
        }
    }
    out
}

/// How many of `rows` are not issued yet.
pub fn not_issued(rows: &[Listed]) -> usize {
    rows.iter().filter(|r| r.info.is_none()).count()
}
