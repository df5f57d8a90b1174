//! Writes a rendered cluster to a directory: `DIR/<host>/<absolute path>` with the modes the
//! files will have on the host, and `DIR/admin.kubeconfig`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{bail, Context, Result};

use super::Rendered;

/// Marks a directory as render output, so a later render may replace it and nothing else.
const MARKER: &str = ".provisioner-render";

pub fn write_tree(r: &Rendered, out: &Path) -> Result<()> {
    if out.exists() {
        let empty = fs::read_dir(out)
            .with_context(|| format!("reading {}", out.display()))?
            .next()
            .is_none();
        if !empty && !out.join(MARKER).exists() {
            bail!(
                "{} is not empty and was not written by `provisioner render`; choose a new or empty directory",
                out.display()
            );
        }
        fs::remove_dir_all(out).with_context(|| format!("replacing {}", out.display()))?;
    }
    // The tree holds private keys: only its owner may enter it.
    create_dir(out, 0o700)?;
    fs::write(out.join(MARKER), "written by provisioner render\n")?;
    for h in &r.hosts {
        let root = out.join(&h.host);
        create_dir(&root, 0o700)?;
        for (dir, mode) in &h.dirs {
            create_dir(&root.join(dir.trim_start_matches('/')), *mode)?;
        }
        for f in &h.files {
            let path = root.join(f.path.trim_start_matches('/'));
            if let Some(parent) = path.parent() {
                if !parent.exists() {
                    create_dir(parent, 0o755)?;
                }
            }
            write_file(&path, &f.content, f.mode)?;
        }
    }
    write_file(
        &out.join("admin.kubeconfig"),
        r.admin_kubeconfig.as_bytes(),
        0o600,
    )
}

fn create_dir(path: &Path, mode: u32) -> Result<()> {
    fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", path.display()))
}

fn write_file(path: &Path, content: &[u8], mode: u32) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(content)
        .with_context(|| format!("writing {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", path.display()))
}
