//! `certs check`: every certificate in the state directory and on every host, read over SSH
//! (no private key leaves a host), judged by [`crate::certs::check`].

use anyhow::{Context, Result};

use super::stage::Stage;
use super::Session;
use crate::certs::check::{self, Report};
use crate::inventory::Cluster;

pub fn run(c: &Cluster, session: &Session, warn_days: i64, now: i64) -> Result<Report> {
    let rep = &session.rep;
    Stage::Pki.start(rep);
    let (listed, pki) = crate::pki::existing(c)?;
    let rendered = super::render(c, &pki, rep)?;
    let expected = check::expected(&rendered, &pki);
    let mut rows = check::state_rows(&listed, now, warn_days);
    let host_rows = session.block_on(async {
        let conns = super::connect(c, rep).await?;
        Stage::ReadCertificates.start(rep);
        let mut out = Vec::new();
        for (host, list) in &expected {
            let o = conns[host]
                .run_checked(&check::read_script(list))
                .await
                .with_context(|| format!("{host}: reading its certificates"))?;
            let found = check::parse_read(&o.stdout_text(), list);
            out.extend(check::host_rows(host, list, &found, &rows, now, warn_days)?);
        }
        anyhow::Ok(out)
    })?;
    rows.extend(host_rows);
    Ok(Report { warn_days, rows })
}
