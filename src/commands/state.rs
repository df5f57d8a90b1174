//! `state recover`.

use std::path::Path;

use anyhow::Result;

use super::{load, SUCCESS};
use crate::apply::{recover, Format, Session};

/// `state recover`: rebuilds a missing state directory from the hosts.
pub(super) fn recover(path: &Path) -> Result<u8> {
    let l = load(path)?;
    let c = &l.cluster;
    let session = Session::start(&c.state_dir, Format::Text)?;
    let r = recover::run(c, &session)?;
    println!(
        "recovered {} from {} host(s): the 3 CAs with their keys, {} certificate(s) with their keys, \
         the service-account key pair and the encryption-at-rest key",
        c.state_dir.display(),
        r.hosts,
        r.certificates
    );
    if !r.issued.is_empty() {
        println!("issued anew (no host holds them): {}", r.issued.join(", "));
    }
    println!(
        "next: `provisioner plan {}` should show no change",
        path.display()
    );
    Ok(SUCCESS)
}
