//! Progress of long work: one line per step on a terminal or in a log, or one JSON object per
//! line with `--output json` (phase, host, step, duration, result).

use std::io::Write;
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

pub struct Reporter {
    format: Format,
}

impl Reporter {
    pub fn new(format: Format) -> Self {
        Reporter { format }
    }

    pub fn phase(&self, phase: &str) {
        if self.format == Format::Text {
            eprintln!("==> {phase}");
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
                let host = host.map(|h| format!("[{h}] ")).unwrap_or_default();
                let detail = detail.map(|d| format!(": {d}")).unwrap_or_default();
                eprintln!(
                    "    {host}{step} ... {result} ({:.1}s){detail}",
                    took.as_secs_f64()
                );
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
            eprintln!("{message}");
        }
    }
}
