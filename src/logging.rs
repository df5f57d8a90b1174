//! The debug log (`-v`, `-vv`, `RUST_LOG`): tracing events on stderr, written above the progress
//! bars when they are drawn.

use std::io::{IsTerminal, Write};

use tracing_subscriber::filter::{Directive, EnvFilter, LevelFilter};
use tracing_subscriber::fmt::MakeWriter;

/// The filter for `verbosity` (`-v` count) and `rust_log` (the `RUST_LOG` value). `None` when
/// nothing is to be logged, so that a run without either pays nothing for logging.
pub fn filter(verbosity: u8, rust_log: Option<&str>) -> Option<EnvFilter> {
    let own: Option<Directive> = match verbosity {
        0 => None,
        1 => "provisioner=debug".parse().ok(),
        _ => "provisioner=trace".parse().ok(),
    };
    let rust_log = rust_log.map(str::trim).filter(|s| !s.is_empty());
    if own.is_none() && rust_log.is_none() {
        return None;
    }
    let mut filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::OFF.into())
        .parse_lossy(rust_log.unwrap_or_default());
    // Added last, so the flag given on this command line wins over RUST_LOG for provisioner's
    // own modules; RUST_LOG still adds other targets (russh=debug) or narrower ones.
    if let Some(own) = own {
        filter = filter.add_directive(own);
    }
    Some(filter)
}

/// Installs the log for `verbosity` and `RUST_LOG`; does nothing when neither asks for it.
pub fn init(verbosity: u8) {
    let rust_log = std::env::var("RUST_LOG").ok();
    let Some(filter) = filter(verbosity, rust_log.as_deref()) else {
        return;
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// Hands out one buffer per event, so that an event reaches the terminal in one piece.
struct Stderr;

impl<'a> MakeWriter<'a> for Stderr {
    type Writer = Event;

    fn make_writer(&'a self) -> Event {
        Event(Vec::new())
    }
}

struct Event(Vec<u8>);

impl Write for Event {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Event {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.0);
        let text = text.trim_end_matches('\n');
        if !text.is_empty() {
            crate::term::println(text);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_logged_without_v_or_rust_log() {
        assert!(filter(0, None).is_none());
        assert!(filter(0, Some("  ")).is_none());
    }

    #[test]
    fn v_logs_provisioner_at_debug_and_vv_at_trace() {
        let f = filter(1, None).map(|f| f.to_string()).unwrap_or_default();
        assert!(f.contains("provisioner=debug"), "{f}");
        let f = filter(2, None).map(|f| f.to_string()).unwrap_or_default();
        assert!(f.contains("provisioner=trace"), "{f}");
        let f = filter(5, None).map(|f| f.to_string()).unwrap_or_default();
        assert!(f.contains("provisioner=trace"), "{f}");
    }

    #[test]
    fn rust_log_adds_targets_and_the_flag_wins_for_provisioner() {
        let f = filter(1, Some("russh=debug,provisioner=warn"))
            .map(|f| f.to_string())
            .unwrap_or_default();
        assert!(f.contains("russh=debug"), "{f}");
        assert!(f.contains("provisioner=debug"), "{f}");
        assert!(!f.contains("provisioner=warn"), "{f}");
        let f = filter(0, Some("provisioner::transport=trace"))
            .map(|f| f.to_string())
            .unwrap_or_default();
        assert!(f.contains("provisioner::transport=trace"), "{f}");
    }
}
