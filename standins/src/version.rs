//! The Kubernetes version the stand-ins claim, fixed at build time.

/// `STANDIN_KUBERNETES_VERSION` at build time, without a leading "v"; 1.35.0 by default.
pub const VERSION: &str = match option_env!("STANDIN_KUBERNETES_VERSION") {
    Some(v) => v,
    None => "1.35.0",
};

/// The version without any leading "v" (the build variable may be given either way).
pub fn version() -> &'static str {
    VERSION.strip_prefix('v').unwrap_or(VERSION)
}

/// `v1.35.0`, as the real components print it in `gitVersion`.
pub fn git_version() -> String {
    format!("v{}", version())
}

/// Minor version, which decides the flag and config-field lists.
pub fn minor() -> u32 {
    version()
        .split('.')
        .nth(1)
        .and_then(|m| m.parse().ok())
        .unwrap_or(35)
}

/// Major version as a string, for `/version`.
pub fn major() -> &'static str {
    version().split('.').next().unwrap_or("1")
}
