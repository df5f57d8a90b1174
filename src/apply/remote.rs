//! The runner's one interface to a host. The SSH [`Connection`] implements it for real hosts;
//! the unit tests use an in-memory fake (see `fake.rs`) that records what was asked.

use std::collections::BTreeMap;
use std::path::Path;

use crate::transport::{self, Connection, Downloaded, Forward, Output, Progress, Source};

/// Files read from a host: path → content, None where there is no such file.
pub type Files = BTreeMap<String, Option<Vec<u8>>>;

// The runner awaits these futures in place (never spawned onto other threads), so the `Send`
// bound that `async fn` in a public trait cannot promise is not needed.
#[allow(async_fn_in_trait)]
pub trait Remote {
    /// The host's name in the inventory, for messages.
    fn host_name(&self) -> &str;

    /// Runs a shell command as root. A non-zero exit is not an error: see [`Output::status`].
    async fn run(&self, command: &str) -> transport::Result<Output>;

    /// Runs a shell command as root; a non-zero exit is an error naming the command and
    /// carrying the last lines of its stderr.
    async fn run_checked(&self, command: &str) -> transport::Result<Output>;

    /// Installs `source` at `path` with `mode` (root-owned, atomically, verified on the host
    /// against `expected` when given).
    async fn upload(
        &self,
        source: Source<'_>,
        path: &str,
        mode: u32,
        expected: Option<&str>,
        progress: Progress<'_>,
    ) -> transport::Result<()>;

    /// A local socket connected to `target:port` as seen from the host.
    async fn forward(&self, target: &str, port: u16) -> transport::Result<Forward>;

    /// Reads `paths` as root, whole, keys included (kept in memory, never logged); `what`
    /// says why, for errors.
    async fn read(&self, paths: &[String], what: &str) -> anyhow::Result<Files>;

    /// Copies `path` from the host to the local `to` (0600), checked against its SHA-256 on
    /// the host; `to` is replaced only once the copy is complete.
    async fn download(&self, path: &str, to: &Path) -> transport::Result<Downloaded>;

    /// Points each link `(path, target)` at its target, each replaced atomically.
    async fn switch_links(&self, links: &[(&str, &str)]) -> transport::Result<()> {
        self.run_checked(&crate::shell::switch_links(links))
            .await
            .map(drop)
    }

    /// The last lines of `unit`'s journal, introduced and indented, for an error that says why
    /// the unit failed.
    async fn journal_excerpt(&self, unit: crate::component::Unit) -> String {
        let journal = self
            .run(&crate::shell::journal_tail(&unit.file_name(), 30))
            .await
            .map(|o| o.stdout_text())
            .unwrap_or_else(|e| format!("(journal unavailable: {e})"));
        let lines: Vec<String> = journal.lines().map(|l| format!("    {l}")).collect();
        format!(
            "last lines of `journalctl -u {unit}` on {}:\n{}",
            self.host_name(),
            lines.join("\n")
        )
    }
}

impl Remote for Connection {
    fn host_name(&self) -> &str {
        Connection::host_name(self)
    }

    async fn run(&self, command: &str) -> transport::Result<Output> {
        Connection::run(self, command).await
    }

    async fn run_checked(&self, command: &str) -> transport::Result<Output> {
        Connection::run_checked(self, command).await
    }

    async fn upload(
        &self,
        source: Source<'_>,
        path: &str,
        mode: u32,
        expected: Option<&str>,
        progress: Progress<'_>,
    ) -> transport::Result<()> {
        self.upload_with_progress(source, path, mode, expected, progress)
            .await
            .map(|_| ())
    }

    async fn forward(&self, target: &str, port: u16) -> transport::Result<Forward> {
        Connection::forward(self, target, port).await
    }

    async fn read(&self, paths: &[String], what: &str) -> anyhow::Result<Files> {
        let out = self
            .run_script(&crate::shell::read_files(paths), what)
            .await?;
        let out = self.check(what, out)?;
        crate::shell::parse_files(&out.stdout)
            .map_err(|e| anyhow::anyhow!("{}: {what}: {e}", self.host_name()))
    }

    async fn download(&self, path: &str, to: &Path) -> transport::Result<Downloaded> {
        Connection::download(self, path, to).await
    }
}
