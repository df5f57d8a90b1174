//! Failure injection for the tests: expired certificates, an interruption after a rotation stage,
//! and a crash at the Nth write to the state directory. Compiled in only with the `test-hooks`
//! feature, which the test command enables and release builds do not: without it every hook is a
//! constant `false` or does nothing, whatever the environment says.

/// Leaf certificates issued while this is `1` expired yesterday.
pub const ISSUE_EXPIRED: &str = "PROVISIONER_TEST_ISSUE_EXPIRED";
/// `certs rotate-ca` stops after this stage has been rolled out and recorded.
pub const STOP_AFTER_STAGE: &str = "PROVISIONER_TEST_STOP_AFTER_STAGE";
/// The process aborts (as `kill -9` would stop it) at this write point, counted from 1; `0`
/// lists every point reached on stderr instead (`write point N: what`), without crashing.
pub const CRASH_AT: &str = "PROVISIONER_TEST_CRASH_AT";

#[cfg(feature = "test-hooks")]
fn var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

#[cfg(not(feature = "test-hooks"))]
fn var(_: &str) -> Option<String> {
    None
}

pub fn issue_expired() -> bool {
    var(ISSUE_EXPIRED).as_deref() == Some("1")
}

pub fn stop_after_stage(stage: u8) -> bool {
    var(STOP_AFTER_STAGE) == Some(stage.to_string())
}

/// Marks a point where a crash must leave the state directory recoverable. With `CRASH_AT=N`,
/// the Nth point reached aborts the process at once: no destructor, no flush, no cleanup.
pub fn write_point(what: &str) {
    static REACHED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let Some(at) = var(CRASH_AT).and_then(|v| v.parse::<u32>().ok()) else {
        return;
    };
    let n = REACHED.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
    if at == 0 {
        eprintln!("write point {n}: {what}");
    } else if n == at {
        eprintln!("crashing at write point {n}: {what}");
        std::process::abort();
    }
}
