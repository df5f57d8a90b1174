//! Named steps: a scenario reads as the list of its steps, and its output says which step it
//! was in when it failed and how long each took (where the suite's time goes).

use std::time::Instant;

/// Runs one step of a scenario: prints `== step: NAME` to stderr, runs `body`, prints
/// `== step done: NAME (SECONDS s)` and returns what `body` returns. If `body` panics, prints
/// which step failed, after how long, and lets the panic go on.
pub fn step<T>(name: &str, body: impl FnOnce() -> T) -> T {
    eprintln!("== step: {name}");
    let guard = OnPanic(name, Instant::now());
    let out = body();
    eprintln!(
        "== step done: {name} ({:.1} s)",
        guard.1.elapsed().as_secs_f64()
    );
    out
}

/// Names the step when it is dropped during a panic.
struct OnPanic<'a>(&'a str, Instant);

impl Drop for OnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "== step failed: {} (after {:.1} s)",
                self.0,
                self.1.elapsed().as_secs_f64()
            );
        }
    }
}
