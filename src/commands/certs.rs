//! `certs list`, `certs check`, `certs regenerate` and `certs rotate-ca`.

use std::path::Path;

use anyhow::{Context, Result};

use super::{emit, existing_pki, load, now, SUCCESS};
use crate::apply::workflow::Stage;
use crate::apply::{Format, Session};
use crate::cli::{Output, RolloutArgs};
use crate::{pki, render};

pub(super) fn certs_list(path: &Path, output: Output) -> Result<u8> {
    let l = load(path)?;
    let rows = pki::list(&l.cluster)?;
    if output == Output::Json {
        emit(output, &rows, |_| String::new())?;
        return Ok(SUCCESS);
    }
    let mut missing = 0;
    for r in &rows {
        let name = r.id();
        match &r.info {
            None => {
                missing += 1;
                println!("{name}\n  not issued yet ({})", r.file);
            }
            Some(i) => {
                println!(
                    "{name}\n  subject:   {}\n  issuer:    {}",
                    i.subject, i.issuer
                );
                if !i.sans().is_empty() {
                    println!("  SANs:      {}", i.sans().join(", "));
                }
                println!("  not after: {}", crate::pki::inspect::rfc3339(i.not_after));
                if !r.stale.is_empty() {
                    println!("  STALE:     {}", r.stale.join("; "));
                }
            }
        }
    }
    if missing > 0 {
        eprintln!("{missing} certificate(s) not issued yet: `provisioner render` issues them.");
    }
    Ok(SUCCESS)
}

pub(super) fn certs_check(
    path: &Path,
    output: Output,
    warn_days: i64,
    verbose: bool,
) -> Result<u8> {
    use crate::certs::check;
    let l = load(path)?;
    let session = Session::start(&l.cluster.state_dir, Format::Text)?;
    let rep = &session.rep;
    Stage::Pki.start(rep);
    let (listed, pki) = existing_pki(&l)?;
    Stage::Render.start(rep);
    let rendered = render::render(&l.cluster, &pki)?;
    let expected = check::expected(&rendered, &pki);
    let now = now();
    let mut rows = check::state_rows(&listed, now, warn_days);
    let host_rows = session.block_on(async {
        let conns = crate::apply::connect(&l.cluster, rep).await?;
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
    let report = check::Report { warn_days, rows };
    emit(output, &report, |r| check::text(r, verbose))?;
    Ok(report.exit_code())
}

/// The options and the output format of a rollout.
fn rollout(args: &RolloutArgs) -> (crate::apply::rollout::Options, Format) {
    let opts = crate::apply::rollout::Options {
        force: args.force,
        dry_run: args.dry_run,
        break_lease: args.break_lease,
        gate_timeout: std::time::Duration::from_secs(args.gate_timeout),
    };
    let format = match args.output {
        Output::Json => Format::Json,
        Output::Text => Format::Text,
    };
    (opts, format)
}

pub(super) fn certs_rotate_ca(
    path: &Path,
    ca: crate::cli::CaChoice,
    token_lifetime: u64,
    args: &RolloutArgs,
) -> Result<u8> {
    use crate::cli::CaChoice;
    let mut l = load(path)?;
    let (opts, format) = rollout(args);
    let session = Session::start(&l.cluster.state_dir, format)?;
    let bundle = crate::bundle::cluster::open_for(&mut l.cluster, path)?;
    existing_pki(&l)?;
    let target = crate::apply::rotate_ca::Target {
        cas: match ca {
            CaChoice::Cluster => vec![pki::Ca::Cluster],
            CaChoice::Etcd => vec![pki::Ca::Etcd],
            CaChoice::FrontProxy => vec![pki::Ca::FrontProxy],
            CaChoice::All => pki::Ca::ALL.to_vec(),
            CaChoice::ServiceAccount => Vec::new(),
        },
        service_account: ca == CaChoice::ServiceAccount,
        token_lifetime: std::time::Duration::from_secs(token_lifetime),
    };
    crate::apply::rotate_ca::run(&l.cluster, &bundle, &target, &opts, &session)?;
    Ok(SUCCESS)
}

pub(super) fn certs_regenerate(
    path: &Path,
    sel: &crate::certs::regenerate::Selection,
    args: &RolloutArgs,
) -> Result<u8> {
    use crate::certs::regenerate;
    let mut l = load(path)?;
    let (opts, format) = rollout(args);
    let session = Session::start(&l.cluster.state_dir, format)?;
    let bundle = crate::bundle::cluster::open_for(&mut l.cluster, path)?;
    let rep = &session.rep;
    Stage::Pki.start(rep);
    let (listed, mut pki) = existing_pki(&l)?;
    let c = &l.cluster;
    let ids = regenerate::select(c, &listed, sel, 30, now())?;
    if ids.is_empty() {
        println!(
            "Nothing to regenerate: every certificate matches the inventory and is valid for more than 30 days              (select some with --cert, --host or --all)."
        );
        return Ok(SUCCESS);
    }
    eprintln!(
        "regenerating {} certificate(s): {}",
        ids.len(),
        ids.join(", ")
    );
    let expired = regenerate::any_expired(&listed, &ids, now());
    pki.reissue(c, &ids)?;
    Stage::Render.start(rep);
    let rendered = render::render(c, &pki)?;
    let inputs = crate::apply::Inputs {
        cluster: c,
        rendered: &rendered,
        pki: &pki,
        bundle: &bundle,
    };
    let what = format!("replace {} certificate(s)", ids.len());
    let save = || pki::save_leaves(c, &pki, &ids);
    let outcome = session.block_on(crate::apply::rollout::roll_out(
        &inputs, &what, expired, &opts, rep, save,
    ))?;
    if let Some(outcome) = outcome {
        match args.output {
            Output::Json => println!("{}", serde_json::json!({ "summary": outcome })),
            Output::Text => eprintln!(
                "done in {:.1}s: {} certificate(s) regenerated, {} file(s) written, {} service(s) restarted",
                outcome.seconds,
                ids.len(),
                outcome.files_written,
                outcome.units_restarted
            ),
        }
    }
    Ok(SUCCESS)
}
