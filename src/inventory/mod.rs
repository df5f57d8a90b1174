//! The inventory: read, shape-checked, validated into the model.

pub mod model;
mod problem;
mod raw;
pub mod reference;
mod shape;
mod source;
mod validate;
pub mod version;

use std::path::Path;

pub use model::*;
pub use problem::{Invalid, KeyPath, Problem, Severity};
pub use validate::expand_home;

/// A valid inventory and the warnings it still deserves.
pub struct Loaded {
    pub cluster: Cluster,
    pub warnings: Vec<Problem>,
}

/// The JSON Schema of the inventory file (what `provisioner schema` prints).
pub fn schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(raw::Inventory)).expect("schema serializes")
}

/// Reads and validates an inventory file. Any problem in it comes back as `Invalid`, listing all
/// of them; an unreadable file is an `Invalid` with a single problem too, since both mean the
/// operator's input has to change.
pub fn load(path: &Path) -> Result<Loaded, Invalid> {
    let file = path.display().to_string();
    tracing::debug!(file, "reading the inventory");
    let text = std::fs::read_to_string(path).map_err(|e| Invalid {
        file: file.clone(),
        problems: vec![Problem::error(
            KeyPath::root(),
            format!("cannot read the file: {e}"),
        )],
    })?;
    let base_dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let loaded = parse(&text, base_dir).map_err(|problems| {
        tracing::debug!(file, problems = problems.len(), "the inventory is invalid");
        Invalid {
            file: file.clone(),
            problems,
        }
    })?;
    tracing::debug!(
        file,
        cluster = %loaded.cluster.name,
        hosts = loaded.cluster.hosts.len(),
        warnings = loaded.warnings.len(),
        "the inventory is valid"
    );
    Ok(loaded)
}

/// Seconds a remote command may run unless `[ssh] command_timeout` says otherwise.
pub const DEFAULT_COMMAND_TIMEOUT: u64 = 600;

/// Validates inventory text; relative paths in it are taken from `base_dir`.
pub fn parse(text: &str, base_dir: &Path) -> Result<Loaded, Vec<Problem>> {
    let source = source::Source::parse(text.to_string()).map_err(|(message, location)| {
        vec![Problem {
            location,
            ..Problem::error(KeyPath::root(), format!("TOML syntax: {message}"))
        }]
    })?;
    let locate = |mut problems: Vec<Problem>| {
        for p in &mut problems {
            p.location = p.location.or_else(|| source.locate(&p.path));
        }
        problems
    };

    let shape_problems = shape::check(&source, &schema());
    if !shape_problems.is_empty() {
        return Err(locate(shape_problems));
    }
    // The shape check mirrors the types, so this only fails if the two ever drift apart; report
    // it as a problem rather than trusting that.
    let raw: raw::Inventory = toml::from_str(source.text()).map_err(|e| {
        let path = e
            .span()
            .map(|s| source.path_at(s.start))
            .unwrap_or_default();
        locate(vec![Problem::error(path, e.message().to_string())])
    })?;

    let (cluster, problems) = validate::validate(&raw, base_dir);
    let problems = locate(problems);
    match cluster {
        Some(cluster) => Ok(Loaded {
            cluster,
            warnings: problems,
        }),
        None => Err(problems),
    }
}

/// The repository's `inventory.toml` (3 control-plane + 2 workers) with its state directory
/// under `dir`, for unit tests.
#[cfg(test)]
pub fn bundled_for_test(dir: &Path) -> Cluster {
    let text = include_str!("../../inventory.toml");
    let mut loaded = parse(text, dir).expect("the bundled inventory is valid");
    loaded.cluster.state_dir = dir.join("state");
    loaded.cluster
}

/// Problems found after loading (against the bundle, say), reported like validation problems:
/// each at its key, with the line and column the file has it at.
pub fn invalid_at(file: &Path, problems: Vec<(&str, String)>) -> Invalid {
    let source = std::fs::read_to_string(file)
        .ok()
        .and_then(|t| source::Source::parse(t).ok());
    Invalid {
        file: file.display().to_string(),
        problems: problems
            .into_iter()
            .map(|(key, message)| {
                let path = KeyPath::parse(key);
                let location = source.as_ref().and_then(|s| s.locate(&path));
                Problem {
                    location,
                    ..Problem::error(path, message)
                }
            })
            .collect(),
    }
}
