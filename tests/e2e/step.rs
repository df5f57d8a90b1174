//! Named steps: a scenario reads as the list of its steps, and its output says which step it
//! was in when it failed.

/// Runs one step of a scenario: prints `== step: NAME` to stderr, runs `body` and returns what
/// it returns. If `body` panics, prints which step failed and lets the panic go on.
pub fn step<T>(name: &str, body: impl FnOnce() -> T) -> T {
    eprintln!("== step: {name}");
    let _failed = OnPanic(name);
    body()
}

/// Names the step when it is dropped during a panic.
struct OnPanic<'a>(&'a str);

impl Drop for OnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("== step failed: {}", self.0);
        }
    }
}
