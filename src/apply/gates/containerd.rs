//! The containerd phase's gates: the runtime answers, and the bundle's images are imported
//! under the digests the bundle manifest names.
use anyhow::{bail, Context, Result};

use super::super::health::{retry_until, HALF_SECOND};
use super::super::remote::Remote;
use super::Gates;
use crate::component::Unit;
use crate::plan::ImageImport;

impl<R: Remote> Gates<'_, R> {
    /// containerd answers on its socket.
    pub(super) async fn containerd(&self, hosts: &[&str]) -> Result<()> {
        for h in hosts {
            let conn = &self.conns[*h];
            let containerd = retry_until(self.deadline, HALF_SECOND, || async {
                let o = conn.run(&crate::shell::containerd_version()).await?;
                if !o.success() {
                    bail!(
                        "containerd's socket does not answer: {}",
                        o.stderr_text().trim()
                    );
                }
                Ok(())
            });
            self.wait_for(
                h,
                Some(Unit::Containerd),
                "containerd socket answers",
                containerd,
            )
            .await?;
        }
        Ok(())
    }

    /// Imports image archives into containerd's k8s.io namespace with containerd's own `ctr`,
    /// then checks that containerd lists each under the digest the bundle manifest names.
    pub(super) async fn images(&self, imports: &[(&str, &ImageImport)]) -> Result<()> {
        for (host, i) in imports {
            let conn = &self.conns[*host];
            let img = &i.image;
            let check = async {
                conn.run_checked(&crate::shell::import_image(&img.archive))
                    .await
                    .context("ctr images import")?;
                conn.run_checked(&crate::shell::pin_image(&img.reference))
                    .await
                    .context("ctr images label")?;
                let out = conn
                    .run_checked(&crate::shell::list_image(&img.reference))
                    .await?;
                let listed = out.stdout_text().lines().skip(1).find_map(|l| {
                    let mut parts = l.split_whitespace();
                    let reference = parts.next()?;
                    let digest = parts.nth(1)?;
                    (reference == img.reference).then(|| digest.to_string())
                });
                match listed {
                    Some(d) if d == img.digest => Ok(()),
                    Some(d) => bail!(
                        "containerd lists {} with the digest {d}, but the bundle manifest says {}",
                        img.reference,
                        img.digest
                    ),
                    None => bail!(
                        "containerd does not list {} after the import",
                        img.reference
                    ),
                }
            };
            let what = format!("image {} imported ({})", img.reference, i.reason);
            self.wait_for(host, Some(Unit::Containerd), &what, check)
                .await?;
        }
        Ok(())
    }
}
