//! Certificate lifecycle on a running cluster: `certs check` and `certs regenerate`.

pub mod check;
pub mod regenerate;
