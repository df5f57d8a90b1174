//! Running commands on a session channel.

use std::time::{Duration, Instant};

use russh::ChannelMsg;
use tokio::io::AsyncRead;

use super::{Connection, Error, OpenError, Result};

/// The most a command may print (stdout and stderr together): a host cannot make provisioner
/// run out of memory.
pub const MAX_OUTPUT: usize = 64 << 20;

/// What a command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// The exit status. A command killed by a signal gets 255, with the signal named at the
    /// end of stderr.
    pub status: u32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status == 0
    }

    /// stdout as text (lossy).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// stderr as text (lossy).
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// The last lines of stderr, for error messages: at most 10 lines and 2000 characters.
pub(crate) fn tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text.trim_end().lines().collect();
    let mut out = lines[lines.len().saturating_sub(10)..].join("\n");
    if out.len() > 2000 {
        let mut cut = out.len() - 2000;
        while !out.is_char_boundary(cut) {
            cut += 1;
        }
        out = format!("...{}", &out[cut..]);
    }
    out
}

/// A command as shown in messages: its first line, at most 200 characters.
pub(crate) fn shown(command: &str) -> String {
    let first = command.trim().lines().next().unwrap_or("");
    let mut s: String = first.chars().take(200).collect();
    if s.len() < command.trim().len() {
        s.push_str(" ...");
    }
    s
}

/// At most `max` characters of `s`, with ` ...` when it was longer.
fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => format!("{} ...", s[..cut].trim_end_matches(" ...")),
        None => s.to_string(),
    }
}

impl Connection {
    /// Runs a shell command as root (through `sudo -n` when configured). A non-zero exit is
    /// not an error: look at [`Output::status`].
    pub async fn run(&self, command: &str) -> Result<Output> {
        let wrapped = self.as_root(command);
        self.exec(&wrapped, None::<&[u8]>, command, Duration::ZERO)
            .await
    }

    /// Runs a shell command as root; a non-zero exit is an error carrying the command and the
    /// last lines of its stderr.
    pub async fn run_checked(&self, command: &str) -> Result<Output> {
        let out = self.run(command).await?;
        self.check(command, out)
    }

    /// Runs a POSIX sh script as root (`sh -c`, whatever the user's login shell).
    pub(crate) async fn run_script(&self, script: &str, shown_as: &str) -> Result<Output> {
        self.exec(
            &self.as_root_script(script),
            None::<&[u8]>,
            shown_as,
            Duration::ZERO,
        )
        .await
    }

    pub(crate) fn check(&self, command: &str, out: Output) -> Result<Output> {
        if out.success() {
            return Ok(out);
        }
        let stderr = tail(&out.stderr);
        let hint = if stderr.contains("sudo: a password is required")
            || stderr.contains("sudo: a terminal is required")
        {
            Some(format!(
                "user {} needs passwordless sudo on the host (a NOPASSWD rule in /etc/sudoers.d)",
                self.inner.target.user
            ))
        } else if stderr.contains("is not in the sudoers file") {
            Some(format!(
                "add user {} to the sudoers with NOPASSWD, or connect as root",
                self.inner.target.user
            ))
        } else {
            None
        };
        Err(Error::Command {
            host: self.inner.endpoint.label.clone(),
            command: shown(command),
            status: out.status,
            stderr_tail: stderr,
            hint,
        })
    }

    /// Runs `command` exactly as given, feeding `input` to its stdin (then end of file), and
    /// collects its output. `shown_as` names it in errors. It must end within the connection's
    /// command timeout plus `extra` (an upload's transfer time), and print at most
    /// [`MAX_OUTPUT`] bytes.
    pub(crate) async fn exec<R: AsyncRead + Unpin>(
        &self,
        command: &str,
        input: Option<R>,
        shown_as: &str,
        extra: Duration,
    ) -> Result<Output> {
        self.exec_into(command, input, None, shown_as, extra).await
    }

