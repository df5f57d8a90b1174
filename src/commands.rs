//! What each command does: glue between the CLI and the pipeline stages.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

use crate::cli::{CertsCommand, Cli, Command, Output, RolloutArgs, StateCommand};
use crate::inventory::{self, Loaded};
use crate::{pki, render};

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Validate(a) => validate(&a.inventory),
        Command::Render { inventory, out } => render_cmd(&inventory.inventory, &out),
        Command::Kubeconfig(a) => kubeconfig(&a.inventory),
        Command::Plan {
            inventory,
            output,
            rehash,
        } => converge(&inventory.inventory, output, None, rehash),
        Command::Apply {
            inventory,
            output,
            gate_timeout,
            rehash,
            break_lease,
        } => converge(
            &inventory.inventory,
            output,
            Some(ApplyOptions {
                gate_deadline: std::time::Duration::from_secs(gate_timeout),
                break_lease,
            }),
            rehash,
        ),
        Command::Certs(CertsCommand::List { inventory, output }) => {
            certs_list(&inventory.inventory, output)
        }
        Command::Certs(CertsCommand::RotateCa {
            inventory,
            ca,
            token_lifetime,
            rollout,
        }) => certs_rotate_ca(&inventory.inventory, ca, token_lifetime, &rollout),
        Command::Certs(CertsCommand::Check {
            inventory,
            output,
            warn_days,
        }) => certs_check(&inventory.inventory, output, warn_days),
        Command::Certs(CertsCommand::Regenerate {
            inventory,
            certs,
            hosts,
            all,
            rollout,
        }) => certs_regenerate(
            &inventory.inventory,
            &crate::certs::regenerate::Selection { certs, hosts, all },
            &rollout,
        ),
        Command::State(StateCommand::Recover(a)) => state_recover(&a.inventory),
        Command::Sandbox(cmd) => crate::sandbox::cli::run(&cmd),
        Command::Bundle(cmd) => crate::bundle::cli::run(cmd),
        Command::Schema => {
            println!("{}", serde_json::to_string_pretty(&inventory::schema())?);
            Ok(())
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut cmd = crate::cli::Cli::command();
            clap_complete::generate(shell, &mut cmd, "provisioner", &mut std::io::stdout());
            Ok(())
        }
    }
}

/// Loads the inventory, takes the component versions its bundle carries (see
/// [`crate::bundle::versions`]), and prints the warnings to stderr.
fn load(path: &Path) -> Result<Loaded> {
    let mut loaded = inventory::load(path)?;
    for w in &loaded.warnings {
        eprintln!("{w}");
    }
    // A bundle that cannot be read is reported by the commands that open it.
    let Some(bundle) = loaded.cluster.bundle.clone() else {
        return Ok(loaded);
    };
    if let Ok(m) = crate::bundle::peek_manifest(&bundle) {
        let shown = bundle.display().to_string();
        match crate::bundle::versions::adopt(&mut loaded.cluster, &m, &shown) {
            Ok(warnings) => {
                for w in warnings {
                    eprintln!("warning: {w}");
                }
            }
            Err(problems) => return Err(inventory::invalid_at(path, problems).into()),
        }
    }
    Ok(loaded)
}

fn validate(path: &Path) -> Result<()> {
    let l = load(path)?;
    let c = &l.cluster;
    println!(
        "{} is valid: cluster {}, Kubernetes {}, {} hosts ({} etcd, {} control-plane, {} worker)",
        path.display(),
        c.name,
        c.kubernetes,
        c.hosts.len(),
        c.etcd_hosts().count(),
        c.control_plane_hosts().count(),
        c.worker_hosts().count()
    );
    Ok(())
}

