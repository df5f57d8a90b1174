//! "Healthy only after a recent successful API server round trip", shared by the components
//! that talk to the API server, and the health endpoints serving it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::net::Response;

/// How recent the last successful round trip must be.
pub const WINDOW: Duration = Duration::from_secs(30);

#[derive(Default)]
pub struct Health {
    last_ok: Mutex<Option<Instant>>,
    last_error: Mutex<Option<String>>,
}

impl Health {
    pub fn new() -> Health {
        Health::default()
    }

    pub fn mark_ok(&self) {
        if let Ok(mut t) = self.last_ok.lock() {
            *t = Some(Instant::now());
        }
    }

    /// Records a failure; returns whether it differs from the previous one (log only changes).
    pub fn mark_error(&self, e: &str) -> bool {
        match self.last_error.lock() {
            Ok(mut last) if last.as_deref() != Some(e) => {
                *last = Some(e.to_string());
                true
            }
            _ => false,
        }
    }

    pub fn clear_error(&self) -> bool {
        self.last_error
            .lock()
            .map(|mut l| l.take().is_some())
            .unwrap_or(false)
    }

    /// None when healthy, else why not.
    pub fn problem(&self) -> Option<String> {
        let last = self.last_ok.lock().ok().and_then(|t| *t);
        match last {
            Some(t) if t.elapsed() <= WINDOW => None,
            Some(t) => Some(format!(
                "no successful API server round trip for {}s",
                t.elapsed().as_secs()
            )),
            None => Some("no successful API server round trip yet".into()),
        }
    }

    /// A health endpoint's answer, in the real format (`ok`, or `[-]check failed` lines).
    pub fn response(&self, check: &str, verbose: bool) -> Response {
        match self.problem() {
            None if verbose => Response::text(
                200,
                format!("[+]apiserver-round-trip ok\n{check} check passed (stand-in)\n"),
            ),
            None => Response::text(200, "ok"),
            Some(p) => {
                let why = self
                    .last_error
                    .lock()
                    .ok()
                    .and_then(|e| e.clone())
                    .map(|e| format!(" (last error: {e})"))
                    .unwrap_or_default();
                Response::text(
                    500,
                    format!("[-]apiserver-round-trip failed: {p}{why}\n{check} check failed\n"),
                )
            }
        }
    }
}

/// Logs an API server failure once per distinct message, and recovery once.
pub fn note(health: &Health, r: &anyhow::Result<()>) {
    match r {
        Ok(()) => {
            health.mark_ok();
            if health.clear_error() {
                crate::say!("API server round trips work again");
            }
        }
        Err(e) => {
            let msg = format!("{e:#}");
            if health.mark_error(&msg) {
                crate::say!("API server round trip failed: {msg}");
            }
        }
    }
}
