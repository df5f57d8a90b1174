//! `certs list`, `certs check`, `certs regenerate` and `certs rotate-ca`.

use anyhow::Result;

use super::output::{emit, summary};
use super::{load, now, SUCCESS};
use crate::apply::regenerate::{self, Regenerated};
use crate::apply::{check_certs, rotate_ca, Session};
use crate::certs::regenerate::Selection;
use crate::cli::{CaChoice, CheckArgs, ListArgs, RegenerateArgs, RotateCaArgs};
use crate::pki::{self, Ca};

pub(super) fn list(a: &ListArgs) -> Result<u8> {
    let l = load(&a.inventory.inventory)?;
    let rows = pki::list(&l.cluster)?;
    emit(a.output, &rows, |r| crate::certs::list::text(r))?;
    let missing = crate::certs::list::not_issued(&rows);
    if missing > 0 && a.output == crate::cli::Output::Text {
        eprintln!("{missing} certificate(s) not issued yet: `provisioner render` issues them.");
    }
    Ok(SUCCESS)
}

pub(super) fn check(a: &CheckArgs, verbose: bool) -> Result<u8> {
    let l = load(&a.inventory.inventory)?;
    let session = Session::start(&l.cluster.state_dir, crate::apply::Format::Text)?;
    let report = check_certs::run(&l.cluster, &session, a.warn_days, now())?;
    emit(a.output, &report, |r| crate::certs::check::text(r, verbose))?;
    Ok(report.exit_code())
}

pub(super) fn rotate_ca(a: &RotateCaArgs) -> Result<u8> {
    let path = &a.inventory.inventory;
    let mut l = load(path)?;
    let session = Session::start(&l.cluster.state_dir, a.rollout.output.format())?;
    let bundle = crate::bundle::cluster::open_for(&mut l.cluster, path)?;
    pki::existing(&l.cluster)?;
    let target = rotate_ca::Target {
        cas: match a.ca {
            CaChoice::Cluster => vec![Ca::Cluster],
            CaChoice::Etcd => vec![Ca::Etcd],
            CaChoice::FrontProxy => vec![Ca::FrontProxy],
            CaChoice::All => Ca::ALL.to_vec(),
            CaChoice::ServiceAccount => Vec::new(),
        },
        service_account: a.ca == CaChoice::ServiceAccount,
        token_lifetime: std::time::Duration::from_secs(a.token_lifetime),
    };
    rotate_ca::run(&l.cluster, &bundle, &target, &a.rollout.options(), &session)?;
    Ok(SUCCESS)
}

pub(super) fn regenerate(a: &RegenerateArgs) -> Result<u8> {
    let path = &a.inventory.inventory;
    let mut l = load(path)?;
    let session = Session::start(&l.cluster.state_dir, a.rollout.output.format())?;
    let bundle = crate::bundle::cluster::open_for(&mut l.cluster, path)?;
    let sel = Selection {
        certs: a.certs.clone(),
        hosts: a.hosts.clone(),
        all: a.all,
    };
    let opts = a.rollout.options();
    match regenerate::run(&l.cluster, &bundle, &sel, &opts, &session, now())? {
        Regenerated::Nothing => println!(
            "Nothing to regenerate: every certificate matches the inventory and is valid for more than 30 days (select some with --cert, --host or --all)."
        ),
        Regenerated::Done { outcome: None, .. } => {}
        Regenerated::Done {
            ids,
            outcome: Some(o),
        } => summary(a.rollout.output, &o, |o| {
            format!(
                "done in {:.1}s: {} certificate(s) regenerated, {} file(s) written, {} service(s) restarted",
                o.seconds,
                ids.len(),
                o.files_written,
                o.units_restarted
            )
        }),
    }
    Ok(SUCCESS)
}
