//! The bundle a cluster is built from: opened and verified before any host is contacted, and
//! the source of the images the cluster itself runs (air-gapped nodes cannot pull another).

use std::path::Path;

use anyhow::{bail, Context, Result};

use super::Bundle;
use crate::component::Addon;
use crate::inventory::Cluster;

/// Opens and verifies the bundle (signature first when a key is configured) before any host is
/// contacted, and points containerd at its pause image.
pub fn open_for(c: &mut Cluster, path: &Path) -> Result<Bundle> {
    let bundle_path = c.bundle.as_ref().with_context(|| {
        format!(
            "{} has no [cluster] bundle: set it to the bundle archive (provisioner bundle fetch) \
             or a directory holding the binaries and their manifest.toml",
            path.display()
        )
    })?;
    let t = std::time::Instant::now();
    let bundle = Bundle::open(bundle_path, &c.state_dir, c.bundle_public_key.as_deref())?;
    tracing::debug!(
        dir = %bundle.dir.display(),
        kubernetes = %bundle.kubernetes_version,
        arch = %bundle.arch,
        ms = t.elapsed().as_millis() as u64,
        "bundle checked"
    );
    if bundle.kubernetes_version.trim_start_matches('v') != c.kubernetes.to_string() {
        bail!(
            "the bundle holds Kubernetes {} but the inventory asks for {}; use a matching bundle",
            bundle.kubernetes_version,
            c.kubernetes
        );
    }
    if let Some(fp) = &bundle.signed_by {
        eprintln!("bundle signature valid ({fp})");
    }
    let v = &mut c.versions;
    let pinned = v.pause_image_pinned;
    use_bundled_image(&mut v.pause_image, pinned, &bundle, BundledImage::Pause)?;
    for addon in Addon::ALL {
        let props = addon.props();
        if (props.enabled)(c) {
            let (setting, pinned) = (props.image_setting)(&mut c.versions);
            use_bundled_image(setting, pinned, &bundle, BundledImage::Addon(addon))?;
        }
    }
    Ok(bundle)
}

/// The images the cluster itself runs, which a bundle carries under these names.
#[derive(Clone, Copy)]
enum BundledImage {
    Pause,
    Addon(Addon),
}

impl BundledImage {
    /// (name in the bundle, inventory key under [versions])
    fn names(self) -> (&'static str, String) {
        match self {
            BundledImage::Pause => ("pause", "pause_image".into()),
            BundledImage::Addon(a) => (a.name(), format!("{}_image", a.name())),
        }
    }
}

/// Points `setting` at the image the bundle carries for `role`. An image the inventory pins
/// must be the bundled one: air-gapped nodes cannot pull another.
fn use_bundled_image(
    setting: &mut String,
    pinned: bool,
    bundle: &Bundle,
    role: BundledImage,
) -> Result<()> {
    let (name, key) = role.names();
    match (bundle.image(name), role) {
        (Some(b), _) if *setting == b.reference => {}
        (Some(b), _) if !pinned => *setting = b.reference.clone(),
        (Some(b), _) => bail!(
            "[versions] {key} is {setting} but the bundle carries {}; remove the setting (the \
             bundled image is used) or use a bundle with that image",
            b.reference
        ),
        (None, BundledImage::Pause) => eprintln!(
            "warning: the bundle carries no pause image: nodes must pull {setting} themselves, \
             which fails on an air-gapped site (add it with `provisioner bundle fetch --image`)"
        ),
        (None, BundledImage::Addon(a)) => bail!(
            "the bundle carries no {} image, which the {name} addon runs: add {setting} with \
             `provisioner bundle fetch --image {name}.tar`, or set [addons] {name} = false",
            a.props().title
        ),
    }
    Ok(())
}
