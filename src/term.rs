//! The operator's terminal, shared by the progress bars, the debug log and the passphrase prompt.
//! While bars are drawn, anything else written to the terminal must go above them or pause them,
//! or the next redraw overwrites it.

use std::sync::Mutex;

use indicatif::MultiProgress;

static BARS: Mutex<Option<MultiProgress>> = Mutex::new(None);

fn bars() -> Option<MultiProgress> {
    BARS.lock().ok().and_then(|b| b.clone())
}

/// Makes `bars` the set that [`println`] and [`suspend`] write around.
pub fn attach(bars: &MultiProgress) {
    if let Ok(mut b) = BARS.lock() {
        *b = Some(bars.clone());
    }
}

pub fn detach() {
    if let Ok(mut b) = BARS.lock() {
        *b = None;
    }
}

/// Writes `text` (one or more lines, without the final newline) to stderr, above the bars when
/// there are any.
pub fn println(text: &str) {
    use std::io::Write;
    match bars() {
        Some(b) if !b.is_hidden() => {
            let _ = b.println(text);
        }
        _ => {
            let _ = writeln!(std::io::stderr().lock(), "{text}");
        }
    }
}

/// Runs `f` with the bars cleared, for output that cannot go through [`println`] (a prompt).
/// The bars stay locked meanwhile: `f` must not log, or it waits for itself.
pub fn suspend<R>(f: impl FnOnce() -> R) -> R {
    match bars() {
        Some(b) => b.suspend(f),
        None => f(),
    }
}
