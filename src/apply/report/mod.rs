//! Progress of long work: one line per finished step on stderr, or one JSON object per line on
//! stdout with `--output json` (phase, host, step, duration, result). On a terminal, the steps
//! still running are drawn below the finished lines (see [`live`]); the finished lines are the
//! same either way, so a scrolled-back terminal reads like a log.

mod live;

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

#[derive(Serialize)]
struct Event<'a> {
    phase: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    host: Option<&'a str>,
    step: &'a str,
    duration_ms: u128,
    result: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
}

enum View {
    /// Finished lines only: what logs, CI and pipes get.
    Lines(Mutex<Box<dyn Write + Send>>),
    /// A terminal: finished lines, and below them a live line per running step.
    Live(live::Live),
}

pub struct Reporter {
    format: Format,
    view: View,
}

impl Reporter {
    pub fn format(&self) -> Format {
        self.format
    }

    /// Live lines when the text goes to a terminal, plain lines otherwise.
    pub fn new(format: Format) -> Self {
        let view = if format == Format::Text && std::io::stderr().is_terminal() {
            View::Live(live::Live::new())
        } else {
            View::Lines(Mutex::new(Box::new(std::io::stderr())))
        };
        Reporter { format, view }
    }

    /// Plain lines written to `out` instead of stderr.
    pub fn with_writer(format: Format, out: Box<dyn Write + Send>) -> Self {
        Reporter {
            format,
            view: View::Lines(Mutex::new(out)),
        }
    }

    fn print(&self, line: &str) {
        match &self.view {
            View::Lines(out) => {
                // One write per line, so that lines from other threads never interleave within it.
                if let Ok(mut out) = out.lock() {
                    let _ = out.write_all(format!("{line}\n").as_bytes());
                }
            }
            View::Live(live) => live.println(line),
        }
    }

    /// The plan about to be carried out, for people (on stderr, in the text format only).
    pub fn plan(&self, plan: &crate::plan::Plan) {
        if self.format == Format::Text {
            eprint!("{}", crate::plan::text(plan));
        }
    }

    /// `==> NAME`: a stage (see [`Stage`](super::workflow::Stage)) or a phase begins.
    pub(super) fn header(&self, name: &str) {
        if self.format == Format::Text {
            if let View::Live(live) = &self.view {
                live.clear();
            }
            self.print(&format!("==> {name}"));
        }
    }

    /// A step begins on `host`. On a terminal it shows, with its elapsed time, until
    /// [`step`](Self::step) records its end; elsewhere only the end is recorded.
    pub fn start(&self, host: Option<&str>, step: &str) {
        if let View::Live(live) = &self.view {
            live.start(host, step);
        }
    }

    /// The running step on `host` has sent `done` of `total` bytes; `item` is what it sends now.
    pub fn progress(&self, host: Option<&str>, item: &str, done: u64, total: u64) {
        if let View::Live(live) = &self.view {
            live.progress(host, item, done, total);
        }
    }

    /// Records a finished step. `detail` is shown for failures and skipped steps.
    pub fn step(
        &self,
        phase: &str,
        host: Option<&str>,
        step: &str,
        took: Duration,
        result: &str,
        detail: Option<&str>,
    ) {
        match self.format {
            Format::Text => {
                if let View::Live(live) = &self.view {
                    live.finish(host);
                }
                self.print(&step_line(host, step, took, result, detail));
            }
            Format::Json => {
                let e = Event {
                    phase,
                    host,
                    step,
                    duration_ms: took.as_millis(),
                    result,
                    detail,
                };
                let mut out = std::io::stdout().lock();
                let _ = serde_json::to_writer(&mut out, &e);
                let _ = writeln!(out);
            }
        }
    }

    pub fn note(&self, message: &str) {
        if self.format == Format::Text {
            self.print(message);
        }
    }

    /// What the operator must see in every output format (on stderr, JSON keeping stdout).
    pub fn warn(&self, message: &str) {
        let line = format!("warning: {message}");
        match self.format {
            Format::Text => self.print(&line),
            Format::Json => eprintln!("{line}"),
        }
    }
}

/// A finished step as text: `    [host] step ... result (1.2s): detail`.
fn step_line(
    host: Option<&str>,
    step: &str,
    took: Duration,
    result: &str,
    detail: Option<&str>,
) -> String {
    let host = host.map(|h| format!("[{h}] ")).unwrap_or_default();
    let detail = detail.map(|d| format!(": {d}")).unwrap_or_default();
    format!(
        "    {host}{step} ... {result} ({:.1}s){detail}",
        took.as_secs_f64()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A writer whose bytes the test can read afterwards.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    #[test]
    fn plain_lines_are_exactly_the_log_format() {
        let out = Captured::default();
        let rep = Reporter::with_writer(Format::Text, Box::new(out.clone()));
        rep.note("NOTE: a note");
        rep.header("connect");
        rep.start(Some("cp-1"), "ssh");
        rep.step(
            "connect",
            Some("cp-1"),
            "ssh",
            Duration::from_millis(240),
            "ok",
            None,
        );
        rep.header("files");
        rep.start(Some("w-1"), "3 file(s), 1 dir(s)");
        rep.progress(Some("w-1"), "/usr/local/bin/kubelet", 10, 100);
        rep.step(
            "files",
            Some("w-1"),
            "3 file(s), 1 dir(s)",
            Duration::from_millis(1250),
            "ok",
            None,
        );
        rep.start(Some("cp-1"), "API server /readyz");
        rep.step(
            "gate",
            Some("cp-1"),
            "API server /readyz",
            Duration::from_secs(120),
            "failed",
            Some("no answer within 120 s"),
        );
        rep.step(
            "rbac",
            None,
            "cluster role bindings",
            Duration::ZERO,
            "ok",
            None,
        );
        assert_eq!(
            out.text(),
            "NOTE: a note\n\
             ==> connect\n    [cp-1] ssh ... ok (0.2s)\n\
             ==> files\n    [w-1] 3 file(s), 1 dir(s) ... ok (1.2s)\n\
             \x20   [cp-1] API server /readyz ... failed (120.0s): no answer within 120 s\n\
             \x20   cluster role bindings ... ok (0.0s)\n"
        );
    }

    #[test]
    fn json_output_leaves_the_text_stream_empty() {
        let out = Captured::default();
        let rep = Reporter::with_writer(Format::Json, Box::new(out.clone()));
        rep.note("NOTE");
        rep.header("connect");
        rep.start(Some("cp-1"), "ssh");
        rep.progress(Some("cp-1"), "x", 1, 2);
        assert_eq!(out.text(), "");
    }
}