    /// [`exec`](Self::exec), with stdout written to `sink` as it arrives (not collected, and not
    /// counted against [`MAX_OUTPUT`]) when one is given.
    pub(crate) async fn exec_into<R: AsyncRead + Unpin>(
        &self,
        command: &str,
        input: Option<R>,
        sink: Option<&mut (dyn std::io::Write + Send)>,
        shown_as: &str,
        extra: Duration,
    ) -> Result<Output> {
        let host = self.host_name();
        // The log never shows a whole script, only the start of its first line, as errors do:
        // scripts are long, and what follows their first line can be file contents.
        let first = shown(shown_as);
        tracing::trace!(host, command = %first, "running");
        let brief = clip(&first, 80);
        let t = Instant::now();
        let deadline = self.inner.options.command_timeout.saturating_add(extra);
        let result = match tokio::time::timeout(
            deadline,
            self.exec_on_channel(command, input, sink, shown_as),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(self.session_error(
                format!("running `{}`", shown(shown_as)),
                format!(
                    "it did not finish within {} s (the inventory's ssh.command_timeout)",
                    deadline.as_secs()
                ),
            )),
        };
        let ms = t.elapsed().as_millis() as u64;
        match &result {
            Ok(out) => tracing::debug!(host, command = %brief, status = out.status, ms, "ran"),
            Err(e) => tracing::debug!(host, command = %brief, ms, "could not run: {e}"),
        }
        result
    }

    async fn exec_on_channel<R: AsyncRead + Unpin>(
        &self,
        command: &str,
        input: Option<R>,
        mut sink: Option<&mut (dyn std::io::Write + Send)>,
        shown_as: &str,
    ) -> Result<Output> {
        let step = || format!("running `{}`", shown(shown_as));
        let channel = self
            .open_channel(|link| async move { link.session.channel_open_session().await })
            .await
            .map_err(|e| match e {
                OpenError::Connect(e) => e,
                OpenError::Channel(e) => {
                    self.session_error(step(), format!("opening a session channel: {e}"))
                }
            })?;
        channel
            .exec(true, command)
            .await
            .map_err(|e| self.session_error(step(), e))?;
        let (mut read, write) = channel.split();

        let send = async {
            if let Some(input) = input {
                write.data(input).await?;
            }
            write.eof().await
        };
        tokio::pin!(send);
        let mut sent: Option<std::result::Result<(), russh::Error>> = None;
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let mut status = None;
        loop {
            tokio::select! {
                r = &mut send, if sent.is_none() => sent = Some(r),
                msg = read.wait() => match msg {
                    Some(ChannelMsg::Data { data }) => match sink.as_mut() {
                        Some(w) => w.write_all(&data).map_err(|e| {
                            self.session_error(step(), format!("writing its output locally: {e}"))
                        })?,
                        None => stdout.extend_from_slice(&data),
                    },
                    Some(ChannelMsg::ExtendedData { data, ext: 1 }) => stderr.extend_from_slice(&data),
                    Some(ChannelMsg::ExitStatus { exit_status }) => status = Some(exit_status),
                    Some(ChannelMsg::ExitSignal { signal_name, error_message, .. }) => {
                        stderr.extend_from_slice(
                            format!("\nkilled by signal {signal_name:?} {error_message}").as_bytes(),
                        );
                        status = Some(255);
                    }
                    Some(ChannelMsg::Failure) => {
                        return Err(self.session_error(step(), "the host refused to run the command"));
                    }
                    Some(_) => {}
                    None => break,
                },
            }
            if stdout.len() + stderr.len() > MAX_OUTPUT {
                return Err(self.session_error(
                    step(),
                    format!("it printed more than {} MiB", MAX_OUTPUT >> 20),
                ));
            }
        }
        let Some(status) = status else {
            return Err(
                self.session_error(step(), "the connection ended before the command exited")
            );
        };
        // A command that exits without reading all of its input is judged by its status; an
        // input that could not be sent while the command succeeded is an error.
        if let Some(Err(e)) = sent {
            if status == 0 {
                return Err(self.session_error(step(), format!("sending its input: {e}")));
            }
        }
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_lines() {
        let text: String = (1..=30).map(|i| format!("line {i}\n")).collect();
        let t = tail(text.as_bytes());
        assert!(t.starts_with("line 21\n"));
        assert!(t.ends_with("line 30"));
        let long = "x".repeat(5000);
        assert_eq!(tail(long.as_bytes()).len(), 2003);
    }

    #[test]
    fn clipped_commands_keep_their_start() {
        assert_eq!(
            clip("systemctl restart etcd.service", 80),
            "systemctl restart etcd.service"
        );
        assert_eq!(clip("abcdef", 3), "abc ...");
        assert_eq!(clip("éééé", 2), "éé ...");
    }

    #[test]
    fn shown_commands_are_short() {
        assert_eq!(shown("echo hi"), "echo hi");
        assert_eq!(shown("set -e\nrm -rf /x"), "set -e ...");
        assert_eq!(shown(&"a".repeat(300)).len(), 204);
    }
}
