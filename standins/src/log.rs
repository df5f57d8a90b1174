//! Log lines: plain stderr lines, each naming the stand-in, so that journalctl output can never be
//! mistaken for the real component's.

use std::sync::OnceLock;

static COMPONENT: OnceLock<&'static str> = OnceLock::new();

/// Names the component for every later log line; the first call wins.
pub fn set_component(name: &'static str) {
    let _ = COMPONENT.set(name);
}

pub fn component() -> &'static str {
    COMPONENT.get().copied().unwrap_or("unknown")
}

/// `say!("listening on {addr}")` prints `[stand-in kube-apiserver] listening on ...` to stderr.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        eprintln!("[stand-in {}] {}", $crate::log::component(), format_args!($($arg)*))
    };
}