/// Creates what the PKI lacks and tells the operator what happened, including stale certificates.
fn ensure_pki(l: &Loaded, inventory: &Path) -> Result<pki::Pki> {
    let (pki, report) = pki::ensure(&l.cluster)
        .with_context(|| format!("preparing the PKI in {}", l.cluster.state_dir.display()))?;
    if !report.created.is_empty() {
        eprintln!(
            "created in {}: {}",
            l.cluster.state_dir.display(),
            report.created.join(", ")
        );
    }
    // A first render issues hundreds on a large cluster: a count then, the list with -v.
    match report.issued.len() {
        0 => {}
        n @ 1..=8 => eprintln!("issued {n} certificate(s): {}", report.issued.join(", ")),
        n => {
            eprintln!("issued {n} certificate(s) (-v lists them)");
            tracing::debug!(certificates = %report.issued.join(", "), "issued");
        }
    }
    if !report.stale.is_empty() {
        eprintln!(
            "warning: {} certificate(s) no longer match the inventory; they were kept and are still used:",
            report.stale.len()
        );
        for (id, why) in &report.stale {
            eprintln!("  {id}: {}", why.join("; "));
        }
        eprintln!(
            "Replace them explicitly with `provisioner certs regenerate {}` (it restarts only the services that use them).",
            inventory.display()
        );
    }
    Ok(pki)
}

fn render_cmd(path: &Path, out: &Path) -> Result<()> {
    let l = load(path)?;
    let _lock = pki::store::lock(&l.cluster.state_dir)?;
    let pki = ensure_pki(&l, path)?;
    let rendered = render::render(&l.cluster, &pki)?;
    render::write_tree(&rendered, out)?;
    for h in &rendered.hosts {
        let bins: Vec<&str> = h.binaries.iter().map(|b| b.name).collect();
        println!(
            "{}: {} files, units {}, binaries from the bundle: {}",
            h.host,
            h.files.len(),
            h.units.join(" "),
            bins.join(" ")
        );
    }
    println!(
        "wrote {} (admin kubeconfig: {})",
        out.display(),
        out.join("admin.kubeconfig").display()
    );
    Ok(())
}

fn kubeconfig(path: &Path) -> Result<()> {
    let l = load(path)?;
    // It may create the PKI (and finish an interrupted write): the same lock as every writer.
    let _lock = pki::store::lock(&l.cluster.state_dir)?;
    let pki = ensure_pki(&l, path)?;
    let rendered = render::render(&l.cluster, &pki)?;
    std::io::stdout().write_all(rendered.admin_kubeconfig.as_bytes())?;
    Ok(())
}

fn certs_list(path: &Path, output: Output) -> Result<()> {
    let l = load(path)?;
    let rows = pki::list(&l.cluster)?;
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
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
    Ok(())
}

/// A command's verdict as an exit code other than 0, 1 and 2 (documented per command).
#[derive(Debug)]
pub struct Exit(pub u8);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit code {}", self.0)
    }
}

impl std::error::Error for Exit {}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The PKI as the state directory holds it, refusing to create anything: the lifecycle commands
/// work on a cluster that exists.
fn existing_pki(l: &Loaded) -> Result<(Vec<pki::Listed>, pki::Pki)> {
    let listed = pki::list(&l.cluster)?;
    let missing: Vec<String> = listed
        .iter()
        .filter(|r| r.info.is_none())
        .map(pki::Listed::id)
        .collect();
    if !missing.is_empty() {
        anyhow::bail!(
            "the state directory {} lacks {}: this command works on a cluster built by `provisioner apply`; run that first",
            l.cluster.state_dir.display(),
            missing.join(", ")
        );
    }
    let (pki, _) = pki::ensure(&l.cluster)?;
    Ok((listed, pki))
}

