//! What preparing the PKI did, told to the operator; and the PKI of a cluster that exists.

use std::path::Path;

use anyhow::{bail, Result};

use super::{ensure, list, Listed, Pki};
use crate::inventory::Cluster;

#[derive(Debug, Default)]
pub struct Report {
    /// CAs and keys created by this run.
    pub created: Vec<String>,
    /// Leaf certificates issued by this run (they did not exist).
    pub issued: Vec<String>,
    /// Existing certificates that no longer match the inventory, with the reasons.
    pub stale: Vec<(String, Vec<String>)>,
    /// Existing certificates replaced by this run, with the reasons: only the API server's,
    /// when control-plane hosts were added (its SANs name every one).
    pub reissued: Vec<(String, Vec<String>)>,
}

impl Report {
    /// The lines that tell the operator what happened, stale certificates included: those are
    /// kept, and `inventory` names the inventory in the command that replaces them.
    pub fn notes(&self, state_dir: &Path, inventory: &Path) -> Vec<String> {
        let mut out = Vec::new();
        if !self.created.is_empty() {
            out.push(format!(
                "created in {}: {}",
                state_dir.display(),
                self.created.join(", ")
            ));
        }
        // A first render issues hundreds on a large cluster: a count then, the list with -v.
        match self.issued.len() {
            0 => {}
            n @ 1..=8 => out.push(format!(
                "issued {n} certificate(s): {}",
                self.issued.join(", ")
            )),
            n => {
                out.push(format!("issued {n} certificate(s) (-v lists them)"));
                tracing::debug!(certificates = %self.issued.join(", "), "issued");
            }
        }
        for (id, why) in &self.reissued {
            out.push(format!(
                "reissued {id} for the new control-plane host(s) ({}); the API servers restart one at a time to use it",
                why.join("; ")
            ));
        }
        if !self.stale.is_empty() {
            out.push(format!(
                "warning: {} certificate(s) no longer match the inventory; they were kept and are still used:",
                self.stale.len()
            ));
            for (id, why) in &self.stale {
                out.push(format!("  {id}: {}", why.join("; ")));
            }
            out.push(format!(
                "Replace them explicitly with `provisioner certs regenerate {}` (it restarts only the services that use them).",
                inventory.display()
            ));
        }
        out
    }
}

/// The PKI as the state directory holds it, refusing to create anything: the lifecycle
/// commands work on a cluster that exists.
pub fn existing(cluster: &Cluster) -> Result<(Vec<Listed>, Pki)> {
    let listed = list(cluster)?;
    let missing: Vec<String> = listed
        .iter()
        .filter(|r| r.info.is_none())
        .map(Listed::id)
        .collect();
    if !missing.is_empty() {
        bail!(
            "the state directory {} lacks {}: this command works on a cluster built by `provisioner apply`; run that first",
            cluster.state_dir.display(),
            missing.join(", ")
        );
    }
    let (pki, _) = ensure(cluster)?;
    Ok((listed, pki))
}