fn certs_check(path: &Path, output: Output, warn_days: i64) -> Result<()> {
    use crate::certs::check;
    let l = load(path)?;
    let _lock = pki::store::lock(&l.cluster.state_dir)?;
    let (listed, pki) = existing_pki(&l)?;
    let rendered = render::render(&l.cluster, &pki)?;
    let expected = check::expected(&rendered, &pki);
    let now = now();
    let mut rows = check::state_rows(&listed, now, warn_days);
    let rep = crate::apply::Reporter::new(crate::apply::Format::Text);
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let host_rows = runtime.block_on(async {
        let conns = crate::apply::connect(&l.cluster, &rep).await?;
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
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Output::Text => print!("{}", check::text(&report)),
    }
    match report.exit_code() {
        0 => Ok(()),
        code => Err(Exit(code).into()),
    }
}

/// The options and the reporter of a rollout.
fn rollout(args: &RolloutArgs) -> (crate::certs::regenerate::Options, crate::apply::Reporter) {
    let opts = crate::certs::regenerate::Options {
        force: args.force,
        dry_run: args.dry_run,
        break_lease: args.break_lease,
        gate_timeout: std::time::Duration::from_secs(args.gate_timeout),
    };
    let rep = crate::apply::Reporter::new(match args.output {
        Output::Json => crate::apply::Format::Json,
        Output::Text => crate::apply::Format::Text,
    });
    (opts, rep)
}

fn certs_rotate_ca(
    path: &Path,
    ca: crate::cli::CaChoice,
    token_lifetime: u64,
    args: &RolloutArgs,
) -> Result<()> {
    use crate::cli::CaChoice;
    let mut l = load(path)?;
    let _lock = pki::store::lock(&l.cluster.state_dir)?;
    let bundle = open_bundle(&mut l.cluster, path)?;
    existing_pki(&l)?;
    let target = crate::certs::rotate::Target {
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
    let (opts, rep) = rollout(args);
    crate::certs::rotate::run(&l.cluster, &bundle, &target, &opts, &rep)
}

fn certs_regenerate(
    path: &Path,
    sel: &crate::certs::regenerate::Selection,
    args: &RolloutArgs,
) -> Result<()> {
    use crate::certs::regenerate;
    let mut l = load(path)?;
    let _lock = pki::store::lock(&l.cluster.state_dir)?;
    let bundle = open_bundle(&mut l.cluster, path)?;
    let (listed, mut pki) = existing_pki(&l)?;
    let c = &l.cluster;
    let ids = regenerate::select(c, &listed, sel, 30, now())?;
    if ids.is_empty() {
        println!(
            "Nothing to regenerate: every certificate matches the inventory and is valid for more than 30 days              (select some with --cert, --host or --all)."
        );
        return Ok(());
    }
    eprintln!(
        "regenerating {} certificate(s): {}",
        ids.len(),
        ids.join(", ")
    );
    let expired = regenerate::any_expired(&listed, &ids, now());
    pki.reissue(c, &ids)?;
    let rendered = render::render(c, &pki)?;
    let (opts, rep) = rollout(args);
    let inputs = crate::apply::Inputs {
        cluster: c,
        rendered: &rendered,
        pki: &pki,
        bundle: &bundle,
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let what = format!("replace {} certificate(s)", ids.len());
    let save = || pki::save_leaves(c, &pki, &ids);
    let outcome = runtime.block_on(regenerate::roll_out(
        &inputs, &what, expired, &opts, &rep, save,
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
    Ok(())
}

/// Opens and verifies the bundle (signature first when a key is configured) before any host is
/// contacted, and points containerd at its pause image.
fn open_bundle(c: &mut inventory::Cluster, path: &Path) -> Result<crate::bundle::Bundle> {
    let bundle_path = c.bundle.as_ref().with_context(|| {
        format!(
            "{} has no [cluster] bundle: set it to the bundle archive (provisioner bundle fetch) \
             or a directory holding the binaries and their manifest.toml",
            path.display()
        )
    })?;
    let t = std::time::Instant::now();
    let bundle =
        crate::bundle::Bundle::open(bundle_path, &c.state_dir, c.bundle_public_key.as_deref())?;
    tracing::debug!(
        dir = %bundle.dir.display(),
        kubernetes = %bundle.kubernetes_version,
        arch = %bundle.arch,
        ms = t.elapsed().as_millis() as u64,
        "bundle checked"
    );
    if bundle.kubernetes_version.trim_start_matches('v') != c.kubernetes.to_string() {
        anyhow::bail!(
            "the bundle holds Kubernetes {} but the inventory asks for {}; use a matching bundle",
            bundle.kubernetes_version,
            c.kubernetes
        );
    }
    if let Some(fp) = &bundle.signed_by {
        eprintln!("bundle signature valid ({fp})");
    }
    let v = &mut c.versions;
    use_bundled_image(
        &mut v.pause_image,
        v.pause_image_pinned,
        &bundle,
        BundledImage::Pause,
    )?;
    if c.addons.coredns {
        use_bundled_image(
            &mut v.coredns_image,
            v.coredns_image_pinned,
            &bundle,
            BundledImage::Coredns,
        )?;
    }
    Ok(bundle)
}

/// The images the cluster itself runs, which a bundle carries under these names.
#[derive(Clone, Copy)]
enum BundledImage {
    Pause,
    Coredns,
}

impl BundledImage {
    /// (name in the bundle, inventory key under [versions])
    fn names(self) -> (&'static str, &'static str) {
        match self {
            BundledImage::Pause => ("pause", "pause_image"),
            BundledImage::Coredns => ("coredns", "coredns_image"),
        }
    }
}

/// Points `setting` at the image the bundle carries for `role`. An image the inventory pins
/// must be the bundled one: air-gapped nodes cannot pull another.
fn use_bundled_image(
    setting: &mut String,
    pinned: bool,
    bundle: &crate::bundle::Bundle,
    role: BundledImage,
) -> Result<()> {
    let (name, key) = role.names();
    match (bundle.image(name), role) {
        (Some(b), _) if *setting == b.reference => {}
        (Some(b), _) if !pinned => *setting = b.reference.clone(),
        (Some(b), _) => anyhow::bail!(
            "[versions] {key} is {setting} but the bundle carries {}; remove the setting (the \
             bundled image is used) or use a bundle with that image",
            b.reference
        ),
        (None, BundledImage::Pause) => eprintln!(
            "warning: the bundle carries no pause image: nodes must pull {setting} themselves, \
             which fails on an air-gapped site (add it with `provisioner bundle fetch --image`)"
        ),
        (None, BundledImage::Coredns) => anyhow::bail!(
            "the bundle carries no CoreDNS image, which the cluster DNS runs: add {setting} with \
             `provisioner bundle fetch --image coredns.tar`, or set [addons] coredns = false"
        ),
    }
    Ok(())
}

/// What `apply` adds to `plan`.
struct ApplyOptions {
    gate_deadline: std::time::Duration,
    break_lease: bool,
}

/// `plan` and `apply`: survey the hosts, plan, and (for apply) execute under the cluster's lease.
fn converge(path: &Path, output: Output, apply: Option<ApplyOptions>, rehash: bool) -> Result<()> {
    let mut l = load(path)?;
    let _lock = pki::store::lock(&l.cluster.state_dir)?;
    let bundle = open_bundle(&mut l.cluster, path)?;
    let c = &l.cluster;
    // JSON events are apply's output; plan prints its JSON plan alone on stdout.
    let format = if output == Output::Json && apply.is_some() {
        crate::apply::Format::Json
    } else {
        crate::apply::Format::Text
    };
    let rep = crate::apply::Reporter::new(format);
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        // The hosts' identity is checked before the PKI is created: a missing state directory
        // must not gain a new cluster's CAs while the hosts run another's.
        let conns = crate::apply::open(c, &rep).await?;
        let lease = match &apply {
            Some(a) => {
                Some(crate::apply::lease::take(c, &conns, "apply", a.break_lease, &rep).await?)
            }
            None => None,
        };
        let result = converge_on(&l, path, &bundle, conns, output, apply, rehash, &rep).await;
        if let Some(lease) = lease {
            lease.release().await;
        }
        result
    })
}

#[allow(clippy::too_many_arguments)]
async fn converge_on(
    l: &Loaded,
    path: &Path,
    bundle: &crate::bundle::Bundle,
    conns: std::collections::BTreeMap<String, crate::transport::Connection>,
    output: Output,
    apply: Option<ApplyOptions>,
    rehash: bool,
    rep: &crate::apply::Reporter,
) -> Result<()> {
    let c = &l.cluster;
    let format = rep.format();
    let pki = ensure_pki(l, path)?;
    let rendered = render::render(c, &pki)?;
    let inputs = crate::apply::Inputs {
        cluster: c,
        rendered: &rendered,
        pki: &pki,
        bundle,
    };
    let survey = crate::apply::survey(&inputs, conns, rehash, rep).await?;
    let plan = crate::apply::make_plan(&survey);
    let Some(apply) = apply else {
        match output {
            Output::Json => println!("{}", serde_json::to_string_pretty(&plan)?),
            Output::Text => print!("{}", crate::plan::text(&plan)),
        }
        return Ok(());
    };
    let outcome = if plan.is_empty() {
        rep.note("Nothing to do: every host matches the inventory.");
        crate::apply::Outcome::default()
    } else {
        if format == crate::apply::Format::Text {
            eprint!("{}", crate::plan::text(&plan));
        }
        crate::apply::execute(&inputs, &survey, &plan, rep, apply.gate_deadline).await?
    };
    match output {
        Output::Json => println!("{}", serde_json::json!({ "summary": outcome })),
        Output::Text => eprintln!(
            "done in {:.1}s: {} file(s) written, {} service(s) started, {} restarted ({:.1}s transfer, {:.1}s starting and waiting)",
            outcome.seconds, outcome.files_written, outcome.units_started, outcome.units_restarted, outcome.transfer_seconds, outcome.wait_seconds
        ),
    }
    Ok(())
}

/// `state recover`: rebuilds a missing state directory from the hosts.
fn state_recover(path: &Path) -> Result<()> {
    use crate::pki::recover;
    let l = load(path)?;
    let c = &l.cluster;
    for sub in ["pki", "secrets"] {
        let dir = c.state_dir.join(sub);
        if std::fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_some()) {
            anyhow::bail!(
                "{} already holds a state directory ({sub}/ is there); recover only rebuilds a \
                 missing one and never overwrites: move {} away first",
                c.state_dir.display(),
                c.state_dir.display()
            );
        }
    }
    let _lock = pki::store::lock(&c.state_dir)?;
    // Where every secret sits on the hosts: a render of the same inventory with a throw-away PKI.
    let scratch = tempfile::tempdir().context("creating a temporary directory")?;
    let mut template = c.clone();
    template.state_dir = scratch.path().to_path_buf();
    let (template_pki, _) = pki::ensure(&template)?;
    let locations = recover::locate(&render::render(&template, &template_pki)?, &template_pki);
    let mut wanted: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for loc in locations.values().flatten() {
        let paths = wanted.entry(loc.host.clone()).or_default();
        if !paths.contains(&loc.path) {
            paths.push(loc.path.clone());
        }
    }

    let rep = crate::apply::Reporter::new(crate::apply::Format::Text);
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let files = runtime.block_on(async {
        let conns = crate::apply::connect(c, &rep).await?;
        rep.phase("read keys and certificates");
        let mut files = recover::HostFiles::new();
        for (host, paths) in &wanted {
            let conn = &conns[host];
            let what = "read the cluster's keys and certificates";
            let out = conn
                .run_script(&crate::shell::read_files(paths), what)
                .await?;
            let out = conn.check(what, out)?;
            let parsed = crate::shell::parse_files(&out.stdout)
                .map_err(|e| anyhow::anyhow!("{host}: reading its files: {e}"))?;
            files.insert(host.clone(), parsed);
        }
        anyhow::Ok(files)
    })?;
    let found = recover::assemble(&locations, &files).map_err(|problems| {
        anyhow::anyhow!(
            "cannot recover the state directory from these hosts; nothing was written:\n  {}",
            problems.join("\n  ")
        )
    })?;
    recover::write(&c.state_dir, &found, &recover::leaf_files(c))?;
    let (_, report) = pki::ensure(c)?;
    let certs = found
        .keys()
        .filter(|s| matches!(s, recover::Slot::LeafCert(_)))
        .count();
    println!(
        "recovered {} from {} host(s): the 3 CAs with their keys, {certs} certificate(s) with their keys, \
         the service-account key pair and the encryption-at-rest key",
        c.state_dir.display(),
        files.len()
    );
    if !report.issued.is_empty() {
        println!(
            "issued anew (no host holds them): {}",
            report.issued.join(", ")
        );
    }
    println!(
        "next: `provisioner plan {}` should show no change",
        path.display()
    );
    Ok(())
}
